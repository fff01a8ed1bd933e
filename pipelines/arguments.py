"""The `workspace-images` command line's grammar: its commands, their flags and help texts."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, NoReturn, Optional, Sequence

from workspace_images.settings import (
    DEFAULT_CONCURRENCY,
    DEFAULT_ENDPOINT,
    DEFAULT_IAM_ENDPOINT,
    SOURCE_SECTION,
)

from .errors import EXIT_USAGE, UsageError
from .warehouse import DATASET_NAME, DEFAULT_DB, WORKDIR

MAX_REPORT_DAYS = 36500
"""Most days of trend `report --days` prints: a hundred years, well inside what dates can count back."""

MAX_REPORT_CHANGES = 1_000_000
"""Most changes `report --changes` prints."""


@dataclass(frozen=True)
class Command:
    """One command of the command line: its name, its one-line help in the list of commands, its parser."""

    name: str
    help: str
    parser: ArgumentParser


class ArgumentParser(argparse.ArgumentParser):
    """argparse that reports bad usage in one line and exits 2, and keeps what was added to it.

    `flags` are the arguments given to `add_argument`, in order (argparse's own -h/--help not among them);
    `commands` the sub-commands `build_parser` adds, in order. argparse keeps both in private attributes
    only, and the CLI reference (tools/docs.py) and its tests read them here. Flags are added with
    `add_argument` on the parser itself, not on an argument group, so that `flags` holds every one.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.flags: List[argparse.Action] = []
        self.commands: Dict[str, Command] = {}
        super().__init__(*args, **kwargs)
        self.flags.clear()  # the -h/--help that argparse's __init__ adds through add_argument

    def add_argument(self, *args: Any, **kwargs: Any) -> argparse.Action:
        action = super().add_argument(*args, **kwargs)
        self.flags.append(action)
        return action

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


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


def add_db_argument(parser: argparse.ArgumentParser, default: str = DEFAULT_DB) -> None:
    parser.add_argument("--db", type=Path, default=Path(default), metavar="PATH", help=f"DuckDB file (default {default})")


def add_target_arguments(parser: argparse.ArgumentParser, verb: str = "load into") -> None:
    """--db or --destination: where the history is; `verb` says what the command does with it."""
    parser.add_argument("--db", type=Path, metavar="PATH", help=f"DuckDB file (default {DEFAULT_DB})")
    parser.add_argument(
        "--destination", metavar="NAME",
        help=f"{verb} this dlt destination instead of a DuckDB file: postgres, motherduck, bigquery, "
        "snowflake, ... or a named [destination.NAME]; credentials the dlt way, e.g. "
        f"DESTINATION__POSTGRES__CREDENTIALS (default: destination of [{SOURCE_SECTION}], else duckdb)",
    )


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--project", dest="projects", action="append", metavar="REGION:PROJECT_ID",
        help=f"a project to load (repeatable); default: {SOURCE_SECTION}.projects from config",
    )
    parser.add_argument("--discover", action="store_true", default=None, help="list the account's projects through IAM")
    parser.add_argument(
        "--region", dest="regions", action="append", metavar="R",
        help="load only projects in this region (repeatable)",
    )
    parser.add_argument(
        "--endpoint", metavar="URL",
        help=f"Workspace URL template, {{region}} optional (default {DEFAULT_ENDPOINT})",
    )
    parser.add_argument("--iam-endpoint", metavar="URL", help=f"IAM URL (default {DEFAULT_IAM_ENDPOINT})")
    add_target_arguments(parser)
    parser.add_argument(
        "--as-of", metavar="TIMESTAMP",
        help="validity timestamp of this load, for backfills and replays (default: now, UTC)",
    )
    parser.add_argument("--no-models", action="store_true", help="load only; do not build the SQL models")
    parser.add_argument(
        "--filter", dest="filters", action="append", metavar="NAME=VALUE",
        help="API query parameter for every page, e.g. os_type=Windows (repeatable); a filtered run retires only "
        "earlier versions of the images it read",
    )
    parser.add_argument("--concurrency", type=int, metavar="N", help=f"projects fetched at once (default {DEFAULT_CONCURRENCY})")
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
        help=f"dlt's working folder (default {WORKDIR}/<db file name> beside the DuckDB file; "
        f"for another destination {WORKDIR}/<destination>-{DATASET_NAME} in the current folder)",
    )


PROG = "workspace-images"
"""The console script's name, which its usage lines start with."""


