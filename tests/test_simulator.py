"""The Workspace simulator, over real HTTP on 127.0.0.1."""

from __future__ import annotations

import argparse
import collections
import concurrent.futures
import datetime as dt
import http.client
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from workspace_images.simulator import PROJECT_FAULT_KINDS, RANDOM_FAULTS, RequestRecord, SimProject, Simulator, generate_day
from workspace_images.simulator.cli import add_arguments, build_simulator

TOKEN = "sim-token"
START = dt.date(2026, 11, 1)
HEX32 = re.compile(r"^[0-9a-f]{32}$")
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def sim():
    with Simulator(projects=3, images=120, seed=7) as simulator:
        yield simulator


@pytest.fixture
def client():
    with requests.Session() as session:
        session.headers["X-Auth-Token"] = TOKEN
        yield session


def images_url(sim: Simulator, project_id: str) -> str:
    return f"{sim.url}/v2/{project_id}/images"


def page_all(client: requests.Session, sim: Simulator, project_id: str, limit: int, **params) -> tuple[list[dict], set]:
    """Page a project naively by offset; return the images and every total_count seen."""
    images, totals, offset = [], set(), 0
    while True:
        body = client.get(images_url(sim, project_id), params={"limit": limit, "offset": offset, **params}).json()
        totals.add(body["total_count"])
        images += body["images"]
        offset += limit
        if offset >= body["total_count"]:
            return images, totals


def first_pid(sim: Simulator) -> str:
    return sim.projects[0].project_id


# paging, filters, sorting


@pytest.mark.parametrize("limit", [100, 7, 1])
def test_paging_covers_every_image_once(sim, client, limit):
    pid = first_pid(sim)
    images, totals = page_all(client, sim, pid, limit)
    assert totals == {120}
    ids = [image["id"] for image in images]
    assert len(ids) == len(set(ids)) == 120
    assert images == sim.images(pid)


def test_default_limit_is_100_and_limit_zero_returns_only_the_count(sim, client):
    pid = first_pid(sim)
    body = client.get(images_url(sim, pid)).json()
    assert (body["total_count"], len(body["images"])) == (120, 100)
    assert client.get(images_url(sim, pid), params={"limit": 0}).json() == {"total_count": 120, "images": []}
    assert client.get(images_url(sim, pid), params={"offset": 500}).json() == {"total_count": 120, "images": []}


def test_response_headers_and_keep_alive(sim):
    host, port = sim.url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=5)
    path = f"/v2/{first_pid(sim)}/images?limit=2"
    bodies, sockets, request_ids = [], set(), set()
    for _ in range(3):
        connection.request("GET", path, headers={"X-Auth-Token": TOKEN})
        response = connection.getresponse()
        bodies.append(response.read())
        sockets.add(id(connection.sock))
        request_ids.add(response.getheader("X-Request-Id"))
        assert response.version == 11 and not response.will_close
        assert response.getheader("Content-Type") == "application/json;charset=UTF-8"
        assert HEX32.match(response.getheader("X-Request-Id"))
        assert int(response.getheader("Content-Length")) == len(bodies[-1])
    connection.close()
    assert len(sockets) == 1
    assert len(request_ids) == 3
    assert len(set(bodies)) == 1
    assert len(sim.requests) == 3


@pytest.mark.parametrize(
    ("params", "field", "value"),
    [
        ({"os_type": "Windows"}, "os_type", "Windows"),
        ({"platform": "Linux"}, "os_type", "Linux"),
        ({"image_type": "private"}, "image_type", "private"),
        ({"architecture": "arm"}, "architecture", "arm"),
    ],
)
def test_filters_match_exactly(sim, client, params, field, value):
    pid = first_pid(sim)
    expected = [image for image in sim.images(pid) if image[field] == value]
    assert 0 < len(expected) < 120
    images, totals = page_all(client, sim, pid, 10, **params)
    assert totals == {len(expected)}
    assert images == expected


