"""The session's client for the sde service's workspace API (service mode).

A workspace session that is not given the sde home (a pod in a cluster) gets its
project's extract as a read-only folder (``SDE_EXTRACT``) or, with the lake on object
storage, as the extract's URL (``SDE_EXTRACT=s3://…/projects/<id>/extract``) with the
store's options in the standard variables (:func:`extract_location`), a scratch folder
(``SDE_SCRATCH``), an outputs folder (``SDE_OUTPUTS``), the sde service's address
(``SDE_API_URL``) and a token scoped to one person and one project (``SDE_TOKEN``).
Everything that needs the control plane goes through :class:`WorkspaceService`: opening
the extract (the service asks the ``sde.access`` policy, and answers with the tables'
pinned versions), recording a refused DuckDB operation in the audit log, and previewing
or filing a release request. The person and the project come from the token, never
from what the client sends.

Errors: 401/403 → ``PolicyDenied`` (with the service's reasons), 400/413 → ``InputError``,
404 → ``NotFound``, 409 → ``StateError``, unreachable or answering nonsense →
``ConfigError`` naming ``SDE_API_URL``. The token is never put in a message, a log line
or a ``repr``; redirects are not followed (a redirect would carry it elsewhere).
"""

from __future__ import annotations

import base64
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

import requests

from sde.adapters.delta import REMOTE_SCHEMES, Location, RemoteTable
from sde.adapters.duckdb import Refusal
from sde.domain.disclosure import CheckResult, CheckStatus
from sde.domain.releases import Status
from sde.errors import ConfigError, InputError, NotFound, PolicyDenied, SdeError, StateError
from sde.services.release import FileCheck, OutputFile

__all__ = [
    "API_URL_ENV",
    "EXTRACT_ENV",
    "OUTPUTS_ENV",
    "TOKEN_ENV",
    "FiledRequest",
    "WorkspaceService",
    "extract_location",
    "file_check_from_json",
    "from_environment",
    "service_mode",
]

API_URL_ENV: Final = "SDE_API_URL"
TOKEN_ENV: Final = "SDE_TOKEN"  # noqa: S105 - the variable's name, not a token
EXTRACT_ENV: Final = "SDE_EXTRACT"
OUTPUTS_ENV: Final = "SDE_OUTPUTS"

MAX_FILES: Final = 50
MAX_BODY_BYTES: Final = 25 * 1024 * 1024
CONNECT_TIMEOUT_S: Final = 10.0
READ_TIMEOUT_S: Final = 120.0

_TABLE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
_MAX_ERROR_CHARS = 500


@dataclass(frozen=True)
class FiledRequest:
    """A release request the service filed: what a notebook needs to follow it up."""

    id: str
    status: Status
    project_id: str
    author: str
    title: str


class _Bearer(requests.auth.AuthBase):
    """Sets the ``Authorization`` header (an auth object, so ``~/.netrc`` is not consulted
    and cannot replace it)."""

    def __init__(self, token: str) -> None:
        self._token = token

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        r.headers["Authorization"] = f"Bearer {self._token}"
        return r

    def __repr__(self) -> str:
        return "<bearer token hidden>"


