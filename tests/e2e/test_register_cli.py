"""`sde register build` over the demo's home, through the installed command: the register
shows the demo's project, flows and release, and holds no patient-level value."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.test_cli import ok, run
from tests.integration.test_no_patient_values_leak import identifiers, leaks

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

HEX32 = re.compile(r"(?<![0-9a-f])[0-9a-f]{32}(?![0-9a-f])")


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("register-demo") / "demo"
    ok("demo", home=home)
    return home


def site(folder: Path) -> Iterator[tuple[str, bytes]]:
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            yield path.relative_to(folder).as_posix(), path.read_bytes()


def test_build_shows_the_demo_and_leaks_nothing(demo: Path) -> None:
    out = ok("register", "build", home=demo)
    assert "2 projects" in out  # the academic project and the commercial one
    assert "1 releases" in out
    folder = demo / "register"
    files = dict(site(folder))
    assert {"index.html", "flows.csv", "releases.json", "checkpoint.json"} <= set(files)

    project = json.loads(files["projects/diabetes-outcomes.json"])["project"]
    assert project["status"] == "approved"
    flows = json.loads(files["flows.json"])["flows"]
    assert {f["dataset"] for f in flows} == {"patients", "gp_events", "admissions"}
    for flow in flows:  # every published count rounded
        for count in [flow["rows"], flow["patients_removed_by_opt_out"]] + [
            r["patients"] for r in flow["removed_by_rule"]
        ]:
            assert count == "fewer than 10" or int(count) % 5 == 0
    [release] = json.loads(files["releases.json"])["releases"]
    released = {p.name for p in (demo / "lake" / "egress" / release["request_id"]).iterdir()}
    assert {f["name"] for f in release["files"]} <= released

    checkpoint = json.loads(files["checkpoint.json"])
    assert f"head: {checkpoint['head_hash']}" in ok("audit", "verify", home=demo)

    numbers, others = identifiers(demo / "sources")
    assert len(numbers) > 100
    for name, content in files.items():
        text = content.decode("utf-8")
        assert leaks(text, numbers, others) == [], f"{name} holds a patient-level value"
        # Pseudonyms (pid and project pseudonyms) are 32 hex characters; checksums are 64.
        assert not HEX32.search(text), f"{name} holds something shaped like a pseudonym"


def test_rebuild_is_identical_and_out_is_honoured(demo: Path, tmp_path: Path) -> None:
    first = tmp_path / "first"
    second = tmp_path / "second"
    ok("register", "build", "--out", str(first), home=demo)
    ok("register", "build", "--out", str(second), home=demo)
    assert dict(site(first)) == dict(site(second))
    ok("register", "build", "--out", str(first), home=demo)  # replaces its own register
    assert dict(site(first)) == dict(site(second))


def test_refuses_a_folder_that_is_not_a_register(demo: Path, tmp_path: Path) -> None:
    (tmp_path / "mine.txt").write_text("keep")
    result = run("register", "build", "--out", str(tmp_path), home=demo)
    assert result.returncode == 2
    assert "not a register built by sde" in result.stderr
    assert (tmp_path / "mine.txt").read_text() == "keep"


@pytest.mark.browser
def test_keyboard_and_focus_in_chromium(demo: Path, tmp_path: Path) -> None:
    from tests.browser import chromium

    folder = tmp_path / "site"
    ok("register", "build", "--out", str(folder), home=demo)
    with chromium() as browser:
        page = browser.new_page()
        for name in ("index.html", "flows.html", "releases.html", "projects/index.html"):
            page.goto((folder / name).as_uri())
            assert page.locator("h1").count() == 1
            assert page.locator("table").count() == page.locator("table > caption").count()
            page.keyboard.press("Tab")
            assert page.evaluate("document.activeElement.textContent") == "Skip to main content"
            links = page.locator("a").count()
            for _ in range(links - 1):
                page.keyboard.press("Tab")
                style = page.evaluate(
                    "(() => { const s = getComputedStyle(document.activeElement);"
                    " return [document.activeElement.tagName, s.outlineStyle,"
                    " parseFloat(s.outlineWidth), s.backgroundColor]; })()"
                )
                assert style[0] == "A", name
                assert style[1] != "none", name
                assert style[2] >= 2, name
                assert style[3] == "rgb(255, 221, 0)", name
            last = page.evaluate("document.activeElement.getAttribute('href')")
            assert last.endswith("checkpoint.json")  # the footer's link comes last
        page.goto((folder / "index.html").as_uri())
        page.locator("a", has_text="All 2 project applications").focus()
        page.keyboard.press("Enter")  # links work from the keyboard
        page.wait_for_url("**/projects/index.html")
        assert page.locator("h1").inner_text() == "Project applications"
        page.close()
