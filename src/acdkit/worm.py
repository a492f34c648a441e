"""WORM copies of a store on S3 with Object Lock: upload and pin, list the pins, selftest.

`push` uploads the store's sealed files (segment files, checkpoints, anchor tokens and the
store metadata) to a bucket with Object Lock, each under a retention (and optionally a
legal hold), and logs what S3 now holds as signed `worm-upload` CUSTODY entries: key,
version ID, SHA-256, size, lock (docs/evidence-format.md §16.7).  A rerun uploads nothing
that is pinned already, and adopts an object that an interrupted run had uploaded but not
logged, once S3 shows it locked and with the same SHA-256.

WORM storage prevents deletion; it proves nothing to a third party (docs/threat-model.md):
the proof stays the signed log, and `acdkit verify --worm` compares the two.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, BinaryIO

from acdkit import custodychain
from acdkit._files import MIB, read_bounded
from acdkit.custody import MAX_BODY_BYTES, WORM_EVENT, Custody
from acdkit.errors import InputIOError, PolicyError, TamperedError, UsageError
from acdkit.keys import Signer
from acdkit.note import Checkpoint, SignedNote
from acdkit.s3client import S3Failure, S3Settings, call, client
from acdkit.sealinfo import SealInfo
from acdkit.store import TMP_PREFIX, Store
from acdkit.wormpin import Pin, Receipt, bucket_problem, key_problem

__all__ = [
    "Lock",
    "PushReport",
    "SelftestReport",
    "Target",
    "pinned",
    "push",
    "selftest",
    "store_files",
]

log = logging.getLogger(__name__)

SEGMENT_FILES = ("net.parquet", "dns.parquet", "edr.parquet", "entries.bin", "seal.entry")
MAX_OBJECT_BYTES = 5 << 30  # one PUT; larger files would need multipart (not supported)
MAX_PREFIX_BYTES = 256
CHUNK = MIB
# a receipt entry stays well under the CUSTODY body limit: the other fields take < 1 KiB
RECEIPT_BUDGET = MAX_BODY_BYTES - 1024


@dataclass(frozen=True)
class Target:
    """A bucket and the key prefix the store's files go under ("" or ending in "/")."""

    bucket: str
    prefix: str

    @classmethod
    def of(cls, bucket: str, prefix: str | None, store: Store | None = None) -> Target:
        problem = bucket_problem(bucket)
        if problem:
            raise UsageError(f"--bucket {problem}")
        if prefix is None:
            prefix = f"acdkit/{store.meta()['log_id']}/" if store is not None else ""
        if prefix and not prefix.endswith("/"):
            prefix += "/"
        if len(prefix) > MAX_PREFIX_BYTES or (prefix and key_problem(prefix + "x")):
            raise UsageError(
                f"--prefix must be at most {MAX_PREFIX_BYTES} of letters, digits and "
                "!_.*'()/-, without empty, '.' or '..' parts"
            )
        return cls(bucket, prefix)


@dataclass(frozen=True)
class Lock:
    """The Object Lock retention every uploaded object gets."""

    mode: str  # GOVERNANCE | COMPLIANCE
    retain_days: int
    legal_hold: bool = False

    def until(self, now_s: float) -> datetime:
        # whole seconds: S3 keeps retain-until dates to the second
        moment = datetime.fromtimestamp(int(now_s), UTC)
        return moment + timedelta(days=self.retain_days)


@dataclass
class PushReport:
    target: Target
    uploaded: list[Pin] = field(default_factory=list)
    adopted: list[Pin] = field(default_factory=list)  # uploaded by an interrupted run
    already: int = 0  # pinned by an earlier push
    queued: list[str] = field(default_factory=list)  # pending/ names of the entries
    checkpoint: int = 0


