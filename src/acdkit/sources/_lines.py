"""Streaming line reader: plain or gzip files into Arrow arrays of lines, in bounded memory.

Lines are found with numpy over large blocks, so no Python code runs per line.  Each line
keeps its terminator (callers trim it in SQL); invalid UTF-8 lines and over-long lines come
back as rejects with their line number, and the rest of the file still flows.
"""

from __future__ import annotations

import functools
import gzip
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import pyarrow as pa

__all__ = [
    "GZIP_MAGIC",
    "HashingReader",
    "LineChunk",
    "RawChunk",
    "content_head",
    "open_source",
    "read_chunks",
    "read_raw",
]

GZIP_MAGIC = b"\x1f\x8b"
BLOCK = 16 << 20
MAX_LINE = 64 << 20
# lines per chunk at most: a block of very short lines (a gzip bomb of newlines) would
# otherwise make one chunk of 16 million rows, and parsing costs memory per row
MAX_CHUNK_LINES = 1 << 16


@dataclass
class LineChunk:
    """Consecutive lines of one file; ``first_line`` is the 1-based number of ``lines[0]``."""

    first_line: int
    lines: pa.Array  # large_string, null where the line was rejected below
    rejects: list[tuple[int, str]] = field(default_factory=list)  # (line number, reason)

    def line_numbers(self) -> pa.Array:
        n = len(self.lines)
        return pa.array(np.arange(self.first_line, self.first_line + n, dtype=np.uint64))


class HashingReader:
    """A file read front to back that hashes every byte it hands out, and counts them.

    It does not seek: the digest is that of the file only because every byte passes
    through once, in order.  `drain` reads what a reader left unread (a damaged gzip
    stream's tail), so the digest always covers the whole file.
    """

    def __init__(self, raw: BinaryIO, hasher: Any) -> None:
        self._raw = raw
        self.hasher = hasher
        self.size = 0
        self.mode = "rb"
        self.name = getattr(raw, "name", "")

    def _seen(self, data: bytes) -> bytes:
        self.update(data)
        return data

    def update(self, data: bytes | memoryview) -> None:
        self.hasher.update(data)
        self.size += len(data)

    def read(self, n: int = -1) -> bytes:
        return self._seen(self._raw.read(n))

    def read1(self, n: int = -1) -> bytes:
        return self._seen(self._raw.read1(n))  # type: ignore[attr-defined]

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def tell(self) -> int:
        return self.size

    def drain(self) -> None:
        """Hash what a decompressor left unread, such as the tail of a damaged stream."""
        while self.read(1 << 20):
            pass

    def close(self) -> None:
        self._raw.close()

    def __enter__(self) -> HashingReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_source(path: Path, hasher: Any = None) -> BinaryIO:
    """Open a file for reading, transparently decompressing gzip (detected by magic).

    With ``hasher`` (a hashlib object), the file's own bytes (compressed, if it is gzip)
    are fed to it as they are read; `HashingReader` wraps the file to do so.
    """
    fh: Any = path.open("rb")
    magic = fh.read(2)
    fh.seek(0)
    if hasher is not None:
        fh = HashingReader(fh, hasher)
    if magic == GZIP_MAGIC:
        return gzip.GzipFile(fileobj=fh, mode="rb")  # type: ignore[return-value]
    return fh  # type: ignore[no-any-return]


