"""Command-line interface: parse options, call one core function, render, map exit codes.

stdout carries data (``--json`` documents); people read stderr: progress, tables, verdicts.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import json
import logging
import os
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeRemainingColumn
from rich.table import Table
from typer.core import TyperGroup

from acdkit import (
    __version__,
    anchor,
    cmdsig,
    keys,
    seal,
    store,
    verify,
    witness,
)
from acdkit import cli_anchor as ca
from acdkit._files import KIB, read_bounded, read_text
from acdkit.cosignature import WitnessPolicy
from acdkit.errors import AcdkitError, ExitCode, InputIOError, MalformedError, UsageError

if TYPE_CHECKING:
    # ingest and package load DuckDB and every input format: imported by their commands only,
    # so that `verify`, which a CI job may run on every commit, starts without them
    from acdkit import ingest

__all__ = ["app", "main"]

JSON_SCHEMA = "acdkit-cli/1"
# a cron log or a pipe is no terminal: Rich would then cut tables at 80 columns and lose
# file names and statuses to "…"; COLUMNS still decides when it is set
LOG_WIDTH = 200
err = Console(
    stderr=True,
    highlight=False,
    soft_wrap=True,
    width=None if sys.stderr.isatty() or os.environ.get("COLUMNS") else LOG_WIDTH,
)
# commands and groups of other modules, imported only when named (or listed by --help):
# `acdkit verify`, which a CI job may run on every commit, then starts without the NTP,
# incident-clock and custody code; name -> (module, attribute, is a group)
_LAZY: dict[str, tuple[str, str, bool]] = {
    "classify": ("acdkit.cli_incident", "classify_cmd", False),
    "kpi": ("acdkit.cli_incident", "kpi_cmd", False),
    "timecheck": ("acdkit.cli_time", "timecheck_cmd", False),
    "keys": ("acdkit.cli_keys", "keys_app", True),  # they build on this module's helpers
    "policy": ("acdkit.cli_keys", "policy_app", True),
    "incident": ("acdkit.cli_incident", "incident_app", True),
    "custody": ("acdkit.cli_custody", "custody_app", True),
    "storage": ("acdkit.cli_storage", "storage_app", True),
}


def _lazy_command(name: str) -> Any:
    """The click command of one entry of _LAZY, its help lines joined like the others'."""
    module, attribute, _ = _LAZY[name]
    found = getattr(importlib.import_module(module), attribute)
    holder = found if isinstance(found, typer.Typer) else typer.Typer(add_completion=False)
    if holder is not found:
        holder.command(name)(found)
    _unwrap_help(holder)
    command = typer.main.get_command(holder)
    command.name = name
    return command


class _TopGroup(TyperGroup):
    """The top level: loads the commands of _LAZY on demand, listed where Typer would put
    them (single commands after this module's, groups after its groups)."""

    def list_commands(self, ctx: Any) -> list[str]:
        names = [n for n in super().list_commands(ctx) if n not in _LAZY]
        groups = [n for n in names if isinstance(self.commands[n], TyperGroup)]
        plain = [n for n in names if n not in groups]
        lazy_plain = [n for n, (_, _, group) in _LAZY.items() if not group]
        lazy_groups = [n for n, (_, _, group) in _LAZY.items() if group]
        return [*plain, *lazy_plain, *groups, *lazy_groups]

    def get_command(self, ctx: Any, name: str) -> Any:
        if name in _LAZY and name not in self.commands:
            self.add_command(_lazy_command(name), name)
        return _tidy_help(super().get_command(ctx, name))

    def get_params(self, ctx: Any) -> list[Any]:
        return _tidy_params(super().get_params(ctx))

    def resolve_command(self, ctx: Any, args: list[str]) -> Any:
        # a name that is no command: Typer's "Did you mean" looks only at the commands built,
        # so build the rest first ('kyes' -> 'keys'); a wrong name may start slowly
        if args and args[0] not in self.commands and args[0] not in _LAZY:
            for name in _LAZY:
                self.get_command(ctx, name)
        return super().resolve_command(ctx, args)


# how an argument is named in usage lines: Typer would print the Python name, {store_dir}
_ARGUMENT_NAMES = {"store_dir": "STORE", "target": "STORE|BUNDLE", "files": "FILE"}


def _tidy_help(command: Any) -> Any:
    """Help as people read it, for a command and its subcommands: a flag shows no
    ``<bool>`` (it takes no value) and an argument shows its name in capitals."""
    if command is None or getattr(command, "_acdkit_tidy", False):
        return command
    _tidy_params(command.params)
    plain = command.get_params  # it adds --help, made afresh each time

    def get_params(ctx: Any) -> list[Any]:
        return _tidy_params(plain(ctx))

    command.get_params = get_params
    command._acdkit_tidy = True
    for sub in getattr(command, "commands", {}).values():
        _tidy_help(sub)
    return command


def _tidy_params(params: list[Any]) -> list[Any]:
    for param in params:
        if param.metavar is not None:
            continue
        if getattr(param, "is_flag", False) or getattr(param, "count", False):
            param.metavar = ""
        elif param.param_type_name == "argument" and param.name:
            param.metavar = _ARGUMENT_NAMES.get(param.name, param.name.upper())
    return params


app = typer.Typer(
    name="acdkit",
    cls=_TopGroup,
    help="Forensic-readiness toolkit: ingest machine information, seal it in a signed "
    "tamper-evident log, verify it offline, and package incident bundles.\n\n"
    "Exit codes: 0 OK/VERIFIED, 1 TAMPERED, 2 USAGE, 3 INCOMPLETE, 4 MALFORMED, "
    "5 POLICY, 6 IO, 70 internal error (a bug).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    pretty_exceptions_show_locals=False,
    add_completion=False,
)

JsonOpt = Annotated[bool, typer.Option("--json", help="Write one JSON document to stdout.")]
StoreArg = Annotated[
    Path,
    typer.Argument(help="Evidence store directory.", envvar="ACDKIT_STORE", show_default=False),
]
KeyOpt = Annotated[
    Path | None,
    typer.Option(
        "--key",
        envvar="ACDKIT_SEALER_KEY",
        help="Sealer private key file \\[default: the per-user key made by `acdkit init`].",
    ),
]