def build_parser(prog: str = PROG) -> ArgumentParser:
    """The parser of every command; `command` of what it parses names the one given (cli.COMMANDS).

    Args:
        prog: The command's name in usage lines: `python -m workspace_images.pipelines.cli` when run so.
    """
    parser = ArgumentParser(
        prog=prog,
        description="Inventory, with history, of Huawei Cloud Workspace product images, in DuckDB.",
    )
    parser.add_argument("-v", "--verbose", action="count", default=0, help="debug output, dlt's included")
    parser.add_argument("-q", "--quiet", action="store_true", help="warnings and errors only")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=ArgumentParser)
    commands.required = True

    def command(name: str, help: str, description: str) -> ArgumentParser:
        """A command's parser, added to the COMMAND choice and to `parser.commands`."""
        sub = commands.add_parser(name, help=help, description=description)
        parser.commands[name] = Command(name, help, sub)
        return sub

    init = command(
        "init", help="write .dlt/config.toml and .dlt/secrets.toml templates to fill in",
        description="Write the templates of .dlt/config.toml (projects, regions, destination, time limits) and "
        ".dlt/secrets.toml (credentials; readable by you alone) in FOLDER, to edit before `workspace-images run` "
        "there. Never overwrites: exit 2 when either file exists.",
    )
    init.add_argument("folder", nargs="?", type=Path, default=Path("."), metavar="FOLDER",
                      help="the folder to run workspace-images from (default: the current folder)")

    run_parser = command(
        "run", help="extract every project and load it into DuckDB",
        description="Extract every project and load it into DuckDB as an SCD2 history. "
        "Exit 0: every project loaded; 1: some projects failed (see project_runs); "
        "2: bad usage or configuration; 3: the run failed; 4: another run holds this database's lock.",
    )
    add_run_arguments(run_parser)

    models = command(
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
    models.add_argument(
        "--replace", action="store_true",
        help="replace models built from another dataset (a database has one analytics schema; without "
        "this, building from a dataset other than the one the models came from exits 2)",
    )

    report_parser = command(
        "report", help="print the inventory, the OS-version trend and recent changes; export; draw",
        description="Print the inventory by region and OS, the OS-version trend and the latest changes "
        "from the models, in a DuckDB file or any destination they build on; optionally export every model "
        "and write an HTML page with charts. Exit 2 when the models are not built, 3 when the database "
        "cannot be read or reached.",
    )
    add_target_arguments(report_parser, "read")
    report_parser.add_argument("--pipelines-dir", type=Path, metavar="DIR", help="dlt's working folder, as for run")
    report_parser.add_argument("--days", type=int, default=7, metavar="N",
                               help=f"days of OS-version trend to print (default %(default)s, at most {MAX_REPORT_DAYS})")
    report_parser.add_argument("--changes", type=int, default=15, metavar="N",
                               help=f"latest changes to print (default %(default)s, at most {MAX_REPORT_CHANGES:,})")
    report_parser.add_argument("--html", type=Path, metavar="FILE", help="write a self-contained HTML page with charts")
    report_parser.add_argument("--csv", type=Path, metavar="DIR", help="export every model as CSV into DIR")
    report_parser.add_argument("--parquet", type=Path, metavar="DIR", help="export every model as Parquet into DIR")

    demo = command(
        "demo", help="run simulated days against the bundled simulator",
        description="Start the simulator on a free loopback port and load N simulated days into a DuckDB file.",
    )
    add_db_argument(demo, "demo.duckdb")
    demo.add_argument("--days", type=int, default=7, metavar="N", help="simulated days to load (default %(default)s)")
    demo.add_argument("--projects", type=int, default=6, metavar="N", help="simulated projects (default %(default)s)")
    demo.add_argument("--images", type=int, default=250, metavar="N", help="images per project on day 0 (default %(default)s)")
    demo.add_argument("--seed", type=int, default=1, metavar="S", help="simulator seed (default %(default)s)")
    demo.add_argument("--fault-rate", type=float, default=0.02, metavar="F", help="share of requests that fail and are retried (default %(default)s)")
    demo.add_argument("--replace", action="store_true", help="replace the DuckDB file if it exists")

    sim = command(
        "simulator", help="serve the Workspace API simulator",
        description="Serve a local stand-in for the Workspace API until Ctrl-C.",
    )
    from workspace_images.simulator.cli import add_arguments

    add_arguments(sim)
    return parser
