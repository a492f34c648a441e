"""Build hook: compile acdkit's batch SHA-256 library when a C compiler and OpenSSL 3 are there.

The library (src/acdkit/_sha256many.c, no Python C API) is loaded with ctypes by
acdkit._batchsha.  It is optional: without a compiler or OpenSSL's headers the build goes
on, says so, and acdkit hashes through hashlib, with the same results, more slowly.
ACDKIT_NO_NATIVE=1 skips it on purpose.  It is compiled in place under src/acdkit, so an
editable install finds it there, and a wheel carries it as a platform-specific artifact.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import sysconfig
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

SOURCE = "src/acdkit/_sha256many.c"
LIBRARY = "src/acdkit/_libsha256many.so"


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


class CustomBuildHook(BuildHookInterface):  # type: ignore[misc]
    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        root = Path(self.root)
        if os.environ.get("ACDKIT_NO_NATIVE") == "1":
            (root / LIBRARY).unlink(missing_ok=True)
            self._say("ACDKIT_NO_NATIVE=1: batch SHA-256 library not built; hashlib is used")
            return
        if not sys.platform.startswith(("linux", "darwin", "freebsd")):
            self._say(f"no batch SHA-256 library on {sys.platform}; hashlib is used")
            return
        target = root / LIBRARY
        cflags, libs = _crypto_flags()
        built = target.with_name(f"{target.name}.{os.getpid()}.tmp")
        cmd = [*_compiler(), "-O2", "-shared", "-fPIC", "-fvisibility=hidden", *cflags,
               "-o", str(built), str(root / SOURCE), *libs]  # fmt: skip
        try:
            result = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        except (OSError, subprocess.SubprocessError) as exc:
            result = None
            detail = str(exc)
        else:
            detail = (result.stderr.strip().splitlines() or ["no output"])[-1]
        if result is None or result.returncode != 0:
            built.unlink(missing_ok=True)
            target.unlink(missing_ok=True)  # never leave an older build in its place
            self._say(f"batch SHA-256 library not built ({detail}); hashlib is used")
            return
        built.replace(target)  # whole or not at all
        target.chmod(0o755)
        build_data["artifacts"].append(LIBRARY)
        build_data["pure_python"] = False
        build_data["infer_tag"] = True

    def _say(self, message: str) -> None:
        print(f"acdkit build: {message}", file=sys.stderr)
