"""Sensor clocks: what the event times of one ingested file say about each sensor's clock.

After a file is staged and before it is committed, its staged rows are read back (four
columns, memory-mapped) in file order, all tables merged by line, and compared per sensor
with the collector's clock at ingest and with each other (evidence-format §15.7):

- ``future``: events later than the collector's clock by more than the tolerance;
- ``before_1990``: times before 1990, a relative or unset clock;
- ``jump_back`` / ``jump_forward``: a step of more than the jump threshold between two
  consecutive events of the sensor (a clock stepped, a zone applied to some records only,
  or, forwards, a long quiet period);
- ``out_of_order``: events more than the reorder window behind the latest earlier event
  of the sensor, counted with the number of bursts (runs) they come in.

Flows are ordered by when they ended (``ts_utc + duration_ns``): sensors write a flow
when it ends, so a long flow's start time is behind its neighbours by nature.  The work is
vectorized: numpy over each batch, one small loop over the sensors a batch holds.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from acdkit import schema

__all__ = [
    "FUTURE_TOLERANCE_NS",
    "JUMP_NS",
    "REORDER_NS",
    "Limits",
    "SensorClock",
    "analyze_staged",
    "describe",
    "describe_json",
]

NS = 1_000_000_000
FUTURE_TOLERANCE_NS = 10 * NS  # as the tolerance between genTime and the collector (§12.4)
JUMP_NS = 3600 * NS
# Zeek writes a connection after its inactivity timeout (5 min for TCP): twice that
REORDER_NS = 600 * NS
TS_1990_NS = 631_152_000 * NS
UNNAMED = ""  # records that name no sensor (and no --sensor was given)
KINDS = ("future", "before_1990", "jump_back", "jump_forward", "out_of_order")


@dataclass
class SensorClock:
    """What one sensor's events in one file show about its clock."""

    sensor: str
    records: int = 0
    ts_min_ns: int | None = None
    ts_max_ns: int | None = None
    counts: dict[str, int] = field(default_factory=dict)  # per finding kind
    worst_ns: dict[str, int] = field(default_factory=dict)  # how far ahead, back, behind
    worst_line: dict[str, int] = field(default_factory=dict)  # where the worst one is
    bursts: int = 0  # runs of out-of-order events
    # carried from one batch to the next
    last_ns: int | None = None
    latest_ns: int | None = None
    in_burst: bool = False

    def note(self, kind: str, count: int, worst: int, line: int) -> None:
        if not count:
            return
        self.counts[kind] = self.counts.get(kind, 0) + count
        if kind not in self.worst_ns or worst > self.worst_ns[kind]:
            self.worst_ns[kind], self.worst_line[kind] = worst, line

    def to_json(self) -> dict[str, Any]:
        return {
            "sensor": self.sensor or None,
            "records": self.records,
            "ts_min_ns": self.ts_min_ns,
            "ts_max_ns": self.ts_max_ns,
            "findings": {
                kind: {
                    "records": self.counts[kind],
                    "worst_ns": self.worst_ns[kind],
                    "line": self.worst_line[kind],
                    **({"bursts": self.bursts} if kind == "out_of_order" else {}),
                }
                for kind in KINDS
                if kind in self.counts
            },
        }


def _columns(batch: pa.RecordBatch, table: str) -> tuple[np.ndarray, ...]:
    """(line, event time, order time, sensor) of a staged batch, as numpy arrays."""
    line = batch.column("src_line").cast(pa.int64()).fill_null(0).to_numpy()
    ts = batch.column("ts_utc").cast(pa.int64()).fill_null(0).to_numpy()
    order = ts
    if table == "net":
        order = ts + batch.column("duration_ns").fill_null(0).to_numpy()
    sensor = batch.column("sensor_id").fill_null(UNNAMED).to_numpy(zero_copy_only=False)
    return line, ts, order, sensor


def _table_batches(directory: Path, table: str) -> Iterator[tuple[np.ndarray, ...]]:
    wanted = ["src_line", "ts_utc", "sensor_id"] + (["duration_ns"] if table == "net" else [])
    for path in sorted(directory.glob(f"{table}.*.arrow")):
        with pa.memory_map(str(path)) as source:
            reader = pa.ipc.open_file(source)
            for i in range(reader.num_record_batches):
                batch = reader.get_batch(i).select(wanted)
                if batch.num_rows:
                    yield _columns(batch, table)


def _in_line_order(directory: Path) -> Iterator[tuple[np.ndarray, ...]]:
    """Rows of every table, merged by line in windows: each table's rows come in line order,
    so rows up to the least last line of the tables still being read can go out."""
    sources = {t: _table_batches(directory, t) for t in schema.TABLES}
    held: dict[str, tuple[np.ndarray, ...]] = {}
    while sources or held:
        for table in list(sources):
            if table not in held:
                try:
                    held[table] = next(sources[table])
                except StopIteration:
                    del sources[table]
        if not held:
            return
        open_lines = [int(held[t][0][-1]) for t in held if t in sources]
        bound = min(open_lines) if open_lines else None
        parts = []
        for table in list(held):
            cols = held[table]
            cut = len(cols[0]) if bound is None else int(np.searchsorted(cols[0], bound, "right"))
            parts.append(tuple(c[:cut] for c in cols))
            if cut == len(cols[0]):
                del held[table]
            else:
                held[table] = tuple(c[cut:] for c in cols)
        merged = tuple(np.concatenate([p[i] for p in parts]) for i in range(4))
        order = np.argsort(merged[0], kind="stable")
        yield tuple(c[order] for c in merged)


