"""The benchmarks still run (on tiny sizes; their timings are not checked here)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from bench.models_rebuild import make_database
from workspace_images.pipelines.models import build_models
from tests.helpers import query


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


def test_report_export_benchmark_prints_its_line() -> None:
    root = Path(__file__).parent.parent
    proc = subprocess.run([sys.executable, "-m", "bench.report_export", "--projects", "2", "--images", "40",
                           "--repeat", "1"], capture_output=True, text=True, timeout=300, cwd=root)
    assert proc.returncode == 0, proc.stderr[-2000:]
    first, second = proc.stdout.splitlines()
    assert first == "2 projects x 40 images, best of 1"
    assert re.fullmatch(r"report alone [\d.]+ s; report --csv --parquet [\d.]+ s: the files add -?[\d.]+ s, "
                        r"-?[\d.]+x DuckDB's own COPY of the same tables \([\d.]+ s\)", second), second


def test_fetch_breakdown_benchmark_prints_its_table() -> None:
    proc = subprocess.run([sys.executable, "-m", "bench.fetch_breakdown", "--projects", "2", "--images", "150",
                           "--repeat", "1"], capture_output=True, text=True, timeout=300, cwd=Path(__file__).parent.parent)
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stdout.splitlines()
    assert lines[0] == "2 projects x 150 images, 8 threads, best of 1"
    assert [line.rsplit(None, 2)[0] for line in lines[2:]] == ["pages", "pages + rows", "dlt session + rows",
                                                                "fetch_project"]


def _checkout(folder: Path, tests: str) -> Path:
    """A tiny checkout: a test file, and a `.venv/bin/python` that is this interpreter."""
    (folder / "tests").mkdir(parents=True)
    (folder / "tests" / "test_x.py").write_text(tests)
    python = folder / ".venv" / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    python.chmod(0o755)
    return folder


def test_suite_pair_compares_two_suites_run_at_once_test_by_test(tmp_path: Path) -> None:
    body = ("import subprocess, sys, time\n\n"
            "def test_shared():\n    time.sleep({sleep})\n\n"
            "def test_with_a_child():\n    subprocess.run([sys.executable, '-c', 'sum(range(3_000_000))'], check=True)\n")
    old = _checkout(tmp_path / "old", body.format(sleep=0.1))
    new = _checkout(tmp_path / "new", body.format(sleep=0.4) + "\ndef test_new_only():\n    pass\n")
    proc = subprocess.run([sys.executable, "-m", "bench.suite_pair", str(old), str(new), "--", "-q", "-p",
                           "no:cacheprovider"], capture_output=True, text=True, timeout=120,
                          cwd=Path(__file__).parent.parent)
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stdout.splitlines()
    assert lines[0].startswith(f"old {old}: 2 passed in ") and lines[1].startswith(f"new {new}: 3 passed in ")
    assert lines[2].split()[:2] == ["tests", "both"]
    by_name = {line.split()[0]: line.split()[1:] for line in lines[3:5]}
    assert set(by_name) == {"tests/test_x.py", "total"}
    n, wall_old, wall_new, wall_ratio, cpu_old, cpu_new, _, children_old, children_new, _ = by_name["total"]
    assert n == "2"
    # a sleep never ends early: the walls are at least the sleeps; the ratio is the two walls'
    assert float(wall_old) >= 0.1 and float(wall_new) >= 0.4
    assert float(wall_ratio) == pytest.approx(float(wall_new) / float(wall_old), rel=0.1)  # walls are rounded
    assert float(children_old) > 0 and float(children_new) > 0  # the subprocess's CPU is counted apart
    assert lines[5:] == ["only old: 0 tests, 0.00 s", lines[6]] and lines[6].startswith("only new: 1 tests, ")


def test_suite_pair_wants_a_venv_in_each_checkout(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "bench.suite_pair", str(tmp_path), str(tmp_path)],
                          capture_output=True, text=True, timeout=60, cwd=Path(__file__).parent.parent)
    assert proc.returncode == 2
    assert proc.stderr.splitlines()[-1] == (f"{Path(sys.executable).name} -m bench.suite_pair: error: {tmp_path}: "
                                            "no .venv (run `make install` there)")


@pytest.mark.parametrize("module", ["run_load", "growth", "latency", "fetch_breakdown", "models_rebuild", "report_export",
                                    "suite_pair", "hostile"])
def test_each_benchmark_has_help_under_its_own_name(module: str) -> None:
    proc = subprocess.run([sys.executable, "-m", f"bench.{module}", "--help"], capture_output=True, text=True,
                          timeout=120, cwd=Path(__file__).parent.parent)
    assert (proc.returncode, proc.stderr) == (0, "")
    assert proc.stdout.startswith(f"usage: {Path(sys.executable).name} -m bench.{module} [-h]"), proc.stdout


def test_hostile_runs_a_case_against_its_baseline() -> None:
    proc = subprocess.run([sys.executable, "-m", "bench.hostile", "--case", "ids"], capture_output=True, text=True,
                          timeout=300, cwd=Path(__file__).parent.parent)
    assert (proc.returncode, proc.stderr) == (0, "")
    first, second = proc.stdout.splitlines()
    assert first == 'ids           ids 12345 and "12345" in one project'
    assert re.fullmatch(r" {13} baseline exit 0, [\d.]+ s, \d+ MiB; hostile day exit 1, [\d.]+ s, \d+ MiB "
                        r"\([\d.]+x baseline\); next day exit 0, \d+ MiB", second), second

