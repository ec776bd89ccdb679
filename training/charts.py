"""Inline SVG charts for a model version's report: confusion matrix, reliability, auto-fill curve,
training curves.

Server-side strings, no JavaScript or chart library, nothing to download: each chart has a
``viewBox`` and ``width="100%"``, so it scales with the page, and text uses ``currentColor`` so
the admin's light and dark themes both read. Long category names are shortened with an
ellipsis; the full name is in a ``<title>`` (a tooltip).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

# Colours readable on white and on the admin's dark background.
TRAIN_COLOUR = "#2f6fb0"
VALIDATION_COLOUR = "#d9822b"
CELL_COLOUR = "#2f6fb0"
GOOD_COLOUR = "#3a9d3a"
FONT = 'font-family="inherit" font-size="13"'
# Category names longer than this are cut with "…" (the full name is the tooltip).
MAX_NAME_CHARS = 18
# Average width of a character at the charts' 13-unit font, for sizing margins to labels.
CHAR_WIDTH = 7.2
# Line charts: at most this many tick labels per axis, so labels never collide.
MAX_TICKS = 8
# Annotations drawn over lines get an outline in the page's background colour, so they stay
# readable where they cross a curve.
HALO = 'style="paint-order:stroke;stroke:var(--body-bg,#fff);stroke-width:4px"'


def _short(name: str, limit: int = MAX_NAME_CHARS) -> str:
    return name if len(name) <= limit else name[: limit - 1] + "…"


def _text(x: float, y: float, body: str, *, anchor: str = "start", extra: str = "",
          tooltip: str | None = None) -> str:
    title = f"<title>{escape(tooltip)}</title>" if tooltip else ""
    return (f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" fill="currentColor" '
            f"{extra}>{title}{escape(body)}</text>")


# Charts grow with the page up to this factor of their drawn size, so a three-category matrix
# does not turn into a poster on a wide screen.
MAX_SCALE = 1.25


def _svg(width: int, height: int, label: str, body: list[str], *, min_width: int = 0) -> str:
    style = f"max-width:{round(width * MAX_SCALE)}px"
    if min_width:
        style += f";min-width:{min_width}px"
    return (f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
            f'width="100%" role="img" aria-label="{escape(label)}" {FONT} style="{style}">'
            f"<title>{escape(label)}</title>{''.join(body)}</svg>")


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Round tick values covering ``low..high`` (1, 2 or 5 times a power of ten apart)."""
    if high <= low:
        high = low + 1
    raw = (high - low) / max(1, count)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    start = math.floor(low / step + 1e-9) * step  # 0.7 / 0.1 is 6.999…
    ticks, value = [], start
    while value <= high + step * 1e-9:
        ticks.append(round(value, 10))
        value += step
    if ticks[-1] < high:
        ticks.append(round(value, 10))
    return ticks


# --- confusion matrix ----------------------------------------------------------------------------


def confusion_svg(names: Sequence[str], matrix: Sequence[Sequence[int]]) -> str:
    """Rows are the true categories, columns the predicted ones; colour is the row's share.

    Args:
        names: category names in the matrix's order.
        matrix: ``matrix[i][j]`` = images of ``names[i]`` predicted as ``names[j]``.
    """
    n = len(names)
    cell = 44 if n <= 12 else 30
    # Margins fit the longest (shortened) name: row labels on the left, column labels rotated
    # 50 degrees above (sin 50° ≈ 0.77 of their length upwards).
    longest = max((len(_short(name)) for name in names), default=0) * CHAR_WIDTH
    left, top = max(130, round(longest) + 20), max(64, round(longest * 0.77) + 34)
    width, height = left + n * cell + 60, top + n * cell + 10
    # Axis titles sit in the empty top-left corner, clear of every category name.
    body = [_text(4, 18, "Predicted category →", extra='font-weight="600"'),
            _text(left - 8, top - 8, "True category ↓", anchor="end", extra='font-weight="600"'),
            _text(left + n * cell + 30, top - 8, "images", anchor="middle",
                  extra='font-size="11"')]
    for j, name in enumerate(names):
        x = left + j * cell + cell / 2 + 4
        body.append(_text(x, top - 8, _short(name), tooltip=name,
                          extra=f'transform="rotate(-50 {x:.1f} {top - 8})"'))
    for i, row in enumerate(matrix):
        body += _confusion_row(i, row, names[i], left=left, top=top, cell=cell)
    return _svg(width, height, "Confusion matrix: true category by predicted category", body,
                min_width=min(width, 520))


