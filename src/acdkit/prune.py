"""Declared retention pruning: remove the records of old segments, as the root allows.

The organization's root key declares in the trust policy a bound N (``prune-below N``,
§7.2): the records of segments that end at or below index N may be removed.  `prune` logs
that it acts on the declaration first, as a PRUNE entry sealed into the log (naming the
policy by serial and SHA-256), and only then removes records, one whole segment at a time:
its Parquet files and segment key go, ``pruned.range`` (acdkit.prunedtree) keeps the
hashes that every checkpoint root still needs.  A verifier then reports "pruned below N per
policy P" instead of TAMPERED (docs/evidence-format.md §17).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from acdkit import logentries
from acdkit._files import MIB, read_bounded
from acdkit.encoding import EntryType, TlvType, entry, parse_tlv, tlv
from acdkit.errors import ExitCode, MalformedError, TamperedError, UsageError, error_for
from acdkit.keys import Signer
from acdkit.merkle import range_subtrees
from acdkit.policy import LoadedPolicy, load_policy
from acdkit.prunedtree import PRUNED_FILE, RECORD_FILES, is_pruned, leftovers
from acdkit.seal import SealReport, check_sealer, seal_locked, segment_leaves
from acdkit.sealinfo import SealInfo
from acdkit.store import TMP_PREFIX, Store, atomic_write, fsync_dir

__all__ = ["PruneEvent", "PruneFindings", "PruneReport", "check_pruning", "prune"]

_TYPES = {1: TlvType.U64, 2: TlvType.U64, 3: TlvType.BYTES, 4: TlvType.I64}
_WIDTHS = {1: 8, 2: 8, 3: 32, 4: 8}


@dataclass(frozen=True)
class PruneEvent:
    """The body of a PRUNE entry (§17.2): pruning below ``bound`` per policy ``serial``."""

    bound: int
    policy_serial: int
    policy_sha256: bytes  # of the policy file, the signed note byte for byte
    at_ns: int  # when it was logged, the sealer's clock

    def body(self) -> bytes:
        return b"".join(
            [
                tlv(1, TlvType.U64, self.bound.to_bytes(8, "big")),
                tlv(2, TlvType.U64, self.policy_serial.to_bytes(8, "big")),
                tlv(3, TlvType.BYTES, self.policy_sha256),
                tlv(4, TlvType.I64, self.at_ns.to_bytes(8, "big", signed=True)),
            ]
        )

    @classmethod
    def parse(cls, body: bytes) -> PruneEvent:
        """Exactly fields 1-4, each of its type and width; bound and serial 1 to 2^63 - 1."""
        if len(body) > 256:
            raise MalformedError("a PRUNE body is longer than its four fields")
        fields = {fid: (kind, value) for fid, kind, value in parse_tlv(body)}
        if set(fields) != set(_TYPES):
            raise MalformedError("a PRUNE body has exactly the fields 1, 2, 3 and 4")
        for fid, (kind, value) in fields.items():
            if kind != _TYPES[fid] or len(value) != _WIDTHS[fid]:
                raise MalformedError(f"PRUNE field {fid} has the wrong type or length")
        bound, serial = (int.from_bytes(fields[f][1], "big") for f in (1, 2))
        if not (0 < bound < 1 << 63 and 0 < serial < 1 << 63):
            raise MalformedError("a PRUNE bound or policy serial is 0 or not below 2^63")
        at = int.from_bytes(fields[4][1], "big", signed=True)
        return cls(bound, serial, fields[3][1], at)


def sealed_prunes(entries: Iterable[tuple[int, bytes]]) -> list[tuple[int, PruneEvent]]:
    """The PRUNE entries among (leaf index, entry bytes) of sealed log entries."""
    out = []
    for index, data in entries:
        if data[5] != EntryType.PRUNE:
            continue
        try:
            out.append((index, PruneEvent.parse(data[38:])))
        except MalformedError as exc:
            raise MalformedError(f"PRUNE entry at index {index}: {exc.message}") from None
    return out


@dataclass
class PruneFindings:
    """What check 15 found: the PRUNE entries, the pruned segments, who authorized them."""

    entries: list[tuple[int, PruneEvent]] = field(default_factory=list)
    pruned: list[tuple[str, SealInfo]] = field(default_factory=list)
    authority: tuple[int, PruneEvent] | None = None  # the entry that covers the extent
    declared: int | None = None  # the governing (newest) policy's bound

    @property
    def extent(self) -> int:
        """Records below this index are gone: the largest end of a pruned segment."""
        return max((info.end_index for _n, info in self.pruned), default=0)

    @property
    def records(self) -> int:
        return sum(info.record_count for _n, info in self.pruned)

    def sentence(self) -> str:
        if not self.pruned:
            if not self.entries:
                return "no segment pruned"
            index, event = self.entries[-1]
            return (
                f"pruning below {event.bound:,} logged at index {index:,} per policy "
                f"{event.policy_serial}; no segment pruned yet"
            )
        assert self.authority is not None
        index, event = self.authority
        return (
            f"pruned below {self.extent:,} per policy {event.policy_serial} "
            f"(sha256 {event.policy_sha256.hex()[:16]}…): {self.records:,} records of "
            f"{len(self.pruned)} segments removed, their hashes kept; logged at index "
            f"{index:,}; the trust policy allows pruning below {self.declared or 0:,}"
        )

    def to_json(self) -> dict[str, Any]:
        auth = self.authority[1] if self.authority else None
        return {
            "pruned_below": self.extent,
            "segments": len(self.pruned),
            "records": self.records,
            "policy_serial": auth.policy_serial if auth else None,
            "policy_sha256": auth.policy_sha256.hex() if auth else None,
            "logged_at_index": self.authority[0] if self.authority else None,
            "declared_below": self.declared,
            "prune_entries": len(self.entries),
        }


def check_pruning(
    segments: Sequence[tuple[str, SealInfo, bool]],
    entries: Iterable[tuple[int, bytes]],
    loaded: LoadedPolicy | None,
) -> PruneFindings:
    """Check 14 of a store: (segment name, SEAL, pruned?) and the sealed log entries.

    1. Every PRUNE entry parses (MALFORMED), its bound is at most its own leaf index, and
       the store's policy history holds the policy it names with that SHA-256, declaring a
       bound at least as large (TAMPERED: a policy replaced or rolled back, or a bound the
       root never declared).
    2. The largest end index E of a pruned segment is at most the bound of a PRUNE entry
       and at most the bound of the newest trust policy (TAMPERED: records removed without
       a declaration, or more than declared).
    """
    found = PruneFindings(sealed_prunes(entries))
    found.declared = loaded.policy.prune_below if loaded is not None else None
    # 1
    for index, event in found.entries:
        where = f"PRUNE entry at index {index:,}"
        if event.bound > index:
            raise TamperedError(f"{where} allows pruning below {event.bound:,}, past itself")
        record = loaded.record(event.policy_serial) if loaded is not None else None
        if record is None:
            raise TamperedError(
                f"{where} names trust policy {event.policy_serial}, which the store does not "
                "hold (its policies were rolled back or removed)"
            )
        if record.sha256 != event.policy_sha256:
            raise TamperedError(
                f"{where} names trust policy {event.policy_serial} with SHA-256 "
                f"{event.policy_sha256.hex()[:16]}…; the store's file has "
                f"{record.sha256.hex()[:16]}… (the policy was replaced)"
            )
        if record.prune_below is None or event.bound > record.prune_below:
            raise TamperedError(
                f"{where} prunes below {event.bound:,}, but trust policy "
                f"{event.policy_serial} declares " + _declared(record.prune_below)
            )
    # 2
    found.pruned = [(name, info) for name, info, pruned in segments if pruned]
    if not found.pruned:
        return found
    extent = found.extent
    found.authority = next(((i, e) for i, e in found.entries if e.bound >= extent), None)
    if found.authority is None:
        raise TamperedError(
            f"the records of {len(found.pruned)} segments below index {extent:,} were removed "
            "and no sealed PRUNE entry declares it ("
            + (
                f"the largest logged bound is {max(e.bound for _i, e in found.entries):,})"
                if found.entries
                else "none at all)"
            )
        )
    if found.declared is None or extent > found.declared:
        raise TamperedError(
            f"records are pruned below {extent:,}, but the newest trust policy declares "
            + _declared(found.declared)
        )
    return found


def _declared(bound: int | None) -> str:
    return "no pruning" if bound is None else f"pruning below {bound:,} only"


def check_queued_prune(store: Store, body: bytes, size: int) -> None:
    """Refuse, before a seal, a queued PRUNE entry that check 15 would refuse; ``size`` is
    the tree size before the seal, below the entry's own index."""
    event = PruneEvent.parse(body)
    if event.bound > size:
        raise TamperedError(f"a PRUNE entry below {event.bound:,} in a log of {size:,} leaves")
    check_pruning([], [(size, entry(EntryType.PRUNE, body))], load_policy(store, None))


