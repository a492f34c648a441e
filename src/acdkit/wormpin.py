"""WORM upload receipts: which S3 object versions hold copies of a store's files.

A `worm-upload` CUSTODY entry (docs/evidence-format.md §16.7) carries a receipt: the
bucket and, for each object, its key, the version ID S3 gave it, its SHA-256 and size, the
Object Lock retention it was written under, and whether S3 returned its own SHA-256
checksum of the object.  The receipt is fields 14-20 of the CUSTODY body; this module
encodes and parses them, strictly.  No network here: that is acdkit.worm.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from acdkit.encoding import TlvType
from acdkit.errors import MalformedError

__all__ = [
    "FIELDS",
    "MODES",
    "Pin",
    "Receipt",
    "bucket_problem",
    "key_problem",
    "parse_receipt",
    "version_problem",
]

# field -> type of the receipt fields of a worm-upload body (§16.7)
FIELDS = {
    14: TlvType.UTF8,  # bucket
    15: TlvType.UTF8LIST,  # object keys
    16: TlvType.UTF8LIST,  # version IDs
    17: TlvType.BYTES,  # n x 32: SHA-256 of each object
    18: TlvType.BYTES,  # n x 8: size of each object, u64be
    19: TlvType.BYTES,  # n x 10: lock mode u8, retain-until i64be ns, legal hold u8
    20: TlvType.BYTES,  # n x 1: 1 = S3 returned a ChecksumSHA256 equal to field 17's
}
MODES = {1: "GOVERNANCE", 2: "COMPLIANCE"}
_MODE_CODES = {name: code for code, name in MODES.items()}
MAX_KEY_BYTES = 1024  # S3's own limit on a key
MAX_VERSION_BYTES = 1024
# S3's "safe characters" for keys; acdkit writes no other, and reads no other
_KEY = re.compile(r"[A-Za-z0-9!_.*'()/-]+")
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_VERSION = re.compile(r"[\x21-\x7e]+")


@dataclass(frozen=True)
class Pin:
    """One object version as S3 holds it, and what the uploader knew of it."""

    key: str
    version_id: str
    sha256: bytes
    size: int
    mode: str  # GOVERNANCE | COMPLIANCE
    retain_until_ns: int
    legal_hold: bool
    s3_checksum: bool  # S3 returned ChecksumSHA256, equal to sha256

    @property
    def name(self) -> str:
        """The key and version, as a report names them."""
        return f"{self.key} (version {self.version_id})"


@dataclass(frozen=True)
class Receipt:
    """The objects of one worm-upload entry, all in one bucket."""

    bucket: str
    pins: tuple[Pin, ...]

    def fields(self) -> dict[int, tuple[TlvType, bytes]]:
        """Fields 14-20, checked as a parser would check them."""
        _check(self)
        pins = self.pins
        return {
            14: (TlvType.UTF8, self.bucket.encode()),
            15: (TlvType.UTF8LIST, _pack([p.key for p in pins])),
            16: (TlvType.UTF8LIST, _pack([p.version_id for p in pins])),
            17: (TlvType.BYTES, b"".join(p.sha256 for p in pins)),
            18: (TlvType.BYTES, b"".join(p.size.to_bytes(8, "big") for p in pins)),
            19: (TlvType.BYTES, b"".join(_lock(p) for p in pins)),
            20: (TlvType.BYTES, bytes(int(p.s3_checksum) for p in pins)),
        }


def bucket_problem(bucket: str) -> str | None:
    """Why ``bucket`` is no S3 bucket name acdkit takes, or None."""
    if not _BUCKET.fullmatch(bucket) or ".." in bucket:
        return "must be 3-63 lower-case letters, digits, '.' or '-' (an S3 bucket name)"
    return None


def key_problem(key: str) -> str | None:
    """Why ``key`` is no object key acdkit writes, or None."""
    if not _KEY.fullmatch(key) or len(key) > MAX_KEY_BYTES:
        return f"must be 1-{MAX_KEY_BYTES} of letters, digits and !_.*'()/-"
    if key.startswith("/") or "//" in key or any(p in (".", "..") for p in key.split("/")):
        return "must not start with '/' nor hold an empty, '.' or '..' part"
    return None


def version_problem(version: str) -> str | None:
    """Why ``version`` is no version ID acdkit takes, or None."""
    if not _VERSION.fullmatch(version) or len(version) > MAX_VERSION_BYTES:
        return f"must be 1-{MAX_VERSION_BYTES} printable ASCII characters without blanks"
    return None


def _check(receipt: Receipt) -> None:
    problem = bucket_problem(receipt.bucket)
    if problem:
        raise MalformedError(f"CUSTODY bucket {problem}")
    if not receipt.pins:
        raise MalformedError("CUSTODY worm-upload names no object")
    keys = [p.key for p in receipt.pins]
    if len(set(keys)) != len(keys):
        raise MalformedError("CUSTODY worm-upload names one key twice")
    for pin in receipt.pins:
        problem = key_problem(pin.key) or version_problem(pin.version_id)
        if problem:
            raise MalformedError(f"CUSTODY worm-upload object {pin.key[:64]!r}: {problem}")
        if len(pin.sha256) != 32 or not 0 <= pin.size < 1 << 63:
            raise MalformedError(f"CUSTODY worm-upload object {pin.key}: bad hash or size")
        if pin.mode not in _MODE_CODES:
            raise MalformedError(f"CUSTODY worm-upload object {pin.key}: unknown lock mode")


def _lock(pin: Pin) -> bytes:
    until = pin.retain_until_ns.to_bytes(8, "big", signed=True)
    return bytes([_MODE_CODES[pin.mode]]) + until + bytes([int(pin.legal_hold)])


def _pack(items: list[str]) -> bytes:
    return b"".join(len(b).to_bytes(4, "big") + b for b in (i.encode() for i in items))


def _unpack(value: bytes, what: str) -> list[str]:
    out, pos = [], 0
    while pos < len(value):
        if len(value) - pos < 4:
            raise MalformedError(f"CUSTODY {what} list ends inside a length")
        size = int.from_bytes(value[pos : pos + 4], "big")
        if size > len(value) - pos - 4:
            raise MalformedError(f"CUSTODY {what} list runs past its field")
        try:
            out.append(value[pos + 4 : pos + 4 + size].decode("utf-8"))
        except UnicodeDecodeError:
            raise MalformedError(f"CUSTODY {what} is not UTF-8") from None
        pos += 4 + size
    return out


def _flag(byte: int, what: str) -> bool:
    if byte not in (0, 1):
        raise MalformedError(f"CUSTODY {what} is not 0 or 1")
    return byte == 1


def parse_receipt(fields: Mapping[int, tuple[TlvType, bytes]]) -> Receipt:
    """Fields 14-20 of a worm-upload body (types already checked), strictly (§16.7)."""
    missing = [fid for fid in FIELDS if fid not in fields]
    if missing:
        raise MalformedError(f"CUSTODY worm-upload lacks field {missing[0]}")
    try:
        bucket = fields[14][1].decode("utf-8")
    except UnicodeDecodeError:
        raise MalformedError("CUSTODY bucket is not UTF-8") from None
    keys = _unpack(fields[15][1], "key")
    versions = _unpack(fields[16][1], "version ID")
    n = len(keys)
    widths = {16: (len(versions), 1), 17: (len(fields[17][1]), 32), 18: (len(fields[18][1]), 8)}
    widths |= {19: (len(fields[19][1]), 10), 20: (len(fields[20][1]), 1)}
    for fid, (size, width) in widths.items():
        if size != n * width:
            raise MalformedError(f"CUSTODY field {fid} does not hold one value per key")
    pins = []
    for i in range(n):
        lock = fields[19][1][10 * i : 10 * i + 10]
        if lock[0] not in MODES:
            raise MalformedError("CUSTODY worm-upload lock mode is not 1 or 2")
        pins.append(
            Pin(
                key=keys[i],
                version_id=versions[i],
                sha256=fields[17][1][32 * i : 32 * i + 32],
                size=_size(fields[18][1][8 * i : 8 * i + 8]),
                mode=MODES[lock[0]],
                retain_until_ns=int.from_bytes(lock[1:9], "big", signed=True),
                legal_hold=_flag(lock[9], "legal hold"),
                s3_checksum=_flag(fields[20][1][i], "S3 checksum flag"),
            )
        )
    receipt = Receipt(bucket, tuple(pins))
    _check(receipt)
    return receipt


def _size(raw: bytes) -> int:
    size = int.from_bytes(raw, "big")
    if size >= 1 << 63:
        raise MalformedError("CUSTODY worm-upload object size is not below 2^63")
    return size
