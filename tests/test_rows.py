"""Odd records: one value the loader cannot type never fails a project, nothing the API sent is lost.

Unit tests of parse_timestamp, ColumnPlan and images_table, then the real pipeline
against the simulator with one odd record in one of two projects.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import shutil
import threading
from pathlib import Path
from typing import Any, Dict, List, Optional

import pyarrow as pa
import pytest
from dlt.common.normalizers.naming.duck_case import NamingConvention as DuckCaseNaming
from dlt.common.schema import Schema

import workspace_images.fetch as fetch_module
from workspace_images.simulator import Simulator
from workspace_images import rows
from workspace_images.columns import ColumnPlan
from workspace_images.hashing import row_hash
from workspace_images.rows import BadRecord, images_table
from workspace_images.values import fit_value, infer_type, parse_timestamp, to_int
from tests.helpers import current_ids, load, project_run, query

UTC = dt.timezone.utc
FETCHED = dt.datetime(2026, 1, 1, tzinfo=UTC)
BIG = 2**70
"""An integer beyond 64 bits: 1180591620717411303424."""


# parse_timestamp: strict about what it cannot place, lenient otherwise


@pytest.mark.parametrize(
    "value, expected",
    [
        ("0001-01-01T00:00:00+01:00", None),  # before year 1 once in UTC
        ("9999-12-31T23:30:00-01:00", None),  # after year 9999 once in UTC
        ("0001-01-01T00:00:00-01:00", dt.datetime(1, 1, 1, 1, tzinfo=UTC)),
        ("9999-12-31T23:59:59.999999Z", dt.datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)),
        ("2025-03-05T10:22:11+99:99", None),
        ("2025-03-05T10:22:11+24:00", None),
        ("2025-03-05T10:22:11+05:60", None),
        ("2025-03-05T10:22:11+2359", dt.datetime(2025, 3, 4, 10, 23, 11, tzinfo=UTC)),
        ("2025-03-05T10:22:11-23:59", dt.datetime(2025, 3, 6, 10, 21, 11, tzinfo=UTC)),
        (BIG, None),
        (10**400, None),  # too large even to divide into a float
        (1e30, None),
        (float("nan"), None),
        (-(10**13), None),  # milliseconds? no: seconds before year 1
        ({"at": "2025-03-05"}, None),
    ],
)
def test_parse_timestamp_refuses_what_it_cannot_place(value: Any, expected: Optional[dt.datetime]) -> None:
    assert parse_timestamp(value) == expected


# row hash: unchanged for ordinary records, surrogate-safe


def test_row_hash_of_an_ordinary_record_is_what_it_was() -> None:
    image = {"id": "d6b368bc", "name": "Windows10_企业版", "min_ram": 4096, "min_disk": 80,
             "created_at": "2025-03-05T10:22:11Z", "tags": ["a", {"b": 1.5}], "gpu": True, "size": None}
    # the value the loader computed before odd records were handled: existing histories keep their versions
    assert row_hash(image, "p1", "cn-north-4") == "39f1687a1c0a4d7b3aea674a627a81dd"


def test_row_hash_of_a_lone_surrogate_is_its_own() -> None:
    lone = row_hash({"id": "a", "name": "x\ud800y"}, "p", "r")
    replaced = row_hash({"id": "a", "name": "x\ufffdy"}, "p", "r")
    payload = json.dumps(["p", "r", {"id": "a", "name": "x\ud800y"}], ensure_ascii=False, sort_keys=True)
    assert lone == hashlib.blake2b(payload.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()
    assert lone != replaced
    assert row_hash({"id": "a", "name": "x\udfffy"}, "p", "r") not in (lone, replaced)


# column names


@pytest.mark.parametrize(
    "keys, expected",
    [
        (["size", "imageSize", "gpu"], {"size": "size", "imageSize": "image_size", "gpu": "gpu"}),
        (["osType"], {"osType": "os_type_h48a6d1af"}),  # the known os_type keeps its name
        (["minRam"], {"minRam": "min_ram_hb55d0b41"}),
        ([""], {"": "empty_hcae66941"}),
        (["region", "raw_values", "_dlt_id", "_row_hash"],
         {"region": "api_region", "raw_values": "api_raw_values", "_dlt_id": "api_dlt_id", "_row_hash": "api_row_hash"}),
        (["Region"], {"Region": "region_hb3013a3c"}),  # normalizes onto an added column
        (["-dlt_id"], {"-dlt_id": "api_dlt_id"}),  # normalizes to `_dlt_id`, dlt's prefix
        (["-dlt_id", "_dlt_id"], {"-dlt_id": "api_dlt_id_h259dd5ea", "_dlt_id": "api_dlt_id"}),
        # the clean identifier wins its name, whichever key comes first
        (["fooBar", "foo_bar"], {"fooBar": "foo_bar_h94dc130b", "foo_bar": "foo_bar"}),
        (["foo_bar", "fooBar"], {"foo_bar": "foo_bar", "fooBar": "foo_bar_h94dc130b"}),
        (["api_region", "region"], {"api_region": "api_region", "region": "api_region_h86307fed"}),
        # names snake_case reduces to `x`: the first in key order keeps it
        (["名前", "価格"], {"名前": "x_h8dc4fae8", "価格": "x"}),
        (["x\ud800y"], {"x\ud800y": "x_y"}),
    ],
)
def test_column_names(keys: List[str], expected: Dict[str, str]) -> None:
    assert ColumnPlan().columns_for(keys) == expected


def test_a_key_keeps_its_column_in_every_project_of_a_run() -> None:
    plan = ColumnPlan()
    assert plan.columns_for(["fooBar"]) == {"fooBar": "foo_bar"}
    # a later project brings the clean key: the name is taken, the earlier decision holds
    assert plan.columns_for(["foo_bar", "fooBar"]) == {"foo_bar": "foo_bar_hc89043ff", "fooBar": "foo_bar"}
    assert plan.held_names() == {"fooBar": "foo_bar", "foo_bar": "foo_bar_hc89043ff"}


def test_names_held_from_an_earlier_run_are_kept() -> None:
    held = {"fooBar": "foo_bar", "bad": "region", "unnormalized": "Not Normal", "os_type": "os_type"}
    plan = ColumnPlan(names=held)
    assert plan.columns_for(["foo_bar", "fooBar", "bad", "unnormalized"]) == {
        "foo_bar": "foo_bar_hc89043ff", "fooBar": "foo_bar", "bad": "bad", "unnormalized": "unnormalized",
    }


def test_keys_with_lone_surrogates_are_not_held_in_state() -> None:
    plan = ColumnPlan()
    plan.columns_for(["x\ud800y", "size"])
    assert plan.held_names() == {"size": "size"}


def test_columns_follow_the_schema_naming_convention() -> None:
    plan = ColumnPlan(naming=DuckCaseNaming())
    assert plan.columns_for(["osType", "Region", "region", ""]) == {
        "osType": "osType", "Region": "Region", "region": "api_region", "": "empty_hcae66941",
    }


def test_the_same_key_gets_the_same_column_from_many_threads() -> None:
    plan = ColumnPlan()
    keys = ["fooBar", "foo_bar", "FOO_BAR", "osType", "", "size", "Size"]
    tables: List[pa.Table] = []
    lock = threading.Lock()

    def project(n: int) -> None:
        image = {"id": str(n), **{k: n for k in keys[n % len(keys):] + keys[: n % len(keys)]}}
        table = images_table([image], f"p{n}", "cn-north-4", FETCHED, plan=plan)
        with lock:
            tables.append(table)

    threads = [threading.Thread(target=project, args=(n,)) for n in range(24)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    names = plan.columns_for(keys)
    assert len(set(names.values())) == len(keys)
    for table in tables:
        row = table.to_pylist()[0]
        assert [row[names[k]] for k in keys] == [int(row["id"])] * len(keys)


# column types


@pytest.mark.parametrize(
    "values, expected",
    [
        ([None, None], None),
        ([True, None, False], "bool"),
        ([1, 2**63 - 1, -(2**63)], "bigint"),
        ([1, 2.5], "double"),
        ([1.0, 2.0], "double"),
        ([1, BIG], "text"),
        ([BIG, 2.5], "text"),
        ([1, True], "text"),
        ([1, "a"], "text"),
        ([{"a": 1}], "text"),
        ([[1, 2]], "text"),
    ],
)
def test_infer_type(values: List[Any], expected: Optional[str]) -> None:
    assert infer_type(values) == expected


@pytest.mark.parametrize(
    "value, data_type, expected",
    [
        (None, "bigint", (None, False)),
        (5, "bigint", (5, False)),
        (5.0, "bigint", (5, False)),
        (5.5, "bigint", (None, True)),
        (2**63, "bigint", (None, True)),
        (1e30, "bigint", (None, True)),
        ("5", "bigint", (None, True)),
        (True, "bigint", (None, True)),
        (5, "double", (5.0, False)),
        (2**53 + 1, "double", (None, True)),  # no double holds it exactly
        (True, "double", (None, True)),
        ("2.5", "double", (None, True)),
        (True, "bool", (True, False)),
        (1, "bool", (None, True)),
        (5, "text", ("5", False)),
        (True, "text", ("True", False)),
        ({"b": [1, "名"], "a": None}, "text", ('{"a": null, "b": [1, "名"]}', False)),
        ("x\ud800y", "text", ("x\ufffdy", True)),
        (["\udc00"], "text", ('["\ufffd"]', True)),
        ("2025-01-01", "timestamp", (None, True)),  # a held type this loader does not write
    ],
)
def test_fit_value(value: Any, data_type: str, expected: tuple) -> None:
    assert fit_value(value, data_type) == expected


def test_the_first_project_decides_a_new_fields_type_for_the_run() -> None:
    plan = ColumnPlan()
    first = images_table([{"id": "a", "size": 5}, {"id": "b", "size": None}], "p1", "r", FETCHED, plan=plan)
    second = images_table([{"id": "c", "size": "big"}, {"id": "d", "size": True}, {"id": "e", "size": BIG},
                           {"id": "f", "size": 7}], "p2", "r", FETCHED, plan=plan)
    assert first.schema.field("size").type == second.schema.field("size").type == pa.int64()
    assert first.column("size").to_pylist() == [5, None]
    assert first.column("raw_values").to_pylist() == [None, None]
    assert second.column("size").to_pylist() == [None, None, None, 7]
    assert second.column("raw_values").to_pylist() == [
        '{"size": "big"}', '{"size": true}', '{"size": 1180591620717411303424}', None,
    ]
    assert plan.types() == {"size": "bigint"}


def test_a_field_null_everywhere_waits_for_its_type() -> None:
    plan = ColumnPlan()
    first = images_table([{"id": "a", "size": None}], "p1", "r", FETCHED, plan=plan)
    assert "size" not in first.column_names
    assert plan.types() == {}
    second = images_table([{"id": "b", "size": 2.5}], "p2", "r", FETCHED, plan=plan)
    assert second.column("size").to_pylist() == [2.5]
    assert plan.types() == {"size": "double"}


def test_types_are_seeded_from_the_schema() -> None:
    schema = Schema("workspace_images")
    schema.update_table({
        "name": "images",
        "columns": {
            "id": {"name": "id", "data_type": "text"},
            "min_ram": {"name": "min_ram", "data_type": "bigint"},
            "size": {"name": "size", "data_type": "bigint"},
            "score": {"name": "score", "data_type": "double"},
            "gpu": {"name": "gpu", "data_type": "bool"},
            "note": {"name": "note", "data_type": "text"},
            "seen": {"name": "seen", "data_type": "timestamp"},
            "pending": {"name": "pending", "nullable": True},  # no type yet
            "_dlt_valid_from": {"name": "_dlt_valid_from", "data_type": "timestamp"},
        },
    })
    plan = ColumnPlan.from_schema(schema, {"noteText": "note"})
    assert plan.types() == {"size": "bigint", "score": "double", "gpu": "bool", "note": "text", "seen": "timestamp"}
    images = [
        {"id": "a", "size": "12 GB", "score": 3, "gpu": 1, "noteText": 42, "seen": "2025-01-01", "pending": 1},
        {"id": "b", "size": 12, "score": 2.5, "gpu": False, "noteText": "n", "seen": None, "pending": None},
    ]
    table = images_table(images, "p", "r", FETCHED, plan=plan)
    rows = table.to_pylist()
    assert [(r["size"], r["score"], r["gpu"], r["note"], r["pending"]) for r in rows] == [
        (None, 3.0, None, "42", 1), (12, 2.5, False, "n", None),
    ]
    assert "seen" not in table.column_names  # a type this loader does not write: the values go raw
    assert [r["raw_values"] for r in rows] == ['{"gpu": 1, "seen": "2025-01-01", "size": "12 GB"}', None]
    assert table.schema.field("pending").type == pa.int64()


# images_table: known fields


def test_known_fields_that_cannot_be_typed_are_null_and_kept_raw() -> None:
    images = [
        {"id": "a", "min_ram": 1e30, "min_disk": BIG, "created_at": "0001-01-01T00:00:00+01:00"},
        {"id": "b", "min_ram": True, "min_disk": "40", "created_at": "2025-03-05T10:22:11+99:99"},
        {"id": "c", "min_ram": "9007199254740993", "min_disk": 50.0, "created_at": 1e30},
        {"id": "d", "min_ram": "", "min_disk": 2.5, "created_at": "2025-03-05T18:22:11+08:00"},
        {"id": "e", "min_ram": None, "min_disk": [1], "created_at": None},
    ]
    table = images_table(images, "p", "r", FETCHED)
    assert table.column("min_ram").to_pylist() == [None, None, 9007199254740993, None, None]
    assert table.column("min_disk").to_pylist() == [None, 40, 50, None, None]
    assert table.column("created_at").to_pylist() == [
        None, None, None, dt.datetime(2025, 3, 5, 10, 22, 11, tzinfo=UTC), None,
    ]
    assert table.column("raw_values").to_pylist() == [
        '{"created_at": "0001-01-01T00:00:00+01:00", "min_disk": 1180591620717411303424, "min_ram": 1e+30}',
        '{"created_at": "2025-03-05T10:22:11+99:99", "min_ram": true}',
        '{"created_at": 1e+30}',
        '{"min_disk": 2.5, "min_ram": ""}',
        '{"min_disk": [1]}',
    ]


def test_lone_surrogates_load_as_replacement_characters_and_stay_raw() -> None:
    images = [{"id": "a", "name": "Win\ud800dows", "label": "\udfff", "tags": {"k": ["\ud800"]}, "odd\udc00key": 1},
              {"id": "b", "name": "ok", "label": "fine", "tags": {"k": []}}]
    table = images_table(images, "p", "r", FETCHED)
    rows = table.to_pylist()
    assert [(r["name"], r["label"], r["tags"], r["odd_key"]) for r in rows] == [
        ("Win\ufffddows", "\ufffd", '{"k": ["\ufffd"]}', 1), ("ok", "fine", '{"k": []}', None),
    ]
    assert rows[0]["raw_values"] == '{"label": "\\udfff", "name": "Win\\ud800dows", "tags": {"k": ["\\ud800"]}}'
    assert json.loads(rows[0]["raw_values"]) == {"label": "\udfff", "name": "Win\ud800dows", "tags": {"k": ["\ud800"]}}
    assert rows[1]["raw_values"] is None
    assert [r["_row_hash"] for r in rows] == [row_hash(i, "p", "r") for i in images]
    table.to_pylist()  # every string in the table is valid UTF-8
    pa.ipc.new_stream(pa.BufferOutputStream(), table.schema).write_table(table)


def test_colliding_and_empty_keys_are_all_kept() -> None:
    images = [{"id": "a", "os_type": "Linux", "osType": "linux", "": "blank", "OS_TYPE": "LINUX"}]
    row = images_table(images, "p", "r", FETCHED).to_pylist()[0]
    assert {k: row[k] for k in ("os_type", "os_type_h48a6d1af", "empty_hcae66941")} == {
        "os_type": "Linux", "os_type_h48a6d1af": "linux", "empty_hcae66941": "blank",
    }
    assert row[ColumnPlan().columns_for(["OS_TYPE"])["OS_TYPE"]] == "LINUX"
    assert row["raw_values"] is None


def test_one_warning_per_project_and_field(caplog: pytest.LogCaptureFixture) -> None:
    images = [{"id": str(n), "min_ram": BIG + n, "created_at": "year zero", "name": "\ud800"} for n in range(50)]
    with caplog.at_level(logging.WARNING, logger="workspace_images"):
        images_table(images, "p1", "cn-north-4", FETCHED)
    assert [r.getMessage() for r in caplog.records] == [
        "project cn-north-4:p1: 'name' of 50 image(s) is text with a lone surrogate, e.g. '\\ud800'; "
        "loaded with U+FFFD in its place, the value as sent kept in raw_values",
        "project cn-north-4:p1: 'min_ram' of 50 image(s) is not an integer within int64, e.g. "
        "1180591620717411303424; loaded as NULL, the value as sent kept in raw_values",
        "project cn-north-4:p1: 'created_at' of 50 image(s) is not a timestamp within years 1 to 9999, "
        "e.g. 'year zero'; loaded as NULL, the value as sent kept in raw_values",
    ]


def test_ordinary_records_have_no_raw_values() -> None:
    images = [{"id": "a", "name": "n", "min_ram": "2048", "min_disk": 40.0, "created_at": "2025-01-01", "gpu": True}]
    table = images_table(images, "p", "r", FETCHED)
    assert table.column("raw_values").to_pylist() == [None]
    assert table.column_names[-6:] == ["account", "project_id", "region", "fetched_at", "_row_hash", "raw_values"]


def test_a_record_that_cannot_be_built_raises_bad_record() -> None:
    with pytest.raises(BadRecord) as raised:
        images_table([{"id": "a"}, ["not", "an", "object"]], "p1", "cn-north-4", FETCHED)  # type: ignore[list-item]
    assert str(raised.value) == (
        "cannot build the rows of project cn-north-4:p1: AttributeError: 'list' object has no attribute 'get'"
    )


# the real pipeline, with one odd record in one of two projects


def images_row(db: Path, image_id: str, columns: List[str]) -> Dict[str, Any]:
    select = ", ".join(f'"{c}"' for c in columns)
    rows = query(db, f"select {select} from workspace_images.images where id = ? and _dlt_valid_to is null",
                 [image_id])
    assert len(rows) == 1, rows
    return dict(zip(columns, rows[0]))


ODD_RECORDS = {
    "created_at before year 1": (
        {"created_at": "0001-01-01T00:00:00+01:00"},
        {"created_at": None},
        {"created_at": "0001-01-01T00:00:00+01:00"},
    ),
    "created_at offset out of range": (
        {"created_at": "2025-03-05T10:22:11+99:99"},
        {"created_at": None},
        {"created_at": "2025-03-05T10:22:11+99:99"},
    ),
    "min_ram 1e30": ({"min_ram": 1e30}, {"min_ram": None}, {"min_ram": 1e30}),
    "min_ram beyond 64 bits": ({"min_ram": BIG}, {"min_ram": None}, {"min_ram": BIG}),
    "new field beyond 64 bits": ({"size": BIG}, {"size": "1180591620717411303424"}, None),
    "new field colliding with a known one": (
        {"os_type": "Linux", "osType": "linux"}, {"os_type": "Linux", "os_type_h48a6d1af": "linux"}, None,
    ),
    "empty field name": ({"": "blank"}, {"empty_hcae66941": "blank"}, None),
    "lone surrogate": ({"name": "Ubuntu \ud800"}, {"name": "Ubuntu \ufffd"}, {"name": "Ubuntu \ud800"}),
}


@pytest.mark.parametrize("fields, loaded, raw", ODD_RECORDS.values(), ids=list(ODD_RECORDS))
def test_an_odd_record_builds_its_row(
    fields: Dict[str, Any], loaded: Dict[str, Any], raw: Optional[Dict[str, Any]]
) -> None:
    """Each odd record, by the row builder: its values as loaded and `raw_values`; an ordinary
    record beside it keeps none."""
    images = [{"id": "plain", "name": "plain"}, {"id": "odd-image", "name": "odd", **fields}]
    plain, row = images_table(images, "p", "r", FETCHED).to_pylist()
    assert {k: row[k] for k in loaded} == loaded
    assert (None if row["raw_values"] is None else json.loads(row["raw_values"])) == raw
    assert plain["raw_values"] is None


END_TO_END = ["min_ram 1e30", "new field colliding with a known one", "lone surrogate"]
"""One odd record of each kind through the real pipeline: a known field kept raw, a new field's
column, text that loads with U+FFFD."""


@pytest.mark.parametrize("case", END_TO_END)
def test_an_odd_record_loads_with_its_project(sim: Simulator, db: Path, case: str) -> None:
    fields, loaded, raw = ODD_RECORDS[case]
    healthy = sim.add_project("cn-north-4", images=40)
    odd = sim.add_project("cn-east-3", images=30)
    sim.publish(odd.project_id, {"id": "odd-image", "name": "odd", **fields})
    result = load(db, sim)
    assert result.exit_code == 0
    assert [p["status"] for p in result.projects] == ["ok", "ok"]
    assert current_ids(db, healthy.project_id) == sorted(i["id"] for i in sim.images(healthy.project_id))
    assert current_ids(db, odd.project_id) == sorted(i["id"] for i in sim.images(odd.project_id))
    row = images_row(db, "odd-image", [*loaded, "raw_values"])
    assert {k: row[k] for k in loaded} == loaded
    assert (None if row["raw_values"] is None else json.loads(row["raw_values"])) == raw
    assert query(db, "select count(*) from workspace_images.images where raw_values is not null") == [
        (0 if raw is None else 1,)
    ]
    versions = query(db, "select count(*) from workspace_images.images")
    rerun = load(db, sim)
    assert (rerun.exit_code, rerun.new_versions, rerun.retired) == (0, 0, 0)
    assert query(db, "select count(*) from workspace_images.images") == versions


@pytest.mark.parametrize("fresh_pipelines_dir", [False, True], ids=["same-pipelines-dir", "schema-from-destination"])
def test_a_field_bigint_yesterday_and_text_today(sim: Simulator, db: Path, fresh_pipelines_dir: bool) -> None:
    project = sim.add_project("cn-north-4", images=5)
    first, second = (i["id"] for i in sim.images(project.project_id)[:2])
    sim.modify(project.project_id, first, size=5)
    sim.modify(project.project_id, second, size=6)
    load(db, sim, day=0)
    sim.modify(project.project_id, first, size="5 GB")
    if fresh_pipelines_dir:  # dlt restores the schema (and the held names) from the DuckDB file
        shutil.rmtree(db.parent / "pipelines")
    result = load(db, sim, day=1)
    assert (result.exit_code, result.new_versions, result.retired) == (0, 1, 1)
    assert images_row(db, first, ["size", "raw_values"]) == {"size": None, "raw_values": '{"size": "5 GB"}'}
    assert images_row(db, second, ["size", "raw_values"]) == {"size": 6, "raw_values": None}
    types = dict(query(db, "select column_name, data_type from information_schema.columns "
                           "where table_schema = 'workspace_images' and table_name = 'images'"))
    assert (types["size"], types["raw_values"]) == ("BIGINT", "VARCHAR")


def test_projects_that_disagree_on_a_new_fields_type_both_load(sim: Simulator, db: Path) -> None:
    ints = sim.add_project("cn-north-4", images=3)
    text = sim.add_project("cn-east-3", images=3)
    sim.publish(ints.project_id, {"id": "int-size", "size": 5})
    sim.publish(text.project_id, {"id": "text-size", "size": "big"})
    result = load(db, sim, concurrency=2)
    assert result.exit_code == 0
    types = dict(query(db, "select column_name, data_type from information_schema.columns "
                           "where table_schema = 'workspace_images' and table_name = 'images'"))
    rows = {i: images_row(db, i, ["size", "raw_values"]) for i in ("int-size", "text-size")}
    # whichever project came first decided; the other fits in or goes raw
    if types["size"] == "BIGINT":
        assert rows == {"int-size": {"size": 5, "raw_values": None},
                        "text-size": {"size": None, "raw_values": '{"size": "big"}'}}
    else:
        assert (types["size"], rows) == ("VARCHAR", {"int-size": {"size": "5", "raw_values": None},
                                                     "text-size": {"size": "big", "raw_values": None}})


def test_column_names_hold_across_runs(sim: Simulator, db: Path) -> None:
    project = sim.add_project("cn-north-4", images=3)
    first, second = (i["id"] for i in sim.images(project.project_id)[:2])
    sim.modify(project.project_id, first, fooBar="camel", osType="linux", **{"": "blank"})
    load(db, sim, day=0)
    assert images_row(db, first, ["foo_bar", "os_type_h48a6d1af", "empty_hcae66941"]) == {
        "foo_bar": "camel", "os_type_h48a6d1af": "linux", "empty_hcae66941": "blank",
    }
    # a later run brings the clean key `foo_bar`: `foo_bar` stays fooBar's column
    sim.modify(project.project_id, second, foo_bar="snake")
    result = load(db, sim, day=1)
    assert (result.exit_code, result.new_versions) == (0, 1)
    assert images_row(db, second, ["foo_bar", "foo_bar_hc89043ff"]) == {"foo_bar": None, "foo_bar_hc89043ff": "snake"}
    assert images_row(db, first, ["foo_bar"]) == {"foo_bar": "camel"}


def test_a_project_whose_rows_cannot_be_built_fails_alone(
    sim: Simulator, db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    healthy = sim.add_project("cn-north-4", images=20)
    broken = sim.add_project("cn-east-3", images=20)
    load(db, sim, day=0)
    before = current_ids(db, broken.project_id)
    sim.withdraw(broken.project_id, before[0])  # something it could wrongly retire
    real = fetch_module.images_table

    def images_table_with_a_record_nothing_foresaw(images: list, project_id: str, *args: Any, **kwargs: Any) -> Any:
        # no real record reaches this any more; an image that is not an object stands for the unforeseen
        extra = [["not an object"]] if project_id == broken.project_id else []
        return real(images + extra, project_id, *args, **kwargs)

    monkeypatch.setattr(fetch_module, "images_table", images_table_with_a_record_nothing_foresaw)
    result = load(db, sim, day=1)
    assert result.exit_code == 1
    row = project_run(db, result.run_id, broken.project_id)
    assert (row["status"], row["images"], row["error_code"], row["error_msg"]) == (
        "failed", 0, "WI.BAD_RECORD",
        f"cannot build the rows of project cn-east-3:{broken.project_id}: "
        "AttributeError: 'list' object has no attribute 'get'",
    )
    assert current_ids(db, broken.project_id) == before
    assert project_run(db, result.run_id, healthy.project_id)["status"] == "ok"
    assert current_ids(db, healthy.project_id) == sorted(i["id"] for i in sim.images(healthy.project_id))


class ArrowPath:
    """What `images_table` handed `plain_row_hashes` (the hash built by Arrow for a whole project): the fields
    whose columns Arrow built in one call, and whether their hashes came back; seen through the public
    name `rows` calls, so the tests watch the path the loader takes rather than rebuilding it."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.fields: List[str] = []
        self.hashed = False
        real = rows.plain_row_hashes

        def watched(keys: Any, sent: Any, project_id: str, region: str) -> Optional[List[str]]:
            hashes = real(keys, sent, project_id, region)
            self.fields, self.hashed = sorted(sent), hashes is not None
            return hashes

        monkeypatch.setattr(rows, "plain_row_hashes", watched)

    def column(self, field: str, values: List[Any]) -> tuple:
        """The column `images_table` builds of `values` of `field` (one image each), and whether Arrow built it."""
        self.fields = []
        table = images_table([{field: value} for value in values], "p1", "cn-north-4", FETCHED)
        return table.column(field).to_pylist(), field in self.fields


