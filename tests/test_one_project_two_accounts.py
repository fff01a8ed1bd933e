"""One project reached by two accounts in one run: read once, by the first account, with a warning."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from workspace_images.simulator import Simulator
from tests.helpers import cli, query, run_args

FIXED = "fixed-token-two-accounts"


@pytest.mark.parametrize("second", [
    pytest.param('{"projects": ["cn-north-4:%s"]}', id="configured-in-both"),
    pytest.param('{"discover_projects": true}', id="configured-and-discovered"),
])
def test_a_project_reached_by_two_accounts_is_read_once(tmp_path: Path, second: str) -> None:
    """`second` holds the same token as `default`, so it reaches (and lists) the default account's project."""
    with Simulator(projects=1, images=30, seed=21, token=FIXED) as sim:
        [project] = sim.projects
        env = {
            "SOURCES__WORKSPACE_IMAGES__IAM_ENDPOINT": sim.url,
            "SOURCES__WORKSPACE_IMAGES__ACCOUNTS": '{"second": %s}' % (second.replace("%s", project.project_id)),
            "SOURCES__WORKSPACE_IMAGES__ACCOUNTS__SECOND__CREDENTIALS__TOKEN": FIXED,
        }
        proc = cli(run_args(sim, "x.duckdb", None, "--json"), tmp_path, token=FIXED, extra_env=env)
        assert proc.returncode == 0, proc.stderr
        warnings = [line.split(" ", 1)[1] for line in proc.stderr.splitlines() if " WARNING " in line]
        assert warnings == [
            f"WARNING project cn-north-4:{project.project_id} is reached by accounts default and second: "
            "read once, by account default"
        ], proc.stderr
        assert json.loads(proc.stdout.splitlines()[-1])["projects_ok"] == 1
        assert sim.iam_calls(f"/v2/{project.project_id}/images") == 1
        db = tmp_path / "x.duckdb"
        assert query(db, "select count(*), count(distinct id) from workspace_images.images") == [(30, 30)]
        assert query(db, "select account, status from workspace_images.project_runs") == [("default", "ok")]

        proc = cli(run_args(sim, "x.duckdb", 2, "--json"), tmp_path, token=FIXED, extra_env=env)
        assert proc.returncode == 0, proc.stderr
        assert query(db, "select count(*) from analytics.image_inventory") == [(30,)]
        assert query(db, "select count(*) from workspace_images.project_runs") == [(2,)]
