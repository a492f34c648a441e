"""The CLOCK entry: one timecheck run, its samples and what they show (evidence-format §15).

The body records every sample as it was measured and, beside it, what acdkit concluded:
each server's result, the intersection interval, the combined offset and the verdict.  A
verifier parses it strictly and recomputes the conclusions from the samples
(``acdkit.clocksel``); a CLOCK entry whose conclusions do not follow from its samples is
TAMPERED, whoever signed it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from acdkit import logentries
from acdkit.clocksel import (
    RESULTS,
    VERDICTS,
    Reply,
    Sample,
    Selection,
    ServerResult,
    ServerSamples,
    select,
)
from acdkit.encoding import EntryType, TlvType, parse_tlv, tlv
from acdkit.errors import MalformedError, TamperedError

__all__ = ["METHOD_NTP", "ClockRecord", "clock_records"]

METHOD_NTP = "ntp"
MAX_SERVERS, MAX_SAMPLES = 64, 16
SERVER_BASE, SAMPLE_BASE = 100, 10
FAILURES = ("timeout", "refused", "bad-reply", "unresolved")
_I64 = (-(1 << 63), (1 << 63) - 1)
_U64_MAX = (1 << 64) - 1
_TOP_REQUIRED = frozenset(range(1, 9)) | {12, 13}
_TOP_OPTIONAL = frozenset({9, 10, 11})
_SERVER_FIELDS = frozenset({1, 2, 3, 4, 5, 6})
_REPLY_FIELDS = frozenset(range(2, 11))


def _i64(value: int) -> bytes:
    return value.to_bytes(8, "big", signed=True)


def _u64(value: int) -> bytes:
    return value.to_bytes(8, "big")


def _text(value: str) -> bytes:
    return value.encode()


@dataclass(frozen=True)
class ClockRecord:
    """A CLOCK body: the run's parameters, its samples and its recorded conclusions."""

    began_ns: int  # the local clock before the first request
    ended_ns: int  # the local clock after the last reply or time-out
    min_agree: int
    max_drift_ns: int
    local_precision_ns: int
    servers: tuple[ServerSamples, ...]
    selection: Selection
    collector: str
    tool: str
    method: str = METHOD_NTP

    # -- writing ---------------------------------------------------------------------------

    def body(self) -> bytes:
        sel = self.selection
        parts = [
            tlv(1, TlvType.UTF8, _text(self.method)),
            tlv(2, TlvType.I64, _i64(self.began_ns)),
            tlv(3, TlvType.I64, _i64(self.ended_ns)),
            tlv(4, TlvType.U64, _u64(self.min_agree)),
            tlv(5, TlvType.U64, _u64(self.max_drift_ns)),
            tlv(6, TlvType.U64, _u64(self.local_precision_ns)),
            tlv(7, TlvType.UTF8, _text(sel.verdict)),
            tlv(8, TlvType.U64, _u64(sel.agreeing)),
        ]
        if sel.offset_ns is not None and sel.low_ns is not None and sel.high_ns is not None:
            parts += [
                tlv(9, TlvType.I64, _i64(sel.offset_ns)),
                tlv(10, TlvType.I64, _i64(sel.low_ns)),
                tlv(11, TlvType.I64, _i64(sel.high_ns)),
            ]
        parts += [
            tlv(12, TlvType.UTF8, _text(self.collector)),
            tlv(13, TlvType.UTF8, _text(self.tool)),
        ]
        for i, (server, result) in enumerate(zip(self.servers, sel.servers, strict=True)):
            parts.append(tlv(SERVER_BASE + i, TlvType.BYTES, _server_body(server, result)))
        return b"".join(parts)

    # -- reading ---------------------------------------------------------------------------

    @classmethod
    def from_body(cls, body: bytes) -> ClockRecord:
        """Strict: every field of its type and size, none unknown, none missing."""
        fields = _fields(body, "CLOCK body")
        servers_at = sorted(f for f in fields if f >= SERVER_BASE)
        top = set(fields) - set(servers_at)
        _expect(top, _TOP_REQUIRED, _TOP_OPTIONAL, "CLOCK body")
        if not 1 <= len(servers_at) <= MAX_SERVERS or servers_at != list(
            range(SERVER_BASE, SERVER_BASE + len(servers_at))
        ):
            raise MalformedError(
                f"a CLOCK body holds 1 to {MAX_SERVERS} servers in fields "
                f"{SERVER_BASE}, {SERVER_BASE + 1}, … without gaps"
            )
        method = _utf8(fields, 1, "CLOCK")
        if method != METHOD_NTP:
            raise MalformedError(f"CLOCK method {method[:20]!r} is not {METHOD_NTP!r}")
        verdict = _utf8(fields, 7, "CLOCK")
        if verdict not in VERDICTS:
            raise MalformedError(f"CLOCK verdict {verdict[:20]!r} is not one of {VERDICTS}")
        agreeing = _uint(fields, 8, "CLOCK")
        combined = [9, 10, 11]
        present = [f in fields for f in combined]
        if any(present) and not all(present):
            raise MalformedError("CLOCK fields 9, 10 and 11 go together")
        if all(present) != (agreeing > 0):
            raise MalformedError("CLOCK fields 9-11 are present exactly when field 8 is not 0")
        parsed = [_parse_server(fields[f][1], f) for f in servers_at]
        servers = tuple(s for s, _r in parsed)
        selection = Selection(
            servers=tuple(r for _s, r in parsed),
            agreeing=agreeing,
            offset_ns=_int(fields, 9, "CLOCK") if 9 in fields else None,
            low_ns=_int(fields, 10, "CLOCK") if 10 in fields else None,
            high_ns=_int(fields, 11, "CLOCK") if 11 in fields else None,
            verdict=verdict,
            reason="",
        )
        min_agree = _uint(fields, 4, "CLOCK")
        precision = _uint(fields, 6, "CLOCK")
        if min_agree < 1 or precision < 1:
            raise MalformedError("CLOCK fields 4 and 6 are at least 1")
        return cls(
            began_ns=_int(fields, 2, "CLOCK"),
            ended_ns=_int(fields, 3, "CLOCK"),
            min_agree=min_agree,
            max_drift_ns=_uint(fields, 5, "CLOCK"),
            local_precision_ns=precision,
            servers=servers,
            selection=selection,
            collector=_utf8(fields, 12, "CLOCK"),
            tool=_utf8(fields, 13, "CLOCK"),
            method=method,
        )

    def check(self) -> Selection:
        """Recompute the conclusions from the samples; TAMPERED where they differ."""
        found = select(self.servers, self.local_precision_ns, self.min_agree, self.max_drift_ns)
        for i, (got, want) in enumerate(zip(self.selection.servers, found.servers, strict=True)):
            if got != want:
                raise TamperedError(
                    f"CLOCK server {i} ({self.servers[i].name[:60]}): recorded as {got.result}, "
                    f"its samples make it {want.result}"
                    + ("" if got.result != want.result else " (with other figures)")
                )
        recorded = self.selection
        if (recorded.agreeing, recorded.offset_ns, recorded.low_ns, recorded.high_ns) != (
            found.agreeing,
            found.offset_ns,
            found.low_ns,
            found.high_ns,
        ):
            raise TamperedError("the CLOCK entry's combined offset or interval is not its samples'")
        if recorded.verdict != found.verdict:
            raise TamperedError(
                f"the CLOCK entry says {recorded.verdict}, its samples say {found.verdict}"
            )
        return found


