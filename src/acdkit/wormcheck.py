"""`acdkit verify STORE --worm`: the pinned S3 object versions, fetched and compared online.

Only on request (EVIDENCE §3.11 check 10; store check 14 in docs/evidence-format.md §8):
each object version a sealed worm-upload CUSTODY entry pins is fetched by its version ID,
streamed and hashed; its size and SHA-256 must be the pinned ones.  Then the key's current
version is looked up: a newer version (or a delete marker) is a warning, since the pinned
one was verified.  A version that is gone, or holds other bytes, is TAMPERED.  A server
that cannot be reached, times out or answers 5xx makes the check INCOMPLETE, never
TAMPERED (EVIDENCE §4.2-8); so does a refusal of access, which says nothing of the data.
A version of a record file of a segment that check 15 found pruned by a declared PRUNE
entry (format §17) may be gone: retention asks for that copy to go too, so that is stated,
not TAMPERED; one that is there must still hold its pinned bytes.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from typing import Any

from acdkit.errors import IncompleteError, TamperedError
from acdkit.s3client import S3Failure, S3Settings, call, client
from acdkit.wormpin import Pin

__all__ = ["WormFindings", "check_pins"]

CHUNK = 1 << 20
# a pinned version must arrive at this average rate at least (after --s3-timeout of grace):
# --s3-timeout bounds each socket read, so a server that trickles a byte per read would
# otherwise hold the check for as long as it likes
MIN_RATE = 64 << 10  # bytes per second


@dataclass
class WormFindings:
    objects: int = 0
    bytes: int = 0
    buckets: set[str] = field(default_factory=set)
    newer: list[str] = field(default_factory=list)  # keys whose current version is not pinned
    warnings: list[str] = field(default_factory=list)
    pruned_kept: int = 0  # versions of pruned record files that S3 still holds (verified)
    pruned_gone: list[str] = field(default_factory=list)  # keys of such versions now gone

    def detail(self, where: str) -> str:
        buckets = ", ".join(f"s3://{b}" for b in sorted(self.buckets)) or "S3"
        text = (
            f"{self.objects:,} pinned object versions ({self.bytes:,} bytes) in {buckets} "
            f"fetched from {where}: each has its pinned size and SHA-256"
        )
        if self.pruned_kept:
            text += (
                f"; {self.pruned_kept:,} of them hold records of segments pruned from the "
                "store (declared pruning, check 15): S3 keeps them until their lock lapses"
            )
        if self.pruned_gone:
            text += (
                f"; {len(self.pruned_gone):,} pinned versions of record files of segments "
                "pruned by declared pruning (check 15) are gone from S3, as retention allows: "
                "not counted, not TAMPERED"
            )
        return text


def check_pins(
    pins: list[tuple[int, Pin, str]],
    settings: S3Settings,
    s3: Any = None,
    now_s: float | None = None,
    pruned: dict[str, bytes] | None = None,
) -> WormFindings:
    """Check each (leaf index, pin, bucket), in leaf order.

    ``pruned`` maps ``segments/<name>/<table>.parquet`` of each segment that check 15 found
    pruned to the SHA-256 its SEAL names: a pin of such a file (under any prefix) with that
    SHA-256 may be gone (counted in ``pruned_gone``, no TAMPERED, no step 4).

    1. The pinned version is fetched by its version ID (TAMPERED if it is gone or a delete
       marker), streamed no further than its pinned size plus one byte.
    2. Its size and SHA-256 are the pinned ones (TAMPERED naming key and version).
    3. S3's lock on it still holds: retention mode and date, or a legal hold (a warning
       when it has lapsed or was removed, e.g. by a governance bypass).
    4. The key's current version is one that is pinned; a newer one, or a delete marker,
       is a warning: "newer version exists, pinned version verified".
    Network failures, timeouts, 5xx answers and refused access raise INCOMPLETE.
    """
    s3 = s3 if s3 is not None else client(settings)
    found = WormFindings()
    versions: dict[tuple[str, str], set[str]] = {}
    for _index, pin, bucket in pins:
        versions.setdefault((bucket, pin.key), set()).add(pin.version_id)
    now = time.time() if now_s is None else now_s
    released: set[tuple[str, str]] = set()
    for index, pin, bucket in pins:
        if _of_pruned(pin, pruned or {}):
            released.add((bucket, pin.key))
            try:
                head = _fetch(s3, bucket, pin, index, settings)  # 1, 2
            except _Gone:
                found.pruned_gone.append(pin.key)
                continue
            found.pruned_kept += 1
        else:
            head = _fetch(s3, bucket, pin, index, settings)  # 1, 2
        _lock_warning(found, bucket, pin, head, now)  # 3
        found.objects += 1
        found.bytes += pin.size
        found.buckets.add(bucket)
    for (bucket, key), pinned in versions.items():  # 4
        if (bucket, key) in released:
            continue
        current = _current(s3, bucket, key, settings)
        if current not in pinned:
            what = "a delete marker" if current is None else f"version {current}"
            found.newer.append(key)
            found.warnings.append(
                f"s3://{bucket}/{key}: newer version exists ({what}), pinned version verified"
            )
    return found


class _Gone(TamperedError):
    """A pinned version that S3 no longer has."""


def _of_pruned(pin: Pin, pruned: dict[str, bytes]) -> bool:
    """Whether ``pin`` is a record file of a pruned segment: the key ends in its path in the
    store (the push prefix is not logged) and the pinned SHA-256 is the one its SEAL names."""
    return pruned.get("/".join(pin.key.split("/")[-3:])) == pin.sha256


def _unreachable(exc: S3Failure, settings: S3Settings) -> IncompleteError:
    reason = {
        "transient": f"S3 at {settings.where} could not be reached or failed",
        "denied": "S3 refused access (the credentials lack s3:GetObjectVersion or s3:ListBucket?)",
        "setup": "S3 could not be asked",
    }.get(exc.kind, "S3 refused the request")
    return IncompleteError(
        f"the WORM check did not run to its end: {reason}: {exc.text}",
        hint="nothing is known of the pinned objects not yet checked; run it again later",
    )


def _fetch(s3: Any, bucket: str, pin: Pin, index: int, settings: S3Settings) -> Any:
    where = f"s3://{bucket}/{pin.key} version {pin.version_id} (pinned at index {index})"
    try:
        answer = call(s3, "get_object", Bucket=bucket, Key=pin.key, VersionId=pin.version_id)
    except S3Failure as exc:
        if exc.code == "NoSuchBucket":
            # a bucket that holds locked versions cannot be deleted: a wrong --endpoint is
            # far likelier than an attack, and a false TAMPERED costs the evidence its trust
            raise IncompleteError(
                f"the WORM check did not run to its end: S3 at {settings.where} has no bucket "
                f"{bucket} (of {where})",
                hint="check --endpoint: the receipts name the bucket, not the server",
            ) from None
        if exc.kind == "missing" or exc.delete_marker:
            raise _Gone(f"{where} is gone ({exc.code}): a pinned version was deleted") from None
        raise _unreachable(exc, settings) from None
    named = answer.get("VersionId")
    if named != pin.version_id:
        # S3 names the version it sends; a server that names none or another (no S3, or
        # no versioning) says nothing of the pinned one, and a false TAMPERED costs trust
        answer["Body"].close()
        other = f"it named version {str(named)[:64]!r}" if named else "it named no version"
        raise IncompleteError(
            f"the WORM check did not run to its end: S3 at {settings.where} did not answer "
            f"with {where} ({other}): is --endpoint the S3 service that holds the bucket?"
        )
    sha, size = hashlib.sha256(), 0
    body = answer["Body"]
    # read1 (urllib3 2) returns what one socket read gives, so the deadline is looked at
    # between reads; body.read(n) would wait for all n bytes however slowly they come
    read = getattr(getattr(body, "_raw_stream", None), "read1", None) or body.read
    allowed = settings.timeout_s + pin.size / MIN_RATE
    deadline = time.monotonic() + allowed
    try:
        while size <= pin.size:
            if time.monotonic() > deadline:
                raise IncompleteError(
                    f"the WORM check did not run to its end: S3 at {settings.where} could not "
                    f"be reached or failed: {where} did not arrive within {allowed:.1f} s "
                    f"({size:,} of {pin.size:,} bytes; at least {MIN_RATE >> 10} KiB/s is "
                    "required)"
                )
            chunk = read(min(CHUNK, pin.size + 1 - size))
            if not chunk:
                break
            sha.update(chunk)
            size += len(chunk)
    except IncompleteError:
        raise
    except Exception as exc:  # a read cut by the network: botocore and urllib3 both raise
        raise IncompleteError(
            f"the WORM check did not run to its end: reading {where} failed ({type(exc).__name__})"
        ) from None
    finally:
        body.close()
    announced = answer.get("ContentLength")
    if isinstance(announced, int) and size < min(announced, pin.size + 1):
        # the connection ended before the bytes S3 announced: a cut transfer, not a verdict
        raise IncompleteError(
            f"the WORM check did not run to its end: reading {where} failed (the answer "
            f"ended after {size:,} of the {announced:,} bytes it announced)"
        )
    if size != pin.size or sha.digest() != pin.sha256:
        got = f"{size:,}+" if size > pin.size else f"{size:,}"
        raise TamperedError(
            f"{where} does not hold the pinned bytes: {got} bytes with SHA-256 "
            f"{sha.hexdigest()[:16]}…, pinned {pin.size:,} bytes with {pin.sha256.hex()[:16]}…"
        )
    return answer


def _lock_warning(found: WormFindings, bucket: str, pin: Pin, head: Any, now: float) -> None:
    until = head.get("ObjectLockRetainUntilDate")
    held = head.get("ObjectLockLegalHoldStatus") == "ON"
    locked = head.get("ObjectLockMode") is not None and until is not None
    if held or (locked and until.timestamp() > now):
        return
    state = "its retention has lapsed" if locked else "S3 reports no retention on it"
    found.warnings.append(
        f"s3://{bucket}/{pin.key} version {pin.version_id}: {state}; it verified, but "
        "nothing stops its deletion now"
    )


def _current(s3: Any, bucket: str, key: str, settings: S3Settings) -> str | None:
    """The key's current version ID, or None when a delete marker hides it."""
    try:
        head = call(s3, "head_object", Bucket=bucket, Key=key)
    except S3Failure as exc:
        if exc.kind == "missing":
            return None  # a delete marker (the pinned version was just fetched)
        raise _unreachable(exc, settings) from None
    return str(head.get("VersionId") or "")
