"""The Airflow task callable, run as Airflow would call it, against the simulator."""

from __future__ import annotations

from pathlib import Path

import pytest

from workspace_images.airflow_dag import ProjectsFailed, load_images
from workspace_images.simulator import Simulator
from tests.conftest import TOKEN, query


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
