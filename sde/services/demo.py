"""``sde demo``: the whole flow, end to end, on embedded defaults, narrated.

Each stage checks that it did what it should (counts reconcile, no identifier survived,
the unsafe table was refused for the right reason, the chain verifies). The first stage
that does not raises :class:`DemoFailure`; the demo's exit code is 0 only if all pass.
"""

from __future__ import annotations

import csv
import datetime as dt
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from sde import workspace
from sde.adapters import delta, lake_files
from sde.adapters.sql import ControlPlane
from sde.domain.generalise import parse_date
from sde.domain.nhs_number import is_valid, normalise
from sde.domain.patient_sign_in import sign_in_check, sign_in_key
from sde.domain.projects import DatasetRequest, Project, make_dataset_request
from sde.domain.pseudonyms import LinkagePseudonymiser, ProjectPseudonymiser
from sde.domain.releases import Status, Vote
from sde.errors import PolicyDenied
from sde.register import write_site
from sde.register.render import read_history
from sde.services import patient_page
from sde.services.audit import CheckpointSource, audit_report
from sde.services.extract import (
    PATIENT_ID,
    ExtractManifest,
    ExtractRequest,
    build_extract,
    extract_dir,
)
from sde.services.governance import GovernanceService, GovernanceSettings
from sde.services.home import Home, init_home
from sde.services.ingest import ingest_all, load_spec, shipped_datasets, sign_in_path
from sde.services.optouts import exclusions, import_choices
from sde.services.ports import AuditSink
from sde.services.projects import NewProject, ProjectService
from sde.services.register import build_register, manifest_reader, register_folder
from sde.services.release import OutputFile
from sde.services.synth import synthesise
from sde.services.wiring import (
    control_plane,
    policy_engine,
    record_home_created,
    release_service,
)

PROJECT = "diabetes-outcomes"
RESEARCHER = "alice"
# A commercially sponsored project beside the academic one: patients' "commercial"
# choices keep them out of its extract only, and the register has value-exchange terms
# (benefit sharing, no exclusive access) to publish.
PROJECT_COMMERCIAL = "diabetes-care-patterns"
COMMERCIAL_SPONSOR = "Northern Analytics Ltd"
COMMERCIAL_RESEARCHER = "nadia"
CHECKERS = ("carol", "dev")
OPERATOR = "olu"
BOARD = "bea"
BOARD_MEMBERS = (("lay-1", "lay"), ("gp-1", "clinical"), ("dpo-1", "data_protection"))

SAFE_QUERY = """
    with t2 as (select distinct patient_id from gp_events where snomed_code = '44054006')
    select
        case when $year - p.year_of_birth < 45 then '0-44'
             when $year - p.year_of_birth < 65 then '45-64'
             else '65+' end as age_band,
        case when t2.patient_id is null then 'no' else 'yes' end as type2_diabetes,
        count(*) as n
    from patients p left join t2 using (patient_id)
    group by all order by all
"""

UNSAFE_QUERY = """
    select p.ethnicity, p.postcode_district, count(*) as n
    from patients p
    where p.patient_id in (select patient_id from gp_events where snomed_code = '44054006')
    group by all order by all
"""

_SEPARATORS = re.compile(r"[\s-]")
_TEN_DIGITS = re.compile(r"(?=(\d{10}))")


class DemoFailure(Exception):
    """A stage did not do what it should."""


@dataclass
class Narrator:
    say: Callable[[str], None]
    started: float = 0.0
    stage_no: int = 0

    def stage(self, title: str) -> None:
        self.stage_no += 1
        self.say("")
        self.say(f"[{self.stage_no}] {title}")

    def detail(self, text: str) -> None:
        self.say(f"    {text}")

    def ok(self, text: str) -> None:
        self.say(f"    ok: {text}")


def expect(condition: bool, what: str) -> None:
    if not condition:
        raise DemoFailure(what)


