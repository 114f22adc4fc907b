"""Deployment formats: ONNX, TorchScript and ``torch.export`` (PT2) files of a model, each
checked against the PyTorch model on real inputs after writing, and latency measured with
ONNX Runtime.

ONNX needs the optional extra (``pip install 'autoprune[onnx]'``: onnx, onnxruntime,
onnxscript); everything else is torch only.

Example:
    >>> check = export_model(model, "model.onnx", inputs, fmt="onnx")  # doctest: +SKIP
    >>> check.max_abs_diff < 1e-4                                      # doctest: +SKIP
    True
"""

from __future__ import annotations

import copy
import io
import tempfile
import time
import warnings
from contextlib import redirect_stdout
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from autoprune.cache import atomic_path
from autoprune.errors import ConfigError

__all__ = ["FORMATS", "OPSET", "ExportCheck", "export_model", "onnx_bytes", "onnx_latency",
           "onnx_timer", "ort_channel_block", "require_onnx"]

#: Formats :func:`export_model` writes, with their file suffix.
FORMATS = {"pt": ".pt", "onnx": ".onnx", "torchscript": ".ts.pt", "pt2": ".pt2"}
#: The ONNX opset every export targets.
OPSET = 18


@dataclass(frozen=True)
class ExportCheck:
    """How a written file's outputs compare with the PyTorch model's on the same inputs."""

    fmt: str
    path: str
    max_abs_diff: float
    inputs: int
    opset: int | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def require_onnx() -> None:
    """Raise :class:`ConfigError` naming the extra when onnx / onnxruntime are missing."""
    missing = []
    for name in ("onnx", "onnxruntime", "onnxscript"):
        try:
            __import__(name)
        except ImportError:
            missing.append(name)
    if missing:
        raise ConfigError(f"ONNX export and the onnxruntime latency backend need "
                          f"{', '.join(missing)}: pip install 'autoprune[onnx]'.")


def ort_channel_block(cpuinfo: str | Path = "/proc/cpuinfo") -> int | None:
    """The channel block of ONNX Runtime's CPU convolutions on this machine, or ``None`` when
    it cannot be told (no ``/proc/cpuinfo``, or not an x86 CPU).

    MLAS, ONNX Runtime's CPU kernel library, runs convolutions in the NCHWc layout with
    blocks of 16 channels on a CPU with AVX-512F and of 8 otherwise (``platform.cpp``,
    ``NchwcBlockSize``). A pruned model whose channel counts are not multiples of the block
    runs far slower per MAC (reports/benchmarks/latency_runtimes_demo_r16.md).
    """
    try:
        text = Path(cpuinfo).read_text(errors="replace")
    except OSError:
        return None
    flags = next((line.split(":", 1)[1].split() for line in text.splitlines()
                  if line.startswith("flags")), None)
    if flags is None or "sse2" not in flags:  # no flags line: not x86 (ARM says "Features")
        return None
    return 16 if "avx512f" in flags else 8


def onnx_bytes(model: nn.Module, input_size: tuple[int, ...], *, batch_size: int = 1) -> bytes:
    """The model as an ONNX graph (opset :data:`OPSET`, dynamic batch dimension), via the
    ``torch.export``-based exporter. The model is copied to the CPU; the original is untouched.
    """
    require_onnx()
    probe = copy.deepcopy(model).cpu().eval()
    x = torch.zeros(max(batch_size, 2), *input_size)
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings(), \
            redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        path = Path(tmp) / "model.onnx"
        torch.onnx.export(probe, (x,), str(path), dynamo=True, verbose=False,
                          opset_version=OPSET, input_names=["input"], output_names=["logits"],
                          dynamic_shapes=({0: torch.export.Dim("batch")},),
                          external_data=False)
        return path.read_bytes()


def _session(data: bytes, threads: int):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    return ort.InferenceSession(data, opts, providers=["CPUExecutionProvider"])


