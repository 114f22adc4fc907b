"""Latency calibration: turn a latency budget into a structural-MACs cap the search can
project onto, measured on the study's device, batch size and threads before any training.

Latency depends on the structure, not the weights: uniformly channel-pruned copies of the
untrained model are timed alternately with it, a line (latency / dense latency) = a + b x MACs
is fitted to the ratios, and solved for the cap.

:class:`LatencyTable` is the finer model (NetAdapt / HALP style lookup table): each coupling
group pruned alone to each keep level, timed alternately with the dense model, gives that
group's saving; a policy's latency is dense minus the sum of its groups' savings, scaled by
one factor fitted on a few random policies (savings of neighbouring groups overlap where they
share a layer).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from autoprune.engine.costmodel import ChannelCostModel
from autoprune.engine.metrics import SpeedupResult, count_macs
from autoprune.engine.policy import Policy
from autoprune.engine.prune import channel_prune
from autoprune.errors import ConfigError
from autoprune.search.budget import Budget
from autoprune.search.config import LatencySettings

__all__ = ["calibrate_latency", "macs_line", "LatencyTable", "measure_latency_table",
           "LatencyRefit"]

_KEEPS = (0.25, 0.5, 0.75)


def calibrate_latency(model: nn.Module, example_inputs: torch.Tensor, cost: ChannelCostModel,
                      budget: Budget, *, min_keep: float, settings: LatencySettings,
                      speedup: Callable[[nn.Module], SpeedupResult], margin: float = 0.03,
                      snap: Callable[[dict], dict] | None = None) -> dict | None:
    """The structural MACs expected to meet the latency budget, as the study's record keeps
    it (``None``: no latency budget).

    Each uniform cut is timed alternately with the dense structure (``speedup``), and the line
    is fitted to the ratios cut / dense of each run: drifts of a shared machine hit both
    models of a run and cancel, where timing each model once, dense last, let one slow or fast
    dense run move the whole cap: six calibrations of the demo's ``latency = 0.7`` gave a cap
    of 0.60 ± 0.04 of dense MACs timed once each, 0.60 ± 0.016 alternately
    (``reports/benchmarks/latency_calibration_demo.md``).

    Args:
        speedup: A model timed alternately with the dense structure, with the study's
            latency settings.
        margin: Fraction of the cap kept in reserve for measurement noise.
        snap: The space's rounding of keep ratios (``search.round_to``), so the cuts
            timed have the channel counts the search's policies will have.

    Returns:
        ``{"structural_macs"}`` (``None`` where latency does not grow with MACs on this
        device), ``"dense_ms"`` (median of the dense runs), ``"dense_ms_range"`` (their
        spread) and ``"points"`` (``[structural MACs, ratio to dense]`` of each cut).

    Raises:
        ConfigError: Even the smallest policy within bounds is slower than the cap.
    """
    if "latency" not in budget.axes():
        return None
    points, dense_runs = [], []
    cuts = _uniform_cuts(model, example_inputs, cost, min_keep, snap)
    for macs, cut in cuts[:-1]:
        r = speedup(cut)
        dense_runs += r.reference_ms
        points.append((macs, float(np.median([m / d for d, m in
                                              zip(r.reference_ms, r.model_ms)]))))
    points.append((cuts[-1][0], 1.0))
    dense_ms = float(np.median(dense_runs))
    cap = budget.caps({"size_mib": 0.0, "macs": 0, "latency_ms": dense_ms})["latency_ms"]
    cap_ratio, fastest = cap / dense_ms, points[0][1]
    if fastest > cap_ratio:
        raise ConfigError(
            f"The latency budget is impossible: the smallest policy within the search bounds "
            f"measures {fastest:.3f} of the dense model's {dense_ms:.3f} ms (batch "
            f"{settings.batch_size}, {settings.threads} threads, {settings.device}), above "
            f"the cap of {cap_ratio:.3f} ({cap:.3f} ms).")
    macs, ratios = np.array(points, dtype=float).T
    b, a = np.polyfit(macs, ratios, 1)
    structural = (float(np.clip(((1 - margin) * cap_ratio - a) / b, macs.min(), macs.max()))
                  if b > 0 else None)
    return {"structural_macs": structural, "dense_ms": dense_ms,
            "dense_ms_range": [float(min(dense_runs)), float(max(dense_runs))],
            "points": [[int(m), r] for m, r in points]}


def _uniform_cuts(model: nn.Module, example_inputs: torch.Tensor, cost: ChannelCostModel,
                  min_keep: float, snap: Callable[[dict], dict] | None = None
                  ) -> list[tuple[int, nn.Module]]:
    """``(structural MACs, model)`` of uniformly pruned copies, smallest first, then of the
    dense model (last): the points the calibration's line is fitted on."""
    cuts = []
    for keep in (min_keep, *_KEEPS):
        k = {g: max(min_keep, keep) for g in cost.ids}
        k = snap(k) if snap is not None else k
        cuts.append((cost.macs(k), channel_prune(model, k, example_inputs)))
    cuts.append((count_macs(model, tuple(example_inputs.shape[1:])), model))
    return cuts


