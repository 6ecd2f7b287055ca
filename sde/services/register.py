"""The public register: what the environment publishes about every project, data flow,
release and sanction, as plain values (``sde.register.render`` writes it as a site).

Everything here is already public, or is made safe to publish before it leaves this
module: counts are rounded (:mod:`sde.domain.publication`); released files are shown by
name, kind, checksum and the names of the checks they did not pass, never their contents
(except code files, which are published in full, as the code that produced an output is
meant to be); nothing of an unreleased request is read. From the audit log only these are
used: the times and table counts of ``extract.build`` events, the times of bans, lifted bans
and project status changes, and the chain's head (the checkpoint). Reasons come from the
control plane (the audit log keeps only their digests), so a reason is shown only for the
ban or status change that is current.

The register also keeps the **history of every checkpoint it published**
(:attr:`Register.history`): each build carries the previous build's history forward and adds
its own head when the head has moved. A history the new head contradicts (an event published
earlier is gone, or has another hash) means the log was rewritten: the build is refused
(:func:`extend_history`), naming the position.
"""

from __future__ import annotations

import dataclasses
import itertools
import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Protocol

from sde.domain.audit import AuditEvent, VerifyResult
from sde.domain.disclosure import CheckStatus
from sde.domain.governance import OrganisationBan
from sde.domain.optouts import RULE_DESCRIPTIONS
from sde.domain.projects import (
    ApprovedDataset,
    Person,
    Project,
    ProjectStatus,
    ReleaseFile,
    ReleaseRequest,
    SponsorType,
)
from sde.domain.publication import NOT_RECORDED, publishable_count
from sde.domain.releases import Status
from sde.errors import ConfigError, NotFound, StateError
from sde.services.audit import PublishedCheckpoint, checkpoint_problem
from sde.services.extract import ExtractManifest, read_manifest
from sde.services.home import Home

FORMAT = "sde-register/1"
EXTRACT_BUILD = "extract.build"
PERSON_BANNED = "person.banned"
PERSON_BAN_LIFTED = "person.ban_lifted"
ORGANISATION_BANNED = "organisation.banned"
STATUS_ACTIONS = {
    "project.suspended": "suspended",
    "project.resumed": "resumed",
    "project.closed": "closed",
}
_STATUS_AFTER = {
    "suspended": ProjectStatus.SUSPENDED,
    "resumed": ProjectStatus.APPROVED,
    "closed": ProjectStatus.CLOSED,
}
CODE_KIND = "code"
SAFE_FILE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,200}$")
_EVENT_PAGE = 5000

STATUS_WORDS: dict[str, str] = {
    ProjectStatus.DRAFT.value: "Application being written (draft)",
    ProjectStatus.PUBLISHED.value: "Open for public comment, awaiting decision",
    ProjectStatus.APPROVED.value: "Approved",
    ProjectStatus.REJECTED.value: "Rejected",
    ProjectStatus.SUSPENDED.value: "Suspended",
    ProjectStatus.CLOSED.value: "Closed",
}


class RegisterStore(Protocol):
    """What the register reads from the control plane (``sde.adapters.sql.ControlPlane``)."""

    def list_projects(self) -> list[Project]: ...

    def list_project_datasets(self, project_id: str) -> list[ApprovedDataset]: ...

    def list_release_requests(
        self, project_id: str | None = None, status: Status | None = None
    ) -> list[ReleaseRequest]: ...

    def list_release_files(self, request_id: str) -> list[ReleaseFile]: ...

    def get_release_file_content(self, request_id: str, name: str) -> bytes: ...

    def list_people(self) -> list[Person]: ...

    def list_organisation_bans(self) -> list[OrganisationBan]: ...


class AuditReader(Protocol):
    """The audit log, read (``sde.adapters.sql.SqlAuditLog``)."""

    def events(self, after_seq: int = 0, limit: int | None = None) -> list[AuditEvent]: ...

    def tail(self, limit: int) -> list[AuditEvent]: ...

    def event(self, seq: int) -> AuditEvent | None: ...

    def verify(self) -> VerifyResult: ...


