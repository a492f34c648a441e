"""Sealer key rotation and revocation as KEY entries in the log itself.

The store's ``keys/sealer.vkey`` is the log's first sealer key and never changes.  A
rotation is a KEY entry, signed by the outgoing key and by the incoming one (proof that its
holder took part), sealed in a segment whose checkpoint the outgoing key signs; every
later checkpoint must be signed by the incoming key.  A revocation is a KEY entry, signed by
the current key, after which the revoked key may sign nothing.  So the chain of keys is
read from the log and needs no file that an intruder could swap (docs/evidence-format.md
§7.1).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from acdkit import logentries
from acdkit._files import MIB, read_bounded
from acdkit.encoding import EntryType, TlvType, parse_tlv, tlv
from acdkit.errors import MalformedError, TamperedError
from acdkit.keys import Signer, Verifier
from acdkit.sealinfo import SealInfo
from acdkit.store import Store

__all__ = ["KeyChain", "KeyEvent", "key_event_body", "parse_key_event", "read_chain"]

ROTATE, REVOKE = "rotate", "revoke"
_FIELDS = {1: TlvType.UTF8, 2: TlvType.BYTES, 3: TlvType.UTF8, 4: TlvType.I64}
_SIG_FIELDS = {5: TlvType.BYTES, 6: TlvType.BYTES}


@dataclass(frozen=True)
class KeyEvent:
    action: str  # "rotate" or "revoke"
    signer_id: bytes  # the current key, which signs the event
    subject: Verifier  # the incoming key (rotate) or the revoked key (revoke)
    at_ns: int  # local time of the event (the sealer's clock)
    signature: bytes  # by the current key over `message`
    subject_signature: bytes | None = None  # by the incoming key, for a rotation

    def message(self, origin: str) -> bytes:
        return _message(origin, self.action, self.signer_id, self.subject, self.at_ns)


def _message(origin: str, action: str, signer_id: bytes, subject: Verifier, at_ns: int) -> bytes:
    return (
        f"acdkit/1/key-event\n{origin}\n{action}\n{signer_id.hex()}\n{subject.vkey()}\n{at_ns}\n"
    ).encode()


def key_event_body(
    origin: str,
    action: str,
    current: Signer,
    subject: Verifier,
    at_ns: int,
    incoming: Signer | None,
) -> bytes:
    """A signed KEY entry body; ``incoming`` (the new key's signer) for a rotation."""
    if action not in (ROTATE, REVOKE):
        raise ValueError(action)
    msg = _message(origin, action, current.verifier.key_id, subject, at_ns)
    parts = [
        tlv(1, TlvType.UTF8, action.encode()),
        tlv(2, TlvType.BYTES, current.verifier.key_id),
        tlv(3, TlvType.UTF8, subject.vkey().encode()),
        tlv(4, TlvType.I64, at_ns.to_bytes(8, "big", signed=True)),
        tlv(5, TlvType.BYTES, current.sign(msg)),
    ]
    if action == ROTATE:
        assert incoming is not None and incoming.verifier == subject
        parts.append(tlv(6, TlvType.BYTES, incoming.sign(msg)))
    return b"".join(parts)


def parse_key_event(body: bytes) -> KeyEvent:
    fields = {fid: (kind, value) for fid, kind, value in parse_tlv(body)}
    allowed = {**_FIELDS, **_SIG_FIELDS}
    for fid, (kind, _value) in fields.items():
        if allowed.get(fid) != kind:
            raise MalformedError(f"KEY entry field {fid} is unknown or of the wrong type")
    if any(fid not in fields for fid in (*_FIELDS, 5)):
        raise MalformedError("KEY entry lacks a required field")
    try:
        action = fields[1][1].decode()
        subject = Verifier.parse(fields[3][1].decode())
    except UnicodeDecodeError:
        raise MalformedError("KEY entry text is not UTF-8") from None
    if subject.vkey().encode() != fields[3][1]:
        # the event message holds field 3 as it stands: one vkey text, nothing around it
        raise MalformedError("KEY entry field 3 is not exactly a vkey")
    signer_id, at_raw, sig = fields[2][1], fields[4][1], fields[5][1]
    second = fields[6][1] if 6 in fields else None
    if action not in (ROTATE, REVOKE) or len(signer_id) != 4 or len(at_raw) != 8:
        raise MalformedError("KEY entry action, key ID or time is malformed")
    if len(sig) != 64 or (second is not None and len(second) != 64):
        raise MalformedError("KEY entry signature is not 64 bytes")
    if (action == ROTATE) != (second is not None):
        raise MalformedError("a rotation needs the incoming key's signature; a revocation none")
    at_ns = int.from_bytes(at_raw, "big", signed=True)
    return KeyEvent(action, signer_id, subject, at_ns, sig, second)


class KeyChain:
    """The sealer keys of one log, followed segment by segment from its first key."""

    def __init__(self, origin: str, first: Verifier) -> None:
        self.origin = origin
        self.current = first
        self.keys: list[Verifier] = [first]  # every key that was current, in order
        self.revoked: set[bytes] = set()
        self.events: list[tuple[int, KeyEvent]] = []  # (segment number, event)

    def apply(self, segment_no: int, events: Iterable[KeyEvent]) -> None:
        """Take the KEY events of a segment whose checkpoint the current key signed."""
        for event in events:
            if event.signer_id != self.current.key_id or not self.current.verify(
                event.signature, event.message(self.origin)
            ):
                raise TamperedError(
                    f"segment {segment_no}: a KEY {event.action} is not signed by the current "
                    f"sealer key {self.current.key_id.hex()}"
                )
            if event.subject.name != self.origin:
                raise TamperedError(f"segment {segment_no}: a KEY entry names another log's key")
            if event.action == ROTATE:
                second = event.subject_signature or b""
                if not event.subject.verify(second, event.message(self.origin)):
                    raise TamperedError(
                        f"segment {segment_no}: rotation to {event.subject.key_id.hex()} lacks "
                        "a valid signature by the incoming key"
                    )
                if event.subject.key_id in self.revoked or event.subject in self.keys:
                    raise TamperedError(
                        f"segment {segment_no}: rotation to a key that was used or revoked"
                    )
                self.current = event.subject
                self.keys.append(event.subject)
            else:
                if event.subject == self.current:
                    raise TamperedError(
                        f"segment {segment_no}: the current key revokes itself (rotate first)"
                    )
                self.revoked.add(event.subject.key_id)
            self.events.append((segment_no, event))

    def find(self, key_id: bytes) -> Verifier | None:
        return next((k for k in self.keys if k.key_id == key_id), None)


def read_chain(store: Store) -> KeyChain:
    """The key chain as the store's sealed segments record it (signatures checked, roots
    not: that is `verify`'s work).  The sealer uses it to know which key may seal next."""
    chain = KeyChain(store.origin, store.verifier())
    for number, seg in enumerate(store.segment_dirs()):
        info = SealInfo.from_entry(read_bounded(seg / "seal.entry", MIB, "SEAL entry"))
        if not store.checkpoint_path(info.end_index).exists():
            break  # an interrupted seal: recovery drops or completes it
        events = []
        for data in logentries.read_segment_entries(seg, info.entry_count):
            parsed = logentries.parse_entry(data)
            if parsed.kind == EntryType.KEY:
                events.append(parse_key_event(parsed.body))
        chain.apply(number, events)
    return chain
