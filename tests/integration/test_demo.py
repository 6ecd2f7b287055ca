"""``run_demo``'s commercial project (issue 8): approved with its value-exchange terms, its
extract built without the patients who opted out of commercial use (checked here through
pseudonyms, independently of the demo's own check), the academic extract keeping them,
and the demo's own check failing when either extract is wrong."""

from __future__ import annotations

import csv
import re
import shutil
from pathlib import Path

import pytest

from sde.adapters import delta
from sde.domain.nhs_number import normalise
from sde.domain.optouts import REGISTERS
from sde.domain.projects import ProjectStatus, SponsorType
from sde.domain.pseudonyms import LinkagePseudonymiser, ProjectPseudonymiser
from sde.services.demo import (
    COMMERCIAL_RESEARCHER,
    COMMERCIAL_SPONSOR,
    PROJECT,
    PROJECT_COMMERCIAL,
    RESEARCHER,
    DemoFailure,
    Narrator,
    check_commercial_opt_outs,
    run_demo,
)
from sde.services.extract import ExtractRequest, build_extract, extract_dir, read_manifest
from sde.services.home import Home, open_home
from sde.services.ingest import load_spec, shipped_datasets
from sde.services.optouts import standing_opt_outs
from sde.services.wiring import control_plane

pytestmark = [
    pytest.mark.delta,
    pytest.mark.duckdb,
    pytest.mark.policy,
    pytest.mark.sql,
    pytest.mark.slow,
]


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Home, list[str]]:
    lines: list[str] = []
    home = run_demo(tmp_path_factory.mktemp("demo") / "home", lines.append)
    return home, lines


def commercial_opt_out_pids(home: Home) -> set[str]:
    """The pids, in the linked zone, of the patients whose standing choice is no
    commercial use: the eight of the choices file, and the patient who opted out on their
    own page in the transparency stage."""
    with (home.sources / "opt_out_choices.csv").open(newline="") as f:
        numbers = [
            normalise(row["nhs_number"])
            for row in csv.DictReader(f)
            if row["scope"] == "commercial" and row["choice"] == "opt_out"
        ]
    assert len(numbers) == 8
    linkage = LinkagePseudonymiser(home.master_key())
    from_file = {linkage.pid(n) for n in numbers if n is not None}
    standing = {
        row["pid"] for row in standing_opt_outs(home).to_pylist() if row["scope"] == "commercial"
    }
    assert from_file < standing
    assert len(standing - from_file) == 1  # the patient on their page
    linked = set(delta.read(home.linked / "patients", columns=["pid"]).column("pid").to_pylist())
    return standing & linked


def in_extract(home: Home, project_id: str, dataset: str, pids: set[str]) -> set[str]:
    """Which of ``pids`` are in a project's extract table (by their project pseudonym)."""
    project = ProjectPseudonymiser(home.master_key(), project_id)
    by_pseudonym = {project.pseudonym(pid): pid for pid in pids}
    table = delta.read(extract_dir(home, project_id) / dataset, columns=["patient_id"])
    return {
        by_pseudonym[p] for p in set(table.column("patient_id").to_pylist()) & set(by_pseudonym)
    }


def test_both_projects_are_approved_and_the_commercial_one_has_fair_terms(
    demo: tuple[Home, list[str]],
) -> None:
    home, _ = demo
    with control_plane(home) as store:
        projects = {p.id: p for p in store.list_projects()}
        members = {
            pid: {m.person_id for m in store.list_members(pid)}
            for pid in (PROJECT, PROJECT_COMMERCIAL)
        }
    assert set(projects) == {PROJECT, PROJECT_COMMERCIAL}
    assert {p.status for p in projects.values()} == {ProjectStatus.APPROVED}
    commercial = projects[PROJECT_COMMERCIAL]
    assert commercial.sponsor == COMMERCIAL_SPONSOR
    assert commercial.sponsor_type is SponsorType.COMMERCIAL
    assert commercial.purpose.value == "research"
    assert (commercial.benefit_sharing or "").strip()
    assert commercial.exclusive_access is False
    assert commercial.summary
    assert commercial.public_benefit
    assert projects[PROJECT].sponsor_type is SponsorType.ACADEMIC
    assert members == {PROJECT: {RESEARCHER}, PROJECT_COMMERCIAL: {COMMERCIAL_RESEARCHER}}


