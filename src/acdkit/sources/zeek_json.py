"""Zeek logs written as JSON lines (LogAscii::use_json=T): conn, dns, ssl and http.

Keys may be dotted (``id.orig_h``) or underscored by shippers (``id_orig_h``); the log type
comes from ``_path`` or ``@stream`` when present, else from the keys of each line.
"""

from __future__ import annotations

import json

from acdkit.sources import Context, Parsed, Parser, SourceFormat, register
from acdkit.sources._json import first_objects, split_chunk
from acdkit.sources._lines import LineChunk
from acdkit.sources._sql import dns_projection, net_projection

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

_SKIPPED = f"""
    SELECT line, CASE WHEN log IN ({", ".join(f"'{n}'" for n in OTHER_LOGS)})
                        THEN 'Zeek log ''' || log || ''' is not ingested'
                      ELSE 'Zeek log type not recognised' END AS reason
    FROM z WHERE log IS NULL OR log NOT IN ('conn', 'ssl', 'http', 'dns')
"""

_VIEWS = """
    CREATE OR REPLACE TEMP VIEW z_net AS SELECT line,
      CASE log WHEN 'ssl' THEN 'tls' ELSE log END AS kind, uid AS session_id,
      orig_h AS src_ip, orig_p AS src_port, resp_h AS dst_ip, resp_p AS dst_port, proto,
      service, ja3, ja3s, server_name AS sni, method AS http_verb, host AS url_host,
      uri AS url_uri, status_code AS http_status, ts, duration, orig_bytes, resp_bytes,
      orig_pkts, resp_pkts, sensor
    FROM z WHERE log IN ('conn', 'ssl', 'http');
    CREATE OR REPLACE TEMP VIEW z_dns AS SELECT line, 'transaction' AS kind,
      uid AS session_id, query AS qname, coalesce(qtype_name, qtype) AS qtype,
      coalesce(rcode_name, rcode) AS rcode, answers AS rrdata,
      resp_h AS resolver_ip, resp_p AS resolver_port, orig_h AS client_ip,
      orig_p AS client_port, proto, trans_id, ts, sensor
    FROM z WHERE log = 'dns';
"""


def project(ctx: Context, parsed: Parsed) -> None:
    """Map temp table ``z`` (one text column per Zeek field) into net and dns rows.

    Shared with the TSV reader, so one event gives the same record in either form.
    """
    con = ctx.con
    skipped = con.sql(_SKIPPED).to_arrow_table()
    parsed.add_lines(
        parsed.skips, skipped["line"].combine_chunks(), skipped["reason"].combine_chunks()
    )
    con.execute(_VIEWS)
    params = ctx.params()
    parsed.tables["net"] = con.sql(
        net_projection("z_net", ctx.sensor), params=params
    ).to_arrow_table()
    parsed.tables["dns"] = con.sql(
        dns_projection("z_dns", ctx.sensor), params=params
    ).to_arrow_table()


class ZeekJsonParser(Parser):
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.structure = _structure()

    def parse(self, chunk: LineChunk) -> Parsed:
        parsed = Parsed()
        con = self.ctx.con
        split_chunk(chunk, self.ctx, parsed, self.structure)
        addr = ", ".join(f'coalesce(j."id.{k}", j.id_{k}) AS {k}' for k in _ADDR_KEYS)
        con.execute(f"""
            CREATE OR REPLACE TEMP VIEW z AS
            SELECT line, j.*, {addr}, {_INFER_LOG} AS log,
                   coalesce(j._system_name, j."@system") AS sensor
            FROM parsed_json WHERE problem IS NULL
        """)
        project(self.ctx, parsed)
        return parsed


FORMAT = register(
    SourceFormat(
        "zeek-json",
        "Zeek conn/dns/ssl/http logs as JSON lines (dotted or underscored keys)",
        _sniff,
        ZeekJsonParser,
    )
)
