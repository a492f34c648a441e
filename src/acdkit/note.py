"""C2SP signed notes and tlog checkpoints, formatted and parsed strictly.

A note is its text (non-empty lines, each ending in LF), a blank line, then one or more
signature lines ``— <name> <base64(key id || signature)>``.  Signatures cover the text
including its final newline.  Parsing rejects CR, control characters, non-canonical
decimals and base64, and oversize input before any cryptography runs.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass

from acdkit.errors import MalformedError
from acdkit.keys import ALG_ED25519, Signer, Verifier

__all__ = ["Checkpoint", "NoteSignature", "SignedNote", "sign_note"]

MAX_NOTE_BYTES = 1 << 20
MAX_SIGNATURES = 100
_DASH = "\u2014"
_DECIMAL = re.compile(r"(0|[1-9][0-9]{0,19})")
# Unicode control characters (category Cc: C0, DEL, C1) other than LF.  A fixed set: what
# str.isprintable() rejects depends on the Unicode version of the Python that runs it.
_CONTROL = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f]")


@dataclass(frozen=True)
class NoteSignature:
    name: str
    key_id: bytes
    signature: bytes


@dataclass(frozen=True)
class SignedNote:
    text: str
    signatures: tuple[NoteSignature, ...]

    def encode(self) -> bytes:
        out = [self.text, "\n"]
        for sig in self.signatures:
            blob = base64.b64encode(sig.key_id + sig.signature).decode()
            out.append(f"{_DASH} {sig.name} {blob}\n")
        return "".join(out).encode()

    def verified_by(self, verifier: Verifier) -> bool:
        """True when signature lines name this key and every one of them holds."""
        if verifier.ALG != ALG_ED25519:
            return False  # a witness key signs cosignatures (acdkit.cosignature), not notes
        mine = [
            sig
            for sig in self.signatures
            if sig.name == verifier.name and sig.key_id == verifier.key_id
        ]
        text = self.text.encode()
        return bool(mine) and all(verifier.verify(sig.signature, text) for sig in mine)

    @classmethod
    def parse(cls, data: bytes, limit: int = MAX_NOTE_BYTES) -> SignedNote:
        if len(data) > limit:
            raise MalformedError(f"note is larger than {limit:,} bytes")
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise MalformedError("note is not valid UTF-8") from exc
        if _CONTROL.search(text):
            raise MalformedError("note contains a control character (CR, TAB, NUL, ...)")
        # text lines are non-empty, so the first empty line ends the text
        body, sep, sigblock = text.partition("\n\n")
        if not sep or not body or body.startswith("\n"):
            raise MalformedError("note has no blank line between text and signatures")
        if not sigblock.endswith("\n"):
            raise MalformedError("note does not end with a newline")
        sig_lines = sigblock[:-1].split("\n")
        if len(sig_lines) > MAX_SIGNATURES:
            raise MalformedError("note has too many signature lines")
        return cls(body + "\n", tuple(_parse_sig(line) for line in sig_lines))


def _parse_sig(line: str) -> NoteSignature:
    parts = line.split(" ")
    if len(parts) != 3 or parts[0] != _DASH or not parts[1]:
        raise MalformedError(f"bad note signature line: {line[:80]!r}")
    raw = _b64(parts[2], "signature")
    if len(raw) < 5:
        raise MalformedError("note signature is too short")
    return NoteSignature(parts[1], raw[:4], raw[4:])


def _b64(value: str, what: str) -> bytes:
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise MalformedError(f"{what} is not valid base64") from exc
    if base64.b64encode(raw).decode() != value:
        raise MalformedError(f"{what} is not canonical base64")
    return raw


def parse_decimal(value: str, what: str) -> int:
    if not _DECIMAL.fullmatch(value):
        raise MalformedError(f"{what} {value[:30]!r} is not a canonical decimal")
    number = int(value)
    if number >= 1 << 63:
        raise MalformedError(f"{what} {value} is out of range")
    return number


def sign_note(text: str, signer: Signer) -> SignedNote:
    if not text.endswith("\n") or "\n\n" in text or text.startswith("\n"):
        raise ValueError("note text must be non-empty lines each ending in a newline")
    sig = NoteSignature(signer.name, signer.verifier.key_id, signer.sign(text.encode()))
    return SignedNote(text, (sig,))


@dataclass(frozen=True)
class Checkpoint:
    """C2SP tlog-checkpoint body: origin, tree size, root hash; no extension lines."""

    origin: str
    size: int
    root: bytes

    def text(self) -> str:
        return f"{self.origin}\n{self.size}\n{base64.b64encode(self.root).decode()}\n"

    @classmethod
    def from_text(cls, text: str) -> Checkpoint:
        lines = text.split("\n")
        if len(lines) != 4 or lines[3] != "":
            raise MalformedError("checkpoint must have exactly three lines: origin, size, root")
        origin, size_s, root_s = lines[:3]
        if not origin:
            raise MalformedError("checkpoint origin is empty")
        root = _b64(root_s, "checkpoint root")
        if len(root) != 32:
            raise MalformedError("checkpoint root is not 32 bytes")
        return cls(origin, parse_decimal(size_s, "checkpoint size"), root)
