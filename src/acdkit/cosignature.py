"""C2SP tlog-cosignature/v1: a witness's timestamped signature on a checkpoint, and its checks.

A cosignature is one more signature line on the checkpoint note,
``— <witness name> base64(key ID[4] || u64be timestamp || Ed25519 signature[64])``, over
``"cosignature/v1\\n" || "time <timestamp>\\n" || checkpoint text``.  It says: as of that
time (POSIX seconds), the largest consistent tree this witness has seen for the origin has
this root.  A witness's key has vkey type 0x04 (acdkit.keys.WitnessVerifier), so a
cosignature can never pass for a note signature or the reverse.

The witness writes each cosigned checkpoint as a file of its own (the checkpoint note with
the witness's line added, docs/evidence-format.md §8.1); checkpoint files are never
rewritten.  `check_cosignatures` is what a verifier does with those files.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from acdkit._files import KIB, read_bounded
from acdkit.errors import MalformedError, TamperedError, UsageError
from acdkit.keys import WitnessSigner, WitnessVerifier
from acdkit.note import Checkpoint, NoteSignature, SignedNote

__all__ = [
    "COSIGNATURE_DIR",
    "FUTURE_TOLERANCE",
    "MAX_COSIGNED_BYTES",
    "CosignedFile",
    "WitnessPolicy",
    "WitnessReport",
    "add_cosignature",
    "check_cosignatures",
    "cosign",
    "cosignature_message",
    "cosignature_name",
    "cosignature_timestamp",
    "cosigned_paths",
    "parse_cosigned",
    "read_cosigned",
]

COSIGNATURE_DIR = "cosignatures"
MAX_TIMESTAMP = (1 << 63) - 1
MAX_COSIGNED_BYTES = 64 * KIB  # a checkpoint with 100 signature lines is under 16 KiB
FUTURE_TOLERANCE = 300  # seconds a witness clock may run ahead before a warning
_COSIG_LEN = 8 + 64


def cosignature_message(text: str, timestamp: int) -> bytes:
    """The bytes a witness signs: header, time line, the checkpoint text with its final LF."""
    if not 0 <= timestamp <= MAX_TIMESTAMP:
        raise ValueError("cosignature timestamp out of range")
    return f"cosignature/v1\ntime {timestamp}\n".encode() + text.encode()


def cosign(signer: WitnessSigner, text: str, timestamp: int) -> NoteSignature:
    """The signature line of ``signer`` on the checkpoint ``text`` at ``timestamp``."""
    sig = signer.sign(cosignature_message(text, timestamp))
    return NoteSignature(signer.name, signer.verifier.key_id, struct.pack(">Q", timestamp) + sig)


def add_cosignature(note: SignedNote, line: NoteSignature) -> SignedNote:
    """``note`` with ``line`` appended, replacing an earlier line by the same key."""
    others = tuple(s for s in note.signatures if (s.name, s.key_id) != (line.name, line.key_id))
    return SignedNote(note.text, (*others, line))


def cosignature_name(size: int, witness: WitnessVerifier) -> str:
    """File name of a cosigned checkpoint: ``<size20>.<witness key ID hex>.cosig``."""
    return f"{size:020d}.{witness.key_id.hex()}.cosig"


def cosignature_timestamp(note: SignedNote, witness: WitnessVerifier) -> int | None:
    """The time of ``witness``'s cosignature on ``note``; None when it has not cosigned it.

    Lines by other keys are ignored (C2SP signed-note); a line that names this witness and
    key ID but does not verify is TAMPERED: someone forged or altered a cosignature.
    """
    found: int | None = None
    for sig in note.signatures:
        if (sig.name, sig.key_id) != (witness.name, witness.key_id):
            continue
        if len(sig.signature) != _COSIG_LEN:
            raise TamperedError(
                f"the cosignature line of witness {witness.name} is {len(sig.signature) + 4} "
                f"bytes, a cosignature is {_COSIG_LEN + 4}"
            )
        (timestamp,) = struct.unpack(">Q", sig.signature[:8])
        if timestamp > MAX_TIMESTAMP:
            raise MalformedError(f"cosignature timestamp {timestamp} is out of range")
        if not witness.verify(sig.signature[8:], cosignature_message(note.text, timestamp)):
            raise TamperedError(
                f"the cosignature of witness {witness.name} ({witness.key_id.hex()}) on "
                "this checkpoint does not verify"
            )
        found = timestamp if found is None else max(found, timestamp)
    return found


@dataclass(frozen=True)
class WitnessPolicy:
    """Which witnesses count and how many must cosign the newest checkpoint."""

    witnesses: tuple[WitnessVerifier, ...]
    quorum: int

    @classmethod
    def of(cls, witnesses: Iterable[WitnessVerifier], quorum: int | None = None) -> WitnessPolicy:
        keys = tuple(dict.fromkeys(witnesses))  # the same key twice counts once
        if not keys:
            raise UsageError("a witness quorum needs at least one witness key")
        # quorum 0: cosignatures are still checked (rollback, fork) but none is required
        wanted = 1 if quorum is None else quorum
        if not 0 <= wanted <= len(keys):
            raise UsageError(f"witness quorum {wanted} must lie between 0 and {len(keys)}")
        return cls(keys, wanted)


@dataclass(frozen=True)
class CosignedFile:
    label: str  # where it came from, for messages only
    data: bytes
    note: SignedNote
    checkpoint: Checkpoint


def cosigned_paths(directory: Path) -> list[Path]:
    """The ``*.cosig`` files of ``directory`` (not a witness's half-written temporaries)."""
    if not directory.is_dir():
        return []
    return sorted(
        p
        for p in directory.iterdir()
        if p.suffix == ".cosig" and not p.name.startswith(".tmp-") and p.is_file()
    )


def read_cosigned(directory: Path, label_prefix: str = "") -> list[CosignedFile]:
    """Every cosigned checkpoint file of ``directory``, parsed strictly (MALFORMED otherwise)."""
    return [
        parse_cosigned(
            read_bounded(path, MAX_COSIGNED_BYTES, "cosignature file"), label_prefix + path.name
        )
        for path in cosigned_paths(directory)
    ]


def parse_cosigned(data: bytes, label: str) -> CosignedFile:
    if len(data) > MAX_COSIGNED_BYTES:
        raise MalformedError(f"{label} is larger than {MAX_COSIGNED_BYTES:,} bytes")
    try:
        note = SignedNote.parse(data)
        return CosignedFile(label, data, note, Checkpoint.from_text(note.text))
    except MalformedError as exc:
        raise MalformedError(f"{label}: {exc.message}") from None


@dataclass
class WitnessReport:
    """What `check_cosignatures` found; ``unwitnessed`` is set when the quorum is not met."""

    done: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    unwitnessed: str | None = None
    witnessed_size: int = 0  # newest checkpoint with the quorum; 0 if none
    counts: dict[int, int] = field(default_factory=dict)  # size -> witnesses that cosigned


def check_cosignatures(
    files: Sequence[CosignedFile],
    policy: WitnessPolicy,
    origin: str,
    size: int,
    checkpoints: dict[int, bytes],
    now: int,
) -> WitnessReport:
    """Check the cosigned checkpoints against a verified log of ``size`` leaves.

    1. A file for another origin is ignored with a warning.
    2. Each line by a policy witness verifies (TAMPERED otherwise); other lines are ignored.
    3. A cosigned checkpoint larger than ``size`` proves a rollback; one at or below it must
       be, text for text, the log's checkpoint of that size (missing or another root:
       TAMPERED).
    4. Timestamps in the future beyond `FUTURE_TOLERANCE`, or going backwards while sizes
       grow, give warnings.
    5. The newest checkpoint needs ``policy.quorum`` witnesses; otherwise ``unwitnessed``
       says from which size on a rollback cannot be excluded.
    """
    report = WitnessReport()
    seen: dict[WitnessVerifier, dict[int, int]] = {w: {} for w in policy.witnesses}
    for f in files:
        cp = f.checkpoint
        # 1
        if cp.origin != origin:
            report.warnings.append(f"{f.label} is a checkpoint of another log ({cp.origin})")
            continue
        # 2
        signers = []
        for witness in policy.witnesses:
            ts = cosignature_timestamp(f.note, witness)
            if ts is not None:
                signers.append(witness)
                seen[witness][cp.size] = max(ts, seen[witness].get(cp.size, ts))
        if not signers:
            continue
        # 3
        _match_log(f, signers[0], size, checkpoints)
    _check_times(seen, now, report)
    # 5
    for per_size in seen.values():
        for n in per_size:
            report.counts[n] = report.counts.get(n, 0) + 1
    quorate = [n for n, k in report.counts.items() if k >= policy.quorum]
    report.witnessed_size = max(quorate, default=0)
    total, k = len(policy.witnesses), report.counts.get(size, 0)
    report.done.append(f"checkpoint {size:,} witnessed by {k} of {total} (quorum {policy.quorum})")
    if k < policy.quorum:
        report.unwitnessed = (
            f"checkpoints after {report.witnessed_size:,} are not witnessed: a rollback "
            f"beyond {report.witnessed_size:,} cannot be excluded"
            if report.witnessed_size
            else "no checkpoint is witnessed by the quorum: a rollback cannot be excluded"
        )
    return report


def _match_log(
    f: CosignedFile, witness: WitnessVerifier, size: int, checkpoints: dict[int, bytes]
) -> None:
    cp = f.checkpoint
    if cp.size > size:
        raise TamperedError(
            f"witness {witness.name} cosigned checkpoint {cp.size:,}, but the log ends at "
            f"{size:,}: its newest segments and checkpoints were removed (rollback)"
        )
    mine = checkpoints.get(cp.size)
    if mine is None:
        raise TamperedError(
            f"witness {witness.name} cosigned checkpoint {cp.size:,}, which is not in the "
            "log: its history was rewritten"
        )
    if SignedNote.parse(mine).text != f.note.text:
        raise TamperedError(
            f"witness {witness.name} cosigned another root for size {cp.size:,} than the "
            "log's checkpoint (a fork: two histories signed for one size)"
        )


def _check_times(
    seen: dict[WitnessVerifier, dict[int, int]], now: int, report: WitnessReport
) -> None:
    """Check 4: warnings only, since a witness's clock is not trusted time."""
    for witness, per_size in seen.items():
        last: tuple[int, int] | None = None
        for n in sorted(per_size):
            ts = per_size[n]
            if ts > now + FUTURE_TOLERANCE:
                report.warnings.append(
                    f"witness {witness.name} dated its cosignature of checkpoint {n:,} "
                    f"{ts - now:,} s in the future (its clock runs ahead)"
                )
            if last is not None and ts < last[1]:
                report.warnings.append(
                    f"witness {witness.name} dated checkpoint {n:,} earlier than the smaller "
                    f"checkpoint {last[0]:,} (its clock went backwards)"
                )
            last = (n, ts)
