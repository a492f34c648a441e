"""Offline verification of an evidence store or a submission bundle.

Every routine lists its checks up front and labels each block with the check's number.  A
check that fails raises the error of its verdict; the report keeps the first failure, its
location and a coverage sentence that says exactly what was verified against what.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from acdkit import custodians, custodychain, logentries, schema
from acdkit._files import MIB, read_bounded
from acdkit.anchorcheck import (
    AnchorResult,
    AnchorTrust,
    check_anchors,
    policy_trust,
    store_claims,
)
from acdkit.clockentry import clock_records
from acdkit.clockstate import (
    anchor_records,
    anchored_bounds,
    clock_points,
    pending_log_entries,
    window_state,
)
from acdkit.cosignature import (
    COSIGNATURE_DIR,
    WitnessPolicy,
    check_cosignatures,
    cosigned_paths,
    read_cosigned,
)
from acdkit.encoding import EntryType, record_leaf_hashes, record_salts
from acdkit.errors import (
    AcdkitError,
    ExitCode,
    IncompleteError,
    InputIOError,
    MalformedError,
    PolicyError,
    TamperedError,
    UsageError,
)
from acdkit.keychain import KeyChain, KeyEvent, parse_key_event
from acdkit.keys import Verifier
from acdkit.merkle import CompactRange, leaf_hash
from acdkit.note import Checkpoint, SignedNote
from acdkit.policy import LoadedPolicy, Policy, anchored_time_findings, load_policy
from acdkit.prune import PruneFindings, check_pruning
from acdkit.prunedtree import is_pruned, leftovers, read_pruned
from acdkit.rebuild import Checker, sealed_problem, spans
from acdkit.remembered import Remembered, check_remembered
from acdkit.seal import unsigned_segment_problem
from acdkit.sealinfo import SealInfo
from acdkit.store import TMP_PREFIX, Store, read_ledger_entry

if TYPE_CHECKING:
    from acdkit.s3client import S3Settings  # boto3 and its client only for --worm

__all__ = ["Check", "VerifyReport", "choose_witnesses", "verify_path", "verify_store"]

log = logging.getLogger(__name__)
BUNDLE_MARKER = "MANIFEST.note"  # bundle.MANIFEST; tests/test_cli.py checks that they agree
REPORT_SCHEMA = "acdkit-verify/1"
BATCH_ROWS = 131_072


@dataclass
class Check:
    id: str
    status: str  # ok | fail | warn | incomplete
    detail: str


@dataclass
class VerifyReport:
    target: str
    kind: str  # store | bundle
    checks: list[Check] = field(default_factory=list)
    verdict: ExitCode = ExitCode.OK
    failure: dict[str, Any] | None = None
    coverage: str = ""
    warnings: list[str] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)

    def ok(self, cid: str, detail: str) -> None:
        self.checks.append(Check(cid, "ok", detail))

    def warn(self, cid: str, detail: str) -> None:
        self.checks.append(Check(cid, "warn", detail))
        self.warnings.append(detail)

    def fail(self, cid: str, exc: AcdkitError, location: dict[str, Any] | None = None) -> None:
        status = "incomplete" if exc.exit_code == ExitCode.INCOMPLETE else "fail"
        self.checks.append(Check(cid, status, exc.message))
        if self.verdict == ExitCode.OK or (
            self.verdict == ExitCode.INCOMPLETE and exc.exit_code != ExitCode.INCOMPLETE
        ):
            self.verdict = exc.exit_code
            self.failure = {"check": cid, "message": exc.message, **(location or {})}

    def to_json(self) -> dict[str, Any]:
        return {
            "schema_version": REPORT_SCHEMA,
            "target": self.target,
            "kind": self.kind,
            "verdict": self.verdict.name if self.verdict else "VERIFIED",
            "exit_code": int(self.verdict),
            "coverage": self.coverage,
            "failure": self.failure,
            "warnings": self.warnings,
            "checks": [c.__dict__ for c in self.checks],
            "facts": self.facts,
        }

    @property
    def verdict_name(self) -> str:
        return "VERIFIED" if self.verdict == ExitCode.OK else self.verdict.name


class _Located(TamperedError):
    def __init__(self, message: str, location: dict[str, Any]) -> None:
        super().__init__(message)
        self.location = location


# -- store -------------------------------------------------------------------------------------


@dataclass
class _Segment:
    path: Path
    info: SealInfo
    entry: bytes
    log_entries: list[bytes] = field(default_factory=list)  # filled in by check 3
    key: Verifier | None = None  # the sealer key that signed its checkpoint (check 3)


def _load_checkpoints(store: Store) -> dict[int, tuple[bytes, Checkpoint]]:
    """Check 2: every checkpoint parses strictly, names this log, and no size has two."""
    out: dict[int, tuple[bytes, Checkpoint]] = {}
    for path in store.checkpoint_files():
        if not path.is_file():  # a directory, device or dangling link in a checkpoint's place
            raise MalformedError(f"checkpoint {path.name} is not a regular file")
        data = read_bounded(path, MIB, "checkpoint")
        try:
            cp = Checkpoint.from_text(SignedNote.parse(data).text)
        except MalformedError as exc:
            if _unsigned_checkpoint(data):
                # sealing downgraded: the tree head kept, its signatures removed (4.1-11)
                raise _Located(
                    f"checkpoint {path.name} carries no signature: its signature lines "
                    "were removed",
                    {"checkpoint": path.name},
                ) from None
            raise MalformedError(f"checkpoint {path.name}: {exc.message}") from exc
        if cp.origin != store.origin:
            raise _Located(
                f"checkpoint {path.name} names origin {cp.origin!r}, the store is {store.origin!r}",
                {"checkpoint": path.name},
            )
        if cp.size in out and out[cp.size][0] != data:
            raise _Located(
                f"two different checkpoints for size {cp.size} (fork)", {"checkpoint": path.name}
            )
        out[cp.size] = (data, cp)
    return out


def _load_segments(store: Store) -> list[_Segment]:
    segments = []
    for path in store.segment_dirs():
        if not (path / "seal.entry").exists():
            # a seal renames a complete segment into place: no crash leaves one without it
            raise TamperedError(
                f"segment {path.name} has no seal.entry (deleted, or not made by a seal)"
            )
        raw = read_bounded(path / "seal.entry", MIB, "SEAL entry")
        try:
            info = SealInfo.from_entry(raw)
        except MalformedError as exc:
            raise MalformedError(f"segment {path.name}: {exc.message}") from exc
        segments.append(_Segment(path, info, raw))
    return sorted(segments, key=lambda s: s.info.first_index)


def _key_events(seg: _Segment) -> list[KeyEvent]:
    seg.log_entries = logentries.read_segment_entries(seg.path, seg.info.entry_count)
    events = []
    for data in seg.log_entries:
        parsed = logentries.parse_entry(data)
        if parsed.kind == EntryType.KEY:
            try:
                events.append(parse_key_event(parsed.body))
            except MalformedError as exc:
                raise MalformedError(f"segment {seg.path.name}: {exc.message}") from None
    return events


def _check_chain(
    store: Store,
    chain: KeyChain,
    segments: list[_Segment],
    checkpoints: dict[int, tuple[bytes, Checkpoint]],
) -> list[_Segment]:
    """Check 3: segments tile [0, size), numbers run 0..k, each SEAL names its predecessor,
    and each checkpoint is signed by the sealer key current at its segment (KEY entries
    rotate and revoke keys, §7.1).

    Returns the segments closed by a checkpoint; a missing checkpoint after the last
    segment is an interrupted seal (INCOMPLETE), anywhere else it is TAMPERED.
    """
    expected_start, prev = 0, bytes(32)
    for no, seg in enumerate(segments):
        info, loc = seg.info, {"segment": seg.path.name}
        if info.first_index != expected_start or info.segment_no != no:
            raise _Located(
                f"segment {seg.path.name} starts at index {info.first_index} as "
                f"number {info.segment_no}; expected index {expected_start} as "
                f"number {no} (a segment is missing or was inserted)",
                loc,
            )
        if info.end_index != info.first_index + info.record_count + info.entry_count + 1:
            raise _Located(f"segment {seg.path.name}: SEAL range and record count disagree", loc)
        if info.origin != store.origin:
            raise _Located(f"segment {seg.path.name}: SEAL names another log", loc)
        if info.sealer_key_id != chain.current.key_id:
            raise _Located(
                f"segment {seg.path.name}: sealed by key {info.sealer_key_id.hex()}, but the "
                f"sealer key then current is {chain.current.key_id.hex()} (a re-seal with "
                "another key, or a rotation that the log does not record)",
                loc,
            )
        if info.prev_checkpoint != prev:
            raise _Located(
                f"segment {seg.path.name}: its SEAL does not carry the hash of the "
                f"checkpoint before it (a checkpoint was removed or replaced)",
                loc,
            )
        if info.end_index not in checkpoints:
            if no == len(segments) - 1:
                return segments[:-1]
            raise _Located(
                f"checkpoint for size {info.end_index} (closing segment "
                f"{seg.path.name}) is missing",
                loc,
            )
        data = checkpoints[info.end_index][0]
        if not SignedNote.parse(data).verified_by(chain.current):
            raise _Located(
                f"checkpoint {info.end_index}: no valid signature by sealer key "
                f"{chain.current.key_id.hex()}, the key current at segment {no}",
                {"checkpoint_size": info.end_index, **loc},
            )
        seg.key = chain.current
        chain.apply(no, _key_events(seg))
        prev = hashlib.sha256(data).digest()
        expected_start = info.end_index
    return segments


def _iter_table(path: Path, columns: list[str] | None = None) -> Iterator[pa.RecordBatch]:
    try:
        yield from pq.ParquetFile(path).iter_batches(BATCH_ROWS, columns=columns)
    except (OSError, ValueError, pa.ArrowException) as exc:
        # ValueError: pyarrow decodes footer names with UnicodeDecodeError left uncaught
        raise MalformedError(
            f"{path.parent.name}/{path.name} is not readable Parquet: {exc}"
        ) from None


def _rebuild_segment(seg: _Segment, compact: CompactRange, report: VerifyReport) -> None:
    """Check 4: records -> canonical bodies -> salted leaves; compare, extend the tree."""
    if is_pruned(seg.path):
        _rebuild_pruned(seg, compact, report)
        return
    info, index = seg.info, seg.info.first_index
    try:
        with (seg.path / "segment.key").open("rb") as fh:
            key = fh.read(33)  # 32 bytes: never more read, whatever the file holds
    except FileNotFoundError:
        raise TamperedError(
            f"segment {seg.path.name}: segment.key was deleted",
            hint="record leaves cannot be recomputed without it",
        ) from None
    except OSError as exc:
        raise InputIOError(
            f"segment {seg.path.name}: cannot read segment.key: {exc.strerror}"
        ) from None
    if len(key) != 32:
        raise MalformedError(f"segment {seg.path.name}: segment.key is not 32 bytes")
    with Checker(info.record_count) as checker:
        for table in schema.TABLES:
            path, declared = seg.path / f"{table}.parquet", info.tables.get(table)
            if declared is None:
                if path.exists():
                    raise _Located(
                        f"segment {seg.path.name}: {table}.parquet is not in its SEAL",
                        {"segment": seg.path.name, "table": table},
                    )
                continue
            if not path.is_file():
                raise _Located(
                    f"segment {seg.path.name}: {table}.parquet is missing",
                    {"segment": seg.path.name, "table": table},
                )
            ts = schema.load(table)  # only now: the YAML of a table a segment lacks is not read
            if declared["schema"] != ts.digest:
                report.warn(
                    "4",
                    f"segment {seg.path.name}: {table} was sealed with another schema file version",
                )
            digest = checker.file_sha256(path)
            index = _rebuild_table(seg, table, ts, key, index, compact, checker)
            if index - info.first_index > info.record_count:
                break
            _compare_parquet_hash(seg, table, digest(), declared, report)
    if index != info.first_index + info.record_count:
        raise _Located(
            f"segment {seg.path.name}: {index - info.first_index} records present, "
            f"its SEAL declares {info.record_count}",
            {"segment": seg.path.name, "first_missing_index": index},
        )
    _append_entries(seg, compact)


def _append_entries(seg: _Segment, compact: CompactRange) -> None:
    """The segment's log entries and its SEAL, after its records."""
    if len(seg.log_entries) != seg.info.entry_count:  # not loaded by check 3 (the newest)
        seg.log_entries = logentries.read_segment_entries(seg.path, seg.info.entry_count)
    for data in seg.log_entries:
        compact.append(leaf_hash(data))
    compact.append(leaf_hash(seg.entry))


