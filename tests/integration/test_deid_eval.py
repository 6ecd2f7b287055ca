"""The de-identification evaluation corpus (bench/deid_corpus.py) and benchmark
(bench/deid_eval.py): annotations exactly right, deterministic, complete; the benchmark
runs end to end on stock Presidio."""

from __future__ import annotations

import datetime as dt
import itertools
import json
import re
from collections import Counter
from pathlib import Path

import pytest

from bench import deid_corpus as corpus
from bench.deid_corpus import (
    NEGATIVE_CLASSES,
    PHI_LABELS,
    TEMPLATES,
    Note,
    generate,
    lexicon_words,
    negative_sentences,
)
from bench.deid_eval import items_from_jsonl, items_from_notes, run
from bench.deid_metrics import Span, targets
from sde.domain import nhs_number


@pytest.fixture(scope="module")
def dev() -> list[Note]:
    return generate("dev", 600)


@pytest.fixture(scope="module")
def test_split() -> list[Note]:
    return generate("test", 600)


_MONTHS = {m[:3].lower(): i for i, m in enumerate(corpus.MONTHS, start=1)}


def parse_date(value: str) -> dt.date | tuple[int, int]:
    """A full date, or (year, month) for a partial one, from any form the corpus writes."""
    v = re.sub(r"(\d)(st|nd|rd|th)\b", r"\1", value.strip())
    if m := re.fullmatch(r"(\d{4})-(\d\d)-(\d\d)", v):
        return dt.date(int(m[1]), int(m[2]), int(m[3]))
    if m := re.fullmatch(r"(\d{1,2})[/.](\d{1,2})[/.](\d{4}|\d\d)", v):
        year = int(m[3]) if len(m[3]) == 4 else None
        if year is None:
            raise AssertionError("two-digit years are checked by the caller")
        return dt.date(year, int(m[2]), int(m[1]))
    if m := re.fullmatch(r"(\d{1,2})[ -]([A-Za-z]+)[ -](\d{4})", v):
        return dt.date(int(m[3]), _MONTHS[m[2][:3].lower()], int(m[1]))
    if m := re.fullmatch(r"([A-Za-z]+) (\d{1,2}), (\d{4})", v):
        return dt.date(int(m[3]), _MONTHS[m[1][:3].lower()], int(m[2]))
    if m := re.fullmatch(r"([A-Za-z]+)[ -](\d{4})", v):
        return (int(m[2]), _MONTHS[m[1][:3].lower()])
    raise AssertionError("unparsed date form")


def same_day(written: str, iso: str) -> bool:
    day = dt.date.fromisoformat(iso)
    if m := re.fullmatch(r"(\d\d)/(\d\d)/(\d\d)", written):
        return (int(m[1]), int(m[2]), int(m[3])) == (day.day, day.month, day.year % 100)
    return parse_date(written) == day


POSTCODE = re.compile(r"[A-Z]{1,2}[0-9][0-9A-Z]? ?[0-9][A-Z]{2}", re.IGNORECASE)
NINO = re.compile(r"[A-Z]{2} ?\d\d ?\d\d ?\d\d ?[A-D]")
PHONE_CHARS = re.compile(r"[0-9+() .\-]+")


def test_corpus_size_and_templates(dev: list[Note]) -> None:
    assert len(dev) >= 500
    assert len(TEMPLATES) >= 40
    assert len({name for name, _ in TEMPLATES}) == len(TEMPLATES)
    used = Counter(n.template for n in dev)
    assert set(used) == {name for name, _ in TEMPLATES}
    assert min(used.values()) >= 10


def test_deterministic_per_seed_and_splits_differ(dev: list[Note]) -> None:
    again = generate("dev", 50)
    assert [n.to_json() for n in again] == [n.to_json() for n in dev[:50]]
    other = generate("test", 50)
    assert not {n.text for n in other} & {n.text for n in dev}


def test_spans_in_bounds_trimmed_and_disjoint(dev: list[Note], test_split: list[Note]) -> None:
    for note in dev + test_split:
        spans = sorted(
            [(s.start, s.end) for s in note.spans] + [(x.start, x.end) for x in note.negatives]
        )
        for start, end in spans:
            assert 0 <= start < end <= len(note.text), note.id
            piece = note.text[start:end]
            assert piece == piece.strip(), note.id
        for (_, end), (start, _) in itertools.pairwise(spans):
            assert end <= start, f"overlapping spans in {note.id}"
        assert {s.label for s in note.spans} <= set(PHI_LABELS)


