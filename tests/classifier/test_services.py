"""Job start, review services, synchronous prediction, the model cache and auto-classification."""

from pathlib import Path

import pytest
from django.core.files.base import ContentFile
from django.utils import timezone

from catalog.models import CategorySource, Product, ReviewStatus
from classifier import runtime
from classifier.exceptions import (
    ImageEmptyError,
    ModelLoadError,
    NoActiveModelError,
    NoPredictionError,
)
from classifier.inference import Prediction
from classifier.models import ClassificationJob, JobStatus, ModelVersion, PredictionRecord
from classifier.services import (
    classification_chunk_run,
    classification_job_note,
    classification_job_start,
    model_version_activate,
    predict_images,
    product_accept_prediction,
    products_send_to_review,
)
from tests.classifier.conftest import BLUE, RED
from tests.support.tiny_model import solid_color_jpeg


def test_job_start_counts_products_and_chunks(settings, model_version, make_product,
                                              no_auto_classify):
    settings.CLASSIFIER = {**settings.CLASSIFIER, "CHUNK_SIZE": 2}
    products = [make_product(solid_color_jpeg(RED)) for _ in range(5)]

    job = classification_job_start(products=Product.objects.all(), scope="test")

    assert (job.total, job.chunk_count, job.status) == (5, 3, JobStatus.QUEUED)
    assert job.model_version == model_version
    assert classification_job_start(products=[products[0].pk, 999_999]).total == 1


def test_job_start_enqueues_chunks_on_commit(settings, model_version, make_product,
                                             django_capture_on_commit_callbacks,
                                             no_auto_classify):
    from django_q.brokers import get_broker

    settings.CLASSIFIER = {**settings.CLASSIFIER, "CHUNK_SIZE": 2}
    broker = get_broker()
    broker.purge_queue()
    [make_product(solid_color_jpeg(RED)) for _ in range(3)]
    with django_capture_on_commit_callbacks(execute=True):
        classification_job_start(products=Product.objects.all())
        assert broker.queue_size() == 0  # nothing before the commit
    assert broker.queue_size() == 2
    broker.purge_queue()


def test_empty_job_finishes_at_once(model_version):
    job = classification_job_start(products=[])
    assert job.status == JobStatus.SUCCEEDED and job.finished_at is not None


def test_job_start_without_active_model_says_how_to_fix(db, make_product):
    with pytest.raises(NoActiveModelError, match="activate"):
        classification_job_start(products=[make_product().pk])


def test_a_chunk_that_failed_as_a_whole_notes_why_and_leaves_the_job_to_the_resume(
        model_version, make_product):
    job = classification_job_start(products=[make_product().pk], enqueue=False)
    classification_job_note(job_id=job.pk, error="Task exceeded maximum timeout value (600).")
    job.refresh_from_db()
    assert job.status == JobStatus.QUEUED and job.finished_at is None
    assert "maximum timeout" in job.error


def test_without_an_active_model_a_chunk_fails_each_product_with_how_to_fix(
        model_version, make_product):
    products = [make_product(solid_color_jpeg(RED)), make_product(solid_color_jpeg(BLUE))]
    job = classification_job_start(products=[p.pk for p in products], enqueue=False)
    ModelVersion.objects.update(is_active=False)
    classification_chunk_run(job_id=job.pk, product_ids=[p.pk for p in products])
    job.refresh_from_db()
    assert (job.status, job.failed_count) == (JobStatus.FAILED, 2)
    errors = set(PredictionRecord.objects.filter(job=job).values_list("error", flat=True))
    assert errors == {NoActiveModelError.default_message}


def test_predict_images_returns_prediction_or_error_per_image(model_version):
    results = predict_images([solid_color_jpeg(BLUE), b"", solid_color_jpeg(RED)])
    assert isinstance(results[0], Prediction) and results[0].label == "blue"
    assert isinstance(results[1], ImageEmptyError)
    assert results[2].label == "red"


def test_predict_images_without_model_raises(db):
    with pytest.raises(NoActiveModelError):
        predict_images([solid_color_jpeg(RED)])


def test_model_cache_notices_activation_of_another_version(make_model_version, categories):
    first = make_model_version()
    assert predict_images([solid_color_jpeg(RED)])[0].label == "red"
    loaded_first = runtime.get_active_model()

    second = make_model_version(labels=("crimson", "lime", "navy"))
    assert predict_images([solid_color_jpeg(RED)])[0].label == "crimson"
    assert runtime.get_active_model().version_id == second.pk

    model_version_activate(model_version=first)  # rollback
    assert predict_images([solid_color_jpeg(RED)])[0].label == "red"
    assert loaded_first.version_id == first.pk


def test_model_file_that_fails_its_checksum_is_refused(make_model_version, categories):
    version = make_model_version()
    version.file.storage.delete(version.file.name)
    version.file.storage.save(version.file.name, ContentFile(b"tampered"))
    with pytest.raises(ModelLoadError, match="checksum"):
        predict_images([solid_color_jpeg(RED)])


