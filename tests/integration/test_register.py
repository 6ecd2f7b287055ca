"""The public register built from a real control plane, audit log and extract: projects in
every state, an extract and its refresh, a release with code, bans and a suspension."""

from __future__ import annotations

import csv
import hashlib
import io
import itertools
import json
import re
from dataclasses import dataclass
from datetime import date
from html.parser import HTMLParser
from pathlib import Path

import pytest

from sde.domain.audit import AuditEntry
from sde.domain.releases import Status, Vote
from sde.errors import ConfigError, StateError
from sde.register import site_files, write_site
from sde.services.extract import ExtractRequest, build_extract
from sde.services.governance import GovernanceService, GovernanceSettings
from sde.services.home import Home, init_home
from sde.services.projects import ProjectService
from sde.services.register import Register, build_register, manifest_reader
from sde.services.release import OutputFile
from sde.services.wiring import control_plane, policy_engine, release_service
from tests.factories import airlock_project, application, approve_through_board, linked_patients

pytestmark = [pytest.mark.sql, pytest.mark.policy, pytest.mark.delta]

NHS = ["9434765919", "9434765870", "4010232137"]
SAFE = b"sex,n\nF,120\nM,98\n"
CODE = b"import sde.workspace\nprint('count patients by sex')\n"
SECRET_TITLE = "UNRELEASED-SENTINEL-TITLE"
SECRET_COMMENT = "REVIEWER-SENTINEL-COMMENT"
SECRET_FILE = "unreleased_sentinel.csv"
BAN_REASON = "shared a login with a colleague"
SUSPEND_REASON = "ethics approval lapsed"
REJECT_REASON = "no public benefit shown"


@dataclass
class Built:
    home: Home
    register: Register
    files: dict[str, bytes]
    released_id: str
    pending_id: str


def _text(files: dict[str, bytes], path: str) -> str:
    return files[path].decode("utf-8")


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    home = init_home(tmp_path_factory.mktemp("register") / "h")
    engine = policy_engine(home)
    with control_plane(home) as plane:
        airlock_project(plane, engine)
        projects = ProjectService(plane)
        governance = GovernanceService(plane, engine, GovernanceSettings(comment_period_days=0))
        projects.create_project(
            "olu",
            application(
                "drug-trial",
                {"patients": ["sex"]},
                sponsor="Pharma Ltd",
                sponsor_type="commercial",
                benefit_sharing="Royalties to the NHS trust",
                ai_ml_use=True,
                ai_ml_description="A model predicting readmission",
            ),
        )
        projects.create_project("open-comment", application("open-comment", {"patients": ["sex"]}))
        governance.publish("olu", "open-comment")
        projects.create_project("turned-down", application("turned-down", {"patients": ["sex"]}))
        governance.publish("olu", "turned-down")
        governance.reject("turned-down", "bea", [REJECT_REASON])
        projects.create_project("paused", application("paused", {"patients": ["sex"]}))
        approve_through_board(plane, engine, "paused", decided_by="bea")
        governance.suspend("olu", "paused", SUSPEND_REASON)
        projects.create_project("ended", application("ended", {"patients": ["sex"]}))
        governance.close("olu", "ended", "withdrawn by the sponsor")

        governance.ban_person("olu", "mallory", until=date(2099, 1, 1), reason=BAN_REASON)
        governance.ban_organisation(
            "olu", "Rogue Analytics", until=date(2099, 1, 1), reason="sold data on"
        )

        linked_patients(home, NHS)
        request = ExtractRequest("diabetes", "research", True, {"patients": ("sex",)})
        for _ in range(2):  # an extract and a refresh
            build_extract(home, request, {"patients": "gp"}, actor="olu", audit=plane.audit)

        airlock = release_service(home, plane, engine, scan=False)
        released = airlock.request(
            "diabetes",
            "alice",
            [OutputFile("by_sex.csv", SAFE), OutputFile("analysis.py", CODE, kind="code")],
            title="Counts by sex",
        )
        airlock.review(released.id, "carol", Vote.APPROVE)
        airlock.review(released.id, "dev", Vote.APPROVE)
        assert plane.get_release_request(released.id).status is Status.RELEASED
        pending = airlock.request(
            "diabetes", "alice", [OutputFile(SECRET_FILE, SAFE)], title=SECRET_TITLE
        )
        airlock.review(pending.id, "carol", Vote.APPROVE, comment=SECRET_COMMENT)

        register = build_register(plane, plane.audit, manifest_reader(home))
    return Built(home, register, site_files(register), released.id, pending.id)


