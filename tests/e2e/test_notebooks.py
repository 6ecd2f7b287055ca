"""The example notebooks run end to end against the demo's data, each ending in a release
request that the airlock's automatic checks accept (nothing failing, nothing blocking)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from sde.services.home import open_home
from sde.services.wiring import control_plane
from tests.e2e.test_cli import REPO, ok

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.sql]

NOTEBOOKS = ["cohort-overview", "incidence-rates", "regression", "survival-curve"]


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("notebooks") / "demo"
    ok("demo", home=home)
    return home


def run_notebook(name: str, home: Path, workdir: Path) -> subprocess.CompletedProcess[str]:
    notebook = json.loads((REPO / "notebooks" / f"{name}.ipynb").read_text())
    code = "\n\n".join(
        "".join(cell["source"]) for cell in notebook["cells"] if cell["cell_type"] == "code"
    )
    script = workdir / f"{name}.py"
    script.write_text(code + "\n")
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("SDE_")},
        "SDE_HOME": str(home),
        "SDE_USER": "alice",
        "SDE_PROJECT": "diabetes-outcomes",
    }
    return subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        env=env,
        cwd=workdir,
        timeout=180,
        check=False,
    )


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_example_notebook_ends_in_an_accepted_release_request(
    name: str, demo: Path, tmp_path: Path
) -> None:
    ran = run_notebook(name, demo, tmp_path)
    assert ran.returncode == 0, ran.stderr[-3000:]
    found = re.search(r"^(rr-[0-9a-f]{12}) submitted$", ran.stdout, re.M)
    assert found, ran.stdout[-2000:]
    with control_plane(open_home(demo)) as store:
        files = store.list_release_files(found.group(1))
    assert len(files) == 1
    statuses = {str(c["name"]): str(c["status"]) for c in files[0].checks}
    assert "fail" not in statuses.values(), statuses
    assert files[0].metadata["kind"] == files[0].kind
