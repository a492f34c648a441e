"""RFC 6962 hashing, inclusion proofs and the compact range against known answers."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from acdkit import merkle

# Leaf inputs and roots of the certificate-transparency reference tests (RFC 6962 §2.1),
# as published with the Go and C++ implementations (trees of 1..8 leaves).
RFC6962_LEAVES = [
    "",
    "00",
    "10",
    "2021",
    "3031",
    "40414243",
    "5051525354555657",
    "606162636465666768696a6b6c6d6e6f",
]
RFC6962_ROOTS = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]
LEAVES = [merkle.leaf_hash(bytes.fromhex(x)) for x in RFC6962_LEAVES]


def test_empty_tree_root_is_sha256_of_nothing() -> None:
    assert (
        merkle.EMPTY_ROOT.hex()
        == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    )
    assert merkle.subtree_root([]) == merkle.EMPTY_ROOT
    assert merkle.CompactRange().root() == merkle.EMPTY_ROOT


@pytest.mark.parametrize("n", range(1, 9))
def test_rfc6962_roots(n: int) -> None:
    assert merkle.subtree_root(LEAVES[:n]).hex() == RFC6962_ROOTS[n - 1]
    assert merkle.TreeLevels(LEAVES[:n]).root().hex() == RFC6962_ROOTS[n - 1]


def test_rfc6962_inclusion_path_known_answer() -> None:
    # audit path of leaf 0 in the 8-leaf tree, as in the CT reference tests
    path = merkle.inclusion_proof(LEAVES, 0)
    assert [p.hex() for p in path] == [
        "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
    ]


def _naive_root(leaves: list[bytes]) -> bytes:
    if len(leaves) == 1:
        return leaves[0]
    k = 1 << ((len(leaves) - 1).bit_length() - 1)
    return merkle.node_hash(_naive_root(leaves[:k]), _naive_root(leaves[k:]))


@settings(max_examples=60, deadline=None)
@given(st.integers(min_value=1, max_value=300), st.data())
def test_inclusion_for_every_index_against_naive_tree(n: int, data: st.DataObject) -> None:
    leaves = [hashlib.sha256(i.to_bytes(4, "big")).digest() for i in range(n)]
    root = _naive_root(leaves)
    compact = merkle.CompactRange()
    compact.extend(leaves)
    assert compact.root() == root
    tree = merkle.TreeLevels(leaves)
    index = data.draw(st.integers(min_value=0, max_value=n - 1))
    proof = tree.proof(index)
    assert merkle.verify_inclusion(index, n, leaves[index], proof, root)
    # the same proof must not verify another leaf, another index or a truncated path
    other = leaves[(index + 1) % n] if n > 1 else b"\x00" * 32
    assert not merkle.verify_inclusion(index, n, other, proof, root)
    if n > 1:
        assert not merkle.verify_inclusion((index + 1) % n, n, leaves[index], proof, root)
        assert not merkle.verify_inclusion(index, n, leaves[index], proof[:-1], root)
    assert not merkle.verify_inclusion(index, n, leaves[index], [*proof, root], root)


def test_compact_range_resumes_from_saved_nodes() -> None:
    a = merkle.CompactRange()
    a.extend(LEAVES[:5])
    b = merkle.CompactRange(a.size, list(a.nodes))
    b.extend(LEAVES[5:])
    assert b.root().hex() == RFC6962_ROOTS[7]
    with pytest.raises(ValueError):
        merkle.CompactRange(5, [])


def test_proof_rejects_bad_shapes() -> None:
    proof = merkle.inclusion_proof(LEAVES, 3)
    root = merkle.subtree_root(LEAVES)
    assert not merkle.verify_inclusion(8, 8, LEAVES[3], proof, root)  # index out of range
    assert not merkle.verify_inclusion(3, 16, LEAVES[3], proof, root)  # size doubled
    assert not merkle.verify_inclusion(3, 4, LEAVES[3], proof, root)  # size halved
    assert not merkle.verify_inclusion(3, 8, LEAVES[3], [proof[0][:31], *proof[1:]], root)


def _naive_root(leaves: list[bytes]) -> bytes:
    """RFC 6962 §2.1 MTH, written straight from the definition."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return leaves[0]
    k = 1 << ((len(leaves) - 1).bit_length() - 1)
    return merkle.node_hash(_naive_root(leaves[:k]), _naive_root(leaves[k:]))


