"""Pure functions: timestamp parsing, settings checks, Arrow rows."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pytest

from workspace_images.config import ConfigError, Project, check_endpoint, parse_filters, parse_projects
from workspace_images.gate import CpuGate
from workspace_images.hashing import row_hash
from workspace_images.failures import MalformedResponse
from workspace_images.pages import read_page
from workspace_images.rows import images_table
from workspace_images.values import parse_timestamp

UTC = dt.timezone.utc


@pytest.mark.parametrize(
    "text, expected",
    [
        ("2025-03-05T10:22:11Z", dt.datetime(2025, 3, 5, 10, 22, 11, tzinfo=UTC)),
        ("2025-03-05T10:22:11.000Z", dt.datetime(2025, 3, 5, 10, 22, 11, tzinfo=UTC)),
        ("2025-03-05T10:22:11.123456789Z", dt.datetime(2025, 3, 5, 10, 22, 11, 123456, tzinfo=UTC)),
        ("2025-03-05 10:22:11", dt.datetime(2025, 3, 5, 10, 22, 11, tzinfo=UTC)),
        ("2025-03-05T18:22:11+08:00", dt.datetime(2025, 3, 5, 10, 22, 11, tzinfo=UTC)),
        ("2025-03-05T18:22:11+0800", dt.datetime(2025, 3, 5, 10, 22, 11, tzinfo=UTC)),
        ("2025-03-05T08:22:11-02:00", dt.datetime(2025, 3, 5, 10, 22, 11, tzinfo=UTC)),
        ("2025-03-05 10:22:11 UTC", dt.datetime(2025, 3, 5, 10, 22, 11, tzinfo=UTC)),
        ("2025-03-05T10:22", dt.datetime(2025, 3, 5, 10, 22, tzinfo=UTC)),
        ("2025-03-05", dt.datetime(2025, 3, 5, tzinfo=UTC)),
        (1741170131, dt.datetime(2025, 3, 5, 10, 22, 11, tzinfo=UTC)),
        (1741170131000, dt.datetime(2025, 3, 5, 10, 22, 11, tzinfo=UTC)),
        ("", None),
        (None, None),
        ("yesterday", None),
        ("2025-13-05T10:22:11Z", None),
        (True, None),
    ],
)
def test_parse_timestamp(text: object, expected: object) -> None:
    assert parse_timestamp(text) == expected


def test_parse_projects_dedupes_and_filters_regions() -> None:
    given = ["cn-north-4:aaa", "cn-east-3:bbb", "cn-north-4:aaa", {"region": "ap-southeast-1", "project_id": "ccc"}]
    assert parse_projects(given) == [
        Project("cn-north-4", "aaa"), Project("cn-east-3", "bbb"), Project("ap-southeast-1", "ccc")
    ]
    assert parse_projects(given, ["cn-east-3"]) == [Project("cn-east-3", "bbb")]
    assert parse_projects('["cn-north-4:aaa"]') == [Project("cn-north-4", "aaa")]
    with pytest.raises(ConfigError, match="given for two regions"):
        parse_projects(["cn-north-4:aaa", "cn-east-3:aaa"])


@pytest.mark.parametrize("template", ["https://workspace.{region}.myhuaweicloud.com", "http://127.0.0.1:8080/"])
def test_check_endpoint_accepts(template: str) -> None:
    assert check_endpoint(template) == template.rstrip("/")


@pytest.mark.parametrize("template, message", [
    ("", "is empty"), ("workspace.example.com", "not an http(s) URL"), ("https://{zone}.x", "only placeholder"),
])
def test_check_endpoint_rejects(template: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        check_endpoint(template)


def test_filters_reject_paging_parameters() -> None:
    assert parse_filters({"os_type": "Linux", "architecture": None}) == {"os_type": "Linux"}
    with pytest.raises(ConfigError, match="unknown filter.*limit, offset"):
        parse_filters({"offset": 5, "limit": 10})


def test_images_table_types_known_fields_and_keeps_new_ones() -> None:
    images = [
        {"id": "a", "name": "名", "min_ram": "2048", "min_disk": 40, "created_at": "2025-01-01 00:00:00",
         "gpu": True, "tags": ["x", "y"], "region": "shadowed", "score": 1},
        {"id": "b", "name": "b", "min_ram": None, "min_disk": 50.0, "created_at": "nonsense", "score": 2.5},
    ]
    fetched = dt.datetime(2026, 1, 1, tzinfo=UTC)
    table = images_table(images, "p1", "cn-north-4", fetched)
    assert table.schema.field("min_ram").type == pa.int64()
    assert table.column("min_ram").to_pylist() == [2048, None]
    assert table.column("min_disk").to_pylist() == [40, 50]
    assert table.column("created_at").to_pylist() == [dt.datetime(2025, 1, 1, tzinfo=UTC), None]
    assert table.column("gpu").to_pylist() == [True, None]
    assert table.column("tags").to_pylist() == ['["x", "y"]', None]
    assert table.column("score").to_pylist() == [1.0, 2.5]
    assert table.column("api_region").to_pylist() == ["shadowed", None]
    assert table.column("region").to_pylist() == ["cn-north-4", "cn-north-4"]
    assert not table.schema.field("id").nullable
    assert table.column("_row_hash").to_pylist() == [row_hash(i, "p1", "cn-north-4") for i in images]


def test_row_hash_ignores_key_order_but_not_values() -> None:
    a = {"id": "x", "name": "n", "min_disk": 40}
    assert row_hash(a, "p", "r") == row_hash(dict(reversed(list(a.items()))), "p", "r")
    assert row_hash(a, "p", "r") != row_hash({**a, "min_disk": 41}, "p", "r")
    assert row_hash(a, "p", "r") != row_hash(a, "q", "r")


def test_row_hash_is_the_one_histories_were_written_with() -> None:
    """The hash decides what is a new version: the one of an image must never change between
    releases, or the first run after an upgrade would version every image."""
    image = {"id": "d6b368bc-1", "name": "Windows10_企业版", "min_ram": 4096, "created_at": "2025-08-15T11:39:16Z",
             "tags": {"b": 1, "a": [None, True, 1.5]}}
    assert row_hash(image, "p1", "cn-north-4") == "91a9c35198a5cb7cf00365d52e38fcf6"


@pytest.mark.parametrize(
    "body, message",
    [
        (b'{"total_count": 1, "images": [{"id": "a"', "body is not JSON (JSONDecodeError: Expecting ',' delimiter: line 1 column 41 (char 40))"),
        (b'[]', "expected an object with an `images` list"),
        (b'{"total_count": 0, "images": {}}', "expected an object with an `images` list"),
        (b'{"images": []}', "`total_count` is not a non-negative integer: None"),
        (b'{"total_count": "3", "images": []}', "`total_count` is not a non-negative integer: '3'"),
        (b'{"total_count": true, "images": []}', "`total_count` is not a non-negative integer: True"),
        (b'{"total_count": -1, "images": []}', "`total_count` is not a non-negative integer: -1"),
        (b'{"total_count": 1.0, "images": []}', "`total_count` is not a non-negative integer: 1.0"),
        (b'{"total_count": 2, "images": [{"id": "a"}, {"name": "b"}]}', "an image without an `id`"),
        (b'{"total_count": 1, "images": ["a"]}', "an image without an `id`"),
    ],
)
def test_a_page_that_is_not_the_api_s_answer_is_refused(body: bytes, message: str) -> None:
    with pytest.raises(MalformedResponse) as raised:
        read_page(body)
    assert str(raised.value) == f"malformed response: {message}"


def test_a_page_is_its_images_with_its_total_count() -> None:
    page = read_page(b'{"total_count": 250, "images": [{"id": 7, "name": "a"}, {"id": "b"}], "extra": 1}')
    assert (list(page), page.total_count) == ([{"id": 7, "name": "a"}, {"id": "b"}], 250)


class FakeProcess:
    """A clock and a CPU-time counter that the test moves by hand."""

    def __init__(self) -> None:
        self.now = 0.0
        self.used = 0.0

    def run(self, seconds: float, busy: float) -> None:
        self.now += seconds
        self.used += seconds * busy


def test_cpu_gate_halves_to_two_when_busy_and_grows_back_when_waiting() -> None:
    process = FakeProcess()
    gate = CpuGate(8, cpu=lambda: process.used, clock=lambda: process.now, window=0.1)
    limits = []
    for busy in (1.0, 0.95, 0.92, 1.0, 0.5, 0.5, 0.8, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1):
        with gate:
            process.run(0.2, busy)
        limits.append(gate.limit)
    assert limits == [4, 2, 2, 2, 3, 4, 4, 5, 6, 7, 8, 8, 8, 8]
    with gate:
        process.run(0.05, 1.0)  # shorter than the window: not looked at yet
    assert gate.limit == 8


def test_cpu_gate_keeps_a_concurrency_of_one_and_lets_no_more_in_than_its_limit() -> None:
    import threading

    process = FakeProcess()
    single = CpuGate(1, cpu=lambda: process.used, clock=lambda: process.now)
    with single:
        process.run(1.0, 1.0)
    assert single.limit == 1

    gate = CpuGate(2, cpu=lambda: process.used, clock=lambda: process.now)
    inside, most_inside, release = [0], [0], threading.Event()
    lock = threading.Lock()

    def work() -> None:
        with gate:
            with lock:
                inside[0] += 1
                most_inside[0] = max(most_inside[0], inside[0])
            release.wait(5)
            with lock:
                inside[0] -= 1

    threads = [threading.Thread(target=work) for _ in range(5)]
    for thread in threads:
        thread.start()
    for _ in range(100):
        if gate.active == 2:
            break
        threading.Event().wait(0.01)
    assert gate.active == 2
    release.set()
    for thread in threads:
        thread.join(5)
    assert most_inside[0] == 2 and gate.active == 0
