"""Factories that drive the real business logic, so no impossible state is built.

``approve_through_board`` takes a draft application through the board as a real one goes:
published for comment (a period of 0 days), three board members of the three kinds vote to
approve, and the decision is recorded through the ``sde.project`` policy.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date
from pathlib import Path
from typing import Any

from sde.adapters.sql import ControlPlane
from sde.domain.policy import PolicyEngine
from sde.domain.projects import Project, make_dataset_request
from sde.errors import NotFound
from sde.services.governance import GovernanceService, GovernanceSettings
from sde.services.home import Home
from sde.services.projects import NewProject, ProjectService

BOARD = (("board-lay", "lay"), ("board-clin", "clinical"), ("board-dpo", "data_protection"))


def application(
    project_id: str, datasets: Mapping[str, Sequence[str]], **changes: Any
) -> NewProject:
    """A complete application asking for ``datasets`` (every column justified)."""
    values: dict[str, Any] = {
        "id": project_id,
        "title": "Outcomes of type 2 diabetes",
        "purpose": "research",
        "sponsor": "University of Leeds",
        "sponsor_type": "academic",
        "legal_basis": "CAG 20/CAG/0001",
        "legal_basis_type": "s251_support",
        "summary": "How outcomes of type 2 diabetes differ by age and sex.",
        "public_benefit": "Better targeted diabetes care.",
        "uses": ("health_research",),
        "start_date": date(2025, 1, 1),
        "end_date": date(2030, 12, 31),
        "datasets": tuple(
            make_dataset_request(
                name, list(columns), None, {c: f"needed for the analysis of {c}" for c in columns}
            )
            for name, columns in datasets.items()
        ),
    }
    values.update(changes)
    return NewProject(**values)


def seat_board(plane: ControlPlane, engine: PolicyEngine, actor: str = "olu") -> None:
    """Three board members, one of each kind (once)."""
    projects = ProjectService(plane)
    governance = GovernanceService(plane, engine)
    for person_id, kind in BOARD:
        try:
            plane.get_person(person_id)
        except NotFound:
            projects.add_person(actor, person_id, roles=["board_member"], organisation="Board")
            governance.set_board_kind(actor, person_id, kind)


def approve_through_board(
    plane: ControlPlane,
    engine: PolicyEngine,
    project_id: str,
    *,
    decided_by: str,
    actor: str = "olu",
) -> Project:
    governance = GovernanceService(plane, engine, GovernanceSettings(comment_period_days=0))
    seat_board(plane, engine, actor)
    governance.publish(actor, project_id)
    for person_id, _ in BOARD:
        governance.vote(project_id, person_id, "approve", "sound and in the public interest")
    return governance.decide(project_id, decided_by)


def airlock_home(root: Path) -> Home:
    """A new home at ``root`` with :func:`airlock_project`'s cast and project."""
    from sde.services.home import init_home
    from sde.services.wiring import control_plane, policy_engine

    home = init_home(root)
    with control_plane(home) as store:
        airlock_project(store, policy_engine(home))
    return home


def airlock_project(
    plane: ControlPlane,
    engine: PolicyEngine,
    *,
    alice_checks: bool = False,
    extra_researchers: Sequence[str] = (),
) -> None:
    """The airlock's cast: olu (operator), bea (board), alice (researcher on the approved
    project ``diabetes``; also an output checker with ``alice_checks``), mallory (a
    researcher outside it), carol and dev (output checkers)."""
    people = ProjectService(plane)
    people.add_person("olu", "olu", roles=["operator"], organisation="NHS")
    people.add_person("olu", "bea", roles=["board_member"], organisation="Lay")
    alice_roles = ["researcher", "output_checker"] if alice_checks else ["researcher"]
    people.add_person("olu", "alice", roles=alice_roles, organisation="Uni")
    for researcher in ("mallory", *extra_researchers):
        people.add_person("olu", researcher, roles=["researcher"], organisation="Uni")
    for checker in ("carol", "dev"):
        people.add_person("olu", checker, roles=["output_checker"], organisation="NHS")
    people.create_project("olu", application("diabetes", {"patients": ["sex"]}, sponsor="Uni"))
    people.add_member("olu", "diabetes", "alice")
    approve_through_board(plane, engine, "diabetes", decided_by="bea")


def tiny_png() -> bytes:
    """A valid 1 x 1 grey PNG."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", 1, 1, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00\x80"))
        + chunk(b"IEND", b"")
    )


def linked_patients(home: Any, nhs_numbers: Sequence[str]) -> None:
    """A linked ``patients`` table of three people (pid from each NHS number; sex and year
    of birth) and empty opt-out registers, in ``home``'s lake: enough to extract from."""
    import pyarrow as pa
    from deltalake import write_deltalake

    from sde.domain.pseudonyms import LinkagePseudonymiser

    pids = [LinkagePseudonymiser(home.master_key()).pid(n) for n in nhs_numbers]
    write_deltalake(
        str(home.linked / "patients"),
        pa.table({"pid": pids, "sex": ["F", "M", "F"], "year_of_birth": [1960, 1970, 1980]}),
    )
    for register in ("national_opt_out", "type1_opt_out"):
        write_deltalake(str(home.linked / register), pa.table({"pid": pa.array([], pa.string())}))


def sex_extract(home: Any, project: str) -> None:
    """Extract ``patients.sex`` for ``project`` (approved for it) from the linked zone
    ``linked_patients`` made, as olu, for research."""
    from sde.services.extract import ExtractRequest, build_extract

    build_extract(
        home,
        ExtractRequest(project, "research", True, {"patients": ("sex",)}),
        {"patients": "gp"},
        actor="olu",
    )