def test_commercial_opt_outs_leave_the_commercial_extract_only(
    demo: tuple[Home, list[str]],
) -> None:
    home, _ = demo
    opted_out = commercial_opt_out_pids(home)
    assert opted_out, "no patient who opted out of commercial use is in the linked zone"
    for dataset in ("patients", "gp_events"):
        leaked = in_extract(home, PROJECT_COMMERCIAL, dataset, opted_out)
        assert len(leaked) == 0, f"{dataset}: {len(leaked)} commercial opt-outs extracted"

    manifest = read_manifest(home, PROJECT_COMMERCIAL)
    assert sorted(manifest.tables) == ["gp_events", "patients"]
    assert manifest.tables["patients"].columns == ["patient_id", "sex", "year_of_birth"]
    removed = manifest.tables["patients"].removed_by_rule["choice:commercial"]
    assert removed["patients"] == len(opted_out)

    # The academic project is not commercial: the same patients are in its extract,
    # unless an NHS register excludes them anyway (each demo patient makes one choice).
    registers: set[str] = set()
    for name in REGISTERS:
        registers |= set(delta.read(home.linked / name, columns=["pid"]).column("pid").to_pylist())
    expected = opted_out - registers
    assert expected, "every commercial opt-out is also on an NHS register"
    assert in_extract(home, PROJECT, "patients", opted_out) == expected
    academic = read_manifest(home, PROJECT)
    assert all("choice:commercial" not in t.removed_by_rule for t in academic.tables.values())


def test_the_narration_counts_each_rule_and_the_last_line_keeps_its_form(
    demo: tuple[Home, list[str]],
) -> None:
    _, lines = demo
    start = lines.index(f"    project {PROJECT_COMMERCIAL} (commercial sponsor):")
    by_rule = [line for line in lines[start : start + 5] if "by rule:" in line]
    assert len(by_rule) == 2  # gp_events and patients
    assert all(re.search(r"choice:commercial [1-9]\d* patients/\d+ rows", x) for x in by_rule)
    assert any(f"extract of {PROJECT_COMMERCIAL}" in line for line in lines if "ok:" in line)
    assert re.fullmatch(r"demo complete in \d+\.\d s: every stage did what it should", lines[-1])


def _rebuild(home: Home, project_id: str, sponsor_type: str, sponsor: str) -> None:
    with control_plane(home) as store:
        datasets = {d.dataset: d.columns for d in store.list_project_datasets(project_id)}
    build_extract(
        home,
        ExtractRequest(project_id, "research", True, datasets, sponsor_type, sponsor),
        {name: load_spec(name).origin.value for name in shipped_datasets()},
        actor="olu",
    )


def _check(home: Home) -> None:
    academic = ExtractRequest(
        PROJECT, "research", True, {}, SponsorType.ACADEMIC.value, "University of Leeds"
    )
    check_commercial_opt_outs(
        home,
        home.sources / "opt_out_choices.csv",
        academic,
        load_spec("patients").origin.value,
        Narrator(lambda _line: None),
    )


def test_the_demo_check_fails_if_either_extract_is_wrong(
    demo: tuple[Home, list[str]], tmp_path: Path
) -> None:
    home, _ = demo
    _check(home)  # the demo's own home passes

    copy = tmp_path / "commercial-as-academic"
    shutil.copytree(home.root, copy)
    wrong = open_home(copy)
    _rebuild(wrong, PROJECT_COMMERCIAL, SponsorType.ACADEMIC.value, COMMERCIAL_SPONSOR)
    with pytest.raises(DemoFailure, match=r"^no patient who opted out of commercial use"):
        _check(wrong)

    copy = tmp_path / "academic-as-commercial"
    shutil.copytree(home.root, copy)
    wrong = open_home(copy)
    _rebuild(wrong, PROJECT, SponsorType.COMMERCIAL.value, "University of Leeds")
    with pytest.raises(DemoFailure, match=r"^every patient who opted out of commercial use only"):
        _check(wrong)
