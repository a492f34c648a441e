"""The witness (EVIDENCE §3.5, §4.1 rows 6 and 8, §4.2 row 6): it cosigns only checkpoints that
extend the last one it cosigned, and its cosignatures let `verify` catch a rollback of the store
that the store alone cannot show."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import stat
import struct
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from _evidence import roll_back
from acdkit import bundle, ingest, keys, seal, verify, witness
from acdkit.cli import app
from acdkit.cosignature import (
    WitnessPolicy,
    cosign,
    cosignature_message,
    cosignature_timestamp,
    read_cosigned,
)
from acdkit.errors import ExitCode, MalformedError, TamperedError, UsageError
from acdkit.merkle import verify_consistency
from acdkit.note import Checkpoint, NoteSignature, SignedNote, sign_note
from acdkit.store import Store

T0 = 1_764_547_200  # 2025-12-01T00:00:00Z, the witness's clock in these tests


def _grow(store: Store, signer: keys.Signer, *files: Path) -> int:
    ingest.ingest(store, list(files))
    return seal.seal(store, signer).size


@pytest.fixture
def logs(data: Path) -> list[Path]:
    return [
        data / "zeek-tsv/zat/conn.log",
        data / "zeek-tsv/zat/dns.log",
        data / "zeek-json/otrf-apt29/UTICA-C_conn.log",
        data / "zeek-json/otrf-apt29/UTICA-C_dns.log",
    ]


@pytest.fixture
def sealed(store: Store, signer: keys.Signer, logs: list[Path]) -> Store:
    """A store of two segments."""
    _grow(store, signer, logs[0], logs[1])
    _grow(store, signer, logs[2])
    return store


def _witness_key(tmp_path: Path, name: str = "witness.example/w1") -> keys.WitnessSigner:
    return witness.init_witness(tmp_path / "witness-host" / f"{name.replace('/', '_')}.key", name)


@pytest.fixture
def w1(tmp_path: Path) -> keys.WitnessSigner:
    return _witness_key(tmp_path)


@pytest.fixture
def w2(tmp_path: Path) -> keys.WitnessSigner:
    return _witness_key(tmp_path, "witness.example/w2")


def _state(tmp_path: Path, w: keys.WitnessSigner) -> Path:
    return tmp_path / "witness-host" / f"{w.name.replace('/', '_')}.state.json"


def _cosign(
    store: Store, w: keys.WitnessSigner, tmp_path: Path, now: int = T0
) -> witness.WitnessResult:
    return witness.witness_store(store, w, _state(tmp_path, w), now)


def _policy(*ws: keys.WitnessSigner, quorum: int | None = None) -> WitnessPolicy:
    return WitnessPolicy.of([w.verifier for w in ws], quorum)


def _verify(store: Store, *ws: keys.WitnessSigner, **kw: object) -> verify.VerifyReport:
    kw.setdefault("now", T0 + 60)
    policy = _policy(*ws, quorum=kw.pop("quorum", None)) if ws else None  # type: ignore[arg-type]
    return verify.verify_store(store, witnesses=policy, **kw)  # type: ignore[arg-type]


def test_cosign_grow_cosign_again(
    sealed: Store, signer: keys.Signer, w1: keys.WitnessSigner, logs: list[Path], tmp_path: Path
) -> None:
    checkpoints = {p.name: p.read_bytes() for p in sealed.checkpoint_files()}
    first = _cosign(sealed, w1, tmp_path)
    assert first.previous is None and first.key_source == "trust on first use"
    assert any("on first use" in n for n in first.notes)
    size = first.size
    assert (
        first.written
        == sealed.root / "cosignatures" / f"{size:020d}.{w1.verifier.key_id.hex()}.cosig"
    )
    note = SignedNote.parse(first.written.read_bytes())
    assert note.text == SignedNote.parse(sealed.checkpoint_path(size).read_bytes()).text
    assert note.verified_by(sealed.verifier())  # the log's own signature line is kept
    assert cosignature_timestamp(note, w1.verifier) == T0
    # the witness never rewrites a checkpoint file
    assert {p.name: p.read_bytes() for p in sealed.checkpoint_files()} == checkpoints

    bigger = _grow(sealed, signer, logs[3])
    export = witness.export_checkpoint(sealed, size)
    assert export.old_size == size and export.proof  # a real proof, not the empty one
    old_root = Checkpoint.from_text(note.text).root
    new_root = Checkpoint.from_text(SignedNote.parse(export.note).text).root
    assert verify_consistency(size, bigger, old_root, new_root, export.proof)
    second = _cosign(sealed, w1, tmp_path, T0 + 10)
    assert (second.previous, second.size, second.key_source) == (size, bigger, "state")
    state = json.loads(_state(tmp_path, w1).read_text())
    assert (state["size"], state["timestamp"]) == (bigger, T0 + 10)
    assert state["log_key"] == sealed.verifier().vkey()

    report = _verify(sealed, w1)
    assert report.verdict == ExitCode.OK, report.failure
    assert report.coverage.endswith(f"checkpoint {bigger:,} witnessed by 1 of 1 (quorum 1)")
    assert report.facts["witnessed_size"] == bigger
    # the same checkpoint again: cosigned afresh, the file replaced, nothing else changes
    third = _cosign(sealed, w1, tmp_path, T0 + 20)
    assert (third.previous, third.size) == (bigger, bigger)
    assert (
        cosignature_timestamp(SignedNote.parse(third.written.read_bytes()), w1.verifier) == T0 + 20
    )


def test_rollback_is_refused_by_the_witness_and_caught_by_verify(
    sealed: Store,
    signer: keys.Signer,
    w1: keys.WitnessSigner,
    logs: list[Path],
    tmp_path: Path,
    runner: CliRunner,
) -> None:
    _cosign(sealed, w1, tmp_path)
    saved = sealed.state_path.read_bytes()
    bigger = _grow(sealed, signer, logs[3])
    _cosign(sealed, w1, tmp_path, T0 + 10)
    roll_back(sealed, saved)
    before = _state(tmp_path, w1).read_bytes()

    with pytest.raises(TamperedError, match=rf"this witness cosigned {bigger:,}: .*\(rollback\)"):
        _cosign(sealed, w1, tmp_path, T0 + 20)
    assert _state(tmp_path, w1).read_bytes() == before  # a refusal leaves the state alone
    # on its own the shorter log cannot exclude a rollback (INCOMPLETE); with the witness
    # key the rollback shows
    alone = _verify(sealed)
    assert (alone.verdict, alone.failure["check"]) == (ExitCode.INCOMPLETE, "6")
    assert any("not checked" in w for w in alone.warnings)
    report = _verify(sealed, w1)
    assert report.verdict == ExitCode.TAMPERED
    assert report.failure["check"] == "8"
    assert f"cosigned checkpoint {bigger:,}, but the log ends at" in report.failure["message"]

    key = tmp_path / "witness-host" / "witness.example_w1.key"
    state = _state(tmp_path, w1)
    result = runner.invoke(
        app, ["witness", str(sealed.root), "--key", str(key), "--state", str(state)]
    )
    assert result.exit_code == ExitCode.TAMPERED, result.output
    result = runner.invoke(app, ["verify", str(sealed.root), "--witness", w1.verifier.vkey()])
    assert result.exit_code == ExitCode.TAMPERED
    assert state.read_bytes() == before


def test_fork_is_refused(
    sealed: Store, signer: keys.Signer, w1: keys.WitnessSigner, tmp_path: Path
) -> None:
    done = _cosign(sealed, w1, tmp_path)
    before = _state(tmp_path, w1).read_bytes()
    # the insider with the sealer key signs another root for the size the witness saw
    forged = sign_note(Checkpoint(sealed.origin, done.size, bytes(32)).text(), signer).encode()
    export = witness.CheckpointExport(done.size, (), forged)
    with pytest.raises(TamperedError, match="fork"):
        witness.witness(export, w1, _state(tmp_path, w1), tmp_path / "out", T0 + 5)
    # the same through the store: its newest checkpoint file replaced by the forgery
    sealed.checkpoint_path(done.size).write_bytes(forged)
    with pytest.raises(TamperedError, match="fork"):
        _cosign(sealed, w1, tmp_path, T0 + 5)
    assert _state(tmp_path, w1).read_bytes() == before
    assert not (tmp_path / "out").exists()


def test_forged_consistency_proofs_are_refused(
    sealed: Store, signer: keys.Signer, w1: keys.WitnessSigner, logs: list[Path], tmp_path: Path
) -> None:
    size = _cosign(sealed, w1, tmp_path).size
    bigger = _grow(sealed, signer, logs[3])
    good = witness.export_checkpoint(sealed, size)
    assert witness.CheckpointExport.parse(good.encode()) == good
    state, out = _state(tmp_path, w1), tmp_path / "out"
    before = state.read_bytes()
    flipped = bytes([good.proof[0][0] ^ 1]) + good.proof[0][1:]
    other = sign_note(Checkpoint(sealed.origin, bigger, bytes(32)).text(), signer).encode()
    forgeries = {
        "flipped hash": witness.CheckpointExport(size, (flipped, *good.proof[1:]), good.note),
        "hash dropped": witness.CheckpointExport(size, good.proof[:-1], good.note),
        "empty proof": witness.CheckpointExport(size, (), good.note),
        "another history": witness.CheckpointExport(size, good.proof, other),
    }
    for what, export in forgeries.items():
        text = export.encode()  # the exported form, as a witness host would receive it
        with pytest.raises(TamperedError, match="not proven consistent"):
            witness.witness(witness.CheckpointExport.parse(text), w1, state, out, T0 + 5)
        assert state.read_bytes() == before, what
    assert not out.exists()
    with pytest.raises(UsageError, match="--since"):
        stale = witness.CheckpointExport(size - 1, good.proof, good.note)
        witness.witness(stale, w1, state, out, T0 + 5)
    result = witness.witness(good, w1, state, out, T0 + 5)
    assert (result.previous, result.size) == (size, bigger)


def _rewrite_line(path: Path, w: keys.WitnessSigner, change: object) -> None:
    note = SignedNote.parse(path.read_bytes())
    lines = tuple(
        NoteSignature(s.name, s.key_id, change(s.signature))  # type: ignore[operator]
        if s.name == w.name
        else s
        for s in note.signatures
    )
    path.write_bytes(SignedNote(note.text, lines).encode())


@pytest.mark.parametrize(
    "change",
    [
        lambda sig: sig[:-1] + bytes([sig[-1] ^ 0x80]),  # a bit of the Ed25519 signature
        lambda sig: struct.pack(">Q", struct.unpack(">Q", sig[:8])[0] + 1) + sig[8:],  # the time
        lambda sig: sig[:-4],  # too short to be a cosignature
    ],
    ids=["signature-bit", "timestamp", "truncated"],
)
def test_bad_cosignature_bytes_are_tampered(
    sealed: Store, w1: keys.WitnessSigner, tmp_path: Path, change: object
) -> None:
    path = _cosign(sealed, w1, tmp_path).written
    assert _verify(sealed, w1).verdict == ExitCode.OK
    _rewrite_line(path, w1, change)
    report = _verify(sealed, w1)
    assert report.verdict == ExitCode.TAMPERED
    assert "witness.example/w1" in report.failure["message"]


def test_unknown_cosigners_are_ignored(
    sealed: Store,
    signer: keys.Signer,
    w1: keys.WitnessSigner,
    w2: keys.WitnessSigner,
    tmp_path: Path,
) -> None:
    path = _cosign(sealed, w1, tmp_path).written
    note = SignedNote.parse(path.read_bytes())
    garbage = NoteSignature("stranger.example", b"\x01\x02\x03\x04", b"x" * 72)
    path.write_bytes(SignedNote(note.text, (*note.signatures, garbage)).encode())
    # a file by w2 alone, even over a checkpoint the log never had, means nothing to a
    # verifier that does not trust w2
    size = Checkpoint.from_text(note.text).size
    beyond = sign_note(Checkpoint(sealed.origin, size + 7, bytes(32)).text(), signer)
    line = cosign(w2, beyond.text, T0)
    (path.parent / "strange.cosig").write_bytes(SignedNote(beyond.text, (line,)).encode())

    report = _verify(sealed, w1)
    assert report.verdict == ExitCode.OK, report.failure
    assert f"checkpoint {size:,} witnessed by 1 of 1 (quorum 1)" in report.coverage
    # trusted, w2's claim of a larger checkpoint is evidence of a rollback
    assert _verify(sealed, w1, w2).verdict == ExitCode.TAMPERED


def test_quorum_not_met_is_incomplete(
    sealed: Store,
    signer: keys.Signer,
    w1: keys.WitnessSigner,
    w2: keys.WitnessSigner,
    logs: list[Path],
    tmp_path: Path,
) -> None:
    size = _cosign(sealed, w1, tmp_path).size
    report = _verify(sealed, w1, w2, quorum=2)
    assert report.verdict == ExitCode.INCOMPLETE
    assert report.failure["message"] == (
        f"checkpoint {size:,} witnessed by 1 of 2 (quorum 2): no checkpoint is witnessed by "
        "the quorum: a rollback cannot be excluded"
    )
    allowed = _verify(sealed, w1, w2, quorum=2, allow_incomplete=True)
    assert allowed.verdict == ExitCode.OK and any("quorum 2" in w for w in allowed.warnings)
    _cosign(sealed, w2, tmp_path)
    assert _verify(sealed, w1, w2, quorum=2).verdict == ExitCode.OK
    bigger = _grow(sealed, signer, logs[3])
    _cosign(sealed, w1, tmp_path, T0 + 10)
    report = _verify(sealed, w1, w2, quorum=2)
    assert report.verdict == ExitCode.INCOMPLETE
    assert report.failure["message"].endswith(
        f"checkpoints after {size:,} are not witnessed: a rollback beyond {size:,} cannot be "
        "excluded"
    )
    assert f"checkpoint {bigger:,} witnessed by 1 of 2 (quorum 2)" in report.coverage
    with pytest.raises(UsageError):
        _policy(w1, quorum=2)
    # quorum 0 still checks what is there but requires none
    none_needed = _verify(sealed, w1, w2, quorum=0)
    assert none_needed.verdict == ExitCode.OK
    assert f"checkpoint {bigger:,} witnessed by 1 of 2 (quorum 0)" in none_needed.coverage
    assert _policy(w1, w1).witnesses == (w1.verifier,)  # the same key twice counts once


def test_clock_warnings(
    sealed: Store, signer: keys.Signer, w1: keys.WitnessSigner, logs: list[Path], tmp_path: Path
) -> None:
    _cosign(sealed, w1, tmp_path, T0 + 100)
    _grow(sealed, signer, logs[3])
    done = _cosign(sealed, w1, tmp_path, T0)  # the witness's clock stepped back
    assert any("behind its last cosignature" in n for n in done.notes)
    report = _verify(sealed, w1, now=T0 - 3600)
    assert report.verdict == ExitCode.OK
    assert any("clock went backwards" in w for w in report.warnings)
    assert any("in the future" in w for w in report.warnings)
    later = _verify(sealed, w1, now=T0 + 200).warnings
    assert len(later) == 1 and "clock went backwards" in later[0]


def test_exported_form_through_the_cli(
    sealed: Store, signer: keys.Signer, logs: list[Path], tmp_path: Path, runner: CliRunner
) -> None:
    host = tmp_path / "witness-host"
    key, state, out = host / "w.key", host / "state.json", host / "cosigned"
    made = runner.invoke(
        app, ["witness", "init", "--key", str(key), "--name", "ci.example/w", "--json"]
    )
    assert made.exit_code == 0, made.output
    vkey = json.loads(made.stdout)["vkey"]
    assert vkey.startswith("ci.example/w+") and stat.S_IMODE(os.stat(key).st_mode) == 0o600
    pem = key.read_text().split("\n", 1)[1]
    assert pem.splitlines()[1] not in made.output  # the private key is never printed
    log_vkey = tmp_path / "log.vkey"
    log_vkey.write_text(sealed.verifier().vkey() + "\n")

    first = runner.invoke(app, ["checkpoint", str(sealed.root)])
    assert first.exit_code == 0 and first.stdout.startswith("old 0\n\n")
    (host / "export").write_text(first.stdout)
    base = ["witness", str(host / "export"), "--key", str(key), "--state", str(state)]
    no_pin = runner.invoke(app, [*base, "--out", str(out)])
    assert no_pin.exit_code == ExitCode.USAGE  # an export carries no key to trust on first use
    no_out = runner.invoke(app, [*base, "--log-key", str(log_vkey)])
    assert no_out.exit_code == ExitCode.USAGE
    ok = runner.invoke(app, [*base, "--log-key", str(log_vkey), "--out", str(out), "--json"])
    assert ok.exit_code == 0, ok.output
    doc = json.loads(ok.stdout)
    size = doc["tree_size"]
    assert (doc["previous_size"], doc["log_key_source"]) == (None, "--log-key")

    bigger = _grow(sealed, signer, logs[3])
    since = runner.invoke(app, ["checkpoint", str(sealed.root), "--since", str(size)])
    assert since.stdout.startswith(f"old {size}\n") and since.stdout.count("\n\n") == 2
    piped = runner.invoke(
        app,
        ["witness", "-", "--key", str(key), "--state", str(state), "--out", str(out), "--json"],
        input=since.stdout,
    )
    assert piped.exit_code == 0, piped.output
    assert (json.loads(piped.stdout)["previous_size"], json.loads(piped.stdout)["tree_size"]) == (
        size,
        bigger,
    )
    assert len(read_cosigned(out)) == 2
    shutil.copytree(out, sealed.root / "cosignatures")
    checked = runner.invoke(app, ["verify", str(sealed.root), "--witness", vkey, "--json"])
    assert checked.exit_code == 0, checked.output
    assert json.loads(checked.stdout)["facts"]["witnessed_size"] == bigger
    beyond = runner.invoke(app, ["checkpoint", str(sealed.root), "--since", str(bigger + 1)])
    assert beyond.exit_code == ExitCode.USAGE
    bad = runner.invoke(app, ["verify", str(sealed.root), "--witness", sealed.verifier().vkey()])
    assert bad.exit_code == ExitCode.USAGE  # a sealer key is not a witness key: a typing slip


@pytest.mark.parametrize(
    "damage",
    [
        lambda doc: "{not json",
        lambda doc: json.dumps({**doc, "format": "acdkit-witness-state/0"}),
        lambda doc: json.dumps({**doc, "size": doc["size"] + 1}),
        lambda doc: json.dumps({**doc, "checkpoint": "!!" + doc["checkpoint"]}),
        lambda doc: json.dumps({k: v for k, v in doc.items() if k != "log_key"}),
        lambda doc: json.dumps({**doc, "log_key": "nobody+00000000+AAAA"}),
    ],
    ids=["not-json", "format", "size", "checkpoint", "no-log-key", "log-key"],
)
def test_damaged_witness_state_is_malformed(
    sealed: Store, w1: keys.WitnessSigner, tmp_path: Path, runner: CliRunner, damage: object
) -> None:
    _cosign(sealed, w1, tmp_path)
    state = _state(tmp_path, w1)
    state.write_text(damage(json.loads(state.read_text())))  # type: ignore[operator]
    with pytest.raises(MalformedError, match="witness state"):
        _cosign(sealed, w1, tmp_path, T0 + 5)
    key = tmp_path / "witness-host" / "witness.example_w1.key"
    result = runner.invoke(
        app, ["witness", str(sealed.root), "--key", str(key), "--state", str(state)]
    )
    assert result.exit_code == ExitCode.MALFORMED


def test_witness_keys_stay_apart_from_sealer_keys(
    sealed: Store, w1: keys.WitnessSigner, key_path: Path, tmp_path: Path, runner: CliRunner
) -> None:
    vkey = w1.verifier.vkey()
    assert keys.WitnessVerifier.parse(vkey) == w1.verifier
    with pytest.raises(MalformedError, match="is a witness key, not a signing key"):
        keys.Verifier.parse(vkey)
    with pytest.raises(MalformedError, match="is a signing key, not a witness key"):
        keys.WitnessVerifier.parse(sealed.verifier().vkey())
    with pytest.raises(MalformedError, match="a sealer key, not a witness key"):
        keys.load_witness_signer(key_path)
    # a witness key cannot sign for the log, nor a sealer key cosign
    note = SignedNote.parse(sealed.checkpoint_files()[-1].read_bytes())
    assert not SignedNote(
        note.text, (NoteSignature(w1.name, w1.verifier.key_id, b"s" * 64),)
    ).verified_by(w1.verifier)
    with pytest.raises(UsageError, match="inside an evidence store"):
        witness.init_witness(sealed.root / "keys" / "w.key", "w.example")
    inside = runner.invoke(
        app, ["witness", "init", "--key", str(sealed.root / "w.key"), "--name", "w.example"]
    )
    assert inside.exit_code == ExitCode.USAGE and not (sealed.root / "w.key").exists()


def test_bundle_carries_and_checks_cosignatures(
    sealed: Store,
    signer: keys.Signer,
    w1: keys.WitnessSigner,
    w2: keys.WitnessSigner,
    tmp_path: Path,
) -> None:
    size = _cosign(sealed, w1, tmp_path).size
    window = bundle.Window(
        bundle.parse_time("2000-01-01T00:00:00Z"), bundle.parse_time("2030-01-01T00:00:00Z")
    )
    out = tmp_path / "bundle"
    bundle.package(sealed, signer, "INC-7", window, out)
    rel = f"cosignatures/{size:020d}.{w1.verifier.key_id.hex()}.cosig"
    assert f" {rel}\n" in (out / "MANIFEST.note").read_text()

    def check(*ws: keys.WitnessSigner, **kw: Any) -> verify.VerifyReport:
        policy = _policy(*ws, quorum=kw.pop("quorum", None)) if ws else None
        return verify.verify_path(out, witnesses=policy, now=T0 + 60, **kw)

    ok = check(w1)
    assert ok.verdict == ExitCode.OK, ok.failure
    assert f"checkpoint {size:,} witnessed by 1 of 1 (quorum 1)" in ok.coverage
    assert any("not checked" in w for w in check().warnings)
    assert check(w1, w2, quorum=2).verdict == ExitCode.INCOMPLETE
    assert check(w1, w2, quorum=2, allow_incomplete=True).verdict == ExitCode.OK
    # a cosignature altered and the manifest signed again by the sender: check 8 catches it
    _rewrite_line(out / rel, w1, lambda sig: sig[:-1] + bytes([sig[-1] ^ 1]))
    (out / "MANIFEST.note").unlink()
    text = bundle._manifest_text("INC-7", sealed.origin, size, out)
    (out / "MANIFEST.note").write_bytes(sign_note(text, signer).encode())
    bad = check(w1)
    assert bad.verdict == ExitCode.TAMPERED and bad.failure["check"] == "9"


# the example of C2SP tlog-cosignature: a checkpoint with the log's signature and a witness's
C2SP_EXAMPLE = (
    "example.com/behind-the-sofa\n"
    "20852163\n"
    "CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
    "\n"
    "\u2014 example.com/behind-the-sofa Az3grlgtzPICa5OS8npVmf1Myq/5IZniMp+ZJurmRDeOoRDe4URYN7u5"
    "/Zhcyv2q1gGzGku9nTo+zyWE+xeMcTOAYQ8=\n"
    "\u2014 witness.example.com/w1 jWbPPwAAAABkGFDLEZMHwSRaJNiIDoe9DYn/zXcrtPHeolMI5OWXEhZCB9dlrDJs"
    "X3b2oyin1nPZqhf5nNo0xUe+mbIUBkBIfZ+qnA==\n"
)


def test_c2sp_example_parses_as_a_note_with_two_signature_lines() -> None:
    note = SignedNote.parse(C2SP_EXAMPLE.encode())
    assert [s.name for s in note.signatures] == [
        "example.com/behind-the-sofa",
        "witness.example.com/w1",
    ]
    cp = Checkpoint.from_text(note.text)
    assert (cp.origin, cp.size) == ("example.com/behind-the-sofa", 20852163)
    line = note.signatures[1]
    assert line.key_id.hex() == "8d66cf3f"
    # its timestamp is the time of the example's signed message in the same spec
    assert struct.unpack(">Q", line.signature[:8])[0] == 1679315147
    # a key of ours with that name has another key ID: the line is not ours, so it is ignored
    stranger = keys.WitnessSigner("witness.example.com/w1", Ed25519PrivateKey.generate())
    assert cosignature_timestamp(note, stranger.verifier) is None


SEED = bytes(range(64, 96))


def test_cosignature_known_answer() -> None:
    w = keys.WitnessSigner("witness.example/w1", Ed25519PrivateKey.from_private_bytes(SEED))
    text = (
        "acdkit/example/00000000-0000-4000-8000-000000000000\n3\n"
        "EcFdCcRDQaD4uN27NeYbpkUfpgrgMxf3ntaF0dGgxGw=\n"
    )
    assert (
        cosignature_message(text, 1764547200)
        == b"cosignature/v1\ntime 1764547200\n" + text.encode()
    )
    line = cosign(w, text, 1764547200)
    blob = base64.b64encode(line.key_id + line.signature).decode()
    assert w.verifier.vkey() == KAT_VKEY
    assert f"\u2014 {line.name} {blob}" == KAT_LINE
    doc = (Path(__file__).resolve().parents[1] / "docs" / "evidence-format.md").read_text()
    assert KAT_VKEY in doc and KAT_LINE in doc


KAT_VKEY = "witness.example/w1+b72bab2e+BCVDuS/xCVURR2rcg2nbbdyTNmWhGXjdoUBO4QZsqVWd"
KAT_LINE = (
    "\u2014 witness.example/w1 tyurLgAAAABpLNqA5qe3zccrtzSXaLcWyuNHb/56K5w2FAAkMeHmjS9R8rcFiOYf"
    "2qjI7tx0onrgg6rgBPKqmfc/uzvrhiJCtJ4TBg=="
)


def _write_cosigned(store: Store, name: str, note: SignedNote, w: keys.WitnessSigner) -> None:
    line = cosign(w, note.text, T0)
    (store.root / "cosignatures").mkdir(exist_ok=True)
    (store.root / "cosignatures" / name).write_bytes(SignedNote(note.text, (line,)).encode())


def test_cosigned_checkpoints_that_disagree_with_the_log(
    sealed: Store, signer: keys.Signer, w1: keys.WitnessSigner, tmp_path: Path
) -> None:
    """A split view: the witness was shown another history than the store now holds."""
    size = _cosign(sealed, w1, tmp_path).size
    other = sign_note(Checkpoint(sealed.origin, size, bytes(32)).text(), signer)
    _write_cosigned(sealed, "other.cosig", other, w1)
    report = _verify(sealed, w1)
    assert report.verdict == ExitCode.TAMPERED and "fork" in report.failure["message"]
    smaller = sign_note(Checkpoint(sealed.origin, size - 1, bytes(32)).text(), signer)
    _write_cosigned(sealed, "other.cosig", smaller, w1)
    report = _verify(sealed, w1)
    assert report.verdict == ExitCode.TAMPERED and "not in the log" in report.failure["message"]
    foreign = sign_note(Checkpoint("acdkit/other/log", size, bytes(32)).text(), signer)
    _write_cosigned(sealed, "other.cosig", foreign, w1)
    report = _verify(sealed, w1)
    assert report.verdict == ExitCode.OK and any("another log" in w for w in report.warnings)
    (sealed.root / "cosignatures" / "other.cosig").write_bytes(b"not a note\n")
    assert _verify(sealed, w1).verdict == ExitCode.MALFORMED


@pytest.mark.parametrize(
    "mutate",
    [
        lambda d: d.replace(b"\n\n", b"\n", 1),  # no blank line before the checkpoint
        lambda d: d.replace(b"old ", b"old 0", 1),  # leading zero
        lambda d: d.replace(b"old ", b"new ", 1),
        lambda d: d.replace(b"\n", b"\r\n", 1),
        lambda d: d.replace(b"=\n", b"\n", 1),  # proof hash without its padding
        lambda d: d.replace(b"\n", b"\n" + base64.b64encode(bytes(31)) + b"\n", 1),
        lambda d: d.replace(
            b"\n", b"\n" + b"\n".join([base64.b64encode(bytes(32))] * 64) + b"\n", 1
        ),
        lambda d: b"old 0\n" + base64.b64encode(bytes(32)) + b"\n\n" + d.split(b"\n\n", 1)[1],
        lambda d: d + b"x" * (80 << 10),
        lambda d: d.replace(b"\n\n", b"\n\xff\n\n", 1),
    ],
    ids=[
        "no-blank",
        "leading-zero",
        "header",
        "crlf",
        "base64",
        "short-hash",
        "long-proof",
        "proof-from-0",
        "oversize",
        "not-ascii",
    ],
)
def test_malformed_exports(
    sealed: Store, signer: keys.Signer, logs: list[Path], mutate: object
) -> None:
    size = sealed.checkpoint_files()[-1].name
    _grow(sealed, signer, logs[3])
    good = witness.export_checkpoint(sealed, int(size.split(".")[0])).encode()
    with pytest.raises(MalformedError):
        witness.CheckpointExport.parse(mutate(good))  # type: ignore[operator]


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_export_parser_never_crashes(blob: bytes) -> None:
    with contextlib.suppress(MalformedError):
        witness.CheckpointExport.parse(b"old 3\n" + blob)


def test_the_witness_checks_whose_log_and_key(
    sealed: Store,
    signer: keys.Signer,
    w1: keys.WitnessSigner,
    w2: keys.WitnessSigner,
    tmp_path: Path,
) -> None:
    state, out = _state(tmp_path, w1), tmp_path / "out"
    note = sealed.checkpoint_files()[-1].read_bytes()
    export = witness.CheckpointExport(0, (), note)
    stranger = keys.generate(sealed.origin)
    with pytest.raises(TamperedError, match="no valid signature"):
        witness.witness(export, w1, state, out, T0, stranger.verifier)
    renamed = keys.Verifier("acdkit/other/log", sealed.verifier().public)
    with pytest.raises(TamperedError, match="named"):
        witness.witness(export, w1, state, out, T0, renamed)
    assert not state.exists()
    witness.witness(export, w1, state, out, T0, sealed.verifier())
    with pytest.raises(UsageError, match="another witness key"):
        witness.witness(export, w2, state, out, T0)
    with pytest.raises(TamperedError, match="no valid signature"):
        witness.witness(export, w1, state, out, T0, stranger.verifier)  # a re-pin is checked too
    other = keys.generate("acdkit/other/log")
    foreign = sign_note(Checkpoint("acdkit/other/log", 3, bytes(32)).text(), other).encode()
    with pytest.raises(UsageError, match="is for log"):
        witness.witness(witness.CheckpointExport(0, (), foreign), w1, state, out, T0)
    empty = Store.create(tmp_path / "empty", "acdkit/e/1", stranger.verifier, "1")
    with pytest.raises(UsageError, match="no checkpoint yet"):
        witness.witness_store(empty, w1, tmp_path / "s2.json", T0)


def test_a_witness_of_the_store_follows_a_rotation_and_one_of_exports_needs_a_re_pin(
    sealed: Store,
    signer: keys.Signer,
    w1: keys.WitnessSigner,
    w2: keys.WitnessSigner,
    logs: list[Path],
    tmp_path: Path,
) -> None:
    from acdkit import rotation

    _cosign(sealed, w1, tmp_path)
    first = witness.witness(
        witness.export_checkpoint(sealed, 0),
        w2,
        _state(tmp_path, w2),
        tmp_path / "w2-out",
        T0,
        log_key=signer.verifier,
    )
    new = keys.generate(sealed.origin)
    rotation.rotate(sealed, signer, new)
    done = _cosign(sealed, w1, tmp_path, T0 + 1)  # the rotation segment: still the old key
    bigger = _grow(sealed, new, logs[3])
    # reading the store, the witness sees the KEY entry signed by the key it pinned
    after = _cosign(sealed, w1, tmp_path, T0 + 2)
    assert (after.previous, after.size) == (done.size, bigger)
    assert after.notes[0] == (
        f"followed the log's key rotation from {signer.verifier.key_id.hex()} to "
        f"{new.verifier.key_id.hex()} (KEY entries sealed in the log, each signed by the key "
        "before it)"
    )
    assert json.loads(_state(tmp_path, w1).read_text())["log_key"] == new.verifier.vkey()
    assert _verify(sealed, w1).verdict == ExitCode.OK
    # an export carries no KEY entries: the new key must be pinned on purpose
    before = _state(tmp_path, w2).read_bytes()
    export = witness.export_checkpoint(sealed, first.size)
    with pytest.raises(TamperedError, match=f"signed by key {new.verifier.key_id.hex()}") as exc:
        witness.witness(export, w2, _state(tmp_path, w2), tmp_path / "w2-out", T0 + 3)
    assert "--log-key" in str(exc.value.hint)
    assert _state(tmp_path, w2).read_bytes() == before
    again = witness.witness(
        export, w2, _state(tmp_path, w2), tmp_path / "w2-out", T0 + 4, log_key=new.verifier
    )
    assert (again.previous, again.size) == (first.size, bigger)
    assert any("replaced" in n for n in again.notes)


def test_witnesses_and_quorum_from_the_trust_policy(
    sealed: Store,
    signer: keys.Signer,
    w1: keys.WitnessSigner,
    w2: keys.WitnessSigner,
    logs: list[Path],
    tmp_path: Path,
) -> None:
    from acdkit import policy

    root = keys.generate("example.org/root")
    witnesses = [w1.verifier.vkey(), w2.verifier.vkey()]
    issued = T0 * policy.NS
    policy.write_policy(
        sealed,
        policy.Policy(
            sealed.origin, 1, issued, [policy.SealerWindow(signer.verifier)], witnesses, 2
        ),
        root,
    )
    size = _cosign(sealed, w1, tmp_path).size
    report = verify.verify_store(sealed, root=root.verifier, now=T0 + 60)
    assert report.verdict == ExitCode.INCOMPLETE  # the policy wants 2 of 2
    assert f"checkpoint {size:,} witnessed by 1 of 2 (quorum 2)" in report.failure["message"]
    assert report.facts["witness_source"] == "trust policy 1"
    _cosign(sealed, w2, tmp_path)
    report = verify.verify_store(sealed, root=root.verifier, now=T0 + 60)
    assert report.verdict == ExitCode.OK, report.failure
    assert report.coverage.endswith(f"checkpoint {size:,} witnessed by 2 of 2 (quorum 2)")
    # the command line replaces the policy's witnesses, and says so
    mine = _verify(sealed, w1, root=root.verifier)
    assert mine.verdict == ExitCode.OK and mine.facts["witness_source"] == "--witness"
    assert any("replaces the 2 witnesses (quorum 2) of trust policy 1" in w for w in mine.warnings)
    # a rollback below what the policy's witnesses cosigned
    saved = sealed.state_path.read_bytes()
    _grow(sealed, signer, logs[3])
    _cosign(sealed, w1, tmp_path, T0 + 10)
    roll_back(sealed, saved)
    report = verify.verify_store(sealed, root=root.verifier, now=T0 + 60)
    assert report.verdict == ExitCode.TAMPERED and "rollback" in report.failure["message"]
    # and a bundle carries the policy, whose witnesses then apply to its cosignatures
    out = tmp_path / "bundle"
    shutil.rmtree(sealed.root / "cosignatures")
    _cosign(sealed, w1, tmp_path / "again")
    window = bundle.Window(
        bundle.parse_time("2000-01-01T00:00:00Z"), bundle.parse_time("2030-01-01T00:00:00Z")
    )
    bundle.package(sealed, signer, "INC-8", window, out)
    checked = verify.verify_path(out, now=T0 + 60)
    assert checked.verdict == ExitCode.INCOMPLETE
    assert "witnessed by 1 of 2 (quorum 2)" in checked.failure["message"]


def test_a_policy_witness_must_be_a_witness_key(sealed: Store, signer: keys.Signer) -> None:
    from acdkit import policy

    text = policy.Policy(
        sealed.origin, 1, T0 * policy.NS, [policy.SealerWindow(signer.verifier)],
        [signer.verifier.vkey()], 1,
    ).text()  # fmt: skip
    with pytest.raises(MalformedError, match="not a witness key"):
        policy.Policy.from_text(text)
