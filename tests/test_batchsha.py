"""The batch SHA-256 library: the same digests as hashlib, or not used at all."""

from __future__ import annotations

import ctypes
import hashlib
import multiprocessing
import os
import subprocess
import sys
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from acdkit import _batchsha, encoding, merkle

BUILT = _batchsha.engine() == "openssl-batch"
needs_library = pytest.mark.skipif(not BUILT, reason="the install built no batch library")


def test_ci_builds_the_batch_library() -> None:
    # the fast path is what the benchmark measures: CI must prove a clean install builds it
    library = Path(_batchsha.__file__).with_name(_batchsha.LIBRARY)
    if os.environ.get("ACDKIT_CI") == "1":
        assert library.is_file(), "pip install -e . built no _libsha256many.so"
        assert _batchsha.engine() == "openssl-batch", "the library is there and not used"
    else:
        # a library older than its stamp or source is not used: `pip install -e .` again
        expected = "openssl-batch" if library.is_file() else "hashlib"
        assert _batchsha.engine() == expected, _batchsha._unlike_its_build(library)


def _reference(values: list[bytes]) -> bytes:
    return b"".join(hashlib.sha256(v).digest() for v in values)


@needs_library
@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(max_size=300), max_size=60), st.integers(0, 10), st.integers(0, 10))
def test_values_match_hashlib_for_any_batch_and_slice(
    values: list[bytes], start: int, cut: int
) -> None:
    array = pa.array(values, pa.large_binary())
    assert _batchsha.values(array) == _reference(values)
    stop = max(start, len(values) - cut)
    part = array.slice(start, stop - start)
    assert _batchsha.values(part) == _reference(values[start:stop])


@needs_library
def test_values_of_edge_sizes() -> None:
    # block boundaries of SHA-256's padding (55/56/64 bytes), empty values with no data
    # buffer at all, and one value of several MiB
    sizes = [0, 1, 55, 56, 63, 64, 65, 119, 120, 128, 4096]
    values = [bytes([s % 251]) * s for s in sizes] + [os.urandom(5 << 20)]
    assert _batchsha.values(pa.array(values, pa.large_binary())) == _reference(values)
    empties = pa.array([b""] * 7, pa.large_binary())
    assert _batchsha.values(empties) == hashlib.sha256(b"").digest() * 7
    assert _batchsha.values(pa.array([], pa.large_binary())) == b""


@needs_library
def test_values_refuses_what_it_cannot_read() -> None:
    with pytest.raises(TypeError):
        _batchsha.values(pa.array([b"a"], pa.binary()))
    with pytest.raises(TypeError):
        _batchsha.values(pa.array([b"a", None], pa.large_binary()))
    with pytest.raises(ValueError):
        _batchsha.node_level(bytes(65))


@needs_library
@settings(max_examples=100, deadline=None)
@given(st.integers(0, 70).flatmap(lambda n: st.binary(min_size=64 * n, max_size=64 * n)))
def test_node_level_matches_rfc6962_node_hashes(level: bytes) -> None:
    expected = b"".join(
        merkle.node_hash(level[i : i + 32], level[i + 32 : i + 64])
        for i in range(0, len(level), 64)
    )
    assert _batchsha.node_level(level) == expected


def test_a_library_that_disagrees_with_hashlib_is_not_used() -> None:
    class Wrong:
        """Two functions with the library's signatures that fill in zeros and succeed."""

        @staticmethod
        def acdkit_sha256_values(data: object, offsets: object, n: int, out: object) -> int:
            return 1

        @staticmethod
        def acdkit_sha256_nodes(level: object, pairs: int, out: object) -> int:
            return 1

    assert not _batchsha._agrees_with_hashlib(Wrong())  # type: ignore[arg-type]

    class Failing(Wrong):
        @staticmethod
        def acdkit_sha256_values(data: object, offsets: object, n: int, out: object) -> int:
            return 0

    assert not _batchsha._agrees_with_hashlib(Failing())  # type: ignore[arg-type]


@needs_library
def test_the_real_library_passes_its_own_check() -> None:
    lib = ctypes.CDLL(str(Path(_batchsha.__file__).with_name(_batchsha.LIBRARY)))
    lib.acdkit_sha256_values.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64,
                                         ctypes.c_void_p]  # fmt: skip
    lib.acdkit_sha256_nodes.argtypes = [ctypes.c_void_p, ctypes.c_int64, ctypes.c_void_p]
    assert _batchsha._agrees_with_hashlib(lib)


