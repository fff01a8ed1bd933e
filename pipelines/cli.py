"""`workspace-images` command line: a thin layer over the runner (`runner`) and the demo (`demo`)."""

from __future__ import annotations

import argparse
import atexit
import gc
import json
import logging
import os
import sys
import threading
import time
from pathlib import Path
from typing import Callable, Dict, List, NoReturn, Optional, Sequence

import dlt

from workspace_images.source import Progress

from .checks import parse_as_of, resolve_target
from .errors import EXIT_FAILED, EXIT_LOCKED, EXIT_USAGE, RunFailed, UsageError
from .locking import DatabaseBusy, LockHeld
from .runner import RunResult, failure_of, run, run_models
from .warehouse import DEFAULT_DB, Unreachable, hold

logger = logging.getLogger("workspace_images")


class ArgumentParser(argparse.ArgumentParser):
    """argparse that reports bad usage in one line and exits 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def setup_logging(verbose: int, quiet: bool, log_file: Optional[Path] = None) -> None:
    """Log the pipeline's progress to stderr, and to `log_file` too (appended, full dates) when
    given; dlt's own logger says only what is critical unless -v."""
    level = logging.WARNING if quiet else logging.DEBUG if verbose else logging.INFO
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(message)s", "%H:%M:%S"))
    handlers: List[logging.Handler] = [handler]
    if log_file is not None:
        try:
            to_file = logging.FileHandler(log_file, encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"--log-file {log_file}: cannot write there ({exc.strerror or exc})") from None
        to_file.setFormatter(logging.Formatter("%(asctime)s %(process)d %(levelname)-7s %(message)s"))
        to_file.setLevel(logging.DEBUG if verbose else logging.INFO)
        handlers.append(to_file)
    for name in ("workspace_images",):
        log = logging.getLogger(name)
        log.handlers[:] = handlers
        log.setLevel(logging.DEBUG if verbose else logging.INFO)
        log.propagate = False
    handler.setLevel(level)
    # dlt sets its logger from [runtime] log_level whenever a pipeline starts. Its errors come
    # with tracebacks, and every failure of a run is already said in one line: unless -v, or
    # the user set a level, dlt says only what is critical
    if verbose:
        os.environ["RUNTIME__LOG_LEVEL"] = "DEBUG"
    else:
        os.environ.setdefault("RUNTIME__LOG_LEVEL", "CRITICAL")


def progress_printer(interval: float = 1.0) -> Callable[[Progress], None]:
    """A progress callback that logs at most once per `interval` seconds, and always at the end."""
    last = [0.0]
    failed = [0]

    def report(progress: Progress) -> None:
        now = time.monotonic()
        if progress.done == progress.total or progress.failed != failed[0] or now - last[0] >= interval:
            last[0], failed[0] = now, progress.failed
            logger.info("progress: %s", progress.line())

    return report


def parse_filters(values: Optional[Sequence[str]]) -> Optional[Dict[str, str]]:
    """`--filter os_type=Windows` pairs into a dict."""
    if not values:
        return None
    filters: Dict[str, str] = {}
    for value in values:
        key, sep, val = value.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--filter {value!r}: write it as NAME=VALUE, e.g. --filter os_type=Windows")
        filters[key.strip()] = val.strip()
    return filters


def print_result(result: RunResult) -> None:
    """The run's one-line summary on stdout, and each failed project on stderr."""
    print_failures(result)
    print(result.summary())


def print_failures(result: RunResult) -> None:
    """Each failed project on stderr, and what to do about them."""
    for project in result.failed:
        print(f"failed: {project['region']}:{project['project_id']}: {failure_of(project)}", file=sys.stderr)
    if result.failed:
        print(
            "the failed projects kept their previous images; see workspace_images.project_runs, "
            "fix the cause and run again",
            file=sys.stderr,
        )


def add_db_argument(parser: argparse.ArgumentParser, default: str = DEFAULT_DB) -> None:
    parser.add_argument("--db", type=Path, default=Path(default), metavar="PATH", help=f"DuckDB file (default {default})")