@dataclass
class SelftestReport:
    bucket: str
    key: str = ""
    version_id: str = ""
    steps: list[tuple[str, str, str]] = field(default_factory=list)  # (step, ok|fail, text)

    @property
    def passed(self) -> bool:
        return all(status == "ok" for _step, status, _text in self.steps)


# -- what is uploaded ----------------------------------------------------------------------


def store_files(store: Store) -> list[tuple[str, Path]]:
    """(path relative to the store, file) of every sealed file a WORM copy holds.

    Only files written once: the store metadata, the files of segments whose checkpoint
    exists, the checkpoints, the anchor tokens.  Never ``segment.key`` (the record salts'
    secret), keys, bookkeeping or anything queued.
    """
    out = [("acdkit-store.json", store.meta_path)]
    for seg in store.segment_dirs():
        info = SealInfo.from_entry(read_bounded(seg / "seal.entry", MIB, "SEAL entry"))
        if not store.checkpoint_path(info.end_index).is_file():
            break  # an interrupted seal: not evidence yet
        for name in SEGMENT_FILES:
            if (seg / name).is_file():
                out.append((f"segments/{seg.name}/{name}", seg / name))
    out += [(f"checkpoints/{p.name}", p) for p in store.checkpoint_files()]
    if store.anchors.is_dir():
        out += [(f"anchors/{p.name}", p) for p in sorted(store.anchors.glob("*.tsr"))]
    return out


def _digest(path: Path) -> tuple[bytes, int]:
    sha, size = hashlib.sha256(), 0
    with path.open("rb") as fh:
        while chunk := fh.read(CHUNK):
            sha.update(chunk)
            size += len(chunk)
    return sha.digest(), size


def pinned(store: Store, bucket: str | None = None) -> list[tuple[int | None, Pin, str]]:
    """(leaf index or None if queued, pin, bucket) of every object the store's worm-upload
    entries pin, sealed ones first; each signature checked (TAMPERED otherwise)."""
    out = []
    for logged in custodychain.read_logged(store):
        receipt = logged.custody.receipt
        if receipt is None or (bucket is not None and receipt.bucket != bucket):
            continue
        out += [(logged.index, pin, receipt.bucket) for pin in receipt.pins]
    return out


# -- push ----------------------------------------------------------------------------------


def _newest_checkpoint(store: Store) -> tuple[int, bytes]:
    files = store.checkpoint_files()
    if not files:
        raise UsageError("nothing is sealed in this store yet: there is nothing to upload")
    cp = Checkpoint.from_text(SignedNote.parse(read_bounded(files[-1], MIB, "checkpoint")).text)
    return cp.size, cp.root


def push(
    store: Store,
    target: Target,
    lock: Lock,
    custodian: Signer,
    handler: str,
    settings: S3Settings,
    s3: Any = None,
    now: Callable[[], float] = time.time,
) -> PushReport:
    """Upload what is not pinned yet, then queue a signed receipt per batch of objects.

    Each batch's entry is queued as soon as its objects are up, so a run killed half way
    loses at most the receipts of one batch, and the next run adopts those objects.
    """
    size, root = _newest_checkpoint(store)
    report = PushReport(target, checkpoint=size)
    _probe(store, custodian, handler, size, root, target)
    s3 = s3 if s3 is not None else client(settings)
    _check_bucket(s3, target.bucket)
    known = {pin.key: pin for _i, pin, _b in pinned(store, target.bucket)}
    batch: list[Pin] = []
    for rel, path in store_files(store):
        key = target.prefix + rel
        sha, length = _digest(path)
        earlier = known.get(key)
        if earlier is not None:
            if earlier.sha256 != sha:
                raise TamperedError(
                    f"{rel} is not the file pinned as {earlier.name} in s3://{target.bucket}: "
                    "a sealed file changed after it was uploaded"
                )
            report.already += 1
            continue
        pin, fresh = _put(s3, target.bucket, key, path, sha, length, lock, now())
        (report.uploaded if fresh else report.adopted).append(pin)
        batch.append(pin)
        if len(batch) > 1 and _receipt_bytes(batch) > RECEIPT_BUDGET:
            _queue(store, custodian, handler, size, root, target.bucket, batch[:-1], report, now)
            batch = batch[-1:]
    if batch:
        _queue(store, custodian, handler, size, root, target.bucket, batch, report, now)
    return report


