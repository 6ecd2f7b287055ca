"""Extracts: approved columns only, opt-outs applied, project pseudonyms, pinned versions.

The linked zone is built here directly as Delta tables keyed by pid, so these tests do
not depend on ingest."""

from pathlib import Path

import pyarrow as pa
import pytest
from deltalake import DeltaTable, write_deltalake

from sde.domain.pseudonyms import LinkagePseudonymiser, ProjectPseudonymiser
from sde.errors import InputError
from sde.services.extract import ExtractRequest, build_extract, read_manifest
from sde.services.home import Home, init_home
from sde.services.optouts import choices_path, record_choice

pytestmark = [pytest.mark.delta]

NHS = [
    "9434765919",
    "9434765870",
    "4010232137",
    "4010232145",
    "4010232153",
    "4010232161",
    "4010232188",
    "4010232196",
]
ORIGINS = {"gp_events": "gp", "admissions": "hospital"}


class ListAudit:
    def __init__(self) -> None:
        self.events: list[tuple[str, str, str, dict[str, object]]] = []

    def record(self, actor: str, action: str, subject: str, details: object) -> None:
        self.events.append((actor, action, subject, dict(details)))  # type: ignore[call-overload]


@pytest.fixture
def home(tmp_path: Path) -> Home:
    home = init_home(tmp_path / "h")
    link = LinkagePseudonymiser(home.master_key())
    pids = [link.pid(n) for n in NHS]
    write_deltalake(
        str(home.linked / "gp_events"),
        pa.table(
            {
                "pid": [p for p in pids for _ in range(2)],
                "snomed_code": ["44054006", "38341003"] * len(pids),
                "value": [float(i) for i in range(2 * len(pids))],
            }
        ),
    )
    write_deltalake(
        str(home.linked / "admissions"),
        pa.table(
            {
                "pid": pids,
                "primary_diagnosis": ["E11.9"] * len(pids),
                "provider_code": ["RR8"] * len(pids),
            }
        ),
    )
    # patient 0 opted out nationally; patient 1 has a type 1 opt-out at their GP
    write_deltalake(str(home.linked / "national_opt_out"), pa.table({"pid": [pids[0]]}))
    write_deltalake(str(home.linked / "type1_opt_out"), pa.table({"pid": [pids[1]]}))
    return home


def request(project: str = "diabetes", national: bool = True) -> ExtractRequest:
    return ExtractRequest(
        project_id=project,
        purpose="research",
        national_opt_out_applies=national,
        datasets={"gp_events": ("snomed_code",), "admissions": ("primary_diagnosis",)},
        sponsor_type="academic",
        sponsor_organisation="University of Leeds",
    )


def patient_ids(home: Home, project: str, dataset: str) -> set[str]:
    path = home.project_workspace(project) / "extract" / dataset
    return set(DeltaTable(str(path)).to_pyarrow_table().column("patient_id").to_pylist())


def project_ids(home: Home, project: str, numbers: list[str]) -> set[str]:
    link = LinkagePseudonymiser(home.master_key())
    proj = ProjectPseudonymiser(home.master_key(), project)
    return {proj.pseudonym(link.pid(n)) for n in numbers}


def test_opt_outs_applied_per_origin(home: Home) -> None:
    build_extract(home, request(), ORIGINS, actor="op")
    # national opt-out removes patient 0 everywhere; type 1 removes patient 1 from GP data
    assert patient_ids(home, "diabetes", "gp_events") == project_ids(home, "diabetes", NHS[2:])
    assert patient_ids(home, "diabetes", "admissions") == project_ids(home, "diabetes", NHS[1:])


def test_exempt_project_keeps_national_opt_outs_but_never_type1(home: Home) -> None:
    build_extract(home, request(national=False), ORIGINS, actor="op")
    gp = patient_ids(home, "diabetes", "gp_events")
    assert gp == project_ids(home, "diabetes", [NHS[0], *NHS[2:]])


def test_only_approved_columns_and_no_pid(home: Home) -> None:
    build_extract(home, request(), ORIGINS, actor="op")
    table = DeltaTable(str(home.project_workspace("diabetes") / "extract" / "gp_events"))
    assert table.schema().to_arrow().names == ["patient_id", "snomed_code"]
    pids = set(DeltaTable(str(home.linked / "gp_events")).to_pyarrow_table()["pid"].to_pylist())
    assert not pids & patient_ids(home, "diabetes", "gp_events")