def content_head(path: Path, limit: int = 1 << 16, scan: int = 16 << 20) -> bytes:
    """The first lines of a file, from the first byte that is not blank (or a BOM), for a
    sniffer: about ``limit`` bytes and at least 8 lines where they fit in 4 * ``limit``;
    empty if the file holds nothing else.  A damaged gzip stream yields what came before.

    Lines longer than ``limit`` are left out, up to ``scan`` bytes into the file: a first
    line that is hostile (JSON nested thousands deep) or merely large (an alert with its
    payload) must not hide the format of the lines after it.  A file of such lines only
    gives the start of its first one (a JSON document on one line: its opening).
    """
    kept: list[bytes] = []
    size, seen, first_long = 0, 0, b""
    rest, skipping = b"", False  # the start of a line not complete yet; inside a long one
    with open_source(path) as fh:
        try:
            for data in _blocks(fh, limit):
                seen += len(data)
                if skipping:
                    nl = data.find(b"\n")
                    if nl < 0:
                        continue
                    data, skipping = data[nl + 1 :], False
                rest += data
                if not kept:
                    rest = rest.lstrip(b" \t\r\n\xef\xbb\xbf")
                while (nl := rest.find(b"\n")) >= 0:
                    line, rest = rest[: nl + 1], rest[nl + 1 :]
                    if len(line) > limit:
                        first_long = first_long or line[:limit]
                    else:
                        kept.append(line)
                        size += len(line)
                if len(rest) > limit:  # inside an over-long line: skip to its end
                    first_long = first_long or rest[:limit]
                    rest, skipping = b"", True
                if _enough(len(kept), size, limit) or seen >= scan:
                    break
        except (EOFError, OSError, zlib.error):
            pass
    if not _enough(len(kept), size, limit):
        kept.append(rest)  # the last line of the file, or the start of one that goes on
    return b"".join(kept) or first_long


