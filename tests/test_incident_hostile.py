"""Hostile and careless input to `acdkit incident …`, through the CLI: every refusal is a
usage error that names the rule (never a traceback, never the value), leaves the store as it
was, and what `status` shows cannot be bent by a decision nobody trusted."""

from __future__ import annotations

import importlib.util
import shutil
import socket
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from acdkit import cli, custodians, ingest, keys, logentries, seal
from acdkit.decision import SIGNATURE_FIELD, Decision, decision_message, parse_decision
from acdkit.encoding import EntryType, TlvType, tlv
from acdkit.errors import MalformedError
from acdkit.incident import to_ns
from acdkit.store import Store, init_store
from test_incident_cli import Env

REPO = Path(__file__).resolve().parents[1]
CANARY = "canary-5e1f"
OPEN = [
    "--incident", "INC-9", "--detected", "2026-10-05T14:00:00+09:00",
    "--recognized", "2026-10-05T14:20:00+09:00", "--reason", "CNI-INCIDENT", "--why", "opened",
]  # fmt: skip


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Env:
    """One bundled Zeek log ingested and sealed, and a registered custodian key."""
    base = tmp_path_factory.mktemp("hostile")
    st, sealer = init_store(base / "store", base / "keys/sealer.key", "example")
    ingest.ingest(st, [REPO / "examples/zeek-tsv/conn.log"])
    seal.seal(st, keys.load_signer(sealer))
    env = Env(base / "store", sealer, base / "keys/custodian.key", "")
    doc = env.run(
        "keys", "new", "--role", "custodian", "--name", "alice@example.org",
        "--store", str(env.store), "--out", str(env.custodian), "--json",
    )  # fmt: skip
    env.vkey = doc["vkey"]
    return env


@pytest.fixture
def env(small: Env, tmp_path: Path) -> Env:
    shutil.copytree(small.store, tmp_path / "store")
    return Env(tmp_path / "store", small.sealer, small.custodian, small.vkey)


def _queued(env: Env) -> list[str]:
    pending = env.store / "pending"
    return sorted(p.name for p in pending.iterdir()) if pending.is_dir() else []


def _open(env: Env) -> None:
    env.run("incident", "open", str(env.store), *OPEN)


def _log(env: Env, *args: str, code: int = 0) -> Any:
    return env.run("incident", "log", str(env.store), "--incident", "INC-9", *args, code=code)


# -- a) and b): what a responder types is checked before anything is signed ------------------


@pytest.mark.parametrize(
    ("args", "rule"),
    [
        (["--why", "x" * 5000], "--why is 5,000 bytes: it must be 1 to 4,096 bytes of UTF-8"),
        (["--why", f"{CANARY}\ttab"], "found U+0009 at character 12"),
        (["--why", f"{CANARY}\x1b[2J"], "found U+001B at character 12"),
        (["--why", "x", "--actor", "y" * 200], "--actor is 200 bytes: it must be 1 to 128 bytes"),
        (["--why", "x", "--actor", f"{CANARY}\nmallory"], "found U+000A at character 12"),
        (["--why", "x", "--severity", "very high"], "--severity is not valid: 1 to 32 letters"),
        (["--why", "x", "--ref", f"{CANARY} x"], "--ref value 1 is not valid: 1 to 256"),
        (["--why", "x", "--object", f"{CANARY}\x07"], "--object is not valid"),
    ],
)
def test_bad_text_is_a_usage_error_naming_the_rule(env: Env, args: list[str], rule: str) -> None:
    _open(env)
    before = _queued(env)
    result = _log(env, "--action", "note", "--at", "2026-10-05T15:00:00+09:00", *args, code=2)
    assert rule in result.stderr
    assert CANARY not in result.stderr and "Traceback" not in result.stderr
    assert _queued(env) == before  # nothing signed, nothing queued


@pytest.mark.parametrize(
    "char", ["\u202e", "\u2066", "\u200b", "\u200f", "\u2028", "\ufeff", "\U000e0041"]
)
def test_bidi_overrides_and_invisible_characters_are_refused(env: Env, char: str) -> None:
    _open(env)
    why = f"approved{char}devorppa ton"
    result = _log(env, "--action", "note", "--why", why, code=2)
    assert f"found U+{ord(char):04X} at character 9" in result.stderr
    assert "read differently from what is signed" in result.stderr
    assert len(_queued(env)) == 2  # the open and the recognition only
    plain = _log(env, "--action", "note", "--why", "承認した。\n理由: IDSの警報")
    assert plain.exit_code == 0  # Japanese and line feeds are fine