def test_the_fast_paths_give_what_the_value_by_value_rules_give(monkeypatch: pytest.MonkeyPatch) -> None:
    """A column of usual values is built by Arrow in one call; anything else takes the rules."""
    arrow = ArrowPath(monkeypatch)
    odd: List[Any]
    strings = ["a", None, "企业版", "", "Büro ½"]
    assert arrow.column("name", strings) == ([fit_value(v, "text")[0] for v in strings], True)
    for odd in (["\ud800"], [1]):
        assert arrow.column("name", odd) == ([fit_value(v, "text")[0] for v in odd], False), odd
    ints = [0, None, 2**63 - 1, -(2**63)]
    assert arrow.column("min_ram", ints) == ([to_int(v) for v in ints], True)
    for odd in ([True], [1.0], ["4"], [2**63]):
        assert arrow.column("min_ram", odd) == ([to_int(v) for v in odd], False), odd
    stamps = ["2025-08-15T11:39:16Z", "2025-08-15 11:39:16", "2025-08-15T11:39:16.123456Z", "0001-01-01T00:00:00Z", None]
    assert arrow.column("created_at", stamps) == ([parse_timestamp(v) for v in stamps], True)
    for odd in (["0000-01-01T00:00:00Z"], [1700000000], ["2025-08-15T11:39:16+08:00"],
                ["2025-08-15T11:39:16.1234567Z"], ["2025-08-15"], ["2025-02-30T00:00:00Z"]):
        assert arrow.column("created_at", odd) == ([parse_timestamp(v) for v in odd], False), odd


