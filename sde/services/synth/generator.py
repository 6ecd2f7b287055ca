"""The generator: one pass over the patients with one random stream, rows appended to the
seven provider files, deliberately bad rows injected and counted.

Memory stays flat whatever the population: a patient's rows are written (buffered per
batch) as soon as they are made; only the pending duplicates of the next few dozen patients
and the bad rows with an empty NHS number (a small share) are remembered.

Bad rows, one kind per row, each counted exactly once:

* ``invalid_nhs_number``, ``bad_date``, ``missing_required``: a row that would have been good,
  corrupted in exactly one field (the check digit, one date, one required field);
* ``duplicate_row``: an exact copy of a good row, written a few patients later;
* ``duplicate_key`` (patients only): a second, different row for a patient whose first row is
  good (a new address, phone number or ethnicity), written a few patients later.

No other row of a file repeats an earlier one, even after NHS numbers are normalised.
"""

from __future__ import annotations

import bisect
import csv
import datetime as dt
import heapq
import math
import random
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO

from sde.domain import nhs_number
from sde.services.synth import clinical, formats, letters, names, places

AS_OF = dt.date(2025, 3, 31)
"""The date the population is drawn at (ages, event windows): fixed, so output does not
depend on the day it is generated."""

INVALID_NHS_NUMBER = "invalid_nhs_number"
BAD_DATE = "bad_date"
MISSING_REQUIRED = "missing_required"
DUPLICATE_ROW = "duplicate_row"
DUPLICATE_KEY = "duplicate_key"
BAD_KINDS: tuple[str, ...] = (
    INVALID_NHS_NUMBER,
    BAD_DATE,
    MISSING_REQUIRED,
    DUPLICATE_ROW,
    DUPLICATE_KEY,
)


@dataclass(frozen=True)
class Layout:
    """One provider file: columns, which hold dates, which are required, and the kinds of
    bad row it can receive."""

    name: str
    columns: tuple[str, ...]
    date_columns: tuple[int, ...]
    required: tuple[int, ...]
    kinds: tuple[str, ...]

    @property
    def dataset(self) -> str:
        return self.name.removesuffix(".csv")


_ROW_KINDS = (INVALID_NHS_NUMBER, BAD_DATE, MISSING_REQUIRED, DUPLICATE_ROW)
LAYOUTS: tuple[Layout, ...] = (
    Layout(
        "patients.csv",
        (
            "nhs_number",
            "given_name",
            "family_name",
            "sex",
            "date_of_birth",
            "address_line",
            "town",
            "postcode",
            "phone",
            "email",
            "gp_practice",
            "ethnicity",
        ),
        (4,),
        (0, 4),
        BAD_KINDS,
    ),
    Layout(
        "gp_events.csv",
        ("nhs_number", "event_date", "snomed_code", "term", "value", "unit"),
        (1,),
        (0, 1),
        _ROW_KINDS,
    ),
    Layout(
        "admissions.csv",
        (
            "nhs_number",
            "hospital_number",
            "provider_code",
            "admission_date",
            "discharge_date",
            "admission_method",
            "primary_diagnosis",
            "procedure",
        ),
        (3, 4),
        (0, 3),
        _ROW_KINDS,
    ),
    Layout(
        "deaths.csv",
        ("nhs_number", "date_of_death", "underlying_cause", "place_of_death"),
        (1,),
        (0, 1),
        _ROW_KINDS,
    ),
    Layout(
        "clinic_letters.csv",
        ("nhs_number", "letter_date", "specialty", "letter_text"),
        (1,),
        (0, 1),
        _ROW_KINDS,
    ),
    Layout(
        "national_opt_out.csv",
        ("nhs_number",),
        (),
        (0,),
        (INVALID_NHS_NUMBER, MISSING_REQUIRED, DUPLICATE_ROW),
    ),
    Layout(
        "type1_opt_out.csv",
        ("nhs_number", "gp_practice"),
        (),
        (0,),
        (INVALID_NHS_NUMBER, MISSING_REQUIRED, DUPLICATE_ROW),
    ),
)
FILES: tuple[str, ...] = tuple(layout.name for layout in LAYOUTS)
LAYOUT_BY_NAME: dict[str, Layout] = {layout.name: layout for layout in LAYOUTS}
(_PATIENTS, _EVENTS, _ADMISSIONS, _DEATHS, _LETTERS, _NATIONAL, _TYPE1) = range(7)

# Share of the population by five-year age band, 0-4 ... 95-99, then 100
# (England and Wales, Census 2021, rounded).
AGE_PYRAMID: tuple[float, ...] = (
    5.4, 6.0, 6.0, 5.6, 6.0, 6.6, 6.9, 6.6, 6.3, 6.4, 6.9,
    6.8, 5.9, 5.0, 5.0, 3.6, 2.4, 1.5, 0.7, 0.2, 0.02,
)  # fmt: skip

NATIONAL_OPT_OUT_SHARE = 0.03
TYPE1_OPT_OUT_SHARE = 0.02
LETTERS_PER_PATIENT = 1 / 3
SPACED_NHS_SHARE = 0.04
HOUSEHOLD_SHARE = 0.3
DUPLICATE_DELAY = 40  # a duplicate is written up to this many patients after its original

