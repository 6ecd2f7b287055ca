"""check_batch gives check_row's result for every row: the same rejection (first failing
rule in spec order) or the same typed values, for every shipped dataset spec and a spec
using every type and generalisation, over generated rows full of awkward values."""

from __future__ import annotations

import datetime as dt
import hashlib
import math
import random
from importlib import resources

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
import yaml

from sde.domain import nhs_number
from sde.domain.batch_rules import (
    NumberIndex,
    SeenTable,
    _trimmed,
    check_batch,
    first_seen,
    row_digests,
)
from sde.domain.datasets import (
    CheckedRow,
    ColumnType,
    DatasetSpec,
    Rejection,
    Role,
    check_row,
    parse_spec,
    row_digest,
)


def _shipped() -> list[DatasetSpec]:
    folder = resources.files("sde").joinpath("datasets")
    return [
        parse_spec(yaml.safe_load(entry.read_text(encoding="utf-8")), source=entry.name)
        for entry in sorted(folder.iterdir(), key=lambda e: e.name)
        if entry.name.endswith(".yaml")
    ]


EVERYTHING = parse_spec(
    {
        "name": "everything",
        "origin": "gp",
        "key": ["nhs_number", "code", "born"],
        "columns": {
            "nhs_number": {"role": "identifier"},
            "born": {"role": "quasi_identifier", "type": "date", "generalise": "year"},
            "seen": {"role": "quasi_identifier", "type": "date", "generalise": "month"},
            "postcode": {
                "role": "quasi_identifier",
                "type": "string",
                "generalise": "postcode_district",
                "required": True,
            },
            "code": {"role": "keep", "type": "string", "allowed": ["A", "b", "\u00c9", " x"]},
            "count": {"role": "keep", "type": "integer"},
            "value": {"role": "keep", "type": "float", "required": True},
            "when": {"role": "keep", "type": "date"},
            "note": {"role": "free_text"},
            "label": {"role": "keep"},
            "name": {"role": "drop", "pii": "person"},
        },
    },
    source="everything",
)

SPECS = [*_shipped(), EVERYTHING]
ROWS = 3000

SPACES = [" ", "\t", "\u2003", "\xa0", "\x1c", "\u3000", "\n"]


def _nhs(rnd: random.Random) -> str:
    while True:
        digits = nhs_number.complete(f"{rnd.randrange(10**9):09d}")
        if digits is not None and digits != digits[0] * 10:
            break
    choice = rnd.random()
    if choice < 0.6:
        return digits
    if choice < 0.7:
        return f"{digits[:3]} {digits[3:6]}-{digits[6:]}"
    if choice < 0.75:
        return rnd.choice(SPACES) + digits + rnd.choice(SPACES)
    if choice < 0.8:
        return digits[:9] + str((int(digits[9]) + 1) % 10)
    return rnd.choice(
        [
            "",
            " ",
            "0000000000",
            "abc",
            "\u0669\u0664\u0663\u0664\u0667\u0666\u0665\u0669\u0661\u0669",
            "943476591",
            "94347659199",
            "9434765919\x00",
        ]
    )


DATES = [
    "2023-01-15", "2023-02-29", "2024-02-29", "0000-01-01", "0001-01-01", "9999-12-31",
    " 2023-01-01 ", "2023-1-1", "20230101", "2023-13-01", "2023-00-10", "2023-04-31",
    "\u0662\u0660\u0662\u0663-\u0660\u0661-\u0660\u0661", "\u20032023-01-01", "2023-01-01\n",
    "", " ", "2023-01-01T00:00",
    "1900-02-29", "2000-02-29", "1970-01-01", "+2023-01-01", "2023-01-01 x",
]  # fmt: skip
FLOATS = [
    "1", "-1.5", "+.5", "1e400", "-1e400", "nan", "inf", "1.", ".5", "1e5", "00012", "-0",
    "0.1", "123456789012345.123456789012345", "1" * 20, "\uff11", " 3.14 ", "1_000", "-0.0",
    "0.30000000000000004", "2.5e-3", "", "  ", "1.7976931348623157e308", "9" * 15 + ".9",
]  # fmt: skip
INTEGERS = ["1", "-0", "+5", "007", "1234567890123456789", "-42", "1.0", "", "\u0663", " 9 ", "1e3"]
POSTCODES = [
    "LS1 4AP", "ls14ap", " SW1A 1AA ", "SW1A\x1c1AA", "EC1A 1BB", "XX", "\uff2c\uff331 4AP",
    "\u212aA1 1AA", "M1 1AE", "M11AE", "B33 8TH", "CR2 6XH", "DN55 1PT", "W1A 0AX",
    "LS1  4AP", "LS1\u20034AP", "\u017fW1A 1AA", "", " ", "12 3AB", "LS1 4A", "LS1 4APX",
]  # fmt: skip
CODES = ["A", "b", "\u00c9", " x", "x", "a", "B", " A ", "\u2003A", "", "\u00c9 ", "E\u0301"]


