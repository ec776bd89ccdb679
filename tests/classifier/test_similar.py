"""Similar products through the shared index file, its refresh, and the exact fallback."""

import numpy as np
import pytest
from django.core.files.base import ContentFile

from catalog.models import Product
from classifier.inference import Prediction
from classifier.models import DuplicateCandidate, DuplicateDecision, ProductEmbedding
from classifier.selectors import duplicate_candidates_undecided
from classifier.services import (
    classification_job_run_sync,
    duplicate_pair_dismiss,
    similar_products,
    similarity_index_refresh,
)
from classifier.services.embeddings import product_embeddings_store
from classifier.services.results import ItemResult
from classifier.services.similarity_index import REFRESH_TASK, index_path, index_state
from tests.classifier.conftest import BLUE, GREEN, RED, TINY_BACKBONE
from tests.support.tiny_model import solid_color_jpeg

# Shades: reds close to each other (cosine of mean colours > 0.99), far from green and blue.
RED_2, RED_3 = (200, 30, 25), (170, 10, 50)


@pytest.fixture
def shades(embedding_version, make_product, no_auto_classify):
    """Classified products: three reds (one unpublished), a green and a blue."""
    specs = [("red-1", RED, True), ("red-2", RED_2, True), ("red-3", RED_3, False),
             ("green", GREEN, True), ("blue", BLUE, True)]
    products = {sku: make_product(solid_color_jpeg(rgb), sku=sku, is_published=published)
                for sku, rgb, published in specs}
    classification_job_run_sync(products=[p.pk for p in products.values()])
    return products


def _age_embeddings(hours: float = 1) -> None:
    """Stored embeddings as if written a while ago: an incremental scan also rescans the rows
    of the last few minutes (their commits may trail their stamps)."""
    from datetime import timedelta

    from django.utils import timezone

    ProductEmbedding.objects.update(updated_at=timezone.now() - timedelta(hours=hours))


def skus(results) -> list[str]:
    return [r.product.sku for r in results]


def test_refresh_builds_the_index_file_then_finds_it_fresh(shades):
    outcome = similarity_index_refresh()
    assert (outcome.status, outcome.backbone, outcome.count) == ("built", TINY_BACKBONE, 5)
    assert index_path(TINY_BACKBONE).is_file()
    assert index_state(TINY_BACKBONE)["count"] == 5
    assert similarity_index_refresh().status == "fresh"


def test_refresh_sees_new_changed_and_deleted_embeddings(shades, make_product):
    similarity_index_refresh()
    shades["blue"].image.save("now-red.jpg", ContentFile(solid_color_jpeg(RED)))
    classification_job_run_sync(products=[shades["blue"].pk])
    assert similarity_index_refresh().status == "built"
    Product.objects.filter(pk=shades["green"].pk).delete()
    outcome = similarity_index_refresh()
    assert (outcome.status, outcome.count) == ("built", 4)


def test_after_job_refresh_waits_for_the_minimum_age(shades):
    similarity_index_refresh()
    classification_job_run_sync(products=[shades["green"].pk])
    assert similarity_index_refresh(min_age_seconds=3600).status == "recent"
    assert similarity_index_refresh(min_age_seconds=0).status == "built"


def test_finishing_a_batch_job_enqueues_a_refresh_after_commit_and_a_one_image_job_does_not(
        shades, django_capture_on_commit_callbacks):
    from django_q.brokers import get_broker
    from django_q.signing import SignedPackage

    broker = get_broker()

    def queued_after(products) -> list[str]:
        broker.purge_queue()
        with django_capture_on_commit_callbacks(execute=True):
            classification_job_run_sync(products=[p.pk for p in products])
        queued = []
        while tasks := broker.dequeue():
            queued += [SignedPackage.loads(payload)["func"] for _, payload in tasks]
        broker.purge_queue()
        return queued

    assert queued_after([shades["green"], shades["blue"]]) == [REFRESH_TASK]
    # An upload's one-image job leaves it to the 5-minute schedule.
    assert queued_after([shades["green"]]) == []