def macs_line(model: nn.Module, example_inputs: torch.Tensor, cost: ChannelCostModel, *,
              min_keep: float, measure: Callable[[nn.Module], float],
              snap: Callable[[dict], dict] | None = None) -> tuple[float, float]:
    """``(a, b)`` of a line latency = a + b x structural MACs fitted on the calibration's
    uniform cuts (rounded by ``snap`` as there), each timed once by ``measure`` (ms), for
    comparing it with :class:`LatencyTable`."""
    macs, ms = np.array([(m, measure(cut)) for m, cut in
                         _uniform_cuts(model, example_inputs, cost, min_keep, snap)],
                        dtype=float).T
    b, a = np.polyfit(macs, ms, 1)
    return float(a), float(b)


@dataclass(frozen=True)
class LatencyTable:
    """Per-group latency savings at each keep level (see the module).

    Attributes:
        dense_ms: The dense model's latency in the measurement's run.
        keeps: The keep levels measured, ascending (keep 1 saves nothing).
        savings: Group id -> ms saved with only that group at each keep level.
        scale: Factor applied to the summed savings, fitted on random policies.
    """

    dense_ms: float
    keeps: tuple[float, ...]
    savings: dict[str, tuple[float, ...]]
    scale: float = 1.0

    def saving(self, keep: dict[str, float]) -> float:
        """The summed, unscaled savings of ``keep`` (missing groups: kept whole)."""
        xs = [*self.keeps, 1.0]
        return float(sum(np.interp(keep.get(g, 1.0), xs, [*s, 0.0])
                         for g, s in self.savings.items()))

    def predict(self, keep: dict[str, float]) -> float:
        """Predicted latency in ms of the channel policy ``keep``."""
        return self.dense_ms - self.scale * self.saving(keep)

    def to_dict(self) -> dict:
        return {"dense_ms": self.dense_ms, "keeps": list(self.keeps),
                "savings": {g: list(v) for g, v in self.savings.items()}, "scale": self.scale}

    @classmethod
    def from_dict(cls, d: dict) -> LatencyTable:
        return cls(float(d["dense_ms"]), tuple(d["keeps"]),
                   {g: tuple(v) for g, v in d["savings"].items()}, float(d["scale"]))


def measure_latency_table(model: nn.Module, example_inputs: torch.Tensor,
                          cost: ChannelCostModel, *, ratio: Callable[[nn.Module], float],
                          measure: Callable[[nn.Module], float], min_keep: float,
                          keeps: tuple[float, ...] = (0.25, 0.5, 0.75), fit_policies: int = 6,
                          seed: int = 0, progress: Callable[[], None] | None = None
                          ) -> LatencyTable:
    """Measure a :class:`LatencyTable` on the study's device.

    Args:
        ratio: A model's latency divided by the dense model's, measured alternately with it
            in the same run (drifts of a shared machine cancel).
        measure: A model's latency in ms (the dense model's, once).
        min_keep: Keep levels below it are raised to it.
        fit_policies: Random policies (keep ratios uniform in [min_keep, 1] per group)
            measured to fit the scale of the summed savings.
        progress: Called after each measurement.
    """
    levels = tuple(sorted({max(min_keep, k) for k in keeps if k < 1.0}))
    dense_ms = measure(model)
    savings = {}
    for g in cost.ids:
        row = []
        for k in levels:
            row.append(dense_ms * (1.0 - ratio(channel_prune(model, {g: k}, example_inputs))))
            if progress:
                progress()
        savings[g] = tuple(row)
    table = LatencyTable(dense_ms, levels, savings)
    rng = random.Random(seed)
    xs, ys = [], []
    for _ in range(fit_policies):
        keep = {g: rng.uniform(min_keep, 1.0) for g in cost.ids}
        xs.append(table.saving(keep))
        ys.append(dense_ms * (1.0 - ratio(channel_prune(model, keep, example_inputs))))
        if progress:
            progress()
    x, y = np.array(xs), np.array(ys)
    scale = float(x @ y / (x @ x)) if fit_policies and float(x @ x) > 0 else 1.0
    return LatencyTable(dense_ms, levels, savings, scale)


