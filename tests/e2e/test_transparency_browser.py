"""Transparency in Chromium, over the demo's home (built by the installed ``sde demo``):

- the public register shows the demo's projects with their decisions, the data flows and
  the release;
- a patient signs in to their page with NHS number, date of birth and postcode, sees the
  projects that used their record, opts out of commercial use, and the next refresh of
  the commercial project's extract leaves them out while the academic one keeps them.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass

import pyarrow.compute as pc
import pytest

from sde.adapters import delta
from sde.domain import nhs_number as nhs
from sde.domain.datasets import PID
from sde.domain.generalise import parse_date
from sde.domain.patient_sign_in import sign_in_check, sign_in_key
from sde.domain.pseudonyms import LinkagePseudonymiser, ProjectPseudonymiser
from sde.services.demo import OPERATOR, PROJECT, PROJECT_COMMERCIAL
from sde.services.extract import PATIENT_ID, extract_dir
from sde.services.home import Home, open_home
from sde.services.ingest import sign_in_path
from sde.web.patient_site import patient_app
from sde.web.register_site import register_app
from tests.browser import chromium, serve
from tests.e2e.test_cli import ok

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.browser]


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Home:
    root = tmp_path_factory.mktemp("transparency") / "demo"
    ok("demo", home=root)
    return open_home(root)


@dataclass(frozen=True)
class Patient:
    """A synthetic patient of the demo (sources are synthetic; never printed)."""

    nhs_number: str
    day: str
    month: str
    year: str
    postcode: str


def in_extract(home: Home, project: str, pid: str) -> bool:
    pseudonym = ProjectPseudonymiser(home.master_key(), project).pseudonym(pid)
    table = delta.dataset(extract_dir(home, project) / "patients")
    return table.count_rows(filter=pc.field(PATIENT_ID) == pseudonym) > 0


def patient_in_both(home: Home) -> Iterator[Patient]:
    """Patients whose record both projects' extracts hold and who can sign in."""
    key = sign_in_key(home.master_key())
    linkage = LinkagePseudonymiser(home.master_key())
    checks = delta.read(sign_in_path(home))
    held = set(zip(checks.column(PID).to_pylist(), checks.column("check").to_pylist(), strict=True))
    with (home.sources / "patients.csv").open(newline="") as f:
        for row in csv.DictReader(f):
            digits = nhs.normalise(row["nhs_number"])
            born = parse_date(row["date_of_birth"])
            if digits is None or not nhs.is_valid_digits(digits) or born is None:
                continue
            pid = linkage.pid(digits)
            if (pid, sign_in_check(key, pid, born, row["postcode"])) not in held:
                continue
            if in_extract(home, PROJECT, pid) and in_extract(home, PROJECT_COMMERCIAL, pid):
                yield Patient(
                    digits, str(born.day), str(born.month), str(born.year), row["postcode"]
                )


def test_the_register_shows_projects_decisions_flows_and_releases(demo: Home) -> None:
    ok("register", "build", home=demo.root)
    folder = demo.root / "register"
    with serve(register_app(folder, base="/services/register")) as url, chromium() as browser:
        page = browser.new_page()
        page.goto(f"{url}/services/register/")
        assert page.locator("h1").count() == 1
        page.get_by_role("link", name="Projects", exact=True).first.click()
        projects = page.locator("main").inner_text()
        for project in (PROJECT, PROJECT_COMMERCIAL):
            assert project in projects
        assert "approved" in projects.lower()
        page.goto(f"{url}/services/register/projects/{PROJECT_COMMERCIAL}.html")
        commercial = page.locator("main").inner_text().lower()
        assert "commercial" in commercial
        assert "exclusive" in commercial  # the value exchange: not exclusive
        page.goto(f"{url}/services/register/flows.html")
        flows = page.locator("main").inner_text()
        assert PROJECT in flows
        assert PROJECT_COMMERCIAL in flows
        page.goto(f"{url}/services/register/releases.html")
        releases = page.locator("main").inner_text()
        assert ".csv" in releases
        assert page.locator("table").count() >= 1


def test_a_patient_opts_out_of_commercial_use_and_the_next_refresh_honours_it(
    demo: Home,
) -> None:
    patient = next(patient_in_both(demo), None)
    assert patient is not None, "the demo has no patient in both projects' extracts"
    pid = LinkagePseudonymiser(demo.master_key()).pid(patient.nhs_number)
    with serve(patient_app(demo, base="/services/patient")) as url, chromium() as browser:
        page = browser.new_page()
        page.goto(f"{url}/services/patient/")
        page.get_by_label("NHS number").fill(patient.nhs_number)
        page.get_by_label("Day").fill(patient.day)
        page.get_by_label("Month").fill(patient.month)
        page.get_by_label("Year").fill(patient.year)
        page.get_by_label("Postcode").fill(patient.postcode)
        page.get_by_role("button", name="Sign in").click()
        assert (
            page.locator("h1").inner_text() == "Your health record in the Secure Data Environment"
        )
        used = page.locator("#projects ~ section h3").all_inner_texts()
        assert len(used) == 2, "both projects used the record"
        page.get_by_role("button", name="Opt out of use by commercial companies").click()
        notice = page.get_by_role("status").inner_text()
        assert "Your choice is recorded" in notice
        assert "next update of each project" in notice
        choices = page.locator("#choices ~ table").first.inner_text()
        assert "commercial sponsor" in choices

        # The next refresh of each project's extract (as the operator would run it).
        ok("extract", PROJECT_COMMERCIAL, actor=OPERATOR, home=demo.root)
        ok("extract", PROJECT, actor=OPERATOR, home=demo.root)
        assert not in_extract(demo, PROJECT_COMMERCIAL, pid)
        assert in_extract(demo, PROJECT, pid)

        page.reload()
        record = page.locator("main").inner_text()
        assert "left your record out" in record
        assert "commercial sponsor" in record
        page.get_by_role("button", name="Sign out").click()
        assert page.get_by_role("button", name="Sign in").count() == 1


def test_the_patients_sign_in_works_from_the_keyboard(demo: Home) -> None:
    with serve(patient_app(demo, base="/services/patient")) as url, chromium() as browser:
        page = browser.new_page()
        page.goto(f"{url}/services/patient/")
        assert page.locator("html").get_attribute("lang") == "en-GB"
        assert page.locator("h1").count() == 1
        order = []
        for _ in range(7):
            page.keyboard.press("Tab")
            order.append(
                page.evaluate("document.activeElement.id || document.activeElement.textContent")
            )
        assert order[:7] == [
            "Skip to the main content",
            "nhs_number",
            "dob_day",
            "dob_month",
            "dob_year",
            "postcode",
            "Sign in",
        ]
        # every field has a visible label, and the error is announced
        for field in ("nhs_number", "dob_day", "dob_month", "dob_year", "postcode"):
            assert page.locator(f"label[for={field}]").is_visible()
        page.keyboard.press("Enter")  # sign in with nothing filled in
        alert = page.get_by_role("alert").inner_text()
        assert "NHS number" in alert
        assert "date of birth" in alert
        assert "postcode" in alert
