"""The batch engine (Arrow reader, batch rules, batch pseudonyms) gives exactly what the
row-wise engine (Python's csv, check_row per row) gives: the same linked rows in the same
order, the same quarantine rows, the same sign-in checks, the same manifest counts and
the same refusals, on awkward files and on synthesised data.

The order is compared on the rows each engine hands to the Delta writer (captured here):
delta-rs itself does not keep the order of the batches it is given in the files it writes,
so tables read back are compared as sorted rows."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import pyarrow as pa
import pytest

from sde.adapters import delta
from sde.errors import InputError
from sde.services import ingest
from sde.services.home import Home, init_home
from sde.services.synth import synthesise
from tests.integration.ingest_fixtures import make_sources

pytestmark = pytest.mark.delta

ORDER = ["patients", "admissions", "clinic_letters", "deaths", "gp_events"]
ORDER += ["national_opt_out", "type1_opt_out"]


Written = dict[str, list[pa.Table]]


@pytest.fixture(autouse=True)
def written(monkeypatch: pytest.MonkeyPatch) -> Written:
    """Every table or stream handed to the Delta writer, by target, in order."""
    seen: Written = {}
    original = delta.append

    def capture(target: Path, data: pa.Table | pa.RecordBatchReader, **kwargs: object) -> int:
        table = data.read_all() if isinstance(data, pa.RecordBatchReader) else data
        seen.setdefault(str(target), []).append(table)
        return original(target, table, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(ingest.delta, "append", capture)
    return seen


def _homes(tmp_path: Path) -> tuple[Home, Home]:
    rowwise = init_home(tmp_path / "rowwise")
    batch = init_home(tmp_path / "batch")
    return rowwise, dataclasses.replace(batch, key_override=rowwise.master_key())


def _table(path: Path, drop: tuple[str, ...] = ()) -> list[dict[str, object]]:
    """The table's rows (sorted: see the module's docstring)."""
    if not delta.exists(path):
        return []
    rows = delta.read(path).to_pylist()
    return sorted(
        ({k: v for k, v in row.items() if k not in drop} for row in rows),
        key=lambda r: [repr(v) for v in r.values()],
    )


def _handed(written: Written, path: Path, drop: tuple[str, ...] = ()) -> list[dict[str, object]]:
    """The rows handed to the writer for ``path``, in order."""
    return [
        {k: v for k, v in row.items() if k not in drop}
        for table in written.get(str(path), [])
        for row in table.to_pylist()
    ]


def _manifest(home: Home) -> list[dict[str, object]]:
    drop = ("ingested_at",)
    return [{k: v for k, v in r.items() if k not in drop} for r in ingest.ingest_manifest(home)]


def _ingest_both(
    homes: tuple[Home, Home], dataset: str, path: Path, batch_rows: int = ingest.BATCH_ROWS
) -> None:
    outcomes: list[object] = []
    for home, method in zip(homes, ("rowwise", "batch"), strict=True):
        try:
            result = ingest.ingest_file(
                home,
                ingest.load_spec(dataset),
                path,
                references={"patients": homes[0].sources / "patients.csv"},
                method=method,  # type: ignore[arg-type]
                batch_rows=batch_rows,
            )
            outcomes.append(result)
        except InputError as exc:
            outcomes.append(f"InputError: {exc}")
    assert outcomes[0] == outcomes[1], dataset


def _assert_same(homes: tuple[Home, Home], datasets: list[str], written: Written) -> None:
    rowwise, batch = homes
    for name in datasets:
        target = ingest.linked_path(rowwise, name)
        linked = _handed(written, target)
        assert _handed(written, ingest.linked_path(batch, name)) == linked, name
        assert _table(ingest.linked_path(batch, name)) == _table(target), name
        drop = ("quarantined_at",)
        held = _handed(written, ingest.quarantine_path(rowwise, name), drop)
        got = _handed(written, ingest.quarantine_path(batch, name), drop)

        def by_row(rows: list[dict[str, object]]) -> list[dict[str, object]]:
            # In file order; the row-wise engine holds back failed de-identifications
            # until the end of its write batch.
            return sorted(rows, key=lambda row: int(str(row["row_number"])))

        assert by_row(got) == by_row(held), name
        assert [r["reason_code"] for r in got if r["reason_code"] != "deidentification_failed"] == [
            r["reason_code"] for r in held if r["reason_code"] != "deidentification_failed"
        ], name
    drop = ("loaded_at",)
    sign_in = _handed(written, ingest.sign_in_path(rowwise), drop)
    assert _handed(written, ingest.sign_in_path(batch), drop) == sign_in
    assert _manifest(batch) == _manifest(rowwise)


@pytest.mark.presidio
def test_contract_files_give_the_same_outputs(tmp_path: Path, written: Written) -> None:
    homes = _homes(tmp_path)
    sources = make_sources(homes[0].sources)
    for name in ORDER:
        _ingest_both(homes, name, sources.path(name))
    _assert_same(homes, ORDER, written)
    assert _table(ingest.linked_path(homes[1], "gp_events"))


def test_synthesised_files_give_the_same_outputs(tmp_path: Path, written: Written) -> None:
    homes = _homes(tmp_path)
    synthesise(homes[0].sources, 400, seed=11)
    names = [n for n in ORDER if n != "clinic_letters"]
    for name in names:
        _ingest_both(homes, name, homes[0].sources / f"{name}.csv", batch_rows=997)
    _assert_same(homes, names, written)
    manifest = _manifest(homes[1])
    assert sum(int(str(m["rows_quarantined"])) for m in manifest) > 0


NHS = ["9434765919", "4010232137", "9990000018", "4505577104", "6541237898"]


def _gp_rows() -> list[str]:
    a, b, c, d, e = NHS
    return [
        f"{a},2023-01-15,271649006,Systolic blood pressure,132,mmHg",
        f'{b},2023-02-28,"27113001","Body weight\nmeasured twice",70.5,kg',
        f"{a},2023-01-15,271649006,Systolic blood pressure,132,mmHg",  # exact copy of 1
        f'"{a}",2023-01-15,271649006,Systolic blood pressure,132,mmHg',  # copy, quoted
        f"{c},2023-02-29,1,leap,1,x",  # not a date
        f'{d},2024-02-29,1,"he said ""fine""",+.5,x',  # +.5 is a number
        f"{e},2024-03-01,1,big,1e400,x",  # not a number (infinite)
        f"{e},2024-03-01,1,nan,nan,x",
        f"{e[:9]}0,2024-03-01,1,bad check digit,1,x",
        f"\u0669{e[1:]},2024-03-01,1,arabic digit,1,x",
        f" {a[:3]} {a[3:6]} {a[6:]} ,2024-03-01,1,spaced,1,x",
        "",  # blank line: malformed
        f"{a},2024-03-01,1",  # too few fields
        f"{a},2024-03-01,1,Jos\u00e9 \u5317\u4eac,-0,\u00b5g,extra",  # too many
        f"{b},2024-03-02,1,Jos\u00e9 \u5317\u4eac,-0,\u00b5g",
        f"{b},\u20032024-03-02,1,unicode space,1,x",
        ",2024-03-02,1,no number,1,x",
        f"{c},,1,no date,1,x",
        f"{c},2024-03-03,,no code,1,x",
        f"{c},2024-03-03,1,,,",
        f'{d},2024-03-04,1,5" tall,1,x',  # a literal quote: Python's csv reads the rest
        f"{d},2024-03-05,1,after the quote,2,x",
    ]


