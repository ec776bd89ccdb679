"""Confidence a shop can act on: temperature scaling, reliability bins, auto-fill thresholds.

The classifier fills a product's category on its own only when its confidence is high enough for
the fills to be right at a target precision (default 95 %). Raw softmax scores of a head trained
with label smoothing are not probabilities, so one temperature is fitted on out-of-fold logits
(Guo et al., 2017) and folded into the exported model; then thresholds are chosen on the same
out-of-fold predictions, globally and, where a category has enough examples, per category.

Precision is judged conservatively: a threshold is accepted only when the one-sided Wilson lower
bound of the precision above it reaches the target, so a few lucky examples cannot buy a low
threshold. On a small catalog that may mean a high threshold, or none (everything is reviewed),
which is the honest answer until more products are labelled.
"""

from __future__ import annotations

import math

import numpy as np

from classifier.thresholds import NEVER_AUTO_FILL, auto_fill_threshold
from training.head import softmax

# Temperatures searched (as 1/T, where the NLL is convex): up to 20x softer, at most 2x sharper.
# Out-of-fold sets of a few hundred images are often perfectly separated, which pushes the
# fitted temperature to its limit; unbounded, every later mistake would come with 99.9 %
# confidence and sail past any threshold. Softening has no such failure mode.
INVERSE_TEMPERATURE_RANGE = (0.05, 2.0)
BISECTION_STEPS = 60
RELIABILITY_BINS = 10
# One-sided 90 % confidence for the Wilson bound: a threshold's precision must be shown, not
# merely observed. (z for 95 % one-sided would be 1.645; 90 % keeps small catalogs usable.)
WILSON_Z = 1.2816
# A category gets its own threshold only with at least this many out-of-fold predictions of it;
# below, its estimate is too noisy and the global threshold applies.
MIN_CATEGORY_PREDICTIONS = 30
# Points kept on the stored coverage–precision curve (for the report's chart).
CURVE_POINTS = 101


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """The temperature ``T`` minimising the NLL of ``softmax(logits / T)``.

    The NLL is convex in ``beta = 1 / T`` and its derivative is
    ``mean(E_p[z] - z_true)``, increasing in beta, so a bisection on its sign finds the optimum.
    """
    z = np.asarray(logits, np.float64)
    y = np.asarray(labels)
    true = z[np.arange(len(z)), y]
    low, high = INVERSE_TEMPERATURE_RANGE
    if len(z) == 0:
        return 1.0
    for _ in range(BISECTION_STEPS):
        beta = math.sqrt(low * high)  # bisect in log space: the range spans 400x
        p = softmax(z * beta)
        gradient = float(np.mean((p * z).sum(axis=1) - true))
        if gradient > 0:
            high = beta
        else:
            low = beta
    return float(1.0 / math.sqrt(low * high))


def reliability(probs: np.ndarray, labels: np.ndarray, bins: int = RELIABILITY_BINS) -> dict:
    """Reliability-diagram bins of top-1 confidence and the expected calibration error.

    Returns:
        ``{"bins": [{"lower", "upper", "count", "confidence", "accuracy"}], "ece": float}``;
        empty bins have ``None`` confidence and accuracy.
    """
    probs = np.asarray(probs)
    confidence = probs.max(axis=1)
    correct = probs.argmax(axis=1) == np.asarray(labels)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
    rows, ece = [], 0.0
    for b in range(bins):
        mask = which == b
        n = int(mask.sum())
        conf = float(confidence[mask].mean()) if n else None
        acc = float(correct[mask].mean()) if n else None
        if n:
            ece += n / len(probs) * abs(conf - acc)
        rows.append({"lower": round(float(edges[b]), 3), "upper": round(float(edges[b + 1]), 3),
                     "count": n, "confidence": conf, "accuracy": acc})
    return {"bins": rows, "ece": float(ece)}


def wilson_lower(successes: np.ndarray | int, total: np.ndarray | int,
                 z: float = WILSON_Z) -> np.ndarray:
    """One-sided Wilson score lower bound of a proportion (0 where ``total`` is 0)."""
    k = np.asarray(successes, np.float64)
    n = np.asarray(total, np.float64)
    safe = np.maximum(n, 1)
    p = k / safe
    centre = p + z * z / (2 * safe)
    margin = z * np.sqrt(p * (1 - p) / safe + z * z / (4 * safe * safe))
    return np.where(n > 0, (centre - margin) / (1 + z * z / safe), 0.0)


def wilson_upper(successes: np.ndarray | int, total: np.ndarray | int,
                 z: float = WILSON_Z) -> np.ndarray:
    """One-sided Wilson score upper bound of a proportion (1 where ``total`` is 0)."""
    k = np.asarray(successes, np.float64)
    n = np.asarray(total, np.float64)
    return np.where(n > 0, 1.0 - wilson_lower(n - k, n, z), 1.0)


