"""Real NTP servers on 127.0.0.1 for the timecheck tests: chronyd, with clocks made wrong.

Each server is a chronyd of its own (Debian package ``chrony``) with a private
configuration, pid file and drift file in a temporary directory, started in the foreground
(``-d``) without touching the system clock (``-x``), as root (``-u root``: no switch to the
_chrony user) or unprivileged (``-U``).  What each one serves:

- ``local stratum N``: its own clock, as a synchronised server of stratum N;
- libfaketime (Debian ``libfaketime``) preloaded with ``FAKETIME=+S``: that clock S seconds
  ahead (a false ticker, or a whole world moved in time);
- ``server 127.0.0.1 port P``: another of these servers as its source; synchronised to a
  ``local stratum 15`` server it runs at stratum 16 (sent as 0 on the wire, RFC 5905 §7.3);
- no source at all: unsynchronised (leap indicator 3);
- ``leapsectz`` with a zone compiled by ``zic`` holding a leap second at the end of the day:
  chronyd announces it (leap indicator 1) once it is synchronised to a source, but only on
  30 June or 31 December by its clock, so such a server and everything that talks to it run
  in a world moved to the next of those days by the same FAKETIME offset.
"""

from __future__ import annotations

import calendar
import glob
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import ntplib

# every leap second since 1972 (IERS Bulletin C): chronyd checks a leap zone against the
# TAI−UTC offsets of 2012 before it uses it
LEAPS = [
    "1972 Jun 30",
    "1972 Dec 31",
    "1973 Dec 31",
    "1974 Dec 31",
    "1975 Dec 31",
    "1976 Dec 31",
    "1977 Dec 31",
    "1978 Dec 31",
    "1979 Dec 31",
    "1981 Jun 30",
    "1982 Jun 30",
    "1983 Jun 30",
    "1985 Jun 30",
    "1987 Dec 31",
    "1989 Dec 31",
    "1990 Dec 31",
    "1992 Jun 30",
    "1993 Jun 30",
    "1994 Jun 30",
    "1995 Dec 31",
    "1997 Jun 30",
    "1998 Dec 31",
    "2005 Dec 31",
    "2008 Dec 31",
    "2012 Jun 30",
    "2015 Jun 30",
    "2016 Dec 31",
]
MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]


def chronyd() -> str | None:
    return shutil.which("chronyd") or shutil.which("chronyd", path="/usr/sbin:/sbin")


def libfaketime() -> str | None:
    found = sorted(glob.glob("/usr/lib/*/faketime/libfaketime.so.1"))
    found += sorted(glob.glob("/usr/lib/faketime/libfaketime.so.1"))
    return found[0] if found else None


def missing() -> str | None:
    """Why the servers cannot run here, or None; under .ci/run (ACDKIT_CI=1) a reason is an
    error, so that CI cannot pass with the loopback matrix skipped."""
    why = _missing()
    if why is not None and os.environ.get("ACDKIT_CI") == "1":
        raise RuntimeError(f"CI needs the NTP test servers: {why}")
    return why


def _missing() -> str | None:
    if chronyd() is None:
        return "chronyd is not installed (Debian package chrony; .ci/run installs it)"
    if libfaketime() is None:
        return "libfaketime is not installed (Debian package libfaketime; .ci/run installs it)"
    if shutil.which("zic") is None:
        return "zic is not installed (Debian package libc-bin)"
    return None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def next_leap_day_offset(now: float | None = None) -> tuple[int, int, str, int]:
    """(year, month, day name, seconds to add) to reach noon UTC of the next 30 June or
    31 December: the days on which chronyd accepts a leap second."""
    current = time.time() if now is None else now
    for year in (time.gmtime(current).tm_year, time.gmtime(current).tm_year + 1):
        for month, day in ((6, 30), (12, 31)):
            noon = calendar.timegm((year, month, day, 12, 0, 0))
            if noon > current + 60:
                return year, month, f"{MONTHS[month - 1]} {day}", noon - int(current)
    raise AssertionError("unreachable")


