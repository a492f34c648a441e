"""The TSA transport against misbehaving HTTP servers on loopback: deadlines, sizes, codes."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from acdkit.tsa import MAX_REPLY_BYTES, TsaError, http_post

Handler = Callable[[socket.socket], None]


@pytest.fixture
def server() -> Iterator[Callable[[Handler], str]]:
    """Start a one-connection-at-a-time TCP server on loopback running ``handler``."""
    sockets: list[socket.socket] = []
    stop = threading.Event()

    def start(handler: Handler) -> str:
        listener = socket.create_server(("127.0.0.1", 0))
        listener.settimeout(0.2)
        sockets.append(listener)

        def loop() -> None:
            while not stop.is_set():
                try:
                    conn, _ = listener.accept()
                except OSError:
                    continue
                with conn:
                    conn.recv(65536)  # the request
                    with contextlib.suppress(OSError):  # the client went away
                        handler(conn)

        threading.Thread(target=loop, daemon=True).start()
        return f"http://127.0.0.1:{listener.getsockname()[1]}/tsa"

    yield start
    stop.set()
    for s in sockets:
        s.close()


def _trickle(conn: socket.socket) -> None:
    conn.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: 100000\r\n\r\n")
    for _ in range(200):  # a byte every 50 ms: each read is quick, the whole never ends
        conn.sendall(b"x")
        time.sleep(0.05)


def test_a_trickling_tsa_is_cut_at_the_deadline(server: Callable[[Handler], str]) -> None:
    url = server(_trickle)
    start = time.monotonic()
    with pytest.raises(TsaError) as caught:
        http_post(url, b"query", timeout=1.0)
    took = time.monotonic() - start
    assert caught.value.kind == "unreachable"
    assert str(caught.value) == f"no complete reply from {url} within 1 s"
    assert 0.9 < took < 3.0


def test_an_oversized_reply_is_refused(server: Callable[[Handler], str]) -> None:
    size = MAX_REPLY_BYTES + 10
    url = server(lambda c: c.sendall(b"HTTP/1.0 200 OK\r\n\r\n" + b"x" * size))
    with pytest.raises(TsaError) as caught:
        http_post(url, b"query", timeout=5.0)
    assert caught.value.kind == "bad-reply"


def test_an_http_error_is_named(server: Callable[[Handler], str]) -> None:
    url = server(lambda c: c.sendall(b"HTTP/1.0 503 Busy\r\nContent-Length: 0\r\n\r\n"))
    with pytest.raises(TsaError) as caught:
        http_post(url, b"query", timeout=5.0)
    assert (caught.value.kind, str(caught.value)) == ("http", "HTTP 503 Busy")


def test_a_bad_url_fails_at_once() -> None:
    start = time.monotonic()
    with pytest.raises(TsaError) as caught:
        http_post("http://127.0.0.1:99999/tsa", b"query", timeout=5.0)
    assert caught.value.kind == "unreachable" and time.monotonic() - start < 2


def test_a_reply_is_returned(server: Callable[[Handler], str]) -> None:
    url = server(lambda c: c.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: 5\r\n\r\nhello"))
    assert http_post(url, b"query", timeout=5.0) == b"hello"
