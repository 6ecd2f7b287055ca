"""Dataset specs and the per-row rules of ingest.

A dataset spec says, for every column a provider sends, what ingest does with it (its
*role*), how the value is checked (its *type*, whether it is *required*, its *allowed*
values), and for identifying columns what kind of identifier it is (*pii*), so free text
in the same row can be cleared of it. Specs are YAML files (``sde/datasets/*.yaml``);
this module parses an already-loaded mapping, checks it, and applies the row rules.
Pure: no I/O. See ``docs/dataset-specs.md`` for the format.

Row rules (``check_row``) never put a value in a reason: reasons name the column and the
rule that refused the row, and carry a stable ``code`` so quarantine counts reconcile.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from sde.domain import generalise, nhs_number
from sde.errors import InputError

PID = "pid"
"""Name of the linkage pseudonym column, first in every linked table."""

_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_ISO_DATE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")
_DECIMAL = re.compile(r"^[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?$")
_WHOLE = re.compile(r"^[+-]?[0-9]+$")
_Fail = Callable[[str], InputError]


class Role(StrEnum):
    IDENTIFIER = "identifier"
    """The NHS number: replaced by the linkage pseudonym ``pid``."""
    QUASI_IDENTIFIER = "quasi_identifier"
    """Kept only after a generalisation (date of birth to year, postcode to district)."""
    FREE_TEXT = "free_text"
    """De-identified: identifiers replaced with typed placeholders."""
    KEEP = "keep"
    """Kept as is, after type checks."""
    DROP = "drop"
    """Never leaves ingest (names, addresses, phone numbers, local identifiers)."""


class ColumnType(StrEnum):
    STRING = "string"
    DATE = "date"
    FLOAT = "float"
    INTEGER = "integer"
    NHS_NUMBER = "nhs_number"


class Pii(StrEnum):
    """What kind of identifier a column holds. Values of these columns are removed from
    free text of the same patient, in any layout."""

    NHS_NUMBER = "nhs_number"
    PERSON = "person"
    DATE = "date"
    ADDRESS = "address"
    LOCATION = "location"
    POSTCODE = "postcode"
    PHONE = "phone"
    EMAIL = "email"
    IDENTIFIER = "identifier"


class Origin(StrEnum):
    GP = "gp"
    HOSPITAL = "hospital"
    REGISTRY = "registry"
    OPT_OUT = "opt_out"


class OutputType(StrEnum):
    """Logical types of linked-zone columns (the Delta adapter maps them to Arrow)."""

    STRING = "string"
    DATE = "date"
    FLOAT = "float"
    INTEGER = "integer"
    YEAR = "year"


class Reason(StrEnum):
    """Why a row went to quarantine. Stable codes: counts are reconciled against them."""

    MALFORMED_ROW = "malformed_row"
    MISSING_REQUIRED = "missing_required"
    INVALID_NHS_NUMBER = "invalid_nhs_number"
    BAD_DATE = "bad_date"
    BAD_VALUE = "bad_value"
    DUPLICATE_ROW = "duplicate_row"
    DUPLICATE_KEY = "duplicate_key"
    DEIDENTIFICATION_FAILED = "deidentification_failed"


FORMATS = ("csv",)
GENERALISATION_INPUT = {
    "year": ColumnType.DATE,
    "month": ColumnType.DATE,
    "postcode_district": ColumnType.STRING,
}
GENERALISATION_OUTPUT = {
    "year": OutputType.YEAR,
    "month": OutputType.STRING,
    "postcode_district": OutputType.STRING,
}
assert set(GENERALISATION_INPUT) == set(generalise.GENERALISATIONS)

_SPEC_KEYS = {
    "name",
    "title",
    "description",
    "origin",
    "format",
    "key",
    "columns",
    "known_from",
    "sign_in",
}
_COLUMN_KEYS = {
    "role",
    "type",
    "required",
    "allowed",
    "generalise",
    "output",
    "pii",
    "description",
}
# Which optional column settings each role accepts.
_ROLE_KEYS: dict[Role, set[str]] = {
    Role.IDENTIFIER: {"type", "required", "pii", "description"},
    Role.QUASI_IDENTIFIER: {"type", "required", "generalise", "output", "pii", "description"},
    Role.FREE_TEXT: {"type", "required", "output", "description"},
    Role.KEEP: {"type", "required", "allowed", "output", "description"},
    Role.DROP: {"type", "pii", "description"},
}


@dataclass(frozen=True)
class ColumnSpec:
    name: str
    role: Role
    type: ColumnType = ColumnType.STRING
    required: bool = False
    allowed: tuple[str, ...] | None = None
    generalise: str | None = None
    output: str | None = None
    pii: Pii | None = None
    description: str = ""

    @property
    def output_type(self) -> OutputType | None:
        """The linked-zone type of this column's output, None if it has no output."""
        if self.role is Role.IDENTIFIER or self.role is Role.DROP:
            return None
        if self.role is Role.QUASI_IDENTIFIER:
            assert self.generalise is not None
            return GENERALISATION_OUTPUT[self.generalise]
        if self.role is Role.FREE_TEXT:
            return OutputType.STRING
        return OutputType(self.type.value)

    @property
    def known_kind(self) -> Pii | None:
        """The kind of identifier this column's value is, for clearing free text."""
        if self.role is Role.IDENTIFIER:
            return Pii.NHS_NUMBER
        return self.pii


