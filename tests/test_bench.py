"""`autoprune bench --quick` on a tiny study: the command runs end to end, resumes from its
cache, and writes what the issue asks for (the real runs are benchmarks, not tests)."""

from __future__ import annotations

import json

from autoprune.search import PruneSearch
from autoprune.workflow.cli import main
from tests.helpers import tiny_raw, to_toml


def test_quick_bench_runs_resumes_and_reports(synthetic_idx_root, in_tmp, capsys):
    raw = tiny_raw(synthetic_idx_root, search={"mode": "channel", "prior": "uniform",
                                                "trials": 6, "sweep": True, "floor": 0.5,
                                                "ladder": 1},
                   finalize={"epochs": 1, "steps": 5})
    raw["name"] = "tinybench"
    raw["budget"] = {"size": 0.5, "latency_ms": 100.0}  # loose: checks the path, not noise
    study = in_tmp / "tinybench.toml"
    study.write_text(to_toml(raw))
    assert main(["bench", str(study), "--quick", "--quiet"]) == 0
    out = in_tmp / "reports" / "benchmarks" / "tinybench"
    r = json.loads((out / "results.json").read_text())
    assert set(r["heuristics"]) == {"uniform", "global_ranking", "sensitivity"}
    for pts in r["heuristics"].values():
        assert [p["level"] for p in pts] == [0.5, 0.75, 1.0]
        assert all(len(p["test_accs"]) == 2 for p in pts)
        sizes = [p["size_ratio"] for p in pts]
        assert sizes == sorted(sizes) and sizes[-1] <= 0.5 + 1e-6  # the ladder is a ladder
    assert r["searched"] and all(p["size_ratio"] <= 0.5 + 1e-6 for p in r["searched"])
    iso = r["comparison"]["iso_accuracy"]
    assert [row["drop"] for row in iso] == [0.5, 1.0, 2.0, 3.0, 5.0]
    assert {"size", "macs", "latency"} <= set(iso[0])
    rank = r["rank_fidelity"]
    assert len(rank["rows"]) == 6 and {"proxy", "confirmed", "recal_only",
                                       "estimate"} <= set(rank["scores"])
    assert [row["draw"] for row in rank["rows"]] == [False] * 3 + [True] * 3
    assert rank["draws_test_spread"]["n"] == 3  # 6 policies: 3 heuristics, 3 draws
    # the finalize re-run with the second seed: its τ against the first and the ceiling
    assert rank["retest_seed"] == 2001 and "test_retest" in rank["scores"]
    assert all(0 <= row["test_retest"] <= 100 for row in rank["rows"])
    assert [row["test_retest"] for row in rank["rows"][:3]] == [
        pts[-1]["test_accs"][1] for pts in r["heuristics"].values()]  # cached, not re-run
    taus = [s["kendall_tau_draws"] for s in rank["scores"].values()]
    assert all(t != t or -1 <= t <= 1 for t in taus)  # NaN where the tiny model ties
    lat = r["latency"]
    assert lat["rows"] and all("meets_latency_budget" in row for row in lat["rows"])
    assert all(len(row["b1"]["speedups"]) == 1 for row in lat["rows"])
    assert r["cost"]["trials"] == 6 and r["cost"]["baseline_trials"] == 3
    assert r["cost"]["trial_median_seconds"] > 0
    md = (out / "report.md").read_text()
    for heading in ("Iso-accuracy", "At each ladder level", "hypervolume", "rank fidelity",
                    "Latency honesty", "Cost"):
        assert heading.lower() in md.lower(), heading
    for axis in ("size", "macs", "latency"):
        assert (out / f"fronts_{axis}.png").stat().st_size > 10_000
    summary = (in_tmp / "reports" / "benchmarks" / "README.md").read_text()
    assert "[tinybench](tinybench/report.md)" in summary and "per level (pp)" in summary
    assert "(6 policies)" in summary  # a τ over so few policies says how few
    assert "| macs |" not in summary  # a size budget: size and latency rows only
    assert "within the level's budget on size and MACs" in md  # size + latency_ms
    # the study's own confirmed heuristic trials are finalized too, and each level has a pick
    assert r["confirmed_heuristics"] and all(
        c["baseline"] and len(c["test_accs"]) == 2 for c in r["confirmed_heuristics"])
    assert r["comparison"]["per_level"][-1]["pick"] is not None  # the full budget has one
    assert "study's pick" in md and "pick per level (pp)" in summary
    # which levels are the study's own ladder (ladder = 1: the full budget only), and whether
    # each level's pick is within 1 std of the best heuristic
    assert r["study_levels"] == [1.0]
    per_level = r["comparison"]["per_level"]
    assert [p["study_level"] for p in per_level] == [False, False, True]
    assert all(isinstance(p["pick_within_std"], bool) for p in per_level if p["pick"])
    assert "pick within 1 std" in summary and "study's level" in md
    # --rewrite recomputes the comparisons from results.json and evaluates nothing: under a
    # MACs budget the levels compare on MACs and the headline table gets MACs rows
    # (which heuristic trials are confirmed is read from the study, not from results.json:
    # confirming more of them after the benchmark changes the pick; results written before
    # they were stored have none)
    old = {**r, "confirmed_heuristics": []}
    del old["study_levels"]  # results written before they were stored: from the study file
    (out / "results.json").write_text(json.dumps({**old, "budget": {"macs": 0.5}}))
    capsys.readouterr()
    assert main(["bench", str(study), "--rewrite"]) == 0
    assert "recomputed" in capsys.readouterr().out
    rewritten = json.loads((out / "results.json").read_text())
    assert rewritten["comparison"]["level_axes"] == ["macs"]
    assert rewritten["study_levels"] == [1.0]
    assert [p["study_level"] for p in rewritten["comparison"]["per_level"]] == [False] * 2 + [
        True]
    assert rewritten["machine"] == r["machine"]  # the machine that measured, not the rewriter
    assert [c["trial"] for c in rewritten["confirmed_heuristics"]] == [
        c["trial"] for c in r["confirmed_heuristics"]]
    assert "within the level's budget on MACs" in (out / "report.md").read_text()
    summary = (in_tmp / "reports" / "benchmarks" / "README.md").read_text()
    assert "| macs |" in summary
    # results of another study that had this name (the study file changed since): its record
    # is not read, the confirmed heuristic trials stay as stored
    assert r["fingerprint"] == json.loads(json.dumps(PruneSearch(study).cfg.fingerprint()))
    (out / "results.json").write_text(json.dumps({**old, "fingerprint": {"proxy": "other"}}))
    assert main(["bench", str(study), "--rewrite"]) == 0
    assert json.loads((out / "results.json").read_text())["confirmed_heuristics"] == []
    # results marked as from a study that is gone (fingerprint None): a later study of the
    # same name and settings is another search, nothing is read from it either
    (out / "results.json").write_text(json.dumps({**old, "fingerprint": None}))
    assert main(["bench", str(study), "--rewrite"]) == 0
    assert json.loads((out / "results.json").read_text())["confirmed_heuristics"] == []
    # a note added to results after the run (what was learned since) heads the report, and
    # the index points at it
    (out / "results.json").write_text(json.dumps({**r, "notes": ["Superseded by X."]}))
    assert main(["bench", str(study), "--rewrite"]) == 0
    assert "**Note.** Superseded by X." in (out / "report.md").read_text()
    summary = (in_tmp / "reports" / "benchmarks" / "README.md").read_text()
    assert "[tinybench](tinybench/report.md) (see its note)" in summary
    (out / "results.json").write_text(json.dumps(r))
    # written to another folder (--out), the report's command says so; the default does not
    other = in_tmp / "reports" / "benchmarks" / "tinybench_other"
    other.mkdir()
    (other / "results.json").write_text(json.dumps(r))
    assert main(["bench", str(study), "--rewrite", "--out", str(other)]) == 0
    assert f"--finalize-steps 5 --out {other.as_posix()}`" in (other / "report.md").read_text()
    assert "--out" not in (out / "report.md").read_text()
    # a run with chosen levels and latency settings other than --quick's: the command states
    # its counts and its levels, so that it reproduces the run
    (other / "results.json").write_text(json.dumps({**r, "settings": {
        **r["settings"], "levels": [0.4, 0.7, 1.0], "latency_repeats": 3}}))
    assert main(["bench", str(study), "--rewrite", "--out", str(other)]) == 0
    assert ("tinybench.toml --seeds 2 --rank-policies 6 --levels 0.4,0.7,1 --finalize-steps 5"
            in (other / "report.md").read_text())

    # a second run evaluates nothing again; its report's command repeats its overrides
    capsys.readouterr()
    assert main(["bench", str(study), "--quick", "--quiet", "--set", "proxy.seed=0"]) == 0
    assert "0 evaluations computed" in capsys.readouterr().out
    assert "tinybench.toml --set proxy.seed=0 --quick --finalize-steps 5`" in (
        out / "report.md").read_text()

    # further proxies on the rank-fidelity policies (longer / shorter fine-tunes, more
    # images): each one scored and ranked, the study's own (3 steps, 100 images) not twice,
    # everything else still cached
    capsys.readouterr()
    assert main(["bench", str(study), "--quick", "--quiet", "--rank-steps", "1,3,6",
                 "--rank-images", "50,100"]) == 0
    assert "18 evaluations computed" in capsys.readouterr().out
    rank = json.loads((out / "results.json").read_text())["rank_fidelity"]
    assert set(rank["labels"]) == {"proxy", "proxy@1", "proxy@6", "proxy/50"}
    # a fresh proxy seed: the proxy and its 3 variants again for each of 6 policies
    assert main(["bench", str(study), "--quick", "--quiet", "--rank-steps", "1,3,6",
                 "--rank-images", "50,100", "--rank-proxy-seeds", "0,7"]) == 0
    assert "24 evaluations computed" in capsys.readouterr().out
    seeded = json.loads((out / "results.json").read_text())["rank_fidelity"]
    assert set(seeded["labels"]) == set(rank["labels"]) | {"proxy#7", "proxy@1#7", "proxy@6#7",
                                                           "proxy/50#7"}
    assert seeded["labels"]["proxy@6#7"] == "proxy, 6 steps, seed 7"
    assert [r["proxy"] for r in seeded["rows"]] == [r["proxy"] for r in rank["rows"]]
    assert "--rank-proxy-seeds 0,7" in (out / "report.md").read_text()
    assert set(rank["scores"]) >= set(rank["labels"]) and "proxy@3" not in rank["scores"]
    assert all(0 <= row[k] <= 100 for row in rank["rows"] for k in rank["labels"])
    assert set(rank["proxy_seconds"]) == set(rank["labels"])
    md = (out / "report.md").read_text()
    assert "proxy, 6 steps" in md and "proxy, 50 images" in md
    assert "--rank-steps 1,3,6 --rank-images 50,100" in md


