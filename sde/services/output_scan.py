"""The airlock's identifier scanner: sde's de-identification engine run over the text of
an output file (a table's cells, a report, a script), counting what it finds.

``presidio_scanner()`` is what ``sde.domain.sdc.files.check_file`` takes as
``scan_text``. It uses the pattern recognisers only (``nlp="none"``: fast, offline) and
one engine per process, built on first use (building loads the name lexicon, a few
seconds). Findings are counted by entity type; the text found is never returned.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import lru_cache
from typing import TYPE_CHECKING

from sde.deid.spans import LABELS, words

if TYPE_CHECKING:
    from sde.deid import Deidentifier

# What an output must not hold. Left out: DATE (study periods and event dates are normal
# in a report; a date of birth is still found, and full dates in tables are the
# ``dates_of_birth`` rule's) and URL (references and links in a report are normal).
ENTITIES: tuple[str, ...] = tuple(label for label in LABELS if label not in ("DATE", "URL"))

# A "name" that is a code symbol (one word: snake_case, dotted, with digits) is not a person.
_CODE_SYMBOL = re.compile(r"\S*(?:_|\d|\.\S)\S*")
# Nor is an eponym of a statistical method, score or condition *used as one*, which
# reports and code name all the time: next to another (Kaplan-Meier, Mann Whitney) or
# followed by the word it names (Fisher's exact test, Crohn's disease, Cox regression).
# A bare "Wilson" or "Dr Cox" is still a person.
EPONYMS = words(
    "aalen addison alzheimer altman asperger barr bayes bell benjamini bland bonferroni"
    " breslow charlson cochran cohen cox cronbach crohn cushing down dunn dunnett durbin"
    " epstein fisher friedman gauss graves guillain haenszel hashimoto hochberg hodgkin holm"
    " hosmer huntington kaplan kendall kolmogorov kruskal lemeshow likert mann mantel meier"
    " nelson pearson poisson raynaud scheffe shapiro smirnov spearman student tukey wald"
    " wallis watson welch whitney wilcoxon wilk wilson"
)
METHOD_WORDS = words(
    "test tests exact estimator estimate curve curves plot score index disease syndrome"
    " lymphoma regression model correction interval distribution coefficient rank alpha"
    " kappa method statistic theorem criterion procedure palsy phenomenon virus"
)
_NAME_PARTS = re.compile(r"[\s\-\u2013'\u2019]+")
_JOINED_BEFORE = re.compile(r"([A-Za-z]+)[ \t\-\u2013]+$")
_AFTER = re.compile(r"(?:['\u2019]s)?([\s\-\u2013]+)([A-Za-z]+)")


def _eponym(text: str, start: int, end: int) -> bool:
    """Whether the name ``text[start:end]`` is an eponym used as a method's name."""
    found = text[start:end]
    parts = [p.lower() for p in _NAME_PARTS.split(found) if p and p.lower() != "s"]
    if not parts or not all(p in EPONYMS for p in parts):
        return False
    if len(parts) > 1 and re.search(r"[\-\u2013]", found):
        return True
    before = _JOINED_BEFORE.search(text, max(0, start - 20), start)
    if before is not None and before.group(1).lower() in EPONYMS:
        return True
    after = _AFTER.match(text, end, end + 30)
    if after is None:
        return False
    word = after.group(2).lower()
    return word in METHOD_WORDS or word in EPONYMS


@lru_cache(maxsize=1)
def _engine() -> Deidentifier:
    from sde.deid import Deidentifier

    return Deidentifier(entities=ENTITIES, nlp="none")


def _scan(text: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    for span in _engine().detect(text):
        found = text[span.start : span.end]
        if span.label == "PERSON" and (
            _CODE_SYMBOL.fullmatch(found) or _eponym(text, span.start, span.end)
        ):
            continue
        counts[span.label] = counts.get(span.label, 0) + 1
    return counts


def presidio_scanner() -> Callable[[str], dict[str, int]]:
    """A text scanner: entity type -> how many were found (the engine is shared)."""
    _engine()
    return _scan
