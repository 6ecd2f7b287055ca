"""A patient's record history: where their record is, which projects' extracts included
it, what those projects released, and the patient's current choices.

Everything is computed from the NHS number the patient gives, at the moment they ask:

1. the number is checked (ten digits, Modulus 11; never repeated in a message);
2. ``pid`` is recomputed with the linkage key (:class:`LinkagePseudonymiser`);
3. each Delta table of the linked zone with a ``pid`` column is filtered on it (dataset
   name and row count only);
4. for each project with an extract, the project pseudonym of ``pid`` (``patient_id``,
   :class:`ProjectPseudonymiser` with that project's key, as
   :mod:`sde.services.extract` computes it) is looked for in every version of every
   extract table (Delta time travel), so a record left out by a later refresh still shows
   as used before;
5. a project whose latest extract left the record out although the source held it is
   explained by the opt-out rules in force when that extract was built (the registers
   and choices at the versions pinned in its manifest);
6. the registers (national data opt-out, type 1) and the patient's standing choices are
   read from the linked zone.

No NHS number is stored anywhere: not here, not in the audit log. The result holds no
``pid`` or project pseudonym either, only what the patient may be told.

Every lookup is audited as ``patient.history.viewed`` (a refused number as
``patient.history.refused``). The audit subject is ``patient:`` followed by 16 hex
characters of an HMAC of ``pid`` under a key of its own (HKDF label
``sde/v1/audit/patient``): the same patient's lookups can be linked to each other (to
answer "who looked at my record history?", or to notice repeated look-ups), but the
subject cannot be turned back into ``pid`` or an NHS number, nor matched against the
linked zone, without the master key. The details hold the channel only (``letter``,
``page``), never what was found.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads
from deltalake.exceptions import DeltaError

from sde.adapters import delta, lake_files
from sde.adapters.delta import Location
from sde.domain import nhs_number as nhs
from sde.domain.datasets import PID
from sde.domain.optouts import (
    NATIONAL,
    REGISTERS,
    RULE_DESCRIPTIONS,
    TYPE1,
    Choice,
    Scope,
)
from sde.domain.projects import Project, ReleaseFile, ReleaseRequest
from sde.domain.pseudonyms import LinkagePseudonymiser, ProjectPseudonymiser, hkdf_sha256
from sde.domain.releases import Status
from sde.errors import InputError, NotFound
from sde.services.extract import PATIENT_ID, ExtractManifest, extract_dir, read_manifest
from sde.services.home import Home
from sde.services.ingest import SIGN_IN_TABLE, load_spec, shipped_datasets
from sde.services.optouts import (
    CHOICES,
    OptOutSnapshot,
    choices_path,
    standing_opt_outs,
    terms_for_project,
)
from sde.services.ports import AuditSink

VIEWED = "patient.history.viewed"
REFUSED = "patient.history.refused"
AUDIT_INFO = b"sde/v1/audit/patient"
AUDIT_SUBJECT_HEX = 16
REFUSED_SUBJECT = "patient:not-identified"
NHS_NUMBER_RULE = (
    "an NHS number is ten digits, the last being the Modulus 11 check digit of the first nine"
)
CHANNELS = frozenset({"letter", "page"})

SCOPE_WORDS: dict[str, str] = {
    Scope.RESEARCH.value: "No use of your record for research",
    Scope.PLANNING.value: "No use of your record for planning health services",
    Scope.COMMERCIAL.value: "No use of your record by projects with a commercial sponsor",
    Scope.ORGANISATION.value: "No use of your record by this organisation",
    Scope.PROJECT.value: "No use of your record by this project",
}


class PatientStore(Protocol):
    """What a record history reads from the control plane
    (``sde.adapters.sql.ControlPlane``)."""

    def list_projects(self) -> list[Project]: ...

    def list_release_requests(
        self, project_id: str | None = None, status: Status | None = None
    ) -> list[ReleaseRequest]: ...

    def list_release_files(self, request_id: str) -> list[ReleaseFile]: ...


# --- the model ---------------------------------------------------------------------------


@dataclass(frozen=True)
class DatasetHolding:
    """A linked dataset that holds the patient's record."""

    name: str
    title: str
    rows: int


@dataclass(frozen=True)
class ReleasedFile:
    """One released file of a project (a result of analysis; never row-level data)."""

    request_id: str
    name: str
    released_at: str
    sha256: str


