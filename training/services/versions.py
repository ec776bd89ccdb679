"""Model versions from training outcomes, and re-exports of a kept Keras model."""

from __future__ import annotations

import hashlib
import logging
import tempfile
from pathlib import Path

from django.core.files.base import ContentFile
from django.db import IntegrityError, transaction
from django.db.models import Max

from classifier.models import ModelVersion

logger = logging.getLogger(__name__)

# Two runs finishing together may pick the same next number; the unique index rejects the
# loser, which retries with the next one. More than a few collisions means something else.
NUMBER_ATTEMPTS = 5
# Full int8 needs calibration images, which a stored version does not keep.
REEXPORT_QUANTIZATIONS = ("float32", "float16", "dynamic")


def model_version_create_from_outcome(*, outcome, created_by=None, name: str = "") -> ModelVersion:
    """Store a finished run as the next ModelVersion (inactive; the policy decides activation).

    The ``.tflite`` goes to ``ModelVersion.file`` (the ``models`` storage: Appwrite when
    configured) and the Keras model to ``keras_file`` so it can be re-exported later. The
    report (held-out metrics, calibration, auto-fill curve, quantisation table, gate) becomes
    ``metrics``; the thresholds chosen for the target precision are what classification uses.

    Args:
        outcome: a ``training.pipeline.TrainingOutcome``.
        created_by: the user who asked for the run, if any.
        name: optional human label.

    Returns:
        The saved version.
    """
    version = ModelVersion(
        name=name, labels=list(outcome.labels), input_contract=outcome.contract.to_dict(),
        architecture=outcome.hparams.architecture, quantization=outcome.quantization,
        hyperparameters=outcome.hparams.to_dict(), dataset_stats=outcome.dataset_stats,
        metrics=outcome.report, history=dict(outcome.history),
        auto_fill_thresholds=outcome.thresholds,
        embedding_backbone=outcome.embedding_backbone, embedding_dim=outcome.embedding_dim,
        notes="\n".join(outcome.warnings), created_by=created_by,
    )
    keras_bytes = Path(outcome.keras_model_path).read_bytes()
    return _save_numbered(version, outcome.tflite_bytes, keras_bytes,
                          references=outcome.reference_bytes)


def _save_numbered(version: ModelVersion, tflite_bytes: bytes, keras_bytes: bytes | None,
                   *, references: bytes = b"") -> ModelVersion:
    """Upload the files once, then insert the row with the next free number (retrying races)."""
    checksum = hashlib.sha256(tflite_bytes).hexdigest()
    stem = f"{version.architecture}-{version.quantization}-{checksum[:12]}"
    version.checksum, version.size_bytes = checksum, len(tflite_bytes)
    # Uploads happen outside the row's transaction: a slow Appwrite upload holds no lock.
    version.file.save(f"{stem}.tflite", ContentFile(tflite_bytes), save=False)
    if keras_bytes is not None:
        version.keras_file.save(f"{stem}.keras", ContentFile(keras_bytes), save=False)
    if references:
        version.reference_file.save(f"{stem}.npz", ContentFile(references), save=False)
    version.full_clean(exclude=["number"])
    for attempt in range(NUMBER_ATTEMPTS):
        try:
            with transaction.atomic():
                version.number = (ModelVersion.objects.aggregate(n=Max("number"))["n"] or 0) + 1
                version.save(force_insert=True)
            return version
        except IntegrityError:
            version.pk = None
            logger.info("Model version number %s taken (attempt %s); retrying.",
                        version.number, attempt + 1)
    raise IntegrityError(f"Could not allocate a model version number in {NUMBER_ATTEMPTS} tries.")


def model_version_reexport(*, model_version: ModelVersion, quantization: str) -> ModelVersion:
    """A new version exported from ``model_version``'s kept Keras weights, without retraining.

    Labels, contract, hyperparameters, dataset stats and history are copied. The re-exported
    file is not re-evaluated (the images are not kept), so its metrics are the source's Keras
    metrics and ``metrics["evaluated"]`` says so.

    Raises:
        ExportError: no kept Keras model, or a quantization that needs calibration images.
    """
    from training.export import ExportError, reexport

    if quantization not in REEXPORT_QUANTIZATIONS:
        raise ExportError(f"Re-export supports {', '.join(REEXPORT_QUANTIZATIONS)}; full int8 "
                          "needs calibration images: retrain with quantization int8 instead.")
    if not model_version.keras_file:
        raise ExportError(f"v{model_version.number} has no kept Keras model: retrain to get one.")
    with tempfile.TemporaryDirectory(prefix="reexport-") as tmp:
        path = Path(tmp) / "model.keras"
        with model_version.keras_file.open("rb") as handle:
            keras_bytes = handle.read()
        path.write_bytes(keras_bytes)
        tflite_bytes = reexport(path, quantization)
    # The held-out figures describe the trained model and carry over; the quantisation table
    # (when the source measured this form) says what exporting it costs.
    source = model_version.metrics or {}
    metrics = {k: v for k, v in source.items() if not k.startswith("tflite_")}
    metrics["reexported_from"] = model_version.number
    hparams = {**model_version.hyperparameters, "quantization": quantization}
    version = ModelVersion(
        name=model_version.name, labels=model_version.labels,
        input_contract=model_version.input_contract, architecture=model_version.architecture,
        quantization=quantization, hyperparameters=hparams,
        dataset_stats=model_version.dataset_stats, metrics=metrics,
        history=model_version.history,
        auto_fill_thresholds=model_version.auto_fill_thresholds,
        embedding_backbone=model_version.embedding_backbone,
        embedding_dim=model_version.embedding_dim,
        notes=f"Re-exported from v{model_version.number} as {quantization} (no retraining).",
    )
    references = b""
    if model_version.reference_file:
        with model_version.reference_file.open("rb") as handle:
            references = handle.read()
    return _save_numbered(version, tflite_bytes, keras_bytes, references=references)


def model_version_reexport_start(*, model_version: ModelVersion, quantization: str) -> None:
    """Enqueue a re-export on the training cluster (it imports TensorFlow: not in a web process)."""
    from django_q.tasks import async_task

    pk = model_version.pk
    transaction.on_commit(lambda: async_task("training.tasks.model_version_reexport", pk,
                                             quantization, cluster="training",
                                             task_name=f"reexport-{pk}-{quantization}"))