def _confusion_row(i: int, row: Sequence[int], name: str, *, left: int, top: int,
                   cell: int) -> list[str]:
    total = sum(row)
    y = top + i * cell
    parts = [_text(left - 8, y + cell / 2 + 4, _short(name), anchor="end", tooltip=name)]
    for j, count in enumerate(row):
        share = count / total if total else 0.0
        x = left + j * cell
        tip = f"{name} predicted as column {j + 1}: {count} of {total} ({share:.0%})"
        outline = ' stroke="currentColor" stroke-opacity="0.5"' if i == j else ""
        parts.append(f'<rect x="{x}" y="{y}" width="{cell - 2}" height="{cell - 2}" '
                     f'fill="{CELL_COLOUR}" fill-opacity="{0.06 + 0.94 * share:.3f}"{outline}>'
                     f"<title>{escape(tip)}</title></rect>")
        colour = 'fill="#fff"' if share > 0.5 else 'fill="currentColor"'
        weight = ' font-weight="600"' if count else ' fill-opacity="0.45"'
        parts.append(f'<text x="{x + (cell - 2) / 2:.1f}" y="{y + cell / 2 + 3:.1f}" '
                     f'text-anchor="middle" {colour}{weight}>{count}</text>')
    parts.append(_text(left + len(row) * cell + 30, y + cell / 2 + 4, str(total),
                       anchor="middle", extra='fill-opacity="0.7"'))
    return parts


# --- frame for x/y charts ----------------------------------------------------------------------


@dataclass(frozen=True)
class Frame:
    """Plot area inside a fixed viewBox, mapping data values to SVG coordinates."""

    width: int = 520
    height: int = 320
    left: int = 64
    right: int = 26  # room for the last x tick label ("100%") centred on the edge
    top: int = 34
    bottom: int = 52
    x_range: tuple[float, float] = (0.0, 1.0)
    y_range: tuple[float, float] = (0.0, 1.0)

    def x(self, value: float) -> float:
        low, high = self.x_range
        span = (high - low) or 1
        return self.left + (value - low) / span * (self.width - self.left - self.right)

    def y(self, value: float) -> float:
        low, high = self.y_range
        span = (high - low) or 1
        return self.height - self.bottom - (value - low) / span * (
            self.height - self.top - self.bottom)

    def axes(self, x_ticks: Sequence[tuple[float, str]], y_ticks: Sequence[tuple[float, str]],
             x_label: str, y_label: str) -> list[str]:
        """Grid lines, tick labels and axis titles."""
        bottom, right = self.height - self.bottom, self.width - self.right
        parts = []
        for value, label in y_ticks:
            y = self.y(value)
            parts.append(f'<line x1="{self.left}" x2="{right}" y1="{y:.1f}" y2="{y:.1f}" '
                         'stroke="currentColor" stroke-opacity="0.15"/>')
            parts.append(_text(self.left - 6, y + 4, label, anchor="end"))
        for value, label in x_ticks:
            x = self.x(value)
            parts.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{bottom}" y2="{bottom + 5}" '
                         'stroke="currentColor" stroke-opacity="0.6"/>')
            parts.append(_text(x, bottom + 19, label, anchor="middle"))
        parts.append(f'<path d="M{self.left} {self.top} V{bottom} H{right}" fill="none" '
                     'stroke="currentColor" stroke-opacity="0.6"/>')
        parts.append(_text((self.left + right) / 2, self.height - 8, x_label, anchor="middle",
                           extra='font-weight="600"'))
        mid = (self.top + bottom) / 2
        parts.append(_text(16, mid, y_label, anchor="middle",
                           extra=f'font-weight="600" transform="rotate(-90 16 {mid:.1f})"'))
        return parts

    def polyline(self, points: Sequence[tuple[float, float]], colour: str,
                 dashed: bool = False) -> str:
        coords = " ".join(f"{self.x(x):.1f},{self.y(y):.1f}" for x, y in points)
        dash = ' stroke-dasharray="6 4"' if dashed else ""
        dots = "".join(f'<circle cx="{self.x(x):.1f}" cy="{self.y(y):.1f}" r="2.5" '
                       f'fill="{colour}"/>' for x, y in points) if len(points) <= 60 else ""
        return (f'<polyline points="{coords}" fill="none" stroke="{colour}" stroke-width="2"'
                f"{dash}/>{dots}")

    def legend(self, items: Sequence[tuple[str, str, bool]]) -> list[str]:
        """One row of ``(label, colour, dashed)`` entries above the plot, right-aligned."""
        parts, x = [], self.width - self.right
        for label, colour, dashed in reversed(items):
            x -= 8 + len(label) * CHAR_WIDTH
            parts.append(_text(x + 26, 18, label))
            dash = ' stroke-dasharray="6 4"' if dashed else ""
            parts.append(f'<line x1="{x}" x2="{x + 22}" y1="14" y2="14" stroke="{colour}" '
                         f'stroke-width="2"{dash}/>')
            x -= 30
        return parts


