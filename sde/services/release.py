"""The airlock: release requests, automatic checks, independent reviews, publication.

Nothing leaves the environment except through :meth:`ReleaseService.publish`, and only
when the ``sde.egress`` policy says yes: every automatic check passed, enough distinct
approvals (from configuration, default 2), none of them the author's.

The files are held in the control plane (with their SHA-256) from the moment they are
added; publication writes them, with a machine-readable ``release.json`` record of checks,
reviews and checksums, to ``<lake>/egress/<request-id>/``.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import os
import secrets
import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from sde.domain.audit import AuditEntry
from sde.domain.disclosure import CheckResult, CheckStatus, check_frequency_table, overall
from sde.domain.governance import OrganisationBan
from sde.domain.policy import (
    EGRESS,
    OPEN_WORKSPACE,
    PolicyEngine,
    ReleaseFileFacts,
    make_egress_input,
)
from sde.domain.projects import (
    ApprovedDataset,
    Member,
    Person,
    Project,
    ReleaseFile,
    ReleaseRequest,
    Review,
)
from sde.domain.releases import (
    Reviewer,
    ReviewVote,
    Status,
    Vote,
    check_can_transition,
    check_user_can_review,
    status_after_votes,
)
from sde.errors import InputError, NotFound, PolicyDenied, StateError
from sde.services.access import decide_access

Clock = Callable[[], dt.datetime]
ALLOWED_SUFFIXES = frozenset({".csv"})
MAX_FILE_BYTES = 5 * 1024 * 1024
RECORD = "release.json"


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class ReleaseStore(Protocol):
    """What the airlock needs from the control plane (``sde.adapters.sql.ControlPlane``)."""

    def get_person(self, person_id: str) -> Person: ...
    def get_project(self, project_id: str) -> Project: ...
    def list_members(self, project_id: str) -> list[Member]: ...
    def list_project_datasets(self, project_id: str) -> list[ApprovedDataset]: ...
    def get_organisation_ban(self, organisation: str | None) -> OrganisationBan | None: ...
    def get_release_request(self, request_id: str) -> ReleaseRequest: ...
    def create_release_request(self, request: ReleaseRequest, *, audit: AuditEntry) -> None: ...
    def set_release_status(
        self,
        request_id: str,
        status: Status,
        *,
        audit: AuditEntry,
        released_at: dt.datetime | None = None,
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
        audit: AuditEntry,
    ) -> ReleaseFile: ...
    def list_reviews(self, request_id: str) -> list[Review]: ...
    def add_review(self, review: Review, *, audit: AuditEntry) -> None: ...


@dataclass(frozen=True)
class OutputFile:
    """A file a researcher asks to release: its name, bytes and what it is."""

    name: str
    content: bytes
    kind: str = "frequency_table"
    count_columns: tuple[str, ...] = ()


def check_output(file: OutputFile, min_cell_count: int) -> list[CheckResult]:
    """The automatic checks for one file. Pure: the same checks run in the notebook
    before submission and in the airlock."""
    results: list[CheckResult] = []
    suffix = Path(file.name).suffix.lower()
    if suffix not in ALLOWED_SUFFIXES or Path(file.name).name != file.name:
        return [
            CheckResult(
                "file_type",
                CheckStatus.FAIL,
                f"only {', '.join(sorted(ALLOWED_SUFFIXES))} files with a plain name can be "
                "released for now",
            )
        ]
    if len(file.content) > MAX_FILE_BYTES:
        return [
            CheckResult(
                "file_size",
                CheckStatus.FAIL,
                f"the file is larger than the limit of {MAX_FILE_BYTES} bytes",
            )
        ]
    results.append(CheckResult("file_type", CheckStatus.PASS, "CSV table"))
    try:
        text = file.content.decode("utf-8")
        rows = list(csv.reader(io.StringIO(text)))
    except (UnicodeDecodeError, csv.Error):
        return [*results, CheckResult("readable", CheckStatus.FAIL, "not a UTF-8 CSV table")]
    if not rows:
        return [*results, CheckResult("readable", CheckStatus.FAIL, "the table is empty")]
    if file.kind != "frequency_table":
        return [
            *results,
            CheckResult(
                "kind",
                CheckStatus.FAIL,
                f"outputs of kind {file.kind!r} cannot be checked automatically yet",
            ),
        ]
    header, body = rows[0], rows[1:]
    results.extend(check_frequency_table(header, body, min_cell_count, file.count_columns or None))
    return results


class ReleaseService:
    def __init__(
        self,
        store: ReleaseStore,
        engine: PolicyEngine,
        *,
        egress_dir: Path,
        min_cell_count: int,
        approvals_required: int,
        clock: Clock = utc_now,
    ) -> None:
        self._store = store
        self._engine = engine
        self._egress = egress_dir
        self._min_cell_count = min_cell_count
        self._approvals_required = approvals_required
        self._clock = clock

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
        names = [f.name for f in files]
        if len(set(names)) != len(names):
            raise InputError("two files in one request have the same name")
        now = self._clock()
        decide_access(
            self._store,
            self._engine,
            person_id=author,
            project_id=project_id,
            action=OPEN_WORKSPACE,
            today=now.date(),
        ).require(f"release request by {author} for project {project_id}")
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
        checked = [(file, check_output(file, self._min_cell_count)) for file in files]
        self._store.create_release_request(
            request,
            audit=AuditEntry(author, "release.create", subject, {"project": project_id}),
        )
        for file, results in checked:
            self._store.put_release_file(
                request.id,
                file.name,
                file.content,
                kind=file.kind,
                checks=[r.to_json() for r in results],
                metadata={"count_columns": list(file.count_columns)},
                audit=AuditEntry(
                    author,
                    "release.add_file",
                    subject,
                    {"file": file.name, "checks": overall(results).value},
                ),
            )
        check_can_transition(request.status, Status.SUBMITTED)
        self._store.set_release_status(
            request.id,
            Status.SUBMITTED,
            audit=AuditEntry(author, "release.submit", subject, {"files": len(files)}),
        )
        return self._store.get_release_request(request.id)

    def checks(self, request_id: str) -> dict[str, list[dict[str, Any]]]:
        return {f.name: f.checks for f in self._store.list_release_files(request_id)}

    # --- output checker -------------------------------------------------------------------

    def review(
        self, request_id: str, reviewer_id: str, decision: Vote, comment: str | None = None
    ) -> Status:
        """Record one checker's vote; move the request on when the votes decide it."""
        request = self._store.get_release_request(request_id)
        status = self._project_status(request.project_id)
        if status != "approved":
            # The kill switch: a suspended (or closed) project's requests are frozen.
            raise StateError(
                f"project {request.project_id} is {status or 'unknown'}: its release "
                "requests are frozen"
            )
        person = self._store.get_person(reviewer_id)
        check_user_can_review(
            Reviewer(person.id, frozenset(r.value for r in person.roles)),
            request.author,
            request.status,
        )
        subject = f"release:{request_id}"
        now = self._clock()
        self._store.add_review(
            Review(request_id, reviewer_id, decision, comment, now),
            audit=AuditEntry(reviewer_id, "release.review", subject, {"decision": decision.value}),
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
        return after

    # --- release --------------------------------------------------------------------------

    def egress_decision_input(self, request_id: str) -> dict[str, object]:
        request = self._store.get_release_request(request_id)
        files = [
            ReleaseFileFacts(
                name=f.name,
                sha256=f.sha256,
                checks={str(c["name"]): str(c["status"]) for c in f.checks},
            )
            for f in self._store.list_release_files(request_id)
        ]
        return make_egress_input(
            request_id=request.id,
            author=request.author,
            status=request.status.value,
            files=files,
            reviews=[(r.reviewer, r.decision.value) for r in self._store.list_reviews(request_id)],
            approvals_required=self._approvals_required,
            project_status=self._project_status(request.project_id),
        )

    def _project_status(self, project_id: str) -> str | None:
        try:
            return self._store.get_project(project_id).status.value
        except NotFound:
            return None

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
        reviews = self._store.list_reviews(request_id)
        released_at = self._clock()
        try:
            for f in files:
                (staging / f.name).write_bytes(
                    self._store.get_release_file_content(request_id, f.name)
                )
            record = {
                "request": request_id,
                "project": request.project_id,
                "title": request.title,
                "author": request.author,
                "released_at": released_at.isoformat(timespec="seconds"),
                "released_by": actor,
                "policy": {"package": EGRESS, "allow": True},
                "approvals_required": self._approvals_required,
                "reviews": [
                    {
                        "reviewer": r.reviewer,
                        "decision": r.decision.value,
                        "at": r.created_at.isoformat(timespec="seconds"),
                    }
                    for r in reviews
                ],
                "files": [
                    {
                        "name": f.name,
                        "sha256": f.sha256,
                        "size_bytes": f.size_bytes,
                        "kind": f.kind,
                        "checks": f.checks,
                    }
                    for f in files
                ],
            }
            (staging / RECORD).write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
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
