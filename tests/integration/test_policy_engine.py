"""The embedded policy engine (regopy) over the real policies, and its fail-closed edges."""

from __future__ import annotations

import datetime as dt
import re
import shutil
import threading
from pathlib import Path

import pytest

from sde.adapters.rego_embedded import (
    PolicyEngineFault,
    RegoEmbeddedEngine,
    default_policy_dir,
    policy_files,
)
from sde.domain.policy import (
    ACCESS,
    CANARIES,
    EGRESS,
    Canary,
    Decision,
    EgressBudget,
    ReleaseFileFacts,
    make_access_input,
    make_egress_input,
)
from sde.errors import ConfigError

pytestmark = pytest.mark.policy

TODAY = dt.date(2025, 6, 1)
SHA = "0123456789abcdef" * 4


@pytest.fixture(scope="module")
def engine() -> RegoEmbeddedEngine:
    return RegoEmbeddedEngine(default_policy_dir())


def access(**changes: object) -> dict[str, object]:
    values: dict[str, object] = {
        "action": "read_dataset",
        "today": TODAY,
        "person_id": "r-ada",
        "project_id": "prj-1",
        "accredited_until": dt.date(2025, 12, 31),
        "project_status": "approved",
        "members": ["r-ada", "r-bob"],
        "start_date": dt.date(2025, 1, 1),
        "end_date": dt.date(2026, 12, 31),
        "approved_datasets": {"events": ["pid", "event_date", "code"]},
        "dataset": "events",
        "columns": ["pid", "code"],
    }
    values.update(changes)
    return make_access_input(**values)  # type: ignore[arg-type]


def egress(**changes: object) -> dict[str, object]:
    values: dict[str, object] = {
        "request_id": "rr-1",
        "author": "r-ada",
        "status": "approved",
        "files": [
            ReleaseFileFacts(
                "table1.csv", SHA, {"small_numbers": "pass", "dominance": "pass"}, rows=4, cells=8
            ),
            ReleaseFileFacts("figure1.csv", SHA, {"small_numbers": "pass"}, rows=0, cells=0),
        ],
        "reviews": [("c-1", "approve"), ("c-2", "approve")],
        "project_status": "approved",
        "budget": EgressBudget(rows_limit=10, cells_limit=10, rows_used=0, cells_used=0),
    }
    values.update(changes)
    return make_egress_input(**values)  # type: ignore[arg-type]


