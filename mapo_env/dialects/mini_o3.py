"""``mini_o3``: Mini-o3's ``<grounding>`` zoom with ``source`` names and ``<answer>`` answers.

Sources:
    - Mini-o3 (Lai et al., arXiv 2509.07969), https://github.com/Mini-o3/Mini-o3:
      ``verl/trainer/constants.py`` holds the system prompt (zoom by writing
      ``<grounding>{"bbox_2d": [x0, y0, x1, y1], "source": "original_image"}</grounding>``, the image's
      width and height taken as 1.0, ``source`` either ``original_image`` or ``observation_i``; reason
      in ``<think>``; answer in ``<answer>``) and the reply after a zoom (the zoomed image numbered as
      "Observation i"); ``verl/workers/rollout/vllm_rollout/function_tools.py``
      (``prepare_grounding_inputs_multi_turn``) maps ``observation_i`` to the i-th image (0 = the
      original), scales relative boxes by the source image's size, and reads pixels of the image as
      shown when relative coordinates are off; ``vllm_async_engine.py`` stops generation at
      ``</grounding>`` and evaluates the box text leniently.

Call syntax::

    <grounding>{"bbox_2d": [0.1, 0.2, 0.5, 0.6], "source": "original_image"}</grounding>

Also accepted: the bare-key form ``<grounding>{bbox_2d: [0.1, 0.2, 0.5, 0.6], source: observation_1}``
(unquoted keys and names, single quotes), a missing ``</grounding>`` (generation stopped or cut),
``source`` as an int.

- coordinates: [0, 1] relative to the source image (``coords="norm"``); a box with a value above 1
  is read as pixels of the source image as shown (the family's non-relative mode);
- image index: ``source`` = ``"original_image"`` (the full view) or ``"observation_i"``, i = 1, 2, ...
  the i-th crop (``observation_0`` is the original too); absent = the original;
- answer: ``<answer>B</answer>``;
- label: none. ``description_mode="post"`` applies: MAPO scores the description of the crop written
  in the next turn, a ``<description>`` block if there is one, else that turn's ``<think>`` text
  (Mini-o3 describes each observation in its reasoning).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from mapo_env.actions import (
    ActionRejected,
    ParsedAction,
    ToolError,
    ZoomCall,
    answer_text,
    brief,
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
    check_image_index,
    check_text,
    invalid,
    pixel_fallback,
    replies,
    think_of,
    unclosed_message,
)

_CALL = '<grounding>{"bbox_2d": [x0, y0, x1, y1], "source": "original_image"}</grounding>'
_ACTIONS = ("grounding", "answer")
_SOURCE_RE = re.compile(r"^\s*observation[ _-]?(\d{1,12})\s*$", re.IGNORECASE)
_ORIGINAL = frozenset({"original_image", "original", "original image", "image"})


class MiniO3Dialect(Dialect):
    """Mini-o3: ``<grounding>`` with a [0, 1] ``bbox_2d`` and a ``source`` name; ``<answer>`` answers."""

    name = "mini_o3"
    family = "Mini-o3"
    sources = (
        "https://github.com/Mini-o3/Mini-o3 (verl/trainer/constants.py, "
        "verl/workers/rollout/vllm_rollout/function_tools.py)",
        "arXiv 2509.07969",
    )
    call_syntax = _CALL
    coords = "norm"
    allowed_coords = ("norm", "pixel")
    image_index = '"source": "original_image" or "observation_i" (i-th crop)'
    answer_format = "<answer>LETTER</answer>"
    writes_label = False

    def parse(self, text: str) -> ParsedAction:
        """Parse one turn (never raises on a ``str``): the first ``<grounding>`` or ``<answer>`` outside blocks."""
        check_text(text)
        scan = scan_turn(text, _ACTIONS)
        think = think_of(scan)
        description = scan.description if scan.description is not None else think
        try:
            if scan.action is None:
                if scan.unclosed is not None:
                    raise ActionRejected(
                        ToolError.NO_ACTION, unclosed_message(scan.unclosed, "zoom with <grounding> or <answer>")
                    )
                raise ActionRejected(
                    ToolError.NO_ACTION,
                    f"Error: no action found. Zoom with {_CALL} or answer with <answer>LETTER</answer>.",
                )
            if scan.action.group(2).lower() == "answer":
                answer = answer_text(text, scan.action, _ACTIONS)
                return ParsedAction(kind="answer", answer=answer, think=think, description=description)
            call = _call(text, scan.action.end())
            return ParsedAction(kind="tool_call", tool_call=call, think=think, description=description)
        except ActionRejected as reject:
            return invalid(scan, reject, description)

    def format_tool_call(
        self, bbox: Sequence[float], *, label: str | None = None, image_index: int = 0, decimals: int = 6
    ) -> str:
        """``<grounding>{"bbox_2d": [...], "source": ...}</grounding>`` (no label: the family writes none)."""
        numbers = checked_format_bbox(bbox, "MiniO3Dialect.format_tool_call")
        check_image_index(image_index, "MiniO3Dialect.format_tool_call")
        box = ", ".join(format_coordinate(x, decimals) for x in numbers)
        return f'<grounding>{{"bbox_2d": [{box}], "source": "{self.image_name(image_index)}"}}</grounding>'

    def format_answer(self, letter: str) -> str:
        """``<answer>letter</answer>``."""
        return f"<answer>{check_answer_letter(letter, 'MiniO3Dialect.format_answer')}</answer>"

    def format_description(self, text: str) -> str:
        """A ``<think>`` passage describing the crop: where the family describes what it sees."""
        return f"<think>{text}</think>"

    def image_name(self, index: int) -> str:
        """``original_image`` for the full view, ``observation_i`` for the i-th crop."""
        return "original_image" if index == 0 else f"observation_{index}"

    def bad_image_index_message(self, index: int, num_images: int) -> str:
        """Name the sources that exist."""
        last = f", or observation_1 to observation_{num_images - 1}" if num_images > 1 else ""
        return f"Error: the source {self.safe_image_name(index)} does not exist; use original_image{last}."

    def missing_description_message(self, image_index: int) -> str:
        """Ask for the observation to be described in ``<think>``."""
        return f"Error: describe {self.image_name(image_index)} inside <think>...</think> in the turn that follows it."

    def system_prompt(self, coords: str, description_mode: str, label_required: bool) -> str:
        """The zoom instructions of the family, in this project's words."""
        frame = (
            "coordinates relative to the image, whose width and height count as 1.0"
            if coords == "norm"
            else "pixel coordinates of the image as you see it"
        )
        return (
            "You are a helpful assistant. Answer the question about the image. Think inside <think> and </think>. "
            "When something is unclear, zoom into a region of an image by writing "
            f"{_CALL}, where [x0, y0, x1, y1] are the top-left and bottom-right corners of the region in {frame}, "
            "and source is the image to zoom into: original_image, or observation_i for the i-th zoomed image. "
            "When you are sure, give the final answer inside <answer> and </answer>."
        )

    def crop_reply(self, turns_left: int, image_index: int, shown_size: tuple[int, int]) -> list[dict[str, Any]]:
        """The zoomed image, named as the observation it now is."""
        return replies(
            f"Here is the zoomed image, {self.image_name(image_index)} (Observation {image_index}):\n",
            None,
            "\nKeep reasoning inside <think> and </think>. You can zoom again into original_image or any observation "
            "with <grounding> and </grounding>; once the answer is certain, write it inside <answer> and </answer>. "
            f"{self.turns_left(turns_left)}",
        )

    def error_reply(self, message: str, turns_left: int) -> list[dict[str, Any]]:
        """The grounding error, then the request to adjust."""
        return replies(
            f"The grounding failed: {message}\nLook at the error, fix your action, and keep reasoning inside <think> "
            f"and </think>. {self.turns_left(turns_left)}"
        )


