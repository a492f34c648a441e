"""Anchors in a submission bundle: which ones go in, and how a recipient checks them.

A bundle carries, for each TSA, the ANCHOR leaf of the earliest anchored checkpoint that
covers each disclosed segment (the tightest bound on when its records existed) and that
of the newest anchored checkpoint, each with an inclusion proof in the bundle checkpoint;
the checkpoints they anchor, each with a consistency proof to the bundle checkpoint; the
token copies; and the tokens of the bundle checkpoint itself, whose ANCHOR entries are
not sealed yet (a token needs no proof: its imprint names the checkpoint).
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from acdkit import logentries
from acdkit._files import MIB, read_bounded
from acdkit.anchor import TSR_SUFFIX, AnchorRecord, parse_anchor_file_name, tsr_name
from acdkit.anchorcheck import AnchorClaim, AnchorResult, AnchorTrust, check_anchors
from acdkit.encoding import EntryType
from acdkit.errors import MalformedError, TamperedError
from acdkit.keys import Verifier
from acdkit.merkle import verify_consistency
from acdkit.note import Checkpoint, SignedNote, _b64, parse_decimal
from acdkit.sealinfo import SealInfo
from acdkit.store import Store
from acdkit.tsa import MAX_REPLY_BYTES

__all__ = ["BundleAnchors", "ConsistencyProof", "check_bundle_anchors", "select_anchors"]

CONSISTENCY_HEADER = "acdkit-consistency/1"
MAX_CONSISTENCY_BYTES = 16 * 1024


@dataclass(frozen=True)
class ConsistencyProof:
    """RFC 9162 §2.1.4 proof that tree ``old`` is a prefix of tree ``new``."""

    old: int
    new: int
    hashes: tuple[bytes, ...]

    def encode(self) -> bytes:
        lines = [CONSISTENCY_HEADER, f"old {self.old}", f"new {self.new}"]
        lines += [base64.b64encode(h).decode() for h in self.hashes]
        return ("\n".join(lines) + "\n").encode()

    @classmethod
    def parse(cls, data: bytes) -> ConsistencyProof:
        if len(data) > MAX_CONSISTENCY_BYTES or not data.endswith(b"\n"):
            raise MalformedError("consistency proof is over 16 KiB or lacks its final newline")
        try:
            lines = data[:-1].decode("ascii").split("\n")
        except UnicodeDecodeError:
            raise MalformedError("consistency proof is not ASCII") from None
        if len(lines) < 3 or lines[0] != CONSISTENCY_HEADER:
            raise MalformedError(f"consistency proof does not start with {CONSISTENCY_HEADER}")
        if not lines[1].startswith("old ") or not lines[2].startswith("new "):
            raise MalformedError("consistency proof lacks its old and new sizes")
        hashes = tuple(_b64(line, "consistency hash") for line in lines[3:])
        if len(hashes) > 64 or any(len(h) != 32 for h in hashes):
            raise MalformedError("consistency proof hashes must be at most 64 of 32 bytes")
        old = parse_decimal(lines[1][4:], "old size")
        return cls(old, parse_decimal(lines[2][4:], "new size"), hashes)


@dataclass
class BundleAnchors:
    """What `package` writes: ANCHOR leaves to prove, checkpoints to carry, tokens."""

    leaves: list[tuple[int, bytes]]  # (leaf index, entry bytes)
    checkpoints: dict[int, tuple[bytes, bytes]]  # size -> (note, consistency proof file)
    tokens: dict[str, bytes]  # anchors/<name> -> token


def _anchor_leaves(
    segments: Sequence[tuple[Path, SealInfo]],
) -> list[tuple[int, AnchorRecord, bytes]]:
    out = []
    for path, info in segments:
        first = info.first_index + info.record_count
        for i, data in enumerate(logentries.read_segment_entries(path, info.entry_count)):
            parsed = logentries.parse_entry(data)
            if parsed.kind == EntryType.ANCHOR:
                out.append((first + i, AnchorRecord.from_body(parsed.body), data))
    return out


def select_anchors(
    store: Store,
    segments: Sequence[tuple[Path, SealInfo]],
    touched_ends: set[int],
    size: int,
    consistency: Callable[[int], list[bytes]],
) -> BundleAnchors:
    """The anchors a bundle of checkpoint ``size`` carries (see the module docstring)."""
    chosen: dict[int, tuple[AnchorRecord, bytes]] = {}
    by_tsa: dict[str, list[tuple[int, AnchorRecord, bytes]]] = {}
    for item in _anchor_leaves(segments):
        by_tsa.setdefault(item[1].tsa, []).append(item)
    for items in by_tsa.values():
        picks = [max(items, key=lambda it: (it[1].size, -it[0]))]
        for end in touched_ends:
            covering = [it for it in items if it[1].size >= end]
            if covering:
                picks.append(min(covering, key=lambda it: (it[1].size, it[0])))
        for index, rec, data in picks:
            chosen[index] = (rec, data)
    out = BundleAnchors(sorted((i, d) for i, (_r, d) in chosen.items()), {}, {})
    for rec, _data in chosen.values():
        out.tokens[tsr_name(rec.size, rec.tsa)] = rec.reply
        if rec.size < size and rec.size not in out.checkpoints:
            note = read_bounded(store.checkpoint_path(rec.size), MIB, "checkpoint")
            proof = ConsistencyProof(rec.size, size, tuple(consistency(rec.size)))
            out.checkpoints[rec.size] = (note, proof.encode())
    # the bundle checkpoint's own tokens: their entries are not in this tree
    anchors_dir = store.anchors
    for path in sorted(anchors_dir.iterdir()) if anchors_dir.is_dir() else []:
        key = parse_anchor_file_name(path.name, TSR_SUFFIX)
        if key is not None and key[0] == size:
            out.tokens[path.name] = read_bounded(path, MAX_REPLY_BYTES, "token copy")
    return out


def check_bundle_anchors(
    files: Mapping[str, tuple[str, int]],
    read: Callable[[str], bytes],
    cp_bytes: bytes,
    cp: Checkpoint,
    keys: Sequence[Verifier],
    anchor_leaves: Mapping[int, bytes],
    seals: Sequence[SealInfo],
    trust: AnchorTrust | None,
) -> tuple[AnchorResult, int]:
    """Check 8 of a bundle: ANCHOR leaves (already proven), the checkpoints they anchor
    with their consistency proofs, the tokens; then `check_anchors`."""
    checkpoints = {cp.size: cp_bytes}
    claims: list[AnchorClaim] = []
    for index, data in sorted(anchor_leaves.items()):
        parsed = logentries.parse_entry(data)
        if parsed.kind != EntryType.ANCHOR:
            raise TamperedError(
                f"anchors/{index:020d}.tlog-proof proves a {parsed.kind.name} entry"
            )
        try:
            rec = AnchorRecord.from_body(parsed.body)
        except MalformedError as exc:
            raise MalformedError(f"ANCHOR leaf {index}: {exc.message}") from None
        if rec.size not in checkpoints:
            checkpoints[rec.size] = _older_checkpoint(files, read, rec.size, cp, keys)
        claims.append(AnchorClaim(rec.tsa, rec.size, rec.reply, f"ANCHOR leaf {index}", rec, index))
    logged = {(c.size, c.tsa): c.reply for c in claims}
    for rel in sorted(r for r in files if r.startswith("anchors/") and r.endswith(TSR_SUFFIX)):
        key = parse_anchor_file_name(rel.removeprefix("anchors/"), TSR_SUFFIX)
        if key is None:
            raise MalformedError(f"{rel} is not named <size20>.<tsa>.tsr")
        reply = read(rel)
        if key in logged:
            if logged[key] != reply:
                raise TamperedError(f"{rel} differs from the token of its ANCHOR leaf")
            continue
        claims.append(AnchorClaim(key[1], key[0], reply, rel))
    return check_anchors(claims, checkpoints, seals, trust), len(claims)


def _older_checkpoint(
    files: Mapping[str, tuple[str, int]],
    read: Callable[[str], bytes],
    size: int,
    cp: Checkpoint,
    keys: Sequence[Verifier],
) -> bytes:
    """An anchored checkpoint older than the bundle's, signed by a sealer key of the log
    (the chain the bundle proves) and consistent with it."""
    rel = f"checkpoint/{size:020d}.checkpoint"
    proof_rel = f"checkpoint/{size:020d}.consistency"
    if rel not in files or proof_rel not in files:
        raise TamperedError(f"an ANCHOR leaf names checkpoint {size:,}, which the bundle lacks")
    data = read(rel)
    note = SignedNote.parse(data)
    older = Checkpoint.from_text(note.text)
    signed = any(note.verified_by(k) for k in keys)
    if not signed or older.origin != cp.origin or older.size != size:
        raise TamperedError(f"{rel} is not checkpoint {size:,} of this log signed by its key")
    proof = ConsistencyProof.parse(read(proof_rel))
    if (proof.old, proof.new) != (size, cp.size) or not verify_consistency(
        size, cp.size, older.root, cp.root, proof.hashes
    ):
        raise TamperedError(
            f"{proof_rel} does not prove checkpoint {size:,} a prefix of {cp.size:,}"
        )
    return data
