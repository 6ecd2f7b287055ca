"""`sde patient report` over the demo's home, through the installed command: the letter of
a patient in the diabetes extract, of one who opted out of research (not in it), and the
refusal of an invalid number; the PDF letter (to a private file or a pipe, never to a
terminal); every look-up audited without the NHS number or the pid."""

from __future__ import annotations

import csv
import io
import json
import os
import pty
import re
import select
import stat
import subprocess
from pathlib import Path

import pypdf
import pytest

from sde.adapters import delta
from sde.domain.nhs_number import normalise
from sde.domain.pseudonyms import LinkagePseudonymiser, ProjectPseudonymiser
from sde.patient import spaced
from sde.patient.pdf import TITLE as PDF_TITLE
from sde.services.home import open_home
from sde.services.patient import REFUSED, VIEWED
from sde.services.wiring import control_plane
from tests.e2e.test_cli import SDE, ok, run
from tests.integration.test_no_patient_values_leak import identifiers, leaks

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

PROJECT = "diabetes-outcomes"
TITLE = "Outcomes of type 2 diabetes by age"


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("patient-demo") / "demo"
    ok("demo", home=home)
    return home


def _valid_numbers(path: Path, column: str = "nhs_number") -> list[str]:
    with path.open(newline="") as f:
        found = (normalise(row[column]) for row in csv.DictReader(f))
        return list(dict.fromkeys(n for n in found if n is not None))


def in_extract(demo: Path) -> str:
    """The first source patient whose project pseudonym is in the demo's extract."""
    home = open_home(demo)
    linkage = LinkagePseudonymiser(home.master_key())
    project = ProjectPseudonymiser(home.master_key(), PROJECT)
    extracted = set(
        delta.read(home.project_workspace(PROJECT) / "extract" / "patients", columns=["patient_id"])
        .column("patient_id")
        .to_pylist()
    )
    for number in _valid_numbers(demo / "sources" / "patients.csv")[:200]:
        try:
            pid = linkage.pid(number)
        except ValueError:
            continue
        if project.pseudonym(pid) in extracted:
            return number
    raise AssertionError("no source patient is in the extract")


def opted_out_of_research(demo: Path) -> str:
    with (demo / "sources" / "opt_out_choices.csv").open(newline="") as f:
        for row in csv.DictReader(f):
            if row["scope"] == "research":
                number = normalise(row["nhs_number"])
                assert number is not None
                return number
    raise AssertionError("the demo recorded no research opt-out")


def missing(text: str, phrases: list[str]) -> list[str]:
    """The phrases ``text`` lacks (asserted on, so a failure never prints the letter)."""
    return [p for p in phrases if p not in text]


def shows(text: str, number: str) -> bool:
    return number in re.sub(r"\D", "", text)


def test_letter_of_a_patient_in_the_extract(demo: Path) -> None:
    number = in_extract(demo)
    letter = ok("patient", "report", "--nhs-number", number, home=demo, actor="olu")
    has_number = f"NHS number {spaced(number)}" in letter
    assert has_number, "the letter does not show the patient's NHS number"
    assert letter.startswith("<!DOCTYPE html>")
    assert (
        missing(
            letter,
            [
                "Dear patient",
                "GP-registered patients (demographics)",  # the dataset's plain title
                TITLE,
                "University of Leeds (a university or research institute)",
                "t2dm_by_age.csv",  # the released result
                "next update of each project",
            ],
        )
        == []
    )
    never_released = "t2dm_by_ethnicity_district.csv" in letter  # blocked by the policy
    assert not never_released
    scripted = "<script" in letter.lower()
    assert not scripted


def report_to_file(demo: Path, number: str, fmt: str, out: Path) -> None:
    """``sde patient report --out``: it succeeds, never prints the number, and writes the
    letter readable by its owner only."""
    result = run(
        "patient",
        "report",
        "--nhs-number",
        number,
        "--format",
        fmt,
        "--out",
        str(out),
        home=demo,
        actor="olu",
    )
    assert result.returncode == 0, result.stderr
    echoed = shows(result.stdout + result.stderr, number)
    assert not echoed, "the NHS number was printed"
    assert stat.S_IMODE(out.stat().st_mode) == 0o600


