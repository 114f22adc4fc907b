"""Would a more conservative pick keep the study's pick closer to the best heuristic?

The study picks, at each ladder level, the trial with the best confirmed (validation) score
among its searched and enqueued heuristic trials. The variant: a searched trial only when its
confirmed lead over the best confirmed heuristic there exceeds z standard errors of the
difference (sqrt(sd_s²/n_s + sd_h²/n_h), from each trial's confirmation seeds). Re-scored
offline on every committed benchmark whose study is still here (its record gives each
trial's confirmation std; the finalized TEST numbers come from the benchmark): how many
levels the pick is within 1 std of the best heuristic (pick − heuristic ≥
−sqrt(std_pick² + std_heuristic²)), and the mean difference. Evaluates nothing.

    .venv/bin/python bench/pick_margin.py [--z 0,0.5,1,1.5,2]

Needs the benchmarks' studies (studies/<name>/, git-ignored: run their `autoprune bench`
commands first); a benchmark whose study is not here, or is another study of the same name
(its fingerprint, or for older results its trials' confirmed scores, differ) is left out
and named.
"""

from __future__ import annotations

import argparse
import json
import math

from _common import OUT, write


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--z", default="0,0.5,1,1.5,2")
    args = ap.parse_args()
    from autoprune.errors import StudyStateError
    from autoprune.search import PruneSearch
    from autoprune.search.config import load_config
    from autoprune.workflow.bench import fits_level, within_std

    zs = [float(v) for v in args.z.split(",")]
    agg = {z: {"levels": 0, "within": 0, "diff_sum": 0.0, "searched_picks": 0} for z in zs}
    used, left_out = [], []
    for path in sorted(OUT.glob("*/results.json")):
        r = json.loads(path.read_text())
        name = path.parent.name
        if not r.get("confirmed_heuristics"):
            continue
        cfg = load_config(r["source"], list(r.get("overrides", [])))
        try:
            search = PruneSearch.load(cfg, progress=False)
        except StudyStateError:
            left_out.append(f"{name} (no study)")
            continue
        if "fingerprint" in r and search.record_.fingerprint != r["fingerprint"]:
            left_out.append(f"{name} (another study of that name)")
            continue
        res = search.results_
        conf = dict(zip(res["trial"], res["confirmed_acc"]))
        if any(abs(conf.get(c["trial"], math.nan) - c["confirmed_acc"]) > 1e-9
               for c in r["confirmed_heuristics"] + r["searched"]):
            # results older than the stored fingerprint: the trials must be the same
            left_out.append(f"{name} (another study of that name)")
            continue
        sd = dict(zip(res["trial"], res["confirmed_std"]))
        n = dict(zip(res["trial"], res["confirmed_n"]))
        used.append(name)
        for i, lv in enumerate(r["comparison"]["per_level"]):
            s_pool = [p for p in r["searched"] if fits_level(p, lv["limits"])]
            h_pool = [p for p in r["confirmed_heuristics"] if fits_level(p, lv["limits"])]
            best = r["heuristics"][lv["best_heuristic"]][i]
            hs = max(h_pool, key=lambda p: p["confirmed_acc"]) if h_pool else None
            ss = max(s_pool, key=lambda p: p["confirmed_acc"]) if s_pool else None
            se = 0.0
            if ss is not None and hs is not None:
                se = math.sqrt(sd[ss["trial"]] ** 2 / n[ss["trial"]]
                               + sd[hs["trial"]] ** 2 / n[hs["trial"]])
                se = 0.0 if math.isnan(se) else se  # one confirmation seed: no spread known
            for z in zs:
                pick = hs
                if ss is not None and (hs is None
                                       or ss["confirmed_acc"] - hs["confirmed_acc"] > z * se):
                    pick = ss
                if pick is None:
                    continue
                d = pick["test_mean"] - best["test_mean"]
                a = agg[z]
                a["levels"] += 1
                a["within"] += within_std(pick, best)
                a["diff_sum"] += d
                a["searched_picks"] += pick is ss
    lines = ["# The study's pick with a margin for searched trials", "",
             "Command: `.venv/bin/python bench/pick_margin.py`. Benchmarks re-scored: "
             + ", ".join(used) + (". Left out: " + ", ".join(left_out) if left_out else "")
             + ".", "",
             "| z | levels | pick within 1 std | mean pick − best heuristic (pp) | "
             "searched picks |", "|---|---|---|---|---|"]
    for z, a in agg.items():
        lines.append(f"| {z:g} | {a['levels']} | {a['within']} | "
                     f"{a['diff_sum'] / max(a['levels'], 1):+.3f} | {a['searched_picks']} |")
    write("pick_margin", {"z": agg, "used": used, "left_out": left_out}, "\n".join(lines))


if __name__ == "__main__":
    main()
