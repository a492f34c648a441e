"""Zeek ASCII logs (TSV with ``#`` headers): conn, dns, ssl and http.

The header is read again whenever a header block appears, because field lists differ between
Zeek versions and packages.  ``-`` (unset) and ``(empty)`` stay distinct; ``\\xNN`` escapes
are undone per field after splitting, never before.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from acdkit.sources import Context, Parsed, Parser, SourceFormat, register
from acdkit.sources._lines import LineChunk
from acdkit.sources._sql import sql_quote
from acdkit.sources.zeek_json import TEXT_KEYS, project

__all__ = ["FORMAT", "unescape"]

_ESCAPE = re.compile(r"\\x([0-9a-fA-F]{2})|\\\\")
_ADDR = {"id.orig_h": "orig_h", "id.orig_p": "orig_p", "id.resp_h": "resp_h", "id.resp_p": "resp_p"}


def unescape(value: str) -> str:
    """Undo Zeek's ``\\xNN`` and ``\\\\`` escapes; keep the escaped text if not UTF-8."""
    raw = bytearray()
    pos = 0
    for m in _ESCAPE.finditer(value):
        raw += value[pos : m.start()].encode()
        raw += b"\\" if m.group(0) == "\\\\" else bytes([int(m.group(1), 16)])
        pos = m.end()
    raw += value[pos:].encode()
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return value


def _unescape_arrow(values: pa.Array) -> pa.Array:
    mask = pc.fill_null(pc.match_substring(values, "\\"), False)
    if not pc.any(mask).as_py():
        return values
    idx = np.flatnonzero(mask.to_numpy(zero_copy_only=False)).tolist()
    out = values.to_pylist()
    for i in idx:  # rare path: only values that contain an escape
        out[i] = unescape(out[i])
    return pa.array(out, values.type)


def _decode_separator(value: str) -> str:
    return re.sub(r"\\x([0-9a-fA-F]{2})", lambda m: chr(int(m.group(1), 16)), value)


_META_BYTES = re.compile(rb"(?m)^[ \t]*(?:\xef\xbb\xbf)?#[^\n]*")


def _meta_lines(lines: pa.Array) -> list[int]:
    """Positions of header lines ('#...', after optional blanks, TAB or BOM)."""
    is_meta = pc.fill_null(pc.match_substring_regex(lines, "^[ \t\ufeff]*#"), False)
    return list(np.flatnonzero(is_meta.to_numpy(zero_copy_only=False)).tolist())


def _sniff(head: bytes) -> bool:
    return head.lstrip(b"\xef\xbb\xbf \t").startswith(b"#separator")


@dataclass
class Header:
    separator: str = "\t"
    set_separator: str = ","
    empty: str = "(empty)"
    unset: str = "-"
    path: str | None = None
    fields: list[str] = field(default_factory=list)

    def apply(self, line: str) -> None:
        text = line.strip("\r\n").lstrip(" \t\ufeff")
        if text.startswith("#separator"):
            # the keyword may be followed by a space or a TAB (FORMATS.md §1.1)
            self.separator = _decode_separator(text[len("#separator") :].strip(" \t")) or "\t"
            return
        key, _, rest = text.partition(self.separator)
        if key == "#set_separator":
            self.set_separator = _decode_separator(rest)
        elif key == "#empty_field":
            self.empty = rest
        elif key == "#unset_field":
            self.unset = rest
        elif key == "#path":
            self.path = rest
        elif key == "#fields":
            self.fields = rest.split(self.separator)


