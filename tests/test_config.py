"""The config file (acdkit.config) and the examples/timecheck files that use it."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from acdkit import config
from acdkit.errors import UsageError

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "timecheck"


def test_the_example_config_parses() -> None:
    settings = config.timecheck_settings(EXAMPLES / "config.toml")
    assert settings == {
        "servers": ["ntp.nict.jp", "ptbtime1.ptb.de", "time.nist.gov", "0.debian.pool.ntp.org"],
        "samples": 4,
        "interval": 1.0,
        "timeout": 2.0,
        "min_agree": 3,
        "max_drift": 1.0,
    }


def test_where_the_file_is(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    assert config.config_path() == tmp_path / "acdkit" / "config.toml"
    assert config.timecheck_settings() == {}  # no file: no settings
    monkeypatch.setenv("ACDKIT_CONFIG", str(tmp_path / "x.toml"))
    assert config.config_path() == tmp_path / "x.toml"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[timecheck]\nservers = 'one'\n", "timecheck.servers has the wrong type"),
        ("[timecheck]\nservers = [1]\n", "must be a list of strings"),
        ("[timecheck]\nsamples = true\n", "timecheck.samples has the wrong type"),
        ("timecheck = 3\n", "[timecheck] must be a table"),
        ("[timecheck\n", "is not valid TOML"),
    ],
)
def test_bad_files_are_usage_errors(text: str, message: str, tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(text)
    with pytest.raises(UsageError, match=message.replace("[", r"\[")):
        config.timecheck_settings(path)


def test_the_cron_and_systemd_examples_run_timecheck_then_seal() -> None:
    service = (EXAMPLES / "acdkit-timecheck.service").read_text()
    assert "ExecStart=/usr/local/bin/acdkit timecheck --json" in service
    # the seal runs whatever timecheck's exit code: ExecStartPost would be skipped on 5 or 6
    assert "ExecStopPost=/usr/local/bin/acdkit seal --heartbeat --json" in service
    assert "ExecStartPost=" not in service
    timer = (EXAMPLES / "acdkit-timecheck.timer").read_text()
    assert "OnUnitActiveSec=15min" in timer and "WantedBy=timers.target" in timer
    lines = (EXAMPLES / "crontab").read_text().splitlines()
    # cron runs jobs with PATH=/usr/bin:/bin, where a pip-installed acdkit is not
    assert "PATH=/usr/local/bin:/usr/bin:/bin" in lines
    cron = [
        line for line in lines if line and not line.startswith("#") and "=" not in line.split()[0]
    ]
    assert [line.split()[:6] for line in cron] == [
        ["*/15", "*", "*", "*", "*", "acdkit"],
        ["1-59/15", "*", "*", "*", "*", "acdkit"],
    ]


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is absent")
def test_the_systemd_units_verify(tmp_path: Path) -> None:
    # systemd-analyze also checks that ExecStart names an executable: /bin/true stands in
    # for /usr/local/bin/acdkit, which the test machine need not have
    service = (EXAMPLES / "acdkit-timecheck.service").read_text()
    (tmp_path / "acdkit-timecheck.service").write_text(
        service.replace("/usr/local/bin/acdkit", shutil.which("true") or "/bin/true")
    )
    shutil.copy(EXAMPLES / "acdkit-timecheck.timer", tmp_path)
    units = [str(tmp_path / "acdkit-timecheck.service"), str(tmp_path / "acdkit-timecheck.timer")]
    done = subprocess.run(
        ["systemd-analyze", "verify", *units], capture_output=True, text=True, check=False
    )
    assert (done.returncode, done.stderr) == (0, "")
