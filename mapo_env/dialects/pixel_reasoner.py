r"""``pixel_reasoner``: Pixel-Reasoner's ``crop_image_normalized`` tool and ``\boxed{}`` answers.

Sources:
    - Pixel-Reasoner (Su et al., arXiv 2505.15966), https://github.com/TIGER-AI-Lab/Pixel-Reasoner:
      ``curiosity_driven_rl/openrlhf/trainer/ppo_utils/experience_maker.py`` registers the tools
      ``crop_image_normalized`` (and ``zoom_in``) with the arguments ``bbox_2d`` (values in [0, 1];
      its crop function also reads pixels when a value is not below 1) and ``target_image`` (1-based:
      1 = the original image), parses the last ``<tool_call>...</tool_call>`` body as JSON, replies
      with the cropped image and its size, or an execution-error text, and grades the last
      ``\boxed{...}`` of the answer turn. The tool schema reaches the model through Qwen2.5's
      function-calling chat template (``<tools>...</tools>``, calls in ``<tool_call>``).

Call syntax::

    <tool_call>{"name": "crop_image_normalized",
                "arguments": {"bbox_2d": [0.1, 0.2, 0.5, 0.6], "target_image": 1}}</tool_call>

- coordinates: [0, 1] relative to the target image (``coords="norm"``). A box with a value above 1 is
  read as pixels of the target image as shown (the family's own fallback);
- image index: ``target_image``, 1-based (1 = the full view, k + 1 = the k-th crop); absent = 1;
- answer: ``\boxed{B}`` (the last one in the turn; ``<answer>B</answer>`` and ``Answer: B`` are accepted);
- label: none. The family writes no label, so ``description_mode="post"`` applies: MAPO scores the
  description of the crop written at the start of the next turn, a ``<description>`` block if
  there is one, else the turn's prose before its call or answer.

Differences from the family's code, on purpose: the crop is exactly the written box (the original
tool pads it by 0.1 of the image on every side), so a call here crops the same original region as
the equivalent call in every other dialect; the texts are this project's wording.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from mapo_env.actions import (
    ActionRejected,
    ParsedAction,
    ToolError,
    ZoomCall,
    answer_text,
    brief,
    call_arguments,
    check_answer_letter,
    checked_format_bbox,
    format_coordinate,
    parse_bbox,
    parse_int,
    scan_turn,
    tag_object,
)
from mapo_env.dialects.base import (
    Dialect,
    boxed_answer,
    check_image_index,
    check_text,
    empty_answer,
    invalid,
    pixel_fallback,
    plain_answer,
    replies,
    think_of,
    unclosed_message,
    without_blocks,
)

TOOL_NAME = "crop_image_normalized"
"""The tool's name in Pixel-Reasoner."""

TOOL_NAMES = frozenset({TOOL_NAME, "zoom_in"})
"""Names accepted for the tool (Pixel-Reasoner registers both)."""

_CALL = (
    '<tool_call>{"name": "crop_image_normalized", "arguments": {"bbox_2d": [x1, y1, x2, y2], "target_image": 1}}'
    "</tool_call>"
)


