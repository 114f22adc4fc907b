"""The benchmark's files: ``results.json``, ``report.md`` and the front plots of one study, and
the headline table of every study in ``reports/benchmarks/README.md``."""

from __future__ import annotations

import json
import math
import platform
from dataclasses import asdict
from pathlib import Path
from typing import NamedTuple

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from autoprune.workflow.bench import (  # noqa: E402
    ACC_DROPS,
    MIN_RANK_POLICIES,
    QUICK,
    RANK_OPTIONS,
)
from autoprune.workflow.report.document import Document  # noqa: E402

__all__ = ["FrontPlotData", "front_plot_data", "draw_fronts", "write_bench", "write_summary"]


class FrontPlotData(NamedTuple):
    axis: str
    series: dict[str, list[tuple[float, float, float]]]  # name -> (cost ratio, mean, std)
    dense_acc: float


def front_plot_data(results: dict, axis: str) -> FrontPlotData:
    fronts = {**results["heuristics"], "searched": results["searched"]}
    series = {n: sorted((p[f"{axis}_ratio"], p["test_mean"], p["test_std"]) for p in pts
                        if p.get(f"{axis}_ratio") is not None)
              for n, pts in fronts.items()}
    return FrontPlotData(axis, {n: s for n, s in series.items() if s},
                         results["dense"]["test_acc"])


#: The searched front's colour, and the heuristics' (matplotlib's cycle without it: with four
#: heuristics or more the default cycle gave the fourth, LAMP in hybrid mode, the same red).
SEARCHED_COLOUR = "tab:red"
HEURISTIC_COLOURS = ("tab:blue", "tab:orange", "tab:green", "tab:purple", "tab:brown",
                     "tab:pink", "tab:gray", "tab:olive", "tab:cyan")


def front_styles(names: list[str]) -> dict[str, dict]:
    """Line style of each front: the searched one bold in its own colour, the heuristics each
    in another."""
    heuristics = [n for n in names if n != "searched"]
    styles = {n: dict(color=HEURISTIC_COLOURS[i % len(HEURISTIC_COLOURS)], marker="o", ms=4,
                      lw=1) for i, n in enumerate(heuristics)}
    if "searched" in names:
        styles["searched"] = dict(color=SEARCHED_COLOUR, lw=2, marker="D", ms=6)
    return styles


def draw_fronts(d: FrontPlotData, path: Path, title: str) -> Path:
    fig, ax = plt.subplots(figsize=(8, 5))
    styles = front_styles(list(d.series))
    for name, pts in d.series.items():
        x, y, e = zip(*pts)
        ax.errorbar(x, y, yerr=e, capsize=3, label=name, **styles[name])
    for drop in ACC_DROPS:
        ax.axhline(d.dense_acc - drop, color="0.6", ls=":", lw=0.8)
    ax.axhline(d.dense_acc, color="k", ls="--", lw=1, label=f"dense {d.dense_acc:.2f} %")
    ax.set_xscale("log")
    ax.set_xlabel(f"{d.axis} as a fraction of dense" + (" (measured, interleaved with dense)"
                                                        if d.axis == "latency" else ""))
    ax.set_ylabel("TEST accuracy (%), mean ± std over seeds")
    ax.set_title(title)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _f(v, fmt="{:.2f}") -> str:
    return "–" if v is None or (isinstance(v, float) and math.isnan(v)) else fmt.format(v)