def write_policy(folder: Path, name: str, source: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(source, encoding="utf-8")
    return path


# --- the real policies -----------------------------------------------------------------


def test_loads_every_policy_package_but_not_the_tests(engine: RegoEmbeddedEngine) -> None:
    assert {ACCESS, EGRESS} <= engine.packages
    assert not any(package.endswith("_test") for package in engine.packages)
    assert engine.policy_dir == default_policy_dir()
    names = [path.name for path in policy_files(engine.policy_dir)]
    assert "access.rego" in names
    assert "egress.rego" in names
    assert not any(name.endswith("_test.rego") for name in names)


def test_default_policy_dir_is_the_repository_folder() -> None:
    folder = default_policy_dir()
    assert folder == Path(__file__).resolve().parents[2] / "policies"
    assert (folder / "access.rego").is_file()


@pytest.mark.parametrize("action", ["open_workspace", "read_dataset", "build_extract"])
def test_member_is_allowed(engine: RegoEmbeddedEngine, action: str) -> None:
    assert engine.decide(ACCESS, access(action=action)) == Decision(allow=True)


def test_operator_may_build_an_extract_but_not_read(engine: RegoEmbeddedEngine) -> None:
    operator = {"person_id": "op-1", "role": "operator"}
    assert engine.decide(ACCESS, access(action="build_extract", **operator)).allow
    assert engine.decide(ACCESS, access(action="read_dataset", **operator)) == Decision(
        allow=False, reasons=("person op-1 is not a member of project prj-1",)
    )


@pytest.mark.parametrize(
    ("changes", "reasons"),
    [
        (
            {"accredited_until": dt.date(2025, 5, 31)},
            ("the accreditation of person r-ada expired on 2025-05-31",),
        ),
        ({"accredited_until": None}, ("person r-ada has no accreditation on record",)),
        ({"banned_until": TODAY}, ("person r-ada is banned until 2025-06-01",)),
        ({"person_id": None}, ("the person is not known",)),
        ({"person_id": "r-eve"}, ("person r-eve is not a member of project prj-1",)),
        (
            {"action": "build_extract", "person_id": "r-eve"},
            ("person r-eve is neither a member of project prj-1 nor an operator",),
        ),
        ({"project_id": None}, ("the project is not known",)),
        ({"project_status": "draft"}, ("project prj-1 has status draft, not approved",)),
        ({"project_status": "suspended"}, ("project prj-1 has status suspended, not approved",)),
        ({"project_status": "closed"}, ("project prj-1 has status closed, not approved",)),
        ({"start_date": dt.date(2025, 7, 1)}, ("project prj-1 starts on 2025-07-01",)),
        ({"end_date": dt.date(2025, 5, 1)}, ("project prj-1 ended on 2025-05-01",)),
        ({"dataset": None}, ("the request names no dataset",)),
        ({"dataset": "deaths"}, ("dataset deaths is not approved for project prj-1",)),
        ({"columns": []}, ("the request names no columns",)),
        (
            {"columns": ["pid", "nhs_number", "code", "postcode"]},
            (
                "column nhs_number of dataset events is not approved for project prj-1",
                "column postcode of dataset events is not approved for project prj-1",
            ),
        ),
        (
            {"action": "print_everything"},
            ("action print_everything is not one of build_extract, open_workspace, read_dataset",),
        ),
    ],
)
def test_access_refusals_say_why(
    engine: RegoEmbeddedEngine, changes: dict[str, object], reasons: tuple[str, ...]
) -> None:
    assert engine.decide(ACCESS, access(**changes)) == Decision(allow=False, reasons=reasons)


def test_access_gives_every_reason_at_once(engine: RegoEmbeddedEngine) -> None:
    decision = engine.decide(
        ACCESS,
        access(banned_until=dt.date(2026, 1, 1), project_status="suspended", columns=["free_text"]),
    )
    assert decision == Decision(
        allow=False,
        reasons=(
            "column free_text of dataset events is not approved for project prj-1",
            "person r-ada is banned until 2026-01-01",
            "project prj-1 has status suspended, not approved",
        ),
    )


def test_release_is_allowed(engine: RegoEmbeddedEngine) -> None:
    assert engine.decide(EGRESS, egress()) == Decision(allow=True)
    assert engine.decide(EGRESS, egress(approvals_required=1, reviews=[("c-1", "approve")])).allow


@pytest.mark.parametrize(
    ("changes", "reasons"),
    [
        ({"status": "in_review"}, ("the release request has status in_review, not approved",)),
        ({"files": []}, ("the release request has no files",)),
        (
            {
                "files": [
                    ReleaseFileFacts(
                        "t.csv",
                        SHA,
                        {"small_numbers": "fail", "dominance": "pass"},
                        rows=1,
                        cells=1,
                    )
                ]
            },
            (
                "check small_numbers on file t.csv did not pass (status fail), and no exception "
                "was asked for",
            ),
        ),
        (
            {"files": [ReleaseFileFacts("t.csv", SHA, {}, rows=1, cells=1)]},
            ("file t.csv has no automatic checks",),
        ),
        (
            {
                "files": [
                    ReleaseFileFacts("t.csv", None, {"small_numbers": "pass"}, rows=1, cells=1)
                ]
            },
            ("file t.csv has no SHA-256 checksum",),
        ),
        (
            {"reviews": [("c-1", "approve")]},
            ("the release request has 1 of the 2 independent approvals required",),
        ),
        (
            {"reviews": [("c-1", "approve"), ("r-ada", "approve")]},
            (
                "the author r-ada cannot approve their own release request",
                "the release request has 1 of the 2 independent approvals required",
            ),
        ),
        (
            {"reviews": [("c-1", "approve"), ("c-2", "approve"), ("c-3", "reject")]},
            ("reviewer c-3 rejected the release request",),
        ),
        (
            {"approvals_required": 0},
            ("the approvals_required setting must be a whole number of at least 1",),
        ),
        (
            {"approvals_required": 3},
            ("the release request has 2 of the 3 independent approvals required",),
        ),
        ({"author": None}, ("the release request has no author on record",)),
    ],
)
def test_release_refusals_say_why(
    engine: RegoEmbeddedEngine, changes: dict[str, object], reasons: tuple[str, ...]
) -> None:
    assert engine.decide(EGRESS, egress(**changes)) == Decision(allow=False, reasons=reasons)


# --- fail closed -------------------------------------------------------------------


def test_missing_fields_deny_with_reasons(engine: RegoEmbeddedEngine) -> None:
    for package in (ACCESS, EGRESS):
        decision = engine.decide(package, {})
        assert not decision.allow
        assert decision.reasons
        assert not decision.is_engine_error
    partial = access()
    del partial["person"]
    assert engine.decide(ACCESS, partial) == Decision(
        allow=False, reasons=("the person is not known",)
    )


@pytest.mark.parametrize(
    "package", ["sde.nothing", "sde", "sde.access.allow", "sde.access; x := 1", ""]
)
def test_unknown_package_is_an_engine_refusal(engine: RegoEmbeddedEngine, package: str) -> None:
    decision = engine.decide(package, access())
    assert not decision.allow
    assert decision.is_engine_error
    assert decision.reasons == (f"policy engine error: no policy package {package} is loaded",)


def test_input_that_is_not_plain_json_is_refused(engine: RegoEmbeddedEngine) -> None:
    not_json = {**access(), "today": TODAY}
    decision = engine.decide(ACCESS, not_json)
    assert decision == Decision.engine_error("sde.access: the input is not plain JSON")
    assert engine.decide(ACCESS, ["not", "a", "mapping"]) == Decision.engine_error(  # type: ignore[arg-type]
        "sde.access: the input is not a JSON object"
    )
    assert engine.decide(ACCESS, {**access(), "x": float("nan")}).is_engine_error


def test_decisions_from_many_threads_agree(engine: RegoEmbeddedEngine) -> None:
    cases = [
        (ACCESS, access(), True),
        (ACCESS, access(project_status="closed"), False),
        (EGRESS, egress(), True),
        (EGRESS, egress(reviews=[]), False),
    ]
    wrong: list[str] = []

    def work() -> None:
        for _ in range(25):
            for package, document, allow in cases:
                if engine.decide(package, document).allow is not allow:
                    wrong.append(package)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert wrong == []


def test_missing_or_empty_policy_folder_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        RegoEmbeddedEngine(tmp_path / "nowhere")
    write_policy(tmp_path / "only_tests", "access_test.rego", "package sde.access_test\n")
    with pytest.raises(ConfigError, match=r"no \.rego policies"):
        RegoEmbeddedEngine(tmp_path / "only_tests")


def copy_policies(target: Path) -> Path:
    shutil.copytree(default_policy_dir(), target)
    return target


def test_test_files_beside_the_policies_are_not_loaded(tmp_path: Path) -> None:
    folder = copy_policies(tmp_path / "policies")
    assert (folder / "access_test.rego").is_file()
    packages = RegoEmbeddedEngine(folder).packages
    assert {ACCESS, EGRESS} <= packages
    assert "sde.access_test" not in packages


def test_syntax_error_refuses_to_start(tmp_path: Path) -> None:
    folder = copy_policies(tmp_path / "policies")
    write_policy(folder, "broken.rego", "package sde.broken\n\nallow if {\n")
    with pytest.raises(PolicyEngineFault, match=r"broken\.rego does not compile"):
        RegoEmbeddedEngine(folder)


def test_a_policy_that_allows_everything_fails_the_self_test(tmp_path: Path) -> None:
    folder = copy_policies(tmp_path / "policies")
    write_policy(
        folder,
        "access.rego",
        "package sde.access\n\ndefault allow := true\n\ndeny := set()\n",
    )
    with pytest.raises(PolicyEngineFault, match="self-test") as caught:
        RegoEmbeddedEngine(folder)
    message = str(caught.value)
    assert "sde.access canary 'not a member': expected refusal, got allow" in message
    assert "sde.egress" not in message


def test_a_policy_missing_from_the_folder_fails_the_self_test(tmp_path: Path) -> None:
    folder = copy_policies(tmp_path / "policies")
    (folder / "egress.rego").unlink()
    with pytest.raises(PolicyEngineFault, match=r"no policy package sde\.egress is loaded"):
        RegoEmbeddedEngine(folder)


def test_a_policy_refusing_for_the_wrong_reason_fails_the_self_test(tmp_path: Path) -> None:
    folder = copy_policies(tmp_path / "policies")
    source = (folder / "egress.rego").read_text(encoding="utf-8")
    # Break only the message of the rejection rule: the canary wants the right reason.
    broken = source.replace("rejected the release request", "was unhappy")
    assert broken != source
    write_policy(folder, "egress.rego", broken)
    with pytest.raises(PolicyEngineFault, match="'a checker rejected'"):
        RegoEmbeddedEngine(folder)


def small_engine(tmp_path: Path, body: str) -> RegoEmbeddedEngine:
    """An engine over one tiny package ``sde.tiny``, without canaries."""
    folder = tmp_path / "tiny"
    write_policy(folder, "tiny.rego", "package sde.tiny\n\n" + body)
    return RegoEmbeddedEngine(folder, canaries=())


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ('allow if input.ok == true\n\ndeny contains "no" if input.ok != true\n', "undefined"),
        (
            'allow := "yes"\n\ndeny := set()\n',
            "not a boolean",
        ),
        (
            'default allow := false\n\nallow if input.ok\n\ndeny := {"x", 1}\n',
            "not a set of reasons",
        ),
        ("default allow := false\n\nallow if input.ok\n", "undefined"),
        ('default allow := true\n\ndeny := {"nope"}\n', "allow together with deny reasons"),
        (
            'default allow := false\n\nallow if to_number(input.n) > 0\n\ndeny := {"no"}\n',
            "evaluation failed",
        ),
    ],
)
def test_malformed_answers_are_engine_refusals(tmp_path: Path, body: str, problem: str) -> None:
    engine = small_engine(tmp_path, body)
    decision = engine.decide("sde.tiny", {"ok": False, "n": "not a number"})
    assert not decision.allow
    assert decision.is_engine_error
    assert problem in decision.reasons[0]


