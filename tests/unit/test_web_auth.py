"""Sign-in links, session cookies and CSRF tokens of the web page (pure)."""

from __future__ import annotations

import base64
import datetime as dt

import pytest

from sde.web.auth import SESSION_HOURS, NonceRegister, SignInError, WebAuth

MASTER = bytes(range(32))
OTHER = bytes(range(1, 33))
NOW = dt.datetime(2026, 11, 24, 12, 0, tzinfo=dt.UTC)


@pytest.fixture
def auth() -> WebAuth:
    return WebAuth(MASTER)


def test_link_round_trip(auth: WebAuth) -> None:
    token = auth.link_token("carol", NOW, minutes=15)
    claim = auth.check_link(token, NOW + dt.timedelta(minutes=14))
    assert claim.person == "carol"
    assert claim.expires == NOW + dt.timedelta(minutes=15)
    assert len(claim.nonce) == 32


def test_each_link_has_its_own_nonce(auth: WebAuth) -> None:
    one = auth.check_link(auth.link_token("carol", NOW), NOW)
    two = auth.check_link(auth.link_token("carol", NOW), NOW)
    assert one.nonce != two.nonce


def test_expired_link_says_so(auth: WebAuth) -> None:
    token = auth.link_token("carol", NOW, minutes=15)
    with pytest.raises(SignInError, match="expired"):
        auth.check_link(token, NOW + dt.timedelta(minutes=15))


def test_link_from_another_key_is_refused(auth: WebAuth) -> None:
    token = WebAuth(OTHER).link_token("carol", NOW)
    with pytest.raises(SignInError, match="not valid"):
        auth.check_link(token, NOW)


def test_changed_person_breaks_the_signature(auth: WebAuth) -> None:
    token = auth.link_token("carol", NOW)
    payload, sig = token.split(".")
    padded = payload + "=" * (-len(payload) % 4)
    forged = base64.urlsafe_b64decode(padded).replace(b"carol", b"admin")
    forged_token = base64.urlsafe_b64encode(forged).rstrip(b"=").decode() + "." + sig
    with pytest.raises(SignInError, match="not valid"):
        auth.check_link(forged_token, NOW)


@pytest.mark.parametrize(
    "token", ["", "x", "a.b", "a.b.c", "!!!.???", "." * 2, "a" * 600 + ".b", "Y2Fyb2w.AAAA"]
)
def test_malformed_tokens_are_refused_without_echoing_them(auth: WebAuth, token: str) -> None:
    with pytest.raises(SignInError) as caught:
        auth.check_link(token, NOW)
    assert "not valid" in str(caught.value)
    if token:
        assert token not in str(caught.value)


def test_link_and_session_keys_differ(auth: WebAuth) -> None:
    # A sign-in link is not a session cookie, nor the other way round.
    link = auth.link_token("carol", NOW)
    with pytest.raises(SignInError):
        auth.check_session(link, NOW)
    cookie, _ = auth.session_cookie("carol", NOW)
    with pytest.raises(SignInError):
        auth.check_link(cookie, NOW)


def test_session_lasts_eight_hours(auth: WebAuth) -> None:
    cookie, expires = auth.session_cookie("carol", NOW)
    assert expires == NOW + dt.timedelta(hours=SESSION_HOURS) == NOW + dt.timedelta(hours=8)
    assert auth.check_session(cookie, NOW + dt.timedelta(hours=7, minutes=59)).person == "carol"
    with pytest.raises(SignInError, match="expired"):
        auth.check_session(cookie, expires)


def test_csrf_is_bound_to_the_session(auth: WebAuth) -> None:
    carol, _ = auth.session_cookie("carol", NOW)
    alice, _ = auth.session_cookie("alice", NOW)
    token = auth.csrf_token(carol)
    assert auth.check_csrf(carol, token)
    assert not auth.check_csrf(alice, token)
    assert not auth.check_csrf(carol, None)
    assert not auth.check_csrf(carol, "")
    assert not auth.check_csrf(carol, token[:-1])
    assert not WebAuth(OTHER).check_csrf(carol, token)


def test_bad_person_ids_and_lifetimes_are_refused(auth: WebAuth) -> None:
    with pytest.raises(ValueError, match="person"):
        auth.link_token("carol|admin", NOW)
    with pytest.raises(ValueError, match="minutes"):
        auth.link_token("carol", NOW, minutes=0)
    with pytest.raises(ValueError, match="timezone"):
        auth.link_token("carol", NOW.replace(tzinfo=None))
    with pytest.raises(ValueError, match="32 bytes"):
        WebAuth(b"short")


def test_nonce_register_lets_a_link_work_once(auth: WebAuth) -> None:
    register = NonceRegister()
    claim = auth.check_link(auth.link_token("carol", NOW), NOW)
    assert not register.is_used(claim, NOW)
    assert register.use(claim, NOW)
    assert register.is_used(claim, NOW)
    assert not register.use(claim, NOW)


def test_nonce_register_forgets_expired_entries(auth: WebAuth) -> None:
    register = NonceRegister()
    claim = auth.check_link(auth.link_token("carol", NOW, minutes=1), NOW)
    register.use(claim, NOW)
    later = NOW + dt.timedelta(minutes=2)
    # Forgotten, and harmless: the link itself has expired by then.
    assert not register.is_used(claim, later)
    with pytest.raises(SignInError, match="expired"):
        auth.check_link(auth.link_token("carol", NOW, minutes=1), later)
