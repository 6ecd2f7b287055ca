"""sde synth: does the population look like a UK one? Names of many origins, an age
pyramid, real postcode districts of the town named, Ofcom drama phone numbers, plausible
codes, dates in order, letters about their own patient."""

from __future__ import annotations

import datetime as dt
import re
from collections import Counter

from sde.domain.generalise import parse_date, postcode_district
from sde.domain.nhs_number import is_valid, normalise
from sde.services.synth import AS_OF
from sde.services.synth.names import ORIGINS
from sde.services.synth.places import TOWNS
from tests.unit.test_synth import Generated, population

ETHNIC_CODES = set("ABCDEFGHJKLMNPRSZ")
ICD10 = re.compile(r"^[A-Z]\d{2}(\.\d)?$")
OPCS4 = re.compile(r"^[A-Z]\d{2}\.\d$")
SNOMED = re.compile(r"^\d{6,18}$")
ODS_PRACTICE = re.compile(r"^[A-Z]\d{5}$")

# Ofcom's ranges for drama, as national significant numbers (no leading 0 / +44).
DRAMA = (
    re.compile(r"^7700900\d{3}$"),
    re.compile(r"^1(1[3-8]|21|31|41|51|61)4960\d{3}$"),
    re.compile(r"^1914980\d{3}$"),
    re.compile(r"^2079460\d{3}$"),
    re.compile(r"^2920180\d{3}$"),
    re.compile(r"^1632960\d{3}$"),
)


def national_number(phone: str) -> str:
    digits = re.sub(r"\(0\)|[^\d+]", "", phone)
    if digits.startswith("+44"):
        return digits[3:]
    assert digits.startswith("0"), "a UK number starts with 0 or +44"
    return digits[1:]


def good_patients(generated: Generated) -> dict[str, dict[str, str]]:
    """First good row per patient, by normalised NHS number."""
    out: dict[str, dict[str, str]] = {}
    for record in generated.records("patients.csv"):
        key = normalise(record["nhs_number"]) if is_valid(record["nhs_number"]) else None
        if key and parse_date(record["date_of_birth"]) and key not in out:
            out[key] = record
    return out


def age(dob: dt.date, on: dt.date = AS_OF) -> int:
    return on.year - dob.year - ((on.month, on.day) < (dob.month, dob.day))


def test_names_come_from_many_origins() -> None:
    records = population().records("patients.csv")
    found: Counter[str] = Counter()
    given_names = {
        o.key: set(o.male + o.female + o.male_older + o.female_older + o.male_younger)
        | set(o.female_younger)
        for o in ORIGINS
    }
    family_names = {o.key: {n for pair in o.surnames for n in pair} for o in ORIGINS}
    for record in records:
        matches = [
            o.key
            for o in ORIGINS
            if record["given_name"] in given_names[o.key]
            and record["family_name"] in family_names[o.key]
        ]
        if len(matches) == 1:
            found[matches[0]] += 1
    assert len(found) >= 15, sorted(found)
    assert found.most_common(1)[0][0] == "english"
    assert found["english"] < 0.7 * len(records)


def test_non_ascii_and_punctuated_names_occur() -> None:
    records = population().records("patients.csv")
    names = [r["given_name"] + " " + r["family_name"] for r in records]
    assert any(not n.isascii() for n in names)
    assert any("'" in n for n in names)
    assert any("-" in n for n in names)


def test_ethnicity_and_sex_codes() -> None:
    records = population().records("patients.csv")
    assert {r["ethnicity"] for r in records} <= ETHNIC_CODES
    assert len({r["ethnicity"] for r in records}) >= 10
    sexes = Counter(r["sex"] for r in records)
    assert set(sexes) <= {"M", "F", "U"}
    assert 0.45 < sexes["F"] / len(records) < 0.56


def test_ethnicity_is_loosely_consistent_with_names() -> None:
    records = population().records("patients.csv")
    by_origin = {o.key: o for o in ORIGINS}
    polish = {n for pair in by_origin["polish"].surnames for n in pair}
    pakistani_surnames = {"Khan", "Hussain", "Iqbal", "Mahmood", "Qureshi", "Chaudhry"}
    white_other = [r["ethnicity"] for r in records if r["family_name"] in polish]
    assert white_other
    assert Counter(white_other).most_common(1)[0][0] == "C"
    pakistani = [r["ethnicity"] for r in records if r["family_name"] in pakistani_surnames]
    assert pakistani
    assert Counter(pakistani).most_common(1)[0][0] == "J"


def test_ages_follow_a_population_pyramid() -> None:
    patients = good_patients(population()).values()
    ages = [age(dt.date.fromisoformat(r["date_of_birth"])) for r in patients]
    assert min(ages) >= 0
    assert max(ages) <= 101
    assert max(ages) >= 90
    n = len(ages)
    assert 0.15 < sum(a >= 65 for a in ages) / n < 0.25
    assert 0.17 < sum(a < 18 for a in ages) / n < 0.27
    assert 0.20 < sum(40 <= a < 60 for a in ages) / n < 0.32


