"""What the command line says: its log, progress lines, and the summary line or JSON object."""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional

from workspace_images.source import Progress
from workspace_images.safe_text import UNSAFE_CHARS, safe_text

from .errors import UsageError
from .runner import RunResult, failed_line

logger = logging.getLogger("workspace_images")


class SafeFormatter(logging.Formatter):
    """Formats each record's message as `safe_text` shows it: one line, known secrets redacted,
    whatever the values it quotes (a traceback, with -v, keeps its own lines)."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        message = record.message
        record.message = safe_text(message)
        try:
            return super().formatMessage(record)
        finally:
            record.message = message


def setup_logging(verbose: int, quiet: bool, log_file: Optional[Path] = None) -> None:
    """Log the pipeline's progress to stderr, and to `log_file` too (appended, full dates) when
    given; dlt's own logger says only what is critical unless -v."""
    level = logging.WARNING if quiet else logging.DEBUG if verbose else logging.INFO
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(SafeFormatter("%(asctime)s %(levelname)-7s %(message)s", "%H:%M:%S"))
    handlers: List[logging.Handler] = [handler]
    if log_file is not None:
        try:
            to_file = logging.FileHandler(log_file, encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"--log-file {log_file}: cannot write there ({exc.strerror or exc})") from None
        to_file.setFormatter(SafeFormatter("%(asctime)s %(process)d %(levelname)-7s %(message)s"))
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


def print_result(result: RunResult) -> None:
    """The run's one-line summary on stdout, and each failed project on stderr."""
    print_failures(result)
    print(result.summary())


def print_failures(result: RunResult) -> None:
    """Each failed project on stderr, and what to do about them."""
    for project in result.failed:
        print(failed_line(project), file=sys.stderr)
    if result.failed:
        print(
            "the failed projects kept their previous images; see workspace_images.project_runs, "
            "fix the cause and run again",
            file=sys.stderr,
        )


def summary_json(result: Optional[RunResult], exit_code: int, error: Optional[str] = None) -> str:
    """The `--json` object: one line, whatever the outcome; the characters of UNSAFE_CHARS that
    JSON allows raw (DEL, C1, bidirectional ones) written as `\\uXXXX` escapes, the same values."""
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
        if result.throttling:
            summary["throttled"] = result.throttled_summary()
    if error is not None:
        summary["error"] = safe_text(error)
    text = json.dumps(summary, ensure_ascii=False, default=str)
    return UNSAFE_CHARS.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def to_log_file(level: int, message: str) -> None:
    """Write a line to the --log-file only (stdout and stderr already have it)."""
    for handler in logging.getLogger("workspace_images").handlers:
        if isinstance(handler, logging.FileHandler):
            handler.handle(logging.LogRecord("workspace_images", level, __file__, 0, message, None, None))
