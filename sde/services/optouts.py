"""Opt-outs: the registers, patients' own choices, and one place to ask who is excluded.

- The NHS registers (``national_opt_out``, ``type1_opt_out``) are ingested like any other
  dataset (:func:`import_register` wraps :func:`sde.services.ingest.ingest_file`: same
  validation, quarantine and manifest). They hold ``pid`` only.
- Patients' granular choices are events in an append-only Delta table in the linked
  zone, ``linked/opt_out_choices``: ``pid, scope, target, choice, recorded_at, source,
  loaded_at, line``. NHS numbers come in (a CSV file, or one patient at the operator's
  command line) and become ``pid`` before anything is written. The latest event per
  ``(pid, scope, target)`` wins (by ``recorded_at``, then load order), so a patient can
  change their mind. An absent table means nobody has made a choice yet.
- :func:`exclusions` answers, for a project's terms and a dataset origin, which ``pid``s
  each applicable rule excludes (never NHS numbers). Extracts use the same answer
  (:mod:`sde.services.extract`), so every data controller applies the same choices.
"""

from __future__ import annotations

import csv
import datetime as dt
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from sde.adapters import delta
from sde.adapters.delta import Location
from sde.domain import nhs_number
from sde.domain.datasets import PID
from sde.domain.optouts import (
    NATIONAL,
    REGISTERS,
    TYPE1,
    Choice,
    ChoiceEvent,
    ExclusionTerms,
    Rule,
    Scope,
    make_choice_event,
    rules_for,
)
from sde.domain.policy import PolicyEngine
from sde.domain.projects import Project
from sde.domain.pseudonyms import LinkagePseudonymiser
from sde.errors import InputError, NotFound
from sde.services.home import Home
from sde.services.ingest import COMMIT_SHA_KEY, IngestResult, file_sha256, ingest_file, load_spec
from sde.services.ports import AuditSink

CHOICES = "opt_out_choices"
CHOICE_COLUMNS = ("nhs_number", "scope", "target", "choice", "recorded_at")
MAX_REPORTED_ERRORS = 20
REGISTER_NAMES: dict[str, str] = {"national": NATIONAL, "type1": TYPE1}

_UTC = pa.timestamp("us", tz="UTC")
CHOICES_SCHEMA = pa.schema(
    [
        pa.field(PID, pa.string(), nullable=False),
        pa.field("scope", pa.string(), nullable=False),
        pa.field("target", pa.string(), nullable=False),
        pa.field("choice", pa.string(), nullable=False),
        pa.field("recorded_at", _UTC, nullable=False),
        pa.field("source", pa.string(), nullable=False),
        pa.field("loaded_at", _UTC, nullable=False),
        pa.field("line", pa.int64(), nullable=False),
    ]
)


def choices_path(home: Home) -> Location:
    return home.linked / CHOICES


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


# --- the NHS registers -------------------------------------------------------------------


def import_register(
    home: Home,
    register: str,
    path: Path,
    *,
    actor: str,
    audit: AuditSink | None = None,
    engine: PolicyEngine | None = None,
) -> IngestResult:
    """Ingest a national data opt-out list (``national``) or type 1 opt-out flags
    (``type1``): NHS numbers in, ``pid`` out, bad rows quarantined, one manifest row.
    With ``engine``, the ``sde.ingest`` policy is asked first, as for any ingest."""
    dataset = REGISTER_NAMES.get(register, register)
    if dataset not in REGISTERS:
        raise InputError(f"opt-out register must be one of {', '.join(REGISTER_NAMES)}")
    return ingest_file(home, load_spec(dataset), path, audit=audit, actor=actor, engine=engine)


# --- patients' choices -------------------------------------------------------------------


@dataclass(frozen=True)
class ChoicesImport:
    """What an import of choices recorded (counts only)."""

    source_file: str
    source_sha256: str
    events: int
    patients: int
    by_scope: Mapping[str, int] = field(default_factory=dict)
    version: int | None = None
    skipped: bool = False
    """True if this file (same SHA-256) was imported before: nothing was added."""


def _imported_before(home: Home, sha256: str) -> int | None:
    for commit in delta.history(choices_path(home)):
        if commit.get(COMMIT_SHA_KEY) == sha256:
            return int(commit["version"])
    return None


