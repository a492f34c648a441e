"""Rebuild sealed records into leaf hashes, on every core, and say whether they all match.

`verify` reads each sealed Parquet file in spans of whole row groups.  A span is checked
where it is read, in a worker process when the segment is large: its log indices, its
records rebuilt into salted leaves and compared with the stored integrity hashes, and the
roots of the aligned subtrees over those leaves.  Only the roots travel back, so memory
stays at one chunk of rows per worker whatever the size of the store, and the parent does
little more than extend the tree.

A span that does not check out only names the first row it suspects.  `verify` then finds
and reports the failure itself, in order, from that row's batch on: the report (which check,
which record, expected and actual hash) is the same whether one process or many did the work.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from acdkit import leaves, schema
from acdkit._pool import in_order, keep_freed_memory, process_pool
from acdkit.encoding import record_leaf_hashes, record_salts
from acdkit.errors import InputIOError
from acdkit.merkle import range_subtrees

__all__ = ["Checked", "Checker", "Span", "check_span", "file_sha256", "sealed_problem", "spans"]

SPAN_ROWS = 32_768  # a span is whole row groups, at least this many rows (or the rest)
CHUNK_ROWS = 65_536  # rows rebuilt at a time within a span: bounds a worker's memory


@dataclass(frozen=True)
class Span:
    """Rows [start, stop) of one sealed table file: its row groups ``row_groups``."""

    path: str
    table: str
    row_groups: tuple[int, ...]
    start: int
    stop: int
    segment_key: bytes
    position: int  # position within the segment of row ``start``
    begin: int  # global log index of row ``start``
    dictionaries: tuple[str, ...] = ()  # text columns to read as Arrow dictionaries


@dataclass(frozen=True)
class Checked:
    """What a span's check found: the roots of its subtrees, or the first suspect row."""

    subtrees: list[tuple[int, bytes]]
    suspect: int | None = None  # row of the file; everything before it checked out


PLAIN_TEXT = frozenset({"session_id"})  # as seal._sealed_writer stores them


def spans(path: Path, table: str, key: bytes, begin: int, position: int) -> list[Span]:
    """Spans of whole row groups covering the file; ``begin``, ``position``: those of row 0.

    Reads the Parquet footer only; pyarrow's errors for an unreadable file pass through.
    """
    meta = pq.ParquetFile(path).metadata
    text = {f.name for f in schema.load(table).fields if f.arrow_type == pa.string()}
    out: list[Span] = []
    groups: list[int] = []
    start = stop = 0
    for number in range(meta.num_row_groups):
        groups.append(number)
        stop += meta.row_group(number).num_rows
        if stop - start >= SPAN_ROWS or number == meta.num_row_groups - 1:
            dictionaries = _dictionary_columns(text)
            out.append(
                Span(str(path), table, tuple(groups), start, stop, key, position + start,
                     begin + start, dictionaries)
            )  # fmt: skip
            groups, start = [], stop
    return out


def _dictionary_columns(text: set[str]) -> tuple[str, ...]:
    """Text columns to read as dictionaries: each value is then decoded (and encoded) once,
    not once per row.  They are those `seal` writes with dictionaries (all text but the
    per-connection ids), chosen by name: the column-chunk metadata of a damaged footer can
    abort the whole process inside Arrow when it is read, so it is not read at all."""
    return tuple(sorted(text - PLAIN_TEXT))


def sealed_problem(batch: pa.RecordBatch, sealed: pa.Schema) -> str | None:
    """Why a batch read from a sealed Parquet file does not hold the sealed columns, or None.

    Every column must have its sealed type (a text column may be read as a dictionary of
    text), and text must be UTF-8: Parquet readers do not check it, and the encoders that
    parse text (addresses, hex) would fail on it.
    """
    for f in sealed:
        if f.name not in batch.schema.names:
            return f"no column {f.name}"
        got = batch.schema.field(f.name).type
        if got != f.type and not (pa.types.is_dictionary(got) and got.value_type == f.type):
            return f"column {f.name} is {got}, sealed as {f.type}"
    try:
        batch.validate(full=True)
    except pa.ArrowInvalid as exc:
        return str(exc)
    return None


def check_span(span: Span) -> Checked:
    """Rebuild a span's records and compare them with what was sealed (run by a worker)."""
    try:
        return _check(span)
    except Exception:  # whatever it is, the in-order check meets it again and reports it
        return Checked([], span.start)


def _check_in_worker(span: Span) -> Checked:
    _tune_worker()
    return check_span(span)


