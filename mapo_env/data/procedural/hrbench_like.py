"""HR-Bench look-alike scenes at 4K (3840x2160) or 8K (7680x4320), always 4 options A-D.

Two categories, as in HR-Bench (``DreamMr/HR-Bench``):

* ``single`` (fine-grained single-instance perception), subtypes
  ``color`` ("What is the color of the {obj}?" -> "Red", ...) and
  ``object`` ("Which object in the image is {color}?" -> "Umbrella", ...);
* ``cross`` (fine-grained cross-instance perception), subtypes
  ``relation`` ("Where is the {a} relative to the {b}?" -> "The {a} is to the left of the {b}.", right,
  above, below), ``count`` ("How many {kinds} are there in the image?" -> four numbers) and
  ``same_color`` ("Which object has the same color as the {a}?" -> four object names).

The correct option's position is drawn from the seed (HR-Bench's answers are spread over A-D).
Objects have the same size in pixels at 4K and 8K (``object_px``), so they are 4x smaller relative
to the image at 8K, as in the benchmark. The background is built at about 960x540 and upscaled;
objects are drawn at full resolution, so an 8K scene takes a fraction of a second.
"""

from __future__ import annotations

import numpy as np

from mapo_env.data.procedural.backgrounds import log_uniform
from mapo_env.data.procedural.scene import (
    Box,
    ClutteredScene,
    Layout,
    PlacedObject,
    add_distractors,
    assign_names,
    build_sample,
    check_fraction,
    check_range,
    compose,
    place_or_fail,
    sprite_for,
)
from mapo_env.data.procedural.sprites import SPRITE_KINDS
from mapo_env.data.procedural.vocabulary import color_names, plural
from mapo_env.errors import ConfigError
from mapo_env.types import VQASample

RESOLUTIONS: dict[str, tuple[int, int]] = {"4k": (3840, 2160), "8k": (7680, 4320)}
"""Image size of each ``resolution``."""
SINGLE_SUBTYPES = ("color", "object")
CROSS_SUBTYPES = ("relation", "count", "same_color")
_RELATIONS = ("left", "right", "above", "below")
_GAP = 8


