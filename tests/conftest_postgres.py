"""PostgreSQL for the tests: a server given by URL, or a throwaway cluster started here.

``postgres_server`` (session scope; import it into the test module) answers a
:class:`PostgresServer`. With ``PAYSTAB_TEST_POSTGRES_URL`` set (a superuser's
``postgresql://user:pass@host:port/db``) that server is used and nothing is started.
Otherwise Debian's ``postgresql`` binaries (``initdb``, ``postgres``; on PATH or under
``/usr/lib/postgresql/N/bin``) make a cluster in a fresh temp dir, listening on
127.0.0.1:<free port> only (no Unix socket outside its own dir), with ``trust`` auth for
loopback, fsync off (it is thrown away), and stop it at the end of the session. PostgreSQL
refuses to run as root: as root the cluster belongs to the ``postgres`` user (the Debian
package creates it), or to ``nobody``. Missing binaries skip the test, and fail it under
``CI=true`` (``scripts/setup.sh --system`` installs ``postgresql``).

Each test that wants its own database calls :meth:`PostgresServer.create_database`.
Not a pytest conftest (the lead owns tests/conftest.py): tests import it.
"""

from __future__ import annotations

import glob
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.conftest import require

URL_ENV = "PAYSTAB_TEST_POSTGRES_URL"
SUPERUSER = "paystab"


def find_postgres_bin() -> Path | None:
    """The directory holding ``initdb`` and ``postgres``: PATH first, then Debian's."""
    on_path = shutil.which("initdb")
    if on_path:
        return Path(os.path.realpath(on_path)).parent
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda p: int(re.sub(r"\D", "", p.split("/")[4]) or 0))
    return Path(found[-1]).parent if found else None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class PostgresServer:
    """Where the server answers; ``url`` names a database on it (SQLAlchemy/libpq form)."""

    host: str
    port: int
    user: str
    password: str = ""

    def url(self, database: str = "postgres") -> str:
        auth = self.user + (f":{self.password}" if self.password else "")
        return f"postgresql://{auth}@{self.host}:{self.port}/{database}"

    def create_database(self, prefix: str = "t") -> str:
        """A new empty database; answers its URL."""
        import psycopg

        name = f"{prefix}_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(self.url(), autocommit=True, connect_timeout=10) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)


class _Cluster:
    """A throwaway cluster: ``initdb`` then ``postgres`` as a child that dies with us."""

    def __init__(self, bin_dir: Path) -> None:
        self.bin_dir = bin_dir
        self.data_dir = Path(tempfile.mkdtemp(prefix="paystab-pg-"))
        self.owner: pwd.struct_passwd | None = None
        if os.geteuid() == 0:  # postgres refuses root: the cluster is the postgres user's
            for name in ("postgres", "nobody"):
                try:
                    self.owner = pwd.getpwnam(name)
                    break
                except KeyError:
                    continue
            if self.owner is None:
                raise RuntimeError("running as root and neither user postgres nor nobody exists")
            os.chown(self.data_dir, self.owner.pw_uid, self.owner.pw_gid)
        self.log_path = self.data_dir / "server.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0

    def _as_owner(self) -> dict[str, object]:
        if self.owner is None:
            return {}
        return {"user": self.owner.pw_uid, "group": self.owner.pw_gid, "extra_groups": []}

    def start(self) -> PostgresServer:
        pgdata = self.data_dir / "data"
        subprocess.run([str(self.bin_dir / "initdb"), "-D", str(pgdata), "-U", SUPERUSER,
                        "--auth=trust", "--no-locale", "-E", "UTF8", "--no-sync"],
                       check=True, capture_output=True, timeout=120, cwd=self.data_dir,
                       **self._as_owner())  # type: ignore[call-overload]
        for _attempt in range(3):  # a free port can be taken between probe and bind
            self.port = _free_port()
            if self._run_server(pgdata):
                return PostgresServer("127.0.0.1", self.port, SUPERUSER)
        raise RuntimeError(f"postgres did not start: {self.log_tail()}")

    def _run_server(self, pgdata: Path) -> bool:
        from paystab.children import spawn

        log = open(self.log_path, "ab")  # noqa: SIM115 - the child keeps it; closed in stop()
        self.proc = spawn(
            [str(self.bin_dir / "postgres"), "-D", str(pgdata), "-p", str(self.port),
             "-c", "listen_addresses=127.0.0.1", "-c", f"unix_socket_directories={self.data_dir}",
             "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
             "-c", "max_connections=200", "-c", "shared_buffers=32MB"],
            what="test postgres", death_signal=signal.SIGQUIT, stdout=log, stderr=log,
            cwd=self.data_dir, **self._as_owner())
        log.close()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            if self._answers():
                return True
            time.sleep(0.1)
        self.stop()
        return False

    def _answers(self) -> bool:
        import psycopg

        try:
            with psycopg.connect(host="127.0.0.1", port=self.port, user=SUPERUSER,
                                 dbname="postgres", connect_timeout=2):
                return True
        except psycopg.OperationalError:
            return False

    def log_tail(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-3000:]
        except OSError:
            return ""

    def stop(self) -> None:
        from paystab.children import forget

        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)  # fast shutdown: roll back, disconnect
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        if self.proc is not None:
            forget(self.proc)
        shutil.rmtree(self.data_dir, ignore_errors=True)


def _given_server(url: str) -> PostgresServer:
    parts = urlsplit(url)
    if parts.scheme not in ("postgresql", "postgres") or not parts.hostname:
        raise pytest.UsageError(f"{URL_ENV} must be postgresql://user:pass@host:port/db")
    return PostgresServer(parts.hostname, parts.port or 5432, parts.username or "postgres",
                          parts.password or "")


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    given = os.environ.get(URL_ENV)
    if given:
        yield _given_server(given)
        return
    bin_dir = find_postgres_bin()
    require("PostgreSQL (initdb, postgres)", bin_dir is not None, "apt-get install postgresql")
    pytest.importorskip("psycopg") if os.environ.get("CI") != "true" else __import__("psycopg")
    assert bin_dir is not None
    cluster = _Cluster(bin_dir)
    try:
        yield cluster.start()
    finally:
        cluster.stop()