ManifestReader = Callable[[str], ExtractManifest | None]
"""The latest extract manifest of a project, or None when it has no extract."""


# --- the model ---------------------------------------------------------------------------


@dataclass(frozen=True)
class DatasetEntry:
    name: str
    columns: tuple[str, ...]
    justification: str | None


@dataclass(frozen=True)
class ProjectEntry:
    id: str
    title: str
    status: str
    summary: str | None
    purpose: str
    sponsor: str
    sponsor_type: str
    legal_basis_type: str | None
    legal_basis: str | None
    national_opt_out_applies: bool
    datasets: tuple[DatasetEntry, ...]
    ai_ml_use: bool
    ai_ml_description: str | None
    public_benefit: str | None
    processors: tuple[str, ...]
    start_date: str | None
    end_date: str | None
    created_at: str
    published_at: str | None
    comment_period_ends: str | None
    decided_at: str | None
    decision_reasons: tuple[str, ...]
    status_reason: str | None
    status_changed_at: str | None
    benefit_sharing: str | None
    exclusive_access: bool

    @property
    def commercial(self) -> bool:
        return self.sponsor_type == SponsorType.COMMERCIAL.value

    @property
    def status_words(self) -> str:
        return STATUS_WORDS.get(self.status, self.status)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "title": self.title,
            "status": self.status,
            "summary": self.summary,
            "purpose": self.purpose,
            "sponsor": self.sponsor,
            "sponsor_type": self.sponsor_type,
            "legal_basis_type": self.legal_basis_type,
            "legal_basis": self.legal_basis,
            "national_opt_out_applies": self.national_opt_out_applies,
            "datasets": [
                {"name": d.name, "columns": list(d.columns), "justification": d.justification}
                for d in self.datasets
            ],
            "ai_ml_use": self.ai_ml_use,
            "ai_ml_description": self.ai_ml_description,
            "public_benefit": self.public_benefit,
            "processors": list(self.processors),
            "start_date": self.start_date,
            "end_date": self.end_date,
            "created_at": self.created_at,
            "published_at": self.published_at,
            "comment_period_ends": self.comment_period_ends,
            "decided_at": self.decided_at,
            "decision_reasons": list(self.decision_reasons),
            "status_reason": self.status_reason,
            "status_changed_at": self.status_changed_at,
            "value_exchange": (
                {
                    "benefit_sharing": self.benefit_sharing,
                    "exclusive_access": self.exclusive_access,
                }
                if self.commercial
                else None
            ),
        }


@dataclass(frozen=True)
class RuleRemoval:
    rule: str
    description: str
    patients: str
    """Rounded for publication (:func:`sde.domain.publication.publishable_count`)."""


@dataclass(frozen=True)
class FlowEntry:
    """One table of one extract build (the first build of a project, or a refresh)."""

    project_id: str
    kind: str  # "extract" or "refresh"
    at: str
    dataset: str
    rows: str
    patients_removed: str
    removed_by_rule: tuple[RuleRemoval, ...]
    source_version: int | None
    extract_version: int | None
    recorded_from: str  # "audit log" or "extract manifest"

    def to_json(self) -> dict[str, Any]:
        return {
            "project_id": self.project_id,
            "kind": self.kind,
            "at": self.at,
            "dataset": self.dataset,
            "rows": self.rows,
            "patients_removed_by_opt_out": self.patients_removed,
            "removed_by_rule": [
                {"rule": r.rule, "description": r.description, "patients": r.patients}
                for r in self.removed_by_rule
            ],
            "source_version": self.source_version,
            "extract_version": self.extract_version,
            "recorded_from": self.recorded_from,
        }


