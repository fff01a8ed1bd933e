"""A wait the API asks for counts against project_timeout; odd names and arguments exit 0 or 2."""

from __future__ import annotations

import os
import re
import time
from pathlib import Path
from typing import List

import pytest

from workspace_images.simulator import Simulator
from tests.helpers import cli, current_ids, load, nothing_written, one_line, project_run, query, run_args


def ids_of(sim: Simulator, project_id: str) -> List[str]:
    return sorted(image["id"] for image in sim.images(project_id))


# -- waits against project_timeout -----------------------------------------------------------


def test_a_retry_after_longer_than_the_time_left_fails_the_project_at_once(sim: Simulator, tmp_path: Path) -> None:
    """dlt honours Retry-After up to request_max_retry_delay (300 s by default): the project used to
    sleep that long before its deadline was looked at. A 429's Retry-After pauses the whole account,
    so the fine project goes first (one at a time)."""
    fine = sim.add_project("cn-north-4", images=30)
    throttled = sim.add_project("cn-east-3", images=30)
    sim.fail_project(throttled.project_id, "retry_after", times=5, retry_after=999999)
    settings = {"RUNTIME__REQUEST_MAX_RETRY_DELAY": "300", "SOURCES__WORKSPACE_IMAGES__PROJECT_TIMEOUT": "30"}
    began = time.monotonic()
    proc = cli(run_args(sim, "x.duckdb", None, "--concurrency", "1"), tmp_path, extra_env=settings)
    took = time.monotonic() - began
    assert proc.returncode == 1, proc.stderr
    assert took < 20, took
    said = [line for line in proc.stderr.splitlines() if line.startswith("failed:")]
    assert said == [
        f"failed: cn-east-3:{throttled.project_id}: HTTP 429 WI.THROTTLED: throttled 1 time (APIG.0308: The "
        "throttling threshold has been reached: policy user over ratelimit,limit:100,time:1 minute), waited 0s, "
        "last at 1.6 requests/s; the next request would wait 999999s more, past the project's time"
    ], proc.stderr
    db = tmp_path / "x.duckdb"
    (run_id,) = query(db, "select distinct run_id from workspace_images.project_runs")[0]
    row = project_run(db, run_id, throttled.project_id)
    assert (row["status"], row["http_status"], row["error_code"], row["requests"]) == ("failed", 429, "WI.THROTTLED", 1)
    assert row["error_msg"] == said[0].split("HTTP 429 WI.THROTTLED: ", 1)[1]
    assert project_run(db, run_id, fine.project_id)["status"] == "ok"
    assert current_ids(db, fine.project_id) == ids_of(sim, fine.project_id)
    assert current_ids(db, throttled.project_id) == []


