"""Small shared encodings (pure)."""

from __future__ import annotations

import base64
import ipaddress


def b64url(data: bytes) -> str:
    """URL-safe base64 without padding."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def unb64url(text: str) -> bytes:
    """The inverse of :func:`b64url` (``binascii.Error``/``ValueError`` when malformed)."""
    return base64.urlsafe_b64decode((text + "=" * (-len(text) % 4)).encode("ascii"))


def is_loopback(host: str) -> bool:
    """Whether ``host`` is ``localhost`` or a loopback IP address."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
