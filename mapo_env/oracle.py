"""A scripted expert that knows the ground truth: zooms on each target, labels it truthfully, answers.

It writes in the environment's dialect (``env.unwrapped.dialect``, see :mod:`mapo_env.dialects`): the
call syntax, coordinate and image-index conventions, answer format and the place of the description
are those the dialect's family was trained with, so its trajectories are SFT data for that dialect.

Used as the upper bound in comparisons, to test the environments (its zoom has ``target_iou`` 1.0
when the target is at least ``min_crop_px`` wide and ``pad=0``) and to produce cold-start SFT
trajectories. It reads the ground truth from ``env.unwrapped``; it never looks at ``info``.

Example:
    >>> import gymnasium as gym
    >>> import mapo_env
    >>> env = gym.make("MAPO-Tiles-v0")
    >>> oracle = Oracle(env)
    >>> obs, info = env.reset(seed=0)
    >>> obs, reward, terminated, truncated, info = env.step(oracle.act(obs))
    >>> info["target_iou"]
    1.0
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym

from mapo_env.actions import coordinate_decimals
from mapo_env.answers import option_letters
from mapo_env.core import ThinkWithImagesEnv
from mapo_env.errors import ConfigError
from mapo_env.geometry import written_box
from mapo_env.types import BBox, ObjectAnnotation


class Oracle:
    """Ground-truth policy for any :class:`~mapo_env.core.ThinkWithImagesEnv` (wrapped or not).

    Args:
        env: The environment it plays (the same object you step).
        pad: Grow each target box by this fraction of its size on every side (context), clamped to the
            image. 0 zooms on the exact box.
        zoom: Zoom on the targets before answering (False: answer at once, the no-tool expert).
        think: Write a short ``<think>`` block each turn.
        label_with_attributes: Label with the target's full caption (attributes included) instead of
            its name. Off by default: a label such as "red checkerboard tile" would state the answer
            before looking.
    """

    def __init__(
        self,
        env: gym.Env,
        *,
        pad: float = 0.0,
        zoom: bool = True,
        think: bool = False,
        label_with_attributes: bool = False,
    ) -> None:
        if not isinstance(env.unwrapped, ThinkWithImagesEnv):
            raise ConfigError(f"Oracle needs a MAPO environment, got {type(env.unwrapped).__name__}")
        if pad < 0:
            raise ConfigError(f"pad must be >= 0, got {pad}")
        self.env = env
        self.pad = pad
        self.zoom = zoom
        self.think = think
        self.label_with_attributes = label_with_attributes

    @property
    def _base(self) -> ThinkWithImagesEnv:
        return self.env.unwrapped  # type: ignore[return-value]

    def act(self, observation: dict[str, Any]) -> str:
        """The expert's next turn for the running episode, given its latest observation."""
        env = self._base
        dialect = env.dialect
        sample = env.current_sample
        num_crops = len(observation["images"]) - 1
        text = ""
        if env.description_mode == "post" and num_crops > 0 and _last_reply_was_crop(observation):
            text += dialect.format_description(_objects_in(env, num_crops))
        targets = sample.targets if self.zoom else ()
        if num_crops < len(targets):
            target = targets[num_crops]
            if self.think:
                text += dialect.format_think(f"I need a closer look at the {target.name}.")
            label = target.caption() if self.label_with_attributes else target.name
            decimals = coordinate_decimals(self._base.coords)
            return dialect.compose(
                text, dialect.format_tool_call(self.zoom_box(target), label=label, decimals=decimals)
            )
        letter = option_letters(len(env.shown_options))[env.shown_answer_index]
        if self.think:
            text += dialect.format_think(f"The answer is {env.shown_options[env.shown_answer_index]}")
        return dialect.compose(text, dialect.format_answer(letter))

    def zoom_box(self, target: ObjectAnnotation) -> tuple[float, float, float, float]:
        """The target's box (grown by ``pad``) in the environment's ``coords``, relative to the full view.

        Written as a model would write it (:func:`~mapo_env.geometry.written_box`): integers, snapped
        outward, in pixel and 0..1000 frames.
        """
        env = self._base
        width, height = env.current_sample.image_size
        x1, y1, x2, y2 = target.bbox
        dx, dy = (x2 - x1) * self.pad, (y2 - y1) * self.pad
        box: BBox = (max(0.0, x1 - dx), max(0.0, y1 - dy), min(float(width), x2 + dx), min(float(height), y2 + dy))
        return written_box(env.image_frames[0].from_original(box, env.coords), env.coords)


def _last_reply_was_crop(observation: dict[str, Any]) -> bool:
    last = observation["messages"][-1]
    return last["role"] != "assistant" and any(p.get("type") == "image" for p in last["content"])


def _objects_in(env: ThinkWithImagesEnv, image_index: int) -> str:
    """What a truthful describer says of image ``image_index``: the captions of the objects mostly inside it."""
    names = [obj.caption() for obj, visible in env.objects_in(image_index) if visible >= 0.5][:3]
    return ", ".join(names) if names else "nothing recognisable"
