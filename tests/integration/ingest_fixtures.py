"""Small provider files following the provider-file contract, for the ingest tests.

Deterministic (seeded), with deliberately bad rows of each kind the contract names, and a
record of what was put in: the identifiers (to prove none reaches the linked zone) and
the expected quarantine counts by reason. Vocabulary is chosen so that no name, street or
town is a substring of clinical text, which keeps the "nothing identifying" scans exact.
"""

from __future__ import annotations

import csv
import datetime as dt
import random
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from sde.domain import nhs_number

GIVEN = (
    "Aurelia",
    "Bartholomew",
    "Cressida",
    "Desmond",
    "Evangeline",
    "Florizel",
    "Guinevere",
    "Hieronymus",
    "Isadora",
    "Jerusha",
)
FAMILY = (
    "Quennell",
    "Ravenscroft",
    "Thistlewood",
    "Pemberton",
    "Winterbottom",
    "Blenkinsop",
    "Cholmondeley",
    "Fairweather",
    "Oyelaran",
    "Vasquez-Amberley",
)
RELATIVES = ("Philippa", "Lysander", "Ottoline", "Peregrine")
CLINICIANS = ("Okonkwo-Bright", "Sandilands", "Featherstonehaugh")
STREETS = ("Quillfeather Lane", "Marchbanks Road", "Hollowmere Close", "Pennyroyal Avenue")
TOWNS = ("Kettlewick", "Brambleford", "Otterbury Vale")
OUTWARD = ("LS1", "M1", "B33", "SW1A", "EH1", "CF10")
SNOMED = (
    ("271649006", "Systolic blood pressure", "mmHg", (100, 180)),
    ("1107481000000106", "HbA1c level", "mmol/mol", (30, 110)),
    ("27113001", "Body weight", "kg", (45, 130)),
    ("44054006", "Diabetes mellitus type 2", "", None),
)
ICD10 = ("E11.9", "I21.9", "J18.9", "C34.9", "I63.9")
OPCS = ("K40.1", "W37.1", "H22.1", "")

PATIENTS_HEADER = [
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
]


@dataclass(frozen=True)
class Patient:
    nhs: str
    given: str
    family: str
    sex: str
    dob: dt.date
    address: str
    town: str
    postcode: str
    phone: str
    email: str
    practice: str
    ethnicity: str

    def row(self, nhs_layout: str | None = None) -> list[str]:
        return [
            nhs_layout or self.nhs,
            self.given,
            self.family,
            self.sex,
            self.dob.isoformat(),
            self.address,
            self.town,
            self.postcode,
            self.phone,
            self.email,
            self.practice,
            self.ethnicity,
        ]


@dataclass
class Sources:
    folder: Path
    patients: list[Patient]
    expected: dict[str, Counter[str]] = field(default_factory=dict)
    rows: Counter[str] = field(default_factory=Counter)
    relatives: tuple[str, ...] = RELATIVES
    clinicians: tuple[str, ...] = CLINICIANS

    def path(self, dataset: str) -> Path:
        return self.folder / f"{dataset}.csv"

    def secrets(self) -> dict[str, set[str]]:
        """Every identifying value written to the files, by kind (lower case)."""
        out: dict[str, set[str]] = {
            "nhs": set(),
            "name": set(),
            "address": set(),
            "postcode": set(),
            "phone": set(),
            "email": set(),
            "dob": set(),
        }
        for p in self.patients:
            out["nhs"].add(p.nhs)
            out["name"].update({p.given.lower(), *(part.lower() for part in p.family.split("-"))})
            out["address"].update(
                {p.address.lower(), p.address.split(" ", 1)[1].lower(), p.town.lower()}
            )
            out["postcode"].update({p.postcode.lower(), p.postcode.replace(" ", "").lower()})
            out["phone"].add("".join(c for c in p.phone if c.isdigit()))
            out["email"].add(p.email.lower())
            out["dob"].add(p.dob.isoformat())
        out["name"].update(n.lower() for n in (*self.relatives, *self.clinicians))
        return out


def valid_nhs(rng: random.Random) -> str:
    while True:
        candidate = nhs_number.complete(f"{rng.randrange(400_000_000, 999_999_999):09d}")
        if candidate is not None and nhs_number.is_valid(candidate):
            return candidate


def invalid_nhs(valid: str) -> str:
    """The same number with a wrong check digit."""
    return valid[:9] + str((int(valid[9]) + 1) % 10)


def spaced(nhs: str) -> str:
    return f"{nhs[:3]} {nhs[3:6]} {nhs[6:]}"


