"""The real pipeline over real HTTP against the simulator, into real DuckDB files."""

from __future__ import annotations

from pathlib import Path

import pytest

from workspace_images.simulator import Simulator
from tests.helpers import current_ids, load, project_run, query


def ids(images: list) -> list:
    return sorted(i["id"] for i in images)


# a full page is followed by one more request: total_count alone is not trusted to end paging
@pytest.mark.parametrize("size, pages", [(0, 1), (1, 1), (100, 2), (101, 2), (200, 3), (523, 6)])
def test_project_sizes_load_completely(sim: Simulator, db: Path, size: int, pages: int) -> None:
    project = sim.add_project("cn-north-4", images=size)
    result = load(db, sim)
    assert result.exit_code == 0
    assert current_ids(db, project.project_id) == ids(sim.images(project.project_id))
    assert len(current_ids(db, project.project_id)) == size
    row = project_run(db, result.run_id, project.project_id)
    assert (row["status"], row["images"], row["total_count"], row["pages"]) == ("ok", size, size, pages)
    assert row["requests"] == pages and row["retries"] == 0


def test_many_projects_in_one_run(sim: Simulator, db: Path) -> None:
    projects = [sim.add_project(region, images=30 + i) for i, region in
                enumerate(["cn-north-4", "cn-east-3", "ap-southeast-1", "la-south-2"] * 6)]
    result = load(db, sim, concurrency=8)
    assert result.exit_code == 0
    assert len(result.projects) == 24
    for project in projects:
        assert current_ids(db, project.project_id) == ids(sim.images(project.project_id))
    regions = dict(query(db, "select project_id, any_value(region) from workspace_images.images group by 1"))
    assert regions == {p.project_id: p.region for p in projects}


def test_every_field_is_kept_and_typed(sim: Simulator, db: Path) -> None:
    project = sim.add_project("cn-north-4", images=40)
    load(db, sim)
    served = {i["id"]: i for i in sim.images(project.project_id)}
    rows = query(
        db,
        "select id, name, image_type, os_type, os_version, disk_format, product_code, architecture, "
        "min_ram, min_disk, created_at from workspace_images.images",
    )
    assert len(rows) == 40
    for row in rows:
        image = served[row[0]]
        assert list(row[1:10]) == [image[k] for k in (
            "name", "image_type", "os_type", "os_version", "disk_format", "product_code",
            "architecture", "min_ram", "min_disk")]
        assert row[10] is not None and row[10].tzinfo is not None
        assert row[10].strftime("%Y-%m-%d %H:%M:%S") == image["created_at"].replace("T", " ")[:19]
    types = dict(query(db, "select column_name, data_type from information_schema.columns "
                           "where table_name = 'images'"))
    assert types["min_ram"] == types["min_disk"] == "BIGINT"
    assert types["created_at"] == "TIMESTAMP WITH TIME ZONE"


def test_non_ascii_names_survive(sim: Simulator, db: Path) -> None:
    project = sim.add_project("cn-north-4", images=5)
    names = ["Windows10_企业版_办公", "UOS_统信桌面 ✓", "Ubuntu_Développeur", "Kylin_麒麟_研发", "emoji 🚀 image"]
    for image, name in zip(sim.images(project.project_id), names):
        sim.modify(project.project_id, image["id"], name=name)
    load(db, sim)
    assert sorted(r[0] for r in query(db, "select name from workspace_images.images")) == sorted(names)


def test_filters_are_sent_to_the_api(sim: Simulator, db: Path) -> None:
    project = sim.add_project("cn-north-4", images=150)
    result = load(db, sim, filters={"os_type": "Windows", "image_type": "gold"})
    expected = [i for i in sim.images(project.project_id) if i["os_type"] == "Windows" and i["image_type"] == "gold"]
    assert 0 < len(expected) < 150
    assert current_ids(db, project.project_id) == ids(expected)
    sent = [r.query for r in sim.requests if r.project_id == project.project_id]
    assert {(q.get("os_type"), q.get("image_type"), q.get("limit")) for q in sent} == {("Windows", "gold", "100")}
    assert project_run(db, result.run_id, project.project_id)["total_count"] == len(expected)


