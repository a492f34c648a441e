"""`acdkit custody log|show`: the chain of custody of bundles and of the log.

Every custody event is signed with the handler's custodian key and queued for the next seal
(``--seal`` seals it at once with the sealer key); `acdkit package --custodian-key` logs the
export of each bundle it writes.  ``custody show`` lists the chain, each signature checked.
"""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from acdkit import custodychain, keys, store
from acdkit._files import MIB, read_bounded
from acdkit.cli import (
    HandlerOpt,
    JsonOpt,
    KeyOpt,
    StoreArg,
    _emit,
    _handles_errors,
    _print_seal,
    _seal_doc,
    _seal_queued,
    _signer_for,
    err,
)
from acdkit.cli_incident import CustodianKeyOpt, _custodian, _parse
from acdkit.custody import EVENTS, MAX_NOTE_BYTES, MAX_PARTY_BYTES, Custody, party_problem
from acdkit.errors import ExitCode, InputIOError, MalformedError, UsageError
from acdkit.note import Checkpoint, SignedNote

__all__ = ["custody_app", "party_option"]

custody_app = typer.Typer(
    add_completion=False,  # a subcommand group; the top level has none either
    help="The chain of custody: log who exported, handed over, received or verified a "
    "bundle (or the log), signed with your custodian key; list the chain.",
    no_args_is_help=True,
)

SealOpt = Annotated[
    bool, typer.Option("--seal", help="Seal the entry now (needs the sealer key, --key).")
]
_SHA256 = re.compile(r"[0-9a-f]{64}")
_INCIDENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def party_option(value: str | None, option: str, limit: int = MAX_PARTY_BYTES) -> str | None:
    """A --to, --from, --handler or --note value, refused (USAGE) if no verifier would take
    it; the reason names the rule, never the value."""
    if value is None:
        return None
    problem = party_problem(value, limit)
    if problem:
        raise UsageError(f"{option} {problem}")
    if not value.strip():  # the format takes it, but it names nobody
        raise UsageError(f"{option} is blank")
    return value


def _checkpoint(st: store.Store, size: int) -> bytes:
    path = st.checkpoint_path(size)
    if not path.is_file():
        raise UsageError(f"this store has no checkpoint of size {size:,}")
    return Checkpoint.from_text(SignedNote.parse(path.read_bytes()).text).root


def _bundle_subject(
    st: store.Store, path: Path, verifying: bool
) -> tuple[bytes, int, bytes, str, str | None]:
    """Manifest SHA-256, checkpoint size and root, incident and verdict of a bundle of this
    log; a bundle that fails verification is refused unless the event is a verification."""
    from acdkit import bundle

    if not path.exists():
        raise UsageError(f"{path} does not exist")
    if not (path / bundle.MANIFEST).is_file():
        raise UsageError(f"{path} is not a bundle (it has no {bundle.MANIFEST})")
    # a verification records the whole verdict; a hand-over needs only a bundle that holds
    report = bundle.verify_bundle(path, st.verifier(), allow_incomplete=not verifying)
    verdict = report.verdict_name
    if report.verdict != ExitCode.OK and not verifying:
        msg = report.failure["message"] if report.failure else verdict
        raise UsageError(
            f"the bundle does not verify ({verdict}: {msg})",
            hint="log what happened with --event verification, which records the verdict",
        )
    manifest = read_bounded(path / bundle.MANIFEST, bundle.MANIFEST_LIMIT, "manifest")
    try:
        parsed = bundle.parse_manifest(manifest)
    except MalformedError as exc:
        raise MalformedError(
            f"the bundle's manifest names no checkpoint this entry could concern: {exc.message}",
            hint="nothing was logged",
        ) from None
    if parsed.origin != st.origin:
        raise UsageError("the bundle is not of this store's log")
    root = _checkpoint(st, parsed.size)
    theirs = path / "checkpoint" / f"{parsed.size:020d}.checkpoint"
    try:
        note = SignedNote.parse(read_bounded(theirs, MIB, "the bundle's checkpoint"))
        bundle_root: bytes | None = Checkpoint.from_text(note.text).root
    except (MalformedError, InputIOError):
        bundle_root = None  # the verdict says what is wrong with it
    if bundle_root is not None and bundle_root != root:
        raise UsageError(f"the bundle's checkpoint {parsed.size:,} is not this store's (a fork)")
    size, incident = parsed.size, parsed.incident
    return hashlib.sha256(manifest).digest(), size, root, incident, verdict