def test_accept_prediction_makes_it_a_persons_category(model_version, make_product, categories):
    product = make_product(predicted_category=categories["blue"], prediction_confidence=0.4,
                           review_status=ReviewStatus.NEEDS_REVIEW)
    product = product_accept_prediction(product=product)
    product.refresh_from_db()
    assert product.category == categories["blue"]
    assert product.category_source == CategorySource.PERSON
    assert product.review_status == ReviewStatus.CLASSIFIED


def test_accept_without_prediction_says_classify_first(make_product):
    with pytest.raises(NoPredictionError, match="Classify it first"):
        product_accept_prediction(product=make_product())


def test_send_to_review_marks_products(make_product):
    a, b = make_product(), make_product(review_status=ReviewStatus.CLASSIFIED)
    assert products_send_to_review(products=[a, b.pk]) == 2
    assert set(Product.objects.values_list("review_status", flat=True)) == {"needs_review"}


def test_new_image_is_classified_automatically_after_commit(model_version, make_product,
                                                            django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        product = make_product(solid_color_jpeg(RED))
    assert len(callbacks) >= 1
    job = ClassificationJob.objects.get()
    assert job.total == 1 and job.scope.startswith("auto:")

    with django_capture_on_commit_callbacks(execute=True):
        product.title = "Renamed"
        product.save()
    assert ClassificationJob.objects.count() == 1  # the image did not change

    with django_capture_on_commit_callbacks(execute=True):
        product.image.save("other.jpg", ContentFile(solid_color_jpeg(BLUE)))
    assert ClassificationJob.objects.count() == 2


def test_auto_classification_has_one_entry_point_and_each_image_change_is_queued_once(
        model_version, make_product, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        product = make_product(solid_color_jpeg(RED))
        product.save()  # saved again in the same transaction: nothing new
    assert ClassificationJob.objects.count() == 1

    with django_capture_on_commit_callbacks(execute=True):
        product.title = "Renamed"
        product.save()  # not the image
        product.image_updated_at = timezone.now()  # new bytes under the same name
        product.save(update_fields=["image_updated_at"])
    assert ClassificationJob.objects.count() == 2

    with django_capture_on_commit_callbacks(execute=True):
        Product.objects.filter(pk=product.pk).update(image_missing=True)
        product.refresh_from_db()
        product.image_updated_at = timezone.now()
        product.save()  # the image is gone: nothing to classify
    assert ClassificationJob.objects.count() == 2


def test_auto_classify_setting_off_enqueues_nothing(model_version, make_product,
                                                    django_capture_on_commit_callbacks,
                                                    no_auto_classify):
    with django_capture_on_commit_callbacks(execute=True):
        make_product(solid_color_jpeg(RED))
    assert not ClassificationJob.objects.exists()


def test_auto_classify_without_model_skips_quietly(make_product,
                                                   django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        make_product(solid_color_jpeg(RED))
    assert not ClassificationJob.objects.exists()


def test_many_new_images_without_model_log_one_line_not_one_per_product(
        make_product, django_capture_on_commit_callbacks, caplog):
    from classifier.services import predict

    predict._said_no_model.clear()  # other tests in this process may have said it already
    with caplog.at_level("DEBUG", logger="classifier.services.predict"):
        for _ in range(3):
            with django_capture_on_commit_callbacks(execute=True):
                make_product(solid_color_jpeg(RED))

    records = [r for r in caplog.records if r.name == "classifier.services.predict"]
    assert [r.levelname for r in records] == ["INFO", "DEBUG", "DEBUG"]
    assert "train and activate a model" in records[0].getMessage()


def test_fetch_path_is_documented_fallback_when_storage_reader_absent():
    from classifier import fetch

    assert Path(fetch.__file__).name == "fetch.py"
    assert callable(fetch.fetch_image_bytes)


def test_activating_a_version_reclassifies_what_the_classifier_decided_never_a_persons_choice(
        make_model_version, categories, make_product, no_auto_classify,
        django_capture_on_commit_callbacks):
    make_model_version()
    image = solid_color_jpeg(RED)
    in_review = make_product(image, review_status=ReviewStatus.NEEDS_REVIEW)
    filed = make_product(image, category=categories["red"],
                         category_source=CategorySource.CLASSIFIER,
                         review_status=ReviewStatus.CLASSIFIED)
    make_product(image, category=categories["blue"], category_source=CategorySource.PERSON,
                 review_status=ReviewStatus.NEEDS_REVIEW)
    make_product(image)  # never classified: the "classify unclassified" action's business
    second = make_model_version(activate=False)

    with django_capture_on_commit_callbacks(execute=True):
        model_version_activate(model_version=second)

    job = ClassificationJob.objects.get(scope__startswith="re-classify")
    assert job.model_version == second
    assert sorted(job.product_ids) == sorted([in_review.pk, filed.pk])


def test_activation_with_nothing_to_reclassify_creates_no_job(
        make_model_version, categories, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        make_model_version()
    assert not ClassificationJob.objects.exists()
