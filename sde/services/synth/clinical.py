"""Clinical vocabularies for the synthetic population: SNOMED CT concepts recorded in
primary care, ICD-10 diagnoses with OPCS-4 procedures for hospital spells, and causes of
death.

Prevalences are by age band (``AGE_BANDS``) and only roughly follow published figures:
enough for conditions to be correlated with age the way real records are, nothing more.
"""

from __future__ import annotations

from dataclasses import dataclass

# Upper bounds (exclusive) of the age bands used by every prevalence tuple:
# 0-17, 18-39, 40-59, 60-74, 75+.
AGE_BANDS: tuple[int, ...] = (18, 40, 60, 75, 200)


def age_band(age: int) -> int:
    for i, upper in enumerate(AGE_BANDS):
        if age < upper:
            return i
    return len(AGE_BANDS) - 1


@dataclass(frozen=True)
class Condition:
    """A long-term condition diagnosed in primary care."""

    key: str
    snomed: str
    term: str
    prevalence: tuple[float, float, float, float, float]
    sex: str | None = None  # "M" or "F" if only one sex can have it
    onset_min_age: int = 0
    specialty: str | None = None


CONDITIONS: tuple[Condition, ...] = (
    Condition(
        "t2dm",
        "44054006",
        "Diabetes mellitus type 2",
        (0.001, 0.02, 0.08, 0.16, 0.19),
        onset_min_age=25,
        specialty="Diabetes and Endocrinology",
    ),
    Condition(
        "t1dm",
        "46635009",
        "Diabetes mellitus type 1",
        (0.003, 0.005, 0.005, 0.004, 0.003),
        specialty="Diabetes and Endocrinology",
    ),
    Condition(
        "hypertension",
        "38341003",
        "Hypertensive disorder, systemic arterial",
        (0.001, 0.04, 0.20, 0.40, 0.55),
        onset_min_age=25,
        specialty="Cardiology",
    ),
    Condition(
        "asthma",
        "195967001",
        "Asthma",
        (0.10, 0.09, 0.08, 0.08, 0.07),
        onset_min_age=2,
        specialty="Respiratory Medicine",
    ),
    Condition(
        "copd",
        "13645005",
        "Chronic obstructive lung disease",
        (0.0, 0.002, 0.03, 0.07, 0.09),
        onset_min_age=35,
        specialty="Respiratory Medicine",
    ),
    Condition(
        "af",
        "49436004",
        "Atrial fibrillation",
        (0.0, 0.001, 0.01, 0.05, 0.12),
        onset_min_age=30,
        specialty="Cardiology",
    ),
    Condition(
        "chd",
        "53741008",
        "Coronary arteriosclerosis",
        (0.0, 0.002, 0.03, 0.09, 0.15),
        onset_min_age=35,
        specialty="Cardiology",
    ),
    Condition(
        "heart_failure",
        "84114007",
        "Heart failure",
        (0.0, 0.0, 0.005, 0.02, 0.08),
        onset_min_age=40,
        specialty="Cardiology",
    ),
    Condition(
        "stroke",
        "230690007",
        "Cerebrovascular accident",
        (0.0, 0.001, 0.01, 0.03, 0.07),
        onset_min_age=30,
        specialty="Neurology",
    ),
    Condition(
        "ckd",
        "709044004",
        "Chronic kidney disease",
        (0.0, 0.005, 0.03, 0.10, 0.25),
        onset_min_age=30,
        specialty="Renal Medicine",
    ),
    Condition(
        "depression",
        "35489007",
        "Depressive disorder",
        (0.02, 0.12, 0.12, 0.09, 0.08),
        onset_min_age=12,
        specialty="Psychiatry",
    ),
    Condition(
        "anxiety",
        "197480006",
        "Anxiety disorder",
        (0.03, 0.10, 0.08, 0.06, 0.05),
        onset_min_age=10,
        specialty="Psychiatry",
    ),
    Condition(
        "osteoarthritis",
        "396275006",
        "Osteoarthritis",
        (0.0, 0.01, 0.08, 0.20, 0.30),
        onset_min_age=35,
        specialty="Trauma and Orthopaedics",
    ),
    Condition(
        "rheumatoid",
        "69896004",
        "Rheumatoid arthritis",
        (0.0005, 0.004, 0.01, 0.015, 0.02),
        onset_min_age=16,
        specialty="Rheumatology",
    ),
    Condition(
        "dementia",
        "52448006",
        "Dementia",
        (0.0, 0.0, 0.001, 0.02, 0.12),
        onset_min_age=55,
        specialty="Care of the Elderly",
    ),
    Condition(
        "parkinsons",
        "49049000",
        "Parkinson's disease",
        (0.0, 0.0, 0.001, 0.005, 0.015),
        onset_min_age=45,
        specialty="Neurology",
    ),
    Condition(
        "crohns",
        "34000006",
        "Crohn's disease",
        (0.001, 0.004, 0.004, 0.003, 0.002),
        onset_min_age=10,
        specialty="Gastroenterology",
    ),
    Condition(
        "epilepsy",
        "84757009",
        "Epilepsy",
        (0.005, 0.008, 0.008, 0.008, 0.008),
        specialty="Neurology",
    ),
    Condition(
        "osteoporosis",
        "64859006",
        "Osteoporosis",
        (0.0, 0.001, 0.02, 0.06, 0.12),
        onset_min_age=45,
        specialty="Rheumatology",
    ),
    Condition("obesity", "414916001", "Obesity", (0.05, 0.12, 0.18, 0.18, 0.12), onset_min_age=5),
    Condition(
        "breast_cancer",
        "254837009",
        "Malignant neoplasm of breast",
        (0.0, 0.001, 0.01, 0.03, 0.04),
        sex="F",
        onset_min_age=30,
        specialty="General Surgery",
    ),
    Condition(
        "prostate_cancer",
        "399068003",
        "Malignant tumor of prostate",
        (0.0, 0.0, 0.005, 0.04, 0.08),
        sex="M",
        onset_min_age=45,
    ),
    Condition(
        "psoriasis",
        "9014002",
        "Psoriasis",
        (0.01, 0.02, 0.025, 0.025, 0.02),
        specialty="Dermatology",
    ),
    Condition(
        "glaucoma",
        "23986001",
        "Glaucoma",
        (0.0, 0.001, 0.01, 0.03, 0.05),
        onset_min_age=40,
        specialty="Ophthalmology",
    ),
)
CONDITION_KEYS: tuple[str, ...] = tuple(c.key for c in CONDITIONS)


