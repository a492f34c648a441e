"""`acdkit keys rotate` and `keys revoke`: queue a signed KEY entry and seal it at once.

A rotation is sealed in a segment of its own, closed by a checkpoint that the outgoing key
signs; from the next seal on only the incoming key can seal (acdkit.keychain).
"""

from __future__ import annotations

import time

from acdkit import logentries
from acdkit.encoding import EntryType
from acdkit.errors import UsageError
from acdkit.keychain import REVOKE, ROTATE, key_event_body, read_chain
from acdkit.keys import Signer, Verifier
from acdkit.seal import SealReport, seal_locked
from acdkit.store import Store

__all__ = ["revoke", "rotate"]


def _current(store: Store, signer: Signer) -> None:
    chain = read_chain(store)
    if signer.verifier != chain.current:
        raise UsageError(
            f"--key is {signer.verifier.key_id.hex()}, but only the current sealer key "
            f"{chain.current.key_id.hex()} can rotate or revoke"
        )


def _none_queued(store: Store) -> None:
    """An earlier rotate or revoke that was interrupted before its seal must finish first."""
    for name, data in logentries.pending_entries(store):
        if logentries.parse_entry(data).kind == EntryType.KEY:
            raise UsageError(
                f"a key change is already queued (pending/{name}) from an interrupted run",
                hint="run `acdkit seal STORE` with the current key to seal it, then check "
                "`acdkit keys show`",
            )


def rotate(store: Store, current: Signer, incoming: Signer) -> SealReport:
    """Hand the log over from ``current`` to ``incoming``; seal the KEY entry now."""
    if incoming.name != store.origin:
        raise UsageError(
            f"the new key is named {incoming.name!r}; a sealer key of this log must be named "
            f"{store.origin!r}",
            hint="create it with `acdkit keys new STORE --out PATH`",
        )
    with store.lock():
        _current(store, current)
        chain = read_chain(store)
        if incoming.verifier in chain.keys or incoming.verifier.key_id in chain.revoked:
            raise UsageError("the new key was already used or revoked in this log")
        _none_queued(store)
        body = key_event_body(
            store.origin, ROTATE, current, incoming.verifier, time.time_ns(), incoming
        )
        logentries.add_pending(store, EntryType.KEY, body)
        return seal_locked(store, current)  # under the same lock: nothing comes between


def revoke(store: Store, current: Signer, revoked: Verifier) -> SealReport:
    """Record that ``revoked`` (an earlier or a leaked key) may sign nothing from now on."""
    if revoked == current.verifier:
        raise UsageError("the current key cannot revoke itself: rotate to a new key first")
    if revoked.name != store.origin:
        raise UsageError(f"{revoked.vkey()} is not a key of this log")
    with store.lock():
        _current(store, current)
        _none_queued(store)
        body = key_event_body(store.origin, REVOKE, current, revoked, time.time_ns(), None)
        logentries.add_pending(store, EntryType.KEY, body)
        return seal_locked(store, current)
