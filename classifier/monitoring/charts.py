"""Monitoring pictures for the admin, drawn server-side as inline SVG (nothing from another host)."""

from __future__ import annotations

import io
from collections.abc import Sequence
from datetime import date

import numpy as np

COLOURS = ("#4477aa", "#ee6677", "#228833", "#ccbb44", "#66ccee", "#aa3377", "#bbbbbb")


def _figure(width: float = 6.0, height: float = 2.8):
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=100)
    # Fixed margins: tight_layout would measure every label first, a third of the drawing time.
    figure.subplots_adjust(left=0.13, right=0.97, bottom=0.22, top=0.84)
    return figure, figure.add_subplot()


def _few_ticks(axes, *, x: bool = True) -> None:
    """At most 6 ticks across and 5 up: every tick is several artists, the bulk of drawing time."""
    from matplotlib.ticker import MaxNLocator

    if x:
        axes.xaxis.set_major_locator(MaxNLocator(6))
    axes.yaxis.set_major_locator(MaxNLocator(5))


def _svg(figure) -> str:
    import matplotlib

    buffer = io.StringIO()
    # Text as <text> elements rather than glyph outlines: a third of the size, readable, faster.
    with matplotlib.rc_context({"svg.fonttype": "none"}):
        figure.savefig(buffer, format="svg")
    text = buffer.getvalue()
    return text[text.index("<svg") :]  # inline in HTML: no XML prolog or doctype


def volume_chart(days: Sequence[date], series: dict[str, Sequence[int]]) -> str:
    """Predictions per day, stacked by version (one filled step outline per version: cheap to draw)."""
    figure, axes = _figure()
    edges = np.arange(len(days) + 1) - 0.5
    bottom = np.zeros(len(days))
    for index, (label, counts) in enumerate(series.items()):
        top = bottom + np.asarray(counts, dtype=float)
        axes.stairs(top, edges, baseline=bottom, fill=True, label=label, color=COLOURS[index % len(COLOURS)])
        bottom = top
    step = max(1, len(days) // 8)
    positions = np.arange(len(days))[::step]
    axes.set_xticks(positions, labels=[days[i].strftime("%m-%d") for i in positions], fontsize=7)
    axes.set_xlim(edges[0], edges[-1])
    axes.set_ylim(bottom=0)
    _few_ticks(axes, x=False)
    axes.set_ylabel("predictions")
    axes.set_title("Predictions per day, by version", fontsize=10, y=1.01)
    if series:
        axes.legend(fontsize=7, loc="upper left")
    return _svg(figure)


def mix_chart(current: dict[str, float], reference: dict[str, float], *, p_value: float | None = None) -> str:
    """The predicted species mix beside the training mix."""
    figure, axes = _figure(4.8, 2.8)
    names = list(reference)
    x = np.arange(len(names))
    axes.bar(x - 0.2, [reference[name] for name in names], 0.4, label="training", color=COLOURS[6])
    axes.bar(x + 0.2, [current.get(name, 0.0) for name in names], 0.4, label="predicted", color=COLOURS[0])
    axes.set_xticks(x, labels=names)
    _few_ticks(axes, x=False)
    axes.set_ylabel("share")
    title = "Predicted species mix against training"
    if p_value is not None:
        title += f"\nchi-squared p = {p_value:.3g}"
    axes.set_title(title, fontsize=10, y=1.01)
    axes.legend(fontsize=7)
    return _svg(figure)


def accuracy_chart(points: Sequence[tuple[date, float, float, float]]) -> str:
    """Live accuracy over time with its Wilson 95% band; ``points`` are (when, accuracy, low, high)."""
    figure, axes = _figure()
    if points:
        first = points[0][0]
        x = np.array([(point[0] - first).days for point in points])
        accuracy, low, high = (np.array([point[index] for point in points]) for index in (1, 2, 3))
        axes.fill_between(x, low, high, color=COLOURS[0], alpha=0.2, label="95% interval (Wilson)")
        axes.plot(x, accuracy, marker="o", color=COLOURS[0], label="accuracy")
        axes.legend(fontsize=7, loc="lower left")
        step = max(1, len(points) // 6)
        axes.set_xticks(x[::step], labels=[point[0].strftime("%m-%d") for point in points][::step], fontsize=7)
        axes.set_xlim(x[0] - 0.5, x[-1] + 0.5)
    else:
        axes.set_xticks([])
        axes.text(0.5, 0.5, "no feedback yet", ha="center", va="center", transform=axes.transAxes)
    axes.set_ylim(0, 1.02)
    axes.set_yticks([0, 0.25, 0.5, 0.75, 1.0])
    axes.set_ylabel("accuracy")
    axes.set_title("Live accuracy (labelled predictions)", fontsize=10, y=1.01)
    return _svg(figure)


def feature_histograms(features: Sequence[dict]) -> str:
    """Each feature's distribution, current against reference (shares of their rows), in one picture.

    ``features``: dicts with ``name``, ``reference`` and ``current`` (arrays), ``test``,
    ``p_value`` and ``drift``. Small multiples in one figure cost far less than one figure each.
    """
    columns = 2 if len(features) > 1 else 1
    rows = (len(features) + columns - 1) // columns
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    figure = Figure(figsize=(4.2 * columns, 2.5 * rows), dpi=100)
    figure.subplots_adjust(left=0.08, right=0.98, bottom=0.12 / rows, top=1 - 0.16 / rows, hspace=0.6, wspace=0.25)
    for index, feature in enumerate(features):
        axes = figure.add_subplot(rows, columns, index + 1)
        reference, current = feature["reference"], feature["current"]
        combined = np.concatenate([reference, current])
        distinct = np.unique(combined)
        if distinct.size <= 5:  # categorical: one bar per value
            x = np.arange(distinct.size)
            for offset, values, label, colour in ((-0.2, reference, "reference", 6), (0.2, current, "current", 1)):
                shares = [np.count_nonzero(values == value) / max(values.size, 1) for value in distinct]
                axes.bar(x + offset, shares, 0.4, label=label, color=COLOURS[colour])
            axes.set_xticks(x, labels=[f"{value:g}" for value in distinct])
        else:
            edges = np.histogram_bin_edges(combined, bins=20)
            for values, label, colour in ((reference, "reference", 6), (current, "current", 1)):
                density, _ = np.histogram(values, bins=edges, density=True)
                axes.stairs(density, edges, fill=True, alpha=0.6, label=label, color=COLOURS[colour])
        verdict = "drift" if feature["drift"] else "no drift"
        title = f"{feature['name']}: {feature['test']} p = {feature['p_value']:.3g} ({verdict})"
        axes.set_title(title, fontsize=9, y=1.01)
        _few_ticks(axes, x=distinct.size > 5)
        axes.tick_params(labelsize=7)
        axes.legend(fontsize=7)
    return _svg(figure)


def confusion_chart(labels: Sequence[str], matrix: Sequence[Sequence[int]], title: str) -> str:
    """Feedback's confusion matrix: true species down, predicted across."""
    figure, axes = _figure(4.2, 3.4)
    axes.imshow(matrix, cmap="Blues")
    axes.set_xticks(range(len(labels)), labels=labels)
    axes.set_yticks(range(len(labels)), labels=labels)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true (feedback)")
    axes.set_title(title, fontsize=10, y=1.01)
    peak = max((max(row) for row in matrix), default=0) or 1
    for i, row in enumerate(matrix):
        for j, value in enumerate(row):
            axes.text(j, i, str(value), ha="center", va="center", color="white" if value > peak / 2 else "black")
    return _svg(figure)
