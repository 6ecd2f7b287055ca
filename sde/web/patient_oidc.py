"""A patient signs in to their record page through an OpenID Connect provider.

In England the provider is NHS login, whose ID token (or userinfo answer) carries the
patient's NHS number in an ``nhs_number`` claim. The embedded default signs patients in
with NHS number, date of birth and postcode instead; a deployment chooses the provider in
the home's ``config.yaml``::

    patient_page:
      sign_in: oidc                 # or "details" (the default)
      oidc:
        issuer: https://auth.login.nhs.uk
        client_id: sde-patient-page
        redirect_url: https://sde.example/services/patient/oidc/callback
        nhs_number_claim: nhs_number    # the default
        scopes: [openid, profile]       # the default; openid is required
        client_auth: private_key_jwt    # or client_secret (the default)
        private_key_id: sde-2026        # optional kid for the client assertion

Nothing secret is in the config file: the client secret comes from
``SDE_PATIENT_OIDC_CLIENT_SECRET``, or, with ``private_key_jwt`` (the only client
authentication NHS login accepts), the PEM private key from ``SDE_PATIENT_OIDC_PRIVATE_KEY``,
both in the page's environment. The reference is ``docs/patient-page-oidc.md``.

:class:`PatientOIDC` is the authorization code flow with PKCE (S256), a state and a nonce
remembered server-side for ten minutes, each used once. The NHS number comes only from a
*verified* ID token (signature against the provider's published keys, issuer, audience,
times, nonce) or from the userinfo endpoint answering for the same subject, and must pass
Modulus 11. Every refusal is a :class:`PatientOIDCError` in plain words; no message or log
line holds a token, a code or a claim's value.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import secrets
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote_plus, urlencode, urlsplit

import httpx
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from sde.domain import nhs_number
from sde.domain.encoding import b64url, is_loopback
from sde.errors import ConfigError, SdeError

SECRET_ENV = "SDE_PATIENT_OIDC_CLIENT_SECRET"  # noqa: S105 (the variable's name)
PRIVATE_KEY_ENV = "SDE_PATIENT_OIDC_PRIVATE_KEY"
CLIENT_AUTH = ("client_secret", "private_key_jwt")
ASSERTION_LIFETIME = dt.timedelta(minutes=5)
_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
SIGN_IN_METHODS = ("details", "oidc")
STATE_LIFETIME = dt.timedelta(minutes=10)
MAX_PENDING = 10_000
# Asymmetric signatures only: never "none", never HS* (a shared secret the client also
# holds could forge tokens). NHS login signs its ID tokens with RS512.
ALGORITHMS = ("RS256", "RS512", "ES256")
_KEY_TYPES = {"RS256": "RSA", "RS512": "RSA", "ES256": "EC"}
LEEWAY = dt.timedelta(seconds=60)
HTTP_TIMEOUT_S = 10.0
JWKS_REFRESH = dt.timedelta(minutes=1)  # at most one refetch a minute for an unknown key
_OIDC_KEYS = (
    "issuer",
    "client_id",
    "redirect_url",
    "nhs_number_claim",
    "scopes",
    "client_auth",
    "private_key_id",
)
# Error codes of OAuth 2 / OpenID Connect: only these are named in a message; anything
# else the provider says is reported as "an error".
_KNOWN_ERRORS = frozenset(
    {
        "access_denied",
        "invalid_request",
        "unauthorized_client",
        "unsupported_response_type",
        "invalid_scope",
        "server_error",
        "temporarily_unavailable",
        "interaction_required",
        "login_required",
        "account_selection_required",
        "consent_required",
        "invalid_grant",
        "invalid_client",
        "unsupported_grant_type",
        "invalid_token",
    }
)


class PatientOIDCError(SdeError):
    """Signing in through the provider failed; the message says why in plain words and
    never holds a token, a code or a claim's value."""


@dataclass(frozen=True)
class PatientOIDCSettings:
    issuer: str  # https only, except http on the loopback (tests)
    client_id: str
    client_secret: str = field(repr=False)  # from SDE_PATIENT_OIDC_CLIENT_SECRET only
    redirect_url: str  # the page's callback
    nhs_number_claim: str = "nhs_number"
    scopes: tuple[str, ...] = ("openid", "profile")  # NHS login: profile carries nhs_number
    # How the page proves itself at the token endpoint: the client secret (basic or post,
    # as discovery allows), or a JWT signed with a private key (private_key_jwt, the only
    # way NHS login accepts); the PEM key comes from SDE_PATIENT_OIDC_PRIVATE_KEY only.
    client_auth: str = "client_secret"
    private_key_pem: str = field(default="", repr=False)
    private_key_id: str | None = None  # the kid the provider knows the key by


