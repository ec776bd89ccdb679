"""A real qcluster process runs a project task end to end on the configured broker."""

import pytest
from django.conf import settings
from django.core.files.base import ContentFile
from django_q.models import Success
from django_q.tasks import async_task

from catalog.models import Product


def _broker_name() -> str:
    return "redis" if "redis" in settings.Q_CLUSTER else "orm"


@pytest.mark.slow
def test_qcluster_runs_project_task_and_records_result(qcluster):
    product = Product.objects.create(sku="SKU-1", title="Mug")
    product.image.save("mug.jpg", ContentFile(b"not inspected by this task"))
    product.image.storage.delete(product.image.name)  # gone from storage, as after a bad sync

    cluster = qcluster()
    task_id = async_task("catalog.tasks.product_image_check", product.pk)

    cluster.wait_for(lambda: Product.objects.get(pk=product.pk).image_missing,
                     f"the {_broker_name()} broker's worker to mark the image missing")
    cluster.wait_for(lambda: Success.objects.filter(id=task_id).exists(), "the saved result")
    assert Success.objects.get(id=task_id).result is False


@pytest.mark.slow
def test_qcluster_leaves_present_image_alone(qcluster):
    product = Product.objects.create(sku="SKU-2", title="Plate")
    product.image.save("plate.jpg", ContentFile(b"bytes"))

    cluster = qcluster()
    task_id = async_task("catalog.tasks.product_image_check", product.pk)

    cluster.wait_for(lambda: Success.objects.filter(id=task_id).exists(), "the saved result")
    assert Success.objects.get(id=task_id).result is True
    assert Product.objects.get(pk=product.pk).image_missing is False
