"""The one rule for names that read like credentials (sde.domain.credentials), used by the
lake's settings and by workspace pods."""

from __future__ import annotations

import pytest

from sde.domain.credentials import looks_like_credential


@pytest.mark.parametrize(
    "name",
    [
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AZURE_STORAGE_ACCOUNT_KEY",
        "AZURE_STORAGE_SAS_KEY",
        "SAS",
        "AZURE_CLIENT_SECRET",
        "GOOGLE_SERVICE_ACCOUNT_KEY",
        "API_KEY",
        "KEY",
        "DB_PASSWORD",
        "PGPASSWD",
        "MY_CREDENTIALS",
        "SSH_PRIVATE",
        "aws_secret_access_key",
        "account_key",
    ],
)
def test_credential_names_are_suspected(name: str) -> None:
    assert looks_like_credential(name)


@pytest.mark.parametrize(
    "name",
    [
        "AWS_ENDPOINT_URL",
        "AWS_REGION",
        "AZURE_STORAGE_ACCOUNT_NAME",
        "GOOGLE_BASE_URL",
        "GOOGLE_SKIP_SIGNATURE",
        "SDE_PROJECT",
        "MONKEYS",
        "KEYBOARD_LAYOUT",
        "SASKATOON",
        "LANG",
    ],
)
def test_plain_names_are_not(name: str) -> None:
    assert not looks_like_credential(name)
