"""The patient's page signing in through a real OpenID provider (panva's oidc-provider,
run by node on 127.0.0.1; see tests/oidc_kit.py): the page sends the patient to the
provider, takes them back, and shows the record of the NHS number the provider vouched
for. With a provider configured the details form is off."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlencode

import httpx
import pytest

from sde.adapters.sql import ControlPlane
from sde.domain.pseudonyms import LinkagePseudonymiser
from sde.services import ingest
from sde.services.home import Home, init_home
from sde.services.patient_page import SIGN_IN_REFUSED, SIGNED_IN
from sde.services.wiring import control_plane, policy_engine
from sde.web.patient_oidc import PatientOIDC, PatientOIDCSettings
from sde.web.patient_site import OIDC_COOKIE, SESSION_COOKIE, patient_app
from tests.browser import serve
from tests.factories import airlock_project
from tests.integration.test_patient_page import ANNE, write_patients
from tests.oidc_kit import Provider, oidc_provider, sign_in

pytestmark = [pytest.mark.e2e, pytest.mark.delta, pytest.mark.sql]


@pytest.fixture(scope="module")
def provider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Provider]:
    log = tmp_path_factory.mktemp("oidc") / "provider.log"
    with oidc_provider(log, nhs_number=ANNE) as running:
        yield running


@pytest.fixture
def world(tmp_path: Path) -> Iterator[tuple[Home, ControlPlane]]:
    home = init_home(tmp_path / "h")
    patients = write_patients(tmp_path / "p.csv", [(ANNE, "1980-03-27", "LS6 2QB")])
    ingest.ingest_file(home, ingest.load_spec("patients"), patients)
    with control_plane(home) as plane:
        airlock_project(plane, policy_engine(home))
        yield home, plane


@pytest.fixture
def page(world: tuple[Home, ControlPlane], provider: Provider) -> Iterator[httpx.Client]:
    home, _ = world
    oidc = PatientOIDC(
        PatientOIDCSettings(
            issuer=provider.issuer,
            client_id=provider.client_id,
            client_secret=provider.client_secret,
            redirect_url=provider.redirect_url,
        )
    )
    app = patient_app(home, base="/services/patient", oidc=oidc, oidc_name="NHS login")
    with serve(app) as url, httpx.Client(base_url=url, timeout=10) as client:
        yield client


def start(page: httpx.Client) -> str:
    """The start page's button: returns the provider's authorization URL."""
    first = page.get("/services/patient/")
    assert "Sign in with NHS login" in first.text
    assert 'name="nhs_number"' not in first.text  # the details form is off
    token = re.search(r'name="form_token" value="([^"]+)"', first.text)
    assert token is not None
    sent = page.post("/services/patient/oidc/start", data={"form_token": token.group(1)})
    assert sent.status_code == 303
    assert page.cookies.get(OIDC_COOKIE)
    return sent.headers["location"]


def test_a_patient_signs_in_through_the_provider_and_sees_their_record(
    page: httpx.Client, provider: Provider, world: tuple[Home, ControlPlane]
) -> None:
    home, plane = world
    authorize = start(page)
    assert authorize.startswith(provider.issuer)
    query = sign_in(authorize, "patient")
    back = page.get(f"/services/patient/oidc/callback?{urlencode(query)}")
    assert back.status_code == 303
    assert page.cookies.get(SESSION_COOKIE)
    record = page.get("/services/patient/")
    assert "Your health record in the Secure Data Environment" in record.text
    assert "GP-registered patients" in record.text
    assert ANNE not in record.text
    [event] = [e for e in plane.audit.events() if e.action == SIGNED_IN]
    assert event.details == {"channel": "page", "via": "oidc"}
    pid = LinkagePseudonymiser(home.master_key()).pid(ANNE)
    for e in plane.audit.events():
        assert ANNE not in f"{e.subject} {e.details}"
        assert pid not in f"{e.subject} {e.details}"


def test_a_callback_that_is_not_this_browsers_signs_no_one_in(
    page: httpx.Client, world: tuple[Home, ControlPlane]
) -> None:
    _, plane = world
    query = sign_in(start(page), "patient")
    page.cookies.delete(OIDC_COOKIE)
    back = page.get(f"/services/patient/oidc/callback?{urlencode(query)}")
    assert back.status_code == 401
    assert "try again" in back.text
    assert page.cookies.get(SESSION_COOKIE) is None
    assert not [e for e in plane.audit.events() if e.action == SIGNED_IN]


def test_the_details_form_is_refused_when_a_provider_is_configured(
    page: httpx.Client, world: tuple[Home, ControlPlane]
) -> None:
    _, plane = world
    posted = page.post(
        "/services/patient/sign-in",
        data={"nhs_number": ANNE, "day": "27", "month": "3", "year": "1980", "postcode": "LS6 2QB"},
    )
    assert posted.status_code == 403
    assert page.cookies.get(SESSION_COOKIE) is None
    assert not [e for e in plane.audit.events() if e.action in (SIGNED_IN, SIGN_IN_REFUSED)]
