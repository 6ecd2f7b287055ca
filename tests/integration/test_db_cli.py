"""``sde db upgrade``: the control database's migrations, as the Helm chart's
pre-install/pre-upgrade Job runs them (the URL from an environment variable)."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from sde.cli import main

pytestmark = pytest.mark.sql


def tables(url: str) -> set[str]:
    engine = sa.create_engine(url)
    try:
        return set(sa.inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_upgrade_from_an_environment_variable_creates_the_schema(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'control.db'}"
    runner = CliRunner()
    result = runner.invoke(
        main, ["db", "upgrade", "--database-url-env", "SDE_TEST_DB"], env={"SDE_TEST_DB": url}
    )
    assert result.exit_code == 0, result.output
    assert "is at the newest schema" in result.output
    assert url not in result.output
    assert "alembic_version" in tables(url)
    assert len(tables(url)) > 3
    # Idempotent: a second run changes nothing and succeeds.
    again = runner.invoke(
        main, ["db", "upgrade", "--database-url-env", "SDE_TEST_DB"], env={"SDE_TEST_DB": url}
    )
    assert again.exit_code == 0, again.output


def test_upgrade_of_the_homes_database(tmp_path: Path) -> None:
    home = tmp_path / "home"
    assert CliRunner().invoke(main, ["init", "--home", str(home)]).exit_code == 0
    result = CliRunner().invoke(main, ["db", "upgrade", "--home", str(home)])
    assert result.exit_code == 0, result.output
    assert f"the control database of {home.resolve()}" in result.output


def test_an_empty_variable_is_refused() -> None:
    result = CliRunner().invoke(
        main, ["db", "upgrade", "--database-url-env", "SDE_TEST_DB"], env={"SDE_TEST_DB": " "}
    )
    assert result.exit_code == 2
    assert "SDE_TEST_DB holds no database URL" in result.output


def test_a_failure_never_shows_the_url_or_its_password() -> None:
    url = "postgresql+psycopg://sde:canary-pw-7c1d@127.0.0.1:1/sde"
    result = CliRunner().invoke(
        main,
        ["db", "upgrade", "--database-url-env", "SDE_TEST_DB"],
        env={"SDE_TEST_DB": url},
    )
    assert result.exit_code == 2
    assert "could not upgrade the database named by $SDE_TEST_DB" in result.output
    assert "canary-pw-7c1d" not in result.output
