"""Security property 6: no patient-level value in a log line, a message, or the audit log.

Runs synth and ingest of a small population with every logger at DEBUG, captures
everything printed or logged, and looks for every identifier of every source patient
(NHS numbers in any layout, names, dates of birth, address lines, postcodes, phone
numbers, emails). Also scans the audit chain's details and the quarantine *reasons*
(the quarantine rows themselves are identifiable by design: operators only).
"""

from __future__ import annotations

import csv
import json
import logging
import re
from pathlib import Path

import pytest
from click.testing import CliRunner
from deltalake import DeltaTable

from sde.adapters.sql import open_control_plane
from sde.cli import main
from sde.services.home import init_home

pytestmark = [pytest.mark.delta, pytest.mark.presidio, pytest.mark.sql, pytest.mark.slow]

IDENTIFYING = (
    "given_name",
    "family_name",
    "date_of_birth",
    "address_line",
    "postcode",
    "phone",
    "email",
)


def identifiers(sources: Path) -> tuple[set[str], set[str]]:
    """(ten-digit NHS numbers, other identifying strings) of every source patient."""
    numbers: set[str] = set()
    others: set[str] = set()
    with (sources / "patients.csv").open(newline="") as f:
        for row in csv.DictReader(f):
            digits = re.sub(r"\D", "", row["nhs_number"])
            if len(digits) == 10:
                numbers.add(digits)
            for column in IDENTIFYING:
                value = row[column].strip()
                if len(value) >= 4:  # shorter strings ("Li", "Ng") match ordinary words
                    others.add(value)
    return numbers, others


def leaks(text: str, numbers: set[str], others: set[str]) -> list[str]:
    """Which kinds of identifier appear in ``text`` (kinds only: never echo the values)."""
    found = []
    compact = re.sub(r"[\s-]", "", text)
    if any(run in numbers for run in re.findall(r"(?=(\d{10}))", compact)):
        found.append("nhs_number")
    words = set(re.findall(r"[\w@.'+-]+", text))
    if any(o in text for o in others if " " in o) or words & {o for o in others if " " not in o}:
        found.append("identifier")
    return found


def test_nothing_patient_level_is_printed_logged_or_audited(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    home = init_home(tmp_path / "h")
    runner = CliRunner()
    out = []
    for args in (["synth", "--patients", "400"], ["ingest", "--all", "--no-progress"]):
        result = runner.invoke(main, [*args, "--home", str(home.root)])
        assert result.exit_code == 0, result.output
        out.append(result.stdout + result.stderr)
    numbers, others = identifiers(home.sources)
    assert len(numbers) > 350
    assert len(others) > 1000

    assert leaks("\n".join(out), numbers, others) == []
    assert leaks("\n".join(r.getMessage() for r in caplog.records), numbers, others) == []

    with open_control_plane(home.database_url) as plane:
        details = json.dumps([e.details for e in plane.audit.events()])
    assert leaks(details, numbers, others) == []

    reasons = []
    for table in home.quarantine.iterdir():
        data = DeltaTable(str(table)).to_pyarrow_table()
        reasons += [str(v) for v in data.column("reason").to_pylist()]
    assert len(reasons) > 5
    assert leaks("\n".join(reasons), numbers, others) == []


def test_the_scan_finds_what_it_looks_for() -> None:
    numbers, others = {"9434765919"}, {"Okonkwo", "12 Oak Road"}
    assert leaks("row 3: 943 476 5919 refused", numbers, others) == ["nhs_number"]
    assert leaks("Mr Okonkwo", numbers, others) == ["identifier"]
    assert leaks("lives at 12 Oak Road", numbers, others) == ["identifier"]
    assert leaks("row 3: invalid NHS number", numbers, others) == []
