"""What the sprite-scene generators share: placement without overlap, naming, drawing, the sample.

Placement keeps every object ``gap`` pixels away from every other one, so each object's box is the
tight box of its own pixels and nothing hides part of it. Names follow one rule: an object is called
by its kind (``"umbrella"``) when it is the only one of that kind in the scene, and by colour and
kind (``"red umbrella"``) otherwise; objects of one kind always have distinct colours, so every name
in a scene is unique.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mapo_env.data.procedural.backgrounds import cluttered_background, log_uniform
from mapo_env.data.procedural.sprites import Sprite, draw_sprite, paste
from mapo_env.data.procedural.vocabulary import aspect_ratio, color_rgb, load_vocabulary
from mapo_env.errors import ConfigError
from mapo_env.types import ObjectAnnotation, VQASample

Box = tuple[int, int, int, int]
RGB = tuple[int, int, int]


class ClutteredScene:
    """Base of the generators that draw objects on a photo-collage background.

    Subclasses set ``image_size`` (width, height), ``background_scale`` and ``background_patches``
    (see :func:`~mapo_env.data.procedural.backgrounds.cluttered_background`).
    """

    image_size: tuple[int, int]
    background_scale: float
    background_patches: tuple[int, int]

    def set_background(self, scale: float, patches: tuple[int, int]) -> None:
        """Validate and store the background knobs (``scale`` in [0.01, 1], ``patches`` a (min, max) count)."""
        self.background_scale = check_range("background_scale", (scale, scale), 0.01, 1.0)[0]
        lo, hi = check_range("background_patches", patches, 0)
        self.background_patches = (int(lo), int(hi))

    def background(self, seed: int) -> np.ndarray:
        """The scene's background before any object is drawn (``sample.metadata["background_seed"]``)."""
        return cluttered_background(
            np.random.default_rng(seed), self.image_size, self.background_scale, self.background_patches
        )


@dataclass
class PlacedObject:
    """An object drawn in a scene.

    Attributes:
        kind: Sprite kind (``"umbrella"``) or the generator's own kind (``"sign"`` board).
        color: Colour name (a key of the vocabulary's colours).
        sprite: Its drawing.
        x: Left edge in original pixels.
        y: Top edge in original pixels.
        name: Name used in questions and annotations (set by :func:`assign_names`).
        extra: More attributes for the annotation (``{"text": "EXIT"}``).
        meta: Generator bookkeeping that is not an attribute (font size, ...).
    """

    kind: str
    color: str
    sprite: Sprite
    x: int = 0
    y: int = 0
    name: str = ""
    extra: dict[str, str] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def box(self) -> Box:
        """``(x1, y1, x2, y2)``, end exclusive, in original pixels."""
        w, h = self.sprite.size
        return (self.x, self.y, self.x + w, self.y + h)

    @property
    def center(self) -> tuple[float, float]:
        """Centre of the box."""
        x1, y1, x2, y2 = self.box
        return (x1 + x2) / 2, (y1 + y2) / 2

    def annotation(self) -> ObjectAnnotation:
        """The ground-truth annotation: name, exact box, colour and the extra attributes."""
        x1, y1, x2, y2 = self.box
        attributes = {"color": self.color, **self.extra}
        return ObjectAnnotation(self.name or self.kind, (float(x1), float(y1), float(x2), float(y2)), attributes)


class Layout:
    """Free-space bookkeeping for one image: places boxes that keep ``gap`` pixels apart."""

    def __init__(self, width: int, height: int, gap: int = 6, margin: int = 4) -> None:
        self.width, self.height, self.gap, self.margin = width, height, gap, margin
        self._boxes = np.zeros((0, 4), dtype=np.int64)

    def is_free(self, box: Box) -> bool:
        """True when ``box`` keeps ``gap`` pixels from every box placed so far."""
        if not len(self._boxes):
            return True
        b, g = self._boxes, self.gap
        clash = (box[0] < b[:, 2] + g) & (b[:, 0] < box[2] + g) & (box[1] < b[:, 3] + g) & (b[:, 1] < box[3] + g)
        return not bool(clash.any())

    def fits(self, box: Box) -> bool:
        """True when ``box`` lies inside the image margins and is free."""
        inside = box[0] >= self.margin and box[1] >= self.margin
        inside = inside and box[2] <= self.width - self.margin and box[3] <= self.height - self.margin
        return inside and self.is_free(box)

    def occupy(self, box: Box) -> None:
        """Mark ``box`` as taken."""
        self._boxes = np.vstack([self._boxes, np.asarray(box, dtype=np.int64)[None]])

    def place(
        self,
        rng: np.random.Generator,
        size: tuple[int, int],
        accept: Callable[[Box], bool] | None = None,
        tries: int = 200,
    ) -> tuple[int, int] | None:
        """Find a free top-left corner for a ``size = (w, h)`` box and occupy it.

        Args:
            rng: Source of the random candidate positions.
            size: Width and height of the box.
            accept: Extra condition a candidate box must satisfy (a relative position).
            tries: Number of random candidates before giving up.

        Returns:
            ``(x, y)``, or ``None`` when no candidate fitted.
        """
        w, h = size
        hi_x, hi_y = self.width - self.margin - w, self.height - self.margin - h
        if hi_x < self.margin or hi_y < self.margin:
            return None
        for _ in range(tries):
            x = int(rng.integers(self.margin, hi_x + 1))
            y = int(rng.integers(self.margin, hi_y + 1))
            box = (x, y, x + w, y + h)
            if self.is_free(box) and (accept is None or accept(box)):
                self.occupy(box)
                return x, y
        return None


