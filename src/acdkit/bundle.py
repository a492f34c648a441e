"""Submission bundles: build one for an incident window, and verify one offline.

A bundle holds a technical summary, summarized logs, the disclosed records with one C2SP
inclusion proof each, the SEAL leaves of the segments they come from (with proofs), the
checkpoint they all rest on, the sealer's public key, and a signed manifest of every file.
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from acdkit import __version__, custodians, custodychain, logentries, schema, summary
from acdkit._files import KIB, MIB, read_bounded, read_text
from acdkit.anchorbundle import BundleAnchors, check_bundle_anchors, select_anchors
from acdkit.anchorcheck import AnchorResult, AnchorTrust, policy_trust
from acdkit.clockentry import ClockRecord
from acdkit.clockstate import (
    anchor_records,
    anchored_bounds,
    clock_points,
    store_clock_state,
    window_state,
)
from acdkit.cosignature import (
    COSIGNATURE_DIR,
    MAX_COSIGNED_BYTES,
    WitnessPolicy,
    check_cosignatures,
    parse_cosigned,
    read_cosigned,
)
from acdkit.custody import WORM_EVENT, Custody, parse_custody
from acdkit.decision import parse_decision
from acdkit.encoding import EntryType, canonical_bodies, entry, record_salts
from acdkit.errors import (
    AcdkitError,
    ExitCode,
    IncompleteError,
    InputIOError,
    MalformedError,
    PolicyError,
    TamperedError,
    UsageError,
    error_for,
)
from acdkit.keychain import KeyChain, parse_key_event, read_chain
from acdkit.keys import Signer, Verifier
from acdkit.merkle import TreeLevels, consistency_proof, leaf_hash, verify_inclusion
from acdkit.note import MAX_NOTE_BYTES, Checkpoint, SignedNote, parse_decimal, sign_note
from acdkit.policy import POLICY_DIR, Policy, load_policy, parse_policy_note
from acdkit.policy import SUFFIX as POLICY_SUFFIX
from acdkit.proof import MAX_PROOF_BYTES, TlogProof
from acdkit.prunedtree import PartialTree, is_pruned, pieces_of
from acdkit.seal import segment_leaves
from acdkit.sealinfo import SealInfo
from acdkit.store import Store, fsync_dir
from acdkit.verify import VerifyReport, choose_witnesses, report_anchor_findings, verify_store

__all__ = [
    "MANIFEST",
    "TOOL",
    "PackageReport",
    "Window",
    "independent_verifier",
    "package",
    "parse_manifest",
    "time_ns",
    "verify_bundle",
]

MANIFEST = "MANIFEST.note"
ROTATIONS = "key/rotations"  # proofs of the KEY entries that lead to the signing key
DECISIONS = "decisions"  # proofs of the incident's DECISION entries (§13)
CUSTODIANS = "key/custodians.vkey"  # the sender's claim of its custodian keys
CLOCK_DIR = "clock"  # proofs of the CLOCK entries around the incident window
CUSTODY_DIR = "custody"  # proofs of the incident's CUSTODY entries, and export.json (§16.4)
WORM_DIR = "worm"  # proofs of the log's worm-upload receipts: S3 version IDs (§16.7)
TOOL = "tools/acdkit_verify.py"  # the independent verifier, shipped in every bundle
BUNDLE_FORMAT = "acdkit-bundle/1"
DEFAULT_MAX_RECORDS = 10_000
MANIFEST_LIMIT = 16 * MIB  # spec §9.2: a manifest line per file, ~115 bytes per record
MAX_DEPTH, MAX_ENTRIES = 32, 1_000_000  # spec §9.4 step 1
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_SAFE_PATH = re.compile(r"[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*")


@dataclass(frozen=True)
class Window:
    start: datetime
    end: datetime
    src: tuple[str, ...] = ()
    dst: tuple[str, ...] = ()


@dataclass
class PackageReport:
    out: Path
    incident: str
    checkpoint_size: int
    disclosed: dict[str, int]
    files: int
    summary: dict[str, Any]
    clock_flags: list[str] = field(default_factory=list)  # what the summary flags (§15.6)
    custody: dict[str, Any] = field(default_factory=dict)  # the export entry, the leaves
    # pruned segments whose event times meet the window: records that may have matched and
    # are gone, so that "no records" is not read as "nothing happened" (format §17)
    pruned: list[dict[str, Any]] = field(default_factory=list)


# -- building --------------------------------------------------------------------------------


def _segments_in(store: Store, size: int) -> list[tuple[Path, SealInfo]]:
    out = []
    for path in store.segment_dirs():
        info = SealInfo.from_entry((path / "seal.entry").read_bytes())
        if info.end_index <= size:
            out.append((path, info))
    return sorted(out, key=lambda s: s[1].first_index)


def _tree(
    segments: list[tuple[Path, SealInfo]],
) -> tuple[TreeLevels | PartialTree, Callable[[int], list[bytes]]]:
    """The tree for the bundle's proofs, and consistency proofs to it from a smaller size;
    over the kept hashes of pruned segments where there are any (format §17.3)."""
    if any(is_pruned(path) for path, _info in segments):
        partial = PartialTree(pieces_of(segments))
        return partial, partial.consistency
    leaves: list[bytes] = []
    for path, info in segments:
        leaves += segment_leaves(path, info)
    return TreeLevels(leaves), functools.partial(consistency_proof, leaves)


def _disclosed_entries(
    table: pa.Table, ts: schema.TableSchema, segments: list[tuple[Path, SealInfo]]
) -> dict[int, bytes]:
    """Entry bytes of every disclosed record: canonical body plus its salt."""
    bodies = canonical_bodies(table, ts).to_pylist()
    out: dict[int, bytes] = {}
    indices = table.column("log_index").to_pylist()
    starts = sorted((info.first_index, path) for path, info in segments)
    keys: dict[int, bytes] = {}
    for index, body in zip(indices, bodies, strict=True):
        first, path = max(s for s in starts if s[0] <= index)
        if first not in keys:  # only the segments that records come from: none is pruned
            keys[first] = (path / "segment.key").read_bytes()
        salt = record_salts(keys[first], index - first, 1)
        out[index] = entry(EntryType.RECORD, body, salt)
    return out


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)


def _write_table(base: Path, table: pa.Table) -> None:
    base.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, base.with_suffix(".parquet"), compression="zstd")
    printable = table
    for i, f in enumerate(table.schema):
        if pa.types.is_fixed_size_binary(f.type) or pa.types.is_binary(f.type):
            hexed = pa.array(
                [v.hex() if v is not None else None for v in table.column(i).to_pylist()],
                pa.string(),
            )
            printable = printable.set_column(i, f.name, hexed)
        elif pa.types.is_list(f.type):
            joined = pa.array(
                [" ".join(v) if v is not None else None for v in table.column(i).to_pylist()],
                pa.string(),
            )
            printable = printable.set_column(i, f.name, joined)
    pacsv.write_csv(printable, base.with_suffix(".csv"))


def _manifest_text(incident: str, origin: str, size: int, root: Path) -> str:
    lines = [BUNDLE_FORMAT, f"incident {incident}", f"origin {origin}", f"checkpoint {size}"]
    # sorted by the path string (spec §9.2), not by Path, which compares part by part
    for rel in sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()):
        data = (root / rel).read_bytes()
        lines.append(f"file {hashlib.sha256(data).hexdigest()} {len(data)} {rel}")
    return "\n".join(lines) + "\n"


def package(
    store: Store,
    signer: Signer,
    incident: str,
    window: Window,
    out: Path,
    max_records: int = DEFAULT_MAX_RECORDS,
    custodian: Signer | None = None,
    recipient: str | None = None,
    handler: str | None = None,
    custody_note: str | None = None,
) -> PackageReport:
    """Build the submission bundle for one incident window into ``out``.

    With ``custodian``, the export is signed by that custodian key and queued as an
    "export" CUSTODY entry naming the bundle's manifest (sealed by the next seal, §16.4);
    without it, the bundle's ``custody/export.json`` says that no custodian signed it.
    """
    if not _ID.fullmatch(incident):
        raise UsageError("incident ID must be 1-64 letters, digits, '.', '_' or '-'")
    if window.end <= window.start:
        raise UsageError("--to must be later than --from")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UsageError(f"{out} exists and is not empty; choose a new --out directory")
    if signer.verifier != read_chain(store).current:
        raise UsageError("the key is not this store's current sealer key")
    check = verify_store(store, allow_incomplete=True)
    if check.verdict != ExitCode.OK:
        raise _error_for(check)
    size = int(check.facts["tree_size"])
    if size == 0:
        raise UsageError("nothing is sealed in this store yet", hint="run `acdkit seal STORE`")
    checkpoint = store.checkpoint_path(size).read_bytes()
    export = _export_event(
        store, custodian, incident, size, checkpoint, recipient, handler, custody_note
    )
    segments = _segments_in(store, size)
    con = duckdb.connect(":memory:")
    con.execute("SET TimeZone = 'UTC'")
    # a pruned segment has no records to disclose (those an interrupted prune left are gone
    # in law already: its pruned.range stands for them)
    disclosed = summary.select_records(con, [s for s in segments if not is_pruned(s[0])], window)
    total = sum(t.num_rows for t in disclosed.values())
    if total > max_records:
        raise UsageError(
            f"{total:,} records match; the limit is {max_records:,}",
            hint="narrow --from/--to or add --src/--dst, or raise --max-records",
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".tmp-{out.name}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(mode=0o755)
    try:
        facts, flags, leaves = _build(
            tmp, store, con, disclosed, segments, size, checkpoint, incident, window, export
        )
        text = _manifest_text(incident, store.origin, size, tmp)
        note = sign_note(text, signer).encode()
        if len(note) > MANIFEST_LIMIT:
            raise UsageError(
                f"the manifest of {total:,} records would exceed {MANIFEST_LIMIT:,} bytes",
                hint="narrow --from/--to or add --src/--dst",
            )
        _write(tmp / MANIFEST, note)
        fsync_dir(tmp)
        if out.exists():
            out.rmdir()
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    files = sum(1 for p in out.rglob("*") if p.is_file())
    custody = _log_export(store, custodian, export, out)
    custody["leaves"] = leaves
    return PackageReport(
        out,
        incident,
        size,
        {t: d.num_rows for t, d in disclosed.items()},
        files,
        facts,
        flags,
        custody,
        _pruned_in(segments, window),
    )


def _pruned_in(segments: list[tuple[Path, SealInfo]], window: Window) -> list[dict[str, Any]]:
    """The pruned segments whose records' time range (from their SEAL) meets the window."""
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    start, end = (
        (t - epoch) // timedelta(microseconds=1) * 1000 for t in (window.start, window.end)
    )
    out = []
    for path, info in segments:
        if not is_pruned(path) or not info.record_count:
            continue
        lo, hi = info.ts_min_ns, info.ts_max_ns
        if lo is not None and hi is not None and (hi < start or lo > end):
            continue  # outside the window (a SEAL without times may meet it: listed)
        out.append({"segment": path.name, "records": info.record_count,
                    "ts_min_ns": info.ts_min_ns, "ts_max_ns": info.ts_max_ns})  # fmt: skip
    return out


