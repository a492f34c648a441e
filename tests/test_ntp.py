"""`acdkit timecheck` against bad input: server names, numbers, hostile replies, a store
that cannot take the CLOCK entry.  The replies come from tests/fakentp.py (what chronyd
never sends), so nothing here needs chrony."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from acdkit import ntp, timecheck
from acdkit.cli import app
from acdkit.errors import UsageError
from acdkit.logentries import pending_entries
from acdkit.ntp import parse_server
from acdkit.store import Store
from fakentp import NEXT_ERA_AT, responders

FAST = ["--interval", "0", "--timeout", "0.5"]
SECOND = 1_000_000_000


def servers(*specs: str) -> list[str]:
    return [a for s in specs for a in ("--server", s)]


def run(runner: CliRunner, *args: str) -> tuple[int, dict[str, object], str]:
    result = runner.invoke(app, ["timecheck", *args, *FAST, "--json"])
    return result.exit_code, json.loads(result.stdout), result.stderr


def table(runner: CliRunner, *args: str) -> str:
    """The people's output, on a wide console so that no cell is cut."""
    result = runner.invoke(app, ["timecheck", *args, *FAST], env={"COLUMNS": "200"})
    return " ".join(result.stderr.split())


# -- server names ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message", "hint"),
    [
        # a list pasted into one option: the message says how to give several
        ("ntp.a:123,ntp.b:123", "is no IPv6 address", "one server per --server"),
        ("ntp.a,ntp.b", "is neither an IP address nor a host name", "without quotes or commas"),
        ('"ntp.example', "is neither an IP address nor a host name", "one server per"),
        ("::1:12345", "is no IPv6 address", "needs brackets: [ADDRESS]:PORT"),
        # other scripts' digits are digits to str.isdigit and to int()
        ("127.0.0.1:\u0663", "the port must be a number from 1 to 65535", None),
    ],
)
def test_names_that_are_no_server(text: str, message: str, hint: str | None) -> None:
    with pytest.raises(UsageError) as caught:
        parse_server(text)
    assert message in caught.value.message
    assert hint is None or hint in (caught.value.hint or "")


def test_one_server_spelled_twice_is_refused(runner: CliRunner) -> None:
    assert parse_server("NTP.Example.").key == parse_server("ntp.example:123").key
    assert parse_server("[0:0::1]:123").key == parse_server("::1").key
    result = runner.invoke(app, ["timecheck", *servers("ntp.example", "NTP.example:123")])
    # it would cast two votes in the intersection
    assert result.exit_code == 2
    assert "NTP server NTP.example:123 is given twice (as ntp.example)" in result.stderr


def test_two_names_that_resolve_to_one_server_are_warned_of(runner: CliRunner) -> None:
    if socket.getaddrinfo("localhost", 123, type=socket.SOCK_DGRAM)[0][4][0] != "127.0.0.1":
        pytest.skip("localhost does not resolve to 127.0.0.1 first here")
    with responders("good") as (one,):
        port = one.spec.rsplit(":", 1)[1]
        code, doc, _ = run(runner, *servers(one.spec, f"localhost:{port}"), "--min-agree", "2")
    assert code == 0
    assert doc["warnings"] == [
        f"{one.spec} and localhost:{port} are one server (127.0.0.1 port {port}): its answer "
        "counts twice in the vote"
    ]


