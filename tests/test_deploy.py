"""Deployment formats (ONNX, TorchScript, PT2) and the ONNX Runtime latency backend."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch

from autoprune.engine.deploy import OPSET, export_model, onnx_bytes
from autoprune.engine.metrics import measure_latency, measure_speedup
from autoprune.engine.prune import channel_prune
from autoprune.errors import ConfigError
from autoprune.models import ModelSpec, build_model
from autoprune.search.config import LatencySettings


@pytest.fixture(scope="module")
def pruned():
    torch.manual_seed(0)
    model = build_model(ModelSpec("cnn", width=0.5, in_channels=1, num_classes=10)).eval()
    x = torch.randn(1, 1, 28, 28)
    small = channel_prune(model, 0.5, x).eval()
    # a trained-looking state: random BN statistics, so a wrong export cannot hide behind
    # the identity of fresh batch-norm layers
    for m in small.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    return model, small


@pytest.mark.parametrize("fmt", ["onnx", "torchscript", "pt2"])
def test_export_matches_pytorch(pruned, tmp_path, fmt):
    _, small = pruned
    inputs = torch.randn(16, 1, 28, 28)
    check = export_model(small, tmp_path / f"m.{fmt}", inputs, fmt=fmt)
    assert (tmp_path / f"m.{fmt}").is_file() and check.inputs == 16
    assert check.max_abs_diff < 1e-4
    assert not list(tmp_path.glob(".*.tmp"))
    if fmt == "onnx":
        graph = onnx.load(str(tmp_path / "m.onnx"))
        onnx.checker.check_model(graph)
        assert check.opset == OPSET
        assert any(o.domain in ("", "ai.onnx") and o.version == OPSET for o in graph.opset_import)
        # the pruned widths, not the dense ones, are in the graph
        convs = [n for n in graph.graph.node if n.op_type == "Conv"]
        weights = {i.name: i for i in graph.graph.initializer}
        widths = [m.out_channels for m in small.modules() if isinstance(m, torch.nn.Conv2d)]
        assert [weights[n.input[1]].dims[0] for n in convs] == widths


def test_onnx_graph_runs_any_batch_size(pruned):
    import onnxruntime as ort

    _, small = pruned
    session = ort.InferenceSession(onnx_bytes(small, (1, 28, 28)),
                                   providers=["CPUExecutionProvider"])
    for batch in (1, 7):
        x = torch.randn(batch, 1, 28, 28)
        got = session.run(None, {"input": x.numpy()})[0]
        with torch.no_grad():
            want = small(x).numpy()
        assert got.shape == (batch, 10) and np.abs(got - want).max() < 1e-4


def test_onnxruntime_latency_and_speedup(pruned):
    dense, small = pruned
    lat = measure_latency(small, (1, 28, 28), batch_size=4, threads=1, min_run_time=0.05,
                          backend="onnxruntime")
    assert lat.device == "cpu:onnxruntime" and lat.batch_size == 4 and lat.threads == 1
    assert lat.median_ms > 0 and lat.runs >= 5
    r = measure_speedup(dense, small, (1, 28, 28), repeats=2, threads=1, min_run_time=0.05,
                        backend="onnxruntime")
    assert len(r.speedups) == 2 and r.speedup > 0 and r.device == "cpu:onnxruntime"
    with pytest.raises(ValueError, match="onnxruntime latency backend runs on the CPU"):
        measure_latency(small, (1, 28, 28), device="meta", backend="onnxruntime")
    with pytest.raises(ValueError, match="'torch' or 'onnxruntime'"):
        measure_latency(small, (1, 28, 28), backend="tensorrt")


def test_latency_backend_settings():
    assert LatencySettings(backend="onnxruntime").backend == "onnxruntime"
    with pytest.raises(ConfigError, match="latency.backend must be one of"):
        LatencySettings(backend="ort")
    with pytest.raises(ConfigError, match="runs on the CPU"):
        LatencySettings(backend="onnxruntime", device="cuda")


def test_export_refuses_unknown_format(pruned, tmp_path):
    with pytest.raises(ConfigError, match="export format"):
        export_model(pruned[1], tmp_path / "m", torch.randn(2, 1, 28, 28), fmt="tflite")


def test_search_measures_latency_with_onnxruntime(synthetic_idx_root, in_tmp, monkeypatch):
    """With ``latency.backend = "onnxruntime"`` every latency of the study (the dense
    reference and each channel trial) is an ONNX Runtime measurement."""
    from autoprune.engine import deploy
    from autoprune.search import PruneSearch
    from autoprune.search.config import config_from_dict
    from tests.helpers import tiny_raw

    calls = []
    real = deploy.onnx_timer

    def spy(*args, **kwargs):
        time_it = real(*args, **kwargs)

        def timed(min_run_time):
            out = time_it(min_run_time)
            calls.append(out.median_ms)
            return out
        return timed

    monkeypatch.setattr(deploy, "onnx_timer", spy)
    raw = tiny_raw(synthetic_idx_root, search={"mode": "channel", "prior": "uniform",
                                                "trials": 3, "objectives": ["accuracy",
                                                                            "latency"]},
                   budget={"size": 0.6}, latency={"backend": "onnxruntime",
                                                  "min_run_time": 0.01})
    search = PruneSearch(config_from_dict(raw, "ort"), progress=False).run()
    lat = [v.value("latency_ms") for v in search.record_.views()]
    assert len(lat) == 3 and all(v in calls for v in lat)
    assert search.record_.dense.latency_ms in calls


def test_ort_channel_block_reads_the_cpu_flags(tmp_path):
    """AVX-512F: MLAS's NCHWc block is 16 channels; other x86: 8; no x86 flags or no file:
    unknown."""
    from autoprune.engine.deploy import ort_channel_block

    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nflags\t\t: fpu sse sse2 avx avx2 fma avx512f avx512bw\n")
    assert ort_channel_block(info) == 16
    info.write_text("processor\t: 0\nflags\t\t: fpu sse sse2 avx avx2 fma\n")
    assert ort_channel_block(info) == 8
    info.write_text("processor\t: 0\nFeatures\t: fp asimd evtstrm aes\n")
    assert ort_channel_block(info) is None
    assert ort_channel_block(tmp_path / "missing") is None


def test_onnxruntime_studies_are_told_to_round_to_its_block(monkeypatch, capsys):
    """A channel study timed by ONNX Runtime without channel counts in its block gets one
    note naming the round_to to set; a multiple of the block, eager PyTorch or fine-grained
    pruning get none. The CLI prints it before any work."""
    from autoprune.engine import deploy
    from autoprune.search.config import load_config
    from autoprune.workflow.cli import _print_advice

    monkeypatch.setattr(deploy, "ort_channel_block", lambda: 16)
    ort = ["latency.backend='onnxruntime'"]
    notes = load_config("studies/demo.toml", ort).advice()
    assert len(notes) == 1 and "search.round_to = 0" in notes[0] \
        and notes[0].endswith("set search.round_to = 16.")
    assert "round_to = 8:" in load_config("studies/demo.toml", ort + ["search.round_to=8"]
                                          ).advice()[0]
    assert load_config("studies/demo.toml", ort + ["search.round_to=32"]).advice() == []
    assert load_config("studies/demo.toml").advice() == []
    assert load_config("studies/vgg_fine_size5.toml", ort).advice() == []
    _print_advice("search", load_config("studies/demo.toml", ort))
    assert capsys.readouterr().err.startswith("autoprune search: note: latency.backend = ")
    monkeypatch.setattr(deploy, "ort_channel_block", lambda: None)
    assert load_config("studies/demo.toml", ort).advice() == []


def test_speedup_exports_each_model_once(pruned, monkeypatch):
    """Timed alternately 3 times, dense and pruned are each exported to ONNX once."""
    from autoprune.engine import deploy

    dense, small = pruned
    exported = []
    real = deploy.onnx_bytes

    def spy(model, *a, **kw):
        exported.append(sum(p.numel() for p in model.parameters()))
        return real(model, *a, **kw)

    monkeypatch.setattr(deploy, "onnx_bytes", spy)
    r = measure_speedup(dense, small, (1, 28, 28), repeats=3, threads=1, min_run_time=0.02,
                        backend="onnxruntime")
    assert len(r.reference_ms) == len(r.model_ms) == 3
    assert exported == [sum(p.numel() for p in m.parameters()) for m in (dense, small)]
