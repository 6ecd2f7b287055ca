"""Carry patients' own opt-out choices across a rotation of the master key.

A new master key gives every patient a new ``pid``. The datasets, the NHS opt-out
registers and the choices imported from files are rebuilt from their source files under
the new key (docs/operators/keys.md). Choices a patient made on their page, or an
operator entered with ``sde optout set``, exist nowhere but the old
``linked/opt_out_choices``, by the old ``pid``: :func:`carry_choices` copies them into the
new home's table by the new ``pid``.

How a choice is recognised as one that re-import cannot recreate: every row
:func:`sde.services.optouts.record_choice_for_pid` writes (the patient's page,
``sde optout set``) has ``line`` 0; every row :func:`sde.services.optouts.import_choices`
writes has the line of the CSV file it came from (2 or more: line 1 is the header). The
``source`` column is free text (``--source`` names an import anything, ``"patient page"``
included), so it does not decide; ``line`` does.

The map from old to new ``pid`` comes from the NHS numbers in the new home's source files
(``<home>/sources/<dataset>.csv`` for every shipped dataset spec: each declares its NHS
number column): each distinct valid number gives its ``pid`` under the old key and under
the new key. The map lives in memory for the length of the call: it is never written,
logged, returned or put in a message or an audit event. A choice whose old ``pid`` is not
among the sources' numbers cannot be carried (its patient is not in the sources): it is
counted as unmatched, and that patient must be asked to choose again.

Before anything is written, each key is checked against its own lake: some ``pid`` the
key gives for the sources' numbers must be in one of that lake's linked tables of the
same datasets, so a wrong old key (every choice unmatched) or a new key other than the
one the new lake was ingested with (choices carried to nobody) is refused.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from sde.adapters import delta
from sde.adapters.arrow_hmac import ArrowLinkagePseudonymiser
from sde.adapters.csv_arrow import python_records, read_raw_batches
from sde.domain.datasets import PID, DatasetSpec, check_header
from sde.domain.keys import key_fingerprint, same_key
from sde.domain.nhs_number import checked_nhs_numbers
from sde.errors import InputError, NotFound, StateError
from sde.services.home import Home
from sde.services.ingest import linked_path, load_spec, shipped_datasets
from sde.services.optouts import CHOICES, CHOICES_SCHEMA, choices_path
from sde.services.ports import AuditSink

CARRIED_OVER = "optout.choices.carried_over"
"""The audit action, recorded in the new home."""
SINGLE_CHOICE_LINE = 0
"""The ``line`` of a choice recorded one at a time (the page, ``sde optout set``)."""

_COLUMNS = tuple(CHOICES_SCHEMA.names)
_ROW = "__row"


@dataclass(frozen=True)
class CarryResult:
    """What a carry-over did: counts, file names and fingerprints only.

    ``considered = carried + already_present + unmatched``: the old home's choices that
    re-import cannot recreate. ``file_imported`` old choices came from files and were
    left for ``sde optout import choices``."""

    old_key_fingerprint: str
    new_key_fingerprint: str
    source_files: tuple[str, ...]
    rows_read: int
    rows_without_valid_number: int
    patients_in_sources: int
    old_choices: int
    file_imported: int
    considered: int
    carried: int
    already_present: int
    unmatched: int
    unmatched_patients: int
    version: int | None
    """The new home's choices table version after the carry (None: no table there)."""

    def details(self) -> dict[str, object]:
        """The audit event's details."""
        return {
            "old_key_sha256": self.old_key_fingerprint,
            "new_key_sha256": self.new_key_fingerprint,
            "source_files": list(self.source_files),
            "rows_read": self.rows_read,
            "rows_without_valid_number": self.rows_without_valid_number,
            "patients_in_sources": self.patients_in_sources,
            "old_choices": self.old_choices,
            "file_imported": self.file_imported,
            "considered": self.considered,
            "carried": self.carried,
            "already_present": self.already_present,
            "unmatched": self.unmatched,
            "unmatched_patients": self.unmatched_patients,
            "version": self.version,
        }


