"""Keyed pseudonyms over Arrow arrays (sde.adapters.arrow_hmac): byte for byte what the
per-value pseudonymisers give, RFC 4231 vectors, the distinct/events form, nulls kept.

Memory only (pyarrow + hashlib): no I/O, so these are unit tests.
"""

from __future__ import annotations

import hashlib
import hmac
import random

import pyarrow as pa
import pytest

from sde.adapters.arrow_hmac import (
    ArrowLinkagePseudonymiser,
    ArrowProjectPseudonymiser,
    hmac_sha256_array,
    pseudonymise_array,
    pseudonymise_distinct,
)
from sde.domain import nhs_number
from sde.domain.pseudonyms import (
    LinkagePseudonymiser,
    ProjectPseudonymiser,
    _KeyedPseudonymiser,
)

MASTER = bytes(range(32))

# RFC 4231 HMAC-SHA256 test cases 1-4, 6 and 7 (case 5 is a truncated output).
RFC4231 = [
    (
        b"\x0b" * 20,
        b"Hi There",
        "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7",
    ),
    (
        b"Jefe",
        b"what do ya want for nothing?",
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
    ),
    (
        b"\xaa" * 20,
        b"\xdd" * 50,
        "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe",
    ),
    (
        bytes(range(1, 26)),
        b"\xcd" * 50,
        "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b",
    ),
    (
        b"\xaa" * 131,
        b"Test Using Larger Than Block-Size Key - Hash Key First",
        "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54",
    ),
    (
        b"\xaa" * 131,
        b"This is a test using a larger than block-size key and a larger than block-size"
        b" data. The key needs to be hashed before being used by the HMAC algorithm.",
        "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2",
    ),
]

KEYS = [b"", b"k", bytes(range(16)), bytes(range(32)), b"\x5c" * 63, b"\x36" * 64, b"x" * 65]
KEYS += [bytes(range(131))]

_ALPHABET = "0123456789 -\tabcXYZ\u00e9\u20ac\U0001f600\u3000\u00a0\n\u0661\uff15"


def random_values(count: int, seed: int) -> list[str | None]:
    """Short and long strings, unicode, empty strings, repeats and nulls."""
    rng = random.Random(seed)
    out: list[str | None] = []
    for _ in range(count):
        kind = rng.random()
        if kind < 0.05:
            out.append(None)
        elif kind < 0.08:
            out.append("")
        elif kind < 0.15 and out:
            out.append(rng.choice(out))  # repeats
        elif kind < 0.20:
            # longer than one SHA-256 block (64 bytes), up to several blocks
            out.append("".join(rng.choice(_ALPHABET) for _ in range(rng.randrange(56, 300))))
        else:
            out.append("".join(rng.choice(_ALPHABET) for _ in range(rng.randrange(1, 20))))
    return out


def per_value(key: bytes, values: list[str | None]) -> list[str | None]:
    reference = _KeyedPseudonymiser(key)
    return [None if v is None else reference._mac(v.encode("utf-8")) for v in values]


@pytest.mark.parametrize(("key", "message", "expected"), RFC4231)
def test_rfc4231_vectors(key: bytes, message: bytes, expected: str) -> None:
    got = hmac_sha256_array(key, pa.array([message, None, message], type=pa.binary()))
    assert got.type == pa.binary()
    assert got.to_pylist() == [bytes.fromhex(expected), None, bytes.fromhex(expected)]


def test_full_digests_match_hmac_on_random_values() -> None:
    values = random_values(2_000, seed=3)
    for key in KEYS:
        got = hmac_sha256_array(key, pa.array(values, type=pa.string())).to_pylist()
        expected = [
            None if v is None else hmac.new(key, v.encode("utf-8"), hashlib.sha256).digest()
            for v in values
        ]
        assert got == expected, f"key of {len(key)} bytes"


@pytest.mark.parametrize("key", KEYS, ids=lambda k: f"key{len(k)}")
def test_pseudonyms_equal_the_per_value_mac(key: bytes) -> None:
    values = random_values(10_000, seed=len(key))
    expected = per_value(key, values)
    array = pa.array(values, type=pa.string())
    rows = pseudonymise_array(key, array)
    distinct = pseudonymise_distinct(key, array)
    assert rows.type == pa.string()
    assert distinct.type == pa.string()
    assert rows.to_pylist() == expected
    assert distinct.to_pylist() == expected
    as_dictionary = pseudonymise_distinct(key, array, as_dictionary=True)
    assert as_dictionary.dictionary_decode().to_pylist() == expected
    assert len(as_dictionary.dictionary) < len(values)  # repeats were MACed once
    assert rows.null_count == sum(v is None for v in values) > 0


def test_linkage_pid_equals_pid_on_every_value() -> None:
    link = LinkagePseudonymiser(MASTER)
    rng = random.Random(11)
    values: list[str | None] = []
    while len(values) < 10_000:
        made = nhs_number.complete(f"{rng.randrange(0, 1_000_000_000):09d}")
        if made is None:
            continue
        style = rng.randrange(6)
        if style == 0:
            made = f"{made[:3]} {made[3:6]} {made[6:]}"
        elif style == 1:
            made = f" {made[:3]}-{made[3:6]}-{made[6:]}\u3000"
        elif style == 2:
            made = made[:9] + str((int(made[9]) + 1) % 10)  # wrong check digit
        elif style == 3:
            values.append(None)
        values.append(made)
    values += ["0000000000", "", "   ", "943476591", "94347659199", "9434765919\n"]
    got = ArrowLinkagePseudonymiser(MASTER).pid_array(pa.array(values, type=pa.string()))
    expected = [link.pid(v) if v is not None and nhs_number.is_valid(v) else None for v in values]
    assert got.to_pylist() == expected
    assert got.null_count < len(values) // 2  # most are valid: the test compares real pids


