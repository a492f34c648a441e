"""An EVTX file read chunk by chunk, so that damage is found, located and counted.

The records themselves are decoded by the ``evtx`` package (pyevtx-rs).  Left to itself it
drops a damaged or cut-off chunk without a word, so each 64 KiB chunk is handed to it on its
own, behind a clean file header of our making, and its output is checked against the
chunk's own header: the chunk says which record ids it holds, so a record the library could
not decode is known by number and becomes a reject.  Where a chunk header is unreadable,
the ids of its neighbours (or the file header's next id) tell how many records were lost.

Layout facts used here (libyal "Windows XML Event Log (EVTX) format", §2-§3): a 4096-byte
file header (magic ``ElfFile\\0``, next record id at 24, flags at 120, CRC32 of bytes 0-119
at 124), then 65536-byte chunks (magic ``ElfChnk\\0``, first and last record number at 8
and 16, first and last record id at 24 and 32, header size 128 at 40, free space offset at
48, CRC32 of the record data 512..free space at 52, CRC32 of bytes 0-119 and 128-511 at
124).
"""

from __future__ import annotations

import io
import struct
import warnings
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, cast

import evtx

__all__ = ["CHUNK_MAGIC", "FILE_HEADER", "MAGIC", "ChunkRecords", "read_chunks"]

MAGIC = b"ElfFile\x00"
CHUNK_MAGIC = b"ElfChnk\x00"
FILE_HEADER = 4096
CHUNK = 65536
CHUNK_HEADER = 512
# a record is at least its 24-byte header and 4-byte size copy plus some binary XML, so a
# chunk cannot hold more than this many; a header counting more is damaged
MAX_PER_CHUNK = (CHUNK - CHUNK_HEADER) // 28
FLAG_DIRTY = 0x1


def _clean_header() -> bytes:
    """A file header for one chunk, so the library never reads a damaged original."""
    head = bytearray(FILE_HEADER)
    head[:8] = MAGIC
    # first chunk 0, last chunk 0, next record id 1, header size 128, version 3.1,
    # header block size 4096, one chunk
    struct.pack_into("<QQQIHHHH", head, 8, 0, 0, 1, 128, 1, 3, FILE_HEADER, 1)
    struct.pack_into("<I", head, 124, zlib.crc32(head[:120]))
    return bytes(head)


CLEAN_HEADER = _clean_header()