@pytest.mark.parametrize(
    ("name", "transform"),
    [
        ("lf", lambda text: text),
        ("crlf", lambda text: text.replace("\n", "\r\n")),
        ("bom", lambda text: "\ufeff" + text),
        ("no final newline", lambda text: text.rstrip("\n")),
        ("many copies", lambda text: text + text.split("\n", 1)[1] * 3),
    ],
)
def test_awkward_event_files_give_the_same_outputs(
    tmp_path: Path, name: str, transform: object, written: Written
) -> None:
    homes = _homes(tmp_path)
    header = "nhs_number,event_date,snomed_code,term,value,unit"
    assert callable(transform)
    text = transform(header + "\n" + "\n".join(_gp_rows()) + "\n")
    path = tmp_path / "gp_events.csv"
    path.write_bytes(text.encode())
    _ingest_both(homes, "gp_events", path, batch_rows=4)
    _assert_same(homes, ["gp_events"], written)


def test_awkward_patients_and_single_column_files_give_the_same_outputs(
    tmp_path: Path, written: Written
) -> None:
    homes = _homes(tmp_path)
    sources = make_sources(homes[0].sources)
    lines = sources.path("patients").read_text(encoding="utf-8").splitlines(keepends=True)
    # Repeated keys in another spelling, a blank line, a postcode in full-width letters.
    patients = tmp_path / "patients.csv"
    first = lines[1].split(",", 1)
    spaced = f" {first[0][:3]} {first[0][3:6]} {first[0][6:]}," + first[1].replace("2", "\uff12", 1)
    patients.write_text("".join([*lines, "\n", spaced, lines[2]]), encoding="utf-8")
    _ingest_both(homes, "patients", patients, batch_rows=3)
    opt_out = tmp_path / "national_opt_out.csv"
    opt_out.write_bytes(b'nhs_number\n9434765919\n\n\n943 476 5919\n""\n4010232137\n 4010232137\n')
    _ingest_both(homes, "national_opt_out", opt_out, batch_rows=2)
    _assert_same(homes, ["patients", "national_opt_out"], written)
    assert ingest.ingest_manifest(homes[1])[1]["rows_in"] == 7


@pytest.mark.parametrize(
    "body",
    [
        b'9434765919,"2023-01-01"x,1,t,1,x\n',  # bad quoting
        b"9434765919,2023-01-01,1,t\xff,1,x\n",  # not UTF-8
        b'9434765919,2023-01-01,1,"open,1,x\n',  # a quote never closed
    ],
)
def test_refused_files_are_refused_the_same_way(tmp_path: Path, body: bytes) -> None:
    homes = _homes(tmp_path)
    path = tmp_path / "gp_events.csv"
    good = b"9434765919,2023-01-01,1,t,1,x\n" * 3000
    path.write_bytes(b"nhs_number,event_date,snomed_code,term,value,unit\n" + good + body)
    _ingest_both(homes, "gp_events", path)
    for home in homes:
        assert not delta.exists(ingest.linked_path(home, "gp_events"))
        assert ingest.ingest_manifest(home) == []
    shutil.rmtree(tmp_path / "rowwise")