@dataclass(frozen=True)
class _SourceNumbers:
    specs: tuple[DatasetSpec, ...]
    files: tuple[str, ...]
    digits: pa.Array
    rows_read: int
    rows_without_valid_number: int


def carry_choices(old: Home, new: Home, *, actor: str, audit: AuditSink) -> CarryResult:
    """Append the old home's page and ``sde optout set`` choices to the new home's
    ``opt_out_choices`` under the new ``pid``, every other column unchanged; choices
    already there are not added again. Records ``optout.choices.carried_over`` in the new
    home's audit log. Refuses (nothing written) the same key twice, the same choices
    table, a missing old choices table, a new home without source files, and a key that
    does not match its lake."""
    old_key, new_key = old.master_key(), new.master_key()
    if same_key(old_key, new_key):
        raise InputError(
            "the old and the new home have the same master key: carrying choices over is "
            "for a new key (make one, and ingest the sources under it first)"
        )
    old_table, new_table = choices_path(old), choices_path(new)
    if str(old_table) == str(new_table):
        raise InputError(
            f"the old and the new home share one choices table ({new_table}): the new key "
            "needs a new, empty lake"
        )
    if not delta.exists(old_table):
        raise NotFound(
            f"the old home has no linked/{CHOICES} table (at {old_table}): is this the old "
            "home, or its lake restored from backup?"
        )
    numbers = _source_numbers(new)
    old_pids = ArrowLinkagePseudonymiser(old_key).pid_array(numbers.digits)
    new_pids = ArrowLinkagePseudonymiser(new_key).pid_array(numbers.digits)
    _check_key_matches_lake(old, "old", numbers, old_pids)
    _check_key_matches_lake(new, "new", numbers, new_pids)

    events = _read_choices(old_table, "old")
    single = events.filter(pc.equal(events.column("line"), SINGLE_CHOICE_LINE))
    single_pids = single.column(PID).combine_chunks()
    position = pc.index_in(single_pids, value_set=old_pids)
    found = position.is_valid()
    unmatched_pids = single_pids.filter(pc.invert(found))
    matched = single.filter(found)
    carried_pids = new_pids.take(position.filter(found))
    candidates = matched.set_column(
        matched.schema.get_field_index(PID), pa.field(PID, pa.string()), carried_pids
    ).append_column(_ROW, pa.array(range(matched.num_rows), pa.int64()))

    to_append = candidates
    if delta.exists(new_table):
        existing = _read_choices(new_table, "new")
        to_append = candidates.join(existing, keys=list(_COLUMNS), join_type="left anti")
    to_append = to_append.sort_by(_ROW).drop_columns([_ROW])
    already_present = candidates.num_rows - to_append.num_rows
    if single.num_rows != to_append.num_rows + already_present + len(unmatched_pids):
        # An internal fault, not a user error: counts that do not add up mean a bug.
        raise RuntimeError("carried, already present and unmatched do not add up")

    version = delta.version(new_table)
    if to_append.num_rows:
        version = delta.append(new_table, to_append.cast(CHOICES_SCHEMA))

    result = CarryResult(
        old_key_fingerprint=key_fingerprint(old_key),
        new_key_fingerprint=key_fingerprint(new_key),
        source_files=numbers.files,
        rows_read=numbers.rows_read,
        rows_without_valid_number=numbers.rows_without_valid_number,
        patients_in_sources=len(numbers.digits),
        old_choices=events.num_rows,
        file_imported=events.num_rows - single.num_rows,
        considered=single.num_rows,
        carried=to_append.num_rows,
        already_present=already_present,
        unmatched=len(unmatched_pids),
        unmatched_patients=len(pc.unique(unmatched_pids)),
        version=version,
    )
    audit.record(actor, CARRIED_OVER, CHOICES, result.details())
    return result


# --- the sources' NHS numbers ------------------------------------------------------------