def _rebuild_pruned(seg: _Segment, compact: CompactRange, report: VerifyReport) -> None:
    """Check 4 of a pruned segment (§17.3): its records are gone, and the subtree hashes
    that covered them take their place; the checkpoint root then decides."""
    try:
        compact.append_range(read_pruned(seg.path, seg.info))
    except TamperedError as exc:
        raise _Located(exc.message, {"segment": seg.path.name}) from None
    left = leftovers(seg.path)
    if left:
        report.warn(
            "4",
            f"segment {seg.path.name} is pruned but still holds {', '.join(left)}: an "
            "interrupted `acdkit prune` left them (run it again); they were not read",
        )
    _append_entries(seg, compact)


def _rebuild_table(
    seg: _Segment,
    table: str,
    ts: schema.TableSchema,
    key: bytes,
    index: int,
    compact: CompactRange,
    checker: Checker,
) -> int:
    """Check a table file span by span (in workers for large segments); return the next index.

    A span that does not check out, or that holds rows beyond the count in the SEAL, is
    looked at again by `_first_failure`, in order, which raises the failure to report.
    """
    declared = seg.info.tables[table]["count"]
    path = seg.path / f"{table}.parquet"
    try:
        work = spans(path, table, key, index, index - seg.info.first_index)
    except (OSError, ValueError, pa.ArrowException) as exc:  # ValueError: a name not UTF-8
        # reported here: the plain reader of the in-order check may not read what failed
        # (a column chunk's path in the footer)
        raise MalformedError(
            f"{seg.path.name}/{path.name} is not readable Parquet: {exc}"
        ) from None
    for span, result in checker.run(work):
        suspect = result.suspect
        if span.stop > declared:
            suspect = min(declared, declared if suspect is None else suspect)
        if suspect is not None:
            _first_failure(seg, table, ts, key, index, suspect)
        compact.append_range(result.subtrees)
    return index + (work[-1].stop if work else 0)