def _value(rnd: random.Random, spec: DatasetSpec, name: str) -> str:
    column = spec.column(name)
    if column.role is Role.IDENTIFIER:
        return _nhs(rnd)
    if column.type is ColumnType.DATE:
        if rnd.random() < 0.3:
            day = dt.date(1900, 1, 1) + dt.timedelta(days=rnd.randrange(60_000))
            return day.isoformat()
        if rnd.random() < 0.3:  # any year, and days that do not exist
            day = dt.date(1, 1, 1) + dt.timedelta(days=rnd.randrange(3_652_059))
            return f"{day.year:04d}-{day.month:02d}-{rnd.choice([day.day, 29, 30, 31, 32])}"
        return rnd.choice(DATES)
    if column.type is ColumnType.FLOAT:
        if rnd.random() < 0.4:
            return f"{rnd.uniform(-1e6, 1e6):.{rnd.randrange(0, 12)}f}"
        return rnd.choice(FLOATS)
    if column.type is ColumnType.INTEGER:
        return str(rnd.randrange(-(10**12), 10**12)) if rnd.random() < 0.4 else rnd.choice(INTEGERS)
    if column.generalise == "postcode_district":
        return rnd.choice(POSTCODES)
    if column.allowed is not None:
        pool = list(column.allowed) + [v.lower() for v in column.allowed] + CODES
        value = rnd.choice(pool)
        return rnd.choice(SPACES) + value if rnd.random() < 0.1 else value
    if rnd.random() < 0.15:
        return rnd.choice(["", " ", "\u2003", "\t\n", "\x85"])
    text = "".join(
        rnd.choice("ab \u00e9,\"'\n1\u2003\U0001f600") for _ in range(rnd.randrange(0, 12))
    )
    return text


def _rows(spec: DatasetSpec, count: int, seed: int) -> list[dict[str, str]]:
    rnd = random.Random(seed)
    rows = [{name: _value(rnd, spec, name) for name in spec.column_names} for _ in range(count)]
    # Mostly good rows too: take valid values where the generator produced one.
    return rows


def _same(a: object, b: object) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or repr(a) == repr(b)
    return type(a) is type(b) and a == b


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_batch_results_equal_check_row(spec: DatasetSpec) -> None:
    rows = _rows(spec, ROWS, seed=len(spec.name))
    batch = pa.RecordBatch.from_pylist(
        rows, schema=pa.schema([(n, pa.string()) for n in spec.column_names])
    )
    result = check_batch(spec, batch)
    outputs = [out for out, _ in spec.outputs]
    free = {c.output or c.name for c in spec.free_text_columns}
    values = {out: (result.values.get(out) or result.free_text[out]).to_pylist() for out in outputs}
    digits = result.nhs_numbers.to_pylist()
    keys = [k.to_pylist() for k in result.keys]
    accepted = 0
    for index, row in enumerate(rows):
        expected = check_row(spec, row)
        if isinstance(expected, Rejection):
            assert not result.passed[index], index
            assert result.rejections[index] == expected, index
            continue
        accepted += 1
        assert isinstance(expected, CheckedRow)
        assert result.passed[index], index
        assert index not in result.rejections, index
        assert digits[index] == expected.nhs_number, index
        for out in outputs:
            want = expected.free_text.get(out) if out in free else expected.values[out]
            assert _same(values[out][index], want), (index, out)
        assert tuple(k[index] for k in keys) == expected.key, index
    assert 0 < accepted < len(rows)
    assert len(result.rejections) == len(rows) - accepted
    assert result.decided_in_bulk > 0