class HRBenchSceneGenerator(ClutteredScene):
    """Procedural HR-Bench: single- and cross-instance questions on 4K / 8K scenes.

    Args:
        resolution: ``"4k"`` (3840x2160) or ``"8k"`` (7680x4320).
        object_px: Range of an object's nominal side (square root of its box area) in pixels.
        num_distractors: Inclusive range of the number of distractor objects tried.
        cross_fraction: Probability of a ``cross`` question (HR-Bench: one half).
        max_count: Largest true answer of a ``count`` question.
        background_scale: Fraction of the size the background collage is built at; default about
            960 pixels wide whatever the resolution.
        background_patches: Inclusive range of photo/texture patches in the collage.

    Raises:
        ConfigError: An argument is out of range (the message names it).
    """

    def __init__(
        self,
        resolution: str = "4k",
        object_px: tuple[float, float] = (48.0, 160.0),
        num_distractors: tuple[int, int] = (12, 24),
        cross_fraction: float = 0.5,
        max_count: int = 5,
        background_scale: float | None = None,
        background_patches: tuple[int, int] = (8, 18),
    ) -> None:
        key = str(resolution).lower()
        if key not in RESOLUTIONS:
            raise ConfigError(f"resolution must be one of {list(RESOLUTIONS)}, got {resolution!r}")
        self.resolution = key
        self.image_size = RESOLUTIONS[key]
        self.name = f"procedural-hrbench-{key}"
        self.object_px = check_range("object_px", object_px, 8.0, min(self.image_size) / 4)
        lo, hi = check_range("num_distractors", num_distractors, 0)
        self.num_distractors = (int(lo), int(hi))
        self.cross_fraction = check_fraction("cross_fraction", cross_fraction)
        if not 1 <= int(max_count) <= len(color_names()):
            raise ConfigError(f"max_count must be in [1, {len(color_names())}] (one colour each), got {max_count}")
        self.max_count = int(max_count)
        scale = 960 / self.image_size[0] if background_scale is None else background_scale
        self.set_background(scale, background_patches)

    def knobs(self) -> dict[str, object]:
        """The constructor arguments, JSON-friendly (stored in each sample's metadata)."""
        return {
            "resolution": self.resolution,
            "object_px": list(self.object_px),
            "num_distractors": list(self.num_distractors),
            "cross_fraction": self.cross_fraction,
            "max_count": self.max_count,
            "background_scale": self.background_scale,
            "background_patches": list(self.background_patches),
        }

    def generate(self, rng: np.random.Generator, index: int) -> VQASample:
        """Draw sample ``index`` from ``rng`` (same ``rng`` state -> same sample)."""
        background_seed = int(rng.integers(2**63 - 1))
        layout = Layout(*self.image_size, gap=_GAP)
        if rng.random() < self.cross_fraction:
            category, subtype = "cross", CROSS_SUBTYPES[int(rng.integers(len(CROSS_SUBTYPES)))]
        else:
            category, subtype = "single", SINGLE_SUBTYPES[int(rng.integers(len(SINGLE_SUBTYPES)))]
        build = getattr(self, f"_{subtype}")
        question, correct, wrong, targets, objects = build(rng, layout)
        options, answer_index = _arrange(rng, correct, wrong, keep_order=subtype == "count")
        image = compose(self.background(background_seed), objects)
        metadata = {
            "generator": self.name,
            "background_seed": background_seed,
            "subtype": subtype,
            "knobs": self.knobs(),
        }
        return build_sample(
            sample_id=f"{self.name}-{index}",
            question=question,
            options=options,
            answer_index=answer_index,
            category=category,
            image=image,
            targets=targets,
            objects=objects,
            metadata=metadata,
        )

    # -- building blocks ---------------------------------------------------------------------------

    def _new(self, rng: np.random.Generator, kind: str, color: str) -> PlacedObject:
        side = log_uniform(rng, *self.object_px)
        return PlacedObject(kind, color, sprite_for(rng, kind, color, side * side))

    def _fill(
        self,
        rng: np.random.Generator,
        layout: Layout,
        objects: list[PlacedObject],
        kinds: list[str],
        colors: list[str] | None = None,
    ) -> list[PlacedObject]:
        """Add distractors of ``kinds`` (in ``colors``) to ``objects``, name everything, return the list."""
        taken: dict[str, set[str]] = {}
        for o in objects:
            taken.setdefault(o.kind, set()).add(o.color)
        n = int(rng.integers(self.num_distractors[0], self.num_distractors[1] + 1))
        areas = (self.object_px[0] ** 2, self.object_px[1] ** 2)
        palette = list(color_names()) if colors is None else colors
        objects = objects + add_distractors(rng, layout, n, areas, kinds=kinds, colors=palette, taken=taken)
        assign_names(objects)
        return objects

    # -- subtypes: each returns (question, correct option, wrong options, targets, objects) ----------

    def _color(self, rng: np.random.Generator, layout: Layout):
        colors = list(color_names())
        kind, color = _pick(rng, SPRITE_KINDS), _pick(rng, colors)
        target = self._new(rng, kind, color)
        place_or_fail(layout, rng, target, "target")
        objects = self._fill(rng, layout, [target], [k for k in SPRITE_KINDS if k != kind])
        wrong = [c.capitalize() for c in _sample_without(rng, colors, {color}, 3)]
        return f"What is the color of the {target.name}?", color.capitalize(), wrong, [target], objects

    def _object(self, rng: np.random.Generator, layout: Layout):
        colors = list(color_names())
        kind, color = _pick(rng, SPRITE_KINDS), _pick(rng, colors)
        target = self._new(rng, kind, color)
        place_or_fail(layout, rng, target, "target")
        others = [c for c in colors if c != color]  # the asked colour belongs to the target alone
        objects = self._fill(rng, layout, [target], list(SPRITE_KINDS), colors=others)
        wrong = [k.capitalize() for k in _sample_without(rng, list(SPRITE_KINDS), {kind}, 3)]
        return f"Which object in the image is {color}?", kind.capitalize(), wrong, [target], objects

    def _relation(self, rng: np.random.Generator, layout: Layout):
        colors = list(color_names())
        kind_a, kind_b = _pick(rng, SPRITE_KINDS), _pick(rng, SPRITE_KINDS)
        color_a = _pick(rng, colors)
        color_b = _pick(rng, [c for c in colors if kind_a != kind_b or c != color_a])
        a, b = self._new(rng, kind_a, color_a), self._new(rng, kind_b, color_b)
        relation = _RELATIONS[int(rng.integers(4))]
        room = max(a.sprite.size) * 3  # free space beyond b in the asked direction
        place_or_fail(layout, rng, b, "reference object", accept=lambda box: _has_room(box, relation, room, layout))
        _place_beside(rng, layout, a, b, relation)
        objects = self._fill(rng, layout, [a, b], [k for k in SPRITE_KINDS if k not in (kind_a, kind_b)])
        phrases = {r: _phrase(a.name, r, b.name) for r in _RELATIONS}
        wrong = [phrases[r] for r in _RELATIONS if r != relation]
        return f"Where is the {a.name} relative to the {b.name}?", phrases[relation], wrong, [a, b], objects

    def _count(self, rng: np.random.Generator, layout: Layout):
        colors = list(color_names())
        kind = _pick(rng, SPRITE_KINDS)
        count = int(rng.integers(1, self.max_count + 1))
        targets = [self._new(rng, kind, c) for c in _sample_without(rng, colors, set(), count)]
        for t in targets:
            place_or_fail(layout, rng, t, f"{kind} to count")
        objects = self._fill(rng, layout, targets, [k for k in SPRITE_KINDS if k != kind])
        candidates = [n for n in range(max(1, count - 3), count + 4) if n != count]
        wrong = [str(n) for n in _sample_without(rng, candidates, set(), 3)]
        return f"How many {plural(kind)} are there in the image?", str(count), wrong, targets, objects

    def _same_color(self, rng: np.random.Generator, layout: Layout):
        colors = list(color_names())
        kind_a, kind_m = _sample_without(rng, list(SPRITE_KINDS), set(), 2)
        color = _pick(rng, colors)
        a, match = self._new(rng, kind_a, color), self._new(rng, kind_m, color)
        place_or_fail(layout, rng, a, "target")
        place_or_fail(layout, rng, match, "object of the same colour")
        rest = [k for k in SPRITE_KINDS if k not in (kind_a, kind_m)]
        decoys = [
            self._new(rng, k, c)
            for k, c in zip(_sample_without(rng, rest, set(), 3), _sample_without(rng, colors, {color}, 3))
        ]
        for d in decoys:
            place_or_fail(layout, rng, d, "option object")
        used = {o.kind for o in [a, match, *decoys]}
        # Kinds stay unique in this scene so that names carry no colour word that would give the answer away.
        objects = self._fill_unique_kinds(rng, layout, [a, match, *decoys], used, color)
        wrong = [d.name for d in decoys]
        return f"Which object has the same color as the {a.name}?", match.name, wrong, [a, match], objects

    def _fill_unique_kinds(
        self, rng: np.random.Generator, layout: Layout, objects: list[PlacedObject], used: set[str], color: str
    ) -> list[PlacedObject]:
        """Distractors of kinds not used yet, one each, never in ``color``."""
        free_kinds = [k for k in SPRITE_KINDS if k not in used]
        n = min(len(free_kinds), int(rng.integers(self.num_distractors[0], self.num_distractors[1] + 1)))
        palette = [c for c in color_names() if c != color]
        areas = (self.object_px[0] ** 2, self.object_px[1] ** 2)
        extra = []
        for kind in _sample_without(rng, free_kinds, set(), n):
            extra += add_distractors(rng, layout, 1, areas, kinds=[kind], colors=palette, taken={})
        objects = objects + extra
        assign_names(objects)
        return objects


