"""Helpers for the Windows-event tests: ingest one file, read back its rows and line log."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from acdkit import ingest, staged
from acdkit.store import Store

TABLES = ("net", "dns", "edr")


def utc_ns(text: str) -> int:
    """``YYYY-MM-DD HH:MM:SS.fff`` or ISO ``…Z`` (UTC) -> ns since the epoch, exactly."""
    text = text.removesuffix("Z").replace("T", " ")
    stamp = datetime.strptime(text, "%Y-%m-%d %H:%M:%S.%f").replace(tzinfo=UTC)
    delta = stamp - datetime(1970, 1, 1, tzinfo=UTC)
    return ((delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds) * 1000


class Ingested:
    """One ingested file: its result, staged rows by table and line, and its line log."""

    def __init__(self, store: Store, path: Path, **kw: Any) -> None:
        (self.result,) = ingest.ingest(store, [path], **kw).files
        assert self.result.status == "ingested", self.result.error
        (staged_dir,) = [d for d in store.staged_dirs() if d.name.endswith(self.result.sha256)]
        self.rows: dict[str, dict[int, dict[str, Any]]] = {}
        for table in TABLES:
            t = staged.read_staged(staged_dir, table).drop_columns(["src_ledger_id"])
            if t.num_rows:
                t = t.set_column(
                    t.schema.get_field_index("ts_utc"),
                    "ts_utc",
                    t.column("ts_utc").cast(pa.int64()),
                )
            self.rows[table] = {r["src_line"]: r for r in t.to_pylist()}
        lines = staged_dir / "lines.parquet"
        log = pq.read_table(lines).to_pylist() if lines.is_file() else []
        self.log = {r["line"]: (r["kind"], r["reason"]) for r in log}

    def counts(self) -> dict[str, int]:
        return {t: len(self.rows[t]) for t in TABLES}

    def reasons(self, kind: str) -> dict[str, int]:
        return dict(Counter(reason for k, reason in self.log.values() if k == kind))

    def every_line_once(self) -> bool:
        seen = [*self.log]
        for table in TABLES:
            seen += self.rows[table]
        return sorted(seen) == list(range(1, self.result.lines + 1))
