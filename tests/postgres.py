"""PostgreSQL for the tests (bench/postgres.py starts it): one server for the session, and a
fresh database holding the capture tables for each test that asks for one.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bench.postgres import Postgres, started


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
    from churn.outcomes.__main__ import main

    url = postgres.create_database()
    assert main(["init", "--database", url]) == 0
    return url