@dataclass(frozen=True)
class ProjectUse:
    """A project whose extract included the patient's record (now, or before a refresh)."""

    project_id: str
    title: str
    sponsor: str
    sponsor_type: str
    purpose: str
    status: str
    start_date: str | None
    end_date: str | None
    extract_built_at: str
    """When the project's latest extract was built (or refreshed)."""
    first_included_at: str
    """When an extract first included the record."""
    in_latest_extract: bool
    datasets: tuple[str, ...]
    """The extract's tables that held the record (at any version)."""
    releases: tuple[ReleasedFile, ...]
    withheld_by: tuple[str, ...] = ()
    """When the latest extract left the record out: the rules that did (descriptions)."""


@dataclass(frozen=True)
class ProjectWithheld:
    """A project whose extract never included the record although a dataset it was
    approved for holds it: the opt-out rules in force when the extract was built say why
    (empty: not for an opt-out, e.g. the record was added to the dataset later)."""

    project_id: str
    title: str
    sponsor: str
    purpose: str
    extract_built_at: str
    withheld_by: tuple[str, ...]


@dataclass(frozen=True)
class CurrentChoice:
    """One of the patient's standing opt-outs."""

    scope: str
    target: str
    recorded_at: str
    words: str


@dataclass(frozen=True)
class RecordHistory:
    """What the patient may see, computed at ``generated_at``. No identifier of any kind."""

    generated_at: str
    datasets: tuple[DatasetHolding, ...]
    projects: tuple[ProjectUse, ...]
    withheld: tuple[ProjectWithheld, ...]
    national_opt_out: bool | None
    """On the national data opt-out register; None if the register was never imported."""
    type1_opt_out: bool | None
    """On the type 1 opt-out register; None if the register was never imported."""
    choices: tuple[CurrentChoice, ...]

    @property
    def has_record(self) -> bool:
        return bool(self.datasets)


# --- identifiers -------------------------------------------------------------------------


def audit_subject(master_key: bytes, pid: str) -> str:
    """The audit subject naming a patient: ``patient:`` + 16 hex of a keyed HMAC of pid
    (its own HKDF key), so the log links a patient's look-ups without holding ``pid``."""
    key = hkdf_sha256(master_key, AUDIT_INFO)
    mac = hmac.new(key, pid.encode("ascii"), hashlib.sha256).hexdigest()
    return "patient:" + mac[:AUDIT_SUBJECT_HEX]


def check_nhs_number(raw: str) -> str:
    """The ten digits of a valid NHS number; :class:`InputError` naming the rule (never
    the value) otherwise."""
    digits = nhs.normalise(raw)
    if digits is None or not nhs.is_valid_digits(digits):
        raise InputError(f"the NHS number given is not valid: {NHS_NUMBER_RULE}")
    return digits


# --- reading -----------------------------------------------------------------------------


def _iso(value: dt.date | dt.datetime | None) -> str | None:
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).isoformat(timespec="seconds")
    return value.isoformat()


def _rows_for(dataset: pads.Dataset, column: str, value: str) -> int:
    return int(dataset.count_rows(filter=pc.field(column) == value))


def _dataset_title(name: str, shipped: Sequence[str]) -> str:
    return load_spec(name).title if name in shipped else name


NOT_DATASETS = frozenset({*REGISTERS, CHOICES, SIGN_IN_TABLE})
"""Tables of the linked zone that are not datasets: the opt-out registers, patients'
choices and their sign-in checks."""


def linked_holdings(home: Home, pid: str) -> tuple[DatasetHolding, ...]:
    """Every linked dataset (a Delta table with a ``pid`` column, not an opt-out register
    or the choices table) with the number of rows of ``pid``, where there are any."""
    shipped = shipped_datasets()
    held: list[DatasetHolding] = []
    for name in lake_files.list_tables(home.linked):
        if name in NOT_DATASETS:
            continue
        ds = delta.dataset(home.linked / name)
        if PID not in ds.schema.names:
            continue
        rows = _rows_for(ds, PID, pid)
        if rows:
            held.append(DatasetHolding(name, _dataset_title(name, shipped), rows))
    return tuple(held)


def _on_register(home: Home, register: str, pid: str) -> bool | None:
    path = home.linked / register
    if not delta.exists(path):
        return None
    return _rows_for(delta.dataset(path), PID, pid) > 0


