"""The workspace API (``{base}/api/workspace/``) over a real home, control plane, policy
engine and extract, served by uvicorn on 127.0.0.1 and driven with httpx.

One home for the module: project ``diabetes`` (alice a member) with an extract of three
linked patients, ``cancer`` (mallory a member, no extract) and ``cardio`` (eve a member,
suspended by one test). Tests look only at the audit events written after they start.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import logging
import os
from collections.abc import Iterator
from typing import Any

import httpx
import pandas as pd
import pytest

from sde.adapters.duckdb import FILE_ACCESS, LOCKED_SETTING, Refusal
from sde.domain.audit import AuditEvent
from sde.domain.policy import ACCESS
from sde.domain.workspace_tokens import mint, token_key
from sde.services.decisions import DECISION_ACTION
from sde.services.extract import read_manifest
from sde.services.governance import GovernanceService
from sde.services.home import Home, init_home
from sde.services.projects import ProjectService
from sde.services.wiring import control_plane, policy_engine
from sde.web.app import CSP, create_app
from sde.web.auth import WebAuth
from sde.web.workspace_api import MAX_BODY_BYTES, MAX_FILES
from sde.workspace import stats
from tests.browser import serve
from tests.factories import (
    airlock_project,
    application,
    approve_through_board,
    linked_patients,
    sex_extract,
)

pytestmark = [pytest.mark.sql, pytest.mark.policy, pytest.mark.delta]

NHS = ["9434765919", "9434765870", "4010232137"]
# A valid NHS number sent as a bad value: it must come back in no answer.
SENTINEL = "9434765919"
API = "/api/workspace"
BASE = "/services/airlock"


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Home:
    home = init_home(tmp_path_factory.mktemp("wsapi") / "h")
    linked_patients(home, NHS)
    with control_plane(home) as store:
        engine = policy_engine(home)
        airlock_project(store, engine, extra_researchers=["eve"])
        projects = ProjectService(store)
        for project, person in (("cancer", "mallory"), ("cardio", "eve")):
            projects.create_project(
                "olu", application(project, {"patients": ["sex"]}, sponsor="Uni")
            )
            projects.add_member("olu", project, person)
            approve_through_board(store, engine, project, decided_by="bea")
    sex_extract(home, "diabetes")
    return home


@pytest.fixture(scope="module")
def base_url(home: Home) -> Iterator[str]:
    with serve(create_app(home)) as url:
        yield url


@pytest.fixture
def client(base_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=base_url, follow_redirects=False, timeout=30) as client:
        yield client


def token(home: Home, person: str = "alice", project: str = "diabetes", **kw: Any) -> str:
    now = kw.pop("now", dt.datetime.now(dt.UTC))
    return mint(token_key(home.master_key()), person=person, project=project, now=now, **kw)


def bearer(value: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {value}"}


def post(
    client: httpx.Client, route: str, value: str, body: Any = None, **kw: Any
) -> httpx.Response:
    headers = {**bearer(value), **kw.pop("headers", {})}
    return client.post(f"{API}/{route}", json={} if body is None else body, headers=headers, **kw)


def seq(home: Home) -> int:
    with control_plane(home) as store:
        return store.audit.count()


def events_since(home: Home, after: int) -> list[AuditEvent]:
    with control_plane(home) as store:
        return store.audit.events(after_seq=after)


def assert_json_error(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["content-security-policy"] == CSP
    assert "set-cookie" not in response.headers
    body = response.json()
    assert isinstance(body["error"], str)
    assert body["error"]
    assert "<html" not in response.text.lower()
    return dict(body)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def safe_crosstab() -> dict[str, Any]:
    """A crosstab of 400 people, every cell 100: nothing to disclose."""
    people = pd.DataFrame(
        {"region": ["north", "south"] * 200, "sex": ["F"] * 200 + ["M"] * 200},
    )
    out = stats.crosstab(people, "region", "sex")
    assert out.status == "pass"
    return {
        "name": "by_region_sex.csv",
        "content_b64": b64(out.table.to_csv().encode("utf-8")),
        "kind": out.kind,
        "metadata": out.to_json(),
        "exception": None,
        "description": "people by region and sex",
    }


def row_level_csv() -> dict[str, Any]:
    rows = "".join(f"p{i:04d},F,{1950 + i}\n" for i in range(30))
    return {
        "name": "patients.csv",
        "content_b64": b64(f"pid,sex,year_of_birth\n{rows}".encode()),
        "kind": "table",
        "metadata": None,
    }


# --- authentication ------------------------------------------------------------------------


def test_no_token_is_401(client: httpx.Client) -> None:
    body = assert_json_error(client.post(f"{API}/open", json={}), 401)
    assert "Bearer" in body["error"]
    body = assert_json_error(
        client.post(f"{API}/open", json={}, headers={"Authorization": "Basic abc"}), 401
    )
    assert "reasons" not in body


@pytest.mark.parametrize("kind", ["forged", "other_key", "expired", "signin_link", "garbage"])
def test_a_bad_token_is_401_and_never_echoed(client: httpx.Client, home: Home, kind: str) -> None:
    now = dt.datetime.now(dt.UTC)
    good = token(home)
    bad = {
        # The payload of a good token claiming another person, the signature kept.
        "forged": base64.urlsafe_b64encode(
            base64.urlsafe_b64decode(good.split(".")[0] + "==").replace(b"alice", b"carol")
        )
        .rstrip(b"=")
        .decode()
        + "."
        + good.split(".")[1],
        "other_key": mint(token_key(os.urandom(32)), person="alice", project="diabetes", now=now),
        "expired": token(home, now=now - dt.timedelta(hours=13), hours=12),
        "signin_link": WebAuth(home.master_key()).link_token("alice", now, 15),
        "garbage": "not-a-token",
    }[kind]
    after = seq(home)
    for route in ("open", "refusals", "releases/preview", "releases"):
        response = post(client, route, bad)
        body = assert_json_error(response, 401)
        assert bad not in response.text
        assert all(bad not in v for v in response.headers.values())
        if kind == "expired":
            assert "expired" in body["error"]
        else:
            assert "not valid" in body["error"]
    # Nothing was decided or recorded for a token that is not one.
    assert events_since(home, after) == []


@pytest.mark.presidio
def test_the_token_is_never_logged(
    client: httpx.Client, home: Home, caplog: pytest.LogCaptureFixture
) -> None:
    good = token(home)
    expired = token(home, now=dt.datetime.now(dt.UTC) - dt.timedelta(hours=13), hours=12)
    file = safe_crosstab()
    with caplog.at_level(logging.DEBUG):
        assert post(client, "open", good).status_code == 200
        assert post(client, "open", expired).status_code == 401
        assert post(client, "releases/preview", good, {"files": [file]}).status_code == 200
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "workspace opened: alice on diabetes" in text
    for secret in (good, expired, good.split(".")[1], file["content_b64"]):
        assert secret not in text


# --- the access decision -------------------------------------------------------------------


def test_a_non_member_is_refused_with_reasons(client: httpx.Client, home: Home) -> None:
    after = seq(home)
    for route in ("open", "refusals", "releases/preview", "releases"):
        body = assert_json_error(post(client, route, token(home, "mallory", "diabetes")), 403)
        assert body["error"] == "workspace for mallory on project diabetes refused"
        assert body["reasons"]
        assert all(isinstance(r, str) for r in body["reasons"])
        assert any("member" in r for r in body["reasons"])
    decisions = [e for e in events_since(home, after) if e.action == DECISION_ACTION]
    assert len(decisions) == 4
    assert {e.actor for e in decisions} == {"mallory"}
    assert not any(e.details["allow"] for e in decisions)
    # No refusal and no request were recorded for mallory.
    assert [e.action for e in events_since(home, after)] == [DECISION_ACTION] * 4


def test_a_suspended_project_is_refused_whatever_the_token(
    client: httpx.Client, home: Home
) -> None:
    eve = token(home, "eve", "cardio")
    # Allowed until now (so the 409: cardio has no extract).
    body = assert_json_error(post(client, "open", eve), 409)
    assert body == {"error": "project cardio has no extract yet"}
    with control_plane(home) as store:
        GovernanceService(store, policy_engine(home)).suspend("olu", "cardio", "a breach report")
    body = assert_json_error(post(client, "open", eve), 403)
    assert body["error"] == "workspace for eve on project cardio refused"
    assert any("suspended" in r for r in body["reasons"])
    assert_json_error(post(client, "releases/preview", eve, {"files": [safe_crosstab()]}), 403)


# --- open ----------------------------------------------------------------------------------


def test_open_returns_the_manifests_tables_and_is_audited(client: httpx.Client, home: Home) -> None:
    after = seq(home)
    response = post(client, "open", token(home))
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.headers["x-frame-options"] == "DENY"
    manifest = read_manifest(home, "diabetes")
    assert response.json() == {
        "person": "alice",
        "project": "diabetes",
        "tables": {name: t.version for name, t in manifest.tables.items()},
    }
    assert set(response.json()["tables"]) == {"patients"}
    [decision] = events_since(home, after)
    assert decision.action == DECISION_ACTION
    assert decision.actor == "alice"
    assert decision.details["package"] == ACCESS
    assert decision.details["allow"] is True


def test_open_takes_an_empty_body_or_none(client: httpx.Client, home: Home) -> None:
    assert client.post(f"{API}/open", headers=bearer(token(home))).status_code == 200
    body = assert_json_error(post(client, "open", token(home), {"project": "cancer"}), 400)
    assert "'project'" in body["error"]


def test_a_project_without_an_extract_is_409(client: httpx.Client, home: Home) -> None:
    body = assert_json_error(post(client, "open", token(home, "mallory", "cancer")), 409)
    assert body == {"error": "project cancer has no extract yet"}


# --- refusals ------------------------------------------------------------------------------


def test_a_refusal_is_recorded_in_the_shape_the_workspace_writes(
    client: httpx.Client, home: Home
) -> None:
    digest = hashlib.sha256(b"COPY patients TO '/tmp/x.csv'").hexdigest()
    refusal = Refusal(FILE_ACCESS, "COPY", digest)
    after = seq(home)
    response = post(client, "refusals", token(home), {**refusal.details(), "setting": None})
    assert response.status_code == 204, response.text
    assert response.content == b""
    events = events_since(home, after)
    assert [e.action for e in events] == [DECISION_ACTION, "workspace.refused"]
    event = events[1]
    assert event.actor == "alice"
    assert event.subject == "project:diabetes"
    assert event.details == {"project": "diabetes", **refusal.details()}
    assert "setting" not in event.details

    locked = Refusal(LOCKED_SETTING, "SET", digest, "threads")
    after = seq(home)
    assert post(client, "refusals", token(home), locked.details()).status_code == 204
    [event] = [e for e in events_since(home, after) if e.action == "workspace.refused"]
    assert event.details == {"project": "diabetes", **locked.details()}

    python = Refusal("registering host data", "python")
    after = seq(home)
    assert post(client, "refusals", token(home), python.details()).status_code == 204
    [event] = [e for e in events_since(home, after) if e.action == "workspace.refused"]
    assert event.details == {"project": "diabetes", "reason": python.rule, "statement": "python"}


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("reason", SENTINEL),
        ("reason", "x" * 121),
        ("reason", None),
        ("reason", 7),
        ("statement", f"SELECT {SENTINEL}"),
        ("statement", "select"),
        ("statement", None),
        ("sql_sha256", SENTINEL),
        ("sql_sha256", "A" * 64),
        ("setting", f"threads {SENTINEL}"),
        ("setting", ["threads"]),
        ("project", "cancer"),
        ("person", "carol"),
    ],
)
def test_a_bad_refusal_is_400_naming_the_field(
    client: httpx.Client, home: Home, field: str, value: Any
) -> None:
    good = Refusal(FILE_ACCESS, "COPY", "0" * 64).details()
    after = seq(home)
    response = post(client, "refusals", token(home), {**good, field: value})
    body = assert_json_error(response, 400)
    assert field in body["error"]
    assert SENTINEL not in response.text
    assert "workspace.refused" not in [e.action for e in events_since(home, after)]


def test_a_body_that_is_not_a_json_object_is_400(client: httpx.Client, home: Home) -> None:
    headers = {**bearer(token(home)), "content-type": "application/json"}
    for content in (b"[1, 2]", b"{not json", b'{"reason": NaN}', b'{"a": 1, "a": 2}'):
        assert_json_error(client.post(f"{API}/refusals", content=content, headers=headers), 400)
    form = client.post(
        f"{API}/refusals",
        content=b"reason=x",
        headers={**bearer(token(home)), "content-type": "application/x-www-form-urlencoded"},
    )
    assert_json_error(form, 415)


# --- releases ------------------------------------------------------------------------------


@pytest.mark.presidio
def test_preview_passes_a_safe_crosstab_and_fails_row_level_data(
    client: httpx.Client, home: Home
) -> None:
    after = seq(home)
    response = post(
        client, "releases/preview", token(home), {"files": [safe_crosstab(), row_level_csv()]}
    )
    assert response.status_code == 200, response.text
    checks = {c["name"]: c for c in response.json()["checks"]}
    assert list(checks) == ["by_region_sex.csv", "patients.csv"]
    safe, rows = checks["by_region_sex.csv"], checks["patients.csv"]
    assert safe["status"] == "pass"
    assert safe["kind"] == "crosstab"
    assert safe["blocking"] == []
    assert safe["checks"]
    assert all(c["status"] == "pass" for c in safe["checks"])
    assert rows["status"] == "fail"
    assert rows["blocking"], rows
    failed = {c["name"] for c in rows["checks"] if c["status"] == "fail"}
    assert set(rows["blocking"]) <= failed
    # Nothing was filed.
    assert "release.create" not in [e.action for e in events_since(home, after)]


@pytest.mark.presidio
def test_preview_takes_code_files_too(client: httpx.Client, home: Home) -> None:
    code = {"name": "analysis.py", "content_b64": b64(b"print('hello')\n"), "kind": "code"}
    response = post(
        client, "releases/preview", token(home), {"files": [safe_crosstab()], "code": [code]}
    )
    assert response.status_code == 200, response.text
    assert [c["name"] for c in response.json()["checks"]] == ["by_region_sex.csv", "analysis.py"]


@pytest.mark.presidio
def test_request_is_filed_for_the_tokens_person_and_project(
    client: httpx.Client, home: Home
) -> None:
    response = post(
        client,
        "releases",
        token(home),
        {"title": "People by region and sex", "comment": None, "files": [safe_crosstab()]},
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["status"] == "submitted"
    assert (body["project"], body["author"], body["title"]) == (
        "diabetes",
        "alice",
        "People by region and sex",
    )
    with control_plane(home) as store:
        filed = store.get_release_request(body["id"])
        names = [f.name for f in store.list_release_files(body["id"])]
    assert (filed.project_id, filed.author, filed.status.value) == (
        "diabetes",
        "alice",
        "submitted",
    )
    assert names == ["by_region_sex.csv"]


@pytest.mark.parametrize(("field", "value"), [("project", "cancer"), ("author", "mallory")])
def test_a_request_cannot_name_another_project_or_person(
    client: httpx.Client, home: Home, field: str, value: str
) -> None:
    with control_plane(home) as store:
        before = len(store.list_release_requests())
    body = assert_json_error(
        post(
            client,
            "releases",
            token(home),
            {"title": "t", "files": [safe_crosstab()], field: value},
        ),
        400,
    )
    assert f"'{field}'" in body["error"]
    with control_plane(home) as store:
        assert len(store.list_release_requests()) == before


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"content_b64": "not base64!"}, "files[0].content_b64"),
        ({"content_b64": 12}, "files[0].content_b64"),
        ({"name": None}, "files[0].name"),
        ({"kind": ["table"]}, "files[0].kind"),
        ({"metadata": "rules"}, "files[0].metadata"),
        ({"exception": 3}, "files[0].exception"),
        ({"owner": "mallory"}, "files[0]"),
    ],
)
def test_a_bad_file_is_400_naming_the_field(
    client: httpx.Client, home: Home, change: dict[str, Any], field: str
) -> None:
    file = {**safe_crosstab(), **change}
    for route, body in (
        ("releases/preview", {"files": [file]}),
        ("releases", {"title": "t", "files": [file]}),
    ):
        error = assert_json_error(post(client, route, token(home), body), 400)["error"]
        assert error.startswith(field), error
        assert "mallory" not in error


def test_a_bad_request_body_is_400(client: httpx.Client, home: Home) -> None:
    alice = token(home)
    for body, field in (
        ({"files": [safe_crosstab()]}, "title"),
        ({"title": 5, "files": [safe_crosstab()]}, "title"),
        ({"title": "t", "files": []}, "files"),
        ({"title": "t", "files": "x"}, "files"),
        ({"title": "t", "files": [safe_crosstab()], "code": {}}, "code"),
    ):
        assert field in assert_json_error(post(client, "releases", alice, body), 400)["error"]
    # The service's own refusal (a blank title) comes back as JSON too.
    blank = post(client, "releases", alice, {"title": "  ", "files": [safe_crosstab()]})
    assert "title" in assert_json_error(blank, 400)["error"]


# --- limits and browsers -------------------------------------------------------------------


@pytest.mark.presidio
def test_more_than_50_files_is_413(client: httpx.Client, home: Home) -> None:
    file = {"name": "a.csv", "content_b64": b64(b"a\n1\n"), "kind": "table"}
    files = [{**file, "name": f"f{i}.csv"} for i in range(MAX_FILES + 1)]
    for route, body in (
        ("releases/preview", {"files": files}),
        ("releases", {"title": "t", "files": files}),
    ):
        error = assert_json_error(post(client, route, token(home), body), 413)["error"]
        assert str(MAX_FILES) in error
    # Files and code together count; 50 in all is accepted.
    too_many = {"files": files[:MAX_FILES], "code": [file]}
    assert_json_error(post(client, "releases/preview", token(home), too_many), 413)
    fifty = post(client, "releases/preview", token(home), {"files": files[:MAX_FILES]})
    assert fifty.status_code == 200, fifty.text
    assert len(fifty.json()["checks"]) == MAX_FILES


def test_an_oversize_body_is_413(client: httpx.Client, home: Home) -> None:
    headers = {**bearer(token(home)), "content-type": "application/json"}
    big = (
        b'{"files": [{"name": "a.csv", "kind": "table", "content_b64": "'
        + (b"A" * (MAX_BODY_BYTES + 16))
        + b'"}]}'
    )
    response = client.post(f"{API}/releases/preview", content=big, headers=headers)
    assert "larger than" in assert_json_error(response, 413)["error"]

    def chunks() -> Iterator[bytes]:  # no Content-Length: the bytes read are counted
        yield big[: MAX_BODY_BYTES // 2]
        yield big[MAX_BODY_BYTES // 2 :]

    response = client.post(f"{API}/releases/preview", content=chunks(), headers=headers)
    assert "content-length" not in response.request.headers
    assert "larger than" in assert_json_error(response, 413)["error"]


@pytest.mark.parametrize("site", ["cross-site", "same-site"])
def test_a_page_on_another_site_is_refused(client: httpx.Client, home: Home, site: str) -> None:
    after = seq(home)
    response = post(client, "open", token(home), headers={"Sec-Fetch-Site": site})
    assert_json_error(response, 403)
    assert events_since(home, after) == []
    ok = post(client, "open", token(home), headers={"Sec-Fetch-Site": "same-origin"})
    assert ok.status_code == 200


def test_other_routes_and_methods_answer_json(client: httpx.Client, home: Home) -> None:
    assert_json_error(client.get(f"{API}/open", headers=bearer(token(home))), 405)
    assert_json_error(client.post(f"{API}/nothing", headers=bearer(token(home))), 404)
    # The pages keep their HTML errors.
    page = client.get("/nothing-here")
    assert page.status_code == 404
    assert page.headers["content-type"].startswith("text/html")


def test_the_api_lives_under_the_base(home: Home) -> None:
    with serve(create_app(home, base=BASE)) as url, httpx.Client(base_url=url, timeout=30) as c:
        response = c.post(f"{BASE}{API}/open", json={}, headers=bearer(token(home)))
        assert response.status_code == 200, response.text
        assert response.json()["tables"] == {
            name: t.version for name, t in read_manifest(home, "diabetes").tables.items()
        }
        assert c.post(f"{API}/open", json={}, headers=bearer(token(home))).status_code == 404
