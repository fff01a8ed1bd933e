"""The SQL models against expectations computed in the test from the simulator's own data."""

from __future__ import annotations

import shutil
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any, Dict, List, Set, Tuple

import duckdb
import pytest

import sqlglot

from workspace_images.columns import ADDED_COLUMNS, RAW_VALUES_COLUMN
from workspace_images.pipelines.model_files import SQL_DIR
from workspace_images.pipelines.models import build_models, load_models, macro_scripts
from workspace_images.simulator import Simulator
from tests.helpers import TOKEN, load, query

DAYS = 5
Snapshot = Dict[str, Dict[str, Dict[str, Any]]]  # project_id -> image id -> image


@pytest.fixture
def history(tmp_path: Path) -> Tuple[Path, Simulator, List[Snapshot]]:
    """Five simulated days loaded through the real pipeline; the last day one project fails."""
    db = tmp_path / "h.duckdb"
    snapshots: List[Snapshot] = []
    with Simulator(projects=3, images=120, seed=21, token=TOKEN) as sim:
        failing = sim.projects[2].project_id
        for day in range(DAYS):
            sim.set_day(day)
            if day == DAYS - 1:
                sim.fail_project(failing, "status", status=500, error_code="WKS.0500", error_msg="Internal error")
            snapshot = {p.project_id: {i["id"]: i for i in sim.images(p.project_id)} for p in sim.projects}
            if day == DAYS - 1:
                snapshot[failing] = snapshots[-1][failing]  # what the pipeline keeps for a failed project
            snapshots.append(snapshot)
            load(db, sim, day=day)
        yield db, sim, snapshots


def test_os_version_trend_counts_every_day(history: Tuple[Path, Simulator, List[Snapshot]]) -> None:
    db, sim, snapshots = history
    expected: Dict[Tuple[Any, ...], Tuple[int, int]] = {}
    versions = {(i["os_type"], i["os_version"]) for s in snapshots for p in s.values() for i in p.values()}
    for day, snapshot in enumerate(snapshots):
        date = sim.as_of(day).date()
        per_version: Counter = Counter()
        holders: Dict[Tuple[str, str], Set[str]] = defaultdict(set)
        for project_id, images in snapshot.items():
            for image in images.values():
                key = (image["os_type"], image["os_version"])
                per_version[key] += 1
                holders[key].add(project_id)
        for key in versions:
            expected[(date, *key)] = (per_version[key], len(holders[key]))
    rows = query(db, "select day, os_type, os_version, images, projects from analytics.os_version_trend")
    assert {(r[0], r[1], r[2]): (r[3], r[4]) for r in rows} == expected
    changes = query(db, "select day, os_type, os_version, images_change from analytics.os_version_trend")
    for day, os_type, os_version, change in changes:
        index = (day - sim.as_of(0).date()).days
        if index == 0:
            assert change is None
        else:
            before = expected[(sim.as_of(index - 1).date(), os_type, os_version)][0]
            assert change == expected[(day, os_type, os_version)][0] - before


def test_os_version_trend_shows_the_migrations(history: Tuple[Path, Simulator, List[Snapshot]]) -> None:
    db, _, _ = history
    trend = dict(query(db, """
        select os_version, sum(images_change) from analytics.os_version_trend
        where os_version in ('Windows 10 Enterprise 64bit', 'Windows 11 Enterprise 64bit') group by 1"""))
    assert trend["Windows 10 Enterprise 64bit"] < 0 < trend["Windows 11 Enterprise 64bit"]


