"""Real S3-compatible servers on 127.0.0.1 for the WORM tests.

- `Moto`: moto's server mode (the PyPI package `moto[server]`), a werkzeug HTTP server in
  a thread of the test process, speaking the S3 REST protocol with versioning and Object
  Lock.  Being in this process, a test can also reach behind the protocol: change the bytes
  of a stored version (what no S3 client can do: storage that rots, or an operator with
  disk access) or turn off its lock enforcement (a back end that accepts locks without
  enforcing them, as seaweedfs #11333 reported).
- `Answering`: a loopback HTTP server that answers every request with one status (503),
  and `Silent`: one that accepts connections and never answers (a hung server).

What moto 5 does not implement, and the tests therefore cannot show (README, Known limits):
it stores a client's ChecksumSHA256 without checking it against the bytes; it lets a
COMPLIANCE retention be shortened; GetObjectRetention on an older version fails with 500.
"""

from __future__ import annotations

import http.server
import logging
import re
import socket
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import unquote_to_bytes

import boto3
from moto.core import DEFAULT_ACCOUNT_ID
from moto.s3.models import FakeKey, s3_backends
from moto.server import ThreadedMotoServer

CREDENTIALS = {
    # canaries: no output, log or store file may ever hold them
    "AWS_ACCESS_KEY_ID": "AKIAWORMTESTCANARY01",
    "AWS_SECRET_ACCESS_KEY": "wormtest/SECRET/canary+do-not-print",
    "AWS_DEFAULT_REGION": "us-east-1",
}


class Moto:
    def __init__(self) -> None:
        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # a line per request otherwise
        self.server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self.server.start()
        host, port = self.server.get_host_and_port()
        self.url = f"http://{host}:{port}"

    def stop(self) -> None:
        self.server.stop()

    def client(self) -> Any:
        return boto3.client(
            "s3",
            endpoint_url=self.url,
            region_name="us-east-1",
            aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        )

    def bucket(self, lock: bool = True) -> str:
        """A new bucket, with Object Lock (and so versioning) unless ``lock`` is False."""
        name = f"evidence-{uuid.uuid4().hex[:12]}"
        if lock:
            self.client().create_bucket(Bucket=name, ObjectLockEnabledForBucket=True)
        else:
            self.client().create_bucket(Bucket=name)
        return name

    def versions(self, bucket: str) -> dict[str, list[str]]:
        """key -> its version IDs (delete markers left out)."""
        out: dict[str, list[str]] = {}
        pages = self.client().get_paginator("list_object_versions").paginate(Bucket=bucket)
        for page in pages:
            for v in page.get("Versions", []):
                out.setdefault(v["Key"], []).append(v["VersionId"])
        return out

    def stored(self, bucket: str, key: str, version: str) -> FakeKey:
        """The version as moto keeps it, behind the protocol."""
        backend = s3_backends[DEFAULT_ACCOUNT_ID]["global"]
        for fake in backend.buckets[bucket].keys.getlist(key):
            if fake.version_id == version:
                return fake
        raise KeyError(f"{key} {version}")

    @contextmanager
    def not_enforcing_locks(self) -> Iterator[None]:
        """Locks are taken, stored and reported, but a delete goes through."""
        original = FakeKey.is_locked
        FakeKey.is_locked = lambda self, governance_bypass: False  # type: ignore[method-assign]
        try:
            yield
        finally:
            FakeKey.is_locked = original  # type: ignore[method-assign]


class _Status(http.server.BaseHTTPRequestHandler):
    status, code = 503, "ServiceUnavailable"

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        body = f"<Error><Code>{self.code}</Code><Message>no</Message></Error>".encode()
        self.send_response(self.status)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_GET = do_PUT = do_HEAD = do_POST = do_DELETE = _answer

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def answering(status: int = 503, code: str = "ServiceUnavailable") -> Iterator[str]:
    """A loopback server that answers every request with ``status``; yields its URL."""
    handler = type("Handler", (_Status,), {"status": status, "code": code})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def silent() -> Iterator[str]:
    """A loopback port that accepts connections and never answers; yields its URL."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        sock.close()


@contextmanager
def trickling(every_s: float = 0.2) -> Iterator[str]:
    """A loopback server that answers every request 200 with a large Content-Length and
    the version ID asked for, then sends its body one byte every ``every_s`` seconds (a
    server that trickles); yields its URL."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    stop = threading.Event()

    def answer(conn: socket.socket) -> None:
        with conn:
            try:
                request = conn.recv(65536)
                # the version asked for, as S3 names it: the body, not the header, is slow
                version = re.search(rb"versionId=([^ &]+)", request)
                conn.sendall(
                    b"HTTP/1.1 200 OK\r\nContent-Length: 10000000\r\n"
                    b"Content-Type: application/octet-stream\r\nx-amz-version-id: "
                    + (unquote_to_bytes(version.group(1)) if version else b"v")
                    + b"\r\n\r\n"
                )
                while not stop.wait(every_s):
                    conn.sendall(b"x")
            except OSError:
                pass

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _addr = sock.accept()
            except OSError:
                return
            threading.Thread(target=answer, args=(conn,), daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        stop.set()
        sock.close()


def closed_port() -> str:
    """A loopback URL where nothing listens (a server that is down)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return f"http://127.0.0.1:{port}"
