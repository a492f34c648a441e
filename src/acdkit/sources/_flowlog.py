"""SQL shared by the flow-log and CEF sources: protocol numbers, exact epoch text, counters.

Flow logs name the transport by its IANA number and give times as epoch seconds or
milliseconds, or as RFC 3339 text with up to nine fractional digits.  The helpers here turn
those into what `_sql.routed_query` takes (a protocol name, epoch seconds as decimal text),
without a detour through a double or a microsecond timestamp, so nanoseconds survive.
"""

from __future__ import annotations

from acdkit.sources._sql import DNS_INPUTS, NET_INPUTS

__all__ = [
    "IP_PROTOCOLS",
    "NULL",
    "bad_proto",
    "dns_inputs",
    "epoch_text",
    "ip_proto",
    "net_inputs",
    "ns_text",
    "rfc3339_epoch_text",
    "rfc3339_ns",
    "rfc3339_parts",
    "unset",
]

# IANA "Assigned Internet Protocol Numbers", keyword column, in lower case (the names
# Suricata writes, lower-cased as the net schema asks); any other number is kept as digits
IP_PROTOCOLS = {
    0: "hopopt",
    1: "icmp",
    2: "igmp",
    4: "ipv4",
    6: "tcp",
    8: "egp",
    17: "udp",
    27: "rdp",
    41: "ipv6",
    43: "ipv6-route",
    44: "ipv6-frag",
    46: "rsvp",
    47: "gre",
    50: "esp",
    51: "ah",
    58: "ipv6-icmp",
    59: "ipv6-nonxt",
    60: "ipv6-opts",
    88: "eigrp",
    89: "ospfigp",
    103: "pim",
    112: "vrrp",
    115: "l2tp",
    132: "sctp",
    136: "udplite",
    137: "mpls-in-ip",
}


NULL = "CAST(NULL AS VARCHAR)"


def net_inputs(**given: str) -> dict[str, str]:
    """`routed_query`'s net inputs: the expressions given, NULL for every other input."""
    unknown = set(given) - set(NET_INPUTS)
    if unknown:
        raise ValueError(f"not net inputs: {sorted(unknown)}")
    return {name: given.get(name, NULL) for name in NET_INPUTS if name != "line"}


def dns_inputs(**given: str) -> dict[str, str]:
    """`routed_query`'s dns inputs: the expressions given, NULL for every other input."""
    unknown = set(given) - set(DNS_INPUTS)
    if unknown:
        raise ValueError(f"not dns inputs: {sorted(unknown)}")
    out = {name: given.get(name, NULL) for name in DNS_INPUTS if name != "line"}
    if "rrdata" not in given:
        out["rrdata"] = "CAST(NULL AS VARCHAR[])"
    return out


def unset(col: str, marker: str = "-") -> str:
    """``col`` with the format's "no value" spelling (and the empty string) as NULL."""
    return f"nullif(nullif({col}, '{marker}'), '')"


def ip_proto(col: str) -> str:
    """A protocol number (text) -> its IANA keyword in lower case, else the number; a name
    (``TCP``) is lower-cased; NULL stays NULL."""
    num = f"TRY_CAST({col} AS UTINYINT)"
    cases = " ".join(f"WHEN {n} THEN '{name}'" for n, name in IP_PROTOCOLS.items())
    return (
        f"CASE WHEN {col} IS NULL THEN NULL"
        f" WHEN {num} IS NULL THEN lower({col})"
        f" ELSE CASE {num} {cases} ELSE CAST({num} AS VARCHAR) END END"
    )


def bad_proto(col: str) -> str:
    """True where ``col`` is digits that are no protocol number (0..255)."""
    return f"(regexp_full_match({col}, '[0-9]+') AND TRY_CAST({col} AS UTINYINT) IS NULL)"


def epoch_text(col: str, decimals: int) -> str:
    """Unsigned integer text counting 10^-decimals seconds -> epoch seconds as decimal text
    (``1663146003599`` with 3 -> ``1663146003.599``); anything else passes unchanged, for
    the timestamp check downstream to reject."""
    # lpad() also cuts longer text, so only short values are padded
    short = f"length({col}) <= {decimals}"
    padded = f"CASE WHEN {short} THEN lpad({col}, {decimals + 1}, '0') ELSE {col} END"
    return (
        f"CASE WHEN regexp_full_match({col}, '[0-9]{{1,19}}')"
        f" THEN regexp_replace({padded}, '([0-9]{{{decimals}}})$', '.\\1') ELSE {col} END"
    )


_RFC3339 = (
    r"^([0-9]{4}-[0-9]{2}-[0-9]{2})[Tt ]([0-9]{2}:[0-9]{2}:[0-9]{2})(\.[0-9]{1,9})?"
    r"([Zz]|[+-][0-9]{2}:?[0-9]{2})$"
)


def rfc3339_parts(col: str) -> str:
    """The pieces of RFC 3339 text, as a struct for `rfc3339_epoch_text` (computed once)."""
    return f"regexp_extract({col}, '{_RFC3339}', ['d', 't', 'f', 'z'])"


def rfc3339_ns(parts: str) -> str:
    """RFC 3339 pieces (`rfc3339_parts`) -> exact ns since the epoch (BIGINT), else NULL.

    The whole seconds go through DuckDB's TIMESTAMPTZ (which keeps microseconds only); the
    fraction is carried as digits, so ``…00.123456789Z`` keeps its last three digits.
    """
    zone = f"CASE WHEN upper({parts}.z) = 'Z' THEN '+00:00' ELSE {parts}.z END"
    stamp = f"TRY_CAST({parts}.d || ' ' || {parts}.t || {zone} AS TIMESTAMPTZ)"
    frac = f"CAST(rpad(coalesce(nullif(ltrim({parts}.f, '.'), ''), '0'), 9, '0') AS BIGINT)"
    # HUGEINT, then TRY_CAST: a time outside int64 ns (years before 1677 or after 2262)
    # becomes NULL, a reject, instead of an overflow error that would stop the chunk
    ns = f"(epoch_us({stamp}) // 1000000)::HUGEINT * 1000000000 + {frac}"
    return f"CASE WHEN {parts}.d <> '' THEN TRY_CAST({ns} AS BIGINT) END"


def ns_text(ns: str) -> str:
    """ns since the epoch (BIGINT) -> exact epoch seconds as decimal text; NULL stays NULL."""
    big = f"abs(CAST({ns} AS HUGEINT))"  # abs() of the smallest BIGINT does not fit one
    return (
        f"CASE WHEN ({ns}) < 0 THEN '-' ELSE '' END || CAST({big} // 1000000000 AS VARCHAR)"
        f" || '.' || lpad(CAST({big} % 1000000000 AS VARCHAR), 9, '0')"
    )


def rfc3339_epoch_text(parts: str) -> str:
    """RFC 3339 pieces (`rfc3339_parts`) -> exact epoch seconds as decimal text, else NULL
    (a reject for a missing timestamp)."""
    return ns_text(rfc3339_ns(parts))
