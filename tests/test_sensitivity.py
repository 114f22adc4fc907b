from __future__ import annotations

import json

import pytest
import torch

from autoprune.models import ModelSpec, build_model
from autoprune.search.sensitivity import AdditiveEstimator, ScanSettings, sensitivity_scan
from autoprune.train import TrainRecipe, train
from autoprune.workflow.report.figures import save_scan_plots, sensitivity_plot_data

RATIOS = (0.0, 0.5, 0.9)


@pytest.fixture(scope="module")
def tiny(synthetic_data):
    torch.manual_seed(0)
    model = build_model(ModelSpec("cnn", 0.5, 1, 10))
    train(model, synthetic_data, TrainRecipe(epochs=2, lr=0.05, batch_size=64), progress=False)
    return model, synthetic_data


def test_fine_scan_table_and_cache(tiny):
    model, data = tiny
    settings = ScanSettings("fine", RATIOS, val_limit=200)
    first = sensitivity_scan(model, data, settings, progress=False, force=True)
    t = first.table
    assert list(t["layer"].unique()) == ["features.0.weight", "features.3.weight",
                                         "features.6.weight", "fc1.weight", "fc2.weight"]
    assert len(t) == 5 * 3 and not first.cache_hit
    assert set(t.columns) >= {"layer", "ratio", "accuracy", "params", "macs"}
    fc1 = t[t.layer == "fc1.weight"].set_index("ratio")
    assert fc1.loc[0.0, "accuracy"] == first.dense_acc
    assert fc1.loc[0.9, "params"] < fc1.loc[0.5, "params"] < fc1.loc[0.0, "params"]
    assert fc1.loc[0.9, "macs"] < fc1.loc[0.0, "macs"]
    second = sensitivity_scan(model, data, settings, progress=False)
    assert second.cache_hit and second.table.equals(t) and second.seconds < 2.0


def test_cache_key_follows_the_weights(tiny):
    model, data = tiny
    settings = ScanSettings("fine", RATIOS, val_limit=200)
    a = sensitivity_scan(model, data, settings, progress=False)
    changed = build_model(ModelSpec("cnn", 0.5, 1, 10))
    changed.load_state_dict(model.state_dict())
    with torch.no_grad():
        changed.fc2.weight[0, 0] += 0.5
    b = sensitivity_scan(changed, data, settings, progress=False)
    assert a.path != b.path and not b.cache_hit


def test_corrupted_entry_is_recomputed(tiny):
    model, data = tiny
    settings = ScanSettings("fine", RATIOS, val_limit=200)
    good = sensitivity_scan(model, data, settings, progress=False)
    with open(good.path, "w") as f:
        f.write('{"key": "truncated')
    with pytest.warns(UserWarning, match="corrupted"):
        again = sensitivity_scan(model, data, settings, progress=False)
    assert not again.cache_hit and again.table.equals(good.table)
    entry = json.load(open(good.path))
    entry["rows"][0][2] = 12.345  # tampered value: checksum no longer matches
    json.dump(entry, open(good.path, "w"))
    with pytest.warns(UserWarning, match="corrupted"):
        third = sensitivity_scan(model, data, settings, progress=False)
    assert not third.cache_hit and third.table.equals(good.table)


def test_channel_scan_recalibrates(tiny):
    model, data = tiny
    res = sensitivity_scan(model, data, ScanSettings("channel", (0.0, 0.5), val_limit=200,
                                                     recalibrate=128), progress=False)
    assert list(res.table["layer"].unique()) == ["features.0", "features.3", "features.6",
                                                 "fc1"]
    half = res.table[res.table.ratio == 0.5]
    assert (half["params"] < res.table[res.table.ratio == 0.0]["params"].iloc[0]).all()
    assert "accuracy_no_recal" in res.table


