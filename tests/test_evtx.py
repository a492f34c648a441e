"""Windows EVTX: every record of the real samples accounted for, hand-checked values of the
records each pitfall concerns, damaged files read as far as they can be, nothing of the
command lines or user names in the store.

Expected values were read off the raw records (the ``evtx`` package's JSON of each record,
checked against sysmon-evtx/SOURCES.md and winsec-4688/SOURCES.md), not from acdkit.
"""

from __future__ import annotations

import gzip
import random
import struct
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import pytest

from _winrows import Ingested, utc_ns
from acdkit import cmdsig, ingest, keys, minimize, schema, seal, sources
from acdkit.ingest import _connect
from acdkit.sources import _evtxfile, windows_evtx
from acdkit.store import Store

UACME = "sysmon-evtx/Sysmon_UACME_64.evtx"
RDP = "sysmon-evtx/DE_sysmon-3-rdp-tun.evtx"
PSEXEC = "winsec-4688/mdecrevoisier-ID4688-4697-5140-5145-PSexec-remote-execution.evtx"
CHUNK3 = 4096 + 3 * 65536  # Sysmon_UACME_64.evtx: 12 chunks; chunk 3 holds records 143-191


def sysmon(*ids: tuple[int, int]) -> dict[str, int]:
    return {f"Sysmon event {e} is not ingested": n for e, n in ids}


def security(*ids: tuple[int, int]) -> dict[str, int]:
    return {f"Security event {e} is not ingested": n for e, n in ids}


# path under samples/, records, rows per table, skip reasons (SOURCES.md event counts)
REAL = [
    (
        "sysmon-evtx/DE_sysmon-3-rdp-tun.evtx",
        73,
        {"net": 42, "dns": 0, "edr": 13},
        sysmon((5, 12), (6, 6)),
    ),
    (
        "sysmon-evtx/LM_impacket_docmexec_mmc_sysmon_01.evtx",
        9,
        {"net": 4, "dns": 0, "edr": 5},
        {},
    ),
    (
        UACME,
        530,
        {"net": 0, "dns": 1, "edr": 3},
        sysmon((7, 511), (12, 7), (23, 3), (11, 2), (5, 2), (10, 1)),
    ),
    (
        "sysmon-evtx/exec_persist_rundll32_mshta_scheduledtask_sysmon_1_3_11.evtx",
        8,
        {"net": 3, "dns": 0, "edr": 4},
        sysmon((11, 1)),
    ),
    (
        "winsec-4688/DE_RDP_Tunnel_5156.evtx",
        101,
        {"net": 63, "dns": 0, "edr": 17},
        {
            **security((5158, 9), (4624, 5), (4648, 3), (4672, 3)),
            "event 1102 of another provider is not ingested": 1,
        },
    ),
    (
        "winsec-4688/LM_WMI_4624_4688_TargetHost.evtx",
        8,
        {"net": 0, "dns": 0, "edr": 2},
        security((4624, 6)),
    ),
    (
        PSEXEC,
        30,
        {"net": 0, "dns": 0, "edr": 11},
        security((4624, 5), (5140, 2), (5145, 9), (4674, 2), (4697, 1)),
    ),
    (
        "winsec-4688/tutto_malseclogon.evtx",
        15,
        {"net": 0, "dns": 0, "edr": 9},
        {**sysmon((10, 3)), **security((4703, 2), (4624, 1))},
    ),
]


def test_real_list_covers_every_evtx_sample(samples: Path) -> None:
    found = {p.relative_to(samples).as_posix() for p in samples.glob("*/*.evtx")}
    assert found == {rel for rel, *_ in REAL}


@pytest.mark.parametrize(("rel", "lines", "tables", "skips"), REAL)
def test_real_file_every_record_accounted(
    store: Store,
    real: Callable[[str], Path],
    rel: str,
    lines: int,
    tables: dict[str, int],
    skips: dict[str, int],
) -> None:
    got = Ingested(store, real(rel))
    r = got.result
    assert (r.format, r.lines, r.records, r.rejected, r.warnings) == (
        "windows-evtx",
        lines,
        tables,
        0,
        [],
    )
    assert got.reasons("skip") == skips
    assert got.every_line_once()
    # no 1601 record-header time slipped in: it would be a finding of the sensor's clock
    assert not any("before_1990" in c["findings"] for c in r.clock_skew)


