"""Provider CSV files as Arrow record batches of raw text, exactly as Python's ``csv`` reads them.

Ingest's reference reader is Python's ``csv`` module (:func:`python_records`: UTF-8 with
an optional byte order mark, ``strict=True``, quoted fields may hold newlines). It reads
about 350,000 records/s. :func:`read_raw_batches` gives the same records, numbered the
same way, at Arrow's speed: it cuts the file into blocks that end on a record boundary,
checks each block's bytes with numpy, and parses a block with ``pyarrow.csv`` only when
Arrow is certain to read it as Python's ``csv`` would. Otherwise the block is split in two
at a record boundary, again and again, and the parts Arrow cannot read exactly (64 KiB or
less, around the awkward record) are parsed by Python's ``csv``; when even the block's
boundaries are in doubt (a quote that neither opens nor closes a field), Python's ``csv``
reads the rest of the file. Either way the output is Arrow batches.

A block goes to Arrow only when all of these hold (each was measured to differ otherwise):

- every ``"`` opens a field (after ``,``, a line end, the block start, or a closing
  ``"``) or closes one (before ``,``, a line end, the file end, or an opening ``"``):
  Python refuses ``"a"b`` (strict) and reads ``ab"c`` literally; Arrow is lenient;
- no line is blank, unless the file has one column (Arrow reads a blank line as empty
  values for every column, Python as a record of no fields: a malformed row);
- no carriage return outside ``\\r\\n``, no NUL byte, valid UTF-8, no byte order mark
  starting the block (Arrow drops one there);
- every record has the header's number of fields (Arrow reports the others);
- no field is longer than 131,072 bytes (Python's ``csv`` refuses longer fields).

A refusal from Python's ``csv`` (not UTF-8, bad quoting, field too large) is raised with
the message and the row or line number the whole-file Python reader gives.

:func:`read_ahead` runs a reader in a thread of its own, a bounded number of batches ahead
of its consumer: Arrow's parse and numpy's byte checks release the GIL, so on a machine
with a second core reading overlaps with checking (ingest uses it).

No patient-level value is ever put in a message: errors name the file and a number.
"""

from __future__ import annotations

import csv
import io
import queue
import threading
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TypeVar

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from sde.errors import InputError

BLOCK_BYTES = 16 << 20
"""Bytes read per block (a block is cut back to its last record boundary)."""
BATCH_RECORDS = 65_536
"""Records per batch on the Python path."""
ARROW_BLOCK_BYTES = 1 << 22
"""Arrow's own block size within a block (its unit of parallel parsing, and of batches)."""
SPLIT_BYTES = 64 << 10
"""A block Arrow cannot read exactly is split until its parts are this small."""
FIELD_LIMIT = 131_072
"""Python's ``csv.field_size_limit()`` default: longer fields are an error there."""

_BOM = b"\xef\xbb\xbf"
_QUOTE, _COMMA, _LF, _CR, _NUL = 34, 44, 10, 13, 0


@dataclass(frozen=True)
class MalformedRecord:
    """A record whose number of fields differs from the header's."""

    number: int
    fields: tuple[str, ...]


@dataclass(frozen=True)
class RawBatch:
    """Consecutive records of a file: the well-formed ones as raw ``string`` columns
    (named by the header, never null: an empty field is ``""``) with their record numbers
    (``int64``, 1 = the first record after the header), and the malformed ones."""

    columns: pa.RecordBatch
    numbers: pa.Array
    malformed: tuple[MalformedRecord, ...] = ()

    @property
    def records(self) -> int:
        return int(self.columns.num_rows) + len(self.malformed)


# --- the reference reader: Python's csv ------------------------------------------------


class _Counting(io.RawIOBase):
    """A binary file that reports the bytes read."""

    def __init__(self, raw: IO[bytes], on_bytes: Callable[[int], object]) -> None:
        self._raw = raw
        self._on_bytes = on_bytes

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        data = self._raw.read(len(buffer))
        buffer[: len(data)] = data
        self._on_bytes(len(data))
        return len(data)


