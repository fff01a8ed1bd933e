"""Turn the images of one project into an Arrow table: known fields typed, new fields kept.

No record fails a project: a value that does not fit its column is loaded as NULL
there and kept, as the API sent it, in `raw_values`. Fields the source does not know
get a column name and a type once (a ColumnPlan shared by the projects of a run and
seeded from the pipeline's schema), so every project and every later run writes them
alike.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import threading
from datetime import datetime, timedelta, timezone
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

import dlt
import pyarrow as pa
import pyarrow.compute as pc
from dlt.common.normalizers.naming import NamingConvention
from dlt.common.normalizers.naming.snake_case import NamingConvention as SnakeCaseNaming
from dlt.common.schema import Schema
from dlt.common.schema.typing import TTableSchemaColumns
from dlt.extract.exceptions import CurrentSourceSchemaNotAvailable

from .settings import (
    KNOWN_INT_FIELDS,
    KNOWN_STRING_FIELDS,
    KNOWN_TIMESTAMP_FIELDS,
    ROW_HASH_COLUMN,
)

logger = logging.getLogger("workspace_images")

RAW_VALUES_COLUMN = "raw_values"
"""JSON object {API field: value as sent} of the values a row could not load typed."""

PLAN_STATE_KEY = "api_columns"
"""Key of the `images` resource state that holds each new API field's column across runs."""

KNOWN_FIELDS = (*KNOWN_STRING_FIELDS, *KNOWN_INT_FIELDS, *KNOWN_TIMESTAMP_FIELDS)
ADDED_COLUMNS = ("account", "project_id", "region", "fetched_at", ROW_HASH_COLUMN, RAW_VALUES_COLUMN)
"""Columns the loader adds; an API field of the same name (or starting with `_`) is kept as `api_<name>`."""
NOT_NULL_COLUMNS = ("id", "project_id", "region", ROW_HASH_COLUMN)
TIMESTAMP_TYPE = pa.timestamp("us", tz="UTC")

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

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
HASH_SUFFIX_LENGTHS = (8, 16, 32)
"""Hex digits of the raw key's hash tried, in turn, when a column name is taken."""
EMPTY_KEY_BASE = "empty"
"""Column name base of a key that normalizes to nothing (the empty key)."""
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

_SURROGATE_RE = re.compile("[\ud800-\udfff]")
_TS_RE = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,9}))?)?)?\s*(Z|[+-]\d{2}:?\d{2}|UTC)?$",
    re.IGNORECASE,
)


def parse_timestamp(value: Any) -> Optional[datetime]:
    """Parse the API's undocumented time format leniently into an aware UTC datetime.

    Accepts ISO 8601 with `T` or a space, optional fraction (any precision), `Z`,
    `UTC`, an offset within ±23:59, or none (read as UTC), a bare date, and epoch
    seconds or milliseconds. Returns None for anything else, and for moments
    outside years 1 to 9999 once in UTC.
    """
    if value is None or value == "":
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        try:
            seconds = value / 1000 if value > 1e11 else value
            return datetime.fromtimestamp(seconds, tz=timezone.utc)
        except (OverflowError, OSError, ValueError):
            return None
    if not isinstance(value, str):
        return None
    match = _TS_RE.match(value.strip())
    if not match:
        return None
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    micro = int((fraction or "0")[:6].ljust(6, "0"))
    try:
        moment = datetime(
            int(year), int(month), int(day), int(hour or 0), int(minute or 0), int(second or 0), micro,
            tzinfo=timezone.utc,
        )
    except ValueError:
        return None
    if not zone or zone.upper() in ("Z", "UTC"):
        return moment
    digits = zone[1:].replace(":", "")
    hours, minutes = int(digits[:2]), int(digits[2:])
    if hours > 23 or minutes > 59:
        return None
    sign = 1 if zone[0] == "+" else -1
    try:
        return moment - timedelta(minutes=sign * (hours * 60 + minutes))
    except OverflowError:
        return None


def _to_int(value: Any) -> Optional[int]:
    """A known integer field leniently: ints, integral floats and numeric text, within int64."""
    if value is None or isinstance(value, bool):
        return None
    number: Any = value
    if isinstance(value, str):
        try:
            number = int(value.strip())
        except ValueError:
            number = value
    if not isinstance(number, int):
        try:
            as_float = float(number)
        except (TypeError, ValueError, OverflowError):
            return None
        if not as_float.is_integer():
            return None
        number = int(as_float)
    return number if INT64_MIN <= number <= INT64_MAX else None


def _to_str(value: Any) -> Optional[str]:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    return str(value)


def _replace_surrogates(text: str) -> str:
    """`text` with each lone surrogate (which UTF-8 cannot carry) replaced by U+FFFD."""
    return _SURROGATE_RE.sub("\ufffd", text)


