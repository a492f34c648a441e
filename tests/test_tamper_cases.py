"""The tamper and bad-input cases of EVIDENCE §4, one test per case, through the real CLI.

Each test takes a copy of a store sealed from real sample logs (three segments) or of a
bundle packaged from it, applies the case's mutation, runs `acdkit verify --json` and
asserts the verdict, the exit code and where the first failure is said to be.  Tests are
named after their case (`test_4_1_05_...` is §4.1 case 5).

Cases tested in the files of the features they need, not repeated here:
- 4.1.6 rollback, against --state and --expect-min-size: test_rollback.py, and against a
  witness: test_witness.py (here: without any of them, INCOMPLETE);
- 4.1.8 forks and forged consistency proofs, 4.2.6 unknown cosigners: test_witness.py;
- 4.1.10 keys outside the policy or their window, 4.1.11 a stripped policy, 4.1.18 KEY
  entries, 4.2.4 rotation boundaries: test_policy.py, test_keys_rotation.py;
- 4.1.13 consistency proofs: test_merkle.py, test_merkle_props.py;
- 4.1.14 and 4.1.15 RFC 3161 tokens, 4.2.3 an expired TSA certificate, 4.2.8 a TSA that
  fails: test_anchor.py;
- 4.1.12 at the level of the proof algorithm: test_merkle_props.py;
- 4.1.21 at the level of the parsers: test_fuzz_parsers.py;
- 4.2.5 heartbeat seals: test_logentries.py;
- 4.1.23 and 4.2.8 for S3 beyond the cases here (content changed under a version, a
  lapsed lock, 503 answers, a hung server): test_worm.py.
4.2.7 (declared pruning) is tested here with both verifiers; the command itself, its kill
tests and the fuzzing of its parsers are in test_prune.py.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from _evidence import DATA, build_store, cli_verify, copy_store, reprove_bundle, resign_manifest
from acdkit import (
    bundle,
    custodians,
    custodychain,
    ingest,
    keys,
    logentries,
    policy,
    prune,
    schema,
    seal,
)
from acdkit.custody import Custody
from acdkit.encoding import (
    TlvType,
    canonical_bodies,
    leaf_hashes,
    parse_tlv,
    record_salts,
    tlv,
)
from acdkit.keychain import read_chain
from acdkit.merkle import TreeLevels, range_subtrees
from acdkit.note import Checkpoint, SignedNote, sign_note
from acdkit.proof import TlogProof
from acdkit.prunedtree import PRUNED_FILE
from acdkit.seal import segment_leaves
from acdkit.sealinfo import SealInfo
from acdkit.store import Store
from test_independent_verifier import run_acdkit, run_independent

SEGMENTS = (
    ("zeek-tsv/zat/conn.log", "zeek-tsv/zat/dns.log"),  # 360 net + 54 dns, 2013
    tuple(f"zeek-json/otrf-apt29/{n}" for n in sorted(os.listdir(DATA / "zeek-json/otrf-apt29"))),
    ("zeek-json/zat/ssl.log", "zeek-json/zat/dns.log"),  # 50 net + 50 dns, 2019
)
SIZES = (415, 512, 613)  # the tree size after each segment's seal
# 15 net records and the one dns record of the OTRF segment
WINDOW = bundle.Window(
    bundle.parse_time("2020-05-01T07:22:00Z"), bundle.parse_time("2020-05-01T07:23:00Z")
)


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> tuple[Store, keys.Signer, Path]:
    base = tmp_path_factory.mktemp("template")
    store, signer = build_store(base / "store", base / "keys" / "sealer.key", SEGMENTS)
    bundle.package(store, signer, "INC-1", WINDOW, base / "bundle")
    return store, signer, base / "bundle"


@pytest.fixture
def st(template: tuple[Store, keys.Signer, Path], tmp_path: Path) -> Store:
    return copy_store(template[0], tmp_path / "store")


@pytest.fixture
def signer(template: tuple[Store, keys.Signer, Path]) -> keys.Signer:
    return template[1]


@pytest.fixture
def bdl(template: tuple[Store, keys.Signer, Path], tmp_path: Path) -> Path:
    out = tmp_path / "bundle"
    shutil.copytree(template[2], out)
    return out


def expect(
    target: Path, verdict: str, *extra: str, check: str | None = None, **where: Any
) -> dict[str, Any]:
    """Run the CLI; assert verdict, exit code, the failed check and location fields."""
    code, doc = cli_verify(target, *extra)
    codes = {"VERIFIED": 0, "TAMPERED": 1, "INCOMPLETE": 3, "MALFORMED": 4, "POLICY": 5}
    assert (doc["verdict"], code, doc["exit_code"]) == (verdict, codes[verdict], code), doc[
        "failure"
    ]
    failure = doc["failure"] or {}
    if check is not None:
        assert failure["check"] == check, failure
    for key, value in where.items():
        assert failure[key] == value, (key, failure)
    return doc


def message(doc: dict[str, Any]) -> str:
    return str(doc["failure"]["message"])


def segment(store: Store, n: int) -> Path:
    return store.segment_dirs()[n]


def rewrite(path: Path, change: Callable[[pa.Table], pa.Table]) -> None:
    pq.write_table(change(pq.read_table(path)), path)


def set_value(table: pa.Table, name: str, row: int, value: Any) -> pa.Table:
    i = table.schema.get_field_index(name)
    values = table.column(i).to_pylist()
    values[row] = value
    return table.set_column(i, name, pa.array(values, table.schema.field(i).type))


# -- §4.1 must be detected: a store ------------------------------------------------------------


def test_4_1_01_changed_field_is_tampered_at_its_index(st: Store) -> None:
    seg = segment(st, 1)
    rewrite(seg / "net.parquet", lambda t: set_value(t, "dst_port", 17, 4444))
    doc = expect(
        st.root, "TAMPERED", check="4", segment=seg.name, table="net", row=17, index=415 + 17
    )
    assert "net record at index 432 (row 17)" in message(doc)
    assert doc["failure"]["expected"] != doc["failure"]["actual"]


@pytest.mark.parametrize(
    "name,respell",
    [
        ("dst_ip", lambda v: v + "%eth0"),
        ("dst_ip", lambda v: v.upper() if ":" in v else f" {v}"),
        ("src_ledger_id", str.upper),
        ("src_ledger_id", lambda v: " ".join(v[i : i + 2] for i in range(0, len(v), 2))),
    ],
    ids=["ip-zone-id", "ip-spelling", "hex-upper-case", "hex-spaced"],
)
def test_4_1_01_value_respelled_in_a_form_that_would_encode_alike_is_not_verified(
    st: Store, name: str, respell: Callable[[str], str]
) -> None:
    # each spelling decodes to the same bytes, so only the canonical text is accepted: a
    # zone ID is free text, and a changed spelling is a changed sealed file
    seg = segment(st, 1)
    table = pq.read_table(seg / "net.parquet")
    row = next(i for i, v in enumerate(table.column(name).to_pylist()) if v and i >= 17)
    rewrite(seg / "net.parquet", lambda t: set_value(t, name, row, respell(t[name][row].as_py())))
    doc = expect(st.root, "TAMPERED", check="4", segment=seg.name, table="net", row=row)
    assert doc["failure"]["index"] == 415 + row
    assert f"net.{name}" in message(doc) and "cannot be encoded" in message(doc)
    assert message(doc).endswith("a sealed value was changed")


def test_4_1_01_changed_field_with_its_leaf_recomputed_breaks_the_root(st: Store) -> None:
    # an insider with write access can read segment.key and recompute integrity_hash; the
    # signed checkpoint still holds the old root
    seg = segment(st, 0)
    table = set_value(pq.read_table(seg / "net.parquet"), "dst_port", 3, 31337)
    key = (seg / "segment.key").read_bytes()
    hashes = leaf_hashes(
        canonical_bodies(table, schema.load("net")), record_salts(key, 0, table.num_rows)
    )
    leaves = pa.FixedSizeBinaryArray.from_buffers(
        pa.binary(32), table.num_rows, [None, pa.py_buffer(hashes)]
    )
    table = table.set_column(table.num_columns - 1, "integrity_hash", leaves)
    pq.write_table(table, seg / "net.parquet")
    doc = expect(st.root, "TAMPERED", check="4", segment=seg.name, checkpoint_size=415)
    assert message(doc) == "tree root at size 415 does not match its checkpoint"


def test_4_1_02_record_deleted_from_the_middle_is_tampered(st: Store) -> None:
    seg = segment(st, 0)
    rewrite(seg / "net.parquet", lambda t: pa.concat_tables([t.slice(0, 100), t.slice(101)]))
    doc = expect(st.root, "TAMPERED", check="4", segment=seg.name, table="net", index=100)
    assert "net row 100: log_index 101 where 100 was expected" in message(doc)


def test_4_1_03_fabricated_record_inserted_is_tampered(st: Store) -> None:
    seg = segment(st, 2)

    # a copy of record 5 with another destination, slotted in after it
    def insert(t: pa.Table) -> pa.Table:
        fake = set_value(t.slice(5, 1), "resolver_ip", 0, "203.0.113.9")
        return pa.concat_tables([t.slice(0, 6), fake, t.slice(6)])

    rewrite(seg / "dns.parquet", insert)
    doc = expect(st.root, "TAMPERED", check="4", segment=seg.name, table="dns", row=6)
    assert doc["failure"]["index"] == 512 + 50 + 6  # after the segment's 50 net records


@pytest.mark.parametrize("keep_index", [False, True], ids=["rows-swapped", "contents-swapped"])
def test_4_1_04_swapped_records_are_tampered(st: Store, keep_index: bool) -> None:
    seg = segment(st, 0)

    def swap(t: pa.Table) -> pa.Table:
        order = list(range(t.num_rows))
        order[10], order[11] = 11, 10
        swapped = t.take(pa.array(order))
        return swapped.set_column(0, "log_index", t.column("log_index")) if keep_index else swapped

    rewrite(seg / "net.parquet", swap)
    doc = expect(st.root, "TAMPERED", check="4", segment=seg.name, table="net", index=10)
    assert ("does not match its sealed leaf" if keep_index else "log_index 11") in message(doc)


def test_4_1_05_tail_records_dropped_are_tampered(st: Store) -> None:
    seg = segment(st, 0)
    rewrite(seg / "dns.parquet", lambda t: t.slice(0, t.num_rows - 3))
    doc = expect(st.root, "TAMPERED", check="4", segment=seg.name, first_missing_index=411)
    assert message(doc) == f"segment {seg.name}: 411 records present, its SEAL declares 414"


def test_4_1_06_newest_segment_and_checkpoint_deleted_without_outside_memory_is_incomplete(
    st: Store,
) -> None:
    # the rollback itself is caught against --state, a witness or anchors (test_rollback.py,
    # test_witness.py); with none of them the verifier cannot exclude it, and says so
    shutil.rmtree(segment(st, 2))
    st.checkpoint_path(SIZES[2]).unlink()
    kept = {
        source
        for seg in st.segment_dirs()
        for source in SealInfo.from_entry((seg / "seal.entry").read_bytes()).sources
    }
    for entry in st.ledger_dir.iterdir():  # a careful intruder leaves no ledger entry behind
        if entry.stem not in kept:
            entry.unlink()
    code, doc = cli_verify(st.root, local_only=False)
    assert (code, doc["verdict"], doc["failure"]["check"]) == (3, "INCOMPLETE", "6")
    assert "a rollback of its newest segments cannot be excluded" in message(doc)
    expect(st.root, "VERIFIED")  # --local-only: the integrity checks alone decide


def test_4_1_07_middle_checkpoint_deleted_is_tampered(st: Store) -> None:
    st.checkpoint_path(SIZES[1]).unlink()
    doc = expect(st.root, "TAMPERED", check="3", segment=segment(st, 1).name)
    assert message(doc).startswith("checkpoint for size 512 (closing segment")


@pytest.mark.parametrize("which", ["newest", "middle", "fork"])
def test_4_1_08_checkpoint_not_consistent_with_the_log_is_tampered(
    st: Store, signer: keys.Signer, which: str
) -> None:
    # whoever holds the key signs a tree head that does not extend the log's own tree
    size = SIZES[-1] if which == "newest" else SIZES[1]
    forged = sign_note(Checkpoint(st.origin, size, b"\x07" * 32).text(), signer).encode()
    if which == "fork":  # a second, different checkpoint for the same size beside it
        (st.checkpoints / "copy.checkpoint").write_bytes(forged)
        doc = expect(st.root, "TAMPERED", check="2", checkpoint="copy.checkpoint")
        assert message(doc) == f"two different checkpoints for size {size} (fork)"
        return
    st.checkpoint_path(size).write_bytes(forged)
    if which == "newest":
        doc = expect(st.root, "TAMPERED", check="4", checkpoint_size=size)
        assert message(doc) == f"tree root at size {size} does not match its checkpoint"
    else:  # the next SEAL names the hash of the checkpoint it followed
        doc = expect(st.root, "TAMPERED", check="3", segment=segment(st, 2).name)
        assert "does not carry the hash of the checkpoint before it" in message(doc)


@pytest.mark.parametrize("part", ["size", "root", "origin", "signature"])
def test_4_1_09_checkpoint_body_or_signature_altered_is_tampered(st: Store, part: str) -> None:
    path = st.checkpoint_path(SIZES[1])
    text, _, sig = path.read_text().partition("\n\n")
    origin, size, root = text.split("\n")[:3]
    if part == "size":
        text = f"{origin}\n513\n{root}\n"
    elif part == "root":
        raw = bytearray(base64.b64decode(root))
        raw[0] ^= 1
        text = f"{origin}\n{size}\n{base64.b64encode(bytes(raw)).decode()}\n"
    elif part == "origin":
        text = f"{origin}x\n{size}\n{root}\n"
    else:
        text += "\n"  # partition took the text's last LF
        head, blob = sig.rstrip("\n").rsplit(" ", 1)
        raw = bytearray(base64.b64decode(blob))
        raw[10] ^= 0x01
        sig = f"{head} {base64.b64encode(bytes(raw)).decode()}\n"
    path.write_text(f"{text}\n{sig}")
    seg = segment(st, 1).name
    if part == "origin":
        doc = expect(st.root, "TAMPERED", check="2", checkpoint=path.name)
        assert message(doc).startswith(f"checkpoint {path.name} names origin")
    elif part == "size":  # the note now claims 513: 512 has no checkpoint any more
        doc = expect(st.root, "TAMPERED", check="3", segment=seg)
        assert message(doc) == f"checkpoint for size 512 (closing segment {seg}) is missing"
    else:
        doc = expect(st.root, "TAMPERED", check="3", checkpoint_size=512, segment=seg)
        key = st.verifier().key_id.hex()
        assert message(doc) == (
            f"checkpoint 512: no valid signature by sealer key {key}, the key current at segment 1"
        )


def test_4_1_10_checkpoint_signed_by_an_unknown_key_is_tampered(st: Store) -> None:
    path = st.checkpoint_path(SIZES[-1])
    cp = Checkpoint.from_text(SignedNote.parse(path.read_bytes()).text)
    stranger = keys.generate(st.origin)  # same name, another key
    path.write_bytes(sign_note(cp.text(), stranger).encode())
    doc = expect(st.root, "TAMPERED", check="3", checkpoint_size=SIZES[-1])
    assert f"no valid signature by sealer key {st.verifier().key_id.hex()}" in message(doc)


def test_4_1_10_store_key_other_than_the_pinned_one_is_tampered(st: Store) -> None:
    other = keys.generate(st.origin).verifier.vkey()
    doc = expect(st.root, "TAMPERED", "--key", other, check="3")
    assert message(doc).startswith("the pinned --key is not a sealer key of this log")


@pytest.mark.parametrize("strip", ["signature lines", "checkpoints", "seal entries"])
def test_4_1_11_seals_stripped_are_not_verified(st: Store, strip: str) -> None:
    if strip == "signature lines":
        # the tree heads kept, each with or without the blank line that ended its text
        for n, path in enumerate(st.checkpoint_files()):
            text = path.read_bytes().split(b"\n\n")[0]
            path.write_bytes(text + (b"\n\n" if n % 2 else b"\n"))
        first = st.checkpoint_files()[0].name
        doc = expect(st.root, "TAMPERED", check="2", checkpoint=first)
        assert message(doc) == (
            f"checkpoint {first} carries no signature: its signature lines were removed"
        )
    elif strip == "checkpoints":
        shutil.rmtree(st.checkpoints)
        doc = expect(st.root, "TAMPERED", check="3", segment=segment(st, 0).name)
        assert message(doc).startswith("checkpoint for size 415 (closing segment")
    else:  # plain Parquet left where the segments were
        for seg in st.segment_dirs():
            (seg / "seal.entry").unlink()
        doc = expect(st.root, "TAMPERED", check="3")
        assert message(doc) == f"segment {segment(st, 0).name} has no seal.entry " + (
            "(deleted, or not made by a seal)"
        )


def test_4_1_19_segment_key_replaced_is_tampered(st: Store) -> None:
    seg = segment(st, 1)
    (seg / "segment.key").write_bytes(os.urandom(32))
    expect(st.root, "TAMPERED", check="4", segment=seg.name, table="net", row=0, index=415)


@pytest.mark.parametrize("byte,value", [(4, 0x00), (5, 0x01)], ids=["version-0", "as-record"])
def test_4_1_20_seal_entry_format_downgrade_is_malformed(st: Store, byte: int, value: int) -> None:
    seg = segment(st, 1)
    raw = bytearray((seg / "seal.entry").read_bytes())
    raw[byte] = value
    (seg / "seal.entry").write_bytes(bytes(raw))
    doc = expect(st.root, "MALFORMED", check="3")
    expected = "not an acdkit v1 entry" if byte == 4 else "entry type 1 is not SEAL"
    assert message(doc) == f"segment {seg.name}: {expected}"


def _checkpoint_variants(note: bytes) -> dict[str, bytes]:
    text, _, sig = note.partition(b"\n\n")
    origin, size, root = text.split(b"\n")
    line = sig.rstrip(b"\n")
    return {
        "crlf": note.replace(b"\n", b"\r\n"),
        "control-char": note.replace(b"\n" + size, b"\n\x01" + size, 1),
        "plus-sign": b"\n".join([origin, b"+" + size, root]) + b"\n\n" + sig,
        "leading-zero": b"\n".join([origin, b"0" + size, root]) + b"\n\n" + sig,
        "101-signatures": text + b"\n\n" + (line + b"\n") * 101,
        "bad-padding": b"\n".join([origin, size, root.rstrip(b"=")]) + b"\n\n" + sig,
        "truncated": note[: len(note) // 2],
        "size-2^64-1": b"\n".join([origin, b"18446744073709551615", root]) + b"\n\n" + sig,
        "100-MB": note + b"x" * (100 << 20),
    }


@pytest.mark.parametrize("variant", list(_checkpoint_variants(b"o\n1\nr\n\n- s\n")))
def test_4_1_21_malformed_checkpoint_is_malformed(st: Store, variant: str) -> None:
    path = st.checkpoint_path(SIZES[1])
    path.write_bytes(_checkpoint_variants(path.read_bytes())[variant])
    doc = expect(st.root, "MALFORMED", check="2")
    assert path.name in message(doc)


# -- §4.1-16: custody entries, in a store and in a bundle ---------------------------------------


@dataclass(frozen=True)
class Custodied:
    """The template store after a bundle's export and hand-over were logged and sealed (the
    custody entries at 613 and 614, checkpoint 616), and a second bundle that carries them."""

    store: Store
    signer: keys.Signer
    custodian: keys.Signer
    bundle: Path


@pytest.fixture(scope="module")
def custodied(
    template: tuple[Store, keys.Signer, Path], tmp_path_factory: pytest.TempPathFactory
) -> Custodied:
    base = tmp_path_factory.mktemp("custodied")
    store, signer = copy_store(template[0], base / "store"), template[1]
    custodian = keys.generate("alice@example.org")
    custodians.register(store, custodian.verifier)
    first = base / "first"
    bundle.package(store, signer, "INC-1", WINDOW, first, custodian=custodian, recipient="NCO")
    digest = hashlib.sha256((first / bundle.MANIFEST).read_bytes()).digest()
    root = Checkpoint.from_text(SignedNote.parse(st_checkpoint(store, SIZES[-1])).text).root
    handed = Custody(
        "hand-over", time.time_ns(), 0, "alice@example.org", SIZES[-1], root, digest, "INC-1",
        sender="alice@example.org", recipient="NCO desk, room 4",
    )  # fmt: skip
    custodychain.record(store, custodian, handed)
    seal.seal(store, signer)
    bundle.package(store, signer, "INC-1", WINDOW, base / "second")
    return Custodied(store, signer, custodian, base / "second")


def st_checkpoint(store: Store, size: int) -> bytes:
    return store.checkpoint_path(size).read_bytes()


CUSTODY_FIELDS = {"handler": 6, "time": 3, "destination": 8}


def edit_custody(data: bytes, part: str) -> bytes:
    """The entry with its handler renamed, its time set an hour back, or its recipient
    changed: the bytes well formed, the signature left as it was."""
    out = []
    for fid, kind, value in parse_tlv(data[38:]):
        if fid == CUSTODY_FIELDS[part]:
            if part == "time":
                value = (int.from_bytes(value, "big", signed=True) - 3600 * 10**9).to_bytes(
                    8, "big", signed=True
                )
            else:
                value = b"mallory@example.org" if part == "handler" else b"a courier nobody knows"
        out.append(tlv(fid, TlvType(kind), value))
    return data[:38] + b"".join(out)


@pytest.mark.parametrize("part", list(CUSTODY_FIELDS))
@pytest.mark.parametrize("how", ["leaf", "resigned"])
def test_4_1_16_custody_entry_edited_is_tampered(
    custodied: Custodied, tmp_path: Path, part: str, how: str
) -> None:
    st = copy_store(custodied.store, tmp_path / "store")
    pinned = ("--custodian", custodied.custodian.verifier.vkey())
    expect(st.root, "VERIFIED", *pinned)
    seg = segment(st, 3)
    entries = logentries.read_segment_entries(seg, 2)
    assert [e[5] for e in entries] == [0x07, 0x07]  # the export, then the hand-over
    entries[1] = edit_custody(entries[1], part)
    (seg / "entries.bin").write_bytes(logentries.pack(entries))
    if how == "leaf":  # the leaf no longer hashes into the signed root
        doc = expect(st.root, "TAMPERED", *pinned, check="4", checkpoint_size=616)
        assert message(doc) == "tree root at size 616 does not match its checkpoint"
        return
    # the sealer key's holder signs the edited tree: the custodian's signature still fails
    infos = [SealInfo.from_entry((d / "seal.entry").read_bytes()) for d in st.segment_dirs()]
    leaves = [
        h for d, i in zip(st.segment_dirs(), infos, strict=True) for h in segment_leaves(d, i)
    ]
    cp = Checkpoint(st.origin, 616, TreeLevels(leaves).root())
    st.checkpoint_path(616).write_bytes(sign_note(cp.text(), custodied.signer).encode())
    doc = expect(st.root, "TAMPERED", *pinned, check="13")
    key = custodied.custodian.verifier.key_id.hex()
    assert message(doc) == (
        f"CUSTODY at index 614: the signature does not verify with the custodian key {key} "
        "it names (an edited entry)"
    )


@pytest.mark.parametrize("part", list(CUSTODY_FIELDS))
@pytest.mark.parametrize("how", ["leaf", "resigned"])
def test_4_1_16_custody_leaf_edited_in_a_bundle_is_tampered_for_both_verifiers(
    custodied: Custodied, tmp_path: Path, tool: Path, part: str, how: str
) -> None:
    bdl = tmp_path / "bundle"
    shutil.copytree(custodied.bundle, bdl)
    vkey = custodied.store.verifier().vkey()
    pinned = ("--key", vkey, "--custodian", custodied.custodian.verifier.vkey())
    good = (run_acdkit(bdl, *pinned), run_independent(tool, bdl, *pinned))
    assert [o.verdict for o in good] == ["VERIFIED", "VERIFIED"], good
    path = bdl / "custody" / f"{614:020d}.tlog-proof"
    proof = TlogProof.parse(path.read_bytes())
    assert proof.extra is not None
    edited = edit_custody(proof.extra, part)
    if how == "leaf":  # the proof no longer leads to the root; the manifest signed again
        path.write_bytes(TlogProof(614, proof.hashes, proof.checkpoint, edited).encode())
        resign_manifest(bdl, custodied.signer)
        expected = "inclusion proof of index 614 does not lead to the checkpoint root"
        theirs_expected = "the audit path of index 614 misses the root"
    else:  # a whole new tree signed by the sealer key: only the custodian's signature fails
        reprove_bundle(bdl, {614: edited}, custodied.signer)
        expected = "signature does not verify with the custodian key"
        theirs_expected = "the custodian's signature does not verify"
    mine, theirs = run_acdkit(bdl, *pinned), run_independent(tool, bdl, *pinned)
    assert (mine.verdict, mine.code, theirs.verdict, theirs.code) == ("TAMPERED", 1) * 2
    assert expected in mine.message and theirs_expected in theirs.message, (mine, theirs)
    assert "custody/00000000000000000614.tlog-proof" in mine.message + theirs.message


@pytest.fixture(scope="module")
def tool(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The independent verifier as a lone file outside the repository."""
    path = tmp_path_factory.mktemp("tool") / "acdkit_verify.py"
    path.write_bytes(bundle.independent_verifier())
    return path


