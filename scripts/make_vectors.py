"""Regenerate docs/evidence-vectors.json: known-answer vectors of evidence format v1.

Everything is fixed (keys, salts' segment key, times), so the output never changes unless
the format does; tests/test_vectors.py fails when the code and this file disagree.
"""

from __future__ import annotations

import base64
import hashlib
import json
import sys
from pathlib import Path
from typing import Any

import pyarrow as pa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from acdkit import merkle, schema
from acdkit.clockentry import ClockRecord
from acdkit.clocksel import Reply, Sample, ServerSamples, select
from acdkit.cosignature import add_cosignature, cosign, cosignature_message
from acdkit.encoding import EntryType, canonical_bodies, entry, record_salts
from acdkit.keys import Signer, WitnessSigner
from acdkit.note import Checkpoint, SignedNote, sign_note
from acdkit.proof import TlogProof
from acdkit.sealinfo import SealInfo

OUT = Path(__file__).resolve().parents[1] / "docs" / "evidence-vectors.json"
ORIGIN = "acdkit/example/00000000-0000-4000-8000-000000000000"
SIGNING_SEED = bytes(range(32))
SEGMENT_KEY = bytes(range(32, 64))
LEDGER = "a" * 64
WITNESS_NAME = "witness.example/w1"
WITNESS_SEED = bytes(range(64, 96))
COSIGNED_AT = 1764547200  # 2025-12-01T00:00:00Z


def _net() -> tuple[dict[str, Any], pa.Table]:
    ts = schema.load("net")
    row: dict[str, Any] = {f.name: None for f in ts.fields}
    row.update(
        event_kind="conn",
        session_id="CH53301MTU21BMj2Bj",
        src_ip="10.18.20.97",
        src_port=49187,
        dst_ip="10.18.20.8",
        dst_port=88,
        proto="tcp",
        service="krb_tcp",
        ts_utc=1575413096052279000,
        duration_ns=1230955,
        orig_bytes=242,
        resp_bytes=283,
        orig_pkts=4,
        resp_pkts=4,
        src_ledger_id=LEDGER,
        src_line=1,
    )
    return row, pa.Table.from_pylist([row], schema=ts.staged_arrow())


def _dns() -> tuple[dict[str, Any], pa.Table]:
    ts = schema.load("dns")
    row: dict[str, Any] = {f.name: None for f in ts.fields}
    row.update(
        event_kind="transaction",
        session_id="CZGShC2znK1sV7jdI7",
        qname="www.guyspy.com",
        qtype="A",
        rcode="NOERROR",
        rrdata=["guyspy.com", "54.245.228.191"],
        resolver_ip="4.2.2.3",
        resolver_port=53,
        client_ip="192.168.33.10",
        client_port=1030,
        proto="udp",
        trans_id=50071,
        ts_utc=1379288667696869000,
        src_ledger_id=LEDGER,
        src_line=2,
    )
    return row, pa.Table.from_pylist([row], schema=ts.staged_arrow())


def build() -> dict[str, Any]:
    signer = Signer(ORIGIN, Ed25519PrivateKey.from_private_bytes(SIGNING_SEED))
    records = []
    leaves = []
    for position, (table, (row, rows)) in enumerate((("net", _net()), ("dns", _dns()))):
        body = canonical_bodies(rows, schema.load(table)).to_pylist()[0]
        salt = record_salts(SEGMENT_KEY, position, 1)
        data = entry(EntryType.RECORD, body, salt)
        leaves.append(merkle.leaf_hash(data))
        records.append(
            {
                "table": table,
                "index": position,
                "record": {k: v for k, v in row.items() if v is not None},
                "canonical_body_hex": body.hex(),
                "salt_hex": salt.hex(),
                "entry_hex": data.hex(),
                "leaf_hash_hex": leaves[-1].hex(),
            }
        )
    seal = SealInfo(
        origin=ORIGIN,
        segment_no=0,
        first_index=0,
        end_index=3,
        record_count=2,
        prev_checkpoint=bytes(32),
        sealed_at_ns=1764547200000000000,
        tool="acdkit 0.1.0",
        sealer_key_id=signer.verifier.key_id,
        sources=[LEDGER],
        ts_min_ns=1379288667696869000,
        ts_max_ns=1575413096052279000,
        tables={
            "net": {
                "count": 1,
                "sha256": "11" * 32,
                "size": 4096,
                "schema": schema.load("net").digest,
            },
            "dns": {
                "count": 1,
                "sha256": "22" * 32,
                "size": 4096,
                "schema": schema.load("dns").digest,
            },
        },
        collector="collector-1",
    )
    seal_entry = seal.entry()
    leaves.append(merkle.leaf_hash(seal_entry))
    root = merkle.subtree_root(leaves)
    note = sign_note(Checkpoint(ORIGIN, 3, root).text(), signer).encode()
    proof = TlogProof(
        1, tuple(merkle.inclusion_proof(leaves, 1)), note, bytes.fromhex(records[1]["entry_hex"])
    )
    return {
        "format": "acdkit evidence format v1 known-answer vectors",
        "signing_key_seed_hex": SIGNING_SEED.hex(),
        "segment_key_hex": SEGMENT_KEY.hex(),
        "vkey": signer.verifier.vkey(),
        "key_id_hex": signer.verifier.key_id.hex(),
        "salts_0_to_3_hex": record_salts(SEGMENT_KEY, 0, 4).hex(),
        "records": records,
        "seal": {"entry_hex": seal_entry.hex(), "leaf_hash_hex": leaves[2].hex()},
        "tree": {"size": 3, "root_hex": root.hex(), "root_b64": base64.b64encode(root).decode()},
        "checkpoint_note": note.decode(),
        "checkpoint_sha256_hex": hashlib.sha256(note).hexdigest(),
        "tlog_proof_of_index_1": proof.encode().decode(),
        "cosignature": _cosignature(note),
        "clock": _clock(),
    }


