"""Keyed pseudonyms over Arrow arrays: HMAC-SHA256 a batch at a time.

The per-value pseudonymisers in ``sde.domain.pseudonyms`` build one Python string per
value. This adapter does the same MAC over a whole ``pyarrow`` array and gives an Arrow
array back, byte for byte what ``_KeyedPseudonymiser._mac`` gives for each value:

- :func:`hmac_sha256_array` — full 32-byte HMAC-SHA256 digests (``binary``);
- :func:`pseudonymise_array` — the pseudonym: the digest truncated to
  ``PSEUDONYM_BYTES`` and written as lower-case hex (``string``);
- :func:`pseudonymise_distinct` — the same, for columns that repeat values (an events
  table has ~10 rows per patient): dictionary-encode, MAC each distinct value once,
  then gather by index;
- :class:`ArrowLinkagePseudonymiser` / :class:`ArrowProjectPseudonymiser` — the batch
  forms of ``LinkagePseudonymiser.pid`` and ``ProjectPseudonymiser.pseudonym``, with the
  same keys (HKDF sub-keys of the master key).

Nulls stay null. Where the speed comes from (measured on this project's 2-core machine,
see docs/performance.md): HMAC with the inner and outer SHA-256 states precomputed
(``hashlib`` objects backed by OpenSSL, which uses the CPU's SHA extensions), so each value
costs two SHA-256 compressions; Arrow converts to and from Python in bulk; the hex
encoding and the gather are numpy operations over fixed-width rows. DuckDB's vectorised
``sha256()`` was measured too and is slower per core (see the docs).

No I/O: memory only.
"""

from __future__ import annotations

import hashlib
from typing import Final

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from sde.domain import nhs_number
from sde.domain.pseudonyms import (
    LINKAGE_INFO,
    MASTER_KEY_BYTES,
    PSEUDONYM_BYTES,
    hkdf_sha256,
    project_info,
)

DIGEST_BYTES: Final = 32
_BLOCK_BYTES: Final = 64
_CHUNK: Final = 1 << 16  # values converted to Python at a time (bounds memory)
_HEX_CHARS: Final = 2 * PSEUDONYM_BYTES
_INT32_MAX: Final = 2**31 - 1
_MAX_INT_DIGITS: Final = 18  # every string of up to 18 ASCII digits fits an int64


def _states(key: bytes) -> tuple[hashlib._Hash, hashlib._Hash]:
    """SHA-256 states after the key block XOR ipad / opad (RFC 2104)."""
    if len(key) > _BLOCK_BYTES:
        key = hashlib.sha256(key).digest()
    padded = key.ljust(_BLOCK_BYTES, b"\x00")
    inner = hashlib.sha256(bytes(b ^ 0x36 for b in padded))
    outer = hashlib.sha256(bytes(b ^ 0x5C for b in padded))
    return inner, outer


def _as_bytes_array(values: pa.Array) -> pa.Array:
    """``values`` as Arrow binary (string/large string/binary in, no copy of the data)."""
    if not isinstance(values, pa.Array):
        raise TypeError("expected a pyarrow.Array (combine a ChunkedArray's chunks first)")
    kind = values.type
    if pa.types.is_string(kind) or pa.types.is_binary(kind):
        return values.cast(pa.binary())
    if pa.types.is_large_string(kind) or pa.types.is_large_binary(kind):
        return values.cast(pa.large_binary())
    raise TypeError(f"expected a string or binary array, got {kind}")


def _digests(key: bytes, values: pa.Array) -> bytes:
    """The 32-byte HMAC-SHA256 of every slot of ``values``, concatenated in order.

    Null slots are MACed as empty messages; callers mask them with the input's validity.
    """
    inner, outer = _states(key)
    inner_copy = inner.copy
    outer_copy = outer.copy
    parts: list[bytes] = []
    binary = _as_bytes_array(values)
    for start in range(0, len(binary), _CHUNK):
        messages = binary.slice(start, _CHUNK).to_pylist()
        out: list[bytes] = []
        append = out.append
        for message in messages:
            h = inner_copy()
            if message is not None:
                h.update(message)
            o = outer_copy()
            o.update(h.digest())
            append(o.digest())
        parts.append(b"".join(out))
    return b"".join(parts)


def _validity(values: pa.Array) -> pa.Buffer | None:
    """A validity bitmap for ``values`` starting at bit 0, or None if nothing is null."""
    if values.null_count == 0:
        return None
    return _bitmap(values.is_valid())


