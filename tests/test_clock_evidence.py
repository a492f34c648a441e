"""CLOCK entries as evidence: strict bodies, recomputed conclusions, sealing, verification,
the clock state around a window, and CLOCK leaves in bundles checked by both verifiers.

The measurements are the real samples of tests/data/ntp/matrix.json (see
tests/test_clocksel.py), moved in time to lie around the zat logs of 2013-09-15: moving
every timestamp of a run by one amount leaves its offsets and delays as they were.
"""

from __future__ import annotations

import base64
import importlib.util
import json
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from types import ModuleType

import pytest
from typer.testing import CliRunner

from acdkit import bundle, ingest, keys, logentries, seal, verify
from acdkit.cli import app
from acdkit.clockentry import ClockRecord
from acdkit.clocksel import Sample, ServerSamples, select
from acdkit.clockstate import ClockPoint, window_state
from acdkit.encoding import EntryType, TlvType, entry, parse_tlv, tlv
from acdkit.errors import MalformedError, TamperedError
from acdkit.store import Store, init_store
from test_clocksel import recorded
from test_independent_verifier import Origin, both, forge, resign

REPO = Path(__file__).resolve().parents[1]
DATA = Path(__file__).parent / "data"
VECTOR = json.loads((REPO / "docs/evidence-vectors.json").read_text())["clock"]
NS = 1_000_000_000
DAY = 86_400 * NS
WINDOW_START = 1_379_203_200 * NS  # 2013-09-15T00:00:00Z
WINDOW = bundle.Window(
    bundle.parse_time("2013-09-15T00:00:00Z"), bundle.parse_time("2013-09-16T00:00:00Z")
)


def tool_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "acdkit_verify_clock", REPO / "src/acdkit/_data/acdkit_verify.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


TOOL = tool_module()


def moved(server: ServerSamples, delta: int) -> ServerSamples:
    def one(s: Sample) -> Sample:
        r = s.reply
        reply = (
            None
            if r is None
            else replace(
                r, server_rx_ns=r.server_rx_ns + delta, server_tx_ns=r.server_tx_ns + delta
            )
        )
        return Sample(s.sent_ns + delta, s.received_ns + delta, reply, s.failure)

    return replace(server, samples=tuple(one(s) for s in server.samples))


def measurement(at_ns: int, names: list[str], min_agree: int = 3) -> ClockRecord:
    """A run of the recorded servers ``names``, begun at ``at_ns`` by the local clock."""
    servers, precision = recorded()
    first = min(s.sent_ns for n in names for s in servers[n].samples)
    chosen = tuple(moved(servers[n], at_ns - first) for n in names)
    selection = select(chosen, precision, min_agree, NS)
    last = max(s.received_ns for s in (x for c in chosen for x in c.samples))
    return ClockRecord(
        at_ns,
        last + 1000,
        min_agree,
        NS,
        precision,
        chosen,
        selection,
        "collector-1",
        "acdkit 0.1.0",
    )


GOOD = ["good0", "good1", "good2", "ahead300", "stratum16", "unsynchronised", "nobody"]
FEW = ["good0", "good1", "ahead300"]  # two agree: POLICY under min-agree 3


# -- the body ----------------------------------------------------------------------------------


def test_the_vector_parses_and_recomputes_in_both_implementations() -> None:
    data = bytes.fromhex(VECTOR["entry_hex"])
    parsed = logentries.parse_entry(data)
    record = ClockRecord.from_body(parsed.body)
    assert record.body() == parsed.body  # reading and writing again changes nothing
    found = record.check()
    assert [r.result for r in found.servers] == VECTOR["results"]
    assert (found.offset_ns, [found.low_ns, found.high_ns]) == (
        VECTOR["offset_ns"],
        VECTOR["interval_ns"],
    )
    theirs = TOOL.check_clock(TOOL.decode_clock(parsed.body))
    assert theirs == "OK, 2 of 4 servers agree, offset +0.000930 s within -0.011502..+0.013502 s"


