"""Windows events as JSON lines: the OTRF flat exports (real, MIT) and a Winlogbeat fixture
written from the Winlogbeat documentation (tests/data/winlogbeat/SOURCES.md).

Counts of skipped events are computed here from the files with Python's json; record values
were read off the raw lines by hand.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from _winrows import Ingested, utc_ns
from acdkit import keys, seal
from acdkit.cli import app
from acdkit.errors import UsageError
from acdkit.ingest import ingest
from acdkit.store import Store, init_store

BITS = "sysmon-json/cmd_bitsadmin_download_psh_script_2020-10-2302365189.json"
PSEXEC = "sysmon-json/cmd_psexec_lsa_secrets_dump_2020-10-1903305471.json"
BEAT = "winlogbeat/winlogbeat-sysmon-security.ndjson"
NEW_YORK = "America/New_York"  # the OTRF lab's collector clock: EDT, UTC-4, in October 2020
MAPPED = {
    ("Microsoft-Windows-Sysmon", 1),
    ("Microsoft-Windows-Sysmon", 3),
    ("Microsoft-Windows-Sysmon", 22),
    ("Microsoft-Windows-Security-Auditing", 4688),
    ("Microsoft-Windows-Security-Auditing", 5156),
}


def lines_of(path: Path) -> list[dict[str, Any]]:
    return [json.loads(raw) for raw in path.read_text(encoding="utf-8").splitlines()]


def expected_skips(events: list[tuple[str, int]]) -> dict[str, int]:
    """The skip reasons of a file's events, from their provider and id."""
    out: Counter[str] = Counter()
    for provider, eid in events:
        if (provider, eid) in MAPPED:
            continue
        if provider == "Microsoft-Windows-Sysmon":
            out[f"Sysmon event {eid} is not ingested"] += 1
        elif provider == "Microsoft-Windows-Security-Auditing":
            out[f"Security event {eid} is not ingested"] += 1
        else:
            out[f"event {eid} of another provider is not ingested"] += 1
    return dict(out)


# -- OTRF flat JSON ---------------------------------------------------------------------------

# rows per table with --assume-tz (SOURCES.md event counts), the first Security event's line
FLAT = [
    (BITS, 424, {"net": 20, "dns": 3, "edr": 4}, 3),
    (PSEXEC, 286, {"net": 6, "dns": 2, "edr": 8}, 3),
]


@pytest.mark.parametrize(("rel", "lines", "zoned", "first_security"), FLAT)
def test_flat_export_every_line_accounted(
    store: Store,
    tmp_path: Path,
    real: Callable[[str], Path],
    rel: str,
    lines: int,
    zoned: dict[str, int],
    first_security: int,
) -> None:
    path = real(rel)
    events = [(o["SourceName"], o["EventID"]) for o in lines_of(path)]
    skips = expected_skips(events)

    # Security 4688/5156 have no UTC field: their collector time has no trustworthy zone,
    # so the file is refused and nothing of it staged (rejects would lose those events for
    # good: the file would be in the ledger, and ingesting it again would add nothing)
    (refused,) = ingest(store, [path]).files
    assert (refused.status, refused.exit_code) == ("failed", 2)
    assert refused.error == (
        f"this file's times carry no time zone (the first at line {first_security}) "
        "(give --assume-tz ZONE (an IANA name such as Asia/Tokyo, or UTC))"
    )
    assert store.ledger() == []

    other, _ = init_store(tmp_path / "zoned", tmp_path / "zoned-keys" / "k.key", "test-org")
    got = Ingested(other, path, assume_tz=NEW_YORK)
    assert (got.result.lines, got.result.records, got.result.rejected) == (lines, zoned, 0)
    assert got.result.warnings == [
        "Security event times without a UTC field (collector TimeCreated/EventTime) were read "
        "as local time in America/New_York (--assume-tz); Sysmon events use their UtcTime"
    ]
    assert got.reasons("skip") == skips
    assert got.every_line_once()


