"""Shared helpers of the benchmark scripts: machine description and result files."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "reports" / "benchmarks"
sys.path.insert(0, str(ROOT))  # the benchmarks share helpers with the tests


def machine() -> dict:
    from autoprune.workflow.bench.render import machine as describe

    return {**describe(), "commit": subprocess.run(["git", "rev-parse", "--short", "HEAD"],
                                                   capture_output=True, text=True).stdout.strip()}


def mean_std(values) -> str:
    """``"mean ± std"`` of a few seeds' accuracies, as the benchmark reports print them."""
    return f"{statistics.fmean(values):.2f} ± {statistics.stdev(values):.2f}"


def write(name: str, result: dict, markdown: str) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    result = {"machine": machine(), **result}
    (OUT / f"{name}.json").write_text(json.dumps(result, indent=2, default=float))
    (OUT / f"{name}.md").write_text(markdown.rstrip() + "\n\nMachine: "
                                    + json.dumps(result["machine"]) + "\n")
    from autoprune.workflow.bench.render import write_summary

    write_summary(OUT)  # the index of reports/benchmarks lists the new file
    print(markdown)
