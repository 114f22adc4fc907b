from __future__ import annotations

import pytest
import torch
from torch import nn

from autoprune.cache import hash_state_dict
from autoprune.engine.groups import coupling_groups
from autoprune.engine.metrics import count_macs, count_params
from autoprune.engine.prune import FineGrainedPruner, channel_prune, fine_grained_prune
from autoprune.models import ModelSpec, build_model
from autoprune.train import evaluate, recalibrate_bn


def test_fine_grained_prune_classic_5x5():
    t = torch.tensor([[-0.46, -0.40, 0.39, 0.19, 0.37],
                      [0.00, 0.40, 0.17, -0.15, 0.16],
                      [-0.20, -0.23, 0.36, 0.25, 0.03],
                      [0.24, 0.41, 0.07, 0.13, -0.15],
                      [0.48, -0.09, -0.36, 0.12, 0.45]])
    mask = fine_grained_prune(t, 0.6)
    assert int(torch.count_nonzero(t)) == 10 and int(mask.sum()) == 10
    assert torch.all(t[mask.bool()].abs() >= 0.36 - 1e-6)


@pytest.mark.parametrize("s", [0.0, 0.33, 0.5, 0.9, 1.0, -0.2, 1.7])
def test_fine_grained_exact_count_with_ties(s):
    t = torch.ones(7, 11)  # every magnitude tied
    fine_grained_prune(t, s)
    clamped = min(max(s, 0.0), 1.0)
    assert int((t == 0).sum()) == round(77 * clamped)


def test_fine_grained_pruner_keeps_zeros_and_rejects_bad_names():
    model = build_model(ModelSpec("cnn", 1.0, 1, 10))
    pruner = FineGrainedPruner(model, {"features.0.weight": 0.5, "fc1": 0.9})
    w = model.fc1.weight
    assert int((w == 0).sum()) == round(w.numel() * 0.9)
    with torch.no_grad():
        w.add_(1.0)
    pruner.apply(model)
    assert int((w == 0).sum()) == round(w.numel() * 0.9)
    with pytest.raises(ValueError) as exc:
        FineGrainedPruner(model, {"nope.weight": 0.5, "fc2.weight": 1.5, "fc9": 0.1})
    assert "nope.weight" in str(exc.value) and "fc9.weight" in str(exc.value)
    assert "fc2.weight=1.5" in str(exc.value)
    bn_model = build_model(ModelSpec("vgg", 0.125, 1, 10))
    with pytest.raises(ValueError, match="features.1.weight"):
        FineGrainedPruner(bn_model, {"features.1.weight": 0.5})


def test_lab_channel_pruning_numbers():
    model = build_model(ModelSpec("vgg", 1.0, 3, 10))
    x = torch.randn(1, 3, 32, 32)
    groups = coupling_groups(model, x)
    assert [g.id for g in groups] == ["features.0", "features.3", "features.7", "features.10",
                                      "features.14", "features.17", "features.21", "features.24"]
    assert all(g.prunable for g in groups)
    lab = channel_prune(model, {g.id: 0.7 for g in groups[:-1]}, x)
    assert round(count_params(lab) / 1e6, 2) == 5.01
    assert round(count_macs(lab, (3, 32, 32)) / 1e6) == 305
    every = channel_prune(model, 0.7, x)
    assert round(count_params(every) / 1e6, 2) == 4.52
    assert round(count_macs(every, (3, 32, 32)) / 1e6) == 297
    assert count_params(model) == 9_228_362  # the original is untouched
    assert every.classifier.out_features == 10
    assert every.features[0].out_channels == round(0.7 * 64)


def test_resnet_residual_groups_share_one_ratio():
    model = build_model(ModelSpec("resnet20", 1.0, 3, 10))
    x = torch.randn(1, 3, 32, 32)
    groups = {g.id: g for g in coupling_groups(model, x)}
    stage1 = "conv1+layers.0.conv2+layers.1.conv2+layers.2.conv2"
    assert stage1 in groups and groups[stage1].channels == 16
    pruned = channel_prune(model, {stage1: 0.5}, x)
    assert pruned.conv1.out_channels == 8 and pruned.layers[2].conv2.out_channels == 8
    assert pruned.layers[0].conv1.out_channels == 16
    assert pruned(x).shape == (1, 10)


def test_mobilenet_depthwise_prunes_and_runs():
    model = build_model(ModelSpec("mobilenetv2", 0.5, 3, 10))
    x = torch.randn(1, 3, 32, 32)
    pruned = channel_prune(model, 0.5, x, round_to=4)
    assert pruned(x).shape == (1, 10)
    assert count_params(pruned) < 0.5 * count_params(model)
    for m in pruned.modules():
        if isinstance(m, nn.Conv2d) and m.groups > 1:
            assert m.groups == m.in_channels == m.out_channels


class HardCodedView(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3, padding=1)
        self.conv2 = nn.Conv2d(32, 64, 3, padding=1)
        self.pool = nn.AdaptiveAvgPool2d(3)
        self.fc = nn.Linear(576, 10)

    def forward(self, x):
        x = self.pool(torch.relu(self.conv2(torch.relu(self.conv1(x)))))
        return self.fc(x.view(-1, 576))


def test_unsafe_group_is_listed_and_the_rest_still_prunes():
    model = HardCodedView()
    x = torch.randn(2, 1, 28, 28)
    groups = {g.id: g for g in coupling_groups(model, x)}
    assert not groups["conv2"].prunable and groups["conv2"].reason
    assert groups["conv1"].prunable
    pruned = channel_prune(model, 0.5, x)
    assert pruned.conv1.out_channels == 16 and pruned.conv2.out_channels == 64
    assert pruned(x).shape == (2, 10)
    with pytest.raises(ValueError, match="conv2"):
        channel_prune(model, {"conv2": 0.5}, x)


def test_channel_prune_validates_ids_and_ratios():
    model = build_model(ModelSpec("cnn", 1.0, 1, 10))
    x = torch.randn(1, 1, 28, 28)
    with pytest.raises(ValueError) as exc:
        channel_prune(model, {"bogus": 0.5, "features.0": 1.5}, x)
    assert "bogus" in str(exc.value) and "features.0=1.5" in str(exc.value)


def test_channel_prune_leaves_original_untouched():
    model = build_model(ModelSpec("cnn", 1.0, 1, 10))
    before = hash_state_dict(model)
    channel_prune(model, 0.5, torch.randn(1, 1, 28, 28))
    assert hash_state_dict(model) == before


def test_importance_beats_index_order(trained_vgg):
    """The lab's lesson: pick channels by importance, not by position."""
    base, data = trained_vgg
    x = torch.zeros(1, *data.input_size)
    acc = {}
    for importance in ("l2", "index"):
        pruned = channel_prune(base.model, 0.7, x, importance=importance)
        recalibrate_bn(pruned, data, images=512)
        acc[importance] = evaluate(pruned, data, "val")
    print(f"30 % of channels removed, after BN recalibration: {acc}")
    assert acc["l2"] > acc["index"] + 3.0


def test_torchvision_resnet18_channel_prunes():
    model = build_model(ModelSpec("torchvision:resnet18", 1.0, 1, 10)).eval()
    x = torch.randn(1, 1, 64, 64)
    groups = coupling_groups(model, x)
    assert any("+" in g.id for g in groups)  # residual adds couple layers
    pruned = channel_prune(model, 0.5, x)
    assert pruned(x).shape == (1, 10)
    assert count_params(pruned) < 0.4 * count_params(model)