def _export_event(
    store: Store,
    custodian: Signer | None,
    incident: str,
    size: int,
    checkpoint: bytes,
    recipient: str | None,
    handler: str | None,
    note: str | None,
) -> Custody | None:
    """The export event, checked as the next seal will check it, before anything is
    written: an unregistered custodian key or a bad --recipient fails here."""
    if custodian is None:
        if recipient is not None or handler is not None or note is not None:
            raise UsageError(
                "--recipient, --handler and --custody-note describe the export's CUSTODY "
                "entry, which needs --custodian-key"
            )
        return None
    root = Checkpoint.from_text(SignedNote.parse(checkpoint).text).root
    event = Custody(
        "export",
        time.time_ns(),
        0,
        handler or custodian.name,
        size,
        root,
        manifest_sha256=bytes(32),  # the probe's: the real one exists once the bundle does
        incident=incident,
        sender=handler or custodian.name,  # as `custody log --event export` writes it
        recipient=recipient,
        note=note,
    )
    probe, _body = custodychain.signed_entry(store, custodian, event)
    return probe


def _log_export(
    store: Store, custodian: Signer | None, export: Custody | None, out: Path
) -> dict[str, Any]:
    if custodian is None or export is None:
        return {"export": "not signed: no custodian key was given"}
    digest = hashlib.sha256((out / MANIFEST).read_bytes()).digest()
    try:
        path, signed = custodychain.record(
            store, custodian, replace(export, manifest_sha256=digest)
        )
    except AcdkitError as exc:
        raise type(exc)(
            f"the bundle {out} was written, but its export could not be logged: {exc.message}",
            hint="log it with `acdkit custody log STORE --event export --bundle DIR`",
        ) from None
    assert signed.custodian is not None
    return {
        "export": "queued for the next seal",
        "pending": path.name,
        "manifest_sha256": digest.hex(),
        "custodian_key_id": signed.custodian.key_id.hex(),
        "handler": signed.handler,
        "to": signed.recipient,
    }


def _error_for(report: VerifyReport) -> AcdkitError:
    msg = report.failure["message"] if report.failure else report.verdict.name
    return error_for(
        report.verdict,
        f"refusing to package: the store does not verify ({msg})",
        hint="run `acdkit verify STORE` for details",
    )


