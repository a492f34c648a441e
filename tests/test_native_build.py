"""The batch SHA-256 library as an install makes it: real wheels built by the project's own
hook (hatch_build.py) from a copy of this tree, installed into a folder of their own, and the
library in them replaced by broken, foreign or stale files.

Each install is run in a child process (PYTHONPATH = the install), so a library that kills
its process fails the test instead of pytest.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from acdkit import _batchsha
from acdkit.cli import app

REPO = Path(__file__).resolve().parents[1]
LIB, STAMP, SOURCE = "_libsha256many.so", "_libsha256many.so.json", "_sha256many.c"


def _compiler() -> str | None:
    return shutil.which(os.environ.get("CC", "cc").split()[0])


if _compiler() is None and os.environ.get("ACDKIT_CI") != "1":  # CI must have one
    pytest.skip("no C compiler: the library cannot be built here", allow_module_level=True)


def _hook_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("hatch_build", REPO / "hatch_build.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


hook = _hook_module()


def _copy_tree(dest: Path) -> Path:
    """The project's files as a fresh clone would hold them (no build output, no venv)."""
    listed = subprocess.run(
        ["git", "-C", str(REPO), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        capture_output=True, check=True,
    ).stdout.split(b"\0")  # fmt: skip
    for name in filter(None, listed):
        src = REPO / name.decode()
        if src.is_file():
            (dest / name.decode()).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name.decode())
    return dest


def _pip_wheel(tree: Path, out: Path) -> list[str]:
    # verbose, so the hook's messages are kept; with the hatchling of the dev install
    return [sys.executable, "-m", "pip", "wheel", "-v", "--no-deps", "--no-build-isolation",
            "--no-cache-dir", "-w", str(out), str(tree)]  # fmt: skip


def _wheel(tree: Path, out: Path, **env: str) -> tuple[Path, str]:
    """Build a wheel of ``tree`` with pip."""
    done = subprocess.run(
        _pip_wheel(tree, out), capture_output=True, text=True, env={**os.environ, **env},
        timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    (wheel,) = out.glob("acdkit-*.whl")
    return wheel, done.stdout + done.stderr


def _install(wheel: Path, target: Path) -> Path:
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-cache-dir",
         "--target", str(target), str(wheel)],
        check=True, capture_output=True, timeout=600,
    )  # fmt: skip
    return target


def _run(target: Path, code: str, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=600,
        env={**os.environ, "PYTHONPATH": str(target), **env},
    )  # fmt: skip


ENGINE = "import acdkit, acdkit._batchsha as b; print(b.engine(), acdkit.__file__)"
CLI = "from acdkit.cli import main; main()"


def _engine(target: Path, **env: str) -> tuple[str, str]:
    done = _run(target, ENGINE, **env)
    assert done.returncode == 0, f"exit {done.returncode}: {done.stderr[-2000:]}"
    engine, module = done.stdout.split()
    assert Path(module).is_relative_to(target), module  # the install, not this checkout
    return engine, done.stderr


