"""Model rebuild time over a long history, against a full copy of the raw history in the same run.

Builds a DuckDB file whose `workspace_images` tables were created by a real pipeline
load (so their layout is dlt's own), fills them with a synthetic SCD2 history of
`--days` daily loads over about `--images` images (each day ~4 % published, ~3 %
withdrawn, ~2 % changed, like the simulator), then times:

- `copy`: `create table ... as select * from workspace_images.images` (reading and
  writing the raw history once: the floor of any full rebuild);
- `models`: `workspace-images models` (every model in one transaction);
- `models+tests`: the same with the data tests, as `run` and `models` do it.

Usage: python -m bench.models_rebuild [--images 50000] [--days 365] [--projects 50] [--repeat 3]
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List

import duckdb
import numpy as np
import pyarrow as pa

from workspace_images.pipelines.models import build_models
from workspace_images.pipelines.program import module_command
from workspace_images.pipelines.runner import run
from workspace_images.simulator import Simulator
from workspace_images.simulator.data import RELEASES

START = dt.datetime(2025, 1, 1, 12, tzinfo=dt.timezone.utc)
REGIONS = ["cn-north-4", "cn-east-3", "cn-south-1", "ap-southeast-1", "ap-southeast-3"]


def synthetic_history(images: int, days: int, projects: int, seed: int = 1) -> Dict[str, pa.Table]:
    """SCD2 rows for `days` daily loads of a catalogue of about `images` images."""
    rng = np.random.default_rng(seed)
    publish_per_day = int(images * 0.04)
    births = np.concatenate([np.zeros(images, dtype=np.int64), np.repeat(np.arange(1, days), publish_per_day)])
    total = len(births)
    lifetimes = rng.geometric(0.03, size=total)  # days until withdrawn
    deaths = births + lifetimes  # first day the image is gone
    releases = list(RELEASES.values())
    release_of = rng.integers(0, len(releases), size=total)
    project_of = rng.integers(0, projects, size=total)
    columns: Dict[str, List] = {k: [] for k in (
        "id", "name", "image_type", "os_type", "os_version", "disk_format", "product_code", "architecture",
        "min_ram", "min_disk", "created_at", "account", "project_id", "region", "fetched_at", "_row_hash",
        "_dlt_valid_from", "_dlt_valid_to")}
    project_ids = [hashlib.md5(f"p{p}".encode()).hexdigest() for p in range(projects)]
    for n in range(total):
        start, end = int(births[n]), int(min(deaths[n], days))
        if start >= days:
            continue
        life = end - start
        change_days = sorted(set((start + 1 + np.flatnonzero(rng.random(max(life - 1, 0)) < 0.02)).tolist()))
        bounds = [start, *change_days, end]
        release = releases[release_of[n]]
        min_disk = 40
        for version, (v_from, v_to) in enumerate(zip(bounds, bounds[1:])):
            if version:
                if release.successor and rng.random() < 0.5:
                    release = RELEASES[release.successor]
                else:
                    min_disk += 20
            image_id = f"{n:08d}-0000-4000-8000-000000000000"
            columns["id"].append(image_id)
            columns["name"].append(f"{release.stem}_{n}")
            columns["image_type"].append("gold" if n % 10 < 7 else "private")
            columns["os_type"].append(release.os_type)
            columns["os_version"].append(release.os_version)
            columns["disk_format"].append("zvhd2")
            columns["product_code"].append(f"workspace.x86.{release.code}")
            columns["architecture"].append("x86")
            columns["min_ram"].append(0)
            columns["min_disk"].append(min_disk)
            columns["created_at"].append(START + dt.timedelta(days=start))
            columns["account"].append("default")
            columns["project_id"].append(project_ids[project_of[n]])
            columns["region"].append(REGIONS[project_of[n] % len(REGIONS)])
            columns["fetched_at"].append(START + dt.timedelta(days=v_from))
            columns["_row_hash"].append(f"{n}-{version}")
            columns["_dlt_valid_from"].append(START + dt.timedelta(days=v_from))
            columns["_dlt_valid_to"].append(START + dt.timedelta(days=v_to) if v_to < days else None)
    runs = {
        "run_id": [f"run{d}" for d in range(days) for _ in range(projects)],
        "account": ["default"] * (days * projects),
        "project_id": [project_ids[p] for _ in range(days) for p in range(projects)],
        "region": [REGIONS[p % len(REGIONS)] for _ in range(days) for p in range(projects)],
        "as_of": [START + dt.timedelta(days=d) for d in range(days) for _ in range(projects)],
        "status": ["ok"] * (days * projects),
        "_dlt_load_id": [f"{d}" for d in range(days) for _ in range(projects)],
        "_dlt_id": [f"{d}-{p}" for d in range(days) for p in range(projects)],
    }
    return {"images": pa.table(columns), "project_runs": pa.table(runs)}


def make_database(path: Path, images: int, days: int, projects: int) -> int:
    """Create the tables with a real load, then replace their rows with the synthetic history."""
    with Simulator(projects=1, images=3, token="bench") as sim:
        run(path, projects=[f"{p.region}:{p.project_id}" for p in sim.projects], endpoint=sim.url,
            token="bench", as_of=START - dt.timedelta(days=1), pipelines_dir=path.parent / "pipelines", models=False)
    history = synthetic_history(images, days, projects)
    with duckdb.connect(str(path)) as con:
        con.execute("set TimeZone = 'UTC'")
        for table, data in history.items():
            con.register("synthetic", data)
            con.execute(f"delete from workspace_images.{table}")
            con.execute(f"insert into workspace_images.{table} by name select * from synthetic")
            con.unregister("synthetic")
        # the synthetic runs are finished loads, as dlt records them
        con.execute("insert into workspace_images._dlt_loads (load_id, schema_name, status, inserted_at) "
                    "select distinct _dlt_load_id, 'workspace_images', 0, now() from workspace_images.project_runs")
        return con.execute("select count(*) from workspace_images.images").fetchone()[0]


def best(repeat: int, fn) -> float:
    times = []
    for _ in range(repeat):
        began = time.perf_counter()
        fn()
        times.append(time.perf_counter() - began)
    return min(times)


def main() -> int:
    parser = argparse.ArgumentParser(prog=module_command(__spec__.name), description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=50_000)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--projects", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="wi-models-"))
    try:
        db = work / "history.duckdb"
        began = time.perf_counter()
        versions = make_database(db, args.images, args.days, args.projects)
        print(f"history: {versions:,} versions over {args.days} days, {args.projects} projects "
              f"(built in {time.perf_counter() - began:.0f}s)")

        def copy() -> None:
            with duckdb.connect(str(db)) as con:
                con.execute("create or replace table main.history_copy as select * from workspace_images.images")

        results = {
            "copy": best(args.repeat, copy),
            "models": best(args.repeat, lambda: build_models(db, run_tests=False)),
            "models+tests": best(args.repeat, lambda: build_models(db)),
        }
        rows = build_models(db)
        print(f"{'case':<14}{'seconds':>9}{'x copy':>8}")
        for name, seconds in results.items():
            print(f"{name:<14}{seconds:>9.2f}{seconds / results['copy']:>8.1f}")
        print("per model: " + ", ".join(f"{n} {s:.2f}s ({rows.rows[n]:,} rows)" for n, s in rows.seconds.items()))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