@dataclass(frozen=True)
class ReleasedFileEntry:
    name: str
    kind: str
    sha256: str
    size_bytes: int
    worst_status: str
    rules_not_passed: tuple[str, ...]
    with_exception: bool
    code_path: str | None
    """Where the register publishes the file (code files only), relative to its root."""

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "sha256": self.sha256,
            "size_bytes": self.size_bytes,
            "worst_check_status": self.worst_status,
            "checks_not_passed": list(self.rules_not_passed),
            "released_with_exception": self.with_exception,
            "published_code": self.code_path,
        }


@dataclass(frozen=True)
class ReleaseEntry:
    request_id: str
    project_id: str
    released_at: str
    files: tuple[ReleasedFileEntry, ...]

    @property
    def code_files(self) -> tuple[ReleasedFileEntry, ...]:
        return tuple(f for f in self.files if f.code_path is not None)

    def to_json(self) -> dict[str, Any]:
        return {
            "request_id": self.request_id,
            "project_id": self.project_id,
            "released_at": self.released_at,
            "files": [f.to_json() for f in self.files],
        }


@dataclass(frozen=True)
class PersonBanEntry:
    person_id: str
    organisation: str | None
    banned_at: str
    banned_until: str
    lifted_at: str | None
    reason: str | None

    def to_json(self) -> dict[str, Any]:
        return {
            "person_id": self.person_id,
            "organisation": self.organisation,
            "banned_at": self.banned_at,
            "banned_until": self.banned_until,
            "lifted_at": self.lifted_at,
            "reason": self.reason,
        }


@dataclass(frozen=True)
class OrganisationBanEntry:
    organisation: str
    banned_at: str
    banned_until: str
    reason: str

    def to_json(self) -> dict[str, Any]:
        return {
            "organisation": self.organisation,
            "banned_at": self.banned_at,
            "banned_until": self.banned_until,
            "reason": self.reason,
        }


@dataclass(frozen=True)
class StatusChangeEntry:
    project_id: str
    change: str  # suspended, resumed, closed
    at: str
    reason: str | None

    def to_json(self) -> dict[str, Any]:
        return {
            "project_id": self.project_id,
            "change": self.change,
            "at": self.at,
            "reason": self.reason,
        }


@dataclass(frozen=True)
class Checkpoint:
    """The head of the audit chain when the register was built."""

    events: int
    head_seq: int
    head_hash: str
    head_at: str | None

    def to_json(self) -> dict[str, Any]:
        return {
            "events": self.events,
            "head_seq": self.head_seq,
            "head_hash": self.head_hash,
            "head_at": self.head_at,
        }

    def published(self) -> PublishedCheckpoint | None:
        """This head as an entry of the checkpoint history (None for an empty log: there is
        no event to vouch for). Published at the time of the head event, so the same log
        always gives the same entry."""
        if self.head_seq == 0:
            return None
        return PublishedCheckpoint(self.head_seq, self.head_hash, self.head_at)


@dataclass(frozen=True)
class Register:
    projects: tuple[ProjectEntry, ...]
    flows: tuple[FlowEntry, ...]
    releases: tuple[ReleaseEntry, ...]
    person_bans: tuple[PersonBanEntry, ...]
    organisation_bans: tuple[OrganisationBanEntry, ...]
    status_changes: tuple[StatusChangeEntry, ...]
    checkpoint: Checkpoint
    code: Mapping[str, bytes] = field(default_factory=dict)
    """Published code files: path relative to the register's root → bytes."""
    history: tuple[PublishedCheckpoint, ...] = ()
    """Every checkpoint published so far, oldest first, ending with this build's
    (:func:`extend_history`; :func:`with_history` adds an earlier build's)."""

    def status_counts(self) -> list[tuple[str, str, int]]:
        """(status, words, number of projects) for every status, in lifecycle order."""
        counts = Counter(p.status for p in self.projects)
        return [(s.value, STATUS_WORDS[s.value], counts.get(s.value, 0)) for s in ProjectStatus]


# --- building it -------------------------------------------------------------------------


def _iso(value: datetime | date | None) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat(timespec="seconds")
    return value.isoformat()


