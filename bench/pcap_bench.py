"""Time `acdkit ingest` of a large capture against scapy's bare packet iteration of it.

The capture is the five sample pcaps of ../shared/samples/pcap repeated until it reaches
``--megabytes``: copy ``i`` puts the clients at 10.x.y.z (from ``i``) and moves the times by
20 s per copy, so every copy is a set of new flows with the same handshakes.  Three commands
are timed, each in a fresh process, taking turns ``--repeats`` times (best time kept):

* ``iterate``: ``for data, meta in RawPcapReader(file)`` and nothing else;
* ``dissect``: the same plus scapy's dissection of every frame (``Ether(data)``);
* ``acdkit``: ``acdkit ingest STORE FILE --format pcap --json`` on a new store.

Usage::

    .venv/bin/python bench/pcap_bench.py [--megabytes 200] [--repeats 2] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import struct
import subprocess
import sys
import time
from pathlib import Path

SAMPLES = Path(__file__).resolve().parents[1].parent / "shared" / "samples" / "pcap"
NAMES = ["tls1_1.pcap", "ecdhe.pcap", "tls13_wolfssl.pcap", "chrome-34-google.pcap",
         "tls13-ech.pcap"]  # fmt: skip
CLIENTS = {"192.168.17.58", "192.168.18.50", "192.168.186.133", "192.168.4.149",
           "192.168.20.65"}  # fmt: skip

ITERATE = """
import sys
from scapy.utils import RawPcapReader
n = 0
for data, meta in RawPcapReader(sys.argv[1]):
    n += 1
print(n)
"""
DISSECT = """
import sys
from scapy.layers.l2 import Ether
from scapy.layers import inet, inet6, dns
from scapy.utils import RawPcapReader
n = 0
for data, meta in RawPcapReader(sys.argv[1]):
    Ether(data)
    n += 1
print(n)
"""


def records(path: Path) -> list[tuple[int, int, bytes]]:
    """(seconds, microseconds, frame) of a little-endian microsecond pcap."""
    data = path.read_bytes()
    out, pos = [], 24
    while pos + 16 <= len(data):
        sec, usec, caplen, _ = struct.unpack_from("<IIII", data, pos)
        out.append((sec, usec, data[pos + 16 : pos + 16 + caplen]))
        pos += 16 + caplen
    return out


def client_ip(copy: int) -> bytes:
    return bytes([10, (copy >> 16) & 255, (copy >> 8) & 255, copy & 255])


def build(path: Path, megabytes: int) -> int:
    """Write the repeated capture; return its packet count."""
    samples = [records(SAMPLES / name) for name in NAMES]
    clients = {bytes(int(x) for x in ip.split(".")) for ip in CLIENTS}
    base = min(r[0][0] for r in samples)
    count, copy, size = 0, 0, 24
    with path.open("wb") as out:
        out.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        while size < megabytes << 20:
            copy += 1
            for sample in samples:
                shift = base + copy * 20 - sample[0][0]
                for sec, usec, frame in sample:
                    f = bytearray(frame)
                    for at in (26, 30):  # IPv4 source, destination (Ethernet, no VLAN)
                        if bytes(f[at : at + 4]) in clients:
                            f[at : at + 4] = client_ip(copy)
                    out.write(struct.pack("<IIII", sec + shift, usec, len(f), len(f)))
                    out.write(f)
                    size += 16 + len(f)
                    count += 1
    return count


def timed(cmd: list[str]) -> tuple[float, str]:
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return time.perf_counter() - start, done.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megabytes", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/acdkit-pcap-bench"))
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    capture = args.workdir / f"repeated-{args.megabytes}.pcap"
    packets = build(capture, args.megabytes)
    py = sys.executable
    acdkit = str(Path(py).parent / "acdkit")
    best: dict[str, float] = {}
    records_seen = 0
    for _ in range(args.repeats):
        for name, cmd in (
            ("iterate", [py, "-c", ITERATE, str(capture)]),
            ("dissect", [py, "-c", DISSECT, str(capture)]),
        ):
            seconds, out = timed(cmd)
            assert int(out) == packets, (name, out)
            best[name] = min(best.get(name, seconds), seconds)
        store = args.workdir / "store"
        shutil.rmtree(store, ignore_errors=True)
        env = {**os.environ, "ACDKIT_KEY_DIR": str(args.workdir / "keys")}
        key = args.workdir / "keys" / "bench.key"
        key.unlink(missing_ok=True)
        subprocess.run([acdkit, "init", str(store), "--key", str(key)], env=env, check=True,
                       capture_output=True)  # fmt: skip
        start = time.perf_counter()
        done = subprocess.run(
            [acdkit, "ingest", str(store), str(capture), "--format", "pcap", "--json"],
            env=env, capture_output=True, text=True, check=True,
        )  # fmt: skip
        seconds = time.perf_counter() - start
        report = json.loads(done.stdout)
        (result,) = report["files"]
        assert result["lines"] == packets, result
        records_seen = sum(result["records"].values())
        best["acdkit"] = min(best.get("acdkit", seconds), seconds)
    summary = {
        "megabytes": round(capture.stat().st_size / (1 << 20), 1),
        "packets": packets,
        "records": records_seen,
        "seconds": {k: round(v, 2) for k, v in best.items()},
        "packets_per_second": {k: round(packets / v) for k, v in best.items()},
        "acdkit_vs_iterate": round(best["iterate"] / best["acdkit"], 4),
        "acdkit_vs_dissect": round(best["dissect"] / best["acdkit"], 3),
        # ru_maxrss of the largest child process (KiB on Linux): acdkit's, in practice
        "largest_child_rss_mib": round(
            resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1
        ),
    }
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