def run_demo(home_dir: Path, say: Callable[[str], None], patients: int = 10_000) -> Home:
    n = Narrator(say, started=time.monotonic())
    n.say(f"sde demo: a Secure Data Environment end to end, in {home_dir}")

    n.stage("Initialise the state directory")
    home = init_home(home_dir)
    record_home_created(home, OPERATOR)
    n.detail(f"config, master key (mode 0600) at {home.key_path}, control database, lake")

    n.stage(f"Synthesise {patients:,} patients as identifiable provider files")
    summary = synthesise(home.sources, patients, seed=42)
    for f in summary.files:
        n.detail(f"{f.name}: {f.rows:,} rows ({f.bad} deliberately bad)")

    n.stage("Ingest every dataset: validate, pseudonymise, generalise, de-identify")
    with control_plane(home) as store:
        engine = policy_engine(home, audit=store.audit, actor=OPERATOR)
        results = ingest_all(home, audit=store.audit, actor=OPERATOR, engine=engine)
        expect(len(results) == len(shipped_datasets()), "every shipped dataset was ingested")
        n.detail("the sde.ingest policy accepted every dataset spec (each decision audited)")
        for r in results:
            expect(
                r.rows_in == r.rows_written + r.rows_quarantined,
                f"{r.dataset}: rows in = written + quarantined",
            )
            reasons = ", ".join(f"{k} {v}" for k, v in sorted(r.quarantined_by_reason.items()))
            n.detail(
                f"{r.dataset}: {r.rows_in:,} in = {r.rows_written:,} written + "
                f"{r.rows_quarantined} quarantined ({reasons or 'none'})"
            )
        _check_no_nhs_numbers(home, n)

        n.stage("People and two approved projects, one academic and one commercial")
        projects = ProjectService(store)
        projects.add_person(
            OPERATOR, RESEARCHER, roles=["researcher"], organisation="University of Leeds"
        )
        projects.add_person(
            OPERATOR, COMMERCIAL_RESEARCHER, roles=["researcher"], organisation=COMMERCIAL_SPONSOR
        )
        for checker in CHECKERS:
            projects.add_person(
                OPERATOR, checker, roles=["output_checker"], organisation="NHS England"
            )
        projects.add_person(OPERATOR, OPERATOR, roles=["operator"], organisation="NHS England")
        projects.add_person(OPERATOR, BOARD, roles=["board_member"], organisation="Lay member")
        for member, kind in BOARD_MEMBERS:
            projects.add_person(
                OPERATOR, member, roles=["board_member"], organisation="SDE board", board_kind=kind
            )
        # The board's process, with no comment period (a demo cannot wait 28 days).
        board = GovernanceService(store, engine, GovernanceSettings(comment_period_days=0))
        approved: list[Project] = []
        for application, member in (
            (_academic_application(), RESEARCHER),
            (_commercial_application(), COMMERCIAL_RESEARCHER),
        ):
            projects.create_project(OPERATOR, application)
            projects.add_member(OPERATOR, application.id, member)
            board.publish(OPERATOR, application.id)
            for voter, _kind in BOARD_MEMBERS:
                board.vote(application.id, voter, "approve", "in the public interest")
            project = board.decide(application.id, BOARD)
            expect(project.status.value == "approved", f"project {project.id} is approved")
            n.detail(
                f"project {project.id} ({project.sponsor}, {project.sponsor_type.value}) "
                f"approved by the board, recorded by {BOARD}; member {member}"
            )
            approved.append(project)
        commercial = approved[1]
        expect(
            bool((commercial.benefit_sharing or "").strip()) and not commercial.exclusive_access,
            f"project {PROJECT_COMMERCIAL} has benefit-sharing terms and no exclusive access",
        )

        n.stage("Build each project's extract (approved columns, opt-outs applied)")
        choices_file = _write_choices(home)
        choices = import_choices(
            home, choices_file, actor=OPERATOR, source="demo", audit=store.audit
        )
        n.detail(
            f"patients' own choices: {choices.events} recorded ("
            + ", ".join(f"{kind} {count}" for kind, count in choices.by_scope.items())
            + ")"
        )
        origins = {name: load_spec(name).origin.value for name in shipped_datasets()}
        requests = {
            p.id: ExtractRequest(
                p.id,
                p.purpose.value,
                p.national_opt_out_applies,
                {d.dataset: d.columns for d in store.list_project_datasets(p.id)},
                sponsor_type=p.sponsor_type.value,
                sponsor_organisation=p.sponsor,
            )
            for p in approved
        }
        manifests = {
            project_id: _build_extract(home, request, origins, store.audit, n)
            for project_id, request in requests.items()
        }
        manifest = manifests[PROJECT]
        for rule in ("choice:research", "choice:organisation", "choice:project"):
            expect(
                manifest.tables["patients"].removed_by_rule[rule]["patients"] > 0,
                f"patients' {rule} opt-outs removed someone from {PROJECT}",
            )
        for name, t in sorted(manifest.tables.items()):
            expect(t.rows_removed_by_opt_out > 0, f"{name}: opt-outs removed someone")
            expect(
                "choice:commercial" not in t.removed_by_rule,
                f"{PROJECT} {name}: no commercial opt-out applies to an academic project",
            )
        commercial_manifest = manifests[PROJECT_COMMERCIAL]
        for rule in ("choice:research", "choice:commercial"):
            expect(
                commercial_manifest.tables["patients"].removed_by_rule[rule]["patients"] > 0,
                f"patients' {rule} opt-outs removed someone from {PROJECT_COMMERCIAL}",
            )
        check_commercial_opt_outs(home, choices_file, requests[PROJECT], origins["patients"], n)

        n.stage(f"Researcher {RESEARCHER} queries the extract in a locked-down DuckDB")
        con = workspace.connect(PROJECT, home=home, user=RESEARCHER)
        year = dt.date.today().year
        safe = con.execute(SAFE_QUERY, {"year": year}).df()
        unsafe = con.sql(UNSAFE_QUERY).df()
        try:
            con.execute(f"COPY patients TO '{home.root / 'leak.csv'}'")
            raise DemoFailure("COPY TO was refused")
        except Exception as exc:
            if isinstance(exc, DemoFailure):
                raise
            n.ok(f"COPY TO refused ({type(exc).__name__})")
        con.close()
        for line in safe.to_string(index=False).splitlines():
            n.detail(line)
        safe_path = workspace.save_output(safe, "t2dm_by_age.csv", project=PROJECT, home=home)
        unsafe_path = workspace.save_output(
            unsafe, "t2dm_by_ethnicity_district.csv", project=PROJECT, home=home
        )

        n.stage("Request two releases; automatic disclosure checks run on each")
        releases = release_service(home, store, engine)
        safe_req = releases.request(
            PROJECT,
            RESEARCHER,
            [OutputFile(safe_path.name, safe_path.read_bytes())],
            title="Type 2 diabetes by age band",
        )
        unsafe_req = releases.request(
            PROJECT,
            RESEARCHER,
            [OutputFile(unsafe_path.name, unsafe_path.read_bytes())],
            title="Type 2 diabetes by ethnicity and postcode district",
        )
        for req in (safe_req, unsafe_req):
            for name, checks in releases.checks(req.id).items():
                for c in checks:
                    n.detail(f"{req.id} {name}: {c['status']} {c['name']}: {c['message']}")
        safe_checks = releases.checks(safe_req.id)[safe_path.name]
        expect(all(c["status"] != "fail" for c in safe_checks), "the safe table fails no check")
        unsafe_checks = releases.checks(unsafe_req.id)[unsafe_path.name]
        expect(
            any(c["name"] == "min_cell_count" and c["status"] == "fail" for c in unsafe_checks),
            "the small-cell table fails the minimum cell count",
        )
        try:
            releases.review(safe_req.id, RESEARCHER, Vote.APPROVE)
            raise DemoFailure("the author could not review their own request")
        except PolicyDenied as refused:
            n.ok(f"author's own review refused: {'; '.join(refused.reasons)}")

        n.stage("Two independent output checkers review each request; approved means released")
        for req in (safe_req, unsafe_req):
            for checker in CHECKERS:
                status = releases.review(req.id, checker, Vote.APPROVE)
                n.detail(f"{checker} approves {req.id} -> {status.value}")
        expect(status is Status.APPROVED, f"{unsafe_req.id} is approved but not released")
        expect(
            store.get_release_request(safe_req.id).status is Status.RELEASED,
            f"{safe_req.id} is released once the second checker approves",
        )
        target = home.egress / safe_req.id
        released = sorted(p.name for p in target.iterdir())
        expect(
            released == sorted([safe_path.name, "sde-release.json", "results.json", "checksums"]),
            "the release holds the table, its record and ACRO's results.json",
        )
        n.ok(f"{safe_req.id} released to {target}: {', '.join(released)}")

        n.stage("The egress policy blocks the small-cell table despite two approvals")
        try:
            releases.publish(unsafe_req.id, OPERATOR)
            raise DemoFailure("the small-cell table was refused by the egress policy")
        except PolicyDenied as refused:
            expect(
                not (home.egress / unsafe_req.id).exists(), "nothing of the refused request left"
            )
            n.ok(f"{unsafe_req.id} blocked despite two approvals:")
            for reason in refused.reasons:
                n.detail(f"  - {reason}")

        n.stage("Transparency: the public register, a patient's page, a choice honoured")
        register_dir = register_folder(home)
        site = build_register(store, store.audit, manifest_reader(home))
        write_site(site, register_dir)
        n.detail(
            f"register published to {register_dir}: {len(site.projects)} projects, "
            f"{len(site.flows)} data flows, {len(site.releases)} releases; audit checkpoint "
            f"event {site.checkpoint.head_seq}"
        )
        _patient_changes_their_mind(home, store, requests, origins, n)

        n.stage("Verify the audit chain and the checkpoint the register published")
        report = audit_report(
            store.audit, [CheckpointSource(str(register_dir), read_history(register_dir))]
        )
        for checked in report.lines:
            n.detail(checked.text)
        expect(report.chain_intact, "the audit chain verifies")
        expect(
            report.ok and report.checkpoints_checked >= 1,
            "the log still holds the checkpoint the register published",
        )

    n.say("")
    n.say(f"demo complete in {time.monotonic() - n.started:.1f} s: every stage did what it should")
    return home


