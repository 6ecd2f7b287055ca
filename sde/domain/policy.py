"""Policy decisions: the port to a Rego engine, and the inputs it is asked about.

Services never write Rego inputs by hand: they call a pure ``make_*_input`` builder with
plain values (strings, dates, lists) and get back a fresh JSON-able ``dict``, then ask a
``PolicyEngine`` for a ``Decision``. The policies themselves live in the repository's
``policies/`` folder (``sde.access``, ``sde.egress``, ``sde.project``, ``sde.ingest``);
``docs/policies.md``
and ``docs/governance.md`` describe each input document and every reason a policy can give.

``CANARIES`` are decisions whose answer is known. An engine runs them at start-up and
refuses to start if one comes back wrong, so a broken engine or a broken policy cannot
quietly allow.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Final, Protocol

from sde.errors import InputError, PolicyDenied

ACCESS: Final = "sde.access"
EGRESS: Final = "sde.egress"
PROJECT: Final = "sde.project"
INGEST: Final = "sde.ingest"

OPEN_WORKSPACE: Final = "open_workspace"
READ_DATASET: Final = "read_dataset"
BUILD_EXTRACT: Final = "build_extract"
ACCESS_ACTIONS: Final = (OPEN_WORKSPACE, READ_DATASET, BUILD_EXTRACT)

RESEARCHER: Final = "researcher"
OPERATOR: Final = "operator"

APPROVED: Final = "approved"
CHECK_OK: Final = "pass"
APPROVE: Final = "approve"
REJECT: Final = "reject"
REVIEW_DECISIONS: Final = (APPROVE, REJECT)

ENGINE_ERROR_PREFIX: Final = "policy engine error: "

_ISO_DATE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")


@dataclass(frozen=True)
class Decision:
    """A policy's answer. A refusal carries the reasons the policy gave, in words a
    researcher or checker understands; an allow carries none."""

    allow: bool
    reasons: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.allow, bool):
            raise TypeError("Decision.allow must be a bool")
        if not isinstance(self.reasons, tuple) or not all(
            isinstance(reason, str) for reason in self.reasons
        ):
            raise TypeError("Decision.reasons must be a tuple of str")
        if self.allow and self.reasons:
            raise ValueError("an allowing Decision carries no refusal reasons")

    @classmethod
    def engine_error(cls, problem: str) -> Decision:
        """The refusal an engine gives when it cannot decide (fail closed)."""
        return cls(allow=False, reasons=(ENGINE_ERROR_PREFIX + problem,))

    @property
    def is_engine_error(self) -> bool:
        return any(reason.startswith(ENGINE_ERROR_PREFIX) for reason in self.reasons)

    def require(self, what: str) -> None:
        """Raise ``PolicyDenied`` naming ``what`` was refused, unless allowed."""
        if not self.allow:
            raise PolicyDenied(what, list(self.reasons))


class PolicyEngine(Protocol):
    """Evaluates one policy package (``sde.access``) for one input document.

    Fails closed: an engine error, an undefined result or an unknown package is a
    ``Decision(allow=False, ...)`` with a reason starting ``policy engine error:``,
    never an exception and never an allow.
    """

    def decide(self, package: str, input: Mapping[str, object]) -> Decision: ...


# --- Input builders -------------------------------------------------------------------


def make_access_input(
    *,
    action: str,
    today: dt.date,
    person_id: str | None,
    project_id: str | None,
    role: str = RESEARCHER,
    accredited_until: dt.date | str | None = None,
    banned_until: dt.date | str | None = None,
    project_status: str | None = None,
    members: Iterable[str] = (),
    start_date: dt.date | str | None = None,
    end_date: dt.date | str | None = None,
    approved_datasets: Mapping[str, Iterable[str]] | None = None,
    dataset: str | None = None,
    columns: Iterable[str] = (),
) -> dict[str, object]:
    """The ``sde.access`` input: can ``person_id`` do ``action`` on ``project_id`` today?

    ``person_id`` / ``project_id`` of ``None`` mean "not found" (the policy refuses).
    ``approved_datasets`` maps each approved dataset to its approved columns. ``dataset``
    and ``columns`` are what a ``read_dataset`` asks for. Dates are ``datetime.date`` or
    ISO ``YYYY-MM-DD`` strings; ``None`` means no date on record (no accreditation, no
    ban, no start or end).
    """
    person: dict[str, object] | None = None
    if person_id is not None:
        person = {
            "id": _text("person_id", person_id),
            "role": _text("role", role),
            "accredited_until": _iso_date("accredited_until", accredited_until),
            "banned_until": _iso_date("banned_until", banned_until),
        }
    project: dict[str, object] | None = None
    if project_id is not None:
        project = {
            "id": _text("project_id", project_id),
            "status": None if project_status is None else _text("project_status", project_status),
            "members": sorted(set(_texts("members", members))),
            "start_date": _iso_date("start_date", start_date),
            "end_date": _iso_date("end_date", end_date),
            "datasets": {
                _text("approved_datasets", name): _texts(f"approved columns of {name}", cols)
                for name, cols in sorted((approved_datasets or {}).items())
            },
        }
    return {
        "action": _text("action", action),
        "today": _iso_date("today", today),
        "person": person,
        "project": project,
        "request": {
            "dataset": None if dataset is None else _text("dataset", dataset),
            "columns": _texts("columns", columns),
        },
    }


@dataclass(frozen=True)
class ReleaseFileFacts:
    """What the egress policy needs to know about one file of a release request:
    its name, its SHA-256 checksum (hex) and each automatic check's status by name."""

    name: str
    sha256: str | None
    checks: Mapping[str, str] = field(default_factory=dict)
    exception: bool = False  # the researcher asked for an exception, with a justification
    rows: int | None = None  # data rows and cells the file would release (egress budget)
    cells: int | None = None