def test_finalized_points_are_cached_apart_from_the_proxy_settings_they_do_not_read(
        synthetic_idx_root, monkeypatch):
    """A finalize fine-tune reads of the proxy settings only the batch-norm recalibration and
    the batch size: a benchmark of a study that differs in any other (proxy steps,
    confirmation, ...) re-runs no finalized point; one that differs in those, or in the
    finalize settings, does. Proxy scores depend on every proxy setting."""
    from types import SimpleNamespace

    from autoprune.engine.policy import Policy
    from autoprune.search.config import config_from_dict
    from autoprune.workflow.bench import evaluate

    runs = []
    monkeypatch.setattr(evaluate, "final_finetune", lambda ws, policy, seed: runs.append(
        seed) or SimpleNamespace(score=SimpleNamespace(
            accuracy=90.0, accuracy_before_ft=80.0, size_mib=1.0, macs=1, params=1,
            seconds=0.0)))

    def evaluator(proxy=None, finalize=None):
        cfg = config_from_dict(tiny_raw(synthetic_idx_root, proxy=proxy or {},
                                        finalize=finalize or {}), "keys")
        ws = SimpleNamespace(baseline=SimpleNamespace(path="baseline.pt"),
                             data=SimpleNamespace(fingerprint="data"))
        return evaluate.Evaluator(SimpleNamespace(ws_=ws, cfg=cfg))

    policy = Policy("channel", {}, {"conv": 0.5}, {}, (1, 8, 8), {})
    evaluator().finetuned(policy, seed=1)
    assert runs == [1]
    for same in ({"steps": 7}, {"confirm_top": 1, "confirm_val": 50, "val_limit": 60},
                 {"seed": 5, "lr": 0.5}):
        assert evaluator(proxy=same).finetuned(policy, seed=1)["test_acc"] == 90.0
    assert runs == [1]
    for other in ({"proxy": {"recalibrate": 7}}, {"proxy": {"batch_size": 3}},
                  {"finalize": {"lr": 0.5}}):
        evaluator(**other).finetuned(policy, seed=1)
    assert runs == [1] * 4
    a, b = evaluator(), evaluator(proxy={"steps": 7})
    assert a._bases["proxy"] != b._bases["proxy"] and a._bases["final"] == b._bases["final"]


