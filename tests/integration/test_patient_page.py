"""The patient's page over a real lake (patients ingested by the real ingest, so the
sign-in checks are the ones ingest keeps), a real control plane (SQLite) and the real web
app (FastAPI through httpx): sign-in, lock-out, the record, choices, sessions.

Nothing the patient types may reach the audit log, an error message or a table in the
clear; the same words answer an unknown number and wrong details."""

from __future__ import annotations

import csv
import datetime as dt
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pyarrow.compute as pc
import pytest

from sde.adapters import delta
from sde.adapters.sql import ControlPlane
from sde.domain.datasets import PID
from sde.domain.nhs_number import complete
from sde.domain.patient_sign_in import LockoutRule
from sde.domain.pseudonyms import LinkagePseudonymiser
from sde.errors import InputError
from sde.services import ingest
from sde.services import patient_page as page
from sde.services.home import Home, init_home
from sde.services.patient import audit_subject, current_choices
from sde.services.wiring import control_plane, policy_engine
from sde.web.patient_site import SESSION_COOKIE, client_address, patient_app
from tests.browser import serve
from tests.factories import airlock_project

pytestmark = [pytest.mark.delta, pytest.mark.sql, pytest.mark.policy]


def _number(prefix: str) -> str:
    for last in range(10):
        number = complete(f"{prefix}{last}")
        if number is not None:
            return number
    raise AssertionError("no valid NHS number with that prefix")


ANNE = _number("94347659")
BEN = _number("40123456")
NO_POSTCODE = _number("48512345")
NOT_HELD = _number("60123456")
ANNE_DOB = ("27", "3", "1980")
ANNE_POSTCODE = "LS6 2QB"
SECRETS = (ANNE, BEN, NO_POSTCODE, NOT_HELD, "1980-03-27", "27/03/1980", "LS6 2QB", "LS62QB")
T0 = dt.datetime(2026, 11, 24, 12, 0, tzinfo=dt.UTC)


def write_patients(path: Path, rows: list[tuple[str, str, str]]) -> Path:
    """A patients file in the ingest contract's layout: (NHS number, DOB, postcode)."""
    spec = ingest.load_spec("patients")
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(spec.column_names))
        writer.writeheader()
        for number, born, postcode in rows:
            writer.writerow(
                {
                    "nhs_number": number,
                    "given_name": "Ann",
                    "family_name": "Example",
                    "sex": "F",
                    "date_of_birth": born,
                    "address_line": "1 Road",
                    "town": "Leeds",
                    "postcode": postcode,
                    "phone": "",
                    "email": "",
                    "gp_practice": "B86001",
                    "ethnicity": "Z",
                }
            )
    return path


@pytest.fixture
def world(tmp_path: Path) -> Iterator[tuple[Home, ControlPlane]]:
    home = init_home(tmp_path / "h")
    rows = [
        (ANNE, "1980-03-27", ANNE_POSTCODE),
        (BEN, "1975-11-02", "SW1A 1AA"),
        (NO_POSTCODE, "1990-01-01", ""),
    ]
    ingest.ingest_file(home, ingest.load_spec("patients"), write_patients(tmp_path / "p.csv", rows))
    with control_plane(home) as plane:
        airlock_project(plane, policy_engine(home))
        yield home, plane


def try_sign_in(
    world: tuple[Home, ControlPlane],
    number: str = ANNE,
    dob: tuple[str, str, str] = ANNE_DOB,
    postcode: str = ANNE_POSTCODE,
    *,
    client: str = "198.51.100.1",
    now: dt.datetime = T0,
    **rules: LockoutRule,
) -> page.SignedInPatient:
    home, plane = world
    day, month, year = dob
    return page.sign_in(
        home,
        plane,
        nhs_number=number,
        day=day,
        month=month,
        year=year,
        postcode=postcode,
        client=client,
        now=now,
        **rules,
    )


