"""Keyed pseudonyms (see docs/architecture.md, "Pseudonyms and keys").

- Sub-keys come from the master key by HKDF-SHA256 (RFC 5869) with distinct ``info``
  labels, so a leaked sub-key reveals nothing about another.
- Linkage pseudonym: ``pid = HMAC-SHA256(K_link, normalised NHS number)``, truncated to
  128 bits, hex. The same patient gets the same ``pid`` in every dataset.
- Project pseudonym: ``HMAC-SHA256(K_project, pid)``, truncated to 128 bits, hex. Two
  projects' pseudonyms for the same patient are unrelated without the keys.

Pure functions over bytes; key loading lives in ``sde.services.home``.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable

from sde.domain import nhs_number

MASTER_KEY_BYTES = 32
PSEUDONYM_BYTES = 16  # 128 bits
_SALT = b"sde/v1"
LINKAGE_INFO = b"sde/v1/linkage"


def project_info(project_id: str) -> bytes:
    return b"sde/v1/project/" + project_id.encode("utf-8")


def hkdf_sha256(ikm: bytes, info: bytes, length: int = 32, salt: bytes = _SALT) -> bytes:
    """HKDF-SHA256 (RFC 5869): extract with ``salt``, expand with ``info``."""
    if length > 255 * 32:
        raise ValueError("HKDF-SHA256 cannot produce more than 8160 bytes")
    prk = hmac.new(salt or b"\x00" * 32, ikm, hashlib.sha256).digest()
    okm = b""
    block = b""
    counter = 1
    while len(okm) < length:
        block = hmac.new(prk, block + info + bytes([counter]), hashlib.sha256).digest()
        okm += block
        counter += 1
    return okm[:length]


def _check_master(master_key: bytes) -> None:
    if len(master_key) != MASTER_KEY_BYTES:
        raise ValueError(f"the master key must be {MASTER_KEY_BYTES} bytes")


class _KeyedPseudonymiser:
    """HMAC-SHA256 with precomputed inner/outer states (about 2.5x a fresh ``hmac.new``)."""

    def __init__(self, key: bytes) -> None:
        self._base = hmac.new(key, digestmod=hashlib.sha256)

    def _mac(self, message: bytes) -> str:
        mac = self._base.copy()
        mac.update(message)
        return mac.digest()[:PSEUDONYM_BYTES].hex()


class LinkagePseudonymiser(_KeyedPseudonymiser):
    """NHS number -> ``pid``. Refuses values that are not valid NHS numbers."""

    def __init__(self, master_key: bytes) -> None:
        _check_master(master_key)
        super().__init__(hkdf_sha256(master_key, LINKAGE_INFO))

    def pid(self, raw_nhs_number: str) -> str:
        digits = nhs_number.normalise(raw_nhs_number)
        if digits is None or not nhs_number.is_valid_digits(digits):
            # The value itself is never put in the message.
            raise ValueError("not a valid NHS number")
        return self._mac(digits.encode("ascii"))

    def pids(self, values: Iterable[str]) -> dict[str, str]:
        """Pseudonymise distinct values once: ``{raw: pid}`` for valid numbers only."""
        out: dict[str, str] = {}
        for raw in set(values):
            digits = nhs_number.normalise(raw)
            if digits is not None and nhs_number.is_valid_digits(digits):
                out[raw] = self._mac(digits.encode("ascii"))
        return out


class ProjectPseudonymiser(_KeyedPseudonymiser):
    """``pid`` -> project pseudonym, with a key of the project's own."""

    def __init__(self, master_key: bytes, project_id: str) -> None:
        _check_master(master_key)
        super().__init__(hkdf_sha256(master_key, project_info(project_id)))

    def pseudonym(self, pid: str) -> str:
        return self._mac(pid.encode("ascii"))
