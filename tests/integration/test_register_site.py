"""The public register served to anyone: the built files under the service's prefix, the
security headers, no cookies, nothing outside the folder; a plain page before it is
built."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from sde.web.register_site import register_app
from tests.browser import serve

BASE = "/services/register"


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    site = tmp_path / "register"
    (site / "projects").mkdir(parents=True)
    (site / "index.html").write_text("<h1>The register</h1>")
    (site / "projects" / "index.html").write_text("<h1>Projects</h1>")
    (site / "projects" / "index.csv").write_text("id,title\n")
    (tmp_path / "secret.txt").write_text("outside the register")
    return site


@pytest.fixture
def client(folder: Path) -> Iterator[httpx.Client]:
    with (
        serve(register_app(folder, base=BASE)) as url,
        httpx.Client(base_url=url, timeout=10) as client,
    ):
        yield client


def test_anyone_reads_the_register_under_the_prefix(client: httpx.Client) -> None:
    index = client.get(f"{BASE}/")
    assert index.status_code == 200
    assert "<h1>The register</h1>" in index.text
    assert "set-cookie" not in index.headers
    assert index.headers["x-frame-options"] == "DENY"
    assert "script-src 'none'" in index.headers["content-security-policy"]
    assert client.get(f"{BASE}/projects/").text == "<h1>Projects</h1>"
    assert client.get(f"{BASE}/projects/index.csv").headers["content-type"].startswith("text/csv")


def test_nothing_outside_the_folder(client: httpx.Client) -> None:
    for path in (f"{BASE}/../secret.txt", f"{BASE}/%2e%2e/secret.txt", "/secret.txt"):
        answer = client.get(path)
        assert answer.status_code == 404, path
        assert "outside the register" not in answer.text


def test_before_it_is_built_a_page_says_so_and_a_build_appears_at_once(tmp_path: Path) -> None:
    site = tmp_path / "register"
    with serve(register_app(site, base=BASE)) as url:
        answer = httpx.get(f"{url}{BASE}/", timeout=10)
        assert answer.status_code == 404
        assert "sde register build" in answer.text
        site.mkdir()
        (site / "index.html").write_text("<h1>Built</h1>")
        assert httpx.get(f"{url}{BASE}/", timeout=10).text == "<h1>Built</h1>"
