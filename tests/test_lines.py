"""The mapped span reader against the streaming reader: same lines, same rejects, one hash."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from acdkit.sources._lines import (
    FileSpan,
    HashingReader,
    LineChunk,
    RawChunk,
    read_raw,
    read_spans,
)


def _raw_view(data: bytes, block: int, max_line: int) -> list[tuple[str, int, bytes]]:
    """(kind, first line, bytes or reason) of each item of the streaming reader."""
    out: list[tuple[str, int, bytes]] = []
    for item in read_raw(io.BytesIO(data), block=block, max_line=max_line):
        if isinstance(item, RawChunk):
            out.append(("lines", item.first_line, item.data))
        else:
            assert isinstance(item, LineChunk)
            out.append(("reject", item.first_line, item.rejects[0][1].encode()))
    return out


def _span_view(path: Path, block: int, max_line: int) -> tuple[list[tuple[str, int, bytes]], str]:
    data = path.read_bytes()
    out: list[tuple[str, int, bytes]] = []
    with path.open("rb") as fh:
        reader = HashingReader(fh, hashlib.sha256())
        for item in read_spans(fh, reader, block=block, max_line=max_line):
            if isinstance(item, FileSpan):
                chunk = data[item.offset : item.offset + item.length]
                assert bytes(item.view) == chunk
                lines = chunk.count(b"\n") + (0 if chunk.endswith(b"\n") else 1)
                assert item.line_count == lines
                out.append(("lines", item.first_line, chunk))
            else:
                out.append(("reject", item.first_line, item.rejects[0][1].encode()))
        assert reader.size == len(data)
        return out, reader.hasher.hexdigest()


def _merge(items: list[tuple[str, int, bytes]]) -> list[tuple[str, int, bytes]]:
    """Join adjacent runs of lines, so readers that cut blocks differently compare equal."""
    merged: list[tuple[str, int, bytes]] = []
    for kind, first, data in items:
        if merged and kind == "lines" and merged[-1][0] == "lines":
            merged[-1] = ("lines", merged[-1][1], merged[-1][2] + data)
        else:
            merged.append((kind, first, data))
    return merged


line = st.binary(max_size=40).map(lambda b: b.replace(b"\n", b"x"))


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    lines=st.lists(line, max_size=30),
    trailing=st.booleans(),
    block=st.integers(min_value=1, max_value=24),
)
def test_spans_give_the_lines_rejects_and_digest_of_the_stream(
    tmp_path: Path, lines: list[bytes], trailing: bool, block: int
) -> None:
    data = b"\n".join(lines) + (b"\n" if trailing and lines else b"")
    path = tmp_path / "f.log"
    path.write_bytes(data)
    # some generated lines are longer than the limit: both readers reject exactly those
    # (a block no larger than the limit, as in use: 16 MiB blocks, 64 MiB lines)
    max_line = 24

    spans, digest = _span_view(path, block, max_line)
    assert digest == hashlib.sha256(data).hexdigest()
    assert _merge(spans) == _merge(_raw_view(data, block, max_line))


def test_empty_file_has_no_spans(tmp_path: Path) -> None:
    path = tmp_path / "empty.log"
    path.write_bytes(b"")
    assert _span_view(path, 16, 64) == ([], hashlib.sha256(b"").hexdigest())


def test_a_line_over_the_limit_is_rejected_by_both_readers(tmp_path: Path) -> None:
    data = b"short\n" + b"L" * 30 + b"\nnext\n" + b"M" * 25
    path = tmp_path / "long.log"
    path.write_bytes(data)
    expected = [
        ("lines", 1, b"short\n"),
        ("reject", 2, b"line longer than 24 bytes"),
        ("lines", 3, b"next\n"),
        ("reject", 4, b"line longer than 24 bytes"),
    ]
    for block in (4, 16, 24):
        assert _merge(_span_view(path, block, 24)[0]) == expected
        assert _merge(_raw_view(data, block, 24)) == expected


def test_closing_the_reader_while_a_span_is_held_does_not_raise(tmp_path: Path) -> None:
    # Ctrl-C lands while the consumer still holds a span: closing must not fail with
    # "cannot close exported pointers exist" (it turned an interrupt into exit 70)
    path = tmp_path / "f.log"
    path.write_bytes(b"a\n" * 1000)
    with path.open("rb") as fh:
        spans = read_spans(fh, block=64)
        held = next(spans)
        assert isinstance(held, FileSpan) and bytes(held.view[:2]) == b"a\n"
        spans.close()
