r"""``openai``: OpenAI-style structured tool calls, the JSON an OpenAI-compatible endpoint returns given ``tools=``.

Sources:
    - OpenAI Chat Completions API reference and function-calling guide
      (https://platform.openai.com/docs/api-reference/chat, https://platform.openai.com/docs/guides/function-calling):
      the assistant message carries ``tool_calls: [{"id", "type": "function", "function": {"name",
      "arguments"}}]`` with ``arguments`` a JSON *string* (which the model may get wrong), and
      ``content`` (text or null); vLLM and SGLang serve the same shape for Qwen-family models.

The action is the endpoint's reply serialised as JSON, whichever level the caller hands over::

    {"role": "assistant", "content": null, "tool_calls": [{"id": "call_0", "type": "function",
     "function": {"name": "image_zoom_in_tool",
                  "arguments": "{\"label\": \"red cup\", \"bbox_2d\": [10, 20, 110, 220]}"}}]}

Also accepted: the whole completion (``{"choices": [{"message": {...}}]}``), the ``tool_calls`` list,
one tool call, ``{"name", "arguments"}``, the legacy ``function_call`` field, ``arguments`` as an
object, a truncated object (brackets closed). Several tool calls: the first one is carried out.
Text that is not JSON is the message's ``content``.

- coordinates: the environment's ``coords`` (default ``"pixel"``), stated in the tool schema;
- image index: ``"image_index"`` argument, 0-based (0 = the full view);
- answer: a message whose ``content`` holds ``Answer: B`` (``<answer>B</answer>`` and a bare letter
  are accepted too);
- label: the ``label`` argument is what MAPO scores (``description_mode="label"``);
- tool results: the crop comes back in a user message (an OpenAI ``tool`` message cannot carry an
  image), whose text names the call it answers.
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
    check_answer_letter,
    checked_format_bbox,
    decode_object,
    format_coordinate,
    parse_action,
    scan_turn,
    zoom_call_from_object,
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
)
from mapo_env.prompts import COORDINATE_HELP, zoom_tool_schema

_DECODER = json.JSONDecoder()
_EXAMPLE = (
    '{"tool_calls": [{"type": "function", "function": {"name": "image_zoom_in_tool", '
    '"arguments": "{\\"label\\": \\"...\\", \\"bbox_2d\\": [x1, y1, x2, y2]}"}}]}'
)


class OpenAIDialect(Dialect):
    """OpenAI-style ``tool_calls`` JSON for ``image_zoom_in_tool``; answers as ``Answer: X`` content."""

    name = "openai"
    family = "any model behind an OpenAI-compatible endpoint (tools=)"
    sources = (
        "https://platform.openai.com/docs/api-reference/chat (tool_calls, function.arguments)",
        "https://platform.openai.com/docs/guides/function-calling",
    )
    call_syntax = (
        '{"role": "assistant", "tool_calls": [{"type": "function", "function": {"name": "image_zoom_in_tool", '
        '"arguments": "{\\"label\\": ..., \\"bbox_2d\\": [x1, y1, x2, y2]}"}}]}'
    )
    coords = "pixel"
    allowed_coords = ("pixel", "norm1000", "norm", "original")
    image_index = '"image_index" argument, 0-based (0 = full view)'
    answer_format = "Answer: LETTER"
    writes_label = True

    def parse(self, text: str) -> ParsedAction:
        """Parse one endpoint reply (never raises on a ``str``); see the module docstring for the shapes."""
        check_text(text)
        stripped = text.strip()
        content: str | None = text
        scan = None
        try:
            if stripped[:1] in "{[" and stripped:
                message = _message(_decode(text))
                calls = message.get("tool_calls")
                legacy = message.get("function_call")
                if isinstance(calls, list) and calls:
                    return _with_content(_tool_call(calls[0]), message.get("content"))
                if isinstance(legacy, dict):
                    return _with_content(_tool_call(legacy), message.get("content"))
                if "name" in message or "function" in message:
                    return _tool_call(message)
                content = message.get("content")
                if not isinstance(content, str) or not content.strip():
                    raise ActionRejected(
                        ToolError.NO_ACTION,
                        f"Error: the reply has neither tool_calls nor content; call the tool as in {_EXAMPLE}, "
                        "or answer with content 'Answer: LETTER'.",
                    )
            return _answer(content or "")
        except ActionRejected as reject:
            return invalid(scan, reject)

    def format_tool_call(
        self, bbox: Sequence[float], *, label: str | None = None, image_index: int = 0, decimals: int = 2
    ) -> str:
        """The assistant message of an endpoint calling ``image_zoom_in_tool`` (``arguments`` a JSON string)."""
        numbers = checked_format_bbox(bbox, "OpenAIDialect.format_tool_call")
        check_image_index(image_index, "OpenAIDialect.format_tool_call")
        check_label(label, "OpenAIDialect.format_tool_call")
        arguments: dict[str, Any] = {}
        if label is not None:
            arguments["label"] = label
        arguments["bbox_2d"] = [json.loads(format_coordinate(x, decimals)) for x in numbers]
        if image_index:
            arguments["image_index"] = image_index
        call = {
            "id": "call_0",
            "type": "function",
            "function": {"name": "image_zoom_in_tool", "arguments": json.dumps(arguments, ensure_ascii=False)},
        }
        return json.dumps({"role": "assistant", "content": None, "tool_calls": [call]}, ensure_ascii=False)

    def compose(self, prefix: str, action: str) -> str:
        """Text before a tool call goes into the message's ``content``; before an answer, it leads the content."""
        if not prefix or not action.startswith("{"):
            return prefix + action
        message = json.loads(action)
        message["content"] = prefix
        return json.dumps(message, ensure_ascii=False)

    def format_answer(self, letter: str) -> str:
        """``Answer: letter`` (the message's content, as plain text)."""
        return f"Answer: {check_answer_letter(letter, 'OpenAIDialect.format_answer')}"

    def tool_schema(self, coords: str, label_required: bool) -> dict[str, Any]:
        """The function to pass as ``tools=[...]``: :func:`mapo_env.prompts.zoom_tool_schema`."""
        return zoom_tool_schema(coords, label_required)  # type: ignore[arg-type]

    def system_prompt(self, coords: str, description_mode: str, label_required: bool) -> str:
        """Task and answer rule; the tool itself travels as ``tools=`` (:meth:`tool_schema`), listed here too."""
        schema = json.dumps(self.tool_schema(coords, label_required), separators=(",", ":"))
        describe = (
            "When a zoomed image comes back, start your next message with <description>what it shows</description>. "
            if description_mode == "post"
            else "Give the label: what you expect to see in the box. "
        )
        return (
            "You answer questions about an image. Small details may only be visible if you zoom in: call the "
            f"function image_zoom_in_tool with bbox_2d in {COORDINATE_HELP[coords]}; the crop comes back as a new "
            f"image.\nFunction:\n{schema}\n{describe}"
            "When you know, reply with a message whose content ends with the line 'Answer: LETTER'."
        )

    def crop_reply(self, turns_left: int, image_index: int, shown_size: tuple[int, int]) -> list[dict[str, Any]]:
        """The crop, named as the result of the tool call."""
        return replies(f"Result of image_zoom_in_tool: image {image_index}.", None, f"\n{self.turns_left(turns_left)}")

    def error_reply(self, message: str, turns_left: int) -> list[dict[str, Any]]:
        """The tool error, named as the result of the call."""
        return replies(f"Result of image_zoom_in_tool: {message}\n{self.turns_left(turns_left)}")