def _json(value: Any) -> str:
    """JSON text of a decoded API value: non-ASCII kept, lone surrogates written as `\\udXXX` escapes."""
    text = json.dumps(value, ensure_ascii=False, sort_keys=True)
    return _SURROGATE_RE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def _encode(text: str) -> bytes:
    """UTF-8, or for text with lone surrogates (valid JSON escapes, invalid UTF-8) UTF-8
    that passes them through, so such text hashes apart from any ordinary text."""
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogatepass")


_HASH_ENCODER = json.JSONEncoder(ensure_ascii=False, sort_keys=True, default=str)
"""`json.dumps(..., ensure_ascii=False, sort_keys=True, default=str)` made once: the text a row's
hash is taken of. It must never change: a new text would make a new version of every image."""
if json.encoder.c_make_encoder is not None:  # the C encoder that `encode` builds at every call, built once
    _C_ENCODE = json.encoder.c_make_encoder(
        None, _HASH_ENCODER.default, json.encoder.encode_basestring, None, ": ", ", ", True, False, True
    )
else:
    _C_ENCODE = None


def _hash_text(value: Any) -> str:
    """`_HASH_ENCODER.encode(value)` (decoded JSON holds no cycle for the encoder to check for)."""
    return "".join(_C_ENCODE(value, 0)) if _C_ENCODE is not None else _HASH_ENCODER.encode(value)


def row_hash(image: Dict[str, Any], project_id: str, region: str) -> str:
    """Stable hash of everything the API said about an image, with its project and region."""
    return hashlib.blake2b(_encode(_hash_text([project_id, region, image])), digest_size=16).hexdigest()


_NEEDS_ESCAPE = r'["\\\x00-\x1f]'
"""Characters the hash text writes escaped, which the Arrow route below does not do."""


def _plain_row_hashes(
    keys: Iterable[str], sent: Mapping[str, pa.Array], project_id: str, region: str
) -> Optional[List[str]]:
    """`row_hash` of every image of a project whose images all have the fields `keys`, the same
    text built by Arrow for all at once; or None unless each field is in `sent` (its values as
    sent: text or integers, with nulls) and no text needs escaping in JSON."""
    if not all(key in sent for key in keys):
        return None
    texts = [sent[key] for key in keys if pa.types.is_string(sent[key].type)]
    if texts and pc.any(pc.match_substring_regex(pa.chunked_array(texts), _NEEDS_ESCAPE)).as_py():
        return None
    pieces: List[Any] = [f"[{_hash_text(project_id)}, {_hash_text(region)}, {{"]
    for n, key in enumerate(sorted(keys)):
        values = sent[key]
        pieces.append(("" if n == 0 else ", ") + _hash_text(key) + ": ")
        if pa.types.is_string(values.type) and values.null_count == 0:
            pieces += ['"', values, '"']
            continue
        if pa.types.is_string(values.type):
            literal = pc.binary_join_element_wise('"', values, '"', "")
        else:
            literal = values.cast(pa.string())
        pieces.append(pc.fill_null(literal, "null") if values.null_count else literal)
    pieces.append("}]")
    merged: List[Any] = []
    for piece in pieces:  # adjacent text pieces as one
        if isinstance(piece, str) and merged and isinstance(merged[-1], str):
            merged[-1] += piece
        else:
            merged.append(piece)
    joined = pc.binary_join_element_wise(*merged, "").cast(pa.binary())
    blake2b = hashlib.blake2b
    return [blake2b(text, digest_size=16).hexdigest() for text in joined.to_pylist()]


def infer_type(values: Sequence[Any]) -> Optional[str]:
    """The dlt data type of a new field from its values in one project; None when all are null.

    bool when all are booleans, bigint when all are integers within int64, double
    when all are numbers (integers exact in a double), text otherwise (objects and
    lists as JSON text, integers beyond int64 included).
    """
    present = [v for v in values if v is not None]
    if not present:
        return None
    if all(isinstance(v, bool) for v in present):
        return "bool"
    if any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in present):
        return "text"
    ints = [v for v in present if isinstance(v, int)]
    if len(ints) == len(present) and all(INT64_MIN <= v <= INT64_MAX for v in ints):
        return "bigint"
    if all(_exact_double(v) for v in ints) and all(INT64_MIN <= v <= INT64_MAX for v in ints):
        return "double"
    return "text"


def _exact_double(value: int) -> bool:
    try:
        return float(value) == value
    except OverflowError:
        return False


