"""The trust policy: a signed note by the organization's offline root key.

It names, for one log, the sealer keys with their validity windows, the witnesses and their
quorum, the time-stamp authorities that are trusted, and the operating rules (seal cadence,
anchoring cadence, drift limit, grace at key boundaries, and how far records may be pruned:
``prune-below``, §17).  A verifier that pins the root key
needs nothing else to judge which keys could sign what, and when (docs/evidence-format.md
§7.2).  Policies are kept as ``policy/<serial20>.policy.note``, never rewritten; the
newest serial governs.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from acdkit._files import MIB, read_bounded
from acdkit.cosignature import WitnessPolicy
from acdkit.errors import MalformedError, TamperedError, UsageError
from acdkit.keys import Signer, Verifier, WitnessVerifier
from acdkit.note import SignedNote, parse_decimal, sign_note
from acdkit.store import Store, atomic_write

__all__ = [
    "LoadedPolicy",
    "Policy",
    "PolicyRecord",
    "SealerWindow",
    "TsaRoot",
    "load_policy",
    "write_policy",
]

HEADER = "acdkit-policy/1"
POLICY_DIR = "policy"
SUFFIX = ".policy.note"
ROOT_VKEY = "keys/root.vkey"
_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")
_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
_OID = re.compile(r"[0-2](\.(0|[1-9][0-9]*))+")
NS = 1_000_000_000


def parse_time(value: str, what: str) -> int | None:
    if value == "-":
        return None
    if not _TIME.fullmatch(value):
        raise MalformedError(f"policy {what} {value!r} is not YYYY-MM-DDTHH:MM:SSZ or '-'")
    try:
        moment = datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    except ValueError:
        raise MalformedError(f"policy {what} {value!r} is not a valid time") from None
    return int(moment.timestamp()) * NS


def _time_text(ns: int | None) -> str:
    if ns is None:
        return "-"
    return datetime.fromtimestamp(ns // NS, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class SealerWindow:
    key: Verifier
    not_before_ns: int | None = None
    not_after_ns: int | None = None

    def covers(self, at_ns: int, grace_ns: int) -> bool:
        early = self.not_before_ns is not None and at_ns < self.not_before_ns - grace_ns
        late = self.not_after_ns is not None and at_ns > self.not_after_ns + grace_ns
        return not (early or late)

    def describe(self) -> str:
        return f"{_time_text(self.not_before_ns)} .. {_time_text(self.not_after_ns)}"


@dataclass(frozen=True)
class TsaRoot:
    name: str
    policy_oid: str | None
    der: bytes  # a pinned root certificate


@dataclass
class Policy:
    origin: str
    serial: int
    issued_ns: int
    sealers: list[SealerWindow] = field(default_factory=list)
    witnesses: list[str] = field(default_factory=list)  # cosigner vkeys (C2SP type 0x04)
    witness_quorum: int = 0
    tsas: list[TsaRoot] = field(default_factory=list)
    seal_interval_s: int | None = None  # longest allowed gap between two seals
    anchor_interval_s: int | None = None  # longest allowed gap between two anchors
    drift_max_ms: int | None = None
    grace_s: int = 300
    # responders' keys that may sign DECISION entries (§13), with validity windows
    custodians: list[SealerWindow] = field(default_factory=list)
    # records of segments ending at or below this index may be removed (§17); None: none
    prune_below: int | None = None

    def text(self) -> str:
        lines = [
            HEADER,
            f"origin {self.origin}",
            f"serial {self.serial}",
            f"issued {_time_text(self.issued_ns)}",
        ]
        for w in self.sealers:
            lines.append(
                f"sealer {w.key.vkey()} {_time_text(w.not_before_ns)} {_time_text(w.not_after_ns)}"
            )
        for w in self.custodians:
            lines.append(
                f"custodian {w.key.vkey()} {_time_text(w.not_before_ns)} "
                f"{_time_text(w.not_after_ns)}"
            )
        lines += [f"witness {v}" for v in self.witnesses]
        lines.append(f"witness-quorum {self.witness_quorum}")
        for t in self.tsas:
            der = base64.b64encode(t.der).decode()
            lines.append(f"tsa {t.name} {t.policy_oid or '-'} {der}")
        for key, value in (
            ("seal-interval", self.seal_interval_s),
            ("anchor-interval", self.anchor_interval_s),
            ("drift-max-ms", self.drift_max_ms),
        ):
            lines.append(f"{key} {'-' if value is None else value}")
        lines.append(f"grace {self.grace_s}")
        if self.prune_below is not None:  # absent in every policy made before §17
            lines.append(f"prune-below {self.prune_below}")
        return "\n".join(lines) + "\n"

    @classmethod
    def from_text(cls, text: str) -> Policy:
        lines = text.split("\n")
        if lines[-1] != "" or lines[0] != HEADER:
            raise MalformedError(f"a trust policy starts with {HEADER} and ends with a newline")
        lines = lines[1:-1]
        fixed = {"origin": 0, "serial": 1, "issued": 2}
        head = [line.split(" ", 1) for line in lines[:3]]
        if len(head) != 3 or [h[0] for h in head] != list(fixed) or any(len(h) != 2 for h in head):
            raise MalformedError("policy must begin with origin, serial and issued lines")
        issued = parse_time(head[2][1], "issued")
        if issued is None:
            raise MalformedError("policy issued time is required")
        policy = cls(head[0][1], parse_decimal(head[1][1], "policy serial"), issued)
        seen: set[str] = set()
        order = ["sealer", "custodian", "witness", "witness-quorum", "tsa", "seal-interval",
                 "anchor-interval", "drift-max-ms", "grace", "prune-below"]  # fmt: skip
        last = -1
        for line in lines[3:]:
            key, _, value = line.partition(" ")
            if key not in order or not value:
                raise MalformedError(f"policy line {line[:40]!r} is not understood")
            if order.index(key) < last:
                raise MalformedError(f"policy line {key!r} is out of order")
            last = order.index(key)
            repeatable = key in ("sealer", "custodian", "witness", "tsa")
            if key in seen and not repeatable:
                raise MalformedError(f"policy line {key!r} appears twice")
            seen.add(key)
            policy._take(key, value)
        missing = {"witness-quorum", "seal-interval", "anchor-interval", "drift-max-ms", "grace"}
        if missing - seen or "sealer" not in seen:
            raise MalformedError("policy lacks a required line (sealer, quorum, intervals, grace)")
        if policy.witness_quorum > len(policy.witnesses):
            raise MalformedError("policy witness quorum is larger than its witness list")
        if policy.text() != text:
            raise MalformedError("policy is not in canonical form")
        return policy

    def _take(self, key: str, value: str) -> None:
        parts = value.split(" ")
        if key in ("sealer", "custodian"):
            if len(parts) != 3:
                raise MalformedError(f"policy {key} line: <vkey> <from> <until>")
            window = SealerWindow(
                Verifier.parse(parts[0]),
                parse_time(parts[1], "from"),
                parse_time(parts[2], "until"),
            )
            if (
                window.not_before_ns is not None
                and window.not_after_ns is not None
                and window.not_before_ns > window.not_after_ns
            ):
                raise MalformedError(f"policy {key} window ends before it begins")
            if key == "custodian":
                if window.key.name == self.origin:
                    raise MalformedError("policy custodian key carries the log's (sealer) name")
                self.custodians.append(window)
                return
            if window.key.name != self.origin:
                raise MalformedError("policy sealer key is named after another log")
            self.sealers.append(window)
        elif key == "witness":
            # a cosigner's vkey (type 0x04), exactly: parse() forgives blanks around it
            if WitnessVerifier.parse(value).vkey() != value:
                raise MalformedError("policy witness line is not <witness vkey>")
            self.witnesses.append(value)
        elif key == "tsa":
            if len(parts) != 3 or not _NAME.fullmatch(parts[0]):
                raise MalformedError("policy tsa line: <name> <policy OID or -> <base64 DER>")
            if parts[1] != "-" and not _OID.fullmatch(parts[1]):
                raise MalformedError(f"policy tsa policy OID {parts[1]!r} is malformed")
            try:
                der = base64.b64decode(parts[2], validate=True)
            except (binascii.Error, ValueError):
                raise MalformedError("policy tsa root is not base64") from None
            self.tsas.append(TsaRoot(parts[0], None if parts[1] == "-" else parts[1], der))
        elif key == "witness-quorum":
            self.witness_quorum = parse_decimal(value, "witness quorum")
        elif key == "grace":
            self.grace_s = parse_decimal(value, "grace")
        elif key == "prune-below":
            self.prune_below = parse_decimal(value, "prune-below")
            if self.prune_below == 0:
                raise MalformedError("policy prune-below 0 allows nothing: leave the line out")
        else:
            number = None if value == "-" else parse_decimal(value, key)
            attr = {"seal-interval": "seal_interval_s", "anchor-interval": "anchor_interval_s"}
            setattr(self, attr.get(key, "drift_max_ms"), number)

    def witness_policy(self) -> WitnessPolicy | None:
        """The witnesses and quorum this policy sets; None when it names no witness."""
        if not self.witnesses:
            return None
        parsed = [WitnessVerifier.parse(v) for v in self.witnesses]
        return WitnessPolicy.of(parsed, self.witness_quorum)

    def window_of(self, key: Verifier) -> SealerWindow | None:
        return next((w for w in self.sealers if w.key == key), None)

    def check_sealer(self, key: Verifier, at_ns: int, where: str) -> None:
        """TAMPERED unless ``key`` is a sealer of this policy, valid at ``at_ns`` ± grace."""
        window = self.window_of(key)
        if window is None:
            raise TamperedError(
                f"{where}: sealer key {key.key_id.hex()} is not authorized by trust policy "
                f"{self.serial}"
            )
        if not window.covers(at_ns, self.grace_s * NS):
            raise TamperedError(
                f"{where}: sealer key {key.key_id.hex()} signed at {_time_text(at_ns)}, "
                f"outside its window {window.describe()} (+{self.grace_s}s grace) in trust "
                f"policy {self.serial}"
            )


@dataclass(frozen=True)
class PolicyRecord:
    """One policy of a store's history: what a PRUNE entry (§17.2) may name."""

    serial: int
    sha256: bytes  # of the policy file, the signed note byte for byte
    prune_below: int | None


