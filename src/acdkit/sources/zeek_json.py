"""Zeek logs written as JSON lines (LogAscii::use_json=T): conn, dns, ssl and http.

Keys may be dotted (``id.orig_h``) or underscored by shippers (``id_orig_h``); the log type
comes from ``_path`` or ``@stream`` when present, else from the keys of each line.
"""

from __future__ import annotations

import json

from acdkit.sources import Context, Parsed, Parser, SourceFormat, register
from acdkit.sources._json import JsonChunks, first_objects
from acdkit.sources._lines import LineChunk
from acdkit.sources._route import collect
from acdkit.sources._sql import routed_query

__all__ = ["FORMAT", "TEXT_KEYS", "project"]

TEXT_KEYS = [
    "_path",
    "@stream",
    "_system_name",
    "@system",
    "ts",
    "uid",
    "proto",
    "service",
    "duration",
    "orig_bytes",
    "resp_bytes",
    "orig_pkts",
    "resp_pkts",
    "conn_state",
    "history",
    "ja3",
    "ja3s",
    "server_name",
    "cipher",
    "version",
    "established",
    "method",
    "host",
    "uri",
    "status_code",
    "trans_depth",
    "query",
    "qtype",
    "qtype_name",
    "rcode",
    "rcode_name",
    "trans_id",
]
_ADDR_KEYS = ["orig_h", "orig_p", "resp_h", "resp_p"]


def _structure() -> str:
    spec: dict[str, object] = {k: "VARCHAR" for k in TEXT_KEYS}
    for key in _ADDR_KEYS:
        spec[f"id.{key}"] = "VARCHAR"
        spec[f"id_{key}"] = "VARCHAR"
    spec["answers"] = ["VARCHAR"]
    return json.dumps(spec)


def _sniff(head: bytes) -> bool:
    objs = first_objects(head)
    return bool(objs) and all(
        "uid" in o and ("id.orig_h" in o or "id_orig_h" in o) and "event_type" not in o
        for o in objs[:5]
    )


_INFER_LOG = """
    lower(coalesce(j._path, j."@stream", CASE
      WHEN j.query IS NOT NULL OR j.qtype_name IS NOT NULL OR j.trans_id IS NOT NULL THEN 'dns'
      WHEN j.method IS NOT NULL OR j.uri IS NOT NULL OR j.status_code IS NOT NULL
           OR j.trans_depth IS NOT NULL THEN 'http'
      WHEN j.server_name IS NOT NULL OR j.ja3 IS NOT NULL OR j.cipher IS NOT NULL
           OR j.established IS NOT NULL THEN 'ssl'
      WHEN j.conn_state IS NOT NULL OR j.history IS NOT NULL OR j.duration IS NOT NULL
           OR j.proto IS NOT NULL THEN 'conn'
    END))
"""

# a skip reason names the log only if it is one of these, never free text from input
OTHER_LOGS = (
    "analyzer", "capture_loss", "dce_rpc", "dhcp", "dnp3", "dpd", "files", "ftp", "intel", "irc",
    "kerberos", "known_certs", "known_hosts", "known_services", "ldap", "ldap_search",
    "loaded_scripts", "modbus", "mqtt_connect", "mqtt_publish", "mqtt_subscribe", "mysql",
    "notice", "ntlm", "ntp", "ocsp", "packet_filter", "pe", "quic", "radius", "rdp", "reporter",
    "rfb", "signatures", "sip", "smb_files", "smb_mapping", "smtp", "snmp", "socks", "software",
    "ssh", "stats", "syslog", "traceroute", "tunnel", "weird", "websocket", "x509",
)  # fmt: skip

_SKIP_REASON = f"""
    CASE WHEN log IN ('conn', 'ssl', 'http', 'dns') THEN NULL
         WHEN log IN ({", ".join(f"'{n}'" for n in OTHER_LOGS)})
           THEN 'Zeek log ''' || log || ''' is not ingested'
         ELSE 'Zeek log type not recognised' END
"""
_ROUTE = "CASE WHEN log IN ('conn', 'ssl', 'http') THEN 'net' WHEN log = 'dns' THEN 'dns' END"

_NET = {
    "kind": "CASE log WHEN 'ssl' THEN 'tls' ELSE log END",
    "session_id": "uid",
    "src_ip": "orig_h",
    "src_port": "orig_p",
    "dst_ip": "resp_h",
    "dst_port": "resp_p",
    "proto": "proto",
    "service": "service",
    "ja3": "ja3",
    "ja3s": "ja3s",
    "sni": "server_name",
    "http_verb": "method",
    "url_host": "host",
    "url_uri": "uri",
    "http_status": "status_code",
    "ts": "ts",
    "duration": "duration",
    "orig_bytes": "orig_bytes",
    "resp_bytes": "resp_bytes",
    "orig_pkts": "orig_pkts",
    "resp_pkts": "resp_pkts",
    "sensor": "sensor",
}
_DNS = {
    "kind": "'transaction'",
    "session_id": "uid",
    "qname": "query",
    "qtype": "coalesce(qtype_name, qtype)",
    "rcode": "coalesce(rcode_name, rcode)",
    "rrdata": "answers",
    "resolver_ip": "resp_h",
    "resolver_port": "resp_p",
    "client_ip": "orig_h",
    "client_port": "orig_p",
    "proto": "proto",
    "trans_id": "trans_id",
    "ts": "ts",
    "sensor": "sensor",
}


def project(ctx: Context, parsed: Parsed, rel: str) -> None:
    """Route and map relation ``rel`` (one text column per Zeek field) into net and dns rows.

    ``rel`` has ``line``, ``problem``, ``log``, ``sensor``, the Zeek fields and ``orig_h``,
    ``orig_p``, ``resp_h``, ``resp_p``.  Shared with the TSV reader, so one event gives the
    same record in either form.
    """
    collect(ctx, routed_query(rel, _ROUTE, _SKIP_REASON, _NET, _DNS, ctx.sensor), parsed)


class ZeekJsonParser(Parser):
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.json = JsonChunks(ctx, _structure())

    def parse(self, chunk: LineChunk) -> Parsed:
        return self.json.parse(chunk, self._run)

    def _run(self, parsed: Parsed, base: str) -> None:
        addr = ", ".join(f'coalesce(j."id.{k}", j.id_{k}) AS {k}' for k in _ADDR_KEYS)
        rel = f"""(SELECT line, problem, j.*, {addr}, {_INFER_LOG} AS log,
                          coalesce(j._system_name, j."@system") AS sensor
                   FROM {base})"""
        project(self.ctx, parsed, rel)


FORMAT = register(
    SourceFormat(
        "zeek-json",
        "Zeek conn/dns/ssl/http logs as JSON lines (dotted or underscored keys)",
        _sniff,
        ZeekJsonParser,
    )
)
