"""Activation policy: the gate first, then "is the new version better than the active one?".

A version that fails the quality gate (collapsed onto one category, or no better than guessing
the largest) is never activated automatically, whatever the policy; a person can still activate
it by hand. With ``if_better`` the two versions are compared on products neither has an unfair
advantage on: catalog products a person labelled after the active version predicted them (the
active version's stored prediction against the new version's held-out one). Without enough of
those, the versions' own held-out accuracies are compared.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from catalog.models import Product
from classifier.models import ModelVersion, PredictionOutcome, PredictionRecord
from training.models import ActivationPolicy

# Fewer fresh products than this and a paired comparison is mostly noise.
MIN_FRESH_PRODUCTS = 20
_PRODUCT_KEY = re.compile(r"^product:(\d+):")
# Ids per query: under SQLite's smallest bound-parameter limit (999).
ID_BATCH = 900


def model_version_apply_policy(*, model_version: ModelVersion, outcome, policy: str,
                               log: Callable[[str], None]) -> bool:
    """Activate ``model_version`` according to ``policy`` and its gate; return whether it was.

    Args:
        model_version: the new, inactive version.
        outcome: its ``TrainingOutcome`` (gate, held-out predictions, accuracy).
        policy: an ``ActivationPolicy`` value.
        log: sink for the decision, shown in the run's log.
    """
    from classifier.selectors import model_version_get_active
    from classifier.services import model_version_activate

    if policy == ActivationPolicy.NEVER:
        log("Activation policy 'never': the new version stays inactive.")
        return False
    if not outcome.gate.passed:
        log("Not activated: the version fails the quality gate. " + " ".join(outcome.gate.reasons))
        return False
    active = model_version_get_active()
    if policy == ActivationPolicy.IF_BETTER and active is not None:
        new_accuracy, active_accuracy, basis = _compare(active, outcome)
        if new_accuracy < active_accuracy:
            log(f"Not activated: accuracy {new_accuracy:.4f} is below the active "
                f"v{active.number}'s {active_accuracy:.4f} ({basis}).")
            return False
        log(f"New version is at least as good as the active v{active.number}: "
            f"{new_accuracy:.4f} vs {active_accuracy:.4f} ({basis}).")
    elif active is None:
        log("No active version: activating the new one.")
    model_version_activate(model_version=model_version)
    return True


def _compare(active: ModelVersion, outcome) -> tuple[float, float, str]:
    """``(new accuracy, active accuracy, what they were measured on)``."""
    heldout = outcome.heldout
    true, predicted = {}, {}
    for key, label, guess in zip(heldout.keys, heldout.labels, heldout.predicted_names):
        match = _PRODUCT_KEY.match(key)
        if match:
            pk = int(match.group(1))
            true[pk], predicted[pk] = heldout.label_names[int(label)], guess
    fresh = _fresh_predictions(active, list(true))
    if len(fresh) >= MIN_FRESH_PRODUCTS:
        new_hits = sum(predicted[pk] == true[pk] for pk in fresh)
        active_hits = sum(label == true[pk] for pk, label in fresh.items())
        return (new_hits / len(fresh), active_hits / len(fresh),
                f"{len(fresh)} products labelled after v{active.number} predicted them")
    return (outcome.accuracy, float(active.accuracy or 0.0),
            "each version's own held-out accuracy; too few newly labelled products to pair")


def _fresh_predictions(active: ModelVersion, product_ids: list[int]) -> dict[int, str]:
    """The active version's latest prediction of each product a person labelled afterwards."""
    fresh: dict[int, str] = {}
    for start in range(0, len(product_ids), ID_BATCH):
        batch = product_ids[start:start + ID_BATCH]
        labelled_at = dict(Product.objects.filter(pk__in=batch, category_set_at__isnull=False)
                           .values_list("pk", "category_set_at"))
        records = (PredictionRecord.objects
                   .filter(model_version=active, product_id__in=list(labelled_at))
                   .exclude(outcome=PredictionOutcome.FAILED)
                   .order_by("product_id", "-created_at")
                   .values_list("product_id", "label", "created_at"))
        for pk, label, created in records:
            if pk not in fresh and created < labelled_at[pk]:
                fresh[pk] = label
    return fresh
