"""`acdkit keys …`: create key pairs and the command-signature key, rotate and revoke a
log's sealer key, show the chain."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from cryptography.hazmat.primitives import serialization

from acdkit import cmdsig, custodians, keys, policy, rotation, store
from acdkit._files import read_bounded
from acdkit.cli import (
    JsonOpt,
    KeyOpt,
    StoreArg,
    _emit,
    _handles_errors,
    _print_seal,
    _seal_doc,
    _shown,
    _signer_for,
    _typed_key,
    err,
)
from acdkit.errors import MalformedError, UsageError
from acdkit.keychain import ROTATE, KeyChain, read_chain
from acdkit.policy import SealerWindow
from acdkit.prunedtree import pruned_extent

keys_app = typer.Typer(
    add_completion=False,  # a subcommand group; the top level has none either
    help="Create key pairs and the command-signature key; rotate or revoke a log's sealer "
    "key; show the key chain.",
    no_args_is_help=True,
)

NewKeyOut = Annotated[
    Path,
    typer.Option(
        "--out",
        help="Where to write the private key (mode 0600; never inside a store).",
        show_default=False,
    ),
]


def _write_new(name: str, out: Path, role: str, stores: list[Path]) -> keys.Signer:
    out_abs = out.resolve()
    for root in stores:
        if root.resolve() == out_abs or root.resolve() in out_abs.parents:
            raise UsageError("a private key must not be written inside an evidence store")
    signer = keys.generate(name)
    keys.write_private_key(signer, out, role)
    return signer


@keys_app.command("new")
@_handles_errors
def keys_new_cmd(
    out: NewKeyOut,
    store_dir: Annotated[
        Path | None,
        typer.Option(
            "--store",
            help="Make a sealer key for this store's log (named after its origin), "
            "for a later `keys rotate`.",
        ),
    ] = None,
    role: Annotated[
        str,
        typer.Option(help="sealer, root (signs trust policies) or custodian (signs bundles)."),
    ] = "sealer",
    name: Annotated[
        str | None,
        typer.Option(help="Key name for root and custodian keys (no spaces, no '+')."),
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Create an Ed25519 key pair; print its public vkey."""
    if role not in keys.ROLES:
        raise UsageError(f"--role must be one of {', '.join(keys.ROLES)}")
    stores = [store_dir] if store_dir else []
    if role == "sealer":
        if store_dir is None:
            raise UsageError("a sealer key belongs to a log: pass --store STORE")
        key_name = store.Store.open(store_dir).origin
    elif name:
        key_name = name
    elif store_dir is not None:
        key_name = f"{store.Store.open(store_dir).origin}/{role}"
    else:
        raise UsageError(f"a {role} key needs --name (or --store to name it after a log)")
    signer = _write_new(key_name, out, role, stores)
    vkey = signer.verifier.vkey()
    registered = False
    if role == "custodian" and store_dir is not None:
        registered = custodians.register(store.Store.open(store_dir), signer.verifier)
    if json_out:
        _emit(
            {
                "command": "keys new",
                "role": role,
                "key_path": str(out),
                "vkey": vkey,
                "registered": registered,
            }
        )
    else:
        err.print(f"[green]created[/] {role} key {out} (mode 0600)\n  vkey {vkey}")
        if registered:
            err.print(f"  registered in {custodians.REGISTRY} of the store")


@keys_app.command("add-custodian")
@_handles_errors
def keys_add_custodian_cmd(
    store_dir: StoreArg,
    vkey: Annotated[
        str,
        typer.Argument(help="The custodian's vkey (or a file holding it).", show_default=False),
    ],
    json_out: JsonOpt = False,
) -> None:
    """Register a responder's custodian key in the store's list (keys/custodians.vkey).

    Verifiers hold decisions to this list when no trust policy names custodians; `acdkit
    policy sign` puts the registered keys in the next policy.
    """
    st = store.Store.open(store_dir)
    key = _typed_key(vkey, "VKEY", keys.Verifier.parse)
    added = custodians.register(st, key)
    if json_out:
        _emit({"command": "keys add-custodian", "key_id": key.key_id.hex(), "added": added})
    else:
        what = "registered" if added else "already registered"
        err.print(f"[green]{what}[/] custodian key {key.key_id.hex()} ({key.name})")


