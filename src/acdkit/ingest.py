"""Ingest: source files -> staged, minimized machine-information records in the store.

One file at a time, streamed in chunks: detect the format, parse in DuckDB, minimize, write
Parquet into a temporary staging directory, and commit the whole file by one rename, with its
ledger entry inside.  A file already in the ledger is skipped, so re-ingesting is a no-op;
a run killed half way leaves only a temporary directory that the next run removes.
"""

from __future__ import annotations

import contextlib
import errno
import gzip
import hashlib
import logging
import os
import shutil
import time
import zlib
from collections import Counter, deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from stat import S_ISDIR, S_ISFIFO, S_ISREG
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from acdkit import __version__, cmdsig, minimize, schema, skew, sources
from acdkit._pool import process_pool
from acdkit.errors import AcdkitError, InputIOError, MalformedError, UsageError
from acdkit.sources._lines import (
    HashingReader,
    LineChunk,
    RawChunk,
    TruncatedInput,
    content_head,
    open_source,
    read_raw,
)
from acdkit.sources._sql import sql_quote
from acdkit.sources.aws_vpc import parse_field_list
from acdkit.staged import load_staged, read_staged, staged_batches, staged_ledger_id
from acdkit.store import Store, fsync_dir, write_json

__all__ = [
    "FileResult",
    "IngestReport",
    "Options",
    "ingest",
    "load_staged",
    "read_staged",
    "staged_batches",
    "staged_ledger_id",
]

log = logging.getLogger(__name__)

ProgressFn = Callable[[str, int, int], None]  # (file name, bytes done, bytes total)


@dataclass
class FileResult:
    path: str
    sha256: str
    status: str  # ingested | already ingested | failed
    format: str | None = None
    lines: int = 0
    records: dict[str, int] = field(default_factory=dict)
    skipped: int = 0
    rejected: int = 0
    skip_reasons: dict[str, int] = field(default_factory=dict)
    reject_reasons: dict[str, int] = field(default_factory=dict)
    ts_min_ns: int | None = None
    ts_max_ns: int | None = None
    warnings: list[str] = field(default_factory=list)
    error: str | None = None
    exit_code: int = 0
    signatures: int = 0  # records with a command signature
    sig_key_id: str | None = None  # the key they were made with
    clock_skew: list[dict[str, Any]] = field(default_factory=list)  # per sensor (acdkit.skew)

    @property
    def record_count(self) -> int:
        return sum(self.records.values())

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class IngestReport:
    files: list[FileResult]
    seconds: float
    # the organization's signature key, when this run had to create it (a notice is due)
    sig_key_created: str | None = None

    @property
    def records(self) -> int:
        return sum(f.record_count for f in self.files)


def sha256_file(path: Path) -> tuple[str, int]:
    h = hashlib.sha256()
    size = 0
    with path.open("rb") as fh:
        while block := fh.read(1 << 20):
            h.update(block)
            size += len(block)
    return h.hexdigest(), size


@dataclass(frozen=True)
class Options:
    """What the user said about the input, passed to every parser (see `sources.Context`)."""

    sensor: str | None = None
    assume_tz: str | None = None
    year: int | None = None
    aws_fields: tuple[str, ...] | None = None
    date_order: str | None = None

    def context(
        self, con: duckdb.DuckDBPyConnection, mtime_ns: int | None = None
    ) -> sources.Context:
        return sources.Context(
            con,
            self.sensor,
            self.assume_tz,
            self.year,
            self.aws_fields,
            date_order=self.date_order,
            mtime_ns=mtime_ns,
        )


def _connect(threads: int | None = None) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect(":memory:")
    con.execute("SET TimeZone = 'UTC'")
    if threads:
        con.execute(f"SET threads = {int(threads)}")
    return con


