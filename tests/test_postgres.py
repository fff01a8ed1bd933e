"""Loading into a real PostgreSQL server: the models build from the same SQL as on DuckDB, pass
their data tests, and give the same rows as DuckDB over the same multi-day history."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any, Dict, Iterator, List, Tuple

import psycopg2
import pytest

from workspace_images.pipelines.models import ANALYTICS, load_models
from workspace_images.pipelines.errors import RunFailed, UsageError
from workspace_images.pipelines.runner import run, run_models
from workspace_images.simulator import Simulator
from workspace_images.pipelines.warehouse import Target
from tests.helpers import TOKEN, query
from tests.pghistory import DAYS, WALL_CLOCK, load_five_days, pg_query
from tests.pgserver import PASSWORD, PostgresServer

ODD_VERSIONS = [
    "Windows Server 2019 Datacenter 64bit", "windows 10 enterprise 64bit", "EulerOS 2.5 64bit",
    "Huawei Cloud EulerOS 2.0 64bit", "HCE 2.0", "hce2.0", "openEuler 22.03 LTS SP1", "UOS 20 SP1 64bit",
    "Kylin V10 SP2 64bit", "NeoKylin 7.0", "CentOS 7.9 64bit", "Ubuntu 22.04 server 64bit",
    "Debian 12", "FreeBSD 14.1", "  ", "", None, "(beta) thing 3", "x-64bit 1.2.3.4 sp3",
]


@pytest.fixture(scope="module")
def postgres() -> Iterator[PostgresServer]:
    with PostgresServer() as server:
        yield server


@pytest.fixture
def pg_url(postgres: PostgresServer, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """A new database of its own for each test, its credentials where dlt looks for them."""
    url = postgres.create_database(f"t_{request.node.name.lower()}"[:60])
    monkeypatch.setenv("DESTINATION__POSTGRES__CREDENTIALS", url)
    return url


@pytest.fixture
def both(tmp_path: Path, pg_url: str) -> Iterator[Tuple[Path, str, Simulator]]:
    """The five days of `load_five_days` in a DuckDB file and in PostgreSQL."""
    db = tmp_path / "h.duckdb"
    with Simulator(projects=3, images=80, seed=21, token=TOKEN) as sim:
        load_five_days(sim, db, tmp_path)
        yield db, pg_url, sim


def normal(value: Any) -> Any:
    """One value as both databases' drivers give it, in one form."""
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.timezone.utc).isoformat() if value.tzinfo else value.isoformat()
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, str) and value[:1] in "{[":
        try:
            return json.loads(value)
        except ValueError:
            return value
    if isinstance(value, (dict, list)):
        return value
    return value


def table(rows: List[tuple], columns: List[str] | None = None) -> List[tuple]:
    """The rows in one form and one order, without the WALL_CLOCK columns when `columns` are named."""
    keep = [i for i, c in enumerate(columns) if c not in WALL_CLOCK] if columns else None
    picked = [tuple(row[i] for i in keep) if keep is not None else tuple(row) for row in rows]
    return sorted((tuple(normal(v) for v in row) for row in picked), key=repr)


def test_every_model_gives_the_same_rows_on_postgres_as_on_duckdb(both: Tuple[Path, str, Simulator]) -> None:
    db, url, _ = both
    models = [m.name for m in load_models()]
    assert len(models) == 7
    for name in models:
        duck = query(db, f"select * from {ANALYTICS}.{name}")
        duck_columns = [r[0] for r in query(db, f"select column_name from information_schema.columns where "
                                                f"table_schema = 'analytics' and table_name = '{name}' "
                                                "order by ordinal_position")]
        pg_columns, pg_rows = pg_query(url, f"select * from {ANALYTICS}.{name}")
        assert pg_columns == duck_columns, name
        assert len(pg_rows) == len(duck) > 0, name
        kept = [c for c in pg_columns if c not in WALL_CLOCK]
        for pg_row, duck_row in zip(table(pg_rows, pg_columns), table(duck, duck_columns)):
            assert dict(zip(kept, pg_row)) == dict(zip(kept, duck_row)), name
    # the history has what makes the models interesting: changes with a new column, removals, stale images
    changed = pg_query(url, "select changed_columns from analytics.image_changes where change = 'changed'")[1]
    assert ("release_channel",) in changed and any("raw_values" in (c or "") for c, in changed)
    assert pg_query(url, "select count(*) from analytics.image_changes where change = 'removed'")[1][0][0] > 0
    assert pg_query(url, "select count(*) from analytics.image_inventory where is_stale")[1][0][0] > 0
    assert pg_query(url, "select count(distinct day) from analytics.os_version_trend")[1][0][0] == DAYS