def test_letter_of_a_patient_who_opted_out_written_to_a_file(demo: Path, tmp_path: Path) -> None:
    number = opted_out_of_research(demo)
    out = tmp_path / "letter.txt"
    report_to_file(demo, number, "text", out)
    letter = out.read_text()
    has_number = f"NHS number {spaced(number)}" in letter
    assert has_number, "the letter does not show the patient's NHS number"
    assert (
        missing(
            letter,
            [
                "PROJECTS THAT DID NOT RECEIVE YOUR RECORD",
                f"{TITLE} ({PROJECT}), University of Leeds: patient's choice: no research",
                "No use of your record for research",
            ],
        )
        == []
    )
    used = "t2dm_by_age.csv" in letter  # not a project that used the record
    assert not used

    again = run("patient", "report", "--nhs-number", number, "--out", str(out), home=demo)
    assert again.returncode == 2
    assert "already exists" in again.stderr
    unchanged = out.read_text() == letter
    assert unchanged


def test_an_invalid_number_is_refused_and_not_echoed(demo: Path) -> None:
    number = in_extract(demo)
    wrong = number[:9] + str((int(number[9]) + 1) % 10)
    result = run("patient", "report", "--nhs-number", wrong, home=demo, actor="olu")
    assert result.returncode == 2
    assert "Modulus 11" in result.stderr
    echoed = shows(result.stdout + result.stderr, wrong)
    assert not echoed, "the invalid number was printed"
    assert result.stdout == ""


def test_lookups_are_audited_without_numbers_or_pids(demo: Path) -> None:
    ok("patient", "report", "--nhs-number", in_extract(demo), home=demo, actor="pat-desk")
    home = open_home(demo)
    with control_plane(home) as plane:
        events = plane.audit.events()
        assert plane.audit.verify().intact
    mine = [e for e in events if e.action in (VIEWED, REFUSED)]
    assert any(e.actor == "pat-desk" and e.action == VIEWED for e in mine)
    assert all(re.fullmatch(r"patient:([0-9a-f]{16}|not-identified)", e.subject) for e in mine)
    numbers, others = identifiers(demo / "sources")
    linkage = LinkagePseudonymiser(home.master_key())
    pids = set(linkage.pids(numbers).values())
    for event in events:
        text = json.dumps([event.actor, event.subject, event.details])
        assert leaks(text, numbers, others) == [], event.action
        found = len(pids & set(re.findall(r"[0-9a-f]{32}", text)))
        assert found == 0, f"{event.action} holds a pid"


def test_pdf_letter_written_to_a_file_is_private(demo: Path, tmp_path: Path) -> None:
    number = in_extract(demo)
    out = tmp_path / "letter.pdf"
    report_to_file(demo, number, "pdf", out)
    data = out.read_bytes()
    assert data.startswith(b"%PDF-")
    text = "\n".join(p.extract_text() for p in pypdf.PdfReader(io.BytesIO(data)).pages)
    has_number = f"NHS number {spaced(number)}" in text
    assert has_number, "the PDF letter does not show the patient's NHS number"
    assert (
        missing(re.sub(r"\s+", " ", text), ["Dear patient", PDF_TITLE, TITLE, "t2dm_by_age.csv"])
        == []
    )


def test_pdf_letter_goes_to_a_pipe_but_never_to_a_terminal(demo: Path) -> None:
    number = in_extract(demo)
    argv = [SDE, "patient", "report", "--nhs-number", number, "--format", "pdf"]
    argv += ["--home", str(demo), "--actor", "olu"]
    piped = subprocess.run(argv, capture_output=True, timeout=300, check=False)
    assert piped.returncode == 0, piped.stderr.decode(errors="replace")
    assert piped.stdout.startswith(b"%PDF-")
    assert piped.stdout.rstrip().endswith(b"%%EOF")

    home = open_home(demo)
    with control_plane(home) as plane:
        before = len(plane.audit.events())
    main_fd, terminal_fd = pty.openpty()
    try:
        refused = subprocess.run(
            argv, stdout=terminal_fd, stderr=subprocess.PIPE, timeout=300, check=False
        )
    finally:
        os.close(terminal_fd)
        written = _drain(main_fd)
        os.close(main_fd)
    assert refused.returncode == 2
    assert "--out" in refused.stderr.decode()
    assert b"%PDF" not in written
    with control_plane(home) as plane:
        after = len(plane.audit.events())
    assert after == before, "a refused PDF still looked the patient up"


def _drain(fd: int) -> bytes:
    """What the process wrote to the terminal (the pty's other end), without blocking."""
    chunks: list[bytes] = []
    while select.select([fd], [], [], 0)[0]:
        try:
            chunk = os.read(fd, 4096)
        except OSError:  # EIO: the terminal side is closed and nothing is left
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)
