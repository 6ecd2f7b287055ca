"""The risk appetite: every parameter of the disclosure-control rules, in one place.

Loaded from the ``sdc:`` section of an environment's ``config.yaml`` (it lands in
``Settings.extra``); anything not given keeps the default below, which follows the SDC
handbook (Griffiths et al. 2019) and the SACRO guide.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

from sde.errors import ConfigError

STATUSES = ("pass", "review", "fail")


@dataclass(frozen=True)
class RiskAppetite:
    """Parameters of the rules. Frozen: a checked output carries the one it was checked with."""

    min_cell_count: int = 10  # a cell with fewer contributors fails ("threshold")
    zeros: str = "review"  # what a zero count means: pass | review | fail
    nk_n: int = 2  # NK dominance: the n largest contributions...
    nk_k: float = 0.9  # ...must not exceed this share of the cell total
    p_percent: float = 0.1  # p% rule: the rest must be at least p x the largest
    min_dof: int = 10  # models: residual degrees of freedom at least this
    negatives: str = "review"  # a cell with a negative contribution: review | fail
    min_max: str = "review"  # min/max cells at or above the threshold: review | fail
    survival_min_at_risk: int = 10  # Kaplan-Meier: people at risk at each time point
    survival_min_events: int = 10  # Kaplan-Meier: events (and censorings) per step
    round_base: int = 5  # the rounding mitigation's base

    def __post_init__(self) -> None:
        for name in (
            "min_cell_count",
            "nk_n",
            "min_dof",
            "survival_min_at_risk",
            "survival_min_events",
            "round_base",
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"sdc setting {name!r} must be a positive whole number")
        for name in ("nk_k", "p_percent"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ConfigError(f"sdc setting {name!r} must be a number between 0 and 1")
            if not 0 < float(value) < 1:
                raise ConfigError(f"sdc setting {name!r} must be a number between 0 and 1")
        if self.zeros not in STATUSES:
            raise ConfigError("sdc setting 'zeros' must be one of pass, review, fail")
        for name in ("negatives", "min_max"):
            if getattr(self, name) not in ("review", "fail"):
                raise ConfigError(f"sdc setting {name!r} must be review or fail")

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any] | None) -> RiskAppetite:
        """From the ``sdc:`` section of ``config.yaml``; unknown keys are an error (a typo
        must not silently leave a default in force)."""
        if data is None:
            return cls()
        if not isinstance(data, Mapping):
            raise ConfigError("the 'sdc' section of config.yaml must be a mapping")
        known = {f.name for f in fields(cls)}
        unknown = sorted(str(k) for k in data if k not in known)
        if unknown:
            raise ConfigError(f"unknown sdc settings: {', '.join(unknown)}")
        return cls(**{str(k): v for k, v in data.items()})

    @classmethod
    def from_settings(cls, min_cell_count: int, extra: Mapping[str, Any]) -> RiskAppetite:
        """From ``Settings``: its ``min_cell_count`` unless ``sdc:`` sets one."""
        section = extra.get("sdc")
        if section is not None and not isinstance(section, Mapping):
            raise ConfigError("the 'sdc' section of config.yaml must be a mapping")
        merged: dict[str, Any] = {"min_cell_count": min_cell_count, **(section or {})}
        return cls.from_mapping(merged)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)
