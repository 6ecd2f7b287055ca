"""Dataset specs: parsing, validation and header checks (pure)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from sde.domain.datasets import (
    PID,
    ColumnType,
    Origin,
    OutputType,
    Pii,
    Role,
    check_header,
    parse_spec,
)
from sde.errors import InputError

BASE: dict[str, Any] = {
    "name": "patients",
    "title": "Patients",
    "origin": "gp",
    "format": "csv",
    "key": ["nhs_number"],
    "columns": {
        "nhs_number": {"role": "identifier", "type": "nhs_number", "required": True},
        "given_name": {"role": "drop", "pii": "person"},
        "date_of_birth": {
            "role": "quasi_identifier",
            "type": "date",
            "required": True,
            "generalise": "year",
            "output": "year_of_birth",
            "pii": "date",
        },
        "postcode": {
            "role": "quasi_identifier",
            "generalise": "postcode_district",
            "pii": "postcode",
        },
        "sex": {"role": "keep", "allowed": ["M", "F", "U"]},
        "weight": {"role": "keep", "type": "float"},
        "note": {"role": "free_text"},
    },
}


def spec_with(**changes: Any) -> dict[str, Any]:
    data = copy.deepcopy(BASE)
    for key, value in changes.items():
        if value is None:
            data.pop(key, None)
        else:
            data[key] = value
    return data


def column_change(column: str, settings: dict[str, Any] | None) -> dict[str, Any]:
    data = copy.deepcopy(BASE)
    if settings is None:
        del data["columns"][column]
    else:
        data["columns"][column] = settings
    return data


def test_parse_base_spec() -> None:
    spec = parse_spec(BASE, source="t.yaml")
    assert spec.name == "patients"
    assert spec.origin is Origin.GP
    assert spec.key == ("nhs_number",)
    assert spec.identifier.name == "nhs_number"
    assert spec.identifier.type is ColumnType.NHS_NUMBER
    assert spec.column("sex").allowed == ("M", "F", "U")
    # Outputs: pid is implied first; the identifier and dropped columns have none.
    assert spec.outputs == (
        ("year_of_birth", OutputType.YEAR),
        ("postcode_postcode_district", OutputType.STRING),
        ("sex", OutputType.STRING),
        ("weight", OutputType.FLOAT),
        ("note", OutputType.STRING),
    )
    assert [c.name for c in spec.free_text_columns] == ["note"]
    assert {c.name: c.known_kind for c in spec.known_columns} == {
        "nhs_number": Pii.NHS_NUMBER,
        "given_name": Pii.PERSON,
        "date_of_birth": Pii.DATE,
        "postcode": Pii.POSTCODE,
    }


def test_defaults() -> None:
    spec = parse_spec(
        {
            "name": "opt",
            "origin": "opt_out",
            "columns": {"nhs_number": {"role": "identifier"}, "practice": {"role": "drop"}},
        },
        source="t.yaml",
    )
    assert spec.title == "opt"
    assert spec.format == "csv"
    assert spec.key == ()
    assert spec.identifier.required is True
    assert spec.outputs == ()
    assert spec.column("practice").role is Role.DROP


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([], "must be a mapping"),
        (spec_with(colour="blue"), "unknown setting(s) colour"),
        (spec_with(name="Patients!"), "'name' must be lower case"),
        (spec_with(name=None), "'name' must be lower case"),
        (spec_with(origin="pharmacy"), "'origin' must be one of gp, hospital"),
        (spec_with(format="parquet"), "'format' must be one of csv"),
        (spec_with(columns={}), "'columns' must be a non-empty mapping"),
        (spec_with(title=3), "'title' must be text"),
        (spec_with(key="nhs_number"), "'key' must be a list of names"),
        (spec_with(key=["postcode_x"]), "key column 'postcode_x' is not a column"),
        (spec_with(key=["given_name"]), "key column 'given_name' must be an identifier"),
        (spec_with(key=["nhs_number", "nhs_number"]), "names a column more than once"),
        (spec_with(known_from=["patients"]), "cannot name the dataset itself"),
        (spec_with(known_from=["Bad Name"]), "is not a dataset name"),
        (
            column_change("note", {"role": "drop"}) | {"known_from": ["demographics"]},
            "the spec has no free_text column",
        ),
        (column_change("nhs_number", None), "exactly one column must have role 'identifier'"),
        (
            column_change("sex", {"role": "identifier"}),
            "exactly one column must have role 'identifier'",
        ),
        (
            column_change("nhs_number", {"role": "identifier", "type": "string"}),
            "the identifier column must have type 'nhs_number'",
        ),
        (
            column_change("nhs_number", {"role": "identifier", "required": False}),
            "the identifier is always required",
        ),
        (column_change("sex", {"role": "hide"}), "'role' must be one of identifier"),
        (column_change("sex", "keep"), "must be a mapping of settings"),
        (column_change("sex", {"role": "keep", "colour": 1}), "unknown setting(s) colour"),
        (column_change("sex", {"role": "keep", "type": "bool"}), "'type' must be one of"),
        (column_change("sex", {"role": "keep", "required": "yes"}), "'required' must be true"),
        (
            column_change("sex", {"role": "keep", "allowed": [1, 2]}),
            "'allowed' must be a non-empty list of strings",
        ),
        (
            column_change("sex", {"role": "keep", "allowed": []}),
            "'allowed' must be a non-empty list of strings",
        ),
        (
            column_change("weight", {"role": "keep", "type": "float", "allowed": ["1"]}),
            "'allowed' values apply to string columns only",
        ),
        (
            column_change("sex", {"role": "keep", "pii": "person"}),
            "role 'keep' does not take pii",
        ),
        (
            column_change("sex", {"role": "drop", "allowed": ["M"]}),
            "role 'drop' does not take allowed",
        ),
        (
            column_change("sex", {"role": "drop", "pii": "shoe_size"}),
            "'pii' must be one of",
        ),
        (
            column_change("sex", {"role": "keep", "type": "nhs_number"}),
            "an NHS number is pseudonymised (identifier) or dropped",
        ),
        (
            column_change("date_of_birth", {"role": "quasi_identifier", "type": "date"}),
            "a quasi_identifier needs 'generalise'",
        ),
        (
            column_change(
                "date_of_birth",
                {"role": "quasi_identifier", "type": "date", "generalise": "decade"},
            ),
            "a quasi_identifier needs 'generalise'",
        ),
        (
            column_change(
                "date_of_birth",
                {"role": "quasi_identifier", "type": "string", "generalise": "year"},
            ),
            "generalisation 'year' needs type 'date'",
        ),
        (
            column_change(
                "postcode",
                {"role": "quasi_identifier", "generalise": "postcode_district", "type": "date"},
            ),
            "generalisation 'postcode_district' needs type 'string'",
        ),
        (
            column_change("note", {"role": "free_text", "type": "float"}),
            "free text has type 'string'",
        ),
        (
            column_change("sex", {"role": "keep", "output": "pid"}),
            "'pid' is reserved",
        ),
        (
            column_change("sex", {"role": "keep", "output": "weight"}),
            "output column 'weight' is produced by more than one column",
        ),
        (
            column_change("sex", {"role": "keep", "output": "Sex Code"}),
            "'output' must be lower case letters",
        ),
    ],
)
def test_invalid_specs_are_refused(data: object, message: str) -> None:
    with pytest.raises(InputError) as err:
        parse_spec(data, source="bad.yaml")
    assert "dataset spec bad.yaml" in str(err.value)
    assert message in str(err.value)


def test_column_named_unlike_an_output_needs_an_output_name() -> None:
    data = column_change("sex", None)
    data["columns"]["Sex Code"] = {"role": "keep"}
    with pytest.raises(InputError, match="give an 'output' name"):
        parse_spec(data, source="t.yaml")
    data["columns"]["Sex Code"] = {"role": "keep", "output": "sex_code"}
    spec = parse_spec(data, source="t.yaml")
    assert ("sex_code", OutputType.STRING) in spec.outputs


def test_pid_is_never_an_output_name() -> None:
    spec = parse_spec(BASE, source="t.yaml")
    assert PID not in [name for name, _ in spec.outputs]


HEADER = ["nhs_number", "given_name", "date_of_birth", "postcode", "sex", "weight", "note"]


def test_header_matching_the_spec_in_any_order() -> None:
    spec = parse_spec(BASE, source="t.yaml")
    check_header(spec, HEADER, source="f.csv")
    check_header(spec, list(reversed(HEADER)), source="f.csv")


def test_unclassified_column_is_refused_by_name() -> None:
    spec = parse_spec(BASE, source="t.yaml")
    with pytest.raises(InputError) as err:
        check_header(spec, [*HEADER, "mothers_maiden_name"], source="f.csv")
    assert "'mothers_maiden_name'" in str(err.value)
    assert "not classified by dataset spec patients" in str(err.value)
    assert str(err.value).startswith("f.csv:")


def test_a_file_without_its_header_row_is_refused_without_repeating_the_row() -> None:
    spec = parse_spec(BASE, source="t.yaml")
    first_row = ["9434765919", "Amina", "1961-03-12", "LS6 2AB", "F", "71.5", "well"]
    with pytest.raises(InputError) as err:
        check_header(spec, first_row, source="f.csv")
    assert "header row missing" in str(err.value)
    assert not any(cell in str(err.value) for cell in first_row)


def test_cells_not_shaped_like_column_names_are_counted_not_repeated() -> None:
    spec = parse_spec(BASE, source="t.yaml")
    with pytest.raises(InputError) as err:
        check_header(spec, [*HEADER, "extra_col", "LS6 2AB"], source="f.csv")
    assert "'extra_col'" in str(err.value)
    assert "1 cell(s) that do not look like column names" in str(err.value)
    assert "LS6" not in str(err.value)


def test_missing_column_is_refused_by_name() -> None:
    spec = parse_spec(BASE, source="t.yaml")
    with pytest.raises(InputError) as err:
        check_header(spec, [h for h in HEADER if h != "weight"], source="f.csv")
    assert "'weight'" in str(err.value)
    assert "missing from the file" in str(err.value)


def test_repeated_header_column_is_refused() -> None:
    spec = parse_spec(BASE, source="t.yaml")
    with pytest.raises(InputError, match="repeats column"):
        check_header(spec, [*HEADER, "sex"], source="f.csv")