# -- the command -------------------------------------------------------------------------------


@dataclass
class PruneReport:
    bound: int
    declared: int
    policy_serial: int
    policy_sha256: str
    logged_at: int | None  # leaf index of the PRUNE entry that covers the bound (None: none
    # was needed, as no segment with records ends at or below it)
    sealed: SealReport | None  # the seal that logged it, when this run logged it
    segments: list[dict[str, Any]] = field(default_factory=list)  # pruned by this run
    finished: list[str] = field(default_factory=list)  # interrupted prunes completed

    @property
    def records(self) -> int:
        return sum(int(s["records"]) for s in self.segments)


def prune(store: Store, signer: Signer, below: int | None = None) -> PruneReport:
    """Remove the records of every segment that ends at or below the bound.

    The bound is ``below``, else the newest trust policy's ``prune-below``; more than the
    policy declares is refused.  The store must verify first (pruning is irreversible and
    must not bury damage); the PRUNE entry is sealed before any record is removed; each
    segment goes in two durable steps (``pruned.range`` written, then its record files
    removed), so a kill at any point leaves a store that verifies and a rerun finishes.
    """
    with store.lock():
        check_sealer(store, signer)
        loaded = _declaring_policy(store)
        declared = loaded.policy.prune_below
        assert declared is not None
        bound = declared if below is None else below
        if not 0 < bound <= declared:
            raise UsageError(
                f"--below {bound:,} is not allowed: trust policy {loaded.policy.serial} "
                f"declares pruning below {declared:,} only"
            )
        size = _verified_size(store)
        if bound > size:
            # a PRUNE entry's bound lies within the log that holds it (§17.4, §17.6)
            raise UsageError(
                f"the bound {bound:,} lies beyond the log's {size:,} leaves",
                hint=f"prune what is sealed so far with --below {size}",
            )
        if not _queued_prune(store) and not _prunable(store, bound):
            # a PRUNE entry for nothing would stay in the log for ever: log none
            found = _covering(store, bound)
            return PruneReport(bound, declared, loaded.policy.serial, loaded.sha256, found, None)
        sealed, logged = _log_prune(store, signer, loaded, bound)
        report = PruneReport(bound, declared, loaded.policy.serial, loaded.sha256, logged, sealed)
        for seg in store.segment_dirs():
            info = SealInfo.from_entry(read_bounded(seg / "seal.entry", MIB, "SEAL entry"))
            if info.end_index > bound or info.record_count == 0:
                continue
            if is_pruned(seg):
                if leftovers(seg):
                    _remove_records(seg)
                    report.finished.append(seg.name)
                continue
            report.segments.append(_prune_segment(seg, info))
        return report


