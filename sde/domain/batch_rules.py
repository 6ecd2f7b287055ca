"""The row rules of ingest over a whole Arrow batch, with exactly ``check_row``'s results.

``check_row`` (:mod:`sde.domain.datasets`) is the rule book: one row at a time, the
identifier first, then the other columns in spec order, the first failure returned.
:func:`check_batch` gives the same answer for every row of a batch, fast, and is sound
by construction: the vectorised part (``pyarrow.compute`` and numpy) only *accepts* rows,
and only rows it can decide exactly:

- the NHS number by :func:`sde.domain.nhs_number.checked_nhs_numbers` (equal to
  ``normalise`` + ``is_valid`` on every input);
- whitespace stripped with the exact set ``str.strip()`` removes;
- dates that are ``YYYY-MM-DD`` in ASCII digits and a real day (checked with numpy by
  the Gregorian calendar, as ``date.fromisoformat`` does: ``2023-02-29`` is refused);
- numbers written plainly (``-12.5``, ``7``; up to 15 digits either side of the point),
  which Arrow and Python both round correctly; integers of up to 18 digits;
- allowed values by exact comparison; postcodes in ASCII only.

Every other row (any row a rule refuses, and any row this part cannot decide, such as
``+.5``, ``1e400``, Unicode digits or a non-ASCII postcode) is passed to ``check_row``
itself, whose result is used as it is. So a refused row always carries the first failing
rule in spec order, and an accepted row the same values ``check_row`` gives.

Duplicates are split into two steps that another engine can run differently:
:func:`row_digests` (a 16-byte digest per row, computed from the batch alone) and
:func:`first_seen` (the first record number of each digest, kept in a numpy hash table,
:class:`SeenTable`, while a file streams; a Spark engine takes ``min(record_number)``
over a window per digest).

Pure: no I/O. Messages never hold a value.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from sde.domain import nhs_number
from sde.domain.datasets import (
    CheckedRow,
    ColumnSpec,
    ColumnType,
    DatasetSpec,
    OutputType,
    Rejection,
    Role,
    check_row,
)

ARROW_TYPES: dict[OutputType, pa.DataType] = {
    OutputType.STRING: pa.string(),
    OutputType.DATE: pa.date32(),
    OutputType.FLOAT: pa.float64(),
    OutputType.INTEGER: pa.int64(),
    OutputType.YEAR: pa.int32(),
}
"""The Arrow type of each linked-zone output type."""

_ISO_DATE = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"
_PLAIN_FLOAT = r"^-?[0-9]{1,15}(\.[0-9]{1,15})?$"
_PLAIN_INTEGER = r"^-?[0-9]{1,18}$"
# generalise._POSTCODE on ASCII text: Python's \s there is str.isspace() (ASCII part below).
_WS = r"[\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f ]"
_POSTCODE = rf"(?i)^{_WS}*(?P<district>[A-Z]{{1,2}}[0-9][A-Z0-9]?){_WS}*[0-9][A-Z]{{2}}{_WS}*$"

Bools = npt.NDArray[np.bool_]


@dataclass(frozen=True)
class BatchCheck:
    """``check_row``'s result for every row of a batch (row ``i`` of each array).

    ``passed[i]`` is True where ``check_row`` accepts row ``i``; ``rejections`` maps every
    other row index to its Rejection. For accepted rows: ``nhs_numbers`` the normalised
    number, ``values`` each non-free-text output (typed; null where empty), ``free_text``
    each free-text output's raw text (null where empty), ``keys`` the normalised key
    columns (``CheckedRow.key``). Slots of refused rows are unspecified."""

    passed: Bools
    rejections: Mapping[int, Rejection]
    nhs_numbers: pa.Array
    values: Mapping[str, pa.Array]
    free_text: Mapping[str, pa.Array]
    keys: tuple[pa.Array, ...]
    decided_in_bulk: int
    """How many rows the vectorised part accepted (the rest went to ``check_row``)."""


def _np(mask: pa.Array) -> Bools:
    """A BooleanArray as numpy, nulls as False."""
    return np.asarray(pc.fill_null(mask, False).to_numpy(zero_copy_only=False), dtype=bool)


def _typed(column: ColumnSpec, text: pa.Array) -> tuple[pa.Array, Bools]:
    """The typed value of each (stripped, non-empty) text and where it was decided."""
    if column.type is ColumnType.DATE:
        shaped = pc.match_substring_regex(text, pattern=_ISO_DATE)
        return _iso_dates(pc.if_else(shaped, text, pa.scalar("1970-01-01")), _np(shaped))
    if column.type is ColumnType.FLOAT:
        ok = pc.match_substring_regex(text, pattern=_PLAIN_FLOAT)
        numbers = pc.cast(pc.if_else(ok, text, pa.scalar("0")), pa.float64())
        return numbers, _np(ok)
    if column.type is ColumnType.INTEGER:
        ok = pc.match_substring_regex(text, pattern=_PLAIN_INTEGER)
        return pc.cast(pc.if_else(ok, text, pa.scalar("0")), pa.int64()), _np(ok)
    if column.allowed is not None:
        allowed = pa.array(list(column.allowed), pa.string())
        return text, _np(pc.is_in(text, value_set=allowed))
    return text, np.ones(len(text), dtype=bool)


_CUMULATIVE_DAYS = np.array([0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334], np.int64)


def _iso_dates(text: pa.Array, shaped: Bools) -> tuple[pa.Array, Bools]:
    """Dates of ``text`` where ``shaped`` (``YYYY-MM-DD`` in ASCII digits; every value
    ten bytes): decided exactly as ``date.fromisoformat`` (years 1 to 9999, real days of
    the month, leap years by the Gregorian rule)."""
    chars = nhs_number.digit_matrix(text, 10, "dates")
    year = chars[:, 0] * 1000 + chars[:, 1] * 100 + chars[:, 2] * 10 + chars[:, 3]
    month = chars[:, 5] * 10 + chars[:, 6]
    day = chars[:, 8] * 10 + chars[:, 9]
    leap = (year % 4 == 0) & ((year % 100 != 0) | (year % 400 == 0))
    good_month = (month >= 1) & (month <= 12)
    safe_month = np.where(good_month, month, 1)
    length = np.array([31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31], np.int64)[safe_month - 1]
    length = length + ((safe_month == 2) & leap)
    ok = shaped & (year >= 1) & good_month & (day >= 1) & (day <= length)
    # Days since 1970-01-01: whole years, then months and days of this year.
    before = year - 1
    days = (
        before * 365 + before // 4 - before // 100 + before // 400
        + _CUMULATIVE_DAYS[safe_month - 1] + ((safe_month > 2) & leap) + day - 1
        - 719162
    )  # fmt: skip
    days = np.where(ok, days, 0).astype(np.int32)
    dates = pa.Array.from_buffers(pa.date32(), len(text), [None, pa.py_buffer(days)])
    return pc.if_else(pa.array(ok), dates, pa.scalar(None, pa.date32())), ok


def _generalised(column: ColumnSpec, text: pa.Array, typed: pa.Array) -> tuple[pa.Array, Bools]:
    if column.generalise == "year":
        return pc.cast(pc.year(typed), pa.int32()), np.ones(len(text), dtype=bool)
    if column.generalise == "month":
        return pc.utf8_slice_codeunits(text, 0, 7), np.ones(len(text), dtype=bool)
    assert column.generalise == "postcode_district"
    ascii_text = pc.if_else(pc.string_is_ascii(text), text, pa.scalar(""))
    found = pc.extract_regex(ascii_text, pattern=_POSTCODE)
    district = pc.ascii_upper(pc.struct_field(found, "district"))
    return district, _np(found.is_valid())


def check_batch(spec: DatasetSpec, batch: pa.RecordBatch) -> BatchCheck:
    """Apply ``check_row`` to every row of ``batch`` (raw ``string`` columns named as the
    spec's columns; no nulls)."""
    n = batch.num_rows
    bulk = np.ones(n, dtype=bool)
    ident = spec.identifier
    digits = nhs_number.checked_nhs_numbers(_column(batch, ident.name))
    bulk &= _np(digits.is_valid())
    values: dict[str, pa.Array] = {}
    free_text: dict[str, pa.Array] = {}
    normalised: dict[str, pa.Array] = {ident.name: digits}
    null_string = pa.scalar(None, pa.string())
    for column in spec.columns:
        if column.role is Role.IDENTIFIER or column.role is Role.DROP:
            continue
        raw = _column(batch, column.name)
        out = column.output or column.name
        text = pc.utf8_trim(raw, characters=nhs_number.WHITESPACE)
        empty_arrow = pc.equal(pc.binary_length(text), 0)
        empty = _np(empty_arrow)
        if column.required:
            bulk &= ~empty
        normalised[column.name] = text  # "" where empty, as check_row keys it
        if column.role is Role.FREE_TEXT:
            free_text[out] = pc.if_else(empty_arrow, null_string, raw)
            continue
        typed, ok = _typed(column, text)
        if column.role is Role.QUASI_IDENTIFIER:
            typed, general_ok = _generalised(column, text, typed)
            ok = ok & general_ok
        bulk &= empty | ok
        kind = column.output_type
        assert kind is not None
        values[out] = pc.if_else(empty_arrow, pa.scalar(None, ARROW_TYPES[kind]), typed)

    rejections: dict[int, Rejection] = {}
    passed = bulk.copy()
    slow = np.flatnonzero(~bulk)
    accepted: list[tuple[int, CheckedRow]] = []
    if len(slow):
        rows = batch.take(pa.array(slow, pa.int64())).to_pylist()
        for index, row in zip(slow.tolist(), rows, strict=True):
            checked = check_row(spec, row)
            if isinstance(checked, Rejection):
                rejections[index] = checked
            else:
                passed[index] = True
                accepted.append((index, checked))
    if accepted:
        digits = _patch(digits, accepted, lambda c: c.nhs_number, pa.string())
        for column in spec.columns:
            out = column.output or column.name
            if out in values:
                kind = column.output_type
                assert kind is not None
                values[out] = _patch(
                    values[out], accepted, lambda c, o=out: c.values[o], ARROW_TYPES[kind]
                )
            elif out in free_text:
                free_text[out] = _patch(
                    free_text[out], accepted, lambda c, o=out: c.free_text.get(o), pa.string()
                )
        for position, name in enumerate(spec.key):
            normalised[name] = _patch(
                normalised[name], accepted, lambda c, p=position: c.key[p], pa.string()
            )
    return BatchCheck(
        passed=passed,
        rejections=rejections,
        nhs_numbers=digits,
        values=values,
        free_text=free_text,
        keys=tuple(normalised[name] for name in spec.key),
        decided_in_bulk=int(bulk.sum()),
    )


def _column(batch: pa.RecordBatch, name: str) -> pa.Array:
    array = batch.column(batch.schema.get_field_index(name))
    assert isinstance(array, pa.Array)
    return array


def _patch(
    array: pa.Array,
    accepted: Sequence[tuple[int, CheckedRow]],
    value: object,
    kind: pa.DataType,
) -> pa.Array:
    """``array`` with the values ``value(checked)`` of the rows ``check_row`` accepted."""
    assert callable(value)
    n = len(array)
    extra = pa.array([value(checked) for _, checked in accepted], kind)
    index = np.arange(n, dtype=np.int64)
    index[[i for i, _ in accepted]] = n + np.arange(len(accepted), dtype=np.int64)
    combined = pa.concat_arrays([array.cast(kind), extra])
    return combined.take(pa.array(index))


@dataclass(frozen=True)
class PreparedBatch:
    """Everything about a batch that needs no other batch: its rows' digests, the rules'
    results, and the digests of the keys of the rows the rules accept."""

    row_digests: Digests
    checked: BatchCheck
    key_digests: Digests
    """One per accepted row (``checked.passed``), in row order; empty without a key."""


def prepare_batch(spec: DatasetSpec, batch: pa.RecordBatch) -> PreparedBatch:
    """The stateless stage of ingest for one batch (raw ``string`` columns named by the
    spec): safe to run on several batches at once, in threads or processes. What remains
    (which rows are first of their kind, in file order) is :func:`first_seen`'s."""
    checked = check_batch(spec, batch)
    key_digests = np.zeros((0, 2), dtype=np.uint64)
    if spec.key and checked.passed.any():
        take = pa.array(np.flatnonzero(checked.passed))
        key_digests = row_digests([key.take(take) for key in checked.keys])
    return PreparedBatch(row_digests(batch.columns), checked, key_digests)


# --- duplicates --------------------------------------------------------------------------


_SHORT_VALUE = 256
"""Rows whose values are all at most this many bytes are digested with numpy."""
_M1 = np.uint64(0xFF51AFD7ED558CCD)
_M2 = np.uint64(0xC4CEB9FE1A85EC53)
_SEEDS = (np.uint64(0x9E3779B97F4A7C15), np.uint64(0xD1B54A32D192ED03))
_U64 = npt.NDArray[np.uint64]


def _fmix(h: _U64) -> _U64:
    """MurmurHash3's 64-bit finaliser: a bijection that mixes every bit into every bit."""
    h ^= h >> np.uint64(33)
    h *= _M1
    h ^= h >> np.uint64(33)
    h *= _M2
    h ^= h >> np.uint64(33)
    return h


def _words(column: pa.Array) -> tuple[_U64, _U64]:
    """Each value's length and its bytes as 8-byte words, zero-padded (values longer than
    ``_SHORT_VALUE`` are cut: their rows are digested otherwise)."""
    count = len(column)
    offsets = np.frombuffer(
        column.buffers()[1], dtype=np.int32, count=count + 1, offset=column.offset * 4
    ).astype(np.int64)
    lengths = np.diff(offsets)
    longest = min(int(lengths.max()), _SHORT_VALUE)
    width = max(8, -(-longest // 8) * 8)
    data = np.frombuffer(column.buffers()[2], dtype=np.uint8)[int(offsets[0]) : int(offsets[-1])]
    padded = np.concatenate([data, np.zeros(width, dtype=np.uint8)])
    windows = np.lib.stride_tricks.sliding_window_view(padded, width)[offsets[:-1] - offsets[0]]
    inside = np.arange(width)[None, :] < lengths[:, None]
    words = np.where(inside, windows, np.uint8(0)).view(np.uint64)
    return lengths.astype(np.uint64), words


def _lane_digests(columns: Sequence[pa.Array]) -> npt.NDArray[np.uint8]:
    """A 16-byte digest of each row: two 64-bit lanes, seeded differently, each chaining
    ``h = fmix(h ^ x)`` over every column's value length and the value's own 8-byte words
    (the last one zero-padded)."""
    count = len(columns[0])
    lanes = [np.full(count, seed, dtype=np.uint64) for seed in _SEEDS]
    with np.errstate(over="ignore"):
        for column in columns:
            lengths, words = _words(column)
            # Only a value's own words count (not the padding up to the batch's longest
            # value), so a row's digest never depends on the other rows of its batch.
            within = [lengths > np.uint64(8 * index) for index in range(words.shape[1])]
            for lane in range(2):
                h = _fmix(lanes[lane] ^ lengths)
                for index in range(words.shape[1]):
                    h = np.where(within[index], _fmix(h ^ words[:, index]), h)
                lanes[lane] = h
    return np.stack(lanes, axis=1).view(np.uint8).reshape(count, 16)


Digests = npt.NDArray[np.uint64]
"""Row digests: one row of two 64-bit words (16 bytes) per table row."""


def row_digests(columns: Sequence[pa.Array]) -> Digests:
    """A 16-byte digest of each row's exact content (the values of ``columns``, a string
    array per column, all of one length), as an ``(n, 2)`` uint64 array: equal rows, equal
    digests; different rows, different digests but for a chance of about 2^-128.
    Computed from the batch alone, so any engine gets the same digests.

    Rows whose values are all at most ``_SHORT_VALUE`` bytes are digested with numpy
    (:func:`_lane_digests`: every value's length and bytes, so the digest is of the exact
    values); rows with a longer value with BLAKE2b over the length-prefixed values. Which
    form a row takes depends on its content only, so equal rows always meet. The numpy
    form is not a cryptographic hash: a provider who crafted two different rows with one
    digest would only get the second quarantined as a copy (never lost, never written)."""
    if not columns:
        raise ValueError("a row digest needs at least one column")
    count = len(columns[0])
    if count == 0:
        return np.zeros((0, 2), dtype=np.uint64)
    digests = np.ascontiguousarray(_lane_digests(columns)).view(np.uint64).reshape(count, 2)
    long = np.zeros(count, dtype=bool)
    for column in columns:
        long |= _np(pc.greater(pc.binary_length(column), _SHORT_VALUE))
    for index in np.flatnonzero(long).tolist():
        digest = hashlib.blake2b(digest_size=16, person=b"sde-row-long")
        for column in columns:
            encoded = column[index].as_py().encode("utf-8")
            digest.update(len(encoded).to_bytes(8, "big"))
            digest.update(encoded)
        digests[index] = np.frombuffer(digest.digest(), dtype=np.uint64)
    return digests


class SeenTable:
    """An open-addressing hash table (linear probing) of 16-byte keys to int64 values,
    in numpy: the state :func:`first_seen` keeps while a file streams. Each slot is one
    24-byte row (key, key, value + 1; 0 = empty), so a probe costs one memory access; at
    most 70% full (10 million rows: 16.8 M slots, 400 MB), where a dict of bytes keys
    costs about 140 bytes an entry and a Python call per row."""

    def __init__(self, capacity: int = 1 << 16) -> None:
        size = 1 << max(4, (capacity - 1).bit_length())
        self._slots = np.zeros((size, 3), dtype=np.uint64)
        self.count = 0

    def __len__(self) -> int:
        return self.count

    def _start(self, keys: Digests) -> npt.NDArray[np.int64]:
        mask = np.uint64(len(self._slots) - 1)
        with np.errstate(over="ignore"):
            mixed = _fmix(keys[:, 0] ^ _fmix(keys[:, 1] ^ _SEEDS[0]))
        return (mixed & mask).astype(np.int64)

    def _probe(
        self, keys: Digests, slots: npt.NDArray[np.int64]
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
        """From ``slots`` on, for each key: its slot and its value if it is in the table,
        else the first empty slot on its probe path and -1."""
        mask = len(self._slots) - 1
        slots = slots.copy()
        values = np.full(len(keys), -1, dtype=np.int64)
        pending = np.arange(len(keys))
        while len(pending):
            rows = self._slots[slots[pending]]
            empty = rows[:, 2] == 0
            same = ~empty & (rows[:, 0] == keys[pending, 0]) & (rows[:, 1] == keys[pending, 1])
            values[pending[same]] = rows[same, 2].astype(np.int64) - 1
            moving = pending[~empty & ~same]
            slots[moving] = (slots[moving] + 1) & mask
            pending = moving
        return slots, values

    def lookup(self, keys: Digests) -> npt.NDArray[np.int64]:
        """The value of each key, -1 where it is not in the table."""
        return self._probe(keys, self._start(keys))[1]

    def find_or_add(self, keys: Digests, values: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
        """For distinct ``keys``: the value already in the table, or -1 where the key was
        not there (it is added with its value from ``values``, which are never negative)."""
        if (self.count + len(keys)) * 10 > len(self._slots) * 7:
            self._grow(self.count + len(keys))
        slots, found = self._probe(keys, self._start(keys))
        pending = np.flatnonzero(found < 0)
        while len(pending):
            # Keys whose first empty slot is the same: the first takes it, the others
            # probe on from there.
            taken, first = np.unique(slots[pending], return_index=True)
            winners = pending[first]
            self._slots[taken, 0] = keys[winners, 0]
            self._slots[taken, 1] = keys[winners, 1]
            self._slots[taken, 2] = values[winners].astype(np.uint64) + np.uint64(1)
            self.count += len(winners)
            left = np.ones(len(pending), dtype=bool)
            left[first] = False
            pending = pending[left]
            if len(pending):
                slots[pending], _ = self._probe(keys[pending], slots[pending])
        return found

    def insert(self, keys: Digests, values: npt.NDArray[np.int64]) -> None:
        """Add keys that are distinct and not in the table yet."""
        self.find_or_add(keys, values)

    def _grow(self, needed: int) -> None:
        used = self._slots[:, 2] != 0
        rows = self._slots[used]
        size = len(self._slots)
        while needed * 10 > size * 7:
            size *= 2
        self._slots = np.zeros((size, 3), dtype=np.uint64)
        self.count = 0
        self.find_or_add(rows[:, :2], rows[:, 2].astype(np.int64) - 1)


def first_seen(
    digests: Digests, numbers: npt.NDArray[np.int64], seen: SeenTable
) -> npt.NDArray[np.int64]:
    """The first record number of each row's digest: among ``seen`` (digests of earlier
    batches, updated in place) and the rows before it in this batch (``numbers`` ascend).
    A row is the first of its kind where the result equals its own number."""
    count = len(digests)
    if count == 0:
        return np.zeros(0, dtype=np.int64)
    flat = np.ascontiguousarray(digests, dtype=np.uint64)
    binary = pa.Array.from_buffers(pa.binary(16), count, [None, pa.py_buffer(flat)])
    encoded = pc.dictionary_encode(binary)  # the distinct digests, in order of first row
    inverse = encoded.indices.to_numpy().astype(np.int64)
    running = np.maximum.accumulate(inverse)
    first = np.flatnonzero(inverse > np.concatenate(([-1], running[:-1])))
    earlier = seen.find_or_add(flat[first], numbers[first])
    new = earlier < 0
    earlier[new] = numbers[first[new]]
    result: npt.NDArray[np.int64] = earlier[inverse]
    return result
