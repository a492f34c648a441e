"""Generate an AWS VPC flow log in the default format (version 2, 14 space-separated fields).

Seeded, so every run writes the same bytes.  Interfaces of one account talk to an internal
/16 and a pool of external hosts; ports, protocols and counters vary the way flow logs do.
Every line is an OK record (no NODATA/SKIPDATA), so the record count equals the line count.
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

PORTS = [443, 80, 53, 22, 3389, 123, 8080, 5432]


def generate(out: Path, count: int, seed: int = 2026) -> None:
    rng = random.Random(seed)
    enis = [f"eni-{rng.getrandbits(68):017x}" for _ in range(200)]
    internal = [
        f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}" for _ in range(3000)
    ]
    external = [
        f"{rng.choice([3, 13, 34, 52, 54, 99, 142, 185, 203])}.{rng.randrange(256)}."
        f"{rng.randrange(256)}.{rng.randrange(1, 255)}"
        for _ in range(20000)
    ]
    start = 1_764_000_000
    lines = []
    with out.open("w", encoding="ascii") as fh:
        for i in range(count):
            start += rng.random() < 0.02
            proto = 17 if rng.random() < 0.2 else (1 if rng.random() < 0.02 else 6)
            dport = (
                0
                if proto == 1
                else rng.choice(PORTS)
                if rng.random() < 0.9
                else rng.randrange(1024, 65535)
            )
            sport = 0 if proto == 1 else rng.randrange(1024, 65535)
            src, dst = (
                rng.choice(internal),
                rng.choice(external if rng.random() < 0.6 else internal),
            )
            if rng.random() < 0.5:
                src, dst, sport, dport = dst, src, dport, sport
            packets = rng.randrange(1, 5000)
            lines.append(
                f"2 123456789010 {rng.choice(enis)} {src} {dst} {sport} {dport} {proto} {packets} "
                f"{packets * rng.randrange(40, 1500)} {start} {start + rng.randrange(1, 60)} "
                f"{'ACCEPT' if rng.random() < 0.93 else 'REJECT'} OK\n"
            )
            if len(lines) >= 10000 or i == count - 1:
                fh.write("".join(lines))
                lines = []


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
