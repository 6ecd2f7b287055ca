"""What the object-store lake tests (S3, Azure, GCS) do alike once a home's lake is on a
store: check the zones an ingest wrote and the extract with its manifest, find a patient
the extract holds and ask for their record history, and count a table's rows as a
notebook does, with the home or as a pod with only a session's variables. Each store's
own test module builds the store and the home."""

from __future__ import annotations

import csv
import datetime as dt
from collections.abc import Mapping
from pathlib import Path

import pytest

from sde import workspace
from sde.adapters import delta, lake_files
from sde.adapters.delta import RemoteTable
from sde.adapters.duckdb import GuardedConnection
from sde.domain.nhs_number import normalise
from sde.domain.pseudonyms import LinkagePseudonymiser, ProjectPseudonymiser
from sde.domain.workspace_tokens import mint, token_key
from sde.services.extract import PATIENT_ID, extract_dir, read_manifest
from sde.services.home import Home
from sde.services.patient import RecordHistory, record_history
from sde.services.wiring import control_plane
from sde.web.app import create_app
from tests.browser import serve

INGESTED = {"patients", "gp_events", "national_opt_out", "type1_opt_out"}


def assert_zones_on_the_store(home: Home, root: str, patients: range) -> None:
    """After an ingest of the synthetic files: the linked, quarantine and manifests zones
    are tables under ``root`` (the lake's URL) with ``patients`` rows of ``patients``,
    and nothing of them is on local disk."""
    assert isinstance(home.linked, RemoteTable)
    assert home.linked.uri == f"{root}/linked"
    assert set(lake_files.list_tables(home.linked)) >= INGESTED
    assert lake_files.list_tables(home.quarantine), "the synthetic files hold bad rows"
    assert lake_files.list_tables(home.manifests) == ["ingest"]
    assert delta.read(home.linked / "patients").num_rows in patients
    for zone in ("linked", "quarantine", "manifests"):
        assert not any((home.local_lake / zone).iterdir()), zone
    assert list(home.root.rglob("_delta_log")) == []


def assert_extract_on_the_store(home: Home, root: str, project: str) -> RemoteTable:
    """The extract of ``project`` is under ``root`` with its manifest beside its tables,
    and its ``patients`` table holds what the manifest says. Returns its location."""
    table = read_manifest(home, project).tables["patients"]
    assert table.rows_written > 0
    location = extract_dir(home, project)
    assert isinstance(location, RemoteTable)
    assert location.uri == f"{root}/projects/{project}/extract"
    assert lake_files.exists(location / "manifest.json")
    assert delta.read(location / "patients").num_rows == table.rows_written
    return location


def exercise_zone_files(zone: delta.Location, *, make_folder: bool = True) -> None:
    """What sde does with a zone's files, on an empty ``zone``: nothing there, a manifest
    written, replaced and read back, two tables appended; folders and tables listed.
    ``make_folder=False`` for a store whose folders are only prefixes (GCS)."""
    import pyarrow as pa

    assert not lake_files.exists(zone)
    assert lake_files.folders(zone) == []
    assert lake_files.list_tables(zone) == []
    if make_folder:
        lake_files.make_folder(zone / "extract")
    with pytest.raises(FileNotFoundError):
        lake_files.read_bytes(zone / "extract" / "manifest.json")
    lake_files.write_bytes(zone / "extract" / "manifest.json", b'{"v": 1}')
    lake_files.write_bytes(zone / "extract" / "manifest.json", b'{"v": 2}')
    assert lake_files.read_bytes(zone / "extract" / "manifest.json") == b'{"v": 2}'
    assert lake_files.exists(zone / "extract" / "manifest.json")
    delta.append(zone / "patients", pa.table({"pid": ["a"]}))
    delta.append(zone / "events", pa.table({"pid": ["a"]}))
    assert lake_files.folders(zone) == ["events", "extract", "patients"]
    assert lake_files.list_tables(zone) == ["events", "patients"]  # extract/ is no table


def patient_in_extract(home: Home, project: str) -> str:
    """The NHS number of a patient in the sources whose project pseudonym is in
    ``project``'s extract of ``patients``."""
    table = delta.read(extract_dir(home, project) / "patients", columns=[PATIENT_ID])
    extracted = set(table.column(PATIENT_ID).to_pylist())
    linkage = LinkagePseudonymiser(home.master_key())
    pseudonyms = ProjectPseudonymiser(home.master_key(), project)
    with (home.sources / "patients.csv").open(newline="") as f:
        for row in csv.DictReader(f):
            number = normalise(row["nhs_number"])
            if number and pseudonyms.pseudonym(linkage.pid(number)) in extracted:
                return number
    raise AssertionError("no source patient is in the extract")


def history_of_an_extracted_patient(home: Home, project: str) -> RecordHistory:
    """The record history, asked for by the operator ``olu``, of a patient in the
    extract (:func:`patient_in_extract`)."""
    number = patient_in_extract(home, project)
    with control_plane(home) as plane:
        return record_history(home, plane, number, actor="olu", audit=plane.audit)


def rows_a_notebook_counts(con: GuardedConnection, table: str = "patients") -> int:
    try:
        [(n,)] = con.sql(f"select count(*) from {table}").fetchall()
    finally:
        con.close()
    return int(n)


def count_with_the_home(
    home: Home, project: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> int:
    """Rows of the extract's ``patients`` as a notebook run with the home counts them."""
    monkeypatch.chdir(tmp_path)
    return rows_a_notebook_counts(workspace.connect(project, home=home, user="alice"))


def count_as_a_pod(
    home: Home,
    project: str,
    session: Mapping[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> int:
    """Rows of the extract's ``patients`` as a pod counts them: no home, only the
    ``session`` variables the spawner gives (the extract's URL and the store's options),
    a token for ``alice`` and the sde service (run here over ``home``) for the policy and
    versions."""
    for folder in ("scratch", "outputs", "work"):
        (tmp_path / folder).mkdir()
    monkeypatch.chdir(tmp_path / "work")
    token = mint(
        token_key(home.master_key()),
        person="alice",
        project=project,
        now=dt.datetime.now(dt.UTC),
        hours=1,
    )
    with serve(create_app(home)) as url:
        for name, value in {
            **session,
            "SDE_API_URL": url,
            "SDE_TOKEN": token,
            "SDE_PROJECT": project,
            "SDE_USER": "alice",
            "SDE_SCRATCH": str(tmp_path / "scratch"),
            "SDE_OUTPUTS": str(tmp_path / "outputs"),
        }.items():
            monkeypatch.setenv(name, value)
        return rows_a_notebook_counts(workspace.connect())
