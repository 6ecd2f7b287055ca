"""The web page over a real home and control plane, served by uvicorn on 127.0.0.1 and
driven with httpx (no browser; starlette's TestClient is deprecated with httpx)."""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

import sde.cli.web  # noqa: F401  (registers ``sde web`` on ``main``)
from sde.cli import main
from sde.services.home import Home, init_home
from sde.services.release_views import (
    CellView,
    FileDecisionView,
    FileView,
    QueueItem,
    RequestView,
    ReviewView,
)
from sde.services.wiring import control_plane, policy_engine, release_service
from sde.web.app import CSP, SESSION_COOKIE, Viewer, create_app, parse_review_form, templates
from sde.web.auth import WebAuth
from tests.browser import serve
from tests.factories import airlock_project, tiny_png

pytestmark = [pytest.mark.sql, pytest.mark.policy]

NOW = dt.datetime(2026, 11, 24, 12, 0, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Home:
    home = init_home(tmp_path_factory.mktemp("web") / "h")
    with control_plane(home) as plane:
        airlock_project(plane, policy_engine(home), extra_researchers=["eve"])
    return home


@pytest.fixture(scope="module")
def base_url(home: Home) -> Iterator[str]:
    with serve(create_app(home)) as url:
        yield url


@pytest.fixture
def client(base_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=base_url, follow_redirects=False, timeout=10) as client:
        yield client


def link(home: Home, person: str, now: dt.datetime | None = None, minutes: int = 15) -> str:
    return WebAuth(home.master_key()).link_token(person, now or dt.datetime.now(dt.UTC), minutes)


def sign_in(client: httpx.Client, home: Home, person: str) -> str:
    """Sign in through the page; returns the session's CSRF token."""
    token = link(home, person)
    confirm = client.get("/signin", params={"token": token})
    assert confirm.status_code == 200
    response = client.post("/signin", data={"token": token})
    assert response.status_code == 303, response.text
    return csrf_of(client, home)


def csrf_of(client: httpx.Client, home: Home) -> str:
    cookie = client.cookies.get(SESSION_COOKIE)
    assert cookie
    return WebAuth(home.master_key()).csrf_token(cookie)


# --- sign-in -----------------------------------------------------------------------------


def test_link_shows_a_button_and_the_post_signs_in(client: httpx.Client, home: Home) -> None:
    token = link(home, "carol")
    confirm = client.get("/signin", params={"token": token})
    assert confirm.status_code == 200
    assert "Sign in as carol" in confirm.text
    assert SESSION_COOKIE not in confirm.headers.get("set-cookie", "")
    response = client.post("/signin", data={"token": token})
    assert response.status_code == 303
    assert response.headers["location"] == "/queue"
    cookie = response.headers["set-cookie"]
    assert cookie.startswith(f"{SESSION_COOKIE}=")
    assert "HttpOnly" in cookie
    assert "SameSite=strict" in cookie
    assert "Path=/" in cookie
    assert "Max-Age=28800" in cookie
    assert client.get("/").headers["location"] == "/queue"


def test_a_link_works_once(client: httpx.Client, home: Home) -> None:
    token = link(home, "carol")
    assert client.post("/signin", data={"token": token}).status_code == 303
    client.cookies.clear()
    again = client.post("/signin", data={"token": token})
    assert again.status_code == 401
    assert "used already" in again.text
    assert SESSION_COOKIE not in again.headers.get("set-cookie", "")
    assert client.get("/signin", params={"token": token}).status_code == 401


def test_expired_link_says_so(client: httpx.Client, home: Home) -> None:
    token = link(home, "carol", now=dt.datetime.now(dt.UTC) - dt.timedelta(minutes=16))
    response = client.get("/signin", params={"token": token})
    assert response.status_code == 401
    assert "expired" in response.text
    assert client.post("/signin", data={"token": token}).status_code == 401


def test_unknown_person_is_refused(client: httpx.Client, home: Home) -> None:
    response = client.post("/signin", data={"token": link(home, "nobody")})
    assert response.status_code == 401
    assert "no person" in response.text


def test_link_made_under_another_key_is_refused(client: httpx.Client) -> None:
    token = WebAuth(bytes(32)).link_token("carol", dt.datetime.now(dt.UTC))
    response = client.post("/signin", data={"token": token})
    assert response.status_code == 401
    assert "not valid" in response.text
    assert token not in response.text


def test_forged_session_cookie_is_refused(client: httpx.Client) -> None:
    cookie, _ = WebAuth(bytes(32)).session_cookie("carol", dt.datetime.now(dt.UTC))
    client.cookies.set(SESSION_COOKIE, cookie)
    response = client.get("/queue")
    assert response.status_code == 401
    assert "no longer valid" in response.text


def test_a_ban_ends_the_session_at_once(client: httpx.Client, home: Home) -> None:
    from sde.services.governance import GovernanceService

    sign_in(client, home, "mallory")
    assert client.get("/").headers["location"] == "/queue"
    with control_plane(home) as plane:
        GovernanceService(plane, policy_engine(home)).ban_person(
            "olu", "mallory", until=dt.date.today() + dt.timedelta(days=30), reason="misuse"
        )
    response = client.get("/queue")
    assert response.status_code == 401
    assert "mallory is banned" in response.text


def test_signin_from_another_site_is_refused(client: httpx.Client, home: Home) -> None:
    response = client.post(
        "/signin", data={"token": link(home, "carol")}, headers={"sec-fetch-site": "cross-site"}
    )
    assert response.status_code == 403
    assert "another site" in response.text


def test_not_signed_in(client: httpx.Client) -> None:
    assert client.get("/").headers["location"] == "/signin"
    response = client.get("/queue")
    assert response.status_code == 401
    assert "You need to sign in" in response.text
    assert client.get("/requests/rr-0123456789ab").status_code == 401
    assert client.post("/requests/rr-0123456789ab/review", data={}).status_code == 401


def test_sign_out_needs_the_csrf_token_and_ends_the_session(
    client: httpx.Client, home: Home
) -> None:
    csrf = sign_in(client, home, "carol")
    cookie = client.cookies.get(SESSION_COOKIE)
    assert client.post("/signout", data={}).status_code == 403
    assert client.post("/signout", data={"csrf": csrf + "x"}).status_code == 403
    response = client.post("/signout", data={"csrf": csrf})
    assert response.status_code == 303
    assert response.headers["location"] == "/signin?signed_out=1"
    assert 'sde_session=""' in response.headers["set-cookie"]
    # The old cookie, replayed, is refused by this server from now on.
    client.cookies.set(SESSION_COOKIE, cookie or "")
    replay = client.get("/", follow_redirects=True)
    assert replay.request.url.path == "/signin"
    assert client.get("/queue").status_code == 401
    assert "signed out" in client.get("/queue").text


def test_review_post_without_a_valid_csrf_token_is_refused(
    client: httpx.Client, home: Home
) -> None:
    sign_in(client, home, "carol")
    for data in ({}, {"csrf": "nope", "decision:t.csv": "approve"}):
        response = client.post("/requests/rr-0123456789ab/review", data=data)
        assert response.status_code == 403
        assert "security token" in response.text


def test_cross_site_review_post_is_refused_even_with_the_token(
    client: httpx.Client, home: Home
) -> None:
    csrf = sign_in(client, home, "carol")
    response = client.post(
        "/requests/rr-0123456789ab/review",
        data={"csrf": csrf, "decision:t.csv": "approve"},
        headers={"sec-fetch-site": "cross-site"},
    )
    assert response.status_code == 403


# --- headers and error pages -------------------------------------------------------------


@pytest.mark.parametrize(
    "path", ["/signin", "/static/sde.css", "/no-such-page", "/queue", "/signin?token=bad"]
)
def test_security_headers_on_every_response(client: httpx.Client, path: str) -> None:
    response = client.get(path)
    assert response.headers["content-security-policy"] == CSP
    assert "script-src 'none'" in CSP
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.headers["cache-control"] == "no-store"


def test_unknown_page_is_a_404_page(client: httpx.Client) -> None:
    response = client.get("/no-such-page")
    assert response.status_code == 404
    assert "There is no such page" in response.text


def test_no_api_docs_are_served(client: httpx.Client) -> None:
    for path in ("/docs", "/redoc", "/openapi.json"):
        assert client.get(path).status_code == 404


def test_malformed_request_id_is_404(client: httpx.Client, home: Home) -> None:
    sign_in(client, home, "carol")
    response = client.get("/requests/..%2Fetc")
    assert response.status_code == 404


# --- the review form ---------------------------------------------------------------------


def test_parse_review_form() -> None:
    decisions, comment = parse_review_form(
        [
            ("csrf", "x"),
            ("decision:a.csv", "approve"),
            ("comment:a.csv", "  "),
            ("decision:b.csv", "return"),
            ("comment:b.csv", "merge the ages"),
            ("comment", "thanks"),
        ]
    )
    assert {n: (v.value, c) for n, (v, c) in decisions.items()} == {
        "a.csv": ("approve", None),
        "b.csv": ("return", "merge the ages"),
    }
    assert comment == "thanks"


@pytest.mark.parametrize(
    ("items", "message"),
    [
        ([("csrf", "x")], "choose a decision"),
        ([("decision:a.csv", "yes")], "approve, return or reject"),
        ([("decision:a.csv", "approve"), ("decision:a.csv", "reject")], "two decisions"),
        ([("decision:a.csv", "approve"), ("comment:b.csv", "hm")], "decision on b.csv"),
        ([("decision:a.csv", "approve"), ("admin", "1")], "does not know"),
    ],
)
def test_parse_review_form_refuses(items: list[tuple[str, str]], message: str) -> None:
    from sde.errors import InputError

    with pytest.raises(InputError, match=message):
        parse_review_form(items)


# --- rendering views ---------------------------------------------------------------------

CHECKER = Viewer("carol", ("output_checker",), "cookie", "csrf-token", "n", NOW)
AUTHOR = Viewer("alice", ("researcher",), "cookie", "csrf-token", "n", NOW)


def grid() -> tuple[tuple[CellView, ...], ...]:
    return (
        (CellView("sex"), CellView("n")),
        (CellView("F"), CellView("120")),
        (CellView("M"), CellView("7", ("threshold",), "fail")),
        (CellView("X"), CellView("0", ("zeros",), "review")),
    )


def files() -> tuple[FileView, ...]:
    return (
        FileView(
            name="by_sex.csv",
            kind="table",
            sha256="ab" * 32,
            size_bytes=30,
            status="fail",
            checks=(
                {"name": "threshold", "status": "fail", "message": "1 cell below 10"},
                {"name": "row_level", "status": "pass", "message": "aggregated"},
            ),
            blocking=(),
            exception="Published national figures already show this count.",
            description="Patients by sex",
            grid=grid(),
        ),
        FileView(
            name="analysis.py",
            kind="code",
            sha256="cd" * 32,
            size_bytes=40,
            status="pass",
            checks=({"name": "file_type", "status": "pass", "message": "code"},),
            blocking=(),
            exception=None,
            description=None,
            text="print('<script>alert(1)</script>')",
        ),
        FileView(
            name="plot.png",
            kind="figure",
            sha256="ef" * 32,
            size_bytes=50,
            status="pass",
            checks=(),
            blocking=(),
            exception=None,
            description=None,
            is_image=True,
            figure_table="by_sex.csv",
        ),
    )


def request_view(**changes: object) -> RequestView:
    values: dict[str, object] = {
        "id": "rr-0123456789ab",
        "project_id": "diabetes",
        "title": "Patients by sex",
        "author": "alice",
        "status": "submitted",
        "comment": None,
        "created_at": NOW,
        "updated_at": NOW,
        "approvals_required": 2,
        "files": files(),
        "viewer": "carol",
        "viewer_is_author": False,
        "can_review": True,
        "why_cannot_review": None,
        "my_review": None,
        "other_reviews": None,
        "reviews_received": 1,
    }
    values.update(changes)
    return RequestView(**values)  # type: ignore[arg-type]


def render_request(view: RequestView, viewer: Viewer = CHECKER) -> str:
    return (
        templates()
        .get_template("request.html")
        .render(viewer=viewer, title=view.title, view=view, notice=None)
    )


class _Form(HTMLParser):
    """Collects ids, label targets, form controls and scripts."""

    def __init__(self) -> None:
        super().__init__()
        self.label_for: set[str] = set()
        self.controls: list[dict[str, str | None]] = []
        self.scripts = 0
        self.inline_handlers = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "label" and a.get("for"):
            self.label_for.add(a["for"] or "")
        if tag in {"input", "textarea", "select"} and a.get("type") != "hidden":
            self.controls.append(a)
        if tag == "script":
            self.scripts += 1
        self.inline_handlers += sum(1 for k, _ in attrs if k.startswith("on"))


def test_heatmap_marks_each_cell_with_its_rules_in_text() -> None:
    html = render_request(request_view())
    fail = re.search(
        r'<td class="cell cell-fail"[^>]*>7<span class="marker"> ✕ threshold</span>', html
    )
    assert fail, "the failing cell carries the fail class and names its rule"
    assert 'title="threshold"' in html
    assert re.search(
        r'<td class="cell cell-review"[^>]*>0<span class="marker"> ⚠ zeros</span>', html
    )
    assert '<td class="cell cell-pass">120</td>' in html
    assert "threshold: 1 cell" in html
    assert "zeros: 1 cell" in html


def test_text_is_escaped_and_the_page_has_no_scripts() -> None:
    html = render_request(request_view())
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    parser = _Form()
    parser.feed(html)
    assert parser.scripts == 0
    assert parser.inline_handlers == 0


def test_exception_justification_beside_the_checks() -> None:
    html = render_request(request_view())
    assert "Published national figures already show this count." in html
    assert html.index("Automatic checks on by_sex.csv") < html.index("Published national figures")


def test_figure_links_to_the_file_route() -> None:
    html = render_request(request_view())
    assert 'src="/requests/rr-0123456789ab/files/plot.png"' in html
    assert 'alt="Figure plot.png, drawn from the table by_sex.csv"' in html


def test_review_form_has_a_labelled_control_for_everything() -> None:
    html = render_request(request_view())
    parser = _Form()
    parser.feed(html)
    names = {c.get("name") for c in parser.controls}
    assert {"decision:by_sex.csv", "comment:by_sex.csv", "comment"} <= names
    assert {"decision:analysis.py", "decision:plot.png"} <= names
    for control in parser.controls:
        assert control.get("id") in parser.label_for, f"control {control.get('name')} has no label"
    values = {c.get("value") for c in parser.controls if c.get("type") == "radio"}
    assert values == {"approve", "return", "reject"}
    assert 'name="csrf" value="csrf-token"' in html


def test_blinded_until_the_viewer_has_reviewed() -> None:
    other = ReviewView(
        "dev", "approve", "fine", NOW, (FileDecisionView("by_sex.csv", "approve", None),)
    )
    hidden = render_request(request_view(other_reviews=None))
    assert "hidden until you have given yours" in hidden
    assert "Review by dev" not in hidden
    shown = render_request(
        request_view(
            can_review=False,
            why_cannot_review="you have already reviewed this request",
            my_review=ReviewView("carol", "approve", None, NOW),
            other_reviews=(other,),
        )
    )
    assert "Review by dev" in shown
    assert "Your review" in shown
    assert "hidden until" not in shown


def test_author_sees_why_not_and_why_blocked_and_no_form() -> None:
    view = request_view(
        viewer="alice",
        viewer_is_author=True,
        can_review=False,
        why_cannot_review="authors never review their own requests",
        blocked_reasons=("by_sex.csv: threshold failed and no exception was accepted",),
    )
    html = render_request(view, AUTHOR)
    assert 'action="/requests/rr-0123456789ab/review"' not in html
    assert "authors never review their own requests" in html
    assert "Why this was blocked" in html
    assert "shown to you once the request is decided" in html
    assert "until you have given yours" not in html
    assert "threshold failed and no exception was accepted" in html


def test_blocking_rules_are_named() -> None:
    file = files()[0]
    blocked = FileView(**{**file.__dict__, "blocking": ("row_level",)})
    html = render_request(request_view(files=(blocked,)))
    assert "no exception can override" in html
    assert "Rules row_level failed: no exception can release this file." in html


def test_queue_renders_sections() -> None:
    item = QueueItem(
        id="rr-0123456789ab",
        project_id="diabetes",
        title="Patients by sex",
        author="alice",
        status="submitted",
        created_at=NOW,
        files=3,
        worst_status="fail",
        exceptions=1,
        reviews_received=0,
        viewer_has_reviewed=False,
        viewer_is_author=False,
    )
    from sde.web.app import QueueSection

    html = (
        templates()
        .get_template("queue.html")
        .render(
            viewer=CHECKER,
            title="Release requests",
            sections=[
                QueueSection("open", "Waiting for review", [item], "none"),
                QueueSection("decided", "Decided recently", [], "Nothing decided."),
            ],
        )
    )
    assert 'href="/requests/rr-0123456789ab"' in html
    assert "✕ fail" in html
    assert "waiting for review" in html
    assert "Nothing decided." in html


# --- the command line --------------------------------------------------------------------


def test_cli_link_signs_in(home: Home, client: httpx.Client) -> None:
    result = CliRunner().invoke(
        main,
        ["web", "link", "--person", "carol", "--home", str(home.root), "--base-url", "http://x/"],
    )
    assert result.exit_code == 0, result.output
    url = result.output.strip()
    assert url.startswith("http://x/signin?token=")
    token = url.split("token=", 1)[1]
    assert client.post("/signin", data={"token": token}).status_code == 303


def test_cli_link_refuses_an_unknown_person(home: Home) -> None:
    result = CliRunner().invoke(main, ["web", "link", "--person", "zed", "--home", str(home.root)])
    assert result.exit_code == 2
    assert "no person" in result.output


def test_cli_serve_refuses_a_remote_host(home: Home, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main, ["web", "serve", "--host", "0.0.0.0", "--home", str(home.root)]
    )
    assert result.exit_code == 2
    assert "not a loopback address" in result.output


def test_an_internal_fault_is_a_page_with_the_headers(
    home: Home, caplog: pytest.LogCaptureFixture
) -> None:
    app = create_app(home)

    @app.get("/boom")
    def boom() -> None:
        raise RuntimeError("a fault")

    with serve(app) as url:
        response = httpx.get(f"{url}/boom", timeout=10)
    assert response.status_code == 500
    assert "Something went wrong" in response.text
    assert response.headers["content-security-policy"] == CSP
    assert response.headers["cache-control"] == "no-store"
    assert any("internal error on GET /boom" in r.getMessage() for r in caplog.records)


# --- the pages over the real release service ---------------------------------------------

TABLE = b"age_band,n\n0-44,120\n45-64,98\n65+,7\n"
JUSTIFICATION = "The count is already published in the national diabetes audit."
SVG = (
    b'<svg xmlns="http://www.w3.org/2000/svg" width="4" height="4">'
    b'<rect width="4" height="4"/></svg>'
)


def file_request(home: Home) -> str:
    """alice files a table with a small cell (and an exception), a PNG and an SVG figure."""
    from sde.services.release import OutputFile

    with control_plane(home) as plane:
        service = release_service(home, plane, policy_engine(home, audit=plane.audit))
        request = service.request(
            "diabetes",
            "alice",
            [
                OutputFile(
                    "by_age.csv",
                    TABLE,
                    kind="table",
                    count_columns=("n",),
                    exception=JUSTIFICATION,
                ),
                OutputFile("plot.png", tiny_png(), kind="figure", metadata={"table": "by_age.csv"}),
                OutputFile("plot.svg", SVG, kind="figure", metadata={"table": "by_age.csv"}),
            ],
            title="Patients by age band",
        )
    return request.id


@pytest.fixture
def filed(home: Home) -> str:
    return file_request(home)


def approve_all(request_id: str, csrf: str, **changes: str) -> dict[str, str]:
    form = {
        "csrf": csrf,
        "decision:by_age.csv": "approve",
        "comment:by_age.csv": "",
        "decision:plot.png": "approve",
        "decision:plot.svg": "approve",
        "comment": "",
    }
    form.update(changes)
    return form


def test_checker_queue_lists_the_request(client: httpx.Client, home: Home, filed: str) -> None:
    sign_in(client, home, "carol")
    response = client.get("/queue")
    assert response.status_code == 200
    waiting = response.text.split('id="decided"')[0]
    assert f'href="/requests/{filed}"' in waiting
    assert "✕ fail" in waiting


def test_researcher_queue_shows_only_their_own(
    client: httpx.Client, home: Home, filed: str
) -> None:
    sign_in(client, home, "alice")
    assert f'href="/requests/{filed}"' in client.get("/queue").text
    client.cookies.clear()
    sign_in(client, home, "eve")
    assert f'href="/requests/{filed}"' not in client.get("/queue").text


def test_request_page_shows_the_heatmap_and_the_form(
    client: httpx.Client, home: Home, filed: str
) -> None:
    sign_in(client, home, "carol")
    html = client.get(f"/requests/{filed}").text
    assert re.search(r'<td class="cell cell-fail"[^>]*>7<span class="marker"> ✕ threshold', html)
    assert JUSTIFICATION in html
    assert 'name="decision:by_age.csv"' in html
    assert "hidden until you have given yours" in html


def test_figures_are_served_inline_and_sandboxed(
    client: httpx.Client, home: Home, filed: str
) -> None:
    sign_in(client, home, "carol")
    image = client.get(f"/requests/{filed}/files/plot.png")
    assert image.status_code == 200
    assert image.content == tiny_png()
    assert image.headers["content-type"] == "image/png"
    assert image.headers["content-disposition"].startswith("inline")
    svg = client.get(f"/requests/{filed}/files/plot.svg")
    assert svg.headers["content-type"].startswith("image/svg+xml")
    assert "sandbox" in svg.headers["content-security-policy"]
    assert "script-src" not in svg.headers["content-security-policy"]
    assert svg.headers["x-content-type-options"] == "nosniff"
    # A table is shown on the page, not served as a file; an unknown name is not found.
    assert client.get(f"/requests/{filed}/files/by_age.csv").status_code == 404
    assert client.get(f"/requests/{filed}/files/..%2Fcontrol.db").status_code == 404


def test_other_researchers_cannot_see_the_files(
    client: httpx.Client, home: Home, filed: str
) -> None:
    # (mallory is banned by another test: eve is another researcher, not the author.)
    sign_in(client, home, "eve")
    assert client.get(f"/requests/{filed}").status_code == 403
    assert client.get(f"/requests/{filed}/files/plot.png").status_code == 403


def test_review_errors_become_pages(client: httpx.Client, home: Home, filed: str) -> None:
    csrf = sign_in(client, home, "carol")
    url = f"/requests/{filed}/review"
    missing = client.post(url, data={"csrf": csrf, "decision:by_age.csv": "approve"})
    assert missing.status_code == 400
    bad = client.post(url, data=approve_all(filed, csrf, **{"decision:plot.png": "maybe"}))
    assert bad.status_code == 400
    assert "approve, return or reject" in bad.text
    done = client.post(url, data=approve_all(filed, csrf))
    assert done.status_code == 303
    assert done.headers["location"] == f"/requests/{filed}?reviewed=1"
    again = client.post(url, data=approve_all(filed, csrf))
    assert again.status_code == 409
    page = client.get(done.headers["location"]).text
    assert "Your review has been recorded." in page
    assert 'class="review-form"' not in page


def test_author_is_refused_with_a_valid_csrf_token(
    client: httpx.Client, home: Home, filed: str
) -> None:
    csrf = sign_in(client, home, "alice")
    page = client.get(f"/requests/{filed}").text
    assert 'class="review-form"' not in page
    assert 'id="why-cannot-review"' in page
    response = client.post(f"/requests/{filed}/review", data=approve_all(filed, csrf))
    assert response.status_code == 403


def test_two_approvals_release_and_nothing_patient_level_is_logged(
    client: httpx.Client, home: Home, filed: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    for checker in ("carol", "dev"):
        client.cookies.clear()
        csrf = sign_in(client, home, checker)
        response = client.post(f"/requests/{filed}/review", data=approve_all(filed, csrf))
        assert response.status_code == 303
    page = client.get(f"/requests/{filed}").text
    assert 'data-status="released"' in page
    assert (home.egress / filed / "by_age.csv").read_bytes() == TABLE
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert f"review recorded: dev on {filed}, now released" in logged
    # Labels and the justification are distinctive; counts could match a request id.
    for value in (JUSTIFICATION, "age_band", "0-44", "45-64", "65+"):
        assert value not in logged


def test_only_the_author_withdraws_and_only_with_the_token(
    client: httpx.Client, home: Home, filed: str
) -> None:
    csrf = sign_in(client, home, "carol")
    assert 'id="withdraw"' not in client.get(f"/requests/{filed}").text
    assert client.post(f"/requests/{filed}/withdraw", data={"csrf": csrf}).status_code == 403
    csrf = sign_in(client, home, "alice")
    assert 'id="withdraw"' in client.get(f"/requests/{filed}").text
    assert client.post(f"/requests/{filed}/withdraw", data={"csrf": "forged"}).status_code == 403
    done = client.post(f"/requests/{filed}/withdraw", data={"csrf": csrf})
    assert done.status_code == 303
    page = client.get(f"/requests/{filed}").text
    assert 'data-status="withdrawn"' in page
    assert 'id="withdraw"' not in page
    with control_plane(home) as plane:
        assert plane.get_release_request(filed).status.value == "withdrawn"