def _has_room(box: Box, relation: str, room: int, layout: Layout) -> bool:
    """True when there are ``room`` pixels beyond ``box`` on the side where the target must go."""
    margin = layout.margin
    if relation == "left":  # the target is to the left of the reference box
        return box[0] - margin >= room
    if relation == "right":
        return layout.width - margin - box[2] >= room
    if relation == "above":
        return box[1] - margin >= room
    return layout.height - margin - box[3] >= room


def _place_beside(rng: np.random.Generator, layout: Layout, a: PlacedObject, b: PlacedObject, relation: str) -> None:
    """Place ``a`` so that it is clearly ``relation`` of ``b`` (sampled in a cone around the axis)."""
    w, h = a.sprite.size
    (bx, by), (bw, bh) = b.center, b.sprite.size
    axis_x = relation in ("left", "right")
    sign = -1.0 if relation in ("left", "above") else 1.0
    near = (w + bw) / 2 + _GAP if axis_x else (h + bh) / 2 + _GAP
    far = max(near + 1.0, (layout.width if axis_x else layout.height) * 0.6)
    for _ in range(2000):
        along = sign * log_uniform(rng, near, far)
        across = rng.uniform(-0.45, 0.45) * abs(along)
        cx, cy = (bx + along, by + across) if axis_x else (bx + across, by + along)
        box = (round(cx - w / 2), round(cy - h / 2), round(cx - w / 2) + w, round(cy - h / 2) + h)
        if layout.fits(box) and _relation_of(box, b.box) == relation:
            layout.occupy(box)
            a.x, a.y = box[0], box[1]
            return
    raise ConfigError(
        f"could not place the target {relation} of the reference object in a {layout.width}x{layout.height} "
        "image; use smaller objects (object_px) or fewer distractors"
    )


