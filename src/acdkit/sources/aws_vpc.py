"""AWS VPC flow logs: space-separated records (versions 2 to 8), any field order.

The field order comes, in this order of precedence, from a header line in the file (S3
delivery writes one; an Athena/OCSF CSV export writes one with commas and underscores),
from ``--aws-fields`` (the flow log's format string), or, for lines that have neither, from
the record itself: the AWS default format (version 2, 14 fields) or all fields of the
record's version in the documented order (21, 25, 29, 39 or 40 fields for versions 3, 4, 5,
7 and 8), and only when every field has the shape its name requires.  Anything else is a
reject: a custom order is never guessed.  CloudWatch Logs exports put an ingestion time in
front of each record; it is dropped.  Each record is one direction of a flow as seen at one
network interface, so its counters are those of its source (``orig_*``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from acdkit.errors import UsageError
from acdkit.sources import Context, Parsed, Parser, SourceFormat, register
from acdkit.sources._flowlog import bad_proto, dns_inputs, ip_proto, net_inputs, unset
from acdkit.sources._lines import LineChunk
from acdkit.sources._route import READER_REJECT, collect
from acdkit.sources._sql import routed_query, sql_quote

__all__ = ["ALL_FIELDS", "FORMAT", "header_fields", "parse_field_list"]

# the "Available fields" table of the AWS VPC user guide, in its order, with the version
# that introduced each field; "all fields of version N" is the prefix up to version N
_BY_VERSION = {
    2: "version account-id interface-id srcaddr dstaddr srcport dstport protocol packets bytes"
    " start end action log-status",
    3: "vpc-id subnet-id instance-id tcp-flags type pkt-srcaddr pkt-dstaddr",
    4: "region az-id sublocation-type sublocation-id",
    5: "pkt-src-aws-service pkt-dst-aws-service flow-direction traffic-path",
    7: "ecs-cluster-arn ecs-cluster-name ecs-container-instance-arn ecs-container-instance-id"
    " ecs-container-id ecs-second-container-id ecs-service-name ecs-task-definition-arn"
    " ecs-task-arn ecs-task-id",
    8: "reject-reason",
}
ALL_FIELDS: tuple[str, ...] = tuple(" ".join(_BY_VERSION.values()).split())


def _layouts() -> dict[int, int]:
    """Version -> number of fields of "all fields of that version", the header-less layouts."""
    counts, total = {}, 0
    for version, names in _BY_VERSION.items():
        total += len(names.split())
        counts[version] = total
    return counts


_LAYOUTS = _layouts()

# the shape each field's value must have (unset "-" is always allowed); a value that does
# not fit means the line is not in the order it was read with.  Ports, counters and start
# are checked where they are cast (`_sql`), so only the others are tested here: a word from
# a fixed list costs an IN, an identifier a regular expression.
_WORDS = {
    "version": ("2", "3", "4", "5", "6", "7", "8", "9", "10", "11"),
    "type": ("IPv4", "IPv6", "EFA"),
    "action": ("ACCEPT", "REJECT"),
    "log-status": ("OK", "NODATA", "SKIPDATA"),
    "flow-direction": ("ingress", "egress"),
}
_SHAPES = {
    "account-id": "[0-9]{1,14}|unknown",
    "interface-id": "eni-[0-9a-z]{1,32}",
    "vpc-id": "vpc-[0-9a-z]{1,32}",
    "subnet-id": "subnet-[0-9a-z]{1,32}",
    "instance-id": "i-[0-9a-z]{1,32}",
    "end": "[0-9]{1,12}",
    "tcp-flags": "[0-9]{1,3}",
    "region": "[a-z]{2}(-[a-z]+)+-[0-9]{1,2}",
    "az-id": "[a-z]{2,6}[0-9]{1,2}-az[0-9]{1,2}",
    "traffic-path": "[0-9]{1,2}",
    "reject-reason": "[A-Za-z_]{1,64}",
}
# the fields read at all: those mapped and those checked (the ECS names, for example,
# are not: no column holds them, and a line is not judged by them)
_READ = frozenset(
    {"srcaddr", "dstaddr", "pkt-srcaddr", "pkt-dstaddr", "srcport", "dstport", "protocol"}
    | {"packets", "bytes", "start", "end", "log-status", "account-id", "interface-id"}
    | set(_WORDS)
    | set(_SHAPES)
)
_ADDRESS_FIELDS = ("srcaddr", "dstaddr", "pkt-srcaddr", "pkt-dstaddr")
_NAME = re.compile(r"[a-z][a-z0-9_-]*")
_ISO_PREFIX = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]+Z "
# a line that may be a header (the BOM is the character itself: RE2 knows no \u escape)
_CANDIDATE = "^[ \t\ufeff]*" + r"[a-z][a-z0-9_-]*([ ,]+[a-z][a-z0-9_-]*)*[ \t]*\r?\n?$"
_CANDIDATE_LINES = re.compile(b"(?m)" + _CANDIDATE.encode())

HEADER_REASON = "AWS flow log header line"
UNKNOWN_ORDER = "field order unknown: no header, no --aws-fields, no documented layout"


def _known(name: str) -> bool:
    return name in ALL_FIELDS


def header_fields(line: str) -> tuple[tuple[str, ...], str] | None:
    """(field names, separator) if ``line`` is a header line listing flow log fields.

    Every token must look like a field name (``srcaddr``, ``pkt_srcaddr``), at least half
    of them must be fields acdkit knows, and none may repeat; data lines always hold
    digits, ``-`` or upper case, so they never qualify.
    """
    text = line.strip(" \t\r\n\ufeff")
    sep = "," if "," in text else " "
    tokens = [t.strip() for t in text.split(sep)] if sep == "," else text.split()
    if not tokens or not all(_NAME.fullmatch(t) for t in tokens):
        return None
    names = tuple(t.replace("_", "-") for t in tokens)
    known = sum(_known(n) for n in names)
    if not known or known * 2 < len(names) or len(set(names)) != len(names):
        return None
    return names, sep


def parse_field_list(spec: str | Sequence[str]) -> tuple[str, ...]:
    """The field order given by the user: a format string or a list of names.

    Accepts ``version account-id ...``, ``${version} ${account-id} ...`` (the flow log's
    LogFormat) and commas; underscores count as hyphens.  Unknown names are allowed (their
    values are ignored) but every name must look like one and appear once.
    """
    tokens = re.split(r"[\s,]+", spec.strip()) if isinstance(spec, str) else list(spec)
    names = [re.sub(r"^\$\{(.*)\}$", r"\1", t.strip()).replace("_", "-") for t in tokens if t]
    bad = [n for n in names if not _NAME.fullmatch(n)]
    if not names or bad:
        raise UsageError(
            "--aws-fields must list flow log field names"
            + (f" ({bad[0]!r} is not one)" if bad else ""),
            hint="e.g. --aws-fields '${version} ${account-id} ${interface-id} ${srcaddr} ...'",
        )
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise UsageError(f"--aws-fields names {twice[0]!r} twice")
    if not any(_known(n) for n in names):
        raise UsageError("--aws-fields names no AWS flow log field acdkit knows")
    return tuple(names)


# -- detection --------------------------------------------------------------------------------

_DEFAULT_LINE = re.compile(r"([2-8]) ([0-9]{6,14}|unknown) eni-[0-9a-z]+ .*")


def _sniff(head: bytes) -> bool:
    """A header line naming addresses, or lines that are exactly a documented layout.

    One odd line among the first ones (damaged, not UTF-8) does not hide the format: at
    least two thirds of them must be records of a documented layout.
    """
    pieces = head.split(b"\n")
    if len(pieces) > 1:
        pieces = pieces[:-1]  # the last piece may be cut mid-line
    lines = [p.lstrip(b"\xef\xbb\xbf").rstrip(b"\r") for p in pieces if p.strip()][:10]
    if not lines:
        return False
    first = lines[0].decode("utf-8", errors="replace")
    found = header_fields(first)
    if found is not None:
        names = found[0]
        return sum(_known(n) for n in names) >= 3 and any(a in names for a in _ADDRESS_FIELDS)
    return 3 * sum(_is_record(line) for line in lines) >= 2 * len(lines) > 0


def _is_record(line: bytes) -> bool:
    try:
        body = re.sub(_ISO_PREFIX, "", line.decode("utf-8"))
    except UnicodeDecodeError:
        return False
    m = _DEFAULT_LINE.fullmatch(body)
    return m is not None and _LAYOUTS.get(int(m.group(1))) == len(body.split(" "))


# -- parsing ----------------------------------------------------------------------------------


@dataclass
class _Order:
    """How the following lines are read: named fields, or the documented layouts."""

    fields: tuple[str, ...] | None  # None: default v2 / all fields of the line's version
    sep: str = " "
    origin: str = "assumed"  # header | option | assumed


def _candidate_lines(lines: pa.Array) -> list[int]:
    hits = pc.fill_null(pc.match_substring_regex(lines, _CANDIDATE), False)
    idx = pc.indices_nonzero(hits).to_pylist()
    return [i for i in idx if header_fields(lines[i].as_py()) is not None]


class AwsVpcParser(Parser):
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.order = (
            _Order(ctx.aws_fields, " ", "option") if ctx.aws_fields is not None else _Order(None)
        )

    def snapshot(self) -> object:
        return self.order

    def restore(self, state: object) -> None:
        if isinstance(state, _Order):
            self.order = state

    def advance(self, data: bytes | memoryview) -> None:
        for m in _CANDIDATE_LINES.finditer(bytes(data)):
            self._apply(m.group(0).decode("utf-8", errors="replace"))

    def _apply(self, line: str) -> None:
        found = header_fields(line)
        if found is not None:
            self.order = _Order(found[0], found[1], "header")

    def parse(self, chunk: LineChunk) -> Parsed:
        parsed = Parsed()
        for line, reason in chunk.rejects:
            parsed.add_lines(parsed.rejects, pa.array([line], pa.uint64()), pa.array([reason]))
        lines, numbers = chunk.lines, chunk.line_numbers()
        headers = _candidate_lines(lines)
        if headers:
            parsed.add_lines(
                parsed.skips,
                pc.take(numbers, pa.array(headers, pa.int64())),
                pa.array([HEADER_REASON] * len(headers)),
            )
        start = 0
        for stop in [*headers, len(lines)]:
            if stop > start:
                run = (lines.slice(start, stop - start), numbers.slice(start, stop - start))
                self._run(*run, parsed)
            if stop < len(lines):
                self._apply(lines[stop].as_py())
            start = stop + 1
        return parsed

    def _run(self, lines: pa.Array, numbers: pa.Array, parsed: Parsed) -> None:
        """Lines read with one field order, in one query."""
        parsed.warnings.extend(w for w in _warnings(self.order) if w not in parsed.warnings)
        con = self.ctx.con
        con.register("aws_run", pa.table({"line": numbers, "raw": lines}))
        try:
            base = _base(self.order)
            collect(
                self.ctx, routed_query(base, _ROUTE, _SKIP, _NET, _DNS, self.ctx.sensor), parsed
            )
        finally:
            con.unregister("aws_run")


def _warnings(order: _Order) -> list[str]:
    """Which rule gave the field order, said once per file in the ledger entry."""
    if order.fields is None:
        return [
            "AWS lines without a header read as the default format (version 2) or all fields "
            "of their version in the documented order; pkt-srcaddr/pkt-dstaddr used where set"
        ]
    where = "the header line" if order.origin == "header" else "--aws-fields"
    out = [f"AWS field order taken from {where}"]
    if "pkt-srcaddr" in order.fields or "pkt-dstaddr" in order.fields:
        out.append("AWS pkt-srcaddr/pkt-dstaddr used where set, else srcaddr/dstaddr")
    if not all(_known(n) for n in order.fields):
        out.append("AWS field order names fields acdkit does not know; their values are ignored")
    return out


def _col(name: str) -> str:
    return "a_" + name.replace("-", "_")


def _base(order: _Order) -> str:
    """The run's lines split and checked: ``line``, ``problem`` and one column per field."""
    names = order.fields or ALL_FIELDS
    pos = {name: i + 1 for i, name in enumerate(names) if name in _READ}
    if order.fields is not None:
        count_check = (
            f"WHEN len(f) <> {len(names)} THEN 'expected {len(names)} fields, found ' || len(f)"
        )
    else:
        pairs = " OR ".join(f"(f[1] = '{v}' AND len(f) = {n})" for v, n in _LAYOUTS.items())
        count_check = f"WHEN NOT ({pairs}) THEN '{UNKNOWN_ORDER}'"
    cols = [f"{unset(f'f[{i}]')} AS {_col(n)}" for n, i in pos.items()]
    cols += [f"CAST(NULL AS VARCHAR) AS {_col(n)}" for n in ALL_FIELDS if n not in pos]
    # in a documented layout a misfit says the order is another one; else the value is odd
    misfit = (
        "AWS field {} has an unexpected value"
        if order.fields is not None
        else "field order unknown: AWS field {} does not fit the layout"
    )
    tests = [(n, f"{_col(n)} NOT IN ({', '.join(map(sql_quote, w))})") for n, w in _WORDS.items()]
    tests += [(n, f"NOT regexp_full_match({_col(n)}, '{shape}')") for n, shape in _SHAPES.items()]
    # the first field that misfits, in the order of the line, names the reason
    shapes = " ".join(
        f"WHEN {_col(n)} IS NOT NULL AND {test} THEN '{misfit.format(n)}'"
        for n, test in sorted(tests, key=lambda t: pos.get(t[0], 0))
        if n in pos
    )
    if "protocol" in pos:
        shapes += f" WHEN {bad_proto(_col('protocol'))} THEN 'invalid protocol number'"
    # a CloudWatch export's ingestion time (position 5 is its '-', never a record's)
    # a UTF-8 BOM may start the file
    text = "rtrim(CASE WHEN line = 1 THEN ltrim(raw, chr(65279)) ELSE raw END, chr(10) || chr(13))"
    text = (
        f"CASE WHEN substr({text}, 5, 1) = '-' THEN regexp_replace({text}, '{_ISO_PREFIX}', '')"
        f" ELSE {text} END"
    )
    if order.sep == " ":
        split = (
            "CASE WHEN contains(t, '  ') THEN regexp_split_to_array(trim(t), ' +')"
            " ELSE string_split(t, ' ') END"
        )
    else:
        split = f"string_split(t, {sql_quote(order.sep)})"
    return f"""(
        SELECT *, CASE
            WHEN raw IS NULL THEN '{READER_REJECT}'
            WHEN trim(raw, chr(10) || chr(13) || chr(9) || ' ') = '' THEN 'blank line'
            {count_check}
            {shapes}
          END AS problem
        FROM (SELECT line, raw, f, {", ".join(cols)}
              FROM (SELECT line, raw, {split} AS f
                    FROM (SELECT line, raw, {text} AS t FROM aws_run))))"""


