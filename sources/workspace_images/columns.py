"""Which column each API field goes to: known fields and added columns keep theirs, new fields get one.

A field the source does not know gets a column name and a type once (a ColumnPlan
shared by the projects of a run and seeded from the pipeline's schema), so every
project and every later run writes it alike.
"""

from __future__ import annotations

import hashlib
import threading
from typing import Any, Dict, Iterable, Mapping, Optional, Sequence, Tuple

import dlt
from dlt.common.normalizers.naming import NamingConvention
from dlt.common.normalizers.naming.snake_case import NamingConvention as SnakeCaseNaming
from dlt.common.schema import Schema
from dlt.common.schema.typing import TTableSchemaColumns
from dlt.extract.exceptions import CurrentSourceSchemaNotAvailable

from .settings import KNOWN_INT_FIELDS, KNOWN_STRING_FIELDS, KNOWN_TIMESTAMP_FIELDS, ROW_HASH_COLUMN
from .values import LONE_SURROGATE, infer_type

RAW_VALUES_COLUMN = "raw_values"
"""JSON object {API field: value as sent} of the values a row could not load typed."""

PLAN_STATE_KEY = "api_columns"
"""Key of the `images` resource state that holds each new API field's column across runs."""

KNOWN_FIELDS = (*KNOWN_STRING_FIELDS, *KNOWN_INT_FIELDS, *KNOWN_TIMESTAMP_FIELDS)
ADDED_COLUMNS = ("account", "project_id", "region", "fetched_at", ROW_HASH_COLUMN, RAW_VALUES_COLUMN)
"""Columns the loader adds; an API field of the same name (or starting with `_`) is kept as `api_<name>`."""

IMAGES_COLUMNS: TTableSchemaColumns = {
    "id": {"data_type": "text", "nullable": False},
    "account": {"data_type": "text"},
    "project_id": {"data_type": "text", "nullable": False},
    "region": {"data_type": "text", "nullable": False},
    **{name: {"data_type": "bigint"} for name in KNOWN_INT_FIELDS},
    **{name: {"data_type": "timestamp", "timezone": True} for name in (*KNOWN_TIMESTAMP_FIELDS, "fetched_at")},
    RAW_VALUES_COLUMN: {"data_type": "text"},
}
"""dlt's column hints for the `images` table: the keys and the typed known fields, named by the
constants above (the other text fields get their type from the Arrow tables)."""

HASH_SUFFIX_LENGTHS = (8, 16, 32)
"""Hex digits of the raw key's hash tried, in turn, when a column name is taken."""
EMPTY_KEY_BASE = "empty"
"""Column name base of a key that normalizes to nothing (the empty key)."""


