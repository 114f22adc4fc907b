"""End to end on the real Fashion-MNIST, through the command line, kept small for CI."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from autoprune.workflow.cli import main

STUDY = """
name = "e2e"
seed = 0
[model]
name = "cnn"
width = 0.5
[data]
name = "fashion-mnist"
val_size = 1000
pad_to = 0
train_limit = 6000
[baseline]
epochs = 2
optimizer = "adamw"
lr = 0.003
[search]
mode = "channel"
trials = 8
prior = "uniform"
sweep = true
ladder = 2
objectives = ["accuracy", "size", "latency"]
[budget]
size = 0.5
[proxy]
steps = 10
val_limit = 500
confirm_top = 2
confirm_seeds = 2
confirm_val = 500
recalibrate = 128
[scan]
ratios = [0.0, 0.5, 0.8]
val_limit = 500
[latency]
min_run_time = 0.05
[finalize]
epochs = 1
"""

RELOAD = """
import json, sys
from autoprune import load_checkpoint, evaluate, load_data
from autoprune.search.config import load_config
cfg = load_config(sys.argv[1])
model = load_checkpoint(sys.argv[2])
print(json.dumps({"acc": evaluate(model, load_data(cfg.data), "test", device="cpu")}))
"""

ORT_ACCURACY = """
import json, sys
import numpy as np, onnxruntime as ort
from autoprune import load_data
from autoprune.search.config import load_config
data = load_data(load_config(sys.argv[1]).data)
session = ort.InferenceSession(sys.argv[2], providers=["CPUExecutionProvider"])
hits = 0
for x, y in data.loader("test", batch_size=500):
    hits += int((session.run(None, {"input": x.numpy()})[0].argmax(1) == y.numpy()).sum())
print(json.dumps({"acc": 100.0 * hits / len(data.test)}))
"""


@pytest.fixture
def e2e_study(tmp_path, monkeypatch, fmnist):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "studies").mkdir()
    path = tmp_path / "studies" / "e2e.toml"
    path.write_text(STUDY)
    return path


def test_search_finalize_report_export_reload(e2e_study, tmp_path, capsys):
    study = str(e2e_study)
    assert main(["search", study, "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "confirmed Pareto front" in out and (tmp_path / "studies/e2e/pareto.csv").is_file()

    assert main(["finalize", study, "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "dense: test" in out and "uniform" in out
    assert main(["finalize", study, "--quiet"]) == 0  # second run: nothing redone
    assert capsys.readouterr().out.count("trial") == out.count("trial")

    assert main(["report", study, "--quiet"]) == 0
    rep = tmp_path / "reports" / "e2e"
    for name in ("pareto_size.png", "pareto_latency.png", "pareto_macs.png", "report.md",
                 "report.html", "pareto.csv", "sensitivity_channel.png",
                 "weights_before_after.png"):
        assert (rep / name).is_file(), name
    page = (rep / "report.html").read_text()
    # finalized points, the confirmed front, and the ladder's level-by-level comparison
    assert page.count("<table>") == 3 and page.count("<tr>") >= 9
    assert "Level by level" in page and "<td>0.500</td>" in page  # search.floor 0.5, 1
    # Pareto plots interactive (drawn by the page's script from its JSON), scan plots and
    # weight histograms embedded as PNGs
    assert page.count('class="ap-plot"') == 3
    assert page.count('<script type="application/json">') == 3
    assert page.count("data:image/png;base64,") >= 3 and "<td>uniform</td>" in page
    md = (rep / "report.md").read_text()
    assert "| dense |" in md and "uniform" in md

    assert main(["export", study, "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "load_checkpoint" in out
    exp = rep / "export"
    policy = json.loads((exp / "policy.json").read_text())
    ratios = json.loads((exp / "channel_ratios.json").read_text())
    assert policy["mode"] == "channel" and set(ratios) == set(policy["keep"])
    assert all(0.0 <= v < 1.0 for v in ratios.values())
    reported = policy["meta"]["test_acc"]
    proc = subprocess.run([sys.executable, "-c", RELOAD, study, str(exp / "model.pt")],
                          capture_output=True, text=True, check=True, cwd=tmp_path)
    reloaded = json.loads(proc.stdout.strip().splitlines()[-1])["acc"]
    assert abs(reloaded - reported) <= 0.1

    # deployment formats: each file loaded back and compared on real test images
    assert main(["export", study, "--quiet", "--format", "onnx,torchscript,pt2"]) == 0
    out = capsys.readouterr().out
    assert "onnx, opset 18: max |output - PyTorch output|" in out
    checks = json.loads((exp / "export_checks.json").read_text())
    assert [c["fmt"] for c in checks] == ["onnx", "torchscript", "pt2"]
    assert all(c["max_abs_diff"] < 1e-3 and c["inputs"] == 64 for c in checks)
    proc = subprocess.run([sys.executable, "-c", ORT_ACCURACY, study, str(exp / "model.onnx")],
                          capture_output=True, text=True, check=True, cwd=tmp_path)
    assert abs(json.loads(proc.stdout.strip().splitlines()[-1])["acc"] - reported) <= 0.1
    assert main(["export", study, "--quiet", "--format", "onnx,tflite"]) == 2

    assert main(["export", study, "--pick", "smallest", "--max-drop", "50", "--quiet",
                 "--out", str(tmp_path / "small")]) == 0
    assert (tmp_path / "small" / "model.pt").is_file()
    assert main(["export", study, "--trial", "999", "--quiet"]) == 2
