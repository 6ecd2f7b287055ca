"""A patient signs in through a real OpenID Provider (panva's certified ``oidc-provider``,
run by node on the loopback): start, the provider's own sign-in and consent pages, the
callback, and :meth:`PatientOIDC.finish` returning the NHS number from the verified ID
token or the userinfo endpoint. And every refusal: a reused, forged or expired state, a
state that is not the browser's cookie, the patient cancelling, a missing or invalid
``nhs_number`` claim, a tampered or re-signed ID token, an ID token without a signature or
signed with a shared secret, userinfo answering for someone else. No refusal message
holds the NHS number.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import json
import logging
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from sde.domain.nhs_number import complete
from sde.web.patient_oidc import (
    STATE_LIFETIME,
    PatientOIDC,
    PatientOIDCError,
    PatientOIDCSettings,
)
from tests.oidc_kit import Provider, oidc_provider, sign_in

pytestmark = [pytest.mark.e2e]

NHS_NUMBER = complete("943476591") or ""  # a synthetic, valid number


def now() -> dt.datetime:
    """The time of the call: tokens are issued when the test runs, not when it was
    collected (a module-level time was minutes early in the full suite)."""
    return dt.datetime.now(dt.UTC)


Edit = Callable[[str, dict[str, Any]], dict[str, Any]]


@pytest.fixture(scope="module")
def provider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Provider]:
    log = tmp_path_factory.mktemp("oidc") / "provider.log"
    with oidc_provider(log, nhs_number=NHS_NUMBER) as running:
        yield running


def settings(provider: Provider) -> PatientOIDCSettings:
    return PatientOIDCSettings(
        issuer=provider.issuer,
        client_id=provider.client_id,
        client_secret=provider.client_secret,
        redirect_url=provider.redirect_url,
    )


class Intercepting(httpx.AsyncBaseTransport):
    """The real transport to the provider, recording the paths asked for and editing the
    JSON answers (token, userinfo) on the way back."""

    def __init__(self, edit: Edit | None, seen: list[str] | None) -> None:
        self.real = httpx.AsyncHTTPTransport()
        self.edit = edit
        self.seen = seen

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.real.handle_async_request(request)
        content = await response.aread()
        await response.aclose()
        if self.seen is not None:
            self.seen.append(request.url.path)
        kind = response.headers.get("content-type", "")
        if self.edit is not None and kind.startswith("application/json") and response.is_success:
            content = json.dumps(self.edit(request.url.path, json.loads(content))).encode()
        return httpx.Response(response.status_code, headers={"content-type": kind}, content=content)

    async def aclose(self) -> None:
        await self.real.aclose()


def http(edit: Edit | None = None, seen: list[str] | None = None) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=Intercepting(edit, seen), timeout=10)


def run(
    provider: Provider,
    scenario: Callable[[PatientOIDC], Awaitable[str]],
    *,
    client: httpx.AsyncClient | None = None,
    max_pending: int = 100,
) -> str:
    async def main() -> str:
        async with client if client is not None else httpx.AsyncClient(timeout=10) as own:
            oidc = PatientOIDC(settings(provider), http=own, max_pending=max_pending)
            return await scenario(oidc)

    return asyncio.run(main())


async def through_provider(
    oidc: PatientOIDC, login: str, *, abort: bool = False
) -> tuple[dict[str, str], str]:
    url, state = await oidc.start(now())
    query = await asyncio.to_thread(sign_in, url, login, abort=abort)
    return query, state


def refused(
    provider: Provider,
    scenario: Callable[[PatientOIDC], Awaitable[str]],
    caplog: pytest.LogCaptureFixture,
    **kwargs: Any,
) -> str:
    """The refusal's message; fails if the scenario signed in, or if the NHS number is in
    the message or any log line."""
    caplog.set_level(logging.DEBUG)
    with pytest.raises(PatientOIDCError) as info:
        run(provider, scenario, **kwargs)
    message = str(info.value)
    leaked = NHS_NUMBER in message or any(NHS_NUMBER in r.getMessage() for r in caplog.records)
    assert not leaked, "a refusal message or log line holds the NHS number"
    return message


def test_a_patient_signs_in_and_the_nhs_number_comes_from_userinfo(
    provider: Provider, caplog: pytest.LogCaptureFixture
) -> None:
    seen: list[str] = []

    async def scenario(oidc: PatientOIDC) -> str:
        query, state = await through_provider(oidc, "patient")
        assert set(query) >= {"code", "state", "iss"}
        assert query["state"] == state
        number = await oidc.callback(query, state, now())
        assert oidc.pending == 0
        return number

    caplog.set_level(logging.DEBUG)
    assert run(provider, scenario, client=http(seen=seen)) == NHS_NUMBER
    # the provider conforms to the spec: with the code flow the profile claims are not in
    # the ID token, so the number came from the userinfo endpoint
    assert "/me" in seen
    assert seen.count("/.well-known/openid-configuration") == 1
    leaked = any(NHS_NUMBER in r.getMessage() for r in caplog.records)
    assert not leaked, "a log line holds the NHS number"


@pytest.mark.parametrize("alg", ["RS256", "RS512", "ES256"])
def test_the_nhs_number_in_the_id_token_needs_no_userinfo(tmp_path: Path, alg: str) -> None:
    seen: list[str] = []

    async def scenario(oidc: PatientOIDC) -> str:
        query, state = await through_provider(oidc, "patient")
        return await oidc.finish(query["state"], state, query["code"], now(), iss=query["iss"])

    algs: list[str] = []

    def record(path: str, body: dict[str, Any]) -> dict[str, Any]:
        if path == "/token":
            algs.append(jwt.get_unverified_header(body["id_token"])["alg"])
        return body

    with oidc_provider(
        tmp_path / "provider.log", nhs_number=NHS_NUMBER, claims_in_id_token=True, signing_alg=alg
    ) as own:
        assert run(own, scenario, client=http(record, seen)) == NHS_NUMBER
    assert algs == [alg]
    assert "/me" not in seen
    assert "/jwks" in seen


def test_a_state_is_used_once(provider: Provider, caplog: pytest.LogCaptureFixture) -> None:
    async def scenario(oidc: PatientOIDC) -> str:
        query, state = await through_provider(oidc, "patient")
        assert await oidc.callback(query, state, now()) == NHS_NUMBER
        return await oidc.callback(query, state, now())  # replayed

    assert "already used" in refused(provider, scenario, caplog)


def test_a_forged_state_is_refused(provider: Provider, caplog: pytest.LogCaptureFixture) -> None:
    async def scenario(oidc: PatientOIDC) -> str:
        query, _state = await through_provider(oidc, "patient")
        forged = "x" * 43
        return await oidc.finish(forged, forged, query["code"], now())

    assert "expired or was already used" in refused(provider, scenario, caplog)


@pytest.mark.parametrize("cookie", [None, "another-browser's-state"])
def test_a_state_that_is_not_the_browsers_cookie_is_refused(
    provider: Provider, caplog: pytest.LogCaptureFixture, cookie: str | None
) -> None:
    async def scenario(oidc: PatientOIDC) -> str:
        query, state = await through_provider(oidc, "patient")
        try:
            return await oidc.callback(query, cookie, now())
        finally:
            # the state is spent even so: the right cookie afterwards does not help
            with pytest.raises(PatientOIDCError, match="already used"):
                await oidc.callback(query, state, now())

    assert "did not start in this browser" in refused(provider, scenario, caplog)


def test_an_expired_state_is_refused(provider: Provider, caplog: pytest.LogCaptureFixture) -> None:
    async def scenario(oidc: PatientOIDC) -> str:
        query, state = await through_provider(oidc, "patient")
        later = now() + STATE_LIFETIME + dt.timedelta(seconds=1)
        return await oidc.callback(query, state, later)

    assert "expired" in refused(provider, scenario, caplog)


def test_sign_ins_in_progress_are_capped_and_expired_ones_forgotten(provider: Provider) -> None:
    async def scenario(oidc: PatientOIDC) -> str:
        await oidc.start(now())
        await oidc.start(now())
        with pytest.raises(PatientOIDCError, match="too many sign-ins"):
            await oidc.start(now())
        later = now() + STATE_LIFETIME
        await oidc.start(later)  # the two earlier ones have expired and are forgotten
        assert oidc.pending == 1
        return "ok"

    assert run(provider, scenario, max_pending=2) == "ok"


def test_the_patient_cancelling_at_the_provider_is_refused(
    provider: Provider, caplog: pytest.LogCaptureFixture
) -> None:
    async def scenario(oidc: PatientOIDC) -> str:
        query, state = await through_provider(oidc, "patient", abort=True)
        assert query.get("error") == "access_denied"
        return await oidc.callback(query, state, now())

    message = refused(provider, scenario, caplog)
    assert message == "the sign-in provider did not sign you in (access_denied)"


@pytest.mark.parametrize(
    ("login", "words"),
    [
        ("no-number", "did not give the nhs_number claim"),
        ("bad-number", "the nhs_number claim is not a valid NHS number"),
    ],
)
def test_an_account_without_a_valid_nhs_number_is_refused(
    provider: Provider, caplog: pytest.LogCaptureFixture, login: str, words: str
) -> None:
    async def scenario(oidc: PatientOIDC) -> str:
        query, state = await through_provider(oidc, login)
        return await oidc.callback(query, state, now())

    message = refused(provider, scenario, caplog)
    assert words in message
    assert "1234567890" not in message  # the invalid value is not repeated either


def _flip_signature(token: str) -> str:
    head, body, signature = token.split(".")
    raw = bytearray(base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4)))
    raw[0] ^= 1
    return ".".join([head, body, base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode()])


def _claims(token: str) -> dict[str, Any]:
    claims: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    return claims


def _resigned_with_another_key(token: str) -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    kid = jwt.get_unverified_header(token).get("kid")
    return jwt.encode(_claims(token), key, algorithm="RS256", headers={"kid": kid})


def _with_claims(token: str, **changes: Any) -> str:
    head, _body, signature = token.split(".")
    body = base64.urlsafe_b64encode(json.dumps(_claims(token) | changes).encode())
    return ".".join([head, body.rstrip(b"=").decode(), signature])


def _unsigned(token: str) -> str:
    return jwt.encode(_claims(token), "", algorithm="none")


def _edit_id_token(change: Callable[[str], str]) -> Edit:
    def edit(path: str, body: dict[str, Any]) -> dict[str, Any]:
        if path == "/token":
            body["id_token"] = change(body["id_token"])
        return body

    return edit


@pytest.mark.parametrize(
    ("change", "words"),
    [
        (_flip_signature, "signature is not valid"),
        (_resigned_with_another_key, "signature is not valid"),
        (lambda t: _with_claims(t, nonce="another"), "signature is not valid"),
        (_unsigned, "signature algorithm is not accepted"),
        ("hs256", "signature algorithm is not accepted"),
        (lambda t: "not-a-token", "not a signed token"),
    ],
    ids=["flipped", "another-key", "edited-claims", "alg-none", "hs256-with-secret", "garbage"],
)
def test_a_tampered_id_token_is_refused(
    provider: Provider,
    caplog: pytest.LogCaptureFixture,
    change: Callable[[str], str] | str,
    words: str,
) -> None:
    def hs256(token: str) -> str:  # signed with the client secret, which the client holds
        return jwt.encode(_claims(token), provider.client_secret, algorithm="HS256")

    edit = _edit_id_token(hs256 if isinstance(change, str) else change)

    async def scenario(oidc: PatientOIDC) -> str:
        query, state = await through_provider(oidc, "patient")
        return await oidc.callback(query, state, now())

    message = refused(provider, scenario, caplog, client=http(edit))
    assert words in message


def test_userinfo_for_another_person_is_refused(
    provider: Provider, caplog: pytest.LogCaptureFixture
) -> None:
    def edit(path: str, body: dict[str, Any]) -> dict[str, Any]:
        if path == "/me":
            body["sub"] = "someone-else"
        return body

    async def scenario(oidc: PatientOIDC) -> str:
        query, state = await through_provider(oidc, "patient")
        return await oidc.callback(query, state, now())

    message = refused(provider, scenario, caplog, client=http(edit))
    assert "different person" in message


def test_an_expired_id_token_is_refused(
    provider: Provider, caplog: pytest.LogCaptureFixture
) -> None:
    # the provider's ID tokens live an hour; the page's clock says two hours later (and
    # the state was made then, so only the token's age is wrong)
    later = now() + dt.timedelta(hours=2)

    async def scenario(oidc: PatientOIDC) -> str:
        url, state = await oidc.start(later)
        query = await asyncio.to_thread(sign_in, url, "patient")
        return await oidc.callback(query, state, later)

    assert refused(provider, scenario, caplog) == "the ID token has expired"


def _key_pair(kind: str) -> tuple[str, dict[str, Any]]:
    """A private key as PEM and its public half as a JWK set."""
    if kind == "RSA":
        key: Any = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        public = json.loads(RSAAlgorithm.to_jwk(key.public_key()))
    else:
        key = ec.generate_private_key(ec.SECP256R1())
        public = json.loads(ECAlgorithm.to_jwk(key.public_key()))
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    return pem, {"keys": [public | {"kid": "page-key", "use": "sig"}]}


@pytest.mark.parametrize(("kind", "alg"), [("RSA", "RS512"), ("EC", "ES256")])
def test_the_page_authenticates_with_a_private_key_as_nhs_login_requires(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, kind: str, alg: str
) -> None:
    pem, public = _key_pair(kind)
    assertions: list[dict[str, str]] = []

    class Recording(Intercepting):
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            if request.url.path == "/token":
                assertions.append({k: v[0] for k, v in parse_qs(request.content.decode()).items()})
            return await super().handle_async_request(request)

    async def scenario(oidc: PatientOIDC) -> str:
        query, state = await through_provider(oidc, "patient")
        return await oidc.callback(query, state, now())

    with oidc_provider(tmp_path / "provider.log", nhs_number=NHS_NUMBER, client_jwks=public) as own:
        keyed = replace(
            settings(own), client_secret="", client_auth="private_key_jwt", private_key_pem=pem
        )

        async def main(key_pem: str) -> str:
            async with httpx.AsyncClient(transport=Recording(None, None), timeout=10) as client:
                oidc = PatientOIDC(replace(keyed, private_key_pem=key_pem), http=client)
                return await scenario(oidc)

        assert asyncio.run(main(pem)) == NHS_NUMBER
        (sent,) = assertions
        assert "client_secret" not in sent
        assert sent["client_assertion_type"].endswith(":jwt-bearer")
        header = jwt.get_unverified_header(sent["client_assertion"])
        assert header["alg"] == alg
        claims = _claims(sent["client_assertion"])
        assert claims["iss"] == claims["sub"] == own.client_id
        assert claims["aud"] == f"{own.issuer}/token"
        assert 0 < claims["exp"] - claims["iat"] <= 300

        # a key the provider does not know is refused at the token endpoint
        caplog.set_level(logging.DEBUG)
        with pytest.raises(PatientOIDCError) as info:
            asyncio.run(main(_key_pair(kind)[0]))
        assert str(info.value) == "the sign-in provider refused the sign-in code (invalid_client)"


def test_a_code_from_another_sign_in_is_refused(
    provider: Provider, caplog: pytest.LogCaptureFixture
) -> None:
    # an attacker's code injected into a patient's callback: the PKCE verifier (and the
    # nonce) belong to the patient's sign-in, so the provider refuses the code
    async def scenario(oidc: PatientOIDC) -> str:
        _url, state = await oidc.start(now())
        attackers, _ = await through_provider(oidc, "patient")
        return await oidc.finish(state, state, attackers["code"], now())

    message = refused(provider, scenario, caplog)
    assert message == "the sign-in provider refused the sign-in code (invalid_grant)"


def test_an_answer_naming_another_issuer_is_refused(
    provider: Provider, caplog: pytest.LogCaptureFixture
) -> None:
    async def scenario(oidc: PatientOIDC) -> str:
        query, state = await through_provider(oidc, "patient")
        return await oidc.callback(query | {"iss": "https://evil.example"}, state, now())

    assert "different sign-in provider" in refused(provider, scenario, caplog)