S3_TIMEOUT_S = 20.0
EndpointOpt = Annotated[
    str | None,
    typer.Option(
        "--endpoint",
        envvar="ACDKIT_S3_ENDPOINT",
        help="S3 endpoint URL of an S3-compatible store \\[default: AWS, or $AWS_ENDPOINT_URL]. "
        "Credentials come from the AWS chain (AWS_ACCESS_KEY_ID…, AWS_PROFILE, a role).",
        show_default=False,
    ),
]
S3TimeoutOpt = Annotated[
    float,
    typer.Option(
        "--s3-timeout",
        envvar="ACDKIT_S3_TIMEOUT",
        min=0.1,
        max=600.0,
        help="Seconds to wait for S3 to connect or answer, per request (3 tries at most); "
        "`verify --worm` also wants each object within this plus its size at 64 KiB/s.",
    ),
]


def _s3_settings(endpoint: str | None, timeout_s: float) -> Any:
    from acdkit.s3client import S3Settings  # its boto3 only when a command asks for S3

    return S3Settings(endpoint, timeout_s)


HandlerOpt = Annotated[
    str | None,
    typer.Option(
        "--handler", envvar="ACDKIT_HANDLER", help="Who \\[default: the custodian key's name]."
    ),
]


def _handles_errors(func: Callable[..., None]) -> Callable[..., None]:
    """Render an AcdkitError as one line plus hint and exit with its code."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        json_out = bool(kwargs.get("json_out"))
        command = _command_path(func)
        try:
            func(*args, **kwargs)
        except AcdkitError as exc:
            _fail(exc, command if json_out else None)
        except OSError as exc:
            # a file or directory that cannot be made, read or written: the environment's
            # fault, not a bug; the message names the path and the system's reason
            reason = f"{exc.strerror or exc}: {exc.filename or ''}".rstrip(": ")
            _fail(InputIOError(reason), command if json_out else None)
        except EOFError:
            # a compressed input cut short; Typer would print "Aborted." and exit 1, which
            # is TAMPERED's code
            cut = MalformedError("an input ended in the middle (a truncated compressed file?)")
            _fail(cut, command if json_out else None)

    return wrapper


def _command_path(func: Callable[..., None]) -> str:
    """The command as typed, from its function's name: keys_new_cmd -> "keys new"."""
    return func.__name__.removesuffix("_cmd").replace("_", " ")


def _fail(exc: AcdkitError, json_command: str | None = None) -> NoReturn:
    """Report an error on stderr and, under --json, as the one document on stdout."""
    # messages carry what was typed or read (a file name, a code): never markup to Rich
    err.print(f"[red]error:[/] {escape(exc.message)}")
    if exc.hint:
        err.print(f"  hint: {escape(exc.hint)}")
    if json_command is not None:
        error = {"verdict": exc.verdict, "message": exc.message, "hint": exc.hint}
        _emit({"command": json_command, "exit_code": int(exc.exit_code), "error": error})
    raise typer.Exit(int(exc.exit_code)) from None


def _emit(doc: dict[str, Any]) -> None:
    sys.stdout.write(
        json.dumps({"schema_version": JSON_SCHEMA, **doc}, sort_keys=False, default=str) + "\n"
    )


def _version(value: bool) -> None:
    if value:
        typer.echo(f"acdkit {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    verbose: Annotated[
        int,
        typer.Option(
            "-v", "--verbose", count=True, help="More detail on stderr (-v info, -vv debug)."
        ),
    ] = 0,
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    logging.basicConfig(
        level=level, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s"
    )


@contextmanager
def _progress(enabled: bool, label: str) -> Iterator[Callable[[str, int, int], None] | None]:
    if not enabled:
        yield None
        return
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=True,
    ) as bar:
        tasks: dict[str, Any] = {}

        def update(name: str, done: int, total: int) -> None:
            if name not in tasks:
                tasks[name] = bar.add_task(f"{label} {name}", total=total or None)
            bar.update(tasks[name], completed=done, total=total or None)

        yield update


def _show_progress(json_out: bool) -> bool:
    return not json_out and err.is_terminal


def _signer_for(st: store.Store, key: Path | None) -> keys.Signer:
    path = key or keys.default_key_dir() / f"{st.meta()['log_id']}.sealer.key"
    return keys.load_signer(path)


# -- init ---------------------------------------------------------------------------------------


