"""The hub's sign-in and spawn check against a real home: control plane, policy, audit."""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from tornado.web import HTTPError

from sde.domain.audit import AuditEntry
from sde.domain.projects import ProjectStatus
from sde.domain.workspace_tokens import token_key, verify
from sde.hub.auth import SdeAuthenticator
from sde.hub.spawner import SdeSpawner, pre_spawn_hook, project_from_form, render_choices
from sde.services.home import Home
from sde.services.wiring import control_plane
from sde.services.workspaces import ProjectChoice
from sde.web.auth import WebAuth
from tests.factories import airlock_home

pytestmark = [pytest.mark.sql, pytest.mark.policy]


@pytest.fixture
def home(tmp_path: Path) -> Home:
    return airlock_home(tmp_path / "h")


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _authenticator(home: Home) -> SdeAuthenticator:
    return SdeAuthenticator(sde_home=str(home.root))


async def _sign_in(auth: SdeAuthenticator, username: str, password: str) -> Any:
    return await auth.authenticate(None, {"username": username, "password": password})


def _actions(home: Home) -> list[tuple[str, str]]:
    with control_plane(home) as store:
        return [(e.actor, e.action) for e in store.audit.events() if e.action.startswith("hub.")]


def test_a_token_signs_its_person_in_once(home: Home, caplog: pytest.LogCaptureFixture) -> None:
    import asyncio

    auth = _authenticator(home)
    token = WebAuth(home.master_key()).link_token("alice", _now())
    caplog.set_level(logging.INFO)
    assert asyncio.run(_sign_in(auth, "alice", token)) == "alice"
    assert asyncio.run(_sign_in(auth, "alice", token)) is None  # one time only
    assert token not in caplog.text
    assert "already used" in caplog.text
    assert _actions(home) == [("alice", "hub.signin"), ("alice", "hub.signin.refused")]


@pytest.mark.parametrize(
    ("username", "token_for", "minutes_ago", "reason"),
    [
        ("mallory", "alice", 0, "someone else"),
        ("alice", "alice", 60, "expired"),
        ("nobody", "nobody", 0, "not a person"),
        ("Not A Person!", "alice", 0, "not a person id"),
    ],
)
def test_wrong_stale_or_unknown_tokens_are_refused(
    home: Home,
    caplog: pytest.LogCaptureFixture,
    username: str,
    token_for: str,
    minutes_ago: int,
    reason: str,
) -> None:
    import asyncio

    made = _now() - dt.timedelta(minutes=minutes_ago)
    token = WebAuth(home.master_key()).link_token(token_for, made)
    assert asyncio.run(_sign_in(_authenticator(home), username, token)) is None
    assert reason in caplog.text
    assert token not in caplog.text


def test_a_forged_token_is_refused(home: Home) -> None:
    import asyncio

    other_key = bytes(range(32))
    token = WebAuth(other_key).link_token("alice", _now())
    assert asyncio.run(_sign_in(_authenticator(home), "alice", token)) is None
    assert asyncio.run(_sign_in(_authenticator(home), "alice", "")) is None


def test_a_banned_person_cannot_sign_in_and_their_session_ends(
    home: Home, caplog: pytest.LogCaptureFixture
) -> None:
    import asyncio

    auth = _authenticator(home)
    alice = SimpleNamespace(name="alice")
    assert asyncio.run(auth.refresh_user(alice)) is True
    with control_plane(home) as store:
        person = store.get_person("alice")
        banned = dataclasses.replace(person, banned_until=_now() + dt.timedelta(days=30))
        store.update_person(banned, audit=AuditEntry("olu", "person.update", "person:alice"))
    token = WebAuth(home.master_key()).link_token("alice", _now())
    assert asyncio.run(_sign_in(auth, "alice", token)) is None
    assert "banned" in caplog.text
    assert asyncio.run(auth.refresh_user(alice)) is False