def add_target_arguments(parser: argparse.ArgumentParser) -> None:
    """--db or --destination: where the history is."""
    parser.add_argument("--db", type=Path, metavar="PATH", help=f"DuckDB file (default {DEFAULT_DB})")
    parser.add_argument(
        "--destination", metavar="NAME",
        help="load into this dlt destination instead of a DuckDB file: postgres, motherduck, bigquery, "
        "snowflake, ... or a named [destination.NAME]; credentials the dlt way, e.g. "
        "DESTINATION__POSTGRES__CREDENTIALS (default: destination of [sources.workspace_images], else duckdb)",
    )


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--project", dest="projects", action="append", metavar="REGION:PROJECT_ID",
        help="a project to load (repeatable); default: sources.workspace_images.projects from config",
    )
    parser.add_argument("--discover", action="store_true", default=None, help="list the account's projects through IAM")
    parser.add_argument(
        "--region", dest="regions", action="append", metavar="R",
        help="load only projects in this region (repeatable)",
    )
    parser.add_argument(
        "--endpoint", metavar="URL",
        help="Workspace URL template, {region} optional (default https://workspace.{region}.myhuaweicloud.com)",
    )
    parser.add_argument("--iam-endpoint", metavar="URL", help="IAM URL (default https://iam.myhuaweicloud.com)")
    add_target_arguments(parser)
    parser.add_argument(
        "--as-of", metavar="TIMESTAMP",
        help="validity timestamp of this load, for backfills and replays (default: now, UTC)",
    )
    parser.add_argument("--no-models", action="store_true", help="load only; do not build the SQL models")
    parser.add_argument(
        "--filter", dest="filters", action="append", metavar="NAME=VALUE",
        help="API query parameter for every page, e.g. os_type=Windows (repeatable)",
    )
    parser.add_argument("--concurrency", type=int, metavar="N", help="projects fetched at once (default 8)")
    parser.add_argument(
        "--duckdb-storage-version", metavar="VERSION",
        help="write a new DuckDB file in this storage version (e.g. v1.0.0), so older DuckDB readers "
        "(BI tools) can open it; default DuckDB's own",
    )
    parser.add_argument("--json", action="store_true",
                        help="print one JSON object on stdout instead of the summary line, also on failure")
    parser.add_argument("--log-file", type=Path, metavar="PATH",
                        help="append the log to this file too (with dates and the process id)")
    parser.add_argument(
        "--pipelines-dir", type=Path, metavar="DIR",
        help="dlt's working folder (default .workspace_images/<db file name> beside the DuckDB file; "
        "for another destination .workspace_images/<destination>-workspace_images in the current folder)",
    )


def summary_json(result: Optional[RunResult], exit_code: int, error: Optional[str] = None) -> str:
    """The `--json` object: one line, whatever the outcome."""
    summary: Dict[str, object] = {"exit_code": exit_code}
    if result is not None:
        summary.update({
            "run_id": result.run_id,
            "as_of": result.as_of.isoformat(),
            "destination": result.target.destination,
            "db": str(result.target.db_path) if result.target.is_file else result.target.label,
            "projects": len(result.projects),
            "projects_ok": len(result.projects) - len(result.failed),
            "projects_failed": [
                {"project": f"{p['region']}:{p['project_id']}", "http_status": p["http_status"],
                 "error_code": p["error_code"], "error_msg": p["error_msg"]}
                for p in result.failed
            ],
            "images": result.images,
            "new_versions": result.new_versions,
            "retired": result.retired,
            "retries": result.retries,
            "seconds": round(result.seconds, 3),
        })
    if error is not None:
        summary["error"] = error
    return json.dumps(summary, ensure_ascii=False, default=str)


def cmd_run(args: argparse.Namespace) -> int:
    result = run(
        args.db,
        destination=args.destination,
        projects=args.projects,
        regions=args.regions,
        endpoint=args.endpoint,
        iam_endpoint=args.iam_endpoint,
        discover=args.discover,
        filters=parse_filters(args.filters),
        concurrency=args.concurrency,
        as_of=parse_as_of(args.as_of),
        pipelines_dir=args.pipelines_dir,
        on_progress=progress_printer(),
        models=not args.no_models,
        duckdb_storage_version=args.duckdb_storage_version,
    )
    if args.json:
        print_failures(result)
        print(summary_json(result, result.exit_code))
    else:
        print_result(result)
    to_log_file(logging.INFO, result.summary())
    return result.exit_code


