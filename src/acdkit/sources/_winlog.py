"""Windows events (Sysmon, Security auditing) mapped to the edr, net and dns tables.

Every reader of Windows events (EVTX files, JSON-lines exports) brings its records into one
relation of text columns: the event's provider, id, computer and times, and the EventData
fields of `DATA_FIELDS` under their own names.  `project` routes and maps that relation in
one query, so one event gives the same record whichever form it arrived in.

Mapped events (README "Windows events"):

* Sysmon 1 (process create) -> edr ``process_create``; Security 4688 -> edr ``process_create``
* Sysmon 3 (network connection) -> net ``conn``; Security 5156 (WFP allowed) -> net ``conn``
* Sysmon 22 (DNS query) -> dns ``transaction``

Every other event is skipped with a reason that names its provider class (Sysmon, Security
or another provider) and its event id, a number; no text of the event reaches a reason.
"""

from __future__ import annotations

import pyarrow.compute as pc

from acdkit.sources import Context, Parsed
from acdkit.sources._route import collect
from acdkit.sources._sql import routed_query, sql_quote
from acdkit.sources._syslog import no_zone

__all__ = ["DATA_FIELDS", "SECURITY", "SYSMON", "assume_tz_warning", "mapped", "project"]

SYSMON = "Microsoft-Windows-Sysmon"
SECURITY = "Microsoft-Windows-Security-Auditing"

# EventData fields read by the mapping; everything else (User, ParentCommandLine,
# CurrentDirectory, TargetUserName, Image, ...) is never even parsed
DATA_FIELDS = (
    "UtcTime",
    "ProcessGuid",
    "ParentProcessGuid",
    "ParentProcessId",
    "Hashes",
    "CommandLine",
    "SourceIp",
    "SourcePort",
    "DestinationIp",
    "DestinationPort",
    "Protocol",
    "Initiated",
    "QueryName",
    "QueryStatus",
    "QueryResults",
    "SubjectUserSid",
    "TargetUserSid",
    "NewProcessId",
    "ProcessId",
    "Direction",
    "SourceAddress",
    "DestAddress",
    "DestPort",
)

# IANA protocol numbers as WFP (5156) writes them -> the names the net table uses
_PROTOCOLS = {
    "1": "icmp",
    "2": "igmp",
    "6": "tcp",
    "17": "udp",
    "41": "ipv6",
    "47": "gre",
    "50": "esp",
    "51": "ah",
    "58": "ipv6-icmp",
    "132": "sctp",
}
# Win32 DNS status codes that are DNS response codes (winerror.h DNS_ERROR_RCODE_*);
# other QueryStatus values (1460 timeout, 9501 no records, ...) are not rcodes: unset
_RCODES = {
    "0": "NOERROR",
    "9001": "FORMERR",
    "9002": "SERVFAIL",
    "9003": "NXDOMAIN",
    "9004": "NOTIMP",
    "9005": "REFUSED",
    "9006": "YXDOMAIN",
    "9007": "YXRRSET",
    "9008": "NXRRSET",
    "9009": "NOTAUTH",
    "9010": "NOTZONE",
}
# WFP direction: message-table references as logged, or their English rendering
_INBOUND = "Direction IN ('%%14592', 'Inbound', 'inbound')"
_OUTBOUND = "Direction IN ('%%14593', 'Outbound', 'outbound')"

_GUID = "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
_HEX_ID = "0[xX][0-9a-fA-F]{1,16}"
_UTC_TIME = r"[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?"


def mapped(provider: str, event_id: str) -> str:
    """SQL: whether an event (provider and id as text columns) is mapped to a table."""
    return (
        f"(({provider} = '{SYSMON}' AND {event_id} IN ('1', '3', '22')) OR "
        f"({provider} = '{SECURITY}' AND {event_id} IN ('4688', '5156')))"
    )


def _case(column: str, mapping: dict[str, str]) -> str:
    arms = " ".join(f"WHEN {sql_quote(k)} THEN {sql_quote(v)}" for k, v in mapping.items())
    return f"CASE {column} {arms} END"


def _guid(column: str) -> str:
    # the evtx crate writes no braces and upper case, Windows braces and lower case
    return f"lower(regexp_replace(trim({column}), '^\\{{(.*)\\}}$', '\\1'))"


def _hex_id(column: str) -> str:
    # Security events write process ids as hex ("0x1fc"); TRY_CAST reads that form
    return f"CAST(TRY_CAST({column} AS UBIGINT) AS VARCHAR)"


def _local_time(assume_tz: str | None) -> str:
    """A zone-less local time (``local_time``) read in the assumed zone, as ISO UTC text."""
    if assume_tz is None:
        return "NULL"
    # the wall-clock digits only: a collector's 'Z' on local time is wrong (sysmon-json)
    digits = r"regexp_replace(local_time, '(Z|[+-][0-9]{2}:?[0-9]{2})$', '')"
    stamp = f"timezone({sql_quote(assume_tz)}, TRY_CAST({digits} AS TIMESTAMP))"
    return f"strftime({stamp} AT TIME ZONE 'UTC', '%Y-%m-%dT%H:%M:%S.%fZ')"


