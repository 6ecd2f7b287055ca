"""Workspace tokens: who, which project, until when; forged, altered, expired or foreign
tokens refused."""

from __future__ import annotations

import datetime as dt

import pytest

from sde.domain.workspace_tokens import TokenError, mint, token_key, verify
from sde.web.auth import WebAuth

MASTER = bytes(range(32))
KEY = token_key(MASTER)
NOW = dt.datetime(2026, 11, 24, 12, 0, tzinfo=dt.UTC)


def test_a_token_says_who_which_project_and_until_when() -> None:
    token = mint(KEY, person="alice", project="diabetes", now=NOW, hours=8)
    claim = verify(KEY, token, NOW + dt.timedelta(hours=7, minutes=59))
    assert (claim.person, claim.project) == ("alice", "diabetes")
    assert claim.expires == NOW + dt.timedelta(hours=8)
    assert mint(KEY, person="alice", project="diabetes", now=NOW) != mint(
        KEY, person="alice", project="diabetes", now=NOW
    )  # a fresh nonce each time


def test_an_expired_token_is_refused() -> None:
    token = mint(KEY, person="alice", project="diabetes", now=NOW, hours=1)
    with pytest.raises(TokenError, match="expired"):
        verify(KEY, token, NOW + dt.timedelta(hours=1))


def test_a_token_made_under_another_key_or_altered_is_refused() -> None:
    token = mint(KEY, person="alice", project="diabetes", now=NOW)
    with pytest.raises(TokenError, match="not valid"):
        verify(token_key(bytes(32)), token, NOW)
    encoded, signature = token.split(".")
    import base64

    payload = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode()
    other = payload.replace("diabetes", "cancer-xx")
    forged = base64.urlsafe_b64encode(other.encode()).rstrip(b"=").decode() + "." + signature
    with pytest.raises(TokenError, match="not valid"):
        verify(KEY, forged, NOW)
    for bad in ("", "x", "a.b.c", "!!!.???", "a" * 600 + ".b"):
        with pytest.raises(TokenError):
            verify(KEY, bad, NOW)


def test_a_web_sign_in_token_is_not_a_workspace_token() -> None:
    link = WebAuth(MASTER).link_token("alice", NOW)
    with pytest.raises(TokenError, match="not valid"):
        verify(KEY, link, NOW)


def test_the_message_never_holds_the_token() -> None:
    token = mint(KEY, person="alice", project="diabetes", now=NOW, hours=1)
    with pytest.raises(TokenError) as caught:
        verify(KEY, token, NOW + dt.timedelta(days=1))
    assert token not in str(caught.value)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"person": "Alice Smith"}, "person id"),
        ({"project": "../etc"}, "project id"),
        ({"hours": 0}, "lasts"),
        ({"hours": 25}, "lasts"),
        ({"now": dt.datetime(2026, 11, 24, 12, 0)}, "timezone-aware"),
    ],
)
def test_minting_refuses_bad_values(kwargs: dict[str, object], message: str) -> None:
    values: dict[str, object] = {"person": "alice", "project": "diabetes", "now": NOW}
    values.update(kwargs)
    with pytest.raises(ValueError, match=message):
        mint(KEY, **values)  # type: ignore[arg-type]