def test_refusal_without_reason_gets_one(tmp_path: Path) -> None:
    engine = small_engine(tmp_path, "default allow := false\n\ndeny := set()\n")
    assert engine.decide("sde.tiny", {}) == Decision(
        allow=False, reasons=("refused by policy sde.tiny without a stated reason",)
    )


def test_custom_canaries_run_at_start(tmp_path: Path) -> None:
    body = (
        "default allow := false\n\nallow if input.ok == true\n\n"
        'deny contains "not ok" if not input.ok\n'
    )
    folder = tmp_path / "tiny"
    write_policy(folder, "tiny.rego", "package sde.tiny\n\n" + body)
    good = (
        Canary("ok", "sde.tiny", {"ok": True}, allow=True),
        Canary("not ok", "sde.tiny", {"ok": False}, allow=False, reason="not ok"),
    )
    assert RegoEmbeddedEngine(folder, canaries=good).packages == frozenset({"sde.tiny"})
    wrong = (Canary("inverted", "sde.tiny", {"ok": False}, allow=True),)
    with pytest.raises(PolicyEngineFault, match="'inverted': expected allow"):
        RegoEmbeddedEngine(folder, canaries=wrong)


def test_the_default_canaries_pass_one_by_one(engine: RegoEmbeddedEngine) -> None:
    for canary in CANARIES:
        decision = engine.decide(canary.package, canary.input)
        assert decision.allow is canary.allow, canary.name
        if canary.reason is not None:
            assert any(canary.reason in reason for reason in decision.reasons), canary.name


