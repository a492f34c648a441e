"""The command line through Typer's CliRunner: every exit code and the --json shapes."""

from __future__ import annotations

import fcntl
import json
import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from acdkit import __version__
from acdkit.cli import app


def run(runner: CliRunner, *args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, [str(a) for a in args])
    return result.exit_code, result.stdout, result.stderr


def _init(runner: CliRunner, tmp_path: Path) -> tuple[Path, Path]:
    store, key = tmp_path / "store", tmp_path / "keys" / "sealer.key"
    code, out, _ = run(runner, "init", store, "--key", key, "--json")
    assert code == 0
    doc = json.loads(out)
    assert doc["schema_version"] == "acdkit-cli/1" and doc["key_path"] == str(key)
    assert doc["vkey"] == (store / "keys/sealer.vkey").read_text().strip()
    return store, key


def test_cli_defaults_agree_with_the_library() -> None:
    from acdkit import bundle, cli, verify

    assert cli.PACKAGE_MAX_RECORDS == bundle.DEFAULT_MAX_RECORDS
    assert verify.BUNDLE_MARKER == bundle.MANIFEST


def test_verify_starts_without_what_other_commands_need(
    runner: CliRunner, tmp_path: Path, data: Path
) -> None:
    store, key = _init(runner, tmp_path)
    assert (
        run(runner, "ingest", store, data / "zeek-tsv/zat/dns.log", "--seal", "--key", key)[0] == 0
    )
    # verify runs on every CI commit: the command as typed must not pay for the parsers,
    # calendars, TSA and NTP clients, or the command groups it does not use
    unused = ("duckdb", "acdkit.ingest", "acdkit.sources", "rfc3161_client", "holidays",
              "cryptography.x509", "ntplib", "urllib.request", "acdkit.cli_time",
              "acdkit.timecheck", "acdkit.cli_incident", "acdkit.incident",
              "acdkit.cli_custody", "acdkit.cli_keys")  # fmt: skip
    script = (
        "import sys\n"
        "from acdkit import cli\n"
        f"sys.argv = ['acdkit', 'verify', {str(store)!r}, '--json']\n"
        "try:\n    cli.main()\nexcept SystemExit as exc:\n    code = exc.code\n"
        f"print(code, sorted(m for m in {unused!r} if m in sys.modules), file=sys.stderr)\n"
    )
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert json.loads(done.stdout)["verdict"] == "INCOMPLETE"  # no outside size given
    assert done.stderr.strip().splitlines()[-1] == "3 []"


def test_help_lists_every_command_by_name_loaded_or_not(runner: CliRunner) -> None:
    from acdkit import cli

    code, out, _ = run(runner, "--help")
    listed = [line.strip("│ ").split()[0] for line in out.splitlines() if line.startswith("│ ")]
    assert code == 0
    for name in cli._LAZY:
        assert name in listed, name
    # each one runs, built on demand like the rest
    for name in cli._LAZY:
        code, out, _ = run(runner, name, "--help")
        assert code == 0 and f"acdkit {name}" in out, name


@pytest.mark.parametrize(
    ("typed", "suggested"),
    [("kyes", "'keys'"), ("key", "'keys'"), ("polcy", "'policy'"),
     ("incidnt", "'incident', 'init'"), ("custdy", "'custody'"), ("clasify", "'classify'"),
     ("kpis", "'kpi'"), ("timechek", "'timecheck'"), ("verfy", "'verify'")],
)  # fmt: skip
def test_a_mistyped_command_gets_the_close_names_loaded_or_not(
    runner: CliRunner, typed: str, suggested: str
) -> None:
    # the commands of cli._LAZY are not built until named: the suggestion must see them too
    code, out, err = run(runner, typed, "--help")
    assert code == 2
    assert f"No such command '{typed}'. Did you mean {suggested}?" in " ".join((out + err).split())


def test_an_unknown_command_is_a_usage_error_without_suggestion(runner: CliRunner) -> None:
    code, out, err = run(runner, "zzzz")
    assert code == 2
    text = " ".join((out + err).split())
    assert "No such command 'zzzz'." in text and "Did you mean" not in text


def test_formats_lists_every_registered_format(runner: CliRunner) -> None:
    from acdkit import sources

    code, out, _ = run(runner, "formats", "--json")
    listed = [f["name"] for f in json.loads(out)["formats"]]
    assert code == 0 and listed == sources.names() and "zeek-tsv" in listed


