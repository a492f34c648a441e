"""SQL shared by every source: typed, validated projections into the net and dns tables.

A source produces a relation of text columns with generic names (see NET_INPUTS, DNS_INPUTS
and EDR_INPUTS); these projections turn them into schema types in bulk, cut content (query
strings, URL user-info, user names in paths) and give each invalid row a reject reason
instead of a value.  A command line (net input ``cmdline``, optional; edr input ``cmdline``)
leaves the query as the transient column ``_cmdline``, which `minimize.finalize` replaces by
its signature.
"""

from __future__ import annotations

__all__ = [
    "DNS_INPUTS",
    "EDR_INPUTS",
    "NET_INPUTS",
    "OPTIONAL_NET_INPUTS",
    "routed_query",
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
    "cmdline",
)
# inputs a source may leave out, and what they are then
OPTIONAL_NET_INPUTS = {"cmdline": "NULL"}
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

# ``cmdline`` becomes the transient ``_cmdline`` column: minimize.finalize keeps schema fields
# only, so the text never reaches a staged file (a keyed signature step may read it first)
EDR_INPUTS = (
    "line",
    "kind",
    "proc_exec_id",
    "parent_pid",
    "parent_exec_id",
    "image_sha256",
    "cmdline",
    "user_sid",
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
    # Fast path, for at most 9 decimals: drop the point, read an integer, scale by a power
    # of ten; DECIMAL parsing costs several times more and is kept for the rest.
    # DECIMAL(19,9) times 10^9 cannot overflow the DECIMAL(29,9) product (DECIMAL(38,9)
    # could, and raised on input like "1e20"); numbers beyond int64 ns come back NULL
    point = f"strpos({col}, '.')"
    digits = f"replace({col}, '.', '')"
    decimals = f"(length({col}) - {point})"
    fast = (
        f"CASE WHEN {point} = 0 THEN TRY_CAST(TRY_CAST({col} AS BIGINT) * 1000000000::HUGEINT"
        f" AS BIGINT) WHEN {decimals} <= 9 AND length({digits}) = length({col}) - 1"
        f" THEN TRY_CAST(TRY_CAST({digits} AS BIGINT)::HUGEINT"
        f" * CAST(10 ** (9 - {decimals}) AS BIGINT) AS BIGINT) END"
    )
    slow = f"TRY_CAST(TRY_CAST({col} AS DECIMAL(19,9)) * 1000000000 AS BIGINT)"
    return f"COALESCE({fast}, {slow})"


def _bad(col: str, cast: str, label: str) -> str:
    return f"WHEN {col} IS NOT NULL AND TRY_CAST({col} AS {cast}) IS NULL THEN 'invalid {label}'"


# a protocol, DNS type or DNS code is a short token (a name or a number: "tcp", "ipv6-icmp",
# "AAAA", "TYPE65", "type=65", "*"); anything else is text that a source let through (a CEF
# "proto=my secret" value, a garbled field) and has no place in a column of codes
_CODE = "[A-Za-z0-9_.+*=-]{1,32}"


def _bad_token(col: str, label: str) -> str:
    return f"WHEN {col} IS NOT NULL AND NOT regexp_full_match({col}, '{_CODE}') THEN '{label}'"


# a sensor name comes from the record (a CEF dvchost, an EVTX Computer, a syslog host) and is
# printed on the operator's terminal: control and format characters (escape sequences,
# bidirectional overrides) would act there, and a name longer than a host name is not one
_BAD_NAME = r"[\p{Cc}\p{Cf}\p{Zl}\p{Zp}]"


def _bad_sensor(col: str) -> str:
    return (
        f"WHEN {col} IS NOT NULL AND (length({col}) > 255"
        f" OR regexp_matches({col}, '{_BAD_NAME}')) THEN 'invalid sensor name'"
    )


# blanks and invisible characters: ASCII and Unicode spaces and separators, controls,
# format characters (zero-width, bidi marks) and private-use code points
_INVISIBLE = r"[\p{Zs}\p{Zl}\p{Zp}\p{Cc}\p{Cf}\p{Co}]"
# where a path ends: a query, a fragment, path parameters (";jsessionid=..."), an encoded
# '?', '#' or '%' (a query encoded, or encoded twice, into the path), or any invisible
# character: what follows is user data, or not a path at all
_PATH_END = rf"([?#;]|%3[fF]|%2[35]|{_INVISIBLE}).*$"
_SCHEME = "^[a-zA-Z][a-zA-Z0-9+.-]*://"
# a user's directory in a path: /home/NAME, /Users/NAME (macOS), /~NAME (also as %7E)
_USER_DIR = "(/home/|/Users/|/~|/%7[eE])[^/]+"


def _url_path(col: str) -> str:
    """The request path only, without query, fragment, path parameters, user-info or user
    names (a user's directory segment becomes ``<user>``).

    Leading blanks go first; an absolute-form URI keeps only its path; in every other form
    that does not start with one '/' (scheme-relative ``//user@host/...``, a CONNECT target
    ``user:pass@host:port``, garbage) everything up to the last '@' before any '?' or '#'
    goes; then the path is cut at its end.  User-info may hold any character but those two
    (RFC 3986 §3.2: they end the authority), so it is removed before the cut, and an '@'
    inside a query or fragment never pulls their text into the path.
    """
    bare = f"regexp_replace({col}, '^{_INVISIBLE}+', '', 's')"
    path = f"regexp_replace({bare}, '{_SCHEME}[^/]*', '', 's')"
    path = (
        f"CASE WHEN starts_with({path}, '/') AND NOT starts_with({path}, '//') THEN {path}"
        f" ELSE regexp_replace({path}, '^(//)?[^?#]*@', '\\1', 's') END"
    )
    path = f"regexp_replace({path}, '{_PATH_END}', '', 's')"
    return f"regexp_replace({path}, '{_USER_DIR}', '\\1<user>', 'gs')"


def _url_host(col: str) -> str:
    """The host and port only (``name``, ``a.b.c.d`` or ``[v6]``, then ``:port``), else ''."""
    bare = f"regexp_replace({col}, '^{_INVISIBLE}+', '', 's')"
    host = f"regexp_replace(regexp_replace({bare}, '{_SCHEME}', '', 's'), '^.*@', '', 's')"
    return f"regexp_extract({host}, '^(\\[[0-9A-Fa-f:.]+\\]|[\\pL\\pN._-]+)(:[0-9]{{1,5}})?', 0)"


def _net_columns(sensor: str) -> list[str]:
    """The net table's columns over inputs ``n_<name>`` (NET_INPUTS) and ``n_ts_ns``."""
    return [
        f"""CASE
        WHEN n_ts_ns IS NULL THEN 'missing or invalid timestamp'
        {_bad("n_src_port", "USMALLINT", "source port")}
        {_bad("n_dst_port", "USMALLINT", "destination port")}
        {_bad("n_http_status", "USMALLINT", "HTTP status")}
        WHEN n_duration IS NOT NULL AND n_duration_ns IS NULL THEN 'invalid duration'
        WHEN n_duration_ns < 0 THEN 'negative duration (it ends before it starts)'
        {_bad_token("n_proto", "invalid protocol name")}
        {_bad_sensor("n_sensor")}
        {_bad("n_orig_bytes", "UBIGINT", "originator byte count")}
        {_bad("n_resp_bytes", "UBIGINT", "responder byte count")}
        {_bad("n_orig_pkts", "UBIGINT", "originator packet count")}
        {_bad("n_resp_pkts", "UBIGINT", "responder packet count")}
        WHEN n_ja3 IS NOT NULL AND NOT regexp_full_match(n_ja3, '[0-9a-fA-F]{{32}}')
          THEN 'invalid JA3 hash'
        WHEN n_ja3s IS NOT NULL AND NOT regexp_full_match(n_ja3s, '[0-9a-fA-F]{{32}}')
          THEN 'invalid JA3S hash'
        END AS reject_reason""",
        "n_kind AS event_kind",
        "n_session_id AS session_id",
        "n_src_ip AS src_ip",
        "TRY_CAST(n_src_port AS USMALLINT) AS src_port",
        "n_dst_ip AS dst_ip",
        "TRY_CAST(n_dst_port AS USMALLINT) AS dst_port",
        "lower(n_proto) AS proto",
        "n_service AS service",
        "lower(n_ja3) AS tls_ja3",
        "lower(n_ja3s) AS tls_ja3s",
        "n_sni AS sni",
        "n_http_verb AS http_verb",
        f"{_url_host('n_url_host')} AS url_host",
        f"{_url_path('n_url_uri')} AS url_path",
        "TRY_CAST(n_http_status AS USMALLINT) AS http_status",
        "CAST(n_cmdline AS VARCHAR) AS _cmdline",
        "n_ts_ns AS ts_utc",
        "n_duration_ns AS duration_ns",
        "TRY_CAST(n_orig_bytes AS UBIGINT) AS orig_bytes",
        "TRY_CAST(n_resp_bytes AS UBIGINT) AS resp_bytes",
        "TRY_CAST(n_orig_pkts AS UBIGINT) AS orig_pkts",
        "TRY_CAST(n_resp_pkts AS UBIGINT) AS resp_pkts",
        f"COALESCE(n_sensor, {sensor}) AS sensor_id",
    ]


def _dns_columns(sensor: str) -> list[str]:
    """The dns table's columns over inputs ``d_<name>`` (DNS_INPUTS) and ``d_ts_ns``."""
    return [
        f"""CASE
        WHEN d_ts_ns IS NULL THEN 'missing or invalid timestamp'
        {_bad("d_resolver_port", "USMALLINT", "resolver port")}
        {_bad("d_client_port", "USMALLINT", "client port")}
        {_bad("d_trans_id", "USMALLINT", "DNS transaction id")}
        {_bad_token("d_proto", "invalid protocol name")}
        {_bad_token("d_qtype", "invalid DNS query type")}
        {_bad_token("d_rcode", "invalid DNS response code")}
        {_bad_sensor("d_sensor")}
        END AS reject_reason""",
        "d_kind AS event_kind",
        "d_session_id AS session_id",
        "d_qname AS qname",
        "d_qtype AS qtype",
        "d_rcode AS rcode",
        "d_rrdata AS rrdata",
        "d_resolver_ip AS resolver_ip",
        "TRY_CAST(d_resolver_port AS USMALLINT) AS resolver_port",
        "d_client_ip AS client_ip",
        "TRY_CAST(d_client_port AS USMALLINT) AS client_port",
        "lower(d_proto) AS proto",
        "TRY_CAST(d_trans_id AS USMALLINT) AS trans_id",
        "d_ts_ns AS ts_utc",
        f"COALESCE(d_sensor, {sensor}) AS sensor_id",
    ]


def _edr_columns(sensor: str) -> list[str]:
    """The edr table's columns over inputs ``e_<name>`` (EDR_INPUTS) and ``e_ts_ns``."""
    return [
        """CASE
        WHEN e_ts_ns IS NULL THEN 'missing or invalid timestamp'
        WHEN NOT regexp_full_match(e_parent_pid, '[0-9]{1,19}') THEN 'invalid parent process ID'
        WHEN NOT regexp_full_match(e_image_sha256, '[0-9a-fA-F]{64}') THEN 'invalid SHA-256 hash'
        WHEN NOT regexp_full_match(e_user_sid, 'S-1(-[0-9]{1,10}){1,15}')
          THEN 'invalid user SID'
        """
        + _bad_sensor("e_sensor")
        + """
        END AS reject_reason""",
        "e_kind AS event_kind",
        "e_proc_exec_id AS proc_exec_id",
        "TRY_CAST(e_parent_pid AS UBIGINT) AS parent_pid",
        "e_parent_exec_id AS parent_exec_id",
        "lower(e_image_sha256) AS image_sha256",
        "CAST(NULL AS VARCHAR) AS cmdline_sig",
        "e_cmdline AS _cmdline",
        "e_user_sid AS user_sid",
        "e_ts_ns AS ts_utc",
        f"COALESCE(e_sensor, {sensor}) AS sensor_id",
    ]


def _prefixed(columns: list[str], table: str) -> list[str]:
    out = []
    for column in columns:
        expr, _, name = column.rpartition(" AS ")
        out.append(f'{expr} AS "{table}.{name}"')
    return out


def routed_query(
    base: str,
    route: str,
    skip_reason: str,
    net: dict[str, str],
    dns: dict[str, str],
    sensor_default: str | None,
    edr: dict[str, str] | None = None,
) -> str:
    """One query that parses, routes and projects a chunk in a single pass.

    ``base`` is a relation with ``line`` and ``problem`` (NULL for a line that parsed);
    ``route`` says per row 'net', 'dns', 'edr' or NULL (skipped, with ``skip_reason``);
    ``net``, ``dns`` and (for endpoint sources) ``edr`` give an expression over ``base`` for
    each of NET_INPUTS / DNS_INPUTS / EDR_INPUTS but ``line``.  Output: line, problem, route,
    skip_reason, then "<table>.<column>" for every column of each table (and ``src_line``).
    Each layer is computed once per row, so nothing is parsed or materialized twice.
    """
    net = {**OPTIONAL_NET_INPUTS, **net}
    missing = (set(NET_INPUTS) - {"line"}) ^ set(net) | (set(DNS_INPUTS) - {"line"}) ^ set(dns)
    if edr is not None:
        missing |= (set(EDR_INPUTS) - {"line"}) ^ set(edr)
    if missing:
        raise ValueError(f"routed_query: inputs do not match: {sorted(missing)}")
    sensor = "NULL" if sensor_default is None else "$sensor"
    # inputs of the other table are NULL, so its projection costs next to nothing
    inputs = [f"CASE WHEN route = 'net' THEN {expr} END AS n_{name}" for name, expr in net.items()]
    inputs += [f"CASE WHEN route = 'dns' THEN {expr} END AS d_{name}" for name, expr in dns.items()]
    outputs = _prefixed(["line AS src_line", *_net_columns(sensor)], "net")
    outputs += _prefixed(["line AS src_line", *_dns_columns(sensor)], "dns")
    edr_ts = ""
    if edr is not None:
        inputs += [f"CASE WHEN route = 'edr' THEN {e} END AS e_{name}" for name, e in edr.items()]
        outputs += _prefixed(["line AS src_line", *_edr_columns(sensor)], "edr")
        edr_ts = f", {ts_ns('e_ts')} AS e_ts_ns"
    return f"""
    SELECT line, problem, route, skip_reason, {", ".join(outputs)}
    FROM (SELECT *, {ts_ns("n_ts")} AS n_ts_ns, {ts_ns("d_ts")} AS d_ts_ns{edr_ts},
                 {_dur_ns("n_duration")} AS n_duration_ns
          FROM (SELECT line, problem, route, skip_reason, {", ".join(inputs)}
                FROM (SELECT *, {route} AS route, {skip_reason} AS skip_reason
                      FROM {base})))
    """
