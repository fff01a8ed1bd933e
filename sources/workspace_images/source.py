"""dlt source for the product images of Huawei Cloud Workspace, across many projects."""

from __future__ import annotations

import uuid
from datetime import datetime, timezone
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence

import dlt
import pyarrow as pa
from dlt.sources import DltResource

from .accounts import Account, DiscoveryFailed, connect_accounts, resolve_accounts
from .config import (
    ConfigError,
    Project,
    check_concurrency,
    check_endpoint,
    check_max_answer_bytes,
    check_max_new_fields,
    check_project_timeout,
    check_rate_limit,
    parse_filters,
)
from .credentials import AccountCredentials, AkSkCredentials, PasswordCredentials, TokenCredentials
from .fetch import ProjectFetcher
from .outcomes import ProjectOutcome, Progress
from .columns import IMAGES_COLUMNS, PLAN_STATE_KEY, ColumnPlan
from .rows import images_table
from .runs import PROJECT_RUNS_COLUMNS, PROJECT_RUNS_KEY, PROJECT_RUNS_WRITE_DISPOSITION, carry_run_log
from .scope import images_write_disposition
from .settings import (
    DEFAULT_CONCURRENCY,
    DEFAULT_ENDPOINT,
    DEFAULT_IAM_ENDPOINT,
    DEFAULT_MAX_ANSWER_BYTES,
    DEFAULT_MAX_NEW_FIELDS,
    DEFAULT_PROJECT_TIMEOUT,
    ORDER_PARAMS,
)

__all__ = [
    "workspace_images",
    "Account",
    "ConfigError",
    "DiscoveryFailed",
    "Project",
    "ProjectOutcome",
    "Progress",
    "TokenCredentials",
    "PasswordCredentials",
    "AkSkCredentials",
    "PROJECT_RUNS_COLUMNS",
    "images_write_disposition",
]

BATCH_ROWS = 10_000
"""Projects' rows go to dlt together once they add up to this many: dlt's work per table is
the same for 500 rows as for 10,000, and 10,000 rows are a few MB."""


