"""Staged records: what `ingest` committed and `seal` has not yet sealed, as Arrow IPC parts.

Kept apart from `ingest` so that readers of staged rows (seal, verify's worker processes)
need not load the parsers and DuckDB.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa

from acdkit import schema
from acdkit.store import read_ledger_entry

__all__ = [
    "load_staged",
    "read_staged",
    "staged_batches",
    "staged_ledger_id",
    "with_ledger_id",
]


def staged_ledger_id(staged_dir: Path) -> str:
    """The ledger id (source file SHA-256) of a committed staging directory."""
    return str(read_ledger_entry(staged_dir / "ledger.json")["sha256"])


def with_ledger_id(batch: pa.RecordBatch, table: str, ledger_id: str) -> pa.RecordBatch:
    """A staged part's batch with the ``src_ledger_id`` column joined on, in schema order."""
    full = schema.load(table).staged_arrow()
    ids = pa.repeat(pa.scalar(ledger_id, pa.string()), batch.num_rows)
    columns = [ids if name == schema.LEDGER_FIELD else batch.column(name) for name in full.names]
    return pa.RecordBatch.from_arrays(columns, schema=full)


def load_staged(path: str, number: int, table: str, ledger_id: str) -> pa.RecordBatch:
    """Batch ``number`` of one staged part file, memory-mapped, with its ledger id."""
    with pa.memory_map(path) as source:
        batch = pa.ipc.open_file(source).get_batch(number)
    return with_ledger_id(batch, table, ledger_id)


def staged_batches(
    staged_dir: Path, table: str
) -> Iterator[tuple[pa.RecordBatch, tuple[str, int]]]:
    """The staged rows of one table of one ingested file: (batch, (file, batch number))."""
    ledger_id = staged_ledger_id(staged_dir)
    for path in sorted(staged_dir.glob(f"{table}.*.arrow")):
        with pa.memory_map(str(path)) as source:
            reader = pa.ipc.open_file(source)
            for i in range(reader.num_record_batches):
                yield with_ledger_id(reader.get_batch(i), table, ledger_id), (str(path), i)


def read_staged(staged_dir: Path, table: str) -> pa.Table:
    """All staged rows of one table of one ingested file (empty if it has none)."""
    batches = [batch for batch, _ in staged_batches(staged_dir, table)]
    if not batches:
        return schema.load(table).staged_arrow().empty_table()
    return pa.Table.from_batches(batches)
