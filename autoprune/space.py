"""The search space: an Optuna trial -> a :class:`Policy` that meets the budget by construction.

A trial samples per-layer *preferences*; one scalar is then bisected so that the allocation
uses the budget (size and MACs) as fully as possible within per-layer bounds. The default
space is centred on a strong prior: each layer's density is the prior's times
``exp(z)``, ``z ~ U(-perturbation, +perturbation)``. The wide space samples log-densities
independently in ``[log(min_density), 0]``. With ``sweep`` on, a trial also samples its target
as a fraction of the budget, to spread the Pareto front.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import optuna
import torch
from torch import nn

from autoprune.baselines import (
    CHANNEL_HEURISTICS,
    FINE_HEURISTICS,
    channel_heuristic,
    fine_heuristic,
    fit_to_budget,
)
from autoprune.config import Budget, SearchSettings
from autoprune.costmodel import ChannelCostModel, FineCostModel
from autoprune.metrics import MIB
from autoprune.policy import Policy
from autoprune.sensitivity import AdditiveEstimator

__all__ = ["Limits", "SearchSpace", "project"]


@dataclass(frozen=True)
class Limits:
    """Budgets as absolute caps (``None`` = no cap).

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
        params = []
        if budget.size is not None:
            params.append(budget.size * dense_params)
        if budget.size_mib is not None:
            params.append(budget.size_mib * MIB * 8 / bits)
        macs = []
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


def project(prefs: dict[str, float], fits, lo: float) -> dict[str, float]:
    """Scale positive preferences by one factor, clipped to [lo, 1], to just fit."""
    top = max(prefs.values())

    def family(t: float) -> dict[str, float]:
        s = math.exp(40.0 * t - 20.0) / top
        return {k: min(1.0, max(lo, s * v)) if t < 1.0 else 1.0 for k, v in prefs.items()}

    return fit_to_budget(family, fits)