@pytest.mark.parametrize("with_index", [True, False], ids=["index", "exact fallback"])
def test_similar_products_are_published_nearest_first_without_the_product(shades, with_index):
    if with_index:
        similarity_index_refresh()
    assert index_path(TINY_BACKBONE).exists() == with_index

    results = similar_products(product=shades["red-1"], limit=3)

    # Green and blue are equally far from red: their order is a tie.
    assert skus(results)[0] == "red-2" and set(skus(results)[1:]) == {"green", "blue"}
    assert results[0].score > 0.99 > results[1].score
    staff_view = similar_products(product=shades["red-1"], limit=2, published_only=False)
    assert sorted(skus(staff_view)) == ["red-2", "red-3"]


def test_index_answers_for_products_added_after_a_rebuild(shades, make_product):
    similarity_index_refresh()
    late = make_product(solid_color_jpeg((215, 25, 30)), sku="red-late", is_published=True)
    classification_job_run_sync(products=[late.pk])
    assert "red-late" not in skus(similar_products(product=shades["red-1"], limit=4))
    similarity_index_refresh()
    assert skus(similar_products(product=shades["red-1"], limit=1)) in (["red-late"], ["red-2"])
    assert "red-late" in skus(similar_products(product=shades["red-1"], limit=2))


def test_fallback_over_the_cutoff_answers_empty_instead_of_scanning(shades, settings, caplog):
    settings.SIMILARITY = {**settings.SIMILARITY, "EXACT_FALLBACK_MAX": 3}
    assert similar_products(product=shades["red-1"]) == []
    assert "too many to scan per request" in caplog.text


def test_unreadable_index_file_falls_back_without_an_error(shades):
    path = index_path(TINY_BACKBONE)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"not an index")
    assert skus(similar_products(product=shades["red-1"], limit=1)) == ["red-2"]


def test_products_embedded_by_another_backbone_are_never_compared(shades, embedding_version):
    # Same vector as red-1, but from another backbone: it must not show up.
    other = Product.objects.create(sku="red-other", title="Red", is_published=True)
    vector = np.array([0.9, 0.08, 0.08], np.float32)
    ProductEmbedding.objects.create(product=other, backbone="other-backbone", dim=3,
                                    vector=_encoded(vector))
    similarity_index_refresh()
    assert "red-other" not in skus(similar_products(product=shades["red-1"], limit=10))
    assert similar_products(product=other, limit=10) == []  # alone in its backbone
    unembedded = Product.objects.create(sku="none", title="No image")
    assert similar_products(product=unembedded) == []


def test_rebuild_keeps_only_the_active_backbones_index(shades, make_model_version):
    similarity_index_refresh()
    old = index_path(TINY_BACKBONE)
    make_model_version(embedding=True, backbone="tiny-v2")
    classification_job_run_sync(products=[shades["red-1"].pk, shades["red-2"].pk])
    outcome = similarity_index_refresh()
    assert (outcome.backbone, outcome.count) == ("tiny-v2", 2)
    assert index_path("tiny-v2").exists() and not old.exists()


def test_refresh_records_duplicate_candidates_and_decided_pairs_stay_hidden(
        shades, settings, embedding_version):
    settings.SIMILARITY = {**settings.SIMILARITY, "DUPLICATE_THRESHOLD": 0.99}
    outcome = similarity_index_refresh()
    pairs = {(c.product_a.sku, c.product_b.sku) for c in DuplicateCandidate.objects.all()}
    assert pairs == {("red-1", "red-2")} and outcome.pairs == 1
    duplicate_pair_dismiss(product_a=shades["red-2"], product_b=shades["red-1"])
    assert DuplicateDecision.objects.get().product_a == shades["red-1"]  # stored in id order
    similarity_index_refresh(force=True)
    assert DuplicateCandidate.objects.count() == 1
    assert not duplicate_candidates_undecided().exists()


def test_changing_the_threshold_setting_makes_the_scan_stale(shades, settings):
    similarity_index_refresh()
    settings.SIMILARITY = {**settings.SIMILARITY, "DUPLICATE_THRESHOLD": 0.5}
    outcome = similarity_index_refresh()
    assert outcome.status == "built" and outcome.pairs > 1


def _encoded(vector) -> bytes:
    from classifier.similarity.encoding import embedding_encode

    return embedding_encode(vector)


