"""The shared encodings: base64url round trips without padding; what counts as loopback."""

from __future__ import annotations

import binascii

import pytest

from sde.domain.encoding import b64url, is_loopback, unb64url


@pytest.mark.parametrize("data", [b"", b"a", b"ab", b"abc", bytes(range(256))])
def test_base64url_round_trips_without_padding(data: bytes) -> None:
    text = b64url(data)
    assert "=" not in text
    assert "+" not in text
    assert "/" not in text
    assert unb64url(text) == data


def test_malformed_base64url_is_an_error() -> None:
    with pytest.raises((binascii.Error, ValueError)):
        unb64url("a")


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("::1", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("10.0.0.1", False),
        ("example.org", False),
        ("", False),
    ],
)
def test_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback
