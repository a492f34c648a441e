"""Checking RFC 3161 anchors offline, for a store and for a bundle alike.

An anchor is a claim that a checkpoint existed at the TSA's genTime.  It arrives as an
ANCHOR entry sealed in the log (``AnchorRecord``), or as a bare token copy
(``anchors/<size20>.<tsa>.tsr``) whose entry waits for the next seal.  Either way the
token is checked against the roots pinned for its TSA name, and its imprint against the
checkpoint it names; the nonce cannot be checked offline (only the requester knew it,
and it was checked on receipt).  Then the times: genTime against the sealer's own
clock, and against the event times of the records it covers (EVIDENCE §4.1 row 15).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path

from acdkit import logentries
from acdkit._files import read_bounded
from acdkit.anchor import (
    DEFAULT_TOLERANCE_NS,
    GEN_TIME_RESOLUTION_NS,
    TSR_SUFFIX,
    AnchorRecord,
    anchor_imprint,
    clock_offset,
    iso,
    parse_anchor_file_name,
)
from acdkit.encoding import EntryType
from acdkit.errors import MalformedError, TamperedError
from acdkit.note import Checkpoint, SignedNote
from acdkit.policy import Policy
from acdkit.sealinfo import SealInfo
from acdkit.tsa import MAX_REPLY_BYTES, TokenFacts, TsaTrust, check_token

__all__ = [
    "AnchorClaim",
    "AnchorResult",
    "AnchorTrust",
    "check_anchors",
    "policy_trust",
    "policy_tsas",
    "store_claims",
]


@dataclass(frozen=True)
class AnchorTrust:
    """What a verifier trusts for anchors.

    ``authoritative`` is set when the TSAs come from a signed trust policy: a token from
    a TSA outside it is then TAMPERED.  Roots given on the command line are only what
    this run was told, so a TSA they do not name leaves its anchors unchecked.
    """

    tsas: Mapping[str, TsaTrust] = field(default_factory=dict)
    authoritative: bool = False
    tolerance_ns: int = DEFAULT_TOLERANCE_NS


@dataclass(frozen=True)
class AnchorClaim:
    tsa: str
    size: int
    reply: bytes
    where: str  # for people: "ANCHOR leaf 12" or "anchors/<name>"
    record: AnchorRecord | None = None  # None: a token copy whose entry is not sealed yet
    index: int | None = None  # the leaf index of the ANCHOR entry


@dataclass
class VerifiedAnchor:
    tsa: str
    size: int
    gen_time_ns: int
    slack_ns: int  # accuracy plus genTime resolution: the moment lies up to this after
    logged: bool


@dataclass
class AnchorResult:
    verified: list[VerifiedAnchor] = field(default_factory=list)
    unchecked: list[str] = field(default_factory=list)  # INCOMPLETE findings
    policy: list[str] = field(default_factory=list)  # POLICY findings
    warnings: list[str] = field(default_factory=list)

    def newest(self) -> list[VerifiedAnchor]:
        if not self.verified:
            return []
        top = max(a.size for a in self.verified)
        best: dict[str, VerifiedAnchor] = {}
        for a in self.verified:
            if a.size == top and (a.tsa not in best or a.gen_time_ns < best[a.tsa].gen_time_ns):
                best[a.tsa] = a
        return [best[t] for t in sorted(best)]

    def coverage(self, tree_size: int) -> str:
        newest = self.newest()
        if not newest:
            return "no anchor checked" if self.unchecked else "no checkpoint anchored"
        size = newest[0].size
        who = " and ".join(f"{a.tsa} at {iso(a.gen_time_ns)}" for a in newest)
        text = f"anchored by {who} for checkpoint {size:,}"
        if not all(a.logged for a in newest):
            text += " (token kept; its ANCHOR entry goes into the next seal)"
        if size < tree_size:
            text += f"; checkpoints after {size:,} are not anchored"
        return text


def policy_tsas(policy: Policy) -> dict[str, TsaTrust]:
    """TsaTrust per TSA name from the ``tsa`` lines of a trust policy (one root a line)."""
    roots: dict[str, list[bytes]] = {}
    oids: dict[str, str | None] = {}
    for line in policy.tsas:
        if line.name in oids and oids[line.name] != line.policy_oid:
            raise MalformedError(f"the trust policy gives TSA {line.name} two policy OIDs")
        oids[line.name] = line.policy_oid
        roots.setdefault(line.name, []).append(line.der)
    return {name: TsaTrust(name, tuple(ders), oids[name]) for name, ders in roots.items()}


def policy_trust(policy: Policy, given: AnchorTrust | None) -> AnchorTrust:
    """The TSAs of a trust policy whose root the verifier pinned: the whole list (a TSA
    outside it is TAMPERED), with its drift limit, when set, as the tolerance."""
    tolerance = given.tolerance_ns if given is not None else DEFAULT_TOLERANCE_NS
    if policy.drift_max_ms is not None:
        tolerance = policy.drift_max_ms * 1_000_000
    return AnchorTrust(policy_tsas(policy), authoritative=True, tolerance_ns=tolerance)


def store_claims(
    anchors_dir: Path, sealed: Sequence[tuple[int, bytes]]
) -> tuple[list[AnchorClaim], list[str]]:
    """Claims of a store: its sealed ANCHOR entries (leaf index, entry bytes) and the
    token copies in ``anchors/`` that no sealed entry accounts for; plus warnings."""
    claims, warnings = [], []
    for index, data in sealed:
        parsed = logentries.parse_entry(data)
        if parsed.kind != EntryType.ANCHOR:
            continue
        try:
            rec = AnchorRecord.from_body(parsed.body)
        except MalformedError as exc:
            raise MalformedError(f"ANCHOR leaf {index}: {exc.message}") from None
        claims.append(AnchorClaim(rec.tsa, rec.size, rec.reply, f"ANCHOR leaf {index}", rec, index))
    logged: dict[tuple[int, str], list[bytes]] = {}
    for c in claims:
        logged.setdefault((c.size, c.tsa), []).append(c.reply)
    copies: set[tuple[int, str]] = set()
    for path in sorted(anchors_dir.iterdir()) if anchors_dir.is_dir() else []:
        key = parse_anchor_file_name(path.name, TSR_SUFFIX)
        if key is None or not path.is_file():
            continue
        copies.add(key)
        reply = read_bounded(path, MAX_REPLY_BYTES, "token copy")
        if key in logged:
            if reply not in logged[key]:
                raise TamperedError(
                    f"anchors/{path.name} differs from the token of its sealed ANCHOR entry"
                )
            continue
        claims.append(AnchorClaim(key[1], key[0], reply, f"anchors/{path.name}"))
    for size, tsa in sorted(set(logged) - copies):
        warnings.append(
            f"the token copy of checkpoint {size:,} by {tsa} is missing from "
            "anchors/ (its sealed ANCHOR entry holds the token)"
        )
    return claims, warnings


def check_anchors(
    claims: Sequence[AnchorClaim],
    checkpoints: Mapping[int, bytes],
    seals: Sequence[SealInfo],
    trust: AnchorTrust | None,
) -> AnchorResult:
    """Check every claim, then the times; raise TAMPERED or MALFORMED at the first bad one.

    1. An ANCHOR body names a checkpoint of this log made before the entry, with that
       checkpoint file's SHA-256 and anchor imprint.
    2. The token verifies against the roots pinned for its TSA (chain valid at genTime,
       critical EKU timeStamping, CMS signature, policy OID when pinned) over that
       imprint; the entry's genTime, policy and accuracy are the token's.
    3. Per TSA, genTime does not go backwards along checkpoint order (POLICY).
    4. No checkpoint was time-stamped before it was sealed, beyond tolerance (POLICY).
    5. No record covered by a token is later than its genTime beyond tolerance (POLICY;
       later within tolerance is a warning).
    """
    trust = trust or AnchorTrust()
    result = AnchorResult()
    for claim in claims:
        pinned = trust.tsas.get(claim.tsa)
        if pinned is None:
            if trust.authoritative:
                raise TamperedError(f"{claim.where}: TSA {claim.tsa} is not in the trust policy")
            reason = "no pinned TSA roots" if not trust.tsas else f"no roots pinned for {claim.tsa}"
            result.unchecked.append(
                f"{claim.where} (checkpoint {claim.size:,} by {claim.tsa}) not checked: {reason}"
            )
            continue
        facts = _check_claim(claim, checkpoints, pinned)
        slack = (facts.accuracy_ns or 0) + GEN_TIME_RESOLUTION_NS
        verified = VerifiedAnchor(
            claim.tsa, claim.size, facts.gen_time_ns, slack, claim.record is not None
        )
        result.verified.append(verified)
        if claim.record is not None:
            _local_drift(claim.record, trust.tolerance_ns, result)
    _check_times(result, seals, trust.tolerance_ns)
    return result


def _check_claim(
    claim: AnchorClaim, checkpoints: Mapping[int, bytes], trust: TsaTrust
) -> TokenFacts:
    # 1
    note_bytes = checkpoints.get(claim.size)
    if note_bytes is None:
        raise TamperedError(
            f"{claim.where} anchors checkpoint {claim.size:,}, which is not here "
            "(removed, or the log was rolled back)"
        )
    text = SignedNote.parse(note_bytes).text
    if Checkpoint.from_text(text).size != claim.size:
        raise TamperedError(f"{claim.where}: checkpoint {claim.size:,} holds another size")
    imprint = anchor_imprint(text)
    rec = claim.record
    if rec is not None:
        if claim.index is not None and rec.size > claim.index:
            raise TamperedError(
                f"{claim.where} anchors checkpoint {rec.size:,}, which cannot exist yet there"
            )
        if rec.checkpoint_sha256 != hashlib.sha256(note_bytes).digest():
            raise TamperedError(
                f"{claim.where}: the checkpoint hash is not that of checkpoint {rec.size:,}"
            )
        if rec.imprint != imprint:
            raise TamperedError(
                f"{claim.where}: the imprint is not the anchor imprint of checkpoint {rec.size:,}"
            )
    # 2
    try:
        facts = check_token(claim.reply, imprint, trust)
    except (TamperedError, MalformedError) as exc:
        raise type(exc)(f"{claim.where}: {exc.message}") from None
    if rec is not None and (rec.gen_time_ns, rec.policy_oid, rec.accuracy_ns) != (
        facts.gen_time_ns,
        facts.policy_oid,
        facts.accuracy_ns,
    ):
        raise TamperedError(
            f"{claim.where}: genTime, policy or accuracy differ from those of its token"
        )
    return facts


def _local_drift(rec: AnchorRecord, tolerance_ns: int, result: AnchorResult) -> None:
    lo, hi = clock_offset(rec.gen_time_ns, rec.accuracy_ns, rec.sent_ns, rec.received_ns)
    if lo > tolerance_ns or hi < -tolerance_ns:
        result.warnings.append(
            f"when checkpoint {rec.size:,} was anchored by {rec.tsa}, the collector's clock "
            f"was off by {lo / 1e9:+.3f}..{hi / 1e9:+.3f} s (beyond the tolerance)"
        )


def _check_times(result: AnchorResult, seals: Sequence[SealInfo], tolerance_ns: int) -> None:
    # 3
    earliest: dict[tuple[str, int], VerifiedAnchor] = {}
    for a in result.verified:
        key = (a.tsa, a.size)
        if key not in earliest or a.gen_time_ns < earliest[key].gen_time_ns:
            earliest[key] = a
    by_tsa: dict[str, list[VerifiedAnchor]] = {}
    for a in sorted(earliest.values(), key=lambda a: a.size):
        by_tsa.setdefault(a.tsa, []).append(a)
    for tsa, seq in by_tsa.items():
        for before, after in pairwise(seq):
            if after.gen_time_ns + after.slack_ns + before.slack_ns < before.gen_time_ns:
                result.policy.append(
                    f"{tsa} time-stamped checkpoint {after.size:,} at {iso(after.gen_time_ns)}, "
                    f"before checkpoint {before.size:,} at {iso(before.gen_time_ns)}"
                )
    # 4
    closing = {s.end_index: s for s in seals}
    for a in earliest.values():
        seal = closing.get(a.size)
        if seal is not None and a.gen_time_ns + a.slack_ns + tolerance_ns < seal.sealed_at_ns:
            result.policy.append(
                f"checkpoint {a.size:,} was time-stamped by {a.tsa} at {iso(a.gen_time_ns)}, "
                f"before the collector's clock says it was sealed ({iso(seal.sealed_at_ns)})"
            )
    # 5
    for seal in seals:
        if seal.ts_max_ns is None:
            continue
        covering = [a for a in earliest.values() if a.size >= seal.end_index]
        if not covering:
            continue
        first = min(covering, key=lambda a: a.gen_time_ns + a.slack_ns)
        limit = first.gen_time_ns + first.slack_ns
        late = seal.ts_max_ns - limit
        if late > tolerance_ns:
            result.policy.append(
                f"records of segment {seal.segment_no} have event times up to "
                f"{iso(seal.ts_max_ns)}, {late / 1e9:,.1f} s after {first.tsa} time-stamped "
                f"checkpoint {first.size:,} that covers them (causality violated)"
            )
        elif late > 0:
            result.warnings.append(
                f"records of segment {seal.segment_no} are up to {late / 1e9:.1f} s later than "
                f"the token of checkpoint {first.size:,} covering them (within tolerance)"
            )