def test_image_changes_match_the_daily_differences(history: Tuple[Path, Simulator, List[Snapshot]]) -> None:
    db, sim, snapshots = history
    expected = set()
    for day, snapshot in enumerate(snapshots):
        at = sim.as_of(day)
        previous: Snapshot = snapshots[day - 1] if day else {}
        for project_id, images in snapshot.items():
            before = previous.get(project_id, {})
            for image_id in images.keys() - before.keys():
                expected.add((at, project_id, image_id, "added", None))
            for image_id in before.keys() - images.keys():
                expected.add((at, project_id, image_id, "removed", None))
            for image_id in images.keys() & before.keys():
                old, new = before[image_id], images[image_id]
                if old != new:
                    columns = ", ".join(sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k)))
                    expected.add((at, project_id, image_id, "changed", columns))
    rows = set(query(db, "select changed_at, project_id, image_id, change, changed_columns from analytics.image_changes"))
    assert rows == expected
    kinds = Counter(r[3] for r in rows)
    assert kinds["added"] > 360 and kinds["removed"] > 0 and kinds["changed"] > 0


def test_image_inventory_is_the_last_snapshot(history: Tuple[Path, Simulator, List[Snapshot]]) -> None:
    db, sim, snapshots = history
    failing = sim.projects[2].project_id
    last = snapshots[-1]
    rows = query(db, """
        select project_id, image_id, name, os_version, min_disk, first_seen_at, last_changed_at, last_seen_at, is_stale
        from analytics.image_inventory""")
    assert {(r[0], r[1]) for r in rows} == {(p, i) for p, images in last.items() for i in images}
    for project_id, image_id, name, os_version, min_disk, first_seen, last_changed, last_seen, stale in rows:
        image = last[project_id][image_id]
        assert (name, os_version, min_disk) == (image["name"], image["os_version"], image["min_disk"])
        first_day = next(d for d, s in enumerate(snapshots) if image_id in s[project_id])
        assert first_seen == sim.as_of(first_day)
        changed_day = next(d for d in range(DAYS - 1, -1, -1)
                           if d == 0 or snapshots[d - 1][project_id].get(image_id) != image)
        assert last_changed == sim.as_of(changed_day)
        assert stale == (project_id == failing)
        assert last_seen == sim.as_of(DAYS - 2 if project_id == failing else DAYS - 1)


def test_inventory_summary_counts(history: Tuple[Path, Simulator, List[Snapshot]]) -> None:
    db, sim, snapshots = history
    regions = {p.project_id: p.region for p in sim.projects}
    expected: Counter = Counter()
    for project_id, images in snapshots[-1].items():
        for image in images.values():
            expected[(regions[project_id], project_id, image["os_type"], image["image_type"], image["architecture"])] += 1
    rows = query(db, "select region, project_id, os_type, image_type, architecture, images from analytics.inventory_summary")
    assert {r[:5]: r[5] for r in rows} == dict(expected)


def test_new_api_columns_reach_the_models(sim: Simulator, db: Path) -> None:
    sim.add_project("cn-north-4", images=10)
    load(db, sim, day=0)
    sim.extra_fields = {"package_type": "ultimate"}
    load(db, sim, day=1)
    assert query(db, "select distinct package_type from analytics.image_inventory") == [("ultimate",)]
    assert query(db, "select distinct changed_columns from analytics.image_changes where change = 'changed'") == [
        ("package_type",)
    ]


