"""CUSTODY entries (evidence format §16): the known-answer vector, strict parsing in both
implementations, and the chain of custody through the CLI on the bundled example logs:
`package --custodian-key`, `custody log`, `custody show`, seal and both verifiers."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from typer.testing import CliRunner

from acdkit import custodychain, ingest, keys, logentries, seal
from acdkit.cli import app
from acdkit.custody import Custody, custody_message, parse_custody
from acdkit.encoding import EntryType, TlvType, parse_tlv, tlv
from acdkit.errors import MalformedError
from acdkit.keys import Signer
from acdkit.store import Store, init_store
from test_independent_verifier import load_tool, resign, run_acdkit, run_independent

REPO = Path(__file__).resolve().parents[1]
VECTORS = json.loads((REPO / "docs/custody-vectors.json").read_text(encoding="utf-8"))
ORIGIN = VECTORS["origin"]
EXAMPLES = sorted((REPO / "examples").glob("zeek-*/*.log"))
WINDOW = ["--from", "2013-09-15T00:00:00Z", "--to", "2020-05-02T00:00:00Z"]
iv = load_tool()
SIGNER = Signer("alice@example.org", Ed25519PrivateKey.from_private_bytes(bytes(range(96, 128))))


# -- the format --------------------------------------------------------------------------------


def test_the_vector_file_is_what_the_code_makes() -> None:
    proc = subprocess.run(
        [sys.executable, str(REPO / "scripts/make_custody_vectors.py"), "--check"],
        check=False,
        cwd=REPO,
    )
    assert proc.returncode == 0, "run scripts/make_custody_vectors.py and commit the result"


def test_the_vector_parses_and_verifies_in_both_implementations() -> None:
    body = bytes.fromhex(VECTORS["body"])
    custody = parse_custody(body)
    assert (custody.event, custody.incident, custody.checkpoint_size) == (
        "hand-over",
        "INC-2026-0001",
        3,
    )
    assert custody.at_ns == 1_791_187_200_000_000_000  # 2026-10-05T08:00:00Z
    assert (custody.sender, custody.recipient) == ("alice@example.org", "NCO 受付 (reception desk)")
    assert custody.custodian is not None and custody.custodian.vkey() == VECTORS["custodian_vkey"]
    assert custody.verifies(ORIGIN)
    assert not custody.verifies("acdkit/another/log")  # the origin is signed: no replay
    signed = custody_message(ORIGIN, custody.unsigned_body())
    assert hashlib.sha256(signed).hexdigest() == VECTORS["signed_message_sha256"]
    theirs = iv.decode_custody(body)
    message = iv.CUSTODY_PREFIX + ORIGIN.encode() + b"\n" + theirs.message_body
    assert iv.ed25519_ok(theirs.custodian.public, theirs.signature, message)
    assert theirs.message_body == custody.unsigned_body()
    assert (theirs.size, theirs.manifest) == (3, bytes.fromhex("cd" * 32))


def _edit(fid: int, value: bytes | None, kind: TlvType = TlvType.UTF8) -> bytes:
    fields = [f for f in parse_tlv(bytes.fromhex(VECTORS["body"])) if f[0] != fid]
    if value is not None:
        fields.append((fid, kind, value))
    return b"".join(tlv(f, k, v) for f, k, v in sorted(fields, key=lambda f: f[0]))


BAD = {
    "unknown-field": _edit(20, b"x"),
    "missing-handler": _edit(6, None),
    "missing-root": _edit(11, None),
    "version-2": _edit(1, (2).to_bytes(8, "big"), TlvType.U64),
    "event-unknown": _edit(2, b"lost"),
    "hand-over-without-to": _edit(8, None),
    "hand-over-without-from": _edit(7, None),
    "outcome-on-a-hand-over": _edit(9, b"VERIFIED"),
    "handler-with-bidi-override": _edit(6, "alice\u202egro.elpmaxe".encode()),
    "handler-with-escape": _edit(6, b"alice\x1b[31m"),
    "to-with-line-separator": _edit(8, "NCO\u2028desk".encode()),
    "to-with-zero-width-space": _edit(8, "NCO\u200bdesk".encode()),
    "note-with-a-tag-character": _edit(13, "sealed\U000e0041".encode()),
    "to-with-newline": _edit(8, b"NCO\ndesk"),
    "handler-over-128-bytes": _edit(6, b"a" * 129),
    "handler-empty": _edit(6, b""),
    "note-over-1024-bytes": _edit(13, b"n" * 1025),
    "handler-not-utf8": _edit(6, b"\xff\xfe"),
    "incident-with-slash": _edit(5, b"INC/1"),
    "size-0": _edit(10, bytes(8), TlvType.U64),
    "size-2^63": _edit(10, (1 << 63).to_bytes(8, "big"), TlvType.U64),
    "root-31-bytes": _edit(11, bytes(31), TlvType.BYTES),
    "manifest-wrong-type": _edit(12, bytes(32), TlvType.UTF8),
    "short-time": _edit(3, bytes(4), TlvType.I64),
    "custodian-not-a-vkey": _edit(30, b"alice"),
    "short-signature": _edit(31, bytes(63), TlvType.BYTES),
    "field-after-signature": bytes.fromhex(VECTORS["body"]) + tlv(32, TlvType.UTF8, b"x"),
    "truncated": bytes.fromhex(VECTORS["body"])[:-1],
}


@pytest.mark.parametrize("name", list(BAD))
def test_both_implementations_refuse_a_malformed_body(name: str) -> None:
    with pytest.raises(MalformedError):
        parse_custody(BAD[name])
    with pytest.raises((ValueError, iv.Finding)):
        iv.decode_custody(BAD[name])


def test_both_implementations_agree_on_every_byte_of_the_vector_changed() -> None:
    # each byte of the body set to a few values: accepted by one parser iff by the other,
    # and then with the same verdict on the signature
    import random

    body = bytes.fromhex(VECTORS["body"])
    rng = random.Random(16)
    accepted = 0
    for at in range(len(body)):
        for value in {0x00, 0xFF, body[at] ^ 0x01, rng.randrange(256)}:
            changed = body[:at] + bytes([value]) + body[at + 1 :]
            if changed == body:
                continue
            try:
                mine: bool | None = parse_custody(changed).verifies(ORIGIN)
            except MalformedError:
                mine = None
            try:
                event = iv.decode_custody(changed)
                message = iv.CUSTODY_PREFIX + ORIGIN.encode() + b"\n" + event.message_body
                theirs = iv.ed25519_ok(event.custodian.public, event.signature, message)
            except (ValueError, iv.Finding):
                theirs = None
            assert mine == theirs, (at, value)
            assert mine is not True, (at, value)  # no change to a signed body goes unnoticed
            accepted += mine is not None
    assert accepted > 100  # values inside text, times and hashes parse (and do not verify)


def test_a_verification_carries_its_outcome_and_nothing_else_does() -> None:
    base = Custody("verification", 0, 0, "alice", 3, bytes(32), outcome="TAMPERED")
    signed, body = base.sign(SIGNER, ORIGIN)
    assert signed.outcome == "TAMPERED" and iv.decode_custody(body).event == "verification"
    for bad in (
        replace(base, outcome=None),
        replace(base, outcome="FINE"),
        replace(base, event="export"),  # an export with an outcome
        replace(base, event="receipt", outcome=None),  # a receipt from nobody
    ):
        with pytest.raises(MalformedError):
            bad.sign(SIGNER, ORIGIN)


def test_an_edited_body_no_longer_verifies_in_either_implementation() -> None:
    edited = _edit(8, b"someone else entirely")
    assert not parse_custody(edited).verifies(ORIGIN)  # well formed, wrongly signed
    theirs = iv.decode_custody(edited)
    message = iv.CUSTODY_PREFIX + ORIGIN.encode() + b"\n" + theirs.message_body
    assert not iv.ed25519_ok(theirs.custodian.public, theirs.signature, message)


# -- the chain through the CLI -------------------------------------------------------------------


@dataclass
class Env:
    store: Path
    sealer: Path
    custodian: Path
    vkey: str  # the custodian's
    runner: CliRunner = field(default_factory=CliRunner)

    def run(self, *args: str, code: int = 0) -> Any:
        result = self.runner.invoke(app, [*args], env={"ACDKIT_SEALER_KEY": str(self.sealer)})
        assert result.exit_code == code, (args, result.stdout, result.stderr)
        return json.loads(result.stdout) if "--json" in args else result

    def log(self, *args: str, code: int = 0) -> Any:
        return self.run(
            "custody", "log", str(self.store), "--custodian-key", str(self.custodian), *args,
            code=code,
        )  # fmt: skip


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Env:
    """The examples ingested and sealed, a registered custodian key outside the store."""
    base = tmp_path_factory.mktemp("custody")
    st, sealer = init_store(base / "store", base / "keys/sealer.key", "example")
    assert not [f.error for f in ingest.ingest(st, EXAMPLES).files if f.error]
    seal.seal(st, keys.load_signer(sealer))
    env = Env(base / "store", sealer, base / "keys/custodian.key", "")
    doc = env.run(
        "keys", "new", "--role", "custodian", "--name", "alice@example.org",
        "--store", str(env.store), "--out", str(env.custodian), "--json",
    )  # fmt: skip
    env.vkey = doc["vkey"]
    return env


@pytest.fixture
def env(template: Env, tmp_path: Path) -> Env:
    shutil.copytree(template.store, tmp_path / "store")
    return Env(tmp_path / "store", template.sealer, template.custodian, template.vkey)


@pytest.fixture(scope="module")
def tool(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from acdkit import bundle

    path = tmp_path_factory.mktemp("tool") / "acdkit_verify.py"
    path.write_bytes(bundle.independent_verifier())
    return path


def _package(env: Env, out: Path, *extra: str) -> Any:
    return env.run(
        "package", str(env.store), "--incident", "INC-1", *WINDOW, "--out", str(out), *extra,
        "--json",
    )  # fmt: skip


def _chain(env: Env, tmp_path: Path) -> tuple[Path, str]:
    """Bundle 1 exported for the NCO, handed over, received and verified; all sealed."""
    first = tmp_path / "bundle-1"
    doc = _package(env, first, "--custodian-key", str(env.custodian), "--recipient", "NCO")
    digest = doc["custody"]["manifest_sha256"]
    assert digest == hashlib.sha256((first / "MANIFEST.note").read_bytes()).hexdigest()
    env.log("--event", "hand-over", "--bundle", str(first), "--to", "NCO desk, room 4",
            "--note", "USB stick #4 in a sealed bag")  # fmt: skip
    env.log("--event", "receipt", "--manifest", digest, "--from", "alice@example.org")
    env.log("--event", "verification", "--bundle", str(first), "--seal")
    return first, digest


def test_a_bundle_s_chain_of_custody_end_to_end(env: Env, tmp_path: Path, tool: Path) -> None:
    first, digest = _chain(env, tmp_path)
    statement = json.loads((first / "custody/export.json").read_text())
    assert (statement["signed"], statement["to"], statement["incident"]) == (True, "NCO", "INC-1")
    assert statement["custodian"] == env.vkey
    shown = env.run("custody", "show", str(env.store), "--json")["entries"]
    assert [(e["index"], e["event"], e["from"], e["to"]) for e in shown] == [
        (698, "export", "alice@example.org", "NCO"),
        (699, "hand-over", "alice@example.org", "NCO desk, room 4"),
        (700, "receipt", "alice@example.org", "alice@example.org"),
        (701, "verification", None, None),
    ]
    assert {e["manifest_sha256"] for e in shown} == {digest}
    assert shown[3]["outcome"] == "VERIFIED" and shown[1]["note"] == "USB stick #4 in a sealed bag"
    assert {e["checkpoint_size"] for e in shown} == {698}
    # the store: check 13, pinned by the verifier; without a pin it rests on the store's word
    pinned = ("--local-only", "--custodian", env.vkey, "--json")
    doc = env.run("verify", str(env.store), *pinned)
    assert doc["verdict"] == "VERIFIED" and doc["facts"]["custody"] == 4
    assert doc["coverage"].endswith("; 4 custody entries signed by custodian keys")
    unpinned = env.run("verify", str(env.store), "--local-only", "--json", code=3)
    assert unpinned["failure"]["check"] == "13"
    # a later bundle of the incident proves the whole chain of the first, in both verifiers
    second = tmp_path / "bundle-2"
    doc = _package(env, second)
    assert doc["custody"]["leaves"] == 4 and doc["custody"]["export"].startswith("not signed")
    assert sorted(p.name for p in (second / "custody").iterdir())[-1] == "export.json"
    args = ("--key", (env.store / "keys/sealer.vkey").read_text().strip(), "--custodian", env.vkey)
    mine, theirs = run_acdkit(second, *args), run_independent(tool, second, *args)
    assert (mine.verdict, theirs.verdict) == ("VERIFIED", "VERIFIED"), (mine, theirs)
    assert "4 custody entries of incident INC-1 signed" in mine.coverage
    assert "4 custody entries of incident INC-1 verified with keys of --custodian" in (
        theirs.coverage
    )
    report = env.run("verify", str(second), *args, "--json")
    warned = [c for c in report["checks"] if c["id"] == "13" and c["status"] == "warn"]
    assert [c["detail"] for c in warned] == [
        "no custodian signed the export of this bundle (custody/export.json)"
    ]


def test_bundle_custody_damage_gives_the_same_verdict_in_both_verifiers(
    env: Env, tmp_path: Path, tool: Path
) -> None:
    _chain(env, tmp_path)
    # a verification run of the log as it now stands (checkpoint 703, closed by SEAL 702)
    env.log("--event", "verification", "--checkpoint", "703", "--incident", "INC-1", "--seal")
    good = tmp_path / "good"
    _package(env, good, "--custodian-key", str(env.custodian))
    sealer = keys.load_signer(env.sealer)
    vkey = (env.store / "keys/sealer.vkey").read_text().strip()
    other = keys.generate("bob@example.org").verifier.vkey()

    def statement(r: Path, **change: Any) -> None:
        path = r / "custody/export.json"
        path.write_text(json.dumps({**json.loads(path.read_text()), **change}))

    cases: dict[str, tuple[Any, tuple[str, ...], str]] = {
        "not-pinned-key": (lambda r: None, ("--custodian", other), "TAMPERED"),
        "statement-of-another-incident": (lambda r: statement(r, incident="I2"), (), "MALFORMED"),
        "statement-signed-not-a-bool": (lambda r: statement(r, signed="yes"), (), "MALFORMED"),
        "statement-not-json": (
            lambda r: (r / "custody/export.json").write_text("{"), (), "MALFORMED"
        ),
        "stray-file-in-custody": (lambda r: (r / "custody/x.txt").write_text("x"), (), "MALFORMED"),
        "custody-proof-dropped": (
            lambda r: sorted((r / "custody").glob("*.tlog-proof"))[1].unlink(),
            (),
            "VERIFIED",  # a bundle proves the entries it carries, not that none is left out
        ),
        "seal-of-the-custody-checkpoint-dropped": (
            lambda r: (r / "seals" / f"{702:020d}.tlog-proof").unlink(),
            (),
            "MALFORMED",  # the SEAL that dates checkpoint 703 (the records' is 697)
        ),
    }  # fmt: skip
    for name, (damage, extra, verdict) in cases.items():
        work = tmp_path / name
        shutil.copytree(good, work)
        damage(work)
        resign(work, sealer)
        args = ("--key", vkey, *extra)
        mine, theirs = run_acdkit(work, *args), run_independent(tool, work, *args)
        assert (mine.verdict, theirs.verdict) == (verdict, verdict), (name, mine, theirs)


def test_custody_log_refuses_bad_arguments_naming_the_rule(env: Env, tmp_path: Path) -> None:
    first = tmp_path / "bundle"
    doc = _package(env, first, "--custodian-key", str(env.custodian))
    digest = doc["custody"]["manifest_sha256"]
    b = ("--bundle", str(first))
    cases = [
        (("--event", "lost", *b), "--event must be one of export, hand-over, receipt"),
        (("--event", "hand-over", "--to", "x"), "exactly one of --bundle, --manifest"),
        (("--event", "hand-over", *b, "--manifest", digest, "--to", "x"), "exactly one of"),
        (("--event", "hand-over", *b), "--event hand-over needs --to"),
        (("--event", "receipt", *b), "--event receipt needs --from"),
        (("--event", "verification", *b, "--to", "x"), "verification takes no --to or --from"),
        (("--event", "verification", "--from", "x"), "verification takes no --to or --from"),
        (("--event", "hand-over", *b, "--to", "NCO\u202e4 moor"), "--to holds a control char"),
        (("--event", "hand-over", *b, "--to", "x" * 129), "--to must be 1 to 128 bytes"),
        (("--event", "export", *b, "--note", "two\nlines"), "--note holds a control"),
        (("--event", "hand-over", *b, "--to", "x", "--at", "2200-01-01T00:00:00Z"), "future"),
        (("--event", "hand-over", *b, "--to", "x", "--at", "2000-01-01T00:00:00Z"), "before"),
        (("--event", "hand-over", *b, "--to", "x", "--at", ""), "is not an ISO-8601 time"),
        (("--event", "hand-over", *b, "--to", "   "), "--to is blank"),
        (("--event", "hand-over", "--manifest", "ab" * 32, "--to", "x"), "no custody entry of"),
        (("--event", "hand-over", "--manifest", "xyz", "--to", "x"), "64 hex digits"),
        (("--event", "verification", "--manifest", digest), "needs the bundle itself"),
        (("--event", "export", "--checkpoint", "5"), "no checkpoint of size 5"),
        (("--event", "hand-over", *b, "--to", "x", "--incident", "INC-9"), "is of incident INC-1"),
        (("--event", "export", "--checkpoint", "698", "--incident", "I\n1"), "--incident must be"),
        (("--event", "hand-over", "--bundle", str(tmp_path / "nope"), "--to", "x"), "not exist"),
    ]  # fmt: skip
    for args, expected in cases:
        result = env.log(*args, code=2)
        assert expected in result.stderr.replace("\n", " "), (
            args,
            result.stderr,
        )
        assert "\u202e" not in result.stderr  # a reason never echoes hostile text
    assert env.run("custody", "show", str(env.store), "--json")["entries"][0]["event"] == "export"
    assert len(env.run("custody", "show", str(env.store), "--json")["entries"]) == 1


def test_an_unregistered_custodian_key_exports_nothing(env: Env, tmp_path: Path) -> None:
    stranger = tmp_path / "stranger.key"
    env.run(
        "keys", "new", "--role", "custodian", "--name", "bob@example.org", "--out", str(stranger)
    )
    out = tmp_path / "bundle"
    result = env.run(
        "package", str(env.store), "--incident", "INC-1", *WINDOW, "--out", str(out),
        "--custodian-key", str(stranger), code=2,
    )  # fmt: skip
    assert "does not list" in result.stderr and "keys add-custodian" in result.stderr
    assert not out.exists()
    assert not list(logentries.pending_entries(Store.open(env.store)))
    alone = env.run(
        "package", str(env.store), "--incident", "INC-1", *WINDOW, "--out", str(out),
        "--recipient", "NCO", code=2,
    )  # fmt: skip
    assert "needs --custodian-key" in alone.stderr and not out.exists()


def test_seal_refuses_a_queued_custody_entry_that_would_not_verify(env: Env) -> None:
    st = Store.open(env.store)
    custodian = keys.load_signer(env.custodian)
    root = custodychain.store_known(st).roots[698]
    genuine = Custody("export", 0, 0, "alice", 698, root, recipient="genuine")
    _signed, body = custodychain.signed_entry(st, custodian, replace(genuine, at_ns=_now()))
    logentries.add_pending(st, EntryType.CUSTODY, body.replace(b"genuine", b"forged!"))
    result = env.run("seal", str(env.store), code=1)
    assert "would not verify" in result.stderr and "signature does not verify" in result.stderr
    assert len(st.segment_dirs()) == 1  # nothing was sealed


def test_seal_names_the_forged_one_of_several_queued_entries(env: Env) -> None:
    # the genuine entries queued before it must not be blamed: a user told to remove the
    # file named would otherwise delete good evidence
    st = Store.open(env.store)
    custodian = keys.load_signer(env.custodian)
    root = custodychain.store_known(st).roots[698]
    for n in range(3):
        entry = Custody("hand-over", _now(), 0, "alice", 698, root, sender="alice",
                        recipient=f"genuine{n}")  # fmt: skip
        _signed, body = custodychain.signed_entry(st, custodian, entry)
        if n == 2:
            body = body.replace(b"genuine2", b"forged!!")
        logentries.add_pending(st, EntryType.CUSTODY, body)
    forged = [name for name, data in logentries.pending_entries(st) if b"forged!!" in data]
    result = env.run("seal", str(env.store), code=1)
    assert f"queued entry pending/{forged[0]} would not verify" in result.stderr
    assert len(st.segment_dirs()) == 1  # nothing was sealed


def test_a_seal_that_cannot_run_says_the_entry_stays_queued(env: Env) -> None:
    # another writer holds the store: the entry is queued all the same, and a retry as
    # the old hint said ("run again") would log it twice
    st = Store.open(env.store)
    with st.lock():
        result = env.log("--event", "export", "--checkpoint", "698", "--to", "x", "--seal", code=6)
    ((name, _data),) = logentries.pending_entries(st)
    assert f"queued pending/{name} but not sealed: another acdkit process" in result.stderr
    assert "do not log it again" in result.stderr
    env.run("seal", str(env.store))
    assert not list(logentries.pending_entries(st))


def test_a_forged_queued_entry_stops_custody_log_as_tampered(env: Env) -> None:
    # the store is damaged, not the command: exit 1 naming the queued entry, nothing added
    st = Store.open(env.store)
    custodian = keys.load_signer(env.custodian)
    root = custodychain.store_known(st).roots[698]
    genuine = Custody("export", _now(), 0, "alice", 698, root, recipient="genuine")
    _signed, body = custodychain.signed_entry(st, custodian, genuine)
    logentries.add_pending(st, EntryType.CUSTODY, body.replace(b"genuine", b"forged!"))
    result = env.log("--event", "export", "--checkpoint", "698", "--to", "x", code=1)
    ((name, _data),) = logentries.pending_entries(st)
    assert f"queued CUSTODY entry pending/{name}: the signature does not verify" in result.stderr
    assert "add-custodian" not in result.stderr
    assert len(list(logentries.pending_entries(st))) == 1


def test_verify_reports_a_back_dated_entry_as_policy(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    # what a custodian with a wrong clock (or a back-dating one) could get past a seal that
    # did not check: dated a day before the checkpoint it concerns was sealed
    st = Store.open(env.store)
    custodian = keys.load_signer(env.custodian)
    root = custodychain.store_known(st).roots[698]
    early = Custody("export", _now() - 86_400 * 10**9, 0, "alice", 698, root, bytes(32), "INC-1")
    _signed, body = replace(early, recorded_ns=_now()).sign(custodian, st.origin)
    logentries.add_pending(st, EntryType.CUSTODY, body)
    result = env.run("seal", str(env.store), code=5)
    assert re.search(
        r"entry \(export\) is dated 86,[0-9]{3}s before checkpoint 698 it", result.stderr
    )
    monkeypatch.setattr(custodychain, "check_queued_custody", lambda store, body: None)
    env.run("seal", str(env.store))
    doc = env.run("verify", str(env.store), "--local-only", "--custodian", env.vkey, "--json",
                  code=5)  # fmt: skip
    assert doc["failure"]["check"] == "13"
    pattern = r"CUSTODY at index 698 \(export\) is dated 86,[0-9]{3}s before checkpoint 698 it "
    assert re.fullmatch(pattern + "concerns was sealed", doc["failure"]["message"])


def test_custody_show_lists_queued_entries_and_filters(env: Env, tmp_path: Path) -> None:
    first = tmp_path / "bundle"
    _package(env, first, "--custodian-key", str(env.custodian), "--handler", "Alice Tanaka")
    env.log("--event", "verification", "--checkpoint", "698", "--incident", "INC-1")
    table = env.run("custody", "show", str(env.store))
    assert "chain of custody: 2 entries, 2 queued, not sealed yet" in table.stderr
    assert "Alice" in table.stderr and "queued" in table.stderr
    shown = env.run("custody", "show", str(env.store), "--json")["entries"]
    assert [(e["index"], e["event"], e["outcome"]) for e in shown] == [
        (None, "export", None),
        (None, "verification", "VERIFIED"),
    ]
    assert shown[1]["manifest_sha256"] is None and shown[1]["checkpoint_size"] == 698
    digest = shown[0]["manifest_sha256"]
    only = env.run("custody", "show", str(env.store), "--manifest", digest, "--json")["entries"]
    assert [e["event"] for e in only] == ["export"]
    none = env.run("custody", "show", str(env.store), "--incident", "INC-9")
    assert "no custody entries match" in none.stderr
    typo = env.run("custody", "show", str(env.store), "--incident", "INC 1", code=2)
    assert "--incident must be 1-64 letters" in typo.stderr.replace("\n", " ")


def _now() -> int:
    import time

    return time.time_ns()


def test_custody_show_survives_a_time_no_calendar_holds(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a signed i64 can say anything; the listing must show it, not crash on it
    st = Store.open(env.store)
    custodian = keys.load_signer(env.custodian)
    root = custodychain.store_known(st).roots[698]
    odd = Custody("export", -(1 << 63), _now(), "alice", 698, root, incident="INC-1")
    logentries.add_pending(st, EntryType.CUSTODY, odd.sign(custodian, st.origin)[1])
    monkeypatch.setattr(custodychain, "check_queued_custody", lambda store, body: None)
    env.run("seal", str(env.store))
    shown = env.run("custody", "show", str(env.store), "--json")["entries"]
    assert shown[0]["at"] == "1677-09-21T00:12:43.145224Z"  # the earliest an i64 holds
    assert "1677-09-21" in env.run("custody", "show", str(env.store)).stderr


def test_a_verification_of_a_damaged_bundle_is_logged_with_its_verdict(
    env: Env, tmp_path: Path
) -> None:
    first = tmp_path / "bundle"
    _package(env, first)
    (first / "VERIFY.txt").write_text("edited after packaging\n")
    result = env.log("--event", "verification", "--bundle", str(first), code=1)
    assert "logged verification" in result.stderr and ": TAMPERED" in result.stderr
    refused = env.log("--event", "hand-over", "--bundle", str(first), "--to", "x", code=2)
    assert "the bundle does not verify (TAMPERED: VERIFY.txt does not match" in refused.stderr
    for path in (first / "checkpoint").iterdir():
        path.unlink()  # no checkpoint of its own: the entry names the store's of that size
    result = env.log("--event", "verification", "--bundle", str(first), "--json", code=1)
    assert (result["entry"]["outcome"], result["entry"]["checkpoint_size"]) == ("TAMPERED", 698)
    (first / "MANIFEST.note").write_text("junk\n")
    broken = env.log("--event", "verification", "--bundle", str(first), code=4)
    assert "names no checkpoint this entry could concern" in broken.stderr
    shown = env.run("custody", "show", str(env.store), "--json")["entries"]
    assert [e["outcome"] for e in shown] == ["TAMPERED", "TAMPERED"]


def test_a_verification_of_a_damaged_store_is_logged_with_its_verdict(env: Env) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    (seg,) = Store.open(env.store).segment_dirs()
    table = pq.read_table(seg / "net.parquet")
    ports = table.column("dst_port").to_pylist()
    ports[3] = 4444
    table = table.set_column(table.schema.get_field_index("dst_port"), "dst_port",
                             pa.array(ports, pa.uint16()))  # fmt: skip
    pq.write_table(table, seg / "net.parquet")
    doc = env.log("--event", "verification", "--incident", "INC-1", "--json", code=1)
    assert (doc["entry"]["outcome"], doc["entry"]["checkpoint_size"]) == ("TAMPERED", 698)
    refused = env.log("--event", "verification", "--checkpoint", "699", code=2)
    assert "no checkpoint of size 699" in refused.stderr


def test_a_private_key_that_others_may_read_is_warned_of(env: Env, tmp_path: Path) -> None:
    # copied with `cp` from a share, or unpacked from a tarball: it still signs, but the
    # responder is told, with the path and never the key (the command as typed: the warning
    # goes through the logging that the CLI sets up)
    import subprocess
    import sys

    loose = tmp_path / "loose.key"
    shutil.copyfile(env.custodian, loose)
    loose.chmod(0o644)
    cmd = [sys.executable, "-c", "from acdkit.cli import main; main()", "custody", "log",
           str(env.store), "--custodian-key", str(loose), "--event", "verification",
           "--checkpoint", "698", "--incident", "INC-1"]  # fmt: skip
    logged = subprocess.run(cmd, capture_output=True, text=True, check=True)
    warning = f"custodian key {loose} can be read or written by others (mode 0644)"
    assert warning in logged.stderr.replace("\n", " ") and "chmod 600" in logged.stderr
    assert "PRIVATE KEY" not in logged.stderr
    loose.chmod(0o600)
    quiet = subprocess.run(cmd, capture_output=True, text=True, check=True)
    assert "can be read or written by others" not in quiet.stderr