def _probe(
    store: Store, custodian: Signer, handler: str, size: int, root: bytes, target: Target
) -> None:
    """Refuse before any upload what would refuse the receipts after it: a custodian key
    the store does not list, a bad handler (the same checks as the real entry's)."""
    dummy = Pin(target.prefix + "probe", "probe", bytes(32), 0, "COMPLIANCE", 0, False, False)
    probe = Custody(WORM_EVENT, time.time_ns(), 0, handler, size, root)
    custodychain.signed_entry(
        store, custodian, replace(probe, receipt=Receipt(target.bucket, (dummy,)))
    )
    # and a store that cannot queue them (a read-only mount, a full disk): OSError, exit 6
    store.pending.mkdir(mode=0o700, exist_ok=True)
    trial = store.pending / f"{TMP_PREFIX}{uuid.uuid4().hex}-probe"
    trial.write_bytes(bytes(1024))
    trial.unlink()


def _receipt_bytes(pins: list[Pin]) -> int:
    return sum(len(p.key) + len(p.version_id) + 8 + 32 + 8 + 10 + 1 for p in pins)


def _queue(
    store: Store,
    custodian: Signer,
    handler: str,
    size: int,
    root: bytes,
    bucket: str,
    pins: list[Pin],
    report: PushReport,
    now: Callable[[], float],
) -> None:
    entry = Custody(
        WORM_EVENT,
        int(now() * 1e9),
        0,
        handler,
        size,
        root,
        receipt=Receipt(bucket, tuple(pins)),
    )
    path, _signed = custodychain.record(store, custodian, entry)
    report.queued.append(path.name)


def _check_bucket(s3: Any, bucket: str) -> None:
    """The bucket exists, keeps versions and has Object Lock on (POLICY otherwise)."""
    try:
        versioning = call(s3, "get_bucket_versioning", Bucket=bucket)
        lock = call(s3, "get_object_lock_configuration", Bucket=bucket)
    except S3Failure as exc:
        if exc.code == "ObjectLockConfigurationNotFoundError":
            raise PolicyError(
                f"bucket {bucket} has no Object Lock: its objects could be deleted",
                hint="create the bucket with Object Lock enabled (it cannot be added later "
                "on every back end), then `acdkit storage selftest`",
            ) from None
        raise exc.as_error(f"bucket {bucket}") from None
    enabled = lock.get("ObjectLockConfiguration", {}).get("ObjectLockEnabled")
    if versioning.get("Status") != "Enabled" or enabled != "Enabled":
        raise PolicyError(
            f"bucket {bucket} does not keep versions under Object Lock "
            f"(versioning {versioning.get('Status', 'off')}, Object Lock {enabled or 'off'})"
        )