def fit_value(value: Any, data_type: str) -> Tuple[Any, bool]:
    """Cast one value of a new field to its column's type.

    Returns:
        (column value, kept raw): the value to load and whether the value as sent
        must also go to `raw_values`: NULL and True when it does not fit (text or a
        bool in a bigint column, an integer beyond int64, a fraction in bigint, ...);
        for text with a lone surrogate, the text with U+FFFD and True.
    """
    if value is None:
        return None, False
    if data_type == "text":
        text = _to_str(value)
        clean = _replace_surrogates(text)  # type: ignore[arg-type]
        return clean, clean != text
    if isinstance(value, bool):
        return (value, False) if data_type == "bool" else (None, True)
    if data_type == "bigint":
        if isinstance(value, int) and INT64_MIN <= value <= INT64_MAX:
            return value, False
        if isinstance(value, float) and value.is_integer() and INT64_MIN <= value <= INT64_MAX:
            return int(value), False
        return None, True
    if data_type == "double":
        if isinstance(value, float) or (isinstance(value, int) and _exact_double(value)):
            return float(value), False
        return None, True
    return None, True


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
    ) -> None:
        """
        Args:
            naming: The schema's naming convention; the current source schema's inside
                a dlt resource, else dlt's default snake_case.
            types: dlt data type of each column already in the table.
            names: Column of each API key, as an earlier run decided (`held_names()`).
        """
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
        cls, schema: Schema, names: Optional[Mapping[str, str]] = None, table_name: str = "images"
    ) -> "ColumnPlan":
        """A plan holding the types of the columns `table_name` has in `schema` (none on a first run)."""
        table = schema.tables.get(schema.naming.normalize_table_identifier(table_name)) or {}
        types = {
            name: column["data_type"]
            for name, column in (table.get("columns") or {}).items()
            if column.get("data_type")
        }
        return cls(schema.naming, types, names)

    def held_names(self) -> Dict[str, str]:
        """Column of every new key seen so far, for the next run; keys with lone surrogates are
        left out (dlt's state cannot store them) and are named afresh, alike, next time."""
        with self._lock:
            return {k: c for k, c in self._names.items() if not _SURROGATE_RE.search(k)}

    def types(self) -> Dict[str, str]:
        """dlt data type of each new field's column decided or held so far."""
        with self._lock:
            return dict(self._types)

    def columns_for(self, keys: Iterable[str]) -> Dict[str, str]:
        """The column of each API key that is not a known field, deciding those not seen yet."""
        wanted = list(dict.fromkeys(keys))
        with self._lock:
            for key in sorted((k for k in wanted if k not in self._names), key=self._precedence):
                self._hold(key, self._free_name(key))
            return {key: self._names[key] for key in wanted}

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
            return self.naming.normalize_identifier(_SURROGATE_RE.sub("_", name))
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


class _Unloadable:
    """Values of one field that a project could not load as sent: counted for one warning."""

    def __init__(self, key: str, problem: str) -> None:
        self.key, self.problem, self.count, self.example = key, problem, 0, None

    def add(self, value: Any) -> None:
        self.count += 1
        if self.count == 1:
            self.example = value


class BadRecord(Exception):
    """The rows of a project could not be built (a record no rule here foresaw): that project fails."""


def images_table(
    images: List[Dict[str, Any]],
    project_id: str,
    region: str,
    fetched_at: datetime,
    account: str = "default",
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
        cause = (str(exc).strip().splitlines() or [""])[0]
        message = f"cannot build the rows of project {region}:{project_id}: {exc.__class__.__name__}"
        raise BadRecord(_replace_surrogates(message + (f": {cause}" if cause else ""))) from exc


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
            fitted = (_kept_if_none(value, _to_int(value)) for value in sent)
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
    for key, name in plan.columns_for(keys).items():
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

    count = len(images)
    columns["account"] = pa.array([account] * count, type=pa.string())
    columns["project_id"] = pa.array([project_id] * count, type=pa.string())
    columns["region"] = pa.array([region] * count, type=pa.string())
    columns["fetched_at"] = pa.array([fetched_at] * count, type=TIMESTAMP_TYPE)
    hashes = _plain_row_hashes(first, plain, project_id, region) if images and uniform else None
    if hashes is None:
        hashes = [row_hash(i, project_id, region) for i in images]
    columns[ROW_HASH_COLUMN] = pa.array(hashes, type=pa.string())
    columns[RAW_VALUES_COLUMN] = pa.array([None if r is None else _json(r) for r in raw], type=pa.string())
    for problem in unloadable.values():
        _warn(problem, project_id, region)
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


def _warn(problem: _Unloadable, project_id: str, region: str) -> None:
    example = repr(problem.example)
    if len(example) > MAX_EXAMPLE:
        example = example[: MAX_EXAMPLE - 1] + "…"
    loaded = "loaded with U+FFFD in its place" if problem.problem == SURROGATE_PROBLEM else "loaded as NULL"
    logger.warning(
        "project %s:%s: %r of %d image(s) is %s, e.g. %s; %s, the value as sent kept in %s",
        region, project_id, problem.key, problem.count, problem.problem, example, loaded, RAW_VALUES_COLUMN,
    )
