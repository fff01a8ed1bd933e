"""The dlt source in a user's own dlt pipeline, into a dataset of their choosing, then the models on it."""

from __future__ import annotations

from pathlib import Path

import dlt
import pytest

from workspace_images.source import ConfigError, workspace_images
from workspace_images.simulator import Simulator
from tests.helpers import TOKEN, cli, one_line, query


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


def test_the_models_of_one_dataset_are_never_replaced_by_another_s_unasked(sim: Simulator, tmp_path: Path) -> None:
    """A database has one `analytics`: building it from another dataset says so and stops, unless asked."""
    project = sim.add_project("cn-north-4", images=130)
    db = tmp_path / "both.duckdb"
    pipeline = dlt.pipeline("my_images", destination=dlt.destinations.duckdb(str(db)), dataset_name="raw_images",
                            pipelines_dir=str(tmp_path / "dlt"))
    with_sim = {"SOURCES__WORKSPACE_IMAGES__ENDPOINT": sim.url, "SOURCES__WORKSPACE_IMAGES__CREDENTIALS__TOKEN": TOKEN}
    with pytest.MonkeyPatch.context() as env:
        for name, value in with_sim.items():
            env.setenv(name, value)
        pipeline.run(workspace_images(projects=[f"cn-north-4:{project.project_id}"], as_of=sim.as_of()))
    assert cli(["models", "--db", str(db), "--dataset", "raw_images"], tmp_path).returncode == 0
    bigger = sim.add_project("cn-east-3", images=70)
    loaded = cli(["run", "--endpoint", sim.url, "--db", str(db), "--no-models", "--project", f"cn-north-4:{project.project_id}",
                  "--project", f"cn-east-3:{bigger.project_id}"], tmp_path)
    assert loaded.returncode == 0, loaded.stderr

    refused = cli(["models", "--db", str(db)], tmp_path)
    assert refused.returncode == 2
    assert refused.stderr.strip() == (
        f"workspace-images: error: analytics in {db} holds the models of dataset raw_images; building them from "
        "dataset workspace_images would replace them (a database has one analytics schema): replace them with "
        "`workspace-images models --dataset workspace_images --replace`, or load workspace_images into another database"
    )
    run = cli(["run", "--endpoint", sim.url, "--db", str(db), "--project", f"cn-east-3:{bigger.project_id}"], tmp_path)
    assert run.returncode == 3
    assert one_line(run.stderr) == (
        f"workspace-images: run failed: models: analytics in {db} holds the models of dataset raw_images; building "
        "them from dataset workspace_images would replace them (a database has one analytics schema): replace them "
        "with `workspace-images models --dataset workspace_images --replace`, or load workspace_images into another "
        "database; this run's load is in place"
    )
    assert query(db, "select count(*) from workspace_images.images where project_id = ?", [bigger.project_id]) == [(70,)]
    assert query(db, "select count(*) from analytics.image_inventory") == [(130,)]  # still raw_images' models

    replaced = cli(["models", "--db", str(db), "--replace"], tmp_path)
    assert replaced.returncode == 0, replaced.stderr
    assert query(db, "select count(*) from analytics.image_inventory") == [(200,)]
    back = cli(["models", "--db", str(db), "--dataset", "raw_images"], tmp_path)
    assert back.returncode == 2
    assert "holds the models of dataset workspace_images; building them from dataset raw_images" in back.stderr
    assert cli(["models", "--db", str(db)], tmp_path).returncode == 0  # the same dataset again: no question


@pytest.mark.parametrize("truncate", [False, True])
def test_the_staging_copy_goes_with_dlt_s_setting(sim: Simulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                 truncate: bool) -> None:
    """dlt, not the source, decides whether the staging copy of a merge stays: the setting the docs show
    next to the snippet empties it."""
    project = sim.add_project("cn-north-4", images=30)
    monkeypatch.setenv("SOURCES__WORKSPACE_IMAGES__CREDENTIALS__TOKEN", TOKEN)
    monkeypatch.setenv("SOURCES__WORKSPACE_IMAGES__ENDPOINT", sim.url)
    # stated both ways: `run` in this process sets dlt's setting for itself (warehouse.TIDY_DEFAULTS)
    monkeypatch.setenv("LOAD__TRUNCATE_STAGING_DATASET", "true" if truncate else "false")
    db = tmp_path / "mine.duckdb"
    pipeline = dlt.pipeline("my_images", destination=dlt.destinations.duckdb(str(db)), dataset_name="raw_images",
                            pipelines_dir=str(tmp_path / "dlt"))
    pipeline.run(workspace_images(projects=[f"cn-north-4:{project.project_id}"], as_of=sim.as_of()))
    assert query(db, "select count(*) from raw_images_staging.images") == [(0 if truncate else 30,)]


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
