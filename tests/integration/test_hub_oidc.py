"""Signing in at the hub with an OpenID Connect provider: the settings (checked, the
secret never in the file), the hub's configuration, and sde deciding who may come in
(a known person, not banned), audited, at sign-in and at every refresh. The provider's
side of the flow is oauthenticator's own; no provider runs here."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml

from sde.errors import ConfigError
from sde.hub.config import hub_config
from sde.hub.oidc import SECRET_ENV, HubAuthSettings, SdeOIDCAuthenticator
from sde.services.governance import GovernanceService, GovernanceSettings
from sde.services.home import Home, open_home
from sde.services.wiring import control_plane, policy_engine
from tests.factories import airlock_home

pytestmark = [pytest.mark.sql, pytest.mark.policy]

PROVIDER = {
    "client_id": "sde-hub",
    "authorize_url": "https://login.example.nhs.uk/authorize",
    "token_url": "https://login.example.nhs.uk/token",
    "userdata_url": "https://login.example.nhs.uk/userinfo",
}


@pytest.fixture
def home(tmp_path: Path) -> Home:
    return airlock_home(tmp_path / "h")


def _with_hub_section(home: Home, section: dict[str, Any]) -> Home:
    path = home.root / "config.yaml"
    data = yaml.safe_load(path.read_text())
    data["hub"] = section
    path.write_text(yaml.safe_dump(data))
    return open_home(home.root)


def test_no_section_means_sde_tokens() -> None:
    assert HubAuthSettings.from_mapping(None).authenticator == "token"
    assert HubAuthSettings.from_mapping({"authenticator": "token"}).oidc is None


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"authenticator": "saml"}, "must be one of token, oidc"),
        ({"authenticator": "oidc"}, "hub.oidc must be a mapping"),
        ({"authenticator": "oidc", "oidc": {**PROVIDER, "client_secret": "s"}}, "SDE_OIDC"),
        ({"authenticator": "oidc", "oidc": {**PROVIDER, "colour": "red"}}, "unknown setting"),
        (
            {"authenticator": "oidc", "oidc": {**PROVIDER, "token_url": "http://x/token"}},
            "token_url must be an https address",
        ),
        (
            {
                "authenticator": "oidc",
                "oidc": {k: v for k, v in PROVIDER.items() if k != "client_id"},
            },
            "client_id is required",
        ),
        ({"authenticator": "oidc", "oidc": {**PROVIDER, "scope": ["profile"]}}, "include openid"),
        (
            {"authenticator": "oidc", "oidc": {**PROVIDER, "callback_url": "https://h/cb"}},
            "/hub/oauth_callback",
        ),
        ({"oidc": PROVIDER}, "hub.authenticator is not oidc"),
        ({"users": []}, "unknown setting users"),
    ],
)
def test_bad_settings_are_refused(section: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        HubAuthSettings.from_mapping(section)


def test_the_hub_uses_the_provider_with_the_secret_from_the_environment(
    home: Home, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = _with_hub_section(home, {"authenticator": "oidc", "oidc": PROVIDER})
    monkeypatch.delenv(SECRET_ENV, raising=False)
    with pytest.raises(ConfigError, match=SECRET_ENV):
        hub_config(home, port=8123, proxy_cmd=["/bin/chp"])
    monkeypatch.setenv(SECRET_ENV, "from-the-environment")
    c = hub_config(home, port=8123, proxy_cmd=["/bin/chp"])
    assert c.JupyterHub.authenticator_class is SdeOIDCAuthenticator
    oidc = c.SdeOIDCAuthenticator
    assert (oidc.client_id, oidc.client_secret) == ("sde-hub", "from-the-environment")
    assert oidc.authorize_url == PROVIDER["authorize_url"]
    assert oidc.userdata_url == PROVIDER["userdata_url"]
    assert oidc.username_claim == "preferred_username"
    assert oidc.scope == ["openid", "profile"]
    assert oidc.oauth_callback_url == "http://127.0.0.1:8123/hub/oauth_callback"
    assert oidc.sde_home == str(home.root)
    assert "from-the-environment" not in (home.root / "config.yaml").read_text()


def _events(home: Home) -> list[tuple[str, str]]:
    with control_plane(home) as store:
        return [(e.actor, e.action) for e in store.audit.events() if e.action.startswith("hub.")]


def test_the_provider_says_who_and_sde_says_whether(home: Home) -> None:
    auth = SdeOIDCAuthenticator(
        sde_home=str(home.root),
        client_id="sde-hub",
        client_secret="s",
        **{k: v for k, v in PROVIDER.items() if k != "client_id"},
    )
    model: dict[str, Any] = {"admin": False, "auth_state": {}}
    assert asyncio.run(auth.check_allowed("alice", model)) is True
    assert asyncio.run(auth.check_allowed("nobody", model)) is False
    assert asyncio.run(auth.check_allowed("Not A Person", model)) is False
    assert _events(home) == [
        ("alice", "hub.signin"),
        ("nobody", "hub.signin.refused"),
    ]
    assert asyncio.run(auth.refresh_user(SimpleNamespace(name="alice"))) is True
    with control_plane(home) as store:
        GovernanceService(
            store, policy_engine(home), GovernanceSettings.from_mapping(home.settings.extra)
        ).ban_person(
            "olu", "alice", until=dt.datetime.now(dt.UTC).date() + dt.timedelta(days=9), reason="x"
        )
    assert asyncio.run(auth.check_allowed("alice", model)) is False
    assert _events(home)[-1] == ("alice", "hub.signin.refused")
    # A session already signed in ends at its next refresh.
    assert asyncio.run(auth.refresh_user(SimpleNamespace(name="alice"))) is False
