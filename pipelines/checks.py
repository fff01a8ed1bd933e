"""A run's settings, checked before anything is touched: exit 2 with one line when one is wrong."""

from __future__ import annotations

import logging
import os
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import dlt
import duckdb
from dlt.common.configuration import resolve_configuration
from dlt.common.configuration.exceptions import ConfigValueCannotBeCoercedException
from dlt.common.configuration.specs import RuntimeConfiguration
from dlt.common.time import to_seconds

from workspace_images.settings import SOURCE_SECTION
from workspace_images.values import parse_timestamp

from .errors import UsageError
from .warehouse import WORKDIR, Target, open_file

logger = logging.getLogger("workspace_images")

EARLIEST_AS_OF = datetime(2000, 1, 1, tzinfo=timezone.utc)
"""Validity timestamps before this are refused: no Workspace image is that old."""


DEFAULT_LOCK_TIMEOUT = 120.0
"""Seconds a run waits for a program holding the DuckDB file open (`lock_timeout`)."""


def parse_as_of(value: Optional[str]) -> Optional[datetime]:
    """Parse `--as-of` (ISO date or timestamp, UTC unless it carries an offset)."""
    if value is None:
        return None
    moment = parse_timestamp(value)
    if moment is None:
        raise UsageError(f"--as-of {value!r} is not a date or timestamp, e.g. 2026-11-27 or 2026-11-27T06:00:00Z")
    return moment


def check_as_of(as_of: Optional[datetime], now: Optional[datetime] = None) -> datetime:
    """The validity timestamp of a run: `as_of` in UTC (now when None), never in the future.

    A future timestamp would lock the file against every later run (loads must come
    in time order), so it is refused, and so is one before 2000.
    """
    now = now or datetime.now(timezone.utc)
    if as_of is None:
        return now
    if as_of.tzinfo is None:
        as_of = as_of.replace(tzinfo=timezone.utc)
    moment = as_of.astimezone(timezone.utc)
    if moment > now:
        raise UsageError(
            f"--as-of {moment:%Y-%m-%d %H:%M:%S}Z is in the future (now {now:%Y-%m-%d %H:%M:%S}Z): "
            "a load can only be dated when it happened or earlier"
        )
    if moment < EARLIEST_AS_OF:
        raise UsageError(f"--as-of {moment:%Y-%m-%d}Z is before {EARLIEST_AS_OF:%Y-%m-%d}: not a load date")
    return moment


def default_pipelines_dir(db_path: Path) -> Path:
    """dlt's working folder of one DuckDB file: beside it, never dlt's machine-wide default."""
    return Target(db_path=Path(db_path)).default_pipelines_dir()


def resolve_target(db_path: Optional[Path | str], destination: Optional[str]) -> Target:
    """Where a run loads: `destination` (else `destination` of `[sources.workspace_images]`,
    else DuckDB) and, for DuckDB, the file `db_path` (else DEFAULT_DB); its settings checked."""
    if destination is None:
        destination = dlt.config.get(f"{SOURCE_SECTION}.destination")
    try:
        target = Target.of(destination, Path(db_path) if db_path is not None else None)
        target.check_configuration()
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    return target


def check_paths(db_path: Optional[Path], pipelines_dir: Path) -> None:
    """Refuse, before anything is written, a database or working folder the run cannot use.

    Raises:
        UsageError: a folder is missing or not writable, the database is not a file, or
            the working folder's path holds a `'` (dlt pastes it into SQL unescaped) or a `%`
            (dlt formats its files' paths with `%`).
    """
    if db_path is not None:
        folder = db_path.parent
        if not folder.is_dir():
            raise UsageError(f"--db {db_path}: folder {folder} does not exist")
        if db_path.exists() and not db_path.is_file():
            raise UsageError(f"--db {db_path} is not a file")
        real = db_path.resolve().parent  # a link's file: its lock, WAL and working folder lie beside it
        if real != folder.resolve():
            if not real.is_dir():
                raise UsageError(f"--db {db_path} leads to {db_path.resolve()}, whose folder does not exist")
            folder = real
        _check_writable(folder, f"--db {db_path}")
    odd = next((char for char in ("'", "%") if char in str(pipelines_dir.resolve())), None)
    if odd is not None:
        raise UsageError(
            f"dlt's working folder {pipelines_dir} has a {odd} in its path, which dlt cannot load from: "
            "move the database to a folder without one, or pass --pipelines-dir elsewhere"
        )
    existing = next((p for p in [pipelines_dir, *pipelines_dir.parents] if p.exists()), None)
    if existing is not None and existing != pipelines_dir and not existing.is_dir():
        raise UsageError(f"--pipelines-dir {pipelines_dir}: {existing} is not a folder")
    if existing is not None and existing.is_dir():
        _check_writable(existing, f"dlt's working folder {pipelines_dir}")