def test_image_changes_compares_exactly_the_api_columns(sim: Simulator, db: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """The columns image_changes leaves out of `changed_columns` are the loader's (columns.ADDED_COLUMNS,
    as stg_images names them) and those stg_images derives: what is left is every API column,
    new ones and `raw_values` included."""
    sim.add_project("cn-north-4", images=3)
    load(db, sim, day=0)
    sim.extra_fields = {"package_type": "ultimate", "colour": "blue"}
    monkeypatch.setenv("SOURCES__WORKSPACE_IMAGES__MAX_NEW_FIELDS", "1")  # colour goes to raw_values
    load(db, sim, day=1)

    def columns(schema: str, table: str) -> Set[str]:
        return {name for (name,) in query(db, "select column_name from information_schema.columns "
                                              f"where table_schema = '{schema}' and table_name = '{table}'")}

    call = next(c for c in sqlglot.parse_one((SQL_DIR / "marts" / "image_changes.sql").read_text(), read="duckdb")
                .find_all(sqlglot.exp.Anonymous) if c.name == "changed_columns")
    excluded = {e.name for kw in call.expressions if isinstance(kw, sqlglot.exp.Kwarg)
                for e in kw.expression.expressions}
    loader = set(ADDED_COLUMNS) - {RAW_VALUES_COLUMN}
    raw_api = columns("workspace_images", "images") - loader - {"id", "_dlt_id", "_dlt_load_id",
                                                               "_dlt_valid_from", "_dlt_valid_to"}
    assert {"package_type", RAW_VALUES_COLUMN, "name", "os_version"} <= raw_api
    assert columns("analytics", "stg_images") - excluded == raw_api


def test_a_failing_data_test_keeps_the_previous_models(sim: Simulator, db: Path) -> None:
    from workspace_images.pipelines.models import DataTestFailed

    sim.add_project("cn-north-4", images=10)
    load(db, sim, day=0)
    before = query(db, "select * from analytics.image_inventory order by image_id")
    with duckdb.connect(str(db)) as con:  # a duplicate version breaks the staging key
        con.execute("insert into workspace_images.images select * from workspace_images.images limit 1")
    with pytest.raises(DataTestFailed) as failure:
        build_models(db)
    assert failure.value.model == "stg_images"
    assert failure.value.test == "unique key (project_id, image_id, valid_from)"
    assert failure.value.total == 1 and failure.value.rows[0][-1] == 2
    assert query(db, "select * from analytics.image_inventory order by image_id") == before


@pytest.mark.parametrize(
    "os_version, family, number",
    [
        ("EulerOS 2.5 64bit", "EulerOS", "2.5"),
        ("EulerOS 2.9 64bit", "EulerOS", "2.9"),
        ("Huawei Cloud EulerOS 2.0 64bit", "Huawei Cloud EulerOS", "2.0"),
        ("openEuler 22.03 64bit", "openEuler", "22.03"),
        ("Windows Server 2019 Datacenter 64bit", "Windows Server", "2019"),
        ("Windows Server 2016 Standard 64bit", "Windows Server", "2016"),
        ("Windows Server 2022 Datacenter 64bit", "Windows Server", "2022"),
        ("Windows 10 Enterprise 64bit", "Windows", "10"),
        ("Windows 11 Enterprise 64bit", "Windows", "11"),
        ("Windows 10 64bit", "Windows", "10"),
        ("Ubuntu 22.04 server 64bit", "Ubuntu", "22.04"),
        ("Ubuntu 20.04 server 64bit", "Ubuntu", "20.04"),
        ("Ubuntu 18.04 server 64bit", "Ubuntu", "18.04"),
        ("CentOS 7.6 64bit", "CentOS", "7.6"),
        ("UOS 20 SP1 64bit", "UOS", "20 SP1"),
        ("UnionTech OS Desktop 20 Professional 64bit", "UOS", "20"),
        ("Kylin V10 SP2 64bit", "Kylin", "V10 SP2"),
        ("Kylin V10 SP1 64bit", "Kylin", "V10 SP1"),
        ("NeoKylin 7.0 64bit", "Kylin", "7.0"),
        ("Debian 11.1.0 64bit", "Debian", "11.1.0"),
        ("Other 64bit", "Other", None),
        ("Other(64bit)", "Other", None),
        ("", None, None),
        (None, None, None),
    ],
)
def test_os_version_parsing(os_version: str, family: str, number: str) -> None:
    con = duckdb.connect()
    con.execute("create schema analytics")
    for script in macro_scripts():
        con.execute(script)
    assert con.execute(
        "select analytics.os_family(?), analytics.os_version_number(?)", [os_version, os_version]
    ).fetchone() == (family, number)


def models_in(folder: Path, **models: str) -> Dict[str, List[str]]:
    """Write each model's SQL to `folder`/<name>.sql; the dependencies of each, in build order."""
    folder.mkdir()
    for name, sql in models.items():
        (folder / f"{name}.sql").write_text(sql, encoding="utf-8")
    return {model.name: model.depends_on for model in load_models(folder)}


def test_a_model_depends_on_the_tables_it_reads_not_on_names_in_comments_or_strings(tmp_path: Path) -> None:
    built = models_in(
        tmp_path / "sql",
        base="-- feeds analytics.reads and analytics.mentions\nselect 1 as id",
        mentions="-- unlike analytics.reads, it reads no table\n"
                 "select 'from analytics.base' as note, analytics.os_family('Ubuntu 22.04') as os_family",
        reads="with base as (select * from analytics.base) select * from base cross join ANALYTICS.Mentions",
    )
    assert built == {"base": [], "mentions": [], "reads": ["base", "mentions"]}
    assert list(built)[-1] == "reads"  # built after the two it reads; the comment in base makes no cycle


def test_models_that_read_each_other_or_cannot_be_read_are_refused(tmp_path: Path) -> None:
    assert models_in(tmp_path / "own", mine="select * from analytics.users_own_table") == {
        "mine": ["users_own_table"]  # a table that is no model: built without waiting for it
    }
    with pytest.raises(ValueError, match=r"^models depend on each other in a cycle: \['(a|b)', '(a|b)', '(a|b)'\]$"):
        models_in(tmp_path / "cycle", a="select * from analytics.b", b="select 1 as id from analytics.a")
    with pytest.raises(ValueError, match=r"^model broken: its SQL cannot be read: .*\(line 1, column \d+\)$"):
        models_in(tmp_path / "broken", broken="select * from where")


def caught_in_a_broken_model(db: Path, tmp_path: Path, model: str, old: str, new: str, test: str) -> Any:
    """Build the models as shipped (their data tests pass), then with `old` replaced by `new` in
    `model` (a model that counts wrong): data test `test` of that model must fail the build."""
    from workspace_images.pipelines.models import SQL_DIR, DataTestFailed

    build_models(db)
    copy = tmp_path / "sql"
    shutil.copytree(SQL_DIR, copy)
    path = next(copy.rglob(f"{model}.sql"))
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new), encoding="utf-8")
    with pytest.raises(DataTestFailed) as failure:
        build_models(db, sql_dir=copy)
    assert (failure.value.model, failure.value.test) == (model, test)
    return failure.value


