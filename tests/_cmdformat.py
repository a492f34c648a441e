"""A test-only JSON-lines format whose records carry a command line, as a source of `net`.

No format on main has command lines yet (Sysmon and Windows 4688 arrive with the endpoint
work), so the signature path through ingest, the process pool, seal and package is driven
by this one.  It uses the shared SQL projection and its optional ``cmdline`` input, exactly
as a real format would.  `registered` puts it in the registry for one test only.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from acdkit import sources
from acdkit.sources import Context, Parsed, Parser, SourceFormat
from acdkit.sources._json import first_objects, json_base, release
from acdkit.sources._lines import LineChunk
from acdkit.sources._route import collect
from acdkit.sources._sql import DNS_INPUTS, NET_INPUTS, routed_query

NAME = "test-cmd"
_STRUCTURE = json.dumps(
    {"ts": "VARCHAR", "src": "VARCHAR", "dst": "VARCHAR", "dport": "VARCHAR", "cmd": "VARCHAR"}
)
_NET = {name: "NULL" for name in NET_INPUTS if name != "line"}
_NET.update(
    kind="'conn'",
    src_ip="src",
    dst_ip="dst",
    dst_port="dport",
    proto="'tcp'",
    ts="ts",
    cmdline="cmd",
)
_DNS = {name: "NULL" for name in DNS_INPUTS if name != "line"}


def _sniff(head: bytes) -> bool:
    objs = first_objects(head)
    return bool(objs) and all("cmd" in o and "dport" in o for o in objs[:5])


class _Parser(Parser):
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def parse(self, chunk: LineChunk) -> Parsed:
        parsed = Parsed()
        base = json_base(chunk, self.ctx, parsed, _STRUCTURE)
        rel = f"(SELECT line, problem, j.* FROM {base})"
        query = routed_query(rel, "'net'", "NULL", _NET, _DNS, self.ctx.sensor)
        try:
            collect(self.ctx, query, parsed)
        finally:
            release(self.ctx)
        return parsed


FORMAT = SourceFormat(
    NAME, "test only: connections with a command line", _sniff, _Parser, commands=True
)


def line(ts: float, src: str, dst: str, dport: int, cmd: str | None) -> str:
    return json.dumps({"ts": ts, "src": src, "dst": dst, "dport": dport, "cmd": cmd}) + "\n"


@contextmanager
def registered(monkeypatch: pytest.MonkeyPatch) -> Iterator[SourceFormat]:
    """The format in the registry (first, so it is tried before the JSON formats)."""
    sources.names()  # load the built-in formats before the registry is replaced
    monkeypatch.setattr(sources, "_REGISTRY", {NAME: FORMAT, **sources._REGISTRY})
    yield FORMAT
