"""C2SP tlog-proof files: an index, an inclusion path and the checkpoint it rests on.

acdkit puts the leaf's entry bytes in the optional ``extra`` line, so one proof file is
enough to check one disclosed entry offline.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass

from acdkit.errors import MalformedError
from acdkit.note import _b64, parse_decimal

__all__ = ["HEADER", "TlogProof"]

HEADER = "c2sp.org/tlog-proof@v1"
MAX_PROOF_BYTES = 1 << 20
MAX_HASHES = 64


@dataclass(frozen=True)
class TlogProof:
    index: int
    hashes: tuple[bytes, ...]
    checkpoint: bytes  # the signed checkpoint note, verbatim
    extra: bytes | None = None

    def encode(self) -> bytes:
        lines = [HEADER]
        if self.extra is not None:
            lines.append("extra " + base64.b64encode(self.extra).decode())
        lines.append(f"index {self.index}")
        lines += [base64.b64encode(h).decode() for h in self.hashes]
        return ("\n".join(lines) + "\n\n").encode() + self.checkpoint

    @classmethod
    def parse(cls, data: bytes) -> TlogProof:
        if len(data) > MAX_PROOF_BYTES:
            raise MalformedError("proof file is larger than 1 MiB")
        head, sep, checkpoint = data.partition(b"\n\n")
        if not sep or not checkpoint:
            raise MalformedError("proof has no blank line before its checkpoint")
        try:
            lines = head.decode("ascii").split("\n")
        except UnicodeDecodeError as exc:
            raise MalformedError("proof header is not ASCII") from exc
        if lines[0] != HEADER:
            raise MalformedError(f"proof does not start with {HEADER}")
        pos, extra = 1, None
        if pos < len(lines) and lines[pos].startswith("extra "):
            extra = _b64(lines[pos][6:], "proof extra data")
            pos += 1
        if pos >= len(lines) or not lines[pos].startswith("index "):
            raise MalformedError("proof has no index line")
        index = parse_decimal(lines[pos][6:], "proof index")
        hashes = tuple(_b64(line, "proof hash") for line in lines[pos + 1 :])
        if len(hashes) > MAX_HASHES or any(len(h) != 32 for h in hashes):
            raise MalformedError("proof hashes must be at most 64 values of 32 bytes")
        return cls(index, hashes, checkpoint, extra)
