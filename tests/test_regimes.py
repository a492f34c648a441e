"""Clock arithmetic at the edges: weekends, Japanese holidays and year end, DST in regimes
counted in local time, composite and chained deadlines, and overdue detection."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from acdkit import clocks, reasons, regimes
from acdkit.decision import Decision
from acdkit.incident import Incident, Logged, to_ns

BOOK = regimes.load()
CODES = reasons.load(book=BOOK)
JST = ZoneInfo("Asia/Tokyo")
NY = ZoneInfo("America/New_York")
BRU = ZoneInfo("Europe/Brussels")


def t(text: str) -> datetime:
    return datetime.fromisoformat(text)


def due(regime: str, stage: str, start: str, flags: frozenset[str] = frozenset()) -> datetime:
    r = BOOK.regime(regime)
    s = r.stage(stage)
    assert s is not None
    return BOOK.deadline(s.due_for(set(flags)), r.zone, t(start), set(flags))


# -- the Japanese written report: 30 days, first day excluded, administrative holidays ------


@pytest.mark.parametrize(
    ("recognized", "deadline", "why"),
    [
        ("2026-10-05T14:00:00+09:00", "2026-11-05T00:00:00+09:00", "day 30 is a Wednesday"),
        ("2026-10-01T09:00:00+09:00", "2026-11-03T00:00:00+09:00", "day 30 a Saturday: Monday"),
        ("2026-10-04T09:00:00+09:00", "2026-11-05T00:00:00+09:00", "day 30 Culture Day: next day"),
        ("2026-11-30T10:00:00+09:00", "2027-01-05T00:00:00+09:00", "day 30 in 29 Dec - 3 Jan"),
        ("2027-04-03T10:00:00+09:00", "2027-05-07T00:00:00+09:00", "Golden Week"),
        ("2026-10-05T23:59:00+09:00", "2026-11-05T00:00:00+09:00", "the day is the JST day"),
        ("2026-10-05T15:30:00+00:00", "2026-11-06T00:00:00+09:00", "00:30 JST is the next day"),
    ],
)
def test_jp_written_report(recognized: str, deadline: str, why: str) -> None:
    assert due("jp-acd", "written", recognized) == t(deadline), why


def test_jp_holidays_come_from_the_holidays_package() -> None:
    cal = BOOK.calendars["jp-gov"]
    assert not cal.is_business_day(t("2026-09-22T12:00:00").date())  # 国民の休日 (sandwiched)
    assert not cal.is_business_day(t("2027-03-22T12:00:00").date())  # substitute holiday
    assert not cal.is_business_day(t("2027-01-03T12:00:00").date())  # administrative closure
    assert cal.is_business_day(t("2026-12-28T12:00:00").date())
    assert cal.add_business_days(t("2026-12-25T00:00:00").date(), 2).isoformat() == "2027-01-04"


def test_jp_prompt_report_is_a_target_not_a_statutory_number() -> None:
    stage = BOOK.regime("jp-acd").stage("prompt")
    assert stage is not None and stage.due.text == "速やかに" and stage.due.target
    assert due("jp-acd", "prompt", "2026-10-05T14:20:00+09:00") == t("2026-10-06T14:20:00+09:00")


# -- APPI: 30 days, 60 when the leak was done for an unauthorized purpose --------------------


def test_appi_final_report_and_its_malicious_variant() -> None:
    start = "2026-10-05T10:00:00+09:00"
    assert due("jp-appi", "final", start) == t("2026-11-05T00:00:00+09:00")
    assert due("jp-appi", "final", start, frozenset({"malicious"})) == t(
        "2026-12-05T00:00:00+09:00"
    )
    assert due("jp-appi", "preliminary", start) == t("2026-10-11T00:00:00+09:00")


# -- US SEC 8-K: four business days, 17:30 Eastern, across DST and federal holidays ---------


@pytest.mark.parametrize(
    ("determined", "deadline_utc"),
    [
        ("2026-03-06T15:00:00-05:00", "2026-03-12T21:30:00+00:00"),  # DST starts 8 March: EDT
        ("2026-10-29T11:00:00-04:00", "2026-11-04T22:30:00+00:00"),  # DST ends 1 November: EST
        ("2026-11-25T09:00:00-05:00", "2026-12-02T22:30:00+00:00"),  # Thanksgiving skipped
        ("2026-07-02T18:00:00-04:00", "2026-07-09T21:30:00+00:00"),  # 3 July observed holiday
    ],
)
def test_sec_8k(determined: str, deadline_utc: str) -> None:
    assert due("us-sec-8k", "form-8k", determined) == t(deadline_utc)


# -- EU: hours are absolute, months are wall-calendar months ---------------------------------


def test_nis2_hours_ignore_dst_and_months_follow_the_wall_clock() -> None:
    aware = "2026-03-28T10:00:00+01:00"  # the clocks go forward in the night to 29 March
    assert due("eu-nis2", "notification", aware) == t(aware) + timedelta(hours=72)
    # one month after 15 March 10:00 CET is 15 April 10:00 CEST: an hour less than 31 days
    assert due("eu-nis2", "final", "2026-03-15T10:00:00+01:00") == t("2026-04-15T08:00:00Z")
    assert due("eu-nis2", "final", "2026-01-31T10:00:00+01:00") == t("2026-02-28T10:00:00+01:00")


def _dora(
    aware: str, classified: str | None, flags: tuple[str, ...] = (), at: str = "2026-05-01T00:00Z"
) -> clocks.Clock:
    decisions = [_d("open", aware, regimes=("eu-dora",), flags=flags)]
    decisions.append(_d("aware", aware, events=("ict_incident_aware",)))
    if classified:
        decisions.append(_d("aware", classified, events=("major_ict_classified",)))
    found = clocks.evaluate(_incident(decisions), BOOK, CODES, t(at))
    return next(c for c in found if c.key == "eu-dora/initial")


def test_dora_initial_is_the_earlier_of_two_clocks() -> None:
    assert _dora("2026-04-20T09:00:00+02:00", None).deadline == t("2026-04-21T09:00:00+02:00")
    late = _dora("2026-04-20T09:00:00+02:00", "2026-04-20T20:00:00+02:00")
    assert late.deadline == t("2026-04-21T00:00:00+02:00")
    assert late.starts_at == "major_ict_classified"
    early = _dora("2026-04-20T09:00:00+02:00", "2026-04-21T07:00:00+02:00")
    assert early.deadline == t("2026-04-21T09:00:00+02:00")  # 24 h after awareness comes first


def test_dora_weekend_relief_moves_to_noon_of_the_next_working_day_across_dst() -> None:
    aware, classified = "2026-03-27T18:00:00+01:00", "2026-03-28T10:00:00+01:00"
    assert _dora(aware, classified).deadline == t("2026-03-28T14:00:00+01:00")
    relieved = _dora(aware, classified, ("dora_weekend_relief",))
    assert relieved.deadline == t("2026-03-30T12:00:00+02:00")  # Monday, now summer time
    easter = _dora("2026-04-05T08:00:00+02:00", None, ("dora_weekend_relief",))
    assert easter.deadline == t("2026-04-07T12:00:00+02:00")  # Sunday, then Easter Monday


def test_short_clocks() -> None:
    assert due("in-certin", "report", "2026-10-05T22:00:00+05:30") == t("2026-10-06T04:00+05:30")
    assert due("us-circia", "ransom-payment", "2026-10-05T12:00Z") == t("2026-10-06T12:00Z")
    assert due("au-soci", "critical", "2026-10-04T01:30:00+10:00") == t("2026-10-04T13:30+10:00")


# -- incidents: separate awareness times, chained stages, overdue detection -----------------


def _d(action: str, at: str, **fields: object) -> Decision:
    return Decision(  # type: ignore[arg-type]
        "INC-T", action, to_ns(t(at)), 0, "alice", "test", **fields
    )


def _incident(decisions: list[Decision]) -> Incident:
    return Incident("INC-T", [Logged(d) for d in decisions])


def _clock(inc: Incident, key: str, at: str) -> clocks.Clock:
    return next(c for c in clocks.evaluate(inc, BOOK, CODES, t(at)) if c.key == key)


def test_each_regime_runs_from_its_own_awareness_event() -> None:
    inc = _incident(
        [
            _d("open", "2026-10-05T14:00:00+09:00", regimes=("acd-internal", "jp-acd", "jp-appi")),
            _d("recognize", "2026-10-05T14:20:00+09:00", reasons=("CNI-INCIDENT",)),
            _d("classify", "2026-10-08T09:00:00+09:00", reasons=("PERSONAL-DATA",)),
        ]
    )
    at = "2026-10-09T00:00:00+09:00"
    assert _clock(inc, "acd-internal/tickets", at).start == t("2026-10-05T14:00:00+09:00")
    assert _clock(inc, "jp-acd/prompt", at).start == t("2026-10-05T14:20:00+09:00")
    appi = _clock(inc, "jp-appi/final", at)
    assert appi.start == t("2026-10-08T09:00:00+09:00")
    assert appi.deadline == t("2026-11-10T00:00:00+09:00")  # day 30 a Saturday: Monday
    assert appi.state == clocks.RUNNING
    before = _clock(inc, "jp-appi/final", "2026-10-07T00:00:00+09:00")
    assert before.state == clocks.WAITING and before.starts_at == "personal_data_breach"


def test_overdue_starts_one_instant_after_the_deadline() -> None:
    inc = _incident([_d("open", "2026-10-05T14:00:00+09:00", regimes=("acd-internal",))])
    key = "acd-internal/severity-isolate"
    assert _clock(inc, key, "2026-10-05T14:03:00+09:00").state == clocks.RUNNING
    assert _clock(inc, key, "2026-10-05T14:03:00.000001+09:00").state == clocks.OVERDUE
    late = _incident(
        [
            *inc.decisions,
            _d("severity", "2026-10-05T14:01:00+09:00", severity="high"),
            _d("isolate", "2026-10-05T14:05:00+09:00"),
        ]
    )
    assert _clock(late, key, "2026-10-05T14:04:00+09:00").state == clocks.OVERDUE
    done = _clock(late, key, "2026-10-05T15:00:00+09:00")
    assert (done.state, done.done_at) == (clocks.LATE, t("2026-10-05T14:05:00+09:00"))


def test_a_chained_stage_waits_for_the_submission_it_follows() -> None:
    base = [
        _d("open", "2026-03-01T09:00:00+01:00", regimes=("eu-nis2",)),
        _d("aware", "2026-03-01T10:00:00+01:00", events=("significant_incident",)),
    ]
    final = _clock(_incident(base), "eu-nis2/final", "2026-03-10T00:00:00+01:00")
    assert final.state == clocks.WAITING and final.starts_at == "eu-nis2/notification done"
    submitted = [*base, _d("submit", "2026-03-03T16:00:00+01:00", stages=("eu-nis2/notification",))]
    inc = _incident(submitted)
    assert _clock(inc, "eu-nis2/notification", "2026-03-10T00:00+01:00").state == clocks.MET
    final = _clock(inc, "eu-nis2/final", "2026-03-10T00:00:00+01:00")
    assert final.deadline == t("2026-04-03T16:00:00+02:00") and final.state == clocks.RUNNING


def test_not_applicable_closes_a_stage_and_those_that_follow_it() -> None:
    inc = _incident(
        [
            _d("open", "2026-10-04T01:00:00+10:00", regimes=("au-soci",)),
            _d("aware", "2026-10-04T01:30:00+10:00", events=("availability_significant",)),
            _d("not-applicable", "2026-10-04T02:00:00+10:00", stages=("au-soci/critical",)),
        ]
    )
    at = "2026-10-10T00:00:00+10:00"
    assert _clock(inc, "au-soci/critical", at).state == clocks.NOT_APPLICABLE
    assert _clock(inc, "au-soci/critical-written", at).state == clocks.NOT_APPLICABLE


def test_status_as_of_a_moment_ignores_later_decisions() -> None:
    inc = _incident(
        [
            _d("open", "2026-10-05T14:00:00+09:00", regimes=("acd-internal",), severity="high"),
            _d("isolate", "2026-10-05T14:02:00+09:00"),
        ]
    )
    key = "acd-internal/severity-isolate"
    assert _clock(inc, key, "2026-10-05T14:01:00+09:00").state == clocks.RUNNING
    assert _clock(inc, key, "2026-10-05T14:02:00+09:00").state == clocks.MET


# -- one scripted incident in every regime, its deadlines worked out by hand ----------------

ALL = tuple(r for r in BOOK.regimes)
# the review's timeline (Thursday 22 October 2026): a Japanese holiday (Labour Thanksgiving,
# Monday 23 November) behind a weekend, Europe's DST end (25 October), America's (1 November)
SCRIPT = [
    _d("open", "2026-10-22T09:00:00+09:00", regimes=ALL),
    _d("recognize", "2026-10-22T10:00:00+09:00", reasons=("CNI-INCIDENT",)),
    _d("aware", "2026-10-22T11:00:00+09:00", events=("personal_data_breach",)),
    _d(
        "aware", "2026-10-22T12:00:00+09:00", events=("availability_significant", "relevant_impact")
    ),
    _d("aware", "2026-10-23T18:00:00+02:00", events=("ict_incident_aware",)),
    _d("aware", "2026-10-24T20:00:00+02:00", events=("major_ict_classified",)),
    _d("aware", "2026-10-24T10:00:00-04:00", events=("ransom_payment",)),
    _d("submit", "2026-10-25T09:00:00+01:00", stages=("eu-dora/initial",)),
    _d("submit", "2026-10-26T15:00:00+01:00", stages=("eu-nis2/notification",)),
    _d("aware", "2026-10-29T12:00:00-04:00", events=("materiality_determination",)),
]
BY_HAND = {
    "acd-internal/severity-isolate": "2026-10-22T00:03Z",  # detection + 3 min
    "acd-internal/tickets": "2026-10-22T00:30Z",
    "acd-internal/summary": "2026-10-22T03:00Z",
    "jp-acd/prompt": "2026-10-23T01:00Z",  # recognition + 24 h (the target)
    # day 1 is 23 Oct; day 30 is Saturday 21 Nov; Sun 22, Mon 23 (a holiday): end of Tue 24
    "jp-acd/written": "2026-11-24T15:00Z",
    "jp-appi/preliminary": "2026-10-27T15:00Z",  # day 5 is 27 Oct, no roll
    "jp-appi/final": "2026-11-24T15:00Z",  # as the written report: no `malicious` flag
    "eu-nis2/early-warning": "2026-10-23T01:00Z",
    "eu-nis2/notification": "2026-10-25T01:00Z",  # 72 h straight through the DST end
    "eu-nis2/final": "2026-11-26T14:00Z",  # a wall-clock month after 26 Oct 15:00 CET
    "eu-dora/initial": "2026-10-24T16:00Z",  # 24 h after awareness beats 4 h after Sat 20:00
    "eu-dora/intermediate": "2026-10-28T08:00Z",  # 72 h after the initial was submitted
    "eu-gdpr/authority": "2026-10-25T02:00Z",
    "us-circia/covered-incident": "2026-10-25T01:00Z",
    "us-circia/ransom-payment": "2026-10-25T14:00Z",
    # Thu 29 Oct 12:00 EDT: Fri 30, Mon 2, Tue 3, Wed 4 Nov, 17:30 EST (after the DST end)
    "us-sec-8k/form-8k": "2026-11-04T22:30Z",
    "in-certin/report": "2026-10-22T07:00Z",  # 12:30 IST
    "au-soci/critical": "2026-10-22T15:00Z",
    "au-soci/other": "2026-10-25T03:00Z",
    "us-nydfs/incident": "2026-10-25T01:00Z",
    "us-nydfs/extortion-payment": "2026-10-25T14:00Z",
    "us-nydfs/extortion-justification": "2026-11-23T15:00Z",  # 10:00 EST, a wall-clock 30 days
}


def test_a_scripted_incident_in_every_regime_meets_the_deadlines_worked_out_by_hand() -> None:
    found = clocks.evaluate(_incident(SCRIPT), BOOK, CODES, t("2026-10-30T00:00:00Z"))
    deadlines = {c.key: c.deadline for c in found if c.deadline is not None}
    assert deadlines == {k: t(v) for k, v in BY_HAND.items()}
    waiting = {c.key for c in found if c.state == clocks.WAITING}
    assert waiting == {"eu-dora/final", "au-soci/critical-written", "au-soci/other-written"}


def test_a_whole_day_deadline_reads_as_24_00_of_its_last_day() -> None:
    found = clocks.evaluate(_incident(SCRIPT), BOOK, CODES, t("2026-10-30T00:00:00Z"))
    by = {c.key: c for c in found}
    written = by["jp-acd/written"]
    assert written.deadline == t("2026-11-25T00:00:00+09:00")  # the instant is unchanged
    assert (written.deadline_text(), str(written.last_day)) == (
        "2026-11-24 24:00 JST",
        "2026-11-24",
    )
    assert written.to_json(t("2026-10-30T00:00:00Z"))["last_day"] == "2026-11-24"
    # a deadline at a set hour stays that hour
    sec = by["us-sec-8k/form-8k"]
    assert (sec.deadline_text(), sec.last_day) == ("2026-11-04 17:30 EST", None)
    # a clock of hours that happens to end at midnight is a moment, not the end of a day
    midnight = _incident(
        [
            _d("open", "2026-10-22T00:00:00+09:00", regimes=("jp-acd",)),
            _d("recognize", "2026-10-22T00:00:00+09:00", reasons=("CNI-INCIDENT",)),
        ]
    )
    prompt = _clock(midnight, "jp-acd/prompt", "2026-10-22T01:00:00+09:00")
    assert (prompt.deadline_text(), prompt.last_day) == ("2026-10-23 00:00 JST", None)
    assert by["acd-internal/tickets"].deadline_text() == "2026-10-22 09:30 JST"


# -- the data files ----------------------------------------------------------------------------


REQUIRED = (
    "acd-internal",
    "jp-acd",
    "jp-appi",
    "eu-nis2",
    "eu-dora",
    "eu-gdpr",
    "us-circia",
    "us-sec-8k",
    "in-certin",
)


def test_the_regimes_the_issue_requires_are_there_with_sources() -> None:
    for rid in REQUIRED:
        regime = BOOK.regime(rid)
        assert regime.source and isinstance(regime.verified, bool)
        assert regime.stages
    internal = BOOK.regime("acd-internal")
    assert [s.id for s in internal.stages] == ["severity-isolate", "tickets", "summary"]
    assert {s.basis for s in internal.stages} == {"internal_policy"}
    assert [s.due.count for s in internal.stages] == [3, 30, 180]


def test_reason_codes_are_bilingual_and_name_events_and_evidence() -> None:
    wanted = {
        "ACD-EXTERNAL-OUTER",
        "ACD-EXTERNAL-INBOUND",
        "CNI-INCIDENT",
        "VULN-EXPLOIT",
        "ACD-EXTERNAL-OUTBOUND",
        "RANSOMWARE",
        "DDOS",
        "PERSONAL-DATA",
        "THIRD-PARTY",
        "NOT-REPORTABLE",
    }
    assert wanted <= set(CODES.codes)
    for code in CODES.codes.values():
        assert code.title["ja"] and code.title["en"] and code.description["ja"]
        assert code.evidence_required
    assert CODES.get("CNI-INCIDENT").sets_awareness == ("jp_recognition", "significant_incident")