def _snapshot(tree: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(tree)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in tree.rglob("*") if p.is_file()}  # fmt: skip


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A wheel built from a copy of this tree, and that wheel installed."""
    base = tmp_path_factory.mktemp("wheel")
    tree = _copy_tree(base / "tree")
    before = _snapshot(tree)
    wheel, _ = _wheel(tree, base / "dist")
    assert _snapshot(tree) == before, "the wheel build wrote into the source tree"
    return wheel, _install(wheel, base / "site")


@pytest.fixture(scope="module")
def sealed_store(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int]:
    base = tmp_path_factory.mktemp("store")
    store, conn = base / "store", REPO / "tests/data/zeek-tsv/zat/conn.log"
    runner = CliRunner()
    env = {"ACDKIT_KEY_DIR": str(base / "keys")}
    for args in (["init", str(store)], ["ingest", str(store), str(conn), "--seal"]):
        done = runner.invoke(app, args, env=env)
        assert done.exit_code == 0, done.output
    return store, 360 + 1


@pytest.fixture
def site(built: tuple[Path, Path], tmp_path: Path) -> Path:
    """A copy of the installed wheel, for one test to break."""
    return Path(shutil.copytree(built[1], tmp_path / "site", symlinks=True))


def test_the_wheel_carries_the_library_it_compiled(built: tuple[Path, Path]) -> None:
    wheel, target = built
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        library = zf.read(f"acdkit/{LIB}")
        stamp = json.loads(zf.read(f"acdkit/{STAMP}"))
        source = zf.read(f"acdkit/{SOURCE}")
        tag = zf.read(next(n for n in names if n.endswith(".dist-info/WHEEL"))).decode()
    assert stamp == {"library_sha256": hashlib.sha256(library).hexdigest(),
                     "source_sha256": hashlib.sha256(source).hexdigest()}  # fmt: skip
    assert source == (REPO / "src/acdkit" / SOURCE).read_bytes()
    assert "Root-Is-Purelib: false" in tag and "py3-none-any" not in tag
    assert not any(n.endswith(".tmp") for n in names)
    # installed in a folder of its own (not this checkout), the library is found and used
    assert _engine(target) == ("openssl-batch", "")
    assert oct((target / "acdkit" / LIB).stat().st_mode & 0o777) == oct(0o755)


@pytest.mark.parametrize("how", ["CC=/bin/false", "no evp.h", "ACDKIT_NO_NATIVE=1", "OpenSSL 1.1"])
def test_without_a_usable_compiler_the_wheel_is_pure_python(
    how: str, tmp_path: Path, sealed_store: tuple[Path, int]
) -> None:
    tree = _copy_tree(tmp_path / "tree")
    env = {"ACDKIT_NO_NATIVE": "0"}
    if how == "CC=/bin/false":
        env["CC"] = "/bin/false"
    elif how == "no evp.h":
        cc = tmp_path / "cc"
        cc.write_text("#!/bin/sh\necho \"x.c:13:10: fatal error: openssl/evp.h: No such file "
                      "or directory\" >&2\nexit 1\n")  # fmt: skip
        cc.chmod(0o755)
        env["CC"] = str(cc)
    elif how == "ACDKIT_NO_NATIVE=1":
        env["ACDKIT_NO_NATIVE"] = "1"
    else:
        # headers of OpenSSL 1.1: no EVP_MD_fetch; the build must fail, not link a library
        # with unresolved symbols that no process can load
        fake = tmp_path / "include/openssl"
        fake.mkdir(parents=True)
        (fake / "opensslv.h").write_text("#define OPENSSL_VERSION_NUMBER 0x1010117fL\n")
        (fake / "evp.h").write_text("#include <openssl/opensslv.h>\n"
                                    "typedef struct evp_md_st EVP_MD;\n"
                                    "typedef struct evp_md_ctx_st EVP_MD_CTX;\n")  # fmt: skip
        env["CC"] = f"{_compiler()} -I{tmp_path / 'include'}"
    wheel, output = _wheel(tree, tmp_path / "dist", **env)
    assert wheel.name.endswith("-py3-none-any.whl"), wheel.name
    with zipfile.ZipFile(wheel) as zf:
        assert not [n for n in zf.namelist() if "_libsha256many" in n]
    assert "batch SHA-256 library not built" in output
    if how == "OpenSSL 1.1":
        assert "OpenSSL 3 or later is needed" in output
    if how == "no evp.h":
        assert "openssl/evp.h: No such file" in output
    target = _install(wheel, tmp_path / "site")
    engine, messages = _engine(target)
    assert (engine, messages) == ("hashlib", "")  # no library, nothing to warn about
    if how == "CC=/bin/false":  # and the store verifies as before
        store, size = sealed_store
        done = _run(target, CLI, "verify", str(store), "--json", "--expect-min-size", str(size))
        assert (done.returncode, json.loads(done.stdout)["verdict"]) == (0, "VERIFIED")


def _elf_of_another_machine(lib: Path) -> None:
    data = bytearray(lib.read_bytes())
    assert data[:4] == b"\x7fELF"
    data[18:20] = b"\x3e\x00" if data[18:20] == b"\xb7\x00" else b"\xb7\x00"  # x86-64/aarch64
    lib.write_bytes(bytes(data))


def _wrong_digests(lib: Path) -> None:
    """A library built from a changed source, stamped as its own build would stamp it: it
    loads and gets as far as the comparison with hashlib."""
    source = lib.with_name(SOURCE)
    changed = source.read_text().replace("node_prefix = 0x01", "node_prefix = 0x02")
    assert changed != source.read_text()
    source.write_text(changed)
    assert hook.compile_library(source, lib.parent) is None


BREAKAGE = {
    # a truncated ELF killed the process inside dlopen (SIGBUS) before the stamp was checked
    "truncated to 6000 bytes": lambda lib: lib.write_bytes(lib.read_bytes()[:6000]),
    "truncated to half": lambda lib: lib.write_bytes(lib.read_bytes()[: lib.stat().st_size // 2]),
    "empty": lambda lib: lib.write_bytes(b""),
    "random bytes": lambda lib: lib.write_bytes(os.urandom(lib.stat().st_size)),
    "another architecture": _elf_of_another_machine,
    "wrong digests": _wrong_digests,
    "older than its source": lambda lib: lib.with_name(SOURCE).write_text(
        lib.with_name(SOURCE).read_text() + "/* changed since the build */\n"
    ),
    "no stamp": lambda lib: lib.with_name(STAMP).unlink(),
    "stamp not JSON": lambda lib: lib.with_name(STAMP).write_text("{"),
    # RecursionError out of json.loads: exit 70 "internal error" from every command
    "stamp nested too deep": lambda lib: lib.with_name(STAMP).write_text("[" * 5000 + "]" * 5000),
    "stamp not an object": lambda lib: lib.with_name(STAMP).write_text("[]"),
    "stamp far too large": lambda lib: lib.with_name(STAMP).write_bytes(b" " * (1 << 20)),
}


@pytest.mark.parametrize("name", list(BREAKAGE))
def test_a_broken_library_is_not_used_and_says_so(site: Path, name: str) -> None:
    lib = site / "acdkit" / LIB
    BREAKAGE[name](lib)
    engine, messages = _engine(site)
    assert engine == "hashlib"
    assert f"the batch SHA-256 library {lib} is not used" in messages
    assert _engine(site, ACDKIT_PURE_SHA256="1") == ("hashlib", "")  # not even looked at


def test_verdicts_are_right_with_a_truncated_library(
    site: Path, sealed_store: tuple[Path, int], tmp_path: Path
) -> None:
    store, size = sealed_store
    BREAKAGE["truncated to 6000 bytes"](site / "acdkit" / LIB)
    done = _run(site, CLI, "verify", str(store), "--json", "--expect-min-size", str(size))
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout)["verdict"] == "VERIFIED"
    assert "is not used" in done.stderr
    tampered = Path(shutil.copytree(store, tmp_path / "tampered"))
    _change_port(tampered, 131)
    done = _run(site, CLI, "verify", str(tampered), "--json", "--expect-min-size", str(size))
    assert done.returncode == 1
    assert json.loads(done.stdout)["failure"]["row"] == 131


def _change_port(store: Path, row: int) -> None:
    (segment,) = (store / "segments").iterdir()
    path = segment / "net.parquet"
    table = pq.read_table(path)
    ports = table.column("dst_port").to_pylist()
    ports[row] = 4444
    i = table.schema.get_field_index("dst_port")
    pq.write_table(table.set_column(i, "dst_port", pa.array(ports, table.schema.field(i).type)),
                   path)  # fmt: skip


def test_a_tampered_store_gets_the_same_report_from_both_engines(
    built: tuple[Path, Path], sealed_store: tuple[Path, int], tmp_path: Path
) -> None:
    store, size = sealed_store
    tampered = Path(shutil.copytree(store, tmp_path / "tampered"))
    _change_port(tampered, 200)
    reports = []
    for pure in ("0", "1"):
        done = _run(built[1], CLI, "verify", str(tampered), "--json", "--expect-min-size",
                    str(size), ACDKIT_PURE_SHA256=pure)  # fmt: skip
        assert done.returncode == 1, done.stderr[-2000:]
        reports.append(json.loads(done.stdout))
    assert reports[0] == reports[1]
    assert reports[0]["verdict"] == "TAMPERED"
    assert (reports[0]["failure"]["row"], reports[0]["failure"]["index"]) == (200, 200)


@pytest.fixture
def immutable() -> Iterator[list[Path]]:
    """Directories made read-only even for root (chattr +i), made writable again after."""
    held: list[Path] = []
    yield held
    for path in held:
        if os.geteuid() == 0:
            subprocess.run(["chattr", "-i", str(path)], check=False)
        else:
            path.chmod(0o755)


def _freeze(path: Path, held: list[Path]) -> None:
    if os.geteuid() != 0:
        path.chmod(0o555)
        held.append(path)
        return
    if shutil.which("chattr") is None:
        pytest.skip("running as root without chattr: no way to make a directory read-only")
    done = subprocess.run(["chattr", "+i", str(path)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"this file system keeps no immutable flag ({done.stderr.strip()})")
    held.append(path)


def test_a_read_only_tree_with_an_older_library_builds_a_wheel(
    tmp_path: Path, immutable: list[Path]
) -> None:
    tree = _copy_tree(tmp_path / "tree")
    package = tree / "src/acdkit"
    # what an earlier editable install left there, from an older source
    assert hook.compile_library(package / SOURCE, package) is None
    (package / LIB).write_bytes((package / LIB).read_bytes()[:6000])
    _freeze(package, immutable)
    wheel, _ = _wheel(tree, tmp_path / "dist")
    with zipfile.ZipFile(wheel) as zf:
        library = zf.read(f"acdkit/{LIB}")
    assert len(library) > 6000  # this build's own library, not the one left in the tree
    assert _engine(_install(wheel, tmp_path / "site"))[0] == "openssl-batch"


def test_an_editable_build_that_fails_in_a_read_only_tree_goes_on(
    tmp_path: Path, immutable: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    tree = _copy_tree(tmp_path / "tree")
    package = tree / "src/acdkit"
    assert hook.compile_library(package / SOURCE, package) is None
    (package / SOURCE).write_text((package / SOURCE).read_text() + "/* newer */\n")
    _freeze(package, immutable)
    monkeypatch.setenv("CC", "/bin/false")
    monkeypatch.delenv("ACDKIT_NO_NATIVE", raising=False)
    build_data: dict[str, object] = {"artifacts": [], "force_include": {}}
    custom = hook.CustomBuildHook(str(tree), {}, None, None, str(tmp_path / "dist"), "wheel")
    custom.initialize("editable", build_data)  # says why it built nothing; raises nothing
    assert build_data == {"artifacts": [], "force_include": {}}
    # the older library could not be removed; it is not loaded: its source has changed
    assert (package / LIB).is_file()
    assert "another _sha256many.c" in str(_batchsha._unlike_its_build(package / LIB))


def test_an_editable_build_is_stamped_and_rebuilt_when_the_source_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tree = _copy_tree(tmp_path / "tree")
    package = tree / "src/acdkit"
    monkeypatch.delenv("ACDKIT_NO_NATIVE", raising=False)
    custom = hook.CustomBuildHook(str(tree), {}, None, None, str(tmp_path / "dist"), "wheel")
    build_data: dict[str, object] = {"artifacts": [], "force_include": {}}
    custom.initialize("editable", build_data)
    assert build_data["pure_python"] is False and build_data["force_include"] == {}
    assert _batchsha._unlike_its_build(package / LIB) is None
    (package / SOURCE).write_text((package / SOURCE).read_text() + "/* newer */\n")
    assert "another _sha256many.c" in str(_batchsha._unlike_its_build(package / LIB))
    custom.initialize("editable", build_data)  # the next `pip install -e .`
    assert _batchsha._unlike_its_build(package / LIB) is None
    assert sorted(p.name for p in package.glob("_libsha256many*")) == [LIB, STAMP]
    monkeypatch.setenv("ACDKIT_NO_NATIVE", "1")
    custom.initialize("editable", build_data)
    assert not list(package.glob("_libsha256many*"))


def test_two_wheel_builds_at_once_from_one_tree(tmp_path: Path) -> None:
    tree = _copy_tree(tmp_path / "tree")
    runs = [
        subprocess.Popen(
            _pip_wheel(tree, tmp_path / f"dist{i}"),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for i in range(2)
    ]
    for run in runs:
        output, _ = run.communicate(timeout=600)
        assert run.returncode == 0, output
    for i in range(2):
        (wheel,) = (tmp_path / f"dist{i}").glob("*.whl")
        with zipfile.ZipFile(wheel) as zf:
            stamp = json.loads(zf.read(f"acdkit/{STAMP}"))
            assert stamp["library_sha256"] == hashlib.sha256(zf.read(f"acdkit/{LIB}")).hexdigest()
    assert not list((tree / "src/acdkit").glob("_libsha256many*"))


def test_an_sdist_holds_the_source_and_hook_and_builds_a_wheel_with_the_library(
    tmp_path: Path,
) -> None:
    tree = _copy_tree(tmp_path / "tree")
    package = tree / "src/acdkit"
    assert hook.compile_library(package / SOURCE, package) is None  # an editable build's
    subprocess.run(
        [sys.executable, "-m", "hatchling", "build", "-t", "sdist", "-d", str(tmp_path / "sd")],
        cwd=tree, check=True, capture_output=True, timeout=600,
    )  # fmt: skip
    (sdist,) = (tmp_path / "sd").glob("acdkit-*.tar.gz")
    with tarfile.open(sdist) as tf:
        names = {n.split("/", 1)[1] for n in tf.getnames() if "/" in n}
    assert {"hatch_build.py", "pyproject.toml", f"src/acdkit/{SOURCE}"} <= names
    assert not [n for n in names if "_libsha256many" in n]  # no build output travels in it
    wheel, _ = _wheel(sdist, tmp_path / "dist")
    with zipfile.ZipFile(wheel) as zf:
        assert {f"acdkit/{LIB}", f"acdkit/{STAMP}"} <= set(zf.namelist())
    assert _engine(_install(wheel, tmp_path / "site"))[0] == "openssl-batch"
