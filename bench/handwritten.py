"""Baseline: what a user would write by hand instead of workspace-images.

Pages every project one after the other with plain `requests`, puts the images in a
pandas DataFrame and writes it to a DuckDB table. No history (the table is replaced),
no run log, no retries, no checks: the floor a loader with all of those competes with.

Usage: python -m bench.handwritten ENDPOINT DB_FILE   (projects and token as for the pipeline:
SOURCES__WORKSPACE_IMAGES__PROJECTS, SOURCES__WORKSPACE_IMAGES__CREDENTIALS__TOKEN)
"""

from __future__ import annotations

import json
import os
import sys

import duckdb
import pandas as pd
import requests


def main() -> int:
    endpoint, db = sys.argv[1], sys.argv[2]
    token = os.environ["SOURCES__WORKSPACE_IMAGES__CREDENTIALS__TOKEN"]
    session = requests.Session()
    rows = []
    for target in json.loads(os.environ["SOURCES__WORKSPACE_IMAGES__PROJECTS"]):
        region, project_id = target.split(":", 1)
        offset = 0
        while True:
            answer = session.get(
                f"{endpoint}/v2/{project_id}/images",
                params={"offset": offset, "limit": 100},
                headers={"X-Auth-Token": token},
                timeout=60,
            )
            answer.raise_for_status()
            body = answer.json()
            for image in body["images"]:
                rows.append({**image, "project_id": project_id, "region": region})
            offset += len(body["images"])
            if not body["images"] or offset >= body["total_count"]:
                break
    frame = pd.DataFrame(rows)
    frame["created_at"] = pd.to_datetime(frame["created_at"], utc=True, format="mixed", errors="coerce")
    with duckdb.connect(db) as con:
        con.execute("create or replace table images as select * from frame")
        count = con.execute("select count(*) from images").fetchone()[0]
    print(f"handwritten: {count} images")
    return 0


if __name__ == "__main__":
    sys.exit(main())