def _first_failure(
    seg: _Segment, table: str, ts: schema.TableSchema, key: bytes, first: int, row: int
) -> NoReturn:
    """Check the table in order from the batch holding ``row`` on; raise the first failure.

    Rows before that batch checked out already.  The batches are the ones verification has
    always read, so that a failure is reported the same way however the work was shared.
    """
    at = first
    for batch in _iter_table(seg.path / f"{table}.parquet"):
        if at + batch.num_rows - first > row:
            _check_batch(seg, table, ts, key, first, at, batch)
        at += batch.num_rows
    if at - first <= row:  # the pages hold fewer rows than the footer counts
        raise MalformedError(
            f"{seg.path.name}/{table}.parquet holds {at - first} rows, fewer than its footer counts"
        )
    # the file reads differently as dictionaries (the workers) than plain (in order): only
    # damaged pages do that, and a verifier does not pick the reading it likes
    raise MalformedError(
        f"segment {seg.path.name}: {table}.parquet from row {row} on decodes differently "
        "by column dictionary than by value: its pages are damaged",
    )


def _check_batch(
    seg: _Segment,
    table: str,
    ts: schema.TableSchema,
    key: bytes,
    first: int,
    at: int,
    batch: pa.RecordBatch,
) -> None:
    """The checks of one batch of rows, from global index ``at``; raises the first failure."""
    declared = seg.info.tables[table]["count"]
    loc = {"segment": seg.path.name, "table": table}
    problem = sealed_problem(batch, ts.sealed_arrow())
    if problem is not None:
        raise MalformedError(
            f"{seg.path.name}/{table}.parquet does not hold the sealed columns ({problem})"
        )
    n = batch.num_rows
    expected = pa.array(np.arange(at, at + n, dtype=np.uint64))
    got = batch.column("log_index").cast(pa.uint64())
    if not got.equals(expected):
        bad = _first_true(pc.not_equal(got, expected))
        raise _Located(
            f"{table} row {at - first + bad}: log_index {got[bad].as_py()} where "
            f"{at + bad} was expected (rows deleted, inserted or reordered)",
            {**loc, "row": at - first + bad, "index": at + bad},
        )
    if at + n - first > declared:
        raise _Located(
            f"{table}: more rows than the SEAL declares ({declared})",
            {**loc, "index": first + declared},
        )
    try:
        leaves = record_leaf_hashes(batch, ts, record_salts(key, at - seg.info.first_index, n))
    except MalformedError as exc:
        # seal wrote only values that encode, each in its one canonical spelling
        bad = _first_unencodable(batch, ts)
        raise _Located(
            f"{table} record at index {at + bad} (row {at - first + bad}): {exc.message}: "
            "a sealed value was changed",
            {**loc, "row": at - first + bad, "index": at + bad},
        ) from None
    stored = batch.column("integrity_hash").cast(pa.binary(32))
    recomputed = pa.FixedSizeBinaryArray.from_buffers(
        pa.binary(32), n, [None, pa.py_buffer(leaves)]
    )
    if not stored.equals(recomputed):
        bad = _first_true(pc.not_equal(stored, recomputed))
        sealed = stored[bad].as_py()
        raise _Located(
            f"{table} record at index {at + bad} (row {at - first + bad}) does not "
            "match its sealed leaf hash: a field was changed",
            {
                **loc,
                "row": at - first + bad,
                "index": at + bad,
                "expected": sealed.hex() if sealed is not None else None,
                "actual": leaves[32 * bad : 32 * bad + 32].hex(),
            },
        )


def _unsigned_checkpoint(data: bytes) -> bool:
    """Whether a note that did not parse is a checkpoint's text with nothing after it."""
    try:
        Checkpoint.from_text(data.rstrip(b"\n").decode() + "\n")
    except (MalformedError, UnicodeDecodeError):
        return False
    return True


def _first_unencodable(batch: pa.RecordBatch, ts: schema.TableSchema) -> int:
    """The first row of a batch whose record cannot be encoded, found by halving."""
    lo, hi = 0, batch.num_rows  # a row in [lo, hi) fails
    while hi - lo > 1:
        mid = (lo + hi) // 2
        try:
            record_leaf_hashes(batch.slice(lo, mid - lo), ts, bytes(32 * (mid - lo)))
        except MalformedError:
            hi = mid
        else:
            lo = mid
    return lo


def _first_true(mask: pa.Array) -> int:
    """Position of the first true or null (a missing value differs from any value)."""
    return int(pc.index(mask.fill_null(True), True).as_py())


def _compare_parquet_hash(
    seg: _Segment, table: str, digest: str, declared: dict[str, Any], report: VerifyReport
) -> None:
    if digest != declared["sha256"]:
        report.warn(
            "4",
            f"segment {seg.path.name}: {table}.parquet differs from the sealed "
            "file bytes but every record verifies (re-encoded Parquet)",
        )


