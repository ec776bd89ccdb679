"""The quality gate: a model that predicts one class, or barely beats guessing, never goes live.

A model trained from random weights on a small catalog can score "well" on paper while filing
every product under its largest category. Checked on the out-of-fold (or validation)
predictions; a version that fails is stored with the reasons but never activated automatically.
A person may still activate it by hand.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from training.calibration import wilson_lower

# Accuracy must beat the majority-class baseline by at least this much (absolute)...
MIN_MARGIN_OVER_BASELINE = 0.10
# ...and its Wilson lower bound must still beat the baseline (the margin is not luck).
# A collapsed model sends this share (or more) of all images to one category, while that
# category holds at most COLLAPSE_EXCESS less of the true labels.
COLLAPSE_SHARE = 0.9
COLLAPSE_EXCESS = 0.1


@dataclasses.dataclass(frozen=True)
class GateResult:
    passed: bool
    reasons: list[str]
    accuracy: float
    majority_baseline: float
    largest_predicted_share: float

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def quality_gate(labels: np.ndarray, predicted: np.ndarray, label_names: list[str]) -> GateResult:
    """Judge held-out predictions against the majority-class baseline and for collapse.

    Args:
        labels: ``(N,)`` true class indices.
        predicted: ``(N,)`` predicted class indices (out of fold).
        label_names: class names, for the reasons.

    Returns:
        Whether the model may be activated automatically, and why not.
    """
    labels, predicted = np.asarray(labels), np.asarray(predicted)
    n, c = len(labels), len(label_names)
    true_share = np.bincount(labels, minlength=c) / max(n, 1)
    predicted_share = np.bincount(predicted, minlength=c) / max(n, 1)
    baseline = float(true_share.max()) if n else 0.0
    accuracy = float((labels == predicted).mean()) if n else 0.0
    top = int(predicted_share.argmax()) if n else 0
    reasons = []
    if n and (predicted_share[top] >= COLLAPSE_SHARE
              and true_share[top] <= predicted_share[top] - COLLAPSE_EXCESS):
        reasons.append(
            f"It predicts {label_names[top]!r} for {predicted_share[top]:.0%} of held-out images, "
            f"which are only {true_share[top]:.0%} of them: the model has collapsed onto one "
            "category."
        )
    lower = float(wilson_lower(int((labels == predicted).sum()), n))
    if accuracy < baseline + MIN_MARGIN_OVER_BASELINE or lower <= baseline:
        reasons.append(
            f"Held-out accuracy {accuracy:.1%} does not clearly beat always answering the largest "
            f"category ({baseline:.1%}; needs +{MIN_MARGIN_OVER_BASELINE:.0%} and a lower "
            f"confidence bound above it, got {lower:.1%})."
        )
    return GateResult(passed=not reasons, reasons=reasons, accuracy=accuracy,
                      majority_baseline=baseline,
                      largest_predicted_share=float(predicted_share[top]) if n else 0.0)