class PixelReasonerDialect(Dialect):
    r"""Pixel-Reasoner: ``crop_image_normalized`` with [0, 1] boxes and 1-based ``target_image``; ``\boxed{}``."""

    name = "pixel_reasoner"
    family = "Pixel-Reasoner"
    sources = (
        "https://github.com/TIGER-AI-Lab/Pixel-Reasoner (curiosity_driven_rl/openrlhf/trainer/ppo_utils/"
        "experience_maker.py)",
        "arXiv 2505.15966",
    )
    call_syntax = _CALL
    coords = "norm"
    allowed_coords = ("norm",)
    image_index = '"target_image", 1-based (1 = full view, k+1 = k-th crop)'
    answer_format = "\\boxed{LETTER}"
    writes_label = False

    def parse(self, text: str) -> ParsedAction:
        r"""Parse one turn (never raises on a ``str``).

        The first of ``<tool_call>``, ``\boxed{`` and ``<answer>`` outside ``<think>``/``<description>``
        blocks is the action. A call's body is the JSON object after ``<tool_call>`` (the closing tag
        is optional; truncated objects are repaired as in :mod:`mapo_env.actions`).
        """
        check_text(text)
        scan = scan_turn(text, ("tool_call", "answer"))
        visible = without_blocks(text)
        boxed = boxed_answer(visible[: scan.action.start()] if scan.action is not None else visible)
        action_at = scan.action.start() if scan.action is not None else len(text)
        description = scan.description
        try:
            if scan.unclosed is not None and scan.action is None and boxed is None:
                raise ActionRejected(
                    ToolError.NO_ACTION, unclosed_message(scan.unclosed, f"call {TOOL_NAME} or answer in \\boxed{{}}")
                )
            if boxed is not None and boxed[0] < action_at:
                description = description if description is not None else _prose(visible[: boxed[0]])
                if not boxed[1]:
                    raise empty_answer("\\boxed{LETTER}")
                return ParsedAction(kind="answer", answer=boxed[1], think=think_of(scan), description=description)
            if scan.action is None:
                plain = plain_answer(visible)
                if plain is not None and plain[1]:
                    description = description if description is not None else _prose(visible[: plain[0]])
                    return ParsedAction(kind="answer", answer=plain[1], think=think_of(scan), description=description)
                raise ActionRejected(
                    ToolError.NO_ACTION,
                    f"Error: no tool call or answer found. Zoom with {_CALL}, "
                    "or give the final answer in \\boxed{}.",
                )
            description = description if description is not None else _prose(visible[:action_at])
            if scan.action.group(2).lower() == "answer":
                answer = answer_text(text, scan.action)
                return ParsedAction(kind="answer", answer=answer, think=think_of(scan), description=description)
            call = self._call(text, scan.action.end())
            return ParsedAction(kind="tool_call", tool_call=call, think=think_of(scan), description=description)
        except ActionRejected as reject:
            return invalid(scan, reject, description)

    def _call(self, text: str, start: int) -> ZoomCall:
        call = tag_object(text, start, "tool_call", _CALL)
        function = call.get("function")
        if "name" not in call and isinstance(function, dict):
            call = function
        name = call.get("name")
        if not (isinstance(name, str) and name.strip().lower() in TOOL_NAMES):
            got = "no name" if name is None else brief(name)
            raise ActionRejected(ToolError.UNKNOWN_TOOL, f'Error: unknown tool ({got}); the tool is "{TOOL_NAME}".')
        args = call_arguments(call)
        bbox = parse_bbox(args.get("bbox_2d", args.get("bbox")))
        target = args.get("target_image", args.get("image_index"))
        number = 1 if target is None else parse_int(target)
        if number is None:
            raise ActionRejected(
                ToolError.BAD_ARGS,
                f"Error: target_image must be an integer (1 = the original image, k = the k-th image); "
                f"got {brief(target)}.",
            )
        return ZoomCall(bbox=bbox, label=None, image_index=number - 1, name=name.strip(), coords=pixel_fallback(bbox))

    def format_tool_call(
        self, bbox: Sequence[float], *, label: str | None = None, image_index: int = 0, decimals: int = 6
    ) -> str:
        """The family's call: ``bbox_2d`` in [0, 1] of image ``image_index`` (written 1-based); no label."""
        numbers = checked_format_bbox(bbox, "PixelReasonerDialect.format_tool_call")
        check_image_index(image_index, "format_tool_call")
        box = ", ".join(format_coordinate(x, max(decimals, 4)) for x in numbers)
        return (
            f'<tool_call>{{"name": "{TOOL_NAME}", "arguments": {{"bbox_2d": [{box}], '
            f'"target_image": {image_index + 1}}}}}</tool_call>'
        )

    def format_answer(self, letter: str) -> str:
        r"""``\boxed{letter}``."""
        return f"\\boxed{{{check_answer_letter(letter, 'PixelReasonerDialect.format_answer')}}}"

    def format_think(self, text: str) -> str:
        """Plain prose (the family reasons without tags), ending with a blank line."""
        return f"{text}\n\n"

    def format_description(self, text: str) -> str:
        """Plain prose at the start of the turn: where :meth:`parse` reads the description."""
        return f"{text}\n\n"

    def image_name(self, index: int) -> str:
        """``target_image`` is 1-based: the full view is 1."""
        return str(index + 1)

    def bad_image_index_message(self, index: int, num_images: int) -> str:
        """The range of valid ``target_image`` values."""
        return (
            f"Error: target_image {self.safe_image_name(index)} does not exist; pick an image within "
            f"[1, {num_images}] (1 = the original image)."
        )

    def missing_description_message(self, image_index: int) -> str:
        """Ask for a description of the crop before the next call or answer."""
        return (
            f"Error: say what image {self.image_name(image_index)} shows at the start of the turn that follows it, "
            "before the next call or answer."
        )

    def tool_schema(self, coords: str, label_required: bool) -> dict[str, Any]:
        """The tool in the function-calling format (``bbox_2d``, ``target_image``; no label)."""
        return {
            "type": "function",
            "function": {
                "name": TOOL_NAME,
                "description": "Crop a region of an image and return it enlarged; use it when details are too small.",
                "parameters": {
                    "type": "object",
                    "properties": {
                        "bbox_2d": {
                            "type": "array",
                            "items": {"type": "number"},
                            "description": "[x1, y1, x2, y2] of the region, each value in [0.0, 1.0] of the image.",
                        },
                        "target_image": {
                            "type": "number",
                            "description": "Which image to crop, numbered from 1; 1 is the original image.",
                        },
                    },
                    "required": ["bbox_2d", "target_image"],
                },
            },
        }

    def system_prompt(self, coords: str, description_mode: str, label_required: bool) -> str:
        r"""A Qwen function-calling system message with the crop tool, and the ``\boxed{}`` answer rule."""
        schema = json.dumps(self.tool_schema(coords, label_required))
        return (
            "You are a helpful assistant.\n\n# Tools\n\nFunctions you can call are listed in <tools></tools>:\n"
            f"<tools>\n{schema}\n</tools>\n\n"
            "To call one, write a JSON object with its name and arguments inside <tool_call></tool_call>:\n"
            '<tool_call>\n{"name": <function-name>, "arguments": <args-json-object>}\n</tool_call>\n\n'
            "Reason step by step. After each cropped image, first say what it shows. "
            "Put your final answer within \\boxed{}."
        )

    def crop_reply(self, turns_left: int, image_index: int, shown_size: tuple[int, int]) -> list[dict[str, Any]]:
        """The crop, introduced with its number and size."""
        width, height = shown_size
        return replies(
            f"\nCropped image {self.image_name(image_index)} (size {width}x{height}):",
            None,
            f"\n{self.turns_left(turns_left)}",
        )

    def error_reply(self, message: str, turns_left: int) -> list[dict[str, Any]]:
        """The tool failure, as an execution error."""
        return replies(f"\nTool execution failed:\n{message}\n{self.turns_left(turns_left)}")


def _prose(text: str) -> str | None:
    """The turn's prose before its action, stripped; ``None`` when there is none."""
    prose = text.strip()
    return prose or None


DIALECT = PixelReasonerDialect
