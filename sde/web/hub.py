"""Signing in to the airlock page through JupyterHub, when the page runs as one of the
hub's services: one sign-in for researchers, output checkers and operators.

The hub starts the page (``sde web serve --hub``) with its OAuth client id, secret (the
service's API token) and callback URL in ``JUPYTERHUB_*`` variables; JupyterHub's own
:class:`~jupyterhub.services.auth.HubOAuth` reads them. The flow is OAuth 2's code flow
with PKCE:

1. ``/signin`` remembers a random state with its PKCE verifier (here, for ten minutes;
   once) and in a cookie, and sends the browser to the hub's ``authorize`` URL;
2. the hub signs the person in (its authenticator: sde's one-time tokens, or an OpenID
   Connect provider in a deployment) and sends the browser back to ``/oauth_callback``
   with a code;
3. the page checks the state against the cookie and its memory, exchanges the code (and
   verifier) for a token, asks the hub whose token it is, and starts its own session for
   that person. The person's roles come from sde's control plane, not from the hub.

Nothing here logs a token, a code or a state.
"""

from __future__ import annotations

import datetime as dt
import secrets
import threading
from typing import Any
from urllib.parse import urlencode

from sde.domain.projects import PERSON_ID

STATE_SECONDS = 600


class HubSignIn:
    """OAuth against the hub for one service. ``oauth`` is a ``HubOAuth`` (or anything
    with its ``login_url``, ``generate_pkce_code_challenge``, ``token_for_code`` and
    ``user_for_token``)."""

    def __init__(self, oauth: Any, *, logout_url: str = "/hub/logout") -> None:
        self.oauth = oauth
        self.logout_url = logout_url
        self._pending: dict[str, tuple[str, dt.datetime]] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_environment(cls) -> HubSignIn:
        """From the ``JUPYTERHUB_*`` variables the hub gives a service it manages."""
        from jupyterhub.services.auth import HubOAuth  # type: ignore[import-untyped]

        oauth = HubOAuth(cache_max_age=60)
        return cls(oauth, logout_url=f"{oauth.hub_prefix.rstrip('/')}/logout")

    def start(self, now: dt.datetime) -> tuple[str, str]:
        """A new state, and the hub URL to send the browser to."""
        state = secrets.token_urlsafe(32)
        verifier, challenge, method = self.oauth.generate_pkce_code_challenge()
        with self._lock:
            self._forget_expired(now)
            self._pending[state] = (verifier, now + dt.timedelta(seconds=STATE_SECONDS))
        query = urlencode(
            {"state": state, "code_challenge": challenge, "code_challenge_method": method}
        )
        return state, f"{self.oauth.login_url}&{query}"

    async def finish(self, state: str, code: str, now: dt.datetime) -> str | None:
        """The person the hub signed in, or ``None`` when the state is unknown, used or
        expired, or the hub does not vouch for the code."""
        with self._lock:
            self._forget_expired(now)
            pending = self._pending.pop(state, None)
        if pending is None:
            return None
        verifier, _ = pending
        try:
            token = await self.oauth.token_for_code(code, sync=False, code_verifier=verifier)
            model = await self.oauth.user_for_token(token, use_cache=False, sync=False)
        except Exception:  # the hub's refusal, whatever its form, is a refusal
            return None
        if not isinstance(model, dict) or model.get("kind", "user") != "user":
            return None
        name = model.get("name")
        if not isinstance(name, str):
            return None
        return name if PERSON_ID.fullmatch(name) else None

    def _forget_expired(self, now: dt.datetime) -> None:
        for state in [s for s, (_, until) in self._pending.items() if until <= now]:
            del self._pending[state]