def assert_no_secrets(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text, "a value the patient typed leaked"


def audit_text(plane: ControlPlane) -> str:
    return "\n".join(f"{e.actor} {e.action} {e.subject} {e.details}" for e in plane.audit.events())


# --- ingest keeps the checks -------------------------------------------------------------


def test_ingest_keeps_one_check_per_patient_with_a_date_of_birth_and_postcode(
    world: tuple[Home, ControlPlane],
) -> None:
    home, _ = world
    table = delta.read(ingest.sign_in_path(home))
    linkage = LinkagePseudonymiser(home.master_key())
    assert sorted(table.column(PID).to_pylist()) == sorted(
        [linkage.pid(ANNE), linkage.pid(BEN)]
    )  # not the patient without a postcode
    assert all(re.fullmatch(r"[0-9a-f]{64}", c) for c in table.column("check").to_pylist())
    assert set(table.column("dataset").to_pylist()) == {"patients"}
    for column in table.column_names:
        for value in table.column(column).to_pylist():
            assert_no_secrets(str(value))


def test_the_checks_are_not_a_dataset_of_the_record_history(
    world: tuple[Home, ControlPlane],
) -> None:
    home, plane = world
    signed_in = try_sign_in(world)
    history = page.record_history(home, plane, signed_in)
    assert [d.name for d in history.datasets] == ["patients"]


# --- sign-in -----------------------------------------------------------------------------


def test_the_right_details_sign_in_and_are_audited_without_them(
    world: tuple[Home, ControlPlane],
) -> None:
    home, plane = world
    spaced = f"{ANNE[:3]} {ANNE[3:6]} {ANNE[6:]}"
    patient = try_sign_in(world, spaced, postcode="ls62qb")
    linkage = LinkagePseudonymiser(home.master_key())
    assert patient.pid == linkage.pid(ANNE)
    assert patient.subject == audit_subject(home.master_key(), patient.pid)
    [event] = [e for e in plane.audit.events() if e.action == page.SIGNED_IN]
    assert event.subject == patient.subject
    assert event.details == {"channel": "page"}
    assert patient.pid not in audit_text(plane)
    assert_no_secrets(audit_text(plane))


@pytest.mark.parametrize(
    ("number", "dob", "postcode"),
    [
        (ANNE, ("28", "3", "1980"), ANNE_POSTCODE),  # wrong day
        (ANNE, ANNE_DOB, "LS6 2QA"),  # wrong postcode
        (BEN, ANNE_DOB, ANNE_POSTCODE),  # someone else's number
        (NOT_HELD, ANNE_DOB, ANNE_POSTCODE),  # a number we hold nothing for
        (NO_POSTCODE, ("1", "1", "1990"), "LS6 2QB"),  # no postcode on record: no check
    ],
)
def test_anything_but_the_right_details_gets_the_same_words(
    world: tuple[Home, ControlPlane], number: str, dob: tuple[str, str, str], postcode: str
) -> None:
    _, plane = world
    with pytest.raises(page.SignInRefused) as refused:
        try_sign_in(world, number, dob, postcode)
    assert str(refused.value) == page.NO_MATCH_WORDS
    assert refused.value.status == 401
    [event] = [e for e in plane.audit.events() if e.action == page.SIGN_IN_REFUSED]
    assert event.details == {"reason": "no_match"}
    assert event.subject.startswith("patient:")
    assert_no_secrets(audit_text(plane))


def test_badly_formed_details_name_the_fields_not_the_values(
    world: tuple[Home, ControlPlane],
) -> None:
    _, plane = world
    bad_number = ANNE[:9] + str((int(ANNE[9]) + 1) % 10)
    with pytest.raises(InputError) as error:
        try_sign_in(world, bad_number, ("31", "2", "1980"), "QQ99")
    message = str(error.value)
    assert "NHS number" in message
    assert "date of birth" in message
    assert "postcode" in message
    assert bad_number not in message
    assert "QQ99" not in message
    [event] = [e for e in plane.audit.events() if e.action == page.SIGN_IN_REFUSED]
    assert event.subject == "patient:not-identified"
    assert event.details == {"reason": "invalid"}


def test_five_failures_lock_the_number_even_against_the_right_details(
    world: tuple[Home, ControlPlane],
) -> None:
    _, plane = world
    for attempt in range(4):
        with pytest.raises(page.SignInRefused) as refused:
            try_sign_in(world, postcode="LS6 2QA", now=T0 + dt.timedelta(minutes=attempt))
        assert refused.value.status == 401
    with pytest.raises(page.SignInRefused) as fifth:
        try_sign_in(world, postcode="LS6 2QA", now=T0 + dt.timedelta(minutes=4))
    assert fifth.value.status == 429
    assert fifth.value.until == T0 + dt.timedelta(minutes=64)
    assert "paused until 13:04 UTC" in str(fifth.value)
    with pytest.raises(page.SignInRefused) as locked:
        try_sign_in(world, now=T0 + dt.timedelta(minutes=30))  # the right details
    assert locked.value.status == 429
    reasons = [
        e.details["reason"] for e in plane.audit.events() if e.action == page.SIGN_IN_REFUSED
    ]
    assert reasons == ["no_match"] * 5 + ["locked"]
    # another patient's number is not locked
    try_sign_in(world, BEN, ("2", "11", "1975"), "SW1A 1AA", now=T0 + dt.timedelta(minutes=30))
    # and the lock ends when it said it would
    assert try_sign_in(world, now=T0 + dt.timedelta(minutes=64)).pid


def test_a_success_clears_the_count(world: tuple[Home, ControlPlane]) -> None:
    for attempt in range(4):
        with pytest.raises(page.SignInRefused):
            try_sign_in(world, postcode="LS6 2QA", now=T0 + dt.timedelta(minutes=attempt))
    try_sign_in(world, now=T0 + dt.timedelta(minutes=5))
    for attempt in range(4):
        with pytest.raises(page.SignInRefused) as refused:
            try_sign_in(world, postcode="LS6 2QA", now=T0 + dt.timedelta(minutes=6 + attempt))
        assert refused.value.status == 401  # never locked: four since the success


def test_one_client_trying_many_numbers_is_paused(world: tuple[Home, ControlPlane]) -> None:
    rule = LockoutRule(3, dt.timedelta(minutes=15), dt.timedelta(hours=1))
    guesses = [BEN, NOT_HELD, NO_POSTCODE]
    for number in guesses:
        with pytest.raises(page.SignInRefused):
            try_sign_in(world, number, client="203.0.113.9", client_rule=rule)
    with pytest.raises(page.SignInRefused) as paused:
        try_sign_in(world, client="203.0.113.9", client_rule=rule)  # even the right details
    assert paused.value.status == 429
    assert "this device or network" in str(paused.value)
    # another client is not paused
    assert try_sign_in(world, client="203.0.113.10", client_rule=rule).pid


def test_after_a_move_only_the_new_postcode_signs_in(
    world: tuple[Home, ControlPlane], tmp_path: Path
) -> None:
    home, _ = world
    moved = write_patients(tmp_path / "p2.csv", [(ANNE, "1980-03-27", "M1 1AE")])
    ingest.ingest_file(home, ingest.load_spec("patients"), moved)
    with pytest.raises(page.SignInRefused):
        try_sign_in(world)
    assert try_sign_in(world, postcode="M1 1AE").pid


# --- choices -----------------------------------------------------------------------------


def test_a_patient_opts_out_of_commercial_use_and_withdraws_it(
    world: tuple[Home, ControlPlane],
) -> None:
    home, plane = world
    patient = try_sign_in(world)
    version = page.change_choice(home, plane, patient, "commercial", None, opt_in=False)
    assert [(c.scope, c.target) for c in current_choices(home, patient.pid)] == [("commercial", "")]
    [event] = [e for e in plane.audit.events() if e.action == page.CHOICE_CHANGED]
    assert event.subject == patient.subject
    assert event.actor == patient.subject
    assert event.details == {
        "scope": "commercial",
        "target": "",
        "choice": "opt_out",
        "version": version,
        "channel": "page",
    }
    stored = delta.dataset(home.linked / "opt_out_choices").to_table(
        filter=pc.field(PID) == patient.pid
    )
    assert stored.column("source").to_pylist() == ["patient page"]
    page.change_choice(home, plane, patient, "commercial", None, opt_in=True)
    assert current_choices(home, patient.pid) == ()


def test_named_choices_must_name_something_listed(world: tuple[Home, ControlPlane]) -> None:
    home, plane = world
    patient = try_sign_in(world)
    targets = page.choice_targets(plane.list_projects())
    assert targets.organisations == ("Uni",)
    assert [p for p, _ in targets.projects] == ["diabetes"]
    page.change_choice(home, plane, patient, "project", "diabetes", opt_in=False)
    page.change_choice(home, plane, patient, "organisation", "Uni", opt_in=False)
    assert {(c.scope, c.target) for c in current_choices(home, patient.pid)} == {
        ("project", "diabetes"),
        ("organisation", "uni"),
    }
    with pytest.raises(InputError, match="projects listed"):
        page.change_choice(home, plane, patient, "project", "other-project", opt_in=False)
    with pytest.raises(InputError, match="name the organisation"):
        page.change_choice(home, plane, patient, "organisation", " ", opt_in=False)
    with pytest.raises(InputError, match="what the choice is about"):
        page.change_choice(home, plane, patient, "marketing", None, opt_in=False)


# --- the web page ------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> dt.datetime:
        return self.now


@pytest.fixture
def client(world: tuple[Home, ControlPlane]) -> Iterator[tuple[httpx.Client, Clock]]:
    home, _ = world
    clock = Clock()
    with (
        serve(patient_app(home, base="/services/patient", clock=clock)) as url,
        httpx.Client(base_url=url, follow_redirects=False, timeout=10) as c,
    ):
        yield c, clock


def sign_in_form(c: httpx.Client, **fields: str) -> dict[str, str]:
    start = c.get("/services/patient/")
    assert start.status_code == 200
    token = re.search(r'name="form_token" value="([^"]+)"', start.text)
    assert token is not None
    form = {
        "form_token": token.group(1),
        "nhs_number": ANNE,
        "day": ANNE_DOB[0],
        "month": ANNE_DOB[1],
        "year": ANNE_DOB[2],
        "postcode": ANNE_POSTCODE,
    }
    form.update(fields)
    return form


def csrf_of(html: str) -> str:
    token = re.search(r'name="csrf" value="([^"]+)"', html)
    assert token is not None
    return token.group(1)


def test_the_page_signs_in_shows_the_record_and_records_a_choice(
    client: tuple[httpx.Client, Clock], world: tuple[Home, ControlPlane]
) -> None:
    c, _ = client
    home, plane = world
    signed = c.post("/services/patient/sign-in", data=sign_in_form(c), follow_redirects=False)
    assert signed.status_code == 303
    assert signed.headers["location"] == "/services/patient/"
    cookie = signed.headers["set-cookie"]
    assert SESSION_COOKIE in cookie
    assert "httponly" in cookie.lower()
    assert "samesite=strict" in cookie.lower()
    record = c.get("/services/patient/")
    assert record.status_code == 200
    assert "Your health record in the Secure Data Environment" in record.text
    assert "GP-registered patients" in record.text  # the dataset's plain title
    assert "content-security-policy" in record.headers
    assert "script-src 'none'" in record.headers["content-security-policy"]
    assert_no_secrets(record.text)
    changed = c.post(
        "/services/patient/choices",
        data={"csrf": csrf_of(record.text), "choice": "opt_out", "scope": "commercial"},
        follow_redirects=True,
    )
    assert changed.status_code == 200
    assert "Your choice is recorded" in changed.text
    assert "next update of each project" in changed.text
    assert "No use of your record by projects with a commercial sponsor" in changed.text
    patient_pid = LinkagePseudonymiser(home.master_key()).pid(ANNE)
    assert [c.scope for c in current_choices(home, patient_pid)] == ["commercial"]
    views = [e for e in plane.audit.events() if e.action == "patient.history.viewed"]
    assert len(views) == 2
    assert {e.details["channel"] for e in views} == {"page"}


def test_wrong_details_on_the_page_get_the_same_words(
    client: tuple[httpx.Client, Clock],
) -> None:
    c, _ = client
    for number in (BEN, NOT_HELD):
        refused = c.post("/services/patient/sign-in", data=sign_in_form(c, nhs_number=number))
        assert refused.status_code == 401
        assert "We could not match these details" in refused.text
        assert f"{SESSION_COOKIE}=" not in refused.headers.get("set-cookie", "")
        assert_no_secrets(refused.text)


def test_forms_without_their_token_or_from_another_site_are_refused(
    client: tuple[httpx.Client, Clock], world: tuple[Home, ControlPlane]
) -> None:
    c, _ = client
    _, plane = world
    form = sign_in_form(c)
    no_token = c.post("/services/patient/sign-in", data={**form, "form_token": "forged"})
    assert no_token.status_code == 403
    cross = c.post("/services/patient/sign-in", data=form, headers={"sec-fetch-site": "cross-site"})
    assert cross.status_code == 403
    assert not [e for e in plane.audit.events() if e.action.startswith("patient.signin")]
    c.post("/services/patient/sign-in", data=form)
    forged = c.post(
        "/services/patient/choices",
        data={"csrf": "forged", "choice": "opt_out", "scope": "research"},
    )
    assert forged.status_code == 403
    assert not [e for e in plane.audit.events() if e.action == page.CHOICE_CHANGED]


def test_a_session_ends_at_sign_out_and_after_fifteen_idle_minutes(
    client: tuple[httpx.Client, Clock],
) -> None:
    c, clock = client
    c.post("/services/patient/sign-in", data=sign_in_form(c))
    record = c.get("/services/patient/")
    assert "Sign out" in record.text
    out = c.post(
        "/services/patient/sign-out", data={"csrf": csrf_of(record.text)}, follow_redirects=True
    )
    assert "See where your health record has been used" in out.text
    stolen = c.cookies.get(SESSION_COOKIE)
    assert stolen is None
    c.post("/services/patient/sign-in", data=sign_in_form(c))
    clock.now = T0 + dt.timedelta(minutes=14)
    assert "Sign out" in c.get("/services/patient/").text  # touched: idle clock restarts
    clock.now = T0 + dt.timedelta(minutes=28, seconds=59)
    assert "Sign out" in c.get("/services/patient/").text
    clock.now = T0 + dt.timedelta(minutes=45)
    assert "Sign out" not in c.get("/services/patient/").text


def test_a_session_lasts_at_most_an_hour(client: tuple[httpx.Client, Clock]) -> None:
    c, clock = client
    c.post("/services/patient/sign-in", data=sign_in_form(c))
    for minute in range(10, 60, 10):
        clock.now = T0 + dt.timedelta(minutes=minute)
        assert "Sign out" in c.get("/services/patient/").text
    clock.now = T0 + dt.timedelta(minutes=60)
    assert "Sign out" not in c.get("/services/patient/").text


def test_behind_the_hubs_proxy_the_client_is_the_address_the_proxy_saw() -> None:
    from starlette.requests import Request

    def request(peer: str, forwarded: str | None) -> Request:
        headers = [(b"x-forwarded-for", forwarded.encode())] if forwarded else []
        return Request({"type": "http", "client": (peer, 4321), "headers": headers})

    # configurable-http-proxy appends the address it saw; anything before it is the
    # client's own say-so
    chain = "198.51.100.66, 203.0.113.7"
    assert client_address(request("127.0.0.1", chain), behind_proxy=True) == "203.0.113.7"
    assert client_address(request("127.0.0.1", chain), behind_proxy=False) == "127.0.0.1"
    # trusted from the loopback (the proxy) only
    assert client_address(request("192.0.2.9", chain), behind_proxy=True) == "192.0.2.9"
    assert client_address(request("127.0.0.1", None), behind_proxy=True) == "127.0.0.1"


@pytest.mark.parametrize(
    ("args", "link"),
    [
        ([], "http://127.0.0.1:8801/"),
        (["--register-url", "https://register.example.org/"], "https://register.example.org/"),
    ],
)
def test_the_standalone_page_links_to_a_register_that_is_there(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str], link: str
) -> None:
    """`sde web patient` on its own (no hub, so no /services/register/ beside it) links to
    `sde web register`'s own address, or to the one given."""
    import uvicorn
    from click.testing import CliRunner

    from sde.cli import main

    home = init_home(tmp_path / "home")
    apps: list[object] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **_: apps.append(app))
    result = CliRunner().invoke(main, ["web", "patient", *args, "--home", str(home.root)])
    assert result.exit_code == 0, result.output
    with serve(apps[0]) as url, httpx.Client(base_url=url, timeout=10) as c:
        page = c.get("/")
    assert page.status_code == 200
    assert f'the <a href="{link}">public register</a>' in page.text
    assert "/services/register/" not in page.text


@pytest.mark.parametrize("given", ["javascript:alert(1)", "//elsewhere.example/", "register"])
def test_a_register_link_that_is_not_an_address_is_refused(tmp_path: Path, given: str) -> None:
    from click.testing import CliRunner

    from sde.cli import main

    home = init_home(tmp_path / "home")
    result = CliRunner().invoke(
        main, ["web", "patient", "--register-url", given, "--home", str(home.root)]
    )
    assert result.exit_code == 2
    assert "--register-url must be an http(s) address or a path starting with /" in result.output
