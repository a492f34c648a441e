"""Custodian keys: which responders' keys may sign DECISION entries, and checking them.

A verifier trusts custodian keys from, in this order: keys pinned on its command line
(``--custodian``), the ``custodian`` lines of the newest trust policy (signed by the root,
each with a validity window), else the store's or bundle's own list (``keys/custodians.vkey``,
``key/custodians.vkey``: a claim, like ``keys/sealer.vkey``).  With one of them, a decision
signed by any other key is TAMPERED; with none, every signature is still checked against the
key the decision carries and the report says that the keys are not pinned.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from acdkit._files import read_bounded
from acdkit.decision import Decision, parse_decision
from acdkit.errors import MalformedError, TamperedError, UsageError
from acdkit.keys import Signer, Verifier, load_signer
from acdkit.policy import Policy, load_policy
from acdkit.store import Store, atomic_write

__all__ = [
    "REGISTRY",
    "CustodianTrust",
    "DecisionFindings",
    "check_decisions",
    "check_signer",
    "check_trusted",
    "choose_trust",
    "load_custodian",
    "parse_registry",
    "register",
    "registered",
]

REGISTRY = "keys/custodians.vkey"  # in a store; a bundle carries it as key/custodians.vkey
REGISTRY_LIMIT = 1 << 20
MAX_CUSTODIANS = 1000
# a decision signed more than this after the seal that holds it is reported (two clocks)
SEAL_TOLERANCE_NS = 300 * 1_000_000_000
_HEADER = b"# acdkit custodian key for "


def parse_registry(text: str, what: str) -> list[Verifier]:
    """One vkey per line, nothing else; blank lines are not allowed either."""
    lines = text.split("\n")
    if lines[-1] != "":
        raise MalformedError(f"{what} does not end with a newline")
    out = []
    for line in lines[:-1]:
        key = Verifier.parse(line)
        if key.vkey() != line:
            raise MalformedError(f"{what}: line {line[:40]!r} is not exactly a vkey")
        out.append(key)
    if len(out) > MAX_CUSTODIANS or len(set(out)) != len(out):
        raise MalformedError(f"{what} lists a key twice or more than {MAX_CUSTODIANS} keys")
    return out


def registered(store: Store) -> list[Verifier] | None:
    """The store's custodian list, or None when it has none."""
    path = store.root / REGISTRY
    if not path.exists():
        return None
    raw = read_bounded(path, REGISTRY_LIMIT, "custodian list")
    try:
        return parse_registry(raw.decode("utf-8"), REGISTRY)
    except UnicodeDecodeError:
        raise MalformedError(f"{REGISTRY} is not UTF-8") from None


def register(store: Store, key: Verifier) -> bool:
    """Add a custodian's vkey to the store's list; False when it was there already."""
    if key.name == store.origin:
        raise UsageError("a custodian key must not carry the log's own name (the sealer's)")
    with store.lock():
        keys = registered(store) or []
        if key in keys:
            return False
        keys.append(key)
        text = "".join(k.vkey() + "\n" for k in sorted(keys, key=lambda k: k.vkey()))
        atomic_write(store.root / REGISTRY, text.encode())
    return True


def load_custodian(path: Path) -> Signer:
    """A custodian private key (`acdkit keys new --role custodian`); no other role."""
    if not path.exists():
        raise UsageError(
            f"custodian key {path} not found",
            hint="create one with `acdkit keys new --role custodian --name YOU --out PATH`",
        )
    head = read_bounded(path, 16 << 10, "custodian key").partition(b"\n")[0]
    if not head.startswith(_HEADER):
        raise UsageError(
            f"{path} is not a custodian key (decisions and custody entries are signed by a "
            "responder's own key)"
        )
    return load_signer(path)


@dataclass(frozen=True)
class Window:
    not_before_ns: int | None = None
    not_after_ns: int | None = None

    def covers(self, at_ns: int, grace_ns: int) -> bool:
        early = self.not_before_ns is not None and at_ns < self.not_before_ns - grace_ns
        late = self.not_after_ns is not None and at_ns > self.not_after_ns + grace_ns
        return not (early or late)


@dataclass(frozen=True)
class CustodianTrust:
    """The custodian keys a verifier holds to, and where they come from."""

    keys: dict[Verifier, Window]
    source: str  # "--custodian", "trust policy 3", "keys/custodians.vkey"
    pinned: bool  # given by the verifier or by a policy whose root is pinned
    grace_ns: int = 0

    @classmethod
    def of(cls, keys: Iterable[Verifier], source: str, pinned: bool) -> CustodianTrust:
        return cls({k: Window() for k in keys}, source, pinned)


