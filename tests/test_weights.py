"""Bring your own trained weights: the baseline is evaluated, not trained."""

from __future__ import annotations

import importlib

import pytest
import torch

from autoprune.errors import ConfigError
from autoprune.models import ModelSpec, build_model
from autoprune.search import PruneSearch
from autoprune.search.config import config_from_dict
from autoprune.train import TrainRecipe, evaluate, train
from tests.helpers import tiny_raw


def test_users_weights_are_evaluated_not_trained(synthetic_data, synthetic_idx_root, in_tmp,
                                                 monkeypatch):
    torch.manual_seed(3)
    model = build_model(ModelSpec("cnn", 0.5, 1, 10))
    train(model, synthetic_data, TrainRecipe(epochs=1, lr=0.05, batch_size=64), progress=False)
    torch.save(model.state_dict(), in_tmp / "mine.pt")
    expected_val = evaluate(model, synthetic_data, "val")

    def refuse(*_a, **_k):
        raise AssertionError("the user's model was retrained")

    monkeypatch.setattr(importlib.import_module("autoprune.train"), "train", refuse)
    raw = tiny_raw(synthetic_idx_root, search={"trials": 5},
                   model={"name": "cnn", "width": 0.5, "weights": str(in_tmp / "mine.pt")})
    with pytest.raises(ConfigError, match="used as is"):  # tiny_raw trains for 2 epochs
        config_from_dict(raw, "mine")
    raw["baseline"]["epochs"] = 0
    # autoprune.train.train is what trains a baseline; the proxy's short fine-tunes still run
    search = PruneSearch(config_from_dict(raw, "mine"), progress=False).run()
    assert len(search.results_) == 5
    base = search.ws_.baseline
    assert base.train_seconds == 0.0 and base.val_acc == pytest.approx(expected_val)
    for k, v in model.state_dict().items():
        assert torch.equal(base.model.state_dict()[k], v)


def test_weights_that_do_not_fit_name_the_keys(synthetic_idx_root, in_tmp):
    other = build_model(ModelSpec("cnn", 1.0, 1, 10))  # twice as wide
    torch.save({"state_dict": other.state_dict()}, in_tmp / "wide.pt")
    raw = tiny_raw(synthetic_idx_root, baseline={"epochs": 0},
                   model={"name": "cnn", "width": 0.5, "weights": str(in_tmp / "wide.pt")})
    with pytest.raises(ConfigError, match=r"do not fit the model.*features\.0\.weight"):
        PruneSearch(config_from_dict(raw, "wide"), progress=False).run()
    raw["model"]["weights"] = str(in_tmp / "missing.pt")
    with pytest.raises(ConfigError, match="does not exist"):
        config_from_dict(raw, "wide")


def test_torchvision_weights_by_name_resolve_to_hub_cache(tmp_path, monkeypatch):
    """``weights = "DEFAULT"`` (or an enum name) on a torchvision model is torch hub's cached
    file; offline with no cached copy, one sentence says where to put it."""
    import torchvision

    from autoprune.search.config import config_from_dict

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    raw = {"model": {"name": "torchvision:resnet18", "weights": "DEFAULT"},
           "data": {"name": "cifar10"}, "budget": {"size": 0.5}}
    entry = torchvision.models.ResNet18_Weights.DEFAULT
    cached = tmp_path / "torch" / "hub" / "checkpoints" / entry.url.rsplit("/", 1)[1]

    def offline(*args, **kwargs):
        raise OSError("network unreachable")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", offline)
    with pytest.raises(ConfigError, match=r"Cannot download torchvision weights .* place it at "
                                          + str(cached).replace(".", r"\.")):
        config_from_dict(raw, "tv")
    cached.parent.mkdir(parents=True)
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), cached)
    assert config_from_dict(raw, "tv").weights == str(cached)
    raw["model"]["weights"] = "ResNet18_Weights.IMAGENET1K_V1"
    assert config_from_dict(raw, "tv").weights == str(cached)
    raw["model"]["weights"] = "IMAGENET9K"
    with pytest.raises(ConfigError, match="neither a file nor one of resnet18's torchvision "
                                          "weights"):
        config_from_dict(raw, "tv")
