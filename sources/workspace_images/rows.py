"""Turn the images of one project into an Arrow table: known fields typed, new fields kept.

No record fails a project: a value that does not fit its column is loaded as NULL
there and kept, as the API sent it, in `raw_values`. Fields the source does not know
get their column from the run's ColumnPlan (`columns.py`); each row carries its
version hash (`hashing.py`).
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any, Dict, Iterable, List, Optional, Tuple

import pyarrow as pa
import pyarrow.compute as pc

from .failures import first_line
from .columns import KNOWN_FIELDS, RAW_VALUES_COLUMN, ColumnPlan
from .hashing import plain_row_hashes, row_hash
from .settings import DEFAULT_ACCOUNT, KNOWN_INT_FIELDS, KNOWN_STRING_FIELDS, KNOWN_TIMESTAMP_FIELDS, ROW_HASH_COLUMN
from .values import fit_value, json_text, parse_timestamp, replace_surrogates, to_int

logger = logging.getLogger("workspace_images")

NOT_NULL_COLUMNS = ("id", "project_id", "region", ROW_HASH_COLUMN)
TIMESTAMP_TYPE = pa.timestamp("us", tz="UTC")
ARROW_TYPES: Dict[str, pa.DataType] = {
    "bool": pa.bool_(),
    "bigint": pa.int64(),
    "double": pa.float64(),
    "text": pa.string(),
}
"""dlt data types a new field's column can have, and their Arrow types."""
MAX_EXAMPLE = 80
"""Longest example value quoted in a warning."""
SURROGATE_PROBLEM = "text with a lone surrogate"
"""What a warning says of text loaded with U+FFFD in place of its lone surrogates."""


class BadRecord(Exception):
    """The rows of a project could not be built (a record no rule here foresaw): that project fails."""


def images_table(
    images: List[Dict[str, Any]],
    project_id: str,
    region: str,
    fetched_at: datetime,
    account: str = DEFAULT_ACCOUNT,
    plan: Optional[ColumnPlan] = None,
) -> pa.Table:
    """Build the `images` rows of one project.

    Args:
        images: ImageInfo objects as the API returned them, one per image.
        project_id: The project they were read from.
        region: The project's region.
        fetched_at: When the project was read (UTC).
        account: The configured account the project belongs to (not part of the row hash).
        plan: Names and types of new fields, shared by the projects of a run; when not
            given, a plan of this project alone, seeded from nothing.

    Returns:
        One row per image: known fields typed (min_ram, min_disk integers; created_at
        a UTC timestamp), fields the source does not know in columns of their own,
        then account, project_id, region, fetched_at, the row version hash and
        `raw_values`: the JSON object of the values the row could not load as sent
        (NULL when there is none). One warning per field that had such values.

    Raises:
        BadRecord: the rows could not be built all the same; names the error.
    """
    try:
        return _build_table(images, project_id, region, fetched_at, account, plan or ColumnPlan())
    except Exception as exc:
        cause = first_line(exc, "")
        message = f"cannot build the rows of project {region}:{project_id}: {exc.__class__.__name__}"
        raise BadRecord(replace_surrogates(message + (f": {cause}" if cause else ""))) from exc


