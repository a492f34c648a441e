"""RFC 6962 / RFC 9162 Merkle tree hashing, inclusion proofs and a compact range.

leaf = SHA-256(0x00 || entry), node = SHA-256(0x01 || left || right); a tree of n leaves
splits at the largest power of two below n and never duplicates a node.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterable, Sequence
from itertools import starmap

import numpy as np

from acdkit import _batchsha

__all__ = [
    "EMPTY_ROOT",
    "CompactRange",
    "consistency_proof",
    "inclusion_proof",
    "leaf_hash",
    "node_hash",
    "root_from_inclusion",
    "subtree_root",
    "verify_consistency",
    "verify_inclusion",
]

EMPTY_ROOT = hashlib.sha256(b"").digest()
_sha256 = hashlib.sha256
_digest = type(_sha256()).digest


def leaf_hash(entry: bytes) -> bytes:
    return _sha256(b"\x00" + entry).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return _sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """Largest power of two strictly smaller than n (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


def subtree_root(leaves: Sequence[bytes]) -> bytes:
    """Root of the tree over the given leaf hashes (iterative, level by level)."""
    if not leaves:
        return EMPTY_ROOT
    compact = CompactRange()
    compact.extend(leaves)
    return compact.root()


class CompactRange:
    """The O(log n) frontier of a growing tree: enough to append and to compute the root.

    ``nodes`` holds the roots of the perfect subtrees that cover [0, size), largest first,
    which is exactly what the sealer must remember between runs.
    """

    def __init__(self, size: int = 0, nodes: Iterable[bytes] = ()) -> None:
        self.size = size
        self.nodes = list(nodes)
        if len(self.nodes) != bin(size).count("1"):
            raise ValueError("compact range does not match its size")

    def append(self, leaf: bytes) -> None:
        nodes, size = self.nodes, self.size
        nodes.append(leaf)
        # merge while the lowest set bits say two equal-height subtrees sit side by side
        while size & 1:
            right = nodes.pop()
            nodes[-1] = _sha256(b"\x01" + nodes[-1] + right).digest()
            size >>= 1
        self.size += 1

    def extend(self, leaves: Iterable[bytes]) -> None:
        for leaf in leaves:
            self.append(leaf)

    def append_subtree(self, height: int, node: bytes) -> None:
        """Append the root of a perfect subtree of 2**height leaves starting at ``size``."""
        width = 1 << height
        if self.size % width:
            raise ValueError("subtree is not aligned with the end of the range")
        size = self.size
        while size & (1 << height):
            node = _sha256(b"\x01" + self.nodes.pop() + node).digest()
            size -= 1 << height
            height += 1
        self.nodes.append(node)
        self.size += width

    def append_range(self, subtrees: Iterable[tuple[int, bytes]]) -> None:
        """Append the output of `range_subtrees` computed for the range starting at size."""
        for height, node in subtrees:
            self.append_subtree(height, node)

    def root(self) -> bytes:
        if not self.nodes:
            return EMPTY_ROOT
        acc = self.nodes[-1]
        for node in reversed(self.nodes[:-1]):
            acc = _sha256(b"\x01" + node + acc).digest()
        return acc


def _perfect_root(level: bytes) -> bytes:
    """Root of a perfect tree over the 2**k leaf hashes held back to back in ``level``.

    The batch library hashes a level in one call where it is built (`_batchsha`).  Without
    it, each level's node inputs (0x01 || left || right) are laid out by numpy in one pass,
    and are cut, hashed and joined by C iterators: no Python code runs per node.
    """
    while len(level) > 32:
        batched = _batchsha.node_level(level)
        if batched is not None:
            level = batched
            continue
        pairs = np.frombuffer(level, dtype=np.uint8).reshape(-1, 64)
        inputs = np.empty((len(pairs), 65), dtype=np.uint8)
        inputs[:, 0] = 1
        inputs[:, 1:] = pairs
        hashes = starmap(_sha256, struct.iter_unpack("65s", inputs.data))
        level = b"".join(map(_digest, hashes))
    return level


def range_subtrees(begin: int, hashes: bytes) -> list[tuple[int, bytes]]:
    """Split the leaves [begin, begin + n) into aligned perfect subtrees and hash each.

    ``hashes`` holds the n leaf hashes back to back.  The result, in order, can be appended
    with `CompactRange.append_range` to a range that ends at ``begin``; this lets worker
    processes do almost all of the tree hashing of their batch.
    """
    view = memoryview(hashes)
    n = len(hashes) // 32
    out: list[tuple[int, bytes]] = []
    pos, end = begin, begin + n
    while pos < end:
        height = (pos & -pos).bit_length() - 1 if pos else 63
        while (1 << height) > end - pos:
            height -= 1
        first = (pos - begin) * 32
        out.append((height, _perfect_root(bytes(view[first : first + (32 << height)]))))
        pos += 1 << height
    return out


def _levels(leaves: Sequence[bytes]) -> list[list[bytes]]:
    """All levels of the RFC 6962 tree, with an odd last node carried up unchanged."""
    levels = [list(leaves)]
    while len(levels[-1]) > 1:
        cur = levels[-1]
        nxt = _pair_up(cur, len(cur) // 2)
        if len(cur) % 2:
            nxt.append(cur[-1])
        levels.append(nxt)
    return levels


def _pair_up(nodes: list[bytes], pairs: int) -> list[bytes]:
    """node_hash of nodes (2i, 2i+1) for i < pairs; a level at a time where it can."""
    joined = b"".join(nodes[: 2 * pairs])
    batched = _batchsha.node_level(joined) if len(joined) == 64 * pairs else None
    if batched is None:  # no batch library, or a node that is not 32 bytes
        return [_sha256(b"\x01" + nodes[i] + nodes[i + 1]).digest() for i in range(0, 2 * pairs, 2)]
    return [batched[i : i + 32] for i in range(0, len(batched), 32)]


class TreeLevels:
    """Precomputed levels of one tree, for many inclusion proofs against the same size."""

    def __init__(self, leaves: Sequence[bytes]) -> None:
        self.size = len(leaves)
        self.levels = _levels(leaves)

    def root(self) -> bytes:
        return self.levels[-1][0] if self.size else EMPTY_ROOT

    def proof(self, index: int) -> list[bytes]:
        if not 0 <= index < self.size:
            raise ValueError(f"index {index} outside tree of size {self.size}")
        path: list[bytes] = []
        for level in self.levels[:-1]:
            sibling = index ^ 1
            if sibling < len(level):
                path.append(level[sibling])
            index >>= 1
        return path


def inclusion_proof(leaves: Sequence[bytes], index: int) -> list[bytes]:
    """Audit path for ``index`` in the tree over ``leaves`` (RFC 9162 §2.1.3.1)."""
    return TreeLevels(leaves).proof(index)


def root_from_inclusion(index: int, size: int, leaf: bytes, proof: Sequence[bytes]) -> bytes:
    """RFC 9162 §2.1.3.2: the root implied by an inclusion proof; ValueError if ill-formed."""
    if not 0 <= index < size:
        raise ValueError(f"index {index} not below tree size {size}")
    fn, sn = index, size - 1
    acc = leaf
    for sibling in proof:
        if len(sibling) != 32:
            raise ValueError("proof hash is not 32 bytes")
        if sn == 0:
            raise ValueError("proof is longer than the tree allows")
        if fn & 1 or fn == sn:
            acc = node_hash(sibling, acc)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            acc = node_hash(acc, sibling)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ValueError("proof is shorter than the tree requires")
    return acc


def verify_inclusion(
    index: int, size: int, leaf: bytes, proof: Sequence[bytes], root: bytes
) -> bool:
    try:
        return root_from_inclusion(index, size, leaf, proof) == root
    except ValueError:
        return False


def consistency_proof(leaves: Sequence[bytes], old_size: int) -> list[bytes]:
    """Proof that the tree of the first ``old_size`` leaves is a prefix (RFC 9162 §2.1.4.1)."""
    if not 0 < old_size <= len(leaves):
        raise ValueError(f"no consistency proof from size {old_size} to {len(leaves)}")
    return _subproof(old_size, leaves, True)


def _subproof(m: int, leaves: Sequence[bytes], complete: bool) -> list[bytes]:
    n = len(leaves)
    if m == n:
        return [] if complete else [subtree_root(leaves)]
    k = _split(n)
    if m <= k:
        return [*_subproof(m, leaves[:k], complete), subtree_root(leaves[k:])]
    return [*_subproof(m - k, leaves[k:], False), subtree_root(leaves[:k])]


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> bool:
    """RFC 9162 §2.1.4.2, strictly: no proof from the empty tree, none backwards, the
    empty proof only between equal sizes, and every hash must be used."""
    if any(len(h) != 32 for h in proof) or not 0 < old_size <= new_size:
        return False
    if old_size == new_size:
        return not proof and old_root == new_root
    if not proof:
        return False
    path = list(proof)
    if old_size & (old_size - 1) == 0:  # an exact power of two: the old root starts the path
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr, sr = node_hash(c, fr), node_hash(c, sr)
            while fn and not fn & 1:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return sn == 0 and fr == old_root and sr == new_root