def _percent_ticks(low: float, high: float) -> list[tuple[float, str]]:
    return [(t, f"{t:.0%}") for t in nice_ticks(low, high, 5) if low - 1e-9 <= t <= high + 1e-9]


# --- reliability diagram -----------------------------------------------------------------------


def reliability_svg(bins: Sequence[dict]) -> str:
    """Accuracy per confidence bin against the diagonal of perfect calibration.

    A bar below the diagonal means the model is over-confident there. Each bar is labelled
    with its image count (few images = a noisy bar).
    """
    frame = Frame()
    body = frame.axes([(t, f"{t:.1f}") for t in nice_ticks(0, 1, 5)], _percent_ticks(0, 1),
                      "Confidence the model gave", "Share right")
    body.append(f'<line x1="{frame.x(0):.1f}" y1="{frame.y(0):.1f}" x2="{frame.x(1):.1f}" '
                f'y2="{frame.y(1):.1f}" stroke="currentColor" stroke-opacity="0.5" '
                'stroke-dasharray="4 4"/>')
    for item in bins:
        count = int(item.get("count") or 0)
        if not count:
            continue
        lower, upper = float(item["lower"]), float(item["upper"])
        accuracy = float(item.get("accuracy") or 0)
        x0, x1, y = frame.x(lower) + 1, frame.x(upper) - 1, frame.y(accuracy)
        tip = (f"confidence {lower:.1f}–{upper:.1f}: {count} images, {accuracy:.0%} right "
               f"(mean confidence {float(item.get('confidence') or 0):.0%})")
        body.append(f'<rect x="{x0:.1f}" y="{y:.1f}" width="{x1 - x0:.1f}" '
                     f'height="{frame.y(0) - y:.1f}" fill="{TRAIN_COLOUR}" fill-opacity="0.75">'
                     f"<title>{escape(tip)}</title></rect>")
        # A bar reaching the top carries its count inside, clear of the legend above the plot.
        label_y = y - 4 if y - 4 >= frame.top + 16 else y + 14
        body.append(_text((x0 + x1) / 2, label_y, str(count), anchor="middle",
                          extra=f'font-size="11" {HALO}'))
    body += frame.legend([("share right (n = images)", TRAIN_COLOUR, False),
                          ("perfectly calibrated", "currentColor", True)])
    return _svg(frame.width, frame.height, "Reliability diagram: share right per confidence",
                body)


# --- coverage-precision curve -------------------------------------------------------------------