def _secure_url(value: str, key: str) -> str:
    parts = urlsplit(value)
    if not parts.hostname or parts.fragment:
        raise ConfigError(f"patient_page.oidc.{key} must be an address without a fragment")
    if parts.scheme == "https":
        return value
    if parts.scheme == "http" and is_loopback(parts.hostname):
        return value
    raise ConfigError(f"patient_page.oidc.{key} must be an https address")


def patient_oidc_settings(
    section: Mapping[str, object] | None, environ: Mapping[str, str]
) -> PatientOIDCSettings | None:
    """The provider's settings from the ``patient_page:`` section of ``config.yaml``, or
    None when patients sign in with their details (the default). Only ``sign_in`` and
    ``oidc`` are read here; the section's other keys belong to the page."""
    if section is None:
        return None
    if not isinstance(section, Mapping):
        raise ConfigError("patient_page: must be a mapping")
    method = section.get("sign_in", "details")
    if method not in SIGN_IN_METHODS:
        raise ConfigError(f"patient_page.sign_in must be one of {', '.join(SIGN_IN_METHODS)}")
    data = section.get("oidc")
    if method == "details":
        if data is not None:
            raise ConfigError("patient_page.oidc is set but patient_page.sign_in is not oidc")
        return None
    if not isinstance(data, Mapping):
        raise ConfigError("patient_page.oidc must be a mapping of the provider's settings")
    if "client_secret" in data:
        raise ConfigError(
            f"patient_page.oidc.client_secret must not be in the config file: set {SECRET_ENV} "
            "in the page's environment"
        )
    unknown = sorted(set(map(str, data)) - set(_OIDC_KEYS))
    if unknown:
        raise ConfigError(f"patient_page.oidc: unknown setting {', '.join(unknown)}")
    values: dict[str, str] = {}
    for key in ("issuer", "client_id", "redirect_url"):
        value = data.get(key)
        if not isinstance(value, str) or not value.strip():
            raise ConfigError(f"patient_page.oidc.{key} is required")
        values[key] = value.strip()
    issuer = _secure_url(values["issuer"], "issuer")
    if urlsplit(issuer).query:
        raise ConfigError("patient_page.oidc.issuer must be an address without a query")
    redirect_url = _secure_url(values["redirect_url"], "redirect_url")
    claim = data.get("nhs_number_claim", "nhs_number")
    if not isinstance(claim, str) or not claim.strip():
        raise ConfigError("patient_page.oidc.nhs_number_claim must be a claim's name")
    scopes = data.get("scopes", ["openid", "profile"])
    if not isinstance(scopes, list | tuple) or not all(
        isinstance(s, str) and s and not any(c.isspace() for c in s) for s in scopes
    ):
        raise ConfigError("patient_page.oidc.scopes must be a list of scope names")
    if "openid" not in scopes:
        raise ConfigError("patient_page.oidc.scopes must include openid")
    client_auth = data.get("client_auth", "client_secret")
    if client_auth not in CLIENT_AUTH:
        raise ConfigError(f"patient_page.oidc.client_auth must be one of {', '.join(CLIENT_AUTH)}")
    kid = data.get("private_key_id")
    if kid is not None and (not isinstance(kid, str) or not kid.strip()):
        raise ConfigError("patient_page.oidc.private_key_id must be the key's id")
    secret, pem = "", ""
    if client_auth == "client_secret":
        if kid is not None:
            raise ConfigError(
                "patient_page.oidc.private_key_id is set but client_auth is not private_key_jwt"
            )
        secret = environ.get(SECRET_ENV, "")
        if not secret:
            raise ConfigError(
                f"patients signing in with OpenID Connect needs {SECRET_ENV} in the environment"
            )
    else:
        pem = environ.get(PRIVATE_KEY_ENV, "")
        if not pem.strip():
            raise ConfigError(
                "patients signing in with OpenID Connect (private_key_jwt) needs "
                f"{PRIVATE_KEY_ENV} in the environment"
            )
        _private_key(pem)  # refuses an unusable key now
    return PatientOIDCSettings(
        issuer=issuer,
        client_id=values["client_id"],
        client_secret=secret,
        redirect_url=redirect_url,
        nhs_number_claim=claim.strip(),
        scopes=tuple(dict.fromkeys(scopes)),
        client_auth=str(client_auth),
        private_key_pem=pem,
        private_key_id=kid.strip() if isinstance(kid, str) else None,
    )


