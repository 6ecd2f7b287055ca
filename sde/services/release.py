"""The airlock: release requests, automatic checks, independent blinded reviews, release.

Nothing leaves the environment except through :meth:`ReleaseService.publish`, and only
when the ``sde.egress`` policy says yes: every file's automatic checks passed, asked for a
human review, or failed a rule the researcher asked to except (never a blocking rule such
as row-level data); enough distinct approvals (from configuration, default 2), none of
them the author's; and the project's cumulative egress budget not exceeded. When the last
approval arrives the airlock publishes at once.

Reviews are per file (approve, request changes, reject, each with a comment) and blinded:
a checker sees the others' decisions only after submitting their own. Changing a file
resets the request's reviews.

The files are held in the control plane (with their SHA-256) from the moment they are
added; publication writes them, with ``sde-release.json`` (rules and parameters applied,
per-file and per-cell results, exceptions, reviewer decisions, checksums) and ACRO's
``results.json`` layout, to ``<lake>/egress/<request-id>/``.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import secrets
import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from sde.domain.audit import AuditEntry
from sde.domain.disclosure import CheckResult, CheckStatus
from sde.domain.governance import OrganisationBan
from sde.domain.policy import (
    EGRESS,
    OPEN_WORKSPACE,
    EgressBudget,
    PolicyEngine,
    ReleaseFileFacts,
    make_egress_input,
)
from sde.domain.projects import (
    ApprovedDataset,
    FileVote,
    Member,
    Person,
    PersonRole,
    Project,
    ReleaseFile,
    ReleaseRequest,
    Review,
)
from sde.domain.releases import (
    REVIEWABLE,
    Reviewer,
    ReviewVote,
    Status,
    Vote,
    check_can_transition,
    check_user_can_review,
    status_after_votes,
    vote_from_files,
)
from sde.domain.sdc.acro import acro_results
from sde.domain.sdc.airlock import BLOCKING, blocking_failures, cell_grid, check_output, worst
from sde.domain.sdc.appetite import RiskAppetite
from sde.domain.sdc.differencing import CountTable, count_table
from sde.domain.sdc.files import FileRules, kind_category, table_shape
from sde.errors import ConfigError, InputError, NotFound, PolicyDenied, StateError
from sde.services.access import decide_access
from sde.services.release_views import (
    CellView,
    FileDecisionView,
    FileView,
    QueueItem,
    RequestView,
    ReviewView,
)

Clock = Callable[[], dt.datetime]
ScanText = Callable[[str], Mapping[str, int]]
RECORD = "sde-release.json"
ACRO_RECORD = "results.json"
# Requests whose tables still count for differencing (released, or on their way).
LIVE = frozenset(
    {Status.SUBMITTED, Status.IN_REVIEW, Status.APPROVED, Status.RETURNED, Status.RELEASED}
)


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass(frozen=True)
class EgressLimits:
    """A project's cumulative egress budget: rows and cells of tables, over all releases.
    From ``egress_budget: {rows: N, cells: N}`` in config.yaml."""

    rows: int = 5_000
    cells: int = 50_000

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any] | None) -> EgressLimits:
        if data is None:
            return cls()
        if not isinstance(data, Mapping):
            raise ConfigError("the 'egress_budget' section of config.yaml must be a mapping")
        unknown = sorted(str(k) for k in data if k not in ("rows", "cells"))
        if unknown:
            raise ConfigError(f"unknown egress_budget settings: {', '.join(unknown)}")
        for key in ("rows", "cells"):
            value = data.get(key, 1)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ConfigError(f"egress_budget setting {key!r} must be a whole number")
        return cls(**{str(k): int(v) for k, v in data.items()})


class ReleaseStore(Protocol):
    """What the airlock needs from the control plane (``sde.adapters.sql.ControlPlane``)."""

    def get_person(self, person_id: str) -> Person: ...
    def get_project(self, project_id: str) -> Project: ...
    def list_members(self, project_id: str) -> list[Member]: ...
    def list_project_datasets(self, project_id: str) -> list[ApprovedDataset]: ...
    def get_organisation_ban(self, organisation: str | None) -> OrganisationBan | None: ...
    def get_release_request(self, request_id: str) -> ReleaseRequest: ...
    def list_release_requests(
        self, project_id: str | None = None, status: Status | None = None
    ) -> list[ReleaseRequest]: ...
    def create_release_request(self, request: ReleaseRequest, *, audit: AuditEntry) -> None: ...
    def set_release_status(
        self,
        request_id: str,
        status: Status,
        *,
        audit: AuditEntry,
        released_at: dt.datetime | None = None,
        comment: str | None = None,
    ) -> None: ...
    def list_release_files(self, request_id: str) -> list[ReleaseFile]: ...
    def get_release_file_content(self, request_id: str, name: str) -> bytes: ...
    def put_release_file(
        self,
        request_id: str,
        name: str,
        content: bytes,
        *,
        kind: str,
        checks: Sequence[Mapping[str, Any]] = (),
        metadata: Mapping[str, Any] | None = None,
        exception: str | None = None,
        description: str | None = None,
        audit: AuditEntry,
    ) -> ReleaseFile: ...
    def delete_release_file(self, request_id: str, name: str, *, audit: AuditEntry) -> None: ...
    def list_reviews(self, request_id: str) -> list[Review]: ...
    def add_review(self, review: Review, *, audit: AuditEntry) -> None: ...
    def clear_reviews(self, request_id: str, *, audit: AuditEntry) -> None: ...


@dataclass(frozen=True)
class OutputFile:
    """A file a researcher asks to release: its name, bytes and what it is (see
    ``docs/output-checking.md``)."""

    name: str
    content: bytes
    kind: str = "table"
    count_columns: tuple[str, ...] = ()
    metadata: Mapping[str, Any] | None = None
    exception: str | None = None
    description: str | None = None

    def normalised(self) -> OutputFile:
        exception = (self.exception or "").strip() or None
        metadata = dict(self.metadata or {})
        if self.count_columns:
            metadata.setdefault("count_columns", list(self.count_columns))
        return OutputFile(
            self.name,
            self.content,
            self.kind,
            self.count_columns,
            metadata,
            exception,
            (self.description or "").strip() or None,
        )


@dataclass(frozen=True)
class FileDecision:
    """One checker's decision on one file: approve, return (request changes) or reject."""

    decision: Vote
    comment: str | None = None


