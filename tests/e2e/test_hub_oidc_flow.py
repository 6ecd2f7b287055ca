"""Signing in to one sde hub through another's OAuth 2 provider, end to end.

No OpenID Connect provider runs on these machines, but JupyterHub is a real OAuth 2
provider: hub A (sde's own, over home A) plays the organisation's provider and knows hub B
as an OAuth client; hub B (over home B) signs people in with
:class:`~sde.hub.oidc.SdeOIDCAuthenticator`. The test configuration points hub B at hub A
over plain HTTP on the loopback, with no ``openid`` scope and the username in the ``name``
claim (what JupyterHub's /hub/api/user answers); ``sde.hub.oidc``'s settings refuse those
in a deployment (https only, openid required: tests/integration/test_hub_oidc.py), so they
are set here directly on the authenticator. The two hubs answer as ``localhost`` and
``127.0.0.1`` so their cookies do not mix.

- alice, a person in home B, signs in at hub A and arrives at hub B signed in;
- zoe is a person at the provider but not in home B: the provider signs her in, hub B
  refuses her, and both decisions are in home B's audit log.
"""

from __future__ import annotations

import datetime as dt
import secrets
import sys
from pathlib import Path

import pytest
import requests

from sde.services.home import Home, init_home
from sde.services.projects import ProjectService
from sde.services.wiring import control_plane, policy_engine
from sde.web.auth import WebAuth
from tests.e2e.hubkit import PROXY, hub_ports, running_hub
from tests.factories import airlock_project

pytestmark = [pytest.mark.e2e, pytest.mark.sql, pytest.mark.policy, pytest.mark.slow]

JUPYTERHUB = str(Path(sys.executable).parent / "jupyterhub")


def _config(path: Path, home: Home, port: int, extra: str) -> Path:
    path.write_text(
        "from pathlib import Path\n"
        "from sde.hub.config import hub_config\n"
        "from sde.services.home import open_home\n"
        f"c.merge(hub_config(open_home(Path({str(home.root)!r})), port={port}, "
        f"proxy_cmd=[{str(PROXY)!r}]))\n" + extra
    )
    return path


def test_a_person_signs_in_at_the_provider_and_sde_decides_who_comes_in(
    tmp_path: Path,
) -> None:
    provider_home = init_home(tmp_path / "provider")
    with control_plane(provider_home) as store:
        for person in ("alice", "zoe"):
            ProjectService(store).add_person(
                "olu", person, roles=["researcher"], organisation="Uni"
            )
    home = init_home(tmp_path / "sde")
    with control_plane(home) as store:
        airlock_project(store, policy_engine(home))  # alice is a person here; zoe is not
    secret = secrets.token_hex(32)
    port_b = hub_ports()
    callback = f"http://127.0.0.1:{port_b}/hub/oauth_callback"
    client = (
        "c.JupyterHub.services.append({'name': 'hub-b', 'oauth_client_id': 'service-hub-b',"
        f" 'api_token': {secret!r}, 'oauth_redirect_uri': {callback!r},"
        " 'oauth_no_confirm': True})\n"
        "[r['scopes'].append('access:services!service=hub-b')"
        " for r in c.JupyterHub.load_roles if r['name'] == 'user']\n"
    )
    with running_hub(
        provider_home,
        tmp_path / "provider.log",
        host="localhost",
        command=lambda port: [
            JUPYTERHUB,
            "-f",
            str(_config(tmp_path / "provider_config.py", provider_home, port, client)),
        ],
    ) as provider:
        authenticator = (
            "from sde.hub.oidc import SdeOIDCAuthenticator\n"
            "c.JupyterHub.authenticator_class = SdeOIDCAuthenticator\n"
            f"c.SdeOIDCAuthenticator.sde_home = {str(home.root)!r}\n"
            "c.SdeOIDCAuthenticator.client_id = 'service-hub-b'\n"
            f"c.SdeOIDCAuthenticator.client_secret = {secret!r}\n"
            f"c.SdeOIDCAuthenticator.authorize_url = '{provider}/hub/api/oauth2/authorize'\n"
            f"c.SdeOIDCAuthenticator.token_url = '{provider}/hub/api/oauth2/token'\n"
            f"c.SdeOIDCAuthenticator.userdata_url = '{provider}/hub/api/user'\n"
            "c.SdeOIDCAuthenticator.username_claim = 'name'\n"
            "c.SdeOIDCAuthenticator.scope = []\n"
            f"c.SdeOIDCAuthenticator.oauth_callback_url = {callback!r}\n"
            "c.SdeOIDCAuthenticator.any_allow_config = True\n"
        )
        with running_hub(
            home,
            tmp_path / "hub.log",
            port=port_b,
            command=lambda port: [
                JUPYTERHUB,
                "-f",
                str(_config(tmp_path / "hub_config.py", home, port, authenticator)),
            ],
        ) as hub:
            for person, admitted in (("alice", True), ("zoe", False)):
                browser = requests.Session()
                # Hub B sends the browser to the provider, which asks who they are.
                start = browser.get(f"{hub}/hub/oauth_login", timeout=30)
                assert start.url.startswith(f"{provider}/hub/login"), start.url
                xsrf = next(c.value for c in browser.cookies if c.name == "_xsrf")
                token = WebAuth(provider_home.master_key()).link_token(
                    person, dt.datetime.now(dt.UTC)
                )
                answer = browser.post(
                    start.url,
                    data={"username": person, "password": token, "_xsrf": xsrf},
                    timeout=60,
                )
                if admitted:
                    assert answer.status_code == 200, answer.text[-500:]
                    assert answer.url.startswith(f"{hub}/hub/"), answer.url
                    who = browser.get(f"{hub}/hub/home", timeout=30)
                    assert who.url == f"{hub}/hub/home"
                    assert person in who.text
                else:
                    assert answer.status_code == 403, (answer.status_code, answer.url)
                    assert answer.url.startswith(f"{hub}/hub/oauth_callback")
    with control_plane(home) as store:
        events = [(e.actor, e.action) for e in store.audit.events() if e.action.startswith("hub.")]
    assert events == [("alice", "hub.signin"), ("zoe", "hub.signin.refused")]
