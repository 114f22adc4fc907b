"""The budget kinds, in one place: what each caps, how it becomes a constraint, a search cap
and a plot's budget line.

A budget kind caps one axis (``size``, ``macs`` or ``latency``), either as a ratio of the dense
model (``size = 0.5``) or in absolute units (``size_mib = 0.5``). Adding a kind means adding one
entry to :data:`KINDS`.

Example:
    >>> b = Budget(size=0.5, latency_ms=2.0)
    >>> b.constraints({"size_mib": 1.0, "macs": 1e6, "latency_ms": 3.0},
    ...               {"size_mib": 0.4, "macs": 5e5, "latency_ms": 2.5})
    {'size': -0.09999999999999998, 'latency_ms': 0.25}
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import NamedTuple

from autoprune.engine.metrics import MIB
from autoprune.errors import ConfigError

__all__ = ["Axis", "AXES", "BudgetKind", "KINDS", "Budget", "Limits", "OBJECTIVES",
           "objective_direction"]


class Axis(NamedTuple):
    """A cost axis: its name, the measurement's key and its plot label."""

    name: str
    key: str
    label: str


AXES: dict[str, Axis] = {
    "size": Axis("size", "size_mib", "size (MiB, 32-bit nonzero params)"),
    "latency": Axis("latency", "latency_ms", "latency (ms)"),
    "macs": Axis("macs", "macs", "MACs per image"),
}
OBJECTIVES = ("accuracy", *AXES)


def objective_direction(name: str) -> str:
    """``maximize`` for accuracy, ``minimize`` for every cost axis."""
    return "maximize" if name == "accuracy" else "minimize"


class BudgetKind(NamedTuple):
    """One kind of budget: the axis it caps and whether its value is a ratio of dense."""

    name: str
    axis: str
    ratio: bool
    help: str


KINDS: dict[str, BudgetKind] = {k.name: k for k in (
    BudgetKind("size", "size", True, "stored size as a fraction of dense (0.25 = 4x smaller)"),
    BudgetKind("size_mib", "size", False, "stored size in MiB"),
    BudgetKind("macs", "macs", True, "MACs as a fraction of dense"),
    BudgetKind("macs_abs", "macs", False, "MACs per image"),
    BudgetKind("latency", "latency", True, "measured latency as a fraction of dense"),
    BudgetKind("latency_ms", "latency", False, "measured latency in ms"),
)}


@dataclass(frozen=True)
class Budget:
    """Upper bounds a feasible policy must meet (each field: see :data:`KINDS`)."""

    size: float | None = None
    size_mib: float | None = None
    macs: float | None = None
    macs_abs: float | None = None
    latency: float | None = None
    latency_ms: float | None = None

    def __post_init__(self) -> None:
        for k, v in self.items().items():
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise ConfigError(f"Budget {k}={v!r} must be a number.")
            if KINDS[k].ratio and not 0.0 < v <= 1.0:
                raise ConfigError(f"Budget {k}={v!r} must be a ratio of dense in (0, 1].")
            if not KINDS[k].ratio and not (v > 0 and math.isfinite(v)):
                raise ConfigError(f"Budget {k}={v!r} must be positive and finite.")

    def items(self) -> dict[str, float]:
        """The kinds that are set, with their values."""
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}

    def axes(self) -> set[str]:
        """The axes this budget caps."""
        return {KINDS[k].axis for k in self.items()}

    def caps(self, dense: dict[str, float]) -> dict[str, float]:
        """The tightest absolute cap per axis (keys ``size_mib``, ``macs``, ``latency_ms``),
        given the dense model's values under the same keys."""
        out: dict[str, float] = {}
        for k, v in self.items().items():
            key = AXES[KINDS[k].axis].key
            cap = v * dense[key] if KINDS[k].ratio else v
            out[key] = min(out.get(key, math.inf), cap)
        return out

    def constraints(self, dense: dict[str, float], measured: dict[str, float]
                    ) -> dict[str, float]:
        """Optuna constraint values per kind set (<= 0 means met): ratio kinds as the ratio
        over dense minus the budget, absolute kinds as the relative excess over the cap."""
        out = {}
        for k, v in self.items().items():
            key = AXES[KINDS[k].axis].key
            out[k] = (measured[key] / dense[key] - v) if KINDS[k].ratio \
                else (measured[key] - v) / v
        return out


@dataclass(frozen=True)
class Limits:
    """Budgets as absolute caps for the search's projection (``None`` = no cap).

    Attributes:
        params: Stored parameters.
        macs: MACs (density-scaled for fine-grained sparsity).
        structural_macs: Dense MACs of the channel-pruned structure, the stand-in for a latency
            budget (fine-grained zeros do not make dense kernels faster).
    """

    params: float | None
    macs: float | None
    structural_macs: float | None = None

    @classmethod
    def from_budget(cls, budget: Budget, dense_params: int, dense_macs: int,
                    bits: int = 32, latency_macs: float | None = None) -> Limits:
        """Args:
            latency_macs: Structural MACs that meet the latency budget, from a measured
                latency-vs-MACs calibration; without it a latency ratio maps to the same
                ratio of MACs.
        """
        params, macs = [], []
        if budget.size is not None:
            params.append(budget.size * dense_params)
        if budget.size_mib is not None:
            params.append(budget.size_mib * MIB * 8 / bits)
        if budget.macs is not None:
            macs.append(budget.macs * dense_macs)
        if budget.macs_abs is not None:
            macs.append(budget.macs_abs)
        structural = latency_macs
        if structural is None and budget.latency is not None:
            structural = budget.latency * dense_macs
        return cls(min(params) if params else None, min(macs) if macs else None, structural)

    def scaled(self, factor: float) -> Limits:
        return Limits(*(None if v is None else v * factor
                        for v in (self.params, self.macs, self.structural_macs)))

    def fits(self, params: float, macs: float, structural_macs: float | None = None) -> bool:
        return ((self.params is None or params <= self.params + 1e-9)
                and (self.macs is None or macs <= self.macs + 1e-9)
                and (self.structural_macs is None or structural_macs is None
                     or structural_macs <= self.structural_macs + 1e-9))