# -- §4.1 must be detected: a bundle -----------------------------------------------------------


def _proof(bdl: Path, n: int = 3) -> Path:
    return sorted((bdl / "proofs").iterdir())[n]


def _mangle(proof: TlogProof, how: str, other: TlogProof) -> tuple[bytes, int]:
    """The proof file's new bytes and the index its name should carry."""
    hashes, index, cp = list(proof.hashes), proof.index, proof.checkpoint
    if how == "sibling-flipped":
        hashes[0] = bytes([hashes[0][0] ^ 1]) + hashes[0][1:]
    elif how == "component-added":
        hashes.append(hashes[-1])
    elif how == "component-removed":
        hashes.pop()
    elif how == "wrong-leaf":
        return TlogProof(index, tuple(hashes), cp, other.extra).encode(), index
    elif how in ("index+1", "index-1"):
        index += 1 if how == "index+1" else -1
    elif how in ("size*2", "size/2"):
        c = Checkpoint.from_text(SignedNote.parse(cp).text)
        size = c.size * 2 if how == "size*2" else c.size // 2
        cp = cp.replace(f"\n{c.size}\n".encode(), f"\n{size}\n".encode(), 1)
    elif how == "root-swapped":
        c = Checkpoint.from_text(SignedNote.parse(cp).text)
        fake = base64.b64encode(bytes(32)).decode()
        cp = cp.replace(base64.b64encode(c.root), fake.encode())
    data = TlogProof(index, tuple(hashes), cp, proof.extra).encode()
    if how == "garbage-before":
        data = b"junk\n" + data
    if how == "garbage-after":
        data += b"junk\n"
    return data, index


