"""Canonical record encoding (acdkit-rec/1), typed log entries and salted leaf hashes.

Every step but the final SHA-256 is vectorized over Arrow arrays: a record body is the
concatenation of its present fields' TLVs in field-number order, built column by column.
See docs/evidence-format.md §3-§5 for the byte layout this module implements.
"""

from __future__ import annotations

import hashlib
import ipaddress
import itertools
import struct
from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum
from typing import TypeAlias

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms

from acdkit import _batchsha
from acdkit.errors import MalformedError
from acdkit.schema import Field, TableSchema

__all__ = [
    "MAGIC",
    "EntryType",
    "TlvType",
    "canonical_bodies",
    "canonical_ip",
    "entry",
    "ip16",
    "leaf_hashes",
    "record_leaf_hashes",
    "record_salts",
]

_sha256 = hashlib.sha256
_digest = type(_sha256()).digest
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
    PRUNE = 0x09


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


def canonical_ip(text: str) -> str | None:
    """Canonical text of an address, or None if it is not one (zone IDs are not accepted)."""
    if "%" in text:
        # Python >= 3.9 accepts "fe80::1%<zone>" and keeps the zone, which is free text
        return None
    try:
        addr = ipaddress.ip_address(text.strip())
    except ValueError:
        return None
    if addr.version == 6 and addr.ipv4_mapped is not None:
        # RFC 5952 §5 form; str() gives "::ffff:102:304" before Python 3.13, this after
        return f"::ffff:{addr.ipv4_mapped}"
    return str(addr)


def _canonical_ip16(text: str) -> bytes:
    """16-byte form of an address written in its canonical text, which ingest produced;
    any other spelling would encode alike, so a changed sealed text would go unnoticed."""
    if canonical_ip(text) != text:
        raise ValueError("not the canonical text of an address")
    return ip16(text)


def ip16(text: str) -> bytes:
    """16-byte form of an address; IPv4 becomes ::ffff:a.b.c.d."""
    addr = ipaddress.ip_address(text)
    if addr.version == 4:
        return b"\x00" * 10 + b"\xff\xff" + addr.packed
    return addr.packed


def _fixed(buf: bytes, width: int, n: int) -> pa.Array:
    arr = pa.FixedSizeBinaryArray.from_buffers(pa.binary(width), n, [None, pa.py_buffer(buf)])
    return arr.cast(pa.binary())


@dataclass
class _Block:
    """Fixed-width bytes of every row (``matrix``, n x w; or 1 x w for all rows alike),
    present where ``valid`` (None: in every row).  Adjacent blocks with the same presence
    merge into one matrix, so the row-wise join sees a few wide parts, not many narrow ones.
    """

    matrix: np.ndarray
    valid: np.ndarray | None = None

    @classmethod
    def constant(cls, value: bytes) -> _Block:
        return cls(np.frombuffer(value, dtype=np.uint8).reshape(1, -1))


Part: TypeAlias = "pa.Array | _Block"  # a null-free piece of every row: empty where absent


def _valid(like: pa.Array) -> np.ndarray | None:
    """Row mask of present values, or None when every value is present."""
    if like.null_count == 0:
        return None
    mask: np.ndarray = like.is_valid().to_numpy(zero_copy_only=False)
    return mask


def _same_rows(a: np.ndarray | None, b: np.ndarray | None) -> bool:
    if a is None or b is None:
        return a is b
    return a is b or bool(np.array_equal(a, b))


def _merge(parts: list[Part], n: int) -> list[Part]:
    runs: list[list[Part]] = []
    for part in parts:
        last = runs[-1][-1] if runs else None
        if (
            isinstance(part, _Block)
            and isinstance(last, _Block)
            and _same_rows(last.valid, part.valid)
        ):
            runs[-1].append(part)
        else:
            runs.append([part])
    out: list[Part] = []
    for run in runs:
        blocks = [b for b in run if isinstance(b, _Block)]
        out.append(_combine(blocks, n) if len(blocks) > 1 else run[0])
    return out


