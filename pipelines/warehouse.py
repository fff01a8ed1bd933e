"""Where the history lives: a DuckDB file or another dlt destination, and one SQL session with it."""

from __future__ import annotations

import hashlib
import os
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple

import dlt
import duckdb
import pyarrow as pa
from dlt.common.destination import AnyDestination, Destination, TLoaderFileFormat
from dlt.common.destination.client import DestinationClientDwhConfiguration
from dlt.common.destination.exceptions import DestinationException
from dlt.common.configuration.exceptions import ConfigFieldMissingException
from dlt.common.exceptions import MissingDependencyException
from dlt.destinations.impl.duckdb.configuration import DuckDbCredentials

from .errors import RunFailed, UsageError, first_line
from .locking import LockHeld, LockUnsafe, RunLock, is_lock_conflict
from .modelsql import dialect_of

PIPELINE_NAME = "workspace_images"
DATASET_NAME = "workspace_images"
DUCKDB = "duckdb"
DEFAULT_DB = "images.duckdb"
CATALOG = "workspace_images_file"
"""The catalog name a DuckDB file is opened under, whatever the file is called. DuckDB names a
file's catalog after the file (`workspace_images.duckdb` -> `workspace_images`), and a catalog
named like one of its schemas makes every `schema.table` ambiguous ("Ambiguous reference to
catalog or schema"): so the file is attached under this name instead, which no schema of ours
takes."""
SQL_DESTINATIONS = {
    "duckdb", "motherduck", "postgres", "redshift", "snowflake", "bigquery", "mssql", "synapse",
    "databricks", "clickhouse", "athena", "dremio", "sqlalchemy", "fabric", "ducklake",
}
"""dlt destinations with a SQL client, which the run log read-back and the models need."""
WORKDIR = ".workspace_images"
"""dlt's working folders live under this folder: beside the DuckDB file, or in the current
folder for another destination; never dlt's machine-wide default."""

TIDY_DEFAULTS = {
    "LOAD__TRUNCATE_STAGING_DATASET": "true",
    "LOAD__DELETE_COMPLETED_JOBS": "true",
    "DESTINATION__DUCKDB__CREDENTIALS__GLOBAL_CONFIG": '{"memory_limit": "128MB"}',
}
"""dlt settings this tool changes unless the user sets them: the staging schema
(`workspace_images_staging`) is emptied after each load instead of keeping the last
rows for dashboards to trip on, and a loaded package keeps its record (for
`dlt pipeline ... info/trace`) but not its data files, which would pile up forever; and
DuckDB's memory for the load's merge is held to 128 MB (it spills to `<db>.tmp/` beyond),
so that a load's peak memory stays flat as the history grows (DuckDB's own default is 80%
of the machine's memory)."""


