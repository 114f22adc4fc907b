from __future__ import annotations

import math

import pytest

from autoprune.workflow.bench.fronts import (
    accuracy_at_cost,
    cost_at_accuracy,
    envelope,
    hypervolume,
)

FRONT = [(0.2, 90.0), (0.4, 92.0), (0.3, 89.0), (1.0, 93.0), (0.5, 91.0)]


def test_envelope_drops_dominated_points():
    assert envelope(FRONT) == [(0.2, 90.0), (0.4, 92.0), (1.0, 93.0)]
    assert envelope([(1.0, 90.0), (1.0, 91.0)]) == [(1.0, 91.0)]


def test_cost_at_accuracy_interpolates_in_log_cost():
    assert cost_at_accuracy(FRONT, 91.0) == pytest.approx(math.sqrt(0.2 * 0.4))
    assert cost_at_accuracy(FRONT, 92.0) == pytest.approx(0.4)
    assert cost_at_accuracy(FRONT, 85.0) == 0.2  # the cheapest point bounds it
    assert cost_at_accuracy(FRONT, 93.5) is None


def test_accuracy_at_cost_is_the_best_point_not_above_it():
    assert accuracy_at_cost(FRONT, 0.45) == 92.0
    assert accuracy_at_cost(FRONT, 0.1) is None


def test_hypervolume_prefers_the_dominating_front():
    hv = hypervolume(FRONT, ref_cost=2.0, ref_acc=88.0)
    expected = ((math.log(0.4) - math.log(0.2)) * 2 + (math.log(1.0) - math.log(0.4)) * 4
                + (math.log(2.0) - math.log(1.0)) * 5)
    assert hv == pytest.approx(expected)
    better = [(c * 0.8, a) for c, a in FRONT]
    assert hypervolume(better, 2.0, 88.0) > hv
    assert hypervolume([(3.0, 95.0)], 2.0, 88.0) == 0.0


def test_rank_correlations_match_hand_computed_values():
    from autoprune.workflow.bench.ranks import kendall_tau, spearman_rho

    assert kendall_tau([1, 2, 3, 4], [1, 2, 3, 4]) == 1.0
    assert kendall_tau([1, 2, 3, 4], [4, 3, 2, 1]) == -1.0
    # one discordant pair of six: (6 - 2 * 1) / 6
    assert kendall_tau([1, 2, 3, 4], [10, 20, 40, 30]) == pytest.approx(4 / 6)
    # tau-b with a tie in y: 2 concordant, 0 discordant, 1 tie in y -> 2 / sqrt(3 * 2)
    assert kendall_tau([1, 2, 3], [1, 2, 2]) == pytest.approx(2 / math.sqrt(6))
    assert spearman_rho([1, 2, 3, 4], [10, 20, 40, 30]) == pytest.approx(0.8)
    assert math.isnan(spearman_rho([1, 1, 1], [1, 2, 3]))


def test_rank_scores_add_the_standardised_sum_of_estimate_and_confirmed():
    """estimate+confirmed standardises each score over the policies before adding them, so
    a score with a wide spread does not drown the other; the TEST numbers never enter it."""
    from autoprune.workflow.bench import rank_scores

    # estimate in wide units, confirmed in narrow ones: ranked alone each gets one pair wrong
    est, conf, test = [10, 30, 20, 40], [1.0, 1.1, 1.3, 1.2], [1, 2, 3, 4]
    rows = [{"policy": f"p{i}", "draw": True, "estimate": e, "recal_only": e, "proxy": c,
             "confirmed": c, "test": t} for i, (e, c, t) in enumerate(zip(est, conf, test))]
    scores = rank_scores(rows)
    zsum = [r["estimate+confirmed"] for r in rows]
    # z(est) = [-1.34, 0.45, -0.45, 1.34], z(conf) = [-1.34, -0.45, 1.34, 0.45]
    assert zsum == pytest.approx([-2.683, 0.0, 0.894, 1.789], abs=1e-3)
    assert scores["estimate+confirmed"]["kendall_tau"] == 1.0
    assert scores["estimate"]["kendall_tau"] == scores["confirmed"]["kendall_tau"] == \
        pytest.approx(4 / 6)
    # nothing to standardise: left out, not a column of zeros
    flat = [dict(r, estimate=5.0) for r in rows]
    assert "estimate+confirmed" not in rank_scores(flat)
    # results written before draws were marked (--rewrite reads them): known by their name
    old = [{k: v for k, v in r.items() if k != "draw"} for r in rows]
    assert rank_scores(old)["estimate+confirmed"]["kendall_tau_draws"] is None
    old = [dict(r, policy=f"draw {i}") for i, r in enumerate(old)]
    assert rank_scores(old)["estimate+confirmed"]["kendall_tau_draws"] == 1.0


