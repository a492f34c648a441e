"""What a verifier knows from outside the store: a checkpoint it saw before, a minimum size.

An intruder who deletes the newest segments together with their checkpoints leaves a
shorter log that is consistent in itself.  Only something kept elsewhere can expose that:
the checkpoint this verifier saw on its last run (``verify --state FILE``), a size promised
elsewhere (``--expect-min-size N``), an anchor or a witness.  The state file holds the
newest verified checkpoint note, byte for byte, so it can also be handed to someone else.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from acdkit._files import read_json
from acdkit.errors import MalformedError, TamperedError
from acdkit.keys import Verifier
from acdkit.note import Checkpoint, SignedNote
from acdkit.store import atomic_write

__all__ = ["Remembered", "check_remembered"]

STATE_FORMAT = "acdkit-verifier-state/1"


@dataclass(frozen=True)
class Remembered:
    """The newest checkpoint a verifier has seen verified, as the signed note."""

    note: bytes
    checkpoint: Checkpoint

    @classmethod
    def from_note(cls, note: bytes) -> Remembered:
        return cls(note, Checkpoint.from_text(SignedNote.parse(note).text))

    @classmethod
    def load(cls, path: Path) -> Remembered | None:
        """The state in ``path``; None when the file does not exist yet (a first run)."""
        if not path.exists():
            return None
        doc = read_json(path, 1 << 20, "verifier state")
        try:
            if doc["format"] != STATE_FORMAT:
                raise ValueError(f"format is {doc['format']!r}")
            note = base64.b64decode(doc["checkpoint"], validate=True)
            return cls.from_note(note)
        except (KeyError, TypeError, ValueError) as exc:
            raise MalformedError(f"verifier state {path} is damaged ({exc})") from None
        except MalformedError as exc:
            raise MalformedError(f"verifier state {path}: {exc.message}") from None

    def save(self, path: Path) -> None:
        doc: dict[str, Any] = {
            "format": STATE_FORMAT,
            "origin": self.checkpoint.origin,
            "size": self.checkpoint.size,
            "root": base64.b64encode(self.checkpoint.root).decode(),
            "checkpoint": base64.b64encode(self.note).decode(),
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, (json.dumps(doc, indent=1) + "\n").encode(), mode=0o644)


def check_remembered(
    origin: str,
    sealer_keys: list[Verifier],
    size: int,
    checkpoints: dict[int, Checkpoint],
    remembered: Remembered | None,
    min_size: int | None,
) -> list[str]:
    """Raise TamperedError if the verified log is shorter than, or forks from, what is known.

    ``size`` is the verified tree size and ``checkpoints`` the store's checkpoints by size.
    Returns what was checked, for the report.
    """
    done: list[str] = []
    if min_size is not None:
        if size < min_size:
            raise TamperedError(
                f"the log ends at size {size:,} but at least {min_size:,} was expected: "
                "its newest entries were removed (truncation or rollback)"
            )
        done.append(f"size {size:,} ≥ expected minimum {min_size:,}")
    if remembered is None:
        return done
    seen = remembered.checkpoint
    if seen.origin != origin:
        raise MalformedError(
            f"the verifier state is for log {seen.origin!r}, not {origin!r}",
            hint="use one state file per log",
        )
    note = SignedNote.parse(remembered.note)
    if not any(note.verified_by(k) for k in sealer_keys):
        raise TamperedError("the checkpoint in the verifier state is not signed by this log's key")
    if size < seen.size:
        raise TamperedError(
            f"the log ends at size {size:,}, but this verifier saw checkpoint {seen.size:,} "
            "before: the newest segments and their checkpoints were removed (rollback)"
        )
    mine = checkpoints.get(seen.size)
    if mine is None:
        raise TamperedError(
            f"checkpoint {seen.size:,}, which this verifier saw before, is not in the log: "
            "its history was rewritten"
        )
    if mine.root != seen.root:
        raise TamperedError(
            f"checkpoint {seen.size:,} has another root than the one this verifier saw "
            "(a fork: two histories signed for one size)"
        )
    done.append(f"consistent with checkpoint {seen.size:,} seen before")
    return done
