"""Keyed command signatures (scheme ``cs1``): a command line's shape, never its text.

A command line is normalized first (executable case, quotes, NT prefixes, temporary and
user-profile paths, GUIDs, hex values, numbers, blanks: docs/evidence-format.md §14), so the
same command run on two hosts gives the same text; that text is then signed with HMAC-SHA256
under the organization's key.  Without the key a signature cannot be read back, nor can a
guessed command line be tested against it.  The key is per organization, lives in the user
key directory (or wherever ``--sig-key`` points), never in a store, and is never printed:
only its key ID, a hash under a domain-separation string, goes into the ledger and into each
signature, so that signatures made under different keys are never compared by mistake.

Both steps run over a column: normalization is one pass of Arrow regex kernels over the
distinct command lines, and the HMAC is computed once per distinct normalized text.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from acdkit._files import KIB, read_bounded
from acdkit.errors import InputIOError, MalformedError, UsageError

__all__ = [
    "KEY_FILE_NAME",
    "SCHEME",
    "KeySource",
    "SigKey",
    "create_key",
    "default_key_path",
    "inside_store",
    "load_key",
    "normalize",
    "sign_column",
]

SCHEME = "cs1"
KEY_BYTES = 32
KEY_ID_BYTES = 8
MAC_BYTES = 16  # HMAC-SHA256 truncated to 128 bits (RFC 2104 §5 allows half the output)
KEY_ID_DOMAIN = b"acdkit/cs1/key-id\n"
MAC_DOMAIN = b"acdkit/cs1\n"
KEY_FILE_NAME = "cmdsig.key"
KEY_HEADER = b"# acdkit command-signature key (cs1)"
STORE_MARKER = "acdkit-store.json"  # the file that makes a directory an evidence store


class SigKey:
    """The organization's signature key. Never printed, never logged, never stored."""

    def __init__(self, secret: bytes) -> None:
        if len(secret) != KEY_BYTES:
            raise ValueError("a command-signature key is 32 bytes")
        self._secret = secret
        self.key_id = hashlib.sha256(KEY_ID_DOMAIN + secret).digest()[:KEY_ID_BYTES].hex()

    def __repr__(self) -> str:
        return f"SigKey(key_id={self.key_id})"

    def sign(self, normalized: str) -> str:
        """The signature text of one normalized command line."""
        mac = hmac.new(self._secret, MAC_DOMAIN + normalized.encode(), hashlib.sha256)
        return f"{SCHEME}:{self.key_id}:{mac.digest()[:MAC_BYTES].hex()}"

    def file_bytes(self) -> bytes:
        """The key file's content (the secret itself: write it only to a 0600 file)."""
        return KEY_HEADER + b"\n" + self._secret.hex().encode() + b"\n"


def default_key_path() -> Path:
    """Where the organization key is looked for, and created, by default."""
    from acdkit.keys import default_key_dir  # local: keys pulls in cryptography

    return default_key_dir() / KEY_FILE_NAME


def inside_store(path: Path) -> Path | None:
    """The evidence store that ``path`` lies in, if any (a key must never be kept there)."""
    resolved = path.resolve()
    for parent in resolved.parents:
        if (parent / STORE_MARKER).is_file():
            return parent
    return None


def _refuse_store(path: Path) -> None:
    store = inside_store(path)
    if store is not None:
        raise UsageError(
            f"the command-signature key {path} lies inside the evidence store {store}",
            hint="keep the key outside every store (the default is the user key directory)",
        )