def test_rerun_with_unchanged_data_adds_no_row(sim: Simulator, db: Path) -> None:
    sim.add_project("cn-north-4", images=120)
    sim.add_project("ap-southeast-1", images=7)
    load(db, sim, day=0)
    before = query(db, "select * from workspace_images.images order by id")
    result = load(db, sim, day=0)
    assert (result.new_versions, result.retired) == (0, 0)
    assert query(db, "select * from workspace_images.images order by id") == before


def test_a_day_of_changes_gives_exactly_those_versions(db: Path) -> None:
    with Simulator(projects=4, images=200, seed=5, token="sim-token-5f3c1a9e-do-not-leak") as sim:
        load(db, sim, day=0)
        day0 = {p.project_id: {i["id"]: i for i in sim.images(p.project_id)} for p in sim.projects}
        sim.set_day(1)
        day1 = {p.project_id: {i["id"]: i for i in sim.images(p.project_id)} for p in sim.projects}
        result = load(db, sim, day=1)
    added = {(p, i) for p in day1 for i in day1[p].keys() - day0[p].keys()}
    withdrawn = {(p, i) for p in day0 for i in day0[p].keys() - day1[p].keys()}
    changed = {(p, i) for p in day1 for i in day1[p].keys() & day0[p].keys() if day1[p][i] != day0[p][i]}
    assert added and withdrawn and changed, "the simulator must publish, withdraw and change images each day"
    as_of = sim.as_of(1)
    new_rows = set(query(db, "select project_id, id from workspace_images.images where _dlt_valid_from = ?", [as_of]))
    retired = set(query(db, "select project_id, id from workspace_images.images where _dlt_valid_to = ?", [as_of]))
    assert new_rows == added | changed
    assert retired == withdrawn | changed
    assert (result.new_versions, result.retired) == (len(added | changed), len(withdrawn | changed))
    current = set(query(db, "select project_id, id from workspace_images.images where _dlt_valid_to is null"))
    assert current == {(p, i) for p in day1 for i in day1[p]}
    # a changed image's new version carries the new values
    project_id, image_id = sorted(changed)[0]
    name = query(db, "select name from workspace_images.images where id = ? and _dlt_valid_to is null", [image_id])
    assert name == [(day1[project_id][image_id]["name"],)]


@pytest.mark.parametrize(
    "kind, kwargs, http_status, error_code, error_msg",
    [
        ("status", {"status": 403, "error_code": "APIG.0302", "error_msg": "Incorrect IAM authentication information: not authorized"}, 403, "APIG.0302",
         "Incorrect IAM authentication information: not authorized"),
        ("status", {"status": 500, "error_code": "WKS.0500", "error_msg": "Internal service error."}, 500, "WKS.0500",
         "Internal service error."),
        ("malformed", {}, 200, "WI.MALFORMED_RESPONSE",  # the seeded first page, cut in half
         "malformed response: body is not JSON (JSONDecodeError: Unterminated string starting at: line 1 column 15258 (char 15257))"),
        ("stuck", {}, 200, "WI.PAGING_STUCK",
         "paging does not advance: the page at offset 100 repeats images already read (total_count 257)"),
    ],
)
def test_a_failing_project_is_recorded_and_retires_nothing(
    sim: Simulator, db: Path, kind: str, kwargs: dict, http_status: int, error_code: str, error_msg: str
) -> None:
    healthy = sim.add_project("cn-north-4", images=150)
    broken = sim.add_project("cn-east-3", images=250)
    load(db, sim, day=0)
    before = current_ids(db, broken.project_id)
    sim.set_day(3)
    assert ids(sim.images(broken.project_id)) != before  # there is something it could wrongly retire
    sim.fail_project(broken.project_id, kind, **kwargs)
    result = load(db, sim, day=3)
    assert result.exit_code == 1
    row = project_run(db, result.run_id, broken.project_id)
    assert row["status"] == "failed"
    assert (row["http_status"], row["error_code"]) == (http_status, error_code)
    assert row["error_msg"] == error_msg
    assert current_ids(db, broken.project_id) == before
    assert current_ids(db, healthy.project_id) == ids(sim.images(healthy.project_id))
    assert project_run(db, result.run_id, healthy.project_id)["status"] == "ok"