def _build(
    tmp: Path,
    store: Store,
    con: duckdb.DuckDBPyConnection,
    disclosed: dict[str, pa.Table],
    segments: list[tuple[Path, SealInfo]],
    size: int,
    checkpoint: bytes,
    incident: str,
    window: Window,
    export: Custody | None,
) -> tuple[dict[str, Any], list[str], int]:
    tree, consistency = _tree(segments)
    touched: set[int] = set()
    for table, rows in disclosed.items():
        if rows.num_rows == 0:
            continue
        _write_table(tmp / "records" / table, rows)
        for index, data in _disclosed_entries(rows, schema.load(table), segments).items():
            proof = TlogProof(index, tuple(tree.proof(index)), checkpoint, data)
            _write(tmp / "proofs" / f"{index:020d}.tlog-proof", proof.encode())
            touched.add(
                next(i.end_index for _, i in segments if i.first_index <= index < i.end_index)
            )
    custody = _custody_leaves(segments, incident)
    for index, data in custody:
        proof = TlogProof(index, tuple(tree.proof(index)), checkpoint, data)
        _write(tmp / CUSTODY_DIR / f"{index:020d}.tlog-proof", proof.encode())
    receipts = _worm_leaves(segments)
    for index, data in receipts:
        proof = TlogProof(index, tuple(tree.proof(index)), checkpoint, data)
        _write(tmp / WORM_DIR / f"{index:020d}.tlog-proof", proof.encode())
    # the SEAL leaves of what the custody entries concern: their times bound the entries'
    concerned = {parse_custody(data[38:]).checkpoint_size for _i, data in custody + receipts}
    for path, info in segments:
        if info.end_index in touched | concerned:
            seal_index = info.end_index - 1
            proof = TlogProof(
                seal_index,
                tuple(tree.proof(seal_index)),
                checkpoint,
                (path / "seal.entry").read_bytes(),
            )
            _write(tmp / "seals" / f"{seal_index:020d}.tlog-proof", proof.encode())
    for path, info in segments:
        at = info.first_index + info.record_count
        for offset, data in enumerate(logentries.read_segment_entries(path, info.entry_count)):
            kind = logentries.parse_entry(data).kind
            if kind == EntryType.KEY:
                proof = TlogProof(at + offset, tuple(tree.proof(at + offset)), checkpoint, data)
                _write(tmp / ROTATIONS / f"{at + offset:020d}.tlog-proof", proof.encode())
            elif kind == EntryType.DECISION and parse_decision(data[38:]).incident == incident:
                proof = TlogProof(at + offset, tuple(tree.proof(at + offset)), checkpoint, data)
                _write(tmp / DECISIONS / f"{at + offset:020d}.tlog-proof", proof.encode())
    for index, data in _clock_leaves(segments, window):
        proof = TlogProof(index, tuple(tree.proof(index)), checkpoint, data)
        _write(tmp / CLOCK_DIR / f"{index:020d}.tlog-proof", proof.encode())
    _write(tmp / "checkpoint" / f"{size:020d}.checkpoint", checkpoint)
    for cosigned in read_cosigned(store.root / COSIGNATURE_DIR):
        # only those of the bundle checkpoint, as the witnesses wrote them; checked on verify
        if cosigned.note.text == SignedNote.parse(checkpoint).text:
            _write(tmp / COSIGNATURE_DIR / cosigned.label, cosigned.data)
    chosen = select_anchors(store, segments, touched, size, consistency)
    _write_anchors(tmp, chosen, tree, checkpoint)
    _write(tmp / "key" / "sealer.vkey", (store.verifier().vkey() + "\n").encode())
    if (store.root / custodians.REGISTRY).is_file():
        _write(tmp / CUSTODIANS, (store.root / custodians.REGISTRY).read_bytes())
    loaded = load_policy(store, None)
    if loaded is not None:
        name = f"{loaded.policy.serial:020d}{POLICY_SUFFIX}"
        _write(tmp / POLICY_DIR / name, loaded.note)
        _write(tmp / "key" / "root.vkey", (loaded.root.vkey() + "\n").encode())
    _write(tmp / TOOL, independent_verifier())
    start, end = (time_ns(t) for t in (window.start, window.end))
    clock = store_clock_state(store, start, end, size).to_json()
    clock["sensors"] = summary.sensor_clock_flags(store, disclosed)
    facts = summary.write_summary(tmp, con, disclosed, incident, window, store.origin, size, clock)
    _write(
        tmp / custodychain.EXPORT_STATEMENT, custodychain.export_statement(incident, size, export)
    )
    _write(tmp / "VERIFY.txt", _verify_text(incident, size).encode())
    return facts, list(clock["flags"]), len(custody)


def _custody_leaves(
    segments: list[tuple[Path, SealInfo]], incident: str
) -> list[tuple[int, bytes]]:
    """The sealed CUSTODY entries of the incident (§16.4): exports, hand-overs, receipts
    and verifications of its earlier bundles; its own export is sealed after it."""
    out = []
    for path, info in segments:
        at = info.first_index + info.record_count
        for offset, data in enumerate(logentries.read_segment_entries(path, info.entry_count)):
            if data[5] == EntryType.CUSTODY and parse_custody(data[38:]).incident == incident:
                out.append((at + offset, data))
    return out


def _worm_leaves(segments: list[tuple[Path, SealInfo]]) -> list[tuple[int, bytes]]:
    """The sealed worm-upload receipts of the log (§16.7): which S3 object versions hold
    copies of its files; the bundle's manifest lists their proofs, and so pins them."""
    out = []
    for path, info in segments:
        at = info.first_index + info.record_count
        for offset, data in enumerate(logentries.read_segment_entries(path, info.entry_count)):
            if data[5] == EntryType.CUSTODY and parse_custody(data[38:]).event == WORM_EVENT:
                out.append((at + offset, data))
    return out


def time_ns(moment: datetime) -> int:
    delta = moment.astimezone(UTC) - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 10**9 + delta.microseconds * 1000


def _clock_leaves(segments: list[tuple[Path, SealInfo]], window: Window) -> list[tuple[int, bytes]]:
    """The CLOCK leaves that bracket the window (format §15.5), by when they were taken."""
    entries: dict[int, bytes] = {}
    for path, info in segments:
        at = info.first_index + info.record_count
        for offset, data in enumerate(logentries.read_segment_entries(path, info.entry_count)):
            if logentries.parse_entry(data).kind == EntryType.CLOCK:
                entries[at + offset] = data
    points = clock_points(list(entries.items()))
    start, end = time_ns(window.start), time_ns(window.end)
    before = [p for p in points if p.at_ns < start][-1:]
    during = [p for p in points if start <= p.at_ns < end]
    after = [p for p in points if p.at_ns >= end][:1]
    chosen = sorted(p.index for p in [*before, *during, *after] if p.index is not None)
    return [(i, entries[i]) for i in chosen]


def _write_anchors(
    tmp: Path, chosen: BundleAnchors, tree: TreeLevels | PartialTree, checkpoint: bytes
) -> None:
    for index, data in chosen.leaves:
        proof = TlogProof(index, tuple(tree.proof(index)), checkpoint, data)
        _write(tmp / "anchors" / f"{index:020d}.tlog-proof", proof.encode())
    for name, token in chosen.tokens.items():
        _write(tmp / "anchors" / name, token)
    for size, (note, consistency) in chosen.checkpoints.items():
        _write(tmp / "checkpoint" / f"{size:020d}.checkpoint", note)
        _write(tmp / "checkpoint" / f"{size:020d}.consistency", consistency)


