"""CUSTODY entries: who handled a bundle or the log, when, from whom and to whom.

A custody event (an export, a hand-over, a receipt, a verification run) is a TLV body
(docs/evidence-format.md §16) signed by the handler's custodian key over a domain-separated
message, exactly as a DECISION is (§13), queued like every log entry and sealed by the next
seal.  It names what it concerns by a checkpoint of the log (size and root) and, for a
bundle, the SHA-256 of the bundle's signed manifest.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from acdkit.decision import FORMAT_CHARS
from acdkit.encoding import TlvType, parse_tlv, tlv
from acdkit.errors import MalformedError
from acdkit.keys import Signer, Verifier
from acdkit.wormpin import FIELDS as RECEIPT_FIELDS
from acdkit.wormpin import Receipt, parse_receipt

__all__ = [
    "EVENTS",
    "FORMAT_VERSION",
    "MAX_BODY_BYTES",
    "MAX_NOTE_BYTES",
    "MAX_PARTY_BYTES",
    "OUTCOMES",
    "WORM_EVENT",
    "Custody",
    "custody_message",
    "parse_custody",
    "party_problem",
]

FORMAT_VERSION = 1
MESSAGE_PREFIX = b"acdkit/1/custody\n"
MAX_BODY_BYTES = 8 << 10
MAX_PARTY_BYTES = 128
MAX_NOTE_BYTES = 1024
SIGNATURE_FIELD = 31
EVENTS = ("export", "hand-over", "receipt", "verification")  # what `custody log` logs
# written by `acdkit storage push` only: the receipt of an upload to S3 (§16.7)
WORM_EVENT = "worm-upload"
OUTCOMES = ("VERIFIED", "TAMPERED", "USAGE", "INCOMPLETE", "MALFORMED", "POLICY", "IO")

_INCIDENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
# control characters and the formatting characters of §13 (bidirectional overrides, zero-width
# and invisible characters, line separators, tags): a name must read as the bytes signed
_FORBIDDEN = re.compile(f"[\x00-\x1f\x7f-\x9f{FORMAT_CHARS}]")
_TYPES = {
    1: TlvType.U64,
    2: TlvType.UTF8,
    3: TlvType.I64,
    4: TlvType.I64,
    5: TlvType.UTF8,
    6: TlvType.UTF8,
    7: TlvType.UTF8,
    8: TlvType.UTF8,
    9: TlvType.UTF8,
    10: TlvType.U64,
    11: TlvType.BYTES,
    12: TlvType.BYTES,
    13: TlvType.UTF8,
    **RECEIPT_FIELDS,
    30: TlvType.UTF8,
    SIGNATURE_FIELD: TlvType.BYTES,
}
_REQUIRED = (1, 2, 3, 4, 6, 10, 11, 30, SIGNATURE_FIELD)
_NAMES = {5: "incident", 6: "handler", 7: "from", 8: "to", 9: "outcome", 13: "note"}


def party_problem(text: str, limit: int = MAX_PARTY_BYTES) -> str | None:
    """Why ``text`` cannot name a party (or be a note), or None when it can."""
    size = len(text.encode("utf-8", "surrogatepass"))
    if not 0 < size <= limit:
        return f"must be 1 to {limit} bytes of UTF-8"
    if _FORBIDDEN.search(text):
        return "holds a control character or a bidirectional or invisible formatting character"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "is not valid UTF-8"
    return None


@dataclass(frozen=True)
class Custody:
    """One custody event; ``custodian`` and ``signature`` are set once it is signed."""

    event: str
    at_ns: int
    recorded_ns: int
    handler: str
    checkpoint_size: int
    checkpoint_root: bytes
    manifest_sha256: bytes | None = None
    incident: str | None = None
    sender: str | None = None  # field 7, "from"
    recipient: str | None = None  # field 8, "to"
    outcome: str | None = None
    note: str | None = None
    receipt: Receipt | None = None  # a worm-upload's objects (fields 14-20)
    custodian: Verifier | None = field(default=None, compare=False)
    signature: bytes = field(default=b"", compare=False)

    def unsigned_body(self) -> bytes:
        """Fields 1-30: what the signature covers (after the message prefix and origin)."""
        if self.custodian is None:
            raise ValueError("a custody body names its custodian key")
        return self._fields(self.custodian)

    def _fields(self, custodian: Verifier) -> bytes:
        values: dict[int, tuple[TlvType, bytes]] = {
            1: (TlvType.U64, FORMAT_VERSION.to_bytes(8, "big")),
            2: (TlvType.UTF8, self.event.encode()),
            3: (TlvType.I64, _i64(self.at_ns)),
            4: (TlvType.I64, _i64(self.recorded_ns)),
            6: (TlvType.UTF8, self.handler.encode()),
            10: (TlvType.U64, self.checkpoint_size.to_bytes(8, "big")),
            11: (TlvType.BYTES, self.checkpoint_root),
            30: (TlvType.UTF8, custodian.vkey().encode()),
        }
        texts = {5: self.incident, 7: self.sender, 8: self.recipient, 9: self.outcome}
        for fid, text in {**texts, 13: self.note}.items():
            if text is not None:
                values[fid] = (TlvType.UTF8, text.encode())
        if self.manifest_sha256 is not None:
            values[12] = (TlvType.BYTES, self.manifest_sha256)
        if self.receipt is not None:
            values.update(self.receipt.fields())
        return b"".join(tlv(fid, kind, raw) for fid, (kind, raw) in sorted(values.items()))

    def sign(self, signer: Signer, origin: str) -> tuple[Custody, bytes]:
        """The signed event and its entry body; refuses what a verifier would refuse."""
        try:
            unsigned = self._fields(signer.verifier)
        except UnicodeEncodeError:  # argv carries undecodable bytes as surrogates
            raise MalformedError("CUSTODY text is not valid UTF-8") from None
        signature = signer.sign(custody_message(origin, unsigned))
        body = unsigned + tlv(SIGNATURE_FIELD, TlvType.BYTES, signature)
        return parse_custody(body), body

    def verifies(self, origin: str) -> bool:
        """The signature holds for the key the event carries (not whether it is trusted)."""
        if self.custodian is None:
            return False
        return self.custodian.verify(self.signature, custody_message(origin, self.unsigned_body()))

    @property
    def subject(self) -> str:
        """What the event concerns, in words: a bundle by its manifest, or the log."""
        if self.receipt is not None:
            n = len(self.receipt.pins)
            return (
                f"{n} object{'s' if n != 1 else ''} in s3://{self.receipt.bucket} "
                f"(checkpoint {self.checkpoint_size})"
            )
        if self.manifest_sha256 is not None:
            return f"bundle {self.manifest_sha256.hex()[:16]}… (checkpoint {self.checkpoint_size})"
        return f"log up to checkpoint {self.checkpoint_size}"


def custody_message(origin: str, unsigned_body: bytes) -> bytes:
    """What the handler signs: a fixed prefix, the log origin and fields 1-30."""
    return MESSAGE_PREFIX + origin.encode() + b"\n" + unsigned_body


def _i64(value: int) -> bytes:
    return value.to_bytes(8, "big", signed=True)


def _text_problem(fid: int, text: str) -> str | None:
    if fid == 5:
        return None if _INCIDENT.fullmatch(text) else "is not an incident ID (§9.2)"
    if fid == 9:
        return None if text in OUTCOMES else f"is not one of {', '.join(OUTCOMES)}"
    return party_problem(text, MAX_NOTE_BYTES if fid == 13 else MAX_PARTY_BYTES)


def parse_custody(body: bytes) -> Custody:
    """A CUSTODY body, strictly (docs/evidence-format.md §16.1); MALFORMED otherwise."""
    if len(body) > MAX_BODY_BYTES:
        raise MalformedError(f"CUSTODY body over {MAX_BODY_BYTES:,} bytes")
    fields = {fid: (kind, value) for fid, kind, value in parse_tlv(body, 32)}
    missing = [fid for fid in _REQUIRED if fid not in fields]
    if missing:
        raise MalformedError(f"CUSTODY lacks field {missing[0]}")
    if max(fields) != SIGNATURE_FIELD:
        raise MalformedError("CUSTODY has a field after its signature")
    for fid, (kind, _value) in fields.items():
        if _TYPES.get(fid) is None:
            raise MalformedError(f"CUSTODY field {fid} is unknown")
        if kind != _TYPES[fid]:
            raise MalformedError(f"CUSTODY field {fid} is not of type {_TYPES[fid].name}")
    custody = _build(fields)
    _check_event(custody)
    if custody.unsigned_body() + tlv(SIGNATURE_FIELD, TlvType.BYTES, custody.signature) != body:
        raise MalformedError("CUSTODY body is not in canonical form")
    return custody


def _number(fields: dict[int, tuple[TlvType, bytes]], fid: int, signed: bool = False) -> int:
    value = fields[fid][1]
    if len(value) != 8:
        raise MalformedError(f"CUSTODY field {fid} is not 8 bytes")
    number = int.from_bytes(value, "big", signed=signed)
    if not signed and number >= 1 << 63:
        raise MalformedError(f"CUSTODY field {fid} is not below 2^63")
    return number


def _bytes(fields: dict[int, tuple[TlvType, bytes]], fid: int, width: int) -> bytes:
    value = fields[fid][1]
    if len(value) != width:
        raise MalformedError(f"CUSTODY field {fid} is not {width} bytes")
    return value


def _text(fields: dict[int, tuple[TlvType, bytes]], fid: int) -> str | None:
    if fid not in fields:
        return None
    try:
        text = fields[fid][1].decode("utf-8")
    except UnicodeDecodeError:
        raise MalformedError(f"CUSTODY {_NAMES[fid]} is not UTF-8") from None
    problem = _text_problem(fid, text)
    if problem:
        raise MalformedError(f"CUSTODY {_NAMES[fid]} {problem} (§16)")
    return text


def _build(fields: dict[int, tuple[TlvType, bytes]]) -> Custody:
    if _number(fields, 1) != FORMAT_VERSION:
        raise MalformedError(f"CUSTODY format version is not {FORMAT_VERSION}")
    try:
        event = fields[2][1].decode("utf-8")
        vkey = fields[30][1].decode("utf-8")
    except UnicodeDecodeError:
        raise MalformedError("CUSTODY event or custodian key is not UTF-8") from None
    custodian = Verifier.parse(vkey)
    if custodian.vkey() != vkey:
        raise MalformedError("CUSTODY custodian field is not exactly a vkey")
    handler = _text(fields, 6)
    assert handler is not None
    uploaded = event == WORM_EVENT
    if not uploaded and any(fid in fields for fid in RECEIPT_FIELDS):
        raise MalformedError("CUSTODY upload receipt fields (14-20) belong to a worm-upload")
    return Custody(
        event=event,
        at_ns=_number(fields, 3, signed=True),
        recorded_ns=_number(fields, 4, signed=True),
        handler=handler,
        checkpoint_size=_number(fields, 10),
        checkpoint_root=_bytes(fields, 11, 32),
        manifest_sha256=_bytes(fields, 12, 32) if 12 in fields else None,
        incident=_text(fields, 5),
        sender=_text(fields, 7),
        recipient=_text(fields, 8),
        outcome=_text(fields, 9),
        note=_text(fields, 13),
        receipt=parse_receipt(fields) if uploaded else None,
        custodian=custodian,
        signature=_bytes(fields, SIGNATURE_FIELD, 64),
    )


def _check_event(custody: Custody) -> None:
    """The rules that tie fields to the event (§16.1)."""
    if custody.event not in (*EVENTS, WORM_EVENT):
        raise MalformedError(f"CUSTODY event is not one of {', '.join((*EVENTS, WORM_EVENT))}")
    if custody.event == WORM_EVENT and (
        custody.incident,
        custody.sender,
        custody.recipient,
        custody.manifest_sha256,
    ) != (None, None, None, None):
        # it concerns the log's files, never a bundle or one incident (so no bundle
        # carries it, and an older verifier of bundles never meets one)
        raise MalformedError("CUSTODY worm-upload has an incident, a party or a manifest")
    if custody.checkpoint_size < 1:
        raise MalformedError("CUSTODY checkpoint size is 0: it concerns no checkpoint")
    if custody.event == "hand-over" and (custody.sender is None or custody.recipient is None):
        raise MalformedError("CUSTODY hand-over names both parties (from and to)")
    if custody.event == "receipt" and custody.sender is None:
        raise MalformedError("CUSTODY receipt names whom it was received from")
    if (custody.event == "verification") != (custody.outcome is not None):
        raise MalformedError("CUSTODY outcome is given for a verification, and only for one")