def _build_table(
    images: List[Dict[str, Any]], project_id: str, region: str, fetched_at: datetime, account: str, plan: ColumnPlan
) -> pa.Table:
    raw: List[Optional[Dict[str, Any]]] = [None] * len(images)
    unloadable: Dict[Tuple[str, str], _Unloadable] = {}

    def column(key: str, fitted: Iterable[Tuple[Any, bool]], problem: str) -> List[Any]:
        """The column values of `key`; values kept raw are recorded for `raw_values` and the warning."""
        values = []
        for row, (image, (value, kept)) in enumerate(zip(images, fitted)):
            if kept:
                sent = image.get(key)
                raw[row] = {**(raw[row] or {}), key: sent}
                why = SURROGATE_PROBLEM if value is not None else problem
                unloadable.setdefault((key, why), _Unloadable(key, why)).add(sent)
            values.append(value)
        return values

    columns: Dict[str, pa.Array] = {}
    plain: Dict[str, pa.Array] = {}  # known fields whose values are all of the usual kind, as sent (for the hash)
    for name in KNOWN_STRING_FIELDS:
        sent = [i.get(name) for i in images]
        columns[name] = _plain_strings(sent)
        if columns[name] is not None:
            plain[name] = columns[name]
        else:
            fitted = (fit_value(value, "text") for value in sent)
            columns[name] = pa.array(column(name, fitted, ""), type=pa.string())
    for name in KNOWN_INT_FIELDS:
        sent = [i.get(name) for i in images]
        columns[name] = _plain_ints(sent)
        if columns[name] is not None:
            plain[name] = columns[name]
        else:
            fitted = (_kept_if_none(value, to_int(value)) for value in sent)
            columns[name] = pa.array(column(name, fitted, "not an integer within int64"), type=pa.int64())
    for name in KNOWN_TIMESTAMP_FIELDS:
        sent = [i.get(name) for i in images]
        as_text = _plain_timestamps(sent)
        columns[name] = None if as_text is None else _cast_timestamps(as_text)
        if columns[name] is not None:
            plain[name] = as_text
        else:
            fitted = (_kept_if_none(value, parse_timestamp(value)) for value in sent)
            problem = "not a timestamp within years 1 to 9999"
            columns[name] = pa.array(column(name, fitted, problem), type=TIMESTAMP_TYPE)

    first = images[0].keys() if images else {}.keys()
    uniform = all(i.keys() == first for i in images)  # every image has the same fields, as they almost always do
    keys = [k for k in (first if uniform else dict.fromkeys(k for i in images for k in i)) if k not in KNOWN_FIELDS]
    planned = plan.columns_for(keys)
    for key, name in planned.items():
        sent = [i.get(key) for i in images]
        data_type = plan.column_type(name, sent)
        if data_type is None:
            continue  # null in every image so far: nothing to load, no type to decide yet
        arrow_type = ARROW_TYPES.get(data_type)
        if arrow_type is None:  # a type an earlier load gave the column that this loader does not write
            column(key, ((None, v is not None) for v in sent), f"not writable to its {data_type} column")
            continue
        fitted = (fit_value(v, data_type) for v in sent)
        columns[name] = pa.array(column(key, fitted, f"not a {data_type} (its column's type)"), type=arrow_type)

    unplanned = [key for key in keys if key not in planned]
    if unplanned:
        _keep_unplanned(images, unplanned, raw, plan.max_columns, project_id, region)

    count = len(images)
    columns["account"] = pa.array([account] * count, type=pa.string())
    columns["project_id"] = pa.array([project_id] * count, type=pa.string())
    columns["region"] = pa.array([region] * count, type=pa.string())
    columns["fetched_at"] = pa.array([fetched_at] * count, type=TIMESTAMP_TYPE)
    hashes = plain_row_hashes(first, plain, project_id, region) if images and uniform else None
    if hashes is None:
        hashes = [row_hash(i, project_id, region) for i in images]
    columns[ROW_HASH_COLUMN] = pa.array(hashes, type=pa.string())
    columns[RAW_VALUES_COLUMN] = pa.array([None if r is None else json_text(r) for r in raw], type=pa.string())
    for found in unloadable.values():
        _warn(found, project_id, region)
    schema = pa.schema(
        [pa.field(name, array.type, nullable=name not in NOT_NULL_COLUMNS) for name, array in columns.items()]
    )
    return pa.Table.from_arrays(list(columns.values()), schema=schema)


# Fast paths: a column whose values are all of the usual kind is built by Arrow in one call,
# with the result the value-by-value rules give for such values; any other column (one odd
# value is enough) takes those rules.

_PLAIN_TIMESTAMP = (r"^((?:[1-9]\d{3}|0[1-9]\d{2}|00[1-9]\d|000[1-9])-\d{2}-\d{2})[T ]"
                    r"(\d{2}:\d{2}:\d{2}(?:\.\d{1,6})?)Z?$")