# --- constructs regopy 1.5.2 gets wrong stay out of the policies ------------------------


def every_bodies(source: str) -> list[str]:
    """The text of each ``every ... { ... }`` body in a Rego source."""
    bodies = []
    for match in re.finditer(r"\bevery\b[^{\n]*\{", source):
        depth, start = 1, match.end()
        index = start
        while depth and index < len(source):
            depth += {"{": 1, "}": -1}.get(source[index], 0)
            index += 1
        bodies.append(source[start : index - 1])
    return bodies


def test_no_not_inside_every() -> None:
    """regopy ignores ``not`` inside an ``every`` body: an every-not would fail open."""
    assert every_bodies("every x in xs {\n\tnot f(x)\n}\n") == ["\n\tnot f(x)\n"]
    for path in policy_files(default_policy_dir()):
        for body in every_bodies(path.read_text(encoding="utf-8")):
            assert not re.search(r"\bnot\b", body), f"{path.name}: 'not' inside 'every'"


def test_no_rfc3339_parsing() -> None:
    """regopy cannot parse RFC 3339 timestamps ending in Z: dates are compared as text."""
    for path in policy_files(default_policy_dir()):
        assert "parse_rfc3339" not in path.read_text(encoding="utf-8"), path.name


@pytest.mark.parametrize(
    "column",
    [
        'x"], "allow": true, "deny": [], "z": ["',
        'code"',
        "code\\",
        "code\nfree_text",
        "code\x00",
    ],
)
def test_text_regopy_cannot_carry_is_refused(engine: RegoEmbeddedEngine, column: str) -> None:
    """regopy does not escape strings in its output: such text could rewrite the answer."""
    decision = engine.decide(ACCESS, access(columns=["pid", column]))
    assert not decision.allow
    assert decision.is_engine_error
    assert "cannot carry" in decision.reasons[0]
    assert column not in decision.reasons[0]
    keyed = access()
    keyed["request"] = {"dataset": "events", "columns": ["pid"], 'a"b': 1}
    assert engine.decide(ACCESS, keyed).is_engine_error


def test_other_unicode_text_is_carried(engine: RegoEmbeddedEngine) -> None:
    decision = engine.decide(ACCESS, access(columns=["pid", "côté_☃"]))
    assert decision == Decision(
        allow=False,
        reasons=("column côté_☃ of dataset events is not approved for project prj-1",),
    )
