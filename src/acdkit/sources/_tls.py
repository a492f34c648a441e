"""Find the first TLS handshake message at the start of a reassembled TCP stream.

The TLS record layer (RFC 8446 §5.1) may split one handshake message over several records;
this joins the fragments of the first message and hands it, whole, to the packet library's
hello dissector.  Only the framing is read here (type, version, lengths), never the content.
"""

from __future__ import annotations

__all__ = ["HELLO_LIMIT", "first_handshake", "starts_hello"]

HANDSHAKE = 22
CLIENT_HELLO, SERVER_HELLO = 1, 2
# a hello is a few hundred bytes, post-quantum key shares bring it near 2 KiB; beyond this a
# stream is not waited for any longer
HELLO_LIMIT = 20 << 10


def starts_hello(data: bytes) -> bool:
    """Whether a segment's payload opens with a handshake record holding a Client/ServerHello."""
    return (
        len(data) >= 6
        and data[0] == HANDSHAKE
        and data[1] == 3
        and data[2] <= 4
        and data[5] in (CLIENT_HELLO, SERVER_HELLO)
    )


def first_handshake(buf: bytes | bytearray) -> tuple[int, bytes] | bool | None:
    """(message type, whole message) once it is complete; None: wait for more; False: give up."""
    message = bytearray()
    pos = 0
    while pos + 5 <= len(buf):
        if buf[pos] != HANDSHAKE or buf[pos + 1] != 3:
            return False
        length = int.from_bytes(buf[pos + 3 : pos + 5], "big")
        message += buf[pos + 5 : min(pos + 5 + length, len(buf))]
        if len(message) >= 4:
            if message[0] not in (CLIENT_HELLO, SERVER_HELLO):
                return False
            need = 4 + int.from_bytes(message[1:4], "big")
            if need > HELLO_LIMIT:
                return False
            if len(message) >= need:
                return message[0], bytes(message[:need])
        if pos + 5 + length > len(buf):
            return None
        pos += 5 + length
    return None
