"""Azure flow logs: NSG flow logs (versions 1 and 2) and VNet flow logs, one record per tuple.

Both come as JSON: an hourly blob ``{"records": [...]}`` (``PT1H.json``, perhaps
pretty-printed over many lines, perhaps several blobs in a row) or one record object per
line.  Neither is line-oriented, so this is a record format: the file is read as a stream of
JSON events (ijson), in bounded memory whatever its size, and every flow tuple is one
numbered unit that becomes a record, a skip or a reject.  A flow log record without tuples,
a record of another category and any JSON value that is not a flow log record count as one
unit each.  Units are numbered in the order they are complete, which is file order.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, BinaryIO

import ijson
import numpy as np
import pyarrow as pa

from acdkit.sources import Context, Parsed, RecordChunk, SourceFormat, register
from acdkit.sources._flowlog import bad_proto, dns_inputs, epoch_text, ip_proto, net_inputs, unset
from acdkit.sources._lines import GZIP_MAGIC, open_source
from acdkit.sources._route import collect
from acdkit.sources._sql import routed_query

__all__ = ["FORMAT"]

NSG_CATEGORY = "NetworkSecurityGroupFlowEvent"
VNET_CATEGORY = "FlowLogFlowEvent"
# where the tuples and their groups sit, relative to a record object
_GROUPS = {
    "properties.flows.item.flows.item": "nsg",
    "flowRecords.flows.item.flowGroups.item": "vnet",
}
_WRAPPED = "records.item"  # a record inside a blob's "records" list
_TUPLE_PATHS = {
    f"{root}{path}.flowTuples.item": kind
    for path, kind in _GROUPS.items()
    for root in ("", f"{_WRAPPED}.")
}
_RECORD_KEYS = {"category", "properties", "flowRecords", "resourceId", "targetResourceID"}
CHUNK_UNITS = 1 << 16
_SNIFF = re.compile(rb'"category"\s*:\s*"(?:NetworkSecurityGroupFlowEvent|FlowLogFlowEvent)"')


def _sniff(raw: bytes) -> bool:
    """A JSON object whose head names an NSG or VNet flow log category (gzip or not)."""
    if raw.startswith(GZIP_MAGIC):
        try:
            raw = zlib.decompressobj(wbits=31).decompress(raw, 1 << 16)
        except zlib.error:
            return False
    text = raw.lstrip(b"\xef\xbb\xbf \t\r\n")
    return text.startswith(b"{") and _SNIFF.search(text[: 1 << 16]) is not None


@dataclass
class _Group:
    kind: str  # nsg | vnet
    mac: str | None = None
    tuples: list[Any] = field(default_factory=list)


@dataclass
class _Record:
    """One flow log record being read: its context and its groups of tuples."""

    category: str | None = None
    resource_id: str | None = None
    target_id: str | None = None
    nsg_version: int | None = None
    vnet_version: int | None = None
    mac: str | None = None
    looks_like_record: bool = False
    groups: list[_Group] = field(default_factory=list)
    group: _Group | None = None
    flushed: bool = False  # some of its tuples were numbered before the record ended

    def context_known(self) -> bool:
        """Whether every value that its tuples' rows take from the record is known."""
        if self.category == NSG_CATEGORY:
            return None not in (self.nsg_version, self.resource_id, self.group and self.group.mac)
        if self.category == VNET_CATEGORY:
            resource = self.target_id or self.resource_id
            return None not in (self.vnet_version, resource, self.mac)
        return False


