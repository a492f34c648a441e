"""Seal a store from real Zeek logs, then damage it and interrupt its seals.

The tamper cases of EVIDENCE §4 are in test_tamper_cases.py, through the CLI.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from acdkit import ingest, keys, schema, seal, verify
from acdkit.encoding import canonical_bodies, leaf_hashes, record_salts
from acdkit.errors import ExitCode, InputIOError, TamperedError, UsageError
from acdkit.sealinfo import SealInfo
from acdkit.store import Store, init_store


@pytest.fixture
def sealed(store: Store, signer: keys.Signer, data: Path) -> Store:
    """Two segments: zat TSV conn+dns, then the OTRF JSON logs."""
    ingest.ingest(store, [data / "zeek-tsv/zat/conn.log", data / "zeek-tsv/zat/dns.log"])
    seal.seal(store, signer)
    ingest.ingest(store, sorted((data / "zeek-json/otrf-apt29").glob("*.log")))
    seal.seal(store, signer)
    return store


def _segment(store: Store, n: int) -> Path:
    return store.segment_dirs()[n]


def _rewrite(path: Path, change: object) -> None:
    table = pq.read_table(path)
    pq.write_table(change(table), path)  # type: ignore[operator]


def _check(
    store: Store, verdict: ExitCode, *, allow_incomplete: bool = False
) -> verify.VerifyReport:
    report = verify.verify_store(store, allow_incomplete=allow_incomplete, require_outside=False)
    assert report.verdict == verdict, report.to_json()
    return report


def test_sealed_store_verifies_with_coverage(sealed: Store) -> None:
    report = _check(sealed, ExitCode.OK)
    size = report.facts["tree_size"]
    # 360 conn + 54 dns + SEAL, then 62 http + 2 ssl + 31 conn + 1 dns + SEAL
    assert size == 360 + 54 + 1 + 62 + 2 + 31 + 1 + 1
    assert report.coverage.startswith(f"leaves 0-{size - 1:,} verified against checkpoint {size:,}")
    # six checks passed, and one warning: nothing outside the store commits to the log
    assert [c.status for c in report.checks] == ["ok"] * 6 + ["warn"]
    assert report.checks[-1].id == "6" and "cannot be excluded" in report.checks[-1].detail
    assert len(sealed.checkpoint_files()) == 2


def test_deleted_segment_directory_is_tampered(sealed: Store) -> None:
    shutil.rmtree(_segment(sealed, 0))
    _check(sealed, ExitCode.TAMPERED)


def test_unreadable_parquet_is_malformed(sealed: Store) -> None:
    (_segment(sealed, 1) / "net.parquet").write_bytes(b"PAR1 not really")
    _check(sealed, ExitCode.MALFORMED)


def _seal_another(sealed: Store, signer: keys.Signer, data: Path) -> tuple[bytes, Path, Path]:
    """Seal one more file; return the sealer state before, its staged dir and a copy of it."""
    ingest.ingest(sealed, [data / "zeek-tsv/zat/ssl.log"])
    saved_state = sealed.state_path.read_bytes()
    staged = sealed.staged_dirs()[0]
    keep = sealed.root.parent / "staged-copy"
    shutil.copytree(staged, keep)
    seal.seal(sealed, signer)
    return saved_state, staged, keep


def test_interrupted_seal_is_incomplete_then_recovered(
    sealed: Store, signer: keys.Signer, data: Path
) -> None:
    saved_state, staged, keep = _seal_another(sealed, signer, data)
    # simulate a crash after the segment rename, before checkpoint, state and retirement
    newest = sealed.checkpoint_files()[-1]
    newest.unlink()
    sealed.state_path.write_bytes(saved_state)
    shutil.copytree(keep, staged)
    (sealed.ledger_dir / f"{ingest.staged_ledger_id(staged)}.json").unlink()  # not retired yet
    _check(sealed, ExitCode.INCOMPLETE)
    report = seal.seal(sealed, signer)
    # the unsigned segment is dropped and its still-staged input sealed afresh
    assert report.recovered and "discarded unsigned segment" in report.recovered[0]
    assert [s["records"] for s in report.segments] == [37]
    assert newest.exists() and not staged.exists()
    _check(sealed, ExitCode.OK)


def test_crash_after_checkpoint_before_state_completes_the_seal(
    sealed: Store, signer: keys.Signer, data: Path
) -> None:
    saved_state, staged, keep = _seal_another(sealed, signer, data)
    newest = sealed.checkpoint_files()[-1].read_bytes()
    # the checkpoint was written; the state and the retirement of inputs were not
    sealed.state_path.write_bytes(saved_state)
    shutil.copytree(keep, staged)
    report = seal.seal(sealed, signer)
    assert report.recovered and "completed interrupted seal" in report.recovered[0]
    assert report.segments == [] and sealed.checkpoint_files()[-1].read_bytes() == newest
    assert not staged.exists()
    _check(sealed, ExitCode.OK)


def test_checkpoint_deleted_and_state_rolled_back_is_not_re_signed(
    sealed: Store, signer: keys.Signer, data: Path
) -> None:
    # an insider with write access but no key: roll the sealer state back past the newest
    # segment, delete its checkpoint, change a record and recompute its integrity hash with
    # the segment key; the next seal must not sign that segment as "interrupted"
    saved_state, _, _ = _seal_another(sealed, signer, data)
    seg = sealed.segment_dirs()[-1]
    table = pq.read_table(seg / "net.parquet")
    rows = table.to_pylist()
    rows[0]["dst_ip"] = "6.6.6.6"
    forged = pa.Table.from_pylist(rows, schema=table.schema)
    key = (seg / "segment.key").read_bytes()
    staged_rows = forged.drop_columns(["log_index", "integrity_hash"])
    hashes = leaf_hashes(
        canonical_bodies(staged_rows, schema.load("net")), record_salts(key, 0, len(rows))
    )
    forged = forged.set_column(
        forged.schema.get_field_index("integrity_hash"),
        "integrity_hash",
        pa.array([hashes[i : i + 32] for i in range(0, len(hashes), 32)], pa.binary(32)),
    )
    pq.write_table(forged, seg / "net.parquet")
    sealed.checkpoint_files()[-1].unlink()
    sealed.state_path.write_bytes(saved_state)

    with pytest.raises(TamperedError, match="no checkpoint and its inputs are no longer staged"):
        seal.seal(sealed, signer)
    # verify applies the same test: this is tampering, not an interrupted seal
    report = _check(sealed, ExitCode.TAMPERED)
    assert report.failure is not None
    assert "no checkpoint and its inputs are no longer staged" in report.failure["message"]


@pytest.mark.parametrize("forgery", ["other file staged", "edited copy staged"])
def test_rolled_back_segment_with_forged_staging_is_not_re_signed(
    sealed: Store, signer: keys.Signer, data: Path, tmp_path: Path, forgery: str
) -> None:
    # as above, and the insider also puts a staging directory under the name the segment's
    # consumed.json lists, so that "its inputs are still staged" holds
    saved_state, staged, _ = _seal_another(sealed, signer, data)
    sealed.checkpoint_files()[-1].unlink()
    sealed.state_path.write_bytes(saved_state)
    scratch, _ = init_store(tmp_path / "scratch", tmp_path / "scratch-keys" / "k")
    source = tmp_path / "ssl.log"
    text = (data / "zeek-tsv/zat/ssl.log").read_text()
    source.write_text(text.replace("\t443\t", "\t4444\t", 1))
    if forgery == "other file staged":
        source = data / "zeek-tsv/zat/dns.log"
    ingest.ingest(scratch, [source])
    forged = scratch.staged_dirs()[0]
    if forgery == "edited copy staged":
        # the forger also makes the ledger entry claim the original file's digest
        entry = json.loads((forged / "ledger.json").read_text())
        entry["sha256"] = staged.name.split("-", 1)[1]
        (forged / "ledger.json").write_text(json.dumps(entry))
    shutil.copytree(forged, staged)

    with pytest.raises(TamperedError, match="no checkpoint and its"):
        seal.seal(sealed, signer)
    _check(sealed, ExitCode.TAMPERED)


def test_renamed_segment_is_refused_by_seal(sealed: Store, signer: keys.Signer, data: Path) -> None:
    _seal_another(sealed, signer, data)
    seg = sealed.segment_dirs()[-1]
    seg.rename(sealed.segments / f"{0:020d}-{int(seg.name.split('-')[0]):020d}")
    with pytest.raises(TamperedError, match="renamed"):
        seal.seal(sealed, signer)


def test_missing_newest_checkpoint_is_rewritten_by_next_seal(
    sealed: Store, signer: keys.Signer
) -> None:
    newest = sealed.checkpoint_files()[-1]
    original = newest.read_bytes()
    newest.unlink()
    report = seal.seal(sealed, signer)
    assert report.recovered == [f"re-wrote missing checkpoint {int(newest.stem)}"]
    assert newest.read_bytes() == original
    _check(sealed, ExitCode.OK)


@pytest.mark.parametrize("replacement", ["directory", "device link", "dangling link", "edited"])
def test_replaced_newest_checkpoint_is_malformed_or_tampered_and_seal_refuses_it(
    sealed: Store, signer: keys.Signer, data: Path, replacement: str
) -> None:
    newest = sealed.checkpoint_files()[-1]
    original = newest.read_bytes()
    newest.unlink()
    if replacement == "directory":
        newest.mkdir()
    elif replacement == "device link":
        newest.symlink_to("/dev/zero")
    elif replacement == "dangling link":
        newest.symlink_to(sealed.root / "no-such-file")
    else:
        newest.write_bytes(original.replace(b"\n\n", b"\n\n\n", 1))
    # the name is still listed: a checkpoint must not vanish from verification
    assert newest in sealed.checkpoint_files()
    # not a regular file, or a note that no longer parses strictly: the evidence is damaged
    assert verify.verify_store(sealed, require_outside=False).verdict == ExitCode.MALFORMED
    ingest.ingest(sealed, [data / "zeek-tsv/zat/ssl.log"])
    with pytest.raises(TamperedError, match=newest.name):
        seal.seal(sealed, signer)  # new segments would bury the damage
    assert len(sealed.segment_dirs()) == 2 and sealed.staged_dirs()


def test_reencoded_parquet_still_verifies(sealed: Store) -> None:
    path = _segment(sealed, 0) / "net.parquet"
    table = pq.read_table(path)
    pq.write_table(table, path, compression="gzip", row_group_size=50)
    report = _check(sealed, ExitCode.OK)
    assert any("re-encoded" in w for w in report.warnings)


def test_moved_store_still_verifies(sealed: Store, tmp_path: Path) -> None:
    moved = tmp_path / "elsewhere" / "copy"
    shutil.copytree(sealed.root, moved)
    _check(Store(moved), ExitCode.OK)


def test_empty_store_is_incomplete(store: Store) -> None:
    report = _check(store, ExitCode.INCOMPLETE)
    assert "empty" in report.coverage


def test_seal_refuses_a_foreign_key(sealed: Store) -> None:
    with pytest.raises(UsageError):
        seal.seal(sealed, keys.generate(sealed.origin))


def test_segment_layout_and_key_mode(sealed: Store) -> None:
    seg = _segment(sealed, 0)
    assert sorted(p.name for p in seg.iterdir()) == [
        "consumed.json",
        "dns.parquet",
        "net.parquet",
        "seal.entry",
        "segment.key",
    ]
    assert (seg / "segment.key").stat().st_mode & 0o777 == 0o600
    info = SealInfo.from_entry((seg / "seal.entry").read_bytes())
    assert (info.first_index, info.end_index, info.record_count) == (0, 415, 414)
    assert info.tables["net"]["count"] == 360 and info.tables["dns"]["count"] == 54
    assert info.prev_checkpoint == bytes(32)
    net = pq.read_table(seg / "net.parquet")
    assert net.column("log_index").to_pylist() == list(range(360))
    assert pc.min(net.column("ts_utc")).as_py().year == 2013
    # no private key material anywhere in the store
    for path in sealed.root.rglob("*"):
        if path.is_file():
            assert b"PRIVATE KEY" not in path.read_bytes()


@pytest.mark.parametrize("damage", ["seal.entry deleted", "segment.key deleted", "stray segment"])
def test_missing_sealed_files_are_tampered(sealed: Store, damage: str) -> None:
    seg = _segment(sealed, 0)
    if damage == "seal.entry deleted":
        (seg / "seal.entry").unlink()
    elif damage == "segment.key deleted":
        (seg / "segment.key").unlink()
    else:  # a directory named like a segment that no seal made
        (sealed.segments / f"{99:020d}-{120:020d}").mkdir()
    report = _check(sealed, ExitCode.TAMPERED)
    assert report.failure is not None
    assert ("seal.entry" in report.failure["message"]) or (
        "segment.key" in report.failure["message"]
    )


@pytest.mark.parametrize(
    "damage",
    ["column dropped", "column renamed", "port column as text"],
)
def test_parquet_without_the_sealed_columns_is_malformed(sealed: Store, damage: str) -> None:
    # found by the raw Parquet flips of tests/test_bitflips.py: a flipped column name in the
    # footer made verify raise KeyError (exit 70) instead of giving a verdict
    path = _segment(sealed, 0) / "net.parquet"
    table = pq.read_table(path)
    i = table.schema.get_field_index("url_host")
    if damage == "column dropped":
        table = table.remove_column(i)
    elif damage == "column renamed":
        table = table.rename_columns(
            [*table.column_names[:i], "url_hosu", *table.column_names[i + 1 :]]
        )
    else:  # text where a port is sealed
        j = table.schema.get_field_index("dst_port")
        ports = ["eighty", *table.column(j).cast(pa.string()).to_pylist()[1:]]
        table = table.set_column(j, "dst_port", pa.array(ports, pa.string()))
    pq.write_table(table, path)
    report = _check(sealed, ExitCode.MALFORMED)
    assert report.failure is not None
    assert f"{_segment(sealed, 0).name}/net.parquet" in report.failure["message"]


def test_parquet_footer_with_a_name_that_is_not_utf8_is_malformed(sealed: Store) -> None:
    # found by the raw Parquet bit flips: pyarrow raises UnicodeDecodeError for such a name
    path = _segment(sealed, 1) / "dns.parquet"
    path.write_bytes(path.read_bytes().replace(b"session_id", b"\xf3ession_id"))
    report = _check(sealed, ExitCode.MALFORMED)
    assert report.failure is not None
    assert "dns.parquet is not readable Parquet" in report.failure["message"]


def test_text_column_that_is_not_utf8_is_malformed(sealed: Store) -> None:
    # found by the raw Parquet bit flips: Parquet readers do not check UTF-8, and the
    # address encoder then raised UnicodeDecodeError (exit 70) on a flipped address byte
    path = _segment(sealed, 0) / "net.parquet"
    table = pq.read_table(path)
    j = table.schema.get_field_index("dst_ip")
    raw = [b"10.\xb1.0.1", *(v.encode() for v in table.column(j).to_pylist()[1:])]
    table = table.set_column(j, "dst_ip", pa.array(raw, pa.binary()).view(pa.string()))
    pq.write_table(table, path)
    report = _check(sealed, ExitCode.MALFORMED)
    assert report.failure is not None
    assert "net.parquet does not hold the sealed columns" in report.failure["message"]


def test_staged_input_with_an_unreadable_ledger_entry_gives_a_verdict(
    sealed: Store, data: Path
) -> None:
    # staging is bookkeeping, not evidence: a damaged entry there is reported, and verify
    # still gives its verdict on what is sealed (it raised IO "does not exist" before)
    ingest.ingest(sealed, [data / "zeek-tsv/zat/ssl.log"])
    (sealed.staged_dirs()[0] / "ledger.json").unlink()
    report = _check(sealed, ExitCode.OK)
    assert any("ledger.json" in w and "not counted" in w for w in report.warnings)


def test_damaged_column_chunk_path_with_intact_records_verifies_with_a_warning(
    sealed: Store,
) -> None:
    # found by the raw Parquet bit flips: a column chunk's path not UTF-8 once failed the
    # span planner (RuntimeError), and reading such chunk metadata can abort the process
    # inside Arrow.  The planner no longer reads it; the records themselves are intact and
    # verify, and the changed file bytes are reported (Parquet is only their container)
    path = _segment(sealed, 1) / "net.parquet"
    data = path.read_bytes()
    footer = len(data) - 8 - int.from_bytes(data[-8:-4], "little")
    # in the footer a name comes first in the schema, then in each column chunk's path
    at = data.index(b"session_id", data.index(b"session_id", footer) + 1)
    path.write_bytes(data[:at] + b"\xf2" + data[at + 1 :])
    assert pq.read_table(path).num_rows == 95  # the plain reader does not mind
    report = _check(sealed, ExitCode.OK)
    assert any("net.parquet differs from the sealed file bytes" in w for w in report.warnings)


def test_a_seal_does_not_reread_the_segments_its_state_covers(
    store: Store, signer: keys.Signer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # heartbeats pile up segments: recovery looks only at those after the sealed state
    for _ in range(5):
        seal.seal(store, signer, heartbeat=True)
    read: list[str] = []
    plain = seal._segment_info
    monkeypatch.setattr(seal, "_segment_info", lambda seg: read.append(seg.name) or plain(seg))
    seal.seal(store, signer, heartbeat=True)
    assert read == [] and len(store.segment_dirs()) == 6
    assert verify.verify_path(store.root, require_outside=False).verdict == ExitCode.OK
    # a segment directory that a seal cannot have made still stops the seal
    (store.segments / "not-a-segment").mkdir()
    with pytest.raises((TamperedError, InputIOError)):
        seal.seal(store, signer, heartbeat=True)
