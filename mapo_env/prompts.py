"""The texts the environments put in the dialogue: tool schema, system prompt, question, tool replies.

Everything here is plain text in the Hugging Face multimodal message format, so any VLM can render
it with its own chat template. The tool schema follows the verl / DeepEyes ``image_zoom_in_tool``
(label first, as MAPO makes it required).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from mapo_env.actions import ZOOM_TOOL_NAME
from mapo_env.answers import format_options
from mapo_env.geometry import CoordinateFrame

COORDINATE_HELP: dict[str, str] = {
    "pixel": "pixel coordinates of the image you are zooming into, as you see it",
    "norm1000": "coordinates normalised to 0..1000 across the image you are zooming into",
    "norm": "coordinates normalised to 0..1 across the image you are zooming into",
    "original": "pixel coordinates of the original full-resolution image",
}


def zoom_tool_schema(coords: CoordinateFrame = "pixel", label_required: bool = True) -> dict[str, Any]:
    """The zoom tool in the OpenAI/Qwen function-calling format (pass it as ``tools=[...]``)."""
    required = ["label", "bbox_2d"] if label_required else ["bbox_2d"]
    corners = f"[x1, y1, x2, y2]: top-left and bottom-right corners in {COORDINATE_HELP[coords]}"
    return {
        "type": "function",
        "function": {
            "name": ZOOM_TOOL_NAME,
            "description": (
                "Zoom in on a region of an image: crops it from the original full-resolution image and "
                "returns the crop as a new image."
            ),
            "parameters": {
                "type": "object",
                "properties": {
                    "label": {
                        "type": "string",
                        "description": "A short description of what you expect to see inside the box.",
                    },
                    "bbox_2d": {
                        "type": "array",
                        "items": {"type": "number"},
                        "minItems": 4,
                        "maxItems": 4,
                        "description": corners,
                    },
                    "image_index": {
                        "type": "integer",
                        "description": "Which image to zoom into: 0 is the full image, k the k-th crop (default 0).",
                    },
                },
                "required": required,
            },
        },
    }


def default_system_prompt(coords: CoordinateFrame, description_mode: str, label_required: bool = True) -> str:
    """The default system message: the task, the tool schema and the answer format."""
    schema = json.dumps(zoom_tool_schema(coords, label_required), separators=(",", ":"))
    describe = (
        "When a crop comes back, start your next turn with <description>what the crop shows</description>. "
        if description_mode == "post"
        else "The label must say what you expect to see in the box. "
    )
    return (
        "You answer questions about an image. Small details may only be visible if you zoom in.\n"
        f"Tool:\n<tools>\n{schema}\n</tools>\n"
        'To zoom, write <tool_call>{"name": "image_zoom_in_tool", "arguments": {"label": "...", "bbox_2d": '
        "[x1, y1, x2, y2]}}</tool_call> and stop; the crop comes back as a new image. "
        f"{describe}"
        "Think inside <think>...</think> if you like. Finish with <answer>LETTER</answer>."
    )


def question_text(question: str, options: Sequence[str]) -> str:
    """The user's question with lettered options (V* / HR-Bench style)."""
    return f"Question: {question}\nOptions:\n{format_options(options)}"


def text_part(text: str) -> dict[str, Any]:
    """A text content part."""
    return {"type": "text", "text": text}


def image_part() -> dict[str, Any]:
    """An image content part (the next image of ``observation["images"]``)."""
    return {"type": "image"}


def crop_reply(turns_left: int, image_index: int) -> list[dict[str, Any]]:
    """Content of the tool reply carrying a crop."""
    return [
        text_part("<tool_response>"),
        image_part(),
        text_part(f"</tool_response>\nImage {image_index}. {_turns_left(turns_left)}"),
    ]


def error_reply(message: str, turns_left: int) -> list[dict[str, Any]]:
    """Content of the tool reply for a turn that could not be carried out."""
    return [text_part(f"<tool_response>{message}</tool_response>\n{_turns_left(turns_left)}")]


def _turns_left(turns_left: int) -> str:
    if turns_left <= 1:
        return "This is your last turn: answer now with <answer>LETTER</answer>."
    return f"{turns_left} turns left."
