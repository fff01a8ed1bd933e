"""`report --csv --parquet` over a loaded history, against DuckDB's own COPY of the same tables.

Loads --projects x --images images once (with the models), then times, best of --repeat:
`report` alone (the terminal tables), `report --csv DIR --parquet DIR` (every model written out,
sorted, the same files from every database), and a plain DuckDB script that copies every
`analytics` table to CSV and to Parquet, unsorted (the floor: what the files cost in DuckDB).

Usage: python -m bench.report_export [--projects 100] [--images 1000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path
from typing import List

from bench.common import check_timer, measure, ours, pipeline_env, start_simulator, stop
from workspace_images.pipelines.program import module_command

COPY_SCRIPT = """
import sys, duckdb
con = duckdb.connect(sys.argv[1], read_only=True)
for (table,) in con.execute("select table_name from duckdb_tables() where schema_name = 'analytics'").fetchall():
    con.execute(f"copy analytics.{table} to '{sys.argv[2]}/{table}.csv' (format csv, header)")
    con.execute(f"copy analytics.{table} to '{sys.argv[2]}/{table}.parquet' (format parquet, compression zstd)")
"""


def best(cmd: List[str], env: dict, work: Path, repeat: int, out: Path) -> float:
    times = []
    for _ in range(repeat):
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir()
        times.append(measure(cmd, env, work)[0])
    return min(times)


def main() -> int:
    parser = argparse.ArgumentParser(prog=module_command(__spec__.name), description=__doc__.splitlines()[0])
    parser.add_argument("--projects", type=int, default=100)
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    check_timer()
    sim, url, targets = start_simulator(args.projects, args.images)
    work = Path(tempfile.mkdtemp(prefix="wi-report-"))
    try:
        env = pipeline_env(targets, work)
        load = [arg for arg in ours(url) if arg != "--no-models"]
        measure(load, env, work)
        report = [sys.executable, "-m", "workspace_images.pipelines.cli", "-q", "report", "--db", "bench.duckdb"]
        out = work / "out"
        alone = best(report, env, work, args.repeat, out)
        exports = best([*report, "--csv", str(out / "csv"), "--parquet", str(out / "parquet")], env, work, args.repeat,
                       out)
        floor = best([sys.executable, "-c", COPY_SCRIPT, str(work / "bench.duckdb"), str(out)], env, work,
                     args.repeat, out)
    finally:
        stop(sim)
        shutil.rmtree(work, ignore_errors=True)
    print(f"{args.projects} projects x {args.images} images, best of {args.repeat}")
    print(f"report alone {alone:.2f} s; report --csv --parquet {exports:.2f} s: the files add {exports - alone:.2f} s, "
          f"{(exports - alone) / floor:.2f}x DuckDB's own COPY of the same tables ({floor:.2f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
