import pytest

from sde.domain.releases import (
    TRANSITIONS,
    Reviewer,
    ReviewVote,
    Status,
    Vote,
    check_can_edit,
    check_can_transition,
    check_user_can_review,
    status_after_votes,
    user_can_review,
)
from sde.errors import PolicyDenied, StateError

CHECKER = Reviewer("carol", frozenset({"output_checker"}))


def test_every_state_has_transitions_listed() -> None:
    assert set(TRANSITIONS) == set(Status)


def test_released_is_final() -> None:
    with pytest.raises(StateError, match="released cannot become submitted"):
        check_can_transition(Status.RELEASED, Status.SUBMITTED)


def test_returned_can_be_resubmitted() -> None:
    check_can_transition(Status.RETURNED, Status.SUBMITTED)


def test_files_frozen_once_submitted() -> None:
    check_can_edit(Status.DRAFT)
    with pytest.raises(StateError):
        check_can_edit(Status.IN_REVIEW)


def test_author_cannot_review_own_request() -> None:
    author = Reviewer("alice", frozenset({"output_checker", "researcher"}))
    with pytest.raises(PolicyDenied, match="own requests"):
        check_user_can_review(author, "alice", Status.SUBMITTED)
    assert not user_can_review(author, "alice", Status.SUBMITTED)


def test_only_output_checkers_review() -> None:
    assert not user_can_review(
        Reviewer("bob", frozenset({"researcher"})), "alice", Status.SUBMITTED
    )
    assert user_can_review(CHECKER, "alice", Status.IN_REVIEW)
    assert not user_can_review(CHECKER, "alice", Status.APPROVED)


def test_two_distinct_approvals_needed() -> None:
    one = [ReviewVote("carol", Vote.APPROVE)]
    assert status_after_votes(one, "alice", 2) is Status.IN_REVIEW
    same_twice = [ReviewVote("carol", Vote.APPROVE), ReviewVote("carol", Vote.APPROVE)]
    assert status_after_votes(same_twice, "alice", 2) is Status.IN_REVIEW
    two = [*one, ReviewVote("dan", Vote.APPROVE)]
    assert status_after_votes(two, "alice", 2) is Status.APPROVED


def test_author_vote_never_counts() -> None:
    votes = [ReviewVote("carol", Vote.APPROVE), ReviewVote("alice", Vote.APPROVE)]
    assert status_after_votes(votes, "alice", 2) is Status.IN_REVIEW


def test_reject_and_return_win() -> None:
    votes = [ReviewVote("carol", Vote.APPROVE), ReviewVote("dan", Vote.REJECT)]
    assert status_after_votes(votes, "alice", 1) is Status.REJECTED
    votes = [ReviewVote("carol", Vote.APPROVE), ReviewVote("dan", Vote.RETURN)]
    assert status_after_votes(votes, "alice", 1) is Status.RETURNED
