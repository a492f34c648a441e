"""Workers of a killed acdkit process neither hold the store lock nor live on."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from acdkit.errors import InputIOError
from acdkit.store import Store, init_store

CHILD = """
import sys, time
from pathlib import Path
from acdkit._pool import process_pool
from acdkit.store import Store
store = Store.open(Path(sys.argv[1]))
with store.lock():
    pool = process_pool(2)
    futures = [pool.submit(time.sleep, 120) for _ in range(2)]
    time.sleep(1)
    print(" ".join(str(pid) for pid in pool._processes), flush=True)
    time.sleep(120)
"""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie has exited; it only waits to be reaped by its (new) parent
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split(") ")[1].startswith("Z"))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="parent-death signal is Linux")
def test_sigkill_of_the_parent_frees_the_lock_and_ends_the_workers(tmp_path: Path) -> None:
    store, _ = init_store(tmp_path / "store", tmp_path / "k" / "sealer.key")
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(store.root)], stdout=subprocess.PIPE, text=True
    )
    assert child.stdout is not None
    workers = [int(p) for p in child.stdout.readline().split()]
    assert len(workers) == 2 and all(_alive(p) for p in workers)
    with pytest.raises(InputIOError), Store.open(store.root).lock():
        pass  # held while the parent lives

    child.send_signal(signal.SIGKILL)
    child.wait()
    deadline = time.monotonic() + 10
    while any(_alive(p) for p in workers) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(_alive(p) for p in workers)
    with Store.open(store.root).lock():
        pass  # free again
