"""The EVTX case of ``run_bench.py --case evtx``: ``acdkit ingest`` of the EVTX samples against
iterating the same files with the ``evtx`` package alone.

The samples hold 774 events in 8 files; the ledger ingests a file once per SHA-256, so
repeats of the same bytes would be skipped, not parsed. Two honest inputs of at least
``--evtx-events`` events are built instead (neither changes a single record):

* ``copies``: the 8 sample files, copied as often as needed; copy *i* differs from the
  original only in 8 bytes of the file header's unused area (offset 4088, which no header
  field covers and no checksum includes), so each copy has its own SHA-256;
* ``assembled``: the samples' chunks (each EVTX chunk is self-contained: its own string and
  template tables) concatenated into ``--evtx-files`` larger files behind a file header whose
  counts and checksum are rewritten; files differ in the same unused header bytes.

``copies`` measures the per-file costs (a ledger entry, a staging directory, fsyncs) as
much as parsing; ``assembled`` is closer to real logs, which are 20-64 MiB per channel.
Both sides get the same files in the same order, each in a fresh subprocess, taking turns.
"""

from __future__ import annotations

import json
import math
import shutil
import struct
import sys
import zlib
from dataclasses import asdict
from pathlib import Path
from typing import Any

FILE_HEADER = 4096
CHUNK = 65536
UNUSED_AT = 4088  # inside the header's unused 128..4095 range
SAMPLE_FOLDERS = ("sysmon-evtx", "winsec-4688")

EVTX_CHILD = """\
import sys
import evtx
events = 0
for path in sys.argv[1:]:
    for _ in evtx.PyEvtxParser(path).records_json():
        events += 1
print(events)
"""


def sample_files(samples: Path) -> list[Path]:
    files = sorted(p for folder in SAMPLE_FOLDERS for p in (samples / folder).glob("*.evtx"))
    if not files:
        raise SystemExit(f"no EVTX samples under {samples} (give --samples)")
    return files


def count_events(files: list[Path]) -> tuple[int, int]:
    """(events, records acdkit maps to a table) of the sample set, untimed."""
    import evtx  # the benchmarked library, imported only here

    events = mapped = 0
    wanted = {("Microsoft-Windows-Sysmon", e) for e in (1, 3, 22)}
    wanted |= {("Microsoft-Windows-Security-Auditing", e) for e in (4688, 5156)}
    for path in files:
        for rec in evtx.PyEvtxParser(str(path)).records_json():
            system = json.loads(rec["data"])["Event"]["System"]
            events += 1
            key = (system["Provider"]["#attributes"]["Name"], system["EventID"])
            mapped += key in wanted
    return events, mapped


def _marked(header: bytes, mark: int) -> bytes:
    out = bytearray(header)
    struct.pack_into("<Q", out, UNUSED_AT, mark)
    return bytes(out)


def _fresh_dir(path: Path) -> Path:
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


def build_copies(workdir: Path, files: list[Path], sets: int) -> list[Path]:
    out_dir = _fresh_dir(workdir / f"evtx-copies-{sets}")
    out = []
    for i in range(sets):
        for src in files:
            data = src.read_bytes()
            path = out_dir / f"{i:05d}-{src.name}"
            path.write_bytes(_marked(data[:FILE_HEADER], i + 1) + data[FILE_HEADER:])
            out.append(path)
    return out


def _chunks(path: Path) -> list[bytes]:
    data = path.read_bytes()
    blocks = (data[o : o + CHUNK] for o in range(FILE_HEADER, len(data), CHUNK))
    return [b for b in blocks if b[:8] == b"ElfChnk\x00" and len(b) == CHUNK]


def _header(template: bytes, chunks: list[bytes], mark: int) -> bytes:
    head = bytearray(template)
    last_id = max(struct.unpack_from("<Q", c, 32)[0] for c in chunks)
    # first chunk, last chunk, next record id; then the chunk count; flags 0 (clean)
    struct.pack_into("<QQQ", head, 8, 0, len(chunks) - 1, last_id + 1)
    struct.pack_into("<H", head, 42, len(chunks))
    struct.pack_into("<I", head, 120, 0)
    struct.pack_into("<I", head, 124, zlib.crc32(head[:120]))
    return _marked(bytes(head), mark)


