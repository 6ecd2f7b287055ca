"""The lake on object storage, end to end, against a real S3 server (versitygw,
tests/objstore.py): a home whose ``config.yaml`` puts the lake at ``s3://sde-lake/prod``
(endpoint and region in the file, the credentials only in ``SDE_LAKE_*`` variables).

``sde ingest --all`` writes the linked tables, the quarantine and the ingest manifests to
the store; ``sde extract`` builds a project's extract there with its manifest; a
patient's record history finds the patient's datasets and projects there; a notebook
reads its extract from the store (with the home, and as a session with only the extract's
URL and the store's variables). Nothing of the lake lands under ``<home>/lake``, and the
objects are on the server's disk. Wrong credentials fail with a clear error that holds no
secret; a config file holding a credential is refused by the option's name."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner, Result

from sde.adapters import delta, lake_files
from sde.adapters.delta import RemoteTable
from sde.adapters.lake_files import LakeUnavailable
from sde.cli import main
from sde.errors import ConfigError, InputError
from sde.hub.spawner import lake_session_env, lake_workspace_secret
from sde.services.extract import PATIENT_ID, read_manifest
from sde.services.home import (
    Home,
    LakeSettings,
    check_lake_url,
    init_home,
    lake_environment,
    open_home,
)
from sde.services.synth.files import synthesise
from sde.services.wiring import control_plane, policy_engine
from sde.workspace.service import extract_location
from tests.factories import airlock_project
from tests.lake_sessions import (
    assert_extract_on_the_store,
    assert_zones_on_the_store,
    count_as_a_pod,
    count_with_the_home,
    exercise_zone_files,
    history_of_an_extracted_patient,
)
from tests.objstore import S3Server, s3_server

pytestmark = [pytest.mark.delta, pytest.mark.sql, pytest.mark.policy, pytest.mark.duckdb]

BUCKET = "sde-lake"
PREFIX = "prod"
PROJECT = "diabetes"
ZONES = ("linked", "quarantine", "manifests")
SESSION_VARS = (
    "SDE_HOME",
    "SDE_API_URL",
    "SDE_TOKEN",
    "SDE_PROJECT",
    "SDE_USER",
    "SDE_EXTRACT",
    "SDE_SCRATCH",
    "SDE_OUTPUTS",
    "AWS_ENDPOINT_URL",
    "AWS_REGION",
    "AWS_ALLOW_HTTP",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
)


@dataclass(frozen=True)
class World:
    s3: S3Server
    root: Path
    env: Mapping[str, str]
    ingest: Result
    extract: Result

    def home(self) -> Home:
        return open_home(self.root, lake_environment=lake_environment(self.env))

    def stored(self, *parts: str) -> Path:
        """Where the server keeps an object or prefix of the lake on its disk."""
        return self.s3.root.joinpath(BUCKET, PREFIX, *parts)


def write_lake_config(root: Path, lake: Mapping[str, object]) -> None:
    path = root / "config.yaml"
    config = yaml.safe_load(path.read_text())
    config["lake"] = dict(lake)
    path.write_text(yaml.safe_dump(config))


def cli(root: Path, env: Mapping[str, str], *args: str) -> Result:
    return CliRunner().invoke(main, [*args, "--home", str(root)], env=dict(env))


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    folder = tmp_path_factory.mktemp("lake-s3")
    with s3_server(folder) as s3:
        s3.bucket(BUCKET)
        home = init_home(folder / "h")
        options = s3.storage_options()
        write_lake_config(
            home.root,
            {
                "url": f"s3://{BUCKET}/{PREFIX}",
                "options": {
                    name: options[name]
                    for name in ("AWS_ENDPOINT_URL", "AWS_REGION", "AWS_ALLOW_HTTP")
                },
                "workspace_credentials": "inherit",
            },
        )
        env = {
            "SDE_LAKE_AWS_ACCESS_KEY_ID": s3.access_key,
            "SDE_LAKE_AWS_SECRET_ACCESS_KEY": s3.secret_key,
        }
        synthesise(home.sources, 150, seed=7)
        ingested = cli(home.root, env, "ingest", "--all", "--no-progress", "--actor", "olu")
        with control_plane(home) as plane:
            airlock_project(plane, policy_engine(home))
        extracted = cli(home.root, env, "extract", PROJECT, "--actor", "olu")
        yield World(s3, home.root, env, ingested, extracted)


def test_ingest_writes_linked_quarantine_and_manifests_to_the_store(world: World) -> None:
    assert world.ingest.exit_code == 0, world.ingest.output
    home = world.home()
    assert_zones_on_the_store(home, f"s3://{BUCKET}/{PREFIX}", range(140, 151))
    # control: the objects are on the server's disk
    for name in lake_files.list_tables(home.linked):
        assert (world.stored("linked", name, "_delta_log")).is_dir(), name
    assert list(world.stored("manifests", "ingest").glob("*.parquet"))


def test_extract_is_built_on_the_store_with_its_manifest(world: World) -> None:
    assert world.extract.exit_code == 0, world.extract.output
    home = world.home()
    assert_extract_on_the_store(home, f"s3://{BUCKET}/{PREFIX}", PROJECT)
    assert read_manifest(home, PROJECT).tables["patients"].columns == [PATIENT_ID, "sex"]
    assert world.stored("projects", PROJECT, "extract", "manifest.json").is_file()
    assert world.stored("projects", PROJECT, "extract", "patients", "_delta_log").is_dir()


def test_nothing_of_the_lake_is_written_under_the_home(world: World) -> None:
    home = world.home()
    local = home.local_lake
    for zone in ZONES:
        assert not any((local / zone).iterdir()), f"local {zone} folder is not empty"
    assert not (home.project_workspace(PROJECT) / "extract").exists()
    assert list(home.root.rglob("_delta_log")) == []


def test_a_patients_record_history_reads_the_store(world: World) -> None:
    history = history_of_an_extracted_patient(world.home(), PROJECT)
    assert history.has_record
    assert "patients" in [d.name for d in history.datasets]
    [use] = history.projects
    assert use.project_id == PROJECT
    assert use.datasets == ("patients",)
    assert use.in_latest_extract


def _clean_session(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in SESSION_VARS:
        monkeypatch.delenv(name, raising=False)


def test_a_notebook_with_the_home_reads_the_extract_from_the_store(
    world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _clean_session(monkeypatch)
    home = world.home()
    n = count_with_the_home(home, PROJECT, tmp_path, monkeypatch)
    assert n == read_manifest(home, PROJECT).tables["patients"].rows_written


def test_a_session_reads_its_extract_from_the_store_by_url(
    world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Service mode, as a pod: no home, the extract's URL and the store's variables from
    the spawner (``lake_session_env``), the sde service for the policy and versions."""
    _clean_session(monkeypatch)
    home = world.home()
    session = lake_session_env(home, PROJECT)
    assert session["SDE_EXTRACT"] == f"s3://{BUCKET}/{PREFIX}/projects/{PROJECT}/extract"
    assert session["AWS_SECRET_ACCESS_KEY"] == world.s3.secret_key  # inherit (development)
    n = count_as_a_pod(home, PROJECT, session, tmp_path, monkeypatch)
    assert n == read_manifest(home, PROJECT).tables["patients"].rows_written


