"""The evidence store on disk: layout, creation, locking and crash-safe file writes.

Layout (docs/evidence-format.md §8)::

    STORE/acdkit-store.json          format, origin, log id, creation time
    STORE/keys/sealer.vkey           public verifier key of the sealer (C2SP vkey)
    STORE/staging/<ns20>-<sha256>/   one ingested file not yet sealed (ledger.json + Parquet)
    STORE/ledger/<sha256>.json       source ledger of sealed files
    STORE/rejects/<sha256>.parquet   rejected lines (line, reason) of each source file
    STORE/segments/<start20>-<end20>/  sealed records, seal.entry, segment.key (0600)
    STORE/checkpoints/<size20>.checkpoint  signed checkpoints, written once
    STORE/state/sealer.json          the sealer's compact range (derivable, kept for speed)

Every directory or file appears by an atomic rename of a finished temporary one, so a crash
leaves either the old state or the new one; temporary names start with ``.tmp-``.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from acdkit._files import KIB, MIB, read_json, read_text
from acdkit._pool import held_fds
from acdkit.errors import InputIOError, MalformedError, UsageError
from acdkit.keys import Verifier

__all__ = ["STORE_FORMAT", "Store", "atomic_write", "fsync_dir"]

STORE_FORMAT = "acdkit-store/1"
TMP_PREFIX = ".tmp-"


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Write ``data`` to ``path`` through a temporary file, fsync, rename."""
    tmp = path.with_name(f"{TMP_PREFIX}{uuid.uuid4().hex}-{path.name}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def write_json(path: Path, doc: Any) -> None:
    atomic_write(path, (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode())


@dataclass(frozen=True)
class Store:
    root: Path

    # -- layout ---------------------------------------------------------------------------
    @property
    def meta_path(self) -> Path:
        return self.root / "acdkit-store.json"

    @property
    def vkey_path(self) -> Path:
        return self.root / "keys" / "sealer.vkey"

    @property
    def staging(self) -> Path:
        return self.root / "staging"

    @property
    def ledger_dir(self) -> Path:
        return self.root / "ledger"

    @property
    def rejects_dir(self) -> Path:
        return self.root / "rejects"

    @property
    def segments(self) -> Path:
        return self.root / "segments"

    @property
    def pending(self) -> Path:
        """Log entries queued for the next seal (acdkit.logentries)."""
        return self.root / "pending"

    @property
    def anchors(self) -> Path:
        """RFC 3161 token copies and queued anchor requests (acdkit.anchor)."""
        return self.root / "anchors"

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    @property
    def state_path(self) -> Path:
        return self.root / "state" / "sealer.json"

    # -- life cycle -----------------------------------------------------------------------
    @classmethod
    def create(cls, root: Path, origin: str, verifier: Verifier, log_id: str) -> Store:
        if root.exists() and any(root.iterdir()):
            raise UsageError(f"{root} exists and is not empty; choose a new store directory")
        store = cls(root)
        for sub in ("keys", "staging", "ledger", "rejects", "segments", "checkpoints", "state"):
            (root / sub).mkdir(parents=True, exist_ok=True)
        atomic_write(store.vkey_path, (verifier.vkey() + "\n").encode())
        write_json(
            store.meta_path,
            {
                "format": STORE_FORMAT,
                "origin": origin,
                "log_id": log_id,
                "created_utc": datetime.now(UTC).isoformat(timespec="seconds"),
            },
        )
        return store

    @classmethod
    def open(cls, root: Path) -> Store:
        store = cls(root)
        if not store.meta_path.is_file():
            raise UsageError(
                f"{root} is not an acdkit store (no acdkit-store.json)",
                hint="create one with `acdkit init STORE`",
            )
        return store

    def meta(self) -> dict[str, Any]:
        doc = read_json(self.meta_path, MIB, "store metadata")
        if not isinstance(doc, dict) or doc.get("format") != STORE_FORMAT:
            raise UsageError(f"{self.root} has an unknown store format")
        for key in ("origin", "log_id"):
            if not isinstance(doc.get(key), str):
                raise MalformedError(f"store metadata {self.meta_path} has no {key}")
        return doc

    @property
    def origin(self) -> str:
        return str(self.meta()["origin"])

    def verifier(self) -> Verifier:
        if not self.vkey_path.is_file():
            raise MalformedError(
                f"the store's public key {self.vkey_path.name} is missing",
                hint="restore keys/sealer.vkey from a copy kept elsewhere",
            )
        return Verifier.parse(read_text(self.vkey_path, 64 * KIB, "store public key"))

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Exclusive writer lock; a second writer fails at once instead of interleaving."""
        fd = os.open(self.root / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise InputIOError(
                    f"another acdkit process is writing to {self.root}",
                    hint="wait for it to finish and run again",
                ) from None
            held_fds.add(fd)  # forked workers close their copy (acdkit._pool)
            yield
        finally:
            held_fds.discard(fd)
            os.close(fd)

    @contextlib.contextmanager
    def decisions_lock(self, wait_s: float = 30.0) -> Iterator[None]:
        """Serializes logging decisions: checking an incident's state and queueing the next
        decision must not interleave with another process doing the same (two `incident
        open` of one ID both passed the check).  Short, so a second process waits for it,
        up to ``wait_s``; it is apart from the writer lock, which a long ingest holds."""
        fd = os.open(self.root / ".decisions.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            deadline = time.monotonic() + wait_s
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        raise InputIOError(
                            f"another acdkit process has been logging a decision to "
                            f"{self.root} for {wait_s:g} s",
                            hint="wait for it to finish and run again",
                        ) from None
                    time.sleep(0.02)
            held_fds.add(fd)
            yield
        finally:
            held_fds.discard(fd)
            os.close(fd)

    def clean_temporaries(self) -> None:
        """Remove what a killed run left half written (only ever .tmp- names)."""
        for parent in (
            self.staging,
            self.segments,
            self.checkpoints,
            self.pending,
            self.anchors,
            self.ledger_dir,
            self.rejects_dir,
            self.state_path.parent,
        ):
            if not parent.is_dir():
                continue
            for item in parent.iterdir():
                if item.name.startswith(TMP_PREFIX):
                    if item.is_dir():
                        shutil.rmtree(item)
                    else:
                        item.unlink()

    def new_temp_dir(self, parent: Path) -> Path:
        path = parent / f"{TMP_PREFIX}{uuid.uuid4().hex}"
        path.mkdir(mode=0o700)
        return path

    # -- ledger ---------------------------------------------------------------------------
    def staged_dirs(self) -> list[Path]:
        if not self.staging.is_dir():
            return []
        return sorted(
            p for p in self.staging.iterdir() if p.is_dir() and not p.name.startswith(TMP_PREFIX)
        )

    def ledger_entry(self, sha256: str) -> dict[str, Any] | None:
        """The ledger entry of a source file, sealed or still staged; None if never seen."""
        sealed = self.ledger_dir / f"{sha256}.json"
        if sealed.is_file():
            return read_ledger_entry(sealed)
        for staged in self.staged_dirs():
            if staged.name.endswith(sha256):
                return read_ledger_entry(staged / "ledger.json")
        return None

    def ledger(self) -> list[dict[str, Any]]:
        entries = [
            read_ledger_entry(p)
            for p in sorted(self.ledger_dir.glob("*.json"))
            if not p.name.startswith(TMP_PREFIX)
        ]
        entries += [read_ledger_entry(d / "ledger.json") for d in self.staged_dirs()]
        return sorted(entries, key=lambda e: str(e.get("ingested_utc", "")))

    def segment_dirs(self) -> list[Path]:
        if not self.segments.is_dir():
            return []
        return sorted(
            p for p in self.segments.iterdir() if p.is_dir() and not p.name.startswith(TMP_PREFIX)
        )

    def checkpoint_files(self) -> list[Path]:
        """Every entry named as a checkpoint, whatever it is: one that is not a regular file
        (a directory, a device, a dangling link put in its place) must fail its reader, not
        vanish from the list."""
        if not self.checkpoints.is_dir():
            return []
        return sorted(
            p
            for p in self.checkpoints.iterdir()
            if p.suffix == ".checkpoint" and not p.name.startswith(TMP_PREFIX)
        )

    def checkpoint_path(self, size: int) -> Path:
        return self.checkpoints / f"{size:020d}.checkpoint"


LEDGER_KEYS = {"sha256": str, "size": int, "records": dict}


def read_ledger_entry(path: Path) -> dict[str, Any]:
    """One source-ledger entry, with the fields every reader relies on checked."""
    doc = read_json(path, MIB, "ledger entry")
    if not isinstance(doc, dict) or any(
        not isinstance(doc.get(k), t) for k, t in LEDGER_KEYS.items()
    ):
        raise MalformedError(f"ledger entry {path} lacks sha256, size or records")
    return doc


def init_store(root: Path, key_path: Path | None, org: str | None = None) -> tuple[Store, Path]:
    """Create a store and its sealer key pair; the private key goes outside the store."""
    from acdkit import keys  # local: keys is only needed at creation

    log_id = str(uuid.uuid4())
    org_name = "".join(c if c.isalnum() or c in "-._" else "-" for c in (org or "local"))
    origin = f"acdkit/{org_name}/{log_id}"
    key_path = key_path or keys.default_key_dir() / f"{log_id}.sealer.key"
    root_abs, key_abs = root.resolve(), key_path.resolve()
    if key_abs == root_abs or root_abs in key_abs.parents:
        raise UsageError(
            "the private key must not be written inside the evidence store",
            hint="choose a --key path outside STORE",
        )
    if key_path.exists():
        raise UsageError(f"key file {key_path} already exists; refusing to overwrite it")
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        raise UsageError(f"{root} exists and is not an empty directory; choose a new one")
    signer = keys.generate(origin)
    # the key first: a store whose private key could not be written would be unusable
    keys.write_private_key(signer, key_path)
    existed = root.exists()
    try:
        store = Store.create(root, origin, signer.verifier, log_id)
    except BaseException:
        key_path.unlink(missing_ok=True)  # never used: nothing was sealed with it
        if not existed:
            shutil.rmtree(root, ignore_errors=True)
        raise
    return store, key_path