def current_choices(home: Home, pid: str) -> tuple[CurrentChoice, ...]:
    """The patient's standing opt-outs: per ``(scope, target)`` the latest event (by
    ``recorded_at``, then load order, as :func:`sde.services.optouts.standing_opt_outs`
    decides), where it is an opt-out."""
    path = choices_path(home)
    if not delta.exists(path):
        return ()
    events = delta.dataset(path).to_table(
        columns=["scope", "target", "choice", "recorded_at", "loaded_at", "line"],
        filter=pc.field(PID) == pid,
    )
    ordered = events.sort_by(
        [("recorded_at", "ascending"), ("loaded_at", "ascending"), ("line", "ascending")]
    )
    latest: dict[tuple[str, str], tuple[str, dt.datetime]] = {}
    for row in ordered.to_pylist():
        latest[(row["scope"], row["target"])] = (row["choice"], row["recorded_at"])
    out = [
        CurrentChoice(scope, target, _iso(when) or "", SCOPE_WORDS.get(scope, scope))
        for (scope, target), (choice, when) in latest.items()
        if choice == Choice.OPT_OUT.value
    ]
    return tuple(sorted(out, key=lambda c: ([s.value for s in Scope].index(c.scope), c.target)))


def _pinned_opt_outs(home: Home, versions: Mapping[str, int]) -> OptOutSnapshot:
    """The registers and standing choices as an extract read them (its pinned versions)."""
    registers: dict[str, pa.Array] = {}
    for name in REGISTERS:
        if name in versions:
            registers[name] = delta.read(home.linked / name, versions[name], [PID]).column(PID)
        else:
            registers[name] = pa.array([], pa.string())
    choices = standing_opt_outs(home, versions[CHOICES]) if CHOICES in versions else None
    if choices is None:
        choices = pa.table({n: pa.array([], pa.string()) for n in (PID, "scope", "target")})
    return OptOutSnapshot(registers=registers, choices=choices, versions=dict(versions))


def _withheld_by(
    home: Home, project: Project, manifest: ExtractManifest, pid: str, origins: Mapping[str, str]
) -> tuple[str, ...]:
    """The rules (descriptions) that removed ``pid`` from any table of the extract."""
    snapshot = _pinned_opt_outs(home, manifest.opt_out_versions)
    names: list[str] = []
    for dataset in sorted(manifest.tables):
        exclusions = snapshot.exclusions(terms_for_project(project, origins.get(dataset)))
        for rule in exclusions.applied:
            if rule not in names and pc.any(pc.equal(exclusions.array(rule), pid)).as_py():
                names.append(rule)
    return tuple(RULE_DESCRIPTIONS.get(n, n) for n in names)


def _source_held(home: Home, manifest: ExtractManifest, pid: str) -> bool:
    for name, table in manifest.tables.items():
        path = home.linked / name
        if delta.exists(path) and _rows_for(delta.dataset(path, table.source_version), PID, pid):
            return True
    return False


def _versions(path: Location, latest: int) -> list[tuple[int, str]]:
    """(version, commit time) of a table up to ``latest``, oldest first."""
    out: list[tuple[int, str]] = []
    for commit in delta.history(path):
        version = int(commit["version"])
        if version > latest:
            continue
        stamp = commit.get("timestamp")
        when = (
            dt.datetime.fromtimestamp(stamp / 1000, dt.UTC).isoformat(timespec="seconds")
            if isinstance(stamp, int | float)
            else ""
        )
        out.append((version, when))
    return sorted(out)


def _version_holds(path: Location, version: int, pseudonym: str) -> bool:
    """Whether an extract table held the pseudonym at ``version``; False for a version
    whose files were vacuumed (its use can no longer be shown; see docs/patients.md)."""
    try:
        return _rows_for(delta.dataset(path, version), PATIENT_ID, pseudonym) > 0
    except (OSError, DeltaError, pa.ArrowException):
        if version == delta.version(path):
            raise  # the latest version must be readable: fail closed
        return False


def _released_files(store: PatientStore, project_id: str) -> tuple[ReleasedFile, ...]:
    files: list[ReleasedFile] = []
    for request in store.list_release_requests(project_id, Status.RELEASED):
        released_at = _iso(request.released_at) or ""
        files.extend(
            ReleasedFile(request.id, f.name, released_at, f.sha256)
            for f in store.list_release_files(request.id)
        )
    return tuple(sorted(files, key=lambda f: (f.released_at, f.request_id, f.name)))


