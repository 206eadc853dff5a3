"""Plots as inline SVG, drawn here so the report needs no plotting library and fetches nothing.

Every label is escaped with ``html.escape``: tool names, failure reasons and roles come from the run's data.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape

from dialforge.report.formatting import number

PALETTE = ("#3b6ea8", "#e08a2c", "#5a9e54", "#b8455a", "#7d62a8", "#8c6d4f")
"""Bar colours: the first for single bars, one per series in stacked bars (repeating after six)."""


def histogram_svg(counts: dict[int, int] | dict[str, int], unit: str, *, max_bins: int = 40) -> str:
    """Vertical bars of dialogues per value (binned when the values spread wider than ``max_bins``)."""
    values = {int(k): int(v) for k, v in counts.items()}
    if not values:
        return _empty_svg()
    low, high = min(values), max(values)
    width = max(1, math.ceil((high - low + 1) / max_bins))
    bins: dict[int, int] = {}
    for value, count in values.items():
        start = low + (value - low) // width * width
        bins[start] = bins.get(start, 0) + count
    starts = list(range(low, high + 1, width))
    peak = max(bins.values())
    w, h, left, bottom, top = 480, 220, 36, 34, 12
    bar = (w - left - 8) / len(starts)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {w} {h}" width="{w}" height="{h}" role="img">']
    plot_h = h - bottom - top
    for tick in _ticks(peak):
        y = top + plot_h * (1 - tick / peak)
        parts.append(f'<line x1="{left}" x2="{w - 8}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>')
        parts.append(f'<text x="{left - 4}" y="{y + 4:.1f}" text-anchor="end">{tick}</text>')
    label_every = max(1, math.ceil(len(starts) / 12))
    for index, start in enumerate(starts):
        count = bins.get(start, 0)
        x = left + index * bar
        bar_h = plot_h * count / peak
        label = str(start) if width == 1 else f"{start}–{start + width - 1}"
        parts.append(
            f'<rect x="{x + 1:.1f}" y="{top + plot_h - bar_h:.1f}" width="{max(bar - 2, 1):.1f}" height="{bar_h:.1f}"'
            f' fill="{PALETTE[0]}"><title>{escape(f"{label} {unit}: {count} dialogues")}</title></rect>'
        )
        if index % label_every == 0:
            parts.append(f'<text x="{x + bar / 2:.1f}" y="{h - bottom + 14}" text-anchor="middle">{start}</text>')
    parts.append(f'<text x="{(left + w) / 2:.0f}" y="{h - 4}" text-anchor="middle">{escape(unit)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def bar_svg(
    items: Sequence[tuple[str, float]],
    *,
    series: Sequence[str] | None = None,
    stacked: Sequence[Sequence[float]] | None = None,
) -> str:
    """Horizontal bars, one per ``(label, value)``; or stacked bars when ``stacked`` gives each label's parts."""
    if not items:
        return _empty_svg()
    parts_of = stacked or [[value] for _, value in items]
    peak = max(sum(parts) for parts in parts_of) or 1
    row, left, w = 20, min(220, 12 + 7 * max(len(label) for label, _ in items)), 480
    legend = 18 if series else 0
    h = legend + row * len(items) + 8
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {w} {h}" width="{w}" height="{h}" role="img">']
    if series:
        for index, name in enumerate(series):
            out.append(
                f'<rect x="{left + index * 110}" y="3" width="10" height="10" fill="{PALETTE[index % len(PALETTE)]}"/>'
            )
            out.append(f'<text x="{left + index * 110 + 14}" y="12">{escape(name)}</text>')
    room = w - left - 70
    for index, ((label, value), parts) in enumerate(zip(items, parts_of, strict=True)):
        y = legend + index * row
        shown = label if len(label) <= 30 else label[:29] + "…"
        out.append(
            f'<text x="{left - 6}" y="{y + 14}" text-anchor="end">{escape(shown)}<title>{escape(label)}</title></text>'
        )
        x = float(left)
        for part_index, part in enumerate(parts):
            width = room * part / peak
            name = series[part_index] if series else ""
            colour = PALETTE[part_index % len(PALETTE)]
            out.append(
                f'<rect x="{x:.1f}" y="{y + 3}" width="{width:.1f}" height="{row - 6}" fill="{colour}">'
                f"<title>{escape(f'{label} {name}: {number(part, 1)}'.replace('  ', ' '))}</title></rect>"
            )
            x += width
        out.append(f'<text x="{x + 4:.1f}" y="{y + 14}">{number(value, 1)}</text>')
    out.append("</svg>")
    return "".join(out)


def _ticks(peak: int) -> list[int]:
    step = max(1, 10 ** math.floor(math.log10(peak)) if peak >= 10 else 1)
    while peak / step > 5:
        step *= 2
    return list(range(step, peak + 1, step))


def _empty_svg() -> str:
    return (
        '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 480 40" width="480" height="40" role="img">'
        '<text x="8" y="24">nothing to show</text></svg>'
    )
