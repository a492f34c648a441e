"""RFC 3161 time-stamp authorities: whom to trust, how to ask, how to check a reply.

``TsaTrust`` is the single input of trust for anchors: the roots pinned for one TSA name
and, optionally, the policy OID its tokens must carry.  The CLI builds it from
``--tsa-root``/``--tsa-policy``; a root-signed trust policy builds it from its ``tsa``
lines.  Nothing in a store or a bundle is ever taken as a trust anchor.

Tokens are parsed and verified with rfc3161-client, which does no I/O; HTTP is ours
(RFC 3161 §3.4: POST application/timestamp-query, answer application/timestamp-reply).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from acdkit._files import KIB, read_bounded
from acdkit.errors import MalformedError, TamperedError, UsageError

if TYPE_CHECKING:
    import rfc3161_client as tsp
    from cryptography import x509

__all__ = [
    "MAX_REPLY_BYTES",
    "TokenFacts",
    "Transport",
    "TsaEndpoint",
    "TsaError",
    "TsaTrust",
    "check_token",
    "http_post",
    "load_roots",
    "new_request",
]

MAX_REPLY_BYTES = 64 * KIB  # a token with its TSA certificate is a few KiB
MAX_PEM_BYTES = 1024 * KIB
SHA256_OID = "2.16.840.1.101.3.4.2.1"
# as in the trust policy; in file names it follows the 20-digit size and its dot
NAME_RE = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
_OID_RE = re.compile(r"[0-2](\.(0|[1-9][0-9]*))+")

# (url, DER query, timeout in seconds) -> DER reply; raises TsaError
Transport = Callable[[str, bytes, float], bytes]


def check_name(name: str) -> str:
    if not NAME_RE.fullmatch(name):
        raise UsageError(
            f"TSA name {name[:70]!r} must be 1-64 lower-case letters, digits, '.', '-' or '_'"
        )
    return name


def check_oid(oid: str) -> str:
    if not _OID_RE.fullmatch(oid) or len(oid) > 200:
        raise UsageError(f"{oid[:60]!r} is not a dotted object identifier (like 1.2.3.4)")
    return oid


@dataclass(frozen=True)
class TsaTrust:
    """What makes a token from the TSA called ``name`` acceptable."""

    name: str
    roots: tuple[bytes, ...]  # DER certificates pinned as trust anchors
    policy_oid: str | None = None

    def __post_init__(self) -> None:
        check_name(self.name)
        if self.policy_oid is not None:
            check_oid(self.policy_oid)

    def certificates(self) -> list[x509.Certificate]:
        from cryptography import x509

        try:
            return [x509.load_der_x509_certificate(der) for der in self.roots]
        except ValueError:
            raise UsageError(
                f"a root pinned for TSA {self.name} is not a DER certificate"
            ) from None


@dataclass(frozen=True)
class TsaEndpoint:
    """Where to ask the TSA called ``name`` for tokens."""

    name: str
    url: str

    def __post_init__(self) -> None:
        check_name(self.name)
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise UsageError(
                f"TSA {self.name}: {self.url[:80]!r} is not an http:// or https:// URL"
            )
        if parts.username or parts.password:
            raise UsageError(f"TSA {self.name}: put no user name or password in the URL")


class TsaError(Exception):
    """The TSA could not be reached or gave no usable reply; ``kind`` says which."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind  # unreachable | http | bad-reply | rejected | refused
        self.message = message


def load_roots(path: Path) -> tuple[bytes, ...]:
    """Every certificate of a PEM file, as DER; a clear error for anything else."""
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    data = read_bounded(path, MAX_PEM_BYTES, "TSA root file")
    try:
        certs = x509.load_pem_x509_certificates(data)
    except ValueError:
        raise UsageError(
            f"{path} holds no PEM certificate (expected -----BEGIN CERTIFICATE)"
        ) from None
    return tuple(c.public_bytes(Encoding.DER) for c in certs)


