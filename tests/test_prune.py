"""Declared retention pruning (format §17, EVIDENCE §4.2 case 7), through the real CLI.

A store sealed from real sample logs gets a root-signed trust policy with ``prune-below``;
`acdkit prune` logs a PRUNE entry and removes the records of the segments below the bound;
both verifiers must then say "pruned below N per policy P" and VERIFIED (with the root
pinned).  The cases that must stay TAMPERED are in tests/test_tamper_cases.py (4.2.7); the
format's parsers are fuzzed here, the tree over pruned pieces is compared with the full tree,
and `acdkit prune` is killed at random moments.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from _evidence import DATA, build_store, copy_store
from acdkit import (
    bundle,
    custodians,
    ingest,
    keys,
    logentries,
    policy,
    prune,
    seal,
    verify,
    witness,
)
from acdkit.cli import app
from acdkit.encoding import EntryType, TlvType, entry, parse_tlv, tlv
from acdkit.errors import ExitCode, MalformedError, TamperedError
from acdkit.keychain import read_chain
from acdkit.merkle import (
    TreeLevels,
    consistency_proof,
    leaf_hash,
    range_subtrees,
    verify_consistency,
)
from acdkit.note import Checkpoint, SignedNote
from acdkit.policy import SealerWindow
from acdkit.prunedtree import PRUNED_FILE, PartialTree, range_heights, read_pruned
from acdkit.sealinfo import SealInfo
from acdkit.store import Store
from test_anchor import ca_a, ca_b, pki, tsa_a, tsa_b  # noqa: F401 (fixtures)
from test_independent_verifier import load_tool, run_acdkit, run_independent

REPO = Path(__file__).resolve().parents[1]
VECTORS = json.loads((REPO / "docs/prune-vectors.json").read_text(encoding="utf-8"))
ROOT = keys.Signer("prune-test/root", Ed25519PrivateKey.from_private_bytes(bytes(range(64, 96))))
SEGMENTS = (
    ("zeek-tsv/zat/conn.log", "zeek-tsv/zat/dns.log"),  # 414 records: leaves 0-414
    tuple(f"zeek-json/otrf-apt29/{n}" for n in sorted(os.listdir(DATA / "zeek-json/otrf-apt29"))),
    ("zeek-json/zat/ssl.log", "zeek-json/zat/dns.log"),
)
SIZES = (415, 512, 613)
iv = load_tool()
FUZZ = settings(
    max_examples=int(os.environ.get("ACDKIT_FUZZ_EXAMPLES", "300")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


def declare(store: Store, bound: int | None, root: keys.Signer = ROOT, tsas: Any = ()) -> Path:
    """The next trust policy: every key of the chain, the registered custodians, the TSA
    roots given, with ``prune-below bound``."""
    windows = [SealerWindow(k) for k in read_chain(store).keys]
    serial = len(policy.policy_files(store)) + 1
    issued = time.time_ns() // policy.NS * policy.NS
    trusted = [SealerWindow(k) for k in custodians.registered(store) or []]
    new = policy.Policy(
        store.origin,
        serial,
        issued,
        windows,
        tsas=list(tsas),
        custodians=trusted,
        prune_below=bound,
    )
    return policy.write_policy(store, new, root)


def pruned_dirs(store: Store) -> list[str]:
    return [p.name for p in store.segment_dirs() if (p / PRUNED_FILE).exists()]


ORIGINAL: dict[int, list[bytes]] = {}  # the template's leaves by segment, before pruning


@dataclass(frozen=True)
class Built:
    store: Store
    signer: keys.Signer
    key: Path


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Built:
    """Three segments of real logs (sizes 415, 512, 613) and policy 1: prune below 512."""
    base = tmp_path_factory.mktemp("prune")
    store, signer = build_store(base / "store", base / "keys/sealer.key", SEGMENTS)
    declare(store, 512)
    for path in store.segment_dirs():
        info = SealInfo.from_entry((path / "seal.entry").read_bytes())
        ORIGINAL[info.first_index] = seal.segment_leaves(path, info)
    return Built(store, signer, base / "keys/sealer.key")


@pytest.fixture
def built(template: Built, tmp_path: Path) -> Built:
    return Built(copy_store(template.store, tmp_path / "store"), template.signer, template.key)


@pytest.fixture(scope="module")
def tool(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("tool") / "acdkit_verify.py"
    path.write_bytes(bundle.independent_verifier())
    return path


def cli(*args: str, code: int = 0) -> Any:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == code, (args, result.stdout, result.stderr)
    return json.loads(result.stdout) if "--json" in args else result


PINNED = ("--root", ROOT.verifier.vkey())  # every test store's policies are signed by ROOT


def both(tool: Path, store: Store, *args: str) -> tuple[Any, Any]:
    flags = ("--local-only", *args)
    return run_acdkit(store.root, *flags), run_independent(tool, store.root, *flags)


# -- the declaration ---------------------------------------------------------------------------


def test_a_policy_without_the_line_keeps_its_text_and_allows_no_pruning(built: Built) -> None:
    declare(built.store, None)
    note = (built.store.root / "policy/00000000000000000002.policy.note").read_bytes()
    text = SignedNote.parse(note).text
    assert "prune-below" not in text
    assert policy.Policy.from_text(text).prune_below is None
    assert policy.Policy.from_text(text).text() == text  # old policies re-encode unchanged
    assert iv.parse_policy(text).prune_below is None
    first = (built.store.root / "policy/00000000000000000001.policy.note").read_bytes()
    assert SignedNote.parse(first).text.endswith("grace 300\nprune-below 512\n")
    assert iv.parse_policy(SignedNote.parse(first).text).prune_below == 512


@pytest.mark.parametrize(
    "tail",
    [
        "prune-below 0\n",  # allows nothing: the line is left out instead
        "prune-below 0512\n",
        "prune-below +512\n",
        "prune-below -\n",
        "prune-below 512 \n",
        "prune-below 9223372036854775808\n",
        "prune-below 512\nprune-below 513\n",
        "prune-below\n",
    ],
)
def test_a_malformed_prune_below_line_is_malformed_for_both(built: Built, tail: str) -> None:
    note = (built.store.root / "policy/00000000000000000001.policy.note").read_bytes()
    text = SignedNote.parse(note).text.replace("prune-below 512\n", tail)
    with pytest.raises(MalformedError):
        policy.Policy.from_text(text)
    with pytest.raises(iv.Finding) as found:
        iv.parse_policy(text)
    assert found.value.code == iv.MALFORMED


def test_prune_below_before_grace_is_out_of_order(built: Built) -> None:
    note = (built.store.root / "policy/00000000000000000001.policy.note").read_bytes()
    text = SignedNote.parse(note).text.replace("grace 300\nprune-below 512\n", "")
    text += "prune-below 512\ngrace 300\n"
    with pytest.raises(MalformedError):
        policy.Policy.from_text(text)
    with pytest.raises(iv.Finding):
        iv.parse_policy(text)


def test_policy_sign_declares_pruning_and_never_below_what_is_pruned(
    built: Built, tmp_path: Path
) -> None:
    root_key = tmp_path / "root.key"
    keys.write_private_key(ROOT, root_key, "root")
    s = str(built.store.root)
    doc = cli("policy", "sign", s, "--root-key", str(root_key), "--prune-below", "415", "--json")
    assert doc["serial"] == 2 and doc["text"].endswith("prune-below 415\n")
    cli("prune", s, "--key", str(built.key))
    assert pruned_dirs(built.store) == ["00000000000000000000-00000000000000000415"]
    lower = cli("policy", "sign", s, "--root-key", str(root_key), "--prune-below", "414", code=2)
    assert "pruned below 415 already" in lower.stderr
    cli("policy", "sign", s, "--root-key", str(root_key), code=2)  # the line left out
    assert len(policy.policy_files(built.store)) == 2  # nothing written
    cli("policy", "sign", s, "--root-key", str(root_key), "--prune-below", "415")  # a legal hold
    # 2^63 was "prune-below '9223372036854775808' is not a canonical decimal"
    huge = cli("policy", "sign", s, "--root-key", str(root_key), "--prune-below", str(1 << 63),
               code=2)  # fmt: skip
    said = " ".join(huge.stderr.replace("│", " ").split())  # Rich's box wraps it
    assert "'--prune-below': Input should be less than or equal to 9223372036854775807" in said


# -- the PRUNE entry ---------------------------------------------------------------------------


def _edit(fid: int, value: bytes | None, kind: TlvType = TlvType.U64) -> bytes:
    fields = [f for f in parse_tlv(bytes.fromhex(VECTORS["prune"]["body"])) if f[0] != fid]
    if value is not None:
        fields.append((fid, kind, value))
    return b"".join(tlv(f, k, v) for f, k, v in sorted(fields, key=lambda f: f[0]))


BAD_BODIES = {
    "no-bound": _edit(1, None),
    "no-serial": _edit(2, None),
    "no-digest": _edit(3, None),
    "no-time": _edit(4, None),
    "bound-0": _edit(1, bytes(8)),
    "bound-2^63": _edit(1, (1 << 63).to_bytes(8, "big")),
    "serial-0": _edit(2, bytes(8)),
    "bound-4-bytes": _edit(1, bytes(4)),
    "digest-31-bytes": _edit(3, bytes(31), TlvType.BYTES),
    "digest-as-text": _edit(3, bytes(32), TlvType.UTF8),
    "time-as-u64": _edit(4, bytes(8), TlvType.U64),
    "unknown-field": _edit(5, b"x", TlvType.UTF8),
    "truncated": bytes.fromhex(VECTORS["prune"]["body"])[:-1],
    "padded": bytes.fromhex(VECTORS["prune"]["body"]) + b"\x00",
}


@pytest.mark.parametrize("name", sorted(BAD_BODIES))
def test_a_bad_prune_body_is_malformed_in_both_implementations(name: str) -> None:
    body = BAD_BODIES[name]
    with pytest.raises(MalformedError):
        prune.PruneEvent.parse(body)
    with pytest.raises(iv.Finding) as found:
        iv.decode_prune(body)
    assert found.value.code == iv.MALFORMED


def test_the_vector_file_is_what_the_code_makes() -> None:
    proc = subprocess.run(
        [sys.executable, str(REPO / "scripts/make_prune_vectors.py"), "--check"],
        check=False,
        cwd=REPO,
    )
    assert proc.returncode == 0, "run scripts/make_prune_vectors.py and commit the result"


def test_the_vectors_parse_and_recompute_in_both_implementations() -> None:
    v = VECTORS
    note = base64.b64decode(v["policy"]["note_base64"])
    assert hashlib.sha256(note).hexdigest() == v["policy"]["sha256"]
    text = SignedNote.parse(note).text
    assert policy.Policy.from_text(text).prune_below == v["policy"]["prune_below"] == 2
    root = keys.Verifier.parse(v["policy"]["root_vkey"])
    assert SignedNote.parse(note).verified_by(root)
    body = bytes.fromhex(v["prune"]["body"])
    event = prune.PruneEvent.parse(body)
    assert event.body() == body  # reading and writing again changes nothing
    assert (event.bound, event.policy_serial, event.policy_sha256.hex()) == (
        2,
        1,
        v["policy"]["sha256"],
    )
    assert iv.decode_prune(body)[:3] == (2, 1, bytes.fromhex(v["policy"]["sha256"]))
    data = entry(EntryType.PRUNE, body)
    assert data.hex() == v["prune"]["entry"]
    assert leaf_hash(data).hex() == v["prune"]["leaf_hash"]
    # §11's log of three leaves with its two records pruned: one hash of height 1 is kept,
    # and the root of checkpoint 3 recomputes from it and the SEAL leaf
    kept = bytes.fromhex(v["pruned_range"]["file"])
    assert range_heights(0, 2) == iv.cover(0, 2) == [1]
    seal_leaf = bytes.fromhex(v["pruned_range"]["seal_leaf_hash"])
    tree = PartialTree([(1, kept), (0, seal_leaf)])
    assert (
        tree.root().hex()
        == v["pruned_range"]["root"]
        == ("11c15d09c44341a0f8b8ddbb35e61ba6451fa60ae03317f79ed685d1d1a0c46c")
    )
    for first, count, heights in v["cover"]:
        assert range_heights(first, count) == iv.cover(first, count) == heights


# -- the tree over pruned pieces ----------------------------------------------------------------


@st.composite
def pruned_logs(draw: st.DrawFn) -> tuple[list[bytes], list[tuple[int, int]], list[int]]:
    """Leaves of a log of segments, the record ranges pruned, and the segment ends."""
    leaves: list[bytes] = []
    pruned, ends = [], []
    for _ in range(draw(st.integers(1, 6))):
        records = draw(st.integers(0, 40))
        entries = draw(st.integers(0, 3))
        first = len(leaves)
        leaves += [hashlib.sha256(f"{first + i}".encode()).digest() for i in range(records)]
        leaves += [hashlib.sha256(f"e{len(leaves) + i}".encode()).digest() for i in range(entries)]
        leaves.append(hashlib.sha256(f"seal{len(leaves)}".encode()).digest())
        if records and draw(st.booleans()):
            pruned.append((first, first + records))
        ends.append(len(leaves))
    return leaves, pruned, ends


@FUZZ
@given(pruned_logs())
def test_the_partial_tree_gives_the_full_trees_proofs(
    log: tuple[list[bytes], list[tuple[int, int]], list[int]],
) -> None:
    leaves, pruned, ends = log
    pieces: list[tuple[int, bytes]] = []
    at = 0
    for lo, hi in pruned:
        pieces += [(0, leaf) for leaf in leaves[at:lo]]
        pieces += range_subtrees(lo, b"".join(leaves[lo:hi]))
        at = hi
    pieces += [(0, leaf) for leaf in leaves[at:]]
    partial, full = PartialTree(pieces), TreeLevels(leaves)
    assert partial.root() == full.root()
    gone = {i for lo, hi in pruned for i in range(lo, hi)}
    for index in range(len(leaves)):
        if index not in gone:
            assert partial.proof(index) == full.proof(index), index
            continue
        try:  # a pruned leaf kept as a piece of its own still has its proof
            assert partial.proof(index) == full.proof(index), index
        except ValueError as exc:
            assert "pruning removed" in str(exc)
    for size in ends:
        assert partial.consistency(size) == consistency_proof(leaves, size), size


# -- fuzzing the new parsers -------------------------------------------------------------------


def _only(exc: type[BaseException], parse: Any) -> None:
    """The parser returns or raises ``exc``; any other exception escapes."""
    with contextlib.suppress(exc):
        parse()


@FUZZ
@given(st.binary(max_size=300))
def test_prune_bodies_of_any_bytes_parse_or_are_malformed(data: bytes) -> None:
    _only(MalformedError, lambda: prune.PruneEvent.parse(data))
    _only(iv.Finding, lambda: iv.decode_prune(data))


@FUZZ
@given(st.binary(max_size=200), st.integers(0, 100), st.integers(0, 300))
def test_pruned_range_files_of_any_bytes_read_or_are_tampered(
    tmp_path_factory: pytest.TempPathFactory, data: bytes, first: int, records: int
) -> None:
    seg = tmp_path_factory.mktemp("seg")
    (seg / PRUNED_FILE).write_bytes(data)
    info = SealInfo("o", 0, first, first + records + 1, records, bytes(32), 0, "t", bytes(4))
    try:
        pieces = read_pruned(seg, info)
    except TamperedError:
        assert len(data) != 32 * len(range_heights(first, records))
    else:
        assert [h for h, _n in pieces] == range_heights(first, records)
        assert b"".join(n for _h, n in pieces) == data


@FUZZ
@given(st.data())
def test_the_independent_parquet_reader_takes_any_damage_without_crashing(
    tmp_path_factory: pytest.TempPathFactory, template: Built, data: st.DataObject
) -> None:
    table = data.draw(st.sampled_from(["net", "dns"]))
    sample = bytearray((template.store.segment_dirs()[0] / f"{table}.parquet").read_bytes())
    footer = len(sample) - 8 - int.from_bytes(sample[-8:-4], "little")
    for _ in range(data.draw(st.integers(1, 4))):
        # mostly in the footer and the hash pages, where the reader looks
        anywhere = st.integers(0, len(sample) - 1)
        pos = data.draw(st.one_of(st.integers(footer, len(sample) - 1), anywhere))
        sample[pos] = data.draw(st.integers(0, 255))
    if data.draw(st.booleans()):
        cut = data.draw(st.integers(0, len(sample)))
        sample = sample[:cut] + sample[cut + data.draw(st.integers(0, 64)) :]
    path = tmp_path_factory.mktemp("pq") / "net.parquet"
    path.write_bytes(bytes(sample))
    try:
        hashes = iv.parquet_hashes(path, "net.parquet")
    except iv.Finding as exc:
        assert exc.code in (iv.MALFORMED, iv.INCOMPLETE)
    else:
        assert len(hashes) % 32 == 0


def test_the_independent_parquet_reader_reads_what_pyarrow_reads(template: Built) -> None:
    for seg in template.store.segment_dirs():
        for table in ("net", "dns", "edr"):
            path = seg / f"{table}.parquet"
            if path.is_file():
                col = pq.read_table(path, columns=["integrity_hash"]).column(0).to_pylist()
                assert iv.parquet_hashes(path, path.name) == b"".join(col)


def test_a_reencoded_hash_column_is_incomplete_for_the_independent_verifier(
    built: Built, tool: Path
) -> None:
    path = built.store.segment_dirs()[2] / "net.parquet"
    pq.write_table(pq.read_table(path), path, compression="zstd")  # the same records
    mine, theirs = both(tool, built.store)
    assert (mine.verdict, mine.code) == ("VERIFIED", 0)  # it reads any Parquet
    assert (theirs.verdict, theirs.code) == ("INCOMPLETE", 3)
    assert "compressed or dictionary-encoded" in theirs.message


# -- the command -------------------------------------------------------------------------------


def test_prune_removes_the_records_below_the_bound_and_both_verifiers_say_so(
    built: Built, tool: Path
) -> None:
    st_ = built.store
    before = {p.name: sorted(x.name for x in p.iterdir()) for p in st_.segment_dirs()}
    doc = cli("prune", str(st_.root), "--key", str(built.key), "--json")
    assert (doc["bound"], doc["declared"], doc["policy_serial"]) == (512, 512, 1)
    assert doc["logged_at_index"] == 613  # the PRUNE entry, sealed first, in a new segment
    assert doc["seal"]["tree_size"] == 615
    assert [s["segment"] for s in doc["segments"]] == [
        "00000000000000000000-00000000000000000415",
        "00000000000000000415-00000000000000000512",
    ]
    assert doc["records"] == 414 + 96
    for name in doc["segments"][0]["segment"], doc["segments"][1]["segment"]:
        left = sorted(x.name for x in (st_.segments / name).iterdir())
        gone = {"net.parquet", "dns.parquet", "edr.parquet", "segment.key"}
        assert left == sorted((set(before[name]) - gone) | {PRUNED_FILE})
    assert (
        sorted(x.name for x in st_.segment_dirs()[2].iterdir())
        == before[st_.segment_dirs()[2].name]
    )
    mine, theirs = both(tool, st_, *PINNED)
    for outcome in mine, theirs:
        assert (outcome.verdict, outcome.code) == ("VERIFIED", 0), outcome
        assert "pruned below 512 per policy 1 (sha256 " in outcome.coverage
        assert "510 records of 2 segments removed" in outcome.coverage
    text = CliRunner().invoke(app, ["verify", str(st_.root), "--local-only", *PINNED])
    assert text.exit_code == 0 and "pruned below 512 per policy 1" in text.stderr
    doc = cli("verify", str(st_.root), "--local-only", *PINNED, "--json")
    digest = hashlib.sha256(policy.policy_files(st_)[0].read_bytes()).hexdigest()
    assert doc["facts"]["pruning"] == {
        "pruned_below": 512,
        "segments": 2,
        "records": 510,
        "policy_serial": 1,
        "policy_sha256": digest,
        "logged_at_index": 613,
        "declared_below": 512,
        "prune_entries": 1,
    }
    check = next(c for c in doc["checks"] if c["id"] == "15")
    assert check["status"] == "ok" and "logged at index 613" in check["detail"]


def test_a_pruned_store_without_the_root_pinned_is_incomplete_for_both(
    built: Built, tool: Path
) -> None:
    cli("prune", str(built.store.root), "--key", str(built.key))
    for outcome in both(tool, built.store):
        assert (outcome.verdict, outcome.code) == ("INCOMPLETE", 3)
        assert "whose root is not pinned" in outcome.message
    for outcome in both(tool, built.store, "--allow-incomplete"):
        assert (outcome.verdict, outcome.code) == ("VERIFIED", 0)


def test_prune_below_a_smaller_bound_and_again_changes_only_what_it_must(
    built: Built, tool: Path
) -> None:
    s = str(built.store.root)
    doc = cli("prune", s, "--key", str(built.key), "--below", "500", "--json")
    assert [x["end_index"] for x in doc["segments"]] == [415]  # 512 > 500: kept whole
    again = cli("prune", s, "--key", str(built.key), "--below", "500", "--json")
    assert again["segments"] == [] and again["seal"] is None  # the entry covers it already
    assert again["logged_at_index"] == doc["logged_at_index"]
    more = cli("prune", s, "--key", str(built.key), "--json")
    assert [x["end_index"] for x in more["segments"]] == [512]
    assert more["logged_at_index"] > doc["logged_at_index"]  # a new entry for the new bound
    for outcome in both(tool, built.store, *PINNED):
        assert (outcome.verdict, outcome.code) == ("VERIFIED", 0), outcome
        assert "pruned below 512 per policy 1" in outcome.coverage


def test_prune_below_the_first_segments_end_logs_no_entry_and_changes_nothing(
    built: Built, tool: Path
) -> None:
    s = str(built.store.root)
    before = sorted(p.name for p in built.store.segment_dirs())
    doc = cli("prune", s, "--key", str(built.key), "--below", "414", "--json")  # first ends at 415
    assert (doc["segments"], doc["seal"], doc["logged_at_index"]) == ([], None, None)
    text = cli("prune", s, "--key", str(built.key), "--below", "300")
    assert "nothing to prune below 300: no segment with records ends at or below it" in (
        text.stderr
    )
    assert sorted(p.name for p in built.store.segment_dirs()) == before  # nothing sealed
    assert list(logentries.pending_entries(built.store)) == []
    for outcome in both(tool, built.store, *PINNED):
        assert (outcome.verdict, outcome.code) == ("VERIFIED", 0), outcome
        assert "pruned below" not in outcome.coverage
    # then the bound the policy declares does prune, with its own entry
    doc = cli("prune", s, "--key", str(built.key), "--json")
    assert [x["end_index"] for x in doc["segments"]] == [415, 512]
    assert doc["seal"] is not None and doc["logged_at_index"] >= 613


def test_prune_refuses_without_a_declaration_beyond_it_and_on_a_store_that_fails(
    built: Built,
) -> None:
    s, key = str(built.store.root), str(built.key)
    over = cli("prune", s, "--key", key, "--below", "613", code=2)
    assert "declares pruning below 512 only" in over.stderr
    (built.store.segment_dirs()[1] / "net.parquet").write_bytes(b"not parquet")
    failed = cli("prune", s, "--key", key, code=4)
    assert "refusing to prune: the store does not verify" in failed.stderr
    assert pruned_dirs(built.store) == []
    assert not any(
        logentries.parse_entry(d).kind == EntryType.PRUNE
        for _n, d in logentries.pending_entries(built.store)
    )
    for p in policy.policy_files(built.store):
        p.unlink()
    (built.store.root / "keys/root.vkey").unlink()
    none = cli("prune", s, "--key", key, code=2)
    assert "declares no pruning" in none.stderr


def test_a_declared_bound_beyond_the_log_says_which_bound_prune_takes(built: Built) -> None:
    # it said "nothing ends at 10,000 yet", with no hint, though every segment ends below
    s, key = str(built.store.root), str(built.key)
    declare(built.store, 10_000)
    beyond = cli("prune", s, "--key", key, code=2)
    said = "error: the bound 10,000 lies beyond the log's 613 leaves\n"
    assert said + "  hint: prune what is sealed so far with --below 613\n" in beyond.stderr
    assert pruned_dirs(built.store) == []
    doc = cli("prune", s, "--key", key, "--below", "613", "--json")
    assert [x["end_index"] for x in doc["segments"]] == [415, 512, 613]


def test_a_queued_prune_entry_that_no_policy_declares_is_refused_by_seal(built: Built) -> None:
    digest = hashlib.sha256(policy.policy_files(built.store)[0].read_bytes()).digest()
    for event in (
        prune.PruneEvent(600, 1, digest, 0),  # more than policy 1 declares
        prune.PruneEvent(500, 1, bytes(32), 0),  # another policy file
        prune.PruneEvent(500, 2, digest, 0),  # a policy the store does not hold
    ):
        path = logentries.add_pending(built.store, EntryType.PRUNE, event.body())
        with pytest.raises(TamperedError, match="would not verify"):
            seal.seal(built.store, built.signer)
        path.unlink()
    assert len(built.store.segment_dirs()) == 3  # nothing was sealed


def test_the_log_goes_on_after_pruning(built: Built, tool: Path) -> None:
    cli("prune", str(built.store.root), "--key", str(built.key))
    report = ingest.ingest(built.store, [DATA / "zeek-json/zat/conn.log"])
    assert not [f.error for f in report.files if f.error]
    seal.seal(built.store, built.signer)
    built.store.state_path.unlink()  # the sealer state lost: rebuilt through pruned.range
    seal.seal(built.store, built.signer, heartbeat=True)
    for outcome in both(tool, built.store, *PINNED):
        assert (outcome.verdict, outcome.code) == ("VERIFIED", 0), outcome


def test_a_bundle_and_a_witness_of_a_pruned_store(built: Built, tool: Path, tmp_path: Path) -> None:
    cli("prune", str(built.store.root), "--key", str(built.key))
    window = bundle.Window(
        bundle.parse_time("2019-01-01T00:00:00Z"), bundle.parse_time("2021-01-01T00:00:00Z")
    )
    out = tmp_path / "bundle"
    made = bundle.package(built.store, built.signer, "INC-1", window, out)
    assert made.checkpoint_size == 615 and sum(made.disclosed.values()) > 0
    assert all(int(p.name[:20]) >= 512 for p in (out / "proofs").iterdir())
    pinned = ("--root", ROOT.verifier.vkey())
    assert (
        run_acdkit(out, *pinned).verdict
        == run_independent(tool, out, *pinned).verdict
        == ("VERIFIED")
    )
    # package says which pruned records its window would have met (by the SEALs' times)
    gone = {
        p.name: SealInfo.from_entry((p / "seal.entry").read_bytes()).record_count
        for p in built.store.segment_dirs()
        if (p / "pruned.range").is_file()
    }
    assert sum(gone.values()) == 510  # the two segments below the bound 512
    everything = bundle.Window(
        bundle.parse_time("1970-01-01T00:00:00Z"), bundle.parse_time("2100-01-01T00:00:00Z")
    )
    wide = bundle.package(built.store, built.signer, "INC-1", everything, tmp_path / "all")
    assert {p["segment"]: p["records"] for p in wide.pruned} == gone
    nothing = bundle.Window(
        bundle.parse_time("1971-01-01T00:00:00Z"), bundle.parse_time("1971-01-02T00:00:00Z")
    )
    made_early = bundle.package(built.store, built.signer, "INC-1", nothing, tmp_path / "none")
    assert made_early.pruned == [] and sum(made_early.disclosed.values()) == 0
    said = cli(
        "package", str(built.store.root), "--incident", "INC-1", "--key", str(built.key),
        "--from", "1970-01-01T00:00:00Z", "--to", "2100-01-01T00:00:00Z",
        "--out", str(tmp_path / "cli"),
    )  # fmt: skip
    assert "pruned 510 records of 2 pruned segments fall in this window" in " ".join(
        said.stderr.split()
    )
    # a witness elsewhere gets a consistency proof from a checkpoint below the bound
    export = witness.export_checkpoint(built.store, 415)
    old, new = (
        Checkpoint.from_text(SignedNote.parse(built.store.checkpoint_path(n).read_bytes()).text)
        for n in (415, 615)
    )
    assert verify_consistency(415, 615, old.root, new.root, export.proof)
    assert export.proof == tuple(consistency_proof(_all_leaves(built), 415))  # the full tree
    wkey = tmp_path / "witness.key"
    cli("witness", "init", "--key", str(wkey), "--name", "witness.example/w1")
    signer = keys.load_witness_signer(wkey)
    state = tmp_path / "witness.state"
    first = witness.witness(
        witness.export_checkpoint(built.store, 0), signer, state, tmp_path, 1, built.signer.verifier
    )
    assert first.size == 615
    cosigned = witness.witness_store(built.store, signer, state, 2, None, None)
    assert cosigned.size == 615


def _all_leaves(built: Built) -> list[bytes]:
    """The leaf hashes of the template before pruning, plus the PRUNE segment's."""
    leaves: list[bytes] = []
    for path in built.store.segment_dirs():
        info = SealInfo.from_entry((path / "seal.entry").read_bytes())
        original = ORIGINAL.get(info.first_index)
        if original is not None:
            leaves += original
        else:
            leaves += seal.segment_leaves(path, info)
    return leaves