@dataclass(frozen=True)
class Concept:
    snomed: str
    term: str
    unit: str = ""


SYSTOLIC = Concept("271649006", "Systolic blood pressure", "mmHg")
DIASTOLIC = Concept("271650006", "Diastolic blood pressure", "mmHg")
BMI = Concept("60621009", "Body mass index", "kg/m2")
WEIGHT = Concept("27113001", "Body weight", "kg")
HEIGHT = Concept("50373000", "Body height measure", "cm")
HBA1C = Concept("999791000000106", "Haemoglobin A1c level - IFCC standardised", "mmol/mol")
EGFR = Concept(
    "1107481000000106",
    "Estimated glomerular filtration rate using creatinine Chronic Kidney Disease "
    "Epidemiology Collaboration equation per 1.73 square metres",
    "mL/min/1.73m2",
)
CHOLESTEROL = Concept("1005671000000105", "Serum cholesterol level", "mmol/L")
CREATININE = Concept("1000731000000107", "Serum creatinine level", "umol/L")
HAEMOGLOBIN = Concept("1022431000000105", "Haemoglobin estimation", "g/L")
HEART_RATE = Concept("364075005", "Heart rate", "/min")
SPO2 = Concept("103228002", "Haemoglobin saturation with oxygen", "%")
PEFR = Concept("29893006", "Peak expiratory flow rate", "L/min")
ALCOHOL = Concept("160573003", "Alcohol intake", "U/week")
SMOKER = Concept("77176002", "Smoker")
EX_SMOKER = Concept("8517006", "Ex-smoker")
NEVER_SMOKED = Concept("266919005", "Never smoked tobacco")
FLU_VACCINE = Concept(
    "86198006", "Administration of vaccine product containing only Influenza virus antigen"
)
MEDICATION_REVIEW = Concept("182836005", "Review of medication")
FOLLOW_UP = Concept("390906007", "Follow-up encounter")
CHECK_UP = Concept("185349003", "Encounter for check up")
DIABETIC_FOOT = Concept("401191002", "Diabetic foot examination")
ASTHMA_CHECK = Concept("270442000", "Asthma monitoring check done")

# Short illnesses seen in primary care: no value.
ACUTE: tuple[Concept, ...] = (
    Concept("195662009", "Acute viral pharyngitis"),
    Concept("68566005", "Urinary tract infectious disease"),
    Concept("6142004", "Influenza"),
    Concept("65363002", "Otitis media"),
    Concept("36971009", "Sinusitis"),
    Concept("10509002", "Acute bronchitis"),
    Concept("271807003", "Eruption of skin"),
    Concept("161891005", "Backache"),
    Concept("25064002", "Headache"),
    Concept("21522001", "Abdominal pain"),
    Concept("49727002", "Cough"),
    Concept("386661006", "Fever"),
    Concept("271737000", "Anemia"),
    Concept("128045006", "Cellulitis"),
    Concept("43878008", "Streptococcal sore throat"),
    Concept("404640003", "Dizziness"),
)
ACUTE_CHILD: tuple[Concept, ...] = tuple(ACUTE[i] for i in (0, 2, 3, 5, 6, 10, 11, 14))