@dataclass(frozen=True)
class FileCheck:
    """The automatic results for one file, as the researcher and the checker see them."""

    name: str
    kind: str
    checks: tuple[CheckResult, ...]
    exception: str | None = None
    rows: int = 0
    cells: int = 0
    blocking: tuple[str, ...] = field(default_factory=tuple)

    @property
    def status(self) -> str:
        return worst([c.status.value for c in self.checks])

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "status": self.status,
            "checks": [c.to_json() for c in self.checks],
            "blocking": list(self.blocking),
            "exception": self.exception,
            "rows": self.rows,
            "cells": self.cells,
        }

    def summary(self) -> str:
        lines = [f"{self.name} ({self.kind}): {self.status}"]
        for c in self.checks:
            if c.status is not CheckStatus.PASS:
                lines.append(f"  {c.status.value:<6} {c.name}: {c.message}")
        if self.blocking:
            lines.append(f"  no exception can release this file ({', '.join(self.blocking)})")
        elif self.status == "fail" and self.exception is None:
            lines.append("  fix it, or ask for an exception with a justification")
        return "\n".join(lines)


def _shape(kind: str, content: bytes) -> tuple[int, int]:
    if kind_category(kind) != "table":
        return 0, 0
    shape = table_shape(content)
    if shape is None:
        return 0, 0
    rows, columns = shape
    return rows, rows * columns


