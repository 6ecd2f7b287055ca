"""What the object-store lake tests (S3, Azure, GCS) do alike once a home's lake is on a
store: find a patient the extract holds and ask for their record history, and count a
table's rows as a notebook does, with the home or as a pod with only a session's
variables. Each store's own test module builds the store and the home."""

from __future__ import annotations

import csv
import datetime as dt
from collections.abc import Mapping
from pathlib import Path

import pytest

from sde import workspace
from sde.adapters import delta
from sde.adapters.duckdb import GuardedConnection
from sde.domain.nhs_number import normalise
from sde.domain.pseudonyms import LinkagePseudonymiser, ProjectPseudonymiser
from sde.domain.workspace_tokens import mint, token_key
from sde.services.extract import PATIENT_ID, extract_dir
from sde.services.home import Home
from sde.services.patient import RecordHistory, record_history
from sde.services.wiring import control_plane
from sde.web.app import create_app
from tests.browser import serve


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
