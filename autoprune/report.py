"""The study report: Pareto plots, scan plots, weight histograms, tables, Markdown and HTML.

Plot data is computed into small NamedTuples first (testable without pixels), then drawn.
"""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path
from typing import NamedTuple

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from autoprune.finalize import finalized_frame  # noqa: E402
from autoprune.plots import plot_weight_histograms, save_scan_plots  # noqa: E402
from autoprune.search import PruneSearch  # noqa: E402

__all__ = ["ParetoPlotData", "pareto_plot_data", "draw_pareto", "write_report"]

_AXES = {"size": ("size_mib", "size (MiB, 32-bit nonzero params)"),
         "latency": ("latency_ms", "latency (ms)"),
         "macs": ("macs", "MACs per image")}


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


def _budget_x(search: PruneSearch, axis: str) -> float | None:
    b, dense = search.cfg.budget, search.study_.user_attrs["dense"]
    caps = []
    if axis == "size":
        caps += [b.size * dense["size_mib"]] if b.size else []
        caps += [b.size_mib] if b.size_mib else []
    elif axis == "latency":
        caps += [b.latency * dense["latency_ms"]] if b.latency else []
        caps += [b.latency_ms] if b.latency_ms else []
    else:
        caps += [b.macs * dense["macs"]] if b.macs else []
        caps += [b.macs_abs] if b.macs_abs else []
    return min(caps) if caps else None


def _proxy_front(pts: pd.DataFrame) -> pd.DataFrame:
    """Feasible trials not beaten in both accuracy and x (the 2-D front of this plot)."""
    from autoprune.search import pareto_mask

    feas = pts[pts["feasible"]]
    if feas.empty:
        return pd.DataFrame(columns=["x", "acc"])
    mask = pareto_mask(feas[["acc", "x"]].to_numpy(float), [True, False])
    return feas[mask].sort_values("x")[["x", "acc"]]


def pareto_plot_data(search: PruneSearch, axis: str = "size") -> ParetoPlotData:
    """Everything the accuracy-vs-``axis`` plot shows, as tables."""
    if axis not in _AXES:
        raise ValueError(f"axis must be one of {list(_AXES)}, got {axis!r}.")
    col, label = _AXES[axis]
    res = search.results_
    dense = search.study_.user_attrs["dense"]
    pts = res.assign(x=res[col], acc=res["proxy_acc"])
    front = search.pareto_.assign(x=search.pareto_[col]) if not search.pareto_.empty else \
        pd.DataFrame(columns=["x", "confirmed_acc", "confirmed_std"])
    fin = finalized_frame(search)
    if not fin.empty:
        fin = fin.assign(x=fin[col], label=[b or f"trial {t}" for b, t in
                                            zip(fin["baseline"], fin["trial"])])
    final_dense = search.study_.user_attrs.get("final:dense", {})
    return ParetoPlotData(
        axis, label,
        pts[pts["feasible"]][["trial", "x", "acc", "baseline"]],
        pts[~pts["feasible"]][["trial", "x", "acc", "baseline"]],
        front.sort_values("x")[["x", "confirmed_acc", "confirmed_std"]],
        _proxy_front(pts),
        pts[(pts["baseline"] != "")][["x", "acc", "baseline"]],
        fin if not fin.empty else pd.DataFrame(columns=["x", "test_acc", "label"]),
        (float(dense[col]), float(dense["val_acc"])),
        final_dense.get("test_acc"),
        _budget_x(search, axis),
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


def _table(search: PruneSearch) -> pd.DataFrame:
    """The lab's closing table: dense vs chosen vs each baseline."""
    fin = finalized_frame(search)
    attrs = search.study_.user_attrs
    dense = attrs.get("final:dense")
    if fin.empty or dense is None:
        return pd.DataFrame()
    rows = [{"model": "dense", "trial": "", "acc before FT (test %)": dense["test_acc"],
             "acc after FT (test %)": dense["test_acc"], "size (MiB)": dense["size_mib"],
             "x smaller": 1.0, "MACs (M)": dense["macs"] / 1e6,
             "latency (ms)": dense["latency_ms"], "speedup": 1.0}]
    for _, r in fin.iterrows():
        rows.append({"model": r["baseline"] or "searched", "trial": int(r["trial"]),
                     "acc before FT (test %)": r["test_acc_before_ft"],
                     "acc after FT (test %)": r["test_acc"], "size (MiB)": r["size_mib"],
                     "x smaller": r["x_smaller"], "MACs (M)": r["macs"] / 1e6,
                     "latency (ms)": r["latency_ms"], "speedup": r["speedup"]})
    return pd.DataFrame(rows)


def _md_table(df: pd.DataFrame) -> str:
    if df.empty:
        return "_No finalized points yet: run `autoprune finalize`._"
    cols = list(df.columns)
    out = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for _, r in df.iterrows():
        out.append("| " + " | ".join(_fmt(r[c]) for c in cols) + " |")
    return "\n".join(out)


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.3f}" if abs(v) < 10 else f"{v:.2f}"
    return str(v)