def independent_verifier() -> bytes:
    """The standalone verifier (Python standard library and `cryptography` only)."""
    return (Path(__file__).parent / "_data" / "acdkit_verify.py").read_bytes()


def _verify_text(incident: str, size: int) -> str:
    return (
        f"Submission bundle for incident {incident}, acdkit {__version__}.\n\n"
        "Verify offline, from the directory that contains this bundle:\n\n"
        "    acdkit verify BUNDLE_DIR --key 'SEALER_VKEY'\n\n"
        "where SEALER_VKEY is the sealer's public key obtained from the sender by a separate\n"
        "channel (key/sealer.vkey inside the bundle is the sender's claim of it).\n\n"
        f"Without acdkit, {TOOL} is a second verifier written independently from the\n"
        "format specification; it needs Python 3.10+ and the package cryptography only:\n\n"
        f"    python3 BUNDLE_DIR/{TOOL} BUNDLE_DIR --key 'SEALER_VKEY'\n\n"
        "It checks signatures, hashes, proofs and entries, but cannot read Parquet, so it\n"
        "compares the records' log_index and integrity_hash in records/*.csv with the proofs\n"
        "and says so. A copy inside the bundle is only as trustworthy as the bundle: read it\n"
        "(it is short) or use a copy obtained with acdkit.\n\n"
        f"Every disclosed record has an inclusion proof (proofs/) in the tree of size {size}\n"
        "signed in checkpoint/; MANIFEST.note lists the SHA-256 of every file and is signed\n"
        "by the same key. The format is described in docs/evidence-format.md of acdkit.\n"
        "cosignatures/, when present, holds witnesses' cosignatures of that checkpoint: add\n"
        "--witness 'WITNESS_VKEY' (one per witness you trust) to check them.\n"
        "custody/ holds the incident's custody entries (exports, hand-overs, receipts and\n"
        "verifications of its earlier bundles) with their proofs, and export.json, which says\n"
        "whose custodian key signed the export of this bundle; add --custodian 'CUSTODIAN_VKEY'\n"
        "(one per custodian you trust) to hold their signatures to those keys.\n"
        "worm/, when present, holds the log's signed WORM upload receipts: which S3 object\n"
        "versions (bucket, key, version ID, SHA-256) hold copies of its sealed files; they are\n"
        "listed in the JSON report (facts.worm), not fetched.\n"
    )


# -- verifying -------------------------------------------------------------------------------


def _walk(root: Path) -> list[str]:
    """Relative paths of the bundle's files; refuse anything that is not a plain file."""

    def unreadable(exc: OSError) -> None:
        # os.walk would skip a directory it cannot list, and the files in it with it
        raise InputIOError(f"cannot list a bundle directory: {exc.strerror}")

    out: list[str] = []
    entries = 0
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False, onerror=unreadable):
        entries += len(dirnames) + len(filenames)
        if entries > MAX_ENTRIES:
            raise MalformedError(f"bundle holds more than {MAX_ENTRIES:,} entries")
        if dirnames and len(Path(dirpath).relative_to(root).parts) >= MAX_DEPTH:
            raise MalformedError(f"bundle is nested deeper than {MAX_DEPTH} levels")
        for name in dirnames + filenames:
            full = Path(dirpath) / name
            if full.is_symlink():
                raise MalformedError(f"bundle contains a symbolic link: {full.relative_to(root)}")
        for name in filenames:
            full = Path(dirpath) / name
            if not full.is_file():
                raise MalformedError(f"bundle contains a special file: {full.relative_to(root)}")
            out.append(full.relative_to(root).as_posix())
    return sorted(out)


@dataclass
class _Manifest:
    incident: str
    origin: str
    size: int
    files: dict[str, tuple[str, int]]
    note: SignedNote


def parse_manifest(data: bytes) -> _Manifest:
    note = SignedNote.parse(data, MANIFEST_LIMIT)
    lines = note.text[:-1].split("\n")
    if len(lines) < 4 or lines[0] != BUNDLE_FORMAT:
        raise MalformedError(f"manifest does not start with {BUNDLE_FORMAT}")
    heads = {}
    for line, key in zip(lines[1:4], ("incident", "origin", "checkpoint"), strict=True):
        name, _, value = line.partition(" ")
        if name != key or not value:
            raise MalformedError(f"manifest line {line[:60]!r}: expected '{key} ...'")
        heads[key] = value
    if not _ID.fullmatch(heads["incident"]):
        raise MalformedError(f"manifest incident ID {heads['incident'][:70]!r} is not valid")
    files: dict[str, tuple[str, int]] = {}
    for line in lines[4:]:
        parts = line.split(" ")
        if len(parts) != 4 or parts[0] != "file" or not re.fullmatch(r"[0-9a-f]{64}", parts[1]):
            raise MalformedError(f"bad manifest line {line[:80]!r}")
        rel = parts[3]
        if not _SAFE_PATH.fullmatch(rel) or any(seg in (".", "..") for seg in rel.split("/")):
            raise MalformedError(f"unsafe path in manifest: {rel[:80]!r}")
        if rel == MANIFEST or (files and rel <= next(reversed(files))):
            raise MalformedError(f"manifest lists {rel!r} twice, out of order or itself")
        files[rel] = (parts[1], parse_decimal(parts[2], "file size"))
    return _Manifest(
        heads["incident"],
        heads["origin"],
        parse_decimal(heads["checkpoint"], "checkpoint size"),
        files,
        note,
    )