def _enough(lines: int, size: int, limit: int) -> bool:
    return (size >= limit // 2 and lines >= 8) or size >= 4 * limit


def _blocks(fh: BinaryIO, block: int) -> Iterator[bytes]:
    """The stream in blocks of ``block`` bytes; on a read error, first what came before it.

    ``GzipFile.read(n)`` on a truncated stream raises and drops everything it decompressed
    in that call (all of a small file); ``read1`` returns at most one decompressed piece
    per call, so only the failing call is lost, and it holds no data.
    """
    read = getattr(fh, "read1", fh.read)
    parts: list[bytes] = []
    size = 0
    while True:
        try:
            data = read(block - size)
        except (EOFError, OSError, zlib.error):
            if parts:
                yield b"".join(parts)
            raise
        if not data:
            break
        parts.append(data)
        size += len(data)
        if size >= block:
            yield b"".join(parts)
            parts, size = [], 0
    if parts:
        yield b"".join(parts)


def _damage(exc: BaseException) -> str:
    """What went wrong in a compressed stream, in words of ours: the library's message can
    quote input bytes ("Not a gzipped file (b'..')") and it lands in the ledger."""
    if isinstance(exc, EOFError):
        return "the stream ends before its end marker"
    if isinstance(exc, gzip.BadGzipFile):
        return "a gzip member header or trailer is damaged"
    if isinstance(exc, zlib.error):
        return "the compressed data are corrupt"
    return "the compressed stream could not be read"


class TruncatedInput(Exception):
    """The compressed stream ended early or is corrupt after ``lines_read`` lines."""

    def __init__(self, lines_read: int, detail: str) -> None:
        super().__init__(detail)
        self.lines_read = lines_read
        self.detail = detail


def _to_chunk(data: bytes, first_line: int) -> LineChunk:
    buf = np.frombuffer(data, dtype=np.uint8)
    ends = np.flatnonzero(buf == 10) + 1
    if len(ends) == 0 or ends[-1] != len(buf):
        ends = np.append(ends, len(buf))
    offsets = np.concatenate([[0], ends]).astype(np.int64)
    n = len(offsets) - 1
    binary = pa.LargeBinaryArray.from_buffers(
        pa.large_binary(), n, [None, pa.py_buffer(offsets.tobytes()), pa.py_buffer(data)]
    )
    try:
        return LineChunk(first_line, binary.cast(pa.large_string()))
    except pa.ArrowInvalid:
        return _salvage_utf8(binary, first_line)


def _salvage_utf8(binary: pa.Array, first_line: int) -> LineChunk:
    """Rare path: some line in the block is not UTF-8; null those lines and reject them."""
    values: list[str | None] = []
    rejects: list[tuple[int, str]] = []
    for i, raw in enumerate(binary.to_pylist()):
        try:
            values.append(raw.decode("utf-8"))
        except UnicodeDecodeError as exc:
            values.append(None)
            rejects.append((first_line + i, f"invalid UTF-8 at byte {exc.start} of the line"))
    return LineChunk(first_line, pa.array(values, pa.large_string()), rejects)


@dataclass
class RawChunk:
    """Complete lines as bytes, not split yet: what the reading process hands to a worker."""

    first_line: int
    data: bytes
    offset: int  # position of ``data`` in the (decompressed) stream

    @functools.cached_property
    def line_count(self) -> int:
        return self.data.count(b"\n") + (0 if self.data.endswith(b"\n") else 1)

    def chunk(self) -> LineChunk:
        return _to_chunk(self.data, self.first_line)


def read_raw(
    fh: BinaryIO, block: int | None = None, max_line: int | None = None
) -> Iterator[RawChunk | LineChunk]:
    """The file as raw chunks of complete lines (about ``block`` bytes each).

    A line longer than ``max_line`` comes back as a reject-only LineChunk and is skipped
    without being held in memory; a truncated compressed stream raises TruncatedInput after
    what came before it.
    """
    max_line = max_line or MAX_LINE  # read at call time, so tests can shrink it
    line_no = 1
    carry = b""
    consumed = 0  # stream bytes before ``carry``
    skipping_long = False
    blocks = _blocks(fh, block or BLOCK)  # read at call time, so tests can shrink it
    while True:
        try:
            data = next(blocks, b"")
        except (EOFError, OSError, zlib.error) as exc:
            lines_read = line_no - 1
            if carry and not skipping_long:
                # the stream stops inside this line: what we have of it is not the line
                yield LineChunk(
                    line_no,
                    pa.nulls(1, pa.large_string()),
                    [(line_no, "line cut off where the compressed input ends")],
                )
            raise TruncatedInput(
                lines_read, f"compressed input is truncated or corrupt: {_damage(exc)}"
            ) from None
        if not data:
            break
        if skipping_long:
            cut = data.find(b"\n")
            if cut < 0:
                consumed += len(data)
                continue
            consumed += cut + 1
            data = data[cut + 1 :]
            skipping_long = False
            line_no += 1
        carry += data
        cut = carry.rfind(b"\n")
        if cut < 0:
            if len(carry) > max_line:
                yield LineChunk(
                    line_no,
                    pa.nulls(1, pa.large_string()),
                    [(line_no, f"line longer than {max_line} bytes")],
                )
                consumed += len(carry)
                carry, skipping_long = b"", True
            continue
        first = carry.find(b"\n")
        if first > max_line:  # a line begun in an earlier block ended here, too long
            yield LineChunk(
                line_no,
                pa.nulls(1, pa.large_string()),
                [(line_no, f"line longer than {max_line} bytes")],
            )
            consumed, line_no = consumed + first + 1, line_no + 1
            carry, cut = carry[first + 1 :], cut - first - 1
            if cut < 0:
                continue
        complete, carry = carry[: cut + 1], carry[cut + 1 :]
        for piece in _by_lines(complete, MAX_CHUNK_LINES):
            raw = RawChunk(line_no, piece, consumed)
            consumed += len(piece)
            line_no += raw.line_count
            yield raw
    if carry and not skipping_long:
        yield RawChunk(line_no, carry, consumed)


def _by_lines(data: bytes, most: int) -> Iterator[bytes]:
    """``data`` (complete lines) in pieces of at most ``most`` lines."""
    if len(data) <= most or data.count(b"\n") <= most:
        yield data  # the common case: lines of more than a few dozen bytes
        return
    ends = np.flatnonzero(np.frombuffer(data, dtype=np.uint8) == 10)
    start = 0
    for k in range(most - 1, len(ends), most):
        stop = int(ends[k]) + 1
        yield data[start:stop]
        start = stop
    if start < len(data):
        yield data[start:]


def read_chunks(
    fh: BinaryIO, block: int | None = None, max_line: int | None = None
) -> Iterator[LineChunk]:
    """Yield the file's lines in chunks of about ``block`` bytes."""
    for item in read_raw(fh, block, max_line):
        yield item.chunk() if isinstance(item, RawChunk) else item