MANGLES = {
    "sibling-flipped": ("TAMPERED", "does not lead to the checkpoint root"),
    "component-added": ("TAMPERED", "does not lead to the checkpoint root"),
    "component-removed": ("TAMPERED", "does not lead to the checkpoint root"),
    "garbage-before": ("MALFORMED", "proof does not start with c2sp.org/tlog-proof@v1"),
    "garbage-after": ("TAMPERED", "rests on another checkpoint than the bundle's"),
    "wrong-leaf": ("TAMPERED", "does not lead to the checkpoint root"),
    "index+1": ("TAMPERED", "does not lead to the checkpoint root"),
    "index-1": ("TAMPERED", "does not lead to the checkpoint root"),
    "size*2": ("TAMPERED", "rests on another checkpoint than the bundle's"),
    "size/2": ("TAMPERED", "rests on another checkpoint than the bundle's"),
    "root-swapped": ("TAMPERED", "rests on another checkpoint than the bundle's"),
}


@pytest.mark.parametrize("how", list(MANGLES))
def test_4_1_12_mangled_inclusion_proof_is_caught(
    bdl: Path, st: Store, signer: keys.Signer, how: str
) -> None:
    # the manifest re-signed over the mangled proof: the proof must fail by itself
    path = _proof(bdl)
    proof = TlogProof.parse(path.read_bytes())
    data, index = _mangle(proof, how, TlogProof.parse(_proof(bdl, 4).read_bytes()))
    path.unlink()
    new = path.with_name(f"{index:020d}.tlog-proof")
    new.write_bytes(data)  # index±1: under the name of that index (a neighbour's, maybe)
    resign_manifest(bdl, signer)
    verdict, text = MANGLES[how]
    doc = expect(bdl, verdict, "--key", st.verifier().vkey(), check="5")
    rel = new.relative_to(bdl).as_posix() if how != "garbage-before" else ""
    assert rel in message(doc) and text in message(doc)


