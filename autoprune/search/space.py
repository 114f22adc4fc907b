"""The search space: an Optuna trial -> a :class:`Policy` that meets the budget by construction.

A trial samples per-layer *preferences*; one scalar is then bisected so that the allocation
uses the budget (size and MACs) as fully as possible within per-layer bounds. The default
space is centred on a strong prior: each layer's density is the prior's times
``exp(z)``, ``z ~ U(-perturbation, +perturbation)``. The wide space samples log-densities
independently in ``[log(min_density), 0]``. With ``sweep`` on, a trial also samples its target
as a fraction of the budget, to spread the Pareto front.

One class per mode (:class:`FineSpace`, :class:`ChannelSpace`, :class:`HybridSpace`), made by
:func:`make_space`.

Example:
    >>> space = make_space(model, x, SearchSettings(mode="channel"), limits)  # doctest: +SKIP
    >>> policy = space.sample(study.ask())                                   # doctest: +SKIP
"""

from __future__ import annotations

import copy
import dataclasses
import math
from functools import cached_property

import optuna
import torch
from torch import nn

from autoprune.engine.costmodel import ChannelCostModel, FineCostModel
from autoprune.engine.groups import keep_count
from autoprune.engine.policy import Policy
from autoprune.engine.prune import channel_prune
from autoprune.errors import ConfigError
from autoprune.search.budget import Limits
from autoprune.search.config import SearchSettings
from autoprune.search.heuristics import (
    CHANNEL_HEURISTICS,
    FINE_HEURISTICS,
    channel_heuristic,
    fine_heuristic,
    fit_to_budget,
)
from autoprune.search.sensitivity import AdditiveEstimator

__all__ = ["SearchSpace", "FineSpace", "ChannelSpace", "HybridSpace", "make_space", "project"]


def project(prefs: dict[str, float], fits, lo: float) -> dict[str, float]:
    """Scale positive preferences by one factor, clipped to [lo, 1], to just fit."""
    top = max(prefs.values())

    def family(t: float) -> dict[str, float]:
        s = math.exp(40.0 * t - 20.0) / top
        return {k: min(1.0, max(lo, s * v)) if t < 1.0 else 1.0 for k, v in prefs.items()}

    return fit_to_budget(family, fits)