def test_a_version_that_ends_before_it_begins_is_caught(sim: Simulator, db: Path) -> None:
    from workspace_images.pipelines.models import DataTestFailed

    sim.add_project("cn-north-4", images=3)
    load(db, sim, day=0)
    with duckdb.connect(str(db)) as con:
        con.execute("update workspace_images.images set _dlt_valid_to = _dlt_valid_from - interval 1 hour "
                    "where id = (select min(id) from workspace_images.images)")
    with pytest.raises(DataTestFailed) as failure:
        build_models(db)
    assert (failure.value.model, failure.value.test, failure.value.total) == (
        "stg_images", "a version ends after it begins", 1)


def test_stale_counts_that_do_not_add_up_are_caught(sim: Simulator, db: Path, tmp_path: Path) -> None:
    sim.add_project("cn-north-4", images=3)
    load(db, sim, day=0, models=False)
    failure = caught_in_a_broken_model(db, tmp_path, "inventory_summary",
                                       "count(*) filter (where is_stale) as stale_images", "count(*) as stale_images",
                                       "stale counts add up to image_inventory per project")
    assert failure.total == 1


def test_projects_counted_for_a_version_no_image_has_are_caught(sim: Simulator, db: Path, tmp_path: Path) -> None:
    gone = sim.add_project("cn-north-4", images=4)
    load(db, sim, day=0, models=False)
    for image in sim.images(gone.project_id):
        sim.withdraw(gone.project_id, image["id"])
    load(db, sim, day=1, models=False)
    build_models(db)
    by_day = "select sum(images), max(projects), min(projects) from analytics.os_version_trend where day = ?"
    assert query(db, by_day, [sim.as_of(0).date()]) == [(4, 1, 1)]  # one project holds every version
    assert query(db, by_day, [sim.as_of(1).date()]) == [(0, 0, 0)]  # the day its images were withdrawn
    caught_in_a_broken_model(db, tmp_path, "os_version_trend", "count(*) filter (where images > 0) as projects",
                             "count(*) as projects",
                             "images are held by 1 to that many projects, and no image by no project")


