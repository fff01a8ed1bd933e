"""Peak memory of a run on a hostile day, against the same run on an ordinary day, in one run.

For each case, a simulator in this process serves two projects (150 and 120 images). Three runs
of `workspace-images run`, each under /usr/bin/time -v, from a new folder:

- the baseline: day 0, both projects ordinary;
- the hostile day: day 0 again, into another file, with the second project's answer spoiled;
- the next ordinary day: day 1 into that file, the simulator's own data again.

Prints each run's exit code, wall time and peak memory (MiB), and the hostile day's peak as a
ratio of the baseline's. The promise it checks: every hostile day stays under 1 GiB, fails that
project alone (or loads it), and the next ordinary day exits 0.

Usage: python -m bench.hostile [--case NAME ...]
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Callable, Dict, List, Tuple

from bench.common import TIME, TOKEN, check_timer, pipeline_env
from workspace_images.pipelines.program import module_command
from workspace_images.simulator import Simulator

GIB = 1024 ** 3


def _ids(sim: Simulator, project_id: str) -> None:
    sim.publish(project_id, {"id": 12345})
    sim.publish(project_id, {"id": "12345"})


def _wide(fields: int, images: int) -> Callable[[Simulator, str], None]:
    def spoil(sim: Simulator, project_id: str) -> None:
        for k in range(images):
            sim.publish(project_id, {f"f{k}_{i}": i for i in range(fields)})
    return spoil


def _long(chars: int, images: int) -> Callable[[Simulator, str], None]:
    def spoil(sim: Simulator, project_id: str) -> None:
        for k in range(images):
            sim.publish(project_id, {"name": f"{k}-" + "x" * chars})
    return spoil


def _fault(kind: str, size: int) -> Callable[[Simulator, str], None]:
    def spoil(sim: Simulator, project_id: str) -> None:
        sim.fail_project(project_id, kind, size=size)
    return spoil


CASES: Dict[str, Tuple[str, Callable[[Simulator, str], None]]] = {
    "ids": ("ids 12345 and \"12345\" in one project", _ids),
    "fields": ("one image with 5,000 new fields", _wide(5000, 1)),
    "gzip_bomb": ("a gzip body inflating to 1 GiB", _fault("gzip_bomb", GIB)),
    "page_1000000": ("a page of 1,000,000 images", _fault("oversized_page", 1_000_000)),
    "page_30000": ("a page of 30,000 images", _fault("oversized_page", 30_000)),
    "long_names": ("100 images with 160,000-character names (16 MB)", _long(160_000, 100)),
    "wide_images": ("100 images of 8,200 new fields each (16 MB)", _wide(8200, 100)),
}


def timed(args: List[str], env: Dict[str, str], cwd: Path) -> Tuple[int, float, float]:
    """Run `args` under /usr/bin/time -v: (exit code, wall seconds, peak RSS in MiB)."""
    proc = subprocess.run([TIME, "-v", *args], env=env, cwd=cwd, capture_output=True, text=True)
    wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (?:(\d+):)?(\d+):([\d.]+)", proc.stderr)
    rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr)
    code = re.search(r"Command exited with non-zero status (\d+)", proc.stderr)
    if not (wall and rss):
        raise SystemExit(f"{' '.join(args)}: no timing ({proc.returncode}):\n{proc.stderr[-2000:]}")
    seconds = int(wall.group(1) or 0) * 3600 + int(wall.group(2)) * 60 + float(wall.group(3))
    return (int(code.group(1)) if code else 0), seconds, int(rss.group(1)) / 1024


def run_case(name: str) -> List[str]:
    what, spoil = CASES[name]
    with tempfile.TemporaryDirectory(prefix=f"wi-hostile-{name}-") as folder, \
            Simulator(projects=0, seed=11, token=TOKEN) as sim:
        work = Path(folder)
        good = sim.add_project("cn-north-4", images=150)
        bad = sim.add_project("cn-east-3", images=120)
        targets = [f"{p.region}:{p.project_id}" for p in (good, bad)]
        env = pipeline_env(targets, work)

        def run(db: str, day: int) -> Tuple[int, float, float]:
            return timed([sys.executable, "-m", "workspace_images.pipelines.cli", "-q", "run", "--endpoint", sim.url,
                          "--db", db, "--as-of", sim.as_of(day).isoformat()], env, work)

        base = run("baseline.duckdb", 0)
        spoil(sim, bad.project_id)
        hostile = run("hostile.duckdb", 0)
        sim.clear_faults()
        sim.set_day(1)
        after = run("hostile.duckdb", 1)
    return [
        f"{name:<13} {what}",
        f"{'':<13} baseline exit {base[0]}, {base[1]:.1f} s, {base[2]:.0f} MiB; hostile day exit {hostile[0]}, "
        f"{hostile[1]:.1f} s, {hostile[2]:.0f} MiB ({hostile[2] / base[2]:.2f}x baseline); "
        f"next day exit {after[0]}, {after[2]:.0f} MiB",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(prog=module_command(__spec__.name), description=__doc__.splitlines()[0])
    parser.add_argument("--case", action="append", choices=sorted(CASES), help="a case to run (default: all)")
    args = parser.parse_args()
    check_timer()
    for name in args.case or list(CASES):
        print("\n".join(run_case(name)), flush=True)


if __name__ == "__main__":
    main()