def test_a_project_emptied_whole_retires_all_its_images(sim: Simulator, db: Path) -> None:
    project = sim.add_project("cn-north-4", images=12)
    load(db, sim)
    for image in sim.images(project.project_id):
        sim.withdraw(project.project_id, image["id"])
    result = load(db, sim, day=1)
    assert result.retired == 12
    assert current_ids(db, project.project_id) == []


def test_image_withdrawn_while_paging_is_neither_missed_nor_duplicated(sim: Simulator, db: Path) -> None:
    project = sim.add_project("cn-north-4", images=250)
    first_page = sim.images(project.project_id)  # the client sorts by created_at; withdraw an early one
    early = sorted(first_page, key=lambda i: (i["created_at"], i["id"]))[3]["id"]

    def withdraw_once(simulator: Simulator, project_id: str, n: int) -> None:
        if n == 1:
            simulator.withdraw(project_id, early)

    sim.on_request(project.project_id, withdraw_once)
    result = load(db, sim)
    expected = ids(sim.images(project.project_id))
    assert len(expected) == 249 and early not in expected
    assert current_ids(db, project.project_id) == expected
    rows = query(db, "select count(*), count(distinct id) from workspace_images.images")
    assert rows == [(249, 249)]
    run_row = project_run(db, result.run_id, project.project_id)
    assert run_row["status"] == "ok" and run_row["pages"] > 3  # paged again after total_count moved


def test_image_published_while_paging_is_loaded(sim: Simulator, db: Path) -> None:
    project = sim.add_project("cn-north-4", images=250)
    sim.on_request(project.project_id, lambda s, pid, n: s.publish(pid) if n == 2 else None)
    load(db, sim)
    assert current_ids(db, project.project_id) == ids(sim.images(project.project_id))
    assert len(current_ids(db, project.project_id)) == 251


def test_retries_recover_and_are_counted(sim: Simulator, db: Path) -> None:
    flaky = sim.add_project("cn-north-4", images=150)
    throttled = sim.add_project("cn-east-3", images=50)
    sim.fail_project(flaky.project_id, "flaky", times=2, status=503)
    sim.fail_project(throttled.project_id, "retry_after", times=1)
    result = load(db, sim)
    assert result.exit_code == 0
    assert project_run(db, result.run_id, flaky.project_id)["retries"] == 2
    assert project_run(db, result.run_id, throttled.project_id)["retries"] == 1
    assert current_ids(db, flaky.project_id) == ids(sim.images(flaky.project_id))


def test_retries_exhausted_fail_the_project_only(sim: Simulator, db: Path) -> None:
    ok = sim.add_project("cn-north-4", images=10)
    dropped = sim.add_project("cn-east-3", images=10)
    sim.fail_project(dropped.project_id, "drop")
    result = load(db, sim)
    assert result.exit_code == 1
    row = project_run(db, result.run_id, dropped.project_id)
    assert (row["status"], row["error_code"], row["requests"], row["retries"]) == ("failed", "WI.CONNECTION", 5, 4)
    assert current_ids(db, ok.project_id) == ids(sim.images(ok.project_id))


def test_random_faults_still_load_everything(db: Path) -> None:
    with Simulator(projects=6, images=230, seed=3, fault_rate=0.2, token="sim-token-5f3c1a9e-do-not-leak") as sim:
        result = load(db, sim)
        assert result.exit_code == 0, result.failed
        faulted = [r for r in sim.requests if r.project_id is not None and r.status != 200]
        assert result.retries == len(faulted)  # each failed answer retried once, and only those
        for p in sim.projects:
            assert current_ids(db, p.project_id) == ids(sim.images(p.project_id))