@settings(max_examples=120, deadline=None)
@given(begin=st.integers(min_value=0, max_value=300), n=st.integers(min_value=0, max_value=300))
def test_worker_subtrees_extend_a_range_to_the_naive_root(begin: int, n: int) -> None:
    # what a seal worker computes for its batch [begin, begin + n), appended to the range
    # the sealer holds, must give the root of the whole tree
    leaves = [hashlib.sha256(i.to_bytes(4, "big")).digest() for i in range(begin + n)]
    compact = merkle.CompactRange()
    compact.extend(leaves[:begin])
    compact.append_range(merkle.range_subtrees(begin, b"".join(leaves[begin:])))
    assert compact.size == begin + n
    assert compact.root() == _naive_root(leaves)


# Consistency proofs of the same reference trees (the certificate-transparency tests).
RFC6962_CONSISTENCY = {
    (1, 8): [
        "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
    ],
    (6, 8): [
        "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
        "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    ],
    (2, 5): [
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
    ],
    (1, 1): [],
}


@pytest.mark.parametrize(("m", "n"), sorted(RFC6962_CONSISTENCY))
def test_consistency_proofs_match_the_reference(m: int, n: int) -> None:
    proof = merkle.consistency_proof(LEAVES[:n], m)
    assert [h.hex() for h in proof] == RFC6962_CONSISTENCY[(m, n)]
    old, new = (bytes.fromhex(RFC6962_ROOTS[m - 1]), bytes.fromhex(RFC6962_ROOTS[n - 1]))
    assert merkle.verify_consistency(m, n, old, new, proof)


def test_consistency_edge_cases_are_rejected() -> None:
    roots = [bytes.fromhex(r) for r in RFC6962_ROOTS]
    proof = merkle.consistency_proof(LEAVES[:8], 6)
    # from the empty tree, backwards, empty for growth, non-empty for equal sizes
    assert not merkle.verify_consistency(0, 8, merkle.EMPTY_ROOT, roots[7], [])
    assert not merkle.verify_consistency(8, 6, roots[7], roots[5], proof)
    assert not merkle.verify_consistency(6, 8, roots[5], roots[7], [])
    assert not merkle.verify_consistency(8, 8, roots[7], roots[7], [roots[7]])
    assert merkle.verify_consistency(8, 8, roots[7], roots[7], [])
    # truncated, extended, a wrong size, swapped roots, a short hash
    assert not merkle.verify_consistency(6, 8, roots[5], roots[7], proof[:-1])
    assert not merkle.verify_consistency(6, 8, roots[5], roots[7], [*proof, roots[0]])
    assert not merkle.verify_consistency(6, 7, roots[5], roots[6], proof)
    assert not merkle.verify_consistency(6, 8, roots[7], roots[5], proof)
    assert not merkle.verify_consistency(6, 8, roots[5], roots[7], [proof[0][:31], *proof[1:]])
    with pytest.raises(ValueError):
        merkle.consistency_proof(LEAVES[:4], 0)
    with pytest.raises(ValueError):
        merkle.consistency_proof(LEAVES[:4], 5)


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 300), st.data())
def test_consistency_for_random_sizes_and_single_flips(n: int, data: st.DataObject) -> None:
    leaves = [hashlib.sha256(i.to_bytes(4, "big")).digest() for i in range(n)]
    m = data.draw(st.integers(1, n))
    proof = merkle.consistency_proof(leaves, m)
    old, new = merkle.subtree_root(leaves[:m]), merkle.subtree_root(leaves)
    assert merkle.verify_consistency(m, n, old, new, proof)
    for i in range(len(proof)):
        bad = list(proof)
        bad[i] = bytes([bad[i][0] ^ 1]) + bad[i][1:]
        assert not merkle.verify_consistency(m, n, old, new, bad)