def _text(value: str | None) -> str | None:
    stripped = (value or "").strip()
    return stripped or None


def project_entry(project: Project, datasets: Sequence[ApprovedDataset]) -> ProjectEntry:
    return ProjectEntry(
        id=project.id,
        title=project.title,
        status=project.status.value,
        summary=_text(project.summary),
        purpose=project.purpose.value,
        sponsor=project.sponsor,
        sponsor_type=project.sponsor_type.value,
        legal_basis_type=project.legal_basis_type.value if project.legal_basis_type else None,
        legal_basis=_text(project.legal_basis),
        national_opt_out_applies=project.national_opt_out_applies,
        datasets=tuple(
            DatasetEntry(d.dataset, tuple(d.columns), _text(d.justification))
            for d in sorted(datasets, key=lambda d: d.dataset)
        ),
        ai_ml_use=project.ai_ml_use,
        ai_ml_description=_text(project.ai_ml_description) if project.ai_ml_use else None,
        public_benefit=_text(project.public_benefit),
        processors=tuple(project.processors),
        start_date=_iso(project.start_date),
        end_date=_iso(project.end_date),
        created_at=_iso(project.created_at) or "",
        published_at=_iso(project.published_at),
        comment_period_ends=_iso(project.comment_period_ends),
        decided_at=_iso(project.decided_at),
        decision_reasons=tuple(project.decision_reasons),
        status_reason=_text(project.status_reason),
        status_changed_at=_iso(project.status_changed_at),
        benefit_sharing=_text(project.benefit_sharing),
        exclusive_access=project.exclusive_access,
    )


