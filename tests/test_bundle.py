"""Package a bundle from a sealed store of real logs, verify it, and tamper with it.

The tamper cases of EVIDENCE §4 are in test_tamper_cases.py, through the CLI.
"""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from acdkit import bundle, ingest, keys, seal, verify
from acdkit.errors import ExitCode, TamperedError, UsageError
from acdkit.note import sign_note
from acdkit.store import Store

WINDOW = bundle.Window(
    bundle.parse_time("2013-09-15T00:00:00Z"), bundle.parse_time("2013-09-16T00:00:00Z")
)


@pytest.fixture
def sealed(store: Store, signer: keys.Signer, data: Path) -> Store:
    ingest.ingest(store, [data / f"zeek-tsv/zat/{n}.log" for n in ("conn", "dns", "http")])
    seal.seal(store, signer)
    ingest.ingest(store, [data / "zeek-json/zat/conn.log"])
    seal.seal(store, signer)
    return store


@pytest.fixture
def built(sealed: Store, signer: keys.Signer, tmp_path: Path) -> Path:
    out = tmp_path / "bundle-INC-1"
    bundle.package(sealed, signer, "INC-1", WINDOW, out)
    return out


def _resign_manifest(root: Path, signer: keys.Signer) -> None:
    """What an insider holding the key could do after editing files: a fresh manifest."""
    (root / bundle.MANIFEST).unlink()
    text = bundle._manifest_text(
        "INC-1", signer.name, int(next((root / "checkpoint").iterdir()).stem), root
    )
    (root / bundle.MANIFEST).write_bytes(sign_note(text, signer).encode())


def test_bundle_contents_and_verification(built: Path, sealed: Store) -> None:
    report = verify.verify_path(built, pinned=sealed.verifier(), require_outside=False)
    assert report.verdict == ExitCode.OK, report.to_json()
    # the zat TSV capture of 2013-09-15: 360 conn + 150 http in net, 54 dns
    assert report.facts["records"] == 360 + 150 + 54
    assert report.coverage.startswith("564 disclosed records and 1 SEAL leaves proven")
    assert len(list((built / "proofs").iterdir())) == 564
    summary = json.loads((built / "summary/summary.json").read_text())
    facts = summary["machine_information"]
    assert facts["counts"] == {
        "net": {"conn": 360, "http": 150},
        "dns": {"transaction": 54},
        "edr": {},
    }
    assert facts["top_talkers"][0]["src_ip"] == "192.168.33.10"
    assert {
        "address": "54.245.228.191",
        "records": facts["external_addresses"][0]["records"],
    } == facts["external_addresses"][0]
    assert summary["report_items"]["report_type"]["title"].startswith("報告種別")
    for name in ("flows", "dns", "http", "tls"):
        assert (built / "logs" / f"{name}.parquet").is_file()
        assert (built / "logs" / f"{name}.csv").is_file()
    flows = pq.read_table(built / "logs/flows.parquet")
    assert sum(flows.column("records").to_pylist()) == 360 + 150
    md = (built / "summary/summary.md").read_text()
    assert "Technical summary — incident INC-1" in md and "192.168.33.10" in md


def test_address_filter(sealed: Store, signer: keys.Signer, tmp_path: Path) -> None:
    window = bundle.Window(WINDOW.start, WINDOW.end, dst=("54.245.228.191",))
    report = bundle.package(sealed, signer, "INC-2", window, tmp_path / "b")
    rows = pq.read_table(tmp_path / "b/records/net.parquet")
    assert set(rows.column("dst_ip").to_pylist()) == {"54.245.228.191"}
    assert report.disclosed["net"] == rows.num_rows > 0
    assert report.disclosed["dns"] == 0  # no DNS to that address as resolver


def test_disclosed_record_edit_is_tampered_even_with_resigned_manifest(
    built: Path, signer: keys.Signer
) -> None:
    path = built / "records/net.parquet"
    table = pq.read_table(path)
    ports = table.column("dst_port").to_pylist()
    ports[0] = 6667
    pq.write_table(
        table.set_column(
            table.schema.get_field_index("dst_port"), "dst_port", pa.array(ports, pa.uint16())
        ),
        path,
    )
    _resign_manifest(built, signer)
    report = verify.verify_path(built, require_outside=False)
    assert report.verdict == ExitCode.TAMPERED
    assert report.failure["check"] == "6"  # type: ignore[index]


