"""`acdkit storage push|pins|selftest`: WORM copies of a store on S3 with Object Lock.

``push`` uploads the sealed files under retention and logs, signed with the custodian key,
which object versions now hold them (worm-upload CUSTODY entries); ``verify --worm``
fetches those versions back.  ``selftest`` checks that a bucket really refuses to delete a
locked version.  boto3 is loaded by these commands only.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from acdkit import logentries, store
from acdkit.cli import (
    S3_TIMEOUT_S,
    EndpointOpt,
    HandlerOpt,
    JsonOpt,
    KeyOpt,
    S3TimeoutOpt,
    StoreArg,
    _emit,
    _handles_errors,
    _print_seal,
    _s3_settings,
    _seal_doc,
    _seal_queued,
    _signer_for,
    err,
)
from acdkit.cli_custody import party_option
from acdkit.cli_incident import CustodianKeyOpt, _custodian
from acdkit.encoding import EntryType
from acdkit.errors import ExitCode, PolicyError, UsageError

__all__ = ["storage_app"]

storage_app = typer.Typer(
    add_completion=False,
    help="WORM copies on S3 with Object Lock: upload and pin the sealed files, list the "
    "pins, check that a bucket enforces its locks.",
    no_args_is_help=True,
)

BucketOpt = Annotated[
    str,
    typer.Option(
        "--bucket",
        envvar="ACDKIT_S3_BUCKET",
        help="S3 bucket (Object Lock enabled).",
        show_default=False,
    ),
]
ModeOpt = Annotated[
    str,
    typer.Option(
        "--mode",
        envvar="ACDKIT_S3_LOCK_MODE",
        help="Object Lock mode: compliance (nobody can delete before the date) or governance "
        "(those with s3:BypassGovernanceRetention can: for testing).",
    ),
]
RetainOpt = Annotated[
    int,
    typer.Option(
        "--retain-days",
        envvar="ACDKIT_S3_RETAIN_DAYS",
        min=1,
        max=36500,
        help="Days each object stays locked from its upload.",
    ),
]


def _mode(value: str) -> str:
    mode = value.upper()
    if mode not in ("GOVERNANCE", "COMPLIANCE"):
        raise UsageError("--mode must be compliance or governance")
    return mode


@storage_app.command("push")
@_handles_errors
def storage_push_cmd(
    store_dir: StoreArg,
    bucket: BucketOpt,
    prefix: Annotated[
        str | None,
        typer.Option(
            "--prefix",
            envvar="ACDKIT_S3_PREFIX",
            help="Key prefix \\[default: acdkit/<log ID>/].",
            show_default=False,
        ),
    ] = None,
    endpoint: EndpointOpt = None,
    mode: ModeOpt = "compliance",
    retain_days: RetainOpt = 365,
    legal_hold: Annotated[
        bool,
        typer.Option("--legal-hold", help="Also set a legal hold (kept until someone lifts it)."),
    ] = False,
    handler: HandlerOpt = None,
    custodian_key: CustodianKeyOpt = None,
    do_seal: Annotated[
        bool,
        typer.Option("--seal", help="Seal the receipts now (needs the sealer key, --key)."),
    ] = False,
    key: KeyOpt = None,
    s3_timeout: S3TimeoutOpt = S3_TIMEOUT_S,
    json_out: JsonOpt = False,
) -> None:
    """Upload the sealed files to S3 under Object Lock and log their version IDs.

    Segment files, checkpoints, anchor tokens and the store metadata go up (never the
    segment keys); each object's key, version ID, SHA-256 and lock are logged in
    worm-upload CUSTODY entries signed with your custodian key. Objects pinned already
    are not uploaded again.

    Exit codes: 0 done, 2 usage, 5 the bucket does not lock or version its objects, 6 S3
    could not be reached or refused.
    """
    from acdkit import worm

    st = store.Store.open(store_dir)
    target = worm.Target.of(bucket, prefix, st)
    signer = _custodian(custodian_key, st)
    who = party_option(handler, "--handler") or signer.name
    sealer = _signer_for(st, key) if do_seal else None
    if sealer is not None:
        from acdkit.seal import check_sealer

        check_sealer(st, sealer)  # a wrong --key fails before anything is uploaded
    lock = worm.Lock(_mode(mode), retain_days, legal_hold)
    report = worm.push(st, target, lock, signer, who, _s3_settings(endpoint, s3_timeout))
    doc: dict[str, Any] = {
        "bucket": target.bucket,
        "prefix": target.prefix,
        "checkpoint": report.checkpoint,
        "uploaded": [_pin_doc(p) for p in report.uploaded],
        "adopted": [_pin_doc(p) for p in report.adopted],
        "already_pinned": report.already,
        "queued": report.queued,
    }
    # receipts an interrupted run queued but did not seal are sealed too
    waiting = [n for n, data in logentries.pending_entries(st) if data[5] == EntryType.CUSTODY]
    if sealer is not None and waiting:
        sealed = _seal_queued(st, sealer, json_out, waiting)
        doc["seal"] = _seal_doc(sealed)
        if not json_out:
            _print_seal(sealed)
    if json_out:
        _emit({"command": "storage push", **doc})
        return
    err.print(
        f"[green]pushed[/] to s3://{escape(target.bucket)}/{escape(target.prefix)}: "
        f"{len(report.uploaded)} uploaded, {len(report.adopted)} found uploaded by an "
        f"interrupted run, {report.already} pinned already; locked {lock.mode} for "
        f"{retain_days} days" + (" with a legal hold" if legal_hold else "")
    )
    if report.queued and "seal" not in doc:
        err.print(
            f"{len(report.queued)} receipt entr{'y' if len(report.queued) == 1 else 'ies'} "
            "queued for the next seal (`acdkit seal STORE`, or pass --seal)"
        )


def _pin_doc(pin: Any) -> dict[str, Any]:
    from acdkit.incident import from_ns

    return {
        "key": pin.key,
        "version_id": pin.version_id,
        "sha256": pin.sha256.hex(),
        "size": pin.size,
        "mode": pin.mode,
        "retain_until": from_ns(pin.retain_until_ns).isoformat().replace("+00:00", "Z"),
        "legal_hold": pin.legal_hold,
        "s3_checksum_sha256": pin.s3_checksum,
    }


@storage_app.command("pins")
@_handles_errors
def storage_pins_cmd(
    store_dir: StoreArg,
    bucket: Annotated[
        str | None, typer.Option("--bucket", help="Only this bucket's.", show_default=False)
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """List the S3 object versions the store's worm-upload entries pin (offline).

    Exit codes: 0 listed, 1 a receipt's signature fails, 4 one does not parse, 6 IO.
    """
    from acdkit import worm

    st = store.Store.open(store_dir)
    pins = worm.pinned(st, bucket)
    if json_out:
        rows = [{"index": index, "bucket": b, **_pin_doc(pin)} for index, pin, b in pins]
        _emit({"command": "storage pins", "store": str(st.root), "pins": rows})
        return
    if not pins:
        err.print("no object is pinned" + (f" in bucket {escape(bucket)}" if bucket else ""))
        return
    table = Table(title=f"{len(pins)} pinned object versions")
    for col in ("leaf", "object", "version", "sha256", "bytes", "lock"):
        table.add_column(col, overflow="fold")
    for index, pin, b in pins:
        lock = pin.mode.lower() + (" + legal hold" if pin.legal_hold else "")
        table.add_row(
            "queued" if index is None else str(index),
            escape(f"s3://{b}/{pin.key}"),
            escape(pin.version_id),
            pin.sha256.hex()[:16] + "…",
            f"{pin.size:,}",
            lock,
        )
    err.print(table)


@storage_app.command("selftest")
@_handles_errors
def storage_selftest_cmd(
    bucket: BucketOpt,
    endpoint: EndpointOpt = None,
    mode: ModeOpt = "governance",
    retain_days: Annotated[
        int,
        typer.Option(
            "--retain-days",
            min=1,
            max=30,
            help="Days the canary stays locked (it cannot be deleted before).",
        ),
    ] = 1,
    s3_timeout: S3TimeoutOpt = S3_TIMEOUT_S,
    json_out: JsonOpt = False,
) -> None:
    """Check that a bucket enforces Object Lock: write a locked canary, try to delete it.

    The canary (a few bytes under acdkit-selftest/) stays until its retention ends.
    Exit codes: 0 the lock held, 5 it did not (the back end deleted a locked version, or
    does not lock or version), 2 usage, 6 S3 could not be reached or refused.
    """
    from acdkit import worm

    target = worm.Target.of(bucket, "")
    report = worm.selftest(
        target.bucket, _s3_settings(endpoint, s3_timeout), _mode(mode), retain_days
    )
    failed = next((text for _s, status, text in report.steps if status != "ok"), None)
    if json_out:
        _emit(
            {
                "command": "storage selftest",
                "bucket": report.bucket,
                "canary": {"key": report.key, "version_id": report.version_id},
                "steps": [{"step": s, "status": st, "detail": t} for s, st, t in report.steps],
                "verdict": "OK" if failed is None else "POLICY",
                "exit_code": 0 if failed is None else int(ExitCode.POLICY),
            }
        )
    else:
        for step, status, text in report.steps:
            colour = "green" if status == "ok" else "red"
            err.print(f"  [{colour}]{status:>4}[/] {step}. {escape(text)}")
    if failed is not None:
        if json_out:
            raise typer.Exit(int(ExitCode.POLICY))
        raise PolicyError(
            failed, hint="this bucket cannot keep evidence safe: use one that enforces Object Lock"
        )
    if not json_out:
        err.print(
            f"[bold green]OK[/] bucket {escape(bucket)} enforces Object Lock ({mode.lower()})"
        )