def write_report(search: PruneSearch, out_dir: Path | None = None,
                 export_trial: int | None = None) -> Path:
    """Write plots, ``pareto.csv``, ``report.md`` and a self-contained ``report.html``."""
    cfg = search.cfg
    out = Path(out_dir or cfg.report_dir)
    out.mkdir(parents=True, exist_ok=True)
    plots = {a: draw_pareto(pareto_plot_data(search, a), out / f"pareto_{a}.png",
                            f"{cfg.name}: accuracy vs {a}") for a in _AXES}
    ws = search.ws_
    mode = "fine" if cfg.search.mode == "fine" else "channel"
    scan = ws.scan(mode)
    scan_plots = save_scan_plots(scan.table, scan.dense_acc, ws.baseline.model, out, mode)
    hist = None
    if export_trial is None and not search.pareto_.empty:
        export_trial = search._pick_trial("best").number
    if export_trial is not None:
        from autoprune.export import load_checkpoint
        from autoprune.finalize import final_checkpoint

        ckpt = final_checkpoint(search, export_trial)
        if ckpt.is_file():
            hist = plot_weight_histograms(ws.baseline.model, out / "weights_before_after.png",
                                          other=load_checkpoint(ckpt),
                                          labels=("dense", f"trial {export_trial}"))
    search.pareto_.to_csv(out / "pareto.csv", index=False)
    table = _table(search)
    table.to_csv(out / "final_table.csv", index=False)
    dense = search.study_.user_attrs["dense"]
    front_cols = ["trial", "baseline", "proxy_acc", "confirmed_acc", "confirmed_std",
                  "size_mib", "size_ratio", "macs", "latency_ms"]
    front = search.pareto_[front_cols] if not search.pareto_.empty else pd.DataFrame()
    fin = search.study_.user_attrs.get("final:dense", {})
    md = [
        f"# autoprune report: {cfg.name}",
        "",
        f"Model `{cfg.model.name}` (width {cfg.model.width}) on `{cfg.data.name}`, mode "
        f"`{cfg.search.mode}`, budget {cfg.budget.items()}, {len(search.results_)} trials "
        f"({int(search.results_['feasible'].sum())} feasible).",
        f"Dense: validation {dense['val_acc']:.2f} %, test "
        f"{fin.get('test_acc', float('nan')):.2f} %, {dense['size_mib']:.3f} MiB, "
        f"{dense['macs'] / 1e6:.2f} M MACs, {dense['latency_ms']:.3f} ms "
        f"({cfg.latency.device}, batch {cfg.latency.batch_size}, {cfg.latency.threads} "
        f"threads).",
        "",
        "## Finalized points (TEST split, full fine-tune)",
        "",
        _md_table(table),
        "",
        "Accuracy before FT: after pruning (and batch-norm recalibration for channel "
        "pruning), before fine-tuning. Latency: median of torch.utils.benchmark runs.",
        "",
        "## Confirmed Pareto front (validation)",
        "",
        "proxy = search-time score (shared fine-tune seed, first validation images); "
        "confirmed = mean ± std over fresh fine-tune seeds on validation images the search "
        "did not select on.",
        "",
        _md_table(front),
        "",
        "## Plots",
        "",
    ]
    images = list(plots.values()) + scan_plots + ([hist] if hist else [])
    md += [f"![{p.stem}]({p.name})" for p in images]
    (out / "report.md").write_text("\n".join(md) + "\n")
    (out / "report.html").write_text(_html(md, images, out))
    (out / "summary.json").write_text(json.dumps({
        "study": cfg.name, "dense": dense, "final": table.to_dict(orient="records")},
        indent=2, default=float))
    return out


def _html(md_lines: list[str], images: list[Path], out: Path) -> str:
    """A self-contained page: the Markdown's text and tables, images embedded as base64."""
    body = []
    table: list[str] = []

    def flush_table():
        if not table:
            return
        head = [c.strip() for c in table[0].strip("|").split("|")]
        rows = [[c.strip() for c in r.strip("|").split("|")] for r in table[2:]]
        body.append("<table><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in head)
                    + "</tr>" + "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>"
                                                         for c in r) + "</tr>" for r in rows)
                    + "</table>")
        table.clear()

    by_name = {p.name: p for p in images}
    for line in (part for chunk in md_lines for part in chunk.split("\n")):
        if line.startswith("|"):
            table.append(line)
            continue
        flush_table()
        if line.startswith("# "):
            body.append(f"<h1>{html.escape(line[2:])}</h1>")
        elif line.startswith("## "):
            body.append(f"<h2>{html.escape(line[3:])}</h2>")
        elif line.startswith("!["):
            name = line[line.index("(") + 1 : -1]
            data = base64.b64encode(by_name[name].read_bytes()).decode()
            body.append(f'<figure><img alt="{html.escape(name)}" '
                        f'src="data:image/png;base64,{data}"><figcaption>'
                        f"{html.escape(name)}</figcaption></figure>")
        elif line:
            body.append(f"<p>{html.escape(line)}</p>")
    flush_table()
    style = ("body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}"
             "table{border-collapse:collapse;font-size:13px;margin:1em 0}"
             "td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}"
             "th{background:#f3f3f3}img{max-width:100%;border:1px solid #eee}"
             "figure{margin:1.5em 0}")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>autoprune report"
            f"</title><style>{style}</style></head><body>{''.join(body)}</body></html>")
