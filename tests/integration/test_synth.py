"""``sde synth`` writes the provider files into an initialised home, and the service never
clobbers files it did not write."""

from __future__ import annotations

import csv
import hashlib
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from sde.cli import main
from sde.errors import StateError
from sde.services.home import init_home
from sde.services.synth import FILES, MANIFEST, read_manifest, synthesise


def _digests(folder: Path) -> dict[str, str]:
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.iterdir())
        if p.is_file()
    }


def _run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, ["synth", *args], catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def test_cli_writes_the_files_into_an_initialised_home(tmp_path: Path) -> None:
    home = init_home(tmp_path / "h")
    code, out, _ = _run("--home", str(home.root), "--patients", "600", "--seed", "7")
    assert code == 0
    for name in FILES:
        path = home.sources / name
        assert path.is_file(), name
        with path.open(newline="", encoding="utf-8") as f:
            rows = list(csv.reader(f))
        summary = read_manifest(home.sources)
        assert summary.file(name).rows == len(rows) - 1, name
        assert name in out
    summary = read_manifest(home.sources)
    assert summary.seed == 7
    assert summary.patients == 600
    assert "600 patients" in out
    # The summary shows counts, never a patient's value.
    assert not re.search(r"\d{10}|\d{3} \d{3} \d{4}", out)
    with (home.sources / "patients.csv").open(newline="", encoding="utf-8") as f:
        first = next(iter(csv.DictReader(f)))
    assert first["family_name"] not in out
    assert first["postcode"] not in out


def test_cli_is_deterministic_and_replaces_its_own_output(tmp_path: Path) -> None:
    home = init_home(tmp_path / "h")
    args = ("--home", str(home.root), "--patients", "300", "--seed", "3")
    assert _run(*args)[0] == 0
    first = _digests(home.sources)
    assert _run(*args)[0] == 0
    assert _digests(home.sources) == first
    assert _run("--home", str(home.root), "--patients", "300", "--seed", "4")[0] == 0
    assert _digests(home.sources)["patients.csv"] != first["patients.csv"]
    assert not [p for p in home.sources.iterdir() if p.name.endswith(".partial")]


def test_cli_passes_its_options_through(tmp_path: Path) -> None:
    home = init_home(tmp_path / "h")
    code, _, _ = _run(
        "--home",
        str(home.root),
        "--patients",
        "400",
        "--events-per-patient",
        "2",
        "--bad-share",
        "0",
        "--no-progress",
    )
    assert code == 0
    summary = read_manifest(home.sources)
    assert summary.events_per_patient == 2.0
    assert summary.bad_share == 0.0
    assert all(entry.bad == 0 for entry in summary.files)
    assert summary.file("gp_events.csv").rows < 400 * 4


def test_cli_refuses_to_overwrite_provider_files(tmp_path: Path) -> None:
    home = init_home(tmp_path / "h")
    delivered = home.sources / "patients.csv"
    delivered.write_text("nhs_number\n9434765919\n", encoding="utf-8")
    code, _, err = _run("--home", str(home.root), "--patients", "50")
    assert code == 2
    assert "patients.csv" in err
    assert "9434765919" not in err
    assert delivered.read_text(encoding="utf-8") == "nhs_number\n9434765919\n"
    assert not (home.sources / MANIFEST).exists()
    code, _, _ = _run("--home", str(home.root), "--patients", "50", "--force")
    assert code == 0
    assert read_manifest(home.sources).patients == 50


def test_cli_rejects_bad_arguments(tmp_path: Path) -> None:
    home = init_home(tmp_path / "h")
    assert _run("--home", str(home.root), "--patients", "-5")[0] == 2
    assert _run("--home", str(home.root), "--bad-share", "0.9")[0] == 2
    assert not (home.sources / MANIFEST).exists()


def test_cli_needs_an_initialised_home(tmp_path: Path) -> None:
    code, _, err = _run("--home", str(tmp_path / "nowhere"), "--patients", "10")
    assert code == 2
    assert "sde init" in err


def test_a_failed_run_leaves_the_directory_as_it_was(tmp_path: Path) -> None:
    sources = tmp_path / "sources"
    synthesise(sources, 200, seed=1)
    before = _digests(sources)

    def fail(_: int) -> None:
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError, match="interrupted"):
        synthesise(sources, 300, seed=2, batch_size=100, on_batch=fail)
    assert _digests(sources) == before


def test_service_refuses_foreign_files_and_creates_the_directory(tmp_path: Path) -> None:
    sources = tmp_path / "new" / "sources"
    summary = synthesise(sources, 100, seed=5)
    assert read_manifest(sources) == summary
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "deaths.csv").write_text("x\n", encoding="utf-8")
    with pytest.raises(StateError, match=r"deaths\.csv"):
        synthesise(foreign, 10)
    assert (foreign / "deaths.csv").read_text(encoding="utf-8") == "x\n"


def test_progress_bar_goes_to_stderr(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    synthesise(tmp_path / "s", 30, seed=1, batch_size=10, progress=True)
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "patients" in captured.err