def verify_store(
    store: Store,
    pinned: Verifier | None = None,
    allow_incomplete: bool = False,
    progress: Callable[[int, int], None] | None = None,
    state: Path | None = None,
    expect_min_size: int | None = None,
    root: Verifier | None = None,
    witnesses: WitnessPolicy | None = None,
    now: int | None = None,
    anchors: AnchorTrust | None = None,
    require_outside: bool = True,
    custodian_keys: list[Verifier] | None = None,
    clock_window: tuple[int, int] | None = None,
    worm: S3Settings | None = None,
) -> VerifyReport:
    """Verify a store.

    1. Store metadata and sealer key parse (MALFORMED).
    2. Every checkpoint parses strictly and is signed by the sealer key (TAMPERED).
    3. Segments tile the log from index 0; each SEAL carries the previous checkpoint's hash.
    4. Every record is rebuilt from Parquet and its salted leaf recomputed (a pruned
       segment's records by the subtree hashes it keeps, §17.3); the tree root at each
       segment's end equals that checkpoint's root.
    5. Staged, not yet sealed inputs are reported as an unsealed tail (INCOMPLETE).
    6. The log is not shorter than ``expect_min_size`` and agrees with the checkpoint
       remembered in ``state`` (rollback, truncation, fork: TAMPERED); the state then
       remembers the newest verified checkpoint.
    7. The trust policy (signed by ``root`` if pinned) authorizes each segment's sealer key
       at its time, and the seal cadence holds (POLICY).
    8. The cosigned checkpoints of ``witnesses`` verify, none is beyond or beside the log
       (rollback, fork: TAMPERED), and the newest checkpoint has the quorum (INCOMPLETE).
    9. Every anchor (sealed ANCHOR entries, and token copies whose entry is not sealed
       yet) verifies against the TSA roots trusted for the checkpoint it names: those of
       the trust policy when its root is pinned, else ``anchors``; its genTime agrees with
       the seal times and the event times it covers (acdkit.anchorcheck).  Anchors that no
       trusted root covers are INCOMPLETE.
    10. Every sealed DECISION entry parses and is signed by the custodian key it names, a
        key trusted by ``custodian_keys``, else by the trust policy, else by the store's own
        custodian list (acdkit.custodians).
    11. Something outside the store commits to the log: a remembered ``state``,
        ``expect_min_size``, a verified witness cosignature or anchor; else a rollback of
        the newest segments cannot be excluded (INCOMPLETE, reported under check 6; a
        warning when ``require_outside`` is False or incompletes are allowed).
    12. Every CLOCK entry parses strictly (MALFORMED) and its conclusions (each server's
        result, the interval, the combined offset, the verdict) follow from its samples
        (TAMPERED otherwise).  With ``clock_window`` (ns from, to) the report's facts say
        what the log shows of the clock around it (acdkit.clockstate).
    13. Every sealed CUSTODY entry parses, is signed by the custodian key it names, a key
        trusted as in check 10, and concerns a checkpoint of this log with its root, dated
        no earlier than that checkpoint's seal (POLICY otherwise; acdkit.custodychain).
    14. Only with ``worm`` (online): every S3 object version that a sealed worm-upload
        CUSTODY entry pins is fetched and has its pinned size and SHA-256 (TAMPERED if it
        is gone or differs; a newer version is a warning; a server that cannot be reached
        is INCOMPLETE; acdkit.wormcheck).
    15. Records are pruned only below the bound of a sealed PRUNE entry, which names a
        policy of the store's history by its SHA-256 and a bound that policy declares, and
        no further than the newest policy allows (TAMPERED otherwise); pruning under a root
        that is not pinned is INCOMPLETE (acdkit.prune).
    """
    report = VerifyReport(str(store.root), "store")
    # 1
    try:
        meta = store.meta()
        if not store.vkey_path.is_file():
            # checkpoints name their signer, so a pinned key can still check them all
            if pinned is None:
                raise MalformedError(
                    f"the store's public key {store.vkey_path.name} is missing",
                    hint="pass the sealer's vkey with --key",
                )
            report.warn("1", f"the store's {store.vkey_path.name} is missing; using --key")
            verifier = pinned
        else:
            verifier = store.verifier()
        report.ok("1", f"store {meta['origin']} with first sealer key {verifier.key_id.hex()}")
    except AcdkitError as exc:
        report.fail("1", exc)
        return _finish(report, 0, None, 0)
    segments: list[_Segment] = []
    chain = KeyChain(store.origin, verifier)
    compact = CompactRange()
    sealed: list[_Segment] = []
    checkpoints: dict[int, tuple[bytes, Checkpoint]] = {}
    loaded: LoadedPolicy | None = None
    pruning: PruneFindings | None = None
    current = "2"
    try:
        # 2
        checkpoints = _load_checkpoints(store)
        report.ok("2", f"{len(checkpoints)} checkpoints parse strictly; no two share a size")
        # 3
        current = "3"
        segments = _load_segments(store)
        sealed = _check_chain(store, chain, segments, checkpoints)
        if pinned is not None and pinned not in chain.keys:
            raise TamperedError(
                "the pinned --key is not a sealer key of this log: it signed none of its "
                "checkpoints and no KEY entry rotates to it"
            )
        closing = {s.info.end_index for s in sealed}
        stray = sorted(set(checkpoints) - closing - {s.info.end_index for s in segments})
        if stray:
            raise _Located(
                f"checkpoint for size {stray[0]} closes no segment (segments were "
                "removed, or the checkpoint is not from this log)",
                {"checkpoint_size": stray[0]},
            )
        rotations = len(chain.keys) - 1
        report.ok(
            "3",
            f"{len(sealed)} segments form an unbroken checkpoint chain, each checkpoint "
            f"signed by the sealer key of its time"
            + (f" ({rotations} key rotations)" if rotations else ""),
        )
        # 4
        current = "4"
        total = sealed[-1].info.end_index if sealed else 0
        for seg in sealed:
            _rebuild_segment(seg, compact, report)
            if compact.root() != checkpoints[seg.info.end_index][1].root:
                raise _Located(
                    f"tree root at size {seg.info.end_index} does not match its checkpoint",
                    {"segment": seg.path.name, "checkpoint_size": seg.info.end_index},
                )
            if progress:
                progress(seg.info.end_index, total)
        gone = sum(is_pruned(s.path) for s in sealed)
        report.ok(
            "4",
            f"{compact.size} leaves rebuilt from records; roots match checkpoints"
            + (f" (the records of {gone} pruned segments by their kept hashes)" if gone else ""),
        )
        # 7 (after the rebuild: the KEY entries it judges are then known to be the log's)
        current = "7"
        loaded = _check_policy(report, store, root, sealed)
        # 15 (with the policy history of check 7)
        current = "15"
        pruning = _check_pruning(report, sealed, loaded, allow_incomplete)
    except _Located as exc:
        report.fail(current, exc, exc.location)
    except AcdkitError as exc:
        report.fail(current, exc)
    # 5
    unsealed = sum(int(sum(e["records"].values())) for e in _staged_ledger(store, report))
    interrupted = len(segments) - len(sealed) if report.verdict == ExitCode.OK else 0
    forged = None
    for seg in segments[len(sealed) :] if interrupted else []:
        # an interrupted seal leaves its inputs staged; one whose inputs are gone had its
        # checkpoint deleted (the same test `seal` applies before it seals again)
        problem = unsigned_segment_problem(store, seg.path, seg.info)
        if problem is not None:
            forged = TamperedError(f"segment {seg.path.name} has no checkpoint and {problem}")
            report.fail("5", forged, {"segment": seg.path.name})
            break
    lost = _unsealed_ledger_ids(store, sealed) if report.verdict == ExitCode.OK else []
    if forged is not None:
        pass
    elif lost:
        report.fail(
            "5",
            TamperedError(
                f"the source ledger records {len(lost)} input file(s) as sealed that no sealed "
                f"segment lists (first: {lost[0][:16]}…): segments that held their records "
                "were removed and the log rolled back"
            ),
            {"ledger_entry": lost[0]},
        )
    elif unsealed or interrupted:
        msg = f"{unsealed} records ingested but not sealed yet"
        if interrupted:
            msg += "; the newest segment has no checkpoint yet (seal interrupted or running)"
        if allow_incomplete:
            report.warn("5", msg)
        else:
            report.fail("5", IncompleteError(msg, hint="run `acdkit seal STORE`"))
    else:
        report.ok("5", "no unsealed records")
    committed: dict[str, int] = {}  # what outside the store commits to: source -> size
    if state is not None or expect_min_size is not None:
        committed = _check_outside(
            report, store, chain, compact.size, checkpoints, state, expect_min_size
        )
    when = int(time.time()) if now is None else now
    witnessed = _check_witnesses(
        report,
        store,
        compact.size,
        checkpoints,
        choose_witnesses(report, "8", witnesses, loaded.policy if loaded else None),
        when,
        allow_incomplete,
    )
    anchored = None
    if report.verdict in (ExitCode.OK, ExitCode.INCOMPLETE) and sealed:
        trust = _anchor_trust(report, loaded, anchors)
        anchored = _check_anchors(report, store, sealed, checkpoints, trust, allow_incomplete)
        if loaded is not None and anchored is not None:
            _check_anchored_time(report, loaded, sealed, anchored, when)
    if report.verdict in (ExitCode.OK, ExitCode.INCOMPLETE) and sealed:
        decisions = _check_decisions(
            report, store, sealed, loaded, custodian_keys, allow_incomplete
        )
    else:
        decisions = None
    if witnessed and report.facts.get("witnessed_size"):
        committed["witness cosignatures"] = int(report.facts["witnessed_size"])
    newest_anchor = anchored.newest() if anchored is not None else []
    if newest_anchor:
        committed["anchors"] = newest_anchor[0].size
    accept = allow_incomplete or not require_outside
    _require_outside(report, compact.size, committed, state, accept)
    custody = None
    if report.verdict in (ExitCode.OK, ExitCode.INCOMPLETE) and sealed:
        _check_clock(report, store, sealed, anchored, clock_window)
        custody = _check_custody(
            report, store, sealed, checkpoints, loaded, custodian_keys, allow_incomplete
        )
    online = None
    if worm is not None and report.verdict in (ExitCode.OK, ExitCode.INCOMPLETE):
        online = _check_worm(report, sealed, worm, pruning)
    last = checkpoints.get(compact.size) if compact.size else None
    signed_by = sealed[-1].key if sealed and sealed[-1].key is not None else chain.current
    gone = pruning.extent if pruning is not None else 0
    _finish(report, compact.size, last[1] if last else None, unsealed, signed_by, gone)
    if report.verdict in (ExitCode.OK, ExitCode.INCOMPLETE):
        if pruning is not None and pruning.pruned:
            report.coverage += f"; {pruning.sentence()}"
        # "anchored by …, witnessed by …" (EVIDENCE §3.11)
        if anchored is not None and compact.size:
            report.coverage += f"; {anchored.coverage(compact.size)}"
        if witnessed:
            report.coverage += f"; {witnessed}"
        if decisions:
            report.coverage += f"; {decisions}"
        if custody:
            report.coverage += f"; {custody}"
        if online:
            report.coverage += f"; {online}"
        known = {k: v for k, v in committed.items() if k in ("--state", "--expect-min-size")}
        if known and compact.size:
            report.coverage += "; known outside the store: " + ", ".join(
                f"size {size:,} ({source})" for source, size in known.items()
            )
    return report