# Relative GP activity, letters and admissions by age band (0-17, 18-39, 40-59, 60-74, 75+).
_EVENT_ACTIVITY = (0.6, 0.6, 0.9, 1.6, 2.4)
_LETTER_ACTIVITY = (0.5, 0.6, 1.0, 1.6, 2.0)
_ADMISSIONS_MEAN = (0.08, 0.07, 0.12, 0.25, 0.5)  # per patient, at 10 events per patient
_DEATH_RISK = ((1, 0.004), (15, 0.0003), (40, 0.002), (60, 0.01), (70, 0.03), (80, 0.07),
               (90, 0.18), (200, 0.4))  # fmt: skip


@dataclass(frozen=True)
class FileSummary:
    """Row counts of one provider file. ``bad_rows`` has every kind in ``BAD_KINDS``."""

    name: str
    rows: int
    bad_rows: Mapping[str, int]

    @property
    def dataset(self) -> str:
        return self.name.removesuffix(".csv")

    @property
    def bad(self) -> int:
        return sum(self.bad_rows.values())

    @property
    def good_rows(self) -> int:
        return self.rows - self.bad

    def to_dict(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "rows": self.rows,
            "good_rows": self.good_rows,
            "bad_rows": {kind: int(self.bad_rows.get(kind, 0)) for kind in BAD_KINDS},
        }


@dataclass(frozen=True)
class SynthSummary:
    """What was generated: parameters and per-file counts. Counts only, never a value."""

    seed: int
    patients: int
    as_of: dt.date
    events_per_patient: float
    bad_share: float
    files: tuple[FileSummary, ...] = field(default=())

    def file(self, name: str) -> FileSummary:
        """The summary of ``name`` (``"patients.csv"`` or ``"patients"``)."""
        wanted = name if name.endswith(".csv") else f"{name}.csv"
        for summary in self.files:
            if summary.name == wanted:
                return summary
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": "sde-synth-manifest/1",
            "seed": self.seed,
            "patients": self.patients,
            "as_of": self.as_of.isoformat(),
            "events_per_patient": self.events_per_patient,
            "bad_share": self.bad_share,
            "bad_kinds": list(BAD_KINDS),
            "files": {f.name: f.to_dict() for f in self.files},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SynthSummary:
        files = tuple(
            FileSummary(
                name=name,
                rows=int(entry["rows"]),
                bad_rows={kind: int(entry["bad_rows"].get(kind, 0)) for kind in BAD_KINDS},
            )
            for name, entry in sorted(
                data["files"].items(),
                key=lambda item: (
                    FILES.index(item[0]) if item[0] in FILES else len(FILES),
                    item[0],
                ),
            )
        )
        return cls(
            seed=int(data["seed"]),
            patients=int(data["patients"]),
            as_of=dt.date.fromisoformat(str(data["as_of"])),
            events_per_patient=float(data["events_per_patient"]),
            bad_share=float(data["bad_share"]),
            files=files,
        )


def _standard_normals(count: int) -> tuple[float, ...]:
    source = random.Random(20250331)  # noqa: S311 - synthetic data, not secrets
    return tuple(source.gauss(0.0, 1.0) for _ in range(count))


_NORMALS = _standard_normals(8192)


class _FastRandom(random.Random):
    """``random.Random`` made faster where precision does not matter here: ``randrange`` and
    ``randint`` scale one ``random()`` instead of drawing bits until a value fits (uniform
    to within 2**-53 for the small ranges used), and ``gauss`` picks from a fixed table of
    8192 standard normal draws."""

    def gauss(self, mu: float = 0.0, sigma: float = 1.0) -> float:
        return mu + sigma * _NORMALS[int(self.random() * 8192)]

    def randrange(self, start: int, stop: int | None = None, step: int = 1) -> int:
        if stop is None:
            return int(self.random() * start)
        if step == 1 and stop > start:
            return start + int(self.random() * (stop - start))
        return super().randrange(start, stop, step)

    def randint(self, a: int, b: int) -> int:
        return a + int(self.random() * (b - a + 1))


def _cumulative(weights: Sequence[float]) -> list[float]:
    out: list[float] = []
    total = 0.0
    for w in weights:
        total += w
        out.append(total)
    return out


class _Picker:
    """Weighted choice from a fixed list: one ``random()`` and a bisection."""

    __slots__ = ("cum", "hi", "items", "total")

    def __init__(self, items: Sequence[Any], weights: Sequence[float]) -> None:
        if len(items) != len(weights) or not items:
            raise ValueError("a weighted choice needs one weight per item")
        self.items = tuple(items)
        self.cum = _cumulative(weights)
        self.total = self.cum[-1]
        self.hi = len(self.items) - 1

    def __call__(self, rng: random.Random) -> Any:
        return self.items[bisect.bisect_right(self.cum, rng.random() * self.total, 0, self.hi)]


def _poisson(rng: random.Random, lam: float) -> int:
    if lam <= 0:
        return 0
    if lam > 30:
        return max(0, round(rng.gauss(lam, math.sqrt(lam))))
    limit = math.exp(-lam)
    k = 0
    p = rng.random()
    while p > limit:
        k += 1
        p *= rng.random()
    return k


def _slug(text: str) -> str:
    """ASCII, lower case, letters only: ``Siân O'Brien`` -> ``sianobrien``."""
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    return "".join(c for c in folded.lower() if c.isalnum())


def _age_band(age: int) -> int:
    return clinical.age_band(age)


class _Sink:
    __slots__ = ("bad", "blank_seen", "buffer", "layout", "rows")

    def __init__(self, layout: Layout) -> None:
        self.layout = layout
        self.rows = 0
        self.bad = dict.fromkeys(BAD_KINDS, 0)
        self.buffer: list[tuple[str, ...]] = []
        # Bad rows with an empty NHS number are the only rows of different patients that
        # could coincide; remember them (a small share of the file) to keep them distinct.
        self.blank_seen: set[tuple[str, ...]] = set()


