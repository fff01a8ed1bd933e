"""`report --csv/--parquet`: the models' tables written out as files."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import List

import duckdb


from ..errors import UsageError
from .queries import ANALYTICS, _connect

logger = logging.getLogger("workspace_images")


# -- exports -------------------------------------------------------------------------------


def export(db_path: Path, directory: Path, fmt: str) -> List[Path]:
    """Write every table of schema `analytics` to `directory/<table>.<fmt>` with DuckDB's COPY.

    Args:
        db_path: DuckDB file with the models built.
        directory: Created when missing; existing files of the same names are replaced.
        fmt: "csv" (with a header row, timestamps in UTC) or "parquet".

    Returns:
        The files written, in table-name order.
    """
    options = {"csv": "format csv, header true", "parquet": "format parquet, compression zstd"}
    if fmt not in options:
        raise UsageError(f"export format {fmt!r}: use csv or parquet")
    directory = Path(directory)
    with _connect(db_path) as con:
        tables = [r[0] for r in con.execute(
            "select table_name from information_schema.tables where table_schema = ? order by table_name", [ANALYTICS]
        ).fetchall()]
        written = []
        try:
            directory.mkdir(parents=True, exist_ok=True)
            for table in tables:
                target = directory / f"{table}.{fmt}"
                quoted = str(target).replace("'", "''")
                con.execute(f'copy {ANALYTICS}."{table}" to \'{quoted}\' ({options[fmt]})')
                written.append(target)
                logger.info("exported %s.%s to %s", ANALYTICS, table, target)
        except (OSError, duckdb.IOException) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc).strip().splitlines()[0]
            raise UsageError(f"--{fmt} {directory}: cannot write there ({reason})") from None
    return written
