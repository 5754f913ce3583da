"""Simple but recognisable object drawings ("sprites") with an exact mask.

Each kind (umbrella, flag, ball, cup, car, sign, kite, bag, hat, bottle, balloon, bucket) is drawn
with PIL primitives into a ``width x height`` box: the body in the object's colour, small parts
(poles, wheels, handles, strings) in a neutral dark grey, so that "the colour of the X" has one
answer. The drawing is then cropped to the tight box of its mask, so a sprite pasted at ``(x, y)``
covers exactly the box ``(x, y, x + w, y + h)`` (pixel-edge coordinates, end exclusive).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from mapo_env.errors import ConfigError

RGB = tuple[int, int, int]
MIN_SPRITE_PX = 8
"""Smallest width or height a sprite is drawn at (smaller requests are raised to it)."""


@dataclass(frozen=True)
class Sprite:
    """One drawn object, cropped to its tight box.

    Attributes:
        rgb: ``np.uint8`` (h, w, 3) colours (meaningful where ``mask`` is True).
        mask: ``bool`` (h, w); every border row and column holds at least one True pixel.
    """

    rgb: np.ndarray
    mask: np.ndarray

    @property
    def size(self) -> tuple[int, int]:
        """``(width, height)`` of the tight box."""
        return int(self.mask.shape[1]), int(self.mask.shape[0])


class _Pen:
    """Draws each primitive on the colour image and on the mask at once."""

    def __init__(self, width: int, height: int) -> None:
        self.image = Image.new("RGB", (width, height), (0, 0, 0))
        self.mask = Image.new("L", (width, height), 0)
        self._rgb = ImageDraw.Draw(self.image)
        self._mask = ImageDraw.Draw(self.mask)
        self.decorate = min(width, height) >= 16  # seams on tiny sprites would hide the body colour

    def polygon(self, points: list[tuple[float, float]], fill: RGB) -> None:
        self._rgb.polygon(points, fill=fill)
        self._mask.polygon(points, fill=255)

    def ellipse(self, box: tuple[float, float, float, float], fill: RGB) -> None:
        self._rgb.ellipse(box, fill=fill)
        self._mask.ellipse(box, fill=255)

    def rectangle(self, box: tuple[float, float, float, float], fill: RGB) -> None:
        self._rgb.rectangle(box, fill=fill)
        self._mask.rectangle(box, fill=255)

    def rounded(self, box: tuple[float, float, float, float], radius: float, fill: RGB) -> None:
        self._rgb.rounded_rectangle(box, radius=radius, fill=fill)
        self._mask.rounded_rectangle(box, radius=radius, fill=255)

    def pieslice(self, box: tuple[float, float, float, float], start: float, end: float, fill: RGB) -> None:
        self._rgb.pieslice(box, start, end, fill=fill)
        self._mask.pieslice(box, start, end, fill=255)

    def line(self, points: list[tuple[float, float]], fill: RGB, width: int) -> None:
        self._rgb.line(points, fill=fill, width=width)
        self._mask.line(points, fill=255, width=width)

    def arc(self, box: tuple[float, float, float, float], start: float, end: float, fill: RGB, width: int) -> None:
        self._rgb.arc(box, start, end, fill=fill, width=width)
        self._mask.arc(box, start, end, fill=255, width=width)

    def paint(self, points: list[tuple[float, float]], fill: RGB, width: int) -> None:
        """A line drawn on the colour image only, inside an already drawn shape (a seam, a rib)."""
        if self.decorate:
            self._rgb.line(points, fill=fill, width=width)

    def paint_arc(
        self, box: tuple[float, float, float, float], start: float, end: float, fill: RGB, width: int
    ) -> None:
        """An arc drawn on the colour image only (a seam)."""
        if self.decorate:
            self._rgb.arc(box, start, end, fill=fill, width=width)


def shade_of(rgb: RGB) -> RGB:
    """A darker tone of ``rgb`` for seams and rims (a lighter one for very dark colours)."""
    if max(rgb) < 60:
        return tuple(min(255, c + 45) for c in rgb)  # type: ignore[return-value]
    return tuple(int(c * 0.72) for c in rgb)  # type: ignore[return-value]


def _umbrella(p: _Pen, w: int, h: int, main: RGB, detail: RGB, t: int) -> None:
    p.pieslice((0, 0, w - 1, 0.9 * h), 180, 360, main)
    for fx in (0.25, 0.5, 0.75):
        p.paint([(w / 2, 0.02 * h), (fx * w, 0.44 * h)], shade_of(main), max(1, t // 2))
    p.line([(w / 2, 0.44 * h), (w / 2, 0.86 * h)], detail, t)
    p.arc((w / 2 - 0.16 * w, 0.72 * h, w / 2, h - 1), 0, 180, detail, t)


def _flag(p: _Pen, w: int, h: int, main: RGB, detail: RGB, t: int) -> None:
    pole = max(t, round(0.07 * w))
    p.rectangle((0, 0.04 * h, pole, h - 1), detail)
    p.ellipse((0, 0, pole + 1, 0.06 * h), detail)
    p.polygon([(pole + 1, 0.08 * h), (w - 1, 0.14 * h), (w - 1, 0.52 * h), (pole + 1, 0.58 * h)], main)


def _ball(p: _Pen, w: int, h: int, main: RGB, detail: RGB, t: int) -> None:
    p.ellipse((0, 0, w - 1, h - 1), main)
    seam, width = shade_of(main), max(1, t // 2)
    p.paint([(0.03 * w, 0.5 * h), (0.97 * w, 0.5 * h)], seam, width)
    p.paint_arc((-0.45 * w, 0.02 * h, 0.4 * w, 0.98 * h), 300, 60, seam, width)
    p.paint_arc((0.6 * w, 0.02 * h, 1.45 * w, 0.98 * h), 120, 240, seam, width)


def _cup(p: _Pen, w: int, h: int, main: RGB, detail: RGB, t: int) -> None:
    p.arc((0.55 * w, 0.25 * h, w - 1, 0.75 * h), 270, 90, main, max(2, round(0.08 * w)))
    p.polygon([(0, 0.08 * h), (0.78 * w, 0.08 * h), (0.68 * w, h - 1), (0.1 * w, h - 1)], main)
    p.ellipse((0, 0, 0.78 * w, 0.16 * h), shade_of(main))


def _car(p: _Pen, w: int, h: int, main: RGB, detail: RGB, t: int) -> None:
    p.polygon([(0.2 * w, 0.42 * h), (0.32 * w, 0.04 * h), (0.7 * w, 0.04 * h), (0.84 * w, 0.42 * h)], main)
    p.polygon([(0.27 * w, 0.4 * h), (0.36 * w, 0.12 * h), (0.66 * w, 0.12 * h), (0.76 * w, 0.4 * h)], detail)
    p.paint([(0.51 * w, 0.12 * h), (0.51 * w, 0.4 * h)], main, max(1, t))
    p.rounded((0, 0.38 * h, w - 1, 0.82 * h), 0.08 * h, main)
    p.ellipse((0.1 * w, 0.6 * h, 0.3 * w, h - 1), detail)
    p.ellipse((0.7 * w, 0.6 * h, 0.9 * w, h - 1), detail)


def _sign(p: _Pen, w: int, h: int, main: RGB, detail: RGB, t: int) -> None:
    p.rectangle((0.44 * w, 0.5 * h, 0.56 * w, h - 1), detail)
    p.polygon([(w / 2, 0), (w - 1, 0.3 * h), (w / 2, 0.6 * h), (0, 0.3 * h)], main)
    p.polygon([(w / 2, 0.1 * h), (0.84 * w, 0.3 * h), (w / 2, 0.5 * h), (0.16 * w, 0.3 * h)], shade_of(main))
    p.polygon([(w / 2, 0.15 * h), (0.76 * w, 0.3 * h), (w / 2, 0.45 * h), (0.24 * w, 0.3 * h)], main)


def _kite(p: _Pen, w: int, h: int, main: RGB, detail: RGB, t: int) -> None:
    p.polygon([(w / 2, 0), (w - 1, 0.3 * h), (w / 2, 0.68 * h), (0, 0.3 * h)], main)
    p.paint([(w / 2, 0), (w / 2, 0.68 * h)], shade_of(main), max(1, t // 2))
    p.paint([(0, 0.3 * h), (w - 1, 0.3 * h)], shade_of(main), max(1, t // 2))
    tail = [(w / 2, 0.68 * h), (0.38 * w, 0.76 * h), (0.6 * w, 0.84 * h), (0.4 * w, 0.92 * h), (0.55 * w, h - 1)]
    p.line(tail, detail, max(1, t // 2 + 1))


def _bag(p: _Pen, w: int, h: int, main: RGB, detail: RGB, t: int) -> None:
    p.arc((0.22 * w, 0, 0.78 * w, 0.75 * h), 180, 360, detail, max(2, t))
    p.rounded((0, 0.34 * h, w - 1, h - 1), 0.1 * h, main)
    p.paint([(0.05 * w, 0.55 * h), (0.95 * w, 0.55 * h)], shade_of(main), max(1, t // 2))


def _hat(p: _Pen, w: int, h: int, main: RGB, detail: RGB, t: int) -> None:
    p.ellipse((0, 0.62 * h, w - 1, h - 1), main)
    p.rounded((0.22 * w, 0, 0.78 * w, 0.85 * h), 0.2 * h, main)
    p.rectangle((0.22 * w, 0.52 * h, 0.78 * w, 0.68 * h), shade_of(main))


def _bottle(p: _Pen, w: int, h: int, main: RGB, detail: RGB, t: int) -> None:
    p.rectangle((0.32 * w, 0, 0.68 * w, 0.1 * h), detail)
    p.rectangle((0.36 * w, 0.1 * h, 0.64 * w, 0.34 * h), main)
    p.polygon([(0.36 * w, 0.3 * h), (0.64 * w, 0.3 * h), (w - 1, 0.46 * h), (0, 0.46 * h)], main)
    p.rounded((0, 0.42 * h, w - 1, h - 1), 0.12 * w, main)


def _balloon(p: _Pen, w: int, h: int, main: RGB, detail: RGB, t: int) -> None:
    p.line([(w / 2, 0.8 * h), (0.6 * w, 0.9 * h), (0.45 * w, h - 1)], detail, max(1, t // 2))
    p.ellipse((0, 0, w - 1, 0.78 * h), main)
    p.polygon([(0.44 * w, 0.82 * h), (0.56 * w, 0.82 * h), (w / 2, 0.74 * h)], main)


def _bucket(p: _Pen, w: int, h: int, main: RGB, detail: RGB, t: int) -> None:
    p.arc((0.08 * w, 0, 0.92 * w, 0.56 * h), 180, 360, detail, max(1, t))
    p.polygon([(0.02 * w, 0.28 * h), (0.98 * w, 0.28 * h), (0.84 * w, h - 1), (0.16 * w, h - 1)], main)
    p.ellipse((0.02 * w, 0.22 * h, 0.98 * w, 0.34 * h), shade_of(main))


_DRAWERS: dict[str, Callable[[_Pen, int, int, RGB, RGB, int], None]] = {
    "umbrella": _umbrella,
    "flag": _flag,
    "ball": _ball,
    "cup": _cup,
    "car": _car,
    "sign": _sign,
    "kite": _kite,
    "bag": _bag,
    "hat": _hat,
    "bottle": _bottle,
    "balloon": _balloon,
    "bucket": _bucket,
}
SPRITE_KINDS: tuple[str, ...] = tuple(_DRAWERS)
"""Every kind :func:`draw_sprite` can draw."""


def draw_sprite(kind: str, width: int, height: int, color: RGB, detail: RGB) -> Sprite:
    """Draw one object of ``kind`` in a ``width x height`` box and crop it to its tight mask.

    Args:
        kind: One of :data:`SPRITE_KINDS`.
        width: Nominal width in pixels (raised to :data:`MIN_SPRITE_PX`).
        height: Nominal height in pixels (raised to :data:`MIN_SPRITE_PX`).
        color: The body colour (the answer to "what colour is it").
        detail: Colour of the small parts (poles, wheels, handles).

    Returns:
        The sprite; its size is at most ``(width, height)``.

    Raises:
        ConfigError: ``kind`` is unknown.
    """
    if kind not in _DRAWERS:
        raise ConfigError(f"unknown sprite kind {kind!r}; expected one of {list(SPRITE_KINDS)}")
    w, h = max(MIN_SPRITE_PX, int(width)), max(MIN_SPRITE_PX, int(height))
    pen = _Pen(w, h)
    _DRAWERS[kind](pen, w, h, tuple(color), tuple(detail), max(1, round(min(w, h) / 16)))
    mask = np.asarray(pen.mask) > 0
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    y1, y2, x1, x2 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    return Sprite(rgb=np.asarray(pen.image)[y1:y2, x1:x2].copy(), mask=mask[y1:y2, x1:x2].copy())


def paste(canvas: np.ndarray, sprite: Sprite, x: int, y: int) -> None:
    """Write ``sprite`` into ``canvas`` (H, W, 3) in place with its top-left corner at ``(x, y)``.

    The sprite must lie fully inside the canvas (the layout guarantees it).
    """
    w, h = sprite.size
    region = canvas[y : y + h, x : x + w]
    region[sprite.mask] = sprite.rgb[sprite.mask]
