"""Hand-made ModelVersion metrics in the calibrated, k-fold format (see the lead's METRICS notes).

Lets report and dashboard tests run on the new keys without training a model.
"""

from __future__ import annotations


def calibrated_metrics(labels: list[str], *, count_per_class: int = 10) -> dict:
    """Metrics as a calibrated out-of-fold evaluation stores them: every key the report shows."""
    n = len(labels)
    confusion = [[count_per_class - 2 if i == j else (2 if j == (i + 1) % n else 0)
                  for j in range(n)] for i in range(n)]
    per_class = {label: {"precision": 0.8, "recall": 0.8, "f1": 0.8, "support": count_per_class}
                 for label in labels}
    total = n * count_per_class
    bins = [{"lower": k / 10, "upper": (k + 1) / 10, "count": 0 if k < 2 else 3 + k,
             "confidence": k / 10 + 0.05, "accuracy": max(0.0, k / 10 - 0.05)}
            for k in range(10)]
    curve = [{"threshold": t / 100, "coverage": 1 - (t - 50) / 60, "precision": 0.8 + t / 600}
             for t in range(50, 100, 5)]
    return {
        "accuracy": 0.8, "macro_f1": 0.79, "top3_accuracy": 0.97, "validation_count": total,
        "evaluated": "oof_kfold", "baseline_accuracy": round(1 / n, 4),
        "evaluation": {"method": "stratified_kfold", "folds": 5, "count": total},
        "oof": {"labels": list(labels), "count": total, "accuracy": 0.8, "top3_accuracy": 0.97,
                "macro_f1": 0.79, "per_class": per_class, "confusion": confusion},
        "calibration": {"temperature": 1.7, "ece_before": 0.12, "ece_after": 0.03, "bins": bins},
        "auto_fill": {"target_precision": 0.95, "threshold": 0.83, "coverage": 0.71,
                      "precision": 0.96, "curve": curve,
                      "per_category": {label: {"threshold": 0.7 if i % 2 else 0.83,
                                               "source": "category" if i % 2 else "global",
                                               "count": count_per_class, "coverage": 0.8,
                                               "precision": 0.97}
                                       for i, label in enumerate(labels)}},
        "quantization": {"chosen": "dynamic", "evaluated_on": total, "candidates": {
            "float32": {"accuracy": 0.8, "keras_accuracy": 0.8, "ms_per_image": 12.3,
                        "size_bytes": 3_400_000},
            "dynamic": {"accuracy": 0.8, "keras_accuracy": 0.8, "ms_per_image": 9.1,
                        "size_bytes": 900_000}}},
        "gate": {"passed": True, "reasons": [], "majority_baseline": round(1 / n, 4),
                 "accuracy": 0.8, "largest_predicted_share": 0.2},
    }


def calibrated_history(epochs: int = 12) -> dict:
    """Per-epoch curves with a head phase then fine-tuning, as a transfer-learning run keeps."""
    loss = [2.0 / (1 + e / 3) for e in range(epochs)]
    accuracy = [min(0.95, 0.3 + e * 0.06) for e in range(epochs)]
    return {"loss": loss, "val_loss": [v * 1.1 for v in loss], "accuracy": accuracy,
            "val_accuracy": [v * 0.95 for v in accuracy],
            "phase": ["head"] * (epochs // 2) + ["fine_tune"] * (epochs - epochs // 2)}
