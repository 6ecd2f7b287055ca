"""The master key as an operator handles it: a fingerprint that names a key without
revealing it, a key read from an escrow file, and a constant-time comparison.

Pure functions over bytes; reading files and the environment happens elsewhere.
"""

from __future__ import annotations

import hashlib
import hmac
import string

from sde.domain.pseudonyms import MASTER_KEY_BYTES

_HEX_DIGITS = frozenset(string.hexdigits)
_ASCII_SPACE = b" \t\r\n"


def _check_length(key: bytes) -> None:
    if len(key) != MASTER_KEY_BYTES:
        # The key itself is never put in a message.
        raise ValueError(f"a master key is exactly {MASTER_KEY_BYTES} bytes")


def key_fingerprint(key: bytes) -> str:
    """The SHA-256 of the key's bytes, as 64 lower-case hex characters.

    It identifies a key (the old and the new one in a change log, the escrowed copy
    against the one in use) without revealing it: the key is 32 random bytes, so
    finding it from its SHA-256 means trying 2**256 keys. Only master keys are accepted:
    the fingerprint of a short or guessable secret could be reversed by trying them."""
    _check_length(key)
    return hashlib.sha256(key).hexdigest()


def same_key(a: bytes, b: bytes) -> bool:
    """True if two keys are the same bytes (compared in constant time)."""
    return hmac.compare_digest(a, b)


def parse_key_file(data: bytes) -> bytes:
    """A master key from the bytes of a key file: 32 raw bytes (as ``sde init`` writes
    ``keys/master.key``), or 64 hexadecimal characters (as ``SDE_MASTER_KEY`` holds
    it), surrounding spaces and line ends allowed. Anything else is refused without
    repeating the content."""
    if len(data) == MASTER_KEY_BYTES:
        return bytes(data)
    text = data.strip(_ASCII_SPACE)
    if len(text) == 2 * MASTER_KEY_BYTES and all(chr(c) in _HEX_DIGITS for c in text):
        return bytes.fromhex(text.decode("ascii"))
    raise ValueError(
        f"a key file holds the master key as {MASTER_KEY_BYTES} raw bytes or "
        f"{2 * MASTER_KEY_BYTES} hexadecimal characters"
    )
