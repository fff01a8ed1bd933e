"""How time and peak memory grow with the number of images, in one run.

For each size, a simulator of size/500 projects x 500 images (in its own process, not
measured) and one first load (`workspace-images run --no-models` into an empty DuckDB file)
under `/usr/bin/time -v`. Prints time, peak memory, time per 100,000 images, and each
size's time against the 100,000-image run's.

Usage: python -m bench.growth [--sizes 10000,100000,1000000] [--repeat 1]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Dict, Tuple

from bench.common import check_timer, forget_load, measure, ours, pipeline_env, start_simulator, stop
from workspace_images.pipelines.program import module_command

PER_PROJECT = 500


def main() -> int:
    parser = argparse.ArgumentParser(prog=module_command(__spec__.name), description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each size; the best is kept")
    args = parser.parse_args()
    check_timer()
    sizes = [int(s) for s in args.sizes.split(",")]
    results: Dict[int, Tuple[float, float]] = {}
    for size in sizes:
        projects = max(1, size // PER_PROJECT)
        sim, url, targets = start_simulator(projects, min(size, PER_PROJECT))
        work = Path(tempfile.mkdtemp(prefix="wi-growth-"))
        try:
            env = pipeline_env(targets, work)
            runs = []
            for _ in range(args.repeat):
                forget_load(work)
                runs.append(measure(ours(url), env, work))
            results[size] = min(runs)
        finally:
            stop(sim)
            shutil.rmtree(work, ignore_errors=True)
        print(f"{size:,} images: {results[size][0]:.2f} s, {results[size][1]:.0f} MiB", file=sys.stderr)
    base = results.get(100_000, next(iter(results.values())))[0]
    print(f"first load, {PER_PROJECT} images per project, best of {args.repeat}")
    print(f"{'images':>10}{'wall s':>9}{'peak MiB':>10}{'s / 100k':>10}{'x 100k run':>12}")
    for size, (seconds, mib) in results.items():
        print(f"{size:>10,}{seconds:>9.2f}{mib:>10.0f}{seconds / size * 100_000:>10.2f}{seconds / base:>12.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
