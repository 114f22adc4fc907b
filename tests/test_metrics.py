from __future__ import annotations

import json

import pytest
import torch

from autoprune.cache import hash_state_dict
from autoprune.engine.metrics import (
    count_macs,
    count_params,
    layer_table,
    measure_latency,
    model_size_mib,
    summarize,
)
from autoprune.models import ModelSpec, build_model
from autoprune.workflow.cli import main


def test_lab_vgg_numbers():
    model = build_model(ModelSpec("vgg", 1.0, 3, 10))
    assert count_params(model) == 9_228_362
    assert round(model_size_mib(model), 2) == 35.20
    assert round(count_macs(model, (3, 32, 32)) / 1e6) == 606


def test_profile_cli_json(capsys):
    assert main(["profile", "--model", "vgg", "--width", "1.0", "--input-size", "3,32,32",
                 "--num-classes", "10", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert round(out["totals"]["params"] / 1e6, 2) == 9.23
    assert round(out["totals"]["size_mib"], 2) == 35.20
    assert round(out["totals"]["macs"] / 1e6) == 606
    assert [layer["name"] for layer in out["layers"]][0] == "features.0"
    assert abs(sum(layer["macs_share"] for layer in out["layers"]) - 1.0) < 1e-6


def test_profile_cli_bad_input_size(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["profile", "--input-size", "3,32"])
    assert exc.value.code == 2
    assert "C,H,W" in capsys.readouterr().err


def test_macs_and_size_scale_with_fine_grained_density():
    model = build_model(ModelSpec("cnn", 1.0, 1, 10))
    dense_macs = count_macs(model, (1, 28, 28))
    dense_size = model_size_mib(model)
    table = {r.name: r for r in layer_table(model, (1, 28, 28))}
    with torch.no_grad():
        w = model.features[3].weight
        w.view(-1)[: w.numel() // 2] = 0.0
    assert count_macs(model, (1, 28, 28)) == dense_macs - table["features.3"].dense_macs // 2
    assert count_macs(model, (1, 28, 28), sparse=False) == dense_macs
    removed_mib = (w.numel() // 2) * 4 / 2**20
    assert model_size_mib(model) == pytest.approx(dense_size - removed_mib)
    assert model_size_mib(model, bits=8) == pytest.approx(model_size_mib(model) / 4)


def test_measuring_never_changes_the_model():
    model = build_model(ModelSpec("resnet20", 0.5, 3, 10)).train()
    before = hash_state_dict(model)
    summarize(model, (3, 32, 32))
    lat = measure_latency(model, (3, 32, 32), batch_size=2, threads=1, min_run_time=0.05)
    assert hash_state_dict(model) == before
    assert model.training
    assert lat.median_ms > 0 and lat.batch_size == 2 and lat.threads == 1 and lat.runs >= 1


def test_latency_rejects_bad_batch():
    with pytest.raises(ValueError, match="batch_size"):
        measure_latency(build_model(ModelSpec("cnn", 1.0, 1, 10)), (1, 28, 28), batch_size=0)