@dataclass
class ChunkRecords:
    """What one chunk gave: record JSON texts with their numbers, rejects, warnings.

    ``last`` is the highest record number given out so far in the file, ``done`` the bytes
    of the file behind this chunk.
    """

    numbers: list[int] = field(default_factory=list)
    records: list[str] = field(default_factory=list)
    rejects: list[tuple[int, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    last: int = 0
    done: int = 0


@dataclass
class _Block:
    """One 64 KiB block of the file as its header describes it."""

    index: int
    offset: int
    length: int
    state: str  # ok | empty | damaged
    why: str = ""
    first_id: int = 0
    count: int = 0
    free: int = 0
    data_crc: int = 0
    # for a damaged block: how many records its run of damaged blocks held in all (None:
    # unknown), set on every block of the run; the loss is counted at the run's last block
    run_gap: int | None = None
    run_last: bool = False

    @property
    def last_id(self) -> int:
        return self.first_id + self.count - 1

    @property
    def where(self) -> str:
        return f"chunk {self.index} at byte {self.offset}"


@dataclass(frozen=True)
class _FileHeader:
    """What a trusted file header promises: the next record id and the chunk count."""

    next_id: int
    chunks: int

    def bound(self, last_id: int) -> int | None:
        """How many records the header counts beyond ``last_id`` (None: not plausible)."""
        gap = self.next_id - 1 - last_id
        return gap if 0 <= gap <= MAX_PER_CHUNK * self.chunks else None


def _file_header(head: bytes, size: int) -> tuple[_FileHeader | None, list[str]]:
    """The file header's promises (None where it cannot be trusted) and warnings."""
    if size < FILE_HEADER:
        return None, [f"file ends inside the EVTX file header ({size} of {FILE_HEADER} bytes)"]
    stored = struct.unpack_from("<I", head, 124)[0]
    if zlib.crc32(head[:120]) != stored:
        return None, ["EVTX file header is damaged (checksum mismatch); its chunks were read"]
    (next_id,) = struct.unpack_from("<Q", head, 24)
    (chunks,) = struct.unpack_from("<H", head, 42)
    (flags,) = struct.unpack_from("<I", head, 120)
    # a file copied while open ("dirty") may have chunks newer than its header says
    return (None if flags & FLAG_DIRTY else _FileHeader(next_id, chunks)), []


def _chunk_header(index: int, offset: int, raw: bytes, length: int) -> _Block:
    block = _Block(index, offset, length, "ok")
    if not raw.strip(b"\x00"):
        block.state = "empty"
        return block
    if len(raw) < CHUNK_HEADER or raw[:8] != CHUNK_MAGIC:
        block.state, block.why = "damaged", "no chunk header"
        return block
    first_no, last_no, first_id, last_id, size = struct.unpack_from("<QQQQI", raw, 8)
    block.free, block.data_crc = struct.unpack_from("<II", raw, 48)
    stored = struct.unpack_from("<I", raw, 124)[0]
    count = last_id - first_id + 1
    if zlib.crc32(raw[:120] + raw[128:CHUNK_HEADER]) != stored:
        block.state, block.why = "damaged", "chunk header checksum mismatch"
    elif (
        size != 128
        or not 0 < count <= MAX_PER_CHUNK
        or last_no - first_no != last_id - first_id
        or not CHUNK_HEADER <= block.free <= CHUNK
    ):
        block.state, block.why = "damaged", "implausible chunk header"
    else:
        block.first_id, block.count = first_id, count
    return block


def _plan(fh: BinaryIO, size: int, header: _FileHeader | None) -> list[_Block]:
    """Every block's header, and for each run of damaged blocks how many records it lost."""
    blocks = []
    for index, offset in enumerate(range(FILE_HEADER, size, CHUNK)):
        fh.seek(offset)
        raw = fh.read(CHUNK_HEADER)
        blocks.append(_chunk_header(index, offset, raw, min(CHUNK, size - offset)))
    i = 0
    while i < len(blocks):
        if blocks[i].state != "damaged":
            i += 1
            continue
        j = i
        while j + 1 < len(blocks) and blocks[j + 1].state == "damaged":
            j += 1
        run_gap = None
        before = blocks[i - 1] if i > 0 and blocks[i - 1].state == "ok" else None
        after = next((b for b in blocks[j + 1 :] if b.state != "empty"), None)
        if before is not None and after is not None and after.state == "ok":
            gap = after.first_id - before.last_id - 1
            # a wrapped log restarts its ids; a gap out of range tells nothing
            if 0 <= gap <= MAX_PER_CHUNK * (j - i + 1):
                run_gap = gap
        elif before is not None and after is None and header is not None:
            run_gap = header.bound(before.last_id)
        for block in blocks[i : j + 1]:
            block.run_gap = run_gap
        blocks[j].run_last = True
        i = j + 1
    return blocks


def _decode(data: bytes) -> tuple[list[tuple[int, str]], bool]:
    """(record id, JSON text) of every record the library decodes; False if it gave up."""
    out: list[tuple[int, str]] = []
    parser = evtx.PyEvtxParser(
        io.BytesIO(CLEAN_HEADER + data), number_of_threads=1, skip_errors=True
    )
    records = cast(Iterator[dict[str, Any]], parser.records_json())
    with warnings.catch_warnings():
        # the library warns per record it skips; those are counted here, not shown
        warnings.simplefilter("ignore")
        try:
            for rec in records:
                out.append((rec["event_record_id"], rec["data"]))
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException:
            # a panic inside the Rust library arrives as a BaseException; what was decoded
            # before it is kept, the rest of the chunk counts as lost
            return out, False
    return out, True


class _Numbering:
    """Record numbers handed out in file order, and what the current damaged run read."""

    def __init__(self) -> None:
        self.last = 0
        self.run_read = 0  # records read from the current run of damaged blocks

    def take(self, n: int) -> list[int]:
        first = self.last + 1
        self.last += n
        return list(range(first, self.last + 1))


def _ok_block(block: _Block, data: bytes, num: _Numbering, out: ChunkRecords) -> None:
    decoded, finished = _decode(data)
    ids = [rid for rid, _ in decoded]
    in_range = all(block.first_id <= rid <= block.last_id for rid in ids)
    base = num.last
    if in_range and len(set(ids)) == len(ids):
        # each record at its own place: the records the library lost are known by number
        slots = {rid - block.first_id for rid in ids}
        out.numbers += [base + 1 + rid - block.first_id for rid in ids]
        missing = [base + 1 + s for s in range(block.count) if s not in slots]
        num.take(block.count)
    else:
        out.numbers += num.take(len(decoded))
        missing = num.take(max(0, block.count - len(decoded)))
        out.warnings.append(
            f"EVTX {block.where} holds records its header does not list; "
            "they were kept in file order"
        )
    out.records += [text for _, text in decoded]
    cut = block.length < CHUNK
    reason = "EVTX record cut off by the end of the file" if cut else "EVTX record unreadable"
    out.rejects += [(n, f"{reason} ({block.where})") for n in missing]
    if cut:
        out.warnings.append(
            f"file ends inside EVTX {block.where} ({block.length} of {CHUNK} bytes); "
            f"{len(decoded)} of its {block.count} records were read"
        )
    elif zlib.crc32(data[CHUNK_HEADER : block.free]) != block.data_crc:
        out.warnings.append(
            f"EVTX {block.where}: its record data fail their checksum; the {len(decoded)} "
            f"records read from it may have been altered, {len(missing)} are unreadable"
        )
    elif missing or not finished:
        out.warnings.append(
            f"EVTX {block.where}: {len(missing)} of its {block.count} records are unreadable"
        )


def _damaged_block(block: _Block, data: bytes, num: _Numbering, out: ChunkRecords) -> None:
    decoded, _ = _decode(data) if block.why != "no chunk header" else ([], True)
    out.numbers += num.take(len(decoded))
    out.records += [text for _, text in decoded]
    num.run_read += len(decoded)
    lost = ""
    if block.run_last and block.run_gap is not None:
        missing = max(0, block.run_gap - num.run_read)
        out.rejects += [(n, f"EVTX record unreadable ({block.where})") for n in num.take(missing)]
        lost = f"; {missing} records of the damaged run ending here could not be read"
    elif block.run_gap is None and not decoded:
        # nothing tells how many records were lost: one reject stands for the chunk
        (n,) = num.take(1)
        out.rejects.append((n, f"EVTX chunk unreadable, record count unknown ({block.where})"))
    if block.run_last:
        num.run_read = 0
    out.warnings.append(
        f"EVTX {block.where} is damaged ({block.why}); {len(decoded)} records were read "
        f"from it{lost}"
    )


def _missing_tail(
    blocks: list[_Block], header: _FileHeader | None, num: _Numbering
) -> ChunkRecords:
    """Records the file header counts but no chunk holds: the file was cut at a chunk."""
    out = ChunkRecords()
    used = [b for b in blocks if b.state != "empty"]
    if header is None or (used and used[-1].state != "ok"):
        return out  # a damaged last run has had its loss counted already
    if used:
        missing = header.bound(max(b.last_id for b in used if b.state == "ok")) or 0
    elif header.chunks == 0 or header.next_id <= 1:
        return out  # a log that was never written to
    else:
        # the file ends after its header, which counts chunks and records: all are lost
        counted = header.bound(0)
        if counted is None:  # a wrapped log: how many its chunks held is not known
            (n,) = num.take(1)
            out.rejects.append((n, _LOST_UNKNOWN))
            out.warnings.append(
                f"the EVTX file header counts {header.chunks} chunks, but the file ends "
                "after the header (file cut short?)"
            )
            return out
        missing = counted
    if missing:
        reason = "EVTX record missing: the file ends before it (its header counts it)"
        out.rejects += [(n, reason) for n in num.take(missing)]
        out.warnings.append(
            f"the EVTX file header counts {missing} records after the last one in the file "
            "(file cut short?)"
        )
    return out


_LOST_UNKNOWN = "EVTX records missing, count unknown: the file ends after its header"


def read_chunks(path: Path) -> Iterator[ChunkRecords]:
    """Each chunk's records, rejects and warnings, in file order; never raises on damage."""
    with path.open("rb") as fh:
        size = path.stat().st_size
        header, head_warnings = _file_header(fh.read(FILE_HEADER), size)
        blocks = _plan(fh, size, header)
        num = _Numbering()
        first: ChunkRecords | None = ChunkRecords(warnings=head_warnings)
        for block in blocks:
            out = first if first is not None else ChunkRecords()
            first = None
            fh.seek(block.offset)
            data = fh.read(block.length)
            if block.state == "empty" and not data.strip(b"\x00"):
                pass  # space never written: no records, nothing lost
            elif block.state == "ok":
                _ok_block(block, data.ljust(CHUNK, b"\x00"), num, out)
            else:
                if block.state == "empty":
                    block.why, block.run_last = "zero chunk header over data", True
                _damaged_block(block, data.ljust(CHUNK, b"\x00"), num, out)
            out.last, out.done = num.last, block.offset + block.length
            yield out
        tail = _missing_tail(blocks, header, num)
        if first is not None:  # no chunk at all: the header's findings still count
            tail.warnings[:0] = first.warnings
        tail.last, tail.done = num.last, size
        yield tail
