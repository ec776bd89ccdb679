"""django-q2 tasks for the ``training`` cluster: thin wrappers over training.services."""

from training import services


def training_run_execute(run_id: int) -> str:
    """Execute a queued training run; returns its final status (kept in django-q's results)."""
    return services.training_run_execute(run_id=run_id).status


def training_run_start_if_due(options: dict | None = None) -> str:
    """The hourly retrain check; returns what it decided (kept in django-q's results)."""
    return services.training_run_start_if_due(options=options)[1]


def model_version_reexport(model_version_id: int, quantization: str) -> int:
    """Re-export a version's kept Keras model; returns the new version's number."""
    from classifier.models import ModelVersion

    source = ModelVersion.objects.get(pk=model_version_id)
    return services.model_version_reexport(model_version=source, quantization=quantization).number