def leap_zone(directory: Path, year: int, day: str) -> Path:
    """A zone like right/UTC whose list ends with a leap second at 23:59:60 on ``day``."""
    directory.mkdir(parents=True, exist_ok=True)
    days = [*LEAPS, f"{year} {day}"]
    lines = ["Leap\t{}\t{}\t{}\t23:59:60\t+\tS".format(*d.split()) for d in days]
    (directory / "leaps").write_text("\n".join(lines) + "\n")
    (directory / "zone").write_text("Zone\tLEAPTEST\t0\t-\tUTC\n")
    zic = ["zic", "-d", str(directory / "tz"), "-L", str(directory / "leaps")]
    subprocess.run([*zic, str(directory / "zone")], check=True, capture_output=True)
    return directory / "tz" / "LEAPTEST"


@dataclass
class Chrony:
    """One chronyd serving NTP on 127.0.0.1:port."""

    directory: Path
    port: int
    lines: list[str]
    ahead_s: int = 0  # FAKETIME offset of its clock
    process: subprocess.Popen[bytes] | None = None
    log: Path = field(init=False)

    def __post_init__(self) -> None:
        self.log = self.directory / "chronyd.log"

    @property
    def spec(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> Chrony:
        d = self.directory
        d.mkdir(parents=True, exist_ok=True)
        conf = d / "chrony.conf"
        conf.write_text(
            "\n".join(
                [
                    f"port {self.port}",
                    "bindaddress 127.0.0.1",
                    "allow 127.0.0.1",
                    f"pidfile {d}/chronyd.pid",
                    f"driftfile {d}/drift",
                    "cmdport 0",
                    "bindcmdaddress /",  # no command socket: nothing outside the directory
                    *self.lines,
                ]
            )
            + "\n"
        )
        binary = chronyd()
        assert binary is not None
        user = ["-u", "root"] if os.geteuid() == 0 else ["-U"]
        env = dict(os.environ)
        if self.ahead_s:
            env.update(faked(self.ahead_s))
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [binary, "-x", "-d", *user, "-f", str(conf)],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
            )
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)

    def wait(self, ready: Callable[[ntplib.NTPStats], bool], timeout: float = 20.0) -> None:
        """Until a reply satisfies ``ready`` (a chained server must first synchronise)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise AssertionError(f"chronyd exited: {self.log.read_text()[-2000:]}")
            try:
                stats = ntplib.NTPClient().request("127.0.0.1", 4, self.port, 0.5)
                if ready(stats):
                    return
            except ntplib.NTPException:
                pass
            time.sleep(0.2)
        raise AssertionError(f"chronyd on port {self.port} never got ready: {self.log.read_text()}")


def faked(ahead_s: int) -> dict[str, str]:
    """Environment that runs a program with its clock ``ahead_s`` seconds ahead."""
    lib = libfaketime()
    assert lib is not None
    return {"LD_PRELOAD": lib, "FAKETIME": f"{ahead_s:+d}"}


def local(directory: Path, stratum: int = 3, ahead_s: int = 0) -> Chrony:
    return Chrony(directory, free_port(), [f"local stratum {stratum}"], ahead_s)


def chained(
    directory: Path, upstream: Chrony, extra: list[str] | None = None, ahead_s: int = 0
) -> Chrony:
    source = f"server 127.0.0.1 port {upstream.port} iburst minpoll -4 maxpoll -4"
    return Chrony(directory, free_port(), [source, *(extra or [])], ahead_s)


def lone(directory: Path) -> Chrony:
    return Chrony(directory, free_port(), [])


def synced(stats: ntplib.NTPStats) -> bool:
    return bool(stats.leap != 3)


def answering(stats: ntplib.NTPStats) -> bool:
    return True
