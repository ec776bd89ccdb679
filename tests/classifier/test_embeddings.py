"""Image embeddings stored by classification (tiny real two-output model), and their backfill."""

import numpy as np
import pytest
from django.core.files.base import ContentFile
from django.core.management import CommandError, call_command

from catalog.models import CategorySource, Product
from classifier.inference import Prediction
from classifier.models import ProductEmbedding
from classifier.services import classification_job_run_sync, product_embeddings_store
from classifier.services.embeddings import EMBEDDING_CODEC, backbone_tag
from classifier.services.results import ItemResult
from classifier.similarity.encoding import embedding_decode
from tests.classifier.conftest import BLUE, GREEN, RED, TINY_BACKBONE
from tests.support.tiny_model import solid_color_jpeg


def unit(rgb) -> np.ndarray:
    vector = np.asarray(rgb, dtype=np.float32)
    return vector / np.linalg.norm(vector)


def stored(product) -> tuple[ProductEmbedding, np.ndarray]:
    row = ProductEmbedding.objects.get(product=product)
    return row, embedding_decode(row.vector)


def test_classification_stores_each_images_embedding_with_backbone_version_and_image(
        embedding_version, make_product, no_auto_classify):
    products = [make_product(solid_color_jpeg(rgb)) for rgb in (RED, GREEN, BLUE)]

    classification_job_run_sync(products=[p.pk for p in products])

    for product, rgb in zip(products, (RED, GREEN, BLUE)):
        row, vector = stored(product)
        assert (row.backbone, row.dim, row.model_version_id) == (TINY_BACKBONE, 3,
                                                                 embedding_version.pk)
        assert row.image_name == product.image.name
        # The tiny model's embedding is the mean colour: the stored unit vector points its way.
        assert float(vector @ unit(rgb)) > 0.999
        assert len(bytes(row.vector)) == 4 + 2 * 3  # float16 codec: header + 2 bytes/dim
    assert EMBEDDING_CODEC == "f16"


def test_model_without_embedding_output_stores_nothing(model_version, make_product,
                                                       no_auto_classify):
    product = make_product(solid_color_jpeg(RED))
    job = classification_job_run_sync(products=[product.pk])
    assert job.done_count == 1
    assert not ProductEmbedding.objects.exists()


def test_version_without_declared_backbone_is_comparable_only_with_its_own_file(
        make_model_version, categories, make_product, no_auto_classify):
    version = make_model_version(embedding=True, backbone="")
    product = make_product(solid_color_jpeg(RED))
    classification_job_run_sync(products=[product.pk])
    row, _ = stored(product)
    assert row.backbone == f"model:{version.checksum[:16]}"
    assert backbone_tag(backbone="", checksum=version.checksum) == row.backbone


def test_new_image_replaces_the_embedding_in_place(embedding_version, make_product,
                                                   no_auto_classify):
    product = make_product(solid_color_jpeg(RED))
    classification_job_run_sync(products=[product.pk])
    product.image.save("now-blue.jpg", ContentFile(solid_color_jpeg(BLUE)))
    classification_job_run_sync(products=[product.pk])

    row, vector = stored(product)
    assert ProductEmbedding.objects.count() == 1
    assert row.image_name == product.image.name and float(vector @ unit(BLUE)) > 0.999


def test_corrupt_image_fails_alone_and_the_others_are_embedded(embedding_version, make_product,
                                                               no_auto_classify):
    good = make_product(solid_color_jpeg(GREEN))
    bad = make_product(b"\xff\xd8\xff\xe0 not really a jpeg")

    job = classification_job_run_sync(products=[good.pk, bad.pk])

    assert (job.done_count, job.failed_count) == (1, 1)
    assert list(ProductEmbedding.objects.values_list("product_id", flat=True)) == [good.pk]


def test_malformed_vector_and_deleted_product_are_skipped_the_rest_stored(
        embedding_version, make_product, caplog):
    kept, zero, gone = (make_product(solid_color_jpeg(RED)) for _ in range(3))
    results = [ItemResult(product_id=p.pk, prediction=Prediction(
        label="red", confidence=0.9, top_k=[("red", 0.9)], embedding=np.asarray(v, np.float32)))
        for p, v in ((kept, [1, 0, 0]), (zero, [0, 0, 0]), (gone, [0, 1, 0]))]
    products = [kept, zero, gone]
    Product.objects.filter(pk=gone.pk).delete()

    written = product_embeddings_store(results=results, products=products,
                                       model_version_id=embedding_version.pk)

    assert written == 1
    assert list(ProductEmbedding.objects.values_list("product_id", flat=True)) == [kept.pk]
    assert f"Product {zero.pk}: embedding not stored" in caplog.text


# --- backfill_embeddings ---------------------------------------------------------------------

@pytest.fixture
def classified_before_embeddings(make_model_version, categories, make_product, no_auto_classify):
    """Products classified by a model without embeddings, one labelled by a person; then a
    model with embeddings is activated (as after upgrading)."""
    make_model_version()
    products = [make_product(solid_color_jpeg(rgb)) for rgb in (RED, GREEN, BLUE)]
    classification_job_run_sync(products=[p.pk for p in products])
    Product.objects.filter(pk=products[0].pk).update(
        category=categories["blue"], category_source=CategorySource.PERSON)
    make_product()  # no image: nothing to embed
    make_model_version(embedding=True, backbone=TINY_BACKBONE)
    return products


def test_backfill_is_a_dry_run_by_default(classified_before_embeddings, capsys):
    call_command("backfill_embeddings")
    out = capsys.readouterr().out
    assert f"3 products have no embedding from {TINY_BACKBONE}" in out and "--apply" in out
    assert not ProductEmbedding.objects.exists()


def test_backfill_apply_embeds_without_touching_categories_then_has_nothing_left(
        classified_before_embeddings, capsys):
    before = list(Product.objects.order_by("pk").values_list(
        "category", "category_source", "predicted_category", "review_status",
        "prediction_model_version"))

    call_command("backfill_embeddings", "--apply", "--chunk-size", "2")

    assert ProductEmbedding.objects.filter(backbone=TINY_BACKBONE).count() == 3
    assert list(Product.objects.order_by("pk").values_list(
        "category", "category_source", "predicted_category", "review_status",
        "prediction_model_version")) == before
    assert "Embedded 3 products, 0 failed" in capsys.readouterr().out
    call_command("backfill_embeddings", "--apply")
    assert "0 products have no embedding" in capsys.readouterr().out


def test_backfill_redoes_a_changed_image_and_another_backbones_vector(
        classified_before_embeddings, make_model_version, capsys):
    call_command("backfill_embeddings", "--apply")
    first, second, _ = classified_before_embeddings
    first.image.save("replaced.jpg", ContentFile(solid_color_jpeg(GREEN)))
    ProductEmbedding.objects.filter(product=second).update(backbone="older-backbone")

    call_command("backfill_embeddings")
    assert "2 products have no embedding" in capsys.readouterr().out
    call_command("backfill_embeddings", "--apply")
    assert set(ProductEmbedding.objects.values_list("backbone", flat=True)) == {TINY_BACKBONE}
    assert float(stored(first)[1] @ unit(GREEN)) > 0.999


def test_backfill_with_a_model_without_embeddings_says_how_to_fix(model_version, make_product):
    make_product(solid_color_jpeg(RED))
    with pytest.raises(CommandError, match="outputs no image embedding.*pretrained backbone"):
        call_command("backfill_embeddings")