def _fixed_width(
    kind: pa.DataType,
    count: int,
    width: int,
    data: bytes | pa.Buffer,
    validity: pa.Buffer | None,
) -> pa.Array:
    """An Arrow (binary or string) array of ``count`` items of ``width`` bytes each."""
    if count * width > _INT32_MAX:
        raise ValueError(
            f"a batch of {count} values is too large for one array: split it into batches"
        )
    offsets = np.arange(0, (count + 1) * width, width, dtype=np.int32)
    return pa.Array.from_buffers(
        kind,
        count,
        [
            validity,
            pa.py_buffer(offsets),
            data if isinstance(data, pa.Buffer) else pa.py_buffer(data),
        ],
        null_count=-1 if validity is not None else 0,
    )


def _hex_pseudonyms(digests: bytes, count: int) -> bytes:
    """Truncate each 32-byte digest to PSEUDONYM_BYTES and hex-encode: count * 32 chars."""
    matrix = np.frombuffer(digests, dtype=np.uint8).reshape(count, DIGEST_BYTES)
    return matrix[:, :PSEUDONYM_BYTES].tobytes().hex().encode("ascii")


def hmac_sha256_array(key: bytes, values: pa.Array) -> pa.Array:
    """Full HMAC-SHA256 of each value (its UTF-8 bytes for strings): ``binary``, 32 bytes
    each; nulls stay null."""
    digests = _digests(key, values)
    return _fixed_width(pa.binary(), len(values), DIGEST_BYTES, digests, _validity(values))


def pseudonymise_array(key: bytes, values: pa.Array) -> pa.Array:
    """The pseudonym of each value, as ``_KeyedPseudonymiser._mac`` computes it: the
    HMAC-SHA256 under ``key`` truncated to PSEUDONYM_BYTES, lower-case hex (``string``).
    Every slot is MACed; use :func:`pseudonymise_distinct` when values repeat."""
    digests = _digests(key, values)
    data = _hex_pseudonyms(digests, len(values))
    return _fixed_width(pa.string(), len(values), _HEX_CHARS, data, _validity(values))


def pseudonymise_distinct(key: bytes, values: pa.Array, *, as_dictionary: bool = False) -> pa.Array:
    """:func:`pseudonymise_array` computing each distinct value's pseudonym once.

    Same result as the per-row form. Dictionary-encodes ``values`` (nulls become null
    indices; a DictionaryArray is used as it is), pseudonymises the dictionary, and
    gathers the fixed-width hex rows by index. With ``as_dictionary=True`` the gather is
    skipped: the result is a DictionaryArray (the row indices and the distinct
    pseudonyms), equal to the per-row form once decoded, and much smaller in memory;
    Parquet and Delta writers store it as it is.
    """
    if isinstance(values, pa.DictionaryArray) and values.dictionary.null_count == 0:
        encoded = values
    else:
        if isinstance(values, pa.DictionaryArray):  # a null in the dictionary: re-encode
            values = values.dictionary_decode()
        _as_bytes_array(values)  # refuse other types before encoding
        encoded = _dictionary_encode(values)
    dictionary = encoded.dictionary
    hex_rows = _hex_pseudonyms(_digests(key, dictionary), len(dictionary))
    if as_dictionary:
        pseudonyms = _fixed_width(pa.string(), len(dictionary), _HEX_CHARS, hex_rows, None)
        return pa.DictionaryArray.from_arrays(encoded.indices, pseudonyms)
    return _gather(hex_rows, len(dictionary), encoded.indices)


def _dictionary_encode(values: pa.Array) -> pa.DictionaryArray:
    """``pc.dictionary_encode``, faster for strings of ASCII digits all of one width.

    Arrow's hash table for strings is bound by cache misses once there are ~10^6
    distinct values. Strings of w ASCII digits (1 <= w <= 18, such as normalised NHS
    numbers) map one-to-one onto int64 values, whose table is smaller; the dictionary is
    turned back into the same w-digit strings (zero-padded) afterwards.
    """
    encoded: pa.DictionaryArray
    if pa.types.is_string(values.type) and values.null_count < len(values):
        widths = pc.min_max(pc.binary_length(values)).as_py()  # nulls skipped
        width = widths["min"]
        if (
            width == widths["max"]
            and 1 <= width <= _MAX_INT_DIGITS
            and pc.all(pc.ascii_is_decimal(values)).as_py() is True
        ):
            numbers = pc.dictionary_encode(pc.cast(values, pa.int64()))
            digits = pc.utf8_lpad(
                pc.cast(numbers.dictionary, pa.string()), width=width, padding="0"
            )
            return pa.DictionaryArray.from_arrays(numbers.indices, digits)
    encoded = pc.dictionary_encode(values)
    return encoded