@dataclass(frozen=True)
class SignInColumns:
    """The source columns (full values, read before generalising) of a patient's date of
    birth and postcode."""

    birth_date: str
    postcode: str


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    title: str
    origin: Origin
    columns: tuple[ColumnSpec, ...]
    format: str = "csv"
    key: tuple[str, ...] = ()
    known_from: tuple[str, ...] = ()
    description: str = ""
    sign_in: SignInColumns | None = None
    """The columns a patient's sign-in check is made from (see
    :mod:`sde.domain.patient_sign_in`); only a patients' dataset has them."""

    def column(self, name: str) -> ColumnSpec:
        for column in self.columns:
            if column.name == name:
                return column
        raise KeyError(name)

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    @property
    def identifier(self) -> ColumnSpec:
        return next(c for c in self.columns if c.role is Role.IDENTIFIER)

    @property
    def free_text_columns(self) -> tuple[ColumnSpec, ...]:
        return tuple(c for c in self.columns if c.role is Role.FREE_TEXT)

    @property
    def known_columns(self) -> tuple[ColumnSpec, ...]:
        """Columns whose values are identifiers of the row's patient (for free text)."""
        return tuple(c for c in self.columns if c.known_kind is not None)

    @property
    def outputs(self) -> tuple[tuple[str, OutputType], ...]:
        """The linked table's columns after ``pid``, in spec order: (name, type)."""
        out: list[tuple[str, OutputType]] = []
        for column in self.columns:
            kind = column.output_type
            if kind is not None:
                out.append((column.output or column.name, kind))
        return tuple(out)


# --- parsing -----------------------------------------------------------------------------