def _patient_in_both(home: Home) -> tuple[str, dt.date, str]:
    """A patient of the synthetic population (NHS number, date of birth, postcode) whose
    record both projects' extracts hold and who can sign in to the patient's page."""
    key = sign_in_key(home.master_key())
    linkage = LinkagePseudonymiser(home.master_key())
    checks = delta.read(sign_in_path(home))
    held = set(
        zip(checks.column("pid").to_pylist(), checks.column("check").to_pylist(), strict=True)
    )
    extracts = {
        project: set(
            delta.read(extract_dir(home, project) / "patients").column(PATIENT_ID).to_pylist()
        )
        for project in (PROJECT, PROJECT_COMMERCIAL)
    }
    with (home.sources / "patients.csv").open(newline="") as f:
        for row in csv.DictReader(f):
            digits = normalise(row["nhs_number"])
            born = parse_date(row["date_of_birth"])
            if digits is None or not is_valid(digits) or born is None:
                continue
            pid = linkage.pid(digits)
            if (pid, sign_in_check(key, pid, born, row["postcode"])) not in held:
                continue
            if all(
                ProjectPseudonymiser(home.master_key(), project).pseudonym(pid) in ids
                for project, ids in extracts.items()
            ):
                return digits, born, row["postcode"]
    raise DemoFailure("a patient in both projects' extracts who can sign in")


