"""The action grammar: parse one model turn (a ``str``) into a tool call, an answer, or an error.

Model text is data. :func:`parse_action` never raises on a ``str``: whatever the model wrote comes
back as a :class:`ParsedAction` whose ``error`` is ``None`` or a :class:`ToolError` code with a
short corrective ``message`` the environment sends back as the tool response.

Grammar (tolerant)::

    [<think> ... </think>] [<description> ... </description>]
    ( <tool_call> {"name": "image_zoom_in_tool",
                   "arguments": {"bbox_2d": [x1, y1, x2, y2], "label": "...", "image_index": 0}}
      [</tool_call>]                              # closing tag optional (real DeepEyes output)
    | <answer> B </answer> )                      # letter or option text; closing tag optional

The first action tag in the text wins. Argument aliases: ``bbox``/``box``/``bbox_2d``,
``label``/``object``/``target``, ``image_index``/``image_id``/``img_idx``. Tool-name aliases: see
:data:`ZOOM_TOOL_NAMES`. Geometry (clamping, inverted or empty boxes, aspect ratio) is checked
later by :mod:`mapo_env.geometry`, which knows the image size; this module checks syntax and types.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Literal

ZOOM_TOOL_NAME = "image_zoom_in_tool"
"""The tool's canonical name (the verl / DeepEyes zoom tool)."""

ZOOM_TOOL_NAMES = frozenset({ZOOM_TOOL_NAME, "zoom_in", "zoom", "crop", "image_zoom", "zoom_in_tool", "crop_image"})
"""Names accepted for the zoom tool."""


class ToolError(str, Enum):
    """Codes put in ``info["tool_error"]`` (as their string value) when a turn cannot be carried out."""

    NO_ACTION = "no_action"
    """Neither a ``<tool_call>`` nor an ``<answer>`` in the turn."""
    BAD_JSON = "bad_json"
    """The tool call's body is not a JSON object."""
    UNKNOWN_TOOL = "unknown_tool"
    """The called tool does not exist."""
    BAD_ARGS = "bad_args"
    """``arguments`` is missing or not an object, or has a field of the wrong type."""
    MISSING_LABEL = "missing_label"
    """``description_mode="label"``: the zoom call has no (non-empty) ``label``."""
    LABEL_TOO_LONG = "label_too_long"
    """The label exceeds the environment's ``max_label_words``."""
    BAD_BBOX = "bad_bbox"
    """The box is not 4 finite numbers, or is inverted/empty after clamping to the image."""
    BAD_ASPECT_RATIO = "bad_aspect_ratio"
    """The box is absurdly thin (side ratio above ``max_aspect_ratio``)."""
    BAD_IMAGE_INDEX = "bad_image_index"
    """``image_index`` does not name an image of the observation."""
    EMPTY_ANSWER = "empty_answer"
    """``<answer></answer>`` with nothing inside."""
    MISSING_DESCRIPTION = "missing_description"
    """``description_mode="post"``: the turn after a crop has no ``<description>`` block."""
    ACTION_TOO_LONG = "action_too_long"
    """The turn is longer than the environment's ``max_action_chars`` (the episode is truncated)."""
    TOOL_BUDGET_EXCEEDED = "tool_budget_exceeded"
    """A :class:`mapo_env.wrappers.ToolBudget` refused the call."""


@dataclass(frozen=True)
class ZoomCall:
    """A syntactically valid zoom call, coordinates as written by the model.

    Attributes:
        bbox: ``(x1, y1, x2, y2)`` as four finite floats, in the frame named by the environment's
            ``coords`` argument, relative to image ``image_index`` of the observation.
        label: What the model expects inside the box (``None`` if absent).
        image_index: Index into ``observation["images"]`` (0 = full view, k = k-th crop).
        name: The tool name as the model wrote it.
    """

    bbox: tuple[float, float, float, float]
    label: str | None = None
    image_index: int = 0
    name: str = ZOOM_TOOL_NAME


@dataclass(frozen=True)
class ParsedAction:
    """The result of parsing one turn.

    Attributes:
        kind: ``"tool_call"``, ``"answer"`` or ``"invalid"`` (then ``error`` is set).
        tool_call: The zoom call when ``kind == "tool_call"``.
        answer: The stripped text inside ``<answer>`` when ``kind == "answer"``.
        think: Text of the ``<think>`` block, if any.
        description: Text of the ``<description>`` block, if any.
        error: Why the turn cannot be carried out, or ``None``.
        message: Short corrective message for the model when ``error`` is set.
    """

    kind: Literal["tool_call", "answer", "invalid"]
    tool_call: ZoomCall | None = None
    answer: str | None = None
    think: str | None = None
    description: str | None = None
    error: ToolError | None = None
    message: str = ""


def parse_action(text: str) -> ParsedAction:
    """Parse one model turn. Never raises on a ``str``; see the module docstring for the grammar."""
    raise NotImplementedError  # implemented in the parser change
