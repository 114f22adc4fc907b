"""Planning a study before any training: every setting that the untrained structure and the
data can check is checked here, and a latency budget is calibrated on the study's device (once
per study: the result is kept in its record)."""

from __future__ import annotations

from autoprune.engine.metrics import count_macs, count_params
from autoprune.errors import ConfigError
from autoprune.models import check_input_size
from autoprune.search.budget import Limits
from autoprune.search.calibration import calibrate_latency
from autoprune.search.config import StudyConfig
from autoprune.search.record import StudyRecord
from autoprune.search.space import SearchSpace, make_space
from autoprune.search.workspace import Workspace

__all__ = ["plan_space", "CALIBRATION_REPEATS"]

#: Runs of each uniform cut, alternately with the dense structure, in the latency calibration.
CALIBRATION_REPEATS = 3


def plan_space(cfg: StudyConfig, ws: Workspace, record: StudyRecord | None = None
               ) -> SearchSpace:
    """The search space on the untrained structure: the validation split leaves images for
    confirmation, the model takes the data's inputs, the budget and the sweep's floor are
    feasible, and a latency budget has become a structural-MACs cap."""
    model, x = ws.structure(), ws.example_input()
    n_val = len(ws.data.val)
    p = cfg.proxy
    if p.val_limit > n_val:
        raise ConfigError(f"proxy.val_limit={p.val_limit} asks for more validation images than "
                          f"the split holds ({n_val}, data.val_size).")
    confirming = p.confirm_seeds and p.confirm_val
    if confirming and p.val_limit >= n_val:
        raise ConfigError(f"proxy.val_limit={p.val_limit} leaves no validation "
                          f"images for confirmation (the split has {n_val}).")
    if confirming and p.val_limit + p.confirm_val > n_val:
        raise ConfigError(f"proxy.confirm_val={p.confirm_val} asks for more validation images "
                          f"than the {n_val - p.val_limit} the split ({n_val}, data.val_size) "
                          f"holds after the search's proxy.val_limit={p.val_limit}.")
    check_input_size(model, ws.model_spec, ws.input_size)
    params, macs = count_params(model), count_macs(model, ws.input_size)
    space = make_space(model, x, cfg.search, Limits.from_budget(cfg.budget, params, macs),
                       model_dict=ws.model_spec.to_dict())
    space.check_feasible()
    if cfg.search.sweep:
        space.check_feasible(cfg.search.floor)
    cap = None
    if record is not None and record.latency_cap is not None:
        cap = record.latency_macs  # measured once per study
    elif "latency" in cfg.budget.axes():
        dense_timer = ws.timer(model)  # the untrained structure: latency ignores weights
        calibration = calibrate_latency(
            model, x, space.channel_cost, cfg.budget, min_keep=cfg.search.min_density,
            settings=cfg.latency, snap=space.snap,
            speedup=lambda m: ws.measure_speedup(m, CALIBRATION_REPEATS, reference=dense_timer))
        cap = calibration["structural_macs"]
        if record is not None:
            record.set_latency_cap(calibration)
    space.limits = Limits.from_budget(cfg.budget, params, macs, latency_macs=cap)
    return space
