"""`airflow dags test workspace_images` in a real Airflow, against the simulator.

Each test writes an Airflow home in its temp folder (a migrated SQLite metadata database,
dags/ with the DAG and `.dlt/` beside it), runs `airflow dags test` in another working
folder, whose own `.dlt/` points nowhere, and then reads the DuckDB file and Airflow's
metadata database.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
import time
import warnings
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, List

import duckdb
import pytest

from workspace_images.pipelines.airflow_context import DAG_DEFAULT_DB
from workspace_images.simulator import SimProject, Simulator

if TYPE_CHECKING:
    from tests.integration.conftest import AirflowHome

TOKEN = "sim-token-airflow-9d1c"
AIRFLOW_2 = importlib.metadata.version("apache-airflow").startswith("2.")


def assert_progress(output: str, line: str) -> None:
    """The task log holds the progress line `line` (`progress: N/N projects, ...`).

    On Airflow 2, `dags test` prints the log to whatever sys.stdout is when a line comes,
    and dlt's Airflow Variable provider points sys.stdout at a StringIO while it looks a
    setting up: a line that a fetch thread logs just then is lost, so only the first line
    (the main thread's) is sure. Airflow 3 logs through a handler of its own.
    """
    if AIRFLOW_2:
        assert "progress: 0/" in output
    else:
        assert line in output


def query(db: Path, sql: str, params: list | None = None) -> list:
    with duckdb.connect(str(db), read_only=True) as con:
        return con.execute(sql, params or []).fetchall()


def at(date: str) -> datetime:
    """The validity timestamp of a DAG run: the end of its data interval, midnight UTC of its logical date."""
    return datetime.fromisoformat(date).replace(tzinfo=timezone.utc)


def config_toml(sim: Simulator, projects: Iterable[SimProject], extra: str = "") -> str:
    listed = json.dumps([f"{p.region}:{p.project_id}" for p in projects])
    return (f'[sources.workspace_images]\nendpoint = "{sim.url}"\niam_endpoint = "{sim.url}"\n'
            f"projects = {listed}\n{extra}")


SECRETS = f'[sources.workspace_images.credentials]\ntoken = "{TOKEN}"\n'


def decoy_settings(airflow: AirflowHome) -> None:
    """Settings in the worker's working folder that would fail every load: they must not be read."""
    (airflow.worker / ".dlt").mkdir()
    (airflow.worker / ".dlt" / "config.toml").write_text(
        '[sources.workspace_images]\nendpoint = "http://127.0.0.1:9"\nprojects = ["cn-north-4:0000"]\n'
    )


def assert_history_matches(db: Path, sim: Simulator, projects: Iterable[SimProject]) -> None:
    """Each project's current images in the database are exactly the simulator's."""
    for project in projects:
        expected = sorted(i["id"] for i in sim.images(project.project_id))
        loaded = [r[0] for r in query(db, "select id from workspace_images.images where project_id = ? "
                                          "and _dlt_valid_to is null order by id", [project.project_id])]
        assert loaded == expected, project


def states(airflow: AirflowHome, task_id: str) -> List[tuple]:
    return [(m, s, t, label) for tid, m, s, t, _, label in airflow.task_instances() if tid == task_id]


def test_a_daily_run_loads_every_project_and_builds_the_models(airflow: AirflowHome) -> None:
    """The DAG imported by a one-line file in dags/, settings in dags/.dlt/, two days in a row."""
    with Simulator(projects=3, images=40, seed=5, token=TOKEN,
                   regions=["cn-north-4", "cn-east-3", "ap-southeast-1"]) as sim:
        airflow.install_dag("import")
        airflow.settings(config_toml(sim, sim.projects), SECRETS)
        decoy_settings(airflow)
        for day, date in ((0, "2026-11-02"), (1, "2026-11-03")):
            sim.set_day(day)
            run = airflow.dags_test(date)
            assert run.returncode == 0, run.tail()
            total = sum(len(sim.images(p.project_id)) for p in sim.projects)
            assert_history_matches(airflow.db, sim, sim.projects)
            rows = query(airflow.db, "select project_id, status, images from workspace_images.project_runs "
                                     "where as_of = ? order by project_id", [at(date)])
            assert rows == sorted((p.project_id, "ok", len(sim.images(p.project_id))) for p in sim.projects)
            assert query(airflow.db, "select count(*) from analytics.image_inventory") == [(total,)]
            assert query(airflow.db, "select count(*) from analytics.stg_project_runs") == [(3 * (day + 1),)]
            # the task log: where the settings came from, progress, the run's and the models' summaries
            assert f"settings: {airflow.dags / '.dlt'}" in run.output
            assert_progress(run.output, f"progress: 3/3 projects, {total:,} images, 0 retries, 0 failed")
            assert f"as of {date} 00:00:00Z: 3/3 projects ok, {total:,} images" in run.output
            assert "models: 7 built" in run.output
            assert airflow.task_instances() == [
                ("build_models", -1, "success", 1, 2, None),
                ("load_images", 0, "success", 1, 2, "all"),
                ("plan_loads", -1, "success", 1, 0, None),
                ("summary", -1, "success", 1, 0, None),
            ]
        assert query(airflow.db, "select count(*) from workspace_images.images where _dlt_valid_to is not null")[0][0] > 0
        assert query(airflow.db, "select distinct _dlt_valid_from from workspace_images.images order by 1") == [
            (at("2026-11-02"),), (at("2026-11-03"),)
        ]
    assert not (airflow.worker / ".workspace_images").exists()  # dlt worked beside the DuckDB file
    assert (airflow.db.parent / ".workspace_images" / airflow.db.name).is_dir()


def test_fan_out_by_region_maps_one_load_per_region_then_one_models_task(airflow: AirflowHome) -> None:
    """The DAG file copied into dags/, the fan-out from $WORKSPACE_IMAGES_FANOUT."""
    with Simulator(projects=0, seed=6, token=TOKEN) as sim:
        projects = [sim.add_project("cn-north-4", images=30), sim.add_project("cn-north-4", images=12),
                    sim.add_project("cn-east-3", images=21)]
        airflow.install_dag("copy")
        airflow.settings(config_toml(sim, projects), SECRETS)
        decoy_settings(airflow)
        run = airflow.dags_test("2026-11-02", WORKSPACE_IMAGES_FANOUT="region")
        assert run.returncode == 0, run.tail()
        assert states(airflow, "load_images") == [(0, "success", 1, "cn-east-3"), (1, "success", 1, "cn-north-4")]
        assert states(airflow, "build_models") == [(-1, "success", 1, None)]
        assert_history_matches(airflow.db, sim, projects)
        runs = query(airflow.db, "select region, count(*), count(distinct run_id), min(as_of) "
                                 "from workspace_images.project_runs group by 1 order by 1")
        assert runs == [("cn-east-3", 1, 1, at("2026-11-02")), ("cn-north-4", 2, 1, at("2026-11-02"))]
        assert query(airflow.db, "select count(distinct run_id) from workspace_images.project_runs") == [(2,)]
        assert query(airflow.db, "select count(*) from analytics.image_inventory") == [(63,)]
        assert "loading region cn-east-3 into" in run.output and "loading region cn-north-4 into" in run.output
        assert_progress(run.output, "progress: 2/2 projects, 42 images")
        assert "as of 2026-11-02 00:00:00Z: 1/1 projects ok, 21 images" in run.output


def test_fan_out_by_account_from_the_run_conf(airflow: AirflowHome) -> None:
    """One load per account (`--conf '{"fanout": "account"}'`), the other account's keys in the environment."""
    with Simulator(projects=0, seed=7, token=TOKEN) as sim:
        sim.iam.add_account("acme")
        mine = [sim.add_project("cn-north-4", images=17)]
        theirs = [sim.add_project("cn-east-3", images=9, account="acme"),
                  sim.add_project("ap-southeast-1", images=5, account="acme")]
        acme = sim.iam.account("acme")
        extra = ("[sources.workspace_images.accounts.acme]\n"
                 f"projects = {json.dumps([f'{p.region}:{p.project_id}' for p in theirs])}\n")
        airflow.install_dag("import")
        airflow.settings(config_toml(sim, mine, extra), SECRETS)
        run = airflow.dags_test(
            "2026-11-02", conf={"fanout": "account"},
            SOURCES__WORKSPACE_IMAGES__ACCOUNTS__ACME__CREDENTIALS__ACCESS_KEY=acme.access_key,
            SOURCES__WORKSPACE_IMAGES__ACCOUNTS__ACME__CREDENTIALS__SECRET_KEY=acme.secret_key,
        )
        assert run.returncode == 0, run.tail()
        assert states(airflow, "load_images") == [(0, "success", 1, "default"), (1, "success", 1, "acme")]
        assert_history_matches(airflow.db, sim, mine + theirs)
        assert query(airflow.db, "select account, count(*), count(distinct run_id) from workspace_images.project_runs "
                                 "group by 1 order by 1") == [("acme", 2, 1), ("default", 1, 1)]
        assert query(airflow.db, "select distinct account from analytics.image_inventory order by 1") == [
            ("acme",), ("default",)
        ]
        assert acme.secret_key not in run.output


def test_a_configuration_error_fails_at_once_without_a_retry(airflow: AirflowHome) -> None:
    """No credentials: the load fails on its first try (AirflowFailException) and the DAG run fails.
    Retried, it would wait 3 minutes first."""
    with Simulator(projects=2, images=10, seed=8, token=TOKEN) as sim:
        airflow.install_dag("import")
        airflow.settings(config_toml(sim, sim.projects))  # no secrets.toml
        run = airflow.dags_test("2026-11-02")
        assert run.returncode != 0
        assert "SettingsError: configuration: no credentials for sources.workspace_images" in run.output, run.tail()
        assert "not retried" in run.output
        assert states(airflow, "load_images") == [(0, "failed", 1, "all")]  # one try of 3
        assert states(airflow, "summary") == [(-1, "upstream_failed", 0, None)]
        assert states(airflow, "build_models") == [(-1, "success", 1, None)]  # nothing to build, said so
        assert "does not exist: nothing was loaded, so no models to build" in run.output
        assert airflow.dag_run_state() == "failed"
        assert [r for r in sim.requests if r.path.startswith("/v2/")] == []
        assert not airflow.db.exists()

        airflow.settings(config_toml(sim, sim.projects), SECRETS)
        run = airflow.dags_test("2026-11-03", WORKSPACE_IMAGES_FANOUT="country")
        assert run.returncode != 0
        assert "fanout 'country' is not one of none, region, account" in run.output, run.tail()
        assert states(airflow, "plan_loads") == [(-1, "failed", 1, None)]
        assert airflow.dag_run_state() == "failed"


def test_secrets_from_the_airflow_variable_dlt_secrets_toml(airflow: AirflowHome) -> None:
    """No secrets.toml on the worker: dlt reads the Airflow Variable `dlt_secrets_toml` inside a task."""
    with Simulator(projects=1, images=15, seed=9, token=TOKEN) as sim:
        airflow.install_dag("import")
        airflow.settings(config_toml(sim, sim.projects))
        airflow.command("variables", "set", "dlt_secrets_toml", SECRETS)
        run = airflow.dags_test("2026-11-02")
        assert run.returncode == 0, run.tail()
        assert_history_matches(airflow.db, sim, sim.projects)
        assert TOKEN not in run.output


def test_the_dag_imports_without_deprecation_warnings() -> None:
    """Airflow 3's imports (airflow.sdk), Airflow 2's where there is no airflow.sdk."""
    try:
        from airflow.sdk.exceptions import AirflowFailException
    except ImportError:  # Airflow 2 (`make test-integration AIRFLOW_VERSION=2.11.2`)
        from airflow.exceptions import AirflowFailException  # type: ignore[no-redef]

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        context, module = [
            importlib.reload(sys.modules[name]) if name in sys.modules else importlib.import_module(name)
            for name in ("workspace_images.pipelines.airflow_context", "workspace_images.pipelines.airflow_dag")
        ]
    ours = [w for w in caught if Path(w.filename).name in ("airflow_context.py", "airflow_dag.py")]
    assert ours == [], [str(w.message) for w in ours]
    assert issubclass(context.SettingsError, AirflowFailException)
    dag = module.dag
    assert dag is not None and dag.dag_id == "workspace_images"
    tasks = {t.task_id: t for t in dag.tasks}
    assert sorted(tasks) == ["build_models", "load_images", "plan_loads", "summary"]
    load = tasks["load_images"]
    assert load.max_active_tis_per_dag == 1  # one writer at a time on the DuckDB file
    for name in ("load_images", "build_models"):  # a run that failed; a held database is waited for in the task
        assert (tasks[name].retries, tasks[name].retry_delay) == (2, timedelta(minutes=3))
    assert (tasks["plan_loads"].retries, tasks["summary"].retries) == (0, 0)
    assert tasks["build_models"].trigger_rule == "all_done"
    assert set(tasks["build_models"].upstream_task_ids) == {"load_images"}
    assert set(tasks["summary"].upstream_task_ids) == {"load_images", "build_models"}
    assert dag.max_active_runs == 1 and dag.params["fanout"] == ""


def test_a_region_fan_out_loads_a_shared_postgresql_warehouse(airflow: AirflowHome) -> None:
    """destination = "postgres" in dags/.dlt/config.toml, its credentials in dags/.dlt/secrets.toml:
    one mapped task per region loads the real PostgreSQL server, then one task builds the models there."""
    import psycopg2

    from tests.pgserver import PASSWORD, PostgresServer

    with PostgresServer() as pg, Simulator(projects=2, images=25, seed=13, token=TOKEN,
                                           regions=["cn-north-4", "ap-southeast-1"]) as sim:
        url = pg.create_database("warehouse")
        airflow.install_dag("import")
        airflow.settings(config_toml(sim, sim.projects, 'destination = "postgres"\n'),
                         SECRETS + f'[destination.postgres]\ncredentials = "{url}"\n')
        run = airflow.dags_test("2026-11-02", WORKSPACE_IMAGES_FANOUT="region")
        assert run.returncode == 0, run.tail()
        assert states(airflow, "load_images") == [(0, "success", 1, "ap-southeast-1"), (1, "success", 1, "cn-north-4")]
        assert states(airflow, "build_models") == [(-1, "success", 1, None)]
        assert "-> postgres dataset workspace_images" in run.output and PASSWORD not in run.output
        with psycopg2.connect(url) as con, con.cursor() as cur:
            cur.execute("select region, count(*) from analytics.image_inventory group by 1 order by 1")
            assert cur.fetchall() == sorted((p.region, len(sim.images(p.project_id))) for p in sim.projects)
        con.close()
        assert not airflow.db.exists()


LOCK_HOLDER = textwrap.dedent("""
    import sys
    from pathlib import Path
    from workspace_images.pipelines.locking import RunLock
    with RunLock(Path(sys.argv[1]), "run"):
        print("holding", flush=True)
        sys.stdin.read()  # until the test closes it
""")


def wait_for_line(log: Path, text: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while text not in log.read_text():
        assert time.monotonic() < deadline, f"no {text!r} in {log} after {timeout:g}s"
        time.sleep(0.2)


def test_a_run_holding_the_lock_is_waited_for_and_the_dag_run_succeeds(airflow: AirflowHome) -> None:
    """Another run (the CLI from cron) holds the database's lock until 25 s after the load task first
    met it: the task waits in itself, trying again 5, 10, 20 s later, and loads once the lock is free."""
    with Simulator(projects=2, images=20, seed=14, token=TOKEN) as sim:
        airflow.install_dag("import")
        airflow.settings(config_toml(sim, sim.projects), SECRETS)
        other = subprocess.Popen([sys.executable, "-c", LOCK_HOLDER, str(airflow.db)],
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        try:
            assert other.stdout is not None and other.stdout.readline() == "holding\n"
            held_at = time.monotonic()
            proc, log = airflow.start_dags_test("2026-11-02")
            wait_for_line(log, f"holds {airflow.db}.lock: nothing was done", 120)
            met_at = time.monotonic()
            time.sleep(25)
            other.stdin.close()  # type: ignore[union-attr]
            assert other.wait(10) == 0
            hold = time.monotonic() - held_at
            run = airflow.finish(proc, log)
            took = time.monotonic() - held_at
        finally:
            other.kill()
            other.wait()
        assert run.returncode == 0, run.tail()
        assert hold < took < hold + 60, (hold, took)  # the lock's release, then a try within 20 s and the rest
        assert time.monotonic() - met_at < 90  # from the first try that met the lock (10 minutes before)
        assert f"another workspace-images run (PID {other.pid}, started " in run.output
        assert re.findall(r"\.lock: nothing was done; run again when it has finished; trying again in (\d+)s",
                          run.output) == ["5", "10", "20"]
        assert "No tasks to run" not in run.output  # what `airflow dags test` prints while a task is up for retry
        assert states(airflow, "load_images") == [(0, "success", 1, "all")]
        assert states(airflow, "summary") == [(-1, "success", 1, None)]
        assert_history_matches(airflow.db, sim, sim.projects)


def test_a_failed_project_fails_the_load_once_and_the_dag_run(airflow: AirflowHome) -> None:
    """A project the API refuses: the other one is loaded and the models built, the load task fails on its
    first try (ProjectsFailed, an AirflowFailException: a retry would fetch everything again), the DAG run fails."""
    with Simulator(projects=0, seed=15, token=TOKEN) as sim:
        ok, bad = sim.add_project("cn-north-4", images=23), sim.add_project("cn-east-3", images=6)
        sim.fail_project(bad.project_id, "status", status=403, error_code="APIG.0302", error_msg="forbidden")
        airflow.install_dag("import")
        airflow.settings(config_toml(sim, [ok, bad]), SECRETS)
        started = time.monotonic()
        run = airflow.dags_test("2026-11-02")
        assert run.returncode != 0
        assert time.monotonic() - started < 120  # no retry delay waited out
        assert f"ProjectsFailed: 1 project(s) failed: cn-east-3:{bad.project_id} (APIG.0302); run " in run.output, run.tail()
        assert "(in project_runs; the other projects are loaded; not retried: " in run.output
        assert run.output.count("loading every project into ") == 1  # one attempt
        assert states(airflow, "load_images") == [(0, "failed", 1, "all")]
        assert states(airflow, "build_models") == [(-1, "success", 1, None)]
        assert states(airflow, "summary") == [(-1, "upstream_failed", 0, None)]
        assert airflow.dag_run_state() == "failed"
        assert query(airflow.db, "select project_id, status, error_code from workspace_images.project_runs "
                                 "order by status") == [(bad.project_id, "failed", "APIG.0302"), (ok.project_id, "ok", None)]
        assert query(airflow.db, "select count(*) from analytics.image_inventory") == [(23,)]


def test_the_dag_loads_its_default_database(airflow: AirflowHome) -> None:
    """$WORKSPACE_IMAGES_DB unset: the DAG loads DAG_DEFAULT_DB. The test removes what it created there,
    and never runs where that database already exists."""
    default = Path(DAG_DEFAULT_DB)
    if default.exists():
        pytest.skip(f"{default} exists already: this test loads only a database it creates, and removes it")
    made_folder = not default.parent.exists()
    try:
        default.parent.mkdir(parents=True, exist_ok=True)
    except PermissionError:
        pytest.skip(f"cannot create {default.parent}: run the tests as root")
    before = set(default.parent.rglob("*"))
    del airflow.env["WORKSPACE_IMAGES_DB"]
    try:
        with Simulator(projects=2, images=12, seed=16, token=TOKEN) as sim:
            airflow.install_dag("import")
            airflow.settings(config_toml(sim, sim.projects), SECRETS)
            run = airflow.dags_test("2026-11-02")
            assert run.returncode == 0, run.tail()
            assert f"database: {default}" in run.output
            assert_history_matches(default, sim, sim.projects)
            assert query(default, "select count(*) from analytics.image_inventory") == [(24,)]
        assert not airflow.db.exists()
    finally:
        remove_new(default.parent, before, made_folder)


def remove_new(folder: Path, before: set, made_folder: bool) -> None:
    """Remove what appeared in `folder` since `before` (the folder too when the test made it)."""
    if made_folder:
        shutil.rmtree(folder, ignore_errors=True)
        return
    for path in sorted(set(folder.rglob("*")) - before, key=lambda p: len(p.parts)):
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        elif os.path.lexists(path):
            path.unlink()
