"""Helpers the tests share: runs of the real pipeline (in process and through the CLI) into temp
DuckDB files, and reading them back. Fixtures are in conftest.py."""

from __future__ import annotations

import datetime as dt
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

import duckdb

from workspace_images.pipelines.runner import RunResult, run
from workspace_images.simulator import Simulator

TOKEN = "sim-token-5f3c1a9e-do-not-leak"
HERE = Path(__file__).resolve().parent


def load(db: Path, sim: Simulator, projects: List[str] | None = None, day: int | None = None, **kwargs: Any) -> RunResult:
    """Run the real pipeline against `sim` into `db`, as of the simulator's day."""
    targets = projects if projects is not None else [f"{p.region}:{p.project_id}" for p in sim.projects]
    return run(
        db,
        projects=targets,
        endpoint=sim.url,
        token=TOKEN,
        as_of=sim.as_of(day),
        pipelines_dir=db.parent / "pipelines",
        **kwargs,
    )


def query(db: Path, sql: str, params: List[Any] | None = None) -> List[tuple]:
    with duckdb.connect(str(db), read_only=True) as con:
        return con.execute(sql, params or []).fetchall()


def current_ids(db: Path, project_id: str) -> List[str]:
    return [
        r[0]
        for r in query(
            db,
            "select id from workspace_images.images where project_id = ? and _dlt_valid_to is null order by id",
            [project_id],
        )
    ]


def project_run(db: Path, run_id: str, project_id: str) -> Dict[str, Any]:
    with duckdb.connect(str(db), read_only=True) as con:
        cur = con.execute(
            "select * from workspace_images.project_runs where run_id = ? and project_id = ?", [run_id, project_id]
        )
        names = [d[0] for d in cur.description]
        rows = cur.fetchall()
    assert len(rows) == 1, rows
    return dict(zip(names, rows[0]))


def utc(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=dt.timezone.utc)


def targets(sim: Simulator, domain: str | None = None) -> List[str]:
    """`region:project_id` of every project of an account (the default one when None)."""
    return [f"{p.region}:{p.project_id}" for p in sim.projects_of(domain)]


def cli_env(cwd: Path, token: Optional[str] = TOKEN, extra_env: Optional[Dict[str, str]] = None) -> Dict[str, str]:
    """The environment of a CLI run in `cwd`: dlt's folders there, short retry waits, the token."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SOURCES__WORKSPACE_IMAGES__")}
    env["DLT_DATA_DIR"] = str(cwd / "dlt_data")
    env["RUNTIME__REQUEST_BACKOFF_FACTOR"] = "0.01"
    env["RUNTIME__REQUEST_MAX_RETRY_DELAY"] = "0.05"
    if token:
        env["SOURCES__WORKSPACE_IMAGES__CREDENTIALS__TOKEN"] = token
    env.update(extra_env or {})
    return env


CLI = [sys.executable, "-m", "workspace_images.pipelines.cli"]


def cli(args: List[str], cwd: Path, token: Optional[str] = TOKEN, extra_env: Optional[Dict[str, str]] = None) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], cwd=cwd, env=cli_env(cwd, token, extra_env), capture_output=True, text=True,
                          timeout=120)


def cli_started(args: List[str], cwd: Path, extra_env: Optional[Dict[str, str]] = None) -> subprocess.Popen:
    """A CLI run started, its output and errors piped, for a test that acts while it runs."""
    return subprocess.Popen([*CLI, *args], cwd=cwd, env=cli_env(cwd, TOKEN, extra_env), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def run_args(sim: Simulator, db: str = "x.duckdb", day: Optional[int] = None, *extra: str) -> List[str]:
    args = ["run", "--endpoint", sim.url, "--db", db, "--as-of", sim.as_of(day).isoformat()]
    for target in targets(sim):
        args += ["--project", target]
    return args + list(extra)


def one_line(stderr: str) -> str:
    """The error line of a failed command: exactly one line starting with `workspace-images:`."""
    lines = [line for line in stderr.splitlines() if line.startswith("workspace-images:")]
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr, stderr
    return lines[0]


def nothing_written(folder: Path) -> None:
    assert sorted(p.name for p in folder.iterdir() if p.name != "dlt_data") == [], list(folder.iterdir())


def kill_at(point: str, args: List[str], cwd: Path) -> None:
    marker = cwd / f"reached-{point}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SOURCES__WORKSPACE_IMAGES__")}
    env.update({"DLT_DATA_DIR": str(cwd / "dlt_data"), "SOURCES__WORKSPACE_IMAGES__CREDENTIALS__TOKEN": TOKEN})
    proc = subprocess.Popen([sys.executable, str(HERE / "killpoint.py"), point, str(marker), "--", *args],
                            cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not marker.exists():
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        assert time.monotonic() < deadline, f"the run never reached {point}"
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL


def free_port() -> int:
    """A port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
