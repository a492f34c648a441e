"""The machine-information schemas of the net, dns and edr tables, loaded from `schemas/`.

The YAML files are the single source of truth: field names, their numbers in the canonical
encoding, their logical types and why each is machine information rather than content.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pyarrow as pa
import yaml

from acdkit.errors import MalformedError

__all__ = [
    "LEDGER_FIELD",
    "LOGICAL_TYPES",
    "TABLES",
    "Field",
    "TableSchema",
    "load",
    "schema_dir",
]

TABLES = ("net", "dns", "edr")

# logical type -> (Arrow type in Parquet, canonical TLV type name)
LOGICAL_TYPES: dict[str, tuple[pa.DataType, str]] = {
    "utf8": (pa.string(), "utf8"),
    "u16": (pa.uint16(), "u64"),
    "u64": (pa.uint64(), "u64"),
    "i64": (pa.int64(), "i64"),
    "timestamp_ns": (pa.timestamp("ns", tz="UTC"), "i64"),
    "duration_ns": (pa.int64(), "i64"),
    "ip": (pa.string(), "ip16"),
    "hex16": (pa.string(), "bytes"),
    "hex32": (pa.string(), "bytes"),
    "utf8_list": (pa.list_(pa.string()), "utf8list"),
    "bool": (pa.bool_(), "bool"),
}

DERIVED_ARROW = {"log_index": pa.uint64(), "integrity_hash": pa.binary(32)}


@dataclass(frozen=True)
class Field:
    id: int
    name: str
    type: str
    required: bool
    doc: str
    why: str

    @property
    def arrow_type(self) -> pa.DataType:
        return LOGICAL_TYPES[self.type][0]

    @property
    def canonical_type(self) -> str:
        return LOGICAL_TYPES[self.type][1]


LEDGER_FIELD = "src_ledger_id"  # every table has it: the source file a record came from


@dataclass(frozen=True)
class TableSchema:
    table: str
    version: int
    fields: tuple[Field, ...]
    digest: str  # SHA-256 of the YAML file bytes, recorded in every SEAL

    @property
    def schema_id(self) -> str:
        return f"{self.table}/{self.version}"

    @property
    def names(self) -> list[str]:
        return [f.name for f in self.fields]

    def field(self, name: str) -> Field:
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(name)

    def staged_arrow(self) -> pa.Schema:
        """Arrow schema of ingested, not yet sealed records."""
        return pa.schema(
            [pa.field(f.name, f.arrow_type, nullable=not f.required) for f in self.fields]
        )

    def staged_file_arrow(self) -> pa.Schema:
        """What a staged part file holds: the records without ``src_ledger_id``.

        The ledger id is the SHA-256 of the whole source file, known only once the file
        has been read to its end; it is the same for every record of a staged file, so it
        is kept once, in the file's ledger entry, and joined on when the records are read.
        """
        full = self.staged_arrow()
        return full.remove(full.get_field_index(LEDGER_FIELD))

    def sealed_arrow(self) -> pa.Schema:
        """Arrow schema of sealed records: the fields plus log_index and integrity_hash."""
        base = [pa.field("log_index", DERIVED_ARROW["log_index"], nullable=False)]
        tail = [pa.field("integrity_hash", DERIVED_ARROW["integrity_hash"], nullable=False)]
        return pa.schema(base + list(self.staged_arrow()) + tail)


def schema_dir() -> Path:
    """Where the schema files are: inside the installed package, else the source tree."""
    packaged = Path(__file__).parent / "_data" / "schemas"
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parents[2] / "schemas"


def _parse(table: str, raw: bytes) -> TableSchema:
    # the C loader when PyYAML has it: the same safe subset, several times faster to start
    doc: Any = yaml.load(raw, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))  # noqa: S506
    if not isinstance(doc, dict) or doc.get("table") != table:
        raise MalformedError(f"schema file for {table!r} does not declare table: {table}")
    fields: list[Field] = []
    for item in doc.get("fields", []):
        ftype = item["type"]
        if ftype not in LOGICAL_TYPES:
            raise MalformedError(f"schema {table}: field {item['name']} has unknown type {ftype}")
        fields.append(
            Field(
                int(item["id"]),
                str(item["name"]),
                ftype,
                bool(item.get("required", False)),
                str(item.get("doc", "")),
                str(item.get("why", "")),
            )
        )
    ids = [f.id for f in fields]
    if len(set(ids)) != len(ids) or any(not 0 < i < 0xFFFF for i in ids):
        raise MalformedError(f"schema {table}: field ids must be unique and in 1..65534")
    version = int(doc["version"])
    return TableSchema(table, version, tuple(fields), hashlib.sha256(raw).hexdigest())


@cache
def load(table: str, version: int = 1) -> TableSchema:
    """Load one table's schema from its YAML file."""
    if table not in TABLES:
        raise KeyError(table)
    path = schema_dir() / f"{table}.v{version}.yaml"
    return _parse(table, path.read_bytes())