# -- what stays checkable ----------------------------------------------------------------------


def test_log_entries_of_pruned_segments_stay_checked(tmp_path: Path, tool: Path) -> None:
    """DECISION, CUSTODY, CLOCK and KEY entries of pruned segments are kept and checked."""
    from test_clock_evidence import GOOD, measurement

    store, signer = build_store(tmp_path / "store", tmp_path / "sealer.key", SEGMENTS[:1])
    s, sealer = str(store.root), str(tmp_path / "sealer.key")
    custodian = tmp_path / "custodian.key"
    cli("keys", "new", "--role", "custodian", "--name", "alice@example.org", "--store", s,
        "--out", str(custodian))  # fmt: skip
    env = {"ACDKIT_SEALER_KEY": sealer}
    CliRunner().invoke(app, ["incident", "open", s, "--incident", "INC-1", "--detected",
                             "2026-10-05T14:00:00+09:00", "--reason", "CNI-INCIDENT", "--why",
                             "seen", "--custodian-key", str(custodian)], env=env)  # fmt: skip
    logentries.add_pending(store, EntryType.CLOCK, measurement(time.time_ns(), GOOD).body())
    assert ingest.ingest(store, [DATA / SEGMENTS[1][0]]).files[0].error is None
    seal.seal(store, signer)  # segment 1: records, a DECISION and a CLOCK entry
    cli("custody", "log", s, "--custodian-key", str(custodian), "--event", "hand-over",
        "--checkpoint", "415", "--incident", "INC-1", "--from", "alice@example.org", "--to",
        "NCO", "--seal", "--key", sealer)  # fmt: skip
    new_key = tmp_path / "sealer2.key"
    cli("keys", "new", "--store", s, "--out", str(new_key))
    cli("keys", "rotate", s, "--key", sealer, "--to", str(new_key))
    signer2 = keys.load_signer(new_key)
    assert ingest.ingest(store, [DATA / SEGMENTS[2][0]]).files[0].error is None
    seal.seal(store, signer2)
    ends = [
        SealInfo.from_entry((p / "seal.entry").read_bytes()).end_index for p in store.segment_dirs()
    ]
    declare(store, ends[2])  # segments 0-2 may go (the custody segment has no records)
    cli("prune", s, "--key", str(new_key))
    assert len(pruned_dirs(store)) == 2
    doc = cli("verify", s, "--local-only", *PINNED, "--json")
    assert doc["verdict"] == "VERIFIED", doc["failure"]
    ok = {c["id"]: c["detail"] for c in doc["checks"] if c["status"] == "ok"}
    assert "1 key rotations" in ok["3"]
    assert ok["10"].startswith("2 DECISION entries")  # detection and recognition
    assert "1 CLOCK entries verify" in ok["12"]
    assert "1 CUSTODY entries (1 hand-over)" in ok["13"]
    theirs = run_independent(tool, store.root, "--local-only", *PINNED)
    assert (theirs.verdict, theirs.code) == ("VERIFIED", 0), theirs
    out = tmp_path / "bundle"
    window = bundle.Window(
        bundle.parse_time("2019-01-01T00:00:00Z"), bundle.parse_time("2021-01-01T00:00:00Z")
    )
    bundle.package(store, signer2, "INC-1", window, out)
    assert len(list((out / "key/rotations").iterdir())) == 1
    assert len(list((out / "decisions").iterdir())) == 2
    assert len(list((out / "custody").glob("*.tlog-proof"))) == 1
    pinned = ("--root", ROOT.verifier.vkey())
    assert (
        run_acdkit(out, *pinned).verdict
        == run_independent(tool, out, *pinned).verdict
        == ("VERIFIED")
    )


