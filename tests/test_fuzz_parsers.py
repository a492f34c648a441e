"""Every parser of evidence, fed arbitrary and structurally mutated input (EVIDENCE §3.12.6).

Each must return a valid object or raise acdkit's MalformedError: never another exception
(which the CLI would report as an internal error, exit 70), and never read an oversized
input whole.
"""

from __future__ import annotations

import pytest

from acdkit.encoding import EntryType, TlvType, entry, tlv
from acdkit.errors import MalformedError
from acdkit.sealinfo import SealInfo


def _seal_body(sources: bytes) -> bytes:
    u64 = (0).to_bytes(8, "big")
    return b"".join(
        [
            tlv(1, TlvType.UTF8, b"acdkit/x/y"),
            *(tlv(fid, TlvType.U64, u64) for fid in (2, 3, 4, 5)),
            tlv(6, TlvType.BYTES, bytes(32)),
            tlv(9, TlvType.I64, u64),
            tlv(10, TlvType.UTF8, b"acdkit 0.1.0"),
            tlv(11, TlvType.BYTES, bytes(4)),
            tlv(12, TlvType.UTF8LIST, sources),
            tlv(13, TlvType.UTF8, b"host"),
        ]
    )


@pytest.mark.parametrize(
    "sources",
    [
        b"\x00\x00\x00\x02\xb7a",  # an item that is not UTF-8 (found by the bit-flip suite)
        b"\x00\x00\x00\x09abc",  # an item longer than what is left of the field
        b"\x00\x00",  # a truncated item length
    ],
)
def test_seal_source_list_damage_is_malformed(sources: bytes) -> None:
    with pytest.raises(MalformedError):
        SealInfo.from_entry(entry(EntryType.SEAL, _seal_body(sources)))
