"""The wheel as pip installs it: built here, installed into a clean venv, run from an unrelated folder."""

from __future__ import annotations

import json
import os
import stat
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from workspace_images.simulator import Simulator
from tests.helpers import TOKEN, free_port, query
from tests.snippets import ALL, bash, substitute, wait_after_background

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def wheel_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A clean venv with the wheel built from this checkout installed, as pip installs it."""
    tmp_path = tmp_path_factory.mktemp("wheel")
    dist = tmp_path / "dist"
    # built from a copy of the checkout's files (tracked, or new and not ignored), so that a
    # build/ folder left by an earlier build can never put stale files into the wheel
    source = tmp_path / "source"
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, check=True,
                            capture_output=True, text=True).stdout.splitlines()
    for name in listed:
        if (ROOT / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, source / name)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(dist),
                    str(source)], check=True, capture_output=True, text=True, timeout=300)
    wheel = next(dist.glob("workspace_images-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    top = {name.split("/")[0] for name in names if not name.split("/")[0].endswith((".dist-info", ".data"))}
    assert top == {"workspace_images"}, top
    models = {n for n in names if n.startswith("workspace_images/sql/") and n.endswith((".sql", ".toml"))}
    assert {"workspace_images/sql/marts/image_inventory.sql", "workspace_images/sql/marts/image_inventory.toml",
            "workspace_images/sql/staging/stg_project_runs.sql", "workspace_images/sql/staging/stg_project_runs.toml",
            "workspace_images/sql/macros/os_version.sql", "workspace_images/sql/macros/os_version.postgres.sql",
            "workspace_images/sql/sources.toml", "workspace_images/sql/columns.toml"} <= models
    assert "workspace_images/pipelines/reporting/report.css" in names

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    installed = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", str(wheel)],
                               capture_output=True, text=True, timeout=900)
    assert installed.returncode == 0, installed.stderr[-2000:]
    site = subprocess.run([str(venv / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    assert not any((Path(site) / name).exists() for name in ("sources", "pipelines", "simulator", "sql"))
    return venv


def test_the_wheel_installs_one_import_name_and_runs_run_and_models(wheel_venv: Path, tmp_path: Path) -> None:
    venv = wheel_venv
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {"PATH": f"{venv / 'bin'}:{os.environ['PATH']}", "HOME": str(tmp_path),
           "DLT_DATA_DIR": str(tmp_path / "dlt_data"), "SOURCES__WORKSPACE_IMAGES__CREDENTIALS__TOKEN": TOKEN}
    with Simulator(projects=0, seed=3, token=TOKEN) as sim:
        project = sim.add_project("cn-north-4", images=140)
        proc = subprocess.run(
            [str(venv / "bin" / "workspace-images"), "run", "--endpoint", sim.url, "--db", "images.duckdb",
             "--project", f"cn-north-4:{project.project_id}", "--as-of", sim.as_of().isoformat(), "--json"],
            cwd=elsewhere, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["images"] == 140
    models = subprocess.run([str(venv / "bin" / "workspace-images"), "models", "--db", "images.duckdb"],
                            cwd=elsewhere, env=env, capture_output=True, text=True, timeout=300)
    assert models.returncode == 0, models.stderr
    assert models.stdout.startswith("models: 7 built (") and "27 data tests passed" in models.stdout
    assert query(elsewhere / "images.duckdb", "select count(*) from analytics.image_inventory") == [(140,)]
    page = subprocess.run([str(venv / "bin" / "workspace-images"), "report", "--db", "images.duckdb",
                           "--html", "page.html"], cwd=elsewhere, env=env, capture_output=True, text=True, timeout=300)
    assert page.returncode == 0, page.stderr
    assert "--ink: #1f2430" in (elsewhere / "page.html").read_text(encoding="utf-8")  # the style sheet, inlined
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    init = subprocess.run([str(venv / "bin" / "workspace-images"), "init"], cwd=fresh, env=env,
                          capture_output=True, text=True, timeout=120)
    assert init.returncode == 0, init.stderr
    assert init.stdout.startswith("wrote .dlt/config.toml\nwrote .dlt/secrets.toml (mode 0600)\n")
    assert "[sources.workspace_images]" in (fresh / ".dlt" / "config.toml").read_text(encoding="utf-8")
    assert "[sources.workspace_images.credentials]" in (fresh / ".dlt" / "secrets.toml").read_text(encoding="utf-8")
    assert stat.S_IMODE((fresh / ".dlt" / "secrets.toml").stat().st_mode) == 0o600
    source = subprocess.run([str(venv / "bin" / "python"), "-c",
                             "from workspace_images.source import workspace_images; print(workspace_images.name)"],
                            cwd=elsewhere, capture_output=True, text=True, timeout=120)
    assert source.stdout.strip() == "workspace_images", source.stderr


def test_init_then_the_readme_s_quick_start_work_from_the_wheel(wheel_venv: Path, tmp_path: Path) -> None:
    """The README's quick start as written (init, the simulator in the background, run with no --db,
    report), with `.venv` being the clean venv the wheel went into, in a new folder."""
    quick_start = next(s for s in ALL if s.key[0] == "README.md" and "workspace-images init" in s.text)
    folder = tmp_path / "new-user"
    folder.mkdir()
    (folder / ".venv").symlink_to(wheel_venv)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SOURCES__", "DESTINATION__"))}
    env.update(PATH=f"{wheel_venv / 'bin'}:{os.environ['PATH']}", HOME=str(tmp_path), DLT_DATA_DIR=str(tmp_path / "dlt"))
    port = free_port()
    script = wait_after_background(substitute(quick_start.text, folder, port), port)
    done = bash(script, folder, env)
    assert done.returncode == 0, f"{script}\n{done.stdout}\n{done.stderr}"
    lines = done.stdout.splitlines()
    assert lines[:2] == ["wrote .dlt/config.toml", "wrote .dlt/secrets.toml (mode 0600)"], done.stdout
    summary = next(line for line in lines if line.startswith("run "))
    assert summary.endswith("-> images.duckdb") and ": 1/1 projects ok, 120 images, 120 new versions, 0 retired" in summary
    assert "workspace-images report: images.duckdb" in lines
    assert "current images: 120 in 1 project, 1 region; stale (latest run failed): 0 projects, 0 images" in lines
    assert query(folder / "images.duckdb", "select count(*) from analytics.image_inventory") == [(120,)]
    assert stat.S_IMODE((folder / ".dlt" / "secrets.toml").stat().st_mode) == 0o600
