"""Canonical record encoding (acdkit-rec/1), typed log entries and salted leaf hashes.

Every step but the final SHA-256 is vectorized over Arrow arrays: a record body is the
concatenation of its present fields' TLVs in field-number order, built column by column.
See docs/evidence-format.md §3-§5 for the byte layout this module implements.
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Callable
from enum import IntEnum

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms

from acdkit.errors import MalformedError
from acdkit.schema import Field, TableSchema

__all__ = [
    "MAGIC",
    "EntryType",
    "TlvType",
    "canonical_bodies",
    "entry",
    "ip16",
    "leaf_hashes",
    "record_salts",
]

MAGIC = b"ACDK"
ENTRY_VERSION = 1
SALT_NONCE = b"acdkit/salt1"  # 12 bytes: the ChaCha20 nonce of the salt stream
ZERO_SALT = bytes(32)


class EntryType(IntEnum):
    RECORD = 0x01
    SEAL = 0x02
    CLOCK = 0x03
    KEY = 0x04
    GAP = 0x05
    ANCHOR = 0x06
    CUSTODY = 0x07
    DECISION = 0x08


class TlvType(IntEnum):
    U64 = 0x01
    I64 = 0x02
    BYTES = 0x03
    UTF8 = 0x04
    IP16 = 0x05
    BOOL = 0x06
    UTF8LIST = 0x07


_CANON_TO_TLV = {
    "u64": TlvType.U64,
    "i64": TlvType.I64,
    "bytes": TlvType.BYTES,
    "utf8": TlvType.UTF8,
    "ip16": TlvType.IP16,
    "bool": TlvType.BOOL,
    "utf8list": TlvType.UTF8LIST,
}
_HEX_LEN = {"hex16": 16, "hex32": 32}


def entry(kind: EntryType, body: bytes, salt: bytes = ZERO_SALT) -> bytes:
    """Entry bytes (the leaf input): magic, version, type, 32-byte salt, body."""
    if len(salt) != 32:
        raise ValueError("salt must be 32 bytes")
    return MAGIC + bytes([ENTRY_VERSION, int(kind)]) + salt + body


def tlv(field_id: int, kind: TlvType, value: bytes) -> bytes:
    return field_id.to_bytes(2, "big") + bytes([kind]) + len(value).to_bytes(4, "big") + value


def ip16(text: str) -> bytes:
    """16-byte form of an address; IPv4 becomes ::ffff:a.b.c.d."""
    addr = ipaddress.ip_address(text)
    if addr.version == 4:
        return b"\x00" * 10 + b"\xff\xff" + addr.packed
    return addr.packed


def _fixed(buf: bytes, width: int, n: int) -> pa.Array:
    arr = pa.FixedSizeBinaryArray.from_buffers(pa.binary(width), n, [None, pa.py_buffer(buf)])
    return arr.cast(pa.binary())


def _mask_nulls(values: pa.Array, like: pa.Array) -> pa.Array:
    if like.null_count == 0:
        return values
    return pc.if_else(pc.is_null(like), pa.scalar(None, pa.binary()), values)


def _headers(field_id: int, kind: TlvType, lengths: np.ndarray) -> np.ndarray:
    """(n, 7) byte matrix of TLV headers: id u16be, type u8, length u32be."""
    out = np.empty((len(lengths), 7), dtype=np.uint8)
    out[:, 0:2] = np.frombuffer(field_id.to_bytes(2, "big"), dtype=np.uint8)
    out[:, 2] = int(kind)
    out[:, 3:7] = lengths.astype(">u4").view(np.uint8).reshape(-1, 4)
    return out


def _fixed_tlvs(field_id: int, kind: TlvType, values: np.ndarray, like: pa.Array) -> pa.Array:
    """TLVs of a fixed-width type in one numpy pass; ``values`` is an (n, w) byte matrix."""
    n, width = values.shape
    head = _headers(field_id, kind, np.full(n, width, dtype=np.uint32))
    matrix = np.ascontiguousarray(np.hstack([head, values]))
    return _mask_nulls(_fixed(matrix.tobytes(), 7 + width, n), like)


def _var_tlvs(field_id: int, kind: TlvType, values: pa.Array) -> pa.Array:
    lengths = pc.binary_length(values).fill_null(0).to_numpy(zero_copy_only=False)
    head = _fixed(_headers(field_id, kind, lengths).tobytes(), 7, len(values))
    return pc.binary_join_element_wise(head, values, b"")


def _int_matrix(col: pa.Array, dtype: str) -> np.ndarray:
    if pa.types.is_timestamp(col.type):
        col = col.cast(pa.int64())
    filled = col.fill_null(0).to_numpy(zero_copy_only=False)
    return np.ascontiguousarray(filled.astype(dtype)).view(np.uint8).reshape(-1, 8)


def _by_unique(col: pa.Array, convert: Callable[[str], bytes], what: str) -> pa.Array:
    """Convert text values through a Python function applied once per distinct value."""
    encoded = pc.dictionary_encode(col)
    out: list[bytes] = []
    for value in encoded.dictionary.to_pylist():
        try:
            out.append(convert(value))
        except ValueError as exc:
            raise MalformedError(f"{what}: {value!r} cannot be encoded ({exc})") from None
    converted = pa.array(out, pa.binary())
    return pc.take(converted, encoded.indices)


_OCTET = "(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_IPV4 = rf"^{_OCTET}(\.{_OCTET}){{3}}$"  # canonical dotted quad: no leading zeros


def _ip16_column(col: pa.Array, what: str) -> pa.Array:
    """16-byte addresses; dotted-quad IPv4 in bulk, anything else once per distinct value."""
    is_v4 = pc.fill_null(pc.match_substring_regex(col, _IPV4), False)
    v4 = col.filter(is_v4)
    octets = pc.list_flatten(pc.split_pattern(v4, ".")).cast(pa.uint8())
    matrix = np.zeros((len(v4), 16), dtype=np.uint8)
    matrix[:, 10:12] = 0xFF
    matrix[:, 12:] = octets.to_numpy(zero_copy_only=False).reshape(-1, 4)
    packed = _fixed(matrix.tobytes(), 16, len(v4))
    if len(v4) == len(col):
        return packed
    others = _by_unique(col.filter(pc.invert(is_v4)), ip16, what)
    # put both parts back in row order
    order = np.argsort(
        np.concatenate(
            [
                np.flatnonzero(is_v4.to_numpy(zero_copy_only=False)),
                np.flatnonzero(~is_v4.to_numpy(zero_copy_only=False)),
            ]
        ),
        kind="stable",
    )
    return pc.take(pa.concat_arrays([packed, others]), pa.array(order))


def _hex_bytes(width: int) -> Callable[[str], bytes]:
    def convert(value: str) -> bytes:
        raw = bytes.fromhex(value)
        if len(raw) != width:
            raise ValueError(f"expected {width} bytes")
        return raw

    return convert


def _length_prefixed(values: pa.Array) -> pa.Array:
    lengths = pc.binary_length(values).fill_null(0).to_numpy(zero_copy_only=False)
    prefix = _fixed(lengths.astype(">u4").tobytes(), 4, len(values))
    return pc.binary_join_element_wise(prefix, values.cast(pa.binary()), b"")


def _field_tlvs(col: pa.Array, f: Field, table: str) -> pa.Array:
    """TLVs of one column; null where the field is absent."""
    what = f"{table}.{f.name}"
    canon = f.canonical_type
    kind = _CANON_TO_TLV[canon]
    if canon in ("u64", "i64"):
        return _fixed_tlvs(f.id, kind, _int_matrix(col, ">u8" if canon == "u64" else ">i8"), col)
    if canon == "bool":
        flags = col.fill_null(False).to_numpy(zero_copy_only=False).astype(np.uint8)
        return _fixed_tlvs(f.id, kind, flags.reshape(-1, 1), col)
    if canon == "utf8":
        value = col.cast(pa.binary())
    elif canon == "ip16":
        value = _ip16_column(col, what)
    elif canon == "bytes":
        value = _by_unique(col, _hex_bytes(_HEX_LEN[f.type]), what)
    elif canon == "utf8list":
        items = _length_prefixed(pc.list_flatten(col))
        counts = pc.list_value_length(col).fill_null(0).to_numpy(zero_copy_only=False)
        starts = np.concatenate([[0], np.cumsum(counts)]).astype(np.int32)
        nested = pa.ListArray.from_arrays(pa.array(starts), items)
        value = _mask_nulls(pc.binary_join(nested, b""), col)
    else:
        raise AssertionError(canon)
    return _var_tlvs(f.id, kind, value)


def canonical_bodies(batch: pa.RecordBatch | pa.Table, schema: TableSchema) -> pa.Array:
    """Canonical bodies of every row: field 0 (schema id) then each present field's TLV."""
    n = batch.num_rows
    head = tlv(0, TlvType.UTF8, schema.schema_id.encode())
    parts: list[pa.Array | pa.Scalar] = [pa.scalar(head, pa.binary())]
    for f in sorted(schema.fields, key=lambda f: f.id):
        col = batch.column(f.name)
        if isinstance(col, pa.ChunkedArray):
            col = col.combine_chunks()
        if f.required and col.null_count:
            raise MalformedError(f"{schema.table}.{f.name} is required but has null values")
        if col.null_count == n:
            continue
        # absent fields become empty strings before the join: much faster than null skipping
        parts.append(_field_tlvs(col, f, schema.table).fill_null(b""))
    if len(parts) == 1:
        return pa.array([head] * n, pa.binary())
    joined = pc.binary_join_element_wise(*parts, b"")
    return joined.cast(pa.large_binary())


