"""A throwaway PostgreSQL: Debian's server (`make system-deps`) in a temporary folder, on a free
loopback port, run as the unprivileged ``postgres`` user when started as root; the package's own
"main" cluster (port 5432) plays no part. For the tests, one server for the session and a fresh
database holding the capture tables for each test that asks; the capture row of `make bench`
starts its own with ``capture_database``.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from bench.servers import free_port

BIN = Path("/usr/lib/postgresql/15/bin")
USER = "churn"


def as_postgres() -> list[str]:
    # initdb and the server refuse to run as root.
    return ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []


@dataclass
class Postgres:
    folder: Path
    port: int
    password: str

    @property
    def data(self) -> Path:
        return self.folder / "data"

    def url(self, database: str = "postgres", password: str | None = None) -> str:
        secret = self.password if password is None else password
        return f"postgresql://{USER}:{secret}@127.0.0.1:{self.port}/{database}"

    def pg_ctl(self, *args: str) -> None:
        command = [*as_postgres(), str(BIN / "pg_ctl"), "-D", str(self.data), *args]
        subprocess.run(command, check=True, capture_output=True, timeout=120)

    def start(self) -> None:
        options = (
            f"-k {self.folder} -p {self.port} -c listen_addresses=127.0.0.1 "
            # Throwaway data: no waiting for the disk.
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        )
        self.pg_ctl("-l", str(self.folder / "server.log"), "-w", "-o", options, "start")

    def stop(self) -> None:
        self.pg_ctl("-m", "fast", "-w", "stop")

    def create_database(self) -> str:
        """A new, empty database; its URL."""
        name = "t_" + secrets.token_hex(6)
        with psycopg.connect(self.url(), autocommit=True) as connection:
            connection.execute(f"CREATE DATABASE {name}")  # a name of hex digits only
        return self.url(name)

    def capture_database(self) -> str:
        """A new database holding the capture tables; its URL."""
        from churn.outcomes.__main__ import main

        url = self.create_database()
        if main(["init", "--database", url]) != 0:
            raise RuntimeError("python -m churn.outcomes init failed")
        return url


@contextmanager
def started() -> Iterator[Postgres]:
    """A new server, initialised and running until the block ends."""
    if not (BIN / "initdb").exists():
        raise RuntimeError("PostgreSQL 15 is not installed: run `make system-deps`")
    folder = Path(tempfile.mkdtemp(prefix="churn-postgres-"))
    server = Postgres(folder, free_port(), secrets.token_hex(12))
    password_file = folder / "password"
    password_file.write_text(server.password)
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres", "postgres")
        shutil.chown(password_file, "postgres", "postgres")
    initdb = [*as_postgres(), str(BIN / "initdb"), "-D", str(server.data), "-U", USER,
              f"--pwfile={password_file}", "--auth-local=trust", "--auth-host=scram-sha-256",
              "-E", "UTF8", "--no-sync"]  # fmt: skip
    subprocess.run(initdb, check=True, capture_output=True, timeout=120)
    server.start()
    try:
        yield server
    finally:
        try:
            server.stop()
        finally:
            shutil.rmtree(folder, ignore_errors=True)


@contextmanager
def capture_database(work: Path) -> Iterator[dict[str, str]]:
    """A server with the capture tables: the environment that turns capture on (`make bench`)."""
    with started() as server:
        yield {"CAPTURE_DATABASE_URL": server.capture_database()}


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    try:
        with started() as server:
            yield server
    except RuntimeError as error:  # not installed
        pytest.fail(str(error))


@pytest.fixture()
def database(postgres: Postgres) -> str:
    """A fresh database holding the capture tables; its URL."""
    return postgres.capture_database()