def test_postcodes_are_real_districts_of_their_town() -> None:
    districts = {t.name: set(t.districts) for t in TOWNS}
    records = population().records("patients.csv")
    for record in records:
        district = postcode_district(record["postcode"])
        assert district is not None, "postcode does not parse"
        assert district in districts[record["town"]], "district not in its town"
    examples = {r["town"]: postcode_district(r["postcode"]) for r in records}
    assert str(examples["Leeds"]).startswith("LS")
    assert re.fullmatch(r"M\d+", str(examples["Manchester"]))
    assert re.fullmatch(r"B\d+", str(examples["Birmingham"]))
    assert len({r["town"] for r in records}) >= 30


def test_addresses_include_flats_and_named_houses() -> None:
    addresses = [r["address_line"] for r in population().records("patients.csv")]
    assert any(re.match(r"^Flat \w+, \d+ ", a) for a in addresses)
    assert any(re.match(r"^\d+ [A-Z]", a) for a in addresses)
    assert any(re.match(r"^[A-Z][a-z]+( [A-Z][a-z]+)*, ", a) for a in addresses)
    # Households: some people share an address.
    assert len(set(addresses)) < 0.85 * len(addresses)


def test_phone_numbers_are_in_ofcom_drama_ranges() -> None:
    phones = [r["phone"] for r in population().records("patients.csv") if r["phone"]]
    assert phones
    for phone in phones:
        number = national_number(phone)
        assert any(p.match(number) for p in DRAMA), "phone outside the drama ranges"
    layouts = {re.sub(r"\d", "9", p) for p in phones}
    assert "99999 999999" in layouts  # 07700 900123
    assert "+99 9999 999999" in layouts  # +44 7700 900456
    assert "9999 999 9999" in layouts  # 0113 496 0123
    assert "(999) 9999 9999" in layouts  # (020) 7946 0018


def test_gp_practice_codes_look_like_ods_codes() -> None:
    generated = population()
    for record in generated.records("patients.csv"):
        assert ODS_PRACTICE.match(record["gp_practice"])


def test_emails_use_reserved_domains() -> None:
    emails = [r["email"] for r in population().records("patients.csv") if r["email"]]
    assert emails
    assert all(re.fullmatch(r"[a-z0-9._]+@example\.(com|org|net)", e) for e in emails)


def test_gp_events_have_codes_values_and_units() -> None:
    generated = population()
    events = generated.records("gp_events.csv")
    for event in events:
        assert SNOMED.match(event["snomed_code"])
        assert event["term"]
        if event["value"]:
            float(event["value"])
            assert event["unit"]
        else:
            assert event["unit"] == ""
    codes = {e["snomed_code"] for e in events}
    for expected in ("44054006", "38341003", "195967001", "271649006", "60621009"):
        assert expected in codes, expected
    assert any(e["snomed_code"] == "1107481000000106" for e in events)
    assert sum(1 for e in events if e["value"]) > 0.3 * len(events)


def test_repeated_measurements_vary_around_a_personal_baseline() -> None:
    readings: dict[str, list[float]] = {}
    for event in population().records("gp_events.csv"):
        if event["snomed_code"] == "271649006" and event["value"]:
            readings.setdefault(normalise(event["nhs_number"]) or "", []).append(
                float(event["value"])
            )
    series = [v for v in readings.values() if len(v) >= 4]
    assert len(series) > 50
    flat = sum(1 for v in series if len(set(v)) == 1)
    assert flat < 0.05 * len(series)
    means = [sum(v) / len(v) for v in series]
    assert max(means) - min(means) > 30
    assert all(70 <= x <= 230 for v in series for x in v)


def test_events_fall_within_life() -> None:
    generated = population()
    patients = good_patients(generated)
    deaths = {
        normalise(d["nhs_number"]): parse_date(d["date_of_death"])
        for d in generated.records("deaths.csv")
        if is_valid(d["nhs_number"])
    }
    for event in generated.records("gp_events.csv"):
        when = parse_date(event["event_date"])
        key = normalise(event["nhs_number"])
        if when is None or key not in patients:
            continue
        assert when >= dt.date.fromisoformat(patients[key]["date_of_birth"])
        assert when <= (deaths.get(key) or AS_OF)


def test_conditions_are_correlated_with_age() -> None:
    generated = population()
    patients = good_patients(generated)
    diabetic = {
        normalise(e["nhs_number"])
        for e in generated.records("gp_events.csv")
        if e["snomed_code"] == "44054006"
    }
    old = [k for k, r in patients.items() if age(dt.date.fromisoformat(r["date_of_birth"])) >= 60]
    young = [k for k, r in patients.items() if age(dt.date.fromisoformat(r["date_of_birth"])) < 40]
    old_rate = sum(k in diabetic for k in old) / len(old)
    young_rate = sum(k in diabetic for k in young) / len(young)
    assert old_rate > 3 * young_rate
    assert 0.08 < old_rate < 0.3