@dataclass(frozen=True)
class Diagnosis:
    """A reason for a hospital spell: ICD-10 code, how patients arrive, the usual length of
    stay (days, 0 = day case), OPCS-4 procedures (``""`` = none) and age-band weights."""

    icd10: str
    method: str
    mean_stay: float
    procedures: tuple[str, ...]
    weights: tuple[float, float, float, float, float]
    sex: str | None = None
    condition: str | None = None  # more likely for patients with this condition


DIAGNOSES: tuple[Diagnosis, ...] = (
    Diagnosis("E11.9", "emergency", 3.0, ("",), (0.0, 0.5, 1.0, 1.5, 1.5), condition="t2dm"),
    Diagnosis("E10.1", "emergency", 3.0, ("",), (1.0, 1.0, 0.3, 0.1, 0.1), condition="t1dm"),
    Diagnosis(
        "I21.9",
        "emergency",
        5.0,
        ("K75.1", "K49.2", ""),
        (0.0, 0.2, 2.0, 3.0, 3.0),
        condition="chd",
    ),
    Diagnosis(
        "I25.1", "elective", 6.0, ("K40.1", "K75.1"), (0.0, 0.1, 1.0, 1.5, 0.8), condition="chd"
    ),
    Diagnosis("I48.9", "emergency", 2.0, ("",), (0.0, 0.2, 1.0, 2.5, 3.0), condition="af"),
    Diagnosis(
        "I50.9", "emergency", 8.0, ("",), (0.0, 0.0, 0.5, 2.0, 4.0), condition="heart_failure"
    ),
    Diagnosis("I63.9", "emergency", 12.0, ("",), (0.0, 0.1, 0.8, 2.0, 3.5), condition="stroke"),
    Diagnosis("J18.9", "emergency", 6.0, ("",), (1.5, 0.5, 1.0, 2.5, 5.0)),
    Diagnosis("J44.1", "emergency", 5.0, ("",), (0.0, 0.0, 1.0, 3.0, 3.5), condition="copd"),
    Diagnosis("J45.9", "emergency", 2.0, ("",), (3.0, 1.0, 0.5, 0.3, 0.2), condition="asthma"),
    Diagnosis("N39.0", "emergency", 4.0, ("",), (0.5, 0.5, 0.7, 1.5, 4.0)),
    Diagnosis("K35.8", "emergency", 3.0, ("H01.1", "H01.8"), (3.0, 2.0, 0.6, 0.2, 0.1)),
    Diagnosis("K80.2", "elective", 1.0, ("J18.3",), (0.0, 1.5, 2.0, 1.2, 0.5)),
    Diagnosis("K40.9", "elective", 0.5, ("T20.2",), (0.3, 1.0, 1.5, 1.5, 0.8)),
    Diagnosis(
        "M16.9",
        "elective",
        3.0,
        ("W37.1", "W38.1"),
        (0.0, 0.1, 1.0, 2.5, 2.0),
        condition="osteoarthritis",
    ),
    Diagnosis(
        "M17.9",
        "elective",
        3.0,
        ("W40.1", "W41.1"),
        (0.0, 0.1, 1.0, 2.5, 1.8),
        condition="osteoarthritis",
    ),
    Diagnosis(
        "S72.0",
        "emergency",
        14.0,
        ("W46.1", "W19.1", "W24.1"),
        (0.0, 0.1, 0.3, 1.5, 6.0),
        condition="osteoporosis",
    ),
    Diagnosis("S52.5", "emergency", 1.0, ("W19.1", ""), (2.0, 0.8, 0.8, 1.0, 1.5)),
    Diagnosis("H25.9", "elective", 0.0, ("C71.2",), (0.0, 0.0, 0.5, 3.0, 4.0)),
    Diagnosis("C18.9", "elective", 7.0, ("H07.9", "H33.9"), (0.0, 0.1, 0.8, 2.0, 2.0)),
    Diagnosis(
        "C50.9",
        "elective",
        2.0,
        ("B27.4", "B28.1"),
        (0.0, 0.3, 2.0, 2.0, 1.0),
        sex="F",
        condition="breast_cancer",
    ),
    Diagnosis(
        "C61",
        "elective",
        2.0,
        ("M61.1", ""),
        (0.0, 0.0, 0.8, 2.5, 1.5),
        sex="M",
        condition="prostate_cancer",
    ),
    Diagnosis("Z51.1", "elective", 0.0, ("X35.2",), (0.2, 0.3, 1.5, 2.0, 1.0)),
    Diagnosis("R07.4", "emergency", 1.0, ("",), (0.1, 1.5, 2.0, 1.5, 1.0)),
    Diagnosis("R55", "emergency", 1.0, ("",), (0.3, 0.8, 0.6, 1.0, 2.5)),
    Diagnosis("A09.9", "emergency", 2.0, ("",), (3.0, 1.0, 0.5, 0.5, 1.0)),
    Diagnosis("F10.0", "emergency", 1.0, ("",), (0.2, 1.5, 1.0, 0.3, 0.1)),
    Diagnosis("L03.1", "emergency", 4.0, ("",), (0.5, 0.8, 1.0, 1.2, 1.5)),
    Diagnosis("G40.9", "emergency", 2.0, ("",), (2.0, 1.0, 0.5, 0.4, 0.4), condition="epilepsy"),
    Diagnosis("K57.3", "emergency", 4.0, ("", "H33.9"), (0.0, 0.2, 1.0, 1.5, 1.5)),
    Diagnosis("N18.5", "elective", 0.0, ("X40.3",), (0.0, 0.2, 0.5, 1.0, 0.8), condition="ckd"),
    Diagnosis("J35.0", "elective", 0.5, ("F34.1",), (3.0, 0.5, 0.0, 0.0, 0.0)),
    Diagnosis("P07.3", "transfer", 20.0, ("",), (0.4, 0.0, 0.0, 0.0, 0.0)),
    Diagnosis("I63.9", "transfer", 20.0, ("",), (0.0, 0.05, 0.2, 0.5, 0.8), condition="stroke"),
    Diagnosis("S06.0", "emergency", 1.0, ("",), (2.0, 1.0, 0.4, 0.4, 1.2)),
)

