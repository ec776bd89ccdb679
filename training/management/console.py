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
    """Keras vs exported-model headline numbers, then per-category P/R/F1/support."""
    metrics = version.metrics
    keras, tflite = metrics["keras_validation"], metrics["tflite_validation"]
    rows = [f"Validation ({tflite['count']} images)       Keras   TFLite ({version.quantization})",
            f"  accuracy                      {keras['accuracy']:.4f}  {tflite['accuracy']:.4f}",
            f"  top-3 accuracy                {keras['top3_accuracy']:.4f}  "
            f"{tflite['top3_accuracy']:.4f}",
            f"  macro-F1                      {keras['macro_f1']:.4f}  {tflite['macro_f1']:.4f}",
            "",
            f"{'Category (TFLite)':<28} {'precision':>9} {'recall':>7} {'F1':>6} {'support':>8}"]
    for label, m in tflite["per_class"].items():
        rows.append(f"{label[:28]:<28} {m['precision']:>9.3f} {m['recall']:>7.3f} "
                    f"{m['f1']:>6.3f} {m['support']:>8d}")
    return "\n".join(rows)