@dataclass(frozen=True)
class Target:
    """Where a run loads: `destination` is a dlt destination (`duckdb`, `postgres`, `motherduck`,
    `bigquery`...); `db_path` the file when it is DuckDB. Credentials of the others come from
    dlt's configuration (`DESTINATION__POSTGRES__CREDENTIALS`, `.dlt/secrets.toml`)."""

    destination: str = DUCKDB
    db_path: Optional[Path] = None
    dataset: str = DATASET_NAME
    kind: str = DUCKDB
    """The destination's type (`postgres` for a destination named `warehouse` of that type)."""

    @property
    def is_file(self) -> bool:
        """Whether the history is a local DuckDB file (locks, waits and storage versions apply)."""
        return self.db_path is not None

    @property
    def file_missing(self) -> bool:
        """Whether the history is a DuckDB file that does not exist (yet): nothing was loaded."""
        return self.db_path is not None and not self.db_path.exists()

    @property
    def dialect(self) -> str:
        """The SQL dialect the models are written in for this destination."""
        return dialect_of(self.kind)

    @property
    def label(self) -> str:
        """How messages name it: the file, or `postgres dataset workspace_images`."""
        return str(self.db_path) if self.is_file else f"{self.destination} dataset {self.dataset}"

    @classmethod
    def of(cls, destination: Optional[str], db_path: Optional[Path], dataset: str = DATASET_NAME) -> "Target":
        """The target of a run: `destination` (None or `duckdb` for the file `db_path`), its type
        looked up among dlt's destinations and named destinations (`[destination.NAME]`).

        Raises:
            ValueError: dlt knows no such destination, or `db_path` is given with another.
        """
        name = (destination or DUCKDB).strip()
        if name == DUCKDB:
            path = Path(db_path) if db_path is not None else Path(DEFAULT_DB)
            if "\\" in os.path.abspath(path) or "\\" in os.path.realpath(path):
                raise ValueError(f"--db {path}: DuckDB reads a \\ in a file's path as a folder separator, so it "
                                 "would open another file; use a path without one")
            return cls(DUCKDB, path, dataset, DUCKDB)
        if db_path is not None:
            raise ValueError(f"--db is the DuckDB file; with destination {name} leave it out "
                             "(the destination's credentials say where the data goes)")
        try:
            kind = destination_of(name).destination_type.rsplit(".", 1)[-1]
        except DestinationException:
            raise ValueError(
                f"destination {name!r} is not a dlt destination (duckdb, postgres, motherduck, bigquery, "
                "snowflake, ...) nor a named one ([destination.NAME] destination_type = ...)"
            ) from None
        except MissingDependencyException as exc:
            raise ValueError(f"destination {name} needs a package this installation lacks: "
                             f"{first_line(exc)}") from None
        if kind == "filesystem" or kind not in SQL_DESTINATIONS:
            raise ValueError(f"destination {name} ({kind}) is not a SQL database: the history needs one "
                             f"({', '.join(sorted(SQL_DESTINATIONS))})")
        return cls(name, None, dataset, kind)

    def check_configuration(self) -> None:
        """Resolve the destination's settings now, so a missing or unreadable one stops the run
        before anything is fetched. The message never repeats a value: it may hold a password.

        Raises:
            ValueError: a setting is missing or cannot be read.
        """
        if self.is_file:
            return
        env = f"DESTINATION__{self.destination.upper()}__CREDENTIALS"
        how = (f"set them the dlt way: {env}=postgresql://USER:PASSWORD@HOST:5432/DATABASE (for postgres) "
               f"or [destination.{self.destination}.credentials] in .dlt/secrets.toml")
        try:
            destination = destination_of(self.destination)
            initial = destination.spec()
            if isinstance(initial, DestinationClientDwhConfiguration):  # every SQL destination's is
                initial.dataset_name = self.dataset
            destination.configuration(initial)
        except ConfigFieldMissingException as exc:
            raise ValueError(f"destination {self.destination}: missing {', '.join(exc.fields)}; {how}") from None
        except Exception as exc:
            raise ValueError(f"destination {self.destination}: its credentials cannot be read "
                             f"({exc.__class__.__name__}; not a connection URL?); {how}") from None

    @property
    def loader_file_format(self) -> Optional[TLoaderFileFormat]:
        """The load file format when dlt's own choice would change the data: on PostgreSQL, dlt
        loads Arrow tables through CSV with `FORCE_NULL`, which turns empty strings into NULL;
        INSERT statements keep them apart."""
        return "insert_values" if self.kind == "postgres" else None

    def default_pipelines_dir(self) -> Path:
        """dlt's working folder: `.workspace_images/<file name>` beside a DuckDB file, else
        `.workspace_images/<destination>-<dataset>` in the current folder. A file reached through
        a symbolic link has the folder of the file it leads to, as it has its lock: one database,
        one working folder, whichever path names it. dlt formats its files' paths with `%`, so a
        file name with a `%` gets a folder without: `_` for each, and a hash of the name to keep it
        apart from its neighbours."""
        if self.db_path is not None:
            real = self.db_path.resolve()
            name = real.name
            if "%" in name:
                name = f"{name.replace('%', '_')}-{hashlib.sha256(name.encode()).hexdigest()[:8]}"
            return real.parent / WORKDIR / name
        return Path.cwd() / WORKDIR / f"{self.destination}-{self.dataset}"

    def lock_anchor(self, pipelines_dir: Path) -> Path:
        """The path whose `.lock` sibling serialises runs: the DuckDB file, else dlt's working
        folder (runs of one destination from one machine share it)."""
        return self.db_path if self.db_path is not None else pipelines_dir

    def pipeline(self, pipelines_dir: Optional[Path] = None) -> dlt.Pipeline:
        """The `workspace_images` dlt pipeline loading here."""
        for name, value in TIDY_DEFAULTS.items():
            if name not in os.environ and dlt.config.get(name.lower().replace("__", ".")) is None:
                os.environ[name] = value  # the user's own setting, anywhere dlt reads one, wins
        destination: Any = (dlt.destinations.duckdb(str(self.db_path.resolve())) if self.db_path is not None
                            else self.destination)
        return dlt.pipeline(
            pipeline_name=PIPELINE_NAME,
            destination=destination,
            dataset_name=self.dataset,
            pipelines_dir=str(pipelines_dir or self.default_pipelines_dir()),
        )


