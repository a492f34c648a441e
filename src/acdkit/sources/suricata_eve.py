"""Suricata EVE JSON: flow, tls, http and dns (v1, v2 and v3 layouts) events.

Other event types (alert, stats, fileinfo, ssh, ...) are counted as skipped with a reason.
DNS orientation is taken from port 53, not from src/dest, whose meaning changed between
Suricata versions (FORMATS.md §2).
"""

from __future__ import annotations

import json

from acdkit.sources import Context, Parsed, Parser, SourceFormat, register
from acdkit.sources._json import JsonChunks, first_objects
from acdkit.sources._lines import LineChunk
from acdkit.sources._route import collect
from acdkit.sources._sql import routed_query

__all__ = ["FORMAT"]

INGESTED = ("flow", "tls", "http", "dns")
# a skip reason names the event type only if it is one of these, never free text from input
OTHER_TYPES = (
    "alert", "anomaly", "arp", "bittorrent-dht", "dcerpc", "dhcp", "dnp3", "drop", "enip",
    "fileinfo", "frame", "ftp", "ftp_data", "http2", "ike", "ikev2", "krb5", "ldap", "mdns",
    "modbus", "mqtt", "netflow", "nfs", "pgsql", "pop3", "quic", "rdp", "rfb", "sip", "smb",
    "smtp", "snmp", "ssh", "stats", "tftp", "websocket",
)  # fmt: skip

_STRUCTURE = json.dumps(
    {
        "timestamp": "VARCHAR",
        "flow_id": "VARCHAR",
        "event_type": "VARCHAR",
        "src_ip": "VARCHAR",
        "src_port": "VARCHAR",
        "dest_ip": "VARCHAR",
        "dest_port": "VARCHAR",
        "proto": "VARCHAR",
        "app_proto": "VARCHAR",
        "host": "VARCHAR",
        "flow": {
            "pkts_toserver": "VARCHAR",
            "pkts_toclient": "VARCHAR",
            "bytes_toserver": "VARCHAR",
            "bytes_toclient": "VARCHAR",
            "start": "VARCHAR",
            "end": "VARCHAR",
        },
        "tls": {"sni": "VARCHAR", "ja3": {"hash": "VARCHAR"}, "ja3s": {"hash": "VARCHAR"}},
        "http": {
            "hostname": "VARCHAR",
            "url": "VARCHAR",
            "http_method": "VARCHAR",
            "status": "VARCHAR",
        },
        "dns": {
            "version": "VARCHAR",
            "type": "VARCHAR",
            "id": "VARCHAR",
            "rrname": "VARCHAR",
            "rrtype": "VARCHAR",
            "rcode": "VARCHAR",
            "rdata": "VARCHAR",
            "answers": [{"rdata": "VARCHAR"}],
            "grouped": "MAP(VARCHAR, VARCHAR[])",
            "queries": [{"rrname": "VARCHAR", "rrtype": "VARCHAR"}],
        },
    }
)


def _sniff(head: bytes) -> bool:
    objs = first_objects(head)
    return bool(objs) and all("event_type" in o and "timestamp" in o for o in objs[:5])


class SuricataEveParser(Parser):
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.json = JsonChunks(ctx, _STRUCTURE)

    def parse(self, chunk: LineChunk) -> Parsed:
        return self.json.parse(chunk, self._run)

    def _run(self, parsed: Parsed, base: str) -> None:
        # DNS orientation: the side on port 53 is the server, else the event's own direction
        rel = f"""(SELECT *, CASE
              WHEN src_port = '53' AND coalesce(dest_port, '') <> '53' THEN true
              WHEN dest_port = '53' AND coalesce(src_port, '') <> '53' THEN false
              ELSE dns."type" IN ('answer', 'response') END AS src_is_server
            FROM (SELECT line, problem, j.* FROM {base}))"""
        query = routed_query(rel, _ROUTE, _SKIP_REASON, _NET, _DNS, self.ctx.sensor)
        collect(self.ctx, query, parsed)


_WANTED = ", ".join(f"'{t}'" for t in INGESTED)
_SKIP_REASON = f"""CASE WHEN event_type IN ({_WANTED}) THEN NULL
    WHEN event_type IS NULL THEN 'no event_type'
    WHEN event_type IN ({", ".join(f"'{t}'" for t in OTHER_TYPES)})
      THEN 'event_type ''' || event_type || ''' is not ingested'
    ELSE 'event_type not recognised' END"""
_ROUTE = """CASE WHEN event_type IN ('flow', 'tls', 'http') THEN 'net'
                 WHEN event_type = 'dns' THEN 'dns' END"""

# flow events: the record's time is the flow start; duration from start to end
_NET = {
    "kind": "CASE event_type WHEN 'flow' THEN 'conn' ELSE event_type END",
    "session_id": "flow_id",
    "src_ip": "src_ip",
    "src_port": "src_port",
    "dst_ip": "dest_ip",
    "dst_port": "dest_port",
    "proto": "proto",
    "service": "app_proto",
    "ja3": "tls.ja3.hash",
    "ja3s": "tls.ja3s.hash",
    "sni": "tls.sni",
    "http_verb": "http.http_method",
    "url_host": "http.hostname",
    "url_uri": "http.url",
    "http_status": "http.status",
    "ts": """CASE WHEN event_type = 'flow' AND flow."start" IS NOT NULL THEN flow."start"
                  ELSE "timestamp" END""",
    "duration": """CASE WHEN event_type = 'flow' THEN CAST(
        (epoch_us(TRY_CAST(flow."end" AS TIMESTAMPTZ))::DOUBLE
         - epoch_us(TRY_CAST(flow."start" AS TIMESTAMPTZ))::DOUBLE) / 1e6 AS VARCHAR) END""",
    "orig_bytes": "flow.bytes_toserver",
    "resp_bytes": "flow.bytes_toclient",
    "orig_pkts": "flow.pkts_toserver",
    "resp_pkts": "flow.pkts_toclient",
    "sensor": "host",
}
_DNS = {
    "kind": """CASE WHEN dns."type" IN ('query', 'request') THEN 'query'
                    WHEN dns."type" IN ('answer', 'response') THEN 'answer'
                    ELSE coalesce(dns."type", 'unknown') END""",
    "session_id": "flow_id",
    "qname": "coalesce(dns.rrname, dns.queries[1].rrname)",
    "qtype": "coalesce(dns.rrtype, dns.queries[1].rrtype)",
    "rcode": "dns.rcode",
    "rrdata": """CASE
        WHEN dns.answers IS NOT NULL THEN list_transform(dns.answers, lambda a: a.rdata)
                      WHEN dns.grouped IS NOT NULL THEN flatten(map_values(dns.grouped))
                      WHEN dns.rdata IS NOT NULL THEN [dns.rdata] END""",
    "resolver_ip": "CASE WHEN src_is_server THEN src_ip ELSE dest_ip END",
    "resolver_port": "CASE WHEN src_is_server THEN src_port ELSE dest_port END",
    "client_ip": "CASE WHEN src_is_server THEN dest_ip ELSE src_ip END",
    "client_port": "CASE WHEN src_is_server THEN dest_port ELSE src_port END",
    "proto": "proto",
    "trans_id": "dns.id",
    "ts": '"timestamp"',
    "sensor": "host",
}


FORMAT = register(
    SourceFormat(
        "suricata-eve",
        "Suricata EVE JSON (flow, tls, http, dns v1/v2/v3)",
        _sniff,
        SuricataEveParser,
    )
)
