"""The airlock's identifier scanner (sde's de-identification engine) on output files."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from sde.domain.disclosure import CheckStatus
from sde.domain.sdc.files import FileRules, check_file
from sde.services.output_scan import _engine, presidio_scanner

pytestmark = pytest.mark.presidio

SCRIPT = """import pandas as pd
import sde.workspace as ws

con = ws.connect("diabetes-outcomes")
df = con.sql("select * from patients where code in ('44054006', '73211009')").df()
by_region = df.groupby(["region", "sex"])["patient_id"].nunique().reset_index(name="n")
by_region.to_csv("by_region.csv", index=False)
print(len(df), df.hba1c.mean())
"""

REPORT = """# Results

We included 1,234 patients between 2019-01-01 and 2023-12-31 (see https://example.org/protocol).
The mean HbA1c was 53.2 mmol/mol (SD 12.1); Table 1 shows counts by region and sex.
"""

LEAKY = (
    "Follow-up for Aurelia Quennell-Thorpe, NHS number 943 476 5919, "
    "tel 0113 496 0321, email aurelia.q@example.com.\n"
)


Scan = Callable[[str], dict[str, int]]


@pytest.fixture(scope="module")
def scan() -> Scan:
    return presidio_scanner()


def test_the_engine_is_built_once(scan: Scan) -> None:
    misses = _engine.cache_info().misses
    assert presidio_scanner()("sex,n\nF,120\n") == {}
    assert _engine.cache_info().misses == misses
    assert _engine.cache_info().currsize == 1


@pytest.mark.parametrize(
    "text",
    [
        "sex,n\nF,120\nM,98\n",
        "region,sex,F,M,All\nNorth East,F,50,0,50\nLondon,M,0,65,65\nAll,,141,159,300\n",
        "year,n\n2019,1234567\n2020,7654321\n",
        SCRIPT,
        REPORT,
    ],
)
def test_safe_outputs_find_nothing(scan: Scan, text: str) -> None:
    assert scan(text) == {}


def test_eponyms_used_as_method_names_are_not_people(scan: Scan) -> None:
    text = (
        "plt.title('Kaplan Meier by sex')\nKaplan-Meier curves; Mann-Whitney U test;\n"
        "Fisher's exact test; Crohn's disease; Cox regression\n"
    )
    assert scan(text) == {}
    assert scan("method,n\nFisher exact,40\nParkinson disease,50\n") == {}


@pytest.mark.parametrize(
    "text", ["Seen by Dr Cox today.\n", "Letter for Mrs Wilson.\n", "Signed: Dr J. Smith\n"]
)
def test_an_eponym_surname_is_still_a_person(scan: Scan, text: str) -> None:
    assert scan(text) == {"PERSON": 1}


def test_identifiers_are_found_and_counted(scan: Scan) -> None:
    found = scan(LEAKY)
    assert found.get("NHS_NUMBER") == 1
    assert found.get("PHONE") == 1
    assert found.get("EMAIL") == 1
    assert found.get("PERSON", 0) >= 1


def test_check_file_with_the_scanner(scan: Scan) -> None:
    rules = FileRules()
    checks = {
        (name, kind): {
            r.name: r
            for r in check_file(
                name,
                content,
                kind=kind,
                metadata=None,
                other_names=(),
                rules=rules,
                scan_text=scan,
            )
        }
        for name, kind, content in [
            ("by_sex.csv", "table", b"sex,n\nF,120\nM,98\n"),
            ("analysis.py", "code", SCRIPT.encode()),
            ("results.md", "text", REPORT.encode()),
            ("letter.txt", "text", LEAKY.encode()),
            ("people.csv", "table", b"name,phone,n\nAurelia Quennell-Thorpe,01134960321,1\n"),
        ]
    }
    for key in [("by_sex.csv", "table"), ("analysis.py", "code"), ("results.md", "text")]:
        assert checks[key]["identifiers"].status == CheckStatus.PASS, key
    letter = checks[("letter.txt", "text")]["identifiers"]
    assert letter.status == CheckStatus.FAIL
    assert "NHS_NUMBER x1" in letter.message
    people = checks[("people.csv", "table")]["identifiers"]
    assert people.status == CheckStatus.FAIL
    found = people.details["found"]
    assert isinstance(found, dict)
    assert set(found) >= {"PERSON", "PHONE"}
    for result in (letter, people):
        blob = result.message + repr(result.details)
        for value in ("Aurelia", "Quennell", "943 476 5919", "01134960321", "example.com"):
            assert value not in blob