def http_post(url: str, query: bytes, timeout: float) -> bytes:
    """POST a time-stamp query; the reply body, read up to MAX_REPLY_BYTES.

    ``timeout`` bounds the whole exchange, not each socket read: a TSA that answers a byte
    at a time would otherwise hold a cron run for hours.  The request runs in a daemon
    thread that is abandoned at the deadline (its socket times out on its own).
    """
    if urlsplit(url).scheme not in ("http", "https"):
        raise TsaError("unreachable", f"{url[:80]!r} is not an http(s) URL")
    import threading

    outcome: list[bytes | TsaError] = []

    def run() -> None:
        try:
            outcome.append(_http_post(url, query, timeout))
        except TsaError as exc:
            outcome.append(exc)
        except Exception as exc:  # urllib's own refusals (a port out of range, ...)
            outcome.append(TsaError("unreachable", f"cannot reach {url}: {type(exc).__name__}"))

    worker = threading.Thread(target=run, name="tsa-request", daemon=True)
    worker.start()
    worker.join(timeout)
    if not outcome:
        raise TsaError("unreachable", f"no complete reply from {url} within {timeout:g} s")
    result = outcome[0]
    if isinstance(result, TsaError):
        raise result
    return result


def _http_post(url: str, query: bytes, timeout: float) -> bytes:
    # urllib and http.client load only here: `verify` and `seal` never connect
    import urllib.error
    import urllib.request

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: Any, **kwargs: Any) -> None:
            return None  # a redirected POST would be re-sent as a GET elsewhere: refuse

    request = urllib.request.Request(  # noqa: S310 (scheme checked above)
        url,
        data=query,
        method="POST",
        headers={"Content-Type": "application/timestamp-query"},
    )
    opener = urllib.request.build_opener(NoRedirect)
    try:
        with opener.open(request, timeout=timeout) as reply:
            body: bytes = reply.read(MAX_REPLY_BYTES + 1)
    except urllib.error.HTTPError as exc:
        raise TsaError("http", f"HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise TsaError("unreachable", f"cannot reach {url}: {reason}") from None
    if len(body) > MAX_REPLY_BYTES:
        raise TsaError("bad-reply", f"reply is larger than {MAX_REPLY_BYTES:,} bytes")
    return body


def new_request(imprint_data: bytes) -> tsp.TimeStampRequest:
    """A SHA-256 query with a fresh random 64-bit nonce and certReq set."""
    import rfc3161_client as tsp

    builder = tsp.TimestampRequestBuilder().data(imprint_data)
    builder = builder.hash_algorithm(tsp.HashAlgorithm.SHA256)
    return builder.nonce(nonce=True).cert_request(cert_request=True).build()


@dataclass(frozen=True)
class TokenFacts:
    """What a verified token says."""

    gen_time_ns: int
    policy_oid: str
    accuracy_ns: int | None
    serial: int
    nonce: int | None
    signer: str  # subject of the TSA certificate, for people


def _ns(moment: datetime) -> int:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    delta = moment - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 10**9 + delta.microseconds * 1000


def _accuracy_ns(info: Any) -> int | None:
    try:
        acc = info.accuracy
    except ValueError:
        return None
    if acc is None:
        return None
    return (
        int(acc.seconds or 0) * 10**9 + int(acc.millis or 0) * 10**6 + int(acc.micros or 0) * 1000
    )


def decode(reply: bytes) -> tsp.TimeStampResponse:
    import rfc3161_client as tsp

    if len(reply) > MAX_REPLY_BYTES:
        raise MalformedError(f"time-stamp reply is larger than {MAX_REPLY_BYTES:,} bytes")
    try:
        return tsp.decode_timestamp_response(reply)
    except ValueError as exc:
        raise MalformedError(f"not an RFC 3161 time-stamp reply ({str(exc)[:120]})") from None


def check_token(
    reply: bytes, imprint: bytes, trust: TsaTrust, nonce: int | None = None
) -> TokenFacts:
    """Verify a TimeStampResp: status granted, CMS signature, chain to a pinned root valid
    at genTime, critical EKU timeStamping, policy OID (if pinned), nonce (if given),
    SHA-256 imprint equal to ``imprint``.  MALFORMED if it does not parse, else TAMPERED.
    """
    import rfc3161_client as tsp
    from cryptography import x509

    response = decode(reply)
    if response.status != tsp.PKIStatus.GRANTED:
        text = "; ".join(response.status_string or [])[:200]
        raise TamperedError(
            f"TSA {trust.name} did not grant the time-stamp: status "
            f"{response.status} {text}".rstrip()
        )
    try:
        info = response.tst_info
        algorithm = info.message_imprint.hash_algorithm
    except ValueError as exc:
        raise MalformedError(f"time-stamp token cannot be read ({str(exc)[:120]})") from None
    # rfc3161-client's verify() compares digests only: the algorithm is ours to check
    if algorithm.dotted_string != SHA256_OID:
        raise TamperedError(f"token of TSA {trust.name} is not over a SHA-256 imprint")
    _check_eku(response, trust.name)
    builder = tsp.VerifierBuilder()
    for cert in trust.certificates():
        builder = builder.add_root_certificate(cert)
    if trust.policy_oid is not None:
        builder = builder.policy_id(x509.ObjectIdentifier(trust.policy_oid))
    if nonce is not None:
        builder = builder.nonce(nonce)
    try:
        builder.build().verify(response, imprint)
    except tsp.VerificationError as exc:
        raise TamperedError(f"token of TSA {trust.name} does not verify: {_short(exc)}") from None
    except ValueError as exc:
        raise MalformedError(
            f"token of TSA {trust.name} cannot be checked: {_short(exc)}"
        ) from None
    return TokenFacts(
        gen_time_ns=_ns(info.gen_time),
        policy_oid=info.policy.dotted_string,
        accuracy_ns=_accuracy_ns(info),
        serial=int(info.serial_number),
        nonce=info.nonce,
        signer=_signer(response),
    )


def _short(exc: Exception) -> str:
    """rfc3161-client's message, with OpenSSL's error stack cut to its telling part."""
    text = str(exc)
    head, _, stack = text.partition(": ErrorStack(")
    # a chain problem is told in a "Verify error: ..." datum, others by the last reason
    details = re.findall(r'data: "(Verify error: [^"]{1,120})"', stack) or re.findall(
        r'reason: "([^"]{1,120})"', stack
    )
    return f"{head[:160]} ({details[-1]})" if details else head[:200]


def _signer_cert(response: tsp.TimeStampResponse) -> x509.Certificate | None:
    """The embedded certificate named by the (single) SignerInfo, if any."""
    from cryptography import x509

    try:
        infos = list(response.signed_data.signer_infos)
        certs = [x509.load_der_x509_certificate(d) for d in response.signed_data.certificates]
    except ValueError:
        return None
    if len(infos) != 1:
        return None
    for cert in certs:
        if cert.issuer == infos[0].issuer and cert.serial_number == infos[0].serial_number:
            return cert
    return None


def _check_eku(response: tsp.TimeStampResponse, name: str) -> None:
    """RFC 3161 §2.3: the TSA certificate's only EKU is timeStamping, marked critical.

    rfc3161-client checks this too (and OpenSSL's chain check refuses an unsuitable
    purpose first); checking it here says plainly what is wrong with the certificate.
    """
    from cryptography import x509
    from cryptography.x509.oid import ExtendedKeyUsageOID

    cert = _signer_cert(response)
    if cert is None:
        raise TamperedError(f"token of TSA {name} carries no certificate of its signer")
    try:
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    except x509.ExtensionNotFound:
        raise TamperedError(
            f"the certificate of TSA {name} has no extended key usage (timeStamping required)"
        ) from None
    if not eku.critical:
        raise TamperedError(f"the extended key usage of TSA {name}'s certificate is not critical")
    if list(eku.value) != [ExtendedKeyUsageOID.TIME_STAMPING]:
        raise TamperedError(f"the certificate of TSA {name} is not for time-stamping alone (EKU)")


def _signer(response: tsp.TimeStampResponse) -> str:
    cert = _signer_cert(response)
    return cert.subject.rfc4514_string()[:200] if cert is not None else "?"


def trust_map(trusts: list[TsaTrust]) -> Mapping[str, TsaTrust]:
    out: dict[str, TsaTrust] = {}
    for trust in trusts:
        if trust.name in out:
            raise UsageError(f"TSA {trust.name} is configured twice")
        out[trust.name] = trust
    return out
