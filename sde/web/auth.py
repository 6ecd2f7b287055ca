"""Sign-in for the checker web page, until JupyterHub's OAuth takes over (issue 7).

An operator runs ``sde web link --person carol`` and hands carol a one-time link
``/signin?token=...``. The token is ``person|expiry|nonce``, signed with HMAC-SHA256 under
a key derived from the home's master key (HKDF, ``info = b"sde-web-signin"``). Signing in
turns it into a session cookie: ``person|expiry|session-id``, signed under a second derived
key (``b"sde-web-session"``). Every state-changing form carries a CSRF token, an HMAC of the
session cookie under the session key, so a page on another site cannot post as the person.

Pure: keys, times and values in, values out. The web app keeps the :class:`NonceRegister`
(used sign-in nonces and signed-out sessions) for the life of the server process.
"""

from __future__ import annotations

import binascii
import datetime as dt
import hashlib
import hmac
import secrets
import threading
from dataclasses import dataclass

from sde.domain.encoding import b64url, unb64url
from sde.domain.projects import PERSON_ID
from sde.domain.pseudonyms import hkdf_sha256

SIGNIN_INFO = b"sde-web-signin"
SESSION_INFO = b"sde-web-session"
CSRF_LABEL = b"sde-web-csrf|"
SESSION_HOURS = 8
DEFAULT_LINK_MINUTES = 15
MAX_LINK_MINUTES = 24 * 60
_NONCE_BYTES = 16


class SignInError(Exception):
    """A sign-in link or session cookie is not acceptable; the message says why, in plain
    words, and never holds the token itself."""


@dataclass(frozen=True)
class Claim:
    """What a valid signed value says: who, until when, and its one-time id."""

    person: str
    expires: dt.datetime
    nonce: str


def _timestamp(when: dt.datetime) -> int:
    if when.tzinfo is None:
        raise ValueError("times must be timezone-aware")
    return int(when.timestamp())


class Signer:
    """Signs and checks ``person|expiry|nonce`` values under one derived key."""

    def __init__(self, key: bytes, what: str) -> None:
        if len(key) < 32:
            raise ValueError("a signing key must be at least 32 bytes")
        self._key = key
        self._what = what  # "sign-in link" or "session", for messages

    def _mac(self, payload: bytes) -> bytes:
        return hmac.new(self._key, payload, hashlib.sha256).digest()

    def sign(self, person: str, expires: dt.datetime, nonce: str | None = None) -> str:
        if not PERSON_ID.fullmatch(person):
            raise ValueError("not a valid person id")
        nonce = nonce or secrets.token_hex(_NONCE_BYTES)
        payload = f"{person}|{_timestamp(expires)}|{nonce}".encode("ascii")
        return f"{b64url(payload)}.{b64url(self._mac(payload))}"

    def verify(self, value: str, now: dt.datetime) -> Claim:
        """The claim in ``value``; :class:`SignInError` when it is malformed, forged or
        expired."""
        invalid = SignInError(
            f"this {self._what} is not valid (it is damaged or was not made here)"
        )
        if not value or len(value) > 512 or value.count(".") != 1:
            raise invalid
        encoded, signature = value.split(".")
        try:
            payload = unb64url(encoded)
            mac = unb64url(signature)
        except (binascii.Error, ValueError):
            raise invalid from None
        if not hmac.compare_digest(mac, self._mac(payload)):
            raise invalid
        try:
            person, expiry, nonce = payload.decode("ascii").split("|")
            expires = dt.datetime.fromtimestamp(int(expiry), dt.UTC)
        except (UnicodeDecodeError, ValueError, OverflowError, OSError):
            raise invalid from None
        if not PERSON_ID.fullmatch(person) or not nonce:
            raise invalid
        if now >= expires:
            raise SignInError(f"this {self._what} has expired; ask for a new sign-in link")
        return Claim(person, expires, nonce)


class WebAuth:
    """The web page's keys: sign-in links, session cookies and CSRF tokens."""

    def __init__(self, master_key: bytes) -> None:
        if len(master_key) != 32:
            raise ValueError("the master key must be 32 bytes")
        self._links = Signer(hkdf_sha256(master_key, SIGNIN_INFO), "sign-in link")
        self._session_key = hkdf_sha256(master_key, SESSION_INFO)
        self._sessions = Signer(self._session_key, "session")

    # --- sign-in links ----------------------------------------------------------------

    def link_token(self, person: str, now: dt.datetime, minutes: int = DEFAULT_LINK_MINUTES) -> str:
        if not 1 <= minutes <= MAX_LINK_MINUTES:
            raise ValueError(f"a sign-in link lasts from 1 to {MAX_LINK_MINUTES} minutes")
        return self._links.sign(person, now + dt.timedelta(minutes=minutes))

    def check_link(self, token: str, now: dt.datetime) -> Claim:
        return self._links.verify(token, now)

    # --- sessions ---------------------------------------------------------------------

    def session_cookie(self, person: str, now: dt.datetime) -> tuple[str, dt.datetime]:
        expires = now + dt.timedelta(hours=SESSION_HOURS)
        return self._sessions.sign(person, expires), expires

    def check_session(self, cookie: str, now: dt.datetime) -> Claim:
        return self._sessions.verify(cookie, now)

    # --- CSRF -------------------------------------------------------------------------

    def csrf_token(self, cookie: str) -> str:
        mac = hmac.new(self._session_key, CSRF_LABEL + cookie.encode("ascii"), hashlib.sha256)
        return b64url(mac.digest())

    def check_csrf(self, cookie: str, token: str | None) -> bool:
        if not token:
            return False
        return hmac.compare_digest(self.csrf_token(cookie).encode(), token.encode("utf-8"))


class NonceRegister:
    """One-time ids seen by this server process: used sign-in links and signed-out
    sessions. An entry is forgotten once its link or session would have expired anyway."""

    def __init__(self) -> None:
        self._seen: dict[str, dt.datetime] = {}
        self._lock = threading.Lock()

    def use(self, claim: Claim, now: dt.datetime) -> bool:
        """Mark ``claim``'s nonce used; False when it already was."""
        with self._lock:
            self._forget_expired(now)
            if claim.nonce in self._seen:
                return False
            self._seen[claim.nonce] = claim.expires
            return True

    def is_used(self, claim: Claim, now: dt.datetime) -> bool:
        with self._lock:
            self._forget_expired(now)
            return claim.nonce in self._seen

    def _forget_expired(self, now: dt.datetime) -> None:
        for nonce in [n for n, expires in self._seen.items() if expires <= now]:
            del self._seen[nonce]
