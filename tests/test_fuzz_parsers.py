"""Every parser of evidence, fed arbitrary and structurally mutated input (EVIDENCE §3.12.6).

Each must return a value or raise acdkit's MalformedError: never another exception (which
the CLI would report as an internal error, exit 70), and never read an oversized input
whole.  Mutations start from real, valid samples and apply what EVIDENCE §4.1 case 21 lists:
CRLF, control characters, `+` and leading zeros in decimals, 2^64−1 and longer numbers,
more than 100 signature lines, non-canonical base64, truncation; plus byte flips,
insertions and deletions anywhere.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import shutil
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from _evidence import TINY_SEGMENTS, TINY_WINDOW, build_store, forge_bundle, resign_manifest
from acdkit import bundle, keys, logentries, policy, verify
from acdkit.encoding import EntryType, TlvType, entry, parse_tlv, tlv
from acdkit.errors import MalformedError, TamperedError
from acdkit.keychain import ROTATE, key_event_body, parse_key_event
from acdkit.merkle import TreeLevels, leaf_hash
from acdkit.note import Checkpoint, SignedNote, sign_note
from acdkit.proof import TlogProof
from acdkit.remembered import Remembered
from acdkit.sealinfo import SealInfo

ORIGIN = "acdkit/fuzz/00000000-0000-4000-8000-000000000000"
SIGNER = keys.Signer(ORIGIN, keys.Ed25519PrivateKey.from_private_bytes(bytes(range(32))))
FUZZ = settings(
    max_examples=int(os.environ.get("ACDKIT_FUZZ_EXAMPLES", "300")),  # more: a longer hunt
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def only_malformed(parse: Callable[[], Any]) -> Any:
    """The parser's value, or None when it raised MalformedError; anything else escapes."""
    try:
        return parse()
    except MalformedError:
        return None


# -- valid samples -----------------------------------------------------------------------------


def _seal_info() -> SealInfo:
    return SealInfo(
        origin=ORIGIN,
        segment_no=1,
        first_index=5,
        end_index=9,
        record_count=3,
        prev_checkpoint=bytes(range(32)),
        sealed_at_ns=1_700_000_000_000_000_000,
        tool="acdkit 0.1.0",
        sealer_key_id=SIGNER.verifier.key_id,
        sources=["ab" * 32, "cd" * 32],
        ts_min_ns=1,
        ts_max_ns=2,
        tables={"net": {"count": 3, "sha256": "00" * 32, "size": 100, "schema": "11" * 32}},
        collector="host",
    )


SEAL_ENTRY = _seal_info().entry()
CHECKPOINT_TEXT = Checkpoint(ORIGIN, 9, bytes(range(32))).text()
CHECKPOINT = sign_note(CHECKPOINT_TEXT, SIGNER).encode()
_TREE = TreeLevels([leaf_hash(bytes([i])) for i in range(8)] + [leaf_hash(SEAL_ENTRY)])
PROOF = TlogProof(8, tuple(_TREE.proof(8)), CHECKPOINT, SEAL_ENTRY).encode()
MANIFEST = sign_note(
    "acdkit-bundle/1\nincident INC-1\n"
    f"origin {ORIGIN}\ncheckpoint 9\n"
    f"file {'a' * 64} 12 VERIFY.txt\n"
    f"file {'b' * 64} 257 checkpoint/00000000000000000009.checkpoint\n",
    SIGNER,
).encode()
VKEY = SIGNER.verifier.vkey()
_NEW = keys.Signer(ORIGIN, keys.Ed25519PrivateKey.from_private_bytes(bytes(range(1, 33))))
KEY_BODY = key_event_body(ORIGIN, ROTATE, SIGNER, _NEW.verifier, 123, _NEW)
ROOT = keys.Signer("example.org/root", keys.Ed25519PrivateKey.from_private_bytes(bytes(32)))
POLICY = sign_note(
    policy.Policy(
        ORIGIN,
        1,
        1_700_000_000_000_000_000,
        [policy.SealerWindow(SIGNER.verifier), policy.SealerWindow(_NEW.verifier, 5, 10**19)],
        seal_interval_s=300,
        prune_below=1000,  # the optional last line (format §17.1) is mutated too
    ).text(),
    ROOT,
).encode()


