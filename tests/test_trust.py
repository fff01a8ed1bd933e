"""Production events that must never lose or corrupt history, nor report success for data not loaded.

Each test plays one event over real HTTP against the simulator, into a real DuckDB
file: a second run, a reader holding the file, a kill -9 at several moments, an
API that lies about `total_count` or drips its answers, redirects, hostile IAM
listings, expiring tokens, and bad flags or paths.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any, Iterator, List

import duckdb
import pytest

from workspace_images.pipelines.locking import RunLock
from workspace_images.pipelines.errors import RunFailed
from workspace_images.pipelines.runner import run
from workspace_images.simulator import Simulator
from tests.helpers import cli_started, TOKEN, cli, current_ids, kill_at, load, nothing_written, one_line, project_run, query, run_args, targets
from tests.recorder import Recorder


def history(db: Path) -> List[tuple]:
    """Every version of every image, without the columns that differ between identical loads."""
    return query(db, "select project_id, id, _row_hash, _dlt_valid_from, _dlt_valid_to "
                     "from workspace_images.images order by all")


def run_as_of(db: Path) -> List[Any]:
    return [r[0] for r in query(db, "select distinct as_of from workspace_images.project_runs order by 1")]


def finished_as_of(db: Path) -> List[Any]:
    return [r[0] for r in query(db, "select distinct as_of from workspace_images.project_runs where _dlt_load_id in "
                                    "(select load_id from workspace_images._dlt_loads where status = 0) order by 1")]


def assert_consistent(db: Path, sim: Simulator) -> None:
    """The history holds each project's current images exactly, and is well formed."""
    for project in sim.projects:
        assert current_ids(db, project.project_id) == sorted(i["id"] for i in sim.images(project.project_id))
    assert query(db, "select count(*) from workspace_images.images where _dlt_valid_to <= _dlt_valid_from") == [(0,)]
    assert query(db, "select count(*) from (select project_id, id from workspace_images.images "
                     "where _dlt_valid_to is null group by all having count(*) > 1)") == [(0,)]
    assert query(db, "select count(*) from (select run_id, project_id from workspace_images.project_runs "
                     "group by all having count(*) > 1)") == [(0,)]


# -- one run per database -------------------------------------------------------------------


def test_a_second_run_exits_4_and_does_nothing(sim: Simulator, tmp_path: Path) -> None:
    sim.add_project("cn-north-4", images=20)
    db = tmp_path / "x.duckdb"
    with RunLock(db, "run"):
        proc = cli(run_args(sim), tmp_path)
    assert proc.returncode == 4, proc.stderr
    line = one_line(proc.stderr)
    assert line.startswith(f"workspace-images: another workspace-images run (PID {os.getpid()}, started ")
    assert line.endswith(f"holds {db}.lock: nothing was done; run again when it has finished")
    assert not db.exists() and not (tmp_path / ".workspace_images").exists()
    assert [r for r in sim.requests if r.project_id] == []


def test_overlapping_runs_one_loads_the_other_exits_4(sim: Simulator, tmp_path: Path) -> None:
    project = sim.add_project("cn-north-4", images=350)
    sim.fail_project(project.project_id, "slow", interval=0.5)
    env = {"DLT_DATA_DIR": str(tmp_path / "dlt_data"), "RUNTIME__REQUEST_BACKOFF_FACTOR": "0.01",
           "SOURCES__WORKSPACE_IMAGES__CREDENTIALS__TOKEN": TOKEN, "PATH": os.environ["PATH"]}
    command = [sys.executable, "-m", "workspace_images.pipelines.cli", *run_args(sim, "x.duckdb", 0, "--no-models")]
    first = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while not [r for r in sim.requests if r.project_id] and time.monotonic() < deadline:
        time.sleep(0.05)
    second = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    out, err = first.communicate(timeout=60)
    assert first.returncode == 0, err
    assert second.returncode == 4, second.stderr
    assert "nothing was done" in one_line(second.stderr)
    assert query(tmp_path / "x.duckdb", "select count(distinct run_id) from workspace_images.project_runs") == [(1,)]
    assert len(current_ids(tmp_path / "x.duckdb", project.project_id)) == 350


