"""Pruned segments and the tree over a log whose oldest records are gone (format §17.3).

Pruning removes a segment's records (its Parquet files and its segment key) and keeps, in
``pruned.range``, the roots of the perfect subtrees that covered their leaves.  With them,
the segment's log entries and its SEAL, every checkpoint root of the log still recomputes:
the tree is then a sequence of *pieces*, each the root of an aligned perfect subtree of
height ``h`` (a leaf hash is a piece of height 0).  `PartialTree` builds the levels of such
a tree for inclusion and consistency proofs of every leaf that was not pruned.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

from acdkit import logentries
from acdkit._files import MIB, read_bounded
from acdkit.errors import TamperedError
from acdkit.merkle import EMPTY_ROOT, leaf_hash, node_hash
from acdkit.sealinfo import SealInfo
from acdkit.store import Store

__all__ = [
    "PRUNED_FILE",
    "PartialTree",
    "Piece",
    "is_pruned",
    "leftovers",
    "pruned_extent",
    "range_heights",
    "read_pruned",
    "segment_pieces",
]

PRUNED_FILE = "pruned.range"
RECORD_FILES = ("net.parquet", "dns.parquet", "edr.parquet", "segment.key")
Piece = tuple[int, bytes]  # (height, root of the 2**height leaves it covers)


def range_heights(first: int, count: int) -> list[int]:
    """Heights of the aligned perfect subtrees that cover [first, first + count), in order.

    From each position take the largest subtree that starts there (the position is a
    multiple of its width) and still fits: the decomposition `merkle.range_subtrees` uses.
    """
    out: list[int] = []
    pos, end = first, first + count
    while pos < end:
        height = (pos & -pos).bit_length() - 1 if pos else 63
        while (1 << height) > end - pos:
            height -= 1
        out.append(height)
        pos += 1 << height
    return out


def is_pruned(seg: Path) -> bool:
    return (seg / PRUNED_FILE).exists()


def pruned_extent(store: Store) -> int:
    """The largest end index of a pruned segment of the store; 0 when none is pruned."""
    ends = [
        SealInfo.from_entry(read_bounded(seg / "seal.entry", MIB, "SEAL entry")).end_index
        for seg in store.segment_dirs()
        if is_pruned(seg)
    ]
    return max(ends, default=0)


def leftovers(seg: Path) -> list[str]:
    """Record files a pruned segment still holds: what an interrupted prune left."""
    return [name for name in RECORD_FILES if (seg / name).exists()]


def read_pruned(seg: Path, info: SealInfo) -> list[Piece]:
    """The pieces of a pruned segment's records, checked in number against its SEAL."""
    heights = range_heights(info.first_index, info.record_count)
    path = seg / PRUNED_FILE
    if not path.is_file():
        raise TamperedError(f"segment {seg.name}: {PRUNED_FILE} is not a regular file")
    data = read_bounded(path, MIB, PRUNED_FILE)
    if len(data) != 32 * len(heights):
        # every byte of the file is a hash the checkpoint root depends on: a file of another
        # length was cut or padded, it was not merely damaged in a way a reader could skip
        raise TamperedError(
            f"segment {seg.name}: {PRUNED_FILE} holds {len(data)} bytes; the "
            f"{info.record_count:,} pruned records of its SEAL need {len(heights)} hashes of 32"
        )
    return [(h, data[32 * i : 32 * i + 32]) for i, h in enumerate(heights)]


def segment_pieces(seg: Path, info: SealInfo) -> list[Piece]:
    """A sealed segment as pieces: its records (leaves, or the pruned range), its log
    entries and its SEAL leaf."""
    from acdkit.seal import segment_leaves  # seal builds on this module

    if not is_pruned(seg):
        return [(0, leaf) for leaf in segment_leaves(seg, info)]
    pieces = read_pruned(seg, info)
    pieces += [(0, leaf_hash(e)) for e in logentries.read_segment_entries(seg, info.entry_count)]
    pieces.append((0, leaf_hash(read_bounded(seg / "seal.entry", MIB, "SEAL entry"))))
    return pieces


