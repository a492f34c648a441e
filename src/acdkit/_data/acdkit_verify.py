#!/usr/bin/env python3
"""Independent verifier of acdkit submission bundles and stores (evidence format version 1).

Written from docs/evidence-format.md alone, without acdkit: it needs only the Python standard
library and the `cryptography` package (for Ed25519).  It has no Parquet library, so it checks
what a bundle proves through the canonical entry bytes each proof carries, and the
`log_index` and `integrity_hash` columns of the CSV copies of the disclosed records; in a
store, it reads the integrity_hash column of each sealed file (plain, uncompressed pages, as
acdkit writes it) and rebuilds the tree from those hashes, the log entries and the SEALs.

    python3 acdkit_verify.py BUNDLE_DIR|STORE_DIR [--key VKEY] [--root VKEY] [--json]

VKEY is the sealer's public key (a vkey line, or a file holding one), obtained from the
sender by another channel; without it the bundle's own key/sealer.vkey is used, which only
shows that the bundle is consistent with itself.  Exit codes: 0 VERIFIED, 1 TAMPERED,
2 USAGE, 3 INCOMPLETE, 4 MALFORMED, 5 POLICY, 6 IO.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import csv
import hashlib
import io
import ipaddress
import json
import os
import re
import stat
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

VERSION = "1.0"
REPORT_SCHEMA = "acdkit-indep-verify/1"

VERIFIED, TAMPERED, USAGE, INCOMPLETE, MALFORMED, POLICY, IO = 0, 1, 2, 3, 4, 5, 6
VERDICT = {
    VERIFIED: "VERIFIED",
    TAMPERED: "TAMPERED",
    USAGE: "USAGE",
    INCOMPLETE: "INCOMPLETE",
    MALFORMED: "MALFORMED",
    POLICY: "POLICY",
    IO: "IO",
}

# Bounds: no file that is parsed is read past its limit, and the walk of the bundle stops at
# a depth and a number of entries that no bundle made by acdkit comes near.
MIB = 1 << 20
NOTE_LIMIT = MIB  # checkpoints (spec §7)
MANIFEST_LIMIT = 16 * MIB  # the manifest lists every file (spec §9.2)
PROOF_LIMIT = MIB  # spec §9.3
VKEY_LIMIT = 64 << 10
MAX_SIGNATURES = 100
MAX_PROOF_HASHES = 64
MAX_DEPTH = 32
MAX_ENTRIES = 1_000_000
MAX_TLV_FIELDS = 4096
CHUNK = MIB

MANIFEST = "MANIFEST.note"
BUNDLE_FORMAT = "acdkit-bundle/1"
PROOF_HEADER = "c2sp.org/tlog-proof@v1"
DASH = "\u2014"
ENTRY_MAGIC = b"ACDK"
ENTRY_VERSION = 1
RECORD, SEAL, CLOCK, KEY, ANCHOR, CUSTODY, DECISION = 0x01, 0x02, 0x03, 0x04, 0x06, 0x07, 0x08
PRUNE = 0x09
# CLOCK, KEY, GAP, ANCHOR, CUSTODY, DECISION, PRUNE (spec §4)
LOG_ENTRY_TYPES = range(0x03, 0x0A)
ROTATIONS = "key/rotations/"
CLOCK_DIR = "clock/"
CUSTODY_DIR = "custody/"
WORM_DIR = "worm/"  # the log's worm-upload receipts (spec §16.7)
EXPORT_STATEMENT = "custody/export.json"  # the bundle's word on its own export (spec §16.4)
ENTRY_HEAD = 38  # magic 4, version 1, type 1, salt 32
TABLES = ("net", "dns", "edr")

_DECIMAL = re.compile(r"0|[1-9][0-9]{0,18}")
_HEX64 = re.compile(r"[0-9a-f]{64}")
_HEX8 = re.compile(r"[0-9a-f]{8}")
_SEGMENT = re.compile(r"[A-Za-z0-9._-]+")
_INCIDENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_CONTROL = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f]")  # Unicode Cc other than LF
_INDEX_NAME = re.compile(
    r"(proofs/|seals/|key/rotations/|anchors/|decisions/|clock/|custody/|worm/)([0-9]{20})"
    r"\.tlog-proof"
)

# TLV type codes (spec §3)
T_U64, T_I64, T_BYTES, T_UTF8, T_IP16, T_BOOL, T_UTF8LIST = 1, 2, 3, 4, 5, 6, 7

# The record fields of schemas/<table>.v1.yaml: id -> (name, logical type).  A test of the
# acdkit repository compares this table with the YAML files.
SCHEMAS: dict[str, dict[int, tuple[str, str]]] = {
    "net": {
        1: ("event_kind", "utf8"),
        2: ("session_id", "utf8"),
        3: ("src_ip", "ip"),
        4: ("src_port", "u16"),
        5: ("dst_ip", "ip"),
        6: ("dst_port", "u16"),
        7: ("proto", "utf8"),
        8: ("service", "utf8"),
        9: ("tls_ja3", "hex16"),
        10: ("tls_ja3s", "hex16"),
        11: ("sni", "utf8"),
        12: ("http_verb", "utf8"),
        13: ("url_host", "utf8"),
        14: ("url_path", "utf8"),
        15: ("http_status", "u16"),
        16: ("cmd_sig", "utf8"),
        17: ("ts_utc", "timestamp_ns"),
        18: ("duration_ns", "duration_ns"),
        19: ("orig_bytes", "u64"),
        20: ("resp_bytes", "u64"),
        21: ("orig_pkts", "u64"),
        22: ("resp_pkts", "u64"),
        23: ("sensor_id", "utf8"),
        900: ("src_ledger_id", "hex32"),
        901: ("src_line", "u64"),
    },
    "dns": {
        1: ("event_kind", "utf8"),
        2: ("session_id", "utf8"),
        3: ("qname", "utf8"),
        4: ("qtype", "utf8"),
        5: ("rcode", "utf8"),
        6: ("rrdata", "utf8_list"),
        7: ("resolver_ip", "ip"),
        8: ("resolver_port", "u16"),
        9: ("client_ip", "ip"),
        10: ("client_port", "u16"),
        11: ("proto", "utf8"),
        12: ("trans_id", "u16"),
        13: ("ts_utc", "timestamp_ns"),
        14: ("sensor_id", "utf8"),
        900: ("src_ledger_id", "hex32"),
        901: ("src_line", "u64"),
    },
    "edr": {
        1: ("event_kind", "utf8"),
        2: ("proc_exec_id", "utf8"),
        3: ("parent_pid", "u64"),
        4: ("parent_exec_id", "utf8"),
        5: ("image_sha256", "hex32"),
        6: ("cmdline_sig", "utf8"),
        7: ("user_sid", "utf8"),
        8: ("ts_utc", "timestamp_ns"),
        9: ("sensor_id", "utf8"),
        900: ("src_ledger_id", "hex32"),
        901: ("src_line", "u64"),
    },
}

# logical type -> (TLV type, exact value length or None)
LOGICAL = {
    "utf8": (T_UTF8, None),
    "u16": (T_U64, 8),
    "u64": (T_U64, 8),
    "i64": (T_I64, 8),
    "timestamp_ns": (T_I64, 8),
    "duration_ns": (T_I64, 8),
    "ip": (T_IP16, 16),
    "hex16": (T_BYTES, 16),
    "hex32": (T_BYTES, 32),
    "utf8_list": (T_UTF8LIST, None),
    "bool": (T_BOOL, 1),
}

SEAL_TABLE_BASE = {"net": 20, "dns": 30, "edr": 40}
SEAL_FIELDS = {*range(1, 15), *(b + i for b in SEAL_TABLE_BASE.values() for i in range(4))}


class Finding(Exception):
    """A check did not hold; ``code`` is the verdict it leads to."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _show(value: str, width: int = 80) -> str:
    """Untrusted text for a message: quoted, escaped, cut."""
    return ascii(value[:width])


# -- encodings: base64, decimals, hashes -----------------------------------------------------


def b64(value: str, what: str) -> bytes:
    """RFC 4648 §4 base64 with padding, and only its canonical form."""
    try:
        raw = base64.b64decode(value.encode("ascii"), validate=True)
    except (binascii.Error, ValueError, UnicodeEncodeError):
        raise Finding(MALFORMED, f"{what} is not base64") from None
    if base64.b64encode(raw).decode("ascii") != value:
        raise Finding(MALFORMED, f"{what} is not canonical base64")
    return raw


def decimal(value: str, what: str) -> int:
    """A decimal without sign or leading zeros, below 2^63."""
    if not _DECIMAL.fullmatch(value) or int(value) >= 1 << 63:
        raise Finding(MALFORMED, f"{what} {_show(value, 30)} is not a decimal below 2^63")
    return int(value)


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def leaf_hash(entry: bytes) -> bytes:
    return sha256(b"\x00" + entry)


def node_hash(left: bytes, right: bytes) -> bytes:
    return sha256(b"\x01" + left + right)


def audit_sides(index: int, size: int) -> list[bool]:
    """For each hash of the audit path of ``index``, leaf first: is the sibling on the left?

    Follows the tree's definition (spec §2): a tree of n > 1 leaves splits at the largest
    power of two k < n; the path of a leaf in the left part ends with the root of the right
    part, and the other way round.
    """
    sides: list[bool] = []
    n, m = size, index
    while n > 1:
        k = 1 << ((n - 1).bit_length() - 1)
        if m < k:
            sides.append(False)
            n = k
        else:
            sides.append(True)
            m, n = m - k, n - k
    sides.reverse()
    return sides


def root_from_path(index: int, size: int, leaf: bytes, path: list[bytes]) -> bytes | None:
    """The root that an audit path implies, or None if the path cannot be one for this tree."""
    if not 0 <= index < size:
        return None
    sides = audit_sides(index, size)
    if len(sides) != len(path):
        return None
    node = leaf
    for on_left, sibling in zip(sides, path, strict=True):
        node = node_hash(sibling, node) if on_left else node_hash(node, sibling)
    return node


# -- keys and signed notes (spec §7) --------------------------------------------------------


SEALER_KEY, WITNESS_KEY = 0x01, 0x04  # signature types: notes, and cosignatures (spec §7)


@dataclass(frozen=True)
class Vkey:
    name: str
    public: bytes
    kind: int = SEALER_KEY

    @property
    def key_id(self) -> bytes:
        return key_id(self.name, self.public, self.kind)

    def text(self) -> str:
        blob = base64.b64encode(bytes([self.kind]) + self.public).decode("ascii")
        return f"{self.name}+{self.key_id.hex()}+{blob}"


def key_id(name: str, public: bytes, kind: int = SEALER_KEY) -> bytes:
    return sha256(name.encode("utf-8") + b"\n" + bytes([kind]) + public)[:4]


def parse_vkey(text: str, kind: int = SEALER_KEY) -> Vkey:
    """``<name>+<key ID hex>+<base64(type || public key)>``; white space around is ignored."""
    name, _, rest = text.strip().partition("+")
    hexid, _, blob = rest.partition("+")
    if not name or any(c.isspace() or _is_control(c) for c in name):
        raise Finding(MALFORMED, "verifier key has no valid name")
    if not _HEX8.fullmatch(hexid):
        raise Finding(MALFORMED, "verifier key ID is not 8 lower-case hex digits")
    raw = b64(blob, "verifier key")
    if len(raw) != 33 or raw[0] != kind:
        role = "witness" if kind == WITNESS_KEY else "sealer"
        raise Finding(MALFORMED, f"verifier key is not an Ed25519 {role} key (type {kind})")
    key = Vkey(name, raw[1:], kind)
    if key.key_id.hex() != hexid:
        raise Finding(MALFORMED, "verifier key ID does not match its name and public key")
    return key


def _is_control(c: str) -> bool:
    """A Unicode control character (general category Cc): C0, DEL or C1."""
    o = ord(c)
    return o < 0x20 or 0x7F <= o < 0xA0


@dataclass(frozen=True)
class Note:
    text: str  # including its final LF
    signatures: tuple[tuple[str, bytes, bytes], ...]  # name, key ID, signature


