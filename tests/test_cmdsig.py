"""Command signatures (cs1, docs/evidence-format.md §14): the vectors of the specification, a
second implementation written from its text, the key's life cycle, and ingest end to end.

No format on main carries command lines yet, so the ingest tests use `_cmdformat`, a
test-only format that feeds the shared projection's ``cmdline`` input as a real one would.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import stat
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

import _cmdformat
from _scan import hits
from acdkit import bundle, cmdsig, ingest, keys, minimize, schema
from acdkit.cli import app
from acdkit.errors import MalformedError, UsageError
from acdkit.seal import seal
from acdkit.sources import _lines
from acdkit.store import Store

SPEC = Path(__file__).resolve().parents[1] / "docs" / "evidence-format.md"
VECTOR_KEY = bytes(range(32))


def _section(title: str) -> str:
    text = SPEC.read_text()
    start = text.index(title)
    end = text.find("\n#", start + len(title))
    return text[start : end if end > 0 else None]


def doc_vectors() -> list[dict[str, Any]]:
    block = _section("### 14.4 Test vectors").split("```json\n", 1)[1].split("```", 1)[0]
    return [json.loads(line) for line in block.splitlines() if line.strip()]


# -- a second implementation, from the text of §14.2 -----------------------------------------

BLANKS = "\t\n\v\f\r \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"


def _expand(pattern: str) -> str:
    """The §14.2 macros spelled out for Python's `re` (used with re.ASCII for ``\\b``)."""
    pattern = pattern.replace("[^/{B}]", f"[^/{BLANKS}]")
    simple = {
        "B": f"[{BLANKS}]",
        "N": f"[^{BLANKS}]",
        "S": r"[\\/]",
        "NAME": f"[^\\\\/{BLANKS}]+",
        "D": r"\b[A-Za-z][:$]",
        "H": f"(^|[{BLANKS}=:,])",
    }
    simple["P"] = f"({simple['S']}{simple['N']}*|\\b)"

    def one(m: re.Match[str]) -> str:
        name = m.group(1)
        if name.startswith("ci:"):
            return "".join(f"[{c.upper()}{c.lower()}]" if c.isalpha() else c for c in name[3:])
        return simple[name]

    return re.sub(r"\{(B|N|S|NAME|D|P|H|ci:[a-z ]+)\}", one, pattern)


def spec_rules() -> list[tuple[str, str]]:
    """(pattern, replacement) of each line of the replacement table, read from the spec."""
    block = _section("### 14.2 Normalization").split("```\n", 1)[1].split("```", 1)[0]
    rules, pending = [], None
    for raw in block.splitlines():
        text = raw.strip()
        if not text:
            continue
        if "->" not in text:
            pending = text.split(None, 1)[1]
            continue
        left, repl = (part.strip() for part in text.rsplit("->", 1))
        pattern = pending if pending is not None else left.split(None, 1)[1].strip()
        pending = None
        repl = {"(nothing)": "", "one U+0020": " "}.get(repl, repl)
        rules.append((_expand(pattern), repl))
    return rules


RULES = spec_rules()
EXE = re.compile(f'^[{BLANKS}]*("[^"]*"?|[^{BLANKS}"]+)(.*)$', re.S)
WINDOWS = re.compile(r'\\|^"?[A-Za-z]:|\.(exe|com|bat|cmd)"?$', re.I | re.A)


def spec_normalize(text: str) -> str | None:
    m = EXE.match(text)
    if m is None:
        return None
    exe, rest = m.group(1), m.group(2)
    if WINDOWS.search(exe):
        exe = "".join(chr(ord(c) + 32) if "A" <= c <= "Z" else c for c in exe)
    text = exe + rest
    for pattern, repl in RULES:
        text = re.sub(pattern, repl, text, flags=re.A)
    return text.strip(" ") or None


def spec_sign(normalized: str, key: bytes) -> str:
    kid = hashlib.sha256(b"acdkit/cs1/key-id\n" + key).digest()[:8].hex()
    mac = hmac.new(key, b"acdkit/cs1\n" + normalized.encode(), hashlib.sha256).digest()
    return f"cs1:{kid}:{mac[:16].hex()}"


def test_the_spec_lists_every_rule_of_the_code() -> None:
    assert len(RULES) == len(cmdsig.RULES) == 18