def test_models_command_respects_the_run_lock(sim: Simulator, db: Path, tmp_path: Path) -> None:
    sim.add_project("cn-north-4", images=5)
    load(db, sim)
    with RunLock(db, "run"):
        proc = cli(["models", "--db", str(db)], tmp_path)
    assert proc.returncode == 4, proc.stderr
    assert "nothing was done" in one_line(proc.stderr)


# -- a program holding the DuckDB file ------------------------------------------------------

READER = textwrap.dedent("""
    import sys, time, duckdb
    con = duckdb.connect(sys.argv[1], read_only=True)
    con.execute("select count(*) from workspace_images.images").fetchall()
    print("holding", flush=True)
    time.sleep(float(sys.argv[2]))
""")


def hold_open(db: Path, seconds: float) -> subprocess.Popen:
    """A separate process (a dashboard) holding a read-only connection to `db`."""
    reader = subprocess.Popen([sys.executable, "-c", READER, str(db), str(seconds)],
                              stdout=subprocess.PIPE, text=True)
    assert reader.stdout is not None and reader.stdout.readline().strip() == "holding"
    return reader


def test_a_reader_holding_the_file_fails_the_load_and_the_next_run_loads_both_snapshots(
    sim: Simulator, tmp_path: Path
) -> None:
    for region in ("cn-north-4", "cn-east-3"):
        sim.add_project(region, images=120)
    db = tmp_path / "x.duckdb"
    assert cli(run_args(sim, day=0), tmp_path).returncode == 0
    before = history(db)
    sim.set_day(1)
    reader = hold_open(db, 60)
    try:
        proc = cli(run_args(sim, day=1), tmp_path, extra_env={"SOURCES__WORKSPACE_IMAGES__LOCK_TIMEOUT": "1"})
    finally:
        reader.kill()
        reader.wait()
    assert proc.returncode == 3, proc.stderr
    line = one_line(proc.stderr)
    assert f"x.duckdb is held open by PID {reader.pid} ({os.path.realpath(sys.executable)}) and stayed so for 1s" in line
    assert history(db) == before and run_as_of(db) == [sim.as_of(0)]

    sim.set_day(2)
    proc = cli(run_args(sim, day=2), tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "loading 1 package(s) an earlier run left unloaded" in proc.stderr
    assert run_as_of(db) == [sim.as_of(0), sim.as_of(1), sim.as_of(2)]
    assert_consistent(db, sim)
    reference = tmp_path / "reference.duckdb"
    for day in range(3):
        sim.set_day(day)
        load(reference, sim, day=day, models=False)
    assert history(db) == history(reference)


def test_the_run_waits_for_a_reader_that_lets_go(sim: Simulator, tmp_path: Path) -> None:
    sim.add_project("cn-north-4", images=30)
    db = tmp_path / "x.duckdb"
    assert cli(run_args(sim, day=0), tmp_path).returncode == 0
    sim.set_day(1)
    reader = hold_open(db, 120)
    try:
        proc = cli_started(run_args(sim, day=1), tmp_path, extra_env={"SOURCES__WORKSPACE_IMAGES__LOCK_TIMEOUT": "60"})
        assert proc.stderr is not None
        seen = []
        for line in proc.stderr:  # the reader lets go once the run says it waits
            seen.append(line)
            if "waiting up to 60s" in line:
                break
    finally:
        reader.kill()
        reader.wait()
    _, rest = proc.communicate(timeout=120)
    stderr = "".join(seen) + rest
    assert proc.returncode == 0, stderr
    assert f"is held open by PID {reader.pid}" in stderr and "waiting up to 60s" in stderr
    assert run_as_of(db) == [sim.as_of(0), sim.as_of(1)]


# -- kill -9 at several moments -------------------------------------------------------------


@pytest.mark.parametrize("point, kept", [
    ("extract", False),
    ("normalize", True),
    ("load-merge", True),
    ("load-complete", True),
    ("models", True),
])
def test_kill_9_loses_nothing_and_the_next_run_loads_its_own_snapshot(
    sim: Simulator, tmp_path: Path, point: str, kept: bool
) -> None:
    for region in ("cn-north-4", "ap-southeast-1", "cn-east-3"):
        sim.add_project(region, images=150)
    db = tmp_path / "x.duckdb"
    assert cli(run_args(sim, day=0), tmp_path).returncode == 0
    sim.set_day(1)
    kill_at(point, run_args(sim, day=1), tmp_path)
    sim.set_day(2)
    proc = cli(run_args(sim, day=2), tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert ("an earlier run left unloaded" in proc.stderr) == (kept and point != "models")
    days = [0, 1, 2] if kept else [0, 2]
    assert run_as_of(db) == [sim.as_of(d) for d in days]
    assert_consistent(db, sim)
    reference = tmp_path / "reference.duckdb"
    for day in days:
        sim.set_day(day)
        load(reference, sim, day=day, models=False)
    assert history(db) == history(reference)
    current = sum(len(sim.images(p.project_id)) for p in sim.projects)
    assert query(db, "select count(*) from analytics.image_inventory") == [(current,)]


# -- the API's answers ------------------------------------------------------------------------


@pytest.mark.parametrize("reported", [100, 300])
def test_a_total_count_that_disagrees_with_the_pages_fails_the_project_and_retires_nothing(
    sim: Simulator, db: Path, reported: int
) -> None:
    lying = sim.add_project("cn-north-4", images=250)
    honest = sim.add_project("cn-east-3", images=40)
    load(db, sim, day=0)
    before = history(db)
    sim.set_day(1)
    sim.fail_project(lying.project_id, "total_count", total=reported)
    result = load(db, sim, day=1)
    assert result.exit_code == 1
    row = project_run(db, result.run_id, lying.project_id)
    assert (row["status"], row["error_code"], row["total_count"]) == ("failed", "WI.COUNT_MISMATCH", reported)
    served = len(sim.images(lying.project_id))
    assert row["error_msg"] == (f"the API reports total_count {reported} but its pages hold {served} distinct "
                                "images, the same on two passes")
    assert [r for r in history(db) if r[0] == lying.project_id] == [r for r in before if r[0] == lying.project_id]
    assert project_run(db, result.run_id, honest.project_id)["status"] == "ok"
    assert current_ids(db, honest.project_id) == sorted(i["id"] for i in sim.images(honest.project_id))


def test_a_total_count_that_under_reports_still_reads_every_page(sim: Simulator, db: Path) -> None:
    project = sim.add_project("cn-north-4", images=250)
    sim.fail_project(project.project_id, "total_count", total=100)
    load(db, sim)
    offsets = [int(r.query["offset"]) for r in sim.requests if r.project_id == project.project_id]
    assert offsets == [0, 100, 200] * 2  # every page, twice: the count disagreed the same way both times


def test_a_dripping_body_is_cut_at_request_timeout(sim: Simulator, db: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNTIME__REQUEST_TIMEOUT", "1")
    monkeypatch.setenv("RUNTIME__REQUEST_MAX_ATTEMPTS", "2")
    dripping = sim.add_project("cn-north-4", images=30)
    fine = sim.add_project("cn-east-3", images=30)
    sim.fail_project(dripping.project_id, "drip", interval=0.05)
    began = time.monotonic()
    result = load(db, sim)
    took = time.monotonic() - began
    assert result.exit_code == 1
    row = project_run(db, result.run_id, dripping.project_id)
    assert (row["status"], row["error_code"], row["requests"]) == ("failed", "WI.CONNECTION", 2)
    assert row["error_msg"] == "ReadTimeout after 2 attempt(s): no whole answer within 1s (request_timeout)"
    assert project_run(db, result.run_id, fine.project_id)["status"] == "ok"
    assert took < 10, took


@pytest.mark.parametrize("kind", ["silent", "drip_headers"])
def test_a_silent_or_slow_server_is_cut_at_project_timeout(
    sim: Simulator, db: Path, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    monkeypatch.setenv("RUNTIME__REQUEST_TIMEOUT", "60")
    stuck = sim.add_project("cn-north-4", images=30)
    fine = sim.add_project("cn-east-3", images=30)
    sim.fail_project(stuck.project_id, kind, **({"interval": 0.5} if kind == "drip_headers" else {}))
    began = time.monotonic()
    result = load(db, sim, project_timeout=2)
    took = time.monotonic() - began
    row = project_run(db, result.run_id, stuck.project_id)
    assert (row["status"], row["error_code"]) == ("failed", "WI.TIMEOUT")
    assert row["error_msg"] == "the project took longer than project_timeout (2s); 0 page(s) read"
    assert project_run(db, result.run_id, fine.project_id)["status"] == "ok"
    assert took < 10, took


# -- redirects ------------------------------------------------------------------------------


def test_a_workspace_redirect_is_not_followed_with_the_token(sim: Simulator, db: Path) -> None:
    project = sim.add_project("cn-north-4", images=10)
    with Recorder() as elsewhere:
        sim.redirect(f"/v2/{project.project_id}/images", elsewhere.url + "/steal")
        result = load(db, sim)
        assert elsewhere.requests == []
    row = project_run(db, result.run_id, project.project_id)
    assert (row["status"], row["http_status"], row["error_code"]) == ("failed", 307, "WI.REDIRECT")
    assert row["error_msg"] == (f"HTTP 307 redirect to {elsewhere.url}: not followed, credentials are never "
                                "sent to another address; check the endpoint")


def test_an_iam_redirect_is_not_followed_with_the_password(sim: Simulator, tmp_path: Path) -> None:
    project = sim.add_project("cn-north-4", images=10)
    account = sim.iam.account()
    with Recorder() as elsewhere:
        sim.redirect("/v3/auth/tokens", elsewhere.url + "/v3/auth/tokens")
        proc = cli(["run", "--endpoint", sim.url, "--iam-endpoint", sim.url, "--db", "x.duckdb",
                    "--project", f"cn-north-4:{project.project_id}"], tmp_path, token=None, extra_env={
            "SOURCES__WORKSPACE_IMAGES__CREDENTIALS__USER_NAME": account.user,
            "SOURCES__WORKSPACE_IMAGES__CREDENTIALS__PASSWORD": account.password,
            "SOURCES__WORKSPACE_IMAGES__CREDENTIALS__DOMAIN_NAME": account.domain,
        })
        assert elsewhere.requests == []
    assert proc.returncode == 3, proc.stderr
    line = one_line(proc.stderr)
    assert f"answered HTTP 307 with a redirect to {elsewhere.url}: not followed, the password is never sent" in line
    assert account.password not in proc.stderr + proc.stdout


def test_a_discovery_next_link_to_another_host_is_not_followed(sim: Simulator, tmp_path: Path) -> None:
    sim.add_project("cn-north-4", images=10)
    with Recorder() as elsewhere:
        sim.iam.set_listing_paging(per_page=50, next_url=elsewhere.url + "/v3/auth/projects?page=2")
        proc = cli(["run", "--endpoint", sim.url, "--iam-endpoint", sim.url, "--db", "x.duckdb", "--discover"],
                   tmp_path)
        assert elsewhere.requests == []
    assert proc.returncode == 3, proc.stderr
    assert (f"links its next page to another address ({elsewhere.url}); not followed"
            in one_line(proc.stderr))


# -- hostile discovery listings ------------------------------------------------------------


def test_hostile_project_ids_from_discovery_reach_neither_urls_nor_sql(sim: Simulator, db: Path) -> None:
    listed = sim.add_project("cn-north-4", images=30)
    bystander = sim.add_project("cn-east-3", images=30)
    load(db, sim, projects=targets(sim))  # both loaded once, explicitly
    sim.iam.set_enabled(bystander.project_id, False)  # not in the next run: discovery skips it
    hostile = [
        f"{bystander.project_id}/images#') OR ('1'='1",
        "x'); DROP TABLE workspace_images.images; --",
        "abc{0}",
    ]
    for number, project_id in enumerate(hostile):
        sim.iam.add_raw_listing_entry({"id": project_id, "name": f"cn-north-4_evil{number}", "enabled": True})
    sim.set_day(1)
    result = run(db, endpoint=sim.url, iam_endpoint=sim.url, token=TOKEN, discover=True, as_of=sim.as_of(1),
                 pipelines_dir=db.parent / "pipelines")
    assert result.exit_code == 1
    failed = {p["project_id"]: p for p in result.failed}
    assert sorted(failed) == sorted(hostile)
    for project_id in hostile:
        assert (failed[project_id]["error_code"], failed[project_id]["discovered"]) == ("WI.INVALID_PROJECT", True)
        assert failed[project_id]["error_msg"].endswith("which is not letters, digits, '-' or '_': not requested")
    assert project_run(db, result.run_id, listed.project_id)["status"] == "ok"
    assert [r.path for r in sim.requests if r.project_id and r.project_id != listed.project_id
            and r.path.startswith("/v2/") and r.project_id != bystander.project_id] == []
    assert len(current_ids(db, bystander.project_id)) == 30  # nothing retired outside the run
    assert current_ids(db, listed.project_id) == sorted(i["id"] for i in sim.images(listed.project_id))


# -- expiring tokens ------------------------------------------------------------------------


def password_run(sim: Simulator, db: Path, **kwargs: Any) -> Any:
    account = sim.iam.account()
    credentials = {"user_name": account.user, "password": account.password, "domain_name": account.domain}
    return run(db, projects=targets(sim), endpoint=sim.url, iam_endpoint=sim.url, credentials=credentials,
               as_of=sim.as_of(), pipelines_dir=db.parent / "pipelines", **kwargs)


def test_tokens_that_expire_again_and_again_are_renewed_and_paging_goes_on(sim: Simulator, db: Path) -> None:
    project = sim.add_project("cn-north-4", images=950)
    sim.on_request(project.project_id, lambda s, pid, n: s.iam.expire_tokens() if n % 3 == 0 else None)
    result = password_run(sim, db)
    assert result.exit_code == 0, result.failed
    assert current_ids(db, project.project_id) == sorted(i["id"] for i in sim.images(project.project_id))
    answered = [(int(r.query["offset"]), r.status) for r in sim.requests if r.project_id == project.project_id]
    refused = [offset for offset, status in answered if status == 401]
    assert len(refused) >= 3
    read = [offset for offset, status in answered if status == 200]
    assert read == list(range(0, 1000, 100))  # each page read once, resumed where it was refused
    row = project_run(db, result.run_id, project.project_id)
    assert (row["status"], row["images"], row["pages"]) == ("ok", 950, 10)


def test_a_token_refused_right_after_renewal_fails_the_project(sim: Simulator, db: Path) -> None:
    project = sim.add_project("cn-north-4", images=250)
    def refuse_every_token_from_now_on(s: Simulator, pid: str, n: int) -> None:
        if n == 1:
            s.fail_project(pid, "status", status=401, error_code="APIG.0307", error_msg="The token must be updated.")

    sim.on_request(project.project_id, refuse_every_token_from_now_on)
    result = password_run(sim, db)
    assert result.exit_code == 1
    row = project_run(db, result.run_id, project.project_id)
    assert (row["status"], row["http_status"], row["error_code"]) == ("failed", 401, "WI.TOKEN_EXPIRED")
    assert row["error_msg"] == "The token must be updated. (refused again right after the token was renewed)"
    assert [r.status for r in sim.requests if r.project_id == project.project_id] == [200, 401, 401]


# -- bad flags, paths and settings: one line, the right exit code, nothing written ----------


@pytest.mark.parametrize("as_of, message", [
    ("0001-01-01T00:00:00+01:00", "is not a date or timestamp"),
    ("2026-11-01T12:00:00+99:99", "is not a date or timestamp"),
    ("2999-01-01", "is in the future"),
    ("1999-12-31", "is before 2000-01-01"),
])
def test_impossible_as_of_exits_2(sim: Simulator, tmp_path: Path, as_of: str, message: str) -> None:
    sim.add_project("cn-north-4", images=5)
    work = tmp_path / "work"
    work.mkdir()
    args = [a if a != sim.as_of().isoformat() else as_of for a in run_args(sim)]
    proc = cli(args, work)
    assert proc.returncode == 2, proc.stderr
    assert message in one_line(proc.stderr)
    nothing_written(work)


@pytest.mark.parametrize("setting, value, message", [
    ("RUNTIME__REQUEST_TIMEOUT", "0", "[runtime] request_timeout must be more than 0 seconds"),
    ("RUNTIME__REQUEST_TIMEOUT", "-5", "[runtime] request_timeout must be more than 0 seconds"),
    ("RUNTIME__REQUEST_TIMEOUT", "soon", "[runtime] request_timeout must be a number"),
    ("RUNTIME__REQUEST_MAX_ATTEMPTS", "0", "[runtime] request_max_attempts must be at least 1"),
    ("SOURCES__WORKSPACE_IMAGES__PROJECT_TIMEOUT", "0", "project_timeout must be more than 0 seconds"),
    ("SOURCES__WORKSPACE_IMAGES__LOCK_TIMEOUT", "-1", "lock_timeout must be 0 or more seconds"),
])
def test_bad_time_settings_exit_2(sim: Simulator, tmp_path: Path, setting: str, value: str, message: str) -> None:
    sim.add_project("cn-north-4", images=5)
    proc = cli(run_args(sim), tmp_path, extra_env={setting: value})
    assert proc.returncode == 2, proc.stderr
    assert message in one_line(proc.stderr)
    nothing_written(tmp_path)


@pytest.fixture
def readonly_folder(tmp_path: Path) -> Iterator[Path]:
    """A folder nobody may write in. Root ignores permissions, so as root: a read-only
    mount, or where mounting is not allowed, an immutable folder (chattr +i)."""
    folder = tmp_path / "ro"
    folder.mkdir()
    if os.geteuid() != 0:
        folder.chmod(0o555)
        yield folder
        folder.chmod(0o755)
        return
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(folder)]).returncode == 0:
        try:
            yield folder
        finally:
            subprocess.run(["umount", str(folder)], check=True)
        return
    subprocess.run(["chattr", "+i", str(folder)], check=True)
    try:
        yield folder
    finally:
        subprocess.run(["chattr", "-i", str(folder)], check=True)


def test_a_folder_that_cannot_be_written_exits_2(sim: Simulator, tmp_path: Path, readonly_folder: Path) -> None:
    sim.add_project("cn-north-4", images=5)
    (tmp_path / "file").write_text("")
    proc = cli(run_args(sim, "file/x.duckdb"), tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert "folder file does not exist" in one_line(proc.stderr)
    proc = cli(run_args(sim, str(readonly_folder / "x.duckdb")), tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert one_line(proc.stderr).startswith(
        f"workspace-images: error: --db {readonly_folder / 'x.duckdb'}: cannot write in {readonly_folder} (")
    assert list(readonly_folder.iterdir()) == []


def test_another_programs_table_exits_2(sim: Simulator, tmp_path: Path) -> None:
    sim.add_project("cn-north-4", images=5)
    db = tmp_path / "x.duckdb"
    with duckdb.connect(str(db)) as con:
        con.execute("create schema workspace_images")
        con.execute("create table workspace_images.project_runs (run_id varchar, as_of varchar)")
        con.execute("insert into workspace_images.project_runs values ('r', 'yesterday')")
    proc = cli(run_args(sim), tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert ("has a table workspace_images.project_runs that workspace-images did not write "
            "(column as_of is varchar, not timestamp with time zone)") in one_line(proc.stderr)
    assert query(db, "select * from workspace_images.project_runs") == [("r", "yesterday")]


def test_report_to_an_unwritable_place_exits_2(sim: Simulator, db: Path, tmp_path: Path) -> None:
    sim.add_project("cn-north-4", images=5)
    load(db, sim)
    (tmp_path / "taken").write_text("")
    for flag in ("--csv", "--parquet", "--html"):
        proc = cli(["report", "--db", str(db), flag, str(tmp_path / "taken" / "out")], tmp_path)
        assert proc.returncode == 2, proc.stderr
        assert f"{flag} {tmp_path / 'taken' / 'out'}: cannot write there (" in one_line(proc.stderr)


def test_a_load_that_silently_loads_nothing_is_a_failure(
    sim: Simulator, db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The guard behind every "ok": this run's own project_runs rows must be in the database.

    No real event is known to make dlt's load return without loading; the load is
    replaced by one that does nothing, to show the run then fails instead of saying ok.
    """
    import dlt

    sim.add_project("cn-north-4", images=10)
    load(db, sim, day=0)
    monkeypatch.setattr(dlt.Pipeline, "load", lambda self, *args, **kwargs: None)
    sim.set_day(1)
    with pytest.raises(RunFailed) as failed:
        load(db, sim, day=1)
    assert str(failed.value) == (f"the load ended but {db} holds 0 project_runs rows of this run, not 1: "
                                 "nothing of this run counts as loaded; run again")


def test_a_package_that_cannot_load_stops_every_run_until_dropped_by_hand(
    sim: Simulator, tmp_path: Path
) -> None:
    sim.add_project("cn-north-4", images=120)
    db = tmp_path / "x.duckdb"
    assert cli(run_args(sim, day=0), tmp_path).returncode == 0
    before = history(db)
    sim.set_day(1)
    kill_at("load", run_args(sim, day=1), tmp_path)
    workdir = tmp_path / ".workspace_images" / "x.duckdb"
    jobs = list((workdir / "workspace_images" / "load" / "normalized").glob("*/new_jobs/images.*.parquet"))
    assert len(jobs) == 1
    jobs[0].write_bytes(b"not parquet")  # a file the database cannot read, ever
    sim.set_day(2)
    for _ in range(2):
        proc = cli(run_args(sim, day=2), tmp_path)
        assert proc.returncode == 3, proc.stderr
        line = one_line(proc.stderr)
        assert line.startswith("workspace-images: run failed: an earlier run's data (")
        assert "could not be loaded (load: Invalid Input Error: File '" in line
        assert "' too small to be a Parquet file); nothing new was fetched; it is tried again by the next run" in line
        assert line.endswith(f"if it can never load, drop it: dlt pipeline --pipelines-dir {workdir} "
                             "workspace_images abort-packages")
        # the run log rows of the package that did not finish vouch for nothing
        assert history(db) == before and finished_as_of(db) == [sim.as_of(0)]
        assert query(db, "select distinct as_of from analytics.stg_project_runs") == [(sim.as_of(0),)]
    # what the message says to run, confirmed with -y (it asks when run at a terminal)
    dropped = subprocess.run([str(Path(sys.executable).parent / "dlt"), "-y", "pipeline", "--pipelines-dir",
                              str(workdir), "workspace_images", "abort-packages"], capture_output=True, text=True,
                             cwd=tmp_path, env={**os.environ, "DLT_DATA_DIR": str(tmp_path / "dlt_data")})
    assert dropped.returncode == 0, dropped.stdout + dropped.stderr
    proc = cli(run_args(sim, day=2), tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "removed 1 project_runs row(s) of load packages that never finished" in proc.stderr
    assert run_as_of(db) == [sim.as_of(0), sim.as_of(2)]
    assert_consistent(db, sim)