def _events_table(
    pids: list[str],
    events: list[ChoiceEvent],
    lines: list[int],
    source: str,
    loaded_at: dt.datetime,
) -> pa.Table:
    return pa.table(
        {
            PID: pa.array(pids, pa.string()),
            "scope": pa.array([e.scope.value for e in events], pa.string()),
            "target": pa.array([e.target for e in events], pa.string()),
            "choice": pa.array([e.choice.value for e in events], pa.string()),
            "recorded_at": pa.array([e.recorded_at for e in events], _UTC),
            "source": pa.array([source] * len(events), pa.string()),
            "loaded_at": pa.array([loaded_at] * len(events), _UTC),
            "line": pa.array(lines, pa.int64()),
        },
        schema=CHOICES_SCHEMA,
    )


def _refuse(path: Path, errors: list[str], total: int) -> InputError:
    shown = "; ".join(errors[:MAX_REPORTED_ERRORS])
    more = f"; and {total - MAX_REPORTED_ERRORS} more" if total > MAX_REPORTED_ERRORS else ""
    return InputError(f"{path.name}: {total} line(s) refused, nothing was recorded: {shown}{more}")


def import_choices(
    home: Home,
    path: Path,
    *,
    actor: str,
    source: str | None = None,
    audit: AuditSink | None = None,
    now: dt.datetime | None = None,
) -> ChoicesImport:
    """Record the patients' choices in a CSV file (``nhs_number, scope, target, choice,
    recorded_at``) as one commit. All or nothing: any bad line refuses the file, with
    messages naming lines and fields, never values. A file imported before adds nothing."""
    if not path.is_file():
        raise NotFound(f"no file at {path}")
    sha256 = file_sha256(path)
    previous = _imported_before(home, sha256)
    if previous is not None:
        result = ChoicesImport(path.name, sha256, 0, 0, version=previous, skipped=True)
        if audit is not None:
            audit.record(actor, "optout.choices.skipped", CHOICES, _import_details(result))
        return result

    clock = now or _now()
    linkage = LinkagePseudonymiser(home.master_key())
    pid_of: dict[str, str] = {}
    pids: list[str] = []
    events: list[ChoiceEvent] = []
    lines: list[int] = []
    errors: list[str] = []
    error_count = 0
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f)
            header = [h.strip() for h in next(reader, [])]
            if sorted(header) != sorted(CHOICE_COLUMNS) or len(header) != len(CHOICE_COLUMNS):
                missing = [c for c in CHOICE_COLUMNS if c not in header]
                raise InputError(
                    f"{path.name}: the header must be exactly {', '.join(CHOICE_COLUMNS)}"
                    + (f" (missing: {', '.join(missing)})" if missing else "")
                )
            position = {name: header.index(name) for name in CHOICE_COLUMNS}
            for row in reader:
                line = reader.line_num
                if not row or all(not cell.strip() for cell in row):
                    continue
                if len(row) != len(header):
                    error_count += 1
                    errors.append(f"line {line}: expected {len(header)} fields, found {len(row)}")
                    continue
                digits = nhs_number.normalise(row[position["nhs_number"]])
                if digits is None or not nhs_number.is_valid_digits(digits):
                    error_count += 1
                    errors.append(f"line {line}: nhs_number is not a valid NHS number")
                    continue
                try:
                    event = make_choice_event(
                        row[position["scope"]],
                        row[position["target"]],
                        row[position["choice"]],
                        row[position["recorded_at"]],
                        clock,
                    )
                except InputError as exc:
                    error_count += 1
                    errors.append(f"line {line}: {exc}")
                    continue
                pid = pid_of.get(digits)
                if pid is None:
                    pid = pid_of[digits] = linkage.pid(digits)
                pids.append(pid)
                events.append(event)
                lines.append(line)
    except UnicodeDecodeError:
        raise InputError(f"{path.name} is not UTF-8 text") from None
    except csv.Error as exc:
        raise InputError(f"{path.name} is not a readable CSV file ({exc})") from None
    if error_count:
        raise _refuse(path, errors, error_count)
    if not events:
        raise InputError(f"{path.name} holds no choices")

    version = delta.append(
        choices_path(home),
        _events_table(pids, events, lines, source or f"file {path.name}", clock),
        custom_metadata={COMMIT_SHA_KEY: sha256},
    )
    result = ChoicesImport(
        source_file=path.name,
        source_sha256=sha256,
        events=len(events),
        patients=len(pid_of),
        by_scope=dict(sorted(Counter(f"{e.scope}:{e.choice}" for e in events).items())),
        version=version,
    )
    if audit is not None:
        audit.record(actor, "optout.choices.import", CHOICES, _import_details(result))
    return result