class WorkspaceService:
    """A typed client over the workspace API at ``api_url`` (the airlock web app's base,
    e.g. ``http://127.0.0.1:8803/services/airlock``), authenticated by ``token``."""

    def __init__(
        self, api_url: str, token: str, *, session: requests.Session | None = None
    ) -> None:
        parts = urlsplit(api_url.strip())
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ConfigError(f"{API_URL_ENV} must be an http(s) address of the sde service")
        if parts.query or parts.fragment or parts.username or parts.password:
            raise ConfigError(
                f"{API_URL_ENV} must be a plain address (no query, fragment or credentials)"
            )
        if not token or not token.strip():
            raise ConfigError(f"{TOKEN_ENV} is empty")
        self.api_url = api_url.strip().rstrip("/")
        self._token = token.strip()
        self._session = session or requests.Session()

    def __repr__(self) -> str:
        return f"WorkspaceService(api_url={self.api_url!r}, token=<hidden>)"

    # --- the four calls -----------------------------------------------------------------

    def open(self) -> tuple[str, str, dict[str, int]]:
        """Ask to open the workspace: (person, project, {table: pinned Delta version})."""
        body = self._call("open", {}, expect=200)
        person, project, tables = body.get("person"), body.get("project"), body.get("tables")
        if not isinstance(person, str) or not isinstance(project, str):
            raise self._nonsense("open")
        if not isinstance(tables, Mapping):
            raise self._nonsense("open")
        versions: dict[str, int] = {}
        for name, version in tables.items():
            if not isinstance(name, str) or not _TABLE_NAME.match(name):
                raise self._nonsense("open")
            if isinstance(version, bool) or not isinstance(version, int) or version < 0:
                raise self._nonsense("open")
            versions[name] = version
        return person, project, versions

    def record_refusal(self, refusal: Refusal) -> None:
        """Have the service write a ``workspace.refused`` audit event for ``refusal``."""
        self._call(
            "refusals",
            {
                "reason": refusal.rule,
                "statement": refusal.statement,
                "sql_sha256": refusal.sql_sha256,
                "setting": refusal.setting,
            },
            expect=204,
        )

    def preview(self, files: Sequence[OutputFile]) -> list[dict[str, Any]]:
        """The airlock's checks on ``files`` (``FileCheck.to_json()`` each); nothing filed."""
        body = self._call("releases/preview", {"files": _encode_files(files)}, expect=200)
        checks = body.get("checks")
        if not isinstance(checks, list) or not all(isinstance(c, Mapping) for c in checks):
            raise self._nonsense("releases/preview")
        return [dict(c) for c in checks]

    def request(
        self, files: Sequence[OutputFile], title: str, comment: str | None = None
    ) -> FiledRequest:
        """File a release request with ``files`` (checked and submitted by the service)."""
        body = self._call(
            "releases",
            {"title": title, "comment": comment, "files": _encode_files(files)},
            expect=201,
        )
        try:
            return FiledRequest(
                id=_text(body, "id"),
                status=Status(_text(body, "status")),
                project_id=_text(body, "project"),
                author=_text(body, "author"),
                title=_text(body, "title"),
            )
        except (ValueError, TypeError):
            raise self._nonsense("releases") from None

    # --- transport ----------------------------------------------------------------------

    def _call(self, route: str, payload: Mapping[str, Any], *, expect: int) -> dict[str, Any]:
        url = f"{self.api_url}/api/workspace/{route}"
        try:
            response = self._session.post(
                url,
                json=dict(payload),
                auth=_Bearer(self._token),
                headers={"Accept": "application/json"},
                timeout=(CONNECT_TIMEOUT_S, READ_TIMEOUT_S),
                allow_redirects=False,
            )
        except requests.RequestException as exc:
            # ``from None``: a requests exception holds the prepared request, headers and all.
            raise ConfigError(
                f"the sde service could not be reached at {self.api_url} ({API_URL_ENV}): "
                f"{type(exc).__name__}"
            ) from None
        if response.status_code == expect:
            if expect == 204:
                return {}
            body = self._json(response)
            if body is None:
                raise self._nonsense(route)
            return body
        raise self._error(route, response)

    def _json(self, response: requests.Response) -> dict[str, Any] | None:
        try:
            body = response.json()
        except ValueError:
            return None
        return body if isinstance(body, dict) else None

    def _error(self, route: str, response: requests.Response) -> SdeError:
        code = response.status_code
        body = self._json(response) or {}
        message = self._clean(body.get("error"))
        reasons_value = body.get("reasons")
        reasons = (
            [self._clean(r) or "" for r in reasons_value if isinstance(r, str)]
            if isinstance(reasons_value, list)
            else []
        )
        if code == 401:
            return PolicyDenied(
                "the sde service", [message or "the workspace token was not accepted"]
            )
        if code == 403:
            if message and message.endswith(" refused"):
                return PolicyDenied(message.removesuffix(" refused"), reasons)
            return PolicyDenied("the sde service", [message or "forbidden", *reasons])
        if code in (400, 413, 422):
            return InputError(message or f"the sde service refused the {route} call (HTTP {code})")
        if code == 404 and message:
            return NotFound(message)
        if code == 409:
            return StateError(message or f"the sde service cannot do {route} now (HTTP {code})")
        return ConfigError(
            f"the sde service at {self.api_url} ({API_URL_ENV}) answered HTTP {code} to "
            f"{route}" + (f": {message}" if message else "")
        )

    def _clean(self, value: object) -> str | None:
        """A message from the service, shortened, with the token cut out should it appear."""
        if not isinstance(value, str) or not value.strip():
            return None
        text = value.strip()[:_MAX_ERROR_CHARS]
        if self._token in text:
            text = text.replace(self._token, "<token>")
        return text

    def _nonsense(self, route: str) -> ConfigError:
        return ConfigError(
            f"the sde service at {self.api_url} ({API_URL_ENV}) gave an answer to {route} "
            "that is not the workspace API's"
        )


def _text(body: Mapping[str, Any], key: str) -> str:
    value = body.get(key)
    if not isinstance(value, str):
        raise TypeError(key)
    return value


