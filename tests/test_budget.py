from __future__ import annotations

import math

import pytest

from autoprune.engine.metrics import MIB
from autoprune.search.budget import AXES, KINDS, Budget, Limits
from autoprune.search.config import LatencySettings

DENSE = {"size_mib": 2.0, "macs": 1_000_000, "latency_ms": 4.0}


def test_every_kind_caps_one_axis_and_the_budget_knows_them_all():
    assert set(KINDS) == {f.name for f in Budget.__dataclass_fields__.values()}
    assert {k.axis for k in KINDS.values()} == set(AXES)


def test_constraints_sign_matches_the_cap_for_every_kind():
    values = {"size": 0.5, "size_mib": 1.0, "macs": 0.5, "macs_abs": 5e5, "latency": 0.5,
              "latency_ms": 2.0}
    for kind, v in values.items():
        b = Budget(**{kind: v})
        under = {k: 0.49 * x for k, x in DENSE.items()}
        over = {k: 0.51 * x for k, x in DENSE.items()}
        assert b.constraints(DENSE, under)[kind] < 0, kind
        assert b.constraints(DENSE, over)[kind] > 0, kind
        assert set(b.constraints(DENSE, under)) == {kind}


def test_caps_take_the_tightest_per_axis():
    b = Budget(size=0.5, size_mib=0.8, latency=0.9)
    assert b.caps(DENSE) == {"size_mib": 0.8, "latency_ms": 3.6}
    assert b.axes() == {"size", "latency"}


@pytest.mark.parametrize("kw", [{"size": 1.5}, {"size": 0.0}, {"macs": math.nan},
                                {"latency_ms": -1.0}, {"size_mib": math.nan},
                                {"macs_abs": math.inf}, {"size": "half"}])
def test_bad_budgets_name_the_value(kw):
    (k, v), = kw.items()
    with pytest.raises(ValueError, match=f"{k}="):
        Budget(**kw)


def test_limits_from_budget():
    lim = Limits.from_budget(Budget(size=0.5, size_mib=1.0, macs=0.25), 1_000_000, 800)
    assert lim.params == min(0.5 * 1_000_000, 1.0 * MIB * 8 / 32)
    assert lim.macs == 200 and lim.structural_macs is None
    assert lim.fits(lim.params, 200) and not lim.fits(lim.params + 1, 200)
    lat = Limits.from_budget(Budget(latency=0.5), 10, 800)
    assert lat.structural_macs == 400 and lat.scaled(0.5).structural_macs == 200


def test_latency_table_measures_each_group_alone_and_fits_its_scale():
    """A table measured on a latency that is exactly 0.5 ms + 1e-6 ms per structural MAC:
    single-group policies are reproduced exactly at the measured levels, interpolated between
    them, and random policies within 20 % once the scale is fitted (a layer between two
    groups costs k_g x k_h, which no sum of single-group savings reproduces exactly: the
    model's own error, before any measurement noise)."""
    import random

    import torch

    from autoprune.engine.costmodel import ChannelCostModel
    from autoprune.engine.metrics import count_macs
    from autoprune.models import ModelSpec, build_model
    from autoprune.search.calibration import LatencyTable, measure_latency_table

    model = build_model(ModelSpec("vgg", 0.125, 1, 10)).eval()
    x = torch.zeros(1, 1, 32, 32)
    cost = ChannelCostModel(model, x)

    def measure(m):
        return 0.5 + 1e-6 * count_macs(m, (1, 32, 32))

    dense = measure(model)
    ticks = []
    table = measure_latency_table(model, x, cost, ratio=lambda m: measure(m) / dense,
                                  measure=measure, min_keep=0.3, keeps=(0.2, 0.5, 0.75),
                                  fit_policies=4, progress=lambda: ticks.append(1))
    assert table.keeps == (0.3, 0.5, 0.75)  # raised to min_keep
    assert len(ticks) == len(cost.ids) * 3 + 4
    g = cost.ids[1]
    from autoprune.engine.prune import channel_prune
    for k in (0.5, 0.75):
        assert table.dense_ms - table.saving({g: k}) == pytest.approx(
            measure(channel_prune(model, {g: k}, x)))
    mid = table.saving({g: 0.625})
    assert mid == pytest.approx((table.saving({g: 0.5}) + table.saving({g: 0.75})) / 2)
    assert table.saving({}) == 0.0 and table.predict({}) == pytest.approx(dense)
    rng = random.Random(5)
    for _ in range(5):
        keep = {i: rng.uniform(0.3, 1.0) for i in cost.ids}
        truth = measure(channel_prune(model, keep, x))
        assert table.predict(keep) == pytest.approx(truth, rel=0.2)
    assert table.scale < 1  # the summed savings count shared layers twice
    assert LatencyTable.from_dict(table.to_dict()) == table


