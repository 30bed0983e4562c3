"""Small line charts drawn with PIL (no plotting library needed): learning curves as PNG.

    from gnm.viz.plot import line_chart
    line_chart({"run a": (minutes, sacc)}, title="S-Acc", xlabel="minutes", ylabel="S-Acc",
               ylim=(0, 1), path="sacc.png")

A chart is a white picture with a plot area framed by axes; the data range (or ``xlim`` /
``ylim``) is widened to "nice" tick values (1, 2, 2.5 or 5 times a power of ten) that are drawn
with their numbers. Every series is one coloured polyline, with a dot per point when it has few
(so a series of one point shows too), and an entry in the legend, which sits in the inner corner
of the plot area that covers the fewest points. Points that are not finite are skipped.
:func:`chart_frame` exposes the data-to-pixel mapping.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from gnm.errors import GNMError
from gnm.viz.grid import save_png

#: Series colours (RGB), used in order.
PALETTE = ((31, 119, 180), (214, 39, 40), (44, 160, 44), (255, 127, 14), (148, 103, 189),
           (140, 86, 75), (227, 119, 194), (23, 190, 207))
AXIS = (0, 0, 0)
GRIDLINE = (225, 225, 225)
DOTS_UP_TO = 25  # series with at most this many points get a dot per point
MARGIN = (64, 30, 16, 44)  # left, top, right, bottom (pixels) around the plot area

Series = Mapping[str, tuple[Sequence[float], Sequence[float]]]


@lru_cache(maxsize=4)
def _font(size: int = 12) -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)  # Pillow >= 10.1: a scalable font
    except (TypeError, OSError, ImportError):
        return ImageFont.load_default()


def _text(draw: ImageDraw.ImageDraw, xy: tuple[float, float], text: str, font,
          anchor: str = "la") -> None:
    """Draw ``text`` anchored like PIL's ``anchor`` (horizontal l/m/r, vertical a/m/d), computed
    by hand so that bitmap fonts (which take no anchor) work too."""
    x0, y0, x1, y1 = draw.textbbox((0, 0), text, font=font)
    dx = {"l": x0, "m": (x0 + x1) / 2, "r": x1}[anchor[0]]
    dy = {"a": y0, "m": (y0 + y1) / 2, "d": y1}[anchor[1]]
    draw.text((xy[0] - dx, xy[1] - dy), text, fill=AXIS, font=font)


def nice_ticks(lo: float, hi: float, target: int = 5) -> list[float]:
    """About ``target`` round tick values covering ``[lo, hi]``: the first <= lo, the last >= hi,
    spaced by 1, 2, 2.5 or 5 times a power of ten."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise GNMError(f"tick range [{lo}, {hi}] is not finite.")
    if hi < lo:
        lo, hi = hi, lo
    if hi == lo:
        pad = abs(lo) * 0.1 or 1.0
        lo, hi = lo - pad, hi + pad
    raw = (hi - lo) / max(target, 1)
    power = 10.0 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw * (1 - 1e-9))
    first = math.floor(lo / step + 1e-9) * step
    last = math.ceil(hi / step - 1e-9) * step
    count = int(round((last - first) / step))
    return [round(first + i * step, 12) for i in range(count + 1)]


def format_tick(value: float) -> str:
    """A short label: ``0.25``, ``1500``, ``2.5e+04``."""
    if value == 0:
        return "0"
    if abs(value) >= 1e5 or abs(value) < 1e-3:
        return f"{value:.2g}"
    return f"{value:.4g}"


@dataclass
class Frame:
    """The plot area ``[left, right] x [top, bottom]`` (pixels) and the data range it shows."""

    left: int
    top: int
    right: int
    bottom: int
    xlim: tuple[float, float]
    ylim: tuple[float, float]
    xticks: list[float]
    yticks: list[float]

    def px(self, x: float, y: float) -> tuple[float, float]:
        """Pixel position (column, row) of data point ``(x, y)``."""
        x0, x1 = self.xlim
        y0, y1 = self.ylim
        col = self.left + (x - x0) / (x1 - x0) * (self.right - self.left)
        row = self.bottom - (y - y0) / (y1 - y0) * (self.bottom - self.top)
        return col, row


