"""Latency hiding: what a slow API adds to a load, against the ideal for the concurrency.

Runs the same load (first load, `--no-models`) against a simulator answering at once and
one that waits --latency-ms before every answer. The ideal extra time is requests x
latency / concurrency (every worker always waiting on one request); the ratio says how close
the fetch comes to it (1.0 is perfect).

Usage: python -m bench.latency [--projects 16] [--images 800] [--latency-ms 100] [--concurrency 8]
"""

from __future__ import annotations

import argparse
import math
import shutil
import sys
import tempfile
from pathlib import Path

from bench.common import check_timer, measure, ours, pipeline_env, start_simulator, stop
from workspace_images.pipelines.program import module_command

PAGE = 100


def timed(projects: int, images: int, latency_ms: float, concurrency: int) -> float:
    sim, url, targets = start_simulator(projects, images, latency_ms)
    work = Path(tempfile.mkdtemp(prefix="wi-latency-"))
    try:
        return measure([*ours(url), "--concurrency", str(concurrency)], pipeline_env(targets, work), work)[0]
    finally:
        stop(sim)
        shutil.rmtree(work, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(prog=module_command(__spec__.name), description=__doc__.splitlines()[0])
    parser.add_argument("--projects", type=int, default=16)
    parser.add_argument("--images", type=int, default=800)
    parser.add_argument("--latency-ms", type=float, default=100)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    check_timer()
    fast = timed(args.projects, args.images, 0, args.concurrency)
    slow = timed(args.projects, args.images, args.latency_ms, args.concurrency)
    requests = args.projects * math.ceil(args.images / PAGE)
    ideal = requests * args.latency_ms / 1000 / min(args.concurrency, args.projects)
    print(f"{args.projects} projects x {args.images} images = {requests} requests at {args.latency_ms:g} ms, "
          f"{args.concurrency} at a time")
    print(f"no latency {fast:.2f} s, with latency {slow:.2f} s: added {slow - fast:.2f} s, "
          f"ideal {ideal:.2f} s, ratio {(slow - fast) / ideal:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
