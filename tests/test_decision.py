"""DECISION entries (evidence format §13): the known-answer vector, strict parsing, signing."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from types import ModuleType

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from acdkit.decision import Decision, decision_message, parse_decision
from acdkit.encoding import TlvType, parse_tlv, tlv
from acdkit.errors import MalformedError
from acdkit.keys import Signer

REPO = Path(__file__).resolve().parents[1]
VECTORS = json.loads((REPO / "docs/decision-vectors.json").read_text())
ORIGIN = VECTORS["origin"]


def _tool() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "acdkit_verify_decisions", REPO / "src/acdkit/_data/acdkit_verify.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


iv = _tool()
SIGNER = Signer("alice@example.org", Ed25519PrivateKey.from_private_bytes(bytes(range(96, 128))))


def test_the_vector_file_is_what_the_code_makes() -> None:
    proc = subprocess.run(
        [sys.executable, str(REPO / "scripts/make_decision_vectors.py"), "--check"],
        check=False,
        cwd=REPO,
    )
    assert proc.returncode == 0, "run scripts/make_decision_vectors.py and commit the result"


def test_the_vector_parses_and_verifies_in_both_implementations() -> None:
    body = bytes.fromhex(VECTORS["body"])
    decision = parse_decision(body)
    assert decision.incident == "INC-2026-0001"
    assert decision.at_ns == 1_791_176_400_000_000_000  # 2026-10-05T05:00:00Z
    assert decision.reasons == ("CNI-INCIDENT", "ACD-EXTERNAL-INBOUND")
    assert decision.custodian is not None
    assert decision.custodian.vkey() == VECTORS["custodian_vkey"]
    assert decision.verifies(ORIGIN)
    assert not decision.verifies("acdkit/another/log")  # the origin is signed: no replay
    theirs = iv.decode_decision(body)
    message = iv.DECISION_PREFIX + ORIGIN.encode() + b"\n" + theirs.message_body
    assert iv.ed25519_ok(theirs.custodian.public, theirs.signature, message)
    assert theirs.message_body == decision.unsigned_body()
    assert decision_message(ORIGIN, theirs.message_body)[:18] == b"acdkit/1/decision\n"


def _fields(body: bytes) -> list[tuple[int, TlvType, bytes]]:
    return parse_tlv(body)


def _join(fields: list[tuple[int, TlvType, bytes]]) -> bytes:
    return b"".join(tlv(fid, kind, value) for fid, kind, value in fields)


def _edit(fid: int, value: bytes | None, kind: TlvType | None = None) -> bytes:
    fields = [f for f in _fields(bytes.fromhex(VECTORS["body"])) if f[0] != fid]
    if value is not None:
        fields.append((fid, kind or TlvType.UTF8, value))
    return _join(sorted(fields, key=lambda f: f[0]))


def _u32(n: int) -> bytes:
    return n.to_bytes(4, "big")


BAD = {
    "unknown-field": _edit(20, b"x"),
    "action-wrong-type": _edit(3, bytes(8), TlvType.U64),
    "missing-why": _edit(16, None),
    "missing-signature": _edit(31, None),
    "version-2": _edit(1, (2).to_bytes(8, "big"), TlvType.U64),
    "action-not-a-word": _edit(3, b"Isolate!"),
    "incident-with-slash": _edit(2, b"INC/1"),
    "why-with-escape": _edit(16, b"ok\x1b[31m"),
    "why-over-4096-bytes": _edit(16, b"x" * 4097),
    "empty-reason-list": _edit(8, b"", TlvType.UTF8LIST),
    "repeated-reason": _edit(8, _u32(4) + b"DDOS" + _u32(4) + b"DDOS", TlvType.UTF8LIST),
    "reason-in-lower-case": _edit(8, _u32(4) + b"ddos", TlvType.UTF8LIST),
    "stage-with-two-slashes": _edit(12, _u32(5) + b"a/b/c", TlvType.UTF8LIST),
    "ref-with-a-blank": _edit(15, _u32(3) + b"a b", TlvType.UTF8LIST),
    "short-time": _edit(4, bytes(4), TlvType.I64),
    "custodian-not-a-vkey": _edit(30, b"alice"),
    "short-signature": _edit(31, bytes(63), TlvType.BYTES),
    "field-after-signature": bytes.fromhex(VECTORS["body"]) + tlv(32, TlvType.UTF8, b"x"),
    "truncated": bytes.fromhex(VECTORS["body"])[:-1],
}


@pytest.mark.parametrize("name", list(BAD))
def test_both_implementations_refuse_a_malformed_body(name: str) -> None:
    with pytest.raises(MalformedError):
        parse_decision(BAD[name])
    with pytest.raises((ValueError, iv.Finding)):
        iv.decode_decision(BAD[name])


def test_an_edited_body_no_longer_verifies() -> None:
    edited = _edit(16, b"a different reason, written after the fact")
    decision = parse_decision(edited)  # well formed
    assert not decision.verifies(ORIGIN)


def test_signing_refuses_what_a_verifier_would_refuse() -> None:
    base = Decision("INC-1", "note", 0, 0, "alice", "why")
    _signed, body = base.sign(SIGNER, ORIGIN)
    assert parse_decision(body).verifies(ORIGIN)
    for bad in (
        replace(base, why=""),
        replace(base, action="Note"),
        replace(base, reasons=("lower",)),
        replace(base, actor="a" * 129),
        replace(base, refs=("x" * 257,)),
        replace(base, object="line\nbreak"),
    ):
        with pytest.raises(MalformedError):
            bad.sign(SIGNER, ORIGIN)


def test_a_line_break_is_allowed_in_why_only() -> None:
    _signed, body = Decision("INC-1", "note", 0, 0, "alice", "two\nlines").sign(SIGNER, ORIGIN)
    assert parse_decision(body).why == "two\nlines"
    assert iv.decode_decision(body).incident == "INC-1"
