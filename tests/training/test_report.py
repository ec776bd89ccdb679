"""The model version report: sentences, tables and SVG charts from stored metrics of any age."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import numpy as np
import pytest

from tests.support.model_metrics import calibrated_history, calibrated_metrics
from training.charts import confusion_svg, coverage_precision_svg, epochs_svg, nice_ticks
from training.evaluate import evaluate_probs
from training.report import auto_fill_sentence, model_version_report

LABELS = ["fruit", "tools", "musical-instruments"]
NAMES = {"fruit": "Fruit", "tools": "Tools",
         "musical-instruments": "Musical instruments and studio equipment"}
SVG = "{http://www.w3.org/2000/svg}"


def old_metrics() -> dict:
    """What versions trained before calibration store: Keras and TFLite on a validation split."""
    y_true = np.array([0, 0, 1, 1, 2, 2])
    full = evaluate_probs(y_true, np.eye(3)[[0, 1, 1, 1, 2, 0]], LABELS).to_dict()
    return {"accuracy": full["accuracy"], "top3_accuracy": 1.0, "macro_f1": full["macro_f1"],
            "validation_count": 6, "best_epoch": 2, "evaluated": "tflite_validation",
            "keras_validation": full, "tflite_validation": full}


def parse(svg: str) -> ET.Element:
    root = ET.fromstring(svg)  # well-formed, or this raises
    assert root.tag == f"{SVG}svg" and root.get("viewBox") and root.get("width") == "100%"
    return root


def texts(root: ET.Element) -> list[str]:
    return ["".join(t.itertext()) for t in root.iter(f"{SVG}text")]


def test_calibrated_version_report_has_every_section():
    report = model_version_report(metrics=calibrated_metrics(LABELS),
                                  history=calibrated_history(), names=NAMES)

    assert report["auto_fill"] == ("At confidence ≥ 0.83, 71% of products are filled "
                                   "automatically, 96% of them right (target 95%).")
    assert "5-fold cross-validation" in report["evaluation"]
    assert {h["label"]: h["value"] for h in report["headline"]}["Auto-fill precision"] == "96.0%"
    for chart in ("confusion", "reliability", "coverage"):
        parse(report[chart])
    assert set(report["curves"]) == {"loss", "accuracy"}
    assert "temperature 1.70" in report["calibration"] and "12.0%" in report["calibration"]
    rows = {row["slug"]: row for row in report["per_category"]}
    assert rows["tools"]["name"] == "Tools" and rows["tools"]["threshold"] == "0.70"
    assert report["per_category_auto_fill"] and report["gate"]["passed"]
    assert [q["name"] for q in report["quantization"] if q["chosen"]] == ["dynamic"]
    assert report["missing"] == []


def test_old_version_report_degrades_to_what_it_has():
    report = model_version_report(metrics=old_metrics(), history=calibrated_history(4),
                                  names=NAMES)

    assert report["auto_fill"] is None and report["reliability"] is None
    assert report["coverage"] is None and report["gate"] is None and not report["quantization"]
    assert "held-out validation images" in report["evaluation"]
    parse(report["confusion"])
    assert [row["tflite"] for row in report["keras_vs_tflite"]][0] == "66.67%"
    assert "auto-fill precision and coverage" in report["missing"]
    assert "confidence calibration" in report["missing"]
    assert {row["slug"] for row in report["per_category"]} == set(LABELS)


def test_empty_metrics_and_history_make_an_empty_report_not_an_error():
    report = model_version_report(metrics={}, history={}, names={})
    assert report["headline"] == [] and report["curves"] == {} and report["confusion"] is None
    assert "per-category results" in report["missing"]


def test_no_threshold_reaching_the_target_says_nothing_is_filled():
    metrics = {"auto_fill": {"target_precision": 0.95, "threshold": None, "coverage": 0.0,
                             "precision": None, "curve": []}}
    assert "no prediction fills a category on confidence alone" in auto_fill_sentence(metrics)
    rule = {"enabled": True, "answered": 40, "correct": 40, "cosine": 0.85}
    with_rule = auto_fill_sentence({"auto_fill": {**metrics["auto_fill"],
                                                  "near_duplicate": rule}})
    assert "near-duplicates of labelled products are filed like them" in with_rule
    assert "40 of 40" in with_rule
    off = auto_fill_sentence({"auto_fill": {**metrics["auto_fill"],
                                            "near_duplicate": {**rule, "enabled": False,
                                                               "correct": 30}}})
    assert "is off" in off and "30 of 40" in off and "short of" in off
    assert "95%" in auto_fill_sentence(metrics)


def test_confusion_matrix_names_both_axes_and_shortens_long_names_with_a_tooltip():
    root = parse(confusion_svg([NAMES[label] for label in LABELS],
                               [[5, 1, 0], [0, 6, 0], [2, 0, 4]]))
    shown = texts(root)
    assert "Predicted category →" in shown and "True category ↓" in shown
    long = NAMES["musical-instruments"]
    assert long not in [t.text for t in root.iter(f"{SVG}text")]
    titles = ["".join(t.itertext()) for t in root.iter(f"{SVG}title")]
    assert long in titles  # the full name stays available as a tooltip
    assert sum(1 for t in shown if t.startswith("Musical instrume")) == 2  # row and column
    assert {"5", "6", "4", "1", "2"} <= set(shown)


def test_loss_and_accuracy_charts_number_the_epochs_and_label_their_axes():
    history = calibrated_history(12)
    loss = parse(epochs_svg([("training", history["loss"], "#000", False)], y_label="Loss",
                            percent=False, markers=[(7, "fine tune"), (10, "best")]))
    accuracy = parse(epochs_svg([("training", history["accuracy"], "#000", False)],
                                y_label="Accuracy", percent=True))
    assert {"Epoch", "Loss", "1", "fine tune", "best"} <= set(texts(loss))
    assert {"Epoch", "Accuracy", "0%", "100%"} <= set(texts(accuracy))
    assert "%" not in "".join(texts(loss))


def test_a_curve_checked_every_few_epochs_is_drawn_at_those_epochs():
    from training.report import epoch_count, training_charts

    history = {"epoch": [20, 25, 30, 35], "val_loss": [1.0, 0.9, 0.8, 0.85],
               "val_accuracy": [0.5, 0.6, 0.7, 0.65], "loss": [], "accuracy": []}
    chart = parse(training_charts(history, None)["loss"])
    assert "Epoch" in texts(chart) and epoch_count(history) == 35
    xs = [float(point.split(",")[0]) for line in chart.iter(f"{SVG}polyline")
          for point in line.get("points").split()]
    assert len(xs) == 4 and xs[0] > 0.5 * xs[-1]  # epoch 20 sits right of the middle


def test_coverage_curve_marks_the_chosen_threshold_and_the_target():
    metrics = calibrated_metrics(LABELS)["auto_fill"]
    shown = texts(parse(coverage_precision_svg(metrics["curve"], chosen=metrics,
                                               target=metrics["target_precision"])))
    assert "≥ 0.83: 71% filled, 96% right" in shown and "target 95% right" in shown


@pytest.mark.parametrize(("low", "high", "expected"), [
    (0, 1, [0, 0.2, 0.4, 0.6, 0.8, 1.0]), (0, 2.3, [0, 0.5, 1.0, 1.5, 2.0, 2.5]),
    (0.7, 1.0, [0.7, 0.8, 0.9, 1.0]),
])
def test_nice_ticks_cover_the_range_with_round_steps(low, high, expected):
    assert nice_ticks(low, high) == pytest.approx(expected)
