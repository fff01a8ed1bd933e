"""Baseline: dlt's own `rest_api` source, set up for this endpoint as a dlt user would.

One resource per project (`images_<n>`, all into the table `images`), the offset paginator
on `total_count`, the token as an API key header, and the same SCD2 history as
workspace-images keeps (merge, strategy scd2). dlt infers the schema from the JSON.

Usage: python -m bench.rest_api_baseline ENDPOINT DB_FILE   (projects and token as for the
pipeline: SOURCES__WORKSPACE_IMAGES__PROJECTS, SOURCES__WORKSPACE_IMAGES__CREDENTIALS__TOKEN)
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any, Callable, Dict

import dlt
from dlt.sources.rest_api import rest_api_source


def tagger(project_id: str, region: str) -> Callable[[Dict[str, Any]], Dict[str, Any]]:
    """The map step that adds where an image was read (a one-argument function: dlt passes
    `meta` as a second argument to a function that takes one)."""
    return lambda image: {**image, "project_id": project_id, "region": region}


def main() -> int:
    endpoint, db = sys.argv[1], sys.argv[2]
    token = os.environ["SOURCES__WORKSPACE_IMAGES__CREDENTIALS__TOKEN"]
    targets = [t.split(":", 1) for t in json.loads(os.environ["SOURCES__WORKSPACE_IMAGES__PROJECTS"])]
    source = rest_api_source({
        "client": {
            "base_url": endpoint,
            "auth": {"type": "api_key", "name": "X-Auth-Token", "api_key": token, "location": "header"},
            "paginator": {"type": "offset", "limit": 100, "offset_param": "offset", "limit_param": "limit",
                          "total_path": "total_count"},
        },
        "resource_defaults": {
            "table_name": "images",
            "merge_key": ["project_id"],
            "write_disposition": {"disposition": "merge", "strategy": "scd2"},
            "endpoint": {"data_selector": "images"},
        },
        "resources": [
            {
                "name": f"images_{n}",
                "endpoint": {"path": f"v2/{project_id}/images"},
                "processing_steps": [{"map": tagger(project_id, region)}],
            }
            for n, (region, project_id) in enumerate(targets)
        ],
    })
    pipeline = dlt.pipeline("rest_api_baseline", destination=dlt.destinations.duckdb(db), dataset_name="rest_api_images",
                            pipelines_dir=os.path.join(os.path.dirname(os.path.abspath(db)), ".rest_api_baseline"))
    info = pipeline.run(source)
    with pipeline.sql_client() as client:
        count = client.execute_sql("select count(*) from images")[0][0]
    print(f"rest_api: {count} images, {len(info.loads_ids)} load(s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
