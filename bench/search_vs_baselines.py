"""Does the search beat the heuristics at equal budget and equal fine-tune?

Runs (or continues) a study, then reports, for the best searched trial and the best baseline:
the search-time proxy score, the confirmed score (fresh seeds, held-out validation images), and
a final re-scoring on the TEST split with three more fresh fine-tune seeds (mean +- std).

    .venv/bin/python bench/search_vs_baselines.py studies/vgg_fine_size10.toml
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

from _common import write

from autoprune.policy import Policy
from autoprune.search import PruneSearch

TEST_SEEDS = (2000, 2001, 2002)


def main(study: str) -> None:
    t0 = time.perf_counter()
    search = PruneSearch(study, progress=False).run()
    search_s = time.perf_counter() - t0
    res = search.results_
    feas = res[res["feasible"]]
    searched = feas[feas["baseline"] == ""]
    base = feas[feas["baseline"] != ""]
    picks = {
        "best searched (by proxy)": searched.loc[searched["proxy_acc"].idxmax()],
        "best baseline (by proxy)": base.loc[base["proxy_acc"].idxmax()],
    }
    conf = feas[feas["confirmed_acc"].notna()]
    cs, cb = conf[conf["baseline"] == ""], conf[conf["baseline"] != ""]
    if len(cs):
        picks["best searched (by confirmed)"] = cs.loc[cs["confirmed_acc"].idxmax()]
    if len(cb):
        picks["best baseline (by confirmed)"] = cb.loc[cb["confirmed_acc"].idxmax()]
    rows, done = [], {}
    for label, r in picks.items():
        n = int(r["trial"])
        if n not in done:
            policy = Policy.from_dict(search.study_.trials[n].user_attrs["policy"])
            done[n] = [search.scorer_.score(policy, seed=s, split="test",
                                            val_limit=None).accuracy for s in TEST_SEEDS]
        accs = done[n]
        rows.append({"pick": label, "trial": n, "baseline": r["baseline"] or "-",
                     "size_ratio": r["size_ratio"], "proxy_acc": r["proxy_acc"],
                     "confirmed_acc": r.get("confirmed_acc"),
                     "confirmed_std": r.get("confirmed_std"),
                     "test_mean": statistics.fmean(accs), "test_std": statistics.stdev(accs),
                     "test_accs": accs})
    cfg = search.cfg
    md = [f"# {cfg.name}: searched vs heuristic policies at equal budget", "",
          f"Study `{study}`: mode {cfg.search.mode}, budget {cfg.budget.items()}, "
          f"{len(res)} trials, {cfg.proxy.steps}-step proxy fine-tune on "
          f"{cfg.proxy.val_limit} validation images; confirmation: {cfg.proxy.confirm_seeds} "
          f"fresh seeds on {cfg.proxy.confirm_val} other validation images; test: the same "
          f"{cfg.proxy.steps}-step fine-tune with seeds {list(TEST_SEEDS)}, full test split.",
          f"Search wall time (this invocation): {search_s / 60:.1f} min.", "",
          "| pick | trial | baseline | size ratio | proxy % | confirmed % | test % (3 seeds) |",
          "|---|---|---|---|---|---|---|"]
    for r in rows:
        c = "" if r["confirmed_acc"] != r["confirmed_acc"] or r["confirmed_acc"] is None \
            else f"{r['confirmed_acc']:.2f} ± {r['confirmed_std']:.2f}"
        md.append(f"| {r['pick']} | {r['trial']} | {r['baseline']} | {r['size_ratio']:.4f} | "
                  f"{r['proxy_acc']:.2f} | {c} | {r['test_mean']:.2f} ± {r['test_std']:.2f} |")
    md += ["", "All baselines at search time:", "", "| baseline | proxy % | confirmed % |",
           "|---|---|---|"]
    for _, r in base.sort_values("proxy_acc", ascending=False).iterrows():
        c = "" if r["confirmed_acc"] != r["confirmed_acc"] else f"{r['confirmed_acc']:.2f}"
        md.append(f"| {r['baseline']} | {r['proxy_acc']:.2f} | {c} |")
    md += ["", f"Command: `.venv/bin/python bench/search_vs_baselines.py {study}`"]
    write(f"search_vs_baselines_{Path(study).stem}", {"rows": rows, "search_seconds": search_s},
          "\n".join(md))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "studies/vgg_fine_size10.toml")
