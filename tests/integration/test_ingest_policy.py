"""The ``sde.ingest`` policy through the embedded engine (regopy), and ingest asking it
before any row is read: every shipped spec is allowed, each rule refuses a spec changed to
break it, a refusal writes nothing, and the CLI records every decision in the audit log.
(The same rules under the real OPA: ``policies/ingest_test.rego`` and the corpus replay in
``test_rego_opa.py``.)"""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path

import pytest
from click.testing import CliRunner

from sde.adapters.rego_embedded import RegoEmbeddedEngine, default_policy_dir
from sde.cli import main
from sde.domain.datasets import ColumnSpec, ColumnType, DatasetSpec, Pii, Role
from sde.domain.policy import INGEST, Decision
from sde.errors import PolicyDenied
from sde.services import ingest
from sde.services.audit import MemoryAuditLog
from sde.services.decisions import AuditedPolicyEngine
from sde.services.home import Home, init_home
from tests.integration.ingest_fixtures import make_sources

pytestmark = pytest.mark.policy


@pytest.fixture(scope="module")
def engine() -> RegoEmbeddedEngine:
    return RegoEmbeddedEngine(default_policy_dir())


def decide(engine: RegoEmbeddedEngine, spec: DatasetSpec) -> Decision:
    """The decision on ``spec`` for a file whose header is exactly its columns."""
    return engine.decide(INGEST, ingest.ingest_policy_input(spec, list(spec.column_names)))


def with_column(spec: DatasetSpec, name: str, **changes: object) -> DatasetSpec:
    """``spec`` with column ``name`` changed, bypassing the YAML checks (``parse_spec``
    refuses most of these already: the policy is the second line)."""
    columns = tuple(
        dataclasses.replace(c, **changes) if c.name == name else c  # type: ignore[arg-type]
        for c in spec.columns
    )
    assert columns != spec.columns
    return dataclasses.replace(spec, columns=columns)


def with_extra(spec: DatasetSpec, column: ColumnSpec) -> DatasetSpec:
    return dataclasses.replace(spec, columns=(*spec.columns, column))


# --- the shipped specs --------------------------------------------------------------------


@pytest.mark.parametrize("name", ingest.shipped_datasets())
def test_every_shipped_spec_is_allowed(engine: RegoEmbeddedEngine, name: str) -> None:
    assert decide(engine, ingest.load_spec(name)) == Decision(allow=True)


def test_the_input_describes_the_spec_and_its_known_from_datasets() -> None:
    letters = ingest.load_spec("clinic_letters")
    document = ingest.ingest_policy_input(letters, ["letter_text", "nhs_number"])
    spec = document["spec"]
    assert isinstance(spec, dict)
    assert spec["name"] == "clinic_letters"
    assert spec["origin"] == "hospital"
    assert [(c["name"], c["role"], c["pii"]) for c in spec["columns"]] == [
        ("nhs_number", "identifier", "nhs_number"),
        ("letter_date", "keep", None),
        ("specialty", "keep", None),
        ("letter_text", "free_text", None),
    ]
    # the kinds of identifier the patients spec tags: what the letters are cleared of
    assert spec["known_from"] == [
        {
            "dataset": "patients",
            "pii": [
                "address",
                "date",
                "email",
                "location",
                "nhs_number",
                "person",
                "phone",
                "postcode",
            ],
        }
    ]
    assert document["file"] == {"header": ["letter_text", "nhs_number"]}
    patients = ingest.ingest_policy_input(ingest.load_spec("patients"), [])["spec"]
    assert isinstance(patients, dict)
    generalised = {c["name"]: c["generalise"] for c in patients["columns"] if c["generalise"]}
    assert generalised == {"date_of_birth": "year", "postcode": "postcode_district"}


# --- each rule refuses a spec changed to break it -----------------------------------------


def refused(decision: Decision, reason: str) -> bool:
    return not decision.allow and not decision.is_engine_error and reason in decision.reasons


def test_a_header_column_the_spec_does_not_classify_is_refused(
    engine: RegoEmbeddedEngine,
) -> None:
    deaths = ingest.load_spec("deaths")
    header = [*deaths.column_names, "coroner"]
    decision = engine.decide(INGEST, ingest.ingest_policy_input(deaths, header))
    assert refused(
        decision,
        "column coroner of the file is not classified by dataset spec deaths; "
        "add it with a role (drop if not needed)",
    )
    assert len(decision.reasons) == 1


def test_a_spec_column_missing_from_the_file_is_refused(engine: RegoEmbeddedEngine) -> None:
    deaths = ingest.load_spec("deaths")
    header = [c for c in deaths.column_names if c != "place_of_death"]
    decision = engine.decide(INGEST, ingest.ingest_policy_input(deaths, header))
    assert refused(
        decision, "column place_of_death of dataset spec deaths is missing from the file"
    )


