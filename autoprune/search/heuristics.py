"""Heuristic allocations at a budget: the policies the search must beat.

Fine mode (per-weight density): uniform, global magnitude, LAMP (Lee et al. 2021), ERK
(Evci et al. 2020) and sensitivity threshold (the pruning lab's manual method, automated:
prune each layer as far as its scan allows within one accuracy-drop threshold, the threshold
set to meet the budget). Channel mode (per-group keep ratio): uniform, Torch-Pruning-style
global ranking of normalised group importances, and sensitivity threshold.

Each heuristic is a monotone family of allocations with one scalar knob; the knob is bisected
so that the allocation uses the budget as fully as it can.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import numpy as np
import torch
import torch_pruning as tp
from torch import nn

from autoprune.engine.groups import build_graph, classifier_name, iter_groups
from autoprune.engine.metrics import prunable_layers
from autoprune.errors import ConfigError
from autoprune.search.sensitivity import AdditiveEstimator

__all__ = ["FINE_HEURISTICS", "CHANNEL_HEURISTICS", "fit_to_budget", "fine_heuristic",
           "channel_heuristic", "lamp_scores", "sensitivity_allocation"]

FINE_HEURISTICS = ("uniform", "global_magnitude", "lamp", "erk", "sensitivity")
CHANNEL_HEURISTICS = ("uniform", "global_ranking", "sensitivity")

Allocation = dict[str, float]


def fit_to_budget(family: Callable[[float], Allocation], fits: Callable[[Allocation], bool],
                  lo: float = 0.0, hi: float = 1.0, iters: int = 60) -> Allocation:
    """Largest knob ``t`` in [lo, hi] whose allocation ``family(t)`` fits the budget.

    ``family`` must grow (keep more) with ``t``. Raises ValueError when even ``family(lo)``
    does not fit.
    """
    if not fits(family(lo)):
        raise ConfigError("The budget cannot be met even by the smallest allocation of this "
                          "heuristic within the search bounds.")
    if fits(family(hi)):
        return family(hi)
    for _ in range(iters):
        mid = 0.5 * (lo + hi)
        if fits(family(mid)):
            lo = mid
        else:
            hi = mid
    return family(lo)


# --------------------------------------------------------------------------- fine


def _weights(model: nn.Module) -> dict[str, torch.Tensor]:
    return {f"{n}.weight": m.weight.detach().cpu().flatten().abs().double()
            for n, m in prunable_layers(model).items()}


def lamp_scores(w: torch.Tensor) -> torch.Tensor:
    """LAMP score of each weight: w^2 / sum of w'^2 over weights at least as large."""
    sq, order = torch.sort(w**2)
    suffix = torch.flip(torch.cumsum(torch.flip(sq, [0]), 0), [0])
    scores = torch.empty_like(sq)
    scores[order] = sq / suffix.clamp_min(1e-300)
    return scores


def _threshold_family(scores: dict[str, torch.Tensor], min_density: float):
    """Keep, per layer, the weights whose score beats a global threshold."""
    sorted_scores = {k: torch.sort(v).values.numpy() for k, v in scores.items()}
    top = max(float(v.max()) for v in sorted_scores.values())
    logs = np.log10(max(top, 1e-300))

    def family(t: float) -> Allocation:
        # t = 1 keeps everything; t -> 0 raises the threshold towards the largest score
        thr = 0.0 if t >= 1.0 else 10 ** (logs - 12.0 * t)
        out = {}
        for k, v in sorted_scores.items():
            kept = len(v) - np.searchsorted(v, thr, side="left") if thr > 0 else len(v)
            out[k] = max(min_density, kept / len(v))
        return out

    return family


