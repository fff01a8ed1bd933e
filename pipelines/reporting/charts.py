"""Inline SVG charts for the HTML report: pure functions from data to markup, no dependencies.

Every chart is an `<svg>` with a `viewBox` (it scales to its container's width), a
`<title>`, and marks of class `mark` that carry a `<title>` tooltip. Text is escaped
here, so callers pass plain strings, and cut here, so that no value makes the page large:
SHOWN_CHARS of it where it is drawn, TOOLTIP_CHARS in a tooltip. `top_series` and
`top_items` keep a chart to its TOP_SERIES largest series or bars and one "other".
Colours, fonts and hover effects come from the page's stylesheet through the classes used
below (`axis`, `grid`, `label`, `value`, `hover`, `empty`).
"""

from __future__ import annotations

import html
import math
import unicodedata
from dataclasses import dataclass, replace
from typing import Callable, List, Sequence, Tuple

from workspace_images.safe_text import redact, safe_text

# A categorical palette (Observable 10, then darker companions) for series such as OS versions.
PALETTE: Tuple[str, ...] = (
    "#4269d0", "#efb118", "#ff725c", "#6cc5b0", "#3ca951",
    "#ff8ab7", "#a463f2", "#97bbf5", "#9c6b4e", "#9498a0",
    "#1d3f8f", "#b8860b", "#b8412e", "#2e8b7a", "#1f7a35",
    "#c2477a", "#6d3fb5", "#5b86d6", "#6b4330", "#5f636b",
)
OTHER_COLOUR = "#c4c8ce"
"""The colour of the "other" series, lighter than the palette's grey."""
ACCENT = "#4269d0"
CHANGE_COLOURS = {"added": "#3ca951", "changed": "#efb118", "removed": "#ff725c"}

FONT_SIZE = 12
SHOWN_CHARS = 120
"""Characters of a value shown in the page: a longer one is cut, its last character an ellipsis."""
TOOLTIP_CHARS = 2000
"""Characters of a value in its tooltip: the whole value, cut past this."""
TOP_SERIES = len(PALETTE)
"""Series (or bars) a chart shows, each in its own colour; the rest are summed into one "other"."""


@dataclass(frozen=True)
class Series:
    """One named series of values, one per x position."""

    name: str
    values: Sequence[float]
    colour: str


def esc(value: object) -> str:
    """Escape text for element content and attribute values, as `safe_text` shows it first: control
    and bidirectional characters written as escapes, so that none reorders or hides the text."""
    return html.escape(safe_text(value), quote=True)


def cut(value: object, limit: int = SHOWN_CHARS) -> str:
    """`value` as text of at most `limit` characters, a longer one cut and ending in "…".

    Known secrets are redacted before the cut, so that no cut leaves part of one.
    """
    text = redact(str(value))
    return text if len(text) <= limit else text[: limit - 1] + "…"


def shown(value: object) -> str:
    """`value` escaped for element content, cut to SHOWN_CHARS; a cut one in a `<span>` whose
    `title` tooltip holds the whole value (up to TOOLTIP_CHARS)."""
    text = redact(str(value))
    if len(text) <= SHOWN_CHARS:
        return esc(text)
    return f'<span title="{esc(cut(text, TOOLTIP_CHARS))}">{esc(cut(text))}</span>'


def _other(count: int) -> str:
    return f"other ({count:,} more)"


def top_series(series: Sequence[Series], n: int = TOP_SERIES) -> List[Series]:
    """The `n` largest series (by the sum of their values, ties by name) in the order given,
    coloured from the palette in that order, then, when there are more, one "other (k more)"
    series summing the rest."""
    if len(series) <= n:
        return [replace(s, colour=colour(i)) for i, s in enumerate(series)]
    ranked = sorted(range(len(series)), key=lambda i: (-sum(series[i].values), series[i].name))
    kept = [replace(series[i], colour=colour(j)) for j, i in enumerate(sorted(ranked[:n]))]
    rest = [series[i].values for i in ranked[n:]]
    return kept + [Series(_other(len(rest)), [sum(v) for v in zip(*rest)], OTHER_COLOUR)]


def top_items(items: Sequence[Tuple[str, float]], n: int = TOP_SERIES) -> List[Tuple[str, float]]:
    """The `n` largest (label, value) pairs, largest first (ties by label), then, when there are
    more, one ("other (k more)", their sum) pair."""
    ranked = sorted(items, key=lambda item: (-item[1], item[0]))
    if len(ranked) <= n:
        return ranked
    return ranked[:n] + [(_other(len(ranked) - n), sum(v for _, v in ranked[n:]))]


