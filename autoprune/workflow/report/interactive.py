"""Interactive Pareto plots for ``report.html``: the plot data as JSON plus a small inline
script that draws it as SVG, with a tooltip on hover (trial, baseline, accuracy ± std, size,
MACs, latency, per-layer ratios) and the policy JSON on click. No external resources: the
page works offline and from a file.

The script also honours ``#select=N`` in the page's address: on load it sends trial ``N``'s
point a ``mouseenter`` and a ``click`` event, so a headless browser can check the hover and
click paths without driving a mouse.
"""

from __future__ import annotations

import json
import math

import pandas as pd

from autoprune.search import PruneSearch
from autoprune.search.budget import AXES
from autoprune.workflow.finalize import finalized_frame

__all__ = ["plot_spec", "SCRIPT"]


def _num(v) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def plot_spec(search: PruneSearch, axis: str = "size") -> dict:
    """Everything one interactive plot shows: a list of series of points, each point with
    the fields its tooltip lists and its policy."""
    _name, col, label = AXES[axis]
    res = search.results_
    front = set(search.pareto_["trial"]) if not search.pareto_.empty else set()
    fin = finalized_frame(search)
    tested = dict(zip(fin["trial"], fin["test_acc"])) if not fin.empty else {}

    def point(r: pd.Series, y: float, std: float | None = None) -> dict:
        policy = json.loads(r["policy"])
        ratios = policy["keep"] or policy["sparsity"]
        return {"trial": int(r["trial"]), "baseline": r["baseline"] or "",
                "x": _num(r[col]), "y": _num(y), "std": _num(std),
                "proxy_acc": _num(r["proxy_acc"]), "confirmed_acc": _num(r["confirmed_acc"]),
                "test_acc": _num(tested.get(int(r["trial"]))),
                "size_mib": _num(r["size_mib"]), "macs": _num(r["macs"]),
                "latency_ms": _num(r["latency_ms"]), "feasible": bool(r["feasible"]),
                "ratios_kind": "keep" if policy["keep"] else "sparsity",
                "ratios": {k: round(float(v), 4) for k, v in ratios.items()},
                "policy": policy}

    series = [
        {"name": "feasible trial (proxy, validation)", "shape": "circle", "color": "#1f77b4",
         "points": [point(r, r["proxy_acc"]) for _, r in res.iterrows() if r["feasible"]]},
        {"name": "infeasible trial", "shape": "cross", "color": "#888888",
         "points": [point(r, r["proxy_acc"]) for _, r in res.iterrows() if not r["feasible"]]},
        {"name": "warm-start baseline", "shape": "ring", "color": "#2ca02c",
         "points": [point(r, r["proxy_acc"]) for _, r in res.iterrows() if r["baseline"]]},
        {"name": "Pareto front (confirmed, fresh seeds)", "shape": "circle",
         "color": "#ff7f0e", "line": True,
         "points": sorted((point(r, r["confirmed_acc"], r["confirmed_std"])
                           for _, r in res.iterrows() if r["trial"] in front),
                          key=lambda p: p["x"] or 0)},
        {"name": "finalized (TEST accuracy)", "shape": "diamond", "color": "#d62728",
         "points": [point(r, tested[int(r["trial"])]) for _, r in res.iterrows()
                    if int(r["trial"]) in tested]},
    ]
    dense = search.record_.dense.to_dict()
    cap = search.cfg.budget.caps(dense).get(col)
    return {"axis": axis, "xlabel": label, "title": f"{search.cfg.name}: accuracy vs {axis}",
            "series": [s for s in series if s["points"]],
            "dense": {"x": _num(dense[col]), "y": _num(dense["val_acc"])},
            "budget": _num(cap)}