def assume_tz_warning(assume_tz: str) -> str:
    """The ledger warning that says which times were read in the assumed zone."""
    return (
        f"Security event times without a UTC field (collector TimeCreated/EventTime) were read "
        f"as local time in {assume_tz} (--assume-tz); Sysmon events use their UtcTime"
    )


# the problem of a Security event with only the collector's local time and no --assume-tz;
# it refuses the file (`_refuse_local_times`), it is never a reject
NO_ZONE = "local time without a zone (give --assume-tz)"


def _classified(rel: str, assume_tz: str | None) -> str:
    """``rel`` with the provider class, event id, route, event time and problem per row."""
    local_ok = "FALSE" if assume_tz is None else "TRUE"
    return f"""(
      SELECT * EXCLUDE (problem), COALESCE(problem, CASE
          WHEN w_route IS NULL THEN NULL
          WHEN w_route = 'edr' AND w_class = 'sysmon'
               AND NOT regexp_full_match({_guid("ProcessGuid")}, '{_GUID}')
            THEN 'invalid process GUID'
          WHEN w_route = 'edr' AND w_class = 'sysmon'
               AND NOT regexp_full_match({_guid("ParentProcessGuid")}, '{_GUID}')
            THEN 'invalid parent process GUID'
          WHEN w_route = 'edr' AND w_class = 'security'
               AND NOT regexp_full_match(NewProcessId, '{_HEX_ID}') THEN 'invalid process ID'
          WHEN w_route = 'edr' AND w_class = 'security'
               AND NOT regexp_full_match(ProcessId, '{_HEX_ID}') THEN 'invalid parent process ID'
          WHEN w_route = 'net' AND w_class = 'sysmon'
               AND coalesce(lower(Initiated), '') NOT IN ('true', 'false')
            THEN 'invalid Initiated flag'
          WHEN w_route = 'net' AND w_class = 'security'
               AND NOT coalesce({_INBOUND} OR {_OUTBOUND}, FALSE) THEN 'unknown WFP direction'
          WHEN w_class = 'sysmon' AND NOT regexp_full_match(UtcTime, '{_UTC_TIME}')
            THEN 'missing or invalid UtcTime'
          WHEN w_class = 'security' AND sys_time IS NULL AND local_time IS NOT NULL
               AND NOT {local_ok}
            THEN '{NO_ZONE}'
        END) AS problem,
        CASE WHEN w_class = 'sysmon' THEN replace(UtcTime, ' ', 'T') || 'Z'
             ELSE coalesce(sys_time, {_local_time(assume_tz)}) END AS w_ts
      FROM (SELECT *, CASE
              WHEN w_class = 'sysmon' AND w_eid = 1 THEN 'edr'
              WHEN w_class = 'sysmon' AND w_eid = 3 THEN 'net'
              WHEN w_class = 'sysmon' AND w_eid = 22 THEN 'dns'
              WHEN w_class = 'security' AND w_eid = 4688 THEN 'edr'
              WHEN w_class = 'security' AND w_eid = 5156 THEN 'net'
            END AS w_route
            FROM (SELECT * EXCLUDE (problem), CASE
                    WHEN problem IS NOT NULL THEN problem
                    WHEN event_id IS NULL THEN 'no event ID'
                    WHEN w_eid IS NULL THEN 'invalid event ID'
                  END AS problem
                  FROM (SELECT *,
                          CASE provider WHEN '{SYSMON}' THEN 'sysmon'
                                        WHEN '{SECURITY}' THEN 'security'
                                        ELSE 'other' END AS w_class,
                          CASE WHEN regexp_full_match(event_id, '[0-9]{{1,5}}')
                               THEN CAST(event_id AS INTEGER) END AS w_eid
                        FROM {rel}))))"""


_SKIP_REASON = """CASE WHEN w_route IS NOT NULL THEN NULL
    WHEN w_class = 'sysmon' THEN 'Sysmon event ' || w_eid || ' is not ingested'
    WHEN w_class = 'security' THEN 'Security event ' || w_eid || ' is not ingested'
    ELSE 'event ' || w_eid || ' of another provider is not ingested' END"""

_SYSMON_ROW = "w_class = 'sysmon'"
# typed: an untyped NULL column would reach Arrow as type null, not as text
_NULL = "CAST(NULL AS VARCHAR)"
# Sysmon 3 writes the local socket as Source*: an inbound (not initiated) connection has its
# client in Destination*; WFP 5156 likewise writes the local side as Source (FORMATS.md §3, §4)
_SWAP = f"""CASE WHEN {_SYSMON_ROW} THEN lower(Initiated) = 'false' ELSE {_INBOUND} END"""


def _side(swap_to: str, keep: str) -> str:
    return f"CASE WHEN {_SWAP} THEN {swap_to} ELSE {keep} END"