def verify_bundle(
    root: Path,
    pinned: Verifier | None = None,
    expect_min_size: int | None = None,
    trust_root: Verifier | None = None,
    witnesses: WitnessPolicy | None = None,
    allow_incomplete: bool = False,
    now: int | None = None,
    anchors: AnchorTrust | None = None,
    custodian_keys: list[Verifier] | None = None,
    clock_window: tuple[int, int] | None = None,
) -> VerifyReport:
    """Verify a bundle offline.

    1. Every path is a plain file with a safe name; the manifest parses strictly.
    2. Every listed file exists with the listed size and SHA-256; no unlisted files.
    3. The manifest is signed by the log's current sealer key: the first key (pinned with
       --key, else the bundle's own) followed through the KEY entries the bundle proves.
    4. The checkpoint is signed by the same key, for the manifest's origin and size, and
       is not smaller than ``expect_min_size``.
    5. Every proof is a valid inclusion proof of its entry in that checkpoint's tree.
    6. Every disclosed record re-encodes to its proven entry; every record has a proof.
    7. Every record lies inside a segment whose SEAL leaf is proven, within its time range.
    8. The bundle's trust policy, signed by the root (``trust_root`` if pinned), authorizes
       every sealer key of the chain; under a pinned root a bundle without one is TAMPERED.
    9. Every cosignature file is over the bundle's checkpoint; those of ``witnesses`` verify
       and reach the quorum (INCOMPLETE otherwise).
    10. Every ANCHOR leaf is proven; the checkpoint it anchors is the bundle's, or one
        signed by a key of the chain with a consistency proof to it; its token, and every
        token copy, verifies as in a store (acdkit.anchorcheck) against the TSAs of the
        policy when its root is pinned, else against ``anchors``.
    11. Every DECISION leaf is proven, is of the manifest's incident and is signed by its
        custodian key, a key of ``custodian_keys``, else of the policy's custodian lines,
        else of the bundle's key/custodians.vkey (acdkit.custodians).
    12. Every CLOCK leaf (proven by check 5) parses and its conclusions follow from its
        samples; with ``clock_window`` the facts hold the clock state around it.
    13. Every CUSTODY leaf is of the manifest's incident, signed by its custodian key (a key
        trusted as in check 11), concerns a checkpoint no later than the bundle's (with the
        bundle's root when it is the bundle's) whose SEAL leaf is proven, and is not dated
        before that seal (POLICY); custody/export.json says who signed the export.
    14. Every worm-upload leaf (proven by check 5) is a CUSTODY entry of that event, checked
        as in check 13 but for the incident; the S3 object versions it pins are reported,
        never fetched.
    """
    report = VerifyReport(str(root), "bundle")
    current = "1"
    try:
        # 1
        present = _walk(root)
        manifest = parse_manifest(read_bounded(root / MANIFEST, MANIFEST_LIMIT, "manifest"))
        report.ok("1", f"manifest lists {len(manifest.files)} files with safe paths")
        # 2
        current = "2"
        _check_files(root, manifest, present)
        report.ok("2", f"{len(manifest.files)} files match their manifest hashes")
        # 3
        current = "3"
        first = pinned if pinned and "key/sealer.vkey" not in manifest.files else None
        chain = _bundle_chain(root, manifest, first or _bundle_key(root, manifest))
        if pinned is not None and pinned not in chain.keys:
            raise TamperedError(
                f"the pinned key {pinned.key_id.hex()} is not a sealer key of this log "
                "(neither its first key nor one that a proven KEY entry rotates to)"
            )
        verifier = chain.current
        if not manifest.note.verified_by(verifier):
            raise TamperedError(
                f"manifest signature does not verify with key {verifier.key_id.hex()}"
            )
        source = "pinned" if pinned else "the bundle's own (not pinned: pass --key to pin)"
        hops = len(chain.keys) - 1
        rotated = f", reached by {hops} key rotations" if hops else ""
        report.ok("3", f"manifest signed by sealer key {verifier.key_id.hex()}{rotated}, {source}")
        # 4
        current = "4"
        cp_bytes, cp = _bundle_checkpoint(root, manifest, chain.keys)
        if expect_min_size is not None and cp.size < expect_min_size:
            raise TamperedError(
                f"the bundle's checkpoint is {cp.size:,}, at least {expect_min_size:,} was "
                "expected (an older checkpoint was substituted)"
            )
        report.ok("4", f"checkpoint {cp.size} for {cp.origin} carries a valid signature")
        # 5
        current = "5"
        records = _check_proofs(root, manifest, cp_bytes, cp, "proofs/")
        seals = _check_proofs(root, manifest, cp_bytes, cp, "seals/")
        rotations = _check_proofs(root, manifest, cp_bytes, cp, ROTATIONS + "/")
        decisions = _check_proofs(root, manifest, cp_bytes, cp, DECISIONS + "/")
        clocks = _check_proofs(root, manifest, cp_bytes, cp, CLOCK_DIR + "/")
        custody = _check_proofs(root, manifest, cp_bytes, cp, CUSTODY_DIR + "/")
        receipts = _check_proofs(root, manifest, cp_bytes, cp, WORM_DIR + "/")
        report.ok(
            "5",
            f"{len(records)} record proofs, {len(seals)} SEAL proofs, {len(rotations)} "
            f"KEY proofs and {len(clocks)} CLOCK proofs verify"
            + (f"; {len(decisions)} DECISION proofs" if decisions else "")
            + (f"; {len(custody)} CUSTODY proofs" if custody else "")
            + (f"; {len(receipts)} worm-upload proofs" if receipts else ""),
        )
        # 6
        current = "6"
        disclosed = _check_records(root, manifest, records)
        report.ok("6", f"{disclosed} disclosed records match their proven entries")
        # 7
        current = "7"
        _check_seals(root, manifest, records, seals)
        report.ok("7", "every record lies in a proven segment and inside its time range")
        # 8
        current = "8"
        policy_detail, trust = _check_bundle_policy(root, manifest, chain, trust_root)
        report.ok("8", policy_detail)
        # 9
        current = "9"
        witnessed, unwitnessed = _check_bundle_cosignatures(
            root,
            manifest,
            cp_bytes,
            cp,
            choose_witnesses(report, "9", witnesses, trust),
            allow_incomplete,
            now,
            report,
        )
        # 10
        current = "10"
        if trust_root is not None and trust is not None:
            anchors = policy_trust(trust, anchors)  # the policy's root is pinned
        proven = _check_proofs(root, manifest, cp_bytes, cp, "anchors/")
        result, count = check_bundle_anchors(
            manifest.files,
            lambda rel: (root / rel).read_bytes(),
            cp_bytes,
            cp,
            chain.keys,
            proven,
            [SealInfo.from_entry(d) for d in seals.values()],
            anchors,
        )
        _report_anchors(report, result, count, allow_incomplete)
        # 11
        current = "11"
        decided = _check_bundle_decisions(
            root, manifest, decisions, trust, trust_root is not None, custodian_keys, report
        )
        # 12
        current = "12"
        _check_bundle_clock(report, clocks, proven, result, clock_window)
        # 13
        current = "13"
        handled = _check_bundle_custody(
            root, manifest, custody, seals, cp, trust, trust_root is not None, custodian_keys,
            report,
        )  # fmt: skip
        # 14
        current = "14"
        pinned_s3 = _check_bundle_worm(
            root, manifest, receipts, seals, cp, trust, trust_root is not None, custodian_keys,
            report,
        )  # fmt: skip
        report.coverage = (
            f"{len(records):,} disclosed records and {len(seals)} SEAL leaves proven in "
            f"checkpoint {cp.size:,} of {cp.origin}; manifest of {len(manifest.files)} files; "
            f"all signed by key {verifier.key_id.hex()}"
            + ("" if pinned else " (key not pinned)")
            + f"; {result.coverage(cp.size)}"
            + (f"; {witnessed}" if witnessed else "")
            + (f"; {decided}" if decided else "")
            + (f"; {handled}" if handled else "")
            + (f"; {pinned_s3}" if pinned_s3 else "")
            + "; summaries and CSV copies are attested by the manifest signature, not by the log"
        )
        report.facts.update(
            {
                "tree_size": cp.size,
                "incident": manifest.incident,
                "records": len(records),
                "key_pinned": pinned is not None,
            }
        )
        if unwitnessed is not None:
            report.fail("9", unwitnessed)
    except AcdkitError as exc:
        report.fail(current, exc)
        report.coverage = f"verification stopped at check {current}"
    except OSError as exc:
        report.fail(current, InputIOError(f"cannot read bundle file: {exc.strerror}"))
    return report


