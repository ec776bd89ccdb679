"""Training runs: validate and enqueue a request, then execute it with progress in the row."""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from training.exceptions import DatasetReadError, InvalidHParamsError, TrainingError
from training.hparams import HParams
from training.models import ActivationPolicy, TrainingRun, TrainingSource, TrainingStatus
from training.services.progress import RunRecorder

logger = logging.getLogger(__name__)

TRAINING_TASK = "training.tasks.training_run_execute"


# Run options that are not hyperparameters (they label the resulting model version).
RUN_OPTION_KEYS = ("name",)


def _hparams(options: dict[str, Any]) -> HParams:
    """HParams from the run's options (validated: unknown keys and bad values raise).

    The auto-fill target precision is a shop-wide setting unless a run asks for its own.
    """
    values = {k: v for k, v in options.items() if k not in RUN_OPTION_KEYS}
    values.setdefault("target_precision", settings.CLASSIFIER["TARGET_PRECISION"])
    return HParams.from_dict(values)


def training_source_resolve(source_path: str, *, roots: Sequence[Path]) -> Path:
    """The training folder (or zip) ``source_path`` names, resolved inside one of ``roots``.

    A relative path is looked up in each root in turn; ``..`` and symlinks are resolved before
    the check. A path outside every root is refused with the same message whether or not it
    exists, so the API cannot be used to probe the server's files.

    Raises:
        DatasetReadError: outside the roots, or not found inside them.
    """
    resolved_roots = [Path(root).resolve() for root in roots]
    given = Path(source_path)
    candidates = [given] if given.is_absolute() else [root / given for root in resolved_roots]
    inside = [path for path in (c.resolve() for c in candidates)
              if any(path.is_relative_to(root) for root in resolved_roots)]
    folders = ", ".join(str(root) for root in resolved_roots) or "(none configured)"
    if not inside:
        raise DatasetReadError(
            f"The training folder must be inside a training data folder ({folders}). Put the "
            "images (<folder>/<category>/<image>, or a zip of it) there and give its path, or "
            "add its folder to TRAINING_DATA_ROOTS.")
    found = next((path for path in inside if path.exists()), None)
    if found is None:
        raise DatasetReadError(f"{source_path} was not found in the training data folders "
                               f"({folders}): give a folder laid out as "
                               "<folder>/<category>/<image>, or a zip of it.")
    return found


def training_run_create(*, options: dict, source: str = TrainingSource.CATALOG,
                        source_path: str = "", activation_policy: str = ActivationPolicy.IF_BETTER,
                        created_by=None, source_roots: Sequence[Path] | None = None,
                        trigger: str = "") -> TrainingRun:
    """Validate a training request and record it as a queued run (nothing is enqueued).

    Options are turned into ``HParams`` here so a typo or out-of-range value fails at once,
    in the form or command that asked, not minutes later in a worker. A folder source must lie
    inside ``source_roots`` (default ``settings.TRAINING_DATA_ROOTS``: what the admin and the
    API may train from); the run keeps its resolved path.

    Raises:
        InvalidHParamsError: bad options, source or policy; the message says the fix.
        DatasetReadError: the folder is outside the allowed roots or missing.
        WeightsUnavailableError: the pretrained weights asked for cannot be had.
    """
    from training.features import check_weights

    hparams = _hparams(options)
    check_weights(hparams, weights_dir=settings.VAR_DIR / "weights")
    if source not in TrainingSource.values:
        raise InvalidHParamsError(f"Unknown source {source!r}: use one of {TrainingSource.values}.")
    if activation_policy not in ActivationPolicy.values:
        raise InvalidHParamsError(f"Unknown activation policy {activation_policy!r}: use one of "
                                  f"{ActivationPolicy.values}.")
    if source == TrainingSource.FOLDER:
        roots = settings.TRAINING_DATA_ROOTS if source_roots is None else source_roots
        source_path = str(training_source_resolve(source_path, roots=roots))
    extra = {k: options[k] for k in RUN_OPTION_KEYS if options.get(k)}
    run = TrainingRun(options={**hparams.to_dict(), **extra}, source=source,
                      source_path=source_path, activation_policy=activation_policy,
                      created_by=created_by, trigger=trigger[:200])
    run.full_clean()
    run.save()
    return run


