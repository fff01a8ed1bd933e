"""Run `workspace-images` with a pause at one point of a run, so that a test can kill -9 it there.

    python tests/killpoint.py POINT MARKER_FILE -- run --db ... (the CLI's arguments)

When the run reaches POINT it writes POINT to MARKER_FILE and sleeps; the test
waits for the file, then kills the process. Points:

- extract: a project's table is built while others are still being fetched;
- normalize: extraction is committed, normalization has not started;
- load: the package is normalized, no job of it has run;
- load-merge: inside the SCD2 merge of `images`, at its first statement that retires versions;
- load-complete: every job of the package has run, the package is not yet marked loaded;
- models: the models are built in their transaction, their data tests not yet run.
"""

from __future__ import annotations

import importlib
import sys
import time
from pathlib import Path
from typing import Any, Callable

import workspace_images.pipelines.models as models
import workspace_images.fetch as fetch
from workspace_images.pipelines.cli import main


def pause_when(owner: Any, name: str, point: str, marker: Path, when: Callable[..., bool]) -> None:
    original = getattr(owner, name)

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if when(*args, **kwargs):
            marker.write_text(point)
            time.sleep(600)
        return original(*args, **kwargs)

    setattr(owner, name, wrapper)


def nth_call(n: int) -> Callable[..., bool]:
    calls = [0]

    def check(*_: Any, **__: Any) -> bool:
        calls[0] += 1
        return calls[0] == n

    return check


def retires_versions(_client: Any, sql: str, *args: Any, **kwargs: Any) -> bool:
    return "_dlt_valid_to" in sql and "update" in sql.lower()


# modules by name: `dlt.pipeline` and `dlt.load` are also functions of the `dlt` package
POINTS = {
    "extract": (fetch, "images_table", nth_call(2)),
    "normalize": (importlib.import_module("dlt.pipeline.pipeline").Pipeline, "normalize", nth_call(1)),
    "load": (importlib.import_module("dlt.pipeline.pipeline").Pipeline, "load", nth_call(1)),
    "load-merge": (importlib.import_module("dlt.destinations.impl.duckdb.sql_client").DuckDbSqlClient,
                   "execute_sql", retires_versions),
    "load-complete": (importlib.import_module("dlt.load.load").Load, "complete_package", nth_call(1)),
    "models": (models, "_run_test", nth_call(1)),
}


if __name__ == "__main__":
    point, marker = sys.argv[1], Path(sys.argv[2])
    owner, name, when = POINTS[point]
    pause_when(owner, name, point, marker, when)
    sys.exit(main(sys.argv[sys.argv.index("--") + 1:]))