def _check_bundle_clock(
    report: VerifyReport,
    clocks: dict[int, bytes],
    anchor_leaves: dict[int, bytes],
    anchored: AnchorResult,
    window: tuple[int, int] | None,
) -> None:
    """Check 12: each CLOCK leaf is a CLOCK entry whose conclusions recompute (§15.3)."""
    for index, data in sorted(clocks.items()):
        rel = f"{CLOCK_DIR}/{index:020d}.tlog-proof"
        try:
            parsed = logentries.parse_entry(data)
        except MalformedError as exc:
            raise MalformedError(f"{rel}: {exc.message}") from None
        if parsed.kind != EntryType.CLOCK:
            raise MalformedError(f"{rel} carries no CLOCK entry")
        try:
            ClockRecord.from_body(parsed.body).check()
        except (MalformedError, TamperedError) as exc:
            raise type(exc)(f"{rel}: {exc.message}") from None
    points = clock_points(sorted(clocks.items()))
    if points:
        report.ok(
            "12",
            f"{len(points)} CLOCK leaves verify (recomputed from their samples); "
            + "; ".join(p.sentence() for p in points),
        )
    report.facts["clock"] = {
        "entries": len(points),
        "newest": points[-1].to_json() if points else None,
    }
    if window is not None:
        verified = {(a.tsa, a.size) for a in anchored.verified}
        bounds = anchored_bounds(anchor_records(sorted(anchor_leaves.items())), verified)
        report.facts["clock_window"] = window_state(points, bounds, *window).to_json()


def _check_bundle_cosignatures(
    root: Path,
    manifest: _Manifest,
    cp_bytes: bytes,
    cp: Checkpoint,
    policy: WitnessPolicy | None,
    allow_incomplete: bool,
    now: int | None,
    report: VerifyReport,
) -> tuple[str | None, IncompleteError | None]:
    """Check 9: the "witnessed by" sentence for the coverage, and INCOMPLETE if no quorum."""
    prefix = f"{COSIGNATURE_DIR}/"
    files = []
    for rel in sorted(r for r in manifest.files if r.startswith(prefix)):
        cosigned = parse_cosigned(_read_listed(root, rel), rel)
        if cosigned.note.text != SignedNote.parse(cp_bytes).text:
            raise MalformedError(f"{rel} is not a cosignature of the bundle's checkpoint")
        files.append(cosigned)
    if policy is None:
        if files:
            report.warn("9", f"{len(files)} cosigned checkpoints not checked: no --witness given")
        return None, None
    when = int(time.time()) if now is None else now
    found = check_cosignatures(files, policy, cp.origin, cp.size, {cp.size: cp_bytes}, when)
    for warning in found.warnings:
        report.warn("9", warning)
    detail = "; ".join(found.done)
    report.facts["witnessed_size"] = found.witnessed_size
    lacking = (
        f"{detail}: the bundle's checkpoint lacks the witness quorum, so a rollback of the "
        "log before it was packaged cannot be excluded"
    )
    if found.unwitnessed is None:
        report.ok("9", detail)
    elif allow_incomplete:
        report.warn("9", lacking)
    else:
        return found.done[-1], IncompleteError(lacking)
    return found.done[-1], None


def _check_bundle_decisions(
    root: Path,
    manifest: _Manifest,
    proven: dict[int, bytes],
    policy: Policy | None,
    policy_pinned: bool,
    given: list[Verifier] | None,
    report: VerifyReport,
) -> str | None:
    """Check 11: the incident's decisions; returns the coverage clause when there are any."""
    for index, data in proven.items():
        if data[5] != EntryType.DECISION or data[6:38] != bytes(32):
            raise MalformedError(f"{DECISIONS}/{index:020d}.tlog-proof carries no DECISION entry")
    trust = _bundle_trust(root, manifest, policy, policy_pinned, given)
    found = custodians.check_decisions(
        ((i, d[38:], None) for i, d in sorted(proven.items())),
        manifest.origin,
        trust,
        manifest.incident,
    )
    if not found.decisions:
        return None  # nothing to report: bundles without decisions read as before
    report.ok("11", found.detail(trust))
    pinned = "" if trust is not None and trust.pinned else " (custodian keys not pinned)"
    return f"{found.decisions} decisions of incident {manifest.incident} signed{pinned}"


def _bundle_trust(
    root: Path,
    manifest: _Manifest,
    policy: Policy | None,
    policy_pinned: bool,
    given: list[Verifier] | None,
) -> custodians.CustodianTrust | None:
    """The custodian keys of checks 11 and 13: --custodian, the policy's, the bundle's list."""
    claimed = None
    if CUSTODIANS in manifest.files:
        text = read_text(root / CUSTODIANS, custodians.REGISTRY_LIMIT, CUSTODIANS)
        claimed = custodians.parse_registry(text, CUSTODIANS)
    return custodians.choose_trust(given, policy, policy_pinned, claimed, CUSTODIANS)


def _check_proven_custody(
    manifest: _Manifest,
    proven: dict[int, bytes],
    seals: dict[int, bytes],
    cp: Checkpoint,
    trust: custodians.CustodianTrust | None,
    incident: str | None,
) -> custodychain.CustodyFindings:
    """§16.3 for CUSTODY entries proven in a bundle: its one checkpoint, the SEALs it
    carries; every entry of ``incident`` when one is given."""
    infos = [SealInfo.from_entry(d) for d in seals.values()]
    known = custodychain.Known(
        cp.size, {cp.size: cp.root}, {i.end_index: i.sealed_at_ns for i in infos}, False, incident
    )
    entries = ((i, d[38:], None) for i, d in sorted(proven.items()))
    return custodychain.check_custody(entries, manifest.origin, trust, known)


def _check_bundle_custody(
    root: Path,
    manifest: _Manifest,
    proven: dict[int, bytes],
    seals: dict[int, bytes],
    cp: Checkpoint,
    policy: Policy | None,
    policy_pinned: bool,
    given: list[Verifier] | None,
    report: VerifyReport,
) -> str | None:
    """Check 13: the incident's custody entries and the export statement (§16.4)."""
    for index, data in proven.items():
        if data[5] != EntryType.CUSTODY or data[6:38] != bytes(32):
            raise MalformedError(f"{CUSTODY_DIR}/{index:020d}.tlog-proof carries no CUSTODY entry")
    trust = _bundle_trust(root, manifest, policy, policy_pinned, given)
    found = _check_proven_custody(manifest, proven, seals, cp, trust, manifest.incident)
    for message in found.policy:
        report.fail("13", PolicyError(message))
    _report_export(root, manifest, report)
    if not found.entries:
        return None
    if not found.policy:
        report.ok("13", found.detail(trust))
    pinned = "" if trust is not None and trust.pinned else " (custodian keys not pinned)"
    return f"{custodychain.entries(found.entries)} of incident {manifest.incident} signed{pinned}"


