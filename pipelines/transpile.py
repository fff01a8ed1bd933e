"""Turn the models' DuckDB SQL into another database's dialect, against the columns its tables have.

The models are written once, in DuckDB's dialect, and run on DuckDB as written. For
another database they go through sqlglot, after three steps sqlglot does not take:

- DuckDB's column sets are expanded with the columns the tables really have (new API
  fields included): `* exclude (...)`, `COLUMNS(* exclude (...))` in a projection
  (one column per match, named after it) and in an `UNPIVOT ... IN (...)` list;
- `UNPIVOT` becomes a lateral `VALUES` join, which PostgreSQL has and UNPIVOT it has not;
- DuckDB's regular expression functions become PostgreSQL's (`~*` for a
  case-insensitive match, `regexp_match(...)[n]` for an extract, `\\y` for a word
  boundary), since sqlglot drops their flags or leaves them as they are.

Macros (`create macro`) become SQL functions of text. Each dialect other than
PostgreSQL gets sqlglot's translation alone, untested.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from typing import Dict, Iterator, List, Optional

import sqlglot
from sqlglot import exp
from sqlglot.optimizer.qualify import qualify

Schema = Dict[str, Dict[str, Dict[str, str]]]
"""schema -> table -> column -> type, as sqlglot's optimizer takes it."""

SOURCE_DIALECT = "duckdb"


class TranspileError(Exception):
    """A model uses a DuckDB construct this module cannot carry into the target dialect."""


def dialect_of(destination: str) -> str:
    """sqlglot's dialect for a dlt destination type (`postgres`, `bigquery`, `motherduck`...)."""
    return {"motherduck": "duckdb", "redshift": "redshift", "mssql": "tsql", "synapse": "tsql",
            "sqlalchemy": "postgres"}.get(destination, destination)


def transpile_model(sql: str, dialect: str, schema: Schema) -> str:
    """The `select` of a model in `dialect`, its column sets expanded from `schema`."""
    if dialect == SOURCE_DIALECT:
        return sql
    tree = sqlglot.parse_one(sql, read=SOURCE_DIALECT)
    _expand_column_sets(tree, schema)
    _rewrite_unpivots(tree)
    # quoted, a column named like a keyword stays a column; PostgreSQL folds unquoted names to
    # lower case as dlt writes them, so quoting changes nothing else there (Snowflake folds to upper)
    tree = qualify(tree, schema=schema, dialect=SOURCE_DIALECT, quote_identifiers=dialect in ("postgres", "redshift"),
                   validate_qualify_columns=False)
    _rewrite_functions(tree, dialect)
    with _quiet():
        return tree.sql(dialect=dialect, pretty=True)


def transpile_macros(script: str, dialect: str) -> List[str]:
    """The statements of a macro script in `dialect`: DuckDB's `create macro` as written, or, for
    another database, each macro as a SQL function that takes and returns text."""
    if dialect == SOURCE_DIALECT:
        return [script]
    statements = []
    for statement in sqlglot.parse(script, read=SOURCE_DIALECT):
        if statement is None:
            continue
        if not (isinstance(statement, exp.Create) and str(statement.args.get("kind", "")).upper() == "MACRO"):
            raise TranspileError(f"a macro script holds something else than `create macro`: {statement.sql()[:60]}")
        function = statement.this
        name = function.this.sql(dialect=dialect)
        params = [p.name for p in function.expressions]
        body = statement.expression.copy()
        _rewrite_functions(body, dialect)
        if dialect in ("postgres", "redshift"):
            statements.append(
                f"create or replace function {name}({', '.join(f'{p} text' for p in params)}) returns text "
                f"language sql immutable as $$ select {_sql(body, dialect)} $$"
            )
        else:
            statements.append(sqlglot.transpile(statement.sql(SOURCE_DIALECT), read=SOURCE_DIALECT,
                                                write=dialect)[0])
    return statements