def _require_outside(
    report: VerifyReport,
    size: int,
    committed: dict[str, int],
    state: Path | None,
    allow_incomplete: bool,
) -> None:
    """EVIDENCE §4.1-6: with nothing outside the store committed to the log, a rollback of
    its newest segments (with their checkpoints and sealer state) cannot be excluded."""
    report.facts["committed_outside"] = dict(committed)
    if report.verdict != ExitCode.OK or not size or committed:
        return
    message = (
        "nothing outside this store commits to the log (no remembered --state, "
        "--expect-min-size, witness cosignature or anchor): a rollback of its newest "
        "segments cannot be excluded"
    )
    if state is not None:
        message += f"; {state} now remembers checkpoint {size:,}, so the next run can tell"
    if allow_incomplete:
        report.warn("6", message)
        return
    report.fail(
        "6",
        IncompleteError(
            message,
            hint="keep a --state FILE off this host, or witness or anchor the checkpoints "
            "(acdkit witness, acdkit anchor); --allow-incomplete accepts the risk",
        ),
    )


def _check_decisions(
    report: VerifyReport,
    store: Store,
    sealed: list[_Segment],
    loaded: LoadedPolicy | None,
    given: list[Verifier] | None,
    allow_incomplete: bool,
) -> str | None:
    """Check 10: the DECISION entries; returns the coverage clause when there are any."""
    entries = _log_entries(sealed, EntryType.DECISION)
    try:
        trust = _custodian_trust(store, loaded, given)
        found = custodians.check_decisions(entries, store.origin, trust)
    except AcdkitError as exc:
        report.fail("10", exc)
        return None
    for warning in found.warnings:
        report.warn("10", warning)
    report.facts["decisions"] = found.decisions
    if not found.decisions:
        return None  # nothing to report: stores without decisions read as before
    report.ok("10", found.detail(trust))
    unpinned = (
        f"{found.decisions} decisions are signed by custodian keys that nothing outside "
        "the store pins: who signed them rests on the store's own word"
    )
    pinned = _pinned_or_said(report, "10", trust, unpinned, allow_incomplete)
    return f"{found.decisions} decisions signed by custodian keys" + pinned


def _check_custody(
    report: VerifyReport,
    store: Store,
    sealed: list[_Segment],
    checkpoints: dict[int, tuple[bytes, Checkpoint]],
    loaded: LoadedPolicy | None,
    given: list[Verifier] | None,
    allow_incomplete: bool,
) -> str | None:
    """Check 13: the CUSTODY entries; returns the coverage clause when there are any."""
    entries = _log_entries(sealed, EntryType.CUSTODY)
    known = custodychain.Known(
        sealed[-1].info.end_index,
        {n: cp.root for n, (_data, cp) in checkpoints.items()},
        {s.info.end_index: s.info.sealed_at_ns for s in sealed},
        True,
    )
    try:
        trust = _custodian_trust(store, loaded, given)
        found = custodychain.check_custody(entries, store.origin, trust, known)
    except AcdkitError as exc:
        report.fail("13", exc)
        return None
    for warning in found.warnings:
        report.warn("13", warning)
    for message in found.policy:
        report.fail("13", PolicyError(message))
    report.facts["custody"] = found.entries
    if not found.entries:
        return None  # nothing to report: stores without custody entries read as before
    if not found.policy:
        report.ok("13", found.detail(trust))
    unpinned = (
        f"{custodychain.entries(found.entries)} "
        f"{'is' if found.entries == 1 else 'are'} signed by custodian keys that nothing "
        "outside the store pins: who handled the evidence rests on the store's own word"
    )
    pinned = _pinned_or_said(report, "13", trust, unpinned, allow_incomplete)
    return f"{custodychain.entries(found.entries)} signed by custodian keys" + pinned