def source_files(home: Home) -> list[tuple[DatasetSpec, Path]]:
    """Every shipped dataset whose provider file ``<name>.csv`` is in ``home.sources``
    (the files ``sde ingest`` reads), with its spec."""
    return [
        (load_spec(name), home.sources / f"{name}.csv")
        for name in shipped_datasets()
        if (home.sources / f"{name}.csv").is_file()
    ]


def _source_numbers(home: Home) -> _SourceNumbers:
    """The distinct valid NHS numbers (normalised digits) of every source file; rows
    whose number is not valid (or that cannot be read as a record) are counted."""
    files = source_files(home)
    if not files:
        raise InputError(
            f"the new home has no provider files in {home.sources} (<dataset>.csv): the map "
            "from old to new pid is made from the sources' NHS numbers"
        )
    distinct: list[pa.Array] = []
    rows_read = rows_invalid = 0
    for spec, path in files:
        header = _header(path)
        check_header(spec, header, source=path.name)
        for batch in read_raw_batches(path, header):
            checked = checked_nhs_numbers(batch.columns.column(spec.identifier.name))
            rows_read += batch.records
            rows_invalid += checked.null_count + len(batch.malformed)
            distinct.append(pc.unique(checked.drop_null()))
        # Once per file: an events file repeats its patients in every batch.
        distinct = [_distinct(distinct)]
    digits = _distinct(distinct)
    if len(digits) == 0:
        raise InputError(
            f"the provider files in {home.sources} hold no valid NHS number: no pid can be mapped"
        )
    return _SourceNumbers(
        specs=tuple(spec for spec, _ in files),
        files=tuple(path.name for _, path in files),
        digits=digits,
        rows_read=rows_read,
        rows_without_valid_number=rows_invalid,
    )


def _distinct(arrays: list[pa.Array]) -> pa.Array:
    return pc.unique(pa.chunked_array(arrays, type=pa.string()).combine_chunks())


def _header(path: Path) -> list[str]:
    first = next(iter(python_records(path)), None)
    if first is None:
        raise InputError(f"{path.name} is empty: a provider file starts with a header row")
    return [name.strip() for name in first]


# --- checks ------------------------------------------------------------------------------


def _check_key_matches_lake(
    home: Home, which: str, numbers: _SourceNumbers, pids: pa.Array
) -> None:
    """Refuse unless some ``pid`` the key gives for the sources' numbers is in one of the
    home's linked tables of the sources' datasets (a wrong key matches none)."""
    ingested: list[str] = []
    for spec in numbers.specs:
        table = linked_path(home, spec.name)
        if not delta.exists(table):
            continue
        ingested.append(spec.name)
        if _any_pid_in(table, pids):
            return
    names = ", ".join(spec.name for spec in numbers.specs)
    if not ingested:
        step = (
            "ingest the sources under the new key first"
            if which == "new"
            else "open the old home or a restored copy of its lake"
        )
        raise StateError(
            f"the {which} home's lake has no linked table of the sources' datasets ({names}), "
            f"so the {which} key cannot be checked against it: {step}"
        )
    raise StateError(
        f"the {which} master key does not match the {which} home's lake: no pid it gives for "
        f"the sources' NHS numbers is in linked/{', linked/'.join(ingested)}"
    )


def _any_pid_in(table: delta.Location, pids: pa.Array) -> bool:
    for batch in delta.batches(table, columns=[PID]):
        if pc.any(pc.is_in(batch.column(PID), value_set=pids)).as_py():
            return True
    return False


def _read_choices(table: delta.Location, which: str) -> pa.Table:
    events = delta.read(table)
    missing = _missing(events.column_names, _COLUMNS)
    if missing:
        raise StateError(
            f"the {which} home's linked/{CHOICES} table lacks column(s) {', '.join(missing)}"
        )
    return events.select(list(_COLUMNS)).cast(CHOICES_SCHEMA)


def _missing(have: Sequence[str], want: Sequence[str]) -> list[str]:
    return [name for name in want if name not in have]