@contextmanager
def _quiet() -> Iterator[None]:
    """sqlglot logs at INFO each array index it shifts between dialects: not news to our users."""
    log = logging.getLogger("sqlglot")
    level = log.level
    log.setLevel(max(level, logging.WARNING))
    try:
        yield
    finally:
        log.setLevel(level)


def _sql(tree: exp.Expression, dialect: str) -> str:
    with _quiet():
        return tree.sql(dialect=dialect)


def _source_columns(root: exp.Expression, source: exp.Expression, schema: Schema,
                    within: exp.Expression) -> List[str]:
    """The column names `source` (a table, CTE or subquery in the select `within`) gives, in order;
    the CTEs of `root` that come before the one holding `within` are known to it."""
    probe = exp.select("*").from_(source.copy())
    with_ = root.args.get("with_")
    if with_ is not None:
        holder = within.find_ancestor(exp.CTE)
        while holder is not None and holder.parent is not with_:
            holder = holder.find_ancestor(exp.CTE)
        ctes = with_.expressions
        earlier = ctes[: ctes.index(holder)] if holder is not None else ctes
        if earlier:
            probe.set("with_", exp.With(expressions=[cte.copy() for cte in earlier]))
    for pivot in probe.find_all(exp.Pivot):
        pivot.pop()
    qualified = qualify(probe, schema=schema, dialect=SOURCE_DIALECT, quote_identifiers=False,
                        validate_qualify_columns=False)
    names = qualified.named_selects
    if not names or "*" in names:
        raise TranspileError(f"cannot tell the columns of {source.sql(SOURCE_DIALECT)[:80]}")
    return names


def _matching(columns_node: exp.Columns, names: List[str]) -> List[str]:
    star = columns_node.this
    if not isinstance(star, exp.Star):
        raise TranspileError(f"only COLUMNS(* exclude (...)) is supported, not {columns_node.sql(SOURCE_DIALECT)}")
    excluded = {e.name.lower() for e in (star.args.get("except_") or star.args.get("except") or [])}
    return [n for n in names if n.lower() not in excluded]


def _from_of(select: exp.Select) -> Optional[exp.From]:
    """The FROM clause of `select` (`from_` in sqlglot's tree since 30, `from` before)."""
    return select.args.get("from_") or select.args.get("from")


def _joined(select: exp.Select, name: str) -> exp.Expression:
    """The table, CTE or subquery of `select`'s FROM or joins known as `name`, without its alias."""
    sources = [_from_of(select)] + list(select.args.get("joins") or [])
    for source in sources:
        if source is not None and source.this.alias_or_name == name:
            found = source.this.copy()
            found.set("alias", None)
            return found
    raise TranspileError(f"no table {name} in {select.sql(SOURCE_DIALECT)[:80]}")


def _expand_column_sets(tree: exp.Expression, schema: Schema) -> None:
    """Expand COLUMNS(...) in projections and UNPIVOT lists, one select at a time, in order."""
    for select in list(tree.find_all(exp.Select, bfs=False)):
        projections = []
        for projection in select.expressions:
            if isinstance(projection, exp.Column) and isinstance(projection.this, exp.Star) and projection.table:
                # `t.* exclude (...)`, which sqlglot's qualify leaves as it is
                source = _joined(select, projection.table)
                names = _matching(exp.Columns(this=projection.this), _source_columns(tree, source, schema, select))
                projections.extend(exp.column(n, table=projection.table) for n in names)
                continue
            nodes = list(projection.find_all(exp.Columns))
            if not nodes:
                projections.append(projection)
                continue
            source = _from_of(select).this
            if select.args.get("joins"):
                raise TranspileError("COLUMNS(...) over a join is not supported")
            names = _matching(nodes[0], _source_columns(tree, source, schema, select))
            for name in names:
                copy = projection.copy()
                for node in list(copy.find_all(exp.Columns)):
                    node.replace(exp.column(name))
                copy = copy.unalias() if isinstance(copy, exp.Alias) else copy
                projections.append(exp.alias_(copy, name))
        select.set("expressions", projections)
    for pivot in list(tree.find_all(exp.Pivot)):
        for field in pivot.args.get("fields") or []:
            listed = []
            for item in field.expressions:
                if isinstance(item, exp.Columns):
                    source = pivot.parent.copy()
                    source.set("pivots", None)
                    listed.extend(exp.column(n) for n in _matching(item, _source_columns(tree, source, schema, pivot)))
                else:
                    listed.append(item)
            field.set("expressions", listed)


