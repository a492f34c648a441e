"""CLI layer for anchoring: TSA options (`--tsa`, `--tsa-root`, `--tsa-policy`) and output.

Part of the command-line layer (it renders with Rich); the core is acdkit.anchor.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from acdkit.anchor import DEFAULT_TOLERANCE_NS, AnchorReport, iso
from acdkit.anchorcheck import AnchorTrust
from acdkit.errors import AcdkitError, UsageError
from acdkit.tsa import TsaEndpoint, TsaTrust, check_name, load_roots

__all__ = ["ToleranceOpt", "TsaOpt", "TsaPolicyOpt", "TsaRootOpt", "anchor_doc", "print_anchor"]

TsaOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--tsa",
        envvar="ACDKIT_TSA",
        help="A time-stamp authority as NAME=URL (http or https); repeat for each TSA, "
        "two independent ones at least. $ACDKIT_TSA: blank-separated NAME=URL items.",
        show_default=False,
    ),
]
TsaRootOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--tsa-root",
        envvar="ACDKIT_TSA_ROOT",
        help="Pin the root CA certificate(s) of a TSA: NAME=FILE.pem; repeatable.",
        show_default=False,
    ),
]
TsaPolicyOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--tsa-policy",
        envvar="ACDKIT_TSA_POLICY",
        help="Require this policy OID in a TSA's tokens: NAME=OID; repeatable.",
        show_default=False,
    ),
]
ToleranceOpt = Annotated[
    float,
    typer.Option(
        "--time-tolerance",
        envvar="ACDKIT_TIME_TOLERANCE",
        min=0,
        help="Seconds of clock disagreement tolerated between the TSA's genTime, the "
        "collector's clock and event times (beyond it: POLICY).",
    ),
]
DEFAULT_TOLERANCE_S = DEFAULT_TOLERANCE_NS / 1e9


def _pairs(values: list[str] | None, option: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for value in values or []:
        name, eq, rest = value.partition("=")
        if not eq or not rest:
            raise UsageError(f"{option} {value[:60]!r}: expected NAME=VALUE")
        check_name(name)
        if name in out and option != "--tsa-root":
            raise UsageError(f"{option} names TSA {name} twice")
        out[name] = f"{out[name]}\n{rest}" if name in out else rest
    return out


def trusts(roots: list[str] | None, policies: list[str] | None) -> dict[str, TsaTrust]:
    """TsaTrust per name from `--tsa-root NAME=FILE` (repeatable) and `--tsa-policy`."""
    files, oids = _pairs(roots, "--tsa-root"), _pairs(policies, "--tsa-policy")
    for name in oids:
        if name not in files:
            raise UsageError(
                f"--tsa-policy names TSA {name}, which has no --tsa-root",
                hint=f"pin its root too: --tsa-root {name}=FILE.pem",
            )
    out: dict[str, TsaTrust] = {}
    for name, paths in files.items():
        ders: list[bytes] = []
        for path in paths.split("\n"):
            try:
                ders += load_roots(Path(path))
            except AcdkitError as exc:
                raise UsageError(f"--tsa-root {name}={path}: {exc.message}") from None
        out[name] = TsaTrust(name, tuple(ders), oids.get(name))
    return out


def endpoints(tsa: list[str] | None, trust: dict[str, TsaTrust]) -> list[TsaEndpoint]:
    urls = _pairs(tsa, "--tsa")
    for name in trust:
        if name not in urls:
            raise UsageError(
                f"--tsa-root names TSA {name}, which no --tsa configures",
                hint=f"add --tsa {name}=URL, or check the spelling (known: "
                f"{', '.join(sorted(urls)) or 'none'})",
            )
    return [TsaEndpoint(name, url) for name, url in urls.items()]


def anchor_trust(
    roots: list[str] | None, policies: list[str] | None, tolerance_s: float
) -> AnchorTrust:
    return AnchorTrust(trusts(roots, policies), tolerance_ns=int(tolerance_s * 1e9))


def anchor_doc(report: AnchorReport) -> dict[str, Any]:
    return {
        "checkpoint_size": report.checkpoint_size,
        "verdict": "OK" if not report.verdict else report.verdict.name,
        "exit_code": int(report.verdict),
        "tolerance_ns": report.tolerance_ns,
        "outcomes": [o.to_json() for o in report.outcomes],
        "warnings": report.warnings,
    }


def _offset(o: Any) -> str:
    if o.offset_ns is None:
        return "-"
    lo, hi = o.offset_ns
    return f"{lo / 1e9:+.3f} .. {hi / 1e9:+.3f} s"


def print_anchor(report: AnchorReport, err: Console) -> None:
    table = Table(title=f"anchor: newest checkpoint {report.checkpoint_size:,}")
    for col in ("tsa", "checkpoint", "status", "genTime", "TSA − local clock", "note"):
        table.add_column(col, justify="right" if col == "checkpoint" else "left")
    for o in report.outcomes:
        note = o.reason or ("" if o.drift_ok else "clock drift beyond tolerance")
        colour = {"anchored": "green", "already": "green"}.get(o.status, "yellow")
        table.add_row(
            o.tsa,
            f"{o.size:,}",
            f"[{colour}]{o.status}[/]",
            iso(o.gen_time_ns) if o.gen_time_ns is not None else "-",
            _offset(o),
            note,
        )
    err.print(table)
    for warning in report.warnings:
        err.print(f"[yellow]warning[/] {warning}")
    if any(o.status == "anchored" for o in report.outcomes):
        err.print("the ANCHOR entries go into the log with the next seal")
    if any(o.status == "queued" for o in report.outcomes):
        err.print("[yellow]INCOMPLETE[/] queued requests are retried by the next `acdkit anchor`")
