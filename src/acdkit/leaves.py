"""Record leaf hashes in bulk, on every core.

Building canonical bodies is vectorized, but SHA-256 runs once per record in Python, which
holds one core.  Large jobs therefore go to a small process pool; batches come back in the
order they were submitted, with at most two per worker in flight so memory stays bounded.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, replace

import pyarrow as pa

from acdkit import schema
from acdkit._pool import process_pool
from acdkit.encoding import record_leaf_hashes, record_salts
from acdkit.merkle import range_subtrees
from acdkit.staged import load_staged

__all__ = ["Hashed", "Job", "hash_job", "hashed", "worker_count"]

# below this many records a pool costs more than it saves
POOL_THRESHOLD = 200_000


@dataclass(frozen=True)
class Job:
    table: str
    batch: pa.RecordBatch
    segment_key: bytes
    position: int  # position of the batch's first row within its segment
    begin: int  # global log index of the batch's first row
    # where a worker can memory-map the same batch itself (staged part file, batch number,
    # ledger id), so that it need not be pickled across
    source: tuple[str, int, str] | None = None


def _load(job: Job) -> pa.RecordBatch:
    if job.source is None:
        return job.batch
    path, number, ledger_id = job.source
    return load_staged(path, number, job.table, ledger_id)


@dataclass(frozen=True)
class Hashed:
    leaves: bytes  # the batch's leaf hashes, 32 bytes each, back to back
    subtrees: list[tuple[int, bytes]]  # merkle.range_subtrees of those leaves


def hash_job(job: Job) -> Hashed:
    """Leaf hashes of one batch of records and the roots of its aligned subtrees."""
    batch = _load(job)
    salts = record_salts(job.segment_key, job.position, batch.num_rows)
    leaves = record_leaf_hashes(batch, schema.load(job.table), salts)
    return Hashed(leaves, range_subtrees(job.begin, leaves))


def worker_count() -> int:
    return max(1, min(4, os.cpu_count() or 1))


def hashed(jobs: Iterable[Job], expected_records: int) -> Iterator[tuple[Job, Hashed]]:
    """Yield (job, leaf hashes) in submission order, in a pool when the work is large."""
    workers = worker_count()
    if expected_records < POOL_THRESHOLD or workers == 1:
        for job in jobs:
            yield job, hash_job(job)
        return
    # fork: children inherit the loaded modules, so a pool starts in milliseconds; Arrow
    # resets its thread pools after fork
    with process_pool(workers) as pool:
        pending: deque[tuple[Job, Future[Hashed]]] = deque()
        for job in jobs:
            sent = replace(job, batch=None) if job.source is not None else job
            pending.append((job, pool.submit(hash_job, sent)))
            if len(pending) >= 2 * workers:
                done, future = pending.popleft()
                yield done, future.result()
        while pending:
            done, future = pending.popleft()
            yield done, future.result()