def _manifest_subject(st: store.Store, digest: str) -> tuple[bytes, int, bytes, str | None]:
    """What the logged export of bundle ``digest`` says it rests on."""
    if not _SHA256.fullmatch(digest):
        raise UsageError("--manifest is the SHA-256 of a bundle's MANIFEST.note: 64 hex digits")
    raw = bytes.fromhex(digest)
    for logged in custodychain.read_logged(st):
        c = logged.custody
        if c.manifest_sha256 == raw:
            return raw, c.checkpoint_size, c.checkpoint_root, c.incident
    raise UsageError(
        f"no custody entry of bundle {digest[:16]}… is logged in this store",
        hint="pass the bundle itself: --bundle DIR",
    )


def _store_verdict(st: store.Store, size: int | None) -> tuple[int, str]:
    """The verdict of `acdkit verify STORE --local-only --allow-incomplete`, for checkpoint
    ``size`` (default: the newest); a verified log covers each of its checkpoints."""
    from acdkit.verify import verify_store

    if size is None:
        sizes = [int(p.name[:20]) for p in st.checkpoint_files() if p.name[:20].isdigit()]
        if not sizes:
            raise UsageError("nothing is sealed in this store yet: no checkpoint to verify")
        size = max(sizes)
    _checkpoint(st, size)  # the store must hold it
    report = verify_store(st, allow_incomplete=True, require_outside=False)
    verified = int(report.facts.get("tree_size", 0))
    if report.verdict in (ExitCode.OK, ExitCode.INCOMPLETE) and size > verified:
        raise UsageError(f"the store verifies up to checkpoint {verified:,}, not {size:,}")
    return size, report.verdict_name


def _now_ns() -> int:
    from acdkit.incident import to_ns

    return to_ns(datetime.now(UTC))


