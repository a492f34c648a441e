"""`acdkit timecheck`: options, the servers' table, the verdict.

Part of the command-line layer (it renders with Rich); the core is acdkit.timecheck.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Annotated, Any

import typer
from rich import box
from rich.markup import escape
from rich.table import Table

from acdkit import config, store, timecheck
from acdkit.anchor import iso
from acdkit.cli import JsonOpt, _emit, _handles_errors, _progress, _show_progress, err
from acdkit.clocksel import Reply, ServerResult, ServerSamples, lag
from acdkit.errors import AcdkitError
from acdkit.ntp import parse_server

__all__ = ["timecheck_cmd", "timecheck_doc"]

NS = 1_000_000_000


def _settings(path: Path | None) -> dict[str, Any]:
    return config.timecheck_settings(path)


@_handles_errors
def timecheck_cmd(
    store_dir: Annotated[
        Path | None,
        typer.Argument(
            help="Evidence store: the run is queued there as a CLOCK entry for the next seal.",
            envvar="ACDKIT_STORE",
            show_default=False,
        ),
    ] = None,
    servers: Annotated[
        list[str] | None,
        typer.Option(
            "--server",
            envvar="ACDKIT_NTP_SERVERS",
            help="An NTP server, HOST or HOST:PORT ([V6]:PORT); repeat for each (three or "
            "more, independent ones). $ACDKIT_NTP_SERVERS: blank-separated. Default: "
            "timecheck.servers of the config file.",
            show_default=False,
        ),
    ] = None,
    samples: Annotated[
        int | None,
        typer.Option(
            envvar="ACDKIT_NTP_SAMPLES",
            help=f"Requests per server, 1 to {timecheck.MAX_SAMPLES} "
            f"\\[default: {timecheck.DEFAULT_SAMPLES}].",
            show_default=False,
        ),
    ] = None,
    interval: Annotated[
        float | None,
        typer.Option(
            envvar="ACDKIT_NTP_INTERVAL",
            min=0,
            help="Seconds between two requests to one server, at most "
            f"{timecheck.MAX_WAIT_S:g} \\[default: {timecheck.DEFAULT_INTERVAL_S:g}].",
            show_default=False,
        ),
    ] = None,
    timeout: Annotated[
        float | None,
        typer.Option(
            envvar="ACDKIT_NTP_TIMEOUT",
            min=0.01,
            help=f"Seconds to wait for each reply, at most {timecheck.MAX_WAIT_S:g} "
            f"\\[default: {timecheck.DEFAULT_TIMEOUT_S:g}].",
            show_default=False,
        ),
    ] = None,
    min_agree: Annotated[
        int | None,
        typer.Option(
            "--min-agree",
            envvar="ACDKIT_NTP_MIN_AGREE",
            help="Servers that must agree (truechimers); fewer is POLICY "
            f"\\[default: {timecheck.DEFAULT_MIN_AGREE}].",
            show_default=False,
        ),
    ] = None,
    max_drift: Annotated[
        float | None,
        typer.Option(
            "--max-drift",
            envvar="ACDKIT_MAX_DRIFT",
            min=0,
            help="Seconds the local clock may be off (the whole error interval must lie "
            f"within ±this), at most {timecheck.MAX_DRIFT_S:,}; beyond it is POLICY "
            "\\[default: the store's trust policy drift-max-ms, else 1].",
            show_default=False,
        ),
    ] = None,
    config_file: Annotated[
        Path | None,
        typer.Option(
            "--config",
            envvar="ACDKIT_CONFIG",
            help="Config file \\[default: ~/.config/acdkit/config.toml].",
            show_default=False,
        ),
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Measure the local clock against several NTP servers; vote out false tickers.

    Exit 0 when enough servers agree and the clock is within --max-drift of them, 5
    (POLICY) when too few agree or the clock is off by more, 6 (IO) when no server
    answers. With STORE, the run (every sample, the result) is queued as a CLOCK entry
    that the next `acdkit seal` covers, and the newest RFC 3161 anchors are shown beside
    the NTP result as an authenticated bound; a CLOCK entry that cannot be queued is exit
    6, with the measurement still shown.
    """
    settings = _settings(config_file)
    names = servers or list(settings.get("servers", []))
    st = store.Store.open(store_dir) if store_dir is not None else None
    drift = _pick(max_drift, settings, "max_drift", None)
    with _progress(_show_progress(json_out), "timecheck") as progress:
        report = timecheck.timecheck(
            [parse_server(n) for n in names],
            samples=int(_pick(samples, settings, "samples", timecheck.DEFAULT_SAMPLES)),
            interval=float(_pick(interval, settings, "interval", timecheck.DEFAULT_INTERVAL_S)),
            timeout=float(_pick(timeout, settings, "timeout", timecheck.DEFAULT_TIMEOUT_S)),
            min_agree=int(_pick(min_agree, settings, "min_agree", timecheck.DEFAULT_MIN_AGREE)),
            max_drift_ns=None if drift is None else timecheck.drift_ns(float(drift)),
            store=st,
            progress=(lambda d, t: progress("requests", d, t)) if progress else None,
        )
    if json_out:
        _emit(
            {"command": "timecheck", "store": str(st.root) if st else None, **timecheck_doc(report)}
        )
    else:
        _print(report)
    raise typer.Exit(int(report.exit_code))