class _LazyConnection:
    """One DuckDB connection for every record-format file of a run, opened on first use.

    Opening a connection costs about as much as reading a small EVTX file; a collector
    that ingests many small files pays it once.
    """

    def __init__(self) -> None:
        self._con: duckdb.DuckDBPyConnection | None = None

    def get(self) -> duckdb.DuckDBPyConnection:
        if self._con is None:
            self._con = _connect()
        return self._con

    def close(self) -> None:
        if self._con is not None:
            self._con.close()


@dataclass
class _Staged:
    """One chunk, parsed and minimized: staged rows per table, reject and skip lines.

    A pool worker writes its rows itself and sends back only ``written``: per table the
    record count, the time range and how many records carry a command signature.
    """

    tables: dict[str, pa.Table]
    rejects: list[pa.Table]
    skips: list[pa.Table]
    written: dict[str, tuple[int, int, int, int]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def _summarize(table: str, rows: pa.Table) -> tuple[int, int, int, int]:
    ts = rows.column("ts_utc").cast(pa.int64())
    lo, hi = pc.min_max(ts).values()
    sig = minimize.SIGNATURE_FIELDS.get(table)
    signed = rows.num_rows - rows.column(sig).null_count if sig else 0
    return rows.num_rows, lo.as_py(), hi.as_py(), signed


def _part_path(directory: Path, table: str, part: int) -> Path:
    return directory / f"{table}.{part:08d}.arrow"


def _write_part(path: Path, rows: pa.Table) -> None:
    # staged rows live only until the next seal, which reads them once: Arrow IPC,
    # uncompressed, costs nearly nothing to write and is memory-mapped to read
    with pa.ipc.new_file(path, rows.schema) as writer:
        writer.write_table(rows)


@dataclass(frozen=True)
class _Task:
    fmt: str
    options: Options
    mtime_ns: int | None  # of the file: the parser is kept across files, this is not
    state: object
    chunk: LineChunk | None
    out_dir: str  # the temporary staging directory of this file
    part: int  # this chunk's number, which orders the part files
    raw: RawChunk | None = None
    span: tuple[str, int, int, int] | None = None  # (file, offset, length, first line)
    sig_key: cmdsig.SigKey | None = None  # travels to the worker in memory, never on disk

    def lines(self) -> LineChunk:
        if self.chunk is not None:
            return self.chunk
        if self.raw is not None:
            return self.raw.chunk()
        assert self.span is not None
        path, offset, length, first_line = self.span
        fd = os.open(path, os.O_RDONLY)
        try:
            data = os.pread(fd, length, offset)
        finally:
            os.close(fd)
        if len(data) != length:
            raise InputIOError(f"{path} changed while it was being ingested")
        return RawChunk(first_line, data, offset).chunk()


def _finalize(parsed: sources.Parsed, sig_key: cmdsig.SigKey | None) -> _Staged:
    staged = _Staged({}, list(parsed.rejects), list(parsed.skips), warnings=parsed.warnings)
    for table, projected in parsed.tables.items():
        if projected.num_rows == 0:
            continue
        rows, bad = minimize.finalize(projected, schema.load(table), sig_key)
        staged.tables[table] = rows
        staged.rejects.append(bad)
    return staged


_WORKER_PARSERS: dict[tuple[str, Options], tuple[sources.Context, sources.Parser]] = {}


def _parse_in_worker(task: _Task) -> _Staged:
    """Runs in a pool process: one DuckDB connection and parser per format, kept warm."""
    key = (task.fmt, task.options)
    if key not in _WORKER_PARSERS:
        ctx = task.options.context(_connect(threads=1), task.mtime_ns)
        _WORKER_PARSERS[key] = (ctx, sources.get(task.fmt).make_parser(ctx))
    ctx, parser = _WORKER_PARSERS[key]
    ctx.mtime_ns = task.mtime_ns
    parser.restore(task.state)
    staged = _finalize(parser.parse(task.lines()), task.sig_key)
    for table, rows in staged.tables.items():
        if rows.num_rows:
            _write_part(_part_path(Path(task.out_dir), table, task.part), rows)
            staged.written[table] = _summarize(table, rows)
    staged.tables = {}
    return staged


# files above this size are parsed by a process pool, chunk by chunk, in order
PARALLEL_MIN_BYTES = 32 << 20


def _pool_size() -> int:
    return min(4, os.cpu_count() or 1)


def _make_pool(paths: Sequence[Path]) -> ProcessPoolExecutor | None:
    workers = _pool_size()
    big = any(p.stat().st_size >= PARALLEL_MIN_BYTES for p in paths)
    if workers < 2 or not big:
        return None
    # fork before this process opens any DuckDB connection: children start warm and safe
    return process_pool(workers)


def _last_line(item: RawChunk | LineChunk) -> int:
    count = len(item.lines) if isinstance(item, LineChunk) else item.line_count
    return item.first_line + count - 1


def _staged_chunks(
    items: Iterator[RawChunk | LineChunk],
    fmt: sources.SourceFormat,
    options: Options,
    mtime_ns: int | None,
    pool: ProcessPoolExecutor | None,
    plain_path: Path | None,
    out_dir: Path,
    sig_key: cmdsig.SigKey | None,
) -> Iterator[tuple[int, _Staged]]:
    """Parse chunks in order, in this process or in the pool; yield (last line, result).

    With a pool and an uncompressed file, a worker reads its own byte range of the file, so
    the text is not copied between processes; gzip input is sent along as bytes.
    """
    if pool is None:
        yield from _parse_here(items, fmt, options, mtime_ns, sig_key)
        return
    reader = fmt.make_parser(options.context(None, mtime_ns))  # type: ignore[arg-type]
    pending: deque[tuple[int, Future[_Staged]]] = deque()
    try:
        for part, item in enumerate(items, start=1):
            state = reader.snapshot()
            task = _Task(
                fmt.name, options, mtime_ns, state, None, str(out_dir), part, sig_key=sig_key
            )
            if isinstance(item, RawChunk):
                reader.advance(item.data)
                if plain_path is not None:  # a plain file: the worker reads the range itself
                    span = (str(plain_path), item.offset, len(item.data), item.first_line)
                    task = replace(task, span=span)
                else:
                    task = replace(task, raw=item)
            else:
                task = replace(task, chunk=item)
            pending.append((_last_line(item), pool.submit(_parse_in_worker, task)))
            if len(pending) > _pool_size():
                last, future = pending.popleft()
                yield last, future.result()
        while pending:
            last, future = pending.popleft()
            yield last, future.result()
    finally:
        for _, future in pending:
            future.cancel()


def _parse_here(
    items: Iterator[RawChunk | LineChunk],
    fmt: sources.SourceFormat,
    options: Options,
    mtime_ns: int | None,
    sig_key: cmdsig.SigKey | None,
) -> Iterator[tuple[int, _Staged]]:
    """Parse chunks in order in this process; then what the parser held back to the end.

    A compressed file that ends early still hands over what was held back before the
    truncation is reported, so every line read is accounted for.
    """
    ctx = options.context(_connect(), mtime_ns)
    last = 0
    try:
        parser = fmt.make_parser(ctx)
        try:
            for item in items:
                chunk = item.chunk() if isinstance(item, RawChunk) else item
                last = _last_line(item)
                yield last, _finalize(parser.parse(chunk), sig_key)
        except TruncatedInput:
            yield last, _finalize(parser.finish(), sig_key)
            raise
        yield last, _finalize(parser.finish(), sig_key)
    finally:
        ctx.con.close()


class _Staging:
    """Writers of one file's staged Parquet, in a temporary directory until commit."""

    def __init__(self, store: Store) -> None:
        self.dir = store.new_temp_dir(store.staging)
        self.writers: dict[str, pa.ipc.RecordBatchFileWriter] = {}
        self.lines_writer: pq.ParquetWriter | None = None

    def write(self, table: str, rows: pa.Table) -> None:
        if rows.num_rows == 0:
            return
        if table not in self.writers:
            path = _part_path(self.dir, table, 0)
            self.writers[table] = pa.ipc.new_file(path, rows.schema)
        self.writers[table].write_table(rows)

    def write_lines(self, kind: str, rows: pa.Table) -> None:
        if rows.num_rows == 0:
            return
        rows = rows.append_column("kind", pa.repeat(pa.scalar(kind), rows.num_rows))
        if self.lines_writer is None:
            self.lines_writer = pq.ParquetWriter(self.dir / "lines.parquet", rows.schema)
        self.lines_writer.write_table(rows)

    def close(self) -> None:
        for w in self.writers.values():
            w.close()
        if self.lines_writer is not None:
            self.lines_writer.close()
        self.writers, self.lines_writer = {}, None

    def sensor_clocks(self, result: FileResult, now_ns: int) -> None:
        """What the staged event times show of each sensor's clock (acdkit.skew): findings
        of their own, beside the file's warnings (`acdkit.skew.describe` words them)."""
        self.close()
        result.clock_skew = [c.to_json() for c in skew.analyze_staged(self.dir, now_ns)]

    def commit(self, store: Store, entry: dict[str, Any]) -> None:
        self.close()
        for path in self.dir.iterdir():
            with path.open("rb") as fh:
                os.fsync(fh.fileno())
        write_json(self.dir / "ledger.json", entry)
        fsync_dir(self.dir)
        final = store.staging / f"{time.time_ns():020d}-{entry['sha256']}"
        self.dir.rename(final)
        fsync_dir(store.staging)

    def abort(self) -> None:
        self.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def _count(counter: Counter[str], rows: pa.Table) -> None:
    if rows.num_rows:
        for item in pc.value_counts(rows.column("reason").combine_chunks()).to_pylist():
            counter[item["values"]] += item["counts"]


def _ingest_file(
    store: Store,
    path: Path,
    fmt_name: str | None,
    options: Options,
    progress: ProgressFn | None,
    pool: ProcessPoolExecutor | None,
    known: _Known,
    keys: cmdsig.KeySource,
    now_ns: int,
    records_con: _LazyConnection,
) -> FileResult:
    stat = path.stat()
    size = stat.st_size
    result = FileResult(str(path), "", "ingested")
    hasher = None
    if size in known.sizes:
        # maybe a file seen before: hash it first, so that a repeat costs one read only
        result.sha256, size = sha256_file(path)
        if result.sha256 in known.digests:
            result.status = "already ingested"
            return result
    else:
        # no file of this size is in the ledger, so this one is new: hash while parsing
        hasher = hashlib.sha256()
    fmt, result.format = _format_of(path, fmt_name)
    sig_key = keys.get() if fmt.commands else None
    if fmt.read_records is not None:
        ctx = options.context(records_con.get(), stat.st_mtime_ns)
        return _ingest_records(
            store, path, fmt, ctx, options, progress, result, sig_key, now_ns, known
        )
    if fmt.sequential:
        pool = None  # its parser carries lines from chunk to chunk: one process reads all
    staging = _Staging(store)
    skips: Counter[str] = Counter()
    rejects: Counter[str] = Counter()
    records: Counter[str] = Counter()
    try:
        with open_source(path, hasher) as fh:
            raw = getattr(fh, "fileobj", None) or fh
            plain = None if isinstance(fh, gzip.GzipFile) else path
            try:
                # read, not memory-mapped: a file truncated while it is read (logrotate's
                # copytruncate) then reads short instead of killing the process (SIGBUS);
                # with a pool, workers read their own byte ranges of a plain file again
                items: Iterator[RawChunk | LineChunk] = read_raw(fh)
                for last_line, staged in _staged_chunks(
                    items, fmt, options, stat.st_mtime_ns, pool, plain, staging.dir, sig_key
                ):
                    result.lines = last_line
                    _stage_chunk(staged, staging, records, skips, rejects, result)
                    if progress:
                        progress(path.name, raw.tell(), size)
            except TruncatedInput as exc:
                result.warnings.append(
                    f"{exc.detail}; {exc.lines_read} complete lines were read and kept"
                )
            if isinstance(raw, HashingReader):
                if plain is None:
                    raw.drain()
                result.sha256, size = raw.hasher.hexdigest(), raw.size
        if hasher is not None and result.sha256 in known.digests:
            # the same bytes under a size that changed since the check: nothing to add
            staging.abort()
            result.status = "already ingested"
            return result
        _close_result(path, result, records, skips, rejects, sig_key)
        staging.sensor_clocks(result, now_ns)
        staging.commit(store, _ledger_entry(path, size, result, options))
    except BaseException:
        staging.abort()
        raise
    return result


def _close_result(
    path: Path,
    result: FileResult,
    records: Counter[str],
    skips: Counter[str],
    rejects: Counter[str],
    sig_key: cmdsig.SigKey | None,
) -> None:
    """Fill in a file's counts and check that every line (or record) is accounted for."""
    result.records = {t: records.get(t, 0) for t in schema.TABLES}
    if result.signatures:
        assert sig_key is not None
        result.sig_key_id = sig_key.key_id
    # times before 1990 are no warning here: the sensor clock findings (`skew`) say it
    result.skipped, result.rejected = sum(skips.values()), sum(rejects.values())
    result.skip_reasons, result.reject_reasons = dict(skips), dict(rejects)
    accounted = result.record_count + result.skipped + result.rejected
    if accounted != result.lines:
        raise AssertionError(f"{path}: {accounted} lines accounted for, {result.lines} read")


def _ingest_records(
    store: Store,
    path: Path,
    fmt: sources.SourceFormat,
    ctx: sources.Context,
    options: Options,
    progress: ProgressFn | None,
    result: FileResult,
    sig_key: cmdsig.SigKey | None,
    now_ns: int,
    known: _Known,
) -> FileResult:
    """Ingest a record format (EVTX, PCAP): the format reads the file, in chunks of records.

    The file is hashed first (a record reader needs the file itself, not a stream of it),
    and its size and modification time are checked again at the end: a file that changed
    while it was read is refused rather than recorded under the digest of other bytes.
    """
    assert fmt.read_records is not None
    before = path.stat()
    if not result.sha256:
        result.sha256, _ = sha256_file(path)
        if result.sha256 in known.digests:
            result.status = "already ingested"
            return result
    staging = _Staging(store)
    skips: Counter[str] = Counter()
    rejects: Counter[str] = Counter()
    records: Counter[str] = Counter()
    try:
        for chunk in fmt.read_records(path, ctx):
            result.lines = max(result.lines, chunk.last)
            result.warnings.extend(chunk.warnings)
            staged = _finalize(chunk.parsed, sig_key)
            _stage_chunk(staged, staging, records, skips, rejects, result)
            if progress:
                progress(path.name, chunk.done, before.st_size)
        after = path.stat()
        if (after.st_size, after.st_mtime_ns) != (before.st_size, before.st_mtime_ns):
            raise InputIOError(f"{path} changed while it was being ingested")
        _close_result(path, result, records, skips, rejects, sig_key)
        staging.sensor_clocks(result, now_ns)
        staging.commit(store, _ledger_entry(path, before.st_size, result, options))
    except BaseException:
        staging.abort()
        raise
    return result


HEAD_BYTES = 1 << 16


@dataclass
class _Known:
    """The sizes and SHA-256s of the files in the ledger, read once per run, under the lock.

    Asking the store per file lists its staging directory each time: quadratic in the
    number of files, which a collector of many small EVTX files feels.
    """

    sizes: set[int]
    digests: set[str]

    @classmethod
    def of(cls, store: Store) -> _Known:
        entries = store.ledger()
        return cls({int(e["size"]) for e in entries}, {str(e["sha256"]) for e in entries})

    def add(self, result: FileResult, size: int) -> None:
        self.sizes.add(size)
        if result.status == "ingested":
            self.digests.add(result.sha256)


def _format_of(path: Path, forced: str | None) -> tuple[sources.SourceFormat, str]:
    """The format to parse with and the name to record: forced, detected, or "empty".

    An empty file, or one of blank lines only (a log rotated before anything was written),
    is no error: it is recorded with format "empty" and its lines as skipped blank lines.
    """
    if forced:
        return sources.get(forced), forced
    with path.open("rb") as fh:
        raw = fh.read(HEAD_BYTES)
    head = content_head(path, HEAD_BYTES)
    if not head:
        return sources.get("zeek-json"), "empty"  # its reader counts blank lines as skips
    fmt = sources.detect(head, raw)
    return fmt, fmt.name


def _stage_chunk(
    parsed: _Staged,
    staging: _Staging,
    records: Counter[str],
    skips: Counter[str],
    rejects: Counter[str],
    result: FileResult,
) -> None:
    for warning in parsed.warnings:
        if warning not in result.warnings:  # a rule is said once, not once per chunk
            result.warnings.append(warning)
    for rows in parsed.skips:
        _count(skips, rows)
        staging.write_lines("skip", rows)
    for rows in parsed.rejects:
        _count(rejects, rows)
        staging.write_lines("reject", rows)
    written = dict(parsed.written)
    for table, staged in parsed.tables.items():
        if staged.num_rows:
            staging.write(table, staged)
            written[table] = _summarize(table, staged)
    for table, (count, lo, hi, signed) in written.items():
        records[table] += count
        result.signatures += signed
        result.ts_min_ns = lo if result.ts_min_ns is None else min(result.ts_min_ns, lo)
        result.ts_max_ns = hi if result.ts_max_ns is None else max(result.ts_max_ns, hi)


def _ledger_entry(path: Path, size: int, result: FileResult, options: Options) -> dict[str, Any]:
    entry = {
        "sha256": result.sha256,
        "size": size,
        # the base name only: a full path may hold a user name
        "name": path.name,
        "format": result.format,
        "sensor": options.sensor,
        # what the user said about local times; the rule a parser applied is in the warnings
        "assume_tz": options.assume_tz,
        "year": options.year,
        "date_order": options.date_order,
        "ingested_utc": datetime.now(UTC).isoformat(timespec="microseconds"),
        "tool_version": __version__,
        "lines": result.lines,
        "records": result.records,
        "skipped": result.skipped,
        "rejected": result.rejected,
        "skip_reasons": result.skip_reasons,
        "reject_reasons": result.reject_reasons,
        "ts_min_ns": result.ts_min_ns,
        "ts_max_ns": result.ts_max_ns,
        "warnings": result.warnings,
        "clock_skew": result.clock_skew,
    }
    if result.signatures:
        # signatures made under different keys never match: say which key made these
        entry["signatures"] = result.signatures
        entry["sig_key_id"] = result.sig_key_id
    return entry


def _check_zone(zone: str | None) -> str | None:
    """An IANA time zone name that DuckDB knows too, or a usage error."""
    if zone is None:
        return None
    try:
        ZoneInfo(zone)
        con = duckdb.connect(":memory:")
        try:
            con.execute(f"SELECT TIMESTAMP '2000-01-01' AT TIME ZONE {sql_quote(zone)}")
        finally:
            con.close()
    except (ValueError, ZoneInfoNotFoundError, duckdb.Error):
        raise UsageError(
            f"unknown time zone {zone!r}", hint="give an IANA name such as Asia/Tokyo or UTC"
        ) from None
    return zone


def _check_year(year: int | None) -> int | None:
    if year is not None and not 1970 <= year <= 2200:
        raise UsageError(f"--year {year} is outside 1970..2200")
    return year


def _check_order(order: str | None) -> str | None:
    """One of `sources.DATE_ORDERS`, or a usage error."""
    if order is not None and order not in sources.DATE_ORDERS:
        raise UsageError(
            f"--date-order {order!r} is not known", hint=f"use {', '.join(sources.DATE_ORDERS)}"
        )
    return order


_INPUT_HINTS = {
    "is a directory": "give the log files in it (DIR/*.log)",
    "is a named pipe (FIFO)": "ingest reads a file twice (its hash, then its lines): save "
    "the stream to a file first",
}


def _input_problem(path: Path) -> str | None:
    """Why ``path`` cannot be ingested (a fixed phrase), or None for a regular file."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return "does not exist" if not path.is_symlink() else "is a broken symbolic link"
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "is a symbolic link loop"
        return f"cannot be read ({exc.strerror})"
    if S_ISREG(mode):
        return None
    if S_ISDIR(mode):
        return "is a directory"
    if S_ISFIFO(mode):
        return "is a named pipe (FIFO)"
    return "is not a regular file (a device or socket)"


def ingest(
    store: Store,
    paths: Sequence[Path],
    fmt: str | None = None,
    sensor: str | None = None,
    progress: ProgressFn | None = None,
    sig_key: cmdsig.KeySource | None = None,
    *,
    assume_tz: str | None = None,
    year: int | None = None,
    aws_fields: str | Sequence[str] | None = None,
    date_order: str | None = None,
    now_ns: int | None = None,
) -> IngestReport:
    """Ingest each file; a file that fails is reported and the others still go in.

    ``sig_key`` says where the command-signature key is (default: the user key directory,
    where it is created the first time a format carries command lines).  ``assume_tz``
    and ``year`` apply to times written without a zone or a year; ``aws_fields`` is a flow
    log format string or a list of field names (`sources.aws_vpc.parse_field_list`);
    ``date_order`` (``mdy``, ``dmy``, ``ymd``) how a Windows DNS log writes its dates.
    ``now_ns`` is the collector's clock that sensor clocks are compared with (default: the
    time the run starts), one reference time for the whole run.
    """
    if fmt is not None:
        sources.get(fmt)  # fail early on a bad --format
    options = Options(
        sensor,
        _check_zone(assume_tz),
        _check_year(year),
        None if aws_fields is None else parse_field_list(aws_fields),
        _check_order(date_order),
    )
    keys = sig_key or cmdsig.KeySource.default()
    keys.check()
    for path in paths:
        problem = _input_problem(path)
        if problem:
            raise UsageError(f"input {path} {problem}", hint=_INPUT_HINTS.get(problem))
    started = time.monotonic()
    reference = time.time_ns() if now_ns is None else now_ns
    results: list[FileResult] = []
    with store.lock(), contextlib.ExitStack() as stack:
        store.clean_temporaries()
        pool = _make_pool(paths)
        if pool is not None:
            stack.enter_context(pool)
        records_con = _LazyConnection()
        stack.callback(records_con.close)
        known = _Known.of(store)
        for path in paths:
            try:
                results.append(
                    _ingest_file(
                        store,
                        path,
                        fmt,
                        options,
                        progress,
                        pool,
                        known,
                        keys,
                        reference,
                        records_con,
                    )
                )
                known.add(results[-1], path.stat().st_size)
            except AcdkitError as exc:
                log.info("%s: %s", path, exc)  # the report carries it; not said twice
                results.append(
                    FileResult(
                        str(path), "", "failed", error=str(exc), exit_code=int(exc.exit_code)
                    )
                )
            except (EOFError, zlib.error):
                # a compressed stream damaged where no reader expected it: this file fails,
                # in words of ours (the library's can quote input); Typer would turn an
                # EOFError into "Aborted." and exit code 1, the code of TAMPERED
                bad = MalformedError(f"{path}: compressed input is truncated or corrupt")
                results.append(
                    FileResult(
                        str(path), "", "failed", error=str(bad), exit_code=int(bad.exit_code)
                    )
                )
            except OSError as exc:
                # the file named is the one that failed: an input, or one of acdkit's own
                what = exc.filename if exc.filename is not None else path
                err = InputIOError(f"cannot read {what}: {exc.strerror}")
                results.append(
                    FileResult(
                        str(path), "", "failed", error=str(err), exit_code=int(err.exit_code)
                    )
                )
    created = str(keys.path) if keys.created else None
    return IngestReport(results, time.monotonic() - started, created)
