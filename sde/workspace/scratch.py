"""The scratch area: the one place a workspace session's DuckDB may read and write files.

``SDE_SCRATCH`` when set (the spawner sets it; in Kubernetes it is the pod's scratch
``emptyDir``), else ``<home>/lake/projects/<project>/scratch/<person>``, created with mode
0700. Whatever its origin, a scratch area may not hold the home, the lake or the
project's extract (an ``SDE_SCRATCH=/`` would otherwise open everything), and inside the
home it must be under the project's ``scratch/`` folder.

In service mode (``SDE_API_URL`` and ``SDE_TOKEN`` set, no ``home`` given) there is no
home: ``SDE_SCRATCH`` is required, and may not be the extract (``SDE_EXTRACT``), hold it,
or lie inside it.
"""

from __future__ import annotations

import os
from pathlib import Path

from sde.adapters.delta import REMOTE_SCHEMES
from sde.domain.projects import check_person_id, check_project_id
from sde.errors import ConfigError
from sde.services.home import Home
from sde.workspace.service import EXTRACT_ENV, required_folder, service_mode

__all__ = ["check_scratch", "scratch_dir"]

SCRATCH_ENV = "SDE_SCRATCH"


def scratch_dir(
    project: str | None = None, *, home: str | Path | Home | None = None, user: str | None = None
) -> Path:
    """The session's scratch directory (created if missing): ``SDE_SCRATCH``, else
    ``<home>/lake/projects/<project>/scratch/<person>``."""
    from sde.workspace import _home, _project, _user  # the package imports this module

    if service_mode(home):
        return _service_scratch()
    the_home = _home(home)
    project_id = check_project_id(_project(project))
    configured = os.environ.get(SCRATCH_ENV)
    if configured:
        path = Path(configured).absolute()
        if not path.exists():
            path.mkdir(mode=0o700, parents=True)
    else:
        person = check_person_id(_user(user))
        path = the_home.project_scratch(project_id) / person
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        path.chmod(0o700)  # mkdir's mode is cut by the umask, and the folder may be older
    check_scratch(path, the_home, project_id)
    return path


def _service_scratch() -> Path:
    path = Path(required_folder(SCRATCH_ENV)).absolute()
    if not path.exists():
        path.mkdir(mode=0o700, parents=True)
    resolved = path.resolve()
    if not resolved.is_dir():
        raise ConfigError(f"the scratch area {path} is not a directory")
    if resolved == Path(resolved.anchor):
        raise ConfigError(f"the scratch area cannot be the root directory; set {SCRATCH_ENV}")
    extract = os.environ.get(EXTRACT_ENV)
    if extract and not extract.startswith(REMOTE_SCHEMES):  # an object-store URL is no folder
        extract_path = Path(extract).absolute().resolve()
        if extract_path.is_relative_to(resolved) or resolved.is_relative_to(extract_path):
            raise ConfigError(
                f"the scratch area {path} overlaps the extract ({EXTRACT_ENV}); give "
                f"{SCRATCH_ENV} a folder of its own"
            )
    return path


def check_scratch(path: Path, home: Home, project: str) -> None:
    """Refuse a scratch directory that would open more than itself to DuckDB."""
    resolved = path.resolve()
    if not resolved.is_dir():
        raise ConfigError(f"the scratch area {path} is not a directory")
    root = home.root.resolve()
    if root.is_relative_to(resolved):
        raise ConfigError(
            f"the scratch area {path} holds the sde home; give {SCRATCH_ENV} a folder of its own"
        )
    if resolved.is_relative_to(root):
        allowed = home.project_scratch(project).resolve()
        if not resolved.is_relative_to(allowed) or resolved == allowed:
            raise ConfigError(
                f"the scratch area {path} is inside the sde home but not in project "
                f"{project}'s scratch folder"
            )
