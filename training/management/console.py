"""Console rendering for train_classifier: a tqdm progress bar and the final metrics table."""

from __future__ import annotations

from typing import Any

from tqdm import tqdm


class ProgressBar:
    """One tqdm bar over all batches of all epochs; its ETA is the run's training ETA.

    Created lazily on the first batch (the batch count is known only then). Log lines are
    printed above the bar with ``tqdm.write`` so they don't tear it.
    """

    def __init__(self, stream) -> None:
        self.stream = stream
        self.bar: tqdm | None = None

    def __enter__(self) -> ProgressBar:
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.bar is not None:
            self.bar.close()

    def update(self, event: dict[str, Any]) -> None:
        if event["event"] != "batch":
            return
        total = event["epochs"] * event["batches"]
        if self.bar is None:
            self.bar = tqdm(total=total, file=self.stream, unit="batch", dynamic_ncols=True)
        elif self.bar.total != total:  # the fine-tune phase adds epochs
            self.bar.total = total
        self.bar.set_description(f"epoch {event['epoch']}/{event['epochs']}")
        logs = event.get("logs", {})
        self.bar.set_postfix({k: f"{logs[k]:.3f}" for k in ("loss", "accuracy") if k in logs},
                             refresh=False)
        self.bar.n = (event["epoch"] - 1) * event["batches"] + event["batch"]
        self.bar.refresh()

    def write(self, line: str) -> None:
        tqdm.write(line, file=self.stream)


def metrics_table(version) -> str:
    """Held-out headline numbers, auto-fill, quantisation, per-category P/R/F1."""
    metrics = version.metrics
    heldout = metrics.get("oof") or metrics.get("tflite_validation") or {}
    method = {"stratified_group_kfold": "out of fold",
              "validation_split": "validation split"}.get(metrics.get("evaluated"), "held out")
    rows = [f"Held-out evaluation ({heldout.get('count', 0)} images, {method})",
            f"  accuracy                      {metrics.get('accuracy', 0):.4f}"
            f"   (always guessing the largest category: {metrics.get('baseline_accuracy', 0):.4f})",
            f"  top-3 accuracy                {metrics.get('top3_accuracy', 0):.4f}",
            f"  macro-F1                      {metrics.get('macro_f1', 0):.4f}"]
    rows += _auto_fill_rows(metrics.get("auto_fill"))
    rows += _quantization_rows(metrics.get("quantization"))
    gate = metrics.get("gate") or {}
    if gate and not gate.get("passed", True):
        rows += ["", "Quality gate FAILED (never activated automatically):"]
        rows += [f"  - {reason}" for reason in gate.get("reasons", [])]
    rows += ["", f"{'Category':<28} {'precision':>9} {'recall':>7} {'F1':>6} {'support':>8}"]
    for label, m in heldout.get("per_class", {}).items():
        rows.append(f"{label[:28]:<28} {m['precision']:>9.3f} {m['recall']:>7.3f} "
                    f"{m['f1']:>6.3f} {m['support']:>8d}")
    return "\n".join(rows)


def _auto_fill_rows(auto: dict | None) -> list[str]:
    if not auto:
        return []
    target = auto["target_precision"]
    if auto.get("threshold") is None and not auto.get("filled"):
        rows = ["", f"Auto-fill by confidence: no confidence reaches {target:.0%} precision on "
                "held-out products yet; such predictions go to review. Label more products."]
    else:
        rows = ["", f"Auto-fill by confidence (target precision {target:.0%}): "
                f"{auto['coverage']:.0%} of held-out products filled, "
                f"{auto['precision']:.0%} of them right"
                + (f" (global threshold {auto['threshold']:.2f})"
                   if auto.get("threshold") is not None else "")]
    rule = auto.get("near_duplicate") or {}
    if rule.get("answered"):
        state = "on" if rule.get("enabled") else f"off (not shown {target:.0%} precise)"
        rows.append(f"Auto-fill of near-duplicates of labelled products: {state}; measured "
                    f"{rule['correct']}/{rule['answered']} right at cosine >= {rule['cosine']}")
    return rows


def _quantization_rows(table: dict | None) -> list[str]:
    if not table or not table.get("candidates"):
        return []
    rows = ["", f"Export ({table['evaluated_on']} images)  TFLite acc  Keras acc  ms/image  size"]
    for name, row in table["candidates"].items():
        mark = "*" if name == table["chosen"] else " "
        rows.append(f" {mark}{name:<22} {row['accuracy']:>9.4f}  {row['keras_accuracy']:>9.4f}"
                    f"  {row['ms_per_image']:>8.2f}  {row['size_bytes'] / 1e6:.1f} MB")
    return rows
