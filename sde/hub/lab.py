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
import os
from pathlib import Path
from typing import Any

from jupyter_server.base.handlers import JupyterHandler
from tornado import web

log = logging.getLogger("sde.hub.lab")

# The lab's own commands for these, hidden from its menus.
DISABLED_LAB_PLUGINS = (
    "@jupyterlab/docmanager-extension:download",
    "@jupyterlab/filebrowser-extension:download",
    "@jupyterlab/notebook-extension:export",
)

REFUSED = (
    (r"/files/(.*)", "Downloading files"),
    (r"/nbconvert/(.*)", "Exporting notebooks to files"),
    (r"/view/(.*)", "Opening files as web pages"),
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
    """Record ``workspace.refused`` for the session's person and project (from the
    ``SDE_*`` variables the spawner sets). A failure to record is logged, not hidden."""
    home_dir = os.environ.get("SDE_HOME")
    person = os.environ.get("SDE_USER")
    project = os.environ.get("SDE_PROJECT")
    if not (home_dir and person and project):
        log.error("refused %s, but this session has no SDE_HOME/SDE_USER/SDE_PROJECT", what)
        return
    from sde.services.home import open_home
    from sde.services.wiring import control_plane

    try:
        with control_plane(open_home(Path(home_dir))) as store:
            store.audit.record(
                person, "workspace.refused", f"project:{project}", {"reason": what.lower()}
            )
    except Exception:
        log.exception("could not record a refusal (%s)", what)


class RefusedHandler(JupyterHandler):
    """403, saying what is switched off and where results go instead."""

    def initialize(self, what: str) -> None:
        self.what = what

    def _refuse(self, *_args: Any) -> None:
        record_refusal(self.what)
        log.warning("refused: %s", self.what)
        raise web.HTTPError(
            403,
            reason=f"{self.what} is switched off in sde workspaces",
            log_message=(
                f"{self.what} is switched off in sde workspaces: results leave through "
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
