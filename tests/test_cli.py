"""The `workspace-images` command as a user runs it: a real process, real exit codes."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import List, Set

import pytest
from dlt.common.runtime.run_context import global_dir

from workspace_images.simulator import Simulator
from tests.helpers import TOKEN, cli, one_line, query


def test_run_loads_every_project_and_exits_0(sim: Simulator, tmp_path: Path) -> None:
    a = sim.add_project("cn-north-4", images=130)
    b = sim.add_project("ap-southeast-1", images=3)
    proc = cli(["run", "--endpoint", sim.url, "--project", f"cn-north-4:{a.project_id}",
                "--project", f"ap-southeast-1:{b.project_id}", "--db", "x.duckdb", "--no-models"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 1
    assert "2/2 projects ok, 133 images, 133 new versions, 0 retired, 0 retries" in lines[0]
    assert "progress: 2/2 projects, 133 images, 0 retries, 0 failed" in proc.stderr
    assert query(tmp_path / "x.duckdb", "select count(*) from workspace_images.images") == [(133,)]
    assert (tmp_path / ".workspace_images" / "x.duckdb").is_dir()  # dlt's working folder beside the DB
    assert not (tmp_path / "dlt_data").exists()


def test_run_with_a_failed_project_exits_1_and_names_it(sim: Simulator, tmp_path: Path) -> None:
    good = sim.add_project("cn-north-4", images=10)
    bad = sim.add_project("cn-east-3", images=10)
    sim.fail_project(bad.project_id, "status", status=403, error_code="APIG.0302",
                     error_msg="Incorrect IAM authentication information: no permission")
    proc = cli(["run", "--endpoint", sim.url, "--project", f"cn-north-4:{good.project_id}",
                "--project", f"cn-east-3:{bad.project_id}", "--db", "x.duckdb"], tmp_path)
    assert proc.returncode == 1, proc.stderr
    assert (f"failed: cn-east-3:{bad.project_id}: HTTP 403 APIG.0302: "
            "Incorrect IAM authentication information: no permission") in proc.stderr
    assert "1/2 projects ok, 10 images" in proc.stdout
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize(
    "args, message",
    [
        (["run", "--project", "nonsense"], "invalid project 'nonsense': write it as REGION:PROJECT_ID"),
        (["run", "--project", "cn-north-4:ab'c"], "invalid project id \"ab'c\""),
        (["run", "--project", "Mars:abc"], "invalid region 'Mars'"),
        (["run"], "no projects to load"),
        (["run", "--project", "cn-north-4:abc", "--as-of", "yesterday"], "--as-of 'yesterday' is not a date"),
        (["run", "--project", "cn-north-4:abc", "--endpoint", "ftp://x"], "endpoint 'ftp://x' is not an http(s) URL"),
        (["run", "--project", "cn-north-4:abc", "--filter", "color=red"], "unknown filter(s) color"),
        (["run", "--project", "cn-north-4:abc", "--concurrency", "0"], "concurrency must be between 1 and 64"),
        (["run", "--project", "cn-north-4:abc", "--region", "nowhere"], "invalid region 'nowhere'"),
        (["run", "--project", "cn-north-4:abc", "--db", "missing/dir/x.duckdb"], "folder missing/dir does not exist"),
        (["run", "--bogus"], "unrecognized arguments: --bogus"),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
    ],
)
def test_bad_usage_exits_2_with_one_line_and_writes_nothing(tmp_path: Path, args: List[str], message: str) -> None:
    proc = cli(args, tmp_path)
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr
    assert [p.name for p in tmp_path.iterdir()] == []  # no DB, no working folder


def test_missing_settings_name_the_files_dlt_reads_and_init(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """From an empty folder, the message names its .dlt/ files, dlt's global ones and the
    environment variables, and points to init; once init wrote the files, it names them alone."""
    home, work = tmp_path / "home", tmp_path / "work"
    home.mkdir()
    work.mkdir()
    monkeypatch.setenv("HOME", str(home))  # dlt's global folder: ~/.dlt, or /var/dlt for root
    monkeypatch.delenv("XDG_DATA_HOME", raising=False)
    here, there, env = work / ".dlt", Path(global_dir()), "SOURCES__WORKSPACE_IMAGES__CREDENTIALS__"
    assert there != here
    no_credentials = (
        "workspace-images: error: no credentials for sources.workspace_images: set one mode under "
        f"[sources.workspace_images.credentials] in {here / 'secrets.toml'} (or {there / 'secrets.toml'}), "
        f"or {env}TOKEN, or {env}USER_NAME + PASSWORD + DOMAIN_NAME, or {env}ACCESS_KEY + SECRET_KEY"
    )
    no_projects = (
        "workspace-images: error: no projects to load in account default: pass --project REGION:PROJECT_ID or "
        "--discover, or set projects (or discover_projects = true) under [sources.workspace_images] in "
        f"{here / 'config.toml'} (or {there / 'config.toml'}), or SOURCES__WORKSPACE_IMAGES__PROJECTS"
    )
    init = "; run `workspace-images init` to write their templates"
    for written, hint in ((False, init), (True, "")):
        if written:
            assert cli(["init"], work).returncode == 0
        proc = cli(["run", "--project", "cn-north-4:abc"], work, token=None)
        assert (proc.returncode, proc.stdout, proc.stderr) == (2, "", f"{no_credentials}{hint}\n")
        proc = cli(["run"], work)
        assert (proc.returncode, proc.stdout, proc.stderr) == (2, "", f"{no_projects}{hint}\n")
        assert sorted(p.name for p in work.iterdir()) == ([".dlt"] if written else [])


def test_projects_and_settings_come_from_env_vars(sim: Simulator, tmp_path: Path) -> None:
    a = sim.add_project("cn-north-4", images=40)
    b = sim.add_project("cn-east-3", images=40)
    env = {
        "SOURCES__WORKSPACE_IMAGES__PROJECTS": f'["cn-north-4:{a.project_id}", "cn-east-3:{b.project_id}"]',
        "SOURCES__WORKSPACE_IMAGES__ENDPOINT": sim.url,
        "SOURCES__WORKSPACE_IMAGES__REGIONS": '["cn-east-3"]',
        "SOURCES__WORKSPACE_IMAGES__FILTERS": '{"os_type": "Linux"}',
        "SOURCES__WORKSPACE_IMAGES__CONCURRENCY": "2",
    }
    proc = cli(["run", "--db", "x.duckdb"], tmp_path, extra_env=env)
    assert proc.returncode == 0, proc.stderr
    linux_b = sorted(i["id"] for i in sim.images(b.project_id) if i["os_type"] == "Linux")
    rows = query(tmp_path / "x.duckdb", "select project_id, id from workspace_images.images order by id")
    assert rows == [(b.project_id, i) for i in linux_b]


def test_a_secret_in_config_toml_exits_2_without_repeating_it(tmp_path: Path) -> None:
    """Credentials are secrets: dlt takes them from the environment or secrets.toml, never config.toml."""
    (tmp_path / ".dlt").mkdir()
    (tmp_path / ".dlt" / "config.toml").write_text(
        '[sources.workspace_images]\nprojects = ["cn-north-4:abc"]\n\n'
        '[sources.workspace_images.credentials]\ntoken = "token-written-in-config-toml"\n')
    proc = cli(["run", "--db", "x.duckdb"], tmp_path, token=None)
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        "workspace-images: error: configuration: Provider `config.toml` cannot hold secret values but key "
        "`sources.workspace_images.credentials` with secret value is present"
    )
    assert "token-written-in-config-toml" not in proc.stdout + proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == [".dlt"]


def test_a_setting_of_the_wrong_type_exits_2(tmp_path: Path) -> None:
    proc = cli(["run", "--db", "x.duckdb"], tmp_path, extra_env={"SOURCES__WORKSPACE_IMAGES__REGIONS": "cn-east-3"})
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        "workspace-images: error: setting regions must be a list; in an environment variable write it as JSON, "
        "e.g. SOURCES__WORKSPACE_IMAGES__REGIONS='[\"cn-north-4\"]' for a list"
    )
    assert [p.name for p in tmp_path.iterdir()] == []


def test_an_unusable_database_exits_3(sim: Simulator, tmp_path: Path) -> None:
    a = sim.add_project("cn-north-4", images=5)
    (tmp_path / "x.duckdb").write_bytes(b"this is not a duckdb file" * 100)
    proc = cli(["run", "--endpoint", sim.url, "--project", f"cn-north-4:{a.project_id}", "--db", "x.duckdb"], tmp_path)
    assert proc.returncode == 3
    assert one_line(proc.stderr) == (
        f"workspace-images: run failed: cannot open x.duckdb: IO Error: The file \"{tmp_path / 'x.duckdb'}\" "
        "exists, but it is not a valid DuckDB database file!"
    )


def test_secrets_never_leave_the_process(sim: Simulator, tmp_path: Path) -> None:
    a = sim.add_project("cn-north-4", images=120)
    b = sim.add_project("cn-east-3", images=5)
    sim.fail_project(b.project_id, "status", status=401, error_code="APIG.0301",
                     error_msg="Incorrect IAM authentication information: decrypt token fail")
    proc = cli(["-v", "run", "--endpoint", sim.url, "--project", f"cn-north-4:{a.project_id}",
                "--project", f"cn-east-3:{b.project_id}", "--db", "x.duckdb"], tmp_path)
    assert proc.returncode == 1
    assert "Making GET request" in proc.stderr  # debug output really was on
    assert TOKEN not in proc.stdout and TOKEN not in proc.stderr
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert any(p.suffix == ".duckdb" for p in written) and len(written) > 5
    for path in written:
        assert TOKEN.encode() not in path.read_bytes(), path


def test_demo_loads_simulated_days(tmp_path: Path) -> None:
    proc = cli(["demo", "--days", "3", "--projects", "2", "--images", "40", "--db", "d.duckdb"], tmp_path, token=None)
    assert proc.returncode == 0, proc.stderr
    days = [line for line in proc.stdout.splitlines() if line.startswith("day ")]
    assert [line.split(" (")[0] for line in days] == ["day 0", "day 1", "day 2"]
    assert days[0].startswith("day 0 (2026-11-01): 2/2 projects ok, 80 images, 80 new versions, 0 retired")
    runs = query(tmp_path / "d.duckdb", "select count(distinct run_id), count(*) from workspace_images.project_runs")
    assert runs == [(3, 6)]
    again = cli(["demo", "--days", "1", "--db", "d.duckdb"], tmp_path, token=None)
    assert again.returncode == 2 and "d.duckdb exists: pass --replace" in again.stderr


PYTHON_M = f"{Path(sys.executable).name} -m"
"""How usage lines name a module started with `python -m`, the interpreter named as it was started."""


@pytest.mark.parametrize("entry, usage", [
    ([str(Path(sys.executable).parent / "workspace-images")], "workspace-images"),
    ([sys.executable, "-m", "workspace_images.pipelines.cli"], f"{PYTHON_M} workspace_images.pipelines.cli"),
    ([sys.executable, "-m", "workspace_images.simulator"], f"{PYTHON_M} workspace_images.simulator"),
])
def test_every_entry_point_and_command_has_help_under_its_own_name(tmp_path: Path, entry: List[str], usage: str) -> None:
    from workspace_images.pipelines.cli import COMMANDS

    commands = [[]] if entry[-1] == "workspace_images.simulator" else [[], *([name] for name in COMMANDS)]
    for command in commands:
        proc = subprocess.run([*entry, *command, "--help"], cwd=tmp_path, capture_output=True, text=True, timeout=120)
        assert (proc.returncode, proc.stderr) == (0, ""), command
        assert proc.stdout.startswith(" ".join(["usage:", usage, *command, "[-h]"])), proc.stdout.splitlines()[0]


def test_docs_document_every_command_and_flag() -> None:
    """docs/cli.md has a section for every command, with text of its own and the block generated
    from its parser, and names every flag; the README opens with the two commands."""
    from workspace_images.pipelines.arguments import build_parser

    root = Path(__file__).parent.parent
    readme = (root / "README.md").read_text(encoding="utf-8")
    assert readme.startswith("# workspace-images\n\n```sh\nmake demo")
    assert "(docs/cli.md)" in readme
    reference = (root / "docs" / "cli.md").read_text(encoding="utf-8")
    for name, command in build_parser().commands.items():
        section = reference.split(f"\n## `{name}`\n", 1)[1].split("\n## ", 1)[0]
        prose = section.split(f"<!-- generated: cli {name} -->", 1)[0].strip()
        assert len(prose) > 80, f"{name}: no text of its own before its generated block"
        for action in command.parser.flags:
            for option in action.option_strings:
                if option.startswith("--"):
                    assert f"`{option}" in section, f"{name} {option}"


def test_the_parsers_keep_every_flag_and_command_their_help_shows() -> None:
    """`flags` and `commands`, which the CLI reference is written from, hold every option and command
    that `--help` prints (argparse's own -h/--help aside): a flag added some other way would be missing."""
    from workspace_images.pipelines.arguments import ArgumentParser, build_parser

    def shown(parser: ArgumentParser) -> List[str]:
        """Every option string of the list of options `--help` prints."""
        found: Set[str] = set()
        for listed in re.findall(r"^  (-.*?)(?:\s{2,}|$)", parser.format_help(), re.M):
            found.update(option.split(" ")[0] for option in listed.split(", "))
        return sorted(found - {"-h", "--help"})

    def kept(parser: ArgumentParser) -> List[str]:
        return sorted(option for action in parser.flags for option in action.option_strings)

    parser = build_parser()
    assert (shown(parser), kept(parser)) == (["--quiet", "--verbose", "-q", "-v"], ["--quiet", "--verbose", "-q", "-v"])
    assert list(parser.commands) == ["init", "run", "models", "report", "demo", "simulator"]
    assert re.findall(r"^    (\w+)(?: |$)", parser.format_help(), re.M) == list(parser.commands)
    for name, command in parser.commands.items():
        assert (command.name, command.parser.prog) == (name, f"workspace-images {name}")
        assert shown(command.parser) == kept(command.parser), name


def test_every_command_of_the_parser_has_its_function() -> None:
    from workspace_images.pipelines.arguments import build_parser
    from workspace_images.pipelines.cli import COMMANDS

    assert sorted(build_parser().commands) == sorted(COMMANDS)


def test_models_command_builds_and_fails_a_data_test_with_exit_3(sim: Simulator, tmp_path: Path) -> None:
    import duckdb

    a = sim.add_project("cn-north-4", images=20)
    load = cli(["run", "--endpoint", sim.url, "--project", f"cn-north-4:{a.project_id}", "--db", "x.duckdb",
                "--no-models"], tmp_path)
    assert load.returncode == 0
    assert query(tmp_path / "x.duckdb", "select count(*) from information_schema.schemata "
                                        "where schema_name = 'analytics'") == [(0,)]
    built = cli(["models", "--db", "x.duckdb"], tmp_path)
    assert built.returncode == 0, built.stderr
    assert built.stdout.startswith("models: 7 built (")
    assert "27 data tests passed" in built.stdout
    assert query(tmp_path / "x.duckdb", "select count(*) from analytics.image_inventory") == [(20,)]
    with duckdb.connect(str(tmp_path / "x.duckdb")) as con:
        con.execute("update workspace_images.images set _dlt_valid_to = null where id = "
                    "(select min(id) from workspace_images.images)")
        con.execute("insert into workspace_images.images select * from workspace_images.images "
                    "where id = (select min(id) from workspace_images.images)")
    failed = cli(["models", "--db", "x.duckdb"], tmp_path)
    assert failed.returncode == 3
    assert failed.stderr.strip().splitlines()[-1].startswith(
        "workspace-images: run failed: data test failed: stg_images: unique key (project_id, image_id, valid_from): "
        "1 offending row(s), e.g. project_id=")
    assert "the previous models were kept" in failed.stderr


def test_models_without_data_exit_2(tmp_path: Path) -> None:
    proc = cli(["models", "--db", "nothing.duckdb"], tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        "workspace-images: error: nothing.duckdb does not exist: load it first with `workspace-images run`"
    )
    assert not (tmp_path / "nothing.duckdb").exists()


def test_json_summary_and_log_file_for_cron(sim: Simulator, tmp_path: Path) -> None:
    import json

    good = sim.add_project("cn-north-4", images=130)
    bad = sim.add_project("cn-east-3", images=5)
    sim.fail_project(bad.project_id, "status", status=403)
    proc = cli(["run", "--endpoint", sim.url, "--project", f"cn-north-4:{good.project_id}",
                "--project", f"cn-east-3:{bad.project_id}", "--db", "x.duckdb", "--json", "--log-file", "run.log"],
               tmp_path)
    assert proc.returncode == 1, proc.stderr
    summary = json.loads(proc.stdout)
    assert {k: summary[k] for k in ("exit_code", "projects", "projects_ok", "images", "new_versions", "retired")} == {
        "exit_code": 1, "projects": 2, "projects_ok": 1, "images": 130, "new_versions": 130, "retired": 0}
    assert summary["projects_failed"] == [{
        "project": f"cn-east-3:{bad.project_id}", "http_status": 403, "error_code": "APIG.0302",
        "error_msg": "The IAM or FunctionGraph authorizer does not allow the request."}]
    assert len(summary["run_id"]) == 32 and summary["db"] == "x.duckdb"
    log = (tmp_path / "run.log").read_text(encoding="utf-8")
    assert "fetching 2 project(s)" in log and "progress: 2/2 projects" in log
    assert log.rstrip().splitlines()[-1].endswith(f"INFO    run {summary['run_id'][:12]} as of "
                                                 f"{summary['as_of'][:10]} {summary['as_of'][11:19]}Z: 1/2 projects ok, "
                                                 f"130 images, 130 new versions, 0 retired, 0 retries, "
                                                 f"{summary['seconds']:.1f}s -> x.duckdb")
    assert TOKEN not in log + proc.stdout + proc.stderr
    assert not (tmp_path / "x.duckdb.wal").exists()  # written out whole before the command ends
    assert query(tmp_path / "x.duckdb", "select count(*) from workspace_images.images") == [(130,)]

    again = cli(["run", "--endpoint", sim.url, "--project", "nowhere", "--db", "x.duckdb", "--json",
                 "--log-file", "run.log"], tmp_path)
    assert again.returncode == 2
    failure = json.loads(again.stdout)
    assert failure["exit_code"] == 2 and failure["error"].startswith("error: invalid project 'nowhere'")
    assert (tmp_path / "run.log").read_text(encoding="utf-8").rstrip().splitlines()[-1].endswith(
        "ERROR   " + failure["error"])
