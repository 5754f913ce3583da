"""Crop/caption pairs cut from the procedural environments' own scenes, in their own vocabulary.

Scenes come from the generators the environments use, with the environments' knobs
(:data:`FAMILIES`), and from one split: sample ``i`` of split ``s`` is
``generator.generate(default_rng([SPLIT_SEEDS[s], i]), i)``, exactly the scene the environment
serves as sample ``i`` of that split (``dataset_seed=0``). Training reads the ``"train"`` split,
the held-out evaluation the ``"test"`` split, so no evaluated scene is ever trained on.

A crop is an object's box plus a random margin (5 to 50 % of the box on each side, as a good zoom
returns it); sometimes it is also magnified with bilinear interpolation as the environment shows it.
It is stored as the model will see it: :func:`mapo_env.alignment.clip.prepare_crop`, then the
processor's resize and centre crop, as ``uint8`` (3, S, S).

Vocabulary: colours, kinds and patterns are those of ``envs_data/procedural/vocabulary.json``
(:mod:`mapo_env.data.procedural.vocabulary`); nothing here adds a word the scenes do not use.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from mapo_env.alignment.base import AlignmentRequest
from mapo_env.data.procedural import (
    PATTERNS,
    HRBenchSceneGenerator,
    TextSpotSceneGenerator,
    TilesSceneGenerator,
    VStarSceneGenerator,
)
from mapo_env.data.procedural.sprites import SPRITE_KINDS
from mapo_env.data.procedural.vocabulary import load_vocabulary
from mapo_env.envs.common import SPLIT_SEEDS
from mapo_env.envs.tiles import TILES_GENERATOR_DEFAULTS
from mapo_env.types import BBox, ObjectAnnotation, VQASample

FAMILIES: dict[str, Callable[[], Any]] = {
    "tiles": lambda: TilesSceneGenerator(**TILES_GENERATOR_DEFAULTS),
    "vstar": VStarSceneGenerator,
    "hrbench": HRBenchSceneGenerator,
    "textspot": TextSpotSceneGenerator,
}
"""Scene family -> generator as its environment builds it (Tiles, V*-like, HR-Bench-like 4K, TextSpot)."""

BOARD_KINDS = ("sign", "price tag", "license plate")
"""The TextSpot boards (``"sign"`` is also a sprite kind)."""


def _colors() -> tuple[str, ...]:
    vocab = load_vocabulary()
    names = [*vocab["colors"], *vocab["tiles"]["colors"], vocab["tiles"]["clutter_name"]]
    return tuple(dict.fromkeys(names))


COLORS: tuple[str, ...] = _colors()
"""Every colour name a procedural scene uses (objects, tiles, grey clutter)."""
KINDS: tuple[str, ...] = tuple(dict.fromkeys([*SPRITE_KINDS, "tile", *BOARD_KINDS]))
"""Every object kind a procedural scene draws."""
NO_PATTERN = "none"
PATTERN_CLASSES: tuple[str, ...] = (*PATTERNS, NO_PATTERN)
"""The tile patterns, plus ``"none"`` for objects that have none."""

Fields = dict[str, str]


@dataclass(frozen=True)
class Subject:
    """What one annotated object is: colour, kind, tile pattern and written text (the last two may be empty)."""

    color: str
    kind: str
    pattern: str = ""
    text: str = ""

    @classmethod
    def of(cls, obj: ObjectAnnotation) -> Subject:
        """The subject of a procedural annotation (its name is ``kind`` or ``"<colour> <kind>"``)."""
        color = str(obj.attributes.get("color", ""))
        words = obj.name.split()
        kind = " ".join(words[1:]) if len(words) > 1 and words[0] == color else obj.name
        return cls(color, kind, str(obj.attributes.get("pattern", "")), str(obj.attributes.get("text", "")))

    def fits(self, fields: Fields) -> bool:
        """True when a caption naming ``fields`` (a subset of colour/kind/pattern/text) describes this subject."""
        return all(getattr(self, key) == value for key, value in fields.items())


def caption_corpus() -> list[str]:
    """Text the tokenizer is trained on: every caption form of the procedural vocabulary."""
    vocab = load_vocabulary()
    words = [*COLORS, *KINDS, *PATTERNS, *vocab["text"]["words"], "a", "the", "photo", "of", "with", "that", "says"]
    lines = [" ".join(words)]
    for kind in KINDS:
        for color in COLORS:
            lines += [f"{color} {kind}", f"a photo of a {color} {kind}", f"the {color} {kind}"]
    for color in COLORS:
        for pattern in PATTERNS:
            lines += [f"{pattern} {color} tile", f"a {color} tile with {pattern}"]
    lines += [f"{w} sign" for w in vocab["text"]["words"]] + ["$12.50 price tag", "KN 2704 license plate"]
    lines += ["an object", "a thing", "a photo", "a part of an image", "something", "a region", "text"]
    return lines


def caption(rng: np.random.Generator, obj: ObjectAnnotation, subject: Subject) -> tuple[str, Fields]:
    """A varied truthful caption of ``obj`` and the fields it names (so which subjects it fits).

    Half the time the annotation's own caption (``obj.caption()``, what the tests and the lexical and
    annotation scorers compare with); otherwise a shorter or templated form, e.g. ``"the red bag"``,
    ``"a red tile with checkerboard"``, ``"bucket"`` (kind only, fits a bucket of any colour).
    """
    full = {k: v for k, v in (("color", subject.color), ("kind", subject.kind)) if v}
    if subject.pattern:
        full["pattern"] = subject.pattern
    if subject.text:
        full["text"] = subject.text
    r = rng.random()
    if r < 0.5:
        return obj.caption(), full
    base = {k: full[k] for k in ("color", "kind") if k in full}
    if r < 0.56:
        return ("a " if rng.random() < 0.5 else "") + subject.kind, {"kind": subject.kind}
    template = ("{}", "a {}", "the {}", "a photo of a {}")[int(rng.integers(4))]
    if subject.pattern and r < 0.8:
        words = (f"{subject.color} tile with {subject.pattern}", f"{subject.color} {subject.pattern} tile")
        return template.format(words[int(rng.integers(2))]), full
    if subject.text and r < 0.7:
        return template.format(f"{subject.color} {subject.kind} that says {subject.text}"), full
    return template.format(f"{subject.color} {subject.kind}"), base


def swapped(rng: np.random.Generator, subject: Subject) -> Subject:
    """``subject`` with its colour (mostly), kind or tile pattern changed: a hard wrong caption."""
    r = rng.random()
    if subject.pattern and r < 0.25:
        return Subject(subject.color, subject.kind, _other(rng, PATTERNS, subject.pattern), subject.text)
    if subject.kind != "tile" and r < 0.6:
        kinds = SPRITE_KINDS if subject.kind in SPRITE_KINDS else BOARD_KINDS
        return Subject(subject.color, _other(rng, kinds, subject.kind))
    return Subject(_other(rng, COLORS, subject.color), subject.kind, subject.pattern, subject.text)


def _other(rng: np.random.Generator, pool: tuple[str, ...], current: str) -> str:
    choices = [v for v in pool if v != current]
    return choices[int(rng.integers(len(choices)))]


def subject_caption(subject: Subject) -> tuple[str, Fields]:
    """The annotation-style caption of a subject (as :meth:`ObjectAnnotation.caption` writes it)."""
    attributes = {"color": subject.color}
    if subject.pattern:
        attributes["pattern"] = subject.pattern
    if subject.text:
        attributes["text"] = subject.text
    name = f"{subject.color} {subject.kind}"
    fields = {"color": subject.color, "kind": subject.kind}
    fields |= {k: v for k, v in (("pattern", subject.pattern), ("text", subject.text)) if v}
    return ObjectAnnotation(name, (0.0, 0.0, 1.0, 1.0), attributes).caption(), fields


def scene(family: str, split: str, index: int, generator: Any | None = None) -> VQASample:
    """Sample ``index`` of ``split`` of a family, exactly as its environment serves it (``dataset_seed=0``)."""
    gen = generator if generator is not None else FAMILIES[family]()
    return gen.generate(np.random.default_rng([SPLIT_SEEDS[split], index]), index)


def crop_around(
    image: np.ndarray, box: BBox, rng: np.random.Generator, margin: tuple[float, float] = (0.05, 0.5)
) -> tuple[np.ndarray, BBox]:
    """The object's box plus a random margin (a fraction of the box size on each side), clipped to the image.

    The crop is a copy: a view would keep the whole scene (up to 25 MB at 4K) alive as long as the crop.
    """
    x1, y1, x2, y2 = box
    m = rng.uniform(*margin)
    cx1, cy1 = max(0, int(x1 - m * (x2 - x1))), max(0, int(y1 - m * (y2 - y1)))
    cx2 = min(image.shape[1], int(x2 + m * (x2 - x1)) + 1)
    cy2 = min(image.shape[0], int(y2 + m * (y2 - y1)) + 1)
    return image[cy1:cy2, cx1:cx2].copy(), (float(cx1), float(cy1), float(cx2), float(cy2))


def visible_in(objects: tuple[ObjectAnnotation, ...], crop_box: BBox) -> tuple[tuple[ObjectAnnotation, float], ...]:
    """Objects overlapping ``crop_box`` with the fraction of each box inside it, most visible first."""
    out = []
    for obj in objects:
        x1, y1, x2, y2 = obj.bbox
        inter = max(0.0, min(x2, crop_box[2]) - max(x1, crop_box[0])) * max(
            0.0, min(y2, crop_box[3]) - max(y1, crop_box[1])
        )
        if inter > 0:
            out.append((obj, inter / ((x2 - x1) * (y2 - y1))))
    return tuple(sorted(out, key=lambda pair: -pair[1]))


def truthful_vs_wrong_pairs(
    family: str, n: int, split: str = "test", seed: int = 5, first_index: int = 0
) -> list[tuple[AlignmentRequest, AlignmentRequest]]:
    """Pairs (truthful request, wrong request) on the same crop of ``n`` scenes of ``split`` (from ``first_index``).

    For scene ``i`` the crop is the (first) target's box plus a random margin; the truthful text is the
    target's caption, the wrong text the caption of another object of the same scene that is not
    visible in the crop (what a zoom on the wrong region would describe). Scenes where every other
    object is visible are skipped. ``seed`` draws the margins and the wrong objects.
    """
    generator = FAMILIES[family]()
    rng = np.random.default_rng(seed)
    pairs = []
    for i in range(first_index, first_index + n):
        sample = scene(family, split, i, generator)
        target = sample.targets[0] if sample.targets else sample.objects[0]
        crop, crop_box = crop_around(sample.load_image(), target.bbox, rng)
        inside = visible_in(sample.objects, crop_box)
        seen = {obj.caption() for obj, visible in inside if visible > 0.2}
        others = [obj for obj in sample.objects if obj.caption() not in seen]
        if not others:
            continue
        wrong = others[int(rng.integers(len(others)))].caption()
        pairs.append(
            (
                AlignmentRequest(target.caption(), crop, crop_box, inside),
                AlignmentRequest(wrong, crop, crop_box, inside),
            )
        )
    return pairs


@dataclass
class CropPool:
    """Preprocessed training crops and what each one shows.

    Attributes:
        pixels: ``uint8`` (N, 3, S, S): each crop as the model sees it, before normalisation.
        objects: The annotated object each crop is centred on.
        subjects: Its :class:`Subject`.
        wrong: Per crop, the objects of the same scene that are not visible in it (wrong captions).
        families: Per crop, its scene family.
    """

    pixels: np.ndarray
    objects: list[ObjectAnnotation] = field(default_factory=list)
    subjects: list[Subject] = field(default_factory=list)
    wrong: list[tuple[ObjectAnnotation, ...]] = field(default_factory=list)
    families: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.subjects)


def env_view(crop: np.ndarray, family: str) -> np.ndarray:
    """The crop magnified as the environment shows it (bilinear; Tiles at 112x112, others at about 448x448)."""
    h, w = crop.shape[:2]
    if family == "tiles":
        size = (112, 112)
    else:
        scale = 448.0 / max(1.0, float(np.sqrt(h * w)))
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
    interpolation = cv2.INTER_AREA if size[0] * size[1] < h * w else cv2.INTER_LINEAR
    return cv2.resize(crop, size, interpolation=interpolation)


def build_pool(
    scenes: dict[str, int],
    processor: Any,
    *,
    split: str = "train",
    first_index: int = 0,
    seed: int = 0,
    max_clutter: int = 2,
    env_view_prob: float = 0.5,
    log: Callable[[str], None] | None = None,
) -> CropPool:
    """One crop per object of ``scenes[family]`` scenes of each family (indices from ``first_index``).

    Tiles keep at most ``max_clutter`` grey clutter tiles per scene. With probability
    ``env_view_prob`` a crop is first magnified as the environment shows it (:func:`env_view`).
    """
    from mapo_env.alignment.clip import prepare_crop

    rng = np.random.default_rng(seed)
    chunks: list[np.ndarray] = []
    pool = CropPool(np.zeros((0, 3, 1, 1), np.uint8))
    clutter = load_vocabulary()["tiles"]["clutter_name"]
    for family, count in scenes.items():
        generator = FAMILIES[family]()
        for i in range(first_index, first_index + count):
            sample = scene(family, split, i, generator)
            image = sample.load_image()
            objects = list(sample.objects)
            if family == "tiles":
                grey = [o for o in objects if o.attributes.get("color") == clutter]
                objects = [o for o in objects if o not in grey] + grey[:max_clutter]
            images = []
            for obj in objects:
                crop, crop_box = crop_around(image, obj.bbox, rng)
                if rng.random() < env_view_prob:
                    crop = env_view(crop, family)
                seen = {o.caption() for o, v in visible_in(sample.objects, crop_box) if v > 0.2}
                images.append(prepare_crop(crop))
                pool.objects.append(obj)
                pool.subjects.append(Subject.of(obj))
                pool.wrong.append(tuple(o for o in sample.objects if o.caption() not in seen))
                pool.families.append(family)
            pixels = processor(images, do_normalize=False, do_rescale=False, return_tensors="np")["pixel_values"]
            chunks.append(pixels.astype(np.uint8))
            if log is not None and (i - first_index + 1) % 200 == 0:
                log(f"{family}: {i - first_index + 1}/{count} scenes, {len(pool)} crops")
    pool.pixels = np.concatenate(chunks)
    return pool