@dataclass
class DecisionFindings:
    decisions: int = 0
    incidents: set[str] = field(default_factory=set)
    signers: set[Verifier] = field(default_factory=set)
    warnings: list[str] = field(default_factory=list)

    def detail(self, trust: CustodianTrust | None) -> str:
        if not self.decisions:
            return "no DECISION entries"
        whose = (
            f"custodian keys of {trust.source}"
            + ("" if trust.pinned else " (the store's own word, not pinned: --custodian)")
            if trust is not None
            else "the keys they carry (custodian keys not pinned: --custodian)"
        )
        return (
            f"{self.decisions} DECISION entries of {len(self.incidents)} incidents verify, "
            f"signed by {len(self.signers)} keys, checked against {whose}"
        )


def check_decisions(
    entries: Iterable[tuple[int, bytes, int | None]],
    origin: str,
    trust: CustodianTrust | None,
    incident: str | None = None,
) -> DecisionFindings:
    """Check every DECISION body: (leaf index, body, SEAL time of its segment or None).

    1. The body parses strictly (MALFORMED).
    2. It names ``incident`` when one is given (a bundle's manifest incident; TAMPERED).
    3. Its signature verifies with the custodian key it carries, over the message of §13
       with this log's origin (TAMPERED).
    4. With trust, that key is one of the trusted keys and its window (± grace) covers the
       decision's recorded time (TAMPERED).
    5. A recorded time past the SEAL time of its segment by over 300 s is a warning.
    """
    found = DecisionFindings()
    for index, body, sealed_at in entries:
        # 1
        try:
            decision = parse_decision(body)
        except MalformedError as exc:
            raise MalformedError(f"DECISION {_where(index)}: {exc.message}") from None
        assert decision.custodian is not None
        # 2
        if incident is not None and decision.incident != incident:
            raise TamperedError(
                f"DECISION {_where(index)} is of incident {decision.incident!r}, "
                f"the bundle's is {incident!r}"
            )
        # 3
        if not decision.verifies(origin):
            raise TamperedError(
                f"DECISION {_where(index)}: the signature does not verify with the custodian "
                f"key {decision.custodian.key_id.hex()} it names"
            )
        # 4
        if trust is not None:
            check_trusted(index, decision, trust)
        # 5
        if sealed_at is not None and decision.recorded_ns > sealed_at + SEAL_TOLERANCE_NS:
            late = (decision.recorded_ns - sealed_at) / 1e9
            found.warnings.append(
                f"DECISION {_where(index)} was signed {late:,.0f}s after its segment was "
                "sealed: the custodian's and the sealer's clocks disagree"
            )
        found.decisions += 1
        found.incidents.add(decision.incident)
        found.signers.add(decision.custodian)
    return found


def _where(index: int) -> str:
    return f"at index {index}" if index >= 0 else "(queued)"


def check_trusted(index: int, decision: Decision, trust: CustodianTrust) -> None:
    assert decision.custodian is not None
    check_signer(f"DECISION {_where(index)}", decision.custodian, decision.recorded_ns, trust)


def check_signer(what: str, key: Verifier, recorded_ns: int, trust: CustodianTrust) -> None:
    """A signed entry's custodian key is trusted, and its window covers the signing time."""
    window = trust.keys.get(key)
    kid = key.key_id.hex()
    if window is None:
        raise TamperedError(
            f"{what} is signed by custodian key {kid} ({key.name!r}), which {trust.source} "
            "does not list"
        )
    if not window.covers(recorded_ns, trust.grace_ns):
        raise TamperedError(
            f"{what}: custodian key {kid} signed it outside its window in {trust.source}"
        )


def decisions_of(entries: Iterable[bytes]) -> list[Decision]:
    """Parsed decisions of DECISION bodies (already checked)."""
    return [parse_decision(body) for body in entries]


def choose_trust(
    given: list[Verifier] | None,
    policy: Policy | None,
    policy_pinned: bool,
    claimed: list[Verifier] | None,
    claimed_name: str,
) -> CustodianTrust | None:
    """Keys pinned by the verifier, else the policy's custodians, else the claimed list."""
    if given:
        return CustodianTrust.of(given, "--custodian", True)
    if policy is not None and policy.custodians:
        windows = {w.key: Window(w.not_before_ns, w.not_after_ns) for w in policy.custodians}
        source = f"trust policy {policy.serial}"
        return CustodianTrust(windows, source, policy_pinned, policy.grace_s * 1_000_000_000)
    if claimed is not None:
        return CustodianTrust.of(claimed, claimed_name, False)
    return None


def store_trust(store: Store) -> CustodianTrust | None:
    """What a verifier without --custodian holds the store's decisions to."""
    loaded = load_policy(store, None)
    return choose_trust(None, loaded.policy if loaded else None, False, registered(store), REGISTRY)


def check_queued_decision(store: Store, body: bytes) -> None:
    """Refuse, before a seal, a queued DECISION that `acdkit verify` would refuse, and one
    that no registered custodian key would stand behind (a list deleted or never made)."""
    trust = store_trust(store)
    if trust is None:
        raise UsageError(
            "no custodian keys are registered for this store: a decision's signer could be anyone",
            hint="register the responder's key: acdkit keys add-custodian STORE VKEY",
        )
    check_decisions([(-1, body, None)], store.origin, trust)
