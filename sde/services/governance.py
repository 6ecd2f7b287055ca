"""Governance use cases: publish an application for comment, public comments, conflicts of
interest, board votes, the board's decision through the ``sde.project`` policy, bans of
people and organisations, and the kill switch (suspend, resume, close).

Every change is written with its audit event in one transaction by the store
(``sde.adapters.sql.ControlPlane``). Free text (comments, reasons, declared interests) is
kept with the application in the control plane; the audit log records its SHA-256 and
length, never the text itself.

The kill switch reaches running things through hooks: the workspace layer registers a
callback with :func:`on_suspend` (and :func:`on_ban`), and a suspension calls every
callback with the project's id once the suspension is recorded. A suspended project's
access (``sde.access``: workspaces and extract refreshes) and releases (``sde.egress``)
are refused by the policies from the moment the status changes, hooks or not.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Protocol

from sde.domain.audit import AuditEntry
from sde.domain.governance import (
    DEFAULT_COMMENT_PERIOD_DAYS,
    DEFAULT_MIN_BOARD_VOTES,
    MAX_COMMENT,
    BoardVote,
    BoardVoteDecision,
    ConflictOfInterest,
    OrganisationBan,
    PublicComment,
    check_ban,
    check_can_ban,
    check_can_change_status,
    check_can_comment,
    check_can_declare_conflict,
    check_can_publish,
    check_can_reject,
    check_can_vote,
    check_reason,
    comment_period_end,
    conflicts_of,
    effective_ban_until,
    organisation_key,
    policy_rules,
    rules_markdown,
    transitions_markdown,
)
from sde.domain.policy import PROJECT, BoardVoteFacts, Decision, PolicyEngine, make_project_input
from sde.domain.projects import (
    ApprovedDataset,
    BoardKind,
    Member,
    Person,
    PersonRole,
    Project,
    ProjectStatus,
    ReleaseRequest,
    check_can_approve,
    check_text,
)
from sde.domain.releases import TERMINAL
from sde.errors import ConfigError, InputError, NotFound, PolicyDenied, StateError

Clock = Callable[[], datetime]
SuspendHook = Callable[[str], None]
BanHook = Callable[[str], None]


def utc_now() -> datetime:
    return datetime.now(UTC)


# --- hooks the workspace layer registers -------------------------------------------------

_hooks_lock = threading.Lock()
_suspend_hooks: list[SuspendHook] = []
_ban_hooks: list[BanHook] = []


def on_suspend(callback: SuspendHook) -> SuspendHook:
    """Register ``callback(project_id)``, called when a project is suspended or closed
    (to stop its running sessions). Returns the callback, so it works as a decorator."""
    with _hooks_lock:
        if callback not in _suspend_hooks:
            _suspend_hooks.append(callback)
    return callback


def on_ban(callback: BanHook) -> BanHook:
    """Register ``callback(person_id)``, called for each person a ban takes effect on."""
    with _hooks_lock:
        if callback not in _ban_hooks:
            _ban_hooks.append(callback)
    return callback


def remove_hook(callback: Callable[[str], None]) -> None:
    """Unregister a callback given to :func:`on_suspend` or :func:`on_ban`."""
    with _hooks_lock:
        for hooks in (_suspend_hooks, _ban_hooks):
            while callback in hooks:
                hooks.remove(callback)


def _call_hooks(hooks: list[Callable[[str], None]], subject: str) -> list[str]:
    """Call every hook, whatever the others do; the names of those that failed."""
    with _hooks_lock:
        current = list(hooks)
    failed: list[str] = []
    for hook in current:
        try:
            hook(subject)
        except Exception:  # one hook failing must not stop the others
            failed.append(getattr(hook, "__qualname__", type(hook).__name__))
    return failed


# --- ports and settings -------------------------------------------------------------------


class GovernanceStore(Protocol):
    """What governance needs from the control plane (``sde.adapters.sql.ControlPlane``)."""

    def get_person(self, person_id: str) -> Person: ...
    def list_people(self) -> list[Person]: ...
    def update_person(self, person: Person, *, audit: AuditEntry) -> None: ...
    def get_project(self, project_id: str) -> Project: ...
    def list_members(self, project_id: str) -> list[Member]: ...
    def list_project_datasets(self, project_id: str) -> list[ApprovedDataset]: ...
    def publish_project(
        self,
        project_id: str,
        *,
        published_at: datetime,
        comment_period_ends: datetime,
        audit: AuditEntry,
    ) -> None: ...
    def record_project_decision(
        self,
        project_id: str,
        status: ProjectStatus,
        *,
        decided_by: str,
        decided_at: datetime,
        reasons: Sequence[str] = (),
        audit: AuditEntry,
    ) -> None: ...
    def set_project_status(
        self,
        project_id: str,
        status: ProjectStatus,
        *,
        audit: AuditEntry,
        reason: str | None = None,
        expected: ProjectStatus | None = None,
    ) -> None: ...
    def list_public_comments(self, project_id: str) -> list[PublicComment]: ...
    def add_public_comment(self, comment: PublicComment, *, audit: AuditEntry) -> int: ...
    def list_conflicts(self, project_id: str) -> list[ConflictOfInterest]: ...
    def declare_conflict(self, conflict: ConflictOfInterest, *, audit: AuditEntry) -> None: ...
    def list_board_votes(self, project_id: str) -> list[BoardVote]: ...
    def cast_board_vote(self, vote: BoardVote, *, audit: AuditEntry) -> None: ...
    def list_organisation_bans(self) -> list[OrganisationBan]: ...
    def get_organisation_ban(self, organisation: str | None) -> OrganisationBan | None: ...
    def ban_organisation(self, ban: OrganisationBan, *, audit: AuditEntry) -> None: ...
    def lift_organisation_ban(self, key: str, *, audit: AuditEntry) -> None: ...
    def list_release_requests(self, project_id: str | None = None) -> list[ReleaseRequest]: ...


@dataclass(frozen=True)
class GovernanceSettings:
    """``comment_period_days`` (default 28) and ``min_board_votes`` (default 3) from
    ``config.yaml``."""

    comment_period_days: int = DEFAULT_COMMENT_PERIOD_DAYS
    min_board_votes: int = DEFAULT_MIN_BOARD_VOTES

    @classmethod
    def from_mapping(cls, extra: Mapping[str, Any]) -> GovernanceSettings:
        days = extra.get("comment_period_days", DEFAULT_COMMENT_PERIOD_DAYS)
        votes = extra.get("min_board_votes", DEFAULT_MIN_BOARD_VOTES)
        if isinstance(days, bool) or not isinstance(days, int) or days < 0:
            raise ConfigError("config setting 'comment_period_days' must be a whole number >= 0")
        if isinstance(votes, bool) or not isinstance(votes, int) or votes < 1:
            raise ConfigError("config setting 'min_board_votes' must be a whole number >= 1")
        return cls(days, votes)


@dataclass(frozen=True)
class VoteView:
    vote: BoardVote
    kind: BoardKind | None
    conflicts: tuple[str, ...]
    counts: bool


@dataclass(frozen=True)
class BoardView:
    """An application as the board sees it: votes (and whether each counts), declared
    conflicts, the public comments, and what the policy would answer now."""

    project: Project
    votes: list[VoteView]
    conflicts: list[ConflictOfInterest]
    comments: list[PublicComment]
    decision: Decision


@dataclass(frozen=True)
class Suspension:
    project: Project
    frozen_requests: list[str]
    failed_hooks: list[str]


def text_digest(text: str) -> dict[str, object]:
    """What the audit log keeps of free text: its SHA-256 and length."""
    return {"sha256": hashlib.sha256(text.encode("utf-8")).hexdigest(), "chars": len(text)}


class GovernanceService:
    def __init__(
        self,
        store: GovernanceStore,
        engine: PolicyEngine,
        settings: GovernanceSettings | None = None,
        clock: Clock = utc_now,
    ) -> None:
        self._store = store
        self._engine = engine
        self._settings = settings or GovernanceSettings()
        self._clock = clock

    def _person(self, person_id: str) -> Person | None:
        try:
            return self._store.get_person(person_id)
        except NotFound:
            return None

    def _banned_now(self, person: Person, now: datetime) -> bool:
        until = effective_ban_until(person, self._store.get_organisation_ban(person.organisation))
        return until is not None and until > now

    # --- publication and public comment ------------------------------------------------------

    def publish(self, actor: str, project_id: str) -> Project:
        """Publish a draft application for public comment for the configured period."""
        project = self._store.get_project(project_id)
        check_can_publish(project)
        now = self._clock()
        ends = comment_period_end(now, self._settings.comment_period_days)
        self._store.publish_project(
            project_id,
            published_at=now,
            comment_period_ends=ends,
            audit=AuditEntry(
                actor,
                "project.published",
                f"project:{project_id}",
                {
                    "comment_period_days": self._settings.comment_period_days,
                    "comment_period_ends": ends.isoformat(timespec="seconds"),
                },
            ),
        )
        return self._store.get_project(project_id)

    def comment(self, project_id: str, text: str, author: str | None = None) -> PublicComment:
        """Keep a public comment with an application open for comment."""
        check_text("a comment", text, limit=MAX_COMMENT, required=True)
        check_text("a commenter's name", author, limit=200)
        project = self._store.get_project(project_id)
        now = self._clock()
        check_can_comment(project, now)
        comment = PublicComment(project_id, None, author or None, text, now)
        number = self._store.add_public_comment(
            comment,
            audit=AuditEntry(
                "public",
                "project.commented",
                f"project:{project_id}",
                {"text": text_digest(text), "named": bool(author)},
            ),
        )
        return PublicComment(project_id, number, comment.author, text, now)

    def comments(self, project_id: str) -> list[PublicComment]:
        self._store.get_project(project_id)
        return self._store.list_public_comments(project_id)

    # --- the board --------------------------------------------------------------------------

    def declare_conflict(
        self, project_id: str, person_id: str, interest: str
    ) -> ConflictOfInterest:
        """A board member declares a conflict of interest: their vote will not count."""
        interest = check_reason("a declared conflict", interest)
        project = self._store.get_project(project_id)
        person = self._store.get_person(person_id)
        check_can_declare_conflict(project, person)
        conflict = ConflictOfInterest(project_id, person_id, interest, self._clock())
        self._store.declare_conflict(
            conflict,
            audit=AuditEntry(
                person_id,
                "board.conflict_declared",
                f"project:{project_id}",
                {"interest": text_digest(interest)},
            ),
        )
        return conflict

    def vote(self, project_id: str, voter_id: str, decision: str, reason: str) -> BoardVote:
        """A board member's vote, with its reason, once the comment period is over."""
        try:
            choice = BoardVoteDecision(decision)
        except ValueError:
            raise InputError(f"a vote is approve or reject, not {decision!r}") from None
        reason = check_reason("a vote", reason)
        project = self._store.get_project(project_id)
        voter = self._store.get_person(voter_id)
        now = self._clock()
        check_can_vote(project, voter, now)
        if self._banned_now(voter, now):
            raise PolicyDenied("vote", [f"the organisation of {voter_id} is banned"])
        vote = BoardVote(project_id, voter_id, choice, reason, now)
        self._store.cast_board_vote(
            vote,
            audit=AuditEntry(
                voter_id,
                "board.voted",
                f"project:{project_id}",
                {"decision": choice.value, "reason": text_digest(reason)},
            ),
        )
        return vote

    def _vote_views(self, project: Project, now: datetime) -> list[VoteView]:
        members = self._store.list_members(project.id)
        declared = self._store.list_conflicts(project.id)
        views: list[VoteView] = []
        for vote in self._store.list_board_votes(project.id):
            voter = self._person(vote.voter)
            if voter is None:
                views.append(VoteView(vote, None, (), False))
                continue
            conflicts = tuple(c.value for c in conflicts_of(voter, project, declared, members))
            counts = (
                PersonRole.BOARD_MEMBER in voter.roles
                and not self._banned_now(voter, now)
                and not conflicts
            )
            views.append(VoteView(vote, voter.board_kind, conflicts, counts))
        return views

    def decision_input(self, project_id: str) -> dict[str, object]:
        """The ``sde.project`` input for this application, now."""
        project = self._store.get_project(project_id)
        now = self._clock()
        return self._input(project, now)

    def _input(self, project: Project, now: datetime) -> dict[str, object]:
        datasets = {
            d.dataset: {c: bool((d.column_justifications.get(c) or "").strip()) for c in d.columns}
            for d in self._store.list_project_datasets(project.id)
        }
        votes: list[BoardVoteFacts] = []
        for view in self._vote_views(project, now):
            voter = self._person(view.vote.voter)
            votes.append(
                BoardVoteFacts(
                    voter=view.vote.voter,
                    decision=view.vote.decision.value,
                    board_member=voter is not None and PersonRole.BOARD_MEMBER in voter.roles,
                    kind=view.kind.value if view.kind is not None else None,
                    banned=voter is None or self._banned_now(voter, now),
                    conflicts=view.conflicts,
                )
            )
        sponsor_ban = self._store.get_organisation_ban(project.sponsor)
        return make_project_input(
            project_id=project.id,
            now=now,
            status=project.status.value,
            purpose=project.purpose.value,
            uses=project.uses,
            sponsor_type=project.sponsor_type.value,
            sponsor_banned=sponsor_ban is not None and sponsor_ban.banned_until > now,
            legal_basis=project.legal_basis_type.value if project.legal_basis_type else None,
            national_opt_out_applies=project.national_opt_out_applies,
            summary_given=bool((project.summary or "").strip()),
            public_benefit_given=bool((project.public_benefit or "").strip()),
            benefit_sharing_given=bool((project.benefit_sharing or "").strip()),
            exclusive_access=project.exclusive_access,
            start_date=project.start_date,
            end_date=project.end_date,
            comment_period_ends=project.comment_period_ends,
            datasets=datasets,
            votes=votes,
            min_votes=self._settings.min_board_votes,
        )

    def evaluate(self, project_id: str) -> Decision:
        """What the ``sde.project`` policy would answer now (changes nothing)."""
        return self._engine.decide(PROJECT, self.decision_input(project_id))

    def board(self, project_id: str) -> BoardView:
        project = self._store.get_project(project_id)
        now = self._clock()
        return BoardView(
            project=project,
            votes=self._vote_views(project, now),
            conflicts=self._store.list_conflicts(project_id),
            comments=self._store.list_public_comments(project_id),
            decision=self._engine.decide(PROJECT, self._input(project, now)),
        )

    def decide(self, project_id: str, decided_by: str) -> Project:
        """Record the board's approval, if the ``sde.project`` policy allows it now.

        ``decided_by`` (an unbanned board member or operator, not a member of the
        project) records it. A refusal raises ``PolicyDenied`` with the policy's reasons
        and changes nothing; a board that decided to refuse records it with :meth:`reject`.
        """
        project = self._store.get_project(project_id)
        decider = self._store.get_person(decided_by)
        members = self._store.list_members(project_id)
        now = self._clock()
        check_can_approve(project, decider, members, now)
        decision = self._engine.decide(PROJECT, self._input(project, now))
        decision.require(f"approve project {project_id}")
        votes = [v for v in self._vote_views(project, now) if v.counts]
        self._store.record_project_decision(
            project_id,
            ProjectStatus.APPROVED,
            decided_by=decided_by,
            decided_at=now,
            audit=AuditEntry(
                decided_by,
                "project.approved",
                f"project:{project_id}",
                {
                    "policy": PROJECT,
                    "previous_status": project.status.value,
                    "votes_counted": len(votes),
                    "approvals": sum(v.vote.decision is BoardVoteDecision.APPROVE for v in votes),
                    "members": len(members),
                    "datasets": sorted(
                        d.dataset for d in self._store.list_project_datasets(project_id)
                    ),
                },
            ),
        )
        return self._store.get_project(project_id)

    def reject(self, project_id: str, decided_by: str, reasons: Sequence[str]) -> Project:
        """Record the board's rejection; the reasons are kept with the application."""
        kept = [check_reason("a rejection", r) for r in reasons if r.strip()]
        project = self._store.get_project(project_id)
        decider = self._store.get_person(decided_by)
        members = self._store.list_members(project_id)
        now = self._clock()
        check_can_reject(project, decider, members, now, kept)
        self._store.record_project_decision(
            project_id,
            ProjectStatus.REJECTED,
            decided_by=decided_by,
            decided_at=now,
            reasons=kept,
            audit=AuditEntry(
                decided_by,
                "project.rejected",
                f"project:{project_id}",
                {"reasons": [text_digest(r) for r in kept]},
            ),
        )
        return self._store.get_project(project_id)

    # --- the kill switch --------------------------------------------------------------------

    def _change_status(
        self, actor: str, project_id: str, target: ProjectStatus, reason: str, action: str
    ) -> tuple[Project, Project]:
        reason = check_reason(f"making a project {target.value}", reason)
        project = self._store.get_project(project_id)
        person = self._store.get_person(actor)
        check_can_change_status(project, person, target, self._clock())
        self._store.set_project_status(
            project_id,
            target,
            reason=reason,
            expected=project.status,
            audit=AuditEntry(
                actor,
                action,
                f"project:{project_id}",
                {"previous_status": project.status.value, "reason": text_digest(reason)},
            ),
        )
        return project, self._store.get_project(project_id)

    def suspend(self, actor: str, project_id: str, reason: str) -> Suspension:
        """The kill switch: the project is suspended at once (workspaces, extract refreshes
        and releases are refused by policy from now), then every :func:`on_suspend` hook
        is called with the project's id."""
        _before, after = self._change_status(
            actor, project_id, ProjectStatus.SUSPENDED, reason, "project.suspended"
        )
        return Suspension(after, self._pending_requests(project_id), self._stop(project_id))

    def resume(self, actor: str, project_id: str, reason: str) -> Project:
        _before, after = self._change_status(
            actor, project_id, ProjectStatus.APPROVED, reason, "project.resumed"
        )
        return after

    def close(self, actor: str, project_id: str, reason: str) -> Suspension:
        """Close a project for good; its sessions are stopped as for a suspension."""
        _before, after = self._change_status(
            actor, project_id, ProjectStatus.CLOSED, reason, "project.closed"
        )
        return Suspension(after, self._pending_requests(project_id), self._stop(project_id))

    def _pending_requests(self, project_id: str) -> list[str]:
        return [
            r.id
            for r in self._store.list_release_requests(project_id=project_id)
            if r.status not in TERMINAL
        ]

    def _stop(self, project_id: str) -> list[str]:
        return _call_hooks(_suspend_hooks, project_id)

    # --- people and bans -------------------------------------------------------------------

    def set_board_kind(self, actor: str, person_id: str, kind: str | None) -> Person:
        """Record what a board member brings to the quorum (lay, clinical, data_protection)."""
        person = self._store.get_person(person_id)
        board_kind: BoardKind | None = None
        if kind is not None:
            try:
                board_kind = BoardKind(kind)
            except ValueError:
                choices = ", ".join(k.value for k in BoardKind)
                raise InputError(f"a board kind is one of {choices}, not {kind!r}") from None
            if PersonRole.BOARD_MEMBER not in person.roles:
                raise InputError(f"{person_id} is not a board member")
        updated = _replace(person, board_kind=board_kind)
        self._store.update_person(
            updated,
            audit=AuditEntry(
                actor,
                "person.board_kind_set",
                f"person:{person_id}",
                {"board_kind": kind},
            ),
        )
        return updated

    def ban_person(self, actor: str, person_id: str, *, until: date, reason: str) -> Person:
        """Ban a person through ``until`` (inclusive): every policy refuses them at once."""
        reason = check_reason("a ban", reason)
        now = self._clock()
        check_can_ban(self._store.get_person(actor), now)
        if actor == person_id:
            raise InputError("nobody bans themselves")
        person = self._store.get_person(person_id)
        banned_until = check_ban(until, now)
        updated = _replace(person, banned_until=banned_until, ban_reason=reason)
        self._store.update_person(
            updated,
            audit=AuditEntry(
                actor,
                "person.banned",
                f"person:{person_id}",
                {
                    "until": banned_until.isoformat(timespec="seconds"),
                    "reason": text_digest(reason),
                },
            ),
        )
        _call_hooks(_ban_hooks, person_id)
        return updated

    def lift_person_ban(self, actor: str, person_id: str) -> Person:
        now = self._clock()
        check_can_ban(self._store.get_person(actor), now)
        person = self._store.get_person(person_id)
        if person.banned_until is None:
            raise StateError(f"{person_id} is not banned")
        updated = _replace(person, banned_until=None, ban_reason=None)
        self._store.update_person(
            updated, audit=AuditEntry(actor, "person.ban_lifted", f"person:{person_id}", {})
        )
        return updated

    def ban_organisation(
        self, actor: str, organisation: str, *, until: date, reason: str
    ) -> OrganisationBan:
        """Ban everyone of ``organisation`` (and it as a sponsor) through ``until``."""
        reason = check_reason("a ban", reason)
        key = organisation_key(organisation)
        now = self._clock()
        check_can_ban(self._store.get_person(actor), now)
        ban = OrganisationBan(
            key, " ".join(organisation.split()), check_ban(until, now), reason, now, actor
        )
        self._store.ban_organisation(
            ban,
            audit=AuditEntry(
                actor,
                "organisation.banned",
                f"organisation:{key}"[:200],
                {
                    "until": ban.banned_until.isoformat(timespec="seconds"),
                    "reason": text_digest(reason),
                },
            ),
        )
        for person in self._store.list_people():
            if person.organisation and organisation_key(person.organisation) == key:
                _call_hooks(_ban_hooks, person.id)
        return ban

    def lift_organisation_ban(self, actor: str, organisation: str) -> None:
        key = organisation_key(organisation)
        check_can_ban(self._store.get_person(actor), self._clock())
        if self._store.get_organisation_ban(organisation) is None:
            raise StateError(f"organisation {organisation!r} is not banned")
        self._store.lift_organisation_ban(
            key, audit=AuditEntry(actor, "organisation.ban_lifted", f"organisation:{key}"[:200])
        )

    def organisation_bans(self) -> list[OrganisationBan]:
        return self._store.list_organisation_bans()