def _finite(series: Series) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    out = {}
    for name, (x, y) in series.items():
        xa, ya = np.asarray(x, np.float64).ravel(), np.asarray(y, np.float64).ravel()
        if xa.shape != ya.shape:
            raise GNMError(f"series {name!r} has {xa.size} x values but {ya.size} y values.")
        ok = np.isfinite(xa) & np.isfinite(ya)
        out[name] = (xa[ok], ya[ok])
    return out


def chart_frame(series: Series, size: tuple[int, int] = (640, 400),
                xlim: tuple[float, float] | None = None,
                ylim: tuple[float, float] | None = None) -> Frame:
    """Where :func:`line_chart` puts the axes for these series (``size`` = width, height px)."""
    data = _finite(series)
    xs = np.concatenate([x for x, _ in data.values()] or [np.zeros(0)])
    ys = np.concatenate([y for _, y in data.values()] or [np.zeros(0)])

    def span(values: np.ndarray, given: tuple[float, float] | None) -> tuple[float, float]:
        if given is not None:
            return float(given[0]), float(given[1])
        return (float(values.min()), float(values.max())) if values.size else (0.0, 1.0)

    xticks = nice_ticks(*span(xs, xlim))
    yticks = nice_ticks(*span(ys, ylim))
    w, h = size
    left, top, right, bottom = MARGIN
    if w - left - right < 40 or h - top - bottom < 40:
        raise GNMError(f"chart size {w}x{h} px is too small; use at least "
                       f"{left + right + 40}x{top + bottom + 40}.")
    return Frame(left, top, w - right, h - bottom, (xticks[0], xticks[-1]),
                 (yticks[0], yticks[-1]), xticks, yticks)


def line_chart(series: Series, title: str = "", xlabel: str = "", ylabel: str = "",
               path: str | Path | None = None, size: tuple[int, int] = (640, 400),
               xlim: tuple[float, float] | None = None,
               ylim: tuple[float, float] | None = None) -> np.ndarray:
    """Draw ``{label: (x, y)}`` as lines; return uint8 ``[H, W, 3]`` and write it to ``path``.

    ``xlim`` / ``ylim`` fix the shown range (widened to round ticks); by default it is the data
    range. Series with no finite point appear in the legend only; with no point at all the
    plot area says "no data".
    """
    data = _finite(series)
    frame = chart_frame(series, size, xlim, ylim)
    img = Image.new("RGB", size, (255, 255, 255))
    draw = ImageDraw.Draw(img)
    font = _font(12)
    for v in frame.xticks:
        col, _ = frame.px(v, frame.ylim[0])
        draw.line([(col, frame.top), (col, frame.bottom)], fill=GRIDLINE)
        draw.line([(col, frame.bottom), (col, frame.bottom + 4)], fill=AXIS)
        _text(draw, (col, frame.bottom + 6), format_tick(v), font, "ma")
    for v in frame.yticks:
        _, row = frame.px(frame.xlim[0], v)
        draw.line([(frame.left, row), (frame.right, row)], fill=GRIDLINE)
        draw.line([(frame.left - 4, row), (frame.left, row)], fill=AXIS)
        _text(draw, (frame.left - 6, row), format_tick(v), font, "rm")
    draw.rectangle([frame.left, frame.top, frame.right, frame.bottom], outline=AXIS)

    everywhere: list[tuple[float, float]] = []
    for i, (x, y) in enumerate(data.values()):
        colour = PALETTE[i % len(PALETTE)]
        points = [frame.px(a, b) for a, b in zip(x.tolist(), y.tolist(), strict=True)]
        everywhere += points
        if len(points) > 1:
            draw.line(points, fill=colour, width=2, joint="curve")
        for c, r in points if len(points) <= DOTS_UP_TO else []:
            draw.ellipse([c - 2, r - 2, c + 2, r + 2], fill=colour)

    w, h = size
    if not everywhere:
        _text(draw, ((frame.left + frame.right) / 2, (frame.top + frame.bottom) / 2),
              "no data", _font(14), "mm")
    if title:
        _text(draw, (w / 2, 8), title, _font(14), "ma")
    if xlabel:
        _text(draw, ((frame.left + frame.right) / 2, h - 6), xlabel, font, "md")
    if ylabel:
        label = Image.new("RGB", (frame.bottom - frame.top, 16), (255, 255, 255))
        _text(ImageDraw.Draw(label), (label.width / 2, 8), ylabel, font, "mm")
        img.paste(label.rotate(90, expand=True), (2, frame.top))
    _legend(draw, frame, list(data), font, everywhere)
    picture = np.asarray(img, dtype=np.uint8).copy()
    if path is not None:
        save_png(picture, path)
    return picture


