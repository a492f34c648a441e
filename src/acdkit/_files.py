"""Reading the small files of a store, a key or a bundle without trusting their size.

Every such file has a natural bound (a key is a few hundred bytes, a ledger entry a few
kilobytes); a hostile or broken one (a bundle's manifest, `--key /dev/zero`) must give a
clear error, not fill the memory.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

from acdkit.errors import InputIOError, MalformedError

__all__ = ["KIB", "MIB", "read_bounded", "read_json", "read_text"]

KIB, MIB = 1 << 10, 1 << 20


def read_bounded(path: Path, limit: int, what: str) -> bytes:
    """The bytes of ``path``; MALFORMED if it holds more than ``limit``, IO if unreadable."""
    try:
        # O_NONBLOCK: a FIFO given as a key, state or certificate must not hang the command
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        with os.fdopen(fd, "rb") as fh:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise MalformedError(f"{what} {path} is not a regular file")
            data = fh.read(limit + 1)
    except FileNotFoundError:
        raise InputIOError(f"{what} {path} does not exist") from None
    except OSError as exc:
        raise InputIOError(f"cannot read {what} {path}: {exc.strerror}") from None
    if len(data) > limit:
        raise MalformedError(f"{what} {path} is larger than {limit:,} bytes; it cannot be one")
    return data


def read_json(path: Path, limit: int, what: str) -> Any:
    """A JSON document from a bounded file; MALFORMED if it is not UTF-8 JSON."""
    data = read_bounded(path, limit, what)
    try:
        return json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise MalformedError(f"{what} {path} is not valid JSON ({exc})") from None
    except RecursionError:
        raise MalformedError(f"{what} {path} is nested too deeply to be one") from None


def read_text(path: Path, limit: int, what: str) -> str:
    """UTF-8 text from a bounded file; MALFORMED if it is not UTF-8."""
    try:
        return read_bounded(path, limit, what).decode("utf-8")
    except UnicodeDecodeError:
        raise MalformedError(f"{what} {path} is not UTF-8 text") from None