@functools.cache
def _tune_worker() -> None:
    """Once per worker process (never in the parent, which may be someone's program)."""
    keep_freed_memory()


def _check(span: Span) -> Checked:
    ts = schema.load(span.table)
    found: list[bytes] = []
    row = span.start
    reader = pq.ParquetFile(span.path, read_dictionary=span.dictionaries)
    sealed = ts.sealed_arrow()
    for batch in reader.iter_batches(CHUNK_ROWS, row_groups=span.row_groups, use_threads=False):
        if sealed_problem(batch, sealed) is not None:
            return Checked([], row)  # the in-order check reports it
        n = batch.num_rows
        suspect = _first_wrong_index(batch, span.begin + row - span.start)
        salts = record_salts(span.segment_key, span.position + row - span.start, n)
        try:
            rebuilt = _rebuilt(batch, ts, salts)
        except Exception:  # a record that cannot be encoded
            return Checked([], row)
        wrong = _first_wrong_leaf(batch, rebuilt)
        if suspect is not None or wrong is not None:
            return Checked([], row + min(x for x in (suspect, wrong) if x is not None))
        found.append(rebuilt)
        row += n
    if row != span.stop:  # the row groups hold other rows than the footer said
        return Checked([], min(row, span.stop))
    return Checked(range_subtrees(span.begin, b"".join(found)))


def _rebuilt(batch: pa.RecordBatch, ts: schema.TableSchema, salts: bytes) -> bytes:
    try:
        return record_leaf_hashes(batch, ts, salts)
    except Exception:
        # a dictionary may hold a value that no row of this batch uses: only rows count
        plain = [c.dictionary_decode() if pa.types.is_dictionary(c.type) else c
                 for c in batch.columns]  # fmt: skip
        batch = pa.RecordBatch.from_arrays(plain, batch.schema.names)
        return record_leaf_hashes(batch, ts, salts)


def _first_wrong_index(batch: pa.RecordBatch, index: int) -> int | None:
    got = batch.column("log_index").cast(pa.uint64())
    if got.null_count:
        return int(np.flatnonzero(~got.is_valid().to_numpy(zero_copy_only=False))[0])
    bad = np.flatnonzero(got.to_numpy() != np.arange(index, index + len(got), dtype=np.uint64))
    return int(bad[0]) if len(bad) else None


def _first_wrong_leaf(batch: pa.RecordBatch, rebuilt: bytes) -> int | None:
    stored = batch.column("integrity_hash").cast(pa.binary(32))
    if stored.null_count:
        return int(np.flatnonzero(~stored.is_valid().to_numpy(zero_copy_only=False))[0])
    view = np.frombuffer(stored.buffers()[1], np.uint8, 32 * len(stored), 32 * stored.offset)
    if view.tobytes() == rebuilt:  # one comparison of the whole batch, the usual outcome
        return None
    mine = np.frombuffer(rebuilt, np.uint8)
    return int(np.flatnonzero((view != mine).reshape(-1, 32).any(axis=1))[0])


def file_sha256(path: str) -> str:
    """Hex SHA-256 of a file, streamed."""
    try:
        with Path(path).open("rb") as fh:
            return hashlib.file_digest(fh, "sha256").hexdigest()
    except OSError as exc:
        raise InputIOError(f"cannot read {path}: {exc.strerror}") from None


class Checker:
    """Checks spans in order: in worker processes for large segments, else in this one."""

    def __init__(self, records: int) -> None:
        # the same threshold and worker count as sealing: one knob for both
        workers = leaves.worker_count()
        self._workers = workers if records >= leaves.POOL_THRESHOLD else 1
        self._pool: ProcessPoolExecutor | None = None

    def __enter__(self) -> Checker:
        if self._workers > 1:
            # forked: workers inherit the loaded modules, and die with this process
            self._pool = process_pool(self._workers)
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._pool is not None:
            # after a failure the spans still queued are not worth checking
            self._pool.shutdown(wait=True, cancel_futures=kind is not None)

    def file_sha256(self, path: Path) -> Callable[[], str]:
        """The SHA-256 of a file, as a call that returns it (or raises), computed meanwhile
        by a worker if there are any: a file of a large segment takes a while to hash."""
        if self._pool is None:
            return lambda: file_sha256(str(path))
        return self._pool.submit(file_sha256, str(path)).result

    def run(self, work: Iterable[Span]) -> Iterator[tuple[Span, Checked]]:
        """Yield each span with its result, in the order given."""
        if self._pool is None:
            for span in work:
                yield span, check_span(span)
            return
        yield from in_order(self._pool, _check_in_worker, work, 2 * self._workers)