def test_each_label_span_holds_a_value_of_that_kind(dev: list[Note]) -> None:
    seen: Counter[str] = Counter()
    for note in dev:
        known = note.known or {}
        for s in note.spans:
            value = note.text[s.start : s.end]
            seen[s.label] += 1
            if s.label == "NHS_NUMBER":
                assert nhs_number.is_valid(value), note.id
                if known.get("nhs_number"):
                    assert nhs_number.normalise(value) == known["nhs_number"], note.id
            elif s.label == "DATE_OF_BIRTH":
                if known.get("date_of_birth"):
                    assert same_day(value, known["date_of_birth"]), note.id
            elif s.label == "DATE":
                if not re.fullmatch(r"\d\d/\d\d/\d\d", value):
                    parse_date(value)
            elif s.label == "PHONE":
                assert PHONE_CHARS.fullmatch(value), note.id
                digits = re.sub(r"\D", "", value.replace("(0)", ""))
                digits = "0" + digits[2:] if value.startswith("+44") else digits
                assert len(digits) in (10, 11), note.id
                assert digits.startswith("0"), note.id
            elif s.label == "EMAIL":
                assert re.fullmatch(r"[a-z0-9._]+@[a-z0-9.\-]+\.[a-z]+", value), note.id
            elif s.label == "UK_POSTCODE":
                assert POSTCODE.fullmatch(value), note.id
                if known.get("postcode"):
                    assert value.replace(" ", "").upper() == known["postcode"].replace(" ", "")
            elif s.label == "UK_NINO":
                assert NINO.fullmatch(value), note.id
            elif s.label == "URL":
                assert value.startswith(("http://", "https://", "www.")), note.id
            elif s.label == "HOSPITAL_NUMBER":
                assert re.fullmatch(r"[A-Z0-9\-]{7,12}", value), note.id
                if known.get("hospital_numbers"):
                    assert value in known["hospital_numbers"], note.id
            elif s.label == "ADDRESS":
                assert not POSTCODE.search(value), note.id
                if known.get("address"):
                    assert value in known["address"], note.id
            elif s.label == "PERSON":
                assert s.source in ("lexicon", "invented"), note.id
                assert s.role in ("patient", "relative", "clinician"), note.id
                assert re.fullmatch(r"[^\W\d_][\w'\-. ,\u2019]*", value), note.id
                assert value.split()[0].rstrip(".").lower() not in ("dr", "mr", "mrs", "ms")
    assert set(seen) == set(PHI_LABELS)


def test_patient_names_match_known(dev: list[Note]) -> None:
    checked = 0
    for note in dev:
        if not note.known or len(note.known["names"]) != 2:
            continue
        # Upper-casing a dotless i (U+0131) and back gives "i": fold it before comparing.
        first, last = (n.lower().replace("\u0131", "i") for n in note.known["names"])
        allowed = {*first.split(), *last.split(), first[0], first[0] + last[0]}
        for s in note.spans:
            if s.role == "patient" and s.label == "PERSON":
                written = note.text[s.start : s.end].lower().replace("\u0131", "i")
                words = re.split(r"[\s,.]+", written)
                assert all(w in allowed for w in words if w), note.id
                checked += 1
    assert checked > 300


def test_names_from_lexicon_and_invented(dev: list[Note]) -> None:
    sources = Counter(s.source for n in dev for s in n.spans if s.label == "PERSON")
    assert set(sources) == {"lexicon", "invented"}
    assert 0.08 < sources["invented"] / sum(sources.values()) < 0.25
    lexicon = lexicon_words()
    for note in dev:
        for s in note.spans:
            if s.source == "invented":
                for word in re.split(r"[\s,.]+", note.text[s.start : s.end]):
                    if len(word) > 2:  # initials aside
                        assert word.lower() not in lexicon, note.id


