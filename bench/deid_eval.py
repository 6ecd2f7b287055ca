"""Benchmark: how well free text is de-identified, ours against stock Presidio.

Runs each detector over the annotated corpus of ``bench/deid_corpus.py`` (or an external
annotated corpus) and scores it with ``bench/deid_metrics.py`` (see that module for the
exact definitions of partial and strict matching, character recall and hard negatives).

Detectors, side by side:

- ``sde``: ``sde.deid.Deidentifier(nlp="none").detect(text, known=Known.from_json(known))``;
- ``presidio``: stock Presidio 2.2 as shipped: ``AnalyzerEngine`` with a ``NoOpNlpEngine``
  (no spaCy model can be installed here) and its default predefined recognizers, results
  reduced the way ``AnonymizerEngine`` resolves overlaps before replacing them;
- ``presidio-uk``: the same plus the UK recognizers Presidio ships disabled
  (``UkPostcodeRecognizer``, ``UkNinoRecognizer``), the fairer baseline.

Presidio entity types map to ours: PERSON, PHONE_NUMBER->PHONE, EMAIL_ADDRESS->EMAIL,
UK_NHS->NHS_NUMBER, DATE_TIME->DATE, URL, UK_POSTCODE, UK_NINO, LOCATION->ADDRESS; anything
else (US_DRIVER_LICENSE, CREDIT_CARD...) becomes OTHER, which is never correct.

Targets (issue 4), checked on the notes (hard negatives also on the negative-only
sentences): PHI character recall >= 0.98; NHS_NUMBER, EMAIL, PHONE, UK_POSTCODE recall
>= 0.99; PERSON recall >= 0.95; micro precision >= 0.90; no hard negative redacted.

    .venv/bin/python -m bench.deid_eval --split test [--n 600] [--json out.json] [--check]
    .venv/bin/python -m bench.deid_eval --external corpus.jsonl

The exit code is 0 whatever the figures (it is a benchmark) unless ``--check`` is given,
when it is 1 if a target fails for ``sde``.

External corpus format, one JSON object a line: ``{"id", "text", "known"?, "spans":
[{"start", "end", "label"}]}`` (``source`` on a PERSON span and ``negatives: [{"start",
"end", "class"}]`` are optional).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

os.environ.setdefault("TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS", "")

from bench.deid_corpus import NEGATIVE_CLASSES, PHI_LABELS, Note, generate, negative_sentences
from bench.deid_metrics import (
    Document,
    Negative,
    Results,
    Span,
    document_errors,
    evaluate,
    targets,
)

Detector = Callable[[str, dict[str, Any] | None], list[Span]]

PRESIDIO_LABELS: dict[str, str] = {
    "PERSON": "PERSON",
    "PHONE_NUMBER": "PHONE",
    "EMAIL_ADDRESS": "EMAIL",
    "UK_NHS": "NHS_NUMBER",
    "DATE_TIME": "DATE",
    "URL": "URL",
    "UK_POSTCODE": "UK_POSTCODE",
    "UK_NINO": "UK_NINO",
    "LOCATION": "ADDRESS",
}
OTHER = "OTHER"


@dataclass(frozen=True)
class Item:
    """One text to score: gold spans, hard negatives and the patient's known values."""

    id: str
    text: str
    known: dict[str, Any] | None
    gold: tuple[Span, ...]
    negatives: tuple[Negative, ...] = ()


def items_from_notes(notes: Iterable[Note]) -> list[Item]:
    return [
        Item(
            n.id,
            n.text,
            n.known,
            tuple(Span(s.start, s.end, s.label, s.source, s.role) for s in n.spans),
            tuple(Negative(x.start, x.end, x.cls) for x in n.negatives),
        )
        for n in notes
    ]


def items_from_jsonl(path: str) -> list[Item]:
    out: list[Item] = []
    with open(path, encoding="utf-8") as fh:
        for number, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            row = json.loads(line)
            text = row["text"]
            gold = []
            for s in row.get("spans", ()):
                start, end = int(s["start"]), int(s["end"])
                if not 0 <= start < end <= len(text):
                    raise ValueError(f"line {number}: a span lies outside its text")
                source, role = str(s.get("source", "")), str(s.get("role", ""))
                gold.append(Span(start, end, str(s["label"]), source, role))
            negatives = tuple(
                Negative(int(x["start"]), int(x["end"]), str(x.get("class", "negative")))
                for x in row.get("negatives", ())
            )
            out.append(
                Item(str(row.get("id", number)), text, row.get("known"), tuple(gold), negatives)
            )
    return out