class SearchSpace:
    """Turns trials and heuristic names into budget-meeting policies.

    Args:
        model: The trained dense model (not modified).
        example_inputs: A batch for tracing.
        settings: The study's search settings.
        limits: Absolute caps from the budget.
        scans: Sensitivity estimators by mode (``fine`` / ``channel``), when available.
        model_dict: The model spec, recorded in each policy.
    """

    def __init__(self, model: nn.Module, example_inputs: torch.Tensor, settings: SearchSettings,
                 limits: Limits, scans: dict[str, AdditiveEstimator] | None = None,
                 model_dict: dict | None = None) -> None:
        self.model = model
        self.x = example_inputs
        self.s = settings
        self.limits = limits
        self.scans = scans or {}
        self.model_dict = model_dict
        self.input_size = tuple(example_inputs.shape[1:])

    # ------------------------------------------------------------------ cost models

    @cached_property
    def fine_cost(self) -> FineCostModel:
        return FineCostModel(self.model, self.input_size)

    @cached_property
    def channel_cost(self) -> ChannelCostModel:
        return ChannelCostModel(self.model, self.x)

    def fine_fits(self, limits: Limits, cost: FineCostModel | None = None):
        """Budget check on densities, through exactly the sparsities a policy will store."""
        cost = cost or self.fine_cost

        def fits(density: dict[str, float]) -> bool:
            s = _sparsity(density)
            return limits.fits(cost.params(s), cost.macs(s))

        return fits

    def channel_fits(self, limits: Limits):
        cost = self.channel_cost

        def fits(keep: dict[str, float]) -> bool:
            params, macs = cost._cost(keep)
            return limits.fits(params, macs, macs)

        return fits

    # ------------------------------------------------------------------ feasibility

    def check_feasible(self) -> None:
        """Raise ValueError, before any training, if no policy in bounds meets the budget."""
        lo = self.s.min_density
        if self.s.mode == "fine":
            s = {k: 1.0 - lo for k in self.fine_cost.names}
            params, macs = self.fine_cost.params(s), self.fine_cost.macs(s)
        else:
            k = {g: lo for g in self.channel_cost.ids}
            params, macs = self.channel_cost.params(k), self.channel_cost.macs(k)
            if self.s.mode == "hybrid":
                params = self.fine_cost.fixed_params + (params - self.fine_cost.fixed_params) * lo
        if not self.limits.fits(params, macs, macs if self.s.mode != "fine" else None):
            raise ValueError(
                f"The budget is impossible: even the smallest policy within the search bounds "
                f"(every layer at density/keep {lo}) has {params:,.0f} parameters and "
                f"{macs:,.0f} MACs, above the caps of {_fmt(self.limits.params)} parameters and "
                f"{_fmt(self.limits.macs)} MACs. Loosen the budget or lower "
                f"search.min_density.")

    # ------------------------------------------------------------------ priors

    def _policy(self, sparsity=None, keep=None, **meta) -> Policy:
        return Policy(self.s.mode, sparsity or {}, keep or {}, self.model_dict,
                      self.input_size, meta)

    def fine_allocation(self, name: str, limits: Limits, model: nn.Module | None = None,
                        cost: FineCostModel | None = None) -> dict[str, float]:
        model = model if model is not None else self.model
        return fine_heuristic(name, model, self.fine_fits(limits, cost),
                              min_density=self.s.min_density if name != "uniform" else 0.0,
                              scan=self.scans.get("fine"))

    def channel_allocation(self, name: str, limits: Limits) -> dict[str, float]:
        return channel_heuristic(name, self.model, self.x, self.channel_cost.ids,
                                 self.channel_fits(limits), min_keep=self.s.min_density,
                                 scan=self.scans.get("channel"))

    @cached_property
    def prior(self) -> dict[str, float]:
        """The centred space's prior allocation at the full budget."""
        if self.s.mode == "fine":
            return self.fine_allocation(self.s.prior, self.limits)
        name = self.s.prior if self.s.prior in CHANNEL_HEURISTICS else "uniform"
        limits = self.limits if self.s.mode == "channel" else self._channel_share_limits(0.5)
        return self.channel_allocation(name, limits)

    def baseline_names(self) -> list[str]:
        names = FINE_HEURISTICS if self.s.mode == "fine" else CHANNEL_HEURISTICS
        scan = self.scans.get("fine" if self.s.mode == "fine" else "channel")
        return [n for n in names if n != "sensitivity" or scan is not None]

    def baseline_policy(self, name: str) -> Policy:
        """A heuristic's policy at the full budget (hybrid: half the reduction by channels,
        the rest by LAMP on the channel-pruned model)."""
        if self.s.mode == "fine":
            return self._policy(sparsity=_sparsity(self.fine_allocation(name, self.limits)),
                                baseline=name)
        if self.s.mode == "channel":
            return self._policy(keep=self.channel_allocation(name, self.limits), baseline=name)
        keep = self.channel_allocation(name, self._channel_share_limits(0.5))
        return self._hybrid_fine(keep, None, self.limits, baseline=name)

    # ------------------------------------------------------------------ sampling

    def _prefs(self, trial: optuna.Trial, names: list[str], prior: dict[str, float],
               prefix: str) -> dict[str, float]:
        out = {}
        for i, n in enumerate(names):
            if self.s.space == "centred":
                delta = self.s.perturbation
                z = trial.suggest_float(f"{prefix}{i}", -delta, delta) if delta > 0 else 0.0
                out[n] = prior[n] * math.exp(z)
            else:
                out[n] = math.exp(trial.suggest_float(f"{prefix}{i}",
                                                      math.log(self.s.min_density), 0.0))
        return out

    def _channel_share_limits(self, share: float, limits: Limits | None = None) -> Limits:
        """Caps for the channel part of a hybrid policy: ``share`` of the log-reduction."""
        limits = limits or self.limits
        dense_p = self.fine_cost.total_params
        dense_m = self.fine_cost.total_macs
        p = None if limits.params is None else dense_p * (limits.params / dense_p) ** share
        m = None if limits.macs is None else dense_m * (limits.macs / dense_m) ** share
        # latency depends on the channel structure alone: its cap is not shared
        return Limits(p, m, limits.structural_macs)

    def _hybrid_fine(self, keep: dict[str, float], trial: optuna.Trial | None, limits: Limits,
                     **meta) -> Policy:
        from autoprune.prune import channel_prune

        pruned = channel_prune(self.model, keep, self.x)
        cost = FineCostModel(pruned, self.input_size)
        lamp = self.fine_allocation("lamp", limits, pruned, cost)
        if trial is not None and self.s.space == "centred":
            prefs = self._prefs(trial, cost.names, lamp, "f")
            lamp = project(prefs, self.fine_fits(limits, cost), self.s.min_density)
        return self._policy(sparsity=_sparsity(lamp), keep=keep, **meta)

    def sample(self, trial: optuna.Trial) -> Policy:
        """Sample a policy that meets the budget (scaled by the sweep target if on)."""
        factor = trial.suggest_float("target", self.s.floor, 1.0) if self.s.sweep else 1.0
        limits = self.limits.scaled(factor)
        lo = self.s.min_density
        if self.s.mode == "fine":
            prefs = self._prefs(trial, self.fine_cost.names, self.prior, "z")
            return self._policy(sparsity=_sparsity(project(prefs, self.fine_fits(limits), lo)),
                                target=factor)
        if self.s.mode == "channel":
            prefs = self._prefs(trial, self.channel_cost.ids, self.prior, "c")
            return self._policy(keep=project(prefs, self.channel_fits(limits), lo),
                                target=factor)
        share = trial.suggest_float("channel_share", 0.0, 1.0)
        prior = self.channel_allocation("uniform", self._channel_share_limits(share, limits))
        prefs = self._prefs(trial, self.channel_cost.ids, prior, "c")
        keep = project(prefs, self.channel_fits(self._channel_share_limits(share, limits)), lo)
        return self._hybrid_fine(keep, trial, limits, target=factor, channel_share=share)


def _sparsity(density: dict[str, float]) -> dict[str, float]:
    return {k: 1.0 - v for k, v in density.items()}


def _fmt(v: float | None) -> str:
    return "no" if v is None else f"{v:,.0f}"
