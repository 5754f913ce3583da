"""Synthetic crop/caption pairs: coloured, patterned tiles and simple objects drawn with OpenCV.

Used to train the bundled tiny CLIP (:mod:`mapo_env.alignment.tiny_clip`) and by the tests that check
that every scorer ranks a truthful label above a wrong one. Everything is drawn from a
``numpy.random.Generator``: the same generator state gives the same crop.

Vocabulary: :data:`COLORS` (11 colours), :data:`PATTERNS` (plain, horizontal / vertical stripes,
checkerboard) and :data:`SHAPES` (tile, ball, triangle, star, diamond, cross, ring, arrow, flag,
umbrella, heart). An object's annotation is ``ObjectAnnotation(name=<shape>, bbox,
attributes={"color": ..., "pattern": ...})``, whose caption reads ``"red horizontal striped tile"``.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import cv2
import numpy as np

from mapo_env.types import ObjectAnnotation

COLORS: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 30),
    "green": (30, 160, 50),
    "blue": (30, 60, 220),
    "yellow": (240, 220, 30),
    "magenta": (220, 40, 200),
    "cyan": (40, 210, 220),
    "orange": (250, 140, 20),
    "purple": (120, 40, 160),
    "grey": (128, 128, 128),
    "white": (245, 245, 245),
    "black": (15, 15, 15),
}
"""Colour name -> nominal RGB (drawn with a small random jitter)."""

PATTERNS = ("plain", "horizontal striped", "vertical striped", "checkered")
SHAPES = ("tile", "ball", "triangle", "star", "diamond", "cross", "ring", "arrow", "flag", "umbrella", "heart")

PATTERN_PHRASES: dict[str, tuple[str, ...]] = {
    "plain": ("plain", "solid", ""),
    "horizontal striped": ("horizontal striped", "horizontally striped", "striped"),
    "vertical striped": ("vertical striped", "vertically striped", "striped"),
    "checkered": ("checkered", "checkerboard", "chequered"),
}
"""Ways a caption may name each pattern (``""``: not named)."""

_DARK = (45, 45, 45)


@dataclass(frozen=True)
class SyntheticObject:
    """What one drawn object is: shape name, colour name and pattern name."""

    shape: str
    color: str
    pattern: str

    def annotation(self, bbox: tuple[float, float, float, float]) -> ObjectAnnotation:
        """The object's :class:`ObjectAnnotation` at ``bbox``."""
        return ObjectAnnotation(self.shape, bbox, {"color": self.color, "pattern": self.pattern})

    def caption(self) -> str:
        """The canonical caption, as :meth:`ObjectAnnotation.caption` writes it (``"red checkered star"``)."""
        return self.annotation((0.0, 0.0, 1.0, 1.0)).caption()


@dataclass(frozen=True)
class CropSample:
    """One synthetic crop with its ground truth.

    Attributes:
        crop: ``np.uint8`` (H, W, 3) RGB.
        target: The main object (fully inside the crop).
        objects_in_crop: ``(annotation, visible fraction)`` pairs, most visible first, in crop pixels
            (the crop is its own original image), as :class:`~mapo_env.alignment.base.AlignmentRequest` wants.
    """

    crop: np.ndarray
    target: SyntheticObject
    objects_in_crop: tuple[tuple[ObjectAnnotation, float], ...]


def random_object(rng: np.random.Generator) -> SyntheticObject:
    """A uniformly random shape, colour and pattern."""
    return SyntheticObject(
        SHAPES[rng.integers(len(SHAPES))], list(COLORS)[rng.integers(len(COLORS))], PATTERNS[rng.integers(4)]
    )


def wrong_object(rng: np.random.Generator, obj: SyntheticObject, kind: str) -> SyntheticObject:
    """``obj`` with one field (``kind``: ``"color"``, ``"pattern"`` or ``"shape"``) changed to another value."""
    pools = {"color": list(COLORS), "pattern": list(PATTERNS), "shape": list(SHAPES)}
    current = getattr(obj, kind)
    choices = [v for v in pools[kind] if v != current]
    return SyntheticObject(**{**obj.__dict__, kind: choices[rng.integers(len(choices))]})


