"""Searched points against the best heuristic of several benchmarks of one baseline, pooled.

`autoprune bench` compares a study's searched points with the heuristics *it* builds. Some
heuristics depend on the study's settings (the sensitivity threshold allocates by the study's
own scan), so two runs that differ in such a setting are each judged against a different
yardstick: a run can lead "its" best heuristic at every level because its heuristic got
weaker, not because its search got better. This script re-judges every run against the best
heuristic point of all the given runs at each ladder level (TEST, the same fine-tune and
seeds: the benchmarks' own finalized numbers; evaluates nothing). Runs must share the dense
model (same dense TEST accuracy), the levels and the fine-tune.

    .venv/bin/python bench/pooled_levels.py --out scan_grid demo_scan4_s0 demo_scan4_s1 \\
        demo_scan10_s0 demo_scan10_s1

Writes reports/benchmarks/<out>.md and .json.
"""

from __future__ import annotations

import argparse
import json
import math

from _common import OUT, write


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("runs", nargs="+", help="benchmark folders under reports/benchmarks")
    ap.add_argument("--out", required=True, help="name of the report to write")
    args = ap.parse_args()
    results = {r: json.loads((OUT / r / "results.json").read_text()) for r in args.runs}
    first = results[args.runs[0]]
    for run, r in results.items():
        for key in ("levels", "seeds", "finetune"):
            if r[key] != first[key]:
                raise SystemExit(f"{run} differs from {args.runs[0]} in {key!r} "
                                 f"({r[key]!r} vs {first[key]!r}): not one baseline and "
                                 f"fine-tune, nothing to pool.")
        if r["dense"]["test_acc"] != first["dense"]["test_acc"]:
            raise SystemExit(f"{run}'s dense model scores {r['dense']['test_acc']} % on TEST, "
                             f"{args.runs[0]}'s {first['dense']['test_acc']} %: another "
                             f"baseline, nothing to pool.")
    levels = [round(lv, 6) for lv in first["levels"]]
    # the same heuristic built identically in two runs is one point (same TEST numbers)
    pool: dict[float, dict[str, dict]] = {lv: {} for lv in levels}
    for run, r in results.items():
        for name, points in r["heuristics"].items():
            for p in points:
                lv = round(p["level"], 6)
                key = json.dumps(p["policy"], sort_keys=True)
                entry = pool[lv].setdefault(key, {"names": set(), "point": p})
                entry["names"].add((run, name))
    rows = []
    for lv in levels:
        entries = list(pool[lv].values())
        best = max(entries, key=lambda e: e["point"]["test_mean"])
        runs_of_best = sorted({run for run, _ in best["names"]})
        name = sorted({n for _, n in best["names"]})[0]
        h = best["point"]
        for run, r in results.items():
            per = next(x for x in r["comparison"]["per_level"] if round(x["level"], 6) == lv)
            if per.get("searched_mean") is None:
                rows.append({"level": lv, "run": run, "searched_trial": None})
                continue
            s = next(p for p in r["searched"] if p["trial"] == per["searched_trial"])
            n_s, n_h = len(s["test_accs"]), len(h["test_accs"])
            rows.append({
                "level": lv, "run": run, "searched_trial": s["trial"],
                "searched_mean": s["test_mean"], "searched_std": s["test_std"],
                "own_best_heuristic": per["best_heuristic"], "own_diff": per["diff"],
                "pooled_heuristic": name, "pooled_from": runs_of_best,
                "pooled_mean": h["test_mean"], "pooled_std": h["test_std"],
                "pooled_diff": s["test_mean"] - h["test_mean"],
                "pooled_diff_se": math.sqrt(s["test_std"] ** 2 / n_s + h["test_std"] ** 2 / n_h),
            })
    lines = [f"# Searched points against the pooled best heuristic: {', '.join(args.runs)}",
             "",
             __doc__.split("\n\n")[1].replace("\n", " "),
             "",
             f"Dense TEST accuracy {first['dense']['test_acc']} %; levels {levels}; "
             f"seeds {first['seeds']}.",
             "",
             "| level | run | searched trial | searched % | vs its own best heuristic (pp) | "
             "pooled best heuristic | its % | vs pooled (pp) |",
             "|---|---|---|---|---|---|---|---|"]
    for x in rows:
        if x["searched_trial"] is None:
            lines.append(f"| {x['level']:.2f} | {x['run']} | – | – | – | – | – | – |")
            continue
        src = x["pooled_heuristic"] + (" (" + ", ".join(x["pooled_from"]) + ")"
                                       if len(x["pooled_from"]) < len(results) else "")
        lines.append(
            f"| {x['level']:.2f} | {x['run']} | {x['searched_trial']} | "
            f"{x['searched_mean']:.2f} ± {x['searched_std']:.2f} | "
            f"{x['own_diff']:+.2f} ({x['own_best_heuristic']}) | {src} | "
            f"{x['pooled_mean']:.2f} ± {x['pooled_std']:.2f} | "
            f"{x['pooled_diff']:+.2f} ± {x['pooled_diff_se']:.2f} |")
    lines.append("")
    for run in results:
        d = [x["pooled_diff"] for x in rows if x["run"] == run and x["searched_trial"]]
        o = [x["own_diff"] for x in rows if x["run"] == run and x["searched_trial"]]
        lines.append(f"- {run}: mean over levels {sum(o) / len(o):+.2f} pp against its own "
                     f"best heuristic, {sum(d) / len(d):+.2f} pp against the pooled one.")
    lines.append("")
    lines.append("Command: `.venv/bin/python bench/pooled_levels.py --out " + args.out + " "
                 + " ".join(args.runs) + "`")
    write(args.out, {"runs": args.runs, "rows": rows}, "\n".join(lines))


if __name__ == "__main__":
    main()