_NET = {
    "kind": "'conn'",
    "session_id": _NULL,
    "src_ip": _side("coalesce(DestinationIp, DestAddress)", "coalesce(SourceIp, SourceAddress)"),
    "src_port": _side("coalesce(DestinationPort, DestPort)", "SourcePort"),
    "dst_ip": _side("coalesce(SourceIp, SourceAddress)", "coalesce(DestinationIp, DestAddress)"),
    "dst_port": _side("SourcePort", "coalesce(DestinationPort, DestPort)"),
    "proto": f"CASE WHEN {_SYSMON_ROW} THEN Protocol ELSE "
    f"coalesce({_case('Protocol', _PROTOCOLS)}, Protocol) END",
    "service": _NULL,
    "ja3": _NULL,
    "ja3s": _NULL,
    "sni": _NULL,
    "http_verb": _NULL,
    "url_host": _NULL,
    "url_uri": _NULL,
    "http_status": _NULL,
    "ts": "w_ts",
    "duration": _NULL,
    "orig_bytes": _NULL,
    "resp_bytes": _NULL,
    "orig_pkts": _NULL,
    "resp_pkts": _NULL,
    "sensor": "computer",
}

# "a;b;" -> [a, b]; "type:  5 cname.example" -> the name; "-" or nothing -> unset
_ANSWERS = r"""CASE WHEN trim(QueryResults) IN ('', '-') THEN NULL ELSE list_filter(
    list_transform(string_split(QueryResults, ';'),
                   lambda a: trim(regexp_replace(trim(a), '^type:\s*[0-9]+\s+', ''))),
    lambda a: a NOT IN ('', '-')) END"""

_DNS = {
    "kind": "'transaction'",
    "session_id": _NULL,
    "qname": "nullif(QueryName, '')",
    "qtype": _NULL,
    "rcode": _case("trim(QueryStatus)", _RCODES),
    "rrdata": _ANSWERS,
    "resolver_ip": _NULL,
    "resolver_port": _NULL,
    "client_ip": _NULL,
    "client_port": _NULL,
    "proto": _NULL,
    "trans_id": _NULL,
    "ts": "w_ts",
    "sensor": "computer",
}

# 4688 has no GUID: the new process is named by its id and creation time, which is what
# makes an execution unique on one host (sensor_id); its parent only by its id
_SYNTH_EXEC_ID = (
    f"'pid:' || {_hex_id('NewProcessId')} || '@' || "
    "CAST(epoch_ns(TRY_CAST(w_ts AS TIMESTAMPTZ)) AS VARCHAR)"
)
# the owner of the new process: 4688 v2 names it in TargetUserSid when it differs from the
# creator (S-1-0-0, the NULL SID, when not); v0 and v1 only have the creator's SubjectUserSid
_OWNER_SID = """CASE WHEN nullif(TargetUserSid, '') IS NOT NULL AND TargetUserSid <> 'S-1-0-0'
    THEN TargetUserSid ELSE nullif(SubjectUserSid, '') END"""

_EDR = {
    "kind": "'process_create'",
    "proc_exec_id": f"CASE WHEN {_SYSMON_ROW} THEN {_guid('ProcessGuid')} "
    f"ELSE {_SYNTH_EXEC_ID} END",
    "parent_pid": f"CASE WHEN {_SYSMON_ROW} THEN ParentProcessId ELSE {_hex_id('ProcessId')} END",
    "parent_exec_id": f"CASE WHEN {_SYSMON_ROW} THEN {_guid('ParentProcessGuid')} END",
    "image_sha256": f"""CASE WHEN {_SYSMON_ROW} THEN nullif(
        regexp_extract(Hashes, '(^|,)\\s*SHA256=([^,]*)', 2), '') END""",
    "cmdline": "nullif(CommandLine, '')",
    # Sysmon 1 has no SID: User is a name, never stored; System/Security is Sysmon's account
    "user_sid": f"CASE WHEN {_SYSMON_ROW} THEN NULL ELSE {_OWNER_SID} END",
    "ts": "w_ts",
    "sensor": "computer",
}


def project(ctx: Context, parsed: Parsed, rel: str) -> None:
    """Route and map relation ``rel`` of Windows events into edr, net and dns rows.

    ``rel`` has ``line``, ``problem``, ``provider``, ``event_id``, ``computer``,
    ``sys_time`` (ISO with a zone, truly UTC), ``local_time`` (a collector's time without a
    trustworthy zone) and the `DATA_FIELDS`, all text.
    """
    base = _classified(rel, ctx.assume_tz)
    query = routed_query(base, "w_route", _SKIP_REASON, _NET, _DNS, ctx.sensor, edr=_EDR)
    collect(ctx, query, parsed)
    _refuse_local_times(parsed)


def _refuse_local_times(parsed: Parsed) -> None:
    """Fail the file if a Security event has only local time and no --assume-tz was given:
    the rule of every format (`_syslog.no_zone`), where rejects would lose those events."""
    first = None
    for rows in parsed.rejects:
        hits = rows.filter(pc.equal(rows.column("reason"), NO_ZONE))
        if hits.num_rows:
            line = pc.min(hits.column("line")).as_py()
            first = line if first is None else min(first, line)
    if first is not None:
        raise no_zone(first)
