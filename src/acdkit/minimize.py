"""Minimization and normalization applied to every source's rows before they are staged.

The policy is an allowlist: only the fields of the table schemas in `schemas/` are kept, so
content that a source carries (user agents, cookies, certificate subjects, user names,
passwords, payloads) has no column to land in.  What remains is normalized here:

* addresses become one canonical text form (``ipaddress``: IPv4 dotted quad, IPv6 compressed,
  IPv4-mapped IPv6 kept as such), computed once per distinct value;
* URL paths lose query string and fragment, URL hosts lose user-info (done in SQL, see
  `sources._sql`);
* DNS answer data that are addresses get the same canonical form;
* a row whose address does not parse becomes a reject; reasons name the field, never echo
  its value, so hostile input cannot smuggle content through the reject log;
* a command line, which a parser hands over in the transient column ``_cmdline``, becomes
  its keyed signature (`cmdsig`: ``cmd_sig`` in net, ``cmdline_sig`` in edr) and the text
  goes no further.

docs/minimization.md states the whole policy, table by table.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from acdkit.cmdsig import SigKey, sign_column
from acdkit.encoding import canonical_ip
from acdkit.schema import TableSchema

__all__ = ["CMDLINE", "SIGNATURE_FIELDS", "KeyRequired", "canonical_ip", "finalize"]

CMDLINE = "_cmdline"  # transient: never a schema field, so never staged
SIGNATURE_FIELDS = {"net": "cmd_sig", "edr": "cmdline_sig"}


class KeyRequired(RuntimeError):
    """Rows carry command lines but no signature key was given (a format bug: its
    `SourceFormat.commands` must be set, so that ingest fetches the key first)."""


LINE_REASON = pa.schema([("line", pa.uint64()), ("reason", pa.string())])


_OCTET = "(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
CANONICAL_IPV4 = rf"^{_OCTET}(\.{_OCTET}){{3}}$"  # dotted quad, no leading zeros or spaces


def _map_unique(col: pa.Array, fn: object) -> tuple[pa.Array, pa.Array]:
    """Apply ``fn`` once per distinct value; return (mapped values, ok mask for non-nulls).

    Values already in canonical IPv4 form, by far the most common, pass unchanged without
    reaching Python.  A column of NULLs only (a source that never sets it: DuckDB then
    gives it no type) passes as strings.
    """
    if col.null_count == len(col):
        return pa.nulls(len(col), pa.string()), pa.repeat(pa.scalar(True), len(col))
    if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
        canonical = pc.fill_null(pc.match_substring_regex(col, CANONICAL_IPV4), False)
        if pc.all(pc.or_(canonical, pc.is_null(col))).as_py():
            return col, pa.repeat(pa.scalar(True), len(col))
        rest = pc.if_else(canonical, pa.scalar(None, col.type), col)
        mapped, _ = _map_unique_slow(rest, fn)
        values = pc.if_else(canonical, col, mapped)
        return values, pc.or_(pc.is_null(col), pc.is_valid(values))
    return _map_unique_slow(col, fn)


def _map_unique_slow(col: pa.Array, fn: object) -> tuple[pa.Array, pa.Array]:
    encoded = pc.dictionary_encode(col)
    mapped = [fn(v) for v in encoded.dictionary.to_pylist()]  # type: ignore[operator]
    values = pc.take(pa.array(mapped, pa.string()), encoded.indices)
    ok = pc.or_(pc.is_null(col), pc.is_valid(values))
    return values, ok


def _ip_or_same(text: str) -> str:
    return canonical_ip(text) or text


def _normalize_rrdata(col: pa.Array) -> pa.Array:
    if len(col) == 0 or col.null_count == len(col):
        return col
    flat = pc.list_flatten(col)
    if len(flat) == 0:
        return col
    encoded = pc.dictionary_encode(flat)
    mapped = pa.array(
        [_ip_or_same(v) if v is not None else None for v in encoded.dictionary.to_pylist()],
        pa.string(),
    )
    values = pc.take(mapped, encoded.indices)
    return pa.ListArray.from_arrays(col.offsets, values, mask=pc.is_null(col))


def _sign_commands(rows: pa.Table, schema: TableSchema, key: SigKey | None) -> pa.Table:
    """Replace ``_cmdline`` by the table's signature column; the text is dropped here."""
    if CMDLINE not in rows.column_names:
        return rows
    lines = rows.column(CMDLINE).combine_chunks()
    rows = rows.drop_columns([CMDLINE])
    target = SIGNATURE_FIELDS.get(schema.table)
    if target is None:
        raise ValueError(f"the {schema.table} table has no field for command signatures")
    if key is None:
        if lines.null_count == len(lines):
            return rows
        raise KeyRequired(f"{schema.table} rows carry command lines but no key was given")
    signatures = sign_column(lines, key)
    if target in rows.column_names:
        return rows.set_column(rows.schema.get_field_index(target), target, signatures)
    return rows.append_column(target, signatures)


def finalize(
    rows: pa.Table, schema: TableSchema, sig_key: SigKey | None = None
) -> tuple[pa.Table, pa.Table]:
    """Split projected rows into staged records and rejects (line, reason).

    The records have the schema's types and every field but ``src_ledger_id``
    (`TableSchema.staged_file_arrow`); command lines are signed with ``sig_key``.
    """
    rows = rows.combine_chunks()
    reasons = rows.column("reject_reason")
    for f in schema.fields:
        if f.type != "ip" or f.name not in rows.column_names:
            continue
        col = rows.column(f.name).combine_chunks()
        values, ok = _map_unique(col, canonical_ip)
        rows = rows.set_column(rows.schema.get_field_index(f.name), f.name, values)
        bad = pc.and_(pc.invert(ok), pc.is_null(reasons))
        reasons = pc.if_else(bad, pa.scalar(f"invalid address in {f.name}"), reasons)
    if "rrdata" in rows.column_names:
        idx = rows.schema.get_field_index("rrdata")
        rows = rows.set_column(idx, "rrdata", _normalize_rrdata(rows.column(idx).combine_chunks()))
    reasons = reasons.combine_chunks() if isinstance(reasons, pa.ChunkedArray) else reasons
    good = pc.is_null(reasons)
    rejects = pa.Table.from_arrays(
        [rows.column("src_line").filter(pc.invert(good)), reasons.filter(pc.invert(good))],
        schema=LINE_REASON,
    )
    # the common case, no reject in the chunk, needs no copy of the rows
    kept = rows if reasons.null_count == len(reasons) else rows.filter(good)
    kept = _sign_commands(kept, schema, sig_key)  # rejected rows need no signature
    n = kept.num_rows
    columns = []
    target = schema.staged_file_arrow()
    for f in target:
        if f.name in kept.column_names:
            columns.append(kept.column(f.name).cast(f.type))
        else:
            columns.append(pa.nulls(n, f.type))
    return pa.Table.from_arrays(columns, schema=target), rejects