class ReleaseService:
    def __init__(
        self,
        store: ReleaseStore,
        engine: PolicyEngine,
        *,
        egress_dir: Path,
        min_cell_count: int,
        approvals_required: int,
        appetite: RiskAppetite | None = None,
        file_rules: FileRules | None = None,
        budget: EgressLimits | None = None,
        scan_text: ScanText | None = None,
        clock: Clock = utc_now,
    ) -> None:
        self._store = store
        self._engine = engine
        self._egress = egress_dir
        base = appetite or RiskAppetite()
        if base.min_cell_count != min_cell_count:
            base = RiskAppetite(**{**base.to_json(), "min_cell_count": min_cell_count})
        self._appetite = base
        self._file_rules = file_rules or FileRules()
        self._budget = budget or EgressLimits()
        self._scan = scan_text
        self._approvals_required = approvals_required
        self._clock = clock

    @property
    def appetite(self) -> RiskAppetite:
        return self._appetite

    # --- automatic checks -----------------------------------------------------------------

    def _earlier_tables(self, project_id: str, exclude: str | None) -> list[CountTable]:
        """The project's tables of counts in released and pending requests."""
        tables: list[CountTable] = []
        for req in self._store.list_release_requests(project_id):
            if req.id == exclude or req.status not in LIVE:
                continue
            for f in self._store.list_release_files(req.id):
                if kind_category(f.kind) != "table":
                    continue
                table = count_table(
                    f.name,
                    req.id,
                    self._store.get_release_file_content(req.id, f.name),
                    kind=f.kind,
                    metadata=f.metadata,
                    count_columns=list(f.metadata.get("count_columns") or ()),
                )
                if table is not None:
                    tables.append(table)
        return tables

    def _check_all(
        self, project_id: str, files: Sequence[OutputFile], exclude: str | None = None
    ) -> list[FileCheck]:
        names = [f.name for f in files]
        if len(set(names)) != len(names):
            raise InputError("two files in one request have the same name")
        earlier = self._earlier_tables(project_id, exclude)
        checked: list[FileCheck] = []
        for file in files:
            others = [n for n in names if n != file.name]
            # Tables of the same request are compared with each other too.
            siblings = [
                t
                for other in files
                if other.name != file.name
                and (
                    t := count_table(
                        other.name,
                        "this request",
                        other.content,
                        kind=other.kind,
                        metadata=other.metadata,
                        count_columns=other.count_columns,
                    )
                )
                is not None
            ]
            results = check_output(
                file.name,
                file.content,
                kind=file.kind,
                metadata=file.metadata,
                count_columns=file.count_columns,
                other_names=others,
                appetite=self._appetite,
                file_rules=self._file_rules,
                earlier=[*earlier, *siblings],
                scan_text=self._scan,
            )
            rows, cells = _shape(file.kind, file.content)
            checked.append(
                FileCheck(
                    file.name,
                    file.kind,
                    tuple(results),
                    file.exception,
                    rows,
                    cells,
                    tuple(blocking_failures(results)),
                )
            )
        return checked

    def preview(self, project_id: str, author: str, files: Sequence[OutputFile]) -> list[FileCheck]:
        """The checks a request with these files would get; nothing is written."""
        self._require_member(project_id, author)
        return self._check_all(project_id, [f.normalised() for f in files])

    def _require_member(self, project_id: str, person: str) -> None:
        decide_access(
            self._store,
            self._engine,
            person_id=person,
            project_id=project_id,
            action=OPEN_WORKSPACE,
            today=self._clock().date(),
        ).require(f"release request by {person} for project {project_id}")

    def _put_files(
        self, request_id: str, author: str, files: Sequence[OutputFile], checked: list[FileCheck]
    ) -> None:
        subject = f"release:{request_id}"
        for file, result in zip(files, checked, strict=True):
            self._store.put_release_file(
                request_id,
                file.name,
                file.content,
                kind=file.kind,
                checks=[r.to_json() for r in result.checks],
                metadata=file.metadata,
                exception=file.exception,
                description=file.description,
                audit=AuditEntry(
                    author,
                    "release.add_file",
                    subject,
                    {
                        "file": file.name,
                        "checks": result.status,
                        "exception": file.exception is not None,
                    },
                ),
            )

    # --- researcher -----------------------------------------------------------------------

    def request(
        self,
        project_id: str,
        author: str,
        files: Sequence[OutputFile],
        *,
        title: str,
        comment: str | None = None,
    ) -> ReleaseRequest:
        """File a release request with its files, run the automatic checks, submit it."""
        if not files:
            raise InputError("a release request needs at least one file")
        if not title.strip():
            raise InputError("a release request needs a title")
        files = [f.normalised() for f in files]
        now = self._clock()
        self._require_member(project_id, author)
        request = ReleaseRequest(
            id=f"rr-{secrets.token_hex(6)}",
            project_id=project_id,
            author=author,
            status=Status.DRAFT,
            title=title,
            comment=comment,
            created_at=now,
            updated_at=now,
        )
        subject = f"release:{request.id}"
        # Check every file before writing anything, so a file the checks cannot read
        # never leaves a half-filed request behind.
        checked = self._check_all(project_id, files)
        self._store.create_release_request(
            request,
            audit=AuditEntry(author, "release.create", subject, {"project": project_id}),
        )
        self._put_files(request.id, author, files, checked)
        check_can_transition(request.status, Status.SUBMITTED)
        self._store.set_release_status(
            request.id,
            Status.SUBMITTED,
            audit=AuditEntry(author, "release.submit", subject, {"files": len(files)}),
        )
        return self._store.get_release_request(request.id)

    def resubmit(
        self,
        request_id: str,
        author: str,
        files: Sequence[OutputFile] = (),
        *,
        remove: Sequence[str] = (),
        comment: str | None = None,
    ) -> ReleaseRequest:
        """Answer a returned request: replace or add files, remove some, submit again.
        Every file is checked again and the previous round's reviews are cleared."""
        request = self._store.get_release_request(request_id)
        if request.author != author:
            raise PolicyDenied("resubmit", [f"only the author ({request.author}) can resubmit"])
        check_can_transition(request.status, Status.SUBMITTED)
        self._require_member(request.project_id, author)
        subject = f"release:{request_id}"
        current = {f.name: f for f in self._store.list_release_files(request_id)}
        unknown = sorted(set(remove) - set(current))
        if unknown:
            raise InputError(f"the request has no file(s) named {', '.join(unknown)}")
        new = {f.name: f.normalised() for f in files}
        kept = [
            OutputFile(
                f.name,
                self._store.get_release_file_content(request_id, f.name),
                f.kind,
                tuple(f.metadata.get("count_columns") or ()),
                f.metadata,
                f.exception,
                f.description,
            )
            for name, f in current.items()
            if name not in new and name not in remove
        ]
        everything = [*kept, *new.values()]
        if not everything:
            raise InputError("a release request needs at least one file")
        checked = self._check_all(request.project_id, everything, exclude=request_id)
        for name in remove:
            self._store.delete_release_file(
                request_id,
                name,
                audit=AuditEntry(author, "release.remove_file", subject, {"file": name}),
            )
        self._put_files(request_id, author, everything, checked)
        self._store.clear_reviews(
            request_id, audit=AuditEntry(author, "release.reviews_reset", subject, {})
        )
        self._store.set_release_status(
            request_id,
            Status.SUBMITTED,
            audit=AuditEntry(
                author,
                "release.resubmit",
                subject,
                {"files": len(everything), "comment": comment is not None},
            ),
            comment=(comment or "").strip() or None,
        )
        return self._store.get_release_request(request_id)

    def withdraw(self, request_id: str, author: str) -> None:
        request = self._store.get_release_request(request_id)
        if request.author != author:
            raise PolicyDenied("withdraw", [f"only the author ({request.author}) can withdraw"])
        check_can_transition(request.status, Status.WITHDRAWN)
        self._store.set_release_status(
            request_id,
            Status.WITHDRAWN,
            audit=AuditEntry(author, "release.withdraw", f"release:{request_id}", {}),
        )

    def checks(self, request_id: str) -> dict[str, list[dict[str, Any]]]:
        return {f.name: f.checks for f in self._store.list_release_files(request_id)}

    # --- output checker -------------------------------------------------------------------

    def _reviewer(self, reviewer_id: str) -> Reviewer:
        person = self._store.get_person(reviewer_id)
        return Reviewer(person.id, frozenset(r.value for r in person.roles))

    def review(
        self,
        request_id: str,
        reviewer_id: str,
        decisions: Vote | Mapping[str, FileDecision],
        comment: str | None = None,
    ) -> Status:
        """Record one checker's review: a decision on every file (a single ``Vote``
        applies to all). Moves the request on when the reviews decide it, and releases it
        at once when it becomes approved and the egress policy allows."""
        request = self._store.get_release_request(request_id)
        status = self._project_status(request.project_id)
        if status != "approved":
            # The kill switch: a suspended (or closed) project's requests are frozen.
            raise StateError(
                f"project {request.project_id} is {status or 'unknown'}: its release "
                "requests are frozen"
            )
        try:
            check_user_can_review(self._reviewer(reviewer_id), request.author, request.status)
        except PolicyDenied as refused:
            # A refused review (the author's own, or not a checker's) is recorded, as a
            # refused publication is: the status stays, the event carries the reasons.
            self._store.set_release_status(
                request_id,
                request.status,
                audit=AuditEntry(
                    reviewer_id,
                    "release.review_refused",
                    f"release:{request_id}",
                    {"reasons": list(refused.reasons)},
                ),
            )
            raise
        names = [f.name for f in self._store.list_release_files(request_id)]
        if isinstance(decisions, Vote):
            per_file = {name: FileDecision(decisions, comment) for name in names}
        else:
            per_file = dict(decisions)
        vote = vote_from_files({n: d.decision for n, d in per_file.items()}, names)
        subject = f"release:{request_id}"
        now = self._clock()
        self._store.add_review(
            Review(
                request_id,
                reviewer_id,
                vote,
                comment,
                now,
                {n: FileVote(d.decision, d.comment) for n, d in per_file.items()},
            ),
            audit=AuditEntry(
                reviewer_id,
                "release.review",
                subject,
                {
                    "decision": vote.value,
                    "files": {n: d.decision.value for n, d in sorted(per_file.items())},
                },
            ),
        )
        status = request.status
        if status is Status.SUBMITTED:
            self._store.set_release_status(
                request_id,
                Status.IN_REVIEW,
                audit=AuditEntry(reviewer_id, "release.in_review", subject, {}),
            )
            status = Status.IN_REVIEW
        votes = [ReviewVote(r.reviewer, r.decision) for r in self._store.list_reviews(request_id)]
        after = status_after_votes(votes, request.author, self._approvals_required)
        if after is not status:
            check_can_transition(status, after)
            self._store.set_release_status(
                request_id,
                after,
                audit=AuditEntry(
                    reviewer_id, f"release.{after.value}", subject, {"votes": len(votes)}
                ),
            )
        if after is Status.APPROVED:
            try:
                self.publish(request_id, reviewer_id)
            except PolicyDenied:
                return Status.APPROVED  # the refusal is in the audit chain; it waits
            return Status.RELEASED
        return after

    # --- views ----------------------------------------------------------------------------

    def _is_checker(self, person_id: str) -> bool:
        try:
            person = self._store.get_person(person_id)
        except NotFound:
            return False
        return PersonRole.OUTPUT_CHECKER in person.roles

    def queue(self, viewer_id: str) -> list[QueueItem]:
        """Requests the viewer may see: for an output checker, every request still open
        or recently decided; for anyone else, their own."""
        checker = self._is_checker(viewer_id)
        items = []
        for req in self._store.list_release_requests():
            if not checker and req.author != viewer_id:
                continue
            files = self._store.list_release_files(req.id)
            reviews = self._store.list_reviews(req.id)
            items.append(
                QueueItem(
                    id=req.id,
                    project_id=req.project_id,
                    title=req.title,
                    author=req.author,
                    status=req.status.value,
                    created_at=req.created_at,
                    files=len(files),
                    worst_status=worst(
                        [worst([str(c.get("status")) for c in f.checks]) for f in files]
                    ),
                    exceptions=sum(1 for f in files if f.exception),
                    reviews_received=len(reviews),
                    viewer_has_reviewed=any(r.reviewer == viewer_id for r in reviews),
                    viewer_is_author=req.author == viewer_id,
                )
            )
        order = {s: i for i, s in enumerate([Status.SUBMITTED, Status.IN_REVIEW])}
        items.sort(key=lambda i: (order.get(Status(i.status), 9), i.created_at), reverse=False)
        return items

    def view(self, request_id: str, viewer_id: str) -> RequestView:
        """A request as the viewer may see it (output checkers and the author only)."""
        request = self._store.get_release_request(request_id)
        is_author = request.author == viewer_id
        if not is_author and not self._is_checker(viewer_id):
            raise PolicyDenied(
                f"view {request_id}", ["only output checkers and the author see a request"]
            )
        files = self._store.list_release_files(request_id)
        reviews = self._store.list_reviews(request_id)
        mine = next((r for r in reviews if r.reviewer == viewer_id), None)
        decided = request.status not in REVIEWABLE
        others: tuple[ReviewView, ...] | None = None
        if mine is not None or (is_author and decided):
            others = tuple(_review_view(r) for r in reviews if r.reviewer != viewer_id)
        why: str | None = None
        try:
            check_user_can_review(self._reviewer(viewer_id), request.author, request.status)
            if mine is not None:
                why = "you have already reviewed this request"
            elif self._project_status(request.project_id) != "approved":
                why = f"project {request.project_id} is not approved: its requests are frozen"
        except (PolicyDenied, StateError) as exc:
            why = str(exc.reasons[0]) if isinstance(exc, PolicyDenied) else str(exc)
        file_views = tuple(self._file_view(request_id, f) for f in files)
        blocked: list[str] = []
        if is_author or decided:
            blocked = self._blocked_reasons(request, file_views, reviews)
        return RequestView(
            id=request.id,
            project_id=request.project_id,
            title=request.title,
            author=request.author,
            status=request.status.value,
            comment=request.comment,
            created_at=request.created_at,
            updated_at=request.updated_at,
            approvals_required=self._approvals_required,
            files=file_views,
            viewer=viewer_id,
            viewer_is_author=is_author,
            can_review=why is None,
            why_cannot_review=why,
            my_review=_review_view(mine) if mine is not None else None,
            other_reviews=others,
            reviews_received=len(reviews),
            blocked_reasons=tuple(blocked),
            released_at=request.released_at,
        )

    def file_content(self, request_id: str, name: str, viewer_id: str) -> tuple[str, bytes]:
        """A file's kind and bytes, for output checkers and the author only."""
        request = self._store.get_release_request(request_id)
        if request.author != viewer_id and not self._is_checker(viewer_id):
            raise PolicyDenied(
                f"file of {request_id}", ["only output checkers and the author see its files"]
            )
        kinds = {f.name: f.kind for f in self._store.list_release_files(request_id)}
        if name not in kinds:
            raise NotFound(f"no file {name!r} in release request {request_id!r}")
        return kinds[name], self._store.get_release_file_content(request_id, name)

    def _file_view(self, request_id: str, f: ReleaseFile) -> FileView:
        content = self._store.get_release_file_content(request_id, f.name)
        category = kind_category(f.kind)
        grid = cell_grid(
            content,
            kind=f.kind,
            metadata=f.metadata,
            count_columns=list(f.metadata.get("count_columns") or ()),
            appetite=self._appetite,
            checks=f.checks,
        )
        text: str | None = None
        if category in ("text", "code"):
            text = content.decode("utf-8", errors="replace")
        failed = sorted(
            {
                str(c.get("name"))
                for c in f.checks
                if c.get("name") in BLOCKING and c.get("status") != "pass"
            }
        )
        return FileView(
            name=f.name,
            kind=f.kind,
            sha256=f.sha256,
            size_bytes=f.size_bytes,
            status=worst([str(c.get("status")) for c in f.checks]),
            checks=tuple(f.checks),
            blocking=tuple(failed),
            exception=f.exception,
            description=f.description,
            grid=None
            if grid is None
            else tuple(tuple(CellView(t, r, st) for t, r, st in row) for row in grid),
            text=text,
            is_image=category == "figure",
            figure_table=str(f.metadata["table"]) if "table" in f.metadata else None,
        )

    def _blocked_reasons(
        self, request: ReleaseRequest, files: Sequence[FileView], reviews: Sequence[Review]
    ) -> list[str]:
        reasons: list[str] = []
        for f in files:
            for c in f.checks:
                name, status = str(c.get("name")), str(c.get("status"))
                if status == "pass":
                    continue
                if name in BLOCKING:
                    reasons.append(
                        f"{f.name}: {name} - {c.get('message')} (no exception can release this)"
                    )
                elif status == "fail" and not f.exception:
                    reasons.append(
                        f"{f.name}: {name} - {c.get('message')} (fix it, or ask for an "
                        "exception with a justification)"
                    )
        if request.status in (Status.RETURNED, Status.REJECTED):
            for r in reviews:
                for name, vote in r.files.items():
                    if vote.decision is not Vote.APPROVE:
                        said = f": {vote.comment}" if vote.comment else ""
                        reasons.append(f"{name}: a checker voted {vote.decision.value}{said}")
                if r.comment and r.decision is not Vote.APPROVE:
                    reasons.append(f"a checker's comment: {r.comment}")
        if request.status is Status.APPROVED:
            decision = self._engine.decide(EGRESS, self.egress_decision_input(request.id))
            reasons.extend(decision.reasons)
        return reasons

    # --- release --------------------------------------------------------------------------

    def budget_used(self, project_id: str) -> tuple[int, int]:
        """Rows and cells of tables the project has released so far."""
        rows = cells = 0
        for req in self._store.list_release_requests(project_id, Status.RELEASED):
            for f in self._store.list_release_files(req.id):
                r, c = _shape(f.kind, self._store.get_release_file_content(req.id, f.name))
                rows += r
                cells += c
        return rows, cells

    def egress_decision_input(self, request_id: str) -> dict[str, object]:
        request = self._store.get_release_request(request_id)
        files = []
        for f in self._store.list_release_files(request_id):
            rows, cells = _shape(f.kind, self._store.get_release_file_content(request_id, f.name))
            files.append(
                ReleaseFileFacts(
                    name=f.name,
                    sha256=f.sha256,
                    checks={str(c["name"]): str(c["status"]) for c in f.checks},
                    exception=bool(f.exception),
                    rows=rows,
                    cells=cells,
                )
            )
        rows_used, cells_used = self.budget_used(request.project_id)
        return make_egress_input(
            request_id=request.id,
            author=request.author,
            status=request.status.value,
            files=files,
            reviews=[(r.reviewer, r.decision.value) for r in self._store.list_reviews(request_id)],
            approvals_required=self._approvals_required,
            project_status=self._project_status(request.project_id),
            budget=EgressBudget(
                rows_limit=self._budget.rows,
                cells_limit=self._budget.cells,
                rows_used=rows_used,
                cells_used=cells_used,
            ),
        )

    def _project_status(self, project_id: str) -> str | None:
        try:
            return self._store.get_project(project_id).status.value
        except NotFound:
            return None

    def release_record(
        self, request_id: str, *, released_at: dt.datetime, released_by: str
    ) -> dict[str, Any]:
        """``sde-release.json``: everything that was decided, bound to the files by checksum."""
        request = self._store.get_release_request(request_id)
        files = self._store.list_release_files(request_id)
        reviews = self._store.list_reviews(request_id)
        return {
            "format": "sde-release/1",
            "request": request_id,
            "project": request.project_id,
            "title": request.title,
            "comment": request.comment,
            "author": request.author,
            "created_at": request.created_at.isoformat(timespec="seconds"),
            "released_at": released_at.isoformat(timespec="seconds"),
            "released_by": released_by,
            "policy": {"package": EGRESS, "allow": True},
            "approvals_required": self._approvals_required,
            "rules": {
                "risk_appetite": self._appetite.to_json(),
                "files": self._file_rules.to_json(),
                "blocking": sorted(BLOCKING),
                "egress_budget": {"rows": self._budget.rows, "cells": self._budget.cells},
            },
            "reviews": [
                {
                    "reviewer": r.reviewer,
                    "decision": r.decision.value,
                    "comment": r.comment,
                    "at": r.created_at.isoformat(timespec="seconds"),
                    "files": {
                        name: {"decision": v.decision.value, "comment": v.comment}
                        for name, v in sorted(r.files.items())
                    },
                }
                for r in reviews
            ],
            "files": [
                {
                    "name": f.name,
                    "sha256": f.sha256,
                    "size_bytes": f.size_bytes,
                    "kind": f.kind,
                    "status": worst([str(c.get("status")) for c in f.checks]),
                    "checks": f.checks,
                    "cells": list(f.metadata.get("cells") or []),
                    "statistics": list(f.metadata.get("statistics") or []),
                    "exception": f.exception,
                    "description": f.description,
                }
                for f in files
            ],
        }

    def acro_record(self, request_id: str) -> dict[str, Any]:
        """The automatic results in ACRO's ``results.json`` layout (for the SACRO viewer)."""
        request = self._store.get_release_request(request_id)
        files = self._store.list_release_files(request_id)
        return acro_results(
            {
                "id": request.id,
                "project_id": request.project_id,
                "author": request.author,
                "title": request.title,
                "status": request.status.value,
                "created_at": request.created_at.isoformat(timespec="seconds"),
                "files": [
                    {
                        "name": f.name,
                        "kind": f.kind,
                        "checks": f.checks,
                        "metadata": f.metadata,
                        "exception": f.exception,
                        "description": f.description,
                        "content": self._store.get_release_file_content(request_id, f.name)
                        if kind_category(f.kind) == "table"
                        else None,
                    }
                    for f in files
                ],
            }
        )

    def publish(self, request_id: str, actor: str) -> Path:
        """Release the request's files to the egress zone, if the policy allows."""
        request = self._store.get_release_request(request_id)
        subject = f"release:{request_id}"
        decision = self._engine.decide(EGRESS, self.egress_decision_input(request_id))
        if not decision.allow:
            # The refusal is itself a decision worth recording.
            self._store.set_release_status(
                request_id,
                request.status,
                audit=AuditEntry(
                    actor, "release.publish_refused", subject, {"reasons": list(decision.reasons)}
                ),
            )
            raise PolicyDenied(f"release of {request_id}", list(decision.reasons))
        check_can_transition(request.status, Status.RELEASED)
        target = self._egress / request_id
        if target.exists():
            raise StateError(f"{request_id} has already been written to the egress zone")
        staging = self._egress / f".{request_id}.staging"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        files = self._store.list_release_files(request_id)
        released_at = self._clock()
        try:
            for f in files:
                (staging / f.name).write_bytes(
                    self._store.get_release_file_content(request_id, f.name)
                )
            record = self.release_record(request_id, released_at=released_at, released_by=actor)
            (staging / RECORD).write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
            (staging / ACRO_RECORD).write_text(
                json.dumps(self.acro_record(request_id), indent=2, sort_keys=True) + "\n"
            )
            # The SACRO viewer checks each file against checksums/<name>.txt.
            (staging / "checksums").mkdir()
            for f in files:
                (staging / "checksums" / f"{f.name}.txt").write_text(f.sha256)
            os.replace(staging, target)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        try:
            self._store.set_release_status(
                request_id,
                Status.RELEASED,
                released_at=released_at,
                audit=AuditEntry(
                    actor,
                    "release.publish",
                    subject,
                    {"files": {f.name: f.sha256 for f in files}},
                ),
            )
        except BaseException:
            shutil.rmtree(target, ignore_errors=True)
            raise
        return target


def _review_view(review: Review) -> ReviewView:
    return ReviewView(
        reviewer=review.reviewer,
        decision=review.decision.value,
        comment=review.comment,
        at=review.created_at,
        files=tuple(
            FileDecisionView(name, vote.decision.value, vote.comment)
            for name, vote in sorted(review.files.items())
        ),
    )