def _check_bundle_worm(
    root: Path,
    manifest: _Manifest,
    proven: dict[int, bytes],
    seals: dict[int, bytes],
    cp: Checkpoint,
    policy: Policy | None,
    policy_pinned: bool,
    given: list[Verifier] | None,
    report: VerifyReport,
) -> str | None:
    """Check 14: the log's worm-upload receipts (§16.7), offline: each a CUSTODY entry of
    that event, checked as §16.3 says but for the incident; its pins are reported."""
    if not proven:
        return None
    for index, data in proven.items():
        rel = f"{WORM_DIR}/{index:020d}.tlog-proof"
        if data[5] != EntryType.CUSTODY or data[6:38] != bytes(32):
            raise MalformedError(f"{rel} carries no CUSTODY entry")
        if parse_custody(data[38:]).event != WORM_EVENT:
            raise MalformedError(f"{rel} carries a CUSTODY entry that is no worm-upload")
    trust = _bundle_trust(root, manifest, policy, policy_pinned, given)
    found = _check_proven_custody(manifest, proven, seals, cp, trust, None)  # no incident's
    for message in found.policy:
        report.fail("14", PolicyError(message))
    pins = [
        {"index": i, "bucket": r.bucket, "key": p.key, "version_id": p.version_id,
         "sha256": p.sha256.hex(), "size": p.size}
        for i, d in sorted(proven.items())
        if (r := parse_custody(d[38:]).receipt) is not None
        for p in r.pins
    ]  # fmt: skip
    report.facts["worm"] = {"receipts": len(proven), "pins": pins}
    buckets = ", ".join(sorted({f"s3://{p['bucket']}" for p in pins}))
    if not found.policy:
        report.ok(
            "14",
            f"{len(proven)} worm-upload receipts pin {len(pins)} S3 object versions in "
            f"{buckets}, signed by custodian keys; not fetched (offline: `acdkit verify STORE "
            "--worm` fetches them)",
        )
    unpinned = "" if trust is not None and trust.pinned else " (custodian keys not pinned)"
    return f"{len(pins)} S3 object versions pinned by signed receipts{unpinned} (not fetched)"


def _report_export(root: Path, manifest: _Manifest, report: VerifyReport) -> None:
    rel = custodychain.EXPORT_STATEMENT
    if rel not in manifest.files:
        return  # a bundle made before custody entries existed
    data = read_bounded(root / rel, custodychain.EXPORT_LIMIT, "export statement")
    doc = custodychain.parse_export_statement(data, manifest.incident, manifest.size)
    if not doc["signed"]:
        report.warn("13", f"no custodian signed the export of this bundle ({rel})")
        return
    key = Verifier.parse(doc["custodian"]).key_id.hex()
    report.ok(
        "13",
        f"{rel}: its export is logged in the sender's log, signed by custodian key {key} (the "
        "sender's word: that entry names this bundle, so only a later bundle can prove it)",
    )


def _read_listed(root: Path, rel: str) -> bytes:
    with (root / rel).open("rb") as fh:
        return fh.read(MAX_COSIGNED_BYTES + 1)


def _report_anchors(
    report: VerifyReport, result: AnchorResult, count: int, allow_incomplete: bool
) -> None:
    report_anchor_findings(report, "10", result, allow_incomplete)
    if count and result.verified and not result.policy:
        report.ok("10", f"{len(result.verified)} anchors verify; times consistent")


def _bundle_key(root: Path, manifest: _Manifest) -> Verifier:
    if "key/sealer.vkey" not in manifest.files:
        raise MalformedError("bundle has no key/sealer.vkey; pass --key")
    path = root / "key" / "sealer.vkey"
    if not path.is_file():
        raise TamperedError("key/sealer.vkey is listed in the manifest but missing")
    return Verifier.parse(read_text(path, 64 * KIB, "key/sealer.vkey"))


def _check_files(root: Path, manifest: _Manifest, present: list[str]) -> None:
    for rel, (digest, size) in manifest.files.items():
        path = root / rel
        if not path.is_file():
            raise TamperedError(f"{rel} is listed in the manifest but missing")
        if path.stat().st_size != size or _file_sha256(path) != digest:
            raise TamperedError(f"{rel} does not match its SHA-256 in the signed manifest")
    extra = sorted(set(present) - set(manifest.files) - {MANIFEST})
    if extra:
        raise PolicyError(
            f"{extra[0]} is in the bundle but not in the signed manifest"
            + (f" (and {len(extra) - 1} more)" if len(extra) > 1 else "")
        )


def _check_bundle_policy(
    root: Path, manifest: _Manifest, chain: KeyChain, trust_root: Verifier | None
) -> tuple[str, Policy | None]:
    """Check 8: the bundle's trust policy (if any, and required under a pinned root)
    authorizes every sealer key of the chain; the policy is returned for check 9."""
    rels = sorted(r for r in manifest.files if r.startswith(f"{POLICY_DIR}/"))
    if not rels:
        if trust_root is not None:
            raise TamperedError("a root key is pinned but the bundle carries no trust policy")
        return "no trust policy in the bundle", None
    if len(rels) != 1 or not rels[0].endswith(POLICY_SUFFIX):
        raise MalformedError("a bundle carries exactly one policy/<serial>.policy.note")
    if trust_root is None:
        if "key/root.vkey" not in manifest.files:
            raise MalformedError("the bundle's policy comes without key/root.vkey; pass --root")
        text = read_bounded(root / "key" / "root.vkey", 64 << 10, "root vkey")
        trust_root = Verifier.parse(text.decode(errors="replace"))
        who = "the bundle's own root key, not pinned: pass --root"
    else:
        who = "pinned"
    data = read_bounded(root / rels[0], 4 * MIB, "trust policy")
    pol = parse_policy_note(data, trust_root, rels[0])
    if pol.origin != manifest.origin:
        raise TamperedError(f"{rels[0]} is for another log")
    for key in chain.keys:
        if pol.window_of(key) is None:
            raise TamperedError(
                f"sealer key {key.key_id.hex()} is not authorized by trust policy {pol.serial}"
            )
    return (
        f"trust policy {pol.serial} signed by root key {trust_root.key_id.hex()} ({who}) "
        f"authorizes all {len(chain.keys)} sealer keys"
    ), pol


def _bundle_chain(root: Path, manifest: _Manifest, first: Verifier) -> KeyChain:
    """The sealer keys from the first one through every KEY entry the bundle proves (their
    inclusion in the checkpoint is check 5)."""
    chain = KeyChain(manifest.origin, first)
    prefix = ROTATIONS + "/"
    for rel in sorted(r for r in manifest.files if r.startswith(prefix)):
        proof = TlogProof.parse(read_bounded(root / rel, MIB, "proof"))
        parsed = logentries.parse_entry(proof.extra or b"")
        if parsed.kind != EntryType.KEY:
            raise MalformedError(f"{rel} does not carry a KEY entry")
        chain.apply(proof.index, [parse_key_event(parsed.body)])
    return chain