def _combine(blocks: list[_Block], n: int) -> _Block:
    """One block from adjacent blocks with the same presence.

    The rows are written once: a template row with every constant piece (TLV headers,
    prefixes) is broadcast into the output, then each varying piece is copied into its
    columns.  Far cheaper than concatenating narrow matrices pairwise.
    """
    widths = [b.matrix.shape[1] for b in blocks]
    template = np.hstack([b.matrix if len(b.matrix) == 1 else np.zeros((1, w), np.uint8)
                          for b, w in zip(blocks, widths, strict=True)])  # fmt: skip
    if all(len(b.matrix) == 1 for b in blocks):
        return _Block(template, blocks[0].valid)
    width = template.shape[1]
    out = np.empty((n, width), dtype=np.uint8)
    _void_rows(out)[:] = _void_rows(template)[0]
    at = 0
    for block, w in zip(blocks, widths, strict=True):
        if len(block.matrix) != 1:
            # each row's piece moves as one w-byte item: numpy would copy a uint8 column
            # slice byte by byte, several times slower
            place = np.dtype({"names": ["v"], "formats": [f"V{w}"], "offsets": [at],
                              "itemsize": width})  # fmt: skip
            out.view(place).reshape(n)["v"] = _void_rows(block.matrix)
        at += w
    return _Block(out, blocks[0].valid)


def _void_rows(matrix: np.ndarray) -> np.ndarray:
    """The rows of an (n, w) byte matrix as n items of w bytes (copied if not contiguous)."""
    matrix = np.ascontiguousarray(matrix)
    return matrix.view(f"V{matrix.shape[1]}").reshape(len(matrix))