def python_records(
    path: Path, on_bytes: Callable[[int], object] | None = None
) -> Iterator[list[str]]:
    """CSV records of ``path`` (header first) by Python's ``csv``: the reference reader.
    Quoted fields may hold newlines. Raises ``InputError`` for a file that is not UTF-8
    or not valid CSV, naming the data row or line."""
    with path.open("rb") as raw:
        stream: IO[bytes] = raw
        if on_bytes is not None:
            stream = io.BufferedReader(_Counting(raw, on_bytes), buffer_size=1 << 16)
        text = io.TextIOWrapper(stream, encoding="utf-8-sig", newline="")
        reader = csv.reader(text, strict=True)
        try:
            yield from reader
        except UnicodeDecodeError:
            raise InputError(
                f"{path.name} is not UTF-8 text (near data row {max(reader.line_num - 1, 1)})"
            ) from None
        except csv.Error as exc:
            raise InputError(
                f"{path.name} is not valid CSV near line {reader.line_num}: {exc}"
            ) from None


def _refuse_as_python(path: Path) -> InputError:
    """The error the whole-file Python reader gives for ``path`` (it found one where a
    part of the file read alone did)."""
    try:
        for _ in python_records(path):
            pass
    except InputError as exc:
        return exc
    return InputError(f"{path.name} is not valid CSV")  # pragma: no cover - never seen


def _as_batch(header: Sequence[str], records: list[list[str]], first: int) -> RawBatch:
    """Records numbered from ``first`` as a RawBatch (a blank record of a one-column file
    is one empty field, as ingest has always read it)."""
    width = len(header)
    good: list[list[str]] = []
    numbers: list[int] = []
    malformed: list[MalformedRecord] = []
    for offset, fields in enumerate(records):
        if not fields and width == 1:
            fields = [""]
        if len(fields) != width:
            malformed.append(MalformedRecord(first + offset, tuple(fields)))
            continue
        good.append(fields)
        numbers.append(first + offset)
    columns = (
        [pa.array(list(column), pa.string()) for column in zip(*good, strict=True)]
        if good
        else [pa.array([], pa.string()) for _ in header]
    )
    return RawBatch(
        columns=pa.RecordBatch.from_arrays(columns, names=list(header)),
        numbers=pa.array(numbers, pa.int64()),
        malformed=tuple(malformed),
    )


def _python_batches(
    header: Sequence[str], records: Iterator[list[str]], first: int, batch_records: int
) -> Iterator[RawBatch]:
    pending: list[list[str]] = []
    for fields in records:
        pending.append(fields)
        if len(pending) >= batch_records:
            yield _as_batch(header, pending, first)
            first += len(pending)
            pending = []
    if pending:
        yield _as_batch(header, pending, first)


def python_raw_batches(
    path: Path,
    header: Sequence[str],
    *,
    batch_records: int = BATCH_RECORDS,
    on_bytes: Callable[[int], object] | None = None,
) -> Iterator[RawBatch]:
    """:func:`read_raw_batches` by Python's ``csv`` alone (the reference)."""
    records = python_records(path, on_bytes)
    next(records, None)  # the header
    yield from _python_batches(header, records, 1, batch_records)


def _python_rest(
    path: Path, offset: int, header: Sequence[str], first: int, batch_records: int
) -> Iterator[RawBatch]:
    """The records from byte ``offset`` (a record boundary after the header) on."""

    def records() -> Iterator[list[str]]:
        with path.open("rb") as raw:
            raw.seek(offset)
            text = io.TextIOWrapper(raw, encoding="utf-8", newline="")
            try:
                yield from csv.reader(text, strict=True)
            except (UnicodeDecodeError, csv.Error):
                raise _refuse_as_python(path) from None

    yield from _python_batches(header, records(), first, batch_records)


# --- the fast reader ---------------------------------------------------------------------


