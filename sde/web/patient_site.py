"""The patient's record page: sign in, see where the record went, change choices.

Public (no JupyterHub sign-in): behind the hub it is the ``patient`` service at
``/services/patient/`` (``sde web patient --hub``, started by ``sde serve``). Server-rendered
(Jinja2), no scripts, the airlock page's security headers.

Sessions are held in this process's memory: a random token in an HttpOnly, SameSite=Strict
cookie (Secure over HTTPS) maps to the signed-in patient (``pid`` and keyed subject; no NHS
number). Idle 15 minutes, at most 60 minutes; sign-out ends it at once; a restart signs
everyone out. Every form carries a token (the sign-in form a double-submit token, signed-in
forms a per-session one) and cross-site posts are refused (``Sec-Fetch-Site``).

What the page does is done by :mod:`sde.services.patient_page` (sign-in, lock-out, the
history, choices), which audits every view and change.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from sde.adapters.sql import ControlPlane
from sde.domain.encoding import is_loopback
from sde.domain.optouts import Scope
from sde.domain.patient_sign_in import CLIENT_RULE, PATIENT_RULE, LockoutRule
from sde.errors import InputError, SdeError
from sde.patient import PURPOSE_WORDS, SPONSOR_WORDS, TEMPLATES, environment
from sde.services import patient_page as service
from sde.services.home import Home
from sde.services.patient_page import SignedInPatient, SignInRefused
from sde.services.wiring import control_plane
from sde.web.app import SecurityHeaders
from sde.web.patient_oidc import PatientOIDC, PatientOIDCError

SESSION_COOKIE = "sde_patient"
FORM_COOKIE = "sde_patient_form"
OIDC_COOKIE = "sde_patient_oidc"
IDLE = dt.timedelta(minutes=15)
LONGEST = dt.timedelta(minutes=60)
MAX_SESSIONS = 10_000
Clock = Callable[[], dt.datetime]

GENERAL_CHOICES: tuple[tuple[str, str], ...] = (
    (Scope.RESEARCH.value, "Opt out of use for research"),
    (Scope.PLANNING.value, "Opt out of use for planning health services"),
    (Scope.COMMERCIAL.value, "Opt out of use by commercial companies"),
)


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass(frozen=True)
class Session:
    patient: SignedInPatient
    csrf: str
    started: dt.datetime
    last_seen: dt.datetime

    def expires(self) -> dt.datetime:
        return min(self.last_seen + IDLE, self.started + LONGEST)


class Sessions:
    """Signed-in patients, by the SHA-256 of their cookie's token (the token itself is
    not kept). Bounded: the oldest are dropped past :data:`MAX_SESSIONS`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_hash: dict[str, Session] = {}

    @staticmethod
    def _hash(token: str) -> str:
        return hashlib.sha256(token.encode("utf-8")).hexdigest()

    def start(self, patient: SignedInPatient, now: dt.datetime) -> str:
        token = secrets.token_urlsafe(32)
        with self._lock:
            self._forget_expired(now)
            while len(self._by_hash) >= MAX_SESSIONS:
                self._by_hash.pop(next(iter(self._by_hash)))
            self._by_hash[self._hash(token)] = Session(patient, secrets.token_urlsafe(24), now, now)
        return token

    def get(self, token: str | None, now: dt.datetime) -> Session | None:
        """The session, touched; None if there is none or it has expired."""
        if not token:
            return None
        key = self._hash(token)
        with self._lock:
            session = self._by_hash.get(key)
            if session is None:
                return None
            if session.expires() <= now:
                del self._by_hash[key]
                return None
            session = replace(session, last_seen=now)
            self._by_hash[key] = session
            return session

    def end(self, token: str | None) -> None:
        if token:
            with self._lock:
                self._by_hash.pop(self._hash(token), None)

    def _forget_expired(self, now: dt.datetime) -> None:
        for key in [k for k, s in self._by_hash.items() if s.expires() <= now]:
            del self._by_hash[key]


def client_address(request: Request, *, behind_proxy: bool) -> str:
    """Who is asking, for the lock-out: the peer, or (behind the hub's proxy on this
    machine) the address the proxy saw, the last ``X-Forwarded-For`` entry."""
    peer = request.client.host if request.client else "unknown"
    if behind_proxy and is_loopback(peer):
        forwarded = request.headers.get("x-forwarded-for", "")
        last = forwarded.split(",")[-1].strip()
        if last:
            return last
    return peer


