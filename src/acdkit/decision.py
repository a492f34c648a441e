"""DECISION entries: an incident decision, signed by the responder's custodian key.

A decision is the organization's own statement (who decided or did what, when, and why), so
it is logged with the same tamper evidence as the data: a TLV body (docs/evidence-format.md
§13) that carries the custodian's vkey and an Ed25519 signature over a domain-separated
message, queued like every log entry and sealed by the next seal.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from acdkit.encoding import TlvType, parse_tlv, tlv
from acdkit.errors import MalformedError, UsageError
from acdkit.keys import Signer, Verifier

__all__ = [
    "ACTIONS",
    "FORMAT_VERSION",
    "MAX_BODY_BYTES",
    "MAX_WHY_BYTES",
    "Decision",
    "check_input",
    "decision_message",
    "parse_decision",
]

FORMAT_VERSION = 1
MESSAGE_PREFIX = b"acdkit/1/decision\n"
MAX_BODY_BYTES = 16 << 10
MAX_WHY_BYTES = 4096
MAX_OBJECT_BYTES = 1024
MAX_REF_BYTES = 256
MAX_ITEMS = 64
SIGNATURE_FIELD = 31

# The words acdkit writes; the format accepts any action that matches _ACTION, so a newer
# vocabulary still verifies with an older verifier.
ACTIONS = (
    "open",  # detection: the incident exists from here
    "recognize",  # recognition (認知): the reporting clocks of most regimes start here
    "aware",  # another awareness event (materiality, ransom payment, classification as major)
    "classify",  # reason codes added
    "severity",
    "isolate",
    "contain",
    "notify",  # a recipient was told (by any channel)
    "ticket-delivered",  # a rendered ticket reached its webhook
    "ticket-failed",
    "package",  # a submission bundle was built and verified (refs: its manifest hash)
    "submit",  # a report or bundle was submitted for a regime stage
    "publish",  # a public statement
    "recover",
    "not-applicable",  # a stage or an audit-line step does not apply, with the reason
    "scope",  # regimes or flags added to the incident
    "note",
    "close",
)

_INCIDENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_ACTION = re.compile(r"[a-z][a-z0-9-]{0,31}")
_SEVERITY = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,31}")
_REASON = re.compile(r"[A-Z][A-Z0-9-]{0,47}")
_WORD = re.compile(r"[a-z][a-z0-9_.-]{0,63}")  # awareness events, regimes, flags
_STAGE = re.compile(r"[a-z0-9][a-z0-9_.-]{0,63}(/[a-z0-9][a-z0-9_.-]{0,63})?")
_REF = re.compile(r"[!-~]{1,256}")  # printable ASCII, no blank
# Characters that change how text reads without showing themselves: bidirectional
# embeddings, overrides and isolates (U+202E turns "approved" around), zero-width and other
# invisible format characters, line and paragraph separators, tag characters.  A decision is
# read by people; what they read must be what was signed.
FORMAT_CHARS = (
    "\u00ad\u061c\u180e\u200b-\u200f\u2028-\u202e\u2060-\u206f\ufeff\ufff9-\ufffb"
    "\U000e0000-\U000e007f"
)
_CONTROL = re.compile(f"[\x00-\x1f\x7f-\x9f{FORMAT_CHARS}]")
_CONTROL_BUT_LF = re.compile(f"[\x00-\x09\x0b-\x1f\x7f-\x9f{FORMAT_CHARS}]")
_INVISIBLE = re.compile(f"[{FORMAT_CHARS}]")

# field id -> (name, TLV type)
_TEXT = {2: "incident", 3: "action", 6: "actor", 7: "severity", 13: "object", 16: "why"}
_LISTS = {8: "reasons", 9: "events", 10: "regimes", 11: "flags", 12: "stages", 15: "refs"}
_LIST_RULES = {8: _REASON, 9: _WORD, 10: _WORD, 11: _WORD, 12: _STAGE, 15: _REF}
_TIMES = {4: "at", 5: "recorded", 14: "observed"}
_REQUIRED = (1, 2, 3, 4, 5, 6, 16, 30, SIGNATURE_FIELD)


@dataclass(frozen=True)
class Decision:
    """One decision; ``custodian`` and ``signature`` are set once it is signed."""

    incident: str
    action: str
    at_ns: int
    recorded_ns: int
    actor: str
    why: str
    severity: str | None = None
    reasons: tuple[str, ...] = ()
    events: tuple[str, ...] = ()
    regimes: tuple[str, ...] = ()
    flags: tuple[str, ...] = ()
    stages: tuple[str, ...] = ()
    object: str | None = None
    observed_ns: int | None = None
    refs: tuple[str, ...] = ()
    custodian: Verifier | None = field(default=None, compare=False)
    signature: bytes = field(default=b"", compare=False)

    def unsigned_body(self) -> bytes:
        """Fields 1-30: what the signature covers (after the message prefix and origin)."""
        if self.custodian is None:
            raise ValueError("a decision body names its custodian key")
        return self._fields(self.custodian)

    def _fields(self, custodian: Verifier) -> bytes:
        values: dict[int, tuple[TlvType, bytes]] = {
            1: (TlvType.U64, FORMAT_VERSION.to_bytes(8, "big")),
            2: (TlvType.UTF8, self.incident.encode()),
            3: (TlvType.UTF8, self.action.encode()),
            4: (TlvType.I64, _i64(self.at_ns)),
            5: (TlvType.I64, _i64(self.recorded_ns)),
            6: (TlvType.UTF8, self.actor.encode()),
            16: (TlvType.UTF8, self.why.encode()),
            30: (TlvType.UTF8, custodian.vkey().encode()),
        }
        if self.severity is not None:
            values[7] = (TlvType.UTF8, self.severity.encode())
        if self.object is not None:
            values[13] = (TlvType.UTF8, self.object.encode())
        if self.observed_ns is not None:
            values[14] = (TlvType.I64, _i64(self.observed_ns))
        for fid, name in _LISTS.items():
            items: tuple[str, ...] = getattr(self, name)
            if items:
                values[fid] = (TlvType.UTF8LIST, _utf8list(items))
        return b"".join(tlv(fid, kind, raw) for fid, (kind, raw) in sorted(values.items()))

    def sign(self, signer: Signer, origin: str) -> tuple[Decision, bytes]:
        """The signed decision and its entry body; refuses what a verifier would refuse."""
        unsigned = self._fields(signer.verifier)
        signature = signer.sign(decision_message(origin, unsigned))
        body = unsigned + tlv(SIGNATURE_FIELD, TlvType.BYTES, signature)
        signed = parse_decision(body)
        return signed, body

    def verifies(self, origin: str) -> bool:
        """The signature holds for the key the decision carries (not whether it is trusted)."""
        if self.custodian is None:
            return False
        return self.custodian.verify(self.signature, decision_message(origin, self.unsigned_body()))


def decision_message(origin: str, unsigned_body: bytes) -> bytes:
    """What the custodian signs: a fixed prefix, the log origin and fields 1-30."""
    return MESSAGE_PREFIX + origin.encode() + b"\n" + unsigned_body


def _i64(value: int) -> bytes:
    return value.to_bytes(8, "big", signed=True)


def _utf8list(items: tuple[str, ...]) -> bytes:
    return b"".join(len(raw).to_bytes(4, "big") + raw for raw in (i.encode() for i in items))


def _parse_list(value: bytes, what: str) -> tuple[str, ...]:
    items, pos = [], 0
    while pos < len(value):
        if len(value) - pos < 4:
            raise MalformedError(f"DECISION {what}: a list item length is truncated")
        size = int.from_bytes(value[pos : pos + 4], "big")
        if size > len(value) - pos - 4:
            raise MalformedError(f"DECISION {what}: a list item runs past its field")
        items.append(_text(value[pos + 4 : pos + 4 + size], what))
        pos += 4 + size
    if not items or len(items) > MAX_ITEMS or len(set(items)) != len(items):
        raise MalformedError(f"DECISION {what}: 1 to {MAX_ITEMS} items, none repeated")
    return tuple(items)


def _text(value: bytes, what: str) -> str:
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        raise MalformedError(f"DECISION {what} is not UTF-8") from None


def _check_text(fid: int, text: str) -> None:
    name = _TEXT[fid]
    size = len(text.encode())
    rules = {
        2: _INCIDENT.fullmatch(text) is not None,
        3: _ACTION.fullmatch(text) is not None,
        6: 0 < size <= 128 and not _CONTROL.search(text),
        7: _SEVERITY.fullmatch(text) is not None,
        13: 0 < size <= MAX_OBJECT_BYTES and not _CONTROL.search(text),
        16: 0 < size <= MAX_WHY_BYTES and not _CONTROL_BUT_LF.search(text),
    }
    if not rules[fid]:
        # the text itself is not echoed: it may be anyone's, and may hold what it must not
        raise MalformedError(f"DECISION {name} is not valid (§13: {_RULES[name]})")


def parse_decision(body: bytes) -> Decision:
    """A DECISION body, strictly (docs/evidence-format.md §13); MALFORMED otherwise."""
    if len(body) > MAX_BODY_BYTES:
        raise MalformedError(f"DECISION body over {MAX_BODY_BYTES:,} bytes")
    fields = {fid: (kind, value) for fid, kind, value in parse_tlv(body, 64)}
    missing = [fid for fid in _REQUIRED if fid not in fields]
    if missing:
        raise MalformedError(f"DECISION lacks field {missing[0]}")
    if max(fields) != SIGNATURE_FIELD:
        raise MalformedError("DECISION has a field after its signature")
    values: dict[str, object] = {}
    for fid, (kind, value) in fields.items():
        values.update(_field_value(fid, kind, value))
    if values.pop("version") != FORMAT_VERSION:
        raise MalformedError(f"DECISION format version is not {FORMAT_VERSION}")
    custodian = values.pop("custodian")
    assert isinstance(custodian, Verifier)
    signature = values.pop("signature")
    assert isinstance(signature, bytes)
    decision = Decision(
        **values,  # type: ignore[arg-type]
        custodian=custodian,
        signature=signature,
    )
    if decision.unsigned_body() + tlv(SIGNATURE_FIELD, TlvType.BYTES, signature) != body:
        raise MalformedError("DECISION body is not in canonical form")
    return decision


def _field_value(fid: int, kind: TlvType, value: bytes) -> dict[str, object]:
    expected = (
        TlvType.U64
        if fid == 1
        else TlvType.UTF8
        if fid in _TEXT or fid == 30
        else TlvType.UTF8LIST
        if fid in _LISTS
        else TlvType.I64
        if fid in _TIMES
        else TlvType.BYTES
        if fid == SIGNATURE_FIELD
        else None
    )
    if expected is None:
        raise MalformedError(f"DECISION field {fid} is unknown")
    if kind != expected:
        raise MalformedError(f"DECISION field {fid} is not of type {expected.name}")
    if fid == 1:
        if len(value) != 8:
            raise MalformedError("DECISION version is not 8 bytes")
        return {"version": int.from_bytes(value, "big")}
    if fid in _TIMES:
        if len(value) != 8:
            raise MalformedError(f"DECISION {_TIMES[fid]} time is not 8 bytes")
        return {f"{_TIMES[fid]}_ns": int.from_bytes(value, "big", signed=True)}
    if fid in _LISTS:
        items = _parse_list(value, _LISTS[fid])
        rule = _LIST_RULES[fid]
        bad = next((i for i in items if not rule.fullmatch(i)), None)
        if bad is not None:
            where = items.index(bad) + 1
            raise MalformedError(
                f"DECISION {_LISTS[fid]} item {where} is not valid (§13: {_RULES[_LISTS[fid]]})"
            )
        return {_LISTS[fid]: items}
    if fid == SIGNATURE_FIELD:
        if len(value) != 64:
            raise MalformedError("DECISION signature is not 64 bytes")
        return {"signature": value}
    text = _text(value, "custodian key" if fid == 30 else _TEXT[fid])
    if fid == 30:
        key = Verifier.parse(text)
        if key.vkey() != text:
            raise MalformedError("DECISION custodian field is not exactly a vkey")
        return {"custodian": key}
    _check_text(fid, text)
    return {_TEXT[fid]: text}


# -- checking what a responder typed, before anything is signed --------------------------------

_NO_CONTROL = "no control character and no bidirectional or invisible formatting character"
_WORD_RULE = "lower-case letters, digits and _ . -, starting with a letter, at most 64"
_RULES = {
    "incident": "1 to 64 letters, digits and . _ -, starting with a letter or digit",
    "action": "lower-case letters, digits and -, starting with a letter",
    "actor": f"1 to 128 bytes of UTF-8, {_NO_CONTROL}",
    "severity": "1 to 32 letters, digits and . _ -, starting with a letter or digit (e.g. high)",
    "object": f"1 to {MAX_OBJECT_BYTES} bytes of UTF-8, {_NO_CONTROL}",
    "why": f"1 to {MAX_WHY_BYTES} bytes of UTF-8, {_NO_CONTROL} (line feeds are allowed)",
    "reasons": "upper-case letters, digits and -, starting with a letter (e.g. CNI-INCIDENT)",
    "events": _WORD_RULE,
    "regimes": _WORD_RULE,
    "flags": _WORD_RULE,
    "stages": "REGIME/STAGE as `acdkit incident status` shows it, or one word",
    "refs": f"1 to {MAX_REF_BYTES} printable ASCII characters, no blank",
}
_OPTIONS = {
    "incident": "--incident",
    "action": "--action",
    "actor": "--actor",
    "severity": "--severity",
    "object": "--object",
    "why": "--why",
    "reasons": "--reason",
    "events": "--event",
    "regimes": "--regime",
    "flags": "--flag",
    "stages": "--stage",
    "refs": "--ref",
}


def check_input(decision: Decision) -> None:
    """Refuse, as a usage error naming the rule, what §13 would not let a verifier accept.

    The offending value is never echoed; a character is named by its code point.
    """
    for fid, name in _TEXT.items():
        value: str | None = getattr(decision, name)
        if value is not None:
            _check_input_text(fid, name, value)
    for fid, name in _LISTS.items():
        items: tuple[str, ...] = getattr(decision, name)
        if len(items) > MAX_ITEMS:
            raise UsageError(f"{_OPTIONS[name]} is given {len(items)} times: at most {MAX_ITEMS}")
        for n, item in enumerate(items, 1):
            if not _LIST_RULES[fid].fullmatch(item):
                raise UsageError(
                    f"{_OPTIONS[name]} value {n} is not valid: {_RULES[name]}" + _named_char(item)
                )


def _check_input_text(fid: int, name: str, text: str) -> None:
    option = _OPTIONS[name]
    size = len(text.encode())
    limit = {6: 128, 13: MAX_OBJECT_BYTES, 16: MAX_WHY_BYTES}.get(fid)
    if limit is not None and not 0 < size <= limit:
        raise UsageError(
            f"{option} is {size:,} bytes: it must be 1 to {limit:,} bytes of UTF-8",
            hint="keep long material in a file and name it with --ref (e.g. sha256:…)"
            if fid == 16 and size
            else None,
        )
    try:
        _check_text(fid, text)
    except MalformedError:
        found = _INVISIBLE.search(text)
        why = (
            " (such characters make a decision read differently from what is signed)"
            if found
            else ""
        )
        allowed_lf = _CONTROL_BUT_LF if fid == 16 else _CONTROL
        raise UsageError(
            f"{option} is not valid: {_RULES[name]}" + _named_char(text, allowed_lf) + why
        ) from None


def _named_char(text: str, pattern: re.Pattern[str] = _CONTROL) -> str:
    """Where the first character that breaks the rules is, by code point, never the text."""
    bad = pattern.search(text)
    if bad is None:
        return ""
    return f"; found U+{ord(bad.group()):04X} at character {bad.start() + 1}"