def test_sysmon_times_come_from_utctime_not_the_wrong_zone(
    store: Store, real: Callable[[str], Path]
) -> None:
    got = Ingested(store, real(BITS), assume_tz=NEW_YORK)
    edr = got.rows["edr"]
    for line in (118, 3):  # both carry a command line: its keyed signature only
        assert edr[line].pop("cmdline_sig").startswith("cs1:")
    # line 118: Sysmon 1, @timestamp/TimeCreated "2020-10-23T02:36:43.547Z" (local time,
    # wrongly labelled Z), UtcTime "2020-10-23 06:36:43.542"
    assert edr[118] == {
        "event_kind": "process_create",
        "proc_exec_id": "39e4a257-79fb-5f92-7117-000000000700",  # braces dropped
        "parent_pid": 10044,
        "parent_exec_id": "39e4a257-79ed-5f92-6e17-000000000700",
        "image_sha256": "eaae8536d554d0e86d8540a8b34db2649bd884843f389495d0b6e91636c6cf54",
        "user_sid": None,
        "ts_utc": utc_ns("2020-10-23 06:36:43.542"),
        "sensor_id": "WORKSTATION5",
        "src_line": 118,
    }
    # line 3: the 4688 of the same process (NewProcessId 0x242c = 9260, ProcessId 0x273c =
    # 10044), TimeCreated "2020-10-23T02:36:43.542Z" read as New York time: the same instant
    assert edr[3] == {
        "event_kind": "process_create",
        "proc_exec_id": f"pid:9260@{utc_ns('2020-10-23 06:36:43.542')}",
        "parent_pid": 10044,
        "parent_exec_id": None,
        "image_sha256": None,
        "user_sid": "S-1-5-21-3940915590-64593676-1414006259-500",
        "ts_utc": utc_ns("2020-10-23 06:36:43.542"),
        "sensor_id": "WORKSTATION5",
        "src_line": 3,
    }


def test_psexec_4688_and_sysmon_1_agree_on_time(store: Store, real: Callable[[str], Path]) -> None:
    edr = Ingested(store, real(PSEXEC), assume_tz=NEW_YORK).rows["edr"]
    # line 4: 4688, TimeCreated "2020-10-19 03:30:46.251" (no zone), NewProcessId 0x1c58;
    # line 68: its Sysmon 1, ProcessId 7256 = 0x1c58, UtcTime "2020-10-19 07:30:46.251"
    assert edr[4]["ts_utc"] == edr[68]["ts_utc"] == utc_ns("2020-10-19 07:30:46.251")
    assert edr[4]["proc_exec_id"] == f"pid:{0x1C58}@{edr[68]['ts_utc']}"
    assert edr[4]["parent_pid"] == 0x850 == edr[68]["parent_pid"]


def test_sysmon_22_answers_split(store: Store, real: Callable[[str], Path]) -> None:
    dns = Ingested(store, real(BITS), assume_tz=NEW_YORK).rows["dns"]
    # line 388: QueryResults "type:  5 github.map.fastly.net;::ffff:151.101.208.133;"
    assert dns[388] == {
        "event_kind": "transaction",
        "session_id": None,
        "qname": "raw.githubusercontent.com",
        "qtype": None,
        "rcode": "NOERROR",
        "rrdata": ["github.map.fastly.net", "::ffff:151.101.208.133"],
        "resolver_ip": None,
        "resolver_port": None,
        "client_ip": None,
        "client_port": None,
        "proto": None,
        "trans_id": None,
        "ts_utc": utc_ns("2020-10-23 06:36:42.882"),
        "sensor_id": "WORKSTATION5",
        "src_line": 388,
    }
    # line 378: "::1;::ffff:127.0.0.1;" (trailing ';')
    assert dns[378]["rrdata"] == ["::1", "::ffff:127.0.0.1"]