def test_a_repeated_header_column_is_refused(engine: RegoEmbeddedEngine) -> None:
    deaths = ingest.load_spec("deaths")
    header = [*deaths.column_names, "underlying_cause"]
    decision = engine.decide(INGEST, ingest.ingest_policy_input(deaths, header))
    assert refused(decision, "the file's header repeats column underlying_cause")


def test_an_unknown_role_is_refused(engine: RegoEmbeddedEngine) -> None:
    # A DatasetSpec cannot hold a role outside Role: change the input the engine sees.
    document = ingest.ingest_policy_input(
        ingest.load_spec("gp_events"), list(ingest.load_spec("gp_events").column_names)
    )
    changed = copy.deepcopy(document)
    changed["spec"]["columns"][-1]["role"] = "keep_raw"  # type: ignore[index]
    assert refused(
        engine.decide(INGEST, changed),
        "column unit of dataset spec gp_events has role keep_raw; it must be one of "
        "identifier, quasi_identifier, free_text, keep, drop",
    )


def test_two_identifiers_are_refused(engine: RegoEmbeddedEngine) -> None:
    admissions = ingest.load_spec("admissions")
    spec = with_column(
        admissions, "hospital_number", role=Role.IDENTIFIER, type=ColumnType.NHS_NUMBER, pii=None
    )
    decision = decide(engine, spec)
    assert decision.reasons == (
        "dataset spec admissions has 2 identifier columns; exactly one, the NHS number, is needed",
    )


@pytest.mark.parametrize("role", [Role.KEEP, Role.DROP])
def test_no_identifier_is_refused(engine: RegoEmbeddedEngine, role: Role) -> None:
    admissions = ingest.load_spec("admissions")
    none = with_column(admissions, "nhs_number", role=role)
    assert refused(
        decide(engine, none),
        "dataset spec admissions has 0 identifier columns; exactly one, the NHS number, is needed",
    )


def test_an_identifier_that_is_not_an_nhs_number_is_refused(engine: RegoEmbeddedEngine) -> None:
    spec = with_column(ingest.load_spec("deaths"), "nhs_number", type=ColumnType.STRING)
    assert refused(
        decide(engine, spec),
        "the identifier column nhs_number of dataset spec deaths has type string, not nhs_number",
    )


@pytest.mark.parametrize(
    ("column", "kind"),
    [
        ("given_name", Pii.PERSON),
        ("address_line", Pii.ADDRESS),
        ("town", Pii.LOCATION),
        ("phone", Pii.PHONE),
        ("email", Pii.EMAIL),
        ("date_of_birth", Pii.DATE),
        ("postcode", Pii.POSTCODE),
    ],
)
def test_identifying_data_kept_is_refused(
    engine: RegoEmbeddedEngine, column: str, kind: Pii
) -> None:
    spec = with_column(ingest.load_spec("patients"), column, role=Role.KEEP, generalise=None)
    assert spec.column(column).pii is kind
    assert refused(
        decide(engine, spec),
        f"column {column} of dataset spec patients holds identifying data ({kind.value}) and "
        "has role keep; drop it, generalise it (quasi_identifier) or de-identify it (free_text)",
    )


def test_a_local_identifier_or_nhs_number_kept_is_refused(engine: RegoEmbeddedEngine) -> None:
    admissions = ingest.load_spec("admissions")
    local = with_column(admissions, "hospital_number", role=Role.KEEP)
    assert refused(
        decide(engine, local),
        "column hospital_number of dataset spec admissions "
        "holds identifying data (identifier) and has role keep; drop it, generalise it "
        "(quasi_identifier) or de-identify it (free_text)",
    )
    # an NHS number needs no pii tag to count as identifying
    other = with_extra(
        admissions, ColumnSpec("referrer_nhs_number", Role.KEEP, ColumnType.NHS_NUMBER)
    )
    decision = engine.decide(INGEST, ingest.ingest_policy_input(other, list(other.column_names)))
    assert refused(
        decision,
        "column referrer_nhs_number of dataset spec admissions holds identifying data "
        "(nhs_number) and has role keep; drop it, generalise it (quasi_identifier) or "
        "de-identify it (free_text)",
    )


@pytest.mark.parametrize("generalisation", [None, "day", "decade"])
def test_a_quasi_identifier_without_an_allowed_generalisation_is_refused(
    engine: RegoEmbeddedEngine, generalisation: str | None
) -> None:
    spec = with_column(ingest.load_spec("patients"), "date_of_birth", generalise=generalisation)
    assert refused(
        decide(engine, spec),
        "quasi_identifier column date_of_birth of dataset spec patients needs a "
        "generalisation: year, month or postcode_district",
    )


