"""A real PostgreSQL server for the tests: Debian's package, a new cluster in a temp folder.

PostgreSQL refuses to run as root, so as root the cluster belongs to the `postgres` user
(which the Debian package creates) and lives in a folder that user can reach; otherwise
it runs as the current user. It listens on 127.0.0.1 on a free port, with password
authentication, and is stopped and removed when the context ends.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import List, Optional

from tests.helpers import free_port

USER = "wi_test"
PASSWORD = "pg-secret-7d1e4b-do-not-leak"


def bin_dir() -> Optional[Path]:
    """The newest installed PostgreSQL server's bin folder (Debian: /usr/lib/postgresql/N/bin)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parent.parent.name))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


class PostgresServer:
    """`with PostgresServer() as pg:` a running server; `pg.url(database)` a dlt credentials URL."""

    def __init__(self) -> None:
        found = bin_dir()
        if found is None:
            raise RuntimeError("PostgreSQL is not installed: `make test` installs it (apt-get install postgresql)")
        self.bin = found
        self.port = free_port()
        self.as_user: Optional[str] = "postgres" if os.geteuid() == 0 else None
        # /tmp is reachable by every user; pytest's own temp folders (0700, root's) are not
        self.root = Path(tempfile.mkdtemp(prefix="wi-pg-", dir="/tmp"))
        self.data = self.root / "data"

    def _run(self, args: List[str], **kwargs) -> subprocess.CompletedProcess:
        if self.as_user:
            args = ["runuser", "-u", self.as_user, "--", *args]
        return subprocess.run(args, check=True, capture_output=True, text=True, timeout=120, **kwargs)

    def __enter__(self) -> "PostgresServer":
        if self.as_user:
            entry = pwd.getpwnam(self.as_user)
            os.chown(self.root, entry.pw_uid, entry.pw_gid)
        os.chmod(self.root, 0o700)
        secret = self.root / "pw"
        secret.write_text(PASSWORD)
        if self.as_user:
            os.chown(secret, pwd.getpwnam(self.as_user).pw_uid, -1)
        self._run([str(self.bin / "initdb"), "-D", str(self.data), "-U", USER, "--pwfile", str(secret),
                   "--auth", "scram-sha-256", "-E", "UTF8", "--locale", "C.UTF-8"])
        secret.unlink()
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run([str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.root / "log"),
                   "-o", options, "-w", "start"])
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self._run([str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop"])
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{USER}:{PASSWORD}@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str, icu_locale: Optional[str] = None) -> str:
        """A new empty database, sorting text by the ICU collation of `icu_locale` (e.g. `en-US`)
        when given, else by code point (the cluster's C.UTF-8); its credentials URL."""
        import psycopg2

        collation = f" template template0 locale_provider icu icu_locale '{icu_locale}'" if icu_locale else ""
        con = psycopg2.connect(self.url())
        try:
            con.autocommit = True
            with con.cursor() as cur:
                cur.execute(f'create database "{name}"{collation}')
        finally:
            con.close()
        return self.url(name)
