"""The technical summary and summarized logs of a bundle, computed with DuckDB.

Selection runs in DuckDB over the sealed Parquet; the disclosed rows themselves are then read
with pyarrow by ``log_index`` so that nanosecond times survive unchanged.  Every list in the
summary has a deterministic order (count descending, then key).
"""

from __future__ import annotations

import ipaddress
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from acdkit import schema, skew
from acdkit.errors import AcdkitError, UsageError
from acdkit.sealinfo import SealInfo
from acdkit.sources._sql import sql_quote
from acdkit.store import Store

if TYPE_CHECKING:
    from acdkit.bundle import Window

__all__ = ["select_records", "sensor_clock_flags", "write_summary"]

SUMMARY_SCHEMA = "acdkit-summary/1"
TOP = 20
_ADDR_COLUMNS = {"net": ("src_ip", "dst_ip"), "dns": ("client_ip", "resolver_ip")}

# Report items of the Japanese reporting order, filled in by the responder.
REPORT_ITEMS = [
    (
        "report_type",
        "報告種別 / Report type",
        "DDoS, ransomware or other: to be chosen by the responder.",
    ),
    ("operator_overview", "事業者の概要 / Operator overview", "To be completed by the responder."),
    (
        "incident_overview",
        "インシデントの概要 / Incident overview",
        "To be completed by the responder; the machine-information summary below supports it.",
    ),
    (
        "affected_systems",
        "影響を受けたシステム / Affected systems",
        "See internal addresses in top talkers below; to be confirmed by the responder.",
    ),
    (
        "technical_matters",
        "技術的事項 / Technical matters",
        "Machine-information summary below (addresses, ports, fingerprints, DNS names, times).",
    ),
    ("response", "対応状況 / Response and containment status", "To be completed by the responder."),
    ("other", "その他 / Other (assumed damage)", "To be completed by the responder."),
]


def _networks(values: tuple[str, ...]) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    out = []
    for value in values:
        try:
            out.append(ipaddress.ip_network(value, strict=False))
        except ValueError:
            raise UsageError(f"{value!r} is not an address or CIDR prefix") from None
    return out


def _matching(
    con: duckdb.DuckDBPyConnection,
    rel: str,
    column: str,
    nets: list[ipaddress.IPv4Network | ipaddress.IPv6Network],
) -> pa.Table:
    distinct = con.sql(f"SELECT DISTINCT {column} AS a FROM {rel} WHERE {column} IS NOT NULL")
    keep = [a for (a,) in distinct.fetchall() if any(ipaddress.ip_address(a) in n for n in nets)]
    return pa.table({"a": pa.array(keep, pa.string())})


def select_records(
    con: duckdb.DuckDBPyConnection, segments: list[tuple[Path, SealInfo]], window: Window
) -> dict[str, pa.Table]:
    """Sealed records of each table inside the window and address filters, by log_index."""
    src_nets, dst_nets = _networks(window.src), _networks(window.dst)
    out: dict[str, pa.Table] = {}
    for table in schema.TABLES:
        ts = schema.load(table)
        files = [
            str(p / f"{table}.parquet") for p, _ in segments if (p / f"{table}.parquet").is_file()
        ]
        addr = _ADDR_COLUMNS.get(table)
        if not files or ((src_nets or dst_nets) and addr is None):
            out[table] = ts.sealed_arrow().empty_table()
            continue
        rel = f"t_{table}"
        # literals made here from datetimes, never from user text: views take no parameters
        start, end = (t.astimezone(UTC).isoformat() for t in (window.start, window.end))
        paths = ", ".join(sql_quote(f) for f in files)
        con.execute(
            f"CREATE OR REPLACE TEMP VIEW {rel} AS SELECT * FROM read_parquet([{paths}]) "
            f"WHERE ts_utc >= TIMESTAMPTZ '{start}' AND ts_utc < TIMESTAMPTZ '{end}'"
        )
        where = []
        for nets, column, name in (
            (src_nets, addr[0] if addr else "", "m_src"),
            (dst_nets, addr[1] if addr else "", "m_dst"),
        ):
            if nets:
                con.register(name, _matching(con, rel, column, nets))
                where.append(f"{column} IN (SELECT a FROM {name})")
        cond = " AND ".join(where) or "true"
        wanted = (
            con.sql(f"SELECT log_index FROM {rel} WHERE {cond} ORDER BY log_index")
            .to_arrow_table()
            .column(0)
            .combine_chunks()
        )
        out[table] = _read_rows(files, wanted, ts)
    return out


