"""Serving the public register (``sde register build``'s folder) to anyone, without
sign-in: static files only, with the same security headers as the airlock page and no
cookies. Behind JupyterHub it is the ``register`` service at ``/services/register/``
(``sde web register --hub``, started by ``sde serve``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from sde.web.app import SecurityHeaders

NOT_BUILT = (
    b'<!doctype html><html lang="en-GB"><head><meta charset="utf-8">'
    b"<title>The register is not published yet</title></head><body><main>"
    b"<h1>The register is not published yet</h1><p>An operator publishes it with "
    b"<code>sde register build</code>.</p></main></body></html>"
)


def register_app(folder: Path, *, base: str = "") -> FastAPI:
    """The register's files under ``base``; a page saying so while it is not built (checked
    on every request, so a build made while serving appears at once)."""
    if base and (not base.startswith("/") or base.endswith("/")):
        raise ValueError("base must start with / and not end with one")
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    app.add_middleware(SecurityHeaders)
    static = StaticFiles(directory=folder, html=True, check_dir=False)
    not_built = HTMLResponse(NOT_BUILT, status_code=404)  # 5xx would read as "down"

    async def site(scope: Any, receive: Any, send: Any) -> None:
        if (folder / "index.html").is_file():
            await static(scope, receive, send)
        else:
            await not_built(scope, receive, send)

    app.mount(base or "/", site, name="register")
    return app
