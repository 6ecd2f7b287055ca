"""Clinic letters: several sentences of realistic free text by specialty.

A letter mentions what real letters mention and de-identification has to find: the
patient's name in several forms (``Amina Hussain``, ``Mrs Hussain``, ``HUSSAIN``, ``Amina``,
``amina hussain``), the NHS number in several layouts, the date of birth and other dates in
several formats, phone numbers, the address and postcode, relatives' and clinicians' names.
It also carries clinical content that must survive de-identification: drugs and doses
(``metformin 500 mg bd``), results (``HbA1c 58 mmol/mol``, ``BP 132/84``, ``NEWS2 3``),
codes (``ICD-10 E11.9``, ``OPCS W37.1``), review intervals (``6/12``) and eponymous
diseases (``Parkinson's``, ``Crohn's``) that are not people.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Callable
from dataclasses import dataclass

from sde.services.synth.formats import date_in_text, nhs_in_text


@dataclass(frozen=True)
class Specialty:
    name: str
    role: str
    nurse_role: str
    findings: tuple[str, ...]
    plans: tuple[str, ...] = ()


SPECIALTIES: tuple[Specialty, ...] = (
    Specialty(
        "Diabetes and Endocrinology",
        "Consultant Diabetologist",
        "Diabetes Specialist Nurse",
        (
            "{His} HbA1c has come down from {hba1c_prev} to {hba1c} mmol/mol since metformin "
            "was increased to 1 g bd.",
            "Current medication: metformin 500 mg bd, gliclazide 80 mg od and atorvastatin "
            "20 mg on.",
            "We discussed starting semaglutide 0.25 mg once weekly given a BMI of {bmi} kg/m2.",
            "Foot examination was normal with palpable pulses and intact monofilament sensation.",
            "Retinal screening on {prev_date} showed background retinopathy (R1M0).",
            "Diagnosis: type 2 diabetes mellitus (ICD-10 E11.9); eGFR {egfr} "
            "mL/min/1.73m2, urine ACR {acr} mg/mmol.",
            "{He} uses a FreeStyle Libre sensor and time in range is {tir}%.",
            "Thyroid function was normal (TSH 2.1 mU/L); Addison's disease was excluded with "
            "a short Synacthen test.",
            "Blood pressure was {bp_s}/{bp_d} mmHg on ramipril 5 mg od.",
        ),
        (
            "Please repeat HbA1c in 3 months.",
            "I have asked the diabetes specialist nurses to contact {him} about structured "
            "education (DESMOND).",
        ),
    ),
    Specialty(
        "Cardiology",
        "Consultant Cardiologist",
        "Heart Failure Nurse Specialist",
        (
            "{He} describes exertional chest tightness; ECG showed sinus rhythm at {hr} bpm "
            "with no acute ST changes.",
            "Echocardiogram on {prev_date} showed LVEF {lvef}% with mild mitral regurgitation.",
            "Blood pressure in clinic was {bp_s}/{bp_d} mmHg.",
            "Medication: bisoprolol 2.5 mg od, ramipril 5 mg od, apixaban 5 mg bd and "
            "atorvastatin 80 mg on.",
            "CHA2DS2-VASc score is {chads} and ORBIT score 1, so anticoagulation was continued.",
            "Diagnosis: paroxysmal atrial fibrillation (I48.0) and essential hypertension (I10).",
            "A 24-hour Holter monitor and an exercise tolerance test have been requested.",
            "NT-proBNP was {bnp} ng/L; furosemide 40 mg om was started.",
            "{He} underwent PCI to the LAD (OPCS K75.1) on {prev_date} and is free of angina.",
        ),
        (
            "We will review the Holter result and see {him} again in {review}/12.",
            "Please titrate ramipril to 10 mg od if U&Es allow.",
        ),
    ),
    Specialty(
        "Respiratory Medicine",
        "Consultant Respiratory Physician",
        "Respiratory Nurse Specialist",
        (
            "Spirometry showed FEV1 {fev1} L ({fev1_pct}% predicted) with FEV1/FVC 0.58, "
            "consistent with moderate COPD (J44.9).",
            "{He} had two exacerbations over the winter needing prednisolone 30 mg od for 5 days.",
            "Inhalers: Trimbow 2 puffs bd and salbutamol 100 micrograms prn.",
            "Oxygen saturation was {spo2}% on room air, respiratory rate 18, NEWS2 {news2}.",
            "{He} still smokes 10 cigarettes a day and was referred to the stop smoking service.",
            "CT thorax on {prev_date} showed no suspicious nodules.",
            "Peak flow today {pefr} L/min; asthma control test score 18.",
        ),
        ("Pulmonary rehabilitation referral made.", "Repeat spirometry in {review}/12."),
    ),
    Specialty(
        "Gastroenterology",
        "Consultant Gastroenterologist",
        "IBD Nurse Specialist",
        (
            "{He} has a long history of Crohn's disease (K50.9), currently on azathioprine "
            "100 mg od.",
            "Faecal calprotectin was {calpro} micrograms/g and CRP {crp} mg/L.",
            "Colonoscopy on {prev_date} showed active terminal ileal disease.",
            "We plan to start adalimumab 40 mg fortnightly after TB and hepatitis screening.",
            "Barrett's oesophagus surveillance is due in 3 years; continue omeprazole 20 mg od.",
            "LFTs: ALT {alt} U/L, ALP 130 U/L, bilirubin 14 micromol/L.",
            "Coeliac serology (tTG) was negative.",
        ),
        ("Review in the IBD clinic in {review}/12.",),
    ),
    Specialty(
        "Neurology",
        "Consultant Neurologist",
        "Parkinson's Disease Nurse Specialist",
        (
            "{He} was diagnosed with Parkinson's disease in {dx_year} and takes co-careldopa "
            "25/100 tds.",
            "Examination showed a mild resting tremor of the right hand with bradykinesia.",
            "MRI head on {prev_date} was normal.",
            "{He} has been seizure-free for 14 months on levetiracetam 500 mg bd; DVLA rules "
            "were discussed.",
            "Migraine frequency is down to 3 days a month on propranolol 40 mg bd.",
            "The left-sided Bell's palsy has largely resolved.",
            "Following the stroke (I63.9), power is 4/5 in the left arm.",
        ),
        ("I will see {him} again in {review}/12.",),
    ),
    Specialty(
        "Rheumatology",
        "Consultant Rheumatologist",
        "Rheumatology Nurse Specialist",
        (
            "Rheumatoid arthritis (M06.9) with DAS28 of 3.2 on methotrexate 15 mg weekly and "
            "folic acid 5 mg weekly.",
            "ESR {esr} mm/hr, CRP {crp} mg/L.",
            "Raynaud's phenomenon is troublesome in cold weather.",
            "Hand X-rays showed no erosions.",
            "DEXA scan on {prev_date} showed a T-score of -2.8 at the hip; alendronic acid "
            "70 mg weekly was started.",
            "Sjögren's syndrome remains a possibility and anti-Ro antibodies were sent.",
        ),
        ("Bloods every 3 months for methotrexate monitoring.",),
    ),
    Specialty(
        "Trauma and Orthopaedics",
        "Consultant Orthopaedic Surgeon",
        "Orthopaedic Practitioner",
        (
            "X-ray of the right hip showed severe osteoarthritis; Oxford hip score 18/48.",
            "{He} is listed for a right total hip replacement (OPCS W37.1).",
            "After the fractured neck of femur (S72.0) on {prev_date}, {he} is mobilising "
            "with a frame.",
            "Dupuytren's contracture of the left ring finger is now 40 degrees.",
            "Analgesia: paracetamol 1 g qds and codeine 30 mg prn.",
            "The knee replacement wound has healed well; range of movement 0-105 degrees.",
        ),
        ("Physiotherapy referral made; review in {review}/12.",),
    ),
    Specialty(
        "Renal Medicine",
        "Consultant Nephrologist",
        "Renal Nurse Specialist",
        (
            "eGFR is stable at {egfr} mL/min/1.73m2 with ACR {acr} mg/mmol (CKD G3bA2).",
            "Potassium was {potassium} mmol/L, so ramipril was reduced to 2.5 mg od.",
            "Renal ultrasound showed two small kidneys with no obstruction.",
            "We discussed renal replacement therapy, including peritoneal dialysis.",
            "Haemoglobin {hb} g/L; ferritin low, so IV iron was arranged.",
        ),
        ("U&Es in 2 weeks please.",),
    ),
    Specialty(
        "Care of the Elderly",
        "Consultant Geriatrician",
        "Frailty Nurse Practitioner",
        (
            "{He} fell at home on {prev_date} without head injury; Clinical Frailty Scale 6.",
            "MoCA {moca}/30, consistent with mild dementia; Alzheimer's disease is the likely "
            "cause.",
            "Lying BP {bp_s}/{bp_d}, standing 118/70 after 3 minutes.",
            "Donepezil 5 mg on was started.",
            "A ReSPECT form was completed with {him} and the family.",
            "Medication review: amlodipine stopped, sertraline 50 mg od continued.",
        ),
        ("Community falls team referral made.",),
    ),
    Specialty(
        "Paediatrics",
        "Consultant Paediatrician",
        "Children's Asthma Nurse",
        (
            "{First} has asthma and uses Clenil 100 micrograms 2 puffs bd via a spacer.",
            "Weight {weight} kg (50th centile), height on the 25th centile.",
            "Night-time cough twice a week was reported.",
            "Immunisations are up to date.",
            "Peak flow was {pefr} L/min (85% predicted).",
            "Eczema is controlled with emollients and hydrocortisone 1% cream.",
        ),
        ("Review in the paediatric clinic in {review}/12.",),
    ),
    Specialty(
        "Obstetrics",
        "Consultant Obstetrician",
        "Community Midwife",
        (
            "G2P1 at {gest}+3 weeks; booking BMI {bmi}.",
            "OGTT was normal; BP {bp_s}/{bp_d}, urinalysis negative.",
            "Plan: growth scan at 32 weeks and aspirin 150 mg on until 36 weeks.",
            "EDD {next_date}.",
            "Previous delivery by emergency caesarean section (O82.1, OPCS R18.9).",
        ),
        ("Antenatal clinic review at 32 weeks.",),
    ),
    Specialty(
        "Dermatology",
        "Consultant Dermatologist",
        "Dermatology Nurse Specialist",
        (
            "Plaque psoriasis affects 8% BSA; PASI {pasi}.",
            "A 6 mm pigmented lesion on the left shoulder was excised; histology showed a "
            "benign compound naevus.",
            "Treatment: Dovobet gel od for 4 weeks, then twice weekly.",
            "Hand eczema has improved with betamethasone valerate 0.1% ointment.",
        ),
        ("Discharged to GP care.",),
    ),
    Specialty(
        "Ophthalmology",
        "Consultant Ophthalmologist",
        "Ophthalmic Nurse Practitioner",
        (
            "Visual acuity 6/9 right, 6/{va} left; intraocular pressure {iop} and 21 mmHg.",
            "Dense nuclear cataract on the left; listed for phacoemulsification (OPCS C71.2).",
            "Diabetic retinopathy screening: R1M0 both eyes.",
            "Primary open-angle glaucoma treated with latanoprost 0.005% one drop nocte.",
        ),
        ("Review in the glaucoma clinic in {review}/12.",),
    ),
    Specialty(
        "General Surgery",
        "Consultant General Surgeon",
        "Surgical Nurse Practitioner",
        (
            "Ultrasound on {prev_date} confirmed gallstones without duct dilatation.",
            "A reducible right inguinal hernia (K40.9) was found; {he} is listed for open "
            "mesh repair (OPCS T20.2).",
            "{He} had an appendicectomy (H01.1) for acute appendicitis (K35.8) on {prev_date}.",
            "The wound is healing well and the clips were removed.",
            "Hodgkin's lymphoma was treated in 2009 and {he} remains in remission.",
        ),
        ("Listed for laparoscopic cholecystectomy (J18.3).",),
    ),
    Specialty(
        "Psychiatry",
        "Consultant Psychiatrist",
        "Community Mental Health Nurse",
        (
            "PHQ-9 score {phq9} and GAD-7 11.",
            "Sertraline was increased to 100 mg od.",
            "{He} reports no thoughts of self-harm and the safety plan was reviewed.",
            "Sleep has improved with sleep hygiene advice; mirtazapine 15 mg on continued.",
        ),
        ("Follow-up with the community mental health team in 4 weeks.",),
    ),
)
SPECIALTY_BY_NAME: dict[str, Specialty] = {s.name: s for s in SPECIALTIES}
ADULT_SPECIALTIES = tuple(
    s for s in SPECIALTIES if s.name not in ("Paediatrics", "Obstetrics", "Care of the Elderly")
)
CHILD_SPECIALTIES = tuple(
    SPECIALTY_BY_NAME[n]
    for n in ("Paediatrics", "Paediatrics", "Paediatrics", "Dermatology", "Ophthalmology")
)

GENERAL_PLANS = (
    "Review in {review}/12.",
    "Follow-up in {review} months.",
    "We will see {him} again on {next_date}.",
    "Discharged back to the care of the GP.",
    "Please repeat U&Es and FBC in 2 weeks.",
)


class LetterSubject:
    """What a letter needs to know about its patient (plain values)."""

    __slots__ = (
        "address",
        "conditions",
        "dob_ordinal",
        "email",
        "family",
        "given",
        "mrn",
        "nhs_number",
        "origin",
        "phone",
        "postcode",
        "sex",
        "title",
        "town",
    )

    def __init__(
        self,
        *,
        given: str,
        family: str,
        sex: str,
        title: str,
        dob_ordinal: int,
        nhs_number: str,
        address: str,
        town: str,
        postcode: str,
        phone: str,
        email: str,
        mrn: str,
        origin: str,
        conditions: frozenset[str],
    ) -> None:
        self.given = given
        self.family = family
        self.sex = sex
        self.title = title
        self.dob_ordinal = dob_ordinal
        self.nhs_number = nhs_number
        self.address = address
        self.town = town
        self.postcode = postcode
        self.phone = phone
        self.email = email
        self.mrn = mrn
        self.origin = origin
        self.conditions = conditions


_PRONOUNS = {
    "M": ("he", "He", "his", "His", "him"),
    "F": ("she", "She", "her", "Her", "her"),
    "U": ("they", "They", "their", "Their", "them"),
}


_RELATIONS_CHILD: tuple[str, ...] = (
    "mother",
    "mother",
    "mother",
    "father",
    "father",
    "grandmother",
)
_RELATIONS_YOUNG: tuple[str, ...] = (
    "mother",
    "father",
    "partner",
    "sister",
    "brother",
    "wife",
    "husband",
)
_RELATIONS_ADULT: tuple[str, ...] = (
    "wife",
    "husband",
    "partner",
    "partner",
    "sister",
    "brother",
    "daughter",
    "son",
    "mother",
)
_RELATIONS_OLD: tuple[str, ...] = (
    "daughter",
    "daughter",
    "son",
    "son",
    "wife",
    "husband",
    "granddaughter",
    "niece",
)
_FEMALE_RELATIONS = frozenset(
    ("mother", "daughter", "wife", "sister", "grandmother", "granddaughter", "niece")
)


def _person_word(sex: str, age: int) -> str:
    if age < 18:
        return {"M": "boy", "F": "girl"}.get(sex, "child")
    return {"M": "man", "F": "woman"}.get(sex, "person")


class LetterWriter:
    """Writes letters. ``given_name(rng, origin, sex)`` names a relative;
    ``clinician(rng)`` returns a clinician's ``(given, family)``; ``dept_phone(rng)`` a
    hospital phone number as written."""

    def __init__(
        self,
        given_name: Callable[[random.Random, str, str], str],
        clinician: Callable[[random.Random], tuple[str, str]],
        dept_phone: Callable[[random.Random], str],
        condition_specialty: dict[str, str],
    ) -> None:
        self._given_name = given_name
        self._clinician = clinician
        self._dept_phone = dept_phone
        self._condition_specialty = condition_specialty

    def specialty(self, rng: random.Random, who: LetterSubject, age: int) -> Specialty:
        linked = [
            self._condition_specialty[c] for c in who.conditions if c in self._condition_specialty
        ]
        if linked and rng.random() < 0.65:
            return SPECIALTY_BY_NAME[sorted(linked)[rng.randrange(len(linked))]]
        if age < 16:
            return CHILD_SPECIALTIES[rng.randrange(len(CHILD_SPECIALTIES))]
        if who.sex == "F" and 18 <= age < 45 and rng.random() < 0.3:
            return SPECIALTY_BY_NAME["Obstetrics"]
        if age >= 75 and rng.random() < 0.35:
            return SPECIALTY_BY_NAME["Care of the Elderly"]
        return ADULT_SPECIALTIES[rng.randrange(len(ADULT_SPECIALTIES))]

    def write(self, rng: random.Random, who: LetterSubject, letter_ordinal: int) -> tuple[str, str]:
        """``(specialty, text)`` for a letter dated ``letter_ordinal``."""
        age = max(0, int((letter_ordinal - who.dob_ordinal) / 365.2425))
        spec = self.specialty(rng, who, age)
        he, He, his, His, him = _PRONOUNS.get(who.sex, _PRONOUNS["U"])
        child = age < 16
        title_last = who.given if child else f"{who.title} {who.family}"
        relation, relative = self._relative(rng, who, age)
        doc_given, doc_family = self._clinician(rng)
        _, gp_family = self._clinician(rng)
        _, nurse_family = self._clinician(rng)
        reg_given, reg_family = self._clinician(rng)
        clinic = letter_ordinal - rng.randrange(15)
        prev = max(who.dob_ordinal + 1, letter_ordinal - 20 - rng.randrange(700))
        nxt = letter_ordinal + 30 + rng.randrange(330)
        birth_year = dt.date.fromordinal(who.dob_ordinal).year
        letter_year = dt.date.fromordinal(letter_ordinal).year
        v: dict[str, object] = {
            "First": who.given,
            "Last": who.family,
            "he": he,
            "He": He,
            "his": his,
            "His": His,
            "him": him,
            "review": rng.choice((3, 4, 6, 6, 6, 9, 12)),
            "hba1c": rng.randint(42, 96),
            "hba1c_prev": rng.randint(55, 110),
            "bp_s": rng.randint(108, 178),
            "bp_d": rng.randint(62, 102),
            "egfr": rng.randint(14, 89),
            "acr": round(rng.uniform(0.5, 45.0), 1),
            "news2": rng.randint(0, 7),
            "bmi": round(rng.uniform(19.0, 42.0), 1),
            "hr": rng.randint(52, 118),
            "spo2": rng.randint(88, 99),
            "fev1": round(rng.uniform(0.8, 3.6), 2),
            "fev1_pct": rng.randint(35, 95),
            "crp": rng.randint(1, 120),
            "esr": rng.randint(2, 80),
            "hb": rng.randint(84, 165),
            "potassium": round(rng.uniform(3.4, 6.1), 1),
            "pefr": rng.randint(150, 600),
            "lvef": rng.randint(25, 65),
            "chads": rng.randint(1, 6),
            "bnp": rng.randint(80, 4500),
            "calpro": rng.randint(20, 1800),
            "alt": rng.randint(12, 160),
            "moca": rng.randint(12, 27),
            "tir": rng.randint(35, 85),
            "weight": round((3.5 + 2.7 * age) * rng.uniform(0.85, 1.2), 1)
            if child
            else round(rng.uniform(48.0, 115.0), 1),
            "gest": rng.randint(12, 38),
            "pasi": round(rng.uniform(2.0, 22.0), 1),
            "va": rng.choice((6, 9, 12, 18, 24, 36, 60)),
            "iop": rng.randint(12, 32),
            "phq9": rng.randint(4, 24),
            "dx_year": rng.randint(max(birth_year, letter_year - 20), letter_year),
            "prev_date": date_in_text(rng, prev),
            "next_date": date_in_text(rng, nxt),
        }
        findings = spec.findings
        k = min(len(findings), 2 + rng.randrange(3))
        body = " ".join(f.format_map(v) for f in rng.sample(findings, k))
        plans = spec.plans + GENERAL_PLANS
        plan = plans[rng.randrange(len(plans))].format_map(v)

        nhs = nhs_in_text(rng, who.nhs_number)
        dob = date_in_text(rng, who.dob_ordinal)
        header = self._header(rng, who, nhs, dob, title_last)
        if rng.random() < 0.5:
            salutation = f"Dear Dr {gp_family},"
        elif child or rng.random() < 0.5:
            salutation = "Dear Colleague,"
        else:
            salutation = f"Dear {title_last},"
        seen_on = date_in_text(rng, clinic)
        age_word = _person_word(who.sex, age)
        if age >= 2:
            age_text = f"{age}-year-old"
        else:
            age_text = f"{max(1, (letter_ordinal - who.dob_ordinal) // 30)}-month-old"
        openings = (
            f"I reviewed {title_last} in the {spec.name.lower()} clinic on {seen_on}.",
            f"Thank you for referring this {age_text} {age_word}, whom I saw on {seen_on}.",
            f"{who.given} attended clinic on {seen_on} with {his} {relation} {relative}.",
            f"I saw {who.given} {who.family} today ({seen_on}) for follow-up.",
        )
        opening = openings[rng.randrange(len(openings))]
        social_options = [
            f"{His} {relation}, {relative}, was present for the consultation.",
            f"{His} {relation} {relative} {who.family} is the main carer and can be reached "
            f"on {self._dept_phone(rng)}.",
            f"{He} lives with {his} {relation} {relative}.",
            f"I discussed the plan with {title_last} and {his} {relation}.",
        ]
        social = social_options[rng.randrange(len(social_options))]
        contact_options = [
            f"If there are any concerns please contact the {spec.name} secretaries on "
            f"{self._dept_phone(rng)}.",
            f"We were unable to reach {him} on {who.phone or self._dept_phone(rng)}, so this "
            f"letter has been posted to {who.address}, {who.town} {who.postcode}.",
            f"{He} can be contacted on {who.phone or self._dept_phone(rng)}.",
            f"Copy to patient: {who.address}, {who.town}, {who.postcode}.",
        ]
        if who.email:
            contact_options.append(f"A copy has been sent by email to {who.email}.")
        contact = contact_options[rng.randrange(len(contact_options))]
        mention = (
            f"I discussed {who.family.upper()} at the MDT with Dr {reg_family}, and "
            f"Sister {nurse_family}, {spec.nurse_role}, will be in touch."
            if rng.random() < 0.5
            else f"Sister {nurse_family} ({spec.nurse_role}) will follow {him} up; "
            f"{who.given} knows how to reach her."
        )
        sign = rng.randrange(3)
        if sign == 0:
            signoff = f"Yours sincerely,\n\nDr {doc_given} {doc_family}\n{spec.role}"
        elif sign == 1:
            signoff = (
                f"Yours sincerely,\n\nDr {reg_given} {reg_family}\nSpecialty Registrar to "
                f"Dr {doc_family}"
            )
        else:
            signoff = f"Kind regards,\n\n{doc_given} {doc_family.upper()}\n{spec.role}"
        if rng.random() < 0.4:
            signoff += f"\ncc: {title_last}, {who.address}, {who.postcode}"
        paragraphs = (
            header,
            salutation,
            f"{opening} {body}",
            f"{social} {mention}",
            f"{plan} {contact}",
            signoff,
        )
        return spec.name, "\n\n".join(paragraphs)

    def _relative(self, rng: random.Random, who: LetterSubject, age: int) -> tuple[str, str]:
        if age < 16:
            relations = _RELATIONS_CHILD
        elif age < 30:
            relations = _RELATIONS_YOUNG
        elif age < 70:
            relations = _RELATIONS_ADULT
        else:
            relations = _RELATIONS_OLD
        relation = relations[rng.randrange(len(relations))]
        female = relation in _FEMALE_RELATIONS or (relation == "partner" and rng.random() < 0.5)
        return relation, self._given_name(rng, who.origin, "F" if female else "M")

    @staticmethod
    def _header(rng: random.Random, who: LetterSubject, nhs: str, dob: str, title_last: str) -> str:
        style = rng.randrange(5)
        if style == 0:
            return (
                f"Re: {who.given} {who.family}, DOB {dob}, NHS No: {nhs}\n"
                f"{who.address}, {who.town} {who.postcode}"
            )
        if style == 1:
            return (
                f"Patient: {who.family.upper()}, {who.given} | DOB: {dob} | NHS number: {nhs}\n"
                f"Address: {who.address}, {who.town}, {who.postcode}"
            )
        if style == 2:
            named = who.given if title_last == who.given else f"{who.title} {who.given}"
            return (
                f"RE: {named} {who.family.upper()}\nD.O.B. {dob}   NHS {nhs}\n"
                f"{who.address}\n{who.town}\n{who.postcode}"
            )
        if style == 3:
            return (
                f"Name: {who.given} {who.family}  Hosp No: {who.mrn}  NHS No. {nhs}  "
                f"DoB {dob}\n{who.address}, {who.town} {who.postcode}"
            )
        return (
            f"re: {who.given.lower()} {who.family.lower()} ({dob}), nhs no {nhs}, "
            f"tel {who.phone or 'not given'}\n{who.address}, {who.postcode}"
        )
