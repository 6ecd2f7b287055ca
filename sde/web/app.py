"""The airlock's web page for output checkers and researchers: FastAPI, rendered on the
server with Jinja2, no scripts (the Content-Security-Policy forbids them).

Each request opens the control plane and the release service for the signed-in person
(``sde.services.wiring``); every policy decision is recorded in the audit chain as theirs.
The page only shows what :class:`~sde.services.release.ReleaseService` builds
(``queue``/``view``) and only changes anything through ``review``, so the service's rules
(blinding, authors never review, one vote each) are the page's rules too.

Sign-in: see :mod:`sde.web.auth` and docs/web.md. Nothing here logs a file's contents or a
cell value; log lines name people, requests and files only.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import quote

import jinja2
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from sde.adapters.sql import ControlPlane
from sde.domain.governance import effective_ban_until
from sde.domain.policy import PolicyEngine
from sde.domain.projects import RELEASE_REQUEST_ID, PersonRole
from sde.domain.releases import Vote
from sde.errors import InputError, NotFound, PolicyDenied, SdeError, StateError
from sde.services.decisions import AuditedPolicyEngine
from sde.services.home import Home
from sde.services.release import ReleaseService
from sde.services.release_views import STATUS_ORDER, CellView, FileView, QueueItem
from sde.services.wiring import control_plane, policy_engine, release_service
from sde.web.auth import NonceRegister, SignInError, WebAuth
from sde.web.hub import HubSignIn
from sde.web.workspace_api import workspace_api

log = logging.getLogger("sde.web")

HERE = Path(__file__).resolve().parent
SESSION_COOKIE = "sde_session"
Clock = Callable[[], dt.datetime]

# Every response carries these; a route may set a stricter Content-Security-Policy
# (a served figure does), which is then kept.
CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'none'; "
    "frame-ancestors 'none'; form-action 'self'"
)
SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-store"),
    (b"x-frame-options", b"DENY"),
)
# A served file (an SVG can hold scripts): nothing runs, nothing loads, no same origin.
FILE_CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; sandbox"
IMAGE_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg"}
SVG_TYPE = "image/svg+xml"
INTERNAL_ERROR = (
    b'<!doctype html><html lang="en-GB"><head><meta charset="utf-8">'
    b'<title>Something went wrong</title><link rel="stylesheet" href="/static/sde.css">'
    b'</head><body><main id="main"><h1>Something went wrong</h1><p>The page could not be '
    b"shown because of a fault in sde. It has been logged; please tell an operator.</p>"
    b"</main></body></html>"
)
OPEN_STATUSES = frozenset({"submitted", "in_review"})
OAUTH_STATE_COOKIE = "sde_oauth_state"
OAUTH_STATE_SECONDS = 600

STATUS_WORDS = {
    "draft": "draft",
    "submitted": "waiting for review",
    "in_review": "in review",
    "approved": "approved",
    "released": "released",
    "returned": "returned for changes",
    "rejected": "rejected",
    "withdrawn": "withdrawn",
    "approve": "approve",
    "return": "request changes",
    "reject": "reject",
}
RESULT_WORDS = {"pass": "pass", "review": "needs review", "fail": "fail"}
RESULT_MARKERS = {"pass": "✓", "review": "⚠", "fail": "✕"}


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


# --- presentation helpers (pure) ---------------------------------------------------------


def css_token(value: object) -> str:
    """A status as a class-name fragment; anything unexpected becomes ``unknown``."""
    text = str(value)
    return text if text in STATUS_WORDS or text in RESULT_WORDS else "unknown"


def rules_fired(grid: tuple[tuple[CellView, ...], ...]) -> list[tuple[str, int, str]]:
    """``(rule, cells, worst status)`` for each rule that fired in a table, by name."""
    counts: dict[str, int] = {}
    worst: dict[str, str] = {}
    for row in grid:
        for cell in row:
            for rule in cell.rules:
                counts[rule] = counts.get(rule, 0) + 1
                if STATUS_ORDER.get(cell.status, 2) >= STATUS_ORDER.get(worst.get(rule, ""), -1):
                    worst[rule] = cell.status
    return [(rule, counts[rule], worst[rule]) for rule in sorted(counts)]


def _shorttime(value: dt.datetime | None) -> str:
    if value is None:
        return ""
    return value.astimezone(dt.UTC).strftime("%d %b %Y %H:%M UTC")


def _isotime(value: dt.datetime | None) -> str:
    return "" if value is None else value.astimezone(dt.UTC).isoformat(timespec="seconds")


def templates(base: str = "") -> jinja2.Environment:
    """The page templates, autoescaped, failing on an undefined name; links start with
    ``base``."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["css_token"] = css_token
    env.filters["status_words"] = lambda s: STATUS_WORDS.get(str(s), str(s))
    env.filters["result_words"] = lambda s: RESULT_WORDS.get(str(s), str(s))
    env.filters["result_marker"] = lambda s: RESULT_MARKERS.get(str(s), "?")
    env.filters["urlpart"] = lambda s: quote(str(s), safe="")
    env.filters["shorttime"] = _shorttime
    env.filters["isotime"] = _isotime
    env.globals["rules_fired"] = rules_fired
    env.globals["base"] = base
    return env


