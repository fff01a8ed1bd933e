"""Two checkouts' test suites started at the same moment, compared test by test.

A whole suite takes minutes, and a shared machine's speed drifts by more than the
difference sought (15 % within an hour has been seen here), so suites timed one after
the other compare the machine as much as the code. Started together, both see the same
machine. Each suite runs in one process (no pytest-xdist) with the plugin
`bench/suite_timing.py`; the table compares the tests the two have in common:
wall time, the pytest process's CPU time and its subprocesses' CPU time, per file and
in total, as ratios new / old.

Each checkout needs its `.venv` (`make install` there), e.g. for the tree before a change:
    git worktree add /tmp/before <commit> && make -C /tmp/before install

Usage: python -m bench.suite_pair OLD_CHECKOUT NEW_CHECKOUT [-- PYTEST_ARGS...]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Dict, List, Tuple

from bench.suite_timing import OUT_VARIABLE
from workspace_images.pipelines.program import module_command

PLUGIN = Path(__file__).with_name("suite_timing.py")
DEFAULT_PYTEST_ARGS = ["-q", "-p", "no:cacheprovider"]
MEASURES = ("wall", "cpu", "children")


def run_both(checkouts: List[Path], pytest_args: List[str], work: Path) -> List[Tuple[float, str, Path]]:
    """Start every checkout's suite at once; (wall seconds, pytest's last line, timings file) of each."""
    shutil.copy(PLUGIN, work / PLUGIN.name)
    started = []
    for n, checkout in enumerate(checkouts):
        timings, log = work / f"suite{n}.jsonl", work / f"suite{n}.log"
        env = {**os.environ, "PYTHONPATH": str(work), OUT_VARIABLE: str(timings)}
        command = [str(checkout / ".venv" / "bin" / "python"), "-m", "pytest", *pytest_args, "-p", "suite_timing"]
        with open(log, "w", encoding="utf-8") as out:
            started.append((time.perf_counter(), subprocess.Popen(command, cwd=checkout, env=env, stdout=out,
                                                                   stderr=subprocess.STDOUT), timings, log))
    results = []
    for start, proc, timings, log in started:
        proc.wait()
        lines = log.read_text(encoding="utf-8", errors="replace").strip().splitlines()
        results.append((time.perf_counter() - start, lines[-1] if lines else f"exit {proc.returncode}", timings))
    return results


def read_timings(path: Path) -> Dict[str, Dict[str, float]]:
    if not path.exists():
        return {}
    rows = (json.loads(line) for line in path.read_text(encoding="utf-8").splitlines())
    return {row["id"]: row for row in rows}


def compare(old: Dict[str, Dict[str, float]], new: Dict[str, Dict[str, float]]) -> List[str]:
    """The table: per file and in total, over the tests both suites ran."""
    shared = [test for test in old if test in new]
    files: Dict[str, Dict[str, List[float]]] = defaultdict(lambda: {m: [0.0, 0.0] for m in MEASURES})
    counts: Dict[str, int] = defaultdict(int)
    for test in shared:
        name = test.split("::")[0]
        counts[name] += 1
        for measure in MEASURES:
            files[name][measure][0] += old[test][measure]
            files[name][measure][1] += new[test][measure]
    total = {m: [sum(f[m][0] for f in files.values()), sum(f[m][1] for f in files.values())] for m in MEASURES}

    def row(name: str, n: int, sums: Dict[str, List[float]]) -> str:
        cells = "".join(f" {sums[m][0]:9.2f} {sums[m][1]:9.2f} {_ratio(*sums[m]):>6}" for m in MEASURES)
        return f"{name:<40} {n:5}{cells}"

    lines = [f"{'tests both ran':<40} {'n':>5}" + "".join(f" {m + ' old':>9} {m + ' new':>9} {'ratio':>6}"
                                                        for m in MEASURES)]
    lines += [row(name, counts[name], files[name]) for name in sorted(files)]
    lines.append(row("total", len(shared), total))
    for label, mine, other in (("only old", old, new), ("only new", new, old)):
        alone = [test for test in mine if test not in other]
        lines.append(f"{label}: {len(alone)} tests, {sum(mine[t]['wall'] for t in alone):.2f} s")
    return lines


def _ratio(old: float, new: float) -> str:
    return f"{new / old:.3f}" if old > 0 else "-"


def main(argv: List[str]) -> int:
    own, pytest_args = _split(argv)
    parser = argparse.ArgumentParser(prog=module_command(__spec__.name), description=__doc__.splitlines()[0])
    parser.add_argument("old", type=Path, help="the checkout before the change")
    parser.add_argument("new", type=Path, help="the checkout after it")
    args = parser.parse_args(own)
    for checkout in (args.old, args.new):
        if not (checkout / ".venv" / "bin" / "python").exists():
            parser.error(f"{checkout}: no .venv (run `make install` there)")
    with tempfile.TemporaryDirectory(prefix="suite_pair_") as work:
        (old_wall, old_line, old_file), (new_wall, new_line, new_file) = run_both(
            [args.old.resolve(), args.new.resolve()], pytest_args or DEFAULT_PYTEST_ARGS, Path(work))
        print(f"old {args.old}: {old_line} ({old_wall:.1f} s wall)")
        print(f"new {args.new}: {new_line} ({new_wall:.1f} s wall)")
        print("\n".join(compare(read_timings(old_file), read_timings(new_file))))
    return 0


def _split(argv: List[str]) -> Tuple[List[str], List[str]]:
    """This command's arguments, and pytest's (after `--`)."""
    if "--" in argv:
        at = argv.index("--")
        return argv[:at], argv[at + 1:]
    return argv, []


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
