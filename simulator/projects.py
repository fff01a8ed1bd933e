"""A project the simulator serves, and its state: live images, armed faults, hook and request count.

:mod:`simulator.workspace` keeps one state per project and changes it;
:mod:`simulator.api` reads it (under the workspace's lock) to answer.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .data import Image, ProjectHistory
from .faults import DRIP_KINDS, ProjectFault

Hook = Callable[[str, int], Any]
"""Called with ``(project_id, request_number)`` after each images request of a project."""


@dataclass(frozen=True)
class SimProject:
    """A project the simulator serves.

    Attributes:
        region: Region id, e.g. ``cn-north-4``.
        project_id: 32 lowercase hex digits.
        name: The IAM project name: the region id, or ``{region}_{suffix}``
            for further projects in the same region.
    """

    region: str
    project_id: str
    name: str


@dataclass
class ProjectState:
    """What the simulator holds for one project; read and changed under the workspace's lock.

    Attributes:
        project: The project.
        history: Its seeded images, day by day.
        added_day: The simulated day it was added (its own day 0).
        live: Its images now, with the changes tests made today.
        faults: Its armed faults, in the order added.
        hook: Called after each of its images requests; None for none.
        requests: How many of its images requests passed authentication.
    """

    project: SimProject
    history: ProjectHistory
    added_day: int
    live: list[Image]
    faults: list[ProjectFault] = field(default_factory=list)
    hook: Hook | None = None
    requests: int = 0

    def take(self, kind: str) -> ProjectFault | None:
        """Consume and return the first active fault of a kind, or None."""
        for fault in self.faults:
            if fault.kind == kind and fault.active():
                fault.consume()
                return fault
        return None

    def take_failing(self) -> ProjectFault | None:
        """Consume and return the first active fault that answers with an error or not at all, or None."""
        for fault in self.faults:
            if (fault.fault is not None or fault.kind == "silent") and fault.active():
                fault.consume()
                return fault
        return None

    def take_drip(self) -> ProjectFault | None:
        """Consume and return the first active fault that sends its answer slowly, or None."""
        for fault in self.faults:
            if fault.kind in DRIP_KINDS and fault.active():
                fault.consume()
                return fault
        return None


def serialise(image: Image, extra_fields: Mapping[str, Any]) -> Image:
    """Return an image as the API serves it: with the extra fields it lacks."""
    if not extra_fields:
        return image
    served = dict(image)
    for name, value in extra_fields.items():
        served.setdefault(name, value)
    return served