def _patient_changes_their_mind(
    home: Home,
    store: ControlPlane,
    requests: dict[str, ExtractRequest],
    origins: dict[str, str],
    n: Narrator,
) -> None:
    """A patient signs in to their page, sees both projects, opts out of commercial use;
    the next refresh of each extract honours it (the commercial one only)."""
    number, born, postcode = _patient_in_both(home)
    patient = patient_page.sign_in(
        home,
        store,
        nhs_number=number,
        day=str(born.day),
        month=str(born.month),
        year=str(born.year),
        postcode=postcode,
        client="127.0.0.1",
        now=dt.datetime.now(dt.UTC),
    )
    before = patient_page.record_history(home, store, patient)
    expect(
        {u.project_id for u in before.projects if u.in_latest_extract}
        == {PROJECT, PROJECT_COMMERCIAL},
        "the patient's page shows both projects that used their record",
    )
    n.ok(
        "a patient signed in (NHS number, date of birth, postcode) and saw "
        f"{len(before.datasets)} datasets holding their record and both projects that used it"
    )
    patient_page.change_choice(home, store, patient, "commercial", None, opt_in=False)
    n.detail("they opted out of commercial use; each project's next refresh applies it:")
    for project in (PROJECT_COMMERCIAL, PROJECT):
        _build_extract(home, requests[project], origins, store.audit, n)
    after = {u.project_id: u for u in patient_page.record_history(home, store, patient).projects}
    expect(
        not after[PROJECT_COMMERCIAL].in_latest_extract
        and bool(after[PROJECT_COMMERCIAL].withheld_by),
        f"the refresh of {PROJECT_COMMERCIAL} left the patient out, and says why",
    )
    expect(after[PROJECT].in_latest_extract, f"the patient is still in {PROJECT}")
    n.ok(
        f"the refresh left them out of {PROJECT_COMMERCIAL} ("
        + "; ".join(after[PROJECT_COMMERCIAL].withheld_by)
        + f") and kept them in {PROJECT}; every view and change is audited"
    )