@dataclass(frozen=True)
class LoadedPolicy:
    policy: Policy
    note: bytes
    root: Verifier
    pinned: bool
    history: int  # how many policies the store holds
    records: tuple[PolicyRecord, ...] = ()  # every policy of the history, by serial

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.note).hexdigest()

    def record(self, serial: int) -> PolicyRecord | None:
        return next((r for r in self.records if r.serial == serial), None)


def policy_files(store: Store) -> list[Path]:
    directory = store.root / POLICY_DIR
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.iterdir() if p.name.endswith(SUFFIX))


def parse_policy_note(data: bytes, root: Verifier, what: str) -> Policy:
    try:
        note = SignedNote.parse(data)
        policy = Policy.from_text(note.text)
    except MalformedError as exc:
        raise MalformedError(f"{what}: {exc.message}") from None
    if not note.verified_by(root):
        raise TamperedError(f"{what} is not signed by root key {root.key_id.hex()}")
    return policy


def load_policy(store: Store, pinned_root: Verifier | None) -> LoadedPolicy | None:
    """The store's newest policy, every earlier one checked too; None if it has none.

    With a pinned root, a store without a policy is TAMPERED: the policy was stripped.
    """
    files = policy_files(store)
    if not files:
        if pinned_root is not None:
            raise TamperedError(
                "a root key is pinned but the store holds no trust policy (stripped, or "
                "never issued)"
            )
        return None
    root = pinned_root or _store_root(store)
    serial, newest, note = 0, None, b""
    records: list[PolicyRecord] = []
    for path in files:
        data = read_bounded(path, 4 * MIB, "trust policy")
        policy = parse_policy_note(data, root, f"policy/{path.name}")
        if path.name != f"{policy.serial:020d}{SUFFIX}":
            raise TamperedError(f"policy/{path.name} holds serial {policy.serial}")
        if policy.serial != serial + 1:
            raise TamperedError(f"trust policy serials jump from {serial} to {policy.serial}")
        if policy.origin != store.origin:
            raise TamperedError(f"policy/{path.name} is for log {policy.origin!r}")
        serial, newest, note = policy.serial, policy, data
        records.append(PolicyRecord(serial, hashlib.sha256(data).digest(), policy.prune_below))
    assert newest is not None
    return LoadedPolicy(newest, note, root, pinned_root is not None, len(files), tuple(records))


