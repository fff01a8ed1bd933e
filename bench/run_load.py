"""Cost of a full load: the pipeline against baselines measured in the same run, as ratios.

Starts the simulator in its own process (so it is not measured), then runs under
`/usr/bin/time -v`, one after the other:

- `imports`: `python -c "import dlt, duckdb, pyarrow, requests"`, the start-up floor;
- `http`: bench/baseline_fetch.py, the same pages fetched with plain requests, nothing stored;
- `first load`: `workspace-images run --no-models` into an empty DuckDB file;
- `rerun`: the same command again over unchanged data (no new version is written).

Usage: python -m bench.run_load [--projects 50] [--images 500] [--latency-ms 0] [--repeat 1]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
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


def start_simulator(projects: int, images: int, latency_ms: float) -> Tuple[subprocess.Popen, str, List[str]]:
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--projects", type=int, default=50)
    parser.add_argument("--images", type=int, default=500)
    parser.add_argument("--latency-ms", type=float, default=0)
    parser.add_argument("--repeat", type=int, default=1, help="runs of each command; the best is kept")
    args = parser.parse_args()
    if not Path(TIME).exists():
        raise SystemExit(f"{TIME} is missing: apt-get install time")
    sim, url, targets = start_simulator(args.projects, args.images, args.latency_ms)
    work = Path(tempfile.mkdtemp(prefix="wi-bench-"))
    try:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SOURCES__WORKSPACE_IMAGES__")}
        env.update({
            "SOURCES__WORKSPACE_IMAGES__CREDENTIALS__TOKEN": TOKEN,
            "SOURCES__WORKSPACE_IMAGES__PROJECTS": json.dumps(targets),
            "DLT_DATA_DIR": str(work / "dlt_data"),
        })
        run = [sys.executable, "-m", "workspace_images.cli", "-q", "run", "--endpoint", url, "--db", "bench.duckdb", "--no-models"]
        cases = {
            "imports": [sys.executable, "-c", "import dlt, duckdb, pyarrow, requests"],
            "http": [sys.executable, "-m", "bench.baseline_fetch", url],
        }
        results: Dict[str, Tuple[float, float]] = {}
        for name, cmd in cases.items():
            results[name] = min(measure(cmd, env, Path.cwd()) for _ in range(args.repeat))
        first: List[Tuple[float, float]] = []
        rerun: List[Tuple[float, float]] = []
        for _ in range(args.repeat):
            for leftover in (work / "bench.duckdb", work / ".workspace_images"):
                shutil.rmtree(leftover, ignore_errors=True) if leftover.is_dir() else leftover.unlink(missing_ok=True)
            first.append(measure(run, env, work))
            rerun.append(measure(run, env, work))
        results["first load"], results["rerun"] = min(first), min(rerun)
    finally:
        sim.terminate()
        sim.wait()
        shutil.rmtree(work, ignore_errors=True)
    http_s, http_mb = results["http"]
    print(f"{args.projects} projects x {args.images} images = {args.projects * args.images:,} images, "
          f"latency {args.latency_ms:g} ms, best of {args.repeat}")
    print(f"{'case':<12}{'wall s':>9}{'peak MiB':>10}{'time/http':>11}{'mem/http':>10}")
    for name, (seconds, mib) in results.items():
        print(f"{name:<12}{seconds:>9.2f}{mib:>10.1f}{seconds / http_s:>11.2f}{mib / http_mb:>10.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