def _read_rows(files: list[str], wanted: pa.Array, ts: schema.TableSchema) -> pa.Table:
    parts = []
    if len(wanted):
        value_set = wanted.cast(pa.uint64())
        for path in files:
            for batch in pq.ParquetFile(path).iter_batches(131_072):
                mask = pc.is_in(batch.column("log_index"), value_set=value_set)
                if pc.any(mask).as_py():
                    parts.append(pa.Table.from_batches([batch.filter(mask)]))
    if not parts:
        return ts.sealed_arrow().empty_table()
    return pa.concat_tables(parts).cast(ts.sealed_arrow())


def _rows(con: duckdb.DuckDBPyConnection, sql: str) -> list[dict[str, Any]]:
    rel = con.sql(sql)
    names = rel.columns
    out = []
    for row in rel.fetchall():
        out.append(
            {
                n: (v.isoformat() if isinstance(v, datetime) else v)
                for n, v in zip(names, row, strict=True)
            }
        )
    return out


def _is_external(addr: str) -> bool:
    try:
        return ipaddress.ip_address(addr).is_global
    except ValueError:
        return False


def _facts(con: duckdb.DuckDBPyConnection, disclosed: dict[str, pa.Table]) -> dict[str, Any]:
    for table, rows in disclosed.items():
        con.register(f"d_{table}", rows)
    counts = {
        t: {
            r["event_kind"]: r["n"]
            for r in _rows(
                con, f"SELECT event_kind, count(*) AS n FROM d_{t} GROUP BY 1 ORDER BY 1"
            )
        }
        for t in disclosed
    }
    times = _rows(
        con,
        " UNION ALL ".join(f"SELECT ts_utc FROM d_{t}" for t in disclosed).join(
            ["SELECT min(ts_utc) AS first, max(ts_utc) AS last FROM (", ")"]
        ),
    )[0]
    addresses = _rows(
        con,
        """
        SELECT a AS address, sum(n) AS records FROM (
          SELECT src_ip AS a, count(*) AS n FROM d_net GROUP BY 1 UNION ALL
          SELECT dst_ip, count(*) FROM d_net GROUP BY 1 UNION ALL
          SELECT client_ip, count(*) FROM d_dns GROUP BY 1 UNION ALL
          SELECT resolver_ip, count(*) FROM d_dns GROUP BY 1)
        WHERE a IS NOT NULL GROUP BY 1 ORDER BY records DESC, address""",
    )
    return {
        "time_range": times,
        "counts": counts,
        "total_records": sum(sum(c.values()) for c in counts.values()),
        "top_talkers": _rows(
            con,
            f"""
            SELECT src_ip, count(*) AS records,
                   sum(coalesce(orig_bytes, 0) + coalesce(resp_bytes, 0)) AS bytes
            FROM d_net WHERE src_ip IS NOT NULL GROUP BY 1
            ORDER BY records DESC, src_ip LIMIT {TOP}""",
        ),
        "external_addresses": [a for a in addresses if _is_external(a["address"])][:100],
        "ports": _rows(
            con,
            f"""
            SELECT proto, dst_port, count(*) AS records FROM d_net
            WHERE dst_port IS NOT NULL GROUP BY 1, 2
            ORDER BY records DESC, proto, dst_port LIMIT {TOP}""",
        ),
        "tls": _rows(
            con,
            f"""
            SELECT tls_ja3 AS ja3, tls_ja3s AS ja3s, sni, count(*) AS records FROM d_net
            WHERE event_kind = 'tls' GROUP BY 1, 2, 3
            ORDER BY records DESC, ja3 NULLS LAST, sni NULLS LAST LIMIT {TOP}""",
        ),
        "dns_names": _rows(
            con,
            f"""
            SELECT qname, qtype, count(*) AS records FROM d_dns WHERE qname IS NOT NULL
            GROUP BY 1, 2 ORDER BY records DESC, qname, qtype NULLS LAST LIMIT {TOP * 2}""",
        ),
        "per_minute": _rows(
            con,
            """
            SELECT minute, sum(net) AS net, sum(dns) AS dns, sum(edr) AS edr FROM (
              SELECT date_trunc('minute', ts_utc) AS minute, 1 AS net, 0 AS dns, 0 AS edr
              FROM d_net UNION ALL
              SELECT date_trunc('minute', ts_utc), 0, 1, 0 FROM d_dns UNION ALL
              SELECT date_trunc('minute', ts_utc), 0, 0, 1 FROM d_edr)
            GROUP BY 1 ORDER BY 1""",
        ),
    }


