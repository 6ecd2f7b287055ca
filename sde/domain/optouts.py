"""Which opt-out registers apply to which data, for which project.

- National data opt-out: applies to research and planning unless the project's legal
  basis exempts it (``national_opt_out_applies`` false; the exemption is recorded with
  the project and published).
- Type 1 opt-out: the patient's GP data is excluded from all secondary use, whatever the
  project.

Registers are stored against ``pid`` in the linked zone (datasets ``national_opt_out``
and ``type1_opt_out``) and applied when an extract is built or refreshed.
"""

from __future__ import annotations

NATIONAL = "national_opt_out"
TYPE1 = "type1_opt_out"
REGISTERS = (NATIONAL, TYPE1)
PURPOSES = frozenset({"research", "planning"})


def registers_for(origin: str, purpose: str, national_opt_out_applies: bool) -> frozenset[str]:
    """The opt-out registers whose patients are removed from a dataset of this origin
    for a project of this purpose."""
    if purpose not in PURPOSES:
        # Red lines and unknown purposes never reach an extract; fail closed.
        raise ValueError("a project's purpose must be research or planning")
    applied: set[str] = set()
    if national_opt_out_applies:
        applied.add(NATIONAL)
    if origin == "gp":
        applied.add(TYPE1)
    return frozenset(applied)
