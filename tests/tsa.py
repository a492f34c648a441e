"""Real RFC 3161 time-stamp authorities on 127.0.0.1, for the anchoring tests.

Each TSA has its own key and certificate issued by a test CA made here at test time; it
answers RFC 3161 over HTTP (POST application/timestamp-query, reply
application/timestamp-reply) from a small http.server on a random port.  Replies are
signed by `openssl ts -reply` with a TSA configuration file written at start-up.

`openssl ts -reply` refuses a signer certificate whose extended key usage is missing or
not critical (X509_PURPOSE_TIMESTAMP_SIGN), so a TSA given such a certificate signs its
TSTInfo with `openssl cms -sign` instead: the CMS signature is just as real, and the
certificate is what the verifier must refuse.
"""

from __future__ import annotations

import datetime as dt
import subprocess
import tempfile
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

TSTINFO_OID = "1.2.840.113549.1.9.16.1.4"  # id-ct-TSTInfo
DEFAULT_POLICY = "1.3.6.1.4.1.99999.1.1"
_PEM = serialization.Encoding.PEM


def _name(cn: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "acdkit tests"),
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
        ]
    )


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


@dataclass
class LocalCa:
    name: str
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey
    pem: Path  # the root certificate, as a verifier pins it

    @classmethod
    def create(cls, directory: Path, name: str) -> LocalCa:
        key = ec.generate_private_key(ec.SECP256R1())
        now = _now()
        cert = (
            x509.CertificateBuilder()
            .subject_name(_name(name))
            .issuer_name(_name(name))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(False, False, False, False, False, True, True, False, False),
                critical=True,
            )
            .sign(key, hashes.SHA256())
        )
        directory.mkdir(parents=True, exist_ok=True)
        pem = directory / f"{name}.root.pem"
        pem.write_bytes(cert.public_bytes(_PEM))
        return cls(name, cert, key, pem)

    def issue(
        self, directory: Path, cn: str, eku: str = "critical", lifetime: dt.timedelta | None = None
    ) -> tuple[Path, Path, x509.Certificate]:
        """A TSA certificate and key (PEM files); ``eku``: critical, noncritical or none."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = _now()
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(cn))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(hours=1))
            .not_valid_after(now + (lifetime or dt.timedelta(days=7)))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(True, True, False, False, False, False, False, False, False),
                critical=True,
            )
        )
        if eku != "none":
            usage = x509.ExtendedKeyUsage([ExtendedKeyUsageOID.TIME_STAMPING])
            builder = builder.add_extension(usage, critical=eku == "critical")
        cert = builder.sign(self.key, hashes.SHA256())
        cert_path, key_path = directory / f"{cn}.crt", directory / f"{cn}.key"
        cert_path.write_bytes(cert.public_bytes(_PEM))
        key_path.write_bytes(
            key.private_bytes(_PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        )
        key_path.chmod(0o600)
        return cert_path, key_path, cert


# -- a little DER, for the TSA that signs with `openssl cms` ----------------------------------


def _der(tag: int, body: bytes) -> bytes:
    n = len(body)
    if n < 0x80:
        return bytes([tag, n]) + body
    size = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(size)]) + size + body


def _der_int(value: int) -> bytes:
    return _der(0x02, value.to_bytes(value.bit_length() // 8 + 1, "big"))


def _der_oid(dotted: str) -> bytes:
    arcs = [int(a) for a in dotted.split(".")]
    out = bytearray([40 * arcs[0] + arcs[1]])
    for arc in arcs[2:]:
        chunk = [arc & 0x7F]
        while arc > 0x7F:
            arc >>= 7
            chunk.append(0x80 | (arc & 0x7F))
        out += bytes(reversed(chunk))
    return _der(0x06, bytes(out))


def _children(data: bytes) -> list[tuple[int, bytes]]:
    """(tag, whole TLV) of each element inside one DER SEQUENCE."""

    def header(pos: int) -> tuple[int, int, int]:
        tag, first = data[pos], data[pos + 1]
        if first < 0x80:
            return tag, pos + 2, pos + 2 + first
        size = int.from_bytes(data[pos + 2 : pos + 2 + (first & 0x7F)], "big")
        start = pos + 2 + (first & 0x7F)
        return tag, start, start + size

    _tag, pos, end = header(0)
    out = []
    while pos < end:
        tag, _start, stop = header(pos)
        out.append((tag, data[pos:stop]))
        pos = stop
    return out


def _tst_info(query: bytes, policy: str, serial: int) -> bytes:
    """TSTInfo (RFC 3161 §2.4.2) answering a TimeStampReq: its imprint and nonce."""
    parts = _children(query)
    imprint = parts[1][1]
    nonce = next((tlv for tag, tlv in parts[2:] if tag == 0x02), b"")
    gen_time = _der(0x18, _now().strftime("%Y%m%d%H%M%SZ").encode())
    accuracy = _der(0x30, _der_int(1))
    body = _der_int(1) + _der_oid(policy) + imprint + _der_int(serial) + gen_time
    return _der(0x30, body + accuracy + nonce)


# -- the authority ------------------------------------------------------------------------------


_CONFIG = """\
[ tsa ]
default_tsa = tsa_config

