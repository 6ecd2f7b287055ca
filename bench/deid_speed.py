"""Benchmark: de-identified notes per second, ours against stock Presidio, in one run.

- Stock Presidio: ``AnalyzerEngine`` (``NoOpNlpEngine``, its default predefined
  recognizers) then ``AnonymizerEngine.anonymize`` per note, as a user of Presidio would
  de-identify a note without an NLP model.
- Ours: ``sde.deid.Deidentifier(nlp="none").redact(text, known)`` per note.

Both run on the same notes of the generated corpus (``bench/deid_corpus.py``, test split)
in the same process on one core, after a warm-up, best of ``--repeat`` passes. Engine build
time is reported separately. Then ours with ``detect_many(processes=2)`` against
``processes=1`` on the same notes, to show the use of a second core.

    .venv/bin/python -m bench.deid_speed [--n 600] [--repeat 3]

Target (issue 4): ours >= 3x stock Presidio's notes per second on one core; near-linear
scaling with processes.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

os.environ.setdefault("TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS", "")

from bench.deid_corpus import Note, generate
from bench.deid_eval import check_stock, presidio_classes_only

WARM_UP = 50


def best_rate(func: Callable[[], None], notes: int, repeat: int) -> float:
    """Notes per second: the best of ``repeat`` timed passes (the least disturbed one)."""
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        func()
        times.append(time.perf_counter() - started)
    return notes / min(times)


def stock_presidio(notes: Sequence[Note], repeat: int) -> tuple[float, float]:
    """(build seconds, notes per second) for stock Presidio analyse + anonymise."""
    started = time.perf_counter()
    from presidio_analyzer import AnalyzerEngine
    from presidio_analyzer.nlp_engine import NoOpNlpEngine
    from presidio_anonymizer import AnonymizerEngine

    with presidio_classes_only():
        analyzer = AnalyzerEngine(
            nlp_engine=NoOpNlpEngine(models=[{"lang_code": "en", "model_name": "no_op"}])
        )
    anonymizer = AnonymizerEngine()
    build = time.perf_counter() - started
    check_stock(analyzer)
    texts = [n.text for n in notes]

    def one_pass(batch: Sequence[str] = texts) -> None:
        for text in batch:
            anonymizer.anonymize(
                text=text, analyzer_results=analyzer.analyze(text=text, language="en")
            )

    one_pass(texts[:WARM_UP])
    return build, best_rate(one_pass, len(texts), repeat)


def _ours(notes: Sequence[Note]) -> tuple[float, Any, list[tuple[str, Any]]]:
    started = time.perf_counter()
    from sde.deid import Deidentifier, Known

    engine = Deidentifier(nlp="none")
    build = time.perf_counter() - started
    items = [(n.text, Known.from_json(n.known) if n.known else None) for n in notes]
    return build, engine, items


def ours(notes: Sequence[Note], repeat: int) -> tuple[float, float, Any, list[tuple[str, Any]]]:
    """(build seconds, notes per second, engine, items) for ``Deidentifier.redact``."""
    build, engine, items = _ours(notes)

    def one_pass(batch: Sequence[tuple[str, Any]] = items) -> None:
        for text, known in batch:
            engine.redact(text, known=known)

    one_pass(items[:WARM_UP])
    return build, best_rate(one_pass, len(items), repeat), engine, items


def scaling(
    engine: Any, items: list[tuple[str, Any]], repeat: int
) -> dict[int, tuple[float, float]]:
    """Per process count (1, 2): notes per second of ``detect_many`` end to end (worker
    start-up included) and after the first result (start-up excluded), best of ``repeat``."""
    out: dict[int, tuple[float, float]] = {}
    for processes in (1, 2):
        whole, steady = [], []
        for _ in range(repeat):
            started = time.perf_counter()
            first = None
            count = 0
            for _spans in engine.detect_many(items, processes=processes):
                count += 1
                if first is None:
                    first = time.perf_counter()
            ended = time.perf_counter()
            whole.append(count / (ended - started))
            steady.append((count - 1) / (ended - (first or started)))
        out[processes] = (max(whole), max(steady))
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=600, help="notes (test split)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--scale-n", type=int, default=0, help="notes for detect_many (10x --n)")
    args = parser.parse_args(argv)
    notes = generate("test", args.n)
    chars = statistics.mean(len(n.text) for n in notes)
    print(f"{len(notes)} notes, mean {chars:.0f} characters, best of {args.repeat} passes\n")

    build_stock, stock_rate = stock_presidio(notes, args.repeat)
    print(f"{'stock Presidio (analyze + anonymize)':<44}{stock_rate:>10,.0f} notes/s"
          f"   (engine build {build_stock:.2f} s)")  # fmt: skip
    try:
        build_ours, ours_rate, engine, items = ours(notes, args.repeat)
    except ImportError as exc:
        print(f"sde.deid not available ({exc.name or exc}): nothing to compare")
        return 0
    print(f"{'sde Deidentifier.redact':<44}{ours_rate:>10,.0f} notes/s"
          f"   (engine build {build_ours:.2f} s)")  # fmt: skip
    ratio = ours_rate / stock_rate
    verdict = "PASS" if ratio >= 3 else "FAIL"
    print(f"{'ratio, one core (target >= 3x)':<44}{ratio:>10.1f}x   {verdict}\n")

    scale_n = args.scale_n or 10 * len(items)
    many = (items * (scale_n // len(items) + 1))[:scale_n]
    rates = scaling(engine, many, args.repeat)
    print(f"sde detect_many on {len(many)} notes{'':<13}{'end to end':>14}{'after start-up':>18}")
    for processes in (1, 2):
        whole, steady = rates[processes]
        print(f"{f'  processes={processes}':<44}{whole:>10,.0f} /s{steady:>14,.0f} /s")
    print(
        f"{'scaling on 2 cores (ideal 2.0x)':<44}{rates[2][0] / rates[1][0]:>10.2f}x"
        f"{rates[2][1] / rates[1][1]:>16.2f}x"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