def test_spec_vectors() -> None:
    vectors = doc_vectors()
    assert len(vectors) >= 8
    key = cmdsig.SigKey(VECTOR_KEY)
    assert key.key_id == "d4e5b22952020375" in _section("### 14.4 Test vectors")
    lines = pa.array([v["cmdline"] for v in vectors])
    assert cmdsig.normalize(lines).to_pylist() == [v["normalized"] for v in vectors]
    assert cmdsig.sign_column(lines, key).to_pylist() == [v["sig"] for v in vectors]
    for v in vectors:
        assert spec_normalize(v["cmdline"]) == v["normalized"]
        if v["normalized"] is not None:
            assert spec_sign(v["normalized"], VECTOR_KEY) == v["sig"]
            assert re.fullmatch("cs1:[0-9a-f]{16}:[0-9a-f]{32}", v["sig"])
    # one shape from two hosts: the same signature
    assert vectors[2]["sig"] == vectors[3]["sig"]


PIECES = [
    "C:\\Users\\", "c:/users/", "D:\\Documents and Settings\\", "c$\\Users\\", "bob", "Alice",
    "\\AppData\\Local\\Temp\\", "\\appdata\\local\\TEMP", "%TEMP%", "%tmp%\\", "%UserProfile%",
    "%HOMEDRIVE%%HOMEPATH%", "%LOCALAPPDATA%\\Temp", "C:\\Windows\\Temp\\", "/tmp", "/tmp/",
    "/var/tmp/x", "/private/var/folders/ab/T/", "/dev/shm/", "/home/", "/Users/", "~", "~bob",
    "0x", "0X1F", "1f", "deadbeefdeadbeef00", "{", "}", "-", "6F9619FF-8B86-D011-B42D-00C04FC964FF",
    '"', "'", " ", "  ", "\t", "\n", "\v", "\u3000", "\u00a0", "\u2028", "\u200b", "\x85", ".exe",
    ".EXE", ".Cmd", "\\??\\", "\\\\?\\", "=", ":", ",", "/", "\\", "a", "Z", "_", "9", "123",
    "\u212a", "\u017f", "\u0130", "\u00e9", "cmd.exe", "PsExec.exe", "x.bat\"", "<n>",
]  # fmt: skip


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(PIECES) | st.text(max_size=3), max_size=14))
def test_code_and_spec_normalize_alike(parts: list[str]) -> None:
    text = "".join(parts)
    assert cmdsig.normalize(pa.array([text])).to_pylist() == [spec_normalize(text)]


SAME_SHAPE = [
    (
        r"C:\Users\alice\AppData\Local\Temp\a81f.ps1 -Run 12",
        r"c:\USERS\bob\appdata\local\temp\ff02.PS1    -Run 7",
    ),
    (
        r'"C:\Program Files\Acme\AGENT.EXE" --host 10.0.0.5 --pid 4100',
        r"c:\program files\acme\agent.exe --host 10.9.8.7 --pid 512",
    ),
    (
        "/home/alice/bin/backup --to=/tmp/bk.8Fq2 --session {0f8fad5b-d9cb-469f-a165-70867728950e}",
        "/home/bob/bin/backup  --to=/tmp/bk.x1  --session 7c9e6679-7425-40de-944b-e07fc1f90ae7",
    ),
    (r"reg save HKLM\SAM C:\Windows\Temp\s.hiv", r"reg save HKLM\SAM C:\WINDOWS\TEMP\other.hiv"),
]
OTHER_SHAPE = [
    ("reg save HKLM\\SAM x", "reg save HKLM\\SECURITY x"),  # arguments keep their case
    ("cmd.exe /c whoami", "cmd.exe /c hostname"),
    ("/usr/bin/python3 -c x", "/usr/bin/perl -c x"),
]


@pytest.mark.parametrize(("a", "b"), SAME_SHAPE)
def test_one_shape_on_two_hosts_has_one_signature(a: str, b: str) -> None:
    key = cmdsig.SigKey(VECTOR_KEY)
    first, second = cmdsig.sign_column(pa.array([a, b]), key).to_pylist()
    assert first == second is not None


@pytest.mark.parametrize(("a", "b"), OTHER_SHAPE)
def test_other_commands_have_other_signatures(a: str, b: str) -> None:
    key = cmdsig.SigKey(VECTOR_KEY)
    first, second = cmdsig.sign_column(pa.array([a, b]), key).to_pylist()
    assert first != second


