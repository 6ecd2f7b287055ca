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
from sde.adapters import delta
from sde.domain.nhs_number import is_valid
from sde.domain.projects import make_dataset_request
from sde.domain.releases import Status, Vote
from sde.errors import PolicyDenied
from sde.services.audit import verify_report
from sde.services.extract import ExtractRequest, build_extract
from sde.services.governance import GovernanceService, GovernanceSettings
from sde.services.home import Home, init_home
from sde.services.ingest import ingest_all, load_spec, shipped_datasets
from sde.services.optouts import import_choices
from sde.services.projects import NewProject, ProjectService
from sde.services.release import OutputFile
from sde.services.synth import synthesise
from sde.services.wiring import control_plane, policy_engine, release_service

PROJECT = "diabetes-outcomes"
RESEARCHER = "alice"
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

        n.stage("People and an approved project")
        projects = ProjectService(store)
        projects.add_person(
            OPERATOR, RESEARCHER, roles=["researcher"], organisation="University of Leeds"
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
        columns = {
            "patients": ["sex", "year_of_birth", "ethnicity", "postcode_district"],
            "gp_events": ["event_date", "snomed_code", "value"],
            "admissions": ["admission_date", "primary_diagnosis"],
        }
        projects.create_project(
            OPERATOR,
            NewProject(
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
                datasets=tuple(
                    make_dataset_request(name, cols, None, {c: f"analysis of {c}" for c in cols})
                    for name, cols in columns.items()
                ),
            ),
        )
        projects.add_member(OPERATOR, PROJECT, RESEARCHER)
        # The board's process, with no comment period (a demo cannot wait 28 days).
        board = GovernanceService(store, engine, GovernanceSettings(comment_period_days=0))
        board.publish(OPERATOR, PROJECT)
        for member, _kind in BOARD_MEMBERS:
            board.vote(PROJECT, member, "approve", "in the public interest")
        project = board.decide(PROJECT, BOARD)
        expect(project.status.value == "approved", "the project is approved")
        n.detail(
            f"project {PROJECT} approved by the board, recorded by {BOARD}; member {RESEARCHER}"
        )

        n.stage("Build the project's extract (approved columns, opt-outs applied)")
        choices = import_choices(
            home, _write_choices(home), actor=OPERATOR, source="demo", audit=store.audit
        )
        n.detail(
            f"patients' own choices: {choices.events} recorded ("
            + ", ".join(f"{kind} {count}" for kind, count in choices.by_scope.items())
            + ")"
        )
        manifest = build_extract(
            home,
            ExtractRequest(
                PROJECT,
                project.purpose.value,
                project.national_opt_out_applies,
                {d.dataset: d.columns for d in store.list_project_datasets(PROJECT)},
                sponsor_type=project.sponsor_type.value,
                sponsor_organisation=project.sponsor,
            ),
            {name: load_spec(name).origin.value for name in shipped_datasets()},
            actor=OPERATOR,
            audit=store.audit,
        )
        for rule in ("choice:research", "choice:organisation", "choice:project"):
            expect(
                manifest.tables["patients"].removed_by_rule[rule]["patients"] > 0,
                f"patients' {rule} opt-outs removed someone",
            )
        for name, t in sorted(manifest.tables.items()):
            expect(t.rows_removed_by_opt_out > 0, f"{name}: opt-outs removed someone")
            expect(
                sum(r["rows"] for r in t.removed_by_rule.values()) >= t.rows_removed_by_opt_out,
                f"{name}: every removed row is counted under a rule",
            )
            n.detail(
                f"{name}: {t.rows_written:,} rows; {t.patients_removed_by_opt_out} patients "
                f"({t.rows_removed_by_opt_out} rows) removed by opt-outs; "
                f"columns {', '.join(t.columns)}"
            )
            n.detail(
                "  by rule: "
                + ", ".join(
                    f"{rule} {r['patients']} patients/{r['rows']} rows"
                    for rule, r in t.removed_by_rule.items()
                )
            )

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

        n.stage("Verify the audit chain")
        intact, lines = verify_report(store.audit)
        for line in lines:
            n.detail(line)
        expect(intact, "the audit chain verifies")

    n.say("")
    n.say(f"demo complete in {time.monotonic() - n.started:.1f} s: every stage did what it should")
    return home


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
    for table_dir in sorted(home.linked.iterdir()):
        data = delta.read(table_dir)
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
