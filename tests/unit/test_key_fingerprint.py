"""The master key's fingerprint, key files and key comparison (pure)."""

from __future__ import annotations

import hashlib

import pytest

from sde.domain.keys import key_fingerprint, parse_key_file, same_key

KEY = bytes(range(32))


def test_the_fingerprint_is_the_sha256_of_the_key() -> None:
    # An independent computation: SHA-256 of the bytes 00..1f.
    assert key_fingerprint(KEY) == (
        "630dcd2966c4336691125448bbb25b4ff412a49c732db2c8abc1b8581bd710dd"
    )
    assert key_fingerprint(KEY) == hashlib.sha256(KEY).hexdigest()


def test_other_keys_have_other_fingerprints_and_the_key_is_not_in_it() -> None:
    other = bytes(31) + b"\x01"
    assert key_fingerprint(other) != key_fingerprint(KEY)
    assert KEY.hex() not in key_fingerprint(KEY)


@pytest.mark.parametrize("length", [0, 16, 31, 33, 64])
def test_only_master_keys_get_a_fingerprint(length: int) -> None:
    # A short secret's SHA-256 could be reversed by trying them: refused.
    with pytest.raises(ValueError, match="exactly 32 bytes"):
        key_fingerprint(b"k" * length)


def test_same_key() -> None:
    assert same_key(KEY, bytes(KEY))
    assert not same_key(KEY, bytes(32))


def test_key_files_hold_raw_bytes_or_hex() -> None:
    assert parse_key_file(KEY) == KEY
    assert parse_key_file(KEY.hex().encode()) == KEY
    assert parse_key_file(KEY.hex().upper().encode() + b"\n") == KEY
    assert parse_key_file(b"  " + KEY.hex().encode() + b"\r\n") == KEY
    # 32 raw bytes are taken as they are, whitespace bytes included.
    raw = b"\n" * 32
    assert parse_key_file(raw) == raw


@pytest.mark.parametrize(
    "data",
    [b"", b"short", bytes(33), b"zz" * 32, (KEY.hex() + "00").encode(), b"\xff" * 64],
)
def test_anything_else_is_refused_without_repeating_it(data: bytes) -> None:
    with pytest.raises(ValueError) as caught:
        parse_key_file(data)
    message = str(caught.value)
    assert "32 raw bytes or 64 hexadecimal characters" in message
    if data:
        assert data.decode("latin-1") not in message