def test_another_key_gives_other_signatures_with_another_key_id() -> None:
    lines = pa.array([v["cmdline"] for v in doc_vectors() if v["sig"]])
    mine = cmdsig.sign_column(lines, cmdsig.SigKey(VECTOR_KEY)).to_pylist()
    theirs = cmdsig.sign_column(lines, cmdsig.SigKey(bytes(32))).to_pylist()
    assert all(a.split(":")[1] != b.split(":")[1] for a, b in zip(mine, theirs, strict=True))
    assert not set(mine) & set(theirs)


def test_one_hmac_per_distinct_shape(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    original = cmdsig.SigKey.sign

    def counting(self: cmdsig.SigKey, normalized: str) -> str:
        calls.append(normalized)
        return original(self, normalized)

    monkeypatch.setattr(cmdsig.SigKey, "sign", counting)
    shapes = [r"C:\Users\a\AppData\Local\Temp\1.exe /q", r"C:\Users\b\AppData\Local\Temp\2.exe /q"]
    lines = pa.array(([*shapes, "whoami", None, "  "]) * 20_000)
    signed = cmdsig.sign_column(lines, cmdsig.SigKey(VECTOR_KEY))
    assert sorted(calls) == ["<temp> /q", "whoami"]
    assert signed.null_count == 2 * 20_000
    assert len(set(signed.to_pylist()) - {None}) == 2


# -- the key ----------------------------------------------------------------------------------


def test_key_file_life_cycle(tmp_path: Path) -> None:
    path = tmp_path / "org" / "cmdsig.key"
    key = cmdsig.create_key(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    lines = path.read_bytes().split(b"\n")
    assert lines[0] == b"# acdkit command-signature key (cs1)" and len(lines[1]) == 64
    secret = bytes.fromhex(lines[1].decode())
    assert cmdsig.load_key(path).key_id == key.key_id == spec_sign("x", secret).split(":")[1]
    assert lines[1].decode() not in repr(key) and key.key_id in repr(key)
    with pytest.raises(UsageError, match="refusing to overwrite"):
        cmdsig.create_key(path)
    assert path.read_bytes().split(b"\n")[1] == lines[1]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"00" * 32 + b"\n", "not an acdkit command-signature key"),
        (b"# acdkit command-signature key (cs1)\n" + b"ab" * 31 + b"\n", "32-byte key"),
        (b"# acdkit command-signature key (cs1)\n" + b"zz" * 32 + b"\n", "32-byte key"),
        (b"# acdkit sealer key for x\n" + b"ab" * 32 + b"\n", "not an acdkit command-sig"),
    ],
)
def test_a_broken_key_file_is_malformed_and_never_echoed(
    tmp_path: Path, content: bytes, message: str
) -> None:
    path = tmp_path / "bad.key"
    path.write_bytes(content)
    with pytest.raises(MalformedError, match=message) as caught:
        cmdsig.load_key(path)
    assert "abab" not in str(caught.value) and "zzzz" not in str(caught.value)


def test_a_key_inside_a_store_is_refused(store: Store, tmp_path: Path) -> None:
    inside = store.root / "keys" / "cmdsig.key"
    with pytest.raises(UsageError, match="inside the evidence store"):
        cmdsig.create_key(inside)
    outside = cmdsig.create_key(tmp_path / "k" / "cmdsig.key")
    inside.write_bytes((tmp_path / "k" / "cmdsig.key").read_bytes())
    with pytest.raises(UsageError, match="inside the evidence store"):
        cmdsig.load_key(inside)
    with pytest.raises(UsageError, match="inside the evidence store"):
        ingest.ingest(store, [], sig_key=cmdsig.KeySource(inside, explicit=True))
    assert outside.key_id


def test_a_named_key_must_exist(store: Store, tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="not found"):
        ingest.ingest(store, [], sig_key=cmdsig.KeySource(tmp_path / "nope.key", explicit=True))
    assert not (tmp_path / "nope.key").exists()


# -- finalize ---------------------------------------------------------------------------------


def _edr_rows(cmdlines: list[str | None]) -> pa.Table:
    n = len(cmdlines)
    return pa.table(
        {
            "src_line": pa.array(range(1, n + 1), pa.uint64()),
            "reject_reason": pa.array([None] * n, pa.string()),
            "event_kind": ["process_create"] * n,
            "ts_utc": pa.array([1_600_000_000 * 10**9] * n, pa.int64()),
            "_cmdline": pa.array(cmdlines, pa.string()),
        }
    )


def test_finalize_turns_command_lines_into_signatures() -> None:
    key = cmdsig.SigKey(VECTOR_KEY)
    rows = _edr_rows(["whoami /all", None, "", "WHOAMI.EXE /all"])
    staged, rejects = minimize.finalize(rows, schema.load("edr"), key)
    assert rejects.num_rows == 0 and "_cmdline" not in staged.column_names
    sigs = staged.column("cmdline_sig").to_pylist()
    assert sigs == [
        spec_sign("whoami /all", VECTOR_KEY),
        None,
        None,
        spec_sign("whoami.exe /all", VECTOR_KEY),
    ]


def test_finalize_refuses_command_lines_without_a_key() -> None:
    with pytest.raises(minimize.KeyRequired):
        minimize.finalize(_edr_rows(["whoami"]), schema.load("edr"))
    staged, _ = minimize.finalize(_edr_rows([None, None]), schema.load("edr"))
    assert staged.column("cmdline_sig").null_count == 2
    with pytest.raises(ValueError, match="dns table has no field"):
        minimize.finalize(_edr_rows(["whoami"]), schema.load("dns"), cmdsig.SigKey(VECTOR_KEY))


# -- through ingest, seal and package ---------------------------------------------------------

PASSWORD = "CANARY-pw-Hunter2"
COMMANDS = [
    r'"C:\Windows\PSEXESVC.exe" -u CORP\CANARY-user -p ' + PASSWORD,
    r"C:\Users\CANARY-alice\AppData\Local\Temp\a1.ps1 -q",
    r"c:\users\CANARY-bob\appdata\local\temp\b2.PS1   -q",
    None,
    "   ",
]


def _cmd_file(path: Path, commands: list[str | None] = COMMANDS) -> Path:
    lines = [
        _cmdformat.line(1_700_000_000.5 + i, "10.0.0.5", "10.0.0.9", 445, cmd)
        for i, cmd in enumerate(commands)
    ]
    path.write_text("".join(lines))
    return path


def _signatures(store: Store, result: ingest.FileResult) -> list[str | None]:
    (d,) = [d for d in store.staged_dirs() if d.name.endswith(result.sha256)]
    return [r["cmd_sig"] for r in ingest.read_staged(d, "net").to_pylist()]