def patient_app(
    home: Home,
    *,
    base: str = "",
    clock: Clock = utc_now,
    behind_proxy: bool = False,
    register_url: str = "/services/register/",
    patient_rule: LockoutRule = PATIENT_RULE,
    client_rule: LockoutRule = CLIENT_RULE,
    oidc: PatientOIDC | None = None,
    oidc_name: str = "NHS login",
) -> FastAPI:
    """The patient's page over ``home``, served under ``base``. With ``oidc``, patients
    sign in only through that OpenID Connect provider (named ``oidc_name`` on the button);
    otherwise with their NHS number, date of birth and postcode."""
    if base and (not base.startswith("/") or base.endswith("/")):
        raise ValueError("base must start with / and not end with one")
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    app.add_middleware(SecurityHeaders)
    sessions = Sessions()
    env = environment()
    env.globals.update(
        base=base,
        register_url=register_url,
        sponsor_words=SPONSOR_WORDS,
        purpose_words=PURPOSE_WORDS,
    )
    cookie_path = f"{base}/"
    css = (TEMPLATES / "patient.css").read_bytes()

    @contextmanager
    def store() -> Iterator[ControlPlane]:
        with control_plane(home) as plane:
            yield plane

    def render(name: str, status: int = 200, **context: Any) -> HTMLResponse:
        context.setdefault("signed_in", False)
        context.setdefault("error", None)
        return HTMLResponse(env.get_template(name).render(**context), status_code=status)

    def secure(request: Request) -> bool:
        return request.url.scheme == "https" or (
            request.headers.get("x-forwarded-proto", "") == "https"
        )

    def cross_site(request: Request) -> bool:
        site = request.headers.get("sec-fetch-site")
        return site is not None and site not in {"same-origin", "none"}

    def refused(message: str) -> HTMLResponse:
        return render("page_error.html", 403, title="Refused", heading="Refused", message=message)

    def sign_in_page(request: Request, status: int = 200, error: str | None = None) -> HTMLResponse:
        token = request.cookies.get(FORM_COOKIE) or secrets.token_urlsafe(24)
        response = render(
            "page_signin.html",
            status,
            title="Sign in",
            error=error,
            form_token=token,
            oidc=oidc is not None,
            oidc_name=oidc_name,
            max_failures=patient_rule.max_failures,
            lock_minutes=int(patient_rule.lock.total_seconds() // 60),
        )
        response.set_cookie(
            FORM_COOKIE,
            token,
            httponly=True,
            samesite="strict",
            secure=secure(request),
            path=cookie_path,
        )
        return response

    def session_of(request: Request) -> tuple[str | None, Session | None]:
        token = request.cookies.get(SESSION_COOKIE)
        return token, sessions.get(token, clock())

    def record_page(
        session: Session, *, changed: bool = False, error: str | None = None, status: int = 200
    ) -> HTMLResponse:
        with store() as plane:
            history = service.record_history(home, plane, session.patient, now=clock())
            targets = service.choice_targets(plane.list_projects())
        return render(
            "page_record.html",
            status,
            title="Your record",
            signed_in=True,
            csrf=session.csrf,
            h=history,
            targets=targets,
            general=GENERAL_CHOICES,
            changed=changed,
            error=error,
            expires=session.expires().strftime("%H:%M UTC"),
        )

    @app.get(f"{base}/patient.css")
    async def stylesheet() -> Response:
        return Response(css, media_type="text/css")

    @app.get(f"{base}/")
    async def start(request: Request, changed: int = 0) -> Response:
        _, session = session_of(request)
        if session is None:
            return sign_in_page(request)
        return await run_in_threadpool(record_page, session, changed=bool(changed))

    if base:

        @app.get(base)
        async def bare() -> Response:
            return RedirectResponse(f"{base}/", status_code=307)

    async def sign_in_form(request: Request) -> Any:
        """The sign-in form's fields, or the page refusing it."""
        if cross_site(request):
            return refused("This form was sent from another site.")
        form = await request.form()
        token = request.cookies.get(FORM_COOKIE)
        sent = form.get("form_token")
        if not token or not isinstance(sent, str) or not hmac.compare_digest(token, sent):
            return sign_in_page(
                request, 403, "This form has expired. Please fill it in again and sign in."
            )
        return form

    def signed_in_response(request: Request, patient: SignedInPatient) -> Response:
        response = RedirectResponse(f"{base}/", status_code=303)
        response.set_cookie(
            SESSION_COOKIE,
            sessions.start(patient, clock()),
            httponly=True,
            samesite="strict",
            secure=secure(request),
            path=cookie_path,
        )
        response.delete_cookie(FORM_COOKIE, path=cookie_path)
        response.delete_cookie(OIDC_COOKIE, path=cookie_path)
        return response

    @app.post(f"{base}/oidc/start")
    async def oidc_start(request: Request) -> Response:
        if oidc is None:
            return refused("Signing in through an identity provider is not set up here.")
        form = await sign_in_form(request)
        if isinstance(form, Response):
            return form
        url, state = await oidc.start(clock())
        response = RedirectResponse(url, status_code=303)
        # Lax: the provider sends the browser back with a top-level GET from its own site.
        response.set_cookie(
            OIDC_COOKIE,
            state,
            max_age=600,
            httponly=True,
            samesite="lax",
            secure=secure(request),
            path=cookie_path,
        )
        return response

    @app.get(f"{base}/oidc/callback")
    async def oidc_callback(request: Request) -> Response:
        if oidc is None:
            return refused("Signing in through an identity provider is not set up here.")
        try:
            digits = await oidc.callback(
                dict(request.query_params), request.cookies.get(OIDC_COOKIE), clock()
            )
        except PatientOIDCError as exc:
            return sign_in_page(request, 401, f"{exc} Please try again.")

        def verified() -> SignedInPatient:
            with store() as plane:
                return service.sign_in_verified(
                    home, plane, nhs_number=digits, via="oidc", now=clock()
                )

        try:
            patient = await run_in_threadpool(verified)
        except InputError as exc:
            return sign_in_page(request, 401, str(exc))
        return signed_in_response(request, patient)

    @app.post(f"{base}/sign-in")
    async def sign_in(request: Request) -> Response:
        if oidc is not None:
            return refused("Sign in through the identity provider on the start page.")
        form = await sign_in_form(request)
        if isinstance(form, Response):
            return form

        def field(name: str) -> str:
            value = form.get(name)
            return value[:64] if isinstance(value, str) else ""

        def attempt() -> SignedInPatient:
            with store() as plane:
                return service.sign_in(
                    home,
                    plane,
                    nhs_number=field("nhs_number"),
                    day=field("day"),
                    month=field("month"),
                    year=field("year"),
                    postcode=field("postcode"),
                    client=client_address(request, behind_proxy=behind_proxy),
                    now=clock(),
                    patient_rule=patient_rule,
                    client_rule=client_rule,
                )

        try:
            patient = await run_in_threadpool(attempt)
        except SignInRefused as exc:
            return sign_in_page(request, exc.status, str(exc))
        except InputError as exc:
            return sign_in_page(request, 400, str(exc))
        return signed_in_response(request, patient)

    async def signed_in_form(request: Request) -> tuple[str | None, Session, Any] | Response:
        if cross_site(request):
            return refused("This form was sent from another site.")
        token, session = session_of(request)
        if session is None:
            return sign_in_page(request, 401, "You are signed out. Please sign in again.")
        form = await request.form()
        sent = form.get("csrf")
        if not isinstance(sent, str) or not hmac.compare_digest(sent, session.csrf):
            return refused("This form has expired or was not sent from this page.")
        return token, session, form

    @app.post(f"{base}/choices")
    async def choices(request: Request) -> Response:
        checked = await signed_in_form(request)
        if isinstance(checked, Response):
            return checked
        _, session, form = checked
        choice, scope, target = (form.get(k) for k in ("choice", "scope", "target"))
        if choice not in {"opt_out", "opt_in"} or not isinstance(scope, str):
            return await run_in_threadpool(
                record_page, session, error="Choose what to change.", status=400
            )

        def change() -> None:
            with store() as plane:
                service.change_choice(
                    home,
                    plane,
                    session.patient,
                    scope,
                    target if isinstance(target, str) and target else None,
                    opt_in=choice == "opt_in",
                    now=clock(),
                )

        try:
            await run_in_threadpool(change)
        except InputError as exc:
            return await run_in_threadpool(record_page, session, error=str(exc), status=400)
        return RedirectResponse(f"{base}/?changed=1", status_code=303)

    @app.post(f"{base}/sign-out")
    async def sign_out(request: Request) -> Response:
        checked = await signed_in_form(request)
        if isinstance(checked, Response):
            return checked
        token, _, _ = checked
        sessions.end(token)
        response = RedirectResponse(f"{base}/", status_code=303)
        response.delete_cookie(SESSION_COOKIE, path=cookie_path)
        return response

    @app.exception_handler(SdeError)
    async def sde_error(request: Request, exc: SdeError) -> Response:
        return render(
            "page_error.html",
            400,
            title="Something is not right",
            heading="Something is not right",
            message=str(exc),
        )

    return app
