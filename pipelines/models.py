"""Build the SQL models of sql/ in one transaction and run their data tests."""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from .model_files import (
    ANALYTICS,
    RAW_DATASET,
    SQL_DIR,
    Model,
    Source,
    descriptions,
    load_models,
    load_source,
    macro_scripts,
    read_model,
)
from .modelsql import Columns, ModelSQLError, render
from .warehouse import Session, Target, connect, literal


logger = logging.getLogger("workspace_images")

RAW_TABLES = ("images", "project_runs")
SAMPLE_ROWS = 5
__all__ = [  # what callers import from here, sql/'s reading (model_files) included
    "ANALYTICS", "RAW_DATASET", "SQL_DIR", "DataTestFailed", "Model", "ModelsMissing", "ModelsOfAnotherDataset",
    "ModelsResult", "ModelsUnavailable", "build_models", "built_from_another_dataset", "check_dataset", "describe",
    "descriptions", "load_models", "macro_scripts", "staging_select",
]


class ModelsUnavailable(Exception):
    """The database has no loaded data to build models from (exit 2)."""


class ModelsOfAnotherDataset(Exception):
    """`analytics` holds the models of another dataset, which a build would replace (exit 2)."""


class ModelsMissing(Exception):
    """No model was found where the models should be: the installation is incomplete (exit 3)."""


class DataTestFailed(Exception):
    """A model's data test found offending rows; nothing was committed (exit 3)."""

    def __init__(self, model: str, test: str, columns: List[str], rows: List[tuple], total: int) -> None:
        self.model, self.test, self.columns, self.rows, self.total = model, test, columns, rows, total
        sample = "; ".join(", ".join(f"{c}={v!r}" for c, v in zip(columns, row)) for row in rows)
        super().__init__(f"data test failed: {model}: {test}: {total} offending row(s), e.g. {sample}")


@dataclass
class ModelsResult:
    """What a build did: seconds per model, tests run."""

    seconds: Dict[str, float] = field(default_factory=dict)
    rows: Dict[str, int] = field(default_factory=dict)
    tests: int = 0
    total_seconds: float = 0.0

    def summary(self) -> str:
        return (
            f"models: {len(self.seconds)} built ({', '.join(f'{n} {self.rows[n]:,} rows' for n in self.seconds)}), "
            f"{self.tests} data tests passed, {self.total_seconds:.1f}s"
        )


def check_dataset(name: str) -> str:
    """A dataset name fit to stand in SQL: lower-case letters, digits and `_`."""
    if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", name or ""):
        raise ValueError(f"dataset {name!r}: expected lower-case letters, digits and '_'")
    return name


def build_models(
    target: "Target | Path | str", sql_dir: Path = SQL_DIR, run_tests: bool = True, raw_dataset: str = RAW_DATASET,
    session: Optional[Session] = None, replace: bool = False,
) -> ModelsResult:
    """Rebuild every model in one transaction, then run the data tests before committing.

    `target` is a DuckDB file or a Target (any dlt destination); the models are portable SQL,
    written in the target's dialect by `modelsql.render`. A dashboard reading the
    database sees either the previous tables or the new ones, never a mix; when a data
    test fails, the previous tables stay. A database has one `analytics` schema: models
    built from another dataset than `raw_dataset` are replaced only with `replace`.

    Raises:
        ModelsUnavailable: nothing has been loaded there yet.
        ModelsOfAnotherDataset: `analytics` holds another dataset's models, and not `replace`.
        DataTestFailed: a test found offending rows (the build is rolled back).
    """
    if not isinstance(target, Target):
        target = Target(db_path=Path(target))
    models = load_models(sql_dir)
    if not models:
        raise ModelsMissing(f"no SQL models in {sql_dir}: this installation of workspace-images is incomplete")
    if target.file_missing:
        raise ModelsUnavailable(f"{target.db_path} does not exist: load it first with `workspace-images run`")
    if session is not None:
        return _build(session, target, models, sql_dir, run_tests, check_dataset(raw_dataset), replace)
    with connect(target) as opened:
        return _build(opened, target, models, sql_dir, run_tests, check_dataset(raw_dataset), replace)


def _build(session: Session, target: Target, models: List[Model], sql_dir: Path, run_tests: bool,
           raw_dataset: str, replace: bool) -> ModelsResult:
    started = time.monotonic()
    result = ModelsResult()
    if not all(session.table_exists(raw_dataset, name) for name in RAW_TABLES):
        raise ModelsUnavailable(f"{target.label} has no loaded images in dataset {raw_dataset} yet: "
                                "load it first with `workspace-images run`")
    other = built_from_another_dataset(session, raw_dataset)
    if other is not None and not replace:
        raise ModelsOfAnotherDataset(
            f"{ANALYTICS} in {target.label} holds the models of {other}; building them from dataset {raw_dataset} "
            f"would replace them (a database has one {ANALYTICS} schema): replace them with "
            f"`workspace-images models --dataset {raw_dataset} --replace`, or load {raw_dataset} into another database"
        )
    dialect = session.dialect
    source = load_source(sql_dir)

    def rendered(sql: str, columns: Columns, where: str) -> str:
        try:
            return render(sql, dialect, columns, source.name, source.table_names, raw_dataset)
        except ModelSQLError as exc:
            raise ModelSQLError(f"{where}: {exc}") from None

    with session.transaction():
        session.execute(f"create schema if not exists {ANALYTICS}")
        for script in macro_scripts(sql_dir, dialect):
            session.execute(script)
        for model in models:
            began = time.monotonic()
            columns = _columns(session, source, raw_dataset)
            sql = rendered(model.sql, columns, f"model {model.name}")
            _materialise(session, model.name, sql, columns.get((ANALYTICS, model.name)))
            result.rows[model.name] = session.value(f"select count(*) from {ANALYTICS}.{model.name}")
            result.seconds[model.name] = time.monotonic() - began
            logger.info("model %s: %s rows, %.2fs", model.name, f"{result.rows[model.name]:,}", result.seconds[model.name])
        if dialect in DESCRIBED:
            describe(session, sql_dir, raw_dataset)
        if run_tests:
            columns = _columns(session, source, raw_dataset)
            for model in models:
                for test, query in model.tests:
                    sql = rendered(query, columns, f"model {model.name}, data test {test}")
                    _run_test(session, model.name, test, sql)
                    result.tests += 1
    result.total_seconds = time.monotonic() - started
    return result