class ColumnPlan:
    """Column names and types of the API fields the source does not know, decided once and held.

    One plan serves every project of a run, from several threads at once. It starts
    from what the `images` table already has (`from_schema`) and records each new
    field's column name (`columns_for`) and type (`column_type`) the first time a
    project brings it; later projects, and later runs seeded from the schema and
    `held_names()`, write the field the same way.

    Names (see the README, `workspace_images.images`): known fields and the added
    columns keep theirs; other keys map through the schema's naming convention. A
    key that is already a clean identifier keeps its name when free; a key named like
    an added column, or starting with `_`, becomes `api_<name>`; a key whose name is
    taken (by a known or added column, a `_dlt` column, or another key) gets
    `<name>_h<first 8 hex digits of blake2b(raw key)>` (16, then 32 digits if that is
    taken too); the empty key is `empty_h<...>`. When keys compete for a name in one
    project, clean keys win, then `api_` keys, then the rest, each in key order.
    """

    def __init__(
        self,
        naming: Optional[NamingConvention] = None,
        types: Optional[Mapping[str, str]] = None,
        names: Optional[Mapping[str, str]] = None,
        max_columns: Optional[int] = None,
    ) -> None:
        """
        Args:
            naming: The schema's naming convention; the current source schema's inside
                a dlt resource, else dlt's default snake_case.
            types: dlt data type of each column already in the table.
            names: Column of each API key, as an earlier run decided (`held_names()`).
            max_columns: Columns new keys may have in all, those already held included; a
                new key past them gets none (`columns_for` leaves it out). None: no bound.
        """
        self.max_columns = max_columns
        self.naming = naming or _current_naming()
        self._lock = threading.Lock()
        self._reserved = {self.naming.normalize_identifier(n) for n in (*KNOWN_FIELDS, *ADDED_COLUMNS)}
        self._dlt_prefix = self.naming.normalize_identifier("_dlt")
        self._types: Dict[str, str] = {
            column: data_type for column, data_type in (types or {}).items() if not self._is_reserved(column)
        }
        self._names: Dict[str, str] = {}
        self._owners: Dict[str, str] = {}
        for key, column in (names or {}).items():
            valid = self.naming.normalize_identifier(column) == column and not self._is_reserved(column)
            if valid and key not in KNOWN_FIELDS and column not in self._owners:
                self._hold(key, column)

    @classmethod
    def from_schema(
        cls,
        schema: Schema,
        names: Optional[Mapping[str, str]] = None,
        table_name: str = "images",
        max_columns: Optional[int] = None,
    ) -> "ColumnPlan":
        """A plan holding the types of the columns `table_name` has in `schema` (none on a first run)."""
        table = schema.tables.get(schema.naming.normalize_table_identifier(table_name)) or {}
        types = {
            name: data_type
            for name, column in (table.get("columns") or {}).items()
            if (data_type := column.get("data_type"))
        }
        return cls(schema.naming, types, names, max_columns)

    def held_names(self) -> Dict[str, str]:
        """Column of every new key seen so far, for the next run; keys with lone surrogates are
        left out (dlt's state cannot store them) and are named afresh, alike, next time."""
        with self._lock:
            return {k: c for k, c in self._names.items() if not LONE_SURROGATE.search(k)}

    def types(self) -> Dict[str, str]:
        """dlt data type of each new field's column decided or held so far."""
        with self._lock:
            return dict(self._types)

    def columns_for(self, keys: Iterable[str]) -> Dict[str, str]:
        """The column of each API key that is not a known field, deciding those not seen yet.

        Keys seen for the first time get columns while fewer than `max_columns` are held, in
        the order given (first come, first served); a key past them gets none and is left out
        of the result: its values go to `raw_values` only.
        """
        wanted = list(dict.fromkeys(keys))
        with self._lock:
            new = [k for k in wanted if k not in self._names]
            if self.max_columns is not None:
                room = self.max_columns - len(self._owners.keys() | self._types.keys())
                new = new[: max(room, 0)]  # only these are named: the rest cost nothing more
            for key in sorted(new, key=self._precedence):
                self._hold(key, self._free_name(key))
            return {key: self._names[key] for key in wanted if key in self._names}

    def column_type(self, column: str, values: Sequence[Any]) -> Optional[str]:
        """The held type of `column`, or the one `values` (its first non-null values) decide.

        Returns None while no project brought a non-null value: the column waits.
        """
        with self._lock:
            held = self._types.get(column)
        if held is not None:
            return held
        inferred = infer_type(values)
        if inferred is None:
            return None
        with self._lock:
            return self._types.setdefault(column, inferred)

    def _hold(self, key: str, column: str) -> None:
        self._names[key] = column
        self._owners[column] = key

    def _is_reserved(self, column: str) -> bool:
        return column in self._reserved or column.startswith(self._dlt_prefix)

    @staticmethod
    def _shadows(key: str) -> bool:
        return key in ADDED_COLUMNS or key.startswith("_")

    def _base(self, key: str) -> str:
        if self._shadows(key):
            return self._normalize(f"api_{key.lstrip('_')}")
        base = self._normalize(key)
        return self._normalize(f"api{base}") if base.startswith(self._dlt_prefix) else base

    def _normalize(self, name: str) -> str:
        try:
            return self.naming.normalize_identifier(LONE_SURROGATE.sub("_", name))
        except ValueError:  # nothing to normalize: the empty key
            return EMPTY_KEY_BASE

    def _precedence(self, key: str) -> Tuple[int, str]:
        if self._shadows(key):
            return 1, key
        return (0 if self._base(key) == key else 2), key

    def _free_name(self, key: str) -> str:
        base = self._base(key)
        candidates = [] if key == "" else [base]
        digest = hashlib.blake2b(key.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()
        candidates += [self._normalize(f"{base}_h{digest[:n]}") for n in HASH_SUFFIX_LENGTHS]
        for candidate in candidates:
            if not self._is_reserved(candidate) and candidate not in self._owners:
                return candidate
        number = 2
        while f"{candidates[-1]}_{number}" in self._owners:
            number += 1
        return f"{candidates[-1]}_{number}"


def _current_naming() -> NamingConvention:
    """The naming convention of the schema being extracted, else dlt's default (snake_case)."""
    try:
        return dlt.current.source_schema().naming
    except CurrentSourceSchemaNotAvailable:
        return SnakeCaseNaming()