def test_chunk_store_skips_results_without_an_embedding(embedding_version, make_product):
    product = make_product(solid_color_jpeg(RED))
    results = [ItemResult(product_id=product.pk, error="broken"),
               ItemResult(product_id=product.pk, prediction=Prediction("red", 0.9, [("red", 0.9)]))]
    assert product_embeddings_store(results=results, products=[product],
                                    model_version_id=embedding_version.pk) == 0


def test_a_rebuild_rescans_only_changed_products_and_keeps_the_other_pairs(
        shades, settings, make_product):
    settings.SIMILARITY = {**settings.SIMILARITY, "DUPLICATE_THRESHOLD": 0.99}
    _age_embeddings()
    similarity_index_refresh()
    assert index_state(TINY_BACKBONE)["scan"] == "full"
    green_2 = make_product(solid_color_jpeg((25, 226, 22)), sku="green-2", is_published=True)
    classification_job_run_sync(products=[green_2.pk])

    assert similarity_index_refresh().pairs == 2
    assert index_state(TINY_BACKBONE)["scan"] == "incremental"
    found = {(c.product_a.sku, c.product_b.sku) for c in DuplicateCandidate.objects.all()}
    assert found == {("red-1", "red-2"), ("green", "green-2")}
    similarity_index_refresh(force=True)  # a full rescan finds the same
    assert index_state(TINY_BACKBONE)["scan"] == "full"
    assert {(c.product_a.sku, c.product_b.sku) for c in DuplicateCandidate.objects.all()} == found


def test_an_embedding_stamped_before_the_last_snapshot_but_committed_after_is_rescanned(
        shades, settings, make_product):
    """updated_at is set before the chunk's transaction commits: a rebuild that snapshotted in
    between did not see the row, and the next incremental scan must still look at it."""
    from datetime import datetime, timedelta

    settings.SIMILARITY = {**settings.SIMILARITY, "DUPLICATE_THRESHOLD": 0.99}
    _age_embeddings()
    similarity_index_refresh()
    snapshot = datetime.fromisoformat(index_state(TINY_BACKBONE)["snapshot_at"])
    green_2 = make_product(solid_color_jpeg((25, 226, 22)), sku="green-2", is_published=True)
    classification_job_run_sync(products=[green_2.pk])
    ProductEmbedding.objects.filter(product=green_2).update(
        updated_at=snapshot - timedelta(seconds=10))

    assert similarity_index_refresh().pairs == 2
    assert index_state(TINY_BACKBONE)["scan"] == "incremental"
    found = {(c.product_a.sku, c.product_b.sku) for c in DuplicateCandidate.objects.all()}
    assert found == {("red-1", "red-2"), ("green", "green-2")}


def test_a_slow_last_refresh_holds_the_next_one_back(shades):
    import json

    similarity_index_refresh()
    state_file = index_path(TINY_BACKBONE).with_suffix(".state.json")
    state = json.loads(state_file.read_text())
    state_file.write_text(json.dumps({**state, "refresh_seconds": 600}))  # as on a huge catalog
    classification_job_run_sync(products=[shades["green"].pk])
    assert similarity_index_refresh().status == "recent"
    assert similarity_index_refresh(force=True).status == "built"


def test_the_scheduled_refresh_exists_with_its_own_timeout(db):
    """The migration's schedule; its kwargs carry the task timeout the scheduler passes on."""
    import ast

    from django_q.models import Schedule

    from classifier.services.similarity_index import REFRESH_TASK, REFRESH_TIMEOUT_SECONDS

    schedule = Schedule.objects.get(func=REFRESH_TASK)
    assert (schedule.schedule_type, schedule.minutes, schedule.repeats) == ("I", 5, -1)
    kwargs = ast.parse(f"f({schedule.kwargs})").body[0].value.keywords
    assert {k.arg: ast.literal_eval(k.value) for k in kwargs} == {
        "q_options": {"timeout": REFRESH_TIMEOUT_SECONDS}}


def test_a_stored_row_that_cannot_be_read_is_left_out_without_keeping_the_index_stale(shades):
    ProductEmbedding.objects.filter(product=shades["blue"]).update(vector=b"F2\x03\x00xx")
    assert similarity_index_refresh().count == 4
    assert similarity_index_refresh().status == "fresh"
    assert similar_products(product=shades["blue"]) == []
