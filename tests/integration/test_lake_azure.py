"""The lake on Azure Blob Storage, end to end, against a real Azure Storage emulator
(Azurite, from npm: tests/objstore.py): a home whose ``config.yaml`` puts the lake at
``az://sde-lake/prod`` (account and endpoint in the file, the account key only in
``SDE_LAKE_AZURE_STORAGE_ACCOUNT_KEY``).

The same path as the S3 tests (tests/integration/test_lake_object_store.py) through the
other store: ``sde ingest --all`` and ``sde extract`` write there, the zones are listed
through pyarrow's Azure filesystem, a patient's record history and a notebook read there,
nothing lands under ``<home>/lake``, and a wrong key fails without showing a secret."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from click.testing import Result

from sde.services.extract import read_manifest
from sde.services.home import Home, init_home, lake_environment, open_home
from sde.services.synth.files import synthesise
from sde.services.wiring import control_plane, policy_engine
from tests.factories import airlock_project
from tests.integration.test_lake_object_store import cli
from tests.lake_sessions import (
    assert_extract_on_the_store,
    assert_zones_on_the_store,
    count_with_the_home,
    history_of_an_extracted_patient,
)
from tests.objstore import AzureServer, azure_server

pytestmark = [pytest.mark.delta, pytest.mark.sql, pytest.mark.policy, pytest.mark.duckdb]

CONTAINER = "sde-lake"
PREFIX = "prod"
PROJECT = "diabetes"


@dataclass(frozen=True)
class World:
    azure: AzureServer
    root: Path
    env: Mapping[str, str]
    ingest: Result
    extract: Result

    def home(self) -> Home:
        return open_home(self.root, lake_environment=lake_environment(self.env))


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    folder = tmp_path_factory.mktemp("lake-azure")
    with azure_server(folder) as azure:
        azure.container(CONTAINER)
        home = init_home(folder / "h")
        config = yaml.safe_load((home.root / "config.yaml").read_text())
        config["lake"] = {
            "url": f"az://{CONTAINER}/{PREFIX}",
            "options": {
                "AZURE_STORAGE_ACCOUNT_NAME": azure.account,
                "AZURE_ENDPOINT": azure.endpoint,
                "AZURE_ALLOW_HTTP": "true",
            },
        }
        (home.root / "config.yaml").write_text(yaml.safe_dump(config))
        env = {"SDE_LAKE_AZURE_STORAGE_ACCOUNT_KEY": azure.key}
        synthesise(home.sources, 120, seed=11)
        ingested = cli(home.root, env, "ingest", "--all", "--no-progress", "--actor", "olu")
        with control_plane(home) as plane:
            airlock_project(plane, policy_engine(home))
        extracted = cli(home.root, env, "extract", PROJECT, "--actor", "olu")
        yield World(azure, home.root, env, ingested, extracted)


def test_ingest_writes_the_zones_to_the_container(world: World) -> None:
    assert world.ingest.exit_code == 0, world.ingest.output
    assert_zones_on_the_store(world.home(), f"az://{CONTAINER}/{PREFIX}", range(110, 121))


def test_extract_and_its_manifest_are_in_the_container(world: World) -> None:
    assert world.extract.exit_code == 0, world.extract.output
    assert_extract_on_the_store(world.home(), f"az://{CONTAINER}/{PREFIX}", PROJECT)


def test_a_patients_history_and_a_notebook_read_the_container(
    world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = world.home()
    history = history_of_an_extracted_patient(home, PROJECT)
    assert [use.project_id for use in history.projects] == [PROJECT]
    assert history.projects[0].in_latest_extract

    for name in ("SDE_API_URL", "SDE_TOKEN", "SDE_EXTRACT", "SDE_PROJECT", "SDE_HOME"):
        monkeypatch.delenv(name, raising=False)
    n = count_with_the_home(home, PROJECT, tmp_path, monkeypatch)
    assert n == read_manifest(home, PROJECT).tables["patients"].rows_written


def test_a_wrong_account_key_fails_clearly_without_a_secret(world: World) -> None:
    wrong = "V3Jvbmcta2V5LW5vdC10aGUtYWNjb3VudHMtb3duLWtleS0xMjM0NTY3OA=="
    env = {"SDE_LAKE_AZURE_STORAGE_ACCOUNT_KEY": wrong}
    result = cli(world.root, env, "extract", PROJECT, "--actor", "olu")
    assert result.exit_code == 2
    assert f"az://{CONTAINER}/{PREFIX}" in result.output
    assert wrong not in result.output
    assert world.azure.key not in result.output
