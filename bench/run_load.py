"""Throughput of a full load against the baselines a user would otherwise run, in the same run.

Starts the simulator in its own process (so it is not measured), then runs each case under
`/usr/bin/time -v` (best of --repeat) and prints time and peak memory, with ratios:

- `imports`: `python -c "import dlt, duckdb, pyarrow, requests"`, the start-up floor;
- `http`: bench/baseline_fetch.py, the same pages fetched with plain requests, nothing stored;
- `handwritten`: bench/handwritten.py, requests + pandas + DuckDB, sequential, no history;
- `rest_api`: bench/rest_api_baseline.py, dlt's `rest_api` source with the same SCD2 history;
- `first load`: `workspace-images run --no-models` into an empty DuckDB file;
- `rerun`: the same command again over unchanged data (no new version is written).

Usage: python -m bench.run_load [--projects 200] [--images 500] [--latency-ms 0] [--repeat 1]
       [--no-rest-api]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Dict, List, Tuple

from bench.common import check_timer, forget_load, measure, ours, pipeline_env, start_simulator, stop
from workspace_images.pipelines.program import module_command


def main() -> int:
    parser = argparse.ArgumentParser(prog=module_command(__spec__.name), description=__doc__.splitlines()[0])
    parser.add_argument("--projects", type=int, default=200)
    parser.add_argument("--images", type=int, default=500)
    parser.add_argument("--latency-ms", type=float, default=0)
    parser.add_argument("--repeat", type=int, default=1, help="runs of each command; the best is kept")
    parser.add_argument("--no-rest-api", action="store_true", help="leave out dlt's rest_api source (slow)")
    args = parser.parse_args()
    check_timer()
    sim, url, targets = start_simulator(args.projects, args.images, args.latency_ms)
    work = Path(tempfile.mkdtemp(prefix="wi-bench-"))
    repo = Path(__file__).resolve().parent.parent
    try:
        env = pipeline_env(targets, work)
        cases: Dict[str, List[str]] = {
            "imports": [sys.executable, "-c", "import dlt, duckdb, pyarrow, requests"],
            "http": [sys.executable, "-m", "bench.baseline_fetch", url],
            "handwritten": [sys.executable, "-m", "bench.handwritten", url, str(work / "handwritten.duckdb")],
        }
        if not args.no_rest_api:
            cases["rest_api"] = [sys.executable, "-m", "bench.rest_api_baseline", url, str(work / "rest_api.duckdb")]
        results: Dict[str, Tuple[float, float]] = {}
        for name, cmd in cases.items():
            runs = []
            for _ in range(args.repeat):
                for leftover in work.glob("rest_api.duckdb*"):
                    leftover.unlink()
                shutil.rmtree(work / ".rest_api_baseline", ignore_errors=True)
                runs.append(measure(cmd, env, repo))
            results[name] = min(runs)
        first: List[Tuple[float, float]] = []
        rerun: List[Tuple[float, float]] = []
        for _ in range(args.repeat):
            forget_load(work)
            first.append(measure(ours(url), env, work))
            rerun.append(measure(ours(url), env, work))
        results["first load"], results["rerun"] = min(first), min(rerun)
    finally:
        stop(sim)
        shutil.rmtree(work, ignore_errors=True)
    hand_s = results["handwritten"][0]
    print(f"{args.projects} projects x {args.images} images = {args.projects * args.images:,} images, "
          f"latency {args.latency_ms:g} ms, best of {args.repeat}")
    rest = results.get("rest_api")
    print(f"{'case':<12}{'wall s':>9}{'peak MiB':>10}{'x handwritten':>15}{'rest_api / it':>15}")
    for name, (seconds, mib) in results.items():
        faster = f"{rest[0] / seconds:>15.1f}" if rest else f"{'-':>15}"
        print(f"{name:<12}{seconds:>9.2f}{mib:>10.1f}{seconds / hand_s:>15.2f}{faster}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
