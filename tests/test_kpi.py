"""KPIs on a scripted history of three incidents, with exact values (definitions: README)."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from acdkit import kpi, reasons, regimes
from acdkit.decision import Decision
from acdkit.incident import Incident, Logged, to_ns

BOOK = regimes.load()
CODES = reasons.load(book=BOOK)
SCOPE = ("acd-internal", "jp-acd")
RECIPIENTS = (
    "competent_minister",
    "prime_minister_nco",
    "police",
    "jpcert_cc",
    "sector_isac",
    "contractors",
)
BUNDLE = ("bundle:sha256:" + "00" * 32,)


def d(incident: str, action: str, at: str, **fields: object) -> Decision:
    moment = datetime.fromisoformat(at)
    return Decision(  # type: ignore[arg-type]
        incident, action, to_ns(moment), 0, "alice", "scripted", **fields
    )


def history() -> dict[str, Incident]:
    a = [
        d(
            "A",
            "open",
            "2026-10-05T14:00+09:00",
            regimes=SCOPE,
            severity="high",
            observed_ns=to_ns(datetime.fromisoformat("2026-10-05T13:00+09:00")),
        ),
        d("A", "isolate", "2026-10-05T14:02+09:00"),
        d("A", "recognize", "2026-10-05T14:10+09:00", reasons=("CNI-INCIDENT",)),
        *(d("A", "notify", "2026-10-05T14:25+09:00", object=r) for r in RECIPIENTS),
        d("A", "package", "2026-10-05T16:00+09:00", refs=BUNDLE),
        d("A", "recover", "2026-10-05T20:00+09:00"),
        d("A", "submit", "2026-10-06T09:00+09:00", stages=("jp-acd/prompt",)),
        d("A", "publish", "2026-10-07T10:00+09:00"),
        d("A", "submit", "2026-10-20T10:00+09:00", stages=("jp-acd/written",)),
        d("A", "close", "2026-10-21T10:00+09:00"),
    ]
    b = [
        d(
            "B",
            "open",
            "2026-11-02T09:00+09:00",
            regimes=SCOPE,
            severity="medium",
            observed_ns=to_ns(datetime.fromisoformat("2026-11-01T09:00+09:00")),
        ),
        d("B", "recognize", "2026-11-02T09:05+09:00", reasons=("CNI-INCIDENT",)),
        d("B", "isolate", "2026-11-02T09:10+09:00"),
        d("B", "notify", "2026-11-02T09:40+09:00", object="competent_minister"),
        d("B", "package", "2026-11-02T13:00+09:00", refs=BUNDLE),
        d("B", "recover", "2026-11-02T15:00+09:00"),
        d("B", "submit", "2026-11-03T10:00+09:00", stages=("jp-acd/prompt",)),
        d("B", "submit", "2026-11-04T10:00+09:00"),  # a submission, but of no stage
        d("B", "close", "2026-11-05T10:00+09:00"),
    ]
    c = [d("C", "open", "2026-12-01T10:00+09:00", regimes=("acd-internal",))]
    return {
        name: Incident(name, [Logged(x) for x in decisions])
        for name, decisions in (("A", a), ("B", b), ("C", c))
    }


AT = datetime.fromisoformat("2026-12-10T00:00+09:00")


def test_kpis_of_the_scripted_history() -> None:
    doc = kpi.compute(history(), BOOK, CODES, AT).to_json()
    assert (doc["incidents"], doc["closed"]) == (3, 2)
    assert doc["mttd_seconds"] == (3600 + 86400) / 2
    assert doc["mttc_seconds"] == (120 + 600) / 2
    assert doc["mttr_seconds"] == 6 * 3600
    # A met everything; B was late or is overdue on everything; C (internal only) is overdue
    assert doc["sla_t30"] == {"met": 1, "due": 2, "ratio": 0.5}  # C has no ticket to send
    assert doc["sla_t180"] == {"met": 1, "due": 3, "ratio": 0.3333}
    assert doc["sla_internal"] == {"met": 3, "due": 8, "ratio": 0.375}
    assert doc["sla_statutory"] == {"met": 2, "due": 4, "ratio": 0.5}
    assert doc["sla_by_stage"]["jp-acd/written"] == {"met": 1, "due": 2, "ratio": 0.5}
    assert doc["sla_by_stage"]["acd-internal/severity-isolate"] == {
        "met": 1,
        "due": 3,
        "ratio": 0.3333,
    }
    assert doc["audit_line_completion"] == {"met": 1, "due": 2, "ratio": 0.5}  # B never published
    # recognition -> verified bundle: A 14:10 -> 16:00, B 09:05 -> 13:00
    assert doc["recognition_to_verified_bundle_median_seconds"] == (6600 + 14100) / 2


def test_a_waived_step_completes_the_audit_line() -> None:
    incidents = history()
    b = incidents["B"]
    waiver = d("B", "not-applicable", "2026-11-05T09:00+09:00", stages=("publish",))
    incidents["B"] = replace(b, logged=[*b.logged, Logged(waiver)])
    doc = kpi.compute(incidents, BOOK, CODES, AT).to_json()
    assert doc["audit_line_completion"] == {"met": 2, "due": 2, "ratio": 1.0}


def test_kpis_as_of_an_earlier_moment() -> None:
    early = datetime.fromisoformat("2026-10-05T15:00+09:00")
    doc = kpi.compute(history(), BOOK, CODES, early).to_json()
    assert (doc["incidents"], doc["closed"]) == (1, 0)
    assert doc["mttr_seconds"] is None and doc["audit_line_completion"]["ratio"] is None
    assert doc["sla_t30"] == {"met": 1, "due": 1, "ratio": 1.0}
    assert doc["sla_t180"] == {"met": 0, "due": 0, "ratio": None}  # not due yet: not counted
    assert doc["recognition_to_verified_bundle_median_seconds"] is None