def test_samples_are_valid() -> None:
    # the mutations below start from inputs that parse: a test of nothing otherwise
    assert SignedNote.parse(CHECKPOINT).verified_by(SIGNER.verifier)
    assert Checkpoint.from_text(CHECKPOINT_TEXT).size == 9
    assert TlogProof.parse(PROOF).extra == SEAL_ENTRY
    assert SealInfo.from_entry(SEAL_ENTRY) == _seal_info()
    assert len(bundle.parse_manifest(MANIFEST).files) == 2
    assert keys.Verifier.parse(VKEY) == SIGNER.verifier
    assert parse_key_event(KEY_BODY).subject == _NEW.verifier
    assert policy.parse_policy_note(POLICY, ROOT.verifier, "p").serial == 1
    assert logentries.parse_entry(entry(EntryType.KEY, KEY_BODY)).body == KEY_BODY


# -- mutations ---------------------------------------------------------------------------------

_DECIMAL = re.compile(rb"(?<![0-9A-Za-z+/])[0-9]+(?![0-9A-Za-z+/=])")
_B64_PADDED = re.compile(rb"[A-Za-z0-9+/]{4,}=+")
_NUMBERS = [b"+9", b"09", b"-1", b"18446744073709551615", b"9" * 40, b"", b"1e3", b"\xd9\xa9"]


@st.composite
def mutated(draw: st.DrawFn, sample: bytes) -> bytes:
    data = sample
    for _ in range(draw(st.integers(1, 3))):
        op = draw(st.integers(0, 9))
        at = draw(st.integers(0, max(0, len(data) - 1)))
        if op == 0:  # a byte flipped
            if data:
                data = data[:at] + bytes([data[at] ^ draw(st.integers(1, 255))]) + data[at + 1 :]
        elif op == 1:  # bytes inserted
            data = data[:at] + draw(st.binary(min_size=1, max_size=8)) + data[at:]
        elif op == 2:  # bytes deleted, or the input truncated
            data = data[:at] + (
                data[at + draw(st.integers(1, 8)) :] if draw(st.booleans()) else b""
            )
        elif op == 3:  # CRLF at one or every line end
            data = data.replace(b"\n", b"\r\n", -1 if draw(st.booleans()) else 1)
        elif op == 4:  # a control character
            data = (
                data[:at]
                + bytes([draw(st.sampled_from([0, 1, 9, 11, 12, 13, 27, 127]))])
                + data[at:]
            )
        elif op == 5:  # a decimal made non-canonical or too large
            numbers = list(_DECIMAL.finditer(data))
            if numbers:
                m = draw(st.sampled_from(numbers))
                new = draw(st.sampled_from([b"+" + m.group(), b"0" + m.group(), *_NUMBERS]))
                data = data[: m.start()] + new + data[m.end() :]
        elif op == 6:  # the last line repeated past the signature limit
            lines = data.rstrip(b"\n").split(b"\n")
            data = b"\n".join([*lines, *[lines[-1]] * draw(st.integers(1, 120))]) + b"\n"
        elif op == 7:  # base64 made non-canonical: padding removed or the last bits set
            runs = list(_B64_PADDED.finditer(data))
            if runs:
                m = draw(st.sampled_from(runs))
                body = m.group().rstrip(b"=")
                new = body if draw(st.booleans()) else body[:-1] + b"/" + m.group()[len(body) :]
                data = data[: m.start()] + new + data[m.end() :]
        elif op == 8:  # a line duplicated
            lines = data.split(b"\n")
            i = draw(st.integers(0, len(lines) - 1))
            data = b"\n".join([*lines[: i + 1], lines[i], *lines[i + 1 :]])
        else:  # the whole input replaced
            data = draw(st.binary(max_size=300))
    return data


def _text(data: bytes) -> str:
    return data.decode("utf-8", errors="surrogateescape")


