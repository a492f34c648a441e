"""The SQL time conversion against Python's exact decimal arithmetic."""

from __future__ import annotations

from decimal import Decimal

import duckdb
import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from acdkit.sources._sql import ts_ns

INT64 = (-(2**63), 2**63 - 1)


_CON = duckdb.connect(":memory:")


def _convert(texts: list[str | None]) -> list[int | None]:
    _CON.register("t", pa.table({"ts": pa.array(texts, pa.string())}))
    rows = _CON.sql(f"SELECT {ts_ns('ts')} AS ns FROM t").to_arrow_table()
    _CON.unregister("t")
    return list(rows.column("ns").to_pylist())


def _expected(text: str) -> int | None:
    ns = Decimal(text) * 1_000_000_000
    value = int(ns)
    return value if INT64[0] <= value <= INT64[1] else None


epoch_text = st.builds(
    lambda sign, whole, frac: f"{sign}{whole}" + (f".{frac}" if frac is not None else ""),
    st.sampled_from(["", "-", "+"]),
    st.integers(min_value=0, max_value=99_999_999_999),
    st.none() | st.text(alphabet="0123456789", min_size=0, max_size=9),
)


@settings(max_examples=150, deadline=None)
@given(st.lists(epoch_text, min_size=1, max_size=40))
def test_epoch_seconds_become_exact_nanoseconds(texts: list[str]) -> None:
    assert _convert(list(texts)) == [_expected(t) for t in texts]


def test_malformed_numbers_are_null_not_misread() -> None:
    texts = ["1.2.3", "1..5", ".", "-", "12a.5", "", None]
    assert _convert(texts) == [None] * len(texts)


def test_forms_outside_the_fast_path_keep_their_decimal_meaning() -> None:
    # scientific form, a bare point, and more than 9 decimals (rounded to the nearest ns)
    texts = ["1e9", ".5", "5.", "1.1234567895", "-0.000000001"]
    assert _convert(texts) == [10**18, 500_000_000, 5_000_000_000, 1_123_456_790, -1]


def test_zeek_and_iso_forms_agree() -> None:
    got = _convert(["1764000000.008955", "2025-11-24T16:00:00.008955Z"])
    assert got == [1_764_000_000_008_955_000, 1_764_000_000_008_955_000]
