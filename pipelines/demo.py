"""`workspace-images demo`: the whole pipeline against the bundled simulator, day by day."""

from __future__ import annotations

import logging
import secrets
import shutil
from pathlib import Path

from workspace_images.simulator import Simulator

from .reporting import ScreenshotFailed, screenshot, terminal_report, write_html
from .checks import default_pipelines_dir
from .errors import EXIT_OK, EXIT_PARTIAL, UsageError
from .runner import run

logger = logging.getLogger("workspace_images")


def run_demo(
    db_path: Path,
    days: int = 7,
    projects: int = 6,
    images: int = 250,
    seed: int = 1,
    replace: bool = False,
    fault_rate: float = 0.02,
) -> int:
    """Load `days` simulated days, one `--as-of` per day, and print what each day loaded.

    Then print the report, and write the HTML page `<db stem>_report.html` beside the
    DuckDB file with its screenshot `<db stem>_report.png` (skipped, with a warning, when
    no Chromium is installed).

    Returns:
        0 when every day loaded every project, 1 when some project failed on some day.
    """
    if days < 1 or projects < 1 or images < 0:
        raise UsageError("--days and --projects must be at least 1, --images at least 0")
    if not 0 <= fault_rate < 1:
        raise UsageError("--fault-rate must be between 0 and 1 (exclusive)")
    db_path = Path(db_path)
    if db_path.exists():
        if not replace:
            raise UsageError(f"{db_path} exists: pass --replace to overwrite it, or --db NEW_FILE")
        db_path.unlink()
        shutil.rmtree(default_pipelines_dir(db_path), ignore_errors=True)
    token = secrets.token_urlsafe(24)
    logging.getLogger("workspace_images.simulator").setLevel(logging.WARNING)
    exit_code = EXIT_OK
    with Simulator(projects=projects, images=images, seed=seed, token=token, fault_rate=fault_rate) as sim:
        targets = [f"{p.region}:{p.project_id}" for p in sim.projects]
        print(f"simulator at {sim.url}: {len(targets)} projects, {images} images each on day 0")
        for day in range(days):
            sim.set_day(day)
            result = run(db_path, projects=targets, endpoint=sim.url, token=token, as_of=sim.as_of(day))
            ok = len(result.projects) - len(result.failed)
            print(
                f"day {day} ({result.as_of:%Y-%m-%d}): {ok}/{len(result.projects)} projects ok, "
                f"{result.images:,} images, {result.new_versions:,} new versions, "
                f"{result.retired:,} retired, {result.retries} retries, {result.seconds:.1f}s"
            )
            if result.failed:
                exit_code = EXIT_PARTIAL
    print(f"history in {db_path}: tables workspace_images.images and workspace_images.project_runs")
    print()
    print(terminal_report(db_path))
    print()
    page = write_html(db_path, db_path.with_name(f"{db_path.stem}_report.html"))
    print(f"report page: {page}")
    try:
        shot = screenshot(page, page.with_suffix(".png"))
    except ScreenshotFailed as exc:
        logger.warning("no screenshot of the report page: %s", exc)
        shot = None
    if shot:
        print(f"screenshot: {shot}")
    return exit_code
