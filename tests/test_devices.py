"""Devices and performance options: mixed precision, channels-last, one GPU per worker. The
CPU paths run everywhere; the CUDA test runs only where a GPU is present."""

from __future__ import annotations

import pytest
import torch

from autoprune.errors import ConfigError
from autoprune.models import ModelSpec, build_model
from autoprune.search.workers import worker_devices
from autoprune.train import TrainRecipe, evaluate, train


def _model():
    torch.manual_seed(0)
    return build_model(ModelSpec("cnn", width=0.5, in_channels=1, num_classes=10))


@pytest.mark.parametrize("precision,channels_last", [("bf16", False), ("fp16", False),
                                                     ("fp32", True)])
def test_mixed_precision_and_channels_last_learn_on_cpu(synthetic_data, precision,
                                                        channels_last, monkeypatch):
    seen = []
    real = torch.autocast

    class Spy(real):
        def __init__(self, device_type, dtype=None, enabled=True, **kw):
            seen.append((device_type, dtype, enabled))
            super().__init__(device_type, dtype=dtype, enabled=enabled, **kw)

    monkeypatch.setattr(torch, "autocast", Spy)
    model = _model()
    recipe = TrainRecipe(epochs=3, lr=0.05, batch_size=64, precision=precision,
                         channels_last=channels_last)
    train(model, synthetic_data, recipe, device="cpu", progress=False)
    want = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": None}[precision]
    assert seen and all(s == ("cpu", want, want is not None) for s in seen)
    assert evaluate(model, synthetic_data, "val", device="cpu") > 80.0
    assert all(p.is_contiguous() for p in model.parameters())  # handed back as it came
    assert all(p.dtype == torch.float32 for p in model.parameters())


def test_precision_is_validated_and_default_cache_keys_unchanged():
    with pytest.raises(ConfigError, match="precision must be one of"):
        TrainRecipe(precision="int8")
    assert "precision" not in TrainRecipe().to_dict()
    assert TrainRecipe(precision="bf16").to_dict()["precision"] == "bf16"


def test_one_gpu_per_worker(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert worker_devices(3, "cuda") == ["cuda:0", "cuda:1", "cuda:0"]
    assert worker_devices(2, None) == ["cuda:0", "cuda:1"]
    assert worker_devices(2, "cuda:1") == ["cuda:1", "cuda:1"]
    assert worker_devices(2, "cpu") == ["cpu", "cpu"]
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert worker_devices(2, "cuda") == ["cuda", "cuda"]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_search_end_to_end_on_cuda(synthetic_idx_root, in_tmp):
    from autoprune.search import PruneSearch
    from autoprune.search.config import config_from_dict
    from autoprune.workflow.finalize import finalize
    from tests.helpers import tiny_raw

    raw = tiny_raw(synthetic_idx_root, search={"mode": "channel", "prior": "uniform",
                                                "trials": 4},
                   baseline={"precision": "bf16", "channels_last": True},
                   latency={"device": "cuda", "batch_size": 8})
    search = PruneSearch(config_from_dict(raw, "cuda"), device="cuda", progress=False).run()
    assert search.ws_.device.type == "cuda" and len(search.results_) == 4
    fin = finalize(search, baselines=False)
    assert not fin.empty and (fin["test_acc"] > 50).all()
