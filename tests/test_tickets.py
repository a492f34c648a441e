"""Ticket delivery against real HTTP servers on loopback: no redirect is followed, a
webhook's path, query and user-info (which may hold secrets) are never recorded nor echoed,
and a hostile webhook (hanging, trickling, huge, not HTTP) cannot hold or crash the run."""

from __future__ import annotations

import http.server
import socket
import threading
import time
from collections.abc import Callable, Iterator
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
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            hits.append(self.path)
            if self.path in ("/moved", "/elsewhere"):
                self.send_response(302 if self.path == "/moved" else 307)
                where = "/elsewhere" if self.path == "/moved" else "http://evil.example.net/"
                self.send_header("Location", where)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            if self.path == "/fail":
                self.send_response(500)
                self.send_header("Content-Length", "4")
                self.end_headers()
                self.wfile.write(b"boom")
                return
            if self.path == "/huge":  # announces 1 GiB and starts sending it
                self.send_response(200)
                self.send_header("Content-Length", str(1 << 30))
                self.end_headers()
                try:
                    for _ in range(1 << 10):
                        self.wfile.write(b"A" * (1 << 20))
                except OSError:
                    pass  # the client hung up after its 64 KiB, as it should
                return
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: Any) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
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


def test_a_redirect_is_not_followed_to_this_host_or_another(
    server: tuple[str, list[str]],
) -> None:
    url, hits = server
    sent = tickets.deliver(TICKET, f"{url}/moved")
    assert (sent.ok, sent.status, sent.reason) == (False, 302, "HTTP 302: a redirect, not followed")
    away = tickets.deliver(TICKET, f"{url}/elsewhere")
    assert (away.ok, away.status) == (False, 307)
    assert hits == ["/moved", "/elsewhere"]  # nothing went to /elsewhere's target


def test_a_500_is_a_failed_delivery_with_the_answer_hashed(
    server: tuple[str, list[str]],
) -> None:
    import hashlib

    url, _ = server
    sent = tickets.deliver(TICKET, f"{url}/fail")
    assert (sent.ok, sent.status, sent.reason) == (False, 500, "HTTP 500")
    assert sent.response_sha256 == hashlib.sha256(b"boom").hexdigest()


def test_a_huge_answer_is_read_to_64_kib_only(server: tuple[str, list[str]]) -> None:
    import hashlib

    url, _ = server
    started = time.monotonic()
    sent = tickets.deliver(TICKET, f"{url}/huge")
    assert (sent.ok, sent.status) == (True, 200)
    assert sent.response_sha256 == hashlib.sha256(b"A" * tickets.RESPONSE_LIMIT).hexdigest()
    assert time.monotonic() - started < 5  # 1 GiB was not read


def test_nothing_listening_is_a_failed_delivery() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed when the block ends: nobody listens there
    sent = tickets.deliver(TICKET, f"http://127.0.0.1:{port}/hook", timeout=2)
    assert (sent.ok, sent.status) == (False, None)
    assert sent.reason == "not delivered: connection refused"


def test_a_webhook_that_hangs_or_trickles_is_cut_at_the_deadline(
    raw_server: Callable[[Callable[[socket.socket], None]], str],
) -> None:
    def hang(conn: socket.socket) -> None:
        time.sleep(5)

    def trickle(conn: socket.socket) -> None:
        # a header line every 0.3 s: each read is quick, the whole answer never ends
        conn.sendall(b"HTTP/1.1 200 OK\r\n")
        for _ in range(40):
            conn.sendall(b"X-Slow: 1\r\n")
            time.sleep(0.3)

    def slow_body(conn: socket.socket) -> None:
        conn.sendall(b"HTTP/1.1 201 Created\r\nContent-Length: 1000\r\n\r\n")
        for _ in range(40):
            conn.sendall(b"x")
            time.sleep(0.3)

    started = time.monotonic()
    sent = tickets.deliver(TICKET, raw_server(slow_body), timeout=1.5)
    assert time.monotonic() - started < 3
    assert (sent.ok, sent.status) == (True, 201)  # the webhook took it: its status says so
    assert sent.reason == "HTTP 201 (the answer's body cut at 1.5 s)"

    for reply in (hang, trickle):
        started = time.monotonic()
        sent = tickets.deliver(TICKET, raw_server(reply), timeout=1.5)
        took = time.monotonic() - started
        assert (sent.ok, sent.status) == (False, None), reply.__name__
        assert sent.reason == "not delivered: no complete answer within 1.5 s", reply.__name__
        assert took < 3, (reply.__name__, took)


def test_an_answer_that_is_not_http_fails_without_echoing_it(
    raw_server: Callable[[Callable[[socket.socket], None]], str],
) -> None:
    answers = {
        b"HELLO \x1b[2J canary-7f3a\r\n\r\n": "the answer is not valid HTTP",
        b"HTTP/1.1 2000 canary-7f3a\r\n\r\n": "the answer is not valid HTTP",
        b"HTTP/1.1 200 OK\r\n" + b"X-A: canary-7f3a\r\n" * 200 + b"\r\n": (
            "the answer is not valid HTTP"
        ),
        b"HTTP/1.1 200 OK\r\nX: " + b"a" * 70_000 + b"\r\n\r\n": "the answer is not valid HTTP",
        b"": "the webhook closed the connection without an answer",
    }
    for answer, reason in answers.items():
        sent = tickets.deliver(TICKET, raw_server(lambda c, a=answer: c.sendall(a)), timeout=3)
        assert (sent.ok, sent.status, sent.reason) == (False, None, f"not delivered: {reason}")


def test_only_scheme_and_host_of_a_webhook_are_recorded() -> None:
    assert tickets.webhook_host("https://hooks.example.org:8443/a/b?t=1") == (
        "https://hooks.example.org:8443"
    )
    assert tickets.webhook_host("HTTP://[::1]:80/x") == "http://[::1]"
    hook = tickets.parse_webhook("http://127.0.0.1:8765/hook?token=t")
    assert (hook.host, hook.port, hook.target) == ("127.0.0.1", 8765, "/hook?token=t")


@pytest.mark.parametrize(
    ("url", "rule"),
    [
        ("file:///etc/passwd", "is not an http:// or https:// URL"),
        ("ftp://example.org/", "is not an http:// or https:// URL"),
        ("http://", "names no valid host and port"),
        ("https://user:s3cret@hooks.example.org/", "carries a user name or password"),
        ("https://s3cret@hooks.example.org/", "carries a user name or password"),
        ("http://127.0.0.1:99999/s3cret", "a port outside 0-65535"),
        ("http://127.0.0.1:0/s3cret", "names no valid host and port"),
        ("http://[::1/s3cret", "broken [IPv6] host"),
        ("http://127.0.0.1/s3cret\nHost: evil", "a blank, a control or a non-ASCII character"),
        ("http://127.0.0.1/s3cret token", "a blank, a control or a non-ASCII character"),
        ("http://ho_st!/s3cret", "names no valid host and port"),
        ("http://127.0.0.1/" + "s3cret" * 400, "is over 2,048 characters"),
    ],
)
def test_a_bad_webhook_url_is_refused_naming_the_rule_not_the_url(url: str, rule: str) -> None:
    with pytest.raises(UsageError) as caught:
        tickets.parse_webhook(url)
    assert rule in caught.value.message
    assert "s3cret" not in str(caught.value)