# -- values of hand-checked records -------------------------------------------------------------


def test_sysmon_3_inbound_is_swapped_to_client_server(
    store: Store, real: Callable[[str], Path]
) -> None:
    net = Ingested(store, real("sysmon-evtx/DE_sysmon-3-rdp-tun.evtx")).rows["net"]
    # record 6: svchost (RDP listener), Initiated=false, Source 127.0.0.2:3389,
    # Destination 127.0.0.1:49186; record 5 is the same connection seen from plink.exe
    for line in (5, 6):
        assert net[line] | {"ts_utc": 0, "src_line": 0} == {
            "event_kind": "conn",
            "session_id": None,
            "src_ip": "127.0.0.1",
            "src_port": 49186,
            "dst_ip": "127.0.0.2",
            "dst_port": 3389,
            "proto": "tcp",
            "service": None,
            "tls_ja3": None,
            "tls_ja3s": None,
            "sni": None,
            "http_verb": None,
            "url_host": None,
            "url_path": None,
            "http_status": None,
            "cmd_sig": None,
            "ts_utc": 0,
            "duration_ns": None,
            "orig_bytes": None,
            "resp_bytes": None,
            "orig_pkts": None,
            "resp_pkts": None,
            "sensor_id": "PC01.example.corp",
            "src_line": 0,
        }
        assert net[line]["ts_utc"] == utc_ns("2019-02-16 10:02:46.454")  # UtcTime
    # record 7: UDP LLMNR, inbound, IPv6 with uncompressed zero groups
    assert (net[7]["src_ip"], net[7]["src_port"], net[7]["dst_ip"], net[7]["dst_port"]) == (
        "fe80::80ac:4126:fa58:1b81",
        64763,
        "ff02::1:3",
        5355,
    )
    # record 4: plink.exe, Initiated=true: kept as written
    assert (net[4]["src_ip"], net[4]["src_port"], net[4]["dst_ip"], net[4]["dst_port"]) == (
        "10.0.2.17",
        49185,
        "10.0.2.18",
        80,
    )


def test_sysmon_1_with_sha256_and_without(store: Store, real: Callable[[str], Path]) -> None:
    edr = Ingested(store, real(UACME)).rows["edr"]
    assert edr[2]["cmdline_sig"].startswith("cs1:")  # the keyed signature, never the text
    assert edr[2] | {"cmdline_sig": None} == {
        "event_kind": "process_create",
        "proc_exec_id": "23f38d93-cf1e-5f8e-c808-000000000c00",  # evtx crate: no braces
        "parent_pid": 5592,
        "parent_exec_id": "23f38d93-af70-5f8e-1e02-000000000c00",
        "image_sha256": "870691cfc9c98866b2af2e7e48ed5fd5f1d14cfe0e3e9c630bc472fc0a013d0b",
        "cmdline_sig": None,
        "user_sid": None,  # Sysmon 1 has no SID; User (a name) is never stored
        "ts_utc": utc_ns("2020-10-20 11:50:54.800"),
        "sensor_id": "DESKTOP-NTSSLJD",
        "src_line": 2,
    }
    store2_rows = Ingested(store, real("sysmon-evtx/DE_sysmon-3-rdp-tun.evtx")).rows["edr"]
    # Hashes=SHA1=... only (that file's Sysmon config): no SHA-256
    assert store2_rows[3]["image_sha256"] is None
    assert store2_rows[3]["proc_exec_id"] == "365abb72-dfad-5c67-0000-0010e0811500"
    assert store2_rows[3]["parent_pid"] == 3904


def test_record_header_time_is_never_used(store: Store, real: Callable[[str], Path]) -> None:
    # the last records' headers say 1601-01-01; the events' own times are used instead
    edr = Ingested(store, real("sysmon-evtx/DE_sysmon-3-rdp-tun.evtx")).rows["edr"]
    assert edr[73]["ts_utc"] == utc_ns("2019-02-16 10:06:38.833")  # UtcTime
    net = Ingested(store, real("winsec-4688/DE_RDP_Tunnel_5156.evtx")).rows["net"]
    assert net[101]["ts_utc"] == utc_ns("2019-02-13T18:05:24.611439Z")  # TimeCreated
    # Sysmon 3's UtcTime is the connection start, hours before it was logged (15:33:01)
    late = Ingested(
        store, real("sysmon-evtx/exec_persist_rundll32_mshta_scheduledtask_sysmon_1_3_11.evtx")
    ).rows["net"]
    assert late[8]["ts_utc"] == utc_ns("2019-05-21 06:58:40.721")


