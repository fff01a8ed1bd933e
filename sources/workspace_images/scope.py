"""The write disposition of `images`: an SCD2 merge whose retirements stay within what a run read."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Sequence

from dlt.common.schema.typing import TScd2StrategyDict

from .settings import PROJECT_ID_PATTERN, ROW_HASH_COLUMN


def images_write_disposition(
    as_of: datetime, ok_project_ids: Sequence[str], filtered: bool = False
) -> TScd2StrategyDict:
    """SCD2 merge whose retirements are confined to what this run read.

    A project that failed is outside the scope, so none of its images is retired;
    a project fetched whole with no image left retires all of its images. A filtered
    run (`filtered`) read only some images of each project, so it retires only the
    earlier versions of the images it read (a changed image is replaced) and leaves
    every other image as it was: an image that is not in a filtered answer may be
    withdrawn or may just not match the filter, which one the answer does not say.
    The scope is SQL that dlt pastes into its merge, so every id in it must match
    PROJECT_ID_PATTERN (letters, digits, `-`, `_`): anything else raises ValueError.
    """
    bad = [pid for pid in ok_project_ids if not re.fullmatch(PROJECT_ID_PATTERN, pid)]
    if bad:
        raise ValueError(f"project ids not fit for SQL: {bad[:3]!r}")
    if ok_project_ids:
        scope = "project_id IN (" + ", ".join(f"'{pid}'" for pid in sorted(ok_project_ids)) + ")"
        if filtered:
            scope += " AND (project_id, id) IN (SELECT project_id, id FROM {staging_table})"
    else:
        scope = "1 = 0"
    return {
        "disposition": "merge",
        "strategy": "scd2",
        "boundary_timestamp": as_of,
        "row_version_column_name": ROW_HASH_COLUMN,
        "destination_scope": scope,
    }
