"""Seal: turn staged records into a signed segment of the evidence log.

For each segment: assign global indices, build canonical bodies and salted leaf hashes,
write the records with their ``log_index`` and ``integrity_hash``, append a SEAL leaf that
carries the segment's metadata and the previous checkpoint's hash, and sign a checkpoint.
Order of durable steps: segment directory (rename), checkpoint (rename), sealer state,
then staged inputs are retired.  `recover` finishes whatever a crash interrupted.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import logging
import os
import shutil
import socket
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from acdkit import __version__, logentries, schema
from acdkit._files import MIB, read_bounded, read_json
from acdkit.encoding import EntryType, parse_tlv
from acdkit.errors import AcdkitError, MalformedError, PolicyError, TamperedError, UsageError
from acdkit.keychain import ROTATE, KeyChain, parse_key_event, read_chain
from acdkit.keys import Signer, Verifier
from acdkit.leaves import Job, hashed
from acdkit.merkle import CompactRange, leaf_hash
from acdkit.note import Checkpoint, SignedNote, sign_note
from acdkit.sealinfo import SealInfo, segment_name
from acdkit.staged import read_staged, staged_batches, staged_ledger_id
from acdkit.store import (
    TMP_PREFIX,
    Store,
    atomic_write,
    fsync_dir,
    read_ledger_entry,
    write_json,
)

__all__ = ["SealReport", "check_sealer", "recover", "seal", "unsigned_segment_problem"]

log = logging.getLogger(__name__)

DEFAULT_MAX_RECORDS = 1_000_000
BATCH_ROWS = 131_072
PENDING_LIST = "pending.json"  # in a segment: the queued entries it holds
ProgressFn = Callable[[int, int], None]  # (records sealed, records to seal)


# -- sealer state ---------------------------------------------------------------------------


@dataclass
class SealerState:
    compact: CompactRange
    segment_no: int
    prev_checkpoint: bytes

    def to_json(self) -> dict[str, Any]:
        return {
            "size": self.compact.size,
            "nodes": [base64.b64encode(n).decode() for n in self.compact.nodes],
            "segment_no": self.segment_no,
            "prev_checkpoint_sha256": self.prev_checkpoint.hex(),
        }

    @classmethod
    def load(cls, store: Store) -> SealerState:
        if not store.state_path.is_file():
            return cls(CompactRange(), 0, bytes(32))
        doc = read_json(store.state_path, 4 * MIB, "sealer state")
        try:
            nodes = [base64.b64decode(n, validate=True) for n in doc["nodes"]]
            return cls(
                CompactRange(int(doc["size"]), nodes),
                int(doc["segment_no"]),
                bytes.fromhex(doc["prev_checkpoint_sha256"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise MalformedError(
                f"sealer state {store.state_path} is damaged ({exc})",
                hint="run `acdkit verify`; nothing is sealed on top of a damaged state",
            ) from None


@dataclass
class SealReport:
    segments: list[dict[str, Any]]
    recovered: list[str]
    size: int
    root: bytes
    key_id: str
    seconds: float

    @property
    def records(self) -> int:
        return sum(int(s["records"]) for s in self.segments)


def _sealed_writer(path: Path, sealed_schema: pa.Schema) -> pq.ParquetWriter:
    """zstd throughout but for the random hashes; dictionaries only for text columns.

    Dictionary-encoding integers and per-connection ids costs more CPU than it saves
    bytes (measured: the whole write 2x slower and the file no smaller); the writer falls
    back to plain pages by itself where a text column has too many distinct values.
    """
    compression = {name: "zstd" for name in sealed_schema.names}
    compression["integrity_hash"] = "none"
    dictionary = [
        f.name
        for f in sealed_schema
        if (pa.types.is_string(f.type) or pa.types.is_large_string(f.type))
        and f.name != "session_id"
    ]
    return pq.ParquetWriter(path, sealed_schema, compression=compression, use_dictionary=dictionary)


def _parquet_info(path: Path, count: int, schema_digest: str) -> dict[str, Any]:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(1 << 20):
            h.update(block)
    return {
        "count": count,
        "sha256": h.hexdigest(),
        "size": path.stat().st_size,
        "schema": schema_digest,
    }


def _sign_checkpoint(
    store: Store, signer: Signer, size: int, root: bytes, earlier: Sequence[Verifier] = ()
) -> bytes:
    """Write checkpoints/<size>.checkpoint once; return the note bytes.

    An existing checkpoint is kept if it is this note, or the same tree head signed by an
    ``earlier`` key of the log (a crash after a rotation's checkpoint, before the state).
    """
    text = Checkpoint(store.origin, size, root).text()
    note = sign_note(text, signer).encode()
    path = store.checkpoint_path(size)
    if path.exists():
        existing = read_bounded(path, MIB, "checkpoint")
        try:
            parsed = SignedNote.parse(existing)
            same_head = parsed.text == text
        except MalformedError:
            same_head = False
        if same_head and any(parsed.verified_by(k) for k in earlier):
            return existing
        if existing != note:
            # Ed25519 is deterministic: the same tree head signs to the same bytes
            raise TamperedError(f"{path.name} exists with different content than the log implies")
        return existing
    atomic_write(path, note)
    return note


def _retire_staged(store: Store, staged: Path) -> None:
    """Move a sealed input's ledger entry and line log out of staging, then remove it."""
    if not staged.is_dir():
        return
    entry_doc = read_ledger_entry(staged / "ledger.json")
    sha = entry_doc["sha256"]
    lines = staged / "lines.parquet"
    if lines.is_file():
        atomic_write(store.rejects_dir / f"{sha}.parquet", lines.read_bytes())
    write_json(store.ledger_dir / f"{sha}.json", entry_doc)
    # renamed out of staging in one step first: a kill inside the removal then leaves a
    # temporary that the next run deletes, never a staged input without its ledger entry
    trash = store.staging / f"{TMP_PREFIX}retired-{staged.name}"
    staged.rename(trash)
    fsync_dir(store.staging)
    shutil.rmtree(trash)


def _staged_count(staged: Path) -> int:
    doc = read_ledger_entry(staged / "ledger.json")
    return int(sum(doc["records"].values()))


def _groups(staged: list[Path], max_records: int) -> list[list[Path]]:
    groups: list[list[Path]] = [[]]
    count = 0
    for d in staged:
        n = _staged_count(d)
        if groups[-1] and count + n > max_records:
            groups.append([])
            count = 0
        groups[-1].append(d)
        count += n
    return [g for g in groups if g]


def _seal_segment(
    store: Store,
    signer: Signer,
    state: SealerState,
    group: list[Path],
    queued: list[tuple[str, bytes]],
    progress: ProgressFn | None,
    done: int,
    total: int,
) -> dict[str, Any]:
    start = state.compact.size
    tmp = store.new_temp_dir(store.segments)
    segment_key = os.urandom(32)
    atomic_write(tmp / "segment.key", segment_key, mode=0o600)
    index = start
    tables: dict[str, dict[str, Any]] = {}
    bounds: list[tuple[int, int]] = []
    total_in_group = sum(_staged_count(d) for d in group)
    writers: dict[str, pq.ParquetWriter] = {}
    counts: dict[str, int] = {}

    def jobs() -> Iterator[Job]:
        position = 0
        for table in schema.TABLES:
            for d in group:
                ledger_id = staged_ledger_id(d)
                for batch, (path, number) in staged_batches(d, table):
                    source = (path, number, ledger_id)
                    yield Job(table, batch, segment_key, position, start + position, source)
                    position += batch.num_rows

    try:
        for job, result in hashed(jobs(), total_in_group):
            table, batch, n = job.table, job.batch, job.batch.num_rows
            sealed_schema = schema.load(table).sealed_arrow()
            if table not in writers:
                writers[table] = _sealed_writer(tmp / f"{table}.parquet", sealed_schema)
            state.compact.append_range(result.subtrees)
            hashes = result.leaves
            cols = [
                pa.array(np.arange(index, index + n, dtype=np.uint64)),
                *batch.columns,
                pa.FixedSizeBinaryArray.from_buffers(
                    pa.binary(32), n, [None, pa.py_buffer(hashes)]
                ),
            ]
            writers[table].write_batch(pa.RecordBatch.from_arrays(cols, schema=sealed_schema))
            lo, hi = pc.min_max(batch.column("ts_utc").cast(pa.int64())).values()
            bounds.append((lo.as_py(), hi.as_py()))
            counts[table] = counts.get(table, 0) + n
            index += n
            done += n
            if progress:
                progress(done, total)
    finally:
        for writer in writers.values():
            writer.close()
    for table in writers:
        tables[table] = _parquet_info(
            tmp / f"{table}.parquet", counts[table], schema.load(table).digest
        )
    records = index - start
    for _name, data in queued:
        state.compact.append(leaf_hash(data))
        index += 1
    if queued:
        atomic_write(tmp / logentries.ENTRIES_FILE, logentries.pack([d for _n, d in queued]))
    ts_lo = min((b[0] for b in bounds), default=None)
    ts_hi = max((b[1] for b in bounds), default=None)
    info = SealInfo(
        origin=store.origin,
        segment_no=state.segment_no,
        first_index=start,
        end_index=index + 1,
        record_count=records,
        prev_checkpoint=state.prev_checkpoint,
        sealed_at_ns=time.time_ns(),
        tool=f"acdkit {__version__}",
        sealer_key_id=signer.verifier.key_id,
        sources=[read_ledger_entry(d / "ledger.json")["sha256"] for d in group],
        ts_min_ns=ts_lo,
        ts_max_ns=ts_hi,
        tables=tables,
        collector=socket.gethostname(),
        entry_count=len(queued),
    )
    seal_entry = info.entry()
    atomic_write(tmp / "seal.entry", seal_entry)
    write_json(tmp / "consumed.json", [d.name for d in group])
    if queued:
        write_json(tmp / PENDING_LIST, [name for name, _d in queued])
    fsync_dir(tmp)
    final = store.segments / segment_name(start, info.end_index)
    tmp.rename(final)
    fsync_dir(store.segments)
    state.compact.append(leaf_hash(seal_entry))
    return _close_segment(store, signer, state, final, info)


def _close_segment(
    store: Store,
    signer: Signer,
    state: SealerState,
    seg: Path,
    info: SealInfo,
    earlier: Sequence[Verifier] = (),
) -> dict[str, Any]:
    root = state.compact.root()
    note = _sign_checkpoint(store, signer, info.end_index, root, earlier)
    state.segment_no = info.segment_no + 1
    state.prev_checkpoint = hashlib.sha256(note).digest()
    write_json(store.state_path, state.to_json())
    for name in _consumed(seg):
        _retire_staged(store, store.staging / name)
    _retire_pending(store, seg)
    return {
        "segment": seg.name,
        "segment_no": info.segment_no,
        "first_index": info.first_index,
        "end_index": info.end_index,
        "records": info.record_count,
        "log_entries": info.entry_count,
        "root": base64.b64encode(root).decode(),
    }


def segment_leaves(seg: Path, info: SealInfo) -> list[bytes]:
    """A sealed segment's leaf hashes as stored (records, log entries, SEAL).

    A pruned segment has no record leaves any more: it is refused here, and read as
    pieces (acdkit.prunedtree.segment_pieces) where the tree is all that is needed.
    """
    from acdkit.prunedtree import PRUNED_FILE  # it builds on this module

    if (seg / PRUNED_FILE).exists():
        raise UsageError(f"segment {seg.name} is pruned: its record leaves are gone")
    leaves: list[bytes] = []
    for table in schema.TABLES:
        path = seg / f"{table}.parquet"
        if path.is_file():
            col = pq.read_table(path, columns=["integrity_hash"]).column(0)
            leaves += col.to_pylist()
    leaves += [leaf_hash(e) for e in logentries.read_segment_entries(seg, info.entry_count)]
    leaves.append(leaf_hash(read_bounded(seg / "seal.entry", MIB, "SEAL entry")))
    return leaves


def _pending_list(seg: Path) -> list[str]:
    """The queued log entries a segment was sealed with (its pending.json)."""
    path = seg / PENDING_LIST
    if not path.exists():
        return []
    names = read_json(path, 16 * MIB, "segment entry list")
    if not isinstance(names, list) or not all(isinstance(n, str) and "/" not in n for n in names):
        raise MalformedError(f"segment {seg.name}: {PENDING_LIST} is not a list of names")
    return names


def _retire_pending(store: Store, seg: Path) -> None:
    names = _pending_list(seg)
    for name in names:
        (store.pending / name).unlink(missing_ok=True)
    if names:
        fsync_dir(store.pending)


def _consumed(seg: Path) -> list[str]:
    """The staging directories a segment was sealed from (its consumed.json)."""
    names = read_json(seg / "consumed.json", 16 * MIB, "segment input list")
    if not isinstance(names, list) or not all(isinstance(n, str) and "/" not in n for n in names):
        raise MalformedError(f"segment {seg.name}: consumed.json is not a list of names")
    return names


def unsigned_segment_problem(store: Store, seg: Path, info: SealInfo) -> str | None:
    """Why a segment without a checkpoint cannot be what a crash of `seal` left, or None.

    A crash between the segment's rename and its checkpoint leaves every input it was
    sealed from still staged (inputs are retired only after the checkpoint), named as in
    its consumed.json, holding the files its SEAL lists, and holding its records exactly.
    """
    try:
        names = _consumed(seg)
    except AcdkitError as exc:
        return exc.message
    group = [store.staging / n for n in names]
    problem = _unsigned_entries_problem(store, seg, info)
    if problem is not None:
        return problem
    if not names and info.record_count == 0:
        return None  # a heartbeat, or log entries only: nothing else to compare
    if not names or not all(d.is_dir() for d in group):
        return "its inputs are no longer staged"
    try:
        shas = [read_ledger_entry(d / "ledger.json")["sha256"] for d in group]
    except AcdkitError as exc:
        return exc.message
    if any(not n.endswith(sha) for n, sha in zip(names, shas, strict=True)) or shas != info.sources:
        return "its staged inputs are not the source files its SEAL names"
    for table in schema.TABLES:
        path = seg / f"{table}.parquet"
        staged = pa.concat_tables([read_staged(d, table) for d in group])
        if not path.is_file():
            if staged.num_rows:
                return f"its {table} records are missing"
            continue
        try:
            sealed = pq.read_table(path).drop_columns(["log_index", "integrity_hash"])
            same = staged.cast(sealed.schema).equals(sealed)
        except (pa.ArrowException, KeyError, ValueError):
            same = False
        if not same:
            return f"its {table} records differ from its staged inputs"
    return None


def _unsigned_entries_problem(store: Store, seg: Path, info: SealInfo) -> str | None:
    """Its log entries must be exactly the queued ones it names, still queued."""
    try:
        names = _pending_list(seg)
        found = logentries.read_segment_entries(seg, info.entry_count)
    except AcdkitError as exc:
        return exc.message
    if len(names) != len(found):
        return "its log entries are not the queued entries it names"
    for name, data in zip(names, found, strict=True):
        path = store.pending / name
        try:
            queued = read_bounded(path, logentries.MAX_ENTRY_BYTES, "queued log entry")
        except AcdkitError:
            return "its queued log entries are no longer queued"
        if queued != data:
            return f"its log entry from pending/{name} differs from the queued one"
    return None


def _discard_unsigned(store: Store, seg: Path, info: SealInfo) -> str:
    """Drop a segment that a crash left without its checkpoint, so its inputs seal again.

    Such a segment was never signed, so nothing anyone holds refers to it.  It is never
    signed as found: an unsigned segment is only as trustworthy as whoever can write the
    store.  It is dropped only if it is exactly what a crash leaves (see
    `unsigned_segment_problem`); anything else is refused as tampering.
    """
    problem = unsigned_segment_problem(store, seg, info)
    if problem is not None:
        raise TamperedError(
            f"segment {seg.name} has no checkpoint and {problem}, "
            "which no crash of `acdkit seal` leaves behind",
            hint="a checkpoint was deleted or the sealer state rolled back; "
            "run `acdkit verify` and keep this store as it is for examination",
        )
    trash = store.segments / f"{TMP_PREFIX}discard-{seg.name}"
    seg.rename(trash)
    fsync_dir(store.segments)
    shutil.rmtree(trash)
    return f"discarded unsigned segment {seg.name} left by an interrupted seal; sealing again"


def _named_range(seg: Path) -> tuple[int, int] | None:
    """The index range a segment directory's name claims, or None if it is no such name."""
    parts = seg.name.split("-")
    if len(parts) != 2 or not all(p.isascii() and p.isdigit() and len(p) == 20 for p in parts):
        return None
    return int(parts[0]), int(parts[1])


def _names_chain(segs: Sequence[Path]) -> bool:
    """Whether the segments' names claim back-to-back index ranges from 0."""
    end = 0
    for seg in segs:
        named = _named_range(seg)
        if named is None or named[0] != end or named[1] < named[0]:
            return False
        end = named[1]
    return True


def _segment_info(seg: Path) -> SealInfo:
    """A segment's SEAL, checked against the index range its directory name claims."""
    named = _named_range(seg)
    if named is None:
        raise TamperedError(f"segments/{seg.name} is not a segment that a seal made")
    info = SealInfo.from_entry(read_bounded(seg / "seal.entry", MIB, "SEAL entry"))
    if (info.first_index, info.end_index) != named:
        raise TamperedError(
            f"segment {seg.name} holds the SEAL of {info.first_index}-{info.end_index}: "
            "it was renamed"
        )
    return info


def recover(
    store: Store, signer: Signer, state: SealerState, earlier: Sequence[Verifier] = ()
) -> list[str]:
    """Finish a seal that a crash interrupted: orphan segment, missing checkpoint, staging.

    ``earlier`` are the log's previous sealer keys, whose checkpoints are kept as they are.
    """
    done: list[str] = []
    segs = store.segment_dirs()
    # when the directory names alone chain from index 0 (renamed, foreign or missing ones
    # break it), the segments that this state covers are not read again: heartbeats pile up
    # thousands of them, and checking them is verify's work
    chained = _names_chain(segs)
    for seg in segs:
        named = _named_range(seg)
        if chained and named is not None and named[1] <= state.compact.size:
            continue
        info = _segment_info(seg)
        if info.end_index <= state.compact.size:
            continue
        if info.first_index != state.compact.size:
            raise UsageError(
                f"segment {seg.name} does not follow the sealed size "
                f"{state.compact.size}; run `acdkit verify` on this store"
            )
        if not store.checkpoint_path(info.end_index).exists():
            done.append(_discard_unsigned(store, seg, info))
            continue
        # signed but not yet recorded in the state: the existing checkpoint must match the
        # segment byte for byte (`_sign_checkpoint` refuses otherwise); a pruned segment
        # (the state lost) adds the hashes its pruned.range keeps
        from acdkit.prunedtree import segment_pieces

        state.compact.append_range(segment_pieces(seg, info))
        _close_segment(store, signer, state, seg, info, earlier)
        done.append(f"completed interrupted seal of segment {seg.name}")
    size = state.compact.size
    _check_latest_checkpoint(store, state)
    if size and not store.checkpoint_path(size).exists():
        # the state was saved after signing, so the note can be re-made byte for byte
        note = _sign_checkpoint(store, signer, size, state.compact.root())
        if hashlib.sha256(note).digest() != state.prev_checkpoint:
            raise TamperedError(f"checkpoint {size} is missing and cannot be re-made")
        done.append(f"re-wrote missing checkpoint {size}")
    segs = store.segment_dirs()
    if segs:
        for name in _consumed(segs[-1]):
            if (store.staging / name).is_dir():
                _retire_staged(store, store.staging / name)
                done.append(f"retired sealed input {name}")
        if any((store.pending / n).exists() for n in _pending_list(segs[-1])):
            _retire_pending(store, segs[-1])
            done.append("retired sealed log entries")
    return done


def _check_latest_checkpoint(store: Store, state: SealerState) -> None:
    """Refuse to chain onto a latest checkpoint that is not the one this sealer signed.

    The next SEAL carries the hash of the previous checkpoint from the sealer's state, so a
    seal on top of a replaced or damaged one would bury the damage under new segments.
    """
    path = store.checkpoint_path(state.compact.size)
    if not state.compact.size or not (path.exists() or path.is_symlink()):
        return  # none yet, or missing: re-made below when it can be
    if not path.is_file():
        raise TamperedError(
            f"checkpoint {path.name} is not a regular file; run `acdkit verify` on this store"
        )
    if hashlib.sha256(read_bounded(path, MIB, "checkpoint")).digest() != state.prev_checkpoint:
        raise TamperedError(
            f"checkpoint {path.name} is not the one this sealer signed; "
            "run `acdkit verify` on this store"
        )


def seal(
    store: Store,
    signer: Signer,
    max_records: int = DEFAULT_MAX_RECORDS,
    progress: ProgressFn | None = None,
    heartbeat: bool = False,
) -> SealReport:
    """Seal everything staged, in segments of at most about ``max_records`` records.

    Queued log entries go into the last new segment; a queued key rotation gets a segment
    of its own, the last one this key seals.  With ``heartbeat`` a seal happens even when
    nothing is staged or queued: an empty segment whose signed checkpoint shows that the
    log was alive and had nothing to add (quiet periods provably quiet).
    """
    with store.lock():
        return seal_locked(store, signer, max_records, progress, heartbeat)


def check_sealer(store: Store, signer: Signer) -> KeyChain:
    """The log's key chain, when ``signer`` is its current sealer key (USAGE otherwise)."""
    chain = read_chain(store)
    if signer.verifier != chain.current:
        rotated = len(chain.keys) > 1
        raise UsageError(
            f"the sealer key {signer.verifier.key_id.hex()} is not this log's current "
            f"sealer key {chain.current.key_id.hex()}",
            hint="pass the key this log was last rotated to (`acdkit keys rotate`)"
            if rotated
            else "pass the key that `acdkit init` created for this store",
        )
    return chain


def seal_locked(
    store: Store,
    signer: Signer,
    max_records: int = DEFAULT_MAX_RECORDS,
    progress: ProgressFn | None = None,
    heartbeat: bool = False,
) -> SealReport:
    """`seal`, for a caller that holds the store's lock already (`keys rotate`)."""
    started = time.monotonic()
    store.clean_temporaries()
    chain = check_sealer(store, signer)
    state = SealerState.load(store)
    recovered = recover(store, signer, state, chain.keys[:-1])
    staged = store.staged_dirs()
    queued = list(logentries.pending_entries(store))
    _check_queued(store, chain, queued, state.compact.size)
    total = sum(_staged_count(d) for d in staged)
    groups = _groups(staged, max_records)
    if queued and (not groups or _rotates(queued)):
        groups.append([])  # log entries alone, or a rotation after everything staged
    elif not groups and heartbeat:
        groups = [[]]  # a heartbeat with nothing
    segments, done = [], 0
    for number, group in enumerate(groups):
        entries = queued if number == len(groups) - 1 else []
        segments.append(_seal_segment(store, signer, state, group, entries, progress, done, total))
        done += int(segments[-1]["records"])
    return SealReport(
        segments,
        recovered,
        state.compact.size,
        state.compact.root(),
        signer.verifier.key_id.hex(),
        time.monotonic() - started,
    )


def _check_queued(
    store: Store, chain: KeyChain, queued: list[tuple[str, bytes]], size: int
) -> None:
    """Refuse, before anything is sealed, a queued entry the verifier would reject: a KEY
    event the current key did not sign, an ANCHOR or other body that does not parse, a
    CLOCK entry whose conclusions do not follow from its samples, a DECISION or CUSTODY
    entry that its custodian key or the custody rules (§16.3) do not stand behind, a PRUNE
    entry that no policy of the store declares (§17.2; ``size``: the log before this seal).
    Whoever can write pending/ must not be able to break the log by making it sign that."""
    from acdkit.anchor import AnchorRecord  # anchor builds on seal
    from acdkit.clockentry import ClockRecord
    from acdkit.custodians import check_queued_decision
    from acdkit.custodychain import check_queued_custody
    from acdkit.prune import check_queued_prune

    probe = copy.deepcopy(chain)
    for name, data in queued:
        parsed = logentries.parse_entry(data)
        try:
            if parsed.kind == EntryType.KEY:
                probe.apply(probe_segment(probe), [parse_key_event(parsed.body)])
            elif parsed.kind == EntryType.ANCHOR:
                AnchorRecord.from_body(parsed.body)
            elif parsed.kind == EntryType.DECISION:
                check_queued_decision(store, parsed.body)
            elif parsed.kind == EntryType.CUSTODY:
                check_queued_custody(store, parsed.body)
            elif parsed.kind == EntryType.CLOCK:
                ClockRecord.from_body(parsed.body).check()
            elif parsed.kind == EntryType.PRUNE:
                check_queued_prune(store, parsed.body, size)
            else:
                parse_tlv(parsed.body)
        except (MalformedError, TamperedError, PolicyError) as exc:
            raise type(exc)(
                f"queued entry pending/{name} would not verify: {exc.message}",
                hint="nothing was sealed; remove or examine that file, then seal again",
            ) from None


def probe_segment(chain: KeyChain) -> int:
    return len(chain.events)


def _rotates(queued: list[tuple[str, bytes]]) -> bool:
    for _name, data in queued:
        parsed = logentries.parse_entry(data)
        if parsed.kind == EntryType.KEY and parse_key_event(parsed.body).action == ROTATE:
            return True
    return False


def read_checkpoint(data: bytes) -> tuple[SignedNote, Checkpoint]:
    note = SignedNote.parse(data)
    return note, Checkpoint.from_text(note.text)