def test_layout(built: Built) -> None:
    expected = {
        "index.html",
        "checkpoint.json",
        "static/register.css",
        f"code/{built.released_id}/analysis.py",
        *(f"projects/index.{ext}" for ext in ("html", "csv", "json")),
        *(
            f"{page}.{ext}"
            for page in ("flows", "releases", "sanctions", "checkpoints")
            for ext in ("html", "csv", "json")
        ),
        *(
            f"projects/{p}.{ext}"
            for p in ("diabetes", "drug-trial", "open-comment", "turned-down", "paused", "ended")
            for ext in ("html", "json")
        ),
    }
    assert set(built.files) == expected


def test_every_project_in_every_state_is_listed(built: Built) -> None:
    data = json.loads(built.files["projects/index.json"])
    status = {p["id"]: p["status"] for p in data["projects"]}
    assert status == {
        "diabetes": "approved",
        "drug-trial": "draft",
        "open-comment": "published",
        "turned-down": "rejected",
        "paused": "suspended",
        "ended": "closed",
    }
    rows = list(csv.DictReader(io.StringIO(_text(built.files, "projects/index.csv"))))
    assert {r["id"]: r["status"] for r in rows} == status
    html = _text(built.files, "projects/index.html")
    for project_id in status:
        assert f'href="{project_id}.html"' in html
    index = _text(built.files, "index.html")
    assert re.search(r"<th scope=\"row\">Suspended</th><td class=\"number\">1</td>", index)
    assert 'All applications</th><td class="number">6</td>' in index


def test_project_page_has_the_application_and_the_decision(built: Built) -> None:
    rejected = _text(built.files, "projects/turned-down.html")
    assert "<h1>Outcomes of type 2 diabetes</h1>" in rejected
    assert REJECT_REASON in rejected
    assert "<strong>rejected</strong>" in rejected
    assert "University of Leeds" in rejected
    assert "s251_support: CAG 20/CAG/0001" in rejected
    assert "How outcomes of type 2 diabetes differ by age and sex." in rejected
    assert "Better targeted diabetes care." in rejected
    data = json.loads(built.files["projects/turned-down.json"])["project"]
    assert data["decision_reasons"] == [REJECT_REASON]
    assert data["datasets"] == [{"name": "patients", "columns": ["sex"], "justification": None}]
    assert data["value_exchange"] is None

    paused = json.loads(built.files["projects/paused.json"])["project"]
    assert paused["status_reason"] == SUSPEND_REASON
    assert paused["status_changed_at"]
    assert SUSPEND_REASON in _text(built.files, "projects/paused.html")


def test_commercial_value_exchange_and_ai(built: Built) -> None:
    html = _text(built.files, "projects/drug-trial.html")
    assert "Value exchange (commercial sponsor)" in html
    assert "Royalties to the NHS trust" in html
    assert "Not exclusive" in html
    assert "Yes: A model predicting readmission" in html
    data = json.loads(built.files["projects/drug-trial.json"])["project"]
    assert data["value_exchange"] == {
        "benefit_sharing": "Royalties to the NHS trust",
        "exclusive_access": False,
    }
    assert "Value exchange" not in _text(built.files, "projects/diabetes.html")


def test_flows_extract_and_refresh_with_rounded_counts(built: Built) -> None:
    flows = json.loads(built.files["flows.json"])["flows"]
    assert [(f["project_id"], f["kind"], f["dataset"]) for f in flows] == [
        ("diabetes", "extract", "patients"),
        ("diabetes", "refresh", "patients"),
    ]
    # Three patients, none opted out: a small count is never shown exactly.
    assert {f["rows"] for f in flows} == {"fewer than 10"}
    assert {f["patients_removed_by_opt_out"] for f in flows} == {"0"}
    assert {r["rule"] for r in flows[0]["removed_by_rule"]} >= {"national_opt_out"}
    assert all(r["patients"] == "0" for r in flows[0]["removed_by_rule"])
    rows = list(csv.DictReader(io.StringIO(_text(built.files, "flows.csv"))))
    assert [(r["at"], r["kind"], r["rows"]) for r in rows] == [
        (f["at"], f["kind"], f["rows"]) for f in flows
    ]
    html = _text(built.files, "flows.html")
    assert html.count("<td>refresh</td>") == 1
    assert html.count("<td>extract</td>") == 1
    assert "fewer than 10" in html


