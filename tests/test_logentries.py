"""Queued log entries go into the next segment before its SEAL; heartbeats seal quiet time."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from acdkit import ingest, keys, logentries, seal, verify
from acdkit.cli import app
from acdkit.encoding import EntryType, TlvType, tlv
from acdkit.errors import ExitCode, MalformedError, TamperedError
from acdkit.merkle import CompactRange, leaf_hash
from acdkit.sealinfo import SealInfo
from acdkit.store import Store


def _body(text: str) -> bytes:
    return tlv(1, TlvType.UTF8, text.encode())


def _verdict(store: Store) -> ExitCode:
    return verify.verify_store(store, require_outside=False).verdict


def test_queued_entries_are_sealed_before_the_seal_leaf(
    store: Store, signer: keys.Signer, data: Path
) -> None:
    ingest.ingest(store, [data / "zeek-tsv/zat/dns.log"])
    # GAP bodies are not specified yet: any TLV body stands for an entry the seal carries
    first = logentries.add_pending(store, EntryType.GAP, _body("first gap"))
    second = logentries.add_pending(store, EntryType.GAP, _body("gap"))
    queued = [first.read_bytes(), second.read_bytes()]
    report = seal.seal(store, signer)
    (seg,) = store.segment_dirs()
    info = SealInfo.from_entry((seg / "seal.entry").read_bytes())
    assert (info.record_count, info.entry_count) == (54, 2)
    assert info.end_index == 54 + 2 + 1 == report.size
    assert report.segments[0]["log_entries"] == 2
    stored = logentries.unpack((seg / "entries.bin").read_bytes())
    assert [logentries.parse_entry(e).kind for e in stored] == [EntryType.GAP] * 2
    assert stored == queued
    assert not first.exists() and not second.exists()  # retired once signed
    # the tree is records, then the entries in the order they were queued, then the SEAL
    leaves = seal.segment_leaves(seg, info)
    assert leaves[54:56] == [leaf_hash(e) for e in stored]
    compact = CompactRange()
    compact.extend(leaves)
    assert compact.root() == report.root
    assert _verdict(store) == ExitCode.OK


def test_entries_alone_make_a_segment_and_heartbeats_seal_nothing(
    store: Store, signer: keys.Signer
) -> None:
    assert seal.seal(store, signer).segments == []  # nothing staged, nothing queued
    logentries.add_pending(store, EntryType.GAP, _body("k"))
    assert seal.seal(store, signer).size == 2
    report = seal.seal(store, signer, heartbeat=True)
    assert [s["records"] for s in report.segments] == [0] and report.size == 3
    seal.seal(store, signer, heartbeat=True)
    report_v = verify.verify_store(store, require_outside=False)
    assert report_v.verdict == ExitCode.OK and report_v.facts["tree_size"] == 4
    assert len(store.checkpoint_files()) == 3


def test_heartbeat_from_the_cli(store: Store, key_path: Path, runner: CliRunner) -> None:
    args = ["seal", str(store.root), "--key", str(key_path), "--heartbeat", "--json"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert '"records": 0' in result.stdout and '"tree_size": 1' in result.stdout


@pytest.mark.parametrize("damage", ["edit", "delete", "add"])
def test_damaged_entries_are_tampered(
    store: Store, signer: keys.Signer, damage: str, tmp_path: Path
) -> None:
    logentries.add_pending(store, EntryType.GAP, _body("one"))
    seal.seal(store, signer)
    seal.seal(store, signer, heartbeat=True)
    with_entries, without = store.segment_dirs()
    path = with_entries / "entries.bin"
    if damage == "edit":
        raw = bytearray(path.read_bytes())
        raw[-1] ^= 1
        path.write_bytes(bytes(raw))
    elif damage == "delete":
        path.unlink()
    else:
        shutil.copy(path, without / "entries.bin")
    assert _verdict(store) == ExitCode.TAMPERED


def test_entries_file_with_a_foreign_entry_kind_is_malformed(
    store: Store, signer: keys.Signer
) -> None:
    logentries.add_pending(store, EntryType.GAP, _body("one"))
    seal.seal(store, signer)
    (seg,) = store.segment_dirs()
    seal_entry = (seg / "seal.entry").read_bytes()
    (seg / "entries.bin").write_bytes(logentries.pack([seal_entry]))
    assert _verdict(store) == ExitCode.MALFORMED


def test_parse_entry_is_strict() -> None:
    with pytest.raises(MalformedError, match="RECORD"):
        logentries.parse_entry(b"ACDK\x01\x01" + bytes(32))
    with pytest.raises(MalformedError, match="salt"):
        logentries.parse_entry(b"ACDK\x01\x03" + b"\x01" * 32)
    with pytest.raises(MalformedError, match="unknown entry type"):
        logentries.parse_entry(b"ACDK\x01\x0a" + bytes(32))  # 0x09 is PRUNE (§17)
    with pytest.raises(MalformedError, match="v1"):
        logentries.parse_entry(b"ACDK\x02\x03" + bytes(32))
    with pytest.raises(MalformedError, match="past its end"):
        logentries.unpack(b"\x00\x00\x00\x05abc")
    assert logentries.parse_entry(b"ACDK\x01\x06" + bytes(32) + b"x").body == b"x"


def test_unsigned_segment_with_entries_is_resealed_only_if_still_queued(
    store: Store, signer: keys.Signer
) -> None:
    logentries.add_pending(store, EntryType.GAP, _body("first"))
    seal.seal(store, signer)
    saved_state = store.state_path.read_bytes()
    queued = logentries.add_pending(store, EntryType.GAP, _body("second"))
    keep = queued.read_bytes()
    seal.seal(store, signer)
    # a crash after the segment rename and before its checkpoint leaves the entry queued
    store.checkpoint_files()[-1].unlink()
    store.state_path.write_bytes(saved_state)
    queued.write_bytes(keep)
    assert _verdict(store) == ExitCode.INCOMPLETE
    report = seal.seal(store, signer)
    assert "discarded unsigned segment" in report.recovered[0]
    assert report.segments[0]["log_entries"] == 1 and not queued.exists()
    assert _verdict(store) == ExitCode.OK
    # the same roll-back with the queued entry edited is no crash: refused
    saved_state = store.state_path.read_bytes()
    queued = logentries.add_pending(store, EntryType.GAP, _body("third"))
    seal.seal(store, signer)
    store.checkpoint_files()[-1].unlink()
    store.state_path.write_bytes(saved_state)
    forged = logentries.add_pending(store, EntryType.GAP, _body("forged"))
    forged.rename(queued)
    assert _verdict(store) == ExitCode.TAMPERED
    with pytest.raises(TamperedError, match="differs from the queued one"):
        seal.seal(store, signer)