@dataclass(frozen=True)
class LatencyRefit:
    """Re-project a channel policy until its measured structure meets the latency cap.

    The MACs line misjudges single policies (odd channel counts run slower per MAC; on
    ``vgg_channel_latency50`` uniform's cut for the full budget measured 0.565 x dense against
    0.5). A trial's pruned structure is therefore timed before it is fine-tuned (latency
    depends on the structure, not the weights), and while it is slower than
    ``(1 - margin) x cap_ms`` the trial's policy is built again under a structural-MACs cap
    scaled down by ``(target / measured) ** 1.5`` (latency has a fixed part that MACs do not
    remove, so a proportional cut would undershoot), at most ``tries`` times. The trial keeps
    its own heuristic or sampled preferences: only the cap it is projected onto shrinks.

    With ``grow > 0`` the line's errors on the safe side are corrected too: a structure
    measured faster than ``(1 - grow) x target`` is built again under a larger cap (on
    ``mobilenetv2_channel_latency50`` under ONNX Runtime the sensitivity threshold's
    full-budget cut ran at 0.32 x dense against a budget of 0.5). Each try aims at the middle
    of that band, along the log-log line through the last two measurements (proportionally
    from the first: :meth:`_next_scale`), and once a structure has met the target and a
    larger one has not, stays between the two; the largest structure that met the target is
    kept. Every measurement after the first is then confirmed by the median of
    ``1 + confirm`` runs, since the kept structure lies close to the target.

    Attributes:
        cap_ms: The latency cap in ms (with ``grow``: the trial's level's).
        measure: Latency in ms of a policy's pruned structure.
        tries: Re-projections at most.
        margin: Fraction of the cap kept in reserve for measurement noise.
        min_scale: The smallest scale of the structural-MACs cap with a policy within the
            search bounds (the smallest policy's structural MACs over the cap).
        confirm: Further measurements of a structure measured slower than the target; the
            median of all decides (single runs on a shared CPU spike: on
            ``vgg_channel_latency50`` a re-projected, smaller structure once measured 1.47 ms
            after 0.91 ms for the larger one).
        grow: Width of the band under the target a structure is grown into (0: never grown).
    """

    cap_ms: float
    measure: Callable[[Policy], float]
    tries: int = 3
    margin: float = 0.03
    min_scale: float = 0.0
    confirm: int = 2
    grow: float = 0.0

    @property
    def target_ms(self) -> float:
        """The latency a structure must measure at most: ``(1 - margin) x cap_ms``."""
        return (1.0 - self.margin) * self.cap_ms

    def fit(self, make: Callable[[float], Policy]) -> tuple[Policy, list[dict[str, float]], float]:
        """``(policy, steps, ms)``: the policy ``make(scale)`` (``scale``: of the
        structural-MACs cap; 1 = the trial as proposed) that met the target (with ``grow``:
        the largest that did), or the last one tried; ``steps`` lists each measurement as
        ``{"scale", "ms"}`` in order, ``ms`` is the returned policy's."""
        target, low = self.target_ms, (1.0 - self.grow) * self.target_ms
        scale, policy, steps = 1.0, make(1.0), []
        best = None  # (scale, policy, ms) of the largest structure that met the target
        fail = None  # the smallest scale measured over the target
        for i in range(self.tries + 1):
            ms = float(self.measure(policy))
            if self.confirm and (ms > target or (self.grow and i)):
                # one slow run is often a spike; a re-projected structure lies near the target
                ms = float(np.median([ms, *(self.measure(policy)
                                             for _ in range(self.confirm))]))
            steps.append({"scale": scale, "ms": ms})
            if ms <= target:
                best = (scale, policy, ms)
                if not self.grow or ms >= low or i == self.tries:
                    break
            else:
                fail = scale if fail is None else min(fail, scale)
                if i == self.tries or scale <= self.min_scale:
                    break
            if not self.grow:  # shrink only, by the fixed-part rule
                nxt = max(self.min_scale, scale * (target / ms) ** 1.5)
            else:
                nxt = max(self.min_scale, self._next_scale(steps, (target + low) / 2))
                if best is not None and fail is not None and not best[0] < nxt < fail:
                    nxt = math.sqrt(best[0] * fail)  # stay between the two
            new = make(nxt)
            if self.grow and new == policy:  # the cap no longer changes the structure
                break
            scale, policy = nxt, new
        if best is not None:
            return best[1], steps, best[2]
        return policy, steps, ms

    @staticmethod
    def _next_scale(steps: list[dict[str, float]], aim: float) -> float:
        """The scale expected to measure ``aim`` ms: proportional from the first measurement,
        then along the log-log line through the last two (how latency follows the cap
        differs by model and runtime: a fixed part makes it grow slower than MACs, kernels
        that suit some channel counts make it jump), its slope held within [0.3, 3]."""
        last = steps[-1]
        slope = 1.0
        if len(steps) > 1:
            prev = steps[-2]
            ds = math.log(last["scale"] / prev["scale"])
            if abs(ds) > 1e-9 and last["ms"] > 0 and prev["ms"] > 0:
                slope = min(3.0, max(0.3, math.log(last["ms"] / prev["ms"]) / ds))
        return last["scale"] * (aim / last["ms"]) ** (1.0 / slope)