"""`2025-08-15T11:39:16Z`, `2025-08-15 11:39:16` (UTC, as parse_timestamp reads it), with up to six
decimals, from year 1: what Arrow's cast reads as parse_timestamp does (a date that does not
exist, such as February 30, makes the cast fail and the column take the value-by-value rules)."""


def _plain_strings(sent: List[Any]) -> Optional[pa.Array]:
    """Text and nulls only, with no lone surrogate: the column as it is; else None."""
    try:
        return pa.array(sent, type=pa.string())
    except (pa.ArrowException, UnicodeError):
        return None


def _plain_ints(sent: List[Any]) -> Optional[pa.Array]:
    """Integers within int64 and nulls only (no bool, float or text): the column; else None."""
    if not all(type(value) is int for value in sent if value is not None):
        return None
    try:
        return pa.array(sent, type=pa.int64())
    except (pa.ArrowException, OverflowError):
        return None


def _plain_timestamps(sent: List[Any]) -> Optional[pa.Array]:
    """Timestamps written as `_PLAIN_TIMESTAMP` and nulls only: the column as text; else None."""
    try:
        text = pa.array(sent, type=pa.string())
    except (pa.ArrowException, UnicodeError):
        return None
    if pc.all(pc.match_substring_regex(text, _PLAIN_TIMESTAMP)).as_py() is False:
        return None
    return text


def _cast_timestamps(text: pa.Array) -> Optional[pa.Array]:
    """The UTC timestamps of text `_plain_timestamps` accepted, or None when one is not a real date
    (February 30): then the column takes the value-by-value rules."""
    try:
        return pc.replace_substring_regex(text, _PLAIN_TIMESTAMP, r"\1T\2Z").cast(TIMESTAMP_TYPE)
    except pa.ArrowException:
        return None


def _kept_if_none(sent: Any, value: Any) -> Tuple[Any, bool]:
    """A known field's typed value, and whether the value sent must be kept raw (it could not be typed)."""
    return value, value is None and sent is not None


class _Unloadable:
    """Values of one field that a project could not load as sent: counted for one warning."""

    def __init__(self, key: str, problem: str) -> None:
        self.key, self.problem, self.count, self.example = key, problem, 0, None

    def add(self, value: Any) -> None:
        self.count += 1
        if self.count == 1:
            self.example = value


def _keep_unplanned(
    images: List[Dict[str, Any]],
    keys: List[str],
    raw: List[Optional[Dict[str, Any]]],
    limit: Optional[int],
    project_id: str,
    region: str,
) -> None:
    """Keep the values of `keys` (new fields past `max_new_fields`, with no column) in `raw_values`."""
    wanted = set(keys)
    for row, image in enumerate(images):
        sent = {key: value for key, value in image.items() if key in wanted and value is not None}
        if sent:
            raw[row] = {**(raw[row] or {}), **sent}
    example = repr(keys[0])
    if len(example) > MAX_EXAMPLE:
        example = example[: MAX_EXAMPLE - 1] + "…"
    logger.warning(
        "project %s:%s: %d new field(s) past max_new_fields (%s columns for new fields) got no column, e.g. %s; "
        "their values are kept in %s",
        region, project_id, len(keys), limit, example, RAW_VALUES_COLUMN,
    )


def _warn(problem: _Unloadable, project_id: str, region: str) -> None:
    example = repr(problem.example)
    if len(example) > MAX_EXAMPLE:
        example = example[: MAX_EXAMPLE - 1] + "…"
    loaded = "loaded with U+FFFD in its place" if problem.problem == SURROGATE_PROBLEM else "loaded as NULL"
    logger.warning(
        "project %s:%s: %r of %d image(s) is %s, e.g. %s; %s, the value as sent kept in %s",
        region, project_id, problem.key, problem.count, problem.problem, example, loaded, RAW_VALUES_COLUMN,
    )
