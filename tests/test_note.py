"""Signed notes, checkpoints, verifier keys and tlog-proof files: strict parsing and signing."""

from __future__ import annotations

import base64
import contextlib
import os
import stat

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from acdkit import keys
from acdkit.errors import MalformedError, UsageError
from acdkit.note import Checkpoint, SignedNote, sign_note
from acdkit.proof import TlogProof

SEED = bytes(range(32))


def fixed_signer(name: str = "acdkit/test/log") -> keys.Signer:
    return keys.Signer(name, Ed25519PrivateKey.from_private_bytes(SEED))


def test_key_id_follows_signed_note_rule() -> None:
    signer = fixed_signer()
    pub = signer.verifier.public
    import hashlib

    expected = hashlib.sha256(b"acdkit/test/log\n\x01" + pub).digest()[:4]
    assert signer.verifier.key_id == expected
    vkey = signer.verifier.vkey()
    assert vkey.startswith(f"acdkit/test/log+{expected.hex()}+")
    assert keys.Verifier.parse(vkey) == signer.verifier


def test_vkey_with_wrong_id_is_malformed() -> None:
    vkey = fixed_signer().verifier.vkey()
    name, _, blob = vkey.split("+", 2)
    with pytest.raises(MalformedError):
        keys.Verifier.parse(f"{name}+00000000+{blob}")


def test_checkpoint_round_trip_and_signature() -> None:
    signer = fixed_signer()
    cp = Checkpoint("acdkit/test/log", 42, bytes(range(32)))
    data = sign_note(cp.text(), signer).encode()
    assert data.startswith(b"acdkit/test/log\n42\nAAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n\n")
    assert data.count("\u2014".encode()) == 1
    note = SignedNote.parse(data)
    assert Checkpoint.from_text(note.text) == cp
    assert note.verified_by(signer.verifier)
    other = keys.Signer("acdkit/test/log", Ed25519PrivateKey.from_private_bytes(b"\x01" * 32))
    assert not note.verified_by(other.verifier)


@pytest.mark.parametrize(
    "mutate",
    [
        lambda d: d.replace(b"\n", b"\r\n"),  # CRLF
        lambda d: d.replace(b"\n42\n", b"\n042\n"),  # leading zero
        lambda d: d.replace(b"\n42\n", b"\n+42\n"),  # plus sign
        lambda d: d.replace(b"\n42\n", b"\n18446744073709551615\n"),  # 2^64-1
        lambda d: d[:-1],  # no final newline
        lambda d: d.replace(b"\n\n", b"\n"),  # no blank line
        lambda d: d.replace(b"=\n\n", b"\n\n"),  # root base64 without padding
        lambda d: d + b"\x00",  # control character
        lambda d: b"\xff" + d,  # not UTF-8
    ],
)
def test_malformed_checkpoints_are_rejected(mutate: object) -> None:
    data = sign_note(Checkpoint("o", 42, bytes(32)).text(), fixed_signer("o")).encode()
    with pytest.raises(MalformedError):
        note = SignedNote.parse(mutate(data))  # type: ignore[operator]
        Checkpoint.from_text(note.text)


def test_extra_unknown_signature_is_ignored() -> None:
    signer = fixed_signer()
    data = sign_note(Checkpoint("acdkit/test/log", 1, bytes(32)).text(), signer).encode()
    foreign = "\u2014 witness.example " + base64.b64encode(b"\x01\x02\x03\x04" + b"s" * 64).decode()
    note = SignedNote.parse(data + foreign.encode() + b"\n")
    assert len(note.signatures) == 2
    assert note.verified_by(signer.verifier)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_note_parser_never_crashes(blob: bytes) -> None:
    try:
        note = SignedNote.parse(blob)
        Checkpoint.from_text(note.text)
    except MalformedError:
        pass


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_proof_parser_never_crashes(blob: bytes) -> None:
    with contextlib.suppress(MalformedError):
        TlogProof.parse(b"c2sp.org/tlog-proof@v1\n" + blob)


def test_tlog_proof_round_trip() -> None:
    proof = TlogProof(7, (b"a" * 32, b"b" * 32), b"cp\n1\nAAAA\n\n- sig\n", b"ACDK\x01\x02")
    data = proof.encode()
    assert data.startswith(b"c2sp.org/tlog-proof@v1\nextra QUNESwEC\nindex 7\n")
    assert TlogProof.parse(data) == proof


def test_private_key_file_is_0600_and_never_overwritten(tmp_path: object) -> None:
    from pathlib import Path

    path = Path(str(tmp_path)) / "k" / "sealer.key"
    signer = keys.generate("acdkit/test/x")
    keys.write_private_key(signer, path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert keys.load_signer(path).verifier == signer.verifier
    assert "PRIVATE" not in repr(signer)
    with pytest.raises(UsageError):
        keys.write_private_key(signer, path)
