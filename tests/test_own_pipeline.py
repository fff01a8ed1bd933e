"""The dlt source in a user's own dlt pipeline, into a dataset of their choosing, then the models on it."""

from __future__ import annotations

from pathlib import Path

import dlt
import pytest

from workspace_images.source import ConfigError, workspace_images
from workspace_images.simulator import Simulator
from tests.conftest import TOKEN, cli, query


def test_the_source_loads_into_any_dataset_and_the_models_follow(
    sim: Simulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    projects = [sim.add_project(region, images=130) for region in ("cn-north-4", "ap-southeast-1")]
    monkeypatch.setenv("SOURCES__WORKSPACE_IMAGES__CREDENTIALS__TOKEN", TOKEN)
    monkeypatch.setenv("SOURCES__WORKSPACE_IMAGES__ENDPOINT", sim.url)
    db = tmp_path / "mine.duckdb"
    pipeline = dlt.pipeline("my_images", destination=dlt.destinations.duckdb(str(db)), dataset_name="raw_images",
                            pipelines_dir=str(tmp_path / "dlt"))
    for day in (0, 1):
        sim.set_day(day)
        pipeline.run(workspace_images(projects=[f"{p.region}:{p.project_id}" for p in projects], as_of=sim.as_of(day)))
    current = sum(len(sim.images(p.project_id)) for p in projects)
    assert query(db, "select count(*) from raw_images.images where _dlt_valid_to is null") == [(current,)]

    proc = cli(["models", "--db", str(db), "--dataset", "raw_images"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("models: 7 built (") and "27 data tests passed" in proc.stdout
    assert query(db, "select count(*) from analytics.image_inventory") == [(current,)]
    assert query(db, "select count(distinct day) from analytics.os_version_trend") == [(2,)]
    assert query(db, "select comment from duckdb_tables() where schema_name = 'raw_images' "
                     "and table_name = 'images'")[0][0].startswith("SCD2 history of the product images")

    wrong = cli(["models", "--db", str(db)], tmp_path)  # the default dataset is not there
    assert wrong.returncode == 2
    assert wrong.stderr.strip() == (f"workspace-images: error: {db} has no loaded images in dataset workspace_images "
                                    "yet: load it first with `workspace-images run`")


def test_the_source_takes_each_setting_from_dlt_unless_it_is_passed(
    sim: Simulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    configured, passed = (sim.add_project(region, images=3) for region in ("cn-north-4", "cn-east-3"))
    with pytest.raises(ConfigError, match=r"^no credentials for sources.workspace_images: set one mode under "
                                          r"\[sources.workspace_images.credentials\] in .*/\.dlt/secrets\.toml .*, "
                                          r"or SOURCES__WORKSPACE_IMAGES__CREDENTIALS__TOKEN, or "):
        workspace_images()
    monkeypatch.setenv("SOURCES__WORKSPACE_IMAGES__CREDENTIALS__TOKEN", TOKEN)
    with pytest.raises(ConfigError, match=r"^no projects to load in account default: .* "
                                          r"or SOURCES__WORKSPACE_IMAGES__PROJECTS(; run .*)?$"):
        workspace_images()
    monkeypatch.setenv("SOURCES__WORKSPACE_IMAGES__ENDPOINT", sim.url)
    monkeypatch.setenv("SOURCES__WORKSPACE_IMAGES__PROJECTS", f'["cn-north-4:{configured.project_id}"]')
    pipeline = dlt.pipeline("mine", destination=dlt.destinations.duckdb(str(tmp_path / "mine.duckdb")),
                            pipelines_dir=str(tmp_path / "dlt"))
    pipeline.run(workspace_images(as_of=sim.as_of()))
    pipeline.run(workspace_images(projects=[f"cn-east-3:{passed.project_id}"], as_of=sim.as_of()))
    runs = query(tmp_path / "mine.duckdb", "select project_id from mine_dataset.project_runs order by started_at")
    assert runs == [(configured.project_id,), (passed.project_id,)]
