"""Scoring de-identification against gold spans: pure functions, no I/O.

Definitions (all character positions count only non-whitespace characters, so a detector
that finds ``John`` and ``Smith`` separately is not penalised for the space between):

- **Partial (lenient) match, the headline.** A gold span of label L is *recalled* when the
  predicted spans of label L together cover at least half of its characters. A predicted
  span of label L is *correct* when the gold spans of label L together cover at least half
  of its characters. Per-label recall = recalled / gold; precision = correct / predicted;
  micro figures sum over labels. This is the overlap-based "relaxed" matching of the i2b2
  de-identification evaluations, with a 50% floor so a one-character touch does not count.
- **Strict match.** A gold span is matched only by a predicted span with the same start,
  end and label.
- **PHI character recall / precision (label-agnostic).** Of the characters inside any gold
  span, the share inside any predicted span (whatever its label); of the characters inside
  any predicted span, the share inside a gold span.
- **Hard negatives.** A hard-negative span is *hit* when any of its characters is inside a
  predicted span.
- **Names by source and role.** PERSON recall (partial) split by the gold span's
  ``source`` (``lexicon`` or ``invented``) and ``role`` (``patient``, ``relative``,
  ``clinician``).

Predicted labels outside the gold label set (``OTHER`` for a stock Presidio entity with no
counterpart) count as predictions that are never correct.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

PARTIAL_FLOOR = 0.5


class SpanLike(Protocol):
    @property
    def start(self) -> int: ...
    @property
    def end(self) -> int: ...
    @property
    def label(self) -> str: ...


@dataclass(frozen=True)
class Span:
    start: int
    end: int
    label: str
    source: str = ""
    role: str = ""


@dataclass(frozen=True)
class Negative:
    start: int
    end: int
    cls: str


@dataclass(frozen=True)
class Document:
    text: str
    gold: Sequence[Span]
    predicted: Sequence[Span]
    negatives: Sequence[Negative] = ()


@dataclass
class LabelCounts:
    gold: int = 0
    predicted: int = 0
    recalled: int = 0  # gold spans found (partial)
    correct: int = 0  # predicted spans right (partial)
    strict: int = 0  # exact (start, end, label) matches

    @property
    def recall(self) -> float | None:
        return self.recalled / self.gold if self.gold else None

    @property
    def precision(self) -> float | None:
        return self.correct / self.predicted if self.predicted else None

    @property
    def strict_recall(self) -> float | None:
        return self.strict / self.gold if self.gold else None

    @property
    def strict_precision(self) -> float | None:
        return self.strict / self.predicted if self.predicted else None

    def add(self, other: LabelCounts) -> None:
        self.gold += other.gold
        self.predicted += other.predicted
        self.recalled += other.recalled
        self.correct += other.correct
        self.strict += other.strict


@dataclass
class Results:
    documents: int = 0
    labels: dict[str, LabelCounts] = field(default_factory=dict)
    phi_chars: int = 0
    phi_chars_found: int = 0
    predicted_chars: int = 0
    predicted_chars_on_phi: int = 0
    negatives: dict[str, list[int]] = field(default_factory=dict)  # cls -> [total, hit]
    names: dict[str, list[int]] = field(default_factory=dict)  # source -> [total, recalled]
    roles: dict[str, list[int]] = field(default_factory=dict)  # role -> [total, recalled]

    @property
    def micro(self) -> LabelCounts:
        total = LabelCounts()
        for counts in self.labels.values():
            total.add(counts)
        return total

    @property
    def char_recall(self) -> float | None:
        return self.phi_chars_found / self.phi_chars if self.phi_chars else None

    @property
    def char_precision(self) -> float | None:
        return self.predicted_chars_on_phi / self.predicted_chars if self.predicted_chars else None

    @property
    def negatives_hit(self) -> int:
        return sum(hit for _, hit in self.negatives.values())

    @property
    def negatives_total(self) -> int:
        return sum(total for total, _ in self.negatives.values())

    def name_recall(self, source: str) -> float | None:
        total, recalled = self.names.get(source, [0, 0])
        return recalled / total if total else None

    def role_recall(self, role: str) -> float | None:
        total, recalled = self.roles.get(role, [0, 0])
        return recalled / total if total else None

    def to_json(self) -> dict[str, object]:
        def label_json(c: LabelCounts) -> dict[str, object]:
            return {
                "gold": c.gold,
                "predicted": c.predicted,
                "recall": c.recall,
                "precision": c.precision,
                "strict_recall": c.strict_recall,
                "strict_precision": c.strict_precision,
            }

        return {
            "documents": self.documents,
            "labels": {k: label_json(v) for k, v in sorted(self.labels.items())},
            "micro": label_json(self.micro),
            "phi_char_recall": self.char_recall,
            "phi_char_precision": self.char_precision,
            "hard_negatives": {
                cls: {"total": total, "hit": hit}
                for cls, (total, hit) in sorted(self.negatives.items())
            },
            "hard_negatives_hit": self.negatives_hit,
            "person_recall_by_source": {s: self.name_recall(s) for s in sorted(self.names)},
            "person_recall_by_role": {r: self.role_recall(r) for r in sorted(self.roles)},
        }


def content(text: str, start: int, end: int) -> set[int]:
    """Positions of the non-whitespace characters of ``text[start:end]``."""
    return {i for i in range(max(start, 0), min(end, len(text))) if not text[i].isspace()}


def _union(text: str, spans: Iterable[SpanLike]) -> set[int]:
    out: set[int] = set()
    for s in spans:
        out |= content(text, s.start, s.end)
    return out


def _covered(chars: set[int], by: set[int]) -> bool:
    return bool(chars) and len(chars & by) >= PARTIAL_FLOOR * len(chars)


def score_document(doc: Document, results: Results) -> None:
    """Add one document's counts to ``results``."""
    results.documents += 1
    text = doc.text
    labels = {s.label for s in doc.gold} | {s.label for s in doc.predicted}
    gold_by = {lab: _union(text, (s for s in doc.gold if s.label == lab)) for lab in labels}
    pred_by = {lab: _union(text, (s for s in doc.predicted if s.label == lab)) for lab in labels}
    exact = {(s.start, s.end, s.label) for s in doc.predicted}
    for g in doc.gold:
        counts = results.labels.setdefault(g.label, LabelCounts())
        chars = content(text, g.start, g.end)
        counts.gold += 1
        found = _covered(chars, pred_by[g.label])
        counts.recalled += found
        counts.strict += (g.start, g.end, g.label) in exact
        if g.label == "PERSON" and g.source:
            tally = results.names.setdefault(g.source, [0, 0])
            tally[0] += 1
            tally[1] += found
        if g.label == "PERSON" and g.role:
            tally = results.roles.setdefault(g.role, [0, 0])
            tally[0] += 1
            tally[1] += found
    for p in doc.predicted:
        chars = content(text, p.start, p.end)
        if not chars:
            continue
        counts = results.labels.setdefault(p.label, LabelCounts())
        counts.predicted += 1
        counts.correct += _covered(chars, gold_by[p.label])
    gold_chars = _union(text, doc.gold)
    pred_chars = _union(text, doc.predicted)
    results.phi_chars += len(gold_chars)
    results.phi_chars_found += len(gold_chars & pred_chars)
    results.predicted_chars += len(pred_chars)
    results.predicted_chars_on_phi += len(pred_chars & gold_chars)
    for n in doc.negatives:
        tally = results.negatives.setdefault(n.cls, [0, 0])
        tally[0] += 1
        tally[1] += bool(content(text, n.start, n.end) & pred_chars)


