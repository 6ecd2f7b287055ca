"""Fixed vectors. The pid and project-pseudonym vectors were computed independently with
the OpenSSL command line (HMAC-SHA256 and the RFC 5869 construction by hand)."""

import pytest

from sde.domain.pseudonyms import (
    LinkagePseudonymiser,
    ProjectPseudonymiser,
    hkdf_sha256,
)

MASTER = bytes(range(32))


def test_hkdf_rfc5869_case_1() -> None:
    okm = hkdf_sha256(
        bytes.fromhex("0b" * 22),
        info=bytes.fromhex("f0f1f2f3f4f5f6f7f8f9"),
        length=42,
        salt=bytes.fromhex("000102030405060708090a0b0c"),
    )
    assert okm.hex() == (
        "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865"
    )


def test_hkdf_rfc5869_case_3_empty_salt_and_info() -> None:
    okm = hkdf_sha256(bytes.fromhex("0b" * 22), info=b"", length=42, salt=b"")
    assert okm.hex() == (
        "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8"
    )


def test_linkage_pseudonym_vector() -> None:
    assert LinkagePseudonymiser(MASTER).pid("9434765919") == "6da4f260a5f4e04392de2913146df28a"


def test_linkage_pseudonym_ignores_layout() -> None:
    link = LinkagePseudonymiser(MASTER)
    assert link.pid("943 476 5919") == link.pid("943-476-5919") == link.pid("9434765919")


def test_project_pseudonym_vector() -> None:
    pid = "6da4f260a5f4e04392de2913146df28a"
    assert (
        ProjectPseudonymiser(MASTER, "diabetes-outcomes").pseudonym(pid)
        == "673abd98b5ffe9b267bf92dd0c795809"
    )


def test_projects_get_unrelated_pseudonyms() -> None:
    pid = LinkagePseudonymiser(MASTER).pid("9434765919")
    a = ProjectPseudonymiser(MASTER, "a").pseudonym(pid)
    b = ProjectPseudonymiser(MASTER, "b").pseudonym(pid)
    assert len({a, b, pid}) == 3


def test_other_master_key_gives_other_pid() -> None:
    other = bytes(reversed(range(32)))
    assert LinkagePseudonymiser(other).pid("9434765919") != LinkagePseudonymiser(MASTER).pid(
        "9434765919"
    )


def test_invalid_number_refused_without_echoing_it() -> None:
    with pytest.raises(ValueError) as err:
        LinkagePseudonymiser(MASTER).pid("9434765918")
    assert "9434765918" not in str(err.value)


def test_pids_skips_invalid_and_computes_each_distinct_value() -> None:
    got = LinkagePseudonymiser(MASTER).pids(["9434765919", "9434765919", "123"])
    assert got == {"9434765919": "6da4f260a5f4e04392de2913146df28a"}


def test_master_key_length_enforced() -> None:
    with pytest.raises(ValueError):
        LinkagePseudonymiser(b"short")
