"""RFC 3161 anchoring: time-stamp the newest checkpoint with one or more TSAs.

For each configured TSA, the anchor imprint of the checkpoint (docs/evidence-format.md
§12) is sent with a fresh nonce and certReq set; the reply is verified on receipt (pinned
roots, critical EKU timeStamping, nonce, policy OID, imprint), local wall-clock time is
read just before sending and just after receiving, and the token is kept twice: in an
ANCHOR entry queued for the next seal (the evidence) and as ``anchors/<size20>.<tsa>.tsr``
(a copy for people and other tools).  A TSA that cannot be reached, or whose reply is
refused, leaves ``anchors/<size20>.<tsa>.wanted`` behind; the next run asks again.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from acdkit import logentries
from acdkit._files import KIB, MIB, read_bounded, read_json
from acdkit.encoding import EntryType, TlvType, parse_tlv, tlv
from acdkit.errors import (
    AcdkitError,
    ExitCode,
    MalformedError,
    TamperedError,
    UsageError,
)
from acdkit.keychain import read_chain
from acdkit.keys import Verifier
from acdkit.note import Checkpoint, SignedNote
from acdkit.store import TMP_PREFIX, Store, atomic_write, write_json
from acdkit.tsa import (
    MAX_REPLY_BYTES,
    Transport,
    TsaEndpoint,
    TsaError,
    TsaTrust,
    check_name,
    check_token,
    http_post,
    new_request,
)

__all__ = [
    "ANCHOR_DOMAIN",
    "AnchorOutcome",
    "AnchorRecord",
    "AnchorReport",
    "TsaEndpoint",
    "TsaTrust",
    "anchor_imprint",
    "anchor_store",
    "clock_offset",
    "tsr_name",
]

log = logging.getLogger(__name__)

ANCHOR_DOMAIN = b"acdkit/1/anchor\n"
DEFAULT_TOLERANCE_NS = 10 * 10**9
DEFAULT_TIMEOUT_S = 10.0
# genTime may be given in whole seconds (openssl's default), truncated: the moment of
# signing lies up to one second after it
GEN_TIME_RESOLUTION_NS = 10**9
TSR_SUFFIX, WANTED_SUFFIX = ".tsr", ".wanted"
_KNOWN_FIELDS = frozenset(range(1, 11))


def anchor_imprint_data(checkpoint_text: str) -> bytes:
    """What the TSA time-stamps: a domain line, then the checkpoint's three body lines."""
    return ANCHOR_DOMAIN + checkpoint_text.encode()


def anchor_imprint(checkpoint_text: str) -> bytes:
    """The SHA-256 messageImprint of a checkpoint's anchor (covers no signature line)."""
    return hashlib.sha256(anchor_imprint_data(checkpoint_text)).digest()


def tsr_name(size: int, tsa: str) -> str:
    return f"{size:020d}.{tsa}{TSR_SUFFIX}"


def parse_anchor_file_name(name: str, suffix: str) -> tuple[int, str] | None:
    """(size, TSA name) of ``<size20>.<tsa><suffix>``, or None for any other name."""
    stem = name.removesuffix(suffix)
    size, dot, tsa = stem.partition(".")
    if stem == name or not dot or len(size) != 20 or not size.isdigit():
        return None
    try:
        check_name(tsa)
    except UsageError:
        return None
    return int(size), tsa


# -- the ANCHOR entry body ------------------------------------------------------------------


def _i64(value: int) -> bytes:
    return value.to_bytes(8, "big", signed=True)


def _u64(value: int) -> bytes:
    return value.to_bytes(8, "big")


