"""`workspace-images report` on PostgreSQL, typed as a user types it: the same terminal tables,
CSV and Parquet files and HTML page as from a DuckDB file holding the same history."""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path
from typing import Any, Dict, Iterator, List, Tuple

import pyarrow.parquet as pq
import pytest

from workspace_images.pipelines import reporting as report
from workspace_images.simulator import Simulator
from workspace_images.pipelines.warehouse import Target
from tests.helpers import TOKEN, cli, query
from tests.pgserver import PASSWORD, PostgresServer
from tests.pghistory import WALL_CLOCK, load_five_days, pg_query

MODELS = ["image_changes", "image_inventory", "inventory_summary", "os_version_trend", "project_status",
          "stg_images", "stg_project_runs"]
PG_LABEL = "postgres dataset workspace_images"
OUTPUTS = ["--csv", "out/csv", "--parquet", "out/parquet", "--html", "out/report.html"]


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dict[str, Any]]:
    """The five days of `load_five_days` in a DuckDB file and in a PostgreSQL database that sorts
    text by the ICU collation of en-US, as many servers do, not by code point as DuckDB does."""
    folder = tmp_path_factory.mktemp("loaded")
    with PostgresServer() as server, pytest.MonkeyPatch.context() as mp:
        url = server.create_database("report", icu_locale="en-US")
        mp.setenv("DESTINATION__POSTGRES__CREDENTIALS", url)
        mp.setenv("DLT_DATA_DIR", str(folder / "dlt_data"))
        mp.setenv("RUNTIME__DLTHUB_TELEMETRY", "false")
        with Simulator(projects=3, images=80, seed=21, token=TOKEN) as sim:
            load_five_days(sim, folder / "h.duckdb", folder)
        yield {"db": folder / "h.duckdb", "url": url, "server": server}


def latest_run(loaded: Dict[str, Any]) -> Tuple[str, str]:
    """The first 12 characters of the latest run's id in the DuckDB file and in PostgreSQL."""
    sql = "select run_id from analytics.stg_project_runs order by as_of desc limit 1"
    return query(loaded["db"], sql)[0][0][:12], pg_query(loaded["url"], sql)[1][0][0][:12]


def report_in(folder: Path, *args: str, env: Dict[str, str] | None = None) -> Any:
    folder.mkdir(parents=True, exist_ok=True)
    done = cli(["report", *args], folder, token=None, extra_env=env)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr and PASSWORD not in done.stdout + done.stderr
    return done


def masked_csv(path: Path) -> Tuple[List[str], List[List[str]]]:
    """A CSV file's header, and its rows with the WALL_CLOCK columns blanked, sorted."""
    header, *rows = list(csv.reader(io.StringIO(path.read_text(encoding="utf-8"), newline="")))
    wall = [i for i, name in enumerate(header) if name in WALL_CLOCK]
    return header, sorted([("" if i in wall else v) for i, v in enumerate(row)] for row in rows)


def masked_parquet(path: Path) -> List[Dict[str, Any]]:
    """A Parquet file's rows with the WALL_CLOCK columns left out, sorted."""
    rows = pq.read_table(path).to_pylist()
    return sorted(({k: v for k, v in row.items() if k not in WALL_CLOCK} for row in rows), key=repr)


def test_report_on_postgres_gives_what_it_gives_on_duckdb(loaded: Dict[str, Any], tmp_path: Path) -> None:
    db: Path = loaded["db"]
    duck = report_in(tmp_path / "duck", "--db", str(db), *OUTPUTS)
    pg = report_in(tmp_path / "pg", "--destination", "postgres", *OUTPUTS,
                   env={"DESTINATION__POSTGRES__CREDENTIALS": loaded["url"]})
    duck_run, pg_run = latest_run(loaded)
    assert duck_run != pg_run

    # the terminal: the same lines, but for the name of the database and the run's id
    duck_lines, pg_lines = duck.stdout.splitlines(), pg.stdout.splitlines()
    assert duck_lines[0] == f"workspace-images report: {db}"
    assert pg_lines[0] == f"workspace-images report: {PG_LABEL}"
    assert pg_lines[1].startswith(f"last load: as of 2026-11-05 12:00:00Z, run {pg_run}: 2/3 projects ok, 1 failed")
    assert [line.replace(pg_run, "RUN") for line in pg_lines[1:]] == \
        [line.replace(duck_run, "RUN") for line in duck_lines[1:]]
    changes = pg_lines[pg_lines.index("Latest 15 changes") + 1:-3]
    assert len(changes) == 2 + 15 and changes[2].startswith("2026-11-05 12:00Z  ")
    assert pg_lines[-3:] == ["wrote 7 csv files to out/csv", "wrote 7 parquet files to out/parquet",
                             "wrote out/report.html"]

    # CSV and Parquet: the same files; where a model has wall-clock columns (when, and by which
    # run, each database was loaded), the same rows but for those
    for fmt in ("csv", "parquet"):
        assert sorted(p.name for p in (tmp_path / "pg" / "out" / fmt).iterdir()) == [f"{m}.{fmt}" for m in MODELS]
    for model in MODELS:
        duck_csv, pg_csv = (tmp_path / side / "out" / "csv" / f"{model}.csv" for side in ("duck", "pg"))
        duck_pq, pg_pq = (tmp_path / side / "out" / "parquet" / f"{model}.parquet" for side in ("duck", "pg"))
        assert pq.read_schema(pg_pq) == pq.read_schema(duck_pq), model
        if not WALL_CLOCK & set(pq.read_schema(duck_pq).names):
            assert pg_csv.read_bytes() == duck_csv.read_bytes(), model
            assert pq.read_table(pg_pq).equals(pq.read_table(duck_pq)), model
        header, rows = masked_csv(pg_csv)
        assert (header, rows) == masked_csv(duck_csv), model
        assert masked_parquet(pg_pq) == masked_parquet(duck_pq), model
        assert len(rows) == query(db, f"select count(*) from analytics.{model}")[0][0] > 0, model
    # timestamps in UTC, text by code point (the database sorts it otherwise), NULL and empty apart
    changes = (tmp_path / "pg" / "out" / "csv" / "image_changes.csv").read_text(encoding="utf-8").splitlines()
    assert changes[0] == "changed_at,project_id,image_id,change,changed_columns,region,image_name,os_version"
    assert changes[1].startswith("2026-11-01 12:00:00+00,")
    runs = pq.read_table(tmp_path / "pg" / "out" / "parquet" / "stg_project_runs.parquet")
    assert str(runs.schema.field("as_of").type) == "timestamp[us, tz=UTC]"
    assert str(runs.schema.field("images").type) == "int64"

    # the page: the same, but for the name of the database and the run's id
    duck_page = (tmp_path / "duck" / "out" / "report.html").read_text(encoding="utf-8")
    pg_page = (tmp_path / "pg" / "out" / "report.html").read_text(encoding="utf-8")
    assert pg_page.count(PG_LABEL) == 3 and duck_page.count(db.name) == 3
    assert pg_page.replace(PG_LABEL, "DB").replace(pg_run, "RUN") == \
        duck_page.replace(db.name, "DB").replace(duck_run, "RUN")
    assert pg_page.count('<figure data-chart="') == 6 and pg_page.count('class="mark') > 20
    assert PASSWORD not in pg_page