def parse_note(data: bytes, limit: int, what: str) -> Note:
    """A C2SP signed note, strictly: UTF-8, LF only, text, one empty line, signature lines."""
    if len(data) > limit:
        raise Finding(MALFORMED, f"{what} is larger than {limit:,} bytes")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise Finding(MALFORMED, f"{what} is not UTF-8") from None
    if _CONTROL.search(text):
        raise Finding(MALFORMED, f"{what} holds a control character (CR, TAB, NUL, ...)")
    cut = text.find("\n\n")  # text lines are non-empty: the first empty line ends the text
    if cut <= 0 or text.startswith("\n"):
        raise Finding(MALFORMED, f"{what} has no text followed by an empty line")
    body, block = text[: cut + 1], text[cut + 2 :]
    if not block.endswith("\n"):
        raise Finding(MALFORMED, f"{what} has no signature lines, or no final newline")
    lines = block[:-1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise Finding(MALFORMED, f"{what} has more than {MAX_SIGNATURES} signature lines")
    sigs = []
    for line in lines:
        parts = line.split(" ")
        if len(parts) != 3 or parts[0] != DASH or not parts[1]:
            raise Finding(MALFORMED, f"{what}: bad signature line {_show(line)}")
        raw = b64(parts[2], f"{what} signature")
        if len(raw) < 5:
            raise Finding(MALFORMED, f"{what}: signature line too short")
        sigs.append((parts[1], raw[:4], raw[4:]))
    return Note(body, tuple(sigs))


def ed25519_ok(public: bytes, signature: bytes, message: bytes) -> bool:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    try:
        Ed25519PublicKey.from_public_bytes(public).verify(signature, message)
    except (InvalidSignature, ValueError):
        return False
    return True


def signed_by(note: Note, key: Vkey) -> bool:
    """At least one signature line names the key, and every line that does verifies."""
    mine = [sig for name, kid, sig in note.signatures if name == key.name and kid == key.key_id]
    text = note.text.encode("utf-8")
    return bool(mine) and all(ed25519_ok(key.public, sig, text) for sig in mine)


def check_signed(note: Note, key: Vkey, what: str) -> None:
    if not signed_by(note, key):
        raise Finding(TAMPERED, f"{what} carries no valid signature by key {key.key_id.hex()}")


@dataclass(frozen=True)
class Checkpoint:
    origin: str
    size: int
    root: bytes


def parse_checkpoint(note: Note) -> Checkpoint:
    lines = note.text.split("\n")
    if len(lines) != 4:
        raise Finding(MALFORMED, "checkpoint text is not exactly origin, size and root")
    origin, size, root = lines[:3]
    raw = b64(root, "checkpoint root")
    if len(raw) != 32:
        raise Finding(MALFORMED, "checkpoint root is not 32 bytes")
    return Checkpoint(origin, decimal(size, "checkpoint size"), raw)


# -- entries and TLV bodies (spec §3, §4, §6) -----------------------------------------------


def parse_tlv(body: bytes) -> list[tuple[int, int, bytes]]:
    """Fields (id, type, value) of a TLV body, ids strictly increasing, known types."""
    out: list[tuple[int, int, bytes]] = []
    pos, last = 0, -1
    while pos < len(body):
        if len(body) - pos < 7:
            raise ValueError("truncated field header")
        fid = int.from_bytes(body[pos : pos + 2], "big")
        kind = body[pos + 2]
        size = int.from_bytes(body[pos + 3 : pos + 7], "big")
        pos += 7
        if not T_U64 <= kind <= T_UTF8LIST:
            raise ValueError(f"field {fid} has unknown type code {kind}")
        if size > len(body) - pos:
            raise ValueError(f"field {fid} runs past the end of the body")
        if fid <= last:
            raise ValueError(f"field {fid} is out of order or repeated")
        out.append((fid, kind, body[pos : pos + size]))
        pos, last = pos + size, fid
        if len(out) > MAX_TLV_FIELDS:
            raise ValueError("too many fields")
    return out


def utf8_list(value: bytes) -> list[str]:
    items, pos = [], 0
    while pos < len(value):
        if len(value) - pos < 4:
            raise ValueError("truncated list item length")
        size = int.from_bytes(value[pos : pos + 4], "big")
        if size > len(value) - pos - 4:
            raise ValueError("list item runs past the end of the field")
        items.append(value[pos + 4 : pos + 4 + size].decode("utf-8"))
        pos += 4 + size
    return items


def decode_value(kind: str, value: bytes) -> Any:
    """A field's value as Python data; ValueError where the bytes cannot be that type."""
    tlv_type, width = LOGICAL[kind]
    if width is not None and len(value) != width:
        raise ValueError(f"a {kind} value is {width} bytes, not {len(value)}")
    if kind == "utf8":
        return value.decode("utf-8")
    if kind in ("u16", "u64"):
        number = int.from_bytes(value, "big")
        if kind == "u16" and number > 0xFFFF:
            raise ValueError("a u16 value above 65535")
        return number
    if tlv_type == T_I64:
        return int.from_bytes(value, "big", signed=True)
    if kind == "ip":
        addr = ipaddress.IPv6Address(value)
        return str(addr.ipv4_mapped or addr)
    if tlv_type == T_BYTES:
        return value.hex()
    if kind == "bool":
        if value not in (b"\x00", b"\x01"):
            raise ValueError("a bool value other than 0x00 or 0x01")
        return value == b"\x01"
    return utf8_list(value)


@dataclass(frozen=True)
class Entry:
    kind: int
    salt: bytes
    body: bytes


def parse_entry(data: bytes) -> Entry | None:
    """Magic, format version, type, salt and body; None if the bytes are no acdkit entry."""
    if len(data) < ENTRY_HEAD or data[:4] != ENTRY_MAGIC or data[4] != ENTRY_VERSION:
        return None
    return Entry(data[5], data[6:ENTRY_HEAD], data[ENTRY_HEAD:])


def decode_record(body: bytes) -> tuple[str, dict[str, Any]]:
    """Table and fields of a canonical record body; ValueError if it is not one (spec §3)."""
    fields = parse_tlv(body)
    if not fields or fields[0][:2] != (0, T_UTF8):
        raise ValueError("field 0 (table/version) is missing")
    table = next((t for t in SCHEMAS if fields[0][2] == f"{t}/1".encode()), None)
    if table is None:
        raise ValueError(f"field 0 names no table of format v1: {fields[0][2][:40]!r}")
    schema, out = SCHEMAS[table], {}
    for fid, tlv_type, value in fields[1:]:
        if fid not in schema:
            raise ValueError(f"field {fid} is not in the {table} schema")
        name, kind = schema[fid]
        if LOGICAL[kind][0] != tlv_type:
            raise ValueError(f"field {fid} ({name}) has TLV type {tlv_type}")
        out[name] = decode_value(kind, value)
    return table, out


@dataclass
class SealInfo:
    origin: str
    first: int
    end: int
    ts_min: int | None
    ts_max: int | None
    sealed_at: int = 0  # field 9, the sealer's clock
    number: int = 0  # field 2, the segment number
    records: int = 0  # field 5
    prev: bytes = bytes(32)  # field 6, SHA-256 of the previous checkpoint
    key_id: bytes = b""  # field 11
    sources: tuple[str, ...] = ()  # field 12
    entries: int = 0  # field 14, log entries
    tables: dict[str, int] = field(default_factory=dict)  # records per table (20, 30, 40)
    files: dict[str, bytes] = field(default_factory=dict)  # SHA-256 of each table's file


def decode_seal(body: bytes) -> SealInfo:
    """The SEAL fields this verifier needs, every known field checked (spec §6)."""
    try:
        fields = {fid: (kind, value) for fid, kind, value in parse_tlv(body)}
    except ValueError as exc:
        raise Finding(MALFORMED, f"SEAL body: {exc}") from None
    unknown = sorted(set(fields) - SEAL_FIELDS)
    if unknown:
        raise Finding(MALFORMED, f"SEAL field {unknown[0]} is not one of format version 1")
    wanted: dict[int, tuple[str, bool]] = {
        1: ("utf8", True),
        2: ("u64", True),
        3: ("u64", True),
        4: ("u64", True),
        5: ("u64", True),
        6: ("hex32", True),
        7: ("i64", False),
        8: ("i64", False),
        9: ("i64", True),
        10: ("utf8", True),
        11: ("key_id", True),
        12: ("utf8_list", True),
        13: ("utf8", True),
        14: ("u64", False),
    }
    for base in SEAL_TABLE_BASE.values():
        if base in fields:
            wanted.update({base: ("u64", True), base + 1: ("hex32", True)})
            wanted.update({base + 2: ("u64", True), base + 3: ("hex32", True)})
    values: dict[int, Any] = {}
    for fid, (kind, required) in wanted.items():
        if fid not in fields:
            if required:
                raise Finding(MALFORMED, f"SEAL field {fid} is missing")
            continue
        tlv_type, value = fields[fid]
        if kind == "key_id":
            ok = tlv_type == T_BYTES and len(value) == 4
        else:
            ok = tlv_type == LOGICAL[kind][0]
        if not ok:
            raise Finding(MALFORMED, f"SEAL field {fid} has the wrong type or length")
        try:
            values[fid] = value if kind == "key_id" else decode_value(kind, value)
        except (ValueError, UnicodeDecodeError) as exc:
            raise Finding(MALFORMED, f"SEAL field {fid}: {exc}") from None
    return SealInfo(
        values[1],
        values[3],
        values[4],
        values.get(7),
        values.get(8),
        values[9],
        values[2],
        values[5],
        bytes.fromhex(values[6]),
        values[11],
        tuple(values[12]),
        values.get(14, 0),
        {t: values[b] for t, b in SEAL_TABLE_BASE.items() if b in values},
        {t: bytes.fromhex(values[b + 1]) for t, b in SEAL_TABLE_BASE.items() if b in values},
    )


@dataclass(frozen=True)
class KeyEvent:
    action: str
    signer_id: bytes
    subject: Vkey
    message: bytes
    signature: bytes
    incoming_signature: bytes | None


def decode_key_event(body: bytes, origin: str) -> KeyEvent:
    """A KEY entry body (spec §7.1); MALFORMED unless exactly its fields, each well formed."""
    try:
        fields = {fid: (kind, value) for fid, kind, value in parse_tlv(body)}
    except ValueError as exc:
        raise Finding(MALFORMED, f"KEY body: {exc}") from None
    types = {1: T_UTF8, 2: T_BYTES, 3: T_UTF8, 4: T_I64, 5: T_BYTES, 6: T_BYTES}
    widths = {2: 4, 4: 8, 5: 64, 6: 64}
    for fid, (kind, value) in fields.items():
        if types.get(fid) != kind or len(value) != widths.get(fid, len(value)):
            raise Finding(MALFORMED, f"KEY field {fid} is unknown or of the wrong type or size")
    if any(fid not in fields for fid in range(1, 6)):
        raise Finding(MALFORMED, "KEY entry lacks one of its fields 1-5")
    action = fields[1][1]
    if action not in (b"rotate", b"revoke") or (action == b"rotate") != (6 in fields):
        raise Finding(MALFORMED, "KEY action is neither a rotation (with field 6) nor a revocation")
    try:
        vkey_text = fields[3][1].decode("utf-8")
    except UnicodeDecodeError:
        raise Finding(MALFORMED, "KEY field 3 is not UTF-8") from None
    subject = parse_vkey(vkey_text)
    if vkey_text != vkey_text.strip():
        raise Finding(MALFORMED, "KEY field 3 has white space around its vkey")
    at = int.from_bytes(fields[4][1], "big", signed=True)
    message = (
        f"acdkit/1/key-event\n{origin}\n{action.decode()}\n{fields[2][1].hex()}\n"
        f"{vkey_text}\n{at}\n"
    ).encode()
    second = fields[6][1] if 6 in fields else None
    return KeyEvent(action.decode(), fields[2][1], subject, message, fields[5][1], second)


@dataclass
class KeyChain:
    """The sealer keys of the log: the first, then each one a proven rotation made current."""

    origin: str
    keys: list[Vkey]
    revoked: set[bytes] = field(default_factory=set)

    @property
    def current(self) -> Vkey:
        return self.keys[-1]

    def apply(self, rel: str, event: KeyEvent) -> None:
        """One KEY event, by the walk of spec §7.1; TAMPERED where a rule breaks."""
        cur = self.current
        if event.signer_id != cur.key_id or not ed25519_ok(
            cur.public, event.signature, event.message
        ):
            raise Finding(
                TAMPERED, f"{rel}: KEY event not signed by the current key {cur.key_id.hex()}"
            )
        if event.subject.name != self.origin:
            raise Finding(TAMPERED, f"{rel}: KEY event names a key of another log")
        if event.action == "rotate":
            second = event.incoming_signature or b""
            if not ed25519_ok(event.subject.public, second, event.message):
                raise Finding(TAMPERED, f"{rel}: rotation not signed by the incoming key")
            if event.subject in self.keys or event.subject.key_id in self.revoked:
                raise Finding(TAMPERED, f"{rel}: rotation to a key that was current or revoked")
            self.keys.append(event.subject)
        else:
            if event.subject == cur:
                raise Finding(TAMPERED, f"{rel}: the current key revokes itself")
            self.revoked.add(event.subject.key_id)


# -- DECISION entries (spec §13) --------------------------------------------------------------

DECISION_PREFIX = b"acdkit/1/decision\n"
DECISION_LIMIT = 16 << 10
_D_TEXT = {
    2: re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}"),  # incident
    3: re.compile(r"[a-z][a-z0-9-]{0,31}"),  # action
    7: re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,31}"),  # severity
}
_D_WORD = re.compile(r"[a-z][a-z0-9_.-]{0,63}")
_D_LIST = {
    8: re.compile(r"[A-Z][A-Z0-9-]{0,47}"),  # reason codes
    9: _D_WORD,  # awareness events
    10: _D_WORD,  # regimes
    11: _D_WORD,  # flags
    12: re.compile(r"[a-z0-9][a-z0-9_.-]{0,63}(/[a-z0-9][a-z0-9_.-]{0,63})?"),  # stages
    15: re.compile(r"[!-~]{1,256}"),  # references
}
_D_TYPES = {
    1: T_U64, 2: T_UTF8, 3: T_UTF8, 4: T_I64, 5: T_I64, 6: T_UTF8, 7: T_UTF8,
    13: T_UTF8, 14: T_I64, 16: T_UTF8, 30: T_UTF8, 31: T_BYTES,
    **{fid: T_UTF8LIST for fid in _D_LIST},
}  # fmt: skip
_D_REQUIRED = (1, 2, 3, 4, 5, 6, 16, 30, 31)
# decision texts (spec §13): no control character (LF allowed in field 16) and none of the
# bidirectional or invisible formatting characters that make text read otherwise than signed
_FORMAT = (
    "\u00ad\u061c\u180e\u200b-\u200f\u2028-\u202e\u2060-\u206f\ufeff\ufff9-\ufffb"
    "\U000e0000-\U000e007f"
)
_D_BAD_TEXT = re.compile(f"[\x00-\x1f\x7f-\x9f{_FORMAT}]")
_D_BAD_WHY = re.compile(f"[\x00-\x09\x0b-\x1f\x7f-\x9f{_FORMAT}]")


@dataclass(frozen=True)
class Decision:
    incident: str
    recorded: int  # ns since the epoch, the custodian's clock
    custodian: Vkey
    message_body: bytes  # fields 1-30: what the signature covers after the prefix
    signature: bytes


def decode_decision(body: bytes) -> Decision:
    """A DECISION body, strictly; ValueError when it is not one (spec §13)."""
    if len(body) > DECISION_LIMIT:
        raise ValueError("over 16 KiB")
    fields = parse_tlv(body)
    if len(fields) > 64:
        raise ValueError("too many fields")
    seen = {fid: (kind, value) for fid, kind, value in fields}
    for fid, (kind, _value) in seen.items():
        if _D_TYPES.get(fid) != kind:
            raise ValueError(f"field {fid} is unknown or of the wrong type")
    if any(fid not in seen for fid in _D_REQUIRED) or fields[-1][0] != 31:
        raise ValueError("a required field is missing, or the signature is not last")
    for fid in (1, 4, 5, 14):
        if fid in seen and len(seen[fid][1]) != 8:
            raise ValueError(f"field {fid} is not 8 bytes")
    if int.from_bytes(seen[1][1], "big") != 1:
        raise ValueError("format version is not 1")
    for fid, rule in _D_TEXT.items():
        if fid in seen and not rule.fullmatch(seen[fid][1].decode("utf-8")):
            raise ValueError(f"field {fid} does not match its grammar")
    texts = ((6, 128, _D_BAD_TEXT), (13, 1024, _D_BAD_TEXT), (16, 4096, _D_BAD_WHY))
    for fid, limit, pattern in texts:
        if fid in seen:
            raw = seen[fid][1]
            if not 0 < len(raw) <= limit or pattern.search(raw.decode("utf-8")):
                raise ValueError(
                    f"field {fid} is empty, too long or holds a control or formatting character"
                )
    for fid, rule in _D_LIST.items():
        if fid in seen:
            items = utf8_list(seen[fid][1])
            if not 0 < len(items) <= 64 or len(set(items)) != len(items):
                raise ValueError(f"field {fid} is not a list of 1 to 64 distinct items")
            if not all(rule.fullmatch(item) for item in items):
                raise ValueError(f"field {fid} holds an item outside its grammar")
    vkey_text = seen[30][1].decode("utf-8")
    custodian = parse_vkey(vkey_text, SEALER_KEY)
    if custodian.text() != vkey_text:
        raise ValueError("field 30 is not exactly a vkey")
    signature = seen[31][1]
    if len(signature) != 64:
        raise ValueError("the signature is not 64 bytes")
    return Decision(
        seen[2][1].decode("utf-8"),
        int.from_bytes(seen[5][1], "big", signed=True),
        custodian,
        body[: len(body) - 7 - 64],
        signature,
    )


# -- CUSTODY entries (spec §16) ---------------------------------------------------------------

CUSTODY_PREFIX = b"acdkit/1/custody\n"
CUSTODY_LIMIT = 8 << 10
CUSTODY_EVENTS = ("export", "hand-over", "receipt", "verification")
WORM_EVENT = "worm-upload"  # a receipt of S3 object versions (spec §16.7)
CUSTODY_OUTCOMES = ("VERIFIED", "TAMPERED", "USAGE", "INCOMPLETE", "MALFORMED", "POLICY", "IO")
CLOCKS_APART_NS = 300 * 1_000_000_000  # spec §16.3: two clocks that may disagree
_PARTY_FORBIDDEN = _D_BAD_TEXT  # a party text holds no control or formatting character
_C_TYPES = {
    1: T_U64, 2: T_UTF8, 3: T_I64, 4: T_I64, 5: T_UTF8, 6: T_UTF8, 7: T_UTF8, 8: T_UTF8,
    9: T_UTF8, 10: T_U64, 11: T_BYTES, 12: T_BYTES, 13: T_UTF8, 30: T_UTF8, 31: T_BYTES,
    14: T_UTF8, 15: T_UTF8LIST, 16: T_UTF8LIST, 17: T_BYTES, 18: T_BYTES, 19: T_BYTES,
    20: T_BYTES,
}  # fmt: skip
_W_FIELDS = (14, 15, 16, 17, 18, 19, 20)
_W_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_W_KEY = re.compile(r"[A-Za-z0-9!_.*'()/-]{1,1024}")
_W_VERSION = re.compile(r"[\x21-\x7e]{1,1024}")
_C_REQUIRED = (1, 2, 3, 4, 6, 10, 11, 30, 31)
_C_WIDTH = {1: 8, 3: 8, 4: 8, 10: 8, 11: 32, 12: 32, 31: 64}


@dataclass(frozen=True)
class CustodyEvent:
    event: str
    at: int  # field 3, ns
    recorded: int  # field 4, ns, the custodian's clock
    incident: str | None
    size: int
    root: bytes
    manifest: bytes | None
    custodian: Vkey
    message_body: bytes  # fields 1-30
    signature: bytes
    receipt: tuple[str, list[dict[str, Any]]] | None = None  # a worm-upload's bucket, pins


def decode_receipt(seen: dict[int, tuple[int, bytes]]) -> tuple[str, list[dict[str, Any]]]:
    """Fields 14-20 of a worm-upload (spec §16.7): the bucket and one dict per object."""
    bucket = seen[14][1].decode("utf-8")
    if not _W_BUCKET.fullmatch(bucket) or ".." in bucket:
        raise ValueError("the bucket is not an S3 bucket name")
    keys, versions = utf8_list(seen[15][1]), utf8_list(seen[16][1])
    n = len(keys)
    if not n or len(set(keys)) != n:
        raise ValueError("the receipt names no object, or one key twice")
    for fid, width in ((17, 32), (18, 8), (19, 10), (20, 1)):
        if len(seen[fid][1]) != n * width:
            raise ValueError(f"field {fid} does not hold one value per key")
    if len(versions) != n:
        raise ValueError("field 16 does not hold one value per key")
    pins = []
    for i, (key, version) in enumerate(zip(keys, versions, strict=True)):
        parts = key.split("/")
        if not _W_KEY.fullmatch(key) or "" in parts or "." in parts or ".." in parts:
            raise ValueError("an object key is not one acdkit writes")
        if not _W_VERSION.fullmatch(version):
            raise ValueError("a version ID is not printable ASCII")
        lock = seen[19][1][10 * i : 10 * i + 10]
        size = int.from_bytes(seen[18][1][8 * i : 8 * i + 8], "big")
        flag = seen[20][1][i]
        if lock[0] not in (1, 2) or lock[9] not in (0, 1) or flag not in (0, 1) or size >> 63:
            raise ValueError("a lock mode, flag or size is out of range")
        pins.append(
            {
                "key": key,
                "version_id": version,
                "sha256": seen[17][1][32 * i : 32 * i + 32].hex(),
                "size": size,
                "mode": "GOVERNANCE" if lock[0] == 1 else "COMPLIANCE",
                "retain_until_ns": int.from_bytes(lock[1:9], "big", signed=True),
                "legal_hold": lock[9] == 1,
            }
        )
    return bucket, pins


def decode_custody(body: bytes) -> CustodyEvent:
    """A CUSTODY body, strictly; ValueError when it is not one (spec §16.1)."""
    if len(body) > CUSTODY_LIMIT:
        raise ValueError("over 8 KiB")
    fields = parse_tlv(body)
    seen = {fid: (kind, value) for fid, kind, value in fields}
    for fid, (kind, value) in seen.items():
        if _C_TYPES.get(fid) != kind:
            raise ValueError(f"field {fid} is unknown or of the wrong type")
        if fid in _C_WIDTH and len(value) != _C_WIDTH[fid]:
            raise ValueError(f"field {fid} is not {_C_WIDTH[fid]} bytes")
    if any(fid not in seen for fid in _C_REQUIRED) or fields[-1][0] != 31:
        raise ValueError("a required field is missing, or the signature is not last")
    if int.from_bytes(seen[1][1], "big") != 1:
        raise ValueError("format version is not 1")
    text = {fid: seen[fid][1].decode("utf-8") for fid in (2, 5, 6, 7, 8, 9, 13, 30) if fid in seen}
    if text[2] not in (*CUSTODY_EVENTS, WORM_EVENT):
        raise ValueError("not one of the events")
    uploaded = text[2] == WORM_EVENT
    if uploaded and (any(f not in seen for f in _W_FIELDS) or {5, 7, 8, 9, 12} & set(seen)):
        raise ValueError("a worm-upload has fields 14-20 and no incident, party or manifest")
    if not uploaded and set(_W_FIELDS) & set(seen):
        raise ValueError("fields 14-20 belong to a worm-upload")
    if 5 in text and not _INCIDENT.fullmatch(text[5]):
        raise ValueError("the incident is not an incident ID")
    if 9 in text and text[9] not in CUSTODY_OUTCOMES:
        raise ValueError("the outcome is not a verdict")
    for fid, limit in ((6, 128), (7, 128), (8, 128), (13, 1024)):
        if fid in text and (
            not 0 < len(seen[fid][1]) <= limit or _PARTY_FORBIDDEN.search(text[fid])
        ):
            raise ValueError(f"field {fid} is empty, too long or holds a forbidden character")
    size = int.from_bytes(seen[10][1], "big")
    if not 1 <= size < 1 << 63:
        raise ValueError("the checkpoint size is 0 or not below 2^63")
    if text[2] == "hand-over" and not (7 in text and 8 in text):
        raise ValueError("a hand-over names both parties")
    if text[2] == "receipt" and 7 not in text:
        raise ValueError("a receipt names whom it came from")
    if (text[2] == "verification") != (9 in text):
        raise ValueError("an outcome belongs to a verification, and only to one")
    custodian = parse_vkey(text[30], SEALER_KEY)
    if custodian.text() != text[30]:
        raise ValueError("field 30 is not exactly a vkey")
    return CustodyEvent(
        text[2],
        int.from_bytes(seen[3][1], "big", signed=True),
        int.from_bytes(seen[4][1], "big", signed=True),
        text.get(5),
        size,
        seen[11][1],
        seen[12][1] if 12 in seen else None,
        custodian,
        body[: len(body) - 7 - 64],
        seen[31][1],
        decode_receipt(seen) if uploaded else None,
    )


@dataclass
class Policy:
    origin: str
    serial: int
    sealers: list[Vkey]
    witnesses: list[Vkey]
    quorum: int
    # custodian key -> (not before, not after) in seconds since the epoch, None for open
    custodians: dict[Vkey, tuple[int | None, int | None]] = field(default_factory=dict)
    grace: int = 0
    windows: dict[Vkey, tuple[int | None, int | None]] = field(default_factory=dict)  # sealers'
    seal_interval: int | None = None  # seconds
    prune_below: int | None = None  # spec §17.1: absent in policies that allow no pruning


_POLICY_ORDER = (
    "sealer",
    "custodian",
    "witness",
    "witness-quorum",
    "tsa",
    "seal-interval",
    "anchor-interval",
    "drift-max-ms",
    "grace",
    "prune-below",
)
_TIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z")
_TSA_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
_OID = re.compile(r"[0-2](\.(0|[1-9][0-9]*))+")


