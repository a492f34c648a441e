"""The witness: cosign a log's newest checkpoint once it is proven to extend the last one seen.

A witness runs on another host (or in CI) and keeps its own state: the log's origin and
pinned key, and the last checkpoint it cosigned.  From the log it takes only a signed
checkpoint and a consistency proof from its last size (`CheckpointExport`, the C2SP
tlog-witness add-checkpoint body), and it trusts neither beyond what the log key and
`merkle.verify_consistency` establish.  So an insider who rolls the store back, or signs
another history for a size already seen, gets a refusal instead of a cosignature, and the
cosignatures the witness did write let any verifier catch the same.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import fcntl
import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from acdkit import cosignature
from acdkit._files import KIB, MIB, read_bounded, read_json
from acdkit.errors import AcdkitError, MalformedError, TamperedError, UsageError
from acdkit.keychain import read_chain
from acdkit.keys import WITNESS_ROLE, Verifier, WitnessSigner, write_private_key
from acdkit.merkle import consistency_proof, verify_consistency
from acdkit.note import Checkpoint, SignedNote, _b64, parse_decimal
from acdkit.prunedtree import PartialTree, is_pruned, pieces_of
from acdkit.seal import segment_leaves
from acdkit.sealinfo import SealInfo
from acdkit.store import Store, atomic_write

__all__ = [
    "STATE_FORMAT",
    "CheckpointExport",
    "WitnessResult",
    "WitnessState",
    "export_checkpoint",
    "init_witness",
    "newest_checkpoint",
    "refuse_key_in_store",
    "witness",
    "witness_store",
]

STATE_FORMAT = "acdkit-witness-state/1"
MAX_STATE_BYTES = 1 * MIB
MAX_PROOF_HASHES = 63  # C2SP tlog-witness; enough for any tree below 2^63 leaves
MAX_EXPORT_BYTES = cosignature.MAX_COSIGNED_BYTES + 8 * KIB


# -- the log's side: a checkpoint and a consistency proof, as text ---------------------------


@dataclass(frozen=True)
class CheckpointExport:
    """``old <size>``, one base64 proof hash per line, a blank line, the checkpoint note."""

    old_size: int
    proof: tuple[bytes, ...]
    note: bytes

    def encode(self) -> bytes:
        lines = [f"old {self.old_size}", *(base64.b64encode(h).decode() for h in self.proof)]
        return ("\n".join(lines) + "\n\n").encode() + self.note

    @classmethod
    def parse(cls, data: bytes) -> CheckpointExport:
        if len(data) > MAX_EXPORT_BYTES:
            raise MalformedError(f"checkpoint export is larger than {MAX_EXPORT_BYTES:,} bytes")
        head, sep, note = data.partition(b"\n\n")
        if not sep or not note:
            raise MalformedError("checkpoint export has no blank line before its checkpoint")
        try:
            lines = head.decode("ascii").split("\n")
        except UnicodeDecodeError:
            raise MalformedError("checkpoint export header is not ASCII") from None
        if not lines[0].startswith("old "):
            raise MalformedError("checkpoint export does not start with 'old <size>'")
        old = parse_decimal(lines[0][4:], "old size")
        proof = tuple(_b64(line, "consistency proof hash") for line in lines[1:])
        if len(proof) > MAX_PROOF_HASHES or any(len(h) != 32 for h in proof):
            raise MalformedError(
                f"consistency proof must be at most {MAX_PROOF_HASHES} hashes of 32 bytes"
            )
        if old == 0 and proof:
            raise MalformedError("a checkpoint export from size 0 carries no proof")
        return cls(old, proof, note)


def newest_checkpoint(store: Store) -> tuple[bytes, Checkpoint]:
    """The store's newest checkpoint note, parsed strictly (its size comes from its text)."""
    files = store.checkpoint_files()
    if not files:
        raise UsageError(f"{store.root} has no checkpoint yet", hint="run `acdkit seal STORE`")
    data = read_bounded(files[-1], MIB, "checkpoint")
    try:
        return data, Checkpoint.from_text(SignedNote.parse(data).text)
    except MalformedError as exc:
        raise MalformedError(f"checkpoint {files[-1].name}: {exc.message}") from None