def fields(body: bytes) -> list[tuple[int, int, bytes]]:
    return [(f, int(k), v) for f, k, v in parse_tlv(body)]


def join(items: list[tuple[int, int, bytes]]) -> bytes:
    return b"".join(tlv(f, TlvType(k), v) for f, k, v in items)


def set_field(body: bytes, fid: int, kind: int | None, value: bytes | None) -> bytes:
    items = [x for x in fields(body) if x[0] != fid]
    if value is not None:
        old = [k for f, k, _v in fields(body) if f == fid]
        items.append((fid, kind or old[0], value))
    return join(sorted(items))


def in_server(body: bytes, i: int, change: Callable[[bytes], bytes]) -> bytes:
    server = dict((f, v) for f, _k, v in fields(body))[100 + i]
    return set_field(body, 100 + i, TlvType.BYTES, change(server))


def in_sample(body: bytes, i: int, k: int, change: Callable[[bytes], bytes]) -> bytes:
    return in_server(body, i, lambda s: in_server_sample(s, k, change))


def in_server_sample(server: bytes, k: int, change: Callable[[bytes], bytes]) -> bytes:
    sample = dict((f, v) for f, _k, v in fields(server))[10 + k]
    return set_field(server, 10 + k, TlvType.BYTES, change(sample))


def i64(n: int) -> bytes:
    return n.to_bytes(8, "big", signed=True)


def u64(n: int) -> bytes:
    return n.to_bytes(8, "big")


BODY = logentries.parse_entry(bytes.fromhex(VECTOR["entry_hex"])).body
MUTATIONS: dict[str, tuple[Callable[[bytes], bytes], str]] = {
    "verdict-raised": (lambda b: set_field(b, 7, None, b"POLICY"), "TAMPERED"),
    "more-agreeing": (lambda b: set_field(b, 8, None, u64(3)), "TAMPERED"),
    "offset-nudged": (lambda b: set_field(b, 9, None, i64(929_580)), "TAMPERED"),
    "interval-narrowed": (lambda b: set_field(b, 10, None, i64(-1_000)), "TAMPERED"),
    "false-ticker-called-true": (
        lambda b: in_server(b, 1, lambda s: set_field(s, 4, None, b"truechimer")),
        "TAMPERED",
    ),
    "distance-shrunk": (
        lambda b: in_server(b, 0, lambda s: set_field(s, 6, None, u64(1_000))),
        "TAMPERED",
    ),
    "other-sample-chosen": (
        lambda b: in_server(b, 0, lambda s: set_field(s, 5, None, u64(1))),
        "TAMPERED",
    ),
    "sample-time-moved": (
        lambda b: in_sample(b, 2, 0, lambda x: set_field(x, 2, None, i64(1))),
        "TAMPERED",
    ),
    "limit-raised-to-hide-drift": (lambda b: set_field(b, 5, None, u64(0)), "TAMPERED"),
    "unknown-method": (lambda b: set_field(b, 1, None, b"ptp"), "MALFORMED"),
    "unknown-verdict": (lambda b: set_field(b, 7, None, b"FINE"), "MALFORMED"),
    "field-missing": (lambda b: set_field(b, 12, None, None), "MALFORMED"),
    "unknown-field": (lambda b: set_field(b, 14, TlvType.U64, u64(0)), "MALFORMED"),
    "server-gap": (lambda b: set_field(b, 101, None, None), "MALFORMED"),
    "offset-without-agreement": (
        lambda b: set_field(set_field(b, 8, None, u64(0)), 9, None, None),
        "MALFORMED",
    ),
    "precision-positive": (
        lambda b: in_sample(b, 0, 0, lambda x: set_field(x, 9, None, i64(3))),
        "MALFORMED",
    ),
    "refid-short": (
        lambda b: in_sample(b, 0, 0, lambda x: set_field(x, 10, None, b"GPS")),
        "MALFORMED",
    ),
    "failure-with-reply": (
        lambda b: in_sample(b, 0, 0, lambda x: set_field(x, 11, TlvType.UTF8, b"timeout")),
        "MALFORMED",
    ),
    "chosen-sample-without-reply": (
        lambda b: in_server(
            b, 3, lambda s: set_field(set_field(s, 5, TlvType.U64, u64(0)), 6, TlvType.U64, u64(5))
        ),
        "MALFORMED",
    ),
    "server-name-with-newline": (
        lambda b: in_server(b, 0, lambda s: set_field(s, 1, None, b"a\nb")),
        "MALFORMED",
    ),
    "port-zero": (lambda b: in_server(b, 0, lambda s: set_field(s, 3, None, u64(0))), "MALFORMED"),
    "truncated": (lambda b: b[:-3], "MALFORMED"),
}