# --- detectors ---------------------------------------------------------------------------


def build_stock_presidio(uk: bool = False) -> tuple[Any, Any]:
    """(AnalyzerEngine, AnonymizerEngine) as shipped, with no NLP model."""
    from presidio_analyzer import AnalyzerEngine
    from presidio_analyzer.nlp_engine import NoOpNlpEngine
    from presidio_anonymizer import AnonymizerEngine

    with presidio_classes_only():
        analyzer = AnalyzerEngine(
            nlp_engine=NoOpNlpEngine(models=[{"lang_code": "en", "model_name": "no_op"}])
        )
    if uk:
        from presidio_analyzer.predefined_recognizers import (
            UkNinoRecognizer,
            UkPostcodeRecognizer,
        )

        analyzer.registry.add_recognizer(UkPostcodeRecognizer())
        analyzer.registry.add_recognizer(UkNinoRecognizer())
    check_stock(analyzer)
    return analyzer, AnonymizerEngine()


@contextlib.contextmanager
def presidio_classes_only() -> Iterator[None]:
    """Make Presidio's loader pick its own recognizer classes.

    Presidio finds the predefined recognizers of its YAML by class name among every
    subclass of EntityRecognizer loaded in the process (a set, so in no fixed order): once
    another module defines a recognizer class of the same name (sde.deid prefixes its own
    with ``Sde`` for this reason), that class can stand in
    for Presidio's own and the "stock" baseline is not stock. While this is active, a name
    resolves to the class from ``presidio_analyzer`` when there is one."""
    from presidio_analyzer.recognizer_registry.recognizers_loader_utils import (
        RecognizerListLoader,
    )

    saved = RecognizerListLoader.__dict__["get_existing_recognizer_cls"]
    original = RecognizerListLoader.get_existing_recognizer_cls

    def own(recognizer_name: str) -> Any:
        for cls in RecognizerListLoader.get_all_existing_recognizers():
            if cls.__name__ == recognizer_name and cls.__module__.startswith("presidio_analyzer."):
                return cls
        return original(recognizer_name)

    RecognizerListLoader.get_existing_recognizer_cls = staticmethod(own)
    try:
        yield
    finally:
        RecognizerListLoader.get_existing_recognizer_cls = saved


def check_stock(analyzer: Any) -> None:
    """Refuse a baseline that is not stock (see ``presidio_classes_only``)."""
    foreign = sorted(
        type(r).__name__
        for r in analyzer.registry.recognizers
        if not type(r).__module__.startswith("presidio_analyzer.")
    )
    if foreign:
        raise RuntimeError(
            "stock Presidio was built with recognizers from outside Presidio "
            f"({', '.join(foreign)})"
        )


def resolve_like_anonymizer(anonymizer: Any, results: Sequence[Any]) -> list[Any]:
    """The analyzer results the anonymizer would replace (its default conflict handling)."""
    from presidio_anonymizer.entities import ConflictResolutionStrategy, RecognizerResult

    copies = [RecognizerResult(r.entity_type, r.start, r.end, r.score) for r in results]
    return list(
        anonymizer._remove_conflicts_and_get_text_manipulation_data(
            copies, ConflictResolutionStrategy.MERGE_SIMILAR_OR_CONTAINED
        )
    )


def stock_presidio_detector(uk: bool = False) -> Detector:
    analyzer, anonymizer = build_stock_presidio(uk)

    def detect(text: str, known: dict[str, Any] | None) -> list[Span]:
        found = resolve_like_anonymizer(anonymizer, analyzer.analyze(text=text, language="en"))
        return [Span(r.start, r.end, PRESIDIO_LABELS.get(r.entity_type, OTHER)) for r in found]

    return detect


def sde_detector() -> Detector:
    from sde.deid import Deidentifier, Known

    engine = Deidentifier(nlp="none")

    def detect(text: str, known: dict[str, Any] | None) -> list[Span]:
        k = Known.from_json(known) if known else None
        return [Span(s.start, s.end, s.label) for s in engine.detect(text, known=k)]

    return detect