def test_report_reads_the_destination_of_the_config_file(loaded: Dict[str, Any], tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / ".dlt").mkdir()
    (tmp_path / ".dlt" / "config.toml").write_text('[sources.workspace_images]\ndestination = "postgres"\n')
    done = report_in(tmp_path, "--changes", "5", env={"DESTINATION__POSTGRES__CREDENTIALS": loaded["url"]})
    monkeypatch.setenv("DESTINATION__POSTGRES__CREDENTIALS", loaded["url"])
    expected = report.terminal_report(Target.of("postgres", None), changes=5, pipelines_dir=tmp_path / "p")
    assert done.stdout == expected + "\n"
    assert expected.startswith(f"workspace-images report: {PG_LABEL}\nlast load: as of 2026-11-05 12:00:00Z")
    assert (tmp_path / ".workspace_images" / "postgres-workspace_images").is_dir()
    assert not (tmp_path / "workspace_images.duckdb").exists()


def test_report_errors_on_a_destination_are_one_line(loaded: Dict[str, Any], tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    server: PostgresServer = loaded["server"]
    empty = server.create_database("empty")
    unbuilt = cli(["report", "--destination", "postgres"], tmp_path, token=None,
                  extra_env={"DESTINATION__POSTGRES__CREDENTIALS": empty})
    assert unbuilt.returncode == 2
    assert unbuilt.stderr == (f"workspace-images: error: {PG_LABEL} has no analytics.stg_project_runs model: "
                              "run `workspace-images models --destination postgres` first\n")

    wrong = loaded["url"].replace(PASSWORD, "not-the-password")
    refused = cli(["report", "--destination", "postgres", "--html", "r.html"], tmp_path, token=None,
                  extra_env={"DESTINATION__POSTGRES__CREDENTIALS": wrong})
    assert refused.returncode == 3
    assert refused.stderr == (f"workspace-images: run failed: cannot connect to {PG_LABEL}: connection to server "
                              f'at "127.0.0.1", port {server.port} failed: FATAL:  password authentication failed '
                              f'for user "wi_test"\n')

    closed = re.sub(r":\d+/", ":1/", loaded["url"])
    down = cli(["report", "--destination", "postgres"], tmp_path, token=None,
               extra_env={"DESTINATION__POSTGRES__CREDENTIALS": closed})
    assert down.returncode == 3
    assert down.stderr.startswith(f"workspace-images: run failed: cannot connect to {PG_LABEL}: connection to "
                                  'server at "127.0.0.1", port 1 failed: Connection refused')
    assert len(down.stderr.splitlines()) == 1

    (tmp_path / ".dlt").mkdir()
    (tmp_path / ".dlt" / "config.toml").write_text('[sources.workspace_images]\ndestination = "postgres"\n')
    monkeypatch.delenv("DESTINATION__POSTGRES__CREDENTIALS")
    missing = cli(["report"], tmp_path, token=None)
    assert missing.returncode == 2
    assert missing.stderr.startswith("workspace-images: error: destination postgres: missing credentials;")
    for done in (unbuilt, refused, down, missing):
        assert done.stdout == "" and "Traceback" not in done.stderr
        assert PASSWORD not in done.stderr and "not-the-password" not in done.stderr
    assert not (tmp_path / "r.html").exists()
