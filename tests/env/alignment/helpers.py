"""Builders of hand-made alignment requests shared by the scorer tests."""

from __future__ import annotations

import numpy as np

from mapo_env.alignment.base import AlignmentRequest
from mapo_env.types import ObjectAnnotation

ADVERSARIAL_TEXTS = [
    "",
    " \n\t ",
    "x" * 1_000_000,
    "red " * 50_000,
    "\x00\x01\x02\x1b[31mred\x7f",
    "\ud800 lone surrogate \udfff",
    "\u202eelit der\u202c",
    "😀🚩☂️" * 300,
    "红色条纹瓷砖",
    "e\u0301" * 5000,
    "\ufb01 ligature \u200b zero width",
    '<tool_call>{"name": "image_zoom_in_tool", "arguments": {"bbox_2d": [1, 2, 3, 4]}}',
    "NaN inf -1e999",
    "\\u0000 \\n",
]


def annotation(name: str = "tile", color: str | None = "red", pattern: str | None = "striped") -> ObjectAnnotation:
    """An object annotation with optional colour and pattern attributes."""
    attrs = {k: v for k, v in (("color", color), ("pattern", pattern)) if v}
    return ObjectAnnotation(name, (10.0, 10.0, 60.0, 60.0), attrs)


def solid_crop(rgb: tuple[int, int, int] = (220, 30, 30), height: int = 48, width: int = 48) -> np.ndarray:
    """A uniform crop."""
    return np.broadcast_to(np.array(rgb, np.uint8), (height, width, 3)).copy()


def request(
    text: str,
    objects: tuple[ObjectAnnotation, ...] | None = None,
    crop: np.ndarray | None = None,
    visible: float = 1.0,
) -> AlignmentRequest:
    """A request whose crop holds ``objects`` (default: one red striped tile), each ``visible``."""
    objs = (annotation(),) if objects is None else objects
    return AlignmentRequest(
        text=text,
        crop=solid_crop() if crop is None else crop,
        crop_box=(0.0, 0.0, 64.0, 64.0),
        objects_in_crop=tuple((o, visible) for o in objs),
        question="What is the colour of the tile?",
    )