def _private_key(pem: str) -> rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey:
    try:
        key = serialization.load_pem_private_key(pem.encode("utf-8"), password=None)
    except (ValueError, TypeError):
        key = None
    if isinstance(key, ec.EllipticCurvePrivateKey) and isinstance(key.curve, ec.SECP256R1):
        return key
    if isinstance(key, rsa.RSAPrivateKey) and key.key_size >= 2048:
        return key
    raise ConfigError(
        f"{PRIVATE_KEY_ENV} must hold an unencrypted PEM private key: RSA of 2048 bits or "
        "more, or EC P-256"
    )


def assertion_algorithm(
    key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey, advertised: object
) -> str:
    """The algorithm the page signs its client assertion with: ES256 for an EC P-256 key;
    for an RSA key RS512 (NHS login's), or RS256 when the provider advertises only that
    (or advertises nothing: RS256 is the one every provider implements)."""
    wanted = ("ES256",) if isinstance(key, ec.EllipticCurvePrivateKey) else ("RS512", "RS256")
    if not isinstance(advertised, list):
        return "ES256" if wanted == ("ES256",) else "RS256"
    for alg in wanted:
        if alg in advertised:
            return alg
    raise PatientOIDCError(
        "the sign-in provider accepts none of the algorithms the page's key can sign with"
    )


@dataclass(frozen=True)
class _Pending:
    verifier: str
    nonce: str
    expires: dt.datetime


@dataclass(frozen=True)
class _Provider:
    """What discovery said, checked."""

    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    userinfo_endpoint: str | None
    auth_method: str  # client_secret_basic, client_secret_post or private_key_jwt
    assertion_algs: object  # token_endpoint_auth_signing_alg_values_supported, as said


def _utc(now: dt.datetime) -> dt.datetime:
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    return now.astimezone(dt.UTC)


def _error_words(error: object) -> str:
    return f"({error})" if isinstance(error, str) and error in _KNOWN_ERRORS else "(an error)"