def parse_spec(data: object, *, source: str) -> DatasetSpec:
    """Check a spec mapping (as loaded from YAML) and build the spec. Raises
    ``InputError`` naming ``source`` and the offending field."""

    def fail(message: str) -> InputError:
        return InputError(f"dataset spec {source}: {message}")

    if not isinstance(data, Mapping):
        raise fail("must be a mapping of settings")
    unknown = sorted(str(k) for k in data if k not in _SPEC_KEYS)
    if unknown:
        raise fail(f"unknown setting(s) {', '.join(unknown)}")

    name = data.get("name")
    if not isinstance(name, str) or not _NAME.match(name):
        raise fail("'name' must be lower case letters, digits and underscores")
    title = _text(data.get("title", name), "title", fail)
    description = _text(data.get("description", ""), "description", fail)
    origin_raw = data.get("origin")
    try:
        origin = Origin(str(origin_raw))
    except ValueError:
        raise fail(f"'origin' must be one of {_choices(Origin)}") from None
    fmt = data.get("format", "csv")
    if fmt not in FORMATS:
        raise fail(f"'format' must be one of {', '.join(FORMATS)}")

    columns_raw = data.get("columns")
    if not isinstance(columns_raw, Mapping) or not columns_raw:
        raise fail("'columns' must be a non-empty mapping of column name to settings")
    columns = tuple(
        _parse_column(col_name, settings, fail) for col_name, settings in columns_raw.items()
    )

    identifiers = [c for c in columns if c.role is Role.IDENTIFIER]
    if len(identifiers) != 1:
        raise fail(
            "exactly one column must have role 'identifier' (the NHS number that becomes pid);"
            f" found {len(identifiers)}"
        )
    outputs = [c.output or c.name for c in columns if c.output_type is not None]
    seen: set[str] = set()
    for out in outputs:
        if out == PID:
            raise fail(f"output column name {PID!r} is reserved for the linkage pseudonym")
        if out in seen:
            raise fail(f"output column {out!r} is produced by more than one column")
        seen.add(out)

    key = _string_list(data.get("key", []), "key", fail)
    names = {c.name: c for c in columns}
    for key_column in key:
        if key_column not in names:
            raise fail(f"key column {key_column!r} is not a column of the spec")
        if names[key_column].role not in (Role.IDENTIFIER, Role.KEEP, Role.QUASI_IDENTIFIER):
            raise fail(
                f"key column {key_column!r} must be an identifier, keep or quasi_identifier column"
            )
    if len(set(key)) != len(key):
        raise fail("'key' names a column more than once")

    known_from = _string_list(data.get("known_from", []), "known_from", fail)
    for ref in known_from:
        if not _NAME.match(ref):
            raise fail(f"'known_from' entry {ref!r} is not a dataset name")
        if ref == name:
            raise fail("'known_from' cannot name the dataset itself")
    if known_from and not any(c.role is Role.FREE_TEXT for c in columns):
        raise fail("'known_from' is only used to clear free text; the spec has no free_text column")

    sign_in = _parse_sign_in(data.get("sign_in"), {c.name: c for c in columns}, fail)

    return DatasetSpec(
        name=name,
        title=title,
        origin=origin,
        columns=columns,
        format=str(fmt),
        key=tuple(key),
        known_from=tuple(known_from),
        description=description,
        sign_in=sign_in,
    )


def _parse_sign_in(
    raw: object, columns: Mapping[str, ColumnSpec], fail: _Fail
) -> SignInColumns | None:
    if raw is None:
        return None
    if not isinstance(raw, Mapping) or set(raw) != {"birth_date", "postcode"}:
        raise fail("'sign_in' must map birth_date and postcode to columns of the spec")
    birth, postcode = raw["birth_date"], raw["postcode"]
    for what, column, kind in (
        ("birth_date", birth, ColumnType.DATE),
        ("postcode", postcode, ColumnType.STRING),
    ):
        if not isinstance(column, str) or column not in columns:
            raise fail(f"'sign_in' {what} must name a column of the spec")
        if columns[column].type is not kind:
            raise fail(f"'sign_in' {what} column {column!r} must have type {kind.value}")
    return SignInColumns(birth_date=str(birth), postcode=str(postcode))


