"""The airlock's blocking checks on files not made by the stats helpers (pure)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import pytest

from sde.domain.disclosure import CheckResult, CheckStatus
from sde.domain.sdc.files import (
    BLOCKING_RULES,
    FileRules,
    category,
    check_file,
    kind_category,
    table_shape,
)
from sde.errors import ConfigError

RULES = FileRules()
PSEUDONYM = "3f2a9c0d41b7e8f65a0c9d2e1b4f7a83"
SAFE_TABLE = b"sex,n\nF,120\nM,98\n"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32


def run(
    name: str,
    content: bytes,
    *,
    kind: str = "table",
    metadata: Mapping[str, Any] | None = None,
    other: tuple[str, ...] = (),
    rules: FileRules = RULES,
    scan: Any = None,
) -> dict[str, CheckResult]:
    results = check_file(
        name,
        content,
        kind=kind,
        metadata=metadata,
        other_names=other,
        rules=rules,
        scan_text=scan,
    )
    names = [r.name for r in results]
    assert len(names) == len(set(names)), names
    assert set(names) <= set(BLOCKING_RULES)
    return {r.name: r for r in results}


def status(results: dict[str, CheckResult], rule: str) -> CheckStatus:
    return results[rule].status


# --- FileRules ------------------------------------------------------------------------


def test_rules_defaults_and_loading() -> None:
    assert RULES.suffixes("table") == (".csv",)
    assert RULES.max_bytes("figure") == 5 * 1024 * 1024
    assert RULES.max_table_rows == 500
    loaded = FileRules.from_mapping(
        {"max_table_rows": 100, "code_suffixes": [".py", ".R"], "free_text_min_words": 5}
    )
    assert loaded.max_table_rows == 100
    assert loaded.code_suffixes == (".py", ".r")
    assert loaded.free_text_min_words == 5
    assert FileRules.from_mapping(None) == RULES
    assert FileRules.from_mapping(RULES.to_json()) == RULES


@pytest.mark.parametrize(
    ("data", "words"),
    [
        ({"max_tabel_rows": 3}, "unknown airlock settings: max_tabel_rows"),
        ({"max_table_rows": 0}, "max_table_rows"),
        ({"max_table_rows": True}, "max_table_rows"),
        ({"table_suffixes": "csv"}, "table_suffixes"),
        ({"table_suffixes": ["csv"]}, "start with a dot"),
        ({"text_suffixes": [".csv"]}, "listed for table and text"),
    ],
)
def test_rules_refuse_bad_settings(data: dict[str, Any], words: str) -> None:
    with pytest.raises(ConfigError, match=words):
        FileRules.from_mapping(data)


def test_rules_section_must_be_a_mapping() -> None:
    with pytest.raises(ConfigError, match="must be a mapping"):
        FileRules.from_mapping(["x"])  # type: ignore[arg-type]


def test_category_and_kind_category() -> None:
    assert category("a.csv") == "table"
    assert category("A.CSV") == "table"
    assert category("plot.jpeg") == "figure"
    assert category("notes.md") == "text"
    assert category("model.R") == "code"
    assert category("data.parquet") is None
    assert category("csv") is None
    assert kind_category("crosstab") == "table"
    assert kind_category("hist") == "table"
    assert kind_category("figure") == "figure"
    assert kind_category("spreadsheet") is None


def test_table_shape() -> None:
    assert table_shape(b"a,b,n\nx,y,1\nx,z,2\n\n") == (2, 3)
    assert table_shape(b"\xff\xfe") is None
    assert table_shape(b"") is None


# --- file_type and file_size -----------------------------------------------------------


def test_a_safe_table_passes_every_rule() -> None:
    results = run("by_sex.csv", SAFE_TABLE, scan=lambda text: {})
    assert set(results) == {
        "file_type",
        "file_size",
        "readable",
        "row_level",
        "pseudonyms",
        "dates_of_birth",
        "free_text",
        "identifiers",
    }
    assert all(r.status == CheckStatus.PASS for r in results.values()), results
    assert results["readable"].details == {"rows": 2, "columns": 2}


@pytest.mark.parametrize(
    ("name", "kind", "words"),
    [
        ("out/by_sex.csv", "table", "plain name"),
        ("..\\by_sex.csv", "table", "plain name"),
        (".hidden.csv", "table", "plain name"),
        ("by_sex.xlsx", "table", "not allowed"),
        ("by_sex", "table", "not allowed"),
        ("by_sex.csv", "figure", "needs a figure file"),
        ("by_sex.csv", "code", "needs a code file"),
        ("by_sex.csv", "spreadsheet", "unknown kind"),
    ],
)
def test_file_type_fails(name: str, kind: str, words: str) -> None:
    results = run(name, SAFE_TABLE, kind=kind)
    assert status(results, "file_type") == CheckStatus.FAIL
    assert words in results["file_type"].message


@pytest.mark.parametrize("kind", ["table", "crosstab", "pivot_table", "hist", "survival", "ols"])
def test_file_type_passes_for_csv_kinds(kind: str) -> None:
    assert status(run("t.csv", SAFE_TABLE, kind=kind), "file_type") == CheckStatus.PASS


def test_unknown_suffix_and_kind_stops_after_file_type() -> None:
    results = run("x.exe", b"MZ", kind="binary")
    assert list(results) == ["file_type"]


def test_file_size() -> None:
    rules = FileRules(max_table_bytes=20)
    assert status(run("t.csv", SAFE_TABLE, rules=rules), "file_size") == CheckStatus.PASS
    big = SAFE_TABLE + b"F,1\n" * 10
    results = run("t.csv", big, rules=rules)
    assert status(results, "file_size") == CheckStatus.FAIL
    assert results["file_size"].details == {"bytes": len(big), "max_bytes": 20}
    assert status(run("t.csv", b""), "file_size") == CheckStatus.FAIL


# --- readable ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (b"sex,n\nF,\xff\n", "not UTF-8"),
        (b"\n\n", "header"),
        (b",,\n1,2,3\n", "header"),
        (b"sex,n\nF,120,7\nM,98\n", "1 row does not have the header's 2 columns"),
    ],
)
def test_readable_table_fails(content: bytes, words: str) -> None:
    results = run("t.csv", content)
    assert status(results, "readable") == CheckStatus.FAIL
    assert words in results["readable"].message
    assert "pseudonyms" not in results  # nothing else is claimed as checked


def test_readable_text_and_code() -> None:
    assert status(run("r.md", b"# Results\n", kind="text"), "readable") == CheckStatus.PASS
    assert status(run("r.txt", b"\xff\xfe\x00", kind="text"), "readable") == CheckStatus.FAIL
    assert status(run("a.py", b"print(1)\n", kind="code"), "readable") == CheckStatus.PASS
    bad_nb = run("a.ipynb", b"{not json", kind="code")
    assert status(bad_nb, "readable") == CheckStatus.FAIL


def test_readable_figures() -> None:
    table = {"table": "t.csv"}
    ok = run("f.png", PNG, kind="figure", metadata=table, other=("t.csv",))
    assert status(ok, "readable") == CheckStatus.PASS
    fake = run("f.png", SAFE_TABLE, kind="figure", metadata=table, other=("t.csv",))
    assert status(fake, "readable") == CheckStatus.FAIL
    jpg = run("f.jpg", b"\xff\xd8\xff\xe0rest", kind="figure", metadata=table, other=("t.csv",))
    assert status(jpg, "readable") == CheckStatus.PASS
    svg = b'<svg xmlns="http://www.w3.org/2000/svg"><rect/></svg>'
    assert status(run("f.svg", svg, kind="figure"), "readable") == CheckStatus.PASS
    script = b"<svg><script>alert(1)</script></svg>"
    assert status(run("f.svg", script, kind="figure"), "readable") == CheckStatus.FAIL


# --- row_level -----------------------------------------------------------------------


def test_row_level() -> None:
    rules = FileRules(max_table_rows=3)
    ok = b"g,n\n" + b"".join(b"g%d,20\n" % i for i in range(3))
    long = b"g,n\n" + b"".join(b"g%d,20\n" % i for i in range(4))
    assert status(run("t.csv", ok, rules=rules), "row_level") == CheckStatus.PASS
    results = run("t.csv", long, rules=rules)
    assert status(results, "row_level") == CheckStatus.FAIL
    assert results["row_level"].details == {"rows": 4, "max_table_rows": 3}


def test_notebook_outputs_are_row_level() -> None:
    clean = {"cells": [{"cell_type": "code", "source": ["x = 1\n"], "outputs": []}]}
    shown = {"cells": [{"cell_type": "code", "source": "df.head()", "outputs": [{"a": 1}]}]}
    ok = run("a.ipynb", json.dumps(clean).encode(), kind="code")
    assert status(ok, "row_level") == CheckStatus.PASS
    bad = run("a.ipynb", json.dumps(shown).encode(), kind="code")
    assert status(bad, "row_level") == CheckStatus.FAIL
    assert "1 cell output" in bad["row_level"].message


# --- pseudonyms ----------------------------------------------------------------------


def test_pseudonyms_in_a_table() -> None:
    content = f"patient,n\n{PSEUDONYM},1\nx,2\nid {PSEUDONYM.upper()},3\n".encode()
    results = run("t.csv", content)
    assert status(results, "pseudonyms") == CheckStatus.FAIL
    assert results["pseudonyms"].details["cells"] == 2
    assert results["pseudonyms"].details["rows"] == [1, 3]
    assert "column patient" in results["pseudonyms"].message


def test_a_pseudonym_header_is_named_by_position() -> None:
    results = run("t.csv", f"g,{PSEUDONYM}\nx,1\n".encode())
    assert status(results, "pseudonyms") == CheckStatus.FAIL
    assert results["pseudonyms"].details["header"] is True


def test_longer_or_shorter_hex_is_not_a_pseudonym() -> None:
    sha = "a" * 64
    content = f"commit,n\n{sha},20\n{PSEUDONYM[:31]},20\n".encode()
    assert status(run("t.csv", content), "pseudonyms") == CheckStatus.PASS


def test_pseudonyms_in_code_and_text() -> None:
    code = f"import x\ndf = df[df.patient_id == '{PSEUDONYM}']\n".encode()
    results = run("a.py", code, kind="code")
    assert status(results, "pseudonyms") == CheckStatus.FAIL
    assert results["pseudonyms"].details == {"lines": [2]}
    assert status(run("a.py", b"import x\n", kind="code"), "pseudonyms") == CheckStatus.PASS


# --- dates_of_birth -------------------------------------------------------------------


@pytest.mark.parametrize("header", ["dob", "DOB", "date_of_birth", "Date of birth", "birth_date"])
def test_dob_header_fails(header: str) -> None:
    results = run("t.csv", f"{header},n\n1961-03,12\n".encode())
    assert status(results, "dates_of_birth") == CheckStatus.FAIL
    assert "looks like a date of birth" in results["dates_of_birth"].message


@pytest.mark.parametrize("cell", ["1961-03-07", "07/03/1961", "2020-1-5 10:00"])
def test_full_dates_in_cells_fail(cell: str) -> None:
    results = run("t.csv", f"admitted,n\n{cell},12\n".encode())
    assert status(results, "dates_of_birth") == CheckStatus.FAIL
    assert results["dates_of_birth"].details["rows"] == [1]


@pytest.mark.parametrize("cell", ["2020-03", "03/2020", "1961", "2020-13-45"])
def test_month_and_year_pass(cell: str) -> None:
    content = f"year_of_birth,month,n\n1961,{cell},12\n".encode()
    assert status(run("t.csv", content), "dates_of_birth") == CheckStatus.PASS


def test_dob_in_text() -> None:
    bad = run("r.txt", b"Results\nPatient DOB: 07/03/1961\n", kind="text")
    assert status(bad, "dates_of_birth") == CheckStatus.FAIL
    assert bad["dates_of_birth"].details == {"lines": [2]}
    ok = run("r.txt", b"Study period 2019-01-01 to 2023-12-31.\n", kind="text")
    assert status(ok, "dates_of_birth") == CheckStatus.PASS


# --- free_text -----------------------------------------------------------------------


def test_free_text() -> None:
    note = "patient seen in clinic today and feeling much better overall"
    results = run("t.csv", f"group,comment,n\na,{note},20\nb,short label,20\n".encode())
    assert status(results, "free_text") == CheckStatus.FAIL
    assert results["free_text"].details["columns"] == {"comment": 1}
    seven = "one two three four five six seven"
    ok = run("t.csv", f"group,n\n{seven},20\n".encode())
    assert status(ok, "free_text") == CheckStatus.PASS


# --- identifiers ---------------------------------------------------------------------


def test_identifiers_uses_the_scanner_and_reports_counts_only() -> None:
    seen: list[str] = []

    def scan(text: str) -> dict[str, int]:
        seen.append(text)
        return {"PERSON": 2, "PHONE": 1} if "Aurelia" in text else {}

    content = b"name,n\nAurelia,12\nx,9434765919\nmean,24.38810124\n"
    results = run("t.csv", content, scan=scan)
    assert status(results, "identifiers") == CheckStatus.FAIL
    assert results["identifiers"].details == {"found": {"PERSON": 2, "PHONE": 1}}
    assert "PERSON x2" in results["identifiers"].message
    # short counts and decimals are not sent; a long digit run is
    assert seen[0].splitlines() == ["name", "n", "Aurelia", "x", "9434765919", "mean"]
    text = run("r.md", b"# Hi\n", kind="text", scan=scan)
    assert status(text, "identifiers") == CheckStatus.PASS
    assert "identifiers" not in run("t.csv", content)  # no scanner: not claimed


# --- figure_table --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("metadata", "other", "ok"),
    [
        ({"table": "t.csv"}, ("t.csv",), True),
        ({"table": "t.csv"}, ("u.csv",), False),
        ({"table": "notes.md"}, ("notes.md",), False),
        (None, ("t.csv",), False),
        ({"table": 3}, ("t.csv",), False),
    ],
)
def test_figure_table(metadata: dict[str, Any] | None, other: tuple[str, ...], ok: bool) -> None:
    results = run("f.png", PNG, kind="figure", metadata=metadata, other=other)
    assert status(results, "figure_table") == (CheckStatus.PASS if ok else CheckStatus.FAIL)


# --- no cell value in any message ------------------------------------------------------


def test_no_message_holds_a_cell_value() -> None:
    secrets = [
        PSEUDONYM,
        "1961-03-07",
        "Aurelia Quennell-Thorpe",
        "patient seen in clinic today and feeling much better overall",
        "9434765919",
    ]
    header = f"dob,{PSEUDONYM},note,name,n"
    row = ",".join([secrets[1], PSEUDONYM, secrets[3], secrets[2], secrets[4]])
    content = (header + "\n" + row + "\n" + row + "\n").encode()
    rules = FileRules(max_table_rows=1)
    results = run("t.csv", content, rules=rules, scan=lambda text: {"PERSON": 1})
    failed = {r.name for r in results.values() if r.status == CheckStatus.FAIL}
    assert failed == {
        "row_level",
        "pseudonyms",
        "dates_of_birth",
        "free_text",
        "identifiers",
    }
    text = f"Patient Aurelia Quennell-Thorpe DOB 1961-03-07 id {PSEUDONYM}\n".encode()
    results.update(
        {f"text:{k}": v for k, v in run("r.txt", text, kind="text", scan=lambda t: {}).items()}
    )
    for result in results.values():
        blob = result.message + repr(result.details)
        for secret in secrets:
            assert secret not in blob, result.name
        assert "Aurelia" not in blob
        assert "Quennell" not in blob