def precision_threshold(confidence: np.ndarray, correct: np.ndarray,
                        target: float) -> float | None:
    """The lowest confidence whose predictions at or above it are shown to be ``target`` precise.

    Candidates are the observed confidences; for each, precision is computed over every
    prediction at or above it and must have a Wilson lower bound ``>= target``.

    Returns:
        The threshold, or ``None`` when no threshold reaches the target.
    """
    order = np.argsort(-np.asarray(confidence), kind="stable")
    conf = np.asarray(confidence, np.float64)[order]
    hits = np.cumsum(np.asarray(correct, np.float64)[order])
    counts = np.arange(1, len(conf) + 1)
    # Only the last of equal confidences is a valid cut (all of them are selected together).
    last_of_value = np.r_[conf[1:] != conf[:-1], True]
    ok = (wilson_lower(hits, counts) >= target) & last_of_value
    if not ok.any():
        return None
    return float(conf[np.flatnonzero(ok)[-1]])


def auto_fill_thresholds(probs: np.ndarray, labels: np.ndarray, label_names: list[str], *,
                         target: float) -> tuple[dict, dict]:
    """Choose the global and per-category auto-fill thresholds from out-of-fold predictions.

    Global: ``precision_threshold`` over all predictions. A category predicted at least
    ``MIN_CATEGORY_PREDICTIONS`` times gets its own threshold when its own predictions show the
    target; when they clearly miss it above the global threshold (Wilson *upper* bound below
    the target) the category never fills automatically; otherwise the global threshold applies.

    Returns:
        ``(thresholds, report)``: what ``ModelVersion.auto_fill_thresholds`` stores, and the
        report's ``metrics["auto_fill"]`` (coverage, precision, curve, per-category detail).
    """
    probs = np.asarray(probs)
    labels = np.asarray(labels)
    confidence = probs.max(axis=1)
    predicted = probs.argmax(axis=1)
    correct = predicted == labels
    global_t = precision_threshold(confidence, correct, target)
    per_category, detail = {}, {}
    for c, name in enumerate(label_names):
        mine = predicted == c
        threshold, source = _category_threshold(confidence[mine], correct[mine], global_t,
                                                target)
        if source == "category":
            per_category[name] = threshold
        elif source == "excluded":
            per_category[name] = None
        detail[name] = {"threshold": threshold, "source": source, "count": int(mine.sum()),
                        **_coverage_precision(confidence[mine], correct[mine], threshold)}
    thresholds = {"target_precision": target, "global": global_t, "per_category": per_category}
    filled = _filled(confidence, predicted, label_names, thresholds)
    report = {"target_precision": target, "threshold": global_t,
              "coverage": float(filled.mean()) if len(filled) else 0.0,
              "precision": float(correct[filled].mean()) if filled.any() else None,
              "filled": int(filled.sum()), "count": int(len(filled)),
              "curve": coverage_precision_curve(confidence, correct), "per_category": detail}
    return thresholds, report


def _category_threshold(confidence: np.ndarray, correct: np.ndarray, global_t: float | None,
                        target: float) -> tuple[float | None, str]:
    if len(confidence) < MIN_CATEGORY_PREDICTIONS:
        return global_t, "global"
    own = precision_threshold(confidence, correct, target)
    if own is not None:
        return own, "category"
    if global_t is not None:
        above = confidence >= global_t
        if above.any() and wilson_upper(correct[above].sum(), above.sum()) < target:
            return None, "excluded"
    return global_t, "global"


def _filled(confidence: np.ndarray, predicted: np.ndarray, label_names: list[str],
            thresholds: dict) -> np.ndarray:
    cut = np.array([auto_fill_threshold(thresholds, label_names[c], NEVER_AUTO_FILL)
                    for c in predicted])
    return confidence >= cut


def _coverage_precision(confidence: np.ndarray, correct: np.ndarray,
                        threshold: float | None) -> dict:
    if threshold is None or not len(confidence):
        return {"coverage": 0.0, "precision": None}
    above = confidence >= threshold
    return {"coverage": float(above.mean()),
            "precision": float(correct[above].mean()) if above.any() else None}


def coverage_precision_curve(confidence: np.ndarray, correct: np.ndarray,
                             points: int = CURVE_POINTS) -> list[dict]:
    """Coverage and precision of "auto-fill at confidence >= t" for ``points`` thresholds."""
    rows = []
    for t in np.linspace(0.0, 1.0, points):
        above = confidence >= t
        if not above.any():
            continue
        rows.append({"threshold": round(float(t), 3), "coverage": float(above.mean()),
                     "precision": float(correct[above].mean())})
    return rows
