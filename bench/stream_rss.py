"""Peak memory of loading an image folder and scanning a model over it: streamed vs in memory.

Fashion-MNIST (all 60,000 training and 10,000 test images, from Debian's package) written as
PNG files in an ImageFolder layout, read at several resize sizes. Each measurement runs in a
fresh process: ``load_data`` then a channel sensitivity scan of a small CNN (ratios 0 and
0.5, 500 validation images, 256 recalibration images), peak RSS from ``getrusage``. At the
largest size the decoded data set is larger than this machine's memory: only the streamed
path runs there (the in-memory path would have to hold it all).

    .venv/bin/python bench/stream_rss.py [--sizes 32,96] [--huge 384]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import ROOT, write

FOLDER = Path(os.environ.get("AUTOPRUNE_STREAM_FOLDER", "/tmp/autoprune-fmnist-folder"))

CHILD = """
import json, resource, sys, time
import torch
from autoprune.data import DataSpec, load_data
from autoprune.models import ModelSpec, build_model
from autoprune.search.sensitivity import ScanSettings, sensitivity_scan
size, stream = int(sys.argv[2]), sys.argv[3] == "1"
torch.set_num_threads(2)
t0 = time.perf_counter()
data = load_data(DataSpec("imagefolder:" + sys.argv[1], val_size=5000, image_size=size,
                          stream=stream, workers=2, augment="none"))
loaded = time.perf_counter() - t0
rss_loaded = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
torch.manual_seed(0)
model = build_model(ModelSpec("cnn", width=0.25, in_channels=3, num_classes=10)).eval()
scan = sensitivity_scan(model, data, ScanSettings(mode="channel", ratios=(0.0, 0.5),
                        val_limit=500, recalibrate=256, jobs=1), device="cpu", progress=False)
print(json.dumps({"size": size, "stream": stream, "load_s": loaded,
                  "total_s": time.perf_counter() - t0, "rss_after_load_mib": rss_loaded,
                  "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "children_peak_rss_mib":
                      resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
                  "images": len(data.train) + len(data.val) + len(data.test),
                  "scan_rows": len(scan.table)}))
"""


def build_folder() -> int:
    """Write Fashion-MNIST as PNGs once (``train/<class>/``, ``test/<class>/``)."""
    from PIL import Image

    from autoprune.data import DataSpec, load_data

    done = FOLDER / ".complete"
    if done.is_file():
        return int(done.read_text())
    data = load_data(DataSpec("fashion-mnist", val_size=1))
    n = 0
    for split, images, labels in (
            ("train", [data.train.images, data.val.images], [data.train.labels,
                                                             data.val.labels]),
            ("test", [data.test.images], [data.test.labels])):
        for imgs, labs in zip(images, labels):
            for img, y in zip(imgs[:, 0].numpy(), labs.tolist()):
                d = FOLDER / split / f"{y}"
                d.mkdir(parents=True, exist_ok=True)
                Image.fromarray(img).save(d / f"{n:05d}.png")
                n += 1
    done.write_text(str(n))
    return n


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="32,96")
    ap.add_argument("--huge", type=int, default=384)
    args = ap.parse_args()
    t0 = time.perf_counter()
    n = build_folder()
    print(f"{n} PNG files under {FOLDER} ({time.perf_counter() - t0:.0f} s)", flush=True)
    runs = [(int(s), m) for s in args.sizes.split(",") for m in (True, False)]
    if args.huge:
        runs.append((args.huge, True))
    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    rows = []
    for size, stream in runs:
        with tempfile.TemporaryDirectory() as cache:  # a cold cache: the scan really runs
            proc = subprocess.run([sys.executable, "-c", CHILD, str(FOLDER), str(size),
                                   "1" if stream else "0"], capture_output=True, text=True,
                                  cwd=ROOT, env={**os.environ, "AUTOPRUNE_CACHE": cache})
        if proc.returncode:
            raise SystemExit(proc.stderr[-3000:])
        row = json.loads(proc.stdout.strip().splitlines()[-1])
        row["decoded_gib"] = n * 3 * size * size / 2**30
        rows.append(row)
        print(row, flush=True)
    md = ["# Streaming an image folder: peak memory", "",
          f"Fashion-MNIST as {n} PNG files (ImageFolder, read as RGB), resized to each size; "
          f"in a fresh process per row: `load_data` then a channel scan of a CNN (width 0.25; "
          f"ratios 0, 0.5; 500 validation images, 256 recalibration images). Peak RSS of the "
          f"process (`getrusage`; the DataLoader workers are children, listed apart). This "
          f"machine has {ram:.1f} GiB of RAM.", "",
          "| size | path | decoded data set (GiB) | load (s) | load + scan (s) | "
          "peak RSS (MiB) | DataLoader workers' peak (MiB) |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        md.append(f"| {r['size']} | {'streamed' if r['stream'] else 'in memory'} | "
                  f"{r['decoded_gib']:.2f} | {r['load_s']:.0f} | {r['total_s']:.0f} | "
                  f"{r['peak_rss_mib']:.0f} | {r['children_peak_rss_mib']:.0f} |")
    md += ["", f"At {args.huge} px the decoded images would take "
               f"{rows[-1]['decoded_gib']:.1f} GiB, more than the machine's {ram:.1f} GiB: the "
               f"in-memory path cannot hold them and is not run; the streamed path scans at the "
               f"peak RSS above. Load time of the streamed path is the normalisation-statistics "
               f"pass over the first 20,000 training images.", "",
           "What sets the streamed path's peak is the batch, not the data set: at 384 px one "
           "evaluation batch of 500 images is 0.9 GB of float input before the network's "
           "activations, the same for 7,000 or 7 million images. The in-memory path's peak is "
           "several times the decoded size (the images are stacked from a list, split, and "
           "hashed for the cache key).", "",
           f"Command: `.venv/bin/python bench/stream_rss.py --sizes {args.sizes} "
           f"--huge {args.huge}`"]
    write("stream_rss", {"rows": rows, "ram_gib": ram, "images": n}, "\n".join(md))


if __name__ == "__main__":
    main()