@dataclass(frozen=True)
class AnchorRecord:
    """The body of an ANCHOR entry (docs/evidence-format.md §12)."""

    tsa: str
    size: int  # the anchored checkpoint's tree size
    checkpoint_sha256: bytes  # of the checkpoint file, the whole signed note
    imprint: bytes  # SHA-256 of the anchor imprint data of that checkpoint
    reply: bytes  # the TimeStampResp, DER, as the TSA sent it
    gen_time_ns: int
    policy_oid: str
    accuracy_ns: int | None
    sent_ns: int  # local wall clock just before the query was sent
    received_ns: int  # local wall clock just after the reply was read

    def body(self) -> bytes:
        parts = [
            tlv(1, TlvType.UTF8, self.tsa.encode()),
            tlv(2, TlvType.U64, _u64(self.size)),
            tlv(3, TlvType.BYTES, self.checkpoint_sha256),
            tlv(4, TlvType.BYTES, self.imprint),
            tlv(5, TlvType.BYTES, self.reply),
            tlv(6, TlvType.I64, _i64(self.gen_time_ns)),
            tlv(7, TlvType.UTF8, self.policy_oid.encode()),
        ]
        if self.accuracy_ns is not None:
            parts.append(tlv(8, TlvType.U64, _u64(self.accuracy_ns)))
        parts += [
            tlv(9, TlvType.I64, _i64(self.sent_ns)),
            tlv(10, TlvType.I64, _i64(self.received_ns)),
        ]
        return b"".join(parts)

    @classmethod
    def from_body(cls, body: bytes) -> AnchorRecord:
        """Strict: every field of its type and size, none unknown, none missing but 8."""
        fields = {fid: (kind, value) for fid, kind, value in parse_tlv(body, 16)}
        unknown = set(fields) - _KNOWN_FIELDS
        if unknown:
            raise MalformedError(f"ANCHOR body has unknown field {min(unknown)}")
        missing = _KNOWN_FIELDS - {8} - set(fields)
        if missing:
            raise MalformedError(f"ANCHOR body lacks field {min(missing)}")
        tsa = _text(fields[1], 1)
        if check_name_quietly(tsa) is None:
            raise MalformedError(f"ANCHOR body names TSA {tsa[:40]!r}, not a valid TSA name")
        reply = _bytes(fields[5], 5)
        if not 0 < len(reply) <= MAX_REPLY_BYTES:
            raise MalformedError("ANCHOR token is empty or larger than 64 KiB")
        return cls(
            tsa=tsa,
            size=_int(fields[2], 2, TlvType.U64),
            checkpoint_sha256=_bytes(fields[3], 3, 32),
            imprint=_bytes(fields[4], 4, 32),
            reply=reply,
            gen_time_ns=_int(fields[6], 6, TlvType.I64),
            policy_oid=_text(fields[7], 7),
            accuracy_ns=_int(fields[8], 8, TlvType.U64) if 8 in fields else None,
            sent_ns=_int(fields[9], 9, TlvType.I64),
            received_ns=_int(fields[10], 10, TlvType.I64),
        )


def check_name_quietly(name: str) -> str | None:
    try:
        return check_name(name)
    except UsageError:
        return None


def _int(field: tuple[TlvType, bytes], fid: int, kind: TlvType) -> int:
    if field[0] != kind or len(field[1]) != 8:
        raise MalformedError(f"ANCHOR field {fid} is not an 8-byte {kind.name.lower()}")
    return int.from_bytes(field[1], "big", signed=kind == TlvType.I64)


def _bytes(field: tuple[TlvType, bytes], fid: int, size: int | None = None) -> bytes:
    if field[0] != TlvType.BYTES or (size is not None and len(field[1]) != size):
        raise MalformedError(f"ANCHOR field {fid} is not {size or 'a run of'} bytes")
    return field[1]


def _text(field: tuple[TlvType, bytes], fid: int) -> str:
    if field[0] != TlvType.UTF8:
        raise MalformedError(f"ANCHOR field {fid} is not utf8")
    try:
        return field[1].decode("utf-8")
    except UnicodeDecodeError:
        raise MalformedError(f"ANCHOR field {fid} is not valid UTF-8") from None


def clock_offset(
    gen_time_ns: int, accuracy_ns: int | None, sent_ns: int, received_ns: int
) -> tuple[int, int]:
    """Bounds on (TSA clock − local clock) in ns, from one round trip.

    The TSA signed at some local moment in [sent, received]; its clock then read a time
    in [genTime − accuracy, genTime + accuracy + resolution].  Unlike an NTP offset this
    bound is authenticated: the TSA signed genTime, and the nonce tied it to this query.
    """
    acc = accuracy_ns or 0
    return (
        gen_time_ns - acc - received_ns,
        gen_time_ns + acc + GEN_TIME_RESOLUTION_NS - sent_ns,
    )


# -- anchoring --------------------------------------------------------------------------------


@dataclass
class AnchorOutcome:
    tsa: str
    size: int
    status: str  # anchored | queued | already
    reason: str | None = None
    kind: str | None = None  # why it was queued: unreachable, http, bad-reply, refused
    gen_time_ns: int | None = None
    offset_ns: tuple[int, int] | None = None
    drift_ok: bool = True
    signer: str | None = None

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"tsa": self.tsa, "checkpoint_size": self.size}
        doc["status"] = self.status
        if self.reason:
            doc.update({"reason": self.reason, "kind": self.kind})
        if self.gen_time_ns is not None:
            doc["gen_time"] = iso(self.gen_time_ns)
            doc["gen_time_ns"] = self.gen_time_ns
        if self.offset_ns is not None:
            doc["clock_offset_ns"] = {"min": self.offset_ns[0], "max": self.offset_ns[1]}
            doc["drift_within_tolerance"] = self.drift_ok
        if self.signer:
            doc["tsa_certificate"] = self.signer
        return doc