def _put(
    s3: Any,
    bucket: str,
    key: str,
    path: Path,
    sha: bytes,
    size: int,
    lock: Lock,
    now_s: float,
) -> tuple[Pin, bool]:
    """The pin of ``key``: the current version when S3 holds these bytes locked already
    (an interrupted run uploaded it), else a fresh upload; (pin, uploaded now)."""
    checksum = base64.b64encode(sha).decode()
    current = _head(s3, bucket, key)
    if current is not None:
        if current.get("ChecksumSHA256") == checksum and current.get("ObjectLockMode"):
            return _pin(key, current, sha, size, bucket), False
        if current.get("ChecksumSHA256") not in (None, checksum):
            raise UsageError(
                f"s3://{bucket}/{key} holds other content: another store under this prefix?",
                hint="give each store its own --prefix (the default is acdkit/<log ID>/)",
            )
    if size > MAX_OBJECT_BYTES:
        raise UsageError(f"{path} is over 5 GiB: one PUT cannot take it (multipart is not done)")
    args: dict[str, Any] = {
        "Bucket": bucket,
        "Key": key,
        "ChecksumAlgorithm": "SHA256",
        "ChecksumSHA256": checksum,
        "ContentLength": size,
        "ObjectLockMode": lock.mode,
        "ObjectLockRetainUntilDate": lock.until(now_s),
    }
    if lock.legal_hold:
        args["ObjectLockLegalHoldStatus"] = "ON"
    with path.open("rb") as body:
        answer = _put_object(s3, args, body, key)
    version = answer.get("VersionId")
    if not version:
        raise PolicyError(f"S3 gave {key} no version ID: the bucket does not keep versions")
    if answer.get("ChecksumSHA256") not in (None, checksum):
        raise InputIOError(f"S3 reports another SHA-256 for {key} than the one sent")
    # what S3 says it holds under that version, lock included: a back end that takes lock
    # headers and ignores them is caught here (and by `storage selftest`)
    held = _head(s3, bucket, key, version)
    if held is None:
        raise InputIOError(f"S3 does not find version {version} of {key} just written")
    return _pin(key, held, sha, size, bucket, version), True


def _put_object(s3: Any, args: dict[str, Any], body: BinaryIO, key: str) -> Any:
    try:
        return call(s3, "put_object", Body=body, **args)
    except S3Failure as exc:
        raise exc.as_error(f"upload of {key}") from None


def _head(s3: Any, bucket: str, key: str, version: str | None = None) -> Any:
    extra = {"VersionId": version} if version else {}
    try:
        return call(s3, "head_object", Bucket=bucket, Key=key, ChecksumMode="ENABLED", **extra)
    except S3Failure as exc:
        if exc.kind == "missing" and exc.code != "NoSuchBucket":
            return None
        raise exc.as_error(f"looking up {key}") from None


def _pin(
    key: str, head: Any, sha: bytes, size: int, bucket: str, version: str | None = None
) -> Pin:
    mode = head.get("ObjectLockMode")
    until = head.get("ObjectLockRetainUntilDate")
    if mode not in ("GOVERNANCE", "COMPLIANCE") or not isinstance(until, datetime):
        raise PolicyError(
            f"s3://{bucket}/{key} was stored without Object Lock retention: the back end "
            "ignores lock headers",
            hint="run `acdkit storage selftest`; use a back end that enforces Object Lock",
        )
    if int(head.get("ContentLength", -1)) != size:
        raise InputIOError(f"S3 holds {key} with another size than the file uploaded")
    return Pin(
        key=key,
        version_id=str(version or head.get("VersionId") or ""),
        sha256=sha,
        size=size,
        mode=mode,
        retain_until_ns=int(until.timestamp()) * 10**9,
        legal_hold=head.get("ObjectLockLegalHoldStatus") == "ON",
        s3_checksum=head.get("ChecksumSHA256") is not None,
    )


# -- selftest ------------------------------------------------------------------------------


def selftest(
    bucket: str,
    settings: S3Settings,
    mode: str = "GOVERNANCE",
    retain_days: int = 1,
    s3: Any = None,
    now: Callable[[], float] = time.time,
) -> SelftestReport:
    """Write a canary under lock and try to delete that version: a back end that lets the
    delete through does not enforce Object Lock (seaweedfs #11333), and fails.

    1. The bucket keeps versions and has Object Lock enabled.
    2. A canary object is written with a retention of ``mode``; S3 gives it a version.
    3. S3 reports that version locked, with the mode and date asked for.
    4. Deleting that version (without bypassing governance) is refused: AccessDenied.
    5. In compliance mode, deleting it while asking to bypass governance is refused too.
    6. The canary version is still there, its bytes unchanged.
    """
    report = SelftestReport(bucket)
    s3 = s3 if s3 is not None else client(settings)
    for step in _selftest_steps(report, s3, Lock(mode, retain_days), now()):
        if step[1] != "ok":
            report.steps.append(step)
            break
        report.steps.append(step)
    return report


