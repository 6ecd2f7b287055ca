"""Signing in at the hub through an OpenID Connect provider (a deployment's), instead of
sde's one-time tokens (the embedded default).

Configured in the home's ``config.yaml``::

    hub:
      authenticator: oidc
      oidc:
        client_id: sde-hub
        authorize_url: https://login.example.nhs.uk/authorize
        token_url: https://login.example.nhs.uk/token
        userdata_url: https://login.example.nhs.uk/userinfo
        username_claim: preferred_username   # its value must be the sde person id
        scope: [openid, profile]
        callback_url: https://sde.example.nhs.uk/hub/oauth_callback   # behind TLS

The client secret is never in the config file: it comes from ``SDE_OIDC_CLIENT_SECRET`` in
the hub's environment. Every address must be ``https``.

:class:`SdeOIDCAuthenticator` is oauthenticator's ``GenericOAuthenticator`` with sde
deciding who may come in: the provider says who the person is; the control plane says
whether they may sign in (a known person, not banned, their organisation not banned),
at sign-in and at every refresh, each sign-in audited (``hub.signin`` /
``hub.signin.refused``) as with the one-time tokens.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from oauthenticator.generic import GenericOAuthenticator  # type: ignore[import-untyped]
from traitlets import Unicode

from sde.domain.projects import PERSON_ID
from sde.errors import ConfigError
from sde.hub.auth import _now, refusal
from sde.services.home import open_home
from sde.services.wiring import control_plane

SECRET_ENV = "SDE_OIDC_CLIENT_SECRET"  # noqa: S105 (the variable's name)
AUTHENTICATORS = ("token", "oidc")
_OIDC_KEYS = frozenset(
    {
        "client_id",
        "authorize_url",
        "token_url",
        "userdata_url",
        "username_claim",
        "scope",
        "callback_url",
    }
)


@dataclass(frozen=True)
class OidcSettings:
    client_id: str
    authorize_url: str
    token_url: str
    userdata_url: str
    username_claim: str = "preferred_username"
    scope: tuple[str, ...] = ("openid", "profile")
    callback_url: str | None = None  # the hub's public /hub/oauth_callback, behind TLS


@dataclass(frozen=True)
class HubAuthSettings:
    """The ``hub:`` section: which authenticator, and the provider's settings."""

    authenticator: str = "token"
    oidc: OidcSettings | None = None

    @classmethod
    def from_mapping(cls, data: Any) -> HubAuthSettings:
        if data is None:
            return cls()
        if not isinstance(data, Mapping):
            raise ConfigError("hub: must be a mapping")
        unknown = sorted(set(data) - {"authenticator", "oidc"})
        if unknown:
            raise ConfigError(f"hub: unknown setting {', '.join(map(str, unknown))}")
        kind = data.get("authenticator", "token")
        if kind not in AUTHENTICATORS:
            raise ConfigError(f"hub.authenticator must be one of {', '.join(AUTHENTICATORS)}")
        if kind == "token":
            if data.get("oidc") is not None:
                raise ConfigError("hub.oidc is set but hub.authenticator is not oidc")
            return cls()
        return cls("oidc", _oidc(data.get("oidc")))


def _oidc(data: Any) -> OidcSettings:
    if not isinstance(data, Mapping):
        raise ConfigError("hub.oidc must be a mapping of the provider's settings")
    if "client_secret" in data:
        raise ConfigError(
            f"hub.oidc.client_secret must not be in the config file: set {SECRET_ENV} "
            "in the hub's environment"
        )
    unknown = sorted(set(map(str, data)) - _OIDC_KEYS)
    if unknown:
        raise ConfigError(f"hub.oidc: unknown setting {', '.join(unknown)}")
    values: dict[str, Any] = {}
    for key in ("client_id", "authorize_url", "token_url", "userdata_url"):
        value = data.get(key)
        if not isinstance(value, str) or not value.strip():
            raise ConfigError(f"hub.oidc.{key} is required")
        if key.endswith("_url"):
            parts = urlsplit(value)
            if parts.scheme != "https" or not parts.hostname:
                raise ConfigError(f"hub.oidc.{key} must be an https address")
        values[key] = value.strip()
    claim = data.get("username_claim", "preferred_username")
    if not isinstance(claim, str) or not claim:
        raise ConfigError("hub.oidc.username_claim must be a claim's name")
    scope = data.get("scope", ["openid", "profile"])
    if not isinstance(scope, list) or not all(isinstance(s, str) and s for s in scope):
        raise ConfigError("hub.oidc.scope must be a list of scope names")
    if "openid" not in scope:
        raise ConfigError("hub.oidc.scope must include openid")
    callback = data.get("callback_url")
    if callback is not None:
        parts = urlsplit(str(callback))
        if parts.scheme != "https" or not parts.path.endswith("/hub/oauth_callback"):
            raise ConfigError(
                "hub.oidc.callback_url must be the hub's https address ending /hub/oauth_callback"
            )
    return OidcSettings(
        **values,
        username_claim=claim,
        scope=tuple(scope),
        callback_url=str(callback) if callback is not None else None,
    )


def client_secret(environ: Mapping[str, str]) -> str:
    secret = environ.get(SECRET_ENV, "")
    if not secret:
        raise ConfigError(f"signing in with OpenID Connect needs {SECRET_ENV} in the environment")
    return secret


class SdeOIDCAuthenticator(GenericOAuthenticator):  # type: ignore[misc]
    """The provider says who; sde's control plane says whether."""

    sde_home = Unicode(help="The sde home (state directory) whose people sign in.").tag(config=True)

    def _refusal(self, username: str) -> str | None:
        if not PERSON_ID.fullmatch(username):
            return "the provider's username is not a person id"
        with control_plane(open_home(Path(self.sde_home))) as store:
            reason = refusal(store, username, _now())
            action = "hub.signin" if reason is None else "hub.signin.refused"
            store.audit.record(username, action, f"person:{username}", {"via": "oidc"})
        return reason

    async def check_allowed(self, username: str, auth_model: Any) -> bool:
        reason = self._refusal(username)
        if reason is not None:
            self.log.warning("sign-in refused for %s: %s", username, reason)
            return False
        self.log.info("signed in %s (OpenID Connect)", username)
        return True

    async def refresh_user(self, user: Any, handler: Any = None, **kwargs: Any) -> Any:
        with control_plane(open_home(Path(self.sde_home))) as store:
            reason = refusal(store, str(user.name), _now())
        if reason is not None:
            self.log.warning("session ended for %s: %s", user.name, reason)
            return False
        return await super().refresh_user(user, handler, **kwargs)


def oidc_config(settings: OidcSettings, *, callback_url: str, sde_home: str) -> dict[str, Any]:
    """``c.SdeOIDCAuthenticator.<trait>`` values."""
    return {
        "sde_home": sde_home,
        "client_id": settings.client_id,
        "client_secret": client_secret(os.environ),
        "authorize_url": settings.authorize_url,
        "token_url": settings.token_url,
        "userdata_url": settings.userdata_url,
        "username_claim": settings.username_claim,
        "scope": list(settings.scope),
        "oauth_callback_url": settings.callback_url or callback_url,
        "login_service": "your organisation's sign-in",
        "enable_auth_state": False,
        "allow_all": False,
        "any_allow_config": True,  # check_allowed asks the control plane
    }