class _Units:
    """Numbered units of one run of records, collected until a chunk is full."""

    def __init__(self) -> None:
        self.number = 0
        self.reset()

    def reset(self) -> None:
        self.tuples: list[Any] = []
        self.groups: list[tuple[int, int, str, int | None, str | None, str | None]] = []
        self.others: list[tuple[int, str, bool]] = []  # (number, reason, is a skip)

    def other(self, reason: str, skip: bool = False) -> None:
        self.number += 1
        self.others.append((self.number, reason, skip))

    def record(self, rec: _Record) -> None:
        """Number a finished record's tuples, or count the record as one unit."""
        if rec.category not in (NSG_CATEGORY, VNET_CATEGORY):
            if rec.category is None:
                self.other("flow log record without a category")
            else:
                self.other("not a flow log record (category is not ingested)", skip=True)
            return
        if not rec.flushed and not any(g.tuples for g in rec.groups):
            self.other("flow log record without flow tuples", skip=True)
            return
        self.flush(rec)

    def flush(self, rec: _Record) -> None:
        """Number the tuples of ``rec`` read so far (file order), and let them go."""
        for g in rec.groups:
            if not g.tuples:
                continue
            version = rec.nsg_version if g.kind == "nsg" else rec.vnet_version
            resource = rec.resource_id if g.kind == "nsg" else rec.target_id or rec.resource_id
            mac = g.mac if g.kind == "nsg" else rec.mac
            self.groups.append((self.number + 1, len(g.tuples), g.kind, version, resource, mac))
            self.tuples.extend(g.tuples)
            self.number += len(g.tuples)
            g.tuples = []
            rec.flushed = True

    def __len__(self) -> int:
        return len(self.tuples) + len(self.others)

    def table(self) -> pa.Table:
        """The tuples with their numbers and context, one row each."""
        firsts = np.array([g[0] for g in self.groups], dtype=np.int64)
        counts = np.array([g[1] for g in self.groups], dtype=np.int64)
        # tuple i of group g is unit firsts[g] + (i - index of the group's first tuple)
        offsets = firsts - (np.cumsum(counts) - counts)
        numbers = np.repeat(offsets, counts) + np.arange(len(self.tuples), dtype=np.int64)
        which = pa.array(np.repeat(np.arange(len(self.groups)), counts))
        context = {
            name: pa.array([g[i] for g in self.groups], kind).take(which)
            for i, name, kind in (
                (2, "kind", pa.string()),
                (3, "version", pa.int64()),
                (4, "resource", pa.string()),
                (5, "mac", pa.string()),
            )
        }
        line = pa.array(numbers.astype(np.uint64))
        return pa.table({"line": line, "t": _texts(self.tuples), **context})


def _texts(values: list[Any]) -> pa.Array:
    """The tuples as strings; a tuple that is not a JSON string becomes NULL (a reject)."""
    try:
        return pa.array(values, pa.string())
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return pa.array([v if isinstance(v, str) else None for v in values], pa.string())


def _number(value: object) -> int | None:
    if isinstance(value, int | Decimal) and value == int(value):
        return int(value)
    return None


class _Reader:
    """Turns the JSON event stream into numbered units (see the module docstring)."""

    def __init__(self) -> None:
        self.units = _Units()
        self.bare: _Record | None = None  # the top-level object, if it is a record
        self.wrapped: _Record | None = None  # the record open inside "records"
        self.top_keys: set[str] = set()

    def feed(self, events: Iterator[tuple[str, str, Any]]) -> Iterator[None]:
        """Consume events; yield whenever a chunk's worth of units is ready."""
        tuple_paths = _TUPLE_PATHS
        for prefix, event, value in events:
            # the hot path: one flow tuple inside the group being read
            if event == "string" and prefix in tuple_paths:
                rec = self.wrapped if prefix.startswith(_WRAPPED) else self.bare
                if rec is not None and rec.group is not None:
                    rec.group.tuples.append(value)
                    # a record can hold millions of tuples: once the values its rows take
                    # from the record are known, they go in chunks before it ends
                    if len(rec.group.tuples) >= CHUNK_UNITS and rec.context_known():
                        self.units.flush(rec)
                        yield None
                    continue
            if prefix == "":
                self._top(event, value)
            elif prefix == _WRAPPED:
                self._wrapped(event, value)
            elif prefix.startswith(_WRAPPED + "."):
                if self.wrapped is not None:
                    _field(self.wrapped, prefix[len(_WRAPPED) + 1 :], event, value)
            elif self.bare is not None and prefix != "records":
                _field(self.bare, prefix, event, value)
            if len(self.units) >= CHUNK_UNITS:
                yield None

    def _top(self, event: str, value: Any) -> None:
        if event == "start_map":
            self.bare, self.top_keys = _Record(), set()
        elif event == "map_key":
            self.top_keys.add(value)
            if value in _RECORD_KEYS and self.bare is not None:
                self.bare.looks_like_record = True
        elif event == "end_map":
            bare, self.bare = self.bare, None
            if bare is not None and bare.looks_like_record:
                self.units.record(bare)
            elif "records" not in self.top_keys:
                self.units.other("JSON object is not a flow log record")
        elif event in ("start_array", "string", "number", "boolean", "null"):
            self.units.other("JSON value is not an object")

    def _wrapped(self, event: str, value: Any) -> None:
        if event == "start_map":
            self.wrapped = _Record()
        elif event == "end_map" and self.wrapped is not None:
            rec, self.wrapped = self.wrapped, None
            self.units.record(rec)
        elif event in ("start_array", "string", "number", "boolean", "null"):
            self.units.other("records element is not an object")