def _server_body(server: ServerSamples, result: ServerResult) -> bytes:
    parts = [tlv(1, TlvType.UTF8, _text(server.name))]
    if server.address is not None:
        parts.append(tlv(2, TlvType.UTF8, _text(server.address)))
    parts += [
        tlv(3, TlvType.U64, _u64(server.port)),
        tlv(4, TlvType.UTF8, _text(result.result)),
    ]
    if result.chosen is not None and result.distance_ns is not None:
        parts += [
            tlv(5, TlvType.U64, _u64(result.chosen)),
            tlv(6, TlvType.U64, _u64(result.distance_ns)),
        ]
    for k, sample in enumerate(server.samples):
        parts.append(tlv(SAMPLE_BASE + k, TlvType.BYTES, _sample_body(sample)))
    return b"".join(parts)


def _sample_body(sample: Sample) -> bytes:
    r = sample.reply
    parts = [tlv(1, TlvType.I64, _i64(sample.sent_ns))]
    if r is not None:
        parts += [
            tlv(2, TlvType.I64, _i64(r.server_rx_ns)),
            tlv(3, TlvType.I64, _i64(r.server_tx_ns)),
        ]
    parts.append(tlv(4, TlvType.I64, _i64(sample.received_ns)))
    if r is not None:
        parts += [
            tlv(5, TlvType.U64, _u64(r.stratum)),
            tlv(6, TlvType.U64, _u64(r.leap)),
            tlv(7, TlvType.U64, _u64(r.root_delay_ns)),
            tlv(8, TlvType.U64, _u64(r.root_dispersion_ns)),
            tlv(9, TlvType.I64, _i64(r.precision)),
            tlv(10, TlvType.BYTES, r.refid),
        ]
    else:
        parts.append(tlv(11, TlvType.UTF8, _text(sample.failure or "timeout")))
    return b"".join(parts)


# -- strict parsing helpers ---------------------------------------------------------------------


def _fields(body: bytes, what: str) -> dict[int, tuple[TlvType, bytes]]:
    try:
        return {fid: (kind, value) for fid, kind, value in parse_tlv(body, 4096)}
    except MalformedError as exc:
        raise MalformedError(f"{what}: {exc.message}") from None


def _expect(
    present: set[int], required: frozenset[int], optional: frozenset[int], what: str
) -> None:
    unknown = present - required - optional
    if unknown:
        raise MalformedError(f"{what} has unknown field {min(unknown)}")
    missing = required - present
    if missing:
        raise MalformedError(f"{what} lacks field {min(missing)}")


def _int(fields: dict[int, tuple[TlvType, bytes]], fid: int, what: str) -> int:
    kind, value = fields[fid]
    if kind != TlvType.I64 or len(value) != 8:
        raise MalformedError(f"{what} field {fid} is not an 8-byte i64")
    return int.from_bytes(value, "big", signed=True)