def test_flat_sysmon_3_and_5156_orientation(store: Store, real: Callable[[str], Path]) -> None:
    net = Ingested(store, real(BITS), assume_tz=NEW_YORK).rows["net"]

    def five(line: int) -> tuple[Any, ...]:
        r = net[line]
        return (r["src_ip"], r["src_port"], r["dst_ip"], r["dst_port"], r["proto"])

    # line 377: Sysmon 3, Initiated "false", Source 239.255.255.250:1900, Dest 127.0.0.1:61629
    assert five(377) == ("127.0.0.1", 61629, "239.255.255.250", 1900, "udp")
    # line 380: IPv6 written 0:0:0:0:0:0:0:1
    assert five(380) == ("::1", 61089, "::1", 5985, "tcp")
    # line 24: 5156 %%14593 (outbound), Protocol 17
    assert five(24) == ("192.168.2.5", 61628, "239.255.255.250", 1900, "udp")
    # line 26: 5156 %%14592 (inbound), Source 127.0.0.1:61629 is the local side
    assert five(26) == ("239.255.255.250", 1900, "127.0.0.1", 61629, "udp")
    assert net[26]["ts_utc"] == utc_ns("2020-10-23 06:36:43.764")  # 02:36:43.764 EDT


# -- Winlogbeat -----------------------------------------------------------------------------------


def test_winlogbeat_fixture(store: Store, data: Path) -> None:
    got = Ingested(store, data / BEAT)
    r = got.result
    assert (r.format, r.lines, r.records, r.rejected) == (
        "winlogbeat",
        9,
        {"net": 3, "dns": 1, "edr": 2},
        0,
    )
    assert got.reasons("skip") == {
        "Sysmon event 7 is not ingested": 1,
        "Security event 4624 is not ingested": 1,
        "event 7045 of another provider is not ingested": 1,
    }
    edr, net, dns = got.rows["edr"], got.rows["net"], got.rows["dns"]
    for line in (1, 4):
        assert edr[line].pop("cmdline_sig").startswith("cs1:")
    assert edr[1] == {
        "event_kind": "process_create",
        "proc_exec_id": "8d2f4c61-d3af-65e6-4a01-000000001b00",
        "parent_pid": 4480,
        "parent_exec_id": "8d2f4c61-d39e-65e6-3f01-000000001b00",
        "image_sha256": "5d1c2e3f4a5b6c7d8e9f00112233445566778899aabbccddeeff001122334455",
        "user_sid": None,
        "ts_utc": utc_ns("2024-03-05 08:14:07.918"),  # UtcTime, not @timestamp
        "sensor_id": "ws01.corp.example",
        "src_line": 1,
    }
    at = utc_ns("2024-03-05T08:14:11.250Z")  # @timestamp for Security events
    assert edr[4] | {"src_line": 0} == {
        "event_kind": "process_create",
        "proc_exec_id": f"pid:{0x17F4}@{at}",
        "parent_pid": 0x2A8,
        "parent_exec_id": None,
        "image_sha256": None,
        "user_sid": "S-1-5-19",  # TargetUserSid: the new process's owner
        "ts_utc": at,
        "sensor_id": "ws01.corp.example",
        "src_line": 0,
    }
    five = {
        n: (r["src_ip"], r["src_port"], r["dst_ip"], r["dst_port"], r["proto"])
        for n, r in net.items()
    }
    assert five == {
        2: ("fd00::35", 52114, "fd00::21", 445, "tcp"),  # Sysmon 3 inbound, swapped
        5: ("192.0.2.35", 52118, "192.0.2.21", 445, "tcp"),  # 5156 %%14592, swapped
        6: ("192.0.2.21", 52120, "198.51.100.17", 443, "tcp"),  # 5156 %%14593
    }
    assert dns[3]["rrdata"] == ["edge.cdn.example.org", "::ffff:192.0.2.80", "198.51.100.17"]
    assert (dns[3]["qname"], dns[3]["rcode"]) == ("updates.example.net", "NOERROR")