class _Layout:
    """Where a block's quotes are, and its line feeds outside quoted fields (the block
    starts outside quotes; inside or outside is told by the parity of the quotes before).
    The feeds are found only when asked for: a block Arrow reads needs its last one only,
    found by :meth:`last_feed` without a pass over the block."""

    def __init__(self, data: np.ndarray, quotes: np.ndarray, feeds: np.ndarray | None = None):
        self.data = data
        self.quotes = quotes
        self._feeds = feeds

    @property
    def feeds(self) -> np.ndarray:
        if self._feeds is None:
            feeds = np.flatnonzero(self.data == _LF)
            if len(self.quotes):
                feeds = feeds[np.searchsorted(self.quotes, feeds) % 2 == 0]
            self._feeds = feeds
        return self._feeds

    def last_feed(self, raw: bytes) -> int | None:
        """The position of the last line feed outside quotes (``raw``: the block's bytes)."""
        if self._feeds is None:
            position = raw.rfind(b"\n", 0, len(self.data))
            for _ in range(64):  # then a pass over the block is cheaper
                if position < 0:
                    return None
                if int(np.searchsorted(self.quotes, position)) % 2 == 0:
                    return position
                position = raw.rfind(b"\n", 0, position)
        feeds = self.feeds
        return int(feeds[-1]) if len(feeds) else None

    def prefix(self, size: int) -> _Layout:
        feeds = self._feeds
        return _Layout(
            self.data[:size],
            self.quotes[: np.searchsorted(self.quotes, size)],
            None if feeds is None else feeds[: np.searchsorted(feeds, size)],
        )

    def suffix(self, start: int) -> _Layout:
        """The layout from ``start`` (a record boundary) on, renumbered from 0."""
        feeds = self._feeds
        return _Layout(
            self.data[start:],
            self.quotes[np.searchsorted(self.quotes, start) :] - start,
            None if feeds is None else feeds[np.searchsorted(feeds, start) :] - start,
        )


def _layout(raw: bytes) -> _Layout:
    data = np.frombuffer(raw, dtype=np.uint8)
    quotes = np.flatnonzero(data == _QUOTE) if b'"' in raw else np.zeros(0, dtype=np.intp)
    return _Layout(data, quotes)


def _cut(layout: _Layout, raw: bytes, at_eof: bool) -> int | None:
    """Where a block (``raw``, starting at a record boundary) should end: one past its
    last line feed outside quotes, or its end at end of file; None if neither."""
    if at_eof:
        return len(raw)
    last = layout.last_feed(raw)
    return None if last is None else last + 1


def _arrow_safe(block: bytes, layout: _Layout, width: int) -> bool:
    """True if Arrow reads ``block`` (whole records, its quoting sound) exactly as
    Python's ``csv`` does, the field count aside (checked by Arrow). The bytes searched
    for are rare: each is looked for with ``bytes`` methods (``memchr`` speed) first,
    and where one is found the exact check runs."""
    size = len(block)
    if size == 0:
        return True
    if b"\x00" in block:
        return False
    if block.startswith(_BOM):
        return False  # Arrow drops a byte order mark at the start of what it reads
    data = layout.data
    returns_found = b"\r" in block
    if returns_found:
        returns = np.flatnonzero(data == _CR)
        inside = np.searchsorted(layout.quotes, returns, side="right") % 2 == 1
        bare = returns[~inside]
        if len(bare) and (int(bare[-1]) + 1 >= size or not bool(np.all(data[bare + 1] == _LF))):
            return False  # a carriage return that does not end a line with a line feed
    # A blank line outside quotes is "\n\n" or "\n\r\n" (or a block starting "\n",
    # "\r\n"): look for those bytes anywhere (``bytes`` search is slow for a pair of
    # line feeds, which are frequent: numpy), then, only if found, for lines outside quotes.
    blank_possible = width > 1 and (
        block.startswith(b"\n")
        or (returns_found and (block.startswith(b"\r\n") or b"\n\r\n" in block))
        or _adjacent_feeds(data)
    )
    feeds = layout.feeds if blank_possible else None
    if feeds is not None and len(feeds):
        starts = np.concatenate(([0], feeds[:-1] + 1))
        lengths = feeds - starts
        line_end_cr = (lengths >= 1) & (data[np.maximum(feeds - 1, 0)] == _CR)
        if bool(np.any((lengths == 0) | ((lengths == 1) & line_end_cr))):
            return False  # a blank line
    return True


def _adjacent_feeds(data: np.ndarray) -> bool:
    """True if the bytes hold two line feeds in a row."""
    feeds = data == _LF
    return bool(np.any(feeds[1:] & feeds[:-1]))