def test_version_and_help(runner: CliRunner) -> None:
    code, out, _ = run(runner, "--version")
    assert code == 0 and out.strip() == f"acdkit {__version__}"
    code, out, _ = run(runner, "--help")
    assert code == 0
    for command in ("init", "ingest", "seal", "verify", "package"):
        assert command in out


def test_main_job_exit_zero_and_json(runner: CliRunner, tmp_path: Path, data: Path) -> None:
    store, key = _init(runner, tmp_path)
    code, out, _ = run(
        runner,
        "ingest",
        store,
        data / "zeek-tsv/zat/conn.log",
        data / "zeek-json/zat/dns.log",
        "--seal",
        "--key",
        key,
        "--json",
    )
    assert code == 0, out
    doc = json.loads(out)
    assert doc["records"] == 410
    assert [f["format"] for f in doc["files"]] == ["zeek-tsv", "zeek-json"]
    assert doc["seal"]["tree_size"] == 411
    code, out, _ = run(runner, "verify", store, "--json", "--local-only")
    assert code == 0
    report = json.loads(out)
    assert report["verdict"] == "VERIFIED" and report["exit_code"] == 0
    assert report["coverage"].startswith("leaves 0-410 verified against checkpoint 411")
    bundle = tmp_path / "bundle"
    code, out, err = run(
        runner,
        "package",
        store,
        "--incident",
        "INC-9",
        "--from",
        "2013-01-01T00:00:00Z",
        "--to",
        "2030-01-01T00:00:00+09:00",
        "--out",
        bundle,
        "--key",
        key,
        "--json",
    )
    assert code == 0, err
    assert json.loads(out)["disclosed"] == {"net": 360, "dns": 50, "edr": 0}
    code, _, err = run(runner, "verify", bundle, "--key", store / "keys/sealer.vkey")
    assert code == 0
    assert "VERIFIED 410 disclosed records" in err  # the human report goes to stderr


def test_reingest_is_noop(runner: CliRunner, tmp_path: Path, data: Path) -> None:
    store, _key = _init(runner, tmp_path)
    args = ("ingest", store, data / "zeek-tsv/zat/dns.log", "--json")
    assert json.loads(run(runner, *args)[1])["records"] == 54
    doc = json.loads(run(runner, *args)[1])
    assert doc["records"] == 0 and doc["files"][0]["status"] == "already ingested"


def test_exit_1_tampered(runner: CliRunner, tmp_path: Path, data: Path) -> None:
    store, key = _init(runner, tmp_path)
    run(runner, "ingest", store, data / "zeek-tsv/zat/conn.log", "--seal", "--key", key)
    path = next((store / "segments").iterdir()) / "net.parquet"
    table = pq.read_table(path)
    col = table.column("orig_bytes").to_pylist()
    col[0] = 999999
    pq.write_table(
        table.set_column(
            table.schema.get_field_index("orig_bytes"), "orig_bytes", pa.array(col, pa.uint64())
        ),
        path,
    )
    code, out, _ = run(runner, "verify", store, "--json")
    assert code == 1
    doc = json.loads(out)
    assert doc["verdict"] == "TAMPERED" and doc["failure"]["index"] == 0
    # people see where: Rich took "[index=0, …]" for a markup tag and printed nothing of it
    code, _, err = run(runner, "verify", store)
    where = ", ".join(
        f"{k}={v}" for k, v in doc["failure"].items() if k not in ("message", "check")
    )
    assert code == 1 and f"first failure: {doc['failure']['message']} [{where}]" in err


