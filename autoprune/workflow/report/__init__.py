"""The study report: Pareto plots, scan plots, weight histograms, tables, Markdown and HTML.

``write_report`` reads the study (it never writes into it) and writes ``reports/<study>/``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd

from autoprune.engine.checkpoint import load_checkpoint
from autoprune.engine.policy import get_mode
from autoprune.search import PruneSearch
from autoprune.search.budget import AXES
from autoprune.search.config import LatencySettings
from autoprune.search.confirmation import level_pairs
from autoprune.workflow.finalize import final_checkpoint, finalized_frame
from autoprune.workflow.report.document import Document
from autoprune.workflow.report.figures import plot_weight_histograms, save_scan_plots
from autoprune.workflow.report.interactive import plot_spec
from autoprune.workflow.report.pareto import ParetoPlotData, draw_pareto, pareto_plot_data

__all__ = ["ParetoPlotData", "pareto_plot_data", "draw_pareto", "final_table", "level_table",
           "write_report"]

_FRONT_COLUMNS = ["trial", "baseline", "level", "proxy_acc", "confirmed_acc", "confirmed_std",
                  "size_mib", "size_ratio", "macs", "latency_ms"]


def final_table(search: PruneSearch) -> pd.DataFrame:
    """The lab's closing table: dense vs chosen vs each baseline (TEST split)."""
    fin = finalized_frame(search)
    dense = search.record_.final_dense
    if fin.empty or dense is None:
        return pd.DataFrame()
    rows = [{"model": "dense", "trial": "", "acc before FT (test %)": dense.test_acc,
             "acc after FT (test %)": dense.test_acc, "size (MiB)": dense.size_mib,
             "x smaller": 1.0, "MACs (M)": dense.macs / 1e6,
             "latency (ms)": dense.latency_ms, "speedup": 1.0}]
    for _, r in fin.iterrows():
        rows.append({"model": r["baseline"] or "searched", "trial": int(r["trial"]),
                     "acc before FT (test %)": r["test_acc_before_ft"],
                     "acc after FT (test %)": r["test_acc"], "size (MiB)": r["size_mib"],
                     "x smaller": r["x_smaller"], "MACs (M)": r["macs"] / 1e6,
                     "latency (ms)": r["latency_ms"], "speedup": r["speedup"]})
    return pd.DataFrame(rows)


def level_table(search: PruneSearch) -> pd.DataFrame:
    """:func:`autoprune.search.confirmation.level_pairs` of the study's ladder, as a table
    (empty when the study has a single level); under a latency budget a level allows the
    MACs the study's latency calibration gives it, as the benchmark's levels do."""
    levels = search.cfg.search.levels
    if len(levels) < 2 or search.results_.empty:
        return pd.DataFrame()
    rows = []
    for p in level_pairs(search.results_, levels, macs_cap=search.record_.latency_macs):
        rows.append({"level (x budget)": p["level"],
                     "best heuristic": p["heuristic"] or "–",
                     "heuristic acc (%)": _pm(p["heuristic_acc"], p["heuristic_std"]),
                     "searched trial": "–" if p["searched_trial"] is None
                     else p["searched_trial"],
                     "searched acc (%)": _pm(p["searched_acc"], p["searched_std"]),
                     "searched − heuristic (pp)": "–" if math.isnan(
                         p["searched_acc"] - p["heuristic_acc"])
                     else f"{p['searched_acc'] - p['heuristic_acc']:+.2f}",
                     "study's pick": _pick(p)})
    return pd.DataFrame(rows)


def _pick(pair: dict) -> str:
    """The trial the study would ship at that level: the better of the two by the study's
    pick score (a tie goes to the heuristic)."""
    if pair["searched_trial"] is not None and (pair["heuristic_trial"] is None  # none feasible
                                               or pair["searched_score"]
                                               > pair["heuristic_score"]):
        return f"searched trial {pair['searched_trial']}"
    if pair["heuristic_trial"] is None:
        return "–"
    return f"{pair['heuristic']} (trial {pair['heuristic_trial']})"