def test_a_project_read_whole_after_its_latest_run_is_caught(sim: Simulator, db: Path, tmp_path: Path) -> None:
    sim.add_project("cn-north-4", images=3)
    load(db, sim, day=0, models=False)
    build_models(db)
    assert query(db, "select latest_status, last_ok_at = latest_as_of, is_stale, current_images "
                     "from analytics.project_status") == [("ok", True, False, 3)]
    failure = caught_in_a_broken_model(db, tmp_path, "project_status", "max(as_of) as last_ok_at",
                                       "max(as_of) + interval 1 day as last_ok_at",
                                       "last read whole no later than its latest run, and only ok runs vouch for it")
    assert failure.total == 1


def test_each_model_has_its_description_and_data_tests_beside_it() -> None:
    """dbt's layout: staging models read the raw source, marts read models; a TOML beside each."""
    from workspace_images.pipelines.model_files import SQL_DIR, load_source
    from workspace_images.pipelines.modelsql import tables_read

    source = load_source()
    layers = {}
    for model in load_models():
        path = next(SQL_DIR.rglob(f"{model.name}.sql"))
        layers[model.name] = path.parent.name
        assert path.with_suffix(".toml").is_file() and model.description and model.tests, model.name
        assert bool(tables_read(model.sql, source.name)) == (path.parent.name == "staging"), model.name
    assert layers == {"stg_images": "staging", "stg_project_runs": "staging", "project_status": "marts",
                      "image_inventory": "marts", "inventory_summary": "marts", "os_version_trend": "marts",
                      "image_changes": "marts"}


def model_folder(folder: Path, sql: str) -> Path:
    """A sql/ folder of one model, `mine`, over the shipped source declaration."""
    from workspace_images.pipelines.model_files import SQL_DIR

    (folder / "marts").mkdir(parents=True)
    shutil.copy(SQL_DIR / "sources.toml", folder / "sources.toml")
    (folder / "marts" / "mine.sql").write_text(sql, encoding="utf-8")
    return folder


def test_the_raw_dataset_is_named_in_the_syntax_tree_not_in_the_text(sim: Simulator, db: Path,
                                                                       tmp_path: Path) -> None:
    sim.add_project("cn-north-4", images=4)
    load(db, sim, day=0, models=False)
    folder = model_folder(tmp_path / "sql", "-- reads raw.images\n"
                                            "select 'from raw.images' as note, count(*) as images from raw.images")
    assert build_models(db, sql_dir=folder).rows == {"mine": 1}
    assert query(db, "select note, images from analytics.mine") == [("from raw.images", 4)]


def test_a_table_the_source_does_not_declare_or_a_column_a_macro_cannot_find_is_refused(
        sim: Simulator, db: Path, tmp_path: Path) -> None:
    from workspace_images.pipelines.modelsql import ModelSQLError

    sim.add_project("cn-north-4", images=2)
    load(db, sim, day=0, models=False)
    undeclared = r"^model mine: raw\.secrets is not a table of the source \(sql/sources\.toml\)$"
    with pytest.raises(ModelSQLError, match=undeclared):
        build_models(db, sql_dir=model_folder(tmp_path / "undeclared", "select * from raw.secrets"))
    with pytest.raises(ModelSQLError, match=r"^model mine: star: raw\.images has no column nmae$"):
        build_models(db, sql_dir=model_folder(tmp_path / "typo", "select star(raw.images, except => [nmae]) "
                                                                   "from raw.images"))
    assert query(db, "select count(*) from information_schema.tables where table_schema = 'analytics'") == [(0,)]