PLAIN = {"id": "i1", "name": "Windows10_企业版 😀", "image_type": "gold", "os_type": "Windows", "os_version": "",
         "disk_format": "zvhd2", "product_code": None, "architecture": "x86", "min_ram": 0, "min_disk": -40,
         "created_at": "2025-08-15T11:39:16Z"}


@pytest.mark.parametrize("images, fast", [
    ([PLAIN, {**PLAIN, "id": "i2", "name": None, "min_ram": None, "created_at": None}], True),
    ([{**PLAIN, "id": f"i{n}", "min_disk": 2**63 - 1 - n} for n in range(3)], True),
    ([{"id": "only"}, {"id": "fields"}], True),
    ([{**PLAIN, "name": 'say "hi"'}], False),
    ([{**PLAIN, "name": "back\\slash"}], False),
    ([{**PLAIN, "name": "tab\there"}], False),
    ([{**PLAIN, "name": "nul\x00"}], False),
    ([PLAIN, {k: v for k, v in PLAIN.items() if k != "name"}], False),
    ([{**PLAIN, "gpu": True}], False),
    ([{**PLAIN, "min_ram": 1.0}], False),
    ([{**PLAIN, "min_ram": True}], False),
    ([{**PLAIN, "created_at": 1700000000}], False),
    ([{**PLAIN, "created_at": "2025-02-30T00:00:00Z"}], False),
    ([{**PLAIN, "name": "x\ud800"}], False),
])
def test_row_hashes_built_by_arrow_are_row_hash(images: list, fast: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """Whole projects of usual records are hashed by Arrow; the hashes are row_hash's, to the bit."""
    arrow = ArrowPath(monkeypatch)
    table = images_table(images, "p1", "cn-north-4", FETCHED)
    assert table.column("_row_hash").to_pylist() == [row_hash(i, "p1", "cn-north-4") for i in images]
    assert arrow.hashed == fast