class SearchSpace:
    """Turns trials and heuristic names into budget-meeting policies (base of the per-mode
    spaces; build one with :func:`make_space`).

    Args:
        model: The dense model (not modified). Heuristics read its weights; the cost models
            only its structure.
        example_inputs: A batch for tracing.
        settings: The study's search settings.
        limits: Absolute caps from the budget.
        scan: The sensitivity estimator of this mode's scan, when available.
        model_dict: The model spec, recorded in each policy.
    """

    mode = ""
    heuristics: tuple[str, ...] = ()

    def __init__(self, model: nn.Module, example_inputs: torch.Tensor, settings: SearchSettings,
                 limits: Limits, scan: AdditiveEstimator | None = None,
                 model_dict: dict | None = None) -> None:
        self.model = model
        self.x = example_inputs
        self.s = settings
        self.limits = limits
        self.scan = scan
        self.model_dict = model_dict
        self.input_size = tuple(example_inputs.shape[1:])

    def bind(self, model: nn.Module, limits: Limits, scan: AdditiveEstimator | None = None
             ) -> SearchSpace:
        """The same space over another model of the same structure (e.g. the trained one),
        keeping the cost models already built."""
        other = copy.copy(self)
        other.__dict__.pop("prior", None)
        other.model, other.limits, other.scan = model, limits, scan
        return other

    def tightened(self, scale: float) -> SearchSpace:
        """The same space with its structural-MACs cap (a latency budget's stand-in) scaled
        by ``scale``, the other caps unchanged (:class:`~autoprune.search.calibration.
        LatencyRefit` re-projects a trial whose structure measured too slow onto it)."""
        if scale == 1.0 or self.limits.structural_macs is None:
            return self
        other = copy.copy(self)
        other.__dict__.pop("prior", None)
        other.limits = dataclasses.replace(
            self.limits, structural_macs=self.limits.structural_macs * scale)
        return other

    def min_structural_scale(self, factor: float = 1.0) -> float:
        """The smallest :meth:`tightened` scale at which a policy within the search bounds
        still meets ``factor`` x the structural-MACs cap."""
        cap = self.limits.structural_macs
        structural = self.smallest()[2]
        if not cap or structural is None:
            return 0.0
        return min(1.0, structural * (1 + 1e-9) / (cap * factor))

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
        """Budget check on keep ratios, through the channel counts :meth:`snap` makes of
        them."""
        cost = self.channel_cost

        def fits(keep: dict[str, float]) -> bool:
            params, macs = cost.cost(self.snap(keep))
            return limits.fits(params, macs, macs)

        return fits

    def snap(self, keep: dict[str, float]) -> dict[str, float]:
        """``keep`` with every group's kept channels rounded to a multiple of
        ``search.round_to`` (at least one multiple, at most the group's channels); unchanged
        when it is 0. Rounding is monotone, so a budget bisection over snapped keeps stays
        valid, and a snapped ratio prunes to exactly its count."""
        n = self.s.round_to
        if not n:
            return keep
        ch = self.channel_cost.channels
        return {g: keep_count(k, ch[g], n) / ch[g] for g, k in keep.items()}

    def fine_allocation(self, name: str, limits: Limits, model: nn.Module | None = None,
                        cost: FineCostModel | None = None) -> dict[str, float]:
        model = model if model is not None else self.model
        return fine_heuristic(name, model, self.fine_fits(limits, cost),
                              min_density=self.s.min_density if name != "uniform" else 0.0,
                              scan=self.scan)

    def channel_allocation(self, name: str, limits: Limits) -> dict[str, float]:
        return self.snap(channel_heuristic(name, self.model, self.x, self.channel_cost.ids,
                                           self.channel_fits(limits),
                                           min_keep=self.s.min_density, scan=self.scan))

    # ------------------------------------------------------------------ per mode

    def smallest(self) -> tuple[float, float, float | None]:
        """``(params, MACs, structural MACs)`` of the smallest policy within bounds."""
        raise NotImplementedError

    @cached_property
    def prior(self) -> dict[str, float]:
        """The centred space's prior allocation at the full budget."""
        raise NotImplementedError

    def baseline_policy(self, name: str, factor: float = 1.0) -> Policy:
        """A heuristic's policy at ``factor`` x the budget (1: the full budget)."""
        raise NotImplementedError

    def prior_at(self, factor: float) -> dict[str, float]:
        """The centred space's prior for a trial targeting ``factor`` x the budget: with
        ``search.centre = "target"`` the prior heuristic's allocation there (what the ladder
        enqueues at that level), else the full budget's (:attr:`prior`)."""
        if factor == 1.0 or self.s.centre == "budget":
            return self.prior
        return self._allocation(self.limits.scaled(factor))

    def _allocation(self, limits: Limits) -> dict[str, float]:
        """The prior heuristic's allocation under ``limits``."""
        raise NotImplementedError

    def sample(self, trial: optuna.Trial, factor: float | None = None) -> Policy:
        """Sample a policy that meets ``factor`` x the budget (default: the sweep's sampled
        target when the sweep is on, else the full budget)."""
        raise NotImplementedError

    def ratios(self, policy: Policy) -> dict[str, float]:
        """The policy's pruning ratios in the terms of this mode's scan."""
        raise NotImplementedError

    def size_mib(self, policy: Policy) -> float:
        """The policy's stored size, from the cost models (no pruning)."""
        raise NotImplementedError

    # ------------------------------------------------------------------ shared

    def check_feasible(self, factor: float = 1.0) -> None:
        """Raise ConfigError, before any training, if no policy in bounds meets ``factor`` x
        the budget (the sweep's floor is checked with ``factor = search.floor``)."""
        params, macs, structural = self.smallest()
        limits = self.limits.scaled(factor)
        if not limits.fits(params, macs, structural):
            what = "The budget is impossible" if factor == 1.0 else (
                f"The sweep's floor is impossible (search.floor={factor} x the budget)")
            raise ConfigError(
                f"{what}: even the smallest policy within the search bounds (every layer at "
                f"density/keep {self.s.min_density}) has {params:,.0f} parameters and "
                f"{macs:,.0f} MACs, above the caps of {_fmt(limits.params)} parameters and "
                f"{_fmt(limits.macs)} MACs. Loosen the budget, raise search.floor or lower "
                f"search.min_density.")

    def baseline_names(self) -> list[str]:
        """The heuristics enqueued as warm-start baselines (sensitivity only with a scan)."""
        return [n for n in self.heuristics if n != "sensitivity" or self.scan is not None]

    def estimate(self, policy: Policy) -> float | None:
        """The scan's additive accuracy estimate of ``policy`` (``None`` without a scan)."""
        return None if self.scan is None else self.scan.predict(self.ratios(policy))

    def _policy(self, sparsity=None, keep=None, **meta) -> Policy:
        return Policy(self.mode, sparsity or {}, keep or {}, self.model_dict,
                      self.input_size, meta)

    def _target(self, trial: optuna.Trial, factor: float | None) -> float:
        if factor is not None:
            return factor
        return trial.suggest_float("target", self.s.floor, 1.0) if self.s.sweep else 1.0

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


