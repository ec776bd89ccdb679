"""Auto-classification's one entry point: a Product saved with a new or changed image.

A signal rather than calls in catalog services: products are saved by the admin, the API, the
storage webhook and imports, and catalog must not depend on classifier (the dependency runs
classifier -> catalog; ``ClassifierConfig.ready`` connects these receivers). An image counts as
changed when its name changes or its ``image_updated_at`` moves (catalog sets it whenever the
bytes behind the name change: an upload, an Appwrite file re-created under the same id). The
values seen at load time are kept on the instance, so a save that does not touch the image
costs nothing and enqueues nothing, and a second save of the same change enqueues nothing more.
"""

from django.db.models.signals import post_init, post_save

from catalog.models import Product
from classifier.services import product_classify_on_commit

_LOADED = "_classifier_loaded_image"
_UNKNOWN = object()
_WATCHED_FIELDS = frozenset({"image", "image_updated_at"})


def _image_state(instance) -> object:
    # Read raw attributes: touching a deferred field would cost a query per loaded product.
    values = instance.__dict__
    if "image" not in values or "image_updated_at" not in values:
        return _UNKNOWN
    return getattr(values["image"], "name", values["image"]) or "", values["image_updated_at"]


def remember_image(sender, instance, **kwargs):
    setattr(instance, _LOADED, _image_state(instance))


def classify_new_image(sender, instance, created, update_fields=None, raw=False, **kwargs):
    if raw:  # loaddata: fixtures carry their own classification state
        return
    before, now = getattr(instance, _LOADED, _UNKNOWN), _image_state(instance)
    setattr(instance, _LOADED, now)
    if update_fields is not None and not _WATCHED_FIELDS & set(update_fields):
        return
    changed = created or (before is not _UNKNOWN and now != before)
    if changed and instance.image and not instance.image_missing:
        product_classify_on_commit(product=instance)


def connect() -> None:
    post_init.connect(remember_image, sender=Product, dispatch_uid="classifier_remember_image")
    post_save.connect(classify_new_image, sender=Product,
                      dispatch_uid="classifier_classify_new_image")
