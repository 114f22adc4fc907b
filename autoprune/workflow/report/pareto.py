"""The Pareto plots: accuracy against size, latency or MACs. The plot data is computed into a
NamedTuple first (testable without pixels), then drawn."""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from autoprune.errors import ConfigError  # noqa: E402
from autoprune.search import PruneSearch  # noqa: E402
from autoprune.search.budget import AXES  # noqa: E402
from autoprune.search.selection import pareto_mask  # noqa: E402
from autoprune.workflow.finalize import finalized_frame  # noqa: E402

__all__ = ["ParetoPlotData", "pareto_plot_data", "draw_pareto"]


class ParetoPlotData(NamedTuple):
    axis: str
    xlabel: str
    feasible: pd.DataFrame  # trial, x, acc, baseline
    infeasible: pd.DataFrame
    front: pd.DataFrame  # confirmed front: x, confirmed_acc, confirmed_std
    proxy_front: pd.DataFrame  # search-time front: x, acc
    baselines: pd.DataFrame  # x, acc, baseline
    finalized: pd.DataFrame  # x, test_acc, label
    dense: tuple[float, float]  # x, validation accuracy
    dense_test: float | None
    budget: float | None


def _proxy_front(pts: pd.DataFrame) -> pd.DataFrame:
    """Feasible trials not beaten in both accuracy and x (the 2-D front of this plot)."""
    feas = pts[pts["feasible"]]
    if feas.empty:
        return pd.DataFrame(columns=["x", "acc"])
    mask = pareto_mask(feas[["acc", "x"]].to_numpy(float), [True, False])
    return feas[mask].sort_values("x")[["x", "acc"]]


def pareto_plot_data(search: PruneSearch, axis: str = "size") -> ParetoPlotData:
    """Everything the accuracy-vs-``axis`` plot shows, as tables."""
    if axis not in AXES:
        raise ConfigError(f"axis must be one of {list(AXES)}, got {axis!r}.")
    _name, col, label = AXES[axis]
    res = search.results_
    dense = search.record_.dense.to_dict()
    pts = res.assign(x=res[col], acc=res["proxy_acc"])
    front = search.pareto_.assign(x=search.pareto_[col]) if not search.pareto_.empty else \
        pd.DataFrame(columns=["x", "confirmed_acc", "confirmed_std"])
    fin = finalized_frame(search)
    if not fin.empty:
        fin = fin.assign(x=fin[col], label=[b or f"trial {t}" for b, t in
                                            zip(fin["baseline"], fin["trial"])])
    final_dense = search.record_.final_dense
    return ParetoPlotData(
        axis, label,
        pts[pts["feasible"]][["trial", "x", "acc", "baseline"]],
        pts[~pts["feasible"]][["trial", "x", "acc", "baseline"]],
        front.sort_values("x")[["x", "confirmed_acc", "confirmed_std"]],
        _proxy_front(pts),
        _labelled(pts[(pts["baseline"] != "")])[["x", "acc", "baseline"]],
        fin if not fin.empty else pd.DataFrame(columns=["x", "test_acc", "label"]),
        (float(dense[col]), float(dense["val_acc"])),
        final_dense.test_acc if final_dense else None,
        search.cfg.budget.caps(dense).get(col),
    )


def draw_pareto(d: ParetoPlotData, path: Path, title: str = "") -> Path:
    fig, ax = plt.subplots(figsize=(8.5, 5.5))
    ax.scatter(d.feasible["x"], d.feasible["acc"], s=22, color="tab:blue", alpha=0.6,
               label="feasible trial (proxy, validation)")
    if len(d.infeasible):
        ax.scatter(d.infeasible["x"], d.infeasible["acc"], s=26, marker="x", color="0.55",
                   label="infeasible trial")
    if len(d.front):
        # the front may have three objectives: points that look dominated on this plane are
        # drawn, but the line joins only the ones non-dominated in these two axes
        ax.errorbar(d.front["x"], d.front["confirmed_acc"], yerr=d.front["confirmed_std"],
                    color="tab:orange", marker="o", ms=6, ls="none", capsize=3,
                    label="Pareto front (confirmed, fresh seeds)")
        two_d = _proxy_front(d.front.assign(acc=d.front["confirmed_acc"], feasible=True))
        ax.plot(two_d["x"], two_d["acc"], color="tab:orange", lw=1.5)
    if len(d.baselines):
        ax.scatter(d.baselines["x"], d.baselines["acc"], s=60, facecolors="none",
                   edgecolors="tab:green", lw=1.5, label="warm-start baseline")
        for _, r in d.baselines.iterrows():
            ax.annotate(r["baseline"], (r["x"], r["acc"]), textcoords="offset points",
                        xytext=(4, -10), fontsize=7, color="tab:green")
    if len(d.proxy_front):
        ax.plot(d.proxy_front["x"], d.proxy_front["acc"], color="tab:blue", lw=0.8, ls=":",
                label="proxy front (search-time)")
    if len(d.finalized):
        ax.scatter(d.finalized["x"], d.finalized["test_acc"], s=70, marker="D",
                   color="tab:red", label="finalized (TEST accuracy)")
        for i, (_, r) in enumerate(d.finalized.sort_values("x").iterrows()):
            ax.annotate(f"{r['label']}: {r['test_acc']:.2f}", (r["x"], r["test_acc"]),
                        textcoords="offset points", xytext=(5, 6 if i % 2 else -12),
                        fontsize=7, color="tab:red")
    ax.scatter([d.dense[0]], [d.dense[1]], marker="*", s=180, color="k",
               label=f"dense (validation {d.dense[1]:.2f} %)")
    if d.dense_test is not None:
        ax.scatter([d.dense[0]], [d.dense_test], marker="D", s=50, color="k",
                   label=f"dense (TEST {d.dense_test:.2f} %)")
    if d.budget is not None:
        ax.axvline(d.budget, color="tab:purple", ls="--", lw=1.2, label="budget")
    ax.set_xlabel(d.xlabel)
    ax.set_ylabel("accuracy (%)")
    if d.axis == "macs":
        ax.ticklabel_format(axis="x", style="sci", scilimits=(6, 6))
    ax.set_title(title or f"Accuracy vs {d.axis}")
    ax.grid(alpha=0.3)
    ys = pd.concat([d.feasible["acc"], d.front["confirmed_acc"], d.finalized["test_acc"]
                    if len(d.finalized) else pd.Series(dtype=float),
                    pd.Series([d.dense[1]])]).astype(float)
    if len(ys):
        lo = np.nanpercentile(ys, 5)
        ax.set_ylim(max(0.0, lo - 2.0), float(ys.max()) + 0.8)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _labelled(baselines: pd.DataFrame) -> pd.DataFrame:
    """Baselines named ``uniform`` at the full budget, ``uniform@0.7`` at a lower level."""
    return baselines.assign(baseline=[b if abs(lv - 1.0) < 1e-6 else f"{b}@{lv:g}"
                                      for b, lv in zip(baselines["baseline"],
                                                       baselines["level"])])