def test_session_variables_by_workspace_credentials(world: World) -> None:
    home = world.home()
    for mode, secret in (("none", None), ("per_project_secret", "sde-lake-{project}")):
        lake = {**home.settings.extra["lake"], "workspace_credentials": mode}
        if secret:
            lake["project_credentials"] = secret
        other = Home(
            home.root,
            type(home.settings).from_mapping({**home.settings.to_mapping(), "lake": lake}),
            lake_environment=lake_environment(world.env),
        )
        env = lake_session_env(other, PROJECT)
        assert env["SDE_EXTRACT"].endswith(f"/projects/{PROJECT}/extract")
        assert env["AWS_ENDPOINT_URL"] == world.s3.endpoint
        assert "AWS_SECRET_ACCESS_KEY" not in env
        assert "AWS_ACCESS_KEY_ID" not in env
        expected = f"sde-lake-{PROJECT}" if secret else None
        assert lake_workspace_secret(other, PROJECT) == expected


def test_extract_location_from_a_sessions_variables() -> None:
    local = extract_location({"SDE_EXTRACT": "/data/extract"})
    assert local == Path("/data/extract")
    remote = extract_location(
        {
            "SDE_EXTRACT": "s3://b/p/projects/x/extract",
            "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
            "AWS_SECRET_ACCESS_KEY": "s3cr3t-value",
            "HOME": "/home/alice",
        }
    )
    assert isinstance(remote, RemoteTable)
    assert dict(remote.storage_options) == {
        "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
        "AWS_SECRET_ACCESS_KEY": "s3cr3t-value",
    }
    assert "s3cr3t" not in repr(remote)
    with pytest.raises(ConfigError, match="SDE_EXTRACT"):
        extract_location({"SDE_EXTRACT": "s3://b/p?x=1"})