def acdkit_verdict(body: bytes) -> str:
    try:
        ClockRecord.from_body(body).check()
    except MalformedError:
        return "MALFORMED"
    except TamperedError:
        return "TAMPERED"
    return "VERIFIED"


def tool_verdict(body: bytes) -> str:
    try:
        TOOL.check_clock(TOOL.decode_clock(body))
    except TOOL.Finding as exc:
        return str(TOOL.VERDICT[exc.code])
    return "VERIFIED"


@pytest.mark.parametrize("name", list(MUTATIONS))
def test_both_implementations_judge_a_changed_body_alike(name: str) -> None:
    change, verdict = MUTATIONS[name]
    body = change(BODY)
    assert body != BODY
    assert (acdkit_verdict(body), tool_verdict(body)) == (verdict, verdict)


def test_real_runs_recompute_in_both_implementations() -> None:
    for names, min_agree, verdict in [(GOOD, 3, "OK"), (FEW, 3, "POLICY"), (["nobody"], 1, "IO")]:
        record = measurement(WINDOW_START, names, min_agree)
        assert record.selection.verdict == verdict
        assert acdkit_verdict(record.body()) == tool_verdict(record.body()) == "VERIFIED"


# -- in a store --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Clocked:
    store: Store
    signer: keys.Signer
    bundle: Path
    indices: list[int]  # leaf index of each CLOCK entry, oldest first


def queue(store: Store, record: ClockRecord) -> None:
    with store.lock():
        logentries.add_pending(store, EntryType.CLOCK, record.body())


