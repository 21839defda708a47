"""Shared fixtures.  PostgreSQL tests run when a server answers, and say so loudly when not."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings

from rerate.bootstrap import App
from tests.factories import small_world

# No property test has a time limit: a deadline is a wall-clock assertion, and a loaded machine
# (CI beside another job) would fail an example that is merely slow.
settings.register_profile("rerate", deadline=None)
settings.load_profile("rerate")

PG_URL = os.environ.get("RERATE_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
_pg_skip_reason: list[str] = []


@pytest.fixture
def world(tmp_path: Path) -> Iterator[App]:
    app = small_world(tmp_path / "home")
    yield app
    app.close()


@pytest.fixture(scope="session")
def postgres_server() -> str:
    """URL of the PostgreSQL admin database, or a loud skip."""
    import sqlalchemy

    engine = sqlalchemy.create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            connection.execute(sqlalchemy.text("SELECT 1"))
    except Exception as exc:  # any failure to reach the server means: skip, loudly
        reason = f"PostgreSQL not reachable at {PG_URL}: {type(exc).__name__}"
        _pg_skip_reason.append(reason)
        pytest.skip(reason)
    finally:
        engine.dispose()
    return PG_URL


@pytest.fixture
def postgres_url(postgres_server: str) -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test, dropped afterwards."""
    import sqlalchemy

    name = f"rerate_test_{uuid.uuid4().hex[:12]}"
    admin = sqlalchemy.create_engine(postgres_server, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sqlalchemy.text(f'CREATE DATABASE "{name}"'))
    url = postgres_server.rsplit("/", 1)[0] + f"/{name}"
    try:
        yield url
    finally:
        with admin.connect() as connection:
            connection.execute(sqlalchemy.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _pg_skip_reason:
        terminalreporter.section("PostgreSQL NOT TESTED", sep="!", red=True, bold=True)
        terminalreporter.write_line(
            f"{_pg_skip_reason[0]}. The PostgreSQL catalog tests were SKIPPED. "
            "Start a server (scripts/install-postgres.sh) or set RERATE_TEST_PG_URL.",
            red=True,
            bold=True,
        )
