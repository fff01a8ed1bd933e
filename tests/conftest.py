"""Shared fixtures: a simulator on 127.0.0.1 and runs of the real pipeline into temp DuckDB files."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

import pytest

from workspace_images.simulator import Simulator
from tests.helpers import TOKEN


@pytest.fixture(autouse=True)
def isolated_dlt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep dlt's folders in the test's temp folder, retry fast, and hide the user's settings."""
    monkeypatch.setenv("DLT_DATA_DIR", str(tmp_path / "dlt_data"))
    monkeypatch.setenv("RUNTIME__REQUEST_BACKOFF_FACTOR", "0.01")
    monkeypatch.setenv("RUNTIME__REQUEST_MAX_RETRY_DELAY", "0.05")
    monkeypatch.setenv("RUNTIME__REQUEST_MAX_ATTEMPTS", "5")
    monkeypatch.setenv("RUNTIME__REQUEST_TIMEOUT", "10")
    monkeypatch.setenv("RUNTIME__DLTHUB_TELEMETRY", "false")
    for name in list(os.environ):
        if name.startswith("SOURCES__WORKSPACE_IMAGES__"):
            monkeypatch.delenv(name)


@pytest.fixture
def sim() -> Iterator[Simulator]:
    """A simulator with no projects: tests add the ones they need."""
    with Simulator(projects=0, seed=11, token=TOKEN) as simulator:
        yield simulator


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "images.duckdb"