def database_paths(db_path: Optional[Path], pipelines_dir: Optional[Path]) -> List[Path]:
    """What an output must never write over: a DuckDB file with its lock, WAL and spill folder,
    and dlt's working folder (`pipelines_dir`, else `.workspace_images/` beside the file and in
    the current folder, where another destination's goes)."""
    paths = [Path.cwd() / WORKDIR]
    if db_path is not None:
        for name in dict.fromkeys([db_path, db_path.resolve()]):  # the file a link leads to has them
            paths += [name, *(name.with_name(name.name + suffix) for suffix in (".lock", ".wal", ".tmp"))]
        paths.append(db_path.resolve().parent / WORKDIR)
    if pipelines_dir is not None:
        paths.append(pipelines_dir)
    return paths


def check_outputs(outputs: Dict[str, Sequence[Path]], protected: Sequence[Path]) -> None:
    """Refuse (exit 2) an output that is, or lies inside, one of `protected`, by path or by file
    identity (a hard link, a symbolic link to it).

    Args:
        outputs: Each option's paths it would write, e.g. {"--html": [page]}.
        protected: `database_paths`.
    """
    for option, paths in outputs.items():
        for path in paths:
            resolved = path.resolve()
            for guarded in protected:
                inside = resolved == guarded.resolve() or guarded.resolve() in resolved.parents
                if inside or _same_file(path, guarded):
                    raise UsageError(f"{option} {path} would write over {guarded}, which the database needs: "
                                     "choose another path")


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _check_writable(folder: Path, what: str) -> None:
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise UsageError(f"{what}: cannot write in {folder} ({exc.strerror or exc})") from None


def check_runtime_settings() -> None:
    """Refuse `[runtime]` request settings that would fail every request (exit 2, nothing written)."""
    try:
        config = resolve_configuration(RuntimeConfiguration())
    except ConfigValueCannotBeCoercedException as exc:
        raise UsageError(f"[runtime] {exc.field_name} must be a number") from None
    timeout = config.request_timeout
    values = timeout if isinstance(timeout, tuple) else (timeout,)
    if any(to_seconds(v) <= 0 for v in values):
        raise UsageError(f"[runtime] request_timeout must be more than 0 seconds, got {timeout!r}")
    if config.request_max_attempts < 1:
        raise UsageError(f"[runtime] request_max_attempts must be at least 1, got {config.request_max_attempts}")
    if config.request_backoff_factor < 0 or to_seconds(config.request_max_retry_delay) < 0:
        raise UsageError("[runtime] request_backoff_factor and request_max_retry_delay must be 0 or more")


def storage_version_setting(value: Optional[str]) -> Optional[str]:
    """The DuckDB storage version a new database file is written in: the argument, else
    `duckdb_storage_version` of `[sources.workspace_images]`; None for DuckDB's own default.

    Raises:
        UsageError: DuckDB knows no such version.
    """
    if value is None:
        value = dlt.config.get(f"{SOURCE_SECTION}.duckdb_storage_version")
    if value in (None, ""):
        return None
    version = str(value).strip()
    try:
        duckdb.connect(":memory:", config={"storage_compatibility_version": version}).close()
    except duckdb.Error:
        raise UsageError(
            f"duckdb_storage_version {version!r} is not a DuckDB version DuckDB {duckdb.__version__} can write, "
            "e.g. v1.0.0"
        ) from None
    return version


def create_with_storage_version(db_path: Path, version: str) -> None:
    """Create `db_path` in storage `version`, so DuckDB readers from that version on open it.

    The version of a file is set when it is created and kept by every later write; an
    existing file in another version is left as it is, with a warning.
    """
    if not db_path.exists():
        open_file(db_path, config={"storage_compatibility_version": version}).close()
        logger.info("created %s in DuckDB storage version %s", db_path, version)
        return
    with open_file(db_path, read_only=True) as con:
        row = con.execute(
            "select tags from duckdb_databases() where database_name = current_database()"
        ).fetchone()
    tags = row[0] if row is not None else None
    found = (tags or {}).get("storage_version", "")
    if not found.startswith(version):
        logger.warning("%s is in DuckDB storage version %s, not %s: the version is set when a file is created; "
                       "copy it into a new file to change it", db_path, found or "unknown", version)


def lock_timeout_setting(value: Optional[float]) -> float:
    """Seconds to wait for a program that holds the DuckDB file: the argument, else
    `lock_timeout` of `[sources.workspace_images]`, else DEFAULT_LOCK_TIMEOUT."""
    if value is None:
        value = dlt.config.get(f"{SOURCE_SECTION}.lock_timeout")
    if value is None:
        return DEFAULT_LOCK_TIMEOUT
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        raise UsageError(f"lock_timeout must be a number of seconds, got {value!r}") from None
    if not 0 <= seconds < float("inf"):
        raise UsageError(f"lock_timeout must be 0 or more seconds, got {value!r}")
    return seconds


def check_as_of_order(where: str, as_of: datetime, latest: Optional[datetime]) -> None:
    """Refuse a load dated before the latest one already in the file.

    SCD2 validity only makes sense when snapshots are loaded in time order: a
    replay at the same timestamp is fine, an older one would close versions
    before they opened.
    """
    if latest is not None and as_of < latest:
        raise UsageError(
            f"--as-of {as_of:%Y-%m-%d %H:%M:%S}Z is before the latest load in {where} "
            f"({latest.astimezone(timezone.utc):%Y-%m-%d %H:%M:%S}Z): load snapshots in time order, "
            "or backfill into a new file"
        )