def test_a_back_off_longer_than_the_time_left_fails_the_project_at_once(
    sim: Simulator, db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RUNTIME__REQUEST_BACKOFF_FACTOR", "100")  # the first retry waits 100 s
    monkeypatch.setenv("RUNTIME__REQUEST_MAX_RETRY_DELAY", "300")
    fine = sim.add_project("cn-north-4", images=30)
    failing = sim.add_project("cn-east-3", images=30)
    sim.fail_project(failing.project_id, "status", status=503, error_code="APIG.1000")
    began = time.monotonic()
    result = load(db, sim, project_timeout=30)
    took = time.monotonic() - began
    assert result.exit_code == 1
    assert took < 20, took
    row = project_run(db, result.run_id, failing.project_id)
    assert (row["http_status"], row["error_code"], row["requests"]) == (503, "WI.TIMEOUT", 1)
    assert re.fullmatch(r"the retry after HTTP 503 APIG\.1000 would wait 100s \(back-off\), more than the "
                        r"\d+\.\ds left of project_timeout \(30s\); 0 page\(s\) read", row["error_msg"]), row["error_msg"]
    assert project_run(db, result.run_id, fine.project_id)["status"] == "ok"


def test_a_wait_within_the_time_left_is_waited(sim: Simulator, db: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNTIME__REQUEST_MAX_RETRY_DELAY", "300")
    project = sim.add_project("cn-north-4", images=30)
    sim.fail_project(project.project_id, "retry_after", times=1, retry_after=1)
    began = time.monotonic()
    result = load(db, sim, project_timeout=30)
    assert result.exit_code == 0
    assert time.monotonic() - began >= 1  # the second asked for
    row = project_run(db, result.run_id, project.project_id)
    assert (row["status"], row["retries"]) == ("ok", 1)


# -- names and arguments -----------------------------------------------------------------------


@pytest.mark.parametrize("args, env, message", [
    (["--region", "cn-north-4\n"], {}, "invalid region 'cn-north-4\\n': expected an id like cn-north-4"),
    ([], {"SOURCES__WORKSPACE_IMAGES__PROJECTS": '[{"region": "cn-north-4\\n", "project_id": "abc"}]'},
     "invalid region 'cn-north-4\\n': expected an id like cn-north-4"),
    ([], {"SOURCES__WORKSPACE_IMAGES__PROJECTS": '[{"region": "cn-north-4", "project_id": "abc\\n"}]'},
     "invalid project id 'abc\\n' in"),
])
def test_a_trailing_newline_is_no_valid_name(tmp_path: Path, args: List[str], env: dict, message: str) -> None:
    base = [] if env else ["--project", "cn-north-4:abc"]
    proc = cli(["run", *base, *args], tmp_path, extra_env=env)
    assert proc.returncode == 2, proc.stderr
    assert one_line(proc.stderr).startswith(f"workspace-images: error: {message}"), proc.stderr
    nothing_written(tmp_path)


def test_an_account_name_with_a_trailing_newline_exits_2(tmp_path: Path) -> None:
    (tmp_path / ".dlt").mkdir()
    (tmp_path / ".dlt" / "config.toml").write_text(
        '[sources.workspace_images.accounts."acme\\n"]\nprojects = ["cn-north-4:abc"]\n')
    proc = cli(["run", "--project", "cn-north-4:abc"], tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert one_line(proc.stderr) == ("workspace-images: error: invalid account name 'acme\\n': use letters, digits "
                                     "and '_' (not 'default')")


def test_a_percent_in_the_database_name_works(sim: Simulator, tmp_path: Path) -> None:
    """dlt formats the paths of its files with `%`: the working folder's name has none."""
    project = sim.add_project("cn-north-4", images=20)
    for day in (0, 1):
        proc = cli(run_args(sim, "100%.duckdb", day), tmp_path)
        assert proc.returncode == 0, proc.stderr
    assert current_ids(tmp_path / "100%.duckdb", project.project_id) == ids_of(sim, project.project_id)
    assert [p.name for p in (tmp_path / ".workspace_images").iterdir()] == ["100_.duckdb-130c658f"]
    assert cli(["report", "--db", "100%.duckdb"], tmp_path).returncode == 0


@pytest.mark.parametrize("folder, char", [("100%", "%"), ("it's", "'")])
def test_a_percent_or_quote_in_the_working_folder_exits_2(sim: Simulator, tmp_path: Path, folder: str,
                                                          char: str) -> None:
    """dlt pastes the working folder's path into SQL and into %-formatted paths unescaped."""
    sim.add_project("cn-north-4", images=5)
    work = tmp_path / folder
    work.mkdir()
    proc = cli(run_args(sim), work)
    assert proc.returncode == 2, proc.stderr
    assert one_line(proc.stderr) == (
        f"workspace-images: error: dlt's working folder {work}/.workspace_images/x.duckdb has a {char} in its path, "
        "which dlt cannot load from: move the database to a folder without one, or pass --pipelines-dir elsewhere")
    nothing_written(work)
    assert cli([*run_args(sim), "--pipelines-dir", str(tmp_path / "work")], work).returncode == 0


@pytest.mark.parametrize("command", ["run", "report"])
def test_a_backslash_in_the_database_path_exits_2(sim: Simulator, tmp_path: Path, command: str) -> None:
    """DuckDB reads `a\\b.duckdb` as `a/b.duckdb`: another file."""
    sim.add_project("cn-north-4", images=5)
    args = run_args(sim, "a\\b.duckdb") if command == "run" else ["report", "--db", "a\\b.duckdb"]
    proc = cli(args, tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert one_line(proc.stderr) == ("workspace-images: error: --db a\\b.duckdb: DuckDB reads a \\ in a file's path "
                                     "as a folder separator, so it would open another file; use a path without one")
    nothing_written(tmp_path)


@pytest.mark.parametrize("args, message", [
    (["--days", "1000000000"], "--days must be from 1 to 36500 (a hundred years), got 1000000000"),
    (["--days", "0"], "--days must be from 1 to 36500 (a hundred years), got 0"),
    (["--changes", "100000000000000000000"], "--changes must be from 0 to 1,000,000, got 100000000000000000000"),
])
def test_report_arguments_out_of_range_exit_2(sim: Simulator, tmp_path: Path, args: List[str], message: str) -> None:
    sim.add_project("cn-north-4", images=5)
    assert cli(run_args(sim), tmp_path).returncode == 0
    proc = cli(["report", "--db", "x.duckdb", *args], tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert one_line(proc.stderr) == f"workspace-images: error: {message}"
    assert proc.stdout == ""


def test_report_over_a_hundred_years_of_days_works(sim: Simulator, tmp_path: Path) -> None:
    sim.add_project("cn-north-4", images=5)
    assert cli(run_args(sim), tmp_path).returncode == 0
    proc = cli(["report", "--db", "x.duckdb", "--days", "36500", "--changes", "1000000"], tmp_path)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize("name", ["x.duckdb", "other.duckdb"])
def test_a_database_with_two_names_exits_2(sim: Simulator, tmp_path: Path, name: str) -> None:
    """Each name would have a run lock of its own, so two runs could write one database at once."""
    project = sim.add_project("cn-north-4", images=20)
    assert cli(run_args(sim), tmp_path).returncode == 0
    os.link(tmp_path / "x.duckdb", tmp_path / "other.duckdb")
    before = sim.requests[:]
    for args in (run_args(sim, name, 1), ["models", "--db", name]):
        proc = cli(args, tmp_path)
        assert proc.returncode == 2, proc.stderr
        assert one_line(proc.stderr) == (
            f"workspace-images: error: {name} is a file with 2 names (hard links): a database must have one name, "
            "so that it has one run lock; remove its other names and run again")
    assert sim.requests == before  # refused before anything was fetched
    (tmp_path / "other.duckdb").unlink()
    assert cli(run_args(sim, "x.duckdb", 1), tmp_path).returncode == 0
    assert current_ids(tmp_path / "x.duckdb", project.project_id) == ids_of(sim, project.project_id)
