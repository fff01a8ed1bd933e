"""Where the fetch of a load spends its time: the same pages read four ways, 8 threads each.

Against the simulator (in its own process), in this process, one after the other:

- `pages`: plain `requests`, the pages only;
- `pages + rows`: plain `requests`, then each project's Arrow rows (`images_table`);
- `dlt session + rows`: dlt's retrying session with our time-bounded adapter (one per thread, as a run
  has them: `ThreadSessions`), then the rows;
- `fetch_project`: what a run does per project (dlt's `RESTClient.paginate` on top, the checks).

Usage: python -m bench.fetch_breakdown [--projects 200] [--images 500] [--repeat 3]
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from typing import Any, Callable, Dict, List

import requests

from bench.common import TOKEN, start_simulator, stop
from workspace_images.pipelines.program import module_command
from workspace_images.auth import TokenAuth
from workspace_images.columns import ColumnPlan
from workspace_images.config import Project
from workspace_images.fetch import fetch_project
from workspace_images.rows import images_table
from workspace_images.sessions import ThreadSessions

PAGE = 100
THREADS = 8


def main() -> int:
    parser = argparse.ArgumentParser(prog=module_command(__spec__.name), description=__doc__.splitlines()[0])
    parser.add_argument("--projects", type=int, default=200)
    parser.add_argument("--images", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=3, help="runs of each way; the best is kept")
    args = parser.parse_args()
    sim, url, targets = start_simulator(args.projects, args.images)
    try:
        projects = [Project(*t.split(":", 1)) for t in targets]
        plan, sessions = ColumnPlan(), ThreadSessions()
        pages = math.ceil(args.images / PAGE)

        def read(session: Any, project: Project) -> List[Dict[str, Any]]:
            images: List[Dict[str, Any]] = []
            for page in range(pages):
                answer = session.get(f"{url}/v2/{project.project_id}/images", headers={"X-Auth-Token": TOKEN},
                                     params={"limit": PAGE, "offset": page * PAGE}, timeout=60)
                images += answer.json()["images"]
            return images

        def rows(images: List[Dict[str, Any]], project: Project) -> Any:
            return images_table(images, project.project_id, project.region, datetime.now(timezone.utc), plan=plan)

        ways: Dict[str, Callable[[Project], Any]] = {
            "pages": lambda p: read(requests.Session(), p),
            "pages + rows": lambda p: rows(read(requests.Session(), p), p),
            "dlt session + rows": lambda p: rows(read(sessions.for_project(None)[0], p), p),
            "fetch_project": lambda p: fetch_project(p, url, TokenAuth(TOKEN), {}, 600, plan, sessions),
        }
        results: Dict[str, float] = {}
        for name, way in ways.items():
            best = math.inf
            for _ in range(args.repeat):
                began = time.perf_counter()
                with ThreadPoolExecutor(THREADS) as pool:
                    list(pool.map(way, projects))
                best = min(best, time.perf_counter() - began)
            results[name] = best
    finally:
        stop(sim)
    print(f"{args.projects} projects x {args.images} images, {THREADS} threads, best of {args.repeat}")
    print(f"{'way':<20}{'wall s':>9}{'x pages':>9}")
    for name, seconds in results.items():
        print(f"{name:<20}{seconds:>9.2f}{seconds / results['pages']:>9.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
