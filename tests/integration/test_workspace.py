"""sde.workspace.connect: policy first, then a locked DuckDB over the pinned extract."""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from sde import workspace
from sde.domain.audit import AuditEntry
from sde.domain.projects import ProjectStatus
from sde.errors import InputError, NotFound, PolicyDenied
from sde.services.extract import ExtractRequest, build_extract
from sde.services.home import Home, init_home
from sde.services.projects import ProjectService
from sde.services.wiring import control_plane, policy_engine
from tests.factories import application, approve_through_board, linked_patients

pytestmark = [pytest.mark.sql, pytest.mark.policy, pytest.mark.duckdb, pytest.mark.delta]

NHS = ["9434765919", "9434765870", "4010232137"]


@pytest.fixture
def home(tmp_path: Path) -> Home:
    home = init_home(tmp_path / "h")
    linked_patients(home, NHS)
    with control_plane(home) as store:
        projects = ProjectService(store)
        projects.add_person("olu", "bea", roles=["board_member"], organisation="Lay")
        projects.add_person("olu", "mallory", roles=["researcher"], organisation="Uni")
        projects.create_project(
            "olu", application("diabetes", {"patients": ["sex", "year_of_birth"]}, sponsor="Uni")
        )
        projects.add_member("olu", "diabetes", "alice")
        approve_through_board(store, policy_engine(home), "diabetes", decided_by="bea")
    build_extract(
        home,
        ExtractRequest("diabetes", "research", True, {"patients": ("sex", "year_of_birth")}),
        {"patients": "gp"},
        actor="olu",
    )
    return home


def test_member_queries_the_extract_without_pid(home: Home) -> None:
    con = workspace.connect("diabetes", home=home, user="alice")
    assert con.sql("select count(*) from patients").fetchall() == [(3,)]
    columns = [row[0] for row in con.sql("describe patients").fetchall()]
    assert columns == ["patient_id", "sex", "year_of_birth"]
    with pytest.raises(duckdb.Error):
        con.execute("COPY patients TO 'leak.csv'")


@pytest.mark.parametrize("user", ["mallory", "nobody"])
def test_non_members_refused(home: Home, user: str) -> None:
    with pytest.raises(PolicyDenied):
        workspace.connect("diabetes", home=home, user=user)


def test_suspended_project_refused(home: Home) -> None:
    with control_plane(home) as store:
        store.set_project_status(
            "diabetes", ProjectStatus.SUSPENDED, audit=AuditEntry("olu", "project.suspend", "p")
        )
    with pytest.raises(PolicyDenied, match="suspended"):
        workspace.connect("diabetes", home=home, user="alice")


def test_expired_accreditation_refused(home: Home) -> None:
    with control_plane(home) as store:
        alice = store.get_person("alice")
        expired = dataclasses.replace(alice, accredited_until=dt.date(2020, 1, 1))
        store.update_person(expired, audit=AuditEntry("olu", "person.update", "person:alice"))
    with pytest.raises(PolicyDenied, match="accredit"):
        workspace.connect("diabetes", home=home, user="alice")


def test_no_extract_yet(home: Home) -> None:
    import shutil

    shutil.rmtree(home.project_workspace("diabetes") / "extract")
    with pytest.raises(NotFound, match="no extract"):
        workspace.connect("diabetes", home=home, user="alice")


def test_save_output_writes_csv_to_outputs(home: Home) -> None:
    path = workspace.save_output(
        pd.DataFrame({"sex": ["F"], "n": [12]}), "t.csv", project="diabetes", home=home
    )
    assert path.parent == home.project_workspace("diabetes") / "outputs"
    assert path.read_text() == "sex,n\nF,12\n"
    with pytest.raises(InputError):
        workspace.save_output(pd.DataFrame(), "../t.csv", project="diabetes", home=home)


def test_a_session_connects_with_no_arguments(home: Home, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SDE_PROJECT", raising=False)
    monkeypatch.setenv("SDE_HOME", str(home.root))
    monkeypatch.setenv("SDE_USER", "alice")
    with pytest.raises(InputError, match="SDE_PROJECT"):
        workspace.connect()
    monkeypatch.setenv("SDE_PROJECT", "diabetes")
    con = workspace.connect()
    assert con.sql("select count(*) from patients").fetchall() == [(3,)]
    saved = workspace.save_output(pd.DataFrame({"sex": ["F"], "n": [20]}), "t.csv")
    assert saved.parent == home.project_workspace("diabetes") / "outputs"


def test_workspace_choices_show_each_project_with_the_policys_answer(home: Home) -> None:
    from sde.services.workspaces import require_workspace, workspace_choices

    today = dt.datetime.now(dt.UTC).date()
    with control_plane(home) as store:
        engine = policy_engine(home)
        [choice] = workspace_choices(store, engine, person_id="alice", today=today)
        assert (choice.project_id, choice.allowed, choice.reasons) == ("diabetes", True, ())
        assert workspace_choices(store, engine, person_id="mallory", today=today) == []
        require_workspace(store, engine, person_id="alice", project_id="diabetes", today=today)
        with pytest.raises(PolicyDenied, match="member"):
            require_workspace(
                store, engine, person_id="mallory", project_id="diabetes", today=today
            )
        store.set_project_status(
            "diabetes", ProjectStatus.SUSPENDED, audit=AuditEntry("olu", "project.suspend", "p")
        )
        [suspended] = workspace_choices(store, engine, person_id="alice", today=today)
        assert not suspended.allowed
        assert any("suspended" in r for r in suspended.reasons)
