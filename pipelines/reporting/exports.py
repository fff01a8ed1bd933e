"""`report --csv/--parquet`: the models' tables written out as files, the same from every database."""

from __future__ import annotations

import datetime as dt
import json
import logging
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import pyarrow as pa
import pyarrow.parquet as pq

from ..errors import UsageError
from ..warehouse import Session, Target
from .queries import ANALYTICS, _connect, as_target, text_order

logger = logging.getLogger("workspace_images")

BATCH_ROWS = 25_000
"""Rows read, and written, at a time: a Parquet row group, and the most rows held in memory."""

ARROW_TYPES = {
    "boolean": pa.bool_(),
    "smallint": pa.int16(),
    "integer": pa.int32(),
    "bigint": pa.int64(),
    "real": pa.float32(),
    "float": pa.float32(),
    "double": pa.float64(),
    "double precision": pa.float64(),
    "date": pa.date32(),
    "timestamp": pa.timestamp("us"),
    "timestamp without time zone": pa.timestamp("us"),
    "timestamp with time zone": pa.timestamp("us", tz="UTC"),
}
"""Arrow types of the SQL types of information_schema (DuckDB's and PostgreSQL's names); the
other types (text, decimals, JSON) are written as text."""

TEXT_TYPES = {"varchar", "text", "character varying", "string"}


def _arrow_type(data_type: str) -> pa.DataType:
    return ARROW_TYPES.get(data_type.lower().split("(")[0].strip(), pa.string())


def _text(value: Any) -> str:
    """A value as text, as DuckDB's CSV writer gives it: timestamps in UTC (`+00`), booleans
    `true`/`false`, JSON as JSON."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dt.datetime):
        zone = ""
        if value.tzinfo is not None:
            value, zone = value.astimezone(dt.timezone.utc), "+00"
        fraction = f".{value.microsecond:06d}".rstrip("0") if value.microsecond else ""
        return f"{value:%Y-%m-%d %H:%M:%S}{fraction}{zone}"
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def _csv_field(value: Any) -> str:
    """One CSV field: empty for NULL; quoted when empty, or holding a comma, quote or line break."""
    if value is None:
        return ""
    text = _text(value)
    if text == "" or any(ch in text for ch in ',"\n\r'):
        return '"' + text.replace('"', '""') + '"'
    return text


def _write_csv(path: Path, names: Sequence[str], batches: Iterator[List[tuple]], _: Sequence[str]) -> None:
    with path.open("w", encoding="utf-8", newline="") as out:
        out.write(",".join(_csv_field(n) for n in names) + "\n")
        for rows in batches:
            out.writelines(",".join(_csv_field(v) for v in row) + "\n" for row in rows)


def _arrow_value(value: Any, kind: pa.DataType) -> Any:
    if value is None or not pa.types.is_string(kind):
        return value
    return _text(value)


def _write_parquet(path: Path, names: Sequence[str], batches: Iterator[List[tuple]], types: Sequence[str]) -> None:
    schema = pa.schema([pa.field(n, _arrow_type(t)) for n, t in zip(names, types)])
    with pq.ParquetWriter(str(path), schema, compression="zstd") as writer:
        wrote = False
        for rows in batches:
            columns = [pa.array([_arrow_value(row[i], f.type) for row in rows], type=f.type)
                       for i, f in enumerate(schema)]
            writer.write_batch(pa.record_batch(columns, schema=schema))
            wrote = True
        if not wrote:
            writer.write_table(schema.empty_table())


WRITERS: Dict[str, Callable[[Path, Sequence[str], Iterator[List[tuple]], Sequence[str]], None]] = {
    "csv": _write_csv,
    "parquet": _write_parquet,
}


def _tables(session: Session) -> Dict[str, List[Tuple[str, str]]]:
    """(column, SQL type) of each table of schema `analytics`, by table name."""
    tables: Dict[str, List[Tuple[str, str]]] = {}
    for table, column, data_type in session.columns(ANALYTICS):
        tables.setdefault(table, []).append((column, data_type))
    return dict(sorted(tables.items()))


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _select(session: Session, table: str, columns: Sequence[Tuple[str, str]]) -> str:
    """Every row of `table`, sorted by every column left to right (text by code point), so that
    every database gives the same file."""
    keys = [text_order(session, _quote(c)) if t.lower() in TEXT_TYPES else _quote(c) for c, t in columns]
    names = ", ".join(_quote(c) for c, _ in columns)
    return (f"select {names} from {ANALYTICS}.{_quote(table)} "
            f"order by {', '.join(k + ' nulls last' for k in keys)}")


def export(where: Target | Path, directory: Path, fmt: str, pipelines_dir: Optional[Path] = None) -> List[Path]:
    """Write every table of schema `analytics` to `directory/<table>.<fmt>`, from the rows read.

    Args:
        where: The database with the models built: a Target, or a Path of a DuckDB file.
        directory: Created when missing; existing files of the same names are replaced.
        fmt: "csv" (a header row; NULL empty, an empty text `""`; timestamps in UTC as
            `2026-11-04 12:00:00+00`, booleans `true`/`false`) or "parquet" (zstd; timestamps
            in UTC, text, 64-bit integers, booleans and dates typed).
        pipelines_dir: dlt's working folder, for a destination other than a DuckDB file.

    Returns:
        The files written, in table-name order; each file's rows sorted by every column.
    """
    if fmt not in WRITERS:
        raise UsageError(f"export format {fmt!r}: use csv or parquet")
    directory = Path(directory)
    written = []
    with _connect(as_target(where), pipelines_dir) as session:
        try:
            directory.mkdir(parents=True, exist_ok=True)
            for table, columns in _tables(session).items():
                path = directory / f"{table}.{fmt}"
                with session.stream(_select(session, table, columns), BATCH_ROWS) as (names, batches):
                    WRITERS[fmt](path, names, batches, [t for _, t in columns])
                written.append(path)
                logger.info("exported %s.%s to %s", ANALYTICS, table, path)
        except OSError as exc:
            raise UsageError(f"--{fmt} {directory}: cannot write there ({exc.strerror or exc})") from None
    return written
