"""The patient's letter as PDF, read back with pypdf: the same facts as the HTML letter,
text outside Latin-1 transliterated by the documented rule, long words wrapped inside the
page, the same bytes for the same history, and no NHS number in the metadata.

Assertions compare lists of missing phrases, so a failure never prints the letter (it
holds the NHS number)."""

from __future__ import annotations

import hashlib
import io
import re
from dataclasses import replace

import pypdf
import pytest

from sde.adapters.sql import ControlPlane
from sde.errors import InputError
from sde.patient import LETTER_FORMATS, letter_bytes, spaced
from sde.patient.pdf import TITLE, latin1, render_pdf
from sde.services.home import Home
from sde.services.patient import (
    CurrentChoice,
    DatasetHolding,
    ProjectUse,
    ProjectWithheld,
    RecordHistory,
    ReleasedFile,
)
from tests.integration import test_patient_history as shared
from tests.integration.test_patient_history import (
    IN_EXTRACT,
    NOT_HELD,
    OPTED_OUT,
    SAFE,
    history_of,
)

World = tuple[Home, ControlPlane]
world = shared.world  # the record-history tests' lake and control plane, built once here

EN_DASH, CURLY = "\u2013", "\u2019"

UNICODE_TITLE = f"Heart failure {EN_DASH} the patient{CURLY}s view: 北京 cohort, Łódź and Kraków"
LONG_NAME = "results_" + "by_region_and_age_band_" * 6 + "final.csv"
CHECKSUM = hashlib.sha256(b"a released table").hexdigest()


def pages(data: bytes) -> list[str]:
    return [page.extract_text() for page in pypdf.PdfReader(io.BytesIO(data)).pages]


def text_of(data: bytes) -> str:
    return "\n".join(pages(data))


def flat(text: str) -> str:
    """The text with all whitespace removed (what survives any line wrapping)."""
    return re.sub(r"\s+", "", text)


def missing(text: str, phrases: list[str]) -> list[str]:
    """The phrases ``text`` lacks, compared without whitespace (lines wrap anywhere)."""
    plain = flat(text)
    return [p for p in phrases if flat(p) not in plain]


def made_up(title: str = UNICODE_TITLE, **changes: object) -> RecordHistory:
    """A history by hand: one dataset, one project that used the record with a long
    release name, one that did not receive it, opt-outs and a choice."""
    use = ProjectUse(
        project_id="heart-failure",
        title=title,
        sponsor=f"Uniwersytet Łódzki {EN_DASH} Zakład Zdrowia",
        sponsor_type="academic",
        purpose="planning",
        status="approved",
        start_date="2025-02-01",
        end_date=None,
        extract_built_at="2026-03-04T05:06:07+00:00",
        first_included_at="2026-03-01T00:00:00+00:00",
        in_latest_extract=False,
        datasets=("patients",),
        releases=(ReleasedFile("rr-0001", LONG_NAME, "2026-03-05T00:00:00+00:00", CHECKSUM),),
        withheld_by=("patient's choice: not this project",),
    )
    kept_from = ProjectWithheld(
        project_id="sales",
        title="Market sizing",
        sponsor="Acme Ltd",
        purpose="research",
        extract_built_at="2026-03-04T05:06:07+00:00",
        withheld_by=("patient's choice: no commercial use",),
    )
    history = RecordHistory(
        generated_at="2026-03-06T09:10:11+00:00",
        datasets=(DatasetHolding("patients", "GP-registered patients (demographics)", 1),),
        projects=(use,),
        withheld=(kept_from,),
        national_opt_out=False,
        type1_opt_out=None,
        choices=(
            CurrentChoice(
                "commercial", "", "2026-02-01T00:00:00+00:00", "No use by commercial sponsors"
            ),
        ),
    )
    return replace(history, **changes)  # type: ignore[arg-type]


@pytest.mark.delta
@pytest.mark.sql
@pytest.mark.policy
def test_the_pdf_says_what_the_html_letter_says(world: World) -> None:
    history = history_of(world, IN_EXTRACT)
    data = render_pdf(history, IN_EXTRACT)
    assert data.startswith(b"%PDF-")
    text = text_of(data)
    has_number = f"NHS number {spaced(IN_EXTRACT)}" in text
    assert has_number, "the PDF does not show the NHS number as the HTML letter does"
    [use] = history.projects
    [release] = use.releases
    assert release.sha256 == hashlib.sha256(SAFE).hexdigest()
    wanted = [
        TITLE,
        "Dear patient",
        f"Date: {history.generated_at[:10]}",
        "Where your record is held",
        history.datasets[0].title,
        "Projects that used your record",
        use.title,
        f"Project reference {use.project_id}",
        "Uni (a university or research institute)",
        "Purpose research",
        "Project dates 2025-01-01 to 2030-12-31",
        "Results this project has released",
        release.name,
        release.sha256,
        release.request_id,
        "Your choices",
        "National data opt-out You have not opted out.",
        "Type 1 opt-out (at your GP practice) You have not opted out.",
        "You have not made any other choices with us.",
        "How to change your choices",
        "at the next update of each project's data",
        "Yours faithfully",
    ]
    assert missing(text, wanted) == []


@pytest.mark.delta
@pytest.mark.sql
@pytest.mark.policy
def test_the_pdf_of_an_opted_out_patient_says_why(world: World) -> None:
    history = history_of(world, OPTED_OUT)
    text = text_of(render_pdf(history, OPTED_OUT))
    wanted = [
        "Projects that did not receive your record",
        "Outcomes of type 2 diabetes (diabetes)",
        "patient's choice: no research",
        "No project has been given your record.",
        "Choices you have made with us",
        history.choices[0].words,
    ]
    assert missing(text, wanted) == []