class FineSpace(SearchSpace):
    """Per-weight sparsities (weights zeroed)."""

    mode = "fine"
    heuristics = FINE_HEURISTICS

    def smallest(self):
        s = {k: 1.0 - self.s.min_density for k in self.fine_cost.names}
        return self.fine_cost.params(s), self.fine_cost.macs(s), None

    @cached_property
    def prior(self) -> dict[str, float]:
        return self._allocation(self.limits)

    def _allocation(self, limits: Limits) -> dict[str, float]:
        return self.fine_allocation(self.s.prior, limits)

    def baseline_policy(self, name: str, factor: float = 1.0) -> Policy:
        density = self.fine_allocation(name, self.limits.scaled(factor))
        return self._policy(sparsity=_sparsity(density), baseline=name, target=factor)

    def sample(self, trial: optuna.Trial, factor: float | None = None) -> Policy:
        factor = self._target(trial, factor)
        prefs = self._prefs(trial, self.fine_cost.names, self.prior_at(factor), "z")
        density = project(prefs, self.fine_fits(self.limits.scaled(factor)), self.s.min_density)
        return self._policy(sparsity=_sparsity(density), target=factor)

    def ratios(self, policy: Policy) -> dict[str, float]:
        return dict(policy.sparsity)

    def size_mib(self, policy: Policy) -> float:
        return self.fine_cost.size_mib(policy.sparsity)


class ChannelSpace(SearchSpace):
    """Per-group channel keep ratios (channels removed)."""

    mode = "channel"
    heuristics = CHANNEL_HEURISTICS

    def smallest(self):
        k = self.snap({g: self.s.min_density for g in self.channel_cost.ids})
        params, macs = self.channel_cost.cost(k)
        return params, macs, macs

    def _prior_name(self) -> str:
        return self.s.prior if self.s.prior in CHANNEL_HEURISTICS else "uniform"

    @cached_property
    def prior(self) -> dict[str, float]:
        return self._allocation(self.limits)

    def _allocation(self, limits: Limits) -> dict[str, float]:
        return self.channel_allocation(self._prior_name(), limits)

    def baseline_policy(self, name: str, factor: float = 1.0) -> Policy:
        keep = self.channel_allocation(name, self.limits.scaled(factor))
        return self._policy(keep=keep, baseline=name, target=factor)

    def sample(self, trial: optuna.Trial, factor: float | None = None) -> Policy:
        factor = self._target(trial, factor)
        prefs = self._prefs(trial, self.channel_cost.ids, self.prior_at(factor), "c")
        keep = self.snap(project(prefs, self.channel_fits(self.limits.scaled(factor)),
                                 self.s.min_density))
        return self._policy(keep=keep, target=factor)

    def ratios(self, policy: Policy) -> dict[str, float]:
        return {k: 1.0 - v for k, v in policy.keep.items()}

    def size_mib(self, policy: Policy) -> float:
        return self.channel_cost.size_mib(policy.keep)