def _check_worm(
    report: VerifyReport,
    sealed: list[_Segment],
    settings: S3Settings,
    pruning: PruneFindings | None = None,
) -> str | None:
    """Check 14 (online, on request): the S3 object versions that worm-upload entries pin;
    the entries themselves passed check 13.  The record files of segments that check 15
    found pruned may be gone from S3 too (wormcheck.check_pins)."""
    from acdkit import wormcheck
    from acdkit.custody import parse_custody

    pins = []
    for index, body, _sealed_at in _log_entries(sealed, EntryType.CUSTODY):
        receipt = parse_custody(body).receipt
        if receipt is not None:
            pins += [(index, pin, receipt.bucket) for pin in receipt.pins]
    if not pins:
        missing = IncompleteError(
            "--worm: no sealed worm-upload entry pins an S3 object, so nothing was checked",
            hint="upload with `acdkit storage push STORE --bucket B --seal`",
        )
        report.fail("14", missing)
        return None
    try:
        found = wormcheck.check_pins(pins, settings, pruned=_pruned_files(pruning))
    except AcdkitError as exc:
        report.fail("14", exc)
        return None
    for warning in found.warnings:
        report.warn("14", warning)
    report.ok("14", found.detail(settings.where))
    report.facts["worm"] = {
        "objects": found.objects,
        "bytes": found.bytes,
        "newer": found.newer,
        "pruned_kept": found.pruned_kept,
        "pruned_gone": found.pruned_gone,
    }
    return f"{found.objects:,} pinned S3 object versions verified online"


def _pruned_files(pruning: PruneFindings | None) -> dict[str, bytes]:
    """``segments/<name>/<table>.parquet`` -> its SHA-256 in the SEAL, for each table file
    of a segment that check 15 found pruned."""
    out: dict[str, bytes] = {}
    for name, info in pruning.pruned if pruning is not None else []:
        for table, meta in info.tables.items():
            out[f"segments/{name}/{table}.parquet"] = bytes.fromhex(meta["sha256"])
    return out


def _log_entries(sealed: list[_Segment], kind: EntryType) -> list[tuple[int, bytes, int]]:
    """(index, body, sealed at) of every sealed log entry of one kind."""
    return [
        (s.info.first_index + s.info.record_count + i, data[38:], s.info.sealed_at_ns)
        for s in sealed
        for i, data in enumerate(s.log_entries)
        if data[5] == kind
    ]


def _custodian_trust(
    store: Store, loaded: LoadedPolicy | None, given: list[Verifier] | None
) -> custodians.CustodianTrust | None:
    """The custodian keys to judge signed entries by: given, else the policy's, else the
    store's own list."""
    return custodians.choose_trust(
        given,
        loaded.policy if loaded else None,
        bool(loaded and loaded.pinned),
        custodians.registered(store),
        custodians.REGISTRY,
    )


def _pinned_or_said(
    report: VerifyReport,
    check: str,
    trust: custodians.CustodianTrust | None,
    unpinned: str,
    allow_incomplete: bool,
) -> str:
    """Nothing when the custodian keys are pinned from outside; else report ``unpinned`` as
    incomplete (a warning under --allow-incomplete) and return " (not pinned)"."""
    if trust is not None and trust.pinned:
        return ""
    # the store's own list (or none) is editable by whoever can write the store: the
    # signatures hold, but whose they are rests on the store's word (as unpinned anchors)
    hint = "pin them: --custodian VKEY, or custodian lines of a trust policy and --root"
    if allow_incomplete:
        report.warn(check, unpinned)
    else:
        report.fail(check, IncompleteError(unpinned, hint=hint))
    return " (not pinned)"


def choose_witnesses(
    report: VerifyReport, check: str, given: WitnessPolicy | None, trust: Policy | None
) -> WitnessPolicy | None:
    """The witnesses given on the command line, else those of the trust policy."""
    listed = trust.witness_policy() if trust is not None else None
    if given is None:
        if listed is not None:
            report.facts["witness_source"] = f"trust policy {trust.serial if trust else '?'}"
        return listed
    report.facts["witness_source"] = "--witness"
    if listed is not None and listed != given:
        report.warn(
            check,
            f"--witness replaces the {len(listed.witnesses)} witnesses (quorum "
            f"{listed.quorum}) of trust policy {trust.serial if trust else '?'}",
        )
    return given


def _check_witnesses(
    report: VerifyReport,
    store: Store,
    size: int,
    checkpoints: dict[int, tuple[bytes, Checkpoint]],
    policy: WitnessPolicy | None,
    now: int,
    allow_incomplete: bool,
) -> str | None:
    """Check 8: cosignatures; returns the "witnessed by" sentence for the coverage."""
    if report.verdict not in (ExitCode.OK, ExitCode.INCOMPLETE):
        return None  # the log itself failed: nothing to hold the cosignatures against
    if policy is None:
        present = len(cosigned_paths(store.root / COSIGNATURE_DIR))
        if present:
            report.warn(
                "8", f"{present} cosigned checkpoints not checked: no witness key given (--witness)"
            )
        return None
    try:
        files = read_cosigned(store.root / COSIGNATURE_DIR, f"{COSIGNATURE_DIR}/")
        if not size and not files:
            report.ok("8", "nothing sealed yet: no checkpoint to witness")
            return None
        found = check_cosignatures(
            files,
            policy,
            store.origin,
            size,
            {n: data for n, (data, _cp) in checkpoints.items()},
            now,
        )
    except AcdkitError as exc:
        report.fail("8", exc)
        return None
    for warning in found.warnings:
        report.warn("8", warning)
    report.facts.update(
        {
            "witnessed_size": found.witnessed_size,
            "witnesses": len(policy.witnesses),
            "witness_quorum": policy.quorum,
        }
    )
    if found.unwitnessed is None:
        report.ok("8", "; ".join(found.done))
    elif allow_incomplete:
        report.warn("8", f"{'; '.join(found.done)}: {found.unwitnessed}")
    else:
        report.fail(
            "8",
            IncompleteError(
                f"{'; '.join(found.done)}: {found.unwitnessed}",
                hint="run `acdkit witness` on the newest checkpoint",
            ),
        )
    return found.done[-1]