def _field(rec: _Record, rel: str, event: str, value: Any) -> None:
    """One event inside a record, at path ``rel`` relative to the record."""
    if rel in _GROUPS:
        if event == "start_map":
            rec.group = _Group(_GROUPS[rel])
            rec.groups.append(rec.group)
        elif event == "end_map":
            rec.group = None
    elif rel.endswith(".flowTuples.item") and rel[: -len(".flowTuples.item")] in _GROUPS:
        if rec.group is not None and event in ("number", "boolean", "null", "start_map"):
            rec.group.tuples.append(None)  # not a string: one reject
        elif rec.group is not None and event == "start_array":
            rec.group.tuples.append(None)
    elif event == "string":
        if rel == "category":
            rec.category = value
        elif rel == "resourceId":
            rec.resource_id = value
        elif rel == "targetResourceID":
            rec.target_id = value
        elif rel == "macAddress":
            rec.mac = value
        elif rel.endswith(".mac") and rel[:-4] in _GROUPS and rec.group is not None:
            rec.group.mac = value
    elif event == "number":
        if rel == "properties.Version":
            rec.nsg_version = _number(value)
        elif rel == "flowLogVersion":
            rec.vnet_version = _number(value)


class _Pieces:
    """A stream whose ``read`` returns one decompressed piece at a time (``read1``).

    ``GzipFile.read(n)`` on a stream cut short raises and drops all it decompressed in that
    call (all of a small file); piece by piece, only the failing call is lost.
    """

    def __init__(self, fh: BinaryIO) -> None:
        self._read1 = getattr(fh, "read1", fh.read)

    def read(self, n: int = -1) -> bytes:
        data: bytes = self._read1(n)
        return data


def _open(path: Path) -> BinaryIO:
    fh = open_source(path)
    try:
        bom = fh.peek(3)[:3] == b"\xef\xbb\xbf"  # type: ignore[attr-defined]
    except (EOFError, OSError, zlib.error):
        bom = False  # a stream broken from its start: reading says so
    if bom:
        fh.read(3)  # ijson does not accept a BOM
    return fh


# below this depth no path that acdkit reads lies, so deeper values are not followed
MAX_DEPTH = 32
_DEEP = "\x00deep"  # the prefix of every event deeper than MAX_DEPTH: matches no path
_STARTS = ("start_map", "start_array")
_ENDS = ("end_map", "end_array")


def _events(fh: _Pieces) -> Iterator[tuple[str, str, Any]]:
    """(prefix, event, value) as ``ijson.parse`` gives them, in memory bounded by depth.

    ``ijson.parse`` keeps the dotted prefix of every open level, so a value nested N deep
    holds strings of O(N^2) bytes: 250 MB for a 20 KB line nested 10,000 deep, 25 GB for
    100,000.  Here the prefixes of MAX_DEPTH levels are kept; deeper levels are counted,
    and their events carry a prefix that matches no path.
    """
    joined = [""]  # joined[k]: the prefix of a value k levels deep
    deep = 0  # open containers below the deepest level followed
    for event, value in ijson.basic_parse(fh, multiple_values=True):
        if deep:
            deep += (event in _STARTS) - (event in _ENDS)
            yield (joined[-1] if deep == 0 else _DEEP), event, value
        elif event == "map_key":
            parent = joined[-2]
            yield parent, event, value
            joined[-1] = f"{parent}.{value}" if len(joined) > 2 else value
        elif event in _STARTS:
            yield joined[-1], event, value
            if len(joined) > MAX_DEPTH:
                deep = 1
            elif event == "start_array":
                joined.append(f"{joined[-1]}.item" if len(joined) > 1 else "item")
            else:
                joined.append("")  # named by the map's first key
        elif event in _ENDS:
            joined.pop()
            yield joined[-1], event, value
        else:
            yield joined[-1], event, value