def _decode(text: str) -> Any:
    """The JSON value at the start of ``text`` (objects are repaired when truncated); ``bad_json`` otherwise."""
    start = len(text) - len(text.lstrip())
    try:
        value, _ = _DECODER.raw_decode(text, start)
        return value
    except (ValueError, RecursionError):
        if text[start] == "[":
            brace = text.find("{", start)
            if brace < 0:
                raise ActionRejected(
                    ToolError.BAD_JSON, f"Error: the reply is not valid JSON; got {brief(text)}. Send {_EXAMPLE}."
                ) from None
            return [decode_object(text, brace, len(text), "the tool call", _EXAMPLE)]
        return decode_object(text, start, len(text), "the reply", _EXAMPLE)


def _message(value: Any) -> dict[str, Any]:
    """Down to the assistant message: a completion's first choice, a list of calls, or the message itself."""
    if isinstance(value, list):
        return {"tool_calls": value} if value else {}
    if not isinstance(value, dict):
        raise ActionRejected(ToolError.BAD_JSON, f"Error: the reply must be a JSON object; got {brief(value)}.")
    choices = value.get("choices")
    if isinstance(choices, list) and choices and isinstance(choices[0], dict):
        inner = choices[0].get("message", choices[0].get("delta"))
        if isinstance(inner, dict):
            return inner
    return value


def _tool_call(call: Any) -> ParsedAction:
    if not isinstance(call, dict):
        raise ActionRejected(ToolError.BAD_JSON, f"Error: a tool call must be a JSON object; got {brief(call)}.")
    zoom: ZoomCall = zoom_call_from_object(call)
    return ParsedAction(kind="tool_call", tool_call=zoom)


def _with_content(parsed: ParsedAction, content: Any) -> ParsedAction:
    """Keep the ``<think>``/``<description>`` blocks of a tool-calling message's content."""
    if not isinstance(content, str) or not content.strip():
        return parsed
    scan = scan_turn(content, ())
    return ParsedAction(
        kind=parsed.kind, tool_call=parsed.tool_call, think=think_of(scan), description=scan.description
    )


def _answer(content: str) -> ParsedAction:
    scan = scan_turn(content)
    blocks = {"think": think_of(scan), "description": scan.description}
    if scan.action is not None and scan.action.group(2).lower() == "tool_call":
        return parse_action(content)  # an endpoint that left the call in the text (no tool parser): same tool
    if scan.action is not None:
        return ParsedAction(kind="answer", answer=answer_text(content, scan.action), **blocks)
    plain = plain_answer(content if not scan.think else content.split("</think>")[-1])
    if plain is not None:
        if not plain[1]:
            raise empty_answer("content 'Answer: LETTER'")
        return ParsedAction(kind="answer", answer=plain[1], **blocks)
    raise ActionRejected(
        ToolError.NO_ACTION,
        f"Error: no tool call and no answer found. Call image_zoom_in_tool (e.g. {_EXAMPLE}), "
        "or reply with content 'Answer: LETTER'.",
    )


DIALECT = OpenAIDialect