def _pm(acc: float, std: float) -> str:
    return "–" if math.isnan(acc) else f"{acc:.2f} ± {std:.2f}"


def refit_paragraph(refit: dict[str, int] | None, lat: LatencySettings) -> str | None:
    """The report's sentence on the latency refit (``refit``: ``StudyRecord.refit_summary()``;
    ``lat``: the study's latency settings); ``None`` when the refit never ran."""
    if refit is None:
        return None
    which = "kept structure's" if lat.refit_grow else "structure's last"
    if refit["reused"] == refit["trials"]:
        recorded = f"its {which} measurement there (fine-tuning changes weights, not shapes)"
    else:
        recorded = (f"{refit['reused']} trials recorded the {which} measurement there, "
                    f"the others (made before that change) a measurement after fine-tuning")
    if lat.refit_grow:
        band = (f"{(1 - lat.refit_grow) * (1 - lat.refit_margin):.2f}-"
                f"{1 - lat.refit_margin:.2f} x its level's share of the latency cap")
        again = f"another MACs cap (grown or shrunk into {band}, at most {lat.refit} times)"
    else:
        again = (f"a smaller MACs cap (at most {lat.refit} times, target "
                 f"{1 - lat.refit_margin:.2f} x the latency cap)")
    return (f"Latency refit: {refit['trials']} channel structures timed before fine-tuning, "
            f"{refit['refitted']} projected again onto {again}; "
            f"{refit['passed']} met that target, and {refit['passed_met']} of those met the "
            f"latency budget as the trial recorded it: {recorded}.")


def calibration_paragraph(cap: dict | None, dense_macs: float) -> str | None:
    """The report's sentence on the latency calibration (``cap``: ``StudyRecord.latency_cap``,
    ``dense_macs``: the dense model's MACs); ``None`` without one. Studies calibrated before
    the record kept the dense runs give the cap alone."""
    if not cap:
        return None
    macs = cap.get("structural_macs")
    text = ("Latency calibration: latency did not grow with structural MACs on this device, "
            "so the budget's ratio of dense MACs stands in" if macs is None else
            f"Latency calibration: the latency budget allows {macs / dense_macs:.3f} of the "
            f"dense structural MACs")
    points = cap.get("points")
    if not points:
        return text + "."
    lo, hi = cap["dense_ms_range"]
    cuts = points[:-1]  # the last point is the dense structure itself
    ratios = ", ".join(f"{r:.2f}" for _, r in cuts)
    at = ", ".join(f"{m / dense_macs:.2f}" for m, _ in cuts)
    return (f"{text} (a line fitted to {len(cuts)} uniform cuts, each timed alternately with "
            f"the dense structure: {ratios} of dense at {at} of its MACs); the dense "
            f"structure's runs there: median {cap['dense_ms']:.3f} ms, range {lo:.3f}–{hi:.3f} "
            f"ms.")


