"""Fetch projects whole, several at a time: page each to its end, renew tokens, retry unstable listings."""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

from requests import RequestException
from requests.auth import AuthBase

from .auth import CredentialsRejected, IamError, IamTokenAuth
from .client import ImagesPaginator, make_rest_client, page_params
from .columns import ColumnPlan
from .config import Project
from .failures import MAX_ERROR_MSG, ApiError, FetchError, ProjectTimedOut, first_line
from .gate import CpuGate
from .outcomes import ProjectOutcome, Progress
from .pages import check_status
from .rows import BadRecord, images_table
from .sessions import ThreadSessions
from .throttle import AccountTurns, Limiters, ThrottleTimedOut
from .values import fit_value, json_text
from .settings import (
    DEFAULT_MAX_ANSWER_BYTES,
    DEFAULT_PROJECT_TIMEOUT,
    ERR_BAD_RECORD,
    ERR_CONNECTION,
    ERR_COUNT_MISMATCH,
    ERR_CREDENTIALS,
    ERR_DUPLICATE_ID,
    ERR_PAGING_UNSTABLE,
    ERR_THROTTLED,
    ERR_TIMEOUT,
    ERR_TOKEN_EXPIRED,
    ERR_UNEXPECTED,
    IMAGES_PATH,
    MAX_PAGING_PASSES,
    TOKEN_EXPIRED_CODES,
)

logger = logging.getLogger("workspace_images")


def base_url(endpoint: str, region: str) -> str:
    """The Workspace endpoint of `region` from the endpoint template."""
    return endpoint.format(region=region) if "{region}" in endpoint else endpoint


def fetch_project(
    project: Project,
    endpoint: str,
    auth: AuthBase,
    filters: Dict[str, str],
    project_timeout: float = DEFAULT_PROJECT_TIMEOUT,
    plan: Optional[ColumnPlan] = None,
    sessions: Optional[ThreadSessions] = None,
) -> ProjectOutcome:
    """Page one project to its end and return its images, or why it failed.

    The project is paged again (at most MAX_PAGING_PASSES times) when `total_count`
    moved while it was paged or the ids read do not add up to it; the rows kept are
    those of the last pass, deduplicated by id. A count that disagrees with the
    pages the same way twice in a row fails the project (`WI.COUNT_MISMATCH`). Two images whose
    ids differ as sent but are one id as text (12345 and "12345") fail it (`WI.DUPLICATE_ID`):
    loaded, they would be two current versions of one image.
    With IAM password tokens, a 401 that says the token must be updated renews the
    token and goes on from the refused page, as often as paging makes progress in
    between. No request is sent once `project_timeout` seconds have passed, and
    no retry waits past them (`WI.TIMEOUT`, at once). Its requests keep to its account's pace (the
    account's limiter of `sessions`): a 429 is waited out, and the project fails on throttling only
    when its turn would come past `project_timeout` (`WI.THROTTLED`). New API fields are named and typed by `plan`, shared by the
    projects of a run. Requests go through this thread's session of `sessions`, shared by
    the projects of a run. Any error fails this project only.
    """
    outcome = ProjectOutcome(project=project)
    client, counter = make_rest_client(
        base_url(endpoint, project.region), auth, deadline=time.monotonic() + project_timeout, sessions=sessions,
        account=project.account,
    )
    path = IMAGES_PATH.format(project_id=project.project_id)
    params = page_params(filters)
    renewable = auth if isinstance(auth, IamTokenAuth) else None  # an IAM password token renews when it expires

    def read_pass() -> Tuple[ImagesPaginator, Dict[str, Dict[str, Any]]]:
        """One pass over every page; an expired IAM token is renewed and paging goes on."""
        paginator = ImagesPaginator()
        by_id: Dict[str, Dict[str, Any]] = {}
        pages_since_renewal: Optional[int] = None
        while True:
            try:
                for page in client.paginate(
                    path, params=params, paginator=paginator, hooks={"response": [check_status]}
                ):
                    outcome.pages += 1
                    if pages_since_renewal is not None:
                        pages_since_renewal += 1
                    for image in page:
                        key = image_key(image["id"])
                        held = by_id.get(key)
                        if held is not None and json_text(held["id"]) != json_text(image["id"]):
                            raise FetchError(
                                f"images {_short(held['id'])} and {_short(image['id'])} have one id once loaded "
                                f"as text ({_short(key)}): the project's rows would collide",
                                200, ERR_DUPLICATE_ID,
                            )
                        by_id[key] = image
                return paginator, by_id
            except ApiError as exc:
                if not (renewable is not None and is_expired_token(exc)):
                    raise
                if pages_since_renewal == 0:
                    raise FetchError(
                        "the IAM token was refused as expired right after it was renewed",
                        exc.http_status, ERR_TOKEN_EXPIRED,
                        f"{exc.error_msg} (refused again right after the token was renewed)",
                    ) from None
                logger.info("project %s: the IAM token must be updated; renewing it and going on at offset %d",
                            project, paginator.current_value)
                renewable.renew()
                pages_since_renewal = 0
                paginator.resume()

    try:
        last: Optional[Tuple[int, int]] = None
        for _ in range(MAX_PAGING_PASSES):
            paginator, by_id = read_pass()
            outcome.total_count = paginator.totals[-1] if paginator.totals else 0
            if not paginator.total_changed and len(by_id) == outcome.total_count:
                break
            if not paginator.total_changed and last == (outcome.total_count, len(by_id)):
                raise FetchError(
                    f"the API reports total_count {outcome.total_count} but its pages hold "
                    f"{len(by_id)} distinct images, the same on two passes",
                    200, ERR_COUNT_MISMATCH,
                )
            last = None if paginator.total_changed else (outcome.total_count, len(by_id))
            logger.info(
                "project %s: total_count moved or disagrees with the pages (%s; %d ids read); paging again",
                project, " -> ".join(str(t) for t in dict.fromkeys(paginator.totals)), len(by_id),
            )
        else:
            raise FetchError(
                f"the image list kept changing while it was paged ({MAX_PAGING_PASSES} passes)",
                200, ERR_PAGING_UNSTABLE,
            )
        fetched_at = datetime.now(timezone.utc)
        outcome.table = images_table(
            list(by_id.values()), project.project_id, project.region, fetched_at, project.account,
            plan=plan,
        )
        outcome.images = outcome.table.num_rows
        outcome.status = "ok"
    except FetchError as exc:
        outcome.http_status, outcome.error_code, outcome.error_msg = exc.http_status, exc.error_code, exc.error_msg
    except ThrottleTimedOut as exc:
        outcome.http_status = 429 if counter.pacing.throttled else None
        outcome.error_code, outcome.error_msg = ERR_THROTTLED, counter.pacing.failure(exc.seconds)[:MAX_ERROR_MSG]
    except ProjectTimedOut as exc:
        outcome.http_status, outcome.error_code = exc.http_status, ERR_TIMEOUT
        outcome.error_msg = f"{exc.reason(project_timeout)}; {outcome.pages} page(s) read"
    except CredentialsRejected as exc:
        outcome.error_code, outcome.error_msg = ERR_CREDENTIALS, str(exc)
    except IamError as exc:
        outcome.http_status, outcome.error_code, outcome.error_msg = exc.http_status, exc.error_code, str(exc)
    except RequestException as exc:
        outcome.error_code = ERR_CONNECTION
        outcome.error_msg = f"{exc.__class__.__name__} after {counter.attempts} attempt(s): {exc}"[:MAX_ERROR_MSG]
    except BadRecord as exc:  # its rows could not be built: this project fails, the others load
        logger.debug("project %s: cannot build its rows", project, exc_info=True)
        outcome.error_code, outcome.error_msg = ERR_BAD_RECORD, str(exc)[:MAX_ERROR_MSG]
    except Exception as exc:  # a bug or a record nothing foresaw: this project fails, the others load
        logger.debug("project %s failed unexpectedly", project, exc_info=True)
        outcome.error_code = ERR_UNEXPECTED
        outcome.error_msg = f"{exc.__class__.__name__}: {first_line(exc, 'no message')}"[:MAX_ERROR_MSG]
    finally:
        outcome.requests, outcome.retries = counter.attempts, counter.retries
        outcome.throttled = counter.pacing.throttled
        outcome.finished_at = datetime.now(timezone.utc)
    if not outcome.ok:
        outcome.table = None
        logger.warning("project %s failed: %s", project, outcome.failure)
    return outcome


