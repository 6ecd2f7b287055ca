"""The Arrow CSV reader gives exactly the records Python's ``csv`` gives (the reference):
same fields, same record numbers, same malformed records, same refusals, on a corpus
of awkward files and on random ones, whatever the block size."""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from sde.adapters.csv_arrow import (
    RawBatch,
    python_raw_batches,
    python_records,
    read_ahead,
    read_raw_batches,
)
from sde.errors import InputError

Record = tuple[int, tuple[str, ...], bool]


def _flatten(batches: list[RawBatch]) -> list[Record]:
    out: list[Record] = []
    for batch in batches:
        names = batch.columns.schema.names
        columns = [batch.columns.column(i).to_pylist() for i in range(len(names))]
        for row, number in enumerate(batch.numbers.to_pylist()):
            out.append((number, tuple(column[row] for column in columns), False))
        out.extend((m.number, m.fields, True) for m in batch.malformed)
    return sorted(out)


def _header(path: Path) -> list[str]:
    return [name.strip() for name in next(python_records(path))]


def _outcome(path: Path, fast: bool, block_bytes: int) -> list[Record] | str:
    header = _header(path)
    try:
        if fast:
            batches = list(read_raw_batches(path, header, block_bytes=block_bytes))
        else:
            batches = list(python_raw_batches(path, header))
    except InputError as exc:
        return f"InputError: {exc}"
    for batch in batches:
        assert batch.columns.schema.names == header
        assert all(str(t) == "string" for t in batch.columns.schema.types)
        assert batch.numbers.type == "int64"
    return _flatten(batches)


CORPUS: dict[str, bytes] = {
    "plain": b"a,b,c\n1,2,3\n4,5,6\n",
    "no final newline": b"a,b,c\n1,2,3\n4,5,6",
    "header only": b"a,b\n",
    "header without newline": b"a,b",
    "quoted newlines": b'a,b\n"x\ny",2\n"p\r\nq",3\n"r\rs",4\n5,"t\n\nu"\n',
    "blank lines": b"a,b\n1,2\n\n3,4\n\n\n5,6\n\n",
    "blank lines crlf": b"a,b\r\n1,2\r\n\r\n3,4\r\n",
    "single column with empty values": b"a\n1\n\n2\n\n\n3\n\n",
    "single column crlf blanks": b"a\r\n\r\nx\r\n\r\n",
    "single column quoted empty": b'a\n""\n\n"x"\n',
    "bom": b"\xef\xbb\xbfa,b\n1,2\n",
    "double bom": b"\xef\xbb\xbfa,b\n\xef\xbb\xbf1,2\n",
    "crlf": b"a,b\r\n1,2\r\n3,4\r\n",
    "lone carriage returns": b"a,b\r1,2\r3,4\r",
    "mixed line ends": b"a,b\n1,2\r3,4\r\n5,6\n",
    "carriage return at end": b"a,b\n1,2\n\r",
    "wrong field counts": b"a,b,c\n1,2\n1,2,3,4\n5,6,7\n\n8\n",
    "non-ascii": "a,b\nJosé,北京\n😀,\u00a0x\u2003\n".encode(),
    "quotes in fields": b'a,b\n"he said ""hi""",2\nab"c,3\n"",""\n"""",x\n',
    "quote after closing quote": b'a,b\n"a"b,2\n',
    "space after closing quote": b'a,b\n"a" ,2\n',
    "unterminated quote": b'a,b\n1,"abc\n2,3\n',
    "nul bytes": b"a,b\n1\x002,3\n",
    "invalid utf-8": b"a,b\n1,2\n3,\xff\xfe\n",
    "invalid utf-8 late": b"a,b\n" + b"1,2\n" * 5000 + b"3,\xc3\n",
    "field too large": b"a,b\n1," + b"x" * 131_073 + b"\n",
    "field at the limit": b"a,b\n1," + b"x" * 131_072 + b"\n",
    "quoted header": b'"a","b"\n1,2\n',
    "header with spaces": b" a , b\n1,2\n",
    "empty fields": b"a,b,c\n,,\n, ,\n",
    "whitespace lines": b"a,b\n \n\t,\n",
    "many rows": b"a,b\n" + b"".join(f"{i},{'x' * (i % 7)}\n".encode() for i in range(3000)),
    "line feeds in quotes only": b'a,b\n1,"x\n\ny"\n2,"\r\n\r\nz"\n"\n",3\n',
    "many line feeds in one quoted field": b'a,b\n1,"' + b"\n" * 200 + b'"\n2,3\n' * 3,
}


