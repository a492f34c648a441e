"""The SEAL entry: what a segment holds and which checkpoint came before it.

Its body is a TLV record (docs/evidence-format.md §6); `SealInfo` builds it for the
sealer and parses it, strictly, for the verifier, the bundle and the summary.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from acdkit.encoding import EntryType, TlvType, entry, parse_tlv, tlv
from acdkit.errors import MalformedError

__all__ = ["TABLE_BASE", "SealInfo", "segment_name"]

TABLE_BASE = {"net": 20, "dns": 30, "edr": 40}  # SEAL field ids: base+0 count, +1 sha, +2 size
KNOWN_FIELDS = frozenset(range(1, 15)) | {b + i for b in TABLE_BASE.values() for i in range(4)}


def _u64(value: int) -> bytes:
    return value.to_bytes(8, "big")


def _i64(value: int) -> bytes:
    return value.to_bytes(8, "big", signed=True)


def segment_name(start: int, end: int) -> str:
    return f"{start:020d}-{end:020d}"


@dataclass
class SealInfo:
    """The SEAL leaf body: what a segment holds and which checkpoint came before it."""

    origin: str
    segment_no: int
    first_index: int
    end_index: int  # tree size once this SEAL is appended
    record_count: int
    prev_checkpoint: bytes  # SHA-256 of the previous checkpoint note; zeros for segment 0
    sealed_at_ns: int
    tool: str
    sealer_key_id: bytes
    sources: list[str] = field(default_factory=list)
    ts_min_ns: int | None = None
    ts_max_ns: int | None = None
    tables: dict[str, dict[str, Any]] = field(default_factory=dict)  # count, sha256, size
    collector: str = ""
    entry_count: int = 0  # log entries (acdkit.logentries) between the records and the SEAL

    def body(self) -> bytes:
        parts = [
            tlv(1, TlvType.UTF8, self.origin.encode()),
            tlv(2, TlvType.U64, _u64(self.segment_no)),
            tlv(3, TlvType.U64, _u64(self.first_index)),
            tlv(4, TlvType.U64, _u64(self.end_index)),
            tlv(5, TlvType.U64, _u64(self.record_count)),
            tlv(6, TlvType.BYTES, self.prev_checkpoint),
        ]
        if self.ts_min_ns is not None and self.ts_max_ns is not None:
            parts += [
                tlv(7, TlvType.I64, _i64(self.ts_min_ns)),
                tlv(8, TlvType.I64, _i64(self.ts_max_ns)),
            ]
        parts += [
            tlv(9, TlvType.I64, _i64(self.sealed_at_ns)),
            tlv(10, TlvType.UTF8, self.tool.encode()),
            tlv(11, TlvType.BYTES, self.sealer_key_id),
            tlv(
                12,
                TlvType.UTF8LIST,
                b"".join(len(s).to_bytes(4, "big") + s.encode() for s in self.sources),
            ),
            tlv(13, TlvType.UTF8, self.collector.encode()),
        ]
        if self.entry_count:
            parts.append(tlv(14, TlvType.U64, _u64(self.entry_count)))
        for table, base in TABLE_BASE.items():
            info = self.tables.get(table)
            if not info:
                continue
            parts += [
                tlv(base, TlvType.U64, _u64(info["count"])),
                tlv(base + 1, TlvType.BYTES, bytes.fromhex(info["sha256"])),
                tlv(base + 2, TlvType.U64, _u64(info["size"])),
                tlv(base + 3, TlvType.BYTES, bytes.fromhex(info["schema"])),
            ]
        return b"".join(parts)

    def entry(self) -> bytes:
        return entry(EntryType.SEAL, self.body())

    @classmethod
    def from_entry(cls, data: bytes) -> SealInfo:
        if len(data) < 38 or data[:4] != b"ACDK" or data[4] != 1:
            raise MalformedError("not an acdkit v1 entry")
        if data[5] != EntryType.SEAL:
            raise MalformedError(f"entry type {data[5]} is not SEAL")
        if data[6:38] != bytes(32):
            raise MalformedError("SEAL entry has a non-zero salt")
        return cls.from_body(data[38:])

    @classmethod
    def from_body(cls, body: bytes) -> SealInfo:
        fields = {fid: (kind, value) for fid, kind, value in parse_tlv(body)}
        unknown = sorted(set(fields) - KNOWN_FIELDS)
        if unknown:
            raise MalformedError(f"SEAL field {unknown[0]} is not defined in format version 1")

        def get(fid: int, kind: TlvType, required: bool = True) -> bytes | None:
            if fid not in fields:
                if required:
                    raise MalformedError(f"SEAL field {fid} is missing")
                return None
            if fields[fid][0] != kind:
                raise MalformedError(f"SEAL field {fid} has the wrong type")
            return fields[fid][1]

        def num(fid: int, signed: bool = False, required: bool = True) -> int | None:
            raw = get(fid, TlvType.I64 if signed else TlvType.U64, required)
            if raw is None:
                return None
            if len(raw) != 8:
                raise MalformedError(f"SEAL field {fid} is not 8 bytes")
            return int.from_bytes(raw, "big", signed=signed)

        def req(fid: int, signed: bool = False) -> int:
            value = num(fid, signed)
            assert value is not None
            return value

        def text(fid: int) -> str:
            raw = get(fid, TlvType.UTF8)
            assert raw is not None
            try:
                return raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise MalformedError(f"SEAL field {fid} is not UTF-8") from exc

        prev = get(6, TlvType.BYTES)
        key_id = get(11, TlvType.BYTES)
        if prev is None or len(prev) != 32 or key_id is None or len(key_id) != 4:
            raise MalformedError("SEAL previous-checkpoint hash or key id has a wrong length")
        info = cls(
            text(1),
            req(2),
            req(3),
            req(4),
            req(5),
            prev,
            req(9, True),
            text(10),
            key_id,
            _utf8list(get(12, TlvType.UTF8LIST) or b""),
            num(7, True, False),
            num(8, True, False),
            collector=text(13),
            entry_count=num(14, required=False) or 0,
        )
        for table, base in TABLE_BASE.items():
            count = num(base, required=False)
            if count is None:
                continue
            sha = get(base + 1, TlvType.BYTES)
            schema_digest = get(base + 3, TlvType.BYTES)
            assert sha is not None and schema_digest is not None
            if len(sha) != 32 or len(schema_digest) != 32:
                raise MalformedError(f"SEAL field {base + 1} or {base + 3} is not 32 bytes")
            info.tables[table] = {
                "count": count,
                "sha256": sha.hex(),
                "size": req(base + 2),
                "schema": schema_digest.hex(),
            }
        return info


def _utf8list(raw: bytes) -> list[str]:
    out, pos = [], 0
    while pos < len(raw):
        if len(raw) - pos < 4:
            raise MalformedError("truncated list item")
        size = int.from_bytes(raw[pos : pos + 4], "big")
        if size > len(raw) - pos - 4:
            raise MalformedError("SEAL list item runs past the end of its field")
        try:
            out.append(raw[pos + 4 : pos + 4 + size].decode("utf-8"))
        except UnicodeDecodeError:
            raise MalformedError("SEAL list item is not UTF-8") from None
        pos += 4 + size
    return out
