"""Verification in spans and worker processes reports exactly what the in-order check reports.

The stores here are small, so the span, chunk and batch sizes are made small too: every
table file spans many row groups, spans and batches, and their boundaries do not line up.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from acdkit import _batchsha, ingest, keys, leaves, rebuild, schema, seal, verify
from acdkit.encoding import record_leaf_hashes, record_salts
from acdkit.errors import TamperedError
from acdkit.store import Store
from test_pool import _alive


@pytest.fixture
def small_parts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(verify, "BATCH_ROWS", 64)
    monkeypatch.setattr(rebuild, "SPAN_ROWS", 45)
    monkeypatch.setattr(rebuild, "CHUNK_ROWS", 20)


@pytest.fixture
def sealed(store: Store, signer: keys.Signer, data: Path) -> Store:
    """Two segments: zat TSV conn (360) + dns (54), then the OTRF JSON logs (96 records)."""
    ingest.ingest(store, [data / "zeek-tsv/zat/conn.log", data / "zeek-tsv/zat/dns.log"])
    seal.seal(store, signer)
    ingest.ingest(store, sorted((data / "zeek-json/otrf-apt29").glob("*.log")))
    seal.seal(store, signer)
    _regroup(store.segment_dirs()[0] / "net.parquet", lambda t: t, 30)
    return store


def _regroup(path: Path, change: Callable[[pa.Table], pa.Table], rows: int = 30) -> None:
    """Rewrite a sealed file, changed, in row groups of ``rows`` rows."""
    pq.write_table(change(pq.read_table(path)), path, row_group_size=rows)


def _set(t: pa.Table, name: str, row: int, value: Any) -> pa.Table:
    values = t.column(name).to_pylist()
    values[row] = value
    i = t.schema.get_field_index(name)
    return t.set_column(i, name, pa.array(values, t.schema.field(name).type))


def _both(store: Store, monkeypatch: pytest.MonkeyPatch) -> tuple[Any, Any]:
    """The report of the in-process path and that of the worker path."""
    monkeypatch.setattr(leaves, "POOL_THRESHOLD", 10**9)
    alone = verify.verify_store(store, require_outside=False)
    monkeypatch.setattr(leaves, "POOL_THRESHOLD", 0)
    pooled = verify.verify_store(store, require_outside=False)
    return alone.to_json(), pooled.to_json()


def _in_order(store: Store, segment: int, table: str) -> dict[str, Any]:
    """The failure the plain in-order check of every batch raises, from the first row on."""
    segs = verify._load_segments(store)
    seg = segs[segment]
    key = (seg.path / "segment.key").read_bytes()
    first = seg.info.first_index + sum(
        seg.info.tables[t]["count"] for t in schema.TABLES[: schema.TABLES.index(table)]
        if t in seg.info.tables
    )  # fmt: skip
    with pytest.raises(TamperedError) as caught:
        verify._first_failure(seg, table, schema.load(table), key, first, 0)
    return {"message": caught.value.message, **caught.value.location}  # type: ignore[attr-defined]


@pytest.mark.usefixtures("small_parts")
def test_a_store_of_many_spans_verifies_alone_and_in_workers(
    sealed: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    alone, pooled = _both(sealed, monkeypatch)
    assert pooled["verdict"] == "VERIFIED", pooled
    assert alone == pooled  # checks, warnings, coverage and facts alike
    assert alone["facts"]["tree_size"] == 360 + 54 + 1 + 62 + 2 + 31 + 1 + 1
    # the fixture rewrote segment 0's net.parquet in other row groups: noticed by its hash
    assert any("re-encoded Parquet" in w for w in pooled["warnings"])


def test_spans_are_whole_row_groups(sealed: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rebuild, "SPAN_ROWS", 45)
    path = sealed.segment_dirs()[0] / "net.parquet"
    work = rebuild.spans(path, "net", bytes(32), 7, 0)
    assert [s.row_groups for s in work[:3]] == [(0, 1), (2, 3), (4, 5)]
    assert [(s.start, s.stop, s.begin) for s in work[:2]] == [(0, 60, 7), (60, 120, 67)]
    assert work[-1].stop == 360 and work[-1].begin == 7 + work[-1].start


TAMPERING: dict[str, Callable[[pa.Table], pa.Table]] = {
    "changed field": lambda t: _set(t, "dst_port", 131, 4444),
    "changed field in the last row": lambda t: _set(t, "dst_port", 359, 1),
    "deleted record": lambda t: pa.concat_tables([t.slice(0, 100), t.slice(101)]),
    "swapped records": lambda t: t.take(pa.array([*range(70), 71, 70, *range(72, 360)])),
    "changed index": lambda t: _set(t, "log_index", 200, 5),
    "changed stored hash": lambda t: _set(t, "integrity_hash", 299, bytes(32)),
    # a changed field at row 130 and a moved row at 190: both in the batch of rows 128-191,
    # where the index check comes first, although the changed field is the earlier row
    "two faults in one batch": lambda t: _set(_set(t, "dst_port", 130, 9), "log_index", 190, 0),
    # both within one chunk of a worker, the moved row in the batch before the changed field
    "two faults in one chunk": lambda t: _set(_set(t, "dst_port", 130, 9), "log_index", 125, 0),
    "two faults in two batches": lambda t: _set(_set(t, "dst_port", 150, 9), "log_index", 250, 0),
}


@pytest.mark.usefixtures("small_parts")
@pytest.mark.parametrize("name", sorted(TAMPERING))
def test_tampering_found_by_a_worker_is_reported_as_in_order(
    sealed: Store, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    _regroup(sealed.segment_dirs()[0] / "net.parquet", TAMPERING[name])
    alone, pooled = _both(sealed, monkeypatch)
    assert alone["verdict"] == pooled["verdict"] == "TAMPERED"
    assert alone["failure"] == pooled["failure"]
    expected = _in_order(sealed, 0, "net")
    assert {k: v for k, v in pooled["failure"].items() if k != "check"} == expected


@pytest.mark.usefixtures("small_parts")
@pytest.mark.skipif(_batchsha.engine() != "openssl-batch", reason="no batch library built")
@pytest.mark.parametrize("name", ["changed field", "swapped records", "two faults in one chunk"])
def test_tampering_is_reported_alike_with_and_without_the_batch_library(
    sealed: Store, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    _regroup(sealed.segment_dirs()[0] / "net.parquet", TAMPERING[name])
    with_library = _both(sealed, monkeypatch)  # workers are forked: they hash as the parent
    monkeypatch.setattr(_batchsha, "_library", lambda: None)
    without = _both(sealed, monkeypatch)
    assert with_library == without
    assert without[1]["verdict"] == "TAMPERED"


@pytest.mark.usefixtures("small_parts")
def test_worker_location_of_a_changed_field(sealed: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    path = sealed.segment_dirs()[0] / "net.parquet"
    stored = pq.read_table(path).column("integrity_hash")[131].as_py()
    _regroup(path, TAMPERING["changed field"])
    _, pooled = _both(sealed, monkeypatch)
    failure = pooled["failure"]
    assert (failure["index"], failure["row"], failure["table"]) == (131, 131, "net")
    assert failure["expected"] == stored.hex() and failure["actual"] != failure["expected"]
    assert "a field was changed" in failure["message"]


@pytest.mark.usefixtures("small_parts")
def test_tampering_in_a_later_segment(sealed: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    path = sealed.segment_dirs()[1] / "net.parquet"
    _regroup(path, lambda t: _set(t, "dst_port", 40, 1), 7)
    alone, pooled = _both(sealed, monkeypatch)
    assert alone["failure"] == pooled["failure"]
    assert pooled["failure"]["index"] == 360 + 54 + 1 + 40


@pytest.mark.usefixtures("small_parts")
def test_more_rows_than_declared(sealed: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    # the dns file of segment 0 grows by a copy of its rows: the SEAL declares 54
    path = sealed.segment_dirs()[0] / "dns.parquet"
    _regroup(path, lambda t: pa.concat_tables([t, t]), 10)
    alone, pooled = _both(sealed, monkeypatch)
    assert alone["failure"] == pooled["failure"]
    assert pooled["failure"] == {**_in_order(sealed, 0, "dns"), "check": "4"}


@pytest.mark.usefixtures("small_parts")
def test_a_record_that_cannot_be_encoded(sealed: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    path = sealed.segment_dirs()[0] / "net.parquet"
    _regroup(path, lambda t: _set(t, "src_ip", 222, "not-an-address"))
    alone, pooled = _both(sealed, monkeypatch)
    # seal writes only values that encode: one that does not was changed after sealing
    assert alone["verdict"] == pooled["verdict"] == "TAMPERED"
    assert alone["failure"] == pooled["failure"]
    assert (pooled["failure"]["row"], pooled["failure"]["index"]) == (222, 222)
    assert "not-an-address" in pooled["failure"]["message"]


def test_unreadable_file_in_workers(sealed: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    (sealed.segment_dirs()[1] / "net.parquet").write_bytes(b"PAR1 not really")
    alone, pooled = _both(sealed, monkeypatch)
    assert alone["verdict"] == pooled["verdict"] == "MALFORMED"
    assert alone["failure"] == pooled["failure"]
    assert "not readable Parquet" in pooled["failure"]["message"]


@pytest.mark.usefixtures("small_parts")
def test_a_missing_stored_hash(sealed: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    _regroup(
        sealed.segment_dirs()[0] / "net.parquet", lambda t: _set(t, "integrity_hash", 77, None)
    )
    alone, pooled = _both(sealed, monkeypatch)
    assert alone["failure"] == pooled["failure"]
    assert (pooled["failure"]["index"], pooled["verdict"]) == (77, "TAMPERED")
    assert pooled["failure"]["expected"] is None


@pytest.mark.usefixtures("small_parts")
def test_damaged_pages_behind_a_good_footer(sealed: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    path = sealed.segment_dirs()[0] / "net.parquet"
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 64] = bytes(64)
    path.write_bytes(bytes(data))
    alone, pooled = _both(sealed, monkeypatch)
    assert alone["verdict"] == pooled["verdict"] != "VERIFIED"
    assert alone["failure"] == pooled["failure"]


@pytest.mark.usefixtures("small_parts")
def test_a_missing_index(sealed: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    _regroup(sealed.segment_dirs()[0] / "net.parquet", lambda t: _set(t, "log_index", 99, None))
    alone, pooled = _both(sealed, monkeypatch)
    assert alone["failure"] == pooled["failure"]
    assert (pooled["failure"]["index"], pooled["failure"]["row"]) == (99, 99)


def test_a_dictionary_value_no_row_uses_does_not_fail_a_span(sealed: Store) -> None:
    ts = schema.load("net")
    batch = pq.read_table(sealed.segment_dirs()[0] / "net.parquet").slice(0, 5).to_batches()[0]
    i = batch.schema.get_field_index("dst_ip")
    column = pc.dictionary_encode(batch.column(i))
    values = pa.concat_arrays([column.dictionary, pa.array(["not-an-address"])])
    odd = batch.set_column(i, "dst_ip", pa.DictionaryArray.from_arrays(column.indices, values))
    salts = record_salts(bytes(32), 0, 5)
    assert rebuild._rebuilt(odd, ts, salts) == record_leaf_hashes(batch, ts, salts)


KILLED_PARENT = """
import os, sys, time
from pathlib import Path
from acdkit import leaves, rebuild, verify
from acdkit.store import Store

def stuck(span):
    Path(sys.argv[2], str(os.getpid())).touch()
    time.sleep(120)

leaves.POOL_THRESHOLD = 0
rebuild.SPAN_ROWS = 45  # several spans, so that both workers get one
rebuild.check_span = stuck
verify.verify_store(Store(Path(sys.argv[1])), require_outside=False)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="parent-death signal is Linux")
def test_verify_workers_end_with_a_killed_parent(sealed: Store, tmp_path: Path) -> None:
    seen = tmp_path / "workers"
    seen.mkdir()
    child = subprocess.Popen([sys.executable, "-c", KILLED_PARENT, str(sealed.root), str(seen)])
    deadline = time.monotonic() + 30
    while len(list(seen.iterdir())) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    workers = [int(p.name) for p in seen.iterdir()]
    assert len(workers) == 2 and all(_alive(p) for p in workers)

    child.send_signal(signal.SIGKILL)
    child.wait()
    deadline = time.monotonic() + 10
    while any(_alive(p) for p in workers) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(_alive(p) for p in workers)
