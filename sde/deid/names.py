"""Lexicons of person names, built at run time from ``faker``'s locales and filtered
against common English words (``wordfreq``) and a clinical stop-list.

Tiers of a capitalised word found in a note:

- ``STRONG``: a given name or surname that is rare as an English word (``Okafor``,
  ``Priya``, ``Kowalczyk``): a name on its own;
- ``WEAK``: a name that is also a fairly common word (``John``, ``Brown``, ``Grace``): a
  name only beside another name word, or where a context rule introduces it;
- absent: not a name word (including names that are very common words, ``Will``, ``May``,
  eponyms such as ``Parkinson``, drug brands, months, clinical words).

Building takes about a second (every faker locale is imported once); it is done once per
process and cached in memory (``lexicon()``).
"""

from __future__ import annotations

import functools
import importlib
import pkgutil
import re
import time
from dataclasses import dataclass

from sde.deid.spans import words

STRONG = 2
WEAK = 1

# Names that are first of all eponyms, scores, devices or places of care in clinical text.
EPONYMS = words(
    """
    addison alzheimer apgar asperger babinski baker barrett barre barré barthel behcet behçet
    bell billroth blatchford bowen braden breslow bright bristol burkitt calve calvé child
    colles conn crohn cushing danlos doppler down duke dukes dupuytren ehlers epworth ewing
    foley gleason glasgow graves guedel guillain hartmann hashimoto heimlich hickman
    hirschsprung hodgkin holter huntington kaposi kawasaki kernig killip klinefelter
    korsakoff lachman legg mallampati marfan mcmurray meniere ménière mohs murphy nissen
    osgood paget parkinson perthes phalen pugh raynaud reiter rinne rockall romberg roux
    rovsing schlatter seldinger sjogren sjögren snellen still synacthen takayasu tinel
    tourette trendelenburg turner valsalva weber wegener wells wernicke whipple wilms
    yankauer
    """
)
# Capitalised words of clinical letters that some locale lists as a name.
CLINICAL = words(
    """
    abdomen acute admission advice allergy allergies analgesia assessment blood bloods
    cardiology care chest clinic colleague consultant dear diabetes diagnosis discharge
    doctor echo examination family follow gastroenterology general history hospital
    impression infirmary investigations matron medication medicine monday tuesday
    wednesday thursday friday saturday sunday neurology nurse outpatient patient plan
    practice practitioner presenting problem referral registrar renal respiratory results
    review rheumatology sister social specialist summary surgery team therapy trust unit
    urgent ward hosp yours sincerely regards kind best wishes thanks royal saint st university
    district community health centre center north south east west new old upper lower
    great little road street lane avenue close drive way crescent gardens court place
    terrace grove walk hill row square mews parade park green view rise vale house cottage
    farm lodge manor hall mill grange flat apartment block tower heights
    paracetamol codeine morphine aspirin metformin insulin warfarin apixaban ramipril
    amlodipine atorvastatin simvastatin omeprazole lansoprazole salbutamol prednisolone
    levothyroxine sertraline citalopram furosemide bisoprolol gliclazide donepezil
    clenil trimbow seretide symbicort ventolin libre freestyle lantus novorapid humalog
    januvia ozempic jardiance forxiga eliquis xarelto clexane oramorph zomorph
    """
)
MONTH_WORDS = words(
    "january february march april may june july august september october november december"
    " jan feb mar apr jun jul aug sep sept oct nov dec"
)
_ALPHA = re.compile(r"^[^\W\d_]+(?:['\u2019][^\W\d_]+)?$")


@dataclass(frozen=True)
class Lexicon:
    tiers: dict[str, int]  # lower-cased word -> STRONG or WEAK
    build_seconds: float

    def tier(self, word: str) -> int:
        return self.tiers.get(word.lower(), 0)


@functools.lru_cache(maxsize=1)
def _common_english() -> frozenset[str]:
    from faker.providers.lorem.en_US import Provider

    return frozenset(w.lower() for w in Provider.word_list)


@functools.lru_cache(maxsize=65536)
def zipf(word: str) -> float:
    from wordfreq import zipf_frequency

    return float(zipf_frequency(word, "en"))


@functools.lru_cache(maxsize=65536)
def is_blocked(word: str) -> bool:
    """Never a name on its own: stop-listed, or one of the commonest English words."""
    low = word.lower()
    return (
        low in EPONYMS
        or low in CLINICAL
        or low in MONTH_WORDS
        or low in _common_english()
        or zipf(low) >= 5.5
    )


def is_common(word: str) -> bool:
    """Whether a (known) name word is also an everyday English word, so that only its
    capitalised form is taken for the name (``Will``, ``Hope``, ``May``)."""
    low = word.lower()
    return low in _common_english() or low in MONTH_WORDS or zipf(low) >= 5.0


def _faker_names() -> tuple[set[str], set[str]]:
    import faker.providers.person as person

    given: set[str] = set()
    family: set[str] = set()
    for module in pkgutil.iter_modules(person.__path__):
        if not module.ispkg:
            continue
        provider = importlib.import_module(f"{person.__name__}.{module.name}").Provider
        for klass in provider.__mro__:
            for attr, value in vars(klass).items():
                if "format" in attr or "name" not in attr:
                    continue
                if not isinstance(value, (list, tuple, dict, set, frozenset)):
                    continue
                if "first" in attr:
                    given.update(str(v) for v in value)
                elif "last" in attr or "surname" in attr:
                    family.update(str(v) for v in value)
    return given, family


@functools.lru_cache(maxsize=1)
def lexicon() -> Lexicon:
    """The name lexicon of this process (built on first use, about a second)."""
    started = time.perf_counter()
    given, family = _faker_names()
    tiers: dict[str, int] = {}
    for entry in given | family:
        for word in re.split(r"[\s\-]+", entry):
            word = word.strip(".")
            low = word.lower()
            if len(low) < 2 or low in tiers or not _ALPHA.match(word) or is_blocked(word):
                continue
            tiers[low] = STRONG if zipf(low) < 4.3 else WEAK
    return Lexicon(tiers=tiers, build_seconds=time.perf_counter() - started)