@pytest.mark.delta
@pytest.mark.sql
@pytest.mark.policy
def test_a_number_with_no_record_says_so(world: World) -> None:
    history = history_of(world, NOT_HELD)
    assert not history.has_record
    text = text_of(render_pdf(history, NOT_HELD))
    wanted = [
        "We hold no record linked to this NHS number",
        "No project has been given your record.",
        "National data opt-out You have opted out.",
    ]
    assert missing(text, wanted) == []
    listed = "Collections that hold your record" in text
    assert not listed


def test_text_outside_latin1_is_transliterated_by_the_documented_rule() -> None:
    assert latin1(f"a {EN_DASH} patient{CURLY}s view") == "a - patient's view"
    assert latin1("“quoted” … • €5") == '"quoted" ... * EUR5'
    assert latin1("Kraków, Łódź, Œuvre, ﬁle, Ångström") == "Kraków, Lódz, OEuvre, file, Ångström"
    assert latin1("e\u0301") == "é"  # composed first, so the accent is kept
    assert latin1("北京 Ελλάδα") == "?? ??????"
    assert latin1("a\u200bb\u202ec\td") == "abc d"  # invisible marks dropped, controls a space
    assert latin1("£10 café ß") == "£10 café ß"  # Latin-1 is kept as is
    for text in (UNICODE_TITLE, "\U0001f600 emoji", "\x00\x1f\x7f\x9f"):
        latin1(text).encode("latin-1")  # never a character a core font cannot show


def test_a_unicode_title_does_not_crash_and_reads_as_transliterated() -> None:
    history = made_up()
    text = text_of(render_pdf(history, IN_EXTRACT))
    wanted = [
        "Heart failure - the patient's view: ?? cohort, Lódz and Kraków",
        "Project reference heart-failure",  # the ASCII reference beside every title
        "Uniwersytet Lódzki - Zaklad Zdrowia (a university or research institute)",
        "Purpose planning health and care services",
        "Project dates 2025-02-01 to not recorded",
        "No: the latest update of this project's data left your record out because of: "
        "patient's choice: not this project.",
        "Market sizing (sales)",
        "patient's choice: no commercial use",
        "We could not check this: our copy of the register has not been loaded.",
        "No use by commercial sponsors",
    ]
    assert missing(text, wanted) == []


def test_long_titles_names_and_checksums_wrap_inside_the_page() -> None:
    title = "A study of " + "very long project titles and " * 12 + "their sponsors"
    data = render_pdf(made_up(title), IN_EXTRACT)
    text = text_of(data)
    assert missing(text, [title, LONG_NAME, CHECKSUM]) == []
    # Each wrapped onto more than one line: no line holds the whole of any of them.
    lines = text.splitlines()
    whole = [kind for kind, v in [("name", LONG_NAME), ("checksum", CHECKSUM)] if v in text]
    assert whole == []
    assert not any(title in line for line in lines)
    # Every piece of text starts inside the margins and no line runs past the right one.
    reader = pypdf.PdfReader(io.BytesIO(data))
    width = float(reader.pages[0].mediabox.width)
    outside: list[tuple[float, int]] = []

    def visit(chunk: str, cm: list[float], tm: list[float], font: object, size: float) -> None:
        x = tm[4] * cm[0] + cm[4]
        if chunk.strip() and not 0 < x < width:
            outside.append((x, len(chunk)))

    for page in reader.pages:
        page.extract_text(visitor_text=visit)
    assert outside == []
    longest = max(len(line) for line in lines)
    assert longest <= 110, f"a line of {longest} characters runs off the page"


def test_the_same_history_gives_the_same_bytes() -> None:
    history = made_up()
    first = render_pdf(history, IN_EXTRACT)
    assert render_pdf(history, IN_EXTRACT) == first
    later = replace(history, generated_at="2026-03-07T09:10:11+00:00")
    assert render_pdf(later, IN_EXTRACT) != first  # the date is printed and in the metadata
    assert letter_bytes(history, IN_EXTRACT, "pdf") == first
    assert LETTER_FORMATS == ("html", "text", "pdf")


def test_the_metadata_has_a_title_and_date_and_no_nhs_number() -> None:
    history = made_up()
    data = render_pdf(history, IN_EXTRACT)
    meta = pypdf.PdfReader(io.BytesIO(data)).metadata
    assert meta is not None
    assert meta.title == TITLE
    assert meta.creation_date_raw == "D:20260306091011Z"
    digits = re.sub(r"\D", "", " ".join(str(v) for v in meta.values()))
    held = IN_EXTRACT in digits
    assert not held, "the metadata holds the NHS number"
    # Nor anywhere outside the compressed page content: not in the raw file as text.
    in_raw = [f for f in (IN_EXTRACT, spaced(IN_EXTRACT)) if f.encode() in data]
    assert in_raw == [], "the NHS number is in the file uncompressed"


def test_a_history_without_a_valid_time_or_a_number_is_refused() -> None:
    with pytest.raises(InputError, match="generated at"):
        render_pdf(made_up(generated_at="yesterday"), IN_EXTRACT)
    wrong = IN_EXTRACT[:9] + str((int(IN_EXTRACT[9]) + 1) % 10)
    with pytest.raises(InputError, match="not a valid NHS number") as refused:
        render_pdf(made_up(), wrong)
    echoed = wrong in re.sub(r"\D", "", str(refused.value))
    assert not echoed
    with pytest.raises(InputError, match="html, text, pdf"):
        letter_bytes(made_up(), IN_EXTRACT, "docx")
