from __future__ import annotations

import pytest

from autoprune.search.config import apply_overrides, config_from_dict, parse_duration
from tests.helpers import tiny_raw


def test_config_errors_name_the_value(synthetic_idx_root):
    with pytest.raises(ValueError, match="'bogus'"):
        config_from_dict(tiny_raw(synthetic_idx_root, search={"sampler": "bogus"}), "x")
    with pytest.raises(ValueError, match="size=1.5"):
        config_from_dict(tiny_raw(synthetic_idx_root, budget={"size": 1.5}), "x")
    raw = tiny_raw(synthetic_idx_root)
    raw["budget"] = {}
    with pytest.raises(ValueError, match="no budget"):
        config_from_dict(raw, "x")
    with pytest.raises(ValueError, match="latency"):
        config_from_dict(tiny_raw(synthetic_idx_root, budget={"latency": 0.5}), "x")
    with pytest.raises(ValueError, match="Unknown key"):
        config_from_dict(tiny_raw(synthetic_idx_root, proxy={"stepz": 3}), "x")
    raw = apply_overrides(tiny_raw(synthetic_idx_root), ["budget.size=", "budget.macs=0.5"])
    assert raw["budget"] == {"macs": 0.5}


@pytest.mark.parametrize("text, seconds", [("90s", 90.0), ("20m", 1200.0), ("1.5h", 5400.0),
                                           ("45", 45.0), (30, 30.0), (" 2m ", 120.0)])
def test_parse_duration(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["ten minutes", "5d", "-3s", "0", 0, "1.5.2h"])
def test_parse_duration_rejects_with_the_value(text):
    with pytest.raises(ValueError, match="Duration"):
        parse_duration(text)


def test_parse_duration_none_means_no_limit():
    assert parse_duration(None) is None and parse_duration("") is None


def test_overrides_parse_toml_values_and_refuse_unknown_sections():
    raw = apply_overrides({"search": {"mode": "fine"}}, ["search.trials=12", "proxy.lr=0.02",
                                                         "search.sampler=random", "seed=3"])
    assert raw == {"search": {"mode": "fine", "trials": 12, "sampler": "random"},
                   "proxy": {"lr": 0.02}, "seed": 3}
    with pytest.raises(ValueError, match="'serach'"):
        apply_overrides({}, ["serach.trials=3"])
    with pytest.raises(ValueError, match="section.key=value"):
        apply_overrides({}, ["search.trials"])


def test_config_is_frozen_and_latency_needs_a_structural_mode(synthetic_idx_root):
    cfg = config_from_dict(tiny_raw(synthetic_idx_root), "x")
    with pytest.raises(AttributeError):
        cfg.name = "other"
    cfg = config_from_dict(tiny_raw(synthetic_idx_root, search={"mode": "hybrid"},
                                    budget={"latency": 0.5}), "x")
    assert cfg.budget.axes() == {"size", "latency"}


def test_fingerprint_ignores_how_images_are_read_and_default_backend():
    """Settings that do not change any score (streaming, DataLoader workers, the default
    latency backend) leave the fingerprint of existing studies as it was."""
    import dataclasses

    from autoprune.search.config import LatencySettings, load_config

    cfg = load_config("studies/demo.toml")
    fp = cfg.fingerprint()
    # the demo budgets latency in channel mode: the refit (on by default) changes its trials
    assert fp["latency"] == ("LatencySettings(device='cpu', batch_size=1, threads=1, "
                             "min_run_time=0.3) refit=3 margin=0.03")
    off = dataclasses.replace(cfg, latency=dataclasses.replace(cfg.latency, refit=0))
    assert off.fingerprint()["latency"] == ("LatencySettings(device='cpu', batch_size=1, "
                                            "threads=1, min_run_time=0.3)")
    # where it does nothing (no latency budget, or fine-grained) the key is as it was
    for path in ("studies/vgg_fine_size5.toml", "studies/vgg_channel_macs25.toml"):
        assert load_config(path).fingerprint()["latency"].endswith("min_run_time=0.3)")
    assert "stream" not in fp["data"] and "workers" not in fp["data"]
    assert fp["data"].startswith("DataSpec(name='fashion-mnist', root=None, val_size=5000")
    streamed = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, stream=False,
                                                                 workers=7))
    assert streamed.fingerprint() == fp
    ort = dataclasses.replace(cfg, latency=LatencySettings(backend="onnxruntime"))
    assert "backend='onnxruntime')" in ort.fingerprint()["latency"]