def test_no_content_field_reaches_the_store(store: Store, signer: keys.Signer, data: Path) -> None:
    assert b"CANARY" in (data / BEAT).read_bytes()
    Ingested(store, data / BEAT)
    seal.seal(store, signer)
    for path in store.root.rglob("*"):
        if path.is_file():
            assert b"canary" not in path.read_bytes().lower(), path.relative_to(store.root)


# -- hostile or broken lines ----------------------------------------------------------------------


def _edit(obj: dict[str, Any], **data: Any) -> str:
    out = json.loads(json.dumps(obj))
    for key, value in data.items():
        place, name = out["winlog"]["event_data"], key
        if key.startswith("w_"):
            place, name = out["winlog"], key[2:]
        elif key == "ts":
            place, name = out, "@timestamp"
        if value is None:
            del place[name]
        else:
            place[name] = value
    return json.dumps(out)


def test_bad_values_are_rejected_without_echo(store: Store, tmp_path: Path, data: Path) -> None:
    good = lines_of(data / BEAT)
    s1, s3, s22, a4688, a5156 = good[0], good[1], good[2], good[3], good[4]
    bad = [
        (_edit(s1, ProcessGuid="{CANARY-not-a-guid}"), "invalid process GUID"),
        (_edit(s1, ParentProcessGuid="CANARY"), "invalid parent process GUID"),
        (_edit(s1, Hashes="SHA256=CANARY0123"), "invalid SHA-256 hash"),
        (_edit(s1, ParentProcessId="12 CANARY"), "invalid parent process ID"),
        (_edit(s1, UtcTime="CANARY 10:00"), "missing or invalid UtcTime"),
        (_edit(a4688, NewProcessId="CANARY"), "invalid process ID"),
        (_edit(a4688, ProcessId="1234"), "invalid parent process ID"),  # 4688 writes hex
        (_edit(a4688, TargetUserSid="CORP\\CANARY"), "invalid user SID"),
        (_edit(a4688, ts="2024-03-05T08:14:11.250"), "missing or invalid timestamp"),
        (_edit(s3, Initiated="CANARY"), "invalid Initiated flag"),
        (_edit(s3, Initiated=None), "invalid Initiated flag"),
        (_edit(s3, SourceIp="10.0.0.1%CANARY"), "invalid address in dst_ip"),
        (_edit(s3, DestinationPort="99999"), "invalid source port"),
        (_edit(a5156, Direction="%%CANARY"), "unknown WFP direction"),
        (_edit(a5156, Direction=None), "unknown WFP direction"),
        (_edit(s22, w_event_id="CANARY"), "invalid event ID"),
        (_edit(s22, w_event_id=None), "no event ID"),
        ('{"winlog": {"event_id": "1"}, "CANARY": [', "invalid JSON"),
    ]
    path = tmp_path / "bad.ndjson"
    path.write_text(json.dumps(good[0]) + "\n" + "".join(text + "\n" for text, _ in bad))
    got = Ingested(store, path)
    assert got.log == {i: ("reject", reason) for i, (_, reason) in enumerate(bad, 2)}
    assert got.counts() == {"net": 0, "dns": 0, "edr": 1}


def test_unknown_zone_is_a_usage_error(store: Store, real: Callable[[str], Path]) -> None:
    with pytest.raises(UsageError, match="unknown time zone"):
        ingest(store, [real(PSEXEC)], assume_tz="Mars/Olympus_Mons")


def test_cli_assume_tz_option(store: Store, runner: CliRunner, real: Callable[[str], Path]) -> None:
    done = runner.invoke(
        app, ["ingest", str(store.root), str(real(PSEXEC)), "--assume-tz", NEW_YORK, "--json"]
    )
    assert done.exit_code == 0, done.output
    (doc,) = json.loads(done.stdout)["files"]
    assert (doc["records"], doc["rejected"]) == ({"net": 6, "dns": 2, "edr": 8}, 0)
    assert "America/New_York" in doc["warnings"][0]