def _independent() -> Any:
    path = REPO / "src/acdkit/_data/acdkit_verify.py"
    spec = importlib.util.spec_from_file_location("acdkit_verify_tool", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_both_parsers_refuse_a_signed_decision_that_hides_its_direction() -> None:
    # a decision written by another tool, signed properly, with U+202E in its why
    signer = keys.generate("alice@example.org")
    decision = Decision("INC-9", "note", 0, 0, "alice", "approved\u202edevorppa ton")
    unsigned = decision._fields(signer.verifier)
    signature = signer.sign(decision_message("acdkit/example/x", unsigned))
    body = unsigned + tlv(SIGNATURE_FIELD, TlvType.BYTES, signature)
    with pytest.raises(MalformedError) as caught:
        parse_decision(body)
    assert "DECISION why is not valid" in caught.value.message
    assert "devorppa" not in caught.value.message  # the text is not echoed
    with pytest.raises(ValueError, match="field 16 is empty, too long or holds a control"):
        _independent().decode_decision(body)
    clean = Decision("INC-9", "note", 0, 0, "alice", "approved").sign(signer, "acdkit/example/x")
    _independent().decode_decision(clean[1])  # the same tool accepts a plain one


# -- refusals leave the store as it was ---------------------------------------------------


def test_open_with_an_unknown_reason_queues_nothing(env: Env) -> None:
    bad = [*OPEN[:-4], "--reason", "NO-SUCH-CODE", "--why", "opened"]
    result = env.run("incident", "open", str(env.store), *bad, code=2)
    assert "unknown reason code 'NO-SUCH-CODE'" in result.stderr
    assert _queued(env) == []  # not a detection without its recognition
    _open(env)  # so the corrected command simply works
    assert len(_queued(env)) == 2


def test_open_seal_with_another_sealer_key_queues_nothing(env: Env, tmp_path: Path) -> None:
    _, other = init_store(tmp_path / "other", tmp_path / "other.key", "evil")
    result = env.run(
        "incident", "open", str(env.store), *OPEN, "--seal", "--key", str(other), code=2
    )
    assert "is not this log's current sealer key" in result.stderr
    assert _queued(env) == []
    env.run("incident", "open", str(env.store), *OPEN, "--seal")
    assert _queued(env) == []  # sealed at once with the right key


def test_a_decision_dated_in_the_future_is_refused(env: Env) -> None:
    _open(env)
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    result = _log(env, "--action", "close", "--at", tomorrow, "--why", "closed early", code=2)
    assert "is later than now" in result.stderr and "check the year and the zone" in result.stderr
    far = _log(env, "--action", "note", "--at", "2099-01-01T00:00:00Z", "--why", "x", code=2)
    assert "2099-01-01T00:00:00+00:00 is later than now" in far.stderr
    soon = (datetime.now(UTC) + timedelta(seconds=60)).isoformat()
    _log(env, "--action", "note", "--at", soon, "--why", "a clock a minute fast is tolerated")
    assert len(_queued(env)) == 3


def test_markup_in_a_value_is_shown_as_typed_not_interpreted(env: Env) -> None:
    _open(env)
    result = _log(env, "--action", "classify", "--reason", "[/]", "--why", "x", code=2)
    assert "unknown reason code '[/]'" in result.stderr  # not a MarkupError, not exit 1
    logged = _log(env, "--action", "note", "--actor", "[bold]bob[/]", "--why", "x")
    assert "by [bold]bob[/]" in logged.stderr


# -- status cannot be bent by a decision nobody trusted ------------------------------------


def test_status_refuses_a_queued_decision_by_an_unregistered_key(env: Env) -> None:
    _open(env)
    # whoever can write the store queues "isolated at once" under a key of their own
    mallory = keys.generate("mallory@example.org")
    st = Store.open(env.store)
    at = to_ns(datetime.fromisoformat("2026-10-05T14:01:00+09:00"))
    for action in ("severity", "isolate"):
        forged = Decision(
            "INC-9", action, at, time.time_ns(), "alice@example.org", "forged",
            severity="high" if action == "severity" else None,
        )  # fmt: skip
        logentries.add_pending(st, EntryType.DECISION, forged.sign(mallory, st.origin)[1])
    result = env.run(
        "incident", "status", str(env.store), "--at", "2026-10-05T14:10:00+09:00", code=1
    )
    assert "is signed by custodian key" in result.stderr and "does not list" in result.stderr
    assert "counts for nothing" in result.stderr
    kpi = env.run("kpi", str(env.store), code=1)
    assert "does not list" in kpi.stderr


# -- d) to g): what status shows --------------------------------------------------------------


def _status(env: Env, at: str, *more: str, code: int = 0) -> Any:
    return env.run("incident", "status", str(env.store), "--at", at, *more, code=code)


def test_status_before_the_incident_was_opened_says_so(env: Env) -> None:
    _open(env)
    result = _status(env, "2026-10-01T00:00:00+09:00")
    assert (
        "incident INC-9: not open yet at 2026-09-30T15:00:00Z "
        "(it was detected at 2026-10-05T05:00:00Z): no clock runs"
    ) in result.stderr
    assert "regime/stage" not in result.stderr  # no empty table
    doc = _status(env, "2026-10-01T00:00:00+09:00", "--json")
    inc = doc["incidents"][0]
    assert (inc["opened"], inc["detected_at"], inc["clocks"]) == (
        False,
        "2026-10-05T05:00:00Z",
        [],
    )


def test_status_title_counts_this_incidents_queued_decisions(env: Env) -> None:
    _open(env)  # the opening and the recognition
    at = "2026-10-05T14:25:00+09:00"
    title = _status(env, at, "--incident", "INC-9", code=5).stderr
    assert "incident INC-9 — 2 decisions queued, not sealed yet" in title
    env.run("seal", str(env.store))
    _log(env, "--action", "severity", "--severity", "high", "--why", "worse", "--at", at)
    title = _status(env, at, "--incident", "INC-9", code=5).stderr
    assert "incident INC-9 — 1 decision queued, not sealed yet" in title


def test_status_fits_80_columns_and_stars_only_what_it_footnotes(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cli.err, "width", 80)
    env.run(
        "incident", "open", str(env.store), "--incident", "INC-8", "--regime", "acd-internal",
        "--detected", "2026-10-05T14:00:00+09:00", "--severity", "high", "--why", "internal",
    )  # fmt: skip
    internal = env.run(
        "incident", "status", str(env.store), "--incident", "INC-8",
        "--at", "2026-10-05T14:10:00+09:00", code=5,
    )  # fmt: skip
    assert "not checked against the primary text" not in internal.stderr  # no star, no note
    lines = internal.stderr.splitlines()
    assert max(len(line.rstrip()) for line in lines) <= 80
    row = next(line for line in lines if line.startswith("acd-internal/severity-isolate"))
    assert row.split() == ["acd-internal/severity-isolate", "internal", "2026-10-05", "14:03",
                           "JST", "OVERDUE", "7m", "00s"]  # fmt: skip
    assert "  acd-internal/severity-isolate  isolate decision" in internal.stderr

    _open(env)
    full = _status(env, "2026-10-05T14:25:00+09:00", "--incident", "INC-9", "--waiting", code=5)
    lines = full.stderr.splitlines()
    assert max(len(line.rstrip()) for line in lines) <= 80
    written = next(line for line in lines if line.startswith("jp-acd/written"))
    assert written.split()[1:6] == ["regulation", "2026-11-04", "24:00", "JST*", "30d"]
    assert "* not checked against the primary text" in full.stderr
    assert "  jp-appi/final" in full.stderr and "waits for personal_data_breach" in full.stderr
    doc = _status(env, "2026-10-05T14:25:00+09:00", "--incident", "INC-9", "--json", code=5)
    clock = next(c for c in doc["incidents"][0]["clocks"] if c["stage"] == "written")
    assert (clock["deadline"], clock["last_day"]) == ("2026-11-04T15:00:00Z", "2026-11-04")


# -- c) and the hostile webhooks, through the CLI ---------------------------------------------


@pytest.mark.parametrize(
    ("webhook", "rule"),
    [
        ("https://alice:s3cret@hooks.example.org/t", "carries a user name or password"),
        ("police=https://alice:s3cret@hooks.example.org/t", "carries a user name or password"),
        ("http://127.0.0.1:99999/s3cret", "a port outside 0-65535"),
        ("http://127.0.0.1/s3cret\r\nX: y", "a blank, a control or a non-ASCII character"),
        ("Police=http://127.0.0.1/s3cret", "a recipient is written in lower case"),
    ],
)
def test_a_bad_webhook_is_a_usage_error_that_never_echoes_it(
    env: Env, webhook: str, rule: str
) -> None:
    _open(env)
    result = env.run(
        "incident", "ticket", str(env.store), "--incident", "INC-9", "--webhook", webhook, code=2
    )
    assert rule in result.stderr and "--webhook value 1" in result.stderr
    assert "s3cret" not in result.stderr + result.stdout and "Traceback" not in result.stderr
    assert len(_queued(env)) == 2  # nothing delivered, nothing logged


@pytest.fixture
def not_http(raw_server: Callable[[Callable[[socket.socket], None]], str]) -> str:
    """A loopback server that answers every request with a line that is not HTTP."""

    def hello(conn: socket.socket) -> None:
        conn.sendall(f"HELLO [/] {CANARY}\r\n\r\n".encode())

    return raw_server(hello) + "?token=s3cret"


def test_a_webhook_that_does_not_speak_http_is_a_logged_failure(env: Env, not_http: str) -> None:
    _open(env)
    doc = env.run(
        "incident", "ticket", str(env.store), "--incident", "INC-9", "--webhook",
        f"police={not_http}", "--at", "2026-10-05T14:28:00+09:00", "--json", code=6,
    )  # fmt: skip
    police = next(t for t in doc["tickets"] if t["recipient"] == "police")
    assert (police["delivered"], police["status"]) == (False, None)
    assert police["reason"] == "not delivered: the answer is not valid HTTP"
    st = Store.open(env.store)
    bodies = [d[38:] for _, d in logentries.pending_entries(st) if d[5] == EntryType.DECISION]
    failed = [parse_decision(b) for b in bodies if parse_decision(b).action == "ticket-failed"]
    assert [d.object for d in failed] == ["police"]
    assert failed[0].why == "T+30 ticket by webhook: not delivered: the answer is not valid HTTP"
    port = not_http.split(":")[2].split("/")[0]
    assert f"webhook:http://127.0.0.1:{port}" in failed[0].refs
    assert not any("s3cret" in r or CANARY in r for r in failed[0].refs)
    custodians.check_queued_decision(st, bodies[-1])  # and it would seal


def test_a_custodian_key_revoked_in_between(env: Env, tmp_path: Path) -> None:
    _open(env)
    env.run("seal", str(env.store))
    root = tmp_path / "root.key"
    env.run("keys", "new", "--role", "root", "--name", "example.org/root", "--out", str(root))
    # the responder's key is withdrawn now: its window ends at this moment
    end = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=1)
    until = end.isoformat().replace("+00:00", "Z")
    env.run(
        "policy", "sign", str(env.store), "--root-key", str(root), "--grace", "0",
        "--custodian", f"{env.vkey}@..{until}",
    )  # fmt: skip
    time.sleep(max(0.0, (end - datetime.now(UTC)).total_seconds()) + 0.2)
    refused = _log(env, "--action", "note", "--why", "after the revocation", code=2)
    assert "signed it outside its window in trust policy 1" in refused.stderr
    assert "no longer lets this key sign (revoked or expired)" in refused.stderr
    assert "keys add-custodian" not in refused.stderr  # registering again would not help
    assert _queued(env) == []
    # what it signed while its window was open still counts
    doc = _status(env, "2026-10-05T14:01:00+09:00", "--json")
    assert doc["incidents"][0]["decisions"] == 2
    root_vkey = keys.load_signer(root).verifier.vkey()
    verified = env.run("verify", str(env.store), "--local-only", "--root", root_vkey, "--json")
    assert verified["verdict"] == "VERIFIED"