def test_exit_2_usage(runner: CliRunner, tmp_path: Path, data: Path) -> None:
    assert run(runner, "verify", tmp_path / "nothing-here")[0] == 2
    assert run(runner, "ingest", tmp_path / "not-a-store", data / "zeek-tsv/zat/dns.log")[0] == 2
    assert run(runner, "frobnicate")[0] == 2
    store, key = _init(runner, tmp_path)
    assert run(runner, "ingest", store, tmp_path / "missing.log")[0] == 2
    assert run(runner, "ingest", store, data / "zeek-tsv/zat/dns.log", "--format", "nope")[0] == 2
    code, _, err = run(runner, "seal", store, "--key", tmp_path / "no-such.key")
    assert code == 2 and "not found" in err
    assert run(runner, "init", store)[0] == 2  # not empty
    code, _, err = run(runner, "init", tmp_path / "s2", "--key", tmp_path / "s2" / "k")
    assert code == 2 and "inside the evidence store" in err
    code, _, err = run(
        runner,
        "package",
        store,
        "--incident",
        "X",
        "--from",
        "2020-01-01",
        "--to",
        "2020-01-02T00:00:00Z",
        "--out",
        tmp_path / "b",
        "--key",
        key,
    )
    assert code == 2 and "no time zone" in err
    # a pinned key that is no vkey is the user's mistake, whichever option carries it
    not_a_key = tmp_path / "hostname.txt"
    not_a_key.write_text("collector-7\n")
    for option, args in (
        ("--key", ("verify", store, "--key", not_a_key)),
        ("--witness", ("verify", store, "--witness", "w+zz+zz")),
        ("--revoke", ("keys", "revoke", store, "--revoke", not_a_key, "--key", key)),
    ):
        code, _, err = run(runner, *args)
        assert code == 2 and f"error: {option} " in err and "verifier key" in err, (args, err)


def test_names_and_records_with_brackets_are_printed_as_text(
    runner: CliRunner, tmp_path: Path
) -> None:
    # Rich read them as markup: "[/]" in a file name or in a CEF dvchost (a sensor name
    # printed in clock lines) raised MarkupError, and main's own report of it raised again:
    # a traceback and exit code 1, the code of TAMPERED
    store, _key = _init(runner, tmp_path)
    code, _, err = run(runner, "ingest", store, tmp_path / "logs[/]x.log")
    assert code == 2 and f"error: input {tmp_path / 'logs[/]x.log'} does not exist" in err

    head = "CEF:0|V|P|1|100|n|5|src=10.0.0.1 spt=1 dst=10.0.0.2 dpt=80"
    sensor = "fw[/]x[link=http://evil.example]y"
    lines = [f"{head} rt={1600000000000 + i * 7_200_000} dvchost={sensor}" for i in (0, 1, 2, 0)]
    path = tmp_path / "fw[bold].cef"
    path.write_text("\n".join(lines) + "\n")
    code, _, err = run(runner, "ingest", store, path)
    assert code == 0, err
    assert f"clock fw[bold].cef: sensor {sensor}: 1 step back in time" in err.replace("\n", " ")