def _legend(draw: ImageDraw.ImageDraw, frame: Frame, names: list[str], font,
            points: list[tuple[float, float]]) -> None:
    """The legend box in the inner corner of the plot area that covers the fewest points."""
    if not names:
        return
    w = max(int(draw.textlength(n, font=font)) for n in names) + 30
    h = 16 * len(names) + 4
    corners = [(frame.right - w - 6, frame.top + 6), (frame.right - w - 6, frame.bottom - h - 6),
               (frame.left + 6, frame.top + 6), (frame.left + 6, frame.bottom - h - 6)]

    def covered(corner: tuple[float, float]) -> int:
        x0, y0 = corner
        return sum(x0 - 3 <= c <= x0 + w + 3 and y0 - 3 <= r <= y0 + h + 3 for c, r in points)

    x0, y0 = min(corners, key=covered)  # first corner wins ties
    draw.rectangle([x0, y0, x0 + w, y0 + h], fill=(255, 255, 255), outline=(160, 160, 160))
    for i, name in enumerate(names):
        y = y0 + 10 + 16 * i
        draw.line([(x0 + 4, y), (x0 + 20, y)], fill=PALETTE[i % len(PALETTE)], width=3)
        _text(draw, (x0 + 25, y), name, font, "lm")


def side_by_side(pictures: Sequence[np.ndarray], gap: int = 8,
                 path: str | Path | None = None) -> np.ndarray:
    """Place uint8 ``[H, W, 3]`` pictures left to right on white (shorter ones top-aligned)."""
    if not pictures:
        raise GNMError("side_by_side needs at least one picture.")
    h = max(p.shape[0] for p in pictures)
    w = sum(p.shape[1] for p in pictures) + gap * (len(pictures) - 1)
    out = np.full((h, w, 3), 255, np.uint8)
    x = 0
    for p in pictures:
        out[:p.shape[0], x:x + p.shape[1]] = p
        x += p.shape[1] + gap
    if path is not None:
        save_png(out, path)
    return out


def labelled_rows(rows: Sequence[tuple[str, np.ndarray]], label_width: int = 120, gap: int = 6,
                  path: str | Path | None = None) -> np.ndarray:
    """Stack uint8 ``[H, W, 3]`` pictures top to bottom on white, each with its label written
    in a ``label_width``-pixel column on its left (vertically centred)."""
    if not rows:
        raise GNMError("labelled_rows needs at least one (label, picture) pair.")
    w = label_width + max(p.shape[1] for _, p in rows)
    h = sum(p.shape[0] for _, p in rows) + gap * (len(rows) - 1)
    canvas = Image.new("RGB", (w, h), (255, 255, 255))
    draw, font, y = ImageDraw.Draw(canvas), _font(13), 0
    for label, p in rows:
        canvas.paste(Image.fromarray(p), (label_width, y))
        _text(draw, (label_width - 6, y + p.shape[0] / 2), label, font, "rm")
        y += p.shape[0] + gap
    out = np.asarray(canvas).copy()
    if path is not None:
        save_png(out, path)
    return out
