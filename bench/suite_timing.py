"""A pytest plugin that writes each test's wall time and CPU time as JSON lines (bench/suite_pair.py loads it).

Standalone on purpose: it is loaded into another checkout's pytest (`-p suite_timing`, from a
folder of its own on PYTHONPATH) and imports nothing of this project. One line per test:
`{"id", "wall", "cpu", "children"}`, seconds; `cpu` is the pytest process's own (user + system),
`children` what its finished subprocesses used (the CLI runs, pip, Airflow).
"""

from __future__ import annotations

import json
import os
import resource
import time
from typing import Iterator

import pytest

OUT_VARIABLE = "SUITE_TIMING_OUT"


def _cpu(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: object) -> Iterator[None]:
    start = (time.perf_counter(), _cpu(resource.RUSAGE_SELF), _cpu(resource.RUSAGE_CHILDREN))
    yield
    wall, cpu, children = (time.perf_counter() - start[0], _cpu(resource.RUSAGE_SELF) - start[1],
                           _cpu(resource.RUSAGE_CHILDREN) - start[2])
    with open(os.environ[OUT_VARIABLE], "a", encoding="utf-8") as out:
        out.write(json.dumps({"id": item.nodeid, "wall": wall, "cpu": cpu, "children": children}) + "\n")