def record_salts(segment_key: bytes, first_position: int, count: int) -> bytes:
    """32-byte salts for positions [first, first+count) of a segment, concatenated.

    salt(p) is bytes [32p, 32p+32) of the ChaCha20 key stream under the segment key and
    the nonce "acdkit/salt1": a pseudo-random function of (key, position), so one
    disclosed salt reveals neither the key nor any other salt.
    """
    if count == 0:
        return b""
    block, skip = divmod(first_position * 32, 64)
    nonce = block.to_bytes(4, "little") + SALT_NONCE
    stream = Cipher(algorithms.ChaCha20(segment_key, nonce), mode=None).encryptor()
    data = stream.update(bytes(skip + count * 32))
    return data[skip:]


def leaf_hashes(bodies: pa.Array, salts: bytes, kind: EntryType = EntryType.RECORD) -> bytes:
    """RFC 6962 leaf hashes of the salted entries, concatenated (32 bytes each)."""
    n = len(bodies)
    if len(salts) != 32 * n:
        raise ValueError("one 32-byte salt per body is required")
    prefix = b"\x00" + MAGIC + bytes([ENTRY_VERSION, int(kind)])
    inputs = pc.binary_join_element_wise(
        pa.scalar(prefix, pa.large_binary()),
        _fixed(salts, 32, n).cast(pa.large_binary()),
        bodies.cast(pa.large_binary()),
        pa.scalar(b"", pa.large_binary()),
    )
    if isinstance(inputs, pa.ChunkedArray):
        inputs = inputs.combine_chunks()
    offsets = np.frombuffer(
        inputs.buffers()[1], dtype=np.int64, count=n + 1, offset=inputs.offset * 8
    )
    data = memoryview(inputs.buffers()[2])
    sha = hashlib.sha256
    ends = offsets[1:].tolist()
    starts = offsets[:-1].tolist()
    return b"".join([sha(data[s:e]).digest() for s, e in zip(starts, ends, strict=True)])


def parse_tlv(body: bytes, max_fields: int = 4096) -> list[tuple[int, TlvType, bytes]]:
    """Strictly parse a TLV body: ids strictly increasing, known types, exact lengths."""
    out: list[tuple[int, TlvType, bytes]] = []
    pos, last = 0, -1
    while pos < len(body):
        if len(body) - pos < 7:
            raise MalformedError("truncated TLV header")
        fid = int.from_bytes(body[pos : pos + 2], "big")
        try:
            kind = TlvType(body[pos + 2])
        except ValueError:
            raise MalformedError(f"unknown TLV type {body[pos + 2]} in field {fid}") from None
        size = int.from_bytes(body[pos + 3 : pos + 7], "big")
        pos += 7
        if size > len(body) - pos:
            raise MalformedError(f"TLV field {fid} runs past the end of the body")
        if fid <= last:
            raise MalformedError(f"TLV field {fid} is out of order or duplicated")
        out.append((fid, kind, body[pos : pos + size]))
        pos, last = pos + size, fid
        if len(out) > max_fields:
            raise MalformedError("too many TLV fields")
    return out
