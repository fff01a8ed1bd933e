"""A local stand-in for Huawei Cloud Workspace ``GET /v2/{project_id}/images`` and the IAM calls before it.

Start one with ``Simulator(...).start()`` (or as a context manager), or from a
shell with ``python -m workspace_images.simulator``. Besides the fixed ``X-Auth-Token`` it
accepts IAM password tokens (``POST /v3/auth/tokens``) and AK/SK
``SDK-HMAC-SHA256`` signatures, and lists projects like IAM.
"""

from .data import DEFAULT_REGIONS, generate_day
from .faults import PROJECT_FAULT_KINDS, RANDOM_FAULTS, Fault
from .httpd import RequestRecord
from .identity import (
    DEFAULT_ACCESS_KEY,
    DEFAULT_DOMAIN,
    DEFAULT_PASSWORD,
    DEFAULT_SECRET_KEY,
    DEFAULT_USER,
    MOS_PROJECT,
    SimAccount,
)
from .projects import SimProject
from .server import Simulator
from .tokens import DEFAULT_TOKEN_TTL

__all__ = [
    "DEFAULT_ACCESS_KEY",
    "DEFAULT_DOMAIN",
    "DEFAULT_PASSWORD",
    "DEFAULT_REGIONS",
    "DEFAULT_SECRET_KEY",
    "DEFAULT_TOKEN_TTL",
    "DEFAULT_USER",
    "MOS_PROJECT",
    "PROJECT_FAULT_KINDS",
    "RANDOM_FAULTS",
    "Fault",
    "RequestRecord",
    "SimAccount",
    "SimProject",
    "Simulator",
    "generate_day",
]
