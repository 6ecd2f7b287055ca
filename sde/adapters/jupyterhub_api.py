"""The little of JupyterHub's REST API the session guard needs: who has a server running
(and on which project), and stopping one. Authenticated with the API token the hub gives
the service (``JUPYTERHUB_API_TOKEN``); its role grants ``list:users``, ``read:users``,
``read:servers`` and ``delete:servers`` and nothing else."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import requests

from sde.domain.sessions import RunningSession
from sde.errors import StateError


class HubApi:
    def __init__(self, api_url: str, token: str, *, timeout: float = 10.0) -> None:
        if not api_url.startswith(("http://", "https://")):
            raise ValueError("the hub's API URL must be http(s)")
        if not token:
            raise ValueError("the hub's API token is empty")
        self._url = api_url.rstrip("/")
        self._timeout = timeout
        self._http = requests.Session()
        self._http.headers["Authorization"] = f"token {token}"

    def _call(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        try:
            answer = self._http.request(
                method, f"{self._url}{path}", timeout=self._timeout, **kwargs
            )
        except requests.RequestException as exc:
            raise StateError(
                f"the hub's API at {self._url} could not be reached ({type(exc).__name__})"
            ) from None
        if answer.status_code >= 400 and answer.status_code != 404:
            raise StateError(f"the hub answered {answer.status_code} to {method} {path}")
        return answer

    def running_sessions(self) -> list[RunningSession]:
        sessions = []
        answer = self._call("GET", "/users", params={"state": "active"})
        if answer.status_code == 404:
            raise StateError("the hub's API has no /users")
        for user in answer.json():
            for name, server in (user.get("servers") or {}).items():
                options = server.get("user_options") or {}
                project = options.get("project") if isinstance(options, dict) else None
                sessions.append(
                    RunningSession(
                        str(user["name"]), str(name), project if isinstance(project, str) else None
                    )
                )
        return sessions

    def stop(self, session: RunningSession) -> None:
        person = quote(session.person, safe="")
        path = (
            f"/users/{person}/servers/{quote(session.server, safe='')}"
            if session.server
            else f"/users/{person}/server"
        )
        self._call("DELETE", path)