def _origins() -> dict[str, str]:
    return {name: load_spec(name).origin.value for name in shipped_datasets()}


def project_uses(
    home: Home, store: PatientStore, pid: str
) -> tuple[tuple[ProjectUse, ...], tuple[ProjectWithheld, ...]]:
    """Projects whose extract included ``pid`` (at any version), and projects whose
    extract never did although a dataset it extracts held the record."""
    master = home.master_key()
    origins = _origins()
    used: list[ProjectUse] = []
    withheld: list[ProjectWithheld] = []
    for project in sorted(store.list_projects(), key=lambda p: p.id):
        try:
            manifest = read_manifest(home, project.id)
        except NotFound:
            continue
        pseudonym = ProjectPseudonymiser(master, project.id).pseudonym(pid)
        folder = extract_dir(home, project.id)
        first: str | None = None
        tables: list[str] = []
        in_latest = False
        for name, table in sorted(manifest.tables.items()):
            path = folder / name
            if not delta.exists(path):
                continue
            for version, when in _versions(path, table.version):
                if _version_holds(path, version, pseudonym):
                    if name not in tables:
                        tables.append(name)
                    first = when if first is None else min(first, when)
                    if version == table.version:
                        in_latest = True
        if tables:
            used.append(
                ProjectUse(
                    project_id=project.id,
                    title=project.title,
                    sponsor=project.sponsor,
                    sponsor_type=project.sponsor_type.value,
                    purpose=project.purpose.value,
                    status=project.status.value,
                    start_date=_iso(project.start_date),
                    end_date=_iso(project.end_date),
                    extract_built_at=manifest.built_at,
                    first_included_at=first or "",
                    in_latest_extract=in_latest,
                    datasets=tuple(tables),
                    releases=_released_files(store, project.id),
                    withheld_by=()
                    if in_latest
                    else _withheld_by(home, project, manifest, pid, origins),
                )
            )
        elif _source_held(home, manifest, pid):
            withheld.append(
                ProjectWithheld(
                    project_id=project.id,
                    title=project.title,
                    sponsor=project.sponsor,
                    purpose=project.purpose.value,
                    extract_built_at=manifest.built_at,
                    withheld_by=_withheld_by(home, project, manifest, pid, origins),
                )
            )
    return tuple(used), tuple(withheld)


def record_history(
    home: Home,
    store: PatientStore,
    nhs_number: str,
    *,
    actor: str,
    audit: AuditSink,
    channel: str = "letter",
    now: dt.datetime | None = None,
) -> RecordHistory:
    """The patient's record history, from their NHS number. Audited (``actor`` is who
    asked: an operator answering a letter, or the patient's own sign-in). An invalid
    number is refused (audited as refused, without the value)."""
    if channel not in CHANNELS:
        raise InputError(f"channel must be one of {', '.join(sorted(CHANNELS))}")
    try:
        digits = check_nhs_number(nhs_number)
    except InputError:
        audit.record(actor, REFUSED, REFUSED_SUBJECT, {"channel": channel, "rule": "modulus_11"})
        raise
    master = home.master_key()
    pid = LinkagePseudonymiser(master).pid(digits)
    return history_for_pid(home, store, pid, actor=actor, audit=audit, channel=channel, now=now)


def history_for_pid(
    home: Home,
    store: PatientStore,
    pid: str,
    *,
    actor: str,
    audit: AuditSink,
    channel: str,
    now: dt.datetime | None = None,
) -> RecordHistory:
    """The record history of ``pid`` (the patient's own page holds ``pid`` for a signed-in
    patient, never the NHS number). Audited as :func:`record_history` is."""
    if channel not in CHANNELS:
        raise InputError(f"channel must be one of {', '.join(sorted(CHANNELS))}")
    master = home.master_key()
    projects, withheld = project_uses(home, store, pid)
    history = RecordHistory(
        generated_at=_iso(now or dt.datetime.now(dt.UTC)) or "",
        datasets=linked_holdings(home, pid),
        projects=projects,
        withheld=withheld,
        national_opt_out=_on_register(home, NATIONAL, pid),
        type1_opt_out=_on_register(home, TYPE1, pid),
        choices=current_choices(home, pid),
    )
    audit.record(actor, VIEWED, audit_subject(master, pid), {"channel": channel})
    return history
