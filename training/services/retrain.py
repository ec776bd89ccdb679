"""Automatic retraining: start a run when people have labelled enough products since the last."""

from __future__ import annotations

import logging
from datetime import date

from django.db import transaction

from training.models import ActivationPolicy, TrainingRun
from training.selectors import retrain_status
from training.services.runs import training_run_start

logger = logging.getLogger(__name__)


@transaction.atomic
def training_run_start_if_due(*, options: dict | None = None) -> tuple[TrainingRun | None, str]:
    """Start a catalog training run if the retrain policy says one is due.

    Due means ``CLASSIFIER_RETRAIN_AFTER_LABELS`` (> 0) person labels since the active version
    and the last catalog run, and no run queued or running (see ``RetrainStatus``). The run
    trains with the default options (or ``options``, e.g. from the schedule's kwargs) and the
    ``if_better`` policy, so the quality gate and the comparison with the active version decide
    activation, never the schedule. Products classified by a model of the same backbone train
    from their stored embeddings without reading their images.

    Called by the hourly schedule on the training cluster; the scheduler enqueues each tick once
    (it locks the schedule row), so two checks do not race to start two runs.

    Returns:
        ``(the run started or None, a sentence saying why)``: kept in the task's result.

    Raises:
        InvalidHParamsError, WeightsUnavailableError: ``options`` or the weights are unusable.
    """
    status = retrain_status()
    if not status.due:
        return None, status.sentence()
    trigger = f"schedule: {status.new_labels} new labels since {status.since_what}"
    run = training_run_start(
        options={"name": f"auto {date.today():%Y-%m-%d}", **(options or {})},
        activation_policy=ActivationPolicy.IF_BETTER, trigger=trigger)
    logger.info("Automatic retrain: training run %s queued (%s).", run.pk, trigger)
    return run, f"Started training run #{run.pk} ({trigger})."
