"""The rows' fast paths against the value-by-value rules they stand for: `images_table` on the same
projects three ways, in one process, one after the other, alternating.

- `fast paths`: the images as the simulator serves them: every known column built by Arrow in one
  call, and the row hashes of the whole project by Arrow (`hashing.plain_row_hashes`);
- `per-row hashes`: the same, but the last image of each project lacks `description`, so the
  images are not uniform and each row's hash is built alone (`hashing.row_hash`);
- `value by value`: the same as `per-row hashes`, and the last image's known fields each hold one
  value Arrow's plain paths refuse (an integer name, text sizes, another date format), so every
  known column takes the value-by-value rules too: what the code would do without fast paths.

tests/test_rows.py pins the fast paths to the value-by-value rules (the same tables, the same hashes).

Usage: python -m bench.row_paths [--projects 40] [--images 500] [--rounds 5]
"""

from __future__ import annotations

import argparse
import copy
import logging
import math
import sys
import time
from datetime import datetime, timezone
from typing import Any, Callable, Dict, List

from workspace_images.columns import ColumnPlan
from workspace_images.pipelines.program import module_command
from workspace_images.rows import images_table
from workspace_images.settings import KNOWN_INT_FIELDS, KNOWN_STRING_FIELDS, KNOWN_TIMESTAMP_FIELDS
from workspace_images.simulator import Simulator

Projects = List[List[Dict[str, Any]]]


def not_uniform(projects: Projects) -> Projects:
    changed = copy.deepcopy(projects)
    for images in changed:
        images[-1].pop("description", None)
    return changed


def odd_values(projects: Projects) -> Projects:
    changed = not_uniform(projects)
    for images in changed:
        last = images[-1]
        for name in KNOWN_STRING_FIELDS:
            if name != "id":
                last[name] = 7
        for name in KNOWN_INT_FIELDS:
            last[name] = "8"
        for name in KNOWN_TIMESTAMP_FIELDS:
            last[name] = "2025/08/15 11:39:16"
    return changed


def main() -> int:
    parser = argparse.ArgumentParser(prog=module_command(__spec__.name), description=__doc__.splitlines()[0])
    parser.add_argument("--projects", type=int, default=40)
    parser.add_argument("--images", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=5, help="rounds of the three ways, alternating (default 5)")
    args = parser.parse_args()
    logging.getLogger("workspace_images").setLevel(logging.ERROR)  # the odd values' warnings

    sim = Simulator(projects=args.projects, images=args.images, seed=3)
    plain = [sim.images(p.project_id) for p in sim.projects]
    ways: Dict[str, Projects] = {"fast paths": plain, "per-row hashes": not_uniform(plain),
                                 "value by value": odd_values(plain)}
    fetched_at = datetime.now(timezone.utc)

    def build(projects: Projects) -> Callable[[], None]:
        def run() -> None:
            plan = ColumnPlan()
            for images in projects:
                images_table(images, "0" * 32, "cn-north-4", fetched_at, plan=plan)
        return run

    best = {name: math.inf for name in ways}
    for _ in range(args.rounds):
        for name, projects in ways.items():
            began = time.perf_counter()
            build(projects)()
            best[name] = min(best[name], time.perf_counter() - began)
    base = best["value by value"]
    print(f"images_table on {args.projects} projects x {args.images} images, best of {args.rounds} alternating rounds")
    print(f"{'way':<16}{'seconds':>9}{'x value by value':>18}")
    for name, seconds in best.items():
        print(f"{name:<16}{seconds:>9.3f}{seconds / base:>18.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