def test_free_text_without_known_identifiers_is_refused(engine: RegoEmbeddedEngine) -> None:
    letters = dataclasses.replace(ingest.load_spec("clinic_letters"), known_from=())
    assert refused(
        decide(engine, letters),
        "dataset spec clinic_letters has free text but no known identifiers to clear it of: "
        "name the datasets they come from in known_from (such as patients) or tag its "
        "identifying columns with pii",
    )


def test_free_text_without_known_names_is_refused(engine: RegoEmbeddedEngine) -> None:
    # known dates of birth, but no names: pattern recognisers would leave names in the text
    letters = dataclasses.replace(ingest.load_spec("clinic_letters"), known_from=())
    dated = with_extra(
        letters, ColumnSpec("date_of_birth", Role.DROP, ColumnType.DATE, pii=Pii.DATE)
    )
    reason = (
        "dataset spec clinic_letters has free text but no known names to clear it of: no "
        "column of it or of its known_from datasets is tagged pii person"
    )
    assert refused(decide(engine, dated), reason)
    from_deaths = dataclasses.replace(letters, known_from=("deaths",))
    assert refused(decide(engine, from_deaths), reason)
    # a name column of its own is enough
    named = with_extra(letters, ColumnSpec("patient_name", Role.DROP, pii=Pii.PERSON))
    assert decide(engine, named) == Decision(allow=True)


def test_known_from_a_dataset_without_a_spec_is_refused(engine: RegoEmbeddedEngine) -> None:
    letters = ingest.load_spec("clinic_letters")
    spec = dataclasses.replace(letters, known_from=(*letters.known_from, "pharmacy"))
    assert refused(
        decide(engine, spec),
        "dataset spec clinic_letters clears its free text with identifiers from dataset "
        "pharmacy, which has no dataset spec",
    )


@pytest.mark.parametrize("origin", ["pharmacy", None])
def test_an_unknown_or_missing_origin_is_refused(
    engine: RegoEmbeddedEngine, origin: str | None
) -> None:
    # A DatasetSpec's origin is an Origin: change the input the engine sees.
    deaths = ingest.load_spec("deaths")
    document = ingest.ingest_policy_input(deaths, list(deaths.column_names))
    changed = copy.deepcopy(document)
    changed["spec"]["origin"] = origin  # type: ignore[index]
    shown = origin or "(missing or not text)"
    assert refused(
        engine.decide(INGEST, changed),
        f"dataset spec deaths has origin {shown}; it must be one of gp, hospital, registry, "
        "opt_out",
    )


# --- ingest asks the policy --------------------------------------------------------------


@pytest.fixture
def home(tmp_path: Path) -> Home:
    home = init_home(tmp_path / "h")
    make_sources(home.sources)
    return home


def nothing_written(home: Home) -> bool:
    return (
        not any(home.linked.iterdir())
        and not any(home.quarantine.iterdir())
        and not (ingest.manifest_path(home).exists())
    )


class NoDeidentifier:
    def deidentify(self, text: str, known: object = ()) -> str:
        raise AssertionError("a row was read")


@pytest.mark.delta
def test_ingest_refuses_before_reading_any_row_and_writes_nothing(
    home: Home, engine: RegoEmbeddedEngine, tmp_path: Path
) -> None:
    letters = dataclasses.replace(ingest.load_spec("clinic_letters"), known_from=())
    # Rows that would stop ingest if read: a broken CSV quote after the header.
    path = tmp_path / "letters.csv"
    path.write_bytes(b'nhs_number,letter_date,specialty,letter_text\n9434765919,"2024\n')
    audit = MemoryAuditLog()
    with pytest.raises(PolicyDenied) as caught:
        ingest.ingest_file(
            home,
            letters,
            path,
            engine=AuditedPolicyEngine(engine, audit),
            audit=audit,
            deidentifier=NoDeidentifier(),
        )
    message = str(caught.value)
    assert message.startswith(
        "ingest of letters.csv with dataset spec clinic_letters refused: dataset spec "
        "clinic_letters has free text but no known identifiers"
    )
    assert "9434765919" not in message
    assert nothing_written(home)
    # the refusal is the one event: the decision, recorded; no ingest event
    assert [(e.action, e.subject) for e in audit.events] == [
        ("policy.decision", "policy:sde.ingest")
    ]
    assert audit.events[0].details["allow"] is False


@pytest.mark.delta
def test_an_allowed_spec_is_ingested_and_the_decision_recorded(
    home: Home, engine: RegoEmbeddedEngine
) -> None:
    audit = MemoryAuditLog()
    result = ingest.ingest_file(
        home,
        ingest.load_spec("deaths"),
        home.sources / "deaths.csv",
        engine=AuditedPolicyEngine(engine, audit, "olu"),
        audit=audit,
        actor="olu",
    )
    assert result.rows_written > 0
    assert [(e.actor, e.action, e.subject) for e in audit.events] == [
        ("olu", "policy.decision", "policy:sde.ingest"),
        ("olu", "ingest", "deaths"),
    ]
    assert audit.events[0].details["allow"] is True