def _parse_column(name: object, settings: object, fail: _Fail) -> ColumnSpec:
    if not isinstance(name, str) or not name.strip():
        raise fail("column names must be non-empty strings")
    where = f"column {name!r}"
    if not isinstance(settings, Mapping):
        raise fail(f"{where} must be a mapping of settings (at least 'role')")
    unknown = sorted(str(k) for k in settings if k not in _COLUMN_KEYS)
    if unknown:
        raise fail(f"{where}: unknown setting(s) {', '.join(unknown)}")
    try:
        role = Role(str(settings.get("role")))
    except ValueError:
        raise fail(f"{where}: 'role' must be one of {_choices(Role)}") from None
    not_for_role = sorted(k for k in settings if k != "role" and k not in _ROLE_KEYS[role])
    if not_for_role:
        raise fail(f"{where}: role {role.value!r} does not take {', '.join(not_for_role)}")

    default_type = ColumnType.NHS_NUMBER if role is Role.IDENTIFIER else ColumnType.STRING
    try:
        ctype = ColumnType(str(settings.get("type", default_type.value)))
    except ValueError:
        raise fail(f"{where}: 'type' must be one of {_choices(ColumnType)}") from None
    required = settings.get("required", role is Role.IDENTIFIER)
    if not isinstance(required, bool):
        raise fail(f"{where}: 'required' must be true or false")
    pii: Pii | None = None
    if "pii" in settings:
        try:
            pii = Pii(str(settings["pii"]))
        except ValueError:
            raise fail(f"{where}: 'pii' must be one of {_choices(Pii)}") from None
    description = _text(settings.get("description", ""), f"{where}: description", fail)
    output = settings.get("output")
    if output is not None and (not isinstance(output, str) or not _NAME.match(output)):
        raise fail(f"{where}: 'output' must be lower case letters, digits and underscores")
    generalisation = settings.get("generalise")
    allowed: tuple[str, ...] | None = None

    if ctype is ColumnType.NHS_NUMBER and role not in (Role.IDENTIFIER, Role.DROP):
        raise fail(f"{where}: an NHS number is pseudonymised (identifier) or dropped, never kept")

    if role is Role.IDENTIFIER:
        if ctype is not ColumnType.NHS_NUMBER:
            raise fail(f"{where}: the identifier column must have type 'nhs_number'")
        if not required:
            raise fail(f"{where}: the identifier is always required (rows without it cannot link)")
        if pii not in (None, Pii.NHS_NUMBER):
            raise fail(f"{where}: the identifier column is an NHS number; 'pii' must be nhs_number")
        pii = None  # implied: see ColumnSpec.known_kind
    elif role is Role.QUASI_IDENTIFIER:
        if generalisation not in GENERALISATION_INPUT:
            raise fail(
                f"{where}: a quasi_identifier needs 'generalise', one of "
                f"{', '.join(GENERALISATION_INPUT)}"
            )
        if ctype is not GENERALISATION_INPUT[generalisation]:
            raise fail(
                f"{where}: generalisation {generalisation!r} needs type "
                f"{GENERALISATION_INPUT[generalisation].value!r}"
            )
        if output is None:
            output = f"{name}_{generalisation}" if _NAME.match(name) else None
            if output is None:
                raise fail(f"{where}: give an 'output' name for the generalised column")
    elif role is Role.FREE_TEXT:
        if ctype is not ColumnType.STRING:
            raise fail(f"{where}: free text has type 'string'")
    elif role is Role.KEEP:
        if pii is not None:
            raise fail(f"{where}: a column marked 'pii' cannot be kept; drop or generalise it")
        if "allowed" in settings:
            if ctype is not ColumnType.STRING:
                raise fail(f"{where}: 'allowed' values apply to string columns only")
            values = settings["allowed"]
            if (
                not isinstance(values, list)
                or not values
                or not all(isinstance(v, str) for v in values)
            ):
                raise fail(
                    f"{where}: 'allowed' must be a non-empty list of strings (quote values "
                    "such as yes, no, on, off or numbers)"
                )
            allowed = tuple(values)
    if role not in (Role.KEEP, Role.FREE_TEXT, Role.QUASI_IDENTIFIER) and output is not None:
        raise fail(f"{where}: role {role.value!r} has no output to name")
    if output is None and role in (Role.KEEP, Role.FREE_TEXT) and not _NAME.match(name):
        raise fail(
            f"{where}: the column name is not a valid output name; give an 'output' name "
            "(lower case letters, digits and underscores)"
        )

    return ColumnSpec(
        name=name,
        role=role,
        type=ctype,
        required=required,
        allowed=allowed,
        generalise=generalisation if role is Role.QUASI_IDENTIFIER else None,
        output=output,
        pii=pii,
        description=description,
    )


def _text(value: object, what: str, fail: _Fail) -> str:
    if not isinstance(value, str):
        raise fail(f"'{what}' must be text")
    return value


