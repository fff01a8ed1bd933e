"""The benchmarks still run (on tiny sizes; their timings are not checked here)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from bench.models_rebuild import make_database
from workspace_images.models import build_models
from tests.conftest import query


def test_models_rebuild_history_builds_and_passes_the_data_tests(tmp_path: Path) -> None:
    db = tmp_path / "h.duckdb"
    versions = make_database(db, images=300, days=20, projects=3)
    assert query(db, "select count(*) from workspace_images.images") == [(versions,)]
    assert versions > 300
    result = build_models(db)
    assert result.tests == 27 and result.rows["os_version_trend"] > 0


def test_run_load_benchmark_prints_its_table(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "bench.run_load", "--projects", "2", "--images", "30"],
        capture_output=True, text=True, timeout=300, cwd=Path(__file__).parent.parent,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stdout.splitlines()
    assert lines[0] == "2 projects x 30 images = 60 images, latency 0 ms, best of 1"
    assert [line.split()[0] for line in lines[2:]] == ["imports", "http", "handwritten", "rest_api", "first", "rerun"]


def test_growth_and_latency_benchmarks_print_their_tables(tmp_path: Path) -> None:
    root = Path(__file__).parent.parent
    growth = subprocess.run([sys.executable, "-m", "bench.growth", "--sizes", "100,500"],
                            capture_output=True, text=True, timeout=300, cwd=root)
    assert growth.returncode == 0, growth.stderr[-2000:]
    rows = growth.stdout.splitlines()[2:]
    assert [r.split()[0] for r in rows] == ["100", "500"]
    latency = subprocess.run([sys.executable, "-m", "bench.latency", "--projects", "2", "--images", "150",
                              "--latency-ms", "20"], capture_output=True, text=True, timeout=300, cwd=root)
    assert latency.returncode == 0, latency.stderr[-2000:]
    assert latency.stdout.splitlines()[0] == "2 projects x 150 images = 4 requests at 20 ms, 8 at a time"
    assert " ratio " in latency.stdout.splitlines()[1]


def test_fetch_breakdown_benchmark_prints_its_table() -> None:
    proc = subprocess.run([sys.executable, "-m", "bench.fetch_breakdown", "--projects", "2", "--images", "150",
                           "--repeat", "1"], capture_output=True, text=True, timeout=300, cwd=Path(__file__).parent.parent)
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stdout.splitlines()
    assert lines[0] == "2 projects x 150 images, 8 threads, best of 1"
    assert [line.rsplit(None, 2)[0] for line in lines[2:]] == ["pages", "pages + rows", "dlt session + rows",
                                                                "fetch_project"]