def test_two_projects_cannot_join(home: Home) -> None:
    build_extract(home, request("alpha"), ORIGINS, actor="op")
    build_extract(home, request("beta"), ORIGINS, actor="op")
    alpha = patient_ids(home, "alpha", "admissions")
    beta = patient_ids(home, "beta", "admissions")
    assert len(alpha) == len(beta) == len(NHS) - 1
    assert not alpha & beta


def test_manifest_pins_versions_and_reconciles(home: Home) -> None:
    audit = ListAudit()
    manifest = build_extract(home, request(), ORIGINS, actor="op", audit=audit)
    gp = manifest.tables["gp_events"]
    assert gp.rows_in_source == 2 * len(NHS)
    assert gp.rows_written + gp.rows_removed_by_opt_out == gp.rows_in_source
    assert gp.rows_removed_by_opt_out == 4
    assert gp.patients_removed_by_opt_out == 2
    assert gp.removed_by_rule == {
        "national_opt_out": {"patients": 1, "rows": 2},
        "type1_opt_out": {"patients": 1, "rows": 2},
        "choice:research": {"patients": 0, "rows": 0},
        "choice:organisation": {"patients": 0, "rows": 0},
        "choice:project": {"patients": 0, "rows": 0},
    }
    assert manifest.opt_out_versions == {"national_opt_out": 0, "type1_opt_out": 0}
    assert gp.source_version == 0
    assert read_manifest(home, "diabetes") == manifest
    assert audit.events[0][1] == "extract.build"
    # a refresh after new linked data pins the new source version
    write_deltalake(
        str(home.linked / "gp_events"),
        pa.table({"pid": ["x" * 32], "snomed_code": ["1"], "value": [1.0]}),
        mode="append",
    )
    again = build_extract(home, request(), ORIGINS, actor="op")
    assert again.tables["gp_events"].source_version == 1
    assert again.tables["gp_events"].rows_written == gp.rows_written + 1


def test_unknown_column_refused(home: Home) -> None:
    bad = ExtractRequest("p1", "research", True, {"gp_events": ("nhs_number",)})
    with pytest.raises(InputError, match="nhs_number"):
        build_extract(home, bad, ORIGINS, actor="op")


def test_missing_opt_out_register_fails_closed(home: Home) -> None:
    import shutil

    shutil.rmtree(home.linked / "national_opt_out")
    with pytest.raises(InputError, match="national_opt_out"):
        build_extract(home, request(), ORIGINS, actor="op")


# --- patients' own choices ----------------------------------------------------------------


def record_choices(home: Home) -> None:
    """Patient 2 opts out of research, 3 of planning, 4 of commercial use, 5 of the
    University of Leeds, 6 of project diabetes, 7 of project other."""
    for index, scope, target in [
        (2, "research", None),
        (3, "planning", None),
        (4, "commercial", None),
        (5, "organisation", "university of  LEEDS"),
        (6, "project", "diabetes"),
        (7, "project", "other"),
    ]:
        record_choice(home, NHS[index], scope, target, actor="op", recorded_at="2026-01-01")


def test_each_kind_of_choice_removes_its_patients(home: Home) -> None:
    record_choices(home)
    build_extract(home, request(), ORIGINS, actor="op")
    assert patient_ids(home, "diabetes", "gp_events") == project_ids(
        home, "diabetes", [NHS[3], NHS[4], NHS[7]]
    )
    assert patient_ids(home, "diabetes", "admissions") == project_ids(
        home, "diabetes", [NHS[1], NHS[3], NHS[4], NHS[7]]
    )
    # A commercial planning project of another sponsor: other choices apply.
    commercial = ExtractRequest(
        project_id="beta",
        purpose="planning",
        national_opt_out_applies=False,
        datasets={"admissions": ("primary_diagnosis",)},
        sponsor_type="commercial",
        sponsor_organisation="Acme Pharma",
    )
    manifest = build_extract(home, commercial, ORIGINS, actor="op")
    kept = [NHS[i] for i in (0, 1, 2, 5, 6, 7)]
    assert patient_ids(home, "beta", "admissions") == project_ids(home, "beta", kept)
    assert manifest.tables["admissions"].removed_by_rule == {
        "choice:planning": {"patients": 1, "rows": 1},
        "choice:commercial": {"patients": 1, "rows": 1},
        "choice:organisation": {"patients": 0, "rows": 0},
        "choice:project": {"patients": 0, "rows": 0},
    }


