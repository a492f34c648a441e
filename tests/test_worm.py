"""WORM copies on S3 (EVIDENCE §3.8): `storage push`, `verify --worm`, `storage selftest`.

Every test talks to a real S3 server on loopback: moto's server mode (tests/s3server.py),
checked first for what these tests rely on (versioning, Object Lock, AccessDenied on
deleting a locked version); a 503-answering server and a silent port stand for S3 down.
The store is sealed from real sample logs, with a custodian key registered.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import botocore.exceptions
import pytest
from typer.testing import CliRunner

from _evidence import TINY_SEGMENTS, build_store, cli_verify, copy_store
from acdkit import custodians, keys, worm
from acdkit.cli import app
from acdkit.custody import WORM_EVENT, Custody, parse_custody
from acdkit.encoding import TlvType, parse_tlv, tlv
from acdkit.errors import IncompleteError, MalformedError
from acdkit.s3client import S3Settings, endpoint_problem
from acdkit.sealinfo import SealInfo
from acdkit.store import Store
from acdkit.wormcheck import check_pins
from acdkit.wormpin import Pin, Receipt
from s3server import CREDENTIALS, Moto, answering, closed_port, silent, trickling

REPO = Path(__file__).resolve().parents[1]
ACDKIT = REPO / ".venv" / "bin" / "acdkit"


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> tuple[Store, Path, Path]:
    """A sealed store of two segments, its sealer key, and a registered custodian key."""
    base = tmp_path_factory.mktemp("worm")
    store, _signer = build_store(base / "store", base / "keys" / "sealer.key", TINY_SEGMENTS)
    custodian = keys.generate("alice@example.org")
    keys.write_private_key(custodian, base / "keys" / "custodian.key", "custodian")
    custodians.register(store, custodian.verifier)
    return store, base / "keys" / "sealer.key", base / "keys" / "custodian.key"


@pytest.fixture
def st(template: tuple[Store, Path, Path], tmp_path: Path) -> Store:
    return copy_store(template[0], tmp_path / "store")


def run(*args: str) -> tuple[int, dict[str, Any], str]:
    """The CLI with --json: exit code, its document, its stderr."""
    result = CliRunner().invoke(app, [*args, "--json"])
    doc = json.loads(result.stdout) if result.stdout.strip() else {}
    return result.exit_code, doc, result.stderr


def push(
    st: Store, template: tuple[Store, Path, Path], moto: Moto, bucket: str, *extra: str
) -> tuple[int, dict[str, Any], str]:
    return run(
        "storage", "push", str(st.root), "--bucket", bucket, "--endpoint", moto.url,
        "--custodian-key", str(template[2]), "--mode", "governance", "--retain-days", "2",
        "--seal", "--key", str(template[1]), *extra,
    )  # fmt: skip


def worm_verify(st: Store, url: str, *extra: str) -> tuple[int, dict[str, Any]]:
    return cli_verify(st.root, "--worm", "--endpoint", url, "--allow-incomplete", *extra)


# -- what moto implements ------------------------------------------------------------------


def test_moto_keeps_versions_and_enforces_object_lock(moto_s3: Moto, aws: dict[str, str]) -> None:
    s3, bucket = moto_s3.client(), moto_s3.bucket()
    until = datetime.now(UTC) + timedelta(days=1)
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
    first = s3.put_object(
        Bucket=bucket, Key="k", Body=b"one", ChecksumAlgorithm="SHA256",
        ObjectLockMode="GOVERNANCE", ObjectLockRetainUntilDate=until,
    )["VersionId"]  # fmt: skip
    second = s3.put_object(Bucket=bucket, Key="k", Body=b"two")["VersionId"]
    assert first != second
    assert s3.get_object(Bucket=bucket, Key="k", VersionId=first)["Body"].read() == b"one"
    with pytest.raises(botocore.exceptions.ClientError) as denied:
        s3.delete_object(Bucket=bucket, Key="k", VersionId=first)
    assert denied.value.response["Error"]["Code"] == "AccessDenied"
    locked = s3.put_object(
        Bucket=bucket, Key="c", Body=b"c", ChecksumAlgorithm="SHA256",
        ObjectLockMode="COMPLIANCE", ObjectLockRetainUntilDate=until,
    )["VersionId"]  # fmt: skip
    with pytest.raises(botocore.exceptions.ClientError) as denied:
        s3.delete_object(Bucket=bucket, Key="c", VersionId=locked, BypassGovernanceRetention=True)
    assert denied.value.response["Error"]["Code"] == "AccessDenied"
    # a governance lock yields to whoever may bypass it: the attack of case 4.1-23
    s3.delete_object(Bucket=bucket, Key="k", VersionId=first, BypassGovernanceRetention=True)
    with pytest.raises(botocore.exceptions.ClientError) as gone:
        s3.get_object(Bucket=bucket, Key="k", VersionId=first)
    assert gone.value.response["Error"]["Code"] == "NoSuchVersion"


def test_what_moto_does_not_implement(moto_s3: Moto, aws: dict[str, str]) -> None:
    """The limits named in the README: if moto starts to check these, this test says so."""
    s3, bucket = moto_s3.client(), moto_s3.bucket()
    wrong = "A" * 43 + "="
    answer = s3.put_object(
        Bucket=bucket, Key="k", Body=b"bytes", ChecksumAlgorithm="SHA256", ChecksumSHA256=wrong
    )
    assert answer["ChecksumSHA256"] == wrong  # not checked against the bytes
    until = datetime.now(UTC) + timedelta(days=1)
    v = s3.put_object(
        Bucket=bucket, Key="c", Body=b"c", ChecksumAlgorithm="SHA256",
        ObjectLockMode="COMPLIANCE", ObjectLockRetainUntilDate=until,
    )["VersionId"]  # fmt: skip
    soon = {"Mode": "COMPLIANCE", "RetainUntilDate": datetime.now(UTC) + timedelta(seconds=5)}
    s3.put_object_retention(Bucket=bucket, Key="c", VersionId=v, Retention=soon)  # AWS refuses


# -- push ----------------------------------------------------------------------------------


def test_push_uploads_the_sealed_files_locked_and_logs_their_versions(
    st: Store, template: tuple[Store, Path, Path], moto_s3: Moto, aws: dict[str, str]
) -> None:
    bucket = moto_s3.bucket()
    files = worm.store_files(st)
    checkpoints = {f"checkpoints/{p.name}" for p in st.checkpoint_files()}
    code, doc, _err = push(st, template, moto_s3, bucket)
    assert code == 0, doc
    prefix = f"acdkit/{st.meta()['log_id']}/"
    assert doc["prefix"] == prefix
    assert sorted(p["key"] for p in doc["uploaded"]) == sorted(prefix + rel for rel, _ in files)
    assert doc["adopted"] == [] and doc["already_pinned"] == 0
    assert len(doc["queued"]) == 1 and len(doc["seal"]["segments"]) == 1  # one receipt, sealed
    # every segment file, checkpoint and the metadata; never a segment key
    rels = {rel for rel, _ in files}
    assert "acdkit-store.json" in rels
    assert checkpoints <= rels and len(checkpoints) == 2
    assert not [r for r in rels if r.endswith("segment.key") or "pending" in r]
    s3 = moto_s3.client()
    stored = moto_s3.versions(bucket)
    assert sorted(stored) == sorted(prefix + rel for rel, _ in files)
    for rel, path in files:
        pin = next(p for p in doc["uploaded"] if p["key"] == prefix + rel)
        assert stored[prefix + rel] == [pin["version_id"]]
        head = s3.head_object(Bucket=bucket, Key=prefix + rel, VersionId=pin["version_id"])
        assert head["ObjectLockMode"] == "GOVERNANCE"
        assert pin["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
        assert pin["size"] == path.stat().st_size and pin["s3_checksum_sha256"] is True
    # the pins are a sealed, signed CUSTODY entry, and the store still verifies
    pins = worm.pinned(st)
    assert len(pins) == len(files) and all(index is not None for index, _p, _b in pins)
    code, report = cli_verify(st.root, "--allow-incomplete")
    assert (code, report["verdict"]) == (0, "VERIFIED")
    assert any(c["id"] == "13" and "1 worm-upload" in c["detail"] for c in report["checks"])


def test_a_second_push_uploads_only_what_is_new(
    st: Store, template: tuple[Store, Path, Path], moto_s3: Moto, aws: dict[str, str]
) -> None:
    bucket = moto_s3.bucket()
    first = push(st, template, moto_s3, bucket)[1]
    seg = st.segment_dirs()[-1].name  # the first push's seal made it (the receipt)
    size = st.checkpoint_files()[-1].name
    code, again, _err = push(st, template, moto_s3, bucket)
    assert code == 0
    # the new segment's files and its checkpoint only
    assert again["already_pinned"] == len(first["uploaded"])
    new = sorted(p["key"].split("/", 2)[2] for p in again["uploaded"])
    assert new == [
        f"checkpoints/{size}",
        f"segments/{seg}/entries.bin",
        f"segments/{seg}/seal.entry",
    ]
    assert all(len(v) == 1 for v in moto_s3.versions(bucket).values())  # nothing twice


def test_push_interrupted_after_the_uploads_loses_nothing_and_the_rerun_adopts_them(
    st: Store,
    template: tuple[Store, Path, Path],
    moto_s3: Moto,
    aws: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    bucket = moto_s3.bucket()

    def dies(*_args: Any) -> None:
        raise KeyboardInterrupt  # the process stops between the uploads and the receipt

    with monkeypatch.context() as patch:
        patch.setattr(worm.custodychain, "record", dies)
        code, _doc, _err = push(st, template, moto_s3, bucket)
    assert code != 0 and worm.pinned(st) == []
    assert len(moto_s3.versions(bucket)) == len(worm.store_files(st))
    assert cli_verify(st.root, "--allow-incomplete")[1]["verdict"] == "VERIFIED"
    code, doc, _err = push(st, template, moto_s3, bucket)
    assert code == 0, doc
    assert doc["uploaded"] == [] and len(doc["adopted"]) == len(worm.store_files(st)) - 3
    assert all(len(v) == 1 for v in moto_s3.versions(bucket).values())
    code, report = worm_verify(st, moto_s3.url)
    assert (code, report["verdict"]) == (0, "VERIFIED"), report["failure"]


def test_push_killed_at_random_moments_leaves_a_verifying_store_and_no_object_twice(
    st: Store, template: tuple[Store, Path, Path], moto_s3: Moto, aws: dict[str, str]
) -> None:
    """SIGKILL of the real command at seeded random times; then rerun to the end."""
    bucket = moto_s3.bucket()
    env = {**os.environ, **CREDENTIALS}
    command = [
        str(ACDKIT), "storage", "push", str(st.root), "--bucket", bucket,
        "--endpoint", moto_s3.url, "--custodian-key", str(template[2]), "--mode",
        "governance", "--seal", "--key", str(template[1]),
    ]  # fmt: skip
    rng = random.Random(20261204)
    for _ in range(5):
        proc = subprocess.Popen(command, env=env, start_new_session=True,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        time.sleep(rng.uniform(0.3, 2.5))
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        code, report = cli_verify(st.root, "--allow-incomplete")
        assert report["verdict"] in ("VERIFIED", "INCOMPLETE"), report["failure"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    # every file of the store is pinned; each pinned key once; each key one version
    pins = worm.pinned(st, bucket)
    keys_pinned = [pin.key for _i, pin, _b in pins]
    assert len(keys_pinned) == len(set(keys_pinned))
    prefix = f"acdkit/{st.meta()['log_id']}/"
    stored = moto_s3.versions(bucket)
    assert set(keys_pinned) <= set(stored)
    assert {prefix + rel for rel, _ in worm.store_files(st)} - set(keys_pinned) <= {
        prefix + f"checkpoints/{st.checkpoint_files()[-1].name}",
        prefix + f"segments/{st.segment_dirs()[-1].name}/entries.bin",
        prefix + f"segments/{st.segment_dirs()[-1].name}/seal.entry",
    }  # the newest receipt's own segment waits for the next push
    assert all(len(v) == 1 for v in stored.values()), stored
    code, report = worm_verify(st, moto_s3.url)
    assert (code, report["verdict"]) == (0, "VERIFIED"), report["failure"]


def test_push_to_a_bucket_without_object_lock_is_policy_and_uploads_nothing(
    st: Store, template: tuple[Store, Path, Path], moto_s3: Moto, aws: dict[str, str]
) -> None:
    bucket = moto_s3.bucket(lock=False)
    code, doc, _err = push(st, template, moto_s3, bucket)
    assert (code, doc["error"]["verdict"]) == (5, "POLICY")
    assert "has no Object Lock" in doc["error"]["message"]
    assert moto_s3.versions(bucket) == {} and worm.pinned(st) == []


def test_push_with_an_unregistered_custodian_key_is_refused_before_any_upload(
    st: Store,
    template: tuple[Store, Path, Path],
    moto_s3: Moto,
    aws: dict[str, str],
    tmp_path: Path,
) -> None:
    stranger = tmp_path / "stranger.key"
    keys.write_private_key(keys.generate("mallory@example.org"), stranger, "custodian")
    bucket = moto_s3.bucket()
    code, doc, _err = run(
        "storage", "push", str(st.root), "--bucket", bucket, "--endpoint", moto_s3.url,
        "--custodian-key", str(stranger),
    )  # fmt: skip
    assert code == 2 and "does not list" in doc["error"]["message"]
    assert moto_s3.versions(bucket) == {}


def test_push_to_a_store_that_cannot_queue_its_receipts_uploads_nothing(
    st: Store, template: tuple[Store, Path, Path], moto_s3: Moto, aws: dict[str, str]
) -> None:
    # a read-only mount (here: pending/ is a file, as root writes through modes): every
    # file went up under a lock none can lift, then the receipts failed (exit 6)
    st.pending.mkdir(exist_ok=True)
    st.pending.rmdir()
    st.pending.write_bytes(b"")
    bucket = moto_s3.bucket()
    code, doc, _err = push(st, template, moto_s3, bucket)
    assert (code, doc["error"]["verdict"]) == (6, "IO")
    assert doc["error"]["message"] == f"File exists: {st.pending}"
    assert moto_s3.versions(bucket) == {}
    st.pending.unlink()
    code, doc, _err = push(st, template, moto_s3, bucket)
    assert (code, len(doc["adopted"])) == (0, 0) and len(doc["uploaded"]) > 0


def test_push_refuses_a_sealed_file_changed_since_it_was_pinned(
    st: Store, template: tuple[Store, Path, Path], moto_s3: Moto, aws: dict[str, str]
) -> None:
    bucket = moto_s3.bucket()
    assert push(st, template, moto_s3, bucket)[0] == 0
    metadata = st.meta_path.read_bytes()
    st.meta_path.write_bytes(metadata.replace(b"{", b"{ ", 1))
    code, doc, _err = push(st, template, moto_s3, bucket)
    assert (code, doc["error"]["verdict"]) == (1, "TAMPERED")
    assert "acdkit-store.json is not the file pinned" in doc["error"]["message"]


def test_push_does_not_overwrite_another_stores_object_under_the_same_prefix(
    st: Store, template: tuple[Store, Path, Path], moto_s3: Moto, aws: dict[str, str]
) -> None:
    bucket = moto_s3.bucket()
    moto_s3.client().put_object(
        Bucket=bucket, Key="shared/acdkit-store.json", Body=b"another store's",
        ChecksumAlgorithm="SHA256",
        ObjectLockMode="GOVERNANCE", ObjectLockRetainUntilDate=datetime.now(UTC) + timedelta(1),
    )  # fmt: skip
    code, doc, _err = push(st, template, moto_s3, bucket, "--prefix", "shared")
    assert code == 2 and "holds other content" in doc["error"]["message"]
    assert len(moto_s3.versions(bucket)["shared/acdkit-store.json"]) == 1


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (("--bucket", "Bad_Bucket"), "--bucket must be"),
        (("--bucket", "ok-bucket", "--prefix", "../up"), "--prefix must be"),
        (("--bucket", "ok-bucket", "--mode", "soft"), "--mode must be"),
        (("--bucket", "ok-bucket", "--endpoint", "http://me:pw@127.0.0.1:9"), "user or password"),
        (("--bucket", "ok-bucket", "--endpoint", "ftp://127.0.0.1"), "http:// or https://"),
    ],
)
def test_push_bad_arguments_are_usage_errors(
    st: Store,
    template: tuple[Store, Path, Path],
    aws: dict[str, str],
    args: tuple[str, ...],
    said: str,
) -> None:
    code, doc, err = run(
        "storage", "push", str(st.root), "--custodian-key", str(template[2]), *args
    )
    assert code == 2 and said in doc["error"]["message"]
    assert "pw@" not in err + json.dumps(doc)  # a password in a URL is never echoed


def test_credentials_are_never_printed_logged_or_stored(
    st: Store, template: tuple[Store, Path, Path], moto_s3: Moto, aws: dict[str, str]
) -> None:
    bucket = moto_s3.bucket()
    outputs = []
    for args in (
        ["-vv", "storage", "push", str(st.root), "--bucket", bucket, "--endpoint", moto_s3.url,
         "--custodian-key", str(template[2]), "--mode", "governance", "--seal",
         "--key", str(template[1])],
        ["-vv", "verify", str(st.root), "--worm", "--endpoint", moto_s3.url, "--local-only"],
        ["-vv", "verify", str(st.root), "--worm", "--endpoint", closed_port(), "--s3-timeout", "1"],
        ["-vv", "storage", "selftest", "--bucket", bucket, "--endpoint", moto_s3.url],
    ):  # fmt: skip
        result = CliRunner().invoke(app, args)
        outputs.append(result.stdout + result.stderr)
    text = "\n".join(outputs)
    assert "pushed to" in text and "enforces Object Lock" in text
    for secret in (aws["AWS_SECRET_ACCESS_KEY"], aws["AWS_ACCESS_KEY_ID"]):
        assert secret not in text
        for path in st.root.rglob("*"):
            assert not path.is_file() or secret.encode() not in path.read_bytes(), path


@pytest.mark.parametrize(
    ("setting", "value", "named"),
    [
        ("AWS_PROFILE", "no-such-profile", "ProfileNotFound"),
        ("AWS_DEFAULT_REGION", "not a region!", "InvalidRegionError"),
        ("AWS_CONFIG_FILE", "[default\nregion = x\n", "ConfigParseError"),
    ],
)
def test_an_unusable_aws_configuration_is_a_usage_error_before_any_upload(
    st: Store,
    template: tuple[Store, Path, Path],
    moto_s3: Moto,
    aws: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    setting: str,
    value: str,
    named: str,
) -> None:
    # boto3 raised these while making its client, outside every S3 call: exit 70, "internal
    # error", from push, selftest and verify --worm alike
    bucket = moto_s3.bucket()
    if setting == "AWS_CONFIG_FILE":
        (tmp_path / "aws-config").write_text(value)
        value = str(tmp_path / "aws-config")
    monkeypatch.setenv(setting, value)
    for args in (
        ["storage", "push", str(st.root), "--bucket", bucket, "--endpoint", moto_s3.url,
         "--custodian-key", str(template[2])],
        ["storage", "selftest", "--bucket", bucket, "--endpoint", moto_s3.url],
    ):  # fmt: skip
        code, doc, err = run(*args)
        assert (code, doc["error"]["verdict"]) == (2, "USAGE"), (args, code, err)
        assert doc["error"]["message"] == f"the AWS configuration cannot be used: {named}"
        assert "AWS_PROFILE" in doc["error"]["hint"]
    monkeypatch.delenv(setting)
    assert moto_s3.versions(bucket) == {}  # refused before any upload
    push(st, template, moto_s3, bucket)
    monkeypatch.setenv(setting, value)
    code, report = worm_verify(st, moto_s3.url)
    check = next(c for c in report["checks"] if c["id"] == "14")
    assert (code, report["verdict"]) == (2, "USAGE")
    assert check["detail"] == f"the AWS configuration cannot be used: {named}"


# -- verify --worm -------------------------------------------------------------------------


def test_verify_worm_fetches_every_pinned_version(
    st: Store, template: tuple[Store, Path, Path], moto_s3: Moto, aws: dict[str, str]
) -> None:
    bucket = moto_s3.bucket()
    push(st, template, moto_s3, bucket)
    code, report = worm_verify(st, moto_s3.url)
    assert (code, report["verdict"]) == (0, "VERIFIED"), report["failure"]
    n = len(worm.pinned(st))
    check = next(c for c in report["checks"] if c["id"] == "14")
    assert check["status"] == "ok" and f"{n:,} pinned object versions" in check["detail"]
    assert f"{n:,} pinned S3 object versions verified online" in report["coverage"]
    assert report["facts"]["worm"]["newer"] == []
    # offline (no --worm), check 14 does not run and nothing is said of S3
    code, offline = cli_verify(st.root, "--allow-incomplete")
    assert code == 0 and not [c for c in offline["checks"] if c["id"] == "14"]


def test_verify_worm_without_any_pin_is_incomplete(
    st: Store, moto_s3: Moto, aws: dict[str, str]
) -> None:
    code, report = cli_verify(st.root, "--worm", "--endpoint", moto_s3.url)
    assert (code, report["verdict"], report["failure"]["check"]) == (3, "INCOMPLETE", "14")
    assert "nothing was checked" in report["failure"]["message"]


def test_verify_worm_on_a_bundle_is_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / "MANIFEST.note").write_text("x\n")
    result = CliRunner().invoke(app, ["verify", str(tmp_path), "--worm"])
    assert result.exit_code == 2 and "--worm applies to a store" in result.stderr


def test_verify_worm_content_changed_under_the_pinned_version_is_tampered(
    st: Store, template: tuple[Store, Path, Path], moto_s3: Moto, aws: dict[str, str]
) -> None:
    bucket = moto_s3.bucket()
    push(st, template, moto_s3, bucket)
    _i, pin, _b = next(p for p in worm.pinned(st) if p[1].key.endswith("net.parquet"))
    fake = moto_s3.stored(bucket, pin.key, pin.version_id)
    data = bytearray(fake.value)
    data[100] ^= 1
    fake.value = bytes(data)  # behind the protocol: what no S3 client can do
    code, report = worm_verify(st, moto_s3.url)
    assert (code, report["verdict"], report["failure"]["check"]) == (1, "TAMPERED", "14")
    assert f"{pin.key} version {pin.version_id}" in report["failure"]["message"]
    assert "does not hold the pinned bytes" in report["failure"]["message"]


def test_verify_worm_delete_marker_over_a_pinned_key_is_a_warning(
    st: Store, template: tuple[Store, Path, Path], moto_s3: Moto, aws: dict[str, str]
) -> None:
    bucket = moto_s3.bucket()
    push(st, template, moto_s3, bucket)
    _i, pin, _b = next(p for p in worm.pinned(st) if p[1].key.endswith("acdkit-store.json"))
    moto_s3.client().delete_object(Bucket=bucket, Key=pin.key)  # hides it; deletes nothing
    code, report = worm_verify(st, moto_s3.url)
    assert (code, report["verdict"]) == (0, "VERIFIED"), report["failure"]
    assert (
        f"s3://{bucket}/{pin.key}: newer version exists (a delete marker), pinned version verified"
        in report["warnings"]
    )


def test_verify_worm_after_declared_pruning_a_gone_record_file_of_a_pruned_segment_is_stated(
    st: Store,
    template: tuple[Store, Path, Path],
    moto_s3: Moto,
    aws: dict[str, str],
    tmp_path: Path,
) -> None:
    """Retention asks for the S3 copy of pruned records to go too (once its lock allows):
    a pinned version of a pruned segment's record file that is gone is stated, not TAMPERED;
    one that is there must still hold its pinned bytes; other files stay as strict."""
    bucket = moto_s3.bucket()
    push(st, template, moto_s3, bucket)
    first = st.segment_dirs()[0]
    end = SealInfo.from_entry((first / "seal.entry").read_bytes()).end_index
    root = keys.generate("worm-test/root")
    keys.write_private_key(root, tmp_path / "root.key", "root")
    code, _doc, err = run(
        "policy", "sign", str(st.root), "--root-key", str(tmp_path / "root.key"),
        "--prune-below", str(end),
    )  # fmt: skip
    assert code == 0, err
    code, doc, err = run("prune", str(st.root), "--key", str(template[1]))
    assert code == 0 and [s["segment"] for s in doc["segments"]] == [first.name], err
    pruned = [p for _i, p, _b in worm.pinned(st) if f"/{first.name}/" in p.key]
    tables = [p for p in pruned if p.key.endswith(".parquet")]
    assert tables and len(tables) < len(pruned)  # its seal.entry was pinned too
    rootv = root.verifier.vkey()
    code, report = worm_verify(st, moto_s3.url, "--root", rootv)
    assert (code, report["verdict"]) == (0, "VERIFIED"), report["failure"]
    assert report["facts"]["worm"]["pruned_kept"] == len(tables)
    gone = tables[0]
    # the pinned bytes of a pruned record file changed in S3: still TAMPERED
    fake = moto_s3.stored(bucket, gone.key, gone.version_id)
    original = fake.value
    fake.value = original[:-1] + bytes([original[-1] ^ 1])
    code, report = worm_verify(st, moto_s3.url, "--root", rootv)
    assert (code, report["verdict"], report["failure"]["check"]) == (1, "TAMPERED", "14")
    assert "does not hold the pinned bytes" in report["failure"]["message"]
    fake.value = original
    moto_s3.client().delete_object(
        Bucket=bucket, Key=gone.key, VersionId=gone.version_id, BypassGovernanceRetention=True
    )
    code, report = worm_verify(st, moto_s3.url, "--root", rootv)
    assert (code, report["verdict"]) == (0, "VERIFIED"), report["failure"]
    assert report["facts"]["worm"]["pruned_gone"] == [gone.key]
    assert report["facts"]["worm"]["objects"] == len(worm.pinned(st)) - 1
    check = next(c for c in report["checks"] if c["id"] == "14")
    assert (
        "1 pinned versions of record files of segments pruned by declared pruning (check 15) "
        "are gone from S3, as retention allows: not counted, not TAMPERED" in check["detail"]
    )
    assert not [w for w in report["warnings"] if gone.key in w]  # no "delete marker" warning
    # the pinned SEAL of that segment is no record file: it being gone stays TAMPERED
    seal_pin = next(p for p in pruned if p.key.endswith("seal.entry"))
    moto_s3.client().delete_object(
        Bucket=bucket, Key=seal_pin.key, VersionId=seal_pin.version_id,
        BypassGovernanceRetention=True,
    )  # fmt: skip
    code, report = worm_verify(st, moto_s3.url, "--root", rootv)
    assert (code, report["verdict"], report["failure"]["check"]) == (1, "TAMPERED", "14")
    assert f"{seal_pin.key} version {seal_pin.version_id}" in report["failure"]["message"]


def test_verify_worm_lapsed_lock_is_a_warning(moto_s3: Moto, aws: dict[str, str]) -> None:
    bucket = moto_s3.bucket()
    s3 = moto_s3.client()
    until = datetime.now(UTC) + timedelta(days=1)
    data = b"checkpoint bytes"
    version = s3.put_object(
        Bucket=bucket, Key="k", Body=data, ChecksumAlgorithm="SHA256",
        ObjectLockMode="GOVERNANCE", ObjectLockRetainUntilDate=until,
    )["VersionId"]  # fmt: skip
    pin = Pin("k", version, hashlib.sha256(data).digest(), len(data), "GOVERNANCE", 0, False, True)
    settings = S3Settings(moto_s3.url)
    assert check_pins([(5, pin, bucket)], settings).warnings == []
    later = (until + timedelta(days=1)).timestamp()
    found = check_pins([(5, pin, bucket)], settings, now_s=later)
    assert found.objects == 1 and found.warnings == [
        f"s3://{bucket}/k version {version}: its retention has lapsed; it verified, but "
        "nothing stops its deletion now"
    ]


@pytest.mark.parametrize("server", ["503", "403", "silent", "closed", "trickling"])
def test_verify_worm_server_failures_are_incomplete_in_bounded_time(
    st: Store, template: tuple[Store, Path, Path], moto_s3: Moto, aws: dict[str, str], server: str
) -> None:
    bucket = moto_s3.bucket()
    push(st, template, moto_s3, bucket)
    start = time.monotonic()
    if server in ("503", "403"):
        with answering(int(server), "AccessDenied" if server == "403" else "SlowDown") as url:
            code, report = worm_verify(st, url, "--s3-timeout", "1")
    elif server == "silent":
        with silent() as url:
            code, report = worm_verify(st, url, "--s3-timeout", "0.5")
    elif server == "trickling":  # a byte every 0.2 s: no single read ever times out
        with trickling() as url:
            code, report = worm_verify(st, url, "--s3-timeout", "1")
    else:
        code, report = worm_verify(st, closed_port(), "--s3-timeout", "1")
    elapsed = time.monotonic() - start
    check = next(c for c in report["checks"] if c["id"] == "14")
    assert check["status"] == "incomplete" and "did not run to its end" in check["detail"]
    said = "S3 refused access" if server == "403" else "could not be reached or failed"
    assert said in check["detail"]
    assert code == 3 and report["verdict"] == "INCOMPLETE"
    assert elapsed < 30
    if server == "trickling":
        assert "did not arrive within" in check["detail"] and "64 KiB/s" in check["detail"]


@pytest.mark.parametrize("code", ["InvalidAccessKeyId", "SignatureDoesNotMatch"])
def test_credentials_s3_does_not_take_are_usage_with_the_set_up_hint(
    st: Store, template: tuple[Store, Path, Path], moto_s3: Moto, aws: dict[str, str], code: str
) -> None:
    # they were IO (exit 6) without a hint, where missing credentials are USAGE with one
    push(st, template, moto_s3, moto_s3.bucket())
    with answering(403, code) as url:
        for args in (
            ["storage", "push", str(st.root), "--bucket", "evidence-lock", "--endpoint", url,
             "--custodian-key", str(template[2])],
            ["storage", "selftest", "--bucket", "evidence-lock", "--endpoint", url],
        ):  # fmt: skip
            exit_code, doc, _err = run(*args)
            assert (exit_code, doc["error"]["verdict"]) == (2, "USAGE")
            assert doc["error"]["message"] == (
                f"bucket evidence-lock: S3 GetBucketVersioning failed: {code} (HTTP 403)"
            )
            assert doc["error"]["hint"].startswith("configure S3 access as for the AWS CLI")
        exit_code, report = worm_verify(st, url)
    check = next(c for c in report["checks"] if c["id"] == "14")
    assert (exit_code, report["verdict"]) == (3, "INCOMPLETE")
    assert f"S3 could not be asked: S3 GetObject failed: {code} (HTTP 403)" in check["detail"]


@pytest.mark.parametrize("server", ["web page", "cut"])
def test_verify_worm_an_answer_that_is_not_the_pinned_version_in_full_is_incomplete(
    st: Store,
    template: tuple[Store, Path, Path],
    moto_s3: Moto,
    aws: dict[str, str],
    raw_server: Callable[[Callable[[socket.socket], None]], str],
    server: str,
) -> None:
    # both were TAMPERED ("does not hold the pinned bytes"): a --endpoint that is a web
    # server answering 200 to everything, and a transfer cut after 5 bytes
    push(st, template, moto_s3, moto_s3.bucket())
    first = worm.pinned(st)[0][1]
    if server == "web page":
        answer = b"HTTP/1.1 200 OK\r\nContent-Length: 13\r\n\r\n<html></html>"
    else:
        answer = (
            f"HTTP/1.1 200 OK\r\nContent-Length: {first.size}\r\n"
            f"x-amz-version-id: {first.version_id}\r\n\r\n".encode()
            + b"short"
        )
    url = raw_server(lambda conn: conn.sendall(answer)).removesuffix("/hook")
    code, report = worm_verify(st, url, "--s3-timeout", "2")
    check = next(c for c in report["checks"] if c["id"] == "14")
    assert (code, report["verdict"], check["status"]) == (3, "INCOMPLETE", "incomplete")
    assert f"{first.key} version {first.version_id}" in check["detail"]
    if server == "web page":
        assert "(it named no version): is --endpoint the S3 service" in check["detail"]
    else:
        said = f"(the answer ended after 5 of the {first.size:,} bytes it announced)"
        assert check["detail"].endswith(said)


# -- selftest ------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["governance", "compliance"])
def test_selftest_passes_on_a_back_end_that_enforces_locks(
    moto_s3: Moto, aws: dict[str, str], mode: str
) -> None:
    bucket = moto_s3.bucket()
    code, doc, _err = run(
        "storage", "selftest", "--bucket", bucket, "--endpoint", moto_s3.url, "--mode", mode
    )
    assert (code, doc["verdict"]) == (0, "OK"), doc
    steps = [s["step"] for s in doc["steps"]]
    assert steps == (
        ["1", "2", "3", "4", "6"] if mode == "governance" else ["1", "2", "3", "4", "5", "6"]
    )
    assert "AccessDenied" in doc["steps"][3]["detail"]
    versions = moto_s3.versions(bucket)
    assert versions == {doc["canary"]["key"]: [doc["canary"]["version_id"]]}


def test_selftest_fails_on_a_back_end_that_deletes_a_locked_version(
    moto_s3: Moto, aws: dict[str, str]
) -> None:
    bucket = moto_s3.bucket()
    with moto_s3.not_enforcing_locks():
        result = CliRunner().invoke(
            app, ["storage", "selftest", "--bucket", bucket, "--endpoint", moto_s3.url]
        )
    assert result.exit_code == 5
    assert "DELETED the locked canary version" in result.stderr
    assert moto_s3.versions(bucket) == {}  # it really was deleted


def test_selftest_fails_on_a_bucket_without_object_lock(moto_s3: Moto, aws: dict[str, str]) -> None:
    bucket = moto_s3.bucket(lock=False)
    code, doc, _err = run("storage", "selftest", "--bucket", bucket, "--endpoint", moto_s3.url)
    assert (code, doc["verdict"]) == (5, "POLICY")
    assert doc["steps"] == [
        {"step": "1", "status": "fail",
         "detail": f"bucket {bucket} has no Object Lock: its objects could be deleted"}
    ]  # fmt: skip


def test_selftest_with_the_server_down_is_io(aws: dict[str, str]) -> None:
    code, doc, _err = run(
        "storage",
        "selftest",
        "--bucket",
        "any-bucket",
        "--endpoint",
        closed_port(),
        "--s3-timeout",
        "1",
    )
    assert (code, doc["error"]["verdict"]) == (6, "IO")


# -- the receipt format (evidence format §16.7) ---------------------------------------------


def _receipt_body(signer: keys.Signer, origin: str, **change: Any) -> bytes:
    pin = Pin(
        "acdkit/x/checkpoints/1.checkpoint", "v1", bytes(32), 9, "COMPLIANCE", 10**18, True, True
    )
    custody = Custody(WORM_EVENT, 10**18, 0, "alice", 3, bytes(32), receipt=Receipt("bkt", (pin,)))
    return custody.sign(signer, origin)[1]


def _edit(body: bytes, fid: int, value: bytes | None, kind: TlvType | None = None) -> bytes:
    fields = {f: (TlvType(k), v) for f, k, v in parse_tlv(body)}
    if value is None:
        fields.pop(fid)
    else:
        fields[fid] = (kind or fields[fid][0], value)
    return b"".join(tlv(f, k, v) for f, (k, v) in sorted(fields.items()))


@pytest.mark.parametrize(
    ("fid", "value", "kind", "said"),
    [
        (14, b"Bad_Bucket", None, "bucket must be"),
        (15, b"", None, "lacks field"),  # see below: an empty key list
        (
            16,
            (2).to_bytes(4, "big") + b"v1" + (2).to_bytes(4, "big") + b"v2",
            None,
            "one value per key",
        ),
        (17, bytes(31), None, "one value per key"),
        (19, b"\x03" + bytes(9), None, "lock mode"),
        (19, b"\x01" + bytes(8) + b"\x02", None, "legal hold is not 0 or 1"),
        (20, b"\x05", None, "checksum flag"),
        (5, b"INC-1", TlvType.UTF8, "has an incident"),
        (18, None, None, "lacks field 18"),
    ],
)
def test_a_malformed_receipt_is_malformed(
    fid: int, value: bytes | None, kind: TlvType | None, said: str
) -> None:
    signer = keys.generate("alice")
    body = _receipt_body(signer, "o")
    if fid == 15:
        body = _edit(_edit(body, 15, b""), 16, b"")
        body = _edit(_edit(_edit(_edit(body, 17, b""), 18, b""), 19, b""), 20, b"")
        said = "names no object"
    else:
        body = _edit(body, fid, value, kind)
    with pytest.raises(MalformedError, match=said):
        parse_custody(body)


def test_receipt_fields_on_another_event_are_malformed() -> None:
    signer = keys.generate("alice")
    body = _receipt_body(signer, "o")
    with pytest.raises(MalformedError, match="belong to a worm-upload"):
        parse_custody(_edit(body, 2, b"export"))


def test_a_receipt_round_trips_and_its_signature_covers_every_pin(tmp_path: Path) -> None:
    signer = keys.generate("alice")
    body = _receipt_body(signer, "o")
    custody = parse_custody(body)
    assert custody.receipt is not None and custody.verifies("o")
    pin = custody.receipt.pins[0]
    assert (pin.mode, pin.legal_hold, pin.s3_checksum, pin.size) == ("COMPLIANCE", True, True, 9)
    other = replace(custody, receipt=Receipt("bkt", (replace(pin, version_id="v2"),)))
    assert not other.verifies("o")  # a version ID swapped: the signature fails
    assert endpoint_problem("https://s3.example.org:9000") is None


def test_verify_without_worm_loads_neither_boto3_nor_the_storage_commands(
    st: Store, tmp_path: Path
) -> None:
    lazy = ("boto3", "botocore", "acdkit.cli_storage", "acdkit.s3client", "acdkit.worm",
            "acdkit.wormcheck")  # fmt: skip
    script = (
        "import sys\n"
        "from acdkit import cli\n"
        f"sys.argv = ['acdkit', 'verify', {str(st.root)!r}, '--json', '--local-only']\n"
        "try:\n    cli.main()\nexcept SystemExit as exc:\n    code = exc.code\n"
        f"print(code, sorted(m for m in {lazy!r} if m in sys.modules), file=sys.stderr)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.stderr.strip().splitlines()[-1] == "0 []"


def test_the_worm_upload_vector_parses_verifies_and_hashes_as_the_spec_says() -> None:
    from acdkit.encoding import EntryType, entry
    from acdkit.merkle import leaf_hash

    vectors = json.loads((REPO / "docs/custody-vectors.json").read_text(encoding="utf-8"))
    vector = vectors["worm_upload"]
    body = bytes.fromhex(vector["body"])
    custody = parse_custody(body)
    assert custody.event == "worm-upload" and custody.verifies(vectors["origin"])
    assert custody.receipt is not None and custody.receipt.bucket == vector["bucket"]
    got = [
        {"key": p.key, "version_id": p.version_id, "sha256": p.sha256.hex(), "size": p.size,
         "mode": p.mode, "retain_until_ns": p.retain_until_ns, "legal_hold": p.legal_hold,
         "s3_checksum": p.s3_checksum}
        for p in custody.receipt.pins
    ]  # fmt: skip
    assert got == vector["objects"]
    assert leaf_hash(entry(EntryType.CUSTODY, body)).hex() == vector["leaf_hash"]
    spec = (REPO / "docs/evidence-format.md").read_text(encoding="utf-8")
    for value in (vector["signed_message_sha256"], vector["signature"], vector["leaf_hash"]):
        assert value in spec


def test_custody_show_lists_a_receipt_with_its_bucket_and_object_count(
    st: Store, template: tuple[Store, Path, Path], moto_s3: Moto, aws: dict[str, str]
) -> None:
    bucket = moto_s3.bucket()
    pushed = push(st, template, moto_s3, bucket)[1]
    code, doc, _err = run("custody", "show", str(st.root))
    assert code == 0
    [entry] = doc["entries"]
    assert (entry["event"], entry["bucket"], entry["objects"]) == (
        "worm-upload",
        bucket,
        len(pushed["uploaded"]),
    )
    assert entry["index"] is not None and entry["handler"] == "alice@example.org"
    code, pins, _err = run("storage", "pins", str(st.root), "--bucket", bucket)
    assert code == 0 and [p["key"] for p in pins["pins"]] == [p["key"] for p in pushed["uploaded"]]
    assert {p["version_id"] for p in pins["pins"]} == {p["version_id"] for p in pushed["uploaded"]}


def test_many_objects_are_pinned_in_several_receipts_each_under_the_body_limit(
    st: Store,
    template: tuple[Store, Path, Path],
    moto_s3: Moto,
    aws: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from acdkit import custodychain
    from acdkit.custody import MAX_BODY_BYTES

    monkeypatch.setattr(worm, "RECEIPT_BUDGET", 700)  # a few objects per entry
    bucket = moto_s3.bucket()
    code, doc, _err = push(st, template, moto_s3, bucket, "--prefix", "p" * 200)
    assert code == 0 and len(doc["queued"]) > 2
    receipts = [x for x in custodychain.read_logged(st) if x.custody.receipt is not None]
    assert len(receipts) == len(doc["queued"])
    assert all(len(x.body) <= MAX_BODY_BYTES for x in receipts)
    assert sum(len(x.custody.receipt.pins) for x in receipts) == len(doc["uploaded"])
    code, report = worm_verify(st, moto_s3.url)
    assert (code, report["verdict"]) == (0, "VERIFIED"), report["failure"]


def test_a_server_without_the_pinned_bucket_is_incomplete_not_tampered(
    moto_s3: Moto, aws: dict[str, str]
) -> None:
    """A wrong --endpoint: the receipts name the bucket, not the server; a bucket that holds
    locked versions cannot be deleted, so its absence says nothing of the evidence."""
    pin = Pin("k", "v1", bytes(32), 1, "COMPLIANCE", 0, False, True)
    with pytest.raises(IncompleteError, match="has no bucket evidence-nowhere"):
        check_pins([(5, pin, "evidence-nowhere")], S3Settings(moto_s3.url))


# -- bundles: the manifest lists the receipts, and so pins the version IDs (§3.8) ------------


@pytest.fixture
def pushed_bundle(
    st: Store,
    template: tuple[Store, Path, Path],
    moto_s3: Moto,
    aws: dict[str, str],
    tmp_path: Path,
) -> tuple[Store, Path]:
    from _evidence import TINY_WINDOW
    from acdkit import bundle

    push(st, template, moto_s3, moto_s3.bucket())
    out = tmp_path / "bundle"
    bundle.package(st, keys.load_signer(template[1]), "INC-1", TINY_WINDOW, out)
    return st, out


def _independent(target: Path, *args: str) -> tuple[int, dict[str, Any]]:
    tool = target / "tools" / "acdkit_verify.py"
    proc = subprocess.run(
        [sys.executable, "-I", str(tool), str(target), "--json", *args],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc.returncode, json.loads(proc.stdout)


def test_a_bundle_carries_the_receipts_and_both_verifiers_report_the_same_pins(
    pushed_bundle: tuple[Store, Path],
) -> None:
    st, out = pushed_bundle
    listed = (out / "MANIFEST.note").read_text()
    receipts = sorted(p.name for p in (out / "worm").iterdir())
    assert receipts and all(f" worm/{name}\n" in listed for name in receipts)
    expected = [
        {"index": i, "bucket": b, "key": p.key, "version_id": p.version_id,
         "sha256": p.sha256.hex(), "size": p.size}
        for i, p, b in worm.pinned(st)
    ]  # fmt: skip
    custodian = ("--custodian", st.root.joinpath("keys/custodians.vkey").read_text().strip())
    code, ours = cli_verify(out, *custodian)
    assert (code, ours["verdict"]) == (0, "VERIFIED"), ours["failure"]
    assert ours["facts"]["worm"]["pins"] == expected
    check = next(c for c in ours["checks"] if c["id"] == "14")
    assert f"pin {len(expected)} S3 object versions" in check["detail"]
    code, theirs = _independent(out, *custodian)
    assert (code, theirs["verdict"]) == (0, "VERIFIED"), theirs["failure"]
    assert theirs["facts"]["worm"] == {"receipts": len(receipts), "pins": expected}
    assert "NOT fetched" in theirs["coverage"] and "not fetched" in ours["coverage"]


def test_a_receipt_edited_in_a_bundle_is_tampered_for_both_verifiers(
    pushed_bundle: tuple[Store, Path], template: tuple[Store, Path, Path]
) -> None:
    from _evidence import reprove_bundle
    from acdkit.proof import TlogProof

    _st, out = pushed_bundle
    path = next((out / "worm").iterdir())
    proof = TlogProof.parse(path.read_bytes())
    data = proof.extra or b""
    custody = parse_custody(data[38:])
    assert custody.receipt is not None
    version = custody.receipt.pins[0].version_id.encode()
    forged = data.replace(version, version[:-1] + (b"0" if version[-1:] != b"0" else b"1"), 1)
    # an insider with the sealer key re-proves everything: the custodian's signature remains
    reprove_bundle(out, {proof.index: forged}, keys.load_signer(template[1]))
    code, ours = cli_verify(out)
    assert (code, ours["verdict"], ours["failure"]["check"]) == (1, "TAMPERED", "14")
    code, theirs = _independent(out)
    assert (code, theirs["verdict"], theirs["failure"]["check"]) == (1, "TAMPERED", "14")


def test_a_pushed_store_gets_the_same_offline_verdict_from_the_independent_verifier(
    st: Store, template: tuple[Store, Path, Path], moto_s3: Moto, aws: dict[str, str]
) -> None:
    # worm-upload receipts are CUSTODY entries with fields of their own (§16.7): the
    # independent verifier's store mode must read them as acdkit does
    from test_independent_verifier import run_independent

    bucket = moto_s3.bucket()
    code, pushed, _ = push(st, template, moto_s3, bucket)
    assert code == 0 and pushed["uploaded"]
    sealed = [index for index, _pin, _bucket in worm.pinned(st)]
    assert len(sealed) == len(pushed["uploaded"]) and None not in sealed  # --seal sealed them
    tool = Path(__file__).resolve().parents[1] / "src/acdkit/_data/acdkit_verify.py"
    vkey = st.verifier().vkey()
    code, ours = cli_verify(st.root, "--key", vkey, "--allow-incomplete")
    theirs = run_independent(tool, st.root, "--key", vkey, "--allow-incomplete")
    assert (theirs.code, theirs.verdict) == (code, ours["verdict"]) == (0, "VERIFIED")


@pytest.mark.parametrize("command", ["push", "selftest"])
def test_storage_commands_end_in_bounded_time_against_a_server_that_trickles(
    st: Store, template: tuple[Store, Path, Path], aws: dict[str, str], command: str
) -> None:
    # botocore's read time-out bounds each socket read: a byte every 0.2 s held `storage
    # push` (a cron job) without end; now each S3 call has a deadline of its own
    start = time.monotonic()
    with trickling() as url:
        if command == "push":
            code, doc, _err = run(
                "storage", "push", str(st.root), "--bucket", "evidence-lock", "--endpoint", url,
                "--custodian-key", str(template[2]), "--s3-timeout", "1",
            )  # fmt: skip
        else:
            code, doc, _err = run(
                "storage",
                "selftest",
                "--bucket",
                "evidence-lock",
                "--endpoint",
                url,
                "--s3-timeout",
                "1",
            )
    elapsed = time.monotonic() - start
    assert elapsed < 30, elapsed
    assert code == 6, (code, doc)
    assert "within the deadline" in json.dumps(doc)
