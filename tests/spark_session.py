"""One Spark session for the whole test run: Apache Spark in local mode with delta-spark,
from the jars ``scripts/setup_spark.sh`` fetched into ``.build/spark-jars`` (``./run test``
does; setup with ``SDE_SETUP_SPARK=1`` otherwise). Started the first time a test asks for
it, stopped (its JVM too) when the run ends, pass or fail.

Import the fixture into a test module: ``from tests.spark_session import spark``; every
module that does shares the one session.
Missing jars or a missing pyspark fail the Spark tests with the command that fixes it,
never a silent skip.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from sde.adapters.spark import spark_session, stop
from sde.errors import ConfigError

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

ROOT = Path(__file__).resolve().parent.parent
JARS_DIR = ROOT / ".build" / "spark-jars"
CORES = 2
MEMORY = "1g"

# Each test module that imports the fixture gets its own copy of it (pytest keys fixtures
# by module), so the copies share one session here, stopped when the last one ends.
_shared: list[SparkSession] = []
_users: list[int] = [0]


@pytest.fixture(scope="session")
def spark() -> Iterator[SparkSession]:
    if not _shared:
        try:
            session = spark_session(
                cores=CORES, jars_dir=JARS_DIR, memory=MEMORY, app_name="sde-tests", quick_jit=True
            )
        except ConfigError as exc:
            # pytest.fail outside the except block, so the report shows the reason alone.
            reason = str(exc)
        else:
            reason = ""
            _shared.append(session)
        if reason:
            pytest.fail(f"the Spark tests cannot run: {reason}", pytrace=False)
    _users[0] += 1
    try:
        yield _shared[0]
    finally:
        _users[0] -= 1
        if _users[0] == 0:
            stop(_shared.pop())
