"""Latency calibration: turn a latency budget into a structural-MACs cap the search can
project onto, measured on the study's device, batch size and threads before any training.

Latency depends on the structure, not the weights: uniformly channel-pruned copies of the
untrained model are timed, a line latency = a + b x MACs is fitted, and solved for the cap.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from autoprune.engine.costmodel import ChannelCostModel
from autoprune.engine.metrics import count_macs
from autoprune.engine.prune import channel_prune
from autoprune.errors import ConfigError
from autoprune.search.budget import Budget
from autoprune.search.config import LatencySettings

__all__ = ["latency_macs_cap"]

_KEEPS = (0.25, 0.5, 0.75)


def latency_macs_cap(model: nn.Module, example_inputs: torch.Tensor, cost: ChannelCostModel,
                     budget: Budget, *, min_keep: float, settings: LatencySettings,
                     measure: Callable[[nn.Module], float], margin: float = 0.03
                     ) -> float | None:
    """Structural MACs expected to meet the latency budget (``None``: no latency budget, or
    latency does not grow with MACs on this device).

    Args:
        measure: Median latency in ms of a model, with the study's latency settings.
        margin: Fraction of the cap kept in reserve for measurement noise.

    Raises:
        ValueError: Even the smallest policy within bounds is slower than the cap.
    """
    if "latency" not in budget.axes():
        return None
    points = []
    for keep in (min_keep, *_KEEPS):
        k = {g: max(min_keep, keep) for g in cost.ids}
        points.append((cost.macs(k), measure(channel_prune(model, k, example_inputs))))
    dense_ms = measure(model)
    points.append((count_macs(model, tuple(example_inputs.shape[1:])), dense_ms))
    cap = budget.caps({"size_mib": 0.0, "macs": 0, "latency_ms": dense_ms})["latency_ms"]
    fastest = points[0][1]
    if fastest > cap:
        raise ConfigError(
            f"The latency budget is impossible: the smallest policy within the search bounds "
            f"measures {fastest:.3f} ms (batch {settings.batch_size}, {settings.threads} "
            f"threads, {settings.device}), above the cap of {cap:.3f} ms.")
    macs, ms = np.array(points, dtype=float).T
    b, a = np.polyfit(macs, ms, 1)
    if b <= 0:
        return None
    return float(np.clip(((1 - margin) * cap - a) / b, macs.min(), macs.max()))