def _store_root(store: Store) -> Verifier:
    path = store.root / ROOT_VKEY
    if not path.is_file():
        raise MalformedError(
            f"the store has a trust policy but no {ROOT_VKEY}", hint="pin the root with --root"
        )
    return Verifier.parse(read_bounded(path, 64 << 10, "root vkey").decode(errors="replace"))


def write_policy(store: Store, policy: Policy, root: Signer) -> Path:
    """Sign and store the next policy; the first one also records the root's vkey."""
    files = policy_files(store)
    expected = len(files) + 1
    if policy.serial != expected:
        raise UsageError(f"the next policy of this store has serial {expected}")
    if files:
        existing = _store_root(store)
        if existing != root.verifier:
            raise UsageError(
                f"the store's policies are signed by root key {existing.key_id.hex()}; "
                "this root key differs"
            )
    note = sign_note(policy.text(), root).encode()
    Policy.from_text(policy.text())  # what is written must parse back
    (store.root / POLICY_DIR).mkdir(mode=0o755, exist_ok=True)
    if not files:
        atomic_write(store.root / ROOT_VKEY, (root.verifier.vkey() + "\n").encode())
    path = store.root / POLICY_DIR / f"{policy.serial:020d}{SUFFIX}"
    atomic_write(path, note)
    return path


