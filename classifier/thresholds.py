"""Auto-fill thresholds: the confidence a prediction needs to fill a product's category itself.

Chosen per model version at training time (``training/calibration.py``) and stored on it; kept
TensorFlow- and Django-free so training, the serving code and reports read them the same way.
"""

from __future__ import annotations

# Above every probability: a prediction never reaches it.
NEVER_AUTO_FILL = 1.01


def auto_fill_threshold(thresholds: dict, label: str, default: float) -> float:
    """The confidence a prediction of ``label`` needs to fill the shop category.

    ``thresholds`` is ``{"global": t | None, "per_category": {label: t | None}, ...}``: a
    category's own threshold when training chose one, else the global one. An empty dict (a
    version trained before thresholds existed) gives ``default`` (the settings' threshold); a
    ``None`` threshold means no confidence was shown precise enough, so nothing is filled.
    """
    if not thresholds:
        return default
    per_category = thresholds.get("per_category") or {}
    value = per_category[label] if label in per_category else thresholds.get("global")
    return NEVER_AUTO_FILL if value is None else float(value)