# -- the parsers -------------------------------------------------------------------------------


@FUZZ
@given(st.one_of(mutated(CHECKPOINT), mutated(MANIFEST), mutated(POLICY), st.binary()))
def test_signed_note(data: bytes) -> None:
    note = only_malformed(lambda: SignedNote.parse(data))
    if note is not None:
        assert note.text.endswith("\n") and 1 <= len(note.signatures) <= 100
        assert "\r" not in note.text and len(data) <= 1 << 20
        note.verified_by(SIGNER.verifier)  # must not raise either


@FUZZ
@given(st.one_of(mutated(CHECKPOINT_TEXT.encode()), st.binary()))
def test_checkpoint(data: bytes) -> None:
    cp = only_malformed(lambda: Checkpoint.from_text(_text(data)))
    if cp is not None:  # what parses re-encodes to the same text (canonical)
        assert cp.text() == _text(data) and 0 <= cp.size < 1 << 63 and len(cp.root) == 32


@FUZZ
@given(st.one_of(mutated(PROOF), st.binary()))
def test_tlog_proof(data: bytes) -> None:
    proof = only_malformed(lambda: TlogProof.parse(data))
    if proof is not None:
        assert len(proof.hashes) <= 64 and all(len(h) == 32 for h in proof.hashes)
        assert proof.encode() == data  # canonical: nothing is lost or normalized


@FUZZ
@given(st.one_of(mutated(SEAL_ENTRY), st.binary()))
def test_seal_entry(data: bytes) -> None:
    info = only_malformed(lambda: SealInfo.from_entry(data))
    if info is not None:
        assert len(info.prev_checkpoint) == 32 and len(info.sealer_key_id) == 4


@FUZZ
@given(st.one_of(mutated(SEAL_ENTRY[38:]), mutated(KEY_BODY), st.binary()))
def test_tlv_body(data: bytes) -> None:
    fields = only_malformed(lambda: parse_tlv(data))
    if fields is not None:
        ids = [f[0] for f in fields]
        assert ids == sorted(set(ids))
        assert b"".join(tlv(i, k, v) for i, k, v in fields) == data


@FUZZ
@given(st.one_of(mutated(MANIFEST), st.binary()))
def test_bundle_manifest_and_its_paths(data: bytes) -> None:
    manifest = only_malformed(lambda: bundle.parse_manifest(data))
    if manifest is not None:
        for rel in manifest.files:
            parts = rel.split("/")
            assert not rel.startswith("/") and ".." not in parts and "." not in parts
            assert all(re.fullmatch(r"[A-Za-z0-9._-]+", p) for p in parts)


@FUZZ
@given(st.one_of(mutated(VKEY.encode()), st.binary()))
def test_vkey(data: bytes) -> None:
    verifier = only_malformed(lambda: keys.Verifier.parse(_text(data)))
    if verifier is not None:
        assert len(verifier.public) == 32


@FUZZ
@given(st.one_of(mutated(KEY_BODY), mutated(entry(EntryType.KEY, KEY_BODY)), st.binary()))
def test_key_entry_and_log_entries(data: bytes) -> None:
    only_malformed(lambda: parse_key_event(data))
    only_malformed(lambda: logentries.parse_entry(data))
    only_malformed(lambda: logentries.unpack(data))


@FUZZ
@given(st.one_of(mutated(POLICY), st.binary()))
def test_policy_note(data: bytes) -> None:
    # a policy that parses but is not the root's is TAMPERED, which is a verdict too
    with contextlib.suppress(TamperedError):
        only_malformed(lambda: policy.parse_policy_note(data, ROOT.verifier, "p"))


@FUZZ
@given(
    st.one_of(
        mutated(
            json.dumps(
                {
                    "format": "acdkit-verifier-state/1",
                    "checkpoint": base64.b64encode(CHECKPOINT).decode(),
                }
            ).encode()
        ),
        st.binary(),
    )
)
def test_verifier_state_file(tmp_path_factory: pytest.TempPathFactory, data: bytes) -> None:
    path = tmp_path_factory.mktemp("state") / "state.json"
    path.write_bytes(data)
    only_malformed(lambda: Remembered.load(path))


