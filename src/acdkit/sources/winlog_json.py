"""Windows events exported as JSON lines: flat (NXLog style) and Winlogbeat (``winlog.*``).

Both carry the same events as EVTX files and go through the same mapping (`_winlog`).

* ``winevent-json``: one flat object per line, every EventData field at top level beside
  ``SourceName``, ``EventID`` and ``Hostname`` (NXLog ``to_json()``, OTRF Security-Datasets).
  Its collector times (``EventTime``, ``TimeCreated``, ``@timestamp``) are the collector's
  local time whatever suffix they carry (the OTRF files label local time with ``Z``), so
  Sysmon events are timed by their ``UtcTime`` and Security events, which have no UTC field,
  only with ``--assume-tz``; without it they are rejected.
* ``winlogbeat``: Winlogbeat / Elastic Agent documents with ``winlog.provider_name``,
  ``winlog.event_id``, ``winlog.computer_name`` and ``winlog.event_data.*``; ``@timestamp`` is
  the event's creation time in UTC, used for Security events.
"""

from __future__ import annotations

import json

from acdkit.sources import Context, Parsed, Parser, SourceFormat, register
from acdkit.sources._json import JsonChunks, first_objects
from acdkit.sources._lines import LineChunk
from acdkit.sources._winlog import DATA_FIELDS, assume_tz_warning, project

__all__ = ["FLAT", "WINLOGBEAT"]

_FLAT_STRUCTURE = json.dumps(
    {
        "SourceName": "VARCHAR",
        "ProviderName": "VARCHAR",
        "EventID": "VARCHAR",
        "Hostname": "VARCHAR",
        "EventTime": "VARCHAR",
        "TimeCreated": "VARCHAR",
        "@timestamp": "VARCHAR",
        **{name: "VARCHAR" for name in DATA_FIELDS},
    }
)
_BEAT_STRUCTURE = json.dumps(
    {
        "@timestamp": "VARCHAR",
        "host": {"name": "VARCHAR"},
        "winlog": {
            "provider_name": "VARCHAR",
            "event_id": "VARCHAR",
            "computer_name": "VARCHAR",
            "event_data": {name: "VARCHAR" for name in DATA_FIELDS},
        },
    }
)

_FLAT_COLUMNS = """coalesce(j.SourceName, j.ProviderName) AS provider,
    j.EventID AS event_id, j.Hostname AS computer, CAST(NULL AS VARCHAR) AS sys_time,
    coalesce(j.EventTime, j.TimeCreated, j."@timestamp") AS local_time"""
_BEAT_COLUMNS = """j.winlog.provider_name AS provider, j.winlog.event_id AS event_id,
    coalesce(j.winlog.computer_name, j.host.name) AS computer,
    j."@timestamp" AS sys_time, CAST(NULL AS VARCHAR) AS local_time"""


def _sniff_flat(head: bytes) -> bool:
    objs = first_objects(head)
    return bool(objs) and all(
        "EventID" in o
        and ("SourceName" in o or "Channel" in o)
        and "winlog" not in o
        and "event_type" not in o
        for o in objs[:5]
    )


def _sniff_beat(head: bytes) -> bool:
    objs = first_objects(head)
    return bool(objs) and all(
        isinstance(o.get("winlog"), dict) and "event_id" in o["winlog"] for o in objs[:5]
    )


class _WinlogJsonParser(Parser):
    """One shape of Windows events as JSON lines, mapped by `_winlog.project`."""

    structure = ""
    columns = ""
    data_prefix = ""
    local_times = False

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.json = JsonChunks(ctx, self.structure)

    def parse(self, chunk: LineChunk) -> Parsed:
        parsed = self.json.parse(chunk, self._run)
        if self.local_times and self.ctx.assume_tz is not None:
            parsed.warnings.append(assume_tz_warning(self.ctx.assume_tz))
        return parsed

    def _run(self, parsed: Parsed, base: str) -> None:
        data = ", ".join(f'j.{self.data_prefix}"{name}" AS "{name}"' for name in DATA_FIELDS)
        rel = f"(SELECT line, problem, {self.columns}, {data} FROM {base})"
        project(self.ctx, parsed, rel)


class FlatParser(_WinlogJsonParser):
    structure = _FLAT_STRUCTURE
    columns = _FLAT_COLUMNS
    local_times = True


class WinlogbeatParser(_WinlogJsonParser):
    structure = _BEAT_STRUCTURE
    columns = _BEAT_COLUMNS
    data_prefix = "winlog.event_data."


FLAT = register(
    SourceFormat(
        "winevent-json",
        "Windows events as flat JSON lines (NXLog style: Sysmon 1/3/22, Security 4688/5156)",
        _sniff_flat,
        FlatParser,
        commands=True,
    )
)
WINLOGBEAT = register(
    SourceFormat(
        "winlogbeat",
        "Winlogbeat / Elastic Agent JSON lines (winlog.event_data: Sysmon, Security)",
        _sniff_beat,
        WinlogbeatParser,
        commands=True,
    )
)