def colour(index: int) -> str:
    """The palette colour of the `index`-th series (cycles past the palette's end)."""
    return PALETTE[index % len(PALETTE)]


def is_wide(ch: str) -> bool:
    """Whether `ch` is drawn twice as wide as a Latin letter (East Asian wide or fullwidth: CJK)."""
    return unicodedata.east_asian_width(ch) in "WF"


def text_width(text: str, size: float = FONT_SIZE) -> float:
    """Rough rendered width of `text`: wide (CJK) characters count one em, others about half."""
    return sum(size if is_wide(ch) else size * 0.58 for ch in text)


def number(value: float) -> str:
    """`1234` as `1,234`; non-integers with one decimal."""
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.1f}"


def nice_ticks(maximum: float, count: int = 5) -> List[float]:
    """Round, whole tick values from 0 to at least `maximum`: steps of 1, 2, 2.5 or 5 x 10^k,
    3 to 7 intervals, the lowest top first, then the interval count nearest `count`."""
    if maximum <= 0:
        return [0.0, 1.0]
    magnitude = 10 ** math.floor(math.log10(maximum))
    best: Tuple[Tuple[float, int], float, int] | None = None
    for scale in (magnitude / 100, magnitude / 10, magnitude, magnitude * 10):
        for m in (1, 2, 2.5, 5):
            step = m * scale
            if step < 1 or not float(step).is_integer():
                continue
            intervals = math.ceil(maximum / step - 1e-9)
            if 3 <= intervals <= 7:
                key = (intervals * step, abs(intervals - count))
                if best is None or key < best[0]:
                    best = (key, step, intervals)
    if best is None:  # a maximum below 3: one tick per unit
        step, intervals = 1.0, math.ceil(maximum)
    else:
        _, step, intervals = best
    return [float(i * step) for i in range(intervals + 1)]


def _svg(width: float, height: float, title: str, body: List[str], css_class: str = "chart") -> str:
    return (
        f'<svg class="{css_class}" viewBox="0 0 {width:g} {height:g}" width="100%" '
        f'preserveAspectRatio="xMidYMid meet" role="img" xmlns="http://www.w3.org/2000/svg">'
        f"<title>{esc(title)}</title>" + "".join(body) + "</svg>"
    )


def empty_chart(message: str, title: str, width: float = 1120, height: float = 160) -> str:
    """A chart-sized box that says why there is nothing to draw."""
    body = [
        f'<rect class="empty-box" x="0.5" y="0.5" width="{width - 1:g}" height="{height - 1:g}" rx="8"/>',
        f'<text class="empty" x="{width / 2:g}" y="{height / 2:g}" text-anchor="middle" '
        f'dominant-baseline="middle">{esc(message)}</text>',
    ]
    return _svg(width, height, title, body, "chart chart-empty")


def _y_axis(ticks: Sequence[float], y_of, left: float, right: float) -> List[str]:
    parts = []
    for tick in ticks:
        y = y_of(tick)
        css = "axis-line" if tick == 0 else "grid"
        parts.append(f'<line class="{css}" x1="{left:g}" x2="{right:g}" y1="{y:.1f}" y2="{y:.1f}"/>')
        parts.append(
            f'<text class="axis" x="{left - 8:g}" y="{y:.1f}" text-anchor="end" '
            f'dominant-baseline="middle">{number(tick)}</text>'
        )
    return parts


def _x_labels(labels: Sequence[str], xs: Sequence[float], y: float, plot_width: float) -> List[str]:
    """Every label that fits: each k-th one, k chosen so labels do not overlap."""
    if not labels:
        return []
    widest = max(text_width(cut(label)) for label in labels) + 12
    step = max(1, math.ceil(len(labels) * widest / max(plot_width, 1)))
    parts = []
    for i in range(0, len(labels), step):
        parts.append(f'<text class="axis" x="{xs[i]:.1f}" y="{y:g}" text-anchor="middle">{esc(cut(labels[i]))}</text>')
    return parts


def label_room(labels: Sequence[str], width: float) -> float:
    """Width that the longest of `labels` needs beside a bar, at most 45 % of `width`."""
    return min(max((text_width(cut(label)) for label in labels), default=0) + 14, width * 0.45)