@dataclass(frozen=True)
class EgressBudget:
    """A project's cumulative egress budget and what it has released so far."""

    rows_limit: int
    cells_limit: int
    rows_used: int
    cells_used: int


def make_egress_input(
    *,
    request_id: str,
    author: str | None,
    status: str,
    files: Iterable[ReleaseFileFacts],
    reviews: Iterable[tuple[str, str]],
    approvals_required: int | None = None,
    project_status: str | None = None,
    budget: EgressBudget | None = None,
) -> dict[str, object]:
    """The ``sde.egress`` input: can release request ``request_id`` be released?

    ``budget`` of ``None`` leaves it out, and the policy refuses (fail closed).

    ``reviews`` are ``(reviewer, decision)`` pairs, decision ``approve`` or ``reject``.
    ``approvals_required`` of ``None`` leaves the policy's default (2); a value below 1
    is passed on so the policy refuses it (fail closed). ``project_status`` is the status
    of the request's project: only an ``approved`` project's outputs are released (a
    suspended project's releases are frozen); ``None`` (not known) is refused.
    """
    if approvals_required is not None and (
        isinstance(approvals_required, bool) or not isinstance(approvals_required, int)
    ):
        raise InputError("approvals_required must be a whole number")
    file_docs: list[dict[str, object]] = []
    for facts in files:
        if not isinstance(facts, ReleaseFileFacts):
            raise InputError("each file must be given as ReleaseFileFacts")
        file_docs.append(
            {
                "name": _text("file name", facts.name),
                "sha256": None if facts.sha256 is None else _text("sha256", facts.sha256),
                "checks": [
                    {"name": _text("check name", name), "status": _text("check status", state)}
                    for name, state in sorted(facts.checks.items())
                ],
                "exception": facts.exception is True,
                **({"rows": _count("rows", facts.rows)} if facts.rows is not None else {}),
                **({"cells": _count("cells", facts.cells)} if facts.cells is not None else {}),
            }
        )
    review_docs: list[dict[str, object]] = []
    for review in reviews:
        if not isinstance(review, tuple) or len(review) != 2:
            raise InputError("each review must be a (reviewer, decision) pair")
        reviewer, decision = review
        review_docs.append(
            {"reviewer": _text("reviewer", reviewer), "decision": _text("decision", decision)}
        )
    settings: dict[str, object] = {}
    if approvals_required is not None:
        settings["approvals_required"] = approvals_required
    extra: dict[str, object] = {}
    if budget is not None:
        extra["budget"] = {
            "rows_limit": _count("rows_limit", budget.rows_limit),
            "cells_limit": _count("cells_limit", budget.cells_limit),
            "rows_used": _count("rows_used", budget.rows_used),
            "cells_used": _count("cells_used", budget.cells_used),
        }
    return {
        **extra,
        "settings": settings,
        "request": {
            "id": _text("request_id", request_id),
            "author": None if author is None else _text("author", author),
            "status": _text("status", status),
            "project_status": None
            if project_status is None
            else _text("project_status", project_status),
            "files": file_docs,
            "reviews": review_docs,
        },
    }


