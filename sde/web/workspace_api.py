"""The workspace API: what a workspace session asks of the sde service, with a token
instead of the home.

A session (a pod, a local process) gets its project's extract read-only, a scratch and
an outputs folder, and ``SDE_TOKEN`` (:mod:`sde.domain.workspace_tokens`): who, on which
project, until when. Everything that needs the control plane comes here, under
``{base}/api/workspace/``:

- ``POST open``: the extract's tables and their pinned Delta versions;
- ``POST refusals``: record a ``workspace.refused`` event (the rule, never the SQL);
- ``POST releases/preview``: the airlock's automatic checks on some files, nothing filed;
- ``POST releases``: file a release request.

Every call: the token (``Authorization: Bearer``) gives the person and the project (never
the body); then the ``sde.access`` policy decides ``open_workspace`` for them, through an
audited engine, so a suspension or a ban refuses at once whatever the token says. JSON in
and out, errors as ``{"error": ...}`` (and ``"reasons"`` for a refusal), never a page.
Nothing here logs a token, a body or a file's content; log lines name people, projects,
routes and counts. See docs/web.md, "Workspace API".
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import logging
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from sde.adapters.duckdb import RULES, statement_keyword
from sde.adapters.sql import ControlPlane
from sde.domain.audit import AuditEntry
from sde.domain.policy import OPEN_WORKSPACE, PolicyEngine
from sde.domain.sessions import LAB_RULES
from sde.domain.workspace_tokens import TokenError, WorkspaceClaim, token_key, verify
from sde.errors import InputError, NotFound, PolicyDenied, SdeError, StateError
from sde.services.access import decide_access
from sde.services.decisions import AuditedPolicyEngine
from sde.services.extract import read_manifest
from sde.services.home import Home
from sde.services.release import OutputFile
from sde.services.wiring import control_plane, release_service

log = logging.getLogger("sde.web.workspace")

Clock = Callable[[], dt.datetime]

PREFIX = "/api/workspace"
REFUSED = "workspace.refused"
MAX_BODY_BYTES = 25 * 1024 * 1024
MAX_FILES = 50
MAX_REASON = 120
MAX_STATEMENT = 40
MAX_SETTING = 64
MAX_FILE_NAME = 255
MAX_KIND = 64
MAX_TITLE = 300
MAX_TEXT = 10_000
# First words a refusal's ``statement`` may be besides SQL keywords (see
# ``sde.adapters.duckdb.statement_keyword``).
OTHER_STATEMENTS = frozenset({"", "other", "python"})
SHA256_HEX = re.compile(r"[0-9a-f]{64}")
SETTING = re.compile(r"[a-z_]{1,64}")
# A field name safe to repeat in an error; any other unknown key is "a field".
FIELD_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,39}")
BROWSER_SITES = frozenset({"none", "same-origin"})
FILE_KEYS = frozenset({"name", "content_b64", "kind", "metadata", "exception", "description"})


class ApiError(Exception):
    """An answer other than success, as ``{"error": message}`` (plus ``reasons``)."""

    def __init__(
        self,
        status: int,
        message: str,
        reasons: Sequence[str] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.reasons = None if reasons is None else list(reasons)
        self.headers = dict(headers or {})

    def response(self) -> JSONResponse:
        body: dict[str, Any] = {"error": self.message}
        if self.reasons is not None:
            body["reasons"] = self.reasons
        return JSONResponse(body, status_code=self.status, headers=self.headers)


def _bad(message: str) -> ApiError:
    return ApiError(400, message)


@dataclass(frozen=True)
class Call:
    """One authorised call: who, on which project, with the control plane open and a
    policy engine that records its decisions as theirs."""

    person: str
    project: str
    store: ControlPlane
    engine: PolicyEngine


Handler = Callable[[Call, dict[str, Any]], tuple[int, dict[str, Any] | None]]


def sde_error_response(exc: SdeError) -> JSONResponse:
    """A service's refusal as the web app maps it, in JSON."""
    if isinstance(exc, PolicyDenied):
        return ApiError(403, str(exc), exc.reasons).response()
    status = 400
    if isinstance(exc, StateError):
        status = 409
    elif isinstance(exc, NotFound):
        status = 404
    elif isinstance(exc, InputError):
        status = 400
    return ApiError(status, str(exc)).response()


