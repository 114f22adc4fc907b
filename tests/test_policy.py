from __future__ import annotations

import pytest
import torch

from autoprune.engine.groups import coupling_groups
from autoprune.engine.policy import Policy
from autoprune.engine.prune import weight_names
from autoprune.models import ModelSpec, build_model


def test_json_round_trip_is_exact():
    p = Policy("hybrid", sparsity={"features.0.weight": 0.1 + 0.2, "fc.weight": 1 / 3},
               keep={"a+b": 0.7000000000000001}, model=ModelSpec("vgg").to_dict(),
               input_size=(3, 32, 32), meta={"trial": 4, "baseline": None})
    q = Policy.from_json(p.to_json())
    assert q == p and q.sparsity["features.0.weight"] == 0.1 + 0.2
    assert p.to_sparsity_dict() == {"features.0.weight": 0.1 + 0.2, "fc.weight": 1 / 3}
    assert p.to_channel_ratios() == {"a+b": 0.3}


def test_bad_policies_name_the_problem():
    with pytest.raises(ValueError, match="'coarse'"):
        Policy("coarse")
    with pytest.raises(ValueError, match="x=1.2"):
        Policy("fine", sparsity={"x": 1.2})
    with pytest.raises(ValueError, match="hybrid"):
        Policy("fine", keep={"g": 0.5})
    with pytest.raises(ValueError, match="version"):
        Policy.from_dict({"format": "autoprune-policy", "version": 99, "mode": "fine"})
    with pytest.raises(ValueError, match="malformed"):
        Policy.from_json("{not json")


def test_policy_that_does_not_fit_lists_missing_and_extra():
    model = build_model(ModelSpec("cnn", 1.0, 1, 10))
    x = torch.zeros(1, 1, 28, 28)
    names = weight_names(model)
    sparsity = {n: 0.5 for n in names[1:]} | {"conv_extra.weight": 0.5}
    with pytest.raises(ValueError) as exc:
        Policy("fine", sparsity=sparsity).apply(model, x)
    msg = str(exc.value)
    assert "missing ['features.0.weight']" in msg and "extra ['conv_extra.weight']" in msg
    with pytest.raises(ValueError, match="extra \\['nope'\\]"):
        Policy("channel", keep={g.id: 0.5 for g in coupling_groups(model, x)} | {"nope": 0.5}
               ).apply(model, x)


def test_hybrid_applies_channels_then_sparsity():
    model = build_model(ModelSpec("cnn", 1.0, 1, 10))
    x = torch.zeros(1, 1, 28, 28)
    keep = {g.id: 0.5 for g in coupling_groups(model, x)}
    sparsity = {n: 0.5 for n in weight_names(model)}
    pruned, pruner = Policy("hybrid", sparsity=sparsity, keep=keep).apply(model, x)
    assert pruned.features[0].out_channels == 8
    w = pruned.features[3].weight
    assert w.shape[1] == 8 and int((w == 0).sum()) == round(w.numel() * 0.5)
    assert pruner is not None and set(pruner.masks) == set(sparsity)
