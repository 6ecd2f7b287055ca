"""What the airlock shows: read-only views of release requests for checkers and authors.

Built by :meth:`sde.services.release.ReleaseService.view` and ``queue``; rendered by the
checker web page (``sde.web``) and the CLI. Views hold no hidden counts: a cell's text is
what the released file would hold, and its rules are the names of the rules that fired.

Blinding: ``other_reviews`` is ``None`` until the viewer has submitted their own review,
so a checker's decision is independent of the others'.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

# The status a rule's firing gives a cell, for colouring a table (worst wins).
STATUS_ORDER = {"pass": 0, "review": 1, "fail": 2}


@dataclass(frozen=True)
class CellView:
    text: str
    rules: tuple[str, ...] = ()  # rule names that fired on this cell (e.g. "threshold")
    status: str = "pass"  # pass | review | fail


@dataclass(frozen=True)
class FileDecisionView:
    file: str
    decision: str  # approve | return | reject
    comment: str | None


@dataclass(frozen=True)
class ReviewView:
    reviewer: str
    decision: str  # the request-level vote derived from the file decisions
    comment: str | None
    at: dt.datetime
    files: tuple[FileDecisionView, ...] = ()


@dataclass(frozen=True)
class FileView:
    name: str
    kind: str
    sha256: str
    size_bytes: int
    status: str  # worst automatic result: pass | review | fail
    checks: tuple[dict[str, object], ...]  # CheckResult.to_json() of each check
    blocking: tuple[str, ...]  # rule names that failed and no exception can override
    exception: str | None  # the researcher's justification, if they asked for one
    description: str | None
    # A table (CSV) as rows of cells; the first row is the header. None for other files.
    grid: tuple[tuple[CellView, ...], ...] | None = None
    text: str | None = None  # the text of a text or code file (shown escaped)
    is_image: bool = False
    figure_table: str | None = None  # for a figure: the table file it was drawn from


@dataclass(frozen=True)
class RequestView:
    id: str
    project_id: str
    title: str
    author: str
    status: str
    comment: str | None
    created_at: dt.datetime
    updated_at: dt.datetime
    approvals_required: int
    files: tuple[FileView, ...]
    viewer: str
    viewer_is_author: bool
    can_review: bool  # the viewer may submit a review now
    why_cannot_review: str | None  # the reason shown when they may not
    my_review: ReviewView | None
    other_reviews: tuple[ReviewView, ...] | None  # None = hidden until the viewer has voted
    reviews_received: int
    # For the author: why the request cannot be released now, in plain words (failing
    # checks without an exception, reviewer comments, egress policy reasons).
    blocked_reasons: tuple[str, ...] = field(default_factory=tuple)
    released_at: dt.datetime | None = None


@dataclass(frozen=True)
class QueueItem:
    id: str
    project_id: str
    title: str
    author: str
    status: str
    created_at: dt.datetime
    files: int
    worst_status: str  # worst automatic result over the files
    exceptions: int  # files with an exception request
    reviews_received: int
    viewer_has_reviewed: bool
    viewer_is_author: bool
