"""Throttling: loads against a gateway that limits each account's requests, next to the floor that limit sets.

At --latency-ms (100) the simulator's gateway allows each account --limits (5, 10 and 20) requests a
second (burst: the limit) and answers the ones over it 429 APIGW.0308, with and without Retry-After.
--projects (60 and 200) of --images (150: 2 pages of 100) each are loaded with no `rate_limit` (the
pace is learned from the 429s) and with `rate_limit` set to the gateway's limit. Each row says the
exit code, the wall, the floor (pages / limit, pages counted from the simulator's projects), wall /
floor, the fetch (wall - start-up) / floor, and the share of Workspace requests the gateway throttled;
start-up is the wall of one project with no limit at the same latency. The targets of #20: exit 0,
wall at most 1.15x the floor plus start-up, at most 3% throttled; with `rate_limit`, none throttled
and at most 1.05x. Then two accounts with limits of their own (--pair, 10 and 5 a second) load side
by side: each account's requests a second, first to last, against its limit.

The simulator runs in this process in threads (as the tests run it), so the bench reads its counts
(`sim.rate_stats()`) and gives it a second account directly; the load is the real CLI in a process
of its own, timed from outside.

Usage: python -m bench.throttle [--limits 5,10,20] [--projects 60,200] [--images 150] [--latency-ms 100]
       [--pair 10,5] [--quick]
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from bench.common import TOKEN, ours, pipeline_env
from workspace_images.pipelines.program import module_command
from workspace_images.simulator import DEFAULT_DOMAIN, Simulator

PAGE = 100
SECOND = "acme"
WALL_TARGET, PACED_TARGET, THROTTLED_TARGET = 1.15, 1.05, 0.03
NEAR = 0.85
"""Two accounts side by side: each at least this share of its own limit."""


@dataclass
class Run:
    """One load: its exit code, wall, and what the gateway saw of each account."""

    exit_code: int
    wall: float
    stats: Dict[str, Dict[str, int]]
    spans: Dict[str, float]
    """Seconds from each account's first allowed request to its last, as the poller saw them."""
    summary: Dict[str, object] = field(default_factory=dict)

    def count(self, key: str, account: Optional[str] = None) -> int:
        return sum(counts[key] for name, counts in self.stats.items() if account in (None, name))


def pages(sim: Simulator, domain: Optional[str] = None) -> int:
    """Pages of every project of an account: ceil(images / 100), at least 1."""
    return sum(max(1, math.ceil(len(sim.images(p.project_id)) / PAGE)) for p in sim.projects_of(domain))


def spans(sim: Simulator, stop: threading.Event, found: Dict[str, float]) -> None:
    """Poll the gateway's counts every 20 ms until `stop`; leave in `found` each account's first-to-last seconds."""
    first: Dict[str, float] = {}
    last: Dict[str, Tuple[int, float]] = {}
    while not stop.wait(0.02):
        now = time.perf_counter()
        for name, counts in sim.rate_stats().items():
            if counts["allowed"]:
                first.setdefault(name, now)
                if last.get(name, (0, 0.0))[0] != counts["allowed"]:
                    last[name] = (counts["allowed"], now)
    found.update({name: last[name][1] - first[name] for name in first})