def _selftest_steps(
    report: SelftestReport, s3: Any, lock: Lock, now_s: float
) -> Iterator[tuple[str, str, str]]:
    bucket = report.bucket
    # 1
    try:
        _check_bucket(s3, bucket)
    except PolicyError as exc:
        yield ("1", "fail", exc.message)
        return
    yield ("1", "ok", f"bucket {bucket} keeps versions and has Object Lock enabled")
    # 2
    data = f"acdkit selftest canary {uuid.uuid4()}\n".encode()
    report.key = f"acdkit-selftest/{uuid.uuid4()}"
    until = lock.until(now_s)
    answer = _canary_call(
        s3,
        "put_object",
        Bucket=bucket,
        Key=report.key,
        Body=data,
        # S3 takes lock headers only with a checksum (Content-MD5 or x-amz-checksum-*)
        ChecksumAlgorithm="SHA256",
        ChecksumSHA256=base64.b64encode(hashlib.sha256(data).digest()).decode(),
        ObjectLockMode=lock.mode,
        ObjectLockRetainUntilDate=until,
    )
    report.version_id = str(answer.get("VersionId") or "")
    if not report.version_id:
        yield ("2", "fail", "S3 gave the canary no version ID")
        return
    yield ("2", "ok", f"canary {report.key} written, version {report.version_id}")
    # 3
    head = _canary_call(
        s3, "head_object", Bucket=bucket, Key=report.key, VersionId=report.version_id
    )
    held = head.get("ObjectLockRetainUntilDate")
    if head.get("ObjectLockMode") != lock.mode or not isinstance(held, datetime) or held < until:
        yield ("3", "fail", f"S3 does not report the canary locked in {lock.mode} mode")
        return
    yield ("3", "ok", f"S3 reports it locked in {lock.mode} mode until {held.isoformat()}")
    # 4, 5
    attempts: list[tuple[str, dict[str, Any]]] = [("4", {})] + (
        [("5", {"BypassGovernanceRetention": True})] if lock.mode == "COMPLIANCE" else []
    )
    for step, extra in attempts:
        yield _delete_refused(s3, report, step, extra)
    # 6
    body = _canary_call(
        s3, "get_object", Bucket=bucket, Key=report.key, VersionId=report.version_id
    )
    if body["Body"].read(len(data) + 1) != data:
        yield ("6", "fail", "the canary version's bytes changed")
        return
    yield ("6", "ok", "the canary version is still there, unchanged")


def _delete_refused(
    s3: Any, report: SelftestReport, step: str, extra: dict[str, Any]
) -> tuple[str, str, str]:
    how = "asking to bypass governance" if extra else "as a plain delete"
    try:
        call(
            s3,
            "delete_object",
            Bucket=report.bucket,
            Key=report.key,
            VersionId=report.version_id,
            **extra,
        )
    except S3Failure as exc:
        if exc.kind == "denied":
            return (step, "ok", f"deleting the locked version {how} was refused: {exc.code}")
        if exc.kind == "refused":  # refused all the same; step 6 checks the version is there
            return (
                step,
                "ok",
                f"deleting the locked version {how} was refused with {exc.code} "
                "(S3 itself answers AccessDenied)",
            )
        raise exc.as_error("selftest delete") from None
    return (
        step,
        "fail",
        f"the back end DELETED the locked canary version ({how}): it accepts Object Lock "
        "without enforcing it (compare seaweedfs #11333)",
    )


def _canary_call(s3: Any, operation: str, **kwargs: Any) -> Any:
    try:
        return call(s3, operation, **kwargs)
    except S3Failure as exc:
        raise exc.as_error(f"selftest {operation}") from None