def test_a_decision_edited_after_sealing_is_tampered_at_the_tree_check(env: Env) -> None:
    _open(env)
    env.run("seal", str(env.store))
    entries = next(env.store.glob("segments/*/entries.bin"))
    data = entries.read_bytes()
    assert data.count(b"opened") == 2  # the open and the recognition say why
    entries.write_bytes(data.replace(b"opened", b"OPENED", 1))
    doc = env.run("verify", str(env.store), "--local-only", "--json", code=1)
    assert (doc["verdict"], doc["failure"]["check"]) == ("TAMPERED", "4")
    assert "does not match its checkpoint" in doc["failure"]["message"]
    status = _status(env, "2026-10-05T14:10:00+09:00", code=1)  # not a silent "met"
    assert "does not verify with the key it names" in status.stderr


def test_two_interleaved_incidents_run_their_own_clocks(env: Env) -> None:
    s = str(env.store)
    for inc, detected in (
        ("A-1", "2026-10-05T14:00:00+09:00"),
        ("B-1", "2026-10-05T14:01:00+09:00"),
    ):
        env.run(
            "incident", "open", s, "--incident", inc, "--regime", "acd-internal",
            "--detected", detected, "--why", "opened",
        )  # fmt: skip
    env.run(
        "incident", "log", s, "--incident", "B-1", "--action", "isolate",
        "--at", "2026-10-05T14:02:00+09:00", "--why", "B isolated", "--severity", "low",
    )  # fmt: skip
    env.run(
        "incident", "log", s, "--incident", "A-1", "--action", "severity", "--severity", "high",
        "--at", "2026-10-05T14:02:30+09:00", "--why", "A assessed",
    )  # fmt: skip
    doc = _status(env, "2026-10-05T14:05:00+09:00", "--json", code=5)
    states = {
        i["incident"]: {c["stage"]: c["state"] for c in i["clocks"]} for i in doc["incidents"]
    }
    assert states["A-1"]["severity-isolate"] == "overdue"  # A's severity, no isolation
    assert states["B-1"]["severity-isolate"] == "met"  # B's isolation carried its severity
    assert {i["incident"]: i["severity"] for i in doc["incidents"]} == {"A-1": "high", "B-1": "low"}
    assert doc["overdue"] == 1