# --- reading a request (pure helpers) ------------------------------------------------------


def bearer_token(header: str | None) -> str:
    """The token in an ``Authorization: Bearer`` header; 401 when there is none."""
    if not header:
        raise ApiError(401, "no workspace token: send Authorization: Bearer <SDE_TOKEN>")
    scheme, _, token = header.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or " " in token:
        raise ApiError(401, "the Authorization header is not a bearer workspace token")
    return token


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _bad(f"the body names {_field(key)} twice")
        out[key] = value
    return out


def _no_constant(name: str) -> Any:
    raise _bad("the body is not JSON (NaN and Infinity are not JSON)")


def parse_body(raw: bytes) -> dict[str, Any]:
    """The body as a JSON object; 400 when it is anything else."""
    if not raw.strip():
        return {}
    try:
        data = json.loads(
            raw.decode("utf-8"), object_pairs_hook=_no_duplicates, parse_constant=_no_constant
        )
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise _bad("the body is not JSON") from None
    if not isinstance(data, dict):
        raise _bad("the body must be a JSON object")
    return data


def _field(key: object) -> str:
    return repr(key) if isinstance(key, str) and FIELD_NAME.fullmatch(key) else "a field"


def only_keys(data: Mapping[str, Any], allowed: frozenset[str], where: str) -> None:
    unknown = sorted(k for k in data if k not in allowed)
    if unknown:
        raise _bad(f"{where} has {_field(unknown[0])}, which is not one it takes")


def _optional_text(data: Mapping[str, Any], key: str, where: str, *, limit: int) -> str | None:
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise _bad(f"{where}{key} must be a string or null")
    if len(value) > limit:
        raise _bad(f"{where}{key} is longer than {limit} characters")
    return value


def _text(data: Mapping[str, Any], key: str, where: str, *, limit: int) -> str:
    value = data.get(key)
    if value is None:
        raise _bad(f"{where}{key} is required (a string)")
    if not isinstance(value, str):
        raise _bad(f"{where}{key} must be a string")
    if len(value) > limit:
        raise _bad(f"{where}{key} is longer than {limit} characters")
    return value


def refusal_details(project: str, data: Mapping[str, Any]) -> dict[str, str]:
    """The ``workspace.refused`` details for a refusal body: the same shape
    ``sde.adapters.duckdb.Refusal.details()`` gives, with the project; null keys left
    out. Only a known rule, an SQL keyword, a SHA-256 and a setting's name are taken, so
    no free text (a value, a query) can reach the audit log this way."""
    only_keys(data, frozenset({"reason", "statement", "sql_sha256", "setting"}), "the refusal")
    reason = _text(data, "reason", "", limit=MAX_REASON)
    if reason not in (*RULES, *LAB_RULES):
        raise _bad(
            f"reason must be one of the workspace's rules: {', '.join((*RULES, *LAB_RULES))}"
        )
    statement = _text(data, "statement", "", limit=MAX_STATEMENT)
    if statement not in OTHER_STATEMENTS and statement_keyword(statement) != statement:
        raise _bad('statement must be an SQL keyword in capitals, "other", "python" or ""')
    digest = _optional_text(data, "sql_sha256", "", limit=64)
    if digest is not None and not SHA256_HEX.fullmatch(digest):
        raise _bad("sql_sha256 must be 64 lower-case hexadecimal characters or null")
    setting = _optional_text(data, "setting", "", limit=MAX_SETTING)
    if setting is not None and not SETTING.fullmatch(setting):
        raise _bad("setting must be a setting's name (a-z and _) or null")
    details = {"project": project, "reason": reason, "statement": statement}
    if digest is not None:
        details["sql_sha256"] = digest
    if setting is not None:
        details["setting"] = setting
    return details


