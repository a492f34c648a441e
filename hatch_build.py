"""Build hook: compile acdkit's batch SHA-256 library when a C compiler and OpenSSL 3 are there.

The library (src/acdkit/_sha256many.c, no Python C API) is loaded with ctypes by
acdkit._batchsha.  It is optional: without a compiler or OpenSSL's headers the build goes
on, says so, and acdkit hashes through hashlib, with the same results, more slowly.
ACDKIT_NO_NATIVE=1 skips it on purpose.

A wheel's library is compiled in a directory of its own and added to the wheel from there:
the source tree is not written to, so a read-only checkout builds too, two builds at once do
not meet, and no library is left behind in it.  An editable install needs the library beside
the sources (src/acdkit), so that is where its build puts it, replacing the older one whole.
Beside the library goes a stamp, _libsha256many.so.json: the SHA-256 of the library file and
of the C source it was compiled from.  acdkit._batchsha loads nothing that does not match it
(a truncated or damaged file, a library older than its source).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shlex
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

PACKAGE = "src/acdkit"
SOURCE = "_sha256many.c"
LIBRARY = "_libsha256many.so"
STAMP = f"{LIBRARY}.json"


def _compiler() -> list[str]:
    configured = os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc"
    return shlex.split(configured)


def _crypto_flags() -> tuple[list[str], list[str]]:
    """Compile and link flags for libcrypto: pkg-config's if it knows it, else the plain ones."""
    try:
        cflags = subprocess.run(["pkg-config", "--cflags", "libcrypto"], capture_output=True,
                                text=True, check=True, timeout=30).stdout  # fmt: skip
        libs = subprocess.run(["pkg-config", "--libs", "libcrypto"], capture_output=True,
                              text=True, check=True, timeout=30).stdout  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return [], ["-lcrypto"]
    return shlex.split(cflags), shlex.split(libs) or ["-lcrypto"]


def stamp_of(library: Path, source: Path) -> str:
    """The stamp written beside a library: what acdkit._batchsha checks before loading it."""
    return json.dumps({
        "library_sha256": hashlib.sha256(library.read_bytes()).hexdigest(),
        "source_sha256": hashlib.sha256(source.read_bytes()).hexdigest(),
    })  # fmt: skip


def compile_library(source: Path, directory: Path) -> str | None:
    """Compile ``source`` into directory/LIBRARY and write its stamp beside it, each file
    replaced whole; None when done, else why not (the older files there are then removed)."""
    library, stamp = directory / LIBRARY, directory / STAMP
    built = directory / f"{LIBRARY}.{os.getpid()}.tmp"
    cflags, libs = _crypto_flags()
    cmd = [*_compiler(), "-O2", "-shared", "-fPIC", "-fvisibility=hidden", *cflags,
           "-o", str(built), str(source), *libs]  # fmt: skip
    try:
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    except (OSError, subprocess.SubprocessError) as exc:
        failure: str | None = str(exc)
    else:
        lines = result.stderr.strip().splitlines() or ["no output"]
        # the first error says why (a missing header, OpenSSL older than 3, an output that
        # cannot be written); collect2's last line only that the linker gave up
        errors = [x for x in lines if "error" in x and not x.startswith("collect2")]
        failure = None if result.returncode == 0 else (errors or lines)[0]
    if failure is None:
        try:
            built.chmod(0o755)
            text = stamp_of(built, source)
            built.replace(library)  # whole or not at all
            written = stamp.with_name(f"{STAMP}.{os.getpid()}.tmp")
            written.write_text(text, encoding="utf-8")
            written.replace(stamp)
        except OSError as exc:
            failure = f"{exc.strerror or exc}: {exc.filename or ''}".rstrip(": ")
    if failure is not None:
        for path in (built, stamp, library):
            _remove(path)  # never leave an older build in its place
    return failure


def _remove(path: Path) -> None:
    # in a read-only tree an older library stays; it is not loaded unless STAMP matches it
    with contextlib.suppress(OSError):
        path.unlink(missing_ok=True)


class CustomBuildHook(BuildHookInterface):  # type: ignore[misc]
    _scratch: Path | None = None

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        package = Path(self.root) / PACKAGE
        editable = version == "editable"
        if os.environ.get("ACDKIT_NO_NATIVE") == "1":
            if editable:
                _remove(package / STAMP)
                _remove(package / LIBRARY)
            self._say("ACDKIT_NO_NATIVE=1: batch SHA-256 library not built; hashlib is used")
            return
        if not sys.platform.startswith(("linux", "darwin", "freebsd")):
            self._say(f"no batch SHA-256 library on {sys.platform}; hashlib is used")
            return
        if editable:
            directory = package
        else:
            directory = self._scratch = Path(tempfile.mkdtemp(prefix="acdkit-build-"))
        failure = compile_library(package / SOURCE, directory)
        if failure is not None:
            self._say(f"batch SHA-256 library not built ({failure}); hashlib is used")
            return
        if not editable:
            for name in (LIBRARY, STAMP):
                build_data["force_include"][str(directory / name)] = f"acdkit/{name}"
        build_data["pure_python"] = False
        build_data["infer_tag"] = True

    def finalize(self, version: str, build_data: dict[str, Any], artifact_path: str) -> None:
        if self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)
            self._scratch = None

    def _say(self, message: str) -> None:
        print(f"acdkit build: {message}", file=sys.stderr)