def _rewrite_unpivots(tree: exp.Expression) -> None:
    """`FROM src UNPIVOT (v FOR n IN (a, b))` -> `FROM src AS _src CROSS JOIN LATERAL (VALUES
    ('a', _src.a), ('b', _src.b)) AS _unpivot(n, v) ... WHERE v IS NOT NULL` (DuckDB leaves out NULLs)."""
    for pivot in list(tree.find_all(exp.Pivot)):
        if not pivot.args.get("unpivot"):
            raise TranspileError("PIVOT is not supported")
        fields = pivot.args.get("fields") or []
        if len(fields) != 1 or len(pivot.expressions) != 1:
            raise TranspileError("UNPIVOT of one value column over one name column only")
        value = pivot.expressions[0].name
        name = fields[0].this.name
        source = pivot.parent
        select = source.find_ancestor(exp.Select)
        alias = "_unpivot_source"
        pivot.pop()
        source.set("alias", exp.TableAlias(this=exp.to_identifier(alias)))
        rows = ", ".join(f"({exp.Literal.string(c.name).sql(SOURCE_DIALECT)}, "
                         f"{alias}.{exp.to_identifier(c.name).sql(SOURCE_DIALECT)})"
                         for c in fields[0].expressions)
        join = sqlglot.parse_one(
            f"select * from {alias} cross join lateral (values {rows}) as _unpivot({name}, {value})",
            read=SOURCE_DIALECT,
        ).args["joins"][0]
        select.append("joins", join)
        select.where(exp.column(value, table="_unpivot").is_(exp.null()).not_(), copy=False)


def _pattern(node: Optional[exp.Expression], dialect: str) -> Optional[exp.Expression]:
    """A regular expression literal in `dialect`'s syntax: RE2's `\\b` is PostgreSQL's `\\y`."""
    if dialect in ("postgres", "redshift") and isinstance(node, exp.Literal) and node.is_string:
        return exp.Literal.string(node.this.replace("\\b", "\\y"))
    return node


def _rewrite_functions(tree: exp.Expression, dialect: str) -> None:
    if dialect not in ("postgres", "redshift"):
        return
    for node in list(tree.find_all(exp.RegexpLike)):
        flag = node.args.get("flag")
        flags = flag.this if isinstance(flag, exp.Literal) else ""
        if set(flags) - {"i", "c"}:
            raise TranspileError(f"regexp_matches flags {flags!r} are not supported")
        kind = exp.RegexpILike if "i" in flags else exp.RegexpLike
        node.replace(kind(this=node.this, expression=_pattern(node.expression, dialect)))
    for node in list(tree.find_all(exp.RegexpReplace)):
        node.set("expression", _pattern(node.expression, dialect))
    for node in list(tree.find_all(exp.RegexpExtract)):
        group = node.args.get("group")
        flags = node.args.get("parameters")
        args = [node.this, _pattern(node.expression, dialect)]
        if flags is not None:
            args.append(flags)
        index = int(group.this) if group is not None else 0
        if index == 0:
            raise TranspileError("regexp_extract of the whole match: give a group")
        # DuckDB gives '' when nothing matches, PostgreSQL NULL; the index is 0-based in sqlglot's tree
        match = exp.Paren(this=exp.Anonymous(this="regexp_match", expressions=args))
        node.replace(exp.func("coalesce", exp.Bracket(this=match, expressions=[exp.Literal.number(index - 1)]),
                              exp.Literal.string("")))
