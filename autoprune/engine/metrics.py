"""Honest measurement: parameters, size, MACs and latency. Measuring never changes the model.

Conventions (the pruning lab's):
    * size in MiB = nonzero parameters x bit width / 8 / 2**20 (32-bit by default);
    * MACs = FLOPs / 2 from :mod:`torch.utils.flop_counter`, each conv / linear layer's share
      scaled by its weight density for fine-grained sparsity;
    * latency = median (and IQR) of :mod:`torch.utils.benchmark` runs on a stated device,
      batch size and thread count.

Example:
    >>> from autoprune.models import ModelSpec, build_model
    >>> m = build_model(ModelSpec("vgg"))
    >>> round(count_macs(m, (3, 32, 32)) / 1e6)
    606
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

__all__ = [
    "LayerInfo",
    "LatencyResult",
    "SpeedupResult",
    "alternate",
    "count_params",
    "count_nonzero",
    "model_size_mib",
    "count_macs",
    "layer_table",
    "latency_timer",
    "measure_latency",
    "measure_speedup",
    "prunable_layers",
    "summarize",
]

MIB = 2**20


def prunable_layers(model: nn.Module) -> dict[str, nn.Module]:
    """Conv and linear modules by FQN, in definition order."""
    return {n: m for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))}


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def count_nonzero(model: nn.Module) -> int:
    """Parameters that storage must hold: nonzero conv / linear weights, every other parameter.

    Only conv / linear weights are ever pruned; biases and batch-norm affine parameters count
    in full even where they happen to be zero (a fresh BN bias is all zeros).
    """
    weights = {id(m.weight) for m in prunable_layers(model).values()}
    return sum(int(torch.count_nonzero(p)) if id(p) in weights else p.numel()
               for p in model.parameters())


def model_size_mib(model: nn.Module, bits: int = 32, nonzero_only: bool = True) -> float:
    """Size in MiB: (nonzero) parameters x ``bits`` / 8 / 2**20."""
    n = count_nonzero(model) if nonzero_only else count_params(model)
    return n * bits / 8 / MIB


@dataclass(frozen=True)
class LayerInfo:
    """One conv / linear layer of a profile."""

    name: str
    kind: str
    shape: tuple[int, ...]
    params: int
    nonzero: int
    dense_macs: int
    macs: int


def _flop_counts(model: nn.Module, input_size: tuple[int, ...]) -> tuple[int, dict[str, int]]:
    """Total FLOPs of one forward pass of batch 1, and FLOPs per module FQN."""
    probe = copy.deepcopy(model).eval()
    device = next(probe.parameters(), torch.empty(0)).device
    x = torch.zeros(1, *input_size, device=device)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        probe(x)
    root = type(probe).__name__
    per_module = {}
    for key, ops in counter.get_flop_counts().items():
        if key == root:
            per_module[""] = sum(ops.values())
        elif key.startswith(root + "."):
            per_module[key[len(root) + 1 :]] = sum(ops.values())
    return counter.get_total_flops(), per_module


def layer_table(model: nn.Module, input_size: tuple[int, ...]) -> list[LayerInfo]:
    """Per conv / linear layer: shape, params, nonzeros, dense and density-scaled MACs."""
    return _layer_rows(model, _flop_counts(model, input_size)[1])


def _layer_rows(model: nn.Module, per_module: dict[str, int]) -> list[LayerInfo]:
    rows = []
    for name, mod in prunable_layers(model).items():
        w = mod.weight
        params = w.numel() + (mod.bias.numel() if mod.bias is not None else 0)
        nonzero = int(torch.count_nonzero(w)) + (
            int(torch.count_nonzero(mod.bias)) if mod.bias is not None else 0
        )
        dense = per_module.get(name, 0) // 2
        density = int(torch.count_nonzero(w)) / w.numel()
        rows.append(LayerInfo(name, type(mod).__name__, tuple(w.shape), params, nonzero, dense,
                              int(round(dense * density))))
    return rows


def count_macs(model: nn.Module, input_size: tuple[int, ...], sparse: bool = True) -> int:
    """MACs of one image (FLOPs / 2); with ``sparse`` each layer is scaled by its density."""
    total, per_module = _flop_counts(model, input_size)
    macs = total // 2
    if sparse:  # one traced forward pass serves both the total and the per-layer scaling
        macs -= sum(r.dense_macs - r.macs for r in _layer_rows(model, per_module))
    return int(macs)


@dataclass(frozen=True)
class LatencyResult:
    """Latency of one forward pass, with the conditions it was measured under."""

    median_ms: float
    iqr_ms: float
    batch_size: int
    threads: int
    device: str
    runs: int

    def to_dict(self) -> dict:
        return asdict(self)


def measure_latency(
    model: nn.Module,
    input_size: tuple[int, ...],
    *,
    batch_size: int = 1,
    threads: int | None = None,
    device: str | torch.device | None = None,
    min_run_time: float = 0.5,
    backend: str = "torch",
) -> LatencyResult:
    """Median forward latency in ms via :class:`torch.utils.benchmark.Timer` (eager PyTorch),
    or of the model exported to ONNX and run by ONNX Runtime on the CPU
    (``backend="onnxruntime"``, see :func:`autoprune.engine.deploy.onnx_latency`).

    The model is deep-copied and put in eval mode; the original is untouched.
    """
    return latency_timer(model, input_size, batch_size=batch_size, threads=threads,
                         device=device, backend=backend)(min_run_time)


def latency_timer(model: nn.Module, input_size: tuple[int, ...], *, batch_size: int = 1,
                  threads: int | None = None, device: str | torch.device | None = None,
                  backend: str = "torch") -> Callable[[float], LatencyResult]:
    """The model made ready to time once (deep-copied, or exported to ONNX and loaded into
    a session; warmed up), as a function of ``min_run_time`` that times it the way
    :func:`measure_latency` does. A model timed again and again (the dense reference of
    every trial) is prepared once."""
    from torch.utils import benchmark

    if batch_size <= 0:
        raise ValueError(f"batch_size must be positive, got {batch_size}.")
    if backend == "onnxruntime":
        from autoprune.engine.deploy import onnx_timer

        if device is not None and torch.device(device).type != "cpu":
            raise ValueError(f"the onnxruntime latency backend runs on the CPU, got device "
                             f"{device}.")
        return onnx_timer(model, input_size, batch_size=batch_size,
                          threads=threads or torch.get_num_threads())
    if backend != "torch":
        raise ValueError(f"latency backend must be 'torch' or 'onnxruntime', got {backend!r}.")
    dev = torch.device(device) if device is not None else (
        next(model.parameters(), torch.empty(0)).device
    )
    threads = threads or torch.get_num_threads()
    probe = copy.deepcopy(model).to(dev).eval()
    x = torch.randn(batch_size, *input_size, device=dev)
    with torch.no_grad():
        for _ in range(3):
            probe(x)

    def time_it(min_run_time: float) -> LatencyResult:
        with torch.no_grad():
            timer = benchmark.Timer(stmt="model(x)", globals={"model": probe, "x": x},
                                    num_threads=threads)
            m = timer.blocked_autorange(min_run_time=min_run_time)
        return LatencyResult(m.median * 1e3, m.iqr * 1e3, batch_size, threads, str(dev),
                             len(m.times))
    return time_it


@dataclass(frozen=True)
class SpeedupResult:
    """Latency of a model against a reference measured alternately in the same run."""

    reference_ms: list[float]
    model_ms: list[float]
    batch_size: int
    threads: int
    device: str

    @property
    def speedups(self) -> list[float]:
        """Reference / model latency, one per repeat."""
        return [r / m for r, m in zip(self.reference_ms, self.model_ms)]

    @property
    def speedup(self) -> float:
        """The median of :attr:`speedups`."""
        s = sorted(self.speedups)
        mid = len(s) // 2
        return s[mid] if len(s) % 2 else 0.5 * (s[mid - 1] + s[mid])


def measure_speedup(reference: nn.Module, model: nn.Module, input_size: tuple[int, ...], *,
                    repeats: int = 3, batch_size: int = 1, threads: int | None = None,
                    device: str | torch.device | None = None, min_run_time: float = 0.5,
                    backend: str = "torch") -> SpeedupResult:
    """Time ``reference`` and ``model`` alternately, ``repeats`` times each, under the same
    conditions: drifts of a shared machine hit both, so their ratio is the figure to trust."""
    if repeats <= 0:
        raise ValueError(f"repeats must be positive, got {repeats}.")
    timers = [latency_timer(m, input_size, batch_size=batch_size, threads=threads,
                            device=device, backend=backend) for m in (reference, model)]
    return alternate(*timers, repeats=repeats, min_run_time=min_run_time)


def alternate(reference: Callable[[float], LatencyResult],
              model: Callable[[float], LatencyResult], *, repeats: int = 3,
              min_run_time: float = 0.5) -> SpeedupResult:
    """:func:`measure_speedup` of two prepared timers (:func:`latency_timer`)."""
    if repeats <= 0:
        raise ValueError(f"repeats must be positive, got {repeats}.")
    ref_ms, model_ms, lat = [], [], None
    for _ in range(repeats):
        for time_it, out in ((reference, ref_ms), (model, model_ms)):
            lat = time_it(min_run_time)
            out.append(lat.median_ms)
    return SpeedupResult(ref_ms, model_ms, lat.batch_size, lat.threads, lat.device)


def summarize(model: nn.Module, input_size: tuple[int, ...], bits: int = 32) -> dict:
    """Totals: params, nonzeros, size (dense and nonzero MiB) and MACs."""
    return {
        "params": count_params(model),
        "nonzero": count_nonzero(model),
        "size_mib": model_size_mib(model, bits, nonzero_only=True),
        "dense_size_mib": model_size_mib(model, bits, nonzero_only=False),
        "macs": count_macs(model, input_size),
        "dense_macs": count_macs(model, input_size, sparse=False),
    }