def _string_list(value: object, what: str, fail: _Fail) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise fail(f"'{what}' must be a list of names")
    return list(value)


def _choices(enum: type[StrEnum]) -> str:
    return ", ".join(m.value for m in enum)


# --- headers -----------------------------------------------------------------------------


_HEADER_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")


def check_header(spec: DatasetSpec, header: Sequence[str], *, source: str) -> None:
    """Refuse a file whose columns differ from the spec's: every column a provider sends
    must be classified, and every classified column must be sent.

    A file without its header row would put a patient's values where the column names
    go, so the message never repeats a header cell that does not look like a column
    name, and names nothing at all when no header cell is a declared column."""
    declared = set(spec.column_names)
    if header and not declared & set(header):
        raise InputError(
            f"{source}: the first line names none of the columns of dataset spec "
            f"{spec.name}; is the header row missing?"
        )
    duplicated = sorted({h for h in header if list(header).count(h) > 1})
    if duplicated:
        raise InputError(f"{source}: the header repeats column(s) {_names(duplicated)}")
    unclassified = [h for h in header if h not in declared]
    if unclassified:
        raise InputError(
            f"{source}: column(s) {_names(unclassified)} not classified by dataset spec "
            f"{spec.name}; add them to the spec with a role (drop if not needed)"
        )
    missing = [c for c in spec.column_names if c not in set(header)]
    if missing:
        raise InputError(
            f"{source}: column(s) {_quoted(missing)} declared by dataset spec {spec.name} "
            "are missing from the file"
        )


def _names(cells: Sequence[str]) -> str:
    """Header cells for a message: those shaped like column names, and a count of the
    others (which are never repeated)."""
    shown = [c for c in cells if _HEADER_NAME.match(c)]
    hidden = len(cells) - len(shown)
    text = _quoted(shown)
    if hidden:
        text += f"{', ' if shown else ''}{hidden} cell(s) that do not look like column names"
    return text


def _quoted(names: Sequence[str]) -> str:
    return ", ".join(repr(n) for n in names)


# --- rows --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rejection:
    """A row refused, with a stable code and a sentence naming the column and rule."""

    code: Reason
    reason: str


@dataclass(frozen=True)
class CheckedRow:
    """A row that passed the rules. ``nhs_number`` is the normalised number (for the
    pseudonymiser; never written); ``values`` maps output column to typed value."""

    nhs_number: str
    values: dict[str, object]
    free_text: dict[str, str]
    key: tuple[str, ...]


def check_row(spec: DatasetSpec, row: Mapping[str, str]) -> CheckedRow | Rejection:
    """Apply the spec's rules to one row (column name -> raw text). The identifier is
    checked first, then the other columns in spec order; the first failure is returned."""
    ident = spec.identifier
    raw_id = row[ident.name].strip()
    if not raw_id:
        return Rejection(Reason.MISSING_REQUIRED, f"required column {ident.name!r} is empty")
    digits = nhs_number.normalise(raw_id)
    if digits is None or not nhs_number.is_valid_digits(digits):
        return Rejection(
            Reason.INVALID_NHS_NUMBER,
            f"column {ident.name!r} is not a valid NHS number (ten digits, Modulus 11 check)",
        )

    values: dict[str, object] = {}
    free_text: dict[str, str] = {}
    normalised: dict[str, str] = {ident.name: digits}
    for column in spec.columns:
        if column.role is Role.IDENTIFIER or column.role is Role.DROP:
            continue
        raw = row[column.name]
        text = raw.strip()
        out = column.output or column.name
        if not text:
            if column.required:
                return Rejection(
                    Reason.MISSING_REQUIRED, f"required column {column.name!r} is empty"
                )
            values[out] = None
            normalised[column.name] = ""
            continue
        if column.role is Role.FREE_TEXT:
            free_text[out] = raw
            continue
        typed = _typed(column, text)
        if isinstance(typed, Rejection):
            return typed
        normalised[column.name] = text
        if column.role is Role.QUASI_IDENTIFIER:
            general = _generalised(column, typed)
            if isinstance(general, Rejection):
                return general
            values[out] = general
        else:
            values[out] = typed
    return CheckedRow(
        nhs_number=digits,
        values=values,
        free_text=free_text,
        key=tuple(normalised[k] for k in spec.key),
    )


