"""A hybrid study's benchmark against the fine-grained ``lamp`` baseline: all of the
reduction by LAMP weight sparsity, no channel removed (unless a latency cap needs some).

Hybrid mode's channel heuristics split the reduction half and half between channels and
weights; a searched hybrid policy also chooses that split, so a hybrid benchmark without
``lamp`` compares the search with nothing that is fine-grained alone, the strongest baseline
for stored size. This script fine-tunes, on today's baseline, ``lamp`` at the committed
benchmark's ladder levels together with the benchmark's own searched points and its
sensitivity-threshold ladder (the same policies, read from its results.json), all exactly as
``autoprune bench`` fine-tunes (the study's finalize with the benchmark's steps, its seeds,
TEST split, the bench cache), and compares the fronts as the benchmark does. Weight sparsity
does not change dense CPU latency, so nothing is timed: size and MACs only.

    .venv/bin/python bench/hybrid_lamp.py [--study studies/resnet20_hybrid.toml]

Trains the study's baseline if it is not cached (ResNet-20: about 8 min on 2 cores).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from _common import OUT, write


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--study", default="studies/resnet20_hybrid.toml")
    ap.add_argument("--heuristic", default="sensitivity",
                    help="the committed heuristic ladder re-finalized beside lamp")
    args = ap.parse_args()
    from tqdm.auto import tqdm

    from autoprune.engine.policy import Policy
    from autoprune.search import PruneSearch
    from autoprune.workflow.bench import _compare, _finalized
    from autoprune.workflow.bench.evaluate import Evaluator

    name = Path(args.study).stem
    r = json.loads((OUT / name / "results.json").read_text())
    steps = r["finetune"]["steps"]
    search = PruneSearch(args.study, overrides=[f"finalize.steps={steps}"] * (steps is not None))
    cfg = search.cfg
    if cfg.search.mode != "hybrid":
        raise SystemExit(f"{args.study} is a {cfg.search.mode} study, not hybrid.")
    ws = search.workspace()
    planned = search.plan(ws)
    space = planned.bind(ws.baseline.model, planned.limits, None)
    ev = Evaluator(search)
    dense = {**r["dense"], "test_acc": ws.baseline.test_acc, "val_acc": ws.baseline.val_acc}

    def committed(p: dict) -> Policy:
        return Policy(space.mode, p["policy"]["sparsity"], p["policy"]["keep"],
                      space.model_dict, space.input_size, {})

    jobs = [("lamp", lv, space.baseline_policy("lamp", lv)) for lv in r["levels"]]
    jobs += [(args.heuristic, p["level"], committed(p)) for p in r["heuristics"][args.heuristic]]
    jobs += [("searched", p["trial"], committed(p)) for p in r["searched"]]
    heuristics: dict[str, list[dict]] = {"lamp": [], args.heuristic: []}
    searched = []
    for kind, tag, policy in tqdm(jobs, desc="hybrid vs lamp", unit="point"):
        point = _finalized(ev, policy, r["seeds"], dense)
        if kind == "searched":
            searched.append({"trial": tag, **point})
        else:
            heuristics[kind].append({"level": tag, **point})
    cmp_ = _compare(heuristics, searched, dense, None, r["budget"])

    lines = [f"# {name}: the searched front against fine-grained LAMP", "",
             f"Command: `.venv/bin/python bench/hybrid_lamp.py --study {args.study}`. "
             f"Today's baseline: dense TEST {dense['test_acc']:.2f} % (the committed "
             f"benchmark's: {r['dense']['test_acc']:.2f} %, trained in an earlier session; "
             f"every point below is fine-tuned again on today's, so they compare with each "
             f"other, not with the committed report's numbers). Points: `lamp` at the "
             f"benchmark's ladder levels; the benchmark's {args.heuristic} ladder and its "
             f"searched points (the same policies); each with the study's finalize "
             f"({steps} steps), seeds {r['seeds']}, TEST split, mean ± std.", "",
             "## Every point", "",
             "| front | level / trial | size ratio | MACs ratio | TEST % |",
             "|---|---|---|---|---|"]
    for n, pts in [*heuristics.items(), ("searched", searched)]:
        for p in pts:
            tag = f"{p['level']:.3f}" if "level" in p else f"trial {p['trial']}"
            lines.append(f"| {n} | {tag} | {p['size_ratio']:.3f} | {p['macs_ratio']:.3f} | "
                         f"{p['test_mean']:.2f} ± {p['test_std']:.2f} |")
    lines += ["", "## Iso-accuracy: smallest cost each front reaches", "",
              "Interpolated in log cost along each front's envelope, as `autoprune bench` "
              "does; a front whose cheapest point already reaches the accuracy reports that "
              "point (a bound: it would reach it cheaper still).", "",
              "| accuracy level | axis | searched | lamp | " + args.heuristic
              + " | ratio (searched / best heuristic) |", "|---|---|---|---|---|---|"]
    for row in cmp_["iso_accuracy"]:
        for axis in ("size", "macs"):
            c = row[axis]["costs"]
            lines.append(f"| dense −{row['drop']:g} pp ({row['target']:.2f} %) | {axis} | "
                         f"{_f(c['searched'])} | {_f(c['lamp'])} | {_f(c[args.heuristic])} | "
                         f"{_f(row[axis]['ratio'], 2)} |")
    lines += ["", "## At each ladder level", "",
              "| level | best heuristic | its % | best searched within the level | its % | "
              "diff (pp) |", "|---|---|---|---|---|---|"]
    for lv in cmp_["per_level"]:
        d = (f"{lv['diff']:+.2f} ± {lv['diff_se']:.2f}" if lv["diff"] is not None else "–")
        lines.append(f"| {lv['level']:.3f} | {lv['best_heuristic']} | "
                     f"{lv['heuristic_mean']:.2f} ± {lv['heuristic_std']:.2f} | "
                     f"{lv['searched_trial'] if lv['searched_trial'] is not None else '–'} | "
                     f"{_f(lv['searched_mean'], 2)} | {d} |")
    hv = cmp_["hypervolume"]
    lines += ["", "Hypervolume (accuracy × log cost ratio, reference dense cost and dense −5 pp):",
              "", "| front | size | macs |", "|---|---|---|"]
    for n in hv["size"]:
        lines.append(f"| {n} | {hv['size'][n]:.3f} | {hv['macs'][n]:.3f} |")
    write(f"hybrid_lamp_{name}", {"study": args.study, "dense": dense, "heuristics": heuristics,
                                  "searched": searched, "comparison": cmp_},
          "\n".join(lines))


def _f(v, digits: int = 3) -> str:
    return "–" if v is None else f"{v:.{digits}f}"


if __name__ == "__main__":
    main()
