"""The airlock page as a JupyterHub service: served under /services/airlock, signed in to
through the hub's OAuth (code flow with PKCE), one-time links refused. Here the hub is
not running (its API address answers nothing), so every exchange fails: what is checked
is what the page does before and around it. The whole flow against the real hub is in
tests/e2e/test_hub_session.py."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from jupyterhub.services.auth import HubOAuth

from sde.services.home import Home, init_home
from sde.services.wiring import control_plane, policy_engine
from sde.web.app import OAUTH_STATE_COOKIE, create_app
from sde.web.hub import HubSignIn
from tests.browser import free_port, serve
from tests.factories import airlock_project

pytestmark = [pytest.mark.sql, pytest.mark.policy]

BASE = "/services/airlock"


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Home:
    home = init_home(tmp_path_factory.mktemp("webhub") / "h")
    with control_plane(home) as plane:
        airlock_project(plane, policy_engine(home))
    return home


@pytest.fixture(scope="module")
def base_url(home: Home) -> Iterator[str]:
    oauth = HubOAuth(
        api_token="a" * 32,
        oauth_client_id="service-airlock",
        api_url=f"http://127.0.0.1:{free_port()}/hub/api/",  # nothing listens there
        base_url=f"{BASE}/",
        hub_prefix="/hub/",
        oauth_redirect_uri=f"{BASE}/oauth_callback",
    )
    with serve(create_app(home, base=BASE, hub=HubSignIn(oauth))) as url:
        yield url


@pytest.fixture
def client(base_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=base_url, follow_redirects=False, timeout=10) as client:
        yield client


def test_a_visitor_is_sent_to_the_hub_with_state_and_pkce(client: httpx.Client) -> None:
    first = client.get(f"{BASE}/queue")
    assert first.status_code == 303
    assert first.headers["location"] == f"{BASE}/signin"
    start = client.get(f"{BASE}/signin")
    assert start.status_code == 303
    target = urlsplit(start.headers["location"])
    assert target.path == "/hub/api/oauth2/authorize"
    query = {k: v[0] for k, v in parse_qs(target.query).items()}
    assert query["client_id"] == "service-airlock"
    assert query["redirect_uri"] == f"{BASE}/oauth_callback"
    assert query["response_type"] == "code"
    assert query["code_challenge_method"] == "S256"
    assert len(query["code_challenge"]) == 43  # base64url of a SHA-256
    cookie = start.headers["set-cookie"]
    assert cookie.startswith(f"{OAUTH_STATE_COOKIE}={query['state']};")
    assert f"Path={BASE}/" in cookie
    assert "HttpOnly" in cookie
    assert "SameSite=lax" in cookie


def test_the_callback_refuses_a_state_that_is_not_this_browsers(client: httpx.Client) -> None:
    client.get(f"{BASE}/signin")
    answer = client.get(f"{BASE}/oauth_callback", params={"state": "forged", "code": "c"})
    assert answer.status_code == 401
    assert "does not belong to this browser" in answer.text
    assert "Signed in as" not in answer.text


def test_a_state_works_once_and_a_failed_exchange_signs_no_one_in(client: httpx.Client) -> None:
    start = client.get(f"{BASE}/signin")
    state = parse_qs(urlsplit(start.headers["location"]).query)["state"][0]
    for _ in range(2):  # the hub cannot be reached: refused; then the state is used up
        answer = client.get(f"{BASE}/oauth_callback", params={"state": state, "code": "c"})
        assert answer.status_code == 401
        assert "could not be completed" in answer.text
        assert "sde_session" not in answer.headers.get("set-cookie", "")


def test_one_time_links_are_not_accepted_behind_the_hub(client: httpx.Client) -> None:
    answer = client.post(f"{BASE}/signin", data={"token": "anything"})
    assert answer.status_code == 404


def test_pages_and_links_live_under_the_prefix(client: httpx.Client) -> None:
    css = client.get(f"{BASE}/static/sde.css")
    assert css.status_code == 200
    assert "text/css" in css.headers["content-type"]
    outside = client.get("/queue")
    assert outside.status_code == 404
    assert outside.headers["x-frame-options"] == "DENY"
    error = client.get(f"{BASE}/oauth_callback", params={"state": "x", "code": "y"})
    assert f'href="{BASE}/static/sde.css"' in error.text
    assert 'href="/static' not in error.text


def test_base_must_be_a_clean_path(home: Home) -> None:
    for bad in ("services/airlock", "/services/airlock/"):
        with pytest.raises(ValueError, match="base must start with /"):
            create_app(home, base=bad)
