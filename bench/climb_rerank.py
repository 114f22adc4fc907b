"""Re-ranking climbed candidates by a real score at tight levels.

At the demo's tight levels the scan's additive estimate over-credits the screening climb's
policy (0.4 of the budget: climbed 88.67 against the sensitivity threshold's 87.25 estimated,
90.39 against 90.54 % on TEST; reports/benchmarks/climb_saturation_demo.md). Does choosing
among several climbed candidates by a real, joint score help? At each level this climbs
``--candidates`` policies (the best of 64 draws, 448 steps, each with its own seed), scores
each by the study's proxy fine-tune on validation images with two fine-tune seeds (mean), and
fine-tunes the proxy's favourite, every candidate (one seed) and every heuristic with the
study's finalize on TEST. Repeated for ``--pools`` disjoint sets of seeds.

    .venv/bin/python bench/climb_rerank.py [STUDY] [--levels 0.4,0.55] [--candidates 8]

Writes reports/benchmarks/climb_rerank_<study>.md and .json.
"""

from __future__ import annotations

import argparse
import statistics as st
import time
from pathlib import Path

from _common import mean_std, write

PROXY_SEEDS = (101, 102)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("study", nargs="?", default="studies/demo.toml")
    ap.add_argument("--levels", default="0.4,0.55")
    ap.add_argument("--candidates", type=int, default=8)
    ap.add_argument("--pools", type=int, default=3)
    ap.add_argument("--images", type=int, default=3000)
    args = ap.parse_args()
    import optuna

    from autoprune.search.scoring import ProxyScorer
    from autoprune.search.screening import screen
    from autoprune.search.study import PruneSearch
    from autoprune.workflow.bench import BenchSettings
    from autoprune.workflow.bench.evaluate import Evaluator

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    finalize_seeds = BenchSettings().seeds  # the benchmarks'
    t0 = time.perf_counter()
    search = PruneSearch(args.study, overrides=["name=climb_rerank"], device="cpu",
                         progress=False)
    space = search.search_space()
    ws = search.workspace()
    scorer, ev = ProxyScorer(ws, 0.0), Evaluator(search)

    def test(policy, seeds=finalize_seeds) -> list[float]:
        return [ev.finetuned(policy, s)["test_acc"] for s in seeds]

    def proxy(policy) -> float:
        return st.mean(scorer.score(policy, seed=s, images=(0, args.images),
                                    latency=False).accuracy for s in PROXY_SEEDS)

    rows = []
    for level in (float(x) for x in args.levels.split(",")):
        heur = {n: test(space.baseline_policy(n, level)) for n in space.baseline_names()}
        best_h = max(heur, key=lambda n: st.mean(heur[n]))
        for pool in range(args.pools):
            cands = []
            for k in range(args.candidates):
                seed = pool * args.candidates + k
                (_, params, est), = screen(space, (level,), 64, seed=seed, sweep=False,
                                           climb=448)
                pol = space.sample(optuna.trial.FixedTrial(params), factor=level)
                cands.append({"seed": seed, "estimate": est, "proxy": proxy(pol),
                              "test1": test(pol, finalize_seeds[:1])[0], "policy": pol})
            fav = max(cands, key=lambda c: c["proxy"])
            by_est = max(cands, key=lambda c: c["estimate"])
            fav_test, est_test = test(fav["policy"]), test(by_est["policy"])
            rows.append({
                "level": level, "pool": pool, "best_heuristic": best_h,
                "heuristic": heur[best_h], "heuristics": heur,
                "proxy_pick": fav["seed"], "proxy_pick_test": fav_test,
                "estimate_pick": by_est["seed"], "estimate_pick_test": est_test,
                "candidates": [{k: v for k, v in c.items() if k != "policy"}
                               | {"size_mib": space.size_mib(c["policy"])} for c in cands]})
            print(f"level {level} pool {pool}: heuristic {best_h} {st.mean(heur[best_h]):.2f}, "
                  f"proxy pick {st.mean(fav_test):.2f}, estimate pick {st.mean(est_test):.2f}",
                  flush=True)

    lines = [f"# Climbed candidates re-ranked by the proxy: {args.study}", "",
             __doc__.split("\n\n")[1].replace("\n", " "), "",
             f"{args.candidates} candidates per pool; proxy: the study's proxy fine-tune, mean of "
             f"seeds {PROXY_SEEDS} on the first {args.images} validation images; TEST: the "
             f"study's finalize, seeds {finalize_seeds} (candidates: the first only). Diff: "
             "pick minus the best heuristic at the level (mean over seeds).", "",
             "| level | pool | best heuristic | heuristic TEST % | pick by proxy | TEST % | diff | "
             "pick by estimate | TEST % | diff | candidates' TEST (1 seed) min–max |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        h = st.mean(r["heuristic"])
        t1 = [c["test1"] for c in r["candidates"]]
        lines.append(
            f"| {r['level']:.2f} | {r['pool']} | {r['best_heuristic']} | "
            f"{mean_std(r['heuristic'])} | "
            f"seed {r['proxy_pick']} | {mean_std(r['proxy_pick_test'])} | "
            f"{st.mean(r['proxy_pick_test']) - h:+.2f} | seed {r['estimate_pick']} | "
            f"{mean_std(r['estimate_pick_test'])} | {st.mean(r['estimate_pick_test']) - h:+.2f} | "
            f"{min(t1):.2f}–{max(t1):.2f} |")
    lines += ["", f"Command: `.venv/bin/python bench/climb_rerank.py {args.study} --levels "
              f"{args.levels} --candidates {args.candidates} --pools {args.pools}` "
              f"({time.perf_counter() - t0:.0f} s)"]
    write(f"climb_rerank_{Path(args.study).stem}", {"study": args.study, "rows": rows},
          "\n".join(lines))


if __name__ == "__main__":
    main()