@dataclass(frozen=True)
class BoardVoteFacts:
    """What the project policy needs to know about one board vote. ``conflicts`` says why
    the vote does not count (``declared``, ``project_member``, ``sponsor_organisation``);
    empty when it counts. The vote's reason is kept with the vote, not sent to the policy."""

    voter: str
    decision: str
    board_member: bool
    kind: str | None
    banned: bool
    conflicts: tuple[str, ...] = ()


def make_project_input(
    *,
    project_id: str | None,
    now: dt.datetime,
    status: str | None,
    purpose: str | None,
    sponsor_type: str | None,
    legal_basis: str | None,
    national_opt_out_applies: bool | None,
    summary_given: bool,
    public_benefit_given: bool,
    benefit_sharing_given: bool,
    exclusive_access: bool | None,
    start_date: dt.date | str | None,
    end_date: dt.date | str | None,
    comment_period_ends: dt.datetime | None,
    datasets: Mapping[str, Mapping[str, bool]],
    votes: Iterable[BoardVoteFacts],
    uses: Iterable[str] = (),
    sponsor_banned: bool = False,
    min_votes: int | None = None,
) -> dict[str, object]:
    """The ``sde.project`` input: may the board approve application ``project_id`` now?

    Free text (the summary, public-benefit statement, benefit-sharing terms,
    justifications, vote reasons) never goes to the policy: only whether it was given.
    ``datasets`` maps each requested dataset to ``{column: justified}``, in order.
    ``now`` and ``comment_period_ends`` are timezone-aware; they are sent as UTC
    ``YYYY-MM-DDTHH:MM:SSZ`` (to the second). ``min_votes`` of ``None``
    leaves the policy's default (3).
    """
    if min_votes is not None and (isinstance(min_votes, bool) or not isinstance(min_votes, int)):
        raise InputError("min_votes must be a whole number")
    dataset_docs: list[dict[str, object]] = []
    for name, columns in datasets.items():
        if not isinstance(columns, Mapping):
            raise InputError(f"the columns of dataset {name} must map each column to a flag")
        dataset_docs.append(
            {
                "name": _text("dataset", name),
                "columns": [
                    {"name": _text("column", column), "justified": _flag("justified", why)}
                    for column, why in columns.items()
                ],
            }
        )
    vote_docs: list[dict[str, object]] = []
    for vote in votes:
        if not isinstance(vote, BoardVoteFacts):
            raise InputError("each vote must be given as BoardVoteFacts")
        vote_docs.append(
            {
                "voter": _text("voter", vote.voter),
                "decision": _text("decision", vote.decision),
                "board_member": _flag("board_member", vote.board_member),
                "kind": None if vote.kind is None else _text("kind", vote.kind),
                "banned": _flag("banned", vote.banned),
                "conflicts": _texts("conflicts", vote.conflicts),
            }
        )
    settings: dict[str, object] = {}
    if min_votes is not None:
        settings["min_votes"] = min_votes
    return {
        "now": _instant("now", now),
        "settings": settings,
        "application": {
            "id": None if project_id is None else _text("project_id", project_id),
            "status": None if status is None else _text("status", status),
            "purpose": None if purpose is None else _text("purpose", purpose),
            "uses": _texts("uses", uses),
            "sponsor_type": None if sponsor_type is None else _text("sponsor_type", sponsor_type),
            "sponsor_banned": _flag("sponsor_banned", sponsor_banned),
            "legal_basis": None if legal_basis is None else _text("legal_basis", legal_basis),
            "national_opt_out_applies": None
            if national_opt_out_applies is None
            else _flag("national_opt_out_applies", national_opt_out_applies),
            "summary_given": _flag("summary_given", summary_given),
            "public_benefit_given": _flag("public_benefit_given", public_benefit_given),
            "benefit_sharing_given": _flag("benefit_sharing_given", benefit_sharing_given),
            "exclusive_access": None
            if exclusive_access is None
            else _flag("exclusive_access", exclusive_access),
            "start_date": _iso_date("start_date", start_date),
            "end_date": _iso_date("end_date", end_date),
            "comment_period_ends": None
            if comment_period_ends is None
            else _instant("comment_period_ends", comment_period_ends),
            "datasets": dataset_docs,
        },
        "votes": vote_docs,
    }


