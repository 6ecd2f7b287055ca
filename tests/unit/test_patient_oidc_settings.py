"""The ``patient_page:`` section of config.yaml: how patients sign in, and the OpenID
Connect provider's settings (sde.web.patient_oidc.patient_oidc_settings)."""

from __future__ import annotations

from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from sde.errors import ConfigError
from sde.web.patient_oidc import (
    PRIVATE_KEY_ENV,
    SECRET_ENV,
    PatientOIDCError,
    PatientOIDCSettings,
    assertion_algorithm,
    patient_oidc_settings,
)

ENV = {SECRET_ENV: "s3cret-from-the-environment"}
OIDC: dict[str, Any] = {
    "issuer": "https://auth.login.nhs.uk",
    "client_id": "sde-patient-page",
    "redirect_url": "https://sde.example/services/patient/oidc/callback",
}


def section(**changes: Any) -> dict[str, Any]:
    oidc = {k: v for k, v in (OIDC | changes).items() if v is not None}
    return {"sign_in": "oidc", "oidc": oidc}


def refusal(data: Any, environ: dict[str, str] = ENV) -> str:
    with pytest.raises(ConfigError) as info:
        patient_oidc_settings(data, environ)
    return str(info.value)


def test_no_section_or_details_means_no_provider() -> None:
    assert patient_oidc_settings(None, ENV) is None
    assert patient_oidc_settings({}, ENV) is None
    assert patient_oidc_settings({"sign_in": "details"}, {}) is None


def test_the_defaults() -> None:
    settings = patient_oidc_settings(section(), ENV)
    assert settings == PatientOIDCSettings(
        issuer="https://auth.login.nhs.uk",
        client_id="sde-patient-page",
        client_secret="s3cret-from-the-environment",
        redirect_url="https://sde.example/services/patient/oidc/callback",
        nhs_number_claim="nhs_number",
        scopes=("openid", "profile"),
    )


def test_the_secret_is_not_in_the_settings_repr() -> None:
    settings = patient_oidc_settings(section(), ENV)
    assert "s3cret" not in repr(settings)


def test_claim_and_scopes_are_configurable() -> None:
    settings = patient_oidc_settings(
        section(nhs_number_claim="nhs_no", scopes=["openid", "profile", "email", "openid"]), ENV
    )
    assert settings is not None
    assert settings.nhs_number_claim == "nhs_no"
    assert settings.scopes == ("openid", "profile", "email")


@pytest.mark.parametrize(
    ("data", "words"),
    [
        ("oidc", "patient_page: must be a mapping"),
        ({"sign_in": "password"}, "patient_page.sign_in must be one of details, oidc"),
        ({"sign_in": "details", "oidc": OIDC}, "patient_page.sign_in is not oidc"),
        ({"sign_in": "oidc"}, "patient_page.oidc must be a mapping"),
        (section(tenant="x"), "patient_page.oidc: unknown setting tenant"),
        (section(client_secret="x"), f"must not be in the config file: set {SECRET_ENV}"),
        (section(issuer=None), "patient_page.oidc.issuer is required"),
        (section(client_id=" "), "patient_page.oidc.client_id is required"),
        (section(redirect_url=None), "patient_page.oidc.redirect_url is required"),
        (section(issuer="http://login.example"), "patient_page.oidc.issuer must be an https"),
        (section(issuer="ftp://login.example"), "patient_page.oidc.issuer must be an https"),
        (section(issuer="https://login.example?x=1"), "issuer must be an address without a query"),
        (
            section(redirect_url="http://sde.example/callback"),
            "patient_page.oidc.redirect_url must be an https",
        ),
        (section(redirect_url="https://sde.example/cb#x"), "redirect_url must be an address"),
        (section(scopes=["profile"]), "patient_page.oidc.scopes must include openid"),
        (section(scopes="openid profile"), "patient_page.oidc.scopes must be a list"),
        (section(scopes=["openid", "a b"]), "patient_page.oidc.scopes must be a list"),
        (section(scopes=["openid", ""]), "patient_page.oidc.scopes must be a list"),
        (section(nhs_number_claim=""), "patient_page.oidc.nhs_number_claim must be a claim"),
        (section(nhs_number_claim=3), "patient_page.oidc.nhs_number_claim must be a claim"),
    ],
)
def test_wrong_settings_are_refused_naming_the_key(data: Any, words: str) -> None:
    assert words in refusal(data)


