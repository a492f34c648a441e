"""docs/minimization.md and schemas/*.yaml list the same fields, table by table."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from acdkit import schema

DOC = Path(__file__).resolve().parents[1] / "docs" / "minimization.md"


def documented(table: str) -> list[str]:
    """The field names in the first column of the table under ``### `<table>` ``."""
    text = DOC.read_text()
    start = text.index(f"### `{table}`\n")
    end = text.find("\n#", start + 1)
    section = text[start:end]
    return re.findall(r"^\| `([a-z0-9_]+)` \|", section, flags=re.M)


@pytest.mark.parametrize("table", schema.TABLES)
def test_the_policy_lists_every_schema_field(table: str) -> None:
    fields = schema.load(table).names
    assert documented(table) == fields  # same fields, same order


def test_the_policy_names_the_derived_columns() -> None:
    text = DOC.read_text()
    for table in schema.TABLES:
        raw = yaml.safe_load((schema.schema_dir() / f"{table}.v1.yaml").read_text())
        for derived in raw.get("derived", []):
            assert f"`{derived['name']}`" in text
