"""Spaces that describe the environments truthfully: free text, variable-size images, chat dialogues.

Gymnasium's built-in spaces assume fixed shapes and small charsets; a multimodal LLM's world has
neither. These spaces follow ``gymnasium.spaces.Text``'s pattern (subclass ``Space``, implement
``sample`` and ``contains``, validate constructor arguments).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from gymnasium.spaces import Space

from mapo_env.actions import format_answer, format_tool_call

_FRAGMENTS = (
    "<think>",
    "</think>",
    "<tool_call>",
    "</tool_call>",
    "<answer>",
    "</answer>",
    "<description>",
    "</description>",
    '{"name": "image_zoom_in_tool", "arguments": {',
    '"bbox_2d": [',
    '"label": "',
    "]}}",
    "NaN",
    "-1e308",
    "😀",
    "\x00",
    "{",
    "}",
    ",",
    " ",
)


class FreeText(Space[str]):
    """Any Python ``str`` up to ``max_length`` characters: the action space of a language model.

    ``contains`` accepts every string up to the limit (longer strings are still handled by the
    environments: they truncate the episode with ``tool_error="action_too_long"``). ``sample``
    draws a mix of well-formed actions and syntactic garbage, so ``check_env`` and fuzzers
    exercise both the tool and the error paths.

    Example:
        >>> space = FreeText(max_length=64, seed=0)
        >>> isinstance(space.sample(), str)
        True
    """

    def __init__(self, max_length: int = 8192, seed: int | np.random.Generator | None = None) -> None:
        if not isinstance(max_length, int) or max_length < 1:
            raise ValueError(f"max_length must be a positive int, got {max_length!r}")
        self.max_length = max_length
        super().__init__(dtype=str, seed=seed)

    @property
    def is_np_flattenable(self) -> bool:
        """Free text has no fixed-size vector form."""
        return False

    def sample(self, mask: Any = None, probability: Any = None) -> str:
        """A random action: a valid zoom, a valid answer, or a garbled mix of grammar fragments."""
        rng = self.np_random
        kind = rng.integers(3)
        if kind == 0:
            x1, y1 = rng.integers(0, 400, size=2)
            text = format_tool_call(
                (int(x1), int(y1), int(x1 + rng.integers(1, 300)), int(y1 + rng.integers(1, 300))), label="object"
            )
        elif kind == 1:
            text = format_answer("ABCD"[rng.integers(4)])
        else:
            text = "".join(_FRAGMENTS[i] for i in rng.integers(len(_FRAGMENTS), size=rng.integers(1, 12)))
        return text[: self.max_length]

    def contains(self, x: Any) -> bool:
        """True for any ``str`` of at most ``max_length`` characters."""
        return isinstance(x, str) and len(x) <= self.max_length

    def __repr__(self) -> str:
        return f"FreeText(max_length={self.max_length})"

    def __eq__(self, other: Any) -> bool:
        return isinstance(other, FreeText) and other.max_length == self.max_length


class ImageSpace(Space[np.ndarray]):
    """RGB ``np.uint8`` images of shape (H, W, 3) with ``1 <= H <= max_height``, ``1 <= W <= max_width``.

    The size varies from one observation to the next (crops keep their aspect ratio), which a
    ``Box`` cannot express.
    """

    def __init__(self, max_height: int, max_width: int, seed: int | np.random.Generator | None = None) -> None:
        if max_height < 1 or max_width < 1:
            raise ValueError(f"max_height and max_width must be >= 1, got {max_height}x{max_width}")
        self.max_height = int(max_height)
        self.max_width = int(max_width)
        super().__init__(shape=None, dtype=np.uint8, seed=seed)

    @property
    def is_np_flattenable(self) -> bool:
        """Variable-size images have no fixed-size vector form."""
        return False

    def sample(self, mask: Any = None, probability: Any = None) -> np.ndarray:
        """A random-noise image of random size within the bounds (small, for speed)."""
        h = int(self.np_random.integers(1, min(self.max_height, 64) + 1))
        w = int(self.np_random.integers(1, min(self.max_width, 64) + 1))
        return self.np_random.integers(0, 256, size=(h, w, 3), dtype=np.uint8)

    def contains(self, x: Any) -> bool:
        """True for uint8 arrays (H, W, 3) within the size bounds."""
        return (
            isinstance(x, np.ndarray)
            and x.dtype == np.uint8
            and x.ndim == 3
            and x.shape[2] == 3
            and 1 <= x.shape[0] <= self.max_height
            and 1 <= x.shape[1] <= self.max_width
        )

    def __repr__(self) -> str:
        return f"ImageSpace(max_height={self.max_height}, max_width={self.max_width})"

    def __eq__(self, other: Any) -> bool:
        return (
            isinstance(other, ImageSpace) and other.max_height == self.max_height and other.max_width == self.max_width
        )


ROLES = ("system", "user", "assistant", "tool")


class Dialogue(Space[list]):
    """A chat transcript in the Hugging Face multimodal message format.

    Each message is ``{"role": r, "content": [part, ...]}`` with ``r`` in :data:`ROLES` and each part
    either ``{"type": "text", "text": str}`` or ``{"type": "image"}``. The k-th image part across
    the whole dialogue refers to ``observation["images"][k]``. Pass it to a processor's
    ``apply_chat_template`` as is.
    """

    def __init__(self, max_messages: int = 64, seed: int | np.random.Generator | None = None) -> None:
        if max_messages < 1:
            raise ValueError(f"max_messages must be >= 1, got {max_messages}")
        self.max_messages = max_messages
        super().__init__(shape=None, dtype=None, seed=seed)

    @property
    def is_np_flattenable(self) -> bool:
        """Dialogues have no fixed-size vector form."""
        return False

    def sample(self, mask: Any = None, probability: Any = None) -> list:
        """A short random dialogue: a user turn with an image and a question."""
        n = int(self.np_random.integers(1, 4))
        return [
            {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": f"Question {i}?"}]}
            for i in range(n)
        ]

    def contains(self, x: Any) -> bool:
        """True for a list of well-formed messages (see the class docstring)."""
        if not isinstance(x, list) or len(x) > self.max_messages:
            return False
        return all(_is_message(m) for m in x)

    def __repr__(self) -> str:
        return f"Dialogue(max_messages={self.max_messages})"

    def __eq__(self, other: Any) -> bool:
        return isinstance(other, Dialogue) and other.max_messages == self.max_messages


def _is_message(message: Any) -> bool:
    if not isinstance(message, Mapping) or message.get("role") not in ROLES:
        return False
    content = message.get("content")
    if not isinstance(content, Sequence) or isinstance(content, str):
        return False
    for part in content:
        if not isinstance(part, Mapping):
            return False
        if part.get("type") == "text":
            if not isinstance(part.get("text"), str):
                return False
        elif part.get("type") != "image":
            return False
    return True


def count_image_parts(messages: Sequence[Mapping[str, Any]]) -> int:
    """Number of ``{"type": "image"}`` parts in a dialogue."""
    return sum(1 for m in messages for part in m["content"] if part.get("type") == "image")
