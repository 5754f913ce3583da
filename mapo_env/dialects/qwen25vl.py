r"""``qwen25vl``: Qwen2.5-VL's native grounding output, a JSON list of ``bbox_2d``/``label`` objects.

Sources:
    - Qwen2.5-VL technical report (Bai et al., arXiv 2502.13923, section 2.2: boxes in absolute
      pixel coordinates of the input image) and the spatial-understanding cookbook,
      https://github.com/QwenLM/Qwen2.5-VL (``cookbooks/spatial_understanding.ipynb``): asked to
      locate something "in JSON format", the model answers with a fenced block
      ```` ```json\n[{"bbox_2d": [x1, y1, x2, y2], "label": "..."}]\n``` ````, in pixels of the image
      as it was fed to the model (after its smart resize).

Call syntax (what a stock Qwen2.5-VL writes when asked to outline a region)::

    ```json
    [{"bbox_2d": [x1, y1, x2, y2], "label": "red cup"}]
    ```

Also accepted: no code fence, a single object instead of a list, a truncated fence or object (the
missing brackets are closed), several objects (the first one is zoomed).

- coordinates: pixels of the image as shown (``coords="pixel"``, the model's native frame;
  ``"original"`` is accepted for boxes in full-resolution pixels);
- image index: native grounding names no image, so the box is in the full view; an optional
  ``"image_index"`` key (0-based, this project's extension) zooms into an earlier crop;
- answer: ``Answer: B`` on its own line (``<answer>B</answer>`` and a turn that is just the letter are
  accepted);
- label: the native ``label`` is what MAPO scores (``description_mode="label"``).

Malformed output gets ``bad_json`` (no object can be decoded), ``bad_bbox``, ``bad_args``; there is
no tool name, so ``unknown_tool`` never occurs in this dialect.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

from mapo_env.actions import (
    IMAGE_INDEX_KEYS,
    LABEL_KEYS,
    ActionRejected,
    ParsedAction,
    ToolError,
    ZoomCall,
    answer_text,
    check_answer_letter,
    checked_format_bbox,
    decode_object,
    format_coordinate,
    parse_bbox,
    parse_image_index,
    parse_label,
    scan_turn,
)
from mapo_env.dialects.base import (
    Dialect,
    check_image_index,
    check_label,
    check_text,
    empty_answer,
    invalid,
    plain_answer,
    replies,
    think_of,
    unclosed_message,
    without_blocks,
)

_CALL = '```json\n[{"bbox_2d": [x1, y1, x2, y2], "label": "..."}]\n```'
_BBOX_KEY_RE = re.compile(r"""["']?\bbbox(?:_2d)?\b["']?\s*:""", re.IGNORECASE)
_ANSWER_ONLY = ("answer",)


class Qwen25VLDialect(Dialect):
    """Qwen2.5-VL native grounding: a ```json list of ``{"bbox_2d", "label"}`` in pixels; ``Answer: X``."""

    name = "qwen25vl"
    family = "Qwen2.5-VL (stock instruct checkpoints)"
    sources = (
        "https://github.com/QwenLM/Qwen2.5-VL (cookbooks/spatial_understanding.ipynb)",
        "arXiv 2502.13923",
    )
    call_syntax = '```json [{"bbox_2d": [x1, y1, x2, y2], "label": "..."}] ```'
    coords = "pixel"
    allowed_coords = ("pixel", "original")
    image_index = 'none (the full view); optional "image_index", 0-based (extension)'
    answer_format = "Answer: LETTER"
    writes_label = True

    def parse(self, text: str) -> ParsedAction:
        """Parse one turn (never raises on a ``str``).

        Outside ``<think>``/``<description>`` blocks, the first JSON object holding a ``bbox_2d`` key is
        a zoom; otherwise ``<answer>``, an ``Answer: X`` line or a bare letter is the answer.
        """
        check_text(text)
        scan = scan_turn(text, _ANSWER_ONLY)
        visible = without_blocks(text)
        answer_at = scan.action.start() if scan.action is not None else len(text)
        key = _BBOX_KEY_RE.search(visible, 0, answer_at)
        blocks = {"think": think_of(scan), "description": scan.description}
        try:
            if key is not None:
                return ParsedAction(kind="tool_call", tool_call=_call(visible, key.start()), **blocks)
            if scan.action is not None:
                return ParsedAction(kind="answer", answer=answer_text(text, scan.action, _ANSWER_ONLY), **blocks)
            plain = plain_answer(visible)
            if plain is not None:
                if not plain[1]:
                    raise empty_answer("Answer: LETTER")
                return ParsedAction(kind="answer", answer=plain[1], **blocks)
            if scan.unclosed is not None:
                raise ActionRejected(
                    ToolError.NO_ACTION, unclosed_message(scan.unclosed, "write the JSON box or 'Answer: LETTER'")
                )
            raise ActionRejected(
                ToolError.NO_ACTION,
                f"Error: no box and no answer found. Zoom by writing {_CALL}, or answer with 'Answer: LETTER'.",
            )
        except ActionRejected as reject:
            return invalid(scan, reject, scan.description)

    def format_tool_call(
        self, bbox: Sequence[float], *, label: str | None = None, image_index: int = 0, decimals: int = 2
    ) -> str:
        """A fenced JSON list with one ``{"bbox_2d", "label"}`` object (``image_index`` only when not 0)."""
        numbers = checked_format_bbox(bbox, "Qwen25VLDialect.format_tool_call")
        check_image_index(image_index, "Qwen25VLDialect.format_tool_call")
        check_label(label, "Qwen25VLDialect.format_tool_call")
        fields = [f'"bbox_2d": [{", ".join(format_coordinate(x, decimals) for x in numbers)}]']
        if label is not None:
            fields.append(f'"label": {json.dumps(label, ensure_ascii=False)}')
        if image_index:
            fields.append(f'"image_index": {image_index}')
        return "```json\n[{" + ", ".join(fields) + "}]\n```"

    def format_answer(self, letter: str) -> str:
        """``Answer: letter``."""
        return f"Answer: {check_answer_letter(letter, 'Qwen25VLDialect.format_answer')}"

    def system_prompt(self, coords: str, description_mode: str, label_required: bool) -> str:
        """Ask for the native grounding JSON to zoom, and for an ``Answer:`` line."""
        frame = (
            "pixel coordinates of the image as you see it"
            if coords == "pixel"
            else "pixel coordinates of the original full-resolution image"
        )
        describe = (
            "When a zoomed image comes back, start your next turn with <description>what it shows</description>. "
            if description_mode == "post"
            else "The label says what you expect to find in the box. "
        )
        return (
            "You are a helpful assistant. You answer questions about an image; small details may only be visible "
            "up close. To look closer, locate the region and output it in JSON format:\n"
            f"{_CALL}\nwith [x1, y1, x2, y2] in {frame}; the region comes back as a new, larger image. "
            'Add "image_index": k to locate it inside the k-th zoomed image instead of the full image. '
            f"{describe}Finish with a line 'Answer: LETTER'."
        )

    def crop_reply(self, turns_left: int, image_index: int, shown_size: tuple[int, int]) -> list[dict[str, Any]]:
        """The zoomed region, with its number and size."""
        width, height = shown_size
        return replies(
            f"Zoomed region (image {image_index}, {width}x{height} pixels):", None, f"\n{self.turns_left(turns_left)}"
        )

    def error_reply(self, message: str, turns_left: int) -> list[dict[str, Any]]:
        """The reason the box could not be used."""
        return replies(f"{message}\n{self.turns_left(turns_left)}")


def _call(visible: str, key_at: int) -> ZoomCall:
    """The zoom of the object whose ``bbox_2d`` key is at ``key_at`` (its ``{`` is the last one before it)."""
    brace = visible.rfind("{", 0, key_at)
    if brace < 0:
        raise ActionRejected(
            ToolError.BAD_JSON, f"Error: the box must be a JSON object such as {_CALL}; no '{{' before bbox_2d."
        )
    end = visible.find("```", brace)
    obj = decode_object(visible, brace, end if end >= 0 else len(visible), "the box", _CALL, bare_keys=True)
    args = {str(k).strip().lower(): v for k, v in obj.items()}
    bbox = parse_bbox(args.get("bbox_2d", args.get("bbox")))
    label = parse_label(next((args[k] for k in LABEL_KEYS if k in args), None))
    index_value = next((args[k] for k in IMAGE_INDEX_KEYS if k in args), None)
    return ZoomCall(bbox=bbox, label=label, image_index=parse_image_index(index_value), name="grounding")


DIALECT = Qwen25VLDialect
