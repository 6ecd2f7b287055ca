"""Opt-outs: which patients' data a project may not use, by rule. Pure rules, no I/O.

Two registers come from the NHS:

- **National data opt-out** (``national_opt_out``): applies to research and planning
  unless the project's legal basis exempts it (``national_opt_out_applies`` false; the
  exemption is recorded with the project and published).
- **Type 1 opt-out** (``type1_opt_out``): the patient's GP data is excluded from all
  secondary use, whatever the project; it applies to datasets of ``gp`` origin.

Patients' own choices go further than the NHS offers (scopes of a choice):

- ``research`` / ``planning``: no project of that purpose;
- ``commercial``: no project whose sponsor type is commercial;
- ``organisation``: no project sponsored by the named organisation;
- ``project``: not the named project.

Each choice is an event (``opt_out`` or ``opt_in``) for a ``(pid, scope, target)``; the
latest event wins, so a patient can change their mind. A legal basis that exempts a
project from the national data opt-out does not exempt it from these choices: they are
sde's promise to the patient, not a statutory register.

Anything the rules are not told is taken at its strictest: no dataset origin means the
data may be GP data (type 1 applies); no sponsor type means it may be commercial; no
sponsor organisation means every organisation opt-out applies.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from enum import StrEnum

from sde.domain.projects import PROJECT_ID, Purpose, SponsorType
from sde.errors import InputError

NATIONAL = "national_opt_out"
TYPE1 = "type1_opt_out"
REGISTERS = (NATIONAL, TYPE1)
PURPOSES = frozenset(p.value for p in Purpose)
GP_ORIGIN = "gp"
MAX_TARGET = 200
FUTURE_TOLERANCE = dt.timedelta(minutes=5)


class Scope(StrEnum):
    """What a patient's choice is about."""

    RESEARCH = "research"
    PLANNING = "planning"
    COMMERCIAL = "commercial"
    ORGANISATION = "organisation"
    PROJECT = "project"


class Choice(StrEnum):
    OPT_OUT = "opt_out"
    OPT_IN = "opt_in"


TARGETED = frozenset({Scope.ORGANISATION, Scope.PROJECT})


def choice_rule(scope: Scope) -> str:
    """The rule name of a patient-choice scope, e.g. ``choice:research``."""
    return f"choice:{scope.value}"


RULES: tuple[str, ...] = (NATIONAL, TYPE1, *(choice_rule(s) for s in Scope))

RULE_DESCRIPTIONS: dict[str, str] = {
    NATIONAL: "national data opt-out (research and planning, unless the legal basis exempts)",
    TYPE1: "type 1 opt-out at the GP practice (GP data, any project)",
    choice_rule(Scope.RESEARCH): "patient's choice: no research",
    choice_rule(Scope.PLANNING): "patient's choice: no planning",
    choice_rule(Scope.COMMERCIAL): "patient's choice: no commercially sponsored project",
    choice_rule(Scope.ORGANISATION): "patient's choice: not this sponsor organisation",
    choice_rule(Scope.PROJECT): "patient's choice: not this project",
}


@dataclass(frozen=True)
class ExclusionTerms:
    """What decides which opt-outs apply: the project's terms and the data's origin.

    ``None`` for ``sponsor_type``, ``sponsor_organisation`` or ``origin`` means unknown,
    and is taken at its strictest (see the module docstring)."""

    project_id: str
    purpose: str
    national_opt_out_applies: bool
    sponsor_type: str | None = None
    sponsor_organisation: str | None = None
    origin: str | None = None

    def __post_init__(self) -> None:
        if not self.project_id:
            raise InputError("opt-outs need the project's id")
        if self.purpose not in PURPOSES:
            # Red lines and unknown purposes never reach an extract; fail closed.
            raise InputError("a project's purpose must be research or planning")
        if self.sponsor_type is not None and self.sponsor_type not in {
            s.value for s in SponsorType
        }:
            choices = ", ".join(s.value for s in SponsorType)
            raise InputError(f"a project's sponsor type must be one of {choices}")


@dataclass(frozen=True)
class Rule:
    """One opt-out rule that applies: a register, or patients' choices of one scope.

    ``targets`` are the normalised targets whose opt-outs count (``None``: every target
    of the scope, when the sponsor organisation is unknown)."""

    name: str
    register: str | None = None
    scope: Scope | None = None
    targets: frozenset[str] | None = None

    @property
    def description(self) -> str:
        return RULE_DESCRIPTIONS[self.name]