_AGGREGATES = {
    "flows": """
        SELECT src_ip, dst_ip, dst_port, proto, count(*) AS records,
               sum(orig_bytes) AS orig_bytes, sum(resp_bytes) AS resp_bytes,
               min(ts_utc) AS first_seen, max(ts_utc) AS last_seen
        FROM d_net GROUP BY 1, 2, 3, 4
        ORDER BY records DESC, src_ip, dst_ip, dst_port, proto""",
    "tls": """
        SELECT tls_ja3, tls_ja3s, sni, dst_ip, count(*) AS records,
               min(ts_utc) AS first_seen, max(ts_utc) AS last_seen
        FROM d_net WHERE event_kind = 'tls' GROUP BY 1, 2, 3, 4
        ORDER BY records DESC, tls_ja3 NULLS LAST, sni NULLS LAST, dst_ip""",
    "http": """
        SELECT url_host, http_verb, url_path, http_status, count(*) AS records,
               min(ts_utc) AS first_seen, max(ts_utc) AS last_seen
        FROM d_net WHERE event_kind = 'http' GROUP BY 1, 2, 3, 4
        ORDER BY records DESC, url_host NULLS LAST, url_path NULLS LAST""",
    "dns": """
        SELECT qname, qtype, rcode, client_ip, resolver_ip, count(*) AS records,
               min(ts_utc) AS first_seen, max(ts_utc) AS last_seen
        FROM d_dns GROUP BY 1, 2, 3, 4, 5
        ORDER BY records DESC, qname NULLS LAST, qtype NULLS LAST, client_ip NULLS LAST""",
}


def _markdown(doc: dict[str, Any]) -> str:
    facts = doc["machine_information"]
    out = [
        f"# Technical summary — incident {doc['incident']}",
        "",
        f"Log `{doc['origin']}`, checkpoint {doc['checkpoint_size']:,}. Window "
        f"{doc['window']['from']} to {doc['window']['to']}"
        + (f", source filter {', '.join(doc['window']['src'])}" if doc["window"]["src"] else "")
        + (
            f", destination filter {', '.join(doc['window']['dst'])}"
            if doc["window"]["dst"]
            else ""
        )
        + ".",
        "",
    ]
    for _key, title, text in REPORT_ITEMS:
        out += [f"## {title}", "", text, ""]
    out += _clock_markdown(doc.get("clock"))
    tr = facts["time_range"]
    out += [
        "## Machine-information summary",
        "",
        f"Records: {facts['total_records']:,}; first {tr['first']}, last {tr['last']}.",
        "",
    ]
    for table, kinds in facts["counts"].items():
        if kinds:
            out.append(f"- {table}: " + ", ".join(f"{k} {v:,}" for k, v in kinds.items()))
    sections = [
        ("Top talkers", "top_talkers"),
        ("External addresses", "external_addresses"),
        ("Ports", "ports"),
        ("TLS fingerprints and SNI", "tls"),
        ("DNS names", "dns_names"),
        ("Activity per minute", "per_minute"),
    ]
    for title, key in sections:
        rows = facts[key]
        out += ["", f"### {title}", ""]
        if not rows:
            out.append("None in this window.")
            continue
        cols = list(rows[0])
        out.append("| " + " | ".join(cols) + " |")
        out.append("|" + "---|" * len(cols))
        out += [
            "| " + " | ".join("" if r[c] is None else str(r[c]) for c in cols) + " |" for r in rows
        ]
    return "\n".join(out) + "\n"