def _arrow_block(block: bytes, header: Sequence[str]) -> pa.Table | None:
    """The block parsed by Arrow as raw strings; None if Arrow finds a record with the
    wrong number of fields, invalid UTF-8 or a field too long for Python's ``csv``."""
    names = [f"f{i}" for i in range(len(header))]
    invalid: list[int] = []

    def handler(_row: object) -> str:
        invalid.append(1)
        return "skip"

    try:
        table = pacsv.read_csv(
            pa.py_buffer(block),
            read_options=pacsv.ReadOptions(column_names=names, block_size=ARROW_BLOCK_BYTES),
            parse_options=pacsv.ParseOptions(
                newlines_in_values=True, ignore_empty_lines=False, invalid_row_handler=handler
            ),
            convert_options=pacsv.ConvertOptions(
                column_types=dict.fromkeys(names, pa.string()),
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
            ),
        )
    except pa.ArrowInvalid:
        return None
    if invalid:
        return None
    for column in table.columns:
        for chunk in column.chunks:
            offsets = np.frombuffer(chunk.buffers()[1], dtype=np.int32)
            window = offsets[chunk.offset : chunk.offset + len(chunk) + 1]
            if len(window) > 1 and int(np.max(np.diff(window))) > FIELD_LIMIT:
                return None
    return table.rename_columns(list(header))


def read_raw_batches(
    path: Path,
    header: Sequence[str],
    *,
    block_bytes: int = BLOCK_BYTES,
    batch_records: int = BATCH_RECORDS,
    on_bytes: Callable[[int], object] | None = None,
) -> Iterator[RawBatch]:
    """The data records of ``path`` (after its header, whose fields are ``header``) as
    RawBatches, in file order: the same records, fields and numbers as Python's ``csv``
    (:func:`python_raw_batches`), parsed by Arrow wherever that is exactly equal.
    ``on_bytes`` is told how many bytes were read (a progress bar)."""
    with path.open("rb") as raw:
        head = raw.read(block_bytes)
        if on_bytes is not None:
            on_bytes(len(head))
        start = len(_BOM) if head.startswith(_BOM) else 0
        line_end = head.find(b"\n", start)
        first_line = head[start:line_end] if line_end >= 0 else b""
        if first_line.endswith(b"\r"):
            first_line = first_line[:-1]
        simple_header = (
            line_end >= 0
            and b'"' not in first_line
            and b"\r" not in first_line
            and b"\x00" not in first_line
            and _decodes(first_line)
            and [name.strip() for name in first_line.decode("utf-8").split(",")] == list(header)
        )
        if not simple_header:
            rest = python_records(path)
            next(rest, None)
            if on_bytes is not None:
                on_bytes(path.stat().st_size - len(head))
            yield from _python_batches(header, rest, 1, batch_records)
            return
        offset = line_end + 1  # file offset of the first data record
        buffer = head[offset:]
        at_eof = len(head) < block_bytes
        number = 1
        while buffer or not at_eof:
            layout = _layout(buffer)
            cut = _cut(layout, buffer, at_eof)
            if cut is None:
                more = raw.read(block_bytes)
                if on_bytes is not None:
                    on_bytes(len(more))
                if not more:
                    at_eof = True
                buffer += more
                continue
            block = buffer[:cut]
            layout = layout.prefix(cut)
            if not _quoting_sound(layout.data, layout.quotes, at_eof and cut == len(buffer)):
                # Even where this block ends is in doubt: Python reads the rest.
                if on_bytes is not None:
                    on_bytes(max(path.stat().st_size - offset - len(buffer), 0))
                yield from _python_rest(path, offset, header, number, batch_records)
                return
            for batch in _block_batches(path, block, layout, header, number, batch_records):
                number += batch.records
                yield batch
            offset += cut
            buffer = buffer[cut:]
            if not at_eof and len(buffer) < block_bytes:
                more = raw.read(block_bytes)
                if on_bytes is not None:
                    on_bytes(len(more))
                if len(more) < block_bytes:
                    at_eof = True
                buffer += more