def _check_policy(
    report: VerifyReport, store: Store, root: Verifier | None, sealed: list[_Segment]
) -> LoadedPolicy | None:
    """Check 7: the root-signed trust policy authorizes every sealer key at its time, and
    seals came at least as often as it requires.  Returns the policy, for check 8."""
    loaded = load_policy(store, root)
    if loaded is None:
        report.ok("7", "no trust policy: sealer keys are judged by the log's own key chain")
        return None
    policy = loaded.policy
    for seg in sealed:
        assert seg.key is not None
        # the sealer's own clock: anchored time is stronger where an anchor exists
        policy.check_sealer(seg.key, seg.info.sealed_at_ns, f"segment {seg.path.name}")
    gap_note = ""
    if policy.seal_interval_s is not None and len(sealed) > 1:
        limit = (policy.seal_interval_s + policy.grace_s) * 1_000_000_000
        times = [s.info.sealed_at_ns for s in sealed]
        worst = max(range(1, len(times)), key=lambda i: times[i] - times[i - 1])
        gap = times[worst] - times[worst - 1]
        if gap > limit:
            raise PolicyError(
                f"no seal for {gap / 1e9:,.0f}s before segment {sealed[worst].path.name}; the "
                f"trust policy requires one every {policy.seal_interval_s}s: sealing was "
                "stopped (a quiet collector seals heartbeats: `acdkit seal --heartbeat`)"
            )
        gap_note = f"; longest gap between seals {gap / 1e9:,.0f}s"
    who = "pinned" if loaded.pinned else "the store's own, not pinned: pass --root"
    report.ok(
        "7",
        f"trust policy {policy.serial} (sha256 {loaded.sha256[:16]}…) signed by root key "
        f"{loaded.root.key_id.hex()} ({who}) authorizes the sealer key of every segment at "
        f"its sealer-clock time{gap_note}",
    )
    return loaded


def _check_pruning(
    report: VerifyReport,
    sealed: list[_Segment],
    loaded: LoadedPolicy | None,
    allow_incomplete: bool,
) -> PruneFindings:
    """Check 14: records pruned only below the bound a sealed PRUNE entry logs, per a
    policy of the store's history, and no further than the newest policy allows."""
    entries = [
        (s.info.first_index + s.info.record_count + i, data)
        for s in sealed
        for i, data in enumerate(s.log_entries)
    ]
    segments = [(s.path.name, s.info, is_pruned(s.path)) for s in sealed]
    found = check_pruning(segments, entries, loaded)
    if not found.pruned and not found.entries:
        return found  # nothing to report: stores that were never pruned read as before
    report.facts["pruning"] = found.to_json()
    report.ok("15", found.sentence())
    if found.pruned and (loaded is None or not loaded.pinned):
        message = (
            f"the records below {found.extent:,} were pruned per a trust policy whose root "
            "is not pinned: whoever can write the store could have declared it"
        )
        if allow_incomplete:
            report.warn("15", message)
        else:
            report.fail("15", IncompleteError(message, hint="pin the root key: --root VKEY"))
    return found


def _check_anchored_time(
    report: VerifyReport,
    loaded: LoadedPolicy,
    sealed: list[_Segment],
    anchored: AnchorResult,
    now_s: int,
) -> None:
    """Check 7, second part: key windows and anchoring cadence by anchored time."""
    segs = [
        (s.path.name, s.info.end_index, s.info.sealed_at_ns, s.key)
        for s in sealed
        if s.key is not None
    ]
    found = anchored_time_findings(
        loaded.policy,
        segs,
        [(a.size, a.gen_time_ns) for a in anchored.verified],
        now_s * 1_000_000_000,
    )
    for message in found.tampered:
        report.fail("7", TamperedError(message))
    for message in found.policy:
        report.fail("7", PolicyError(message))
    if found.tampered or found.policy:
        return
    if found.bounded:
        report.ok(
            "7",
            f"{found.proven} of {found.bounded} segments signed by keys whose window ends are "
            "proven inside it by anchored time; the others rest on the sealer's clock",
        )


def _anchor_trust(
    report: VerifyReport, loaded: LoadedPolicy | None, given: AnchorTrust | None
) -> AnchorTrust | None:
    """The TSAs of the trust policy when its root is pinned, else those given (--tsa-root).

    A policy whose root is not pinned is the store's own word: its TSA roots would be trust
    taken from the evidence, so they are not used.
    """
    if loaded is None or not loaded.pinned:
        if loaded is not None and loaded.policy.tsas and given is None:
            report.warn(
                "9", "the trust policy's TSAs are not used: its root is not pinned (--root)"
            )
        return given
    if given is not None and given.tsas:
        report.warn("9", "--tsa-root is ignored: the pinned trust policy lists the TSAs")
    return policy_trust(loaded.policy, given)


def _check_anchors(
    report: VerifyReport,
    store: Store,
    sealed: list[_Segment],
    checkpoints: dict[int, tuple[bytes, Checkpoint]],
    trust: AnchorTrust | None,
    allow_incomplete: bool,
) -> AnchorResult | None:
    """Check 9: the anchors, once the log they sit in has verified."""
    entries = [
        (s.info.first_index + s.info.record_count + i, data)
        for s in sealed
        for i, data in enumerate(s.log_entries)
    ]
    try:
        claims, warnings = store_claims(store.anchors, entries)
        result = check_anchors(
            claims, {n: data for n, (data, _cp) in checkpoints.items()},
            [s.info for s in sealed], trust,
        )  # fmt: skip
    except AcdkitError as exc:
        report.fail("9", exc)
        return None
    report_anchor_findings(report, "9", result, allow_incomplete, warnings)
    report.facts["anchors"] = [
        {"tsa": a.tsa, "checkpoint_size": a.size, "gen_time_ns": a.gen_time_ns, "logged": a.logged}
        for a in result.verified
    ]
    if result.verified and not result.policy:
        logged = sum(a.logged for a in result.verified)
        report.ok(
            "9",
            f"{len(result.verified)} anchors verify ({logged} sealed in the log, "
            f"{len(result.verified) - logged} awaiting the next seal); times consistent",
        )
    return result


def _check_clock(
    report: VerifyReport,
    store: Store,
    sealed: list[_Segment],
    anchored: AnchorResult | None,
    window: tuple[int, int] | None,
) -> None:
    """Check 12: the CLOCK entries recompute from their samples; the clock around a range."""
    entries = [
        (s.info.first_index + s.info.record_count + i, data)
        for s in sealed
        for i, data in enumerate(s.log_entries)
    ]
    try:
        records = clock_records(entries)
        for index, record in records:
            try:
                record.check()
            except TamperedError as exc:
                raise _Located(f"CLOCK leaf {index}: {exc.message}", {"index": index}) from None
    except _Located as exc:
        report.fail("12", exc, exc.location)
        return
    except AcdkitError as exc:
        report.fail("12", exc)
        return
    try:
        waiting = len(clock_points(pending_log_entries(store)))
    except AcdkitError as exc:
        # queued entries are not evidence yet: seal refuses the bad one, verify only says so
        report.warn("12", f"a queued CLOCK entry in pending/ does not parse: {exc.message}")
        waiting = 0
    points = clock_points(list(entries))
    off = sum(p.verdict != "OK" for p in points)
    if records:
        newest = points[-1]
        report.ok(
            "12",
            f"{len(records)} CLOCK entries verify (recomputed from their samples); newest: "
            f"{newest.sentence()}"
            + (f"; {off} record a clock check that failed" if off else "")
            + (f"; {waiting} more wait for the next seal" if waiting else ""),
        )
    elif waiting:
        report.ok("12", f"no CLOCK entry sealed yet; {waiting} wait for the next seal")
    report.facts["clock"] = {
        "entries": len(records),
        "failed_checks": off,
        "waiting": waiting,
        "newest": points[-1].to_json() if points else None,
    }
    if window is not None:
        verified = None if anchored is None else {(a.tsa, a.size) for a in anchored.verified}
        bounds = anchored_bounds(anchor_records(entries), verified)
        report.facts["clock_window"] = window_state(points, bounds, *window).to_json()