@pytest.mark.parametrize("damage", ["edited", "missing", "unlisted"])
def test_4_1_17_bundle_file_against_its_signed_manifest(bdl: Path, st: Store, damage: str) -> None:
    md = bdl / "summary/summary.md"
    if damage == "edited":
        md.write_text(md.read_text().replace("INC-1", "INC-2"))
    elif damage == "missing":
        md.unlink()
    else:
        (bdl / "summary/notes.txt").write_text("added later")
    verdict = "POLICY" if damage == "unlisted" else "TAMPERED"
    doc = expect(bdl, verdict, "--key", st.verifier().vkey(), check="2")
    expected = {
        "edited": "summary/summary.md does not match its SHA-256 in the signed manifest",
        "missing": "summary/summary.md is listed in the manifest but missing",
        "unlisted": "summary/notes.txt is in the bundle but not in the signed manifest",
    }
    assert message(doc) == expected[damage]


def test_4_1_10_bundle_signed_by_another_key_than_the_pinned_one_is_tampered(bdl: Path) -> None:
    other = keys.generate("acdkit/someone/else")
    doc = expect(bdl, "TAMPERED", "--key", other.verifier.vkey(), check="3")
    assert message(doc).startswith(
        f"the pinned key {other.verifier.key_id.hex()} is not a sealer key of this log"
    )


