"""Regenerate docs/custody-vectors.json: the known-answer vector of a CUSTODY entry (§16).

Keys and times are fixed, and Ed25519 signatures are deterministic, so the output never
changes unless the format does; tests/test_custody.py fails when code and file disagree.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from acdkit.custody import WORM_EVENT, Custody, custody_message
from acdkit.encoding import EntryType, entry
from acdkit.keys import Signer
from acdkit.merkle import leaf_hash
from acdkit.wormpin import Pin, Receipt

OUT = Path(__file__).resolve().parents[1] / "docs" / "custody-vectors.json"
ORIGIN = "acdkit/example/00000000-0000-4000-8000-000000000000"
CUSTODIAN_NAME = "alice@example.org"
CUSTODIAN_SEED = bytes(range(96, 128))  # the custodian of docs/decision-vectors.json
# the tree of size 3 of docs/evidence-vectors.json (format §11)
ROOT = bytes.fromhex("11c15d09c44341a0f8b8ddbb35e61ba6451fa60ae03317f79ed685d1d1a0c46c")


def vectors() -> dict[str, Any]:
    signer = Signer(CUSTODIAN_NAME, Ed25519PrivateKey.from_private_bytes(CUSTODIAN_SEED))
    event = Custody(
        event="hand-over",
        at_ns=1_791_187_200_000_000_000,  # 2026-10-05T08:00:00Z (17:00 JST)
        recorded_ns=1_791_187_260_000_000_000,
        handler=CUSTODIAN_NAME,
        checkpoint_size=3,
        checkpoint_root=ROOT,
        manifest_sha256=bytes.fromhex("cd" * 32),
        incident="INC-2026-0001",
        sender=CUSTODIAN_NAME,
        recipient="NCO 受付 (reception desk)",
        note="sealed envelope #7, by hand",
    )
    signed, body = event.sign(signer, ORIGIN)
    unsigned = signed.unsigned_body()
    data = entry(EntryType.CUSTODY, body)
    return {
        "origin": ORIGIN,
        "custodian_seed": CUSTODIAN_SEED.hex(),
        "custodian_vkey": signer.verifier.vkey(),
        "custody": {
            "event": event.event,
            "at_ns": event.at_ns,
            "recorded_ns": event.recorded_ns,
            "incident": event.incident,
            "handler": event.handler,
            "from": event.sender,
            "to": event.recipient,
            "checkpoint_size": event.checkpoint_size,
            "checkpoint_root": ROOT.hex(),
            "manifest_sha256": "cd" * 32,
            "note": event.note,
        },
        "signed_message_sha256": hashlib.sha256(custody_message(ORIGIN, unsigned)).hexdigest(),
        "signature": signed.signature.hex(),
        "body": body.hex(),
        "entry": data.hex(),
        "leaf_hash": leaf_hash(data).hex(),
        "worm_upload": worm_upload(signer),
    }


def worm_upload(signer: Signer) -> dict[str, Any]:
    """A worm-upload receipt (§16.7): two objects of the log of §11 in one bucket."""
    prefix = "acdkit/00000000-0000-4000-8000-000000000000/"
    pins = (
        Pin(
            key=prefix + "checkpoints/00000000000000000003.checkpoint",
            version_id="3HL4kqtJlcpXroDTDmJ.rmSpXd3dIbrHY_MTRCxf3vjVBH40Nr8X8gdRQBpUMLUo",
            sha256=bytes.fromhex("ab" * 32),
            size=263,
            mode="COMPLIANCE",
            retain_until_ns=1_822_723_200_000_000_000,  # 2027-10-05T08:00:00Z
            legal_hold=True,
            s3_checksum=True,
        ),
        Pin(
            key=prefix + "segments/00000000000000000000-00000000000000000003/seal.entry",
            version_id="0b9d6e3a-1f3c-4c55-9a8e-2f4d7c1b5e60",
            sha256=bytes.fromhex("ef" * 32),
            size=460,
            mode="GOVERNANCE",
            retain_until_ns=1_793_779_200_000_000_000,  # 2026-11-04T08:00:00Z
            legal_hold=False,
            s3_checksum=False,
        ),
    )
    event = Custody(
        event=WORM_EVENT,
        at_ns=1_791_187_200_000_000_000,
        recorded_ns=1_791_187_260_000_000_000,
        handler=CUSTODIAN_NAME,
        checkpoint_size=3,
        checkpoint_root=ROOT,
        receipt=Receipt("acdkit-evidence-example", pins),
    )
    signed, body = event.sign(signer, ORIGIN)
    data = entry(EntryType.CUSTODY, body)
    return {
        "bucket": "acdkit-evidence-example",
        "objects": [
            {
                "key": p.key,
                "version_id": p.version_id,
                "sha256": p.sha256.hex(),
                "size": p.size,
                "mode": p.mode,
                "retain_until_ns": p.retain_until_ns,
                "legal_hold": p.legal_hold,
                "s3_checksum": p.s3_checksum,
            }
            for p in pins
        ],
        "signed_message_sha256": hashlib.sha256(
            custody_message(ORIGIN, signed.unsigned_body())
        ).hexdigest(),
        "signature": signed.signature.hex(),
        "body": body.hex(),
        "leaf_hash": leaf_hash(data).hex(),
    }


def main() -> int:
    text = json.dumps(vectors(), indent=2, ensure_ascii=False) + "\n"
    if "--check" in sys.argv:
        return 0 if OUT.read_text(encoding="utf-8") == text else 1
    OUT.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