# -- found by the suites -----------------------------------------------------------------------


def _seal_body(sources: bytes) -> bytes:
    u64 = (0).to_bytes(8, "big")
    return b"".join(
        [
            tlv(1, TlvType.UTF8, b"acdkit/x/y"),
            *(tlv(fid, TlvType.U64, u64) for fid in (2, 3, 4, 5)),
            tlv(6, TlvType.BYTES, bytes(32)),
            tlv(9, TlvType.I64, u64),
            tlv(10, TlvType.UTF8, b"acdkit 0.1.0"),
            tlv(11, TlvType.BYTES, bytes(4)),
            tlv(12, TlvType.UTF8LIST, sources),
            tlv(13, TlvType.UTF8, b"host"),
        ]
    )


@pytest.mark.parametrize(
    "sources",
    [
        b"\x00\x00\x00\x02\xb7a",  # an item that is not UTF-8 (found by the bit-flip suite)
        b"\x00\x00\x00\x09abc",  # an item longer than what is left of the field
        b"\x00\x00",  # a truncated item length
    ],
)
def test_seal_source_list_damage_is_malformed(sources: bytes) -> None:
    with pytest.raises(MalformedError):
        SealInfo.from_entry(entry(EntryType.SEAL, _seal_body(sources)))


def test_pinned_key_that_is_not_utf8_is_a_verdict_not_a_crash(tmp_path: Path) -> None:
    # found by the vkey fuzzer: argv reaches Python with undecodable bytes as surrogates,
    # and computing the key ID of such a name raised UnicodeEncodeError (exit 70)
    from typer.testing import CliRunner

    from acdkit.cli import app

    (tmp_path / "store").mkdir()
    (tmp_path / "store/acdkit-store.json").write_text("{}")
    result = CliRunner().invoke(app, ["verify", str(tmp_path / "store"), "--key", "\udce1" + VKEY])
    assert result.exit_code == 2, result.output
    assert "verifier key name is not UTF-8" in result.stderr


# -- hostile bundles ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def small_bundle(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, keys.Signer]:
    """A bundle of real records, and a forger: someone with a key of their own whose
    bundle a recipient checks without pinning a key."""
    base = tmp_path_factory.mktemp("small")
    store, signer = build_store(base / "store", base / "k" / "sealer.key", TINY_SEGMENTS)
    bundle.package(store, signer, "INC-1", TINY_WINDOW, base / "bundle")
    forger = keys.generate(store.origin)
    assert bundle.verify_bundle(base / "bundle").verdict == 0
    return base / "bundle", forger


def _copy(src: Path, dest: Path) -> Path:
    shutil.copytree(src, dest)
    return dest


def test_forged_bundle_of_the_same_entries_verifies_unpinned_only(
    small_bundle: tuple[Path, keys.Signer], tmp_path: Path
) -> None:
    # the control for the tests below: forging works, and pinning the real key catches it
    root = _copy(small_bundle[0], tmp_path / "b")
    real = keys.Verifier.parse((root / "key/sealer.vkey").read_text())
    forge_bundle(root, {}, small_bundle[1])
    assert bundle.verify_bundle(root).verdict_name == "VERIFIED"
    assert bundle.verify_bundle(root, real).verdict_name == "TAMPERED"


@FUZZ
@given(
    kind=st.sampled_from(["record", "seal"]),
    data=st.one_of(
        st.binary(max_size=64).map(lambda b: b"ACDK\x01" + b),
        mutated(SEAL_ENTRY),
        st.binary(max_size=64),
    ),
)
def test_forged_bundle_with_any_entry_gives_a_verdict(
    small_bundle: tuple[Path, keys.Signer],
    tmp_path_factory: pytest.TempPathFactory,
    kind: str,
    data: bytes,
) -> None:
    # every proof holds, so the verifier's checks 6 and 7 parse the entry bytes themselves
    root = _copy(small_bundle[0], tmp_path_factory.mktemp("forged") / "b")
    directory = "proofs" if kind == "record" else "seals"
    index = int(sorted((root / directory).iterdir())[0].name.split(".")[0])
    forge_bundle(root, {index: data}, small_bundle[1])
    report = bundle.verify_bundle(root)  # no exception, whatever the bytes
    assert report.verdict_name in {"VERIFIED", "TAMPERED", "MALFORMED"}