def onnx_latency(model: nn.Module, input_size: tuple[int, ...], *, batch_size: int = 1,
                 threads: int = 1, min_run_time: float = 0.5):
    """Median / IQR forward latency (ms) of the model exported to ONNX and run by ONNX
    Runtime's CPU execution provider with ``threads`` intra-op threads.

    Timed like :class:`torch.utils.benchmark.Timer`'s ``blocked_autorange``: blocks of runs
    until ``min_run_time`` seconds are spent, each block timed as a whole.
    """
    return onnx_timer(model, input_size, batch_size=batch_size, threads=threads)(min_run_time)


def onnx_timer(model: nn.Module, input_size: tuple[int, ...], *, batch_size: int = 1,
               threads: int = 1):
    """The model exported to ONNX once and loaded into a warmed-up ONNX Runtime session, as
    a function of ``min_run_time`` that times it (see :func:`onnx_latency`): timing a model
    several times, alternately with another, costs one export."""
    from autoprune.engine.metrics import LatencyResult

    session = _session(onnx_bytes(model, input_size, batch_size=batch_size), threads)
    feed = {"input": np.random.default_rng(0).standard_normal(
        (batch_size, *input_size)).astype(np.float32)}
    for _ in range(3):
        session.run(None, feed)

    def time_it(min_run_time: float) -> LatencyResult:
        t0 = time.perf_counter()
        session.run(None, feed)
        once = max(time.perf_counter() - t0, 1e-6)
        block = max(1, int(0.02 / once))           # each timed block lasts ~20 ms
        times: list[float] = []
        start = time.perf_counter()
        while time.perf_counter() - start < min_run_time or len(times) < 5:
            t0 = time.perf_counter()
            for _ in range(block):
                session.run(None, feed)
            times.append((time.perf_counter() - t0) / block)
        q1, med, q3 = np.percentile(times, [25, 50, 75])
        return LatencyResult(float(med) * 1e3, float(q3 - q1) * 1e3, batch_size, threads,
                             "cpu:onnxruntime", len(times))
    return time_it


def export_model(model: nn.Module, path: str | Path, inputs: torch.Tensor, *,
                 fmt: str = "onnx") -> ExportCheck:
    """Write ``model`` to ``path`` in ``fmt`` (``onnx``, ``torchscript``, ``pt2``), load the
    file back, run it on ``inputs`` (real data, batch first) and report the largest absolute
    difference from the PyTorch model's outputs. The file appears atomically.
    """
    if fmt not in FORMATS or fmt == "pt":
        raise ConfigError(f"export format must be one of {sorted(set(FORMATS) - {'pt'})} here, "
                          f"got {fmt!r}.")
    model = copy.deepcopy(model).cpu().eval()
    inputs = inputs.detach().cpu().float()
    with torch.no_grad():
        expected = model(inputs).numpy()
    path = Path(path)
    opset = None
    with atomic_path(path) as tmp:  # renamed onto path only once it loads and runs
        if fmt == "onnx":
            data = onnx_bytes(model, tuple(inputs.shape[1:]), batch_size=inputs.shape[0])
            got = _session(data, 1).run(None, {"input": inputs.numpy()})[0]
            tmp.write_bytes(data)
            opset = OPSET
        elif fmt == "torchscript":
            with warnings.catch_warnings(), torch.no_grad():
                warnings.simplefilter("ignore")  # TorchScript's deprecation notices
                scripted = torch.jit.trace(model, inputs[:1])
                torch.jit.save(scripted, str(tmp))
                got = torch.jit.load(str(tmp)).eval()(inputs).numpy()
        else:
            batch = torch.export.Dim("batch", min=1)
            program = torch.export.export(model, (inputs,), dynamic_shapes=({0: batch},),
                                          strict=False)
            with open(tmp, "wb") as f:
                torch.export.save(program, f)
            with open(tmp, "rb") as f:
                loaded = torch.export.load(f)
            with torch.no_grad():
                got = loaded.module()(inputs).numpy()
    diff = float(np.abs(np.asarray(got) - expected).max())
    return ExportCheck(fmt, str(path), diff, int(inputs.shape[0]), opset)
