"""What fetching did: each project's outcome (its `project_runs` row) and the running totals of a run."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Dict, Optional

import pyarrow as pa

from .config import Project
from .failures import failure_text
from .safe_text import safe_text
from .throttle import ThrottleStats


@dataclass
class ProjectOutcome:
    """What fetching one project gave: its rows when it was fetched whole, else the error."""

    project: Project
    status: str = "failed"
    table: Optional[pa.Table] = None
    images: int = 0
    total_count: Optional[int] = None
    pages: int = 0
    requests: int = 0
    retries: int = 0
    throttled: int = 0
    http_status: Optional[int] = None
    error_code: Optional[str] = None
    error_msg: Optional[str] = None
    started_at: datetime = field(default_factory=lambda: datetime.now(timezone.utc))
    finished_at: Optional[datetime] = None

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def failure(self) -> str:
        """`HTTP 403 APIG.0302: <message>`: why the project failed, as far as known."""
        return failure_text(self.http_status, self.error_code, self.error_msg)

    def run_row(self, run_id: str, as_of: datetime) -> Dict[str, Any]:
        """The project's row in `project_runs`; `error_msg` as `safe_text` gives it (secrets
        redacted, control characters escaped)."""
        return {
            "run_id": run_id,
            "account": self.project.account,
            "project_id": self.project.project_id,
            "project_name": self.project.name,
            "region": self.project.region,
            "discovered": self.project.discovered,
            "as_of": as_of,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "status": self.status,
            "images": self.images,
            "total_count": self.total_count,
            "pages": self.pages,
            "requests": self.requests,
            "retries": self.retries,
            "throttled": self.throttled,
            "http_status": self.http_status,
            "error_code": self.error_code,
            "error_msg": safe_text(self.error_msg) if self.error_msg is not None else None,
        }


@dataclass
class Progress:
    """Running totals of a fetch, for progress lines and the final summary."""

    total: int
    done: int = 0
    images: int = 0
    retries: int = 0
    failed: int = 0
    started: float = field(default_factory=time.monotonic)
    throttling: Dict[str, ThrottleStats] = field(default_factory=dict)
    """Each account that was throttled or waited for its pace, by name."""

    def line(self) -> str:
        """`3/6 projects, 600 images, 2 retries, 0 failed, 1.2s`, then each throttled account:
        `; account default throttled 4 times, waited 2.1s, rate 4.8/s`."""
        return (
            f"{self.done}/{self.total} projects, {self.images:,} images, {self.retries} retries, "
            f"{self.failed} failed, {time.monotonic() - self.started:.1f}s" + throttling_text(self.throttling, "; ")
        )


def throttling_text(throttling: Dict[str, ThrottleStats], lead: str) -> str:
    """`<lead>account default throttled 4 times, waited 2.1s, rate 4.8/s` for each account; `` for none."""
    return "".join(f"{lead}account {name} {stats.text()}" for name, stats in throttling.items())