def _import_details(result: ChoicesImport) -> dict[str, object]:
    return {
        "source_file": result.source_file,
        "source_sha256": result.source_sha256,
        "events": result.events,
        "patients": result.patients,
        "by_scope": dict(result.by_scope),
        "version": result.version,
        "skipped": result.skipped,
    }


def record_choice(
    home: Home,
    raw_nhs_number: str,
    scope: str,
    target: str | None = None,
    *,
    opt_in: bool = False,
    actor: str,
    recorded_at: str | None = None,
    source: str | None = None,
    audit: AuditSink | None = None,
    now: dt.datetime | None = None,
) -> int:
    """Record one patient's choice (default: opt out) and return the table's version.
    The NHS number is turned into ``pid`` at once and never repeated in a message."""
    digits = nhs_number.normalise(raw_nhs_number)
    if digits is None or not nhs_number.is_valid_digits(digits):
        raise InputError("the NHS number given is not a valid NHS number")
    pid = LinkagePseudonymiser(home.master_key()).pid(digits)
    version, event = record_choice_for_pid(
        home,
        pid,
        scope,
        target,
        opt_in=opt_in,
        recorded_at=recorded_at,
        source=source or f"operator {actor}",
        now=now,
    )
    if audit is not None:
        audit.record(
            actor,
            "optout.choice.set",
            CHOICES,
            {
                "scope": event.scope.value,
                "target": event.target,
                "choice": event.choice.value,
                "version": version,
            },
        )
    return version


def record_choice_for_pid(
    home: Home,
    pid: str,
    scope: str,
    target: str | None = None,
    *,
    opt_in: bool = False,
    recorded_at: str | None = None,
    source: str,
    now: dt.datetime | None = None,
) -> tuple[int, ChoiceEvent]:
    """Append one choice of the patient ``pid`` (already pseudonymised: the patient's own
    page holds no NHS number); the table's new version and the event as stored."""
    clock = now or _now()
    event = make_choice_event(
        scope,
        target,
        Choice.OPT_IN.value if opt_in else Choice.OPT_OUT.value,
        recorded_at or clock.isoformat(),
        clock,
    )
    version = delta.append(choices_path(home), _events_table([pid], [event], [0], source, clock))
    return version, event


def standing_opt_outs(home: Home, version: int | None = None) -> pa.Table:
    """The choices in force: one row ``(pid, scope, target)`` for each latest event that
    is an opt-out. Empty if no choice was ever recorded."""
    path = choices_path(home)
    empty = pa.table({name: pa.array([], pa.string()) for name in (PID, "scope", "target")})
    if not delta.exists(path):
        return empty
    events = delta.read(
        path, version, [PID, "scope", "target", "choice", "recorded_at", "loaded_at", "line"]
    )
    if events.num_rows == 0:
        return empty
    ordered = events.sort_by(
        [("recorded_at", "ascending"), ("loaded_at", "ascending"), ("line", "ascending")]
    )
    # Without threads, "last" follows the table's order: the latest event wins.
    latest = ordered.group_by([PID, "scope", "target"], use_threads=False).aggregate(
        [("choice", "last")]
    )
    standing = latest.filter(pc.equal(latest.column("choice_last"), Choice.OPT_OUT.value))
    return standing.select([PID, "scope", "target"])


# --- one place to ask --------------------------------------------------------------------


_EMPTY = pa.array([], pa.string())


@dataclass(frozen=True)
class Exclusions:
    """Which ``pid``s a project's data of one origin must exclude, rule by rule.

    ``rules`` are the rules that apply (in :data:`~sde.domain.optouts.RULES` order);
    ``versions`` the versions of the registers and choices table that were read."""

    terms: ExclusionTerms
    rules: tuple[Rule, ...]
    versions: Mapping[str, int]
    arrays: Mapping[str, pa.Array] = field(repr=False)

    @property
    def applied(self) -> tuple[str, ...]:
        return tuple(r.name for r in self.rules)

    def array(self, rule: str) -> pa.Array:
        """The distinct ``pid``s a rule excludes, as Arrow (empty if it does not apply)."""
        return self.arrays.get(rule, _EMPTY)

    def pids(self, rule: str) -> frozenset[str]:
        """The ``pid``s a rule excludes (empty if it does not apply)."""
        return frozenset(self.array(rule).to_pylist())

    def by_rule(self) -> dict[str, frozenset[str]]:
        return {name: self.pids(name) for name in self.applied}

    def counts(self) -> dict[str, int]:
        """Patients excluded by each applicable rule (a patient may count under several)."""
        return {name: len(self.array(name)) for name in self.applied}

    def excluded(self) -> pa.Array:
        """Every excluded ``pid``, once."""
        if not self.arrays:
            return _EMPTY
        joined = pa.chunked_array(list(self.arrays.values()), type=pa.string())
        return pc.unique(joined.combine_chunks())

    @property
    def total(self) -> int:
        return len(self.excluded())