def jittered_rgb(rng: np.random.Generator, color: str, amount: int = 8) -> RGB:
    """The vocabulary RGB of ``color`` moved by up to ``amount`` per channel."""
    base = np.asarray(color_rgb(color), dtype=np.int64)
    out = np.clip(base + rng.integers(-amount, amount + 1, size=3), 0, 255)
    return int(out[0]), int(out[1]), int(out[2])


def sprite_for(rng: np.random.Generator, kind: str, color: str, area_px: float) -> Sprite:
    """Draw ``kind`` in ``color`` with a nominal box of about ``area_px`` square pixels."""
    aspect = aspect_ratio(kind)
    w = max(1, round(float(np.sqrt(area_px * aspect))))
    h = max(1, round(w / aspect))
    detail = tuple(int(c) for c in load_vocabulary()["detail_rgb"])
    return draw_sprite(kind, w, h, jittered_rgb(rng, color), detail)  # type: ignore[arg-type]


def add_distractors(
    rng: np.random.Generator,
    layout: Layout,
    count: int,
    area_px: tuple[float, float],
    *,
    kinds: list[str],
    colors: list[str],
    taken: dict[str, set[str]],
) -> list[PlacedObject]:
    """Draw and place up to ``count`` distractors; those that do not fit are dropped.

    Args:
        rng: Randomness.
        layout: Free space of the image (updated).
        count: How many to try.
        area_px: Range of the nominal box area (log-uniform).
        kinds: Kinds allowed for distractors.
        colors: Colours allowed for distractors.
        taken: Colours already used per kind (updated); a kind never gets the same colour twice.

    Returns:
        The placed distractors.
    """
    out: list[PlacedObject] = []
    if not kinds or not colors:
        return out
    for _ in range(count):
        kind = kinds[int(rng.integers(len(kinds)))]
        free = [c for c in colors if c not in taken.get(kind, set())]
        if not free:
            continue
        color = free[int(rng.integers(len(free)))]
        obj = PlacedObject(kind, color, sprite_for(rng, kind, color, log_uniform(rng, *area_px)))
        spot = layout.place(rng, obj.sprite.size, tries=60)
        if spot is None:
            continue
        obj.x, obj.y = spot
        taken.setdefault(kind, set()).add(color)
        out.append(obj)
    return out


def assign_names(objects: Iterable[PlacedObject]) -> None:
    """Name each object by kind, or by colour and kind when its kind occurs more than once."""
    objects = list(objects)
    counts = Counter(o.kind for o in objects)
    for o in objects:
        o.name = o.kind if counts[o.kind] == 1 else f"{o.color} {o.kind}"


def compose(background: np.ndarray, objects: Iterable[PlacedObject]) -> np.ndarray:
    """Paste every object onto ``background`` (modified in place) and return it read-only."""
    for o in objects:
        paste(background, o.sprite, o.x, o.y)
    background.flags.writeable = False
    return background


def place_or_fail(layout: Layout, rng: np.random.Generator, obj: PlacedObject, what: str, **kwargs: Any) -> None:
    """Place a required object (a target) or raise :class:`ConfigError` naming the knob to change."""
    spot = layout.place(rng, obj.sprite.size, tries=2000, **kwargs)
    if spot is None:
        raise ConfigError(
            f"could not place the {what} ({obj.sprite.size[0]}x{obj.sprite.size[1]} px) in a "
            f"{layout.width}x{layout.height} image; use smaller objects or a larger image_size"
        )
    obj.x, obj.y = spot


def build_sample(
    *,
    sample_id: str,
    question: str,
    options: list[str],
    answer_index: int,
    category: str,
    image: np.ndarray,
    targets: list[PlacedObject],
    objects: list[PlacedObject],
    metadata: Mapping[str, Any],
) -> VQASample:
    """Wrap a drawn scene into a :class:`VQASample` whose loader returns ``image`` (read-only)."""
    image.flags.writeable = False
    height, width = image.shape[:2]
    return VQASample(
        sample_id=sample_id,
        question=question,
        options=tuple(options),
        answer_index=answer_index,
        category=category,
        load_image=lambda: image,
        image_size=(int(width), int(height)),
        targets=tuple(o.annotation() for o in targets),
        objects=tuple(o.annotation() for o in objects),
        metadata=dict(metadata),
    )


def check_range(name: str, value: tuple[float, float], lo: float, hi: float | None = None) -> tuple[float, float]:
    """Validate an inclusive knob range ``(a, b)`` with ``lo <= a <= b (<= hi)``; return it as floats."""
    try:
        a, b = float(value[0]), float(value[1])
    except (TypeError, ValueError, IndexError) as e:
        raise ConfigError(f"{name} must be a pair (low, high), got {value!r}") from e
    if not (lo <= a <= b and (hi is None or b <= hi)):
        bound = f"{lo} <= low <= high" + (f" <= {hi}" if hi is not None else "")
        raise ConfigError(f"{name} must satisfy {bound}, got {value!r}")
    return a, b


def check_fraction(name: str, value: float) -> float:
    """Validate a probability knob in ``[0, 1]``."""
    if not 0.0 <= float(value) <= 1.0:
        raise ConfigError(f"{name} must be in [0, 1], got {value!r}")
    return float(value)


def check_image_size(value: tuple[int, int], minimum: int = 64) -> tuple[int, int]:
    """Validate an ``image_size = (width, height)`` knob."""
    try:
        w, h = int(value[0]), int(value[1])
    except (TypeError, ValueError, IndexError) as e:
        raise ConfigError(f"image_size must be (width, height) in pixels, got {value!r}") from e
    if w < minimum or h < minimum:
        raise ConfigError(f"image_size must be at least {minimum}x{minimum}, got {w}x{h}")
    return w, h