def _encode_files(files: Sequence[OutputFile]) -> list[dict[str, Any]]:
    if len(files) > MAX_FILES:
        raise InputError(f"a release request holds at most {MAX_FILES} files ({len(files)} given)")
    encoded = []
    size = 0
    for f in files:
        file = f.normalised()
        content = base64.b64encode(file.content).decode("ascii")
        size += len(content)
        if size > MAX_BODY_BYTES:
            raise InputError(
                f"the files of a release request may come to at most "
                f"{MAX_BODY_BYTES // (1024 * 1024)} MB (base64-encoded); {file.name} goes over"
            )
        encoded.append(
            {
                "name": file.name,
                "content_b64": content,
                "kind": file.kind,
                "metadata": dict(file.metadata) if file.metadata is not None else None,
                "exception": file.exception,
                "description": file.description,
            }
        )
    return encoded


def file_check_from_json(value: Mapping[str, Any]) -> FileCheck:
    """A :class:`FileCheck` from its ``to_json()`` form (as the service sends it)."""
    try:
        checks = tuple(
            CheckResult(
                name=str(c["name"]),
                status=CheckStatus(c["status"]),
                message=str(c["message"]),
                details=dict(c.get("details") or {}),
            )
            for c in value["checks"]
        )
        exception = value.get("exception")
        return FileCheck(
            name=str(value["name"]),
            kind=str(value["kind"]),
            checks=checks,
            exception=str(exception) if exception is not None else None,
            rows=int(value.get("rows") or 0),
            cells=int(value.get("cells") or 0),
            blocking=tuple(str(b) for b in value.get("blocking") or ()),
        )
    except (KeyError, TypeError, ValueError, AttributeError):
        raise ConfigError(
            f"the sde service ({API_URL_ENV}) sent a file check that is not the workspace API's"
        ) from None


def service_mode(home: object = None) -> bool:
    """Whether the session talks to the sde service instead of opening a home: no
    ``home`` given, and ``SDE_API_URL`` and ``SDE_TOKEN`` set."""
    return home is None and bool(os.environ.get(API_URL_ENV)) and bool(os.environ.get(TOKEN_ENV))


def from_environment() -> WorkspaceService:
    """The client for this session, from ``SDE_API_URL`` and ``SDE_TOKEN``."""
    url = os.environ.get(API_URL_ENV)
    token = os.environ.get(TOKEN_ENV)
    if not url:
        raise ConfigError(f"set {API_URL_ENV} to the sde service's address")
    if not token:
        raise ConfigError(f"set {TOKEN_ENV} to the workspace token the spawner gave the session")
    return WorkspaceService(url, token)


def required_folder(variable: str) -> str:
    """The value of ``variable`` (a folder the spawner gives a session in service mode)."""
    value = os.environ.get(variable)
    if not value:
        raise ConfigError(
            f"{variable} is not set: a workspace session without the sde home needs it "
            "(the spawner sets it)"
        )
    return value


def extract_location(environ: Mapping[str, str]) -> Location:
    """The session's extract from ``SDE_EXTRACT``: a folder, or an object-storage URL
    (``s3://``, ``az://``, ``abfss://``, ``gs://``) read with the store's options from
    the session's standard variables: ``AWS_ENDPOINT_URL``, ``AWS_REGION``,
    ``AWS_ALLOW_HTTP``, ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``,
    ``AWS_SESSION_TOKEN`` (and the role/web-identity ones) for S3; ``AZURE_STORAGE_*``,
    ``AZURE_CLIENT_ID``/``AZURE_TENANT_ID``/``AZURE_FEDERATED_TOKEN_FILE`` for Azure;
    ``GOOGLE_*`` for GCS (:data:`sde.services.home.PLAIN_OPTIONS` and
    :data:`~sde.services.home.CREDENTIAL_OPTIONS`). Without credentials there, the
    store's own chain decides (workload identity)."""
    from sde.services.home import (
        CREDENTIAL_OPTIONS,
        PLAIN_OPTIONS,
        LakeSettings,
        check_lake_url,
    )

    value = environ.get(EXTRACT_ENV)
    if not value:
        raise ConfigError(
            f"{EXTRACT_ENV} is not set: a workspace session without the sde home needs it "
            "(the spawner sets it)"
        )
    if not value.startswith(REMOTE_SCHEMES):
        return Path(value).absolute()
    try:
        url = check_lake_url(value)
    except ConfigError:
        raise ConfigError(f"{EXTRACT_ENV} is not a plain object-storage URL") from None
    store = LakeSettings(url=url).store
    assert store is not None
    names = PLAIN_OPTIONS[store] | CREDENTIAL_OPTIONS[store]
    options = {name: environ[name] for name in sorted(names) if environ.get(name)}
    return RemoteTable(url, options)