def write_csv(path: Path, header: list[str], rows: list[list[str]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)


def make_patients(rng: random.Random, n: int) -> list[Patient]:
    seen: set[str] = set()
    patients = []
    for i in range(n):
        nhs = valid_nhs(rng)
        while nhs in seen:
            nhs = valid_nhs(rng)
        seen.add(nhs)
        given, family = rng.choice(GIVEN), rng.choice(FAMILY)
        outward = rng.choice(OUTWARD)
        letters = "ABDEFGHJLNPQRSTUWXYZ"
        patients.append(
            Patient(
                nhs=nhs,
                given=given,
                family=family,
                sex=rng.choice("MFU"),
                dob=dt.date(1930, 1, 1) + dt.timedelta(days=rng.randrange(25_000)),
                address=f"{rng.randrange(1, 300)} {rng.choice(STREETS)}",
                town=rng.choice(TOWNS),
                postcode=f"{outward} {rng.randrange(10)}{rng.choice(letters)}{rng.choice(letters)}",
                phone=rng.choice([f"0113 496 {i % 10_000:04d}", f"07700 900{i % 1000:03d}"]),
                email=f"{given.lower()}.{family.lower()}{i}@example.com",
                practice=rng.choice(["B86012", "Y02345", "F84003"]),
                ethnicity=rng.choice("ABCDEFGHJKLMNPRSZ"),
            )
        )
    return patients


def letter(rng: random.Random, p: Patient) -> str:
    """A clinic letter naming the patient in varied layouts, plus clinical content."""
    nhs = rng.choice([p.nhs, spaced(p.nhs), f"{p.nhs[:3]}-{p.nhs[3:6]}-{p.nhs[6:]}"])
    dob = rng.choice(
        [
            p.dob.strftime("%d/%m/%Y"),
            f"{p.dob.day} {p.dob.strftime('%B %Y')}",
            p.dob.isoformat(),
            p.dob.strftime("%d.%m.%Y"),
        ]
    )
    name = rng.choice([f"{p.given} {p.family}", f"{p.given.upper()} {p.family.upper()}"])
    relative = rng.choice(RELATIVES)
    clinician = rng.choice(CLINICIANS)
    return (
        f"Dear Dr {clinician},\n"
        f"Re: {name}, DOB {dob}, NHS No {nhs}\n"
        f"{p.address}, {p.town}, {p.postcode}. Tel {p.phone}. Email {p.email}\n\n"
        f"I saw {p.given} in clinic today with her daughter {relative}. "
        f"{p.family.lower()} reports good adherence. BP 132/84. HbA1c 58 mmol/mol.\n"
        "Plan: continue metformin 500 mg twice daily; diagnosis E11.9.\n"
        f"Please contact me on 0113 496 0999 if {p.given.upper()} deteriorates.\n\n"
        f"Yours sincerely,\nDr {clinician}"
    )


def make_sources(folder: Path, n_patients: int = 40, seed: int = 7) -> Sources:
    """Write all seven contract files into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    patients = make_patients(rng, n_patients)
    src = Sources(folder, patients)

    def bad(dataset: str, reason: str) -> None:
        src.expected.setdefault(dataset, Counter())[reason] += 1

    # patients
    rows = [p.row(spaced(p.nhs) if i % 5 == 0 else None) for i, p in enumerate(patients)]
    extra = make_patients(random.Random(seed + 1), 6)
    r = extra[0].row()
    r[0] = invalid_nhs(r[0])
    rows.append(r)
    bad("patients", "invalid_nhs_number")
    r = extra[1].row()
    r[4] = "31/02/1980"
    rows.append(r)
    bad("patients", "bad_date")
    r = extra[2].row()
    r[4] = "1980-13-01"
    rows.append(r)
    bad("patients", "bad_date")
    r = extra[3].row()
    r[0] = ""
    rows.append(r)
    bad("patients", "missing_required")
    rows.append(list(rows[3]))
    bad("patients", "duplicate_row")
    r = patients[4].row()
    r[3] = "F" if r[3] != "F" else "M"
    r[1] = extra[4].given
    rows.append(r)
    bad("patients", "duplicate_key")
    r = extra[5].row()
    r[3] = "X"
    rows.append(r)
    bad("patients", "bad_value")
    write_csv(src.path("patients"), PATIENTS_HEADER, rows)
    src.rows["patients"] = len(rows)

    # gp_events
    rows = []
    for p in patients:
        for _ in range(rng.randrange(1, 4)):
            code, term, unit, span = rng.choice(SNOMED)
            value = "" if span is None else f"{rng.uniform(*span):.1f}"
            day = dt.date(2015, 1, 1) + dt.timedelta(days=rng.randrange(3_600))
            rows.append([p.nhs, day.isoformat(), code, term, value, unit])
    rows.append([invalid_nhs(patients[0].nhs), "2020-01-01", "27113001", "Body weight", "70", "kg"])
    bad("gp_events", "invalid_nhs_number")
    rows.append([patients[1].nhs, "unknown", "27113001", "Body weight", "70", "kg"])
    bad("gp_events", "bad_date")
    rows.append([patients[2].nhs, "2020-01-01", "27113001", "Body weight", "seventy", "kg"])
    bad("gp_events", "bad_value")
    rows.append([patients[2].nhs, "", "27113001", "Body weight", "70", "kg"])
    bad("gp_events", "missing_required")
    rows.append(list(rows[0]))
    bad("gp_events", "duplicate_row")
    write_csv(
        src.path("gp_events"),
        ["nhs_number", "event_date", "snomed_code", "term", "value", "unit"],
        rows,
    )
    src.rows["gp_events"] = len(rows)

    # admissions
    rows = []
    for i, p in enumerate(patients[::2]):
        start = dt.date(2018, 1, 1) + dt.timedelta(days=rng.randrange(2_000))
        rows.append(
            [
                p.nhs,
                f"RR8-{4_800_000 + i:07d}",
                "RR8",
                start.isoformat(),
                (start + dt.timedelta(days=rng.randrange(0, 12))).isoformat(),
                rng.choice(["elective", "emergency", "maternity", "transfer"]),
                rng.choice(ICD10),
                rng.choice(OPCS),
            ]
        )
    rows.append([patients[0].nhs, "RR8-1", "RR8", "2020-02-30", "", "elective", "E11.9", ""])
    bad("admissions", "bad_date")
    rows.append([patients[0].nhs, "RR8-2", "RR8", "2020-02-03", "", "walk-in", "E11.9", ""])
    bad("admissions", "bad_value")
    rows.append(list(rows[1]))
    bad("admissions", "duplicate_row")
    write_csv(
        src.path("admissions"),
        [
            "nhs_number",
            "hospital_number",
            "provider_code",
            "admission_date",
            "discharge_date",
            "admission_method",
            "primary_diagnosis",
            "procedure",
        ],
        rows,
    )
    src.rows["admissions"] = len(rows)

    # deaths
    rows = [
        [p.nhs, f"2023-0{1 + i % 9}-1{i % 10}", rng.choice(ICD10), "home"]
        for i, p in enumerate(patients[:6])
    ]
    rows.append([patients[7].nhs, "2023-01-01", "I21.9", "garden"])
    bad("deaths", "bad_value")
    rows.append([patients[0].nhs, "2023-05-05", "I21.9", "hospital"])
    bad("deaths", "duplicate_key")
    write_csv(
        src.path("deaths"),
        ["nhs_number", "date_of_death", "underlying_cause", "place_of_death"],
        rows,
    )
    src.rows["deaths"] = len(rows)

    # clinic_letters
    rows = [
        [p.nhs, "2024-03-12", rng.choice(["diabetes", "cardiology"]), letter(rng, p)]
        for p in patients[::3]
    ]
    rows.append([invalid_nhs(patients[1].nhs), "2024-03-12", "diabetes", "text"])
    bad("clinic_letters", "invalid_nhs_number")
    rows.append([patients[1].nhs, "2024-03-12", "diabetes", ""])
    bad("clinic_letters", "missing_required")
    write_csv(
        src.path("clinic_letters"),
        ["nhs_number", "letter_date", "specialty", "letter_text"],
        rows,
    )
    src.rows["clinic_letters"] = len(rows)

    # opt-outs
    national = [[p.nhs] for p in patients[1:4]] + [[""], [spaced(patients[1].nhs)]]
    bad("national_opt_out", "missing_required")
    bad("national_opt_out", "duplicate_key")
    write_csv(src.path("national_opt_out"), ["nhs_number"], national)
    src.rows["national_opt_out"] = len(national)
    type1 = [[p.nhs, p.practice] for p in patients[5:7]]
    type1.append(list(type1[0]))
    bad("type1_opt_out", "duplicate_row")
    write_csv(src.path("type1_opt_out"), ["nhs_number", "gp_practice"], type1)
    src.rows["type1_opt_out"] = len(type1)
    return src