def _dataset_requests(columns: dict[str, list[str]]) -> tuple[DatasetRequest, ...]:
    return tuple(
        make_dataset_request(name, cols, None, {c: f"analysis of {c}" for c in cols})
        for name, cols in columns.items()
    )


def _academic_application() -> NewProject:
    return NewProject(
        id=PROJECT,
        title="Outcomes of type 2 diabetes by age",
        purpose="research",
        sponsor="University of Leeds",
        legal_basis="section 251 support",
        legal_basis_type="s251_support",
        summary="How the outcomes of type 2 diabetes differ by age and sex.",
        public_benefit="Better targeted diabetes care.",
        uses=("health_research",),
        start_date=dt.date(2025, 1, 1),
        end_date=dt.date(2030, 12, 31),
        datasets=_dataset_requests(
            {
                "patients": ["sex", "year_of_birth", "ethnicity", "postcode_district"],
                "gp_events": ["event_date", "snomed_code", "value"],
                "admissions": ["admission_date", "primary_diagnosis"],
            }
        ),
    )


def _commercial_application() -> NewProject:
    """A company's application: the policy approves a commercial sponsor only with
    benefit-sharing terms and without exclusive access."""
    return NewProject(
        id=PROJECT_COMMERCIAL,
        title="GP care in the years before a type 2 diabetes diagnosis",
        purpose="research",
        sponsor=COMMERCIAL_SPONSOR,
        sponsor_type="commercial",
        legal_basis="section 251 support",
        legal_basis_type="s251_support",
        summary=(
            "How often, and for what, people see their GP in the years before type 2 "
            "diabetes is diagnosed, to design an earlier screening service."
        ),
        public_benefit="Earlier diagnosis of type 2 diabetes, and fewer of its complications.",
        benefit_sharing=(
            "Northern Analytics Ltd pays the cost of access; NHS organisations may use the "
            "screening service built from the results free of charge for ten years; the "
            "results are published openly."
        ),
        exclusive_access=False,
        uses=("health_research",),
        start_date=dt.date(2025, 6, 1),
        end_date=dt.date(2028, 5, 31),
        datasets=_dataset_requests(
            {
                "patients": ["sex", "year_of_birth"],
                "gp_events": ["event_date", "snomed_code"],
            }
        ),
    )


def _build_extract(
    home: Home,
    request: ExtractRequest,
    origins: dict[str, str],
    audit: AuditSink,
    n: Narrator,
) -> ExtractManifest:
    """Build one project's extract and narrate what each opt-out rule removed."""
    manifest = build_extract(home, request, origins, actor=OPERATOR, audit=audit)
    n.detail(f"project {request.project_id} ({request.sponsor_type} sponsor):")
    for name, t in sorted(manifest.tables.items()):
        expect(
            sum(r["rows"] for r in t.removed_by_rule.values()) >= t.rows_removed_by_opt_out,
            f"{request.project_id} {name}: every removed row is counted under a rule",
        )
        n.detail(
            f"  {name}: {t.rows_written:,} rows; {t.patients_removed_by_opt_out} patients "
            f"({t.rows_removed_by_opt_out} rows) removed by opt-outs; "
            f"columns {', '.join(t.columns)}"
        )
        n.detail(
            "    by rule: "
            + ", ".join(
                f"{rule} {r['patients']} patients/{r['rows']} rows"
                for rule, r in t.removed_by_rule.items()
            )
        )
    return manifest