def _stacked_scale(
    series: Sequence[Series], n: int, width: float, height: float, left: float, right: float, top: float
) -> Tuple[float, float, List[float], List[float], Callable[[float], float]]:
    """Plot size, stack totals per x, y ticks and the value-to-y mapping of a stacked chart."""
    plot_w, plot_h = width - left - right, height - top - 30
    totals = [sum(s.values[i] for s in series) for i in range(n)]
    ticks = nice_ticks(max(totals))
    y_max = ticks[-1]

    def y_of(value: float) -> float:
        return top + plot_h - value / y_max * plot_h

    return plot_w, plot_h, totals, ticks, y_of


def stacked_area(
    x_labels: Sequence[str],
    series: Sequence[Series],
    *,
    title: str,
    unit: str = "images",
    width: float = 1120,
    height: float = 340,
    empty_message: str = "No data yet",
) -> str:
    """Series stacked on top of each other over x (first series at the bottom).

    With a single x position it draws one stacked column instead, so a first day shows.
    Each x position gets a transparent hover column whose tooltip lists every series.

    Args:
        x_labels: One label per x position (e.g. dates), left to right.
        series: Series with one value per x position.
        title: The chart's accessible title.
        unit: What the values count, for tooltips.
        width: viewBox width.
        height: viewBox height.
        empty_message: Shown when there is nothing to draw.
    """
    n = len(x_labels)
    if n == 0 or not series or all(v == 0 for s in series for v in s.values):
        return empty_chart(empty_message, title, width)
    left, right, top = 56, 16, 14
    plot_w, plot_h, totals, ticks, y_of = _stacked_scale(series, n, width, height, left, right, top)

    single = n == 1
    xs = [left + plot_w / 2] if single else [left + i * plot_w / (n - 1) for i in range(n)]
    body = _y_axis(ticks, y_of, left, width - right)
    below = [0.0] * n
    for s in series:
        above = [below[i] + s.values[i] for i in range(n)]
        tip = f"{cut(s.name, TOOLTIP_CHARS)}: " + ", ".join(f"{x_labels[i]} {number(s.values[i])}" for i in range(n))
        if single:
            bar_w = min(80.0, plot_w / 3)
            y0, y1 = y_of(below[0]), y_of(above[0])
            body.append(
                f'<rect class="mark area" x="{xs[0] - bar_w / 2:.1f}" y="{y1:.1f}" width="{bar_w:.1f}" '
                f'height="{max(y0 - y1, 0):.1f}" fill="{s.colour}"><title>{esc(tip)}</title></rect>'
            )
        else:
            upper = " ".join(f"{xs[i]:.1f},{y_of(above[i]):.1f}" for i in range(n))
            lower = " ".join(f"{xs[i]:.1f},{y_of(below[i]):.1f}" for i in reversed(range(n)))
            body.append(
                f'<polygon class="mark area" points="{upper} {lower}" fill="{s.colour}">'
                f"<title>{esc(tip)}</title></polygon>"
            )
            body.append(f'<polyline class="area-edge" points="{upper}"/>')
        below = above
    band = plot_w if single else plot_w / (n - 1)
    for i in range(n):
        lines = [f"{x_labels[i]}: {number(totals[i])} {unit}"]
        lines += [f"{cut(s.name)}: {number(s.values[i])}" for s in reversed(series) if s.values[i]]
        x0 = max(left, xs[i] - band / 2)
        x1 = min(width - right, xs[i] + band / 2)
        body.append(
            f'<g class="hover"><rect x="{x0:.1f}" y="{top:g}" width="{x1 - x0:.1f}" height="{plot_h:g}"/>'
            f'<line x1="{xs[i]:.1f}" x2="{xs[i]:.1f}" y1="{top:g}" y2="{top + plot_h:g}"/>'
            f"<title>{'&#10;'.join(esc(line) for line in lines)}</title></g>"
        )
    body += _x_labels(x_labels, xs, height - 8, plot_w)
    return _svg(width, height, title, body)


