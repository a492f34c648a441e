"""`acdkit incident …`, `acdkit classify` and `acdkit kpi`: the incident clocks.

Every decision is signed with the responder's custodian key and queued for the next seal
(``--seal`` seals it at once with the sealer key).  ``incident status`` exits 5 (POLICY)
when a stage is overdue, so a cron job can alert on it.
"""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from acdkit import (
    clocks,
    custodians,
    incident,
    keys,
    kpi,
    reasons,
    regimes,
    store,
    tickets,
)
from acdkit.cli import (
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
from acdkit.decision import ACTIONS, MAX_WHY_BYTES, Decision
from acdkit.errors import ExitCode, UsageError
from acdkit.note import SignedNote

__all__ = ["classify_cmd", "incident_app", "kpi_cmd"]

incident_app = typer.Typer(
    add_completion=False,  # a subcommand group; the top level has none either
    help="Run an incident on the clock: open it, log signed decisions, see every running "
    "deadline, send the T+30 tickets, close it.",
    no_args_is_help=True,
)

IncidentOpt = Annotated[
    str,
    typer.Option(
        "--incident",
        envvar="ACDKIT_INCIDENT",
        help="Incident ID (letters, digits, . _ -).",
        show_default=False,
    ),
]
CustodianKeyOpt = Annotated[
    Path | None,
    typer.Option(
        "--custodian-key",
        envvar="ACDKIT_CUSTODIAN_KEY",
        help="Your custodian private key (`acdkit keys new --role custodian`) "
        "\\[default: $ACDKIT_KEY_DIR/custodian.key].",
        show_default=False,
    ),
]
WhyOpt = Annotated[
    str,
    typer.Option(
        "--why",
        help=f"Why: the reasoning, in your words (at most {MAX_WHY_BYTES} bytes).",
        show_default=False,
    ),
]
AtOpt = Annotated[
    str | None,
    typer.Option(
        "--at", help="When it happened, ISO-8601 with a zone \\[default: now].", show_default=False
    ),
]
ActorOpt = Annotated[
    str | None,
    typer.Option(
        "--actor", envvar="ACDKIT_ACTOR", help="Who \\[default: the custodian key's name]."
    ),
]
SealOpt = Annotated[
    bool, typer.Option("--seal", help="Seal the decision now (needs the sealer key, --key).")
]
ListOpt = Annotated[list[str] | None, typer.Option(show_default=False)]


def _now() -> datetime:
    return datetime.now(UTC)


def _parse(value: str) -> datetime:
    from acdkit.bundle import parse_time  # bundle needs DuckDB: not at start-up (verify)

    return parse_time(value)


def _time(value: str | None) -> datetime:
    return _parse(value) if value else _now()


def _custodian(path: Path | None, st: store.Store) -> keys.Signer:
    """The responder's key; never one inside the store, where its insider could use it."""
    path = path or keys.default_key_dir() / "custodian.key"
    inside, root = path.resolve(), st.root.resolve()
    if inside == root or root in inside.parents:
        raise UsageError(
            f"the custodian key {path} lies inside the evidence store",
            hint="keep private keys outside every store (the default is the user key directory)",
        )
    return custodians.load_custodian(path)


def _data() -> tuple[regimes.RegimeBook, reasons.ReasonCodes]:
    book = regimes.load()
    return book, reasons.load(book=book)


def _record(
    st: store.Store,
    signer: keys.Signer,
    decisions: list[Decision],
    do_seal: bool,
    key: Path | None,
    json_out: bool,
) -> dict[str, Any]:
    book, codes = _data()
    sealer = _signer_for(st, key) if do_seal else None
    if sealer is not None:
        from acdkit.seal import check_sealer

        check_sealer(st, sealer)  # a wrong --key fails before anything is queued
    queued = [p.name for p in incident.record(st, signer, decisions, book, codes)]
    doc: dict[str, Any] = {"queued": queued, "custodian_key_id": signer.verifier.key_id.hex()}
    if sealer is not None:
        report = _seal_queued(st, sealer, json_out, queued)
        doc["seal"] = _seal_doc(report)
        if not json_out:
            _print_seal(report)
    return doc


def _say(decisions: list[Decision], doc: dict[str, Any]) -> None:
    for d in decisions:
        at = incident.from_ns(d.at_ns).isoformat().replace("+00:00", "Z")
        err.print(f"[green]logged[/] {d.incident}: {d.action} at {at} by {escape(d.actor)}")
    if "seal" not in doc:
        err.print("queued for the next seal (`acdkit seal STORE`, or pass --seal)")


def _split(values: list[str] | None) -> tuple[str, ...]:
    """Repeatable options that also take comma-separated lists."""
    out: list[str] = []
    for value in values or []:
        out += [v.strip() for v in value.split(",") if v.strip() and v.strip() not in out]
    return tuple(out)


@incident_app.command("open")
@_handles_errors
def incident_open_cmd(
    store_dir: StoreArg,
    incident_id: IncidentOpt,
    why: WhyOpt,
    detected: Annotated[
        str | None, typer.Option(help="Detection time \\[default: now].", show_default=False)
    ] = None,
    recognized: Annotated[
        str | None,
        typer.Option(
            help="Recognition time (認知), when it differs from detection: the reporting "
            "clocks of the reason codes start here \\[default: the detection time].",
            show_default=False,
        ),
    ] = None,
    first_observed: Annotated[
        str | None,
        typer.Option(
            help="When the first trace of it was observed (for MTTD).", show_default=False
        ),
    ] = None,
    severity: Annotated[str | None, typer.Option(help="Initial severity, e.g. high.")] = None,
    reason: Annotated[
        list[str] | None, typer.Option("--reason", help="Initial reason code; repeatable.")
    ] = None,
    regime: Annotated[
        list[str] | None,
        typer.Option(
            "--regime",
            envvar="ACDKIT_REGIMES",
            help="Regime in scope (regimes.yaml id); repeatable \\[default: its default_scope].",
        ),
    ] = None,
    flag: Annotated[
        list[str] | None, typer.Option("--flag", help="Incident or entity flag; repeatable.")
    ] = None,
    custodian_key: CustodianKeyOpt = None,
    actor: ActorOpt = None,
    do_seal: SealOpt = False,
    key: KeyOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Open an incident: a detection decision, then a recognition decision with the reasons."""
    st = store.Store.open(store_dir)
    signer = _custodian(custodian_key, st)
    book, _codes = _data()
    det = _time(detected)
    rec = _parse(recognized) if recognized else det
    if rec < det:
        raise UsageError("--recognized is before --detected")
    obs = _parse(first_observed) if first_observed else None
    if obs is not None and obs > det:
        raise UsageError("--first-observed is after --detected")
    who = actor or signer.name
    scope = _split(regime) or book.default_scope
    opening = Decision(
        incident_id,
        "open",
        incident.to_ns(det),
        0,
        who,
        why,
        severity=severity,
        regimes=tuple(scope),
        flags=_split(flag),
        observed_ns=incident.to_ns(obs) if obs else None,
    )
    recognition = Decision(
        incident_id, "recognize", incident.to_ns(rec), 0, who, why, reasons=_split(reason)
    )
    doc = _record(st, signer, [opening, recognition], do_seal, key, json_out)
    if json_out:
        _emit({"command": "incident open", "incident": incident_id, **doc})
    else:
        _say([opening, recognition], doc)


_BUNDLE_ACTIONS = ("package", "submit")


def _bundle_refs(st: store.Store, incident_id: str, path: Path) -> list[str]:
    """Verify a bundle of this log and incident; its manifest hash goes into the decision."""
    from acdkit import bundle

    report = bundle.verify_bundle(path, st.verifier())
    if report.verdict != ExitCode.OK:
        msg = report.failure["message"] if report.failure else report.verdict_name
        raise UsageError(f"the bundle does not verify ({report.verdict_name}: {msg})")
    if report.facts.get("incident") != incident_id:
        raise UsageError(f"the bundle is of incident {report.facts.get('incident')}")
    manifest = (path / bundle.MANIFEST).read_bytes()
    SignedNote.parse(manifest, bundle.MANIFEST_LIMIT)
    digest = hashlib.sha256(manifest).hexdigest()
    return [f"bundle:sha256:{digest}", f"bundle-checkpoint:{report.facts['tree_size']}"]


@incident_app.command("log")
@_handles_errors
def incident_log_cmd(
    store_dir: StoreArg,
    incident_id: IncidentOpt,
    action: Annotated[
        str,
        typer.Option(
            help=f"What: {', '.join(a for a in ACTIONS if a != 'open')}.", show_default=False
        ),
    ],
    why: WhyOpt,
    at: AtOpt = None,
    reason: Annotated[list[str] | None, typer.Option("--reason", help="Reason code.")] = None,
    event: Annotated[
        list[str] | None,
        typer.Option("--event", help="Awareness event this sets (regimes.yaml events)."),
    ] = None,
    stage: Annotated[
        list[str] | None,
        typer.Option("--stage", help="REGIME/STAGE this submits or notifies (or waives)."),
    ] = None,
    obj: Annotated[
        str | None,
        typer.Option("--object", help="What it was done to: a recipient, a segment, a URL."),
    ] = None,
    severity: Annotated[str | None, typer.Option(help="Severity (with --action severity).")] = None,
    regime: Annotated[list[str] | None, typer.Option("--regime", help="Regime in scope.")] = None,
    flag: Annotated[list[str] | None, typer.Option("--flag", help="Flag.")] = None,
    ref: Annotated[list[str] | None, typer.Option("--ref", help="Evidence reference.")] = None,
    bundle_dir: Annotated[
        Path | None,
        typer.Option(
            "--bundle",
            help="A bundle of this incident (package, submit): verified now, its manifest "
            "hash recorded.",
        ),
    ] = None,
    custodian_key: CustodianKeyOpt = None,
    actor: ActorOpt = None,
    do_seal: SealOpt = False,
    key: KeyOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Log a decision: who, when, what, why, the reason code and what was done."""
    if action not in ACTIONS or action == "open":
        raise UsageError(f"--action must be one of {', '.join(a for a in ACTIONS if a != 'open')}")
    if action == "severity" and severity is None:
        raise UsageError("--action severity needs --severity")
    st = store.Store.open(store_dir)
    signer = _custodian(custodian_key, st)
    refs = list(_split(ref))
    if bundle_dir is not None:
        if action not in _BUNDLE_ACTIONS:
            raise UsageError("--bundle goes with --action package or submit")
        refs += _bundle_refs(st, incident_id, bundle_dir)
    decision = Decision(
        incident_id,
        action,
        incident.to_ns(_time(at)),
        0,
        actor or signer.name,
        why,
        severity=severity,
        reasons=_split(reason),
        events=_split(event),
        regimes=_split(regime),
        flags=_split(flag),
        stages=_split(stage),
        object=obj,
        refs=tuple(refs),
    )
    doc = _record(st, signer, [decision], do_seal, key, json_out)
    if json_out:
        _emit({"command": "incident log", "incident": incident_id, "action": action, **doc})
    else:
        _say([decision], doc)


@incident_app.command("close")
@_handles_errors
def incident_close_cmd(
    store_dir: StoreArg,
    incident_id: IncidentOpt,
    why: WhyOpt,
    at: AtOpt = None,
    custodian_key: CustodianKeyOpt = None,
    actor: ActorOpt = None,
    do_seal: SealOpt = False,
    key: KeyOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Close an incident. Statutory stages still due keep running after it."""
    st = store.Store.open(store_dir)
    signer = _custodian(custodian_key, st)
    decision = Decision(
        incident_id, "close", incident.to_ns(_time(at)), 0, actor or signer.name, why
    )
    doc = _record(st, signer, [decision], do_seal, key, json_out)
    if json_out:
        _emit({"command": "incident close", "incident": incident_id, **doc})
    else:
        _say([decision], doc)


# -- status -------------------------------------------------------------------------------------


def _duration(seconds: int) -> str:
    days, rest = divmod(seconds, 86_400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    if days:
        return f"{days}d {hours}h"
    return f"{hours}h {minutes:02d}m" if hours else f"{minutes}m {rest % 60:02d}s"


_STYLE = {
    clocks.OVERDUE: "bold red",
    clocks.LATE: "yellow",
    clocks.RUNNING: "cyan",
    clocks.MET: "green",
    clocks.DONE: "green",
    clocks.WAITING: "dim",
    clocks.NOT_APPLICABLE: "dim",
}


def _state(clock: clocks.Clock, now: datetime) -> str:
    """The state with the time that matters for it: left, overdue by, or late by."""
    left = clock.left(now)
    if clock.state == clocks.RUNNING and left is not None:
        text = f"{_duration(int(left.total_seconds()))} left"
    elif clock.state == clocks.OVERDUE and left is not None:
        text = f"OVERDUE {_duration(int(-left.total_seconds()))}"
    elif clock.state == clocks.LATE and clock.done_at and clock.deadline:
        text = f"late {_duration(int((clock.done_at - clock.deadline).total_seconds()))}"
    else:
        text = clock.state.replace("-", " ")
    return f"[{_STYLE.get(clock.state, '')}]{text}[/]"


def _missing(clock: clocks.Clock) -> str:
    if clock.state == clocks.WAITING:
        return f"waits for {clock.starts_at}"
    tickets_to = [m.removeprefix("ticket to ") for m in clock.missing if m.startswith("ticket to ")]
    others = [m for m in clock.missing if not m.startswith("ticket to ")]
    if len(tickets_to) > 1:
        others.append("tickets to " + ", ".join(tickets_to))
    elif tickets_to:
        others.append(f"ticket to {tickets_to[0]}")
    return "; ".join(others)


def _status_table(
    inc: incident.Incident, found: list[clocks.Clock], now: datetime, width: int
) -> Table:
    """Four narrow columns that fit 80 columns; what is missing goes below (_missing_grid)."""
    queued = sum(1 for x in inc.logged if not x.sealed)
    title = f"incident {inc.id}" + (" (closed)" if inc.closed else "")
    if queued:
        title += f" — {queued} decision{'s' if queued > 1 else ''} queued, not sealed yet"
    rows = []
    for c in found:
        basis = c.stage.basis.replace("internal_policy", "internal")
        mark = "" if c.regime.verified or c.deadline is None else "*"
        rows.append((c.key, basis, c.deadline_text() + mark, _state(c, now)))
    # two blanks between columns, one where the longest names would not fit otherwise
    needed = sum(max((len(Text.from_markup(r[i])) for r in rows), default=8) for i in range(4))
    gap = 2 if needed + 6 <= width else 1
    table = Table(
        title=title, title_justify="left", box=None, padding=(0, gap, 0, 0), pad_edge=False
    )
    table.add_column("regime/stage", no_wrap=True)  # as --stage takes it: never broken
    table.add_column("basis", no_wrap=True)
    table.add_column("deadline")
    table.add_column("state", no_wrap=True)
    for row in rows:
        table.add_row(*row)
    return table


def _missing_grid(found: list[clocks.Clock]) -> Table | None:
    rows = [(c.key, _missing(c)) for c in found if _missing(c)]
    if not rows:
        return None
    grid = Table.grid(padding=(0, 2, 0, 0))
    grid.add_column(no_wrap=True)
    grid.add_column()
    for key, text in rows:
        grid.add_row(f"  {key}", escape(text))
    return grid


def _not_open_line(inc: incident.Incident, now: datetime) -> str:
    opened = inc.opened
    when = (
        f"it was detected at {incident.from_ns(opened.at_ns).isoformat().replace('+00:00', 'Z')}"
        if opened is not None
        else "it has no open decision"
    )
    return f"incident {inc.id}: not open yet at {_iso(now)} ({when}): no clock runs"


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


@incident_app.command("status")
@_handles_errors
def incident_status_cmd(
    store_dir: StoreArg,
    incident_id: Annotated[
        str | None, typer.Option("--incident", help="Only this incident \\[default: all].")
    ] = None,
    at: Annotated[
        str | None,
        typer.Option(
            "--at", help="Evaluate at this moment (ISO-8601 with a zone) \\[default: now]."
        ),
    ] = None,
    waiting: Annotated[
        bool, typer.Option("--waiting", help="Also list stages whose clock has not started.")
    ] = False,
    json_out: JsonOpt = False,
) -> None:
    """Every clock of every incident: deadline, time left or overdue, what is missing.

    Exit codes: 0 nothing overdue, 5 (POLICY) a stage is overdue; 1 a decision's signature
    fails, 4 a decision does not parse, 2 usage, 6 IO.
    """
    st = store.Store.open(store_dir)
    now = _time(at)
    book, codes = _data()
    found = incident.incidents(incident.read_logged(st))
    if incident_id is not None:
        if incident_id not in found:
            raise UsageError(f"no incident {incident_id} in this store")
        found = {incident_id: found[incident_id]}
    docs, overdue, starred = [], 0, False
    if found and not json_out:
        err.print(f"status as of {_iso(now)}")
    for inc in found.values():
        all_clocks = clocks.evaluate(inc, book, codes, now)
        overdue += sum(c.state == clocks.OVERDUE for c in all_clocks)
        shown = [c for c in all_clocks if waiting or c.state != clocks.WAITING]
        docs.append(_incident_doc(inc, all_clocks, now, codes))
        if json_out:
            continue
        if inc.until(now).opened is None:  # --at before the detection: say so, no empty table
            err.print(_not_open_line(inc, now))
            continue
        err.print(_status_table(inc, shown, now, err.width))
        grid = _missing_grid(shown)
        if grid is not None:
            err.print("still missing:")
            err.print(grid)
        starred = starred or any(not c.regime.verified and c.deadline for c in shown)
    if starred:
        err.print("* not checked against the primary text (regimes.yaml `verified: false`)")
    if json_out:
        _emit(
            {
                "command": "incident status",
                "at": _iso(now),
                "regimes_sha256": book.digest,
                "incidents": docs,
                "overdue": overdue,
            }
        )
    elif not found:
        err.print("no incidents in this store")
    if overdue:
        err.print(f"[bold red]{overdue} stages overdue[/] (exit 5)")
        raise typer.Exit(int(ExitCode.POLICY))


def _incident_doc(
    inc: incident.Incident, found: list[clocks.Clock], now: datetime, codes: reasons.ReasonCodes
) -> dict[str, Any]:
    state = inc.until(now)
    events = state.events(codes)
    opened = inc.opened
    return {
        "incident": inc.id,
        "opened": state.opened is not None,
        "detected_at": _iso(incident.from_ns(opened.at_ns)) if opened else None,
        "closed": state.closed is not None,
        "severity": state.severity(),
        "reason_codes": state.reasons(),
        "scope": state.scope(),
        "flags": sorted(state.flags(codes)),
        "awareness": {e: t.isoformat().replace("+00:00", "Z") for e, t in sorted(events.items())},
        "decisions": len(inc.logged),
        "sealed": sum(1 for x in inc.logged if x.sealed),
        "clocks": [c.to_json(now) for c in found],
    }


# -- tickets ------------------------------------------------------------------------------------

_WEBHOOK = re.compile(r"([A-Za-z0-9_.-]+)=([A-Za-z][A-Za-z0-9+.-]*://.*)", re.DOTALL)
_RECIPIENT = re.compile(r"[a-z0-9_]+")


def _webhooks(values: list[str] | None) -> tuple[str | None, dict[str, str]]:
    """The default webhook and the per-recipient ones; each URL checked, none echoed."""
    default, per = None, {}
    for n, value in enumerate(values or [], 1):
        named = _WEBHOOK.fullmatch(value)
        if named is None:
            tickets.parse_webhook(value, f"--webhook value {n}")
            default = value
            continue
        name = named.group(1)
        if not _RECIPIENT.fullmatch(name):
            raise UsageError(
                f"--webhook value {n}: a recipient is written in lower case, as regimes.yaml "
                "names it (e.g. police=https://…)"
            )
        tickets.parse_webhook(named.group(2), f"--webhook value {n} (for {name})")
        per[name] = named.group(2)
    return default, per


def _log_head(st: store.Store) -> dict[str, Any]:
    files = [p for p in st.checkpoint_files() if p.is_file()]
    if not files:
        return {"origin": st.origin, "tree_size": 0, "root": None}
    from acdkit.note import Checkpoint

    data = files[-1].read_bytes()
    cp = Checkpoint.from_text(SignedNote.parse(data).text)
    return {
        "origin": st.origin,
        "tree_size": cp.size,
        "root": cp.root.hex(),
        "checkpoint_sha256": hashlib.sha256(data).hexdigest(),
    }


@incident_app.command("ticket")
@_handles_errors
def incident_ticket_cmd(
    store_dir: StoreArg,
    incident_id: IncidentOpt,
    webhook: Annotated[
        list[str] | None,
        typer.Option(
            "--webhook",
            envvar="ACDKIT_TICKET_WEBHOOK",
            help="URL to POST every ticket to, or RECIPIENT=URL for one recipient; "
            "repeatable. Without one, tickets are only rendered.",
            show_default=False,
        ),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Write <recipient>.json and .txt here.", show_default=False),
    ] = None,
    at: Annotated[
        str | None,
        typer.Option(
            "--at",
            help="Render as of this moment and log the deliveries at it (drills, replays) "
            "\\[default: now].",
        ),
    ] = None,
    custodian_key: CustodianKeyOpt = None,
    actor: ActorOpt = None,
    do_seal: SealOpt = False,
    key: KeyOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Render the T+30 tickets (JSON and text, per recipient) and POST them to webhooks.

    Each delivery and the webhook's response are logged as a decision (ticket-delivered or
    ticket-failed). Exit 6 (IO) when a delivery failed.
    """
    st = store.Store.open(store_dir)
    default, per = _webhooks(webhook)
    signer = _custodian(custodian_key, st) if (default or per) else None
    now = _time(at)
    book, codes = _data()
    found = incident.incidents(incident.read_logged(st))
    if incident_id not in found:
        raise UsageError(f"no incident {incident_id} in this store")
    rendered = tickets.render(found[incident_id], book, codes, now, _log_head(st))
    unknown = sorted(set(per) - {t.recipient for t in rendered})
    if unknown:  # a typo must not leave a recipient silently without its ticket
        raise UsageError(
            f"--webhook names no recipient of this incident's tickets: {', '.join(unknown)}",
            hint=f"recipients: {', '.join(t.recipient for t in rendered) or 'none'}",
        )
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        for t in rendered:
            (out / f"{t.recipient}.json").write_bytes(t.body())
            (out / f"{t.recipient}.txt").write_text(t.text, encoding="utf-8")
    results, decisions = [], []
    for t in rendered:
        url = per.get(t.recipient, default)
        entry: dict[str, Any] = {"recipient": t.recipient, "sha256": t.sha256}
        if url is not None and signer is not None:
            with err.status(f"posting the ticket for {t.recipient} to {tickets.webhook_host(url)}"):
                sent = tickets.deliver(t, url)
            entry.update(delivered=sent.ok, status=sent.status, reason=sent.reason)
            when = now if at else _now()
            decisions.append(
                _delivery_decision(incident_id, t, sent, url, actor or signer.name, when)
            )
        results.append(entry)
        if not json_out:  # one line as each delivery ends: a slow webhook shows
            err.print(_ticket_line(t, entry, url))
    doc: dict[str, Any] = {}
    if decisions and signer is not None:
        doc = _record(st, signer, decisions, do_seal, key, json_out)
    if json_out:
        _emit({"command": "incident ticket", "incident": incident_id, "tickets": results, **doc})
    elif decisions:
        _say(decisions, doc)
    if any(r.get("delivered") is False for r in results):
        # the document above already says which; one JSON document per run
        err.print("[red]error:[/] a ticket was not delivered (logged as ticket-failed)")
        raise typer.Exit(int(ExitCode.IO))


def _ticket_line(t: tickets.Ticket, entry: dict[str, Any], url: str | None) -> str:
    head = f"ticket for {t.recipient} (sha256 {t.sha256[:16]}…)"
    if "delivered" not in entry:
        return f"{head}: not sent (no webhook)"
    to = tickets.parse_webhook(url).origin if url else "?"
    if entry["delivered"]:
        return f"{head}: delivered to {to} ({entry['reason']})"
    return f"{head}: [red]FAILED[/] to {to}: {entry['reason']}"


def _delivery_decision(
    incident_id: str,
    t: tickets.Ticket,
    sent: tickets.Delivery,
    url: str,
    actor: str,
    when: datetime,
) -> Decision:
    refs = [f"ticket:sha256:{t.sha256}", f"webhook:{tickets.webhook_host(url)}"]
    if sent.status is not None:
        refs.append(f"http-status:{sent.status}")
    if sent.response_sha256 is not None:
        refs.append(f"response:sha256:{sent.response_sha256}")
    action = "ticket-delivered" if sent.ok else "ticket-failed"
    why = f"T+30 ticket by webhook: {sent.reason}"
    return Decision(
        incident_id,
        action,
        incident.to_ns(when),
        0,
        actor,
        why,
        object=t.recipient,
        stages=("acd-internal/tickets",),
        refs=tuple(refs),
    )


# -- classify and kpi -----------------------------------------------------------------------


@_handles_errors
def classify_cmd(
    store_dir: StoreArg,
    incident_id: IncidentOpt,
    geoip: Annotated[
        Path | None,
        typer.Option(
            "--geoip",
            envvar="ACDKIT_GEOIP",
            help="A MaxMind DB (.mmdb) to use instead of the shipped RIR data.",
            show_default=False,
        ),
    ] = None,
    home: Annotated[
        str, typer.Option("--home", envvar="ACDKIT_HOME_COUNTRY", help="Home country (ISO).")
    ] = "JP",
    domestic: Annotated[
        list[str] | None,
        typer.Option("--domestic", envvar="ACDKIT_DOMESTIC", help="CIDR counted as domestic."),
    ] = None,
    assets: Annotated[
        Path | None, typer.Option("--assets", envvar="ACDKIT_ASSETS", help="Asset inventory.")
    ] = None,
    kev: Annotated[
        Path | None, typer.Option("--kev", envvar="ACDKIT_KEV", help="CISA KEV JSON file.")
    ] = None,
    start: Annotated[str | None, typer.Option("--from", help="Window start.")] = None,
    end: Annotated[str | None, typer.Option("--to", help="Window end (exclusive).")] = None,
    ddos_sources: Annotated[
        int, typer.Option(min=2, help="Distinct sources per minute to one address for DDOS.")
    ] = 100,
    json_out: JsonOpt = False,
) -> None:
    """Suggest reason codes from the sealed records, with counts and examples.

    Nothing is applied: log the codes you accept with `acdkit incident log --action classify`.
    """
    from acdkit import classify

    st = store.Store.open(store_dir)
    known = incident.incidents(incident.read_logged(st))
    if incident_id not in known:
        raise UsageError(f"no incident {incident_id} in this store")
    geo = classify.mmdb_geo(geoip) if geoip else classify.rir_geo()
    window = (_parse(start) if start else None, _parse(end) if end else None)
    report = classify.classify(
        st,
        incident_id,
        geo,
        home.upper(),
        _split(domestic),
        classify.load_assets(assets) if assets else None,
        classify.load_kev(kev) if kev else None,
        window,
        ddos_sources,
        known[incident_id].reasons(),
    )
    if json_out:
        _emit({"command": "classify", **report.to_json()})
        return
    _, codes = _data()
    err.print(
        f"{report.records:,} sealed flows; directions "
        + ", ".join(f"{k} {v:,}" for k, v in report.directions.items())
        + f" (home {report.home}, {report.geo.name})"
    )
    for s in report.suggestions:
        mark = " (already recorded)" if s.code in report.already else ""
        title = codes.codes[s.code].title if s.code in codes.codes else {"ja": "", "en": ""}
        err.print(f"[bold]suggest {s.code}[/]{mark}: {title['ja']} / {title['en']}")
        for k, v in s.evidence.items():  # asset IDs and names come from the user's files
            err.print(escape(f"    {k}: {_plain(v)}"))
        for ex in s.examples[:3]:
            err.print(escape(f"    e.g. {_plain(ex)}"))
        for note in s.notes:
            err.print(escape(f"    note: {note}"))
    if not report.suggestions:
        err.print("no reason code suggested from these records")
    err.print("nothing applied: `acdkit incident log --action classify --reason CODE --why …`")


def _plain(value: Any) -> str:
    """Evidence for people: key=value words and comma lists, not Python's reprs."""
    if isinstance(value, dict):
        return " ".join(f"{k}={_plain(v)}" for k, v in value.items() if v is not None)
    if isinstance(value, list | tuple):
        return ", ".join(_plain(v) for v in value) or "-"
    return str(value)


@_handles_errors
def kpi_cmd(
    store_dir: StoreArg,
    at: Annotated[
        str | None, typer.Option("--at", help="Compute as of this moment \\[default: now].")
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """MTTD, MTTR, report-SLA achievement, audit-line completion, time to a verified bundle."""
    st = store.Store.open(store_dir)
    now = _time(at)
    book, codes = _data()
    report = kpi.compute(incident.incidents(incident.read_logged(st)), book, codes, now)
    doc = report.to_json()
    if json_out:
        _emit({"command": "kpi", **doc})
        return
    table = Table(title=f"KPIs over {report.incidents} incidents ({report.closed} closed)")
    table.add_column("measure")
    table.add_column("value", justify="right")
    for name, value in (
        ("MTTD (detected − first observed)", _secs(report.mttd_s)),
        ("MTTC (contained − detected)", _secs(report.mttc_s)),
        ("MTTR (recovered − detected)", _secs(report.mttr_s)),
        ("T+30 tickets on time", _share(doc["sla_t30"])),
        ("T+180 summary on time", _share(doc["sla_t180"])),
        ("internal stages on time", _share(doc["sla_internal"])),
        ("statutory stages on time", _share(doc["sla_statutory"])),
        ("audit line complete (closed incidents)", _share(doc["audit_line_completion"])),
        ("median recognition → verified bundle", _secs(report.recognition_to_bundle_median_s)),
    ):
        table.add_row(name, value)
    for key_, share in doc["sla_by_stage"].items():
        table.add_row(f"  {key_}", _share(share))
    err.print(table)


def _secs(value: float | None) -> str:
    return "-" if value is None else _duration(int(value))


def _share(doc: dict[str, Any]) -> str:
    if not doc["due"]:
        return "-"
    return f"{doc['met']}/{doc['due']} ({doc['ratio']:.0%})"