def build_assembled(workdir: Path, files: list[Path], sets: int, n_files: int) -> list[Path]:
    out_dir = _fresh_dir(workdir / f"evtx-assembled-{sets}x{n_files}")
    chunks = [c for src in files for c in _chunks(src)]
    template = files[0].read_bytes()[:FILE_HEADER]
    n_files = min(n_files, sets)
    per_file = [sets // n_files + (1 if i < sets % n_files else 0) for i in range(n_files)]
    out = []
    for i, count in enumerate(per_file):
        body = chunks * count
        if len(body) > 0xFFFF:
            raise SystemExit("too many chunks for one file; raise --evtx-files")
        path = out_dir / f"assembled-{i:03d}.evtx"
        path.write_bytes(_header(template, body, i + 1) + b"".join(body))
        out.append(path)
    return out


def run_layout(
    bench: Any, args: Any, name: str, files: list[Path], events: int, mapped: int
) -> dict[str, Any]:
    """Time the evtx baseline and ``acdkit ingest`` on ``files``, ``--repeats`` times."""
    acdkit = bench.find_acdkit()
    lib_runs, acd_runs = [], []
    for i in range(args.repeats):
        lib = bench.run_measured([sys.executable, "-c", EVTX_CHILD, *map(str, files)])
        bench.check(lib, "evtx baseline")
        if int(lib.stdout.split()[-1]) != events:
            raise SystemExit(f"evtx iterated {lib.stdout.split()[-1]} events, expected {events}")
        lib_runs.append(lib)
        bench.log_run(i, args.repeats, f"{name} evtx", lib)

        store = _fresh_dir(args.workdir.resolve() / f"evtx-run-{i}") / "store"
        key = store.parent / "sealer.key"
        bench.check(bench.run_measured([acdkit, "init", str(store), "--key", str(key)]), "init")
        run = bench.run_measured([acdkit, "ingest", str(store), *map(str, files), "--json"])
        bench.check(run, "acdkit ingest")
        doc = json.loads(run.stdout)
        lines = sum(f["lines"] for f in doc["files"])
        bad = [f for f in doc["files"] if f["status"] != "ingested" or f["rejected"]]
        if (lines, doc["records"], bad) != (events, mapped, []):
            raise SystemExit(
                f"acdkit read {lines} events into {doc['records']} records "
                f"({len(bad)} files not clean), expected {events} into {mapped}"
            )
        run.phases = {"ingest": doc["seconds"]}
        acd_runs.append(run)
        bench.log_run(i, args.repeats, f"{name} acdkit", run)
        if not args.keep:
            shutil.rmtree(store.parent, ignore_errors=True)
    lib_s = bench.summarize(lib_runs, events)
    acd_s = bench.summarize(acd_runs, events)
    return {
        "layout": name,
        "files": len(files),
        "events": events,
        "records": mapped,
        "input_mib": round(sum(p.stat().st_size for p in files) / (1 << 20), 1),
        "evtx": asdict(lib_s),
        "acdkit": asdict(acd_s),
        "acdkit_own_seconds_of_best_run": min(acd_runs, key=lambda r: r.seconds).phases,
        "ratio": round(acd_s.rate / lib_s.rate, 3),
        "ratio_per_repeat": [
            round(lib.seconds / acd.seconds, 3) for lib, acd in zip(lib_runs, acd_runs, strict=True)
        ],
    }


def evtx_main(bench: Any, args: Any) -> int:
    """Build the inputs, time both sides per layout, print or emit the report."""
    files = sample_files(args.samples)
    per_set, mapped_per_set = count_events(files)
    sets = math.ceil(args.evtx_events / per_set)
    workdir = args.workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    layouts = ["copies", "assembled"] if args.evtx_layout == "both" else [args.evtx_layout]
    source_before = bench.acdkit_source()
    results = []
    for layout in layouts:
        bench.log(f"building {layout}: {sets} sets of {per_set} events ...")
        inputs = (
            build_copies(workdir, files, sets)
            if layout == "copies"
            else build_assembled(workdir, files, sets, args.evtx_files)
        )
        results.append(
            run_layout(bench, args, layout, inputs, per_set * sets, mapped_per_set * sets)
        )
        if not args.keep:
            shutil.rmtree(inputs[0].parent, ignore_errors=True)
    source_after = bench.acdkit_source()
    doc = {
        "case": "evtx",
        "sample_files": [p.name for p in files],
        "events_per_set": per_set,
        "sets": sets,
        "repeats": args.repeats,
        "layouts": results,
        "machine": {**bench.machine(), "evtx": bench.metadata.version("evtx")},
        "load_average": bench.os.getloadavg(),
        "acdkit_source": source_before,
        "acdkit_source_changed_during_run": source_after["sha256"] != source_before["sha256"],
    }
    if args.json:
        print(json.dumps(doc, indent=2))
    else:
        print_report(doc)
    return 0


def print_report(doc: dict[str, Any]) -> None:
    print(f"EVTX samples       {len(doc['sample_files'])} files, {doc['events_per_set']} events")
    print(f"repeated           {doc['sets']} times; {doc['repeats']} repeats (best of each)")
    for r in doc["layouts"]:
        print(
            f"{r['layout']:<10} {r['files']:>5} files {r['input_mib']:>7.1f} MiB "
            f"{r['events']:>9,} events -> {r['records']:,} records"
        )
        for side in ("evtx", "acdkit"):
            s = r[side]
            print(
                f"  {side:<8} best {s['best_seconds']:7.2f} s {s['rate']:>11,.0f} events/s "
                f"peak {s['max_rss_mib']:7.1f} MiB  all {' / '.join(map(str, s['all_seconds']))}"
            )
        per = " / ".join(f"{x:.3f}" for x in r["ratio_per_repeat"])
        print(f"  ratio acdkit/evtx {r['ratio']:.3f} (per repeat {per})")
    load = ", ".join(f"{x:.2f}" for x in doc["load_average"])
    print(f"load average       {load}")
