"""Worker processes for the parallel paths of ingest, seal and verify.

Workers are forked, so they start with the parent's modules loaded, and also with the
parent's open files: among them the store's writer lock.  A worker that outlived a killed
parent would hold that lock for ever, so each worker closes its copy at start, and on Linux
asks the kernel to end it when the parent dies.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import multiprocessing
import os
import signal
import sys
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from typing import TypeVar

__all__ = ["held_fds", "in_order", "keep_freed_memory", "process_pool"]

T = TypeVar("T")
R = TypeVar("R")

PR_SET_PDEATHSIG = 1  # linux/prctl.h

# descriptors a worker must not keep: the store locks this process holds
held_fds: set[int] = set()


def _die_with_parent(parent: int) -> None:
    if not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:  # the parent died before the request took effect
        os._exit(1)


M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # malloc.h


def keep_freed_memory() -> None:
    """Let glibc keep freed memory for reuse rather than return it to the kernel at once.

    A worker allocates and frees the same large numpy temporaries for every batch; by
    default each is mapped and unmapped again, so each batch faults its pages in anew
    (measured for verify: a fifth to a quarter of its CPU time in the kernel, 232k page
    faults per million records; 77k with this).  The peak memory does not change, but it
    is held until the worker exits.
    """
    if not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(ctypes.util.find_library("c"))
        libc.mallopt(M_MMAP_THRESHOLD, 1 << 30)
        libc.mallopt(M_TRIM_THRESHOLD, 1 << 30)


def _init_worker(parent: int, fds: tuple[int, ...]) -> None:
    for fd in fds:
        with contextlib.suppress(OSError):
            os.close(fd)
    _die_with_parent(parent)


def process_pool(workers: int) -> ProcessPoolExecutor:
    """A pool of forked workers that hold no store lock and do not outlive this process."""
    return ProcessPoolExecutor(
        workers,
        mp_context=multiprocessing.get_context("fork"),
        initializer=_init_worker,
        initargs=(os.getpid(), tuple(held_fds)),
    )


def in_order(
    pool: Executor, fn: Callable[[T], R], items: Iterable[T], ahead: int
) -> Iterator[tuple[T, R]]:
    """Yield ``(item, fn(item))`` in the order of ``items``, at most ``ahead`` in flight."""
    pending: deque[tuple[T, Future[R]]] = deque()
    for item in items:
        pending.append((item, pool.submit(fn, item)))
        if len(pending) >= ahead:
            done, future = pending.popleft()
            yield done, future.result()
    while pending:
        done, future = pending.popleft()
        yield done, future.result()