def test_ingest_creates_the_key_on_first_need_and_records_its_id(
    store: Store, signer: keys.Signer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    zeek = Path(__file__).parent / "data" / "zeek-json" / "zat" / "conn.log"
    default = keys.default_key_dir() / "cmdsig.key"
    plain = ingest.ingest(store, [zeek])
    assert plain.sig_key_created is None and not default.exists()  # no command line, no key
    assert "sig_key_id" not in store.ledger_entry(plain.files[0].sha256)  # type: ignore[operator]

    with _cmdformat.registered(monkeypatch):
        report = ingest.ingest(store, [_cmd_file(tmp_path / "cmd.json")])
    (result,) = report.files
    assert (result.status, result.format, result.records["net"]) == ("ingested", "test-cmd", 5)
    assert report.sig_key_created == str(default)
    assert stat.S_IMODE(default.stat().st_mode) == 0o600
    key = cmdsig.load_key(default)
    entry = store.ledger_entry(result.sha256)
    assert entry is not None
    assert (entry["signatures"], entry["sig_key_id"]) == (3, key.key_id)
    assert (result.signatures, result.sig_key_id) == (3, key.key_id)

    temp_shape = spec_sign("<temp> -q", default_secret(default))
    assert _signatures(store, result) == [
        spec_sign(
            f"c:\\windows\\psexesvc.exe -u CORP\\CANARY-user -p {PASSWORD.replace('2', '<n>')}",
            default_secret(default),
        ),
        temp_shape,
        temp_shape,
        None,
        None,
    ]

    out = tmp_path / "bundle"
    seal(store, signer)
    window = bundle.Window(
        bundle.parse_time("2023-01-01T00:00:00Z"), bundle.parse_time("2024-01-01T00:00:00Z")
    )
    pkg = bundle.package(store, signer, "INC-1", window, out)
    assert pkg.disclosed["net"] == 5
    assert hits(store.root, ("CANARY", "Hunter")) == []
    assert hits(out, ("CANARY", "Hunter")) == []
    assert temp_shape in (out / "records" / "net.csv").read_text()

    # the next run finds the key and creates nothing
    again = ingest.ingest(store, [_cmd_file(tmp_path / "two.json", COMMANDS[:2])])
    assert again.sig_key_created is None
    entry = store.ledger_entry(again.files[0].sha256)
    assert entry is not None and entry["sig_key_id"] == key.key_id


def default_secret(path: Path) -> bytes:
    return bytes.fromhex(path.read_text().split("\n")[1])


def test_a_named_key_signs_and_names_itself(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    named = tmp_path / "org.key"
    named.write_bytes(cmdsig.SigKey(VECTOR_KEY).file_bytes())
    with _cmdformat.registered(monkeypatch):
        report = ingest.ingest(
            store, [_cmd_file(tmp_path / "c.json")], sig_key=cmdsig.KeySource(named, True)
        )
    assert report.sig_key_created is None
    assert not (keys.default_key_dir() / "cmdsig.key").exists()
    (result,) = report.files
    assert result.sig_key_id == "d4e5b22952020375"
    assert _signatures(store, result)[1] == spec_sign("<temp> -q", VECTOR_KEY)


def test_the_process_pool_signs_alike(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    named = tmp_path / "org.key"
    named.write_bytes(cmdsig.SigKey(VECTOR_KEY).file_bytes())
    source = cmdsig.KeySource(named, True)
    commands = [f"tool.exe --job {i} C:\\Users\\u{i % 7}\\x.txt" for i in range(3000)]
    with _cmdformat.registered(monkeypatch):
        serial = ingest.ingest(store, [_cmd_file(tmp_path / "a.json", commands)], sig_key=source)
        monkeypatch.setattr(ingest, "PARALLEL_MIN_BYTES", 1)
        monkeypatch.setattr(ingest, "_pool_size", lambda: 2)
        pools: list[object] = []
        make_pool = ingest._make_pool
        monkeypatch.setattr(ingest, "_make_pool", lambda p: pools.append(make_pool(p)) or pools[-1])
        monkeypatch.setattr(_lines, "BLOCK", 20_000)
        pooled = ingest.ingest(
            store, [_cmd_file(tmp_path / "b.json", [*commands, "x"])], sig_key=source
        )
    first, second = _signatures(store, serial.files[0]), _signatures(store, pooled.files[0])
    assert second[:-1] == first and len(set(first)) == 1
    assert first[0] == spec_sign("tool.exe --job <n> <home>\\x.txt", VECTOR_KEY)
    assert pooled.files[0].signatures == 3001
    assert pools and pools[0] is not None  # the workers, not this process, signed


# -- the command line ------------------------------------------------------------------------


def test_keys_sig_new_and_the_ingest_notice(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "org" / "sig.key"
    made = runner.invoke(app, ["keys", "sig-new", "--out", str(out), "--json"])
    assert made.exit_code == 0, made.output
    doc = json.loads(made.stdout)
    secret = out.read_text().split("\n")[1]
    assert doc["key_id"] == cmdsig.load_key(out).key_id and secret not in made.output
    again = runner.invoke(app, ["keys", "sig-new", "--out", str(out)])
    assert again.exit_code == 2 and "refusing to overwrite" in again.output

    st = tmp_path / "store"
    assert runner.invoke(app, ["init", str(st), "--key", str(tmp_path / "s.key")]).exit_code == 0
    inside = runner.invoke(app, ["keys", "sig-new", "--out", str(st / "x.key")])
    assert inside.exit_code == 2 and "inside the evidence store" in inside.output
    missing = runner.invoke(
        app, ["ingest", str(st), str(_cmd_file(tmp_path / "c.json")), "--sig-key", "nope"]
    )
    assert missing.exit_code == 2 and "not found" in missing.output

    with _cmdformat.registered(monkeypatch):
        first = runner.invoke(app, ["ingest", str(st), str(_cmd_file(tmp_path / "d.json"))])
        assert first.exit_code == 0, first.output
        assert "created the organization's command-signature key" in first.stderr
        assert "Copy this file to every other collector" in first.stderr
        default = keys.default_key_dir() / "cmdsig.key"
        assert default_secret(default).hex() not in first.output
        env = {"ACDKIT_SIG_KEY": str(out)}
        named = runner.invoke(
            app,
            ["ingest", str(st), str(_cmd_file(tmp_path / "e.json", COMMANDS[:2])), "--json"],
            env=env,
        )
    assert named.exit_code == 0, named.output
    report = json.loads(named.stdout)
    assert report["sig_key_created"] is None
    assert report["files"][0]["sig_key_id"] == doc["key_id"]
    assert os.path.exists(default)
