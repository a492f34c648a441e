"""The process-pool paths of ingest and seal give exactly what the sequential paths give."""

from __future__ import annotations

import gzip
import hashlib
from pathlib import Path

import pyarrow as pa
import pytest

from acdkit import ingest, keys, leaves, seal, verify
from acdkit.errors import ExitCode
from acdkit.sources import _lines
from acdkit.store import Store, init_store


def _ingest(root: Path, files: list[Path]) -> tuple[Store, keys.Signer, ingest.IngestReport]:
    store, key_path = init_store(root / "store", root / "k" / "sealer.key")
    report = ingest.ingest(store, files)
    return store, keys.load_signer(key_path), report


def _staged_rows(store: Store) -> dict[str, list[dict[str, object]]]:
    out: dict[str, list[dict[str, object]]] = {"net": [], "dns": []}
    for d in store.staged_dirs():
        for table in out:
            t = ingest.read_staged(d, table)
            t = t.set_column(
                t.schema.get_field_index("ts_utc"), "ts_utc", t.column("ts_utc").cast(pa.int64())
            )
            out[table] += t.to_pylist()
    return out


@pytest.mark.parametrize(
    "name",
    [
        "zeek-tsv/zat/conn.log",
        "zeek-tsv/zat/dns.log",
        "zeek-json/zat/http.log",
        "zeek-tsv/zat/http.log.gz",
        "zeek-json/zat/conn.log+long-line",
    ],
)
def test_pool_ingest_equals_sequential(
    tmp_path: Path, data: Path, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = data / name.split("+")[0].removesuffix(".gz")
    if name.endswith(".gz"):  # a worker gets the decompressed bytes, not a file range
        packed = tmp_path / "http.log.gz"
        packed.write_bytes(gzip.compress(source.read_bytes()))
        source = packed
    if name.endswith("+long-line"):  # a line over the limit is rejected by the reader
        lines = source.read_bytes().splitlines(keepends=True)
        source = tmp_path / "conn.log"
        source.write_bytes(b"".join(lines[:5]) + b"x" * 9000 + b"\n" + b"".join(lines[5:]))
        monkeypatch.setattr(_lines, "MAX_LINE", 5000)
    seq_store, _, seq = _ingest(tmp_path / "seq", [source])
    # tiny blocks so that the file spans many chunks, and the TSV header one chunk only
    monkeypatch.setattr(_lines, "BLOCK", 4096)
    monkeypatch.setattr(ingest, "PARALLEL_MIN_BYTES", 0)
    par_store, _, par = _ingest(tmp_path / "par", [source])
    a, b = seq.files[0], par.files[0]
    assert (a.lines, a.records, a.skipped, a.rejected) == (
        b.lines,
        b.records,
        b.skipped,
        b.rejected,
    )
    assert (a.ts_min_ns, a.ts_max_ns) == (b.ts_min_ns, b.ts_max_ns)
    # the digest taken while the file streams past equals one of the whole file
    assert a.sha256 == b.sha256 == hashlib.sha256(source.read_bytes()).hexdigest()
    assert _staged_rows(seq_store) == _staged_rows(par_store)
    parts = sorted(p.name for p in par_store.staged_dirs()[0].glob("*.arrow"))
    assert len(parts) > 3  # really written in several parts by the workers
    if name.endswith("+long-line"):
        assert a.rejected == b.rejected == 1 and b.reject_reasons == {
            "line longer than 5000 bytes": 1
        }


def test_pool_seal_and_verify_equal_sequential(
    tmp_path: Path, data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = [data / "zeek-tsv/zat/conn.log", data / "zeek-tsv/zat/dns.log"]
    store, signer, _ = _ingest(tmp_path / "a", files)
    monkeypatch.setattr(leaves, "POOL_THRESHOLD", 0)
    monkeypatch.setattr(seal, "BATCH_ROWS", 37)
    report = seal.seal(store, signer)
    assert report.size == 360 + 54 + 1
    # the same records sealed in process give the same leaves (salts differ per segment key)
    result = verify.verify_store(store, require_outside=False)
    assert result.verdict == ExitCode.OK, result.to_json()
    monkeypatch.setattr(leaves, "POOL_THRESHOLD", 10**9)
    assert verify.verify_store(store, require_outside=False).verdict == ExitCode.OK


def test_pool_verify_locates_tampering(
    tmp_path: Path, data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pyarrow.parquet as pq

    store, signer, _ = _ingest(tmp_path / "a", [data / "zeek-tsv/zat/conn.log"])
    seal.seal(store, signer)
    path = store.segment_dirs()[0] / "net.parquet"
    table = pq.read_table(path)
    ports = table.column("dst_port").to_pylist()
    ports[300] = 1
    pq.write_table(
        table.set_column(
            table.schema.get_field_index("dst_port"), "dst_port", pa.array(ports, pa.uint16())
        ),
        path,
        row_group_size=50,
    )
    monkeypatch.setattr(leaves, "POOL_THRESHOLD", 0)
    report = verify.verify_store(store, require_outside=False)
    assert report.verdict == ExitCode.TAMPERED
    assert report.failure is not None and report.failure["index"] == 300


def test_pool_ingest_of_a_file_hashed_first_equals_sequential(
    tmp_path: Path, data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a second file of a size the ledger knows is hashed before it is read, then read by
    # the streaming reader; its workers still read their own byte ranges
    first = data / "zeek-json/zat/conn.log"
    twin = tmp_path / "twin.log"
    twin.write_bytes(first.read_bytes().replace(b'"tcp"', b'"udp"', 1))
    seq_store, _, _ = _ingest(tmp_path / "seq", [first, twin])
    monkeypatch.setattr(_lines, "BLOCK", 4096)
    monkeypatch.setattr(ingest, "PARALLEL_MIN_BYTES", 0)
    par_store, _, par = _ingest(tmp_path / "par", [first, twin])
    assert [f.status for f in par.files] == ["ingested", "ingested"]
    assert par.files[1].sha256 == hashlib.sha256(twin.read_bytes()).hexdigest()
    assert _staged_rows(seq_store) == _staged_rows(par_store)
