"""A model version's report: what its metrics mean for the shop, as sentences, tables and charts.

Works from the stored JSON only (``ModelVersion.metrics`` and ``history``), so it loads neither
TensorFlow nor the model, and imports no Django (like the rest of the pipeline side): charts are
SVG strings in which ``training.charts`` escapes every text, and the admin template inserts them
as they are. Versions trained before calibration and k-fold evaluation lack some keys; each
section is then left out and ``missing`` says what is not measured.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from training.charts import (
    TRAIN_COLOUR,
    VALIDATION_COLOUR,
    confusion_svg,
    coverage_precision_svg,
    epochs_svg,
    reliability_svg,
)


def percent(value: Any, digits: int = 0) -> str:
    return "—" if value is None else f"{float(value):.{digits}%}"


def evaluated_metrics(metrics: Mapping) -> dict | None:
    """The full metrics (labels, per class, confusion) of what the headline numbers describe.

    Out-of-fold predictions when the version has them; for older versions the entry named by
    ``evaluated`` (the exported model on the validation split).
    """
    metrics = metrics if isinstance(metrics, Mapping) else {}
    if isinstance(metrics.get("oof"), Mapping):
        return dict(metrics["oof"])
    entry = metrics.get(metrics.get("evaluated") or "tflite_validation")
    return dict(entry) if isinstance(entry, Mapping) and "labels" in entry else None


def auto_fill_sentence(metrics: Mapping) -> str | None:
    """E.g. "At confidence ≥ 0.83, 71% of products are filled automatically, 96% of them right."

    None when the version carries no auto-fill measurement.
    """
    auto = metrics.get("auto_fill") if isinstance(metrics, Mapping) else None
    if not isinstance(auto, Mapping):
        return None
    target = auto.get("target_precision")
    if auto.get("threshold") is None and not auto.get("coverage"):
        sentence = (f"No confidence threshold reaches {percent(target)} right on products the "
                    "model has not seen, so no prediction fills a category on confidence alone: "
                    "each waits for a person's review.")
    else:
        start = (f"At confidence ≥ {float(auto['threshold']):.2f}"
                 if auto.get("threshold") is not None else "With the per-category thresholds")
        sentence = (f"{start}, {percent(auto.get('coverage'))} of products are filled "
                    f"automatically, {percent(auto.get('precision'))} of them right "
                    f"(target {percent(target)}).")
    rule = auto.get("near_duplicate")
    if isinstance(rule, Mapping) and rule.get("answered"):
        measured = f"{rule['correct']} of {rule['answered']} labelled images"
        if rule.get("enabled"):
            sentence += (f" New photos that are near-duplicates of labelled products are filed "
                         f"like them when the model agrees (measured right for {measured}).")
        elif rule["correct"] == rule["answered"]:
            sentence += (f" Filing near-duplicates of labelled products like them is off: it "
                         f"was right for {measured}, too few to show {percent(target)}.")
        else:
            sentence += (f" Filing near-duplicates of labelled products like them is off: it "
                         f"was right for {measured}, short of {percent(target)}.")
    return sentence


def evaluation_sentence(metrics: Mapping, quantization: str) -> str:
    """How the numbers were measured, in words an operator can weigh."""
    evaluation = metrics.get("evaluation")
    if isinstance(evaluation, Mapping) and evaluation.get("folds"):
        return (f"Measured on {evaluation.get('count', metrics.get('validation_count', '?'))} "
                f"labelled images by {evaluation['folds']}-fold cross-validation: every image "
                "was predicted by a model that never saw it.")
    count = metrics.get("validation_count") or (evaluated_metrics(metrics) or {}).get("count")
    return (f"Measured on {count or 'the'} held-out validation images with the exported "
            f"{quantization} model.")


def headline(metrics: Mapping) -> list[dict[str, str]]:
    """The big numbers at the top of the report (only those the version has)."""
    auto = metrics.get("auto_fill") if isinstance(metrics.get("auto_fill"), Mapping) else {}
    rows = [("Accuracy", metrics.get("accuracy"), "top prediction right"),
            ("Top-3 accuracy", metrics.get("top3_accuracy"), "right category among the top 3"),
            ("Macro-F1", metrics.get("macro_f1"), "balance over categories"),
            ("Auto-fill precision", auto.get("precision"), "filled categories that are right"),
            ("Auto-fill coverage", auto.get("coverage"), "products filled without review"),
            ("Majority baseline", metrics.get("baseline_accuracy"),
             "always guessing the largest category")]
    return [{"label": label, "value": percent(value, 1), "note": note}
            for label, value, note in rows if value is not None]


def per_category_rows(metrics: Mapping, names: Mapping[str, str]) -> list[dict[str, Any]]:
    """One row per category: precision, recall, F1, support, and its auto-fill numbers."""
    evaluated = evaluated_metrics(metrics) or {}
    auto = (metrics.get("auto_fill") or {}).get("per_category") or {}
    rows = []
    for slug, scores in (evaluated.get("per_class") or {}).items():
        fill = auto.get(slug) or {}
        rows.append({
            "slug": slug, "name": names.get(slug, slug),
            "precision": percent(scores.get("precision")), "recall": percent(scores.get("recall")),
            "f1": percent(scores.get("f1")), "support": scores.get("support", "—"),
            "threshold": ("—" if fill.get("threshold") is None
                          else f"{float(fill['threshold']):.2f}"),
            "threshold_source": fill.get("source", ""),
            "fill_coverage": percent(fill.get("coverage")),
            "fill_precision": percent(fill.get("precision")),
        })
    return rows


def calibration_sentence(calibration: Mapping) -> str:
    temperature = calibration.get("temperature")
    before, after = calibration.get("ece_before"), calibration.get("ece_after")
    text = "Confidences are calibrated"
    if temperature is not None:
        text += f" (temperature {float(temperature):.2f})"
    if before is not None and after is not None:
        text += (f": on average a confidence is off by {percent(after, 1)} from how often the "
                 f"model is right (expected calibration error), {percent(before, 1)} before "
                 "calibration")
    return text + "."


def quantization_rows(quantization: Mapping) -> list[dict[str, Any]]:
    chosen = quantization.get("chosen")
    rows = []
    for name, item in (quantization.get("candidates") or {}).items():
        size = item.get("size_bytes")
        ms = item.get("ms_per_image")
        rows.append({"name": name, "chosen": name == chosen,
                     "accuracy": percent(item.get("accuracy"), 1),
                     "keras_accuracy": percent(item.get("keras_accuracy"), 1),
                     "ms": "—" if ms is None else f"{float(ms):.1f}",
                     "size": "—" if size is None else f"{int(size) / 1e6:.1f} MB"})
    return rows


def keras_vs_tflite_rows(metrics: Mapping) -> list[dict[str, str]]:
    """Older versions: the Keras model beside its exported file, on the same validation images."""
    keras, tflite = metrics.get("keras_validation"), metrics.get("tflite_validation")
    if not isinstance(keras, Mapping):
        return []
    names = [("Accuracy", "accuracy"), ("Top-3 accuracy", "top3_accuracy"),
             ("Macro-F1", "macro_f1")]
    return [{"label": label, "keras": percent(keras.get(key), 2),
             "tflite": percent(tflite.get(key), 2) if isinstance(tflite, Mapping) else "—"}
            for label, key in names]


def training_charts(history: Mapping, best_epoch: Any) -> dict[str, str]:
    """Separate loss and accuracy charts (different units), with the best epoch and phases."""
    history = history if isinstance(history, Mapping) else {}
    markers = _phase_markers(history.get("phase") or [])
    if isinstance(best_epoch, int) and best_epoch > 0:
        markers.append((best_epoch, "best"))
    charts = {}
    # A cross-validated head records its held-out curve every few epochs ("epoch" lists them).
    epochs = history.get("epoch") or None
    for key, label, percent_axis in (("loss", "Loss", False), ("accuracy", "Accuracy", True)):
        series = [("training", history.get(key) or [], TRAIN_COLOUR, False),
                  ("validation", history.get(f"val_{key}") or [], VALIDATION_COLOUR, True)]
        if any(values for _, values, _, _ in series):
            charts[key] = epochs_svg(series, y_label=label, percent=percent_axis,
                                     markers=markers, epochs=epochs)
    return charts


def epoch_count(history: Mapping) -> int:
    """Epochs the curves cover (the last checked epoch for a cross-validated head)."""
    history = history if isinstance(history, Mapping) else {}
    if history.get("epoch"):
        return int(max(history["epoch"]))
    return max(len(history.get("loss") or []), len(history.get("val_loss") or []))


def _phase_markers(phases: list) -> list[tuple[int, str]]:
    """A marker where the training phase changes (e.g. "head" to "fine_tune")."""
    return [(epoch, str(phase).replace("_", " ")) for epoch, (before, phase)
            in enumerate(zip(phases, phases[1:], strict=False), start=2) if phase != before]


def model_version_report(*, metrics: Mapping, history: Mapping, names: Mapping[str, str],
                         quantization: str = "float32") -> dict[str, Any]:
    """Everything the report template shows, in reading order; absent sections are None/empty.

    Args:
        metrics: ``ModelVersion.metrics`` (any age).
        history: ``ModelVersion.history``.
        names: category slug -> display name (slugs are shown for unknown ones).
        quantization: the version's stored quantization, for the older evaluation sentence.
    """
    metrics = metrics if isinstance(metrics, Mapping) else {}
    evaluated = evaluated_metrics(metrics)
    auto = metrics.get("auto_fill") if isinstance(metrics.get("auto_fill"), Mapping) else None
    calibration = metrics.get("calibration") if isinstance(metrics.get("calibration"),
                                                            Mapping) else None
    report = {
        "evaluation": evaluation_sentence(metrics, quantization),
        "headline": headline(metrics), "auto_fill": auto_fill_sentence(metrics),
        "gate": metrics.get("gate") if isinstance(metrics.get("gate"), Mapping) else None,
        "per_category": per_category_rows(metrics, names),
        "per_category_auto_fill": bool(auto and auto.get("per_category")),
        "confusion": None, "reliability": None, "coverage": None, "calibration": None,
        "quantization": quantization_rows(metrics.get("quantization") or {}),
        "keras_vs_tflite": keras_vs_tflite_rows(metrics),
        "curves": training_charts(history, metrics.get("best_epoch")),
        "best_epoch": metrics.get("best_epoch"),
        "epochs": epoch_count(history),
        "cross_validated": bool(isinstance(history, Mapping) and history.get("epoch")),
    }
    if evaluated and evaluated.get("confusion"):
        report["confusion"] = confusion_svg(
            [names.get(label, label) for label in evaluated["labels"]], evaluated["confusion"])
    if calibration and calibration.get("bins"):
        report["reliability"] = reliability_svg(calibration["bins"])
        report["calibration"] = calibration_sentence(calibration)
    if auto and auto.get("curve"):
        report["coverage"] = coverage_precision_svg(
            auto["curve"], chosen=auto, target=auto.get("target_precision"))
    report["missing"] = _missing(report)
    return report


def _missing(report: Mapping) -> list[str]:
    """What this version's evaluation lacks, so an empty section is explained, not a mystery."""
    missing = []
    if report["auto_fill"] is None:
        missing.append("auto-fill precision and coverage")
    if report["reliability"] is None:
        missing.append("confidence calibration")
    if report["confusion"] is None:
        missing.append("per-category results")
    return missing
