"""A local stand-in for Huawei Cloud Workspace ``GET /v2/{project_id}/images``.

Start one with ``Simulator(...).start()`` (or as a context manager), or from a
shell with ``python -m simulator``.
"""

from simulator.data import DEFAULT_REGIONS, generate_day
from simulator.server import (
    PROJECT_FAULT_KINDS,
    RANDOM_FAULTS,
    Fault,
    RequestRecord,
    SimProject,
    Simulator,
)

__all__ = [
    "DEFAULT_REGIONS",
    "PROJECT_FAULT_KINDS",
    "RANDOM_FAULTS",
    "Fault",
    "RequestRecord",
    "SimProject",
    "Simulator",
    "generate_day",
]
