"""Opt-outs over real Delta tables: the registers (through ingest), patients' choices (an
append-only event table where the latest event wins), and the exclusions each rule asks
for. No NHS number is ever written or printed."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pyarrow as pa
import pytest
from click.testing import CliRunner
from deltalake import DeltaTable
from deltalake.exceptions import DeltaError

from sde.adapters import delta
from sde.cli import main
from sde.domain import nhs_number
from sde.domain.optouts import ExclusionTerms
from sde.domain.pseudonyms import LinkagePseudonymiser
from sde.errors import InputError
from sde.services.home import Home, init_home
from sde.services.optouts import (
    CHOICES,
    choices_path,
    exclusions,
    import_choices,
    import_register,
    record_choice,
    standing_opt_outs,
    summary,
)
from sde.services.projects import NewProject, ProjectService
from sde.services.wiring import control_plane

pytestmark = [pytest.mark.delta]


def valid_numbers(count: int) -> list[str]:
    out: list[str] = []
    stem = 400000000
    while len(out) < count:
        number = nhs_number.complete(str(stem))
        if number is not None:
            out.append(number)
        stem += 7
    return out


NHS = valid_numbers(10)
T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


class ListAudit:
    def __init__(self) -> None:
        self.events: list[tuple[str, str, str, dict[str, object]]] = []

    def record(self, actor: str, action: str, subject: str, details: object) -> None:
        self.events.append((actor, action, subject, dict(details)))  # type: ignore[call-overload]


def write_csv(path: Path, header: str, rows: list[str]) -> Path:
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


def pid(home: Home, number: str) -> str:
    return LinkagePseudonymiser(home.master_key()).pid(number)


def pids(home: Home, *indexes: int) -> frozenset[str]:
    return frozenset(pid(home, NHS[i]) for i in indexes)


@pytest.fixture
def home(tmp_path: Path) -> Home:
    """Patient 0 on the national opt-out list, patient 1 with a type 1 opt-out."""
    home = init_home(tmp_path / "h")
    import_register(
        home, "national", write_csv(tmp_path / "nat.csv", "nhs_number", [NHS[0]]), actor="op"
    )
    import_register(
        home,
        "type1",
        write_csv(tmp_path / "t1.csv", "nhs_number,gp_practice", [f"{NHS[1]},A81001"]),
        actor="op",
    )
    return home


def terms(**overrides: object) -> ExclusionTerms:
    values: dict[str, object] = {
        "project_id": "alpha",
        "purpose": "research",
        "national_opt_out_applies": True,
        "sponsor_type": "commercial",
        "sponsor_organisation": "Acme Pharma",
        "origin": "gp",
    }
    values.update(overrides)
    return ExclusionTerms(**values)  # type: ignore[arg-type]


def no_nhs_number_in(text: str) -> bool:
    compact = text.replace(" ", "").replace("-", "")
    return not any(n in compact for n in NHS)


# --- registers ---------------------------------------------------------------------------


def test_register_import_wraps_ingest_with_quarantine(tmp_path: Path) -> None:
    home = init_home(tmp_path / "h")
    audit = ListAudit()
    file = write_csv(tmp_path / "n.csv", "nhs_number", [NHS[0], NHS[1], "1234567890", NHS[2]])
    result = import_register(home, "national", file, actor="op", audit=audit)
    assert (result.rows_in, result.rows_written, result.rows_quarantined) == (4, 3, 1)
    assert result.quarantined_by_reason == {"invalid_nhs_number": 1}
    table = delta.read(home.linked / "national_opt_out")
    assert table.column_names == ["pid"]
    assert set(table.column("pid").to_pylist()) == pids(home, 0, 1, 2)
    assert audit.events[0][1] == "ingest"
    again = import_register(home, "national", file, actor="op")
    assert again.skipped
    with pytest.raises(InputError, match="national, type1"):
        import_register(home, "patients", file, actor="op")


def test_missing_register_refuses_but_absent_choices_are_no_choices(tmp_path: Path) -> None:
    home = init_home(tmp_path / "h")
    with pytest.raises(InputError, match="national_opt_out register has not been ingested"):
        exclusions(home, terms())
    import_register(
        home, "national", write_csv(tmp_path / "n.csv", "nhs_number", [NHS[0]]), actor="op"
    )
    with pytest.raises(InputError, match="type1_opt_out"):
        exclusions(home, terms())
    import_register(
        home, "type1", write_csv(tmp_path / "t.csv", "nhs_number,gp_practice", []), actor="op"
    )
    answer = exclusions(home, terms())
    assert not delta.exists(choices_path(home))
    assert answer.counts() == {
        "national_opt_out": 1,
        "type1_opt_out": 0,
        "choice:research": 0,
        "choice:commercial": 0,
        "choice:organisation": 0,
        "choice:project": 0,
    }
    assert CHOICES not in answer.versions


# --- the choices store -------------------------------------------------------------------


def test_latest_event_wins_and_opt_in_restores(home: Home) -> None:
    def excluded() -> frozenset[str]:
        return exclusions(home, terms()).pids("choice:research")

    record_choice(home, NHS[2], "research", actor="op", recorded_at="2026-01-01")
    assert excluded() == pids(home, 2)
    record_choice(home, NHS[2], "research", opt_in=True, actor="op", recorded_at="2026-02-01")
    assert excluded() == frozenset()
    record_choice(home, NHS[2], "research", actor="op", recorded_at="2026-03-01")
    assert excluded() == pids(home, 2)
    # An older choice loaded later does not override a newer one.
    record_choice(home, NHS[2], "research", opt_in=True, actor="op", recorded_at="2026-02-15")
    assert excluded() == pids(home, 2)
    # Every event is kept (append-only); only the standing opt-out is in force.
    assert delta.read(choices_path(home)).num_rows == 4
    assert standing_opt_outs(home).num_rows == 1
    # The same day, the later load wins.
    record_choice(home, NHS[2], "research", opt_in=True, actor="op", recorded_at="2026-03-01")
    assert excluded() == frozenset()


def test_choices_are_kept_per_scope_and_target(home: Home) -> None:
    record_choice(home, NHS[3], "organisation", "Acme Pharma", actor="op", recorded_at="2026-01-01")
    record_choice(home, NHS[3], "organisation", "Other Ltd", actor="op", recorded_at="2026-01-01")
    record_choice(
        home, NHS[3], "organisation", " acme   PHARMA ", opt_in=True, actor="op",
        recorded_at="2026-01-02",
    )  # fmt: skip
    answer = exclusions(home, terms())
    assert answer.pids("choice:organisation") == frozenset()
    other = exclusions(home, terms(sponsor_organisation="other ltd"))
    assert other.pids("choice:organisation") == pids(home, 3)


def test_the_choices_table_is_append_only(home: Home) -> None:
    record_choice(home, NHS[2], "planning", actor="op")
    table = DeltaTable(str(choices_path(home)))
    assert table.metadata().configuration.get("delta.appendOnly") == "true"
    with pytest.raises(DeltaError, match=r"(?i)append"):
        table.delete()


def test_record_choice_refuses_bad_numbers_without_repeating_them(home: Home) -> None:
    for bad in ("1234567890", "94347659", "not a number"):
        with pytest.raises(InputError, match="not a valid NHS number") as refused:
            record_choice(home, bad, "research", actor="op")
        assert bad not in str(refused.value)
    with pytest.raises(InputError, match="needs a target"):
        record_choice(home, NHS[2], "project", actor="op")
    assert not delta.exists(choices_path(home))


CHOICES_HEADER = "nhs_number,scope,target,choice,recorded_at"


def test_import_choices_file(home: Home, tmp_path: Path) -> None:
    audit = ListAudit()
    file = write_csv(
        tmp_path / "choices.csv",
        CHOICES_HEADER,
        [
            f"{NHS[2]},research,,opt_out,2026-01-01",
            f"{NHS[3][:3]} {NHS[3][3:6]} {NHS[3][6:]},planning,,opt_out,2026-01-01",
            f"{NHS[4]},commercial,,opt_out,2026-01-01T09:00:00Z",
            f"{NHS[5]},organisation,Acme Pharma,opt_out,2026-01-01",
            f"{NHS[6]},project,alpha,opt_out,2026-01-01",
            f"{NHS[7]},project,beta,opt_out,2026-01-01",
            f"{NHS[8]},research,,opt_out,2026-01-01",
            f"{NHS[8]},research,,opt_in,2026-01-05",
        ],
    )
    result = import_choices(home, file, actor="op", audit=audit)
    assert (result.events, result.patients, result.version) == (8, 7, 0)
    assert result.by_scope["research:opt_out"] == 2
    assert audit.events[0][1] == "optout.choices.import"
    assert no_nhs_number_in(repr(audit.events))
    # The same file again adds nothing.
    again = import_choices(home, file, actor="op")
    assert again.skipped
    assert again.version == 0
    assert delta.version(choices_path(home)) == 0
    sources = set(delta.read(choices_path(home)).column("source").to_pylist())
    assert sources == {"file choices.csv"}

    answer = exclusions(home, terms())
    assert answer.by_rule() == {
        "national_opt_out": pids(home, 0),
        "type1_opt_out": pids(home, 1),
        "choice:research": pids(home, 2),
        "choice:commercial": pids(home, 4),
        "choice:organisation": pids(home, 5),
        "choice:project": pids(home, 6),
    }
    assert answer.total == 6
    assert frozenset(answer.excluded().to_pylist()) == pids(home, 0, 1, 2, 4, 5, 6)

    # A planning project of an NHS sponsor, exempt, over hospital data.
    other = exclusions(
        home,
        terms(
            project_id="beta",
            purpose="planning",
            national_opt_out_applies=False,
            sponsor_type="nhs",
            sponsor_organisation="NHS England",
            origin="hospital",
        ),
    )
    assert other.by_rule() == {
        "choice:planning": pids(home, 3),
        "choice:organisation": frozenset(),
        "choice:project": pids(home, 7),
    }
    assert other.pids("national_opt_out") == frozenset()

    # Unknown sponsor organisation: every organisation opt-out counts.
    strict = exclusions(home, terms(sponsor_organisation=None))
    assert strict.pids("choice:organisation") == pids(home, 5)


def test_bad_lines_refuse_the_whole_file_naming_lines_not_values(
    home: Home, tmp_path: Path
) -> None:
    file = write_csv(
        tmp_path / "bad.csv",
        CHOICES_HEADER,
        [
            f"{NHS[2]},research,,opt_out,2026-01-01",
            "1234567890,research,,opt_out,2026-01-01",
            f"{NHS[3]},{NHS[4]},,opt_out,2026-01-01",
            f"{NHS[3]},research,{NHS[5]},opt_out,2026-01-01",
            f"{NHS[3]},research,,opt_out,2999-01-01",
            f"{NHS[3]},research,,maybe,2026-01-01",
            f"{NHS[3]},research",
        ],
    )
    with pytest.raises(InputError) as refused:
        import_choices(home, file, actor="op")
    message = str(refused.value)
    assert "6 line(s) refused, nothing was recorded" in message
    assert "line 3: nhs_number is not a valid NHS number" in message
    assert "line 4: scope must be one of" in message
    assert "line 5: a research choice takes no target" in message
    assert "line 6: recorded_at is in the future" in message
    assert "line 7: choice must be opt_out or opt_in" in message
    assert "line 8: expected 5 fields, found 2" in message
    assert "line 2" not in message
    assert no_nhs_number_in(message)
    assert "1234567890" not in message
    assert not delta.exists(choices_path(home))


def test_header_and_empty_files_refused(home: Home, tmp_path: Path) -> None:
    wrong = write_csv(tmp_path / "w.csv", "nhs_number,scope,choice", [])
    with pytest.raises(InputError, match="missing: target, recorded_at"):
        import_choices(home, wrong, actor="op")
    headerless = write_csv(tmp_path / "h.csv", f"{NHS[2]},research,,opt_out,2026-01-01", [])
    with pytest.raises(InputError, match="header must be exactly") as refused:
        import_choices(home, headerless, actor="op")
    assert no_nhs_number_in(str(refused.value))
    empty = write_csv(tmp_path / "e.csv", CHOICES_HEADER, [])
    with pytest.raises(InputError, match="holds no choices"):
        import_choices(home, empty, actor="op")


def test_no_nhs_number_is_stored_anywhere(home: Home, tmp_path: Path) -> None:
    file = write_csv(
        tmp_path / "c.csv",
        CHOICES_HEADER,
        [f"{n},research,,opt_out,2026-01-01" for n in NHS[2:]],
    )
    import_choices(home, file, actor="op")
    record_choice(home, NHS[9], "project", "alpha", actor="op")
    table = delta.read(choices_path(home))
    assert table.num_rows == len(NHS) - 1
    for column in table.column_names:
        if pa.types.is_string(table.schema.field(column).type):
            for value in table.column(column).to_pylist():
                assert no_nhs_number_in(value), f"an NHS number in column {column}"
    # ... nor in any file of the linked zone, log and data files alike.
    for path in home.linked.rglob("*"):
        if path.is_file():
            raw = path.read_bytes().decode("latin-1")
            assert no_nhs_number_in(raw), f"an NHS number in {path.relative_to(home.root)}"


def test_summary_counts_only(home: Home) -> None:
    record_choice(home, NHS[2], "research", actor="op")
    record_choice(home, NHS[3], "project", "alpha", actor="op")
    state = summary(home)
    assert state.registers == {"national_opt_out": 1, "type1_opt_out": 1}
    assert state.choices_by_scope["research"] == 1
    assert state.choices_by_scope["project"] == 1
    assert state.choices_by_scope["planning"] == 0
    assert state.versions[CHOICES] == 1


# --- the command line --------------------------------------------------------------------


def sde(home: Home, *args: str, input: str | None = None) -> tuple[int, str]:
    result = CliRunner(env={"SDE_MASTER_KEY": None, "SDE_USER": None}).invoke(
        main, [*args, "--home", str(home.root)], input=input
    )
    everything = result.stdout + result.stderr
    assert no_nhs_number_in(everything), "an NHS number was printed"
    return result.exit_code, everything


@pytest.mark.sql
def test_cli(tmp_path: Path) -> None:
    home = init_home(tmp_path / "h")
    nat = write_csv(tmp_path / "nat.csv", "nhs_number", [NHS[0], "1234567890"])
    t1 = write_csv(tmp_path / "t1.csv", "nhs_number,gp_practice", [f"{NHS[1]},A81001"])
    code, out = sde(home, "optout", "exclusions", "acme-trial")
    assert code == 2
    assert "acme-trial" in out

    code, out = sde(home, "optout", "import", "national", str(nat), "--actor", "olu")
    assert code == 0, out
    assert "2 in, 1 written, 1 quarantined (invalid_nhs_number 1)" in out
    code, out = sde(home, "optout", "status")
    assert "type1_opt_out: not imported" in out
    code, out = sde(home, "optout", "import", "type1", str(t1), "--actor", "olu")
    assert code == 0
    assert "1 written" in out

    choices = write_csv(
        tmp_path / "choices.csv",
        CHOICES_HEADER,
        [
            f"{NHS[2]},commercial,,opt_out,2026-01-01",
            f"{NHS[3]},project,acme-trial,opt_out,2026-01-01",
        ],
    )
    code, out = sde(home, "optout", "import", "choices", str(choices), "--actor", "olu")
    assert code == 0, out
    assert "2 choices of 2 patients" in out
    code, out = sde(
        home, "optout", "set", "--scope", "organisation", "--target", "Acme Pharma",
        "--actor", "olu", input=f"{NHS[4]}\n",
    )  # fmt: skip
    assert code == 0, out
    assert "recorded an opt-out (organisation Acme Pharma)" in out
    code, out = sde(home, "optout", "set", "--nhs-number", "1234567890", "--scope", "research")
    assert code == 2
    assert "not a valid NHS number" in out

    with control_plane(home) as store:
        ProjectService(store).create_project(
            "olu",
            NewProject(
                id="acme-trial",
                title="A trial",
                purpose="research",
                sponsor="Acme Pharma",
                sponsor_type="commercial",
                legal_basis="consent",
            ),
        )
    pid_file = tmp_path / "out" / "pids.txt"
    pid_file.parent.mkdir()
    code, out = sde(home, "optout", "exclusions", "acme-trial", "--pids", str(pid_file))
    assert code == 0, out
    assert "national_opt_out       1 patients" in out
    assert "type1_opt_out          1 patients" in out
    assert "choice:planning        does not apply" in out
    assert "choice:commercial      1 patients" in out
    assert "choice:organisation    1 patients" in out
    assert "choice:project         1 patients" in out
    assert "excluded in all: 5 patients" in out
    assert set(pid_file.read_text().split()) == pids(home, 0, 1, 2, 3, 4)
    assert pid_file.stat().st_mode & 0o777 == 0o600

    code, out = sde(home, "optout", "exclusions", "acme-trial", "--dataset", "admissions")
    assert code == 0, out
    assert "type1_opt_out          does not apply" in out
    assert "excluded in all: 4 patients" in out

    code, out = sde(home, "optout", "status")
    assert "national_opt_out: 1 patients" in out
    assert "commercial: 1" in out
    assert "organisation: 1" in out

    with control_plane(home) as store:
        actions = [e.action for e in store.audit.events()]
    assert actions.count("optout.exclusions") == 2
    assert "optout.choices.import" in actions
    assert "optout.choice.set" in actions