def coverage_precision_svg(curve: Sequence[dict], *, chosen: dict | None = None,
                           target: float | None = None) -> str:
    """How many products fill automatically (x) against how many of those are right (y).

    Each point is one confidence threshold; the chosen threshold is circled and labelled, the
    target precision is a dashed line.
    """
    points = sorted((float(p["coverage"]), float(p["precision"]), float(p["threshold"]))
                    for p in curve if p.get("coverage") is not None
                    and p.get("precision") is not None)
    lowest = min([p[1] for p in points] + ([target] if target else []) + [1.0])
    y_low = max(0.0, math.floor(lowest * 10) / 10 - 0.1) if points else 0.0
    frame = Frame(y_range=(y_low, 1.0))
    body = frame.axes(_percent_ticks(0, 1), _percent_ticks(y_low, 1.0),
                      "Share of products filled automatically", "Share of those right")
    if target is not None:
        y = frame.y(target)
        body.append(f'<line x1="{frame.left}" x2="{frame.width - frame.right}" y1="{y:.1f}" '
                    f'y2="{y:.1f}" stroke="{GOOD_COLOUR}" stroke-dasharray="6 4"/>')
        body.append(_text(frame.left + 6, y - 5, f"target {target:.0%} right", extra=HALO))
    if points:
        body.append(frame.polyline([(c, p) for c, p, _ in points], TRAIN_COLOUR))
    if chosen and chosen.get("coverage") is not None and chosen.get("precision") is not None:
        body += _chosen_point(frame, chosen)
    return _svg(frame.width, frame.height, "Auto-fill: coverage against precision", body)


def _chosen_point(frame: Frame, chosen: dict) -> list[str]:
    x, y = frame.x(float(chosen["coverage"])), frame.y(float(chosen["precision"]))
    where = ("per-category thresholds" if chosen.get("threshold") is None
             else f"≥ {float(chosen['threshold']):.2f}")
    label = (f"{where}: {float(chosen['coverage']):.0%} filled, "
             f"{float(chosen['precision']):.0%} right")
    # Keep the label inside the plot: to the left of the point when it sits on the right half.
    anchor, dx = ("end", -10) if x > (frame.left + frame.width) / 2 else ("start", 10)
    return [f'<circle cx="{x:.1f}" cy="{y:.1f}" r="6" fill="none" stroke="{VALIDATION_COLOUR}" '
            'stroke-width="3"/>',
            _text(x + dx, min(y + 20, frame.height - frame.bottom - 6), label, anchor=anchor,
                  extra=f'font-weight="600" {HALO}')]


# --- training curves -----------------------------------------------------------------------------


def _epoch_ticks(epochs: int) -> list[tuple[float, str]]:
    step = max(1, math.ceil(epochs / MAX_TICKS))
    ticks = list(range(1, epochs + 1, step))
    return [(t, str(t)) for t in ticks]


def epochs_svg(series: Sequence[tuple[str, Sequence[float], str, bool]], *, y_label: str,
               percent: bool, markers: Sequence[tuple[int, str]] = (),
               epochs: Sequence[int] | None = None) -> str:
    """Per-epoch values (epochs numbered from 1) as lines, with optional vertical markers.

    Args:
        series: ``(label, values, colour, dashed)``; empty series are left out.
        y_label: the y axis title ("Loss", "Accuracy").
        percent: show the y axis 0-100 % (accuracy) instead of 0..max (loss).
        markers: ``(epoch, label)`` vertical lines, e.g. the best epoch.
        epochs: the epoch of each value when they are not 1, 2, 3... (a curve checked every
            few epochs).
    """
    series = [(label, [float(v) for v in values if v is not None], colour, dashed)
              for label, values, colour, dashed in series if values]
    positions = list(epochs) if epochs else None
    epochs = (max(positions) if positions
              else max((len(values) for _, values, _, _ in series), default=0))
    if percent:
        y_range, y_ticks = (0.0, 1.0), _percent_ticks(0, 1)
    else:
        top = max((max(values) for _, values, _, _ in series), default=1.0)
        ticks = nice_ticks(0, top, 5)
        y_range, y_ticks = (0.0, ticks[-1]), [(t, f"{t:g}") for t in ticks]
    frame = Frame(x_range=(1, max(2, epochs)), y_range=y_range)
    body = frame.axes(_epoch_ticks(epochs), y_ticks, "Epoch", y_label)
    for row, (epoch, label) in enumerate(sorted(markers)):
        x = frame.x(epoch)
        body.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{frame.top}" '
                    f'y2="{frame.height - frame.bottom}" stroke="currentColor" '
                    'stroke-opacity="0.45" stroke-dasharray="2 3"/>')
        # One row per marker, so labels of neighbouring epochs never sit on each other; near
        # the right edge the label goes to the left of its line.
        right = x > frame.width - frame.right - 70
        body.append(_text(x - 4 if right else x + 4, frame.top + 12 + 13 * row, label,
                          anchor="end" if right else "start", extra=f'font-size="11" {HALO}'))
    for _label, values, colour, dashed in series:
        xs = positions[:len(values)] if positions else range(1, len(values) + 1)
        body.append(frame.polyline(list(zip(xs, values)), colour, dashed))
    body += frame.legend([(label, colour, dashed) for label, _, colour, dashed in series])
    return _svg(frame.width, frame.height, f"{y_label} per epoch", body)