def _leaves_in_subprocess(tmp_path: Path, data: Path, pure: bool) -> tuple[str, str]:
    """Engine and the digest of every leaf and subtree root of a real Zeek log's records."""
    script = tmp_path / "leaves.py"
    script.write_text(
        "import hashlib, sys\n"
        "from pathlib import Path\n"
        "from typer.testing import CliRunner\n"
        "import pyarrow as pa\n"
        "from acdkit import _batchsha, encoding, merkle, schema\n"
        "from acdkit.staged import staged_batches\n"
        "from acdkit.cli import app\n"
        "store = Path(sys.argv[1])\n"
        "r = CliRunner().invoke(app, ['ingest', str(store), sys.argv[2]])\n"
        "assert r.exit_code == 0, r.output\n"
        "staged = next(p for p in (store / 'staging').iterdir() if p.is_dir())\n"
        "t = pa.Table.from_batches([b for b, _ in staged_batches(staged, 'net')])\n"
        "leaves = encoding.record_leaf_hashes(t, schema.load('net'), bytes(32 * t.num_rows))\n"
        "roots = merkle.range_subtrees(0, leaves)\n"
        "print(_batchsha.engine(), t.num_rows, hashlib.sha256(leaves + repr(roots).encode())"
        ".hexdigest())\n"
    )
    store = tmp_path / ("pure" if pure else "batch")
    from typer.testing import CliRunner

    from acdkit.cli import app

    assert (
        CliRunner().invoke(app, ["init", str(store), "--key", str(store) + ".key"]).exit_code == 0
    )
    env = {**os.environ, _batchsha.ENV_PURE: "1" if pure else "0"}
    done = subprocess.run(
        [sys.executable, str(script), str(store), str(data / "zeek-tsv/zat/conn.log")],
        capture_output=True, text=True, env=env, check=True,
    )  # fmt: skip
    engine, rows, digest = done.stdout.split()
    assert int(rows) > 100
    return engine, digest


@needs_library
def test_both_engines_give_the_same_leaves_and_roots_on_a_real_log(
    tmp_path: Path, data: Path
) -> None:
    pure_engine, pure = _leaves_in_subprocess(tmp_path, data, pure=True)
    batch_engine, batch = _leaves_in_subprocess(tmp_path, data, pure=False)
    assert (pure_engine, batch_engine) == ("hashlib", "openssl-batch")
    assert pure == batch


def test_hash_rows_without_the_library_is_hashlib(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_batchsha, "_library", lambda: None)
    values = [b"", b"a" * 70, b"b" * 70, b"c"]
    assert encoding._hash_rows(pa.array(values, pa.large_binary())) == _reference(values)
    level = bytes(range(128))
    assert merkle._perfect_root(level) == merkle.node_hash(
        merkle.node_hash(level[:32], level[32:64]), merkle.node_hash(level[64:96], level[96:])
    )


def test_tree_levels_are_the_same_with_and_without_the_library(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    leaves = [hashlib.sha256(i.to_bytes(4, "big")).digest() for i in range(1001)]
    with_library = merkle.TreeLevels(leaves)
    monkeypatch.setattr(_batchsha, "_library", lambda: None)
    without = merkle.TreeLevels(leaves)
    assert with_library.levels == without.levels
    assert [len(level) for level in without.levels][:4] == [1001, 501, 251, 126]
    assert with_library.proof(1000) == without.proof(1000)


def _digests_in_child(values: list[bytes]) -> tuple[str, bytes | None]:
    return _batchsha.engine(), _batchsha.values(pa.array(values, pa.large_binary()))


@needs_library
def test_threads_and_forked_workers_get_the_same_digests() -> None:
    values = [os.urandom(n) for n in (0, 1, 56, 64, 250, 4096) for _ in range(50)]
    array = pa.array(values, pa.large_binary())
    expected = _reference(values)
    with ThreadPoolExecutor(4) as threads:  # ctypes releases the GIL: calls overlap
        assert set(threads.map(lambda _: _batchsha.values(array), range(32))) == {expected}
    # verify's workers are forked from a parent that has loaded the library already
    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("fork")) as pool:
        done = list(pool.map(_digests_in_child, [values] * 4))
    assert done == [("openssl-batch", expected)] * 4