def _file_sha256(path: Path) -> str:
    with path.open("rb") as fh:  # streamed: summarized logs can be large
        return hashlib.file_digest(fh, "sha256").hexdigest()


def _bundle_checkpoint(
    root: Path, manifest: _Manifest, sealer_keys: list[Verifier]
) -> tuple[bytes, Checkpoint]:
    rel = f"checkpoint/{manifest.size:020d}.checkpoint"
    if rel not in manifest.files:
        raise MalformedError(f"bundle has no {rel}")
    data = read_bounded(root / rel, MAX_NOTE_BYTES, "checkpoint")
    note = SignedNote.parse(data)
    cp = Checkpoint.from_text(note.text)
    if not any(note.verified_by(k) for k in sealer_keys):
        raise TamperedError("checkpoint signature does not verify with a sealer key of the log")
    if cp.origin != manifest.origin or cp.size != manifest.size:
        raise TamperedError("checkpoint origin or size differs from the manifest")
    return data, cp


def _check_proofs(
    root: Path, manifest: _Manifest, cp_bytes: bytes, cp: Checkpoint, prefix: str
) -> dict[int, bytes]:
    entries: dict[int, bytes] = {}
    for rel in sorted(r for r in manifest.files if r.startswith(prefix)):
        if not rel.endswith(".tlog-proof"):
            # anchors/ also holds token copies, custody/ the export statement
            if prefix != "anchors/" and rel != custodychain.EXPORT_STATEMENT:
                raise MalformedError(f"{rel} is not named <index20>.tlog-proof (§9.4 check 5)")
            continue
        proof = TlogProof.parse(read_bounded(root / rel, MAX_PROOF_BYTES, "proof"))
        if rel != f"{prefix}{proof.index:020d}.tlog-proof":
            raise MalformedError(f"{rel} holds the proof of index {proof.index}")
        if proof.checkpoint != cp_bytes:
            raise TamperedError(f"{rel} rests on another checkpoint than the bundle's")
        if proof.extra is None or len(proof.extra) < 38 or proof.extra[:5] != b"ACDK\x01":
            raise MalformedError(f"{rel} carries no acdkit entry")
        if not verify_inclusion(
            proof.index, cp.size, leaf_hash(proof.extra), proof.hashes, cp.root
        ):
            raise TamperedError(
                f"{rel}: inclusion proof of index {proof.index} does not lead "
                "to the checkpoint root"
            )
        entries[proof.index] = proof.extra
    return entries


def _read_records(path: Path, rel: str, sealed: pa.Schema) -> pa.Table:
    """A disclosed records file in the sealed schema; MALFORMED if it is anything else."""
    try:
        table = pq.read_table(path).cast(sealed)
        table.validate(full=True)  # Parquet readers leave UTF-8 unchecked; sealed text is UTF-8
        return table
    except (OSError, pa.ArrowException, ValueError) as exc:
        # a manifest may be signed by any key when none is pinned: its files are input;
        # OSError: pyarrow's for damaged pages ("ZSTD decompression failed"), the file
        # itself was read (it was hashed at check 2)
        raise MalformedError(f"{rel} is not a Parquet file of the sealed schema") from exc


def _check_records(root: Path, manifest: _Manifest, entries: dict[int, bytes]) -> int:
    seen: set[int] = set()
    for table in schema.TABLES:
        rel = f"records/{table}.parquet"
        if rel not in manifest.files:
            continue
        ts = schema.load(table)
        rows = _read_records(root / rel, rel, ts.sealed_arrow())
        bodies = canonical_bodies(rows, ts).to_pylist()
        hashes = rows.column("integrity_hash").to_pylist()
        for index, body, stored in zip(
            rows.column("log_index").to_pylist(), bodies, hashes, strict=True
        ):
            if index in seen:
                raise TamperedError(f"{rel}: record at index {index} appears more than once")
            data = entries.get(index)
            if data is None:
                raise TamperedError(f"{rel}: record at index {index} has no inclusion proof")
            if data[5] != EntryType.RECORD or data[38:] != body:
                raise TamperedError(f"{rel}: record at index {index} differs from its proven entry")
            if leaf_hash(data) != stored:
                raise TamperedError(f"{rel}: integrity_hash of index {index} is wrong")
            seen.add(index)
    missing = sorted(set(entries) - seen)
    if missing:
        raise TamperedError(f"proof of index {missing[0]} has no disclosed record")
    return len(seen)


def _check_seals(
    root: Path, manifest: _Manifest, records: dict[int, bytes], seals: dict[int, bytes]
) -> None:
    infos = [SealInfo.from_entry(data) for data in seals.values()]
    for index, data in seals.items():
        info = SealInfo.from_entry(data)
        if info.end_index - 1 != index or info.origin != manifest.origin:
            raise TamperedError(f"SEAL at index {index} describes another position or log")
    for table in schema.TABLES:
        rel = f"records/{table}.parquet"
        if rel not in manifest.files:
            continue
        rows = _read_records(root / rel, rel, schema.load(table).sealed_arrow())
        rows = rows.select(["log_index", "ts_utc"])
        for index, ts in zip(
            rows.column(0).to_pylist(), rows.column(1).cast(pa.int64()).to_pylist(), strict=True
        ):
            owner = next((i for i in infos if i.first_index <= index < i.end_index - 1), None)
            if owner is None:
                raise TamperedError(f"record at index {index} has no proven SEAL leaf")
            lo, hi = owner.ts_min_ns, owner.ts_max_ns
            if lo is None or hi is None or not lo <= ts <= hi:
                raise TamperedError(
                    f"record at index {index} lies outside its segment's sealed time range"
                )
    _ = records


# what an int64 count of nanoseconds since 1970 can express, to the whole day
TIME_RANGE = (datetime(1677, 9, 22, tzinfo=UTC), datetime(2262, 4, 11, tzinfo=UTC))


def parse_time(value: str) -> datetime:
    """ISO-8601 with a zone (or Z); a time without a zone is refused, never guessed."""
    dt: datetime | None
    try:
        dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(f"{value!r} is not an ISO-8601 time") from None
    if dt.tzinfo is None:
        raise UsageError(f"{value!r} has no time zone", hint="add Z or an offset like +09:00")
    try:
        dt = dt.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00+09:00 is before year 1 in UTC
        dt = None
    if dt is None or not TIME_RANGE[0] <= dt <= TIME_RANGE[1]:
        raise UsageError(
            f"{value!r} is outside the times records can hold "
            f"({TIME_RANGE[0]:%Y-%m-%d} to {TIME_RANGE[1]:%Y-%m-%d}, nanoseconds since 1970)"
        )
    return dt


def describe(report: PackageReport) -> dict[str, Any]:
    return {
        "out": str(report.out),
        "incident": report.incident,
        "checkpoint_size": report.checkpoint_size,
        "disclosed": report.disclosed,
        "files": report.files,
        "clock_flags": report.clock_flags,
        "custody": report.custody,
        "pruned": report.pruned,
    }
