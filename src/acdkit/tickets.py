"""T+30 tickets: one payload per recipient (JSON and a bilingual text), and its delivery.

A ticket says what is known so far: the incident, its severity and reason codes, when it
was detected and recognised, the clocks that concern the recipient, and the head of the
evidence log (origin, size and root of the newest checkpoint), so that the ticket itself
anchors the log as it stood.  It is rendered from sealed and queued decisions only and never
carries log content.  Delivery is an HTTP POST to the webhook the operator configured, with
no redirect followed and no proxy; acdkit contacts nothing else.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import http.client
import ipaddress
import json
import re
import socket
import ssl
import threading
import urllib.parse
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from acdkit.clocks import Clock, evaluate, ticket_recipients
from acdkit.errors import UsageError
from acdkit.incident import Incident
from acdkit.reasons import ReasonCodes
from acdkit.regimes import RegimeBook

__all__ = [
    "TICKET_SCHEMA",
    "Delivery",
    "Ticket",
    "Webhook",
    "deliver",
    "parse_webhook",
    "render",
    "webhook_host",
]

TICKET_SCHEMA = "acdkit-ticket/1"
RESPONSE_LIMIT = 64 << 10
TIMEOUT_S = 10.0


@dataclass(frozen=True)
class Ticket:
    recipient: str
    payload: dict[str, Any]
    text: str

    def body(self) -> bytes:
        """The canonical JSON bytes that are posted and hashed (sorted keys, no blanks)."""
        doc = {**self.payload, "text": self.text}
        return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.body()).hexdigest()


@dataclass(frozen=True)
class Delivery:
    recipient: str
    ok: bool
    status: int | None  # HTTP status, None when nothing came back
    response_sha256: str | None
    reason: str


def _local(moment: datetime, zone: Any = None) -> str:
    local = moment.astimezone(zone) if zone is not None else moment
    return f"{local:%Y-%m-%d %H:%M} {local.tzname()}"


def render(
    incident: Incident,
    book: RegimeBook,
    codes: ReasonCodes,
    now: datetime,
    log_head: dict[str, Any],
) -> list[Ticket]:
    """A ticket for every recipient of the incident's started regimes."""
    state = incident.until(now)
    recipients = ticket_recipients(state, book, codes)
    if not recipients:
        raise UsageError(
            f"incident {incident.id} has no recipient yet: no statutory clock has started",
            hint="record the reason codes (classify) or awareness events first",
        )
    clocks = evaluate(incident, book, codes, now)
    return [_ticket(state, r, book, codes, clocks, now, log_head) for r in recipients]


def _ticket(
    inc: Incident,
    recipient: str,
    book: RegimeBook,
    codes: ReasonCodes,
    clocks: list[Clock],
    now: datetime,
    log_head: dict[str, Any],
) -> Ticket:
    who = book.recipients[recipient]
    mine = [
        c
        for c in clocks
        if recipient in (*c.regime.recipients, *c.regime.voluntary_recipients)
        and c.state not in ("waiting", "not-applicable")
    ]
    events = inc.events(codes)
    reasons = [
        {"code": c, "title": codes.codes[c].title} for c in inc.reasons() if c in codes.codes
    ]
    forms = [codes.codes[c].jp_form for c in inc.reasons() if c in codes.codes]
    payload = {
        "schema_version": TICKET_SCHEMA,
        "incident": inc.id,
        "recipient": {"id": recipient, **who},
        "severity": inc.severity(),
        "reason_codes": reasons,
        "jp_form": next((f for f in forms if f), "other"),
        "awareness": {e: t.isoformat().replace("+00:00", "Z") for e, t in sorted(events.items())},
        "clocks": [c.to_json(now) for c in mine],
        "log": log_head,
        "generated_at": now.isoformat().replace("+00:00", "Z"),
    }
    return Ticket(recipient, payload, _text(inc, recipient, book, codes, mine, events, log_head))


def _text(
    inc: Incident,
    recipient: str,
    book: RegimeBook,
    codes: ReasonCodes,
    clocks: list[Clock],
    events: dict[str, datetime],
    log_head: dict[str, Any],
) -> str:
    who = book.recipients[recipient]
    zone = clocks[0].zone if clocks else None
    lines = [
        f"[acdkit] インシデント {inc.id} 第一報 / First report on incident {inc.id}",
        f"宛先 / To: {who.get('ja', who['en'])} / {who['en']}",
        f"重大度 / Severity: {inc.severity() or '-'}",
        "理由コード / Reason codes:",
    ]
    for code in inc.reasons():
        title = codes.codes[code].title if code in codes.codes else {"ja": "?", "en": "?"}
        lines.append(f"  {code}  {title['ja']} / {title['en']}")
    for event in ("detection", "recognition", "jp_recognition"):
        if event in events:
            name = book.events.get(event, {"ja": event, "en": event})
            lines.append(f"{name.get('ja', '')} / {name['en']}: {_local(events[event], zone=zone)}")
    lines.append("期限 / Deadlines:")
    for c in clocks:
        lines.append(
            f"  {c.key}  {c.stage.name.get('ja', '')} / {c.stage.name['en']}: "
            f"{c.deadline_text()} ({c.state})"
        )
    lines.append(
        f"ログ / Evidence log: {log_head.get('origin')} size {log_head.get('tree_size')} "
        f"root {log_head.get('root')}"
    )
    return "\n".join(lines) + "\n"


MAX_URL = 2048
_HOST = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,62})(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}))*\.?")


