"""Detection of the Windows formats over every sample there is: each Windows sample is
claimed by its own format and by no other sniffer, and no other sample by a Windows sniffer.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from acdkit import ingest, sources
from acdkit.sources._lines import content_head

DATA = Path(__file__).parent / "data"
WINDOWS = {
    "sysmon-evtx": "windows-evtx",
    "winsec-4688": "windows-evtx",
    "sysmon-json": "winevent-json",
    "winlogbeat": "winlogbeat",
}
# sample folders whose format acdkit reads already; the others wait for their formats
KNOWN = {
    **WINDOWS,
    "zeek-tsv": "zeek-tsv",
    "zeek-json": "zeek-json",
    "suricata-eve": "suricata-eve",
}
NOTES = {"SOURCES.md", "README.md", "FORMATS.md"}


def heads(path: Path) -> tuple[bytes, bytes]:
    """What detection sees of a file, as ingest shows it: text head and raw first bytes."""
    with path.open("rb") as fh:
        raw = fh.read(ingest.HEAD_BYTES)
    return content_head(path, ingest.HEAD_BYTES), raw


def sample_files(root: Path) -> list[tuple[str, Path]]:
    return sorted(
        (p.relative_to(root).parts[0], p)
        for p in root.rglob("*")
        if p.is_file() and p.name not in NOTES and len(p.relative_to(root).parts) > 1
    )


def accepting(path: Path) -> list[str]:
    head, raw = heads(path)
    return [
        name
        for name in sources.names()
        if sources.get(name).sniff(raw if sources.get(name).read_records else head)
    ]


def check_folder(root: Path) -> int:
    checked = 0
    for folder, path in sample_files(root):
        claims = accepting(path)
        mine = [name for name in claims if name in set(WINDOWS.values())]
        if folder in WINDOWS:
            assert claims == [WINDOWS[folder]], path
        else:
            assert mine == [], path
        if folder in KNOWN:
            head, raw = heads(path)
            assert sources.detect(head, raw).name == KNOWN[folder], path
        checked += 1
    return checked


def test_every_shared_sample(samples: Path) -> None:
    assert check_folder(samples) > 40


def test_every_file_in_tests_data() -> None:
    assert check_folder(DATA) >= 18


@pytest.mark.parametrize(
    "head",
    [
        b"ElfFile",  # cut magic
        b"ElfChnk\x00" + bytes(100),  # a chunk on its own is not a file
        b'{"Event": {"System": {"EventID": 1}}}\n',  # evtx_dump JSON: not read yet
        b'{"EventID": 4688, "Message": "x"}\n',  # no provider or channel
        b'{"winlog": {"channel": "Security"}}\n',  # no event id
    ],
)
def test_near_misses_are_not_claimed(head: bytes) -> None:
    assert [n for n in sources.names() if sources.get(n).sniff(head)] == []
