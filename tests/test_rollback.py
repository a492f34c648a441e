"""Rollback and truncation of the newest segments (EVIDENCE §4.1 case 6): caught only against
something kept outside the store — a remembered checkpoint or an expected minimum size."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from _evidence import roll_back
from acdkit import ingest, keys, seal, verify
from acdkit.cli import app
from acdkit.errors import ExitCode
from acdkit.note import Checkpoint, sign_note
from acdkit.remembered import Remembered
from acdkit.sealinfo import SealInfo
from acdkit.store import Store


@pytest.fixture
def grown(store: Store, signer: keys.Signer, data: Path) -> tuple[Store, bytes]:
    """Two segments, then a third; returns the sealer state saved before the third."""
    ingest.ingest(store, [data / "zeek-tsv/zat/conn.log", data / "zeek-tsv/zat/dns.log"])
    seal.seal(store, signer)
    ingest.ingest(store, [data / "zeek-json/otrf-apt29/UTICA-C_conn.log"])
    seal.seal(store, signer)
    return store, store.state_path.read_bytes()


def _third(store: Store, signer: keys.Signer, data: Path) -> int:
    ingest.ingest(store, [data / "zeek-json/otrf-apt29/UTICA-C_dns.log"])
    return seal.seal(store, signer).size


def _verdict(store: Store, **kw: object) -> verify.VerifyReport:
    return verify.verify_store(store, **kw)  # type: ignore[arg-type]


def test_state_remembers_the_newest_checkpoint_and_catches_rollback(
    grown: tuple[Store, bytes], signer: keys.Signer, data: Path, tmp_path: Path
) -> None:
    store, saved = grown
    state = tmp_path / "elsewhere" / "verifier.json"
    # a first run: nothing outside knew the log before, so a rollback cannot be excluded yet
    first = _verdict(store, state=state)
    two_segments = first.facts["tree_size"]
    assert (first.verdict, first.failure["check"]) == (ExitCode.INCOMPLETE, "6")
    assert first.failure["message"].endswith(
        f"{state} now remembers checkpoint {two_segments:,}, so the next run can tell"
    )
    assert Remembered.load(state).checkpoint.size == two_segments  # type: ignore[union-attr]
    size = _third(store, signer, data)
    again = _verdict(store, state=state)
    assert again.verdict == ExitCode.OK
    assert again.coverage.endswith(f"known outside the store: size {two_segments:,} (--state)")
    assert Remembered.load(state).checkpoint.size == size  # type: ignore[union-attr]
    before = state.read_bytes()
    roll_back(store, saved)
    # the shorter log is consistent in itself: without outside knowledge it cannot be
    # excluded (EVIDENCE §4.1-6: INCOMPLETE); --local-only accepts that, with a warning
    alone = _verdict(store)
    assert (alone.verdict, alone.failure["check"]) == (ExitCode.INCOMPLETE, "6")
    assert "a rollback of its newest segments cannot be excluded" in alone.failure["message"]
    accepted = _verdict(store, require_outside=False)
    assert accepted.verdict == ExitCode.OK
    assert any("cannot be excluded" in w for w in accepted.warnings)
    report = _verdict(store, state=state)
    assert report.verdict == ExitCode.TAMPERED
    assert f"this verifier saw checkpoint {size:,}" in report.failure["message"]
    assert state.read_bytes() == before  # a failed run never rewrites what it remembered


def test_rollback_that_keeps_the_ledger_is_caught_without_outside_memory(
    grown: tuple[Store, bytes], signer: keys.Signer, data: Path
) -> None:
    store, saved = grown
    _third(store, signer, data)
    lost = SealInfo.from_entry((store.segment_dirs()[-1] / "seal.entry").read_bytes()).sources
    roll_back(store, saved, ledger=False)
    report = _verdict(store)
    assert report.verdict == ExitCode.TAMPERED and report.failure["check"] == "5"
    assert report.failure["ledger_entry"] == lost[0]
    assert (
        "records 1 input file(s) as sealed that no sealed segment lists"
        in (report.failure["message"])
    )


def test_rollback_then_reseal_to_another_history_is_a_missing_checkpoint(
    grown: tuple[Store, bytes], signer: keys.Signer, data: Path, tmp_path: Path
) -> None:
    store, saved = grown
    state = tmp_path / "verifier.json"
    _third(store, signer, data)
    assert _verdict(store, state=state).verdict == ExitCode.INCOMPLETE  # first run: remembers
    roll_back(store, saved)
    # the insider with the key seals something else on top: a longer, different log
    ingest.ingest(store, [data / "zeek-json/otrf-apt29/SCRANTON_http.log"])
    seal.seal(store, signer)
    seal.seal(store, signer, heartbeat=True)
    report = _verdict(store, state=state)
    assert report.verdict == ExitCode.TAMPERED
    assert "is not in the log" in report.failure["message"]


def test_same_size_fork_is_tampered(
    grown: tuple[Store, bytes], signer: keys.Signer, tmp_path: Path
) -> None:
    store, _ = grown
    size = _verdict(store).facts["tree_size"]
    other = sign_note(Checkpoint(store.origin, size, bytes(32)).text(), signer).encode()
    state = tmp_path / "verifier.json"
    Remembered.from_note(other).save(state)
    report = _verdict(store, state=state)
    assert report.verdict == ExitCode.TAMPERED and "fork" in report.failure["message"]


def test_expect_min_size(grown: tuple[Store, bytes]) -> None:
    store, _ = grown
    size = _verdict(store).facts["tree_size"]
    known = _verdict(store, expect_min_size=size)
    assert known.verdict == ExitCode.OK
    assert known.facts["committed_outside"] == {"--expect-min-size": size}
    report = _verdict(store, expect_min_size=size + 1)
    assert report.verdict == ExitCode.TAMPERED and "truncation" in report.failure["message"]


def test_state_that_cannot_be_trusted(grown: tuple[Store, bytes], tmp_path: Path) -> None:
    store, _ = grown
    size = _verdict(store).facts["tree_size"]
    cp = store.checkpoint_path(size).read_bytes()
    state = tmp_path / "verifier.json"
    # signed by another key
    stranger = keys.generate(store.origin)
    Remembered.from_note(
        sign_note(Checkpoint(store.origin, size, bytes(32)).text(), stranger).encode()
    ).save(state)
    assert _verdict(store, state=state).verdict == ExitCode.TAMPERED
    # for another log, or damaged
    doc = {"format": "acdkit-verifier-state/1", "checkpoint": base64.b64encode(cp).decode()}
    state.write_text(json.dumps({**doc, "format": "other/1"}))
    assert _verdict(store, state=state).verdict == ExitCode.MALFORMED
    state.write_text("{not json")
    assert _verdict(store, state=state).verdict == ExitCode.MALFORMED
    other_log = keys.generate("acdkit/other/log")
    Remembered.from_note(
        sign_note(Checkpoint("acdkit/other/log", 3, bytes(32)).text(), other_log).encode()
    ).save(state)
    report = _verdict(store, state=state)
    assert report.verdict == ExitCode.MALFORMED
    assert "is for log 'acdkit/other/log'" in report.failure["message"]


def test_state_is_left_alone_when_the_log_fails(grown: tuple[Store, bytes], tmp_path: Path) -> None:
    store, _ = grown
    state = tmp_path / "verifier.json"
    store.checkpoint_files()[0].unlink()  # a middle checkpoint: TAMPERED on its own
    assert _verdict(store, state=state).verdict == ExitCode.TAMPERED
    assert not state.exists()


def test_cli_state_and_min_size(
    grown: tuple[Store, bytes], tmp_path: Path, runner: CliRunner
) -> None:
    store, _ = grown
    state = tmp_path / "verifier.json"
    first = runner.invoke(app, ["verify", str(store.root), "--state", str(state), "--json"])
    assert first.exit_code == ExitCode.INCOMPLETE, first.output  # nothing outside knew it yet
    doc = json.loads(first.stdout)
    assert any(c["id"] == "6" and "now remembers" in c["detail"] for c in doc["checks"])
    size = doc["facts"]["tree_size"]
    ok = runner.invoke(app, ["verify", str(store.root), "--state", str(state)])
    assert ok.exit_code == 0, ok.output
    assert runner.invoke(app, ["verify", str(store.root)]).exit_code == ExitCode.INCOMPLETE
    assert runner.invoke(app, ["verify", str(store.root), "--local-only"]).exit_code == 0
    small = runner.invoke(app, ["verify", str(store.root), "--expect-min-size", str(size + 5)])
    assert small.exit_code == ExitCode.TAMPERED


def test_bundle_expect_min_size_and_no_state(
    grown: tuple[Store, bytes], tmp_path: Path, runner: CliRunner
) -> None:
    store, _ = grown
    out = tmp_path / "bundle"
    result = runner.invoke(
        app,
        [
            "package",
            str(store.root),
            "--incident",
            "INC-1",
            "--from",
            "2000-01-01T00:00:00Z",
            "--to",
            "2030-01-01T00:00:00Z",
            "--out",
            str(out),
            "--key",
            str(tmp_path / "keys" / "sealer.key"),
        ],
    )
    assert result.exit_code == 0, result.output
    size = verify.verify_path(out).facts["tree_size"]
    assert verify.verify_path(out, expect_min_size=size).verdict == ExitCode.OK
    assert verify.verify_path(out, expect_min_size=size + 1).verdict == ExitCode.TAMPERED
    bad = runner.invoke(app, ["verify", str(out), "--state", str(tmp_path / "s.json")])
    assert bad.exit_code == ExitCode.USAGE