def test_4_1_19_disclosed_salt_changed_is_tampered(
    bdl: Path, st: Store, signer: keys.Signer
) -> None:
    path = _proof(bdl)
    proof = TlogProof.parse(path.read_bytes())
    assert proof.extra is not None
    extra = proof.extra[:6] + bytes([proof.extra[6] ^ 1]) + proof.extra[7:]  # salt byte 0
    path.write_bytes(TlogProof(proof.index, proof.hashes, proof.checkpoint, extra).encode())
    resign_manifest(bdl, signer)
    doc = expect(bdl, "TAMPERED", "--key", st.verifier().vkey(), check="5")
    assert message(doc).startswith(f"proofs/{proof.index:020d}.tlog-proof: inclusion proof")


@pytest.mark.parametrize("claim", ["bundle-format-0", "sha1-digest", "entry-version-0"])
def test_4_1_20_format_or_hash_downgrade_in_a_bundle_is_malformed(
    bdl: Path, st: Store, signer: keys.Signer, claim: str
) -> None:
    manifest = bdl / bundle.MANIFEST
    text = manifest.read_text().split("\n\n")[0] + "\n"
    if claim == "bundle-format-0":
        text = text.replace("acdkit-bundle/1", "acdkit-bundle/0", 1)
    elif claim == "sha1-digest":
        line = next(x for x in text.split("\n") if x.endswith(" VERIFY.txt"))
        digest = __import__("hashlib").sha1((bdl / "VERIFY.txt").read_bytes()).hexdigest()
        text = text.replace(line, f"file {digest} {line.split(' ')[2]} VERIFY.txt")
    if claim != "entry-version-0":
        manifest.write_bytes(sign_note(text, signer).encode())
        expected = (
            "manifest does not start with acdkit-bundle/1"
            if claim == "bundle-format-0"
            else "bad manifest line 'file "
        )
        doc = expect(bdl, "MALFORMED", "--key", st.verifier().vkey(), check="1")
        assert message(doc).startswith(expected)
        return
    path = _proof(bdl)
    proof = TlogProof.parse(path.read_bytes())
    assert proof.extra is not None
    extra = proof.extra[:4] + b"\x00" + proof.extra[5:]
    path.write_bytes(TlogProof(proof.index, proof.hashes, proof.checkpoint, extra).encode())
    resign_manifest(bdl, signer)
    doc = expect(bdl, "MALFORMED", "--key", st.verifier().vkey(), check="5")
    assert message(doc) == f"proofs/{proof.index:020d}.tlog-proof carries no acdkit entry"


