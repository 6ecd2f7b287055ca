"""A workspace session's token for the sde service: who, on which project, until when.

The spawner mints one per session (``SDE_TOKEN``) instead of giving the session the home:
with it, the session can ask the sde service to open its project's extract, record a
refusal and preview or file a release request, for that person and that project only.
It grants nothing by itself: the service asks the ``sde.access`` policy on every call, so
a suspension or a ban takes effect at once whatever the token says.

Format: ``base64url(person|project|expiry|nonce) "." base64url(HMAC-SHA256)`` under a key
derived from the master key (HKDF, ``info = b"sde-workspace-token"``), so a token made
for the web page's sign-in (another ``info``) is not a workspace token and the other way
round. Pure: keys, times and values in, values out.
"""

from __future__ import annotations

import binascii
import datetime as dt
import hashlib
import hmac
import secrets
from dataclasses import dataclass

from sde.domain.encoding import b64url, unb64url
from sde.domain.projects import PERSON_ID, PROJECT_ID
from sde.domain.pseudonyms import hkdf_sha256

TOKEN_INFO = b"sde-workspace-token"
MAX_HOURS = 24
_MAX_LENGTH = 512


class TokenError(Exception):
    """A workspace token is not acceptable; the message says why, never holding it."""


@dataclass(frozen=True)
class WorkspaceClaim:
    person: str
    project: str
    expires: dt.datetime
    nonce: str


def token_key(master_key: bytes) -> bytes:
    """The key workspace tokens are signed with, derived from the master key."""
    if len(master_key) != 32:
        raise ValueError("the master key must be 32 bytes")
    return hkdf_sha256(master_key, TOKEN_INFO)


def _mac(key: bytes, payload: bytes) -> bytes:
    return hmac.new(key, payload, hashlib.sha256).digest()


def mint(
    key: bytes,
    *,
    person: str,
    project: str,
    now: dt.datetime,
    hours: float = 12,
    nonce: str | None = None,
) -> str:
    """A token for ``person`` on ``project``, valid for ``hours`` from ``now``."""
    if len(key) < 32:
        raise ValueError("a signing key must be at least 32 bytes")
    if not PERSON_ID.fullmatch(person):
        raise ValueError("not a valid person id")
    if not PROJECT_ID.fullmatch(project):
        raise ValueError("not a valid project id")
    if now.tzinfo is None:
        raise ValueError("times must be timezone-aware")
    if not 0 < hours <= MAX_HOURS:
        raise ValueError(f"a workspace token lasts more than 0 and at most {MAX_HOURS} hours")
    expires = int((now + dt.timedelta(hours=hours)).timestamp())
    payload = f"{person}|{project}|{expires}|{nonce or secrets.token_hex(16)}".encode("ascii")
    return f"{b64url(payload)}.{b64url(_mac(key, payload))}"


def verify(key: bytes, token: str, now: dt.datetime) -> WorkspaceClaim:
    """The claim in ``token``; :class:`TokenError` when it is malformed, forged or
    expired."""
    invalid = TokenError("the workspace token is not valid (damaged, or not made here)")
    if not token or len(token) > _MAX_LENGTH or token.count(".") != 1:
        raise invalid
    encoded, signature = token.split(".")
    try:
        payload = unb64url(encoded)
        mac = unb64url(signature)
    except (binascii.Error, ValueError):
        raise invalid from None
    if not hmac.compare_digest(mac, _mac(key, payload)):
        raise invalid
    try:
        person, project, expiry, nonce = payload.decode("ascii").split("|")
        expires = dt.datetime.fromtimestamp(int(expiry), dt.UTC)
    except (UnicodeDecodeError, ValueError, OverflowError, OSError):
        raise invalid from None
    if not (PERSON_ID.fullmatch(person) and PROJECT_ID.fullmatch(project) and nonce):
        raise invalid
    if now >= expires:
        raise TokenError("the workspace token has expired; restart the workspace")
    return WorkspaceClaim(person, project, expires, nonce)
