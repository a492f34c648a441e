"""Sensor clocks at ingest (acdkit.skew) on real sample logs.

Every expected value was worked out from the raw files with a few lines of Python outside
acdkit (json for the Zeek JSON logs, a split on tabs for the Zeek TSV one; flows ordered by
ts + duration): the count, the worst value and its line number.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.ipc as ipc
import pytest
from typer.testing import CliRunner

from acdkit import ingest, seal, skew
from acdkit.cli import app
from acdkit.keys import Signer
from acdkit.store import Store, init_store

NS = 1_000_000_000


def only(store: Store) -> Path:
    (staged,) = store.staged_dirs()
    return staged


def test_relative_timestamps_are_before_1990(store: Store, real: Callable[[str], Path]) -> None:
    # Slips test9: Zeek ssl records timed from the start of a capture (95 s to 272 s)
    report = ingest.ingest(store, [real("zeek-json/slips-test9/ssl.log")], sensor="slips")
    result = report.files[0]
    assert result.clock_skew == [
        {
            "sensor": "slips",
            "records": 205,
            "ts_min_ns": 95_035_658_000,
            "ts_max_ns": 272_270_870_000,
            "findings": {
                "before_1990": {
                    "records": 205,
                    "worst_ns": 631_152_000 * NS - 95_035_658_000,
                    "line": 2,
                }
            },
        }
    ]
    assert skew.describe_json(result.clock_skew[0]) == [
        "sensor slips: 205 events dated before 1990 (a relative or unset clock), the "
        "earliest at 1970-01-01T00:01:35.035658Z (line 2)"
    ]
    # a finding of its own, said once: the file's warnings said the same again before
    assert result.warnings == []
    ledger = json.loads((only(store) / "ledger.json").read_text())
    assert ledger["clock_skew"] == result.clock_skew


def test_events_from_the_future(store: Store, data: Path) -> None:
    # the zat conn log as a collector whose clock reads 2019-12-03T22:45:00Z would see it
    now = 1_575_413_100 * NS
    report = ingest.ingest(store, [data / "zeek-json/zat/conn.log"], now_ns=now)
    (clock,) = report.files[0].clock_skew
    assert clock["findings"] == {"future": {"records": 43, "worst_ns": 67_212_049_000, "line": 42}}
    assert skew.describe_json(clock) == [
        "the unnamed sensor: 43 events later than the collector's clock, by up to 67.212 s "
        "(line 42)"
    ]
    assert report.files[0].warnings == []


def test_jumps_and_out_of_order_bursts(store: Store, data: Path) -> None:
    # the zat TSV conn log: one flow ends 201.75 s before the flows logged before it
    ingest.ingest(store, [data / "zeek-tsv/zat/conn.log"])
    limits = skew.Limits(jump_ns=60 * NS, reorder_ns=60 * NS)
    (clock,) = skew.analyze_staged(only(store), 2 * 10**18, limits)
    assert clock.to_json()["findings"] == {
        "jump_back": {"records": 1, "worst_ns": 201_754_703_000, "line": 298},
        "jump_forward": {"records": 3, "worst_ns": 96_591_843_000, "line": 300},
        "out_of_order": {"records": 2, "worst_ns": 201_754_703_000, "line": 298, "bursts": 1},
    }
    # within the default limits (1 h jumps, a 10 min reorder window) nothing is found
    assert skew.analyze_staged(only(store), 2 * 10**18)[0].counts == {}


def test_sensors_are_told_apart_and_tables_merged_by_line(
    store: Store, real: Callable[[str], Path]
) -> None:
    # OTRF APT29: the SCRANTON logs name their sensor in each record (_system_name)
    ingest.ingest(store, [real("zeek-json/otrf-apt29/SCRANTON_http.log")])
    (clock,) = skew.analyze_staged(only(store), 2 * 10**18)
    assert (clock.sensor, clock.records, clock.counts) == ("simplerockbuild.simplerock.lan", 62, {})


def test_state_carries_across_batches(tmp_path: Path) -> None:
    # two part files of one table, as a parallel ingest writes them: the step between the
    # last row of the first and the first row of the second is a jump
    schema = pa.schema(
        [
            ("src_line", pa.uint64()),
            ("ts_utc", pa.timestamp("ns", "UTC")),
            ("sensor_id", pa.string()),
        ]
    )
    base = 1_700_000_000 * NS
    parts = [([1, 2], [base + 10 * NS, base + 11 * NS]), ([3, 4], [base + 7200 * NS, base])]
    for number, (lines, times) in enumerate(parts, start=1):
        table = pa.table(
            {"src_line": lines, "ts_utc": times, "sensor_id": ["s", "s"]}, schema=schema
        )
        with ipc.new_file(tmp_path / f"dns.{number:08d}.arrow", schema) as writer:
            writer.write_table(table)
    (clock,) = skew.analyze_staged(tmp_path, base + 8000 * NS)
    assert clock.to_json()["findings"] == {
        "jump_forward": {"records": 1, "worst_ns": 7189 * NS, "line": 3},
        "jump_back": {"records": 1, "worst_ns": 7200 * NS, "line": 4},
        "out_of_order": {"records": 1, "worst_ns": 7200 * NS, "line": 4, "bursts": 1},
    }
    assert clock.records == 4


def test_package_flags_the_window_of_a_skewed_sensor(
    store: Store,
    signer: Signer,
    key_path: Path,
    real: Callable[[str], Path],
    runner: CliRunner,
    tmp_path: Path,
) -> None:
    ingest.ingest(store, [real("zeek-json/slips-test9/ssl.log")], sensor="slips")
    ingest.ingest(store, [real("zeek-json/otrf-apt29/SCRANTON_ssl.log")])
    seal.seal(store, signer)
    result = runner.invoke(
        app,
        [
            "package", str(store.root), "--incident", "INC-SKEW", "--from",
            "1970-01-01T00:00:00Z", "--to", "1970-01-01T00:10:00Z",
            "--out", str(tmp_path / "bundle"), "--key", str(key_path), "--json",
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    text = (
        "sensor slips: 205 events dated before 1990 (a relative or unset clock), the "
        "earliest at 1970-01-01T00:01:35.035658Z (line 2)"
    )
    # several sensors write ssl.log: the file is named with its hash
    digest = hashlib.sha256(real("zeek-json/slips-test9/ssl.log").read_bytes()).hexdigest()
    named = f"ssl.log (SHA-256 {digest[:12]}…)"
    flags = json.loads(result.stdout)["clock_flags"]
    assert flags == [
        "no NTP measurement of the collector's clock is in the log",
        f"sensor clock, file {named}: {text}",
    ]
    doc = json.loads((tmp_path / "bundle/summary/summary.json").read_text())
    (sensor,) = doc["clock"]["sensors"]
    assert (sensor["file"], sensor["sensor"], sensor["text"]) == ("ssl.log", "slips", text)
    assert sensor["sha256"] == digest
    assert sensor["findings"]["before_1990"]["records"] == 205
    md = (tmp_path / "bundle/summary/summary.md").read_text()
    assert f"- Sensor clock, file {named}: {text}." in md
    # a window of the other sensor's records is not flagged for slips
    result = runner.invoke(
        app,
        [
            "package", str(store.root), "--incident", "INC-OK", "--from",
            "2020-04-30T00:00:00Z", "--to", "2020-05-01T00:00:00Z",
            "--out", str(tmp_path / "other"), "--key", str(key_path), "--json",
        ],
    )  # fmt: skip
    assert json.loads(result.stdout)["clock_flags"] == [
        "no NTP measurement of the collector's clock is in the log"
    ]


def _has_format(name: str) -> bool:
    from acdkit import sources

    return name in sources.names()


@pytest.mark.skipif(
    not _has_format("winevent-json"),
    reason="the flat Windows event JSON format (winevent-json, issue 4) is not in this build",
)
@pytest.mark.parametrize(
    ("sample", "step_ns", "line"),
    [
        # the last Security event (local time read as UTC) before the first Sysmon event
        # (UtcTime): 02:36:50.703 -> 06:36:43.542 is 3 h 59 min 52.839 s
        ("cmd_bitsadmin_download_psh_script_2020-10-2302365189.json", 14_392_839_000_000, 118),
        ("cmd_psexec_lsa_secrets_dump_2020-10-1903305471.json", 14_399_179_000_000, 68),
    ],
)
def test_a_wrong_zone_for_some_events_is_a_jump(
    sample: str, step_ns: int, line: int, store: Store, real: Callable[[str], Path], tmp_path: Path
) -> None:
    # OTRF exports: Sysmon events carry UtcTime, Security events only the collector's local
    # time (EDT, UTC-4); read as UTC, they sit four hours before the Sysmon events
    path = real(f"sysmon-json/{sample}")
    wrong = ingest.ingest(store, [path], assume_tz="UTC")
    (clock,) = wrong.files[0].clock_skew
    assert clock["sensor"] == "WORKSTATION5"
    assert clock["findings"] == {"jump_forward": {"records": 1, "worst_ns": step_ns, "line": line}}
    other, _key = init_store(tmp_path / "other", tmp_path / "other.key", "skew-test")
    right = ingest.ingest(other, [path], assume_tz="America/New_York")
    (clock,) = right.files[0].clock_skew
    assert clock["findings"] == {}


def test_ingest_prints_the_findings(
    store: Store, real: Callable[[str], Path], runner: CliRunner
) -> None:
    path = real("zeek-json/slips-test9/ssl.log")
    result = runner.invoke(app, ["ingest", str(store.root), str(path)])
    assert result.exit_code == 0
    assert (
        "clock ssl.log: the unnamed sensor: 205 events dated before 1990 (a relative or unset "
        "clock), the earliest at 1970-01-01T00:01:35.035658Z (line 2)"
    ) in " ".join(result.stderr.split())