@pytest.mark.parametrize(
    "path", ["../../etc/passwd", "/etc/passwd", "duplicate", "symlink", "fifo"]
)
def test_4_1_22_unsafe_bundle_paths_are_malformed(
    bdl: Path, st: Store, signer: keys.Signer, path: str
) -> None:
    manifest = bdl / bundle.MANIFEST
    text = manifest.read_text().split("\n\n")[0] + "\n"
    if path == "symlink":
        os.symlink("/etc/hostname", bdl / "summary/link")
        expected = "bundle contains a symbolic link: summary/link"
    elif path == "fifo":
        os.mkfifo(bdl / "summary/pipe")
        expected = "bundle contains a special file: summary/pipe"
    else:
        if path == "duplicate":
            line = next(x for x in text.split("\n") if x.endswith(" VERIFY.txt"))
            text += line + "\n"
            expected = "manifest lists 'VERIFY.txt' twice, out of order or itself"
        else:
            text += "file " + "0" * 64 + f" 1 {path}\n"
            expected = f"unsafe path in manifest: {path!r}"
        manifest.write_bytes(sign_note(text, signer).encode())
    doc = expect(bdl, "MALFORMED", "--key", st.verifier().vkey(), check="1")
    assert message(doc) == expected


# -- §4.2 must not be flagged ------------------------------------------------------------------


def test_4_2_01_log_still_being_written_is_incomplete_not_tampered(st: Store) -> None:
    ingest.ingest(st, [DATA / "zeek-tsv/zat/http.log"])
    doc = expect(st.root, "INCOMPLETE", check="5")
    assert message(doc) == "150 records ingested but not sealed yet"
    relaxed = expect(st.root, "VERIFIED", "--allow-incomplete")
    assert relaxed["coverage"].startswith("leaves 0-612 verified against checkpoint 613 (root ")
    assert (
        f"signed by sealer key {st.verifier().key_id.hex()}; 150 records unsealed"
        in (relaxed["coverage"])
    )


def test_4_2_01_seal_still_running_is_incomplete_not_tampered(
    st: Store, signer: keys.Signer
) -> None:
    # the moment between a segment's rename and its checkpoint: inputs still staged
    ingest.ingest(st, [DATA / "zeek-tsv/zat/ssl.log"])
    staged = st.staged_dirs()[0]
    keep, state = st.root.parent / "staged", st.state_path.read_bytes()
    shutil.copytree(staged, keep)
    seal.seal(st, signer)
    st.checkpoint_files()[-1].unlink()
    st.state_path.write_bytes(state)
    shutil.copytree(keep, staged)
    # and, as at that moment, no ledger entry yet: seal writes it after the checkpoint
    (st.ledger_dir / f"{ingest.staged_ledger_id(staged)}.json").unlink()
    doc = expect(st.root, "INCOMPLETE", check="5")
    assert "the newest segment has no checkpoint yet (seal interrupted or running)" in message(doc)


def test_4_2_02_clock_steps_are_not_tampering(template: tuple[Store, keys.Signer, Path]) -> None:
    # segment 2 (2019) follows segment 1 (2020): event times run backwards across segments
    doc = expect(template[0].root, "VERIFIED")
    assert doc["coverage"].startswith("leaves 0-612 verified against checkpoint 613")


def test_4_2_02_records_out_of_time_order_in_a_file_are_not_tampering(tmp_path: Path) -> None:
    lines = (DATA / "zeek-json/zat/conn.log").read_text().splitlines(keepends=True)
    shuffled = tmp_path / "conn.log"
    shuffled.write_text("".join(lines[::-1]))  # newest first, as after a clock step back
    store, _ = build_store(tmp_path / "store", tmp_path / "k" / "sealer.key", ())
    ingest.ingest(store, [shuffled])
    seal.seal(store, keys.load_signer(tmp_path / "k" / "sealer.key"))
    doc = expect(store.root, "VERIFIED")
    assert doc["coverage"].startswith("leaves 0-50 verified against checkpoint 51")


def test_4_2_05_empty_period_sealed_is_verified(st: Store, signer: keys.Signer) -> None:
    # a log rotated before anything was written: a segment of no records, its SEAL only
    ingest.ingest(st, [DATA / "zeek-tsv/zat/http_empty.log"])
    report = seal.seal(st, signer)
    assert [s["records"] for s in report.segments] == [0]
    doc = expect(st.root, "VERIFIED")
    assert doc["coverage"].startswith("leaves 0-613 verified against checkpoint 614")


def _cosigned(note: bytes) -> bytes:
    witness = keys.generate("witness.example/w1")
    sig = base64.b64encode(witness.verifier.key_id + witness.sign(b"anything")).decode()
    return note + f"— witness.example/w1 {sig}\n".encode()


def test_4_2_06_unknown_extra_signature_on_the_newest_checkpoint_is_ignored(st: Store) -> None:
    path = st.checkpoint_path(SIZES[-1])
    path.write_bytes(_cosigned(path.read_bytes()))
    expect(st.root, "VERIFIED")


