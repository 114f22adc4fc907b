"""Evaluation time on CPU in the contiguous and the channels-last memory format (what
``evaluate`` uses by default on CPU), for the zoo's models dense and channel-pruned, on
Fashion-MNIST validation images; and the accuracy of the demo's trained baseline both ways.

    .venv/bin/python bench/eval_channels_last.py
"""

from __future__ import annotations

import statistics
import time

import torch
from _common import write

from autoprune.engine.prune import channel_prune
from autoprune.models import ModelSpec, build_model
from autoprune.search.config import load_config
from autoprune.search.workspace import Workspace
from autoprune.train import evaluate

IMAGES = 5000
REPEATS = 3


def main() -> None:
    cfg = load_config("studies/demo.toml")
    ws = Workspace(cfg, progress=False)  # the demo's data and trained baseline (cached)
    data = ws.data
    example = torch.zeros(1, 1, 28, 28)
    models = [("demo baseline (vgg w0.25, trained)", ws.baseline.model)]
    torch.manual_seed(0)
    for name, width in (("vgg", 0.25), ("resnet20", 1.0), ("mobilenetv2", 0.35),
                        ("vgg", 1.0)):
        models.append((f"{name} w{width:g} (untrained)",
                       build_model(ModelSpec(name, width, 1, 10))))
    for keep in (0.6, 0.3):
        models.append((f"demo baseline, every group kept at {keep:g}",
                       channel_prune(ws.baseline.model, keep, example)))
    rows = []
    for label, model in models:
        times = {True: [], False: []}
        accs = {}
        for _ in range(REPEATS):  # interleaved: drifts of the machine hit both formats
            for cl in (False, True):
                t = time.perf_counter()
                accs[cl] = evaluate(model, data, "val", limit=IMAGES, device="cpu",
                                    channels_last=cl)
                times[cl].append(time.perf_counter() - t)
        contiguous, cl = statistics.median(times[False]), statistics.median(times[True])
        rows.append({"model": label, "contiguous_s": contiguous, "channels_last_s": cl,
                     "ratio": cl / contiguous, "acc_contiguous": accs[False],
                     "acc_channels_last": accs[True], "times": {
                         "contiguous": times[False], "channels_last": times[True]}})
        print(rows[-1]["model"], f"{contiguous:.2f} s -> {cl:.2f} s")
    md = ["# Evaluation on CPU: contiguous against channels-last", "",
          f"`evaluate()` on the first {IMAGES} Fashion-MNIST validation images (batch 500, "
          f"28x28, CPU, {torch.get_num_threads()} torch threads), each model {REPEATS} times "
          "in each format, the formats interleaved; median seconds. Channels-last is the "
          "default of `evaluate` on CPU since this benchmark.", "",
          "| model | contiguous s | channels-last s | ratio | accuracy contiguous | "
          "accuracy channels-last |", "|---|---|---|---|---|---|"]
    md += [f"| {r['model']} | {r['contiguous_s']:.2f} | {r['channels_last_s']:.2f} | "
           f"{r['ratio']:.2f} | {r['acc_contiguous']:.2f} | {r['acc_channels_last']:.2f} |"
           for r in rows]
    md += ["", "Command: `.venv/bin/python bench/eval_channels_last.py`"]
    write("eval_channels_last", {"images": IMAGES, "repeats": REPEATS, "rows": rows},
          "\n".join(md))


if __name__ == "__main__":
    main()