def _spawner(home: Home, user: str, options: Any) -> Any:
    return SimpleNamespace(
        user=SimpleNamespace(name=user),
        user_options=options,
        sde_home=str(home.root),
        log=logging.getLogger("test-spawner"),
    )


def test_the_hook_lets_a_member_spawn_and_audits_it(home: Home) -> None:
    with control_plane(home) as store:
        before = store.audit.count()
    pre_spawn_hook(_spawner(home, "alice", {"project": "diabetes"}))
    with control_plane(home) as store:
        assert store.audit.count() > before  # the policy decision was recorded


@pytest.mark.parametrize(
    ("user", "options", "reason"),
    [
        ("mallory", {"project": "diabetes"}, "member"),
        ("alice", {"project": "no-such-project"}, "project"),
        ("alice", {}, "choose one"),
        ("alice", {"project": "../etc"}, "choose one"),
    ],
)
def test_the_hook_refuses_with_the_reason(home: Home, user: str, options: Any, reason: str) -> None:
    with pytest.raises(HTTPError) as raised:
        pre_spawn_hook(_spawner(home, user, options))
    assert raised.value.status_code == 403
    assert reason in str(raised.value)


def test_the_hook_refuses_a_suspended_project(home: Home) -> None:
    with control_plane(home) as store:
        store.set_project_status(
            "diabetes", ProjectStatus.SUSPENDED, audit=AuditEntry("olu", "project.suspend", "p")
        )
    with pytest.raises(HTTPError, match="suspended") as raised:
        pre_spawn_hook(_spawner(home, "alice", {"project": "diabetes"}))
    assert raised.value.status_code == 403


def test_the_form_shows_refused_projects_disabled_with_escaped_reasons() -> None:
    form = render_choices(
        [
            ProjectChoice("diabetes", "Diabetes <b>", True, ()),
            ProjectChoice("asthma", "Asthma", False, ("project is <suspended>",)),
        ]
    )
    assert 'value="diabetes" checked>' in form
    assert "Diabetes &lt;b&gt;" in form
    assert 'value="asthma" disabled>' in form
    assert "project is &lt;suspended&gt;" in form
    assert "<suspended>" not in form
    assert "not a member of any project" in render_choices([])


def test_the_form_reads_one_project() -> None:
    assert project_from_form({"project": ["diabetes"]}) == {"project": "diabetes"}
    for bad in ({}, {"project": ["a", "b"]}, {"project": ["<x>"]}):
        with pytest.raises(HTTPError):
            project_from_form(bad)


def test_the_spawner_offers_the_persons_projects_and_sets_the_environment(
    home: Home, monkeypatch: pytest.MonkeyPatch
) -> None:
    import asyncio

    from jupyterhub.spawner import SimpleLocalProcessSpawner

    # The base get_env needs a running hub's tokens; the test is of what SdeSpawner adds.
    monkeypatch.setattr(SimpleLocalProcessSpawner, "get_env", lambda self: {"PATH": "/bin"})
    api = "http://127.0.0.1:8126/services/airlock"
    spawner = SdeSpawner(sde_home=str(home.root), sde_api_url=api)
    spawner.user = SimpleNamespace(name="alice", url="/user/alice/")
    form = asyncio.run(spawner.get_options_form())
    assert 'value="diabetes" checked>' in form
    spawner.user_options = spawner.run_options_from_form({"project": ["diabetes"]})
    env = spawner.get_env()
    token = env.pop("SDE_TOKEN")
    project_dir = home.project_workspace("diabetes")
    assert env == {
        "PATH": "/bin",
        "SDE_USER": "alice",
        "SDE_PROJECT": "diabetes",
        "SDE_API_URL": api,
        "SDE_EXTRACT": str(project_dir / "extract"),
        "SDE_SCRATCH": str(project_dir / "scratch" / "alice"),
        "SDE_OUTPUTS": str(project_dir / "outputs"),
    }
    # Not the home: a token for the sde service, for alice on diabetes only.
    claim = verify(token_key(home.master_key()), token, _now())
    assert (claim.person, claim.project) == ("alice", "diabetes")
    assert claim.expires <= _now() + dt.timedelta(hours=12)
    assert (project_dir / "scratch" / "alice").stat().st_mode & 0o777 == 0o700
    spawner.sde_api_url = ""
    with pytest.raises(HTTPError, match="no sde service URL"):
        spawner.get_env()


