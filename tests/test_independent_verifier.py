"""The independent bundle verifier (acdkit/_data/acdkit_verify.py) against `acdkit verify`.

The standalone verifier runs as a separate process that cannot import acdkit, from a
directory outside the repository; both verifiers must give the same verdict and exit code on
every fixture.  Each fixture is named after the defect it carries.  Signed fixtures are what
an insider holding the sealer key could make: the files edited, then the manifest (and, for
the forged logs, the tree and its checkpoint) signed again.
"""

from __future__ import annotations

import ast
import base64
import hashlib
import importlib.util
import json
import os
import random
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from types import ModuleType
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from typer.testing import CliRunner

from acdkit import bundle, ingest, keys, policy, rotation, seal, verify, witness
from acdkit.cli import app
from acdkit.encoding import EntryType, TlvType, entry, parse_tlv, tlv
from acdkit.errors import ExitCode, UsageError
from acdkit.keychain import REVOKE, ROTATE, key_event_body
from acdkit.merkle import TreeLevels, leaf_hash
from acdkit.note import Checkpoint, sign_note
from acdkit.proof import TlogProof
from acdkit.sealinfo import SealInfo
from acdkit.store import Store, init_store

REPO = Path(__file__).resolve().parents[1]
TOOL = REPO / "src/acdkit/_data/acdkit_verify.py"
DATA = Path(__file__).parent / "data"
WINDOW = bundle.Window(
    bundle.parse_time("2013-09-15T00:00:00Z"), bundle.parse_time("2013-09-16T00:00:00Z")
)
B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
# run the tool as `python -I` with acdkit made unimportable, whatever the environment holds
RUNNER = (
    "import runpy, sys; sys.modules['acdkit'] = None; sys.argv = sys.argv[1:]; "
    "runpy.run_path(sys.argv[0], run_name='__main__')"
)


@dataclass(frozen=True)
class Origin:
    bundle: Path
    signer: keys.Signer
    vkey: str
    store: Store | None = None


@pytest.fixture(scope="module")
def origin(tmp_path_factory: pytest.TempPathFactory) -> Origin:
    """One sealed store of the real zat logs (two segments) and its bundle for 2013-09-15."""
    base = tmp_path_factory.mktemp("origin")
    st, key = init_store(base / "store", base / "keys/sealer.key", "test-org")
    signer = keys.load_signer(key)
    ingest.ingest(st, [DATA / f"zeek-tsv/zat/{n}.log" for n in ("conn", "dns", "http")])
    seal.seal(st, signer)
    ingest.ingest(st, [DATA / "zeek-json/zat/conn.log"])
    seal.seal(st, signer)
    bundle.package(st, signer, "INC-1", WINDOW, base / "bundle")
    return Origin(base / "bundle", signer, st.verifier().vkey(), st)


@pytest.fixture
def work(origin: Origin, tmp_path: Path) -> Iterator[Path]:
    """A fresh copy of the good bundle, to damage."""
    out = tmp_path / "bundle"
    shutil.copytree(origin.bundle, out, symlinks=True)
    yield out
    _unnest(out)


def _unnest(root: Path) -> None:
    """Remove a chain root/d/d/... of any depth: shutil.rmtree (and so pytest) recurses."""
    fds = [os.open(root, os.O_RDONLY)]
    while True:
        try:
            fds.append(os.open("d", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fds[-1]))
        except FileNotFoundError:
            break
    os.close(fds.pop())  # the deepest directory, or root itself if there is no chain
    while fds:  # each one left holds an empty "d" by now
        fd = fds.pop()
        os.rmdir("d", dir_fd=fd)
        os.close(fd)


