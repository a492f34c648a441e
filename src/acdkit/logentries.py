"""Log entries other than records and SEALs: ANCHOR, KEY, CLOCK, GAP, CUSTODY, DECISION,
PRUNE.

Commands that record an event (an anchor obtained, a key rotated, a clock measured, a
decision taken) do not touch the tree themselves: they queue the entry in ``pending/``,
and the next seal puts every queued entry into its segment after the records and before
the SEAL leaf (docs/evidence-format.md §6), so the checkpoint that closes the segment
covers them.  In the segment they are kept, in leaf order, in ``entries.bin``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from acdkit._files import MIB, read_bounded
from acdkit.encoding import ENTRY_VERSION, MAGIC, ZERO_SALT, EntryType, entry
from acdkit.errors import MalformedError, TamperedError
from acdkit.store import TMP_PREFIX, Store, atomic_write

__all__ = [
    "LOG_ENTRY_TYPES",
    "LogEntry",
    "add_pending",
    "pack",
    "parse_entry",
    "pending_entries",
    "read_segment_entries",
    "unpack",
]

# every type that a seal may put before its SEAL leaf
LOG_ENTRY_TYPES = frozenset(
    {
        EntryType.CLOCK,
        EntryType.KEY,
        EntryType.GAP,
        EntryType.ANCHOR,
        EntryType.CUSTODY,
        EntryType.DECISION,
        EntryType.PRUNE,
    }
)
MAX_ENTRY_BYTES = 4 * MIB
MAX_SEGMENT_ENTRIES_BYTES = 256 * MIB
ENTRIES_FILE = "entries.bin"
PENDING_SUFFIX = ".entry"


@dataclass(frozen=True)
class LogEntry:
    kind: EntryType
    body: bytes


def parse_entry(data: bytes) -> LogEntry:
    """A non-record, non-SEAL entry, strictly: magic, version, known type, zero salt."""
    if len(data) < 38 or data[:4] != MAGIC or data[4] != ENTRY_VERSION:
        raise MalformedError("not an acdkit v1 entry")
    try:
        kind = EntryType(data[5])
    except ValueError:
        raise MalformedError(f"unknown entry type {data[5]}") from None
    if kind not in LOG_ENTRY_TYPES:
        raise MalformedError(f"a {kind.name} entry cannot stand among a segment's log entries")
    if data[6:38] != ZERO_SALT:
        raise MalformedError(f"{kind.name} entry has a non-zero salt")
    return LogEntry(kind, data[38:])


def pack(entries: list[bytes]) -> bytes:
    """``entries.bin``: each entry as u32be(length) ‖ entry bytes, in leaf order."""
    return b"".join(len(e).to_bytes(4, "big") + e for e in entries)


def unpack(data: bytes) -> list[bytes]:
    out, pos = [], 0
    while pos < len(data):
        if len(data) - pos < 4:
            raise MalformedError("entries.bin ends inside a length")
        size = int.from_bytes(data[pos : pos + 4], "big")
        if size > MAX_ENTRY_BYTES or pos + 4 + size > len(data):
            raise MalformedError("entries.bin holds a length past its end or over 4 MiB")
        out.append(data[pos + 4 : pos + 4 + size])
        pos += 4 + size
    return out


def read_segment_entries(seg: Path, count: int) -> list[bytes]:
    """The log entries a segment's SEAL declares, checked in number and kind."""
    path = seg / ENTRIES_FILE
    if count == 0:
        if path.exists():
            raise TamperedError(f"segment {seg.name}: {ENTRIES_FILE} is not in its SEAL")
        return []
    if not path.is_file():
        raise TamperedError(f"segment {seg.name}: {ENTRIES_FILE} is missing")
    try:
        found = unpack(read_bounded(path, MAX_SEGMENT_ENTRIES_BYTES, ENTRIES_FILE))
        if len(found) != count:
            raise TamperedError(f"{len(found)} log entries present, its SEAL declares {count}")
        for raw in found:
            parse_entry(raw)
    except (MalformedError, TamperedError) as exc:
        raise type(exc)(f"segment {seg.name}: {exc.message}") from None
    return found


# -- the queue ---------------------------------------------------------------------------------


def add_pending(store: Store, kind: EntryType, body: bytes) -> Path:
    """Queue an entry for the next seal; names sort in the order entries were added."""
    data = entry(kind, body)
    parse_entry(data)
    if len(data) > MAX_ENTRY_BYTES:
        raise MalformedError(f"a {kind.name} entry over 4 MiB cannot be logged")
    directory = store.pending
    directory.mkdir(mode=0o700, exist_ok=True)
    name = f"{time.time_ns():020d}-{os.urandom(4).hex()}-{kind.name.lower()}{PENDING_SUFFIX}"
    path = directory / name
    atomic_write(path, data)
    return path


def pending_entries(store: Store) -> Iterator[tuple[str, bytes]]:
    """Queued entries in the order they were added, each checked."""
    directory = store.pending
    if not directory.is_dir():
        return
    for path in sorted(directory.iterdir()):
        if path.name.startswith(TMP_PREFIX) or not path.name.endswith(PENDING_SUFFIX):
            continue
        data = read_bounded(path, MAX_ENTRY_BYTES, "queued log entry")
        try:
            parse_entry(data)
        except MalformedError as exc:
            raise MalformedError(f"pending/{path.name}: {exc.message}") from None
        yield path.name, data
