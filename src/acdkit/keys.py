"""Ed25519 key pairs in C2SP signed-note form: key names, key IDs and verifier keys.

A verifier key ("vkey") is ``<name>+<hex key id>+<base64(type || public key)>``; the key ID
is the first four bytes of SHA-256(name || 0x0A || type || public key).  The type byte is
0x01 for a signer of notes (the sealer) and 0x04 for a witness that cosigns checkpoints
(C2SP tlog-cosignature), so one key can never pose as the other.  Private keys live
outside the evidence store, in files created with mode 0600.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Self, TypeVar

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from acdkit._files import read_bounded
from acdkit.errors import InputIOError, MalformedError, UsageError

log = logging.getLogger(__name__)

__all__ = [
    "ALG_COSIGNATURE_V1",
    "ALG_ED25519",
    "Signer",
    "Verifier",
    "WitnessSigner",
    "WitnessVerifier",
    "default_key_dir",
    "generate",
    "key_id",
    "load_signer",
    "load_witness_signer",
    "write_private_key",
]

ALG_ED25519 = 0x01
ALG_COSIGNATURE_V1 = 0x04  # C2SP tlog-cosignature/v1 over Ed25519


def key_id(name: str, public: bytes, alg: int = ALG_ED25519) -> bytes:
    return hashlib.sha256(name.encode() + b"\n" + bytes([alg]) + public).digest()[:4]


def _check_name(name: str) -> None:
    if not name or any(c in name for c in "+ \n") or not name.isprintable():
        raise UsageError(f"invalid key name {name!r}: no spaces, '+' or control characters")


@dataclass(frozen=True)
class Verifier:
    """The public half of a note signer; `WitnessVerifier` is the cosigning kind."""

    ALG: ClassVar[int] = ALG_ED25519
    ROLE: ClassVar[str] = "signing"  # sealer, root or custodian: keys that sign notes

    name: str
    public: bytes  # 32 raw bytes

    @property
    def key_id(self) -> bytes:
        return key_id(self.name, self.public, self.ALG)

    def vkey(self) -> str:
        blob = base64.b64encode(bytes([self.ALG]) + self.public).decode()
        return f"{self.name}+{self.key_id.hex()}+{blob}"

    def verify(self, signature: bytes, message: bytes) -> bool:
        try:
            Ed25519PublicKey.from_public_bytes(self.public).verify(signature, message)
        except (InvalidSignature, ValueError):
            return False
        return True

    @classmethod
    def parse(cls, vkey: str) -> Self:
        parts = vkey.strip().split("+", 2)  # base64 may itself contain "+"
        if len(parts) != 3:
            raise MalformedError("verifier key must be <name>+<hex id>+<base64 key>")
        name, hexid, blob = parts
        if not name or any(c.isspace() or ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0 for c in name):
            raise MalformedError("verifier key name is empty or holds blanks or control characters")
        try:
            name.encode()
        except UnicodeEncodeError:  # argv carries undecodable bytes as surrogates
            raise MalformedError("verifier key name is not UTF-8 text") from None
        try:
            raw = base64.b64decode(blob, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise MalformedError("verifier key is not valid base64") from exc
        if base64.b64encode(raw).decode() != blob:
            raise MalformedError("verifier key is not canonical base64")
        if len(raw) == 33 and raw[0] in _ROLES and raw[0] != cls.ALG:
            raise MalformedError(
                f"verifier key {name!r} is a {_ROLES[raw[0]]} key, not a {cls.ROLE} key"
            )
        if len(raw) != 33 or raw[0] != cls.ALG:
            raise MalformedError(f"verifier key is not an Ed25519 {cls.ROLE} key")
        verifier = cls(name, raw[1:])
        if hexid != verifier.key_id.hex():
            raise MalformedError("verifier key ID does not match its name and key")
        return verifier


@dataclass(frozen=True)
class WitnessVerifier(Verifier):
    """A witness's public key (vkey type 0x04): it checks cosignatures, never notes.

    `WitnessVerifier.parse` reads the vkey lines of ``--witness`` and of a trust policy.
    """

    ALG: ClassVar[int] = ALG_COSIGNATURE_V1
    ROLE: ClassVar[str] = "witness"


_ROLES = {ALG_ED25519: "signing", ALG_COSIGNATURE_V1: "witness"}


class Signer:
    """An Ed25519 private key with its note name. Never printed, never logged."""

    VERIFIER: ClassVar[type[Verifier]] = Verifier

    def __init__(self, name: str, private: Ed25519PrivateKey) -> None:
        _check_name(name)
        self.name = name
        self._private = private
        public = private.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        self.verifier = self.VERIFIER(name, public)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, key_id={self.verifier.key_id.hex()})"

    def sign(self, message: bytes) -> bytes:
        return self._private.sign(message)

    def private_pem(self) -> bytes:
        return self._private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )


class WitnessSigner(Signer):
    """A witness's private key: it signs cosignatures (acdkit.cosignature), not notes."""

    VERIFIER: ClassVar[type[Verifier]] = WitnessVerifier
    verifier: WitnessVerifier