class PartialTree:
    """The levels of an RFC 6962 tree given as pieces; nodes inside pruned pieces unknown.

    Every inclusion proof of a leaf outside the pruned pieces, and every consistency proof
    from a size that ends a segment, consists of known nodes: a sibling on such a path has a
    parent that reaches outside the pruned range, so it can never lie strictly inside one of
    its pieces (tests/test_prune.py checks this against the full tree).
    """

    def __init__(self, pieces: Iterable[Piece]) -> None:
        leaves: list[bytes | None] = []
        known: dict[int, list[tuple[int, bytes]]] = {}
        for height, node in pieces:
            pos = len(leaves)
            if pos % (1 << height):
                raise ValueError(f"a piece of height {height} cannot start at leaf {pos}")
            if height == 0:
                leaves.append(node)
                continue
            leaves.extend([None] * (1 << height))
            known.setdefault(height, []).append((pos >> height, node))
        self.size = len(leaves)
        self.levels: list[list[bytes | None]] = [leaves]
        while len(self.levels[-1]) > 1:
            cur = self.levels[-1]
            up: list[bytes | None] = [
                node_hash(a, b) if a is not None and b is not None else None
                for a, b in zip(cur[0::2], cur[1::2], strict=False)
            ]
            if len(cur) % 2:
                up.append(cur[-1])  # an odd last node is carried up unchanged
            for at, node in known.get(len(self.levels), ()):
                up[at] = node
            self.levels.append(up)

    def root(self) -> bytes:
        if not self.size:
            return EMPTY_ROOT
        return self._known(self.levels[-1][0])

    def proof(self, index: int) -> list[bytes]:
        """The audit path of ``index`` (RFC 9162 §2.1.3.1)."""
        if not 0 <= index < self.size:
            raise ValueError(f"index {index} outside tree of size {self.size}")
        path: list[bytes] = []
        for level in self.levels[:-1]:
            sibling = index ^ 1
            if sibling < len(level):
                path.append(self._known(level[sibling]))
            index >>= 1
        return path

    def consistency(self, old_size: int) -> list[bytes]:
        """Proof that the first ``old_size`` leaves are a prefix (RFC 9162 §2.1.4.1)."""
        if not 0 < old_size <= self.size:
            raise ValueError(f"no consistency proof from size {old_size} to {self.size}")
        return self._subproof(old_size, 0, self.size, True)

    def _subproof(self, m: int, lo: int, hi: int, complete: bool) -> list[bytes]:
        n = hi - lo
        if m == n:
            return [] if complete else [self._subtree(lo, hi)]
        k = 1 << ((n - 1).bit_length() - 1)
        if m <= k:
            return [*self._subproof(m, lo, lo + k, complete), self._subtree(lo + k, hi)]
        return [*self._subproof(m - k, lo + k, hi, False), self._subtree(lo, lo + k)]

    def _subtree(self, lo: int, hi: int) -> bytes:
        """Root of the subtree over [lo, hi), a node of this tree: ``lo`` is a multiple of
        a power of two at least ``hi - lo``, so its perfect parts shrink left to right."""
        nodes = []
        for height in range_heights(lo, hi - lo):
            nodes.append(self._known(self.levels[height][lo >> height]))
            lo += 1 << height
        acc = nodes[-1]
        for node in reversed(nodes[:-1]):
            acc = node_hash(node, acc)
        return acc

    @staticmethod
    def _known(node: bytes | None) -> bytes:
        if node is None:
            raise ValueError("the proof needs a hash that pruning removed")
        return node


def pieces_of(segments: Sequence[tuple[Path, SealInfo]]) -> list[Piece]:
    """Pieces of consecutive segments from index 0 (TAMPERED where they do not tile)."""
    out: list[Piece] = []
    size = 0
    for path, info in segments:
        if info.first_index != size:
            raise TamperedError(
                f"segment {path.name} starts at {info.first_index:,}, not at {size:,}"
            )
        out += segment_pieces(path, info)
        size = info.end_index
    return out
