"""T+30 tickets: one payload per recipient (JSON and a bilingual text), and its delivery.

A ticket says what is known so far: the incident, its severity and reason codes, when it
was detected and recognised, the clocks that concern the recipient, and the head of the
evidence log (origin, size and root of the newest checkpoint), so that the ticket itself
anchors the log as it stood.  It is rendered from sealed and queued decisions only and never
carries log content.  Delivery is an HTTP POST to the webhook the operator configured, with
no redirect followed; acdkit contacts nothing else.
"""

from __future__ import annotations

import hashlib
import json
import urllib.error
import urllib.parse
import urllib.request
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
    "deliver",
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


def _local(moment: datetime | None, clock: Clock | None = None, zone: Any = None) -> str:
    if moment is None:
        return "-"
    tz = zone if zone is not None else clock.zone if clock else None
    local = moment.astimezone(tz) if tz is not None else moment
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
            f"{_local(c.deadline, c)} ({c.state})"
        )
    lines.append(
        f"ログ / Evidence log: {log_head.get('origin')} size {log_head.get('tree_size')} "
        f"root {log_head.get('root')}"
    )
    return "\n".join(lines) + "\n"


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # a redirect is answered as the 3xx it is, never followed


def webhook_host(url: str) -> str:
    """scheme://host[:port] of a webhook: what a decision may record (a path or query can
    hold a token, so it is never logged)."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(f"webhook {url[:60]!r} is not an http:// or https:// URL")
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{parts.hostname}{port}"


def deliver(ticket: Ticket, url: str, timeout: float = TIMEOUT_S) -> Delivery:
    """POST the ticket's JSON to ``url``; any 2xx is delivered, anything else is not."""
    webhook_host(url)
    request = urllib.request.Request(  # noqa: S310 (the scheme is checked above)
        url,
        data=ticket.body(),
        method="POST",
        headers={
            "Content-Type": "application/json; charset=utf-8",
            "User-Agent": "acdkit-ticket/1",
            "X-Acdkit-Ticket-Sha256": ticket.sha256,
        },
    )
    opener = urllib.request.build_opener(_NoRedirect)
    try:
        with opener.open(request, timeout=timeout) as reply:
            data = reply.read(RESPONSE_LIMIT)
            status = int(reply.status)
    except urllib.error.HTTPError as exc:
        data = exc.read(RESPONSE_LIMIT) if exc.fp is not None else b""
        return Delivery(
            ticket.recipient, False, exc.code, hashlib.sha256(data).hexdigest(), f"HTTP {exc.code}"
        )
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        return Delivery(ticket.recipient, False, None, None, f"not delivered: {reason}")
    ok = 200 <= status < 300
    return Delivery(
        ticket.recipient, ok, status, hashlib.sha256(data).hexdigest(), f"HTTP {status}"
    )