def _clock_markdown(clock: dict[str, Any] | None) -> list[str]:
    if not clock:
        return []
    out = [
        "## 時刻の状態 / Clock state in the window",
        "",
        f"- NTP: {clock['ntp']['state']}.",
        f"- RFC 3161 (authenticated): {clock['rfc3161']['state']}.",
    ]
    for sensor in clock.get("sensors", []):
        out.append(f"- Sensor clock, file {_file(sensor)}: {sensor['text']}.")
    if clock["flags"]:
        out += ["", "**Flagged:**", ""] + [f"- {flag}" for flag in clock["flags"]]
    else:
        out += [
            "",
            "Nothing flagged: the collector's clock was measured within a day before and "
            "after the window, every measurement held, and no sensor clock finding concerns "
            "the disclosed records.",
        ]
    return [*out, ""]


def _file(sensor: dict[str, Any]) -> str:
    """A source file by name and hash: names repeat (every Zeek sensor writes ssl.log)."""
    return f"{sensor['file']} (SHA-256 {str(sensor['sha256'])[:12]}…)"


def sensor_clock_flags(store: Store, disclosed: dict[str, pa.Table]) -> list[dict[str, Any]]:
    """The sensor clock findings (acdkit.skew) of every file and sensor the window discloses
    records of, one entry per finding; read from the source ledger."""
    pairs: set[tuple[str, str]] = set()
    for rows in disclosed.values():
        if rows.num_rows:
            both = rows.select(["src_ledger_id", "sensor_id"]).group_by(
                ["src_ledger_id", "sensor_id"]
            )
            for item in both.aggregate([]).to_pylist():
                pairs.add((item["src_ledger_id"], item["sensor_id"] or skew.UNNAMED))
    out = []
    for ledger_id, sensor in sorted(pairs):
        try:
            entry = store.ledger_entry(ledger_id)
        except AcdkitError:
            entry = None
        for found in (entry or {}).get("clock_skew", []):
            if (found.get("sensor") or skew.UNNAMED) != sensor or not found.get("findings"):
                continue
            for text in skew.describe_json(found):
                out.append(
                    {
                        "file": (entry or {}).get("name", ledger_id),
                        "sha256": ledger_id,
                        "sensor": sensor or None,
                        "findings": found["findings"],
                        "text": text,
                    }
                )
    return out


def write_summary(
    root: Path,
    con: duckdb.DuckDBPyConnection,
    disclosed: dict[str, pa.Table],
    incident: str,
    window: Window,
    origin: str,
    size: int,
    clock: dict[str, Any] | None = None,
) -> dict[str, Any]:
    facts = _facts(con, disclosed)
    if clock is not None:
        clock["flags"] += [
            f"sensor clock, file {_file(s)}: {s['text']}" for s in clock.get("sensors", [])
        ]
    doc = {
        "schema_version": SUMMARY_SCHEMA,
        "incident": incident,
        "origin": origin,
        "checkpoint_size": size,
        "window": {
            "from": window.start.astimezone(UTC).isoformat(),
            "to": window.end.astimezone(UTC).isoformat(),
            "src": list(window.src),
            "dst": list(window.dst),
        },
        "report_items": {k: {"title": t, "text": x} for k, t, x in REPORT_ITEMS},
        "machine_information": facts,
        "clock": clock,
        "completeness": "Disclosed records are proven to be in the sealed log; that they are "
        "all records of the window is not proven (format v1 has no "
        "completeness proofs).",
    }
    (root / "summary").mkdir(parents=True, exist_ok=True)
    (root / "summary" / "summary.json").write_text(
        json.dumps(doc, indent=2, ensure_ascii=False, default=str) + "\n", encoding="utf-8"
    )
    (root / "summary" / "summary.md").write_text(_markdown(doc), encoding="utf-8")
    (root / "logs").mkdir(exist_ok=True)
    for name, sql in _AGGREGATES.items():
        table = con.sql(sql).to_arrow_table()
        pq.write_table(table, root / "logs" / f"{name}.parquet", compression="zstd")
        pacsv.write_csv(table, root / "logs" / f"{name}.csv")
    return facts
