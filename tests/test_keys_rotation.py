"""Sealer key rotation and revocation as KEY entries (EVIDENCE §4.1 cases 10 and 18)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from acdkit import bundle, ingest, keys, logentries, rotation, seal, verify
from acdkit.cli import app
from acdkit.encoding import EntryType
from acdkit.errors import ExitCode, MalformedError, TamperedError, UsageError
from acdkit.keychain import (
    REVOKE,
    ROTATE,
    KeyChain,
    key_event_body,
    parse_key_event,
    read_chain,
)
from acdkit.note import Checkpoint, SignedNote, sign_note
from acdkit.store import Store


@pytest.fixture
def sealed(store: Store, signer: keys.Signer, data: Path) -> Store:
    ingest.ingest(store, [data / "zeek-tsv/zat/dns.log"])
    seal.seal(store, signer)
    return store


def _incoming(store: Store, tmp_path: Path, name: str = "next") -> keys.Signer:
    signer = keys.generate(store.origin)
    keys.write_private_key(signer, tmp_path / f"{name}.key")
    return signer


def test_rotation_hands_the_log_to_the_new_key(
    sealed: Store, signer: keys.Signer, data: Path, tmp_path: Path
) -> None:
    new = _incoming(sealed, tmp_path)
    report = rotation.rotate(sealed, signer, new)
    # the rotation is a segment of its own, closed by the outgoing key
    assert [s["log_entries"] for s in report.segments] == [1]
    cp = SignedNote.parse(sealed.checkpoint_files()[-1].read_bytes())
    assert cp.verified_by(signer.verifier) and not cp.verified_by(new.verifier)
    chain = read_chain(sealed)
    assert chain.keys == [signer.verifier, new.verifier] and chain.current == new.verifier
    with pytest.raises(UsageError, match="not this log's current sealer key"):
        seal.seal(sealed, signer, heartbeat=True)
    ingest.ingest(sealed, [data / "zeek-tsv/zat/conn.log"])
    seal.seal(sealed, new)
    last = SignedNote.parse(sealed.checkpoint_files()[-1].read_bytes())
    assert last.verified_by(new.verifier)
    result = verify.verify_store(sealed, require_outside=False)
    assert result.verdict == ExitCode.OK, result.to_json()
    assert "(1 key rotations)" in result.checks[2].detail
    assert result.facts["sealer_key_id"] == new.verifier.key_id.hex()
    # either key may be pinned: each signed checkpoints of this log
    assert (
        verify.verify_store(sealed, pinned=signer.verifier, require_outside=False).verdict
        == ExitCode.OK
    )
    assert (
        verify.verify_store(sealed, pinned=new.verifier, require_outside=False).verdict
        == ExitCode.OK
    )
    stranger = keys.generate(sealed.origin).verifier
    assert (
        verify.verify_store(sealed, pinned=stranger, require_outside=False).verdict
        == ExitCode.TAMPERED
    )


def test_rotation_signed_only_by_the_new_key_is_tampered(
    sealed: Store, signer: keys.Signer, tmp_path: Path
) -> None:
    new = _incoming(sealed, tmp_path)
    # the intruder holds only the new key: the KEY entry names it as the signer
    body = key_event_body(sealed.origin, ROTATE, new, new.verifier, time.time_ns(), new)
    logentries.add_pending(sealed, EntryType.KEY, body)
    size = verify.verify_store(sealed, require_outside=False).facts["tree_size"]
    # seal refuses to sign it (it would break the log for good) and seals nothing
    with pytest.raises(TamperedError, match="not signed by the current sealer key"):
        seal.seal(sealed, signer)
    assert verify.verify_store(sealed, require_outside=False).facts["tree_size"] == size


def test_rotation_without_the_incoming_keys_signature_is_tampered(
    sealed: Store, signer: keys.Signer, tmp_path: Path
) -> None:
    new = _incoming(sealed, tmp_path)
    other = _incoming(sealed, tmp_path, "other")
    good = key_event_body(sealed.origin, ROTATE, signer, new.verifier, 5, new)
    # the same entry with its second signature made by a key that is not the incoming one
    forged = good[:-64] + other.sign(parse_key_event(good).message(sealed.origin))
    logentries.add_pending(sealed, EntryType.KEY, forged)
    with pytest.raises(TamperedError, match="lacks a valid signature by the incoming key"):
        seal.seal(sealed, signer)
    # and had it been sealed anyway (an old acdkit, a forged segment), verify refuses it
    probe = KeyChain(sealed.origin, signer.verifier)
    with pytest.raises(TamperedError, match="incoming key"):
        probe.apply(1, [parse_key_event(forged)])


def test_checkpoint_resigned_with_another_key_is_tampered(
    sealed: Store, signer: keys.Signer, tmp_path: Path
) -> None:
    # journald CVE-2023-31439: the newest checkpoint re-signed by a key the log never
    # rotated to (here, a key that a later rotation will introduce)
    newer = _incoming(sealed, tmp_path)
    path = sealed.checkpoint_files()[-1]
    head = Checkpoint.from_text(SignedNote.parse(path.read_bytes()).text)
    path.write_bytes(sign_note(head.text(), newer).encode())
    report = verify.verify_store(sealed, require_outside=False)
    assert report.verdict == ExitCode.TAMPERED
    assert "the key current at segment 0" in report.failure["message"]


def test_revocation(sealed: Store, signer: keys.Signer, tmp_path: Path) -> None:
    new = _incoming(sealed, tmp_path)
    with pytest.raises(UsageError, match="cannot revoke itself"):
        rotation.revoke(sealed, signer, signer.verifier)
    rotation.rotate(sealed, signer, new)
    rotation.revoke(sealed, new, signer.verifier)
    chain = read_chain(sealed)
    assert chain.revoked == {signer.verifier.key_id}
    assert [e.action for _n, e in chain.events] == [ROTATE, REVOKE]
    assert verify.verify_store(sealed, require_outside=False).verdict == ExitCode.OK
    # a revoked key can never come back
    with pytest.raises(UsageError):
        rotation.rotate(sealed, new, keys.load_signer(tmp_path / "next.key"))


def test_crash_after_the_rotation_checkpoint_is_completed_by_the_new_key(
    sealed: Store, signer: keys.Signer, tmp_path: Path
) -> None:
    new = _incoming(sealed, tmp_path)
    saved = sealed.state_path.read_bytes()
    rotation.rotate(sealed, signer, new)
    sealed.state_path.write_bytes(saved)  # the state write never happened
    report = seal.seal(sealed, new, heartbeat=True)
    assert "completed interrupted seal" in report.recovered[0]
    assert verify.verify_store(sealed, require_outside=False).verdict == ExitCode.OK


def test_keys_cli(sealed: Store, key_path: Path, tmp_path: Path, runner: CliRunner) -> None:
    new_key = tmp_path / "k2.key"
    made = runner.invoke(
        app, ["keys", "new", "--store", str(sealed.root), "--out", str(new_key), "--json"]
    )
    assert made.exit_code == 0, made.output
    vkey = json.loads(made.stdout)["vkey"]
    assert vkey.startswith(sealed.origin + "+") and new_key.stat().st_mode & 0o777 == 0o600
    inside = runner.invoke(
        app, ["keys", "new", "--store", str(sealed.root), "--out", str(sealed.root / "x.key")]
    )
    assert inside.exit_code == ExitCode.USAGE
    rotated = runner.invoke(
        app,
        ["keys", "rotate", str(sealed.root), "--key", str(key_path), "--to", str(new_key),
         "--json"],
    )  # fmt: skip
    assert rotated.exit_code == 0, rotated.output
    assert json.loads(rotated.stdout)["to_key_id"] == vkey.split("+")[1]
    shown = runner.invoke(app, ["keys", "show", str(sealed.root), "--json"])
    rows = json.loads(shown.stdout)["keys"]
    assert [r["current"] for r in rows] == [False, True] and rows[1]["vkey"] == vkey
    root_key = runner.invoke(
        app, ["keys", "new", "--role", "root", "--name", "example.org/root", "--out",
              str(tmp_path / "root.key")],
    )  # fmt: skip
    assert root_key.exit_code == 0 and "example.org/root+" in root_key.output
    old = runner.invoke(app, ["seal", str(sealed.root), "--key", str(key_path), "--heartbeat"])
    assert old.exit_code == ExitCode.USAGE and "keys rotate" in old.output


def test_bundle_after_rotation_verifies_from_either_pinned_key(
    sealed: Store, signer: keys.Signer, data: Path, tmp_path: Path
) -> None:
    new = _incoming(sealed, tmp_path)
    rotation.rotate(sealed, signer, new)
    ingest.ingest(sealed, [data / "zeek-tsv/zat/conn.log"])
    seal.seal(sealed, new)
    window = bundle.Window(
        bundle.parse_time("2000-01-01T00:00:00Z"), bundle.parse_time("2030-01-01T00:00:00Z")
    )
    with pytest.raises(UsageError, match="current sealer key"):
        bundle.package(sealed, signer, "INC-7", window, tmp_path / "old")
    out = tmp_path / "bundle"
    bundle.package(sealed, new, "INC-7", window, out)
    (rotation_proof,) = sorted((out / "key" / "rotations").iterdir())
    for pin in (None, signer.verifier, new.verifier):
        report = bundle.verify_bundle(out, pin)
        assert report.verdict == ExitCode.OK, report.to_json()
        assert "reached by 1 key rotations" in report.checks[2].detail
    stranger = keys.generate(sealed.origin).verifier
    assert bundle.verify_bundle(out, stranger).verdict == ExitCode.TAMPERED
    # without the rotation's proof the manifest's key cannot be reached from the first key
    rotation_proof.unlink()
    assert bundle.verify_bundle(out, signer.verifier).verdict == ExitCode.TAMPERED


def test_interrupted_rotation_must_be_sealed_before_another(
    sealed: Store, signer: keys.Signer, tmp_path: Path
) -> None:
    new, other = _incoming(sealed, tmp_path), _incoming(sealed, tmp_path, "other")
    body = key_event_body(sealed.origin, ROTATE, signer, new.verifier, time.time_ns(), new)
    logentries.add_pending(sealed, EntryType.KEY, body)  # rotate killed before its seal
    with pytest.raises(UsageError, match="already queued"):
        rotation.rotate(sealed, signer, other)
    seal.seal(sealed, signer)  # finishes the interrupted rotation
    assert read_chain(sealed).current == new.verifier
    assert verify.verify_store(sealed, require_outside=False).verdict == ExitCode.OK


def test_garbage_queued_entries_are_refused_before_sealing(
    sealed: Store, signer: keys.Signer
) -> None:
    size = verify.verify_store(sealed, require_outside=False).facts["tree_size"]
    logentries.add_pending(sealed, EntryType.ANCHOR, b"\x00\x01\x04\x00\x00\x00\x01x")
    with pytest.raises(MalformedError, match="would not verify"):
        seal.seal(sealed, signer, heartbeat=True)
    assert verify.verify_store(sealed, require_outside=False).facts["tree_size"] == size