@pytest.mark.parametrize(
    ("change", "shown"),
    [
        ({"SDE_LAKE_AWS_SECRET_ACCESS_KEY": "wrong-secret-9f3e"}, "refused access"),
        ({"SDE_LAKE_AWS_ACCESS_KEY_ID": "nobody-7c1d"}, "refused access"),
    ],
)
def test_wrong_credentials_fail_clearly_without_the_secret(
    world: World, change: Mapping[str, str], shown: str
) -> None:
    result = cli(world.root, {**world.env, **change}, "extract", PROJECT, "--actor", "olu")
    assert result.exit_code == 2
    assert shown in result.output
    assert f"s3://{BUCKET}/{PREFIX}" in result.output
    for value in (*change.values(), world.s3.secret_key):
        assert value not in result.output


def test_an_unreachable_store_fails_clearly(world: World, tmp_path: Path) -> None:
    home = world.home()
    lake = {**home.settings.extra["lake"]}
    lake["options"] = {**lake["options"], "AWS_ENDPOINT_URL": "http://127.0.0.1:9"}
    other = Home(
        home.root,
        type(home.settings).from_mapping({**home.settings.to_mapping(), "lake": lake}),
        lake_environment=lake_environment(world.env),
    )
    with pytest.raises(LakeUnavailable, match="cannot reach the lake") as failed:
        lake_files.check_access(other.lake)
    assert world.s3.secret_key not in str(failed.value)


def test_only_commands_that_read_the_lake_check_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The public register serves a folder of the home: it opens the home without the
    lake's credentials and without reaching the store (its service gets none)."""
    from sde.cli import load_home

    root = tmp_path / "h"
    init_home(root)
    write_lake_config(
        root,
        {
            "url": "s3://b/p",
            "options": {"AWS_ENDPOINT_URL": "http://127.0.0.1:9", "AWS_ALLOW_HTTP": "true"},
        },
    )
    for name in [n for n in os.environ if n.startswith("SDE_LAKE_")]:
        monkeypatch.delenv(name)
    with pytest.raises(LakeUnavailable, match="cannot reach the lake"):
        load_home(root)
    assert load_home(root, check_lake=False).lake_is_remote


def test_a_config_file_holding_a_credential_is_refused(world: World, tmp_path: Path) -> None:
    root = tmp_path / "h"
    init_home(root)
    secret = "AKIA-in-the-file-5be1"
    write_lake_config(
        root,
        {
            "url": "s3://b/p",
            "options": {"AWS_ENDPOINT_URL": "http://x", "aws_secret_access_key": secret},
        },
    )
    with pytest.raises(ConfigError, match="aws_secret_access_key") as refused:
        open_home(root)
    assert secret not in str(refused.value)
    result = cli(root, {}, "optout", "status")
    assert result.exit_code == 2
    assert "holds a credential" in result.output
    assert secret not in result.output