def _declaring_policy(store: Store) -> LoadedPolicy:
    loaded = load_policy(store, None)
    if loaded is None or loaded.policy.prune_below is None:
        raise UsageError(
            "the trust policy of this store declares no pruning",
            hint="the root key must declare it first: acdkit policy sign --prune-below N",
        )
    return loaded


def _verified_size(store: Store) -> int:
    from acdkit.verify import verify_store  # verify builds on this module

    report = verify_store(store, allow_incomplete=True, require_outside=False)
    if report.verdict != ExitCode.OK:
        message = report.failure["message"] if report.failure else report.verdict_name
        raise error_for(
            report.verdict,
            f"refusing to prune: the store does not verify ({message})",
            hint="run `acdkit verify STORE`; nothing was removed",
        )
    return int(report.facts["tree_size"])


def _log_prune(
    store: Store, signer: Signer, loaded: LoadedPolicy, bound: int
) -> tuple[SealReport | None, int]:
    """The sealed PRUNE entry that covers ``bound``: one already in the log, else a new one
    queued and sealed now (an interrupted run's queued entry is sealed first)."""
    sealed = None
    if _queued_prune(store):
        sealed = seal_locked(store, signer)
    found = _covering(store, bound)
    if found is None:
        event = PruneEvent(
            bound, loaded.policy.serial, bytes.fromhex(loaded.sha256), time.time_ns()
        )
        logentries.add_pending(store, EntryType.PRUNE, event.body())
        sealed = seal_locked(store, signer)
        found = _covering(store, bound)
    assert found is not None
    return sealed, found


