"""Stand-ins for services other helpers build (not on main yet). DELETE after their merge.

Each is a real, minimal implementation of the agreed signature, installed only when the real
function is missing, so the API tests exercise real inference and real database rows:
- classifier.services.predict_images: a LiteRTClassifier over the active ModelVersion's file.
- classifier.services.classification_job_start: creates the ClassificationJob row (no enqueue).
- classifier.services.product_classify_on_commit: records the product id it was asked for.
- training.services.training_run_start: validates options with HParams, creates the row.
"""

import sys
import types

from django.conf import settings

CLASSIFY_ON_COMMIT_CALLS: list[int] = []


def predict_images(images: list[bytes]):
    from classifier.exceptions import NoActiveModelError
    from classifier.inference import LiteRTClassifier
    from classifier.models import ModelVersion
    from classifier.preprocessing import InputContract

    version = ModelVersion.objects.filter(is_active=True).first()
    if version is None:
        raise NoActiveModelError()
    with version.file.open("rb") as handle:
        content = handle.read()
    classifier = LiteRTClassifier(content, labels=version.labels,
                                  contract=InputContract.from_dict(version.input_contract))
    return classifier.predict_bytes(images, k=settings.CLASSIFIER["TOP_K"])


def classification_job_start(*, products, created_by=None, scope: str = ""):
    from classifier.exceptions import NoActiveModelError
    from classifier.models import ClassificationJob, ModelVersion

    version = ModelVersion.objects.filter(is_active=True).first()
    if version is None:
        raise NoActiveModelError()
    ids = list(products.values_list("pk", flat=True)) if hasattr(products, "values_list") \
        else list(products)
    return ClassificationJob.objects.create(
        model_version=version, total=len(ids), scope=scope, created_by=created_by,
    )


def product_classify_on_commit(*, product) -> None:
    CLASSIFY_ON_COMMIT_CALLS.append(product.pk)


def training_run_start(*, options, source="catalog", source_path="", activation_policy="if_better",
                       created_by=None):
    from training.hparams import HParams
    from training.models import TrainingRun

    HParams.from_dict(options)  # raises InvalidHParamsError for unknown or bad values
    return TrainingRun.objects.create(
        options=options, source=source, source_path=source_path,
        activation_policy=activation_policy, created_by=created_by,
    )


def install(monkeypatch) -> None:
    """Install each stand-in whose real service is not there yet."""
    import classifier.services
    import training

    for name in ("predict_images", "classification_job_start", "product_classify_on_commit"):
        if not hasattr(classifier.services, name):
            monkeypatch.setattr(classifier.services, name, globals()[name], raising=False)
    try:
        import training.services as training_services
    except ImportError:
        training_services = types.ModuleType("training.services")
        monkeypatch.setitem(sys.modules, "training.services", training_services)
        monkeypatch.setattr(training, "services", training_services, raising=False)
    if not hasattr(training_services, "training_run_start"):
        monkeypatch.setattr(training_services, "training_run_start", training_run_start,
                            raising=False)
    CLASSIFY_ON_COMMIT_CALLS.clear()