def test_a_slice_of_a_batch_gives_the_same_results() -> None:
    spec = EVERYTHING
    rows = _rows(spec, 400, seed=3)
    batch = pa.RecordBatch.from_pylist(
        rows, schema=pa.schema([(n, pa.string()) for n in spec.column_names])
    )
    whole, part = check_batch(spec, batch), check_batch(spec, batch.slice(150, 200))
    assert part.passed.tolist() == whole.passed[150:350].tolist()
    assert part.rejections == {i - 150: r for i, r in whole.rejections.items() if 150 <= i < 350}
    passed = [i for i in range(200) if part.passed[i]]
    for name, values in part.values.items():
        mine, theirs = values.to_pylist(), whole.values[name].to_pylist()
        assert [mine[i] for i in passed] == [theirs[150 + i] for i in passed], name


def test_plain_rows_are_decided_in_bulk() -> None:
    """Ordinary values never reach check_row (the speed comes from here)."""
    spec = EVERYTHING
    row = {
        "nhs_number": "9434765919", "born": "1961-03-07", "seen": "2024-05-01",
        "postcode": "LS1 4AP", "code": "A", "count": "12", "value": "-3.25",
        "when": "2024-05-02", "note": "seen today", "label": "x", "name": "someone",
    }  # fmt: skip
    batch = pa.RecordBatch.from_pylist([row] * 50)
    result = check_batch(spec, batch)
    assert result.decided_in_bulk == 50
    assert result.values["born_year"].to_pylist() == [1961] * 50
    assert result.values["seen_month"].to_pylist() == ["2024-05"] * 50
    assert result.values["postcode_postcode_district"].to_pylist() == ["LS1"] * 50


def test_row_digests_tell_rows_apart_like_row_digest() -> None:
    rnd = random.Random(5)
    alphabet = ["", "a", "b", "\x00", "a\x00", "\x00b", ",", "\u00e9", "x" * 8, "x" * 300]
    alphabet += ["y" * 257, "y" * 256, "12345678", "1234567", "\x00" * 8]
    rows = [tuple(rnd.choice(alphabet) for _ in range(3)) for _ in range(2000)]
    columns = [pa.array([r[i] for r in rows], pa.string()) for i in range(3)]
    digests = row_digests(columns)
    assert digests.shape == (2000, 2)
    assert digests.dtype == np.uint64
    by_digest: dict[bytes, tuple[str, ...]] = {}
    by_reference: dict[bytes, tuple[str, ...]] = {}
    for row, digest in zip(rows, digests, strict=True):
        assert by_digest.setdefault(digest.tobytes(), row) == row  # equal only for equal rows
        by_reference.setdefault(row_digest(row), row)
    assert len(by_digest) == len(by_reference) == len(set(rows))
    # The same rows in another batch (sliced arrays) get the same digests.
    again = row_digests([c.slice(1000) for c in columns])
    assert (again == digests[1000:]).all()
    # A row's digest does not depend on the other rows of its batch (their lengths).
    for index in range(0, 2000, 97):
        alone = row_digests([pa.array([v], pa.string()) for v in rows[index]])
        assert (alone[0] == digests[index]).all(), index


def _keys(*names: int) -> np.ndarray:
    return np.array([[n * 7919, n * 104729] for n in names], dtype=np.uint64)


def test_first_seen_names_the_earliest_record_across_batches() -> None:
    seen = SeenTable(capacity=4)
    numbers = np.array([1, 2, 3], dtype=np.int64)
    assert first_seen(_keys(1, 2, 1), numbers, seen).tolist() == [1, 2, 1]
    numbers = np.array([7, 8, 9, 10], dtype=np.int64)
    assert first_seen(_keys(2, 3, 3, 1), numbers, seen).tolist() == [2, 8, 8, 1]
    assert len(seen) == 3


def test_seen_table_agrees_with_a_dict_through_collisions_and_growth() -> None:
    rnd = random.Random(9)
    seen = SeenTable(capacity=16)
    reference: dict[tuple[int, int], int] = {}
    number = 0
    for _ in range(60):
        size = rnd.randrange(0, 400)
        # Few distinct low words: many keys share a slot and probe on.
        keys = np.array(
            [[rnd.randrange(50), rnd.randrange(3000)] for _ in range(size)], dtype=np.uint64
        ).reshape(size, 2)
        numbers = np.arange(number + 1, number + size + 1, dtype=np.int64)
        number += size
        expected = [
            reference.setdefault((int(k[0]), int(k[1])), int(n))
            for k, n in zip(keys, numbers, strict=True)
        ]
        assert first_seen(keys, numbers, seen).tolist() == expected
    assert len(seen) == len(reference)
    assert (seen.lookup(np.array([[99, 99]], dtype=np.uint64)) == -1).all()


# --- the row digest, defined in plain Python -----------------------------------------------