def test_rank_check_scores_confirmed_as_the_study_confirms(synthetic_idx_root):
    """The rank check's "confirmed" column is the score the study picks by: with
    ``proxy.rungs`` the study confirms with the top rung's steps, so the rank check must too
    (it scored the proxy's own steps, 30 where vgg_channel_macs25 confirms with 100)."""
    from types import SimpleNamespace

    from autoprune.engine.policy import Policy
    from autoprune.search.config import config_from_dict
    from autoprune.search.confirmation import confirm_scoring
    from autoprune.workflow.bench import BenchSettings, _rank_fidelity

    policy = Policy("channel", {}, {"conv": 0.5}, {}, (1, 8, 8), {})
    space = SimpleNamespace(baseline_names=lambda: ["uniform"],
                            baseline_policy=lambda name, factor: policy,
                            sample=lambda trial, factor: policy, estimate=lambda p: 50.0)
    calls = []

    class FakeEvaluator:
        def finetuned(self, p, seed):
            return {"test_acc": 90.0 + seed % 7, "size_mib": 1.0}

        def proxy(self, p, *, seed=None, images=None, steps=None):
            calls.append((seed, images, steps))
            return {"accuracy": 80.0, "seconds": 0.0}

    for rungs, steps in (([], None), ([6, 9], 9)):
        cfg = config_from_dict(tiny_raw(synthetic_idx_root, search={"mode": "channel"},
                                        proxy={"rungs": rungs, "steps": 3}), "keys")
        calls.clear()
        _rank_fidelity(SimpleNamespace(cfg=cfg, space_=space), FakeEvaluator(),
                       BenchSettings(rank_policies=4, seeds=(2000, 2001)), {"size_mib": 2.0},
                       progress=False)
        how = confirm_scoring(cfg.proxy)
        assert how.steps == steps and len(how.seeds) == 2
        confirmed = [c for c in calls if c[1] == how.images]
        assert len(confirmed) == 4 * 2  # each policy with each confirmation seed
        assert {(s, st) for s, _, st in confirmed} == {(s, steps) for s in how.seeds}