def test_the_raw_tables_match_and_carry_descriptions(both: Tuple[Path, str, Simulator]) -> None:
    db, url, _ = both
    columns = "id, project_id, region, name, os_version, min_ram, release_channel, raw_values, _dlt_valid_from, _dlt_valid_to"
    assert table(pg_query(url, f"select {columns} from workspace_images.images")[1]) == \
        table(query(db, f"select {columns} from workspace_images.images"))
    _, comments = pg_query(url, """
        select c.relname, obj_description(c.oid, 'pg_class') from pg_class c
        join pg_namespace n on n.oid = c.relnamespace
        where n.nspname in ('analytics', 'workspace_images') and c.relkind = 'r'
            and c.relname not like '\\_dlt%'""")
    described = dict(comments)
    assert set(described) >= {"images", "project_runs", "image_inventory", "image_changes", "os_version_trend"}
    assert all(described.values()), described
    _, missing = pg_query(url, """
        select table_schema, table_name, column_name from information_schema.columns c
        where table_schema = 'analytics'
            and col_description(format('%I.%I', table_schema, table_name)::regclass, ordinal_position) is null""")
    assert missing == []


def test_the_os_macros_parse_the_same_on_both(both: Tuple[Path, str, Simulator]) -> None:
    db, url, _ = both
    values = ", ".join("(null)" if v is None else "('" + v + "')" for v in ODD_VERSIONS)
    sql = (f"select v, analytics.os_family(v), analytics.os_version_number(v) "
           f"from (values {values}) as t(v)")
    duck = sorted(query(db, sql), key=repr)
    assert sorted(pg_query(url, sql)[1], key=repr) == duck
    assert ("Huawei Cloud EulerOS 2.0 64bit", "Huawei Cloud EulerOS", "2.0") in duck
    assert ("HCE 2.0", "Huawei Cloud EulerOS", "2.0") in duck and ("FreeBSD 14.1", "FreeBSD", "14.1") in duck
    assert ("x-64bit 1.2.3.4 sp3", "x-", "1.2.3.4 SP3") in duck and ("  ", None, None) in duck
    assert ("Kylin V10 SP2 64bit", "Kylin", "V10 SP2") in duck


def test_an_unchanged_rerun_adds_nothing_and_the_data_tests_pass(both: Tuple[Path, str, Simulator],
                                                                tmp_path: Path) -> None:
    _, url, sim = both
    sim.clear_faults()

    def rerun():
        return run(destination="postgres", projects=[f"{p.region}:{p.project_id}" for p in sim.projects],
                   endpoint=sim.url, token=TOKEN, as_of=sim.as_of(DAYS - 1),
                   pipelines_dir=tmp_path / "pipelines-postgres")

    assert rerun().new_versions > 0  # the project that failed is read whole again
    with psycopg2.connect(url) as con, con.cursor() as cur:  # a dashboard's view on a model
        cur.execute("create view public.stale as select project_id, count(*) as n from analytics.image_inventory "
                    "where is_stale group by 1")
    before = pg_query(url, "select count(*) from workspace_images.images")[1][0][0]
    shutil.rmtree(tmp_path / "pipelines-postgres")  # another machine: dlt's state comes from the database
    result = rerun()
    assert pg_query(url, "select count(*) from public.stale")[1][0][0] == 0  # the view still reads the model
    assert (result.exit_code, result.new_versions, result.retired) == (0, 0, 0)
    assert pg_query(url, "select count(*) from workspace_images.images")[1][0][0] == before
    assert result.models is not None and result.models.tests == 27
    assert result.target.label == "postgres dataset workspace_images"
    assert run_models(Target.of("postgres", None), pipelines_dir=tmp_path / "pipelines-postgres").tests == 27


def test_a_failing_data_test_keeps_the_previous_models(both: Tuple[Path, str, Simulator], tmp_path: Path) -> None:
    _, url, _ = both
    before = pg_query(url, "select count(*) from analytics.image_inventory")[1][0][0]
    with psycopg2.connect(url) as con, con.cursor() as cur:
        cur.execute("update workspace_images.project_runs set status = 'broken' where status = 'failed'")
    with pytest.raises(RunFailed, match="status is ok or failed.*previous models were kept"):
        run_models(Target.of("postgres", None), pipelines_dir=tmp_path / "pipelines-postgres")
    assert pg_query(url, "select count(*) from analytics.image_inventory")[1][0][0] == before


def cli(*args: str, env: Dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "workspace_images.pipelines.cli", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, cwd=cwd, timeout=120)