def destination_of(name: str) -> AnyDestination:
    """dlt's destination `name`: a destination type (`postgres`) or a named destination
    (`[destination.NAME] destination_type = ...`).

    Raises:
        DestinationException: dlt knows no such destination (dlt's own lookup gives None only
            for no name at all).
        MissingDependencyException: the destination needs a package this installation lacks.
    """
    destination = Destination.from_reference(name)
    if destination is None:
        raise DestinationException(f"no destination named {name!r}")
    return destination


class Session:
    """One SQL connection to a target: DuckDB's own, or the SQL client dlt has for the destination."""

    def __init__(self, dialect: str, connection: Any, dlt_client: bool) -> None:
        self.dialect = dialect
        self._con = connection
        self._dlt = dlt_client

    def execute(self, sql: str) -> None:
        """Run a statement whose result is not needed."""
        if self._dlt:
            self._con.execute_sql(sql)
        else:
            self._con.execute(sql)

    def fetch(self, sql: str) -> Tuple[List[str], List[tuple]]:
        """Run a query: its column names and its rows."""
        if self._dlt:
            with self._con.execute_query(sql) as cursor:
                names = [d[0] for d in cursor.description]
                return names, [tuple(row) for row in cursor.fetchall()]
        cursor = self._con.execute(sql)
        return [d[0] for d in cursor.description], cursor.fetchall()

    def value(self, sql: str) -> Any:
        """The first column of the first row of a query."""
        return self.fetch(sql)[1][0][0]

    @contextmanager
    def stream(self, sql: str, size: int) -> Iterator[Tuple[List[str], Iterator[List[tuple]]]]:
        """Run a query whose result may be large: its column names, and its rows `size` at a time."""
        if self._dlt:
            with self._con.execute_query(sql) as cursor:
                yield [d[0] for d in cursor.description], iter(lambda: list(cursor.fetchmany(size)), [])
            return
        cursor = self._con.execute(sql)
        yield [d[0] for d in cursor.description], iter(lambda: cursor.fetchmany(size), [])

    def arrow(self, sql: str, size: int) -> Optional[pa.RecordBatchReader]:
        """The result of a query as Arrow batches of `size` rows, where the connection gives them
        (DuckDB's); None where the rows are read as tuples (`stream`)."""
        return None if self._dlt else self._con.sql(sql).to_arrow_reader(size)

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Everything inside commits together or not at all."""
        if self._dlt:
            with self._con.begin_transaction():
                yield
            return
        self._con.execute("begin transaction")
        try:
            yield
        except BaseException:
            self._con.execute("rollback")
            raise
        self._con.execute("commit")

    def table_exists(self, schema: str, table: str) -> bool:
        return bool(self.value(
            f"select count(*) from information_schema.tables where table_schema = {literal(schema)} "
            f"and table_name = {literal(table)}"
        ))

    def columns(self, schema: str) -> List[Tuple[str, str, str]]:
        """(table, column, data type) of every column in `schema`, in table order."""
        return [tuple(r) for r in self.fetch(
            "select table_name, column_name, data_type from information_schema.columns "
            f"where table_schema = {literal(schema)} order by table_name, ordinal_position"
        )[1]]


@contextmanager
def connect(target: Target, read_only: bool = False, pipeline: Optional[dlt.Pipeline] = None,
            pipelines_dir: Optional[Path] = None) -> Iterator[Session]:
    """A session with `target`, in UTC: DuckDB's own connection to the file (`read_only` for
    readers), or dlt's SQL client of the destination."""
    if target.db_path is not None:
        with open_file(target.db_path, read_only=read_only) as con:
            con.execute("set TimeZone = 'UTC'")
            yield Session(DUCKDB, con, dlt_client=False)
        return
    pipeline = pipeline or target.pipeline(pipelines_dir)
    with pipeline.sql_client() as client:
        session = Session(target.dialect, client, dlt_client=True)
        if target.dialect in ("postgres", "redshift"):
            session.execute("set time zone 'UTC'")
        yield session