def image_key(image_id: Any) -> str:
    """An image's id as its row holds it (text, as `images_table` types it): two ids the API
    sends apart, such as 12345 and "12345", are one key here."""
    return fit_value(image_id, "text")[0]


def _short(value: Any, limit: int = 80) -> str:
    """`repr(value)`, cut to `limit` characters with `…`."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def is_expired_token(error: ApiError) -> bool:
    """The gateway's answer to an expired IAM token: 401 APIG.0307 "The token must be updated"."""
    return error.http_status == 401 and (error.error_code or "") in TOKEN_EXPIRED_CODES


@dataclass
class Target:
    """A project to fetch and how its requests authenticate."""

    project: Project
    auth: AuthBase
    probe_group: Optional[str] = None
    """Projects of one group wait for the group's first project; when the API refused its
    credentials (HTTP 401), the others are failed without a request. Used for AK/SK, whose
    gateway locks a key after a few bad signatures in a row."""


class _Probe:
    def __init__(self) -> None:
        self.done = threading.Event()
        self.rejection: Optional[ProjectOutcome] = None


class ProjectFetcher:
    """Fetches every project once, `concurrency` at a time, starting on first use.

    `completed(plan)` starts the fetch with the run's ColumnPlan and hands each outcome over
    as soon as its project is done (the `images` resource loads from it); `outcomes()` waits
    for all of them (the `project_runs` transformer reads it once `finished()` says so, never
    blocking `images`). `rejected` are outcomes of
    projects that were never fetched (a discovered id unfit to use), failed from the start.
    """

    def __init__(
        self,
        targets: List[Target],
        endpoint: str,
        filters: Dict[str, str],
        concurrency: int,
        on_progress: Optional[Callable[[Progress], None]] = None,
        project_timeout: float = DEFAULT_PROJECT_TIMEOUT,
        rejected: Optional[List[ProjectOutcome]] = None,
        max_answer_bytes: int = DEFAULT_MAX_ANSWER_BYTES,
        rate_limits: Optional[Dict[str, Optional[float]]] = None,
    ) -> None:
        self.targets = targets
        self.project_timeout = project_timeout
        self.rejected = list(rejected or [])
        self.plan: Optional[ColumnPlan] = None
        """Names and types of new API fields for every project: the one `start` is given."""
        self.endpoint = endpoint
        self.filters = filters
        self.concurrency = concurrency
        self.progress = Progress(
            total=len(targets) + len(self.rejected), done=len(self.rejected), failed=len(self.rejected)
        )
        self._on_progress = on_progress
        self.gate = CpuGate(concurrency)
        """How many of the `concurrency` threads fetch at a time."""
        self.limiters = Limiters(rate_limits)
        """One limiter per account, paced from the start at its `rate_limit` when `rate_limits` has one."""
        self.sessions = ThreadSessions(max_answer_bytes, self.limiters)
        """One session per fetching thread, with dlt's `[runtime]` settings (retries, timeouts) resolved once,
        answers read no further than `max_answer_bytes`, decoded, and each project at its account's pace."""
        self.turns = AccountTurns([target.project.account for target in targets])
        """Which project a free thread takes: one of the account it fetches least, so accounts go side by side."""
        self._lock = threading.Lock()
        self._futures: List[Future[ProjectOutcome]] = []
        self._outcomes: Dict[int, ProjectOutcome] = {}
        self._executor: Optional[ThreadPoolExecutor] = None
        self._probes: Dict[str, _Probe] = {}
        self._probe_targets: Dict[str, int] = {}
        for index, target in enumerate(targets):
            if target.probe_group and target.probe_group not in self._probes:
                self._probes[target.probe_group] = _Probe()
                self._probe_targets[target.probe_group] = index

    def start(self, plan: Optional[ColumnPlan] = None) -> None:
        """Submit every project (once), their new API fields named and typed by `plan` (a plan of
        their own for each when None)."""
        with self._lock:
            if self._executor is not None:
                return
            self.plan = plan
            self._executor = ThreadPoolExecutor(
                max_workers=max(1, min(self.concurrency, len(self.targets))),
                thread_name_prefix="workspace_images",
            )
            logger.info("fetching %d project(s), %d at a time", len(self.targets), self.concurrency)
            if self._on_progress:
                self._on_progress(self.progress)
            self._futures = [self._executor.submit(self._fetch) for _ in self.targets]
            self._executor.shutdown(wait=False)

    def _fetch_one(self, target: Target) -> ProjectOutcome:
        with self.gate:
            return fetch_project(
                target.project, self.endpoint, target.auth, self.filters, self.project_timeout, self.plan,
                self.sessions,
            )

    def _fetch_gated(self, index: int) -> ProjectOutcome:
        target = self.targets[index]
        probe = self._probes.get(target.probe_group or "")
        if probe is None:
            return self._fetch_one(target)
        if self._probe_targets[target.probe_group or ""] == index:
            try:
                outcome = self._fetch_one(target)
                if outcome.http_status == 401:
                    probe.rejection = outcome
                return outcome
            finally:
                probe.done.set()
        probe.done.wait()
        if probe.rejection is None:
            return self._fetch_one(target)
        first = probe.rejection
        return ProjectOutcome(
            project=target.project,
            http_status=first.http_status,
            error_code=first.error_code,
            error_msg=(
                f"not sent: the gateway refused account {target.project.account}'s AK/SK on project "
                f"{first.project}: {first.error_msg}"
            ),
            finished_at=datetime.now(timezone.utc),
        )

    def _fetch(self) -> ProjectOutcome:
        """Fetch the project whose turn it is (each call takes one)."""
        index = self.turns.take()
        try:
            outcome = self._fetch_gated(index)
        finally:
            self.turns.done(index)
        with self._lock:
            self._outcomes[index] = outcome
            progress = self.progress
            progress.done += 1
            progress.images += outcome.images
            progress.retries += outcome.retries
            progress.failed += 0 if outcome.ok else 1
            progress.throttling = self.limiters.stats()
            if self._on_progress:
                self._on_progress(progress)
        return outcome

    def completed(self, plan: Optional[ColumnPlan] = None) -> Iterator[ProjectOutcome]:
        """Start the fetch (`start(plan)`) and yield outcomes as their projects finish."""
        self.start(plan)
        for future in as_completed(self._futures):
            yield future.result()

    def finished(self) -> bool:
        """Whether the fetch started and every project is done (it does not wait)."""
        with self._lock:
            return self._executor is not None and all(future.done() for future in self._futures)

    def outcomes(self) -> List[ProjectOutcome]:
        """Every outcome: the rejected projects, then the targets in the order given (waits for all)."""
        self.start()
        for future in self._futures:
            future.result()
        return self.rejected + [self._outcomes[index] for index in range(len(self.targets))]