def rules_for(terms: ExclusionTerms) -> tuple[Rule, ...]:
    """The opt-out rules whose patients are removed from data of ``terms.origin`` for
    the project of ``terms``, in the order of :data:`RULES`."""
    rules: list[Rule] = []
    if terms.national_opt_out_applies:
        rules.append(Rule(NATIONAL, register=NATIONAL))
    if terms.origin is None or terms.origin == GP_ORIGIN:
        rules.append(Rule(TYPE1, register=TYPE1))
    purpose_scope = Scope(terms.purpose)
    rules.append(Rule(choice_rule(purpose_scope), scope=purpose_scope, targets=frozenset({""})))
    if terms.sponsor_type is None or terms.sponsor_type == SponsorType.COMMERCIAL.value:
        rules.append(
            Rule(choice_rule(Scope.COMMERCIAL), scope=Scope.COMMERCIAL, targets=frozenset({""}))
        )
    organisation = (
        None
        if terms.sponsor_organisation is None
        else frozenset({normalise_organisation(terms.sponsor_organisation)})
    )
    rules.append(
        Rule(choice_rule(Scope.ORGANISATION), scope=Scope.ORGANISATION, targets=organisation)
    )
    rules.append(
        Rule(
            choice_rule(Scope.PROJECT),
            scope=Scope.PROJECT,
            targets=frozenset({terms.project_id.strip().lower()}),
        )
    )
    return tuple(sorted(rules, key=lambda r: RULES.index(r.name)))


# --- patients' choices -------------------------------------------------------------------


def normalise_organisation(name: str) -> str:
    """An organisation's name as choices are matched: spaces collapsed, case folded."""
    return " ".join(name.split()).casefold()


def parse_scope(value: str) -> Scope:
    try:
        return Scope(value.strip())
    except ValueError:
        choices = ", ".join(s.value for s in Scope)
        raise InputError(f"scope must be one of {choices}") from None


def parse_choice(value: str) -> Choice:
    try:
        return Choice(value.strip())
    except ValueError:
        raise InputError("choice must be opt_out or opt_in") from None


def normalise_target(scope: Scope, target: str | None) -> str:
    """The target of a choice as stored and matched: empty for research, planning and
    commercial; a normalised organisation name; a project id. Messages never repeat the
    value (it came from a file that may be malformed)."""
    text = (target or "").strip()
    if scope not in TARGETED:
        if text:
            raise InputError(f"a {scope.value} choice takes no target")
        return ""
    if not text:
        raise InputError(f"a {scope.value} choice needs a target (the {scope.value} named)")
    if len(text) > MAX_TARGET:
        raise InputError(f"a target must be at most {MAX_TARGET} characters")
    if scope is Scope.ORGANISATION:
        return normalise_organisation(text)
    project = text.lower()
    if not PROJECT_ID.match(project):
        raise InputError("a project target must be a project id")
    return project


def parse_recorded_at(value: str, now: dt.datetime) -> dt.datetime:
    """When the patient made the choice: an ISO 8601 date or date-time (UTC if no zone
    is given), not in the future."""
    text = value.strip()
    if not text:
        raise InputError("recorded_at is required (when the patient made the choice)")
    try:
        when = dt.datetime.fromisoformat(text)
    except ValueError:
        raise InputError("recorded_at must be an ISO 8601 date or date-time") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    when = when.astimezone(dt.UTC)
    if when > now + FUTURE_TOLERANCE:
        # A future-dated event would silently override every later real one.
        raise InputError("recorded_at is in the future")
    return when


@dataclass(frozen=True)
class ChoiceEvent:
    """A patient's choice, without the patient (the service adds ``pid``)."""

    scope: Scope
    target: str
    choice: Choice
    recorded_at: dt.datetime


def make_choice_event(
    scope: str, target: str | None, choice: str, recorded_at: str, now: dt.datetime
) -> ChoiceEvent:
    """Validate one choice's fields (raises :class:`InputError` naming the field)."""
    parsed_scope = parse_scope(scope)
    return ChoiceEvent(
        scope=parsed_scope,
        target=normalise_target(parsed_scope, target),
        choice=parse_choice(choice),
        recorded_at=parse_recorded_at(recorded_at, now),
    )
