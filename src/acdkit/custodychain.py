"""The chain of custody: recording CUSTODY entries in a store, reading and checking them.

Custody events live in the log like decisions: sealed ones in the segments, queued ones in
``pending/``.  The same checks (docs/evidence-format.md §16.3) run on a store, where every
checkpoint is known, and on a bundle, which knows its own checkpoint and the SEAL leaves it
proves; what either cannot know is named in its coverage sentence.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from acdkit import custodians, logentries
from acdkit._files import MIB, read_bounded
from acdkit.custody import Custody, parse_custody
from acdkit.encoding import EntryType
from acdkit.errors import MalformedError, PolicyError, TamperedError, UsageError
from acdkit.keys import Signer, Verifier
from acdkit.note import Checkpoint, SignedNote
from acdkit.sealinfo import SealInfo
from acdkit.store import Store

__all__ = [
    "CLOCK_TOLERANCE_NS",
    "EXPORT_STATEMENT",
    "CustodyFindings",
    "Known",
    "Logged",
    "check_custody",
    "check_queued_custody",
    "entries",
    "export_statement",
    "parse_export_statement",
    "read_logged",
    "record",
    "signed_entry",
    "store_known",
]

# the handler's, the sealer's and the other handlers' clocks are separate clocks: a custody
# time this much before the seal of what it concerns is still read as their disagreement
CLOCK_TOLERANCE_NS = custodians.SEAL_TOLERANCE_NS
EXPORT_FORMAT = "acdkit-custody-export/1"
EXPORT_STATEMENT = "custody/export.json"  # in a bundle; its proofs are custody/<index20>...
EXPORT_LIMIT = 64 << 10


@dataclass(frozen=True)
class Logged:
    """A custody event and where it stands: sealed at a leaf index, or queued."""

    custody: Custody
    index: int | None = None
    pending: str | None = None
    body: bytes = b""


@dataclass(frozen=True)
class Known:
    """What the verifier knows of the log the custody entries sit in."""

    size: int  # no entry may concern a larger checkpoint
    roots: Mapping[int, bytes]  # checkpoint size -> root, for the checkpoints it holds
    sealed_at: Mapping[int, int]  # checkpoint size -> SEAL time of the segment it closes
    all_roots: bool  # a store holds every checkpoint; a bundle only its own
    incident: str | None = None  # a bundle's: every entry must name it


@dataclass
class CustodyFindings:
    entries: int = 0
    events: Counter[str] = field(default_factory=Counter)
    signers: set[Verifier] = field(default_factory=set)
    bundles: set[bytes] = field(default_factory=set)
    warnings: list[str] = field(default_factory=list)
    policy: list[str] = field(default_factory=list)

    def detail(self, trust: custodians.CustodianTrust | None) -> str:
        whose = (
            f"custodian keys of {trust.source}"
            + ("" if trust.pinned else " (not pinned: --custodian)")
            if trust is not None
            else "the keys they carry (custodian keys not pinned: --custodian)"
        )
        events = ", ".join(f"{n} {e}" for e, n in sorted(self.events.items()))
        return (
            f"{self.entries} CUSTODY entries ({events}) concerning {len(self.bundles)} "
            f"bundle(s) verify, signed by {len(self.signers)} key(s), checked against {whose}"
        )


def entries(n: int) -> str:
    """``n`` custody entries, in words: "1 custody entry", "2 custody entries"."""
    return f"{n:,} custody entr{'y' if n == 1 else 'ies'}"


def _where(index: int | None) -> str:
    return f"CUSTODY at index {index}" if index is not None else "the queued CUSTODY entry"


def check_custody(
    entries: Iterable[tuple[int | None, bytes, int | None]],
    origin: str,
    trust: custodians.CustodianTrust | None,
    known: Known,
) -> CustodyFindings:
    """Check CUSTODY bodies in leaf order: (index or None if queued, body, SEAL time of the
    segment holding it or None).  Raises on MALFORMED and TAMPERED; collects POLICY.

    1. The body parses strictly (§16.1, MALFORMED).
    2. In a bundle, it names the bundle's incident (TAMPERED).
    3. Its signature verifies with the custodian key it carries, over §16.2 with this log's
       origin (TAMPERED).
    4. With trust, that key is trusted and its window covers the signing time (TAMPERED).
    5. What it concerns: a checkpoint no later than the entry itself and than the known log,
       with its root where the verifier holds that checkpoint (in a store, every one); the
       entries about one bundle name the same checkpoint and incident (TAMPERED).
    6. Its time is not before the seal of that checkpoint, nor before the first export of
       the same bundle, by more than the tolerance (POLICY: a clock, or a back-dated entry).
    7. A signing time past the seal of its own segment by more than it is a warning.
    """
    checker = _Checker(origin, known)
    for index, body, sealed_at in entries:
        checker.check(index, body, sealed_at, trust)
    return checker.found


class _Checker:
    """The checks of one chain, in leaf order: later entries are judged by earlier ones."""

    def __init__(self, origin: str, known: Known) -> None:
        self.origin, self.known = origin, known
        self.found = CustodyFindings()
        self.exports: dict[bytes, int] = {}  # manifest -> time of its first export
        self.firsts: dict[bytes, Custody] = {}  # manifest -> the first entry about it

    def check(
        self,
        index: int | None,
        body: bytes,
        sealed_at: int | None,
        trust: custodians.CustodianTrust | None,
    ) -> Custody:
        where, found = _where(index), self.found
        # 1
        try:
            custody = parse_custody(body)
        except MalformedError as exc:
            raise MalformedError(f"{where}: {exc.message}") from None
        assert custody.custodian is not None
        # 2
        if self.known.incident is not None and custody.incident != self.known.incident:
            raise TamperedError(f"{where} is not of the bundle's incident {self.known.incident}")
        # 3
        if not custody.verifies(self.origin):
            raise TamperedError(_unsigned(where, custody))
        # 4
        if trust is not None:
            custodians.check_signer(where, custody.custodian, custody.recorded_ns, trust)
        # 5
        _check_subject(where, index, custody, self.known, self.firsts)
        # 6
        _check_time(where, custody, self.known, self.exports, found)
        # 7
        if sealed_at is not None and custody.recorded_ns > sealed_at + CLOCK_TOLERANCE_NS:
            found.warnings.append(
                f"{where} was signed {(custody.recorded_ns - sealed_at) / 1e9:,.0f}s after its "
                "segment was sealed: the custodian's and the sealer's clocks disagree"
            )
        found.entries += 1
        found.events[custody.event] += 1
        found.signers.add(custody.custodian)
        if custody.manifest_sha256 is not None:
            found.bundles.add(custody.manifest_sha256)
        return custody


def _check_subject(
    where: str, index: int | None, custody: Custody, known: Known, firsts: dict[bytes, Custody]
) -> None:
    size = custody.checkpoint_size
    if size > known.size or (index is not None and size > index):
        raise TamperedError(
            f"{where} concerns checkpoint {size:,}, a tree larger than the one it stands in"
        )
    root = known.roots.get(size)
    if root is None and known.all_roots:
        raise TamperedError(f"{where} concerns checkpoint {size:,}, which this log never signed")
    if root is not None and root != custody.checkpoint_root:
        raise TamperedError(f"{where} names another root for checkpoint {size:,} than the log's")
    manifest = custody.manifest_sha256
    if manifest is None:
        return
    first = firsts.setdefault(manifest, custody)
    if (first.checkpoint_size, first.checkpoint_root, first.incident) != (
        size,
        custody.checkpoint_root,
        custody.incident,
    ):
        raise TamperedError(
            f"{where} names bundle {manifest.hex()[:16]}… with another checkpoint or incident "
            "than the first custody entry about it"
        )


def _check_time(
    where: str, custody: Custody, known: Known, exports: dict[bytes, int], found: CustodyFindings
) -> None:
    sealed = known.sealed_at.get(custody.checkpoint_size)
    if sealed is None:
        raise MalformedError(
            f"{where} concerns checkpoint {custody.checkpoint_size:,}, whose SEAL leaf the "
            "bundle does not prove (package puts it under seals/)"
        )
    if custody.at_ns < sealed - CLOCK_TOLERANCE_NS:
        found.policy.append(
            f"{where} ({custody.event}) is dated {(sealed - custody.at_ns) / 1e9:,.0f}s before "
            f"checkpoint {custody.checkpoint_size:,} it concerns was sealed"
        )
    manifest = custody.manifest_sha256
    if manifest is None:
        return
    exported = exports.get(manifest)
    if exported is not None and custody.at_ns < exported - CLOCK_TOLERANCE_NS:
        found.policy.append(
            f"{where} ({custody.event}) is dated {(exported - custody.at_ns) / 1e9:,.0f}s "
            f"before the export of bundle {manifest.hex()[:16]}…"
        )
    if custody.event == "export" and exported is None:
        exports[manifest] = custody.at_ns


# -- a store ---------------------------------------------------------------------------------


def store_known(store: Store) -> Known:
    """Every checkpoint of the store and the SEAL time of each segment it closes."""
    roots: dict[int, bytes] = {}
    for path in store.checkpoint_files():
        cp = Checkpoint.from_text(SignedNote.parse(read_bounded(path, MIB, "checkpoint")).text)
        roots[cp.size] = cp.root
    sealed_at = {}
    for seg in store.segment_dirs():
        info = SealInfo.from_entry(read_bounded(seg / "seal.entry", MIB, "SEAL entry"))
        if info.end_index in roots:
            sealed_at[info.end_index] = info.sealed_at_ns
    return Known(max(roots, default=0), roots, sealed_at, True)


def read_logged(store: Store) -> list[Logged]:
    """Every custody event of the store in log order, the queued ones last.

    Each signature is checked against the key the event carries (TAMPERED otherwise);
    whether that key is trusted, and the rest of §16.3, is `acdkit verify`'s check 13.
    """
    return list(_iter_logged(store))


def _iter_logged(store: Store) -> Iterator[Logged]:
    """`read_logged`, one entry at a time: a reader that stops early parses no later one."""
    for seg in store.segment_dirs():
        info = SealInfo.from_entry(read_bounded(seg / "seal.entry", MIB, "SEAL entry"))
        if not store.checkpoint_path(info.end_index).exists():
            break  # an interrupted seal: its entries are not evidence yet
        first = info.first_index + info.record_count
        for offset, data in enumerate(logentries.read_segment_entries(seg, info.entry_count)):
            if data[5] == EntryType.CUSTODY:
                index = first + offset
                yield Logged(_parsed(store, data[38:], index), index, body=data[38:])
    for name, data in logentries.pending_entries(store):
        if data[5] == EntryType.CUSTODY:
            yield Logged(_parsed(store, data[38:], None, name), pending=name, body=data[38:])


def _parsed(store: Store, body: bytes, index: int | None, name: str | None = None) -> Custody:
    where = f"queued CUSTODY entry pending/{name}" if name is not None else _where(index)
    try:
        custody = parse_custody(body)
    except MalformedError as exc:
        raise MalformedError(f"{where}: {exc.message}") from None
    if not custody.verifies(store.origin):
        raise TamperedError(_unsigned(where, custody))
    return custody


def _unsigned(where: str, custody: Custody) -> str:
    assert custody.custodian is not None
    return (
        f"{where}: the signature does not verify with the custodian key "
        f"{custody.custodian.key_id.hex()} it names (an edited entry)"
    )


def check_queued_custody(store: Store, body: bytes) -> Custody:
    """Refuse, before a seal, a queued CUSTODY entry that `acdkit verify` would refuse, and
    one that no registered custodian key stands behind."""
    checker, trust = _checker_before(store, body)
    return _check_new(checker, body, trust)


def _checker_before(store: Store, body: bytes) -> tuple[_Checker, custodians.CustodianTrust]:
    """A checker that has read (not judged again) the entries logged before ``body``, for
    what they say of the bundles it may concern; a damaged one fails as it is."""
    trust = custodians.store_trust(store)
    if trust is None:
        raise UsageError(
            "no custodian keys are registered for this store: a custody entry's signer "
            "could be anyone",
            hint="register the handler's key: acdkit keys add-custodian STORE VKEY",
        )
    checker = _Checker(store.origin, store_known(store))
    for earlier in _iter_logged(store):  # lazily: a later queued entry is not this one's fault
        if earlier.body == body:
            break  # the queued entry itself (seal checks what is queued)
        checker.check(earlier.index, earlier.body, None, None)
    return checker, trust


def _check_new(checker: _Checker, body: bytes, trust: custodians.CustodianTrust) -> Custody:
    before = len(checker.found.policy)
    custody = checker.check(None, body, None, trust)
    if len(checker.found.policy) > before:
        raise PolicyError(checker.found.policy[-1])
    return custody


def signed_entry(store: Store, signer: Signer, custody: Custody) -> tuple[Custody, bytes]:
    """``custody`` signed now by the custodian key, refused (USAGE) if the next seal would
    refuse it: a key that the store's list or trust policy does not name, a bad field, a
    time before what it concerns."""
    signed = replace(custody, recorded_ns=time.time_ns())
    try:
        parsed, body = signed.sign(signer, store.origin)
    except MalformedError as exc:
        raise UsageError(exc.message) from None
    checker, trust = _checker_before(store, body)
    try:
        _check_new(checker, body, trust)
    except PolicyError as exc:
        clocks = "check --at and the clocks of this host and of the collector"
        raise UsageError(exc.message, hint=clocks) from None
    except TamperedError as exc:
        untrusted = "does not list" in exc.message or "outside its window" in exc.message
        hint = (
            "register the key: `acdkit keys add-custodian STORE VKEY` (and in the trust "
            "policy, when it names custodians)"
            if untrusted
            else None
        )
        raise UsageError(exc.message, hint=hint) from None
    return parsed, body


def record(store: Store, signer: Signer, custody: Custody) -> tuple[Path, Custody]:
    """Sign ``custody`` with the custodian key and queue it for the next seal."""
    parsed, body = signed_entry(store, signer, custody)
    return logentries.add_pending(store, EntryType.CUSTODY, body), parsed


# -- the statement a bundle carries about its own export ------------------------------------


def export_statement(incident: str, size: int, custody: Custody | None) -> bytes:
    """``custody/export.json``: who exported the bundle, or that no custodian signed it.

    The export's CUSTODY entry names the bundle's manifest, so it cannot be inside the
    bundle it describes: the statement says whose key signed it (§16.4).
    """
    doc: dict[str, Any] = {"format": EXPORT_FORMAT, "incident": incident, "checkpoint": size}
    if custody is None or custody.custodian is None:
        doc.update(
            signed=False,
            statement="No custodian signed the export of this bundle: it was packaged without "
            "a custodian key, and its export is not logged as a CUSTODY entry.",
        )
    else:
        doc.update(
            signed=True,
            custodian=custody.custodian.vkey(),
            handler=custody.handler,
            to=custody.recipient,
            at=datetime.fromtimestamp(custody.at_ns // 10**9, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            at_ns=custody.at_ns,
            statement="The export of this bundle is logged in the sender's log as a CUSTODY "
            "entry signed by this custodian key. It names this bundle's manifest SHA-256, so "
            "it is sealed after the bundle was made: a later bundle of the incident proves "
            "it, and `acdkit custody show` lists it.",
        )
    return (json.dumps(doc, indent=2, ensure_ascii=True) + "\n").encode()


def parse_export_statement(data: bytes, incident: str, size: int) -> dict[str, Any]:
    """A bundle's ``custody/export.json``, strictly enough to report it (MALFORMED)."""
    try:
        doc = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise MalformedError("custody/export.json is not JSON") from None
    if not isinstance(doc, dict) or doc.get("format") != EXPORT_FORMAT:
        raise MalformedError(f"custody/export.json is not an {EXPORT_FORMAT} document")
    if not isinstance(doc.get("signed"), bool):
        raise MalformedError("custody/export.json does not say whether the export was signed")
    if doc.get("incident") != incident or doc.get("checkpoint") != size:
        raise MalformedError("custody/export.json describes another incident or checkpoint")
    if doc["signed"]:
        vkey = doc.get("custodian")
        if not isinstance(vkey, str) or Verifier.parse(vkey).vkey() != vkey:
            raise MalformedError("custody/export.json names no custodian vkey")
    return doc