def test_a_missing_secret_is_refused() -> None:
    assert SECRET_ENV in refusal(section(), {})
    assert SECRET_ENV in refusal(section(), {SECRET_ENV: ""})


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "[::1]"])
def test_http_is_allowed_on_the_loopback_only(host: str) -> None:
    settings = patient_oidc_settings(
        section(issuer=f"http://{host}:8080", redirect_url=f"http://{host}:9000/cb"), ENV
    )
    assert settings is not None
    assert settings.issuer == f"http://{host}:8080"
    assert settings.redirect_url == f"http://{host}:9000/cb"


def test_the_page_keeps_its_other_settings() -> None:
    # only sign_in and oidc are read here; the page reads the rest of its section
    assert patient_oidc_settings({"sign_in": "details", "title": "x"}, ENV) is None


def _pem(key: Any) -> str:
    return str(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()
    )


RSA_PEM = _pem(rsa.generate_private_key(public_exponent=65537, key_size=2048))


def test_private_key_jwt_takes_the_key_from_the_environment() -> None:
    data = section(client_auth="private_key_jwt", private_key_id="page-2026")
    settings = patient_oidc_settings(data, {PRIVATE_KEY_ENV: RSA_PEM})
    assert settings is not None
    assert settings.client_auth == "private_key_jwt"
    assert settings.private_key_pem == RSA_PEM
    assert settings.private_key_id == "page-2026"
    assert settings.client_secret == ""
    assert "PRIVATE KEY" not in repr(settings)


@pytest.mark.parametrize(
    ("data", "environ", "words"),
    [
        (section(client_auth="private_key_jwt"), {}, PRIVATE_KEY_ENV),
        (section(client_auth="private_key_jwt"), {PRIVATE_KEY_ENV: "not a key"}, "PEM private key"),
        (
            section(client_auth="private_key_jwt"),
            {PRIVATE_KEY_ENV: _pem(rsa.generate_private_key(public_exponent=65537, key_size=1024))},
            "RSA of 2048 bits or more",
        ),
        (
            section(client_auth="private_key_jwt"),
            {PRIVATE_KEY_ENV: _pem(ec.generate_private_key(ec.SECP384R1()))},
            "or EC P-256",
        ),
        (section(client_auth="mtls"), ENV, "client_auth must be one of client_secret"),
        (section(private_key_id="k1"), ENV, "private_key_id is set but client_auth is not"),
        (
            section(client_auth="private_key_jwt", private_key_id=""),
            {PRIVATE_KEY_ENV: RSA_PEM},
            "private_key_id must be the key's id",
        ),
    ],
)
def test_private_key_jwt_refusals(data: Any, environ: dict[str, str], words: str) -> None:
    message = refusal(data, environ)
    assert words in message
    assert "BEGIN" not in message


@pytest.mark.parametrize(
    ("kind", "advertised", "alg"),
    [
        ("rsa", ["RS256", "RS512"], "RS512"),
        ("rsa", ["RS256", "PS256"], "RS256"),
        ("rsa", None, "RS256"),
        ("ec", ["RS256", "ES256"], "ES256"),
        ("ec", None, "ES256"),
    ],
)
def test_the_client_assertion_algorithm(kind: str, advertised: Any, alg: str) -> None:
    key: Any = (
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
        if kind == "rsa"
        else ec.generate_private_key(ec.SECP256R1())
    )
    assert assertion_algorithm(key, advertised) == alg


def test_no_common_client_assertion_algorithm_is_refused() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    with pytest.raises(PatientOIDCError, match="accepts none of the algorithms"):
        assertion_algorithm(key, ["RS256"])