def test_4_2_06_unknown_extra_signature_on_a_bundle_is_ignored(bdl: Path, st: Store) -> None:
    manifest = bdl / bundle.MANIFEST
    manifest.write_bytes(_cosigned(manifest.read_bytes()))
    expect(bdl, "VERIFIED", "--key", st.verifier().vkey())


# -- 4.1.23 and 4.2.8: WORM copies on S3 (a real S3 server on loopback, tests/s3server.py) --


@dataclass
class Pushed:
    store: Store
    bucket: str
    custodian: keys.Signer


@pytest.fixture
def pushed(st: Store, signer: keys.Signer, moto_s3: Any, aws: dict[str, str]) -> Pushed:
    """The store uploaded under governance locks, its receipts sealed."""
    from acdkit import worm
    from acdkit.s3client import S3Settings

    custodian = keys.generate("alice@example.org")
    custodians.register(st, custodian.verifier)
    bucket = moto_s3.bucket()
    target = worm.Target.of(bucket, None, st)
    lock = worm.Lock("GOVERNANCE", 2)
    worm.push(st, target, lock, custodian, "alice", S3Settings(moto_s3.url))
    seal.seal(st, signer)
    return Pushed(st, bucket, custodian)


def _pinned_checkpoint(pushed: Pushed) -> Any:
    from acdkit import worm

    return next(p for _i, p, _b in worm.pinned(pushed.store) if p.key.endswith(".checkpoint"))


def _worm(pushed: Pushed, url: str) -> tuple[str, ...]:
    return ("--worm", "--endpoint", url, "--custodian", pushed.custodian.verifier.vkey())


def test_4_1_23_pinned_s3_version_gone_is_tampered(pushed: Pushed, moto_s3: Any) -> None:
    pin = _pinned_checkpoint(pushed)
    s3 = moto_s3.client()
    expect(pushed.store.root, "VERIFIED", *_worm(pushed, moto_s3.url))
    # overwritten by a new version, and the pinned one deleted by someone allowed to bypass
    # the governance lock
    s3.put_object(Bucket=pushed.bucket, Key=pin.key, Body=b"forged checkpoint")
    s3.delete_object(
        Bucket=pushed.bucket, Key=pin.key, VersionId=pin.version_id, BypassGovernanceRetention=True
    )
    doc = expect(pushed.store.root, "TAMPERED", *_worm(pushed, moto_s3.url), check="14")
    assert f"s3://{pushed.bucket}/{pin.key} version {pin.version_id}" in message(doc)
    assert "is gone (NoSuchVersion): a pinned version was deleted" in message(doc)


def test_4_1_23_newer_s3_version_with_the_pinned_one_kept_is_a_warning(
    pushed: Pushed, moto_s3: Any
) -> None:
    pin = _pinned_checkpoint(pushed)
    newer = moto_s3.client().put_object(Bucket=pushed.bucket, Key=pin.key, Body=b"overwritten")
    doc = expect(pushed.store.root, "VERIFIED", *_worm(pushed, moto_s3.url))
    assert (
        f"s3://{pushed.bucket}/{pin.key}: newer version exists (version {newer['VersionId']}), "
        "pinned version verified"
    ) in doc["warnings"]
    assert doc["facts"]["worm"]["newer"] == [pin.key]
    assert "pinned S3 object versions verified online" in doc["coverage"]


def test_4_2_08_s3_unreachable_during_the_online_check_is_incomplete(pushed: Pushed) -> None:
    from s3server import closed_port

    doc = expect(
        pushed.store.root, "INCOMPLETE", *_worm(pushed, closed_port()), "--s3-timeout", "1",
        check="14",
    )  # fmt: skip
    assert "could not be reached" in message(doc) and "TAMPERED" not in json.dumps(doc)


# -- §4.2 case 7: declared retention pruning, and what must stay TAMPERED ----------------------

ROOT = keys.Signer("tamper-test/root", Ed25519PrivateKey.from_private_bytes(bytes(range(96, 128))))
PINNED = ("--root", ROOT.verifier.vkey())


def _policy(store: Store, bound: int | None, root: keys.Signer = ROOT, serial: int = 0) -> bytes:
    """A root-signed trust policy of the store's keys: the next serial unless given."""
    number = serial or len(policy.policy_files(store)) + 1
    windows = [policy.SealerWindow(k) for k in read_chain(store).keys]
    text = policy.Policy(
        store.origin, number, 1_790_812_800 * policy.NS, windows, prune_below=bound
    )
    return sign_note(text.text(), root).encode()


def _declare(store: Store, bound: int | None) -> None:
    policy.write_policy(
        store, policy.Policy.from_text(SignedNote.parse(_policy(store, bound)).text), ROOT
    )


def _prune_by_hand(seg: Path) -> None:
    """What `acdkit prune` does to a segment, done without it (no PRUNE entry, no check)."""
    info = SealInfo.from_entry((seg / "seal.entry").read_bytes())
    leaves = segment_leaves(seg, info)[: info.record_count]
    nodes = range_subtrees(info.first_index, b"".join(leaves))
    (seg / PRUNED_FILE).write_bytes(b"".join(n for _h, n in nodes))
    for name in ("net.parquet", "dns.parquet", "edr.parquet", "segment.key"):
        (seg / name).unlink(missing_ok=True)


@pytest.fixture(scope="module")
def pruned_template(
    template: tuple[Store, keys.Signer, Path], tmp_path_factory: pytest.TempPathFactory
) -> Store:
    """The three-segment store, trust policy 1 (no pruning) and 2 (prune below 415), and
    `acdkit prune`: segment 0's 414 records gone, a PRUNE entry naming policy 2 at 613."""
    store = copy_store(template[0], tmp_path_factory.mktemp("pruned") / "store")
    _declare(store, None)
    _declare(store, 415)
    prune.prune(store, template[1])
    assert [p.name for p in store.segment_dirs() if (p / PRUNED_FILE).exists()] == [
        "00000000000000000000-00000000000000000415"
    ]
    return store


@pytest.fixture
def pst(pruned_template: Store, tmp_path: Path) -> Store:
    return copy_store(pruned_template, tmp_path / "pruned")


def expect_both(
    tool: Path, store: Store, verdict: str, *extra: str, check: str | None = None
) -> tuple[dict[str, Any], str]:
    """Both verifiers on a store: the same verdict and exit code; acdkit's JSON report and
    the independent verifier's failure message."""
    doc = expect(store.root, verdict, *extra, check=check)
    theirs = run_independent(tool, store.root, "--local-only", *extra)
    assert (theirs.verdict, theirs.code) == (verdict, doc["exit_code"]), theirs
    return doc, theirs.message


