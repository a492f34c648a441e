"""Suricata EVE JSON: flow, tls, http and dns (v1, v2 and v3 layouts) events.

Other event types (alert, stats, fileinfo, ssh, ...) are counted as skipped with a reason.
DNS orientation is taken from port 53, not from src/dest, whose meaning changed between
Suricata versions (FORMATS.md §2).
"""

from __future__ import annotations

import json

from acdkit.sources import Context, Parsed, Parser, SourceFormat, register
from acdkit.sources._json import first_objects, split_chunk
from acdkit.sources._lines import LineChunk
from acdkit.sources._sql import dns_projection, net_projection

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

    def parse(self, chunk: LineChunk) -> Parsed:
        parsed = Parsed()
        con = self.ctx.con
        split_chunk(chunk, self.ctx, parsed, _STRUCTURE)
        con.execute(
            "CREATE OR REPLACE TEMP TABLE e AS "
            "SELECT line, j.* FROM parsed_json WHERE problem IS NULL"
        )
        wanted = ", ".join(f"'{t}'" for t in INGESTED)
        known = ", ".join(f"'{t}'" for t in OTHER_TYPES)
        skipped = con.sql(f"""
            SELECT line, CASE WHEN event_type IS NULL THEN 'no event_type'
                 WHEN event_type IN ({known})
                   THEN 'event_type ''' || event_type || ''' is not ingested'
                 ELSE 'event_type not recognised' END AS reason
            FROM e WHERE event_type IS NULL OR event_type NOT IN ({wanted})
        """).to_arrow_table()
        parsed.add_lines(
            parsed.skips, skipped["line"].combine_chunks(), skipped["reason"].combine_chunks()
        )
        con.execute(_VIEWS)
        params = self.ctx.params()
        parsed.tables["net"] = con.sql(
            net_projection("e_net", self.ctx.sensor), params=params
        ).to_arrow_table()
        parsed.tables["dns"] = con.sql(
            dns_projection("e_dns", self.ctx.sensor), params=params
        ).to_arrow_table()
        return parsed


# flow events: the record's time is the flow start; duration from start to end
_VIEWS = """
CREATE OR REPLACE TEMP VIEW e_net AS SELECT line,
  CASE event_type WHEN 'flow' THEN 'conn' ELSE event_type END AS kind,
  flow_id AS session_id, src_ip, src_port, dest_ip AS dst_ip, dest_port AS dst_port, proto,
  app_proto AS service, tls.ja3.hash AS ja3, tls.ja3s.hash AS ja3s, tls.sni AS sni,
  http.http_method AS http_verb, http.hostname AS url_host, http.url AS url_uri,
  http.status AS http_status,
  CASE WHEN event_type = 'flow' AND flow."start" IS NOT NULL THEN flow."start"
       ELSE "timestamp" END AS ts,
  CASE WHEN event_type = 'flow' THEN CAST(
    (epoch_us(TRY_CAST(flow."end" AS TIMESTAMPTZ))::DOUBLE
     - epoch_us(TRY_CAST(flow."start" AS TIMESTAMPTZ))::DOUBLE) / 1e6 AS VARCHAR) END AS duration,
  flow.bytes_toserver AS orig_bytes, flow.bytes_toclient AS resp_bytes,
  flow.pkts_toserver AS orig_pkts, flow.pkts_toclient AS resp_pkts, host AS sensor
FROM e WHERE event_type IN ('flow', 'tls', 'http');

CREATE OR REPLACE TEMP VIEW e_dns_base AS SELECT *,
  CASE WHEN src_port = '53' AND coalesce(dest_port, '') <> '53' THEN true
       WHEN dest_port = '53' AND coalesce(src_port, '') <> '53' THEN false
       ELSE dns."type" IN ('answer', 'response') END AS src_is_server
FROM e WHERE event_type = 'dns';

CREATE OR REPLACE TEMP VIEW e_dns AS SELECT line,
  CASE WHEN dns."type" IN ('query', 'request') THEN 'query'
       WHEN dns."type" IN ('answer', 'response') THEN 'answer'
       ELSE coalesce(dns."type", 'unknown') END AS kind,
  flow_id AS session_id,
  coalesce(dns.rrname, dns.queries[1].rrname) AS qname,
  coalesce(dns.rrtype, dns.queries[1].rrtype) AS qtype, dns.rcode AS rcode,
  CASE WHEN dns.answers IS NOT NULL THEN list_transform(dns.answers, lambda a: a.rdata)
       WHEN dns.grouped IS NOT NULL THEN flatten(map_values(dns.grouped))
       WHEN dns.rdata IS NOT NULL THEN [dns.rdata]
  END AS rrdata,
  CASE WHEN src_is_server THEN src_ip ELSE dest_ip END AS resolver_ip,
  CASE WHEN src_is_server THEN src_port ELSE dest_port END AS resolver_port,
  CASE WHEN src_is_server THEN dest_ip ELSE src_ip END AS client_ip,
  CASE WHEN src_is_server THEN dest_port ELSE src_port END AS client_port,
  proto, dns.id AS trans_id, "timestamp" AS ts, host AS sensor
FROM e_dns_base;
"""

FORMAT = register(
    SourceFormat(
        "suricata-eve",
        "Suricata EVE JSON (flow, tls, http, dns v1/v2/v3)",
        _sniff,
        SuricataEveParser,
    )
)