def _pick(given: float | None, settings: dict[str, Any], key: str, default: Any) -> Any:
    """The option, else the config file's value, else the default (0 is a value too)."""
    if given is not None:
        return given
    return settings.get(key, default)


# -- rendering ---------------------------------------------------------------------------------


def _refid(reply: Reply) -> str:
    """A reference clock's ASCII name (stratum 1, or a kiss code), else an IPv4 address."""
    text = reply.refid.rstrip(b"\0")
    if reply.stratum <= 1 and text and all(0x20 < b < 0x7F for b in text):
        return text.decode("ascii")
    return str(ipaddress.IPv4Address(reply.refid))


def _server_doc(server: ServerSamples, result: ServerResult) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "server": server.name,
        "address": server.address,
        "port": server.port,
        "result": result.result,
        "offset_ns": result.offset_ns,
        "delay_ns": result.delay_ns,
        "distance_ns": result.distance_ns,
        "chosen_sample": result.chosen,
    }
    if result.chosen is not None:
        reply = server.samples[result.chosen].reply
        assert reply is not None
        doc.update(
            {
                "stratum": reply.stratum,
                "leap": reply.leap,
                "refid": _refid(reply),
                "root_delay_ns": reply.root_delay_ns,
                "root_dispersion_ns": reply.root_dispersion_ns,
                "precision": reply.precision,
            }
        )
    doc["samples"] = [
        {
            "sent_ns": s.sent_ns,
            "received_ns": s.received_ns,
            "offset_ns": s.offset_ns if s.reply else None,
            "delay_ns": s.delay_ns if s.reply else None,
            "failure": s.failure,
        }
        for s in server.samples
    ]
    return doc


def timecheck_doc(report: timecheck.TimecheckReport) -> dict[str, Any]:
    sel, rec = report.selection, report.record
    return {
        "verdict": sel.verdict,
        "exit_code": int(report.exit_code),
        "reason": sel.reason,
        "offset_ns": sel.offset_ns,
        "interval_ns": None if sel.low_ns is None else [sel.low_ns, sel.high_ns],
        "bound_ns": sel.bound_ns,
        "agreeing": sel.agreeing,
        "min_agree": rec.min_agree,
        "max_drift_ns": rec.max_drift_ns,
        "max_drift_source": report.drift_source,
        "began": iso(rec.began_ns),
        "began_ns": rec.began_ns,
        "ended_ns": rec.ended_ns,
        "servers": [_server_doc(s, r) for s, r in zip(rec.servers, sel.servers, strict=True)],
        "leap_announced": [
            s.name for s, r in zip(rec.servers, sel.servers, strict=True) if r.leap in (1, 2)
        ],
        "authenticated": report.anchored.to_json() if report.anchored else None,
        "clock_entry": f"pending/{report.queued.name}" if report.queued else None,
        "warnings": report.warnings,
        **({"error": _error_doc(report.not_queued)} if report.not_queued else {}),
    }


