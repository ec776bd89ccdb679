"""At most one model version is active, even when activations race."""

import threading

import pytest
from django.core.files.base import ContentFile
from django.db import IntegrityError, connection, connections, transaction

from classifier.models import ModelVersion
from classifier.services import model_version_activate


def _make_version(number: int) -> ModelVersion:
    version = ModelVersion(number=number, labels=["a", "b"], architecture="cnn",
                           input_contract={"height": 8, "width": 8}, checksum="0" * 64)
    version.file.save(f"v{number}.tflite", ContentFile(b"tflite"), save=False)
    version.save()
    return version


@pytest.mark.django_db
def test_database_rejects_a_second_active_version():
    first, second = _make_version(1), _make_version(2)
    ModelVersion.objects.filter(pk=first.pk).update(is_active=True)
    with pytest.raises(IntegrityError), transaction.atomic():
        ModelVersion.objects.filter(pk=second.pk).update(is_active=True)


@pytest.mark.django_db
def test_activate_switches_the_active_version_and_allows_rollback():
    first, second = _make_version(1), _make_version(2)
    model_version_activate(model_version=first)
    model_version_activate(model_version=second)
    assert list(ModelVersion.objects.filter(is_active=True)) == [second]
    model_version_activate(model_version=first)  # rollback
    assert list(ModelVersion.objects.filter(is_active=True)) == [first]


@pytest.mark.django_db(transaction=True)
def test_concurrent_activations_leave_exactly_one_active():
    versions = [_make_version(n) for n in range(1, 9)]
    barrier = threading.Barrier(len(versions))
    errors: list[BaseException] = []

    def activate(version):
        try:
            barrier.wait()
            model_version_activate(model_version=version)
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=activate, args=(v,)) for v in versions]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    active = list(ModelVersion.objects.filter(is_active=True))
    assert len(active) == 1, f"{connection.vendor}: {active}"
    assert active[0] in versions