@pytest.mark.delta
def test_the_policy_refuses_an_unclassified_column_even_without_the_python_check(
    home: Home, engine: RegoEmbeddedEngine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Defence in depth: with ``check_header`` gone, the policy still refuses."""
    monkeypatch.setattr(ingest, "check_header", lambda *args, **kwargs: None)
    path = tmp_path / "deaths.csv"
    path.write_text(
        "nhs_number,date_of_birth,underlying_cause,place_of_death,coroner\n"
        "9434765919,2023-01-01,I21.9,home,Dr Sandilands\n"
    )
    with pytest.raises(PolicyDenied) as caught:
        ingest.ingest_file(home, ingest.load_spec("deaths"), path, engine=engine)
    assert caught.value.reasons == [
        "column coroner of the file is not classified by dataset spec deaths; add it with a "
        "role (drop if not needed)",
        "column date_of_birth of the file is not classified by dataset spec deaths; add it "
        "with a role (drop if not needed)",
        "column date_of_death of dataset spec deaths is missing from the file",
    ]
    assert "Sandilands" not in str(caught.value)
    assert nothing_written(home)


@pytest.mark.delta
def test_ingest_all_asks_about_every_spec_before_writing_anything(
    home: Home, engine: RegoEmbeddedEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    shipped = ingest.load_spec
    # the last dataset ingested keeps its practice code with a pii tag
    assert ingest.shipped_datasets()[-1] == "type1_opt_out"

    def load_spec(name: str) -> DatasetSpec:
        spec = shipped(name)
        if name == "type1_opt_out":
            return with_column(spec, "gp_practice", role=Role.KEEP, pii=Pii.IDENTIFIER)
        return spec

    monkeypatch.setattr(ingest, "load_spec", load_spec)
    audit = MemoryAuditLog()
    with pytest.raises(PolicyDenied) as caught:
        ingest.ingest_all(home, audit=audit, engine=AuditedPolicyEngine(engine, audit))
    assert caught.value.reasons == [
        "column gp_practice of dataset spec type1_opt_out holds identifying data (identifier) "
        "and has role keep; drop it, generalise it (quasi_identifier) or de-identify it "
        "(free_text)"
    ]
    assert nothing_written(home)
    decisions = [e.details["allow"] for e in audit.events if e.action == "policy.decision"]
    assert decisions == [True] * (len(ingest.shipped_datasets()) - 1) + [False]
    assert all(e.action == "policy.decision" for e in audit.events)


# --- the command line --------------------------------------------------------------------


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


@pytest.mark.delta
@pytest.mark.sql
def test_the_cli_refuses_a_spec_the_policy_refuses_and_records_it(
    home: Home, tmp_path: Path
) -> None:
    # A spec parse_spec accepts (free text may have no known_from), the policy does not.
    spec = tmp_path / "notes.yaml"
    spec.write_text(
        "name: gp_notes\norigin: gp\ncolumns:\n"
        "  nhs_number: {role: identifier}\n  note_date: {role: keep, type: date}\n"
        "  note: {role: free_text}\n"
    )
    notes = tmp_path / "gp_notes.csv"
    notes.write_text("nhs_number,note_date,note\n9434765919,2024-01-02,Seen by Dr Quennell\n")
    code, out, err = run(
        "ingest", "--home", str(home.root), "--no-progress", "--spec", str(spec), str(notes)
    )
    assert code == 2
    assert out == ""
    assert err.startswith(
        "error: ingest of gp_notes.csv with dataset spec gp_notes refused: dataset spec "
        "gp_notes has free text but no known identifiers to clear it of"
    )
    assert "Quennell" not in err
    assert "Traceback" not in err
    assert nothing_written(home)
    code, log, _ = run("audit", "log", "--home", str(home.root))
    assert code == 0
    decisions = [line for line in log.splitlines() if "policy:sde.ingest" in line]
    assert len(decisions) == 1
    assert "policy.decision" in decisions[0]
    assert '"allow":false' in decisions[0]
    assert " ingest " not in log


@pytest.mark.delta
@pytest.mark.sql
def test_the_cli_records_the_decision_for_an_allowed_spec(home: Home) -> None:
    code, out, err = run(
        "ingest",
        "--home",
        str(home.root),
        "--no-progress",
        "deaths",
        str(home.sources / "deaths.csv"),
    )
    assert code == 0, err
    assert out.startswith("deaths: deaths.csv:")
    code, log, _ = run("audit", "log", "--home", str(home.root))
    lines = log.splitlines()
    decision = next(i for i, line in enumerate(lines) if "policy:sde.ingest" in line)
    done = next(i for i, line in enumerate(lines) if " ingest " in line)
    assert decision < done
    assert '"allow":true' in lines[decision]