def staging_select(name: str, dialect: str, raw_dataset: str = RAW_DATASET, sql_dir: Path = SQL_DIR) -> str:
    """The `select` of staging model `name` as `dialect` runs it against `raw_dataset`, for code that
    reads the raw tables before the models are built and must read them by the models' rules
    (`stg_project_runs`: the run log of finished loads). The model must read only the raw
    source, with no column macro."""
    source = load_source(sql_dir)
    return render(read_model(name, sql_dir).sql, dialect, {}, source.name, source.table_names, raw_dataset)


def built_from_another_dataset(session: Session, raw_dataset: str) -> Optional[str]:
    """Which dataset the models in `analytics` were built from, when it is not `raw_dataset`;
    None when it is, or when there are none.

    Told by the run log, not by a record of its own: every run in `stg_project_runs` is in the
    `project_runs` of the dataset the models were built from (a finished load's rows are never
    deleted), and runs of two datasets never share an id.
    """
    if not session.table_exists(ANALYTICS, "stg_project_runs"):
        return None
    stray = session.fetch(f"select run_id from {ANALYTICS}.stg_project_runs except "
                          f"select run_id from {raw_dataset}.project_runs limit 1")[1]
    if not stray:
        return None
    run_id = literal(stray[0][0])
    for (schema,) in session.fetch(
        "select table_schema from information_schema.tables where table_name = 'project_runs' "
        f"and table_schema not in ({literal(raw_dataset)}, {literal(ANALYTICS)}) order by table_schema"
    )[1]:
        if session.value(f"select count(*) from {schema}.project_runs where run_id = {run_id}"):
            return f"dataset {schema}"
    return "a dataset that is no longer in this database"


def _materialise(session: Session, name: str, sql: str, existing: Optional[List[str]]) -> None:
    """Make analytics.<name> hold the rows of `sql`. DuckDB replaces the table. Elsewhere a table
    whose columns stay the same is emptied and refilled, so users' views on it stay (PostgreSQL
    will not drop a table a view depends on); one whose columns changed is dropped and made anew."""
    table = f"{ANALYTICS}.{name}"
    if session.dialect == "duckdb":
        session.execute(f"create or replace table {table} as\n{sql}")
        return
    if existing is not None:
        columns, _ = session.fetch(f"select * from (\n{sql}\n) as model limit 0")
        if columns == existing:
            session.execute(f"delete from {table}")
            session.execute(f"insert into {table}\nselect * from (\n{sql}\n) as model")
            return
    session.execute(f"drop table if exists {table}")
    session.execute(f"create table {table} as\n{sql}")


def _columns(session: Session, source: Source, raw_dataset: str) -> Columns:
    """The columns of the raw tables (under the source's name) and of the models built so far."""
    columns: Dict[Tuple[str, str], List[str]] = {}
    for schema, named in ((raw_dataset, source.name), (ANALYTICS, ANALYTICS)):
        for table, column, _ in session.columns(schema):
            columns.setdefault((named, table), []).append(column)
    return columns


DESCRIBED = ("duckdb", "postgres")
"""Dialects whose `COMMENT ON` the descriptions are stored with (BigQuery has none)."""


def describe(session: Session, sql_dir: Path = SQL_DIR, raw_dataset: str = RAW_DATASET) -> int:
    """Store the descriptions of sql/ (`model_files.descriptions`: each model's file, sources.toml,
    columns.toml) as COMMENT ON for the raw tables and the models that exist, every column
    included (one no file names gets `api_field`).

    Returns:
        How many comments were written.
    """
    entries = descriptions(sql_dir)
    common = entries.get("common", {})
    found: Dict[Tuple[str, str], List[str]] = {}
    for schema in {raw_dataset, ANALYTICS}:
        for table, column, _ in session.columns(schema):
            found.setdefault((schema, table), []).append(column)
    written = 0
    for qualified, own in entries.items():
        if qualified == "common":
            continue
        schema, table = qualified.split(".")
        schema = raw_dataset if schema == RAW_DATASET else schema
        columns = found.get((schema, table))
        if not columns:
            continue
        session.execute(f"comment on table {schema}.{table} is {literal(own['table'])}")
        written += 1
        for column in columns:
            description = own.get(column) or common.get(column) or common.get("api_field")
            if description is None:
                continue
            session.execute(f'comment on column {schema}.{table}."{column.replace(chr(34), chr(34) * 2)}" '
                            f"is {literal(description)}")
            written += 1
    return written


def _run_test(session: Session, model: str, test: str, query: str) -> None:
    total = session.value(f"select count(*) from ({query}) as offending")
    if total:
        columns, rows = session.fetch(f"select * from ({query}) as offending limit {SAMPLE_ROWS}")
        raise DataTestFailed(model, test, columns, rows, total)
