"""Regenerate docs/prune-vectors.json: known-answer vectors of declared pruning (format §17).

A trust policy declaring ``prune-below 2`` for the log of format §11, signed by a fixed root
key; the PRUNE entry that names it; the pruned.range that the §11 log keeps once its two
records are pruned, from which its checkpoint root still recomputes; and the cover of a few
record ranges.  Keys and times are fixed and Ed25519 is deterministic, so the output never
changes unless the format does; tests/test_prune.py fails when code and file disagree.
"""

from __future__ import annotations

import base64
import hashlib
import json
import sys
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from acdkit.encoding import EntryType, entry
from acdkit.keys import Signer
from acdkit.merkle import CompactRange, leaf_hash, node_hash
from acdkit.note import sign_note
from acdkit.policy import Policy, SealerWindow
from acdkit.prune import PruneEvent
from acdkit.prunedtree import range_heights

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "docs" / "prune-vectors.json"
ORIGIN = "acdkit/example/00000000-0000-4000-8000-000000000000"
SEALER_SEED = bytes(range(32))  # the sealer of format §11
ROOT_NAME = "example.org/root"
ROOT_SEED = bytes(range(160, 192))
ISSUED_NS = 1_790_812_800_000_000_000  # 2026-10-01T00:00:00Z
LOGGED_NS = 1_791_187_200_000_000_000  # 2026-10-05T08:00:00Z
COVERS = ((0, 2), (5, 6), (415, 97), (0, 414), (1_000_000, 1))


def vectors() -> dict[str, Any]:
    sealer = Signer(ORIGIN, Ed25519PrivateKey.from_private_bytes(SEALER_SEED))
    root = Signer(ROOT_NAME, Ed25519PrivateKey.from_private_bytes(ROOT_SEED))
    policy = Policy(ORIGIN, 1, ISSUED_NS, [SealerWindow(sealer.verifier)], prune_below=2)
    note = sign_note(policy.text(), root).encode()
    digest = hashlib.sha256(note).digest()
    event = PruneEvent(2, 1, digest, LOGGED_NS)
    data = entry(EntryType.PRUNE, event.body())
    # format §11: the leaf hashes of its two records and of its SEAL
    known = json.loads((REPO / "docs" / "evidence-vectors.json").read_text(encoding="utf-8"))
    records = [bytes.fromhex(r["leaf_hash_hex"]) for r in known["records"]]
    seal = bytes.fromhex(known["seal"]["leaf_hash_hex"])
    kept = node_hash(records[0], records[1])
    tree = CompactRange()
    tree.append_subtree(1, kept)
    tree.append(seal)
    assert tree.root().hex() == known["tree"]["root_hex"]
    return {
        "origin": ORIGIN,
        "policy": {
            "root_seed": ROOT_SEED.hex(),
            "root_vkey": root.verifier.vkey(),
            "text": policy.text(),
            "note_base64": base64.b64encode(note).decode(),
            "sha256": digest.hex(),
            "prune_below": 2,
        },
        "prune": {
            "bound": event.bound,
            "policy_serial": event.policy_serial,
            "at_ns": event.at_ns,
            "body": event.body().hex(),
            "entry": data.hex(),
            "leaf_hash": leaf_hash(data).hex(),
        },
        "pruned_range": {
            "record_leaf_hashes": [r.hex() for r in records],
            "file": kept.hex(),
            "seal_leaf_hash": seal.hex(),
            "root": tree.root().hex(),
        },
        "cover": [[first, count, range_heights(first, count)] for first, count in COVERS],
    }


def main() -> int:
    text = json.dumps(vectors(), indent=2, ensure_ascii=False) + "\n"
    if "--check" in sys.argv:
        return 0 if OUT.read_text(encoding="utf-8") == text else 1
    OUT.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
