"""The admin's duplicates page and its actions, and the product page's similar products."""

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import Permission
from django.urls import reverse

from catalog.models import Product
from classifier.models import DuplicateDecision, DuplicateDecisionKind
from classifier.services import classification_job_run_sync, similarity_index_refresh
from tests.classifier.conftest import GREEN, RED
from tests.support.tiny_model import solid_color_jpeg

PAGE = reverse("admin:catalog_product_duplicates")
DECIDE = reverse("admin:catalog_product_duplicate_decide")


@pytest.fixture
def pairs(embedding_version, make_product, no_auto_classify, settings):
    """Two near-identical reds (a pair at threshold 0.99) and a green; scanned."""
    settings.SIMILARITY = {**settings.SIMILARITY, "DUPLICATE_THRESHOLD": 0.99}
    products = {sku: make_product(solid_color_jpeg(rgb), sku=sku, title=title, is_published=True)
                for sku, rgb, title in (("RED-A", RED, "Red mug"),
                                        ("RED-B", (200, 30, 25), "Red mug (copy)"),
                                        ("GREEN", GREEN, "Green mug"))}
    classification_job_run_sync(products=[p.pk for p in products.values()])
    similarity_index_refresh()
    return products


def decide(client, products, decision):
    return client.post(DECIDE, {"a": products["RED-A"].pk, "b": products["RED-B"].pk,
                                "decision": decision, "next": PAGE})


def test_page_lists_the_pair_side_by_side_with_score_and_actions(admin_client, pairs):
    page = admin_client.get(PAGE).content.decode()
    assert "1</strong> likely duplicate pair to decide" in page
    for text in ("RED-A", "Red mug (copy)", "Published", "Unpublish this copy",
                 "Not a duplicate", "Similarity <strong>0.99"):
        assert text in page
    assert "GREEN" not in page
    changelist = admin_client.get(reverse("admin:catalog_product_changelist")).content.decode()
    assert "Likely duplicates (1)" in changelist


def test_not_a_duplicate_is_remembered_and_never_listed_again(admin_client, admin_user, pairs):
    response = decide(admin_client, pairs, "not_duplicate")
    assert response.status_code == 302 and response.url == PAGE
    decision = DuplicateDecision.objects.get()
    assert (decision.kind, decision.decided_by) == (DuplicateDecisionKind.NOT_DUPLICATE,
                                                    admin_user)
    similarity_index_refresh(force=True)  # found again by a new scan, still not listed
    page = admin_client.get(PAGE).content.decode()
    assert "No likely duplicates to decide" in page and "duplicate-pair\"" not in page
    assert Product.objects.filter(is_published=True).count() == 3


def test_unpublish_the_copy_you_pick_with_a_history_line(admin_client, pairs):
    decide(admin_client, pairs, "unpublish_b")

    assert not Product.objects.get(pk=pairs["RED-B"].pk).is_published
    assert Product.objects.get(pk=pairs["RED-A"].pk).is_published
    entry = LogEntry.objects.get(object_id=str(pairs["RED-B"].pk))
    assert entry.get_change_message() == "Unpublished: duplicate of RED-A"
    messages = [str(m) for m in admin_client.get(PAGE).context["messages"]]
    assert messages == ["RED-B unpublished as a duplicate of RED-A."]


def test_staff_who_may_only_view_see_the_pairs_but_cannot_decide(client, django_user_model,
                                                                 pairs):
    viewer = django_user_model.objects.create_user("viewer", password="pw-123456!",
                                                   is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_product"))
    client.force_login(viewer)
    page = client.get(PAGE).content.decode()
    assert "RED-B" in page and "Unpublish this copy" not in page and "Not a duplicate" not in page
    assert decide(client, pairs, "unpublish_a").status_code == 403
    assert Product.objects.get(pk=pairs["RED-A"].pk).is_published
    assert not DuplicateDecision.objects.exists()


def test_bad_decisions_say_what_to_do(admin_client, pairs):
    for form in ({"a": pairs["RED-A"].pk, "b": 999_999, "decision": "not_duplicate"},
                 {"a": "x", "b": "", "decision": "not_duplicate"},
                 {"a": pairs["RED-A"].pk, "b": pairs["RED-B"].pk, "decision": "merge"}):
        response = admin_client.post(DECIDE, form, follow=True)
        assert "Reload the page" in response.content.decode()
    assert admin_client.get(DECIDE).status_code == 405
    assert not DuplicateDecision.objects.exists()


def test_scan_again_enqueues_a_forced_refresh(admin_client, pairs):
    from django_q.brokers import get_broker
    from django_q.signing import SignedPackage

    broker = get_broker()
    broker.purge_queue()
    response = admin_client.post(DECIDE, {"decision": "rescan", "next": PAGE}, follow=True)
    assert "Scanning for duplicates in the background" in response.content.decode()
    tasks = broker.dequeue()
    broker.purge_queue()
    task = SignedPackage.loads(tasks[0][1])
    assert (task["func"], task["kwargs"]) == ("classifier.tasks.similarity_index_refresh",
                                              {"force": True})


def test_page_before_any_scan_says_when_scans_happen(admin_client, embedding_version):
    page = admin_client.get(PAGE).content.decode()
    assert "No scan yet" in page and "No likely duplicates to decide" in page


def test_product_page_shows_similar_products_with_links_and_scores(admin_client, pairs):
    Product.objects.filter(pk=pairs["GREEN"].pk).update(is_published=False)
    url = reverse("admin:catalog_product_change", args=[pairs["RED-A"].pk])
    page = admin_client.get(url).content.decode()
    assert "Looks like" in page
    assert reverse("admin:catalog_product_change", args=[pairs["RED-B"].pk]) in page
    assert "<strong>1.00</strong>" in page  # the near-identical red
    assert "GREEN · <strong>0." in page and "· draft" in page  # staff see drafts, marked


def test_product_page_without_an_embedding_explains_why_nothing_is_shown(admin_client, db):
    product = Product.objects.create(sku="NEW", title="New")
    page = admin_client.get(reverse("admin:catalog_product_change", args=[product.pk]))
    assert "No similar products yet" in page.content.decode()
