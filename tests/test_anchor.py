"""RFC 3161 anchoring against real time-stamp authorities on loopback (tests/tsa.py)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import re
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from acdkit import anchor, bundle, ingest, keys, logentries, policy, seal, verify
from acdkit import tsa as tsa_mod
from acdkit.anchorbundle import ConsistencyProof
from acdkit.anchorcheck import AnchorTrust
from acdkit.cli import app
from acdkit.encoding import EntryType, TlvType, entry, tlv
from acdkit.errors import ExitCode, MalformedError
from acdkit.note import SignedNote
from acdkit.store import Store
from tsa import LocalCa, LocalTsa

OTHER_POLICY = "1.3.6.1.4.1.99999.1.7"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("pki")


@pytest.fixture(scope="module")
def ca_a(pki: Path) -> LocalCa:
    return LocalCa.create(pki, "ca-a")


@pytest.fixture(scope="module")
def ca_b(pki: Path) -> LocalCa:
    return LocalCa.create(pki, "ca-b")


def _serve(pki: Path, ca: LocalCa, name: str, **kw: object) -> Iterator[LocalTsa]:
    server = LocalTsa(pki / "tsas", ca, name, **kw)  # type: ignore[arg-type]
    yield server
    server.close()


@pytest.fixture(scope="module")
def tsa_a(pki: Path, ca_a: LocalCa) -> Iterator[LocalTsa]:
    yield from _serve(pki, ca_a, "tsa-a")


@pytest.fixture(scope="module")
def tsa_b(pki: Path, ca_b: LocalCa) -> Iterator[LocalTsa]:
    yield from _serve(pki, ca_b, "tsa-b")


@pytest.fixture(scope="module")
def flaky(pki: Path, ca_a: LocalCa) -> Iterator[LocalTsa]:
    yield from _serve(pki, ca_a, "flaky")


@pytest.fixture(scope="module")
def eku_noncritical(pki: Path, ca_a: LocalCa) -> Iterator[LocalTsa]:
    yield from _serve(pki, ca_a, "eku-noncritical", eku="noncritical")


@pytest.fixture(scope="module")
def eku_missing(pki: Path, ca_a: LocalCa) -> Iterator[LocalTsa]:
    yield from _serve(pki, ca_a, "eku-missing", eku="none")


def _trust(ca: LocalCa, name: str, policy: str | None = None) -> tsa_mod.TsaTrust:
    return tsa_mod.TsaTrust(name, tsa_mod.load_roots(ca.pem), policy)


def _anchor(
    store: Store, *servers: tuple[str, LocalTsa | str, tsa_mod.TsaTrust]
) -> anchor.AnchorReport:
    endpoints = [
        tsa_mod.TsaEndpoint(name, s if isinstance(s, str) else s.url) for name, s, _t in servers
    ]
    return anchor.anchor_store(store, endpoints, {t.name: t for _n, _s, t in servers}, timeout=5)


def _both(ca_a: LocalCa, ca_b: LocalCa) -> AnchorTrust:
    return AnchorTrust({"tsa-a": _trust(ca_a, "tsa-a"), "tsa-b": _trust(ca_b, "tsa-b")})


def _pending_anchors(store: Store) -> list[tuple[Path, anchor.AnchorRecord]]:
    out = []
    for name, data in logentries.pending_entries(store):
        parsed = logentries.parse_entry(data)
        if parsed.kind == EntryType.ANCHOR:
            out.append((store.pending / name, anchor.AnchorRecord.from_body(parsed.body)))
    return out


def _queue(store: Store, rec: anchor.AnchorRecord) -> None:
    """Plant an ANCHOR entry and its token copy, as a collector that skipped checks would."""
    logentries.add_pending(store, EntryType.ANCHOR, rec.body())
    store.anchors.mkdir(exist_ok=True)
    (store.anchors / anchor.tsr_name(rec.size, rec.tsa)).write_bytes(rec.reply)


def _checkpoint(store: Store, size: int) -> bytes:
    return store.checkpoint_path(size).read_bytes()


def _record_for(store: Store, size: int, name: str, reply: bytes) -> anchor.AnchorRecord:
    note = _checkpoint(store, size)
    info = tsa_mod.decode(reply).tst_info
    now = time.time_ns()
    imprint = anchor.anchor_imprint(SignedNote.parse(note).text)
    return anchor.AnchorRecord(
        name, size, hashlib.sha256(note).digest(), imprint, reply,
        tsa_mod._ns(info.gen_time), info.policy.dotted_string, 10**9, now, now,
    )  # fmt: skip


def _fetch(server: LocalTsa, store: Store, size: int) -> bytes:
    """A token for a checkpoint straight from a TSA, nothing checked."""
    text = SignedNote.parse(_checkpoint(store, size)).text
    query = tsa_mod.new_request(anchor.anchor_imprint_data(text))
    return tsa_mod.http_post(server.url, query.as_bytes(), 5)


def _verify(store: Store, trust: AnchorTrust | None) -> verify.VerifyReport:
    return verify.verify_store(store, anchors=trust, require_outside=False)


# -- good anchors ------------------------------------------------------------------------------


def test_two_tsas_anchor_a_checkpoint_and_it_verifies(
    store: Store,
    signer: keys.Signer,
    tsa_a: LocalTsa,
    tsa_b: LocalTsa,
    ca_a: LocalCa,
    ca_b: LocalCa,
) -> None:
    seal.seal(store, signer, heartbeat=True)
    report = _anchor(
        store, ("tsa-a", tsa_a, _trust(ca_a, "tsa-a")), ("tsa-b", tsa_b, _trust(ca_b, "tsa-b"))
    )
    assert report.verdict == ExitCode.OK and report.warnings == []
    assert [(o.tsa, o.size, o.status) for o in report.outcomes] == [
        ("tsa-a", 1, "anchored"),
        ("tsa-b", 1, "anchored"),
    ]
    # the local clock and the TSAs' are the same clock: the bound must contain 0
    for o in report.outcomes:
        assert o.offset_ns is not None and o.offset_ns[0] <= 0 <= o.offset_ns[1]
        # twice the 1 s accuracy, 1 s of genTime resolution and the round trip
        assert 3 * 10**9 <= o.offset_ns[1] - o.offset_ns[0] < 3.5 * 10**9
    text = SignedNote.parse(_checkpoint(store, 1)).text
    records = dict((r.tsa, r) for _p, r in _pending_anchors(store))
    rec = records["tsa-a"]
    assert rec.imprint == hashlib.sha256(b"acdkit/1/anchor\n" + text.encode()).digest()
    assert rec.checkpoint_sha256 == hashlib.sha256(_checkpoint(store, 1)).digest()
    assert rec.sent_ns <= rec.received_ns and rec.accuracy_ns == 10**9
    assert rec.policy_oid == "1.3.6.1.4.1.99999.1.1"
    assert (store.anchors / "00000000000000000001.tsa-a.tsr").read_bytes() == rec.reply
    # before the next seal the tokens are already checked, as copies
    trust = _both(ca_a, ca_b)
    pre = _verify(store, trust)
    assert pre.verdict == ExitCode.OK, pre.to_json()
    assert (
        "anchored by tsa-a at " in pre.coverage and " for checkpoint 1 (token kept" in pre.coverage
    )
    # the next seal logs both entries; the checkpoint after it is not anchored yet
    assert seal.seal(store, signer).size == 1 + 2 + 1
    post = _verify(store, trust)
    assert post.verdict == ExitCode.OK, post.to_json()
    assert "checkpoints after 1 are not anchored" in post.coverage
    ninth = next(c.detail for c in post.checks if c.id == "9")
    assert ninth.startswith("2 anchors verify (2 sealed in the log")
    # running again anchors the new checkpoint only
    again = _anchor(store, ("tsa-a", tsa_a, _trust(ca_a, "tsa-a")))
    assert [(o.size, o.status) for o in again.outcomes] == [(4, "anchored")]
    assert again.warnings and "only one TSA" in again.warnings[0]
    assert [o.status for o in _anchor(store, ("tsa-a", tsa_a, _trust(ca_a, "tsa-a"))).outcomes] == [
        "already"
    ]


def test_anchors_without_pinned_roots_are_not_verified(
    store: Store, signer: keys.Signer, tsa_a: LocalTsa, ca_a: LocalCa, ca_b: LocalCa
) -> None:
    seal.seal(store, signer, heartbeat=True)
    _anchor(store, ("tsa-a", tsa_a, _trust(ca_a, "tsa-a")))
    seal.seal(store, signer)
    report = _verify(store, None)
    assert report.verdict == ExitCode.INCOMPLETE
    assert "not checked: no pinned TSA roots" in report.failure["message"]  # type: ignore[index]
    other = _verify(store, AnchorTrust({"tsa-b": _trust(ca_b, "tsa-b")}))
    assert other.verdict == ExitCode.INCOMPLETE and "no roots pinned for tsa-a" in str(
        other.failure
    )
    relaxed = verify.verify_store(store, allow_incomplete=True, require_outside=False)
    assert relaxed.verdict == ExitCode.OK and any("not checked" in w for w in relaxed.warnings)
    # a trust policy is the whole list: a TSA outside it is no anchor at all
    strict = AnchorTrust({"tsa-b": _trust(ca_b, "tsa-b")}, authoritative=True)
    assert _verify(store, strict).verdict == ExitCode.TAMPERED


# -- refused on receipt, tampered at verify ----------------------------------------------------


def test_token_from_a_tsa_whose_root_is_not_pinned_is_tampered(
    store: Store, signer: keys.Signer, tsa_b: LocalTsa, ca_a: LocalCa, ca_b: LocalCa
) -> None:
    seal.seal(store, signer, heartbeat=True)
    refused = _anchor(store, ("tsa-a", tsa_b, _trust(ca_a, "tsa-a")))
    assert refused.verdict == ExitCode.INCOMPLETE
    assert (
        refused.outcomes[0].kind == "refused"
        and not (store.anchors / anchor.tsr_name(1, "tsa-a")).exists()
    )
    # a collector told to trust CA-B for "tsa-a": the verifier pins CA-A for that name
    assert _anchor(store, ("tsa-a", tsa_b, _trust(ca_b, "tsa-a"))).verdict == ExitCode.OK
    seal.seal(store, signer)
    report = _verify(store, AnchorTrust({"tsa-a": _trust(ca_a, "tsa-a")}))
    assert report.verdict == ExitCode.TAMPERED
    assert "token of TSA tsa-a does not verify" in report.failure["message"]  # type: ignore[index]


@pytest.mark.parametrize("forged", ["token", "imprint"])
def test_anchor_of_another_checkpoint_is_tampered(
    store: Store, signer: keys.Signer, tsa_a: LocalTsa, ca_a: LocalCa, forged: str
) -> None:
    seal.seal(store, signer, heartbeat=True)
    _anchor(store, ("tsa-a", tsa_a, _trust(ca_a, "tsa-a")))
    ((_path, rec),) = _pending_anchors(store)
    seal.seal(store, signer)
    # claim that the token of checkpoint 1 anchors checkpoint 3
    good = _record_for(store, 3, "tsa-b", rec.reply)
    claim = good if forged == "token" else dataclasses.replace(good, imprint=rec.imprint)
    _queue(store, claim)
    seal.seal(store, signer)
    report = _verify(
        store, AnchorTrust({"tsa-a": _trust(ca_a, "tsa-a"), "tsa-b": _trust(ca_a, "tsa-b")})
    )
    assert report.verdict == ExitCode.TAMPERED
    expected = "Mismatch between messages" if forged == "token" else "not the anchor imprint"
    assert expected in report.failure["message"]  # type: ignore[index]


@pytest.mark.parametrize(
    ("server", "reason"),
    [("eku_noncritical", "is not critical"), ("eku_missing", "has no extended key usage")],
)
def test_tsa_certificate_without_critical_eku_is_refused_and_tampered(
    store: Store, signer: keys.Signer, ca_a: LocalCa, server: str, reason: str,
    request: pytest.FixtureRequest,
) -> None:  # fmt: skip
    bad: LocalTsa = request.getfixturevalue(server)
    seal.seal(store, signer, heartbeat=True)
    report = _anchor(store, ("tsa-x", bad, _trust(ca_a, "tsa-x")))
    assert report.verdict == ExitCode.INCOMPLETE
    (outcome,) = report.outcomes
    assert (outcome.status, outcome.kind) == ("queued", "refused") and reason in str(outcome.reason)
    assert (store.anchors / "00000000000000000001.tsa-x.wanted").is_file()
    assert not _pending_anchors(store)
    # the same kind of token planted in the log is caught by verify
    _queue(store, _record_for(store, 1, "tsa-x", _fetch(bad, store, 1)))
    seal.seal(store, signer)
    found = _verify(store, AnchorTrust({"tsa-x": _trust(ca_a, "tsa-x")}))
    assert found.verdict == ExitCode.TAMPERED and found.failure is not None
    assert reason in found.failure["message"]


def test_policy_oid_mismatch_is_refused_and_tampered(
    store: Store, signer: keys.Signer, tsa_a: LocalTsa, ca_a: LocalCa
) -> None:
    seal.seal(store, signer, heartbeat=True)
    report = _anchor(store, ("tsa-a", tsa_a, _trust(ca_a, "tsa-a", OTHER_POLICY)))
    assert report.verdict == ExitCode.INCOMPLETE
    assert "Policy ID mismatch" in str(report.outcomes[0].reason)
    assert _anchor(store, ("tsa-a", tsa_a, _trust(ca_a, "tsa-a"))).verdict == ExitCode.OK
    seal.seal(store, signer)
    pinned = AnchorTrust({"tsa-a": _trust(ca_a, "tsa-a", OTHER_POLICY)})
    assert _verify(store, pinned).verdict == ExitCode.TAMPERED
    right = AnchorTrust({"tsa-a": _trust(ca_a, "tsa-a", "1.3.6.1.4.1.99999.1.1")})
    assert _verify(store, right).verdict == ExitCode.OK


def test_flipped_bit_in_the_token_signature_is_tampered(
    store: Store, signer: keys.Signer, tsa_a: LocalTsa, ca_a: LocalCa
) -> None:
    seal.seal(store, signer, heartbeat=True)
    _anchor(store, ("tsa-a", tsa_a, _trust(ca_a, "tsa-a")))
    ((path, rec),) = _pending_anchors(store)
    # the SignerInfo comes last and its signature last in it: the final bytes are the
    # ECDSA signature's s value, so the token still parses
    raw = bytearray(rec.reply)
    raw[-2] ^= 0x10
    broken = dataclasses.replace(rec, reply=bytes(raw))
    path.write_bytes(entry(EntryType.ANCHOR, broken.body()))
    (store.anchors / anchor.tsr_name(1, "tsa-a")).write_bytes(broken.reply)
    seal.seal(store, signer)
    report = _verify(store, AnchorTrust({"tsa-a": _trust(ca_a, "tsa-a")}))
    assert report.verdict == ExitCode.TAMPERED
    assert "signature failure" in report.failure["message"]  # type: ignore[index]


def test_anchor_entry_edited_in_entries_bin_is_tampered(
    store: Store, signer: keys.Signer, tsa_a: LocalTsa, ca_a: LocalCa
) -> None:
    seal.seal(store, signer, heartbeat=True)
    _anchor(store, ("tsa-a", tsa_a, _trust(ca_a, "tsa-a")))
    seal.seal(store, signer)
    seg = store.segment_dirs()[-1]
    raw = bytearray((seg / "entries.bin").read_bytes())
    raw[-1] ^= 1  # the last byte of field 10, the local time after receipt
    (seg / "entries.bin").write_bytes(bytes(raw))
    report = _verify(store, AnchorTrust({"tsa-a": _trust(ca_a, "tsa-a")}))
    assert report.verdict == ExitCode.TAMPERED and report.failure is not None
    assert report.failure["check"] == "4"


def test_token_copy_that_differs_from_its_entry_is_tampered(
    store: Store, signer: keys.Signer, tsa_a: LocalTsa, ca_a: LocalCa
) -> None:
    seal.seal(store, signer, heartbeat=True)
    _anchor(store, ("tsa-a", tsa_a, _trust(ca_a, "tsa-a")))
    seal.seal(store, signer)
    copy = store.anchors / anchor.tsr_name(1, "tsa-a")
    copy.write_bytes(_fetch(tsa_a, store, 1))  # a genuine token, but not the logged one
    report = _verify(store, AnchorTrust({"tsa-a": _trust(ca_a, "tsa-a")}))
    assert report.verdict == ExitCode.TAMPERED and report.failure is not None
    assert "differs" in report.failure["message"]
    copy.unlink()
    gone = _verify(store, AnchorTrust({"tsa-a": _trust(ca_a, "tsa-a")}))
    assert gone.verdict == ExitCode.OK and any("copy" in w for w in gone.warnings)


# -- network failures: INCOMPLETE, queued, retried --------------------------------------------


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_unreachable_tsa_is_queued_then_anchored_on_retry(
    store: Store, key_path: Path, signer: keys.Signer, tsa_a: LocalTsa, ca_a: LocalCa,
    runner: CliRunner,
) -> None:  # fmt: skip
    seal.seal(store, signer, heartbeat=True)
    down = f"http://127.0.0.1:{_closed_port()}/tsr"
    args = ["anchor", str(store.root), "--tsa-root", f"tsa-a={ca_a.pem}", "--json"]
    result = runner.invoke(app, [*args, "--tsa", f"tsa-a={down}"])
    assert result.exit_code == 3, result.output
    doc = json.loads(result.stdout)
    assert doc["verdict"] == "INCOMPLETE" and doc["outcomes"][0]["kind"] == "unreachable"
    wanted = json.loads((store.anchors / "00000000000000000001.tsa-a.wanted").read_text())
    assert (wanted["checkpoint_size"], wanted["attempts"]) == (1, 1)
    assert (
        verify.verify_store(store, require_outside=False).verdict == ExitCode.OK
    )  # a network failure is no damage
    seal.seal(store, signer, heartbeat=True)  # checkpoint 2 meanwhile
    result = runner.invoke(app, [*args, "--tsa", f"tsa-a={tsa_a.url}"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert [(o["checkpoint_size"], o["status"]) for o in doc["outcomes"]] == [
        (1, "anchored"),
        (2, "anchored"),
    ]
    assert not list(store.anchors.glob("*.wanted"))
    seal.seal(store, signer)
    report = _verify(store, AnchorTrust({"tsa-a": _trust(ca_a, "tsa-a")}))
    assert report.verdict == ExitCode.OK, report.to_json()
    assert len(report.facts["anchors"]) == 2


@pytest.mark.parametrize(
    ("mode", "kind", "reason"),
    [("http500", "http", "HTTP 500"), ("garbage", "bad-reply", "not an RFC 3161 time-stamp reply")],
)
def test_tsa_error_replies_are_incomplete_with_their_reason(
    store: Store, signer: keys.Signer, flaky: LocalTsa, ca_a: LocalCa, mode: str, kind: str,
    reason: str,
) -> None:  # fmt: skip
    seal.seal(store, signer, heartbeat=True)
    flaky.mode = mode
    try:
        report = _anchor(store, ("flaky", flaky, _trust(ca_a, "flaky")))
    finally:
        flaky.mode = "ok"
    assert report.verdict == ExitCode.INCOMPLETE
    (o,) = report.outcomes
    assert (o.status, o.kind) == ("queued", kind) and reason in str(o.reason)
    assert _anchor(store, ("flaky", flaky, _trust(ca_a, "flaky"))).verdict == ExitCode.OK


# -- time ---------------------------------------------------------------------------------------


def _conn_log(path: Path, when: float) -> Path:
    line = {
        "ts": when, "uid": "CAnchorTest01", "id.orig_h": "10.0.0.1", "id.orig_p": 40000,
        "id.resp_h": "10.0.0.2", "id.resp_p": 443, "proto": "tcp", "service": "ssl",
        "duration": 0.5, "orig_bytes": 10, "resp_bytes": 20, "conn_state": "SF",
        "orig_pkts": 1, "resp_pkts": 1,
    }  # fmt: skip
    path.write_text(json.dumps(line) + "\n")
    return path


def test_event_time_after_gen_time_is_policy(
    store: Store, signer: keys.Signer, tsa_a: LocalTsa, ca_a: LocalCa, tmp_path: Path
) -> None:
    ingest.ingest(store, [_conn_log(tmp_path / "conn.log", time.time() + 120)])
    seal.seal(store, signer)
    _anchor(store, ("tsa-a", tsa_a, _trust(ca_a, "tsa-a")))
    report = _verify(store, AnchorTrust({"tsa-a": _trust(ca_a, "tsa-a")}))
    assert report.verdict == ExitCode.POLICY
    assert "causality violated" in report.failure["message"]  # type: ignore[index]
    lenient = AnchorTrust({"tsa-a": _trust(ca_a, "tsa-a")}, tolerance_ns=600 * 10**9)
    within = _verify(store, lenient)
    assert within.verdict == ExitCode.OK and any("within tolerance" in w for w in within.warnings)


def test_checkpoint_time_stamped_before_it_was_sealed_is_policy(
    store: Store, signer: keys.Signer, tsa_a: LocalTsa, ca_a: LocalCa,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    ahead = time.time_ns() + 3600 * 10**9
    monkeypatch.setattr(seal.time, "time_ns", lambda: ahead)  # the sealer's clock runs ahead
    seal.seal(store, signer, heartbeat=True)
    monkeypatch.undo()
    _anchor(store, ("tsa-a", tsa_a, _trust(ca_a, "tsa-a")))
    report = _verify(store, AnchorTrust({"tsa-a": _trust(ca_a, "tsa-a")}))
    assert report.verdict == ExitCode.POLICY
    assert report.failure is not None
    assert "before the collector's clock says it was sealed" in report.failure["message"]


def test_local_clock_drift_is_measured_against_the_tsa(
    store: Store, signer: keys.Signer, tsa_a: LocalTsa, ca_a: LocalCa
) -> None:
    seal.seal(store, signer, heartbeat=True)
    slow = lambda: time.time_ns() - 30 * 10**9  # noqa: E731 (a collector 30 s behind)
    endpoint = tsa_mod.TsaEndpoint("tsa-a", tsa_a.url)
    report = anchor.anchor_store(store, [endpoint], {"tsa-a": _trust(ca_a, "tsa-a")}, clock=slow)
    (o,) = report.outcomes
    assert report.verdict == ExitCode.POLICY and o.status == "anchored" and not o.drift_ok
    # the bound holds the true 30 s (genTime is whole seconds here; a slow round trip under
    # load only widens it), and lies far beyond the 10 s tolerance
    assert o.offset_ns is not None and o.offset_ns[0] <= o.offset_ns[1]
    assert o.offset_ns[0] <= 30 * 10**9 + 10**8 and o.offset_ns[1] >= 29 * 10**9
    assert o.offset_ns[0] > 15 * 10**9 and o.offset_ns[1] < 45 * 10**9
    seal.seal(store, signer)
    found = _verify(store, AnchorTrust({"tsa-a": _trust(ca_a, "tsa-a")}))
    assert found.verdict == ExitCode.OK and any("clock was off" in w for w in found.warnings)


def test_expired_tsa_certificate_keeps_its_old_tokens_valid(
    store: Store, signer: keys.Signer, pki: Path, ca_a: LocalCa
) -> None:
    short = LocalTsa(pki / "short", ca_a, "short", lifetime=dt.timedelta(seconds=3))
    try:
        seal.seal(store, signer, heartbeat=True)
        assert _anchor(store, ("short", short, _trust(ca_a, "short"))).verdict == ExitCode.OK
        expiry = short.cert.not_valid_after_utc.timestamp()
        time.sleep(max(0.0, expiry - time.time()) + 1.2)
        seal.seal(store, signer)
        report = _verify(store, AnchorTrust({"short": _trust(ca_a, "short")}))
        assert report.verdict == ExitCode.OK, report.to_json()
        # the same TSA still signs, but a token made after expiry is refused
        late = _anchor(store, ("short", short, _trust(ca_a, "short")))
        assert late.verdict == ExitCode.INCOMPLETE and "expired" in str(late.outcomes[0].reason)
    finally:
        short.close()


# -- bundles ------------------------------------------------------------------------------------


def test_bundle_carries_and_checks_anchors(
    store: Store, signer: keys.Signer, data: Path, tsa_a: LocalTsa, tsa_b: LocalTsa,
    ca_a: LocalCa, ca_b: LocalCa, tmp_path: Path,
) -> None:  # fmt: skip
    ingest.ingest(store, [data / "zeek-tsv/zat/dns.log"])
    seal.seal(store, signer)  # checkpoint 55
    both = (("tsa-a", tsa_a, _trust(ca_a, "tsa-a")), ("tsa-b", tsa_b, _trust(ca_b, "tsa-b")))
    _anchor(store, *both)
    seal.seal(store, signer)  # 58: the two ANCHOR leaves of 55 and a SEAL
    _anchor(store, *both)  # tokens of 58, entries not sealed
    window = bundle.Window(
        bundle.parse_time("2013-09-15T00:00:00Z"), bundle.parse_time("2013-09-16T00:00:00Z")
    )
    out = tmp_path / "bundle"
    bundle.package(store, signer, "INC-9", window, out)
    names = sorted(p.name for p in (out / "anchors").iterdir())
    assert names == [
        "00000000000000000055.tlog-proof", "00000000000000000055.tsa-a.tsr",
        "00000000000000000055.tsa-b.tsr", "00000000000000000056.tlog-proof",
        "00000000000000000058.tsa-a.tsr", "00000000000000000058.tsa-b.tsr",
    ]  # fmt: skip
    assert (out / "checkpoint/00000000000000000055.consistency").is_file()
    report = verify.verify_path(
        out, store.verifier(), anchors=_both(ca_a, ca_b), require_outside=False
    )
    assert report.verdict == ExitCode.OK, report.to_json()
    assert "anchored by tsa-a at " in report.coverage and "for checkpoint 58" in report.coverage
    assert [c.detail for c in report.checks if c.id == "10"] == [
        "4 anchors verify; times consistent"
    ]
    assert (
        verify.verify_path(out, store.verifier(), require_outside=False).verdict
        == ExitCode.INCOMPLETE
    )
    wrong = AnchorTrust({"tsa-a": _trust(ca_b, "tsa-a"), "tsa-b": _trust(ca_b, "tsa-b")})
    assert (
        verify.verify_path(out, store.verifier(), anchors=wrong, require_outside=False).verdict
        == ExitCode.TAMPERED
    )


# -- the command line -------------------------------------------------------------------------


def test_cli_anchor_and_verify(
    store: Store, key_path: Path, tsa_a: LocalTsa, tsa_b: LocalTsa, ca_a: LocalCa, ca_b: LocalCa,
    runner: CliRunner, monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    monkeypatch.setenv("ACDKIT_TSA", f"tsa-a={tsa_a.url} tsa-b={tsa_b.url}")
    roots = ["--tsa-root", f"tsa-a={ca_a.pem}", "--tsa-root", f"tsa-b={ca_b.pem}"]
    result = runner.invoke(
        app, ["seal", str(store.root), "--key", str(key_path), "--heartbeat", "--anchor", *roots]
    )
    assert result.exit_code == 0, result.output
    assert "anchored" in result.stderr and "next seal" in result.stderr
    result = runner.invoke(app, ["verify", str(store.root), *roots, "--json"])
    assert result.exit_code == 0, result.output
    assert "anchored by tsa-a" in json.loads(result.stdout)["coverage"]
    assert runner.invoke(app, ["verify", str(store.root)]).exit_code == 3


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "no time-stamp authority is configured"),
        (["--tsa", "tsa-a=ftp://127.0.0.1/x"], "is not an http:// or https:// URL"),
        (["--tsa", "tsa-a=http://127.0.0.1:9/", "--tsa-root", "tsa-z=ROOT"], "no --tsa configures"),
        (["--tsa", "tsa-a=http://127.0.0.1:9/", "--tsa-root", "tsa-a=MISSING"], "does not exist"),
        (
            ["--tsa", "tsa-a=http://127.0.0.1:9/", "--tsa-root", "tsa-a=NOTPEM"],
            "no PEM certificate",
        ),
        (["--tsa", "tsa-a=http://127.0.0.1:9/"], "no root certificate is pinned for TSA tsa-a"),
        (["--tsa", "Bad.Name=http://127.0.0.1:9/"], "must be 1-64 lower-case"),
    ],
)
def test_cli_anchor_usage_errors(
    store: Store, ca_a: LocalCa, runner: CliRunner, tmp_path: Path, args: list[str], message: str
) -> None:
    (tmp_path / "not.pem").write_text("hello\n")
    subst = {
        "ROOT": str(ca_a.pem),
        "MISSING": str(tmp_path / "none.pem"),
        "NOTPEM": str(tmp_path / "not.pem"),
    }
    args = [_subst(a, subst) for a in args]
    result = runner.invoke(app, ["anchor", str(store.root), *args])
    assert result.exit_code == 2, result.output
    assert message in result.stderr


def _subst(arg: str, table: dict[str, str]) -> str:
    name, eq, value = arg.partition("=")
    return f"{name}={table.get(value, value)}" if eq else arg


# -- our own logic, without a TSA ---------------------------------------------------------------


def test_anchor_imprint_is_the_one_in_the_spec() -> None:
    text = "acdkit/example/00000000-0000-4000-8000-000000000000\n3\n"
    text += "EcFdCcRDQaD4uN27NeYbpkUfpgrgMxf3ntaF0dGgxGw=\n"  # the checkpoint of §11
    value = anchor.anchor_imprint(text).hex()
    assert value == "896092555b19261e20a3575f960d52d0071f46e8b9668cb318508e9b2771d4e4"
    spec = (Path(__file__).parents[1] / "docs/evidence-format.md").read_text()
    assert f"`{value}`" in spec


def test_anchor_body_round_trips_and_is_strict() -> None:
    rec = anchor.AnchorRecord(
        "tsa-a", 3, b"\x01" * 32, b"\x02" * 32, b"\x30\x00", -5, "1.2.3", None, 1, 2
    )
    assert anchor.AnchorRecord.from_body(rec.body()) == rec
    with_acc = dataclasses.replace(rec, accuracy_ns=10**9)
    assert anchor.AnchorRecord.from_body(with_acc.body()) == with_acc
    body = rec.body()
    bad = {
        "unknown field 11": body + tlv(11, TlvType.U64, bytes(8)),
        "lacks field 10": body[: body.rindex(tlv(10, TlvType.I64, (2).to_bytes(8, "big")))],
        "not 32 bytes": dataclasses.replace(rec, checkpoint_sha256=b"\x01" * 31).body(),
        "not a valid TSA name": dataclasses.replace(rec, tsa="A.B").body(),
        "empty or larger than 64 KiB": dataclasses.replace(rec, reply=b"").body(),
    }
    for message, data in bad.items():
        with pytest.raises(MalformedError, match=message):
            anchor.AnchorRecord.from_body(data)


def test_consistency_proof_file_is_strict() -> None:
    proof = ConsistencyProof(3, 7, (b"\x01" * 32, b"\x02" * 32))
    assert ConsistencyProof.parse(proof.encode()) == proof
    for broken in (
        proof.encode()[:-1],
        proof.encode().replace(b"old 3", b"old 03"),
        proof.encode().replace(b"acdkit-consistency/1", b"acdkit-consistency/2"),
        proof.encode() + b"AQ==\n",
    ):
        with pytest.raises(MalformedError):
            ConsistencyProof.parse(broken)


def test_a_crash_before_the_token_copy_is_repaired(
    store: Store, signer: keys.Signer, tsa_a: LocalTsa, ca_a: LocalCa
) -> None:
    seal.seal(store, signer, heartbeat=True)
    _anchor(store, ("tsa-a", tsa_a, _trust(ca_a, "tsa-a")))
    copy = store.anchors / anchor.tsr_name(1, "tsa-a")
    kept = copy.read_bytes()
    copy.unlink()  # the entry was queued, the copy not yet written
    again = _anchor(store, ("tsa-a", tsa_a, _trust(ca_a, "tsa-a")))
    assert [o.status for o in again.outcomes] == ["already"] and copy.read_bytes() == kept
    assert len(_pending_anchors(store)) == 1


# -- TSA trust from the root-signed trust policy ------------------------------------------------


def test_pinned_trust_policy_supplies_the_tsa_roots(
    store: Store, signer: keys.Signer, tsa_a: LocalTsa, tsa_b: LocalTsa, ca_a: LocalCa,
    ca_b: LocalCa, tmp_path: Path,
) -> None:  # fmt: skip
    seal.seal(store, signer, heartbeat=True)
    both = (("tsa-a", tsa_a, _trust(ca_a, "tsa-a")), ("tsa-b", tsa_b, _trust(ca_b, "tsa-b")))
    _anchor(store, *both)
    seal.seal(store, signer)
    root = keys.generate("example.org/root")
    lines = [policy.TsaRoot("tsa-a", None, _trust(ca_a, "tsa-a").roots[0])]
    issued = time.time_ns() // 10**9 * 10**9
    sealer = policy.SealerWindow(signer.verifier)
    policy.write_policy(store, policy.Policy(store.origin, 1, issued, [sealer], tsas=lines), root)
    # tsa-b is outside the policy: with its root pinned, that is no anchor at all
    report = verify.verify_store(store, root=root.verifier, require_outside=False)
    assert report.verdict == ExitCode.TAMPERED
    assert report.failure is not None
    assert "TSA tsa-b is not in the trust policy" in report.failure["message"]
    lines.append(policy.TsaRoot("tsa-b", None, _trust(ca_b, "tsa-b").roots[0]))
    policy.write_policy(store, policy.Policy(store.origin, 2, issued, [sealer], tsas=lines), root)
    report = verify.verify_store(store, root=root.verifier, require_outside=False)
    assert report.verdict == ExitCode.OK, report.to_json()
    assert "anchored by tsa-a at " in report.coverage
    # the store's own, unpinned policy is not a source of trust
    unpinned = verify.verify_store(store, require_outside=False)
    assert unpinned.verdict == ExitCode.INCOMPLETE
    assert any("its root is not pinned" in w for w in unpinned.warnings)
    # a bundle carries the policy: under the pinned root its TSAs are the trusted ones
    window = bundle.Window(
        bundle.parse_time("2013-09-15T00:00:00Z"), bundle.parse_time("2013-09-16T00:00:00Z")
    )
    bundle.package(store, signer, "INC-P", window, tmp_path / "bundle")
    checked = verify.verify_path(
        tmp_path / "bundle", store.verifier(), root=root.verifier, require_outside=False
    )
    assert checked.verdict == ExitCode.OK, checked.to_json()
    assert "anchored by tsa-a at " in checked.coverage


def test_key_windows_and_anchor_cadence_by_anchored_time(
    store: Store, signer: keys.Signer, tsa_a: LocalTsa, ca_a: LocalCa
) -> None:
    seal.seal(store, signer, heartbeat=True)
    _anchor(store, ("tsa-a", tsa_a, _trust(ca_a, "tsa-a")))
    seal.seal(store, signer)  # seals the ANCHOR entry; this checkpoint is not anchored
    root = keys.generate("example.org/root")
    issued = time.time_ns() // 10**9 * 10**9
    roots = [policy.TsaRoot("tsa-a", None, _trust(ca_a, "tsa-a").roots[0])]
    window = policy.SealerWindow(signer.verifier, None, issued + 3600 * 10**9)

    def sign(serial: int, interval: int) -> None:
        pol = policy.Policy(
            store.origin, serial, issued, [window], tsas=roots, anchor_interval_s=interval,
            grace_s=0,
        )  # fmt: skip
        policy.write_policy(store, pol, root)

    sign(1, 3600)
    report = verify.verify_store(store, root=root.verifier, require_outside=False)
    assert report.verdict == ExitCode.OK, report.to_json()
    detail = [c.detail for c in report.checks if c.id == "7"][-1]
    assert detail.startswith("1 of 2 segments signed by keys whose window ends are proven")
    time.sleep(2.2)
    sign(2, 1)
    report = verify.verify_store(store, root=root.verifier, require_outside=False)
    assert report.verdict == ExitCode.POLICY
    # whole seconds: the verifier's clock is read in seconds, so 2.2 s may print as 1 or 2
    assert re.search(r"not anchored for [12]s", report.failure["message"])  # type: ignore[index]


def test_anchored_time_findings_unit() -> None:
    # our own arithmetic, on recorded values: a key used before its window opened, as only
    # an anchor can prove, and an anchor that came too late
    key = keys.generate("acdkit/x/y").verifier
    s = 10**9
    pol = policy.Policy("acdkit/x/y", 1, 0, [policy.SealerWindow(key, 1000 * s, 2000 * s)])
    pol.grace_s, pol.anchor_interval_s = 10, 100
    segs = [("a", 5, 1500 * s, key), ("b", 9, 1600 * s, key)]
    found = policy.anchored_time_findings(pol, segs, [(5, 900 * s), (9, 1800 * s)], 1900 * s)
    assert len(found.tampered) == 1 and found.tampered[0].startswith("segment a:")
    assert (found.proven, found.bounded) == (2, 2)
    assert found.policy == [
        "segment b: checkpoint 9 anchored only after 200s; the trust policy requires an anchor "
        "within 100s"
    ]
    # the anchor of a later checkpoint bounds every earlier one too
    late = policy.anchored_time_findings(pol, segs, [(9, 2500 * s)], 2600 * s)
    assert (late.proven, late.bounded) == (0, 2) and not late.tampered