def test_a_name_that_resolves_too_slowly_is_unresolved_within_the_timeout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # getaddrinfo has no time-out: a resolver that hangs must not hold a cron run. The
    # resolver is slowed here (a unit test of the deadline); the other server is real.
    real = socket.getaddrinfo

    def slow(host: str, *args: object, **kwargs: object) -> object:
        if host == "slow.example":
            time.sleep(5)
        return real(host, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(socket, "getaddrinfo", slow)
    with responders("good") as (one,):
        specs = [parse_server("slow.example"), parse_server(one.spec)]
        start = time.monotonic()
        found = ntp.query_servers(specs, samples=1, interval=0, timeout=0.5)
        took = time.monotonic() - start
    assert took < 2.5
    assert [s.samples[0].failure for s in found] == ["unresolved", None]
    assert found[0].address is None and found[1].address == "127.0.0.1"


def test_names_and_hints_are_shown_as_written(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Rich read "[fe80::1%lo]" and "[timecheck]" as markup tags and printed nothing of them
    out = table(runner, *servers("[fe80::1%lo]:9"), "--samples", "1", "--min-agree", "1")
    assert "[fe80::1%lo]:9" in out
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    result = runner.invoke(app, ["timecheck"])
    assert result.exit_code == 2
    assert "list servers under [timecheck] in the config file" in result.stderr


# -- numbers -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        # 0 used to mean "the default" (4 samples, 3 servers)
        (["--samples", "0"], "--samples must be 1 to 16"),
        (["--min-agree", "0"], "--min-agree must be 1 to 64"),
        (["--max-drift", "inf"], "--max-drift must be a number of seconds from 0 to 86,400"),
        (["--max-drift", "1e300"], "--max-drift must be a number of seconds from 0 to 86,400"),
        # a cron job that waits for ever never reports
        (["--timeout", "1e9"], "--timeout must be a number of seconds from 0.01 to 60"),
        (["--interval", "61"], "--interval must be a number of seconds from 0 to 60"),
    ],
)
def test_numbers_out_of_range_are_usage_errors(
    args: list[str], message: str, runner: CliRunner
) -> None:
    result = runner.invoke(app, ["timecheck", "--server", "127.0.0.1:9", *args])
    assert (result.exit_code, result.stderr.strip()) == (2, f"error: {message}")


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("interval = -1", "--interval must be a number of seconds from 0 to 60"),
        ("timeout = -1", "--timeout must be a number of seconds from 0.01 to 60"),
        ("timeout = 1e400", "--timeout must be a number of seconds from 0.01 to 60"),
        ("max_drift = nan", "--max-drift must be a number of seconds from 0 to 86,400"),
        ("samples = 0", "--samples must be 1 to 16"),
    ],
)
def test_config_values_out_of_range_are_usage_errors(
    line: str, message: str, runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # these went past every check and ended as internal errors (exit 70)
    conf = tmp_path / "config.toml"
    conf.write_text(f'[timecheck]\nservers = ["127.0.0.1:9"]\n{line}\n')
    monkeypatch.setenv("ACDKIT_CONFIG", str(conf))
    result = runner.invoke(app, ["timecheck"])
    assert (result.exit_code, result.stderr.strip()) == (2, f"error: {message}")


# -- hostile replies ---------------------------------------------------------------------------


def test_a_kiss_of_death_stops_the_requests(runner: CliRunner) -> None:
    with responders("good", "good", "good", "rate-kiss") as running:
        code, doc, _ = run(runner, *servers(*(r.spec for r in running)), "--samples", "4")
        requests = [r.requests for r in running]
        out = table(runner, *servers(*(r.spec for r in running)), "--samples", "4")
    assert (code, doc["verdict"], doc["agreeing"]) == (0, "OK", 3)
    kissed = doc["servers"][3]  # type: ignore[index]
    assert (kissed["result"], kissed["refid"], len(kissed["samples"])) == ("kiss", "RATE", 1)
    # RFC 5905 §7.4: a client that is kissed stops asking; the good ones got all four
    assert requests == [4, 4, 4, 1]
    assert "kiss RATE 0 3" in out


def test_garbage_is_a_bad_reply_and_says_so(runner: CliRunner) -> None:
    with responders("garbage") as (junk,):
        code, doc, _ = run(runner, *servers(junk.spec), "--min-agree", "1", "--samples", "2")
        out = table(runner, *servers(junk.spec), "--min-agree", "1", "--samples", "2")
    assert (code, doc["verdict"]) == (6, "IO")
    assert doc["reason"] == "no server answered (1 sent no usable reply)"
    samples = doc["servers"][0]["samples"]  # type: ignore[index]
    assert [s["failure"] for s in samples] == ["bad-reply", "bad-reply"]
    assert f"{junk.spec} bad reply - -" in out


def test_a_server_in_the_next_ntp_era(runner: CliRunner) -> None:
    # NTP sends seconds modulo 2^32: read as era 0, a 2037 clock came out 126 years behind
    with responders("good", "good", "good", "next-era") as running:
        code, doc, _ = run(runner, *servers(*(r.spec for r in running)))
        out = table(runner, *servers(*(r.spec for r in running)))
    expected = (NEXT_ERA_AT - time.time()) * SECOND
    assert (code, doc["agreeing"]) == (0, 3)
    far = doc["servers"][3]  # type: ignore[index]
    assert far["result"] == "falseticker"
    assert abs(far["offset_ns"] - expected) < 5 * SECOND
    # and the table fits the offset in its column (it was cut to "-3,979,607,295…")
    assert f"falseticker 2 0 +{expected / SECOND / (365.25 * 86_400):,.1f} y" in out


def test_many_servers_are_asked_at_once(runner: CliRunner) -> None:
    # 48 ports bound and never read: each request waits for its time-out
    silent = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(48)]
    try:
        for s in silent:
            s.bind(("127.0.0.1", 0))
        specs = [f"127.0.0.1:{s.getsockname()[1]}" for s in silent]
        began = time.monotonic()
        result = runner.invoke(
            app, ["timecheck", *servers(*specs), "--samples", "1", "--timeout", "1", "--json"]
        )
        elapsed = time.monotonic() - began
    finally:
        for s in silent:
            s.close()
    assert result.exit_code == 6
    # 48 servers that never answer: one time-out, not three rounds of 16 threads
    assert elapsed < 2.5, elapsed


# -- the store ---------------------------------------------------------------------------------


def test_a_store_that_cannot_be_written_is_refused_before_asking(
    store: Store, runner: CliRunner
) -> None:
    (store.root / ".lock").unlink(missing_ok=True)
    (store.root / ".lock").mkdir()  # the lock cannot be opened: as a read-only store
    with responders("good") as (one,):
        result = runner.invoke(
            app, ["timecheck", str(store.root), *servers(one.spec), *FAST, "--json"]
        )
        asked = one.requests
    assert result.exit_code == 6
    doc = json.loads(result.stdout)
    assert doc["error"]["message"].startswith(f"cannot write to the store {store.root} (")
    assert doc["error"]["message"].endswith("); nothing was measured")
    assert asked == 0


def test_a_busy_store_keeps_the_measurement(
    store: Store,
    runner: CliRunner,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setattr(timecheck, "LOCK_WAIT_S", 0.5)
    with responders("good", "good", "good") as running, store.lock():
        # another writer (a long seal) holds the store past the wait
        code, doc, _ = run(runner, str(store.root), *servers(*(r.spec for r in running)))
    assert code == 6
    # the measurement is in the document although its CLOCK entry is not in the store
    assert (doc["verdict"], doc["agreeing"], doc["clock_entry"]) == ("OK", 3, None)
    assert len(doc["servers"]) == 3  # type: ignore[arg-type]
    assert doc["error"] == {
        "verdict": "IO",
        "message": "the CLOCK entry could not be queued: another acdkit process is writing "
        f"to {store.root}",
        "hint": "wait for it to finish and run again",
    }
    assert "waiting up to 0.5 s to queue the CLOCK entry" in caplog.text
    assert list(pending_entries(store)) == []
