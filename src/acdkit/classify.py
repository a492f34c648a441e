"""Classification help: reason codes suggested from the sealed network records.

The direction of each flow comes from where its two addresses are: domestic (the home
country by IP-to-country, the configured domestic ranges, and private or reserved
addresses, which belong to the organization) or foreign.  Foreign to domestic is inbound
(外内), domestic to foreign outbound (内外), foreign to foreign transit (外外).  An asset
inventory marks designated critical computers and the vulnerabilities of each asset; a
known-exploited-vulnerabilities list (CISA KEV JSON) says which of those are exploited in the
wild.  Each suggestion carries the counts and examples it rests on; none is applied: a
person decides with `acdkit incident log --action classify`.

IP-to-country is offline: the ``iptocc`` package, whose wheel embeds the five Regional
Internet Registries' delegation files, or a MaxMind DB file the user gives (``--geoip``).
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import yaml

from acdkit._files import MIB, read_bounded
from acdkit.errors import MalformedError, UsageError
from acdkit.prunedtree import is_pruned
from acdkit.sealinfo import SealInfo
from acdkit.store import Store

__all__ = [
    "Asset",
    "ClassifyReport",
    "Geo",
    "Suggestion",
    "classify",
    "load_assets",
    "load_kev",
    "mmdb_geo",
    "rir_geo",
]

CLASSIFY_SCHEMA = "acdkit-classify/1"


def sql_quote(value: str) -> str:
    """A SQL string literal holding ``value`` exactly."""
    return "'" + value.replace("'", "''") + "'"


EXAMPLES = 5
DEFAULT_DDOS_SOURCES = 100
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class Geo:
    """IP-to-country: a name and date for the report, and a batch lookup."""

    name: str
    as_of: str
    lookup: Callable[[list[str]], list[str | None]]


def rir_geo() -> Geo:
    """The database that ships with acdkit: iptocc (RIR delegation data in its wheel)."""
    import iptocc

    version = metadata.version("iptocc")

    def lookup(ips: list[str]) -> list[str | None]:
        return list(iptocc.country_code(ips)) if ips else []

    return Geo(f"iptocc {version} (RIR delegation data)", f"iptocc {version}", lookup)


def mmdb_geo(path: Path) -> Geo:
    """A MaxMind DB file (GeoLite2 or GeoIP2 Country/City, or any with a country record)."""
    import maxminddb

    try:
        reader = maxminddb.open_database(str(path))
    except (OSError, ValueError) as exc:
        raise UsageError(f"--geoip {path}: not a readable MaxMind DB file ({exc})") from None
    meta = reader.metadata()
    built = datetime.fromtimestamp(meta.build_epoch, UTC).strftime("%Y-%m-%d")

    def lookup(ips: list[str]) -> list[str | None]:
        out: list[str | None] = []
        for ip in ips:
            record = reader.get(ip)
            code: str | None = None
            if isinstance(record, dict):
                for key in ("country", "registered_country"):
                    part = record.get(key)
                    iso = part.get("iso_code") if isinstance(part, dict) else None
                    if isinstance(iso, str):
                        code = iso
                        break
            out.append(code)
        return out

    return Geo(f"{meta.database_type} ({path.name})", built, lookup)


@dataclass(frozen=True)
class Asset:
    id: str
    networks: tuple[Network, ...]
    critical: bool  # a designated critical computer (特定重要電子計算機)
    vulnerabilities: tuple[str, ...] = ()


def load_assets(path: Path) -> list[Asset]:
    """An inventory, YAML or JSON: ``assets: [{id, addresses, jp_specified_critical_computer,
    vulnerabilities}]``; addresses are addresses or CIDR blocks."""
    doc = _yaml(path, "asset inventory")
    items = doc.get("assets") if isinstance(doc, dict) else None
    if not isinstance(items, list):
        raise MalformedError(f"{path}: an asset inventory has a list `assets`")
    out = []
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get("id"), str):
            raise MalformedError(f"{path}: every asset needs an id")
        try:
            nets = tuple(ipaddress.ip_network(str(a), strict=False) for a in item["addresses"])
        except (KeyError, TypeError, ValueError):
            raise MalformedError(
                f"{path}: asset {item['id']} needs addresses (IP or CIDR)"
            ) from None
        out.append(
            Asset(
                item["id"],
                nets,
                bool(item.get("jp_specified_critical_computer", False)),
                tuple(str(v).upper() for v in item.get("vulnerabilities") or ()),
            )
        )
    return out


def load_kev(path: Path) -> dict[str, dict[str, Any]]:
    """A CISA Known Exploited Vulnerabilities catalog (its JSON feed), by CVE ID."""
    try:
        doc = json.loads(read_bounded(path, 64 * MIB, "KEV list").decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise MalformedError(f"{path} is not a KEV JSON catalog") from None
    vulns = doc.get("vulnerabilities") if isinstance(doc, dict) else None
    if not isinstance(vulns, list):
        raise MalformedError(f"{path}: a KEV catalog has a list `vulnerabilities`")
    out = {}
    for v in vulns:
        if isinstance(v, dict) and isinstance(v.get("cveID"), str):
            out[v["cveID"].upper()] = v
    return out


def _yaml(path: Path, what: str) -> Any:
    try:
        return yaml.safe_load(read_bounded(path, 16 * MIB, what))
    except yaml.YAMLError as exc:
        raise MalformedError(f"{path} is not valid YAML or JSON: {exc}") from None


@dataclass
class Suggestion:
    code: str
    evidence: dict[str, Any]
    examples: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "evidence": self.evidence,
            "examples": self.examples,
            "notes": self.notes,
        }


@dataclass
class ClassifyReport:
    incident: str
    home: str
    geo: Geo
    records: int
    directions: dict[str, int]
    suggestions: list[Suggestion]
    window: tuple[datetime | None, datetime | None]
    already: list[str] = field(default_factory=list)  # codes the incident already carries

    def to_json(self) -> dict[str, Any]:
        start, end = self.window
        return {
            "schema_version": CLASSIFY_SCHEMA,
            "incident": self.incident,
            "home_country": self.home,
            "geo_database": {"name": self.geo.name, "as_of": self.geo.as_of},
            "window": {
                "from": start.isoformat() if start else None,
                "to": end.isoformat() if end else None,
            },
            "records": self.records,
            "directions": self.directions,
            "suggestions": [s.to_json() for s in self.suggestions],
            "already_recorded": self.already,
            "applied": False,
        }


def _sealed_files(store: Store, table: str) -> list[str]:
    out = []
    for seg in store.segment_dirs():
        if is_pruned(seg):  # what an interrupted prune left is gone already (format §17.3)
            continue
        info = SealInfo.from_entry(read_bounded(seg / "seal.entry", MIB, "SEAL entry"))
        if store.checkpoint_path(info.end_index).exists() and (seg / f"{table}.parquet").is_file():
            out.append(str(seg / f"{table}.parquet"))
    return out


def _classes(
    ips: list[str], geo: Geo, home: str, domestic: list[Network]
) -> tuple[list[str | None], list[str]]:
    """Country and class (domestic, foreign, unknown) of each address."""
    countries = geo.lookup(ips)
    classes = []
    for ip, country in zip(ips, countries, strict=True):
        addr = ipaddress.ip_address(ip)
        if addr.version == 6 and addr.ipv4_mapped is not None:
            addr = addr.ipv4_mapped
        own = not addr.is_global or any(addr in net for net in domestic)
        if own or country == home:
            classes.append("domestic")
        elif country is None:
            classes.append("unknown")
        else:
            classes.append("foreign")
    return countries, classes


def classify(
    store: Store,
    incident: str,
    geo: Geo,
    home: str = "JP",
    domestic: Iterable[str] = (),
    assets: list[Asset] | None = None,
    kev: dict[str, dict[str, Any]] | None = None,
    window: tuple[datetime | None, datetime | None] = (None, None),
    ddos_sources: int = DEFAULT_DDOS_SOURCES,
    already: list[str] | None = None,
) -> ClassifyReport:
    """Suggest reason codes for ``incident`` from the sealed ``net`` records of the window."""
    try:
        nets = [ipaddress.ip_network(d, strict=False) for d in domestic]
    except ValueError as exc:
        raise UsageError(f"--domestic: {exc}") from None
    files = _sealed_files(store, "net")
    con = duckdb.connect(":memory:")
    con.execute("SET TimeZone = 'UTC'")
    empty = ClassifyReport(incident, home, geo, 0, {}, [], window, already or [])
    if not files:
        return empty
    cond = _window_sql(window)
    paths = ", ".join(sql_quote(f) for f in files)
    con.execute(
        f"CREATE TEMP VIEW flows AS SELECT ts_utc, src_ip, dst_ip, {_PORTS}, proto, "
        f"orig_bytes, resp_bytes FROM read_parquet([{paths}]) WHERE src_ip IS NOT NULL "
        f"AND dst_ip IS NOT NULL AND {cond}"
    )
    ips = [
        r[0]
        for r in con.sql(
            "SELECT DISTINCT ip FROM (SELECT src_ip ip FROM flows UNION SELECT dst_ip FROM flows) "
            "ORDER BY ip"
        ).fetchall()
    ]
    countries, classes = _classes(ips, geo, home, nets)
    owners = _owners(ips, assets or [])
    con.register(
        "addr",
        pa.table({"ip": ips, "cc": countries, "cls": classes, "asset": owners}),
    )
    con.execute(
        "CREATE TEMP VIEW dflows AS SELECT f.*, s.cc src_cc, d.cc dst_cc, s.asset src_asset, "
        "d.asset dst_asset, CASE WHEN s.cls = 'foreign' AND d.cls = 'domestic' THEN 'inbound' "
        "WHEN s.cls = 'domestic' AND d.cls = 'foreign' THEN 'outbound' "
        "WHEN s.cls = 'foreign' AND d.cls = 'foreign' THEN 'transit' "
        "WHEN s.cls = 'domestic' AND d.cls = 'domestic' THEN 'internal' ELSE 'unknown' END "
        "direction FROM flows f JOIN addr s ON f.src_ip = s.ip JOIN addr d ON f.dst_ip = d.ip"
    )
    counts = dict(
        con.sql("SELECT direction, count(*) FROM dflows GROUP BY 1 ORDER BY 1").fetchall()
    )
    total = int(sum(counts.values()))
    suggestions = [
        *_directional(con),
        *_critical(con, assets or []),
        *_exploited(con, assets or [], kev or {}),
        *_ddos(con, ddos_sources),
    ]
    return ClassifyReport(
        incident,
        home,
        geo,
        total,
        {k: int(v) for k, v in counts.items()},
        suggestions,
        window,
        already or [],
    )


def _window_sql(window: tuple[datetime | None, datetime | None]) -> str:
    parts = ["true"]
    # literals made from datetimes here, never from user text
    if window[0] is not None:
        parts.append(f"ts_utc >= TIMESTAMPTZ '{window[0].astimezone(UTC).isoformat()}'")
    if window[1] is not None:
        parts.append(f"ts_utc < TIMESTAMPTZ '{window[1].astimezone(UTC).isoformat()}'")
    return " AND ".join(parts)


def _owners(ips: list[str], assets: list[Asset]) -> list[str | None]:
    out: list[str | None] = []
    for ip in ips:
        addr = ipaddress.ip_address(ip)
        if addr.version == 6 and addr.ipv4_mapped is not None:
            addr = addr.ipv4_mapped
        out.append(next((a.id for a in assets if any(addr in n for n in a.networks)), None))
    return out


# ICMP flows carry the type in src_port and the code in dst_port (schemas/net.v1.yaml): an
# example shows them as such, not as a port
_ICMP = "proto IN ('icmp', 'ipv6-icmp')"
_PORTS = (
    f"CASE WHEN {_ICMP} THEN NULL ELSE dst_port END AS dst_port, "
    f"CASE WHEN {_ICMP} THEN src_port END AS icmp_type, "
    f"CASE WHEN {_ICMP} THEN dst_port END AS icmp_code"
)
_EXAMPLE_COLUMNS = (
    "strftime(ts_utc, '%Y-%m-%dT%H:%M:%S.%fZ') ts, src_ip, src_cc, dst_ip, dst_cc, dst_port, "
    "proto, icmp_type, icmp_code, orig_bytes"
)


def _examples(con: duckdb.DuckDBPyConnection, where: str) -> list[dict[str, Any]]:
    rel = con.sql(
        f"SELECT {_EXAMPLE_COLUMNS} FROM dflows WHERE {where} ORDER BY ts_utc, src_ip, dst_ip "
        f"LIMIT {EXAMPLES}"
    )
    return [dict(zip(rel.columns, row, strict=True)) for row in rel.fetchall()]


_DIRECTIONS = {
    "inbound": ("ACD-EXTERNAL-INBOUND", "src_cc"),
    "outbound": ("ACD-EXTERNAL-OUTBOUND", "dst_cc"),
    "transit": ("ACD-EXTERNAL-OUTER", "src_cc"),
}


def _directional(con: duckdb.DuckDBPyConnection) -> list[Suggestion]:
    out = []
    for direction, (code, country_col) in _DIRECTIONS.items():
        where = f"direction = '{direction}'"
        row = con.execute(
            "SELECT count(*), count(DISTINCT src_ip), count(DISTINCT dst_ip), "
            f"coalesce(sum(orig_bytes), 0) FROM dflows WHERE {where}"
        ).fetchall()[0]
        if not row[0]:
            continue
        top = con.sql(
            f"SELECT {country_col}, count(*) n FROM dflows WHERE {where} GROUP BY 1 "
            "ORDER BY n DESC, 1 LIMIT 5"
        ).fetchall()
        evidence = {
            "flows": int(row[0]),
            "distinct_sources": int(row[1]),
            "distinct_destinations": int(row[2]),
            "bytes_from_sources": int(row[3]),
            "top_foreign_countries": [{"country": c, "flows": int(n)} for c, n in top],
        }
        notes = []
        if direction == "transit":
            notes.append("only a carrier, or a relay that was abused, carries such traffic")
        out.append(Suggestion(code, evidence, _examples(con, where), notes))
    return out


def _critical(con: duckdb.DuckDBPyConnection, assets: list[Asset]) -> list[Suggestion]:
    critical = [a.id for a in assets if a.critical]
    if not critical:
        return []
    names = ", ".join(sql_quote(a) for a in critical)
    where = f"(src_asset IN ({names}) OR dst_asset IN ({names})) AND direction <> 'internal'"
    rows = con.sql(
        f"SELECT coalesce(dst_asset, src_asset) a, count(*) FROM dflows WHERE {where} "
        "GROUP BY 1 ORDER BY 1"
    ).fetchall()
    if not rows:
        return []
    evidence = {
        "flows": int(sum(n for _, n in rows)),
        "assets": [{"asset": a, "flows": int(n)} for a, n in rows],
    }
    notes = ["a designated critical computer exchanged traffic with foreign addresses"]
    return [Suggestion("CNI-INCIDENT", evidence, _examples(con, where), notes)]


def _exploited(
    con: duckdb.DuckDBPyConnection, assets: list[Asset], kev: dict[str, dict[str, Any]]
) -> list[Suggestion]:
    hits = [(a, cve) for a in assets for cve in a.vulnerabilities if cve in kev]
    found: list[dict[str, Any]] = []
    for asset, cve in hits:
        row = con.execute(
            "SELECT count(*) FROM dflows WHERE dst_asset = ? AND direction = 'inbound'",
            [asset.id],
        ).fetchall()[0]
        if row and row[0]:
            entry = kev[cve]
            found.append(
                {
                    "asset": asset.id,
                    "cve": cve,
                    "kev_date_added": entry.get("dateAdded"),
                    "known_ransomware_use": entry.get("knownRansomwareCampaignUse"),
                    "inbound_flows": int(row[0]),
                }
            )
    if not found:
        return []
    names = ", ".join(sql_quote(str(f["asset"])) for f in found)
    notes = ["exploitation itself is not shown by flows: confirm it before logging"]
    if any(f["known_ransomware_use"] == "Known" for f in found):
        notes.append("the KEV list records ransomware campaigns using one of these: see RANSOMWARE")
    where = f"dst_asset IN ({names}) AND direction = 'inbound'"
    return [Suggestion("VULN-EXPLOIT", {"exposures": found}, _examples(con, where), notes)]


def _ddos(con: duckdb.DuckDBPyConnection, threshold: int) -> list[Suggestion]:
    rows = con.sql(
        "SELECT dst_ip, time_bucket(INTERVAL 1 MINUTE, ts_utc) m, count(DISTINCT src_ip) s, "
        "count(*) n FROM dflows WHERE direction = 'inbound' GROUP BY 1, 2 "
        f"HAVING count(DISTINCT src_ip) >= {int(threshold)} ORDER BY s DESC, n DESC, 1, 2"
    ).fetchall()
    if not rows:
        return []
    dst, minute, sources, flows = rows[0]
    evidence = {
        "minutes_over_threshold": len(rows),
        "threshold_distinct_sources_per_minute": threshold,
        "peak": {
            "dst_ip": dst,
            "minute": minute.astimezone(UTC).isoformat().replace("+00:00", "Z"),
            "distinct_sources": int(sources),
            "flows": int(flows),
        },
    }
    notes = ["volume (Gbps, pps) and service impact must come from other measurements"]
    return [Suggestion("DDOS", evidence, [], notes)]