def test_latency_calibration_fits_median_ratios_to_dense_so_a_spike_cancels():
    """Latency exactly 0.5 ms + 1e-6 ms per structural MAC, on a machine where every fifth
    run is 60 % slower (a shared CPU's spike): the calibration times each cut alternately
    with dense, 3 times, and fits the median ratios, so the cap is the spike-free one; timed
    once each, dense last (the calibration before), the spike hit the dense run and raised the
    cap by 15 %. The dense runs' spread is kept; a cap below the smallest policy is refused
    in one sentence naming both."""
    import torch

    from autoprune.engine.costmodel import ChannelCostModel
    from autoprune.engine.metrics import SpeedupResult, count_macs
    from autoprune.errors import ConfigError
    from autoprune.models import ModelSpec, build_model
    from autoprune.search.calibration import calibrate_latency, macs_line

    model = build_model(ModelSpec("vgg", 0.125, 1, 10)).eval()
    x = torch.zeros(1, 1, 32, 32)
    cost = ChannelCostModel(model, x)
    dense_macs = count_macs(model, (1, 32, 32))
    runs = []

    def timed(m):
        runs.append(1)
        return (0.5 + 1e-6 * count_macs(m, (1, 32, 32))) * (1.6 if len(runs) % 5 == 0 else 1)

    def speedup(m):
        ref, mod = [], []
        for _ in range(3):
            ref.append(timed(model))
            mod.append(timed(m))
        return SpeedupResult(ref, mod, 1, 1, "cpu")

    cal = calibrate_latency(model, x, cost, Budget(latency=0.6), min_keep=0.3, settings=None,
                            speedup=speedup, margin=0.0)
    assert len(runs) == 4 * 2 * 3  # 4 cuts, each 3 times alternately with dense
    dense_ms = 0.5 + 1e-6 * dense_macs
    want = (0.6 * dense_ms - 0.5) / 1e-6  # where 0.5 + 1e-6 x MACs = 0.6 x dense
    assert cal["structural_macs"] == pytest.approx(want)
    assert cal["dense_ms"] == pytest.approx(dense_ms)
    assert cal["dense_ms_range"] == pytest.approx([dense_ms, 1.6 * dense_ms])  # on record
    assert cal["points"][-1] == [dense_macs, 1.0]
    runs.clear()
    a, b = macs_line(model, x, cost, min_keep=0.3, measure=timed)
    assert len(runs) == 5  # the fifth, dense, spiked
    assert (0.6 * 1.6 * dense_ms - a) / b > 1.1 * want  # 1.15 x
    assert calibrate_latency(model, x, cost, Budget(size=0.5), min_keep=0.3, settings=None,
                             speedup=speedup) is None
    with pytest.raises(ConfigError, match=r"latency budget is impossible.*above the cap of "
                                          r"0\.100"):
        calibrate_latency(model, x, cost, Budget(latency=0.1), min_keep=0.3,
                          settings=LatencySettings(), speedup=speedup)


