"""What a workspace's JupyterLab may not do: download files, export notebooks, open a
terminal.

Loaded into each session's server with ``--ServerApp.extra_services=sde.hub.lab`` (the
spawner's arguments), so these handlers come before jupyter_server's own: ``/files/``
(downloads), ``/nbconvert/`` (export to a file) and ``/view/`` (a file opened as a page)
answer 403 with the reason, and the refusal is recorded (``workspace.refused``) for the
signed-in person and their project. Terminals are switched off
(``--ServerApp.terminals_enabled=False``) and the lab's download and export commands are
hidden (``labconfig/page_config.json`` in the hub's Jupyter configuration folder).

What this does not stop, and cannot (docs/workspaces.md says so): the notebook showing
data on screen, screen capture and retyping. The way out for results is the airlock.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from jupyter_server.base.handlers import JupyterHandler
from tornado import web

from sde.domain.sessions import LAB_DOWNLOAD, LAB_EXPORT, LAB_VIEW

log = logging.getLogger("sde.hub.lab")

# The lab's own commands for these, hidden from its menus.
DISABLED_LAB_PLUGINS = (
    "@jupyterlab/docmanager-extension:download",
    "@jupyterlab/filebrowser-extension:download",
    "@jupyterlab/notebook-extension:export",
)

REFUSED = (
    (r"/files/(.*)", LAB_DOWNLOAD),
    (r"/nbconvert/(.*)", LAB_EXPORT),
    (r"/view/(.*)", LAB_VIEW),
)


def server_args() -> list[str]:
    """The single-user server's arguments that switch these off."""
    return [
        "--ServerApp.extra_services=sde.hub.lab",
        "--ServerApp.terminals_enabled=False",
    ]


def write_lab_config(folder: Path) -> Path:
    """``<folder>/labconfig/page_config.json`` hiding the download and export commands;
    the folder is for ``JUPYTER_CONFIG_PATH``."""
    labconfig = folder / "labconfig"
    labconfig.mkdir(parents=True, exist_ok=True)
    path = labconfig / "page_config.json"
    path.write_text(
        json.dumps({"disabledExtensions": dict.fromkeys(DISABLED_LAB_PLUGINS, True)}, indent=2)
        + "\n"
    )
    return path


def record_refusal(what: str) -> None:
    """Record ``workspace.refused`` for the session's person and project, through the sde
    service (``SDE_API_URL`` and ``SDE_TOKEN``, as the spawner gives every session). A
    failure to record is logged, not hidden, and the refusal stands."""
    from sde.adapters.duckdb import Refusal
    from sde.errors import SdeError
    from sde.workspace.service import from_environment

    try:
        from_environment().record_refusal(Refusal(what, ""))
    except SdeError as exc:
        log.error("could not record a refusal (%s): %s", what, exc)


class RefusedHandler(JupyterHandler):
    """403, saying what is switched off and where results go instead."""

    def initialize(self, what: str) -> None:
        self.what = what

    def _refuse(self, *_args: Any) -> None:
        record_refusal(self.what)
        log.warning("refused: %s", self.what)
        what = self.what.capitalize()
        raise web.HTTPError(
            403,
            reason=f"{what} is switched off in sde workspaces",
            log_message=(
                f"{what} is switched off in sde workspaces: results leave through "
                "the airlock (sde.workspace.request_release), after output checking."
            ),
        )

    @web.authenticated
    def get(self, *args: Any) -> None:
        self._refuse(*args)

    @web.authenticated
    def post(self, *args: Any) -> None:
        self._refuse(*args)


default_handlers = [(pattern, RefusedHandler, {"what": what}) for pattern, what in REFUSED]
