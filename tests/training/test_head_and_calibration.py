"""The embedding head, k-fold validation, calibration, thresholds and the gate on synthetic data.

Embeddings are drawn around class centres (non-negative, like pooled ReLU6 features) with a
controllable spread, so each property is checked where it must hold: separable classes are
learned, noise is not, over-confident logits are softened, thresholds reach their precision.
"""

from __future__ import annotations

import numpy as np
import pytest

from training.calibration import (
    auto_fill_thresholds,
    fit_temperature,
    precision_threshold,
    reliability,
    wilson_lower,
)
from training.gate import quality_gate
from training.head import HeadParams, fit_head, nll, softmax
from training.validation import (
    MIN_EPOCHS,
    cross_validate,
    near_duplicate_groups,
    stratified_group_folds,
)

NAMES = [f"cat{i}" for i in range(4)]


def clustered(n_per_class: int, spread: float, *, classes: int = 4, dim: int = 64,
              seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = rng.uniform(0, 3, (classes, dim))
    y = np.repeat(np.arange(classes), n_per_class)
    x = np.maximum(0, centres[y] + rng.normal(0, spread, (len(y), dim)))
    return x.astype(np.float32), y


def test_head_learns_separable_classes_and_folds_into_one_dense_layer():
    x, y = clustered(30, 0.5)
    head, _ = fit_head(x, y, 4, HeadParams(epochs=30), seed=0)
    assert (head.logits(x).argmax(1) == y).mean() == 1.0
    kernel, bias = head.folded(temperature=2.0)
    np.testing.assert_allclose(x @ kernel + bias, head.logits(x) / 2.0, rtol=1e-4, atol=1e-4)


def test_head_training_is_reproducible_for_a_seed():
    x, y = clustered(20, 1.0)
    a, _ = fit_head(x, y, 4, HeadParams(epochs=10), seed=5)
    b, _ = fit_head(x, y, 4, HeadParams(epochs=10), seed=5)
    np.testing.assert_array_equal(a.kernel, b.kernel)


def test_cross_validation_predicts_every_image_out_of_fold_and_never_stops_early():
    x, y = clustered(25, 1.5)
    cv = cross_validate(x, y, 4, base=HeadParams(), seed=1)
    assert cv.oof_logits.shape == (100, 4)
    assert sorted(np.unique(cv.fold_of)) == list(range(cv.folds)) and cv.folds == 5
    assert cv.params.epochs >= MIN_EPOCHS
    assert all(c["epochs"] >= MIN_EPOCHS for c in cv.candidates)
    assert (cv.oof_logits.argmax(1) == y).mean() > 0.9


def test_noise_labels_give_chance_accuracy_and_fail_the_gate():
    rng = np.random.default_rng(3)
    x = rng.uniform(0, 3, (120, 64)).astype(np.float32)
    y = rng.integers(0, 4, 120)
    cv = cross_validate(x, y, 4, base=HeadParams(), seed=1)
    predicted = cv.oof_logits.argmax(1)
    assert (predicted == y).mean() < 0.45
    assert not quality_gate(y, predicted, NAMES).passed


def test_near_duplicates_stay_in_one_fold():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(40, 64)).astype(np.float32)  # 40 unrelated products...
    y = np.arange(40) % 4
    twins = np.concatenate([x, x + 0.01])  # ...each photographed twice
    labels = np.concatenate([y, y])
    groups = near_duplicate_groups(twins, labels)
    assert len(np.unique(groups)) == len(x)
    folds = stratified_group_folds(labels, groups, 4, seed=0)
    np.testing.assert_array_equal(folds[: len(x)], folds[len(x):])


def test_a_category_seen_all_alike_is_split_back_into_single_images():
    x = np.ones((12, 8), np.float32)  # a useless backbone: every image embeds the same
    y = np.repeat([0, 1], 6)
    groups = near_duplicate_groups(x, y)
    assert len(np.unique(groups)) == 12


def test_temperature_softens_overconfident_logits_and_lowers_calibration_error():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, 400)
    logits = rng.normal(0, 1, (400, 4))
    right = rng.random(400) < 0.7  # 70 % right, but every prediction shouts
    target = np.where(right, y, (y + 1) % 4)
    logits[np.arange(400), target] += 8.0
    t = fit_temperature(logits, y)
    assert t > 2.0
    before = reliability(softmax(logits), y)["ece"]
    after = reliability(softmax(logits / t), y)["ece"]
    assert after < before / 2
    assert nll(logits / t, y) < nll(logits, y)


def test_temperature_never_sharpens_more_than_twofold_on_perfect_predictions():
    y = np.arange(40) % 4
    logits = np.eye(4)[y] * 3.0
    assert fit_temperature(logits, y) == pytest.approx(0.5, rel=1e-3)


def test_precision_threshold_needs_evidence_not_luck():
    confidence = np.array([0.99, 0.98, 0.97])
    assert precision_threshold(confidence, np.array([True, True, True]), 0.95) is None
    confidence = np.linspace(1.0, 0.5, 200)
    correct = np.r_[np.ones(100, bool), np.arange(100) % 2 == 0]  # top half right, then 50 %
    t = precision_threshold(confidence, correct, 0.95)
    above = confidence >= t
    assert correct[above].mean() >= 0.95
    assert wilson_lower(correct[above].sum(), above.sum()) >= 0.95
    assert 0.6 < t < 0.8


def test_auto_fill_thresholds_reach_the_target_on_the_data_they_were_chosen_on():
    x, y = clustered(60, 2.2, seed=4)
    cv = cross_validate(x, y, 4, base=HeadParams(), seed=1)
    probs = softmax(cv.oof_logits / cv.temperature)
    thresholds, report = auto_fill_thresholds(probs, y, NAMES, target=0.95)
    assert report["filled"] > 0 and report["precision"] >= 0.95
    assert 0 < report["coverage"] < 1 or report["precision"] == 1.0
    assert thresholds["target_precision"] == 0.95
    assert set(report["per_category"]) == set(NAMES)
    assert report["curve"][0]["coverage"] == 1.0


def test_a_category_clearly_below_target_never_fills_automatically():
    from classifier.thresholds import NEVER_AUTO_FILL, auto_fill_threshold

    rng = np.random.default_rng(1)
    predicted = np.r_[np.zeros(1000, np.int64), np.ones(100, np.int64)]
    labels = predicted.copy()
    wrong = (predicted == 1) & (rng.random(len(predicted)) < 0.4)  # "bad" is right 60 % of
    labels[wrong] = 0  # the time, while the catalog as a whole clears 95 %
    probs = np.full((len(predicted), 2), 0.02)
    probs[np.arange(len(predicted)), predicted] = 0.98
    thresholds, report = auto_fill_thresholds(probs, labels, ["good", "bad"], target=0.95)
    assert thresholds["global"] is not None
    assert report["per_category"]["bad"]["source"] == "excluded"
    assert auto_fill_threshold(thresholds, "bad", 0.5) == NEVER_AUTO_FILL
    assert auto_fill_threshold(thresholds, "good", 0.5) <= 0.98


def test_gate_refuses_a_model_that_collapsed_onto_one_category():
    y = np.repeat([0, 1, 2, 3], 25)
    collapsed = np.zeros(100, np.int64)
    result = quality_gate(y, collapsed, NAMES)
    assert not result.passed and "collapsed" in result.reasons[0]
    assert quality_gate(y, y, NAMES).passed