def stacked_bars(
    x_labels: Sequence[str],
    series: Sequence[Series],
    *,
    title: str,
    unit: str = "",
    width: float = 1120,
    height: float = 260,
    empty_message: str = "Nothing to show",
) -> str:
    """One vertical bar per x position, made of the series' segments stacked bottom-up, total on top.

    Args:
        x_labels: One label per bar.
        series: Segments, one value per bar; zero values draw nothing.
        title: The chart's accessible title.
        unit: Appended to the values in tooltips (e.g. "images").
        width: viewBox width.
        height: viewBox height.
        empty_message: Shown when every value is 0.
    """
    n = len(x_labels)
    if n == 0 or not series or all(v == 0 for s in series for v in s.values):
        return empty_chart(empty_message, title, width)
    left, right, top = 56, 16, 22
    plot_w, plot_h, totals, ticks, y_of = _stacked_scale(series, n, width, height, left, right, top)

    band = plot_w / n
    bar_w = min(56.0, band * 0.66)
    xs = [left + band * (i + 0.5) for i in range(n)]
    body = _y_axis(ticks, y_of, left, width - right)
    suffix = f" {unit}" if unit else ""
    for i in range(n):
        below = 0.0
        for s in series:
            value = s.values[i]
            if not value:
                continue
            y0, y1 = y_of(below), y_of(below + value)
            body.append(
                f'<rect class="mark bar" x="{xs[i] - bar_w / 2:.1f}" y="{y1:.1f}" width="{bar_w:.1f}" '
                f'height="{max(y0 - y1, 0.5):.1f}" fill="{s.colour}">'
                f"<title>{esc(f'{x_labels[i]}: {number(value)} {cut(s.name, TOOLTIP_CHARS)}{suffix}')}</title></rect>"
            )
            below += value
        if totals[i]:
            body.append(
                f'<text class="value" x="{xs[i]:.1f}" y="{y_of(totals[i]) - 6:.1f}" '
                f'text-anchor="middle">{number(totals[i])}</text>'
            )
    body += _x_labels(x_labels, xs, height - 8, plot_w)
    return _svg(width, height, title, body)


def horizontal_bars(
    items: Sequence[Tuple[str, float]],
    *,
    title: str,
    unit: str = "images",
    bar_colour: str = ACCENT,
    width: float = 540,
    label_width: float | None = None,
    empty_message: str = "Nothing to show",
) -> str:
    """One labelled horizontal bar per item, in the order given, its value at its end.

    Args:
        items: (label, value) pairs.
        title: The chart's accessible title.
        unit: What the values count, for tooltips.
        bar_colour: Fill of every bar.
        width: viewBox width; the height follows from the number of items.
        label_width: Room for the labels; by default what the longest label needs (at most 45 %),
            pass the same value to charts shown side by side so that their bars line up.
        empty_message: Shown when there are no items.
    """
    if not items:
        return empty_chart(empty_message, title, width, 120)
    row, gap, top, bottom = 24, 8, 4, 4
    label_w = label_width or label_room([label for label, _ in items], width)
    value_w = max(text_width(number(v)) for _, v in items) + 10
    plot_w = width - label_w - value_w
    height = top + bottom + len(items) * (row + gap) - gap
    v_max = max(v for _, v in items) or 1
    total = sum(v for _, v in items)
    body = []
    for i, (label, value) in enumerate(items):
        y = top + i * (row + gap)
        w = max(value / v_max * plot_w, 1.5 if value else 0)
        share = f" ({value / total:.0%})" if total else ""
        body.append(
            f'<text class="label" x="{label_w - 10:g}" y="{y + row / 2:g}" text-anchor="end" '
            f'dominant-baseline="middle">{esc(cut(label))}</text>'
        )
        body.append(
            f'<rect class="mark bar" x="{label_w:g}" y="{y:g}" width="{w:.1f}" height="{row:g}" rx="3" '
            f'fill="{bar_colour}"><title>{esc(f"{cut(label, TOOLTIP_CHARS)}: {number(value)} {unit}{share}")}</title>'
            "</rect>"
        )
        body.append(
            f'<text class="value" x="{label_w + w + 6:.1f}" y="{y + row / 2:g}" '
            f'dominant-baseline="middle">{number(value)}</text>'
        )
    return _svg(width, height, title, body)


def legend(series: Sequence[Series], notes: Sequence[str] | None = None) -> str:
    """An HTML legend: one swatch and name per series, in the order given, each with an optional note.

    Empty when there are no series.
    """
    if not series:
        return ""
    items = "".join(
        f'<li><span class="swatch" style="background:{s.colour}"></span>{shown(s.name)}'
        + (f' <span class="note">{shown(notes[i])}</span>' if notes and notes[i] else "")
        + "</li>"
        for i, s in enumerate(series)
    )
    return f'<ul class="legend">{items}</ul>'
