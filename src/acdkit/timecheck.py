"""`acdkit timecheck`: how far the local clock is from true time, with the evidence.

Several NTP servers are asked several times (``acdkit.ntp``); the false tickers are voted
out and the truechimers combined (``acdkit.clocksel``).  With a store, the run becomes a
CLOCK entry queued for the next seal (``acdkit.clockentry``), and the newest RFC 3161
anchors of the store give an authenticated bound to show beside the NTP result: NTP
replies are not signed, a TSA's genTime is.
"""

from __future__ import annotations

import logging
import math
import os
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from acdkit import __version__, logentries
from acdkit.clockentry import ClockRecord
from acdkit.clocksel import Selection, ServerSamples, select
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
    "MAX_DRIFT_S",
    "MAX_WAIT_S",
    "TimecheckReport",
    "drift_ns",
    "timecheck",
]

log = logging.getLogger(__name__)

DEFAULT_SAMPLES = 4
DEFAULT_INTERVAL_S = 1.0  # between two requests to one server: public servers rate-limit
DEFAULT_TIMEOUT_S = 2.0
DEFAULT_MIN_AGREE = 3  # a false ticker can only be outvoted by two others
DEFAULT_MAX_DRIFT_NS = 1_000_000_000
MAX_SERVERS, MAX_SAMPLES = 64, 16
# a cron job must end: no request waits, and no pause lasts, longer than this
MAX_WAIT_S = 60.0
MAX_DRIFT_S = 86_400  # a limit beyond a day proves nothing about the clock
# the measurement is taken already when the lock is wanted: wait out a long seal
LOCK_WAIT_S = 120.0


@dataclass
class TimecheckReport:
    record: ClockRecord
    selection: Selection  # recomputed, with its reason
    drift_source: str  # --max-drift | trust policy N | default
    queued: Path | None = None  # the CLOCK entry waiting in pending/
    anchored: AnchoredBound | None = None  # the newest authenticated bound, if any
    warnings: list[str] = field(default_factory=list)
    not_queued: AcdkitError | None = None  # why the CLOCK entry could not be queued

    @property
    def exit_code(self) -> ExitCode:
        """The measurement's verdict, or IO when its CLOCK entry could not be written."""
        if self.not_queued is not None:
            return ExitCode.IO
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
    """Ask the servers, select and combine, and (with a store) queue the CLOCK entry.

    A CLOCK entry that cannot be queued once measured is reported (``not_queued``), not
    raised, so that the measurement is still shown; a store that cannot be written at all
    is refused before any server is asked.
    """
    _check_arguments(specs, samples, min_agree, interval, timeout)
    warnings: list[str] = []
    drift, source = _drift_limit(max_drift_ns, store, warnings)
    if store is not None:
        _check_writable(store)
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
    report.warnings += _same_servers(measured)
    if store is not None:
        try:
            report.queued = _queue(store, record)
        except AcdkitError as exc:
            report.not_queued = exc
        except OSError as exc:
            report.not_queued = InputIOError(f"{exc.strerror or exc}: {exc.filename or ''}")
        try:
            report.anchored = newest_anchored_bound(store)
        except AcdkitError as exc:
            # the measurement is queued already; a damaged log is for `verify` to report
            report.warnings.append(f"the store's anchors could not be read: {exc.message}")
    return report


def drift_ns(seconds: float) -> int:
    """--max-drift in ns, refused unless a finite number of seconds within 0..MAX_DRIFT_S."""
    if not (math.isfinite(seconds) and 0 <= seconds <= MAX_DRIFT_S):
        raise UsageError(f"--max-drift must be a number of seconds from 0 to {MAX_DRIFT_S:,}")
    return round(seconds * 1_000_000_000)


def _check_arguments(
    specs: Sequence[ServerSpec], samples: int, min_agree: int, interval: float, timeout: float
) -> None:
    if not specs:
        raise UsageError(
            "no NTP server is configured",
            hint="pass --server HOST[:PORT] (three or more), set ACDKIT_NTP_SERVERS, or "
            "list servers under [timecheck] in the config file",
        )
    if len(specs) > MAX_SERVERS:
        raise UsageError(f"at most {MAX_SERVERS} NTP servers can be asked in one run")
    first: dict[tuple[str, int], str] = {}
    for spec in specs:
        if spec.key in first:
            # one server twice would cast two votes in the intersection
            same = "" if first[spec.key] == spec.name else f" (as {first[spec.key]})"
            raise UsageError(f"NTP server {spec.name} is given twice{same}")
        first[spec.key] = spec.name
    if not 1 <= samples <= MAX_SAMPLES:
        raise UsageError(f"--samples must be 1 to {MAX_SAMPLES}")
    if not 1 <= min_agree <= MAX_SERVERS:
        raise UsageError(f"--min-agree must be 1 to {MAX_SERVERS}")
    if not (math.isfinite(interval) and 0 <= interval <= MAX_WAIT_S):
        raise UsageError(f"--interval must be a number of seconds from 0 to {MAX_WAIT_S:g}")
    if not (math.isfinite(timeout) and 0.01 <= timeout <= MAX_WAIT_S):
        raise UsageError(f"--timeout must be a number of seconds from 0.01 to {MAX_WAIT_S:g}")


def _same_servers(measured: Sequence[ServerSamples]) -> list[str]:
    """Two names that resolved to one address and port: that server votes twice."""
    seen: dict[tuple[str, int], str] = {}
    out = []
    for server in measured:
        if server.address is None:
            continue
        where = (server.address, server.port)
        if where in seen:
            out.append(
                f"{seen[where]} and {server.name} are one server ({server.address} port "
                f"{server.port}): its answer counts twice in the vote"
            )
        else:
            seen[where] = server.name
    return out


def _check_writable(store: Store) -> None:
    """Refuse a store that cannot take the CLOCK entry before the servers are asked."""
    try:
        # opened as Store.lock opens it, but not locked: a seal starting now must not fail
        os.close(os.open(store.root / ".lock", os.O_RDWR | os.O_CREAT, 0o600))
    except OSError as exc:
        raise InputIOError(
            f"cannot write to the store {store.root} ({exc.strerror or exc}); nothing was measured",
            hint="run timecheck as the store's owner, or without STORE to measure only",
        ) from None
    pending = store.pending if store.pending.is_dir() else store.root
    if not os.access(pending, os.W_OK):
        raise InputIOError(
            f"cannot write to {pending} (where the CLOCK entry goes); nothing was measured",
            hint="run timecheck as the store's owner, or without STORE to measure only",
        )


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
    told = False
    while True:
        try:
            with store.lock():
                return logentries.add_pending(store, EntryType.CLOCK, record.body())
        except InputIOError:
            if time.monotonic() > deadline:
                raise
            if not told:
                log.warning(
                    "another acdkit process is writing to %s: waiting up to %g s to queue "
                    "the CLOCK entry",
                    store.root,
                    LOCK_WAIT_S,
                )
                told = True
            time.sleep(0.5)


def newest_anchored_bound(store: Store) -> AnchoredBound | None:
    """The bound of the newest anchored checkpoint, sealed or waiting for the next seal."""
    entries = [*sealed_log_entries(store), *pending_log_entries(store)]
    bounds = anchored_bounds(anchor_records(entries))
    return max(bounds, key=lambda b: (b.checkpoint_size, b.at_ns)) if bounds else None