def output_file(data: object, where: str) -> OutputFile:
    """One FILE of a body as an :class:`OutputFile`; 400 naming the field when wrong."""
    if not isinstance(data, dict):
        raise _bad(f"{where} must be an object")
    only_keys(data, FILE_KEYS, where)
    prefix = f"{where}."
    name = _text(data, "name", prefix, limit=MAX_FILE_NAME)
    if not name.strip():
        raise _bad(f"{prefix}name is empty")
    encoded = _text(data, "content_b64", prefix, limit=MAX_BODY_BYTES)
    try:
        content = base64.b64decode(encoded.encode("ascii"), validate=True)
    except (UnicodeEncodeError, binascii.Error, ValueError):
        raise _bad(f"{prefix}content_b64 is not standard base64") from None
    kind = _text(data, "kind", prefix, limit=MAX_KIND)
    metadata = data.get("metadata")
    if metadata is not None and not isinstance(metadata, dict):
        raise _bad(f"{prefix}metadata must be an object or null")
    return OutputFile(
        name=name,
        content=content,
        kind=kind,
        metadata=metadata,
        exception=_optional_text(data, "exception", prefix, limit=MAX_TEXT),
        description=_optional_text(data, "description", prefix, limit=MAX_TEXT),
    )


def output_files(data: Mapping[str, Any]) -> list[OutputFile]:
    """``files`` and (optional) ``code`` of a body, in that order; at most
    :data:`MAX_FILES` in all (413 beyond)."""
    files = data.get("files")
    if not isinstance(files, list) or not files:
        raise _bad("files must be a list of one or more files")
    code = data.get("code")
    if code is None:
        code = []
    if not isinstance(code, list):
        raise _bad("code must be a list of files or null")
    if len(files) + len(code) > MAX_FILES:
        raise ApiError(413, f"a request holds at most {MAX_FILES} files (code included)")
    return [
        *(output_file(f, f"files[{i}]") for i, f in enumerate(files)),
        *(output_file(f, f"code[{i}]") for i, f in enumerate(code)),
    ]


# --- the routes ----------------------------------------------------------------------------