@pytest.mark.parametrize("content", [b"not parquet at all", b"PAR1garbagePAR1", "other-schema"])
def test_garbage_records_file_with_resigned_manifest_is_malformed(
    built: Path, signer: keys.Signer, content: bytes | str
) -> None:
    path = built / "records/net.parquet"
    if content == "other-schema":
        pq.write_table(pa.table({"x": [1, 2]}), path)
    else:
        path.write_bytes(content)  # type: ignore[arg-type]
    _resign_manifest(built, signer)
    report = verify.verify_path(built, require_outside=False)
    assert report.verdict == ExitCode.MALFORMED
    assert report.failure is not None
    assert "not a Parquet file of the sealed schema" in report.failure["message"]


def test_package_refuses_a_tampered_store(
    sealed: Store, signer: keys.Signer, tmp_path: Path
) -> None:
    path = sealed.segment_dirs()[0] / "dns.parquet"
    table = pq.read_table(path)
    pq.write_table(table.slice(1), path)
    with pytest.raises(TamperedError):
        bundle.package(sealed, signer, "INC-3", WINDOW, tmp_path / "b")
    assert not (tmp_path / "b").exists()


def test_package_limits_and_arguments(sealed: Store, signer: keys.Signer, tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="564 records match"):
        bundle.package(sealed, signer, "INC-4", WINDOW, tmp_path / "b", max_records=100)
    with pytest.raises(UsageError):
        bundle.package(sealed, signer, "../evil", WINDOW, tmp_path / "c")
    with pytest.raises(UsageError):
        bundle.parse_time("2013-09-15T00:00:00")  # no zone: never guessed
    (tmp_path / "d").mkdir()
    (tmp_path / "d/x").write_text("keep me")
    with pytest.raises(UsageError):
        bundle.package(sealed, signer, "INC-5", WINDOW, tmp_path / "d")
    assert (tmp_path / "d/x").read_text() == "keep me"


def test_duplicated_disclosed_rows_are_tampered(built: Path, signer: keys.Signer) -> None:
    # every row twice, the manifest signed again: the count of disclosed records would lie
    path = built / "records/net.parquet"
    table = pq.read_table(path)
    pq.write_table(pa.concat_tables([table, table]), path)
    _resign_manifest(built, signer)
    report = verify.verify_path(built, require_outside=False)
    assert report.verdict == ExitCode.TAMPERED
    assert "appears more than once" in report.failure["message"]  # type: ignore[index]


def test_disclosed_text_that_is_not_utf8_is_malformed(built: Path, signer: keys.Signer) -> None:
    # found by the raw Parquet bit flips: a flipped byte in an address string reached the
    # address encoder, which raised UnicodeDecodeError (exit 70)
    path = built / "records/net.parquet"
    table = pq.read_table(path)
    j = table.schema.get_field_index("dst_ip")
    raw = [b"10.\xb1.0.1", *(v.encode() for v in table.column(j).to_pylist()[1:])]
    table = table.set_column(j, "dst_ip", pa.array(raw, pa.binary()).view(pa.string()))
    pq.write_table(table, path)
    _resign_manifest(built, signer)
    report = verify.verify_path(built, require_outside=False)
    assert report.verdict == ExitCode.MALFORMED
    assert report.failure is not None
    assert "not a Parquet file of the sealed schema" in report.failure["message"]


def test_disclosed_records_file_that_fails_to_decompress_is_malformed(
    built: Path, signer: keys.Signer
) -> None:
    # found by the raw Parquet flips with the manifest re-signed: pyarrow raises a plain
    # OSError ("ZSTD decompression failed"), which verify reported as IO, "cannot read
    # bundle file: None", though the file was read and is damaged
    path = built / "records/net.parquet"
    data = bytearray(path.read_bytes())
    first_page = data.index(b"PAR1") + 4 + 20  # inside the first column chunk's pages
    for i in range(first_page, first_page + 64):
        data[i] ^= 0x55
    path.write_bytes(bytes(data))
    _resign_manifest(built, signer)
    report = verify.verify_path(built, require_outside=False)
    assert report.verdict == ExitCode.MALFORMED, report.to_json()
    assert report.failure is not None
    assert (
        "records/net.parquet is not a Parquet file of the sealed schema"
        in report.failure["message"]
    )
