"""`acdkit timecheck`: how far the local clock is from true time, with the evidence.

Several NTP servers are asked several times (``acdkit.ntp``); the false tickers are voted
out and the truechimers combined (``acdkit.clocksel``).  With a store, the run becomes a
CLOCK entry queued for the next seal (``acdkit.clockentry``), and the newest RFC 3161
anchors of the store give an authenticated bound to show beside the NTP result: NTP
replies are not signed, a TSA's genTime is.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from acdkit import __version__, logentries
from acdkit.clockentry import ClockRecord
from acdkit.clocksel import Selection, select
from acdkit.clockstate import (
    AnchoredBound,
    anchor_records,
    anchored_bounds,
    pending_log_entries,
    sealed_log_entries,
)
from acdkit.encoding import EntryType
from acdkit.errors import AcdkitError, ExitCode, InputIOError, UsageError
from acdkit.ntp import ProgressFn, ServerSpec, local_precision_ns, query_servers
from acdkit.policy import load_policy
from acdkit.store import Store

__all__ = [
    "DEFAULT_INTERVAL_S",
    "DEFAULT_MAX_DRIFT_NS",
    "DEFAULT_MIN_AGREE",
    "DEFAULT_SAMPLES",
    "DEFAULT_TIMEOUT_S",
    "TimecheckReport",
    "timecheck",
]

DEFAULT_SAMPLES = 4
DEFAULT_INTERVAL_S = 1.0  # between two requests to one server: public servers rate-limit
DEFAULT_TIMEOUT_S = 2.0
DEFAULT_MIN_AGREE = 3  # a false ticker can only be outvoted by two others
DEFAULT_MAX_DRIFT_NS = 1_000_000_000
MAX_SERVERS, MAX_SAMPLES = 64, 16
LOCK_WAIT_S = 30.0


@dataclass
class TimecheckReport:
    record: ClockRecord
    selection: Selection  # recomputed, with its reason
    drift_source: str  # --max-drift | trust policy N | default
    queued: Path | None = None  # the CLOCK entry waiting in pending/
    anchored: AnchoredBound | None = None  # the newest authenticated bound, if any
    warnings: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> ExitCode:
        return ExitCode[self.selection.verdict]


def timecheck(
    specs: Sequence[ServerSpec],
    *,
    samples: int = DEFAULT_SAMPLES,
    interval: float = DEFAULT_INTERVAL_S,
    timeout: float = DEFAULT_TIMEOUT_S,
    min_agree: int = DEFAULT_MIN_AGREE,
    max_drift_ns: int | None = None,
    store: Store | None = None,
    progress: ProgressFn | None = None,
) -> TimecheckReport:
    """Ask the servers, select and combine, and (with a store) queue the CLOCK entry."""
    _check_arguments(specs, samples, min_agree)
    warnings: list[str] = []
    drift, source = _drift_limit(max_drift_ns, store, warnings)
    began = time.time_ns()
    measured = query_servers(specs, samples, interval, timeout, progress)
    ended = time.time_ns()
    precision = local_precision_ns()
    selection = select(measured, precision, min_agree, drift)
    record = ClockRecord(
        began_ns=began,
        ended_ns=ended,
        min_agree=min_agree,
        max_drift_ns=drift,
        local_precision_ns=precision,
        servers=tuple(measured),
        selection=selection,
        collector=socket.gethostname() or "-",
        tool=f"acdkit {__version__}",
    )
    report = TimecheckReport(record, selection, source, warnings=warnings)
    if min_agree > len(specs):
        report.warnings.append(
            f"--min-agree {min_agree} is more than the {len(specs)} servers given: the "
            "check cannot pass"
        )
    for server, result in zip(measured, selection.servers, strict=True):
        if result.leap in (1, 2):
            kind = "insertion" if result.leap == 1 else "deletion"
            report.warnings.append(
                f"{server.name} announces a leap second {kind} at the end of the day "
                f"({result.result})"
            )
    if store is not None:
        report.queued = _queue(store, record)
        try:
            report.anchored = newest_anchored_bound(store)
        except AcdkitError as exc:
            # the measurement is queued already; a damaged log is for `verify` to report
            report.warnings.append(f"the store's anchors could not be read: {exc.message}")
    return report


def _check_arguments(specs: Sequence[ServerSpec], samples: int, min_agree: int) -> None:
    if not specs:
        raise UsageError(
            "no NTP server is configured",
            hint="pass --server HOST[:PORT] (three or more), set ACDKIT_NTP_SERVERS, or "
            "list servers under [timecheck] in the config file",
        )
    if len(specs) > MAX_SERVERS:
        raise UsageError(f"at most {MAX_SERVERS} NTP servers can be asked in one run")
    names = [s.name for s in specs]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise UsageError(f"NTP server {twice[0]} is given twice")
    if not 1 <= samples <= MAX_SAMPLES:
        raise UsageError(f"--samples must be 1 to {MAX_SAMPLES}")
    if min_agree < 1:
        raise UsageError("--min-agree must be at least 1")


def _drift_limit(given: int | None, store: Store | None, warnings: list[str]) -> tuple[int, str]:
    """--max-drift, else the store's trust policy's drift-max-ms, else the default."""
    if given is not None:
        if given < 0:
            raise UsageError("--max-drift cannot be negative")
        return given, "--max-drift"
    if store is not None:
        try:
            loaded = load_policy(store, None)
        except AcdkitError as exc:
            warnings.append(
                f"the store's trust policy could not be read ({exc.message}): the default "
                "drift limit applies; `acdkit verify` tells more"
            )
            loaded = None
        if loaded is not None and loaded.policy.drift_max_ms is not None:
            return loaded.policy.drift_max_ms * 1_000_000, f"trust policy {loaded.policy.serial}"
    return DEFAULT_MAX_DRIFT_NS, "default"


def _queue(store: Store, record: ClockRecord) -> Path:
    """Queue the CLOCK entry under the store lock, waiting a while for another writer
    (a seal from the same cron minute) rather than losing the measurement."""
    deadline = time.monotonic() + LOCK_WAIT_S
    while True:
        try:
            with store.lock():
                return logentries.add_pending(store, EntryType.CLOCK, record.body())
        except InputIOError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def newest_anchored_bound(store: Store) -> AnchoredBound | None:
    """The bound of the newest anchored checkpoint, sealed or waiting for the next seal."""
    entries = [*sealed_log_entries(store), *pending_log_entries(store)]
    bounds = anchored_bounds(anchor_records(entries))
    return max(bounds, key=lambda b: (b.checkpoint_size, b.at_ns)) if bounds else None