@dataclass
class AnchorReport:
    checkpoint_size: int
    outcomes: list[AnchorOutcome] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    tolerance_ns: int = DEFAULT_TOLERANCE_NS

    @property
    def verdict(self) -> ExitCode:
        if any(not o.drift_ok for o in self.outcomes):
            return ExitCode.POLICY
        if any(o.status == "queued" for o in self.outcomes):
            return ExitCode.INCOMPLETE
        return ExitCode.OK


@dataclass
class _Result:
    endpoint: TsaEndpoint
    size: int
    record: AnchorRecord | None = None
    error: TsaError | None = None
    signer: str = ""


def iso(ns: int) -> str:
    moment = datetime.fromtimestamp(ns // 10**9, UTC).replace(microsecond=(ns % 10**9) // 1000)
    return moment.isoformat().replace("+00:00", "Z")


def anchor_store(
    store: Store,
    endpoints: Sequence[TsaEndpoint],
    trust: Mapping[str, TsaTrust],
    *,
    transport: Transport = http_post,
    clock: Callable[[], int] = time.time_ns,
    tolerance_ns: int = DEFAULT_TOLERANCE_NS,
    timeout: float = DEFAULT_TIMEOUT_S,
) -> AnchorReport:
    """Anchor the newest checkpoint (and every queued one) with each configured TSA.

    The network is used outside the store lock, so a seal is never held up by a slow
    TSA; everything written is written under it, each token at most once.
    """
    names = _check_config(endpoints, trust)
    with store.lock():
        keys = read_chain(store).keys
        store.clean_temporaries()
        _restore_copies(store)
        latest = _latest_checkpoint(store)
        done = _anchored(store)
        queue = _queued(store)
    report = AnchorReport(latest, tolerance_ns=tolerance_ns)
    if len(endpoints) < 2:
        report.warnings.append(
            f"only one TSA ({endpoints[0].name}) is configured: anchors rest on a single "
            "authority; configure at least two independent TSAs"
        )
    for size, tsa in sorted(queue):
        if tsa not in names:
            report.warnings.append(
                f"checkpoint {size:,} is still queued for TSA {tsa}, which this run does "
                "not configure"
            )
    wanted = {k for k in queue if k[1] in names} | {(latest, n) for n in names}
    by_name = {e.name: e for e in endpoints}
    results: list[_Result] = []
    for size, tsa in sorted(wanted):
        if (size, tsa) in done:
            report.outcomes.append(AnchorOutcome(tsa, size, "already"))
            continue
        note = read_bounded(store.checkpoint_path(size), MIB, "checkpoint")
        results.append(_ask(by_name[tsa], trust[tsa], size, note, keys, transport, clock, timeout))
    with store.lock():
        for result in results:
            report.outcomes.append(_record(store, result, tolerance_ns))
    return report


def _check_config(endpoints: Sequence[TsaEndpoint], trust: Mapping[str, TsaTrust]) -> set[str]:
    if not endpoints:
        raise UsageError(
            "no time-stamp authority is configured",
            hint="pass --tsa NAME=URL (twice, for two independent TSAs) or set ACDKIT_TSA",
        )
    names: set[str] = set()
    for e in endpoints:
        if e.name in names:
            raise UsageError(f"TSA {e.name} is configured twice")
        names.add(e.name)
        if e.name not in trust or not trust[e.name].roots:
            raise UsageError(
                f"no root certificate is pinned for TSA {e.name}: its replies cannot be checked",
                hint=f"pass --tsa-root {e.name}=FILE.pem with the TSA's root CA certificate",
            )
    return names


def _latest_checkpoint(store: Store) -> int:
    files = store.checkpoint_files()
    if not files:
        raise UsageError("nothing is sealed in this store yet", hint="run `acdkit seal STORE`")
    _note, cp = _read_checkpoint(files[-1].read_bytes(), files[-1].name)
    return cp.size


def _read_checkpoint(data: bytes, what: str) -> tuple[SignedNote, Checkpoint]:
    try:
        note = SignedNote.parse(data)
        return note, Checkpoint.from_text(note.text)
    except MalformedError as exc:
        raise MalformedError(f"checkpoint {what}: {exc.message}") from None


def _ask(
    endpoint: TsaEndpoint,
    trust: TsaTrust,
    size: int,
    note_bytes: bytes,
    keys: Sequence[Verifier],
    transport: Transport,
    clock: Callable[[], int],
    timeout: float,
) -> _Result:
    """One round trip: query, reply, verification on receipt; never raises a TsaError."""
    note, cp = _read_checkpoint(note_bytes, f"{size:020d}")
    if cp.size != size or not any(note.verified_by(k) for k in keys):
        # anchoring a checkpoint the sealer did not sign would time-stamp a forgery
        raise TamperedError(f"checkpoint {size} does not carry a valid sealer signature")
    imprint = anchor_imprint(note.text)
    query = new_request(anchor_imprint_data(note.text))
    try:
        sent = clock()
        reply = transport(endpoint.url, query.as_bytes(), timeout)
        received = clock()
        facts = check_token(reply, imprint, trust, nonce=query.nonce)
    except TsaError as exc:
        return _Result(endpoint, size, error=exc)
    except MalformedError as exc:
        return _Result(endpoint, size, error=TsaError("bad-reply", exc.message))
    except TamperedError as exc:
        return _Result(endpoint, size, error=TsaError("refused", exc.message))
    record = AnchorRecord(
        tsa=endpoint.name,
        size=size,
        checkpoint_sha256=hashlib.sha256(note_bytes).digest(),
        imprint=imprint,
        reply=reply,
        gen_time_ns=facts.gen_time_ns,
        policy_oid=facts.policy_oid,
        accuracy_ns=facts.accuracy_ns,
        sent_ns=sent,
        received_ns=received,
    )
    return _Result(endpoint, size, record=record, signer=facts.signer)


def _record(store: Store, result: _Result, tolerance_ns: int) -> AnchorOutcome:
    """Write what one round trip gave: the entry and its copy, or the request queued."""
    tsa, size = result.endpoint.name, result.size
    anchors = store.anchors
    anchors.mkdir(mode=0o755, exist_ok=True)
    wanted = anchors / f"{size:020d}.{tsa}{WANTED_SUFFIX}"
    if result.record is None:
        assert result.error is not None
        _queue(wanted, size, tsa, result.error)
        return AnchorOutcome(tsa, size, "queued", result.error.message, result.error.kind)
    copy = anchors / tsr_name(size, tsa)
    if copy.exists():  # another run got there first
        return AnchorOutcome(tsa, size, "already")
    rec = result.record
    # the entry first: the copy can be re-made from it, never the other way round
    logentries.add_pending(store, EntryType.ANCHOR, rec.body())
    atomic_write(copy, rec.reply)
    wanted.unlink(missing_ok=True)
    lo, hi = clock_offset(rec.gen_time_ns, rec.accuracy_ns, rec.sent_ns, rec.received_ns)
    return AnchorOutcome(
        tsa,
        size,
        "anchored",
        gen_time_ns=rec.gen_time_ns,
        offset_ns=(lo, hi),
        drift_ok=lo <= tolerance_ns and hi >= -tolerance_ns,
        signer=result.signer,
    )


def _queue(path: Path, size: int, tsa: str, error: TsaError) -> None:
    now = datetime.now(UTC).isoformat(timespec="seconds")
    doc: dict[str, Any] = {"checkpoint_size": size, "tsa": tsa, "first_tried_utc": now}
    if path.exists():
        try:
            old = read_json(path, 64 * KIB, "queued anchor request")
            if isinstance(old, dict) and isinstance(old.get("first_tried_utc"), str):
                doc["first_tried_utc"] = old["first_tried_utc"]
                doc["attempts"] = int(old.get("attempts", 1))
        except (AcdkitError, ValueError, TypeError):
            pass
    doc.update(
        {
            "last_tried_utc": now,
            "attempts": int(doc.get("attempts", 0)) + 1,
            "kind": error.kind,
            "reason": error.message,
        }
    )
    write_json(path, doc)


def _queued(store: Store) -> set[tuple[int, str]]:
    """(size, TSA) of every request that failed and waits for the next run."""
    out: set[tuple[int, str]] = set()
    anchors = store.anchors
    if not anchors.is_dir():
        return out
    for path in anchors.iterdir():
        key = parse_anchor_file_name(path.name, WANTED_SUFFIX)
        if key is not None and not path.name.startswith(TMP_PREFIX):
            out.add(key)
    return out


def _pending_anchors(store: Store) -> list[AnchorRecord]:
    out = []
    for _name, data in logentries.pending_entries(store):
        parsed = logentries.parse_entry(data)
        if parsed.kind == EntryType.ANCHOR:
            out.append(AnchorRecord.from_body(parsed.body))
    return out


def _anchored(store: Store) -> set[tuple[int, str]]:
    """(size, TSA) pairs that already have a token copy or a queued ANCHOR entry."""
    out = {(r.size, r.tsa) for r in _pending_anchors(store)}
    anchors = store.anchors
    if anchors.is_dir():
        for path in anchors.iterdir():
            key = parse_anchor_file_name(path.name, TSR_SUFFIX)
            if key is not None:
                out.add(key)
    return out


def _restore_copies(store: Store) -> None:
    """Re-make a token copy that a crash after queuing its entry left unwritten."""
    for rec in _pending_anchors(store):
        copy = store.anchors / tsr_name(rec.size, rec.tsa)
        if not copy.exists():
            copy.parent.mkdir(mode=0o755, exist_ok=True)
            atomic_write(copy, rec.reply)
            log.info("re-made %s from its queued ANCHOR entry", copy.name)
