"""Shared helpers of the benchmark scripts: machine description and result files."""

from __future__ import annotations

import json
import os
import platform
import subprocess
from pathlib import Path

import torch

OUT = Path(__file__).resolve().parent.parent / "reports" / "benchmarks"


def machine() -> dict:
    cpu = ""
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {"cpu": cpu or platform.processor(), "cores": os.cpu_count(),
            "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
            "commit": subprocess.run(["git", "rev-parse", "--short", "HEAD"],
                                     capture_output=True, text=True).stdout.strip()}


def write(name: str, result: dict, markdown: str) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    result = {"machine": machine(), **result}
    (OUT / f"{name}.json").write_text(json.dumps(result, indent=2, default=float))
    (OUT / f"{name}.md").write_text(markdown.rstrip() + "\n\nMachine: "
                                    + json.dumps(result["machine"]) + "\n")
    print(markdown)
