"""Google Cloud VPC flow logs: Cloud Logging ``LogEntry`` objects, one per line.

The flow is ``jsonPayload.connection`` (protocol by number), its times ``start_time`` and
``end_time`` (RFC 3339, nanoseconds, kept exactly), its counters strings.  A flow between two
VMs that both log is reported twice, once by each end (``reporter`` SRC or DEST): both
records are kept, and they differ in ``sensor_id``: the reporting subnetwork and end.  Lines
starting with ``#`` (test fixtures carry them) are skipped.
"""

from __future__ import annotations

import json
import re

from acdkit.sources import Context, Parsed, Parser, SourceFormat, register
from acdkit.sources._flowlog import (
    bad_proto,
    dns_inputs,
    ip_proto,
    net_inputs,
    rfc3339_epoch_text,
    rfc3339_parts,
)
from acdkit.sources._json import JsonChunks, first_objects
from acdkit.sources._lines import LineChunk
from acdkit.sources._route import collect
from acdkit.sources._sql import routed_query

__all__ = ["FORMAT"]

_INSTANCE = {"vm_name": "VARCHAR", "project_id": "VARCHAR", "zone": "VARCHAR"}
_STRUCTURE = json.dumps(
    {
        "logName": "VARCHAR",
        "resource": {
            "type": "VARCHAR",
            "labels": {"project_id": "VARCHAR", "subnetwork_id": "VARCHAR"},
        },
        "jsonPayload": {
            "connection": {
                "src_ip": "VARCHAR",
                "src_port": "VARCHAR",
                "dest_ip": "VARCHAR",
                "dest_port": "VARCHAR",
                "protocol": "VARCHAR",
            },
            "start_time": "VARCHAR",
            "end_time": "VARCHAR",
            "bytes_sent": "VARCHAR",
            "packets_sent": "VARCHAR",
            "reporter": "VARCHAR",
            "src_instance": _INSTANCE,
            "dest_instance": _INSTANCE,
        },
    }
)


def _is_flow_entry(obj: dict[str, object]) -> bool:
    payload = obj.get("jsonPayload")
    return (
        isinstance(payload, dict)
        and isinstance(payload.get("connection"), dict)
        and "reporter" in payload
        and "start_time" in payload
    )


# a LogEntry of a flow, as text: for a head whose first entry is cut (a short gzip tail)
_FLOW_TEXT = re.compile(rb'^\s*\{.*"jsonPayload"\s*:\s*\{.*"connection"\s*:\s*\{', re.M)


def _sniff(head: bytes) -> bool:
    objs = first_objects(head)
    if objs:
        return all(_is_flow_entry(o) for o in objs[:5])
    return _FLOW_TEXT.search(head[: 1 << 16]) is not None


class GcpVpcParser(Parser):
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.json = JsonChunks(ctx, _STRUCTURE, comments=True)

    def parse(self, chunk: LineChunk) -> Parsed:
        return self.json.parse(chunk, self._run)

    def _run(self, parsed: Parsed, base: str) -> None:
        p = "j.jsonPayload"
        rel = f"""(SELECT *, CASE
                WHEN {bad_proto("protocol")} THEN 'invalid protocol number' END AS problem
            FROM (SELECT line, comment, problem AS json_problem,
                         {p}.connection.src_ip AS src_ip, {p}.connection.src_port AS src_port,
                         {p}.connection.dest_ip AS dst_ip, {p}.connection.dest_port AS dst_port,
                         {p}.connection.protocol AS protocol, {p}.connection IS NOT NULL AS flow,
                         {rfc3339_parts(f"{p}.start_time")} AS t0,
                         {rfc3339_parts(f"{p}.end_time")} AS t1,
                         {p}.bytes_sent AS bytes_sent, {p}.packets_sent AS packets_sent,
                         {_SENSOR} AS sensor
                  FROM {base}))"""
        # json_base's problem (bad JSON, not an object) wins over the payload checks
        rel = f"(SELECT * REPLACE (coalesce(json_problem, problem) AS problem) FROM {rel})"
        query = routed_query(rel, _ROUTE, _SKIP, _NET, _DNS, self.ctx.sensor)
        collect(self.ctx, query, parsed)


# the subnetwork (a resource id) and which end reported name the sensor, so the two reports
# of one flow stay apart; project ids and VM names are not kept (docs/minimization.md §2)
_SENSOR = """CASE WHEN j.jsonPayload.connection IS NOT NULL THEN concat_ws('/',
    j.resource.labels.subnetwork_id,
    CASE j.jsonPayload.reporter WHEN 'SRC' THEN 'src' WHEN 'DEST' THEN 'dest' END) END"""
_ROUTE = "CASE WHEN NOT comment AND flow THEN 'net' END"
_SKIP = "CASE WHEN comment THEN 'comment line' ELSE 'not a VPC flow log entry' END"

_START, _END = rfc3339_epoch_text("t0"), rfc3339_epoch_text("t1")
_NET = net_inputs(
    kind="'conn'",
    src_ip="src_ip",
    src_port="src_port",
    dst_ip="dst_ip",
    dst_port="dst_port",
    proto=ip_proto("protocol"),
    ts=_START,
    # exact: both ends are decimal text with nine digits
    duration=f"CAST(CAST({_END} AS DECIMAL(38, 9)) - CAST({_START} AS DECIMAL(38, 9)) AS VARCHAR)",
    # bytes_sent/packets_sent count what the source sent (one direction per record)
    orig_bytes="bytes_sent",
    orig_pkts="packets_sent",
    sensor="sensor",
)
_DNS = dns_inputs()


FORMAT = register(
    SourceFormat(
        "gcp-vpc",
        "Google Cloud VPC flow logs (Cloud Logging LogEntry JSON lines)",
        _sniff,
        GcpVpcParser,
    )
)