def test_unknown_sponsor_is_taken_at_its_strictest(home: Home) -> None:
    record_choices(home)
    unknown = ExtractRequest("gamma", "research", True, {"admissions": ("primary_diagnosis",)})
    manifest = build_extract(home, unknown, ORIGINS, actor="op")
    # commercial (4) and any organisation (5) opt-outs apply; planning (3), other projects
    # (6, 7) do not
    kept = [NHS[i] for i in (1, 3, 6, 7)]
    assert patient_ids(home, "gamma", "admissions") == project_ids(home, "gamma", kept)
    assert "choice:commercial" in manifest.tables["admissions"].opt_outs_applied


def test_manifest_counts_each_rule_and_a_distinct_total(home: Home) -> None:
    record_choices(home)
    # patient 0 is on the national list and also opts out of research
    record_choice(home, NHS[0], "research", actor="op", recorded_at="2026-01-01")
    audit = ListAudit()
    manifest = build_extract(home, request(), ORIGINS, actor="op", audit=audit)
    gp = manifest.tables["gp_events"]
    assert gp.removed_by_rule == {
        "national_opt_out": {"patients": 1, "rows": 2},
        "type1_opt_out": {"patients": 1, "rows": 2},
        "choice:research": {"patients": 2, "rows": 4},
        "choice:organisation": {"patients": 1, "rows": 2},
        "choice:project": {"patients": 1, "rows": 2},
    }
    # patients 0, 1, 2, 5, 6: each once in the total
    assert gp.patients_removed_by_opt_out == 5
    assert gp.rows_removed_by_opt_out == 10
    assert gp.rows_written == gp.rows_in_source - 10
    assert manifest.opt_out_versions["opt_out_choices"] == 6
    assert read_manifest(home, "diabetes") == manifest
    details = audit.events[0][3]
    assert details["tables"]["gp_events"]["removed_by_rule"] == gp.removed_by_rule  # type: ignore[index]


def test_refresh_removes_a_newly_opted_out_patient(home: Home) -> None:
    first = build_extract(home, request(), ORIGINS, actor="op")
    assert project_ids(home, "diabetes", [NHS[3]]) <= patient_ids(home, "diabetes", "admissions")
    record_choice(home, NHS[3], "project", "diabetes", actor="op")
    again = build_extract(home, request(), ORIGINS, actor="op")
    assert not project_ids(home, "diabetes", [NHS[3]]) & patient_ids(home, "diabetes", "admissions")
    assert not project_ids(home, "diabetes", [NHS[3]]) & patient_ids(home, "diabetes", "gp_events")
    table = again.tables["admissions"]
    assert table.removed_by_rule["choice:project"] == {"patients": 1, "rows": 1}
    assert table.rows_written == first.tables["admissions"].rows_written - 1
    assert table.version == first.tables["admissions"].version + 1
    assert "opt_out_choices" not in first.opt_out_versions
    assert again.opt_out_versions["opt_out_choices"] == 0
    # ... and an opt-in puts the patient back at the next refresh
    record_choice(home, NHS[3], "project", "diabetes", opt_in=True, actor="op")
    build_extract(home, request(), ORIGINS, actor="op")
    assert project_ids(home, "diabetes", [NHS[3]]) <= patient_ids(home, "diabetes", "admissions")


def test_no_nhs_number_in_choices_extract_or_manifest(home: Home) -> None:
    record_choices(home)
    build_extract(home, request(), ORIGINS, actor="op")
    for root in (choices_path(home), home.project_workspace("diabetes")):
        for path in root.rglob("*"):
            if path.is_file():
                raw = path.read_bytes().decode("latin-1")
                assert not any(n in raw for n in NHS), f"an NHS number in {path.name}"
