"""The simulator's robustness faults, over real HTTP on 127.0.0.1.

Lying ``total_count``, dripping and silent answers, slow projects, redirects,
hostile and paged IAM listings, odd image records and short-lived tokens: each
is checked here exactly as a client sees it, so that the pipeline's robustness
tests can rely on it.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import socket
import threading
import time
from collections.abc import Callable
from urllib.parse import urlsplit

import pytest
import requests

from workspace_images.simulator import PROJECT_FAULT_KINDS, Simulator
from tests.recorder import Recorder

TOKEN = "sim-token-faults-do-not-leak"
AUTH = {"X-Auth-Token": TOKEN}
TIMEOUT = (2, 5)


@pytest.fixture
def sim():
    with Simulator(projects=2, images=25, seed=5, token=TOKEN) as simulator:
        yield simulator


def images_url(sim: Simulator, project_id: str) -> str:
    return f"{sim.url}/v2/{project_id}/images"


def wait_until(condition: Callable[[], bool], timeout: float = 2.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


def open_request(sim: Simulator, path: str) -> socket.socket:
    """Send a GET on a raw socket and return the socket, without reading anything."""
    parts = urlsplit(sim.url)
    sock = socket.create_connection((parts.hostname, parts.port), timeout=2)
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {parts.netloc}\r\nX-Auth-Token: {TOKEN}\r\n\r\n".encode())
    return sock


def head_size(response: requests.Response) -> int:
    """Bytes of the status line and headers as the simulator sends them."""
    status_line = f"HTTP/1.1 {response.status_code} {response.reason}\r\n"
    return len(status_line) + sum(len(f"{k}: {v}\r\n") for k, v in response.headers.items()) + 2


# lying total_count


def test_total_count_lies_on_every_page_with_the_true_images(sim):
    pid = sim.projects[0].project_id
    truth = sim.images(pid)
    sim.fail_project(pid, "total_count", total=1000)
    for offset in (0, 10, 20, 30):
        body = requests.get(images_url(sim, pid), headers=AUTH, params={"limit": 10, "offset": offset},
                            timeout=TIMEOUT).json()
        assert body == {"total_count": 1000, "images": truth[offset:offset + 10]}
    other = sim.projects[1].project_id
    assert requests.get(images_url(sim, other), headers=AUTH, timeout=TIMEOUT).json()["total_count"] == 25
    sim.clear_faults(pid)
    sim.fail_project(pid, "total_count", total=-1, times=1)
    totals = [requests.get(images_url(sim, pid), headers=AUTH, timeout=TIMEOUT).json()["total_count"]
              for _ in range(2)]
    assert totals == [-1, 25]


def test_fault_arguments_are_checked(sim):
    pid = sim.projects[0].project_id
    assert {"total_count", "drip", "drip_headers", "silent", "slow"} <= set(PROJECT_FAULT_KINDS)
    with pytest.raises(ValueError, match="needs an integer total"):
        sim.fail_project(pid, "total_count")
    with pytest.raises(ValueError, match="needs an integer total"):
        sim.fail_project(pid, "total_count", total=True)
    with pytest.raises(ValueError, match="total applies only"):
        sim.fail_project(pid, "stuck", total=3)
    with pytest.raises(ValueError, match="slow fault needs an interval"):
        sim.fail_project(pid, "slow")
    with pytest.raises(ValueError, match="interval must be"):
        sim.fail_project(pid, "drip", interval=-0.1)
    with pytest.raises(ValueError, match="interval must be"):
        sim.fail_project(pid, "slow", interval=float("inf"))
    with pytest.raises(ValueError, match="interval applies only"):
        sim.fail_project(pid, "silent", interval=1)
    with pytest.raises(KeyError):
        sim.fail_project("0" * 32, "drip")
    assert requests.get(images_url(sim, pid), headers=AUTH, timeout=TIMEOUT).status_code == 200


# dripping answers


def test_drip_sends_the_head_at_once_then_the_body_byte_by_byte(sim):
    pid = sim.projects[0].project_id
    sim.fail_project(pid, "drip", interval=0.02, times=1)
    expected = json.dumps({"total_count": 25, "images": []}, separators=(",", ":")).encode()
    with requests.Session() as session:
        started = time.monotonic()
        response = session.get(images_url(sim, pid), headers=AUTH, params={"limit": 0}, stream=True,
                               timeout=TIMEOUT)
        head_at = time.monotonic() - started
        body = response.content
        body_at = time.monotonic() - started
        assert response.status_code == 200
        assert response.headers["Content-Type"] == "application/json;charset=UTF-8"
        assert int(response.headers["Content-Length"]) == len(expected)
        assert body == expected
        assert head_at < 0.25
        assert len(expected) * 0.02 * 0.95 <= body_at - head_at < len(expected) * 0.02 + 2
        started = time.monotonic()
        again = session.get(images_url(sim, pid), headers=AUTH, params={"limit": 0}, timeout=TIMEOUT)
        assert again.content == expected and time.monotonic() - started < 0.25
    assert [r.status for r in sim.requests] == [200, 200]


def test_drip_delivers_error_answers_too(sim):
    pid = sim.projects[0].project_id
    sim.fail_project(pid, "status", status=403, error_msg="no")
    sim.fail_project(pid, "drip", interval=0.005)
    started = time.monotonic()
    response = requests.get(images_url(sim, pid), headers=AUTH, timeout=TIMEOUT)
    assert response.status_code == 403
    assert response.json()["error_code"] == "APIG.0302" and response.json()["error_msg"] == "no"
    assert time.monotonic() - started >= len(response.content) * 0.005 * 0.95


def test_drip_headers_sends_the_head_byte_by_byte_then_the_body(sim):
    pid = sim.projects[0].project_id
    sim.fail_project(pid, "drip_headers", interval=0.005)
    started = time.monotonic()
    response = requests.get(images_url(sim, pid), headers=AUTH, params={"limit": 2}, stream=True,
                            timeout=TIMEOUT)
    head_at = time.monotonic() - started
    body = response.json()
    body_at = time.monotonic() - started
    size = head_size(response)
    assert response.status_code == 200
    assert set(response.headers) == {"Server", "Date", "Content-Type", "X-Request-Id", "Content-Length"}
    assert body == {"total_count": 25, "images": sim.images(pid)[:2]}
    assert size > 150
    assert size * 0.005 * 0.95 <= head_at < size * 0.005 + 3
    assert body_at - head_at < 0.25
    second = requests.get(images_url(sim, pid), headers=AUTH, params={"limit": 0}, timeout=TIMEOUT)
    assert second.elapsed.total_seconds() >= head_size(second) * 0.005 * 0.95


# silent and slow


def test_silent_reads_the_request_and_holds_the_connection_until_the_client_closes(sim):
    pid = sim.projects[0].project_id
    sim.fail_project(pid, "silent", times=2)
    sock = open_request(sim, f"/v2/{pid}/images?limit=3")
    sock.settimeout(0.5)
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        sock.recv(1024)
    assert time.monotonic() - started >= 0.45
    assert sim.requests[-1].path == f"/v2/{pid}/images" and sim.requests[-1].query == {"limit": "3"}
    assert sim.requests[-1].status is None
    assert sim.open_connections == 1
    sock.close()
    wait_until(lambda: sim.open_connections == 0, timeout=1.0)
    started = time.monotonic()
    with pytest.raises(requests.ReadTimeout):
        requests.get(images_url(sim, pid), headers=AUTH, timeout=(2, 0.3))
    assert time.monotonic() - started >= 0.29
    assert requests.get(images_url(sim, pid), headers=AUTH, timeout=TIMEOUT).status_code == 200
    assert [r.status for r in sim.requests] == [None, None, 200]


def test_slow_delays_each_answer_of_one_project(sim):
    slow, other = (p.project_id for p in sim.projects)
    sim.fail_project(slow, "slow", interval=0.3, times=2)
    timings = []
    for pid in (slow, other, slow, slow):
        started = time.monotonic()
        assert requests.get(images_url(sim, pid), headers=AUTH, timeout=TIMEOUT).status_code == 200
        timings.append(time.monotonic() - started)
    assert 0.3 <= timings[0] < 1.3 and 0.3 <= timings[2] < 1.3
    assert timings[1] < 0.2 and timings[3] < 0.2


def test_stop_returns_promptly_while_answers_are_held():
    sim = Simulator(projects=3, images=5, seed=5, token=TOKEN).start()
    silent, dripping, slow = (p.project_id for p in sim.projects)
    sim.fail_project(silent, "silent")
    sim.fail_project(dripping, "drip", interval=5)
    sim.fail_project(slow, "slow", interval=30)
    outcomes: dict[str, object] = {}
    heads = threading.Event()

    def fetch(pid: str) -> None:
        try:
            response = requests.get(images_url(sim, pid), headers=AUTH, stream=True, timeout=(2, 10))
            if pid == dripping:
                heads.set()
            response.content
            outcomes[pid] = "answered"
        except requests.RequestException as exc:
            outcomes[pid] = exc

    threads = [threading.Thread(target=fetch, args=(pid,), daemon=True) for pid in (silent, dripping, slow)]
    for thread in threads:
        thread.start()
    wait_until(lambda: sim.open_connections == 3 and len(sim.requests) == 2 and heads.is_set())
    started = time.monotonic()
    sim.stop()
    assert time.monotonic() - started < 1.0
    for thread in threads:
        thread.join(timeout=3)
        assert not thread.is_alive()
    assert time.monotonic() - started < 3.0
    assert set(outcomes) == {silent, dripping, slow}
    for outcome in outcomes.values():
        assert isinstance(outcome, requests.RequestException) and not isinstance(outcome, requests.Timeout)


# redirects


def test_redirect_answers_before_authentication(sim):
    pid = sim.projects[0].project_id
    with pytest.raises(ValueError, match="3xx"):
        sim.redirect("/v2/", "http://elsewhere.invalid/", status=200)
    with pytest.raises(ValueError, match="start with"):
        sim.redirect("v2/", "http://elsewhere.invalid/")
    with pytest.raises(ValueError, match="line break"):
        sim.redirect("/v2/", "http://elsewhere.invalid/\r\nX-Evil: 1")
    sim.redirect("/v2/", "http://elsewhere.invalid/steal?x=1", status=302, times=2)
    for _ in range(2):
        response = requests.get(images_url(sim, pid), allow_redirects=False, timeout=TIMEOUT)
        assert response.status_code == 302
        assert response.headers["Location"] == "http://elsewhere.invalid/steal?x=1"
        assert response.headers["Content-Type"] == "application/json;charset=UTF-8"
        assert response.content == b"{}"
    refused = requests.get(images_url(sim, pid), allow_redirects=False, timeout=TIMEOUT)
    assert refused.status_code == 401 and refused.json()["error_code"] == "APIG.0301"
    sim.redirect("/", "/v2/elsewhere")
    listing = requests.get(f"{sim.url}/v3/auth/projects", headers=AUTH, allow_redirects=False, timeout=TIMEOUT)
    assert (listing.status_code, listing.headers["Location"]) == (307, "/v2/elsewhere")
    sim.clear_redirects()
    assert requests.get(images_url(sim, pid), headers=AUTH, timeout=TIMEOUT).status_code == 200
    assert [r.status for r in sim.requests] == [302, 302, 401, 307, 200]


def test_recorder_catches_what_follows_a_redirect(sim):
    body = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
        "name": sim.user, "password": sim.password, "domain": {"name": sim.domain}}}},
        "scope": {"project": {"id": sim.projects[0].project_id}}}}
    with Recorder() as recorder:
        sim.redirect("/v3/auth/tokens", f"{recorder.url}/stolen?from=sim")
        response = requests.post(f"{sim.url}/v3/auth/tokens", json=body, timeout=TIMEOUT)
        assert response.status_code == 200 and response.json() == {}
        assert response.url == f"{recorder.url}/stolen?from=sim"
        assert [r.status_code for r in response.history] == [307]
        [(method, path, headers, sent)] = recorder.requests
    assert (method, path) == ("POST", "/stolen?from=sim")
    assert headers["Content-Type"] == "application/json"
    assert json.loads(sent) == body
    assert recorder.received(sim.password) and not recorder.received(TOKEN)
    assert sim.iam_calls("/v3/auth/tokens", status=307) == 1 and sim.iam.issued_tokens() == []


# IAM listings: hostile entries and paging


HOSTILE = [
    {"id": "0123456789abcdef0123456789abcdef/images#') OR ('1'='1", "name": "cn-north-4", "enabled": True},
    {"id": "x'); DROP TABLE t; --", "name": "cn-east-3_x'); DROP TABLE t; --", "enabled": True},
    {"id": "abc{0}", "name": "{name}{0}", "enabled": True},
    {"id": "", "name": "cn-north-4", "enabled": True},
    {"id": 12345678901234567890123, "name": None, "enabled": "yes"},
    {"name": "cn-south-1"},
    "not an object",
    None,
]


def test_raw_listing_entries_are_served_verbatim_after_the_real_ones(sim):
    other = sim.iam.add_account("other-domain")
    before = requests.get(f"{sim.url}/v3/auth/projects", headers=AUTH, timeout=TIMEOUT).json()["projects"]
    assert len(before) == 3
    entries = copy.deepcopy(HOSTILE)
    for entry in entries:
        sim.iam.add_raw_listing_entry(entry)
    sim.iam.add_raw_listing_entry({"id": "theirs"}, domain=other.domain)
    entries[0]["id"] = "changed after adding"  # the store keeps its own copy
    for path in ("/v3/auth/projects", "/v3/projects"):
        listing = requests.get(f"{sim.url}{path}", headers=AUTH, timeout=TIMEOUT)
        assert listing.status_code == 200
        assert listing.json()["projects"] == before + HOSTILE
        assert b"DROP TABLE t; --" in listing.content and b'"id": ""' in listing.content
    theirs = sim.iam.grant_token(domain=other.domain)
    assert requests.get(f"{sim.url}/v3/auth/projects", headers={"X-Auth-Token": theirs},
                        timeout=TIMEOUT).json()["projects"][-1] == {"id": "theirs"}
    filtered = requests.get(f"{sim.url}/v3/projects", headers=AUTH, params={"name": "MOS"}, timeout=TIMEOUT)
    assert filtered.json()["projects"] == [before[0]] + HOSTILE
    paged = requests.get(f"{sim.url}/v3/projects", headers=AUTH, params={"page": 2, "per_page": 4}, timeout=TIMEOUT)
    assert paged.json()["projects"] == HOSTILE[1:5]
    sim.iam.clear_raw_listing_entries()
    assert requests.get(f"{sim.url}/v3/auth/projects", headers=AUTH, timeout=TIMEOUT).json()["projects"] == before
    with pytest.raises(TypeError):
        sim.iam.add_raw_listing_entry({"id": object()})


def test_listing_pages_link_to_the_next_page_on_the_same_host(sim):
    sim.iam.add_raw_listing_entry({"id": "raw"})
    everything = requests.get(f"{sim.url}/v3/auth/projects", headers=AUTH, timeout=TIMEOUT).json()["projects"]
    assert len(everything) == 4
    with pytest.raises(ValueError):
        sim.iam.set_listing_paging(0)
    with pytest.raises(ValueError):
        sim.iam.set_listing_paging(None, next_url="http://elsewhere.invalid/")
    sim.iam.set_listing_paging(3)
    url, pages = f"{sim.url}/v3/auth/projects", []
    while url:
        body = requests.get(url, headers=AUTH, timeout=TIMEOUT).json()
        pages.append(body)
        url = body["links"]["next"]
    assert [p["projects"] for p in pages] == [everything[:3], everything[3:]]
    assert pages[0]["links"] == {"self": f"{sim.url}/v3/auth/projects?page=1&per_page=3", "previous": None,
                                 "next": f"{sim.url}/v3/auth/projects?page=2&per_page=3"}
    assert pages[1]["links"] == {"self": f"{sim.url}/v3/auth/projects?page=2&per_page=3",
                                 "previous": f"{sim.url}/v3/auth/projects?page=1&per_page=3", "next": None}
    filtered = requests.get(f"{sim.url}/v3/projects", headers=AUTH, params={"enabled": "true", "per_page": 2},
                            timeout=TIMEOUT).json()
    assert filtered["projects"] == everything[:2]
    assert filtered["links"]["next"] == f"{sim.url}/v3/projects?page=2&per_page=2&enabled=true"
    bad = requests.get(f"{sim.url}/v3/auth/projects", headers=AUTH, params={"page": 0}, timeout=TIMEOUT)
    assert bad.status_code == 400 and bad.json()["error"]["code"] == 400
    sim.iam.set_listing_paging(None)
    assert requests.get(f"{sim.url}/v3/auth/projects", headers=AUTH, timeout=TIMEOUT).json()["links"] == {
        "self": f"{sim.url}/v3/auth/projects", "previous": None, "next": None}


def test_listing_next_url_replaces_the_first_pages_link(sim):
    foreign = "http://127.0.0.1:9/v3/auth/projects?page=2&per_page=2"
    sim.iam.set_listing_paging(2, next_url=foreign)
    first = requests.get(f"{sim.url}/v3/auth/projects", headers=AUTH, timeout=TIMEOUT).json()
    assert len(first["projects"]) == 2 and first["links"]["next"] == foreign
    second = requests.get(f"{sim.url}/v3/auth/projects", headers=AUTH, params={"page": 2, "per_page": 2},
                          timeout=TIMEOUT).json()
    assert len(second["projects"]) == 1 and second["links"]["next"] is None
    sim.iam.set_listing_paging(100, next_url=foreign)
    alone = requests.get(f"{sim.url}/v3/auth/projects", headers=AUTH, timeout=TIMEOUT).json()
    assert len(alone["projects"]) == 3 and alone["links"]["next"] == foreign


# odd records


ODD = {
    "id": "odd-1",
    "name": "odd \ud800 name",
    "": "empty key",
    "os_type": "Windows",
    "osType": "Linux",
    "size": 2**70,
    "created_at": "0001-01-01T00:00:00+01:00",
    "nested": {"a": [1, {"b": None}], "\ud800": "\udfff"},
}


def test_odd_records_are_served_verbatim(sim):
    pid, other = (p.project_id for p in sim.projects)
    published = sim.publish(pid, ODD)
    assert {k: published[k] for k in ODD} == ODD
    response = requests.get(images_url(sim, pid), headers=AUTH, params={"image_id": "odd-1"}, timeout=TIMEOUT)
    assert response.status_code == 200
    assert b"odd \\ud800 name" in response.content and b'"\\ud800":"\\udfff"' in response.content
    assert response.content.isascii() and int(response.headers["Content-Length"]) == len(response.content)
    [served] = json.loads(response.content)["images"]
    assert served == published and list(served) == list(published)
    assert str(2**70).encode() in response.content
    sim.modify(pid, "odd-1", **{"": {"now": "an object"}, "osType": None, "more": -(2**70)})
    [served] = requests.get(images_url(sim, pid), headers=AUTH, params={"image_id": "odd-1"},
                            timeout=TIMEOUT).json()["images"]
    assert served == {**published, "": {"now": "an object"}, "osType": None, "more": -(2**70)}
    sim.publish(other, {"id": "plain", "name": "名前"})
    plain = requests.get(images_url(sim, other), headers=AUTH, params={"image_id": "plain"}, timeout=TIMEOUT)
    assert '"name":"名前"'.encode() in plain.content  # bodies without a lone surrogate stay UTF-8


def test_records_that_cannot_be_compared_sort_last_by_id(sim):
    pid = sim.projects[0].project_id
    sim.publish(pid, ODD)
    sim.publish(pid, {"id": "odd-3", "name": {"a": 1}, "created_at": 2**70})
    sim.publish(pid, {"id": "odd-2", "name": None, "created_at": {"at": "2026-11-01"}})
    sim.publish(pid, {"id": "odd-4", "name": 7, "created_at": None})
    sim.publish(pid)  # generating a fresh name copes with names that are not strings
    assert len(sim.images(pid)) == 30
    for sort_field in ("name", "created_at"):
        for sort_type in ("asc", "desc"):
            response = requests.get(images_url(sim, pid), headers=AUTH, timeout=TIMEOUT,
                                    params={"sort_field": sort_field, "sort_type": sort_type})
            assert response.status_code == 200
            ids = [image["id"] for image in response.json()["images"]]
            assert len(ids) == 30 and ids[-3:] == ["odd-2", "odd-3", "odd-4"]
            if sort_field == "created_at":
                assert ids.index("odd-1") == (0 if sort_type == "asc" else 26)


# short-lived tokens


def test_short_lived_token_expires_while_paging_and_a_fresh_one_works():
    with Simulator(projects=1, images=60, seed=5, token=TOKEN, token_ttl=0.5) as sim:
        pid = sim.projects[0].project_id
        now = [1_800_000_000.0]
        sim.iam.clock = lambda: now[0]

        def page_takes_a_fifth_of_a_second(s: Simulator, project_id: str, number: int) -> None:
            now[0] += 0.2

        sim.on_request(pid, page_takes_a_fifth_of_a_second)
        body = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
            "name": sim.user, "password": sim.password, "domain": {"name": sim.domain}}}},
            "scope": {"project": {"id": pid}}}}

        def new_token() -> str:
            response = requests.post(f"{sim.url}/v3/auth/tokens", json=body, timeout=TIMEOUT)
            assert response.status_code == 201
            times = response.json()["token"]
            lifetime = (dt.datetime.strptime(times["expires_at"], "%Y-%m-%dT%H:%M:%S.%fZ")
                        - dt.datetime.strptime(times["issued_at"], "%Y-%m-%dT%H:%M:%S.%fZ"))
            assert lifetime == dt.timedelta(seconds=0.5)
            return response.headers["X-Subject-Token"]

        token = new_token()
        offset, statuses, expired = 0, [], None
        while offset < 60:
            response = requests.get(images_url(sim, pid), headers={"X-Auth-Token": token},
                                    params={"limit": 5, "offset": offset}, timeout=TIMEOUT)
            statuses.append(response.status_code)
            if response.status_code != 200:
                expired = response
                break
            offset += 5
        assert statuses == [200, 200, 200, 401]  # pages at 0, 0.2 and 0.4 s; at 0.6 s the token has ended
        assert expired.json() == {"error_code": "APIG.0307", "error_msg": "The token must be updated.",
                                  "request_id": expired.headers["X-Request-Id"]}
        fresh = new_token()
        resumed = requests.get(images_url(sim, pid), headers={"X-Auth-Token": fresh},
                               params={"limit": 5, "offset": offset}, timeout=TIMEOUT)
        assert resumed.status_code == 200
        assert resumed.json()["images"] == sim.images(pid)[offset:offset + 5]
        again = requests.get(images_url(sim, pid), headers={"X-Auth-Token": token}, timeout=TIMEOUT)
        assert again.status_code == 401 and again.json()["error_code"] == "APIG.0307"


def test_echo_faults_answer_with_the_request_as_received(sim):
    first, second = sim.projects
    sim.fail_project(first.project_id, "echo")
    answer = requests.get(images_url(sim, first.project_id), headers=AUTH, timeout=TIMEOUT)
    assert answer.status_code == 400
    body = answer.json()
    assert body["error_code"] == "WKS.0001"
    lines = body["error_msg"].split("\r\n")
    assert lines[0] == f"GET /v2/{first.project_id}/images HTTP/1.1"
    assert f"X-Auth-Token: {TOKEN}" in lines and lines[-2:] == ["", ""]
    assert requests.get(images_url(sim, second.project_id), headers=AUTH, timeout=TIMEOUT).status_code == 200

    sim.fail_project(second.project_id, "echo_iam", times=1)
    account = sim.iam.account()
    password = {"user": {"name": account.user, "password": account.password, "domain": {"name": account.domain}}}

    def token_request(project_id):
        body = {"auth": {"identity": {"methods": ["password"], "password": password},
                         "scope": {"project": {"id": project_id}}}}
        return requests.post(f"{sim.url}/v3/auth/tokens", json=body, timeout=TIMEOUT)

    assert token_request(first.project_id).status_code == 201  # only the armed project's scope echoes
    echoed = token_request(second.project_id)
    assert echoed.status_code == 400
    message = echoed.json()["error"]["message"]
    assert message.startswith("POST /v3/auth/tokens HTTP/1.1\r\n")
    assert json.loads(message.split("\r\n\r\n", 1)[1])["auth"]["identity"]["password"] == password
    assert token_request(second.project_id).status_code == 201  # times=1: consumed
