"""V* Bench look-alike scenes: tiny coloured objects in large cluttered photographs.

Question templates, option counts and target sizes follow V* Bench (``craigwu/vstar_bench``):

* ``direct_attributes`` (4 options): "What is the color of the {obj}?" with options
  "The color of the {obj} is {c}."; the 2-option form "Is the {obj} {c1} or {c2}?" uses the same
  option sentences.
* ``relative_position`` (2 options): "Is the {a} on the left or right side of the {b}?" ->
  "The {a} is on the left side of the {b}." / "... right side ..."; or "Is the {a} above or below
  the {b}?" -> "The {a} is above the {b}." / "The {a} is below the {b}.".

As in V*'s raw files, the correct option comes first (``answer_index == 0``); the environment
shuffles options. Target boxes cover about 0.025 % to 0.7 % of the image by default, median about
0.12 % (V*'s real targets: median 0.15 %, 10th-90th percentiles 0.013 %-0.44 %).
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
    check_image_size,
    check_range,
    compose,
    place_or_fail,
    sprite_for,
)
from mapo_env.data.procedural.sprites import SPRITE_KINDS
from mapo_env.data.procedural.vocabulary import color_names
from mapo_env.types import VQASample

_GAP = 6  # pixels kept between objects (see Layout)


class VStarSceneGenerator(ClutteredScene):
    """Procedural V* Bench: attribute and relative-position questions on tiny targets.

    Every target is unique in its scene (no other object has its name) and its colour is its body
    colour (small parts are neutral grey), so the answer is unambiguous. Relative-position pairs are
    separated along the asked axis, by at least half their offset along the other axis.

    Args:
        image_size: ``(width, height)``; default is V*'s average image size.
        target_area_frac: Range of a target's nominal box area as a fraction of the image
            (log-uniform).
        distractor_area_frac: The same for distractor objects.
        num_distractors: Inclusive range of the number of distractor objects tried.
        relative_fraction: Probability of a ``relative_position`` question (V*: 76 of 191).
        two_option_fraction: Among attribute questions, probability of the 2-option form (V*: 8 of 115).
        vertical_fraction: Among relative questions, probability of above/below instead of left/right.
        same_kind_fraction: Among relative questions, probability of adding an object of a target's
            kind in another colour, so that the targets are named by colour ("the red car").
        background_scale: The background collage is built at this fraction of the size, then upscaled.
        background_patches: Inclusive range of photo/texture patches in the collage.

    Example:
        >>> import numpy as np
        >>> gen = VStarSceneGenerator(image_size=(640, 480))
        >>> sample = gen.generate(np.random.default_rng(0), 0)
        >>> sample.load_image().shape
        (480, 640, 3)
    """

    name = "procedural-vstar"

    def __init__(
        self,
        image_size: tuple[int, int] = (2246, 1582),
        target_area_frac: tuple[float, float] = (2.5e-4, 7e-3),
        distractor_area_frac: tuple[float, float] = (2e-4, 6e-3),
        num_distractors: tuple[int, int] = (6, 12),
        relative_fraction: float = 0.4,
        two_option_fraction: float = 0.07,
        vertical_fraction: float = 0.1,
        same_kind_fraction: float = 0.4,
        background_scale: float = 0.5,
        background_patches: tuple[int, int] = (6, 14),
    ) -> None:
        self.image_size = check_image_size(image_size)
        self.target_area_frac = check_range("target_area_frac", target_area_frac, 1e-6, 0.05)
        self.distractor_area_frac = check_range("distractor_area_frac", distractor_area_frac, 1e-6, 0.05)
        lo, hi = check_range("num_distractors", num_distractors, 0)
        self.num_distractors = (int(lo), int(hi))
        self.relative_fraction = check_fraction("relative_fraction", relative_fraction)
        self.two_option_fraction = check_fraction("two_option_fraction", two_option_fraction)
        self.vertical_fraction = check_fraction("vertical_fraction", vertical_fraction)
        self.same_kind_fraction = check_fraction("same_kind_fraction", same_kind_fraction)
        self.set_background(background_scale, background_patches)

    def knobs(self) -> dict[str, object]:
        """The constructor arguments, JSON-friendly (stored in each sample's metadata)."""
        return {
            "image_size": list(self.image_size),
            "target_area_frac": list(self.target_area_frac),
            "distractor_area_frac": list(self.distractor_area_frac),
            "num_distractors": list(self.num_distractors),
            "relative_fraction": self.relative_fraction,
            "two_option_fraction": self.two_option_fraction,
            "vertical_fraction": self.vertical_fraction,
            "same_kind_fraction": self.same_kind_fraction,
            "background_scale": self.background_scale,
            "background_patches": list(self.background_patches),
        }

    def generate(self, rng: np.random.Generator, index: int) -> VQASample:
        """Draw sample ``index`` from ``rng`` (same ``rng`` state -> same sample)."""
        background_seed = int(rng.integers(2**63 - 1))
        layout = Layout(*self.image_size, gap=_GAP)
        if rng.random() < self.relative_fraction:
            parts = self._relative(rng, layout)
        else:
            parts = self._attribute(rng, layout)
        question, options, category, targets, objects, extra = parts
        image = compose(self.background(background_seed), objects)
        metadata = {"generator": self.name, "background_seed": background_seed, **extra, "knobs": self.knobs()}
        return build_sample(
            sample_id=f"{self.name}-{index}",
            question=question,
            options=options,
            answer_index=0,
            category=category,
            image=image,
            targets=targets,
            objects=objects,
            metadata=metadata,
        )

    def _area(self, rng: np.random.Generator, frac: tuple[float, float]) -> float:
        return log_uniform(rng, *frac) * self.image_size[0] * self.image_size[1]

    def _distractors(
        self, rng: np.random.Generator, layout: Layout, targets: list[PlacedObject]
    ) -> list[PlacedObject]:
        """Distractors of kinds other than the targets' (their names stay as the question says)."""
        target_kinds = {t.kind for t in targets}
        taken: dict[str, set[str]] = {}
        for t in targets:
            taken.setdefault(t.kind, set()).add(t.color)
        n = int(rng.integers(self.num_distractors[0], self.num_distractors[1] + 1))
        area = tuple(f * self.image_size[0] * self.image_size[1] for f in self.distractor_area_frac)
        kinds = [k for k in SPRITE_KINDS if k not in target_kinds]
        return add_distractors(rng, layout, n, area, kinds=kinds, colors=list(color_names()), taken=taken)

    def _attribute(self, rng: np.random.Generator, layout: Layout):
        """A ``direct_attributes`` question about one target's colour."""
        colors = list(color_names())
        kind = SPRITE_KINDS[int(rng.integers(len(SPRITE_KINDS)))]
        color = colors[int(rng.integers(len(colors)))]
        target = PlacedObject(kind, color, sprite_for(rng, kind, color, self._area(rng, self.target_area_frac)))
        place_or_fail(layout, rng, target, "target")
        objects = [target, *self._distractors(rng, layout, [target])]
        assign_names(objects)
        others = [colors[i] for i in rng.permutation(len(colors)) if colors[i] != color]
        obj = target.name
        if rng.random() < self.two_option_fraction:
            pair = [color, others[0]] if rng.random() < 0.5 else [others[0], color]
            question = f"Is the {obj} {pair[0]} or {pair[1]}?"
            option_colors = [color, others[0]]
        else:
            question = f"What is the color of the {obj}?"
            option_colors = [color, *others[:3]]
        options = [f"The color of the {obj} is {c}." for c in option_colors]
        extra = {"question_type": f"color_{len(options)}"}
        return question, options, "direct_attributes", [target], objects, extra

    def _relative(self, rng: np.random.Generator, layout: Layout):
        """A ``relative_position`` question about two targets."""
        colors = list(color_names())
        vertical = bool(rng.random() < self.vertical_fraction)
        kind_a = SPRITE_KINDS[int(rng.integers(len(SPRITE_KINDS)))]
        kind_b = SPRITE_KINDS[int(rng.integers(len(SPRITE_KINDS)))]
        color_a = colors[int(rng.integers(len(colors)))]
        choices_b = [c for c in colors if kind_b != kind_a or c != color_a]
        color_b = choices_b[int(rng.integers(len(choices_b)))]
        a = PlacedObject(kind_a, color_a, sprite_for(rng, kind_a, color_a, self._area(rng, self.target_area_frac)))
        b = PlacedObject(kind_b, color_b, sprite_for(rng, kind_b, color_b, self._area(rng, self.target_area_frac)))
        place_or_fail(layout, rng, a, "first target")
        place_or_fail(layout, rng, b, "second target", accept=lambda box: _separated(a.box, box, vertical))
        objects = [a, b]
        if rng.random() < self.same_kind_fraction:
            twin_of = a if rng.random() < 0.5 else b
            used = {o.color for o in objects if o.kind == twin_of.kind}
            free = [c for c in colors if c not in used]
            color = free[int(rng.integers(len(free)))]
            area = self._area(rng, self.distractor_area_frac)
            twin = PlacedObject(twin_of.kind, color, sprite_for(rng, twin_of.kind, color, area))
            spot = layout.place(rng, twin.sprite.size, tries=200)
            if spot is not None:
                twin.x, twin.y = spot
                objects.append(twin)
        objects += self._distractors(rng, layout, objects)
        assign_names(objects)
        (ax, ay), (bx, by) = a.center, b.center
        if vertical:
            truth, other = ("above", "below") if ay < by else ("below", "above")
            question = f"Is the {a.name} above or below the {b.name}?"
            options = [f"The {a.name} is {truth} the {b.name}.", f"The {a.name} is {other} the {b.name}."]
        else:
            truth, other = ("left", "right") if ax < bx else ("right", "left")
            question = f"Is the {a.name} on the left or right side of the {b.name}?"
            options = [f"The {a.name} is on the {s} side of the {b.name}." for s in (truth, other)]
        extra = {"question_type": "above_below" if vertical else "left_right", "relation": truth}
        return question, options, "relative_position", [a, b], objects, extra


def _separated(a: Box, b: Box, vertical: bool) -> bool:
    """True when ``b`` is clearly on one side of ``a`` along the asked axis.

    The boxes must be disjoint along that axis (with a gap), and the centre offset along it must be
    at least half the offset along the other axis.
    """
    dx = (b[0] + b[2]) / 2 - (a[0] + a[2]) / 2
    dy = (b[1] + b[3]) / 2 - (a[1] + a[3]) / 2
    if vertical:
        disjoint = b[3] + _GAP <= a[1] or a[3] + _GAP <= b[1]
        return disjoint and abs(dy) >= 0.5 * abs(dx)
    disjoint = b[2] + _GAP <= a[0] or a[2] + _GAP <= b[0]
    return disjoint and abs(dx) >= 0.5 * abs(dy)
