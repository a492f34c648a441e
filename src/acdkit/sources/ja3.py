"""JA3 and JA3S fingerprint strings, built from the values of a ClientHello or ServerHello.

Written from the JA3 description (salesforce/ja3 README): decimal values joined with ``-``
inside a field and ``,`` between fields, in the order the hello sent them; GREASE values
(RFC 8701: 0x0a0a, 0x1a1a, ... 0xfafa) are left out of every list; every other extension,
padding and unknown ones included, is kept; a list that is absent or empty stays empty, so
its commas remain.  The fingerprint is the MD5 of the string (computed in bulk by the
format's projection query).  The version is the hello's legacy version field: a TLS 1.3
client or server shows 771, not the value it negotiates in ``supported_versions``.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["is_grease", "ja3_string", "ja3s_string"]


def is_grease(value: int) -> bool:
    """True for the sixteen reserved GREASE values 0x0a0a, 0x1a1a, ..., 0xfafa."""
    return value & 0x0F0F == 0x0A0A and value >> 8 == value & 0xFF


def _field(values: Iterable[int]) -> str:
    return "-".join(str(v) for v in values if not is_grease(v))


def ja3_string(
    version: int,
    ciphers: Iterable[int],
    extensions: Iterable[int],
    groups: Iterable[int],
    point_formats: Iterable[int],
) -> str:
    """``SSLVersion,Ciphers,Extensions,EllipticCurves,EllipticCurvePointFormats``."""
    fields = [str(version), _field(ciphers), _field(extensions), _field(groups)]
    return ",".join([*fields, _field(point_formats)])


def ja3s_string(version: int, cipher: int, extensions: Iterable[int]) -> str:
    """``SSLVersion,Cipher,Extensions`` of a ServerHello."""
    return f"{version},{cipher},{_field(extensions)}"
