"""SHA-256 of many values per call: the inner loop of sealing and of verify.

hashlib costs about half a microsecond of set-up per value, more than the hashing itself
for a 65-byte Merkle node.  When the install compiled ``_libsha256many.so`` (hatch_build.py:
a C compiler and OpenSSL 3 were there), a whole batch is hashed in one call through
OpenSSL's EVP interface, three to five times faster.  Otherwise, or with
``ACDKIT_PURE_SHA256=1``, the callers keep to hashlib; the digests are the same either way.

The library is loaded on first use, and only if the file is the one its build recorded in
the stamp beside it (``_libsha256many.so.json``: the SHA-256 of the library and of the C
source it was compiled from), so a truncated or damaged file, which can kill the process
inside dlopen, or a library older than its source is never opened.  Once loaded, it is
checked against hashlib before it is trusted: a library that gives one wrong digest is not
used at all.  A library that is there and not used is logged as a warning.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import json
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["ENV_PURE", "engine", "node_level", "values"]

ENV_PURE = "ACDKIT_PURE_SHA256"
LIBRARY = "_libsha256many.so"
STAMP = f"{LIBRARY}.json"  # written by hatch_build.py beside the library
SOURCE = "_sha256many.c"
_MAX_LIBRARY = 16 << 20  # the library is about 16 KiB; anything far larger is not it
_MAX_STAMP = 64 << 10  # the stamp is about 160 bytes

log = logging.getLogger(__name__)

_P = ctypes.c_void_p
_N = ctypes.c_int64


@functools.cache
def _library() -> ctypes.CDLL | None:
    if os.environ.get(ENV_PURE) == "1":
        log.info("SHA-256 of leaves and tree levels: hashlib (%s=1)", ENV_PURE)
        return None
    path = Path(__file__).with_name(LIBRARY)
    if not path.is_file():
        log.info("SHA-256 of leaves and tree levels: hashlib (no batch library at %s)", path)
        return None
    problem = _unlike_its_build(path)
    if problem is None:
        try:
            lib = ctypes.CDLL(str(path))  # the GIL is released during each call
            lib.acdkit_sha256_values.argtypes = [_P, _P, _N, _P]
            lib.acdkit_sha256_nodes.argtypes = [_P, _N, _P]
            lib.acdkit_sha256_values.restype = lib.acdkit_sha256_nodes.restype = ctypes.c_int
        except (OSError, AttributeError) as exc:
            # not loadable here (another libcrypto, another architecture)
            problem = f"it cannot be loaded here ({exc})"
        else:
            if _agrees_with_hashlib(lib):
                log.info("SHA-256 of leaves and tree levels: the batch library %s", path)
                return lib
            problem = "it gives other digests than hashlib"
    log.warning("the batch SHA-256 library %s is not used: %s; hashlib is used (same "
                "digests, slower); reinstall acdkit to rebuild it", path, problem)  # fmt: skip
    return None


def _unlike_its_build(path: Path) -> str | None:
    """Why the library file is not the one its build stamped, or None if it is."""
    try:
        with path.with_name(STAMP).open("rb") as f:
            text = f.read(_MAX_STAMP + 1)
        if len(text) > _MAX_STAMP:
            raise ValueError("far larger than a stamp")
        stamp = json.loads(text.decode("utf-8"))
        library_sha256, source_sha256 = stamp["library_sha256"], stamp["source_sha256"]
    except (OSError, ValueError, TypeError, KeyError, RecursionError) as exc:
        # RecursionError: arrays nested deeper than the parser goes (a hostile stamp)
        return f"its build stamp {STAMP} is missing or unreadable ({type(exc).__name__})"
    try:
        if path.stat().st_size > _MAX_LIBRARY:
            return "the file is far larger than the library"
        content = path.read_bytes()
    except OSError as exc:
        return f"the file cannot be read ({exc.strerror})"
    if hashlib.sha256(content).hexdigest() != library_sha256:
        return "the file is not the one its build wrote (truncated or changed)"
    source = path.with_name(SOURCE)
    try:
        current = hashlib.sha256(source.read_bytes()).hexdigest()
    except FileNotFoundError:
        return None  # a package that ships no C source: nothing it could be older than
    except OSError as exc:
        return f"its source {SOURCE} cannot be read ({exc.strerror})"
    if current != source_sha256:
        return f"it was built from another {SOURCE} than the one beside it"
    return None


def _agrees_with_hashlib(lib: ctypes.CDLL) -> bool:
    # lengths either side of SHA-256's padding boundaries (55/56, 63/64), many blocks
    samples = [b"", b"\x00", bytes(range(256)) * 3, b"acdkit" * 11]
    samples += [bytes([n]) * n for n in (55, 56, 63, 64, 119, 120)]
    data = b"".join(samples)
    bounds = [0]
    for s in samples:
        bounds.append(bounds[-1] + len(s))
    offsets = (ctypes.c_int64 * len(bounds))(*bounds)
    out = ctypes.create_string_buffer(32 * len(samples))
    if not lib.acdkit_sha256_values(data, offsets, len(samples), out):
        return False
    if out.raw != b"".join(hashlib.sha256(s).digest() for s in samples):
        return False
    level = bytes(range(128))
    up = ctypes.create_string_buffer(64)
    if not lib.acdkit_sha256_nodes(level, 2, up):
        return False
    expected = b"".join(hashlib.sha256(b"\x01" + level[i : i + 64]).digest() for i in (0, 64))
    return up.raw == expected


def engine() -> str:
    """Which code hashes batches here: ``openssl-batch`` or ``hashlib``."""
    return "openssl-batch" if _library() is not None else "hashlib"


def values(array: pa.Array) -> bytes | None:
    """The digests of every value of a large_binary array without nulls, 32 bytes each, or
    None when there is no batch library (the caller then uses hashlib)."""
    import pyarrow as pa  # loaded already: the caller holds an Arrow array

    lib = _library()
    if lib is None:
        return None
    n = len(array)
    if n == 0:
        return b""
    if array.type != pa.large_binary() or array.null_count:
        raise TypeError("batch SHA-256 takes a large_binary array without nulls")
    buffers = array.buffers()
    offsets = buffers[1].address + 8 * array.offset
    data = buffers[2]
    out = ctypes.create_string_buffer(32 * n)
    # an array of empty values may have no data buffer at all: any valid address will do
    if not lib.acdkit_sha256_values(data.address if data else out, offsets, n, out):
        raise RuntimeError("OpenSSL failed to compute a SHA-256 digest")
    return out.raw


def node_level(level: bytes) -> bytes | None:
    """One level up a Merkle tree: SHA-256(0x01 || left || right) of each 64-byte pair, or
    None when there is no batch library."""
    lib = _library()
    if lib is None:
        return None
    if len(level) % 64:
        raise ValueError("a level to pair up must hold whole pairs of 32-byte hashes")
    pairs = len(level) // 64
    out = ctypes.create_string_buffer(32 * pairs)
    if pairs and not lib.acdkit_sha256_nodes(level, pairs, out):
        raise RuntimeError("OpenSSL failed to compute a SHA-256 digest")
    return out.raw