class ZeekTsvParser(Parser):
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.header = Header()

    def snapshot(self) -> object:
        return copy.deepcopy(self.header)

    def restore(self, state: object) -> None:
        if isinstance(state, Header):
            self.header = copy.deepcopy(state)

    def advance(self, data: bytes | memoryview) -> None:
        for match in _META_BYTES.finditer(data):
            self.header.apply(match.group(0).decode("utf-8", errors="replace"))

    def parse(self, chunk: LineChunk) -> Parsed:
        parsed = Parsed()
        for line, reason in chunk.rejects:
            parsed.add_lines(parsed.rejects, pa.array([line], pa.uint64()), pa.array([reason]))
        lines = chunk.lines
        meta_idx = _meta_lines(lines)
        numbers = chunk.line_numbers()
        if meta_idx:
            parsed.add_lines(
                parsed.skips,
                pc.take(numbers, pa.array(meta_idx, pa.int64())),
                pa.array(["Zeek header line"] * len(meta_idx)),
            )
        start = 0
        for stop in [*meta_idx, len(lines)]:
            if stop > start:
                self._data_run(
                    lines.slice(start, stop - start), numbers.slice(start, stop - start), parsed
                )
            if stop < len(lines):
                self.header.apply(lines[stop].as_py())
            start = stop + 1
        return parsed

    def _data_run(self, lines: pa.Array, numbers: pa.Array, parsed: Parsed) -> None:
        h = self.header
        con = self.ctx.con
        con.register("run", pa.table({"line": numbers, "raw": lines}))
        n_fields = len(h.fields)
        wrong = (
            f"'expected {n_fields} fields, found ' || len(f)"
            if n_fields
            else "'data line before any #fields header'"
        )
        sep = sql_quote(h.separator)
        con.execute(f"""
            CREATE OR REPLACE TEMP TABLE zt AS
            SELECT line, f, CASE
                WHEN trim(raw, chr(10) || chr(13) || ' ') = '' THEN 'blank line'
                WHEN len(f) <> {n_fields} THEN {wrong} END AS problem
            FROM (SELECT line, raw, string_split(rtrim(raw, chr(10) || chr(13)), {sep}) AS f
                  FROM run WHERE raw IS NOT NULL)
        """)
        con.unregister("run")
        self._route(
            con.sql("SELECT line, problem FROM zt WHERE problem IS NOT NULL").to_arrow_table(),
            parsed,
        )
        if not n_fields:
            return
        table = con.sql(
            f"SELECT line, {self._columns()} FROM zt WHERE problem IS NULL"
        ).to_arrow_table()
        con.register("z_tsv", self._unescape(table))
        try:
            project(self.ctx, parsed, "(SELECT *, CAST(NULL AS VARCHAR) AS problem FROM z_tsv)")
        finally:
            con.unregister("z_tsv")

    def _route(self, rows: pa.Table, parsed: Parsed) -> None:
        if rows.num_rows == 0:
            return
        lines, reasons = rows.column(0).combine_chunks(), rows.column(1).combine_chunks()
        blank = pc.equal(reasons, "blank line")
        parsed.add_lines(parsed.skips, lines.filter(blank), reasons.filter(blank))
        parsed.add_lines(
            parsed.rejects, lines.filter(pc.invert(blank)), reasons.filter(pc.invert(blank))
        )

    def _columns(self) -> str:
        h = self.header
        pos = {name: i + 1 for i, name in enumerate(h.fields)}
        unset, empty = sql_quote(h.unset), sql_quote(h.empty)

        def scalar(name: str) -> str:
            if name not in pos:
                return "CAST(NULL AS VARCHAR)"
            v = f"f[{pos[name]}]"
            return f"CASE WHEN {v} = {unset} THEN NULL WHEN {v} = {empty} THEN '' ELSE {v} END"

        out = [f'{scalar(k)} AS "{k}"' for k in TEXT_KEYS if k not in ("_path", "@stream")]
        out += [f"{scalar(src)} AS {dst}" for src, dst in _ADDR.items()]
        if "answers" in pos:
            v = f"f[{pos['answers']}]"
            out.append(
                f"CASE WHEN {v} = {unset} THEN NULL WHEN {v} = {empty} THEN []::VARCHAR[]"
                f" ELSE string_split({v}, {sql_quote(h.set_separator)}) END AS answers"
            )
        else:
            out.append("CAST(NULL AS VARCHAR[]) AS answers")
        out.append(f"{sql_quote(h.path.lower()) if h.path else 'NULL'} AS log")
        # as in the JSON reader, so one event gives one record in either form
        out.append(f"coalesce({scalar('_system_name')}, {scalar('@system')}) AS sensor")
        return ", ".join(out)

    def _unescape(self, table: pa.Table) -> pa.Table:
        for i, name in enumerate(table.column_names):
            col = table.column(i).combine_chunks()
            if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
                table = table.set_column(i, name, _unescape_arrow(col))
            elif pa.types.is_list(col.type) and len(col):
                flat = _unescape_arrow(pc.list_flatten(col))
                rebuilt = pa.ListArray.from_arrays(col.offsets, flat, mask=pc.is_null(col))
                table = table.set_column(i, name, rebuilt)
        return table


FORMAT = register(
    SourceFormat(
        "zeek-tsv",
        "Zeek ASCII (TSV) conn/dns/ssl/http logs with #fields headers",
        _sniff,
        ZeekTsvParser,
    )
)
