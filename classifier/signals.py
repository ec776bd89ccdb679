"""Auto-classification: a Product saved with a new or changed image is classified on commit.

A signal rather than calls in catalog services: products are saved by the admin, the API, the
storage webhook, imports and other helpers' code, and catalog must not depend on classifier
(the dependency runs classifier -> catalog). The image name seen at load time is kept on the
instance, so a save that does not touch the image costs nothing and enqueues nothing.
"""

from django.db.models.signals import post_init, post_save
from django.dispatch import receiver

from catalog.models import Product
from classifier.services import product_classify_on_commit

_LOADED_NAME = "_classifier_loaded_image_name"
_UNKNOWN = object()


def _image_name(instance) -> object:
    # Read the raw attribute: touching a deferred field would cost a query per loaded product.
    value = instance.__dict__.get("image", _UNKNOWN)
    return getattr(value, "name", value) or ""


@receiver(post_init, sender=Product, dispatch_uid="classifier_remember_image")
def remember_image_name(sender, instance, **kwargs):
    setattr(instance, _LOADED_NAME, _image_name(instance))


@receiver(post_save, sender=Product, dispatch_uid="classifier_classify_new_image")
def classify_new_image(sender, instance, created, update_fields=None, raw=False, **kwargs):
    if raw:  # loaddata: fixtures carry their own classification state
        return
    before = getattr(instance, _LOADED_NAME, _UNKNOWN)
    now = _image_name(instance)
    setattr(instance, _LOADED_NAME, now)
    if update_fields is not None and "image" not in update_fields:
        return
    changed = created or (before is not _UNKNOWN and now != before)
    if changed and now:
        product_classify_on_commit(product=instance)