@dataclass(frozen=True)
class OptOutSnapshot:
    """The registers and standing choices read once, at pinned versions, so every dataset
    of an extract is filtered against the same state."""

    registers: Mapping[str, pa.Array]
    choices: pa.Table
    versions: Mapping[str, int]

    def exclusions(self, terms: ExclusionTerms) -> Exclusions:
        rules = rules_for(terms)
        arrays: dict[str, pa.Array] = {}
        for rule in rules:
            if rule.register is not None:
                arrays[rule.name] = self.registers[rule.register]
            else:
                arrays[rule.name] = self._chosen(rule)
        return Exclusions(terms=terms, rules=rules, versions=self.versions, arrays=arrays)

    def _chosen(self, rule: Rule) -> pa.Array:
        assert rule.scope is not None
        mask = pc.equal(self.choices.column("scope"), rule.scope.value)
        if rule.targets is not None:
            targets = pa.array(sorted(rule.targets), pa.string())
            mask = pc.and_(mask, pc.is_in(self.choices.column("target"), value_set=targets))
        pids = self.choices.filter(mask).column(PID).combine_chunks()
        return pc.unique(pids).cast(pa.string())


def _register_pids(home: Home, register: str) -> tuple[pa.Array, int]:
    path = home.linked / register
    pinned = delta.version(path)
    if pinned is None:
        # Fail closed: an extract built without the register would ignore the opt-outs.
        raise InputError(
            f"the {register} register has not been ingested; import it with "
            f"`sde optout import` before building extracts"
        )
    pids = delta.read(path, pinned, [PID]).column(PID).combine_chunks()
    return pc.unique(pids).cast(pa.string()), pinned


def load_opt_outs(home: Home) -> OptOutSnapshot:
    """Read both NHS registers (refusing if either was never ingested) and the standing
    choices (none if no choice was ever recorded), pinning their versions."""
    registers: dict[str, pa.Array] = {}
    versions: dict[str, int] = {}
    for name in REGISTERS:
        registers[name], versions[name] = _register_pids(home, name)
    choices_version = delta.version(choices_path(home))
    if choices_version is not None:
        versions[CHOICES] = choices_version
    return OptOutSnapshot(
        registers=registers,
        choices=standing_opt_outs(home, choices_version),
        versions=versions,
    )


def exclusions(home: Home, terms: ExclusionTerms) -> Exclusions:
    """For a project's terms and a dataset origin: the ``pid``s each applicable opt-out
    rule excludes. Refuses if a register was never ingested."""
    return load_opt_outs(home).exclusions(terms)


@dataclass(frozen=True)
class OptOutSummary:
    """Counts only: patients on each register (``None``: never imported) and choices in
    force by scope."""

    registers: Mapping[str, int | None]
    versions: Mapping[str, int]
    choices_by_scope: Mapping[str, int]


def summary(home: Home) -> OptOutSummary:
    registers: dict[str, int | None] = {}
    versions: dict[str, int] = {}
    for name in REGISTERS:
        pinned = delta.version(home.linked / name)
        if pinned is None:
            registers[name] = None
            continue
        pids = delta.read(home.linked / name, pinned, [PID]).column(PID)
        registers[name] = len(pc.unique(pids.combine_chunks()))
        versions[name] = pinned
    choices_version = delta.version(choices_path(home))
    by_scope: dict[str, int] = {}
    if choices_version is not None:
        versions[CHOICES] = choices_version
        scopes = standing_opt_outs(home, choices_version).column("scope").to_pylist()
        by_scope = {s.value: scopes.count(s.value) for s in Scope}
    return OptOutSummary(registers=registers, versions=versions, choices_by_scope=by_scope)


def terms_for_project(project: Project, origin: str | None = None) -> ExclusionTerms:
    """The terms of an approved project as the opt-out rules read them."""
    return ExclusionTerms(
        project_id=project.id,
        purpose=project.purpose.value,
        national_opt_out_applies=project.national_opt_out_applies,
        sponsor_type=project.sponsor_type.value,
        sponsor_organisation=project.sponsor,
        origin=origin,
    )
