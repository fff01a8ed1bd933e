"""What the benchmarks share: a simulator in its own process, and commands timed by GNU time."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Tuple

TOKEN = "bench-token"
TIME = "/usr/bin/time"


def measure(cmd: List[str], env: Dict[str, str], cwd: Path) -> Tuple[float, float]:
    """Run `cmd` under /usr/bin/time -v; return (wall seconds, peak RSS in MiB)."""
    proc = subprocess.run([TIME, "-v", *cmd], env=env, cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (?:(\d+):)?(\d+):([\d.]+)", proc.stderr)
    rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr)
    assert wall and rss, proc.stderr[-2000:]
    seconds = int(wall.group(1) or 0) * 3600 + int(wall.group(2)) * 60 + float(wall.group(3))
    return seconds, int(rss.group(1)) / 1024


def check_timer() -> None:
    if not Path(TIME).exists():
        raise SystemExit(f"{TIME} is missing: apt-get install time (make bench does)")


def start_simulator(projects: int, images: int, latency_ms: float = 0) -> Tuple[subprocess.Popen, str, List[str]]:
    """The simulator serving `projects` x `images` on a free port; its URL and `region:project_id`s."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "workspace_images.simulator", "--projects", str(projects), "--images", str(images),
         "--token", TOKEN, "--latency-ms", str(latency_ms), "--log-level", "WARNING"],
        stdout=subprocess.PIPE, text=True,
    )
    assert proc.stdout is not None
    url, targets = "", []
    for line in proc.stdout:
        if line.startswith("Workspace simulator listening on "):
            url = line.split()[-1]
        elif re.match(r"^  [a-z]{2}-[a-z0-9-]+:[0-9a-f]{32}$", line.rstrip()):
            targets.append(line.strip())
        elif line.startswith("Press Ctrl-C"):
            break
    return proc, url, targets


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    proc.wait()


def pipeline_env(targets: List[str], work: Path) -> Dict[str, str]:
    """The environment of every command: the projects and token where the pipeline (and the
    baselines) read them, dlt's folders in `work`, nothing of the user's own settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SOURCES__", "DESTINATION__"))}
    env.update({
        "SOURCES__WORKSPACE_IMAGES__CREDENTIALS__TOKEN": TOKEN,
        "SOURCES__WORKSPACE_IMAGES__PROJECTS": json.dumps(targets),
        "DLT_DATA_DIR": str(work / "dlt_data"),
        "RUNTIME__DLTHUB_TELEMETRY": "false",
    })
    return env


def forget_load(work: Path, db: str = "bench.duckdb") -> None:
    """Remove the DuckDB file `db` in `work` and its dlt working folder: the next run is a first load."""
    (work / db).unlink(missing_ok=True)
    shutil.rmtree(work / ".workspace_images", ignore_errors=True)


def ours(url: str, db: str = "bench.duckdb") -> List[str]:
    """`workspace-images run --no-models` into `db` (in the working folder of the command)."""
    return [sys.executable, "-m", "workspace_images.pipelines.cli", "-q", "run", "--endpoint", url, "--db", db, "--no-models"]