@pytest.mark.parametrize("name", sorted(CORPUS))
@pytest.mark.parametrize("block_bytes", [7, 64, 8 << 20])
def test_corpus_reads_as_python_csv(tmp_path: Path, name: str, block_bytes: int) -> None:
    path = tmp_path / "f.csv"
    path.write_bytes(CORPUS[name])
    refused: str | None = None
    try:
        _header(path)
    except InputError as error:
        refused = str(error)
    if refused is not None:
        # Python's reader refuses the file before a row is read: the fast reader too, alike.
        with pytest.raises(InputError) as fast:
            list(read_raw_batches(path, ["a", "b"], block_bytes=block_bytes))
        assert str(fast.value) == refused
        return
    expected = _outcome(path, fast=False, block_bytes=block_bytes)
    assert _outcome(path, fast=True, block_bytes=block_bytes) == expected


def test_refusals_match_python_messages(tmp_path: Path) -> None:
    path = tmp_path / "f.csv"
    for name in ("quote after closing quote", "unterminated quote", "invalid utf-8 late"):
        path.write_bytes(CORPUS[name])
        outcome = _outcome(path, fast=True, block_bytes=1 << 20)
        assert isinstance(outcome, str), name
        assert outcome.startswith("InputError: f.csv is not"), name


def test_clean_blocks_are_read_by_arrow(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The fast path is taken for ordinary files (the Python fallback is not silently
    used for everything)."""
    import sde.adapters.csv_arrow as module

    path = tmp_path / "f.csv"
    path.write_bytes(CORPUS["many rows"] + b'1,"quoted, with comma"\n')

    def refuse(*_args: object, **_kwargs: object) -> object:
        raise AssertionError("the Python fallback was used")

    monkeypatch.setattr(module, "_python_batches", refuse)
    monkeypatch.setattr(module, "_python_rest", refuse)
    batches = list(read_raw_batches(path, ["a", "b"], block_bytes=4096))
    assert sum(b.records for b in batches) == 3001


_ALPHABET = ["a", "b", ",", '"', "\n", "\r", " ", "é", "\x00", '""', "\r\n", "1"]


@pytest.mark.parametrize("seed", range(40))
def test_random_files_read_as_python_csv(
    tmp_path: Path, seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sde.adapters.csv_arrow as module

    monkeypatch.setattr(module, "SPLIT_BYTES", 16)
    rnd = random.Random(seed)
    width = rnd.choice([1, 2, 3])
    header = ",".join(f"c{i}" for i in range(width)) + rnd.choice(["\n", "\r\n"])
    body = "".join(rnd.choice(_ALPHABET) for _ in range(rnd.randint(0, 400)))
    path = tmp_path / "f.csv"
    path.write_bytes((header + body).encode())
    expected = _outcome(path, fast=False, block_bytes=0)
    for block_bytes in (5, 33, 1 << 20):
        assert _outcome(path, fast=True, block_bytes=block_bytes) == expected, block_bytes


@pytest.mark.parametrize("split_bytes", [8, 100, 64 << 10])
@pytest.mark.parametrize("seed", range(20))
def test_random_well_quoted_files_read_as_python_csv(
    tmp_path: Path, seed: int, split_bytes: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Random files of valid CSV (quoted fields with commas, quotes and newlines, blank
    lines, wrong field counts): mostly read by Arrow, always as Python reads them, however
    small the parts a block Arrow cannot read is split into."""
    import sde.adapters.csv_arrow as module

    monkeypatch.setattr(module, "SPLIT_BYTES", split_bytes)
    rnd = random.Random(1000 + seed)
    width = rnd.choice([1, 2, 4])
    lines = [",".join(f"c{i}" for i in range(width))]
    for _ in range(rnd.randint(0, 300)):
        count = width if rnd.random() < 0.97 else rnd.randint(0, width + 2)
        fields = []
        for _ in range(count):
            value = "".join(rnd.choice('ab1 é,"\n') for _ in range(rnd.randint(0, 6)))
            if any(c in value for c in ',"\n') or rnd.random() < 0.1:
                value = '"' + value.replace('"', '""') + '"'
            fields.append(value)
        lines.append(",".join(fields))
    path = tmp_path / "f.csv"
    path.write_bytes(("\r\n" if seed % 3 == 0 else "\n").join(lines).encode())
    expected = _outcome(path, fast=False, block_bytes=0)
    for block_bytes in (16, 200, 1 << 20):
        assert _outcome(path, fast=True, block_bytes=block_bytes) == expected, block_bytes


def test_line_feeds_inside_quotes_do_not_send_a_block_to_python(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Blank-line bytes (a pair of line feeds) inside quoted fields only: the exact check
    finds no blank line, and Arrow reads the block."""
    import sde.adapters.csv_arrow as module

    path = tmp_path / "f.csv"
    path.write_bytes(CORPUS["many rows"] + b'1,"x\n\ny"\n2,"\n\r\nz"\n' * 50)
    expected = _outcome(path, fast=False, block_bytes=4096)

    def refuse(*_args: object, **_kwargs: object) -> object:
        raise AssertionError("the Python fallback was used")

    monkeypatch.setattr(module, "_python_batches", refuse)
    monkeypatch.setattr(module, "_python_rest", refuse)
    batches = list(read_raw_batches(path, ["a", "b"], block_bytes=4096))
    assert sum(b.records for b in batches) == 3100
    assert _flatten(batches) == expected


def _counted(count: int, log: list[str], fail_at: int | None = None) -> Iterator[int]:
    try:
        for item in range(count):
            if item == fail_at:
                raise InputError(f"f.csv is not valid CSV near line {item}")
            yield item
    finally:
        log.append("closed")


def _threads() -> int:
    return sum(1 for t in threading.enumerate() if t.name == "sde-read-ahead")


def test_read_ahead_gives_every_item_in_order() -> None:
    log: list[str] = []
    assert list(read_ahead(_counted(1000, log), depth=3)) == list(range(1000))
    assert log == ["closed"]
    assert _threads() == 0


def test_read_ahead_raises_the_readers_error_in_turn() -> None:
    log: list[str] = []
    seen: list[int] = []
    items = read_ahead(_counted(100, log, fail_at=40), depth=2)
    seen.extend(next(items) for _ in range(40))
    with pytest.raises(InputError) as raised:
        next(items)
    assert seen == list(range(40))  # every item before the error, then the error itself
    assert str(raised.value) == "f.csv is not valid CSV near line 40"
    assert log == ["closed"]
    assert _threads() == 0


def test_read_ahead_stops_its_thread_when_the_consumer_stops() -> None:
    log: list[str] = []
    items = read_ahead(_counted(10_000, log), depth=2)
    assert next(items) == 0
    items.close()  # the writer stopped reading (an error of its own)
    assert log == ["closed"]
    assert _threads() == 0


def test_read_ahead_holds_at_most_depth_items_ahead() -> None:
    produced: list[int] = []
    release = threading.Event()

    def source() -> Iterator[int]:
        for item in range(50):
            produced.append(item)
            yield item

    items = read_ahead(source(), depth=2)
    assert next(items) == 0
    release.wait(0.3)  # time for the thread to run ahead as far as it may
    # The consumer holds item 0; two wait in the queue; the thread holds one it cannot hand over.
    assert len(produced) <= 4
    assert list(items) == list(range(1, 50))