def _consistency(store: Store, size: int, since: int) -> list[bytes]:
    """The consistency proof from ``since`` to ``size``, from the store's segments (over
    the kept hashes of pruned ones, format §17.3)."""
    segments = []
    for path in store.segment_dirs():
        info = SealInfo.from_entry(read_bounded(path / "seal.entry", MIB, "SEAL entry"))
        if info.end_index <= size:
            segments.append((info.first_index, path, info))
    ordered: list[tuple[Path, SealInfo]] = []
    for first, path, info in sorted(segments, key=lambda s: s[0]):
        if first != (ordered[-1][1].end_index if ordered else 0):
            break
        ordered.append((path, info))
    if (ordered[-1][1].end_index if ordered else 0) != size:
        raise TamperedError(
            f"the store's segments do not hold the {size:,} leaves of its newest checkpoint"
        )
    if any(is_pruned(path) for path, _info in ordered):
        return PartialTree(pieces_of(ordered)).consistency(since)
    leaves: list[bytes] = []
    for path, info in ordered:
        leaves += segment_leaves(path, info)
    return consistency_proof(leaves, since)


def export_checkpoint(store: Store, since: int = 0) -> CheckpointExport:
    """The newest checkpoint with a proof that it extends the tree of size ``since``.

    The store computes the proof from its leaves as stored; a witness checks it against
    the roots it knows, so nothing here has to be trusted.  ``since`` 0 gives no proof.
    """
    note, cp = newest_checkpoint(store)
    if since > cp.size:
        raise UsageError(
            f"the log's newest checkpoint is {cp.size:,}, below --since {since:,}",
            hint="a witness that saw a larger size will refuse this log (rollback)",
        )
    if since in (0, cp.size):
        return CheckpointExport(since, (), note)
    return CheckpointExport(since, tuple(_consistency(store, cp.size, since)), note)


# -- the witness's state ---------------------------------------------------------------------


@dataclass(frozen=True)
class WitnessState:
    """What the witness remembers of one log: its key and the last checkpoint cosigned."""

    witness_vkey: str
    log_key: Verifier
    note: bytes
    checkpoint: Checkpoint
    timestamp: int

    @classmethod
    def load(cls, path: Path) -> WitnessState | None:
        """The state in ``path``; None when it does not exist yet (the first checkpoint)."""
        if not path.exists():
            return None
        doc = read_json(path, MAX_STATE_BYTES, "witness state")
        try:
            if not isinstance(doc, dict) or doc.get("format") != STATE_FORMAT:
                raise ValueError("not an acdkit witness state")
            note = base64.b64decode(doc["checkpoint"], validate=True)
            cp = Checkpoint.from_text(SignedNote.parse(note).text)
            state = cls(
                str(doc["witness"]),
                Verifier.parse(str(doc["log_key"])),
                note,
                cp,
                int(doc["timestamp"]),
            )
            recorded = (doc["origin"], doc["size"], doc["root"])
            if recorded != (cp.origin, cp.size, base64.b64encode(cp.root).decode()):
                raise ValueError("origin, size or root disagree with the checkpoint it holds")
        except (KeyError, TypeError, ValueError, binascii.Error) as exc:
            raise MalformedError(f"witness state {path} is damaged ({exc})") from None
        except MalformedError as exc:
            raise MalformedError(f"witness state {path} is damaged ({exc.message})") from None
        return state

    def save(self, path: Path) -> None:
        doc: dict[str, Any] = {
            "format": STATE_FORMAT,
            "witness": self.witness_vkey,
            "origin": self.checkpoint.origin,
            "log_key": self.log_key.vkey(),
            "size": self.checkpoint.size,
            "root": base64.b64encode(self.checkpoint.root).decode(),
            "timestamp": self.timestamp,
            "checkpoint": base64.b64encode(self.note).decode(),
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, (json.dumps(doc, indent=1) + "\n").encode(), mode=0o644)


