"""Baseline for bench/run_load.py: page every project with plain requests, keep the JSON, write nothing.

This is the floor a loader cannot beat: the same HTTP requests, with the same
concurrency, and no typing, hashing, loading or bookkeeping.
"""

from __future__ import annotations

import json
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Dict, List

import requests


def fetch(endpoint: str, token: str, project_id: str) -> List[Dict[str, Any]]:
    session = requests.Session()
    images: List[Dict[str, Any]] = []
    offset = 0
    while True:
        answer = session.get(
            f"{endpoint}/v2/{project_id}/images",
            params={"limit": 100, "offset": offset, "sort_field": "created_at", "sort_type": "asc"},
            headers={"X-Auth-Token": token},
            timeout=60,
        )
        answer.raise_for_status()
        body = answer.json()
        images.extend(body["images"])
        offset += 100
        if offset >= body["total_count"] or not body["images"]:
            return images


def main() -> int:
    endpoint = sys.argv[1]
    token = os.environ["SOURCES__WORKSPACE_IMAGES__CREDENTIALS__TOKEN"]
    projects = [p.split(":", 1)[1] for p in json.loads(os.environ["SOURCES__WORKSPACE_IMAGES__PROJECTS"])]
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda p: fetch(endpoint, token, p), projects))
    print(f"baseline: {len(projects)} projects, {sum(len(r) for r in results)} images")
    return 0


if __name__ == "__main__":
    sys.exit(main())
