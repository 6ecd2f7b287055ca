"""request_release / check_release from the notebook, over a real control plane and the
embedded policy engine; and a filed request written as ACRO's results.json."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import sde.workspace.stats as st
from sde.adapters.sql import ControlPlane
from sde.domain.releases import Status
from sde.domain.sdc.acro import acro_results
from sde.errors import InputError
from sde.services.home import Home, init_home
from sde.services.wiring import control_plane, policy_engine, release_service
from sde.workspace import outputs_dir, save_output
from sde.workspace.release import ReleaseCheck, check_release, request_release
from tests.factories import airlock_project, tiny_png

pytestmark = [pytest.mark.sql, pytest.mark.policy]

PROJECT = "diabetes"


@pytest.fixture
def home(tmp_path: Path) -> Home:
    return init_home(tmp_path / "h")


@pytest.fixture
def store(home: Home) -> Iterator[ControlPlane]:
    with control_plane(home) as plane:
        airlock_project(plane, policy_engine(home))
        yield plane


@pytest.fixture
def people() -> pd.DataFrame:
    """Regions N and S with plenty of people of both sexes; region X has one woman."""
    rows: list[dict[str, str]] = []
    for region, sex, n in [("N", "F", 30), ("N", "M", 25), ("S", "F", 12), ("S", "M", 40)]:
        rows.extend({"region": region, "sex": sex} for _ in range(n))
    rows.append({"region": "X", "sex": "F"})
    return pd.DataFrame(rows)


@pytest.fixture
def outputs(home: Home) -> Path:
    folder = outputs_dir(PROJECT, home=home)
    save_output(
        pd.DataFrame({"age_band": ["40-59", "60+"], "n": [120, 98]}),
        "by_age.csv",
        project=PROJECT,
        home=home,
    )
    (folder / "trend.png").write_bytes(tiny_png())
    return folder


@pytest.fixture
def script(tmp_path: Path) -> Path:
    path = tmp_path / "analysis.py"
    path.write_text("import sde.workspace as ws\nprint('tables by region and sex')\n")
    return path


def test_one_request_with_stats_table_csv_figure_and_code(
    home: Home,
    store: ControlPlane,
    people: pd.DataFrame,
    outputs: Path,
    script: Path,
) -> None:
    safe = st.crosstab(people[people.region != "X"], "region", "sex")
    assert safe.status == "pass"
    request = request_release(
        {
            "by_region.csv": safe,
            "by_age.csv": "by_age.csv",
            "trend.png": ("trend.png", {"table": "by_age.csv"}),
        },
        project=PROJECT,
        title="Admissions by region and sex",
        comment="for the paper",
        code=script,
        home=home,
        user="alice",
    )
    assert request.status is Status.SUBMITTED
    assert request.author == "alice"
    assert request.title == "Admissions by region and sex"
    files = {f.name: f for f in store.list_release_files(request.id)}
    assert {name: f.kind for name, f in files.items()} == {
        "by_region.csv": "crosstab",
        "by_age.csv": "table",
        "trend.png": "figure",
        "analysis.py": "code",
    }
    assert files["by_region.csv"].metadata["cells"] == []
    assert files["by_region.csv"].metadata["parameters"]["min_cell_count"] == 10
    assert files["trend.png"].metadata["table"] == "by_age.csv"
    content = store.get_release_file_content(request.id, "by_region.csv")
    assert content == safe.table.to_csv().encode()
    assert store.get_release_file_content(request.id, "analysis.py") == script.read_bytes()
    assert store.get_release_file_content(request.id, "trend.png") == tiny_png()
    assert all(f.checks for f in files.values())  # every file was checked


def test_check_release_shows_the_failing_cell_and_files_nothing(
    home: Home, store: ControlPlane, people: pd.DataFrame
) -> None:
    out = st.crosstab(people, "region", "sex")
    assert out.status == "fail"
    result = check_release({"by_region.csv": out}, project=PROJECT, home=home, user="alice")
    assert isinstance(result, ReleaseCheck)
    assert [fc.name for fc in result] == ["by_region.csv"]
    assert result.status == "fail"
    [(name, kind, status, problems)] = result.rows()
    assert (name, kind, status) == ("by_region.csv", "crosstab", "fail")
    assert "threshold" in {rule for rule, _, _ in problems}
    text = repr(result)
    assert text.startswith("release check: fail")
    assert "threshold (fail)" in text
    page = result._repr_html_()
    assert "by_region.csv" in page
    assert "<b>fail</b>" in page
    assert store.list_release_requests(PROJECT) == []


def test_check_release_passes_a_safe_table(
    home: Home, store: ControlPlane, people: pd.DataFrame
) -> None:
    safe = st.crosstab(people[people.region != "X"], "region", "sex")
    result = check_release({"by_region.csv": safe}, project=PROJECT, home=home, user="alice")
    assert result.status == "pass"
    assert result.rows()[0][3] == []


def test_exceptions_are_carried_onto_the_files(
    home: Home, store: ControlPlane, people: pd.DataFrame
) -> None:
    out = st.crosstab(people, "region", "sex")
    reason = "region X is published in the annual report"
    request = request_release(
        {"by_region.csv": out, "by_sex.csv": st.crosstab(people, "sex", "region")},
        project=PROJECT,
        title="t",
        exceptions={"by_region.csv": reason},
        home=home,
        user="alice",
    )
    airlock = release_service(home, store, policy_engine(home))
    view = airlock.view(request.id, "carol")
    exceptions = {f.name: f.exception for f in view.files}
    assert exceptions == {"by_region.csv": reason, "by_sex.csv": None}


def test_an_exception_for_a_file_not_in_the_request_is_refused(
    home: Home, store: ControlPlane, people: pd.DataFrame
) -> None:
    with pytest.raises(InputError, match=r"by_age\.csv"):
        request_release(
            {"by_region.csv": st.crosstab(people, "region", "sex")},
            project=PROJECT,
            title="t",
            exceptions={"by_age.csv": "because"},
            home=home,
            user="alice",
        )
    assert store.list_release_requests(PROJECT) == []


def test_a_dataframe_is_refused(home: Home, store: ControlPlane, people: pd.DataFrame) -> None:
    table = people.groupby("region").size().reset_index(name="n")
    refused: list[Any] = [{"by_region.csv": table}, [table], table]
    for outputs in refused:
        with pytest.raises(InputError, match=r"sde\.workspace\.stats.*save_output"):
            request_release(outputs, project=PROJECT, title="t", home=home, user="alice")
    assert store.list_release_requests(PROJECT) == []


def test_stats_outputs_need_a_csv_name(
    home: Home, store: ControlPlane, people: pd.DataFrame
) -> None:
    out = st.crosstab(people, "region", "sex")
    with pytest.raises(InputError, match="name each crosstab output"):
        check_release([out], project=PROJECT, home=home, user="alice")
    with pytest.raises(InputError, match=r"by_region\.txt"):
        check_release({"by_region.txt": out}, project=PROJECT, home=home, user="alice")


def test_files_outside_the_outputs_folder_are_refused(
    home: Home, store: ControlPlane, outputs: Path, tmp_path: Path
) -> None:
    elsewhere = tmp_path / "secret.csv"
    elsewhere.write_text("a,n\nx,100\n")
    for path in (elsewhere, "../secret.csv", "../../secret.csv"):
        with pytest.raises(InputError, match="outputs folder"):
            check_release([path], project=PROJECT, home=home, user="alice")
    with pytest.raises(InputError, match=r"missing\.csv"):
        check_release(["missing.csv"], project=PROJECT, home=home, user="alice")
    with pytest.raises(InputError, match="only a figure"):
        check_release(
            [("by_age.csv", {"table": "x.csv"})], project=PROJECT, home=home, user="alice"
        )


def test_the_jupyter_notebook_is_attached_as_code(
    home: Home,
    store: ControlPlane,
    outputs: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    notebook = tmp_path / "analysis.ipynb"
    notebook.write_text(json.dumps({"cells": [], "nbformat": 4, "nbformat_minor": 5}))
    monkeypatch.setenv("JPY_SESSION_NAME", str(notebook))
    monkeypatch.setenv("SDE_PROJECT", PROJECT)
    request = request_release(["by_age.csv"], title="t", home=home, user="alice")
    kinds = {f.name: f.kind for f in store.list_release_files(request.id)}
    assert kinds == {"by_age.csv": "table", "analysis.ipynb": "code"}
    # A session name that is not a file attaches nothing.
    monkeypatch.setenv("JPY_SESSION_NAME", str(tmp_path / "gone.ipynb"))
    request = request_release(["by_age.csv"], title="t", home=home, user="alice")
    assert [f.name for f in store.list_release_files(request.id)] == ["by_age.csv"]


def test_the_project_must_be_named(
    home: Home, store: ControlPlane, outputs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SDE_PROJECT", raising=False)
    with pytest.raises(InputError, match="name the project"):
        check_release(["by_age.csv"], home=home, user="alice")


def test_a_filed_request_opens_as_acro_results(
    home: Home, store: ControlPlane, people: pd.DataFrame, outputs: Path
) -> None:
    out = st.crosstab(people, "region", "sex")
    request = request_release(
        {"by_region.csv": out, "by_age.csv": "by_age.csv"},
        project=PROJECT,
        title="t",
        exceptions={"by_region.csv": "published"},
        home=home,
        user="alice",
    )
    view = release_service(home, store, policy_engine(home)).view(request.id, "carol")
    record = {
        "id": request.id,
        "author": request.author,
        "title": request.title,
        "status": request.status.value,
        "created_at": request.created_at,
        "files": [
            {
                "name": f.name,
                "kind": f.kind,
                "checks": f.checks,
                "metadata": f.metadata,
                "exception": {v.name: v.exception for v in view.files}[f.name],
                "content": store.get_release_file_content(request.id, f.name),
            }
            for f in store.list_release_files(request.id)
        ],
    }
    results = acro_results(record)
    json.dumps(results)
    table = results["results"]["by_region.csv"]
    assert table["status"] == "fail"
    assert table["exception"] == "published"
    x_row = list(out.table.index).index("X")
    f_col = list(out.table.columns).index("F")
    assert table["files"][0]["sdc"]["cells"]["threshold"] == [[x_row, f_col]]
    assert table["outcome"]["F"]["X"] == "threshold; "
    assert table["outcome"]["F"]["N"] == "ok"
    assert results["results"]["by_age.csv"]["type"] == "table"
    assert results["sde"]["request"] == request.id


def test_a_malformed_project_id_is_refused_before_any_file_is_read(
    home: Home, store: ControlPlane, outputs: Path
) -> None:
    with pytest.raises(InputError, match="project id"):
        check_release(["by_age.csv"], project="../diabetes", home=home, user="alice")


def test_file_types_the_airlock_does_not_take_are_refused(
    home: Home, store: ControlPlane, outputs: Path, tmp_path: Path
) -> None:
    (outputs / "model.pkl").write_bytes(b"\x80\x04")
    with pytest.raises(InputError, match=r"model\.pkl: files of this type"):
        check_release(["model.pkl"], project=PROJECT, home=home, user="alice")
    notes = tmp_path / "notes.txt"
    notes.write_text("not code")
    with pytest.raises(InputError, match=r"notes\.txt: code is attached as"):
        check_release(["by_age.csv"], project=PROJECT, code=notes, home=home, user="alice")


def test_stats_in_a_session_use_the_environments_appetite(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pandas as pd

    from sde.services.home import init_home
    from sde.workspace import stats

    home = init_home(tmp_path / "strict")
    config = home.root / "config.yaml"
    config.write_text(config.read_text() + "sdc:\n  min_cell_count: 25\n")
    data = pd.DataFrame({"sex": ["F"] * 20 + ["M"] * 30})
    monkeypatch.delenv("SDE_HOME", raising=False)
    assert stats.crosstab(data, "sex", "sex").appetite.min_cell_count == 10
    monkeypatch.setenv("SDE_HOME", str(home.root))
    strict = stats.crosstab(data, "sex", "sex")
    assert strict.appetite.min_cell_count == 25
    assert strict.status == "fail"  # 20 women is below 25
