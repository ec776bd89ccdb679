"""Writes and workflows for training: runs (start, execute), model versions, activation."""

from training.services.activation import model_version_apply_policy
from training.services.retrain import training_run_start_if_due
from training.services.runs import (
    training_run_create,
    training_run_execute,
    training_run_start,
)
from training.services.versions import (
    model_version_create_from_outcome,
    model_version_reexport,
    model_version_reexport_start,
)

__all__ = [
    "model_version_apply_policy",
    "model_version_create_from_outcome",
    "model_version_reexport",
    "model_version_reexport_start",
    "training_run_create",
    "training_run_execute",
    "training_run_start",
    "training_run_start_if_due",
]