def test_rank_scores_against_the_mean_of_both_seeds():
    """With the re-test, every score also has its τ against the mean of both TEST seeds (the
    finalized accuracy less one seed's noise) and the re-test its ceiling for that mean."""
    from autoprune.workflow.bench import rank_scores
    from autoprune.workflow.bench.ranks import tau_ceiling

    rows = [{"policy": f"p{i}", "draw": True, "estimate": e, "confirmed": c, "proxy": c,
             "recal_only": e, "test": t, "test_retest": rt}
            for i, (e, c, t, rt) in enumerate(zip([10, 30, 20, 40], [1.0, 1.1, 1.3, 1.2],
                                                  [1, 2, 3, 4], [3, 0, 5, 4]))]
    scores = rank_scores(rows)
    # mean [2, 1, 4, 4] against the estimate: 3 concordant, 2 discordant, 1 tied in the mean
    assert scores["estimate"]["kendall_tau_mean"] == pytest.approx(1 / 30 ** 0.5)
    assert scores["estimate"]["kendall_tau"] == pytest.approx(4 / 6)
    assert "kendall_tau_mean" not in scores["test_retest"]
    retest = scores["test_retest"]
    assert retest["ceiling_mean"] == pytest.approx(tau_ceiling(retest["kendall_tau"], seeds=2))
    assert tau_ceiling(1 / 3) == pytest.approx(0.5)
    assert tau_ceiling(1 / 3, seeds=2) == pytest.approx(0.608, abs=1e-3)
    # without the re-test: no mean, as before
    assert all("kendall_tau_mean" not in v for v in rank_scores(
        [{k: v for k, v in r.items() if k != "test_retest"} for r in rows]).values())


def test_tau_ceiling_matches_a_simulated_perfect_proxy():
    """The ceiling read off two noisy seeds is the τ a proxy that knew the true quality
    reaches against one seed (simulated: quality + independent Gaussian seed noise)."""
    import numpy as np

    from autoprune.workflow.bench.ranks import kendall_tau, tau_ceiling

    assert tau_ceiling(1.0) == pytest.approx(1.0)
    assert math.isnan(tau_ceiling(0.0)) and math.isnan(tau_ceiling(-0.2))
    rng = np.random.default_rng(0)
    for noise in (0.5, 1.5):
        retest, perfect = [], []
        for _ in range(200):
            q = rng.normal(size=20)
            t0, t1 = q + noise * rng.normal(size=20), q + noise * rng.normal(size=20)
            retest.append(kendall_tau(t0, t1))
            perfect.append(kendall_tau(q, t0))
        # the ceiling sits well above the re-test τ itself, and where the simulation puts it
        assert tau_ceiling(np.mean(retest)) == pytest.approx(np.mean(perfect), abs=0.03)
        assert tau_ceiling(np.mean(retest)) > np.mean(retest) + 0.1


