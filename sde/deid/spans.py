"""Labels, spans and the resolution of overlapping findings (pure)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

LABELS: tuple[str, ...] = (
    "PERSON",
    "NHS_NUMBER",
    "DATE_OF_BIRTH",
    "DATE",
    "PHONE",
    "EMAIL",
    "UK_POSTCODE",
    "ADDRESS",
    "UK_NINO",
    "HOSPITAL_NUMBER",
    "URL",
)

# When two findings overlap and are equally strong and long, the earlier label here wins.
LABEL_PRIORITY: dict[str, int] = {
    label: rank
    for rank, label in enumerate(
        (
            "NHS_NUMBER",
            "EMAIL",
            "URL",
            "UK_NINO",
            "HOSPITAL_NUMBER",
            "PHONE",
            "DATE_OF_BIRTH",
            "DATE",
            "UK_POSTCODE",
            "PERSON",
            "ADDRESS",
        )
    )
}

# How much a finding is trusted: the patient's own identifiers, then findings a checksum or
# an unambiguous shape validates, then context rules, then lexicon and model guesses.
KNOWN = 3
VALIDATED = 2
CONTEXT = 1
GUESS = 0


def words(text: str) -> frozenset[str]:
    """The white-space separated words of ``text`` (for word lists)."""
    return frozenset(text.split())


@dataclass(frozen=True)
class Span:
    """``text[start:end]`` is an identifier of kind ``label`` (end exclusive)."""

    start: int
    end: int
    label: str
    score: float


@dataclass(frozen=True)
class Candidate:
    """A finding before overlaps are resolved."""

    start: int
    end: int
    label: str
    score: float
    strength: int = GUESS


def _preference(c: Candidate) -> tuple[int, int, int, int]:
    # Known and validated findings rank alike: a validated email holding a known name
    # is an email.
    return (
        -min(c.strength, VALIDATED),
        -(c.end - c.start),
        LABEL_PRIORITY.get(c.label, 99),
        c.start,
    )


def resolve(candidates: Iterable[Candidate]) -> list[Span]:
    """Sorted, non-overlapping spans. Overlapping candidates form one cluster whose span is
    their union (so no fragment of a losing finding is left in clear); the cluster takes
    the label and score of its preferred candidate: the patient's own or a validated
    finding first (alike), then the longer, then by ``LABEL_PRIORITY``."""
    ordered = sorted((c for c in candidates if c.end > c.start), key=lambda c: (c.start, -c.end))
    spans: list[Span] = []
    cluster: list[Candidate] = []
    end = -1

    def close() -> None:
        best = min(cluster, key=_preference)
        spans.append(Span(cluster[0].start, end, best.label, best.score))

    for candidate in ordered:
        if cluster and candidate.start < end:
            cluster.append(candidate)
            end = max(end, candidate.end)
            continue
        if cluster:
            close()
        cluster = [candidate]
        end = candidate.end
    if cluster:
        close()
    return spans


def join_names(text: str, spans: list[Span]) -> list[Span]:
    """Adjacent PERSON spans separated by one space or hyphen are one name."""
    out: list[Span] = []
    for span in spans:
        last = out[-1] if out else None
        if (
            last is not None
            and last.label == span.label == "PERSON"
            and text[last.end : span.start] in (" ", "-")
        ):
            out[-1] = Span(last.start, span.end, "PERSON", max(last.score, span.score))
        else:
            out.append(span)
    return out


def redact(text: str, spans: Iterable[Span]) -> str:
    """``text`` with each span replaced by its typed placeholder, ``<LABEL>``."""
    parts: list[str] = []
    cursor = 0
    for span in spans:
        parts.append(text[cursor : span.start])
        parts.append(f"<{span.label}>")
        cursor = span.end
    parts.append(text[cursor:])
    return "".join(parts)