def training_run_start(*, options: dict, source: str = TrainingSource.CATALOG,
                       source_path: str = "", activation_policy: str = ActivationPolicy.IF_BETTER,
                       created_by=None, trigger: str = "") -> TrainingRun:
    """Create a queued run and enqueue it on the ``training`` cluster once the row is committed.

    The training cluster has ``max_attempts=1`` and ``training_run_execute`` refuses a run that
    is not queued, so neither a retry nor a redelivered message can train a duplicate model.
    The admin and the API start runs here, so a folder source must be in TRAINING_DATA_ROOTS.
    """
    from django_q.tasks import async_task

    with transaction.atomic():
        run = training_run_create(options=options, source=source, source_path=source_path,
                                  activation_policy=activation_policy, created_by=created_by,
                                  trigger=trigger)

        def enqueue() -> None:
            task_id = async_task(TRAINING_TASK, run.pk, cluster="training",
                                 task_name=f"training-run-{run.pk}")
            TrainingRun.objects.filter(pk=run.pk).update(task_id=task_id or "")

        transaction.on_commit(enqueue)
    return run


def training_run_execute(*, run_id: int, progress=None, log=None) -> TrainingRun:
    """Train the run's model, store it as a new version and apply the activation policy.

    Only a QUEUED run starts (the status flips to RUNNING in one UPDATE, so two deliveries
    cannot both win). Any error marks the run FAILED with its message and creates no version.

    Args:
        run_id: the TrainingRun's primary key.
        progress: optional extra per-batch callback (the command's progress bar).
        log: optional extra line sink (the command's console).

    Returns:
        The run, reloaded: SUCCEEDED with ``model_version``, FAILED with ``error``, or untouched
        when it was not queued.
    """
    claimed = TrainingRun.objects.filter(pk=run_id, status=TrainingStatus.QUEUED).update(
        status=TrainingStatus.RUNNING, started_at=timezone.now())
    run = TrainingRun.objects.get(pk=run_id)
    if not claimed:
        logger.warning("Training run %s is %s, not queued: not running it again.", run_id,
                       run.status)
        return run
    recorder = RunRecorder(run, progress=progress, log=log)
    try:
        _train_and_store(run, recorder)
    except Exception as exc:  # noqa: BLE001 - any failure must end as a FAILED run, not RUNNING
        known = isinstance(exc, TrainingError)
        logger.log(logging.WARNING if known else logging.ERROR, "Training run %s failed: %s",
                   run_id, exc, exc_info=not known)
        message = str(exc) if known else f"{type(exc).__name__}: {exc}"
        recorder.line(f"FAILED: {message}")
        recorder.finish(status=TrainingStatus.FAILED, error=message)
    run.refresh_from_db()
    return run


def _train_and_store(run: TrainingRun, recorder: RunRecorder) -> None:
    from training.pipeline import run_training
    from training.services.activation import model_version_apply_policy
    from training.services.versions import model_version_create_from_outcome

    hparams = _hparams(run.options)
    items = _items(run, hparams)
    with tempfile.TemporaryDirectory(prefix=f"run-{run.pk}-", dir=_workdir_root()) as workdir:
        # Embeddings and converted backbone weights outlive the run (var/), so a retrain only
        # embeds images it has not seen.
        outcome = run_training(items, hparams, workdir=workdir, progress=recorder.progress,
                               log=recorder.line, cache_root=settings.VAR_DIR)
        version = model_version_create_from_outcome(outcome=outcome, created_by=run.created_by,
                                                    name=run.options.get("name", ""))
        TrainingRun.objects.filter(pk=run.pk).update(model_version=version)
        activated = model_version_apply_policy(
            model_version=version, outcome=outcome, policy=run.activation_policy,
            log=recorder.line)
    recorder.line(f"Saved model version v{version.number}"
                  + (" and activated it." if activated else " (not activated)."))
    recorder.finish(status=TrainingStatus.SUCCEEDED, activated=activated)


def _items(run: TrainingRun, hparams: HParams) -> list:
    from training.dataset import image_folder_items
    from training.features import expected_backbone_id
    from training.selectors import catalog_training_items

    if run.source == TrainingSource.FOLDER:
        return image_folder_items(run.source_path)
    # Products whose classification stored an embedding of this run's backbone are not read.
    return catalog_training_items(image_size=hparams.image_size,
                                  embedding_backbone=expected_backbone_id(hparams))


def _workdir_root() -> Path:
    """Run folders live under var/ (on disk): /tmp may be RAM, which the memmap cache avoids."""
    root = Path(getattr(settings, "TRAINING_WORKDIR", settings.VAR_DIR / "training"))
    root.mkdir(parents=True, exist_ok=True)
    return root
