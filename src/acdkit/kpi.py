"""Key performance indicators over every incident of a store (definitions in the README).

All values are computed from the decisions that had taken effect by the reference moment,
in whole seconds; a measure with nothing to measure is None, never 0.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from acdkit.clocks import LATE, MET, OVERDUE, evaluate
from acdkit.incident import AUDIT_LINE, Incident, from_ns
from acdkit.reasons import ReasonCodes
from acdkit.regimes import RegimeBook

__all__ = ["KPI_SCHEMA", "KpiReport", "Share", "compute"]

KPI_SCHEMA = "acdkit-kpi/1"
INTERNAL_T30 = "acd-internal/tickets"
INTERNAL_T180 = "acd-internal/summary"


@dataclass
class Share:
    met: int = 0
    due: int = 0

    @property
    def ratio(self) -> float | None:
        return round(self.met / self.due, 4) if self.due else None

    def to_json(self) -> dict[str, Any]:
        return {"met": self.met, "due": self.due, "ratio": self.ratio}


@dataclass
class KpiReport:
    at: datetime
    incidents: int = 0
    closed: int = 0
    mttd_s: float | None = None
    mttc_s: float | None = None
    mttr_s: float | None = None
    sla: dict[str, Share] = field(default_factory=dict)
    sla_internal: Share = field(default_factory=Share)
    sla_statutory: Share = field(default_factory=Share)
    audit_line: Share = field(default_factory=Share)
    recognition_to_bundle_median_s: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "schema_version": KPI_SCHEMA,
            "at": self.at.isoformat().replace("+00:00", "Z"),
            "incidents": self.incidents,
            "closed": self.closed,
            "mttd_seconds": self.mttd_s,
            "mttc_seconds": self.mttc_s,
            "mttr_seconds": self.mttr_s,
            "sla_t30": self.sla.get(INTERNAL_T30, Share()).to_json(),
            "sla_t180": self.sla.get(INTERNAL_T180, Share()).to_json(),
            "sla_internal": self.sla_internal.to_json(),
            "sla_statutory": self.sla_statutory.to_json(),
            "sla_by_stage": {k: v.to_json() for k, v in sorted(self.sla.items())},
            "audit_line_completion": self.audit_line.to_json(),
            "recognition_to_verified_bundle_median_seconds": self.recognition_to_bundle_median_s,
        }


def _seconds(later: datetime, earlier: datetime) -> float:
    return (later - earlier).total_seconds()


def _mean(values: list[float]) -> float | None:
    return round(statistics.fmean(values), 3) if values else None


def compute(
    incidents: dict[str, Incident], book: RegimeBook, codes: ReasonCodes, now: datetime
) -> KpiReport:
    """MTTD, MTTC, MTTR, report-SLA shares, audit-line completion and the median time from
    recognition to a verified bundle, over the incidents opened by ``now``."""
    report = KpiReport(now)
    detect: list[float] = []
    contain: list[float] = []
    recover: list[float] = []
    bundled: list[float] = []
    for whole in incidents.values():
        inc = whole.until(now)
        opened = inc.opened
        if opened is None:
            continue
        report.incidents += 1
        detected = from_ns(opened.at_ns)
        if opened.observed_ns is not None:
            detect.append(_seconds(detected, from_ns(opened.observed_ns)))
        for values, actions in ((contain, ("isolate", "contain")), (recover, ("recover",))):
            done = inc.first(*actions)
            if done is not None:
                values.append(_seconds(from_ns(done.at_ns), detected))
        lag = _recognition_to_bundle(inc)
        if lag is not None:
            bundled.append(lag)
        _stages(report, inc, book, codes, now)
        if inc.closed is not None:
            report.closed += 1
            report.audit_line.due += 1
            report.audit_line.met += _audit_line_complete(inc)
    report.mttd_s, report.mttc_s, report.mttr_s = _mean(detect), _mean(contain), _mean(recover)
    report.recognition_to_bundle_median_s = (
        round(statistics.median(bundled), 3) if bundled else None
    )
    return report


def _stages(
    report: KpiReport, inc: Incident, book: RegimeBook, codes: ReasonCodes, now: datetime
) -> None:
    """A stage counts once its deadline has passed or it was done: met, late or overdue."""
    for clock in evaluate(inc, book, codes, now):
        if clock.state not in (MET, LATE, OVERDUE):
            continue
        met = clock.state == MET
        for share in (
            report.sla.setdefault(clock.key, Share()),
            report.sla_statutory if clock.stage.statutory else None,
            report.sla_internal if clock.stage.basis == "internal_policy" else None,
        ):
            if share is not None:
                share.due += 1
                share.met += met


def _audit_line_complete(inc: Incident) -> bool:
    waived = {ref for d in inc.all("not-applicable") for ref in d.stages}
    return all(step in waived or inc.first(*acts) for step, acts in AUDIT_LINE.items())


def _recognition_to_bundle(inc: Incident) -> float | None:
    recognized = inc.first("recognize") or inc.opened
    bundled = next(
        (d for d in inc.all("package", "submit") if any(r.startswith("bundle:") for r in d.refs)),
        None,
    )
    if recognized is None or bundled is None:
        return None
    return _seconds(from_ns(bundled.at_ns), from_ns(recognized.at_ns))
