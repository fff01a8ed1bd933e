"""dlt's own tools on a database the pipeline loaded: the dataset API and `dlt pipeline` commands."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import dlt
import pytest

from workspace_images.simulator import Simulator
from tests.helpers import cli, load, query, run_args


def test_the_dataset_api_reads_what_was_loaded(sim: Simulator, db: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for region in ("cn-north-4", "cn-east-3"):
        sim.add_project(region, images=120)
    load(db, sim, day=0)
    sim.set_day(1)
    load(db, sim, day=1)
    monkeypatch.setenv("DESTINATION__DUCKDB__CREDENTIALS", str(db))
    pipeline = dlt.attach("workspace_images", pipelines_dir=str(db.parent / "pipelines"))
    dataset = pipeline.dataset()
    images = dataset.images.df()
    assert len(images) == query(db, "select count(*) from workspace_images.images")[0][0]
    current = images[images["_dlt_valid_to"].isna()]
    assert sorted(current["id"]) == sorted(i["id"] for p in sim.projects for i in sim.images(p.project_id))
    runs = dataset.project_runs.select("run_id", "status").df()
    assert sorted(runs["status"].unique()) == ["ok"] and runs["run_id"].nunique() == 2


def test_dlt_pipeline_commands_find_the_working_folder(sim: Simulator, tmp_path: Path) -> None:
    sim.add_project("cn-north-4", images=30)
    assert cli(run_args(sim, day=0), tmp_path).returncode == 0
    workdir = tmp_path / ".workspace_images" / "x.duckdb"
    dlt_cli = str(Path(sys.executable).parent / "dlt")
    env = {**os.environ, "DLT_DATA_DIR": str(tmp_path / "dlt_data"), "RUNTIME__DLTHUB_TELEMETRY": "false"}
    for command in ("info", "trace"):
        proc = subprocess.run([dlt_cli, "pipeline", "--pipelines-dir", str(workdir), "workspace_images", command],
                              capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert f"Found pipeline workspace_images in {workdir}" in proc.stdout
    info = subprocess.run([dlt_cli, "pipeline", "--pipelines-dir", str(workdir), "workspace_images", "info"],
                          capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120).stdout
    assert "dataset_name: workspace_images" in info and "destination_type: dlt.destinations.duckdb" in info