class PatientOIDC:
    """The OpenID Connect client of the patient page. One instance lives as long as the
    page: it caches discovery and the provider's keys, and remembers the sign-ins in
    progress (at most ``max_pending``, each for ten minutes)."""

    def __init__(
        self,
        settings: PatientOIDCSettings,
        *,
        http: httpx.AsyncClient | None = None,
        max_pending: int = MAX_PENDING,
    ) -> None:
        self.settings = settings
        self._http = http if http is not None else httpx.AsyncClient(timeout=HTTP_TIMEOUT_S)
        self._owns_http = http is None
        self._max_pending = max_pending
        self._pending: OrderedDict[str, _Pending] = OrderedDict()
        self._provider: _Provider | None = None
        self._jwks: list[dict[str, Any]] | None = None
        self._jwks_fetched: dt.datetime | None = None

    async def aclose(self) -> None:
        if self._owns_http:
            await self._http.aclose()

    @property
    def pending(self) -> int:
        """How many sign-ins are in progress (not yet finished nor forgotten)."""
        return len(self._pending)

    # -- the two steps -------------------------------------------------------------------

    async def start(self, now: dt.datetime) -> tuple[str, str]:
        """Begin a sign-in: the provider's authorization URL to redirect the browser to,
        and the state to keep in an HttpOnly cookie until the callback."""
        now = _utc(now)
        self._forget_expired(now)
        if len(self._pending) >= self._max_pending:
            raise PatientOIDCError(
                "too many sign-ins are in progress at once; try again in a few minutes"
            )
        provider = await self._discover()
        state = secrets.token_urlsafe(32)
        nonce = secrets.token_urlsafe(32)
        verifier = secrets.token_urlsafe(64)  # 86 characters, within PKCE's 43..128
        challenge = b64url(hashlib.sha256(verifier.encode("ascii")).digest())
        self._pending[state] = _Pending(verifier, nonce, now + STATE_LIFETIME)
        query = urlencode(
            {
                "response_type": "code",
                "client_id": self.settings.client_id,
                "redirect_uri": self.settings.redirect_url,
                "scope": " ".join(self.settings.scopes),
                "state": state,
                "nonce": nonce,
                "code_challenge": challenge,
                "code_challenge_method": "S256",
            }
        )
        endpoint = provider.authorization_endpoint
        return f"{endpoint}{'&' if urlsplit(endpoint).query else '?'}{query}", state

    async def callback(
        self, query: Mapping[str, str], cookie_state: str | None, now: dt.datetime
    ) -> str:
        """:meth:`finish` from the callback's query parameters (``state``, ``code``,
        ``error``, ``iss``)."""
        return await self.finish(
            query.get("state", ""),
            cookie_state,
            query.get("code"),
            now,
            error=query.get("error"),
            iss=query.get("iss"),
        )

    async def finish(
        self,
        state: str,
        cookie_state: str | None,
        code: str | None,
        now: dt.datetime,
        *,
        error: str | None = None,
        iss: str | None = None,
    ) -> str:
        """End a sign-in at the callback: the patient's NHS number (ten digits, Modulus 11
        checked) from the verified ID token or the userinfo endpoint."""
        now = _utc(now)
        self._forget_expired(now)
        pending = self._pending.pop(state, None) if state else None  # used once
        if cookie_state is None or not hmac.compare_digest(
            cookie_state.encode("utf-8"), state.encode("utf-8")
        ):
            raise PatientOIDCError(
                "the sign-in did not start in this browser (its state does not match); start again"
            )
        if pending is None or pending.expires <= now:
            raise PatientOIDCError("the sign-in has expired or was already used; start again")
        if iss is not None and iss != self.settings.issuer:
            raise PatientOIDCError("the answer came from a different sign-in provider")
        if error is not None:
            raise PatientOIDCError(
                f"the sign-in provider did not sign you in {_error_words(error)}"
            )
        if not code:
            raise PatientOIDCError("the sign-in provider's answer has no code")
        provider = await self._discover()
        tokens = await self._exchange(provider, code, pending.verifier, now)
        claims = await self._verify_id_token(tokens["id_token"], pending.nonce, now)
        return await self._nhs_number(provider, claims, tokens.get("access_token"))

    # -- the provider --------------------------------------------------------------------

    def _forget_expired(self, now: dt.datetime) -> None:
        for state in [s for s, p in self._pending.items() if p.expires <= now]:
            del self._pending[state]

    async def _get_json(self, url: str, what: str, **kwargs: Any) -> dict[str, Any]:
        try:
            response = await self._http.get(url, **kwargs)
        except httpx.HTTPError:
            raise PatientOIDCError(f"the sign-in provider's {what} could not be reached") from None
        if response.status_code != 200:
            raise PatientOIDCError(
                f"the sign-in provider's {what} answered HTTP {response.status_code}"
            )
        return _json_object(response, what)

    async def _discover(self) -> _Provider:
        if self._provider is not None:
            return self._provider
        issuer = self.settings.issuer
        doc = await self._get_json(
            f"{issuer.rstrip('/')}/.well-known/openid-configuration", "discovery document"
        )
        if doc.get("issuer") != issuer:
            raise PatientOIDCError(
                "the sign-in provider's discovery document names a different issuer"
            )
        urls: dict[str, str | None] = {}
        for key in ("authorization_endpoint", "token_endpoint", "jwks_uri", "userinfo_endpoint"):
            value = doc.get(key)
            if value is None and key == "userinfo_endpoint":
                urls[key] = None
                continue
            if not isinstance(value, str) or not _same_security(value, issuer):
                raise PatientOIDCError(
                    f"the sign-in provider's discovery document has no usable {key}"
                )
            urls[key] = value
        methods = doc.get("code_challenge_methods_supported")
        if isinstance(methods, list) and "S256" not in methods:
            raise PatientOIDCError("the sign-in provider does not support PKCE with S256")
        supported = doc.get("token_endpoint_auth_methods_supported", ["client_secret_basic"])
        if not isinstance(supported, list):
            supported = []
        if self.settings.client_auth == "private_key_jwt":
            auth: str | None = "private_key_jwt" if "private_key_jwt" in supported else None
            if auth is None:
                raise PatientOIDCError("the sign-in provider does not accept private_key_jwt")
        else:
            auth = next(
                (m for m in ("client_secret_basic", "client_secret_post") if m in supported), None
            )
            if auth is None:
                raise PatientOIDCError(
                    "the sign-in provider accepts neither client_secret_basic nor "
                    "client_secret_post"
                )
        self._provider = _Provider(
            authorization_endpoint=str(urls["authorization_endpoint"]),
            token_endpoint=str(urls["token_endpoint"]),
            jwks_uri=str(urls["jwks_uri"]),
            userinfo_endpoint=urls["userinfo_endpoint"],
            auth_method=auth,
            assertion_algs=doc.get("token_endpoint_auth_signing_alg_values_supported"),
        )
        return self._provider

    async def _exchange(
        self, provider: _Provider, code: str, verifier: str, now: dt.datetime
    ) -> dict[str, str]:
        settings = self.settings
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": settings.redirect_url,
            "code_verifier": verifier,
        }
        headers = {"Accept": "application/json"}
        if provider.auth_method == "client_secret_basic":
            # RFC 6749 2.3.1: each part form-encoded before base64
            pair = f"{_form(settings.client_id)}:{_form(settings.client_secret)}"
            headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode("ascii")
        elif provider.auth_method == "client_secret_post":
            form |= {"client_id": settings.client_id, "client_secret": settings.client_secret}
        else:
            form |= {
                "client_id": settings.client_id,
                "client_assertion_type": _ASSERTION_TYPE,
                "client_assertion": self._client_assertion(provider, now),
            }
        try:
            response = await self._http.post(provider.token_endpoint, data=form, headers=headers)
        except httpx.HTTPError:
            raise PatientOIDCError(
                "the sign-in provider's token endpoint could not be reached"
            ) from None
        if response.status_code != 200:
            error = _json_object(response, "token endpoint", strict=False).get("error")
            raise PatientOIDCError(
                f"the sign-in provider refused the sign-in code {_error_words(error)}"
            )
        body = _json_object(response, "token endpoint")
        id_token = body.get("id_token")
        if not isinstance(id_token, str) or not id_token:
            raise PatientOIDCError("the sign-in provider's token answer has no ID token")
        tokens = {"id_token": id_token}
        access = body.get("access_token")
        if (
            isinstance(access, str)
            and access
            and str(body.get("token_type", "")).lower() == "bearer"
        ):
            tokens["access_token"] = access
        return tokens

    def _client_assertion(self, provider: _Provider, now: dt.datetime) -> str:
        """RFC 7523 client authentication: a short-lived JWT signed with the page's key."""
        settings = self.settings
        key = _private_key(settings.private_key_pem)
        alg = assertion_algorithm(key, provider.assertion_algs)
        stamp = int(now.timestamp())
        claims = {
            "iss": settings.client_id,
            "sub": settings.client_id,
            "aud": provider.token_endpoint,
            "jti": secrets.token_urlsafe(24),
            "iat": stamp,
            "exp": stamp + int(ASSERTION_LIFETIME.total_seconds()),
        }
        headers = {"kid": settings.private_key_id} if settings.private_key_id else None
        return jwt.encode(claims, key, algorithm=alg, headers=headers)

    async def _signing_key(self, kid: str | None, alg: str, now: dt.datetime) -> Any:
        """The provider's published key for ``kid`` and ``alg``; the key set is fetched
        again (at most once a minute) when a token names a key not yet seen."""
        for attempt in range(2):
            if self._jwks is None or (
                attempt == 1
                and (self._jwks_fetched is None or now - self._jwks_fetched >= JWKS_REFRESH)
            ):
                provider = await self._discover()
                doc = await self._get_json(provider.jwks_uri, "key set")
                keys = doc.get("keys")
                if not isinstance(keys, list):
                    raise PatientOIDCError("the sign-in provider's key set has no keys")
                self._jwks = [k for k in keys if isinstance(k, dict)]
                self._jwks_fetched = now
            matches = [
                k
                for k in self._jwks
                if k.get("use", "sig") == "sig"
                and k.get("kty") == _KEY_TYPES[alg]
                and k.get("alg", alg) == alg
                and (kid is None or k.get("kid") == kid)
            ]
            if len(matches) > 1:
                raise PatientOIDCError(
                    "the ID token does not say which of the provider's keys signed it"
                )
            if matches:
                try:
                    return jwt.PyJWK.from_dict(matches[0], algorithm=alg).key
                except jwt.PyJWTError:
                    raise PatientOIDCError(
                        "the sign-in provider's signing key is not usable"
                    ) from None
        raise PatientOIDCError("the ID token was signed with a key the provider does not publish")

    async def _verify_id_token(self, token: str, nonce: str, now: dt.datetime) -> dict[str, Any]:
        settings = self.settings
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise PatientOIDCError("the ID token is not a signed token") from None
        alg = header.get("alg")
        if alg not in ALGORITHMS:
            raise PatientOIDCError(
                f"the ID token's signature algorithm is not accepted (only {', '.join(ALGORITHMS)})"
            )
        kid = header.get("kid")
        key = await self._signing_key(kid if isinstance(kid, str) else None, str(alg), now)
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key=key,
                algorithms=[str(alg)],
                audience=settings.client_id,
                issuer=settings.issuer,
                options={
                    "require": ["iss", "sub", "aud", "exp", "iat"],
                    # times are checked below against the caller's clock
                    "verify_exp": False,
                    "verify_iat": False,
                    "verify_nbf": False,
                },
            )
        except jwt.InvalidSignatureError:
            raise PatientOIDCError("the ID token's signature is not valid") from None
        except jwt.InvalidAudienceError:
            raise PatientOIDCError("the ID token was not issued to this page") from None
        except jwt.InvalidIssuerError:
            raise PatientOIDCError("the ID token was issued by a different provider") from None
        except jwt.MissingRequiredClaimError as exc:
            raise PatientOIDCError(f"the ID token has no {exc.claim} claim") from None
        except jwt.PyJWTError:
            raise PatientOIDCError("the ID token is not valid") from None
        aud = claims["aud"]
        if isinstance(aud, list) and len(aud) > 1 and claims.get("azp") != settings.client_id:
            raise PatientOIDCError("the ID token was issued to another party as well (azp)")
        stamp = now.timestamp()
        leeway = LEEWAY.total_seconds()
        exp, iat = claims["exp"], claims["iat"]
        if not isinstance(exp, int | float) or not isinstance(iat, int | float):
            raise PatientOIDCError("the ID token's times are not numbers")
        if exp + leeway <= stamp:
            raise PatientOIDCError("the ID token has expired")
        if iat - leeway > stamp:
            raise PatientOIDCError("the ID token was issued in the future")
        nbf = claims.get("nbf")
        if isinstance(nbf, int | float) and nbf - leeway > stamp:
            raise PatientOIDCError("the ID token is not valid yet")
        token_nonce = claims.get("nonce")
        if not isinstance(token_nonce, str) or not hmac.compare_digest(
            token_nonce.encode("utf-8"), nonce.encode("utf-8")
        ):
            raise PatientOIDCError("the ID token's nonce does not match this sign-in")
        if not isinstance(claims["sub"], str) or not claims["sub"]:
            raise PatientOIDCError("the ID token has no subject")
        return claims

    async def _nhs_number(
        self, provider: _Provider, claims: Mapping[str, Any], access_token: str | None
    ) -> str:
        name = self.settings.nhs_number_claim
        value = claims.get(name)
        if value is None:
            if provider.userinfo_endpoint is None or access_token is None:
                raise PatientOIDCError(
                    f"the sign-in provider did not give the {name} claim in the ID token, "
                    "and has no userinfo endpoint to ask"
                )
            info = await self._get_json(
                provider.userinfo_endpoint,
                "userinfo endpoint",
                headers={"Authorization": f"Bearer {access_token}", "Accept": "application/json"},
            )
            if info.get("sub") != claims["sub"]:
                raise PatientOIDCError(
                    "the userinfo endpoint answered for a different person than the ID token"
                )
            value = info.get(name)
        if value is None:
            raise PatientOIDCError(f"the sign-in provider did not give the {name} claim")
        if not isinstance(value, str):
            raise PatientOIDCError(f"the {name} claim is not a string")
        digits = nhs_number.normalise(value)
        if digits is None or not nhs_number.is_valid_digits(digits):
            raise PatientOIDCError(f"the {name} claim is not a valid NHS number")
        return digits


def _form(value: str) -> str:
    return quote_plus(value)


def _same_security(url: str, issuer: str) -> bool:
    """An endpoint is https, or http on the loopback only when the issuer is too."""
    parts = urlsplit(url)
    if not parts.hostname:
        return False
    if parts.scheme == "https":
        return True
    issuer_parts = urlsplit(issuer)
    return (
        parts.scheme == "http"
        and issuer_parts.scheme == "http"
        and is_loopback(parts.hostname)
        and issuer_parts.hostname is not None
        and is_loopback(issuer_parts.hostname)
    )


def _json_object(response: httpx.Response, what: str, *, strict: bool = True) -> dict[str, Any]:
    try:
        body = json.loads(response.content)
    except (ValueError, UnicodeDecodeError):
        body = None
    if isinstance(body, dict):
        return body
    if strict:
        raise PatientOIDCError(f"the sign-in provider's {what} did not answer with JSON")
    return {}