def open_file(db_path: Path, read_only: bool = False,
              config: Optional[Dict[str, Any]] = None) -> duckdb.DuckDBPyConnection:
    """A connection to the DuckDB file `db_path` (created when missing, unless `read_only`),
    attached under the catalog name CATALOG and made the default one, so that `schema.table`
    means the same in a file of any name.

    `config` is DuckDB's connection configuration (e.g. `storage_compatibility_version`, which
    sets the storage version of a file this creates). A symbolic link is followed here, so that
    the file's WAL (`<db>.wal`) lies beside the file whichever path names it, as dlt's own opening
    does. DuckDB spills to `<db>.tmp/` beside the file, as it does for a file opened by name.
    Another process holding the file raises DuckDB's lock error from the attach, as from a connect.
    """
    real = Path(db_path).resolve()
    con = duckdb.connect(":memory:", config=config or {})
    try:
        con.execute(f"set temp_directory = {literal(str(real) + '.tmp')}")
        con.execute(f"attach {literal(str(real))} as {CATALOG}{' (read_only)' if read_only else ''}")
        con.execute(f"use {CATALOG}")
    except BaseException:
        con.close()
        raise
    return con


DUCKDB_CONNECT_SETTINGS = ("custom_user_agent",)
"""Settings of `[destination.duckdb.credentials] global_config` that DuckDB takes only when it
connects; the others are set on the connection by dlt."""


@contextmanager
def dlt_opens_file(target: Target, pipeline: dlt.Pipeline, read_only: bool = False) -> Iterator[None]:
    """dlt's steps inside this block reach the DuckDB file through one connection of ours
    (`read_only` for steps that only read, such as restoring dlt's state from it).

    The file is opened once (`open_file`, so its catalog never clashes with a schema) and
    handed to dlt as the destination's credentials, as `Pipeline.load(credentials=...)` does;
    dlt's workers use cursors of it and never close it, so a load's jobs share one opening
    (dlt's own would open and write out the file around each job). Closed, and dlt's own
    credentials back, when the block ends. Nothing changes for another destination.
    """
    if target.db_path is None:
        yield
        return
    # the settings dlt resolved for its own connection (global_config: the memory cap, the user's own),
    # read from a client that is not entered, so nothing opens the file but `open_file`
    credentials = pipeline.destination_client().config.credentials
    settings = dict(getattr(credentials, "global_config", None) or {})
    try:
        con = open_file(target.db_path, read_only=read_only,
                        config={k: v for k, v in settings.items() if k in DUCKDB_CONNECT_SETTINGS})
    except duckdb.Error as exc:
        if is_lock_conflict(exc):
            raise  # another program holds it: waited for by the caller
        raise RunFailed(f"cannot open {target.label}: {first_line(exc)}") from None
    params = pipeline.destination.config_params
    own = params.get("credentials")
    params["credentials"] = DuckDbCredentials(con, global_config=settings, local_config={"schema": CATALOG})
    try:
        yield
    finally:
        params["credentials"] = own
        con.close()


