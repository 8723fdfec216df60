"""The report's charts as inline SVG strings, drawn here so that the page needs no script and no request.

Every text placed in an SVG goes through :func:`markupsafe.escape`; the result is :class:`Markup`, so the
template inserts it as it is. Charts scale with the page width (``viewBox``) and carry a ``<title>``
per mark, which browsers show on hover.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from datetime import date

from markupsafe import Markup, escape

from deepsift.detect.contract import Thresholds
from deepsift.reports.data import FaceScore
from deepsift.verdicts.labels import Verdict

VERDICT_COLOURS: dict[str, str] = {
    Verdict.AUTHENTIC: "#2e7d32",
    Verdict.SUSPICIOUS: "#ef8f00",
    Verdict.MANIPULATED: "#c62828",
    Verdict.NOT_APPLICABLE: "#90a4ae",
    Verdict.ERROR: "#6a1b9a",
}
"""One colour per verdict, for the charts and the page's badges."""
_AXIS = "#607d8b"
_GRID = "#e0e6ea"
_FONT = 'font-family="system-ui, sans-serif" font-size="11"'


def trend_chart(days: Sequence[date], counts: Mapping[date, Mapping[str, int]], highlight: date) -> Markup:
    """Stacked bars: videos per verdict for each of ``days``; ``highlight``'s column is shaded."""
    width, height, left, right, top, bottom = 960, 250, 44, 12, 12, 34
    plot_w, plot_h = width - left - right, height - top - bottom
    totals = [sum(counts.get(day, {}).values()) for day in days]
    step = _nice_step(max(totals, default=0))
    y_max = max(step, math.ceil(max(totals, default=0) / step) * step)
    band = plot_w / max(len(days), 1)
    parts = [_open_svg(width, height, f"Videos per verdict per scan date, {days[0]} to {days[-1]}")]
    for tick in range(0, y_max + 1, step):
        y = top + plot_h - tick / y_max * plot_h
        parts.append(f'<line x1="{left}" x2="{width - right}" y1="{y:.1f}" y2="{y:.1f}" stroke="{_GRID}"/>')
        parts.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" fill="{_AXIS}">{tick}</text>')
    for index, day in enumerate(days):
        x = left + index * band
        if day == highlight:
            parts.append(f'<rect x="{x:.1f}" y="{top}" width="{band:.1f}" height="{plot_h}" fill="#fff3cd"/>')
        base: float = top + plot_h
        for verdict in Verdict:
            count = counts.get(day, {}).get(verdict, 0)
            if not count:
                continue
            bar_h = count / y_max * plot_h
            base -= bar_h
            parts.append(
                f'<rect x="{x + band * 0.15:.1f}" y="{base:.1f}" width="{band * 0.7:.1f}" height="{bar_h:.1f}" '
                f'fill="{VERDICT_COLOURS[verdict]}"><title>{escape(f"{day}: {count} {verdict.value}")}</title></rect>'
            )
        if (len(days) - 1 - index) % 5 == 0:
            weight = ' font-weight="bold"' if day == highlight else ""
            parts.append(
                f'<text x="{x + band / 2:.1f}" y="{height - bottom + 16}" text-anchor="middle" fill="{_AXIS}"'
                f"{weight}>{escape(day.strftime('%m-%d'))}</text>"
            )
    parts.append(_axes(left, top, plot_w, plot_h))
    if not any(totals):
        parts.append(
            f'<text x="{left + plot_w / 2:.1f}" y="{top + plot_h / 2:.1f}" text-anchor="middle" fill="{_AXIS}" '
            'font-size="14">no videos judged in these 30 days</text>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))


def timeline_chart(faces: Sequence[FaceScore], thresholds: Thresholds | None) -> Markup:
    """Each face's score over time (seconds, or frame index where a timestamp is missing), with a line
    through the highest score of each frame and the model's two thresholds dashed."""
    width, height, left, right, top, bottom = 720, 170, 40, 112, 10, 30
    plot_w, plot_h = width - left - right, height - top - bottom
    timed = all(face.ts_s is not None for face in faces)

    def position(face: FaceScore) -> float:
        return face.ts_s if timed and face.ts_s is not None else float(face.frame_index)

    x_max = max((position(face) for face in faces), default=0.0) or 1.0

    def x_of(value: float) -> float:
        return left + value / x_max * plot_w

    def y_of(score: float) -> float:
        return top + (1 - score) * plot_h

    unit = "time" if timed else "frame index"
    parts = [_open_svg(width, height, f"Face scores over {'time' if timed else 'frames'}, {len(faces)} faces")]
    for tick in (0.0, 0.25, 0.5, 0.75, 1.0):
        y = y_of(tick)
        parts.append(f'<line x1="{left}" x2="{left + plot_w}" y1="{y:.1f}" y2="{y:.1f}" stroke="{_GRID}"/>')
        parts.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" fill="{_AXIS}">{tick:g}</text>')
    for fraction in (0.0, 0.25, 0.5, 0.75, 1.0):
        value = fraction * x_max
        label = f"{value:.1f} s" if timed else f"{value:.0f}"
        parts.append(
            f'<text x="{x_of(value):.1f}" y="{height - bottom + 16}" text-anchor="middle" fill="{_AXIS}">'
            f"{escape(label)}</text>"
        )
    if thresholds is not None:
        parts += _threshold_lines(thresholds, y_of, left, left + plot_w)
    parts += _peak_line(faces, position, x_of, y_of)
    for face in faces:
        when = f"{face.ts_s:.2f} s, " if face.ts_s is not None else ""
        label = f"frame {face.frame_index} ({when}face {face.face_index}): {face.score:.3f}"
        parts.append(
            f'<circle class="face-score" cx="{x_of(position(face)):.1f}" cy="{y_of(face.score):.1f}" r="3" '
            f'fill="#1565c0"><title>{escape(label)}</title></circle>'
        )
    parts.append(_axes(left, top, plot_w, plot_h))
    parts.append(
        f'<text x="{left + plot_w}" y="{height - 2}" text-anchor="end" fill="{_AXIS}">{escape(unit)}</text></svg>'
    )
    return Markup("".join(parts))


def _threshold_lines(thresholds: Thresholds, y_of: Callable[[float], float], x0: float, x1: float) -> list[str]:
    """The manipulated and suspicious thresholds as dashed lines from ``x0`` to ``x1``, labelled right of them."""
    parts = []
    label_y = y_of(thresholds.manipulated) + 4
    for name, value, colour in (
        ("manipulated", thresholds.manipulated, VERDICT_COLOURS[Verdict.MANIPULATED]),
        ("suspicious", thresholds.suspicious, VERDICT_COLOURS[Verdict.SUSPICIOUS]),
    ):
        y = y_of(value)
        label_y = max(y + 4, label_y)  # the suspicious label moves down rather than overlap
        parts.append(
            f'<line x1="{x0}" x2="{x1}" y1="{y:.1f}" y2="{y:.1f}" stroke="{colour}" '
            f'stroke-dasharray="5 4"/><text x="{x1 + 6}" y="{label_y:.1f}" fill="{colour}">'
            f"{escape(f'{name} {value:.3f}')}</text>"
        )
        label_y += 13
    return parts


def _peak_line(
    faces: Sequence[FaceScore],
    position: Callable[[FaceScore], float],
    x_of: Callable[[float], float],
    y_of: Callable[[float], float],
) -> list[str]:
    """A line through the highest face score at each position, when there are two positions or more."""
    peaks: dict[float, float] = {}
    for face in faces:
        peaks[position(face)] = max(peaks.get(position(face), 0.0), face.score)
    if len(peaks) < 2:
        return []
    points = " ".join(f"{x_of(x):.1f},{y_of(score):.1f}" for x, score in sorted(peaks.items()))
    return [f'<polyline points="{points}" fill="none" stroke="#37474f" stroke-width="1.5"/>']


def _open_svg(width: int, height: int, title: str) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{escape(title)}" {_FONT}><title>{escape(title)}</title>'
    )


def _axes(left: float, top: float, plot_w: float, plot_h: float) -> str:
    bottom = top + plot_h
    return (
        f'<line x1="{left}" x2="{left}" y1="{top}" y2="{bottom}" stroke="{_AXIS}"/>'
        f'<line x1="{left}" x2="{left + plot_w}" y1="{bottom}" y2="{bottom}" stroke="{_AXIS}"/>'
    )


def _nice_step(maximum: int) -> int:
    """A round tick step giving about four ticks up to ``maximum``: 1, 2, 5, 10, 20, 50, ..."""
    rough = max(maximum / 4, 1)
    magnitude = 10 ** math.floor(math.log10(rough))
    return int(next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= rough))
