"""An incident on the bundled examples, from open to close, through the CLI: every decision
sealed and verified (by acdkit and by the independent verifier), status deadlines and exit
codes, T+30 tickets to a real HTTP server on loopback, and the KPIs of the run."""

from __future__ import annotations

import hashlib
import http.server
import json
import shutil
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from acdkit import ingest, keys, seal
from acdkit.cli import app
from acdkit.store import init_store
from test_independent_verifier import resign, run_acdkit, run_independent

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((REPO / "examples").glob("zeek-*/*.log"))
WINDOW = ["--from", "2013-09-15T00:00:00Z", "--to", "2020-05-02T00:00:00Z"]


@dataclass
class Env:
    store: Path
    sealer: Path
    custodian: Path
    vkey: str  # the custodian's
    runner: CliRunner = field(default_factory=CliRunner)

    def run(self, *args: str, code: int = 0) -> Any:
        result = self.runner.invoke(
            app,
            [*args],
            env={
                "ACDKIT_CUSTODIAN_KEY": str(self.custodian),
                "ACDKIT_SEALER_KEY": str(self.sealer),
            },
        )
        assert result.exit_code == code, (args, result.stdout, result.stderr)
        return json.loads(result.stdout) if "--json" in args else result


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Env:
    """The examples ingested and sealed, and a registered custodian key (outside the store)."""
    base = tmp_path_factory.mktemp("incident")
    st, sealer = init_store(base / "store", base / "keys/sealer.key", "example")
    report = ingest.ingest(st, EXAMPLES)
    assert not [f.error for f in report.files if f.error]
    seal.seal(st, keys.load_signer(sealer))
    env = Env(base / "store", sealer, base / "keys/custodian.key", "")
    doc = env.run(
        "keys",
        "new",
        "--role",
        "custodian",
        "--name",
        "alice@example.org",
        "--store",
        str(env.store),
        "--out",
        str(env.custodian),
        "--json",
    )
    assert doc["registered"] is True
    env.vkey = doc["vkey"]
    return env


@pytest.fixture
def env(template: Env, tmp_path: Path) -> Env:
    shutil.copytree(template.store, tmp_path / "store")
    return Env(tmp_path / "store", template.sealer, template.custodian, template.vkey)


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


@pytest.fixture
def webhook() -> Iterator[tuple[str, list[Received]]]:
    """A real HTTP server on loopback: 201 on /hook, 500 on /fail."""
    got: list[Received] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            got.append(Received(self.path, dict(self.headers), body))
            self.send_response(500 if self.path == "/fail" else 201)
            self.end_headers()
            self.wfile.write(b'{"ticket": "T-1"}')

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", got
    finally:
        server.shutdown()
        server.server_close()


