"""The streaming line reader: every byte once, in chunks of bounded size and line count."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from acdkit.sources import _lines
from acdkit.sources._lines import HashingReader, LineChunk, RawChunk, read_raw


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


@settings(max_examples=200, deadline=None)
@given(
    lines=st.lists(line, max_size=30),
    trailing=st.booleans(),
    block=st.integers(min_value=1, max_value=24),
)
def test_chunks_hold_every_line_once_in_order(
    lines: list[bytes], trailing: bool, block: int
) -> None:
    data = b"\n".join(lines) + (b"\n" if trailing and lines else b"")
    max_line = 24
    items = _raw_view(data, block, max_line)

    expected: list[tuple[str, int, bytes]] = []
    pieces = [p + b"\n" for p in data.split(b"\n")]
    pieces[-1] = pieces[-1][:-1]  # the last piece has no line end
    for number, text in enumerate([p for p in pieces if p], start=1):
        if len(text.removesuffix(b"\n")) > max_line:
            expected.append(("reject", number, f"line longer than {max_line} bytes".encode()))
        else:
            expected.append(("lines", number, text))
    assert _merge(items) == _merge(expected)


def test_a_line_over_the_limit_is_rejected() -> None:
    data = b"short\n" + b"L" * 30 + b"\nnext\n" + b"M" * 25
    expected = [
        ("lines", 1, b"short\n"),
        ("reject", 2, b"line longer than 24 bytes"),
        ("lines", 3, b"next\n"),
        ("reject", 4, b"line longer than 24 bytes"),
    ]
    for block in (4, 16, 24):
        assert _merge(_raw_view(data, block, 24)) == expected


def test_a_block_of_short_lines_is_cut_into_chunks_of_bounded_line_count(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # a gzip bomb of newlines: 16 MiB of them made one chunk of 16 million rows, which took
    # 14 GB to parse; chunks now hold at most MAX_CHUNK_LINES lines, whatever the block
    monkeypatch.setattr(_lines, "MAX_CHUNK_LINES", 1000)
    data = b"a\n" + b"\n" * 4500 + b"tail"
    items = list(read_raw(io.BytesIO(data), block=1 << 20))
    assert all(isinstance(i, RawChunk) for i in items)
    counts = [i.line_count for i in items if isinstance(i, RawChunk)]
    firsts = [i.first_line for i in items]
    assert counts == [1000, 1000, 1000, 1000, 501, 1]
    assert firsts == [1, 1001, 2001, 3001, 4001, 4502]
    assert b"".join(i.data for i in items if isinstance(i, RawChunk)) == data


def test_the_hashing_reader_digests_the_whole_file(tmp_path: Path) -> None:
    data = b"x" * 100 + b"\n" + b"y\n" * 50
    path = tmp_path / "f.log"
    path.write_bytes(data)
    with path.open("rb") as fh:
        reader = HashingReader(fh, hashlib.sha256())
        got = b"".join(i.data for i in read_raw(reader, block=16) if isinstance(i, RawChunk))
    assert got == data
    assert (reader.size, reader.hasher.hexdigest()) == (len(data), hashlib.sha256(data).hexdigest())