SCRIPT = r"""
(function () {
  "use strict";
  const NS = "http://www.w3.org/2000/svg";
  const W = 760, H = 440, L = 64, R = 16, T = 30, B = 48;
  const fmt = (v, d) => (v === null || v === undefined) ? "n/a" : Number(v).toFixed(d);
  function el(name, attrs, parent) {
    const e = document.createElementNS(NS, name);
    for (const k in attrs) e.setAttribute(k, attrs[k]);
    if (parent) parent.appendChild(e);
    return e;
  }
  function ticks(lo, hi, n) {
    const span = hi - lo || 1, step0 = span / n;
    const mag = Math.pow(10, Math.floor(Math.log10(step0)));
    const step = [1, 2, 5, 10].map(m => m * mag).find(s => s >= step0);
    const out = [];
    for (let v = Math.ceil(lo / step) * step; v <= hi + 1e-9; v += step) out.push(v);
    return out;
  }
  function label(v) {
    const a = Math.abs(v);
    return a >= 1e6 ? (v / 1e6).toPrecision(3) + "M" : a >= 100 ? v.toFixed(0)
      : Number(v.toPrecision(3)).toString();
  }
  function tooltip(p) {
    const rows = [["trial", p.trial + (p.baseline ? " (" + p.baseline + ")" : "")],
      ["accuracy", fmt(p.y, 2) + (p.std !== null ? " ± " + fmt(p.std, 2) : "") + " %"],
      ["proxy / confirmed", fmt(p.proxy_acc, 2) + " / " + fmt(p.confirmed_acc, 2) + " %"],
      ["test (finalized)", fmt(p.test_acc, 2) + " %"],
      ["size", fmt(p.size_mib, 4) + " MiB"], ["MACs", fmt(p.macs / 1e6, 2) + " M"],
      ["latency", fmt(p.latency_ms, 3) + " ms"]];
    let html = "<table class='ap-tt'>" + rows.map(r => "<tr><th>" + r[0] + "</th><td>" + r[1] +
      "</td></tr>").join("") + "</table><div class='ap-ratios'>" + p.ratios_kind + ": " +
      Object.entries(p.ratios).map(e => e[0] + " " + e[1]).join(", ") + "</div>";
    return html;
  }
  function draw(box) {
    const spec = JSON.parse(box.querySelector("script[type='application/json']").textContent);
    const pts = [].concat(...spec.series.map(s => s.points)).filter(p => p.x !== null &&
      p.y !== null);
    const xs = pts.map(p => p.x).concat([spec.dense.x]);
    const ys = pts.map(p => p.y).concat([spec.dense.y]);
    if (spec.budget !== null) xs.push(spec.budget);
    const sortedY = ys.slice().sort((a, b) => a - b);
    let x0 = Math.min(...xs), x1 = Math.max(...xs);
    let y0 = sortedY[Math.floor(0.05 * (sortedY.length - 1))] - 2, y1 = Math.max(...ys) + 0.8;
    const pad = (x1 - x0) * 0.04 || 1; x0 -= pad; x1 += pad;
    const sx = v => L + (v - x0) / (x1 - x0) * (W - L - R);
    const sy = v => T + (y1 - Math.max(v, y0)) / (y1 - y0) * (H - T - B);
    const svg = el("svg", {viewBox: "0 0 " + W + " " + H, width: W, height: H,
      class: "ap-svg", role: "img"}, null);
    el("text", {x: W / 2, y: 18, "text-anchor": "middle", class: "ap-title"}, svg)
      .textContent = spec.title;
    for (const v of ticks(x0, x1, 8)) {
      el("line", {x1: sx(v), x2: sx(v), y1: T, y2: H - B, class: "ap-grid"}, svg);
      el("text", {x: sx(v), y: H - B + 16, "text-anchor": "middle"}, svg).textContent =
        label(v);
    }
    for (const v of ticks(y0, y1, 6)) {
      el("line", {x1: L, x2: W - R, y1: sy(v), y2: sy(v), class: "ap-grid"}, svg);
      el("text", {x: L - 6, y: sy(v) + 4, "text-anchor": "end"}, svg).textContent = label(v);
    }
    el("text", {x: (L + W - R) / 2, y: H - 10, "text-anchor": "middle"}, svg).textContent =
      spec.xlabel;
    el("text", {x: 14, y: (T + H - B) / 2, "text-anchor": "middle",
      transform: "rotate(-90 14 " + (T + H - B) / 2 + ")"}, svg).textContent = "accuracy (%)";
    if (spec.budget !== null)
      el("line", {x1: sx(spec.budget), x2: sx(spec.budget), y1: T, y2: H - B,
        class: "ap-budget"}, svg);
    const tip = box.querySelector(".ap-tip"), out = box.querySelector(".ap-policy");
    function select(p, mark) {
      box.querySelectorAll(".ap-selected").forEach(e => e.classList.remove("ap-selected"));
      if (mark) mark.classList.add("ap-selected");
      out.textContent = "trial " + p.trial + (p.baseline ? " (" + p.baseline + ")" : "") +
        " policy:\n" + JSON.stringify(p.policy, null, 2);
      out.dataset.trial = p.trial;
    }
    const marks = [];
    spec.series.forEach((s, si) => {
      const g = el("g", {class: "ap-series", "data-series": s.name}, svg);
      const valid = s.points.filter(p => p.x !== null && p.y !== null);
      if (s.line && valid.length > 1)
        el("polyline", {points: valid.map(p => sx(p.x) + "," + sy(p.y)).join(" "),
          fill: "none", stroke: s.color, "stroke-width": 1.5}, g);
      for (const p of valid) {
        const cx = sx(p.x), cy = sy(p.y);
        let m;
        if (s.shape === "diamond")
          m = el("path", {d: "M" + cx + " " + (cy - 7) + "l7 7l-7 7l-7 -7z", fill: s.color}, g);
        else if (s.shape === "cross")
          m = el("path", {d: "M" + (cx - 4) + " " + (cy - 4) + "l8 8m0 -8l-8 8",
            stroke: s.color, "stroke-width": 2}, g);
        else m = el("circle", {cx: cx, cy: cy, r: s.shape === "ring" ? 7 : 4.5,
          fill: s.shape === "ring" ? "none" : s.color, stroke: s.color,
          "stroke-width": s.shape === "ring" ? 2 : 0, "fill-opacity": 0.75}, g);
        if (p.std !== null)
          el("line", {x1: cx, x2: cx, y1: sy(p.y - p.std), y2: sy(p.y + p.std),
            stroke: s.color}, g);
        m.classList.add("ap-point");
        m.dataset.trial = p.trial;
        m.addEventListener("mouseenter", ev => {
          tip.innerHTML = "<b>" + s.name + "</b>" + tooltip(p);
          tip.style.display = "block";
          tip.style.left = (ev.offsetX + 14) + "px"; tip.style.top = (ev.offsetY + 8) + "px";
        });
        m.addEventListener("mouseleave", () => { tip.style.display = "none"; });
        m.addEventListener("click", () => select(p, m));
        marks.push([p, m]);
      }
    });
    const d = spec.dense;
    el("path", {d: "M" + sx(d.x) + " " + (sy(d.y) - 9) + "l2.6 6.4l6.9 .4l-5.3 4.4l1.7 " +
      "6.7l-5.9 -3.7l-5.9 3.7l1.7 -6.7l-5.3 -4.4l6.9 -.4z", fill: "#000", class: "ap-dense"},
      svg);
    const legend = box.querySelector(".ap-legend");
    spec.series.forEach(s => {
      const item = document.createElement("span");
      item.innerHTML = "<i style='background:" + s.color + "'></i>" + s.name;
      legend.appendChild(item);
    });
    box.querySelector(".ap-canvas").appendChild(svg);
    const m = /select=(\d+)/.exec(location.hash);
    if (m) {  // as if the mouse went over trial N's point and clicked it
      const hit = marks.find(pm => String(pm[0].trial) === m[1]);
      if (hit) for (const type of ["mouseenter", "click"])
        hit[1].dispatchEvent(new MouseEvent(type, {clientX: 10, clientY: 10}));
    }
    box.dataset.drawn = String(marks.length);
  }
  document.querySelectorAll(".ap-plot").forEach(draw);
})();
"""

