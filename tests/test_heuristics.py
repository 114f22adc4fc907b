"""The heuristics the search must beat, checked against their definitions."""

from __future__ import annotations

import pandas as pd
import pytest
import torch
from torch import nn

from autoprune.engine.costmodel import FineCostModel
from autoprune.models import ModelSpec, build_model
from autoprune.search.heuristics import (
    channel_heuristic,
    fine_heuristic,
    fit_to_budget,
    lamp_scores,
    sensitivity_allocation,
)
from autoprune.search.sensitivity import AdditiveEstimator


def test_fit_to_budget_finds_the_largest_fitting_knob():
    alloc = fit_to_budget(lambda t: {"a": t}, lambda a: a["a"] <= 0.37)
    assert 0.37 - 1e-9 < alloc["a"] <= 0.37
    assert fit_to_budget(lambda t: {"a": t}, lambda a: True) == {"a": 1.0}
    with pytest.raises(ValueError, match="cannot be met"):
        fit_to_budget(lambda t: {"a": 0.5 + t}, lambda a: a["a"] < 0.4)


def test_lamp_scores_match_the_definition():
    w = torch.tensor([3.0, 1.0, 2.0], dtype=torch.float64)
    # score(w_i) = w_i^2 / sum of w_j^2 over |w_j| >= |w_i|
    expected = torch.tensor([9 / 9, 1 / 14, 4 / 13], dtype=torch.float64)
    assert torch.allclose(lamp_scores(w), expected)


class TwoLayers(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Linear(10, 10, bias=False)
        self.b = nn.Linear(10, 10, bias=False)
        with torch.no_grad():
            self.a.weight.copy_(torch.linspace(0.5, 1.5, 100).reshape(10, 10))  # large
            self.b.weight.copy_(torch.full((10, 10), 0.01))  # small weights
            self.b.weight[0, :] = 2.0                        # ten large ones

    def forward(self, x):
        return self.b(self.a(x))


def _half(model):
    cost = FineCostModel(model, (10,))

    def fits(density):
        return cost.params({k: 1 - v for k, v in density.items()}) <= 100
    return fits


def test_global_magnitude_prunes_the_smallest_weights_anywhere():
    model = TwoLayers()
    d = fine_heuristic("global_magnitude", model, _half(model))
    assert d["a.weight"] == pytest.approx(0.9, abs=0.011)  # ten of its 100 go first
    assert d["b.weight"] == pytest.approx(0.1, abs=0.011)  # only its ten large ones stay


def test_lamp_keeps_each_layers_largest_weight_and_uniform_is_uniform():
    model = TwoLayers()
    lamp = fine_heuristic("lamp", model, _half(model))
    assert lamp["a.weight"] >= 0.01 and lamp["b.weight"] >= 0.01
    assert lamp["a.weight"] + lamp["b.weight"] == pytest.approx(1.0, abs=0.02)
    uni = fine_heuristic("uniform", model, _half(model))
    assert uni["a.weight"] == uni["b.weight"] == pytest.approx(0.5, abs=0.01)


def test_erk_keeps_more_of_small_layers():
    model = build_model(ModelSpec("vgg", 0.25, 1, 10))
    cost = FineCostModel(model, (1, 32, 32))
    fits = lambda d: cost.params({k: 1 - v for k, v in d.items()}) <= 0.2 * cost.total_params  # noqa: E731
    d = fine_heuristic("erk", model, fits)
    # ERK density ∝ (sum of dims) / (product of dims): the 3x3 conv with the most weights
    # is pruned hardest, the classifier (few weights) least
    assert d["features.0.weight"] > d["features.24.weight"]
    assert d["classifier.weight"] > d["features.24.weight"]
    assert cost.params({k: 1 - v for k, v in d.items()}) <= 0.2 * cost.total_params


def test_sensitivity_threshold_prunes_insensitive_layers_more():
    table = pd.DataFrame(
        [[layer, r, 90.0 - drop * r, 0, 0, 0] for layer, drop in (("x.weight", 1.0),
                                                                    ("y.weight", 40.0))
         for r in (0.0, 0.5, 0.9)],
        columns=["layer", "ratio", "accuracy", "accuracy_no_recal", "params", "macs"])
    scan = AdditiveEstimator(table, 90.0)
    alloc = sensitivity_allocation(scan, ["x.weight", "y.weight"], 0.02,
                                   lambda a: a["x.weight"] + a["y.weight"] <= 1.0)
    assert alloc["x.weight"] < alloc["y.weight"]  # x loses little: pruned more
    assert alloc["x.weight"] + alloc["y.weight"] <= 1.0 + 1e-9


def test_channel_uniform_and_global_ranking_fit_the_budget():
    from autoprune.engine.costmodel import ChannelCostModel

    model = build_model(ModelSpec("resnet20", 0.5, 1, 10))
    x = torch.zeros(1, 1, 32, 32)
    cost = ChannelCostModel(model, x)
    cap = 0.5 * cost.params({})
    fits = lambda k: cost.params(k) <= cap  # noqa: E731
    uni = channel_heuristic("uniform", model, x, cost.ids, fits)
    assert len(set(uni.values())) == 1 and cost.params(uni) <= cap
    glob = channel_heuristic("global_ranking", model, x, cost.ids, fits, min_keep=0.05)
    assert cost.params(glob) <= cap and len(set(glob.values())) > 1
    with pytest.raises(ValueError, match="'magic'"):
        channel_heuristic("magic", model, x, cost.ids, fits)