_ROUTE = """CASE WHEN a_log_status IN ('NODATA', 'SKIPDATA') THEN NULL
    WHEN coalesce(a_srcaddr, a_dstaddr, a_pkt_srcaddr, a_pkt_dstaddr) IS NULL THEN NULL
    ELSE 'net' END"""
_SKIP = """CASE a_log_status
    WHEN 'NODATA' THEN 'AWS NODATA record (no traffic in the interval)'
    WHEN 'SKIPDATA' THEN 'AWS SKIPDATA record (flows not captured)'
    ELSE 'AWS record without addresses' END"""

_NET = net_inputs(
    kind="'conn'",
    # behind a NAT gateway or a service's interface srcaddr/dstaddr are that interface's own;
    # the pkt-* fields hold the packet's real endpoints
    src_ip="coalesce(a_pkt_srcaddr, a_srcaddr)",
    src_port="a_srcport",
    dst_ip="coalesce(a_pkt_dstaddr, a_dstaddr)",
    dst_port="a_dstport",
    proto=ip_proto("a_protocol"),
    ts="a_start",
    duration="CAST(TRY_CAST(a_end AS BIGINT) - TRY_CAST(a_start AS BIGINT) AS VARCHAR)",
    # a record is one direction of a flow: its counters are those of its source
    orig_bytes="a_bytes",
    orig_pkts="a_packets",
    # the interface names the sensor; the account is not kept (docs/minimization.md §2)
    sensor="a_interface_id",
)
_DNS = dns_inputs()


FORMAT = register(
    SourceFormat(
        "aws-vpc",
        "AWS VPC flow logs, versions 2 to 8, with or without a header line",
        _sniff,
        AwsVpcParser,
    )
)