def _int_or_none(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _removals(by_rule: object) -> tuple[RuleRemoval, ...]:
    if not isinstance(by_rule, Mapping):
        return ()
    out = []
    for rule in sorted(str(r) for r in by_rule):
        counts = by_rule[rule]
        patients = _int_or_none(counts.get("patients")) if isinstance(counts, Mapping) else None
        out.append(
            RuleRemoval(rule, RULE_DESCRIPTIONS.get(rule, rule), publishable_count(patients))
        )
    return tuple(out)


def flows_from_events(events: Iterable[AuditEvent]) -> list[FlowEntry]:
    """One entry per table of every ``extract.build`` event: the first build of a
    project is its extract, each later one a refresh. Counts missing from an (older)
    event are shown as "not recorded"."""
    flows: list[FlowEntry] = []
    seen: set[str] = set()
    for event in sorted(events, key=lambda e: e.seq):
        if event.action != EXTRACT_BUILD:
            continue
        project_id = event.subject
        kind = "refresh" if project_id in seen else "extract"
        seen.add(project_id)
        tables = event.details.get("tables")
        if not isinstance(tables, Mapping):
            continue
        for dataset in sorted(str(t) for t in tables):
            t = tables[dataset]
            if not isinstance(t, Mapping):
                continue
            flows.append(
                FlowEntry(
                    project_id=project_id,
                    kind=kind,
                    at=event.at,
                    dataset=dataset,
                    rows=publishable_count(_int_or_none(t.get("rows"))),
                    patients_removed=publishable_count(
                        _int_or_none(t.get("patients_removed_by_opt_out"))
                    ),
                    removed_by_rule=_removals(t.get("removed_by_rule")),
                    source_version=_int_or_none(t.get("source_version")),
                    extract_version=_int_or_none(t.get("version")),
                    recorded_from="audit log",
                )
            )
    return flows


def flows_from_manifest(manifest: ExtractManifest) -> list[FlowEntry]:
    """The latest build of a project from its manifest (for an extract built without an
    audit event)."""
    return [
        FlowEntry(
            project_id=manifest.project_id,
            kind="extract",
            at=manifest.built_at,
            dataset=name,
            rows=publishable_count(t.rows_written),
            patients_removed=publishable_count(t.patients_removed_by_opt_out),
            removed_by_rule=_removals(t.removed_by_rule),
            source_version=t.source_version,
            extract_version=t.version,
            recorded_from="extract manifest",
        )
        for name, t in sorted(manifest.tables.items())
    ]


def worst_status(checks: Sequence[Mapping[str, Any]]) -> str:
    """The worst status of a file's automatic checks: fail, review or pass ("no checks"
    when none ran)."""
    statuses = {str(c.get("status")) for c in checks}
    if not checks:
        return "no checks"
    for status in (CheckStatus.FAIL, CheckStatus.REVIEW):
        if status.value in statuses:
            return status.value
    if statuses == {CheckStatus.PASS.value}:
        return CheckStatus.PASS.value
    return CheckStatus.FAIL.value  # an unknown status is not a pass


def released_file_entry(request_id: str, f: ReleaseFile) -> ReleasedFileEntry:
    not_passed = sorted(
        {str(c.get("name")) for c in f.checks if c.get("status") != CheckStatus.PASS.value}
    )
    publish_code = f.kind == CODE_KIND and SAFE_FILE_NAME.match(f.name) is not None
    return ReleasedFileEntry(
        name=f.name,
        kind=f.kind,
        sha256=f.sha256,
        size_bytes=f.size_bytes,
        worst_status=worst_status(f.checks),
        rules_not_passed=tuple(not_passed),
        with_exception=f.exception is not None,
        code_path=f"code/{request_id}/{f.name}" if publish_code else None,
    )


def _events(audit: AuditReader, actions: Iterable[str]) -> list[AuditEvent]:
    wanted = set(actions)
    found: list[AuditEvent] = []
    after = 0
    while True:
        page = audit.events(after_seq=after, limit=_EVENT_PAGE)
        if not page:
            return found
        found.extend(e for e in page if e.action in wanted)
        after = page[-1].seq


def _subject_id(subject: str, prefix: str) -> str | None:
    return subject[len(prefix) :] if subject.startswith(prefix) else None


def person_bans(people: Sequence[Person], events: Sequence[AuditEvent]) -> list[PersonBanEntry]:
    """Every ban of a person in the audit log, with when it was lifted; the reason of
    the ban in force (the audit log keeps only a digest of reasons)."""
    by_id = {p.id: p for p in people}
    bans: list[PersonBanEntry] = []
    open_ban: dict[str, int] = {}
    for event in sorted(events, key=lambda e: e.seq):
        person_id = _subject_id(event.subject, "person:")
        if person_id is None:
            continue
        if event.action == PERSON_BANNED:
            if person_id in open_ban:  # a new ban replaces the one in force
                i = open_ban[person_id]
                bans[i] = _replace_ban(bans[i], lifted_at=event.at)
            person = by_id.get(person_id)
            open_ban[person_id] = len(bans)
            bans.append(
                PersonBanEntry(
                    person_id=person_id,
                    organisation=person.organisation if person else None,
                    banned_at=event.at,
                    banned_until=str(event.details.get("until", NOT_RECORDED)),
                    lifted_at=None,
                    reason=None,
                )
            )
        elif event.action == PERSON_BAN_LIFTED and person_id in open_ban:
            i = open_ban.pop(person_id)
            bans[i] = _replace_ban(bans[i], lifted_at=event.at)
    for person_id, i in open_ban.items():
        person = by_id.get(person_id)
        if person is not None and person.banned_until is not None:
            bans[i] = _replace_ban(
                bans[i],
                banned_until=_iso(person.banned_until) or bans[i].banned_until,
                reason=_text(person.ban_reason),
            )
    return bans  # in the order of the audit log


def _replace_ban(ban: PersonBanEntry, **changes: Any) -> PersonBanEntry:
    values = ban.to_json()
    values.update(changes)
    return PersonBanEntry(**values)


def status_changes(
    projects: Sequence[Project], events: Sequence[AuditEvent]
) -> list[StatusChangeEntry]:
    """Every suspension, resumption and closure, with the reason of the latest one of a
    project when it is the project's current state."""
    by_id = {p.id: p for p in projects}
    changes: list[StatusChangeEntry] = []
    latest: dict[str, int] = {}
    for event in sorted(events, key=lambda e: e.seq):
        project_id = _subject_id(event.subject, "project:")
        change = STATUS_ACTIONS.get(event.action)
        if project_id is None or change is None:
            continue
        latest[project_id] = len(changes)
        changes.append(StatusChangeEntry(project_id, change, event.at, None))
    for project_id, i in latest.items():
        project = by_id.get(project_id)
        current = changes[i]
        if project is not None and project.status is _STATUS_AFTER[current.change]:
            changes[i] = StatusChangeEntry(
                project_id, current.change, current.at, _text(project.status_reason)
            )
    return changes  # in the order of the audit log


def checkpoint(audit: AuditReader) -> Checkpoint:
    """The head of the audit chain. Refuses a broken chain: the register must not vouch
    for a history that does not verify."""
    result = audit.verify()
    if not result.intact:
        raise StateError(
            f"the audit chain is broken at event {result.broken_seq}; run `sde audit verify`. "
            "The register was not built"
        )
    last = audit.tail(1)
    if last and last[0].hash != result.head_hash:  # pragma: no cover - written meanwhile
        raise StateError("the audit log changed while the register was being built; try again")
    return Checkpoint(
        events=result.events,
        head_seq=last[0].seq if last else 0,
        head_hash=result.head_hash,
        head_at=last[0].at if last else None,
    )


_NOT_BUILT = "The register was not built; run `sde audit verify`"


def check_history(history: Sequence[PublishedCheckpoint]) -> None:
    """A history runs oldest first, one checkpoint per event, no empty-log entries."""
    for i, (before, after) in enumerate(itertools.pairwise(history), start=2):
        if after.seq <= before.seq:
            raise StateError(
                f"the register's checkpoint history is out of order at entry {i} (event "
                f"{after.seq} after event {before.seq}); the register was not built"
            )
    if history and history[0].seq < 1:
        raise StateError(
            "the register's checkpoint history has an entry for event 0; the register was not built"
        )


def merge_histories(*histories: Sequence[PublishedCheckpoint]) -> tuple[PublishedCheckpoint, ...]:
    """One history from several (each checkpoint once, by seq, keeping the first time it
    was published). Two different hashes published for one event are refused."""
    by_seq: dict[int, PublishedCheckpoint] = {}
    for history in histories:
        check_history(history)
        for item in history:
            known = by_seq.get(item.seq)
            if known is None:
                by_seq[item.seq] = item
            elif known.hash != item.hash:
                raise StateError(
                    f"two different checkpoints were published for event {item.seq} "
                    f"({known.when} and {item.when}): the log was rewritten at or before "
                    f"event {item.seq}. {_NOT_BUILT}"
                )
    return tuple(by_seq[seq] for seq in sorted(by_seq))


def extend_history(
    previous: Sequence[PublishedCheckpoint], head: Checkpoint
) -> tuple[PublishedCheckpoint, ...]:
    """The history ``previous`` followed by ``head`` when the head has moved since.

    Refuses (:class:`~sde.errors.StateError`, naming the event) a head that contradicts a
    checkpoint published before: one behind it (events deleted from the end) or one at the
    same event with another hash (the log rewritten)."""
    check_history(previous)
    for item in previous:
        if item.seq > head.head_seq:
            raise StateError(
                f"event {item.seq} (published in checkpoint of {item.when}) is missing: the "
                f"log ends at event {head.head_seq} (events deleted from the end). {_NOT_BUILT}"
            )
        if item.seq == head.head_seq and item.hash != head.head_hash:
            raise StateError(
                f"event {item.seq} does not match the checkpoint published {item.when}: the "
                f"log was rewritten at or before event {item.seq}. {_NOT_BUILT}"
            )
    current = head.published()
    if current is None or (previous and previous[-1].seq == current.seq):
        return tuple(previous)
    return (*previous, current)


def with_history(register: Register, previous: Sequence[PublishedCheckpoint]) -> Register:
    """``register`` with an earlier build's checkpoint history carried forward (see
    :func:`extend_history`)."""
    extend_history(previous, register.checkpoint)  # refuses a contradicted history first
    merged = merge_histories(previous, register.history)
    return dataclasses.replace(register, history=extend_history(merged, register.checkpoint))


def build_register(
    store: RegisterStore,
    audit: AuditReader,
    manifests: ManifestReader,
    *,
    published: Sequence[PublishedCheckpoint] = (),
) -> Register:
    """The whole register, sorted so that building it twice gives the same result.

    ``published`` is the checkpoint history published so far (the previous build's): each
    checkpoint in it is checked against the log itself (the event must still be there with
    its hash), and refused with its position if not; the new head is added to it."""
    head = checkpoint(audit)
    for item in published:
        problem = checkpoint_problem(audit, item)
        if problem is not None:
            raise StateError(f"{problem}. {_NOT_BUILT}")
    history = extend_history(merge_histories(published), head)
    projects = sorted(store.list_projects(), key=lambda p: p.id)
    entries = tuple(project_entry(p, store.list_project_datasets(p.id)) for p in projects)

    events = _events(
        audit,
        [EXTRACT_BUILD, PERSON_BANNED, PERSON_BAN_LIFTED, ORGANISATION_BANNED, *STATUS_ACTIONS],
    )
    events = [e for e in events if e.seq <= head.head_seq]
    flows = flows_from_events(events)
    logged = {f.project_id for f in flows}
    for project in projects:
        if project.id in logged:
            continue
        manifest = manifests(project.id)
        if manifest is not None:
            flows.extend(flows_from_manifest(manifest))
    flows.sort(key=lambda f: (f.at, f.project_id, f.dataset))

    releases: list[ReleaseEntry] = []
    code: dict[str, bytes] = {}
    for request in store.list_release_requests(status=Status.RELEASED):
        files = tuple(
            released_file_entry(request.id, f) for f in store.list_release_files(request.id)
        )
        for f in files:
            if f.code_path is not None:
                code[f.code_path] = store.get_release_file_content(request.id, f.name)
        releases.append(
            ReleaseEntry(request.id, request.project_id, _iso(request.released_at) or "", files)
        )
    releases.sort(key=lambda r: (r.released_at, r.request_id))

    org_bans = sorted(
        (
            OrganisationBanEntry(
                b.organisation, _iso(b.banned_at) or "", _iso(b.banned_until) or "", b.reason
            )
            for b in store.list_organisation_bans()
        ),
        key=lambda b: (b.banned_at, b.organisation),
    )
    return Register(
        projects=entries,
        flows=tuple(flows),
        releases=tuple(releases),
        person_bans=tuple(person_bans(store.list_people(), events)),
        organisation_bans=tuple(org_bans),
        status_changes=tuple(status_changes(projects, events)),
        checkpoint=head,
        code=code,
        history=history,
    )


def register_folder(home: Home) -> Path:
    """Where the home's register is built and served: ``register_folder`` in config.yaml
    (a deployment puts it on persistent storage: it keeps every published checkpoint),
    else ``<home>/register``. A relative setting is relative to the home."""
    setting = home.settings.extra.get("register_folder")
    if setting is None:
        return home.root / "register"
    if not isinstance(setting, str) or not setting.strip():
        raise ConfigError("register_folder must be a path")
    folder = Path(setting)
    return folder if folder.is_absolute() else home.root / folder


def manifest_reader(home: Home) -> ManifestReader:
    """Reads each project's latest extract manifest from ``home`` (None when it has none)."""

    def read(project_id: str) -> ExtractManifest | None:
        try:
            return read_manifest(home, project_id)
        except NotFound:
            return None

    return read
