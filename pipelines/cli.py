"""`workspace-images` command line: run the command asked for, and end with its exit code."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import Callable, Dict, List, NoReturn, Optional

from workspace_images.safe_text import safe_text

from .arguments import MAX_REPORT_CHANGES, MAX_REPORT_DAYS, PROG, build_parser, parse_filters
from .checks import check_outputs, database_paths, parse_as_of, resolve_target
from .errors import EXIT_FAILED, EXIT_LOCKED, EXIT_USAGE, RunFailed, UsageError, first_line
from .locking import DatabaseBusy, LockHeld
from .output import print_failures, print_result, progress_printer, setup_logging, summary_json, to_log_file
from .program import module_command
from .models import load_models
from .runner import run, run_models
from .warehouse import DEFAULT_DB, Unreachable, hold

logger = logging.getLogger("workspace_images")


def cmd_init(args: argparse.Namespace) -> int:
    from .init import next_steps, write_templates

    print(next_steps(args.folder, write_templates(args.folder)))
    return 0


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
    if target.file_missing:
        raise UsageError(f"{target.db_path} does not exist: load it first with `workspace-images run`")
    with hold(target, workdir, "models build"):
        print(run_models(target, raw_dataset=args.dataset, pipelines_dir=workdir, replace=args.replace).summary())
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from . import reporting as report

    if not 1 <= args.days <= MAX_REPORT_DAYS:
        raise UsageError(f"--days must be from 1 to {MAX_REPORT_DAYS} (a hundred years), got {args.days}")
    if not 0 <= args.changes <= MAX_REPORT_CHANGES:
        raise UsageError(f"--changes must be from 0 to {MAX_REPORT_CHANGES:,}, got {args.changes}")
    target = resolve_target(args.db, args.destination)
    workdir = args.pipelines_dir or target.default_pipelines_dir()
    names = [model.name for model in load_models()]
    check_outputs({"--html": [args.html] if args.html else [],
                   **{f"--{fmt}": [folder, *(folder / f"{name}.{fmt}" for name in names)]
                      for fmt, folder in (("csv", args.csv), ("parquet", args.parquet)) if folder}},
                  database_paths(target.db_path, workdir))
    print(report.terminal_report(target, days=args.days, changes=args.changes, pipelines_dir=workdir))
    for fmt, directory in (("csv", args.csv), ("parquet", args.parquet)):
        if directory:
            written = report.export(target, directory, fmt, pipelines_dir=workdir)
            print(f"wrote {len(written)} {fmt} files to {directory}")
    if args.html:
        print(f"wrote {report.write_html(target, args.html, pipelines_dir=workdir)}")
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


COMMANDS: Dict[str, Callable[[argparse.Namespace], int]] = {
    "init": cmd_init,
    "run": cmd_run,
    "models": cmd_models,
    "report": cmd_report,
    "demo": cmd_demo,
    "simulator": cmd_simulator,
}
"""The function of each command of `build_parser`."""


def main(argv: Optional[List[str]] = None, prog: str = PROG) -> int:
    # dlt's usage telemetry stays off unless the environment turns it on
    os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    as_json = bool(getattr(args, "json", False))
    try:
        log_file = getattr(args, "log_file", None)
        if log_file is not None:
            db = getattr(args, "db", None) or (None if getattr(args, "destination", None) else Path(DEFAULT_DB))
            check_outputs({"--log-file": [log_file]}, database_paths(db, getattr(args, "pipelines_dir", None)))
        setup_logging(args.verbose, args.quiet, log_file)
        return int(COMMANDS[args.command](args))
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
        return _fail(EXIT_FAILED, f"run failed: {exc.__class__.__name__}: {first_line(exc, 'no message')} "
                     "(run with -v for details)", as_json)


def _fail(code: int, message: str, as_json: bool) -> int:
    """Say why the command failed: one line on stderr (and in the log file), and with --json
    the JSON object on stdout. The message may quote what a server answered: it is shown as
    `safe_text` gives it."""
    message = safe_text(message)
    print(f"workspace-images: {message}", file=sys.stderr)
    to_log_file(logging.ERROR, message)
    if as_json:
        print(summary_json(None, code, message))
    return code


def console_main(prog: str = PROG) -> NoReturn:
    """The `workspace-images` command (`prog` names it in usage lines): `main()`, then the
    interpreter's ordinary exit with its code."""
    sys.exit(main(prog=prog))


if __name__ == "__main__":
    console_main(module_command(__spec__.name))
