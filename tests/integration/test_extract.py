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

pytestmark = [pytest.mark.delta]

NHS = ["9434765919", "9434765870", "4010232137", "4010232145", "4010232153"]
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
        pa.table({"pid": pids, "primary_diagnosis": ["E11.9"] * 5, "provider_code": ["RR8"] * 5}),
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
    )


def patient_ids(home: Home, project: str, dataset: str) -> set[str]:
    path = home.project_dir(project) / "extract" / dataset
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
    table = DeltaTable(str(home.project_dir("diabetes") / "extract" / "gp_events"))
    assert table.schema().to_arrow().names == ["patient_id", "snomed_code"]
    pids = set(DeltaTable(str(home.linked / "gp_events")).to_pyarrow_table()["pid"].to_pylist())
    assert not pids & patient_ids(home, "diabetes", "gp_events")


def test_two_projects_cannot_join(home: Home) -> None:
    build_extract(home, request("alpha"), ORIGINS, actor="op")
    build_extract(home, request("beta"), ORIGINS, actor="op")
    alpha = patient_ids(home, "alpha", "admissions")
    beta = patient_ids(home, "beta", "admissions")
    assert len(alpha) == len(beta) == 4
    assert not alpha & beta


def test_manifest_pins_versions_and_reconciles(home: Home) -> None:
    audit = ListAudit()
    manifest = build_extract(home, request(), ORIGINS, actor="op", audit=audit)
    gp = manifest.tables["gp_events"]
    assert gp.rows_in_source == 10
    assert gp.rows_written + gp.rows_removed_by_opt_out == gp.rows_in_source
    assert gp.rows_removed_by_opt_out == 4
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
    bad = ExtractRequest("p", "research", True, {"gp_events": ("nhs_number",)})
    with pytest.raises(InputError, match="nhs_number"):
        build_extract(home, bad, ORIGINS, actor="op")


def test_missing_opt_out_register_fails_closed(home: Home) -> None:
    import shutil

    shutil.rmtree(home.linked / "national_opt_out")
    with pytest.raises(InputError, match="national_opt_out"):
        build_extract(home, request(), ORIGINS, actor="op")