@dlt.source(name="workspace_images", max_table_nesting=0)
def workspace_images(
    projects: Optional[List[str]] = dlt.config.value,
    credentials: Optional[AccountCredentials] = dlt.secrets.value,
    endpoint: str = DEFAULT_ENDPOINT,
    iam_endpoint: str = DEFAULT_IAM_ENDPOINT,
    regions: Optional[List[str]] = dlt.config.value,
    filters: Optional[Dict[str, Any]] = dlt.config.value,
    concurrency: int = DEFAULT_CONCURRENCY,
    discover_projects: bool = False,
    accounts: Optional[Dict[str, Any]] = dlt.config.value,
    project_timeout: float = DEFAULT_PROJECT_TIMEOUT,
    max_answer_bytes: int = DEFAULT_MAX_ANSWER_BYTES,
    max_new_fields: int = DEFAULT_MAX_NEW_FIELDS,
    rate_limit: Optional[Any] = None,
    as_of: Optional[datetime] = None,
    run_id: Optional[str] = None,
    on_progress: Optional[Callable[[Progress], None]] = None,
) -> Sequence[DltResource]:
    """Product images of Huawei Cloud Workspace in each configured project.

    dlt injects each setting not passed here from `[sources.workspace_images]`:
    environment variables (`SOURCES__WORKSPACE_IMAGES__<KEY>`), `.dlt/secrets.toml`, then
    `.dlt/config.toml`, which may not hold the secrets of `credentials`. No setting is
    required by itself: a run needs projects (listed, discovered or in `accounts`) and
    credentials for each account, which the checks here ask for by name. Every setting
    is checked before any Workspace request: a bad one raises ConfigError naming it.
    Then each account is connected: with a password, one IAM token request checks it (a
    wrong one raises ConfigError); with discovery, IAM lists the account's projects.

    Args:
        projects: `REGION:PROJECT_ID` strings.
        credentials: Secrets of the default account, one mode: TokenCredentials (a token),
            PasswordCredentials (user name + password + domain name) or AkSkCredentials (an
            AK/SK pair + security token for temporary ones); dlt resolves the first whose keys
            are all set, and a mix or a part of one is refused by name.
        endpoint: Workspace URL template, `{region}` optional.
        iam_endpoint: IAM URL (used for discovery and token-based modes).
        regions: Keep only the projects in these regions.
        filters: API query parameters applied to every page (os_type, image_type, ...).
            Any but `sort_field` and `sort_type` makes the run filtered: it retires only
            the earlier versions of the images it read.
        concurrency: Projects fetched at the same time.
        discover_projects: List the account's projects through IAM (MOS and disabled
            projects skipped; the region is the project name up to its first `_`).
        accounts: More accounts by name, each a table with its own `projects`,
            `discover_projects`, `regions` and `credentials` (a config value, not a
            secret: an account's projects may sit in config.toml, its credentials in
            secrets.toml; see `accounts.resolve_accounts`). A project reached by two
            accounts is read once, by the first: `default`, then `accounts` in their order.
        project_timeout: Seconds one project may take; then it fails with `WI.TIMEOUT`.
        max_answer_bytes: Bytes one answer may hold once decoded (gzip undone); a larger
            one is read no further and fails its project with `WI.ANSWER_TOO_LARGE`.
        max_new_fields: Columns `images` may get for API fields the source does not know,
            in all; a field first seen past them gets none, and its values are kept in
            `raw_values` (with a warning).
        rate_limit: Requests a second each account's Workspace requests keep to, a number above
            0 (an account's own `rate_limit` under `accounts` replaces it for that account). Unset,
            an account goes unpaced until its API gateway answers 429, then at the pace the
            gateway's answers teach (`throttle.AccountLimiter`). A 429 is waited out; a project
            fails on throttling only when its `project_timeout` would pass (`WI.THROTTLED`).
        as_of: Validity timestamp of this load (`_dlt_valid_from` of new versions and
            `_dlt_valid_to` of retired ones); now when not given.
        run_id: Identifies this run in `project_runs`; a new UUID when not given.
        on_progress: Called after each project with the running totals.

    Returns:
        The `images` (SCD2 history) and `project_runs` resources.
    """
    account_list = resolve_accounts(projects, credentials, discover_projects, regions, accounts,
                                    check_rate_limit(rate_limit))
    endpoint = check_endpoint(endpoint, "endpoint")
    iam_endpoint = check_endpoint(iam_endpoint, "iam_endpoint")
    page_filters = parse_filters(filters)
    filtered = any(name not in ORDER_PARAMS for name in page_filters)
    workers = check_concurrency(concurrency)
    budget = check_project_timeout(project_timeout)
    answer_limit = check_max_answer_bytes(max_answer_bytes)
    column_limit = check_max_new_fields(max_new_fields)
    moment = (as_of or datetime.now(timezone.utc)).astimezone(timezone.utc)
    run = run_id or uuid.uuid4().hex
    connect_accounts(account_list, iam_endpoint)
    targets = [target for account in account_list for target in account.targets()]
    rejected = [outcome for account in account_list for outcome in account.rejected]
    if not targets and not rejected:
        raise ConfigError("no projects to load: discovery found none"
                          + (" in the selected regions" if any(a.regions for a in account_list) else ""))
    fetcher = ProjectFetcher(targets, endpoint, page_filters, workers, on_progress, budget, rejected, answer_limit,
                             {account.name: account.rate_limit for account in account_list})
    logged = False  # whether `project_runs` wrote the run log

    @dlt.resource(
        name="images",
        write_disposition=images_write_disposition(moment, []),
        columns=IMAGES_COLUMNS,
    )
    def images() -> Iterator[Any]:
        """One Arrow table per project fetched whole (several together up to BATCH_ROWS rows);
        then the retirement scope of this run. The fetch starts here and ends before the last item.

        New API fields are named and typed by one ColumnPlan for every project of the
        run, seeded from the `images` columns of the schema and the names held in this
        resource's state since earlier runs.

        Yields:
            pyarrow.Table: the images of projects, with project_id, region and fetched_at.
        """
        state = dlt.current.resource_state()
        plan = ColumnPlan.from_schema(
            dlt.current.source_schema(), state.get(PLAN_STATE_KEY), max_columns=column_limit
        )
        loaded: List[str] = []
        batch: List[Any] = []
        batched = 0
        for outcome in fetcher.completed(plan):
            if outcome.ok:
                loaded.append(outcome.project.project_id)
                if outcome.table is not None and outcome.table.num_rows:
                    batch.append(outcome.table)
                    batched += outcome.table.num_rows
            outcome.table = None
            if batched >= BATCH_ROWS:
                yield pa.concat_tables(batch, promote_options="default")
                batch, batched = [], 0
        if batch:
            yield pa.concat_tables(batch, promote_options="default")
        state[PLAN_STATE_KEY] = plan.held_names()
        # an empty table of the known columns carries the retirement scope even when no
        # project brought a row (a project emptied whole must retire its images)
        yield dlt.mark.with_hints(
            images_table([], "", "", moment),
            dlt.mark.make_hints(write_disposition=images_write_disposition(moment, loaded, filtered)),
        )

    @dlt.transformer(  # type: ignore[call-overload]  # dlt types its write_disposition as a name; the dict works
        data_from=images,
        name="project_runs",
        write_disposition=PROJECT_RUNS_WRITE_DISPOSITION,
        primary_key=PROJECT_RUNS_KEY,
        columns=PROJECT_RUNS_COLUMNS,
    )
    def project_runs(_: Any) -> Iterator[Any]:
        """One row per project of this run: ok or failed, counts, the API's error.

        A transformer of `images`: dlt hands it each item `images` yields, in turn, so `images`
        loads each project's rows as they come and this resource writes the run log once with
        the first item that comes after every project is done (at the latest `images`' last
        item, which follows the end of the fetch). It never waits for the fetch.

        Yields:
            dict: `project_runs` rows (named for their table: the item they follow may carry
            the hints of `images`).
        """
        nonlocal logged
        if logged or not fetcher.finished():
            return
        logged = True
        rows = [outcome.run_row(run, moment) for outcome in fetcher.outcomes()]
        carry_run_log(rows)
        yield dlt.mark.with_table_name(rows, "project_runs")

    return images, project_runs
