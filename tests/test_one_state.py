"""One database, one state: whichever working folder or path loads a database, the run continues
from the state the database holds, so the history is the one a single working folder gives."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Sequence, Tuple

import psycopg2
import pytest

from workspace_images.pipelines.runner import run
from workspace_images.simulator import Simulator
from tests.helpers import TOKEN, cli, query, targets
from tests.pgserver import PostgresServer

NOT_COMPARED = ("_dlt_load_id", "_dlt_id", "fetched_at")
"""Columns that differ between two loads of one day by nature: which load, and the wall clock."""

Day = Callable[[Simulator, int], None]


def new_field_then_new_field(first: str, second: str) -> Day:
    """Day 1: an image of `first` gains `newField`; day 2: an image of `second` gains `new_field`."""

    def change(sim: Simulator, day: int) -> None:
        if day == 1:
            sim.modify(first, sim.images(first)[0]["id"], newField="from day 1")
        if day == 2:
            sim.modify(second, sim.images(second)[0]["id"], new_field="from day 2")
    return change


def integers_then_text(first: str, second: str) -> Day:
    """Day 1: an image of `first` gains `newField` as an integer; day 2: one of `second` as text."""

    def change(sim: Simulator, day: int) -> None:
        if day == 1:
            sim.modify(first, sim.images(first)[0]["id"], newField=41)
        if day == 2:
            sim.modify(second, sim.images(second)[0]["id"], newField="forty-two")
    return change


def load_days(sim: Simulator, change: Day, folders: Sequence[Path], load: Callable[[Path, int], Any]) -> None:
    """Day 0, 1, 2... of `sim`, each loaded from its folder in `folders`."""
    for day, folder in enumerate(folders):
        sim.set_day(day)  # also undoes the day before's changes, so each sequence replays alike
        change(sim, day)
        load(folder, day)


def into(sim: Simulator, db: Path) -> Callable[[Path, int], Any]:
    """A load of one day of `sim` into the DuckDB file `db` from a working folder."""
    return lambda folder, day: run(db, projects=targets(sim), endpoint=sim.url, token=TOKEN,
                                   as_of=sim.as_of(day), pipelines_dir=folder, models=False)


def file_history(db: Path) -> Tuple[List[Tuple[str, str]], List[tuple]]:
    """The `images` table of a DuckDB file: its columns with their types, and every version's
    values (all but NOT_COMPARED), sorted. Columns are compared by name, not position: a new
    field's position follows which project of a run finished first."""
    columns = query(db, "select column_name, data_type from information_schema.columns where table_schema = "
                        "'workspace_images' and table_name = 'images' order by column_name")
    kept = [name for name, _ in columns if name not in NOT_COMPARED]
    rows = query(db, f"select {', '.join(kept)} from workspace_images.images")
    return columns, sorted(rows, key=repr)


def restores(caplog: pytest.LogCaptureFixture) -> List[str]:
    return [r.getMessage() for r in caplog.records if "dlt's state" in r.getMessage()]


def local_hash(folder: Path) -> str:
    return json.loads((folder / "workspace_images" / "state.json").read_text())["_version_hash"]


def stored_hash(db: Path) -> str:
    return query(db, "select s.version_hash from workspace_images._dlt_pipeline_state s join "
                     "workspace_images._dlt_loads l on l.load_id = s._dlt_load_id where l.status = 0 "
                     "order by l.load_id desc limit 1")[0][0]


@pytest.fixture
def two(sim: Simulator) -> Tuple[str, str]:
    return sim.add_project("cn-north-4", images=6).project_id, sim.add_project("cn-north-4", images=6).project_id


def test_two_working_folders_on_one_file_give_the_history_of_one(
        sim: Simulator, tmp_path: Path, two: Tuple[str, str], caplog: pytest.LogCaptureFixture) -> None:
    change = new_field_then_new_field(*two)
    split, alone = tmp_path / "split" / "images.duckdb", tmp_path / "alone" / "images.duckdb"
    for db in (split, alone):
        db.parent.mkdir()

    a, b = split.parent / "A", split.parent / "B"
    (a / "set_aside").mkdir(parents=True)
    (a / "set_aside" / "kept.txt").write_text("not dlt's")
    with caplog.at_level(logging.INFO, logger="workspace_images"):
        load_days(sim, change, [a, b, a], into(sim, split))
    load_days(sim, change, [alone.parent / "one"] * 3, into(sim, alone))

    assert file_history(split) == file_history(alone)
    assert [c for c, _ in file_history(alone)[0] if c.startswith("new_field")] == ["new_field", "new_field_h36df77f5"]
    assert restores(caplog) == [
        f"restored dlt's state from {split}: the working folder {b} had none",
        f"restored dlt's state from {split}: the working folder {a} held another one "
        "(the database was loaded from elsewhere since, or this folder's last load did not reach it)",
    ]
    assert (a / "set_aside" / "kept.txt").read_text() == "not dlt's"  # only dlt's own folder is replaced


def test_a_type_clash_between_folders_loads_as_one_folder_would(
        sim: Simulator, tmp_path: Path, two: Tuple[str, str]) -> None:
    change = integers_then_text(*two)
    split, alone = tmp_path / "split" / "images.duckdb", tmp_path / "alone" / "images.duckdb"
    for db in (split, alone):
        db.parent.mkdir()

    load_days(sim, change, [split.parent / "A", split.parent / "B", split.parent / "A"], into(sim, split))
    load_days(sim, change, [alone.parent / "one"] * 3, into(sim, alone))

    assert file_history(split) == file_history(alone)
    assert ("new_field", "BIGINT") in file_history(split)[0]
    assert query(split, "select new_field, raw_values from workspace_images.images where new_field is not null "
                        "or raw_values is not null order by _dlt_valid_from") == [
        (41, None), (None, '{"newField": "forty-two"}')]