def test_per_level_compares_at_equal_budget_on_the_axes_the_budget_caps():
    """At a ladder level a searched point counts only if it fits the level's budget on what
    the budget caps: under a MACs (or latency) budget a point smaller in size but larger in
    MACs is not a fair rival of the heuristic there; a heuristic that leaves part of a cap
    unused does not shrink the cap for the search."""
    from autoprune.workflow.bench import _compare, level_axes, level_limits

    assert level_axes({"size": 0.5}) == ["size"]
    assert level_axes({"macs": 0.25}) == ["macs"]
    assert level_axes({"latency": 0.5}) == ["macs"]  # the ladder scales the calibrated cap
    assert level_axes({"size": 0.3, "macs": 0.6}) == ["size", "macs"]

    def point(size, macs, acc, **kw):
        return {"size_ratio": size, "macs_ratio": macs, "test_mean": acc, "test_std": 0.1,
                "test_accs": [acc - 0.1, acc + 0.1], **kw}

    heuristics = {"uniform": [point(0.15, 0.15, 90.0, level=0.6)]}
    searched = [point(0.11, 0.19, 90.5, trial=36),  # smaller, but more MACs
                point(0.14, 0.14, 89.8, trial=12)]  # no larger on either
    dense = {"test_acc": 92.0, "size_mib": 2.0, "macs": 1000}
    by_size = _compare(heuristics, searched, dense, None, {"size": 0.25})["per_level"][0]
    by_macs = _compare(heuristics, searched, dense, None, {"macs": 0.25})["per_level"][0]
    assert by_size["searched_trial"] == 36 and by_size["diff"] == pytest.approx(0.5)
    assert by_macs["searched_trial"] == 12 and by_macs["diff"] == pytest.approx(-0.2)

    # size binds the heuristic (0.30 of 0.3), MACs do not (0.38 of 0.6): a searched point
    # at 0.28 size and 0.46 MACs meets the same budget
    h = [point(0.30, 0.38, 92.0, level=1.0)]
    assert level_limits({"size": 0.3, "macs": 0.6}, dense, 1.0, h) == pytest.approx(
        {"size": 0.3, "macs": 0.6})
    both = _compare({"sensitivity": h}, [point(0.28, 0.46, 92.6, trial=20)], dense, None,
                    {"size": 0.3, "macs": 0.6})["per_level"][0]
    assert both["searched_trial"] == 20
    # a latency budget's MACs cap is not in the results: the costliest heuristic there met it
    at = [point(0.2, 0.30, 91.0, level=1.0), point(0.25, 0.35, 90.0, level=1.0)]
    assert level_limits({"latency": 0.5}, dense, 1.0, at) == {"macs": 0.35}
    # ... and where the study's calibration is known, its cap (scaled by the level)
    assert level_limits({"latency": 0.5}, dense, 1.0, at, 0.4) == pytest.approx({"macs": 0.4})
    assert level_limits({"latency": 0.5, "size": 0.5}, dense, 0.5, at, 0.4) == pytest.approx(
        {"size": 0.25, "macs": 0.35})  # never below a heuristic that met it
    lat = _compare({"a": at[:1], "b": at[1:]},
                   [point(0.3, 0.34, 91.2, trial=1), point(0.1, 0.36, 95.0, trial=2)], dense,
                   None, {"latency": 0.5})["per_level"][0]
    assert lat["searched_trial"] == 1 and lat["best_heuristic"] == "a"


def test_a_searched_point_re_measured_over_the_latency_budget_is_no_answer_to_it():
    """The benchmark times every point interleaved with dense; a searched point it finds over
    the latency budget leaves the searched front and the levels' searched points, while the
    study's pick stays what the study reports, flagged; heuristics are compared as built."""
    from autoprune.workflow.bench import _compare

    def point(size, macs, acc, **kw):
        return {"size_ratio": size, "macs_ratio": macs, "test_mean": acc, "test_std": 0.1,
                "test_accs": [acc - 0.1, acc + 0.1], **kw}

    dense = {"test_acc": 92.0, "size_mib": 2.0, "macs": 1000}
    heuristics = {"uniform": [point(0.3, 0.3, 91.0, level=1.0)]}
    searched = [point(0.29, 0.5, 92.0, trial=9, confirmed_acc=91.0),  # fast on paper only
                point(0.25, 0.4, 91.2, trial=10, confirmed_acc=90.0)]
    confirmed = [{**heuristics["uniform"][0], "trial": 0, "baseline": "uniform",
                  "confirmed_acc": 89.0}]

    def latency(meets9, meets_uniform=True):
        return {"rows": [{"point": "uniform @ 1.00", "meets_latency_budget": meets_uniform},
                         {"point": "searched trial 9", "meets_latency_budget": meets9},
                         {"point": "searched trial 10", "meets_latency_budget": True}]}

    budget = {"size": 0.3, "latency": 0.7}
    ok = _compare(heuristics, searched, dense, latency(True), budget, 0.6, confirmed)
    slow = _compare(heuristics, searched, dense, latency(False), budget, 0.6, confirmed)
    assert ok["per_level"][0]["searched_trial"] == 9 and ok["over_latency"] == []
    assert ok["per_level"][0]["pick_meets_latency"] is True
    lv = slow["per_level"][0]
    assert slow["over_latency"] == [9]
    assert lv["searched_trial"] == 10 and lv["diff"] == pytest.approx(0.2)
    assert lv["pick"] == "trial 9" and lv["pick_meets_latency"] is False
    # trial 9 alone reached dense -0.5 pp on size; without it the searched front does not
    iso = {r["drop"]: r for r in slow["iso_accuracy"]}
    assert ok["iso_accuracy"][0]["size"]["costs"]["searched"] is not None
    assert iso[0.5]["size"]["costs"]["searched"] is None
    # heuristics are compared as built, even where they measured over the budget
    built = _compare(heuristics, searched, dense, latency(False, False), budget, 0.6, confirmed)
    assert built["per_level"][0]["best_heuristic"] == "uniform"