@app.command()
@_handles_errors
def init(
    store_dir: StoreArg,
    key: Annotated[
        Path | None,
        typer.Option(
            "--key",
            envvar="ACDKIT_SEALER_KEY",
            help="Where to write the new private key (mode 0600, outside the store) "
            "\\[default: $ACDKIT_KEY_DIR or ~/.config/acdkit/keys/<log-id>.sealer.key].",
        ),
    ] = None,
    org: Annotated[
        str | None,
        typer.Option(help="Organization name used in the log origin.", envvar="ACDKIT_ORG"),
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Create an evidence store and its Ed25519 sealer key pair."""
    st, key_path = store.init_store(store_dir, key, org)
    vkey = st.verifier().vkey()
    if json_out:
        _emit(
            {
                "command": "init",
                "store": str(st.root),
                "origin": st.origin,
                "key_path": str(key_path),
                "vkey": vkey,
            }
        )
        return
    err.print(
        f"[green]created[/] store {st.root}\n  origin  {st.origin}\n"
        f"  key     {key_path} (private, mode 0600: keep it off the store)\n"
        f"  vkey    {vkey}\n"
        "Give the vkey line to whoever will verify your evidence."
    )


# -- ingest -------------------------------------------------------------------------------------


def _ingest_table(report: ingest.IngestReport) -> Table:
    table = Table(title=f"ingest: {report.records:,} records in {report.seconds:.1f}s")
    numbers = ("lines", "net", "dns", "edr", "skipped", "rejected")
    for col in ("file", "format", *numbers, "status"):
        table.add_column(col, justify="right" if col in numbers else "left")
    for f in report.files:
        table.add_row(
            escape(Path(f.path).name),
            f.format or "-",
            f"{f.lines:,}",
            f"{f.records.get('net', 0):,}",
            f"{f.records.get('dns', 0):,}",
            f"{f.records.get('edr', 0):,}",
            f"{f.skipped:,}",
            f"{f.rejected:,}",
            f.status if not f.error else f"failed: {escape(f.error)}",
        )
    return table


@app.command("ingest")
@_handles_errors
def ingest_cmd(
    store_dir: StoreArg,
    files: Annotated[
        list[Path], typer.Argument(help="Log files, plain or gzip.", show_default=False)
    ],
    fmt: Annotated[
        str | None,
        typer.Option(
            "--format",
            envvar="ACDKIT_FORMAT",
            help="Force the input format (`acdkit formats` lists them); default: detect it "
            "from the content.",
        ),
    ] = None,
    sensor: Annotated[
        str | None,
        typer.Option(envvar="ACDKIT_SENSOR", help="Sensor ID for records that do not name one."),
    ] = None,
    assume_tz: Annotated[
        str | None,
        typer.Option(
            "--assume-tz",
            envvar="ACDKIT_ASSUME_TZ",
            metavar="ZONE",
            help="IANA time zone (Asia/Tokyo, UTC) of times the input writes without a zone. "
            "Without it a file that holds such times (DNS server logs, CEF, syslog headers, "
            "the Security events of flat Windows JSON exports) is refused with exit code 2 "
            "and nothing of it is staged; ingest it again with the option.",
        ),
    ] = None,
    year: Annotated[
        int | None,
        typer.Option(
            envvar="ACDKIT_YEAR",
            metavar="YYYY",
            help="Year of times the input writes without one (syslog 'Jan 17 08:52:09'). In DNS "
            "server logs it is the year of the file's first time, later ones follow across New "
            "Year \\[default there: guessed from the file's modification time, with a warning]; "
            "a CEF file that needs it and lacks it is refused (exit code 2).",
        ),
    ] = None,
    aws_fields: Annotated[
        str | None,
        typer.Option(
            "--aws-fields",
            envvar="ACDKIT_AWS_FIELDS",
            help="Field order of AWS VPC flow log lines without a header line, as in the "
            "flow log's format ('version account-id ...' or '${version} ${account-id} ...').",
        ),
    ] = None,
    date_order: Annotated[
        str | None,
        typer.Option(
            "--date-order",
            envvar="ACDKIT_DATE_ORDER",
            metavar="mdy|dmy|ymd",
            help="How the Windows DNS debug log's locale writes dates \\[default: read from "
            "the file where a day above 12 shows it; refused where it cannot be told].",
        ),
    ] = None,
    do_seal: Annotated[bool, typer.Option("--seal", help="Seal right after ingesting.")] = False,
    key: KeyOpt = None,
    sig_key: Annotated[
        Path | None,
        typer.Option(
            "--sig-key",
            envvar="ACDKIT_SIG_KEY",
            help="The organization's command-signature key file (never inside a store) "
            f"\\[default: $ACDKIT_KEY_DIR/{cmdsig.KEY_FILE_NAME}, created on first need].",
        ),
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Normalize logs into machine-information records (staged, unsealed).

    Every line becomes a record, a skip or a reject with its line number and reason. A file
    already in the source ledger (same SHA-256) is not ingested again. Command lines are
    kept only as keyed signatures.
    """
    st = store.Store.open(store_dir)
    signer = _signer_for(st, key) if do_seal else None
    keys_at = cmdsig.KeySource(sig_key, explicit=True) if sig_key else None
    with _progress(_show_progress(json_out), "ingest") as progress:
        from acdkit import ingest

        report = ingest.ingest(
            st,
            files,
            fmt,
            sensor,
            progress,
            keys_at,
            assume_tz=assume_tz,
            year=year,
            aws_fields=aws_fields,
            date_order=date_order,
        )
    if report.sig_key_created:
        _key_notice(report.sig_key_created)
    sealed = None
    if signer is not None:
        sealed = _run_seal(st, signer, json_out)
    failed = [f for f in report.files if f.error]
    if json_out:
        _emit(
            {
                "command": "ingest",
                "store": str(st.root),
                "records": report.records,
                "seconds": round(report.seconds, 3),
                "files": [f.to_json() for f in report.files],
                "sig_key_created": report.sig_key_created,
                "seal": _seal_doc(sealed) if sealed else None,
            }
        )
    else:
        err.print(_ingest_table(report))
        for f in report.files:
            # a sensor name in a clock line comes from the records: text, never markup
            name = escape(Path(f.path).name)
            for warning in f.warnings:
                err.print(f"[yellow]warning[/] {name}: {escape(warning)}")
            for found in f.clock_skew:
                for text in _skew_sentences(found):
                    err.print(f"[yellow]clock[/] {name}: {escape(text)}")
            for reason, count in sorted(f.reject_reasons.items(), key=lambda x: -x[1])[:5]:
                err.print(f"  rejected {count:,} lines of {name}: {escape(reason)}")
        if sealed:
            _print_seal(sealed)
    if failed:
        raise typer.Exit(failed[0].exit_code)


@app.command("formats")
@_handles_errors
def formats_cmd(json_out: JsonOpt = False) -> None:
    """List the input formats `ingest` reads, in the order detection tries them."""
    from acdkit import sources

    rows = [(f.name, f.description) for f in map(sources.get, sources.names())]
    if json_out:
        _emit({"command": "formats", "formats": [{"name": n, "description": d} for n, d in rows]})
        return
    table = Table(title="input formats (use the name with ingest --format)")
    table.add_column("name", style="bold")
    table.add_column("what it reads")
    for name, description in rows:
        table.add_row(name, description)
    err.print(table)


def _key_notice(path: str) -> None:
    # stderr, also under --json: whoever runs this must learn that the key has to travel
    err.print(
        f"[yellow]notice[/] created the organization's command-signature key {path} "
        "(mode 0600). Copy this file to every other collector of the organization "
        "(--sig-key or ACDKIT_SIG_KEY there): signatures made under different keys never "
        "match. Keep it off every evidence store."
    )


def _skew_sentences(found: dict[str, Any]) -> list[str]:
    from acdkit import skew  # with ingest: not at start-up

    return skew.describe_json(found)


# -- seal ---------------------------------------------------------------------------------------


def _seal_max_records() -> int:
    """Records per segment: $ACDKIT_SEAL_MAX_RECORDS, a hidden knob that lets tests get
    several segments out of one run; else seal's default."""
    raw = os.environ.get("ACDKIT_SEAL_MAX_RECORDS")
    if raw is None:
        return seal.DEFAULT_MAX_RECORDS
    if not raw.isdigit() or int(raw) < 1:
        raise UsageError(f"ACDKIT_SEAL_MAX_RECORDS={raw!r} is not a whole number of at least 1")
    return int(raw)


def _run_seal(
    st: store.Store, signer: keys.Signer, json_out: bool, heartbeat: bool = False
) -> seal.SealReport:
    max_records = _seal_max_records()
    with _progress(_show_progress(json_out), "seal") as progress:
        return seal.seal(
            st,
            signer,
            max_records,
            progress=(lambda d, t: progress("records", d, t)) if progress else None,
            heartbeat=heartbeat,
        )


def _seal_queued(
    st: store.Store, signer: keys.Signer, json_out: bool, queued: list[str]
) -> seal.SealReport:
    """`--seal` after entries were queued: a seal that fails (the store busy, say) says
    that they stay queued, so that nobody logs them a second time."""
    try:
        return _run_seal(st, signer, json_out)
    except AcdkitError as exc:
        names = ", ".join(f"pending/{n}" for n in queued)
        failed = type(exc)(
            f"queued {names} but not sealed: {exc.message}",
            hint=f"do not log it again; `acdkit seal {st.root}` seals it",
        )
        raise failed from None


def _seal_doc(report: seal.SealReport) -> dict[str, Any]:
    return {
        "segments": report.segments,
        "recovered": report.recovered,
        "tree_size": report.size,
        "root": report.root.hex(),
        "sealer_key_id": report.key_id,
        "records": report.records,
        "seconds": round(report.seconds, 3),
    }


def _print_seal(report: seal.SealReport) -> None:
    for note in report.recovered:
        err.print(f"[yellow]recovered[/] {note}")
    if not report.segments:
        err.print(f"nothing to seal; log size {report.size:,}")
        return
    for s in report.segments:
        extra = f" and {s['log_entries']} log entries" if s["log_entries"] else ""
        err.print(
            f"[green]sealed[/] segment {s['segment_no']}: {s['records']:,} records{extra}, "
            f"leaves {s['first_index']:,}-{s['end_index'] - 1:,} (last is its SEAL)"
        )
    err.print(
        f"checkpoint {report.size:,} signed by {report.key_id} "
        f"(root {report.root.hex()[:16]}…) in {report.seconds:.1f}s"
    )


@app.command("seal")
@_handles_errors
def seal_cmd(
    store_dir: StoreArg,
    key: KeyOpt = None,
    heartbeat: Annotated[
        bool,
        typer.Option(
            "--heartbeat",
            help="seal even when nothing is staged: an empty signed segment that proves "
            "the log was alive and quiet (run it from cron every few minutes)",
        ),
    ] = False,
    do_anchor: Annotated[
        bool,
        typer.Option(
            "--anchor",
            help="then anchor the newest checkpoint with the --tsa authorities (as "
            "`acdkit anchor`); the ANCHOR entries are sealed by the next seal",
        ),
    ] = False,
    tsa: ca.TsaOpt = None,
    tsa_root: ca.TsaRootOpt = None,
    tsa_policy: ca.TsaPolicyOpt = None,
    tolerance: ca.ToleranceOpt = ca.DEFAULT_TOLERANCE_S,
    json_out: JsonOpt = False,
) -> None:
    """Seal staged records and queued log entries into a new segment; sign a checkpoint."""
    st = store.Store.open(store_dir)
    config = _anchor_config(tsa, tsa_root, tsa_policy) if do_anchor else None
    report = _run_seal(st, _signer_for(st, key), json_out, heartbeat)
    anchored = None
    if config is not None:
        anchored = anchor.anchor_store(st, *config, tolerance_ns=int(tolerance * 1e9))
    if json_out:
        doc = {"command": "seal", "store": str(st.root), **_seal_doc(report)}
        if anchored is not None:
            doc["anchor"] = ca.anchor_doc(anchored)
        _emit(doc)
    else:
        _print_seal(report)
        if anchored is not None:
            ca.print_anchor(anchored, err)
    if anchored is not None and anchored.verdict:
        raise typer.Exit(int(anchored.verdict))


def _anchor_config(
    tsa: list[str] | None, roots: list[str] | None, policies: list[str] | None
) -> tuple[list[anchor.TsaEndpoint], dict[str, anchor.TsaTrust]]:
    trust = ca.trusts(roots, policies)
    return ca.endpoints(tsa, trust), trust


# -- anchor -------------------------------------------------------------------------------------


@app.command("anchor")
@_handles_errors
def anchor_cmd(
    store_dir: StoreArg,
    tsa: ca.TsaOpt = None,
    tsa_root: ca.TsaRootOpt = None,
    tsa_policy: ca.TsaPolicyOpt = None,
    tolerance: ca.ToleranceOpt = ca.DEFAULT_TOLERANCE_S,
    timeout: Annotated[
        float,
        typer.Option(envvar="ACDKIT_TSA_TIMEOUT", min=0.1, help="Seconds to wait for each TSA."),
    ] = anchor.DEFAULT_TIMEOUT_S,
    json_out: JsonOpt = False,
) -> None:
    """Time-stamp the newest checkpoint with RFC 3161 TSAs (and retry queued requests).

    Each reply is verified on receipt against the roots pinned with --tsa-root; the token
    is kept in anchors/ and its ANCHOR entry is sealed by the next seal. A TSA that cannot
    be reached leaves the request queued: exit 3 (INCOMPLETE) until a later run succeeds.
    """
    st = store.Store.open(store_dir)
    endpoints, trust = _anchor_config(tsa, tsa_root, tsa_policy)
    report = anchor.anchor_store(
        st, endpoints, trust, tolerance_ns=int(tolerance * 1e9), timeout=timeout
    )
    if json_out:
        _emit({"command": "anchor", "store": str(st.root), **ca.anchor_doc(report)})
    else:
        ca.print_anchor(report, err)
    raise typer.Exit(int(report.verdict))


# -- verify -------------------------------------------------------------------------------------


_K = TypeVar("_K")


def _not_a_file(value: str, option: str) -> None:
    """Refuse a value that is no file and cannot be a vkey line either (it has no '+'): a
    mistyped path is told as one, not as a key that does not parse."""
    path = Path(value)
    if path.is_dir():
        raise UsageError(f"{option} {_shown(value)}: a directory, not a verifier key file")
    if "+" not in value and not path.exists():
        raise UsageError(
            f"{option} {_shown(value)}: no such file, and not a verifier key line either "
            "(<name>+<hex id>+<base64 key>)"
        )


def _vkey_text(value: str, option: str) -> str:
    """Vkeys given on the command line: the text itself, or a file holding it."""
    path = Path(value)
    if not path.is_file():
        _not_a_file(value, option)
        return value
    try:
        return read_text(path, 64 * KIB, "verifier key file").strip()
    except MalformedError:
        raise UsageError(
            f"{option} {value}: not a verifier key file (expected vkey lines of text)"
        ) from None


def _typed_key(value: str, option: str, parse: Callable[[str], _K]) -> _K:
    """A key typed on the command line, parsed; a bad one is the user's error (USAGE)."""
    text = _vkey_text(value, option)
    try:
        return parse(text)
    except MalformedError as exc:
        raise UsageError(f"{option} {_shown(value)}: {exc.message}") from None


def _typed_keys(value: str, option: str) -> list[keys.Verifier]:
    """One or more vkeys typed on the command line, separated by blanks or lines, or a file
    of them (a store's ``keys/custodians.vkey``, say)."""
    out: list[keys.Verifier] = []
    for word in _vkey_text(value, option).split():
        try:
            out.append(keys.Verifier.parse(word))
        except MalformedError as exc:
            raise UsageError(f"{option} {_shown(value)}: {exc.message}") from None
    if not out:
        raise UsageError(f"{option} {_shown(value)}: no verifier key in it")
    return out


def _shown(value: str) -> str:
    """An argument as an error may show it: never a pasted private key, never a screenful."""
    if "PRIVATE KEY" in value or "\n" in value or len(value) > 200:
        return "(the value given)"
    return value


def _pinned(value: str | None, option: str = "--key") -> keys.Verifier | None:
    if value is None:
        return None
    return _typed_key(value, option, keys.Verifier.parse)


def _witness_policy(values: list[str] | None, quorum: int | None) -> WitnessPolicy | None:
    if not values:
        if quorum is not None:
            raise UsageError("--witness-quorum needs at least one --witness")
        return None
    parsed = [_typed_key(v, "--witness", keys.WitnessVerifier.parse) for v in values]
    return WitnessPolicy.of(parsed, quorum)


@app.command("verify")
@_handles_errors
def verify_cmd(
    target: Annotated[
        Path, typer.Argument(help="A store or a bundle directory.", show_default=False)
    ],
    key: Annotated[
        str | None,
        typer.Option(
            "--key",
            envvar="ACDKIT_VERIFY_KEY",
            help="Pin the sealer's public key: a vkey line or a file holding one.",
        ),
    ] = None,
    allow_incomplete: Annotated[
        bool,
        typer.Option(
            help="Exit 0 when the only findings are incomplete ones: an unsealed tail, "
            "anchors or witnesses not checked, nothing outside committing to the log (all "
            "still reported as warnings)."
        ),
    ] = False,
    local_only: Annotated[
        bool,
        typer.Option(
            "--local-only",
            help="Accept a store that nothing outside it commits to (no --state memory, "
            "--expect-min-size, witness or anchor): the integrity checks decide the verdict, "
            "and a warning says that a rollback of the newest segments cannot be excluded.",
        ),
    ] = False,
    state: Annotated[
        Path | None,
        typer.Option(
            "--state",
            help="Verifier state file (created on first use): the log must agree with the "
            "checkpoint remembered there and may not be shorter (rollback, truncation and "
            "forks are TAMPERED); on success it remembers the newest checkpoint. Keep it "
            "off the collector.",
            show_default=False,
        ),
    ] = None,
    expect_min_size: Annotated[
        int | None,
        typer.Option(
            "--expect-min-size",
            min=0,
            help="TAMPERED if the verified log (or the bundle's checkpoint) is smaller, e.g. "
            "a tree size read from an earlier report or a witness.",
            show_default=False,
        ),
    ] = None,
    root: Annotated[
        str | None,
        typer.Option(
            "--root",
            envvar="ACDKIT_ROOT_KEY",
            help="Pin the organization's root key (a vkey line or a file): the store must "
            "hold a trust policy it signed, and every sealer key must be authorized by it.",
            show_default=False,
        ),
    ] = None,
    witness_keys: Annotated[
        list[str] | None,
        typer.Option(
            "--witness",
            envvar="ACDKIT_WITNESS",
            help="A witness's vkey (or a file holding it); repeatable. Its cosignatures "
            "must verify, a cosigned checkpoint beyond the log is a rollback (TAMPERED), "
            "and the newest checkpoint needs the quorum (INCOMPLETE otherwise).",
            show_default=False,
        ),
    ] = None,
    witness_quorum: Annotated[
        int | None,
        typer.Option(
            "--witness-quorum",
            envvar="ACDKIT_WITNESS_QUORUM",
            min=0,
            help="How many of the --witness keys must cosign the newest checkpoint; 0 checks "
            "their cosignatures but requires none \\[default: 1].",
            show_default=False,
        ),
    ] = None,
    tsa_root: ca.TsaRootOpt = None,
    tsa_policy: ca.TsaPolicyOpt = None,
    tolerance: ca.ToleranceOpt = ca.DEFAULT_TOLERANCE_S,
    custodian: Annotated[
        list[str] | None,
        typer.Option(
            "--custodian",
            envvar="ACDKIT_CUSTODIAN",
            help="Custodian vkeys (several separated by blanks or lines, or a file of them "
            "such as a store's keys/custodians.vkey); repeatable. Every DECISION and "
            r"CUSTODY entry must be signed by one of them (TAMPERED otherwise) \[default: the "
            "trust policy's "
            "custodians, else the store's or bundle's own list].",
            show_default=False,
        ),
    ] = None,
    clock_from: Annotated[
        str | None,
        typer.Option(
            "--clock-from",
            help="With --clock-to: report what the log shows of the collector's clock "
            "around this range (ISO-8601 with zone): the NTP measurements (CLOCK entries) "
            "and RFC 3161 bounds just before, inside and just after it.",
            show_default=False,
        ),
    ] = None,
    clock_to: Annotated[
        str | None,
        typer.Option("--clock-to", help="End of the --clock-from range.", show_default=False),
    ] = None,
    worm: Annotated[
        bool,
        typer.Option(
            "--worm",
            help="Online: fetch every S3 object version that `acdkit storage push` pinned "
            "and compare its SHA-256 (TAMPERED if gone or changed; a newer version is a "
            "warning; S3 unreachable is INCOMPLETE).",
        ),
    ] = False,
    endpoint: EndpointOpt = None,
    s3_timeout: S3TimeoutOpt = S3_TIMEOUT_S,
    json_out: JsonOpt = False,
) -> None:
    """Check a store or a bundle offline and print a verdict with what it covered.

    Anchors are checked against the TSA roots of the trust policy when --root pins it, else
    against those pinned with --tsa-root; without them they are reported as not checked
    (INCOMPLETE), never as verified. --worm adds the one online check.
    """
    policy = _witness_policy(witness_keys, witness_quorum)
    trust = ca.anchor_trust(tsa_root, tsa_policy, tolerance)
    window = _clock_window(clock_from, clock_to)
    with _progress(_show_progress(json_out), "verify") as progress:
        report = verify.verify_path(
            target,
            _pinned(key),
            allow_incomplete,
            (lambda d, t: progress("leaves", d, t)) if progress else None,
            state,
            expect_min_size,
            _pinned(root, "--root"),
            policy,
            anchors=trust,
            require_outside=not local_only,
            custodian_keys=[k for c in custodian for k in _typed_keys(c, "--custodian")]
            if custodian
            else None,
            clock_window=window,
            worm=_s3_settings(endpoint, s3_timeout) if worm else None,
        )
    if json_out:
        _emit({"command": "verify", **report.to_json()})
    else:
        # by number, for people (checks run in dependency order: the policy after the rebuild)
        for check in sorted(report.checks, key=lambda c: int(c.id) if c.id.isdigit() else 99):
            style = {"ok": "green", "warn": "yellow", "incomplete": "yellow"}.get(
                check.status, "red"
            )
            # details quote what the evidence holds (names, messages): never markup
            err.print(f"  [{style}]{check.status:>10}[/] {check.id}. {escape(check.detail)}")
        state = report.facts.get("clock_window")
        if state is not None:
            ntp = f"clock {state['from']} .. {state['to']}: NTP: {state['ntp']['state']}"
            err.print(escape(ntp))
            err.print(escape(f"  RFC 3161: {state['rfc3161']['state']}"))
            for flag in state["flags"]:
                err.print(f"  [yellow]flag[/] {escape(flag)}")
        colour = "green" if report.verdict == ExitCode.OK else "red"
        err.print(f"[bold {colour}]{report.verdict_name}[/] {escape(report.coverage)}")
        if report.failure:
            where = ", ".join(
                f"{k}={v}" for k, v in report.failure.items() if k not in ("message", "check")
            )
            # escaped whole: Rich took the [where] part for a markup tag and dropped it
            err.print(
                escape(
                    f"first failure: {report.failure['message']}" + (f" [{where}]" if where else "")
                )
            )
    raise typer.Exit(int(report.verdict))


def _clock_window(start: str | None, end: str | None) -> tuple[int, int] | None:
    if start is None and end is None:
        return None
    if start is None or end is None:
        raise UsageError("--clock-from and --clock-to go together")
    from acdkit import bundle  # only when asked: it loads DuckDB

    first, last = bundle.parse_time(start), bundle.parse_time(end)
    if last <= first:
        raise UsageError("--clock-to must be later than --clock-from")
    return bundle.time_ns(first), bundle.time_ns(last)


# -- package ------------------------------------------------------------------------------------


# bundle.DEFAULT_MAX_RECORDS, repeated so that the CLI need not load bundle (and DuckDB) at
# start; tests/test_cli.py checks that the two agree
PACKAGE_MAX_RECORDS = 10_000


@app.command("package")
@_handles_errors
def package_cmd(
    store_dir: StoreArg,
    incident: Annotated[
        str, typer.Option(help="Incident ID (letters, digits, . _ -).", show_default=False)
    ],
    start: Annotated[
        str, typer.Option("--from", help="Window start, ISO-8601 with zone.", show_default=False)
    ],
    end: Annotated[
        str,
        typer.Option(
            "--to", help="Window end (exclusive), ISO-8601 with zone.", show_default=False
        ),
    ],
    out: Annotated[Path, typer.Option(help="New directory for the bundle.", show_default=False)],
    src: Annotated[
        list[str] | None,
        typer.Option(
            help="Keep records whose source (client) is this address or CIDR; repeatable."
        ),
    ] = None,
    dst: Annotated[
        list[str] | None,
        typer.Option(help="Keep records whose destination (resolver) is this address or CIDR."),
    ] = None,
    max_records: Annotated[
        int, typer.Option(min=1, help="Refuse to disclose more records than this.")
    ] = PACKAGE_MAX_RECORDS,
    key: KeyOpt = None,
    custodian_key: Annotated[
        Path | None,
        typer.Option(
            "--custodian-key",
            envvar="ACDKIT_CUSTODIAN_KEY",
            help="Your custodian private key: the export is logged as a CUSTODY entry signed "
            "by it (sealed by the next seal). Without it the bundle says that no custodian "
            "signed its export.",
            show_default=False,
        ),
    ] = None,
    recipient: Annotated[
        str | None,
        typer.Option("--recipient", help="Whom the bundle is exported for (the entry's 'to')."),
    ] = None,
    handler: HandlerOpt = None,
    custody_note: Annotated[
        str | None, typer.Option("--custody-note", help="A note for the export's entry.")
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Build a submission bundle: summary, summarized logs, proofs, custody, signed manifest."""
    st = store.Store.open(store_dir)
    from acdkit import bundle
    from acdkit.cli_custody import party_option
    from acdkit.cli_incident import _custodian

    window = bundle.Window(
        bundle.parse_time(start), bundle.parse_time(end), tuple(src or ()), tuple(dst or ())
    )
    sealer = _signer_for(st, key)
    custodian = _custodian(custodian_key, st) if custodian_key is not None else None
    report = bundle.package(
        st,
        sealer,
        incident,
        window,
        out,
        max_records,
        custodian,
        party_option(recipient, "--recipient"),
        party_option(handler, "--handler"),
        party_option(custody_note, "--custody-note", 1024),
    )
    if json_out:
        _emit({"command": "package", **bundle.describe(report)})
        return
    err.print(
        f"[green]packaged[/] incident {report.incident} into {report.out}: "
        f"{sum(report.disclosed.values()):,} records disclosed "
        f"({', '.join(f'{t} {n:,}' for t, n in report.disclosed.items() if n)}), "
        f"{report.files - 1} files and their signed manifest, "
        f"checkpoint {report.checkpoint_size:,}"
    )
    for flag in report.clock_flags:
        err.print(f"[yellow]clock[/] {escape(flag)}")
    if report.pruned:
        gone = sum(p["records"] for p in report.pruned)
        err.print(
            f"[yellow]pruned[/] {gone:,} records of {len(report.pruned)} pruned segments "
            "fall in this window by their SEALs' time ranges: they are gone under the declared "
            "retention and not in the bundle (`acdkit verify STORE --root R` names the policy)"
        )
    custody = report.custody
    if "pending" in custody:
        err.print(
            f"custody: export signed by custodian key {custody['custodian_key_id']}, queued "
            f"for the next seal (manifest sha256 {custody['manifest_sha256'][:16]}…)"
        )
    else:
        err.print(
            "[yellow]custody[/] no custodian signed this export (no --custodian-key): the "
            "bundle says so in custody/export.json and no CUSTODY entry is logged"
        )
    # a recipient pins the key received out of band, not the copy inside the bundle
    err.print(
        f"check it with: acdkit verify {report.out} --root ROOT_VKEY (or --key with the "
        "current sealer vkey from `acdkit keys show`); send the vkey by another channel"
    )


# -- prune --------------------------------------------------------------------------------------


@app.command("prune")
@_handles_errors
def prune_cmd(
    store_dir: StoreArg,
    below: Annotated[
        int | None,
        typer.Option(
            "--below",
            envvar="ACDKIT_PRUNE_BELOW",
            min=1,
            help="Prune the segments that end at or below this index \\[default: the bound "
            "the trust policy declares with prune-below; more is refused].",
            show_default=False,
        ),
    ] = None,
    key: KeyOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Remove the records of old segments, as the root-signed trust policy declares.

    The store must verify first. A PRUNE entry naming the policy is sealed into the log
    (with whatever is staged), then each whole segment that ends at or below the bound loses
    its Parquet files and segment key and keeps the hashes every checkpoint root needs
    (pruned.range); `acdkit verify --root` then reports "pruned below N per policy P". A
    kill leaves a store that verifies; run the command again to finish.

    Exit codes: 0 pruned (or nothing to prune), 2 usage (no declared bound, a bound above
    it or beyond the log), 6 IO or another process holds the store; a store that does not
    verify first is refused with its verdict's exit code, and nothing is removed.
    """
    from acdkit import prune  # only when asked

    st = store.Store.open(store_dir)
    report = prune.prune(st, _signer_for(st, key), below)
    if json_out:
        _emit(
            {
                "command": "prune",
                "store": str(st.root),
                "bound": report.bound,
                "declared": report.declared,
                "policy_serial": report.policy_serial,
                "policy_sha256": report.policy_sha256,
                "logged_at_index": report.logged_at,
                "seal": _seal_doc(report.sealed) if report.sealed else None,
                "segments": report.segments,
                "records": report.records,
                "finished": report.finished,
            }
        )
        return
    if report.sealed is not None:
        _print_seal(report.sealed)
    if report.logged_at is None:
        err.print(
            f"nothing to prune below {report.bound:,}: no segment with records ends at or "
            f"below it (trust policy {report.policy_serial} allows {report.declared:,}); "
            "no PRUNE entry logged"
        )
        return
    err.print(
        f"pruning below {report.bound:,} per trust policy {report.policy_serial} "
        f"(sha256 {report.policy_sha256[:16]}…, allows {report.declared:,}), logged at index "
        f"{report.logged_at:,}"
    )
    for s in report.segments:
        err.print(
            f"[green]pruned[/] segment {s['segment']}: {s['records']:,} records removed "
            f"({s['bytes_freed']:,} bytes), {s['hashes_kept']} hashes kept"
        )
    for name in report.finished:
        err.print(f"[yellow]finished[/] the interrupted prune of segment {name}")
    if not report.segments and not report.finished:
        err.print(f"nothing left to prune below {report.bound:,}")


# -- checkpoint and witness ---------------------------------------------------------------------

EXPORT_LIMIT = witness.MAX_EXPORT_BYTES


@app.command("checkpoint")
@_handles_errors
def checkpoint_cmd(
    store_dir: StoreArg,
    since: Annotated[
        int,
        typer.Option(
            "--since",
            min=0,
            help="The size the witness cosigned last (the `size` of its state): add a "
            "consistency proof from it. 0 gives the checkpoint alone.",
        ),
    ] = 0,
    json_out: JsonOpt = False,
) -> None:
    """Print the newest checkpoint and a consistency proof, for a witness on another host.

    The output is the text `acdkit witness -` reads (docs/evidence-format.md §8.1.4); with
    --json, that text is the document's `export`.
    """
    export = witness.export_checkpoint(store.Store.open(store_dir), since)
    if json_out:
        _emit(
            {
                "command": "checkpoint",
                "old_size": export.old_size,
                "proof_hashes": len(export.proof),
                "export": export.encode().decode(),
            }
        )
        return
    sys.stdout.buffer.write(export.encode())
    sys.stdout.flush()


class _WitnessGroup(TyperGroup):
    """`acdkit witness SOURCE …` cosigns; only `acdkit witness init …` is a subcommand."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h"):
            args = ["cosign", *args]
        return super().parse_args(ctx, args)


witness_app = typer.Typer(
    cls=_WitnessGroup,
    help="Cosign a log's checkpoints after checking they extend the last one seen "
    "(`acdkit witness SOURCE --key K --state F`), or create a witness key "
    "(`acdkit witness init`).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    pretty_exceptions_show_locals=False,
)
app.add_typer(witness_app, name="witness")

WitnessKeyOpt = Annotated[
    Path,
    typer.Option(
        "--key",
        envvar="ACDKIT_WITNESS_KEY",
        help="The witness's private key file (mode 0600, outside every store).",
        show_default=False,
    ),
]


@witness_app.command("init")
@_handles_errors
def witness_init_cmd(
    key: WitnessKeyOpt,
    name: Annotated[
        str,
        typer.Option(
            "--name",
            envvar="ACDKIT_WITNESS_NAME",
            help="The witness's name in its signature lines, e.g. witness.example.org/ci.",
            show_default=False,
        ),
    ],
    json_out: JsonOpt = False,
) -> None:
    """Create a witness key pair; print its vkey (the private key stays in --key)."""
    signer = witness.init_witness(key, name)
    vkey = signer.verifier.vkey()
    if json_out:
        _emit({"command": "witness init", "key_path": str(key), "vkey": vkey})
        return
    err.print(
        f"[green]created[/] witness key {key} (private, mode 0600)\n"
        "Give the vkey line below to verifiers (acdkit verify --witness VKEY)."
    )
    sys.stdout.write(vkey + "\n")


def _read_export(source: Path) -> witness.CheckpointExport:
    if str(source) == "-":
        data = sys.stdin.buffer.read(EXPORT_LIMIT + 1)
    else:
        data = read_bounded(source, EXPORT_LIMIT, "checkpoint export")
    return witness.CheckpointExport.parse(data)


@witness_app.command("cosign")
@_handles_errors
def witness_cosign_cmd(
    source: Annotated[
        Path,
        typer.Argument(
            help="An evidence store, or a file holding the output of `acdkit checkpoint` "
            "('-' reads it from stdin).",
            show_default=False,
        ),
    ],
    key: WitnessKeyOpt,
    state: Annotated[
        Path,
        typer.Option(
            "--state",
            envvar="ACDKIT_WITNESS_STATE",
            help="The witness's state for this log (created on first use; keep it on the "
            "witness host). Left untouched when the witness refuses.",
            show_default=False,
        ),
    ],
    log_key: Annotated[
        str | None,
        typer.Option(
            "--log-key",
            envvar="ACDKIT_WITNESS_LOG_KEY",
            help="Pin the log's sealer vkey (a line or a file) on the first run; without "
            "it a store's own key is trusted on first use.",
            show_default=False,
        ),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            help="Directory for the cosigned checkpoint \\[default: STORE/cosignatures; "
            "needed when SOURCE is not a store].",
            show_default=False,
        ),
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Cosign the log's newest checkpoint if it extends the last one this witness cosigned.

    A smaller checkpoint (rollback), another root for the same size (fork) or a failed
    consistency proof is refused as TAMPERED, and the state is left as it was.
    """
    witness.refuse_key_in_store(key, source if source.is_dir() else None)
    signer = keys.load_witness_signer(key)
    pinned = _pinned(log_key, "--log-key")
    now = int(time.time())
    if source.is_dir():
        result = witness.witness_store(store.Store.open(source), signer, state, now, out, pinned)
    else:
        if out is None:
            raise UsageError("--out is needed when SOURCE is a checkpoint export, not a store")
        result = witness.witness(_read_export(source), signer, state, out, now, pinned)
    if json_out:
        _emit(
            {
                "command": "witness cosign",
                "origin": result.origin,
                "tree_size": result.size,
                "root": result.root.hex(),
                "previous_size": result.previous,
                "timestamp": result.timestamp,
                "cosignature": str(result.written),
                "log_key_id": result.log_key.key_id.hex(),
                "log_key_source": result.key_source,
                "notes": result.notes,
            }
        )
    for note in result.notes:
        err.print(f"[yellow bold]warning:[/] {note}")
    if result.previous is None:
        since = "first checkpoint seen"
    elif result.previous == result.size:
        since = "the same as last time, with a new timestamp"
    else:
        since = f"consistent with {result.previous:,}"
    err.print(
        f"[green]cosigned[/] checkpoint {result.size:,} of {result.origin} "
        f"({since}) at {result.timestamp} -> {result.written}"
    )


def _unwrap_help(typer_app: typer.Typer) -> None:
    """Join the single line breaks of each command's docstring: Typer 0.29 keeps them in
    the paragraphs after the first, so --help broke lines at the source's 100 columns and
    again at the terminal's ("... of them, 5" / "(POLICY) when ...")."""
    for info in typer_app.registered_commands:
        doc = info.help or (info.callback.__doc__ if info.callback else None)
        if doc:
            paragraphs = inspect.cleandoc(doc).split("\n\n")
            info.help = "\n\n".join(" ".join(p.split()) for p in paragraphs)
    for group in typer_app.registered_groups:
        if group.typer_instance is not None:
            _unwrap_help(group.typer_instance)


_unwrap_help(app)


def main() -> None:
    """Console entry point; an unexpected exception exits 70, never a verdict's code."""
    try:
        app()
    except KeyboardInterrupt:
        err.print("aborted")
        sys.exit(130)
    except Exception as exc:
        # no traceback locals, no arguments: a key path or key bytes must not reach CI logs
        err.print(f"[red]internal error:[/] {type(exc).__name__}: {escape(str(exc))}")
        err.print("  please report this with the command you ran (-vv shows more)")
        if logging.getLogger().isEnabledFor(logging.DEBUG):
            traceback.print_exc()  # -vv: the developer asked for it; still exit 70
        sys.exit(70)