@dataclass
class AnchoredTimeFindings:
    tampered: list[str] = field(default_factory=list)
    policy: list[str] = field(default_factory=list)
    proven: int = 0  # segments whose key window is proven to hold at anchored time
    bounded: int = 0  # segments with a key window end, hence something to prove


def anchored_time_findings(
    policy: Policy,
    segments: list[tuple[str, int, int, Verifier]],  # (name, end index, seal time ns, key)
    anchors: list[tuple[int, int]],  # (anchored checkpoint size, genTime ns), verified
    now_ns: int,
) -> AnchoredTimeFindings:
    """Judge key windows and the anchoring cadence by anchored (TSA) time, not the
    sealer's clock.

    A verified anchor of checkpoint ``S`` at genTime ``g`` proves every checkpoint of size
    ``≤ S`` existed by ``g`` (a later SEAL carries the hash of each earlier checkpoint). So
    the earliest such ``g`` is an authenticated upper bound on when a segment's checkpoint
    was signed: below the key window's start (minus grace) the key signed before the root
    authorized it (TAMPERED); at or below the window's end (plus grace) the window provably
    held.  With an ``anchor-interval``, every checkpoint must be anchored within that
    interval (plus grace) of its seal time; a checkpoint not anchored yet is a POLICY
    failure only once the interval has passed.
    """
    out = AnchoredTimeFindings()
    grace = policy.grace_s * NS
    ordered = sorted(anchors)
    for name, end, sealed_at, key in segments:
        bound = min((g for size, g in ordered if size >= end), default=None)
        window = policy.window_of(key)
        opens = window.not_before_ns if window is not None else None
        if bound is not None and opens is not None and bound < opens - grace:
            assert window is not None
            out.tampered.append(
                f"segment {name}: its checkpoint was anchored at {_time_text(bound)}, "
                f"before the window of its key {key.key_id.hex()} opened ({window.describe()})"
            )
        if window is not None and window.not_after_ns is not None:
            out.bounded += 1
            if bound is not None and bound <= window.not_after_ns + grace:
                out.proven += 1
        if policy.anchor_interval_s is not None:
            limit = (policy.anchor_interval_s + policy.grace_s) * NS
            late = (bound if bound is not None else now_ns) - sealed_at
            if late > limit:
                what = "anchored only after" if bound is not None else "not anchored for"
                out.policy.append(
                    f"segment {name}: checkpoint {end} {what} {late / NS:,.0f}s; the trust "
                    f"policy requires an anchor within {policy.anchor_interval_s}s"
                )
    return out