STYLE = (".ap-plot{margin:1.5em 0;position:relative}.ap-canvas{position:relative}"
         ".ap-svg{font:11px sans-serif;border:1px solid #eee;max-width:100%;height:auto}"
         ".ap-title{font-size:13px;font-weight:bold}.ap-grid{stroke:#e6e6e6}"
         ".ap-budget{stroke:#9467bd;stroke-dasharray:6 4;stroke-width:1.2}"
         ".ap-point{cursor:pointer}.ap-selected{stroke:#000!important;stroke-width:2.5}"
         ".ap-tip{display:none;position:absolute;background:#fff;border:1px solid #999;"
         "padding:4px 8px;font-size:12px;pointer-events:none;max-width:420px;z-index:2;"
         "box-shadow:0 2px 6px rgba(0,0,0,.2)}.ap-tip table{margin:0;font-size:12px}"
         ".ap-tip td,.ap-tip th{border:none;padding:0 6px 0 0;text-align:left}"
         ".ap-ratios{font-size:11px;color:#444;margin-top:3px;word-break:break-all}"
         ".ap-legend span{margin-right:14px;font-size:12px}.ap-legend i{display:inline-block;"
         "width:10px;height:10px;margin-right:4px;border-radius:50%}"
         ".ap-policy{background:#f7f7f7;padding:6px;font-size:11px;max-height:260px;"
         "overflow:auto;white-space:pre}")


def spec_json(spec: dict) -> str:
    """JSON safe to place inside a ``<script>`` element."""
    return json.dumps(spec).replace("</", "<\\/")