def check_commercial_opt_outs(
    home: Home, choices_file: Path, academic: ExtractRequest, patients_origin: str, n: Narrator
) -> None:
    """Through pseudonyms: no patient who opted out of commercial use is in the commercial
    project's extract, and each of them whom no other rule excludes is in the academic
    one. Only counts are narrated."""
    with choices_file.open(newline="") as f:
        numbers = [
            normalise(row["nhs_number"])
            for row in csv.DictReader(f)
            if row["scope"] == "commercial" and row["choice"] == "opt_out"
        ]
    linkage = LinkagePseudonymiser(home.master_key())
    linked = set(delta.read(home.linked / "patients", columns=["pid"]).column("pid").to_pylist())
    opted_out = {linkage.pid(number) for number in numbers if number is not None} & linked
    expect(len(opted_out) > 0, "some patient who opted out of commercial use is in the linked zone")

    def extracted(project_id: str) -> set[str]:
        table = delta.read(extract_dir(home, project_id) / "patients", columns=["patient_id"])
        return set(table.column("patient_id").to_pylist())

    def pseudonyms(project_id: str, pids: set[str]) -> set[str]:
        project = ProjectPseudonymiser(home.master_key(), project_id)
        return {project.pseudonym(pid) for pid in pids}

    leaked = pseudonyms(PROJECT_COMMERCIAL, opted_out) & extracted(PROJECT_COMMERCIAL)
    expect(
        not leaked,
        f"no patient who opted out of commercial use is in the extract of "
        f"{PROJECT_COMMERCIAL} ({len(leaked)} are)",
    )
    other_rules = exclusions(home, academic.terms(patients_origin)).excluded().to_pylist()
    kept = opted_out - set(other_rules)
    expect(len(kept) > 0, "some commercial opt-out is excluded by no academic rule")
    missing = pseudonyms(PROJECT, kept) - extracted(PROJECT)
    expect(
        not missing,
        f"every patient who opted out of commercial use only is in the extract of "
        f"{PROJECT} ({len(missing)} are not)",
    )
    n.ok(
        f"none of the {len(opted_out)} patients who opted out of commercial use is in the "
        f"extract of {PROJECT_COMMERCIAL}; the {len(kept)} of them no other rule excludes "
        f"are in the extract of {PROJECT}"
    )


def _write_choices(home: Home) -> Path:
    """A file of patients' own choices, as a patient-facing service would send them:
    40 patients of the synthetic population (their NHS numbers stay in ``sources``)."""
    with (home.sources / "patients.csv").open(newline="") as f:
        numbers = dict.fromkeys(
            row["nhs_number"] for row in csv.DictReader(f) if is_valid(row["nhs_number"])
        )
    chosen = list(numbers)[-40:]
    scopes = (
        [("research", "")] * 12
        + [("planning", "")] * 8
        + [("commercial", "")] * 8
        + [("organisation", "University of Leeds")] * 6
        + [("project", PROJECT)] * 6
    )
    path = home.sources / "opt_out_choices.csv"
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["nhs_number", "scope", "target", "choice", "recorded_at"])
        for number, (scope, target) in zip(chosen, scopes, strict=True):
            writer.writerow([number, scope, target, "opt_out", dt.date.today().isoformat()])
    return path


def _check_no_nhs_numbers(home: Home, n: Narrator) -> None:
    """No NHS number of the source files, in any layout, is in any linked-zone table."""
    numbers: set[str] = set()
    with (home.sources / "patients.csv").open(newline="") as f:
        for row in csv.DictReader(f):
            digits = row["nhs_number"].replace(" ", "").replace("-", "")
            if len(digits) == 10:
                numbers.add(digits)
    found = 0
    cells = 0
    for name in lake_files.list_tables(home.linked):
        data = delta.read(home.linked / name)
        for column in data.column_names:
            if not pa.types.is_string(data.schema.field(column).type):
                continue
            for value in data.column(column).to_pylist():
                if value is None:
                    continue
                cells += 1
                compact = _SEPARATORS.sub("", value)
                found += sum(1 for run in _TEN_DIGITS.findall(compact) if run in numbers)
    expect(found == 0, "no NHS number from the source files is in the linked zone")
    n.ok(f"no source NHS number in {cells:,} text cells of the linked zone")