def _typed(column: ColumnSpec, text: str) -> object:
    if column.type is ColumnType.DATE:
        parsed = generalise.parse_date(text) if _ISO_DATE.match(text) else None
        if parsed is None:
            return Rejection(
                Reason.BAD_DATE, f"column {column.name!r} is not a date in the form YYYY-MM-DD"
            )
        return parsed
    if column.type is ColumnType.FLOAT:
        number = float(text) if _DECIMAL.match(text) else None
        if number is None or number in (float("inf"), float("-inf")):
            return Rejection(Reason.BAD_VALUE, f"column {column.name!r} is not a number")
        return number
    if column.type is ColumnType.INTEGER:
        if not _WHOLE.match(text):
            return Rejection(Reason.BAD_VALUE, f"column {column.name!r} is not a whole number")
        return int(text, 10)
    if column.allowed is not None and text not in column.allowed:
        return Rejection(
            Reason.BAD_VALUE,
            f"column {column.name!r} is not one of the allowed values "
            f"({len(column.allowed)} listed in the spec)",
        )
    return text


def _generalised(column: ColumnSpec, typed: object) -> object:
    if column.generalise == "year":
        assert isinstance(typed, dt.date)
        return generalise.year(typed)
    if column.generalise == "month":
        assert isinstance(typed, dt.date)
        return generalise.month(typed)
    assert column.generalise == "postcode_district"
    assert isinstance(typed, str)
    district = generalise.postcode_district(typed)
    if district is None:
        return Rejection(Reason.BAD_VALUE, f"column {column.name!r} is not a UK postcode")
    return district


def row_digest(fields: Sequence[str]) -> bytes:
    """A fingerprint of a row's exact content, for finding exact duplicates."""
    digest = hashlib.blake2b(digest_size=16)
    for value in fields:
        encoded = value.encode("utf-8", "surrogatepass")
        digest.update(len(encoded).to_bytes(8, "big"))
        digest.update(encoded)
    return digest.digest()


@dataclass
class DuplicateFinder:
    """Remembers rows and keys already seen in one file (exact copies and repeated keys
    are quarantined; the first occurrence is kept). Holds fingerprints, not values."""

    key_columns: tuple[str, ...]
    _rows: dict[bytes, int] = field(default_factory=dict)
    _keys: dict[bytes, int] = field(default_factory=dict)

    def exact_copy(self, fields: Sequence[str], row_number: int) -> Rejection | None:
        digest = row_digest(fields)
        earlier = self._rows.setdefault(digest, row_number)
        if earlier != row_number:
            return duplicate_row(earlier)
        return None

    def repeated_key(self, key: tuple[str, ...], row_number: int) -> Rejection | None:
        if not self.key_columns:
            return None
        digest = row_digest(key)
        earlier = self._keys.setdefault(digest, row_number)
        if earlier != row_number:
            return duplicate_key(self.key_columns, earlier)
        return None


def duplicate_row(earlier: int) -> Rejection:
    """An exact copy of data row ``earlier`` (the first occurrence is kept)."""
    return Rejection(Reason.DUPLICATE_ROW, f"the row is an exact copy of data row {earlier}")


def duplicate_key(key_columns: Sequence[str], earlier: int) -> Rejection:
    """The key columns repeat data row ``earlier`` (the first occurrence is kept)."""
    return Rejection(
        Reason.DUPLICATE_KEY, f"key ({', '.join(key_columns)}) repeats data row {earlier}"
    )


def malformed(expected: int, found: int) -> Rejection:
    return Rejection(
        Reason.MALFORMED_ROW, f"the row has {found} field(s); the header has {expected}"
    )


def deidentification_failed(column: str) -> Rejection:
    return Rejection(
        Reason.DEIDENTIFICATION_FAILED,
        f"free text in column {column!r} could not be de-identified; the row was held back",
    )