def test_simultaneous_opens_of_one_incident_queue_it_once(env: Env, tmp_path: Path) -> None:
    # eight responders (or a retrying script) open INC-9 at the same moment: each process
    # checks "not open yet" and queues; without a lock around both, all eight got in. The
    # processes load everything first and start together, so that their checks overlap.
    import os
    import subprocess

    go = tmp_path / "go"
    script = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "import acdkit.cli_incident\n"
        "from acdkit.cli import main\n"
        "Path(sys.argv[1] + '.ready').touch()\n"
        "while not Path(sys.argv[2]).exists():\n"
        "    time.sleep(0.001)\n"
        "sys.argv = ['acdkit', *sys.argv[3:]]\n"
        "main()\n"
    )
    args = ["incident", "open", str(env.store), *OPEN, "--custodian-key", str(env.custodian),
            "--json"]  # fmt: skip
    environ = {**os.environ, "ACDKIT_KEY_DIR": str(env.custodian.parent)}
    runs = [
        subprocess.Popen([sys.executable, "-c", script, str(tmp_path / str(i)), str(go), *args],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environ)
        for i in range(8)
    ]  # fmt: skip
    deadline = time.monotonic() + 60
    while len(list(tmp_path.glob("*.ready"))) < 8 and time.monotonic() < deadline:
        time.sleep(0.01)
    go.touch()
    outs = [r.communicate(timeout=120)[0] for r in runs]
    codes = sorted(r.returncode for r in runs)
    assert codes == [0] + [2] * 7
    assert sum("is open already" in out for out in outs) == 7
    actions = sorted(parse_decision(body).action for body in _queued_bodies(env))
    assert actions == ["open", "recognize"]


def _queued_bodies(env: Env) -> list[bytes]:
    entries = [logentries.parse_entry(data)
               for _, data in logentries.pending_entries(Store.open(env.store))]  # fmt: skip
    return [e.body for e in entries if e.kind == EntryType.DECISION]