def test_an_ordinary_run_keeps_its_working_folder(
        sim: Simulator, tmp_path: Path, two: Tuple[str, str], caplog: pytest.LogCaptureFixture) -> None:
    """Unchanged runs, a new field, a failed project, a run that changes no state: the working
    folder's state is the database's latest after each, so no run restores it."""
    first, second = two
    db, folder = tmp_path / "images.duckdb", tmp_path / "pipelines"
    completed: List[int] = []
    with caplog.at_level(logging.INFO, logger="workspace_images"):
        for day in (0, 0, 1, 1, 2, 3):
            sim.set_day(day)
            if day >= 1:
                sim.modify(first, sim.images(first)[0]["id"], newField="x")
            if day == 2:
                sim.fail_project(second, "status", status=500, error_code="WKS.0500", error_msg="Internal error")
            if day == 3:
                sim.clear_faults()
            result = run(db, projects=targets(sim), endpoint=sim.url, token=TOKEN, as_of=sim.as_of(day),
                         pipelines_dir=folder, models=False)
            assert (day, len(result.failed)) == (day, 1 if day == 2 else 0)
            assert local_hash(folder) == stored_hash(db)
            completed.append(len(os.listdir(folder / "workspace_images" / "load" / "loaded")))
    assert restores(caplog) == []
    assert completed == [1, 2, 3, 4, 5, 6]  # every load's record kept: the folder was never replaced


def test_a_new_database_does_not_take_an_old_working_folders_state(
        sim: Simulator, tmp_path: Path, two: Tuple[str, str], caplog: pytest.LogCaptureFixture) -> None:
    change = new_field_then_new_field(*two)
    old, new, alone = tmp_path / "old.duckdb", tmp_path / "new.duckdb", tmp_path / "alone.duckdb"
    folder = tmp_path / "pipelines"
    load_days(sim, change, [folder, folder], into(sim, old))  # newField: column new_field in `folder`'s plan
    sim.set_day(2)
    change(sim, 2)  # new_field
    with caplog.at_level(logging.INFO, logger="workspace_images"):
        into(sim, new)(folder, 2)
    into(sim, alone)(tmp_path / "fresh", 2)
    assert file_history(new) == file_history(alone)
    assert [c for c, _ in file_history(new)[0] if c.startswith("new_field")] == ["new_field"]
    assert restores(caplog) == [f"dropped dlt's state in {folder}: {new} holds none (a new or emptied database)"]


def test_a_symlinked_db_has_one_working_folder_and_one_lock(
        sim: Simulator, tmp_path: Path, two: Tuple[str, str]) -> None:
    change = new_field_then_new_field(*two)
    (tmp_path / "data").mkdir()
    real, link = tmp_path / "data" / "real.duckdb", tmp_path / "link.duckdb"
    link.symlink_to(real)

    def load(path: str, cwd: Path, day: int) -> None:
        proc = cli(["run", "--endpoint", sim.url, "--db", path, "--as-of", sim.as_of(day).isoformat(),
                    "--no-models", *[arg for t in targets(sim) for arg in ("--project", t)]], cwd)
        assert proc.returncode == 0, proc.stderr

    for day, path in enumerate([link, real, link]):
        sim.set_day(day)
        change(sim, day)
        load(str(path), tmp_path, day)
    alone = tmp_path / "alone"
    alone.mkdir()
    for day in range(3):
        sim.set_day(day)
        change(sim, day)
        load("real.duckdb", alone, day)

    assert os.listdir(tmp_path / "data" / ".workspace_images") == ["real.duckdb"]
    assert sorted(os.listdir(tmp_path / "data")) == [".workspace_images", "real.duckdb", "real.duckdb.lock"]
    assert sorted(os.listdir(tmp_path)) == ["alone", "data", "link.duckdb"]
    assert file_history(real) == file_history(alone / "real.duckdb")


@pytest.fixture(scope="module")
def postgres() -> Iterator[PostgresServer]:
    with PostgresServer() as server:
        yield server


def pg_history(url: str) -> Tuple[List[Tuple[str, str]], List[tuple]]:
    with psycopg2.connect(url) as con, con.cursor() as cur:
        cur.execute("select column_name, data_type from information_schema.columns where table_schema = "
                    "'workspace_images' and table_name = 'images' order by ordinal_position")
        columns = cur.fetchall()
        kept = [name for name, _ in columns if name not in NOT_COMPARED]
        cur.execute(f"select {', '.join(kept)} from workspace_images.images")
        return columns, sorted(cur.fetchall(), key=repr)


def test_two_working_folders_on_one_postgres_give_the_history_of_one(
        sim: Simulator, tmp_path: Path, two: Tuple[str, str], postgres: PostgresServer,
        monkeypatch: pytest.MonkeyPatch) -> None:
    change = integers_then_text(*two)
    histories: Dict[str, Any] = {}
    for name, folders in (("split", ["A", "B", "A"]), ("alone", ["one"] * 3)):
        url = postgres.create_database(f"one_state_{name}")
        monkeypatch.setenv("DESTINATION__POSTGRES__CREDENTIALS", url)
        load_days(sim, change, [tmp_path / name / f for f in folders],
                  lambda folder, day: run(destination="postgres", projects=targets(sim), endpoint=sim.url,
                                          token=TOKEN, as_of=sim.as_of(day), pipelines_dir=folder, models=False))
        histories[name] = pg_history(url)
    assert histories["split"] == histories["alone"]
    assert ("new_field", "bigint") in histories["split"][0]