def _uint(fields: dict[int, tuple[TlvType, bytes]], fid: int, what: str) -> int:
    kind, value = fields[fid]
    if kind != TlvType.U64 or len(value) != 8:
        raise MalformedError(f"{what} field {fid} is not an 8-byte u64")
    number = int.from_bytes(value, "big")
    if number >= 1 << 63:
        raise MalformedError(f"{what} field {fid} is 2^63 or more")
    return number


def _utf8(fields: dict[int, tuple[TlvType, bytes]], fid: int, what: str) -> str:
    kind, value = fields[fid]
    if kind != TlvType.UTF8:
        raise MalformedError(f"{what} field {fid} is not utf8")
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError:
        raise MalformedError(f"{what} field {fid} is not valid UTF-8") from None
    if not text or len(value) > 255 or any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F for c in text):
        raise MalformedError(f"{what} field {fid} is empty, over 255 bytes or has a control")
    return text


def _parse_server(body: bytes, fid: int) -> tuple[ServerSamples, ServerResult]:
    what = f"CLOCK server field {fid}"
    fields = _fields(body, what)
    samples_at = sorted(f for f in fields if f >= SAMPLE_BASE)
    _expect(set(fields) - set(samples_at), frozenset({1, 3, 4}), frozenset({2, 5, 6}), what)
    if not 1 <= len(samples_at) <= MAX_SAMPLES or samples_at != list(
        range(SAMPLE_BASE, SAMPLE_BASE + len(samples_at))
    ):
        raise MalformedError(
            f"{what} holds 1 to {MAX_SAMPLES} samples in fields {SAMPLE_BASE}, "
            f"{SAMPLE_BASE + 1}, … without gaps"
        )
    result = _utf8(fields, 4, what)
    if result not in RESULTS:
        raise MalformedError(f"{what}: result {result[:20]!r} is not one of {RESULTS}")
    port = _uint(fields, 3, what)
    if not 1 <= port <= 65535:
        raise MalformedError(f"{what}: port {port} is not 1-65535")
    if (5 in fields) != (6 in fields):
        raise MalformedError(f"{what}: fields 5 and 6 go together")
    samples = tuple(_parse_sample(fields[f][1], f"{what} sample {f}") for f in samples_at)
    chosen = _uint(fields, 5, what) if 5 in fields else None
    if chosen is not None and (chosen >= len(samples) or samples[chosen].reply is None):
        raise MalformedError(f"{what}: field 5 names no sample with a reply")
    server = ServerSamples(
        _utf8(fields, 1, what),
        _utf8(fields, 2, what) if 2 in fields else None,
        port,
        samples,
    )
    picked = samples[chosen] if chosen is not None else None
    recorded = ServerResult(
        result,
        chosen,
        picked.offset_ns if picked is not None else None,
        picked.delay_ns if picked is not None else None,
        _uint(fields, 6, what) if 6 in fields else None,
        picked.reply.leap if picked is not None and picked.reply is not None else None,
    )
    return server, recorded


def _parse_sample(body: bytes, what: str) -> Sample:
    fields = _fields(body, what)
    if 11 in fields:
        _expect(set(fields), frozenset({1, 4, 11}), frozenset(), what)
        failure = _utf8(fields, 11, what)
        if failure not in FAILURES:
            raise MalformedError(f"{what}: failure {failure[:20]!r} is not one of {FAILURES}")
        return Sample(_int(fields, 1, what), _int(fields, 4, what), None, failure)
    _expect(set(fields), frozenset({1, 4}) | _REPLY_FIELDS, frozenset(), what)
    refid_kind, refid = fields[10]
    if refid_kind != TlvType.BYTES or len(refid) != 4:
        raise MalformedError(f"{what} field 10 is not 4 bytes")
    stratum, leap, precision = (
        _uint(fields, 5, what),
        _uint(fields, 6, what),
        _int(fields, 9, what),
    )
    if stratum > 255 or leap > 3 or not -32 <= precision <= 0:
        raise MalformedError(f"{what}: stratum, leap indicator or precision out of range")
    reply = Reply(
        server_rx_ns=_int(fields, 2, what),
        server_tx_ns=_int(fields, 3, what),
        stratum=stratum,
        leap=leap,
        root_delay_ns=_uint(fields, 7, what),
        root_dispersion_ns=_uint(fields, 8, what),
        precision=precision,
        refid=refid,
    )
    return Sample(_int(fields, 1, what), _int(fields, 4, what), reply)


def clock_records(entries: Sequence[tuple[int, bytes]]) -> list[tuple[int, ClockRecord]]:
    """(leaf index, record) of every CLOCK entry among (index, log entry bytes)."""
    out = []
    for index, data in entries:
        parsed = logentries.parse_entry(data)
        if parsed.kind != EntryType.CLOCK:
            continue
        try:
            out.append((index, ClockRecord.from_body(parsed.body)))
        except MalformedError as exc:
            raise MalformedError(f"CLOCK leaf {index}: {exc.message}") from None
    return out