@dataclass(frozen=True)
class Viewer:
    """The signed-in person, as the templates see them."""

    person: str
    roles: tuple[str, ...]
    cookie: str
    csrf: str
    session_nonce: str
    session_expires: dt.datetime

    @property
    def is_checker(self) -> bool:
        return PersonRole.OUTPUT_CHECKER.value in self.roles


@dataclass(frozen=True)
class QueueSection:
    id: str
    heading: str
    items: list[QueueItem]
    empty: str


class PageError(Exception):
    """An error shown as a page with a status code; the message is plain words."""

    def __init__(self, status: int, title: str, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.title = title
        self.message = message
        self.hint = hint


def _not_signed_in(message: str) -> PageError:
    return PageError(
        401,
        "You are not signed in",
        message,
        "Ask an operator for a new sign-in link (sde web link --person YOUR-ID).",
    )


# --- security headers --------------------------------------------------------------------

ASGIApp = Callable[
    [MutableMapping[str, Any], Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]],
    Awaitable[None],
]


class SecurityHeaders:
    """Adds the security headers to every HTTP response, errors and static files too."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(
        self,
        scope: MutableMapping[str, Any],
        receive: Callable[[], Awaitable[Any]],
        send: Callable[[Any], Awaitable[None]],
    ) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Any) -> None:
            if message["type"] == "http.response.start":
                headers = [
                    (k, v)
                    for k, v in message.get("headers", [])
                    if k.lower() not in {name for name, _ in SECURITY_HEADERS}
                ]
                if not any(k.lower() == b"content-security-policy" for k, _ in headers):
                    headers.append((b"content-security-policy", CSP.encode()))
                headers.extend(SECURITY_HEADERS)
                message = {**message, "headers": headers}
            await send(message)

        started = False

        async def send_tracking(message: Any) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send_with_headers(message)

        try:
            await self.app(scope, receive, send_tracking)
        except Exception:
            # An internal fault: the traceback goes to the log (code, never request data),
            # the person sees a page that says so, with the same headers.
            log.exception("internal error on %s %s", scope.get("method"), scope.get("path"))
            if started:
                raise
            await send_with_headers(
                {
                    "type": "http.response.start",
                    "status": 500,
                    "headers": [(b"content-type", b"text/html; charset=utf-8")],
                }
            )
            await send_with_headers({"type": "http.response.body", "body": INTERNAL_ERROR})


# --- the app -----------------------------------------------------------------------------


def create_app(
    home: Home,
    *,
    engine: PolicyEngine | None = None,
    clock: Clock = utc_now,
    base: str = "",
    hub: HubSignIn | None = None,
) -> FastAPI:
    """The web page over ``home``. ``engine`` is the policy engine to decide with (default:
    the one the home's settings name, built once at the first request); each request wraps
    it so its decisions are recorded in the audit chain for the signed-in person.

    ``base`` is the path the page is served under (``/services/airlock`` behind
    JupyterHub's proxy; nothing when served on its own). With ``hub``, people sign in
    through JupyterHub (OAuth) and one-time links are not accepted."""
    if base and (not base.startswith("/") or base.endswith("/")):
        raise ValueError("base must start with / and not end with one")
    auth = WebAuth(home.master_key())
    used_links = NonceRegister()
    signed_out = NonceRegister()
    env = templates(base)
    cookie_path = f"{base}/"
    engine_lock = threading.Lock()
    engines: list[PolicyEngine] = [engine] if engine is not None else []

    def base_engine() -> PolicyEngine:
        with engine_lock:
            if not engines:
                engines.append(policy_engine(home))
            return engines[0]

    @contextmanager
    def airlock(person: str) -> Iterator[tuple[ControlPlane, ReleaseService]]:
        with control_plane(home) as store:
            audited = AuditedPolicyEngine(base_engine(), store.audit, person)
            yield store, release_service(home, store, audited)

    def page(
        name: str, status: int = 200, viewer: Viewer | None = None, **context: Any
    ) -> HTMLResponse:
        html = env.get_template(name).render(viewer=viewer, **context)
        return HTMLResponse(html, status_code=status)

    def error_page(
        status: int,
        title: str,
        message: str,
        hint: str | None = None,
        viewer: Viewer | None = None,
        back: str | None = None,
    ) -> HTMLResponse:
        return page(
            "error.html",
            status,
            viewer,
            title=title,
            message=message,
            hint=hint,
            back=back,
        )

    def current_viewer(request: Request) -> Viewer:
        """The signed-in person; a 401 page when there is none or it is no longer valid."""
        cookie = request.cookies.get(SESSION_COOKIE)
        if not cookie:
            raise _not_signed_in("You need to sign in to see this page.")
        now = clock()
        try:
            claim = auth.check_session(cookie, now)
        except SignInError as exc:
            raise _not_signed_in(f"Your session is no longer valid: {exc}.") from None
        if signed_out.is_used(claim, now):
            raise _not_signed_in("You signed out of this session.")
        with control_plane(home) as store:
            try:
                person = store.get_person(claim.person)
            except NotFound:
                raise _not_signed_in(
                    f"There is no person {claim.person!r} in this environment any more."
                ) from None
            ban = effective_ban_until(person, store.get_organisation_ban(person.organisation))
        if ban is not None and ban > now:
            raise _not_signed_in(f"{claim.person} is banned from this environment.")
        return Viewer(
            person=person.id,
            roles=tuple(r.value for r in person.roles),
            cookie=cookie,
            csrf=auth.csrf_token(cookie),
            session_nonce=claim.nonce,
            session_expires=claim.expires,
        )

    def require_same_site(request: Request) -> None:
        # Defence in depth beside the CSRF token: browsers that say where a form came
        # from must say it came from this site.
        site = request.headers.get("sec-fetch-site")
        if site is not None and site not in {"same-origin", "none"}:
            raise PageError(403, "Refused", "This form was sent from another site.")

    async def require_csrf(request: Request, viewer: Viewer) -> Any:
        require_same_site(request)
        form = await request.form()
        token = form.get("csrf")
        if not auth.check_csrf(viewer.cookie, token if isinstance(token, str) else None):
            raise PageError(
                403,
                "Refused",
                "This form has expired or was not sent from this page "
                "(its security token is missing or wrong).",
                "Go back, reload the page and try again.",
            )
        return form

    def request_id_or_404(request_id: str) -> str:
        if not RELEASE_REQUEST_ID.fullmatch(request_id):
            raise NotFound(f"no release request {request_id!r}")
        return request_id

    app = FastAPI(
        title="sde airlock",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        swagger_ui_oauth2_redirect_url=None,
    )
    app.add_middleware(SecurityHeaders)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")

    # --- errors --------------------------------------------------------------------------

    async def viewer_if_any(request: Request) -> Viewer | None:
        try:
            return await run_in_threadpool(current_viewer, request)
        except (PageError, SdeError):
            return None

    @app.exception_handler(PageError)
    async def on_page_error(request: Request, exc: PageError) -> Response:
        if (
            hub is not None
            and exc.status == 401
            and request.method == "GET"
            and SESSION_COOKIE not in request.cookies
            and not request.url.path.endswith("/oauth_callback")
        ):
            # Not signed in to the page yet: off to the hub (which signs in if need be).
            return RedirectResponse(f"{base}/signin", status_code=303)
        viewer = None if exc.status == 401 else await viewer_if_any(request)
        hint, back = exc.hint, None
        if exc.status == 401 and hub is not None:
            hint = "Sign in again through JupyterHub."
            back = f"{base}/signin"
        return error_page(exc.status, exc.title, exc.message, hint, viewer, back)

    @app.exception_handler(SdeError)
    async def on_sde_error(request: Request, exc: SdeError) -> HTMLResponse:
        status, title = 400, "That cannot be done"
        if isinstance(exc, PolicyDenied):
            status, title = 403, "Refused"
        elif isinstance(exc, StateError):
            status, title = 409, "Not possible now"
        elif isinstance(exc, NotFound):
            status, title = 404, "Not found"
        elif isinstance(exc, InputError):
            status, title = 400, "Please check what you sent"
        log.info("refused %s %s: %s", request.method, request.url.path, type(exc).__name__)
        back = request.url.path if request.method == "POST" else None
        if back and back.endswith("/review"):
            back = back.removesuffix("/review")
        return error_page(status, title, str(exc), None, await viewer_if_any(request), back)

    @app.exception_handler(StarletteHTTPException)
    async def on_http_error(request: Request, exc: StarletteHTTPException) -> HTMLResponse:
        title = "Not found" if exc.status_code == 404 else "Error"
        message = "There is no such page." if exc.status_code == 404 else str(exc.detail)
        return error_page(exc.status_code, title, message, None, await viewer_if_any(request))

    @app.exception_handler(RequestValidationError)
    async def on_bad_request(request: Request, exc: RequestValidationError) -> HTMLResponse:
        return error_page(400, "Please check what you sent", "The request was not understood.")

    # --- sign-in -------------------------------------------------------------------------

    def check_link(token: str) -> tuple[str, dt.datetime]:
        if hub is not None:
            raise PageError(404, "Not found", "Sign in through JupyterHub.")
        now = clock()
        try:
            claim = auth.check_link(token, now)
        except SignInError as exc:
            raise _not_signed_in(f"The sign-in link cannot be used: {exc}.") from None
        if used_links.is_used(claim, now):
            raise _not_signed_in(
                "The sign-in link cannot be used: it has been used already (each link works once)."
            )
        check_person(claim.person)
        return claim.person, claim.expires

    def check_person(person: str) -> None:
        with control_plane(home) as store:
            try:
                store.get_person(person)
            except NotFound:
                raise _not_signed_in(
                    f"You cannot sign in: there is no person {person!r} in this environment."
                ) from None

    @app.get("/favicon.ico", response_model=None)
    def favicon() -> Response:
        return Response(status_code=204)

    @app.get("/", response_model=None)
    def index(request: Request) -> Response:
        try:
            current_viewer(request)
        except PageError:
            return RedirectResponse(f"{base}/signin", status_code=303)
        return RedirectResponse(f"{base}/queue", status_code=303)

    @app.get("/signin", response_model=None)
    def signin_page(request: Request, token: str | None = None) -> Response:
        if hub is not None:
            return hub_redirect(hub, request)
        if not token:
            signed = request.query_params.get("signed_out") == "1"
            return page("signin.html", title="Sign in", signed_out=signed)
        # The link only shows a button: following it (or a mail scanner fetching it)
        # signs no one in and does not use it up; the button's POST does.
        person, expires = check_link(token)
        return page(
            "signin_confirm.html",
            title="Sign in",
            person=person,
            expires=_shorttime(expires).removesuffix(" UTC"),
            token=token,
        )

    def start_session(request: Request, response: Response, person: str, now: dt.datetime) -> None:
        cookie, expires = auth.session_cookie(person, now)
        response.set_cookie(
            SESSION_COOKIE,
            cookie,
            max_age=int((expires - now).total_seconds()),
            path=cookie_path,
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
        )

    @app.post("/signin", response_model=None)
    async def signin(request: Request) -> Response:
        if hub is not None:
            raise PageError(404, "Not found", "Sign in through JupyterHub.")
        require_same_site(request)
        form = await request.form()
        token = form.get("token")
        if not isinstance(token, str) or not token:
            raise _not_signed_in("The sign-in form had no sign-in link in it.")
        person, _ = await run_in_threadpool(check_link, token)
        now = clock()
        claim = auth.check_link(token, now)
        if not used_links.use(claim, now):
            raise _not_signed_in(
                "The sign-in link cannot be used: it has been used already (each link works once)."
            )
        response = RedirectResponse(f"{base}/queue", status_code=303)
        start_session(request, response, person, now)
        log.info("signed in: %s", person)
        return response

    @app.post("/signout", response_model=None)
    async def signout(request: Request) -> Response:
        viewer = await run_in_threadpool(current_viewer, request)
        await require_csrf(request, viewer)
        now = clock()
        claim = auth.check_session(viewer.cookie, now)
        signed_out.use(claim, now)
        after = hub.logout_url if hub is not None else f"{base}/signin?signed_out=1"
        response = RedirectResponse(after, status_code=303)
        response.delete_cookie(SESSION_COOKIE, path=cookie_path, httponly=True, samesite="strict")
        log.info("signed out: %s", viewer.person)
        return response

    # --- the queue and a request ---------------------------------------------------------

    @app.get("/queue", response_model=None)
    def queue(request: Request) -> Response:
        viewer = current_viewer(request)
        with airlock(viewer.person) as (_store, service):
            items = service.queue(viewer.person)
        if viewer.is_checker:
            sections = [
                QueueSection(
                    "open",
                    "Waiting for review",
                    [i for i in items if i.status in OPEN_STATUSES and not i.viewer_is_author],
                    "Nothing is waiting for review.",
                ),
                QueueSection(
                    "decided",
                    "Decided recently",
                    [i for i in items if i.status not in OPEN_STATUSES and not i.viewer_is_author],
                    "No requests were decided recently.",
                ),
            ]
            own = [i for i in items if i.viewer_is_author]
            if own:
                sections.append(QueueSection("mine", "Your own requests", own, ""))
        else:
            sections = [QueueSection("mine", "Your requests", items, "You have no requests.")]
        return page("queue.html", viewer=viewer, title="Release requests", sections=sections)

    @app.get("/requests/{request_id}", response_model=None)
    def show_request(request: Request, request_id: str) -> Response:
        viewer = current_viewer(request)
        request_id_or_404(request_id)
        with airlock(viewer.person) as (_store, service):
            view = service.view(request_id, viewer.person)
        notice = (
            "Your review has been recorded."
            if request.query_params.get("reviewed") == "1"
            else None
        )
        return page("request.html", viewer=viewer, title=view.title, view=view, notice=notice)

    @app.get("/requests/{request_id}/files/{name}", response_model=None)
    def request_file(request: Request, request_id: str, name: str) -> Response:
        viewer = current_viewer(request)
        request_id_or_404(request_id)
        with airlock(viewer.person) as (_store, service):
            # view() and file_content() both refuse anyone but checkers and the author.
            file = _image_file(service.view(request_id, viewer.person).files, name)
            _kind, content = service.file_content(request_id, file.name, viewer.person)
        suffix = PurePosixPath(file.name).suffix.lower()
        media_type = SVG_TYPE if suffix == ".svg" else IMAGE_TYPES[suffix]
        return Response(
            content,
            media_type=media_type,
            headers={
                "content-disposition": f"inline; filename*=UTF-8''{quote(file.name)}",
                "content-security-policy": FILE_CSP,
            },
        )

    @app.post("/requests/{request_id}/review", response_model=None)
    async def review(request: Request, request_id: str) -> Response:
        viewer = await run_in_threadpool(current_viewer, request)
        request_id_or_404(request_id)
        form = await require_csrf(request, viewer)
        decisions, comment = parse_review_form(form.multi_items())

        def record() -> str:
            from sde.services.release import FileDecision

            with airlock(viewer.person) as (_store, service):
                status = service.review(
                    request_id,
                    viewer.person,
                    {name: FileDecision(vote, note) for name, (vote, note) in decisions.items()},
                    comment,
                )
            return str(status.value)

        status = await run_in_threadpool(record)
        log.info("review recorded: %s on %s, now %s", viewer.person, request_id, status)
        return RedirectResponse(f"{base}/requests/{quote(request_id)}?reviewed=1", status_code=303)

    @app.post("/requests/{request_id}/withdraw", response_model=None)
    async def withdraw(request: Request, request_id: str) -> Response:
        viewer = await run_in_threadpool(current_viewer, request)
        request_id_or_404(request_id)
        await require_csrf(request, viewer)

        def record() -> None:
            with airlock(viewer.person) as (_store, service):
                service.withdraw(request_id, viewer.person)

        await run_in_threadpool(record)
        log.info("request withdrawn: %s by %s", request_id, viewer.person)
        return RedirectResponse(f"{base}/requests/{quote(request_id)}", status_code=303)

    # --- sign-in through JupyterHub --------------------------------------------------------

    def hub_redirect(hub: HubSignIn, request: Request) -> Response:
        """Start the OAuth code flow (with PKCE) at the hub; the state ties the answer to
        this browser (a cookie) and this server (remembered until it is used)."""
        state, location = hub.start(clock())
        response = RedirectResponse(location, status_code=303)
        response.set_cookie(
            OAUTH_STATE_COOKIE,
            state,
            max_age=OAUTH_STATE_SECONDS,
            path=cookie_path,
            httponly=True,
            samesite="lax",  # it must come back with the hub's redirect
            secure=request.url.scheme == "https",
        )
        return response

    if hub is not None:
        signing_in: HubSignIn = hub

        @app.get("/oauth_callback", response_model=None)
        async def oauth_callback(request: Request) -> Response:
            state = request.query_params.get("state") or ""
            code = request.query_params.get("code") or ""
            if request.query_params.get("error"):
                raise _not_signed_in("JupyterHub did not sign you in.")
            if not state or state != request.cookies.get(OAUTH_STATE_COOKIE) or not code:
                raise _not_signed_in(
                    "The answer from JupyterHub does not belong to this browser's sign-in."
                )
            person = await signing_in.finish(state, code, clock())
            if person is None:
                raise _not_signed_in("JupyterHub's sign-in could not be completed.")
            check_person(person)
            now = clock()
            response = RedirectResponse(f"{base}/queue", status_code=303)
            response.delete_cookie(OAUTH_STATE_COOKIE, path=cookie_path)
            start_session(request, response, person, now)
            log.info("signed in through the hub: %s", person)
            return response

    # The workspace API (bearer tokens, JSON errors): docs/web.md, "Workspace API".
    app.include_router(workspace_api(home, base_engine=base_engine, clock=clock))

    if not base:
        return app
    outer = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    outer.add_middleware(SecurityHeaders)
    outer.mount(base, app)
    return outer


def _image_file(files: tuple[FileView, ...], name: str) -> FileView:
    for file in files:
        if file.name == name:
            suffix = PurePosixPath(file.name).suffix.lower()
            if file.is_image and (suffix in IMAGE_TYPES or suffix == ".svg"):
                return file
            break
    raise NotFound(f"no figure {name!r} in this request")


def parse_review_form(
    items: list[tuple[str, Any]],
) -> tuple[dict[str, tuple[Vote, str | None]], str | None]:
    """``decision:<file>``, ``comment:<file>`` and ``comment`` from the review form, as
    ``({file: (vote, comment)}, overall comment)``. Blank comments are ``None``."""
    decisions: dict[str, Vote] = {}
    notes: dict[str, str | None] = {}
    comment: str | None = None
    for key, value in items:
        if not isinstance(value, str):
            raise InputError("the review form takes text fields only")
        text = value.strip() or None
        if key.startswith("decision:"):
            name = key.removeprefix("decision:")
            if name in decisions:
                raise InputError(f"two decisions were sent for {name}")
            try:
                decisions[name] = Vote(value)
            except ValueError:
                raise InputError(
                    f"the decision on {name} must be approve, return or reject"
                ) from None
        elif key.startswith("comment:"):
            notes[key.removeprefix("comment:")] = text
        elif key == "comment":
            comment = text
        elif key != "csrf":
            raise InputError("the review form had a field it does not know")
    if not decisions:
        raise InputError("choose a decision (approve, request changes or reject) for each file")
    undecided = sorted(name for name, note in notes.items() if note and name not in decisions)
    if undecided:
        raise InputError(f"choose a decision on {undecided[0]} as well as a comment")
    return {name: (vote, notes.get(name)) for name, vote in decisions.items()}, comment