@custody_app.command("log")
@_handles_errors
def custody_log_cmd(
    store_dir: StoreArg,
    event: Annotated[
        str, typer.Option("--event", help=f"What: {', '.join(EVENTS)}.", show_default=False)
    ],
    to: Annotated[
        str | None,
        typer.Option(
            "--to",
            help="Who received it, or whom an export is for (required for hand-over) "
            "\\[receipt: the handler].",
        ),
    ] = None,
    sender: Annotated[
        str | None,
        typer.Option(
            "--from",
            help="Who handed it over (required for receipt) \\[hand-over, export: the handler].",
        ),
    ] = None,
    bundle_dir: Annotated[
        Path | None,
        typer.Option("--bundle", help="The bundle it concerns: verified now.", show_default=False),
    ] = None,
    manifest: Annotated[
        str | None,
        typer.Option(
            "--manifest",
            help="The bundle it concerns, by the SHA-256 of its MANIFEST.note (its export "
            "must be logged in this store).",
            show_default=False,
        ),
    ] = None,
    checkpoint: Annotated[
        int | None,
        typer.Option(
            "--checkpoint",
            min=1,
            help="It concerns the log itself, up to this checkpoint (a copy of the store, a "
            "verification run: the verdict of `verify --local-only --allow-incomplete`) "
            "\\[verification: the newest checkpoint].",
            show_default=False,
        ),
    ] = None,
    incident_id: Annotated[
        str | None,
        typer.Option(
            "--incident",
            envvar="ACDKIT_INCIDENT",
            help="Incident of a log subject \\[a bundle: its own].",
            show_default=False,
        ),
    ] = None,
    note: Annotated[
        str | None,
        typer.Option(
            "--note", help=f"A note (at most {MAX_NOTE_BYTES} bytes, one line).", show_default=False
        ),
    ] = None,
    at: Annotated[
        str | None,
        typer.Option("--at", help="When it happened, ISO-8601 with a zone \\[default: now]."),
    ] = None,
    handler: HandlerOpt = None,
    custodian_key: CustodianKeyOpt = None,
    do_seal: SealOpt = False,
    key: KeyOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Log a custody event of a bundle or of the log: who, when, from whom, to whom.

    A verification runs `acdkit verify` on its bundle or store, logs the verdict, exits with it.

    Exit codes otherwise: 0 logged, 2 usage, 4 a bundle whose manifest does not parse.
    """
    if event not in EVENTS:
        raise UsageError(f"--event must be one of {', '.join(EVENTS)}")
    named = sum(x is not None for x in (bundle_dir, manifest, checkpoint))
    if named > 1 or (named == 0 and event != "verification"):
        # a verification with none of them is one of the log as it stands
        raise UsageError("name what it concerns: exactly one of --bundle, --manifest, --checkpoint")
    st = store.Store.open(store_dir)
    signer = _custodian(custodian_key, st)
    who = party_option(handler, "--handler") or signer.name
    digest, size, root, incident, verdict = _subject(
        st, event, bundle_dir, manifest, checkpoint, incident_id
    )
    if event == "hand-over" and to is None:
        raise UsageError("--event hand-over needs --to (who received it)")
    if event == "receipt" and sender is None:
        raise UsageError("--event receipt needs --from (whom it was received from)")
    if event == "verification" and (to is not None or sender is not None):
        # the format would keep them, but a verification hands nothing over: a name there
        # would read as a hand-over that never happened
        raise UsageError("--event verification takes no --to or --from (nothing changes hands)")
    when = _parse(at) if at is not None else None  # "" is no time, not "now"
    custody = Custody(
        event,
        _now_ns() if when is None else _ns(when),
        0,
        who,
        size,
        root,
        digest,
        incident,
        party_option(sender, "--from") or (who if event in ("hand-over", "export") else None),
        party_option(to, "--to") or (who if event == "receipt" else None),
        verdict,
        party_option(note, "--note", MAX_NOTE_BYTES),
    )
    if custody.at_ns > _now_ns() + custodychain.CLOCK_TOLERANCE_NS:
        raise UsageError("--at is in the future: a custody event is logged once it happened")
    doc = _record(st, signer, custody, do_seal, key, json_out)
    if json_out:
        _emit({"command": "custody log", **doc})
    else:
        err.print(
            f"[green]logged[/] {event} of {custody.subject} by {who} "
            f"(key {signer.verifier.key_id.hex()})" + (f": {verdict}" if verdict else "")
        )
        if "seal" not in doc:
            err.print("queued for the next seal (`acdkit seal STORE`, or pass --seal)")
    if verdict is not None and verdict != "VERIFIED":
        raise typer.Exit(int(ExitCode[verdict]))


def _ns(moment: datetime) -> int:
    from acdkit.incident import to_ns

    return to_ns(moment)


def _subject(
    st: store.Store,
    event: str,
    bundle_dir: Path | None,
    manifest: str | None,
    checkpoint: int | None,
    incident_id: str | None,
) -> tuple[bytes | None, int, bytes, str | None, str | None]:
    """What the event concerns (manifest SHA-256 or None, checkpoint size and root,
    incident) and the verdict of a verification."""
    verifying = event == "verification"
    verdict = None
    if bundle_dir is not None:
        digest, size, root, incident, verdict = _bundle_subject(st, bundle_dir, verifying)
        if incident_id is not None and incident_id != incident:
            raise UsageError(f"the bundle is of incident {incident}, not {incident_id}")
        subject: tuple[bytes | None, int, bytes, str | None] = (digest, size, root, incident)
    elif manifest is not None:
        if verifying:
            raise UsageError("a verification needs the bundle itself: --bundle DIR")
        subject = _manifest_subject(st, manifest.lower())
        if incident_id is not None and incident_id != subject[3]:
            raise UsageError(f"that bundle is of incident {subject[3]}, not {incident_id}")
    else:
        _check_incident(incident_id)
        if verifying:
            checkpoint, verdict = _store_verdict(st, checkpoint)
        assert checkpoint is not None
        subject = (None, checkpoint, _checkpoint(st, checkpoint), incident_id)
    return (*subject, verdict if verifying else None)


def _record(
    st: store.Store,
    signer: keys.Signer,
    custody: Custody,
    do_seal: bool,
    key: Path | None,
    json_out: bool,
) -> dict[str, Any]:
    sealer = _signer_for(st, key) if do_seal else None
    if sealer is not None:
        from acdkit.seal import check_sealer

        check_sealer(st, sealer)  # a wrong --key fails before anything is queued
    path, signed = custodychain.record(st, signer, custody)
    doc: dict[str, Any] = {
        "queued": path.name,
        "custodian_key_id": signer.verifier.key_id.hex(),
        "entry": _entry_doc(signed),
    }
    if sealer is not None:
        report = _seal_queued(st, sealer, json_out, [path.name])
        doc["seal"] = _seal_doc(report)
        if not json_out:
            _print_seal(report)
    return doc


def _iso(ns: int) -> str:
    """An entry's time in ISO-8601 UTC; one that no calendar date holds (a signed i64 can
    say anything) as its number."""
    from acdkit.incident import from_ns

    try:
        return from_ns(ns).isoformat().replace("+00:00", "Z")
    except (OverflowError, OSError, ValueError):
        return f"{ns} ns since 1970"


def _entry_doc(c: Custody) -> dict[str, Any]:
    assert c.custodian is not None
    return {
        "event": c.event,
        "at": _iso(c.at_ns),
        "signed_at": _iso(c.recorded_ns),
        "handler": c.handler,
        "custodian_key_id": c.custodian.key_id.hex(),
        "custodian": c.custodian.vkey(),
        "from": c.sender,
        "to": c.recipient,
        "incident": c.incident,
        "manifest_sha256": c.manifest_sha256.hex() if c.manifest_sha256 else None,
        "checkpoint_size": c.checkpoint_size,
        "checkpoint_root": c.checkpoint_root.hex(),
        "outcome": c.outcome,
        "note": c.note,
        # a worm-upload's receipt: `acdkit storage pins` lists its objects
        "bucket": c.receipt.bucket if c.receipt else None,
        "objects": len(c.receipt.pins) if c.receipt else None,
    }


def _check_incident(incident_id: str | None) -> None:
    if incident_id is not None and not _INCIDENT.fullmatch(incident_id):
        raise UsageError(
            "--incident must be 1-64 letters, digits, '.', '_' or '-', the first a letter or digit"
        )


@custody_app.command("show")
@_handles_errors
def custody_show_cmd(
    store_dir: StoreArg,
    incident_id: Annotated[
        str | None,
        typer.Option("--incident", help="Only this incident's entries.", show_default=False),
    ] = None,
    manifest: Annotated[
        str | None,
        typer.Option("--manifest", help="Only the entries of this bundle (MANIFEST.note SHA-256)."),
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """List the chain of custody, sealed entries first, each signature checked.

    Whether the keys are trusted, and the time rules, are `acdkit verify`'s check 13.
    Exit codes: 0 listed, 1 a signature fails, 4 an entry does not parse, 2 usage, 6 IO.
    """
    _check_incident(incident_id)  # a typo'd ID is told, not answered with "no entries"
    st = store.Store.open(store_dir)
    chain = custodychain.read_logged(st)
    if incident_id is not None:
        chain = [x for x in chain if x.custody.incident == incident_id]
    if manifest is not None:
        if not _SHA256.fullmatch(manifest.lower()):
            raise UsageError("--manifest is 64 hex digits")
        raw = bytes.fromhex(manifest)
        chain = [x for x in chain if x.custody.manifest_sha256 == raw]
    if json_out:
        _emit(
            {
                "command": "custody show",
                "store": str(st.root),
                "entries": [
                    {"index": x.index, "pending": x.pending, **_entry_doc(x.custody)} for x in chain
                ],
            }
        )
        return
    if not chain:
        err.print("no custody entries" + (" match" if incident_id or manifest else ""))
        return
    err.print(_table(chain))


def _table(chain: list[custodychain.Logged]) -> Table:
    queued = sum(1 for x in chain if x.index is None)
    title = f"chain of custody: {len(chain)} entr{'y' if len(chain) == 1 else 'ies'}" + (
        f", {queued} queued, not sealed yet" if queued else ""
    )
    table = Table(title=title)
    for col in ("leaf", "time (UTC)", "event", "handler (key)", "from → to", "concerns", "note"):
        table.add_column(col, overflow="fold")
    for x in chain:
        c = x.custody
        assert c.custodian is not None
        what = (
            f"bundle {c.manifest_sha256.hex()[:12]}…" if c.manifest_sha256 is not None else "log"
        ) + f" @{c.checkpoint_size}"
        if c.receipt is not None:
            what += f": {len(c.receipt.pins)} objects → s3://{c.receipt.bucket}"
        table.add_row(  # every value is text, never Rich markup
            str(x.index) if x.index is not None else "queued",
            _iso(c.at_ns)[:19].replace("T", " "),
            _safe(c.event + (f": {c.outcome}" if c.outcome else "")),
            _safe(f"{c.handler} ({c.custodian.key_id.hex()})"),
            _safe(f"{c.sender or '-'} → {c.recipient or '-'}"),
            _safe(what + (f" {c.incident}" if c.incident else "")),
            _safe(c.note or ""),
        )
    return table


def _safe(text: str) -> str:
    from rich.markup import escape

    return escape(text)