_MASK = (1 << 64) - 1
_SEEDS = (0x9E3779B97F4A7C15, 0xD1B54A32D192ED03)


def _fmix(h: int) -> int:
    h ^= h >> 33
    h = (h * 0xFF51AFD7ED558CCD) & _MASK
    h ^= h >> 33
    h = (h * 0xC4CEB9FE1A85EC53) & _MASK
    return h ^ (h >> 33)


def _reference_digest(row: tuple[str, ...]) -> tuple[int, int]:
    """The row digest as published (docs/ingest.md; the Spark engine compares digests made
    on its workers with the local engine's): two lanes chaining fmix over each value's
    length and its 8-byte little-endian words, the last zero-padded; BLAKE2b over the
    length-prefixed values when a value is longer than 256 bytes."""
    values = [value.encode("utf-8") for value in row]
    if any(len(value) > 256 for value in values):
        digest = hashlib.blake2b(digest_size=16, person=b"sde-row-long")
        for value in values:
            digest.update(len(value).to_bytes(8, "big"))
            digest.update(value)
        raw = digest.digest()
        return int.from_bytes(raw[:8], "little"), int.from_bytes(raw[8:], "little")
    lanes = []
    for seed in _SEEDS:
        h = seed
        for value in values:
            h = _fmix(h ^ len(value))
            for start in range(0, len(value), 8):
                h = _fmix(h ^ int.from_bytes(value[start : start + 8].ljust(8, b"\0"), "little"))
        lanes.append(h)
    return lanes[0], lanes[1]


def test_row_digests_are_the_published_function() -> None:
    """Byte for byte the function of the values above, whatever the batch: values of one
    width (read without a gather) or of many, empty, non-ASCII, around multiples of 8
    bytes, longer than 256 bytes, in sliced arrays."""
    rnd = random.Random(11)
    alphabet = 'ab,"\u00e9\u20ac\U0001f600 09\n\x00'

    def value(kind: str) -> str:
        if kind == "fixed":
            return "".join(rnd.choice("0123456789") for _ in range(10))
        length = rnd.choice([0, 1, 7, 8, 9, 15, 16, 17, 24, 33, 255, 256, 257, rnd.randrange(40)])
        return "".join(rnd.choice(alphabet) for _ in range(length))

    for _ in range(40):
        kinds = [rnd.choice(["fixed", "any", "any"]) for _ in range(rnd.randrange(1, 5))]
        rows = [tuple(value(kind) for kind in kinds) for _ in range(rnd.randrange(1, 300))]
        columns = [pa.array([row[i] for row in rows], pa.string()) for i in range(len(kinds))]
        start = rnd.randrange(len(rows))
        digests = row_digests([column.slice(start) for column in columns])
        expected = [_reference_digest(row) for row in rows[start:]]
        assert [tuple(int(w) for w in digest) for digest in digests] == expected
    # Pinned: the digest of one row never changes (other engines rely on it).
    row = ("9434765919", "2024-05-01", "271649006", "", "12.5")
    pinned = row_digests([pa.array([v], pa.string()) for v in row])[0]
    assert [f"{int(w):016x}" for w in pinned] == [f"{w:016x}" for w in _reference_digest(row)]
    assert f"{int(pinned[0]):016x}" == "dd707dfa10675e9f"
    assert f"{int(pinned[1]):016x}" == "0756e2475b51252e"


def test_first_seen_with_many_repeats_in_one_batch() -> None:
    """Equal keys met together claim one slot: the first keeps it, across chunks."""
    rnd = random.Random(3)
    seen = SeenTable(capacity=16)
    reference: dict[tuple[int, int], int] = {}
    number = 0
    for size in (40_000, 1, 0, 25_000):
        keys = np.array(
            [[rnd.randrange(12), rnd.randrange(2)] for _ in range(size)], dtype=np.uint64
        ).reshape(size, 2)
        numbers = np.arange(number + 1, number + size + 1, dtype=np.int64) * 3
        number += size
        expected = [
            reference.setdefault((int(k[0]), int(k[1])), int(n))
            for k, n in zip(keys, numbers, strict=True)
        ]
        assert first_seen(keys, numbers, seen).tolist() == expected
    assert len(seen) == len(reference) == 24