# Births: only for women of child-bearing age.
DELIVERIES: tuple[tuple[str, str], ...] = (
    ("O80.0", "R24.9"),
    ("O80.0", "R24.9"),
    ("O80.0", "R24.9"),
    ("O82.0", "R17.9"),
    ("O82.1", "R18.9"),
    ("O81.0", "R21.9"),
    ("O70.1", "R32.2"),
)

# Underlying causes of death, by age band, and the condition that makes each likelier.
DEATH_CAUSES: tuple[tuple[str, tuple[float, float, float, float, float], str | None], ...] = (
    ("I21.9", (0.0, 0.3, 2.0, 2.0, 2.0), "chd"),
    ("I25.1", (0.0, 0.3, 1.5, 2.5, 3.0), "chd"),
    ("I64", (0.0, 0.1, 0.5, 1.5, 2.5), "stroke"),
    ("I50.9", (0.0, 0.0, 0.3, 1.0, 2.0), "heart_failure"),
    ("J18.9", (1.0, 0.3, 0.5, 1.0, 2.0), None),
    ("J44.9", (0.0, 0.0, 1.0, 2.0, 2.0), "copd"),
    ("C34.9", (0.0, 0.2, 2.0, 2.5, 1.5), None),
    ("C18.9", (0.0, 0.3, 1.0, 1.2, 1.0), None),
    ("C50.9", (0.0, 0.5, 1.5, 1.0, 0.6), "breast_cancer"),
    ("C61", (0.0, 0.0, 0.3, 1.0, 1.2), "prostate_cancer"),
    ("C25.9", (0.0, 0.1, 0.8, 1.0, 0.7), None),
    ("F03", (0.0, 0.0, 0.1, 1.0, 4.0), "dementia"),
    ("G30.9", (0.0, 0.0, 0.1, 0.8, 2.5), "dementia"),
    ("G20", (0.0, 0.0, 0.05, 0.3, 0.6), "parkinsons"),
    ("N18.5", (0.0, 0.05, 0.2, 0.5, 0.8), "ckd"),
    ("E11.9", (0.0, 0.1, 0.3, 0.5, 0.6), "t2dm"),
    ("K70.3", (0.0, 0.5, 1.5, 0.5, 0.1), None),
    ("X59", (0.5, 1.5, 0.5, 0.3, 0.5), None),
    ("V89.2", (0.5, 1.5, 0.3, 0.1, 0.05), None),
    ("X42", (0.1, 1.5, 0.6, 0.05, 0.0), None),
    ("C71.9", (0.8, 0.5, 0.4, 0.2, 0.1), None),
    ("C91.0", (1.0, 0.2, 0.0, 0.0, 0.0), None),
    ("P07.3", (2.0, 0.0, 0.0, 0.0, 0.0), None),
    ("Q24.9", (1.5, 0.1, 0.0, 0.0, 0.0), None),
    ("G40.9", (0.3, 0.3, 0.2, 0.1, 0.05), "epilepsy"),
    ("R54", (0.0, 0.0, 0.0, 0.1, 1.5), None),
)

PLACES_OF_DEATH: tuple[tuple[str, float], ...] = (
    ("hospital", 45.0),
    ("home", 27.0),
    ("care_home", 20.0),
    ("hospice", 6.0),
    ("other", 2.0),
)
