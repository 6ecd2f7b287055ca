"""Fixtures shared by every test package.

``postgres_admin_url`` (session): a SQLAlchemy URL for a PostgreSQL server on which the
tests may create databases. It is ``SDE_TEST_POSTGRES_URL`` when that is set; otherwise a
throwaway cluster (``tests/postgres.py``) started the first time a test asks for it and
stopped, its directory removed, when the session ends, pass or fail. Missing server
binaries fail the PostgreSQL cases (never a silent skip) with the command that installs
them.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.postgres import PostgresUnavailable, start_server


@pytest.fixture(scope="session")
def postgres_admin_url() -> Iterator[str]:
    configured = os.environ.get("SDE_TEST_POSTGRES_URL", "")
    if configured:
        yield configured
        return
    try:
        server = start_server()
    except PostgresUnavailable as exc:
        reason = str(exc)
    else:
        try:
            yield server.url
        finally:
            server.stop()
        return
    # Outside the except block, so the report shows the reason alone, not a chained trace.
    pytest.fail(f"PostgreSQL tests cannot run: {reason}", pytrace=False)
