"""The vectorized record encoder against the reference encoder written from the document.

Columns come plain, dictionary-encoded (as `verify` reads sealed text columns), and with
dictionaries that hold values no row uses; every form must give the same leaf hashes.
"""

from __future__ import annotations

import hashlib
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from acdkit import schema
from acdkit.encoding import _hash_rows, record_leaf_hashes, record_salts
from acdkit.errors import MalformedError
from test_vectors import reference_body, reference_salt

KEY = bytes(range(32))
TEXT = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12)
ADDRESSES = st.sampled_from(
    ["10.0.0.1", "192.168.200.7", "0.0.0.0", "255.255.255.255", "2001:db8::1", "::1",
     "fe80::1:2", "::ffff:10.1.2.3"]
)  # fmt: skip
INTEGERS = {
    "u16": st.integers(0, 2**16 - 1),
    "u64": st.integers(0, 2**64 - 1),
    "i64": st.integers(-(2**63), 2**63 - 1),
    "timestamp_ns": st.integers(-(2**63) + 1, 2**63 - 1),
    "duration_ns": st.integers(-(2**63), 2**63 - 1),
}


def _values(f: schema.Field) -> st.SearchStrategy[Any]:
    if f.type in INTEGERS:
        return INTEGERS[f.type]
    if f.type == "ip":
        return ADDRESSES
    if f.type in ("hex16", "hex32"):
        return st.binary(min_size=int(f.type[3:]), max_size=int(f.type[3:])).map(bytes.hex)
    if f.type == "utf8_list":
        return st.lists(TEXT, max_size=3)
    return TEXT


@st.composite
def tables(draw: st.DrawFn) -> tuple[str, list[dict[str, Any]]]:
    """A table name and rows whose columns repeat a few values (so dictionaries and constant
    columns occur), with nulls in the optional fields."""
    table = draw(st.sampled_from(schema.TABLES))
    n = draw(st.integers(1, 30))
    columns = {}
    for f in schema.load(table).fields:
        pool = draw(st.lists(_values(f), min_size=1, max_size=3))
        choice = st.sampled_from(pool) if f.required else st.none() | st.sampled_from(pool)
        columns[f.name] = draw(st.lists(choice, min_size=n, max_size=n))
    return table, [{k: v[i] for k, v in columns.items()} for i in range(n)]


def _expected(table: str, rows: list[dict[str, Any]], position: int) -> bytes:
    out = b""
    for i, row in enumerate(rows):
        entry = b"ACDK\x01\x01" + reference_salt(KEY, position + i) + reference_body(table, row)
        out += hashlib.sha256(b"\x00" + entry).digest()
    return out


UNUSED = {"ip": "203.0.113.9", "hex16": "ab" * 16, "hex32": "cd" * 32}


def _dictionaries(batch: pa.RecordBatch, ts: schema.TableSchema, unused: bool) -> pa.RecordBatch:
    """The text columns dictionary-encoded; with ``unused``, their dictionaries also hold a
    value that no row refers to."""
    columns = []
    for f, column in zip(ts.fields, batch.columns, strict=True):
        if column.type == pa.string():
            column = pc.dictionary_encode(column)
            if unused:
                extra = pa.array([UNUSED.get(f.type, "unused \u2603")])
                values = pa.concat_arrays([column.dictionary, extra])
                column = pa.DictionaryArray.from_arrays(column.indices, values)
        columns.append(column)
    return pa.RecordBatch.from_arrays(columns, batch.schema.names)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tables(), st.integers(0, 5))
def test_leaves_equal_the_reference_in_every_column_form(
    drawn: tuple[str, list[dict[str, Any]]], position: int
) -> None:
    table, rows = drawn
    ts = schema.load(table)
    batch = pa.RecordBatch.from_pylist(rows, schema=ts.staged_arrow())
    salts = record_salts(KEY, position, len(rows))
    expected = _expected(table, rows, position)
    assert record_leaf_hashes(batch, ts, salts) == expected
    assert record_leaf_hashes(_dictionaries(batch, ts, False), ts, salts) == expected
    assert record_leaf_hashes(_dictionaries(batch, ts, True), ts, salts) == expected


def test_an_unused_dictionary_value_that_cannot_be_encoded_is_an_error() -> None:
    ts = schema.load("dns")
    row = {"event_kind": "dns", "ts_utc": 1, "src_ledger_id": "ef" * 32, "src_line": 1,
           "client_ip": "10.0.0.1"}  # fmt: skip
    batch = pa.RecordBatch.from_pylist([row], schema=ts.staged_arrow())
    i = batch.schema.get_field_index("client_ip")
    ips = pa.DictionaryArray.from_arrays(pa.array([0], pa.int32()), ["10.0.0.1", "10.0.0.999"])
    odd = batch.set_column(i, "client_ip", ips)
    with pytest.raises(MalformedError, match=r"10\.0\.0\.999"):
        record_leaf_hashes(odd, ts, record_salts(KEY, 0, 1))


def test_rows_of_any_length_hash_in_row_order() -> None:
    values = [b"a", b"", b"x" * 70_000, b"bc", b"a", b"", b"y" * 70_000, b"de"]
    inputs = pa.array(values, pa.large_binary()).slice(1)  # an offset into the buffers too
    expected = b"".join(hashlib.sha256(v).digest() for v in values[1:])
    assert _hash_rows(inputs) == expected
    assert _hash_rows(inputs.slice(0, 0)) == b""