def test_hub_config_binds_loopback_and_keeps_its_secrets_private(home: Home) -> None:
    from sde.errors import ConfigError
    from sde.hub.auth import SdeAuthenticator
    from sde.hub.config import hub_config, write_config_file

    c = hub_config(home, port=8123, proxy_cmd=["/bin/chp"])
    assert (c.JupyterHub.ip, c.JupyterHub.port, c.JupyterHub.hub_ip) == (
        "127.0.0.1",
        8123,
        "127.0.0.1",
    )
    assert c.ConfigurableHTTPProxy.api_url == "http://127.0.0.1:8124"
    assert c.JupyterHub.authenticator_class is SdeAuthenticator
    assert c.JupyterHub.spawner_class is SdeSpawner
    assert c.Spawner.pre_spawn_hook is pre_spawn_hook
    assert c.Spawner.default_url == "/lab"
    assert c.Authenticator.auth_refresh_strict is True
    assert c.SdeSpawner.sde_home == str(home.root)
    hub = home.root / "hub"
    assert c.JupyterHub.db_url == f"sqlite:///{hub / 'jupyterhub.sqlite'}"
    for name in ("jupyterhub.sqlite", "jupyterhub_cookie_secret"):
        assert (hub / name).stat().st_mode & 0o777 == 0o600, name
    assert hub.stat().st_mode & 0o777 == 0o700
    with pytest.raises(ConfigError, match="loopback"):
        hub_config(home, port=8123, ip="0.0.0.0")
    assert hub_config(home, port=8123, ip="0.0.0.0", allow_remote=True).JupyterHub.ip == "0.0.0.0"

    path = write_config_file(home, port=8200, ip="127.0.0.1", proxy_cmd=["/bin/chp"])
    assert path.stat().st_mode & 0o777 == 0o600
    from traitlets.config import Config
    from traitlets.config.loader import PyFileConfigLoader

    loaded: Config = PyFileConfigLoader(path.name, path=str(path.parent)).load_config()
    assert loaded.JupyterHub.port == 8200
    assert loaded.ConfigurableHTTPProxy.command == ["/bin/chp"]