@pytest.mark.parametrize(
    "entry_bytes", [b"ACDK\x01", b"ACDK\x01\x01", b"ACDK\x01\x02" + bytes(32)], ids=repr
)
def test_forged_short_record_entry_is_a_verdict(
    small_bundle: tuple[Path, keys.Signer], tmp_path: Path, entry_bytes: bytes
) -> None:
    # found by the forged-bundle fuzzer: a proven entry shorter than its header made check
    # 6 raise IndexError (exit 70)
    root = _copy(small_bundle[0], tmp_path / "b")
    index = int(sorted((root / "proofs").iterdir())[0].name.split(".")[0])
    forge_bundle(root, {index: entry_bytes}, small_bundle[1])
    report = bundle.verify_bundle(root)
    assert report.verdict_name in {"TAMPERED", "MALFORMED"}, report.to_json()


# -- inputs too large to be what they claim -----------------------------------------------------

BIG = 100 << 20


def _peak_while(run: Callable[[], Any]) -> tuple[Any, int, float]:
    tracemalloc.start()
    started = time.monotonic()
    try:
        value = run()
        return value, tracemalloc.get_traced_memory()[1], time.monotonic() - started
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("target", ["MANIFEST.note", "listed file", "checkpoint", "proof"])
def test_a_100_mb_bundle_file_is_refused_without_being_read_whole(
    small_bundle: tuple[Path, keys.Signer], tmp_path: Path, target: str
) -> None:
    root = _copy(small_bundle[0], tmp_path / "b")
    if target == "MANIFEST.note":
        with (root / bundle.MANIFEST).open("r+b") as fh:
            fh.truncate(BIG)
    else:
        rel = {
            "listed file": "summary/summary.md",
            "checkpoint": next((root / "checkpoint").iterdir()).relative_to(root).as_posix(),
            "proof": sorted((root / "proofs").iterdir())[0].relative_to(root).as_posix(),
        }[target]
        with (root / rel).open("r+b") as fh:
            fh.truncate(BIG)
        resign_manifest(root, small_bundle[1])  # listed with its true size and digest
        (root / "key/sealer.vkey").write_text(small_bundle[1].verifier.vkey() + "\n")
        resign_manifest(root, small_bundle[1])
    report, peak, seconds = _peak_while(lambda: bundle.verify_bundle(root))
    assert report.verdict_name in {"TAMPERED", "MALFORMED"}, report.to_json()
    # the manifest is read to its limit (16 MiB, spec §9.2) at most; nothing else is held
    assert peak < bundle.MANIFEST_LIMIT + (4 << 20), f"{peak:,} bytes allocated"
    assert seconds < 10


@pytest.mark.parametrize("target", ["segment.key", "seal.entry", "checkpoint", "vkey"])
def test_a_100_mb_store_file_is_refused_without_being_read_whole(
    tmp_path: Path, target: str
) -> None:
    store, _ = build_store(tmp_path / "store", tmp_path / "k" / "sealer.key", TINY_SEGMENTS)
    path = {
        "segment.key": store.segment_dirs()[0] / "segment.key",
        "seal.entry": store.segment_dirs()[0] / "seal.entry",
        "checkpoint": store.checkpoint_files()[0],
        "vkey": store.vkey_path,
    }[target]
    with path.open("r+b") as fh:
        fh.truncate(BIG)
    report, peak, seconds = _peak_while(lambda: verify.verify_store(store, require_outside=False))
    assert report.verdict_name == "MALFORMED", report.to_json()
    assert peak < 8 << 20, f"{peak:,} bytes allocated"
    assert seconds < 10