class HybridSpace(ChannelSpace):
    """Channels removed first, then the remaining weights sparsified (LAMP-centred).

    Its heuristics: each channel heuristic taking half the log-reduction, LAMP the rest; and
    ``lamp``, the whole reduction by LAMP on the unpruned channels (the fine-grained
    baseline a hybrid policy has to beat; channels go only where a latency cap, which weight
    sparsity cannot meet, demands them, uniformly)."""

    mode = "hybrid"
    heuristics = CHANNEL_HEURISTICS + ("lamp",)

    def smallest(self):
        params, macs, structural = super().smallest()
        fixed = self.fine_cost.fixed_params
        return fixed + (params - fixed) * self.s.min_density, macs, structural

    @cached_property
    def prior(self) -> dict[str, float]:
        return self.channel_allocation(self._prior_name(), self._channel_share_limits(0.5))

    def baseline_policy(self, name: str, factor: float = 1.0) -> Policy:
        """Half the log-reduction by the heuristic's channels, the rest by LAMP on the
        channel-pruned model (``lamp``: all of it by LAMP)."""
        limits = self.limits.scaled(factor)
        if name == "lamp":
            keep = self.channel_allocation("uniform", self._channel_share_limits(0.0, limits))
        else:
            keep = self.channel_allocation(name, self._channel_share_limits(0.5, limits))
        return self._hybrid_fine(keep, None, limits, baseline=name, target=factor)

    def sample(self, trial: optuna.Trial, factor: float | None = None) -> Policy:
        factor = self._target(trial, factor)
        limits = self.limits.scaled(factor)
        share = trial.suggest_float("channel_share", 0.0, 1.0)
        share_limits = self._channel_share_limits(share, limits)
        prior = self.channel_allocation("uniform", share_limits)
        prefs = self._prefs(trial, self.channel_cost.ids, prior, "c")
        keep = self.snap(project(prefs, self.channel_fits(share_limits), self.s.min_density))
        return self._hybrid_fine(keep, trial, limits, target=factor, channel_share=share)

    def size_mib(self, policy: Policy) -> float:
        pruned = channel_prune(self.model, policy.keep, self.x)
        return FineCostModel(pruned, self.input_size).size_mib(policy.sparsity)

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
        pruned = channel_prune(self.model, keep, self.x)
        cost = FineCostModel(pruned, self.input_size)
        lamp = self.fine_allocation("lamp", limits, pruned, cost)
        if trial is not None and self.s.space == "centred":
            prefs = self._prefs(trial, cost.names, lamp, "f")
            lamp = project(prefs, self.fine_fits(limits, cost), self.s.min_density)
        return self._policy(sparsity=_sparsity(lamp), keep=keep, **meta)


SPACES: dict[str, type[SearchSpace]] = {"fine": FineSpace, "channel": ChannelSpace,
                                        "hybrid": HybridSpace}


def make_space(model: nn.Module, example_inputs: torch.Tensor, settings: SearchSettings,
               limits: Limits, scan: AdditiveEstimator | None = None,
               model_dict: dict | None = None) -> SearchSpace:
    """The search space of ``settings.mode`` (arguments: see :class:`SearchSpace`)."""
    return SPACES[settings.mode](model, example_inputs, settings, limits, scan, model_dict)


def _sparsity(density: dict[str, float]) -> dict[str, float]:
    return {k: 1.0 - v for k, v in density.items()}


def _fmt(v: float | None) -> str:
    return "no" if v is None else f"{v:,.0f}"