@pytest.fixture(scope="module")
def clocked(tmp_path_factory: pytest.TempPathFactory) -> Clocked:
    """The zat TSV logs of 2013-09-15, and four measurements: the day before (OK), inside
    the window (only two servers agree: POLICY), after it (OK) and a day later (OK)."""
    base = tmp_path_factory.mktemp("clocked")
    st, key = init_store(base / "store", base / "keys/sealer.key", "clock-test")
    signer = keys.load_signer(key)
    ingest.ingest(st, [DATA / f"zeek-tsv/zat/{n}.log" for n in ("conn", "dns", "http")])
    plan = [(-DAY // 2, GOOD), (DAY // 2, FEW), (DAY + DAY // 4, GOOD), (2 * DAY, GOOD)]
    for offset, names in plan:
        queue(st, measurement(WINDOW_START + offset, names))
    report = seal.seal(st, signer)
    first = report.segments[-1]["end_index"] - 5
    bundle.package(st, signer, "INC-CLOCK", WINDOW, base / "bundle")
    return Clocked(st, signer, base / "bundle", [first + i for i in range(4)])


def test_verify_checks_clock_entries_and_reports_a_window(clocked: Clocked) -> None:
    window = (WINDOW_START, WINDOW_START + DAY)
    report = verify.verify_store(clocked.store, clock_window=window, require_outside=False)
    assert report.verdict == 0, report.failure
    (check,) = [c for c in report.checks if c.id == "12"]
    assert check.detail.startswith("4 CLOCK entries verify (recomputed from their samples)")
    assert "1 record a clock check that failed" in check.detail
    assert report.facts["clock"]["entries"] == 4
    state = report.facts["clock_window"]
    ntp = state["ntp"]
    assert ntp["before"]["leaf_index"] == clocked.indices[0]
    assert [p["leaf_index"] for p in ntp["during"]] == [clocked.indices[1]]
    assert ntp["after"]["leaf_index"] == clocked.indices[2]
    assert (ntp["before"]["verdict"], ntp["during"][0]["verdict"]) == ("OK", "POLICY")
    assert ntp["before"]["interval_ns"] == [-88184, 89976]
    assert ntp["before"]["measured_at"] == "2013-09-14T12:00:00Z"
    # a negative offset (true time minus the local clock) is a local clock ahead
    assert state["flags"] == [
        "NTP POLICY: at 2013-09-15T12:00:00Z the local clock was 0.000072 s ahead of the "
        "consensus of 2 of 3 NTP servers (true time minus the local clock within -0.000352 s "
        "to +0.000120 s): too few servers agreed"
    ]
    assert state["rfc3161"]["state"] == "no RFC 3161 anchor in the log"


def test_verify_clock_options(clocked: Clocked, runner: CliRunner) -> None:
    result = runner.invoke(
        app,
        [
            "verify",
            str(clocked.store.root),
            "--clock-from",
            "2013-09-15T00:00:00Z",
            "--clock-to",
            "2013-09-16T00:00:00Z",
            "--local-only",
        ],
    )
    assert result.exit_code == 0
    assert "clock 2013-09-15T00:00:00Z .. 2013-09-16T00:00:00Z: NTP: at 2013-09-14T12:00:00Z" in (
        result.stderr
    )
    assert "flag NTP POLICY" in result.stderr
    bad = runner.invoke(app, ["verify", str(clocked.store.root), "--clock-from", "2013-09-15"])
    assert bad.exit_code == 2


def test_seal_refuses_a_clock_entry_that_does_not_recompute(
    clocked: Clocked, tmp_path: Path
) -> None:
    st = Store(shutil.copytree(clocked.store.root, tmp_path / "store"))
    forged = logentries.parse_entry(bytes.fromhex(VECTOR["entry_hex"])).body
    queue(st, ClockRecord.from_body(MUTATIONS["more-agreeing"][0](forged)))
    with pytest.raises(TamperedError, match="would not verify"):
        seal.seal(st, clocked.signer)


def test_a_forged_clock_entry_sealed_by_a_modified_sealer_is_tampered(
    clocked: Clocked, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    st = Store(shutil.copytree(clocked.store.root, tmp_path / "store"))
    body = MUTATIONS["offset-nudged"][0](BODY)
    with st.lock():
        (st.pending).mkdir(exist_ok=True)
        (st.pending / "00000000000000000001-forged-clock.entry").write_bytes(
            entry(EntryType.CLOCK, body)
        )
    # an insider whose acdkit skips the check before sealing
    monkeypatch.setattr(seal, "_check_queued", lambda *args: None)
    seal.seal(st, clocked.signer)
    report = verify.verify_store(st, require_outside=False)
    assert report.verdict == 1
    assert report.failure is not None and report.failure["check"] == "12"
    assert "combined offset or interval is not its samples'" in report.failure["message"]


# -- in a bundle -------------------------------------------------------------------------------


def test_the_bundle_carries_the_clock_leaves_around_its_window(clocked: Clocked) -> None:
    leaves = sorted(int(p.stem) for p in (clocked.bundle / "clock").iterdir())
    assert leaves == clocked.indices[:3]
    doc = json.loads((clocked.bundle / "summary/summary.json").read_text())
    clock = doc["clock"]
    assert clock["ntp"]["before"]["leaf_index"] == clocked.indices[0]
    assert clock["ntp"]["after"]["leaf_index"] == clocked.indices[2]
    assert clock["sensors"] == []
    assert len(clock["flags"]) == 1 and clock["flags"][0].startswith("NTP POLICY: at 2013-09-15")
    md = (clocked.bundle / "summary/summary.md").read_text()
    assert "## 時刻の状態 / Clock state in the window" in md
    assert "- NTP: at 2013-09-14T12:00:00Z the local clock was 0.000027 s ahead of the" in md


def _point(at_ns: int) -> ClockPoint:
    return ClockPoint(None, at_ns, "OK", 3, 3, 0, -1000, 1000, NS)


def test_a_window_measured_on_one_side_only_is_flagged() -> None:
    start, end = WINDOW_START, WINDOW_START + DAY
    # the package of an old incident in a store whose clock was first measured years later
    later = window_state([_point(end + 6 * 365 * DAY)], [], start, end)
    assert later.flags == [
        "no NTP measurement before the window: the clock at its start is not known",
        "the nearest NTP measurement after the window is 6.0 years from its end (more than 24 h)",
    ]
    assert window_state([_point(start - DAY // 2)], [], start, end).flags == [
        "no NTP measurement after the window: the clock at its end is not known"
    ]
    stale = window_state([_point(start - 3 * DAY), _point(end + DAY // 4)], [], start, end)
    assert stale.flags == [
        "the nearest NTP measurement before the window is 3.0 days from its start (more than 24 h)"
    ]
    near = [_point(start - DAY // 2), _point(start + 1), _point(end + DAY // 4)]
    assert window_state(near, [], start, end).flags == []


def test_both_verifiers_verify_the_clock_leaves(clocked: Clocked) -> None:
    tool = clocked.bundle / bundle.TOOL
    mine, theirs = both(tool, clocked.bundle, "--key", clocked.signer.verifier.vkey())
    assert (mine.verdict, theirs.verdict) == ("VERIFIED", "VERIFIED"), (mine, theirs)
    report = verify.verify_path(clocked.bundle, clock_window=(WINDOW_START, WINDOW_START + DAY))
    (check,) = [c for c in report.checks if c.id == "12"]
    assert check.detail.startswith("3 CLOCK leaves verify (recomputed from their samples)")
    assert report.facts["clock_window"]["ntp"]["during"][0]["verdict"] == "POLICY"


def _flip_proof_hash(root: Path, signer: keys.Signer) -> None:
    path = sorted((root / "clock").iterdir())[0]
    head, _, checkpoint = path.read_bytes().partition(b"\n\n")
    lines = head.split(b"\n")
    raw = bytearray(base64.b64decode(lines[3]))
    raw[0] ^= 1
    lines[3] = base64.b64encode(bytes(raw))
    path.write_bytes(b"\n".join(lines) + b"\n\n" + checkpoint)
    resign(root, signer)


def _drop_a_leaf(root: Path, signer: keys.Signer) -> None:
    sorted((root / "clock").iterdir())[0].unlink()
    resign(root, signer)


@pytest.mark.parametrize(
    ("damage", "verdict"),
    [(_flip_proof_hash, "TAMPERED"), (_drop_a_leaf, "VERIFIED")],
)
def test_both_verifiers_agree_on_damaged_clock_proofs(
    damage: Callable[[Path, keys.Signer], None], verdict: str, clocked: Clocked, tmp_path: Path
) -> None:
    work = shutil.copytree(clocked.bundle, tmp_path / "bundle")
    damage(work, clocked.signer)
    tool = shutil.copy(clocked.bundle / bundle.TOOL, tmp_path / "acdkit_verify.py")
    mine, theirs = both(Path(tool), work, "--key", clocked.signer.verifier.vkey())
    assert (mine.verdict, theirs.verdict) == (verdict, verdict), (mine, theirs)


# forged logs: a new tree whose log entries include a CLOCK entry chosen here, proven under
# clock/ and signed with the real key (what an insider holding the key can make)
FORGED_CLOCK: dict[str, tuple[bytes, str]] = {
    "clock-consistent": (entry(EntryType.CLOCK, BODY), "VERIFIED"),
    "clock-verdict-raised": (
        entry(EntryType.CLOCK, MUTATIONS["verdict-raised"][0](BODY)),
        "TAMPERED",
    ),
    "clock-false-ticker-called-true": (
        entry(EntryType.CLOCK, MUTATIONS["false-ticker-called-true"][0](BODY)),
        "TAMPERED",
    ),
    "clock-body-unknown-field": (
        entry(EntryType.CLOCK, MUTATIONS["unknown-field"][0](BODY)),
        "MALFORMED",
    ),
    "clock-body-truncated": (entry(EntryType.CLOCK, BODY[:-3]), "MALFORMED"),
    "clock-leaf-holds-a-key-entry": (entry(EntryType.KEY, BODY), "MALFORMED"),
    "clock-entry-with-a-salt": (entry(EntryType.CLOCK, BODY, bytes([1]) * 32), "MALFORMED"),
}


@pytest.fixture(scope="module")
def plain(tmp_path_factory: pytest.TempPathFactory) -> tuple[Origin, Path]:
    """A bundle of the zat logs to forge from, and the independent verifier as a lone file."""
    base = tmp_path_factory.mktemp("plain")
    st, key = init_store(base / "store", base / "keys/sealer.key", "forge-test")
    signer = keys.load_signer(key)
    ingest.ingest(st, [DATA / f"zeek-tsv/zat/{n}.log" for n in ("conn", "dns")])
    seal.seal(st, signer)
    bundle.package(st, signer, "INC-1", WINDOW, base / "bundle")
    tool = base / "tool" / "acdkit_verify.py"
    tool.parent.mkdir()
    tool.write_bytes(bundle.independent_verifier())
    return Origin(base / "bundle", signer, st.verifier().vkey(), st), tool


@pytest.mark.parametrize("name", list(FORGED_CLOCK))
def test_both_verifiers_agree_on_forged_clock_leaves(
    name: str, plain: tuple[Origin, Path], tmp_path: Path
) -> None:
    origin, tool = plain
    data, verdict = FORGED_CLOCK[name]
    dst = tmp_path / "forged"
    forge(origin.bundle, dst, origin, key_entries=[data])
    (proof,) = (dst / bundle.ROTATIONS).iterdir()
    (dst / "clock").mkdir()
    proof.rename(dst / "clock" / proof.name)
    (dst / bundle.ROTATIONS).rmdir()
    resign(dst, origin.signer)
    mine, theirs = both(tool, dst, "--key", origin.vkey)
    assert (mine.verdict, theirs.verdict) == (verdict, verdict), (mine, theirs)
    if verdict != "VERIFIED":
        assert mine.code == theirs.code


@pytest.mark.parametrize("sub", ["clock", "proofs", "seals"])
def test_a_listed_file_that_is_no_proof_is_malformed_for_both(
    sub: str, clocked: Clocked, tmp_path: Path
) -> None:
    # spec §9.4 check 5: every file under these folders is a proof named by its index
    work = shutil.copytree(clocked.bundle, tmp_path / "bundle")
    (work / sub / "notes.txt").write_text("not a proof\n")
    resign(work, clocked.signer)
    tool = shutil.copy(clocked.bundle / bundle.TOOL, tmp_path / "acdkit_verify.py")
    mine, theirs = both(Path(tool), work, "--key", clocked.signer.verifier.vkey())
    assert (mine.verdict, theirs.verdict) == ("MALFORMED", "MALFORMED"), (mine, theirs)


def test_a_queued_clock_entry_that_does_not_parse_is_only_a_warning(
    clocked: Clocked, tmp_path: Path
) -> None:
    # pending/ is not evidence yet: verify says so, seal refuses to sign the entry
    st = Store(shutil.copytree(clocked.store.root, tmp_path / "store"))
    with st.lock():
        logentries.add_pending(st, EntryType.CLOCK, BODY[:-3])
    report = verify.verify_store(st, require_outside=False)
    assert report.verdict == 0, report.failure
    assert any("a queued CLOCK entry in pending/ does not parse" in w for w in report.warnings)
    with pytest.raises(MalformedError, match="would not verify"):
        seal.seal(st, clocked.signer)
