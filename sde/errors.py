"""Errors, by audience.

``SdeError`` and its subclasses are *user-facing*: their message is one sentence a
researcher, checker or operator can act on, shown without a traceback. They never carry
a patient-level value (no NHS number, name, date of birth, free text): messages name
columns, files, row numbers, rules and counts only.

Anything else raised inside sde is an internal fault and is shown with its traceback.
"""


class SdeError(Exception):
    """A refusal or problem the user can act on. The message is shown as is."""


class ConfigError(SdeError):
    """The state directory, configuration or key is missing or wrong."""


class InputError(SdeError):
    """Input (a file, a spec, an argument) is not acceptable; the message names the problem."""


class PolicyDenied(SdeError):
    """A policy decision refused the action; ``reasons`` say which rules refused."""

    def __init__(self, decision: str, reasons: list[str]) -> None:
        self.decision = decision
        self.reasons = list(reasons)
        joined = "; ".join(self.reasons) if self.reasons else "no rule allowed it"
        super().__init__(f"{decision} refused: {joined}")


class NotFound(SdeError):
    """A named thing (project, person, dataset, request) does not exist."""


class StateError(SdeError):
    """The action is not possible in the thing's current state."""