@dataclass(frozen=True)
class IngestColumnFacts:
    """What the ingest policy needs to know about one column of a dataset spec: its
    name, its role, its type, the kind of identifying data it holds (``pii``; the
    identifier's is ``nhs_number``) and, for a quasi-identifier, its generalisation."""

    name: str
    role: str
    type: str
    pii: str | None = None
    generalise: str | None = None


def make_ingest_input(
    *,
    dataset: str | None,
    origin: str | None,
    columns: Iterable[IngestColumnFacts],
    header: Iterable[str],
    known_from: Mapping[str, Iterable[str] | None] | None = None,
) -> dict[str, object]:
    """The ``sde.ingest`` input: may ingest read a file with this ``header`` (its column
    names, in order, repeats kept) for dataset spec ``dataset``?

    ``columns`` are the spec's columns, in order. ``known_from`` maps each dataset the
    spec clears its free text with (``DatasetSpec.known_from``, in order) to the kinds of
    identifier its own spec tags (``pii``), or to ``None`` when it has no spec (the
    policy refuses). ``dataset`` / ``origin`` of ``None`` mean not given.
    """
    column_docs: list[dict[str, object]] = []
    for column in columns:
        if not isinstance(column, IngestColumnFacts):
            raise InputError("each column must be given as IngestColumnFacts")
        column_docs.append(
            {
                "name": _text("column name", column.name),
                "role": _text("role", column.role),
                "type": _text("type", column.type),
                "pii": None if column.pii is None else _text("pii", column.pii),
                "generalise": None
                if column.generalise is None
                else _text("generalise", column.generalise),
            }
        )
    if known_from is not None and not isinstance(known_from, Mapping):
        raise InputError("known_from must map each dataset to the pii kinds of its spec")
    known_docs: list[dict[str, object]] = []
    for name, kinds in (known_from or {}).items():
        known_docs.append(
            {
                "dataset": _text("known_from", name),
                "pii": None if kinds is None else sorted(set(_texts(f"pii of {name}", kinds))),
            }
        )
    return {
        "spec": {
            "name": None if dataset is None else _text("dataset", dataset),
            "origin": None if origin is None else _text("origin", origin),
            "columns": column_docs,
            "known_from": known_docs,
        },
        "file": {"header": _texts("header", header)},
    }