def _error_doc(exc: AcdkitError) -> dict[str, Any]:
    message = f"the CLOCK entry could not be queued: {exc.message}"
    return {"verdict": exc.verdict, "message": message, "hint": exc.hint}


def _failure(server: ServerSamples) -> str:
    """Why an unreachable server gave nothing: its samples' most frequent reason."""
    reasons = [s.failure or "timeout" for s in server.samples]
    worst = max(dict.fromkeys(reasons), key=reasons.count)
    return FAILURE_WORDS.get(worst, worst)


FAILURE_WORDS = {"bad-reply": "bad reply"}


def _amount(ns: int | None, sign: str = "") -> str:
    """Milliseconds below 10 s, then seconds, hours, days or years: a server years off must
    still fit its column."""
    if ns is None:
        return "-"
    size = abs(ns) / NS
    for limit, unit, per in ((10, "ms", 1e-3), (36_000, "s", 1), (864_000, "h", 3600)):
        if size < limit:
            return f"{ns / NS / per:{sign},.3f} {unit}"
    if size < 2 * 365 * 86_400:
        return f"{ns / NS / 86_400:{sign},.1f} d"
    return f"{ns / NS / (86_400 * 365.25):{sign},.1f} y"


def _table(report: timecheck.TimecheckReport) -> Table:
    table = Table(title="timecheck: NTP servers", box=box.SIMPLE_HEAD)
    # long names fold; the figures never do
    table.add_column("server", overflow="fold", min_width=15)
    table.add_column("result", no_wrap=True)
    for col in ("st", "LI", "offset", "delay", "±"):
        table.add_column(col, justify="right", no_wrap=True)
    colours = {"truechimer": "green", "falseticker": "red", "unreachable": "red"}
    for server, result in zip(report.record.servers, report.selection.servers, strict=True):
        reply = server.samples[result.chosen].reply if result.chosen is not None else None
        colour = colours.get(result.result, "yellow")
        name = server.name
        if server.address and not name.startswith(server.address):
            name += f" ({server.address})"
        shown = result.result
        if result.result == "unreachable":
            shown = _failure(server)  # timeout, bad reply, unresolved, refused
        elif result.result == "kiss" and reply is not None:
            shown += f" {_refid(reply)}"
        table.add_row(
            escape(name),  # as configured: never read as Rich markup
            f"[{colour}]{shown}[/]",
            str(reply.stratum) if reply else "-",
            str(reply.leap) if reply else "-",
            _amount(result.offset_ns, "+"),
            _amount(result.delay_ns),
            _amount(result.distance_ns),
        )
    return table


def _print(report: timecheck.TimecheckReport) -> None:
    err.print(_table(report))
    sel, rec = report.selection, report.record
    for warning in report.warnings:
        err.print(f"[yellow]warning[/] {escape(warning)}")
    if sel.offset_ns is not None and sel.low_ns is not None and sel.high_ns is not None:
        err.print(
            f"NTP: true time minus the local clock {sel.offset_ns / NS:+.6f} s, within "
            f"{sel.low_ns / NS:+.6f} .. {sel.high_ns / NS:+.6f} s: {escape(lag(sel.offset_ns))} "
            f"(limit ±{rec.max_drift_ns / NS:g} s, {report.drift_source})"
        )
    if report.anchored is not None:
        err.print(
            f"RFC 3161: {report.anchored.sentence()} (checkpoint "
            f"{report.anchored.checkpoint_size:,}; authenticated, checked on receipt)"
        )
    colour = "green" if sel.verdict == "OK" else "red"
    err.print(f"[bold {colour}]{sel.verdict}[/] {escape(sel.reason)}")
    if report.queued is not None:
        err.print(f"CLOCK entry queued as pending/{report.queued.name}: the next seal covers it")
    if report.not_queued is not None:
        doc = _error_doc(report.not_queued)
        err.print(f"[red]error:[/] {escape(doc['message'])}")
        if doc["hint"]:
            err.print(f"  hint: {escape(doc['hint'])}")
