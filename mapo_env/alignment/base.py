"""The alignment-scorer contract: how well a description matches the crop it describes.

An environment builds one :class:`AlignmentRequest` per description (the zoom ``label`` in
``description_mode="label"``, the ``<description>`` block in ``"post"`` mode) and asks its scorer
for a score in ``[0, 1]`` (1 = the text names exactly what the crop shows). The score lands in
``info["alignment"]`` and is what MAPO couples with the task reward.

A scorer is either an object with ``score_batch`` (see :class:`AlignmentScorer`) or any callable
``fn(request) -> float``; :func:`mapo_env.alignment.make_scorer` accepts both, and the names
``"lexical"``, ``"annotation"`` and ``"clip"``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from mapo_env.types import BBox, ObjectAnnotation


@dataclass(frozen=True)
class AlignmentRequest:
    """Everything a scorer may use to judge one description.

    Attributes:
        text: The model's description of the crop (label or ``<description>`` text).
        crop: The crop returned to the model, ``np.uint8`` (H, W, 3) RGB, as shown to the model.
        crop_box: The crop's region in original-image pixels.
        objects_in_crop: Ground-truth objects overlapping the crop, with the fraction of each
            object's box inside it (``visible``), most visible first. Empty when the dataset has no
            boxes or none overlaps.
        question: The sample's question, for scorers that want context.
    """

    text: str
    crop: np.ndarray
    crop_box: BBox
    objects_in_crop: tuple[tuple[ObjectAnnotation, float], ...] = ()
    question: str = ""

    def reference_caption(self, min_visible: float = 0.5, max_objects: int = 3) -> str:
        """Caption of what the crop holds according to the annotations.

        Joins the captions of the objects with at least ``min_visible`` of their box inside the
        crop (most visible first, at most ``max_objects``), e.g. ``"red striped tile, blue plain
        tile"``. Returns ``""`` when nothing annotated is visible enough.
        """
        parts = [obj.caption() for obj, visible in self.objects_in_crop if visible >= min_visible]
        return ", ".join(parts[:max_objects])


@runtime_checkable
class AlignmentScorer(Protocol):
    """Scores descriptions against crops; implementations batch internally where it pays."""

    name: str

    def score_batch(self, requests: Sequence[AlignmentRequest]) -> list[float]:
        """One score in ``[0, 1]`` per request, in order. Must not raise on any text."""
        ...