def _pick(rng: np.random.Generator, items):
    return items[int(rng.integers(len(items)))]


def _sample_without(rng: np.random.Generator, items, exclude: set, k: int) -> list:
    """``k`` distinct items not in ``exclude``, in random order."""
    pool = [x for x in items if x not in exclude]
    if len(pool) < k:
        raise ConfigError(f"need {k} distinct choices but only {len(pool)} are available")
    return [pool[i] for i in rng.permutation(len(pool))[:k]]


def _arrange(rng: np.random.Generator, correct: str, wrong: list[str], keep_order: bool) -> tuple[list[str], int]:
    """The four options with the correct one at a random place (numbers stay sorted)."""
    options = [correct, *wrong]
    if keep_order:
        options.sort(key=float)
    else:
        options = [options[i] for i in rng.permutation(len(options))]
    return options, options.index(correct)


def _phrase(a: str, relation: str, b: str) -> str:
    where = {"left": "to the left of", "right": "to the right of", "above": "above", "below": "below"}[relation]
    return f"The {a} is {where} the {b}."


def _relation_of(a: Box, b: Box) -> str | None:
    """Where box ``a`` is relative to ``b``, or None when it is not clear.

    Clear means: disjoint along the axis (with a gap), and the centre offset along that axis is at
    least twice the offset along the other axis (within about 27 degrees of the axis).
    """
    dx = (a[0] + a[2]) / 2 - (b[0] + b[2]) / 2
    dy = (a[1] + a[3]) / 2 - (b[1] + b[3]) / 2
    if abs(dx) >= 2 * abs(dy):
        if a[2] + _GAP <= b[0]:
            return "left"
        if b[2] + _GAP <= a[0]:
            return "right"
    if abs(dy) >= 2 * abs(dx):
        if a[3] + _GAP <= b[1]:
            return "above"
        if b[3] + _GAP <= a[1]:
            return "below"
    return None