def generate(name: str) -> Signer:
    return Signer(name, Ed25519PrivateKey.generate())


def default_key_dir() -> Path:
    """Per-user key directory: $ACDKIT_KEY_DIR, else $XDG_CONFIG_HOME/acdkit/keys."""
    env = os.environ.get("ACDKIT_KEY_DIR")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "acdkit" / "keys"


ROLES = ("sealer", "root", "custodian")  # keys that sign notes (type 0x01)
WITNESS_ROLE = "witness"  # a key that cosigns checkpoints (type 0x04)
ALL_ROLES = (*ROLES, WITNESS_ROLE)


def write_private_key(signer: Signer, path: Path, role: str = "sealer") -> None:
    """Create ``path`` with mode 0600; refuse to overwrite an existing key."""
    # a key file written once is name + PEM; the name lets `load_signer` rebuild the vkey
    allowed = (WITNESS_ROLE,) if isinstance(signer, WitnessSigner) else ROLES
    if role not in allowed:
        raise ValueError(role)
    data = _key_header(role) + signer.name.encode() + b"\n" + signer.private_pem()
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as exc:
        raise InputIOError(f"cannot create key directory {path.parent}: {exc.strerror}") from exc
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError as exc:
        raise UsageError(f"key file {path} already exists; refusing to overwrite it") from exc
    except OSError as exc:
        raise InputIOError(f"cannot create key file {path}: {exc.strerror}") from exc
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


KEY_FILE_LIMIT = 16 << 10  # a key file is a name line and a PEM block: a few hundred bytes


def _key_header(role: str) -> bytes:
    return f"# acdkit {role} key for ".encode()


def load_signer(path: Path) -> Signer:
    """Read a key written by `write_private_key`; the key bytes never appear in errors."""
    hint = "pass --key, set ACDKIT_SEALER_KEY, or run `acdkit init` to create one"
    return _load(path, Signer, "sealer", hint)


def load_witness_signer(path: Path) -> WitnessSigner:
    """Read a witness key written by `acdkit witness init`."""
    hint = "create one with `acdkit witness init --key PATH`"
    return _load(path, WitnessSigner, WITNESS_ROLE, hint)


_S = TypeVar("_S", bound=Signer)


def _load(path: Path, kind: type[_S], role: str, hint: str) -> _S:
    if not path.exists():
        raise UsageError(f"{role} key {path} not found", hint=hint)
    # bounded: `--key /dev/zero` must not fill the memory
    data = read_bounded(path, KEY_FILE_LIMIT, f"{role} key")
    first, _, pem = data.partition(b"\n")
    roles = (WITNESS_ROLE,) if issubclass(kind, WitnessSigner) else ROLES
    found = next((r for r in roles if first.startswith(_key_header(r))), None)
    if found is None:
        other = next((r for r in ALL_ROLES if first.startswith(_key_header(r))), None)
        what = f"a {other} key, not a {role} key" if other else "not an acdkit key file"
        raise MalformedError(f"{path} is {what}")
    try:
        private = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError):
        raise MalformedError(f"{path} does not hold a readable Ed25519 private key") from None
    if not isinstance(private, Ed25519PrivateKey):
        raise MalformedError(f"{path} does not hold an Ed25519 private key")
    _warn_if_readable_by_others(path, found)
    return kind(first[len(_key_header(found)) :].decode(errors="replace"), private)


def _warn_if_readable_by_others(path: Path, role: str) -> None:
    """acdkit writes private keys 0600; one that group or others may read was copied or
    unpacked carelessly.  It still works (refusing would stop an incident's logging), but
    the user is told, with the path and never the key."""
    try:
        mode = path.stat().st_mode & 0o777
    except OSError:
        return
    if mode & 0o077:
        log.warning(
            "%s key %s can be read or written by others (mode %04o): `chmod 600 %s`",
            role, path, mode, path,
        )  # fmt: skip