def report_anchor_findings(
    report: VerifyReport,
    check: str,
    result: AnchorResult,
    allow_incomplete: bool,
    warnings: list[str] | None = None,
) -> None:
    """The warnings, POLICY failures and unchecked anchors of an anchor check (store or
    bundle); unchecked anchors are INCOMPLETE unless the user allows it."""
    for message in [*(warnings or []), *result.warnings]:
        report.warn(check, message)
    for message in result.policy:
        report.fail(check, PolicyError(message))
    for message in result.unchecked:
        if allow_incomplete:
            report.warn(check, message)
        else:
            hint = "pin the TSA roots: --tsa-root NAME=FILE.pem"
            report.fail(check, IncompleteError(message, hint=hint))


def _check_outside(
    report: VerifyReport,
    store: Store,
    chain: KeyChain,
    size: int,
    checkpoints: dict[int, tuple[bytes, Checkpoint]],
    state: Path | None,
    min_size: int | None,
) -> dict[str, int]:
    """Check 6: against what is known from outside the store; then update the state.

    Returns the sizes that outside knowledge commits to, by where it comes from (a state
    written on this run for the first time commits to nothing yet).
    """
    if report.verdict not in (ExitCode.OK, ExitCode.INCOMPLETE):
        return {}  # the log itself failed: nothing to compare, and the state is left alone
    try:
        remembered = Remembered.load(state) if state is not None else None
        done = check_remembered(
            store.origin,
            chain.keys,
            size,
            {n: cp for n, (_data, cp) in checkpoints.items()},
            remembered,
            min_size,
        )
    except AcdkitError as exc:
        report.fail("6", exc)
        return {}
    committed = {}
    if remembered is not None:
        committed["--state"] = remembered.checkpoint.size
    if min_size:
        committed["--expect-min-size"] = min_size
    if state is not None:
        if size and (remembered is None or size > remembered.checkpoint.size):
            Remembered.from_note(checkpoints[size][0]).save(state)
            done.append(f"state {state} now remembers checkpoint {size:,}")
        elif remembered is None:
            done.append(f"nothing sealed yet to remember in {state}")
    report.ok("6", "; ".join(done))
    return committed


def _unsealed_ledger_ids(store: Store, sealed: list[_Segment]) -> list[str]:
    """Ledger entries that no sealed SEAL lists among its sources.

    `seal` writes a file's ledger entry only after the segment holding its records has its
    checkpoint, so every entry must be named by a sealed segment: one that is not outlived
    the segment (a rollback that kept the ledger).  A rollback that also removed the
    entries is caught only by outside memory (``--state``, a witness, an anchor).
    """
    if not store.ledger_dir.is_dir():
        return []
    named = {source for seg in sealed for source in seg.info.sources}
    return sorted(
        p.stem
        for p in store.ledger_dir.iterdir()
        if p.suffix == ".json" and not p.name.startswith(TMP_PREFIX) and p.stem not in named
    )


def _staged_ledger(store: Store, report: VerifyReport) -> list[dict[str, Any]]:
    """Ledger entries of staged inputs; one that cannot be read is reported and skipped
    (staging is bookkeeping: it does not change what the sealed log proves)."""
    out = []
    for d in store.staged_dirs():
        try:
            out.append(read_ledger_entry(d / "ledger.json"))
        except AcdkitError as exc:
            report.warn("5", f"staging/{d.name}: {exc.message}; its records are not counted")
    return out


def _finish(
    report: VerifyReport,
    size: int,
    cp: Checkpoint | None,
    unsealed: int,
    verifier: Verifier | None = None,
    pruned_below: int = 0,
) -> VerifyReport:
    key = verifier.key_id.hex() if verifier else "?"
    if report.verdict in (ExitCode.OK, ExitCode.INCOMPLETE) and size and cp is not None:
        gone = (
            f" (the records below {pruned_below:,} by their kept hashes only)"
            if pruned_below
            else ""
        )
        report.coverage = (
            f"leaves 0-{size - 1:,} verified against checkpoint {size:,}{gone} "
            f"(root {cp.root.hex()[:16]}…) signed by sealer key {key}; "
            f"{unsealed:,} records unsealed"
        )
    elif report.verdict == ExitCode.OK:
        report.coverage = f"empty log: nothing sealed yet; {unsealed:,} records unsealed"
        if not unsealed:
            report.verdict = ExitCode.INCOMPLETE
            report.failure = {"check": "5", "message": "nothing to verify: the log is empty"}
            report.checks.append(Check("5", "incomplete", "nothing to verify: the log is empty"))
    else:
        report.coverage = (
            f"verification stopped at check {report.failure['check']}" if report.failure else ""
        )
    report.facts.update({"tree_size": size, "sealer_key_id": key, "unsealed_records": unsealed})
    return report


def verify_path(
    path: Path,
    pinned: Verifier | None = None,
    allow_incomplete: bool = False,
    progress: Callable[[int, int], None] | None = None,
    state: Path | None = None,
    expect_min_size: int | None = None,
    root: Verifier | None = None,
    witnesses: WitnessPolicy | None = None,
    now: int | None = None,
    anchors: AnchorTrust | None = None,
    require_outside: bool = True,
    custodian_keys: list[Verifier] | None = None,
    clock_window: tuple[int, int] | None = None,
    worm: S3Settings | None = None,
) -> VerifyReport:
    """Verify a store or a bundle, told apart by their marker files (never by name)."""
    if (path / BUNDLE_MARKER).is_file():
        from acdkit import bundle  # only here: it loads DuckDB, which a store's check needs not

        if state is not None:
            raise UsageError("--state applies to a store, not to a bundle")
        if worm is not None:
            raise UsageError("--worm applies to a store, not to a bundle")
        return bundle.verify_bundle(
            path,
            pinned,
            expect_min_size,
            root,
            witnesses,
            allow_incomplete,
            now,
            anchors,
            custodian_keys,
            clock_window,
        )
    if (path / "acdkit-store.json").is_file():
        return verify_store(
            Store(path),
            pinned,
            allow_incomplete,
            progress,
            state,
            expect_min_size,
            root,
            witnesses,
            now,
            anchors,
            require_outside,
            custodian_keys,
            clock_window,
            worm,
        )
    if not path.exists():
        raise UsageError(f"{path} does not exist")
    raise UsageError(
        f"{path} is neither an acdkit store nor a bundle",
        hint="a store has acdkit-store.json, a bundle has MANIFEST.note",
    )
