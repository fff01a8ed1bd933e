"""What BI tools and SQL clients meet: descriptions in the database, no leftovers, files older DuckDB readers open."""

from __future__ import annotations

from pathlib import Path

from workspace_images.pipelines.models import descriptions
from workspace_images.simulator import Simulator
from tests.helpers import load, query


def test_every_table_and_column_is_described_in_the_database(sim: Simulator, db: Path) -> None:
    sim.extra_fields = {"package_type": "standard"}  # a field the descriptions do not name
    sim.add_project("cn-north-4", images=20)
    load(db, sim)
    entries = descriptions()  # each model's file, sql/sources.toml and sql/columns.toml
    tables = query(db, "select schema_name || '.' || table_name, comment from duckdb_tables() "
                       "where schema_name in ('workspace_images', 'analytics') and table_name not like '\\_dlt%' escape '\\' "
                       "order by 1")
    assert [t for t, _ in tables] == sorted(k for k in entries if k != "common")
    for table, comment in tables:
        assert comment == entries[table]["table"], table
    columns = query(db, "select schema_name || '.' || table_name, column_name, comment from duckdb_columns() "
                        "where schema_name in ('workspace_images', 'analytics') and table_name not like '\\_dlt%' escape '\\'")
    for table, column, comment in columns:
        expected = entries[table].get(column) or entries["common"].get(column) or entries["common"]["api_field"]
        assert comment == expected, (table, column)
    assert ("workspace_images.images", "package_type", entries["common"]["api_field"]) in columns
    named = {(table, column) for table, own in entries.items() if table != "common" for column in own if column != "table"}
    present = {(table, column) for table, column, _ in columns}
    assert named - present == set()  # no description of a column that does not exist


def test_a_load_leaves_no_staged_rows_and_no_job_files(sim: Simulator, db: Path) -> None:
    sim.add_project("cn-north-4", images=150)
    load(db, sim, day=0)
    sim.set_day(1)
    load(db, sim, day=1)
    for table in ("images", "project_runs"):
        assert query(db, f"select count(*) from workspace_images_staging.{table}") == [(0,)]
    loaded = db.parent / "pipelines" / "workspace_images" / "load" / "loaded"
    packages = sorted(loaded.iterdir())
    assert len(packages) == 2
    for package in packages:
        assert (package / "package_completed.json").exists()
        assert not (package / "completed_jobs").exists()
        assert list(package.rglob("*.parquet")) == [] and list(package.rglob("*.insert_values*")) == []


OLD_DUCKDB = "1.1.3"


def test_a_file_in_an_older_storage_version_opens_in_an_older_duckdb(sim: Simulator, tmp_path: Path) -> None:
    """What a BI tool bundling DuckDB 1.1 sees: a real DuckDB 1.1.3 in its own venv reads the file."""
    import subprocess
    import sys

    from tests.helpers import cli, run_args

    sim.add_project("cn-north-4", images=60)
    proc = cli(run_args(sim, "x.duckdb", 0, "--duckdb-storage-version", "v1.0.0"), tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "created x.duckdb in DuckDB storage version v1.0.0" in proc.stderr
    sim.set_day(1)
    assert cli(run_args(sim, "x.duckdb", 1), tmp_path).returncode == 0  # later runs keep the version
    assert query(tmp_path / "x.duckdb", "select tags['storage_version'] from duckdb_databases() "
                                       "where database_name = 'x'") == [("v1.0.0+",)]
    venv = tmp_path / "old-duckdb"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    subprocess.run([str(venv / "bin" / "pip"), "install", "-q", f"duckdb=={OLD_DUCKDB}"], check=True,
                   capture_output=True, timeout=600)
    reader = subprocess.run(
        [str(venv / "bin" / "python"), "-c",
         "import duckdb, sys; c = duckdb.connect(sys.argv[1], read_only=True); print(duckdb.__version__, "
         "c.execute('select count(*) from analytics.image_inventory').fetchone()[0], "
         "c.execute(\"select comment from duckdb_tables() where table_name = 'image_inventory'\").fetchone()[0])",
         str(tmp_path / "x.duckdb")], capture_output=True, text=True, timeout=120)
    assert reader.returncode == 0, reader.stderr
    current = len(sim.images(sim.projects[0].project_id))
    assert reader.stdout.strip() == (f"{OLD_DUCKDB} {current} The current inventory: one row per image currently "
                                     "listed, key (project_id, image_id).")


def test_an_unknown_storage_version_exits_2(sim: Simulator, tmp_path: Path) -> None:
    from tests.helpers import cli, nothing_written, one_line, run_args

    sim.add_project("cn-north-4", images=5)
    proc = cli(run_args(sim, "x.duckdb", 0, "--duckdb-storage-version", "v0.99"), tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert "duckdb_storage_version 'v0.99' is not a DuckDB version" in one_line(proc.stderr)
    nothing_written(tmp_path)
