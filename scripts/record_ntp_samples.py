"""Record real NTP samples for the unit tests of the selection (tests/test_clocksel.py).

Starts the loopback chrony servers of tests/ntpservers.py (three agreeing, one 300 s
ahead, one at stratum 16, one unsynchronised, one port that nobody answers), asks each
four times through acdkit.ntp and writes every sample to tests/data/ntp/matrix.json. Run
it again only to refresh the recording; the tests hold the values it gave.

    .venv/bin/python scripts/record_ntp_samples.py
"""

from __future__ import annotations

import json
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

import ntpservers as ns  # noqa: E402
from acdkit import ntp  # noqa: E402


def main() -> int:
    why = ns.missing()
    if why:
        print(f"cannot record: {why}", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        good = [ns.local(base / f"good{i}") for i in range(3)]
        ahead = ns.local(base / "ahead", ahead_s=300)
        s15 = ns.local(base / "s15", stratum=15)
        s16 = ns.chained(base / "s16", s15)
        lone = ns.lone(base / "lone")
        servers = [*good, ahead, s15, s16, lone]
        try:
            for s in servers:
                s.start()
            for s in [*good, ahead, s15, lone]:
                s.wait(ns.answering)
            s16.wait(ns.synced)
            names = ["good0", "good1", "good2", "ahead300", "stratum16", "unsynchronised"]
            asked = [*good, ahead, s16, lone]
            specs = [ntp.parse_server(s.spec) for s in asked]
            specs.append(ntp.parse_server(f"127.0.0.1:{ns.free_port()}"))
            names.append("nobody")
            got = ntp.query_servers(specs, 4, 0.1, 0.5)
        finally:
            for s in servers:
                s.stop()
    doc = {
        "local_precision_ns": ntp.local_precision_ns(),
        "servers": [
            {
                "label": label,
                "name": label,
                "address": g.address,
                "port": g.port,
                "samples": [asdict(s) for s in g.samples],
            }
            for label, g in zip(names, got, strict=True)
        ],
    }
    for server in doc["servers"]:
        for sample in server["samples"]:
            if sample["reply"] is not None:
                sample["reply"]["refid"] = sample["reply"]["refid"].hex()
    out = REPO / "tests/data/ntp/matrix.json"
    out.write_text(json.dumps(doc, indent=1) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