def cmd_models(args: argparse.Namespace) -> int:
    target = resolve_target(args.db, args.destination)
    workdir = args.pipelines_dir or target.default_pipelines_dir()
    if target.is_file and not target.db_path.exists():
        raise UsageError(f"{target.db_path} does not exist: load it first with `workspace-images run`")
    with hold(target, workdir, "models build"):
        print(run_models(target, raw_dataset=args.dataset, pipelines_dir=workdir).summary())
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from . import reporting as report

    configured = dlt.config.get("sources.workspace_images.destination")
    if configured not in (None, "", "duckdb") and args.db == Path(DEFAULT_DB):
        raise UsageError(f"report reads a DuckDB file, and the configured destination is {configured}: "
                         "read its analytics schema with SQL or a BI tool, or pass --db FILE")
    if not args.db.exists():
        raise UsageError(f"{args.db} does not exist: load it first with `workspace-images run`")
    if args.days < 1:
        raise UsageError("--days must be at least 1")
    if args.changes < 0:
        raise UsageError("--changes must be 0 or more")
    print(report.terminal_report(args.db, days=args.days, changes=args.changes))
    for fmt, directory in (("csv", args.csv), ("parquet", args.parquet)):
        if directory:
            written = report.export(args.db, directory, fmt)
            print(f"wrote {len(written)} {fmt} files to {directory}")
    if args.html:
        print(f"wrote {report.write_html(args.db, args.html)}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    return run_demo(
        db_path=args.db, days=args.days, projects=args.projects, images=args.images,
        seed=args.seed, replace=args.replace, fault_rate=args.fault_rate,
    )