def test_distillation_keys_a_study_only_when_on():
    """Distillation off (the default) leaves fingerprints and the benchmarks' cache keys of
    existing studies as they were; on, it changes both."""
    import dataclasses

    from autoprune.search.config import load_config

    cfg = load_config("studies/demo.toml")
    assert cfg.proxy.distill == 0 and cfg.finalize.distill == 0
    assert cfg.fingerprint()["proxy"] == [15, 0.01, 128, 2000, 512, 0]
    assert "distill" not in repr(cfg.proxy) and "distill" not in repr(cfg.finalize)
    on = load_config("studies/demo.toml", ["proxy.distill=0.5", "proxy.temperature=2.0",
                                           "finalize.distill=0.7"])
    assert on.fingerprint()["proxy"] == [15, 0.01, 128, 2000, 512, 0, 0.5, 2.0]
    assert on.finalize.distill == 0.7 and on.finalize.temperature == 4.0
    # what the study's trials depend on changed; everything else did not
    assert {k for k in cfg.fingerprint() if cfg.fingerprint()[k] != on.fingerprint()[k]} == {
        "proxy"}
    with pytest.raises(ValueError, match="finalize.temperature must be positive, got 0"):
        dataclasses.replace(on.finalize, temperature=0)


def test_target_centre_keys_a_study_only_when_set():
    """``search.centre`` left at "budget" keeps the space fingerprint of studies made before
    it existed; "target" changes it; anything else is refused by name."""
    from autoprune.search.config import load_config

    cfg = load_config("studies/vgg_fine_size5.toml")
    on = load_config("studies/vgg_fine_size5.toml", ["search.centre=target"])
    space = cfg.fingerprint()["space"]
    assert cfg.search.centre == "budget" and len(space) == 6
    assert on.fingerprint()["space"] == [*space, "target"]
    with pytest.raises(ValueError, match="search.centre must be one of .* got 'middle'"):
        load_config("studies/vgg_fine_size5.toml", ["search.centre=middle"])


def test_round_to_is_checked_and_keys_a_study_only_when_set():
    from autoprune.search.config import load_config

    cfg = load_config("studies/demo.toml")
    on = load_config("studies/demo.toml", ["search.round_to=8"])
    assert on.fingerprint()["space"] == [*cfg.fingerprint()["space"], "round_to=8"]
    with pytest.raises(ValueError, match="search.round_to must be a whole number >= 0.*-8"):
        load_config("studies/demo.toml", ["search.round_to=-8"])
    with pytest.raises(ValueError, match="search.round_to=8 rounds kept channels: it needs "
                                         "search.mode 'channel' or 'hybrid', got 'fine'"):
        load_config("studies/vgg_fine_size5.toml", ["search.round_to=8"])


def test_sampler_seed_is_not_in_the_fingerprint_and_is_checked():
    from autoprune.search.config import load_config

    cfg = load_config("studies/demo.toml")
    s1 = load_config("studies/demo.toml", ["search.sampler_seed=1"])
    assert cfg.sampler_seed == cfg.seed == 0 and s1.sampler_seed == 1
    assert s1.fingerprint() == cfg.fingerprint() and s1.proxy.seed == cfg.proxy.seed
    with pytest.raises(ValueError, match="search.sampler_seed must be a whole number >= 0"):
        load_config("studies/demo.toml", ["search.sampler_seed=-1"])


def test_refit_grow_without_the_latency_refit_is_a_note_not_silence():
    """``latency.refit_grow`` where no refit runs (no latency budget, fine-grained mode or
    ``latency.refit = 0``) is valid but does nothing: the CLI's advice says so."""
    from autoprune.search.config import load_config

    grow = ["latency.refit_grow=0.1"]
    assert not any("refit_grow" in n for n in
                   load_config("studies/mobilenetv2_channel_latency50.toml").advice())
    for study, extra in (("studies/vgg_fine_size10.toml", []),
                         ("studies/vgg_channel_macs25.toml", []),
                         ("studies/vgg_channel_latency50.toml", ["latency.refit=0"])):
        notes = load_config(study, grow + extra).advice()
        assert len(notes) == 1 and "latency.refit_grow = 0.1 does nothing here" in notes[0]
    assert load_config("studies/vgg_channel_latency50.toml", grow).advice() == []