def test_sysmon_22_without_answers(store: Store, real: Callable[[str], Path]) -> None:
    dns = Ingested(store, real(UACME)).rows["dns"]
    assert dns == {
        464: {
            "event_kind": "transaction",
            "session_id": None,
            "qname": "wpad",
            "qtype": None,  # Sysmon 22 does not log the type
            "rcode": "NXDOMAIN",  # QueryStatus 9003, DNS_ERROR_RCODE_NAME_ERROR
            "rrdata": None,  # QueryResults "-"
            "resolver_ip": None,
            "resolver_port": None,
            "client_ip": None,
            "client_port": None,
            "proto": None,
            "trans_id": None,
            "ts_utc": utc_ns("2020-10-20 11:50:59.461"),
            "sensor_id": "DESKTOP-NTSSLJD",
            "src_line": 464,
        }
    }


def test_4688_v1_hex_pids(store: Store, real: Callable[[str], Path]) -> None:
    edr = Ingested(store, real("winsec-4688/DE_RDP_Tunnel_5156.evtx")).rows["edr"]
    ts = utc_ns("2019-02-13T18:01:47.562412Z")
    # record 3: NewProcessId 0x1fc, ProcessId 0x278, SubjectUserSid S-1-5-18, no parent image
    assert edr[3] == {
        "event_kind": "process_create",
        "proc_exec_id": f"pid:{0x1FC}@{ts}",
        "parent_pid": 0x278,
        "parent_exec_id": None,
        "image_sha256": None,
        "cmdline_sig": None,
        "user_sid": "S-1-5-18",
        "ts_utc": ts,
        "sensor_id": "PC01.example.corp",
        "src_line": 3,
    }  # CommandLine is empty (the audit policy did not include it): no signature


def test_4688_v2_owner_sid(store: Store, real: Callable[[str], Path]) -> None:
    edr = Ingested(store, real("winsec-4688/tutto_malseclogon.evtx")).rows["edr"]
    # record 15: SubjectUserSid S-1-5-18 created it, TargetUserSid S-1-5-19 owns it
    assert (edr[15]["user_sid"], edr[15]["parent_pid"]) == ("S-1-5-19", 0x274)
    assert edr[15]["proc_exec_id"] == f"pid:{0x24E0}@{utc_ns('2021-12-07T17:33:08.723523Z')}"
    # record 12: the creator is IEUser, the new process runs as SYSTEM
    assert edr[12]["user_sid"] == "S-1-5-18"
    # record 8: TargetUserSid S-1-0-0 (the NULL SID, though TargetUserName is set):
    # the creator's SID is the owner
    assert edr[8]["user_sid"] == "S-1-5-18"
    # record 1: v2, TargetUserSid S-1-0-0, creator IEUser
    assert edr[1]["user_sid"] == "S-1-5-21-3461203602-4096304019-2269080069-1000"
    # record 2 is a Sysmon 1 in the same file
    assert edr[2]["proc_exec_id"] == "747f3d96-9acd-61af-d301-000000000102"


def test_5156_direction_decides_orientation(store: Store, real: Callable[[str], Path]) -> None:
    net = Ingested(store, real("winsec-4688/DE_RDP_Tunnel_5156.evtx")).rows["net"]
    # record 18: %%14592 inbound, Source 10.255.255.255:137 (local), Dest 10.0.2.18:137
    got = net[18]
    assert (got["src_ip"], got["src_port"], got["dst_ip"], got["dst_port"], got["proto"]) == (
        "10.0.2.18",
        137,
        "10.255.255.255",
        137,
        "udp",
    )
    assert got["ts_utc"] == utc_ns("2019-02-13T18:03:29.121592Z")
    # record 2: %%14593 outbound, Protocol 17
    got = net[2]
    assert (got["src_ip"], got["src_port"], got["dst_ip"], got["dst_port"], got["proto"]) == (
        "fe80::80ac:4126:fa58:1b81",
        546,
        "ff02::1:2",
        547,
        "udp",
    )