def _gather(
    hex_rows: bytes, distinct: int, indices: pa.Array, keep: pa.Array | None = None
) -> pa.Array:
    """The string array whose item i is hex row ``indices[i]``: null where the index is
    null, and where ``keep`` (a BooleanArray of one item per row, if given) is False."""
    validity = _validity(indices)
    if keep is not None:
        keep = pc.and_kleene(keep, indices.is_valid())
        if keep.false_count:
            bits = pc.fill_null(keep, False)
            validity = _bitmap(bits)
    if validity is not None:
        indices = pc.fill_null(indices, 0)
    count = len(indices)
    if distinct == 0:  # every value null (or no values): nothing to gather
        return _fixed_width(pa.string(), count, _HEX_CHARS, bytes(_HEX_CHARS * count), validity)
    # Each row is 32 ASCII bytes: gather rows of four 64-bit words.
    rows = np.frombuffer(hex_rows, dtype=np.uint64).reshape(distinct, _HEX_CHARS // 8)
    positions = indices.to_numpy(zero_copy_only=False)
    # numpy's own allocation, not Arrow's pool: numpy asks for transparent huge pages on
    # large arrays, so first-touching the output costs far less (measured: see the docs).
    gathered = np.take(rows, positions, axis=0)
    return _fixed_width(pa.string(), count, _HEX_CHARS, pa.py_buffer(gathered), validity)


def _bitmap(mask: pa.Array) -> pa.Buffer:
    """The bitmap of a BooleanArray without nulls, starting at bit 0."""
    if mask.offset % 8:
        mask = pa.concat_arrays([mask])  # a copy starting at bit 0
    buffer: pa.Buffer = mask.buffers()[1]
    return buffer.slice(mask.offset // 8)


def _check_master(master_key: bytes) -> None:
    if len(master_key) != MASTER_KEY_BYTES:
        raise ValueError(f"the master key must be {MASTER_KEY_BYTES} bytes")


class ArrowLinkagePseudonymiser:
    """Batch form of ``LinkagePseudonymiser``: NHS numbers -> ``pid`` over an Arrow array.

    The same key (``hkdf_sha256(master, LINKAGE_INFO)``) and the same normalisation, so
    ``pid_array(a)[i] == LinkagePseudonymiser(master).pid(a[i])`` for every valid value.
    A value that is not a valid NHS number (or is null) gets a null ``pid``: check
    ``sde.domain.nhs_number.valid_nhs_numbers`` first and quarantine those rows.
    """

    def __init__(self, master_key: bytes) -> None:
        _check_master(master_key)
        self._key = hkdf_sha256(master_key, LINKAGE_INFO)

    def pid_array(self, values: pa.Array) -> pa.Array:
        """The ``pid`` of each value; null where it is not a valid NHS number.

        Dictionary-encodes the raw values first, so normalisation, the Modulus 11 check
        and the MAC each run once per distinct raw value (an events table repeats them).
        """
        if not isinstance(values, pa.Array) or not (
            pa.types.is_string(values.type) or pa.types.is_large_string(values.type)
        ):
            raise TypeError("expected a pyarrow string array of NHS numbers")
        encoded = _dictionary_encode(values)
        raw = encoded.dictionary
        # Distinct raw spellings of one number get the same pid (the MAC of its digits).
        digits = nhs_number.checked_nhs_numbers(raw)
        hex_rows = _hex_pseudonyms(_digests(self._key, digits), len(digits))
        keep = pc.take(digits.is_valid(), encoded.indices)  # null where the value is null
        return _gather(hex_rows, len(digits), encoded.indices, keep)


class ArrowProjectPseudonymiser:
    """Batch form of ``ProjectPseudonymiser``: ``pid`` -> project pseudonym, per project key.

    ``pid`` values repeat in an events table, so each distinct one is MACed once.
    Nulls stay null; a non-ASCII value is refused, as the per-value form refuses it.
    """

    def __init__(self, master_key: bytes, project_id: str) -> None:
        _check_master(master_key)
        self._key = hkdf_sha256(master_key, project_info(project_id))

    def pseudonym_array(self, pids: pa.Array) -> pa.Array:
        if not isinstance(pids, pa.Array) or not (
            pa.types.is_string(pids.type) or pa.types.is_large_string(pids.type)
        ):
            raise TypeError("expected a pyarrow string array of pid values")
        if pc.all(pc.string_is_ascii(pids)).as_py() is False:
            raise ValueError("a pid value is not ASCII")
        return pseudonymise_distinct(self._key, pids)
