"""Scan and weight figures as PNG files. Plot data is computed first (testable without
pixels), then drawn.

Headless: matplotlib's Agg backend, never a window.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from torch import nn  # noqa: E402

from autoprune.engine.metrics import prunable_layers  # noqa: E402

__all__ = [
    "SensitivityPlotData",
    "sensitivity_plot_data",
    "plot_sensitivity_curves",
    "plot_sensitivity_heatmap",
    "plot_layer_params",
    "plot_weight_histograms",
    "save_scan_plots",
]


class SensitivityPlotData(NamedTuple):
    layers: list[str]
    ratios: list[float]
    accuracy: np.ndarray  # layers x ratios
    drop: np.ndarray  # dense accuracy - accuracy
    dense_acc: float
    params: dict[str, int]


def sensitivity_plot_data(table: pd.DataFrame, dense_acc: float,
                          layer_params: dict[str, int] | None = None) -> SensitivityPlotData:
    layers = list(dict.fromkeys(table["layer"]))
    ratios = sorted(table["ratio"].unique())
    acc = table.pivot(index="layer", columns="ratio", values="accuracy").loc[layers, ratios]
    a = acc.to_numpy(float)
    return SensitivityPlotData(layers, [float(r) for r in ratios], a, dense_acc - a, dense_acc,
                               layer_params or {})


def _short(name: str, n: int = 28) -> str:
    name = name.removesuffix(".weight")
    return name if len(name) <= n else name[: n // 2 - 1] + "…" + name[-(n // 2) :]


def plot_sensitivity_curves(d: SensitivityPlotData, path: Path, title: str = "") -> Path:
    fig, ax = plt.subplots(figsize=(8, 5))
    cmap = plt.get_cmap("viridis", max(len(d.layers), 2))
    for i, layer in enumerate(d.layers):
        ax.plot(d.ratios, d.accuracy[i], marker="o", ms=3, color=cmap(i), label=_short(layer))
    ax.axhline(d.dense_acc, color="k", ls="--", lw=1, label=f"dense {d.dense_acc:.2f} %")
    ax.set_xlabel("pruning ratio (sparsity or channels removed)")
    ax.set_ylabel("validation accuracy (%)")
    ax.set_title(title or "Sensitivity: accuracy after pruning one layer")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2 if len(d.layers) > 12 else 1, loc="lower left")
    return _save(fig, path)


def plot_sensitivity_heatmap(d: SensitivityPlotData, path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(8, 0.35 * len(d.layers) + 1.8))
    im = ax.imshow(d.drop, aspect="auto", cmap="magma_r", vmin=0)
    ax.set_xticks(range(len(d.ratios)), [f"{r:g}" for r in d.ratios])
    ax.set_yticks(range(len(d.layers)), [_short(n) for n in d.layers], fontsize=7)
    ax.set_xlabel("pruning ratio")
    ax.set_title("Accuracy drop (pp) when pruning one layer alone")
    fig.colorbar(im, ax=ax, label="drop (pp)")
    return _save(fig, path)


def plot_layer_params(params: dict[str, int], path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(8, 4))
    names = list(params)
    ax.bar(range(len(names)), [params[n] for n in names], color="tab:blue")
    ax.set_xticks(range(len(names)), [_short(n, 18) for n in names], rotation=60, ha="right",
                  fontsize=7)
    ax.set_ylabel("parameters")
    ax.set_title("Parameters per layer")
    ax.grid(axis="y", alpha=0.3)
    return _save(fig, path)


def plot_weight_histograms(model: nn.Module, path: Path, *, other: nn.Module | None = None,
                           labels: tuple[str, str] = ("dense", "pruned"),
                           bins: int = 60) -> Path:
    """Histograms of each conv / linear weight's values, zeros excluded (the lab's figure)."""
    layers = prunable_layers(model)
    others = prunable_layers(other) if other is not None else {}
    cols = 3
    rows = (len(layers) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(10, 2.2 * rows), squeeze=False)
    for ax, (name, mod) in zip(axes.flat, layers.items()):
        w = mod.weight.detach().cpu().flatten()
        w = w[w != 0]
        ax.hist(w.numpy(), bins=bins, color="tab:blue", alpha=0.6, density=True,
                label=labels[0])
        if name in others:
            v = others[name].weight.detach().cpu().flatten()
            ax.hist(v[v != 0].numpy(), bins=bins, color="tab:red", alpha=0.6, density=True,
                    label=labels[1])
        ax.set_title(_short(name), fontsize=8)
        ax.tick_params(labelsize=6)
    for ax in list(axes.flat)[len(layers):]:
        ax.axis("off")
    if others:
        axes.flat[0].legend(fontsize=7)
    fig.suptitle("Weight values per layer (zeros excluded)")
    return _save(fig, path)


def save_scan_plots(table: pd.DataFrame, dense_acc: float, model: nn.Module, out_dir: Path,
                    mode: str) -> list[Path]:
    """The four scan figures of the lab, as PNG files in ``out_dir``."""
    out_dir = Path(out_dir)
    params = {f"{n}.weight": int(m.weight.numel()) for n, m in prunable_layers(model).items()}
    d = sensitivity_plot_data(table, dense_acc, params)
    return [
        plot_sensitivity_curves(d, out_dir / f"sensitivity_{mode}.png",
                                f"Sensitivity ({mode} pruning, one layer at a time)"),
        plot_sensitivity_heatmap(d, out_dir / f"sensitivity_heatmap_{mode}.png"),
        plot_layer_params(params, out_dir / "params_per_layer.png"),
        plot_weight_histograms(model, out_dir / "weight_histograms.png"),
    ]


def _save(fig, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path