def _take_rows(matrix: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """``matrix[rows]`` for a byte matrix, moving whole rows rather than single bytes."""
    taken: np.ndarray = _void_rows(matrix)[rows].view(np.uint8)
    return taken.reshape(len(rows), matrix.shape[1])


def _materialize(part: Part, n: int) -> pa.Array | pa.Scalar:
    if not isinstance(part, _Block):
        return part
    matrix, width = part.matrix, part.matrix.shape[1]
    if len(matrix) == 1 and part.valid is None:
        return pa.scalar(matrix.tobytes(), pa.binary())
    if part.valid is None:
        offsets = np.arange(0, (n + 1) * width, width, dtype=np.int32)
        data = np.ascontiguousarray(matrix)
    else:
        offsets = np.zeros(n + 1, dtype=np.int32)
        np.cumsum(part.valid.astype(np.int32) * width, out=offsets[1:])
        data = np.broadcast_to(matrix, (n, width))[part.valid]
    # Arrow takes numpy's memory as it is (no copy); the array keeps it alive
    buffers = [None, pa.py_buffer(offsets), pa.py_buffer(np.ascontiguousarray(data))]
    return pa.BinaryArray.from_buffers(pa.binary(), n, buffers)


def _headers(field_id: int, kind: TlvType, lengths: np.ndarray) -> np.ndarray:
    """(n, 7) byte matrix of TLV headers: id u16be, type u8, length u32be."""
    out = np.empty((len(lengths), 7), dtype=np.uint8)
    out[:, 0:2] = np.frombuffer(field_id.to_bytes(2, "big"), dtype=np.uint8)
    out[:, 2] = int(kind)
    out[:, 3:7] = lengths.astype(">u4").view(np.uint8).reshape(-1, 4)
    return out


def _fixed_part(field_id: int, kind: TlvType, values: np.ndarray, like: pa.Array) -> list[Part]:
    """TLVs of a fixed-width type: its header and ``values``, an (n, w) byte matrix."""
    valid = _valid(like)
    head = _headers(field_id, kind, np.array([values.shape[1]]))
    return [_Block(head, valid), _Block(values, valid)]


def _var_parts(field_id: int, kind: TlvType, values: pa.Array) -> list[Part]:
    """Header and value of a variable-length field (empty where absent)."""
    n = len(values)
    if n and values.null_count == 0 and _is_constant(values):
        return [_Block.constant(tlv(field_id, kind, values[0].as_py()))]
    lengths = pc.binary_length(values).fill_null(0).to_numpy(zero_copy_only=False)
    if values.null_count == 0 and n and (lengths == lengths[0]).all():
        # every value has the same length (Zeek uids, for instance): a block of its own
        offsets = np.frombuffer(values.buffers()[1], np.int32, n + 1, values.offset * 4)
        data = np.frombuffer(values.buffers()[2], np.uint8)[offsets[0] : offsets[-1]]
        return [_Block(_headers(field_id, kind, lengths[:1])), _Block(data.reshape(n, -1))]
    header = _Block(_headers(field_id, kind, lengths), _valid(values))
    return [header, values.fill_null(b"") if values.null_count else values]


def _is_constant(values: pa.Array) -> bool:
    # one pass of comparisons is far cheaper than a TLV per row (ledger id, sensor, kind)
    return bool(pc.all(pc.equal(values, values[0])).as_py())


def _int_matrix(col: pa.Array, dtype: str) -> np.ndarray:
    if pa.types.is_timestamp(col.type) or pa.types.is_duration(col.type):
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


def _ip16_matrix(col: pa.Array, what: str) -> np.ndarray:
    """(n, 16) bytes of the addresses (zeros where null); dotted quads in bulk."""
    n = len(col)
    matrix = np.zeros((n, 16), dtype=np.uint8)
    is_v4 = pc.fill_null(pc.match_substring_regex(col, _IPV4), False)
    all_v4 = is_v4.true_count == n
    v4 = col if all_v4 else col.filter(is_v4)
    octets = pc.list_flatten(pc.split_pattern(v4, ".")).cast(pa.uint8())
    quads = octets.to_numpy(zero_copy_only=False).reshape(-1, 4)
    if all_v4:  # the common case: no boolean indexing, which costs more than the parsing
        matrix[:, 10:12] = 0xFF
        matrix[:, 12:] = quads
        return matrix
    v4_rows = is_v4.to_numpy(zero_copy_only=False)
    matrix[v4_rows, 10:12] = 0xFF
    matrix[v4_rows, 12:] = quads
    other_rows = ~v4_rows & col.is_valid().to_numpy(zero_copy_only=False)
    if other_rows.any():
        others = _by_unique(col.filter(pa.array(other_rows)), _canonical_ip16, what)
        flat = np.frombuffer(b"".join(others.to_pylist()), dtype=np.uint8)
        matrix[other_rows] = flat.reshape(-1, 16)
    return matrix


def _hex_bytes(width: int) -> Callable[[str], bytes]:
    def convert(value: str) -> bytes:
        raw = bytes.fromhex(value)
        if len(raw) != width:
            raise ValueError(f"expected {width} bytes")
        if raw.hex() != value:  # fromhex also takes capitals and blanks, which encode alike
            raise ValueError(f"expected {2 * width} lower-case hex digits")
        return raw

    return convert


def _length_prefixed(values: pa.Array) -> pa.Array:
    lengths = pc.binary_length(values).fill_null(0).to_numpy(zero_copy_only=False)
    prefix = _fixed(lengths.astype(">u4").tobytes(), 4, len(values))
    return pc.binary_join_element_wise(prefix, values.cast(pa.binary()), b"")


def _list_value(col: pa.Array) -> pa.Array:
    items = _length_prefixed(pc.list_flatten(col))
    counts = pc.list_value_length(col).fill_null(0).to_numpy(zero_copy_only=False)
    starts = np.concatenate([[0], np.cumsum(counts)]).astype(np.int32)
    nested = pa.ListArray.from_arrays(pa.array(starts), items)
    joined = pc.binary_join(nested, b"")
    if col.null_count == 0:
        return joined
    return pc.if_else(col.is_valid(), joined, pa.scalar(None, pa.binary()))


def _field_parts(col: pa.Array, f: Field, table: str) -> list[Part]:
    """The TLV of one column as null-free parts; empty bytes where the field is absent."""
    what = f"{table}.{f.name}"
    canon = f.canonical_type
    kind = _CANON_TO_TLV[canon]
    if canon in ("u64", "i64"):
        return _fixed_part(f.id, kind, _int_matrix(col, ">u8" if canon == "u64" else ">i8"), col)
    if canon == "bool":
        flags = col.fill_null(False).to_numpy(zero_copy_only=False).astype(np.uint8)
        return _fixed_part(f.id, kind, flags.reshape(-1, 1), col)
    if canon == "ip16":
        return _fixed_part(f.id, kind, _ip16_matrix(col, what), col)
    if canon == "utf8":
        return _var_parts(f.id, kind, col.cast(pa.binary()))
    if canon == "bytes":
        if col.null_count == 0 and _is_constant(col):
            value = _hex_bytes(_HEX_LEN[f.type])
            return [_Block.constant(tlv(f.id, kind, _checked(value, col[0].as_py(), what)))]
        return _var_parts(f.id, kind, _by_unique(col, _hex_bytes(_HEX_LEN[f.type]), what))
    if canon == "utf8list":
        return _var_parts(f.id, kind, _list_value(col))
    raise AssertionError(canon)


def _checked(convert: Callable[[str], bytes], value: str, what: str) -> bytes:
    try:
        return convert(value)
    except ValueError as exc:
        raise MalformedError(f"{what}: {value!r} cannot be encoded ({exc})") from None


def _body_parts(batch: pa.RecordBatch | pa.Table, schema: TableSchema) -> list[Part]:
    """Field 0 (schema id) then each present field's TLV, as parts to join row by row."""
    n = batch.num_rows
    parts: list[Part] = [_Block.constant(tlv(0, TlvType.UTF8, schema.schema_id.encode()))]
    for f in sorted(schema.fields, key=lambda f: f.id):
        col = batch.column(f.name)
        if isinstance(col, pa.ChunkedArray):
            col = col.combine_chunks()
        if f.required and col.null_count:
            raise MalformedError(f"{schema.table}.{f.name} is required but has null values")
        if col.null_count == n:
            continue
        if pa.types.is_dictionary(col.type):
            parts += _dictionary_parts(col, f, schema.table)
        else:
            parts += _field_parts(col, f, schema.table)
    return parts


def _dictionary_parts(col: pa.DictionaryArray, f: Field, table: str) -> list[Part]:
    """The TLV of a dictionary-encoded column: encoded once per distinct value, then taken
    for each row (addresses are parsed once per address, not once per record).

    A value in the dictionary that no row uses is encoded too, so it can raise where the
    decoded column would not.
    """
    values = col.dictionary
    if values.null_count:
        return _field_parts(col.dictionary_decode(), f, table)
    rows = col.indices.fill_null(0).to_numpy(zero_copy_only=False)
    valid = _valid(col)
    out: list[Part] = []
    # the values hold no null, so their parts are present in every row: a row's part is
    # present where the row's index is
    for part in _field_parts(values, f, table):
        if isinstance(part, _Block):
            matrix = part.matrix if len(part.matrix) == 1 else _take_rows(part.matrix, rows)
            out.append(_Block(matrix, valid))
        else:
            out.append(pc.take(part, col.indices).fill_null(b""))
    return out


def _join(parts: list[Part], n: int) -> pa.Array:
    """Concatenate the parts row by row into one large_binary array of n rows."""
    merged = [_materialize(p, n) for p in _merge(parts, n)]
    if not any(isinstance(p, pa.Array) for p in merged):
        # every part is the same for all rows
        return pa.array([b"".join(p.as_py() for p in merged)] * n, pa.large_binary())
    if len(merged) == 1:
        return merged[0].cast(pa.large_binary())
    return pc.binary_join_element_wise(*merged, b"").cast(pa.large_binary())


def canonical_bodies(batch: pa.RecordBatch | pa.Table, schema: TableSchema) -> pa.Array:
    """Canonical bodies of every row (docs/evidence-format.md §3)."""
    return _join(_body_parts(batch, schema), batch.num_rows)


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


def _leaf_prefix(kind: EntryType) -> _Block:
    return _Block.constant(b"\x00" + MAGIC + bytes([ENTRY_VERSION, int(kind)]))


def _salt_block(salts: bytes, n: int) -> _Block:
    return _Block(np.frombuffer(salts, dtype=np.uint8).reshape(n, 32))


def _hash_rows(inputs: pa.Array) -> bytes:
    """SHA-256 of every value of a large_binary array, concatenated (32 bytes each).

    The batch library hashes them all in one call where it is built (`_batchsha`).  Without
    it, values of one length are cut by `struct.iter_unpack` and hashed by C iterators, so no
    Python code runs per value: the values are grouped by length (records of a table take
    few lengths), hashed group by group, and the digests put back in row order.
    """
    n = len(inputs)
    if n == 0:
        return b""
    batched = _batchsha.values(inputs)
    if batched is not None:
        return batched
    lengths = np.diff(_large_offsets(inputs))
    keys = lengths.astype(np.uint16) if lengths.max() < 1 << 16 else lengths
    order = np.argsort(keys, kind="stable")  # a radix sort for 16-bit keys
    grouped = inputs.take(pa.array(order))
    offsets, data = _large_offsets(grouped), memoryview(grouped.buffers()[2] or b"")
    sizes = lengths[order]
    cuts = [0, *(np.flatnonzero(np.diff(sizes)) + 1).tolist(), n]
    runs = [_hash_run(data[offsets[a] : offsets[b]], int(sizes[a]), b - a)
            for a, b in itertools.pairwise(cuts)]  # fmt: skip
    out = np.empty((n, 32), dtype=np.uint8)
    out[order] = np.frombuffer(b"".join(runs), dtype=np.uint8).reshape(n, 32)
    return out.tobytes()


def _large_offsets(values: pa.Array) -> np.ndarray:
    count = len(values) + 1
    return np.frombuffer(values.buffers()[1], np.int64, count, values.offset * 8)


def _hash_run(data: memoryview, size: int, count: int) -> bytes:
    """Digests of ``count`` values of ``size`` bytes each, held back to back in ``data``."""
    if size == 0:
        return _sha256(b"").digest() * count
    hashes = itertools.starmap(_sha256, struct.iter_unpack(f"{size}s", data))
    return b"".join(map(_digest, hashes))


def leaf_hashes(bodies: pa.Array, salts: bytes, kind: EntryType = EntryType.RECORD) -> bytes:
    """RFC 6962 leaf hashes of the salted entries, concatenated (32 bytes each)."""
    n = len(bodies)
    if len(salts) != 32 * n:
        raise ValueError("one 32-byte salt per body is required")
    parts: list[Part] = [_leaf_prefix(kind), _salt_block(salts, n), bodies.cast(pa.binary())]
    return _hash_rows(_join(parts, n))


def record_leaf_hashes(
    batch: pa.RecordBatch | pa.Table, schema: TableSchema, salts: bytes
) -> bytes:
    """Leaf hashes of a batch of records, the salted entries built in one pass per row."""
    n = batch.num_rows
    if len(salts) != 32 * n:
        raise ValueError("one 32-byte salt per record is required")
    parts = [_leaf_prefix(EntryType.RECORD), _salt_block(salts, n), *_body_parts(batch, schema)]
    return _hash_rows(_join(parts, n))


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