@keys_app.command("sig-new")
@_handles_errors
def keys_sig_new_cmd(
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            envvar="ACDKIT_SIG_KEY",
            help="Where to write the key (mode 0600; never inside a store) "
            f"\\[default: $ACDKIT_KEY_DIR/{cmdsig.KEY_FILE_NAME}].",
        ),
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Create the organization's command-signature key; print its key ID, never the key.

    Make it once, then copy the file to every collector of the organization: the same
    command shape gives the same signature only under the same key.
    """
    path = out or cmdsig.default_key_path()
    key = cmdsig.create_key(path)
    if json_out:
        _emit({"command": "keys sig-new", "key_path": str(path), "key_id": key.key_id})
    else:
        err.print(
            f"[green]created[/] command-signature key {path} (mode 0600)\n"
            f"  key id {key.key_id}\n"
            "Copy it to every collector of the organization; keep it off every store."
        )


@keys_app.command("rotate")
@_handles_errors
def keys_rotate_cmd(
    store_dir: StoreArg,
    to: Annotated[
        Path,
        typer.Option(
            "--to",
            help="The incoming sealer key (from `acdkit keys new --store`).",
            show_default=False,
        ),
    ],
    key: KeyOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Hand the log to a new sealer key: a KEY entry signed by both keys, sealed at once.

    The outgoing key signs the checkpoint that closes the rotation; from then on only the
    incoming key can seal. Run it when a key is due or suspected lost, then destroy the old
    private key.
    """
    st = store.Store.open(store_dir)
    current = _signer_for(st, key)
    incoming = keys.load_signer(to)
    report = rotation.rotate(st, current, incoming)
    doc: dict[str, Any] = {
        "command": "keys rotate",
        "store": str(st.root),
        "from_key_id": current.verifier.key_id.hex(),
        "to_key_id": incoming.verifier.key_id.hex(),
        **_seal_doc(report),
    }
    if json_out:
        _emit(doc)
    else:
        _print_seal(report)
        err.print(
            f"[green]rotated[/] {doc['from_key_id']} → {doc['to_key_id']}; seal with "
            f"{to} from now on"
        )


