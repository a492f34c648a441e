"""Hostile input: the flow-log and CEF parsers never fail on odd lines or JSON, and every line
(or unit) still comes back exactly once as a row, a skip or a reject."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import duckdb
import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from acdkit import minimize, schema, sources
from acdkit.sources._lines import LineChunk

SETTINGS = settings(max_examples=20, deadline=None)
_CON: list[duckdb.DuckDBPyConnection] = []


def _context() -> sources.Context:
    if not _CON:  # one connection for every example: connecting costs more than parsing
        _CON.append(duckdb.connect())
        _CON[0].execute("SET TimeZone = 'UTC'")
    return sources.Context(_CON[0], assume_tz="Asia/Tokyo", year=2021)


def _numbers(parsed: sources.Parsed) -> list[int]:
    """Every line number a parsed chunk accounts for, after minimization, sorted."""
    seen: list[int] = []
    for rows in (*parsed.skips, *parsed.rejects):
        seen += rows.column("line").to_pylist()
    for table, rows in parsed.tables.items():
        kept, bad = minimize.finalize(rows, schema.load(table))
        seen += kept.column("src_line").to_pylist() + bad.column("line").to_pylist()
    return sorted(seen)


def _check_lines(fmt: str, lines: list[str]) -> None:
    ctx = _context()
    parser = sources.get(fmt).make_parser(ctx)
    chunk = LineChunk(1, pa.array([ln + "\n" for ln in lines], pa.large_string()))
    assert _numbers(parser.parse(chunk)) == list(range(1, len(lines) + 1))


PIECES = st.sampled_from(
    [
        "CEF:0|", "CEF:1|", "CEF:7|", "|", "\\|", "\\\\", "\\=", "=", " ", "  ", "\\n", "\\",
        "src=", " dst=", " spt=", " dpt=65536", " proto=", " rt=", " start=", " end=",
        "1614834367123", "99999999999999", "Jan 17 2020 08:52:09", "Feb 30 ", " UTC", " CST",
        " Asia/Tokyo", " Bogus/Zone", " +0900", "<13>1 ", "<13>", "2021-03-04T05:06:07Z ",
        "Mar  4 05:06:07 ", "host ", "10.0.0.1", "::1", "fe80::1%eth0", "app=DNS",
        " destinationDnsDomain=", "request=http://u:p@h/p?q", " requestMethod=GET", "x", "é",
        "\t", "9999", "-",
    ]
)  # fmt: skip
CEF_LINES = st.lists(st.lists(PIECES, max_size=14).map("".join), min_size=1, max_size=12)


@SETTINGS
@given(CEF_LINES)
def test_cef_lines_never_break_the_parser(lines: list[str]) -> None:
    _check_lines("cef", lines)


AWS_TOKENS = st.sampled_from(
    [
        "2", "3", "5", "123456789010", "eni-1235b8ca", "10.0.0.1", "2001:db8::1", "-", "22",
        "70000", "6", "300", "1418530010", "99999999999999999999999", "ACCEPT", "REJECT", "OK",
        "NODATA", "version", "srcaddr", "dstaddr", "start", "account_id", "vpc-1", "IPv4",
        "2014-12-14T04:07:50.000Z", "", "x,y",
    ]
)  # fmt: skip
AWS_LINES = st.lists(st.lists(AWS_TOKENS, max_size=16).map(" ".join), min_size=1, max_size=12)


@SETTINGS
@given(AWS_LINES)
def test_aws_lines_never_break_the_parser(lines: list[str]) -> None:
    _check_lines("aws-vpc", lines)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=12,
)
CONNECTION = st.fixed_dictionaries(
    {"src_ip": JSON, "dest_ip": JSON, "src_port": JSON, "dest_port": JSON, "protocol": JSON}
)
GCP_ENTRY = st.fixed_dictionaries(
    {
        "jsonPayload": st.fixed_dictionaries(
            {"connection": CONNECTION | JSON, "start_time": JSON, "reporter": JSON}
        ),
        "resource": JSON,
    }
)


@SETTINGS
@given(st.lists(GCP_ENTRY.map(json.dumps) | st.text(max_size=20), min_size=1, max_size=8))
def test_gcp_lines_never_break_the_parser(lines: list[str]) -> None:
    _check_lines("gcp-vpc", [ln.replace("\n", " ") for ln in lines])


TUPLE = st.lists(
    st.sampled_from(["1542110379", "10.0.0.1", "443", "T", "U", "6", "O", "A", "B", "", "x"]),
    max_size=14,
).map(",".join)
NSG = st.fixed_dictionaries(
    {
        "category": st.sampled_from(["NetworkSecurityGroupFlowEvent", "FlowLogFlowEvent", "x"]),
        "properties": st.fixed_dictionaries(
            {
                "Version": st.sampled_from([1, 2, 3, "2"]),
                "flows": st.lists(
                    st.fixed_dictionaries(
                        {
                            "flows": st.lists(
                                st.fixed_dictionaries(
                                    {"mac": JSON, "flowTuples": st.lists(TUPLE | JSON, max_size=4)}
                                ),
                                max_size=2,
                            )
                        }
                    ),
                    max_size=2,
                ),
            }
        ),
        "resourceId": JSON,
    }
)


@SETTINGS
@given(
    records=st.lists(NSG | JSON, min_size=1, max_size=5),
    blob=st.booleans(),
    tail=st.text(max_size=5),
)
def test_azure_documents_never_break_the_reader(
    records: list[object], blob: bool, tail: str
) -> None:
    text = json.dumps({"records": records}) if blob else "\n".join(map(json.dumps, records))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "in.json"
        path.write_text(text + tail)
        _check_units(path)


def _check_units(path: Path) -> None:
    ctx = _context()
    fmt = sources.get("azure-flow")
    assert fmt.read_records is not None
    last, seen = 0, []
    for chunk in fmt.read_records(path, ctx):
        last = max(last, chunk.last)
        seen += _numbers(chunk.parsed)
    assert sorted(seen) == list(range(1, last + 1))