def test_latency_refit_shrinks_the_cap_until_the_measured_structure_fits():
    """A structure measured slower than (1 - margin) x the cap is projected again onto a
    structural-MACs cap scaled by (target / measured) ** 1.5, until it fits, the tries run
    out or the cap reaches the smallest policy; each measurement is recorded."""
    from autoprune.search.calibration import LatencyRefit

    made = []

    def make(scale):
        made.append(scale)
        return {"scale": scale}

    def ms(policy):  # a fixed part the MACs do not remove, as on a real CPU
        return 0.2 + 0.8 * policy["scale"]

    policy, steps, _ = LatencyRefit(0.7, ms, tries=3, margin=0.03).fit(make)
    target = 0.97 * 0.7
    first = (target / 1.0) ** 1.5
    assert [s["scale"] for s in steps] == pytest.approx([1.0, first])
    assert steps[0]["ms"] == pytest.approx(1.0) and steps[1]["ms"] <= target
    assert policy == {"scale": pytest.approx(first)} and made == pytest.approx([1.0, first])

    # already fast enough: measured once, left as proposed
    policy, steps, _ = LatencyRefit(2.0, ms, tries=3).fit(make)
    assert policy == {"scale": 1.0} and len(steps) == 1
    # tries run out: the last policy is kept (its constraint will say it misses)
    policy, steps, kept = LatencyRefit(0.1, ms, tries=2).fit(make)
    assert kept == steps[-1]["ms"] > 0.1 and len(steps) == 3
    assert policy["scale"] == steps[-1]["scale"]
    # never below the smallest policy's scale
    policy, steps, _ = LatencyRefit(0.1, ms, tries=5, min_scale=0.5).fit(make)
    assert [s["scale"] for s in steps][-1] == 0.5 and len(steps) == 2


def test_latency_refit_grow_fills_the_band_under_the_target():
    """With ``grow``, a structure measured faster than (1 - grow) x the target is built again
    under a larger cap (proportionally first, then along the log-log line of the last two
    measurements); one grown past the target (confirmed by three runs) is not kept: the
    largest structure that met the target is, with its own measurement."""
    from autoprune.search.calibration import LatencyRefit

    runs = []

    def ms(policy):  # latency that grows faster than the cap: a proportional step overshoots
        runs.append(policy["scale"])
        return 0.5 * policy["scale"] ** 2

    target, low = 0.97 * 2.0, 0.9 * 0.97 * 2.0
    aim = (target + low) / 2  # the middle of the band
    policy, steps, kept = LatencyRefit(2.0, ms, tries=3, margin=0.03, grow=0.1).fit(
        lambda s: {"scale": s})
    up = aim / 0.5
    assert steps[0] == {"scale": 1.0, "ms": 0.5} and steps[1]["scale"] == pytest.approx(up)
    assert steps[1]["ms"] > target  # overshot; the line through both points has slope 2
    assert steps[2]["scale"] == pytest.approx((aim / 0.5) ** 0.5)
    assert steps[2]["ms"] == pytest.approx(aim) and low <= kept <= target
    assert policy == {"scale": pytest.approx(steps[2]["scale"])} and kept == steps[2]["ms"]
    assert len(steps) == 3 and runs.count(1.0) == 1 and len(runs) == 7  # re-projections x3

    # out of tries after overshooting: the structure that met the target is kept, not the last
    policy, steps, kept = LatencyRefit(2.0, ms, tries=1, grow=0.1).fit(lambda s: {"scale": s})
    assert len(steps) == 2 and steps[-1]["ms"] > target
    assert policy == {"scale": 1.0} and kept == 0.5

    # the cap stops changing the structure (the dense model is reached): growth stops there
    policy, steps, kept = LatencyRefit(2.0, ms, tries=3, grow=0.1).fit(
        lambda s: {"scale": min(s, 1.5)})
    assert policy == {"scale": 1.5} and kept == pytest.approx(1.125) and len(steps) == 2

    # without grow a fast structure is left as proposed
    policy, steps, kept = LatencyRefit(2.0, ms, tries=3).fit(lambda s: {"scale": s})
    assert policy == {"scale": 1.0} and steps == [{"scale": 1.0, "ms": 0.5}] and kept == 0.5


def test_latency_refit_confirms_a_slow_measurement_before_reprojecting():
    """A single slow run (a spike of a shared CPU) is measured twice more, and the median
    decides: a structure that is fast enough is not re-projected because of one spike."""
    from autoprune.search.calibration import LatencyRefit

    runs = iter([1.5, 0.6, 0.62])  # a spike, then two ordinary runs

    policy, steps, _ = LatencyRefit(0.7, lambda p: next(runs), tries=3).fit(lambda s: {"s": s})
    assert policy == {"s": 1.0} and steps == [{"scale": 1.0, "ms": 0.62}]
    runs = iter([1.5, 0.6, 0.62])
    _, steps, _ = LatencyRefit(0.7, lambda p: next(runs), tries=3, confirm=0).fit(
        lambda s: {"s": s})
    assert steps[0]["ms"] == 1.5 and len(steps) == 2  # without confirmation: re-projected