def test_all_forms_of_identifiers_present(dev: list[Note]) -> None:
    values: dict[str, list[str]] = {}
    for note in dev:
        for s in note.spans:
            values.setdefault(s.label, []).append(note.text[s.start : s.end])
    nhs = values["NHS_NUMBER"]
    assert any(" " in v for v in nhs)
    assert any("-" in v for v in nhs)
    assert any(v.isdigit() for v in nhs)
    phones = values["PHONE"]
    for mark in ("+44", "(0)", "(0", ".", "-"):
        assert any(mark in v for v in phones), mark
    assert any(v.startswith("07") for v in phones)
    assert any(v.startswith("01") for v in phones)
    dates = values["DATE"] + values["DATE_OF_BIRTH"]
    forms = (
        r"\d\d/\d\d/\d{4}",
        r"\d\d-[A-Z][a-z]{2}-\d{4}",
        r"\d+(st|nd|rd|th) [A-Z][a-z]+ \d{4}",
        r"\d{4}-\d\d-\d\d",
        r"[A-Z][a-z]{2} \d{4}",
    )
    for form in forms:
        assert any(re.fullmatch(form, v) for v in dates), form
    names = values["PERSON"]
    assert any(v.isupper() and len(v) > 3 for v in names)  # LAST
    assert any(v.islower() for v in names)  # lower case
    assert any(re.fullmatch(r"[A-Z]\. ?\S+", v) for v in names)  # J. Patel
    possessive = [n.text[s.end : s.end + 2] for n in dev for s in n.spans if s.label == "PERSON"]
    assert "'s" in possessive  # Amina's
    addresses = values["ADDRESS"]
    assert any(v.startswith("Flat") for v in addresses)
    assert any(v in corpus.HOUSE_NAMES for v in addresses)
    assert any(v in corpus.TOWNS for v in addresses)


def test_hard_negatives_all_classes_and_values(dev: list[Note]) -> None:
    negs = [(x.cls, n.text[x.start : x.end]) for n in dev for x in n.negatives]
    assert {c for c, _ in negs} == set(NEGATIVE_CLASSES)
    pools = {
        "drug": corpus.DRUGS,
        "lab": corpus.LABS,
        "score": corpus.SCORES,
        "code": corpus.CODES,
        "shorthand": corpus.SHORTHAND,
        "eponym": corpus.EPONYMS,
        "hospital": corpus.HOSPITALS,
        "ward": corpus.WARDS,
        "role": corpus.ROLES,
    }
    for cls, value in negs:
        if cls in pools:
            assert value in pools[cls], cls
        elif cls == "bp":
            assert re.fullmatch(r"\d{3}/\d{2,3}", value)
        elif cls == "age":
            assert re.search(r"\d", value)
        elif cls == "bad_nhs":
            assert re.fullmatch(r"\d{10}", value)
            assert not nhs_number.is_valid(value)


def test_hard_negatives_never_share_a_word_with_a_name_in_the_note(dev: list[Note]) -> None:
    for note in dev:
        names = {
            w.lower()
            for s in note.spans
            if s.label == "PERSON"
            for w in re.split(r"[^\w]+", note.text[s.start : s.end])
            if len(w) > 2
        }
        for x in note.negatives:
            words = {w.lower() for w in re.split(r"[^\w]+", note.text[x.start : x.end])}
            assert not words & names, note.id


def test_known_present_partial_and_absent(dev: list[Note]) -> None:
    knowns = [n.known for n in dev]
    assert any(k is None for k in knowns)
    present = [k for k in knowns if k]
    assert all(k["names"] for k in present)
    assert any(k["nhs_number"] is None for k in present)
    assert any(k["nhs_number"] for k in present)
    assert any(k["relatives"] for k in present)
    assert any(k["phones"] for k in present)


def test_negative_sentences_hold_only_negatives() -> None:
    sentences = negative_sentences("test", 100)
    assert len(sentences) == 100
    assert all(not s.spans and s.negatives for s in sentences)
    classes = {x.cls for s in sentences for x in s.negatives}
    assert classes == set(NEGATIVE_CLASSES)


def test_jsonl_round_trip_matches(dev: list[Note], tmp_path: Path) -> None:
    path = tmp_path / "corpus.jsonl"
    path.write_text("\n".join(json.dumps(n.to_json()) for n in dev[:30]) + "\n", encoding="utf-8")
    assert items_from_jsonl(str(path)) == items_from_notes(dev[:30])


