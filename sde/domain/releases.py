"""Release (airlock) request states and the rules that move between them.

Rules as data: ``TRANSITIONS`` is the whole state machine; ``docs/reference/release-states.md``
is generated from it (a test keeps the page current). Two layers of rules, each a pair:

- permissions (depend on the person): ``check_user_can_review`` raises, ``user_can_review``
  answers;
- policies (depend on the request's state): ``check_can_transition`` raises,
  ``can_transition`` answers.

The exception's message is the reason shown to the person, so one rule drives the
enforcement and the explanation.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

from sde.errors import InputError, PolicyDenied, StateError


class Status(StrEnum):
    DRAFT = "draft"
    SUBMITTED = "submitted"
    IN_REVIEW = "in_review"
    APPROVED = "approved"
    RELEASED = "released"
    RETURNED = "returned"
    REJECTED = "rejected"
    WITHDRAWN = "withdrawn"


class Vote(StrEnum):
    APPROVE = "approve"
    REJECT = "reject"
    RETURN = "return"


TRANSITIONS: dict[Status, frozenset[Status]] = {
    Status.DRAFT: frozenset({Status.SUBMITTED, Status.WITHDRAWN}),
    Status.SUBMITTED: frozenset({Status.IN_REVIEW, Status.WITHDRAWN}),
    Status.IN_REVIEW: frozenset(
        {Status.APPROVED, Status.RETURNED, Status.REJECTED, Status.WITHDRAWN}
    ),
    Status.APPROVED: frozenset({Status.RELEASED, Status.RETURNED, Status.WITHDRAWN}),
    Status.RETURNED: frozenset({Status.SUBMITTED, Status.WITHDRAWN}),
    Status.RELEASED: frozenset(),
    Status.REJECTED: frozenset(),
    Status.WITHDRAWN: frozenset(),
}

TERMINAL = frozenset(s for s, nxt in TRANSITIONS.items() if not nxt)
REVIEWABLE = frozenset({Status.SUBMITTED, Status.IN_REVIEW})
EDITABLE = frozenset({Status.DRAFT, Status.RETURNED})


def can_transition(current: Status, target: Status) -> bool:
    return target in TRANSITIONS[current]


def check_can_transition(current: Status, target: Status) -> None:
    if not can_transition(current, target):
        raise StateError(f"a request that is {current.value} cannot become {target.value}")


def check_can_edit(current: Status) -> None:
    if current not in EDITABLE:
        raise StateError(
            f"files can only be changed while a request is draft or returned, not {current.value}"
        )


@dataclass(frozen=True)
class Reviewer:
    person_id: str
    roles: frozenset[str]


def check_user_can_review(reviewer: Reviewer, author: str, status: Status) -> None:
    if "output_checker" not in reviewer.roles:
        raise PolicyDenied("review", [f"{reviewer.person_id} is not an output checker"])
    if reviewer.person_id == author:
        raise PolicyDenied("review", ["authors never review their own requests"])
    if status not in REVIEWABLE:
        raise StateError(f"a request that is {status.value} is not open for review")


def user_can_review(reviewer: Reviewer, author: str, status: Status) -> bool:
    try:
        check_user_can_review(reviewer, author, status)
    except (PolicyDenied, StateError):
        return False
    return True


@dataclass(frozen=True)
class ReviewVote:
    reviewer: str
    decision: Vote


def status_after_votes(votes: Sequence[ReviewVote], author: str, approvals_required: int) -> Status:
    """The state a request under review moves to once these votes are in.

    Any rejection rejects; any return returns to the author; enough distinct approvals
    (never counting the author) approve; otherwise it stays in review.
    """
    if approvals_required < 1:
        raise ValueError("approvals_required must be at least 1")
    decisions = {v.decision for v in votes}
    if Vote.REJECT in decisions:
        return Status.REJECTED
    if Vote.RETURN in decisions:
        return Status.RETURNED
    approvers = {v.reviewer for v in votes if v.decision is Vote.APPROVE and v.reviewer != author}
    return Status.APPROVED if len(approvers) >= approvals_required else Status.IN_REVIEW


def vote_from_files(decisions: Mapping[str, Vote], files: Collection[str]) -> Vote:
    """A checker's request-level vote from their decision on each file: any rejection
    rejects, any request for changes returns, and only approving every file approves.
    Every file needs exactly one decision."""
    missing = sorted(set(files) - set(decisions))
    unknown = sorted(set(decisions) - set(files))
    if missing:
        raise InputError(f"a review needs a decision on every file; missing: {', '.join(missing)}")
    if unknown:
        raise InputError(f"the request has no file(s) named {', '.join(unknown)}")
    if not decisions:
        raise InputError("a review needs a decision on at least one file")
    votes = set(decisions.values())
    if Vote.REJECT in votes:
        return Vote.REJECT
    if Vote.RETURN in votes:
        return Vote.RETURN
    return Vote.APPROVE


def states_table(transitions: dict[Status, frozenset[Status]] = TRANSITIONS) -> str:
    """The markdown reference page for the state machine."""
    lines = [
        "# Release request states",
        "",
        "Generated from `sde.domain.releases.TRANSITIONS` by "
        "`python -m sde.domain.releases > docs/reference/release-states.md`; "
        "a test fails when this page is out of date.",
        "",
        "| from | may become |",
        "|---|---|",
    ]
    for status in Status:
        nxt = ", ".join(sorted(s.value for s in transitions[status])) or "(final)"
        lines.append(f"| `{status.value}` | {nxt} |")
    lines.append("")
    lines.append("```mermaid")
    lines.append("stateDiagram-v2")
    for status in Status:
        for target in sorted(transitions[status], key=lambda s: s.value):
            lines.append(f"    {status.value} --> {target.value}")
    lines.append("```")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":  # pragma: no cover
    print(states_table(), end="")
