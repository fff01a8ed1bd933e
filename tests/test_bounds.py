"""Bounded answers: a body that inflates past `max_answer_bytes` or a page of more images than
`limit` fails its project alone, and the simulator sends both as a hostile service would."""

from __future__ import annotations

import resource
import zlib
from pathlib import Path

import pytest
import requests

from workspace_images.simulator import Simulator
from workspace_images.settings import DEFAULT_MAX_ANSWER_BYTES
from tests.helpers import TOKEN, cli, current_ids, load, nothing_written, one_line, project_run, query, run_args

GIB = 1024 * 1024 * 1024
TOO_LARGE = ("the answer is larger than max_answer_bytes ({} bytes, decoded): reading stopped there; "
             "raise max_answer_bytes if the API's pages are really that large")


def images_url(sim: Simulator, project_id: str) -> str:
    return f"{sim.url}/v2/{project_id}/images"


def test_gzip_bomb_inflates_to_its_size_from_a_thousandth_on_the_wire(sim: Simulator) -> None:
    project = sim.add_project("cn-north-4", images=3)
    sim.fail_project(project.project_id, "gzip_bomb", size=5_000_000, times=1)
    answer = requests.get(images_url(sim, project.project_id), headers={"X-Auth-Token": TOKEN}, stream=True,
                          timeout=10)
    wire = answer.raw.read(decode_content=False)
    assert (answer.status_code, answer.headers["Content-Encoding"], answer.headers["Transfer-Encoding"]) == (
        200, "gzip", "chunked")
    assert len(wire) < 10_000
    body = zlib.decompress(wire, 16 + zlib.MAX_WBITS)
    assert len(body) == 5_000_000
    assert body == b'{"total_count":1,"images":[{"id":"bomb","name":"' + b"0" * (5_000_000 - 52) + b'"}]}'
    normal = requests.get(images_url(sim, project.project_id), headers={"X-Auth-Token": TOKEN}, timeout=10)
    assert len(normal.json()["images"]) == 3


def test_oversized_page_ignores_limit_with_distinct_ids(sim: Simulator) -> None:
    project = sim.add_project("cn-north-4", images=3)
    sim.fail_project(project.project_id, "oversized_page", size=250)
    page = requests.get(images_url(sim, project.project_id), params={"limit": 100},
                        headers={"X-Auth-Token": TOKEN}, timeout=10).json()
    assert (page["total_count"], len(page["images"]), len({i["id"] for i in page["images"]})) == (3, 250, 250)
    assert [i["id"] for i in page["images"][:3]] == [i["id"] for i in sim.images(project.project_id)]


@pytest.mark.parametrize("kind, size, message", [
    ("gzip_bomb", None, "the gzip_bomb fault needs an integer size of at least 52, got None"),
    ("gzip_bomb", 51, "the gzip_bomb fault needs an integer size of at least 52, got 51"),
    ("oversized_page", 0, "the oversized_page fault needs an integer size of at least 1, got 0"),
    ("status", 5, "size applies only to the gzip_bomb and oversized_page faults, not to 'status'"),
])
def test_fault_sizes_are_checked(sim: Simulator, kind: str, size: int | None, message: str) -> None:
    project = sim.add_project("cn-north-4", images=3)
    with pytest.raises(ValueError) as raised:
        sim.fail_project(project.project_id, kind, size=size)
    assert str(raised.value) == message


def hostile_day_then_ordinary_day(sim: Simulator, tmp_path: Path, kind: str, size: int) -> tuple[str, str]:
    """A good and a hostile project through the CLI: the failure line of the hostile day, and the
    first CLI run's project_runs check; the next ordinary day exits 0 with both loaded."""
    good = sim.add_project("cn-north-4", images=150)
    bad = sim.add_project("cn-east-3", images=120)
    sim.fail_project(bad.project_id, kind, size=size)
    proc = cli(run_args(sim), tmp_path)
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    failed = [line for line in proc.stderr.splitlines() if line.startswith("failed: ")]
    db = tmp_path / "x.duckdb"
    assert current_ids(db, good.project_id) == sorted(i["id"] for i in sim.images(good.project_id))
    assert current_ids(db, bad.project_id) == []
    (row,) = query(db, "select status, http_status, error_code, error_msg from workspace_images.project_runs "
                       "where project_id = ?", [bad.project_id])
    sim.clear_faults()
    sim.set_day(1)
    again = cli(run_args(sim, "x.duckdb", 1), tmp_path)
    assert again.returncode == 0, again.stderr
    assert current_ids(db, bad.project_id) == sorted(i["id"] for i in sim.images(bad.project_id))
    assert current_ids(db, good.project_id) == sorted(i["id"] for i in sim.images(good.project_id))
    assert failed == [f"failed: cn-east-3:{bad.project_id}: HTTP 200 {row[2]}: {row[3]}"]
    assert (row[0], row[1]) == ("failed", 200)
    return row[2], row[3]


def test_a_1_gib_gzip_bomb_fails_its_project_alone_within_1_gib_of_memory(sim: Simulator, tmp_path: Path) -> None:
    code, message = hostile_day_then_ordinary_day(sim, tmp_path, "gzip_bomb", GIB)
    assert (code, message) == ("WI.ANSWER_TOO_LARGE", TOO_LARGE.format(DEFAULT_MAX_ANSWER_BYTES))
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # the largest child process yet
    assert peak_kib < GIB // 1024, f"a CLI run peaked at {peak_kib} KiB"


def test_a_page_of_more_images_than_limit_is_malformed(sim: Simulator, tmp_path: Path) -> None:
    code, message = hostile_day_then_ordinary_day(sim, tmp_path, "oversized_page", 5000)
    assert (code, message) == (
        "WI.MALFORMED_RESPONSE",
        "malformed response: the page at offset 0 holds 5000 images, more than the limit of 100 asked for",
    )


def test_a_plain_answer_past_the_setting_fails_its_project(
    sim: Simulator, db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    small = sim.add_project("cn-north-4", images=2)
    large = sim.add_project("cn-east-3", images=100)
    monkeypatch.setenv("SOURCES__WORKSPACE_IMAGES__MAX_ANSWER_BYTES", "4096")
    result = load(db, sim)
    assert result.exit_code == 1
    row = project_run(db, result.run_id, large.project_id)
    assert (row["status"], row["http_status"], row["error_code"], row["error_msg"], row["requests"]) == (
        "failed", 200, "WI.ANSWER_TOO_LARGE", TOO_LARGE.format(4096), 1)
    assert project_run(db, result.run_id, small.project_id)["status"] == "ok"


@pytest.mark.parametrize("value, message", [
    ("0", "max_answer_bytes must be a whole number of bytes from 1024 to 1073741824, got 0"),
    ("1073741825", "max_answer_bytes must be a whole number of bytes from 1024 to 1073741824, got 1073741825"),
    ("lots", "setting max_answer_bytes must be a int"),
])
def test_max_answer_bytes_out_of_range_exits_2(sim: Simulator, tmp_path: Path, value: str, message: str) -> None:
    sim.add_project("cn-north-4", images=5)
    proc = cli(run_args(sim), tmp_path, extra_env={"SOURCES__WORKSPACE_IMAGES__MAX_ANSWER_BYTES": value})
    assert proc.returncode == 2, proc.stderr
    assert message in one_line(proc.stderr)
    nothing_written(tmp_path)