def test_a_new_api_field_becomes_a_column(sim: Simulator, db: Path) -> None:
    project = sim.add_project("cn-north-4", images=20)
    load(db, sim, day=0)
    sim.set_day(1)
    sim.extra_fields = {"package_type": "ultimate", "gpu_enabled": True, "vcpus": 4}
    load(db, sim, day=1)
    rows = query(db, "select distinct package_type, gpu_enabled, vcpus from workspace_images.images "
                     "where _dlt_valid_to is null")
    assert rows == [("ultimate", True, 4)]
    old = query(db, "select count(*) from workspace_images.images where package_type is null")
    assert old[0][0] == 20  # the day-0 versions, without the field
    assert len(current_ids(db, project.project_id)) == len(sim.images(project.project_id))


def test_as_of_sets_the_validity_timestamps(sim: Simulator, db: Path) -> None:
    from tests.helpers import utc
    from workspace_images.pipelines.runner import run
    from tests.helpers import TOKEN

    project = sim.add_project("cn-north-4", images=3)
    target = [f"{project.region}:{project.project_id}"]
    kw = dict(projects=target, endpoint=sim.url, token=TOKEN, pipelines_dir=db.parent / "p")
    run(db, as_of=utc(2025, 1, 1, 6), **kw)
    sim.withdraw(project.project_id, sim.images(project.project_id)[0]["id"])
    run(db, as_of=utc(2025, 1, 2, 6), **kw)
    rows = query(db, "select _dlt_valid_from, _dlt_valid_to from workspace_images.images order by 2 nulls last")
    assert rows[0] == (utc(2025, 1, 1, 6), utc(2025, 1, 2, 6))
    assert rows[1:] == [(utc(2025, 1, 1, 6), None)] * 2
    as_of = query(db, "select distinct as_of from workspace_images.project_runs order by 1")
    assert as_of == [(utc(2025, 1, 1, 6),), (utc(2025, 1, 2, 6),)]


def test_a_load_older_than_the_latest_is_refused(sim: Simulator, db: Path) -> None:
    from workspace_images.pipelines.errors import UsageError

    sim.add_project("cn-north-4", images=5)
    load(db, sim, day=3)
    before = query(db, "select count(*) from workspace_images.project_runs")
    with pytest.raises(UsageError, match=r"--as-of 2026-11-03 12:00:00Z is before the latest load .*\(2026-11-04 12:00:00Z\)"):
        load(db, sim, day=2)
    assert query(db, "select count(*) from workspace_images.project_runs") == before
    assert load(db, sim, day=3).exit_code == 0  # a replay at the same timestamp is fine


def test_a_run_where_every_project_fails_retires_nothing(sim: Simulator, db: Path) -> None:
    project = sim.add_project("cn-north-4", images=30)
    load(db, sim, day=0)
    before = query(db, "select * from workspace_images.images order by id")
    sim.set_day(4)
    sim.fail_project(project.project_id, "status", status=503, error_code="APIG.0201", error_msg="Backend unavailable")
    result = load(db, sim, day=4)
    assert result.exit_code == 1 and (result.new_versions, result.retired) == (0, 0)
    assert query(db, "select * from workspace_images.images order by id") == before
    row = project_run(db, result.run_id, project.project_id)
    assert (row["http_status"], row["error_code"], row["requests"], row["retries"]) == (503, "APIG.0201", 5, 4)


def test_the_users_duckdb_settings_hold_while_the_load_keeps_the_file_open(
    sim: Simulator, db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The load keeps the file open from its first job to its last; dlt's own connections must
    join that opening, also with settings DuckDB takes only when it opens a file."""
    monkeypatch.setenv("DESTINATION__DUCKDB__CREDENTIALS__GLOBAL_CONFIG",
                       '{"custom_user_agent": "dashboards/1.0", "memory_limit": "300MB"}')
    sim.add_project("cn-north-4", images=250)
    result = load(db, sim, day=0, models=False)
    assert ([p["status"] for p in result.projects], result.new_versions) == (["ok"], 250)
    assert not db.with_name(db.name + ".wal").exists()
    assert query(db, "select count(*) from workspace_images.images") == [(250,)]
