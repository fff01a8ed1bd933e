"""Constants of the Workspace images source."""

DEFAULT_ENDPOINT = "https://workspace.{region}.myhuaweicloud.com"
"""Regional Workspace endpoint; `{region}` is replaced by the project's region."""

DEFAULT_IAM_ENDPOINT = "https://iam.myhuaweicloud.com"
"""Global IAM endpoint."""

IMAGES_PATH = "/v2/{project_id}/images"
"""The one API this source reads."""

REQUEST_HEADERS = {"Content-Type": "application/json", "User-Agent": "workspace-images/0.1"}
"""Headers of every request; the API reference marks Content-Type mandatory, even on GET."""

PAGE_LIMIT = 100
"""Largest page the API serves."""

DEFAULT_CONCURRENCY = 8
"""Projects fetched at the same time."""

MAX_PAGING_PASSES = 4
"""How often a project is paged again when `total_count` moves while it is paged."""

DEFAULT_SORT = {"sort_field": "created_at", "sort_type": "asc"}
"""Page order: new images are appended at the end, so they shift no earlier offset."""

FILTER_PARAMS = (
    "os_type",
    "image_type",
    "platform",
    "architecture",
    "package_type",
    "image_id",
    "sort_field",
    "sort_type",
)
"""Query parameters a user may set through `filters`."""

ORDER_PARAMS = ("sort_field", "sort_type")
"""Query parameters of `filters` that order the pages and leave out no image."""

KNOWN_STRING_FIELDS = (
    "id",
    "name",
    "image_type",
    "os_type",
    "os_version",
    "disk_format",
    "product_code",
    "architecture",
)
"""ImageInfo fields loaded as text."""

KNOWN_INT_FIELDS = ("min_ram", "min_disk")
"""ImageInfo fields loaded as integers."""

KNOWN_TIMESTAMP_FIELDS = ("created_at",)
"""ImageInfo fields loaded as UTC timestamps."""

ROW_HASH_COLUMN = "_row_hash"
"""Hash of an image's API fields, project and region: a new value is a new version."""

PROJECT_ID_PATTERN = r"[A-Za-z0-9_-]{1,64}"
"""What a project id may contain (it is used in URLs and in SQL)."""

REGION_PATTERN = r"[a-z]{2}(-[a-z0-9]+)+"
"""What a region id looks like, e.g. `cn-north-4`, `ap-southeast-1`, `eu-west-101`."""

# error codes of failures the client detects itself (the API's own codes are kept as they come)
ERR_MALFORMED = "WI.MALFORMED_RESPONSE"
ERR_PAGING_STUCK = "WI.PAGING_STUCK"
ERR_PAGING_UNSTABLE = "WI.PAGING_UNSTABLE"
ERR_CONNECTION = "WI.CONNECTION"
ERR_CREDENTIALS = "WI.CREDENTIALS_REJECTED"
ERR_COUNT_MISMATCH = "WI.COUNT_MISMATCH"
ERR_TIMEOUT = "WI.TIMEOUT"
ERR_THROTTLED = "WI.THROTTLED"
ERR_REDIRECT = "WI.REDIRECT"
ERR_TOKEN_EXPIRED = "WI.TOKEN_EXPIRED"
ERR_INVALID_PROJECT = "WI.INVALID_PROJECT"
ERR_UNEXPECTED = "WI.UNEXPECTED"
ERR_BAD_RECORD = "WI.BAD_RECORD"
ERR_ANSWER_TOO_LARGE = "WI.ANSWER_TOO_LARGE"
ERR_DUPLICATE_ID = "WI.DUPLICATE_ID"
ERR_LOAD_REFUSED = "WI.LOAD_REFUSED"

DEFAULT_PROJECT_TIMEOUT = 900.0
"""Seconds one project may take, all its pages, retries and token renewals included."""

DEFAULT_MAX_ANSWER_BYTES = 16 * 1024 * 1024
"""Bytes one answer may hold once decoded (gzip and deflate undone); a larger one fails its project.
A real page (at most 100 images of a few KB) is well under 1 MB. The run's peak memory grows with
the largest answer it keeps: a 60 MB page of long names took it to 1.25 GB, a 16 MB one to 530 MB."""

MAX_ANSWER_BYTES_RANGE = (1024, 1024 * 1024 * 1024)
"""The smallest and largest `max_answer_bytes` a user may set."""

DEFAULT_MAX_NEW_FIELDS = 200
"""Columns the `images` table may get for API fields the source does not know; a field past them
is kept in `raw_values` only. Each column costs the load memory (DuckDB's ALTER TABLE keeps a copy
of the table's definition per column added): 500 such columns took a run to about 570 MB, 1,000 to
1.3 GB, 2,000 to 3.9 GB."""

MAX_NEW_FIELDS_RANGE = (0, 1000)
"""The smallest and largest `max_new_fields` a user may set."""

READ_CHUNK = 64 * 1024
"""Decoded bytes read from an answer at a time, so that a compressed body is counted as it inflates."""

TOKEN_EXPIRED_CODES = ("APIG.0307", "APIGW.0307")
"""Gateway codes of a 401 that asks for a new IAM token."""

PACKAGE_RUNS_KEY = "workspace_images_runs"
"""Key of a load package's state holding the `project_runs` rows of its run (times as ISO text)."""

SOURCE_SECTION = "sources.workspace_images"
"""Where the source's settings live in dlt's configuration (`SOURCES__WORKSPACE_IMAGES__...`)."""

DEFAULT_ACCOUNT = "default"
"""Name of the account formed by the top-level projects and credentials."""

ACCOUNT_NAME_PATTERN = r"[A-Za-z][A-Za-z0-9_]{0,63}"
"""What an account name may look like (it is a config section and a column value)."""

SKIPPED_PROJECTS = ("MOS",)
"""IAM projects that are not regions (MOS is the billing project)."""

MAX_DISCOVERY_PAGES = 50
"""Pages of an IAM project listing followed at most."""
