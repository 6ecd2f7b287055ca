"""The de-identification scoring of bench/deid_metrics.py, on tiny hand-made cases."""

from __future__ import annotations

import pytest

from bench.deid_metrics import (
    Document,
    LabelCounts,
    Negative,
    Results,
    Span,
    content,
    document_errors,
    evaluate,
    score_document,
    targets,
)

#        0         1         2         3         4
#        0123456789012345678901234567890123456789012345
TEXT = "Seen John Smith on 12/03/2024, BP 132/84 today."
NAME = Span(5, 15, "PERSON", "lexicon")
DATE = Span(19, 29, "DATE")
BP = Negative(34, 40, "bp")


def one(predicted: list[Span], gold: tuple[Span, ...] = (NAME, DATE)) -> Results:
    return evaluate([Document(TEXT, gold, predicted, (BP,))])


def test_fixture_offsets_are_what_they_say() -> None:
    assert TEXT[NAME.start : NAME.end] == "John Smith"
    assert TEXT[DATE.start : DATE.end] == "12/03/2024"
    assert TEXT[BP.start : BP.end] == "132/84"


def test_exact_predictions_score_one_everywhere() -> None:
    r = one([NAME, DATE])
    assert r.labels["PERSON"].recall == 1.0
    assert r.labels["PERSON"].strict_recall == 1.0
    assert r.micro.precision == 1.0
    assert r.char_recall == 1.0
    assert r.char_precision == 1.0
    assert r.negatives_hit == 0
    assert r.name_recall("lexicon") == 1.0


def test_nothing_predicted() -> None:
    r = one([])
    assert r.labels["PERSON"].recall == 0.0
    assert r.labels["PERSON"].precision is None
    assert r.char_recall == 0.0
    assert r.char_precision is None
    assert r.micro.gold == 2


def test_partial_overlap_of_half_or_more_is_recalled_but_not_strict() -> None:
    # "Smith" covers 5 of the 9 non-space characters of "John Smith".
    r = one([Span(10, 15, "PERSON"), DATE])
    assert r.labels["PERSON"].recall == 1.0
    assert r.labels["PERSON"].strict_recall == 0.0
    assert r.labels["PERSON"].precision == 1.0
    assert r.char_recall == pytest.approx((5 + 10) / (9 + 10))


def test_partial_overlap_under_half_is_missed() -> None:
    # "John" covers 4 of 9 characters.
    r = one([Span(5, 9, "PERSON")])
    assert r.labels["PERSON"].recall == 0.0
    assert r.labels["PERSON"].precision == 1.0  # what it found is a name


def test_name_found_in_two_pieces_is_recalled_and_whitespace_does_not_count() -> None:
    r = one([Span(5, 9, "PERSON"), Span(10, 15, "PERSON"), DATE])
    assert r.labels["PERSON"].recall == 1.0
    assert r.labels["PERSON"].predicted == 2
    assert r.labels["PERSON"].correct == 2
    assert r.char_recall == 1.0


def test_prediction_mostly_outside_gold_is_wrong() -> None:
    # "Seen John Smith on" (0..18): gold covers 9 of its 15 non-space characters -> correct;
    # "Seen John" (0..9): 4 of 8 -> correct (exactly half); "Seen" alone -> wrong.
    assert one([Span(0, 18, "PERSON")]).labels["PERSON"].precision == 1.0
    assert one([Span(0, 9, "PERSON")]).labels["PERSON"].precision == 1.0
    r = one([Span(0, 4, "PERSON")])
    assert r.labels["PERSON"].precision == 0.0
    assert r.char_precision == 0.0


def test_label_mismatch_counts_for_characters_not_for_entities() -> None:
    r = one([Span(5, 15, "ADDRESS"), Span(19, 29, "DATE_OF_BIRTH")])
    assert r.labels["PERSON"].recall == 0.0
    assert r.labels["DATE"].recall == 0.0
    assert r.labels["ADDRESS"].precision == 0.0
    assert r.labels["ADDRESS"].gold == 0
    assert r.micro.precision == 0.0
    assert r.char_recall == 1.0
    assert r.char_precision == 1.0


def test_other_label_is_never_correct() -> None:
    r = one([NAME, DATE, Span(34, 40, "OTHER")])
    assert r.labels["OTHER"].precision == 0.0
    assert r.micro.precision == pytest.approx(2 / 3)


def test_hard_negative_hit_by_any_overlap() -> None:
    assert one([Span(38, 45, "PHONE")]).negatives == {"bp": [1, 1]}
    assert one([Span(41, 46, "DATE")]).negatives == {"bp": [1, 0]}


def test_names_by_source() -> None:
    gold = (NAME, Span(19, 29, "PERSON", "invented"))
    r = one([NAME], gold)
    assert r.name_recall("lexicon") == 1.0
    assert r.name_recall("invented") == 0.0
    assert r.name_recall("nowhere") is None


def test_names_by_role() -> None:
    gold = (Span(5, 15, "PERSON", "lexicon", "patient"), Span(19, 29, "PERSON", "", "clinician"))
    r = one([Span(19, 29, "PERSON")], gold)
    assert r.role_recall("patient") == 0.0
    assert r.role_recall("clinician") == 1.0
    assert r.role_recall("relative") is None
    assert r.names == {"lexicon": [1, 0]}


def test_document_errors_name_the_spans() -> None:
    found = Span(10, 15, "PERSON")
    stray = Span(34, 40, "PHONE")
    errors = document_errors(Document(TEXT, (NAME, DATE), [found, stray], (BP,)))
    assert errors.missed == (DATE,)
    assert errors.wrong == (stray,)
    assert errors.hit == (BP,)


def test_scores_add_up_over_documents() -> None:
    results = Results()
    score_document(Document(TEXT, (NAME,), [NAME]), results)
    score_document(Document(TEXT, (NAME,), []), results)
    assert results.documents == 2
    assert results.labels["PERSON"].recall == 0.5
    assert results.phi_chars == 18


def test_content_skips_whitespace_and_clips_to_text() -> None:
    assert content("a b\nc", 0, 99) == {0, 2, 4}
    assert content("abc", -3, 1) == {0}


def test_targets_pass_fail_and_not_measurable() -> None:
    perfect = one([NAME, DATE])
    verdicts = {t.name: t.verdict for t in targets(perfect)}
    assert verdicts["PHI character recall"] == "PASS"
    assert verdicts["PERSON recall"] == "PASS"
    assert verdicts["NHS_NUMBER recall"] == "n/a"  # no NHS number in the gold
    assert verdicts["hard negatives redacted"] == "PASS"
    sloppy = one([NAME, DATE, Span(34, 40, "PHONE")])
    verdicts = {t.name: t.verdict for t in targets(sloppy)}
    assert verdicts["hard negatives redacted"] == "FAIL"
    assert verdicts["precision (entity, micro)"] == "FAIL"  # 2 of 3


def test_negative_sentences_count_toward_the_hard_negative_target() -> None:
    clean = one([NAME, DATE])
    dirty = evaluate([Document("BP 120/80", (), [Span(3, 9, "PHONE")], (Negative(3, 9, "bp"),))])
    by_name = {t.name: t for t in targets(clean, dirty)}
    assert by_name["hard negatives redacted"].value == 1.0
    assert by_name["hard negatives redacted"].passed is False


def test_label_counts_empty_give_none() -> None:
    c = LabelCounts()
    assert (c.recall, c.precision, c.strict_recall, c.strict_precision) == (None,) * 4
