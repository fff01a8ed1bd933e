"""Values of the API's fields, typed leniently: timestamps, integers, text, and a new field's type."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta, timezone
from typing import Any, Optional, Sequence, Tuple

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1

LONE_SURROGATE = re.compile("[\ud800-\udfff]")
"""A lone surrogate: valid in a JSON escape, but not in UTF-8, so not in a loaded text."""

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


def to_int(value: Any) -> Optional[int]:
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


def _to_str(value: Any) -> str:
    """The text a value (not None) of a text column is loaded as: JSON for an object or a list."""
    if isinstance(value, str):
        return value
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    return str(value)


def replace_surrogates(text: str) -> str:
    """`text` with each lone surrogate (which UTF-8 cannot carry) replaced by U+FFFD."""
    return LONE_SURROGATE.sub("\ufffd", text)


def json_text(value: Any) -> str:
    """JSON text of a decoded API value: non-ASCII kept, lone surrogates written as `\\udXXX` escapes."""
    text = json.dumps(value, ensure_ascii=False, sort_keys=True)
    return LONE_SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


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
        clean = replace_surrogates(text)
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