def _block_batches(
    path: Path,
    block: bytes,
    layout: _Layout,
    header: Sequence[str],
    first: int,
    batch_records: int,
) -> list[RawBatch]:
    """The records of ``block`` (whole records, its quoting sound), first numbered
    ``first``: by Arrow where it is exact; a block Arrow cannot read exactly is split in
    two at a record boundary until the part that needs Python's ``csv`` is small."""
    table = _arrow_block(block, header) if _arrow_safe(block, layout, len(header)) else None
    if table is not None:
        out: list[RawBatch] = []
        for batch in table.to_batches(max_chunksize=batch_records):
            count = batch.num_rows
            numbers = pa.array(np.arange(first, first + count, dtype=np.int64))
            out.append(RawBatch(columns=batch, numbers=numbers))
            first += count
        return out
    middle = _middle(layout, len(block)) if len(block) > SPLIT_BYTES else None
    if middle is not None:
        left_layout, right_layout = layout.prefix(middle), layout.suffix(middle)
        left = _block_batches(path, block[:middle], left_layout, header, first, batch_records)
        first += sum(batch.records for batch in left)
        right = block[middle:]
        return left + _block_batches(path, right, right_layout, header, first, batch_records)
    try:
        records = list(csv.reader(io.StringIO(block.decode("utf-8"), newline=""), strict=True))
    except (UnicodeDecodeError, csv.Error):
        raise _refuse_as_python(path) from None
    return list(_python_batches(header, iter(records), first, batch_records))


def _middle(layout: _Layout, size: int) -> int | None:
    """A record boundary near the middle of a block whose quoting is sound (one past a
    line feed outside quotes), or None if the block is one record."""
    outside = layout.feeds + 1
    outside = outside[outside < size]
    if len(outside) == 0:
        return None
    nearest = min(int(np.searchsorted(outside, size // 2)), len(outside) - 1)
    return int(outside[nearest])


def _quoting_sound(data: np.ndarray, quotes: np.ndarray, at_eof: bool) -> bool:
    """True if every quote of the block opens a field (after ``,``, a line end, the block
    start or a closing quote) or closes one (before ``,``, a line end, an opening quote or
    the end of the file), and none is left open: then its line feeds outside quotes are
    record boundaries for Python's ``csv`` too (Python refuses ``"a"b``, and reads
    ``ab"c`` as it is, where Arrow would differ)."""
    if len(quotes) % 2:
        return False
    size = len(data)
    if size == 0 or len(quotes) == 0:
        return True
    delimiting = np.zeros(256, dtype=bool)
    delimiting[[_COMMA, _LF, _CR, _QUOTE]] = True
    opening, closing = quotes[0::2], quotes[1::2]
    before = data[np.maximum(opening - 1, 0)]
    after_index = closing + 1
    at_end = after_index >= size
    after = data[np.minimum(after_index, size - 1)]
    return bool(
        np.all(delimiting[before] | (opening == 0))
        and np.all(delimiting[after] & ~at_end | (at_end & at_eof))
    )


# --- reading ahead ----------------------------------------------------------------------

_Item = TypeVar("_Item")
_DONE = object()


def read_ahead(items: Iterator[_Item], depth: int = 2) -> Generator[_Item, None, None]:
    """``items`` in order, produced by a thread of their own up to ``depth`` items ahead
    of the consumer, so that reading (Arrow's parse and numpy's byte checks release the
    GIL) overlaps with what the consumer does. Memory is bounded by ``depth`` items. An
    exception raised by ``items`` is raised here, as it is, when its turn comes. Closing
    this iterator (or an error in the consumer) stops the thread and closes ``items``."""
    handoff: queue.Queue[object] = queue.Queue(maxsize=max(depth, 1))
    stop = threading.Event()

    def put(item: object) -> bool:
        while not stop.is_set():
            try:
                handoff.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put(item):
                    return
            put(_DONE)
        except BaseException as exc:  # handed to the consumer, raised there
            put(_Raised(exc))
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()

    thread = threading.Thread(target=produce, name="sde-read-ahead", daemon=True)
    thread.start()
    try:
        while True:
            item = handoff.get()
            if item is _DONE:
                return
            if isinstance(item, _Raised):
                raise item.error
            yield item  # type: ignore[misc]
    finally:
        stop.set()
        while thread.is_alive():
            try:
                handoff.get(timeout=0.05)
            except queue.Empty:
                continue
        thread.join()


@dataclass(frozen=True)
class _Raised:
    error: BaseException


def _decodes(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True
