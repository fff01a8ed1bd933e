"""A filtered run retires only the earlier versions of what it read; its history heals unfiltered."""

from __future__ import annotations

from pathlib import Path
from typing import Dict, Sequence, Set, Tuple

from workspace_images.simulator import Simulator
from tests.helpers import TOKEN, cli, load, query, run_args

HISTORY = ("select project_id, id, _row_hash, _dlt_valid_from, _dlt_valid_to from workspace_images.images"
           " order by project_id, id, _dlt_valid_from")
"""Each version of each image and its validity: what two loads of the same days must share."""

Key = Tuple[str, str]


def day_images(sim: Simulator) -> Dict[Key, dict]:
    return {(p.project_id, i["id"]): i for p in sim.projects for i in sim.images(p.project_id)}


def keys(db: Path, where: str, params: Sequence = ()) -> Set[Key]:
    return set(query(db, f"select project_id, id from workspace_images.images where {where}", list(params)))


def test_a_filtered_run_retires_nothing_it_did_not_read(tmp_path: Path) -> None:
    db, reference = tmp_path / "filtered.duckdb", tmp_path / "reference.duckdb"
    with Simulator(projects=2, images=200, seed=5, token=TOKEN) as sim:
        first = sim.projects[0].project_id
        load(db, sim, day=0)
        load(reference, sim, day=0)
        day0 = day_images(sim)
        before = query(db, HISTORY)
        sim.set_day(2)
        day2 = day_images(sim)
        sim.set_day(1)
        # besides the days' own changes, on days 1 and 2: one Windows image withdrawn, one
        # renamed, one that leaves the filter (Windows no more), one other image withdrawn
        steady = sorted(k for k, i in day_images(sim).items() if k[0] == first and day0.get(k) == i == day2.get(k))
        windows = [k for k in steady if day0[k]["os_type"] == "Windows"]
        other = next(k for k in steady if day0[k]["os_type"] != "Windows")

        def mutate() -> None:
            sim.withdraw(first, windows[0][1])
            sim.modify(first, windows[1][1], name="renamed")
            sim.modify(first, windows[2][1], os_type="Linux")
            sim.withdraw(first, other[1])

        mutate()
        day1 = day_images(sim)
        result = load(db, sim, day=1, filters={"os_type": "Windows"})

        read = {k for k, i in day1.items() if i["os_type"] == "Windows"}
        replaced = {k for k in read & day0.keys() if day1[k] != day0[k]}
        published = read - day0.keys()
        assert windows[1] in replaced and published, "the day must change and publish Windows images"
        assert result.exit_code == 0
        as_of = sim.as_of(1)
        # only the earlier versions of images it read are retired; all else stays current
        assert keys(db, "_dlt_valid_to = ?", [as_of]) == replaced
        assert keys(db, "_dlt_valid_from = ?", [as_of]) == replaced | published
        assert (result.retired, result.new_versions) == (len(replaced), len(replaced | published))
        assert keys(db, "_dlt_valid_to is null") == day0.keys() | published
        assert query(db, "select name from workspace_images.images where id = ? and _dlt_valid_to is null",
                     [windows[1][1]]) == [("renamed",)]
        different = replaced | published
        assert [row for row in query(db, HISTORY) if (row[0], row[1]) not in different] == \
            [row for row in before if (row[0], row[1]) not in different]

        sim.set_day(2)
        mutate()
        assert load(db, sim, day=2).exit_code == 0
        assert load(reference, sim, day=2).exit_code == 0
        day2 = day_images(sim)

    assert keys(db, "_dlt_valid_to is null") == set(day2)
    retired = keys(db, "_dlt_valid_to = ?", [sim.as_of(2)])
    assert {windows[0], other} <= retired and windows[2] in retired & keys(db, "_dlt_valid_to is null")
    # no spurious version: every image but those the filtered run read changed or new has
    # the history of a database loaded unfiltered on days 0 and 2 only
    assert [row for row in query(db, HISTORY) if (row[0], row[1]) not in different] == \
        [row for row in query(reference, HISTORY) if (row[0], row[1]) not in different]


def test_a_filtered_run_of_a_project_without_a_match_retires_nothing(sim: Simulator, db: Path) -> None:
    project = sim.add_project("cn-north-4", images=40)
    load(db, sim, day=0)
    before = query(db, HISTORY)
    result = load(db, sim, day=1, filters={"image_id": "no-such-image"})
    assert (result.exit_code, result.images, result.retired, result.new_versions) == (0, 0, 0, 0)
    assert query(db, HISTORY) == before
    assert len(before) == 40 and project.project_id == before[0][0]


def test_sorting_alone_is_an_unfiltered_run(tmp_path: Path) -> None:
    with Simulator(projects=2, images=150, seed=7, token=TOKEN) as sim:
        for folder in ("sorted", "reference"):
            (tmp_path / folder).mkdir()
            assert cli(run_args(sim, "x.duckdb", 0), tmp_path / folder).returncode == 0
        sim.set_day(1)
        day0 = set(query(tmp_path / "sorted" / "x.duckdb", "select project_id, id from workspace_images.images"))
        withdrawn = day0 - set(day_images(sim))
        assert withdrawn
        done = cli(run_args(sim, "x.duckdb", 1, "--filter", "sort_field=name", "--filter", "sort_type=desc"),
                   tmp_path / "sorted")
        assert done.returncode == 0, done.stderr
        assert cli(run_args(sim, "x.duckdb", 1), tmp_path / "reference").returncode == 0
        sent = [r.query for r in sim.requests if r.query.get("sort_field") == "name"]
        assert sent and all(q.get("sort_type") == "desc" for q in sent)
    history = query(tmp_path / "sorted" / "x.duckdb", HISTORY)
    assert history == query(tmp_path / "reference" / "x.duckdb", HISTORY)
    assert keys(tmp_path / "sorted" / "x.duckdb", "_dlt_valid_to = ?", [sim.as_of(1)]) >= withdrawn
