"""autoprune: search per-layer pruning policies for PyTorch CNNs with Optuna."""

from __future__ import annotations

from autoprune.data import DataBundle, DataSpec, load_data
from autoprune.engine.checkpoint import load_checkpoint, save_checkpoint
from autoprune.engine.groups import CouplingGroup, coupling_groups
from autoprune.engine.metrics import (
    count_macs,
    count_nonzero,
    count_params,
    layer_table,
    measure_latency,
    model_size_mib,
)
from autoprune.engine.policy import Policy
from autoprune.engine.prune import FineGrainedPruner, channel_prune, fine_grained_prune
from autoprune.errors import AutopruneError, DataNotFoundError
from autoprune.models import ModelSpec, build_model
from autoprune.search import PruneSearch

# `train` the function stays in autoprune.train: re-exporting it would shadow the module
from autoprune.train import TrainRecipe, evaluate, get_baseline, recalibrate_bn

__version__ = "0.1.0"

__all__ = [
    "AutopruneError",
    "CouplingGroup",
    "FineGrainedPruner",
    "Policy",
    "PruneSearch",
    "channel_prune",
    "coupling_groups",
    "fine_grained_prune",
    "load_checkpoint",
    "save_checkpoint",
    "DataBundle",
    "DataNotFoundError",
    "DataSpec",
    "ModelSpec",
    "TrainRecipe",
    "build_model",
    "count_macs",
    "count_nonzero",
    "count_params",
    "evaluate",
    "get_baseline",
    "layer_table",
    "load_data",
    "measure_latency",
    "model_size_mib",
    "recalibrate_bn",
]