def _replace(person: Person, **changes: Any) -> Person:
    return replace(person, **changes)


# --- the generated part of docs/governance.md --------------------------------------------

GENERATED_BEGIN = "<!-- generated: python -m sde.services.governance -->"
GENERATED_END = "<!-- end of generated section -->"


CATALOGUE_PACKAGES = (
    ("project", "can the board approve this application"),
    ("access", "can this person do this action on this project now"),
    ("egress", "can this release request be released"),
    ("ingest", "is this dataset spec acceptable for this file"),
)


def governance_reference(policy_dir: Path) -> str:
    """The generated section of ``docs/governance.md``: every refusal rule of every
    policy package (from their ``# METADATA`` annotations) and the project statuses
    (from :data:`~sde.domain.governance.PROJECT_TRANSITIONS`)."""
    parts = [GENERATED_BEGIN, ""]
    for name, question in CATALOGUE_PACKAGES:
        source = (policy_dir / f"{name}.rego").read_text(encoding="utf-8")
        parts += [
            f"### Rules of `sde.{name}`: {question}",
            "",
            "Each rule is a reason the policy can give for refusing. Read from the",
            f"`# METADATA` annotations of `policies/{name}.rego`.",
            "",
            rules_markdown(policy_rules(source)),
        ]
    parts += [
        "### Project statuses",
        "",
        "From `sde.domain.governance.PROJECT_TRANSITIONS`.",
        "",
        transitions_markdown(),
        GENERATED_END,
    ]
    return "\n".join(parts)


if __name__ == "__main__":  # pragma: no cover
    from sde.adapters.rego_embedded import default_policy_dir

    print(governance_reference(default_policy_dir()))
