"""`sde ingest` through the click command, on a real home (Delta, Presidio, SQL audit)."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from sde.adapters import delta
from sde.adapters.sql import open_control_plane
from sde.cli import main
from sde.services import ingest
from sde.services.home import init_home, open_home
from tests.integration.ingest_fixtures import Sources, make_sources

pytestmark = [pytest.mark.delta, pytest.mark.presidio, pytest.mark.sql]


@pytest.fixture
def home_dir(tmp_path: Path) -> tuple[Path, Sources]:
    home = init_home(tmp_path / "h")
    return home.root, make_sources(home.sources)


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def test_ingest_one_dataset_then_again(home_dir: tuple[Path, Sources]) -> None:
    root, sources = home_dir
    code, out, err = run(
        "ingest", "--home", str(root), "--no-progress", "patients", str(sources.path("patients"))
    )
    assert code == 0, err
    expected = sources.expected["patients"]
    assert out.startswith(
        f"patients: patients.csv: {sources.rows['patients']} in, {len(sources.patients)} written, "
        f"{sum(expected.values())} quarantined (bad_date 2, bad_value 1, duplicate_key 1, "
        "duplicate_row 1, invalid_nhs_number 1, missing_required 1); linked/patients version 0"
    )
    code, out, _ = run(
        "ingest", "--home", str(root), "--no-progress", "patients", str(sources.path("patients"))
    )
    assert code == 0
    assert "skipped, already ingested" in out
    assert "nothing added" in out


def test_ingest_all(home_dir: tuple[Path, Sources]) -> None:
    root, _ = home_dir
    code, out, err = run("ingest", "--home", str(root), "--all", "--no-progress")
    assert code == 0, err
    lines = out.strip().splitlines()
    assert [line.split(":")[0] for line in lines] == ingest.shipped_datasets()
    for name in ingest.shipped_datasets():
        assert delta.exists(root / "lake" / "linked" / name)
    # Every ingest is in the SQL audit log.
    code, log, _ = run("audit", "log", "--home", str(root))
    assert code == 0
    assert log.count(" ingest ") >= len(ingest.shipped_datasets())


def test_ingest_records_the_actor(home_dir: tuple[Path, Sources]) -> None:
    root, sources = home_dir
    code, _, err = run(
        "ingest",
        "--home",
        str(root),
        "--no-progress",
        "--actor",
        "olu",
        "deaths",
        str(sources.path("deaths")),
    )
    assert code == 0, err
    with open_control_plane(open_home(root).database_url) as plane:
        events = plane.audit.events()
    # The sde.ingest policy decision and the ingest itself, both as asked by --actor.
    assert [(e.actor, e.action, e.subject) for e in events] == [
        ("olu", "policy.decision", "policy:sde.ingest"),
        ("olu", "ingest", "deaths"),
    ]


def test_custom_spec(home_dir: tuple[Path, Sources], tmp_path: Path) -> None:
    root, sources = home_dir
    spec = tmp_path / "registry.yaml"
    spec.write_text(
        "name: death_registry\norigin: registry\nkey: [nhs_number]\ncolumns:\n"
        "  nhs_number: {role: identifier}\n  date_of_death: {role: keep, type: date}\n"
        "  underlying_cause: {role: keep}\n  place_of_death: {role: drop}\n"
    )
    code, out, err = run(
        "ingest",
        "--home",
        str(root),
        "--no-progress",
        "--spec",
        str(spec),
        str(sources.path("deaths")),
    )
    assert code == 0, err
    assert out.startswith("death_registry: deaths.csv:")
    assert delta.read(root / "lake" / "linked" / "death_registry").schema.names == [
        "pid",
        "date_of_death",
        "underlying_cause",
    ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["pharmacy", "x.csv"], "no dataset spec named 'pharmacy'"),
        (["patients"], "name at least one FILE"),
        ([], "name a DATASET and at least one FILE, or use --all"),
        (["--all", "patients"], "--all takes no DATASET"),
        (["--reference", "patients", "clinic_letters", "x.csv"], "--reference takes DATASET=FILE"),
        (["deaths", "absent.csv"], "no file at absent.csv"),
    ],
)
def test_refusals_are_one_line(
    home_dir: tuple[Path, Sources], args: list[str], message: str
) -> None:
    root, _ = home_dir
    code, _, err = run("ingest", "--home", str(root), *args)
    assert code == 2
    assert message in err
    assert "Traceback" not in err


def test_unclassified_column_names_it(home_dir: tuple[Path, Sources], tmp_path: Path) -> None:
    root, sources = home_dir
    path = tmp_path / "deaths.csv"
    path.write_text(
        "nhs_number,date_of_death,underlying_cause,place_of_death,coroner\n"
        f"{sources.patients[0].nhs},2023-01-01,I21.9,home,Dr Sandilands\n"
    )
    code, _, err = run("ingest", "--home", str(root), "deaths", str(path))
    assert code == 2
    assert "'coroner'" in err
    assert "Sandilands" not in err