@pytest.fixture(scope="module")
def tool(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The verifier as a lone file, outside the repository and outside any bundle."""
    path = tmp_path_factory.mktemp("tool") / "acdkit_verify.py"
    path.write_bytes(bundle.independent_verifier())
    return path


def load_tool() -> ModuleType:
    spec = importlib.util.spec_from_file_location("acdkit_verify_under_test", TOOL)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


iv = load_tool()


# -- running both verifiers ------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    code: int
    verdict: str
    message: str
    coverage: str


def run_independent(tool: Path, target: Path, *args: str) -> Outcome:
    proc = subprocess.run(
        [sys.executable, "-I", "-c", RUNNER, str(tool), str(target), "--json", *args],
        cwd=tool.parent,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert "Traceback" not in proc.stderr, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["exit_code"] == proc.returncode
    failure = doc["failure"] or {}
    return Outcome(proc.returncode, doc["verdict"], failure.get("message", ""), doc["coverage"])


def run_acdkit(target: Path, *args: str) -> Outcome:
    result = CliRunner().invoke(app, ["verify", str(target), "--json", *args])
    doc = json.loads(result.stdout)
    if "error" in doc:  # the command failed before verifying (bad --key, not a bundle)
        return Outcome(result.exit_code, doc["error"]["verdict"], doc["error"]["message"], "")
    verdict = {"OK": "VERIFIED"}.get(doc["verdict"], doc["verdict"])
    failure = doc["failure"] or {}
    return Outcome(result.exit_code, verdict, failure.get("message", ""), doc["coverage"])


def both(tool: Path, target: Path, *args: str) -> tuple[Outcome, Outcome]:
    return run_independent(tool, target, *args), run_acdkit(target, *args)


# -- building damaged bundles ----------------------------------------------------------------


def manifest_head(root: Path) -> tuple[str, str, int]:
    lines = (root / bundle.MANIFEST).read_text().split("\n")
    return lines[1].split(" ", 1)[1], lines[2].split(" ", 1)[1], int(lines[3].split(" ")[1])


def manifest_text(root: Path, head: tuple[str, str, int]) -> str:
    """The manifest text of the files now in ``root``, sorted by path as the spec says."""
    incident, origin, size = head
    lines = ["acdkit-bundle/1", f"incident {incident}", f"origin {origin}", f"checkpoint {size}"]
    files = sorted(
        p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file() or p.is_symlink()
    )
    for rel in files:
        if rel == bundle.MANIFEST or (root / rel).is_symlink():
            continue
        data = (root / rel).read_bytes()
        lines.append(f"file {hashlib.sha256(data).hexdigest()} {len(data)} {rel}")
    return "\n".join(lines) + "\n"


def resign(root: Path, signer: keys.Signer, text: str | None = None) -> None:
    """What an insider holding the sealer key can do after editing files."""
    text = manifest_text(root, manifest_head(root)) if text is None else text
    (root / bundle.MANIFEST).write_bytes(sign_note(text, signer).encode())


def proofs(root: Path, sub: str = "proofs") -> list[Path]:
    return sorted((root / sub).iterdir())


def edit_proof(path: Path, change: Callable[[list[bytes]], None]) -> None:
    head, _, checkpoint = path.read_bytes().partition(b"\n\n")
    lines = head.split(b"\n")
    change(lines)
    path.write_bytes(b"\n".join(lines) + b"\n\n" + checkpoint)


def flip_b64(value: bytes, at: int) -> bytes:
    raw = bytearray(base64.b64decode(value))
    raw[at] ^= 0x01
    return base64.b64encode(bytes(raw))


# -- the fixtures: each named after its defect, with the verdict both must give ---------------


def _record_entry_changed(root: Path, o: Origin) -> None:
    # one byte of a disclosed record's canonical body, inside its proof's extra line
    edit_proof(
        proofs(root)[3], lambda lines: lines.__setitem__(1, b"extra " + flip_b64(lines[1][6:], 60))
    )
    resign(root, o.signer)


def _proof_hash_changed(root: Path, o: Origin) -> None:
    edit_proof(proofs(root)[5], lambda lines: lines.__setitem__(3, flip_b64(lines[3], 0)))
    resign(root, o.signer)


def _wrong_index_renamed(root: Path, o: Origin) -> None:
    last = proofs(root)[-1]
    index = int(last.stem)
    edit_proof(last, lambda lines: lines.__setitem__(2, f"index {index + 1}".encode()))
    last.rename(last.with_name(f"{index + 1:020d}.tlog-proof"))
    resign(root, o.signer)


def _index_differs_from_file_name(root: Path, o: Origin) -> None:
    path = proofs(root)[0]
    edit_proof(path, lambda lines: lines.__setitem__(2, f"index {int(path.stem) + 1}".encode()))
    resign(root, o.signer)


def _dropped_proof(root: Path, o: Origin) -> None:
    proofs(root)[7].unlink()
    resign(root, o.signer)


def _dropped_seal_proof(root: Path, o: Origin) -> None:
    for path in proofs(root, "seals"):
        path.unlink()
    resign(root, o.signer)


def _manifest_signed_by_another_key(root: Path, o: Origin) -> None:
    other = keys.generate(o.signer.name)  # same name: only the key differs
    resign(root, other)


def _bundle_key_replaced(root: Path, o: Origin) -> None:
    # unpinned: the attacker's own vkey and manifest; the checkpoint still bears the real key
    other = keys.generate(o.signer.name)
    (root / "key/sealer.vkey").write_text(other.verifier.vkey() + "\n")
    resign(root, other)


def _unlisted_file(root: Path, o: Origin) -> None:
    (root / "summary/notes.txt").write_text("added after signing")


def _path_traversal(root: Path, o: Origin) -> None:
    text = manifest_text(root, manifest_head(root))
    resign(root, o.signer, text + f"file {'0' * 64} 1 ../../etc/passwd\n")


def _absolute_path(root: Path, o: Origin) -> None:
    text = manifest_text(root, manifest_head(root))
    resign(root, o.signer, text.replace(" VERIFY.txt\n", " /VERIFY.txt\n"))


def _symlink(root: Path, o: Origin) -> None:
    os.symlink("/etc/hostname", root / "summary/link")


def _symlinked_directory(root: Path, o: Origin) -> None:
    shutil.move(root / "logs", root.parent / "elsewhere")
    os.symlink(root.parent / "elsewhere", root / "logs")


def _fifo(root: Path, o: Origin) -> None:
    os.mkfifo(root / "summary/pipe")


def _truncated_checkpoint(root: Path, o: Origin) -> None:
    path = next((root / "checkpoint").iterdir())
    path.write_bytes(path.read_bytes()[:-30])
    resign(root, o.signer)


def _crlf_manifest(root: Path, o: Origin) -> None:
    path = root / bundle.MANIFEST
    path.write_bytes(path.read_bytes().replace(b"\n", b"\r\n"))


def _non_canonical_base64(root: Path, o: Origin) -> None:
    def change(lines: list[bytes]) -> None:
        value = lines[3].decode()  # 32 bytes: 43 symbols and '='; the last has 2 unused bits
        lines[3] = (value[:42] + B64[B64.index(value[42]) ^ 1] + "=").encode()

    edit_proof(proofs(root)[2], change)
    resign(root, o.signer)


def _bad_base64_signature(root: Path, o: Origin) -> None:
    path = root / bundle.MANIFEST
    text = path.read_text()
    path.write_text(text[:-10] + "!!" + text[-8:])


def _listed_file_missing(root: Path, o: Origin) -> None:
    (root / "summary/summary.md").unlink()


def _summary_edited(root: Path, o: Origin) -> None:
    path = root / "summary/summary.md"
    path.write_text(path.read_text().replace("192.168.33.10", "192.168.33.11"))


def _proof_on_another_checkpoint(root: Path, o: Origin) -> None:
    path = proofs(root)[4]
    head = path.read_bytes().partition(b"\n\n")[0]
    other = sign_note(Checkpoint(o.signer.name, 1, bytes(32)).text(), o.signer).encode()
    path.write_bytes(head + b"\n\n" + other)
    resign(root, o.signer)


def _record_proof_holds_the_seal(root: Path, o: Origin) -> None:
    seal_proof = proofs(root, "seals")[0]
    shutil.copy(seal_proof, root / "proofs" / seal_proof.name)
    resign(root, o.signer)


def _seal_proof_holds_a_record(root: Path, o: Origin) -> None:
    record = proofs(root)[0]
    shutil.copy(record, root / "seals" / record.name)
    resign(root, o.signer)


def _second_bad_signature_by_the_key(root: Path, o: Origin) -> None:
    path = root / bundle.MANIFEST
    kid = o.signer.verifier.key_id
    bogus = base64.b64encode(kid + bytes(64)).decode()
    path.write_text(path.read_text() + f"\u2014 {o.signer.name} {bogus}\n")


def _unknown_cosignature(root: Path, o: Origin) -> None:
    # a signature by an unknown key is ignored (C2SP); its name has a no-break space
    path = root / bundle.MANIFEST
    blob = base64.b64encode(b"\x01\x02\x03\x04" + bytes(64)).decode()
    path.write_text(path.read_text() + f"\u2014 witness\u00a0one {blob}\n")


def _manifest_out_of_order(root: Path, o: Origin) -> None:
    lines = manifest_text(root, manifest_head(root)).split("\n")
    lines[4], lines[5] = lines[5], lines[4]
    resign(root, o.signer, "\n".join(lines))


def _manifest_ends_in_an_empty_line(root: Path, o: Origin) -> None:
    # signed as it stands: sign_note itself refuses a text with an empty line
    text = manifest_text(root, manifest_head(root)) + "\n"
    blob = base64.b64encode(o.signer.verifier.key_id + o.signer.sign(text.encode())).decode()
    (root / bundle.MANIFEST).write_text(f"{text}\n\u2014 {o.signer.name} {blob}\n")


def _manifest_over_one_mib(root: Path, o: Origin) -> None:
    # what a bundle of 10,000 records (the default --max-records) needs: > 1 MiB of manifest
    pad = root / "logs/pad"
    pad.mkdir()
    for i in range(9000):
        (pad / f"{i:05d}-{'p' * 30}").write_bytes(b"x")
    resign(root, o.signer)


def _manifest_over_sixteen_mib(root: Path, o: Origin) -> None:
    path = root / bundle.MANIFEST
    path.write_bytes(path.read_bytes() + b"x" * (16 << 20))


def _proof_over_one_mib(root: Path, o: Origin) -> None:
    path = proofs(root)[1]
    head, _, checkpoint = path.read_bytes().partition(b"\n\n")
    path.write_bytes(head + b"\n\n" + checkpoint + b"x" * (1 << 20))
    resign(root, o.signer)


def _nest(root: Path, depth: int) -> None:
    fd = os.open(root, os.O_RDONLY)
    for _ in range(depth):  # relative to a descriptor: deeper than PATH_MAX allows
        os.mkdir("d", dir_fd=fd)
        inner = os.open("d", os.O_RDONLY, dir_fd=fd)
        os.close(fd)
        fd = inner
    os.close(fd)


def _deeply_nested(root: Path, o: Origin) -> None:
    _nest(root, 33)


def _nested_very_deeply(root: Path, o: Origin) -> None:
    _nest(root, 1100)  # acdkit's os.walk recursed into it until RecursionError (exit 70)


def _nested_as_deep_as_allowed(root: Path, o: Origin) -> None:
    _nest(root, 32)


def _csv_row_dropped(root: Path, o: Origin) -> None:
    # the CSV copy loses a row that the Parquet file still has
    path = root / "records/dns.csv"
    lines = path.read_text().split("\n")
    path.write_text("\n".join(lines[:2] + lines[3:]))
    resign(root, o.signer)


Damage = Callable[[Path, Origin], None]
CASES: dict[str, tuple[Damage | None, str, bool]] = {
    # name: (damage, verdict, pin the key)
    "good-pinned": (None, "VERIFIED", True),
    "good-not-pinned": (None, "VERIFIED", False),
    "record-entry-changed": (_record_entry_changed, "TAMPERED", True),
    "proof-hash-changed": (_proof_hash_changed, "TAMPERED", True),
    "wrong-index-renamed": (_wrong_index_renamed, "TAMPERED", True),
    "index-differs-from-file-name": (_index_differs_from_file_name, "MALFORMED", True),
    "dropped-proof": (_dropped_proof, "TAMPERED", True),
    "dropped-seal-proof": (_dropped_seal_proof, "TAMPERED", True),
    "manifest-signed-by-another-key": (_manifest_signed_by_another_key, "TAMPERED", True),
    "bundle-key-replaced": (_bundle_key_replaced, "TAMPERED", False),
    "unlisted-file": (_unlisted_file, "POLICY", True),
    "path-traversal": (_path_traversal, "MALFORMED", True),
    "absolute-path": (_absolute_path, "MALFORMED", True),
    "symlink": (_symlink, "MALFORMED", True),
    "symlinked-directory": (_symlinked_directory, "MALFORMED", True),
    "fifo": (_fifo, "MALFORMED", True),
    "truncated-checkpoint": (_truncated_checkpoint, "MALFORMED", True),
    "crlf-manifest": (_crlf_manifest, "MALFORMED", True),
    "non-canonical-base64": (_non_canonical_base64, "MALFORMED", True),
    "bad-base64-signature": (_bad_base64_signature, "MALFORMED", True),
    "listed-file-missing": (_listed_file_missing, "TAMPERED", True),
    "summary-edited": (_summary_edited, "TAMPERED", True),
    "proof-on-another-checkpoint": (_proof_on_another_checkpoint, "TAMPERED", True),
    "record-proof-holds-the-seal": (_record_proof_holds_the_seal, "TAMPERED", True),
    "seal-proof-holds-a-record": (_seal_proof_holds_a_record, "MALFORMED", True),
    "second-bad-signature-by-the-key": (_second_bad_signature_by_the_key, "TAMPERED", True),
    "unknown-cosignature": (_unknown_cosignature, "VERIFIED", True),
    "manifest-out-of-order": (_manifest_out_of_order, "MALFORMED", True),
    "manifest-ends-in-an-empty-line": (_manifest_ends_in_an_empty_line, "MALFORMED", True),
    "manifest-over-one-mib": (_manifest_over_one_mib, "VERIFIED", True),
    "manifest-over-sixteen-mib": (_manifest_over_sixteen_mib, "MALFORMED", True),
    "proof-over-one-mib": (_proof_over_one_mib, "MALFORMED", True),
    "deeply-nested": (_deeply_nested, "MALFORMED", True),
    "nested-very-deeply": (_nested_very_deeply, "MALFORMED", True),
    "nested-as-deep-as-allowed": (_nested_as_deep_as_allowed, "VERIFIED", True),
}
CODES = {v.name: int(v) for v in ExitCode} | {"VERIFIED": 0}


@pytest.mark.parametrize("name", list(CASES))
def test_both_verifiers_agree(name: str, work: Path, origin: Origin, tool: Path) -> None:
    damage, verdict, pin = CASES[name]
    if damage is not None:
        damage(work, origin)
    mine, theirs = both(tool, work, *(["--key", origin.vkey] if pin else []))
    assert (mine.verdict, mine.code) == (verdict, CODES[verdict]), mine
    assert (theirs.verdict, theirs.code) == (verdict, CODES[verdict]), theirs


# -- forged logs: a new tree over chosen entries, signed with the real key --------------------


def tlv_fields(body: bytes) -> list[tuple[int, int, bytes]]:
    return [(fid, int(kind), value) for fid, kind, value in parse_tlv(body)]


def tlv_join(fields: list[tuple[int, int, bytes]]) -> bytes:
    return b"".join(tlv(fid, TlvType(kind), value) for fid, kind, value in fields)


def with_field(entry_bytes: bytes, fid: int, kind: int | None, value: bytes | None) -> bytes:
    """The entry with field ``fid`` set (kind None: same type) or, with value None, removed."""
    fields = [f for f in tlv_fields(entry_bytes[38:]) if f[0] != fid]
    if value is not None:
        old = {f[0]: f[1] for f in tlv_fields(entry_bytes[38:])}
        fields.append((fid, kind if kind is not None else old[fid], value))
    return entry_bytes[:38] + tlv_join(sorted(fields))


def forge(
    src: Path,
    dst: Path,
    o: Origin,
    seal_change: Callable[[SealInfo], SealInfo] | None = None,
    seal_bytes: Callable[[bytes], bytes] | None = None,
    record_bytes: Callable[[bytes], bytes] | None = None,
    key_entries: Sequence[bytes] = (),
    checkpoint_signer: keys.Signer | None = None,
    manifest_signer: keys.Signer | None = None,
) -> None:
    """A bundle of a new log: 3 net and 2 dns records of ``src``, then ``key_entries`` (proven
    under key/rotations/), then a SEAL; the checkpoint and the manifest signed anew.

    The SEAL can be edited as a SealInfo or as bytes, the first record's entry as bytes (the
    rows' integrity_hash follows it, the other columns do not).
    """
    picked: list[tuple[str, int, bytes]] = []
    for table, count in (("net", 3), ("dns", 2)):
        indices = sorted(pq.read_table(src / f"records/{table}.parquet")["log_index"].to_pylist())
        for old in indices[:count]:
            proof = TlogProof.parse((src / f"proofs/{old:020d}.tlog-proof").read_bytes())
            assert proof.extra is not None
            picked.append((table, old, proof.extra))
    entries = [e for _, _, e in picked]
    if record_bytes is not None:
        entries[0] = record_bytes(entries[0])
    n, logged = len(entries), list(key_entries)
    seal_proof = TlogProof.parse(proofs(src, "seals")[0].read_bytes())
    assert seal_proof.extra is not None
    info = replace(
        SealInfo.from_entry(seal_proof.extra),
        segment_no=0,
        first_index=0,
        end_index=n + len(logged) + 1,
        record_count=n,
        prev_checkpoint=bytes(32),
        entry_count=len(logged),
    )
    info = seal_change(info) if seal_change else info
    seal_entry = seal_bytes(info.entry()) if seal_bytes else info.entry()
    size = n + len(logged) + 1
    tree = TreeLevels([leaf_hash(e) for e in [*entries, *logged, seal_entry]])
    cp_text = Checkpoint(o.signer.name, size, tree.root()).text()
    cp = sign_note(cp_text, checkpoint_signer or o.signer).encode()

    dst.mkdir()
    for rel in ("VERIFY.txt", "key/sealer.vkey", bundle.TOOL):
        (dst / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(src / rel, dst / rel)
    (dst / "checkpoint").mkdir()
    (dst / f"checkpoint/{size:020d}.checkpoint").write_bytes(cp)
    for sub, index, data in [
        *(("proofs", i, e) for i, e in enumerate(entries)),
        *((bundle.ROTATIONS, n + i, e) for i, e in enumerate(logged)),
        ("seals", size - 1, seal_entry),
    ]:
        (dst / sub).mkdir(parents=True, exist_ok=True)
        proof = TlogProof(index, tuple(tree.proof(index)), cp, data)
        (dst / f"{sub}/{index:020d}.tlog-proof").write_bytes(proof.encode())
    for table in ("net", "dns"):
        rows = pq.read_table(src / f"records/{table}.parquet").sort_by("log_index")
        new = {old: i for i, (t, old, _) in enumerate(picked) if t == table}
        mask = pa.array([i in new for i in rows["log_index"].to_pylist()])
        rows = rows.filter(mask)
        at = [new[i] for i in rows["log_index"].to_pylist()]
        rows = rows.set_column(0, "log_index", pa.array(at, pa.uint64()))
        hashes = pa.array([leaf_hash(entries[i]) for i in at], pa.binary(32))
        rows = rows.set_column(
            rows.schema.get_field_index("integrity_hash"), "integrity_hash", hashes
        )
        bundle._write_table(dst / "records" / table, rows)
    incident, origin, _ = manifest_head(src)
    resign(dst, manifest_signer or o.signer, manifest_text(dst, (incident, origin, size)))


def u32(n: int) -> bytes:
    return n.to_bytes(4, "big")


FORGED: dict[str, tuple[dict[str, Any], str]] = {
    "forged-consistent": ({}, "VERIFIED"),
    "forged-record-outside-sealed-time": (
        {"seal_change": lambda i: replace(i, ts_max_ns=i.ts_min_ns - 1)},
        "TAMPERED",
    ),
    "forged-seal-at-wrong-position": (
        {"seal_change": lambda i: replace(i, end_index=i.end_index + 1)},
        "TAMPERED",
    ),
    "forged-record-before-its-segment": (
        {"seal_change": lambda i: replace(i, first_index=1)},
        "TAMPERED",
    ),
    "forged-seal-of-another-log": (
        {"seal_change": lambda i: replace(i, origin="acdkit/other/log")},
        "TAMPERED",
    ),
    "forged-seal-sources-not-utf8": (
        {"seal_bytes": lambda e: with_field(e, 12, None, u32(2) + b"\xff\xfe")},
        "MALFORMED",
    ),
    "forged-seal-list-item-truncated": (
        {"seal_bytes": lambda e: with_field(e, 12, None, u32(100) + b"abc")},
        "MALFORMED",
    ),
    "forged-seal-short-parquet-hash": (
        {"seal_bytes": lambda e: with_field(e, 21, None, bytes(31))},
        "MALFORMED",
    ),
    "forged-seal-missing-field": (
        {"seal_bytes": lambda e: with_field(e, 9, None, None)},
        "MALFORMED",
    ),
    "forged-seal-unknown-tlv-type": (
        {"seal_bytes": lambda e: e + tlv(99, TlvType.U64, bytes(8)).replace(b"\x01", b"\x09", 1)},
        "MALFORMED",
    ),
    "forged-record-port-over-u16": (
        {"record_bytes": lambda e: with_field(e, 6, None, (70000).to_bytes(8, "big"))},
        "TAMPERED",
    ),
    "forged-record-field-not-in-schema": (
        {"record_bytes": lambda e: with_field(e, 777, TlvType.UTF8, b"x")},
        "TAMPERED",
    ),
    "forged-record-entry-too-short": ({"record_bytes": lambda e: b"ACDK\x01"}, "MALFORMED"),
    "forged-record-without-time": (
        {"record_bytes": lambda e: with_field(e, 17, None, None)},
        "TAMPERED",
    ),
}


@pytest.mark.parametrize("name", list(FORGED))
def test_both_verifiers_agree_on_forged_logs(
    name: str, origin: Origin, tool: Path, tmp_path: Path
) -> None:
    changes, verdict = FORGED[name]
    forge(origin.bundle, tmp_path / "forged", origin, **changes)
    mine, theirs = both(tool, tmp_path / "forged", "--key", origin.vkey)
    assert (mine.verdict, mine.code) == (verdict, CODES[verdict]), mine
    assert (theirs.verdict, theirs.code) == (verdict, CODES[verdict]), theirs


# -- what the two verifiers see differently, by design ----------------------------------------


def test_parquet_rows_are_compared_by_acdkit_only(work: Path, origin: Origin, tool: Path) -> None:
    # a disclosed row edited in Parquet, the manifest signed again
    path = work / "records/net.parquet"
    table = pq.read_table(path)
    ports = table["dst_port"].to_pylist()
    ports[0] = 6667
    column = table.schema.get_field_index("dst_port")
    pq.write_table(table.set_column(column, "dst_port", pa.array(ports, pa.uint16())), path)
    resign(work, origin.signer)
    mine, theirs = both(tool, work, "--key", origin.vkey)
    assert theirs.verdict == "TAMPERED" and "differs from its proven entry" in theirs.message
    assert mine.verdict == "VERIFIED"
    assert "NOT compared with the entries: the Parquet files" in mine.coverage


def test_csv_copies_are_read_by_the_independent_verifier_only(
    work: Path, origin: Origin, tool: Path
) -> None:
    _csv_row_dropped(work, origin)
    mine, theirs = both(tool, work, "--key", origin.vkey)
    assert mine.verdict == "TAMPERED" and "has no disclosed record" in mine.message
    assert theirs.verdict == "VERIFIED" and "CSV copies are attested" in theirs.coverage


def test_parquet_without_csv_is_incomplete_for_the_independent_verifier(
    work: Path, origin: Origin, tool: Path
) -> None:
    (work / "records/dns.csv").unlink()
    resign(work, origin.signer)
    mine, theirs = both(tool, work, "--key", origin.vkey)
    assert (mine.verdict, mine.code) == ("INCOMPLETE", 3)
    assert "records/dns.parquet has no CSV copy" in mine.message
    assert theirs.verdict == "VERIFIED"


# -- invocation ---------------------------------------------------------------------------------


def test_usage_and_key_errors(origin: Origin, tool: Path, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    for target in (tmp_path / "missing", tmp_path / "empty"):
        mine, theirs = both(tool, target)
        assert (mine.code, theirs.code) == (2, 2)
    mine, theirs = both(tool, origin.bundle, "--key", "not-a-vkey")
    assert (mine.verdict, theirs.verdict) == ("USAGE", "USAGE")  # a typing slip
    name, kid, blob = origin.vkey.split("+", 2)
    other = keys.generate(name).verifier.vkey()
    mine, theirs = both(tool, origin.bundle, "--key", other)
    assert (mine.verdict, theirs.verdict) == ("TAMPERED", "TAMPERED")
    # base64 whose last symbol carries bits that decoding drops: not canonical
    bent = f"{name}+{kid}+{blob[:-1]}{B64[B64.index(blob[-1]) ^ 1]}"
    mine, theirs = both(tool, origin.bundle, "--key", bent)
    assert (mine.verdict, theirs.verdict) == ("USAGE", "USAGE")
    key_file = tmp_path / "sealer.vkey"
    key_file.write_text(origin.vkey + "\n")
    mine, theirs = both(tool, origin.bundle, "--key", str(key_file))
    assert (mine.verdict, theirs.verdict) == ("VERIFIED", "VERIFIED")


def test_the_copy_inside_the_bundle_runs_on_its_own(origin: Origin, tmp_path: Path) -> None:
    shipped = origin.bundle / bundle.TOOL
    assert shipped.read_bytes() == TOOL.read_bytes()
    listed = (origin.bundle / bundle.MANIFEST).read_text()
    digest = hashlib.sha256(shipped.read_bytes()).hexdigest()
    assert f"file {digest} {shipped.stat().st_size} {bundle.TOOL}\n" in listed
    assert (
        f"python3 BUNDLE_DIR/{bundle.TOOL} BUNDLE_DIR --key"
        in (origin.bundle / "VERIFY.txt").read_text()
    )
    # plain output: nothing on stdout, the checks, the verdict and the coverage on stderr
    proc = subprocess.run(
        [sys.executable, "-I", str(shipped), str(origin.bundle), "--key", origin.vkey],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0 and proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert [line.split()[:2] for line in lines[:10]] == [["ok", f"{i}."] for i in range(1, 11)]
    # packaged without a custodian key: the bundle says so, and the verifier passes it on
    assert lines[10].split(None, 2) == [
        "warn",
        "13.",
        "no custodian signed the export of this bundle (custody/export.json)",
    ]
    assert lines[11].startswith("VERIFIED 564 disclosed records and 1 SEAL leaves proven")


def test_package_refuses_a_manifest_over_the_limit(
    origin: Origin, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert origin.store is not None
    size = (origin.bundle / bundle.MANIFEST).stat().st_size
    monkeypatch.setattr(bundle, "MANIFEST_LIMIT", size - 1)
    with pytest.raises(UsageError, match="manifest of 564 records would exceed"):
        bundle.package(origin.store, origin.signer, "INC-9", WINDOW, tmp_path / "b")
    assert not (tmp_path / "b").exists()


def test_the_runner_cannot_import_acdkit(tmp_path: Path) -> None:
    probe = tmp_path / "probe.py"
    probe.write_text("import acdkit\n")
    proc = subprocess.run(
        [sys.executable, "-I", "-c", RUNNER, str(probe)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 1 and "ModuleNotFoundError" in proc.stderr


def test_the_tool_imports_the_standard_library_and_cryptography_only() -> None:
    tree = ast.parse(TOOL.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0 and node.module is not None
            names.add(node.module.split(".")[0])
    assert "cryptography" in names
    assert names - {"cryptography"} <= set(sys.stdlib_module_names) | {"__future__"}


def test_embedded_schemas_match_the_yaml_files() -> None:
    for table in ("net", "dns", "edr"):
        doc = yaml.safe_load((REPO / f"schemas/{table}.v1.yaml").read_text())
        assert doc["version"] == 1
        expected = {f["id"]: (f["name"], f["type"]) for f in doc["fields"]}
        assert iv.SCHEMAS[table] == expected


# -- the spec's known-answer vectors, through the independent verifier's own functions ----------


def spec_roots() -> dict[int, bytes]:
    """The RFC 6962 roots of docs/evidence-format.md §11, read from the document itself."""
    text = (REPO / "docs/evidence-format.md").read_text()
    block = text.split("roots of the first 1…8 leaves", 1)[1].split("```", 2)[1]
    return {
        int(n): bytes.fromhex(h) for n, h in (line.split() for line in block.split("\n") if line)
    }


RFC6962_LEAVES = [
    bytes.fromhex(h)
    for h in (
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    )
]


def naive_path(leaves: list[bytes], index: int) -> list[bytes]:
    """RFC 6962 §2.1.1 PATH(m, D[n]), straight from its recursive definition."""

    def mth(d: list[bytes]) -> bytes:
        if len(d) == 1:
            return hashlib.sha256(b"\x00" + d[0]).digest()
        k = 1 << ((len(d) - 1).bit_length() - 1)
        return hashlib.sha256(b"\x01" + mth(d[:k]) + mth(d[k:])).digest()

    if len(leaves) == 1:
        return []
    k = 1 << ((len(leaves) - 1).bit_length() - 1)
    if index < k:
        return [*naive_path(leaves[:k], index), mth(leaves[k:])]
    return [*naive_path(leaves[k:], index - k), mth(leaves[:k])]


def test_rfc6962_vectors_of_the_spec() -> None:
    roots = spec_roots()
    assert sorted(roots) == list(range(1, 9))
    for n, root in roots.items():
        for m in range(n):
            path = naive_path(RFC6962_LEAVES[:n], m)
            assert iv.root_from_path(m, n, iv.leaf_hash(RFC6962_LEAVES[m]), path) == root
            assert iv.root_from_path(m, n, iv.leaf_hash(RFC6962_LEAVES[m]), [*path, root]) is None
            if path:
                assert iv.root_from_path(m, n, iv.leaf_hash(RFC6962_LEAVES[m]), path[:-1]) is None
        assert iv.root_from_path(n, n, iv.leaf_hash(b""), naive_path(RFC6962_LEAVES[:n], 0)) is None


def test_acdkit_vectors_of_the_spec() -> None:
    v = json.loads((REPO / "docs/evidence-vectors.json").read_text())
    key = iv.parse_vkey(v["vkey"])
    assert key.key_id.hex() == v["key_id_hex"]
    entries = []
    for item in v["records"]:
        data = bytes.fromhex(item["entry_hex"])
        entry = iv.parse_entry(data)
        assert (entry.kind, entry.salt.hex()) == (iv.RECORD, item["salt_hex"])
        assert entry.body.hex() == item["canonical_body_hex"]
        assert iv.decode_record(entry.body) == (item["table"], item["record"])
        assert iv.leaf_hash(data).hex() == item["leaf_hash_hex"]
        entries.append(data)
    seal_entry = bytes.fromhex(v["seal"]["entry_hex"])
    assert iv.leaf_hash(seal_entry).hex() == v["seal"]["leaf_hash_hex"]
    info = iv.decode_seal(iv.parse_entry(seal_entry).body)
    assert (info.origin, info.first, info.end) == (key.name, 0, 3)
    assert info.ts_min <= v["records"][0]["record"]["ts_utc"] <= info.ts_max

    note_bytes = v["checkpoint_note"].encode()
    assert iv.sha256(note_bytes).hex() == v["checkpoint_sha256_hex"]
    note = iv.parse_note(note_bytes, iv.NOTE_LIMIT, "checkpoint")
    iv.check_signed(note, key, "checkpoint")
    cp = iv.parse_checkpoint(note)
    assert (cp.origin, cp.size, cp.root.hex()) == (key.name, 3, v["tree"]["root_hex"])

    proof = iv.parse_proof(v["tlog_proof_of_index_1"].encode())
    assert (proof.index, proof.extra, proof.checkpoint) == (1, entries[1], note_bytes)
    assert iv.root_from_path(1, 3, iv.leaf_hash(entries[1]), proof.hashes) == cp.root
    leaves = [iv.leaf_hash(e) for e in [*entries, seal_entry]]
    # the other two leaves of the size-3 tree: their paths follow from the three leaf hashes
    assert iv.root_from_path(0, 3, leaves[0], [leaves[1], leaves[2]]) == cp.root
    assert iv.root_from_path(2, 3, leaves[2], [iv.node_hash(leaves[0], leaves[1])]) == cp.root


# -- the key chain: rotations and revocations proven in the bundle (spec §7.1) ------------------


@dataclass(frozen=True)
class Keys:
    first: keys.Signer
    new: keys.Signer
    third: keys.Signer


@pytest.fixture(scope="module")
def chain_keys(origin: Origin) -> Keys:
    return Keys(origin.signer, *(keys.generate(origin.signer.name) for _ in range(2)))


def key_entry(
    k: Keys, action: str, current: keys.Signer, subject: keys.Verifier, incoming: Any = None
) -> bytes:
    body = key_event_body(k.first.name, action, current, subject, 1_700_000_000, incoming)
    return entry(EntryType.KEY, body)


def rotate(k: Keys) -> bytes:
    return key_entry(k, ROTATE, k.first, k.new.verifier, k.new)


KEYED: dict[str, tuple[Callable[[Keys], dict[str, Any]], str]] = {
    "rotated": (lambda k: {"key_entries": [rotate(k)], "manifest_signer": k.new}, "VERIFIED"),
    "rotated-checkpoint-by-new-key": (
        lambda k: {
            "key_entries": [rotate(k)],
            "manifest_signer": k.new,
            "checkpoint_signer": k.new,
        },
        "VERIFIED",
    ),
    "rotated-manifest-by-old-key": (lambda k: {"key_entries": [rotate(k)]}, "TAMPERED"),
    "rotation-signed-by-the-new-key-only": (
        lambda k: {
            "key_entries": [key_entry(k, ROTATE, k.new, k.new.verifier, k.new)],
            "manifest_signer": k.new,
        },
        "TAMPERED",
    ),
    "rotation-without-the-incoming-signature": (
        lambda k: {
            "key_entries": [rotate(k)[:-64] + bytes(64)],
            "manifest_signer": k.new,
        },
        "TAMPERED",
    ),
    "rotation-back-to-the-first-key": (
        lambda k: {
            "key_entries": [rotate(k), key_entry(k, ROTATE, k.new, k.first.verifier, k.first)],
        },
        "TAMPERED",
    ),
    "rotation-to-another-logs-key": (
        lambda k: (
            lambda other: {
                "key_entries": [key_entry(k, ROTATE, k.first, other.verifier, other)],
                "manifest_signer": other,
            }
        )(keys.generate("acdkit/other/log")),
        "TAMPERED",
    ),
    "current-key-revokes-itself": (
        lambda k: {"key_entries": [key_entry(k, REVOKE, k.first, k.first.verifier)]},
        "TAMPERED",
    ),
    "revoked-key-signs-the-checkpoint": (
        # the chain keeps a revoked key among those that may sign the bundle's checkpoint
        lambda k: {
            "key_entries": [rotate(k), key_entry(k, REVOKE, k.new, k.first.verifier)],
            "manifest_signer": k.new,
        },
        "VERIFIED",
    ),
    "key-entry-with-an-unknown-field": (
        lambda k: {
            "key_entries": [rotate(k) + tlv(9, TlvType.U64, bytes(8))],
            "manifest_signer": k.new,
        },
        "MALFORMED",
    ),
    "key-entry-vkey-with-a-blank": (
        lambda k: {
            "key_entries": [with_field(rotate(k), 3, None, k.new.verifier.vkey().encode() + b" ")],
            "manifest_signer": k.new,
        },
        "MALFORMED",
    ),
    "rotations-proof-holds-a-gap-entry": (
        lambda k: {"key_entries": [entry(EntryType.GAP, tlv(1, TlvType.U64, bytes(8)))]},
        "MALFORMED",
    ),
}


@pytest.mark.parametrize("name", list(KEYED))
def test_both_verifiers_agree_on_key_chains(
    name: str, origin: Origin, chain_keys: Keys, tool: Path, tmp_path: Path
) -> None:
    make, verdict = KEYED[name]
    forge(origin.bundle, tmp_path / "forged", origin, **make(chain_keys))
    for pin in (chain_keys.first.verifier.vkey(), None):
        mine, theirs = both(tool, tmp_path / "forged", *(["--key", pin] if pin else []))
        assert (mine.verdict, mine.code) == (verdict, CODES[verdict]), mine
        assert (theirs.verdict, theirs.code) == (verdict, CODES[verdict]), theirs


def test_a_pinned_key_must_be_in_the_chain(
    origin: Origin, chain_keys: Keys, tool: Path, tmp_path: Path
) -> None:
    k = chain_keys
    forge(origin.bundle, tmp_path / "f", origin, key_entries=[rotate(k)], manifest_signer=k.new)
    for pin, verdict in ((k.new, "VERIFIED"), (k.third, "TAMPERED")):
        mine, theirs = both(tool, tmp_path / "f", "--key", pin.verifier.vkey())
        assert (mine.verdict, theirs.verdict) == (verdict, verdict)
    # without key/sealer.vkey the chain starts at the pinned key
    (tmp_path / "f/key/sealer.vkey").unlink()
    resign(tmp_path / "f", k.new)
    mine, theirs = both(tool, tmp_path / "f", "--key", k.first.verifier.vkey())
    assert (mine.verdict, theirs.verdict) == ("VERIFIED", "VERIFIED")
    mine, theirs = both(tool, tmp_path / "f")
    assert (mine.verdict, theirs.verdict) == ("MALFORMED", "MALFORMED")


def test_a_real_rotation_in_a_store(origin: Origin, tool: Path, tmp_path: Path) -> None:
    st, key = init_store(tmp_path / "store", tmp_path / "keys/first.key", "test-org")
    first = keys.load_signer(key)
    ingest.ingest(st, [DATA / "zeek-tsv/zat/dns.log"])
    seal.seal(st, first)
    new = keys.generate(st.origin)
    rotation.rotate(st, first, new)
    ingest.ingest(st, [DATA / "zeek-tsv/zat/conn.log"])
    seal.seal(st, new)
    out = tmp_path / "bundle"
    bundle.package(st, new, "INC-8", WINDOW, out)
    assert len(list((out / bundle.ROTATIONS).iterdir())) == 1
    for pin in (first, new):
        mine, theirs = both(tool, out, "--key", pin.verifier.vkey())
        assert (mine.verdict, theirs.verdict) == ("VERIFIED", "VERIFIED")
    assert "after 1 key rotations" in json.dumps(iv.verify_bundle(str(out)).checks)


def test_expect_min_size(origin: Origin, tool: Path) -> None:
    size = manifest_head(origin.bundle)[2]
    for n, verdict in ((size, "VERIFIED"), (size + 1, "TAMPERED")):
        mine, theirs = both(tool, origin.bundle, "--expect-min-size", str(n))
        assert (mine.verdict, theirs.verdict) == (verdict, verdict)
    mine = run_independent(tool, origin.bundle, "--expect-min-size", "-1")
    assert mine.code == 2
    for option in ("--expect-min-size", "--witness-quorum"):  # each named, not another
        done = subprocess.run(
            [sys.executable, str(tool), str(origin.bundle), option, "abc"],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        said = f"error: argument {option}: N 'abc' is not a decimal below 2^63"
        assert done.returncode == 2 and done.stderr.endswith(said + "\n"), done.stderr


@pytest.mark.parametrize("option", ["--key", "--root", "--custodian", "--witness"])
def test_a_key_option_naming_no_file_says_so_in_both_verifiers(
    origin: Origin, tool: Path, tmp_path: Path, option: str
) -> None:
    # a mistyped path was answered as a key that does not parse ("key ID is not 8 hex digits")
    missing, folder = tmp_path / "keys/root.vkey", tmp_path
    for value, said in ((missing, "no such file"), (folder, "a directory")):
        mine, theirs = both(tool, origin.bundle, option, str(value))
        assert (mine.code, theirs.code) == (2, 2)
        assert said in mine.message and said in theirs.message, (mine, theirs)
    # a vkey line (it has '+') is still parsed as one, and its fault named
    mine, theirs = both(tool, origin.bundle, option, "name+1234+AQ==")
    assert (mine.code, theirs.code) == (2, 2)
    assert "no such file" not in mine.message + theirs.message


# -- differential fuzzing: random damage, with and without a fresh signature --------------------


def _mutate(data: bytes, rnd: random.Random) -> bytes:
    op = rnd.choice(("byte", "bit", "cut", "insert", "delete", "dup", "swap", "crlf", "drop"))
    if not data:
        return b"x"
    i = rnd.randrange(len(data))
    if op in ("byte", "bit", "cut", "insert", "delete", "crlf"):
        return {
            "byte": lambda: data[:i] + bytes([rnd.randrange(256)]) + data[i + 1 :],
            "bit": lambda: data[:i] + bytes([data[i] ^ (1 << rnd.randrange(8))]) + data[i + 1 :],
            "cut": lambda: data[:i],
            "insert": lambda: data[:i] + bytes([rnd.choice(b"\n \x00=+/A0-\xe2\xc3")]) + data[i:],
            "delete": lambda: data[:i] + data[i + 1 :],
            "crlf": lambda: data.replace(b"\n", b"\r\n", 1),
        }[op]()
    lines = data.split(b"\n")
    j, k = rnd.randrange(len(lines)), rnd.randrange(len(lines))
    if op == "dup":
        lines.insert(j, lines[k])
    elif op == "swap":
        lines[j], lines[k] = lines[k], lines[j]
    else:
        del lines[j]
    return b"\n".join(lines)


def test_random_damage_gets_the_same_verdict(
    origin: Origin, chain_keys: Keys, tmp_path: Path
) -> None:
    # a small log with a rotation and a revocation, so the key chain is damaged too
    k = chain_keys
    logged = [rotate(k), key_entry(k, REVOKE, k.new, k.third.verifier)]
    forge(origin.bundle, tmp_path / "good", origin, key_entries=logged, manifest_signer=k.new)
    pins = (keys.Verifier.parse(origin.vkey), iv.parse_vkey(origin.vkey))
    rnd, seen = random.Random(20240607), set()
    for _ in range(300):
        work = tmp_path / "work"
        shutil.rmtree(work, ignore_errors=True)
        shutil.copytree(tmp_path / "good", work)
        kinds = ("", ".note", ".vkey", ".txt", ".checkpoint", ".tlog-proof")
        files = sorted(p for p in work.rglob("*") if p.is_file() and p.suffix in kinds)
        targets = [rnd.choice(files) for _ in range(rnd.choice((1, 1, 2)))]
        for target in targets:
            target.write_bytes(_mutate(target.read_bytes(), rnd))
        if rnd.random() < 0.8 and work / bundle.MANIFEST not in targets:
            resign(work, k.new)
        pin = rnd.random() < 0.7
        theirs = verify.verify_path(work, pins[0] if pin else None, require_outside=False)
        mine = iv.verify_bundle(str(work), pins[1] if pin else None)
        assert mine.code == int(theirs.verdict), (mine.failure, theirs.failure)
        seen.add(mine.code)
    assert {0, 1, 4} <= seen  # some damage is harmless (VERIFY.txt edited, then signed)


# -- trust policy and witness cosignatures in the bundle (spec §7.2, §8.1, checks 8 and 9) ------


@dataclass(frozen=True)
class Witnessed:
    bundle: Path
    signer: keys.Signer
    root: keys.Signer
    w1: keys.WitnessSigner
    w2: keys.WitnessSigner


def witness_key(name: str) -> keys.WitnessSigner:
    return keys.WitnessSigner(name, Ed25519PrivateKey.generate())


@pytest.fixture(scope="module")
def witnessed(tmp_path_factory: pytest.TempPathFactory) -> Witnessed:
    """A store whose trust policy names two witnesses, quorum 1; the first one cosigned."""
    base = tmp_path_factory.mktemp("witnessed")
    st, key = init_store(base / "store", base / "keys/sealer.key", "test-org")
    signer, root = keys.load_signer(key), keys.generate("test-org.example/root")
    w1, w2 = witness_key("witness.example/w1"), witness_key("witness.example/w2")
    ingest.ingest(st, [DATA / "zeek-tsv/zat/dns.log"])
    seal.seal(st, signer)
    windows = [policy.SealerWindow(signer.verifier)]
    witnesses = [w1.verifier.vkey(), w2.verifier.vkey()]
    issued = 1_764_547_200 * 10**9
    policy.write_policy(st, policy.Policy(st.origin, 1, issued, windows, witnesses, 1), root)
    witness.witness_store(st, w1, base / "w1.state.json", int(time.time()))
    bundle.package(st, signer, "INC-9", WINDOW, base / "bundle")
    return Witnessed(base / "bundle", signer, root, w1, w2)


def _alter_cosignature(root: Path, w: Witnessed) -> None:
    path = next((root / "cosignatures").iterdir())
    lines = path.read_text().split("\n")
    at = next(i for i, line in enumerate(lines) if w.w1.name in line)
    name, blob = lines[at].rsplit(" ", 1)
    lines[at] = f"{name} {flip_b64(blob.encode(), 70).decode()}"
    path.write_text("\n".join(lines))
    resign(root, w.signer)


def _cosignature_of_another_checkpoint(root: Path, w: Witnessed) -> None:
    path = next((root / "cosignatures").iterdir())
    lines = path.read_text().split("\n")
    lines[1] = str(int(lines[1]) + 1)
    path.write_text("\n".join(lines))
    resign(root, w.signer)


def _policy_edited(root: Path, w: Witnessed) -> None:
    path = next((root / "policy").iterdir())
    path.write_text(path.read_text().replace("grace 300", "grace 301"))
    resign(root, w.signer)


def _policy_removed(root: Path, w: Witnessed) -> None:
    shutil.rmtree(root / "policy")
    resign(root, w.signer)


def _policy_without_root_key(root: Path, w: Witnessed) -> None:
    (root / "key/root.vkey").unlink()
    resign(root, w.signer)


def _policy_without_the_sealer(root: Path, w: Witnessed) -> None:
    path = next((root / "policy").iterdir())
    other = keys.generate(w.signer.name).verifier
    pol = policy.Policy(
        w.signer.name, 1, 1_764_547_200 * 10**9, [policy.SealerWindow(other)], [], 0
    )
    path.write_bytes(sign_note(pol.text(), w.root).encode())
    resign(root, w.signer)


def _policy_witness_with_two_spaces(root: Path, w: Witnessed) -> None:
    path = next((root / "policy").iterdir())
    text = path.read_text().split("\n\n")[0].replace("witness ", "witness  ", 1) + "\n"
    path.write_bytes(sign_note(text, w.root).encode())
    resign(root, w.signer)


def _cosignatures_dropped(root: Path, w: Witnessed) -> None:
    shutil.rmtree(root / "cosignatures")
    resign(root, w.signer)


WITNESSED: dict[str, tuple[Callable[[Path, Witnessed], None] | None, str, str]] = {
    # name: (damage, verdict, options: w1 / w1+w2 quorum 2 / root / root-other / none)
    "policy-witnesses": (None, "VERIFIED", ""),
    "policy-root-pinned": (None, "VERIFIED", "root"),
    "witness-given": (None, "VERIFIED", "w1"),
    "quorum-not-met": (None, "INCOMPLETE", "w1w2"),
    "quorum-not-met-allowed": (None, "VERIFIED", "w1w2-allow"),
    "another-root-pinned": (None, "TAMPERED", "root-other"),
    "cosignature-altered": (_alter_cosignature, "TAMPERED", ""),
    "cosignature-of-another-checkpoint": (_cosignature_of_another_checkpoint, "MALFORMED", ""),
    "cosignatures-dropped": (_cosignatures_dropped, "INCOMPLETE", ""),
    "policy-edited": (_policy_edited, "TAMPERED", ""),
    "policy-stripped-under-pinned-root": (_policy_removed, "TAMPERED", "root"),
    "policy-without-root-key": (_policy_without_root_key, "MALFORMED", ""),
    "policy-without-the-sealer": (_policy_without_the_sealer, "TAMPERED", ""),
    "policy-witness-with-two-spaces": (_policy_witness_with_two_spaces, "MALFORMED", ""),
}


@pytest.mark.parametrize("name", list(WITNESSED))
def test_both_verifiers_agree_on_policies_and_witnesses(
    name: str, witnessed: Witnessed, tool: Path, tmp_path: Path
) -> None:
    damage, verdict, how = WITNESSED[name]
    work = tmp_path / "bundle"
    shutil.copytree(witnessed.bundle, work)
    if damage is not None:
        damage(work, witnessed)
    w1, w2 = witnessed.w1.verifier.vkey(), witnessed.w2.verifier.vkey()
    args = {
        "": [],
        "root": ["--root", witnessed.root.verifier.vkey()],
        "root-other": ["--root", keys.generate("test-org.example/root").verifier.vkey()],
        "w1": ["--witness", w1],
        "w1w2": ["--witness", w1, "--witness", w2, "--witness-quorum", "2"],
        "w1w2-allow": [
            "--witness",
            w1,
            "--witness",
            w2,
            "--witness-quorum",
            "2",
            "--allow-incomplete",
        ],
    }[how]
    mine, theirs = both(tool, work, *args)
    assert (mine.verdict, mine.code) == (verdict, CODES[verdict]), mine
    assert (theirs.verdict, theirs.code) == (verdict, CODES[verdict]), theirs
    if verdict == "VERIFIED" and how != "w1w2-allow":
        assert "witnessed by 1 of" in mine.coverage and "witnessed by 1 of" in theirs.coverage


def test_a_sealer_key_is_no_witness_key(witnessed: Witnessed, tool: Path) -> None:
    sealer = witnessed.signer.verifier.vkey()
    mine, theirs = both(tool, witnessed.bundle, "--witness", sealer)
    assert (mine.verdict, theirs.verdict) == ("USAGE", "USAGE")
    mine, theirs = both(tool, witnessed.bundle, "--witness-quorum", "1")
    assert (mine.code, theirs.code) == (2, 2)


# -- RFC 3161 anchors (check 10): proven leaves only, the rest is INCOMPLETE --------------------


def test_anchors_are_incomplete_for_the_independent_verifier(
    tool: Path, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    from acdkit import anchor
    from acdkit import tsa as tsa_mod
    from acdkit.anchorcheck import AnchorTrust
    from tsa import LocalCa, LocalTsa

    pki = tmp_path_factory.mktemp("pki")
    ca = LocalCa.create(pki, "ca-a")
    server = LocalTsa(pki / "tsas", ca, "tsa-a")
    try:
        st, key = init_store(tmp_path / "store", tmp_path / "keys/sealer.key", "test-org")
        signer = keys.load_signer(key)
        ingest.ingest(st, [DATA / "zeek-tsv/zat/dns.log"])
        seal.seal(st, signer)
        trust = tsa_mod.TsaTrust("tsa-a", tsa_mod.load_roots(ca.pem), None)
        endpoint = tsa_mod.TsaEndpoint("tsa-a", server.url)
        anchor.anchor_store(st, [endpoint], {"tsa-a": trust}, timeout=5)
        seal.seal(st, signer)  # the ANCHOR leaf of checkpoint 55, and a SEAL
    finally:
        server.close()
    out = tmp_path / "bundle"
    bundle.package(st, signer, "INC-A", WINDOW, out)
    assert (out / "anchors/00000000000000000055.tlog-proof").is_file()
    mine, theirs = both(tool, out, "--key", signer.verifier.vkey())
    # acdkit without TSA roots and the independent verifier (which has no CMS) both decline
    assert (mine.verdict, theirs.verdict) == ("INCOMPLETE", "INCOMPLETE")
    assert "anchors not verified: 1 ANCHOR leaves (proven), 1 RFC 3161 tokens" in mine.message
    pinned = keys.Verifier.parse(signer.verifier.vkey())
    with_roots = verify.verify_path(
        out, pinned, anchors=AnchorTrust({"tsa-a": trust}), require_outside=False
    )
    assert with_roots.verdict == ExitCode.OK  # only acdkit can go further
    # the ANCHOR leaf's proof is checked all the same
    edit_proof(
        out / "anchors/00000000000000000055.tlog-proof",
        lambda lines: lines.__setitem__(3, flip_b64(lines[3], 0)),
    )
    resign(out, signer)
    mine, theirs = both(tool, out, "--key", signer.verifier.vkey())
    assert (mine.verdict, theirs.verdict) == ("TAMPERED", "TAMPERED")