T0 = 1764547200_000000000  # 2025-12-01T00:00:00Z on the collector's clock
MS = 1_000_000


def _reply(rx: int, tx: int, stratum: int, rd: int, disp: int, prec: int, refid: bytes) -> Reply:
    return Reply(T0 + rx, T0 + tx, stratum, 0, rd, disp, prec, refid)


def _clock() -> dict[str, Any]:
    """A CLOCK entry (§15): two servers that agree, one 10 s ahead, one that never answered.

    The collector's clock is 1 ms behind true time; server A answered twice (the second
    time over a slower path), B runs 10 s fast, C agrees with A, D timed out.
    """
    servers = (
        ServerSamples(
            "ntp-a.example",
            "192.0.2.1",
            123,
            (
                Sample(
                    T0,
                    T0 + 4_100_000,
                    _reply(3 * MS, 3_100_000, 2, 10 * MS, 5 * MS, -20, bytes([203, 0, 113, 7])),
                ),
                Sample(
                    T0 + 1000 * MS,
                    T0 + 1_005_100_000,
                    _reply(
                        1_004_000_000,
                        1_004_100_000,
                        2,
                        10 * MS,
                        5 * MS,
                        -20,
                        bytes([203, 0, 113, 7]),
                    ),
                ),
            ),
        ),
        ServerSamples(
            "ntp-b.example:123",
            "198.51.100.2",
            123,
            (
                Sample(
                    T0 + 10 * MS,
                    T0 + 12_050_000,
                    _reply(10_012_000_000, 10_012_050_000, 1, 0, 10_000, -23, b"GPS\0"),
                ),
            ),
        ),
        ServerSamples(
            "[2001:db8::3]:123",
            "2001:db8::3",
            123,
            (
                Sample(
                    T0 + 20 * MS,
                    T0 + 30_200_000,
                    _reply(25_800_000, 26 * MS, 3, 20 * MS, 8 * MS, -18, bytes([192, 0, 2, 99])),
                ),
            ),
        ),
        ServerSamples(
            "ntp-d.example",
            "192.0.2.4",
            123,
            (Sample(T0 + 40 * MS, T0 + 2040 * MS, None, "timeout"),),
        ),
    )
    selection = select(servers, 1000, 2, 1000 * MS)
    record = ClockRecord(
        began_ns=T0 - MS // 2,
        ended_ns=T0 + 2_040_100_000,
        min_agree=2,
        max_drift_ns=1000 * MS,
        local_precision_ns=1000,
        servers=servers,
        selection=selection,
        collector="collector-1",
        tool="acdkit 0.1.0",
    )
    data = entry(EntryType.CLOCK, record.body())
    return {
        "results": [r.result for r in selection.servers],
        "chosen": [r.chosen for r in selection.servers],
        "distances_ns": [r.distance_ns for r in selection.servers],
        "offset_ns": selection.offset_ns,
        "interval_ns": [selection.low_ns, selection.high_ns],
        "verdict": selection.verdict,
        "body_hex": record.body().hex(),
        "entry_hex": data.hex(),
        "leaf_hash_hex": merkle.leaf_hash(data).hex(),
    }


def _cosignature(note: bytes) -> dict[str, Any]:
    """A witness's cosignature (C2SP tlog-cosignature/v1) on the checkpoint above."""
    witness = WitnessSigner(WITNESS_NAME, Ed25519PrivateKey.from_private_bytes(WITNESS_SEED))
    checkpoint = SignedNote.parse(note)
    line = cosign(witness, checkpoint.text, COSIGNED_AT)
    cosigned = add_cosignature(checkpoint, line).encode()
    return {
        "witness_key_seed_hex": WITNESS_SEED.hex(),
        "witness_vkey": witness.verifier.vkey(),
        "witness_key_id_hex": witness.verifier.key_id.hex(),
        "timestamp": COSIGNED_AT,
        "signed_message": cosignature_message(checkpoint.text, COSIGNED_AT).decode(),
        "signature_line": cosigned.decode().rstrip("\n").rsplit("\n", 1)[1],
        "cosigned_checkpoint": cosigned.decode(),
    }


def main() -> int:
    text = json.dumps(build(), indent=2, ensure_ascii=False, default=str) + "\n"
    if "--check" in sys.argv:
        return 0 if OUT.read_text() == text else 1
    OUT.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
