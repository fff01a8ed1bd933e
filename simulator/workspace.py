"""The Workspace side of the simulator: its projects, their images day by day, faults and hooks.

No HTTP here: these are the knobs tests turn (days, data changes, faults,
hooks); :mod:`simulator.api` answers from them.
"""

from __future__ import annotations

import copy
import datetime as dt
import logging
import random
import threading
from collections.abc import Sequence
from typing import Any

from .data import Image, ProjectHistory, new_image, project_id_for, sort_images
from .faults import RANDOM_FAULTS, Fault, project_fault
from .iam import IdentityStore
from .projects import Hook, ProjectState, SimProject, serialise

LOGGER = logging.getLogger("workspace_images.simulator")


class Workspace:
    """The projects a :class:`~simulator.server.Simulator` serves, and the knobs that change them.

    Args:
        iam: The identity store each project is registered in.
        lock: The lock shared with the simulator's other parts; every public method takes it.
        seed: Seed of project IDs, data and faults.
        day: The simulated day to start on.
        fault_rate: Probability (0..1) that an images request fails with one
            of ``fault_kinds``.
        start_date: The date of day 0.
        regions: Regions to spread the first ``projects`` over (round robin).
        projects: How many projects of the default account to create, as of day 0.
        images: How many images each of those has on day 0.

    Attributes:
        extra_fields: Keys added to every served image that lacks them, to
            simulate fields the API adds later.
        fault_kinds: Names in :data:`~simulator.faults.RANDOM_FAULTS` that
            ``fault_rate`` picks from.
        fault_rate: As given.
        iam: The identity store.
        lock: The shared lock; hold it while using a :meth:`project_state`.
    """

    def __init__(self, iam: IdentityStore, lock: threading.RLock, *, seed: int, day: int, fault_rate: float,
                 start_date: dt.date, regions: Sequence[str] = (), projects: int = 0, images: int = 0) -> None:
        self.iam = iam
        self.lock = lock
        self.fault_rate = fault_rate
        self.extra_fields: dict[str, Any] = {}
        self.fault_kinds: tuple[str, ...] = tuple(RANDOM_FAULTS)
        self._seed = seed
        self._start_date = start_date
        self._day = day
        self._fault_rng = random.Random(f"{seed}:faults")
        self._mutation_rng = random.Random(f"{seed}:mutations")
        self._states: dict[str, ProjectState] = {}
        for index in range(projects):
            self._add(regions[index % len(regions)], images, project_id_for(seed, index), added_day=0)

    @property
    def seed(self) -> int:
        """Seed of project IDs, data and faults."""
        return self._seed

    @property
    def start_date(self) -> dt.date:
        """The date of day 0."""
        return self._start_date

    # projects

    @property
    def projects(self) -> list[SimProject]:
        """The projects, in the order they were created."""
        with self.lock:
            return [state.project for state in self._states.values()]

    @property
    def day(self) -> int:
        """The current simulated day."""
        return self._day

    def as_of(self, d: int | None = None) -> dt.datetime:
        """Return noon UTC of a simulated day.

        Images published on a day are created before noon, so this is a
        validity timestamp that covers everything served on that day.

        Args:
            d: The day; the current day when None.

        Returns:
            ``start_date + d`` at 12:00 UTC.
        """
        day = self._day if d is None else d
        return dt.datetime.combine(self.start_date + dt.timedelta(days=day), dt.time(12), tzinfo=dt.timezone.utc)

    def add_project(
        self,
        region: str = "cn-north-4",
        images: int = 101,
        project_id: str | None = None,
        account: str | None = None,
        name: str | None = None,
        enabled: bool = True,
    ) -> SimProject:
        """Add a project with exactly ``images`` images on the current day.

        Its data evolves from its own seed when :meth:`set_day` moves to a later
        day (its day 0 is the day it was added; earlier days serve that set too).

        Args:
            region: Region id.
            images: Number of images now (0 allowed).
            project_id: Its ID; generated from the seed when None.
            account: The domain name of the account it belongs to; the
                default account when None.
            name: Its IAM name: ``region`` or ``{region}_{suffix}`` (a
                sub-project, e.g. ``cn-north-4_finance``); when None, the
                region for the account's first project there, else
                ``{region}_teamN``.
            enabled: Whether IAM lists it as enabled; a disabled project
                refuses Workspace calls with 403 ``APIG.0302``.

        Returns:
            The new project.
        """
        with self.lock:
            index = len(self._states)
            project_id = project_id or project_id_for(self.seed, index)
            if project_id in self._states or self.iam.project(project_id) is not None:
                raise ValueError(f"project {project_id} already exists")
            return self._add(region, images, project_id, added_day=self._day, account=account, name=name,
                             enabled=enabled)

    def _add(
        self,
        region: str,
        images: int,
        project_id: str,
        added_day: int,
        account: str | None = None,
        name: str | None = None,
        enabled: bool = True,
    ) -> SimProject:
        index = len(self._states)
        domain = self.iam.account(account).domain
        name = self.iam.project_name(region, domain, name)
        project = SimProject(region=region, project_id=project_id, name=name)
        history = ProjectHistory(self.seed, index, images, self.start_date + dt.timedelta(days=added_day))
        state = ProjectState(project, history, added_day, live=[])
        state.live = self._day_images(state, self._day)
        self.iam.register_project(project_id, name, domain, region, enabled)
        self._states[project_id] = state
        return project

    def projects_of(self, domain: str | None = None) -> list[SimProject]:
        """Return the Workspace projects of one account (``MOS`` is not one).

        Args:
            domain: The account; the default one when None.

        Returns:
            Its projects, in the order they were created.
        """
        with self.lock:
            wanted = self.iam.account(domain).domain
            return [state.project for state in self._states.values()
                    if self.iam.project(state.project.project_id).domain == wanted]

    # data

    @staticmethod
    def _day_images(state: ProjectState, day: int) -> list[Image]:
        return state.history.day(max(0, day - state.added_day))

    def set_day(self, d: int) -> None:
        """Switch every project to simulated day ``d``; live mutations are lost.

        Args:
            d: The day (0 or later).
        """
        if d < 0:
            raise ValueError(f"day must be >= 0, got {d}")
        with self.lock:
            for state in self._states.values():
                state.live = self._day_images(state, d)
            self._day = d
        LOGGER.info("simulator switched to day %d (%s)", d, self.start_date + dt.timedelta(days=d))

    def images(self, project_id: str) -> list[Image]:
        """Return a project's live images as the API serialises them, in its default order.

        Args:
            project_id: The project.

        Returns:
            Deep copies, sorted by name then id.
        """
        with self.lock:
            live = sort_images(self._state(project_id).live)
            return [copy.deepcopy(serialise(image, self.extra_fields)) for image in live]

    def project_state(self, project_id: str) -> ProjectState | None:
        """The state of a project, None when unknown; hold :attr:`lock` while using it."""
        return self._states.get(project_id)

    def random_fault(self) -> Fault | None:
        """Draw the fault an images request fails with under ``fault_rate``, or None (hold :attr:`lock`)."""
        if self.fault_rate and self.fault_kinds and self._fault_rng.random() < self.fault_rate:
            return RANDOM_FAULTS[self._fault_rng.choice(self.fault_kinds)]
        return None

    def _state(self, project_id: str) -> ProjectState:
        try:
            return self._states[project_id]
        except KeyError:
            raise KeyError(f"unknown project {project_id}") from None

    def _find(self, state: ProjectState, image_id: str) -> int:
        for i, image in enumerate(state.live):
            if image["id"] == image_id:
                return i
        raise KeyError(f"project {state.project.project_id} has no image {image_id}")

    def withdraw(self, project_id: str, image_id: str) -> None:
        """Remove an image from a project's live data.

        Args:
            project_id: The project.
            image_id: The image.
        """
        with self.lock:
            state = self._state(project_id)
            del state.live[self._find(state, image_id)]

    def publish(self, project_id: str, image: dict[str, Any] | None = None) -> Image:
        """Add an image to a project's live data.

        Any JSON-able names and values are stored and served verbatim, in
        their order: ``""`` as a name, ``osType`` beside ``os_type``, integers
        beyond 64 bits, nested objects, odd ``created_at`` strings, strings
        with a lone surrogate (served as a ``\\ud800`` escape).

        Args:
            project_id: The project.
            image: Fields of the image; missing ones (``id`` included) are
                generated, ``created_at`` on the current simulated day.

        Returns:
            A copy of the stored image.
        """
        with self.lock:
            state = self._state(project_id)
            taken = {existing["name"] for existing in state.live if isinstance(existing.get("name"), str)}
            created_on = self.start_date + dt.timedelta(days=self._day)
            stored = new_image(self._mutation_rng, created_on, taken)
            stored.update(copy.deepcopy(image or {}))
            if any(existing["id"] == stored["id"] for existing in state.live):
                raise ValueError(f"project {project_id} already has image {stored['id']}")
            state.live.append(stored)
            return copy.deepcopy(stored)

    def modify(self, project_id: str, image_id: str, **fields: Any) -> Image:
        """Change fields of a live image.

        Like :meth:`publish`, any JSON-able names and values are served
        verbatim (pass odd names as ``**{"": 1}``).

        Args:
            project_id: The project.
            image_id: The image.
            **fields: New values.

        Returns:
            A copy of the changed image.
        """
        with self.lock:
            state = self._state(project_id)
            image = state.live[self._find(state, image_id)]
            image.update(copy.deepcopy(fields))
            return copy.deepcopy(image)

    # faults and hooks

    def fail_project(
        self,
        project_id: str,
        kind: str,
        *,
        status: int | None = None,
        error_code: str | None = None,
        error_msg: str | None = None,
        times: int | None = None,
        retry_after: int | None = 1,
        total: int | None = None,
        interval: float | None = None,
        size: int | None = None,
    ) -> None:
        """Make a project's images requests fail, until :meth:`clear_faults`.

        Faults apply in the order added; the first active one that answers
        with an error (or, for ``silent``, does not answer) wins. The kinds,
        and what each answers, are listed at :func:`~simulator.faults.project_fault`.

        Args:
            project_id: The project.
            kind: One of :data:`PROJECT_FAULT_KINDS`.
            status: HTTP status of ``status`` and ``flaky``.
            error_code: Overrides the body's error_code.
            error_msg: Overrides the body's error_msg.
            times: How many requests fail; None means until cleared
                (``flaky`` and ``retry_after`` default to 1).
            retry_after: Seconds in ``Retry-After`` (``retry_after`` kind, or any
                429); None sends no header.
            total: The ``total_count`` to serve; required for ``total_count``,
                refused for other kinds.
            interval: Seconds between two bytes (``drip``, ``drip_headers``;
                default :data:`~simulator.faults.DEFAULT_DRIP_INTERVAL`) or
                the delay of each request (``slow``, required); refused for
                other kinds.
            size: Bytes a ``gzip_bomb`` inflates to, or images on an
                ``oversized_page``; required for those, refused for other kinds.

        Raises:
            ValueError: An unknown kind, or ``total``, ``interval`` or ``size``
                missing, invalid or given to a kind that does not use it.
            KeyError: An unknown project.
        """
        fault = project_fault(kind, status=status, error_code=error_code, error_msg=error_msg, times=times,
                              retry_after=retry_after, total=total, interval=interval, size=size)
        with self.lock:
            self._state(project_id).faults.append(fault)

    def clear_faults(self, project_id: str | None = None) -> None:
        """Remove the faults of one project, or of all when None.

        Args:
            project_id: The project, or None for all.
        """
        with self.lock:
            states = [self._state(project_id)] if project_id else list(self._states.values())
            for state in states:
                state.faults.clear()

    def on_request(self, project_id: str, fn: Hook | None) -> None:
        """Call ``fn(project_id, request_number)`` after each images request of a project.

        It runs under the shared lock once the answer is built and before
        it is sent, for every request that passed authentication (faults
        included); ``request_number`` counts them from 1. None removes it.

        Args:
            project_id: The project.
            fn: The hook, or None.
        """
        with self.lock:
            self._state(project_id).hook = fn
