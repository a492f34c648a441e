"""Look for marker strings in every byte a store or a bundle holds, encoded files decoded.

A marker may hide from a byte search: Parquet pages are compressed and dictionary-encoded,
gzip members are compressed, and Arrow IPC files may be too.  So each such file is also
decoded and its values (strings, lists, binaries and the schema metadata) searched.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

__all__ = ["file_texts", "hits"]


def _table_text(table: pa.Table) -> str:
    """Every string, list and binary value of a table, and its schema metadata."""
    meta = table.schema.metadata or {}
    parts = [json.dumps({k.decode("latin-1"): v.decode("latin-1") for k, v in meta.items()})]
    for col in table.columns:
        t = col.type
        if pa.types.is_binary(t) or pa.types.is_fixed_size_binary(t):
            parts += [v.decode("latin-1") for v in col.to_pylist() if v is not None]
        elif not (pa.types.is_integer(t) or pa.types.is_timestamp(t)):
            parts.append(json.dumps(col.to_pylist(), default=str))
    return "\n".join(parts)


def file_texts(path: Path) -> list[str]:
    """The file's bytes as text, and its decoded values where it is gzip, Parquet or Arrow."""
    raw = path.read_bytes()
    texts = [raw.decode("latin-1")]
    if raw[:2] == b"\x1f\x8b":
        texts.append(gzip.decompress(raw).decode("latin-1"))
    if raw[:4] == b"PAR1":
        texts.append(_table_text(pq.read_table(path)))
    if raw[:6] == b"ARROW1":
        with pa.memory_map(str(path)) as source:
            texts.append(_table_text(pa.ipc.open_file(source).read_all()))
    return texts


def hits(root: Path, markers: tuple[str, ...]) -> list[str]:
    """Files under ``root`` (relative paths) where any marker occurs, case ignored."""
    found = []
    files = [p for p in root.rglob("*") if p.is_file()]
    assert files, f"nothing to scan under {root}"
    wanted = [m.lower() for m in markers]
    for path in files:
        texts = [t.lower() for t in file_texts(path)]
        if any(m in t for m in wanted for t in texts):
            found.append(str(path.relative_to(root)))
    return found