def test_4_2_07_pruned_as_declared_is_verified_pruned_below_n_per_policy_p(
    pst: Store, tool: Path
) -> None:
    doc, _ = expect_both(tool, pst, "VERIFIED", *PINNED)
    digest = hashlib.sha256(policy.policy_files(pst)[1].read_bytes()).hexdigest()
    said = f"pruned below 415 per policy 2 (sha256 {digest[:16]}…): 414 records of 1 segments"
    assert said in doc["coverage"]
    assert doc["facts"]["pruning"]["policy_sha256"] == digest
    theirs = run_independent(tool, pst.root, "--local-only", *PINNED)
    assert said in theirs.coverage
    # the root unpinned: the declaration is the store's own word
    unpinned, message_ = expect_both(tool, pst, "INCOMPLETE", check="15")
    assert "whose root is not pinned" in message(unpinned) and "not pinned" in message_


def test_4_2_07_records_removed_without_a_declaration_are_tampered(st: Store, tool: Path) -> None:
    _prune_by_hand(segment(st, 0))  # the kept hashes are right: every root still holds
    doc, theirs = expect_both(tool, st, "TAMPERED", check="15")
    assert "no sealed PRUNE entry declares it" in message(doc)
    assert "without a sealed PRUNE entry" in theirs
    _declare(st, 415)  # a declaration alone is not enough: `prune` logs that it acts on it
    doc, _ = expect_both(tool, st, "TAMPERED", *PINNED, check="15")
    assert "no sealed PRUNE entry declares it (none at all)" in message(doc)


def test_4_2_07_the_oldest_segment_deleted_even_under_a_declaration_is_tampered(
    pst: Store, tool: Path
) -> None:
    shutil.rmtree(segment(pst, 0))  # pruning keeps the segment's hashes, entries and SEAL
    doc, _ = expect_both(tool, pst, "TAMPERED", *PINNED, check="3")
    assert "expected index 0 as number 0 (a segment is missing" in message(doc)


def test_4_2_07_more_pruned_than_declared_is_tampered(pst: Store, tool: Path) -> None:
    _prune_by_hand(segment(pst, 1))  # ends at 512; policy 2 allows 415
    doc, theirs = expect_both(tool, pst, "TAMPERED", *PINNED, check="15")
    assert "below index 512 were removed and no sealed PRUNE entry declares it (the largest" in (
        message(doc)
    )
    assert "512" in theirs


@pytest.mark.parametrize("gap", ["segment-deleted", "records-deleted"])
def test_4_2_07_a_gap_above_the_bound_is_tampered(pst: Store, tool: Path, gap: str) -> None:
    seg = segment(pst, 1)
    if gap == "segment-deleted":
        shutil.rmtree(seg)
        doc, _ = expect_both(tool, pst, "TAMPERED", *PINNED, check="3")
        assert "a segment is missing or was inserted" in message(doc)
    else:
        (seg / "net.parquet").unlink()
        doc, _ = expect_both(tool, pst, "TAMPERED", *PINNED, check="4")
        assert message(doc) == f"segment {seg.name}: net.parquet is missing"


@pytest.mark.parametrize("damage", ["bit-flipped", "truncated", "extended", "forged"])
def test_4_2_07_a_forged_or_altered_kept_range_is_tampered(
    pst: Store, tool: Path, damage: str, template: tuple[Store, keys.Signer, Path]
) -> None:
    path = segment(pst, 0) / PRUNED_FILE
    data = path.read_bytes()
    if damage == "bit-flipped":
        path.write_bytes(bytes([data[0] ^ 1]) + data[1:])
    elif damage == "truncated":
        path.write_bytes(data[:-32])
    elif damage == "extended":
        path.write_bytes(data + data[-32:])
    else:
        # the hashes of a forged history: the first record changed, the range recomputed
        original = segment(template[0], 0)
        leaves = segment_leaves(
            original, SealInfo.from_entry((original / "seal.entry").read_bytes())
        )
        forged = range_subtrees(0, bytes(32) + b"".join(leaves[1:414]))
        assert len(forged) == len(data) // 32
        path.write_bytes(b"".join(n for _h, n in forged))
    doc, _ = expect_both(tool, pst, "TAMPERED", *PINNED, check="4")
    if damage in ("truncated", "extended"):
        assert "the 414 pruned records of its SEAL need 6 hashes of 32" in message(doc)
    else:
        assert message(doc) == "tree root at size 415 does not match its checkpoint"


def test_4_2_07_a_declaration_not_signed_by_the_pinned_root_is_tampered(
    pst: Store, tool: Path
) -> None:
    other = keys.Signer("tamper-test/root", Ed25519PrivateKey.from_private_bytes(bytes(32)))
    for path in policy.policy_files(pst):
        text = SignedNote.parse(path.read_bytes()).text
        path.write_bytes(sign_note(text, other).encode())
    (pst.root / "keys/root.vkey").write_text(other.verifier.vkey() + "\n")
    doc, _ = expect_both(tool, pst, "TAMPERED", *PINNED, check="7")
    assert "is not signed by root key" in message(doc)
    # unpinned, the store's own (replaced) root vouches for it, but the PRUNE entry names
    # the policy by its SHA-256
    doc, _ = expect_both(tool, pst, "TAMPERED", check="15")
    assert "names trust policy 2 with SHA-256" in message(doc)


@pytest.mark.parametrize("rollback", ["newest-deleted", "replaced", "withdrawn"])
def test_4_2_07_a_rolled_back_declaration_is_tampered(
    pst: Store, tool: Path, rollback: str
) -> None:
    files = policy.policy_files(pst)
    if rollback == "newest-deleted":  # back to policy 1, which allows no pruning
        files[1].unlink()
        expected = "names trust policy 2, which the store does not hold"
    elif rollback == "replaced":  # a policy 2 the root did sign, but not the one logged
        files[1].write_bytes(_policy(pst, None, serial=2))
        expected = "names trust policy 2 with SHA-256"
    else:  # a newer policy that declares no pruning, while records are gone
        _declare(pst, None)
        expected = "records are pruned below 415, but the newest trust policy declares no"
    doc, _ = expect_both(tool, pst, "TAMPERED", *PINNED, check="15")
    assert expected in message(doc)
