"""Ticket delivery against a real HTTP server on loopback: no redirect is followed, and a
webhook's path and query (which may hold a token) are never recorded."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from acdkit import tickets
from acdkit.errors import UsageError

TICKET = tickets.Ticket(
    "police", {"schema_version": tickets.TICKET_SCHEMA, "b": 1, "a": "é"}, "x\n"
)


@pytest.fixture
def server() -> Iterator[tuple[str, list[str]]]:
    hits: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            hits.append(self.path)
            if self.path == "/moved":
                self.send_response(302)
                self.send_header("Location", "/elsewhere")
                self.end_headers()
                return
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: Any) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", hits
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_the_body_is_canonical_json_and_its_hash_is_sent(server: tuple[str, list[str]]) -> None:
    assert TICKET.body() == (
        '{"a":"é","b":1,"schema_version":"acdkit-ticket/1","text":"x\\n"}'.encode()
    )
    url, hits = server
    sent = tickets.deliver(TICKET, f"{url}/hook?token=secret")
    assert (sent.ok, sent.status, sent.reason) == (True, 200, "HTTP 200")
    assert hits == ["/hook?token=secret"]


def test_a_redirect_is_not_followed(server: tuple[str, list[str]]) -> None:
    url, hits = server
    sent = tickets.deliver(TICKET, f"{url}/moved")
    assert (sent.ok, sent.status) == (False, 302)
    assert hits == ["/moved"]


def test_nothing_listening_is_a_failed_delivery() -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed when the block ends: nobody listens there
    sent = tickets.deliver(TICKET, f"http://127.0.0.1:{port}/hook", timeout=2)
    assert not sent.ok and sent.status is None and sent.reason.startswith("not delivered")


def test_only_scheme_and_host_of_a_webhook_are_recorded() -> None:
    assert tickets.webhook_host("https://user:pw@hooks.example.org:8443/a/b?t=1") == (
        "https://hooks.example.org:8443"
    )
    for bad in ("file:///etc/passwd", "ftp://example.org/", "http://"):
        with pytest.raises(UsageError):
            tickets.webhook_host(bad)