def pattern_texture(
    rng: np.random.Generator, height: int, width: int, color: str, pattern: str, cells: float
) -> np.ndarray:
    """(H, W, 3) texture of ``color`` in ``pattern`` with about ``cells`` stripes/squares across."""
    base = np.clip(np.array(COLORS[color], np.float64) + rng.normal(0, 8, 3), 0, 255)
    light = base.mean() > 140
    other = base * 0.35 if light else base + (255 - base) * 0.6
    tex = np.empty((height, width, 3), np.float64)
    tex[:] = base
    period = max(2.0, max(height, width) / cells)
    ys, xs = np.mgrid[0:height, 0:width]
    if pattern == "horizontal striped":
        mask = (ys // (period / 2)) % 2 == 1
    elif pattern == "vertical striped":
        mask = (xs // (period / 2)) % 2 == 1
    elif pattern == "checkered":
        mask = ((ys // (period / 2)) + (xs // (period / 2))) % 2 == 1
    else:
        mask = np.zeros((height, width), bool)
    tex[mask] = other
    return tex.astype(np.uint8)


def _poly(points: list[tuple[float, float]], w: int, h: int) -> np.ndarray:
    mask = np.zeros((h, w), np.uint8)
    pts = np.array([[x * (w - 1), y * (h - 1)] for x, y in points], np.int32)
    cv2.fillPoly(mask, [pts], 1)
    return mask


def shape_mask(shape: str, w: int, h: int) -> tuple[np.ndarray, np.ndarray]:
    """Masks (H, W) of a shape drawn in a ``w`` x ``h`` box: (coloured part, dark part such as a pole)."""
    dark = np.zeros((h, w), np.uint8)
    if shape == "tile":
        return np.ones((h, w), np.uint8), dark
    if shape == "ball":
        mask = np.zeros((h, w), np.uint8)
        cv2.ellipse(mask, (w // 2, h // 2), (max(1, w // 2), max(1, h // 2)), 0, 0, 360, 1, -1)
        return mask, dark
    if shape == "ring":
        mask = np.zeros((h, w), np.uint8)
        thick = max(2, int(0.22 * min(w, h)))
        axes = (max(1, w // 2 - thick // 2), max(1, h // 2 - thick // 2))
        cv2.ellipse(mask, (w // 2, h // 2), axes, 0, 0, 360, 1, thick)
        return mask, dark
    if shape == "star":
        angles = np.pi / 2 + np.arange(10) * np.pi / 5
        radii = np.where(np.arange(10) % 2 == 0, 0.5, 0.21)
        return _poly([(0.5 + r * np.cos(a), 0.5 - r * np.sin(a)) for a, r in zip(angles, radii)], w, h), dark
    if shape == "cross":
        return _poly([(0.35, 0), (0.65, 0), (0.65, 1), (0.35, 1)], w, h) | _poly(
            [(0, 0.35), (1, 0.35), (1, 0.65), (0, 0.65)], w, h
        ), dark
    if shape == "heart":
        mask = _poly([(0.02, 0.38), (0.98, 0.38), (0.5, 1.0)], w, h)
        for cx in (0.27, 0.73):
            cv2.circle(mask, (int(cx * w), int(0.3 * h)), max(1, int(0.26 * min(w, h))), 1, -1)
        return mask, dark
    if shape == "flag":
        dark[:, : max(1, w // 10)] = 1
        return _poly([(0.14, 0.02), (1, 0.02), (1, 0.6), (0.14, 0.6)], w, h), dark
    if shape == "umbrella":
        mask = np.zeros((h, w), np.uint8)
        cv2.ellipse(mask, (w // 2, int(0.52 * h)), (max(1, w // 2), max(1, int(0.5 * h))), 0, 180, 360, 1, -1)
        x = w // 2
        cv2.line(dark, (x, int(0.52 * h)), (x, int(0.92 * h)), 1, max(1, w // 16))
        cv2.ellipse(dark, (x - w // 10, int(0.92 * h)), (w // 10, max(1, h // 14)), 0, 0, 180, 1, max(1, w // 16))
        return mask, dark
    shapes = {
        "triangle": [(0.5, 0), (1, 1), (0, 1)],
        "diamond": [(0.5, 0), (1, 0.5), (0.5, 1), (0, 0.5)],
        "arrow": [(0, 0.35), (0.55, 0.35), (0.55, 0.1), (1, 0.5), (0.55, 0.9), (0.55, 0.65), (0, 0.65)],
    }
    return _poly(shapes[shape], w, h), dark


def draw_object(
    rng: np.random.Generator, canvas: np.ndarray, obj: SyntheticObject, box: tuple[int, int, int, int]
) -> None:
    """Draw ``obj`` into ``canvas`` (in place) inside ``box = (x1, y1, x2, y2)``; parts outside are clipped."""
    x1, y1, x2, y2 = box
    w, h = x2 - x1, y2 - y1
    mask, dark = shape_mask(obj.shape, w, h)
    tex = pattern_texture(rng, h, w, obj.color, obj.pattern, cells=rng.uniform(2.5, 5.0))
    cx1, cy1 = max(0, x1), max(0, y1)
    cx2, cy2 = min(canvas.shape[1], x2), min(canvas.shape[0], y2)
    if cx1 >= cx2 or cy1 >= cy2:
        return
    sl = (slice(cy1 - y1, cy2 - y1), slice(cx1 - x1, cx2 - x1))
    region = canvas[cy1:cy2, cx1:cx2]
    region[mask[sl] > 0] = tex[sl][mask[sl] > 0]
    region[dark[sl] > 0] = _DARK


@functools.lru_cache(maxsize=1)
def _photos() -> tuple[np.ndarray, ...]:
    from skimage import data

    out = []
    for name in ("astronaut", "coffee", "chelsea", "rocket", "camera", "brick", "grass", "gravel", "moon"):
        img = getattr(data, name)()
        out.append(np.stack([img] * 3, axis=-1) if img.ndim == 2 else img[:, :, :3])
    return tuple(out)


def background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A cluttered or plain background: a photo patch (scikit-image samples), smooth noise or a flat colour."""
    kind = rng.random()
    if kind < 0.45:
        photo = _photos()[rng.integers(len(_photos()))]
        ph, pw = photo.shape[:2]
        side = int(rng.integers(min(ph, pw) // 4, min(ph, pw)))
        y, x = int(rng.integers(0, ph - side + 1)), int(rng.integers(0, pw - side + 1))
        patch = cv2.resize(photo[y : y + side, x : x + side], (width, height), interpolation=cv2.INTER_AREA)
        grey = patch.mean(axis=2, keepdims=True)
        return (grey + rng.uniform(0.2, 1.0) * (patch - grey)).clip(0, 255).astype(np.uint8)
    if kind < 0.75:
        small = rng.uniform(40, 215, (int(rng.integers(2, 6)), int(rng.integers(2, 6)), 3)).astype(np.float32)
        smooth = cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC)
        return (smooth + rng.normal(0, 6, (height, width, 3))).clip(0, 255).astype(np.uint8)
    color = rng.uniform(30, 225, 3)
    return np.broadcast_to(color, (height, width, 3)).astype(np.uint8).copy()


def _visible_fraction(box: tuple[int, int, int, int], width: int, height: int) -> float:
    x1, y1, x2, y2 = box
    inter = max(0, min(x2, width) - max(x1, 0)) * max(0, min(y2, height) - max(y1, 0))
    return inter / max(1, (x2 - x1) * (y2 - y1))


def random_crop_sample(rng: np.random.Generator, distractor_prob: float = 0.35) -> CropSample:
    """A crop (64-200 px square) around one random object on a random background.

    The target fills 35-85 % of the crop side and lies fully inside it; with probability
    ``distractor_prob`` a second, smaller object overlaps the border (visible fraction below 0.5, so
    it stays out of the reference caption).
    """
    size = int(rng.integers(64, 201))
    canvas = background(rng, size, size)
    target = random_object(rng)
    side = int(size * rng.uniform(0.35, 0.85))
    w = side if target.shape != "tile" else int(side * rng.uniform(0.8, 1.0))
    x, y = int(rng.integers(0, size - w + 1)), int(rng.integers(0, size - side + 1))
    objects: list[tuple[ObjectAnnotation, float]] = []
    if rng.random() < distractor_prob:
        other = random_object(rng)
        d = int(side * rng.uniform(0.4, 0.7))
        dx = int(rng.choice([-d * 0.6, size - d * 0.4]))
        dy = int(rng.integers(-d // 2, size - d // 2))
        dbox = (dx, dy, dx + d, dy + d)
        draw_object(rng, canvas, other, dbox)
        objects.append((other.annotation(dbox), _visible_fraction(dbox, size, size)))
    box = (x, y, x + w, y + side)
    draw_object(rng, canvas, target, box)
    objects.insert(0, (target.annotation(box), 1.0))
    return CropSample(canvas, target, tuple(objects))


def training_caption(rng: np.random.Generator, obj: SyntheticObject) -> tuple[str, frozenset[str]]:
    """A varied, truthful caption of ``obj`` for contrastive training, and the patterns it fits.

    Half the time the canonical caption; otherwise a pattern synonym (``"striped"`` fits both stripe
    directions), an omitted pattern word (fits every pattern) or a template such as
    ``"a photo of a ..."`` / ``"a red ball with vertical stripes"``.
    """
    if rng.random() < 0.5:
        return obj.caption(), frozenset([obj.pattern])
    phrases = PATTERN_PHRASES[obj.pattern]
    pattern = phrases[rng.integers(len(phrases))]
    fits = frozenset(PATTERNS) if not pattern else frozenset(p for p in PATTERNS if pattern in PATTERN_PHRASES[p])
    words = " ".join(w for w in (obj.color, pattern, obj.shape) if w)
    templates = ("{}", "a {}", "a photo of a {}", "the {}")
    text = templates[rng.integers(len(templates))].format(words)
    if rng.random() < 0.2 and obj.pattern != "plain":
        noun = {"checkered": "a checkerboard pattern"}.get(obj.pattern, obj.pattern.replace(" striped", " stripes"))
        text, fits = f"a {obj.color} {obj.shape} with {noun}", frozenset([obj.pattern])
    return text, fits