def clocks_of(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {f"{c['regime']}/{c['stage']}": c for c in doc["incidents"][0]["clocks"]}


def test_an_incident_from_open_to_close_on_the_examples(
    env: Env, webhook: tuple[str, list[Received]], tmp_path: Path, tool: Path
) -> None:
    s = str(env.store)
    inc = ["--incident", "INC-1"]
    env.run(
        "incident",
        "open",
        s,
        *inc,
        "--detected",
        "2026-10-05T14:00:00+09:00",
        "--recognized",
        "2026-10-05T14:20:00+09:00",
        "--first-observed",
        "2026-10-05T13:10:00+09:00",
        "--severity",
        "high",
        "--reason",
        "CNI-INCIDENT",
        "--reason",
        "ACD-EXTERNAL-INBOUND",
        "--why",
        "IDS alert on the OT gateway, confirmed",
    )
    env.run(
        "incident",
        "log",
        s,
        *inc,
        "--action",
        "isolate",
        "--object",
        "segment:ot-dmz",
        "--at",
        "2026-10-05T14:02:30+09:00",
        "--why",
        "blocked the OT DMZ at the firewall",
    )

    # 14:10 — the 3-minute stage was met; tickets wait for a recipient (no recognition yet)
    doc = env.run("incident", "status", s, "--at", "2026-10-05T14:10:00+09:00", "--json")
    c = clocks_of(doc)
    assert c["acd-internal/severity-isolate"]["state"] == "met"
    assert c["acd-internal/severity-isolate"]["done_at"] == "2026-10-05T05:02:30Z"
    assert c["acd-internal/tickets"]["state"] == "running"
    assert c["acd-internal/tickets"]["seconds_left"] == 20 * 60
    assert c["jp-acd/prompt"]["state"] == "waiting"
    assert doc["incidents"][0]["sealed"] == 0 and doc["incidents"][0]["decisions"] == 3

    # 14:31 without tickets: overdue, exit 5 (POLICY) for cron
    doc = env.run("incident", "status", s, "--at", "2026-10-05T14:31:00+09:00", "--json", code=5)
    assert doc["overdue"] == 1
    assert clocks_of(doc)["acd-internal/tickets"]["state"] == "overdue"
    assert clocks_of(doc)["jp-acd/written"]["deadline"] == "2026-11-04T15:00:00Z"
    assert clocks_of(doc)["jp-acd/written"]["deadline_local"] == "2026-11-05T00:00:00+09:00"

    # 14:28 — the tickets, to a real server on loopback
    url, got = webhook
    out = tmp_path / "tickets"
    doc = env.run(
        "incident",
        "ticket",
        s,
        *inc,
        "--webhook",
        f"{url}/hook",
        "--out",
        str(out),
        "--at",
        "2026-10-05T14:28:00+09:00",
        "--json",
    )
    recipients = [
        "competent_minister",
        "prime_minister_nco",
        "police",
        "jpcert_cc",
        "sector_isac",
        "contractors",
    ]
    assert [t["recipient"] for t in doc["tickets"]] == recipients
    assert all(t["delivered"] and t["status"] == 201 for t in doc["tickets"])
    assert [r.path for r in got] == ["/hook"] * 6
    for received, ticket in zip(got, doc["tickets"], strict=True):
        assert hashlib.sha256(received.body).hexdigest() == ticket["sha256"]
        assert received.headers["X-Acdkit-Ticket-Sha256"] == ticket["sha256"]
        payload = json.loads(received.body)
        assert payload["recipient"]["id"] == ticket["recipient"]
        assert payload["incident"] == "INC-1" and payload["jp_form"] == "other"
        assert [r["code"] for r in payload["reason_codes"]] == [
            "CNI-INCIDENT",
            "ACD-EXTERNAL-INBOUND",
        ]
        assert payload["log"]["tree_size"] == 698  # the head of the log the ticket anchors
        assert (out / f"{ticket['recipient']}.json").read_bytes() == received.body
    text = (out / "competent_minister.txt").read_text()
    assert "宛先 / To: 事業所管大臣 / Competent minister" in text
    title_ja = "jp-acd/written  書面による報告（30日以内） / "
    written = title_ja + "Written report within 30 days: "
    assert written in text
    assert "2026-11-04 24:00 JST (running)" in text  # the end of the 30th day

    doc = env.run("incident", "status", s, "--at", "2026-10-05T14:31:00+09:00", "--json")
    assert clocks_of(doc)["acd-internal/tickets"]["state"] == "met"
    assert clocks_of(doc)["acd-internal/tickets"]["done_at"] == "2026-10-05T05:28:00Z"

    # seal what was decided so far, then a bundle, verified and recorded
    env.run("seal", s)
    bundle1 = tmp_path / "bundle1"
    env.run("package", s, *inc, *WINDOW, "--out", str(bundle1))
    env.run(
        "incident",
        "log",
        s,
        *inc,
        "--action",
        "package",
        "--bundle",
        str(bundle1),
        "--at",
        "2026-10-05T16:30:00+09:00",
        "--why",
        "technical summary and timeline ready",
    )
    for action, at, extra in (
        ("submit", "2026-10-06T10:00:00+09:00", ["--stage", "jp-acd/prompt"]),
        ("recover", "2026-10-06T09:00:00+09:00", []),
        ("publish", "2026-10-07T10:00:00+09:00", ["--object", "https://example.org/notice"]),
        ("submit", "2026-10-20T10:00:00+09:00", ["--stage", "jp-acd/written"]),
    ):
        env.run(
            "incident",
            "log",
            s,
            *inc,
            "--action",
            action,
            "--at",
            at,
            *extra,
            "--why",
            f"{action} as planned",
        )
    env.run(
        "incident", "close", s, *inc, "--at", "2026-10-21T12:00:00+09:00", "--why", "done", "--seal"
    )

    # every decision sealed, and verified
    doc = env.run("incident", "status", s, "--at", "2026-10-22T00:00:00+09:00", "--json")
    assert doc["overdue"] == 0
    incident = doc["incidents"][0]
    assert (incident["decisions"], incident["sealed"], incident["closed"]) == (15, 15, True)
    assert {k: v["state"] for k, v in clocks_of(doc).items()} == {
        "acd-internal/severity-isolate": "met",
        "acd-internal/tickets": "met",
        "acd-internal/summary": "met",
        "jp-acd/prompt": "met",
        "jp-acd/written": "met",
        "jp-appi/preliminary": "waiting",  # in the default scope; no personal data involved
        "jp-appi/final": "waiting",
    }
    # the store's own custodian list is its word only: INCOMPLETE until the keys are pinned
    listed = env.run("verify", s, "--local-only", "--json", code=3)
    assert listed["failure"]["check"] == "10" and listed["facts"]["decisions"] == 15
    assert (
        "signed by custodian keys that nothing outside the store pins"
        in (listed["failure"]["message"])
    )
    check10 = next(c for c in listed["checks"] if c["id"] == "10")
    assert "checked against custodian keys of keys/custodians.vkey" in check10["detail"]
    verified = env.run("verify", s, "--local-only", "--custodian", env.vkey, "--json")
    assert verified["verdict"] == "VERIFIED" and verified["facts"]["decisions"] == 15
    assert "15 decisions signed by custodian keys" in verified["coverage"]
    # a second responder registered: the list file, or its text, pins both keys at once
    env.run("keys", "add-custodian", s, _another_vkey(tmp_path), "--json")
    listing = env.store / "keys/custodians.vkey"
    assert len(listing.read_text().split()) == 2
    for given in (str(listing), listing.read_text()):
        both = env.run("verify", s, "--local-only", "--custodian", given, "--json")
        assert (both["verdict"], both["facts"]["decisions"]) == ("VERIFIED", 15)
    bad = env.run("verify", s, "--local-only", "--custodian", f"{env.vkey} nonsense", code=2)
    assert "--custodian (the value given)" not in bad.stderr and "--custodian" in bad.stderr

    # the final bundle carries the decisions; both verifiers agree
    bundle2 = tmp_path / "bundle2"
    env.run("package", s, *inc, *WINDOW, "--out", str(bundle2))
    assert len(list((bundle2 / "decisions").iterdir())) == 15
    sealer_vkey = (env.store / "keys/sealer.vkey").read_text().strip()
    for args, verdict in (
        ((), "VERIFIED"),
        (("--custodian", env.vkey), "VERIFIED"),
        (("--custodian", _another_vkey(tmp_path)), "TAMPERED"),
    ):
        mine = run_acdkit(bundle2, "--key", sealer_vkey, *args)
        theirs = run_independent(tool, bundle2, "--key", sealer_vkey, *args)
        assert (mine.verdict, theirs.verdict) == (verdict, verdict), (mine, theirs)
    assert "15 decisions of incident INC-1" in theirs.coverage or verdict == "TAMPERED"

    # the KPIs of this run, exactly
    kpis = env.run("kpi", s, "--at", "2026-10-22T00:00:00+09:00", "--json")
    assert (kpis["incidents"], kpis["closed"]) == (1, 1)
    assert kpis["mttd_seconds"] == 50 * 60
    assert kpis["mttc_seconds"] == 150
    assert kpis["mttr_seconds"] == 19 * 3600
    assert kpis["sla_t30"] == {"met": 1, "due": 1, "ratio": 1.0}
    assert kpis["sla_t180"] == {"met": 1, "due": 1, "ratio": 1.0}
    assert kpis["sla_internal"] == {"met": 3, "due": 3, "ratio": 1.0}
    assert kpis["sla_statutory"] == {"met": 2, "due": 2, "ratio": 1.0}
    assert kpis["audit_line_completion"] == {"met": 1, "due": 1, "ratio": 1.0}
    assert kpis["recognition_to_verified_bundle_median_seconds"] == 2 * 3600 + 10 * 60


def _another_vkey(tmp_path: Path) -> str:
    other = keys.generate("mallory@example.org")
    return str(other.verifier.vkey())


@pytest.fixture(scope="module")
def tool(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from acdkit import bundle

    path = tmp_path_factory.mktemp("tool") / "acdkit_verify.py"
    path.write_bytes(bundle.independent_verifier())
    return path


def _opened(env: Env) -> None:
    env.run(
        "incident",
        "open",
        str(env.store),
        "--incident",
        "INC-2",
        "--detected",
        "2026-10-05T14:00:00+09:00",
        "--reason",
        "CNI-INCIDENT",
        "--why",
        "opened",
    )


def test_decisions_cannot_predate_the_detection(env: Env) -> None:
    # they would make MTTD, MTTC and MTTR negative
    _opened(env)
    early = env.run(
        "incident", "log", str(env.store), "--incident", "INC-2", "--action", "isolate",
        "--at", "2026-10-05T13:59:59+09:00", "--why", "too early", code=2,
    )  # fmt: skip
    assert "--at is before incident INC-2 was detected (2026-10-05T05:00:00+00:00)" in (
        early.stderr
    )
    env.run(
        "incident", "log", str(env.store), "--incident", "INC-2", "--action", "isolate",
        "--at", "2026-10-05T14:00:00+09:00", "--why", "at detection",
    )  # fmt: skip
    late_trace = env.run(
        "incident", "open", str(env.store), "--incident", "INC-3",
        "--detected", "2026-10-05T14:00:00+09:00", "--first-observed",
        "2026-10-05T14:00:01+09:00", "--reason", "CNI-INCIDENT", "--why", "x", code=2,
    )  # fmt: skip
    assert "--first-observed is after --detected" in late_trace.stderr


def test_a_custodian_key_inside_the_store_and_an_unknown_recipient_are_refused(
    env: Env, tmp_path: Path
) -> None:
    _opened(env)
    inside = env.store / "custodian.key"
    shutil.copy(env.custodian, inside)
    doc = env.run(
        "incident", "log", str(env.store), "--incident", "INC-2", "--action", "note",
        "--why", "x", "--custodian-key", str(inside), code=2,
    )  # fmt: skip
    assert "lies inside the evidence store" in doc.stderr
    typo = env.run(
        "incident", "ticket", str(env.store), "--incident", "INC-2",
        "--webhook", "nosuchrecipient=http://127.0.0.1:9/", code=2,
    )  # fmt: skip
    assert "--webhook names no recipient of this incident's tickets: nosuchrecipient" in (
        typo.stderr
    )


def test_a_failed_delivery_is_logged_and_exits_io(
    env: Env, webhook: tuple[str, list[Received]]
) -> None:
    _opened(env)
    url, got = webhook
    doc = env.run(
        "incident",
        "ticket",
        str(env.store),
        "--incident",
        "INC-2",
        "--webhook",
        f"police={url}/fail",
        "--at",
        "2026-10-05T14:10:00+09:00",
        "--json",
        code=6,
    )
    sent = [t for t in doc["tickets"] if "delivered" in t]
    assert [(t["recipient"], t["delivered"], t["status"]) for t in sent] == [("police", False, 500)]
    assert [r.path for r in got] == ["/fail"]
    status = env.run(
        "incident", "status", str(env.store), "--at", "2026-10-05T14:11:00+09:00", "--json", code=5
    )  # nothing isolated within 3 minutes either
    missing = clocks_of(status)["acd-internal/tickets"]["missing"]
    assert "ticket to police" in missing  # a failed delivery does not count
    assert "ticket to competent_minister" in missing


def test_a_key_outside_the_custodian_list_cannot_log(env: Env, tmp_path: Path) -> None:
    _opened(env)
    stranger = tmp_path / "stranger.key"
    env.run(
        "keys", "new", "--role", "custodian", "--name", "bob@example.org", "--out", str(stranger)
    )
    result = env.runner.invoke(
        app,
        [
            "incident",
            "log",
            str(env.store),
            "--incident",
            "INC-2",
            "--action",
            "note",
            "--why",
            "x",
            "--custodian-key",
            str(stranger),
        ],
    )
    assert result.exit_code == 2, result.stderr
    assert "does not list" in result.stderr and "keys add-custodian" in result.stderr
    sealer_as_custodian = env.runner.invoke(
        app,
        [
            "incident",
            "log",
            str(env.store),
            "--incident",
            "INC-2",
            "--action",
            "note",
            "--why",
            "x",
            "--custodian-key",
            str(env.sealer),
        ],
    )
    assert sealer_as_custodian.exit_code == 2
    assert "not a custodian key" in sealer_as_custodian.stderr


def test_verify_holds_decisions_to_the_pinned_or_listed_custodians(
    env: Env, tmp_path: Path
) -> None:
    _opened(env)
    env.run("seal", str(env.store))
    assert env.run("verify", str(env.store), "--local-only", "--json", code=3)["verdict"] == (
        "INCOMPLETE"  # listed by the store, pinned by no one
    )
    other = _another_vkey(tmp_path)
    doc = env.run("verify", str(env.store), "--local-only", "--custodian", other, "--json", code=1)
    assert "which --custodian does not list" in doc["failure"]["message"]
    (env.store / "keys/custodians.vkey").write_text(other + "\n")  # the list now contradicts
    doc = env.run("verify", str(env.store), "--local-only", "--json", code=1)
    assert doc["failure"]["check"] == "10"
    assert env.run("verify", str(env.store), "--local-only", "--custodian", env.vkey, "--json")[
        "verdict"
    ] == ("VERIFIED")
    # with the list gone a decision cannot even be logged: its signer could be anyone
    (env.store / "keys/custodians.vkey").unlink()
    refused = env.run(
        "incident", "log", str(env.store), "--incident", "INC-2", "--action", "note",
        "--why", "after the list was deleted", code=2,
    )  # fmt: skip
    assert "no custodian keys are registered for this store" in refused.stderr


def test_a_policy_window_for_custodians(env: Env, tmp_path: Path, tool: Path) -> None:
    _opened(env)
    env.run("seal", str(env.store))
    root = tmp_path / "root.key"
    env.run("keys", "new", "--role", "root", "--name", "example.org/root", "--out", str(root))
    s = str(env.store)
    # by default the policy takes the registered custodians, open-ended
    env.run("policy", "sign", s, "--root-key", str(root))
    text = env.run("policy", "show", s, "--json")["text"]
    assert f"custodian {env.vkey} - -\n" in text
    root_vkey = keys.load_signer(root).verifier.vkey()
    doc = env.run("verify", s, "--local-only", "--root", root_vkey, "--json")
    assert doc["verdict"] == "VERIFIED"
    assert "(custodian keys not pinned)" not in doc["coverage"]
    bundle = tmp_path / "bundle"
    env.run("package", s, "--incident", "INC-2", *WINDOW, "--out", str(bundle))
    sealer_vkey = (env.store / "keys/sealer.vkey").read_text().strip()
    for args in ((), ("--root", root_vkey)):
        mine = run_acdkit(bundle, "--key", sealer_vkey, *args)
        theirs = run_independent(tool, bundle, "--key", sealer_vkey, *args)
        assert (mine.verdict, theirs.verdict) == ("VERIFIED", "VERIFIED"), (mine, theirs)
    # a window that closed before the decisions were signed
    env.run(
        "policy",
        "sign",
        s,
        "--root-key",
        str(root),
        "--custodian",
        f"{env.vkey}@..2020-01-01T00:00:00Z",
    )
    doc = env.run("verify", s, "--local-only", "--root", root_vkey, "--json", code=1)
    assert "outside its window in trust policy 2" in doc["failure"]["message"]
    # the same policy in the bundle, the manifest signed again (an insider with the sealer key)
    (bundle / "policy" / f"{1:020d}.policy.note").unlink()
    shutil.copy(env.store / "policy" / f"{2:020d}.policy.note", bundle / "policy")
    resign(bundle, keys.load_signer(env.sealer))
    for args in ((), ("--root", root_vkey)):
        mine = run_acdkit(bundle, "--key", sealer_vkey, *args)
        theirs = run_independent(tool, bundle, "--key", sealer_vkey, *args)
        assert (mine.verdict, theirs.verdict) == ("TAMPERED", "TAMPERED"), (mine, theirs)
        assert "window" in mine.message and "window" in theirs.message


def test_log_refuses_unknown_words_and_unopened_incidents(env: Env) -> None:
    s = str(env.store)
    result = env.run(
        "incident", "log", s, "--incident", "NOPE", "--action", "note", "--why", "x", code=2
    )
    assert "was never opened" in result.stderr
    _opened(env)
    for args, message in (
        (["--action", "classify", "--reason", "NO-SUCH-CODE"], "unknown reason code"),
        (["--action", "submit", "--stage", "jp-acd/nope"], "unknown stage"),
        (["--action", "aware", "--event", "moonrise"], "unknown awareness event"),
        (["--action", "dance"], "--action must be one of"),
    ):
        result = env.run("incident", "log", s, "--incident", "INC-2", *args, "--why", "x", code=2)
        assert message in result.stderr
    result = env.run("incident", "open", s, "--incident", "INC-2", "--why", "again", code=2)
    assert "open already" in result.stderr


def test_classify_suggests_and_applies_nothing(env: Env, tmp_path: Path) -> None:
    _opened(env)
    doc = env.run("classify", str(env.store), "--incident", "INC-2", "--json")
    assert doc["applied"] is False
    assert doc["records"] == sum(doc["directions"].values()) == 642
    assert doc["geo_database"]["name"].startswith("iptocc ")
    codes = [s["code"] for s in doc["suggestions"]]
    assert "ACD-EXTERNAL-OUTBOUND" in codes  # the zat host browsing abroad
    status = env.run(
        "incident",
        "status",
        str(env.store),
        "--incident",
        "INC-2",
        "--json",
        "--at",
        "2026-10-05T14:01:00+09:00",
    )
    assert status["incidents"][0]["reason_codes"] == ["CNI-INCIDENT"]


def test_seal_refuses_a_queued_decision_that_would_not_verify(env: Env) -> None:
    from acdkit import logentries
    from acdkit.decision import Decision
    from acdkit.encoding import EntryType
    from acdkit.store import Store

    _opened(env)
    st = Store.open(env.store)
    signer = keys.load_signer(env.custodian)
    _signed, body = Decision("INC-2", "note", 0, 0, "alice", "genuine").sign(signer, st.origin)
    forged = body.replace(b"genuine", b"forged!")
    logentries.add_pending(st, EntryType.DECISION, forged)
    result = env.run("seal", str(env.store), code=1)
    assert "would not verify" in result.stderr and "signature does not verify" in result.stderr


def _bundle_with_decisions(env: Env, tmp_path: Path) -> Path:
    _opened(env)
    env.run("seal", str(env.store))
    out = tmp_path / "bundle"
    env.run("package", str(env.store), "--incident", "INC-2", *WINDOW, "--out", str(out))
    assert len(list((out / "decisions").iterdir())) == 2
    return out


def _edit_first_decision(root: Path, old: bytes, new: bytes) -> None:
    import base64

    path = sorted((root / "decisions").iterdir())[0]
    lines = path.read_bytes().split(b"\n")
    extra = base64.b64decode(lines[1].removeprefix(b"extra "))
    lines[1] = b"extra " + base64.b64encode(extra.replace(old, new))
    path.write_bytes(b"\n".join(lines))


def _other_incident(root: Path) -> None:
    _edit_first_decision(root, b"INC-2", b"INC-3")


def test_both_verifiers_agree_on_damaged_decisions(env: Env, tmp_path: Path, tool: Path) -> None:
    good = _bundle_with_decisions(env, tmp_path)
    sealer = keys.load_signer(env.sealer)
    vkey = (env.store / "keys/sealer.vkey").read_text().strip()
    cases: dict[str, tuple[Any, str]] = {
        "edited-why": (lambda r: _edit_first_decision(r, b"opened", b"closed"), "TAMPERED"),
        "custodian-list-replaced": (
            lambda r: (r / "key/custodians.vkey").write_text(_another_vkey(tmp_path) + "\n"),
            "TAMPERED",
        ),
        "custodian-list-not-a-vkey": (
            lambda r: (r / "key/custodians.vkey").write_text("alice\n"),
            "MALFORMED",
        ),
        "decision-proof-dropped": (
            lambda r: sorted((r / "decisions").iterdir())[0].unlink(),
            "VERIFIED",  # a bundle proves the decisions it carries, not that none is left out
        ),
    }
    for name, (damage, verdict) in cases.items():
        work = tmp_path / name
        shutil.copytree(good, work)
        damage(work)
        resign(work, sealer)
        mine, theirs = run_acdkit(work, "--key", vkey), run_independent(tool, work, "--key", vkey)
        assert (mine.verdict, theirs.verdict) == (verdict, verdict), (name, mine, theirs)