class _Household:
    __slots__ = (
        "address",
        "landline",
        "origin",
        "postcode",
        "practice",
        "surname",
        "town",
        "trust",
    )

    def __init__(
        self,
        origin: names.Origin,
        surname: tuple[str, str],
        town: places.Town,
        address: str,
        postcode: str,
        landline: str,
        practice: str,
        trust: str,
    ) -> None:
        self.origin = origin
        self.surname = surname
        self.town = town
        self.address = address
        self.postcode = postcode
        self.landline = landline
        self.practice = practice
        self.trust = trust


class Population:
    """Generates patients one at a time into seven sinks. Use :func:`generate`."""

    def __init__(
        self,
        seed: int,
        as_of: dt.date = AS_OF,
        events_per_patient: float = 10.0,
        bad_share: float = 0.008,
    ) -> None:
        if not 0.0 <= bad_share < 0.5:
            raise ValueError("bad_share must be at least 0 and below 0.5")
        if events_per_patient < 0:
            raise ValueError("events_per_patient must not be negative")
        self.rng = _FastRandom(seed)
        self.as_of = as_of.toordinal()
        self.events_per_patient = float(events_per_patient)
        self.bad_share = float(bad_share)
        self.sinks = [_Sink(layout) for layout in LAYOUTS]
        self._pending: list[tuple[int, int, int, tuple[str, ...]]] = []
        self._pending_seq = 0
        self._household: _Household | None = None
        self._iso: dict[int, str] = {}
        self._slugs: dict[str, str] = {}

        # NHS numbers: an affine permutation of the nine-digit bodies 400000000-799999999
        # (the ranges England issues), so every patient's number is distinct without
        # remembering them. Bodies with no valid check digit are skipped.
        self._nhs_space = 400_000_000
        a = self.rng.randrange(self._nhs_space // 3, self._nhs_space)
        while a % 2 == 0 or a % 5 == 0:
            a += 1
        self._nhs_a = a
        self._nhs_b = self.rng.randrange(self._nhs_space)
        self._nhs_next = 0

        self._origin = _Picker(names.ORIGINS, [o.weight for o in names.ORIGINS])
        towns_by_name = {t.name: t for t in places.TOWNS}
        self._town_by_origin: dict[str, _Picker] = {}
        for origin in names.ORIGINS:
            unknown = set(origin.towns) - set(towns_by_name)
            if unknown:
                raise ValueError(f"origin {origin.key} names unknown towns: {sorted(unknown)}")
            self._town_by_origin[origin.key] = _Picker(
                places.TOWNS, [t.weight * origin.towns.get(t.name, 1.0) for t in places.TOWNS]
            )
        self._ethnicity = {
            o.key: _Picker([c for c, _ in o.ethnicity], [w for _, w in o.ethnicity])
            for o in names.ORIGINS
        }
        self._origin_by_key = {o.key: o for o in names.ORIGINS}
        self._age_band5 = _Picker(range(len(AGE_PYRAMID)), AGE_PYRAMID)
        self._suffix = _Picker(
            [s for s, _ in places.STREET_SUFFIXES], [w for _, w in places.STREET_SUFFIXES]
        )
        # GP practices: a fixed dozen per town and prefix (the same for every seed).
        fixed = random.Random(0)  # noqa: S311 - synthetic data, not secrets
        self._practices = {
            t.name: tuple(
                f"{prefix}{fixed.randrange(1, 999):03d}"
                for prefix in t.practice_prefixes
                for _ in range(12)
            )
            for t in places.TOWNS
        }
        self._all_trusts = tuple(sorted({tr for t in places.TOWNS for tr in t.trusts}))
        self._place_of_death = _Picker(
            [p for p, _ in clinical.PLACES_OF_DEATH], [w for _, w in clinical.PLACES_OF_DEATH]
        )
        self.last_corrupted = False  # whether the last row emitted was corrupted
        self._conditions = {
            (sex, band): tuple(
                (c, c.onset_min_age, c.prevalence[band])
                for c in clinical.CONDITIONS
                if c.prevalence[band] > 0 and c.sex in (None, sex)
            )
            for sex in ("M", "F", "U")
            for band in range(len(clinical.AGE_BANDS))
        }
        # Mean activity over the age pyramid, so that the population means are as asked.
        band_share = [0.0] * 5
        for i, w in enumerate(AGE_PYRAMID):
            for age in range(i * 5, i * 5 + (5 if i < 20 else 1)):
                band_share[_age_band(age)] += w / (5 if i < 20 else 1)
        total = sum(band_share)
        self._event_norm = sum(s * a for s, a in zip(band_share, _EVENT_ACTIVITY, strict=True))
        self._event_norm /= total
        self._letter_norm = sum(s * a for s, a in zip(band_share, _LETTER_ACTIVITY, strict=True))
        self._letter_norm /= total
        self._letters = letters.LetterWriter(
            given_name=self._relative_name,
            clinician=self._clinician,
            dept_phone=self._dept_phone,
            condition_specialty={
                c.key: c.specialty for c in clinical.CONDITIONS if c.specialty is not None
            },
        )

    # ---- small helpers -------------------------------------------------------------

    def iso(self, ordinal: int) -> str:
        text = self._iso.get(ordinal)
        if text is None:
            text = dt.date.fromordinal(ordinal).isoformat()
            self._iso[ordinal] = text
        return text

    def _slug(self, text: str) -> str:
        slug = self._slugs.get(text)
        if slug is None:
            slug = _slug(text)
            self._slugs[text] = slug
        return slug

    def _next_nhs(self) -> str:
        while True:
            j = self._nhs_next
            self._nhs_next += 1
            body = 400_000_000 + (self._nhs_a * j + self._nhs_b) % self._nhs_space
            number = nhs_number.complete(str(body))
            if number is not None and nhs_number.is_valid(number):
                return number

    def _given(self, rng: random.Random, origin: names.Origin, sex: str, year: int) -> str:
        if sex == "U":
            sex = "F" if rng.random() < 0.5 else "M"
        if sex == "M":
            pool = origin.male
            if year < 1965 and origin.male_older:
                pool = origin.male_older
            elif year >= 1995 and origin.male_younger:
                pool = origin.male_younger
        else:
            pool = origin.female
            if year < 1965 and origin.female_older:
                pool = origin.female_older
            elif year >= 1995 and origin.female_younger:
                pool = origin.female_younger
        return pool[rng.randrange(len(pool))]

    def _relative_name(self, rng: random.Random, origin_key: str, sex: str) -> str:
        origin = self._origin_by_key[origin_key]
        pool = origin.female if sex == "F" else origin.male
        return pool[rng.randrange(len(pool))]

    def _clinician(self, rng: random.Random) -> tuple[str, str]:
        origin = self._origin(rng)
        pool = origin.female if rng.random() < 0.5 else origin.male
        male, female = origin.surnames[rng.randrange(len(origin.surnames))]
        return pool[rng.randrange(len(pool))], female if pool is origin.female else male

    def _dept_phone(self, rng: random.Random) -> str:
        town = places.TOWNS[rng.randrange(len(places.TOWNS))]
        return formats.phone(rng, town.dialling, formats.subscriber_number(rng, town.dialling))

    def _street(self, rng: random.Random, town: places.Town) -> str:
        if town.welsh and rng.random() < 0.25:
            return places.WELSH_STREETS[rng.randrange(len(places.WELSH_STREETS))]
        if rng.random() < 0.05:
            return places.WHOLE_STREETS[rng.randrange(len(places.WHOLE_STREETS))]
        stem = places.STREET_STEMS[rng.randrange(len(places.STREET_STEMS))]
        return f"{stem} {self._suffix(rng)}"

    def _address(self, rng: random.Random, town: places.Town) -> str:
        street = self._street(rng, town)
        number = rng.randint(1, 40) if rng.random() < 0.7 else rng.randint(41, 260)
        r = rng.random()
        if r < 0.70:
            return f"{number} {street}"
        if r < 0.82:
            flat = rng.randint(1, 12)
            flat_label = f"{flat}{'AB'[rng.randrange(2)]}" if rng.random() < 0.15 else str(flat)
            return f"Flat {flat_label}, {number} {street}"
        if r < 0.87:
            block = places.BLOCK_NAMES[rng.randrange(len(places.BLOCK_NAMES))]
            return f"Flat {rng.randint(1, 80)}, {block}, {number} {street}"
        if r < 0.92:
            house = places.HOUSE_NAMES[rng.randrange(len(places.HOUSE_NAMES))]
            return f"{house}, {street}"
        if r < 0.96:
            return f"{number}{'ABC'[rng.randrange(3)]} {street}"
        block = places.BLOCK_NAMES[rng.randrange(len(places.BLOCK_NAMES))]
        return f"Apartment {rng.randint(1, 120)}, {block}, {street}"

    def _postcode(self, rng: random.Random, town: places.Town) -> str:
        district = town.districts[rng.randrange(len(town.districts))]
        letters_ = places.INWARD_LETTERS
        inward = f"{rng.randrange(10)}{letters_[rng.randrange(20)]}{letters_[rng.randrange(20)]}"
        r = rng.random()
        if r < 0.97:
            return f"{district} {inward}"
        if r < 0.99:
            return f"{district}{inward}"
        return f"{district} {inward}".lower()

    def _new_household(self, rng: random.Random) -> _Household:
        origin: names.Origin = self._origin(rng)
        town: places.Town = self._town_by_origin[origin.key](rng)
        practices = self._practices[town.name]
        return _Household(
            origin=origin,
            surname=origin.surnames[rng.randrange(len(origin.surnames))],
            town=town,
            address=self._address(rng, town),
            postcode=self._postcode(rng, town),
            landline=formats.subscriber_number(rng, town.dialling),
            practice=practices[rng.randrange(len(practices))],
            trust=town.trusts[rng.randrange(len(town.trusts))],
        )

    def _title(self, rng: random.Random, sex: str, age: int) -> str:
        r = rng.random()
        if sex == "U":
            return "Mx"
        if r < 0.03 and age >= 26:
            return "Dr"
        if sex == "M":
            return "Mr"
        if age < 30:
            return ("Miss", "Ms", "Mrs")[0 if r < 0.4 else 1 if r < 0.8 else 2]
        return "Mrs" if r < 0.55 else "Ms" if r < 0.92 else "Miss"

    # ---- emitting rows, with bad rows ---------------------------------------------------

    def _append(self, index: int, row: tuple[str, ...]) -> None:
        sink = self.sinks[index]
        sink.buffer.append(row)
        sink.rows += 1

    def _schedule(self, patient: int, index: int, row: tuple[str, ...]) -> None:
        due = patient + 1 + self.rng.randrange(DUPLICATE_DELAY)
        heapq.heappush(self._pending, (due, self._pending_seq, index, row))
        self._pending_seq += 1

    def release(self, patient: int | None) -> None:
        """Write the pending duplicates due before ``patient`` (all of them if None)."""
        pending = self._pending
        while pending and (patient is None or pending[0][0] <= patient):
            _, _, index, row = heapq.heappop(pending)
            self._append(index, row)

    def _emit(
        self,
        patient: int,
        index: int,
        row: tuple[str, ...],
        seen: set[tuple[str, ...]] | None,
    ) -> bool:
        """Write ``row`` (maybe as a bad row). ``seen`` holds this patient's rows of this
        file without their NHS number; a row already in it is dropped (returns False)."""
        if seen is not None:
            key = row[1:]
            if key in seen:
                return False
            seen.add(key)
        rng = self.rng
        self.last_corrupted = False
        if rng.random() >= self.bad_share:
            self._append(index, row)
            return True
        sink = self.sinks[index]
        kinds = sink.layout.kinds
        kind = kinds[rng.randrange(len(kinds))]
        if kind == DUPLICATE_ROW:
            self._append(index, row)
            self._schedule(patient, index, row)
        elif kind == DUPLICATE_KEY:
            self._append(index, row)
            self._schedule(patient, index, self._moved(row))
        else:
            bad = self._corrupt(sink.layout, row, kind)
            if bad is None or not self._distinct(sink, bad, row, seen):
                self._append(index, row)
                return True
            self._append(index, bad)
            self.last_corrupted = True
        sink.bad[kind] += 1
        return True

    def _distinct(
        self,
        sink: _Sink,
        bad: tuple[str, ...],
        good: tuple[str, ...],
        seen: set[tuple[str, ...]] | None,
    ) -> bool:
        """Whether a corrupted row differs from every other row of its file."""
        if bad[0] == "":
            if bad in sink.blank_seen:
                return False
            sink.blank_seen.add(bad)
            return True
        if seen is not None and bad[1:] != good[1:]:
            if bad[1:] in seen:
                return False
            seen.add(bad[1:])
        return True

    def _corrupt(self, layout: Layout, row: tuple[str, ...], kind: str) -> tuple[str, ...] | None:
        rng = self.rng
        values = list(row)
        if kind == INVALID_NHS_NUMBER:
            raw = values[0]
            wrong = (int(raw[-1]) + 1 + rng.randrange(9)) % 10
            values[0] = f"{raw[:-1]}{wrong}"
            if nhs_number.is_valid(values[0]):  # cannot happen: one check digit is valid
                return None
        elif kind == BAD_DATE:
            if not layout.date_columns:
                return None
            col = layout.date_columns[rng.randrange(len(layout.date_columns))]
            values[col] = formats.bad_date(rng, values[col])
        elif kind == MISSING_REQUIRED:
            col = layout.required[rng.randrange(len(layout.required))]
            values[col] = ""
        else:
            return None
        return tuple(values)

    def _moved(self, row: tuple[str, ...]) -> tuple[str, ...]:
        """A second registration of the same patient with something changed."""
        rng = self.rng
        values = list(row)
        town = next(t for t in places.TOWNS if t.name == row[6])
        r = rng.random()
        if r < 0.6:
            values[5] = self._address(rng, town)
            values[7] = self._postcode(rng, town)
        elif r < 0.9:
            values[8] = formats.phone(
                rng, places.MOBILE, formats.subscriber_number(rng, places.MOBILE)
            )
        else:
            values[11] = "Z" if row[11] != "Z" else "A"
        if tuple(values) == row:  # the new address happened to be the old one
            values[11] = "Z" if row[11] != "Z" else "A"
        return tuple(values)

    def _nhs_cell(self, rng: random.Random, digits: str) -> str:
        if rng.random() < SPACED_NHS_SHARE:
            return f"{digits[:3]} {digits[3:6]} {digits[6:]}"
        return digits

    # ---- one patient ---------------------------------------------------------------

    def patient(self, index: int) -> None:
        """Generate patient number ``index`` (0, 1, 2... in order) and all their rows."""
        rng = self.rng
        self.release(index)
        as_of = self.as_of

        household = self._household
        if household is None or rng.random() >= HOUSEHOLD_SHARE:
            household = self._new_household(rng)
            self._household = household
        origin = household.origin
        town = household.town

        band5 = self._age_band5(rng)
        age = band5 * 5 + (rng.randrange(5) if band5 < 20 else 0)
        dob = as_of - max(1, int((age + rng.random()) * 365.2425))
        band = _age_band(age)
        if rng.random() < 0.001:
            sex = "U"
        else:
            p_female = 0.49 + max(0.0, min(0.14, (age - 60) * 0.0045))
            sex = "F" if rng.random() < p_female else "M"
        birth_year = dt.date.fromordinal(dob).year
        given = self._given(rng, origin, sex, birth_year)
        male_surname, female_surname = household.surname
        family = female_surname if sex == "F" else male_surname
        title = self._title(rng, sex, age)
        digits = self._next_nhs()

        r = rng.random()
        if r < 0.6:
            phone = formats.phone(rng, places.MOBILE, formats.subscriber_number(rng, places.MOBILE))
        elif r < 0.92:
            phone = formats.phone(rng, town.dialling, household.landline)
        else:
            phone = ""
        email = ""
        if age >= 16 and rng.random() < 0.55:
            number = str(rng.randrange(1, 99)) if rng.random() < 0.5 else ""
            sep = "." if rng.random() < 0.7 else "_"
            domain = places.EMAIL_DOMAINS[rng.randrange(len(places.EMAIL_DOMAINS))]
            email = f"{self._slug(given)}{sep}{self._slug(family)}{number}@{domain}"
        ethnicity: str = self._ethnicity[origin.key](rng)

        self._emit(
            index,
            _PATIENTS,
            (
                self._nhs_cell(rng, digits),
                given,
                family,
                sex,
                self.iso(dob),
                household.address,
                town.name,
                household.postcode,
                phone,
                email,
                household.practice,
                ethnicity,
            ),
            None,
        )
        # Opt-out lists name patients whose own row is good.
        listed = not self.last_corrupted

        # Long-term conditions, correlated with age (and sex).
        conditions: list[clinical.Condition] = []
        for condition, onset, prevalence in self._conditions[sex, band]:
            if age >= onset and rng.random() < prevalence:
                conditions.append(condition)
        keys = frozenset(c.key for c in conditions)

        # Death: a few per cent, mostly the old, within the last three years.
        death = 0
        for upper, risk in _DEATH_RISK:
            if age < upper:
                if rng.random() < risk:
                    death = rng.randint(max(dob + 1, as_of - 3 * 365), as_of)
                break
        end = death or as_of
        start = max(dob, as_of - 20 * 365)

        self._gp_events(rng, index, digits, age, band, sex, dob, start, end, conditions, keys)
        mrn = f"{household.trust}-{rng.randrange(1_000_000, 10_000_000)}"
        spells = self._admissions(
            rng, index, digits, age, band, sex, dob, end, keys, household, mrn
        )
        if death:
            self._death(
                rng, index, digits, age, band, keys, dob, death, household.trust, mrn, spells
            )

        lam = LETTERS_PER_PATIENT * _LETTER_ACTIVITY[band] / self._letter_norm
        n_letters = _poisson(rng, lam)
        if n_letters:
            subject = letters.LetterSubject(
                given=given,
                family=family,
                sex=sex,
                title=title,
                dob_ordinal=dob,
                nhs_number=digits,
                address=household.address,
                town=town.name,
                postcode=household.postcode,
                phone=phone,
                email=email,
                mrn=mrn,
                origin=origin.key,
                conditions=keys,
            )
            seen: set[tuple[str, ...]] = set()
            first = max(dob + 1, end - 5 * 365)
            for _ in range(n_letters):
                when = rng.randint(min(first, end), end)
                specialty, text = self._letters.write(rng, subject, when)
                self._emit(
                    index,
                    _LETTERS,
                    (self._nhs_cell(rng, digits), self.iso(when), specialty, text),
                    seen,
                )

        if rng.random() < NATIONAL_OPT_OUT_SHARE and listed:
            self._emit(index, _NATIONAL, (self._nhs_cell(rng, digits),), None)
        if rng.random() < TYPE1_OPT_OUT_SHARE and listed:
            self._emit(index, _TYPE1, (self._nhs_cell(rng, digits), household.practice), None)

    def _gp_events(
        self,
        rng: random.Random,
        index: int,
        digits: str,
        age: int,
        band: int,
        sex: str,
        dob: int,
        start: int,
        end: int,
        conditions: list[clinical.Condition],
        keys: frozenset[str],
    ) -> None:
        mean = self.events_per_patient * _EVENT_ACTIVITY[band] / self._event_norm
        if mean <= 0:
            return
        n = _poisson(rng, rng.gammavariate(2.0, mean / 2.0))
        seen: set[tuple[str, ...]] = set()
        emit = self._emit
        iso = self.iso
        nhs_cell = self._nhs_cell
        written = 0
        for condition in conditions:
            lo = min(end, max(start, dob + condition.onset_min_age * 365))
            when = rng.randint(lo, end)
            row = (nhs_cell(rng, digits), iso(when), condition.snomed, condition.term, "", "")
            written += emit(index, _EVENTS, row, seen)
        n -= written
        if n <= 0:
            return

        # What gets recorded for this patient, and how often.
        child = age < 18
        kinds: list[int] = []
        weights: list[float] = []

        def add(kind: int, weight: float) -> None:
            kinds.append(kind)
            weights.append(weight)

        cardio = len(keys & {"hypertension", "chd", "af", "heart_failure", "stroke", "ckd"})
        diabetic = "t2dm" in keys or "t1dm" in keys
        if child:
            add(2, 2.0)
            add(3, 2.0)
            add(1, 0.5)
            add(17, 2.5 if age < 5 else 0.8)
            add(20, 4.0)
            add(9, 0.3)
            add(10, 0.3)
        else:
            add(0, 3.0 + 4.0 * ("hypertension" in keys) + cardio)
            add(1, 1.5)
            add(2, 1.0)
            add(3, 0.2)
            add(8, 0.8)
            add(9, 0.6)
            add(10, 0.4 + 1.5 * ("copd" in keys))
            add(12, 0.5)
            add(13, 0.8)
            add(16, 1.0)
            add(17, 0.5)
            add(20, 3.0)
            if age >= 40:
                add(6, 1.0 + diabetic + ("chd" in keys))
                add(7, 0.7 + ("ckd" in keys))
            if age >= 50 or diabetic or "ckd" in keys:
                add(5, 0.8 + 1.5 * diabetic + 3.0 * ("ckd" in keys))
            if age >= 65 or conditions:
                add(14, 0.8)
        if conditions:
            add(15, 1.0)
        if diabetic:
            add(4, 3.0)
            add(18, 0.8)
        if "asthma" in keys or "copd" in keys:
            add(11, 1.5)
        if "asthma" in keys:
            add(19, 0.8)

        # The patient's own baselines, so repeated measurements look like one person.
        if child:
            height = 55.0 + min(age, 16) * 6.5 + rng.gauss(0, 4)
            bmi = rng.gauss(17.0, 2.0) + (4.0 if "obesity" in keys else 0.0)
        else:
            height = rng.gauss(176.0, 7.0) if sex == "M" else rng.gauss(163.0, 6.5)
            bmi = rng.gauss(26.5, 4.0) + (7.0 if "obesity" in keys else 0.0)
        bmi = max(13.0, bmi)
        weight = bmi * (height / 100) ** 2
        sbp = 108 + 0.45 * max(0, age - 18) + 14 * ("hypertension" in keys) + rng.gauss(0, 8)
        dbp = 68 + 0.15 * max(0, age - 18) + 8 * ("hypertension" in keys) + rng.gauss(0, 5)
        hba1c = 58.0 if "t2dm" in keys else 66.0 if "t1dm" in keys else 36.0
        hba1c += rng.gauss(0, 6 if diabetic else 2.5)
        egfr = 105 - 0.75 * max(0, age - 30) + rng.gauss(0, 8)
        if "ckd" in keys:
            egfr = min(egfr, rng.uniform(20, 58))
        egfr = max(6.0, egfr)
        cholesterol = rng.gauss(5.1, 0.9)
        hb = rng.gauss(145, 10) if sex == "M" else rng.gauss(132, 10)
        hr = rng.gauss(72 if not child else 95, 8)
        pefr = rng.gauss(480 if sex == "M" else 380, 50) if not child else rng.gauss(250, 40)
        alcohol = rng.expovariate(1 / 8.0)
        smoking = clinical.NEVER_SMOKED
        if not child:
            s = rng.random()
            smoking = clinical.SMOKER if s < 0.13 else clinical.EX_SMOKER if s < 0.38 else smoking
        acute = clinical.ACUTE_CHILD if child else clinical.ACUTE

        gauss = rng.gauss
        remaining = n
        for kind in rng.choices(kinds, weights=weights, k=n):
            if remaining <= 0:
                break
            remaining -= 1
            when = rng.randint(start, end)
            date = iso(when)
            concept: clinical.Concept
            value = ""
            if kind == 0:
                s_value = round(sbp + gauss(0, 9))
                d_value = round(min(dbp + gauss(0, 6), s_value - 20))
                row = (
                    nhs_cell(rng, digits),
                    date,
                    clinical.SYSTOLIC.snomed,
                    clinical.SYSTOLIC.term,
                    str(s_value),
                    "mmHg",
                )
                if emit(index, _EVENTS, row, seen):
                    remaining -= 1
                    emit(
                        index,
                        _EVENTS,
                        (
                            nhs_cell(rng, digits),
                            date,
                            clinical.DIASTOLIC.snomed,
                            clinical.DIASTOLIC.term,
                            str(d_value),
                            "mmHg",
                        ),
                        seen,
                    )
                continue
            if kind == 1:
                concept, value = clinical.BMI, f"{bmi + gauss(0, 0.6):.1f}"
            elif kind == 2:
                concept, value = clinical.WEIGHT, f"{weight + gauss(0, 1.5):.1f}"
            elif kind == 3:
                concept, value = clinical.HEIGHT, f"{height + gauss(0, 0.8):.1f}"
            elif kind == 4:
                concept, value = clinical.HBA1C, str(max(20, round(hba1c + gauss(0, 5))))
            elif kind == 5:
                concept, value = clinical.EGFR, str(min(90, max(5, round(egfr + gauss(0, 4)))))
            elif kind == 6:
                concept, value = (
                    clinical.CHOLESTEROL,
                    f"{max(2.0, cholesterol + gauss(0, 0.4)):.1f}",
                )
            elif kind == 7:
                creatinine = 80 * (90 / max(egfr, 6.0)) ** 0.9 + gauss(0, 6)
                concept, value = clinical.CREATININE, str(max(30, round(creatinine)))
            elif kind == 8:
                concept, value = clinical.HAEMOGLOBIN, str(round(hb + gauss(0, 6)))
            elif kind == 9:
                concept, value = clinical.HEART_RATE, str(round(hr + gauss(0, 7)))
            elif kind == 10:
                sat = 97 - 4 * ("copd" in keys) + gauss(0, 1.2)
                concept, value = clinical.SPO2, str(min(100, round(sat)))
            elif kind == 11:
                concept, value = clinical.PEFR, str(max(60, round(pefr + gauss(0, 30))))
            elif kind == 12:
                concept, value = (
                    clinical.ALCOHOL,
                    str(round(alcohol + gauss(0, 2)) if alcohol > 2 else 0),
                )
            elif kind == 13:
                concept = smoking
            elif kind == 14:
                concept = clinical.FLU_VACCINE
            elif kind == 15:
                concept = clinical.MEDICATION_REVIEW
            elif kind == 16:
                concept = clinical.FOLLOW_UP
            elif kind == 17:
                concept = clinical.CHECK_UP
            elif kind == 18:
                concept = clinical.DIABETIC_FOOT
            elif kind == 19:
                concept = clinical.ASTHMA_CHECK
            else:
                concept = acute[rng.randrange(len(acute))]
            row = (
                nhs_cell(rng, digits),
                date,
                concept.snomed,
                concept.term,
                value,
                concept.unit if value else "",
            )
            emit(index, _EVENTS, row, seen)

    def _admissions(
        self,
        rng: random.Random,
        index: int,
        digits: str,
        age: int,
        band: int,
        sex: str,
        dob: int,
        end: int,
        keys: frozenset[str],
        household: _Household,
        mrn: str,
    ) -> set[tuple[str, ...]]:
        """Hospital spells; returns the rows written (without NHS number)."""
        scale = self.events_per_patient / 10.0
        n = _poisson(rng, _ADMISSIONS_MEAN[band] * scale)
        deliveries = 0
        if sex == "F" and 18 <= age < 45:
            deliveries = _poisson(rng, 0.06 * scale)
        seen: set[tuple[str, ...]] = set()
        if not n and not deliveries:
            return seen
        start = max(dob, self.as_of - 10 * 365)
        mrns = {household.trust: mrn}
        picker: _Picker | None = None
        if n:
            items: list[clinical.Diagnosis] = []
            weights: list[float] = []
            for candidate in clinical.DIAGNOSES:
                w = candidate.weights[band]
                if w <= 0 or (candidate.sex is not None and candidate.sex != sex):
                    continue
                if candidate.condition is not None and candidate.condition in keys:
                    w *= 6.0
                items.append(candidate)
                weights.append(w)
            picker = _Picker(items, weights)
        for k in range(n + deliveries):
            if k < n and picker is not None:
                diagnosis: clinical.Diagnosis = picker(rng)
                code = diagnosis.icd10
                method = diagnosis.method
                procedure = diagnosis.procedures[rng.randrange(len(diagnosis.procedures))]
                mean_stay = diagnosis.mean_stay
            else:
                code, procedure = clinical.DELIVERIES[rng.randrange(len(clinical.DELIVERIES))]
                method = "maternity"
                mean_stay = 1.5
            admitted = rng.randint(start, end)
            stay = round(rng.expovariate(1 / mean_stay)) if mean_stay > 0 else 0
            discharged = min(end, admitted + stay)
            trust = household.trust
            if rng.random() < 0.1:
                trust = self._all_trusts[rng.randrange(len(self._all_trusts))]
            hospital_number = mrns.get(trust)
            if hospital_number is None:
                hospital_number = f"{trust}-{rng.randrange(1_000_000, 10_000_000)}"
                mrns[trust] = hospital_number
            row = (
                self._nhs_cell(rng, digits),
                hospital_number,
                trust,
                self.iso(admitted),
                self.iso(discharged),
                method,
                code,
                procedure,
            )
            self._emit(index, _ADMISSIONS, row, seen)
        return seen

    def _death(
        self,
        rng: random.Random,
        index: int,
        digits: str,
        age: int,
        band: int,
        keys: frozenset[str],
        dob: int,
        death: int,
        trust: str,
        mrn: str,
        spells: set[tuple[str, ...]],
    ) -> None:
        items = [code for code, _, _ in clinical.DEATH_CAUSES]
        weights = [
            w[band] * (8.0 if condition is not None and condition in keys else 1.0) + 1e-6
            for _, w, condition in clinical.DEATH_CAUSES
        ]
        cause: str = _Picker(items, weights)(rng)
        place: str = self._place_of_death(rng)
        if age < 60 and place == "care_home":
            place = "hospital"
        self._emit(
            index, _DEATHS, (self._nhs_cell(rng, digits), self.iso(death), cause, place), None
        )
        if place == "hospital":
            # The final spell ends on the day of death.
            admitted = max(dob, death - round(rng.expovariate(1 / 8.0)))
            diagnosis = "T07" if cause[0] in "VWXY" else cause
            row = (
                self._nhs_cell(rng, digits),
                mrn,
                trust,
                self.iso(admitted),
                self.iso(death),
                "emergency",
                diagnosis,
                "",
            )
            self._emit(index, _ADMISSIONS, row, spells)

    def summary(self, seed: int, patients: int, as_of: dt.date) -> SynthSummary:
        return SynthSummary(
            seed=seed,
            patients=patients,
            as_of=as_of,
            events_per_patient=self.events_per_patient,
            bad_share=self.bad_share,
            files=tuple(
                FileSummary(name=s.layout.name, rows=s.rows, bad_rows=dict(s.bad))
                for s in self.sinks
            ),
        )


def generate(
    streams: Mapping[str, TextIO],
    patients: int,
    seed: int = 42,
    events_per_patient: float = 10.0,
    bad_share: float = 0.008,
    batch_size: int = 10_000,
    as_of: dt.date = AS_OF,
    on_batch: Callable[[int], None] | None = None,
) -> SynthSummary:
    """Write the seven provider files to ``streams`` (text streams keyed by file name,
    opened with ``newline=""``). The output depends only on the arguments other than
    ``batch_size`` and ``on_batch``: the same seed gives the same bytes."""
    if patients < 0:
        raise ValueError("patients must not be negative")
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    missing = [name for name in FILES if name not in streams]
    if missing:
        raise ValueError(f"no stream for {', '.join(missing)}")
    writers = [csv.writer(streams[layout.name], lineterminator="\r\n") for layout in LAYOUTS]
    for writer, layout in zip(writers, LAYOUTS, strict=True):
        writer.writerow(layout.columns)
    population = Population(seed, as_of, events_per_patient, bad_share)

    def flush() -> None:
        for writer, sink in zip(writers, population.sinks, strict=True):
            writer.writerows(sink.buffer)
            sink.buffer.clear()

    for batch_start in range(0, patients, batch_size):
        batch_end = min(patients, batch_start + batch_size)
        for i in range(batch_start, batch_end):
            population.patient(i)
        flush()
        if on_batch is not None:
            on_batch(batch_end - batch_start)
    population.release(None)
    flush()
    return population.summary(seed, patients, as_of)