def test_number_index_gives_each_number_one_dense_position() -> None:
    rnd = np.random.default_rng(4)
    index = NumberIndex(capacity=8)
    reference: dict[int, int] = {}
    universe = rnd.integers(0, NumberIndex.NUMBER_LIMIT + 1, size=20_000)
    universe[:3] = [0, NumberIndex.NUMBER_LIMIT, 9_434_765_919]
    for size in (0, 1, 5_000, 40_000, 3, 70_000):
        numbers = universe[rnd.integers(0, len(universe), size=size)]
        positions, new = index.positions(numbers)
        for number in new.tolist():
            assert number not in reference  # each number is new once
            reference[number] = len(reference)
        assert positions.tolist() == [reference[n] for n in numbers.tolist()]
        assert len(index) == len(reference)
    with pytest.raises(ValueError, match="from 0 to"):
        index.positions(np.array([NumberIndex.NUMBER_LIMIT + 1]))
    with pytest.raises(ValueError, match="from 0 to"):
        index.positions(np.array([-1]))


def _checked_by_row(values: list[str]) -> list[str | None]:
    out: list[str | None] = []
    for value in values:
        digits = nhs_number.normalise(value)
        out.append(digits if digits is not None and nhs_number.is_valid_digits(digits) else None)
    return out


def test_checked_nhs_numbers_of_plain_ten_digit_columns() -> None:
    """A column of ten ASCII digits everywhere takes a shorter way than one with other
    spellings: both agree with ``normalise`` and ``is_valid``, value for value."""
    rnd = random.Random(8)
    plain = ["".join(rnd.choice("0123456789") for _ in range(10)) for _ in range(5000)]
    plain += [str(d) * 10 for d in range(10)] + ["9434765919", "9434765918", "0000000019"]
    plain += [nhs_number.complete(p[:9]) or p for p in plain[:2000]]  # many valid ones
    odd = ["943 476 5919", " 9434765919", "94347659l9", "943476591\u0669", "943476591"]
    for values in (plain, plain + odd, odd):
        array = pa.array(values, pa.string())
        expected = _checked_by_row(values)
        assert nhs_number.checked_nhs_numbers(array).to_pylist() == expected
        assert nhs_number.checked_nhs_numbers(array.slice(7)).to_pylist() == expected[7:]
    assert sum(v is not None for v in _checked_by_row(plain)) > 2000  # valid ones were tested


def test_trimming_skips_only_columns_with_no_whitespace_to_strip() -> None:
    for space in nhs_number.WHITESPACE:
        for values in ([space + "x"], ["x" + space], [space], ["x", "y" + space + "z"]):
            array = pa.array(values, pa.string())
            expected = pc.utf8_trim(array, characters=nhs_number.WHITESPACE)
            assert (
                _trimmed(array).to_pylist() == expected.to_pylist() == [v.strip() for v in values]
            )
    plain = pa.array(["a", "", "b c", "\u00e9t\u00e9s"], pa.string())
    assert _trimmed(plain) is plain  # nothing to strip: the kernel is skipped
    assert _trimmed(pa.array(["\u00e9t\u00e9\u00a0"], pa.string())).to_pylist() == ["\u00e9t\u00e9"]


def test_dates_of_ten_bytes_are_decided_as_check_row_decides() -> None:
    """Every value ten bytes (numpy checks the shape) or not (Arrow's regex): the same
    results as ``check_row``."""
    spec = parse_spec(
        {
            "name": "dates",
            "origin": "gp",
            "columns": {
                "nhs_number": {"role": "identifier"},
                "when": {"role": "keep", "type": "date", "required": True},
            },
        },
        source="dates.yaml",
    )
    tens = ["2023-02-28", "2023-02-29", "2024-02-29", "1900-02-29", "2000-02-29", "0001-01-01"]
    tens += ["0000-01-01", "9999-12-31", "2023-13-01", "2023-00-10", "2023-01-32", "2023/01/01"]
    tens += [
        "2023-1-011",
        "+023-01-01",
        "2023-01-0a",
        "20230-1-01",
        "2023-04-31",
        "2023-0\u00e9-1"[:10],
    ]
    for values in (tens, [*tens, "2023-01-1", " 2023-01-01"]):
        batch = pa.RecordBatch.from_arrays(
            [pa.array(["9434765919"] * len(values)), pa.array(values)], names=["nhs_number", "when"]
        )
        result = check_batch(spec, batch)
        for index, value in enumerate(values):
            expected = check_row(spec, {"nhs_number": "9434765919", "when": value})
            if isinstance(expected, Rejection):
                assert result.rejections[index] == expected, value
            else:
                assert result.passed[index], value
                assert result.values["when"][index].as_py() == expected.values["when"], value