def test_releases_show_checks_checksums_and_publish_the_code(built: Built) -> None:
    releases = json.loads(built.files["releases.json"])["releases"]
    assert [r["request_id"] for r in releases] == [built.released_id]
    files = {f["name"]: f for f in releases[0]["files"]}
    assert files["by_sex.csv"]["sha256"] == hashlib.sha256(SAFE).hexdigest()
    assert files["by_sex.csv"]["worst_check_status"] == "pass"
    assert files["by_sex.csv"]["checks_not_passed"] == []
    assert files["by_sex.csv"]["published_code"] is None
    code_path = f"code/{built.released_id}/analysis.py"
    assert files["analysis.py"]["published_code"] == code_path
    assert built.files[code_path] == CODE
    html = _text(built.files, "releases.html")
    assert f'href="{code_path}"' in html
    assert hashlib.sha256(SAFE).hexdigest() in html
    rows = list(csv.DictReader(io.StringIO(_text(built.files, "releases.csv"))))
    assert sorted((r["file"], r["sha256"]) for r in rows) == sorted(
        (name, f["sha256"]) for name, f in files.items()
    )
    # A released table's contents are never copied into the register.
    assert not any(content == SAFE for content in built.files.values())


def test_nothing_of_an_unreleased_request(built: Built) -> None:
    for path, content in built.files.items():
        text = content.decode("utf-8", errors="replace")
        for secret in (
            SECRET_TITLE,
            SECRET_COMMENT,
            SECRET_FILE,
            built.pending_id,
            "Counts by sex",
        ):
            assert secret not in text, f"{path} holds something it must not"


def test_sanctions(built: Built) -> None:
    data = json.loads(built.files["sanctions.json"])["sanctions"]
    [ban] = data["person_bans"]
    assert (ban["person_id"], ban["organisation"], ban["reason"]) == ("mallory", "Uni", BAN_REASON)
    assert ban["banned_until"].startswith("2099-01-01")
    assert ban["lifted_at"] is None
    [org] = data["organisation_bans"]
    assert (org["organisation"], org["reason"]) == ("Rogue Analytics", "sold data on")
    changes = {(c["project_id"], c["change"], c["reason"]) for c in data["project_status_changes"]}
    assert changes == {
        ("paused", "suspended", SUSPEND_REASON),
        ("ended", "closed", "withdrawn by the sponsor"),
    }
    rows = list(csv.DictReader(io.StringIO(_text(built.files, "sanctions.csv"))))
    assert {(r["type"], r["subject"]) for r in rows} == {
        ("person ban", "mallory"),
        ("organisation ban", "Rogue Analytics"),
        ("project suspended", "paused"),
        ("project closed", "ended"),
    }
    html = _text(built.files, "sanctions.html")
    for words in (BAN_REASON, "sold data on", SUSPEND_REASON, "mallory"):
        assert words in html


def test_checkpoint_is_the_head_of_the_audit_chain(built: Built) -> None:
    with control_plane(built.home) as plane:
        result = plane.audit.verify()
        last = plane.audit.tail(1)[0]
    checkpoint = json.loads(built.files["checkpoint.json"])
    assert checkpoint["head_hash"] == result.head_hash == last.hash
    assert checkpoint["head_seq"] == last.seq == result.events
    assert checkpoint["head_at"] == last.at
    assert result.head_hash in _text(built.files, "index.html")


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.headings: list[int] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        if re.fullmatch(r"h[1-6]", tag):
            self.headings.append(int(tag[1]))


def test_pages_are_accessible_and_script_free(built: Built) -> None:
    for path, content in built.files.items():
        if not path.endswith(".html"):
            continue
        page = _Page()
        page.feed(content.decode("utf-8"))
        names = [t for t, _ in page.tags]
        assert "script" not in names, path
        assert page.tags[0] == ("html", {"lang": "en-GB"}), path
        assert page.headings.count(1) == 1, path
        assert page.headings[0] == 1, path
        assert all(b - a <= 1 for a, b in itertools.pairwise(page.headings)), path
        assert names.count("table") == names.count("caption"), path
        assert all(a.get("scope") in ("col", "row") for t, a in page.tags if t == "th"), path
        links = [a.get("href") for t, a in page.tags if t == "a"]
        assert "#main" in links, path
        # Every page links its data (CSV and JSON beside it, or its JSON for a project).
        assert any(h and h.endswith(".json") for h in links), path
        assert any(("id", "main") in a.items() for t, a in page.tags if t == "main"), path


