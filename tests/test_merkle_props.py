"""Inclusion and consistency proofs against a naive RFC 6962 tree written here from §2.1.

The verifiers are checked on every (index, size) and every (m, n) up to MAX_SIZE leaves with
proofs from the reference, together with the mutations of the transparency-dev/merkle test
vectors that can be derived here (a sibling flipped, a hash added or removed, index ±1,
size ×2 and ÷2, another root or leaf; for consistency also the empty proof, sizes backwards,
from size 0, roots swapped); the component flipped or removed rotates along the pairs.
Hypothesis draws the trees on which the proofs acdkit builds must equal the reference's.

Not asserted: size ±1.  RFC 9162's algorithm binds the size only through the path's shape,
so a path can be well-formed for a neighbouring size (index 0 of 6 and of 7 leaves share
theirs) and compute the same root; a checkpoint binds size and root together.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from functools import cache

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from acdkit import merkle

MAX_SIZE = 300


def _h(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


# leaves of every tree below: fixed, so that reference hashes can be cached across sizes
LEAVES = [_h(b"\x00" + i.to_bytes(4, "big")) for i in range(MAX_SIZE)]


def _k(n: int) -> int:
    """The largest power of two smaller than n (RFC 6962 §2.1)."""
    k = 1
    while k * 2 < n:
        k *= 2
    return k


@cache
def mth(lo: int, hi: int) -> bytes:
    """MTH(D[lo:hi]) over LEAVES."""
    if hi - lo == 1:
        return LEAVES[lo]
    k = _k(hi - lo)
    return _h(b"\x01" + mth(lo, lo + k) + mth(lo + k, hi))


def path(m: int, lo: int, hi: int) -> list[bytes]:
    """PATH(m, D[lo:hi]), RFC 6962 §2.1.1."""
    if hi - lo == 1:
        return []
    k = _k(hi - lo)
    if m < k:
        return [*path(m, lo, lo + k), mth(lo + k, hi)]
    return [*path(m - k, lo + k, hi), mth(lo, lo + k)]


def subproof(m: int, lo: int, hi: int, complete: bool) -> list[bytes]:
    """SUBPROOF(m, D[lo:hi], b), RFC 6962 §2.1.2."""
    n = hi - lo
    if m == n:
        return [] if complete else [mth(lo, hi)]
    k = _k(n)
    if m <= k:
        return [*subproof(m, lo, lo + k, complete), mth(lo + k, hi)]
    return [*subproof(m - k, lo + k, hi, False), mth(lo, lo + k)]


def _flipped(h: bytes, bit: int = 0) -> bytes:
    return bytes([h[0] ^ (1 << bit)]) + h[1:]


def _inclusion_mutations(
    i: int, n: int, proof: list[bytes]
) -> list[tuple[str, Callable[[], bool]]]:
    leaf, root = LEAVES[i], mth(0, n)
    v = merkle.verify_inclusion
    cases = [
        ("another leaf", lambda: v(i, n, _flipped(leaf), proof, root)),
        ("another root", lambda: v(i, n, leaf, proof, _flipped(root))),
        ("hash appended", lambda: v(i, n, leaf, [*proof, root], root)),
        ("hash prepended", lambda: v(i, n, leaf, [leaf, *proof], root)),
        ("size x2", lambda: v(i, 2 * n, leaf, proof, root)),
        ("size /2", lambda: v(i, n // 2, leaf, proof, root)),
        ("index out of range", lambda: v(n, n, leaf, proof, root)),
    ]
    if proof:  # one component per case, rotating along the tree's indices
        j = (i + n) % len(proof)
        cases.append((f"sibling {j} flipped", lambda: v(i, n, leaf, _replace(proof, j), root)))
        cases.append((f"hash {j} removed", lambda: v(i, n, leaf, _drop(proof, j), root)))
    if n > 1:
        cases.append(("index+1", lambda: v((i + 1) % n, n, leaf, proof, root)))
        cases.append(("index-1", lambda: v((i - 1) % n, n, leaf, proof, root)))
    return cases


def _replace(proof: list[bytes], j: int) -> list[bytes]:
    return [*proof[:j], _flipped(proof[j], j % 8), *proof[j + 1 :]]


def _drop(proof: list[bytes], j: int) -> list[bytes]:
    return proof[:j] + proof[j + 1 :]


def test_every_inclusion_proof_up_to_max_size_verifies_and_no_mutation_does() -> None:
    checked = 0
    for n in range(1, MAX_SIZE + 1):
        root = mth(0, n)
        for i in range(n):
            proof = path(i, 0, n)
            assert merkle.verify_inclusion(i, n, LEAVES[i], proof, root), (i, n)
            assert merkle.root_from_inclusion(i, n, LEAVES[i], proof) == root
            for name, case in _inclusion_mutations(i, n, proof):
                assert not case(), (name, i, n)
            checked += 1
    assert checked == MAX_SIZE * (MAX_SIZE + 1) // 2


@settings(max_examples=40, deadline=None)
@given(st.integers(1, MAX_SIZE))
def test_inclusion_proofs_built_by_acdkit_equal_the_reference(n: int) -> None:
    tree = merkle.TreeLevels(LEAVES[:n])
    assert tree.root() == mth(0, n) == merkle.subtree_root(LEAVES[:n])
    for i in range(n):
        assert tree.proof(i) == path(i, 0, n), (i, n)
    assert merkle.inclusion_proof(LEAVES[:n], n - 1) == path(n - 1, 0, n)
    with pytest.raises(ValueError):
        tree.proof(n)


def _consistency_mutations(
    m: int, n: int, proof: list[bytes]
) -> list[tuple[str, Callable[[], bool]]]:
    old, new = mth(0, m), mth(0, n)
    v = merkle.verify_consistency
    cases = [
        ("another old root", lambda: v(m, n, _flipped(old), new, proof)),
        ("another new root", lambda: v(m, n, old, _flipped(new), proof)),
        ("hash appended", lambda: v(m, n, old, new, [*proof, new])),
        ("from size 0", lambda: v(0, n, merkle.EMPTY_ROOT, new, proof)),
        ("size x2", lambda: v(m, 2 * n, old, new, proof)),
    ]
    if proof:
        j = (m + n) % len(proof)
        cases.append((f"hash {j} flipped", lambda: v(m, n, old, new, _replace(proof, j))))
        cases.append((f"hash {j} removed", lambda: v(m, n, old, new, _drop(proof, j))))
    if m < n:  # growth needs a proof, and the roots cannot be exchanged
        cases.append(("empty proof", lambda: v(m, n, old, new, [])))
        cases.append(("backwards", lambda: v(n, m, new, old, proof)))
        cases.append(("roots swapped", lambda: v(m, n, new, old, proof)))
    else:  # equal sizes take the empty proof only
        cases.append(("non-empty for equal sizes", lambda: v(m, n, old, new, [old])))
    return cases


def test_every_consistency_proof_up_to_max_size_verifies_and_no_mutation_does() -> None:
    checked = 0
    for n in range(1, MAX_SIZE + 1):
        for m in range(1, n + 1):
            proof = subproof(m, 0, n, True)
            assert merkle.verify_consistency(m, n, mth(0, m), mth(0, n), proof), (m, n)
            for name, case in _consistency_mutations(m, n, proof):
                assert not case(), (name, m, n)
            checked += 1
    assert checked == MAX_SIZE * (MAX_SIZE + 1) // 2


@settings(max_examples=25, deadline=None)
@given(st.integers(1, MAX_SIZE))
def test_consistency_proofs_built_by_acdkit_equal_the_reference(n: int) -> None:
    for m in range(1, n + 1):
        assert merkle.consistency_proof(LEAVES[:n], m) == subproof(m, 0, n, True), (m, n)


@settings(max_examples=200, deadline=None)
@given(
    st.integers(1, MAX_SIZE),
    st.data(),
    st.lists(st.binary(min_size=32, max_size=32), max_size=3),
)
def test_random_proofs_never_verify_and_never_raise(
    n: int, data: st.DataObject, junk: list[bytes]
) -> None:
    # arbitrary hashes in place of a real path: rejected, never an exception
    i = data.draw(st.integers(-2, n + 2))
    m = data.draw(st.integers(-2, n + 2))
    assert not merkle.verify_inclusion(i, n, _h(b"not a leaf of it"), junk, mth(0, n))
    assert not merkle.verify_consistency(m, n, mth(0, max(1, min(m, n))), mth(0, n), junk or [b""])