def load_key(path: Path) -> SigKey:
    """Read a key file written by `create_key`; its bytes never appear in an error."""
    _refuse_store(path)
    if not path.exists():
        raise UsageError(
            f"command-signature key {path} not found",
            hint="copy the organization's key there, or create one with `acdkit keys sig-new`",
        )
    data = read_bounded(path, 4 * KIB, "command-signature key")
    header, _, rest = data.partition(b"\n")
    if header.rstrip(b"\r") != KEY_HEADER:
        raise MalformedError(f"{path} is not an acdkit command-signature key file")
    text = rest.strip()
    try:
        secret = bytes.fromhex(text.decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        secret = b""
    if len(secret) != KEY_BYTES or len(text) != 2 * KEY_BYTES:
        raise MalformedError(f"{path} does not hold a 32-byte key in hex")
    return SigKey(secret)


def create_key(path: Path) -> SigKey:
    """Make a new random key at ``path`` (mode 0600); refuse to overwrite or to write into
    a store."""
    _refuse_store(path)
    key = SigKey(secrets.token_bytes(KEY_BYTES))
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as exc:
        raise InputIOError(f"cannot create key directory {path.parent}: {exc.strerror}") from exc
    # written whole under a temporary name, then linked into place: a second run that finds
    # the file (two stores ingesting at once) never reads it half written
    tmp = path.with_name(f".tmp-{secrets.token_hex(8)}-{path.name}")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(key.file_bytes())
            fh.flush()
            os.fsync(fh.fileno())
        os.link(tmp, path)
    except FileExistsError as exc:
        raise UsageError(f"key file {path} already exists; refusing to overwrite it") from exc
    except OSError as exc:
        raise InputIOError(f"cannot create key file {path}: {exc.strerror}") from exc
    finally:
        tmp.unlink(missing_ok=True)
    return key


@dataclass
class KeySource:
    """Where ingest gets the key: a file named by the user, or the default location.

    A named file must exist.  The default one is created on first use (the first file whose
    format carries command lines), and `created` says so, for the notice that it must be
    copied to the organization's other collectors.
    """

    path: Path
    explicit: bool
    created: bool = False
    _key: SigKey | None = None

    @classmethod
    def default(cls) -> KeySource:
        return cls(default_key_path(), explicit=False)

    def check(self) -> None:
        """Fail early: a named key must load, and no key may lie inside a store."""
        _refuse_store(self.path)
        if self.explicit:
            self.get()

    def get(self) -> SigKey:
        if self._key is None:
            if self.explicit or self.path.exists():
                self._key = load_key(self.path)
            else:
                try:
                    self._key = create_key(self.path)
                    self.created = True
                except UsageError:  # made meanwhile by another run: use that one
                    self._key = load_key(self.path)
        return self._key


# -- normalization ----------------------------------------------------------------------------
#
# The rules of docs/evidence-format.md §14.2, as RE2 patterns for Arrow's regex kernels.  Only
# ASCII is folded (`_ci` spells a word in both cases) and the blanks are listed one by one,
# so that no Unicode table (case folding, the Z category) can make two implementations
# disagree; `\b` is RE2's ASCII word boundary.

# U+0009-U+000D and the code points of categories Zs, Zl and Zp (Unicode 15)
_BLANKS = "\t\n\v\f\r \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
_BLANK = f"[{_BLANKS}]"
_NONBLANK = f"[^{_BLANKS}]"  # a character of a path or an argument
_SEP = r"[\\/]"
_START = f"(^|[{_BLANKS}=:,])"  # what may come before a POSIX absolute path
_NAME = f"[^\\\\/{_BLANKS}]+"  # one path segment


def _ci(word: str) -> str:
    return "".join(f"[{c.upper()}{c.lower()}]" if c.isalpha() else c for c in word)


def _win(*segments: str) -> str:
    return _SEP.join(_ci(s) for s in segments)


_PATH_END = f"({_SEP}{_NONBLANK}*|\\b)"  # the rest of the path, or the word ends here
_DRIVE = r"\b[A-Za-z][:$]"  # C: or, in an admin share, c$

_EXECUTABLE = f'(?s)^{_BLANK}*(?P<exe>"[^"]*"?|[^{_BLANKS}"]+)(?P<rest>.*)$'
_WINDOWS_EXE = r'\\|^"?[A-Za-z]:|' + _ci(r"\.(exe|com|bat|cmd)") + r'"?$'

RULES: tuple[tuple[str, str, str], ...] = (
    # (name, pattern, replacement), applied in this order after the executable step
    ("quotes", "[\"']", ""),
    ("nt-prefix", r"(\\\?\?\\|\\\\\?\\)([A-Za-z]:)", r"\2"),
    ("temp", f"%{_ci('(temp|tmp)')}%({_SEP}{_NONBLANK}*)?", "<temp>"),
    ("temp", f"%{_ci('localappdata')}%{_SEP}{_ci('temp')}{_PATH_END}", "<temp>"),
    (
        "temp",
        f"({_DRIVE}{_SEP}{_ci('users')}{_SEP}{_NAME}|%{_ci('userprofile')}%)"
        f"{_SEP}{_win('appdata', 'local', 'temp')}{_PATH_END}",
        "<temp>",
    ),
    ("temp", f"{_DRIVE}{_SEP}{_win('windows', 'temp')}{_PATH_END}", "<temp>"),
    ("temp", f"{_START}(/private)?/(var/)?tmp{_PATH_END}", r"\1<temp>"),
    ("temp", f"{_START}(/private)?/var/folders/{_NONBLANK}*", r"\1<temp>"),
    ("temp", f"{_START}/dev/shm{_PATH_END}", r"\1<temp>"),  # noqa: S108 (a pattern)
    (
        "home",
        f"{_DRIVE}{_SEP}({_ci('users')}|{_ci('documents and settings')}){_SEP}{_NAME}",
        "<home>",
    ),
    ("home", f"%{_ci('userprofile')}%|%{_ci('homedrive')}%%{_ci('homepath')}%", "<home>"),
    ("home", f"{_START}/(home|Users)/[^/{_BLANKS}]+", r"\1<home>"),
    ("home", f"{_START}~[A-Za-z_][A-Za-z0-9._-]*", r"\1<home>"),
    (
        "guid",
        r"\{?[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}\}?",
        "<guid>",
    ),
    ("hex", r"\b0[xX][0-9A-Fa-f]+\b", "<hex>"),
    ("hex", r"\b[0-9A-Fa-f]{16,}\b", "<hex>"),
    ("number", "[0-9]+", "<n>"),
    ("blanks", f"{_BLANK}+", " "),
)


def normalize(lines: pa.Array) -> pa.Array:
    """The normalized form of each command line; null where nothing is left (or was null)."""
    lines = lines.cast(pa.string())
    parts = pc.extract_regex(lines, _EXECUTABLE)
    exe, rest = parts.field("exe"), parts.field("rest")
    windows = pc.match_substring_regex(exe, _WINDOWS_EXE)
    exe = pc.if_else(windows, pc.ascii_lower(exe), exe)
    text = pc.binary_join_element_wise(exe, rest, "")
    for _, pattern, replacement in RULES:
        text = pc.replace_substring_regex(text, pattern, replacement)
    text = pc.utf8_trim(text, " ")
    return pc.if_else(pc.equal(text, ""), pa.scalar(None, pa.string()), text)


def sign_column(lines: pa.Array, key: SigKey) -> pa.Array:
    """The signature of each command line (null where it has none), one HMAC per distinct
    normalized text, each distinct line normalized once."""
    if isinstance(lines, pa.ChunkedArray):
        lines = lines.combine_chunks()
    if lines.null_count == len(lines):
        return pa.nulls(len(lines), pa.string())
    distinct = pc.dictionary_encode(lines.cast(pa.string()))
    shapes = pc.dictionary_encode(normalize(distinct.dictionary))
    signed = pa.array(
        [key.sign(s) for s in shapes.dictionary.to_pylist()], pa.string()
    )  # the one loop: per distinct shape, which no vector kernel can replace
    per_line = pc.take(signed, shapes.indices)
    return pc.take(per_line, distinct.indices)