@contextlib.contextmanager
def _locked(state: Path) -> Iterator[None]:
    """One witness run per state file: two at once could remember the smaller checkpoint."""
    state.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(state.with_name(state.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UsageError(f"another witness run is using {state}") from None
        yield
    finally:
        os.close(fd)


# -- cosigning -------------------------------------------------------------------------------


@dataclass
class WitnessResult:
    origin: str
    size: int
    root: bytes
    previous: int | None  # the size cosigned before; None on the first run
    timestamp: int
    written: Path
    log_key: Verifier
    key_source: str  # "--log-key", "state", "trust on first use"
    notes: list[str] = field(default_factory=list)


def _log_key(
    state: WitnessState | None, pinned: Verifier | None, first_use: Verifier | None
) -> tuple[Verifier, str]:
    if state is not None:
        if pinned is not None and pinned != state.log_key:
            # the operator's re-pin after a sealer key rotation (§7.1); the consistency
            # proof from the last root still has to hold
            return pinned, "--log-key, replacing the key pinned in the state"
        return state.log_key, "state"
    if pinned is not None:
        return pinned, "--log-key"
    if first_use is not None:
        return first_use, "trust on first use"
    raise UsageError(
        "the witness has no state for this log yet and no log key to check it with",
        hint="pass the log's vkey with --log-key",
    )


def _check_growth(state: WitnessState | None, cp: Checkpoint, export: CheckpointExport) -> None:
    """Check 4: the new checkpoint extends the last one cosigned (RFC 9162 §2.1.4)."""
    last_size = state.checkpoint.size if state is not None else 0
    if state is not None and cp.size < last_size:
        raise TamperedError(
            f"the log presents checkpoint {cp.size:,}, but this witness cosigned {last_size:,}: "
            "its newest entries were removed (rollback)"
        )
    if state is not None and cp.size == last_size:
        if cp.root != state.checkpoint.root:
            raise TamperedError(
                f"the log presents another root for size {cp.size:,} than the one this "
                "witness cosigned (a fork: two histories signed for one size)"
            )
        return
    if export.old_size != last_size:
        # C2SP tlog-witness answers this with 409 Conflict and its size
        raise UsageError(
            f"the export is from size {export.old_size:,}, this witness last cosigned "
            f"{last_size:,}",
            hint=f"export the checkpoint again with `acdkit checkpoint STORE --since {last_size}`",
        )
    if state is not None and not verify_consistency(
        last_size, cp.size, state.checkpoint.root, cp.root, export.proof
    ):
        raise TamperedError(
            f"checkpoint {cp.size:,} is not proven consistent with checkpoint {last_size:,} "
            "that this witness cosigned: the log rewrote its history (or the proof is forged)"
        )


def witness(
    export: CheckpointExport,
    signer: WitnessSigner,
    state_path: Path,
    out_dir: Path,
    now: int,
    log_key: Verifier | None = None,
    first_use_key: Verifier | None = None,
    successors: Sequence[Verifier] = (),
) -> WitnessResult:
    """Check the exported checkpoint and cosign it; the state changes only on success.

    1. The checkpoint note parses strictly (MALFORMED).
    2. The witness state parses (MALFORMED), belongs to this witness key and to the log.
    3. The log key is the one pinned in the state, else ``log_key``, else ``first_use_key``
       (trust on first use, reported); its name is the origin and it signed the checkpoint.
       ``successors`` are the log's sealer keys in the order its KEY entries made them
       current, each rotation signed by the key before: when the pinned key is among them
       and a later one signed the checkpoint, that one is followed (and reported).
    4. Against the last checkpoint cosigned: smaller is a rollback, the same size with
       another root a fork, larger needs a valid consistency proof (all TAMPERED); the
       export must start at the last size cosigned (0 on the first run; USAGE otherwise).
    5. Cosign at ``now``, write the cosigned checkpoint into ``out_dir``, then the state.
    """
    # 1
    try:
        note = SignedNote.parse(export.note)
        cp = Checkpoint.from_text(note.text)
    except MalformedError as exc:
        raise MalformedError(f"the exported checkpoint: {exc.message}") from None
    with _locked(state_path):
        # 2
        state = WitnessState.load(state_path)
        mine = signer.verifier.vkey()
        if state is not None and state.witness_vkey != mine:
            raise UsageError(f"witness state {state_path} belongs to another witness key")
        if state is not None and state.checkpoint.origin != cp.origin:
            raise UsageError(
                f"witness state {state_path} is for log {state.checkpoint.origin!r}, "
                f"not {cp.origin!r}",
                hint="keep one state file per log",
            )
        # 3
        key, source = _log_key(state, log_key, first_use_key)
        if key.name != cp.origin:
            raise TamperedError(f"the log key is named {key.name!r}, the checkpoint {cp.origin!r}")
        followed = _followed_rotation(note, key, successors)
        if followed is not None:
            notes_first = [
                f"followed the log's key rotation from {key.key_id.hex()} to "
                f"{followed.key_id.hex()} (KEY entries sealed in the log, each signed by the "
                "key before it)"
            ]
            key = followed
        else:
            notes_first = []
        if not note.verified_by(key):
            others = [s.key_id.hex() for s in note.signatures if s.name == cp.origin]
            raise TamperedError(
                f"checkpoint {cp.size:,} carries no valid signature by log key {key.key_id.hex()}"
                + (f" (it is signed by key {', '.join(others)})" if others else ""),
                hint="if the log rotated its sealer key (acdkit keys rotate), check the "
                "rotation and pin the new key with --log-key",
            )
        # 4
        notes = notes_first
        if source.startswith("--log-key, replacing"):
            notes.append(
                f"log key {state.log_key.key_id.hex() if state else '?'} replaced by "
                f"{key.key_id.hex()} (--log-key)"
            )
        _check_growth(state, cp, export)
        if state is not None and now < state.timestamp:
            notes.append(
                f"this witness's clock is {state.timestamp - now:,} s behind its last "
                "cosignature; verifiers will warn about it"
            )
        if source == "trust on first use":
            notes.append(f"trusting log key {key.vkey()} on first use: pin it with --log-key")
        # 5
        line = cosignature.cosign(signer, note.text, now)
        cosigned = cosignature.add_cosignature(note, line).encode()
        out_dir.mkdir(parents=True, exist_ok=True)
        written = out_dir / cosignature.cosignature_name(cp.size, signer.verifier)
        atomic_write(written, cosigned)
        WitnessState(mine, key, export.note, cp, now).save(state_path)
    previous = state.checkpoint.size if state is not None else None
    return WitnessResult(cp.origin, cp.size, cp.root, previous, now, written, key, source, notes)


def _followed_rotation(
    note: SignedNote, key: Verifier, successors: Sequence[Verifier]
) -> Verifier | None:
    """The later key of the chain that signed ``note`` when ``key`` did not, if any."""
    if note.verified_by(key) or key not in successors:
        return None
    later = list(successors)[list(successors).index(key) + 1 :]
    return next((k for k in reversed(later) if note.verified_by(k)), None)


def witness_store(
    store: Store,
    signer: WitnessSigner,
    state_path: Path,
    now: int,
    out_dir: Path | None = None,
    log_key: Verifier | None = None,
) -> WitnessResult:
    """Witness a store read directly: the proof starts where the state ends.

    The store's own ``keys/sealer.vkey`` is used only on the first run without
    ``log_key``, and reported as trust on first use.
    """
    state = WitnessState.load(state_path)
    _note, cp = newest_checkpoint(store)
    since = state.checkpoint.size if state is not None and state.checkpoint.size <= cp.size else 0
    export = export_checkpoint(store, since)
    try:
        chain = read_chain(store)
    except AcdkitError:
        chain = None  # a broken chain is verify's finding; the pinned key is then all we have
    # the key that signs the log now: after a rotation that is not keys/sealer.vkey
    first_use = chain.current if chain and state is None and log_key is None else None
    target = out_dir if out_dir is not None else store.root / cosignature.COSIGNATURE_DIR
    successors = chain.keys if chain is not None else ()
    return witness(export, signer, state_path, target, now, log_key, first_use, successors)


def refuse_key_in_store(key_path: Path, store: Path | None = None) -> None:
    """A witness key inside a store would let the store's insider forge cosignatures."""
    resolved = key_path.resolve()
    inside = any((p / "acdkit-store.json").is_file() for p in resolved.parents)
    if inside or (store is not None and store.resolve() in resolved.parents):
        raise UsageError(
            f"the witness key {key_path} lies inside an evidence store",
            hint="keep the witness key on the witness host, outside every store",
        )


def init_witness(key_path: Path, name: str) -> WitnessSigner:
    """Create a witness key pair; the private key goes to ``key_path`` with mode 0600."""
    refuse_key_in_store(key_path)
    signer = WitnessSigner(name, Ed25519PrivateKey.generate())
    write_private_key(signer, key_path, WITNESS_ROLE)
    return signer
