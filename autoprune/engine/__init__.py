"""What a policy does to a model: measurement, coupling groups, pruning, cost models, the policy
format and the checkpoint format. Torch and Torch-Pruning only; no Optuna, no pandas."""

from __future__ import annotations
