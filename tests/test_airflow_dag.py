"""The Airflow tasks' work (`airflow_tasks`, `airflow_context`), called as the DAG calls it, against
the simulator, without Airflow.

tests/integration/ runs the same DAG in a real Airflow (`make test-integration`).
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import textwrap
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterator

import dlt
import pytest

from workspace_images.pipelines import airflow_context, airflow_dag
from workspace_images.pipelines.airflow_context import AirflowFailException, SettingsError, environ
from workspace_images.pipelines.airflow_retry import StillHeld
from workspace_images.pipelines.errors import RunFailed
from workspace_images.pipelines.airflow_tasks import ProjectsFailed, as_of_for, build_models, load_images, plan_loads
from workspace_images.pipelines.locking import RunLock
from workspace_images.pipelines.warehouse import Unreachable
from workspace_images.simulator import Simulator
from tests.helpers import TOKEN, current_ids, query, utc


@pytest.fixture
def settings(sim: Simulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Settings as environment variables, the database in the test's folder; returns the database."""
    monkeypatch.setenv("SOURCES__WORKSPACE_IMAGES__CREDENTIALS__TOKEN", TOKEN)
    monkeypatch.setenv("SOURCES__WORKSPACE_IMAGES__ENDPOINT", sim.url)
    monkeypatch.setenv("WORKSPACE_IMAGES_DB", str(tmp_path / "af.duckdb"))
    monkeypatch.delenv("WORKSPACE_IMAGES_FANOUT", raising=False)
    monkeypatch.delenv("DLT_PROJECT_DIR", raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path / "af.duckdb"


def projects_env(monkeypatch: pytest.MonkeyPatch, *projects: object) -> None:
    monkeypatch.setenv("SOURCES__WORKSPACE_IMAGES__PROJECTS",
                       json.dumps([f"{p.region}:{p.project_id}" for p in projects]))  # type: ignore[attr-defined]


def ids(sim: Simulator, project_id: str) -> list:
    return sorted(i["id"] for i in sim.images(project_id))


def test_the_task_loads_as_of_the_end_of_the_interval(sim: Simulator, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    ok = sim.add_project("cn-north-4", images=30)
    bad = sim.add_project("cn-east-3", images=5)
    monkeypatch.setenv("SOURCES__WORKSPACE_IMAGES__CREDENTIALS__TOKEN", TOKEN)
    monkeypatch.setenv("SOURCES__WORKSPACE_IMAGES__ENDPOINT", sim.url)
    monkeypatch.setenv("SOURCES__WORKSPACE_IMAGES__PROJECTS", f'["cn-north-4:{ok.project_id}"]')
    monkeypatch.setenv("WORKSPACE_IMAGES_DB", str(tmp_path / "af.duckdb"))
    monkeypatch.chdir(tmp_path)
    summary = load_images(data_interval_end=sim.as_of(0))
    assert "1/1 projects ok, 30 images" in summary
    assert query(tmp_path / "af.duckdb", "select distinct _dlt_valid_from from workspace_images.images") == [
        (sim.as_of(0),)
    ]
    monkeypatch.setenv("SOURCES__WORKSPACE_IMAGES__PROJECTS",
                       f'["cn-north-4:{ok.project_id}", "cn-east-3:{bad.project_id}"]')
    sim.fail_project(bad.project_id, "status", status=403, error_code="APIG.0302", error_msg="no")
    with pytest.raises(ProjectsFailed, match=rf"1 project\(s\) failed: cn-east-3:{bad.project_id} \(APIG.0302\)"):
        load_images(data_interval_end=sim.as_of(1))
    assert query(tmp_path / "af.duckdb", "select count(*) from workspace_images.project_runs") == [(3,)]


def test_some_projects_failing_fails_the_task_without_a_retry_after_loading_the_rest(
    sim: Simulator, settings: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ok = sim.add_project("cn-north-4", images=12)
    bad = sim.add_project("cn-east-3", images=5)
    projects_env(monkeypatch, ok, bad)
    sim.fail_project(bad.project_id, "status", status=500, error_code="WKS.0500", error_msg="boom")
    with pytest.raises(ProjectsFailed) as caught:
        load_images(sim.as_of(0), models=False)
    assert isinstance(caught.value, AirflowFailException)  # Airflow fails the task: no retry fetching it all again
    message = str(caught.value)
    assert message.startswith(f"1 project(s) failed: cn-east-3:{bad.project_id} (WKS.0500); run ")
    assert f" as of {sim.as_of(0):%Y-%m-%d %H:%M:%S}Z: 1/2 projects ok, 12 images, 12 new versions, " in message
    assert message.endswith(f" -> {settings} (in project_runs; the other projects are loaded; not retried: "
                            "a retry would fetch every project again)")
    assert current_ids(settings, ok.project_id) == ids(sim, ok.project_id)
    assert query(settings, "select project_id, status from workspace_images.project_runs order by status") == [
        (bad.project_id, "failed"), (ok.project_id, "ok")
    ]


@pytest.mark.parametrize("broken", ["no credentials", "unknown filter", "as of before the latest load"])
def test_a_configuration_error_fails_the_task_at_once(sim: Simulator, settings: Path, broken: str,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    project = sim.add_project("cn-north-4", images=8)
    projects_env(monkeypatch, project)
    if broken == "no credentials":
        monkeypatch.delenv("SOURCES__WORKSPACE_IMAGES__CREDENTIALS__TOKEN")
    elif broken == "unknown filter":
        monkeypatch.setenv("SOURCES__WORKSPACE_IMAGES__FILTERS", '{"colour": "blue"}')
    else:
        load_images(sim.as_of(2), models=False)
    requests = len(sim.requests)
    with pytest.raises(SettingsError, match="^configuration: ") as caught:
        load_images(sim.as_of(1))
    assert isinstance(caught.value, AirflowFailException)  # Airflow fails the task, no retry
    assert len(sim.requests) == requests  # nothing was asked of the API
    if broken != "as of before the latest load":
        assert not settings.exists()


HOLDER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    kind, db, seconds = sys.argv[1], Path(sys.argv[2]), float(sys.argv[3])
    if kind == "lock":
        from workspace_images.pipelines.locking import RunLock
        held = RunLock(db, "run").acquire()
    else:
        import duckdb
        held = duckdb.connect(str(db), read_only=True)
    print("holding", flush=True)
    time.sleep(seconds)
""")


@pytest.fixture
def holder() -> Iterator:
    """Start another process holding a database: its run lock (`lock`, another run) or the DuckDB file
    open (`file`, a dashboard), for some seconds; ended with the test."""
    started: list = []

    def start(kind: str, db: Path, seconds: float) -> subprocess.Popen:
        proc = subprocess.Popen([sys.executable, "-c", HOLDER, kind, str(db), str(seconds)],
                                stdout=subprocess.PIPE, text=True)
        started.append(proc)
        assert proc.stdout is not None and proc.stdout.readline() == "holding\n"
        return proc

    yield start
    for proc in started:
        proc.kill()
        proc.wait()


def retry_lines(caplog: pytest.LogCaptureFixture) -> list:
    return [r.getMessage() for r in caplog.records if "; trying again in " in r.getMessage()]


def test_a_run_holding_the_lock_is_waited_for_in_the_task(sim: Simulator, settings: Path, holder: Any,
                                                         monkeypatch: pytest.MonkeyPatch,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    projects_env(monkeypatch, sim.add_project("cn-north-4", images=8))
    load_images(sim.as_of(0))
    requests = len(sim.requests)
    other = holder("lock", settings, 2)  # another run (the CLI from cron) lets go after 2 s
    started = time.monotonic()
    with caplog.at_level(logging.INFO):
        assert "1/1 projects ok" in load_images(sim.as_of(1))
    assert 5 <= time.monotonic() - started < 30  # the second try, 5 s after the first
    (line,) = retry_lines(caplog)
    assert line.startswith(f"another workspace-images run (PID {other.pid}, started ")
    assert line.endswith(f"holds {settings}.lock: nothing was done; run again when it has finished; "
                         "trying again in 5s (for up to 300s in all)")
    assert len(sim.requests) > requests


def test_a_lock_held_through_the_wait_fails_without_a_retry_naming_its_holder(
    sim: Simulator, settings: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    projects_env(monkeypatch, sim.add_project("cn-north-4", images=8))
    load_images(sim.as_of(0))
    requests = len(sim.requests)
    with RunLock(settings, "run"):
        with pytest.raises(StillHeld) as caught:
            load_images(sim.as_of(1), lock_wait=2)
        with pytest.raises(StillHeld) as built:
            build_models(settings, lock_wait=0)
    assert isinstance(caught.value, AirflowFailException)  # Airflow does not retry it
    for error in (caught.value, built.value):
        assert str(error).startswith(f"another workspace-images run (PID {os.getpid()}, started ")
    assert str(built.value).endswith(" (so at its one try over 0s: not retried; clear the task once it has let go)")
    assert str(caught.value).endswith(f"holds {settings}.lock: nothing was done; run again when it has finished "
                                      "(so at each of 2 tries over 2s: not retried; clear the task once it has let go)")
    assert len(sim.requests) == requests


def test_a_program_holding_the_file_is_waited_for_in_the_task(sim: Simulator, settings: Path, holder: Any,
                                                             monkeypatch: pytest.MonkeyPatch,
                                                             caplog: pytest.LogCaptureFixture) -> None:
    projects_env(monkeypatch, sim.add_project("cn-north-4", images=8))
    load_images(sim.as_of(0))
    monkeypatch.setenv("SOURCES__WORKSPACE_IMAGES__LOCK_TIMEOUT", "1")  # the run waits 1 s, then DatabaseBusy
    dashboard = holder("file", settings, 3)
    with caplog.at_level(logging.INFO):
        assert "1/1 projects ok" in load_images(sim.as_of(1), models=False)
    (line,) = retry_lines(caplog)
    assert line.startswith(f"{settings} is held open by PID {dashboard.pid} (")
    assert line.endswith("trying again in 5s (for up to 300s in all)")
    assert query(settings, "select count(distinct as_of) from workspace_images.project_runs") == [(2,)]

    dashboard = holder("file", settings, 60)
    with pytest.raises(StillHeld, match=rf"^{settings} is held open by PID {dashboard.pid} \(.* and stayed so "
                                        r"for 1s, .* \(so at each of 2 tries over \d+s: not retried; "):
        load_images(sim.as_of(2), models=False, lock_wait=3)  # a try takes over 1 s, the second starts at 3 s


@pytest.mark.parametrize("failure", ["destination down", "database unreadable"])
def test_a_run_that_failed_is_left_to_airflows_retries(sim: Simulator, settings: Path, failure: str,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    projects_env(monkeypatch, sim.add_project("cn-north-4", images=8))
    if failure == "destination down":
        monkeypatch.setenv("SOURCES__WORKSPACE_IMAGES__DESTINATION", "postgres")
        monkeypatch.setenv("DESTINATION__POSTGRES__CREDENTIALS", "postgresql://wi:pw@127.0.0.1:1/warehouse")
        expected: type = Unreachable
    else:
        settings.write_text("not a DuckDB file\n" * 100)
        expected = RunFailed
    with pytest.raises(expected) as caught:
        load_images(sim.as_of(0))
    assert not isinstance(caught.value, AirflowFailException)  # Airflow retries it, RETRY_DELAY later
    assert (airflow_dag.RETRIES, airflow_dag.RETRY_DELAY) == (2, timedelta(minutes=3))


def test_progress_and_summary_lines_reach_airflows_task_log(sim: Simulator, settings: Path,
                                                            monkeypatch: pytest.MonkeyPatch,
                                                            caplog: pytest.LogCaptureFixture) -> None:
    """Airflow's task log is fed from the root logger: the task's lines must propagate there."""
    projects_env(monkeypatch, sim.add_project("cn-north-4", images=20), sim.add_project("cn-east-3", images=7))
    log = logging.getLogger("workspace_images")
    saved = log.propagate, log.level
    log.propagate, log.level = False, logging.WARNING  # as the CLI's setup_logging -q would leave it
    try:
        with caplog.at_level(logging.INFO):  # caplog listens on the root logger, as Airflow's handler does
            summary = load_images(sim.as_of(0))
        assert (log.propagate, log.level) == (False, logging.WARNING)  # put back as it was
    finally:
        log.propagate, log.level = saved
    lines = [r.getMessage() for r in caplog.records if r.name == "workspace_images"]
    assert any(line.startswith("progress: 2/2 projects, 27 images") for line in lines), lines
    assert summary in lines
    assert any(line.startswith("models: ") for line in lines)
    assert any(line.startswith("loading every project into ") for line in lines)


def test_settings_come_from_dlt_beside_the_dag_file_whatever_the_working_folder(
    sim: Simulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, dlt_reloaded: None
) -> None:
    project = sim.add_project("cn-north-4", images=9)
    dags = tmp_path / "dags"
    (dags / ".dlt").mkdir(parents=True)
    (dags / ".dlt" / "config.toml").write_text(
        f'[sources.workspace_images]\nendpoint = "{sim.url}"\nprojects = ["cn-north-4:{project.project_id}"]\n'
    )
    (dags / ".dlt" / "secrets.toml").write_text(f'[sources.workspace_images.credentials]\ntoken = "{TOKEN}"\n')
    worker = tmp_path / "worker"  # the worker's working folder has settings of its own
    (worker / ".dlt").mkdir(parents=True)
    (worker / ".dlt" / "config.toml").write_text('[sources.workspace_images]\nendpoint = "http://127.0.0.1:9"\n')
    monkeypatch.chdir(worker)
    monkeypatch.delenv("DLT_PROJECT_DIR", raising=False)
    db = tmp_path / "warehouse" / "images.duckdb"
    db.parent.mkdir()
    assert "1/1 projects ok, 9 images" in load_images(sim.as_of(0), db, dag_folder=dags)
    assert current_ids(db, project.project_id) == ids(sim, project.project_id)
    assert "1/1 projects ok, 9 images" in plan_and_load(sim, db, dags, "region")
    assert "DLT_PROJECT_DIR" not in os.environ  # the worker's own settings are back
    assert dlt.config.get("sources.workspace_images.endpoint") == "http://127.0.0.1:9"


def test_a_settings_file_dlt_cannot_read_fails_at_once(sim: Simulator, settings: Path, dlt_reloaded: None) -> None:
    dags = settings.parent / "dags"
    (dags / ".dlt").mkdir(parents=True)
    (dags / ".dlt" / "config.toml").write_text('[sources.workspace_images\nprojects = ["cn-north-4:x"\n')
    with pytest.raises(SettingsError, match=r"^configuration: .*config\.toml.* \(not retried: fix the setting"):
        load_images(sim.as_of(0), dag_folder=dags)
    assert sim.requests == [] and not settings.exists()


def plan_and_load(sim: Simulator, db: Path, dags: Path, fanout: str) -> str:
    with airflow_context.task_context(dags):
        (part,) = plan_loads(fanout, sim.as_of(1))
    assert part["label"] == "cn-north-4"
    return load_images(datetime.fromisoformat(part["as_of"]), db, region=part["region"], dag_folder=dags)


@pytest.fixture
def dlt_reloaded() -> Iterator[None]:
    """dlt read the settings of the test's working folder: read the repository's again afterwards."""
    start = os.getcwd()
    yield
    os.chdir(start)
    airflow_context.reload_dlt_providers()


def test_fan_out_by_region_loads_each_region_in_a_run_of_its_own(sim: Simulator, settings: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    north = [sim.add_project("cn-north-4", images=n) for n in (14, 6)]
    east = sim.add_project("cn-east-3", images=11)
    projects_env(monkeypatch, *north, east)
    monkeypatch.setenv("WORKSPACE_IMAGES_FANOUT", "region")
    for day in (0, 1):
        sim.set_day(day)
        parts = plan_loads("", sim.as_of(day))  # the DAG param left empty: the environment decides
        assert parts == [{"label": r, "as_of": sim.as_of(day).isoformat(), "region": r}
                         for r in ("cn-east-3", "cn-north-4")]
        summaries = [load_images(datetime.fromisoformat(p["as_of"]), region=p["region"], models=False)
                     for p in parts]
        assert [s.split(": ")[1].split(",")[0] for s in summaries] == ["1/1 projects ok", "2/2 projects ok"]
        assert build_models().startswith("models: ")
    for project in (*north, east):
        assert current_ids(settings, project.project_id) == ids(sim, project.project_id)
    runs = query(settings, "select as_of, region, count(*), count(distinct run_id) from workspace_images.project_runs "
                           "group by all order by all")
    assert runs == [(sim.as_of(d), r, n, 1) for d in (0, 1) for r, n in (("cn-east-3", 1), ("cn-north-4", 2))]
    current = sum(len(sim.images(p.project_id)) for p in (*north, east))
    assert query(settings, "select count(*) from analytics.image_inventory") == [(current,)]


def test_fan_out_by_account_loads_each_account_alone(settings: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with Simulator(projects=0, seed=21, token=TOKEN) as sim:
        sim.iam.add_account("acme")
        mine = sim.add_project("cn-north-4", images=10)
        theirs = sim.add_project("cn-east-3", images=4, account="acme")
        acme = sim.iam.account("acme")
        monkeypatch.setenv("SOURCES__WORKSPACE_IMAGES__ENDPOINT", sim.url)
        monkeypatch.setenv("SOURCES__WORKSPACE_IMAGES__IAM_ENDPOINT", sim.url)
        projects_env(monkeypatch, mine)
        monkeypatch.setenv("SOURCES__WORKSPACE_IMAGES__ACCOUNTS",
                           json.dumps({"acme": {"projects": [f"cn-east-3:{theirs.project_id}"]}}))
        monkeypatch.setenv("SOURCES__WORKSPACE_IMAGES__ACCOUNTS__ACME__CREDENTIALS__ACCESS_KEY", acme.access_key)
        monkeypatch.setenv("SOURCES__WORKSPACE_IMAGES__ACCOUNTS__ACME__CREDENTIALS__SECRET_KEY", acme.secret_key)
        parts = plan_loads("account", sim.as_of(0))
        assert [(p["label"], p["account"]) for p in parts] == [("default", "default"), ("acme", "acme")]
        for part in parts:
            summary = load_images(sim.as_of(0), account=part["account"], models=False)
            assert "1/1 projects ok" in summary, summary
        assert os.environ["SOURCES__WORKSPACE_IMAGES__PROJECTS"] == f'["cn-north-4:{mine.project_id}"]'
        assert query(settings, "select account, project_id from workspace_images.project_runs order by 1") == [
            ("acme", theirs.project_id), ("default", mine.project_id)
        ]
        assert current_ids(settings, theirs.project_id) == ids(sim, theirs.project_id)
        monkeypatch.delenv("SOURCES__WORKSPACE_IMAGES__PROJECTS")  # no projects of its own: acme alone
        assert [p["label"] for p in plan_loads("account", sim.as_of(0))] == ["acme"]


def test_plan_loads_refuses_what_cannot_be_split(settings: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(SettingsError, match="fanout 'country' is not one of none, region, account"):
        plan_loads("country")
    monkeypatch.setenv("SOURCES__WORKSPACE_IMAGES__DISCOVER_PROJECTS", "true")
    with pytest.raises(SettingsError, match="fanout region needs the regions to load"):
        plan_loads("region")
    monkeypatch.setenv("SOURCES__WORKSPACE_IMAGES__REGIONS", '["cn-north-4", "ap-southeast-1"]')
    assert [p["region"] for p in plan_loads("region")] == ["ap-southeast-1", "cn-north-4"]
    monkeypatch.setenv("SOURCES__WORKSPACE_IMAGES__ACCOUNTS", '{"acme": {"discover_projects": true}}')
    with pytest.raises(SettingsError, match="use fanout account"):
        plan_loads("region")
    assert [p["label"] for p in plan_loads("account")] == ["default", "acme"]
    monkeypatch.delenv("SOURCES__WORKSPACE_IMAGES__ACCOUNTS")
    monkeypatch.setenv("SOURCES__WORKSPACE_IMAGES__REGIONS", '["not a region"]')
    with pytest.raises(SettingsError, match="^configuration: "):
        plan_loads("region")


def test_without_a_fan_out_one_load_of_everything(settings: Path) -> None:
    now = datetime.now(timezone.utc)
    (part,) = plan_loads(None, utc(2026, 3, 4))
    assert part == {"label": "all", "as_of": "2026-03-04T00:00:00+00:00"}
    (part,) = plan_loads("none", now + timedelta(days=1))  # an interval not over yet: now
    assert now <= datetime.fromisoformat(part["as_of"]) <= datetime.now(timezone.utc)


def test_as_of_is_the_end_of_the_interval_never_in_the_future() -> None:
    now = utc(2026, 11, 27, 6)
    assert as_of_for(utc(2026, 11, 26), now) == utc(2026, 11, 26)
    assert as_of_for(datetime(2026, 11, 26, 8), now) == utc(2026, 11, 26, 8)  # naive: UTC
    assert as_of_for(utc(2026, 11, 28), now) == now
    assert as_of_for(None, now) == now  # Airflow 3's manual runs without a logical date


def test_build_models_before_any_load_builds_nothing(settings: Path) -> None:
    assert build_models() == f"no models: {settings} does not exist"
    assert not settings.exists()


def test_outside_airflow_there_is_no_dag_and_the_exception_is_a_stand_in() -> None:
    assert airflow_dag.dag is None
    assert issubclass(SettingsError, AirflowFailException)
    assert issubclass(ProjectsFailed, AirflowFailException) and issubclass(StillHeld, AirflowFailException)


def test_airflow_parses_the_dag_file_without_importing_dlt_or_duckdb() -> None:
    """The heavy imports wait for the tasks: Airflow parses the dags folder often."""
    code = ("import sys, workspace_images.pipelines.airflow_dag; "
            "print(sorted(m for m in ('dlt', 'duckdb', 'pyarrow', 'pandas', 'sqlglot') if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "[]\n", "")


def test_environ_sets_and_unsets_for_the_block_then_puts_back(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WI_TEST_KEPT", "before")
    monkeypatch.delenv("WI_TEST_NEW", raising=False)
    with pytest.raises(RuntimeError):
        with environ(WI_TEST_KEPT=None, WI_TEST_NEW="during"):
            assert "WI_TEST_KEPT" not in os.environ and os.environ["WI_TEST_NEW"] == "during"
            raise RuntimeError("the block fails")
    assert os.environ["WI_TEST_KEPT"] == "before" and "WI_TEST_NEW" not in os.environ