def test_admissions_are_coded_and_in_order() -> None:
    generated = population()
    admissions = generated.records("admissions.csv")
    assert len(admissions) > 200
    for row in admissions:
        assert row["admission_method"] in {"elective", "emergency", "maternity", "transfer"}
        assert ICD10.match(row["primary_diagnosis"])
        assert row["procedure"] == "" or OPCS4.match(row["procedure"])
        assert row["hospital_number"].startswith(row["provider_code"] + "-")
        admitted, discharged = parse_date(row["admission_date"]), parse_date(row["discharge_date"])
        if admitted and discharged:
            assert admitted <= discharged <= AS_OF
    assert {r["admission_method"] for r in admissions} == {
        "elective",
        "emergency",
        "maternity",
        "transfer",
    }
    assert any(r["procedure"] for r in admissions)
    assert any(not r["procedure"] for r in admissions)


def test_deaths_are_few_mostly_old_and_after_birth() -> None:
    generated = population()
    patients = good_patients(generated)
    deaths = generated.records("deaths.csv")
    assert 0.01 < len(deaths) / len(patients) < 0.05
    ages = []
    for row in deaths:
        assert ICD10.match(row["underlying_cause"])
        assert row["place_of_death"] in {"hospital", "home", "care_home", "hospice", "other"}
        key = normalise(row["nhs_number"])
        died = parse_date(row["date_of_death"])
        if key in patients and died:
            born = dt.date.fromisoformat(patients[key]["date_of_birth"])
            assert born < died <= AS_OF
            ages.append(age(born, died))
    assert sum(a >= 70 for a in ages) > 0.6 * len(ages)


def test_letters_are_about_their_own_patient() -> None:
    generated = population()
    patients = good_patients(generated)
    letters = generated.records("clinic_letters.csv")
    assert 0.25 < len(letters) / len(patients) < 0.45
    checked = 0
    for letter in letters:
        key = normalise(letter["nhs_number"]) if is_valid(letter["nhs_number"]) else None
        if key not in patients:
            continue
        patient = patients[key]
        text = letter["letter_text"]
        assert key in re.sub(r"(?<=\d)[ -](?=\d)", "", text), "NHS number not in letter"
        lowered = text.lower()
        assert patient["family_name"].lower() in lowered, "family name not in letter"
        assert patient["given_name"].lower() in lowered, "given name not in letter"
        assert patient["postcode"] in text, "postcode not in letter"
        assert text.count("\n") >= 5
        checked += 1
    assert checked > 0.9 * len(letters)


def test_letters_use_varied_forms_of_names_numbers_and_dates() -> None:
    generated = population()
    patients = good_patients(generated)
    forms: Counter[str] = Counter()
    for letter in generated.records("clinic_letters.csv"):
        key = normalise(letter["nhs_number"]) if is_valid(letter["nhs_number"]) else None
        if key not in patients:
            continue
        p = patients[key]
        text = letter["letter_text"]
        given, family = p["given_name"], p["family_name"]
        forms["full"] += f"{given} {family}" in text
        forms["upper"] += family.upper() in text and family.upper() != family
        forms["lower"] += f"{given.lower()} {family.lower()}" in text
        forms["titled"] += bool(re.search(rf"\b(Mr|Mrs|Ms|Miss|Dr|Mx) {re.escape(family)}", text))
        forms["nhs_spaced"] += f"{key[:3]} {key[3:6]} {key[6:]}" in text
        forms["nhs_dashed"] += f"{key[:3]}-{key[3:6]}-{key[6:]}" in text
        forms["nhs_plain"] += key in text
        born = dt.date.fromisoformat(p["date_of_birth"])
        forms["dob_slash"] += born.strftime("%d/%m/%Y") in text
        forms["dob_mon"] += born.strftime("%d-%b-%Y") in text
        forms["dob_long"] += f"{born.day}" in text and born.strftime("%B %Y") in text
    assert all(forms[k] > 0 for k in forms), forms
    assert len(forms) == 10


def test_letters_carry_clinical_content_and_other_people() -> None:
    texts = [r["letter_text"] for r in population().records("clinic_letters.csv")]
    joined = "\n".join(texts)
    for content in ("mg", "mmol/mol", "NEWS2", "/12", "Parkinson's", "Crohn's", "ICD-10"):
        assert content in joined, content
    assert re.search(r"\bBP \d{2,3}/\d{2,3}\b", joined)
    assert re.search(r"\b(daughter|son|wife|husband|mother|father|partner) [A-Z]", joined)
    assert re.search(r"\b(Dr|Sister) [A-Z]", joined)
    specialties = Counter(r["specialty"] for r in population().records("clinic_letters.csv"))
    assert len(specialties) >= 12


def test_opt_outs_are_patients_of_the_population() -> None:
    generated = population()
    patients = good_patients(generated)
    national = [
        normalise(r["nhs_number"])
        for r in generated.records("national_opt_out.csv")
        if is_valid(r["nhs_number"])
    ]
    assert 0.02 < len(national) / len(patients) < 0.045
    assert all(n in patients for n in national)
    type1 = generated.records("type1_opt_out.csv")
    assert 0.01 < len(type1) / len(patients) < 0.035
    for row in type1:
        key = normalise(row["nhs_number"]) if is_valid(row["nhs_number"]) else None
        if key is not None:
            assert row["gp_practice"] == patients[key]["gp_practice"]
