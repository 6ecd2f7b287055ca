"""A real OpenID Provider for tests: panva's ``oidc-provider`` (node), started by
``tests/oidc_provider.js`` on 127.0.0.1, and a patient who signs in through its forms.

``SDE_SETUP_HUB=1 bash scripts/setup.sh`` installs the package into ``.build/node``; when
node or the package is missing the tests fail with that command, never a silent skip.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from html import unescape
from pathlib import Path
from urllib.parse import parse_qs, urljoin, urlsplit

import httpx
import pytest

from tests.browser import free_port
from tests.processes import running

ROOT = Path(__file__).resolve().parent.parent
LAUNCHER = ROOT / "tests" / "oidc_provider.js"
PACKAGE = ROOT / ".build" / "node" / "node_modules" / "oidc-provider" / "lib" / "index.js"
SETUP = "`SDE_SETUP_HUB=1 bash scripts/setup.sh`"
CLIENT_ID = "sde-patient-page"
REDIRECT_URL = "http://127.0.0.1:9/services/patient/oidc/callback"  # never fetched


@dataclass(frozen=True)
class Provider:
    issuer: str
    client_id: str
    client_secret: str
    redirect_url: str


def _node() -> str:
    node = shutil.which("node")
    if node is None:
        pytest.fail(f"the OpenID provider tests need node: run {SETUP}", pytrace=False)
    if not PACKAGE.exists():
        pytest.fail(
            f"the OpenID provider tests need the npm package oidc-provider: run {SETUP}",
            pytrace=False,
        )
    return node


@contextmanager
def oidc_provider(
    log: Path,
    *,
    nhs_number: str,
    claims_in_id_token: bool = False,
    signing_alg: str = "RS256",
    client_jwks: dict[str, object] | None = None,
    timeout_s: float = 20.0,
) -> Iterator[Provider]:
    """Run the provider; yields its issuer and the one client's credentials. With
    ``client_jwks`` (a public key set) the client authenticates with private_key_jwt."""
    node = _node()
    port = free_port()
    secret = secrets.token_urlsafe(24)
    env = {
        **os.environ,
        "OIDC_TEST_NHS_NUMBER": nhs_number,
        "OIDC_TEST_CLAIMS_IN_ID_TOKEN": "1" if claims_in_id_token else "0",
        "OIDC_TEST_SIGNING_ALG": signing_alg,
        "NODE_NO_WARNINGS": "1",
    }
    if client_jwks is not None:
        env["OIDC_TEST_CLIENT_JWKS"] = json.dumps(client_jwks)
    issuer = f"http://127.0.0.1:{port}"
    argv = [node, str(LAUNCHER), str(port), CLIENT_ID, secret, REDIRECT_URL]
    with running(
        argv,
        name="the OpenID provider",
        ready_url=f"{issuer}/.well-known/openid-configuration",
        log=log,
        env=env,
        timeout_s=timeout_s,
    ):
        yield Provider(issuer, CLIENT_ID, secret, REDIRECT_URL)


_FORM = re.compile(r'<form[^>]*action="([^"]+)"', re.IGNORECASE)


def _form_action(page: httpx.Response) -> str:
    match = _FORM.search(page.text)
    assert match is not None, f"no form on the provider's page {page.url.path}"
    return urljoin(str(page.url), unescape(match.group(1)))


def sign_in(authorization_url: str, login: str, *, abort: bool = False) -> dict[str, str]:
    """Follow ``authorization_url`` through the provider's dev sign-in and consent pages as
    the account ``login``, stopping at the redirect to the page's callback; returns the
    callback's query parameters (``code``, ``state``, ``iss`` or ``error``...). With
    ``abort`` the patient cancels at the sign-in page instead."""
    with httpx.Client(timeout=10) as browser:
        response = browser.get(authorization_url)
        for _ in range(10):
            if response.is_redirect:
                location = urljoin(str(response.url), response.headers["location"])
                if location.startswith(REDIRECT_URL):
                    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}
                response = browser.get(location)
                continue
            assert response.status_code == 200, f"provider answered {response.status_code}"
            action = _form_action(response)
            if abort:
                response = browser.get(action.rstrip("/") + "/abort")
            elif 'name="login"' in response.text:
                response = browser.post(
                    action, data={"prompt": "login", "login": login, "password": "any"}
                )
            else:
                response = browser.post(action, data={"prompt": "consent"})
        raise AssertionError("the provider never redirected to the callback")