@keys_app.command("revoke")
@_handles_errors
def keys_revoke_cmd(
    store_dir: StoreArg,
    revoked: Annotated[
        str,
        typer.Option(
            "--revoke",
            help="vkey of the key to revoke (an earlier, leaked key).",
            show_default=False,
        ),
    ],
    key: KeyOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Record in the log that an earlier sealer key may sign nothing any more."""
    st = store.Store.open(store_dir)
    current = _signer_for(st, key)
    target = _typed_key(revoked, "--revoke", keys.Verifier.parse)
    report = rotation.revoke(st, current, target)
    if json_out:
        _emit(
            {"command": "keys revoke", "revoked_key_id": target.key_id.hex(), **_seal_doc(report)}
        )
    else:
        _print_seal(report)
        err.print(f"[green]revoked[/] {target.key_id.hex()}")


@keys_app.command("show")
@_handles_errors
def keys_show_cmd(store_dir: StoreArg, json_out: JsonOpt = False) -> None:
    """List the log's sealer keys in order, as its sealed KEY entries record them."""
    st = store.Store.open(store_dir)
    chain = read_chain(st)
    rows = [
        {
            "key_id": k.key_id.hex(),
            "vkey": k.vkey(),
            "current": k == chain.current,
            "revoked": k.key_id in chain.revoked,
        }
        for k in chain.keys
    ]
    held = [k.vkey() for k in custodians.registered(st) or []]
    if json_out:
        _emit({"command": "keys show", "store": str(st.root), "keys": rows, "custodians": held})
        return
    for row in rows:
        flags = " (current)" if row["current"] else " (revoked)" if row["revoked"] else ""
        err.print(f"  {row['key_id']}{flags}  {row['vkey']}")
    for vkey in held:
        err.print(f"  custodian  {vkey}")


# -- policy -------------------------------------------------------------------------------------

policy_app = typer.Typer(
    add_completion=False,  # a subcommand group; the top level has none either
    help="Issue and show the root-signed trust policy of a log.",
    no_args_is_help=True,
)


def _sealer_window(value: str) -> SealerWindow:
    """VKEY or VKEY@FROM..UNTIL (times YYYY-MM-DDTHH:MM:SSZ, either side may be empty)."""
    vkey, _, span = value.partition("@")
    key = _typed_key(vkey, "--sealer", keys.Verifier.parse)
    start, _, end = span.partition("..")
    try:
        return SealerWindow(
            key,
            policy.parse_time(start or "-", "from"),
            policy.parse_time(end or "-", "until"),
        )
    except MalformedError as exc:
        raise UsageError(f"--sealer {_shown(value)}: {exc.message}") from None


def _custodian_window(value: str) -> SealerWindow:
    """VKEY or VKEY@FROM..UNTIL, as for --sealer (a custodian's name may hold an '@')."""
    vkey, sep, span = value.rpartition("@")
    if not sep or ".." not in span:
        vkey, span = value, ""
    key = _typed_key(vkey, "--custodian", keys.Verifier.parse)
    start, _, end = span.partition("..")
    try:
        return SealerWindow(
            key,
            policy.parse_time(start or "-", "from"),
            policy.parse_time(end or "-", "until"),
        )
    except MalformedError as exc:
        raise UsageError(f"--custodian {_shown(value)}: {exc.message}") from None


def _tsa_arg(value: str) -> policy.TsaRoot:
    """NAME=ROOT.pem[,POLICY-OID]"""
    name, _, rest = value.partition("=")
    pem_path, _, oid = rest.partition(",")
    from cryptography import x509  # ~12 ms: only `keys policy --tsa` reads certificates

    try:
        data = read_bounded(Path(pem_path), 1 << 20, "TSA root certificate")
        der = x509.load_pem_x509_certificate(data).public_bytes(serialization.Encoding.DER)
    except (OSError, ValueError, MalformedError):
        raise UsageError(f"--tsa {_shown(value)}: cannot read a PEM certificate") from None
    return policy.TsaRoot(name, oid or None, der)


def _chain_windows(chain: KeyChain) -> list[SealerWindow]:
    """Each key of the log from its rotation in to its rotation out (whole seconds, the
    end rounded up); only the current key stays open.  A key rotated away keeps no
    authority: a bundle it signs later is outside its window."""
    starts: dict[bytes, int] = {}
    ends: dict[bytes, int] = {}
    previous = chain.keys[0]
    for _segment, event in chain.events:
        if event.action == ROTATE:
            ends[previous.key_id] = -(-event.at_ns // policy.NS) * policy.NS
            starts[event.subject.key_id] = event.at_ns // policy.NS * policy.NS
            previous = event.subject
    return [
        SealerWindow(k, starts.get(k.key_id), ends.get(k.key_id))
        for k in chain.keys
        if k.key_id not in chain.revoked
    ]


@policy_app.command("sign")
@_handles_errors
def policy_sign_cmd(
    store_dir: StoreArg,
    root_key: Annotated[
        Path,
        typer.Option(
            "--root-key", help="The root private key (`keys new --role root`).", show_default=False
        ),
    ],
    sealer: Annotated[
        list[str] | None,
        typer.Option(
            "--sealer",
            help="VKEY\\[@FROM..UNTIL] of a sealer key and its validity window (UTC "
            "YYYY-MM-DDTHH:MM:SSZ; either side may be left open) \\[default: every key of "
            "the log's key chain, each valid from its rotation in to its rotation out; only the "
            "current key open-ended].",
            show_default=False,
        ),
    ] = None,
    witness: Annotated[
        list[str] | None, typer.Option("--witness", help="A witness (cosigner) vkey.")
    ] = None,
    custodian: Annotated[
        list[str] | None,
        typer.Option(
            "--custodian",
            help="VKEY\\[@FROM..UNTIL] of a custodian key that may sign decisions "
            "\\[default: the keys registered in the store, open-ended].",
            show_default=False,
        ),
    ] = None,
    witness_quorum: Annotated[int, typer.Option(min=0, help="Cosignatures required.")] = 0,
    tsa: Annotated[
        list[str] | None,
        typer.Option("--tsa", help="NAME=ROOT.pem[,POLICY-OID]: a trusted time-stamp authority."),
    ] = None,
    seal_interval: Annotated[
        int | None,
        typer.Option(min=1, help="Longest gap between two seals, in seconds (heartbeats)."),
    ] = None,
    anchor_interval: Annotated[
        int | None, typer.Option(min=1, help="Longest gap between two anchors, in seconds.")
    ] = None,
    drift_max_ms: Annotated[
        int | None, typer.Option(min=0, help="Largest clock drift tolerated, milliseconds.")
    ] = None,
    grace: Annotated[
        int, typer.Option(min=0, help="Seconds of grace at key-window boundaries.")
    ] = 300,
    prune_below: Annotated[
        int | None,
        typer.Option(
            "--prune-below",
            min=1,
            max=(1 << 63) - 1,  # a PRUNE entry's u64 bound stays below 2^63 (§17.2)
            help="Allow `acdkit prune` to remove the records of segments that end at or "
            "below this index (retention); never below what the store has pruned already.",
            show_default=False,
        ),
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Sign the next trust policy of a log with the offline root key."""
    st = store.Store.open(store_dir)
    gone = pruned_extent(st)
    if gone and (prune_below is None or prune_below < gone):
        # records removed cannot come back: a policy that forbids it would make the store
        # TAMPERED (docs/evidence-format.md §17.4)
        raise UsageError(
            f"the store is pruned below {gone:,} already: --prune-below must be at least that"
        )
    root = keys.load_signer(root_key)
    windows = [_sealer_window(v) for v in sealer] if sealer else _chain_windows(read_chain(st))
    new = policy.Policy(
        st.origin,
        len(policy.policy_files(st)) + 1,
        time.time_ns() // policy.NS * policy.NS,
        windows,
        [keys.WitnessVerifier.parse(v).vkey() for v in witness or []],
        witness_quorum,
        [_tsa_arg(t) for t in tsa or []],
        seal_interval,
        anchor_interval,
        drift_max_ms,
        grace,
        [_custodian_window(v) for v in custodian]
        if custodian
        else [SealerWindow(k) for k in custodians.registered(st) or []],
        prune_below=prune_below,
    )
    try:
        policy.Policy.from_text(new.text())
    except MalformedError as exc:
        raise UsageError(f"the policy is not valid: {exc.message}") from None
    path = policy.write_policy(st, new, root)
    if json_out:
        _emit(
            {
                "command": "policy sign",
                "path": str(path),
                "serial": new.serial,
                "root_vkey": root.verifier.vkey(),
                "text": new.text(),
            }
        )
    else:
        err.print(f"[green]signed[/] trust policy {new.serial} → {path}")
        err.print(f"  root vkey {root.verifier.vkey()} (pin it with `verify --root`)")


@policy_app.command("show")
@_handles_errors
def policy_show_cmd(store_dir: StoreArg, json_out: JsonOpt = False) -> None:
    """Print the store's newest trust policy (checked against the store's root vkey)."""
    st = store.Store.open(store_dir)
    loaded = policy.load_policy(st, None)
    if loaded is None:
        raise UsageError("this store has no trust policy", hint="`acdkit policy sign`")
    if json_out:
        _emit(
            {
                "command": "policy show",
                "serial": loaded.policy.serial,
                "sha256": loaded.sha256,
                "text": loaded.policy.text(),
            }
        )
    else:
        sys.stdout.write(loaded.policy.text())