def write_report(search: PruneSearch, out_dir: Path | None = None,
                 export_trial: int | None = None) -> Path:
    """Write plots, ``pareto.csv``, ``final_table.csv``, ``report.md``, a self-contained
    ``report.html`` and ``summary.json``."""
    cfg, ws, record = search.cfg, search.ws_, search.record_
    out = Path(out_dir or cfg.report_dir)
    out.mkdir(parents=True, exist_ok=True)
    pareto_images = [draw_pareto(pareto_plot_data(search, a), out / f"pareto_{a}.png",
                                 f"{cfg.name}: accuracy vs {a}") for a in AXES]
    images = []
    mode = get_mode(cfg.search.mode).scan
    scan = ws.scan(mode)
    images += save_scan_plots(scan.table, scan.dense_acc, ws.baseline.model, out, mode)
    if export_trial is None and not search.pareto_.empty:
        export_trial = search.pick_trial("best")
    if export_trial is not None and final_checkpoint(search, export_trial).is_file():
        images.append(plot_weight_histograms(
            ws.baseline.model, out / "weights_before_after.png",
            other=load_checkpoint(final_checkpoint(search, export_trial)),
            labels=("dense", f"trial {export_trial}")))
    search.pareto_.to_csv(out / "pareto.csv", index=False)
    table = final_table(search)
    table.to_csv(out / "final_table.csv", index=False)
    dense, fin, res = record.dense, record.final_dense, search.results_
    lat = cfg.latency
    front = search.pareto_[_FRONT_COLUMNS] if not search.pareto_.empty else pd.DataFrame()
    doc = Document(title=f"autoprune report: {cfg.name}")
    doc.heading(f"autoprune report: {cfg.name}")
    doc.paragraph(f"Model `{cfg.model.name}` (width {cfg.model.width}) on `{cfg.data.name}`, "
                  f"mode `{cfg.search.mode}`, budget {cfg.budget.items()}, {len(res)} trials "
                  f"({int(res['feasible'].sum())} feasible).")
    doc.paragraph(f"Dense: validation {dense.val_acc:.2f} %, test "
                  f"{fin.test_acc if fin else float('nan'):.2f} %, {dense.size_mib:.3f} MiB, "
                  f"{dense.macs / 1e6:.2f} M MACs, {dense.latency_ms:.3f} ms ({lat.device}, "
                  f"batch {lat.batch_size}, {lat.threads} threads).")
    for line in (calibration_paragraph(record.latency_cap, dense.macs),
                 refit_paragraph(record.refit_summary(), lat)):
        if line:
            doc.paragraph(line)
    doc.heading("Finalized points (TEST split, full fine-tune)", 2)
    doc.table(list(table.columns), table.values.tolist(),
              empty="_No finalized points yet: run `autoprune finalize`._")
    doc.paragraph("Accuracy before FT: after pruning (and batch-norm recalibration for channel "
                  "pruning), before fine-tuning. Latency: median of torch.utils.benchmark runs.")
    doc.heading("Confirmed Pareto front (validation)", 2)
    doc.paragraph("proxy = search-time score (shared fine-tune seed, first validation images); "
                  "confirmed = mean ± std over fresh fine-tune seeds on validation images the "
                  "search did not select on.")
    doc.table(list(front.columns), front.values.tolist(),
              empty="_No confirmed feasible point yet._")
    levels = level_table(search)
    if not levels.empty:
        doc.heading("Level by level: best searched vs best heuristic (confirmed, validation)", 2)
        doc.paragraph("At each budget level the heuristics were enqueued at: the best heuristic "
                      "there and the best searched trial within the level's budget (at the "
                      "full budget any feasible trial; below it, no costlier in size and "
                      "MACs than the costliest heuristic there, within 0.5 %), both "
                      "confirmed with fresh seeds (mean ± std). A "
                      "difference within the stds is a tie. The study's pick is the one with "
                      f"{search.pick_rule_text()}: what it would ship at that level (and at "
                      "the full budget, what `best` exports).")
        doc.table(list(levels.columns), levels.values.tolist())
    doc.heading("Pareto plots", 2)
    doc.paragraph("In report.html: hover a point for its trial, accuracy ± std, size, MACs, "
                  "latency and per-layer ratios; click it for its policy JSON.")
    for axis, p in zip(AXES, pareto_images):
        doc.interactive(plot_spec(search, axis), p)
    doc.heading("Scan and weights", 2)
    for p in images:
        doc.figure(p)
    (out / "report.md").write_text(doc.to_markdown())
    (out / "report.html").write_text(doc.to_html())
    (out / "summary.json").write_text(json.dumps({
        "study": cfg.name, "dense": dense.to_dict(), "final": table.to_dict(orient="records")},
        indent=2, default=float))
    return out
