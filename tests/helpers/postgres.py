"""A private PostgreSQL cluster for a test: Debian's server, ``initdb`` in a folder of the test.

PostgreSQL refuses to run as root, so under root the cluster belongs to the ``postgres`` user
that Debian's package creates (the folders above the cluster get the search bit for it, and
get their modes back afterwards); under any other user it is that user's. The server listens
on 127.0.0.1 at a free port, its Unix socket lives in the folder too, and it is stopped (fast
shutdown of its process group) when the context ends. Durability is switched off
(``fsync=off``): the cluster is thrown away with the test.

>>> with postgres_cluster(tmp_path / "pg") as pg:
...     uri = pg.create_database("mlflow", owner="mlflow", password="secret")
...     pg.query("select count(*) from runs", database="mlflow")
"""

from __future__ import annotations

import os
import pwd
import signal
import stat
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from tests.helpers.system import HOST, apt_install, free_port, stop_group, tail, wait_for

PACKAGES = ["postgresql"]  # Debian's server of the release's supported version
SUPERUSER = "postgres"
SUPERUSER_PASSWORD = "postgres-test"


def bin_dir(install: bool = True) -> Path:
    """The folder of ``initdb``/``postgres``/``psql`` (Debian: ``/usr/lib/postgresql/N/bin``).

    Installs Debian's ``postgresql`` with apt-get when no server is found (and ``install``).
    """
    for _ in range(2):
        found = sorted(Path("/usr/lib/postgresql").glob("*/bin/postgres"),
                       key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit()
                       else 0)
        if found:
            return found[-1].parent
        if not install:
            break
        apt_install(PACKAGES)
        install = False
    raise RuntimeError("no PostgreSQL server under /usr/lib/postgresql/*/bin "
                       "(`apt-get install postgresql`)")


@dataclass
class Postgres:
    """A running cluster: where it listens, and a few things to do with it."""

    port: int
    bin: Path
    folder: Path
    host: str = HOST
    _databases: list[str] = field(default_factory=list)

    def uri(self, database: str, user: str = SUPERUSER, password: str = SUPERUSER_PASSWORD,
            driver: str = "") -> str:
        """``postgresql[+driver]://user:password@127.0.0.1:port/database``."""
        scheme = f"postgresql+{driver}" if driver else "postgresql"
        return f"{scheme}://{user}:{password}@{self.host}:{self.port}/{database}"

    def psql(self, sql: str, database: str = "postgres") -> subprocess.CompletedProcess:
        """Run ``sql`` with ``psql`` over TCP as the superuser; fail on any SQL error."""
        env = {**os.environ, "PGPASSWORD": SUPERUSER_PASSWORD, "PGCONNECT_TIMEOUT": "10"}
        done = subprocess.run(
            [str(self.bin / "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-At", "-F", "\t",
             "-h", self.host, "-p", str(self.port), "-U", SUPERUSER, "-d", database,
             "-c", sql], env=env, capture_output=True, text=True, timeout=60,
            stdin=subprocess.DEVNULL)
        if done.returncode != 0:
            raise RuntimeError(f"psql {sql!r} on {database} exited with {done.returncode}:\n"
                               f"{done.stderr}")
        return done

    def query(self, sql: str, database: str = "postgres") -> list[tuple[str, ...]]:
        """The rows of a query, each a tuple of the columns' text."""
        out = self.psql(sql, database).stdout
        return [tuple(line.split("\t")) for line in out.splitlines() if line]

    def create_database(self, name: str, owner: str, password: str) -> str:
        """A login role ``owner`` and a database ``name`` it owns; returns its URI."""
        self.psql(f"CREATE ROLE \"{owner}\" LOGIN PASSWORD '{password}'")
        self.psql(f"CREATE DATABASE \"{name}\" OWNER \"{owner}\"")
        return self.uri(name, owner, password)


def _open_for(path: Path, user: pwd.struct_passwd) -> list[tuple[Path, int]]:
    """Give ``user`` the search bit on ``path``'s ancestors it cannot enter; return what to
    restore."""
    changed = []
    for folder in [path, *path.parents]:
        mode = folder.stat().st_mode
        if folder.stat().st_uid == user.pw_uid or mode & stat.S_IXOTH:
            continue
        folder.chmod(mode | stat.S_IXOTH)
        changed.append((folder, stat.S_IMODE(mode)))
    return changed


@contextmanager
def postgres_cluster(folder: Path, timeout: float = 120) -> Iterator[Postgres]:
    """``initdb`` a new cluster in ``folder``, serve it on 127.0.0.1:<free port>, stop it after.

    The superuser ``postgres`` logs in over TCP with :data:`SUPERUSER_PASSWORD`
    (scram-sha-256); local socket connections are trusted. The server's log is
    ``folder/postgres.log``.
    """
    binaries = bin_dir()
    folder.mkdir(parents=True, exist_ok=True)
    data, sockets, log_path = folder / "data", folder / "socket", folder / "postgres.log"
    as_user: dict = {}
    restore: list[tuple[Path, int]] = []
    if os.geteuid() == 0:  # postgres refuses root: run as Debian's postgres user
        try:
            owner = pwd.getpwnam(SUPERUSER)
        except KeyError as err:
            raise RuntimeError("running as root needs the `postgres` user that Debian's "
                               "postgresql package creates") from err
        as_user = {"user": owner.pw_uid, "group": owner.pw_gid, "extra_groups": []}
        restore = _open_for(folder.parent, owner)
    try:
        for path in (folder, sockets):
            path.mkdir(exist_ok=True)
            if as_user:
                os.chown(path, as_user["user"], as_user["group"])
        (folder / "pwfile").write_text(SUPERUSER_PASSWORD + "\n")
        if as_user:
            os.chown(folder / "pwfile", as_user["user"], as_user["group"])
        env = {**os.environ, "LC_ALL": "C.UTF-8", "LANG": "C.UTF-8"}
        init = subprocess.run(
            [str(binaries / "initdb"), "-D", str(data), "-U", SUPERUSER, "-E", "UTF8",
             "--locale=C.UTF-8", "--auth-local=trust", "--auth-host=scram-sha-256",
             f"--pwfile={folder / 'pwfile'}", "--no-sync"],
            cwd=folder, env=env, capture_output=True, text=True, timeout=timeout,
            stdin=subprocess.DEVNULL, **as_user)
        if init.returncode != 0:
            raise RuntimeError(f"initdb exited with {init.returncode}:\n{tail(init.stdout)}\n"
                               f"{tail(init.stderr)}")
        port = free_port()
        cmd = [str(binaries / "postgres"), "-D", str(data),
               "-c", f"listen_addresses={HOST}", "-c", f"port={port}",
               "-c", f"unix_socket_directories={sockets}", "-c", "max_connections=100",
               "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"]
        with open(log_path, "w") as log:
            if as_user:
                os.chown(log_path, as_user["user"], as_user["group"])
            proc = subprocess.Popen(cmd, cwd=folder, env=env, stdout=log,
                                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    start_new_session=True, **as_user)
        try:
            server = Postgres(port=port, bin=binaries, folder=folder)

            def ready() -> bool:
                return subprocess.run(
                    [str(binaries / "pg_isready"), "-q", "-h", HOST, "-p", str(port)],
                    capture_output=True, timeout=10).returncode == 0

            wait_for(ready, timeout, "PostgreSQL", proc=proc, log=log_path)
            yield server
        finally:
            stop_group(proc, signal.SIGINT, timeout=30)  # SIGINT: postgres' fast shutdown
    finally:
        for path, mode in reversed(restore):
            path.chmod(mode)
