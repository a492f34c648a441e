"""The root-signed trust policy: which sealer keys may sign, when, and how often seals come
(EVIDENCE §4.1 cases 10, 11, 18; §4.2 case 4)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from acdkit import bundle, ingest, keys, policy, rotation, seal, verify
from acdkit.cli import app
from acdkit.errors import ExitCode, MalformedError
from acdkit.note import sign_note
from acdkit.sealinfo import SealInfo
from acdkit.store import Store

NS = 1_000_000_000


@pytest.fixture
def root(tmp_path: Path) -> keys.Signer:
    signer = keys.generate("example.org/root")
    keys.write_private_key(signer, tmp_path / "root.key", "root")
    return signer


@pytest.fixture
def sealed(store: Store, signer: keys.Signer, data: Path) -> Store:
    ingest.ingest(store, [data / "zeek-tsv/zat/dns.log"])
    seal.seal(store, signer)
    return store


def _policy(store: Store, *windows: policy.SealerWindow, **kw: object) -> policy.Policy:
    return policy.Policy(
        store.origin,
        len(policy.policy_files(store)) + 1,
        time.time_ns() // NS * NS,
        list(windows),
        **kw,  # type: ignore[arg-type]
    )


def _verify(store: Store, root: keys.Signer | None) -> verify.VerifyReport:
    return verify.verify_store(store, root=root.verifier if root else None, require_outside=False)


def test_policy_authorizes_the_sealer(
    sealed: Store, signer: keys.Signer, root: keys.Signer
) -> None:
    policy.write_policy(sealed, _policy(sealed, policy.SealerWindow(signer.verifier)), root)
    report = _verify(sealed, root)
    assert report.verdict == ExitCode.OK, report.to_json()
    check = next(c for c in report.checks if c.id == "7")
    assert "trust policy 1" in check.detail and "(pinned)" in check.detail
    assert "not pinned" in next(c for c in _verify(sealed, None).checks if c.id == "7").detail


def test_pinned_root_without_a_policy_is_a_downgrade(sealed: Store, root: keys.Signer) -> None:
    report = _verify(sealed, root)
    assert report.verdict == ExitCode.TAMPERED and "no trust policy" in report.failure["message"]


def test_policy_of_another_root_is_tampered(
    sealed: Store, signer: keys.Signer, root: keys.Signer
) -> None:
    policy.write_policy(sealed, _policy(sealed, policy.SealerWindow(signer.verifier)), root)
    other = keys.generate("example.org/root")
    assert _verify(sealed, other).verdict == ExitCode.TAMPERED


def test_unauthorized_and_expired_sealer_keys(
    sealed: Store, signer: keys.Signer, root: keys.Signer
) -> None:
    stranger = keys.generate(sealed.origin).verifier
    policy.write_policy(sealed, _policy(sealed, policy.SealerWindow(stranger)), root)
    report = _verify(sealed, root)
    assert report.verdict == ExitCode.TAMPERED and "not authorized" in report.failure["message"]
    # a window that closed in 2001
    expired = policy.SealerWindow(signer.verifier, None, 1_000_000_000 * NS)
    policy.write_policy(sealed, _policy(sealed, expired), root)
    report = _verify(sealed, root)
    assert report.verdict == ExitCode.TAMPERED and "outside its window" in report.failure["message"]


def test_grace_at_the_window_boundary(
    sealed: Store, signer: keys.Signer, root: keys.Signer
) -> None:
    # the key's window closed two minutes before its last seal: inside 300 s of grace
    sealed_at = max(
        SealInfo.from_entry((s / "seal.entry").read_bytes()).sealed_at_ns
        for s in sealed.segment_dirs()
    )
    window = policy.SealerWindow(signer.verifier, None, sealed_at - 120 * NS)
    policy.write_policy(sealed, _policy(sealed, window, grace_s=300), root)
    assert _verify(sealed, root).verdict == ExitCode.OK
    policy.write_policy(sealed, _policy(sealed, window, grace_s=60), root)
    assert _verify(sealed, root).verdict == ExitCode.TAMPERED


def test_rotation_to_a_key_the_policy_does_not_list(
    sealed: Store, signer: keys.Signer, root: keys.Signer, tmp_path: Path
) -> None:
    new = keys.generate(sealed.origin)
    policy.write_policy(sealed, _policy(sealed, policy.SealerWindow(signer.verifier)), root)
    rotation.rotate(sealed, signer, new)
    seal.seal(sealed, new, heartbeat=True)
    report = _verify(sealed, root)
    assert report.verdict == ExitCode.TAMPERED
    assert new.verifier.key_id.hex() in report.failure["message"]
    # the root authorizes the new key in the next policy: it verifies
    both = [policy.SealerWindow(signer.verifier), policy.SealerWindow(new.verifier)]
    policy.write_policy(sealed, _policy(sealed, *both), root)
    assert _verify(sealed, root).verdict == ExitCode.OK


def test_seal_cadence(store: Store, signer: keys.Signer, root: keys.Signer) -> None:
    seal.seal(store, signer, heartbeat=True)
    time.sleep(2.2)
    seal.seal(store, signer, heartbeat=True)
    window = policy.SealerWindow(signer.verifier)
    policy.write_policy(store, _policy(store, window, seal_interval_s=1, grace_s=0), root)
    report = _verify(store, root)
    assert report.verdict == ExitCode.POLICY and "sealing was stopped" in report.failure["message"]
    policy.write_policy(store, _policy(store, window, seal_interval_s=60, grace_s=0), root)
    report = _verify(store, root)
    assert report.verdict == ExitCode.OK
    # the gap the two SEALs record (2.2 s of sleep plus the second seal's own time: under
    # load it rounds to more than 2 s)
    first, second = (
        SealInfo.from_entry((seg / "seal.entry").read_bytes()).sealed_at_ns
        for seg in store.segment_dirs()
    )
    gap = (second - first) / 1e9
    assert gap >= 2.2
    detail = next(c for c in report.checks if c.id == "7").detail
    assert f"longest gap between seals {gap:,.0f}s" in detail


def test_policy_history_must_be_whole(
    sealed: Store, signer: keys.Signer, root: keys.Signer
) -> None:
    window = policy.SealerWindow(signer.verifier)
    first = policy.write_policy(sealed, _policy(sealed, window), root)
    policy.write_policy(sealed, _policy(sealed, window), root)
    first.unlink()
    report = _verify(sealed, root)
    assert report.verdict == ExitCode.TAMPERED and "serials jump" in report.failure["message"]


@pytest.mark.parametrize(
    "mutate",
    [
        lambda t: t.replace("grace 300\n", "grace 300\nextra 1\n"),  # unknown line
        lambda t: t.replace("witness-quorum 0", "witness-quorum 1"),  # quorum > witnesses
        lambda t: t.replace("serial 1", "serial 01"),  # leading zero
        lambda t: t.replace("grace 300\n", "grace 300"),  # no final newline
        lambda t: "\n".join(reversed(t.split("\n"))),  # out of order
        lambda t: t.replace("seal-interval -\n", ""),  # a required line missing
    ],
)
def test_policy_text_is_parsed_strictly(
    sealed: Store, signer: keys.Signer, mutate: Callable[[str], str]
) -> None:
    text = _policy(sealed, policy.SealerWindow(signer.verifier)).text()
    assert policy.Policy.from_text(text).text() == text
    with pytest.raises(MalformedError):
        policy.Policy.from_text(mutate(text))


def test_malformed_policy_note_in_store(
    sealed: Store, signer: keys.Signer, root: keys.Signer
) -> None:
    path = policy.write_policy(sealed, _policy(sealed, policy.SealerWindow(signer.verifier)), root)
    path.write_bytes(sign_note("acdkit-policy/1\nnonsense\n", root).encode())
    assert _verify(sealed, root).verdict == ExitCode.MALFORMED


def test_policy_cli(
    sealed: Store, key_path: Path, tmp_path: Path, runner: CliRunner, root: keys.Signer
) -> None:
    args = ["policy", "sign", str(sealed.root), "--root-key", str(tmp_path / "root.key")]
    signed = runner.invoke(app, [*args, "--seal-interval", "600", "--json"])
    assert signed.exit_code == 0, signed.output
    text = json.loads(signed.stdout)["text"]
    assert (
        "seal-interval 600\n" in text
        and f"sealer {keys.load_signer(key_path).verifier.vkey()}" in text
    )
    shown = runner.invoke(app, ["policy", "show", str(sealed.root)])
    assert shown.exit_code == 0 and shown.stdout == text
    ok = runner.invoke(
        app, ["verify", str(sealed.root), "--local-only", "--root", root.verifier.vkey()]
    )
    assert ok.exit_code == 0, ok.output
    bad = runner.invoke(app, [*args, "--sealer", "not-a-vkey"])
    assert bad.exit_code == ExitCode.USAGE
    window = runner.invoke(
        app, [*args, "--sealer", keys.load_signer(key_path).verifier.vkey() + "@2020-01-01..x"]
    )
    assert window.exit_code == ExitCode.USAGE


def test_bundle_carries_the_policy(
    sealed: Store, signer: keys.Signer, root: keys.Signer, tmp_path: Path
) -> None:
    window = bundle.Window(
        bundle.parse_time("2000-01-01T00:00:00Z"), bundle.parse_time("2030-01-01T00:00:00Z")
    )
    plain = tmp_path / "plain"
    bundle.package(sealed, signer, "INC-P", window, plain)
    assert bundle.verify_bundle(plain).verdict == ExitCode.OK
    # a pinned root needs a policy in the bundle
    assert bundle.verify_bundle(plain, trust_root=root.verifier).verdict == ExitCode.TAMPERED
    policy.write_policy(sealed, _policy(sealed, policy.SealerWindow(signer.verifier)), root)
    out = tmp_path / "bundle"
    bundle.package(sealed, signer, "INC-P", window, out)
    assert (out / "policy" / f"{1:020d}.policy.note").is_file()
    report = bundle.verify_bundle(out, trust_root=root.verifier)
    assert report.verdict == ExitCode.OK, report.to_json()
    (check_8,) = [c for c in report.checks if c.id == "8"]
    assert "authorizes all 1 sealer keys" in check_8.detail
    other = keys.generate("example.org/root").verifier
    assert bundle.verify_bundle(out, trust_root=other).verdict == ExitCode.TAMPERED
    # a policy that does not list the sealer, re-signed by the root, in a re-signed manifest
    stranger = keys.generate(sealed.origin).verifier
    bad = _policy(sealed, policy.SealerWindow(stranger))
    bad.serial = 1
    (out / "policy" / f"{1:020d}.policy.note").write_bytes(sign_note(bad.text(), root).encode())
    _resign(out, signer)
    report = bundle.verify_bundle(out, trust_root=root.verifier)
    assert report.verdict == ExitCode.TAMPERED and "not authorized" in report.failure["message"]


def _resign(out: Path, signer: keys.Signer) -> None:
    (out / bundle.MANIFEST).unlink()
    manifest = bundle._manifest_text("INC-P", signer.name, _size(out), out)
    (out / bundle.MANIFEST).write_bytes(sign_note(manifest, signer).encode())


def _size(out: Path) -> int:
    (cp,) = (out / "checkpoint").iterdir()
    return int(cp.name.split(".")[0])


def test_default_policy_ends_a_rotated_keys_window(
    sealed: Store, signer: keys.Signer, key_path: Path, tmp_path: Path, runner: CliRunner,
    root: keys.Signer,
) -> None:  # fmt: skip
    new = keys.generate(sealed.origin)
    rotation.rotate(sealed, signer, new)
    seal.seal(sealed, new, heartbeat=True)
    args = ["policy", "sign", str(sealed.root), "--root-key", str(tmp_path / "root.key")]
    signed = runner.invoke(app, [*args, "--json"])
    assert signed.exit_code == 0, signed.output
    text = json.loads(signed.stdout)["text"]
    first, second = (line for line in text.split("\n") if line.startswith("sealer "))
    assert first.startswith(f"sealer {signer.verifier.vkey()} - 20") and not first.endswith(" -")
    assert second.startswith(f"sealer {new.verifier.vkey()} 20") and second.endswith(" -")
    assert _verify(sealed, root).verdict == ExitCode.OK
    help_text = runner.invoke(app, ["policy", "sign", "--help"]).output
    assert "[@FROM..UNTIL]" in help_text