# -- content never stored ---------------------------------------------------------------------


def test_command_line_is_handed_on_transient_then_signed(real: Callable[[str], Path]) -> None:
    # the signature step gets the text in _cmdline; finalize keeps only its signature
    ctx = sources.Context(_connect(), None)
    chunks = list(windows_evtx.read_records(real(PSEXEC), ctx))
    (edr,) = [c.parsed.tables["edr"] for c in chunks if "edr" in c.parsed.tables]
    lines = edr.column("_cmdline").to_pylist()
    assert sum(bool(line) and "-p Admin1235" in line for line in lines) == 1
    rows, _ = minimize.finalize(edr, schema.load("edr"), cmdsig.SigKey(bytes(range(32))))
    assert "_cmdline" not in rows.column_names
    assert rows.column("cmdline_sig").null_count == 0  # all 11 carry a command line


def test_password_on_a_command_line_reaches_no_file(
    store: Store, signer: keys.Signer, real: Callable[[str], Path]
) -> None:
    got = Ingested(store, real(PSEXEC))
    assert got.counts()["edr"] == 11
    seal.seal(store, signer)
    secrets = ("Admin1235", "admmig", "PSEXESVC", "accepteula")
    needles = [s.encode() for s in secrets] + [s.encode("utf-16-le") for s in secrets]
    files = [p for p in store.root.rglob("*") if p.is_file()]
    assert any(p.suffix == ".parquet" for p in files)
    for path in files:
        data = path.read_bytes().lower()
        for needle in needles:
            assert needle.lower() not in data, f"{needle!r} in {path.relative_to(store.root)}"


# -- damaged files ------------------------------------------------------------------------------


def damaged(tmp_path: Path, source: Path, edit: Callable[[bytearray], bytes | None]) -> Path:
    data = bytearray(source.read_bytes())
    out = edit(data)
    path = tmp_path / "damaged.evtx"
    path.write_bytes(bytes(data) if out is None else out)
    return path


def unreadable(numbers: range, where: str) -> dict[int, tuple[str, str]]:
    return {n: ("reject", f"EVTX record unreadable ({where})") for n in numbers}


def test_flipped_bytes_in_record_data_are_reported(
    store: Store, tmp_path: Path, real: Callable[[str], Path]
) -> None:
    def flip(data: bytearray) -> None:
        for i in range(CHUNK3 + 20000, CHUNK3 + 20010):
            data[i] ^= 0xFF

    got = Ingested(store, damaged(tmp_path, real(UACME), flip))
    assert (got.result.lines, got.result.rejected) == (530, 0)
    assert got.every_line_once()
    assert got.result.warnings == [
        f"EVTX chunk 3 at byte {CHUNK3}: its record data fail their checksum; the 49 records "
        "read from it may have been altered, 0 are unreadable"
    ]


def test_zeroed_records_become_rejects_with_their_numbers(
    store: Store, tmp_path: Path, real: Callable[[str], Path]
) -> None:
    def zero(data: bytearray) -> None:
        data[CHUNK3 + 512 : CHUNK3 + 2000] = bytes(1488)

    got = Ingested(store, damaged(tmp_path, real(UACME), zero))
    assert (got.result.lines, got.result.rejected) == (530, 49)
    assert {n: v for n, v in got.log.items() if v[0] == "reject"} == unreadable(
        range(143, 192), f"chunk 3 at byte {CHUNK3}"
    )
    assert got.every_line_once()
    assert len(got.result.warnings) == 1 and "chunk 3" in got.result.warnings[0]
    intact = Ingested(store, real(UACME))
    # the other chunks' records are exactly those of the intact file
    for table in ("edr", "dns"):
        assert {n: {**r, "src_line": 0} for n, r in got.rows[table].items()} == {
            n: {**r, "src_line": 0} for n, r in intact.rows[table].items() if not 143 <= n < 192
        }