def _flag(what: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise InputError(f"{what} must be true or false")
    return value


def _instant(what: str, value: object) -> str:
    """UTC ``YYYY-MM-DDTHH:MM:SSZ`` (to the second): the policies compare instants as text."""
    if not isinstance(value, dt.datetime) or value.tzinfo is None or value.utcoffset() is None:
        raise InputError(f"{what} must be a timezone-aware date and time")
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _text(what: str, value: object) -> str:
    if not isinstance(value, str):
        raise InputError(f"{what} must be text")
    return value


def _count(what: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InputError(f"{what} must be a whole number of at least 0")
    return value


def _texts(what: str, values: Iterable[str]) -> list[str]:
    if isinstance(values, str | bytes):
        raise InputError(f"{what} must be a list of names, not a single string")
    return [_text(what, value) for value in values]


def _iso_date(what: str, value: dt.date | str | None) -> str | None:
    """``YYYY-MM-DD``: the policies compare dates as ISO text."""
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        value = value.date()
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, str) and _ISO_DATE.match(value):
        try:
            return dt.date.fromisoformat(value).isoformat()
        except ValueError:
            pass
    raise InputError(f"{what} is not a date (YYYY-MM-DD)")


# --- Canary decisions -----------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Canary:
    """A decision whose answer is known. ``reason`` (for a refusal) is text one of the
    policy's reasons must contain, so a refusal for the wrong reason (an engine error,
    say) is caught too."""

    name: str
    package: str
    input: Mapping[str, object]
    allow: bool
    reason: str | None = None


def canary_problem(canary: Canary, decision: Decision) -> str | None:
    """What is wrong with ``decision`` as the answer to ``canary``, or ``None``."""
    if canary.allow:
        if decision.allow:
            return None
        return f"expected allow, got refusal: {'; '.join(decision.reasons) or 'no reason'}"
    if decision.allow:
        return "expected refusal, got allow"
    if decision.is_engine_error:
        return f"expected a policy refusal, got: {'; '.join(decision.reasons)}"
    if canary.reason is not None and not any(canary.reason in r for r in decision.reasons):
        return f"expected a reason containing {canary.reason!r}, got: {'; '.join(decision.reasons)}"
    return None


_CANARY_DAY = dt.date(2025, 6, 1)
_SHA = "0" * 63 + "1"


def _access(**changes: object) -> dict[str, object]:
    values: dict[str, object] = {
        "action": READ_DATASET,
        "today": _CANARY_DAY,
        "person_id": "canary-researcher",
        "project_id": "canary-project",
        "accredited_until": dt.date(2025, 12, 31),
        "project_status": APPROVED,
        "members": ["canary-researcher", "canary-other"],
        "start_date": dt.date(2025, 1, 1),
        "end_date": dt.date(2026, 12, 31),
        "approved_datasets": {"events": ["pid", "event_date", "code"], "admissions": ["pid"]},
        "dataset": "events",
        "columns": ["pid", "event_date", "code"],
    }
    values.update(changes)
    return make_access_input(**values)  # type: ignore[arg-type]


def _egress(**changes: object) -> dict[str, object]:
    values: dict[str, object] = {
        "request_id": "canary-request",
        "author": "canary-author",
        "status": APPROVED,
        "files": [
            ReleaseFileFacts(
                "table1.csv",
                _SHA,
                {"small_numbers": CHECK_OK, "dominance": CHECK_OK},
                rows=10,
                cells=20,
            ),
            ReleaseFileFacts("figure1.csv", _SHA, {"small_numbers": CHECK_OK}, rows=0, cells=0),
        ],
        "reviews": [("canary-checker-1", APPROVE), ("canary-checker-2", APPROVE)],
        "project_status": APPROVED,
        "budget": EgressBudget(rows_limit=100, cells_limit=1000, rows_used=90, cells_used=0),
    }
    values.update(changes)
    return make_egress_input(**values)  # type: ignore[arg-type]


_CANARY_NOW = dt.datetime(2025, 6, 1, 12, 0, tzinfo=dt.UTC)
_BOARD = (
    BoardVoteFacts("canary-lay", APPROVE, True, "lay", False),
    BoardVoteFacts("canary-clinician", APPROVE, True, "clinical", False),
    BoardVoteFacts("canary-dpo", REJECT, True, "data_protection", False),
)


def _project(**changes: object) -> dict[str, object]:
    values: dict[str, object] = {
        "project_id": "canary-project",
        "now": _CANARY_NOW,
        "status": "published",
        "purpose": "research",
        "uses": ["health_research"],
        "sponsor_type": "commercial",
        "legal_basis": "s251_support",
        "national_opt_out_applies": True,
        "summary_given": True,
        "public_benefit_given": True,
        "benefit_sharing_given": True,
        "exclusive_access": False,
        "start_date": dt.date(2025, 7, 1),
        "end_date": dt.date(2027, 6, 30),
        "comment_period_ends": _CANARY_NOW - dt.timedelta(seconds=1),
        "datasets": {"events": {"event_date": True, "code": True}, "patients": {"sex": True}},
        "votes": _BOARD,
    }
    values.update(changes)
    return make_project_input(**values)  # type: ignore[arg-type]


_LETTERS = (
    IngestColumnFacts("nhs_number", "identifier", "nhs_number", "nhs_number"),
    IngestColumnFacts("given_name", "drop", "string", "person"),
    IngestColumnFacts("date_of_birth", "quasi_identifier", "date", "date", "year"),
    IngestColumnFacts("postcode", "quasi_identifier", "string", "postcode", "postcode_district"),
    IngestColumnFacts("specialty", "keep", "string"),
    IngestColumnFacts("letter_text", "free_text", "string"),
)


def _ingest(
    columns: Iterable[IngestColumnFacts] = _LETTERS, **changes: object
) -> dict[str, object]:
    cols = tuple(columns)
    values: dict[str, object] = {
        "dataset": "canary_letters",
        "origin": "hospital",
        "columns": cols,
        "header": [c.name for c in cols],
        "known_from": {"canary_patients": ["nhs_number", "person", "date"]},
    }
    values.update(changes)
    return make_ingest_input(**values)  # type: ignore[arg-type]


def _last(role: str, type: str = "string", pii: str | None = None) -> tuple[IngestColumnFacts, ...]:
    """The canary letters with one more column, last, of this role, type and pii tag."""
    return (*_LETTERS, IngestColumnFacts("canary_last", role, type, pii))


def _without(document: dict[str, object], *path: str) -> dict[str, object]:
    """A copy of ``document`` with the field at ``path`` removed (a missing field)."""
    head, *rest = path
    copy = dict(document)
    if rest:
        inner = copy[head]
        assert isinstance(inner, dict)
        copy[head] = _without(inner, *rest)
    else:
        del copy[head]
    return copy


CANARIES: tuple[Canary, ...] = (
    # sde.access
    Canary("member reads approved columns", ACCESS, _access(), allow=True),
    Canary(
        "operator builds an extract",
        ACCESS,
        _access(action=BUILD_EXTRACT, person_id="canary-operator", role=OPERATOR),
        allow=True,
    ),
    Canary("empty input", ACCESS, {}, allow=False, reason="person is not known"),
    Canary(
        "accreditation expired yesterday",
        ACCESS,
        _access(accredited_until=dt.date(2025, 5, 31)),
        allow=False,
        reason="expired on 2025-05-31",
    ),
    Canary(
        "no accreditation field",
        ACCESS,
        _without(_access(), "person", "accredited_until"),
        allow=False,
        reason="no accreditation",
    ),
    Canary(
        "banned until today",
        ACCESS,
        _access(banned_until=_CANARY_DAY),
        allow=False,
        reason="banned until",
    ),
    Canary(
        "not a member",
        ACCESS,
        _access(members=["canary-other"]),
        allow=False,
        reason="not a member",
    ),
    Canary(
        "operator opens a workspace without membership",
        ACCESS,
        _access(action=OPEN_WORKSPACE, person_id="canary-operator", role=OPERATOR),
        allow=False,
        reason="not a member",
    ),
    Canary(
        "project suspended",
        ACCESS,
        _access(project_status="suspended"),
        allow=False,
        reason="status suspended",
    ),
    Canary(
        "project ended",
        ACCESS,
        _access(end_date=dt.date(2025, 5, 31)),
        allow=False,
        reason="ended on",
    ),
    # every requested column must be approved: only the last one is not
    Canary(
        "one column outside the approval",
        ACCESS,
        _access(columns=["pid", "event_date", "code", "free_text"]),
        allow=False,
        reason="column free_text",
    ),
    Canary(
        "dataset not approved",
        ACCESS,
        _access(dataset="deaths", columns=["pid"]),
        allow=False,
        reason="dataset deaths is not approved",
    ),
    Canary("unknown action", ACCESS, _access(action="delete"), allow=False, reason="action"),
    # sde.egress
    Canary("two independent approvals, all checks passed", EGRESS, _egress(), allow=True),
    Canary("empty input", EGRESS, {}, allow=False, reason="no files"),
    # every check of every file must pass: only the last check of one file fails
    Canary(
        "one check failed",
        EGRESS,
        _egress(
            files=[
                ReleaseFileFacts(
                    "table1.csv", _SHA, {"dominance": CHECK_OK, "small_numbers": "fail"}
                ),
                ReleaseFileFacts("figure1.csv", _SHA, {"small_numbers": CHECK_OK}),
            ]
        ),
        allow=False,
        reason="check small_numbers on file table1.csv did not pass",
    ),
    Canary(
        "file without checks",
        EGRESS,
        _egress(files=[ReleaseFileFacts("table1.csv", _SHA, {})]),
        allow=False,
        reason="no automatic checks",
    ),
    Canary(
        "file without checksum",
        EGRESS,
        _egress(files=[ReleaseFileFacts("table1.csv", None, {"small_numbers": CHECK_OK})]),
        allow=False,
        reason="no SHA-256 checksum",
    ),
    Canary(
        "one approval",
        EGRESS,
        _egress(reviews=[("canary-checker-1", APPROVE)]),
        allow=False,
        reason="1 of the 2",
    ),
    Canary(
        "same checker approves twice",
        EGRESS,
        _egress(reviews=[("canary-checker-1", APPROVE), ("canary-checker-1", APPROVE)]),
        allow=False,
        reason="1 of the 2",
    ),
    Canary(
        "author approves",
        EGRESS,
        _egress(
            reviews=[
                ("canary-checker-1", APPROVE),
                ("canary-checker-2", APPROVE),
                ("canary-author", APPROVE),
            ]
        ),
        allow=False,
        reason="cannot approve their own",
    ),
    Canary(
        "a checker rejected",
        EGRESS,
        _egress(
            reviews=[
                ("canary-checker-1", APPROVE),
                ("canary-checker-2", APPROVE),
                ("canary-checker-3", REJECT),
            ]
        ),
        allow=False,
        reason="rejected",
    ),
    Canary(
        "zero approvals required",
        EGRESS,
        _egress(approvals_required=0),
        allow=False,
        reason="approvals_required",
    ),
    Canary(
        "not approved yet",
        EGRESS,
        _egress(status="in_review"),
        allow=False,
        reason="status in_review",
    ),
    Canary("no files", EGRESS, _egress(files=[]), allow=False, reason="no files"),
    # the exception workflow: review needs only the approvals; an exceptionable fail needs
    # an exception; a blocking fail is never released (guards regopy's `not` in `every`)
    Canary(
        "zero cell for review",
        EGRESS,
        _egress(files=[ReleaseFileFacts("t.csv", _SHA, {"zero": "review"}, rows=1, cells=1)]),
        allow=True,
    ),
    Canary(
        "threshold fail with an exception",
        EGRESS,
        _egress(
            files=[
                ReleaseFileFacts(
                    "t.csv", _SHA, {"threshold": "fail"}, exception=True, rows=1, cells=1
                )
            ]
        ),
        allow=True,
    ),
    Canary(
        "threshold fail without an exception",
        EGRESS,
        _egress(files=[ReleaseFileFacts("t.csv", _SHA, {"threshold": "fail"}, rows=1, cells=1)]),
        allow=False,
        reason="no exception was asked for",
    ),
    Canary(
        "row-level data with an exception",
        EGRESS,
        _egress(
            files=[
                ReleaseFileFacts(
                    "t.csv", _SHA, {"row_level": "fail"}, exception=True, rows=1, cells=1
                )
            ]
        ),
        allow=False,
        reason="no exception can release it",
    ),
    Canary(
        "egress budget exceeded",
        EGRESS,
        _egress(budget=EgressBudget(rows_limit=100, cells_limit=1000, rows_used=91, cells_used=0)),
        allow=False,
        reason="egress budget",
    ),
    Canary(
        "egress budget unknown",
        EGRESS,
        _egress(budget=None),
        allow=False,
        reason="egress budget",
    ),
    Canary(
        "project suspended",
        EGRESS,
        _egress(project_status="suspended"),
        allow=False,
        reason="project of the release request is suspended",
    ),
    Canary(
        "project status unknown",
        EGRESS,
        _egress(project_status=None),
        allow=False,
        reason="project of the release request is not known",
    ),
    # sde.project
    Canary("quorate majority, commercial terms met", PROJECT, _project(), allow=True),
    Canary("empty input", PROJECT, {}, allow=False, reason="application is not known"),
    Canary(
        "comment period ends in a second",
        PROJECT,
        _project(comment_period_ends=_CANARY_NOW + dt.timedelta(seconds=1)),
        allow=False,
        reason="comment period runs until",
    ),
    Canary(
        "red line declared among other uses",
        PROJECT,
        _project(uses=["health_research", "service_planning", "insurance_pricing"]),
        allow=False,
        reason="red line: patient data may never be used for insurance",
    ),
    # every column must be justified: only the last one is not
    Canary(
        "one column unjustified",
        PROJECT,
        _project(datasets={"events": {"event_date": True, "code": True, "value": False}}),
        allow=False,
        reason="column events.value has no justification",
    ),
    Canary(
        "exclusive access",
        PROJECT,
        _project(exclusive_access=True),
        allow=False,
        reason="exclusive access",
    ),
    Canary(
        "commercial sponsor without benefit sharing",
        PROJECT,
        _project(benefit_sharing_given=False),
        allow=False,
        reason="benefit-sharing terms",
    ),
    # the conflicted member's approval must not count: 1 of 3 counted votes approve
    Canary(
        "conflicted approval does not count",
        PROJECT,
        _project(
            votes=[
                BoardVoteFacts("canary-lay", APPROVE, True, "lay", False, ("declared",)),
                *_BOARD[1:],
                BoardVoteFacts("canary-lay-2", REJECT, True, "lay", False),
            ]
        ),
        allow=False,
        reason="1 of 3 counted votes approve",
    ),
    Canary(
        "no lay member",
        PROJECT,
        _project(
            votes=[
                *_BOARD[1:],
                BoardVoteFacts("canary-clinician-2", APPROVE, True, "clinical", False),
            ]
        ),
        allow=False,
        reason="no lay (patient or public) member",
    ),
    Canary(
        "banned voter does not count",
        PROJECT,
        _project(votes=[BoardVoteFacts("canary-lay", APPROVE, True, "lay", True), *_BOARD[1:]]),
        allow=False,
        reason="2 counted votes",
    ),
    Canary(
        "draft",
        PROJECT,
        _project(status="draft"),
        allow=False,
        reason="status draft",
    ),
    # sde.ingest
    Canary("letters cleared of known names", INGEST, _ingest(), allow=True),
    Canary(
        "no free text, no known_from",
        INGEST,
        _ingest(
            columns=[c for c in _LETTERS if c.role != "free_text"],
            known_from={},
        ),
        allow=True,
    ),
    Canary("empty input", INGEST, {}, allow=False, reason="dataset spec is not known"),
    # every column of the file must be classified: only the last one is not
    Canary(
        "last header column not classified",
        INGEST,
        _ingest(header=[*(c.name for c in _LETTERS), "canary_extra"]),
        allow=False,
        reason="column canary_extra of the file is not classified",
    ),
    Canary(
        "spec column missing from the file",
        INGEST,
        _ingest(header=[c.name for c in _LETTERS[:-1]]),
        allow=False,
        reason="column letter_text of dataset spec canary_letters is missing from the file",
    ),
    Canary(
        "last column has an unknown role",
        INGEST,
        _ingest(columns=_last("keep_raw")),
        allow=False,
        reason="column canary_last of dataset spec canary_letters has role keep_raw",
    ),
    Canary(
        "last column kept with a pii tag",
        INGEST,
        _ingest(columns=_last("keep", pii="person")),
        allow=False,
        reason="column canary_last of dataset spec canary_letters holds identifying data "
        "(person) and has role keep",
    ),
    Canary(
        "NHS numbers kept without a pii tag",
        INGEST,
        _ingest(columns=_last("keep", "nhs_number")),
        allow=False,
        reason="holds identifying data (nhs_number)",
    ),
    Canary(
        "two identifiers",
        INGEST,
        _ingest(columns=_last("identifier", "nhs_number")),
        allow=False,
        reason="has 2 identifier columns",
    ),
    Canary(
        "identifier is not an NHS number",
        INGEST,
        _ingest(columns=(IngestColumnFacts("nhs_number", "identifier", "string"), *_LETTERS[1:])),
        allow=False,
        reason="has type string, not nhs_number",
    ),
    Canary(
        "quasi-identifier generalised by day",
        INGEST,
        _ingest(
            columns=(
                *_LETTERS,
                IngestColumnFacts("canary_last", "quasi_identifier", "date", "date", "day"),
            )
        ),
        allow=False,
        reason="quasi_identifier column canary_last of dataset spec canary_letters needs",
    ),
    Canary(
        "free text without known identifiers",
        INGEST,
        _ingest(
            columns=[_LETTERS[0], _LETTERS[-1]],
            known_from={},
        ),
        allow=False,
        reason="no known identifiers",
    ),
    Canary(
        "free text without known names",
        INGEST,
        _ingest(
            columns=[_LETTERS[0], *_LETTERS[2:]],
            known_from={"canary_visits": ["date", "nhs_number"]},
        ),
        allow=False,
        reason="no known names",
    ),
    Canary(
        "known_from dataset without a spec",
        INGEST,
        _ingest(known_from={"canary_patients": ["person"], "canary_nowhere": None}),
        allow=False,
        reason="from dataset canary_nowhere, which has no dataset spec",
    ),
    Canary(
        "unknown origin",
        INGEST,
        _ingest(origin="pharmacy"),
        allow=False,
        reason="has origin pharmacy",
    ),
    Canary(
        "no origin field",
        INGEST,
        _without(_ingest(), "spec", "origin"),
        allow=False,
        reason="has origin (missing or not text)",
    ),
)