@dataclass(frozen=True)
class Webhook:
    """A webhook URL taken apart: where to connect and what to ask for."""

    scheme: str
    host: str  # a name or an address (IPv6 without brackets)
    port: int
    target: str  # path and query: may hold a token, so never recorded

    @property
    def origin(self) -> str:
        """scheme://host[:port]: all that a decision or a message may say about it."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = {"http": 80, "https": 443}[self.scheme]
        return f"{self.scheme}://{host}" + ("" if self.port == default else f":{self.port}")


def parse_webhook(url: str, label: str = "a webhook URL") -> Webhook:
    """A webhook URL, strictly; USAGE naming the rule otherwise, never echoing the URL (its
    path, query or user-info may hold a secret)."""
    if len(url) > MAX_URL:
        raise UsageError(f"{label} is over {MAX_URL:,} characters")
    if any(not "!" <= c <= "~" for c in url):
        raise UsageError(
            f"{label} holds a blank, a control or a non-ASCII character",
            hint="percent-encode them (%20, …)",
        )
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port
    except ValueError:
        raise UsageError(
            f"{label} is not valid: a port outside 0-65535 or a broken [IPv6] host"
        ) from None
    if parts.scheme not in ("http", "https"):
        raise UsageError(f"{label} is not an http:// or https:// URL")
    if "@" in parts.netloc:
        raise UsageError(
            f"{label} carries a user name or password (user:password@host): acdkit sends "
            "no credentials from a URL (they would sit in shell history and process lists)",
            hint="use the token your ticketing system puts in the URL's path or query "
            "(acdkit never records a path or a query)",
        )
    host = parts.hostname or ""
    if not _valid_host(host) or port == 0:
        raise UsageError(f"{label} names no valid host and port")
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    default = 443 if parts.scheme == "https" else 80
    return Webhook(parts.scheme, host, port or default, target)


def _valid_host(host: str) -> bool:
    if _HOST.fullmatch(host) and len(host) <= 253:
        return True
    try:
        ipaddress.IPv6Address(host)
    except ValueError:
        return False
    return True


def webhook_host(url: str) -> str:
    """scheme://host[:port] of a webhook: what a decision may record (a path or query can
    hold a token, so it is never logged)."""
    return parse_webhook(url).origin


def deliver(ticket: Ticket, url: str, timeout: float = TIMEOUT_S) -> Delivery:
    """POST the ticket's JSON to ``url``, within ``timeout`` seconds in all; any 2xx is
    delivered, anything else is not.

    ``http.client`` follows no redirect and reads no proxy settings: acdkit talks to the
    configured webhook only.  A watchdog cuts the connection at the deadline, so a server
    that answers one byte at a time cannot hold the run; at most 64 KiB of the answer is read.
    """
    hook = parse_webhook(url)
    conn: http.client.HTTPConnection
    if hook.scheme == "https":
        context = ssl.create_default_context()
        conn = http.client.HTTPSConnection(hook.host, hook.port, timeout=timeout, context=context)
    else:
        conn = http.client.HTTPConnection(hook.host, hook.port, timeout=timeout)
    cut = threading.Event()

    def watchdog() -> None:
        cut.set()
        sock = conn.sock
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    timer = threading.Timer(timeout, watchdog)
    timer.daemon = True
    timer.start()
    late = f"not delivered: no complete answer within {timeout:g} s"
    try:
        reply = _post(conn, hook, ticket)
        if cut.is_set():  # the cut ended the headers early: what came is no answer
            return Delivery(ticket.recipient, False, None, None, late)
        try:
            data = reply.read(RESPONSE_LIMIT)
        except http.client.IncompleteRead as exc:  # the status came; the body was cut short
            data = exc.partial
    except (OSError, http.client.HTTPException) as exc:
        reason = late if cut.is_set() else f"not delivered: {_why(exc)}"
        return Delivery(ticket.recipient, False, None, None, reason)
    finally:
        timer.cancel()
        conn.close()
    status = int(reply.status)
    ok = 200 <= status < 300
    reason = f"HTTP {status}" + (": a redirect, not followed" if 300 <= status < 400 else "")
    if cut.is_set():  # the status came in time; the body did not (its hash is of a part)
        reason += f" (the answer's body cut at {timeout:g} s)"
    return Delivery(ticket.recipient, ok, status, hashlib.sha256(data).hexdigest(), reason)


def _post(
    conn: http.client.HTTPConnection, hook: Webhook, ticket: Ticket
) -> http.client.HTTPResponse:
    conn.request(
        "POST",
        hook.target,
        body=ticket.body(),
        headers={
            "Content-Type": "application/json; charset=utf-8",
            "User-Agent": "acdkit-ticket/1",
            "X-Acdkit-Ticket-Sha256": ticket.sha256,
        },
    )
    return conn.getresponse()


def _why(exc: BaseException) -> str:
    """A failure in acdkit's own words: nothing the server sent is repeated."""
    if isinstance(exc, TimeoutError):
        return "no answer in time"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, socket.gaierror):
        return "the host name does not resolve"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return "the TLS certificate does not verify"
    if isinstance(exc, ssl.SSLError):
        return "the TLS handshake failed"
    if isinstance(exc, http.client.RemoteDisconnected):
        return "the webhook closed the connection without an answer"
    if isinstance(exc, http.client.HTTPException):
        return "the answer is not valid HTTP"
    name = errno.errorcode.get(exc.errno or 0) if isinstance(exc, OSError) else None
    return f"network error ({name})" if name else "network error"