def test_unreadable_chunk_headers_count_their_records_from_the_neighbours(
    store: Store, tmp_path: Path, real: Callable[[str], Path]
) -> None:
    def two_chunks(data: bytearray) -> None:
        data[CHUNK3 : CHUNK3 + 8] = b"XXXXXXXX"
        data[CHUNK3 + 65536 : CHUNK3 + 65536 + 8] = b"YYYYYYYY"

    got = Ingested(store, damaged(tmp_path, real(UACME), two_chunks))
    # chunks 3 and 4 held records 143-240: the ids either side of them say so
    assert (got.result.lines, got.result.rejected) == (530, 98)
    assert {n: v for n, v in got.log.items() if v[0] == "reject"} == unreadable(
        range(143, 241), f"chunk 4 at byte {CHUNK3 + 65536}"
    )
    assert len(got.result.warnings) == 2


def test_random_bytes_over_the_last_chunk(
    store: Store, tmp_path: Path, real: Callable[[str], Path]
) -> None:
    last = 4096 + 11 * 65536  # records 528-530

    def noise(data: bytearray) -> None:
        data[last : last + 65536] = random.Random(7).randbytes(65536)

    got = Ingested(store, damaged(tmp_path, real(UACME), noise))
    # the file header's next record id (531) bounds the loss
    assert (got.result.lines, got.result.rejected) == (530, 3)
    assert got.log[528] == ("reject", f"EVTX record unreadable (chunk 11 at byte {last})")


def test_unreadable_first_chunk_counts_as_one_reject(
    store: Store, tmp_path: Path, real: Callable[[str], Path]
) -> None:
    def first(data: bytearray) -> None:
        data[4096:4104] = bytes(8)
        data[4096 + 600 : 4096 + 700] = b"\x01" * 100

    got = Ingested(store, damaged(tmp_path, real(UACME), first))
    # nothing before it tells where its records began: one reject stands for the chunk
    assert got.log[1] == (
        "reject",
        "EVTX chunk unreadable, record count unknown (chunk 0 at byte 4096)",
    )
    assert (got.result.lines, got.result.rejected) == (1 + 530 - 45, 1)
    assert got.every_line_once()


def test_damaged_file_header_still_reads_every_chunk(
    store: Store, tmp_path: Path, real: Callable[[str], Path]
) -> None:
    def header(data: bytearray) -> None:
        data[8:40] = b"\xff" * 32

    got = Ingested(store, damaged(tmp_path, real(UACME), header))
    assert (got.result.lines, got.result.rejected, got.result.records) == (
        530,
        0,
        {"net": 0, "dns": 1, "edr": 3},
    )
    assert got.result.warnings == [
        "EVTX file header is damaged (checksum mismatch); its chunks were read"
    ]


def test_file_cut_inside_a_chunk(store: Store, tmp_path: Path, real: Callable[[str], Path]) -> None:
    chunk5 = 4096 + 5 * 65536  # records 241-288
    got = Ingested(store, damaged(tmp_path, real(UACME), lambda d: bytes(d[: chunk5 + 30000])))
    cut = {n for n, v in got.log.items() if v[1].startswith("EVTX record cut off")}
    missing = {n for n, v in got.log.items() if v[1].startswith("EVTX record missing")}
    assert (got.result.lines, got.result.rejected) == (530, 268)
    assert (len(cut), min(cut), max(cut)) == (26, 263, 288)  # 22 of 48 records were whole
    assert missing == set(range(289, 531))  # the file header counts up to record 530
    assert got.result.warnings == [
        f"file ends inside EVTX chunk 5 at byte {chunk5} (30000 of 65536 bytes); "
        "22 of its 48 records were read",
        "the EVTX file header counts 242 records after the last one in the file (file cut short?)",
    ]
    assert got.every_line_once()


def test_file_cut_at_a_chunk_boundary(
    store: Store, tmp_path: Path, real: Callable[[str], Path]
) -> None:
    got = Ingested(store, damaged(tmp_path, real(UACME), lambda d: bytes(d[: 4096 + 5 * 65536])))
    assert (got.result.lines, got.result.rejected) == (530, 290)
    assert got.every_line_once()


