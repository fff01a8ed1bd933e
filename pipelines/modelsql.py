"""A model's SQL as a database runs it: its raw tables, its column lists and its dialect, through sqlglot.

The models are portable SQL, read in DuckDB's dialect. For a build, each is parsed once into
sqlglot's tree and changed there, never as text:

- a table of the declared source (`raw.images`) is pointed at the dataset the run reads;
- the two column-list macros are written out from the columns the tables have (new API
  fields included):
  `star(schema.table, relation_alias => t, except => [a, b])` is one select item per column
  of the table but a and b, in table order, each as `t.column` when an alias is given (as
  dbt_utils.star); `changed_columns(schema.table, w, except => [a, b])` is the names of the
  other columns whose value differs from the row before in window `w`, by name,
  comma-separated, NULL when none does:
  `nullif(concat_ws(', ', case when c is distinct from lag(c) over w then 'c' end, ...), '')`;
- the tree is written in the target's dialect by sqlglot's own mapping (`::` casts,
  `generate_series`, NULL ordering in windows).

What no dialect mapping can carry (the OS macros' regular expressions) is written per dialect
in sql/macros/.
"""

from __future__ import annotations

import functools
from typing import FrozenSet, List, Mapping, Tuple

import sqlglot
from sqlglot import exp

SOURCE_DIALECT = "duckdb"
"""The dialect the models are read in."""
QUOTED = ("duckdb", "postgres", "redshift")
"""Dialects where a column a macro writes out is quoted (a new API field may be named like a
keyword); they fold unquoted names to lower case, as dlt writes them (Snowflake folds to upper)."""

Columns = Mapping[Tuple[str, str], List[str]]
"""(schema as the SQL names it, table) -> the table's columns, in table order."""


class ModelSQLError(ValueError):
    """A model's SQL names what is not there: an undeclared source table, an unknown column, a bad macro."""


def dialect_of(destination: str) -> str:
    """sqlglot's dialect for a dlt destination type (`postgres`, `bigquery`, `motherduck`...)."""
    return {"motherduck": "duckdb", "redshift": "redshift", "mssql": "tsql", "synapse": "tsql",
            "sqlalchemy": "postgres"}.get(destination, destination)


@functools.lru_cache(maxsize=128)
def parse(sql: str) -> exp.Expr:
    """sqlglot's tree of `sql`, parsed once per text (every build of a process reads the same
    models); copy it before changing it. Raises sqlglot's ParseError."""
    return sqlglot.parse_one(sql, read=SOURCE_DIALECT)


def tables_read(sql: str, schema: str) -> FrozenSet[str]:
    """The tables of `schema` that `sql` reads, a macro's table included; a name in a comment or
    a string is none, nor is a function (`analytics.os_family(...)`)."""
    tree = parse(sql)
    tables = {t.name.lower() for t in tree.find_all(exp.Table) if t.db.lower() == schema}
    for call in _macro_calls(tree):
        where, table = _relation(call)
        if where == schema:
            tables.add(table)
    return frozenset(tables)


def render(sql: str, dialect: str, columns: Columns, source: str, source_tables: FrozenSet[str],
           dataset: str) -> str:
    """`sql` as `dialect` runs it: the tables of schema `source` read from `dataset`, the macros
    written out from `columns`."""
    tree = parse(sql).copy()
    quoted = dialect in QUOTED
    for call in _macro_calls(tree):
        where, name = _relation(call)
        found = columns.get((where, name))
        if not found:
            raise ModelSQLError(f"{call.name}: no table {where}.{name}")
        excluded = _excluded(call, found)
        if call.name.lower() == "star":
            _splice(call, _star([c for c in found if c.lower() not in excluded], call, quoted))
        else:
            call.replace(_changed_columns([c for c in found if c.lower() not in excluded], call, quoted))
    for table in tree.find_all(exp.Table):
        if table.db.lower() == source:
            if table.name.lower() not in source_tables:
                raise ModelSQLError(f"{source}.{table.name} is not a table of the source (sql/sources.toml)")
            table.set("db", exp.to_identifier(dataset))
    return tree.sql(dialect=dialect, pretty=True)


MACROS = ("star", "changed_columns")


def _macro_calls(tree: exp.Expr) -> List[exp.Anonymous]:
    return [call for call in tree.find_all(exp.Anonymous) if call.name.lower() in MACROS]


def _relation(call: exp.Anonymous) -> Tuple[str, str]:
    """The `schema.table` a macro call names first."""
    first = call.expressions[0] if call.expressions else None
    if not isinstance(first, exp.Column) or not first.table:
        raise ModelSQLError(f"{call.name}(...) takes schema.table first: {call.sql(SOURCE_DIALECT)[:80]}")
    return first.table.lower(), first.name.lower()


def _argument(call: exp.Anonymous, name: str) -> exp.Expression | None:
    for arg in call.expressions:
        if isinstance(arg, exp.Kwarg) and arg.this.name.lower() == name:
            return arg.expression
    return None


def _excluded(call: exp.Anonymous, found: List[str]) -> FrozenSet[str]:
    listed = _argument(call, "except")
    names = frozenset(e.name.lower() for e in listed.expressions) if isinstance(listed, exp.Array) else frozenset()
    unknown = sorted(names - {c.lower() for c in found})
    if unknown:
        raise ModelSQLError(f"{call.name}: {'.'.join(_relation(call))} has no column {', '.join(unknown)}")
    return names


def _star(names: List[str], call: exp.Anonymous, quoted: bool) -> List[exp.Expression]:
    alias = _argument(call, "relation_alias")
    table = alias.name if alias is not None else None
    return [exp.column(name, table=table, quoted=quoted) for name in names]


def _splice(call: exp.Anonymous, items: List[exp.Expression]) -> None:
    """Put `items` where the select item `call` is."""
    select = call.parent
    if not isinstance(select, exp.Select) or call not in select.expressions:
        raise ModelSQLError(f"star(...) is a select item of its own: {call.sql(SOURCE_DIALECT)[:80]}")
    at = select.expressions.index(call)
    select.set("expressions", select.expressions[:at] + items + select.expressions[at + 1:])


def _changed_columns(names: List[str], call: exp.Anonymous, quoted: bool) -> exp.Expression:
    window = call.expressions[1] if len(call.expressions) > 1 else None
    if not isinstance(window, exp.Column) or window.table:
        raise ModelSQLError(f"changed_columns(...) takes a window's name second: {call.sql(SOURCE_DIALECT)[:80]}")
    cases = [
        exp.Case(ifs=[exp.If(
            this=exp.NullSafeNEQ(this=exp.column(name, quoted=quoted), expression=exp.Window(
                this=exp.Lag(this=exp.column(name, quoted=quoted)), alias=exp.to_identifier(window.name), over="OVER")),
            true=exp.Literal.string(name),
        )])
        for name in sorted(names)
    ]
    # as written: sqlglot's own ConcatWs would add a NULL check DuckDB's concat_ws does not make
    joined = exp.Anonymous(this="concat_ws", expressions=[exp.Literal.string(", "), *cases])
    return exp.Nullif(this=joined, expression=exp.Literal.string(""))