@pytest.mark.parametrize(
    ("lake", "message"),
    [
        ({"url": "s3://b/p", "secret_key": "x"}, "holds a credential \\(secret_key\\)"),
        ({"url": "s3://b/p", "options": {"AWS_SESSION_TOKEN": "x"}}, "AWS_SESSION_TOKEN"),
        ({"url": "s3://b/p", "options": {"AZURE_STORAGE_ACCOUNT_NAME": "a"}}, "not a s3 option"),
        ({"url": "s3://b/p", "options": {"AWS_REGION": ["x"]}}, "plain text"),
        ({"url": "s3://b/p", "colour": "blue"}, "unknown setting"),
        ({"url": "http://b/p"}, "must start with one of"),
        ({"url": "/data/lake"}, "must start with one of"),
        ({"url": "s3://key:pass@b/p"}, "user information"),
        ({"url": "s3://b/p?x=1"}, "plain URL"),
        ({"url": "s3://b/../p"}, "segments"),
        ({"url": "s3:///p"}, "no bucket"),
        ({"url": "s3://b/p", "workspace_credentials": "all"}, "workspace_credentials"),
        ({"url": "s3://b/p", "workspace_credentials": "per_project_secret"}, "\\{project\\}"),
        ({"url": "s3://b/p", "project_credentials": "s-{project}"}, "only used with"),
        ("s3://b/p", "must be a mapping"),
    ],
)
def test_lake_settings_are_checked(lake: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as refused:
        LakeSettings.from_mapping(lake)
    assert "pass" not in str(refused.value)


def test_lake_settings_accepted_and_environment_checked() -> None:
    lake = LakeSettings.from_mapping(
        {
            "url": "abfss://lake@account.dfs.core.windows.net/prod/",
            "options": {"azure_storage_account_name": "account", "AZURE_ALLOW_HTTP": True},
        }
    )
    assert lake.url == "abfss://lake@account.dfs.core.windows.net/prod"
    assert lake.store == "azure"
    assert lake.options == {"AZURE_STORAGE_ACCOUNT_NAME": "account", "AZURE_ALLOW_HTTP": "true"}
    options = lake.storage_options({"SDE_LAKE_AZURE_STORAGE_ACCOUNT_KEY": "k"})
    assert options["AZURE_STORAGE_ACCOUNT_KEY"] == "k"
    with pytest.raises(ConfigError, match="SDE_LAKE_AWS_SECRET_ACCESS_KEY is not a azure"):
        lake.storage_options({"SDE_LAKE_AWS_SECRET_ACCESS_KEY": "k"})
    with pytest.raises(ConfigError, match="no 'lake: url'"):
        LakeSettings().storage_options({"SDE_LAKE_AWS_ACCESS_KEY_ID": "k"})
    assert LakeSettings.from_mapping({"url": "gs://bucket/lake"}).store == "gcs"
    assert check_lake_url("s3a://bucket/a/b") == "s3a://bucket/a/b"
    assert lake_environment({"SDE_LAKE_X": "1", "SDE_LAKE_Y": "", "AWS_X": "2"}) == {
        "SDE_LAKE_X": "1"
    }


def test_a_home_without_a_lake_section_keeps_the_lake_on_local_disk(tmp_path: Path) -> None:
    home = init_home(tmp_path / "h")
    assert not home.lake_is_remote
    assert home.linked == home.root / "lake" / "linked"
    assert home.project_extract("p1") == home.root / "lake" / "projects" / "p1" / "extract"
    assert home.project_outputs("p1") == home.root / "lake" / "projects" / "p1" / "outputs"
    for bad in ("../linked", "a/b", ""):
        with pytest.raises(InputError, match="project id"):
            home.project_extract(bad)
    assert home.egress == home.root / "lake" / "egress"
    assert home.linked.is_dir()
    assert lake_session_env(home, "p1") == {"SDE_EXTRACT": str(home.project_extract("p1"))}


# --- the zone file operations, the same on a folder and on the store --------------------


@pytest.fixture(params=["local", "s3"])
def zone(request: pytest.FixtureRequest, world: World, tmp_path: Path) -> delta.Location:
    if request.param == "local":
        return tmp_path / "zone"
    return RemoteTable(f"s3://{BUCKET}/files-{tmp_path.name}", world.s3.storage_options())


def test_zone_files_on_a_folder_and_on_the_store(zone: delta.Location) -> None:
    exercise_zone_files(zone)
    if isinstance(zone, Path):  # written whole: no temporary file left beside it
        assert sorted(p.name for p in (zone / "extract").iterdir()) == ["manifest.json"]


def test_file_systems_are_built_from_the_delta_options() -> None:
    fs, path = lake_files.filesystem(
        RemoteTable(
            "s3://b/prod/linked",
            {"AWS_ENDPOINT_URL": "https://objects.example.org:9000/", "AWS_REGION": "eu-west-2"},
        )
    )
    assert type(fs).__name__ == "S3FileSystem"
    assert path == "b/prod/linked"
    assert fs.region == "eu-west-2"
    with pytest.raises(ConfigError, match="AWS_ALLOW_HTTP"):
        lake_files.filesystem(RemoteTable("s3://b/p", {"AWS_ENDPOINT_URL": "http://x:9000"}))
    fs, path = lake_files.filesystem(
        RemoteTable(
            "abfss://lake@acct.dfs.core.windows.net/prod",
            {"AZURE_STORAGE_ACCOUNT_KEY": "a2V5"},
        )
    )
    assert type(fs).__name__ == "AzureFileSystem"
    assert path == "lake/prod"
    with pytest.raises(ConfigError, match="AZURE_STORAGE_ACCOUNT_NAME"):
        lake_files.filesystem(RemoteTable("az://lake/prod"))


def test_credentials_the_file_access_cannot_use_are_refused_by_name() -> None:
    """delta-rs takes them, pyarrow does not: refused, never silently replaced by the
    platform's default identity; the message names the option, never its value."""
    key = '{"private_key": "canary-gcs-key-7f1e"}'
    for url, option in (
        ("gs://lake/prod", "GOOGLE_SERVICE_ACCOUNT_KEY"),
        ("gs://lake/prod", "GOOGLE_SERVICE_ACCOUNT"),
        ("az://lake/prod", "AZURE_STORAGE_TOKEN"),
    ):
        options = {option: key, "AZURE_STORAGE_ACCOUNT_NAME": "acct"}
        with pytest.raises(ConfigError, match=f"cannot use {option}") as refused:
            lake_files.filesystem(RemoteTable(url, options))
        assert "canary-gcs-key" not in str(refused.value)
    # the control: without it, the same stores' file systems are built
    assert type(lake_files.filesystem(RemoteTable("gs://lake/prod"))[0]).__name__ == (
        "GcsFileSystem"
    )
