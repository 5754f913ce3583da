"""Plain data types shared by the datasets, the environments and the alignment scorers.

Coordinates: every ``BBox`` stored in these types is ``(x1, y1, x2, y2)`` in pixels of the
*original* full-resolution image, ``x`` to the right, ``y`` down, ``x1 < x2``, ``y1 < y2``.
The frame the model sees (a downsampled copy, a crop) is handled by :mod:`mapo_env.geometry`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypedDict

import numpy as np

BBox = tuple[float, float, float, float]
"""``(x1, y1, x2, y2)`` in original-image pixels."""

ImageLoader = Callable[[], np.ndarray]
"""Returns the sample's full-resolution image as ``np.uint8`` of shape (H, W, 3), RGB."""


@dataclass(frozen=True)
class ObjectAnnotation:
    """One object with a known location in a sample's image.

    Attributes:
        name: Short noun phrase naming the object, as a question would (``"red umbrella"``,
            ``"flag"``).
        bbox: Its box in original-image pixels.
        attributes: Known attributes by kind, e.g. ``{"color": "red", "pattern": "striped"}``; used
            to build reference captions for the ``annotation`` alignment scorer.
    """

    name: str
    bbox: BBox
    attributes: Mapping[str, str] = field(default_factory=dict)

    def caption(self) -> str:
        """A short reference caption: the attribute words (sorted by kind) then the name.

        Words already in the name are not repeated: ``{"color": "red"}`` + ``"red tile"`` gives
        ``"red tile"``.
        """
        name_words = set(self.name.lower().split())
        extra = [v for _, v in sorted(self.attributes.items()) if v and v.lower() not in name_words]
        return " ".join([*extra, self.name]).strip()


@dataclass(frozen=True)
class VQASample:
    """One multiple-choice visual question with its image and ground truth.

    Attributes:
        sample_id: Stable identifier (file stem for real data, ``"<dataset>-<index>"`` otherwise).
        question: The question text, without options.
        options: Option texts in the dataset's canonical order (the environment shuffles them).
        answer_index: Index of the correct option in ``options``.
        category: Benchmark category (``"direct_attributes"``, ``"relative_position"``,
            ``"single"``, ``"cross"``, an MME-RealWorld subtask, ...), used for per-category reports.
        load_image: Callable returning the full-resolution RGB ``np.uint8`` image (H, W, 3).
            Loaders decode lazily and cache with a bound (see :mod:`mapo_env.data.io`).
        image_size: ``(width, height)`` of that image, known without decoding it.
        targets: The objects the question is about (empty when the benchmark has no boxes).
        objects: Every object with a known box, targets included (distractors, clutter); used for
            reference captions of arbitrary crops.
        metadata: Free-form extras (source file, generator parameters, ...).
    """

    sample_id: str
    question: str
    options: tuple[str, ...]
    answer_index: int
    category: str
    load_image: ImageLoader
    image_size: tuple[int, int]
    targets: tuple[ObjectAnnotation, ...] = ()
    objects: tuple[ObjectAnnotation, ...] = ()
    metadata: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.options:
            raise ValueError(f"sample {self.sample_id!r} has no options")
        if not 0 <= self.answer_index < len(self.options):
            raise ValueError(
                f"sample {self.sample_id!r}: answer_index {self.answer_index} is outside the "
                f"{len(self.options)} options"
            )

    @property
    def answer(self) -> str:
        """The correct option's text."""
        return self.options[self.answer_index]


@dataclass(frozen=True)
class GroundedObject:
    """An annotated object of an episode's image, as grounding losses read it.

    Attributes:
        name: What the object is called (``"red tile"``): the words a zoom label uses.
        caption: The name with its attributes (``"checkerboard red tile"``): what a close look shows.
        bbox: ``(x1, y1, x2, y2)`` in original-image pixels.
    """

    name: str
    caption: str
    bbox: BBox


@dataclass(frozen=True)
class Grounding:
    """Where each image of a finished episode comes from and what the scene holds (its ground truth).

    The environment puts it in ``info["grounding"]`` at the end of every episode (the step that
    terminates or truncates it), so a learner reads it from the step contract, never from the env.

    Attributes:
        coords: The environment's coordinate frame of ``bbox_2d`` (``"pixel"``, ``"norm1000"``, ...).
        regions: Per image of the episode, in order: the region of the original it shows
            (original pixels; the full view is the whole image, then every crop).
        shown_sizes: Per image: ``(width, height)`` of the array the model received.
        objects: Every annotated object of the scene.
        targets: The objects the question is about, in the order an expert zooms on them.
    """

    coords: str
    regions: tuple[BBox, ...]
    shown_sizes: tuple[tuple[int, int], ...]
    objects: tuple[GroundedObject, ...]
    targets: tuple[GroundedObject, ...]


class _EpisodeEnd(TypedDict, total=False):
    grounding: Grounding
    """At the end of an episode: its images' regions and the scene's objects (see :class:`Grounding`)."""
    tool_message: str
    """Only with ``tool_error == "alignment_error"``: why the alignment scorer failed (the turn was undone)."""


class StepInfo(_EpisodeEnd):
    """The ``info`` dict of :meth:`~mapo_env.core.ThinkWithImagesEnv.reset` and ``step``: one typed contract.

    ``reset`` fills the same keys (with ``None`` / 0 where nothing happened yet); every ``step`` fills
    all of them; the step that ends an episode (terminated or truncated) adds ``grounding``; a step undone
    because the alignment scorer failed adds ``tool_message``.
    """

    alignment: float | None
    """Score in [0, 1] of this turn's description (label or ``<description>``) against its crop."""
    alignment_scores: list[float]
    """Every alignment score of the episode so far, in order."""
    target_iou: float | None
    """Best IoU of the last crop with a target object (None without boxes or crops)."""
    target_coverage: float | None
    """Best fraction of a target's box inside the last crop."""
    tool_error: str | None
    """A :class:`~mapo_env.actions.ToolError` value when the turn could not be carried out."""
    num_tool_calls: int
    """Zoom calls that returned a crop so far."""
    num_disabled_tool_calls: int
    """Zoom calls answered with the full view because the environment has ``zoom_enabled=False`` (else 0)."""
    num_tool_errors: int
    """Turns with a tool error so far."""
    correct: bool | None
    """Whether the final answer is right (None before the answer)."""
    answer: str | None
    """The text inside ``<answer>`` (None before the answer)."""
    answer_index: int | None
    """The option the answer was graded as (None: no option matched)."""
    answer_match: str | None
    """How it was matched: ``"letter"``, ``"text"``, ``"distinguishing_words"`` or ``"none"``."""
    crop_box: BBox | None
    """The last crop's region in original pixels."""
    turn: int
    """Assistant turns taken."""
    sample_id: str
    sample_index: int
    category: str
    options: list[str]
    """The options in the order shown."""
    option_letters: list[str]
    reward_terms: dict[str, float] | None
    """The final reward's parts (at the answer)."""