def _prunable(store: Store, bound: int) -> bool:
    """Whether a segment with records ends at or below ``bound`` and still has records
    (not pruned yet, or an interrupted prune's leftovers)."""
    for seg in store.segment_dirs():
        info = SealInfo.from_entry(read_bounded(seg / "seal.entry", MIB, "SEAL entry"))
        if info.end_index <= bound and info.record_count and (not is_pruned(seg) or leftovers(seg)):
            return True
    return False


def _queued_prune(store: Store) -> bool:
    return any(
        logentries.parse_entry(data).kind == EntryType.PRUNE
        for _name, data in logentries.pending_entries(store)
    )


def _covering(store: Store, bound: int) -> int | None:
    """Leaf index of the first sealed PRUNE entry whose bound is at least ``bound``."""
    for seg in store.segment_dirs():
        info = SealInfo.from_entry(read_bounded(seg / "seal.entry", MIB, "SEAL entry"))
        first = info.first_index + info.record_count
        found = logentries.read_segment_entries(seg, info.entry_count)
        for index, event in sealed_prunes((first + i, d) for i, d in enumerate(found)):
            if event.bound >= bound:
                return index
    return None


def _prune_segment(seg: Path, info: SealInfo) -> dict[str, Any]:
    """Keep the hashes of the segment's records, then remove the records."""
    leaves = segment_leaves(seg, info)[: info.record_count]
    nodes = range_subtrees(info.first_index, b"".join(leaves))
    freed = sum((seg / n).stat().st_size for n in RECORD_FILES if (seg / n).is_file())
    atomic_write(seg / PRUNED_FILE, b"".join(node for _h, node in nodes))
    _remove_records(seg)
    return {
        "segment": seg.name,
        "first_index": info.first_index,
        "end_index": info.end_index,
        "records": info.record_count,
        "bytes_freed": freed,
        "hashes_kept": len(nodes),
    }


def _remove_records(seg: Path) -> None:
    # the segment key last: until it goes, the records that are left could still be read
    for name in RECORD_FILES:
        (seg / name).unlink(missing_ok=True)
    for tmp in seg.glob(f"{TMP_PREFIX}*"):  # a pruned.range half written by a killed run
        tmp.unlink()
    fsync_dir(seg)