SYSTEMS: dict[str, Callable[[], Detector]] = {
    "sde": sde_detector,
    "presidio": lambda: stock_presidio_detector(uk=False),
    "presidio-uk": lambda: stock_presidio_detector(uk=True),
}


def run(detector: Detector, items: Sequence[Item]) -> Results:
    return evaluate(Document(i.text, i.gold, detector(i.text, i.known), i.negatives) for i in items)


def print_errors(name: str, detector: Detector, items: Sequence[Item], limit: int) -> None:
    """Up to ``limit`` misses, false positives and hard-negative hits of one detector, each
    with a little context. Generated corpus only: an external corpus's text is never shown."""
    kinds: dict[str, list[str]] = {"missed": [], "wrong": [], "negative hit": []}

    def shown(item: Item, start: int, end: int) -> str:
        before = item.text[max(0, start - 25) : start].replace("\n", " ")
        after = item.text[end : end + 25].replace("\n", " ")
        return f"{before}[{item.text[start:end]}]{after}"

    for item in items:
        doc = Document(item.text, item.gold, detector(item.text, item.known), item.negatives)
        errors = document_errors(doc)
        for g in errors.missed:
            kinds["missed"].append(f"{g.label:<16}{item.id}  {shown(item, g.start, g.end)}")
        for p in errors.wrong:
            kinds["wrong"].append(f"{p.label:<16}{item.id}  {shown(item, p.start, p.end)}")
        for n in errors.hit:
            kinds["negative hit"].append(f"{n.cls:<16}{item.id}  {shown(item, n.start, n.end)}")
    for kind, lines in kinds.items():
        print(f"\n{name}: {kind} ({len(lines)})")
        for line in sorted(lines)[:limit]:
            print(f"  {line}")


# --- report ------------------------------------------------------------------------------


def _f(value: float | None) -> str:
    return "   -  " if value is None else f"{value:6.3f}"


