"""A private PostgreSQL server (initdb in a temporary folder), and databases of our own on a shared one.

PostgreSQL refuses to run as root, so ``initdb`` and ``pg_ctl`` run as the ``postgres`` OS
user (through ``runuser``) when the suite runs as root.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse, urlunparse

from .processes import held_port, need_tool


def _postgres_bin() -> Path:
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    found = candidates[-1] if candidates else shutil.which("initdb")
    return Path(need_tool(found, "PostgreSQL (initdb)")).parent


def _as_postgres(command: list[str]) -> list[str]:
    """Run as the postgres OS user when we are root (PostgreSQL refuses to run as root)."""
    if os.geteuid() != 0:
        return command
    return [need_tool(shutil.which("runuser"), "runuser"), "-u", "postgres", "--", *command]


@dataclass
class PrivatePostgres:
    port: int
    folder: Path
    bin: Path

    @property
    def data(self) -> Path:
        return self.folder / "data"

    @property
    def url(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/postgres"

    def _pg_ctl(self, *args: str) -> None:
        result = subprocess.run(
            _as_postgres([str(self.bin / "pg_ctl"), "-D", str(self.data), *args]),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=60,
        )
        if result.returncode != 0:
            log = self.folder / "server.log"
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise AssertionError(f"pg_ctl {args[-1]} failed ({result.returncode}): {result.stdout}\n{tail}")

    def init(self) -> None:
        subprocess.run(
            _as_postgres(
                [str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres", "-A", "trust", "-E", "UTF8"]
                + ["--no-sync", "--no-instructions"]
            ),
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            timeout=120,
        )

    def start(self) -> None:
        options = (
            f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off -c max_connections=60"
        )
        self._pg_ctl("-o", options, "-l", str(self.folder / "server.log"), "-w", "-t", "30", "start")

    def stop(self, mode: str = "fast") -> None:
        """``fast`` ends every client session at once (as a restart or failover does)."""
        self._pg_ctl("-m", mode, "-w", "-t", "30", "stop")

    def running(self) -> bool:
        return (self.data / "postmaster.pid").exists()

    def query(self, sql: str, params: tuple = ()) -> list[tuple]:
        import psycopg2

        connection = psycopg2.connect(host="127.0.0.1", port=self.port, user="postgres", dbname="postgres")
        try:
            with connection, connection.cursor() as cursor:
                cursor.execute(sql, params)
                return cursor.fetchall() if cursor.description else []
        finally:
            connection.close()


@contextlib.contextmanager
def private_postgres() -> Iterator[PrivatePostgres]:
    """A PostgreSQL server of our own on a free port; stopped and removed on the way out."""
    pg_bin = _postgres_bin()
    folder = Path(tempfile.mkdtemp(prefix="penguin-test-pg-"))
    with held_port() as port:
        server = PrivatePostgres(port=port, folder=folder, bin=pg_bin)
        try:
            if os.geteuid() == 0:
                shutil.chown(folder, "postgres", "postgres")
            server.init()
            server.start()
            yield server
        finally:
            if server.running():
                with contextlib.suppress(Exception):
                    server.stop("immediate")
            shutil.rmtree(folder, ignore_errors=True)


# --- a database of our own on a shared server ---------------------------------------------------


def with_database(url: str, name: str) -> str:
    """``url`` pointing at database ``name`` on the same server."""
    return urlunparse(urlparse(url)._replace(path=f"/{name}"))


def database_recreate(url: str, *, drop_only: bool = False) -> None:
    """Drop the database ``url`` names (ending its sessions), then create it empty unless ``drop_only``."""
    import psycopg2
    from psycopg2 import sql

    name = urlparse(url).path.lstrip("/")
    connection = psycopg2.connect(with_database(url, "postgres"), connect_timeout=5)
    connection.autocommit = True
    try:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
                [name],
            )
            cursor.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))
            if not drop_only:
                cursor.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    finally:
        connection.close()


@contextlib.contextmanager
def own_database(server_url: str, name: str) -> Iterator[str]:
    """A fresh database ``name`` on the server of ``server_url``; dropped on the way out. Yields its URL."""
    url = with_database(server_url, name)
    database_recreate(url)
    try:
        yield url
    finally:
        with contextlib.suppress(Exception):
            database_recreate(url, drop_only=True)
