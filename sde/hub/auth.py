"""Sign-in to the hub: a person id and a one-time sign-in token.

An operator runs ``sde web link --person alice`` (or ``sde serve --link alice``) and hands
alice the token; on the hub's login page she gives her person id as the username and the
token as the password. :class:`SdeAuthenticator` accepts her when the token is valid,
unexpired, unused in this hub process and made for her, and she is a person in the
control plane who is not banned (herself or through her organisation). Every outcome is
audited (``hub.signin`` / ``hub.signin.refused``); the token is never logged.

Signed-in sessions are re-checked every ``auth_refresh_age`` seconds
(:meth:`SdeAuthenticator.refresh_user`): a person removed or banned since signing in must
sign in again, and cannot.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from jupyterhub.auth import Authenticator  # type: ignore[import-untyped]
from traitlets import Unicode, default

from sde.adapters.sql import ControlPlane
from sde.domain.governance import effective_ban_until
from sde.domain.projects import PERSON_ID
from sde.errors import NotFound
from sde.services.home import Home, open_home
from sde.services.wiring import control_plane
from sde.web.auth import NonceRegister, SignInError, WebAuth


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def refusal(store: ControlPlane, person_id: str, now: dt.datetime) -> str | None:
    """Why ``person_id`` may not sign in now (unknown, banned), or None when they may."""
    try:
        person = store.get_person(person_id)
    except NotFound:
        return "not a person in the control plane"
    ban = effective_ban_until(person, store.get_organisation_ban(person.organisation))
    if ban is not None and ban > now:
        return "banned"
    return None


class SdeAuthenticator(Authenticator):  # type: ignore[misc]
    """Username: a person id. Password: a one-time sign-in token made for that person."""

    sde_home = Unicode(help="The sde home (state directory) whose people sign in.").tag(config=True)

    @default("allow_all")
    def _allow_all_default(self) -> bool:
        # Who may sign in is decided here, against the control plane, not by a hub list.
        return True

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._used = NonceRegister()

    def _home(self) -> Home:
        if not self.sde_home:
            raise RuntimeError("SdeAuthenticator.sde_home is not set")
        return open_home(Path(self.sde_home))

    async def authenticate(self, handler: Any, data: dict[str, str]) -> str | None:
        return self.check_credentials(
            str(data.get("username") or ""), str(data.get("password") or ""), _now()
        )

    def check_credentials(self, username: str, token: str, now: dt.datetime) -> str | None:
        """The person id when ``token`` signs ``username`` in at ``now``; None (and a log
        line naming the person and the reason, never the token) otherwise."""
        person_id = username.strip().lower()
        if not PERSON_ID.fullmatch(person_id):
            self.log.warning("sign-in refused: the username is not a person id")
            return None
        home = self._home()
        with control_plane(home) as store:
            try:
                claim = WebAuth(home.master_key()).check_link(token.strip(), now)
            except SignInError as exc:
                reason: str | None = str(exc)
            else:
                if claim.person != person_id:
                    reason = "the sign-in token was made for someone else"
                else:
                    reason = refusal(store, person_id, now)
                if reason is None and not self._used.use(claim, now):
                    reason = "the sign-in token was already used"
            if reason is not None:
                self.log.warning("sign-in refused for %s: %s", person_id, reason)
                store.audit.record(person_id, "hub.signin.refused", f"person:{person_id}", {})
                return None
            store.audit.record(person_id, "hub.signin", f"person:{person_id}", {})
        self.log.info("signed in %s", person_id)
        return person_id

    async def refresh_user(self, user: Any, handler: Any = None) -> bool:
        """False (sign in again) once the person is gone or banned."""
        with control_plane(self._home()) as store:
            reason = refusal(store, str(user.name), _now())
        if reason is not None:
            self.log.warning("session ended for %s: %s", user.name, reason)
            return False
        return True