@dataclass(frozen=True)
class Limits:
    tolerance_ns: int = FUTURE_TOLERANCE_NS
    jump_ns: int = JUMP_NS
    reorder_ns: int = REORDER_NS


def _observe(
    clock: SensorClock,
    line: np.ndarray,
    ts: np.ndarray,
    t: np.ndarray,
    now_ns: int,
    limits: Limits,
) -> None:
    """Fold one sensor's rows (in line order) into its findings."""
    clock.records += len(ts)
    lo, hi = int(ts.min()), int(ts.max())
    clock.ts_min_ns = lo if clock.ts_min_ns is None else min(clock.ts_min_ns, lo)
    clock.ts_max_ns = hi if clock.ts_max_ns is None else max(clock.ts_max_ns, hi)

    ahead = ts - now_ns
    mask = ahead > limits.tolerance_ns
    _note(clock, "future", mask, ahead, line)
    early = ts < TS_1990_NS
    _note(clock, "before_1990", early, TS_1990_NS - ts, line)

    previous = np.concatenate([[clock.last_ns if clock.last_ns is not None else t[0]], t[:-1]])
    step = t - previous
    _note(clock, "jump_back", step < -limits.jump_ns, -step, line)
    _note(clock, "jump_forward", step > limits.jump_ns, step, line)

    start = t[0] if clock.latest_ns is None else max(clock.latest_ns, int(t[0]))
    latest_before = np.maximum.accumulate(np.concatenate([[start], t[:-1]]))
    behind = latest_before - t
    late = behind > limits.reorder_ns
    _note(clock, "out_of_order", late, behind, line)
    starts = late & ~np.concatenate([[clock.in_burst], late[:-1]])
    clock.bursts += int(starts.sum())

    clock.last_ns, clock.latest_ns = int(t[-1]), max(int(latest_before[-1]), int(t[-1]))
    clock.in_burst = bool(late[-1])


def _note(
    clock: SensorClock, kind: str, mask: np.ndarray, size: np.ndarray, line: np.ndarray
) -> None:
    count = int(mask.sum())
    if count:
        at = int(np.argmax(np.where(mask, size, np.iinfo(np.int64).min)))
        clock.note(kind, count, int(size[at]), int(line[at]))


def analyze_staged(directory: Path, now_ns: int, limits: Limits | None = None) -> list[SensorClock]:
    """Per sensor (by name, sorted), what the staged rows of one file show of its clock."""
    limits = limits or Limits()
    clocks: dict[str, SensorClock] = {}
    for line, ts, t, sensor in _in_line_order(directory):
        names = pc.unique(pa.array(sensor, pa.string())).to_pylist()
        for name in names:
            rows = sensor == name
            clock = clocks.setdefault(name, SensorClock(name))
            _observe(clock, line[rows], ts[rows], t[rows], now_ns, limits)
    return [clocks[name] for name in sorted(clocks)]


def describe_json(found: dict[str, Any]) -> list[str]:
    """``describe`` of a clock as ``SensorClock.to_json`` wrote it (a ledger entry, a report)."""
    clock = SensorClock(found.get("sensor") or UNNAMED)
    for kind, f in found.get("findings", {}).items():
        clock.note(kind, int(f["records"]), int(f["worst_ns"]), int(f["line"]))
        clock.bursts = int(f.get("bursts", clock.bursts))
    return describe(clock)


def describe(clock: SensorClock) -> list[str]:
    """One sentence per finding, for the ingest output and the summary."""
    who = f"sensor {clock.sensor}" if clock.sensor else "the unnamed sensor"
    out = []
    words = {
        "future": ("event", "later than the collector's clock, by up to"),
        "before_1990": ("event", "dated before 1990 (a relative or unset clock),"),
        "jump_back": ("step", "back in time between consecutive events, the largest"),
        "jump_forward": ("step", "forward in time between consecutive events, the largest"),
        "out_of_order": ("event", "behind earlier ones, by up to"),
    }
    for kind in KINDS:
        if kind not in clock.counts:
            continue
        worst = (
            f"the earliest at {_iso(TS_1990_NS - clock.worst_ns[kind])}"
            if kind == "before_1990"
            else _span(clock.worst_ns[kind])
        )
        count, (noun, rest) = clock.counts[kind], words[kind]
        plural = "" if count == 1 else "s"
        text = f"{who}: {count:,} {noun}{plural} {rest} {worst} (line {clock.worst_line[kind]:,})"
        if kind == "out_of_order":
            text += f", in {clock.bursts:,} burst{'' if clock.bursts == 1 else 's'}"
        out.append(text)
    return out


def _iso(ns: int) -> str:
    moment = datetime.fromtimestamp(ns // NS, UTC).replace(microsecond=(ns % NS) // 1000)
    return moment.isoformat().replace("+00:00", "Z")


def _span(ns: int) -> str:
    seconds = ns / NS
    if seconds >= 86_400 * 365:
        return f"{seconds / (86_400 * 365.25):,.1f} years"
    if seconds >= 86_400:
        return f"{seconds / 86_400:,.1f} days"
    if seconds >= 3600:
        return f"{seconds / 3600:,.2f} h"
    return f"{seconds:,.3f} s"
