"""A wait the API asks for counts against project_timeout."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import List

import pytest

from workspace_images.simulator import Simulator
from tests.conftest import cli, current_ids, load, project_run, query, run_args


def ids_of(sim: Simulator, project_id: str) -> List[str]:
    return sorted(image["id"] for image in sim.images(project_id))


# -- waits against project_timeout -----------------------------------------------------------


def test_a_retry_after_longer_than_the_time_left_fails_the_project_at_once(sim: Simulator, tmp_path: Path) -> None:
    """dlt honours Retry-After up to request_max_retry_delay (300 s by default): the project used to
    sleep that long before its deadline was looked at."""
    fine = sim.add_project("cn-north-4", images=30)
    throttled = sim.add_project("cn-east-3", images=30)
    sim.fail_project(throttled.project_id, "retry_after", times=5, retry_after=999999)
    settings = {"RUNTIME__REQUEST_MAX_RETRY_DELAY": "300", "SOURCES__WORKSPACE_IMAGES__PROJECT_TIMEOUT": "30"}
    began = time.monotonic()
    proc = cli(run_args(sim), tmp_path, extra_env=settings)
    took = time.monotonic() - began
    assert proc.returncode == 1, proc.stderr
    assert took < 20, took
    said = [line for line in proc.stderr.splitlines() if line.startswith("failed:")]
    assert len(said) == 1, proc.stderr
    line = re.fullmatch(
        rf"failed: cn-east-3:{throttled.project_id}: HTTP 429 WI\.TIMEOUT: HTTP 429 APIG\.0308 asked to wait "
        r"999999s \(Retry-After\) before a retry, more than the (\d+\.\d)s left of project_timeout \(30s\); "
        r"0 page\(s\) read",
        said[0],
    )
    assert line is not None, said[0]
    assert 20 < float(line[1]) <= 30
    db = tmp_path / "x.duckdb"
    (run_id,) = query(db, "select distinct run_id from workspace_images.project_runs")[0]
    row = project_run(db, run_id, throttled.project_id)
    assert (row["status"], row["http_status"], row["error_code"], row["requests"]) == ("failed", 429, "WI.TIMEOUT", 1)
    assert row["error_msg"] == said[0].split("HTTP 429 WI.TIMEOUT: ", 1)[1]
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
