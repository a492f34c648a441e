"""Classification help on a sealed log of known flows: directions by a MaxMind DB built here
(and by the shipped RIR data), domestic ranges, the asset inventory and a KEV list."""

from __future__ import annotations

import json
from pathlib import Path

import mmdb_writer
import pytest
from netaddr import IPSet

from acdkit import classify, ingest, keys, seal
from acdkit.store import Store, init_store

# (src, dst, dst port, orig bytes): each flow once, at one second apart
FLOWS = [
    *((f"45.33.100.{i}", "10.0.0.5", 502, 60) for i in range(1, 5)),  # foreign -> the PLC
    ("10.0.0.7", "64.90.0.9", 443, 5000),  # domestic -> foreign (exfiltration)
    ("10.0.0.7", "64.90.0.9", 443, 7000),
    ("133.1.2.3", "10.0.0.7", 22, 10),  # a JP address -> domestic: internal
    ("64.90.0.9", "45.33.100.1", 80, 1),  # foreign -> foreign: transit
    ("185.10.0.77", "10.0.0.5", 502, 5),  # our own foreign-registered range: domestic
]


def _conn_log(path: Path) -> Path:
    lines = [
        json.dumps(
            {
                "ts": 1791176400 + i,
                "uid": f"C{i:017d}",
                "id_orig_h": src,
                "id_orig_p": 40000 + i,
                "id_resp_h": dst,
                "id_resp_p": port,
                "proto": "tcp",
                "orig_bytes": sent,
                "resp_bytes": 0,
                "orig_pkts": 1,
                "resp_pkts": 1,
                "duration": 0.5,
            }
        )
        for i, (src, dst, port, sent) in enumerate(FLOWS)
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def sealed(tmp_path_factory: pytest.TempPathFactory) -> Store:
    base = tmp_path_factory.mktemp("classify")
    st, key = init_store(base / "store", base / "sealer.key", "example")
    report = ingest.ingest(st, [_conn_log(base / "conn.log")])
    assert [f.error for f in report.files] == [None]
    seal.seal(st, keys.load_signer(key))
    return st


@pytest.fixture(scope="module")
def geo(tmp_path_factory: pytest.TempPathFactory) -> classify.Geo:
    writer = mmdb_writer.MMDBWriter(
        ip_version=6, database_type="Test-Country", ipv4_compatible=True
    )
    for cidr, country in (
        ("45.33.100.0/24", "CN"),
        ("64.90.0.0/24", "US"),
        ("133.0.0.0/8", "JP"),
        ("185.10.0.0/24", "NL"),
    ):
        writer.insert_network(IPSet([cidr]), {"country": {"iso_code": country}})
    path = tmp_path_factory.mktemp("geo") / "test.mmdb"
    writer.to_db_file(str(path))
    return classify.mmdb_geo(path)


def _suggested(report: classify.ClassifyReport) -> dict[str, classify.Suggestion]:
    return {s.code: s for s in report.suggestions}


def test_directions_and_suggestions_by_a_user_database(
    sealed: Store, geo: classify.Geo, tmp_path: Path
) -> None:
    assets = tmp_path / "assets.yaml"
    assets.write_text(
        "assets:\n"
        "  - {id: plc-1, addresses: [10.0.0.5], jp_specified_critical_computer: true,\n"
        "     vulnerabilities: [CVE-2024-0001, cve-2023-9999]}\n"
        "  - {id: jump-host, addresses: [10.0.0.7/32]}\n"
    )
    kev = tmp_path / "kev.json"
    kev.write_text(
        json.dumps(
            {
                "vulnerabilities": [
                    {
                        "cveID": "CVE-2024-0001",
                        "dateAdded": "2024-02-01",
                        "knownRansomwareCampaignUse": "Known",
                    },
                    {"cveID": "CVE-2022-1111", "dateAdded": "2022-03-03"},
                ]
            }
        )
    )
    report = classify.classify(
        sealed,
        "INC-1",
        geo,
        "JP",
        ["185.10.0.0/24"],
        classify.load_assets(assets),
        classify.load_kev(kev),
        ddos_sources=4,
    )
    assert report.records == 9
    assert report.directions == {"inbound": 4, "internal": 2, "outbound": 2, "transit": 1}
    found = _suggested(report)
    assert list(found) == [
        "ACD-EXTERNAL-INBOUND",
        "ACD-EXTERNAL-OUTBOUND",
        "ACD-EXTERNAL-OUTER",
        "CNI-INCIDENT",
        "VULN-EXPLOIT",
        "DDOS",
    ]
    inbound = found["ACD-EXTERNAL-INBOUND"].evidence
    assert (inbound["flows"], inbound["distinct_sources"], inbound["distinct_destinations"]) == (
        4,
        4,
        1,
    )
    assert inbound["top_foreign_countries"] == [{"country": "CN", "flows": 4}]
    assert found["ACD-EXTERNAL-INBOUND"].examples[0]["src_ip"] == "45.33.100.1"
    outbound = found["ACD-EXTERNAL-OUTBOUND"].evidence
    assert (outbound["flows"], outbound["bytes_from_sources"]) == (2, 12000)
    assert found["CNI-INCIDENT"].evidence == {
        "flows": 4,
        "assets": [{"asset": "plc-1", "flows": 4}],
    }
    assert found["VULN-EXPLOIT"].evidence == {
        "exposures": [
            {
                "asset": "plc-1",
                "cve": "CVE-2024-0001",
                "kev_date_added": "2024-02-01",
                "known_ransomware_use": "Known",
                "inbound_flows": 4,
            }
        ]
    }
    assert any("RANSOMWARE" in n for n in found["VULN-EXPLOIT"].notes)
    ddos = found["DDOS"].evidence
    assert ddos["peak"]["dst_ip"] == "10.0.0.5" and ddos["peak"]["distinct_sources"] == 4
    doc = report.to_json()
    assert doc["applied"] is False and doc["geo_database"]["name"] == "Test-Country (test.mmdb)"


def test_without_the_domestic_range_that_flow_is_inbound(sealed: Store, geo: classify.Geo) -> None:
    report = classify.classify(sealed, "INC-1", geo, "JP")
    assert report.directions == {"inbound": 5, "internal": 1, "outbound": 2, "transit": 1}
    assert "DDOS" not in _suggested(report)  # 5 sources, under the default of 100


def test_a_time_window_narrows_the_flows(sealed: Store, geo: classify.Geo) -> None:
    from datetime import UTC, datetime

    start = datetime.fromtimestamp(1791176400 + 4, UTC)
    report = classify.classify(sealed, "INC-1", geo, "JP", window=(start, None))
    assert report.records == 5


def test_the_shipped_rir_database_works_offline(sealed: Store) -> None:
    geo = classify.rir_geo()
    assert geo.lookup(["8.8.8.8", "10.0.0.1"]) == ["US", None]
    assert geo.lookup(["133.1.2.3"]) == ["JP"]  # JPNIC space since the 1980s
    report = classify.classify(sealed, "INC-1", geo, "JP")
    assert report.records == 9
    assert report.directions["internal"] == 1  # 133.1.2.3 -> 10.0.0.7
    assert geo.as_of.startswith("iptocc ")


def test_icmp_examples_show_type_and_code_not_ports(tmp_path: Path) -> None:
    # the bundled Zeek log has ICMP from abroad (type 3 "unreachable"): Zeek writes the type
    # as the originator port and the code as the responder port
    repo = Path(__file__).resolve().parents[1]
    st, key = init_store(tmp_path / "store", tmp_path / "sealer.key", "example")
    report = ingest.ingest(st, [repo / "examples/zeek-tsv/conn.log"])
    assert [f.error for f in report.files] == [None]
    seal.seal(st, keys.load_signer(key))
    found = classify.classify(st, "INC-1", classify.rir_geo(), "JP")
    examples = [e for s in found.suggestions for e in s.examples]
    icmp = [e for e in examples if e["proto"] == "icmp"]
    assert icmp, "no ICMP example among the suggestions"
    assert all(e["dst_port"] is None for e in icmp)
    pairs = {(e["src_ip"], e["icmp_type"], e["icmp_code"]) for e in icmp}
    assert {("130.185.105.223", 3, 3), ("194.158.204.122", 3, 1)} <= pairs
    tcp = [e for e in examples if e["proto"] == "tcp"]
    assert tcp and all(e["icmp_type"] is None and e["dst_port"] is not None for e in tcp)
