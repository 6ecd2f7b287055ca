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
over a window per digest). :class:`NumberIndex` gives each distinct NHS number of a file
a dense position (ingest keeps each patient's pid at that position, MACed once a file).

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
        matrix = nhs_number.fixed_width_bytes(text, 10)
        if matrix is not None:  # every value ten bytes: the shape checked with numpy
            chars = matrix.astype(np.int64) - 48
            digit = (chars >= 0) & (chars <= 9)
            dashes = (matrix[:, 4] == _DASH) & (matrix[:, 7] == _DASH)
            shaped = dashes & np.all(digit[:, _DATE_DIGITS], axis=1)
            return _iso_dates(chars, shaped)
        shaped = pc.match_substring_regex(text, pattern=_ISO_DATE)
        padded = pc.if_else(shaped, text, pa.scalar("1970-01-01"))
        return _iso_dates(nhs_number.digit_matrix(padded, 10, "dates"), _np(shaped))
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


_DASH = ord("-")
_DATE_DIGITS = [0, 1, 2, 3, 5, 6, 8, 9]


def _iso_dates(chars: npt.NDArray[np.int64], shaped: Bools) -> tuple[pa.Array, Bools]:
    """Dates of ten-byte texts (``chars``: each byte minus ``ord("0")``, a row per text)
    where ``shaped`` (``YYYY-MM-DD`` in ASCII digits): decided exactly as
    ``date.fromisoformat`` (years 1 to 9999, real days of the month, leap years by the
    Gregorian rule)."""
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
    dates = pa.Array.from_buffers(pa.date32(), len(days), [None, pa.py_buffer(days)])
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


_MAY_START_SPACE = np.zeros(256, dtype=bool)
_MAY_START_SPACE[[ord(c) for c in nhs_number.WHITESPACE if ord(c) < 128]] = True
_MAY_START_SPACE[[c.encode("utf-8")[0] for c in nhs_number.WHITESPACE if ord(c) >= 128]] = True
_MAY_END_SPACE = np.zeros(256, dtype=bool)
_MAY_END_SPACE[[ord(c) for c in nhs_number.WHITESPACE if ord(c) < 128]] = True
_MAY_END_SPACE[128:] = True  # the last byte of any non-ASCII character


def _trimmed(raw: pa.Array) -> pa.Array:
    """``raw`` with the whitespace ``str.strip()`` removes stripped from every value.
    Most columns have none: when no value starts or ends with a byte that can be part of
    whitespace (numpy, over the first and last bytes), ``raw`` is returned as it is."""
    count = len(raw)
    if count == 0 or raw.null_count or not pa.types.is_string(raw.type):
        return pc.utf8_trim(raw, characters=nhs_number.WHITESPACE)
    offsets = np.frombuffer(
        raw.buffers()[1], dtype=np.int32, count=count + 1, offset=raw.offset * 4
    )
    starts, ends = offsets[:-1], offsets[1:]
    filled = starts < ends
    if not bool(filled.any()):
        return raw
    data = np.frombuffer(raw.buffers()[2], dtype=np.uint8)
    firsts = data[starts[filled]]
    lasts = data[ends[filled] - 1]
    if bool(_MAY_START_SPACE[firsts].any()) or bool(_MAY_END_SPACE[lasts].any()):
        return pc.utf8_trim(raw, characters=nhs_number.WHITESPACE)
    return raw


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
        text = _trimmed(raw)
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
Digests = npt.NDArray[np.uint64]
"""Row digests: one row of two 64-bit words (16 bytes) per table row."""


def _fmix(h: _U64) -> _U64:
    """MurmurHash3's 64-bit finaliser: a bijection that mixes every bit into every bit."""
    h ^= h >> np.uint64(33)
    h *= _M1
    h ^= h >> np.uint64(33)
    h *= _M2
    h ^= h >> np.uint64(33)
    return h


_LOW_BYTES = np.array([(1 << (8 * k)) - 1 for k in range(9)], dtype=np.uint64)
"""``_LOW_BYTES[k]``: the mask of a little-endian word's first ``k`` bytes."""
_CHUNK_ROWS = 16_384
"""Rows digested at a time: a chunk's two lanes and scratch stay in the CPU's L2 cache."""
_SHIFT = np.uint64(33)


def _fmix_in_place(h: _U64, scratch: _U64) -> None:
    """:func:`_fmix` of ``h`` in place (``scratch``: an array of ``h``'s shape)."""
    np.right_shift(h, _SHIFT, out=scratch)
    h ^= scratch
    h *= _M1
    np.right_shift(h, _SHIFT, out=scratch)
    h ^= scratch
    h *= _M2
    np.right_shift(h, _SHIFT, out=scratch)
    h ^= scratch


@dataclass(frozen=True)
class _Words:
    """A string column's values as 8-byte little-endian words: ``words[i]`` holds bytes
    ``8i`` to ``8i + 7`` of every value, zero past the value's end (values longer than
    ``_SHORT_VALUE`` are cut: their rows are digested otherwise)."""

    lengths: npt.NDArray[np.int64]
    words: list[_U64]
    shortest: int
    longest: int
    """The longest value's length (not cut)."""


def _words(column: pa.Array) -> _Words:
    count = len(column)
    offsets = np.frombuffer(
        column.buffers()[1], dtype=np.int32, count=count + 1, offset=column.offset * 4
    ).astype(np.int64)
    lengths = np.diff(offsets)
    first, size = int(offsets[0]), int(offsets[-1] - offsets[0])
    buffer = column.buffers()[2]
    data = np.frombuffer(buffer, dtype=np.uint8)[first : first + size] if size else None
    shortest, longest = int(lengths.min()), int(lengths.max())
    width = min(longest, _SHORT_VALUE)
    count_words = max(1, -(-width // 8))
    if shortest == longest <= _SHORT_VALUE:  # one width (such as dates): no gather
        matrix = np.zeros((count, 8 * count_words), dtype=np.uint8)
        if data is not None:
            matrix[:, :longest] = data.reshape(count, longest)
        table = matrix.view(np.uint64)
        return _Words(lengths, [table[:, i] for i in range(count_words)], shortest, longest)
    # Word i of every value read straight from the bytes: a view of the (zero-padded)
    # data as one 8-byte word at every byte offset, gathered at each value's start + 8i.
    padded = np.zeros(size + 8 * count_words, dtype=np.uint8)
    if data is not None:
        padded[:size] = data
    at_every_byte = np.ndarray(
        (size + 8 * count_words - 7,), dtype=np.uint64, buffer=padded, strides=(1,)
    )
    starts = offsets[:-1] - first
    words = []
    for index in range(count_words):
        word = at_every_byte[starts + 8 * index]
        if shortest < 8 * (index + 1):  # some values end within this word
            word &= _LOW_BYTES[np.clip(lengths - 8 * index, 0, 8)]
        words.append(word)
    return _Words(lengths, words, shortest, longest)


def _lane_digests(columns: Sequence[_Words]) -> Digests:
    """A 16-byte digest of each row: two 64-bit lanes, seeded differently, each chaining
    ``h = fmix(h ^ x)`` over every column's value length and the value's own 8-byte words
    (the last one zero-padded). Only a value's own words count (not the padding up to the
    batch's longest value), so a row's digest never depends on the other rows of its batch.

    Both lanes are computed together, in place, a chunk of rows at a time."""
    count = len(columns[0].lengths)
    lanes = np.empty((2, count), dtype=np.uint64)
    lanes[0] = _SEEDS[0]
    lanes[1] = _SEEDS[1]
    with np.errstate(over="ignore"):
        for start in range(0, count, _CHUNK_ROWS):
            stop = min(start + _CHUNK_ROWS, count)
            h = lanes[:, start:stop]
            scratch = np.empty_like(h)
            for column in columns:
                lengths = column.lengths[start:stop]
                h ^= lengths.view(np.uint64)
                _fmix_in_place(h, scratch)
                for index, word in enumerate(column.words):
                    if column.shortest > 8 * index:  # within every value
                        h ^= word[start:stop]
                        _fmix_in_place(h, scratch)
                        continue
                    rows = np.flatnonzero(lengths > 8 * index)
                    if len(rows):
                        part = h[:, rows]
                        part ^= word[start:stop][rows]
                        _fmix_in_place(part, np.empty_like(part))
                        h[:, rows] = part
    return np.ascontiguousarray(lanes.T)


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
    words = [_words(column) for column in columns]
    digests = _lane_digests(words)
    long = np.zeros(count, dtype=bool)
    for column in words:
        if column.longest > _SHORT_VALUE:
            long |= column.lengths > _SHORT_VALUE
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
    32-byte row (key, key, value + 1, unused; 0 = empty), so a probe costs one memory
    access (rows of 24 bytes straddle cache lines, and numpy gathers them at half the
    speed); at most 70% full (10 million rows: 16.8 M slots, 537 MB), where a dict of
    bytes keys costs about 140 bytes an entry and a Python call per row."""

    def __init__(self, capacity: int = 1 << 16) -> None:
        size = 1 << max(4, (capacity - 1).bit_length())
        self._slots = np.zeros((size, 4), dtype=np.uint64)
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
            rows = np.take(self._slots, slots[pending], axis=0)
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

    def first_of(self, keys: Digests, values: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
        """For each of ``keys`` in order (repeats allowed): the value of its first
        occurrence, in the table or earlier in ``keys``. A key not in the table is added
        with the value of its first occurrence. Values are never negative, and those of
        equal keys ascend strictly (record numbers do).

        One probe per key, a chunk of keys at a time: a key finds its own entry, or
        claims the first empty slot on its path; claimants of one slot write in reverse
        order, so the first of them keeps it (equal keys claim together: the first one's
        value stays), and the others, read back, probe on."""
        count = len(keys)
        found = np.empty(count, dtype=np.int64)
        for start in range(0, count, _CHUNK_ROWS):
            stop = min(start + _CHUNK_ROWS, count)
            if (self.count + stop - start) * 10 > len(self._slots) * 7:
                self._grow(self.count + stop - start)
            found[start:stop] = self._first_of(keys[start:stop], values[start:stop])
        return found

    def _first_of(self, keys: Digests, values: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
        mask = len(self._slots) - 1
        slots = self._start(keys)
        found = np.empty(len(keys), dtype=np.int64)
        pending = np.arange(len(keys))
        while len(pending):
            at = slots[pending]
            rows = np.take(self._slots, at, axis=0)  # faster than fancy indexing
            first, second = keys[pending, 0], keys[pending, 1]
            empty = rows[:, 2] == 0
            same = (rows[:, 0] == first) & (rows[:, 1] == second) & ~empty
            found[pending[same]] = rows[same, 2].astype(np.int64) - 1
            moving = ~empty & ~same
            if bool(empty.any()):
                claims = pending[empty]
                claimed = at[empty]
                new = np.zeros((len(claims), 4), dtype=np.uint64)
                new[:, 0] = first[empty]
                new[:, 1] = second[empty]
                new[:, 2] = values[claims].astype(np.uint64) + np.uint64(1)
                whole = np.dtype((np.void, 32))  # whole rows: one write each
                np.put(self._slots.view(whole), claimed[::-1], new[::-1].view(whole))
                back = np.take(self._slots, claimed, axis=0)
                won = (back[:, 0] == new[:, 0]) & (back[:, 1] == new[:, 1])
                stored = back[:, 2]
                if bool(np.any(stored[won] > new[won, 2])):  # pragma: no cover - numpy
                    # writes repeated indices in order; were it not so, the first value wins
                    column = self._slots[:, 2]
                    np.minimum.at(column, claimed[won], new[won, 2])
                    stored = column[claimed]
                found[claims[won]] = stored[won].astype(np.int64) - 1
                self.count += int(np.count_nonzero(won & (stored == new[:, 2])))
                moving[empty] = ~won
            slots[pending[moving]] = (at[moving] + 1) & mask
            pending = pending[moving]
        return found

    def _grow(self, needed: int) -> None:
        used = self._slots[:, 2] != 0
        rows = self._slots[used]
        size = len(self._slots)
        while needed * 10 > size * 7:
            size *= 2
        self._slots = np.zeros((size, 4), dtype=np.uint64)
        self.count = 0
        self.first_of(rows[:, :2], rows[:, 2].astype(np.int64) - 1)


class NumberIndex:
    """Dense positions of integers: each number met for the first time gets the next free
    position (0, 1, 2, ...), and keeps it. An open-addressing hash table (linear
    probing) in numpy, one 8-byte slot per entry (number + 1 and position packed in one
    word; 0 = empty), at most 70% full: a million NHS numbers take 16 MB, so a lookup
    mostly hits the CPU's cache. Numbers are from 0 to ``NUMBER_LIMIT`` (every ten-digit
    NHS number); at most 2^30 distinct ones."""

    NUMBER_LIMIT = (1 << 34) - 2
    _POSITION_BITS = 30
    _POSITIONS = np.uint64((1 << 30) - 1)
    _FIBONACCI = np.uint64(0x9E3779B97F4A7C15)

    def __init__(self, capacity: int = 1 << 16) -> None:
        self._bits = max(4, (max(capacity, 1) * 10 // 7).bit_length())
        self._slots = np.zeros(1 << self._bits, dtype=np.uint64)
        self.count = 0

    def __len__(self) -> int:
        return self.count

    def positions(
        self, numbers: npt.NDArray[np.int64]
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
        """The position of each number (repeats allowed), and the numbers met for the
        first time, in the order of their new positions (from ``count`` before the call)."""
        numbers = np.asarray(numbers, dtype=np.int64)
        if len(numbers) and (int(numbers.min()) < 0 or int(numbers.max()) > self.NUMBER_LIMIT):
            raise ValueError("a number index holds numbers from 0 to 2^34 - 2 only")
        found = np.empty(len(numbers), dtype=np.int64)
        added: list[npt.NDArray[np.int64]] = []
        for start in range(0, len(numbers), _CHUNK_ROWS):
            stop = min(start + _CHUNK_ROWS, len(numbers))
            if (self.count + stop - start) * 10 > len(self._slots) * 7:
                self._grow(self.count + stop - start)
            found[start:stop], new = self._place(numbers[start:stop])
            added.append(new)
        new_numbers = np.concatenate(added) if added else np.zeros(0, dtype=np.int64)
        return found, new_numbers

    def _start(self, tags: _U64) -> npt.NDArray[np.int64]:
        with np.errstate(over="ignore"):
            mixed = tags * self._FIBONACCI
        return (mixed >> np.uint64(64 - self._bits)).astype(np.int64)

    def _place(
        self, numbers: npt.NDArray[np.int64]
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
        """As :meth:`positions`, for one chunk (the table has room for all of it)."""
        if self.count + len(numbers) > 1 << self._POSITION_BITS:
            raise ValueError("a number index holds at most 2^30 distinct numbers")
        mask = len(self._slots) - 1
        tags = (numbers.astype(np.uint64) + np.uint64(1)) << np.uint64(self._POSITION_BITS)
        slots = self._start(tags)
        found = np.empty(len(numbers), dtype=np.int64)
        added: list[npt.NDArray[np.int64]] = []
        pending = np.arange(len(numbers))
        while len(pending):
            at = slots[pending]
            held = np.take(self._slots, at)
            tag = tags[pending]
            empty = held == 0
            same = (held & ~self._POSITIONS) == tag
            found[pending[same]] = (held[same] & self._POSITIONS).astype(np.int64)
            moving = ~empty & ~same
            if bool(empty.any()):
                # Claimants of one empty slot each write their own provisional position,
                # in reverse, so the first keeps it; equal numbers claim together and
                # share it. Then the positions kept are renumbered densely.
                claims = pending[empty]
                claimed = at[empty]
                provisional = np.arange(len(claims), dtype=np.uint64)
                self._slots[claimed[::-1]] = (tag[empty] | provisional)[::-1]
                back = self._slots[claimed]
                won = (back & ~self._POSITIONS) == tag[empty]
                owner = won & ((back & self._POSITIONS) == provisional)
                dense = np.full(len(claims), -1, dtype=np.int64)
                dense[owner] = self.count + np.arange(int(np.count_nonzero(owner)))
                self._slots[claimed[owner]] = tag[empty][owner] | dense[owner].astype(np.uint64)
                kept = (back[won] & self._POSITIONS).astype(np.int64)
                found[claims[won]] = dense[kept]
                added.append(numbers[claims[owner]])
                self.count += len(added[-1])
                moving[empty] = ~won
            slots[pending[moving]] = (at[moving] + 1) & mask
            pending = pending[moving]
        new = np.concatenate(added) if added else np.zeros(0, dtype=np.int64)
        return found, new

    def _grow(self, needed: int) -> None:
        held = self._slots[self._slots != 0]
        while needed * 10 > (1 << self._bits) * 7:
            self._bits += 1
        self._slots = np.zeros(1 << self._bits, dtype=np.uint64)
        # Each entry moves with its position; distinct numbers, so a slot claimed by
        # several is kept by one and the others probe on.
        mask = len(self._slots) - 1
        slots = self._start(held & ~self._POSITIONS)
        pending = np.arange(len(held))
        while len(pending):
            at = slots[pending]
            empty = self._slots[at] == 0
            self._slots[at[empty]] = held[pending[empty]]
            moving = self._slots[at] != held[pending]
            slots[pending[moving]] = (at[moving] + 1) & mask
            pending = pending[moving]


def first_seen(
    digests: Digests, numbers: npt.NDArray[np.int64], seen: SeenTable
) -> npt.NDArray[np.int64]:
    """The first record number of each row's digest: among ``seen`` (digests of earlier
    batches, updated in place) and the rows before it in this batch (``numbers`` ascend).
    A row is the first of its kind where the result equals its own number."""
    if len(digests) == 0:
        return np.zeros(0, dtype=np.int64)
    flat = np.ascontiguousarray(digests, dtype=np.uint64)
    return seen.first_of(flat, np.asarray(numbers, dtype=np.int64))