def workspace_api(
    home: Home,
    *,
    base_engine: Callable[[], PolicyEngine],
    clock: Clock,
) -> APIRouter:
    """The routes under ``/api/workspace/`` over ``home``. ``base_engine`` gives the policy
    engine (each call wraps it to record decisions for the token's person); ``clock`` is
    the time tokens and decisions are judged at."""
    key = token_key(home.master_key())
    router = APIRouter(prefix=PREFIX)

    def authenticate(request: Request) -> WorkspaceClaim:
        site = request.headers.get("sec-fetch-site")
        if site is not None and site not in BROWSER_SITES:
            raise ApiError(403, "the workspace API does not answer pages from another site")
        token = bearer_token(request.headers.get("authorization"))
        try:
            return verify(key, token, clock())
        except TokenError as exc:
            raise ApiError(401, str(exc)) from None

    async def read_body(request: Request) -> bytes:
        declared = request.headers.get("content-length")
        if declared is not None:
            try:
                length = int(declared)
            except ValueError:
                raise _bad("the Content-Length header is not a number") from None
            if length > MAX_BODY_BYTES:
                raise ApiError(413, f"the body is larger than {MAX_BODY_BYTES} bytes")
        media = request.headers.get("content-type", "").split(";")[0].strip().lower()
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > MAX_BODY_BYTES:
                raise ApiError(413, f"the body is larger than {MAX_BODY_BYTES} bytes")
            chunks.append(chunk)
        raw = b"".join(chunks)
        if raw.strip() and media != "application/json":
            raise ApiError(415, "send the body as JSON (Content-Type: application/json)")
        return raw

    def authorised(claim: WorkspaceClaim, raw: bytes, handler: Handler) -> JSONResponse | Response:
        with control_plane(home) as store:
            engine = AuditedPolicyEngine(base_engine(), store.audit, claim.person)
            decision = decide_access(
                store,
                engine,
                person_id=claim.person,
                project_id=claim.project,
                action=OPEN_WORKSPACE,
                today=clock().date(),
            )
            if not decision.allow:
                log.info("workspace refused: %s on %s", claim.person, claim.project)
                raise ApiError(
                    403,
                    f"workspace for {claim.person} on project {claim.project} refused",
                    decision.reasons,
                )
            status, payload = handler(
                Call(claim.person, claim.project, store, engine), parse_body(raw)
            )
        if payload is None:
            return Response(status_code=status)
        return JSONResponse(payload, status_code=status)

    async def answer(request: Request, handler: Handler) -> Response:
        route = request.url.path.rsplit(PREFIX, 1)[-1]
        try:
            claim = authenticate(request)
            raw = await read_body(request)
            return await run_in_threadpool(authorised, claim, raw, handler)
        except ApiError as exc:
            if exc.status in (401, 403, 413, 415):
                log.info("workspace api %s: %d", route, exc.status)
            return exc.response()
        except SdeError as exc:
            log.info("workspace api %s refused: %s", route, type(exc).__name__)
            return sde_error_response(exc)
        except Exception:
            # The traceback names code, never request data; the caller learns only that
            # it failed.
            log.exception("internal error in the workspace api on %s", route)
            return ApiError(500, "internal error in the sde service; it has been logged").response()

    def do_open(call: Call, data: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        only_keys(data, frozenset(), "the open request")
        try:
            manifest = read_manifest(home, call.project)
        except NotFound:
            raise ApiError(409, f"project {call.project} has no extract yet") from None
        tables = {name: int(t.version) for name, t in sorted(manifest.tables.items())}
        log.info("workspace opened: %s on %s (%d tables)", call.person, call.project, len(tables))
        return 200, {"person": call.person, "project": call.project, "tables": tables}

    def do_refusal(call: Call, data: dict[str, Any]) -> tuple[int, None]:
        details = refusal_details(call.project, data)
        call.store.audit.append(
            AuditEntry(call.person, REFUSED, f"project:{call.project}", details)
        )
        log.info("workspace refusal recorded: %s on %s", call.person, call.project)
        return 204, None

    def do_preview(call: Call, data: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        only_keys(data, frozenset({"files", "code"}), "the preview")
        files = output_files(data)
        service = release_service(home, call.store, call.engine)
        checks = service.preview(call.project, call.person, files)
        return 200, {"checks": [c.to_json() for c in checks]}

    def do_request(call: Call, data: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        only_keys(data, frozenset({"title", "comment", "files", "code"}), "the release request")
        title = _text(data, "title", "", limit=MAX_TITLE)
        comment = _optional_text(data, "comment", "", limit=MAX_TEXT)
        files = output_files(data)
        service = release_service(home, call.store, call.engine)
        filed = service.request(call.project, call.person, files, title=title, comment=comment)
        log.info(
            "release request filed from a workspace: %s by %s on %s (%d files)",
            filed.id,
            call.person,
            call.project,
            len(files),
        )
        return 201, {
            "id": filed.id,
            "status": filed.status.value,
            "project": filed.project_id,
            "author": filed.author,
            "title": filed.title,
        }

    @router.post("/open", response_model=None)
    async def open_workspace(request: Request) -> Response:
        return await answer(request, do_open)

    @router.post("/refusals", response_model=None)
    async def record_refusal(request: Request) -> Response:
        return await answer(request, do_refusal)

    @router.post("/releases/preview", response_model=None)
    async def preview_release(request: Request) -> Response:
        return await answer(request, do_preview)

    @router.post("/releases", response_model=None)
    async def request_release(request: Request) -> Response:
        return await answer(request, do_request)

    known = {"/open", "/refusals", "/releases/preview", "/releases"}

    @router.api_route(
        "/{rest:path}",
        methods=["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"],
        response_model=None,
    )
    async def elsewhere(request: Request, rest: str) -> Response:
        # Anything else under the prefix answers in JSON too, never with a page.
        if f"/{rest}" in known:
            return ApiError(405, "use POST", headers={"allow": "POST"}).response()
        return ApiError(404, "no such workspace API route").response()

    return router