def cmd_simulator(args: argparse.Namespace) -> int:
    from workspace_images.simulator.cli import serve

    return serve(args)


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(
        prog="workspace-images",
        description="Inventory, with history, of Huawei Cloud Workspace product images, in DuckDB.",
    )
    parser.add_argument("-v", "--verbose", action="count", default=0, help="debug output, dlt's included")
    parser.add_argument("-q", "--quiet", action="store_true", help="warnings and errors only")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=ArgumentParser)
    commands.required = True

    run_parser = commands.add_parser(
        "run", help="extract every project and load it into DuckDB",
        description="Extract every project and load it into DuckDB as an SCD2 history. "
        "Exit 0: every project loaded; 1: some projects failed (see project_runs); "
        "2: bad usage or configuration; 3: the run failed; 4: another run holds this database's lock.",
    )
    add_run_arguments(run_parser)
    run_parser.set_defaults(func=cmd_run)

    models = commands.add_parser(
        "models", help="build the SQL models and run their data tests",
        description="Rebuild the models of sql/ in schema analytics, in one transaction, and run their "
        "data tests. Exit 3 when a test fails (the previous models are kept); 4 when a run holds the "
        "database's lock.",
    )
    add_target_arguments(models)
    models.add_argument("--pipelines-dir", type=Path, metavar="DIR", help="dlt's working folder, as for run")
    models.add_argument(
        "--dataset", default="workspace_images", metavar="NAME",
        help="the dataset (schema) holding images and project_runs, when your own dlt pipeline loaded them "
        "(default workspace_images)",
    )
    models.set_defaults(func=cmd_models)

    report_parser = commands.add_parser(
        "report", help="print the inventory, the OS-version trend and recent changes; export; draw",
        description="Print the inventory by region and OS, the OS-version trend and the latest changes "
        "from the models; optionally export every model and write an HTML page with charts.",
    )
    add_db_argument(report_parser)
    report_parser.add_argument("--days", type=int, default=7, metavar="N", help="days of OS-version trend to print (default 7)")
    report_parser.add_argument("--changes", type=int, default=15, metavar="N", help="latest changes to print (default 15)")
    report_parser.add_argument("--html", type=Path, metavar="FILE", help="write a self-contained HTML page with charts")
    report_parser.add_argument("--csv", type=Path, metavar="DIR", help="export every model as CSV into DIR")
    report_parser.add_argument("--parquet", type=Path, metavar="DIR", help="export every model as Parquet into DIR")
    report_parser.set_defaults(func=cmd_report)

    demo = commands.add_parser(
        "demo", help="run simulated days against the bundled simulator",
        description="Start the simulator on a free loopback port and load N simulated days into a DuckDB file.",
    )
    add_db_argument(demo, "demo.duckdb")
    demo.add_argument("--days", type=int, default=7, metavar="N", help="simulated days to load (default 7)")
    demo.add_argument("--projects", type=int, default=6, metavar="N", help="simulated projects (default 6)")
    demo.add_argument("--images", type=int, default=250, metavar="N", help="images per project on day 0 (default 250)")
    demo.add_argument("--seed", type=int, default=1, metavar="S", help="simulator seed (default 1)")
    demo.add_argument("--fault-rate", type=float, default=0.02, metavar="F", help="share of requests that fail and are retried (default 0.02)")
    demo.add_argument("--replace", action="store_true", help="replace the DuckDB file if it exists")
    demo.set_defaults(func=cmd_demo)

    sim = commands.add_parser(
        "simulator", help="serve the Workspace API simulator",
        description="Serve a local stand-in for the Workspace API until Ctrl-C.",
    )
    from workspace_images.simulator.cli import add_arguments

    add_arguments(sim)
    sim.set_defaults(func=cmd_simulator)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    # dlt's usage telemetry stays off unless the environment turns it on
    os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")
    parser = build_parser()
    args = parser.parse_args(argv)
    as_json = bool(getattr(args, "json", False))
    try:
        setup_logging(args.verbose, args.quiet, getattr(args, "log_file", None))
        return int(args.func(args))
    except UsageError as exc:
        return _fail(EXIT_USAGE, f"error: {exc}", as_json)
    except LockHeld as exc:
        return _fail(EXIT_LOCKED, str(exc), as_json)
    except (RunFailed, DatabaseBusy, Unreachable) as exc:
        return _fail(EXIT_FAILED, f"run failed: {exc}", as_json)
    except KeyboardInterrupt:
        return _fail(130, "interrupted", as_json)
    except Exception as exc:  # the last line of defence: one line, never a traceback
        logger.debug("unexpected failure", exc_info=True)
        text = str(exc).strip().splitlines()
        return _fail(EXIT_FAILED, f"run failed: {exc.__class__.__name__}: {text[0] if text else 'no message'} "
                     "(run with -v for details)", as_json)


def to_log_file(level: int, message: str) -> None:
    """Write a line to the --log-file only (stdout and stderr already have it)."""
    for handler in logging.getLogger("workspace_images").handlers:
        if isinstance(handler, logging.FileHandler):
            handler.handle(logging.LogRecord("workspace_images", level, __file__, 0, message, None, None))


def _fail(code: int, message: str, as_json: bool) -> int:
    """Say why the command failed: one line on stderr (and in the log file), and with --json
    the JSON object on stdout."""
    print(f"workspace-images: {message}", file=sys.stderr)
    to_log_file(logging.ERROR, message)
    if as_json:
        print(summary_json(None, code, message))
    return code


def console_main() -> NoReturn:
    """The `workspace-images` command: `main()`, then the exit.

    Everything imported by then (dlt, pyarrow, DuckDB) lives as long as the process, so it is
    moved out of the garbage collector's way first (`gc.freeze`). Once `main()` is done, every
    file is closed; the exit handlers run (log files, dlt's own) and the output is flushed, but
    the interpreter's teardown, which frees all of it object by object (0.2-0.3 s that a cron
    job would wait for), is skipped, unless a thread is still at work.
    """
    gc.freeze()
    code = main()
    others = [t for t in threading.enumerate() if t is not threading.main_thread() and not t.daemon]
    if any(t.is_alive() for t in others):
        sys.exit(code)
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)


if __name__ == "__main__":
    console_main()
