"""`report --csv/--parquet`: the models' tables written out as files, the same from every database."""

from __future__ import annotations

import datetime as dt
import json
import logging
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from ..errors import UsageError
from ..warehouse import Session, Target, literal
from .queries import ANALYTICS, as_target, open_models, text_order

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


def _arrow_value(value: Any, kind: pa.DataType) -> Any:
    if value is None or not pa.types.is_string(kind):
        return value
    return _text(value)


def _batches(session: Session, sql: str, schema: pa.Schema) -> Iterator[pa.RecordBatch]:
    """The rows of `sql` as Arrow batches of `schema`, BATCH_ROWS at a time: DuckDB's own Arrow,
    cast; from another database, built from the rows its driver returns."""
    reader = session.arrow(sql, BATCH_ROWS)
    if reader is not None:
        for batch in reader:
            yield from pa.Table.from_batches([batch]).cast(schema).to_batches()
        return
    with session.stream(sql, BATCH_ROWS) as (_, batches):
        for rows in batches:
            yield pa.record_batch([pa.array([_arrow_value(row[i], f.type) for row in rows], type=f.type)
                                   for i, f in enumerate(schema)], schema=schema)


FORMATS = {"csv": "format csv, header", "parquet": "format parquet, compression zstd"}
"""DuckDB's COPY options of each export format."""

FORMULA_START = "^([=+\\-@\t\r])"
"""A text cell starting with one of these a spreadsheet may run as a formula (RE2, for pyarrow)."""


def neutralise_cells(batch: pa.RecordBatch) -> pa.RecordBatch:
    """`batch` with a `'` put before each text cell that starts with `=`, `+`, `-`, `@`, a tab or
    a CR, as spreadsheets take it (a literal text); other columns, negative numbers included, as they are."""
    columns = [
        pc.replace_substring_regex(column, pattern=FORMULA_START, replacement="'\\1", max_replacements=1)
        if pa.types.is_string(column.type) else column
        for column in batch.columns
    ]
    return pa.record_batch(columns, schema=batch.schema)


def _write(path: Path, fmt: str, schema: pa.Schema, batches: Iterator[pa.RecordBatch]) -> None:
    """Write the batches to `path` with DuckDB's COPY, in order, whichever database they came from:
    its CSV writer (NULL empty, empty text `""`, timestamps in UTC as `2026-11-04 12:00:00+00`,
    text cells neutralised by `neutralise_cells`) and its Parquet writer (zstd, values as they are)."""
    if fmt == "csv":
        batches = (neutralise_cells(batch) for batch in batches)
    with duckdb.connect() as writer:
        writer.execute("set TimeZone = 'UTC'")
        writer.register("export_rows", pa.RecordBatchReader.from_batches(schema, batches))
        writer.execute(f"copy (select * from export_rows) to {literal(str(path))} ({FORMATS[fmt]})")


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
            `2026-11-04 12:00:00+00`, booleans `true`/`false`; a `'` before a text that starts
            with `=`, `+`, `-`, `@`, a tab or a CR) or "parquet" (zstd; timestamps
            in UTC, text, 64-bit integers, booleans and dates typed).
        pipelines_dir: dlt's working folder, for a destination other than a DuckDB file.

    Returns:
        The files written, in table-name order; each file's rows sorted by every column.
    """
    if fmt not in FORMATS:
        raise UsageError(f"export format {fmt!r}: use csv or parquet")
    directory = Path(directory)
    written = []
    with open_models(as_target(where), pipelines_dir) as session:
        try:
            directory.mkdir(parents=True, exist_ok=True)
            for table, columns in _tables(session).items():
                path = directory / f"{table}.{fmt}"
                schema = pa.schema([pa.field(c, _arrow_type(t)) for c, t in columns])
                _write(path, fmt, schema, _batches(session, _select(session, table, columns), schema))
                written.append(path)
                logger.info("exported %s.%s to %s", ANALYTICS, table, path)
        except OSError as exc:
            raise UsageError(f"--{fmt} {directory}: cannot write there ({exc.strerror or exc})") from None
    return written
