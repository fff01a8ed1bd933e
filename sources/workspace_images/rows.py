"""Turn the images of one project into an Arrow table: known fields typed, new fields kept."""

from __future__ import annotations

import hashlib
import json
import logging
import re
from datetime import datetime, timedelta, timezone
from typing import Any, Dict, List, Optional, Sequence

import pyarrow as pa

from .settings import (
    KNOWN_INT_FIELDS,
    KNOWN_STRING_FIELDS,
    KNOWN_TIMESTAMP_FIELDS,
    ROW_HASH_COLUMN,
)

logger = logging.getLogger("workspace_images")

KNOWN_FIELDS = (*KNOWN_STRING_FIELDS, *KNOWN_INT_FIELDS, *KNOWN_TIMESTAMP_FIELDS)
ADDED_COLUMNS = ("account", "project_id", "region", "fetched_at", ROW_HASH_COLUMN)
"""Columns the loader adds; an API field of the same name is kept as `api_<name>`."""
NOT_NULL_COLUMNS = ("id", "project_id", "region", ROW_HASH_COLUMN)
TIMESTAMP_TYPE = pa.timestamp("us", tz="UTC")

_TS_RE = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,9}))?)?)?\s*(Z|[+-]\d{2}:?\d{2}|UTC)?$",
    re.IGNORECASE,
)


def parse_timestamp(value: Any) -> Optional[datetime]:
    """Parse the API's undocumented time format leniently into an aware UTC datetime.

    Accepts ISO 8601 with `T` or a space, optional fraction (any precision), `Z`,
    `UTC`, an offset, or none (read as UTC), a bare date, and epoch seconds or
    milliseconds. Returns None for anything else.
    """
    if value is None or value == "":
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = value / 1000 if value > 1e11 else value
        try:
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
            int(year), int(month), int(day), int(hour or 0), int(minute or 0), int(second or 0), micro
        )
    except ValueError:
        return None
    if zone and zone.upper() not in ("Z", "UTC"):
        sign = 1 if zone[0] == "+" else -1
        digits = zone[1:].replace(":", "")
        offset_minutes = sign * (int(digits[:2]) * 60 + int(digits[2:]))
        return moment.replace(tzinfo=timezone.utc) - timedelta(minutes=offset_minutes)
    return moment.replace(tzinfo=timezone.utc)


def _to_int(value: Any) -> Optional[int]:
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return int(number) if number.is_integer() else None


def _to_str(value: Any) -> Optional[str]:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    return str(value)


def row_hash(image: Dict[str, Any], project_id: str, region: str) -> str:
    """Stable hash of everything the API said about an image, with its project and region."""
    payload = json.dumps([project_id, region, image], ensure_ascii=False, sort_keys=True, default=str)
    return hashlib.blake2b(payload.encode("utf-8"), digest_size=16).hexdigest()


def _extra_column(values: Sequence[Any]) -> pa.Array:
    """An Arrow column for a field the source does not know: its own type when the
    values agree on one, JSON text for objects and lists, text when they are mixed."""
    present = [v for v in values if v is not None]
    if present and all(isinstance(v, bool) for v in present):
        return pa.array(values, type=pa.bool_())
    if present and all(isinstance(v, int) and not isinstance(v, bool) for v in present):
        return pa.array(values, type=pa.int64())
    if present and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in present):
        return pa.array([None if v is None else float(v) for v in values], type=pa.float64())
    return pa.array([_to_str(v) for v in values], type=pa.string())


def images_table(
    images: List[Dict[str, Any]], project_id: str, region: str, fetched_at: datetime, account: str = "default"
) -> pa.Table:
    """Build the `images` rows of one project.

    Args:
        images: ImageInfo objects as the API returned them, one per image.
        project_id: The project they were read from.
        region: The project's region.
        fetched_at: When the project was read (UTC).
        account: The configured account the project belongs to (not part of the row hash).

    Returns:
        One row per image: known fields typed (min_ram, min_disk integers; created_at
        a UTC timestamp), fields the source does not know in columns of their own,
        then account, project_id, region, fetched_at and the row version hash.
    """
    columns: Dict[str, pa.Array] = {}
    for name in KNOWN_STRING_FIELDS:
        columns[name] = pa.array([_to_str(i.get(name)) for i in images], type=pa.string())
    for name in KNOWN_INT_FIELDS:
        columns[name] = pa.array([_to_int(i.get(name)) for i in images], type=pa.int64())
    for name in KNOWN_TIMESTAMP_FIELDS:
        parsed = [parse_timestamp(i.get(name)) for i in images]
        unparsed = sum(1 for i, p in zip(images, parsed) if p is None and i.get(name) not in (None, ""))
        if unparsed:
            logger.warning(
                "project %s: %d image(s) have a %s the loader cannot read, e.g. %r; loaded as NULL",
                project_id, unparsed, name,
                next(i.get(name) for i, p in zip(images, parsed) if p is None and i.get(name)),
            )
        columns[name] = pa.array(parsed, type=TIMESTAMP_TYPE)
    extra: Dict[str, str] = {}
    for image in images:
        for key in image:
            if key not in KNOWN_FIELDS and key not in extra:
                taken = key in ADDED_COLUMNS or key.startswith("_")
                extra[key] = f"api_{key.lstrip('_')}" if taken else key
    for key, name in extra.items():
        columns[name] = _extra_column([i.get(key) for i in images])
    count = len(images)
    columns["account"] = pa.array([account] * count, type=pa.string())
    columns["project_id"] = pa.array([project_id] * count, type=pa.string())
    columns["region"] = pa.array([region] * count, type=pa.string())
    columns["fetched_at"] = pa.array([fetched_at] * count, type=TIMESTAMP_TYPE)
    columns[ROW_HASH_COLUMN] = pa.array([row_hash(i, project_id, region) for i in images], type=pa.string())
    schema = pa.schema(
        [pa.field(name, array.type, nullable=name not in NOT_NULL_COLUMNS) for name, array in columns.items()]
    )
    return pa.Table.from_arrays(list(columns.values()), schema=schema)
