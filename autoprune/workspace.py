"""The pipeline's shared state for one study: data, baseline, dense metrics, scans.

Each property is computed once and each expensive stage is cached on disk, so every command
(scan, search, finalize, report, export) re-runs alone and a cache hit costs seconds.
"""

from __future__ import annotations

import dataclasses
from functools import cached_property

import torch

from autoprune.config import StudyConfig
from autoprune.data import DataBundle, load_data
from autoprune.metrics import count_macs, measure_latency, model_size_mib
from autoprune.models import ModelSpec
from autoprune.sensitivity import ScanResult, ScanSettings, sensitivity_scan
from autoprune.train import Baseline, default_device, get_baseline

__all__ = ["Workspace"]


class Workspace:
    """Lazily built data, baseline and scans of a study."""

    def __init__(self, cfg: StudyConfig, *, device: str | None = None,
                 progress: bool = True) -> None:
        self.cfg = cfg
        self.device = torch.device(device) if device else default_device()
        self.progress = progress
        self._scans: dict[str, ScanResult] = {}

    @cached_property
    def data(self) -> DataBundle:
        return load_data(self.cfg.data)

    @cached_property
    def model_spec(self) -> ModelSpec:
        """The configured model, adapted to the data's channels and classes."""
        return dataclasses.replace(self.cfg.model, in_channels=self.data.in_channels,
                                   num_classes=self.data.num_classes)

    @cached_property
    def baseline(self) -> Baseline:
        base = get_baseline(self.model_spec, self.cfg.data, self.cfg.recipe, data=self.data,
                            device=self.device, progress=self.progress)
        base.model.cpu().eval()
        return base

    @property
    def input_size(self) -> tuple[int, int, int]:
        return self.data.input_size

    def example_input(self, batch: int = 1) -> torch.Tensor:
        return torch.zeros(batch, *self.input_size)

    @cached_property
    def dense(self) -> dict:
        """Dense size (MiB), MACs and measured latency, the reference for ratio budgets."""
        m = self.baseline.model
        # every ratio budget divides by this one number: measure it longer than a trial
        lat = self.measure_latency(m, min_run_time=3 * self.cfg.latency.min_run_time)
        return {"size_mib": model_size_mib(m), "macs": count_macs(m, self.input_size),
                "latency_ms": lat.median_ms, "latency_iqr_ms": lat.iqr_ms,
                "val_acc": self.baseline.val_acc, "test_acc": self.baseline.test_acc}

    def measure_latency(self, model: torch.nn.Module, min_run_time: float | None = None):
        lat = self.cfg.latency
        return measure_latency(model, self.input_size, batch_size=lat.batch_size,
                               threads=lat.threads, device=lat.device,
                               min_run_time=min_run_time or lat.min_run_time)

    def scan(self, mode: str, force: bool = False) -> ScanResult:
        """The sensitivity scan (``fine`` or ``channel``) of the baseline, cached on disk."""
        if mode not in self._scans or force:
            settings = ScanSettings(mode=mode, ratios=self.cfg.scan_ratios,
                                    val_limit=self.cfg.scan_val_limit,
                                    recalibrate=self.cfg.proxy.recalibrate,
                                    jobs=self.cfg.scan_jobs)
            self._scans[mode] = sensitivity_scan(self.baseline.model, self.data, settings,
                                                 device=self.device, progress=self.progress,
                                                 force=force)
        return self._scans[mode]