def format_report(
    title: str, results: dict[str, Results], negatives: dict[str, Results] | None
) -> str:
    names = list(results)
    lines = [title, ""]
    head = f"{'label':<16}{'gold':>6}" + "".join(f" | {n[:19]:^20}" for n in names)
    sub = f"{'':<16}{'':>6}" + "".join(f" | {'P':>6}{'R':>7}{'R-strict':>9}" for _ in names)
    lines += [head, sub, "-" * len(sub)]
    labels = [lab for lab in PHI_LABELS if any(lab in r.labels for r in results.values())]
    labels += sorted({lab for r in results.values() for lab in r.labels} - set(labels))
    for lab in [*labels, "micro"]:
        gold = 0
        cells = []
        for name in names:
            r = results[name]
            c = r.micro if lab == "micro" else r.labels.get(lab)
            if c is None:
                cells.append(f" | {'':>6}{'':>7}{'':>9}")
                continue
            gold = max(gold, c.gold)
            cells.append(f" | {_f(c.precision)} {_f(c.recall)}  {_f(c.strict_recall)}")
        lines.append(f"{lab:<16}{gold:>6}" + "".join(cells))
    lines.append("")

    def row(label: str, values: Iterable[str]) -> str:
        return f"{label:<34}" + "".join(f"{v:>14}" for v in values)

    lines.append(row("", (n[:13] for n in names)))
    lines.append(row("PHI character recall", (_f(r.char_recall) for r in results.values())))
    lines.append(row("PHI character precision", (_f(r.char_precision) for r in results.values())))
    for source in ("lexicon", "invented"):
        lines.append(
            row(
                f"PERSON recall, {source} names",
                (_f(r.name_recall(source)) for r in results.values()),
            )
        )
    for role in ("patient", "relative", "clinician"):
        lines.append(
            row(f"PERSON recall, {role}s", (_f(r.role_recall(role)) for r in results.values()))
        )
    classes = sorted(
        {c for r in results.values() for c in r.negatives}
        | {c for r in (negatives or {}).values() for c in r.negatives},
        key=lambda c: NEGATIVE_CLASSES.index(c) if c in NEGATIVE_CLASSES else 99,
    )
    if classes:
        lines.append("")
        lines.append(row("hard negatives hit (notes+sentences)", ()))
        for cls in classes:
            cells = []
            for name in names:
                a = results[name].negatives.get(cls, [0, 0])
                b = (negatives or {}).get(name, Results()).negatives.get(cls, [0, 0])
                cells.append(f"{a[1] + b[1]}/{a[0] + b[0]}")
            lines.append(row(f"  {cls}", cells))
    lines.append("")
    lines.append(row("targets", ()))
    per_system = {n: targets(results[n], (negatives or {}).get(n)) for n in names}
    for i, target in enumerate(per_system[names[0]]):
        cells = []
        for name in names:
            t = per_system[name][i]
            shown = (
                "n/a"
                if t.value is None
                else (f"{t.value:.0f}" if not t.higher_is_better else f"{t.value:.3f}")
            )
            cells.append(f"{shown} {t.verdict}")
        op = ">=" if target.higher_is_better else "=="
        threshold = f"{target.threshold:g}"
        lines.append(row(f"  {target.name} {op} {threshold}", cells))
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--split", choices=("dev", "test"), default="test")
    parser.add_argument("--n", type=int, default=600, help="notes in the generated corpus")
    parser.add_argument("--external", help="an annotated JSONL corpus instead of ours")
    parser.add_argument("--systems", default="sde,presidio,presidio-uk")
    parser.add_argument("--json", dest="json_out", help="write the results as JSON here")
    parser.add_argument("--check", action="store_true", help="exit 1 if an sde target fails")
    parser.add_argument(
        "--errors", type=int, default=0, metavar="N", help="list N errors per kind (ours only)"
    )
    args = parser.parse_args(argv)

    if args.external and args.errors:
        parser.error("--errors shows text, so it is refused for an external corpus")
    if args.external:
        items = items_from_jsonl(args.external)
        negative_items: list[Item] = []
        title = f"external corpus {os.path.basename(args.external)}: {len(items)} texts"
    else:
        items = items_from_notes(generate(args.split, args.n))
        negative_items = items_from_notes(negative_sentences(args.split))
        title = (
            f"generated corpus, split {args.split}: {len(items)} notes, "
            f"{len(negative_items)} negative-only sentences"
        )
    results: dict[str, Results] = {}
    negatives: dict[str, Results] = {}
    timings: dict[str, float] = {}
    names = [s.strip() for s in args.systems.split(",") if s.strip()]
    for name in names:
        if name not in SYSTEMS:
            parser.error(f"unknown system {name}; choose from {', '.join(SYSTEMS)}")
    detectors: dict[str, Detector] = {}
    for name in names:
        try:
            detectors[name] = SYSTEMS[name]()
        except ImportError as exc:
            print(f"[{name}: not available ({exc.name or exc}); skipped]", file=sys.stderr)
    for name in [n for n in names if n in detectors]:
        detector = detectors[name]
        started = time.perf_counter()
        results[name] = run(detector, items)
        if negative_items:
            negatives[name] = run(detector, negative_items)
        timings[name] = time.perf_counter() - started
    if not results:
        print("no detector could run", file=sys.stderr)
        return 1
    print(format_report(title, results, negatives or None))
    if args.errors:
        shown = "sde" if "sde" in detectors else next(iter(detectors))
        print_errors(shown, detectors[shown], items + negative_items, args.errors)
    if args.json_out:
        payload = {
            "corpus": title,
            "split": None if args.external else args.split,
            "systems": {
                name: {
                    "notes": r.to_json(),
                    "negative_sentences": negatives[name].to_json() if name in negatives else None,
                    "targets": [
                        {
                            "name": t.name,
                            "value": t.value,
                            "threshold": t.threshold,
                            "verdict": t.verdict,
                        }
                        for t in targets(r, negatives.get(name))
                    ],
                    "seconds": timings[name],
                }
                for name, r in results.items()
            },
        }
        with open(args.json_out, "w", encoding="utf-8") as fh:
            json.dump(payload, fh, indent=2)
    if args.check:
        if "sde" not in results:
            print("--check: the sde detector did not run", file=sys.stderr)
            return 1
        if any(t.passed is False for t in targets(results["sde"], negatives.get("sde"))):
            return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