def test_file_of_its_header_alone_loses_every_record_it_counts(
    store: Store, tmp_path: Path, real: Callable[[str], Path]
) -> None:
    # the header counts 1 chunk and next record id 74: the file said nothing of them before
    got = Ingested(store, damaged(tmp_path, real(RDP), lambda d: bytes(d[:4096])))
    assert (got.result.lines, got.result.rejected) == (73, 73)
    assert set(got.log.values()) == {
        ("reject", "EVTX record missing: the file ends before it (its header counts it)")
    }
    assert got.result.warnings == [
        "the EVTX file header counts 73 records after the last one in the file (file cut short?)"
    ]


def test_file_header_with_a_damaged_magic_is_still_detected(
    tmp_path: Path, real: Callable[[str], Path]
) -> None:
    # detection looked at the magic only; the first chunk behind the header tells too
    path = damaged(tmp_path, real(RDP), lambda d: b"XXXXXXXX" + bytes(d[8:]))
    assert sources.detect(b"", path.read_bytes()[:65536]).name == "windows-evtx"


def test_gzip_evtx_is_refused_with_the_remedy(
    store: Store, tmp_path: Path, real: Callable[[str], Path]
) -> None:
    # read as it was, a compressed file gave one unreadable chunk and a "damaged header"
    path = tmp_path / "sysmon.evtx.gz"
    path.write_bytes(gzip.compress(real(RDP).read_bytes()))
    for fmt in (None, "windows-evtx"):
        (result,) = ingest.ingest(store, [path], fmt=fmt).files
        assert (result.status, result.exit_code) == ("failed", 4)
        assert result.error == (
            "sysmon.evtx.gz is gzip-compressed: EVTX files are read uncompressed only "
            "(decompress it (gunzip -k FILE) and ingest the .evtx file)"
        )
    assert store.ledger() == []


@pytest.mark.parametrize(
    ("content", "lines", "warning"),
    [
        (
            b"ElfFile\x00" + b"hello world" * 1000,
            1,
            "EVTX chunk 0 at byte 4096 is damaged (no chunk header); 0 records were read from it",
        ),
        (b"ElfFile\x00", 0, "file ends inside the EVTX file header (8 of 4096 bytes)"),
        (b"ElfFile\x00" + bytes(5000), 0, "EVTX file header is damaged (checksum mismatch)"),
    ],
)
def test_magic_without_evtx_behind_it(
    store: Store, tmp_path: Path, content: bytes, lines: int, warning: str
) -> None:
    path = tmp_path / "not.evtx"
    path.write_bytes(content)
    got = Ingested(store, path)
    assert (got.result.format, got.result.lines, got.result.rejected) == (
        "windows-evtx",
        lines,
        lines,
    )
    assert any(w.startswith(warning) for w in got.result.warnings)


def test_records_stream_in_batches_with_bounded_memory(
    tmp_path: Path, real: Callable[[str], Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    # 40 copies of the sample's 12 chunks: 21,200 records in 31 MiB
    data = real(UACME).read_bytes()
    body = data[4096 : 4096 + 12 * 65536]
    big = tmp_path / "big.evtx"
    with big.open("wb") as fh:
        fh.write(data[:4096])
        for _ in range(40):
            fh.write(body)
    tracemalloc.start()
    records = 0
    for chunk in _evtxfile.read_chunks(big):
        records += len(chunk.records)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert records == 40 * 530
    assert peak < 4 << 20  # a chunk's texts at a time, not the file's

    monkeypatch.setattr(windows_evtx, "BATCH_BYTES", 1 << 20)
    ctx = sources.Context(_connect(), None)
    lasts = [c.last for c in windows_evtx.read_records(big, ctx)]
    assert len(lasts) > 20 and lasts == sorted(lasts) and lasts[-1] == 40 * 530


def test_chunk_header_layout_matches_the_sample(real: Callable[[str], Path]) -> None:
    # the offsets _evtxfile reads, checked on a real chunk: records 143-191 in chunk 3
    data = real(UACME).read_bytes()[CHUNK3 : CHUNK3 + 65536]
    assert data[:8] == b"ElfChnk\x00"
    assert struct.unpack_from("<QQQQI", data, 8) == (143, 191, 143, 191, 128)
    block = _evtxfile._chunk_header(3, CHUNK3, data[:512], 65536)
    assert (block.state, block.first_id, block.count) == ("ok", 143, 49)