def _call(text: str, start: int) -> ZoomCall:
    obj = tag_object(text, start, "grounding", _CALL, bare_keys=True)
    args = {str(k).strip().lower(): v for k, v in obj.items()}
    if "arguments" in args and isinstance(args["arguments"], dict):  # a tool-call wrapper around the fields
        args = {str(k).strip().lower(): v for k, v in args["arguments"].items()}
    bbox = parse_bbox(args.get("bbox_2d", args.get("bbox")))
    index = _source(args.get("source"))
    return ZoomCall(bbox=bbox, label=None, image_index=index, name="grounding", coords=pixel_fallback(bbox))


def _source(value: Any) -> int:
    """``original_image`` -> 0, ``observation_i`` -> i, an int -> itself; else ``bad_args``."""
    if value is None:
        return 0
    if isinstance(value, str):
        if value.strip().lower() in _ORIGINAL:
            return 0
        match = _SOURCE_RE.match(value)
        if match is not None:
            return int(match[1])
    number = parse_int(value)
    if number is not None and number >= 0:
        return number
    raise ActionRejected(
        ToolError.BAD_ARGS,
        f'Error: "source" must be "original_image" or "observation_i" (i = 1, 2, ...); got {brief(value)}.',
    )


DIALECT = MiniO3Dialect