[ tsa_config ]
serial = {serial}
signer_digest = sha256
default_policy = {policy}
other_policies = 1.3.6.1.4.1.99999.1.2
digests = sha256, sha384, sha512
accuracy = secs:1
ordering = no
tsa_name = yes
ess_cert_id_alg = sha256
"""


class LocalTsa:
    """One time-stamp authority; ``mode`` may be switched to ``http500`` or ``garbage``."""

    def __init__(
        self,
        directory: Path,
        ca: LocalCa,
        name: str,
        eku: str = "critical",
        lifetime: dt.timedelta | None = None,
        policy: str = DEFAULT_POLICY,
    ) -> None:
        self.name, self.ca, self.policy, self.mode = name, ca, policy, "ok"
        self.dir = directory / name
        self.dir.mkdir(parents=True)
        self.cert_path, self.key_path, self.cert = ca.issue(self.dir, name, eku, lifetime)
        self.use_cms = eku != "critical"
        (self.dir / "serial").write_text("01\n")
        self.config = self.dir / "tsa.cnf"
        self.config.write_text(_CONFIG.format(serial=self.dir / "serial", policy=policy))
        self.requests = 0
        self._lock = threading.Lock()
        self._serial = 1
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/tsr"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(5)

    def sign(self, query: bytes) -> bytes:
        """The TimeStampResp for one query, made by openssl."""
        with self._lock, tempfile.TemporaryDirectory(dir=self.dir) as tmp:
            work = Path(tmp)
            (work / "query.tsq").write_bytes(query)
            if self.use_cms:
                return self._sign_cms(work, query)
            subprocess.run(
                ["openssl", "ts", "-reply", "-config", str(self.config),
                 "-queryfile", str(work / "query.tsq"), "-signer", str(self.cert_path),
                 "-inkey", str(self.key_path), "-out", str(work / "reply.tsr")],
                check=True, capture_output=True, timeout=30,
            )  # fmt: skip
            return (work / "reply.tsr").read_bytes()

    def _sign_cms(self, work: Path, query: bytes) -> bytes:
        self._serial += 1
        (work / "tstinfo.der").write_bytes(_tst_info(query, self.policy, self._serial))
        subprocess.run(
            ["openssl", "cms", "-sign", "-binary", "-nodetach", "-outform", "DER",
             "-econtent_type", TSTINFO_OID, "-md", "sha256", "-nosmimecap",
             "-signer", str(self.cert_path), "-inkey", str(self.key_path),
             "-in", str(work / "tstinfo.der"), "-out", str(work / "token.der")],
            check=True, capture_output=True, timeout=30,
        )  # fmt: skip
        granted = _der(0x30, _der_int(0))
        return _der(0x30, granted + (work / "token.der").read_bytes())

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        tsa = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                tsa.requests += 1
                length = int(self.headers.get("Content-Length", "0"))
                query = self.rfile.read(min(length, 1 << 16))
                if tsa.mode == "http500":
                    self.send_error(500, "time-stamping is down")
                    return
                if tsa.mode == "garbage":
                    body = b"<html>this is not a time-stamp reply</html>"
                else:
                    body = tsa.sign(query)
                self.send_response(200)
                self.send_header("Content-Type", "application/timestamp-reply")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        return Handler