def test_latency_cap_read_from_the_record_tolerates_a_calibration_without_cap():
    """The calibration stores ``structural_macs = None`` where latency did not grow with MACs
    (timing noise on a tiny model): no cap, not a crash; a study without a latency budget
    stores nothing."""
    import optuna

    from autoprune.search.record import StudyRecord
    from autoprune.workflow.bench import latency_macs_cap

    dense = {"macs": 1000}
    record = StudyRecord(optuna.create_study())
    assert record.latency_macs is None and latency_macs_cap(record, dense) is None
    record.set_latency_cap({"structural_macs": 400.0})
    assert record.latency_macs == 400.0 and latency_macs_cap(record, dense) == 0.4
    record.set_latency_cap({"structural_macs": None})
    assert record.latency_cap is not None and latency_macs_cap(record, dense) is None


def test_the_studys_pick_is_its_best_confirmed_trial_heuristic_or_searched():
    """Per level, the study's pick is the trial with the best confirmed (validation) score
    among its searched and enqueued heuristic trials that fit the level's budget, scored by its
    own TEST accuracy against the best heuristic there; without the confirmed heuristics there
    is no pick. Old results get them from the study's record, matched on the policy."""
    from types import SimpleNamespace

    import pandas as pd

    from autoprune.engine.policy import Policy
    from autoprune.workflow.bench import _compare, confirmed_heuristics_from_ladder

    def point(size, acc, **kw):
        return {"size_ratio": size, "macs_ratio": size, "test_mean": acc, "test_std": 0.1,
                "test_accs": [acc - 0.1, acc + 0.1], **kw}

    ladder = {"uniform": [point(0.2, 90.0, level=0.5, policy={"keep": {"g": 0.4}}),
                          point(0.4, 91.0, level=1.0, policy={"keep": {"g": 0.6}})],
              "sensitivity": [point(0.2, 90.4, level=0.5, policy={"keep": {"g": 0.45}}),
                              point(0.4, 91.5, level=1.0, policy={"keep": {"g": 0.7}})]}
    searched = [point(0.19, 90.6, trial=9, confirmed_acc=89.0),   # best on TEST, not on val
                point(0.39, 91.2, trial=12, confirmed_acc=92.0)]  # val's favourite at 1.0
    confirmed = [{**ladder["uniform"][0], "trial": 0, "baseline": "uniform",
                  "confirmed_acc": 89.5},
                 {**ladder["sensitivity"][1], "trial": 3, "baseline": "sensitivity",
                  "confirmed_acc": 91.9}]
    dense = {"test_acc": 92.0, "size_mib": 2.0, "macs": 1000}
    lv = _compare(ladder, searched, dense, None, {"size": 0.4}, None, confirmed)["per_level"]
    assert lv[0]["searched_trial"] == 9 and lv[0]["diff"] == pytest.approx(0.2)
    assert lv[0]["pick"] == "uniform @ 0.50" and lv[0]["pick_diff"] == pytest.approx(-0.4)
    assert lv[1]["pick"] == "trial 12" and lv[1]["pick_diff"] == pytest.approx(-0.3)
    assert lv[1]["pick_diff_se"] == pytest.approx(0.1)
    assert _compare(ladder, searched, dense, None, {"size": 0.4})["per_level"][0]["pick"] is None

    # within 1 std: diff >= -sqrt(0.1² + 0.1²) = -0.14; which levels are the study's own
    from autoprune.workflow.bench.render import _within_counts

    assert [p["pick_within_std"] for p in lv] == [False, False]
    assert [p["study_level"] for p in lv] == [None, None] and _within_counts(lv) == "0/2"
    searched[1]["test_mean"] = 91.4  # the pick at 1.0 now trails by 0.1 < 0.14
    lv = _compare(ladder, searched, dense, None, {"size": 0.4}, None, confirmed,
                  [0.75, 1.0])["per_level"]
    assert [p["pick_within_std"] for p in lv] == [False, True]
    assert [p["study_level"] for p in lv] == [False, True]
    assert _within_counts(lv) == "1/1 · 0/1"
    # a tie in confirmed score goes to the heuristic, as in the study's own report
    searched[1]["confirmed_acc"] = 91.9
    lv = _compare(ladder, searched, dense, None, {"size": 0.4}, None, confirmed)["per_level"]
    assert lv[1]["pick"] == "sensitivity @ 1.00"
    assert all(p["pick_confirmed"] is None for p in lv)  # no pick score: nothing to compare
    # a study that picks by estimate + confirmed: the pick follows the pick score, and the
    # benchmark says what the confirmed score alone would have picked from the same pool
    for p, score in zip(searched + confirmed, (2.0, 1.0, 0.0, 3.0)):
        p["pick_score"] = score
    lv = _compare(ladder, searched, dense, None, {"size": 0.4}, None, confirmed,
                  [0.5, 1.0])["per_level"]
    assert [p["pick"] for p in lv] == ["trial 9", "sensitivity @ 1.00"]
    assert [p["pick_confirmed"] for p in lv] == ["uniform @ 0.50", "sensitivity @ 1.00"]
    assert lv[0]["pick_confirmed_diff"] == pytest.approx(-0.4)
    assert [p["pick_within_std"] for p in lv] == [True, True]
    assert [p["pick_confirmed_within_std"] for p in lv] == [False, True]
    assert _within_counts(lv, "pick_confirmed") == "1/2 · 0/0"
    for p in searched + confirmed:
        del p["pick_score"]

    results = pd.DataFrame({"trial": [0, 3, 5], "baseline": ["uniform", "sensitivity", "erk"],
                            "level": [0.5, 1.0, 1.0], "feasible": [True, True, True],
                            "confirmed_acc": [89.5, 91.9, 91.0]})
    policies = {0: {"g": 0.4}, 3: {"g": 0.7}, 5: {"g": 0.5}}  # erk: no ladder point
    record = SimpleNamespace(results=lambda: results, trial=lambda n: SimpleNamespace(
        policy=Policy("channel", {}, policies[n])))
    got = confirmed_heuristics_from_ladder(record, ladder)
    assert [(c["trial"], c["baseline"], c["test_mean"]) for c in got] == [
        (0, "uniform", 90.0), (3, "sensitivity", 91.5)]


def test_front_plot_gives_every_front_its_own_colour(tmp_path, monkeypatch):
    """Hybrid mode's four heuristics drew LAMP, the fourth, in the searched front's red."""
    from matplotlib import pyplot as plt

    from autoprune.workflow.bench import render

    names = ["uniform", "global_ranking", "sensitivity", "lamp", "searched"]
    styles = render.front_styles(names)
    colours = [styles[n]["color"] for n in names]
    assert len(set(colours)) == len(names) and styles["searched"]["color"] == "tab:red"
    seen, real = [], plt.Axes.errorbar
    monkeypatch.setattr(plt.Axes, "errorbar",
                        lambda self, *a, **kw: seen.append(kw["color"]) or real(self, *a, **kw))
    data = render.FrontPlotData("size", {n: [(0.1 + i / 10, 90.0, 0.1)]
                                         for i, n in enumerate(names)}, 92.0)
    render.draw_fronts(data, tmp_path / "f.png", "t")
    assert seen == colours