def _policy_time(value: str, dash: bool) -> None:
    if dash and value == "-":
        return
    try:
        ok = bool(_TIME.fullmatch(value)) and bool(datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ"))
    except ValueError:
        ok = False
    if not ok:
        raise Finding(MALFORMED, f"policy time {_show(value, 30)} is not YYYY-MM-DDTHH:MM:SSZ")


def _epoch(value: str) -> int | None:
    """A policy time in seconds since 1970 (UTC), or None for '-'."""
    _policy_time(value, dash=True)
    if value == "-":
        return None
    moment = datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(
        tzinfo=timezone.utc  # noqa: UP017 (the tool runs on Python 3.10)
    )
    return int(moment.timestamp())


def _exact_vkey(value: str, kind: int) -> Vkey:
    key = parse_vkey(value, kind)
    if key.text() != value:
        raise Finding(MALFORMED, f"policy vkey {_show(value, 40)} is not in canonical form")
    return key


def parse_policy(text: str) -> Policy:
    """A trust policy (spec §7.2), strictly: fixed line order, every value canonical."""
    lines = text[:-1].split("\n")
    heads = [line.partition(" ") for line in lines[1:4]]
    if lines[0] != "acdkit-policy/1" or [h[0] for h in heads] != ["origin", "serial", "issued"]:
        raise Finding(MALFORMED, "policy does not start with its header, origin, serial, issued")
    if not heads[0][2]:
        raise Finding(MALFORMED, "policy origin is empty")
    _policy_time(heads[2][2], dash=False)
    pol = Policy(heads[0][2], decimal(heads[1][2], "policy serial"), [], [], 0)
    rank, seen = -1, set()
    for line in lines[4:]:
        key, _, value = line.partition(" ")
        if key not in _POLICY_ORDER or _POLICY_ORDER.index(key) < rank:
            raise Finding(MALFORMED, f"policy line {_show(line, 40)} is unknown or out of order")
        if key in seen and key not in ("sealer", "custodian", "witness", "tsa"):
            raise Finding(MALFORMED, f"policy line {key} appears twice")
        rank = _POLICY_ORDER.index(key)
        seen.add(key)
        _policy_value(pol, key, value)
    if not seen >= set(_POLICY_ORDER) - {"custodian", "witness", "tsa", "prune-below"}:
        raise Finding(MALFORMED, "policy lacks a sealer, quorum, interval, drift or grace line")
    if pol.quorum > len(pol.witnesses):
        raise Finding(MALFORMED, "policy witness quorum exceeds its witnesses")
    return pol


def _policy_value(pol: Policy, key: str, value: str) -> None:
    parts = value.split(" ")
    if key == "sealer":
        if len(parts) != 3:
            raise Finding(MALFORMED, "policy sealer line is not <vkey> <from> <until>")
        sealer = _exact_vkey(parts[0], SEALER_KEY)
        if sealer.name != pol.origin:
            raise Finding(MALFORMED, "policy sealer key is named after another log")
        start, end = _epoch(parts[1]), _epoch(parts[2])
        if start is not None and end is not None and start > end:
            raise Finding(MALFORMED, "policy sealer window ends before it begins")
        pol.sealers.append(sealer)
        pol.windows[sealer] = (start, end)
    elif key == "custodian":
        if len(parts) != 3:
            raise Finding(MALFORMED, "policy custodian line is not <vkey> <from> <until>")
        holder = _exact_vkey(parts[0], SEALER_KEY)
        if holder.name == pol.origin:
            raise Finding(MALFORMED, "policy custodian key carries the log's own name")
        start, end = _epoch(parts[1]), _epoch(parts[2])
        if start is not None and end is not None and start > end:
            raise Finding(MALFORMED, "policy custodian window ends before it begins")
        pol.custodians[holder] = (start, end)
    elif key == "witness":
        pol.witnesses.append(_exact_vkey(value, WITNESS_KEY))
    elif key == "tsa":
        if len(parts) != 3 or not _TSA_NAME.fullmatch(parts[0]):
            raise Finding(MALFORMED, "policy tsa line is not <name> <OID or -> <base64 DER>")
        if parts[1] != "-" and not _OID.fullmatch(parts[1]):
            raise Finding(MALFORMED, "policy tsa policy OID is malformed")
        b64(parts[2], "policy tsa root")
    elif key == "witness-quorum":
        pol.quorum = decimal(value, "witness quorum")
    elif key == "grace":
        pol.grace = decimal(value, "policy grace")
    elif key == "prune-below":
        pol.prune_below = decimal(value, "policy prune-below")
        if pol.prune_below == 0:
            raise Finding(MALFORMED, "policy prune-below 0 is not written (leave the line out)")
    elif value != "-":
        number = decimal(value, f"policy {key}")
        if key == "seal-interval":
            pol.seal_interval = number


COSIGNATURE_LIMIT = 64 << 10
MAX_TIMESTAMP = (1 << 63) - 1


def cosignature_message(checkpoint_text: str, timestamp: int) -> bytes:
    """What a witness signs (C2SP tlog-cosignature v1, spec §8.1.1)."""
    return f"cosignature/v1\ntime {timestamp}\n{checkpoint_text}".encode()


def cosigned_by(note: Note, witness: Vkey) -> int | None:
    """The newest timestamp of the witness's valid cosignatures; None if it has none."""
    found = None
    for name, kid, payload in note.signatures:
        if (name, kid) != (witness.name, witness.key_id):
            continue
        if len(payload) != 72:  # timestamp 8 and signature 64, after the key ID
            raise Finding(TAMPERED, f"cosignature line of witness {witness.name} is not 76 bytes")
        timestamp = int.from_bytes(payload[:8], "big")
        if timestamp > MAX_TIMESTAMP:
            raise Finding(MALFORMED, f"cosignature timestamp {timestamp} is out of range")
        if not ed25519_ok(witness.public, payload[8:], cosignature_message(note.text, timestamp)):
            raise Finding(TAMPERED, f"cosignature of witness {witness.key_id.hex()} is invalid")
        found = timestamp if found is None else max(found, timestamp)
    return found


# -- reading the bundle without trusting it -------------------------------------------------

_DIR_FLAGS = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_NOFOLLOW", 0)
_FILE_FLAGS = (
    os.O_RDONLY
    | getattr(os, "O_NOFOLLOW", 0)
    | getattr(os, "O_NONBLOCK", 0)
    | getattr(os, "O_BINARY", 0)
)


class Bundle:
    """Files of a bundle directory, opened component by component, never through a link."""

    def __init__(self, root: str) -> None:
        self.root = Path(root)

    def walk(self) -> list[str]:
        """Relative paths of every file; MALFORMED for links, special files, hostile trees."""
        out: list[str] = []
        stack, seen = [("", 0)], 0
        while stack:
            rel, depth = stack.pop()
            try:
                with os.scandir(self.root / rel if rel else self.root) as it:
                    for e in it:
                        seen += 1
                        if seen > MAX_ENTRIES:
                            raise Finding(MALFORMED, f"bundle has over {MAX_ENTRIES:,} entries")
                        path = f"{rel}/{e.name}" if rel else e.name
                        if self._kind(e, path, depth) == "dir":
                            stack.append((path, depth + 1))
                        else:
                            out.append(path)
            except OSError as exc:
                raise Finding(IO, f"cannot list {_show(rel or '.')}: {exc.strerror}") from None
        return sorted(out)

    @staticmethod
    def _kind(e: os.DirEntry[str], path: str, depth: int) -> str:
        if e.is_symlink():
            raise Finding(MALFORMED, f"bundle holds a symbolic link: {_show(path)}")
        if e.is_dir(follow_symlinks=False):
            if depth >= MAX_DEPTH:
                raise Finding(MALFORMED, f"bundle is nested deeper than {MAX_DEPTH} levels")
            return "dir"
        if not e.is_file(follow_symlinks=False):
            raise Finding(MALFORMED, f"bundle holds a special file: {_show(path)}")
        return "file"

    def open(self, rel: str) -> int:
        """A descriptor of the regular file ``rel``; FileNotFoundError if there is none."""
        parts = rel.split("/")
        if os.open in os.supports_dir_fd:
            fd = os.open(self.root, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
            try:
                for part in parts[:-1]:
                    inner = os.open(part, _DIR_FLAGS, dir_fd=fd)
                    os.close(fd)
                    fd = inner
                out = os.open(parts[-1], _FILE_FLAGS, dir_fd=fd)
            finally:
                os.close(fd)
        else:  # NOTE: without openat a link swapped in after the walk is not caught here
            out = os.open(self.root.joinpath(*parts), _FILE_FLAGS)
        if not stat.S_ISREG(os.fstat(out).st_mode):
            os.close(out)
            raise FileNotFoundError(rel)
        return out

    def read(self, rel: str, limit: int, what: str) -> bytes:
        """The bytes of a listed file (or the manifest), at most ``limit`` of them."""
        fd = self._open_listed(rel)
        with os.fdopen(fd, "rb") as fh:
            data = fh.read(limit + 1)
        if len(data) > limit:
            raise Finding(MALFORMED, f"{what} {rel} is larger than {limit:,} bytes")
        return data

    def digest(self, rel: str, size: int) -> bytes | None:
        """SHA-256 of a listed file, streamed; None when its size is not ``size``."""
        fd = self._open_listed(rel)
        with os.fdopen(fd, "rb") as fh:
            if os.fstat(fh.fileno()).st_size != size:
                return None
            h, total = hashlib.sha256(), 0
            while chunk := fh.read(CHUNK):
                h.update(chunk)
                total += len(chunk)
        return h.digest() if total == size else None

    def text_stream(self, rel: str) -> io.TextIOWrapper:
        fd = self._open_listed(rel)
        return io.TextIOWrapper(os.fdopen(fd, "rb"), encoding="utf-8", newline="")

    def _open_listed(self, rel: str) -> int:
        try:
            return self.open(rel)
        except (FileNotFoundError, NotADirectoryError):
            if rel == MANIFEST:
                raise Finding(IO, f"{MANIFEST} disappeared while it was read") from None
            raise Finding(TAMPERED, f"{rel} is listed in the manifest but missing") from None
        except OSError as exc:
            raise Finding(IO, f"cannot read {rel}: {exc.strerror}") from None


# -- the bundle's parts (spec §9) -----------------------------------------------------------


@dataclass
class Manifest:
    incident: str
    origin: str
    size: int
    files: dict[str, tuple[bytes, int]]  # path -> (SHA-256, size), in manifest order
    note: Note


def parse_manifest(note: Note) -> Manifest:
    lines = note.text[:-1].split("\n")
    if len(lines) < 4 or lines[0] != BUNDLE_FORMAT:
        raise Finding(MALFORMED, f"manifest does not start with {BUNDLE_FORMAT}")
    head = {}
    for line, key in zip(lines[1:4], ("incident", "origin", "checkpoint"), strict=True):
        name, _, value = line.partition(" ")
        if name != key or not value:
            raise Finding(MALFORMED, f"manifest line {_show(line)} should be '{key} ...'")
        head[key] = value
    if not _INCIDENT.fullmatch(head["incident"]):
        raise Finding(MALFORMED, f"manifest incident ID {_show(head['incident'])} is not valid")
    files: dict[str, tuple[bytes, int]] = {}
    previous = ""
    for line in lines[4:]:
        parts = line.split(" ")
        if len(parts) != 4 or parts[0] != "file" or not _HEX64.fullmatch(parts[1]):
            raise Finding(MALFORMED, f"bad manifest line {_show(line)}")
        rel = parts[3]
        segments = rel.split("/")
        if any(s in (".", "..") or not _SEGMENT.fullmatch(s) for s in segments):
            raise Finding(MALFORMED, f"unsafe path in manifest: {_show(rel)}")
        if rel == MANIFEST or rel <= previous:
            raise Finding(
                MALFORMED, f"manifest path {_show(rel)} is repeated, out of order or itself"
            )
        files[rel] = (bytes.fromhex(parts[1]), decimal(parts[2], "file size"))
        previous = rel
    return Manifest(
        head["incident"],
        head["origin"],
        decimal(head["checkpoint"], "checkpoint size"),
        files,
        note,
    )


@dataclass(frozen=True)
class Proof:
    index: int
    hashes: list[bytes]
    checkpoint: bytes
    extra: bytes | None


def parse_proof(data: bytes) -> Proof:
    """A C2SP tlog-proof file, strictly (spec §9.3)."""
    if len(data) > PROOF_LIMIT:
        raise Finding(MALFORMED, f"proof is larger than {PROOF_LIMIT:,} bytes")
    head, sep, checkpoint = data.partition(b"\n\n")
    if not sep or not checkpoint:
        raise Finding(MALFORMED, "proof has no empty line before its checkpoint")
    try:
        lines = head.decode("ascii").split("\n")
    except UnicodeDecodeError:
        raise Finding(MALFORMED, "proof lines are not ASCII") from None
    if lines[0] != PROOF_HEADER:
        raise Finding(MALFORMED, f"proof does not start with {PROOF_HEADER}")
    pos, extra = 1, None
    if pos < len(lines) and lines[pos].startswith("extra "):
        extra = b64(lines[pos][len("extra ") :], "proof extra data")
        pos += 1
    if pos >= len(lines) or not lines[pos].startswith("index "):
        raise Finding(MALFORMED, "proof has no index line")
    index = decimal(lines[pos][len("index ") :], "proof index")
    hashes = [b64(line, "proof hash") for line in lines[pos + 1 :]]
    if len(hashes) > MAX_PROOF_HASHES or any(len(h) != 32 for h in hashes):
        raise Finding(MALFORMED, f"proof hashes must be at most {MAX_PROOF_HASHES} of 32 bytes")
    return Proof(index, hashes, checkpoint, extra)


@dataclass
class Proven:
    """A proven record entry: what steps 6 and 7 need of it."""

    rel: str
    entry: bytes
    leaf: bytes


# -- the verification (spec §9.4) -----------------------------------------------------------


@dataclass
class Report:
    target: str
    checks: list[dict[str, str]] = field(default_factory=list)
    code: int = VERIFIED
    failure: dict[str, str] | None = None
    coverage: str = ""
    facts: dict[str, Any] = field(default_factory=dict)

    def ok(self, cid: str, detail: str) -> None:
        self.checks.append({"id": cid, "status": "ok", "detail": detail})

    def warn(self, cid: str, detail: str) -> None:
        self.checks.append({"id": cid, "status": "warn", "detail": detail})

    def fail(self, cid: str, finding: Finding) -> None:
        status = "incomplete" if finding.code == INCOMPLETE else "fail"
        self.checks.append({"id": cid, "status": status, "detail": finding.message})
        # the first failure decides; an INCOMPLETE finding gives way to a later failure
        if self.code == VERIFIED or (self.code == INCOMPLETE and finding.code != INCOMPLETE):
            self.code = finding.code
            self.failure = {"check": cid, "message": finding.message}

    def to_json(self) -> dict[str, Any]:
        return {
            "schema_version": REPORT_SCHEMA,
            "verifier": f"acdkit_verify.py {VERSION} (independent, format v1)",
            "target": self.target,
            "verdict": VERDICT[self.code],
            "exit_code": self.code,
            "coverage": self.coverage,
            "failure": self.failure,
            "checks": self.checks,
            "facts": self.facts,
        }


@dataclass(frozen=True)
class Options:
    """What the recipient knows from elsewhere: pinned keys, witnesses, a minimum size."""

    key: Vkey | None = None
    root: Vkey | None = None
    witnesses: tuple[Vkey, ...] = ()
    quorum: int | None = None
    expect_min_size: int | None = None
    allow_incomplete: bool = False
    custodians: tuple[Vkey, ...] = ()
    local_only: bool = False  # a store: accept that nothing outside commits to the log


# -- CLOCK entries (spec §15) -----------------------------------------------------------------

NTP_RESULTS = {
    "truechimer",
    "falseticker",
    "no-majority",
    "unreachable",
    "unsynchronised",
    "kiss",
    "too-far",
}
NTP_FAILURES = {"timeout", "refused", "bad-reply", "unresolved"}
CLOCK_VERDICTS = {"OK", "POLICY", "IO"}
MAX_ROOT_DISTANCE = 1_500_000_000


def _clock_fields(body: bytes, what: str) -> dict[int, tuple[int, bytes]]:
    try:
        return {fid: (kind, value) for fid, kind, value in parse_tlv(body)}
    except ValueError as exc:
        raise Finding(MALFORMED, f"{what}: {exc}") from None


def _clock_value(fields: dict[int, tuple[int, bytes]], fid: int, want: str, what: str) -> Any:
    """Field ``fid`` as an i64, a u64 (< 2^63), a text (1-255 bytes, no control) or 4 bytes."""
    kind, value = fields[fid]
    codes = {"i64": T_I64, "u64": T_U64, "text": T_UTF8, "refid": T_BYTES}
    if kind != codes[want] or (want in ("i64", "u64") and len(value) != 8):
        raise Finding(MALFORMED, f"{what}: field {fid} is not of type {want}")
    if want == "i64":
        return int.from_bytes(value, "big", signed=True)
    if want == "u64":
        number = int.from_bytes(value, "big")
        if number >> 63:
            raise Finding(MALFORMED, f"{what}: field {fid} is 2^63 or more")
        return number
    if want == "refid":
        if len(value) != 4:
            raise Finding(MALFORMED, f"{what}: field {fid} is not 4 bytes")
        return value
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError:
        raise Finding(MALFORMED, f"{what}: field {fid} is not UTF-8") from None
    if not 1 <= len(value) <= 255 or _CONTROL.search(text) or "\n" in text:
        raise Finding(MALFORMED, f"{what}: field {fid} is empty, too long or has a control")
    return text


def _require(fields: dict[int, Any], need: set[int], may: set[int], what: str) -> None:
    extra = sorted(set(fields) - need - may)
    if extra:
        raise Finding(MALFORMED, f"{what}: unknown field {extra[0]}")
    gone = sorted(need - set(fields))
    if gone:
        raise Finding(MALFORMED, f"{what}: field {gone[0]} is missing")


def _numbered(fields: dict[int, Any], base: int, most: int, what: str) -> list[int]:
    ids = sorted(f for f in fields if f >= base)
    if not ids or len(ids) > most or ids != list(range(base, base + len(ids))):
        raise Finding(MALFORMED, f"{what}: fields from {base} on must run without gaps (1-{most})")
    return ids


def decode_clock(body: bytes) -> dict[str, Any]:
    """A CLOCK body as plain data, strictly as spec §15.1 lays it out."""
    top = _clock_fields(body, "CLOCK body")
    servers_at = _numbered(top, 100, 64, "CLOCK body")
    head = {f: v for f, v in top.items() if f < 100}
    _require(head, {1, 2, 3, 4, 5, 6, 7, 8, 12, 13}, {9, 10, 11}, "CLOCK body")
    doc: dict[str, Any] = {
        "method": _clock_value(top, 1, "text", "CLOCK"),
        "min_agree": _clock_value(top, 4, "u64", "CLOCK"),
        "max_drift": _clock_value(top, 5, "u64", "CLOCK"),
        "precision": _clock_value(top, 6, "u64", "CLOCK"),
        "verdict": _clock_value(top, 7, "text", "CLOCK"),
        "agreeing": _clock_value(top, 8, "u64", "CLOCK"),
    }
    for fid in (2, 3):
        _clock_value(top, fid, "i64", "CLOCK")
    for fid in (12, 13):
        _clock_value(top, fid, "text", "CLOCK")
    if doc["method"] != "ntp" or doc["verdict"] not in CLOCK_VERDICTS:
        raise Finding(MALFORMED, "CLOCK body: unknown method or verdict")
    if doc["min_agree"] < 1 or doc["precision"] < 1:
        raise Finding(MALFORMED, "CLOCK body: fields 4 and 6 must be at least 1")
    combined = [f in top for f in (9, 10, 11)]
    if len(set(combined)) != 1 or combined[0] != (doc["agreeing"] != 0):
        raise Finding(MALFORMED, "CLOCK body: fields 9-11 belong together, with field 8 > 0")
    doc["combined"] = (
        tuple(_clock_value(top, f, "i64", "CLOCK") for f in (9, 10, 11)) if combined[0] else None
    )
    doc["servers"] = [_decode_server(top[f], f) for f in servers_at]
    return doc


def _decode_server(field_: tuple[int, bytes], fid: int) -> dict[str, Any]:
    what = f"CLOCK server {fid}"
    if field_[0] != T_BYTES:
        raise Finding(MALFORMED, f"{what} is not a bytes field")
    fields = _clock_fields(field_[1], what)
    samples_at = _numbered(fields, 10, 16, what)
    _require({f: v for f, v in fields.items() if f < 10}, {1, 3, 4}, {2, 5, 6}, what)
    _clock_value(fields, 1, "text", what)
    if 2 in fields:
        _clock_value(fields, 2, "text", what)
    port, result = _clock_value(fields, 3, "u64", what), _clock_value(fields, 4, "text", what)
    if not 0 < port < 65536 or result not in NTP_RESULTS:
        raise Finding(MALFORMED, f"{what}: bad port or result")
    if (5 in fields) is not (6 in fields):
        raise Finding(MALFORMED, f"{what}: fields 5 and 6 belong together")
    samples = []
    for sid in samples_at:
        kind, value = fields[sid]
        if kind != T_BYTES:
            raise Finding(MALFORMED, f"{what} sample {sid} is not a bytes field")
        samples.append(_decode_sample(value, f"{what} sample {sid}"))
    chosen = _clock_value(fields, 5, "u64", what) if 5 in fields else None
    if chosen is not None and (chosen >= len(samples) or samples[chosen] is None):
        raise Finding(MALFORMED, f"{what}: field 5 names no sample with a reply")
    return {
        "result": result,
        "chosen": chosen,
        "distance": _clock_value(fields, 6, "u64", what) if 6 in fields else None,
        "samples": samples,
    }


def _decode_sample(body: bytes, what: str) -> dict[str, int | bytes] | None:
    """The reply of a sample (None for a request that got no usable reply)."""
    fields = _clock_fields(body, what)
    if 11 in fields:
        _require(fields, {1, 4, 11}, set(), what)
        for fid in (1, 4):
            _clock_value(fields, fid, "i64", what)
        if _clock_value(fields, 11, "text", what) not in NTP_FAILURES:
            raise Finding(MALFORMED, f"{what}: unknown failure")
        return None
    _require(fields, set(range(1, 11)), set(), what)
    t1, t2, t3, t4 = (_clock_value(fields, f, "i64", what) for f in (1, 2, 3, 4))
    stratum, leap, root_delay, root_disp = (
        _clock_value(fields, f, "u64", what) for f in (5, 6, 7, 8)
    )
    precision = _clock_value(fields, 9, "i64", what)
    refid = _clock_value(fields, 10, "refid", what)
    if stratum > 255 or leap > 3 or not -32 <= precision <= 0:
        raise Finding(MALFORMED, f"{what}: stratum, leap or precision out of range")
    return {
        "offset": ((t2 - t1) + (t3 - t4)) // 2,
        "delay": (t4 - t1) - (t3 - t2),
        "stratum": stratum,
        "leap": leap,
        "root_delay": root_delay,
        "root_disp": root_disp,
        "precision": precision,
        "refid": refid,
    }


def _up(a: int, b: int) -> int:
    return (a + b - 1) // b


def _judge_server(server: dict[str, Any], local_precision: int) -> tuple[str, Any, Any]:
    """(result before the vote, chosen sample, root distance) of one server (§15.3 step 1)."""
    replies = [(k, s) for k, s in enumerate(server["samples"]) if s is not None]
    if not replies:
        return "unreachable", None, None
    best_k, best = min(replies, key=lambda ks: (ks[1]["delay"], ks[0]))
    jitter = max(abs(s["offset"] - best["offset"]) for _k, s in replies)
    delay = max(best["delay"], 0)
    lam = (
        _up(delay + best["root_delay"], 2)
        + best["root_disp"]
        + _up(10**9, 2 ** -best["precision"])
        + local_precision
        + _up(delay * 15, 10**6)
        + jitter
    )
    if best["stratum"] == 0 and all(65 <= b <= 90 for b in best["refid"]):
        return "kiss", best_k, lam
    if best["stratum"] == 0 or best["stratum"] >= 16 or best["leap"] == 3:
        return "unsynchronised", best_k, lam
    if lam > MAX_ROOT_DISTANCE:
        return "too-far", best_k, lam
    return "candidate", best_k, lam


def _majority_interval(spans: list[tuple[int, int]]) -> tuple[int, int] | None:
    """Marzullo's interval of the most sources, allowing false tickers while 2f < m."""
    ends = sorted([(lo, 0) for lo, _ in spans] + [(hi, 1) for _, hi in spans])
    m = len(spans)
    for allowed in range(0, (m + 1) // 2):
        want = m - allowed
        low = high = None
        depth = 0
        for value, is_high in ends:
            depth += -1 if is_high else 1
            if depth >= want:
                low = value
                break
        depth = 0
        for value, is_high in reversed(ends):
            depth += 1 if is_high else -1
            if depth >= want:
                high = value
                break
        if low is not None and high is not None and low <= high:
            return low, high
    return None


def check_clock(doc: dict[str, Any]) -> str:
    """Recompute a decoded CLOCK body's conclusions (§15.3); TAMPERED where they differ.
    Returns a sentence for the report."""
    judged = [_judge_server(s, doc["precision"]) for s in doc["servers"]]
    spans = {}
    for i, (result, chosen, lam) in enumerate(judged):
        if result == "candidate":
            theta = doc["servers"][i]["samples"][chosen]["offset"]
            spans[i] = (theta - lam, theta + lam)
    found = _majority_interval(list(spans.values())) if spans else None
    results = []
    for i, (result, _chosen, _lam) in enumerate(judged):
        if result == "candidate":
            if found is None:
                result = "no-majority"
            else:
                lo, hi = spans[i]
                result = "truechimer" if lo <= found[1] and hi >= found[0] else "falseticker"
        results.append(result)
    for i, (server, (_r, chosen, lam)) in enumerate(zip(doc["servers"], judged, strict=True)):
        if (server["result"], server["chosen"], server["distance"]) != (results[i], chosen, lam):
            raise Finding(
                TAMPERED,
                f"CLOCK server {i} is recorded as {server['result']}, its samples make it "
                f"{results[i]} (or give other figures)",
            )
    true = [i for i, r in enumerate(results) if r == "truechimer"]
    combined = None
    if true and found is not None:
        num = den = 0
        # Σ θ/λ over Σ 1/λ as one fraction over the product of the distances
        lams = [judged[i][2] for i in true]
        product = 1
        for lam in lams:
            product *= lam
        for i in true:
            theta = (spans[i][0] + spans[i][1]) // 2
            share = product // judged[i][2]
            num += theta * share
            den += share
        combined = (num // den, found[0], found[1])
    if len(true) != doc["agreeing"] or combined != doc["combined"]:
        raise Finding(TAMPERED, "the CLOCK entry's combined offset or interval is not its samples'")
    drifted = combined is not None and max(abs(combined[1]), abs(combined[2])) > doc["max_drift"]
    if all(r == "unreachable" for r in results):
        verdict = "IO"
    elif len(true) < doc["min_agree"] or drifted:
        verdict = "POLICY"
    else:
        verdict = "OK"
    if verdict != doc["verdict"]:
        raise Finding(TAMPERED, f"the CLOCK entry says {doc['verdict']}, its samples say {verdict}")
    if combined is None:
        return f"{verdict}, no majority of {len(results)} servers"
    return (
        f"{verdict}, {len(true)} of {len(results)} servers agree, offset "
        f"{combined[0] / 1e9:+.6f} s within {combined[1] / 1e9:+.6f}..{combined[2] / 1e9:+.6f} s"
    )


def _check_clock_leaves(leaves: dict[int, Proven], report: Report) -> None:
    """Check 12: the CLOCK leaves the bundle proves (check 5) are CLOCK entries whose
    conclusions follow from their samples."""
    said = []
    for index in sorted(leaves):
        proven = leaves[index]
        entry = parse_entry(proven.entry)
        if entry is None or entry.kind != CLOCK or entry.salt != bytes(32):
            raise Finding(MALFORMED, f"{proven.rel} carries no CLOCK entry")
        try:
            said.append(f"leaf {index}: {check_clock(decode_clock(entry.body))}")
        except Finding as exc:
            raise Finding(exc.code, f"{proven.rel}: {exc}") from None
    if leaves:
        report.ok(
            "12", f"{len(leaves)} CLOCK leaves recompute from their samples: " + "; ".join(said)
        )


def verify_bundle(
    root: str,
    pinned: Vkey | None = None,
    expect_min_size: int | None = None,
    options: Options | None = None,
) -> Report:
    """Verify a bundle offline.

    1. Every path is a regular file; the manifest parses strictly.
    2. Every listed file has its listed size and SHA-256; no file is unlisted (POLICY).
    3. The key chain runs from the log's first key (key/sealer.vkey, else the pinned key)
       through the KEY entries under key/rotations/; a pinned key is one of its keys; the
       manifest is signed by its current key.
    4. The checkpoint parses, is signed by a key of the chain, matches the manifest and is
       not smaller than ``expect_min_size``.
    5. Every proof parses, is named after its index, rests on the bundle's checkpoint, carries
       an acdkit entry, and its audit path leads from that entry to the checkpoint root.
    6. Every proven record entry is a RECORD whose body is a record of its table; the
       log_index and integrity_hash columns of records/<table>.csv match the proofs one to one.
    7. Every SEAL parses and sits at its end index; every record lies inside a proven
       segment and its ts_utc inside that segment's sealed time range.
    8. The bundle's trust policy, if any (required under a pinned root), is signed by the
       root key, names the log and lists every key of the chain as a sealer.
    9. Every cosigned checkpoint is one of the bundle's checkpoint; with witnesses (given,
       else the policy's) their cosignatures verify and reach the quorum (INCOMPLETE if not).
    10. Every ANCHOR leaf is proven; tokens and consistency proofs are not checked here
        (INCOMPLETE when the bundle has any).
    11. Every proof under decisions/ carries a DECISION of the manifest's incident, signed by
        the custodian key it names over the message of §13; that key is one of --custodian,
        else of the policy's custodian lines (its window covering the decision), else of
        key/custodians.vkey, when any of these is there.
    12. Every CLOCK leaf is a CLOCK entry whose recorded conclusions (each server's result,
        the interval, the combined offset, the verdict) are what its samples give.
    13. Every proof under custody/ carries a CUSTODY entry of the manifest's incident, signed
        by the custodian key it names over the message of §16.2 and trusted as in check 11;
        it concerns a checkpoint no later than the bundle's (with its root, if it is the
        bundle's) whose SEAL leaf is proven, and is dated no earlier than that seal nor the
        bundle's first export (POLICY); custody/export.json says who signed the export.
    14. Every proof under worm/ carries a worm-upload CUSTODY entry (spec §16.7) signed and
        trusted as in check 13, concerning a checkpoint no later than the bundle's whose SEAL
        leaf is proven; the S3 object versions it pins are reported, not fetched (offline).
    """
    opts = options or Options(key=pinned, expect_min_size=expect_min_size)
    pinned, expect_min_size = opts.key, opts.expect_min_size
    report, bundle, step = Report(root), Bundle(root), "1"
    try:
        # 1
        present = bundle.walk()
        data = bundle.read(MANIFEST, MANIFEST_LIMIT, "manifest")
        manifest = parse_manifest(parse_note(data, MANIFEST_LIMIT, "manifest"))
        report.ok("1", f"manifest of {len(manifest.files)} files parses; all paths are safe")
        # 2
        step = "2"
        _check_files(bundle, manifest, present)
        report.ok("2", f"{len(manifest.files)} files match the manifest; none is unlisted")
        # 3
        step = "3"
        chain = _key_chain(bundle, manifest, pinned)
        if pinned is not None and pinned not in chain.keys:
            raise Finding(TAMPERED, f"the pinned key {pinned.key_id.hex()} is no key of this log")
        key = chain.current
        check_signed(manifest.note, key, "manifest")
        how = "pinned with --key" if pinned else "the bundle's own key/sealer.vkey, NOT pinned"
        hops = f", after {len(chain.keys) - 1} key rotations" if len(chain.keys) > 1 else ""
        report.ok("3", f"manifest signed by key {key.key_id.hex()}{hops} ({how})")
        # 4
        step = "4"
        cp_bytes, cp = _check_checkpoint(bundle, manifest, chain)
        if expect_min_size is not None and cp.size < expect_min_size:
            raise Finding(
                TAMPERED, f"checkpoint {cp.size:,} is older than the expected {expect_min_size:,}"
            )
        report.ok("4", f"checkpoint {cp.size} of {cp.origin} is signed by a key of the chain")
        # 5
        step = "5"
        records = _check_proofs(bundle, manifest, cp_bytes, cp, "proofs/")
        seals = _check_proofs(bundle, manifest, cp_bytes, cp, "seals/")
        rotations = _check_proofs(bundle, manifest, cp_bytes, cp, ROTATIONS)
        decisions = _check_proofs(bundle, manifest, cp_bytes, cp, "decisions/")
        clocks = _check_proofs(bundle, manifest, cp_bytes, cp, CLOCK_DIR)
        custody = _check_proofs(bundle, manifest, cp_bytes, cp, CUSTODY_DIR)
        receipts = _check_proofs(bundle, manifest, cp_bytes, cp, WORM_DIR)
        report.ok(
            "5",
            f"{len(records)} record, {len(seals)} SEAL, {len(rotations)} KEY, "
            f"{len(decisions)} DECISION, {len(clocks)} CLOCK, {len(custody)} CUSTODY and "
            f"{len(receipts)} worm-upload inclusion proofs hold",
        )
        # 6
        step = "6"
        tables, unread = _check_records(bundle, manifest, records)
        report.ok("6", f"{len(records)} proven records are records of their tables")
        if unread:
            report.fail(
                "6",
                Finding(
                    INCOMPLETE,
                    f"{', '.join(unread)} has no CSV copy: its rows cannot be read without "
                    "pyarrow (run `acdkit verify`)",
                ),
            )
        # 7
        step = "7"
        _check_seals(manifest, records, seals, tables)
        report.ok("7", "every record lies in a proven segment, inside its sealed time range")
        # 8
        step = "8"
        policy = _check_policy(bundle, manifest, chain, opts.root, report)
        # 9
        step = "9"
        witnessed = _check_cosignatures(bundle, manifest, cp_bytes, policy, opts, report)
        # 10
        step = "10"
        anchors = _check_anchor_leaves(bundle, manifest, cp_bytes, cp, report)
        # 11
        step = "11"
        decided = _check_decisions(bundle, manifest, decisions, policy, opts, report)
        # 12
        step = "12"
        _check_clock_leaves(clocks, report)
        # 13
        step = "13"
        handled = _check_custody(bundle, manifest, custody, seals, cp, policy, opts, report)
        # 14
        step = "14"
        pinned_s3 = _check_receipts(bundle, manifest, receipts, seals, cp, policy, opts, report)
        report.coverage = _coverage(manifest, cp, key, pinned is not None, records, seals)
        if decided:
            report.coverage += f"; {decided}"
        if handled:
            report.coverage += f"; {handled}"
        if pinned_s3:
            report.coverage += f"; {pinned_s3}"
        if witnessed:
            report.coverage += f"; {witnessed}"
        if anchors:
            report.coverage += f"; NOT checked: {anchors}"
        report.facts = {
            "tree_size": cp.size,
            "incident": manifest.incident,
            "records": len(records),
            "key_id": key.key_id.hex(),
            "key_pinned": pinned is not None,
            "key_rotations": len(chain.keys) - 1,
            **({"worm": pinned_facts(receipts)} if receipts else {}),
        }
    except Finding as exc:
        report.fail(step, exc)
        report.coverage = f"verification stopped at check {step}"
    return report


def _check_policy(
    bundle: Bundle, manifest: Manifest, chain: KeyChain, root: Vkey | None, report: Report
) -> Policy | None:
    rels = [r for r in manifest.files if r.startswith("policy/")]
    if not rels:
        if root is not None:
            raise Finding(TAMPERED, "a root key is pinned but the bundle has no trust policy")
        report.ok("8", "no trust policy in the bundle")
        return None
    if len(rels) != 1 or not rels[0].endswith(".policy.note"):
        raise Finding(MALFORMED, "a bundle holds exactly one policy/<serial>.policy.note")
    how = "pinned with --root"
    if root is None:
        if "key/root.vkey" not in manifest.files:
            raise Finding(MALFORMED, "the bundle's policy comes without key/root.vkey")
        raw = bundle.read("key/root.vkey", VKEY_LIMIT, "root key")
        root, how = parse_vkey(raw.decode("utf-8", "replace")), "the bundle's own, NOT pinned"
    note = parse_note(bundle.read(rels[0], NOTE_LIMIT, "policy"), NOTE_LIMIT, "policy")
    pol = parse_policy(note.text)
    check_signed(note, root, rels[0])
    if pol.origin != manifest.origin:
        raise Finding(TAMPERED, f"{rels[0]} is the policy of another log")
    missing = next((k for k in chain.keys if k not in pol.sealers), None)
    if missing is not None:
        raise Finding(TAMPERED, f"sealer key {missing.key_id.hex()} is not in the policy")
    report.ok(
        "8",
        f"trust policy {pol.serial} signed by root key {root.key_id.hex()} ({how}) "
        f"lists all {len(chain.keys)} sealer keys",
    )
    return pol


def _check_cosignatures(
    bundle: Bundle,
    manifest: Manifest,
    cp_bytes: bytes,
    policy: Policy | None,
    opts: Options,
    report: Report,
) -> str:
    cp_text = parse_note(cp_bytes, NOTE_LIMIT, "checkpoint").text
    notes = []
    for rel in (r for r in manifest.files if r.startswith("cosignatures/")):
        note = parse_note(
            bundle.read(rel, COSIGNATURE_LIMIT, "cosigned checkpoint"), COSIGNATURE_LIMIT, rel
        )
        parse_checkpoint(note)
        if note.text != cp_text:
            raise Finding(MALFORMED, f"{rel} is not a cosignature of the bundle's checkpoint")
        notes.append(note)
    witnesses, quorum = list(dict.fromkeys(opts.witnesses)), opts.quorum
    if not witnesses and policy is not None and policy.witnesses:
        witnesses, quorum = list(dict.fromkeys(policy.witnesses)), policy.quorum
    if not witnesses:
        if notes:
            report.warn("9", f"{len(notes)} cosigned checkpoints not checked: no witness given")
        else:
            report.ok("9", "no witness keys given, none in a policy, and no cosignatures")
        return ""
    quorum = 1 if quorum is None else quorum
    now, signed = int(time.time()), 0
    for witness in witnesses:
        stamps = [t for t in (cosigned_by(n, witness) for n in notes) if t is not None]
        signed += bool(stamps)
        if stamps and max(stamps) > now + 300:
            report.warn("9", f"witness {witness.key_id.hex()} cosigned in the future")
    done = f"checkpoint witnessed by {signed} of {len(witnesses)} (quorum {quorum})"
    if signed >= quorum:
        report.ok("9", done)
        return done
    lacking = f"{done}: a rollback before the bundle was made cannot be excluded"
    if opts.allow_incomplete:
        report.warn("9", lacking)
        return done
    report.fail("9", Finding(INCOMPLETE, lacking))
    return done


def _check_anchor_leaves(
    bundle: Bundle, manifest: Manifest, cp_bytes: bytes, cp: Checkpoint, report: Report
) -> str:
    """Check 10 as far as it goes without CMS: the ANCHOR leaves are proven, and the rest
    (tokens, consistency proofs, anchored checkpoints, §12.5) is reported INCOMPLETE."""
    leaves = _check_proofs(bundle, manifest, cp_bytes, cp, "anchors/")
    for proven in leaves.values():
        entry = parse_entry(proven.entry)
        if entry is None or entry.kind != ANCHOR or entry.salt != bytes(32):
            raise Finding(MALFORMED, f"{proven.rel} carries no ANCHOR entry")
    tokens = [r for r in manifest.files if r.startswith("anchors/") and r.endswith(".tsr")]
    proofs = [
        r for r in manifest.files if r.startswith("checkpoint/") and r.endswith(".consistency")
    ]
    if not leaves and not tokens and not proofs:
        report.ok("10", "no anchors in the bundle")
        return ""
    # NOTE: RFC 3161 tokens are CMS SignedData checked against TSA roots; this verifier
    # has no CMS or X.509 path validation, so it cannot vouch for any anchor.
    unchecked = (
        f"{len(leaves)} ANCHOR leaves (proven), {len(tokens)} RFC 3161 tokens and "
        f"{len(proofs)} consistency proofs (their bodies, tokens and times need "
        "`acdkit verify --tsa-root`)"
    )
    report.fail("10", Finding(INCOMPLETE, f"anchors not verified: {unchecked}"))
    return unchecked


def _check_decisions(
    bundle: Bundle,
    manifest: Manifest,
    proven: dict[int, Proven],
    policy: Policy | None,
    opts: Options,
    report: Report,
) -> str:
    """Check 11: each decision parses, is of this incident, and is signed by a trusted key."""
    trusted, source, grace = _custodian_trust(bundle, manifest, policy, opts)
    signers = set()
    for index in sorted(proven):
        item = proven[index]
        entry = parse_entry(item.entry)
        if entry is None or entry.kind != DECISION or entry.salt != bytes(32):
            raise Finding(MALFORMED, f"{item.rel} carries no DECISION entry")
        try:
            decision = decode_decision(entry.body)
        except (ValueError, Finding) as exc:
            raise Finding(MALFORMED, f"{item.rel}: not a DECISION body ({exc})") from None
        if decision.incident != manifest.incident:
            raise Finding(TAMPERED, f"{item.rel} is a decision of another incident")
        message = DECISION_PREFIX + manifest.origin.encode("utf-8") + b"\n"
        if not ed25519_ok(
            decision.custodian.public, decision.signature, message + decision.message_body
        ):
            raise Finding(TAMPERED, f"{item.rel}: the custodian's signature does not verify")
        _check_trusted(item.rel, decision.custodian, decision.recorded, trusted, source, grace)
        signers.add(decision.custodian)
    if not proven:
        return ""  # nothing to report: bundles without decisions read as before
    whose = f"keys of {source}" if trusted is not None else "the keys they name (NOT pinned)"
    report.ok("11", f"{len(proven)} decisions by {len(signers)} custodians verify with {whose}")
    return f"{len(proven)} decisions of incident {manifest.incident} verified with {whose}"


Trust = dict[Vkey, tuple[int | None, int | None]]


def _custodian_trust(
    bundle: Bundle, manifest: Manifest, policy: Policy | None, opts: Options
) -> tuple[Trust | None, str, int]:
    """The custodian keys of checks 11 and 13, where they come from, and the grace."""
    if opts.custodians:
        return {k: (None, None) for k in opts.custodians}, "--custodian", 0
    if policy is not None and policy.custodians:
        return policy.custodians, f"trust policy {policy.serial}", policy.grace
    if "key/custodians.vkey" in manifest.files:
        raw = bundle.read("key/custodians.vkey", MIB, "custodian list")
        return _custodian_list(raw), "key/custodians.vkey", 0
    return None, "", 0


def _check_trusted(
    rel: str, key: Vkey, recorded: int, trusted: Trust | None, source: str, grace: int
) -> None:
    if trusted is None:
        return
    if key not in trusted:
        raise Finding(TAMPERED, f"{rel} is signed by a key {source} does not list")
    start, end = trusted[key]
    at = recorded // 1_000_000_000  # whole seconds, floor, as the windows
    if (start is not None and recorded < (start - grace) * 1_000_000_000) or (
        end is not None and recorded > (end + grace) * 1_000_000_000
    ):
        raise Finding(TAMPERED, f"{rel} was signed outside its key's window ({at})")


def _receipt_event(item: Proven) -> CustodyEvent:
    entry = parse_entry(item.entry)
    if entry is None or entry.kind != CUSTODY or entry.salt != bytes(32):
        raise Finding(MALFORMED, f"{item.rel} carries no CUSTODY entry")
    try:
        event = decode_custody(entry.body)
    except (ValueError, Finding) as exc:
        raise Finding(MALFORMED, f"{item.rel}: not a CUSTODY body ({exc})") from None
    if event.receipt is None:
        raise Finding(MALFORMED, f"{item.rel} carries a CUSTODY entry that is no worm-upload")
    return event


def pinned_facts(receipts: dict[int, Proven]) -> dict[str, Any]:
    """The S3 object versions the receipts pin, for the report's facts."""
    pins = []
    for index in sorted(receipts):
        receipt = _receipt_event(receipts[index]).receipt
        assert receipt is not None
        bucket, objects = receipt
        pins += [
            {"index": index, "bucket": bucket, **{k: p[k] for k in ("key", "version_id")},
             "sha256": p["sha256"], "size": p["size"]}
            for p in objects
        ]  # fmt: skip
    return {"receipts": len(receipts), "pins": pins}


def _seal_times(seals: dict[int, Proven]) -> dict[int, int]:
    """Checkpoint size -> SEAL time of the segment it closes, for the SEALs a bundle proves."""
    out = {}
    for item in seals.values():
        entry = parse_entry(item.entry)
        assert entry is not None  # check 7 decoded it
        info = decode_seal(entry.body)
        out[info.end] = info.sealed_at
    return out


def _check_receipts(
    bundle: Bundle,
    manifest: Manifest,
    proven: dict[int, Proven],
    seals: dict[int, Proven],
    cp: Checkpoint,
    policy: Policy | None,
    opts: Options,
    report: Report,
) -> str:
    """Check 14: the log's worm-upload receipts, as custody entries of no incident."""
    if not proven:
        return ""
    trusted, source, grace = _custodian_trust(bundle, manifest, policy, opts)
    sealed_at = _seal_times(seals)
    late, objects = [], 0
    for index in sorted(proven):
        item = proven[index]
        event = _receipt_event(item)
        message = CUSTODY_PREFIX + manifest.origin.encode("utf-8") + b"\n" + event.message_body
        if not ed25519_ok(event.custodian.public, event.signature, message):
            raise Finding(TAMPERED, f"{item.rel}: the custodian's signature does not verify")
        _check_trusted(item.rel, event.custodian, event.recorded, trusted, source, grace)
        if event.size > cp.size or event.size > index:
            raise Finding(TAMPERED, f"{item.rel} concerns a checkpoint after its own place")
        if event.size == cp.size and event.root != cp.root:
            raise Finding(TAMPERED, f"{item.rel} names another root for the bundle's checkpoint")
        if event.size not in sealed_at:
            raise Finding(
                MALFORMED, f"{item.rel}: the SEAL of the checkpoint it concerns is missing"
            )
        if event.at < sealed_at[event.size] - CLOCKS_APART_NS:
            late.append(f"{item.rel} is dated before the checkpoint it concerns was sealed")
        assert event.receipt is not None
        objects += len(event.receipt[1])
    for finding in late:
        report.fail("14", Finding(POLICY, finding))
    whose = f"keys of {source}" if trusted is not None else "the keys they name (NOT pinned)"
    if not late:
        report.ok(
            "14",
            f"{len(proven)} worm-upload receipts pin {objects} S3 object versions, verified "
            f"with {whose}; the objects were NOT fetched (offline)",
        )
    return f"{objects} S3 object versions pinned by signed receipts (NOT fetched)"


def _check_custody(
    bundle: Bundle,
    manifest: Manifest,
    proven: dict[int, Proven],
    seals: dict[int, Proven],
    cp: Checkpoint,
    policy: Policy | None,
    opts: Options,
    report: Report,
) -> str:
    """Check 13: the incident's custody entries, and the bundle's statement on its export."""
    trusted, source, grace = _custodian_trust(bundle, manifest, policy, opts)
    sealed_at = _seal_times(seals)
    firsts: dict[bytes, CustodyEvent] = {}
    exports: dict[bytes, int] = {}
    late, signers, events = [], set(), 0
    for index in sorted(proven):
        item = proven[index]
        entry = parse_entry(item.entry)
        if entry is None or entry.kind != CUSTODY or entry.salt != bytes(32):
            raise Finding(MALFORMED, f"{item.rel} carries no CUSTODY entry")
        try:
            event = decode_custody(entry.body)
        except (ValueError, Finding) as exc:
            raise Finding(MALFORMED, f"{item.rel}: not a CUSTODY body ({exc})") from None
        if event.incident != manifest.incident:
            raise Finding(TAMPERED, f"{item.rel} is a custody entry of another incident")
        message = CUSTODY_PREFIX + manifest.origin.encode("utf-8") + b"\n" + event.message_body
        if not ed25519_ok(event.custodian.public, event.signature, message):
            raise Finding(TAMPERED, f"{item.rel}: the custodian's signature does not verify")
        _check_trusted(item.rel, event.custodian, event.recorded, trusted, source, grace)
        if event.size > cp.size or event.size > index:
            raise Finding(TAMPERED, f"{item.rel} concerns a checkpoint after its own place")
        if event.size == cp.size and event.root != cp.root:
            raise Finding(TAMPERED, f"{item.rel} names another root for the bundle's checkpoint")
        if event.manifest is not None:
            first = firsts.setdefault(event.manifest, event)
            if (first.size, first.root, first.incident) != (event.size, event.root, event.incident):
                raise Finding(TAMPERED, f"{item.rel} names its bundle with another checkpoint")
        if event.size not in sealed_at:
            raise Finding(
                MALFORMED, f"{item.rel}: the SEAL of the checkpoint it concerns is missing"
            )
        if event.at < sealed_at[event.size] - CLOCKS_APART_NS:
            late.append(f"{item.rel} is dated before the checkpoint it concerns was sealed")
        if event.manifest is not None:
            exported = exports.get(event.manifest)
            if exported is not None and event.at < exported - CLOCKS_APART_NS:
                late.append(f"{item.rel} is dated before the export of its bundle")
            if event.event == "export" and exported is None:
                exports[event.manifest] = event.at
        signers.add(event.custodian)
        events += 1
    for finding in late:
        report.fail("13", Finding(POLICY, finding))
    _check_export_statement(bundle, manifest, report)
    if not events:
        return ""
    whose = f"keys of {source}" if trusted is not None else "the keys they name (NOT pinned)"
    if not late:
        report.ok(
            "13", f"{events} custody entries by {len(signers)} custodians verify with {whose}"
        )
    return f"{events} custody entries of incident {manifest.incident} verified with {whose}"


def _check_export_statement(bundle: Bundle, manifest: Manifest, report: Report) -> None:
    if EXPORT_STATEMENT not in manifest.files:
        return  # a bundle made before custody entries existed
    raw = bundle.read(EXPORT_STATEMENT, 64 << 10, "export statement")
    try:
        doc = json.loads(raw.decode("utf-8"))
    except (ValueError, RecursionError):
        raise Finding(MALFORMED, f"{EXPORT_STATEMENT} is not JSON") from None
    if not isinstance(doc, dict) or doc.get("format") != "acdkit-custody-export/1":
        raise Finding(MALFORMED, f"{EXPORT_STATEMENT} is not an acdkit-custody-export/1 document")
    if not isinstance(doc.get("signed"), bool):
        raise Finding(MALFORMED, f"{EXPORT_STATEMENT} does not say whether the export was signed")
    if doc.get("incident") != manifest.incident or doc.get("checkpoint") != manifest.size:
        raise Finding(MALFORMED, f"{EXPORT_STATEMENT} describes another incident or checkpoint")
    if not doc["signed"]:
        report.warn("13", f"no custodian signed the export of this bundle ({EXPORT_STATEMENT})")
        return
    vkey = doc.get("custodian")
    if not isinstance(vkey, str) or parse_vkey(vkey, SEALER_KEY).text() != vkey:
        raise Finding(MALFORMED, f"{EXPORT_STATEMENT} names no custodian vkey")
    key = parse_vkey(vkey).key_id.hex()
    report.ok("13", f"{EXPORT_STATEMENT}: the sender says custodian key {key} signed its export")


def _custodian_list(raw: bytes) -> dict[Vkey, tuple[int | None, int | None]]:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise Finding(MALFORMED, "key/custodians.vkey is not UTF-8") from None
    lines = text.split("\n")
    if lines[-1] != "":
        raise Finding(MALFORMED, "key/custodians.vkey does not end with a newline")
    keys = [_exact_vkey(line, SEALER_KEY) for line in lines[:-1]]
    if len(set(keys)) != len(keys) or len(keys) > 1000:
        raise Finding(MALFORMED, "key/custodians.vkey lists a key twice or too many keys")
    return {k: (None, None) for k in keys}


def _coverage(
    manifest: Manifest,
    cp: Checkpoint,
    key: Vkey,
    pinned: bool,
    records: dict[int, Proven],
    seals: dict[int, Proven],
) -> str:
    return (
        f"{len(records):,} disclosed records and {len(seals)} SEAL leaves proven in "
        f"checkpoint {cp.size:,} of {cp.origin}; manifest of {len(manifest.files)} files; "
        f"all signed by key {key.key_id.hex()}"
        + (" (pinned)" if pinned else " (NOT pinned: pass --key)")
        + "; the log_index and integrity_hash of records/*.csv match the proven entries; "
        "NOT compared with the entries: the Parquet files and the other CSV columns "
        "(`acdkit verify` does that); summaries and logs are attested by the manifest only"
    )


def _key_chain(bundle: Bundle, manifest: Manifest, pinned: Vkey | None) -> KeyChain:
    """Spec §9.4 check 3: the first key, then every KEY entry the bundle proves (their
    inclusion in the checkpoint is check 5)."""
    rel = "key/sealer.vkey"
    if rel in manifest.files:
        try:
            first = parse_vkey(bundle.read(rel, VKEY_LIMIT, "verifier key").decode("utf-8"))
        except UnicodeDecodeError:
            raise Finding(MALFORMED, f"{rel} is not UTF-8") from None
    elif pinned is not None:
        first = pinned
    else:
        raise Finding(MALFORMED, f"bundle has no {rel}; pass the sealer's key with --key")
    chain = KeyChain(manifest.origin, [first])
    for rel in (r for r in manifest.files if r.startswith(ROTATIONS)):
        proof = parse_proof(bundle.read(rel, PROOF_LIMIT, "proof"))
        entry = parse_entry(proof.extra or b"")
        if entry is None or entry.kind not in LOG_ENTRY_TYPES or entry.salt != bytes(32):
            raise Finding(MALFORMED, f"{rel} carries no valid log entry")
        if entry.kind != KEY:
            raise Finding(MALFORMED, f"{rel} carries no KEY entry")
        chain.apply(rel, decode_key_event(entry.body, manifest.origin))
    return chain


def _check_files(bundle: Bundle, manifest: Manifest, present: list[str]) -> None:
    for rel, (digest, size) in manifest.files.items():
        if bundle.digest(rel, size) != digest:
            raise Finding(TAMPERED, f"{rel} does not match its size and SHA-256 in the manifest")
    extra = [p for p in present if p not in manifest.files and p != MANIFEST]
    if extra:
        more = f" (and {len(extra) - 1} more)" if len(extra) > 1 else ""
        raise Finding(POLICY, f"{_show(extra[0])} is in the bundle but not in the manifest{more}")


def _check_checkpoint(
    bundle: Bundle, manifest: Manifest, chain: KeyChain
) -> tuple[bytes, Checkpoint]:
    rel = f"checkpoint/{manifest.size:020d}.checkpoint"
    if rel not in manifest.files:
        raise Finding(MALFORMED, f"bundle has no {rel}")
    data = bundle.read(rel, NOTE_LIMIT, "checkpoint")
    note = parse_note(data, NOTE_LIMIT, "checkpoint")
    cp = parse_checkpoint(note)
    if not any(signed_by(note, key) for key in chain.keys):
        raise Finding(TAMPERED, "checkpoint carries no valid signature by a key of the log")
    if cp.origin != manifest.origin or cp.size != manifest.size:
        raise Finding(TAMPERED, "checkpoint origin or size differs from the manifest's")
    return data, cp


def _check_proofs(
    bundle: Bundle, manifest: Manifest, cp_bytes: bytes, cp: Checkpoint, prefix: str
) -> dict[int, Proven]:
    out: dict[int, Proven] = {}
    for rel in (r for r in manifest.files if r.startswith(prefix)):
        if prefix == "anchors/" and not rel.endswith(".tlog-proof"):
            continue  # token copies
        if rel == EXPORT_STATEMENT:
            continue  # the bundle's statement about its export, read by check 13
        proof = parse_proof(bundle.read(rel, PROOF_LIMIT, "proof"))
        named = _INDEX_NAME.fullmatch(rel)
        if not named or named.group(1) != prefix or int(named.group(2)) != proof.index:
            raise Finding(MALFORMED, f"{rel} holds the proof of index {proof.index}")
        if proof.checkpoint != cp_bytes:
            raise Finding(TAMPERED, f"{rel} rests on another checkpoint than the bundle's")
        if proof.extra is None or parse_entry(proof.extra) is None:
            raise Finding(MALFORMED, f"{rel} carries no acdkit entry in its extra line")
        leaf = leaf_hash(proof.extra)
        if root_from_path(proof.index, cp.size, leaf, proof.hashes) != cp.root:
            raise Finding(TAMPERED, f"{rel}: the audit path of index {proof.index} misses the root")
        out[proof.index] = Proven(rel, proof.extra, leaf)
    return out


def _check_records(
    bundle: Bundle, manifest: Manifest, records: dict[int, Proven]
) -> tuple[dict[int, tuple[str, int | None]], list[str]]:
    """Step 6; returns each record's table and ts_utc, and the tables without a CSV copy."""
    tables: dict[int, tuple[str, int | None]] = {}
    for index, proven in sorted(records.items()):
        entry = parse_entry(proven.entry)
        assert entry is not None  # step 5
        if entry.kind != RECORD:
            raise Finding(TAMPERED, f"{proven.rel}: the proven entry is not a RECORD")
        try:
            table, values = decode_record(entry.body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise Finding(TAMPERED, f"{proven.rel}: not the encoding of a record: {exc}") from None
        tables[index] = (table, values.get("ts_utc"))
    seen: set[int] = set()
    unread: list[str] = []  # tables disclosed in Parquet only: their rows cannot be read here
    for table in TABLES:
        if f"records/{table}.parquet" not in manifest.files:
            continue
        if f"records/{table}.csv" not in manifest.files:
            unread.append(table)
            continue
        _check_csv(bundle, f"records/{table}.csv", table, records, tables, seen)
    orphans = [i for i in sorted(records) if i not in seen and tables[i][0] not in unread]
    if orphans:
        raise Finding(TAMPERED, f"the proof of index {orphans[0]} has no disclosed record")
    return tables, [f"records/{t}.parquet" for t in unread]


def _check_csv(
    bundle: Bundle,
    rel: str,
    table: str,
    records: dict[int, Proven],
    tables: dict[int, tuple[str, int | None]],
    seen: set[int],
) -> None:
    try:
        with bundle.text_stream(rel) as fh:
            rows = csv.reader(fh, strict=True)
            header = next(rows, None)
            if header is None or "log_index" not in header or "integrity_hash" not in header:
                raise Finding(MALFORMED, f"{rel} has no log_index and integrity_hash columns")
            at, hat = header.index("log_index"), header.index("integrity_hash")
            for n, row in enumerate(rows, start=1):
                if len(row) != len(header):
                    raise Finding(MALFORMED, f"{rel} row {n} has {len(row)} columns")
                index = decimal(row[at], f"{rel} row {n}: log_index")
                proven = records.get(index)
                if index in seen:
                    raise Finding(TAMPERED, f"{rel}: record {index} appears more than once")
                if proven is None:
                    raise Finding(TAMPERED, f"{rel}: record {index} has no inclusion proof")
                if tables[index][0] != table:
                    raise Finding(TAMPERED, f"{rel}: record {index} is a {tables[index][0]} record")
                if row[hat] != proven.leaf.hex():
                    raise Finding(TAMPERED, f"{rel}: integrity_hash of record {index} is wrong")
                seen.add(index)
    except (csv.Error, UnicodeDecodeError) as exc:
        raise Finding(MALFORMED, f"{rel} is not UTF-8 CSV: {exc}") from None
    except OSError as exc:
        raise Finding(IO, f"cannot read {rel}: {exc.strerror}") from None


def _check_seals(
    manifest: Manifest,
    records: dict[int, Proven],
    seals: dict[int, Proven],
    tables: dict[int, tuple[str, int | None]],
) -> None:
    infos: list[SealInfo] = []
    for index, proven in sorted(seals.items()):
        entry = parse_entry(proven.entry)
        assert entry is not None  # step 5
        if entry.kind != SEAL or entry.salt != bytes(32):
            raise Finding(MALFORMED, f"{proven.rel}: the proven entry is not a SEAL")
        info = decode_seal(entry.body)
        if info.end - 1 != index or info.origin != manifest.origin:
            raise Finding(TAMPERED, f"SEAL at index {index} describes another position or log")
        infos.append(info)
    for index in sorted(records):
        owner = next((s for s in infos if s.first <= index < s.end - 1), None)
        if owner is None:
            raise Finding(TAMPERED, f"record {index} lies in no segment whose SEAL is proven")
        ts = tables[index][1]
        if owner.ts_min is None or owner.ts_max is None or ts is None:
            raise Finding(TAMPERED, f"record {index} or its SEAL has no time")
        if not owner.ts_min <= ts <= owner.ts_max:
            raise Finding(TAMPERED, f"record {index} lies outside its segment's sealed time range")


# -- the integrity_hash column of a sealed Parquet file (spec §8), without a Parquet library


PARQUET_MAGIC = b"PAR1"
FOOTER_LIMIT = 64 * MIB
THRIFT_DEPTH = 16
HASH_COLUMN = "integrity_hash"


class _Compact:
    """Thrift's compact protocol, as Parquet's footer and page headers use it: a struct is
    read into {field id: value}; bytes that cannot be one raise ValueError."""

    def __init__(self, data: bytes, pos: int = 0) -> None:
        self.data, self.pos = data, pos

    def _byte(self) -> int:
        if self.pos >= len(self.data):
            raise ValueError("ends inside a value")
        self.pos += 1
        return self.data[self.pos - 1]

    def _varint(self) -> int:
        out = 0
        for shift in range(0, 70, 7):
            b = self._byte()
            out |= (b & 0x7F) << shift
            if not b & 0x80:
                return out
        raise ValueError("a varint longer than 10 bytes")

    def _zigzag(self) -> int:
        n = self._varint()
        return (n >> 1) ^ -(n & 1)

    def _take(self, n: int) -> bytes:
        if n > len(self.data) - self.pos:
            raise ValueError("a length past the end")
        self.pos += n
        return self.data[self.pos - n : self.pos]

    def _value(self, kind: int, depth: int, in_list: bool = False) -> Any:
        if kind in (1, 2):  # a bool: in a field header its value, in a list a byte
            return self._byte() == 1 if in_list else kind == 1
        if kind == 3:
            return self._byte()
        if kind in (4, 5, 6):
            return self._zigzag()
        if kind == 7:
            return self._take(8)
        if kind == 8:
            return self._take(self._varint())
        if kind in (9, 10):
            head = self._byte()
            size, elem = head >> 4, head & 0x0F
            if size == 15:
                size = self._varint()
            if size > len(self.data) - self.pos:
                raise ValueError("a list longer than what is left")
            return [self._value(elem, depth + 1, True) for _ in range(size)]
        if kind == 11:
            size = self._varint()
            if size > len(self.data) - self.pos:
                raise ValueError("a map longer than what is left")
            if not size:
                return {}
            kinds = self._byte()
            return {
                self._value(kinds >> 4, depth + 1, True): self._value(kinds & 0x0F, depth + 1, True)
                for _ in range(size)
            }
        if kind == 12:
            return self.struct(depth + 1)
        raise ValueError(f"unknown thrift type {kind}")

    def struct(self, depth: int = 0) -> dict[int, Any]:
        if depth > THRIFT_DEPTH:
            raise ValueError("nested too deeply")
        out: dict[int, Any] = {}
        last = 0
        while True:
            head = self._byte()
            if head == 0:
                return out
            delta, kind = head >> 4, head & 0x0F
            fid = last + delta if delta else self._zigzag()
            out[fid] = self._value(kind, depth)
            last = fid


def _thrift(data: bytes, pos: int, what: str) -> tuple[dict[int, Any], int]:
    reader = _Compact(data, pos)
    try:
        return reader.struct(), reader.pos
    except (ValueError, TypeError, RecursionError) as exc:
        raise Finding(MALFORMED, f"{what} is not readable Parquet ({exc})") from None


def parquet_hashes(path: Path, what: str) -> bytes:
    """The integrity_hash values of a sealed table file, back to back in row order.

    acdkit writes that column as plain, uncompressed pages (format §8), which this reads; a
    file re-encoded with a codec or a dictionary for it is INCOMPLETE here (`acdkit verify`
    reads any Parquet), and a file that is not Parquet at all is MALFORMED.
    """
    try:
        with path.open("rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            if size < 12:
                raise Finding(MALFORMED, f"{what} is not readable Parquet (too short)")
            head = fh.read(4)
            fh.seek(size - 8)
            tail = fh.read(8)
            footer_len = int.from_bytes(tail[:4], "little")
            if head != PARQUET_MAGIC or tail[4:] != PARQUET_MAGIC or footer_len > size - 12:
                raise Finding(MALFORMED, f"{what} is not readable Parquet (no PAR1 frame)")
            if footer_len > FOOTER_LIMIT:
                raise Finding(MALFORMED, f"{what} has a footer over {FOOTER_LIMIT:,} bytes")
            fh.seek(size - 8 - footer_len)
            meta, _end = _thrift(fh.read(footer_len), 0, what)
            return b"".join(_column_pages(fh, size, meta, what))
    except OSError as exc:
        raise Finding(IO, f"cannot read {what}: {exc.strerror}") from None


def _field(obj: Any, fid: int, kind: type, what: str) -> Any:
    """Field ``fid`` of a decoded thrift struct, of the type Parquet gives it."""
    value = obj.get(fid) if isinstance(obj, dict) else None
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise Finding(MALFORMED, f"{what} is not readable Parquet (damaged metadata)")
    return value


def _hash_column(meta: dict[int, Any], what: str) -> int:
    """The position of integrity_hash among the leaf columns, checked as sealed."""
    elements = _field(meta, 2, list, what)[1:]
    leaves = [e for e in elements if not (isinstance(e, dict) and e.get(5))]
    for i, elem in enumerate(leaves):
        if isinstance(elem, dict) and elem.get(4) == HASH_COLUMN.encode():
            # FIXED_LEN_BYTE_ARRAY (7) of 32 bytes; REQUIRED (0) as acdkit writes it
            if (elem.get(1), elem.get(2)) != (7, 32):
                break
            if elem.get(3) != 0:
                raise Finding(
                    INCOMPLETE,
                    f"{what}: its {HASH_COLUMN} column was rewritten as nullable, which this "
                    "verifier does not read; run `acdkit verify`",
                )
            return i
    raise Finding(MALFORMED, f"{what} does not hold the sealed columns (no {HASH_COLUMN})")


def _column_pages(fh: Any, size: int, meta: dict[int, Any], what: str) -> list[bytes]:
    column, out = _hash_column(meta, what), []
    for group in _field(meta, 4, list, what):
        columns = _field(group, 1, list, what)
        if column >= len(columns):
            raise Finding(MALFORMED, f"{what}: a row group lacks the {HASH_COLUMN} column")
        chunk = _field(columns[column], 3, dict, what)
        codec, count = _field(chunk, 4, int, what), _field(chunk, 5, int, what)
        start, length = _field(chunk, 9, int, what), _field(chunk, 7, int, what)
        if _field(chunk, 3, list, what) != [HASH_COLUMN.encode()]:
            raise Finding(MALFORMED, f"{what}: a row group names another column")
        if codec != 0 or 11 in chunk:
            raise Finding(
                INCOMPLETE,
                f"{what}: its {HASH_COLUMN} column is compressed or dictionary-encoded (a "
                "re-encoded file), which this verifier does not read; run `acdkit verify`",
            )
        if length < 0 or count < 0 or not 0 <= start <= size - length:
            raise Finding(MALFORMED, f"{what}: column metadata points outside the file")
        fh.seek(start)
        out.append(_plain_values(fh.read(length), count, what))
    return out


def _plain_values(data: bytes, count: int, what: str) -> bytes:
    """The values of one column chunk's data pages: PLAIN, no levels (a required column)."""
    out, pos, got = [], 0, 0
    while got < count:
        header, pos = _thrift(data, pos, what)
        kind, stored = _field(header, 1, int, what), _field(header, 3, int, what)
        if not 0 <= stored <= len(data) - pos or _field(header, 2, int, what) != stored:
            raise Finding(MALFORMED, f"{what}: a page runs past its column chunk")
        page = data[pos : pos + stored]
        pos += stored
        if kind == 0:
            n, encoding = (_field(header.get(5), f, int, what) for f in (1, 2))
        elif kind == 3:
            v2 = _field(header, 8, dict, what)
            n, encoding = _field(v2, 1, int, what), _field(v2, 4, int, what)
            if v2.get(2) or v2.get(5) or v2.get(6):
                raise Finding(MALFORMED, f"{what}: a {HASH_COLUMN} page holds nulls or levels")
        else:
            raise Finding(INCOMPLETE, f"{what}: a page of kind {kind} is not read here")
        if encoding != 0:
            raise Finding(INCOMPLETE, f"{what}: a page in encoding {encoding} is not read here")
        if n < 0 or len(page) != 32 * n:
            raise Finding(MALFORMED, f"{what}: a page does not hold {n} plain 32-byte values")
        out.append(page)
        got += n
    if got != count:
        raise Finding(MALFORMED, f"{what}: its pages hold {got} values, its metadata {count}")
    return b"".join(out)


# -- stores (spec §8): the log on disk, read without Parquet or CMS libraries ---------------

STORE_META = "acdkit-store.json"
STORE_FORMAT = "acdkit-store/1"
ENTRIES_FILE = "entries.bin"
PRUNED_FILE = "pruned.range"
RECORD_FILES = ("net.parquet", "dns.parquet", "edr.parquet", "segment.key")
MAX_ENTRY = 4 * MIB
MAX_ENTRIES_FILE = 256 * MIB
POLICY_LIMIT = 4 * MIB
TMP = ".tmp-"
NS = 1_000_000_000


def _read(path: Path, limit: int, what: str) -> bytes:
    try:
        with path.open("rb") as fh:
            data = fh.read(limit + 1)
    except FileNotFoundError:
        raise Finding(TAMPERED, f"{what} is missing") from None
    except OSError as exc:
        raise Finding(IO, f"cannot read {what}: {exc.strerror}") from None
    if len(data) > limit:
        raise Finding(MALFORMED, f"{what} is larger than {limit:,} bytes")
    return data


def _listing(directory: Path, suffix: str = "") -> list[Path]:
    """Entries of a store directory by name, temporaries (.tmp-) left out; [] if absent."""
    if not directory.is_dir():
        return []
    try:
        names = sorted(p.name for p in directory.iterdir())
    except OSError as exc:
        raise Finding(IO, f"cannot list {directory.name}: {exc.strerror}") from None
    return [
        directory / n
        for n in names
        if not n.startswith(TMP) and (not suffix or (n.endswith(suffix) and n != suffix))
    ]


class Frontier:
    """The roots of the perfect subtrees covering [0, size): enough to extend and to root."""

    def __init__(self) -> None:
        self.size = 0
        self.nodes: list[tuple[int, bytes]] = []  # (height, root), largest first

    def add(self, height: int, node: bytes) -> None:
        """Append a perfect subtree of 2**height leaves that starts at ``size``."""
        if self.size % (1 << height):
            raise ValueError("a subtree that does not start at a multiple of its width")
        self.size += 1 << height
        while self.nodes and self.nodes[-1][0] == height:
            node = node_hash(self.nodes.pop()[1], node)
            height += 1
        self.nodes.append((height, node))

    def root(self) -> bytes:
        if not self.nodes:
            return sha256(b"")
        acc = self.nodes[-1][1]
        for _h, node in reversed(self.nodes[:-1]):
            acc = node_hash(node, acc)
        return acc


def cover(first: int, count: int) -> list[int]:
    """Heights of the aligned perfect subtrees covering [first, first + count), in order
    (spec §17.3): at each position the widest that starts there and fits."""
    out, pos, end = [], first, first + count
    while pos < end:
        height = 0
        while pos % (2 << height) == 0 and pos + (2 << height) <= end:
            height += 1
        out.append(height)
        pos += 1 << height
    return out


@dataclass
class Segment:
    path: Path
    info: SealInfo
    seal: bytes
    pruned: bool
    entries: list[bytes] = field(default_factory=list)
    key: Vkey | None = None


@dataclass
class Log:
    """What checks 1-4 established of a store, for the later checks."""

    origin: str
    chain: KeyChain
    checkpoints: dict[int, tuple[bytes, Checkpoint]]
    sealed: list[Segment]
    interrupted: Segment | None
    size: int

    def entries(self) -> list[tuple[int, bytes, int]]:
        """(leaf index, entry bytes, SEAL time) of every sealed log entry, in leaf order."""
        return [
            (s.info.first + s.info.records + i, data, s.info.sealed_at)
            for s in self.sealed
            for i, data in enumerate(s.entries)
        ]


def verify_store(root: str, options: Options | None = None) -> Report:
    """Verify an evidence store offline (spec §8 and §17).

    1. acdkit-store.json is of format acdkit-store/1 and names the origin; the log's first
       sealer key is keys/sealer.vkey (else the pinned --key).
    2. Every checkpoint parses strictly and names the origin; no two differ for one size.
    3. The segments tile the log from 0, numbered 0, 1, …; each SEAL carries the hash of the
       checkpoint before it and the current sealer key's ID; each checkpoint is signed by
       that key; KEY entries rotate and revoke keys (§7.1); no checkpoint closes nothing.
    4. Each segment's leaves (the integrity_hash column of its table files in net, dns, edr
       order, or the kept hashes of a pruned segment), its log entries and its SEAL give
       the root of the checkpoint that closes it.  Record fields are NOT re-encoded here.
    5. Nothing staged or half sealed (INCOMPLETE); every ledger entry is named by a SEAL.
    6. The log is not smaller than --expect-min-size.
    7. The trust policies verify with the root key, run 1, 2, … and name the log; the
       newest lists every segment's key with a window covering its SEAL time (± grace), and
       seals came as often as it requires (POLICY).
    8. Witness cosignatures (--witness, else the policy's): as §8.1.3.
    9. Anchors are not checked here (no CMS): INCOMPLETE when the store has any.
    10. DECISION entries: parsed, signed by the custodian key they name, a trusted one.
    11. Something outside the store commits to the log (--expect-min-size, a witness
        quorum), else INCOMPLETE (unless --local-only).
    12. CLOCK entries recompute from their samples.
    13. CUSTODY entries: as §16.3 for a store.
    14. Pruning (§17.4): PRUNE entries name a policy of the history by its SHA-256 and a
        bound it declares; records are pruned no further than a PRUNE entry and the newest
        policy allow; with a root that is not pinned, pruning is INCOMPLETE.
    """
    opts = options or Options()
    report, base, step = Report(root), Path(root), "1"
    log: Log | None = None
    history: list[tuple[Policy, bytes]] = []
    root_key: Vkey | None = None
    try:
        # 1
        origin, first = _store_meta(base, opts.key, report)
        # 2, 3
        step = "2"
        checkpoints = _store_checkpoints(base, origin)
        report.ok("2", f"{len(checkpoints)} checkpoints parse strictly; no two share a size")
        step = "3"
        log = _store_chain(base, origin, first, checkpoints)
        if opts.key is not None and opts.key not in log.chain.keys:
            raise Finding(TAMPERED, f"the pinned key {opts.key.key_id.hex()} is no key of this log")
        hops = len(log.chain.keys) - 1
        report.ok(
            "3",
            f"{len(log.sealed)} segments form an unbroken checkpoint chain"
            + (f" ({hops} key rotations)" if hops else ""),
        )
        # 4
        step = "4"
        gone = _store_rebuild(log, report)
        report.ok(
            "4",
            f"{log.size} leaves give the signed roots"
            + (f" ({gone} pruned segments by their kept hashes)" if gone else ""),
        )
        # 7
        step = "7"
        history, root_key = _store_policies(base, origin, opts.root)
        _store_policy_rules(log, history, root_key, opts.root is not None, report)
        # 15
        step = "15"
        pruning = _store_pruning(log, history, opts, report)
    except Finding as exc:
        report.fail(step, exc)
        pruning = ""
    if log is None:
        report.coverage = f"verification stopped at check {step}"
        return report
    _store_rest(base, log, history, root_key, opts, report, pruning)
    return report


def _store_meta(base: Path, pinned: Vkey | None, report: Report) -> tuple[str, Vkey]:
    try:
        doc = json.loads(_read(base / STORE_META, MIB, STORE_META).decode("utf-8"))
    except (ValueError, RecursionError):
        raise Finding(MALFORMED, f"{STORE_META} is not JSON") from None
    if not isinstance(doc, dict) or doc.get("format") != STORE_FORMAT:
        raise Finding(USAGE, f"{STORE_META} is not of format {STORE_FORMAT}")
    if not isinstance(doc.get("origin"), str) or not isinstance(doc.get("log_id"), str):
        raise Finding(MALFORMED, f"{STORE_META} has no origin or log_id")
    vkey_path = base / "keys" / "sealer.vkey"
    if vkey_path.is_file():
        raw = _read(vkey_path, VKEY_LIMIT, "keys/sealer.vkey")
        first = parse_vkey(raw.decode("utf-8", "replace"))
    elif pinned is not None:
        report.warn("1", "the store's keys/sealer.vkey is missing; using --key")
        first = pinned
    else:
        raise Finding(MALFORMED, "the store's keys/sealer.vkey is missing; pass --key")
    report.ok("1", f"store {doc['origin']} with first sealer key {first.key_id.hex()}")
    return doc["origin"], first


def _store_checkpoints(base: Path, origin: str) -> dict[int, tuple[bytes, Checkpoint]]:
    out: dict[int, tuple[bytes, Checkpoint]] = {}
    for path in _listing(base / "checkpoints", ".checkpoint"):
        if not path.is_file():
            raise Finding(MALFORMED, f"checkpoint {path.name} is not a regular file")
        data = _read(path, NOTE_LIMIT, f"checkpoint {path.name}")
        try:
            cp = parse_checkpoint(parse_note(data, NOTE_LIMIT, f"checkpoint {path.name}"))
        except Finding as exc:
            if _stripped(data):
                raise Finding(
                    TAMPERED, f"checkpoint {path.name} carries no signature: they were removed"
                ) from None
            raise Finding(exc.code, f"checkpoint {path.name}: {exc.message}") from None
        if cp.origin != origin:
            raise Finding(TAMPERED, f"checkpoint {path.name} names another origin")
        if cp.size in out and out[cp.size][0] != data:
            raise Finding(TAMPERED, f"two different checkpoints for size {cp.size} (fork)")
        out[cp.size] = (data, cp)
    return out


def _stripped(data: bytes) -> bool:
    """A checkpoint's text with nothing after it: a seal downgraded (spec §7)."""
    try:
        text = data.rstrip(b"\n").decode("utf-8") + "\n"
        parse_checkpoint(Note(text, ()))
    except (UnicodeDecodeError, Finding):
        return False
    return not _CONTROL.search(text)


def _store_segments(base: Path) -> list[Segment]:
    out = []
    for path in _listing(base / "segments"):
        if not path.is_dir():
            continue
        if not (path / "seal.entry").exists():
            raise Finding(TAMPERED, f"segment {path.name} has no seal.entry")
        data = _read(path / "seal.entry", MIB, f"segment {path.name}: seal.entry")
        entry = parse_entry(data)
        if entry is None or entry.kind != SEAL or entry.salt != bytes(32):
            raise Finding(MALFORMED, f"segment {path.name}: seal.entry is no SEAL entry")
        try:
            info = decode_seal(entry.body)
        except Finding as exc:
            raise Finding(exc.code, f"segment {path.name}: {exc.message}") from None
        out.append(Segment(path, info, data, (path / PRUNED_FILE).exists()))
    return sorted(out, key=lambda s: s.info.first)


def _segment_entries(seg: Segment) -> list[bytes]:
    """The log entries of a segment's entries.bin, as many as its SEAL declares."""
    path, count, name = seg.path / ENTRIES_FILE, seg.info.entries, seg.path.name
    if count == 0:
        if path.exists():
            raise Finding(TAMPERED, f"segment {name}: {ENTRIES_FILE} is not in its SEAL")
        return []
    data = _read(path, MAX_ENTRIES_FILE, f"segment {name}: {ENTRIES_FILE}")
    out, pos = [], 0
    while pos < len(data):
        size = int.from_bytes(data[pos : pos + 4], "big")
        if len(data) - pos < 4 or size > MAX_ENTRY or pos + 4 + size > len(data):
            raise Finding(MALFORMED, f"segment {name}: {ENTRIES_FILE} holds a bad length")
        raw = data[pos + 4 : pos + 4 + size]
        entry = parse_entry(raw)
        if entry is None or entry.kind not in LOG_ENTRY_TYPES or entry.salt != bytes(32):
            raise Finding(MALFORMED, f"segment {name}: {ENTRIES_FILE} holds no valid log entry")
        out.append(raw)
        pos += 4 + size
    if len(out) != count:
        raise Finding(TAMPERED, f"segment {name}: {len(out)} log entries, its SEAL says {count}")
    return out


def _store_chain(
    base: Path, origin: str, first: Vkey, checkpoints: dict[int, tuple[bytes, Checkpoint]]
) -> Log:
    """Check 3."""
    segments = _store_segments(base)
    chain = KeyChain(origin, [first])
    start, prev, sealed = 0, bytes(32), []
    interrupted = None
    for no, seg in enumerate(segments):
        info, name = seg.info, seg.path.name
        if info.first != start or info.number != no:
            raise Finding(
                TAMPERED,
                f"segment {name} starts at {info.first} as number {info.number}; expected "
                f"{start} as number {no} (a segment is missing or was inserted)",
            )
        if info.end != info.first + info.records + info.entries + 1:
            raise Finding(TAMPERED, f"segment {name}: SEAL range and counts disagree")
        if info.origin != origin:
            raise Finding(TAMPERED, f"segment {name}: its SEAL names another log")
        if info.key_id != chain.current.key_id:
            raise Finding(
                TAMPERED,
                f"segment {name} is sealed by key {info.key_id.hex()}, not by the current "
                f"key {chain.current.key_id.hex()}",
            )
        if info.prev != prev:
            raise Finding(
                TAMPERED, f"segment {name}: its SEAL does not carry the previous checkpoint"
            )
        if info.end not in checkpoints:
            if no == len(segments) - 1:
                interrupted = seg
                break
            raise Finding(TAMPERED, f"checkpoint {info.end} (closing {name}) is missing")
        data = checkpoints[info.end][0]
        check_signed(
            parse_note(data, NOTE_LIMIT, "checkpoint"), chain.current, f"checkpoint {info.end}"
        )
        seg.key = chain.current
        seg.entries = _segment_entries(seg)
        for i, raw in enumerate(seg.entries):
            entry = parse_entry(raw)
            assert entry is not None
            if entry.kind == KEY:
                where = f"KEY entry at index {info.first + info.records + i}"
                chain.apply(where, decode_key_event(entry.body, origin))
        prev, start = sha256(data), info.end
        sealed.append(seg)
    ends = {s.info.end for s in segments}
    stray = sorted(set(checkpoints) - ends)
    if stray:
        raise Finding(TAMPERED, f"checkpoint {stray[0]} closes no segment")
    return Log(origin, chain, checkpoints, sealed, interrupted, start)


def _store_rebuild(log: Log, report: Report) -> int:
    """Check 4; returns how many segments are pruned."""
    tree, gone = Frontier(), 0
    for seg in log.sealed:
        info = seg.info
        if seg.pruned:
            gone += 1
            _pruned_leaves(seg, tree, report)
        else:
            _record_leaves(seg, tree, report)
        for raw in seg.entries:
            tree.add(0, leaf_hash(raw))
        tree.add(0, leaf_hash(seg.seal))
        if tree.root() != log.checkpoints[info.end][1].root:
            raise Finding(TAMPERED, f"tree root at size {info.end} does not match its checkpoint")
    return gone


def _record_leaves(seg: Segment, tree: Frontier, report: Report) -> None:
    info, name = seg.info, seg.path.name
    key = seg.path / "segment.key"
    if not key.is_file():
        raise Finding(TAMPERED, f"segment {name}: segment.key was deleted")
    if len(_read(key, 64, f"segment {name}: segment.key")) != 32:
        raise Finding(MALFORMED, f"segment {name}: segment.key is not 32 bytes")
    total = 0
    for table in TABLES:
        path, declared = seg.path / f"{table}.parquet", info.tables.get(table)
        if declared is None:
            if path.exists():
                raise Finding(TAMPERED, f"segment {name}: {table}.parquet is not in its SEAL")
            continue
        if not path.is_file():
            raise Finding(TAMPERED, f"segment {name}: {table}.parquet is missing")
        hashes = parquet_hashes(path, f"{name}/{table}.parquet")
        if len(hashes) != 32 * declared:
            raise Finding(
                TAMPERED,
                f"segment {name}: {table}.parquet holds {len(hashes) // 32} records, its SEAL "
                f"declares {declared}",
            )
        for i in range(0, len(hashes), 32):
            tree.add(0, hashes[i : i + 32])
        total += declared
        if _file_sha256(path, f"{name}/{table}.parquet") != info.files[table]:
            # acdkit accepts a file re-encoded with the same records (it re-encodes them);
            # without doing so this verifier cannot tell that from an edited file
            report.fail(
                "4",
                Finding(
                    INCOMPLETE,
                    f"segment {name}: {table}.parquet is not the file its SEAL names (another "
                    "SHA-256: re-encoded or edited); its records are not compared here, run "
                    "`acdkit verify`",
                ),
            )
    if total != info.records:
        raise Finding(TAMPERED, f"segment {name}: table counts and record count disagree")


def _file_sha256(path: Path, what: str) -> bytes:
    h = hashlib.sha256()
    try:
        with path.open("rb") as fh:
            while chunk := fh.read(CHUNK):
                h.update(chunk)
    except OSError as exc:
        raise Finding(IO, f"cannot read {what}: {exc.strerror}") from None
    return h.digest()


def _pruned_leaves(seg: Segment, tree: Frontier, report: Report) -> None:
    """A pruned segment (spec §17.3): the kept subtree roots stand for its records."""
    info, name = seg.info, seg.path.name
    heights = cover(info.first, info.records)
    path = seg.path / PRUNED_FILE
    if not path.is_file():
        raise Finding(TAMPERED, f"segment {name}: {PRUNED_FILE} is not a regular file")
    data = _read(path, MIB, f"segment {name}: {PRUNED_FILE}")
    if len(data) != 32 * len(heights):
        raise Finding(
            TAMPERED,
            f"segment {name}: {PRUNED_FILE} holds {len(data)} bytes, not the "
            f"{len(heights)} hashes of 32 its {info.records} pruned records need",
        )
    for i, height in enumerate(heights):
        tree.add(height, data[32 * i : 32 * i + 32])
    left = [n for n in RECORD_FILES if (seg.path / n).exists()]
    if left:
        report.warn("4", f"segment {name} is pruned but still holds {', '.join(left)} (not read)")


def _store_policies(
    base: Path, origin: str, pinned: Vkey | None
) -> tuple[list[tuple[Policy, bytes]], Vkey | None]:
    """Check 7, first part: every policy of the history, in serial order."""
    files = _listing(base / "policy", ".policy.note")
    if not files:
        if pinned is not None:
            raise Finding(TAMPERED, "a root key is pinned but the store holds no trust policy")
        return [], None
    root = pinned
    if root is None:
        path = base / "keys" / "root.vkey"
        if not path.is_file():
            raise Finding(MALFORMED, "the store has a trust policy but no keys/root.vkey")
        root = parse_vkey(_read(path, VKEY_LIMIT, "keys/root.vkey").decode("utf-8", "replace"))
    history: list[tuple[Policy, bytes]] = []
    for path in files:
        rel = f"policy/{path.name}"
        data = _read(path, POLICY_LIMIT, rel)
        note = parse_note(data, NOTE_LIMIT, rel)
        try:
            pol = parse_policy(note.text)
        except Finding as exc:
            raise Finding(exc.code, f"{rel}: {exc.message}") from None
        check_signed(note, root, rel)
        if path.name != f"{pol.serial:020d}.policy.note":
            raise Finding(TAMPERED, f"{rel} holds serial {pol.serial}")
        if pol.serial != len(history) + 1:
            raise Finding(TAMPERED, f"trust policy serials jump to {pol.serial}")
        if pol.origin != origin:
            raise Finding(TAMPERED, f"{rel} is the policy of another log")
        history.append((pol, data))
    return history, root


def _store_policy_rules(
    log: Log, history: list[tuple[Policy, bytes]], root: Vkey | None, pinned: bool, report: Report
) -> None:
    """Check 7, second part: the newest policy authorizes every segment's key at its time."""
    if not history or root is None:
        report.ok("7", "no trust policy: sealer keys are judged by the log's own key chain")
        return
    pol, data = history[-1]
    grace = pol.grace * NS
    for seg in log.sealed:
        window = pol.windows.get(seg.key) if seg.key is not None else None
        name = seg.path.name
        if window is None:
            raise Finding(TAMPERED, f"segment {name}: its key is not in trust policy {pol.serial}")
        start, end = window
        at = seg.info.sealed_at
        if (start is not None and at < start * NS - grace) or (
            end is not None and at > end * NS + grace
        ):
            raise Finding(TAMPERED, f"segment {name}: sealed outside its key's policy window")
    times = [s.info.sealed_at for s in log.sealed]
    if pol.seal_interval is not None and len(times) > 1:
        gap = max(times[i] - times[i - 1] for i in range(1, len(times)))
        if gap > (pol.seal_interval + pol.grace) * NS:
            raise Finding(
                POLICY,
                f"no seal for {gap // NS:,}s; trust policy {pol.serial} requires one every "
                f"{pol.seal_interval}s",
            )
    how = "pinned with --root" if pinned else "the store's own keys/root.vkey, NOT pinned"
    report.ok(
        "7",
        f"trust policy {pol.serial} (sha256 {sha256(data).hex()[:16]}…) signed by root key "
        f"{root.key_id.hex()} ({how}) authorizes the sealer key of every segment",
    )


def decode_prune(body: bytes) -> tuple[int, int, bytes, int]:
    """A PRUNE body (spec §17.2): (bound, policy serial, policy SHA-256, time), strictly."""
    if len(body) > 256:
        raise Finding(MALFORMED, "PRUNE body is longer than its four fields")
    try:
        fields = {fid: (kind, value) for fid, kind, value in parse_tlv(body)}
    except ValueError as exc:
        raise Finding(MALFORMED, f"PRUNE body: {exc}") from None
    want = {1: (T_U64, 8), 2: (T_U64, 8), 3: (T_BYTES, 32), 4: (T_I64, 8)}
    if set(fields) != set(want) or any(
        (kind, len(value)) != want[fid] for fid, (kind, value) in fields.items()
    ):
        raise Finding(MALFORMED, "PRUNE body is not exactly its fields 1-4 of their types")
    bound, serial = (int.from_bytes(fields[f][1], "big") for f in (1, 2))
    if not (0 < bound < 1 << 63 and 0 < serial < 1 << 63):
        raise Finding(MALFORMED, "PRUNE bound or policy serial is 0 or not below 2^63")
    return bound, serial, fields[3][1], int.from_bytes(fields[4][1], "big", signed=True)


def _store_pruning(
    log: Log, history: list[tuple[Policy, bytes]], opts: Options, report: Report
) -> str:
    """Check 14 (spec §17.4); returns the coverage clause when something is pruned."""
    events = []
    for index, raw, _t in log.entries():
        entry = parse_entry(raw)
        if entry is not None and entry.kind == PRUNE:
            try:
                events.append((index, decode_prune(entry.body)))
            except Finding as exc:
                raise Finding(exc.code, f"PRUNE entry at index {index}: {exc.message}") from None
    declared = {pol.serial: (sha256(data), pol.prune_below) for pol, data in history}
    for index, (bound, serial, digest, _at) in events:
        where = f"PRUNE entry at index {index:,}"
        if bound > index:
            raise Finding(TAMPERED, f"{where} allows pruning past itself")
        if serial not in declared:
            raise Finding(
                TAMPERED, f"{where} names trust policy {serial}, which is not in the store"
            )
        if declared[serial][0] != digest:
            raise Finding(TAMPERED, f"{where}: trust policy {serial} was replaced")
        allowed = declared[serial][1]
        if allowed is None or bound > allowed:
            raise Finding(TAMPERED, f"{where} prunes more than trust policy {serial} declares")
    pruned = [s for s in log.sealed if s.pruned]
    if not pruned:
        if events:
            report.ok("15", f"pruning logged by {len(events)} PRUNE entries; no segment pruned")
        return ""
    extent = max(s.info.end for s in pruned)
    authority = next(((i, e) for i, e in events if e[0] >= extent), None)
    if authority is None:
        raise Finding(
            TAMPERED,
            f"the records of {len(pruned)} segments below {extent:,} were removed without a "
            "sealed PRUNE entry that declares it",
        )
    newest = history[-1][0].prune_below if history else None
    if newest is None or extent > newest:
        raise Finding(
            TAMPERED, f"records are pruned below {extent:,}, more than the newest policy allows"
        )
    index, (bound, serial, digest, _at) = authority
    records = sum(s.info.records for s in pruned)
    sentence = (
        f"pruned below {extent:,} per policy {serial} (sha256 {digest.hex()[:16]}…): "
        f"{records:,} records of {len(pruned)} segments removed, their hashes kept"
    )
    report.facts["pruning"] = {
        "pruned_below": extent,
        "segments": len(pruned),
        "records": records,
        "policy_serial": serial,
        "policy_sha256": digest.hex(),
        "logged_at_index": index,
        "declared_below": newest,
    }
    report.ok("15", f"{sentence}; logged at index {index:,}")
    if opts.root is None:
        message = (
            f"the records below {extent:,} were pruned per a trust policy whose root is not "
            "pinned (--root): whoever can write the store could have declared it"
        )
        if opts.allow_incomplete:
            report.warn("15", message)
        else:
            report.fail("15", Finding(INCOMPLETE, message))
    return sentence


def _open(report: Report) -> bool:
    return report.code in (VERIFIED, INCOMPLETE)


def _store_rest(
    base: Path,
    log: Log,
    history: list[tuple[Policy, bytes]],
    root: Vkey | None,
    opts: Options,
    report: Report,
    pruning: str,
) -> None:
    """Checks 5, 6, 8-13, the coverage sentence and the facts."""
    # 5
    _store_staging(base, log, opts, report)
    # 6
    if opts.expect_min_size is not None:
        if log.size < opts.expect_min_size:
            report.fail(
                "6", Finding(TAMPERED, f"the log ends at {log.size:,}, below the expected size")
            )
        else:
            report.ok("6", f"the log is not smaller than {opts.expect_min_size:,}")
    policy = history[-1][0] if history else None
    # 8
    witnessed = _store_witnesses(base, log, policy, opts, report) if _open(report) else 0
    # 9
    if _open(report) and log.sealed:
        anchors = sum(raw[5] == ANCHOR for _i, raw, _t in log.entries())
        tokens = len(_listing(base / "anchors", ".tsr"))
        if anchors or tokens:
            message = (
                f"anchors not verified: {anchors} ANCHOR entries and {tokens} RFC 3161 tokens "
                "(their tokens need `acdkit verify --tsa-root`)"
            )
            if opts.allow_incomplete:
                report.warn("9", message)
            else:
                report.fail("9", Finding(INCOMPLETE, message))
    # 10, 13: custodian keys
    trust, source, grace, pinned = _store_custodians(base, policy, opts.root is not None, opts)
    decided = handled = 0
    if _open(report) and log.sealed:
        decided = _store_decisions(log, trust, source, grace, report)
        if decided:
            _said(report, "10", pinned, f"{decided} decisions", opts)
    # 11
    if report.code == VERIFIED and log.size and not (opts.expect_min_size or witnessed):
        message = (
            "nothing outside this store commits to the log (no --expect-min-size or witness "
            "quorum): a rollback of its newest segments cannot be excluded"
        )
        if opts.local_only or opts.allow_incomplete:
            report.warn("6", message)
        else:
            report.fail("6", Finding(INCOMPLETE, message))
    if _open(report) and log.sealed:
        # 12
        clocks = 0
        for index, raw, _t in log.entries():
            entry = parse_entry(raw)
            if entry is not None and entry.kind == CLOCK:
                try:
                    check_clock(decode_clock(entry.body))
                except Finding as exc:
                    report.fail("12", Finding(exc.code, f"CLOCK leaf {index}: {exc.message}"))
                    break
                clocks += 1
        if clocks and _open(report):
            report.ok("12", f"{clocks} CLOCK entries recompute from their samples")
        # 13
        handled = _store_custody(log, trust, source, grace, report)
        if handled:
            _said(report, "13", pinned, f"{handled} custody entries", opts)
    _store_coverage(log, opts, report, pruning, decided, handled)


def _staged_records(base: Path, report: Report) -> int:
    """Records ingested and not sealed, by the staged inputs' ledger entries (bookkeeping:
    one that cannot be read is reported and not counted, as acdkit does)."""
    total = 0
    for path in (p for p in _listing(base / "staging") if p.is_dir()):
        try:
            doc = json.loads(_read(path / "ledger.json", MIB, "ledger.json").decode("utf-8"))
            total += sum(int(n) for n in doc["records"].values())
        except (Finding, ValueError, TypeError, KeyError, AttributeError, RecursionError):
            report.warn("5", f"staging/{path.name}: its ledger.json cannot be read")
    return total


def _store_staging(base: Path, log: Log, opts: Options, report: Report) -> None:
    staged = _staged_records(base, report)
    if report.code == VERIFIED:
        named = {src for s in log.sealed for src in s.info.sources}
        lost = [p.stem for p in _listing(base / "ledger", ".json") if p.stem not in named]
        if lost:
            report.fail(
                "5",
                Finding(
                    TAMPERED,
                    f"the source ledger records {len(lost)} file(s) as sealed that no sealed "
                    "segment lists: segments were removed and the log rolled back",
                ),
            )
            return
    if staged or (log.interrupted is not None and report.code == VERIFIED):
        message = f"{staged} records ingested but not sealed yet" + (
            "; the newest segment has no checkpoint (an interrupted seal, or its checkpoint "
            "deleted: `acdkit verify` tells them apart)"
            if log.interrupted is not None
            else ""
        )
        if opts.allow_incomplete:
            report.warn("5", message)
        else:
            report.fail("5", Finding(INCOMPLETE, message))
    else:
        report.ok("5", "no unsealed records")


def _store_witnesses(
    base: Path, log: Log, policy: Policy | None, opts: Options, report: Report
) -> int:
    """Check 8 (spec §8.1.3); returns the largest size the quorum witnessed."""
    files = _listing(base / "cosignatures", ".cosig")
    witnesses, quorum = list(dict.fromkeys(opts.witnesses)), opts.quorum
    if not witnesses and policy is not None and policy.witnesses:
        witnesses, quorum = list(dict.fromkeys(policy.witnesses)), policy.quorum
    if not witnesses:
        if files:
            report.warn("8", f"{len(files)} cosigned checkpoints not checked: no witness given")
        return 0
    quorum = 1 if quorum is None else quorum
    counts: dict[int, set[Vkey]] = {}
    try:
        for path in files:
            rel = f"cosignatures/{path.name}"
            note = parse_note(_read(path, COSIGNATURE_LIMIT, rel), COSIGNATURE_LIMIT, rel)
            cp = parse_checkpoint(note)
            if cp.origin != log.origin:
                report.warn("8", f"{rel} is a checkpoint of another log")
                continue
            signers = [w for w in witnesses if cosigned_by(note, w) is not None]
            if not signers:
                continue
            if cp.size > log.size:
                raise Finding(TAMPERED, f"{rel}: a witness cosigned {cp.size:,}, beyond the log")
            mine = log.checkpoints.get(cp.size)
            if mine is None or parse_note(mine[0], NOTE_LIMIT, "checkpoint").text != note.text:
                raise Finding(TAMPERED, f"{rel}: a witness cosigned another history (fork)")
            counts.setdefault(cp.size, set()).update(signers)
    except Finding as exc:
        report.fail("8", exc)
        return 0
    witnessed = max((n for n, who in counts.items() if len(who) >= quorum), default=0)
    k = len(counts.get(log.size, ()))
    done = f"checkpoint {log.size:,} witnessed by {k} of {len(witnesses)} (quorum {quorum})"
    if k >= quorum:
        report.ok("8", done)
    elif opts.allow_incomplete:
        report.warn("8", f"{done}: a rollback cannot be excluded")
    else:
        report.fail("8", Finding(INCOMPLETE, f"{done}: a rollback cannot be excluded"))
    return witnessed


def _store_custodians(
    base: Path, policy: Policy | None, root_pinned: bool, opts: Options
) -> tuple[Trust | None, str, int, bool]:
    """The keys DECISION and CUSTODY entries are held to, their source, grace, pinned?"""
    if opts.custodians:
        return {k: (None, None) for k in opts.custodians}, "--custodian", 0, True
    if policy is not None and policy.custodians:
        return policy.custodians, f"trust policy {policy.serial}", policy.grace, root_pinned
    path = base / "keys" / "custodians.vkey"
    if path.is_file():
        raw = _read(path, MIB, "keys/custodians.vkey")
        return _custodian_list(raw), "keys/custodians.vkey", 0, False
    return None, "", 0, False


def _said(report: Report, check: str, pinned: bool, what: str, opts: Options) -> None:
    if pinned or not _open(report):
        return
    message = f"{what} are signed by custodian keys that nothing outside the store pins"
    if opts.allow_incomplete:
        report.warn(check, message)
    else:
        report.fail(check, Finding(INCOMPLETE, message))


def _store_decisions(log: Log, trust: Trust | None, source: str, grace: int, report: Report) -> int:
    count = 0
    try:
        for index, raw, _t in log.entries():
            entry = parse_entry(raw)
            if entry is None or entry.kind != DECISION:
                continue
            where = f"DECISION at index {index}"
            try:
                decision = decode_decision(entry.body)
            except (ValueError, Finding) as exc:
                raise Finding(MALFORMED, f"{where}: not a DECISION body ({exc})") from None
            message = DECISION_PREFIX + log.origin.encode("utf-8") + b"\n"
            if not ed25519_ok(
                decision.custodian.public, decision.signature, message + decision.message_body
            ):
                raise Finding(TAMPERED, f"{where}: the custodian's signature does not verify")
            _check_trusted(where, decision.custodian, decision.recorded, trust, source, grace)
            count += 1
    except Finding as exc:
        report.fail("10", exc)
        return 0
    if count:
        report.ok("10", f"{count} decisions verify" + (f" with keys of {source}" if trust else ""))
    return count


def _store_custody(log: Log, trust: Trust | None, source: str, grace: int, report: Report) -> int:
    """Check 13 (spec §16.3) for a store, which holds every checkpoint."""
    sealed_at = {s.info.end: s.info.sealed_at for s in log.sealed}
    firsts: dict[bytes, CustodyEvent] = {}
    exports: dict[bytes, int] = {}
    late, count = [], 0
    try:
        for index, raw, seal_time in log.entries():
            entry = parse_entry(raw)
            if entry is None or entry.kind != CUSTODY:
                continue
            where = f"CUSTODY at index {index}"
            try:
                event = decode_custody(entry.body)
            except (ValueError, Finding) as exc:
                raise Finding(MALFORMED, f"{where}: not a CUSTODY body ({exc})") from None
            signed = CUSTODY_PREFIX + log.origin.encode("utf-8") + b"\n" + event.message_body
            if not ed25519_ok(event.custodian.public, event.signature, signed):
                raise Finding(TAMPERED, f"{where}: the custodian's signature does not verify")
            _check_trusted(where, event.custodian, event.recorded, trust, source, grace)
            if event.size > log.size or event.size > index:
                raise Finding(TAMPERED, f"{where} concerns a checkpoint after its own place")
            mine = log.checkpoints.get(event.size)
            if mine is None or mine[1].root != event.root:
                raise Finding(TAMPERED, f"{where} names a checkpoint or root the log lacks")
            if event.manifest is not None:
                first = firsts.setdefault(event.manifest, event)
                if (first.size, first.root, first.incident) != (
                    event.size,
                    event.root,
                    event.incident,
                ):
                    raise Finding(TAMPERED, f"{where} names its bundle with another checkpoint")
            if event.size not in sealed_at:
                raise Finding(MALFORMED, f"{where}: no sealed segment ends at {event.size}")
            if event.at < sealed_at[event.size] - CLOCKS_APART_NS:
                late.append(f"{where} is dated before the checkpoint it concerns was sealed")
            if event.manifest is not None:
                exported = exports.get(event.manifest)
                if exported is not None and event.at < exported - CLOCKS_APART_NS:
                    late.append(f"{where} is dated before the export of its bundle")
                if event.event == "export" and exported is None:
                    exports[event.manifest] = event.at
            if event.recorded > seal_time + CLOCKS_APART_NS:
                report.warn("13", f"{where} was signed after its segment was sealed")
            count += 1
    except Finding as exc:
        report.fail("13", exc)
        return 0
    for finding in late:
        report.fail("13", Finding(POLICY, finding))
    if count and not late:
        report.ok(
            "13", f"{count} custody entries verify" + (f" with keys of {source}" if trust else "")
        )
    return count


def _store_coverage(
    log: Log, opts: Options, report: Report, pruning: str, decided: int, handled: int
) -> None:
    key = log.sealed[-1].key if log.sealed and log.sealed[-1].key else log.chain.current
    report.facts.update(
        {
            "tree_size": log.size,
            "key_id": key.key_id.hex(),
            "key_pinned": opts.key is not None,
            "key_rotations": len(log.chain.keys) - 1,
        }
    )
    if not _open(report):
        report.coverage = (
            f"verification stopped at check {report.failure['check'] if report.failure else '?'}"
        )
        return
    if not log.size:
        report.coverage = "empty log: nothing sealed yet"
        if report.code == VERIFIED:
            report.fail("5", Finding(INCOMPLETE, "nothing to verify: the log is empty"))
        return
    cp = log.checkpoints[log.size][1]
    parts = [
        f"leaves 0-{log.size - 1:,} verified against checkpoint {log.size:,} (root "
        f"{cp.root.hex()[:16]}…) signed by sealer key {key.key_id.hex()}"
        + (
            " (pinned)"
            if opts.key is not None
            else " (authorized by the pinned root's policy)"
            if opts.root is not None
            else " (NOT pinned: pass --key or --root)"
        ),
        "the records by their integrity_hash column, in files byte for byte as sealed (their "
        "fields are NOT re-encoded here, nor their salts derived: `acdkit verify` does that)",
    ]
    if pruning:
        parts.append(pruning)
    if decided:
        parts.append(f"{decided} decisions signed by custodian keys")
    if handled:
        parts.append(f"{handled} custody entries signed by custodian keys")
    report.coverage = "; ".join(parts)


# -- command line ---------------------------------------------------------------------------


def _size(value: str) -> int:
    # argparse names the option ("argument --witness-quorum: …"): the message does not
    try:
        return decimal(value, "N")
    except Finding as exc:
        raise argparse.ArgumentTypeError(exc.message) from None


def _pinned_key(value: str, kind: int = SEALER_KEY, option: str = "--key") -> Vkey:
    """A key typed on the command line; one that is no vkey is the user's slip (USAGE)."""
    text = value
    if Path(value).is_dir():
        raise Finding(USAGE, f"{option} {_show(value)}: a directory, not a verifier key file")
    if "+" not in value and not Path(value).exists():
        raise Finding(
            USAGE,
            f"{option} {_show(value)}: no such file, and not a verifier key line either "
            "(<name>+<hex id>+<base64 key>)",
        )
    if Path(value).is_file():
        try:
            with Path(value).open("rb") as fh:
                raw = fh.read(VKEY_LIMIT + 1)
            if len(raw) > VKEY_LIMIT:
                raise Finding(USAGE, f"{option} {_show(value)}: not a verifier key file")
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise Finding(USAGE, f"{option} {_show(value)}: not a verifier key file") from None
        except OSError as exc:
            raise Finding(IO, f"cannot read {option} file: {exc.strerror}") from None
    try:
        return parse_vkey(text, kind)
    except Finding as exc:
        raise Finding(USAGE, f"{option} {_show(value)}: {exc.message}") from None


def _render(report: Report) -> None:
    for check in report.checks:
        print(f"  {check['status']:>10} {check['id']}. {check['detail']}", file=sys.stderr)
    print(f"{VERDICT[report.code]} {report.coverage}", file=sys.stderr)
    if report.failure:
        print(f"first failure: {report.failure['message']}", file=sys.stderr)


def _exit_with(code: int, message: str, json_out: bool, target: str) -> int:
    if json_out:
        report = Report(target, code=code, failure={"check": "0", "message": message})
        print(json.dumps(report.to_json()))
    print(f"{VERDICT[code]}: {message}", file=sys.stderr)
    return code


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="acdkit_verify.py",
        description="Verify an acdkit submission bundle or evidence store offline, "
        "independently of acdkit.",
    )
    parser.add_argument("bundle", metavar="BUNDLE_DIR|STORE_DIR")
    parser.add_argument("--key", metavar="VKEY", help="the sealer's vkey line, or a file of it")
    parser.add_argument("--root", metavar="VKEY", help="pin the root key of the trust policy")
    parser.add_argument(
        "--witness",
        metavar="VKEY",
        action="append",
        default=[],
        help="a witness key (type 0x04) whose cosignatures count; repeatable",
    )
    parser.add_argument("--witness-quorum", metavar="N", type=_size, help="default 1")
    parser.add_argument(
        "--custodian",
        metavar="VKEY",
        action="append",
        default=[],
        help="a custodian key trusted to sign decisions, custody entries and worm-upload "
        "receipts; repeatable",
    )
    parser.add_argument(
        "--allow-incomplete", action="store_true", help="exit 0 when a quorum is all that lacks"
    )
    parser.add_argument(
        "--expect-min-size",
        metavar="N",
        type=_size,
        help="TAMPERED if the bundle's checkpoint is smaller (an older one substituted)",
    )
    parser.add_argument(
        "--local-only",
        action="store_true",
        help="a store: accept that nothing outside it commits to the log (a warning)",
    )
    parser.add_argument("--json", action="store_true", help="write one JSON report to stdout")
    parser.add_argument("--version", action="version", version=f"%(prog)s {VERSION}")
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits 2 on bad usage, 0 on --help
        words = sys.argv[1:] if argv is None else argv
        if exc.code == USAGE and "--json" in words:
            print(
                json.dumps(
                    Report("", code=USAGE, failure={"check": "0", "message": "usage"}).to_json()
                )
            )
        return int(exc.code or 0)
    try:
        import cryptography  # noqa: F401
    except ImportError:
        return _exit_with(USAGE, "needs the Python package cryptography", args.json, args.bundle)
    # as acdkit tells them apart: a bundle by its manifest first, then a store
    is_bundle = (Path(args.bundle) / MANIFEST).is_file()
    is_store = not is_bundle and (Path(args.bundle) / STORE_META).is_file()
    if not is_store and not is_bundle:
        return _exit_with(
            USAGE, f"{_show(args.bundle)} is neither a bundle nor a store", args.json, args.bundle
        )
    try:
        if args.witness_quorum is not None and not args.witness:
            raise Finding(USAGE, "--witness-quorum needs at least one --witness")
        witnesses = tuple(_pinned_key(w, WITNESS_KEY, "--witness") for w in args.witness)
        if args.witness_quorum is not None and args.witness_quorum > len(set(witnesses)):
            raise Finding(USAGE, "--witness-quorum is larger than the number of witnesses")
        opts = Options(
            key=_pinned_key(args.key) if args.key is not None else None,
            root=_pinned_key(args.root, option="--root") if args.root is not None else None,
            witnesses=witnesses,
            quorum=args.witness_quorum,
            expect_min_size=args.expect_min_size,
            allow_incomplete=args.allow_incomplete,
            custodians=tuple(_pinned_key(c, option="--custodian") for c in args.custodian),
            local_only=args.local_only,
        )
    except Finding as exc:
        return _exit_with(exc.code, exc.message, args.json, args.bundle)
    if is_store:
        report = verify_store(args.bundle, options=opts)
    else:
        report = verify_bundle(args.bundle, options=opts)
    if args.json:
        print(json.dumps(report.to_json()))
    _render(report)
    return report.code


def _guarded() -> int:
    """main(), and a bug is one line and exit 70 (as acdkit's), never a traceback."""
    try:
        return main()
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # pragma: no cover - the tests and fuzzing found none
        print(f"internal error: {type(exc).__name__}; please report it", file=sys.stderr)
        return 70


if __name__ == "__main__":
    sys.exit(_guarded())
