"""The DAG in a real Airflow: `airflow db migrate`, then `airflow dags test` against the simulator.

Collected only where Airflow is installed: `make test-integration` runs these tests from
`.venv-airflow` (Airflow and this project, apart from the development venv so that
Airflow's pins never constrain ours). In `.venv`, which has no Airflow, `make test` and
a bare `pytest` collect nothing here.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import sqlite3
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Tuple

import pytest

if importlib.util.find_spec("airflow") is None:
    collect_ignore_glob = ["test_*.py"]

AIRFLOW = Path(sys.executable).with_name("airflow")
DAG_ID = "workspace_images"
TIMEOUT = 600
"""Seconds one `airflow` command may take: a DAG run whose task is retried twice, 3 minutes apart, fits."""


def airflow_env(home: Path) -> Dict[str, str]:
    """The environment of an `airflow` command with its home, metadata database and dags in `home`:
    nothing of this machine's Airflow, dlt or workspace-images settings comes along."""
    env = {
        k: v for k, v in os.environ.items()
        if not k.startswith(("AIRFLOW", "SOURCES__", "WORKSPACE_IMAGES_", "DLT_", "RUNTIME__"))
    }
    env.update({
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(home / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(home / "logs"),
        "PYTHONUNBUFFERED": "1",
    })
    return env


@pytest.fixture(scope="session")
def migrated_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An Airflow metadata database (SQLite) migrated once; each test gets a copy of it."""
    home = tmp_path_factory.mktemp("airflow_template")
    (home / "dags").mkdir()
    proc = subprocess.run([str(AIRFLOW), "db", "migrate"], env=airflow_env(home), capture_output=True, text=True,
                          timeout=TIMEOUT)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return home / "airflow.db"


@pytest.fixture(autouse=True, scope="session")
def airflow_home_of_this_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Airflow imported by a test itself reads and writes a home of its own, never ~/airflow."""
    home = tmp_path_factory.mktemp("airflow_in_process")
    saved = {k: os.environ.get(k) for k in airflow_env(home) if k.startswith("AIRFLOW")}
    os.environ.update({k: v for k, v in airflow_env(home).items() if k.startswith("AIRFLOW")})
    yield
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


@dataclass
class DagsTest:
    """What one `airflow dags test` did."""

    returncode: int
    output: str
    log: Path

    def tail(self, chars: int = 6000) -> str:
        return f"(full output in {self.log})\n" + self.output[-chars:]


@dataclass
class AirflowHome:
    """An Airflow home in a test's folder: metadata database, dags/, and a worker folder to run in."""

    root: Path
    env: Dict[str, str] = field(default_factory=dict)

    @property
    def home(self) -> Path:
        return self.root / "airflow"

    @property
    def dags(self) -> Path:
        return self.home / "dags"

    @property
    def db(self) -> Path:
        """The DuckDB file the DAG loads ($WORKSPACE_IMAGES_DB)."""
        return self.root / "warehouse" / "images.duckdb"

    @property
    def worker(self) -> Path:
        """The working folder of the `airflow` commands: not the dags folder."""
        return self.root / "worker"

    def install_dag(self, how: str) -> Path:
        """Put the DAG into dags/: `copy` the module, or `import` it from a one-line file."""
        path = self.dags / "workspace_images_dag.py"
        if how == "copy":
            origin = importlib.util.find_spec("workspace_images.pipelines.airflow_dag").origin  # type: ignore[union-attr]
            shutil.copyfile(str(origin), path)
        else:
            path.write_text("from workspace_images.pipelines.airflow_dag import dag  # noqa: F401 (the DAG workspace_images)\n")
        return path

    def settings(self, config: str, secrets: Optional[str] = None) -> None:
        """Write dags/.dlt/config.toml (and secrets.toml), as the README says."""
        folder = self.dags / ".dlt"
        folder.mkdir(exist_ok=True)
        (folder / "config.toml").write_text(config)
        if secrets is not None:
            (folder / "secrets.toml").write_text(secrets)

    def command(self, *args: str) -> str:
        """Run `airflow ARGS...` in this home; fail the test when it fails. Returns its output."""
        proc = subprocess.run([str(AIRFLOW), *args], cwd=self.worker, env=self.env, capture_output=True, text=True,
                              timeout=TIMEOUT)
        assert proc.returncode == 0, f"airflow {' '.join(args[:2])}: " + proc.stdout[-3000:] + proc.stderr[-3000:]
        return proc.stdout

    def dags_test(self, logical_date: str, conf: Optional[dict] = None, **env: str) -> DagsTest:
        """Run `airflow dags test` of the DAG for `logical_date` and wait for it."""
        return self.finish(*self.start_dags_test(logical_date, conf, **env))

    def start_dags_test(self, logical_date: str, conf: Optional[dict] = None,
                        **env: str) -> Tuple[subprocess.Popen, Path]:
        """Start `airflow dags test`; returns the process and the file its output goes to, as it comes."""
        args = [str(AIRFLOW), "dags", "test", DAG_ID, logical_date]
        if conf is not None:
            args += ["--conf", json.dumps(conf)]
        log = self.root / f"dags_test_{logical_date}.log"
        with log.open("w") as out:
            proc = subprocess.Popen(args, cwd=self.worker, env={**self.env, **env}, stdout=out,
                                    stderr=subprocess.STDOUT, text=True)
        return proc, log

    @staticmethod
    def finish(proc: subprocess.Popen, log: Path) -> DagsTest:
        """Wait for a started `airflow dags test`; fail the test when it takes more than TIMEOUT."""
        try:
            proc.wait(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            pytest.fail(f"{log.stem} took more than {TIMEOUT}s (a retry?):\n{log.read_text()[-6000:]}")
        return DagsTest(proc.returncode, log.read_text(), log)

    def task_instances(self) -> List[Tuple[str, int, str, int, int, Optional[str]]]:
        """(task_id, map_index, state, try_number, max_tries, rendered_map_index) of the latest DAG run."""
        with sqlite3.connect(self.home / "airflow.db") as con:
            return con.execute(
                "select task_id, map_index, state, try_number, max_tries, rendered_map_index from task_instance "
                "where run_id = (select run_id from dag_run order by id desc limit 1) order by task_id, map_index"
            ).fetchall()

    def dag_run_state(self) -> str:
        with sqlite3.connect(self.home / "airflow.db") as con:
            return con.execute("select state from dag_run order by id desc limit 1").fetchone()[0]


@pytest.fixture
def airflow(tmp_path: Path, migrated_db: Path) -> AirflowHome:
    """An Airflow home with a freshly migrated metadata database and an empty dags/ folder."""
    place = AirflowHome(tmp_path)
    place.dags.mkdir(parents=True)
    place.worker.mkdir()
    place.db.parent.mkdir()
    shutil.copyfile(migrated_db, place.home / "airflow.db")
    place.env = airflow_env(place.home)
    place.env.update({
        "WORKSPACE_IMAGES_DB": str(place.db),
        "DLT_DATA_DIR": str(tmp_path / "dlt_data"),
    })
    return place
