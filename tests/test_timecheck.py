"""`acdkit timecheck` against real NTP servers on loopback ports (tests/ntpservers.py).

chronyd serves each clock: three that agree, one 300 s ahead (a false ticker), three more
300 s ahead (the local clock then looks 300 s behind), one at stratum 16, one
unsynchronised, and a port that nobody answers.  A leap second can only be announced on
30 June or 31 December by the server's clock, so that case runs in a world moved to the
next such day: the servers and the `acdkit` process under one libfaketime offset.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

import ntpservers as ns
from acdkit import anchor, ingest, policy, seal, verify
from acdkit import tsa as tsa_mod
from acdkit.anchorcheck import AnchorTrust
from acdkit.cli import app
from acdkit.clockentry import ClockRecord
from acdkit.encoding import EntryType
from acdkit.keys import Signer, generate
from acdkit.logentries import parse_entry, pending_entries
from acdkit.ntp import parse_server
from acdkit.store import Store
from acdkit.timecheck import timecheck
from tsa import LocalCa, LocalTsa

WHY = ns.missing()
pytestmark = pytest.mark.skipif(WHY is not None, reason=WHY or "")
FAST = ["--interval", "0.05", "--timeout", "0.4"]
SECOND = 1_000_000_000
CLI = "import sys; from acdkit.cli import main; sys.argv[0] = 'acdkit'; main()"


@dataclass
class Servers:
    good: list[ns.Chrony]
    ahead: list[ns.Chrony]  # 300 s ahead
    stratum16: ns.Chrony
    unsynchronised: ns.Chrony
    nobody: str  # a port nobody answers


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    base = tmp_path_factory.mktemp("ntp")
    good = [ns.local(base / f"good{i}") for i in range(3)]
    ahead = [ns.local(base / f"ahead{i}", ahead_s=300) for i in range(3)]
    s15 = ns.local(base / "s15", stratum=15)
    s16 = ns.chained(base / "s16", s15)
    lone = ns.lone(base / "lone")
    every = [*good, *ahead, s15, s16, lone]
    try:
        for s in every:
            s.start()
        for s in [*good, *ahead, s15, lone]:
            s.wait(ns.answering)
        s16.wait(ns.synced)
        yield Servers(good, ahead, s16, lone, f"127.0.0.1:{ns.free_port()}")
    finally:
        for s in every:
            s.stop()


def run(runner: CliRunner, *args: str) -> tuple[int, dict[str, object]]:
    result = runner.invoke(app, ["timecheck", *args, *FAST, "--json"])
    return result.exit_code, json.loads(result.stdout)


def server_args(*specs: str) -> list[str]:
    return [a for s in specs for a in ("--server", s)]


def results(doc: dict[str, object]) -> list[str]:
    servers = doc["servers"]
    assert isinstance(servers, list)
    return [s["result"] for s in servers]


def test_three_agreeing_servers(servers: Servers, runner: CliRunner) -> None:
    code, doc = run(runner, *server_args(*(s.spec for s in servers.good)))
    assert (code, doc["verdict"], doc["agreeing"]) == (0, "OK", 3)
    assert results(doc) == ["truechimer"] * 3
    # loopback: the servers' clock is this clock, so the bound is a round trip and jitter
    bound = doc["bound_ns"]
    assert isinstance(bound, int) and 0 < bound < 100_000_000
    interval = doc["interval_ns"]
    assert isinstance(interval, list) and interval[0] <= 0 <= interval[1]
    assert doc["max_drift_source"] == "default" and doc["max_drift_ns"] == SECOND
    first = doc["servers"][0]  # type: ignore[index]
    assert (first["stratum"], first["leap"], first["refid"]) == (3, 0, "127.127.1.1")
    assert len(first["samples"]) == 4


def test_a_false_ticker_is_voted_out(servers: Servers, runner: CliRunner) -> None:
    specs = [s.spec for s in servers.good] + [servers.ahead[0].spec]
    code, doc = run(runner, *server_args(*specs))
    assert (code, doc["verdict"], doc["agreeing"]) == (0, "OK", 3)
    assert results(doc) == ["truechimer", "truechimer", "truechimer", "falseticker"]
    false = doc["servers"][3]  # type: ignore[index]
    assert abs(false["offset_ns"] - 300 * SECOND) < 50_000_000


def test_two_agreeing_and_a_false_ticker_is_too_few(servers: Servers, runner: CliRunner) -> None:
    specs = [servers.good[0].spec, servers.good[1].spec, servers.ahead[0].spec]
    code, doc = run(runner, *server_args(*specs))
    assert (code, doc["verdict"], doc["agreeing"]) == (5, "POLICY", 2)
    assert doc["reason"] == "2 of 3 servers agree; at least 3 required"
    assert results(doc) == ["truechimer", "truechimer", "falseticker"]
    code, doc = run(runner, *server_args(*specs), "--min-agree", "2")
    assert (code, doc["verdict"]) == (0, "OK")


def test_one_against_one_has_no_majority(servers: Servers, runner: CliRunner) -> None:
    code, doc = run(
        runner, *server_args(servers.good[0].spec, servers.ahead[0].spec), "--min-agree", "1"
    )
    assert (code, doc["verdict"], doc["agreeing"]) == (5, "POLICY", 0)
    assert results(doc) == ["no-majority", "no-majority"]
    assert doc["offset_ns"] is None


def test_an_unreachable_server_is_left_out(servers: Servers, runner: CliRunner) -> None:
    specs = [s.spec for s in servers.good] + [servers.nobody]
    code, doc = run(runner, *server_args(*specs))
    assert (code, doc["verdict"], doc["agreeing"]) == (0, "OK", 3)
    assert results(doc)[3] == "unreachable"
    nobody = doc["servers"][3]  # type: ignore[index]
    assert [s["failure"] for s in nobody["samples"]] == ["timeout"] * 4


def test_nothing_reachable_is_io(servers: Servers, runner: CliRunner) -> None:
    code, doc = run(runner, *server_args(servers.nobody))
    assert (code, doc["verdict"], doc["reason"]) == (6, "IO", "no server answered (1 timed out)")


def test_unsynchronised_servers_are_no_truechimers(servers: Servers, runner: CliRunner) -> None:
    specs = [s.spec for s in servers.good] + [servers.stratum16.spec, servers.unsynchronised.spec]
    code, doc = run(runner, *server_args(*specs))
    assert (code, doc["verdict"], doc["agreeing"]) == (0, "OK", 3)
    assert results(doc)[3:] == ["unsynchronised", "unsynchronised"]
    s16, lone = doc["servers"][3], doc["servers"][4]  # type: ignore[index]
    # stratum 16 goes on the wire as 0 (RFC 5905 §7.3), with its source as refid
    assert (s16["stratum"], s16["leap"], s16["refid"]) == (0, 0, "127.0.0.1")
    assert (lone["stratum"], lone["leap"], lone["refid"]) == (0, 3, "0.0.0.0")
    # and alone they are reachable but useless: POLICY, not IO
    code, doc = run(
        runner,
        *server_args(servers.stratum16.spec, servers.unsynchronised.spec),
        "--min-agree",
        "1",
    )
    assert (code, doc["verdict"], doc["agreeing"]) == (5, "POLICY", 0)


def test_drift_over_the_limit(servers: Servers, runner: CliRunner) -> None:
    specs = [s.spec for s in servers.ahead]
    code, doc = run(runner, *server_args(*specs))
    assert (code, doc["verdict"], doc["agreeing"]) == (5, "POLICY", 3)
    # servers 300 s ahead: the local clock is behind them, and the reason says so
    assert str(doc["reason"]).startswith("the local clock is 299.9")
    assert str(doc["reason"]).endswith("behind true time, beyond the limit of ±1.000000 s")
    code, doc = run(runner, *server_args(*specs), "--max-drift", "301")
    assert (code, doc["verdict"], doc["max_drift_source"]) == (0, "OK", "--max-drift")


def test_people_get_a_table(servers: Servers, runner: CliRunner) -> None:
    specs = [s.spec for s in servers.good] + [servers.ahead[0].spec]
    result = runner.invoke(app, ["timecheck", *server_args(*specs), *FAST])
    assert result.exit_code == 0
    assert "timecheck: NTP servers" in result.stderr
    assert result.stderr.count("truechimer") == 3 and "falseticker" in result.stderr
    assert "OK 3 of 4 servers agree" in result.stderr
    assert result.stdout == ""


def test_servers_from_the_environment_and_the_config_file(
    servers: Servers, runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ACDKIT_NTP_SERVERS", " ".join(s.spec for s in servers.good))
    code, doc = run(runner)
    assert (code, doc["agreeing"]) == (0, 3)
    monkeypatch.delenv("ACDKIT_NTP_SERVERS")
    conf = tmp_path / "config.toml"
    listed = ", ".join(f'"{s.spec}"' for s in servers.good[:2])
    conf.write_text(f"[timecheck]\nservers = [{listed}]\nmin_agree = 2\nmax_drift = 0.5\n")
    monkeypatch.setenv("ACDKIT_CONFIG", str(conf))
    code, doc = run(runner)
    assert (code, doc["agreeing"], doc["min_agree"], doc["max_drift_ns"]) == (0, 2, 2, SECOND // 2)
    conf.write_text("[timecheck]\nservres = []\n")
    result = runner.invoke(app, ["timecheck"])
    assert result.exit_code == 2 and "unknown key timecheck.servres" in result.stderr


def test_usage_errors(runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ACDKIT_CONFIG", str(tmp_path / "none.toml"))
    result = runner.invoke(app, ["timecheck"])
    assert result.exit_code == 2 and "ACDKIT_CONFIG names" in result.stderr
    monkeypatch.delenv("ACDKIT_CONFIG")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    result = runner.invoke(app, ["timecheck"])
    assert result.exit_code == 2 and "no NTP server is configured" in result.stderr
    for bad, message in [
        ("host:0", "the port must be a number from 1 to 65535"),
        ("[::1", "expected [ADDRESS]"),
        ("fe80::1::2", "is no IPv6 address"),
        ("ntp\x01.example", "control character"),
        ("x" * 256, "longer than 255 bytes"),
    ]:
        result = runner.invoke(app, ["timecheck", "--server", bad])
        assert result.exit_code == 2 and message in result.stderr
    result = runner.invoke(app, ["timecheck", "--server", "a", "--server", "a"])
    assert result.exit_code == 2 and "given twice" in result.stderr
    assert parse_server("[::1]:1230").port == 1230
    assert parse_server("::1").host == "::1" and parse_server("::1").port == 123
    assert parse_server("ntp.nict.jp").port == 123


# -- clock evidence in a store ----------------------------------------------------------------


def test_a_run_with_a_store_is_sealed_and_verified(
    servers: Servers, runner: CliRunner, store: Store, signer: Signer, data: Path
) -> None:
    ingest.ingest(store, [data / "zeek-tsv/zat/conn.log"])
    specs = [s.spec for s in servers.good] + [servers.ahead[0].spec, servers.nobody]
    code, doc = run(runner, str(store.root), *server_args(*specs))
    assert (code, doc["verdict"]) == (0, "OK")
    queued = [parse_entry(d) for _n, d in pending_entries(store)]
    assert [e.kind for e in queued] == [EntryType.CLOCK]
    assert doc["clock_entry"] == f"pending/{next(iter(pending_entries(store)))[0]}"
    record = ClockRecord.from_body(queued[0].body)
    assert record.check().agreeing == 3
    assert [s.name for s in record.servers] == specs
    assert record.selection.offset_ns == doc["offset_ns"]
    sealed = seal.seal(store, signer)
    assert sealed.segments[-1]["log_entries"] == 1
    report = verify.verify_store(store, require_outside=False)
    assert report.verdict == 0, report.failure
    clock_check = [c for c in report.checks if c.id == "12"]
    assert clock_check and clock_check[0].status == "ok"
    assert "1 CLOCK entries verify" in clock_check[0].detail


def test_the_drift_limit_comes_from_the_trust_policy(
    servers: Servers, store: Store, signer: Signer, tmp_path: Path
) -> None:
    root = generate("example.org/root")
    seal.seal(store, signer, heartbeat=True)
    issued = policy.Policy(
        store.origin, 1, 0, [policy.SealerWindow(signer.verifier)], drift_max_ms=400_000
    )
    policy.write_policy(store, issued, root)
    report = timecheck(
        [parse_server(s.spec) for s in servers.ahead],
        interval=0.05,
        timeout=0.4,
        store=store,
    )
    assert report.drift_source == "trust policy 1"
    assert (report.selection.verdict, report.record.max_drift_ns) == ("OK", 400 * SECOND)


# -- a leap second -----------------------------------------------------------------------------


def test_a_leap_second_announcement_is_reported(tmp_path: Path) -> None:
    year, _month, day, ahead = ns.next_leap_day_offset()
    zone = ns.leap_zone(tmp_path / "zone", year, day)
    good = [ns.local(tmp_path / f"w{i}", ahead_s=ahead) for i in range(3)]
    leap = ns.chained(tmp_path / "leap", good[0], [f"leapsectz {zone}"], ahead_s=ahead)
    try:
        for s in [*good, leap]:
            s.start()
        for s in good:
            s.wait(ns.answering)
        leap.wait(lambda stats: stats.leap == 1)
        env = {**os.environ, **ns.faked(ahead)}
        specs = [s.spec for s in [*good, leap]]
        args = [sys.executable, "-c", CLI, "timecheck", *server_args(*specs), *FAST]
        done = subprocess.run(args, env=env, capture_output=True, text=True, check=False)
        as_json = subprocess.run(
            [*args, "--json"], env=env, capture_output=True, text=True, check=False
        )
    finally:
        for s in [*good, leap]:
            s.stop()
    doc = json.loads(as_json.stdout)
    assert (as_json.returncode, doc["verdict"], doc["agreeing"]) == (0, "OK", 4)
    assert doc["began"].startswith(f"{year}-")  # the client lived in the moved world too
    assert doc["leap_announced"] == [leap.spec]
    assert doc["servers"][3]["leap"] == 1 and doc["servers"][3]["result"] == "truechimer"
    assert doc["warnings"] == [
        f"{leap.spec} announces a leap second insertion at the end of the day (truechimer)"
    ]
    assert done.returncode == 0
    assert "announces a leap second insertion" in done.stderr


# -- the authenticated bound -------------------------------------------------------------------


def test_rfc3161_anchors_bound_the_clock_beside_ntp(
    servers: Servers, runner: CliRunner, store: Store, signer: Signer, data: Path, tmp_path: Path
) -> None:
    cas = [LocalCa.create(tmp_path / "pki", f"ca-{n}") for n in "ab"]
    tsas = [LocalTsa(tmp_path / "tsas", ca, f"tsa-{n}") for ca, n in zip(cas, "ab", strict=True)]
    try:
        ingest.ingest(store, [data / "zeek-tsv/zat/conn.log"])
        seal.seal(store, signer)
        trust = {
            t.name: tsa_mod.TsaTrust(t.name, tsa_mod.load_roots(ca.pem), None)
            for t, ca in zip(tsas, cas, strict=True)
        }
        endpoints = [tsa_mod.TsaEndpoint(t.name, t.url) for t in tsas]
        assert anchor.anchor_store(store, endpoints, trust, timeout=5).verdict == 0
    finally:
        for t in tsas:
            t.close()
    code, doc = run(runner, str(store.root), *server_args(*(s.spec for s in servers.good)))
    assert (code, doc["verdict"]) == (0, "OK")
    bound = doc["authenticated"]
    assert isinstance(bound, dict)
    assert [t["tsa"] for t in bound["tsas"]] == ["tsa-a", "tsa-b"]
    low, high = bound["bound_ns"]
    # openssl's genTime has whole seconds: TSA minus local lies within about a second of 0
    assert -2 * SECOND < low <= 0 <= high < 2 * SECOND
    assert bound["checkpoint_size"] == 361 and bound["verified"] is None
    result = runner.invoke(
        app, ["timecheck", str(store.root), *server_args(*(s.spec for s in servers.good)), *FAST]
    )
    assert "RFC 3161: at " in result.stderr and "(tsa-a, tsa-b) minus the local clock" in (
        result.stderr
    )
    # the next seal covers the ANCHOR and CLOCK entries; verify reports both for a window
    seal.seal(store, signer)
    roots = AnchorTrust(trust)
    report = verify.verify_store(
        store, anchors=roots, clock_window=(doc["began_ns"], doc["began_ns"] + SECOND)
    )
    assert report.verdict == 0, report.failure
    window = report.facts["clock_window"]
    assert window["rfc3161"]["before"]["verified"] is True
    assert window["ntp"]["during"][0]["verdict"] == "OK"


def test_a_damaged_policy_does_not_cost_the_measurement(
    servers: Servers, store: Store, signer: Signer
) -> None:
    seal.seal(store, signer, heartbeat=True)
    (store.root / "policy").mkdir()
    (store.root / "policy" / f"{1:020d}.policy.note").write_text("not a policy\n")
    report = timecheck([parse_server(servers.nobody)], interval=0.05, timeout=0.4, store=store)
    assert report.selection.verdict == "IO" and report.drift_source == "default"
    assert report.warnings[0].startswith("the store's trust policy could not be read (")
    assert report.queued is not None and report.queued.is_file()