def test_every_relative_link_resolves(built: Built) -> None:
    for path, content in built.files.items():
        if not path.endswith(".html"):
            continue
        page = _Page()
        page.feed(content.decode("utf-8"))
        base = Path(path).parent
        for tag, attrs in page.tags:
            href = attrs.get("href") if tag in ("a", "link") else None
            if not href or href.startswith("#"):
                continue
            target = (base / href).as_posix()
            parts: list[str] = []
            for part in target.split("/"):
                if part == "..":
                    parts.pop()
                elif part != ".":
                    parts.append(part)
            assert "/".join(parts) in built.files, f"{path} links to a missing {href}"


def test_rebuild_is_byte_identical_and_replaces_the_old_site(built: Built, tmp_path: Path) -> None:
    with control_plane(built.home) as plane:
        again = site_files(build_register(plane, plane.audit, manifest_reader(built.home)))
    assert again == built.files
    out = tmp_path / "site"
    write_site(built.register, out)
    (out / "stale.html").write_text("old")
    written = write_site(built.register, out)
    assert sorted(p.relative_to(out).as_posix() for p in written) == sorted(built.files)
    assert not (out / "stale.html").exists()
    for rel, content in built.files.items():
        assert (out / rel).read_bytes() == content


def test_refuses_to_overwrite_a_folder_that_is_not_a_register(built: Built, tmp_path: Path) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "keep.txt").write_text("mine")
    with pytest.raises(ConfigError, match="not a register"):
        write_site(built.register, folder)
    assert (folder / "keep.txt").read_text() == "mine"


def test_refuses_a_broken_audit_chain(tmp_path: Path) -> None:
    home = init_home(tmp_path / "h")
    with control_plane(home) as plane:
        plane.audit.append(AuditEntry("olu", "test.event", "x", {"n": 1}))
        plane.audit.append(AuditEntry("olu", "test.event", "y", {"n": 2}))
        with plane.engine.begin() as conn:  # as someone with the database file could
            conn.exec_driver_sql("DROP TRIGGER audit_events_no_update")
            conn.exec_driver_sql("UPDATE audit_events SET subject = 'z' WHERE seq = 1")
        with pytest.raises(StateError, match="broken at event 1"):
            build_register(plane, plane.audit, manifest_reader(home))


def test_empty_home_builds(tmp_path: Path) -> None:
    home = init_home(tmp_path / "h")
    with control_plane(home) as plane:
        register = build_register(plane, plane.audit, manifest_reader(home))
    files = site_files(register)
    assert "No applications yet." in _text(files, "projects/index.html")
    assert "Nothing has been released yet." in _text(files, "releases.html")
    assert json.loads(files["checkpoint.json"])["head_seq"] == 0


def test_lifted_bans_keep_their_dates_but_not_their_reasons(tmp_path: Path) -> None:
    home = init_home(tmp_path / "h")
    engine = policy_engine(home)
    with control_plane(home) as plane:
        airlock_project(plane, engine)
        governance = GovernanceService(plane, engine)
        governance.ban_person("olu", "mallory", until=date(2099, 1, 1), reason="first reason")
        governance.lift_person_ban("olu", "mallory")
        governance.ban_person("olu", "mallory", until=date(2098, 1, 1), reason="second reason")
        governance.suspend("olu", "diabetes", "paused for review")
        governance.resume("olu", "diabetes", "review done")
        register = build_register(plane, plane.audit, manifest_reader(home))
    first, second = register.person_bans
    assert first.lifted_at is not None
    assert first.reason is None
    assert first.banned_until.startswith("2099-01-01")
    assert second.lifted_at is None
    assert second.reason == "second reason"
    assert second.banned_until.startswith("2098-01-01")
    changes = [(c.change, c.reason) for c in register.status_changes]
    assert changes == [("suspended", None), ("resumed", "review done")]
    text = b"".join(site_files(register).values()).decode("utf-8")
    assert "first reason" not in text
    assert "paused for review" not in text