def machine() -> dict:
    cpu = ""
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    import os

    return {"cpu": cpu or platform.processor(), "cores": os.cpu_count(),
            "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}


def write_bench(results: dict, out: Path) -> Path:
    """Write one study's benchmark files into ``out``; returns ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    # a rewritten report keeps the machine its numbers were measured on
    results = {"machine": machine(), **results}
    axes = ["size", "macs"] + (["latency"] if results["latency"] else [])
    plots = [draw_fronts(front_plot_data(results, a), out / f"fronts_{a}.png",
                         f"{results['study']}: fronts, accuracy vs {a}") for a in axes]
    (out / "results.json").write_text(json.dumps(results, indent=2, default=float))
    (out / "report.md").write_text(_document(results, plots, out).to_markdown())
    write_summary(out.parent)
    return out


def _document(r: dict, plots: list[Path], out: Path) -> Document:
    ft = r["finetune"]
    ft_text = f"{ft['steps']} steps" if ft["steps"] else f"{ft['epochs']} epoch(s)"
    doc = Document(title=f"bench {r['study']}")
    doc.heading(f"Benchmark: {r['study']}")
    doc.paragraph(f"Study `{r['source'] or r['study']}`, mode `{r['mode']}`, budget "
                  f"{r['budget']}. Every point: the same fine-tune ({ft_text}, lr {ft['lr']}), "
                  f"TEST split, seeds {r['seeds']} (mean ± std). Ladder levels (fractions of "
                  f"the budget): {[round(v, 3) for v in r['levels']]}. Dense TEST accuracy "
                  f"{r['dense']['test_acc']:.2f} %.")
    doc.paragraph(f"Command: `autoprune bench {r['source'] or r['study']}"
                  f"{_flags(r, out)}`. Machine: {r['machine']}.")
    for note in r.get("notes", []):  # what was learned after it ran (set by hand)
        doc.paragraph(f"**Note.** {note}")
    cmp_ = r["comparison"]
    doc.heading("Iso-accuracy: smallest cost each front reaches", 2)
    doc.paragraph("Cost as a fraction of dense, interpolated in log cost along each front's "
                  "envelope; ratio = searched / best heuristic (< 1: the search finds a cheaper "
                  "model at that accuracy). '–': the front never reaches that accuracy; a "
                  "front whose cheapest point already reaches it reports that point (a bound).")
    axes = [a for a in ("size", "macs", "latency") if a in cmp_["iso_accuracy"][0]]
    rows = []
    for row in cmp_["iso_accuracy"]:
        for a in axes:
            c = row[a]
            rows.append([f"dense −{row['drop']:g} pp ({row['target']:.2f} %)", a,
                         _f(c["costs"]["searched"], "{:.3f}"), c["best_heuristic"] or "–",
                         _f(c["costs"].get(c["best_heuristic"]), "{:.3f}")
                         if c["best_heuristic"] else "–", _f(c["ratio"], "{:.2f}")])
    doc.table(["accuracy level", "axis", "searched", "best heuristic", "its cost",
               "ratio"], rows)
    doc.heading("At each ladder level", 2)
    by = cmp_.get("level_axes", ["size"])
    doc.paragraph(f"Best heuristic at the level vs the best searched point within the "
                  f"level's budget on {' and '.join('MACs' if a == 'macs' else a for a in by)} "
                  f"(what the budget caps; a cap the budget does not state, such as the MACs a "
                  f"latency budget allows, is the costliest heuristic's at the level); diff ± "
                  f"its standard error over seeds. The study's pick: what the study itself "
                  f"reports at the level, the trial with the best "
                  + ("pick score (confirmed validation accuracy plus the scan's additive "
                     "estimate, each standardised over the study's confirmed trials)"
                     if _fused(r) else "confirmed (validation) score")
                  + " among its searched and its enqueued heuristic trials within the level's "
                  "budget; its diff is against the same best heuristic, on TEST; within 1 "
                  "std: the diff is at least minus the seed-to-seed spread of a difference "
                  "of two fine-tunes, sqrt(std_pick² + std_heuristic²). Study's level: one "
                  "of the levels of the study's own ladder, where it enqueued every "
                  "heuristic (the others lie between them).")
    with_macs = "macs" in by
    with_pick = any(p.get("pick") for p in cmp_["per_level"])
    with_study = any(p.get("study_level") is not None for p in cmp_["per_level"])
    doc.table(["level", *["study's level"] * with_study, "size ratio",
               *["MACs ratio"] * with_macs, "best heuristic",
               "heuristic %", "searched trial", "searched %", "diff (pp)",
               *["study's pick", "pick %", "pick diff (pp)", "within 1 std"] * with_pick],
              [[_f(p["level"], "{:.3f}"),
                *[_yes(p.get("study_level"))] * with_study, _f(p["size_ratio"], "{:.3f}"),
                *[_f(p.get("macs_ratio"), "{:.3f}")] * with_macs, p["best_heuristic"],
                f"{p['heuristic_mean']:.2f} ± {p['heuristic_std']:.2f}",
                p["searched_trial"] if p["searched_trial"] is not None else "–",
                _f(p["searched_mean"]),
                f"{p['diff']:+.2f} ± {p['diff_se']:.2f}" if p["diff"] is not None else "–",
                *[(p.get("pick") or "–")
                  + (" (over the latency budget)" if p.get("pick_meets_latency") is False
                     else ""), _f(p.get("pick_mean")),
                  f"{p['pick_diff']:+.2f} ± {p['pick_diff_se']:.2f}"
                  if p.get("pick_diff") is not None else "–",
                  _yes(p.get("pick_within_std"))] * with_pick]
               for p in cmp_["per_level"]])
    alt = [p for p in cmp_["per_level"] if p.get("pick_confirmed")]
    if alt and _fused(r):
        doc.paragraph("Picked by the confirmed score alone (`proxy.pick_by = \"confirmed\"`, "
                      "which changes no trial; same pool, same TEST points): "
                      + "; ".join(f"{_f(p['level'], '{:.2f}')}: {p['pick_confirmed']} "
                                  f"{p['pick_confirmed_diff']:+.2f} pp" for p in alt)
                      + ". Within 1 std at "
                      + _within_counts(cmp_["per_level"], "pick_confirmed")
                      + f" levels (study's pick: {_within_counts(cmp_['per_level'])}).")
    if cmp_.get("over_latency"):
        doc.paragraph("Left out of the searched front and the levels' searched points, as "
                      "measured over the latency budget by this benchmark (interleaved with "
                      "dense; see Latency honesty): "
                      + ", ".join(f"trial {n}" for n in cmp_["over_latency"]) + ".")
    doc.heading("Dominated hypervolume (accuracy × log cost ratio)", 2)
    doc.paragraph(f"Reference: cost = dense, accuracy = dense − 5 pp "
                  f"({cmp_['hypervolume_ref']['test_acc']:.2f} %). Larger is better.")
    names = list(next(iter(cmp_["hypervolume"].values())))
    doc.table(["front"] + list(cmp_["hypervolume"]),
              [[n] + [_f(cmp_["hypervolume"][a][n], "{:.3f}") for a in cmp_["hypervolume"]]
               for n in names])
    doc.heading("Every point", 2)
    pts = [[n, _f(p["level"], "{:.3f}"), _f(p["size_ratio"], "{:.3f}"),
            _f(p["macs_ratio"], "{:.3f}"), _f(p.get("latency_ratio"), "{:.3f}"),
            f"{p['test_mean']:.2f} ± {p['test_std']:.2f}"]
           for n, ps in r["heuristics"].items() for p in ps]
    pts += [[f"searched trial {p['trial']}", "–", _f(p["size_ratio"], "{:.3f}"),
             _f(p["macs_ratio"], "{:.3f}"), _f(p.get("latency_ratio"), "{:.3f}"),
             f"{p['test_mean']:.2f} ± {p['test_std']:.2f}"] for p in r["searched"]]
    doc.table(["front", "level", "size ratio", "MACs ratio", "latency ratio", "TEST %"], pts)
    _rank_section(doc, r["rank_fidelity"], r)
    if r["latency"]:
        _latency_section(doc, r["latency"])
    else:
        doc.heading("Latency", 2)
        doc.paragraph("Fine-grained sparsity keeps dense kernels: no speedup to measure.")
    c = r["cost"]
    doc.heading("Cost", 2)
    doc.table(["stage", "seconds"], [
        ["baseline training", _f(c["baseline_train_seconds"], "{:.0f}")],
        ["sensitivity scan", _f(c["scan_seconds"], "{:.0f}")],
        ["one trial (median)", _f(c["trial_median_seconds"], "{:.1f}")],
        ["confirmation of one trial (median)", _f(c["confirmation_seconds_per_trial"],
                                                   "{:.1f}")],
        ["one fine-tune of this benchmark (median)", _f(c["finetune_median_seconds"],
                                                         "{:.1f}")],
        ["this bench call (search continued + evaluations)", _f(r["bench_seconds"], "{:.0f}")],
    ])
    split = (f" ({c['baseline_trials']} heuristic baselines, "
             f"{c['trials'] - c['baseline_trials']} searched)"
             if c.get("baseline_trials") is not None else "")
    doc.paragraph(f"{c['trials']} completed trials{split}, {_f(c['trials_per_minute'])} trials per "
                  f"minute of trial time (one process).")
    doc.heading("Plots", 2)
    for p in plots:
        doc.figure(p)
    return doc


def _fused(r: dict) -> bool:
    """Did the study pick by estimate+confirmed (a pick score other than the confirmed
    accuracy)?"""
    pts = r["searched"] + (r.get("confirmed_heuristics") or [])
    return any(p.get("pick_score") is not None
               and abs(p["pick_score"] - p["confirmed_acc"]) > 1e-9 for p in pts)


def _flags(r: dict, out: Path) -> str:
    s = r["settings"]
    # the folder is named after the study unless --out chose another
    out_flag = f" --out {out.as_posix()}" if out.name != r["study"] else ""
    steps = r["finetune"]["steps"]
    sets = "".join(f" --set {o}" for o in r.get("overrides", [])
                   if not o.startswith("finalize.steps="))  # --finalize-steps says it
    rank = "".join(f" --{key.replace('_', '-')} " + ",".join(str(n) for n in s[key])
                   for key in RANK_OPTIONS if s.get(key))
    s = json.loads(json.dumps(s))  # tuples as lists, as results.json holds them
    quick = all(s.get(k) == v for k, v in _QUICK.items() if k not in _CLI_WITH_QUICK)
    levels = s.get("levels")
    levels = "" if not levels or (quick and levels == _QUICK["levels"]) else (
        " --levels " + ",".join(f"{v:g}" for v in levels))
    counts = " --quick" if quick else (f" --seeds {len(s['seeds'])} --rank-policies "
                                       f"{s['rank_policies']}")
    return sets + counts + levels + rank + (
        f" --finalize-steps {steps}" if steps else "") + out_flag


# a run whose other settings are --quick's says --quick (the CLI has no flags for its latency
# settings); these it takes beside --quick
_QUICK = json.loads(json.dumps(asdict(QUICK)))
_CLI_WITH_QUICK = {"levels", *RANK_OPTIONS}


def _rank_section(doc: Document, rf: dict, r: dict) -> None:
    doc.heading("Proxy rank fidelity (one budget: the study's full budget)", 2)
    spread = rf["test_spread"]
    seed_std = _seed_std(r)
    doc.paragraph(f"{len(rf['rows'])} policies (the heuristics and draws from the study's "
                  f"space at the full budget"
                  + (f", drawn with seed {rf['draw_seed']}" if rf.get("draw_seed") else "")
                  + f"). Finalized TEST accuracy (seed {rf['test_seed']}) "
                  f"spans {spread['min']:.2f}–{spread['max']:.2f} % (std {spread['std']:.2f}); "
                  f"the seed-to-seed std of a finalized point is about {seed_std:.2f} pp."
                  + (" The spread is within about twice the seed noise, so these τ mostly "
                     "rank noise and mean little." if spread["max"] - spread["min"]
                     < 2 * 2 * seed_std else ""))
    labels = rf.get("labels", {})
    score_labels = {**labels,
                    "estimate+confirmed": "scan estimate + confirmed (each standardised over "
                                          "these policies)",
                    "test_retest": f"finalized TEST re-run, seed {rf.get('retest_seed')}"}
    secs = rf.get("proxy_seconds", {})
    ds = rf.get("draws_test_spread")
    if ds and ds["n"] > 1:
        doc.paragraph(f"The {ds['n']} draws alone (the search's own question: telling near-equal "
                      f"policies apart) span {ds['min']:.2f}–{ds['max']:.2f} % (std "
                      f"{ds['std']:.2f}); their τ is the last column.")
    with_mean = any("kendall_tau_mean" in v for v in rf["scores"].values())
    doc.table(["score", "Kendall τ", "Spearman ρ", "median seconds per policy",
               "Kendall τ, draws only", *["Kendall τ vs mean of both seeds"] * with_mean],
              [[score_labels.get(k, k), _f(v["kendall_tau"], "{:.3f}"),
                _f(v["spearman_rho"], "{:.3f}"), _f(secs.get(k), "{:.1f}"),
                _f(v.get("kendall_tau_draws"), "{:.3f}"),
                *[_f(v.get("kendall_tau_mean"), "{:.3f}")] * with_mean]
               for k, v in rf["scores"].items()])
    ceiling = rf["scores"].get("test_retest")
    if ceiling:
        doc.paragraph(
            f"The ceiling: the same finalize re-run with seed {rf['retest_seed']} ranks the "
            f"policies with Kendall τ {ceiling['kendall_tau']:.3f} against seed "
            f"{rf['test_seed']}"
            + (f" ({ceiling['kendall_tau_draws']:.3f} on the draws alone)"
               if ceiling.get("kendall_tau_draws") is not None else "")
            + f". With seed noise independent and Gaussian, a proxy that knew each policy's "
              f"true quality would reach about τ {_f(ceiling.get('ceiling'), '{:.2f}')}"
            + (f" ({_f(ceiling.get('ceiling_draws'), '{:.2f}')} on the draws)"
               if ceiling.get("ceiling_draws") is not None else "")
            + f" against seed {rf['test_seed']}: read a proxy's τ against that, not against "
              f"1. It is an upper bound: both runs score the same TEST images, so it leaves "
              f"out the noise of scoring on other images (a proxy scores on validation "
              f"images), and seed noise shared by all policies (one seed's batch order "
              f"helping every policy alike) does not reorder them."
            + (f" Against the mean of both seeds (last column; less seed noise) the ceiling "
               f"is about τ {_f(ceiling.get('ceiling_mean'), '{:.2f}')}."
               if ceiling.get("ceiling_mean") is not None else ""))
    extra = [k for k in labels if k != "proxy"]
    retest = ["test_retest"] if ceiling else []
    doc.table(["policy", "size ratio", "scan estimate", "BN recal only", "proxy",
               *(labels[k] for k in extra), "confirmed", f"TEST (seed {rf['test_seed']})",
               *(f"TEST (seed {rf['retest_seed']})" for _ in retest)],
              [[row["policy"], _f(row["size_ratio"], "{:.3f}"), _f(row["estimate"]),
                _f(row["recal_only"]), _f(row["proxy"]), *(_f(row.get(k)) for k in extra),
                _f(row["confirmed"]), _f(row["test"]), *(_f(row.get(k)) for k in retest)]
               for row in rf["rows"]])


def _seed_std(r: dict) -> float:
    stds = [p["test_std"] for ps in r["heuristics"].values() for p in ps]
    stds += [p["test_std"] for p in r["searched"]]
    return sum(stds) / len(stds) if stds else float("nan")


def _latency_section(doc: Document, lat: dict) -> None:
    doc.heading("Latency honesty", 2)
    doc.paragraph(f"Each point timed alternately with dense, {lat['repeats']} times per batch "
                  f"size, {lat['threads']} thread(s), {lat['device']}; speedup = median of "
                  f"dense / point, [min–max] over the repeats; ÷ MACs = speedup / MAC "
                  f"reduction (1.0: latency falls as fast as MACs).")
    cols = ["point", "MAC reduction"]
    for b in lat["batches"]:
        cols += [f"speedup b{b}", f"÷ MACs b{b}"]
    has_budget = any("meets_latency_budget" in row for row in lat["rows"])
    if has_budget:
        cols.append("meets latency budget")
    rows = []
    for row in lat["rows"]:
        line = [row["point"], _f(row["macs_reduction"])]
        for b in lat["batches"]:
            m = row[f"b{b}"]
            line += [f"{m['speedup']:.2f} [{min(m['speedups']):.2f}–{max(m['speedups']):.2f}]",
                     _f(m["speedup_per_mac_reduction"])]
        if has_budget:
            line.append("yes" if row.get("meets_latency_budget") else "no")
        rows.append(line)
    doc.table(cols, rows)


def _yes(flag: bool | None) -> str:
    return "–" if flag is None else ("yes" if flag else "no")


def _within_counts(per_level: list[dict], pick: str = "pick") -> str:
    """``k/n · k/n``: levels where the pick (``pick``: the study's; ``pick_confirmed``: the
    one by the confirmed score alone) is within 1 std, on the study's ladder · between
    (``k/n`` alone when which levels are the study's is unknown; '–' without picks)."""
    key = f"{pick}_within_std"
    rows = [p for p in per_level if p.get(key) is not None]
    if not rows:
        return "–"
    if any(p.get("study_level") is None for p in rows):
        return f"{sum(p[key] for p in rows)}/{len(rows)}"
    parts = [[p for p in rows if p["study_level"] is on] for on in (True, False)]
    return " · ".join(f"{sum(p[key] for p in ps)}/{len(ps)}" for ps in parts)


def write_summary(root: Path) -> Path:
    """``root/README.md``: the headline table of every ``root/*/results.json``."""
    rows = []
    for path in sorted(root.glob("*/results.json")):
        r = json.loads(path.read_text())
        tau = r["rank_fidelity"]["scores"].get("proxy", {}).get("kendall_tau")
        n_policies = len(r["rank_fidelity"]["rows"])
        # a τ over a handful of policies says little: name how few
        ceiling = r["rank_fidelity"]["scores"].get("test_retest", {}).get("ceiling")
        tau_s = _f(tau, "{:.2f}") + (f" ({n_policies} policies)"
                                     if n_policies < MIN_RANK_POLICIES else "") + (
            f" (ceiling {ceiling:.2f})" if _f(ceiling) != "–" else "")
        spm = None
        if r.get("latency"):
            vals = [row[f"b{r['latency']['batches'][0]}"]["speedup_per_mac_reduction"]
                    for row in r["latency"]["rows"]]
            spm = sum(vals) / len(vals)
        # the folder, not the study's name: one study can have several benchmarks
        link = f"[{path.parent.name}]({path.parent.name}/report.md)" + (
            " (see its note)" if r.get("notes") else "")
        diffs = [lv["diff"] for lv in r["comparison"]["per_level"] if lv["diff"] is not None]
        per_level = f"{min(diffs):+.2f} to {max(diffs):+.2f}" if diffs else "–"
        picks = [lv["pick_diff"] for lv in r["comparison"]["per_level"]
                 if lv.get("pick_diff") is not None]
        pick = f"{min(picks):+.2f} to {max(picks):+.2f}" if picks else "–"
        within = _within_counts(r["comparison"]["per_level"])
        n_rows = len(rows)
        for iso in r["comparison"]["iso_accuracy"]:
            # a MACs budget is judged on MACs first; size and latency are every study's axes
            for axis in ("macs",) * ("macs" in r.get("budget", {})) + ("size", "latency"):
                if axis not in iso:
                    continue
                c = iso[axis]
                if all(v is None for v in c["costs"].values()):
                    continue  # no front reaches this accuracy on this axis
                rows.append([link, f"−{iso['drop']:g} pp", axis,
                             _f(c["costs"]["searched"], "{:.3f}"),
                             f"{c['best_heuristic'] or '–'} "
                             f"{_f(c['costs'].get(c['best_heuristic']), '{:.3f}')}"
                             if c["best_heuristic"] else "–", _f(c["ratio"]),
                             per_level, pick, within, tau_s, _f(spm),
                             _f(r["cost"]["trials_per_minute"])])
        if len(rows) == n_rows:
            rows.append([link, f"none reached (−{max(ACC_DROPS):g} pp)", "–", "–", "–", "–",
                         per_level, pick, within, tau_s, _f(spm),
                         _f(r["cost"]["trials_per_minute"])])
    doc = Document(title="autoprune benchmarks")
    doc.heading("Benchmarks: does the search earn its keep?")
    doc.paragraph("Written by `autoprune bench STUDY` (one folder per study, with its command, "
                  "machine and every number). Cost = fraction of dense the front needs to "
                  "reach dense TEST accuracy minus the drop; ratio = searched / best heuristic "
                  "(< 1: the search wins; '–': a front never reaches it; accuracy levels no "
                  "front reaches are left out). Per level: the range over the ladder levels of "
                  "the best searched point's TEST accuracy minus the best heuristic's there "
                  "(the searched point within the level's budget on what the budget caps). "
                  "Pick per level: the same for the study's pick, the trial it reports there "
                  "(best confirmed validation score among its searched and its enqueued "
                  "heuristic trials; '–' where the study was not at hand to say which). "
                  "Pick within 1 std: at how many levels the pick's TEST accuracy is at least "
                  "the best heuristic's minus sqrt(std_pick² + std_heuristic²), at the "
                  "study's own ladder levels (where it enqueued every heuristic) · at the "
                  "benchmark's levels between them. "
                  "τ = Kendall τ of the proxy against finalized TEST accuracy at one budget "
                  "(over fewer than "
                  f"{MIN_RANK_POLICIES} policies: their number is given, and such a τ means "
                  "little); its ceiling, where measured, is the τ a perfect proxy would reach "
                  "against one seed, from the τ of the same finalize re-run with another seed. "
                  "speedup÷MACs at batch 1 "
                  "(mean over finalized points). Trials/min: one process, trial time only.")
    doc.table(["study", "accuracy", "axis", "searched", "best heuristic", "ratio",
               "per level (pp)", "pick per level (pp)", "pick within 1 std", "proxy τ",
               "speedup÷MACs",
               "trials/min"], rows)
    others = sorted(p for p in root.glob("*.md") if p.name != "README.md")
    if others:
        doc.heading("Other measurements", 2)
        doc.paragraph(" · ".join(f"[{p.stem}]({p.name})" for p in others))
    path = root / "README.md"
    path.write_text(doc.to_markdown())
    return path
