from __future__ import annotations

import optuna
import pytest
import torch

from autoprune.engine.costmodel import ChannelCostModel, FineCostModel
from autoprune.engine.metrics import SpeedupResult, count_macs, count_nonzero, count_params
from autoprune.engine.prune import FineGrainedPruner, channel_prune
from autoprune.models import ModelSpec, build_model
from autoprune.search.budget import Budget, Limits
from autoprune.search.config import SearchSettings
from autoprune.search.space import ChannelSpace, FineSpace, HybridSpace, make_space


@pytest.mark.parametrize("target", [0.1, 0.3, 0.6])
def test_fine_projection_hits_target_within_half_percent(target):
    model = build_model(ModelSpec("cnn", 1.0, 1, 10))
    x = torch.zeros(1, 1, 28, 28)
    total = count_params(model)
    limits = Limits.from_budget(Budget(size=target), total, count_macs(model, (1, 28, 28)))
    for space_kind in ("centred", "wide"):
        space = make_space(model, x, SearchSettings(mode="fine", space=space_kind), limits)
        study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
        for _ in range(5):
            policy = space.sample(study.ask())
            params = space.fine_cost.params(policy.sparsity)
            assert params <= target * total
            assert params >= (1 - 0.005) * target * total


def test_channel_projection_hits_macs_target_and_cost_model_is_exact():
    model = build_model(ModelSpec("vgg", 1.0, 3, 10))
    x = torch.zeros(1, 3, 32, 32)
    dense_macs = count_macs(model, (3, 32, 32))
    limits = Limits.from_budget(Budget(macs=0.4), count_params(model), dense_macs)
    space = make_space(model, x, SearchSettings(mode="channel", prior="uniform"), limits)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(3):
        policy = space.sample(study.ask())
        macs = space.channel_cost.macs(policy.keep)
        assert 0.995 * 0.4 * dense_macs <= macs <= 0.4 * dense_macs
    pruned = channel_prune(model, policy.keep, x)
    # structural MACs: an initial weight that happens to be exactly 0.0 must not count as pruned
    assert count_macs(pruned, (3, 32, 32), sparse=False) == macs
    assert count_params(pruned) == space.channel_cost.params(policy.keep)


@pytest.mark.parametrize("name", ["resnet20", "mobilenetv2", "cnn"])
def test_channel_cost_model_matches_real_pruning(name):
    torch.manual_seed(0)
    model = build_model(ModelSpec(name, 0.5, 1, 10))
    x = torch.zeros(1, 1, 32, 32)
    cost = ChannelCostModel(model, x)
    gen = torch.Generator().manual_seed(0)
    keep = {g: float(0.2 + 0.8 * torch.rand(1, generator=gen)) for g in cost.ids}
    pruned = channel_prune(model, keep, x)
    assert cost.params(keep) == count_params(pruned)
    assert cost.macs(keep) == count_macs(pruned, (1, 32, 32), sparse=False)


def test_fine_cost_model_matches_real_counts():
    model = build_model(ModelSpec("vgg", 0.25, 1, 10))
    cost = FineCostModel(model, (1, 32, 32))
    sparsity = {n: 0.9 - 0.08 * i for i, n in enumerate(cost.names)}
    FineGrainedPruner(model, sparsity)
    assert cost.params(sparsity) == count_nonzero(model)
    assert cost.macs(sparsity) == count_macs(model, (1, 32, 32))


def test_factory_gives_one_space_per_mode_and_bind_keeps_cost_models():
    model = build_model(ModelSpec("cnn", 0.5, 1, 10))
    x = torch.zeros(1, 1, 28, 28)
    limits = Limits.from_budget(Budget(size=0.5), count_params(model),
                                count_macs(model, (1, 28, 28)))
    kinds = {m: type(make_space(model, x, SearchSettings(mode=m), limits))
             for m in ("fine", "channel", "hybrid")}
    assert kinds == {"fine": FineSpace, "channel": ChannelSpace, "hybrid": HybridSpace}
    space = make_space(model, x, SearchSettings(mode="channel", prior="uniform"), limits)
    cost = space.channel_cost
    other = build_model(ModelSpec("cnn", 0.5, 1, 10))
    bound = space.bind(other, limits.scaled(0.5))
    assert bound.channel_cost is cost and bound.model is other and space.model is model
    assert bound.limits.params == 0.5 * limits.params


@pytest.mark.parametrize("mode", ["fine", "channel", "hybrid"])
def test_every_baseline_policy_meets_the_budget_and_sizes_are_exact(mode):
    model = build_model(ModelSpec("cnn", 0.5, 1, 10))
    x = torch.zeros(1, 1, 28, 28)
    limits = Limits.from_budget(Budget(size=0.4), count_params(model),
                                count_macs(model, (1, 28, 28)))
    space = make_space(model, x, SearchSettings(mode=mode), limits)
    names = space.baseline_names()
    assert "sensitivity" not in names  # no scan given
    for name in names:
        policy = space.baseline_policy(name)
        pruned, pruner = policy.apply(model, x)
        assert policy.mode == mode and policy.meta["baseline"] == name
        assert count_nonzero(pruned) <= 0.4 * count_params(model) + 1
        assert space.size_mib(policy) == pytest.approx(count_nonzero(pruned) * 4 / 2**20)