# --- weekly classification figures (drift) ------------------------------------------------------


def weekly_figures_svg(week_labels: Sequence[str],
                       series: Sequence[tuple[str, Sequence[float | None], str]], *,
                       references: Sequence[tuple[str, float, str]] = (),
                       tooltips: Sequence[str] = ()) -> str:
    """Shares per ISO week (0-100 %) as lines; the model's validation values as dashed lines.

    Drawn narrower than the report's charts (400 units), with a two-row legend, so a phone
    shrinks its text by a fifth at most (to ~10 px on a 390 px screen).

    Args:
        week_labels: one label per week, oldest first ("2025-W11"); shown as "W11".
        series: ``(label, value per week or None for an empty week, colour)``.
        references: ``(label, value, colour)`` horizontal dashed lines (validation figures).
        tooltips: one text per week (counts), shown when hovering its points.
    """
    frame = Frame(width=400, height=290, top=56, x_range=(0, max(1, len(week_labels) - 1)))
    step = max(1, math.ceil(len(week_labels) / 6))
    x_ticks = [(i, f"W{label.rsplit('W', 1)[-1]}") for i, label in enumerate(week_labels)
               if (len(week_labels) - 1 - i) % step == 0]
    body = frame.axes(x_ticks, _percent_ticks(0, 1), "ISO week", "Share of predictions")
    for label, value, colour in references:
        y = frame.y(float(value))
        body.append(f'<line x1="{frame.left}" x2="{frame.width - frame.right}" y1="{y:.1f}" '
                    f'y2="{y:.1f}" stroke="{colour}" stroke-dasharray="6 4" stroke-opacity="0.8">'
                    f"<title>{escape(f'{label}: {float(value):.0%}')}</title></line>")
    for label, values, colour in series:
        body += _week_segments(frame, label, values, colour, week_labels, tooltips)
    legend = [(label, colour, False) for label, _, colour in series]
    legend += [("validation (dashed)", "currentColor", True)] if references else []
    body += _legend_rows(legend, per_row=2)
    return _svg(frame.width, frame.height, "Classification per week: auto-filled, sent to "
                "review, mean confidence", body)


def _week_segments(frame: Frame, label: str, values: Sequence[float | None], colour: str,
                   week_labels: Sequence[str], tooltips: Sequence[str]) -> list[str]:
    """A line through consecutive weeks with a value (an empty week breaks it), a dot per week."""
    parts, run = [], []
    for i, value in enumerate([*values, None]):
        if value is not None:
            run.append((i, float(value)))
            continue
        if len(run) > 1:
            parts.append(frame.polyline(run, colour))
        for x, y in run:
            tip = f"{week_labels[x]}: {label} {y:.0%}" + (
                f" ({tooltips[x]})" if x < len(tooltips) and tooltips[x] else "")
            parts.append(f'<circle cx="{frame.x(x):.1f}" cy="{frame.y(y):.1f}" r="4" '
                         f'fill="{colour}"><title>{escape(tip)}</title></circle>')
        run = []
    return parts


def _legend_rows(items: Sequence[tuple[str, str, bool]], *, per_row: int) -> list[str]:
    """Legend entries left-aligned in rows of ``per_row`` above the plot."""
    parts = []
    for n, (label, colour, dashed) in enumerate(items):
        x, y = 8 + (n % per_row) * 195, 16 + (n // per_row) * 18
        dash = ' stroke-dasharray="6 4"' if dashed else ""
        parts.append(f'<line x1="{x}" x2="{x + 22}" y1="{y - 4}" y2="{y - 4}" stroke="{colour}" '
                     f'stroke-width="2"{dash}/>')
        parts.append(_text(x + 28, y, label))
    return parts
