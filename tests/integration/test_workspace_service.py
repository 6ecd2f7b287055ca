"""sde.workspace in service mode: a session with no home, only the extract folder, a
scratch and an outputs folder, the sde service's URL and a token, against the REAL
workspace API (``sde.web.app.create_app`` served by uvicorn) over a real home.

One home and one server for the module: project ``diabetes`` (alice a member) with an
extract, over a linked zone of three patients. Each test sets the session's environment
afresh (and no ``SDE_HOME``) and works in a folder that holds no home.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import traceback
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

import sde.workspace.stats as st
from sde import workspace
from sde.adapters.duckdb import FILE_ACCESS, HOST_DATA, WorkspaceRefused
from sde.domain.audit import AuditEntry, AuditEvent
from sde.domain.projects import ProjectStatus
from sde.domain.releases import Status
from sde.domain.workspace_tokens import mint, token_key
from sde.errors import ConfigError, InputError, PolicyDenied, SdeError
from sde.services.extract import extract_dir
from sde.services.home import Home, init_home
from sde.services.wiring import control_plane, policy_engine
from sde.web.app import create_app
from sde.workspace.release import ReleaseCheck, check_release, request_release
from sde.workspace.service import FiledRequest, WorkspaceService, from_environment
from tests.browser import free_port, serve
from tests.factories import airlock_project, linked_patients, sex_extract

pytestmark = [pytest.mark.sql, pytest.mark.policy, pytest.mark.duckdb, pytest.mark.delta]

NHS = ["9434765919", "9434765870", "4010232137"]
PROJECT = "diabetes"
SESSION_VARS = (
    "SDE_HOME",
    "SDE_API_URL",
    "SDE_TOKEN",
    "SDE_PROJECT",
    "SDE_USER",
    "SDE_EXTRACT",
    "SDE_SCRATCH",
    "SDE_OUTPUTS",
    "JPY_SESSION_NAME",
)


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Home:
    home = init_home(tmp_path_factory.mktemp("service") / "h")
    linked_patients(home, NHS)
    with control_plane(home) as store:
        airlock_project(store, policy_engine(home))
    sex_extract(home, PROJECT)
    return home


@pytest.fixture(scope="module")
def api_url(home: Home) -> Iterator[str]:
    with serve(create_app(home)) as url:
        yield url


def _token(home: Home, *, now: dt.datetime | None = None, person: str = "alice") -> str:
    return mint(
        token_key(home.master_key()),
        person=person,
        project=PROJECT,
        now=now or dt.datetime.now(dt.UTC),
        hours=1,
    )


@pytest.fixture
def token(home: Home) -> str:
    return _token(home)


@pytest.fixture
def session(
    home: Home,
    api_url: str,
    token: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> dict[str, Path]:
    """The environment a pod gets: no SDE_HOME, and a working directory with no home."""
    for name in SESSION_VARS:
        monkeypatch.delenv(name, raising=False)
    folders = {"scratch": tmp_path / "scratch", "outputs": tmp_path / "outputs"}
    for folder in folders.values():
        folder.mkdir()
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setenv("SDE_API_URL", api_url)
    monkeypatch.setenv("SDE_TOKEN", token)
    monkeypatch.setenv("SDE_PROJECT", PROJECT)
    monkeypatch.setenv("SDE_USER", "alice")
    monkeypatch.setenv("SDE_EXTRACT", str(extract_dir(home, PROJECT)))
    monkeypatch.setenv("SDE_SCRATCH", str(folders["scratch"]))
    monkeypatch.setenv("SDE_OUTPUTS", str(folders["outputs"]))
    return folders


@pytest.fixture
def people() -> pd.DataFrame:
    """Regions N and S with plenty of people of both sexes; region X has one woman."""
    rows: list[dict[str, str]] = []
    for region, sex, n in [("N", "F", 30), ("N", "M", 25), ("S", "F", 12), ("S", "M", 40)]:
        rows.extend({"region": region, "sex": sex} for _ in range(n))
    rows.append({"region": "X", "sex": "F"})
    return pd.DataFrame(rows)


def _seq(home: Home) -> int:
    with control_plane(home) as store:
        return store.audit.count()


def _events_since(home: Home, seq: int, action: str) -> list[AuditEvent]:
    with control_plane(home) as store:
        return [e for e in store.audit.events(after_seq=seq) if e.action == action]


def _assert_no_token(exc: BaseException, token: str) -> None:
    """Neither the message, the repr, the reasons nor anything in the chain holds it."""
    text = "".join(traceback.format_exception(exc))
    assert token not in text
    assert token not in repr(exc)
    assert all(token not in r for r in getattr(exc, "reasons", []))
    for part in token.split("."):
        assert part not in text


# --- connect -------------------------------------------------------------------------------


def test_connect_with_no_arguments_queries_the_extract(
    home: Home, session: dict[str, Path]
) -> None:
    query = "select sex, count(*) as n from patients group by sex order by sex"
    with workspace.connect() as con:
        assert con.scratch == session["scratch"]
        remote = con.sql(query).fetchall()
        columns = [row[0] for row in con.sql("describe patients").fetchall()]
    with workspace.connect(PROJECT, home=home, user="alice") as local:  # home mode
        assert local.sql(query).fetchall() == remote
    assert remote == [("F", 2), ("M", 1)]
    assert columns == ["patient_id", "sex"]


def test_open_answers_the_pinned_versions_from_the_manifest(home: Home, session: Path) -> None:
    from sde.services.extract import read_manifest

    person, project, tables = from_environment().open()
    manifest = read_manifest(home, PROJECT)
    assert (person, project) == ("alice", PROJECT)
    assert tables == {name: t.version for name, t in manifest.tables.items()}


def test_refused_operation_is_raised_and_audited_by_the_service(
    home: Home, session: dict[str, Path], tmp_path: Path, token: str
) -> None:
    before = _seq(home)
    sql = f"COPY patients TO '{tmp_path / 'leak.csv'}'"
    with workspace.connect() as con:
        with pytest.raises(WorkspaceRefused) as refused:
            con.execute(sql)
        assert refused.value.rule == FILE_ACCESS
        assert isinstance(refused.value, PolicyDenied)
        with pytest.raises(WorkspaceRefused) as registered:
            con.register("mine", pd.DataFrame({"x": [1]}))
        assert registered.value.rule == HOST_DATA
        # Both were recorded, so the connection is still open.
        assert con.sql("select count(*) from patients").fetchall() == [(3,)]
    assert not (tmp_path / "leak.csv").exists()
    _assert_no_token(refused.value, token)
    first, second = _events_since(home, before, "workspace.refused")
    assert (first.actor, first.subject) == ("alice", f"project:{PROJECT}")
    assert first.details == {
        "project": PROJECT,
        "reason": FILE_ACCESS,
        "statement": "COPY",
        "sql_sha256": hashlib.sha256(sql.encode()).hexdigest(),
    }
    assert (second.actor, second.details["reason"]) == ("alice", HOST_DATA)
    assert second.details["statement"] == "python"
    assert "sql_sha256" not in second.details


def test_suspended_project_is_refused_at_once(
    home: Home, session: Path, token: str, people: pd.DataFrame
) -> None:
    with control_plane(home) as store:
        before = store.get_project(PROJECT).status
        store.set_project_status(
            PROJECT, ProjectStatus.SUSPENDED, audit=AuditEntry("olu", "project.suspend", "p")
        )
    try:
        with pytest.raises(PolicyDenied, match="suspended") as denied:
            workspace.connect()
        with pytest.raises(PolicyDenied, match="suspended"):
            check_release({"t.csv": st.crosstab(people, "region", "sex")})
    finally:
        with control_plane(home) as store:
            store.set_project_status(
                PROJECT, before, audit=AuditEntry("olu", "project.resume", "p")
            )
    assert f"workspace for alice on project {PROJECT}" in str(denied.value)
    _assert_no_token(denied.value, token)


def test_another_project_or_person_by_name_is_refused(session: Path) -> None:
    with pytest.raises(InputError, match="this session is for project diabetes"):
        workspace.connect("cancer")
    with pytest.raises(InputError, match="this session is for person alice"):
        workspace.connect(user="mallory")


# --- release ------------------------------------------------------------------------------


def test_check_release_of_a_crosstab(session: Path, people: pd.DataFrame) -> None:
    failing = check_release({"by_region.csv": st.crosstab(people, "region", "sex")})
    assert isinstance(failing, ReleaseCheck)
    assert failing.status == "fail"
    [(name, kind, worst, problems)] = failing.rows()
    assert (name, kind, worst) == ("by_region.csv", "crosstab", "fail")
    assert problems
    safe = st.crosstab(people[people.region != "X"], "region", "sex")
    passing = check_release({"by_region.csv": safe})
    assert passing.status == "pass"
    assert "by_region.csv (crosstab): pass" in repr(passing)


def test_request_release_of_a_crosstab_is_filed_for_alice(
    home: Home, session: dict[str, Path], people: pd.DataFrame
) -> None:
    safe = st.crosstab(people[people.region != "X"], "region", "sex")
    saved = workspace.save_output(
        pd.DataFrame({"age_band": ["40-59", "60+"], "n": [120, 98]}), "by_age.csv"
    )
    request = request_release(
        {"by_region.csv": safe, "by_age.csv": "by_age.csv"},
        title="Admissions by region and sex",
        comment="for the paper",
    )
    assert isinstance(request, FiledRequest)
    assert request.status is Status.SUBMITTED
    assert request.status.value == "submitted"
    assert (request.author, request.project_id) == ("alice", PROJECT)
    assert request.title == "Admissions by region and sex"
    with control_plane(home) as store:
        filed = store.get_release_request(request.id)
        files = {f.name: f for f in store.list_release_files(request.id)}
        assert store.get_release_file_content(request.id, "by_region.csv") == (
            safe.table.to_csv().encode()
        )
        assert store.get_release_file_content(request.id, "by_age.csv") == saved.read_bytes()
    assert (filed.author, filed.project_id, filed.status) == ("alice", PROJECT, Status.SUBMITTED)
    assert filed.comment == "for the paper"
    assert {name: f.kind for name, f in files.items()} == {
        "by_region.csv": "crosstab",
        "by_age.csv": "table",
    }
    assert files["by_region.csv"].metadata["parameters"]["min_cell_count"] == 10


def test_save_output_writes_to_sde_outputs(session: dict[str, Path]) -> None:
    path = workspace.save_output(pd.DataFrame({"n": [12, 15]}), "counts.csv")
    assert path == session["outputs"] / "counts.csv"
    assert path.read_text() == "n\n12\n15\n"
    assert workspace.outputs_dir() == session["outputs"]


def test_a_file_outside_sde_outputs_is_not_sent(session: dict[str, Path], tmp_path: Path) -> None:
    (tmp_path / "elsewhere.csv").write_text("n\n12\n")
    with pytest.raises(InputError, match="outputs folder"):
        check_release([tmp_path / "elsewhere.csv"])


# --- configuration and errors -------------------------------------------------------------


@pytest.mark.parametrize("variable", ["SDE_SCRATCH", "SDE_EXTRACT"])
def test_connect_needs_the_session_folders(
    session: Path, monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    monkeypatch.delenv(variable)
    with pytest.raises(ConfigError, match=variable):
        workspace.connect()


def test_scratch_dir_needs_sde_scratch(session: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SDE_SCRATCH")
    with pytest.raises(ConfigError, match="SDE_SCRATCH"):
        workspace.scratch_dir()


def test_scratch_may_not_overlap_the_extract(
    home: Home, session: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SDE_SCRATCH", str(extract_dir(home, PROJECT).parent))
    with pytest.raises(ConfigError, match="overlaps the extract"):
        workspace.scratch_dir()


def test_outputs_need_sde_outputs(session: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SDE_OUTPUTS")
    with pytest.raises(ConfigError, match="SDE_OUTPUTS"):
        workspace.outputs_dir()
    with pytest.raises(ConfigError, match="SDE_OUTPUTS"):
        workspace.save_output(pd.DataFrame({"n": [12]}), "counts.csv")


def test_unreachable_service_names_sde_api_url(
    session: Path, monkeypatch: pytest.MonkeyPatch, token: str
) -> None:
    monkeypatch.setenv("SDE_API_URL", f"http://127.0.0.1:{free_port()}/services/airlock")
    with pytest.raises(ConfigError, match="SDE_API_URL") as unreachable:
        workspace.connect()
    _assert_no_token(unreachable.value, token)


def test_the_token_never_appears_in_an_error(
    home: Home, session: Path, monkeypatch: pytest.MonkeyPatch, people: pd.DataFrame
) -> None:
    seen: list[tuple[str, SdeError]] = []
    expired = _token(home, now=dt.datetime.now(dt.UTC) - dt.timedelta(hours=2))
    valid = _token(home)
    forged = valid[:-4] + ("AAAA" if not valid.endswith("AAAA") else "BBBB")
    for bad in (expired, forged, "not-a-token"):
        monkeypatch.setenv("SDE_TOKEN", bad)
        with pytest.raises(PolicyDenied) as denied:
            workspace.connect()
        seen.append((bad, denied.value))
        with pytest.raises(PolicyDenied) as denied_release:
            check_release({"by_region.csv": st.crosstab(people, "region", "sex")})
        seen.append((bad, denied_release.value))
    assert "expired" in str(seen[0][1])
    # A 400 from the service: a request with no files.
    monkeypatch.setenv("SDE_TOKEN", valid)
    service = from_environment()
    with pytest.raises(InputError) as bad_request:
        service.request([], "t", None)
    seen.append((valid, bad_request.value))
    for token, exc in seen:
        _assert_no_token(exc, token)
    assert valid not in repr(service)
    assert valid not in repr(WorkspaceService("http://127.0.0.1:1", valid))


def test_an_explicit_home_is_home_mode_even_in_a_session(
    home: Home, session: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SDE_API_URL", f"http://127.0.0.1:{free_port()}")  # nobody there
    path = workspace.save_output(pd.DataFrame({"n": [12]}), "home.csv", home=home)
    assert path == home.project_workspace(PROJECT) / "outputs" / "home.csv"
    with workspace.connect(home=home) as con:
        assert con.sql("select count(*) from patients").fetchall() == [(3,)]
