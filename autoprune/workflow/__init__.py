"""What a user runs: finalize, export, report, benchmarks and the command line."""

from __future__ import annotations