def load(sim: Simulator, env_extra: Dict[str, str]) -> Run:
    """Run the CLI (`--json`) against `sim`'s default account's projects; time it and read the gateway's counts."""
    work = Path(tempfile.mkdtemp(prefix="wi-throttle-"))
    env = pipeline_env([f"{p.region}:{p.project_id}" for p in sim.projects_of()], work)
    env.update(env_extra)
    sim.reset_rate_stats()
    stop = threading.Event()
    found: Dict[str, float] = {}
    poller = threading.Thread(target=spans, args=(sim, stop, found))
    poller.start()
    try:
        started = time.perf_counter()
        proc = subprocess.run([*ours(sim.url), "--json"], env=env, cwd=work, capture_output=True, text=True)
        wall = time.perf_counter() - started
    finally:
        stop.set()
        poller.join()
        shutil.rmtree(work, ignore_errors=True)
    try:
        summary = json.loads(proc.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        raise SystemExit(f"no --json summary (exit {proc.returncode}):\n{proc.stderr[-2000:]}") from None
    return Run(proc.returncode, wall, sim.rate_stats(), found, summary)


def simulator(projects: int, images: int, latency_ms: float, limit: Optional[float] = None,
              retry_after: bool = True) -> Simulator:
    return Simulator(projects=projects, images=images, latency_ms=latency_ms, token=TOKEN, seed=1,
                     rate_limit=limit, retry_after=retry_after)


def start_up(images: int, latency_ms: float) -> float:
    """The wall of one project with no limit: what a run costs besides fetching at the limit."""
    with simulator(1, images, latency_ms) as sim:
        run = load(sim, {})
    if run.exit_code != 0:
        raise SystemExit(f"the start-up run failed ({run.exit_code}): {run.summary}")
    return run.wall


def row(limit: float, retry_after: bool, paced: bool, projects: int, images: int, latency_ms: float,
        startup: float) -> Tuple[str, bool]:
    """One load at one gateway limit: its table row and whether it met its targets."""
    with simulator(projects, images, latency_ms, limit, retry_after) as sim:
        total = pages(sim)
        run = load(sim, {"SOURCES__WORKSPACE_IMAGES__RATE_LIMIT": f"{limit:g}"} if paced else {})
    floor = total / limit
    throttled, requests = run.count("throttled"), run.count("allowed") + run.count("throttled")
    share = throttled / requests if requests else 0.0
    fetch = (run.wall - startup) / floor
    met = run.exit_code == 0 and (
        throttled == 0 and fetch <= PACED_TARGET if paced else share <= THROTTLED_TARGET and fetch <= WALL_TARGET)
    line = (f"| {limit:g}/s | {'yes' if retry_after else 'no'} | {f'{limit:g}' if paced else '-'} | {projects} "
            f"| {total} | {run.exit_code} | {run.wall:.1f} s | {floor:.1f} s | {run.wall / floor:.2f} | {fetch:.2f} "
            f"| {throttled} of {requests} ({share:.1%}) | {'yes' if met else '**no**'} |")
    return line, met


def pair(limits: Tuple[float, float], projects: int, images: int, latency_ms: float, startup: float,
         paced: bool) -> Tuple[List[str], bool]:
    """Two accounts with limits of their own, side by side: each account's requests a second against its limit."""
    with simulator(projects, images, latency_ms) as sim:
        sim.iam.add_account(SECOND)
        for _ in range(projects):
            sim.add_project("cn-east-3", images=images, account=SECOND)
        sim.set_rate_limit(limits[0], account=DEFAULT_DOMAIN)
        sim.set_rate_limit(limits[1], account=SECOND)
        keys = sim.iam.account(SECOND)
        second: Dict[str, object] = {
            "projects": [f"{p.region}:{p.project_id}" for p in sim.projects_of(SECOND)],
            "credentials": {"access_key": keys.access_key, "secret_key": keys.secret_key}}
        env = {"SOURCES__WORKSPACE_IMAGES__IAM_ENDPOINT": sim.url}
        if paced:
            env["SOURCES__WORKSPACE_IMAGES__RATE_LIMIT"] = f"{limits[0]:g}"
            second["rate_limit"] = limits[1]
        env["SOURCES__WORKSPACE_IMAGES__ACCOUNTS"] = json.dumps({SECOND: second})
        counts = {DEFAULT_DOMAIN: pages(sim), SECOND: pages(sim, SECOND)}
        run = load(sim, env)
    lines, met = [], run.exit_code == 0
    floor = max(counts[DEFAULT_DOMAIN] / limits[0], counts[SECOND] / limits[1])
    for name, limit in zip((DEFAULT_DOMAIN, SECOND), limits):
        allowed, throttled = run.count("allowed", name), run.count("throttled", name)
        span = run.spans.get(name, 0.0)
        rate = (allowed - 1) / span if span > 0 else 0.0  # intervals between the first request and the last
        share = throttled / (allowed + throttled) if allowed + throttled else 0.0
        ok = rate >= limit * NEAR and (throttled == 0 if paced else share <= THROTTLED_TARGET)
        met = met and ok
        lines.append(f"| {name} | {limit:g}/s | {f'{limit:g}' if paced else '-'} | {counts[name]} | {run.exit_code} "
                     f"| {span:.1f} s | {rate:.2f}/s ({rate / limit:.0%}) | {throttled} of {allowed + throttled} "
                     f"({share:.1%}) | {'yes' if ok else '**no**'} |")
    lines.append(f"| both | | | {sum(counts.values())} | {run.exit_code} | wall {run.wall:.1f} s | floor {floor:.1f} s, "
                 f"(wall - start-up) / floor {(run.wall - startup) / floor:.2f} | | |")
    return lines, met


def numbers(text: str) -> List[float]:
    return [float(part) for part in text.split(",") if part.strip()]


def main() -> int:
    parser = argparse.ArgumentParser(prog=module_command(__spec__.name), description=__doc__.splitlines()[0])
    parser.add_argument("--limits", type=numbers, default=[5.0, 10.0, 20.0], help="gateway limits, requests a second")
    parser.add_argument("--projects", type=lambda text: [int(n) for n in numbers(text)], default=[60, 200])
    parser.add_argument("--images", type=int, default=150, help="images per project (150: 2 pages)")
    parser.add_argument("--latency-ms", type=float, default=100)
    parser.add_argument("--pair", type=numbers, default=[10.0, 5.0], help="the two accounts' limits")
    parser.add_argument("--quick", action="store_true", help="one limit (10/s) and 60 projects: about a minute")
    args = parser.parse_args()
    if args.quick:
        args.limits, args.projects = [10.0], [60]
    if len(args.pair) != 2:
        parser.error("--pair takes two limits, e.g. 10,5")
    startup = start_up(args.images, args.latency_ms)
    print(f"At {args.latency_ms:g} ms, {args.images} images a project; start-up (1 project, no limit) "
          f"{startup:.2f} s")
    print("\n| gateway | Retry-After | rate_limit | projects | pages | exit | wall | floor | wall / floor "
          "| (wall - start-up) / floor | throttled | met |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    all_met = True
    for projects in args.projects:
        for paced in (False, True):
            for limit in args.limits:
                for retry_after in (True, False):
                    line, met = row(limit, retry_after, paced, projects, args.images, args.latency_ms, startup)
                    all_met = all_met and met
                    print(line, flush=True)
    projects = min(args.projects)
    print(f"\nTwo accounts side by side, {projects} projects each, gateway with Retry-After:\n")
    print("| account | gateway | rate_limit | pages | exit | first to last request | requests a second "
          "| throttled | met |")
    print("|---|---|---|---|---|---|---|---|---|")
    for paced in (False, True):
        lines, met = pair((args.pair[0], args.pair[1]), projects, args.images, args.latency_ms, startup, paced)
        all_met = all_met and met
        print("\n".join(lines), flush=True)
    print(f"\nTargets: exit 0, (wall - start-up) / floor <= {WALL_TARGET}, throttled <= {THROTTLED_TARGET:.0%}; "
          f"with rate_limit 0 throttled and <= {PACED_TARGET}; two accounts each at {NEAR:.0%} of its limit or more. "
          f"{'All met.' if all_met else 'Not all met.'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
