"""Sensitivity-scan speed of the default model (VGG width 0.25, Fashion-MNIST), cold and cached,
one process on all torch threads vs joblib processes of one thread each; and how much BN
recalibration moves the channel-scan curves.

    .venv/bin/python bench/scan.py
"""

from __future__ import annotations

import time

from _common import write

from autoprune.search.config import load_config
from autoprune.search.sensitivity import ScanSettings, sensitivity_scan
from autoprune.search.workspace import Workspace


def main() -> None:
    cfg = load_config("studies/vgg_fine_size10.toml")
    ws = Workspace(cfg, progress=False)
    model, data = ws.baseline.model, ws.data
    rows = {}
    for jobs in (1, 2):
        s = ScanSettings("fine", val_limit=2000, jobs=jobs)
        t = time.perf_counter()
        res = sensitivity_scan(model, data, s, progress=False, force=True)
        rows[f"fine cold, jobs={jobs}"] = time.perf_counter() - t
    t = time.perf_counter()
    sensitivity_scan(model, data, ScanSettings("fine", val_limit=2000), progress=False)
    rows["fine cached"] = time.perf_counter() - t
    n_points = len(res.table)

    ch = sensitivity_scan(model, data, ScanSettings("channel", val_limit=2000, recalibrate=512),
                          progress=False)
    t = ch.table[ch.table.ratio > 0]
    moved = (t["accuracy"] - t["accuracy_no_recal"]).groupby(t["ratio"]).mean()
    md = ["# Sensitivity scan of the default model (vgg width 0.25, Fashion-MNIST 32x32)", "",
          f"Fine scan: {res.table['layer'].nunique()} layers x {len(res.settings.ratios)} "
          f"ratios = {n_points} points on 2,000 validation images.", "",
          "| run | seconds |", "|---|---|"]
    md += [f"| {k} | {v:.1f} |" for k, v in rows.items()]
    md += ["", "Channel scan: mean accuracy change from BN recalibration (512 training images, "
           "forward only), by ratio of channels removed:", "",
           "| ratio removed | recalibrated - raw (pp) | raw mean acc | recalibrated mean acc |",
           "|---|---|---|---|"]
    raw = t.groupby("ratio")["accuracy_no_recal"].mean()
    rec = t.groupby("ratio")["accuracy"].mean()
    md += [f"| {r:g} | {moved[r]:+.2f} | {raw[r]:.2f} | {rec[r]:.2f} |" for r in moved.index]
    md += ["", "Command: `.venv/bin/python bench/scan.py`"]
    write("scan", {"seconds": rows, "points": n_points,
                   "recalibration_shift_pp": moved.to_dict()}, "\n".join(md))


if __name__ == "__main__":
    main()
