"""Regenerate docs/decision-vectors.json: the known-answer vector of a DECISION entry (§13).

Keys and times are fixed, and Ed25519 signatures are deterministic, so the output never
changes unless the format does; tests/test_decision.py fails when code and file disagree.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from acdkit.decision import Decision, decision_message
from acdkit.encoding import EntryType, entry
from acdkit.keys import Signer
from acdkit.merkle import leaf_hash

OUT = Path(__file__).resolve().parents[1] / "docs" / "decision-vectors.json"
ORIGIN = "acdkit/example/00000000-0000-4000-8000-000000000000"
CUSTODIAN_NAME = "alice@example.org"
CUSTODIAN_SEED = bytes(range(96, 128))


def vectors() -> dict[str, Any]:
    signer = Signer(CUSTODIAN_NAME, Ed25519PrivateKey.from_private_bytes(CUSTODIAN_SEED))
    decision = Decision(
        incident="INC-2026-0001",
        action="recognize",
        at_ns=1_791_176_400_000_000_000,  # 2026-10-05T05:00:00Z (14:00 JST)
        recorded_ns=1_791_176_460_000_000_000,
        actor=CUSTODIAN_NAME,
        why="IDS alert on the gateway confirmed by the on-call engineer",
        reasons=("CNI-INCIDENT", "ACD-EXTERNAL-INBOUND"),
        events=("jp_recognition",),
        stages=("jp-acd/prompt",),
        refs=("ticket:sha256:" + "ab" * 32,),
    )
    signed, body = decision.sign(signer, ORIGIN)
    unsigned = signed.unsigned_body()
    data = entry(EntryType.DECISION, body)
    return {
        "origin": ORIGIN,
        "custodian_seed": CUSTODIAN_SEED.hex(),
        "custodian_vkey": signer.verifier.vkey(),
        "decision": {
            "incident": decision.incident,
            "action": decision.action,
            "at_ns": decision.at_ns,
            "recorded_ns": decision.recorded_ns,
            "actor": decision.actor,
            "why": decision.why,
            "reasons": list(decision.reasons),
            "events": list(decision.events),
            "stages": list(decision.stages),
            "refs": list(decision.refs),
        },
        "signed_message_sha256": hashlib.sha256(decision_message(ORIGIN, unsigned)).hexdigest(),
        "signature": signed.signature.hex(),
        "body": body.hex(),
        "entry": data.hex(),
        "leaf_hash": leaf_hash(data).hex(),
    }


def main() -> int:
    text = json.dumps(vectors(), indent=2) + "\n"
    if "--check" in sys.argv:
        return 0 if OUT.read_text() == text else 1
    OUT.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
