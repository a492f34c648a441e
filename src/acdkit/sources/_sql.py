"""SQL shared by every source: typed, validated projections into the net and dns tables.

A source produces a relation of text columns with generic names (see NET_INPUTS and
DNS_INPUTS); these projections turn them into schema types in bulk, cut content (query
strings, URL user-info) and give each invalid row a reject reason instead of a value.
"""

from __future__ import annotations

__all__ = [
    "DNS_INPUTS",
    "NET_INPUTS",
    "dns_projection",
    "net_projection",
    "sql_quote",
    "ts_ns",
]

NET_INPUTS = (
    "line",
    "kind",
    "session_id",
    "src_ip",
    "src_port",
    "dst_ip",
    "dst_port",
    "proto",
    "service",
    "ja3",
    "ja3s",
    "sni",
    "http_verb",
    "url_host",
    "url_uri",
    "http_status",
    "ts",
    "duration",
    "orig_bytes",
    "resp_bytes",
    "orig_pkts",
    "resp_pkts",
    "sensor",
)
DNS_INPUTS = (
    "line",
    "kind",
    "session_id",
    "qname",
    "qtype",
    "rcode",
    "rrdata",
    "resolver_ip",
    "resolver_port",
    "client_ip",
    "client_port",
    "proto",
    "trans_id",
    "ts",
    "sensor",
)


def sql_quote(value: str) -> str:
    """A SQL string literal holding ``value`` exactly."""
    return "'" + value.replace("'", "''") + "'"


def ts_ns(col: str) -> str:
    """Epoch seconds (decimal text) or ISO-8601 with a zone -> int64 ns; NULL otherwise."""
    # epoch_ns() raises outside 1677..2262 (old Suricata writes 1900 dates); epoch_us() does
    # not, and TRY_CAST turns what does not fit int64 ns into NULL, i.e. a reject, not a crash
    return (
        f"COALESCE({_exact_ns(col)}, "
        f"CASE WHEN regexp_matches({col}, '(Z|[+-][0-9]{{2}}:?[0-9]{{2}})$') "
        f"THEN TRY_CAST(epoch_us(TRY_CAST({col} AS TIMESTAMPTZ)) * 1000::HUGEINT AS BIGINT) END)"
    )


def _dur_ns(col: str) -> str:
    # a duration in seconds -> int64 ns through a double: Zeek prints up to 19 decimals,
    # which DECIMAL parses 40x slower; a double keeps sub-ns precision below 100 days, and
    # TRY_CAST makes anything beyond int64 (1e20) NULL, i.e. a reject
    return f"TRY_CAST(round(TRY_CAST({col} AS DOUBLE) * 1e9) AS BIGINT)"


def _exact_ns(col: str) -> str:
    # epoch seconds as decimal text -> int64 ns, exactly (a double would lose ~100 ns).
    # DECIMAL(19,9) times 10^9 cannot overflow the DECIMAL(29,9) product (DECIMAL(38,9)
    # could, and raised on input like "1e20"); numbers beyond int64 ns come back NULL
    return f"TRY_CAST(TRY_CAST({col} AS DECIMAL(19,9)) * 1000000000 AS BIGINT)"


def _bad(col: str, cast: str, label: str) -> str:
    return f"WHEN {col} IS NOT NULL AND TRY_CAST({col} AS {cast}) IS NULL THEN 'invalid {label}'"


def _url_path(col: str) -> str:
    # the path only: cut at the first '?' or '#'; an absolute-form URI keeps only its path
    path = f"regexp_replace({col}, '[?#].*$', '', 's')"
    return f"regexp_replace({path}, '^[a-zA-Z][a-zA-Z0-9+.-]*://[^/]*', '')"


def _url_host(col: str) -> str:
    # drop any user-info ("user:pass@") a client may have put in the authority
    # 's': '.' must cross a newline too, or "a\nb@host" would keep its user-info
    return f"regexp_replace({col}, '^.*@', '', 's')"


def net_projection(rel: str, sensor_default: str | None) -> str:
    sensor = "NULL" if sensor_default is None else "$sensor"
    return f"""
    SELECT line AS src_line,
      CASE
        WHEN ts_ns IS NULL THEN 'missing or invalid timestamp'
        {_bad("src_port", "USMALLINT", "source port")}
        {_bad("dst_port", "USMALLINT", "destination port")}
        {_bad("http_status", "USMALLINT", "HTTP status")}
        WHEN duration IS NOT NULL AND {_dur_ns("duration")} IS NULL THEN 'invalid duration'
        {_bad("orig_bytes", "UBIGINT", "originator byte count")}
        {_bad("resp_bytes", "UBIGINT", "responder byte count")}
        {_bad("orig_pkts", "UBIGINT", "originator packet count")}
        {_bad("resp_pkts", "UBIGINT", "responder packet count")}
        WHEN ja3 IS NOT NULL AND NOT regexp_full_match(ja3, '[0-9a-fA-F]{{32}}')
          THEN 'invalid JA3 hash'
        WHEN ja3s IS NOT NULL AND NOT regexp_full_match(ja3s, '[0-9a-fA-F]{{32}}')
          THEN 'invalid JA3S hash'
      END AS reject_reason,
      kind AS event_kind, session_id, src_ip, TRY_CAST(src_port AS USMALLINT) AS src_port,
      dst_ip, TRY_CAST(dst_port AS USMALLINT) AS dst_port, lower(proto) AS proto, service,
      lower(ja3) AS tls_ja3, lower(ja3s) AS tls_ja3s, sni, http_verb,
      {_url_host("url_host")} AS url_host, {_url_path("url_uri")} AS url_path,
      TRY_CAST(http_status AS USMALLINT) AS http_status, CAST(NULL AS VARCHAR) AS cmd_sig,
      ts_ns AS ts_utc, {_dur_ns("duration")} AS duration_ns,
      TRY_CAST(orig_bytes AS UBIGINT) AS orig_bytes, TRY_CAST(resp_bytes AS UBIGINT) AS resp_bytes,
      TRY_CAST(orig_pkts AS UBIGINT) AS orig_pkts, TRY_CAST(resp_pkts AS UBIGINT) AS resp_pkts,
      COALESCE(sensor, {sensor}) AS sensor_id
    FROM (SELECT *, {ts_ns("ts")} AS ts_ns FROM {rel})
    """


def dns_projection(rel: str, sensor_default: str | None) -> str:
    sensor = "NULL" if sensor_default is None else "$sensor"
    return f"""
    SELECT line AS src_line,
      CASE
        WHEN ts_ns IS NULL THEN 'missing or invalid timestamp'
        {_bad("resolver_port", "USMALLINT", "resolver port")}
        {_bad("client_port", "USMALLINT", "client port")}
        {_bad("trans_id", "USMALLINT", "DNS transaction id")}
      END AS reject_reason,
      kind AS event_kind, session_id, qname, qtype, rcode, rrdata,
      resolver_ip, TRY_CAST(resolver_port AS USMALLINT) AS resolver_port,
      client_ip, TRY_CAST(client_port AS USMALLINT) AS client_port, lower(proto) AS proto,
      TRY_CAST(trans_id AS USMALLINT) AS trans_id, ts_ns AS ts_utc,
      COALESCE(sensor, {sensor}) AS sensor_id
    FROM (SELECT *, {ts_ns("ts")} AS ts_ns FROM {rel})
    """