@dataclass(frozen=True)
class Errors:
    missed: tuple[Span, ...]  # gold spans not recalled (partial, same label)
    wrong: tuple[Span, ...]  # predicted spans not correct (partial, same label)
    hit: tuple[Negative, ...]  # hard negatives overlapped by a prediction


def document_errors(doc: Document) -> Errors:
    """The spans behind one document's misses, false positives and hard-negative hits."""
    text = doc.text
    labels = {s.label for s in doc.gold} | {s.label for s in doc.predicted}
    gold_by = {lab: _union(text, (s for s in doc.gold if s.label == lab)) for lab in labels}
    pred_by = {lab: _union(text, (s for s in doc.predicted if s.label == lab)) for lab in labels}
    pred_chars = _union(text, doc.predicted)
    return Errors(
        tuple(g for g in doc.gold if not _covered(content(text, g.start, g.end), pred_by[g.label])),
        tuple(
            p
            for p in doc.predicted
            if content(text, p.start, p.end)
            and not _covered(content(text, p.start, p.end), gold_by[p.label])
        ),
        tuple(n for n in doc.negatives if content(text, n.start, n.end) & pred_chars),
    )


def evaluate(docs: Iterable[Document]) -> Results:
    results = Results()
    for doc in docs:
        score_document(doc, results)
    return results


@dataclass(frozen=True)
class Target:
    name: str
    value: float | None
    threshold: float
    higher_is_better: bool = True

    @property
    def passed(self) -> bool | None:
        """None when the corpus cannot measure it (no gold span of that label)."""
        if self.value is None:
            return None
        if self.higher_is_better:
            return self.value >= self.threshold
        return self.value <= self.threshold

    @property
    def verdict(self) -> str:
        return {True: "PASS", False: "FAIL", None: "n/a"}[self.passed]


RECALL_TARGETS: tuple[tuple[str, float], ...] = (
    ("NHS_NUMBER", 0.99),
    ("EMAIL", 0.99),
    ("PHONE", 0.99),
    ("UK_POSTCODE", 0.99),
    ("PERSON", 0.95),
)


def targets(results: Results, negatives: Results | None = None) -> list[Target]:
    """The issue's targets. ``negatives``: results on the negative-only sentences, whose
    hits count toward 'no hard negative redacted' too."""
    out = [Target("PHI character recall", results.char_recall, 0.98)]
    for label, floor in RECALL_TARGETS:
        counts = results.labels.get(label, LabelCounts())
        out.append(Target(f"{label} recall", counts.recall, floor))
    out.append(Target("precision (entity, micro)", results.micro.precision, 0.90))
    hits = results.negatives_hit + (negatives.negatives_hit if negatives else 0)
    measured = results.negatives_total + (negatives.negatives_total if negatives else 0)
    out.append(Target("hard negatives redacted", float(hits) if measured else None, 0.0, False))
    return out
