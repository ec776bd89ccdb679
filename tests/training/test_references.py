"""The near-duplicate rule: measured leave-one-out on labelled embeddings, stored, read back."""

from __future__ import annotations

import numpy as np
import pytest

from classifier.references import load_reference_set, near_duplicate_matches
from training.references import near_duplicate_rule, reference_bytes


def twins(n: int, *, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` products photographed twice (tiny noise), in four categories."""
    rng = np.random.default_rng(seed)
    base = rng.uniform(0, 3, (n, 32)).astype(np.float32)
    x = np.concatenate([base, base + rng.normal(0, 0.01, base.shape)])
    y = np.tile(np.arange(n) % 4, 2)
    return x, y


def test_rule_is_enabled_when_near_duplicates_share_their_category():
    x, y = twins(40)
    rule = near_duplicate_rule(x, y, target=0.95, cosine=0.99)
    assert rule["enabled"] and rule["answered"] == 80 and rule["correct"] == 80
    assert rule["precision_lower_bound"] >= 0.95


def test_rule_is_off_when_near_duplicates_disagree_or_are_too_few():
    x, y = twins(40)
    noisy = y.copy()
    noisy[40:] = (noisy[40:] + 1) % 4  # every twin filed under another category
    assert not near_duplicate_rule(x, noisy, target=0.95, cosine=0.99)["enabled"]
    x3, y3 = twins(3)
    few = near_duplicate_rule(x3, y3, target=0.95, cosine=0.99)
    assert few["answered"] == 6 and not few["enabled"]  # all right, but 6 prove nothing


def test_distinct_images_never_answer():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(50, 32)).astype(np.float32)
    rule = near_duplicate_rule(x, np.arange(50) % 3, target=0.95, cosine=0.9)
    assert rule["answered"] == 0 and not rule["enabled"] and rule["precision"] is None


def test_stored_references_find_the_labelled_twin_of_a_new_image():
    x, y = twins(20)
    references = load_reference_set(reference_bytes(x[:20], y[:20]), dim=32)
    names = ["a", "b", "c", "d"]
    matches = near_duplicate_matches(references, x[20:], names, cosine=0.99)
    assert matches == [names[c] for c in y[:20]]
    strangers = np.random.default_rng(5).normal(size=(3, 32))
    assert near_duplicate_matches(references, strangers, names, cosine=0.99) == [None] * 3


def test_stored_references_naming_a_label_the_model_lacks_are_refused():
    """Such a file would fail every chunk with an IndexError; refused, the rule is only off."""
    from classifier.exceptions import ModelLoadError

    x, y = twins(20)
    data = reference_bytes(x[:20], y[:20])
    assert len(load_reference_set(data, dim=32, num_labels=4).labels) == 20
    with pytest.raises(ModelLoadError, match="outside the model's 3"):
        load_reference_set(data, dim=32, num_labels=3)
