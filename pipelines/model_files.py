"""Read sql/: the models with their descriptions and data tests, the raw source, the OS macros.

The layout is dbt's: `staging/` models read the raw source, `marts/` models read the staging
ones. Each model is `<name>.sql` (one `select`, built as analytics.<name>) with `<name>.toml`
beside it: its `description`, its `[columns]` and its `[[tests]]` (a `name` and the `sql` of
the offending rows). `sources.toml` declares the raw dataset as the models name it (`raw`) and
describes its tables; `columns.toml` describes the columns several tables share; `macros/`
holds the OS macros, `<name>.sql` in DuckDB's dialect and `<name>.<dialect>.sql` for another.
"""

from __future__ import annotations

import importlib.resources
import tomllib
from dataclasses import dataclass, field
from graphlib import CycleError, TopologicalSorter
from pathlib import Path
from typing import Any, Dict, FrozenSet, List, Optional, Tuple

import sqlglot

from .modelsql import SOURCE_DIALECT, tables_read

SQL_DIR = Path(str(importlib.resources.files("workspace_images.sql")))
"""The models: the package `workspace_images.sql` (the repository's `sql/`)."""
ANALYTICS = "analytics"
RAW_DATASET = "workspace_images"
"""The dataset the raw tables are loaded into unless another is given; it names them in `descriptions`."""
MACROS = "macros"
SOURCES = "sources.toml"
COLUMNS = "columns.toml"


@dataclass
class Model:
    """One model: a `select` in sql/<layer>/<name>.sql, materialised as analytics.<name>."""

    name: str
    sql: str
    tests: List[Tuple[str, str]] = field(default_factory=list)
    description: Optional[str] = None
    columns: Dict[str, str] = field(default_factory=dict)

    @property
    def depends_on(self) -> List[str]:
        """The tables of schema `analytics` that the model's SQL reads, itself left out.

        Read from sqlglot's tree of the SQL, so a name in a comment or a string literal is no
        dependency, nor is a macro (`analytics.os_family(...)` is a function).
        """
        try:
            tables = tables_read(self.sql, ANALYTICS)
        except sqlglot.errors.ParseError as exc:
            where = exc.errors[0] if exc.errors else {}
            raise ValueError(f"model {self.name}: its SQL cannot be read: {where.get('description', exc)} "
                             f"(line {where.get('line')}, column {where.get('col')})") from None
        return sorted(tables - {self.name})


@dataclass(frozen=True)
class Source:
    """The raw dataset as the models name it (`name`), and its tables with their descriptions."""

    name: str = "raw"
    tables: Dict[str, Dict[str, Any]] = field(default_factory=dict)

    @property
    def table_names(self) -> FrozenSet[str]:
        return frozenset(self.tables)


def _toml(path: Path) -> Dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{path.name}: {exc}") from None


def load_source(sql_dir: Path = SQL_DIR) -> Source:
    """The raw source of sources.toml (none declared when there is no such file)."""
    path = sql_dir / SOURCES
    if not path.exists():
        return Source()
    entries = _toml(path)
    return Source(entries.get("name", "raw"), {name.lower(): own for name, own in entries.get("tables", {}).items()})


def _model(path: Path) -> Model:
    meta_path = path.with_suffix(".toml")
    meta = _toml(meta_path) if meta_path.exists() else {}
    tests = [(test["name"], test["sql"].strip().rstrip(";").strip()) for test in meta.get("tests", [])]
    sql = path.read_text(encoding="utf-8").strip().rstrip(";")
    return Model(path.stem, sql, tests, meta.get("description"), dict(meta.get("columns", {})))


def read_model(name: str, sql_dir: Path = SQL_DIR) -> Model:
    """The model `name` alone, from whichever layer holds it; ValueError when none does."""
    found = [p for p in sql_dir.rglob(f"{name}.sql") if p.relative_to(sql_dir).parts[0] != MACROS]
    if len(found) != 1:
        raise ValueError(f"no model {name} in {sql_dir}" if not found else f"two models are named {name}")
    return _model(found[0])


def load_models(sql_dir: Path = SQL_DIR) -> List[Model]:
    """Every model under `sql_dir` (each `.sql` file but those of macros/), with its description
    and tests, in dependency order."""
    models: Dict[str, Model] = {}
    for path in sorted(sql_dir.rglob("*.sql")):
        if path.relative_to(sql_dir).parts[0] == MACROS:
            continue
        if path.stem in models:
            raise ValueError(f"two models are named {path.stem}: a model's file name is its table's")
        models[path.stem] = _model(path)
    graph = {name: [d for d in model.depends_on if d in models] for name, model in models.items()}
    try:
        order = list(TopologicalSorter(graph).static_order())
    except CycleError as exc:
        raise ValueError(f"models depend on each other in a cycle: {exc.args[1]}") from None
    return [models[name] for name in order]


def macro_scripts(sql_dir: Path = SQL_DIR, dialect: str = SOURCE_DIALECT) -> List[str]:
    """The scripts of sql/macros/ for `dialect`, in file order: `<name>.<dialect>.sql` where there
    is one, else `<name>.sql` (DuckDB's) as sqlglot translates it (untested but for DuckDB and
    PostgreSQL)."""
    scripts = []
    for path in sorted((sql_dir / MACROS).glob("*.sql")):
        if path.stem.count("."):
            continue
        own = path.with_name(f"{path.stem}.{dialect}.sql")
        if own.exists() and dialect != SOURCE_DIALECT:
            scripts.append(own.read_text(encoding="utf-8"))
        elif dialect == SOURCE_DIALECT:
            scripts.append(path.read_text(encoding="utf-8"))
        else:
            scripts.extend(s.sql(dialect=dialect) for s in sqlglot.parse(path.read_text(encoding="utf-8"),
                                                                         read=SOURCE_DIALECT) if s is not None)
    return scripts


def descriptions(sql_dir: Path = SQL_DIR) -> Dict[str, Dict[str, str]]:
    """What every described table and column means: `{"schema.table": {"table": its description,
    column: its description}}`, the raw tables under RAW_DATASET, and `common`: the descriptions
    of columns.toml, `api_field` among them (for a column no file names)."""
    shared = sql_dir / COLUMNS
    entries: Dict[str, Dict[str, str]] = {"common": dict(_toml(shared)) if shared.exists() else {}}
    for table, own in load_source(sql_dir).tables.items():
        if "description" in own:
            entries[f"{RAW_DATASET}.{table}"] = {"table": own["description"], **own.get("columns", {})}
    for model in load_models(sql_dir):
        if model.description is not None:
            entries[f"{ANALYTICS}.{model.name}"] = {"table": model.description, **model.columns}
    return entries