def test_hybrid_lamp_baseline_is_fine_grained_unless_a_latency_cap_needs_channels():
    """Hybrid mode also enqueues ``lamp``, all of the reduction by LAMP: without a latency cap
    it removes no channel and reaches the size budget by weights alone (the fine-grained
    baseline a hybrid policy must beat); under a latency cap (structural MACs) it removes
    channels uniformly, just enough, and the channel heuristics still take half each."""
    model = build_model(ModelSpec("cnn", 0.5, 1, 10))
    x = torch.zeros(1, 1, 28, 28)
    params, macs = count_params(model), count_macs(model, (1, 28, 28))
    limits = Limits.from_budget(Budget(size=0.2), params, macs)
    space = make_space(model, x, SearchSettings(mode="hybrid"), limits)
    assert space.baseline_names() == ["uniform", "global_ranking", "lamp"]
    lamp = space.baseline_policy("lamp")
    assert set(lamp.keep.values()) == {1.0}
    assert space.fine_cost.params(lamp.sparsity) <= 0.2 * params + 1
    assert space.fine_cost.params(lamp.sparsity) >= 0.19 * params
    assert min(space.baseline_policy("uniform").keep.values()) < 1.0

    capped = Limits(limits.params, None, 0.5 * macs)
    space = make_space(model, x, SearchSettings(mode="hybrid"), capped)
    lamp = space.baseline_policy("lamp", 1.0)
    assert len(set(lamp.keep.values())) == 1 and min(lamp.keep.values()) < 1.0
    assert space.channel_cost.cost(lamp.keep)[1] <= 0.5 * macs
    assert space.channel_cost.cost(lamp.keep)[1] >= 0.4 * macs
    pruned, _ = lamp.apply(model, x)
    assert count_nonzero(pruned) <= 0.2 * params + 1


def test_smallest_policy_outside_the_budget_is_refused():
    model = build_model(ModelSpec("cnn", 0.5, 1, 10))
    x = torch.zeros(1, 1, 28, 28)
    limits = Limits.from_budget(Budget(size=0.001), count_params(model),
                                count_macs(model, (1, 28, 28)))
    for mode in ("fine", "channel", "hybrid"):
        with pytest.raises(ValueError, match="budget is impossible"):
            make_space(model, x, SearchSettings(mode=mode), limits).check_feasible()


@pytest.mark.parametrize("mode,prior", [("fine", "lamp"), ("channel", "uniform")])
def test_target_centre_puts_each_sweep_trial_on_the_prior_heuristic_at_its_target(mode, prior):
    """With ``search.centre = "target"`` and no perturbation, a trial below the full budget
    is exactly the ladder's heuristic at its target; centred on the full budget's prior (scaled
    down by one factor) a fine-grained LAMP trial is not."""
    model = build_model(ModelSpec("cnn", 0.5, 1, 10))
    x = torch.zeros(1, 1, 28, 28)
    limits = Limits.from_budget(Budget(size=0.4), count_params(model),
                                count_macs(model, (1, 28, 28)))
    policies = {}
    for centre in ("target", "budget"):
        settings = SearchSettings(mode=mode, prior=prior, sweep=True, floor=0.3, perturbation=0.0,
                                  centre=centre)
        space = make_space(model, x, settings, limits)
        policies[centre] = space.sample(optuna.create_study().ask(), factor=0.45)
    want = space.baseline_policy(prior, 0.45)
    got = policies["target"]
    # the projection re-fits the total by bisection: equal to within its tolerance
    assert got.sparsity == pytest.approx(want.sparsity, abs=1e-3)
    assert got.keep == pytest.approx(want.keep, abs=1e-3)
    if mode == "fine":
        off = max(abs(policies["budget"].sparsity[k] - v) for k, v in want.sparsity.items())
        assert off > 0.02


def _conv_widths(model) -> list[int]:
    return [m.out_channels for m in model.modules() if isinstance(m, torch.nn.Conv2d)]


def test_round_to_gives_multiples_of_n_channels_within_the_budget():
    """``search.round_to = 8``: every baseline and sampled policy prunes to conv widths that
    are multiples of 8 (the unrounded ones are not), still within the budget, and the cost
    model counts exactly what pruning leaves; the latency calibration times rounded cuts."""
    from autoprune.search.calibration import calibrate_latency

    model = build_model(ModelSpec("vgg", 0.5, 1, 10))
    x = torch.zeros(1, 1, 28, 28)
    dense_macs = count_macs(model, (1, 28, 28))
    limits = Limits.from_budget(Budget(macs=0.37), count_params(model), dense_macs)
    widths = {}
    for n in (0, 8):
        space = make_space(model, x, SearchSettings(mode="channel", prior="uniform",
                                                    round_to=n), limits)
        study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
        policies = [space.baseline_policy(h) for h in space.baseline_names()]
        policies += [space.sample(study.ask()) for _ in range(3)]
        widths[n] = []
        for policy in policies:
            pruned, _ = policy.apply(model, x)
            macs = count_macs(pruned, (1, 28, 28), sparse=False)
            assert macs == space.channel_cost.macs(policy.keep) <= 0.37 * dense_macs
            assert macs >= 0.8 * 0.37 * dense_macs  # rounding costs some budget, not most
            widths[n] += _conv_widths(pruned)
    assert all(w % 8 == 0 for w in widths[8])
    assert any(w % 8 for w in widths[0])

    timed = []
    space = make_space(model, x, SearchSettings(mode="channel", round_to=8), limits)

    def speedup(m):
        timed.append(_conv_widths(m))
        return SpeedupResult([1.0], [sum(timed[-1]) / sum(_conv_widths(model))], 1, 1, "cpu")

    calibrate_latency(model, x, space.channel_cost, Budget(latency=0.5), min_keep=0.3,
                      settings=None, snap=space.snap, speedup=speedup)
    assert timed and all(w % 8 == 0 for ws in timed for w in ws)