def fine_heuristic(name: str, model: nn.Module, fits: Callable[[Allocation], bool], *,
                   min_density: float = 0.0, scan: AdditiveEstimator | None = None
                   ) -> Allocation:
    """Per-weight densities of a fine-grained heuristic that fit the budget.

    Args:
        name: One of :data:`FINE_HEURISTICS`.
        fits: Budget check on a density allocation.
        min_density: Floor per layer.
        scan: Required by ``sensitivity``.
    """
    weights = _weights(model)
    names = list(weights)
    if name == "uniform":
        return fit_to_budget(lambda t: {k: max(min_density, t) for k in names}, fits)
    if name == "global_magnitude":
        return fit_to_budget(_threshold_family(weights, min_density), fits)
    if name == "lamp":
        return fit_to_budget(
            _threshold_family({k: lamp_scores(v) for k, v in weights.items()}, min_density),
            fits)
    if name == "erk":
        layers = prunable_layers(model)
        raw = {}
        for n, m in layers.items():
            shape = m.weight.shape
            raw[f"{n}.weight"] = float(sum(shape) / np.prod(shape))
        top = max(raw.values())
        return fit_to_budget(
            lambda t: {k: float(np.clip(t * 1e4 * v / top, min_density, 1.0))
                       if t < 1.0 else 1.0 for k, v in raw.items()}, fits)
    if name == "sensitivity":
        return sensitivity_allocation(scan, names, min_density, fits)
    raise ConfigError(f"Unknown fine heuristic {name!r}; known: {FINE_HEURISTICS}.")


def sensitivity_allocation(scan: AdditiveEstimator | None, names: list[str], floor: float,
                           fits: Callable[[Allocation], bool]) -> Allocation:
    """The pruning lab's manual method, automated: each layer pruned as far as its scan allows
    within one accuracy-drop threshold; the threshold is set to just meet the budget. Returns
    per-layer densities (fine) or keep ratios (channel), at least ``floor``."""
    if scan is None:
        raise ConfigError("The sensitivity heuristic needs a sensitivity scan.")
    grid = np.linspace(0.0, 0.99, 199)

    # a scan's drop curve is noisy and may dip; its running maximum (plus a tiny slope) makes
    # "the largest ratio within the allowed drop" grow smoothly as the threshold grows, so the
    # bisection can use the budget fully instead of jumping past it
    curves = {k: np.maximum.accumulate(np.array([scan.drop(k, r) for r in grid])) + 1e-6 * grid
              for k in names}

    def family(t: float) -> Allocation:
        # allowed drop shrinks as t grows: t = 1 allows none, t = 0 allows 100 points
        allowed = 100.0 * (1.0 - t) ** 3
        out = {}
        for k, drops in curves.items():
            ratio = float(np.interp(allowed, drops, grid)) if allowed >= drops[0] else 0.0
            out[k] = max(floor, 1.0 - ratio)
        return out

    return fit_to_budget(family, fits)


# --------------------------------------------------------------------------- channel


def channel_heuristic(name: str, model: nn.Module, example_inputs: torch.Tensor,
                      group_ids: list[str], fits: Callable[[Allocation], bool], *,
                      min_keep: float = 0.0, scan: AdditiveEstimator | None = None
                      ) -> Allocation:
    """Per-group keep ratios of a channel heuristic that fit the budget."""
    if name == "uniform":
        return fit_to_budget(lambda t: {g: max(min_keep, t) for g in group_ids}, fits)
    if name == "global_ranking":
        scores = _group_scores(model, example_inputs, group_ids)
        return fit_to_budget(_threshold_family(scores, min_keep), fits)
    if name == "sensitivity":
        return sensitivity_allocation(scan, group_ids, min_keep, fits)
    raise ConfigError(f"Unknown channel heuristic {name!r}; known: {CHANNEL_HEURISTICS}.")


def _group_scores(model: nn.Module, example_inputs: torch.Tensor,
                  group_ids: list[str]) -> dict[str, torch.Tensor]:
    """Torch-Pruning group L2 importance per channel, normalised by each group's mean (its
    default for global pruning), so one threshold ranks channels across groups."""
    probe = copy.deepcopy(model).eval()
    cls = dict(probe.named_modules())[classifier_name(probe, example_inputs)]
    dg = build_graph(probe, example_inputs)
    imp = tp.importance.GroupMagnitudeImportance(p=2, normalizer="mean")
    out = {}
    for gid, _root, group, _o, _i in iter_groups(probe, dg, cls):
        if gid in group_ids:
            out[gid] = imp(group).detach().double().clamp_min(1e-12)
    return out
