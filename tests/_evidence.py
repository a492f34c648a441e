"""Small real stores and bundles for the adversarial suites, and the helpers that mutate them.

Everything is built from the MIT sample logs in tests/data by the real ingest, seal and
package code, so every byte a test flips was written by acdkit itself.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from acdkit import bundle, ingest, keys, seal
from acdkit.cli import app
from acdkit.note import sign_note
from acdkit.sealinfo import SealInfo
from acdkit.store import Store, init_store

DATA = Path(__file__).parent / "data"

# two segments of one table each: 5 net records from two files, then 1 dns record
TINY_SEGMENTS = (
    ("zeek-tsv/zat/conn_date_issue.log", "zeek-json/otrf-apt29/SCRANTON_ssl.log"),
    ("zeek-json/otrf-apt29/UTICA-C_dns.log",),
)
# every record of the tiny store lies in this window
TINY_WINDOW = bundle.Window(
    bundle.parse_time("2020-01-01T00:00:00Z"), bundle.parse_time("2023-01-01T00:00:00Z")
)


def build_store(
    root: Path, key_path: Path, segments: tuple[tuple[str, ...], ...], org: str = "tamper-test"
) -> tuple[Store, keys.Signer]:
    """A store sealed from real sample files, one `seal` per group of files."""
    store, _ = init_store(root, key_path, org)
    signer = keys.load_signer(key_path)
    for files in segments:
        report = ingest.ingest(store, [DATA / f for f in files])
        assert not [f.error for f in report.files if f.error]
        seal.seal(store, signer)
    return store, signer


def copy_store(template: Store, dest: Path) -> Store:
    shutil.copytree(template.root, dest, symlinks=True)
    return Store(dest)


def roll_back(store: Store, saved_state: bytes, *, ledger: bool = True) -> None:
    """What an intruder without the key does: drop the newest segment and its checkpoint,
    restore the sealer state, and (unless ``ledger`` is False) delete the ledger entries of
    the files that segment sealed, so that nothing inside the store shows the loss."""
    newest = store.segment_dirs()[-1]
    sources = SealInfo.from_entry((newest / "seal.entry").read_bytes()).sources
    shutil.rmtree(newest)
    store.checkpoint_files()[-1].unlink()
    store.state_path.write_bytes(saved_state)
    if ledger:
        for source in sources:
            (store.ledger_dir / f"{source}.json").unlink()


def flip(data: bytes, bit: int) -> bytes:
    """``data`` with bit ``bit`` inverted (bit 0 is the most significant bit of byte 0)."""
    out = bytearray(data)
    out[bit // 8] ^= 0x80 >> (bit % 8)
    return bytes(out)


def resign_manifest(root: Path, signer: keys.Signer) -> None:
    """A fresh manifest over the bundle as it now is: what a holder of the key can do."""
    old = (root / bundle.MANIFEST).read_text().split("\n")
    incident = old[1].removeprefix("incident ")
    size = int(old[3].removeprefix("checkpoint "))
    (root / bundle.MANIFEST).unlink()
    text = bundle._manifest_text(incident, signer.name, size, root)
    (root / bundle.MANIFEST).write_bytes(sign_note(text, signer).encode())


def cli_verify(target: Path, *extra: str, local_only: bool = True) -> tuple[int, dict[str, Any]]:
    """`acdkit verify TARGET --json` through the real CLI: exit code and its JSON report.

    ``local_only`` (the default here: these tests judge the store's own integrity) accepts
    a store that nothing outside commits to; rollback tests turn it off."""
    flags = ["--local-only"] if local_only else []
    result = CliRunner().invoke(app, ["verify", str(target), "--json", *flags, *extra])
    assert result.stdout, result.stderr
    return result.exit_code, json.loads(result.stdout)


def forge_bundle(root: Path, entries: dict[int, bytes], forger: keys.Signer) -> None:
    """Rebuild a bundle around other entry bytes, as someone holding a key of their own
    could: a new tree with every proven entry (``entries`` replacing some) at its index,
    a checkpoint and manifest signed by ``forger``, whose vkey replaces the bundle's."""
    from acdkit.merkle import TreeLevels, leaf_hash
    from acdkit.note import Checkpoint
    from acdkit.proof import TlogProof

    proofs = sorted(p for d in ("proofs", "seals") for p in (root / d).glob("*.tlog-proof"))
    proven = {}
    for path in proofs:
        proof = TlogProof.parse(path.read_bytes())
        proven[proof.index] = proof.extra or b""
    proven.update(entries)
    size = int(next((root / "checkpoint").iterdir()).name.split(".")[0])
    leaves = [
        leaf_hash(proven[i]) if i in proven else leaf_hash(i.to_bytes(8, "big"))
        for i in range(size)
    ]
    tree = TreeLevels(leaves)
    note = sign_note(Checkpoint(forger.name, size, tree.root()).text(), forger).encode()
    for path in proofs:
        index = int(path.name.split(".")[0])
        path.write_bytes(TlogProof(index, tuple(tree.proof(index)), note, proven[index]).encode())
    next((root / "checkpoint").iterdir()).write_bytes(note)
    (root / "key/sealer.vkey").write_text(forger.verifier.vkey() + "\n")
    resign_manifest(root, forger)


def reprove_bundle(root: Path, entries: dict[int, bytes], signer: keys.Signer) -> None:
    """Re-prove every leaf of a bundle around other entry bytes, as an insider holding the
    sealer key could: a new tree (``entries`` replacing some proven entries, the leaves the
    bundle does not prove made up), its checkpoint signed by ``signer`` (the log's own key),
    every proof rewritten against it, and the manifest signed again."""
    from acdkit.merkle import TreeLevels, leaf_hash
    from acdkit.note import Checkpoint
    from acdkit.proof import TlogProof

    proofs = sorted(root.glob("**/*.tlog-proof"))
    proven = {}
    for path in proofs:
        proof = TlogProof.parse(path.read_bytes())
        proven[proof.index] = proof.extra or b""
    proven.update(entries)
    (cp_path,) = (root / "checkpoint").glob("*.checkpoint")
    size = int(cp_path.name.split(".")[0])
    leaves = [
        leaf_hash(proven[i]) if i in proven else leaf_hash(i.to_bytes(8, "big"))
        for i in range(size)
    ]
    tree = TreeLevels(leaves)
    note = sign_note(Checkpoint(signer.name, size, tree.root()).text(), signer).encode()
    for path in proofs:
        index = int(path.name.split(".")[0])
        path.write_bytes(TlogProof(index, tuple(tree.proof(index)), note, proven[index]).encode())
    cp_path.write_bytes(note)
    resign_manifest(root, signer)