def test_the_cli_loads_postgres_with_dlt_credentials_and_never_shows_them(pg_url: str, sim: Simulator,
                                                                         tmp_path: Path) -> None:
    project = sim.add_project(images=30)
    log = tmp_path / "run.log"
    args = ["-v", "run", "--destination", "postgres", "--project", f"{project.region}:{project.project_id}",
            "--endpoint", sim.url, "--as-of", sim.as_of().isoformat(), "--json", "--log-file", str(log)]
    env = {"SOURCES__WORKSPACE_IMAGES__CREDENTIALS__TOKEN": TOKEN}
    done = cli(*args, env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert (summary["destination"], summary["db"], summary["images"]) == ("postgres", "postgres dataset workspace_images", 30)
    assert (tmp_path / ".workspace_images" / "postgres-workspace_images").is_dir()
    assert pg_query(pg_url, "select count(*) from analytics.image_inventory")[1][0][0] == 30
    models = cli("models", "--destination", "postgres", cwd=tmp_path)
    assert models.returncode == 0 and "27 data tests passed" in models.stdout, models.stderr
    for text in (done.stdout, done.stderr, log.read_text(), models.stdout, models.stderr):
        assert PASSWORD not in text and TOKEN not in text


def test_destination_errors_are_one_line(pg_url: str, sim: Simulator, tmp_path: Path) -> None:
    project = sim.add_project(images=3)
    base = ["run", "--project", f"{project.region}:{project.project_id}", "--endpoint", sim.url]
    env = {"SOURCES__WORKSPACE_IMAGES__CREDENTIALS__TOKEN": TOKEN}
    unknown = cli(*base, "--destination", "oracle9", env=env, cwd=tmp_path)
    assert unknown.returncode == 2 and "not a dlt destination" in unknown.stderr
    both_given = cli(*base, "--destination", "postgres", "--db", "x.duckdb", env=env, cwd=tmp_path)
    assert both_given.returncode == 2 and "--db is the DuckDB file" in both_given.stderr
    wrong = pg_url.replace(PASSWORD, "not-the-password")
    refused = cli(*base, "--destination", "postgres",
                  env={**env, "DESTINATION__POSTGRES__CREDENTIALS": wrong}, cwd=tmp_path)
    assert refused.returncode == 3, refused.stderr
    assert refused.stderr.startswith("workspace-images: run failed: cannot connect to postgres dataset "
                                     "workspace_images: connection to server at \"127.0.0.1\"")
    assert "password authentication failed" in refused.stderr
    assert "not-the-password" not in refused.stderr and "Traceback" not in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1, refused.stderr
    clean = tmp_path / "clean"
    clean.mkdir()
    for value in ("", "postgresql://me:hunter2-secret@127.0.0.1:notaport/db"):
        unreadable = cli(*base, "--destination", "postgres",
                         env={**env, "DESTINATION__POSTGRES__CREDENTIALS": value}, cwd=clean)
        assert unreadable.returncode == 2, unreadable.stderr
        assert "credentials cannot be read" in unreadable.stderr and "hunter2" not in unreadable.stderr
    unset = {k: v for k, v in os.environ.items() if k != "DESTINATION__POSTGRES__CREDENTIALS"}
    missing = subprocess.run([sys.executable, "-m", "workspace_images.pipelines.cli", *base, "--destination", "postgres"],
                             capture_output=True, text=True, env={**unset, **env}, cwd=clean, timeout=120)
    assert missing.returncode == 2, missing.stderr
    assert "missing credentials" in missing.stderr and "DESTINATION__POSTGRES__CREDENTIALS" in missing.stderr
    for done in (unreadable, missing):
        assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert list(clean.iterdir()) == []  # nothing written
    storage = cli(*base, "--destination", "postgres", "--duckdb-storage-version", "v1.0.0", env=env, cwd=tmp_path)
    assert storage.returncode == 2 and "is for a DuckDB file" in storage.stderr


def test_a_second_run_into_the_same_dataset_waits_its_turn(pg_url: str, sim: Simulator, tmp_path: Path) -> None:
    """From the same working folder (its lock file) or from anywhere else (the server's advisory lock)."""
    from workspace_images.pipelines.locking import LockHeld
    from workspace_images.pipelines.warehouse import hold

    project = sim.add_project(images=3)
    target = Target.of("postgres", None)

    def second(workdir: Path) -> None:
        run(destination="postgres", projects=[f"{project.region}:{project.project_id}"], endpoint=sim.url,
            token=TOKEN, pipelines_dir=workdir)

    with hold(target, tmp_path / "pipelines"):
        with pytest.raises(LockHeld, match="nothing was done"):
            second(tmp_path / "pipelines")
        with pytest.raises(LockHeld, match=r"holds the lock of postgres dataset workspace_images \(server process \d+"):
            second(tmp_path / "elsewhere" / "pipelines")
        models = cli("models", "--destination", "postgres", "--pipelines-dir", str(tmp_path / "third"))
        assert models.returncode == 4 and "holds the lock of postgres dataset" in models.stderr
    assert [r for r in sim.requests if r.path.startswith("/v2/")] == []
    assert pg_query(pg_url, "select count(*) from information_schema.schemata "
                            "where schema_name = 'workspace_images'")[1][0][0] == 0


def test_a_table_another_program_made_is_refused(pg_url: str, sim: Simulator, tmp_path: Path) -> None:
    with psycopg2.connect(pg_url) as con, con.cursor() as cur:
        cur.execute("create schema workspace_images; create table workspace_images.project_runs (run_id int, as_of text)")
    project = sim.add_project(images=3)
    with pytest.raises(UsageError, match="workspace-images did not write"):
        run(destination="postgres", projects=[f"{project.region}:{project.project_id}"], endpoint=sim.url,
            token=TOKEN, pipelines_dir=tmp_path / "p")


def test_the_airflow_fan_out_loads_a_shared_warehouse_then_builds_its_models(
        pg_url: str, sim: Simulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from workspace_images.pipelines.airflow_context import SettingsError
    from workspace_images.pipelines.airflow_tasks import build_models, load_images, plan_loads

    north, south = sim.add_project("cn-north-4", images=20), sim.add_project("ap-southeast-1", images=15)
    monkeypatch.setenv("SOURCES__WORKSPACE_IMAGES__DESTINATION", "postgres")
    monkeypatch.setenv("SOURCES__WORKSPACE_IMAGES__CREDENTIALS__TOKEN", TOKEN)
    monkeypatch.setenv("SOURCES__WORKSPACE_IMAGES__ENDPOINT", sim.url)
    monkeypatch.setenv("SOURCES__WORKSPACE_IMAGES__PROJECTS",
                       json.dumps([f"{p.region}:{p.project_id}" for p in (north, south)]))
    monkeypatch.setenv("WORKSPACE_IMAGES_DB", str(tmp_path / "state" / "unused.duckdb"))
    (tmp_path / "state").mkdir()
    loads = plan_loads("region", sim.as_of())
    assert [load["region"] for load in loads] == ["ap-southeast-1", "cn-north-4"]
    for load in loads:
        line = load_images(dt.datetime.fromisoformat(load["as_of"]), region=load["region"], models=False)
        assert "-> postgres dataset workspace_images" in line
    assert build_models().startswith("models: 7 built")
    assert pg_query(pg_url, "select region, count(*) from analytics.image_inventory group by 1 order by 1")[1] == \
        [("ap-southeast-1", 15), ("cn-north-4", 20)]
    assert not (tmp_path / "state" / "unused.duckdb").exists()
    assert (tmp_path / "state" / ".workspace_images" / "postgres-workspace_images").is_dir()
    monkeypatch.setenv("DESTINATION__POSTGRES__CREDENTIALS", "")
    with pytest.raises(SettingsError, match="credentials cannot be read"):
        load_images(sim.as_of(), models=False)



def test_a_filtered_run_retires_only_what_it_read_on_postgres(pg_url: str, sim: Simulator, tmp_path: Path) -> None:
    project = sim.add_project(images=60)
    target = [f"{project.region}:{project.project_id}"]

    def load_day(day: int, **kwargs: Any) -> Any:
        return run(None, destination="postgres", projects=target, endpoint=sim.url, token=TOKEN,
                   as_of=sim.as_of(day), pipelines_dir=tmp_path / "pipelines", **kwargs)

    load_day(0)
    windows = sorted(i["id"] for i in sim.images(project.project_id) if i["os_type"] == "Windows")
    others = sorted(i["id"] for i in sim.images(project.project_id) if i["os_type"] != "Windows")
    sim.withdraw(project.project_id, windows[0])
    sim.withdraw(project.project_id, others[0])
    sim.modify(project.project_id, windows[1], name="renamed")
    result = load_day(1, filters={"os_type": "Windows"})
    assert (result.exit_code, result.retired, result.new_versions) == (0, 1, 1)
    retired = pg_query(pg_url, "select id from workspace_images.images where _dlt_valid_to is not null")[1]
    assert retired == [(windows[1],)]  # the renamed image's earlier version; the withdrawn ones stay
    current = pg_query(pg_url, "select id, name from workspace_images.images where _dlt_valid_to is null")[1]
    assert sorted(i for i, _ in current) == sorted(windows + others)
    assert (windows[1], "renamed") in current
