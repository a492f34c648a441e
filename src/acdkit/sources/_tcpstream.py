"""One direction of a TCP connection put back in sequence order, within a fixed byte budget.

Only the start of a stream matters to acdkit (a TLS hello, DNS messages over TCP), so a
stream keeps at most ``limit`` bytes that its consumer has not taken yet.  Segments that
arrive ahead of a gap wait (a few, within the same budget); retransmitted bytes are
dropped; sequence numbers wrap modulo 2**32 (RFC 9293 §3.4).
"""

from __future__ import annotations

__all__ = ["Stream"]

_MOD = 1 << 32
_HALF = 1 << 31
MAX_WAITING = 8  # out-of-order segments kept per stream


class Stream:
    """In-order bytes of one direction, starting at the segment it was created with."""

    __slots__ = ("buf", "full", "limit", "next_seq", "waiting", "waiting_bytes")

    def __init__(self, seq: int, data: bytes, limit: int) -> None:
        self.buf = bytearray()
        self.full = False  # the budget ran out: the consumer should give up on this stream
        self.limit = limit
        self.next_seq = seq % _MOD
        self.waiting: dict[int, bytes] = {}
        self.waiting_bytes = 0
        self._append(data)

    def add(self, seq: int, data: bytes) -> bool:
        """Take one segment's payload; True if in-order bytes were added."""
        if not data or self.full:
            return False
        ahead = (seq - self.next_seq) % _MOD
        if ahead >= _HALF:  # starts before what we have: keep only the new tail
            behind = _MOD - ahead
            if behind >= len(data):
                return False
            data = data[behind:]
        elif ahead:
            self._wait(seq % _MOD, data)
            return False
        self._append(data)
        self._drain()
        return True

    def consume(self, count: int) -> None:
        """Forget the first ``count`` buffered bytes (the consumer has parsed them)."""
        del self.buf[:count]

    def _append(self, data: bytes) -> None:
        room = self.limit - len(self.buf)
        if len(data) > room:
            self.full = True
            data = data[:room]
        self.buf += data
        self.next_seq = (self.next_seq + len(data)) % _MOD

    def _wait(self, seq: int, data: bytes) -> None:
        if len(self.waiting) >= MAX_WAITING or self.waiting_bytes + len(data) > self.limit:
            return  # the gap stays; a retransmission may still fill it
        if seq not in self.waiting:
            self.waiting[seq] = data
            self.waiting_bytes += len(data)

    def _drain(self) -> None:
        while self.waiting and not self.full:
            for seq in self.waiting:
                ahead = (seq - self.next_seq) % _MOD
                if ahead == 0 or ahead >= _HALF:
                    break
            else:
                return
            data = self.waiting.pop(seq)
            self.waiting_bytes -= len(data)
            behind = 0 if ahead == 0 else _MOD - ahead
            if behind < len(data):
                self._append(data[behind:])