def test_oracle_detector_meets_every_target(test_split: list[Note]) -> None:
    items = items_from_notes(test_split)
    by_text = {i.text: list(i.gold) for i in items}
    results = run(lambda text, known: by_text[text], items)
    negatives = run(lambda text, known: [], items_from_notes(negative_sentences("test", 50)))
    assert results.char_recall == 1.0
    assert results.char_precision == 1.0
    assert results.negatives_hit == 0  # gold never overlaps a hard negative
    assert all(t.passed for t in targets(results, negatives))


def test_blind_detector_fails(test_split: list[Note]) -> None:
    items = items_from_notes(test_split[:50])
    results = run(lambda text, known: [Span(0, len(text), "PERSON")], items)
    verdicts = {t.name: t.passed for t in targets(results)}
    assert verdicts["hard negatives redacted"] is False
    assert verdicts["precision (entity, micro)"] is False
    assert verdicts["NHS_NUMBER recall"] is False


@pytest.mark.presidio
def test_benchmark_runs_on_stock_presidio(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from bench.deid_eval import main

    out = tmp_path / "results.json"
    assert (
        main(["--split", "dev", "--n", "60", "--systems", "presidio-uk", "--json", str(out)]) == 0
    )
    payload = json.loads(out.read_text(encoding="utf-8"))
    stock = payload["systems"]["presidio-uk"]
    notes = stock["notes"]
    # The description of stock Presidio without an NLP model holds on this corpus.
    assert notes["labels"]["PERSON"]["recall"] == 0.0
    assert notes["phi_char_recall"] < 0.5
    assert (
        stock["notes"]["hard_negatives_hit"] + stock["negative_sentences"]["hard_negatives_hit"] > 0
    )
    assert notes["labels"]["EMAIL"]["recall"] == 1.0
    printed = capsys.readouterr().out
    assert "PHI character recall" in printed
    assert "FAIL" in printed
    # --check refuses to pass without our detector.
    assert main(["--split", "dev", "--n", "5", "--systems", "presidio", "--check"]) == 1


@pytest.mark.presidio
def test_external_corpus_is_scored_and_its_text_never_shown(
    dev: list[Note], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from bench.deid_eval import main

    path = tmp_path / "external.jsonl"
    rows = [{"id": n.id, "text": n.text, "spans": n.to_json()["spans"]} for n in dev[:20]]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    out = tmp_path / "external.json"
    assert main(["--external", str(path), "--systems", "presidio", "--json", str(out)]) == 0
    payload = json.loads(out.read_text(encoding="utf-8"))
    assert payload["systems"]["presidio"]["notes"]["documents"] == 20
    capsys.readouterr()
    with pytest.raises(SystemExit):
        main(["--external", str(path), "--errors", "3"])
    assert dev[0].text[:30] not in capsys.readouterr().err


@pytest.mark.presidio
def test_ours_beats_stock_presidio_in_the_same_run(tmp_path: Path) -> None:
    from bench.deid_eval import main

    out = tmp_path / "both.json"
    args = ["--split", "dev", "--n", "60", "--systems", "sde,presidio", "--json", str(out)]
    assert main(args) == 0
    systems = json.loads(out.read_text(encoding="utf-8"))["systems"]
    ours, stock = systems["sde"]["notes"], systems["presidio"]["notes"]
    assert ours["phi_char_recall"] > stock["phi_char_recall"]
    assert ours["labels"]["PERSON"]["recall"] > 0.5


@pytest.mark.presidio
def test_stock_baseline_stays_stock_after_our_engine_is_imported() -> None:
    from presidio_analyzer.recognizer_registry.recognizers_loader_utils import (
        RecognizerListLoader,
    )

    import sde.deid  # noqa: F401 - loads more EntityRecognizer subclasses into the process
    from bench.deid_eval import build_stock_presidio

    before = RecognizerListLoader.__dict__["get_existing_recognizer_cls"]
    analyzer, _ = build_stock_presidio(uk=True)
    modules = {type(r).__module__.split(".")[0] for r in analyzer.registry.recognizers}
    assert modules == {"presidio_analyzer"}
    assert {"PhoneRecognizer", "DateRecognizer", "UkPostcodeRecognizer"} <= {
        type(r).__name__ for r in analyzer.registry.recognizers
    }
    assert RecognizerListLoader.__dict__["get_existing_recognizer_cls"] is before