def test_parallel_scan_matches_serial(tiny):
    model, data = tiny
    serial = sensitivity_scan(model, data, ScanSettings("fine", (0.0, 0.7), val_limit=200),
                              progress=False, force=True)
    parallel = sensitivity_scan(model, data, ScanSettings("fine", (0.0, 0.7), val_limit=200,
                                                          jobs=2), progress=False, force=True)
    assert parallel.table[["layer", "ratio", "params"]].equals(
        serial.table[["layer", "ratio", "params"]])
    assert (parallel.table["accuracy"] - serial.table["accuracy"]).abs().max() <= 1.0


def test_additive_estimate(tiny):
    model, data = tiny
    res = sensitivity_scan(model, data, ScanSettings("fine", RATIOS, val_limit=200),
                           progress=False)
    est = AdditiveEstimator(res.table, res.dense_acc)
    layers = list(res.table["layer"].unique())
    assert est.predict({k: 0.0 for k in layers}) == pytest.approx(res.dense_acc)
    t = res.table.set_index(["layer", "ratio"])["accuracy"]
    drop = max(0.0, res.dense_acc - t[("fc1.weight", 0.5)])
    assert est.predict({"fc1.weight": 0.5}) == pytest.approx(res.dense_acc - drop)
    mid = est.drop("fc1.weight", 0.7)
    lo, hi = est.drop("fc1.weight", 0.5), est.drop("fc1.weight", 0.9)
    assert min(lo, hi) - 1e-9 <= mid <= max(lo, hi) + 1e-9
    with pytest.raises(ValueError, match="nope"):
        est.predict({"nope": 0.1})


def test_scan_plots_written(tiny, tmp_path):
    model, data = tiny
    res = sensitivity_scan(model, data, ScanSettings("fine", RATIOS, val_limit=200),
                           progress=False)
    d = sensitivity_plot_data(res.table, res.dense_acc)
    assert d.accuracy.shape == (5, 3) and d.drop[:, 0].tolist() == [0.0] * 5
    paths = save_scan_plots(res.table, res.dense_acc, model, tmp_path, "fine")
    assert len(paths) == 4
    for p in paths:
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and p.stat().st_size > 5000


def test_bad_settings():
    with pytest.raises(ValueError, match="1.0"):
        ScanSettings("fine", (0.0, 1.0))
    with pytest.raises(ValueError, match="'hybrid'"):
        ScanSettings("hybrid")


def test_killed_scan_keeps_every_finished_layer(tiny, monkeypatch):
    import autoprune.search.sensitivity as sens

    model, data = tiny
    settings = ScanSettings("fine", (0.0, 0.3, 0.7), val_limit=150, jobs=1)
    real = sens._scan_chunk
    seen: list[str] = []

    def dies_on_third(model, data, settings, work, *a, **k):
        seen.append(work[0][0])
        if len(seen) == 3:
            raise KeyboardInterrupt  # the process dies in the middle of the third layer
        return real(model, data, settings, work, *a, **k)

    monkeypatch.setattr(sens, "_scan_chunk", dies_on_third)
    with pytest.raises(KeyboardInterrupt):
        sensitivity_scan(model, data, settings, progress=False)
    seen.clear()
    monkeypatch.setattr(sens, "_scan_chunk", lambda m, d, s, work, *a, **k: (
        seen.append(work[0][0]), real(m, d, s, work, *a, **k))[1])
    result = sensitivity_scan(model, data, settings, progress=False)
    assert seen == ["features.6.weight", "fc1.weight", "fc2.weight"]  # the first two kept
    assert len(result.table) == 5 * 3 and not result.cache_hit
    assert sensitivity_scan(model, data, settings, progress=False).table.equals(result.table)


def test_scan_processes_share_the_data_and_find_the_same(tiny):
    model, data = tiny
    one = sensitivity_scan(model, data, ScanSettings("fine", (0.0, 0.6), val_limit=150, jobs=1),
                           progress=False, force=True)
    two = sensitivity_scan(model, data, ScanSettings("fine", (0.0, 0.6), val_limit=150, jobs=2),
                           progress=False, force=True)
    assert two.table.equals(one.table)
