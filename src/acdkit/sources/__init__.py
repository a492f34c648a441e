"""Input formats behind one small interface.

A format knows how to recognise itself from the first bytes of a file (`sniff`) and how to
turn its input into rows of the net, dns and edr tables.  Text formats turn chunks of lines
into rows (`Parser.parse`); record formats (EVTX, PCAP), whose files are not lines, read the
file themselves (`SourceFormat.read_records`) and number their records instead.  Either way
every line or record comes back exactly once: as a row, a skip or a reject, each with its
number.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pyarrow as pa

from acdkit.errors import MalformedError, UsageError
from acdkit.sources._lines import LineChunk

__all__ = [
    "DATE_ORDERS",
    "Context",
    "Parsed",
    "Parser",
    "RecordChunk",
    "SourceFormat",
    "detect",
    "get",
    "names",
]

LINE_REASON = pa.schema([("line", pa.uint64()), ("reason", pa.string())])
DATE_ORDERS = ("mdy", "dmy", "ymd")


@dataclass
class Context:
    """What a parser needs besides the lines: a DuckDB connection and the user's settings.

    ``assume_tz`` (an IANA zone) and ``year`` are applied only to times that lack a zone or
    a year, and only where the user gave them; ``aws_fields`` is the field order of AWS VPC
    flow log lines that come without a header line; ``date_order`` says how a locale wrote
    its dates (``mdy``, ``dmy`` or ``ymd``); ``mtime_ns`` is the file's modification time,
    from which the DNS server formats guess a missing year (and say so in a warning).
    """

    con: duckdb.DuckDBPyConnection
    sensor: str | None = None
    assume_tz: str | None = None
    year: int | None = None
    aws_fields: tuple[str, ...] | None = None
    date_order: str | None = None
    mtime_ns: int | None = None

    def params(self) -> dict[str, str]:
        return {"sensor": self.sensor} if self.sensor is not None else {}


@dataclass
class Parsed:
    """One chunk's outcome. Table rows still carry a ``reject_reason`` column (NULL = good)."""

    tables: dict[str, pa.Table] = field(default_factory=dict)
    rejects: list[pa.Table] = field(default_factory=list)
    skips: list[pa.Table] = field(default_factory=list)
    # said once in the file's ledger entry: which rule a parser applied (a field order, a
    # time zone given by the user); fixed texts, never input content
    warnings: list[str] = field(default_factory=list)

    def add_lines(self, target: list[pa.Table], lines: pa.Array, reasons: pa.Array) -> None:
        if len(lines):
            target.append(pa.Table.from_arrays([lines, reasons], schema=LINE_REASON))


class Parser(ABC):
    """Stateful per file (a Zeek TSV header, for example, spans chunks).

    For parallel ingest the state can travel: the reading process calls `snapshot` before
    each chunk and `advance` over it; a worker calls `restore` with that snapshot, then
    `parse`.  Formats without state keep the defaults.
    """

    @abstractmethod
    def parse(self, chunk: LineChunk) -> Parsed: ...

    def finish(self) -> Parsed:
        """What the parser still holds at the end of the file (a sequential format only)."""
        return Parsed()

    def snapshot(self) -> object:
        return None

    def restore(self, state: object) -> None:
        return None

    def advance(self, data: bytes | memoryview) -> None:
        """Update the state over a chunk of complete lines, given as raw bytes."""
        return None


@dataclass
class RecordChunk:
    """A run of records from a record format, already parsed.

    ``last`` is the number of the chunk's last record: records are numbered from 1 in file
    order (an EVTX record, a packet), and every number up to ``last`` must be accounted for
    in ``parsed`` (as a row, skip or reject, under ``src_line``/``line``) by this chunk or an
    earlier one.  ``done`` is how many bytes of the file are behind, for progress;
    ``warnings`` are said once in the file's report (a damaged EVTX chunk, for example).
    """

    last: int
    parsed: Parsed
    done: int = 0
    warnings: list[str] = field(default_factory=list)


RecordReader = Callable[[Path, Context], Iterator[RecordChunk]]


def _no_line_parser(ctx: Context) -> Parser:
    raise AssertionError("a record format is read with read_records, not line by line")


@dataclass(frozen=True)
class SourceFormat:
    name: str
    description: str
    sniff: Callable[[bytes], bool]
    make_parser: Callable[[Context], Parser] = _no_line_parser
    # set for formats that are not text lines: reads the (uncompressed) file itself
    read_records: RecordReader | None = None
    # rows may carry a command line (column ``_cmdline``): ingest fetches the signature key
    # before parsing, and `minimize.finalize` turns the text into cmd_sig / cmdline_sig
    commands: bool = False
    # one parser sees every chunk in file order and may hold lines back for a later chunk
    # (answers folded into their query, a year carried over New Year): never parsed by the
    # pool, and `Parser.finish` is called at the end of the file
    sequential: bool = False


_REGISTRY: dict[str, SourceFormat] = {}


def register(fmt: SourceFormat) -> SourceFormat:
    _REGISTRY[fmt.name] = fmt
    return fmt


def _load_builtin() -> None:
    # import for their registration side effect, always: a format module imported on its own
    # first (zeek_tsv imports zeek_json) must not keep the others out of the registry
    from acdkit.sources import (  # noqa: F401
        aws_vpc,
        azure_flow,
        bind_query,
        cef,
        dnsmasq,
        gcp_vpc,
        pcap,
        suricata_eve,
        unbound,
        windns,
        windows_evtx,
        winlog_json,
        zeek_json,
        zeek_tsv,
    )


def names() -> list[str]:
    _load_builtin()
    return list(_REGISTRY)


def get(name: str) -> SourceFormat:
    _load_builtin()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UsageError(
            f"unknown format {name!r}", hint=f"choose from: {', '.join(names())}"
        ) from None


def detect(head: bytes, raw: bytes | None = None) -> SourceFormat:
    """The one format whose sniffer accepts the file's first bytes.

    Record formats (binary files) are shown ``raw``, the file's first bytes as they are;
    text formats see ``head``, which starts at the first byte that is not blank or a BOM.
    """
    _load_builtin()
    for fmt in _REGISTRY.values():
        if fmt.sniff(head if fmt.read_records is None or raw is None else raw):
            return fmt
    tried = ", ".join(_REGISTRY)
    raise MalformedError(
        f"could not identify the input format (tried: {tried})",
        hint="use --format to force one if you know it",
    )
