"""Statistical disclosure control: the risk appetite, the rules, the mitigations.

Pure: numpy arrays in, per-cell rule names out. ``sde.workspace.stats`` builds tables
from a researcher's DataFrame and checks them with these; the airlock re-checks CSVs
with :mod:`sde.domain.disclosure`.
"""

from __future__ import annotations

from sde.domain.sdc.appetite import RiskAppetite
from sde.domain.sdc.evidence import evidence_from_codes
from sde.domain.sdc.mitigations import (
    midpoint6,
    recoverable,
    round_to_base,
    secondary_suppression,
)
from sde.domain.sdc.rules import (
    AGGREGATES,
    DESCRIPTIONS,
    Evidence,
    Rule,
    aggregate_cells,
    cell_status,
    combine,
    count_masks,
    dominance_masks,
    model_cells,
    overall_status,
    rule_counts,
    rules_table,
    severity,
    survival_cells,
)

__all__ = [
    "AGGREGATES",
    "DESCRIPTIONS",
    "Evidence",
    "RiskAppetite",
    "Rule",
    "aggregate_cells",
    "cell_status",
    "combine",
    "count_masks",
    "dominance_masks",
    "evidence_from_codes",
    "midpoint6",
    "model_cells",
    "overall_status",
    "recoverable",
    "round_to_base",
    "rule_counts",
    "rules_table",
    "secondary_suppression",
    "severity",
    "survival_cells",
]
