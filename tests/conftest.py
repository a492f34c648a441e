"""Shared fixtures: real sample files, fresh stores with keys kept outside them, the CLI."""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from acdkit import keys
from acdkit.store import Store, init_store

DATA = Path(__file__).parent / "data"
REPO = Path(__file__).resolve().parents[1]


def shared_samples() -> Path:
    """../shared/samples beside the checkout (CI lays it there), or $ACDKIT_SAMPLES."""
    env = os.environ.get("ACDKIT_SAMPLES")
    return Path(env) if env else REPO.parent / "shared" / "samples"


@pytest.fixture
def samples() -> Path:
    path = shared_samples()
    if not path.is_dir():
        pytest.skip(f"shared samples not found at {path} (set ACDKIT_SAMPLES)")
    return path


@pytest.fixture
def data() -> Path:
    return DATA


@pytest.fixture
def real(request: pytest.FixtureRequest, data: Path) -> Callable[[str], Path]:
    """A real sample by its path under samples/: the MIT copy in tests/data if there is one,
    else the shared folder (the test skips where that is absent)."""

    def get(rel: str) -> Path:
        if (data / rel).is_file():
            return data / rel
        path: Path = request.getfixturevalue("samples") / rel
        assert path.is_file(), f"sample {rel} is missing"
        return path

    return get


@pytest.fixture(autouse=True)
def _key_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    # never touch the developer's real ~/.config/acdkit
    monkeypatch.setenv("ACDKIT_KEY_DIR", str(tmp_path / "user-keys"))
    for var in (
        "ACDKIT_SEALER_KEY",
        "ACDKIT_VERIFY_KEY",
        "ACDKIT_SENSOR",
        "ACDKIT_FORMAT",
        "ACDKIT_ASSUME_TZ",
        "ACDKIT_YEAR",
        "ACDKIT_AWS_FIELDS",
        "ACDKIT_DATE_ORDER",
        "ACDKIT_STORE",
        "ACDKIT_ORG",
        "ACDKIT_WITNESS",
        "ACDKIT_WITNESS_QUORUM",
        "ACDKIT_WITNESS_KEY",
        "ACDKIT_WITNESS_NAME",
        "ACDKIT_WITNESS_STATE",
        "ACDKIT_WITNESS_LOG_KEY",
        "ACDKIT_SIG_KEY",
        "ACDKIT_NTP_SERVERS",
        "ACDKIT_NTP_SAMPLES",
        "ACDKIT_NTP_INTERVAL",
        "ACDKIT_NTP_TIMEOUT",
        "ACDKIT_NTP_MIN_AGREE",
        "ACDKIT_MAX_DRIFT",
        "ACDKIT_CONFIG",
        # custody and decisions: `package` signs its export with a custodian key from here
        "ACDKIT_CUSTODIAN_KEY",
        "ACDKIT_CUSTODIAN",
        "ACDKIT_HANDLER",
        "ACDKIT_ACTOR",
        "ACDKIT_INCIDENT",
        # S3 (storage push/selftest, verify --worm): never the developer's buckets
        "ACDKIT_S3_BUCKET",
        "ACDKIT_S3_ENDPOINT",
        "ACDKIT_S3_PREFIX",
        "ACDKIT_S3_TIMEOUT",
        "ACDKIT_S3_LOCK_MODE",
        "ACDKIT_S3_RETAIN_DAYS",
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_S3",
        "AWS_PROFILE",
    ):
        monkeypatch.delenv(var, raising=False)
    # nor the developer's config file
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "user-config"))
    yield


@pytest.fixture(scope="session")
def moto_s3() -> Iterator[Any]:
    """A real S3 server (moto's) on 127.0.0.1 for the session (tests/s3server.py)."""
    from s3server import Moto  # moto and boto3 only for the tests that need S3

    server = Moto()
    yield server
    server.stop()


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, str]:
    """Canary credentials in the environment, as boto3's chain reads them; no other."""
    from s3server import CREDENTIALS

    for name, value in CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    return CREDENTIALS


@pytest.fixture
def key_path(tmp_path: Path) -> Path:
    return tmp_path / "keys" / "sealer.key"


@pytest.fixture
def store(tmp_path: Path, key_path: Path) -> Store:
    st, _ = init_store(tmp_path / "store", key_path, "test-org")
    return st


@pytest.fixture
def signer(store: Store, key_path: Path) -> keys.Signer:
    return keys.load_signer(key_path)


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def raw_server() -> Iterator[Callable[[Callable[[socket.socket], None]], str]]:
    """A TCP server on loopback that answers each connection with ``reply(conn)``."""
    stop = threading.Event()
    servers: list[socket.socket] = []

    def start(reply: Callable[[socket.socket], None]) -> str:
        srv = socket.socket()
        srv.bind(("127.0.0.1", 0))
        srv.listen(8)
        srv.settimeout(0.2)
        servers.append(srv)

        def serve() -> None:
            while not stop.is_set():
                try:
                    conn, _ = srv.accept()
                except OSError:
                    continue
                with conn:
                    conn.settimeout(1)
                    try:
                        conn.recv(1 << 16)
                        reply(conn)
                    except OSError:
                        pass

        threading.Thread(target=serve, daemon=True).start()
        return f"http://127.0.0.1:{srv.getsockname()[1]}/hook"

    yield start
    stop.set()
    for srv in servers:
        srv.close()
