"""The pipeline's shared state for one study: data, baseline, dense metrics, scans.

Each property is computed once and each expensive stage is cached on disk, so every command
(scan, search, finalize, report, export) re-runs alone and a cache hit costs seconds.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from functools import cached_property

import torch

from autoprune.data import DataBundle, load_data
from autoprune.engine.checkpoint import read_state_dict
from autoprune.engine.metrics import (
    LatencyResult,
    SpeedupResult,
    alternate,
    count_macs,
    latency_timer,
    measure_latency,
    model_size_mib,
)
from autoprune.models import ModelSpec, build_model
from autoprune.search.config import StudyConfig
from autoprune.search.record import DenseReference
from autoprune.search.sensitivity import ScanResult, ScanSettings, scan_path, sensitivity_scan
from autoprune.train import Baseline, baseline_path, default_device, get_baseline

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
        weights = self.cfg.weights or None
        base = get_baseline(self.model_spec, self.cfg.data, self.cfg.recipe, data=self.data,
                            device=self.device, progress=self.progress, weights=weights,
                            state=read_state_dict(weights) if weights else None)
        base.model.cpu().eval()
        return base

    @property
    def input_size(self) -> tuple[int, int, int]:
        return self.data.input_size

    def example_input(self, batch: int = 1) -> torch.Tensor:
        return torch.zeros(batch, *self.input_size)

    def structure(self) -> torch.nn.Module:
        """A freshly initialised model of the study's architecture: for everything that
        depends on the structure only (cost models, latency), before any training."""
        return build_model(self.model_spec).eval()

    def measure_dense(self) -> DenseReference:
        """Dense size (MiB), MACs, measured latency and accuracies: what ratio budgets divide
        by. The latency is measured three times longer than a trial's."""
        m = self.baseline.model
        lat = self.measure_latency(m, min_run_time=3 * self.cfg.latency.min_run_time)
        return DenseReference(model_size_mib(m), count_macs(m, self.input_size), lat.median_ms,
                              lat.iqr_ms, self.baseline.val_acc, self.baseline.test_acc)

    def measure_latency(self, model: torch.nn.Module,
                        min_run_time: float | None = None) -> LatencyResult:
        """Latency with the study's ``[latency]`` settings (device, batch size, threads)."""
        lat = self.cfg.latency
        return measure_latency(model, self.input_size, batch_size=lat.batch_size,
                               threads=lat.threads, device=lat.device,
                               min_run_time=min_run_time or lat.min_run_time,
                               backend=lat.backend)

    def measure_speedup(self, model: torch.nn.Module, repeats: int,
                        reference: Callable[[float], LatencyResult] | None = None
                        ) -> SpeedupResult:
        """``model`` timed alternately with the dense baseline (or ``reference``, a timer
        from :meth:`timer`), ``repeats`` times each, with the study's ``[latency]`` settings:
        the ratio to trust on a shared machine."""
        reference = self._dense_timer if reference is None else reference
        return alternate(reference, self.timer(model), repeats=repeats,
                         min_run_time=self.cfg.latency.min_run_time)

    @cached_property
    def _dense_timer(self):
        """The dense baseline prepared for timing (for ONNX Runtime: exported) once."""
        return self.timer(self.baseline.model)

    def timer(self, model: torch.nn.Module, batch_size: int | None = None):
        """``model`` prepared for timing with the study's ``[latency]`` settings (another
        batch size if given): see :func:`autoprune.engine.metrics.latency_timer`."""
        lat = self.cfg.latency
        return latency_timer(model, self.input_size, batch_size=batch_size or lat.batch_size,
                             threads=lat.threads, device=lat.device, backend=lat.backend)

    @property
    def baseline_path(self):
        """Where the baseline is cached (trained or downloaded there)."""
        return baseline_path(self.model_spec, self.data, self.cfg.recipe,
                             self.cfg.weights or None)

    def scan_settings(self, mode: str) -> ScanSettings:
        return ScanSettings(mode=mode, ratios=self.cfg.scan_ratios,
                            val_limit=self.cfg.scan_val_limit,
                            recalibrate=self.cfg.proxy.recalibrate, jobs=self.cfg.scan_jobs)

    def scan_path(self, mode: str):
        """Where the ``mode`` scan of the baseline is cached."""
        return scan_path(self.baseline.model, self.data, self.scan_settings(mode))

    def scan(self, mode: str, force: bool = False) -> ScanResult:
        """The sensitivity scan (``fine`` or ``channel``) of the baseline, cached on disk."""
        if mode not in self._scans or force:
            settings = self.scan_settings(mode)
            self._scans[mode] = sensitivity_scan(self.baseline.model, self.data, settings,
                                                 device=self.device, progress=self.progress,
                                                 force=force)
        return self._scans[mode]