def test_pid_array_on_an_events_table_equals_pids() -> None:
    link = LinkagePseudonymiser(MASTER)
    patients = [n for n in (nhs_number.complete(f"{i:09d}") for i in range(1000, 1400)) if n]
    rng = random.Random(5)
    events = [rng.choice(patients) for _ in range(4_000)]
    got = ArrowLinkagePseudonymiser(MASTER).pid_array(pa.array(events))
    mapping = link.pids(events)
    assert got.to_pylist() == [mapping[v] for v in events]


def test_project_pseudonyms_equal_the_per_value_form() -> None:
    pids = LinkagePseudonymiser(MASTER).pids(
        n for n in (nhs_number.complete(f"{i:09d}") for i in range(5000, 6000)) if n
    )
    column = [*pids.values(), *list(pids.values())[:100], None]
    for project in ("p-1", "p-2"):
        per_value_form = ProjectPseudonymiser(MASTER, project)
        got = ArrowProjectPseudonymiser(MASTER, project).pseudonym_array(pa.array(column))
        assert got.to_pylist() == [
            None if p is None else per_value_form.pseudonym(p) for p in column
        ]
    one = ArrowProjectPseudonymiser(MASTER, "p-1").pseudonym_array(pa.array(column[:50]))
    two = ArrowProjectPseudonymiser(MASTER, "p-2").pseudonym_array(pa.array(column[:50]))
    assert not set(one.to_pylist()) & set(two.to_pylist())


def test_project_pseudonyms_refuse_non_ascii_and_non_strings() -> None:
    project = ArrowProjectPseudonymiser(MASTER, "p-1")
    with pytest.raises(ValueError, match="not ASCII"):
        project.pseudonym_array(pa.array(["ab", "é"]))
    with pytest.raises(TypeError):
        project.pseudonym_array(pa.array([1, 2]))


def test_master_key_length_is_checked() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        ArrowLinkagePseudonymiser(b"short")
    with pytest.raises(ValueError, match="32 bytes"):
        ArrowProjectPseudonymiser(b"short", "p-1")


@pytest.mark.parametrize(
    "values",
    [
        # fixed-width digits (the int64 fast path), leading zeros included
        ["0000000001", "1000000000", "0000000001", None, "0100000000", "1000000000"],
        # digits of different widths must not collide ("12" vs "012")
        ["12", "012", "0012", "12", None, "120"],
        # one width but not all digits
        ["12a", "123", "12a", "+12", "-12", " 12"],
        # 18 and 19 digits (19 does not fit the fast path)
        ["9" * 18, "0" * 18, "9" * 18, "1" * 19, "0" * 19],
        ["9" * 18, "0" * 18, "9" * 18, "0" * 17 + "1"],
        [None, None],
        [],
        ["", "", None],
    ],
)
def test_distinct_form_equals_per_row_form(values: list[str | None]) -> None:
    key = bytes(range(32))
    array = pa.array(values, type=pa.string())
    expected = per_value(key, values)
    assert pseudonymise_distinct(key, array).to_pylist() == expected
    assert pseudonymise_array(key, array).to_pylist() == expected
    as_dictionary = pseudonymise_distinct(key, array, as_dictionary=True)
    assert isinstance(as_dictionary, pa.DictionaryArray)
    assert as_dictionary.cast(pa.string()).to_pylist() == expected


def test_sliced_large_binary_and_dictionary_inputs() -> None:
    key = b"key"
    values = random_values(3_000, seed=9)
    expected = per_value(key, values)
    array = pa.array(values, type=pa.string())
    sliced = array.slice(117, 2_000)
    assert pseudonymise_array(key, sliced).to_pylist() == expected[117:2117]
    assert pseudonymise_distinct(key, sliced).to_pylist() == expected[117:2117]
    large = array.cast(pa.large_string())
    assert pseudonymise_array(key, large).to_pylist() == expected
    assert pseudonymise_distinct(key, large).to_pylist() == expected
    binary = pa.array([None if v is None else v.encode() for v in values], type=pa.binary())
    assert pseudonymise_distinct(key, binary).to_pylist() == expected
    encoded = array.dictionary_encode()
    assert isinstance(encoded, pa.DictionaryArray)
    assert pseudonymise_distinct(key, encoded).to_pylist() == expected
    with_null_entry = pa.DictionaryArray.from_arrays(
        pa.array([0, 1, None, 1, 2]), pa.array(["a", None, "b"])
    )
    assert pseudonymise_distinct(key, with_null_entry).to_pylist() == per_value(
        key, ["a", None, None, None, "b"]
    )
    digests = hmac_sha256_array(key, sliced).to_pylist()
    assert [None if d is None else d[:16].hex() for d in digests] == expected[117:2117]


def test_other_types_are_refused() -> None:
    with pytest.raises(TypeError):
        pseudonymise_array(b"k", pa.array([1, 2, 3]))
    with pytest.raises(TypeError):
        pseudonymise_distinct(b"k", pa.array([1.5]))
    with pytest.raises(TypeError):
        pseudonymise_array(b"k", pa.chunked_array([["a"]]))
    with pytest.raises(TypeError):
        ArrowLinkagePseudonymiser(MASTER).pid_array(pa.array([9434765919]))