def read_records(path: Path, ctx: Context) -> Iterator[RecordChunk]:
    """The file's flow tuples as record chunks (see the module docstring)."""
    reader = _Reader()
    with _open(path) as fh:
        try:
            for _ in reader.feed(_events(_Pieces(fh))):
                yield _chunk(reader.units, ctx, fh)
        except (ijson.JSONError, UnicodeDecodeError):
            yield _stop(reader, ctx, fh, "invalid JSON")
            return
        except (EOFError, OSError, zlib.error):
            # a gzip stream cut short or corrupt: what came before is kept
            yield _stop(reader, ctx, fh, "compressed input truncated or corrupt")
            return
        yield _chunk(reader.units, ctx, fh)


def _stop(reader: _Reader, ctx: Context, fh: BinaryIO, what: str) -> RecordChunk:
    """The last chunk of a file that cannot be read on: one reject unit stands for the rest."""
    reader.units.other(f"{what}: the rest of the file was not read")
    done = _chunk(reader.units, ctx, fh)
    done.warnings.append(f"{what} after unit {done.last - 1}: the rest of the file was not read")
    return done


def _chunk(units: _Units, ctx: Context, fh: BinaryIO) -> RecordChunk:
    parsed = Parsed()
    for number, reason, skip in units.others:
        target = parsed.skips if skip else parsed.rejects
        parsed.add_lines(target, pa.array([number], pa.uint64()), pa.array([reason]))
    if units.tuples:
        ctx.con.register("az_units", units.table())
        try:
            collect(ctx, routed_query(_BASE, _ROUTE, "NULL", _NET, _DNS, ctx.sensor), parsed)
        finally:
            ctx.con.unregister("az_units")
    chunk = RecordChunk(units.number, parsed, done=_position(fh))
    units.reset()
    return chunk


def _position(fh: BinaryIO) -> int:
    raw = getattr(fh, "fileobj", None) or fh  # a GzipFile: bytes of the compressed file
    try:
        return int(raw.tell())
    except (OSError, ValueError):
        return 0


_NSG_COUNT = """CASE
    WHEN version = 1 AND len(f) <> 8 THEN 'expected 8 fields (NSG version 1), found ' || len(f)
    WHEN version = 2 AND len(f) <> 13 THEN 'expected 13 fields (NSG version 2), found ' || len(f)
    WHEN version NOT IN (1, 2) THEN 'unsupported NSG flow log version'
    WHEN version IS NULL AND len(f) NOT IN (8, 13) THEN 'expected 8 or 13 fields, found ' || len(f)
  END"""
_BASE = f"""(
    SELECT *, CASE
        WHEN f IS NULL THEN 'flow tuple is not a string'
        WHEN kind = 'nsg' THEN coalesce({_NSG_COUNT},
          CASE WHEN f[6] NOT IN ('T', 'U') THEN 'unknown NSG protocol letter' END)
        WHEN len(f) <> 13 THEN 'expected 13 fields (VNet flow log), found ' || len(f)
        WHEN {bad_proto("f[6]")} THEN 'invalid protocol number'
      END AS problem
    FROM (SELECT line, kind, version, resource, mac, string_split(t, ',') AS f FROM az_units))"""
_ROUTE = "'net'"
# VNet tuples give milliseconds (the documentation's bandwidth example gives seconds: a
# value of 12 digits or more is read as milliseconds, which puts seconds before year 5138)
_TS = f"CASE WHEN kind = 'vnet' AND length(f[1]) >= 12 THEN {epoch_text('f[1]', 3)} ELSE f[1] END"
_NET = net_inputs(
    kind="'conn'",
    src_ip=unset("f[2]"),
    src_port=unset("f[4]"),
    dst_ip=unset("f[3]"),
    dst_port=unset("f[5]"),
    proto=f"CASE WHEN kind = 'nsg' THEN CASE f[6] WHEN 'T' THEN 'tcp' WHEN 'U' THEN 'udp' END"
    f" ELSE {ip_proto('f[6]')} END",
    ts=_TS,
    # source-to-destination and destination-to-source counters; empty in state B
    orig_pkts=unset("f[10]"),
    orig_bytes=unset("f[11]"),
    resp_pkts=unset("f[12]"),
    resp_bytes=unset("f[13]"),
    sensor="CASE WHEN resource IS NOT NULL THEN concat_ws('#', resource, mac) END",
)
_DNS = dns_inputs()


FORMAT = register(
    SourceFormat(
        "azure-flow",
        "Azure NSG flow logs (versions 1, 2) and VNet flow logs, as blobs or one record a line",
        _sniff,
        read_records=read_records,
    )
)