def literal(text: str) -> str:
    """`text` as a SQL string literal."""
    return "'" + str(text).replace("'", "''") + "'"


class Unreachable(Exception):
    """The destination refused the connection or could not be reached (exit 3)."""


def unreachable(target: Target, exc: BaseException) -> Unreachable:
    """The Unreachable error of a failure to connect to `target`: the driver's words (they name
    the host and user, never the password)."""
    cause = exc
    while (deeper := getattr(cause, "dbapi_exception", None) or cause.__cause__) is not None:
        cause = deeper
    return Unreachable(f"cannot connect to {target.label}: {first_line(cause)}")


@contextmanager
def reach(target: Target, pipeline: dlt.Pipeline) -> Iterator[Any]:
    """dlt's SQL client of `target`, connected; a failure to connect is one Unreachable line
    (the driver's words: they name the host and user, never the password)."""
    client = pipeline.sql_client()
    try:
        client.open_connection()
    except Exception as exc:
        raise unreachable(target, exc) from None
    try:
        yield client
    finally:
        client.close_connection()


ADVISORY_LOCK = "workspace_images:{dataset}"
"""The PostgreSQL advisory lock key (hashed with `hashtext`) of a dataset's runs."""


@contextmanager
def _run_lock(anchor: Path, what: str) -> Iterator[None]:
    """RunLock on `anchor`; a lock file that is not safe to take is a usage error (exit 2)."""
    try:
        lock = RunLock(anchor, what).acquire()
    except LockUnsafe as exc:
        raise UsageError(str(exc)) from None
    try:
        yield
    finally:
        lock.release()


@contextmanager
def hold(target: Target, pipelines_dir: Path, what: str = "run") -> Iterator[None]:
    """The run lock of `target`, for a whole run or models build: `<db>.lock` beside a DuckDB
    file; for another destination `<working folder>.lock`, and on PostgreSQL also a session
    advisory lock on the dataset, so runs from other machines or working folders into the
    same dataset wait their turn too. Both go when the process ends, however it ends.

    Raises:
        LockHeld: another run holds one of them; nothing was done.
    """
    if not target.is_file:
        pipelines_dir.parent.mkdir(parents=True, exist_ok=True)
    with _run_lock(target.lock_anchor(pipelines_dir), what):
        if target.kind != "postgres":
            yield
            return
        key = literal(ADVISORY_LOCK.format(dataset=target.dataset))
        with reach(target, target.pipeline(pipelines_dir)) as client:
            if not client.execute_sql(f"select pg_try_advisory_lock(hashtext({key}))")[0][0]:
                holder = client.execute_sql(
                    "select a.pid, coalesce(host(a.client_addr), 'local'), a.backend_start from pg_locks l "
                    "join pg_stat_activity a on a.pid = l.pid where l.locktype = 'advisory' and l.granted "
                    f"and l.objid = (hashtext({key})::bigint & 4294967295)::oid limit 1"
                )
                who = (f" (server process {holder[0][0]}, from {holder[0][1]}, connected "
                       f"{holder[0][2]:%Y-%m-%d %H:%M:%S%z})") if holder else ""
                raise LockHeld(f"another workspace-images run holds the lock of {target.label}{who}: "
                               "nothing was done; run again when it has finished")
            try:
                yield
            finally:
                client.execute_sql(f"select pg_advisory_unlock(hashtext({key}))")
