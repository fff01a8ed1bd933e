"""What a new user types first: the commands with their defaults (no `--db`), and DuckDB files of any name."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from workspace_images.simulator import Simulator
from workspace_images.pipelines.warehouse import DEFAULT_DB

from tests.helpers import cli, targets


def commands(sim: Simulator, folder: Path, *db: str) -> None:
    """`run` twice (the second over unchanged data), then `models` and `report` twice, from `folder`."""
    env = {"SOURCES__WORKSPACE_IMAGES__ENDPOINT": sim.url}
    projects = [arg for target in targets(sim) for arg in ("--project", target)]
    for new_versions in (600, 0):
        done = cli(["-q", "run", *projects, *db], folder, extra_env=env)
        assert done.returncode == 0, done.stderr
        assert f"2/2 projects ok, 600 images, {new_versions} new versions, 0 retired" in done.stdout, done.stdout
        assert done.stdout.rstrip().endswith(f"-> {db[-1] if db else DEFAULT_DB}"), done.stdout
    for _ in range(2):
        built = cli(["-q", "models", *db], folder)
        assert built.returncode == 0, built.stderr
        assert built.stdout.startswith("models: 7 built (stg_images 600 rows,"), built.stdout
        shown = cli(["report", *db], folder)
        assert shown.returncode == 0, shown.stderr
        assert f"workspace-images report: {db[-1] if db else DEFAULT_DB}\n" in shown.stdout, shown.stdout
        assert "current images: 600 in 2 projects, 2 regions" in shown.stdout, shown.stdout


def test_run_models_and_report_work_without_db_from_an_empty_folder(sim: Simulator, tmp_path: Path) -> None:
    sim.add_project(region="cn-north-4", images=250)
    sim.add_project(region="ap-southeast-1", images=350)
    folder = tmp_path / "new-user"
    folder.mkdir()
    commands(sim, folder)
    assert sorted(p.name for p in folder.iterdir() if p.name != "dlt_data") == [
        ".workspace_images", DEFAULT_DB, f"{DEFAULT_DB}.lock"
    ]
    # the default file reads with two-part names in any DuckDB client, its own catalog being `images`
    with duckdb.connect(str(folder / DEFAULT_DB), read_only=True) as con:
        assert con.execute("select count(*) from workspace_images.images").fetchall() == [(600,)]
        assert con.execute("select count(*) from analytics.image_inventory").fetchall() == [(600,)]


@pytest.mark.parametrize("name", ["workspace_images.duckdb", "analytics.duckdb", "workspace_images_staging.duckdb"])
def test_a_file_named_like_one_of_its_schemas_loads(sim: Simulator, tmp_path: Path, name: str) -> None:
    """DuckDB names a file's catalog after the file: one named like a schema in it made every
    `schema.table` ambiguous, and the load failed."""
    sim.add_project(region="cn-north-4", images=250)
    sim.add_project(region="ap-southeast-1", images=350)
    commands(sim, tmp_path, "--db", name)
    with duckdb.connect(":memory:") as con:
        con.execute(f"attach '{tmp_path / name}' as f (read_only)")
        assert con.execute("select count(*) from f.workspace_images.images where _dlt_valid_to is null").fetchall() == [(600,)]
        assert con.execute("select count(*) from f.analytics.image_inventory").fetchall() == [(600,)]
