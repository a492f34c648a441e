"""Generate a realistic Zeek conn.log in JSON form (one object per line).

The shape follows Zeek's LogAscii JSON writer: dotted keys, epoch-float ``ts``,
unset fields omitted.  Addresses mix an internal /16 with a pool of external
hosts, so top-talker and external-address queries have realistic cardinality.
"""

from __future__ import annotations

import argparse
import json
import random
import string
import sys
from pathlib import Path

SERVICES = {80: "http", 443: "ssl", 53: "dns", 22: "ssh", 445: "smb", 3389: None, 8080: "http"}
STATES = ["SF", "S0", "REJ", "RSTO", "RSTR", "SH", "OTH", "S1"]


def _uid(rng: random.Random) -> str:
    return "C" + "".join(rng.choices(string.ascii_letters + string.digits, k=17))


def generate(out: Path, count: int, seed: int = 2026) -> None:
    rng = random.Random(seed)
    internal = [
        f"10.{rng.randrange(1, 40)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
        for _ in range(2000)
    ]
    external = [
        f"{rng.choice([23, 34, 52, 93, 104, 142, 151, 185, 203])}.{rng.randrange(256)}."
        f"{rng.randrange(256)}.{rng.randrange(1, 255)}"
        for _ in range(20000)
    ]
    ports = list(SERVICES)
    ts = 1_764_000_000.0
    with out.open("w", encoding="utf-8") as fh:
        for _ in range(count):
            ts += rng.expovariate(200.0)
            port = rng.choice(ports) if rng.random() < 0.9 else rng.randrange(1024, 65535)
            proto = "udp" if port == 53 else "tcp"
            rec: dict[str, object] = {
                "ts": round(ts, 6),
                "uid": _uid(rng),
                "id.orig_h": rng.choice(internal),
                "id.orig_p": rng.randrange(1024, 65535),
                "id.resp_h": rng.choice(external if rng.random() < 0.7 else internal),
                "id.resp_p": port,
                "proto": proto,
            }
            service = SERVICES.get(port)
            if service:
                rec["service"] = service
            if rng.random() < 0.85:
                rec["duration"] = rng.expovariate(0.5)
                rec["orig_bytes"] = rng.randrange(0, 20000)
                rec["resp_bytes"] = rng.randrange(0, 200000)
            rec["conn_state"] = rng.choice(STATES)
            rec["missed_bytes"] = 0
            rec["history"] = rng.choice(["ShADadFf", "S", "ShR", "Dd", "ShADadfR"])
            rec["orig_pkts"] = rng.randrange(1, 200)
            rec["orig_ip_bytes"] = rng.randrange(40, 30000)
            rec["resp_pkts"] = rng.randrange(0, 300)
            rec["resp_ip_bytes"] = rng.randrange(0, 300000)
            fh.write(json.dumps(rec, separators=(",", ":")) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("out", type=Path)
    parser.add_argument("--count", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=2026)
    args = parser.parse_args(argv)
    generate(args.out, args.count, args.seed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