def test_an_internal_error_with_brackets_in_its_text_exits_70(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from acdkit import cli

    def boom() -> None:
        raise RuntimeError("closing tag '[/]' has nothing to close")

    monkeypatch.setattr(cli, "app", boom)
    with pytest.raises(SystemExit) as done:
        cli.main()
    assert done.value.code == 70
    assert "internal error: RuntimeError: closing tag '[/]' has nothing to close" in (
        capsys.readouterr().err
    )


def test_exit_3_incomplete(runner: CliRunner, tmp_path: Path, data: Path) -> None:
    store, _key = _init(runner, tmp_path)
    run(runner, "ingest", store, data / "zeek-tsv/zat/dns.log")
    code, out, _ = run(runner, "verify", store, "--json")
    assert code == 3 and json.loads(out)["verdict"] == "INCOMPLETE"
    assert run(runner, "verify", store, "--allow-incomplete")[0] == 0


def test_exit_4_malformed(runner: CliRunner, tmp_path: Path, data: Path) -> None:
    store, key = _init(runner, tmp_path)
    junk = tmp_path / "junk.log"
    junk.write_text("this is not a log\nat all\n")
    code, out, _ = run(runner, "ingest", store, junk, "--json")
    assert code == 4
    assert "tried: " in json.loads(out)["files"][0]["error"]
    run(runner, "ingest", store, data / "zeek-tsv/zat/dns.log", "--seal", "--key", key)
    cp = next((store / "checkpoints").iterdir())
    cp.write_bytes(cp.read_bytes().replace(b"\n", b"\r\n"))
    assert run(runner, "verify", store)[0] == 4


def test_exit_5_policy(runner: CliRunner, tmp_path: Path, data: Path) -> None:
    store, key = _init(runner, tmp_path)
    run(runner, "ingest", store, data / "zeek-tsv/zat/dns.log", "--seal", "--key", key)
    bundle = tmp_path / "b"
    assert (
        run(
            runner,
            "package",
            store,
            "--incident",
            "I-1",
            "--from",
            "2013-01-01T00:00:00Z",
            "--to",
            "2014-01-01T00:00:00Z",
            "--out",
            bundle,
            "--key",
            key,
        )[0]
        == 0
    )
    (bundle / "extra.txt").write_text("not in the manifest")
    code, out, _ = run(runner, "verify", bundle, "--json")
    assert code == 5 and json.loads(out)["verdict"] == "POLICY"


def test_exit_6_io_when_store_is_locked(runner: CliRunner, tmp_path: Path, data: Path) -> None:
    store, _ = _init(runner, tmp_path)
    fd = os.open(store / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        code, _, err = run(runner, "ingest", store, data / "zeek-tsv/zat/dns.log")
    finally:
        os.close(fd)
    assert code == 6 and "another acdkit process" in err


def test_environment_variables(
    runner: CliRunner, tmp_path: Path, data: Path, monkeypatch: object
) -> None:
    store, key = _init(runner, tmp_path)
    result = runner.invoke(
        app,
        ["ingest", str(store), str(data / "zeek-tsv/zat/dns.log"), "--seal", "--json"],
        env={"ACDKIT_SEALER_KEY": str(key), "ACDKIT_SENSOR": "tap-7"},
    )
    assert result.exit_code == 0, result.stderr
    seg = next((store / "segments").iterdir())
    assert set(pq.read_table(seg / "dns.parquet").column("sensor_id").to_pylist()) == {"tap-7"}


def test_bad_environment_and_input_exit_cleanly_never_70(
    runner: CliRunner, tmp_path: Path, data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store, key = _init(runner, tmp_path)
    code, _, _ = run(
        runner, "ingest", store, data / "zeek-tsv/zat/conn.log", "--seal", "--key", key
    )
    assert code == 0
    window = ["--incident", "X", "--from", "2013-09-15T00:00:00Z"]

    code, _, err = run(runner, "package", store, *window, "--to", "2262-04-12T00:00:00Z",
                       "--key", key, "--out", tmp_path / "b1")  # fmt: skip
    assert code == 2 and "outside the times records can hold" in err
    code, _, _ = run(runner, "package", store, "--incident", "X", "--from",
                     "1677-01-01T00:00:00Z", "--to", "2013-09-16T00:00:00Z",
                     "--key", key, "--out", tmp_path / "b2")  # fmt: skip
    assert code == 2

    binary = tmp_path / "binary.key"
    binary.write_bytes(bytes(range(256)))
    code, _, err = run(runner, "verify", store, "--key", binary)
    assert code == 2 and "not a verifier key file" in err

    a_file = tmp_path / "plain-file"
    a_file.write_text("x")
    code, _, err = run(runner, "package", store, *window, "--to", "2013-09-16T00:00:00Z",
                       "--key", key, "--out", a_file / "bundle")  # fmt: skip
    assert code == 6 and "internal error" not in err

    code, _, err = run(runner, "init", a_file, "--key", tmp_path / "k2" / "sealer.key")
    assert code == 2 and "not an empty directory" in err
    assert not (tmp_path / "k2" / "sealer.key").exists()

    # the key directory cannot be made: no half-made store is left behind
    monkeypatch.setenv("ACDKIT_KEY_DIR", str(a_file / "keys"))
    code, _, err = run(runner, "init", tmp_path / "s3")
    assert code == 6 and "cannot create key directory" in err
    assert not (tmp_path / "s3").exists()


def test_verify_without_the_store_vkey_needs_a_pinned_key(
    runner: CliRunner, tmp_path: Path, data: Path
) -> None:
    store, key = _init(runner, tmp_path)
    assert (
        run(runner, "ingest", store, data / "zeek-tsv/zat/dns.log", "--seal", "--key", key)[0] == 0
    )
    vkey = (store / "keys/sealer.vkey").read_text().strip()
    (store / "keys/sealer.vkey").unlink()
    code, _, err = run(runner, "verify", store, "--local-only")
    assert code == 4 and "public key sealer.vkey is missing" in err
    code, out, _ = run(runner, "verify", store, "--key", vkey, "--json", "--local-only")
    assert code == 0 and json.loads(out)["verdict"] == "VERIFIED"


def test_errors_under_json_are_one_json_document(runner: CliRunner, tmp_path: Path) -> None:
    # cron and CI read stdout: a failure must still be one parseable document
    code, out, _ = run(runner, "verify", tmp_path / "no-such-store", "--json")
    doc = json.loads(out)
    assert code == doc["exit_code"] == 2
    assert doc["schema_version"] == "acdkit-cli/1" and doc["command"] == "verify"
    assert doc["error"]["verdict"] == "USAGE" and "no-such-store" in doc["error"]["message"]
    store, _key = _init(runner, tmp_path)
    code, out, _ = run(runner, "ingest", store, tmp_path / "missing.log", "--json")
    doc = json.loads(out)
    assert code == doc["exit_code"] == 2 and doc["command"] == "ingest"
    code, out, _ = run(runner, "verify", store)
    assert code == 3 and out == ""  # without --json, stdout stays empty
    # a subcommand's failure names it as typed, like its success document does
    code, out, _ = run(runner, "keys", "show", tmp_path / "no-such-store", "--json")
    assert code == 2 and json.loads(out)["command"] == "keys show"


def test_help_paragraphs_wrap_at_the_terminal(runner: CliRunner) -> None:
    # Typer kept the docstring's line breaks: "... within --max-drift of them, 5" ended a
    # line and "(POLICY) when too few agree" began the next, whatever the terminal's width
    result = runner.invoke(app, ["timecheck", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    assert "of them, 5 (POLICY) when too few agree or the clock is off by more, 6 (IO)" in (
        result.stdout
    )
    result = runner.invoke(app, ["incident", "status", "--help"], env={"COLUMNS": "200"})
    assert "1 a decision's signature fails" in result.stdout


def test_an_input_cut_short_is_malformed_not_typers_abort() -> None:
    import typer

    from acdkit.cli import _handles_errors

    def cut(json_out: bool = typer.Option(False, "--json")) -> None:
        raise EOFError("Compressed file ended before the end-of-stream marker was reached")

    one = typer.Typer()
    one.command()(_handles_errors(cut))
    done = CliRunner().invoke(one, ["--json"])
    assert done.exit_code == 4  # MALFORMED; Typer's own "Aborted." exits 1, TAMPERED's code
    error = json.loads(done.stdout)["error"]
    assert error["verdict"] == "MALFORMED"
    assert error["message"] == "an input ended in the middle (a truncated compressed file?)"


def test_a_log_that_is_no_terminal_gets_whole_table_cells(tmp_path: Path, data: Path) -> None:
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    env["ACDKIT_KEY_DIR"] = str(tmp_path / "keys")
    acdkit = [sys.executable, "-c", "from acdkit.cli import main; main()"]
    subprocess.run([*acdkit, "init", str(tmp_path / "s")], env=env, check=True, capture_output=True)
    sample = tmp_path / "collector-eu-west-1.example.org-zeek-dns-2026-12-04T00-00Z.log"
    sample.write_bytes((data / "zeek-tsv/zat/dns.log").read_bytes())
    done = subprocess.run(
        [*acdkit, "ingest", str(tmp_path / "s"), str(sample)],
        env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    # a cron log is read later: the table keeps names and statuses whole (not "ingest…")
    assert f"│ {sample.name} " in done.stderr and "│ ingested │" in done.stderr


@pytest.mark.parametrize(
    ("command", "usage"),
    [
        (["verify"], "acdkit verify [OPTIONS] {STORE|BUNDLE}"),
        (["ingest"], "acdkit ingest [OPTIONS] {STORE} {FILE}..."),
        (["seal"], "acdkit seal [OPTIONS] {STORE}"),
        (["keys", "new"], "acdkit keys new [OPTIONS]"),
        (["incident", "open"], "acdkit incident open [OPTIONS] {STORE}"),
        ([], "acdkit [OPTIONS] COMMAND [ARGS]..."),
    ],
)
def test_help_names_arguments_in_capitals_and_gives_flags_no_type(
    runner: CliRunner, command: list[str], usage: str
) -> None:
    # Typer printed "{store_dir}" and "--json <bool>", as if a flag took a value
    code, out, _ = run(runner, *command, "--help")
    assert code == 0 and usage in out
    assert "<bool>" not in out and "store_dir" not in out
    assert "--help" in out


def test_a_missing_argument_is_named_as_in_the_usage_line(runner: CliRunner) -> None:
    result = runner.invoke(app, ["seal"])
    assert result.exit_code == 2 and "Missing argument 'STORE'" in result.stderr
