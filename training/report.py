"""Small PNG charts for the admin (confusion matrix, learning curves), drawn with Pillow only.

Pillow is already a dependency; matplotlib is not, and two simple charts don't justify one.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

from PIL import Image, ImageDraw, ImageFont

# Cell size keeps a 20-class matrix under ~600 px wide; labels are cut to fit the margin.
CELL = 28
LABEL_MARGIN = 110
MAX_LABEL_CHARS = 16
CURVE_SIZE = (560, 300)
CURVE_PAD = 40
CURVE_COLOURS = {"loss": (31, 119, 180), "val_loss": (255, 127, 14),
                 "accuracy": (44, 160, 44), "val_accuracy": (214, 39, 40)}


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def plot_confusion_matrix_png(metrics: Any) -> bytes:
    """Confusion matrix as a PNG: rows are true classes, columns predictions, darker = more.

    Args:
        metrics: a ``training.evaluate.Metrics`` or its ``to_dict()``.
    """
    data = metrics if isinstance(metrics, dict) else metrics.to_dict()
    labels: Sequence[str] = data["labels"]
    matrix: list[list[int]] = data["confusion"]
    n = len(labels)
    size = (LABEL_MARGIN + n * CELL + 10, LABEL_MARGIN + n * CELL + 10)
    image = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default()
    for i, row in enumerate(matrix):
        total = max(1, sum(row))
        for j, count in enumerate(row):
            shade = int(255 * (1 - count / total))
            x, y = LABEL_MARGIN + j * CELL, LABEL_MARGIN + i * CELL
            draw.rectangle([x, y, x + CELL - 1, y + CELL - 1], fill=(shade, shade, 255),
                           outline=(200, 200, 200))
            draw.text((x + 4, y + 8), str(count), fill="black" if shade > 128 else "white",
                      font=font)
    for k, label in enumerate(labels):
        short = label[:MAX_LABEL_CHARS]
        draw.text((4, LABEL_MARGIN + k * CELL + 8), short, fill="black", font=font)
        # Column labels are numbered; the row label with the same number names them.
        draw.text((LABEL_MARGIN + k * CELL + 4, LABEL_MARGIN - 16), str(k), fill="black", font=font)
        draw.text((4 + len(short) * 6 + 4, LABEL_MARGIN + k * CELL + 8), f"({k})", fill="gray",
                  font=font)
    draw.text((4, 8), "true (rows) vs predicted (columns)", fill="black", font=font)
    return _png(image)


def plot_curves_png(history: dict[str, list]) -> bytes:
    """Loss and accuracy per epoch (train and validation) as a PNG line chart.

    All series share one 0..max axis; accuracy lives in 0..1 and loss usually starts near
    ln(classes), so both stay readable on small runs.
    """
    width, height = CURVE_SIZE
    image = Image.new("RGB", CURVE_SIZE, "white")
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default()
    series = {k: [float(v) for v in history.get(k, [])] for k in CURVE_COLOURS}
    series = {k: v for k, v in series.items() if v}
    epochs = max((len(v) for v in series.values()), default=0)
    top = max([1.0] + [max(v) for v in series.values()])
    left, bottom = CURVE_PAD, height - CURVE_PAD
    draw.line([left, CURVE_PAD, left, bottom, width - 10, bottom], fill="black")
    draw.text((4, CURVE_PAD - 6), f"{top:.2f}", fill="black", font=font)
    draw.text((4, bottom - 6), "0", fill="black", font=font)

    def point(i: int, value: float) -> tuple[float, float]:
        x = left + (width - 10 - left) * (i / max(1, epochs - 1))
        return x, bottom - (bottom - CURVE_PAD) * (value / top)

    for row, (name, values) in enumerate(series.items()):
        colour = CURVE_COLOURS[name]
        points = [point(i, v) for i, v in enumerate(values)]
        if len(points) > 1:
            draw.line(points, fill=colour, width=2)
        for x, y in points:
            draw.ellipse([x - 2, y - 2, x + 2, y + 2], fill=colour)
        draw.text((width - 120, 8 + row * 12), name, fill=colour, font=font)
    draw.text((left, bottom + 8), f"epochs 1..{epochs}", fill="black", font=font)
    return _png(image)
