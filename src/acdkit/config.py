"""The user's configuration file: settings a cron job should not repeat on every line.

``$ACDKIT_CONFIG``, else ``$XDG_CONFIG_HOME/acdkit/config.toml``, else
``~/.config/acdkit/config.toml``; a missing file is no error.  Only the ``[timecheck]``
table is read so far::

    [timecheck]
    servers = ["ntp.nict.jp", "time.cloudflare.com", "0.pool.ntp.org"]
    samples = 4
    interval = 1.0
    timeout = 2.0
    min_agree = 3
    max_drift = 1.0        # seconds

Options on the command line and ``ACDKIT_*`` variables take precedence over the file.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

from acdkit._files import KIB, read_text
from acdkit.errors import UsageError

__all__ = ["TIMECHECK_KEYS", "config_path", "timecheck_settings"]

TIMECHECK_KEYS: dict[str, type | tuple[type, ...]] = {
    "servers": list,
    "samples": int,
    "interval": (int, float),
    "timeout": (int, float),
    "min_agree": int,
    "max_drift": (int, float),
}


def config_path() -> Path:
    explicit = os.environ.get("ACDKIT_CONFIG")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "acdkit" / "config.toml"


def _load(path: Path) -> dict[str, Any]:
    if not path.is_file():
        if os.environ.get("ACDKIT_CONFIG"):
            raise UsageError(f"ACDKIT_CONFIG names {path}, which is not a file")
        return {}
    try:
        return tomllib.loads(read_text(path, 256 * KIB, "config file"))
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"config file {path} is not valid TOML: {exc}") from None


def timecheck_settings(path: Path | None = None) -> dict[str, Any]:
    """The ``[timecheck]`` table, each key checked for its type; unknown keys refused."""
    where = path or config_path()
    table = _load(where).get("timecheck", {})
    if not isinstance(table, dict):
        raise UsageError(f"{where}: [timecheck] must be a table")
    for key, value in table.items():
        value_any: Any = value
        expected = TIMECHECK_KEYS.get(key)
        if expected is None:
            raise UsageError(
                f"{where}: unknown key timecheck.{key}",
                hint=f"known keys: {', '.join(TIMECHECK_KEYS)}",
            )
        if not isinstance(value, expected) or isinstance(value, bool):
            raise UsageError(f"{where}: timecheck.{key} has the wrong type")
        if key == "servers" and not all(isinstance(v, str) for v in value_any):
            raise UsageError(f"{where}: timecheck.servers must be a list of strings")
    return dict(table)
