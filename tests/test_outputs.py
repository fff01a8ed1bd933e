"""Paths a command writes never land on the database: report's files, the log file, the run lock."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import List

import pytest

from workspace_images.simulator import Simulator
from tests.helpers import cli, nothing_written, one_line, run_args


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def loaded(sim: Simulator, tmp_path: Path) -> Path:
    sim.add_project("cn-north-4", images=20)
    done = cli(run_args(sim), tmp_path)
    assert done.returncode == 0, done.stderr
    return tmp_path / "x.duckdb"


@pytest.mark.parametrize("args, named, guarded", [
    (["--html", "x.duckdb"], "--html x.duckdb", "x.duckdb"),
    (["--html", "x.duckdb.wal"], "--html x.duckdb.wal", "x.duckdb.wal"),
    (["--html", "x.duckdb.lock"], "--html x.duckdb.lock", "x.duckdb.lock"),
    (["--html", "link.html"], "--html link.html", "x.duckdb"),  # a symbolic link to the database
    (["--html", "hard.html"], "--html hard.html", "x.duckdb"),  # another name of the database
    (["--csv", ".workspace_images/x.duckdb"], "--csv .workspace_images/x.duckdb", "{tmp}/.workspace_images"),
    (["--parquet", "x.duckdb.tmp"], "--parquet x.duckdb.tmp", "x.duckdb.tmp"),
])
def test_report_never_writes_over_the_database(loaded: Path, tmp_path: Path, args: List[str], named: str,
                                               guarded: str) -> None:
    (tmp_path / "link.html").symlink_to(loaded)
    os.link(loaded, tmp_path / "hard.html")
    (tmp_path / "x.duckdb.tmp").mkdir()
    before = digest(loaded)
    done = cli(["report", "--db", "x.duckdb", *args], tmp_path)
    assert done.returncode == 2, done.stdout
    assert one_line(done.stderr) == (f"workspace-images: error: {named} would write over "
                                     f"{guarded.format(tmp=tmp_path)}, which the database needs: choose another path")
    assert digest(loaded) == before
    assert cli(["report", "--db", "x.duckdb"], tmp_path).returncode == 0  # the database is whole


def test_the_log_file_is_never_the_database(sim: Simulator, loaded: Path, tmp_path: Path) -> None:
    before = digest(loaded)
    done = cli([*run_args(sim), "--log-file", "x.duckdb"], tmp_path)
    assert done.returncode == 2
    assert one_line(done.stderr) == ("workspace-images: error: --log-file x.duckdb would write over x.duckdb, "
                                     "which the database needs: choose another path")
    assert digest(loaded) == before


@pytest.mark.parametrize("kind", ["symlink", "hardlink"])
def test_the_run_lock_is_never_taken_through_a_link(sim: Simulator, tmp_path: Path, kind: str) -> None:
    """In a shared folder, `<db>.lock` made a link to another file would have that file truncated."""
    sim.add_project("cn-north-4", images=20)
    work, victim = tmp_path / "work", tmp_path / "victim.txt"
    work.mkdir()
    victim.write_text("somebody's file\n")
    lock = work / "x.duckdb.lock"
    if kind == "symlink":
        lock.symlink_to(victim)
        why = "is a symbolic link: the run lock is never taken through one"
    else:
        os.link(victim, lock)
        why = "is a file with 2 names: the run lock must be a file of its own"
    done = cli(run_args(sim), work)
    assert done.returncode == 2
    assert one_line(done.stderr) == (f"workspace-images: error: {lock} {why} (taking it truncates the file); "
                                     "remove it and run again")
    assert victim.read_text() == "somebody's file\n"
    assert sim.requests == []  # refused before anything was fetched
    lock.unlink()
    assert cli(run_args(sim), work).returncode == 0


def test_an_output_beside_the_database_is_fine(loaded: Path, tmp_path: Path) -> None:
    done = cli(["report", "--db", "x.duckdb", "--html", "page.html", "--csv", "out"], tmp_path)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "page.html").exists() and (tmp_path / "out" / "image_inventory.csv").exists()


def test_nothing_is_written_when_the_log_file_is_refused(tmp_path: Path) -> None:
    done = cli(["run", "--project", "cn-north-4:abc", "--log-file", "images.duckdb"], tmp_path)
    assert done.returncode == 2
    nothing_written(tmp_path)
