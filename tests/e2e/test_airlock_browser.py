"""The airlock end to end in a real (headless) Chromium: a researcher files a table with a
small cell and an exception; two checkers review it on the web page, blinded, per file;
the author cannot review her own; the approved request is released to the egress zone.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, expect

from sde.services.home import Home, init_home
from sde.services.release import OutputFile
from sde.services.wiring import control_plane, policy_engine, release_service
from sde.web.app import create_app
from sde.web.auth import WebAuth
from tests.browser import chromium, serve
from tests.factories import airlock_project

pytestmark = [pytest.mark.browser, pytest.mark.e2e, pytest.mark.sql, pytest.mark.policy]

# A table a researcher made without the helpers: one count below the threshold of 10.
TABLE = b"age_band,n\n0-44,120\n45-64,98\n65+,7\n"
JUSTIFICATION = "The count of 7 is already published in the national diabetes audit."
CODE = b"import pandas as pd\nprint(pd.read_csv('cohort.csv').groupby('age_band').size())\n"


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Home:
    home = init_home(tmp_path_factory.mktemp("browser") / "h")
    with control_plane(home) as plane:
        airlock_project(plane, policy_engine(home), alice_checks=True)
    return home


@pytest.fixture(scope="module")
def request_id(home: Home) -> str:
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
                    description="Patients by age band",
                ),
                OutputFile("analysis.py", CODE, kind="code"),
            ],
            title="Patients by age band",
        )
    return request.id


@pytest.fixture(scope="module")
def base_url(home: Home) -> Iterator[str]:
    with serve(create_app(home)) as url:
        yield url


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as browser:
        yield browser


def sign_in(browser: Browser, home: Home, base_url: str, person: str) -> Page:
    """A fresh browser context signed in as ``person`` through a one-time link."""
    token = WebAuth(home.master_key()).link_token(person, dt.datetime.now(dt.UTC))
    page = browser.new_context().new_page()
    page.set_default_timeout(10_000)
    page.goto(f"{base_url}/signin?token={token}")
    page.get_by_role("button", name=f"Sign in as {person}").click()
    expect(page).to_have_url(f"{base_url}/queue")
    expect(page.get_by_text(f"Signed in as {person}")).to_be_visible()
    return page


def approve_every_file(page: Page) -> None:
    for fieldset in page.locator("fieldset.decision").all():
        fieldset.get_by_label("Approve").check()
    page.get_by_role("button", name="Submit review").click()
    expect(page.get_by_role("status")).to_have_text("Your review has been recorded.")


def test_two_checkers_release_a_request_with_an_exception(
    browser: Browser, home: Home, base_url: str, request_id: str
) -> None:
    # carol, a checker, finds the request in her queue and opens it.
    carol = sign_in(browser, home, base_url, "carol")
    waiting = carol.locator("section", has=carol.get_by_role("heading", name="Waiting for review"))
    waiting.get_by_role("link", name="Patients by age band").click()
    expect(carol).to_have_url(f"{base_url}/requests/{request_id}")
    expect(carol.get_by_role("heading", level=1)).to_have_text("Patients by age band")

    # The failing cell is highlighted and names its rule in text, not colour alone.
    cell = carol.locator("table.heatmap td", has_text="7")
    expect(cell).to_have_class("cell cell-fail")
    expect(cell).to_have_attribute("title", "threshold")
    expect(cell.locator(".marker")).to_have_text("✕ threshold")
    expect(carol.locator("table.heatmap td", has_text="120")).to_have_class("cell cell-pass")
    # The researcher's justification sits beside the automatic result; code is shown as text.
    expect(carol.locator("blockquote.justification")).to_have_text(JUSTIFICATION)
    expect(carol.locator("pre.file-text")).to_contain_text("groupby('age_band')")
    # Blinded: nothing of other reviews before she has given hers.
    expect(carol.locator(".blinded")).to_be_visible()

    approve_every_file(carol)
    expect(carol.locator("#request-status")).to_have_attribute("data-status", "in_review")
    expect(carol.locator("form.review-form")).to_have_count(0)

    # alice, the author (also an output checker), cannot review her own request.
    alice = sign_in(browser, home, base_url, "alice")
    alice.goto(f"{base_url}/requests/{request_id}")
    expect(alice.locator("form.review-form")).to_have_count(0)
    expect(alice.locator("#why-cannot-review")).to_contain_text("own")
    # A forged review with her own valid CSRF token is refused by the service.
    csrf = alice.locator("input[name=csrf]").first.get_attribute("value")
    assert csrf
    forged = alice.context.request.post(
        f"{base_url}/requests/{request_id}/review",
        form={"csrf": csrf, "decision:by_age.csv": "approve", "decision:analysis.py": "approve"},
        max_redirects=0,
    )
    assert forged.status == 403
    assert "own" in forged.text()
    # And a forged one without a valid token never reaches the service.
    no_token = alice.context.request.post(
        f"{base_url}/requests/{request_id}/review",
        form={"csrf": "forged", "decision:by_age.csv": "approve"},
        max_redirects=0,
    )
    assert no_token.status == 403
    assert "security token" in no_token.text()

    # dev, the second checker, approves: the request is released at once.
    dev = sign_in(browser, home, base_url, "dev")
    dev.goto(f"{base_url}/requests/{request_id}")
    approve_every_file(dev)
    expect(dev.locator("#request-status")).to_have_attribute("data-status", "released")
    # Now that dev has voted, carol's review is shown to him.
    expect(dev.get_by_role("heading", name="Review by carol")).to_be_visible()

    egress = home.egress / request_id
    assert (egress / "by_age.csv").read_bytes() == TABLE
    assert (egress / "analysis.py").read_bytes() == CODE
    record = json.loads((egress / "sde-release.json").read_text())
    assert {r["reviewer"] for r in record["reviews"]} == {"carol", "dev"}

    # alice's queue shows her request as released.
    alice.goto(f"{base_url}/queue")
    row = alice.locator(f"#queue-{request_id}")
    expect(row).to_contain_text("released")


def test_security_headers_reach_the_browser(browser: Browser, base_url: str) -> None:
    page = browser.new_page()
    response = page.goto(f"{base_url}/signin")
    assert response is not None
    headers = response.headers
    assert "script-src 'none'" in headers["content-security-policy"]
    assert headers["x-content-type-options"] == "nosniff"
    # The style sheet loads under the policy (no violation): the header is dark.
    background = page.evaluate(
        "getComputedStyle(document.querySelector('.site-header')).backgroundColor"
    )
    assert background == "rgb(11, 12, 12)"
    page.close()


def test_expired_link_is_explained(browser: Browser, home: Home, base_url: str) -> None:
    past = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
    token = WebAuth(home.master_key()).link_token("carol", past, 15)
    page = browser.new_page()
    response = page.goto(f"{base_url}/signin?token={token}")
    assert response is not None
    assert response.status == 401
    expect(page.get_by_role("alert")).to_contain_text("expired")
    page.close()


def test_keyboard_reaches_the_skip_link_first(browser: Browser, base_url: str) -> None:
    page = browser.new_page()
    page.goto(f"{base_url}/signin")
    page.keyboard.press("Tab")
    focused = page.evaluate("document.activeElement.textContent")
    assert focused == "Skip to main content"
    page.close()