def test_hub_config_starts_the_airlock_page_and_the_session_guard_as_services(home: Home) -> None:
    from sde.errors import ConfigError
    from sde.hub.config import hub_config
    from sde.hub.kube import SdeKubeSpawner

    c = hub_config(home, port=8123, proxy_cmd=["/bin/chp"], guard_interval=3)
    services = {s["name"]: s for s in c.JupyterHub.services}
    assert set(services) == {"airlock", "register", "patient", "session-guard"}
    patient = services["patient"]
    assert patient["url"] == "http://127.0.0.1:8128"
    assert patient["command"][-5:] == ["web", "patient", "--hub", "--home", str(home.root)]
    assert "oauth_no_confirm" not in patient  # its own sign-in, never the hub's
    register = services["register"]
    assert register["url"] == "http://127.0.0.1:8127"
    assert register["command"][-5:] == ["web", "register", "--hub", "--home", str(home.root)]
    assert "oauth_no_confirm" not in register  # public: no sign-in
    airlock = services["airlock"]
    assert airlock["url"] == "http://127.0.0.1:8126"
    assert airlock["command"][-4:] == ["serve", "--hub", "--home", str(home.root)]
    assert airlock["oauth_no_confirm"] is True
    guard = services["session-guard"]["command"]
    assert guard[guard.index("--interval") + 1] == "3"
    assert "--kubernetes" not in guard
    roles = {r["name"]: r for r in c.JupyterHub.load_roles}
    assert roles["user"]["scopes"] == ["self", "access:services!service=airlock"]
    assert set(roles["sde-session-guard"]["scopes"]) == {
        "list:users",
        "read:users",
        "read:servers",
        "delete:servers",
    }
    assert roles["sde-session-guard"]["services"] == ["session-guard"]
    assert "--ServerApp.terminals_enabled=False" in c.Spawner.args
    assert "--ServerApp.extra_services=sde.hub.lab" in c.Spawner.args
    assert c.SdeSpawner.sde_api_url == "http://127.0.0.1:8126/services/airlock"

    kube = hub_config(
        home,
        port=8123,
        proxy_cmd=["/bin/chp"],
        spawner="kubernetes",
        pod_api_url="http://sde.sde-services:8800/services/airlock",
    )
    assert kube.SdeKubeSpawner.sde_api_url == "http://sde.sde-services:8800/services/airlock"
    assert kube.JupyterHub.spawner_class is SdeKubeSpawner
    assert kube.SdeKubeSpawner.sde_home == str(home.root)
    assert kube.SdeKubeSpawner.cmd == ["jupyterhub-singleuser"]  # the image's, not ours
    kube_guard = {s["name"]: s for s in kube.JupyterHub.services}["session-guard"]["command"]
    assert "--kubernetes" in kube_guard
    with pytest.raises(ConfigError, match="spawner must be one of"):
        hub_config(home, port=8123, spawner="docker")


def test_hub_managed_services_get_the_lake_variables_and_the_file_none(
    home: Home, monkeypatch: pytest.MonkeyPatch
) -> None:
    import yaml
    from traitlets.config import Config
    from traitlets.config.loader import PyFileConfigLoader

    from sde.hub.config import hub_config, write_config_file
    from sde.services.home import lake_environment, open_home

    # A local lake: the services' environment is JupyterHub's default, as before.
    local = hub_config(home, port=8123, proxy_cmd=["/bin/chp"])
    assert not [s["name"] for s in local.JupyterHub.services if "environment" in s]

    config = yaml.safe_load((home.root / "config.yaml").read_text())
    config["lake"] = {"url": "s3://sde-lake/prod", "options": {"AWS_REGION": "eu-west-2"}}
    (home.root / "config.yaml").write_text(yaml.safe_dump(config))
    lake = {
        "SDE_LAKE_AWS_ACCESS_KEY_ID": "AKIACANARYHUB0000001",
        "SDE_LAKE_AWS_SECRET_ACCESS_KEY": "canary-hub-secret-0a9b8c7d6e",
    }
    remote = open_home(home.root, lake_environment=lake_environment(lake))
    c = hub_config(remote, port=8123, proxy_cmd=["/bin/chp"])
    services = {s["name"]: s for s in c.JupyterHub.services}
    assert set(services) == {"airlock", "register", "patient", "session-guard"}
    for name, service in services.items():
        if name == "register":
            # The public register serves a folder of the home: no lake credentials.
            assert "environment" not in service
        else:
            assert service["environment"] == lake, name
    # Each its own copy: changing one service's environment changes no other.
    services["patient"]["environment"]["X"] = "y"
    assert "X" not in services["airlock"]["environment"]

    # The file sde serve writes holds no credential; the hub reads its own environment.
    path = write_config_file(remote, port=8200, ip="127.0.0.1", proxy_cmd=["/bin/chp"])
    text = path.read_text()
    assert not [name for name, value in lake.items() if value in text]
    for name, value in lake.items():
        monkeypatch.setenv(name, value)
    loaded: Config = PyFileConfigLoader(path.name, path=str(path.parent)).load_config()
    loaded_services = {s["name"]: s for s in loaded.JupyterHub.services}
    assert loaded_services["session-guard"]["environment"] == lake
    assert loaded_services["airlock"]["environment"] == lake