def test_filters_combine_and_image_id_selects_one(sim, client):
    pid = first_pid(sim)
    target = sim.images(pid)[17]
    body = client.get(images_url(sim, pid), params={"image_id": target["id"]}).json()
    assert body == {"total_count": 1, "images": [target]}
    expected = [i for i in sim.images(pid) if i["os_type"] == "Linux" and i["image_type"] == "gold"]
    body = client.get(images_url(sim, pid), params={"os_type": "Linux", "image_type": "gold"}).json()
    assert body["total_count"] == len(expected) and body["images"] == expected
    assert client.get(images_url(sim, pid), params={"os_type": "Solaris"}).json() == {"total_count": 0, "images": []}


def parse_created_at(value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(value).replace(tzinfo=None)


@pytest.mark.parametrize("sort_field", ["name", "created_at"])
@pytest.mark.parametrize("sort_type", ["asc", "desc"])
def test_sorting(sim, client, sort_field, sort_type):
    pid = first_pid(sim)
    images, _ = page_all(client, sim, pid, 50, sort_field=sort_field, sort_type=sort_type)
    key = (lambda i: i["name"]) if sort_field == "name" else (lambda i: parse_created_at(i["created_at"]))
    by_id = sorted(sim.images(pid), key=lambda i: i["id"])
    assert images == sorted(by_id, key=key, reverse=sort_type == "desc")
    if sort_field == "created_at":
        assert images != sim.images(pid)


def test_sort_ties_break_by_id(sim, client):
    pid = first_pid(sim)
    ids = [sim.publish(pid, {"name": "Zz_same"})["id"] for _ in range(4)]
    body = client.get(images_url(sim, pid), params={"sort_type": "desc", "limit": 4}).json()
    assert [i["id"] for i in body["images"]] == sorted(ids)


def test_created_at_sorts_by_time_across_formats(sim, client):
    pid = first_pid(sim)
    later = sim.publish(pid, {"created_at": "2030-01-01 09:00:00"})
    earlier = sim.publish(pid, {"created_at": "2030-01-01T08:00:00.000Z"})
    latest = sim.publish(pid, {"created_at": "2030-01-01T10:00:00Z"})
    params = {"sort_field": "created_at", "sort_type": "desc", "limit": 3}
    body = client.get(images_url(sim, pid), params=params).json()
    assert [i["id"] for i in body["images"]] == [latest["id"], later["id"], earlier["id"]]


# errors


@pytest.mark.parametrize(
    ("params", "name"),
    [
        ({"limit": "101"}, "limit"),
        ({"limit": "-1"}, "limit"),
        ({"limit": "abc"}, "limit"),
        ({"limit": ""}, "limit"),
        ({"limit": "1.5"}, "limit"),
        ({"offset": "-1"}, "offset"),
        ({"offset": "x"}, "offset"),
        ({"sort_field": "id"}, "sort_field"),
        ({"sort_type": "up"}, "sort_type"),
    ],
)
def test_bad_parameters_are_400(sim, client, params, name):
    response = client.get(images_url(sim, first_pid(sim)), params=params)
    assert response.status_code == 400
    body = response.json()
    assert body["error_code"] == "WKS.0001"
    assert name in body["error_msg"]
    assert body["request_id"] == response.headers["X-Request-Id"]
    assert HEX32.match(body["request_id"])


@pytest.mark.parametrize("headers", [{}, {"X-Auth-Token": "wrong"}])
def test_bad_token_is_401(sim, headers):
    response = requests.get(images_url(sim, first_pid(sim)), headers=headers)
    assert response.status_code == 401
    body = response.json()
    assert body["error_code"] == "APIG.0301"
    assert body["error_msg"].startswith("Incorrect IAM authentication information")
    assert HEX32.match(body["request_id"])


def test_unknown_project_is_401_and_names_the_project(sim, client):
    response = client.get(images_url(sim, "0" * 32))
    assert response.status_code == 401
    assert response.json()["error_code"] == "APIG.0301"
    assert "0" * 32 in response.json()["error_msg"]
    assert "does not match" in response.json()["error_msg"]


@pytest.mark.parametrize("path", ["/v2/images", "/v1/x/images", f"/v2/{'a' * 32}/desktops", "/"])
def test_unknown_path_is_404(sim, client, path):
    response = client.get(sim.url + path)
    assert response.status_code == 404
    assert response.json()["error_code"] == "APIG.0101"
    assert "does not exist" in response.json()["error_msg"]


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE"])
def test_other_methods_are_405(sim, client, method):
    response = client.request(method, images_url(sim, first_pid(sim)), json={"x": 1})
    assert response.status_code == 405
    assert response.json()["error_code"] == "WKS.0405"
    assert response.headers["Allow"] == "GET"
    assert client.get(images_url(sim, first_pid(sim)), params={"limit": 1}).status_code == 200


# faults


@pytest.mark.parametrize("kind", [k for k in RANDOM_FAULTS if k != "drop"])
def test_each_random_fault_kind(client, kind):
    with Simulator(projects=1, images=5, fault_rate=1.0) as sim:
        sim.fault_kinds = (kind,)
        response = client.get(images_url(sim, first_pid(sim)))
    fault = RANDOM_FAULTS[kind]
    assert response.status_code == fault.status
    assert response.json()["error_code"] == fault.error_code
    assert response.headers.get("Retry-After") == (None if fault.retry_after is None else str(fault.retry_after))


def test_throttle_faults_match_the_gateway():
    assert RANDOM_FAULTS["throttle"].status == 429 and RANDOM_FAULTS["throttle"].retry_after == 1
    assert RANDOM_FAULTS["throttle"].error_code == "APIG.0308"
    assert RANDOM_FAULTS["throttle"].error_msg.startswith("The throttling threshold has been reached")
    assert RANDOM_FAULTS["throttle_no_retry_after"].retry_after is None
    assert {f.status for f in RANDOM_FAULTS.values() if not f.drop} == {429, 500, 503}


def test_random_drop_closes_the_connection(client):
    with Simulator(projects=1, images=5, fault_rate=1.0) as sim:
        sim.fault_kinds = ("drop",)
        with pytest.raises(requests.ConnectionError):
            client.get(images_url(sim, first_pid(sim)))
        assert sim.requests[-1].status is None


def test_fault_rate_one_yields_only_faults():
    with Simulator(projects=1, images=5, fault_rate=1.0, seed=3) as sim:
        statuses = collections.Counter()
        for _ in range(40):
            try:
                response = requests.get(images_url(sim, first_pid(sim)), headers={"X-Auth-Token": TOKEN})
                statuses[response.status_code] += 1
            except requests.ConnectionError:
                statuses["drop"] += 1
    assert 200 not in statuses
    assert set(statuses) == {429, 500, 503, "drop"}


def test_fault_rate_half_fails_about_half(client):
    with Simulator(projects=1, images=5, fault_rate=0.5, seed=3) as sim:
        sim.fault_kinds = ("unavailable",)
        statuses = collections.Counter(client.get(images_url(sim, first_pid(sim))).status_code for _ in range(200))
    assert set(statuses) == {200, 503}
    assert 70 < statuses[503] < 130


def test_status_fault_is_persistent_until_cleared(sim, client):
    pid, other = first_pid(sim), sim.projects[1].project_id
    sim.fail_project(pid, "status", status=403, error_code="APIG.0302", error_msg="not allowed here")
    for _ in range(3):
        response = client.get(images_url(sim, pid))
        assert response.status_code == 403
        assert response.json()["error_code"] == "APIG.0302"
        assert response.json()["error_msg"] == "not allowed here"
    assert client.get(images_url(sim, other)).status_code == 200
    sim.clear_faults(pid)
    assert client.get(images_url(sim, pid)).status_code == 200


def test_malformed_body_is_not_json(sim, client):
    pid = first_pid(sim)
    sim.fail_project(pid, "malformed")
    response = client.get(images_url(sim, pid))
    assert response.status_code == 200
    assert int(response.headers["Content-Length"]) == len(response.content)
    with pytest.raises(ValueError):
        json.loads(response.content)
    sim.clear_faults()
    assert client.get(images_url(sim, pid)).json()["total_count"] == 120


def test_stuck_paging_returns_the_first_page(sim, client):
    pid = first_pid(sim)
    sim.fail_project(pid, "stuck")
    first = client.get(images_url(sim, pid), params={"limit": 10}).json()
    later = client.get(images_url(sim, pid), params={"limit": 10, "offset": 50}).json()
    assert first == later
    assert first["total_count"] == 120 and len(first["images"]) == 10


def test_flaky_fails_first_requests_then_succeeds(sim, client):
    pid = first_pid(sim)
    sim.fail_project(pid, "flaky", times=2, status=503)
    statuses = [client.get(images_url(sim, pid)).status_code for _ in range(4)]
    assert statuses == [503, 503, 200, 200]


def test_retry_after_fault(sim, client):
    pid = first_pid(sim)
    sim.fail_project(pid, "retry_after", times=1)
    throttled = client.get(images_url(sim, pid))
    assert throttled.status_code == 429
    assert throttled.headers["Retry-After"] == "1"
    assert throttled.json()["error_code"] == "APIG.0308"
    assert client.get(images_url(sim, pid)).status_code == 200


def test_drop_fault_every_time(sim, client):
    pid = first_pid(sim)
    sim.fail_project(pid, "drop")
    for _ in range(2):
        with pytest.raises(requests.ConnectionError):
            client.get(images_url(sim, pid))
    assert client.get(images_url(sim, sim.projects[1].project_id)).status_code == 200
    assert [r.status for r in sim.requests] == [None, None, 200]


def test_unknown_fault_kind_is_rejected(sim):
    with pytest.raises(ValueError, match="unknown fault kind"):
        sim.fail_project(first_pid(sim), "explode")
    assert {"status", "malformed", "stuck", "flaky", "drop", "retry_after"} <= set(PROJECT_FAULT_KINDS)


def test_latency_delays_every_request(client):
    with Simulator(projects=1, images=1, latency_ms=150) as sim:
        started = time.perf_counter()
        assert client.get(images_url(sim, first_pid(sim))).status_code == 200
        assert time.perf_counter() - started >= 0.15


# data: determinism and evolution


def test_same_seed_and_day_give_the_same_data():
    a, b = Simulator(seed=11, day=3), Simulator(seed=11, day=3)
    assert a.projects == b.projects
    assert all(HEX32.match(p.project_id) for p in a.projects)
    assert [a.images(p.project_id) for p in a.projects] == [b.images(p.project_id) for p in b.projects]
    for index, project in enumerate(a.projects):
        assert a.images(project.project_id) == generate_day(11, index, 120, 3, START)
    c = Simulator(seed=12, day=3)
    assert c.projects[0].project_id != a.projects[0].project_id
    assert c.images(c.projects[0].project_id) != a.images(a.projects[0].project_id)


def test_set_day_is_independent_of_visiting_order():
    direct = Simulator(seed=5)
    direct.set_day(2)
    wandering = Simulator(seed=5)
    for day in (5, 1, 7, 2):
        wandering.set_day(day)
    assert wandering.day == 2
    for index, project in enumerate(direct.projects):
        expected = generate_day(5, index, 120, 2, START)
        assert direct.images(project.project_id) == expected
        assert wandering.images(project.project_id) == expected


def test_set_day_discards_live_mutations(sim):
    pid = first_pid(sim)
    before = sim.images(pid)
    sim.withdraw(pid, before[0]["id"])
    sim.publish(pid)
    sim.set_day(0)
    assert sim.images(pid) == before


def diff(before: list[dict], after: list[dict]) -> tuple[set, set, set]:
    old, new = {i["id"]: i for i in before}, {i["id"]: i for i in after}
    changed = {k for k in old.keys() & new.keys() if old[k] != new[k]}
    return old.keys() - new.keys(), new.keys() - old.keys(), changed


def test_one_day_changes_a_few_percent():
    start = [generate_day(2, p, 120, 0, START) for p in range(5)]
    next_day = [generate_day(2, p, 120, 1, START) for p in range(5)]
    withdrawn, added, changed = (sum(len(part) for part in parts)
                                 for parts in zip(*(diff(a, b) for a, b in zip(start, next_day))))
    assert 12 <= withdrawn <= 24  # 3 % of 600
    assert 18 <= added <= 30  # 4 % of 600
    assert 6 <= changed <= 18  # 2 % of 600
    known = {i["id"] for images in start for i in images}
    for images in next_day:
        for image in images:
            if image["id"] not in known:
                assert parse_created_at(image["created_at"]).date() == START + dt.timedelta(days=1)
                assert parse_created_at(image["created_at"]).hour < 12


def test_os_versions_shift_over_the_days():
    def versions(day: int) -> collections.Counter:
        return collections.Counter(i["os_version"] for p in range(3) for i in generate_day(9, p, 120, day, START))

    first, later = versions(0), versions(30)
    assert later["Windows 11 Enterprise 64bit"] > first["Windows 11 Enterprise 64bit"] + 20
    assert later["Windows 10 Enterprise 64bit"] < first["Windows 10 Enterprise 64bit"] - 10
    assert later["EulerOS 2.9 64bit"] > first["EulerOS 2.9 64bit"]
    assert later["Ubuntu 22.04 server 64bit"] > first["Ubuntu 22.04 server 64bit"]


def test_image_fields_look_like_the_api():
    images = [i for p in range(4) for i in generate_day(4, p, 120, 0, START)]
    counts = collections.Counter(i["image_type"] for i in images)
    assert 0.6 < counts["gold"] / len(images) < 0.8
    for image in images:
        assert list(image)[:9] == ["id", "image_type", "os_type", "os_version", "disk_format", "name",
                                   "min_ram", "min_disk", "product_code"]
        assert re.match(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$", image["id"])
        assert image["os_type"] in {"Linux", "Windows", "Other"}
        assert image["disk_format"] in {"vhd", "raw", "qcow2", "zvhd2"}
        assert 40 <= image["min_disk"] <= 1024
        assert image["architecture"] in {"x86", "arm"}
        assert image["architecture"] == "x86" or image["os_type"] == "Linux"
        assert image["image_type"] == "private" or image["product_code"].startswith("workspace.")
        assert parse_created_at(image["created_at"]).date() < START
    formats = collections.Counter(len(i["created_at"]) for i in images)
    assert set(formats) == {19, 20, 24}
    assert formats[20] > formats[19] + formats[24]
    for project in range(4):
        assert len({i["name"] for i in generate_day(4, project, 120, 0, START)}) == 120


def test_non_ascii_names_round_trip(sim, client):
    pid = first_pid(sim)
    target = sim.images(pid)[3]
    sim.modify(pid, target["id"], name="测试_Ünïcode_テスト")
    response = client.get(images_url(sim, pid), params={"image_id": target["id"]})
    assert "测试_Ünïcode_テスト".encode() in response.content
    assert b"\\u" not in response.content
    assert response.json()["images"][0]["name"] == "测试_Ünïcode_テスト"
    names = [i["name"] for i in sim.images(pid)]
    assert any(not name.isascii() for name in names)


def test_extra_fields_appear_on_every_image(sim, client):
    pid = first_pid(sim)
    sim.extra_fields = {"new_field": "value", "package_type": "general"}
    images, _ = page_all(client, sim, pid, 100)
    assert all(i["new_field"] == "value" and i["package_type"] == "general" for i in images)
    assert all(i["new_field"] == "value" for i in sim.images(pid))
    assert client.get(images_url(sim, pid), params={"package_type": "other"}).json()["total_count"] == 0
    assert client.get(images_url(sim, pid), params={"package_type": "general"}).json()["total_count"] == 120


def test_on_request_hook_withdraws_mid_paging(sim, client):
    pid = first_pid(sim)
    first_image = sim.images(pid)[0]
    calls = []

    def withdraw_after_first_page(simulator, project_id, number):
        calls.append(number)
        if number == 1:
            simulator.withdraw(project_id, first_image["id"])

    sim.on_request(pid, withdraw_after_first_page)
    images, totals = page_all(client, sim, pid, 10)
    assert totals == {120, 119}
    assert calls == list(range(1, 13))
    live = {i["id"] for i in sim.images(pid)}
    seen = {i["id"] for i in images}
    assert len(live - seen) == 1  # the image that moved from offset 10 to 9 was skipped


def test_live_mutations(sim):
    pid = first_pid(sim)
    published = sim.publish(pid, {"name": "Mine", "os_type": "Linux"})
    assert published["name"] == "Mine" and published["created_at"].startswith("2026-11-01")
    assert published in sim.images(pid)
    changed = sim.modify(pid, published["id"], min_disk=512)
    assert changed["min_disk"] == 512
    sim.withdraw(pid, published["id"])
    assert len(sim.images(pid)) == 120
    with pytest.raises(KeyError):
        sim.withdraw(pid, published["id"])
    with pytest.raises(ValueError):
        sim.publish(pid, {"id": sim.images(pid)[0]["id"]})


def test_add_project_with_explicit_size(sim, client):
    sim.set_day(2)
    empty = sim.add_project(region="ap-southeast-1", images=0)
    big = sim.add_project(region="cn-north-4", images=101, project_id="ab" * 16)
    assert HEX32.match(empty.project_id)
    assert big == SimProject("cn-north-4", "ab" * 16, "cn-north-4_team1")
    assert sim.projects[-2:] == [empty, big]
    assert client.get(images_url(sim, empty.project_id)).json() == {"total_count": 0, "images": []}
    assert client.get(images_url(sim, big.project_id)).json()["total_count"] == 101
    added_on = START + dt.timedelta(days=2)
    assert sim.images(big.project_id) == generate_day(7, 4, 101, 0, added_on)
    sim.set_day(12)
    assert sim.images(big.project_id) == generate_day(7, 4, 101, 10, added_on)
    withdrawn, added, changed = diff(generate_day(7, 4, 101, 0, added_on), sim.images(big.project_id))
    assert withdrawn and added and changed
    with pytest.raises(ValueError):
        sim.add_project(project_id="ab" * 16)


def test_regions_and_project_names():
    sim = Simulator(projects=4, regions=["la-south-2", "af-south-1"])
    assert [(p.region, p.name) for p in sim.projects] == [
        ("la-south-2", "la-south-2"),
        ("af-south-1", "af-south-1"),
        ("la-south-2", "la-south-2_team1"),
        ("af-south-1", "af-south-1_team1"),
    ]
    assert {p.region for p in Simulator(projects=5).projects} == {
        "cn-north-4", "cn-east-3", "cn-south-1", "ap-southeast-1", "ap-southeast-3"}


def test_as_of_is_noon_utc():
    sim = Simulator(projects=0, day=4)
    assert sim.as_of() == dt.datetime(2026, 11, 5, 12, tzinfo=dt.timezone.utc)
    assert sim.as_of(0) == dt.datetime(2026, 11, 1, 12, tzinfo=dt.timezone.utc)


def test_requests_are_recorded(sim, client):
    pid = first_pid(sim)
    client.get(images_url(sim, pid), params={"limit": 5, "os_type": "Linux"})
    client.get(sim.url + "/nope")
    assert sim.requests == [
        RequestRecord("GET", f"/v2/{pid}/images", {"limit": "5", "os_type": "Linux"}, 200, pid),
        RequestRecord("GET", "/nope", {}, 404, None),
    ]


def test_many_projects_paged_concurrently():
    with Simulator(projects=50, images=30, seed=2) as sim:
        def fetch(project: SimProject) -> list[dict]:
            with requests.Session() as session:
                session.headers["X-Auth-Token"] = TOKEN
                return page_all(session, sim, project.project_id, 7)[0]

        with concurrent.futures.ThreadPoolExecutor(max_workers=16) as pool:
            results = list(pool.map(fetch, sim.projects))
        assert results == [sim.images(p.project_id) for p in sim.projects]
        assert len(sim.requests) == 50 * 5


# command line


def test_cli_arguments():
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args([])
    assert (args.host, args.port, args.projects, args.images, args.seed, args.day) == ("127.0.0.1", 0, 3, 120, 1, 0)
    assert (args.latency_ms, args.fault_rate) == (0, 0)
    assert (args.access_key, args.secret_key, args.user, args.password, args.domain, args.token_ttl) == (
        "SIMACCESSKEY0000000001", "SimSecretKey0000000000000000000000000001", "sim-user", "sim-password",
        "sim-domain", 86400)
    args = parser.parse_args(["--access-key", "AK", "--secret-key", "SK", "--user", "u", "--password", "p",
                              "--domain", "d", "--fault-rate", "0.2", "--token-ttl", "90"])
    assert (args.access_key, args.secret_key, args.user, args.password, args.domain) == ("AK", "SK", "u", "p", "d")
    assert args.token_ttl == 90
    sim = build_simulator(args)
    account = sim.iam.account()
    assert (account.access_key, account.secret_key, account.user, account.password, account.domain) == (
        "AK", "SK", "u", "p", "d")
    assert sim.iam.token_ttl == 90
    for bad in (["--fault-rate", "1.5"], ["--token-ttl", "0"], ["--token-ttl", "x"]):
        with pytest.raises(SystemExit):
            parser.parse_args(bad)


def test_cli_serves_until_interrupted():
    env = {**os.environ, "PYTHONPATH": str(ROOT), "WORKSPACE_SIMULATOR_TOKEN": "env-token"}
    process = subprocess.Popen(
        [sys.executable, "-m", "workspace_images.simulator", "--projects", "2", "--images", "4"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT,
        # Ctrl-C as a terminal sends it, also when the tests run in the background (where the
        # shell starts them with SIGINT ignored, which a child would inherit)
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        lines = [process.stdout.readline() for _ in range(6)]
        url = re.search(r"http://127\.0\.0\.1:\d+", lines[0]).group(0)
        projects = [line.split() for line in lines[4:6]]
        region, project_id = projects[0][0].split(":")
        assert region == "cn-north-4" and HEX32.match(project_id)
        response = requests.get(f"{url}/v2/{project_id}/images", headers={"X-Auth-Token": "env-token"})
        assert response.json()["total_count"] == 4
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=10) == 0
        assert project_id in process.stderr.read()
    finally:
        process.kill()
        process.communicate()


def test_a_setting_the_simulator_does_not_have_is_refused() -> None:
    sim = Simulator(projects=1, images=1)
    sim.latency_ms = 5  # its own settings stay settable
    knobs_on_iam = r"^Simulator has no setting 'token_ttl' \(the identity side's knobs are on sim\.iam\)$"
    with pytest.raises(AttributeError, match=knobs_on_iam):
        sim.token_ttl = 2  # set and never read, the token lifetime unchanged, were it allowed
    with pytest.raises(AttributeError, match=r"^Simulator has no setting 'latncy_ms'$"):
        sim.latncy_ms = 5
    sim.iam.token_ttl = 2
    assert sim.iam.token_ttl == 2 and sim.latency_ms == 5