# -- killed at any moment ----------------------------------------------------------------------

KILLS = int(os.environ.get("ACDKIT_PRUNE_KILLS", "12"))
SEED = int(os.environ.get("ACDKIT_CRASH_SEED", "20260401"))
ACDKIT = REPO / ".venv" / "bin" / "acdkit"


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> Built:
    """Six segments of 3,000 records each (the crash test's inputs), policy: prune below
    the end of the fourth."""
    from test_crash_kill import distinct_conn_logs

    base = tmp_path_factory.mktemp("big")
    files = distinct_conn_logs(base)
    store, signer = build_store(base / "store", base / "sealer.key", ())
    for path in files:
        assert not [x.error for x in ingest.ingest(store, [path]).files if x.error]
        seal.seal(store, signer)
    ends = [
        SealInfo.from_entry((p / "seal.entry").read_bytes()).end_index for p in store.segment_dirs()
    ]
    declare(store, ends[3])
    return Built(store, signer, base / "sealer.key")


def _timed(store: Store, key: Path) -> float:
    started = time.monotonic()
    proc = subprocess.run([str(ACDKIT), "prune", str(store.root), "--key", str(key)],
                          capture_output=True, text=True, check=False)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return time.monotonic() - started


def test_prune_killed_at_any_moment_leaves_a_store_that_verifies_and_a_rerun_finishes(
    big: Built, tmp_path: Path, tool: Path
) -> None:
    if not ACDKIT.exists():
        pytest.skip("the acdkit console script is not installed in .venv")
    clean = copy_store(big.store, tmp_path / "clean")
    took = _timed(clean, big.key)
    expected = pruned_dirs(clean)
    assert len(expected) == 4
    rng = random.Random(SEED)
    outcomes: dict[str, int] = {}
    for trial in range(KILLS):
        st_ = copy_store(big.store, tmp_path / f"trial{trial}")
        proc = subprocess.Popen(
            [str(ACDKIT), "prune", str(st_.root), "--key", str(big.key)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
        # half the kills anywhere; half late, where the removals are (verifying comes first)
        time.sleep(rng.uniform(0 if trial % 2 else 0.7 * took, took))
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        pinned = ("--local-only", *PINNED)
        mine = run_acdkit(st_.root, *pinned)
        assert mine.verdict in ("VERIFIED", "INCOMPLETE"), (trial, mine)
        theirs = run_independent(tool, st_.root, *pinned)
        assert theirs.verdict in ("VERIFIED", "INCOMPLETE"), (trial, theirs)
        outcomes[f"{len(pruned_dirs(st_))} pruned"] = (
            outcomes.get(f"{len(pruned_dirs(st_))} pruned", 0) + 1
        )
        assert _timed(st_, big.key) >= 0
        assert pruned_dirs(st_) == expected
        for seg in st_.segment_dirs()[:4]:
            assert not [n for n in ("net.parquet", "segment.key") if (seg / n).exists()]
        final = both(tool, st_, *PINNED)
        assert [o.verdict for o in final] == ["VERIFIED", "VERIFIED"], final
        prunes = sum(
            logentries.parse_entry(d).kind == EntryType.PRUNE
            for seg in st_.segment_dirs()
            for d in logentries.read_segment_entries(
                seg, SealInfo.from_entry((seg / "seal.entry").read_bytes()).entry_count
            )
        )
        assert prunes == 1, trial  # a rerun reuses the sealed entry, never logs a second
    print(f"prune kills over {took:.2f}s: {outcomes}")


class Killed(BaseException):
    """What a kill does to the process: nothing after it happens."""


def test_prune_interrupted_before_each_durable_step_verifies_and_a_rerun_finishes(
    built: Built, tool: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every state a kill can leave: stop before the k-th rename or removal, for every k."""
    steps = {"n": 0, "at": -1}
    real = {name: getattr(Path, name) for name in ("replace", "rename", "unlink")}

    def stopping(name: str) -> Any:
        def step(self: Path, *args: Any, **kwargs: Any) -> Any:
            if steps["at"] >= 0 and steps["n"] >= steps["at"]:
                raise Killed(name)  # and every later step too: the process is gone
            steps["n"] += 1
            return real[name](self, *args, **kwargs)

        return step

    states, k = set(), 0
    while True:
        st_ = copy_store(built.store, tmp_path / f"k{k}")
        steps.update(n=0, at=k)
        for name in real:
            monkeypatch.setattr(Path, name, stopping(name))
        try:
            prune.prune(st_, built.signer)
            done = True
        except Killed:
            done = False
        finally:
            steps["at"] = -1
        states.add((len(pruned_dirs(st_)), sum(1 for p in st_.segment_dirs())))
        mine, theirs = both(tool, st_, *PINNED)
        assert mine.verdict in ("VERIFIED", "INCOMPLETE"), (k, mine)
        assert theirs.verdict in ("VERIFIED", "INCOMPLETE"), (k, theirs)
        prune.prune(st_, built.signer)  # the rerun
        final = both(tool, st_, *PINNED)
        assert [o.verdict for o in final] == ["VERIFIED", "VERIFIED"], (k, final)
        assert len(pruned_dirs(st_)) == 2
        if done:
            break
        k += 1
    assert k > 10  # the steps of the seal and of both segments' removals were each cut
    assert (1, 4) in states  # one segment pruned, the other not yet


def test_the_format_document_states_the_vectors() -> None:
    doc = (REPO / "docs/evidence-format.md").read_text(encoding="utf-8")
    section = doc[doc.index("## 17. Declared retention pruning") :]
    body = VECTORS["prune"]["body"]
    assert "\n".join(body[i : i + 64] for i in range(0, len(body), 64)) in section
    for value in (
        VECTORS["policy"]["sha256"],
        VECTORS["policy"]["root_vkey"],
        VECTORS["prune"]["leaf_hash"],
        VECTORS["pruned_range"]["file"],
        VECTORS["pruned_range"]["root"],
    ):
        assert value in section, value
    flat = " ".join(section.split())
    for first, count, heights in VECTORS["cover"][:4]:
        assert f"`[{first}, {first + count})` → `{' '.join(map(str, heights))}`" in flat


# -- the independent verifier on stores: what it cannot see ------------------------------------


def test_a_record_edited_in_the_sealed_layout_is_not_verified_by_the_independent_verifier(
    built: Built, tool: Path
) -> None:
    """It does not re-encode records; a table file that is not byte for byte the one its SEAL
    names is INCOMPLETE for it (acdkit, which re-encodes, finds the edit)."""
    path = built.store.segment_dirs()[2] / "net.parquet"
    table = pq.read_table(path)
    ports = table.column("dst_port").to_pylist()
    ports[3] = 4444
    i = table.schema.get_field_index("dst_port")
    edited = table.set_column(i, "dst_port", pa.array(ports, table.schema.field(i).type))
    writer = seal._sealed_writer(path, table.schema)  # the sealer's own layout
    writer.write_table(edited)
    writer.close()
    assert iv.parquet_hashes(path, "net.parquet")  # still readable: the hashes are unchanged
    mine, theirs = both(tool, built.store, *PINNED)
    assert (mine.verdict, mine.code) == ("TAMPERED", 1)
    assert (theirs.verdict, theirs.code) == ("INCOMPLETE", 3)
    assert "net.parquet is not the file its SEAL names" in theirs.message


def test_a_replaced_segment_key_is_beyond_the_independent_verifier(
    built: Built, tool: Path
) -> None:
    """Salts are derived from the segment key and the records: only acdkit checks them; the
    independent verifier's coverage says that it did not."""
    (built.store.segment_dirs()[1] / "segment.key").write_bytes(bytes(32))
    mine, theirs = both(tool, built.store, *PINNED)
    assert (mine.verdict, theirs.verdict) == ("TAMPERED", "VERIFIED")
    assert "nor their salts derived" in theirs.coverage


def test_anchors_sealed_in_a_pruned_segment_still_verify(
    tmp_path: Path, tool: Path, request: pytest.FixtureRequest
) -> None:
    """Anchors of old checkpoints: the ANCHOR entries stay in the pruned segment's
    entries.bin, their tokens in anchors/; they are checked, and commit the log from
    outside, as before pruning."""
    from test_anchor import _anchor, _trust

    got = {n: request.getfixturevalue(n) for n in ("tsa_a", "tsa_b", "ca_a", "ca_b")}
    store, signer = build_store(tmp_path / "store", tmp_path / "sealer.key", SEGMENTS[:1])
    done = _anchor(
        store,
        ("tsa-a", got["tsa_a"], _trust(got["ca_a"], "tsa-a")),
        ("tsa-b", got["tsa_b"], _trust(got["ca_b"], "tsa-b")),
    )
    assert done.verdict == ExitCode.OK
    assert ingest.ingest(store, [DATA / SEGMENTS[1][0]]).files[0].error is None
    seal.seal(store, signer)  # segment 1: records, then the two ANCHOR entries of 415
    assert ingest.ingest(store, [DATA / SEGMENTS[2][0]]).files[0].error is None
    seal.seal(store, signer)
    second = SealInfo.from_entry((store.segment_dirs()[1] / "seal.entry").read_bytes())
    assert second.entry_count == 2
    roots = [
        policy.TsaRoot(name, None, got[ca].cert.public_bytes(serialization.Encoding.DER))
        for name, ca in (("tsa-a", "ca_a"), ("tsa-b", "ca_b"))
    ]
    declare(store, second.end_index, tsas=roots)  # the pinned policy names the TSAs
    prune.prune(store, signer)
    assert len(pruned_dirs(store)) == 2
    report = verify.verify_store(store, root=ROOT.verifier)
    assert report.verdict == ExitCode.OK, report.failure  # no --local-only: anchors commit
    assert report.facts["committed_outside"] == {"anchors": 415}
    nine = next(c for c in report.checks if c.id == "9" and c.status == "ok")
    assert nine.detail.startswith("2 anchors verify (2 sealed in the log")
    assert "pruned below " in report.coverage
    theirs = run_independent(tool, store.root, *PINNED)
    assert (theirs.verdict, theirs.code) == ("INCOMPLETE", 3)  # it has no CMS, as in bundles
    assert "anchors not verified: 2 ANCHOR entries" in theirs.message
