"""A patient's record history over a real lake, control plane and policy engine: three
patients in a linked ``patients`` table, an approved project extracting it, one patient
who opted out of research (never in the extract), one who opted out of the project after
the first extract (in it before the refresh, not after), one released result.

The history must be computed from the NHS number alone, and neither the number nor the
pid may reach the audit log or an error message."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from dataclasses import asdict

import pyarrow as pa
import pytest

from sde.adapters import delta
from sde.adapters.sql import ControlPlane
from sde.domain.audit import AuditEvent
from sde.domain.nhs_number import complete
from sde.domain.pseudonyms import LinkagePseudonymiser, ProjectPseudonymiser
from sde.domain.releases import Vote
from sde.errors import InputError
from sde.patient import render_letter, spaced
from sde.services.home import Home, init_home
from sde.services.optouts import record_choice
from sde.services.patient import (
    REFUSED,
    VIEWED,
    ProjectUse,
    RecordHistory,
    audit_subject,
    record_history,
)
from sde.services.release import OutputFile
from sde.services.wiring import control_plane, policy_engine, release_service
from tests.factories import airlock_project, linked_patients, sex_extract

pytestmark = [pytest.mark.delta, pytest.mark.sql, pytest.mark.policy]

PROJECT = "diabetes"
SAFE = b"sex,n\nF,120\nM,98\n"


def _number(prefix: str) -> str:
    for last in range(10):
        number = complete(f"{prefix}{last}")
        if number is not None:
            return number
    raise AssertionError("no valid NHS number with that prefix")


IN_EXTRACT = _number("94347659")  # in the linked zone and in the extract
OPTED_OUT = _number("40123456")  # opted out of research before the extract
LEFT_LATER = _number("48512345")  # opted out of the project after the first extract
NOT_HELD = _number("60123456")  # in no dataset; on the national data opt-out register
INVALID = IN_EXTRACT[:9] + str((int(IN_EXTRACT[9]) + 1) % 10)  # wrong check digit


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Home, ControlPlane]]:
    home = init_home(tmp_path_factory.mktemp("patient") / "h")
    with control_plane(home) as plane:
        engine = policy_engine(home)
        airlock_project(plane, engine)
        linked_patients(home, [IN_EXTRACT, OPTED_OUT, LEFT_LATER])
        record_choice(home, OPTED_OUT, "research", actor="olu", audit=plane.audit)
        sex_extract(home, PROJECT)
        record_choice(home, LEFT_LATER, "project", PROJECT, actor="olu", audit=plane.audit)
        sex_extract(home, PROJECT)  # the refresh honours the new choice
        linkage = LinkagePseudonymiser(home.master_key())
        delta.append(home.linked / "national_opt_out", pa.table({"pid": [linkage.pid(NOT_HELD)]}))
        airlock = release_service(home, plane, engine)
        request = airlock.request(PROJECT, "alice", [OutputFile("by_sex.csv", SAFE)], title="t")
        airlock.review(request.id, "carol", Vote.APPROVE)
        airlock.review(request.id, "dev", Vote.APPROVE)
        yield home, plane


def history_of(world: tuple[Home, ControlPlane], number: str) -> RecordHistory:
    home, plane = world
    return record_history(home, plane, number, actor="olu", audit=plane.audit)


def viewed(plane: ControlPlane) -> list[AuditEvent]:
    return [e for e in plane.audit.events() if e.action in (VIEWED, REFUSED)]


def test_a_patient_in_the_extract_sees_datasets_project_and_release(
    world: tuple[Home, ControlPlane],
) -> None:
    history = history_of(world, IN_EXTRACT)
    assert history.has_record
    assert [(d.name, d.rows) for d in history.datasets] == [("patients", 1)]
    assert history.datasets[0].title != "patients"  # the spec's plain title
    [use] = history.projects
    assert use.project_id == PROJECT
    assert use.sponsor == "Uni"
    assert use.sponsor_type == "academic"
    assert use.purpose == "research"
    assert (use.start_date, use.end_date) == ("2025-01-01", "2030-12-31")
    assert use.in_latest_extract
    assert use.datasets == ("patients",)
    assert use.first_included_at
    assert use.first_included_at <= use.extract_built_at
    assert use.withheld_by == ()
    [release] = use.releases
    assert release.name == "by_sex.csv"
    assert release.released_at
    assert release.sha256 == hashlib.sha256(SAFE).hexdigest()
    assert history.withheld == ()
    assert history.national_opt_out is False
    assert history.type1_opt_out is False
    assert history.choices == ()


def test_a_patient_who_opted_out_is_not_in_the_extract_and_is_told_why(
    world: tuple[Home, ControlPlane],
) -> None:
    history = history_of(world, OPTED_OUT)
    assert [d.name for d in history.datasets] == ["patients"]
    assert history.projects == ()
    [withheld] = history.withheld
    assert withheld.project_id == PROJECT
    assert withheld.withheld_by == ("patient's choice: no research",)
    [choice] = history.choices
    assert (choice.scope, choice.target) == ("research", "")
    assert choice.words.startswith("No use of your record for research")


def test_a_refresh_after_an_opt_out_shows_use_before_and_not_now(
    world: tuple[Home, ControlPlane],
) -> None:
    home, _ = world
    history = history_of(world, LEFT_LATER)
    [use] = history.projects
    assert not use.in_latest_extract
    assert use.first_included_at
    assert use.withheld_by == ("patient's choice: not this project",)
    assert [(c.scope, c.target) for c in history.choices] == [("project", PROJECT)]
    # The extract itself agrees: the project pseudonym is gone from the latest version.
    pseudonym = ProjectPseudonymiser(home.master_key(), PROJECT).pseudonym(
        LinkagePseudonymiser(home.master_key()).pid(LEFT_LATER)
    )
    latest = delta.read(home.project_workspace(PROJECT) / "extract" / "patients")
    assert pseudonym not in latest.column("patient_id").to_pylist()


def test_a_number_with_no_record_and_the_national_register(
    world: tuple[Home, ControlPlane],
) -> None:
    history = history_of(world, NOT_HELD)
    assert not history.has_record
    assert history.projects == ()
    assert history.withheld == ()
    assert history.national_opt_out is True
    assert history.type1_opt_out is False


def test_an_invalid_number_is_refused_without_echoing_it(
    world: tuple[Home, ControlPlane],
) -> None:
    _, plane = world
    before = len(viewed(plane))
    with pytest.raises(InputError) as refused:
        history_of(world, INVALID)
    message = str(refused.value)
    assert "Modulus 11" in message
    echoed = INVALID in re.sub(r"\D", "", message)
    assert not echoed, "the refusal repeats the number"
    [event] = viewed(plane)[before:]
    assert event.action == REFUSED
    assert event.subject == "patient:not-identified"
    audited = INVALID in re.sub(r"\D", "", json.dumps(event.details))
    assert not audited, "the audit event holds the number"


def test_every_lookup_is_audited_without_the_number_or_the_pid(
    world: tuple[Home, ControlPlane],
) -> None:
    home, plane = world
    before = len(viewed(plane))
    history_of(world, IN_EXTRACT)
    history_of(world, IN_EXTRACT)
    history_of(world, OPTED_OUT)
    events = viewed(plane)[before:]
    assert [e.action for e in events] == [VIEWED] * 3
    assert all(e.actor == "olu" and e.details == {"channel": "letter"} for e in events)
    linkage = LinkagePseudonymiser(home.master_key())
    pid = linkage.pid(IN_EXTRACT)
    # The same patient's look-ups share a subject; another patient's differ.
    assert events[0].subject == events[1].subject == audit_subject(home.master_key(), pid)
    assert events[2].subject != events[0].subject
    assert re.fullmatch(r"patient:[0-9a-f]{16}", events[0].subject)
    secrets = {IN_EXTRACT, OPTED_OUT, pid, linkage.pid(OPTED_OUT)}
    for event in plane.audit.events():
        text = json.dumps([event.actor, event.action, event.subject, event.details])
        held = sum(s in re.sub(r"\s", "", text) for s in secrets)
        assert held == 0, f"{event.action} holds an NHS number or a pid"
        truncated = pid[:16] in event.subject  # the subject is not a truncation of the pid
        assert not truncated


def test_the_history_holds_no_identifier(world: tuple[Home, ControlPlane]) -> None:
    home, _ = world
    history = history_of(world, IN_EXTRACT)
    text = json.dumps(asdict(history))
    pid = LinkagePseudonymiser(home.master_key()).pid(IN_EXTRACT)
    pseudonym = ProjectPseudonymiser(home.master_key(), PROJECT).pseudonym(pid)
    held = [kind for kind, v in [("nhs", IN_EXTRACT), ("pid", pid), ("pp", pseudonym)] if v in text]
    assert held == []


def test_the_letter_says_it_plainly(world: tuple[Home, ControlPlane]) -> None:
    # Phrases are checked as lists, so a failure never prints the letter (it holds the
    # NHS number).
    html = render_letter(history_of(world, OPTED_OUT), OPTED_OUT, "html")
    has_number = f"NHS number {spaced(OPTED_OUT)}" in html
    assert has_number, "the letter does not show the NHS number"
    wanted = [
        "Dear patient",
        "default-src 'none'",
        "patient&#39;s choice: no research",
        "next update of each project",
    ]
    assert [p for p in wanted if p not in html] == []
    scripted = "<script" in html.lower()
    assert not scripted
    text = render_letter(history_of(world, IN_EXTRACT), IN_EXTRACT, "text")
    wanted = ["Outcomes of type 2 diabetes (diabetes)", "by_sex.csv"]
    assert [p for p in wanted if p not in text] == []
    markup = "<" in text
    assert not markup
    with pytest.raises(InputError):
        render_letter(history_of(world, IN_EXTRACT), IN_EXTRACT, "pdf")


def test_the_letter_escapes_what_projects_wrote() -> None:
    use = ProjectUse(
        project_id="p1",
        title="<script>alert(1)</script>",
        sponsor="A & B <Ltd>",
        sponsor_type="commercial",
        purpose="research",
        status="approved",
        start_date=None,
        end_date=None,
        extract_built_at="2026-01-02T00:00:00+00:00",
        first_included_at="2026-01-01T00:00:00+00:00",
        in_latest_extract=True,
        datasets=("patients",),
        releases=(),
    )
    history = RecordHistory("2026-01-03T00:00:00+00:00", (), (use,), (), None, None, ())
    html = render_letter(history, IN_EXTRACT)
    scripted = "<script" in html
    assert not scripted
    wanted = [
        "&lt;script&gt;alert(1)&lt;/script&gt;",
        "A &amp; B &lt;Ltd&gt; (a commercial company)",
        "could not check this",
        "We hold no record linked to this NHS number",
    ]
    assert [p for p in wanted if p not in html] == []
    text = render_letter(history, IN_EXTRACT, "text")
    plain = "A & B <Ltd>" in text  # plain text is not HTML: nothing to escape
    assert plain
