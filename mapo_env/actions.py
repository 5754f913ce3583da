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

Rules where the grammar above is silent (each one is pinned by a test):

- **Tags** are matched case-insensitively and exactly (``<answer>``, ``</Answer>``; no spaces inside
  the brackets).
- **Blocks are not actions.** Everything inside ``<think>…</think>`` or ``<description>…</description>``
  is text, not an action: real models draft ``<answer>…</answer>`` inside their reasoning and then
  call the tool after ``</think>``; the call is the action. "First action tag wins" counts only tags
  outside these blocks.
- **An unclosed block runs to the end of the turn.** ``<think>`` without ``</think>`` swallows the rest,
  so the turn has no action (``NO_ACTION``, with a message asking to close the block). A ``</think>``
  with no opening tag before it (chat templates that put ``<think>`` in the prompt) closes a block that
  starts at the beginning of the turn.
- ``think`` joins every think block (stripped, newline-separated); ``description`` is the first
  description block (stripped). Both are ``None`` when absent, ``""`` when present but empty.
- **Answer**: the text after ``<answer>`` up to ``</answer>``, or, when that is missing, up to the next
  tag of this grammar or the end of the turn; stripped. Blank gives ``EMPTY_ANSWER``.
- **Tool call body**: the JSON object starting at the first ``{`` after ``<tool_call>`` (before any
  ``</tool_call>``), decoded with :meth:`json.JSONDecoder.raw_decode`, so text after the object is
  ignored. When that fails and the body is at most :data:`LENIENT_MAX_CHARS` long, a bounded fallback
  closes brackets left open by a truncated turn and accepts Python literals (single quotes,
  ``True``/``None``, trailing commas). Accepted shapes: ``{"name", "arguments"}`` (``"parameters"`` and
  ``"args"`` are aliases), ``arguments`` as a JSON *string* holding an object (OpenAI style), and the
  OpenAI wrapper ``{"type": "function", "function": {...}}``. Argument keys are matched
  case-insensitively; unknown arguments are ignored.
- **bbox**: a list of exactly 4 numbers (ints, floats, or numeric strings such as ``"12"``), or a string
  holding such a JSON list; kept as floats. NaN, infinities, booleans, ``None``, nested lists or a
  wrong length give ``BAD_BBOX``; a missing bbox also gives ``BAD_BBOX``. Order and bounds are not
  checked here.
- **image_index**: an int >= 0, an integral float or a numeric string; absent or ``null`` means 0;
  anything else gives ``BAD_ARGS``.
- **label**: a string (stripped; blank means ``None``) or absent/``null``; any other type gives
  ``BAD_ARGS``. A missing label is not an error here: the environment decides per ``description_mode``.
- **Messages** quote at most about 80 characters of the offending text and are at most
  :data:`MAX_MESSAGE_CHARS` long, whatever the size of the turn.
"""

from __future__ import annotations

import ast
import io
import json
import math
import re
import reprlib
import tokenize
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import Enum
from functools import lru_cache
from typing import Any, Literal

from mapo_env.errors import ConfigError, InvalidActionType

ZOOM_TOOL_NAME = "image_zoom_in_tool"
"""The tool's canonical name (the verl / DeepEyes zoom tool)."""

ZOOM_TOOL_NAMES = frozenset({ZOOM_TOOL_NAME, "zoom_in", "zoom", "crop", "image_zoom", "zoom_in_tool", "crop_image"})
"""Names accepted for the zoom tool."""

BBOX_KEYS = ("bbox_2d", "bbox", "box")
"""Argument names accepted for the box, in order of precedence."""

LABEL_KEYS = ("label", "object", "target")
"""Argument names accepted for the label, in order of precedence."""

IMAGE_INDEX_KEYS = ("image_index", "image_id", "img_idx")
"""Argument names accepted for the image index, in order of precedence."""

ARGUMENTS_KEYS = ("arguments", "parameters", "args")
"""Keys of the call object accepted for its arguments, in order of precedence."""

LENIENT_MAX_CHARS = 4096
"""Longest tool-call body the lenient fallback (bracket repair, Python literals) will look at."""

MAX_MESSAGE_CHARS = 400
"""Upper bound on the length of an error message."""

_TAG_RE = re.compile(r"<(/?)(think|description|tool_call|answer)>", re.IGNORECASE)
_CLOSE_RE = {name: re.compile(rf"</{name}>", re.IGNORECASE) for name in ("think", "description")}
_BLOCKS = ("think", "description")
_ACTIONS = ("tool_call", "answer")
_DECODER = json.JSONDecoder()
_CALL_EXAMPLE = '<tool_call>{"name": "image_zoom_in_tool", "arguments": {"label": "...", "bbox_2d": [x1, y1, x2, y2]}}'
_ARGS_EXAMPLE = '{"label": "...", "bbox_2d": [x1, y1, x2, y2]}'

_BRIEF = reprlib.Repr()
_BRIEF.maxstring = 80
_BRIEF.maxother = 80
_BRIEF.maxlist = _BRIEF.maxtuple = 6
_BRIEF.maxdict = 4
_BRIEF.maxlevel = 3


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
    ALIGNMENT_ERROR = "alignment_error"
    """The alignment scorer failed on this turn's description; the turn was undone (not counted, no crop added)."""


FAILED_CALL_ERRORS: frozenset[str] = frozenset(
    e.value
    for e in (
        ToolError.BAD_JSON,
        ToolError.UNKNOWN_TOOL,
        ToolError.BAD_ARGS,
        ToolError.MISSING_LABEL,
        ToolError.LABEL_TOO_LONG,
        ToolError.BAD_BBOX,
        ToolError.BAD_ASPECT_RATIO,
        ToolError.BAD_IMAGE_INDEX,
        ToolError.TOOL_BUDGET_EXCEEDED,
    )
)
"""``info["tool_error"]`` codes that mean "the model called the zoom tool and the call failed" (no crop
came back), as opposed to turns that called nothing (``no_action``) or answer-side errors."""


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
    coords: str | None = field(default=None, repr=False)
    """The frame of ``bbox`` when the call itself fixes it (a dialect's fallback, e.g. pixels written to a
    [0, 1] tool); ``None`` means the environment's ``coords``."""


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


class ActionRejected(Exception):
    """A turn that cannot be carried out: raised by the parsing helpers, caught by the dialect's parser.

    It never leaves a parser: :func:`parse_action` (and every dialect's ``parse``) turns it into a
    :class:`ParsedAction` with ``kind="invalid"``, ``error=code`` and ``message``.
    """

    def __init__(self, code: ToolError, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass
class TurnScan:
    """The blocks of a turn and its first action tag outside them (see :func:`scan_turn`).

    Attributes:
        think: The stripped text of each ``<think>`` block, in order.
        description: The first ``<description>`` block (stripped), or ``None``.
        action: The first action tag outside the blocks (``match.group(2)`` is its lower-case name).
        unclosed: The name of a block left open (it swallowed the rest of the turn), or ``None``.
        tags_in_think: An action tag was seen inside a ``<think>`` block.
    """

    think: list[str]
    description: str | None = None
    action: re.Match[str] | None = None
    unclosed: str | None = None
    tags_in_think: bool = False


def parse_action(text: str) -> ParsedAction:
    """Parse one model turn. Never raises on a ``str``; see the module docstring for the grammar.

    Args:
        text: The model's turn, as generated.

    Returns:
        A :class:`ParsedAction`: ``kind`` is ``"tool_call"`` (with ``tool_call``), ``"answer"`` (with
        ``answer``) or ``"invalid"`` (with ``error`` and ``message``); ``think`` and ``description``
        are filled whenever the turn has those blocks.

    Raises:
        InvalidActionType: ``text`` is not a ``str`` (our misuse, not the model's).

    Example:
        >>> parse_action('<think>find the cup</think><tool_call>{"name": "image_zoom_in_tool", '
        ...              '"arguments": {"bbox_2d": [10, 20, 110, 220], "label": "cup"}}').tool_call
        ZoomCall(bbox=(10.0, 20.0, 110.0, 220.0), label='cup', image_index=0, name='image_zoom_in_tool')
        >>> parse_action("<answer> B </answer>").answer
        'B'
    """
    if not isinstance(text, str):
        raise InvalidActionType(
            f"parse_action expects the model's turn as a str, got {type(text).__name__}; "
            "decode the generated tokens to text first."
        )
    scan = _scan(text)
    think = "\n".join(scan.think) if scan.think else None
    blocks: dict[str, Any] = {"think": think, "description": scan.description}
    try:
        if scan.action is None:
            raise ActionRejected(ToolError.NO_ACTION, _no_action_message(scan))
        if scan.action.group(2).lower() == "answer":
            return ParsedAction(kind="answer", answer=_answer_text(text, scan.action), **blocks)
        return ParsedAction(kind="tool_call", tool_call=_tool_call(text, scan.action), **blocks)
    except ActionRejected as reject:
        return ParsedAction(kind="invalid", error=reject.code, message=reject.message[:MAX_MESSAGE_CHARS], **blocks)


def format_tool_call(
    bbox: Sequence[float], label: str | None = None, image_index: int | None = None, decimals: int = 2
) -> str:
    """Render the canonical zoom call text, the form the prompts teach and the SFT oracle writes.

    ``label`` comes before ``bbox_2d`` (the model names what it looks for, then where), numbers are
    compact (ints as ints, floats with at most ``decimals`` decimals), and ``</`` inside the label is escaped so a
    stop sequence on ``</tool_call>`` cannot cut the call. :func:`parse_action` reads it back.

    Args:
        bbox: Four finite numbers ``[x1, y1, x2, y2]``.
        label: What the box should contain; omitted from the call when ``None``.
        image_index: Image to zoom into (0 = full view); omitted when ``None``.
        decimals: Decimals kept for non-integer coordinates (2 suits pixels and 0..1000; use 5 or more
            for 0..1 coordinates).

    Returns:
        ``<tool_call>{"name": "image_zoom_in_tool", "arguments": {...}}</tool_call>``.

    Raises:
        ConfigError: ``bbox`` is not 4 finite numbers, ``label`` is not a str, or ``image_index``
            is not an int >= 0.

    Example:
        >>> format_tool_call([10, 20.5, 110.123, 220.0])
        '<tool_call>{"name": "image_zoom_in_tool", "arguments": {"bbox_2d": [10, 20.5, 110.12, 220]}}</tool_call>'
        >>> '"arguments": {"label": "cup", "bbox_2d": [1, 2, 3, 4]}' in format_tool_call([1, 2, 3, 4], "cup")
        True
    """
    numbers = _checked_format_bbox(bbox)
    fields = []
    if label is not None:
        if not isinstance(label, str):
            raise ConfigError(f"format_tool_call: label must be a str or None, got {type(label).__name__}.")
        fields.append(f'"label": {json.dumps(label, ensure_ascii=False)}')
    fields.append(f'"bbox_2d": [{", ".join(format_coordinate(x, decimals) for x in numbers)}]')
    if image_index is not None:
        if isinstance(image_index, bool) or not isinstance(image_index, int) or image_index < 0:
            raise ConfigError(f"format_tool_call: image_index must be an int >= 0 or None, got {image_index!r}.")
        fields.append(f'"image_index": {image_index}')
    body = f'{{"name": "{ZOOM_TOOL_NAME}", "arguments": {{{", ".join(fields)}}}}}'.replace("</", "<\\/")
    return f"<tool_call>{body}</tool_call>"


def format_answer(letter: str) -> str:
    """Render ``<answer>letter</answer>``; :func:`parse_action` reads back ``letter.strip()``.

    Args:
        letter: The option letter (or option text) to answer with.

    Raises:
        ConfigError: ``letter`` is not a str, is blank, or contains a tag of the grammar.

    Example:
        >>> format_answer("B")
        '<answer>B</answer>'
    """
    return f"<answer>{check_answer_letter(letter)}</answer>"


# ----------------------------------------------------------------------------------------------
# Turn structure: blocks and the first action tag


def scan_turn(text: str, action_tags: tuple[str, ...] = _ACTIONS) -> TurnScan:
    """Walk a turn's tags once (linear time): collect the blocks, stop at the first action tag outside them.

    The rules of the module docstring (blocks are not actions, an unclosed block runs to the end, a
    leading ``</think>`` closes a block that began with the turn) hold for any set of action tags, so
    each dialect reuses them with its own tags (``("tool_call", "answer")``, ``("grounding", "answer")``).

    Args:
        text: The model's turn.
        action_tags: Lower-case names of the tags that start an action (``<name>``, case-insensitive).

    Returns:
        A :class:`TurnScan`.
    """
    return _scan(text, _tag_re(tuple(action_tags)), tuple(action_tags))


@lru_cache(maxsize=16)
def _tag_re(action_tags: tuple[str, ...]) -> re.Pattern[str]:
    names = "|".join(re.escape(name) for name in (*_BLOCKS, *action_tags))
    return re.compile(rf"<(/?)({names})>", re.IGNORECASE)


def _scan(text: str, tag_re: re.Pattern[str] = _TAG_RE, actions: tuple[str, ...] = _ACTIONS) -> TurnScan:
    """Walk the tags once (linear time): collect blocks, stop at the first action tag outside them."""
    scan = TurnScan(think=[])
    pos, first_tag = 0, True
    while (match := tag_re.search(text, pos)) is not None:
        closing, name = match.group(1) == "/", match.group(2).lower()
        if not closing and name in actions:
            scan.action = match
            return scan
        if closing and name == "think" and first_tag:  # "</think>" first: the block began with the turn
            _add_block(scan, "think", text[: match.start()], tag_re, actions)
        elif not closing and name in _BLOCKS:  # skip to the block's closing tag
            end = _CLOSE_RE[name].search(text, match.end())
            if end is None:
                _add_block(scan, name, text[match.end() :], tag_re, actions)
                scan.unclosed = name
                return scan
            _add_block(scan, name, text[match.end() : end.start()], tag_re, actions)
            match = end
        first_tag = False  # stray closing tags are ignored
        pos = match.end()
    return scan


def _add_block(scan: TurnScan, name: str, content: str, tag_re: re.Pattern[str], actions: tuple[str, ...]) -> None:
    if name == "think":
        scan.think.append(content.strip())
        scan.tags_in_think = scan.tags_in_think or _has_action_tag(content, tag_re, actions)
    elif scan.description is None:
        scan.description = content.strip()


def _has_action_tag(content: str, tag_re: re.Pattern[str], actions: tuple[str, ...]) -> bool:
    return any(m.group(2).lower() in actions for m in tag_re.finditer(content) if not m.group(1))


def _no_action_message(scan: TurnScan) -> str:
    if scan.unclosed is not None:
        return (
            f"Error: your <{scan.unclosed}> block is never closed, so the turn has no action; "
            f"end it with </{scan.unclosed}>, then write a <tool_call> or an <answer>."
        )
    inside = " (a <tool_call> or <answer> inside <think> does not count; write it after </think>)"
    return (
        f"Error: no action found{inside if scan.tags_in_think else ''}. Zoom with "
        f"{_CALL_EXAMPLE}</tool_call> or answer with <answer>LETTER</answer>."
    )


def answer_text(text: str, tag: re.Match[str], action_tags: tuple[str, ...] = _ACTIONS) -> str:
    """The stripped text after the ``<answer>`` tag ``tag``: up to the next tag of the grammar or the end.

    Raises:
        ActionRejected: ``empty_answer`` when nothing but blanks is left.
    """
    return _answer_text(text, tag, _tag_re(tuple(action_tags)))


def _answer_text(text: str, tag: re.Match[str], tag_re: re.Pattern[str] = _TAG_RE) -> str:
    """The stripped answer: up to ``</answer>``, else up to the next grammar tag or the end."""
    nxt = tag_re.search(text, tag.end())
    answer = text[tag.end() : nxt.start() if nxt is not None else len(text)].strip()
    if not answer:
        raise ActionRejected(
            ToolError.EMPTY_ANSWER,
            "Error: your <answer></answer> is empty; put the option letter inside, e.g. <answer>B</answer>.",
        )
    return answer


# ----------------------------------------------------------------------------------------------
# Tool call: body -> object -> ZoomCall


def _tool_call(text: str, tag: re.Match[str]) -> ZoomCall:
    return _zoom_call(tag_object(text, tag.end(), "tool_call", f"{_CALL_EXAMPLE}</tool_call>"))


def tag_object(text: str, start: int, tag: str, example: str, *, bare_keys: bool = False) -> dict[Any, Any]:
    """The JSON object of a call tag: the first ``{`` after ``start`` (the end of ``<tag>``), up to ``</tag>``.

    The closing tag is optional (generation stopped or was cut): without it the body runs to the end.

    Args:
        text: The turn.
        start: Where the body begins (the end of the opening tag).
        tag: The tag's name (``"tool_call"``, ``"grounding"``), for the closing tag and the messages.
        example: The well-formed call the error messages show.
        bare_keys: As in :func:`decode_object`.

    Raises:
        ActionRejected: ``bad_json`` when the body holds no ``{`` or no decodable object.
    """
    close = re.compile(rf"</{re.escape(tag)}>", re.IGNORECASE).search(text, start)
    end = close.start() if close is not None else len(text)
    brace = text.find("{", start, end)
    if brace < 0:
        raise ActionRejected(
            ToolError.BAD_JSON,
            f"Error: no JSON object after <{tag}>; got {_brief(text[start:end].strip())}. Write {example}.",
        )
    return decode_object(text, brace, end, f"the <{tag}> body", example, bare_keys=bare_keys)


def decode_object(
    text: str, start: int, end: int, what: str, example: str | None = None, *, bare_keys: bool = False
) -> dict[Any, Any]:
    """Decode the JSON object that starts at ``text[start]`` (a ``{``) and ends before ``end``.

    Strict JSON first (text after the object is ignored); when that fails and the body is at most
    :data:`LENIENT_MAX_CHARS` long, the bounded fallback closes brackets a truncated turn left open and
    accepts Python literals. With ``bare_keys``, unquoted keys and bare-word values
    (``{bbox_2d: [...], source: original_image}``) are quoted first.

    Args:
        text: The turn.
        start: Index of the opening ``{``.
        end: Where the region that may hold the object ends (a closing tag, or the end of the turn).
        what: How the error message names the object (``"the <tool_call> body"``).
        example: The well-formed call the error message shows (default: the DeepEyes call).
        bare_keys: Also try quoting bare keys and bare-word values.

    Returns:
        The decoded ``dict``.

    Raises:
        ActionRejected: ``bad_json``, with a message quoting at most about 80 characters of the text.
    """
    example = example if example is not None else f"{_CALL_EXAMPLE}</tool_call>"
    try:
        value, _ = _DECODER.raw_decode(text, start)
    except (ValueError, RecursionError) as err:  # JSONDecodeError is a ValueError
        body = text[start:end]
        value = _lenient_object(body) if end - start <= LENIENT_MAX_CHARS else None
        if value is None and bare_keys and end - start <= LENIENT_MAX_CHARS:
            value = _lenient_object(quote_bare_words(body))
        if value is None:
            reason = (
                f" (JSON error at char {err.pos - start}: {err.msg})" if isinstance(err, json.JSONDecodeError) else ""
            )
            raise ActionRejected(
                ToolError.BAD_JSON,
                f"Error: {what} must be a JSON object{reason}; got {_brief(text[start:end])}. Write {example}.",
            ) from None
    if not isinstance(value, dict):
        raise ActionRejected(ToolError.BAD_JSON, f"Error: {what} must be a JSON object; got {_brief(value)}.")
    return value


def _lenient_object(body: str) -> Any:
    """Best effort for a short body: close brackets a truncated turn left open, accept Python literals."""
    candidate = _balanced_prefix(body)
    if candidate is None or _joins_strings(candidate):
        return None
    for attempt in (candidate, _python_literals(candidate)):
        for decode in (json.loads, _python_literal):
            try:
                return decode(attempt)
            except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
                continue
    return None


_BARE_KEY_RE = re.compile(r"([{,]\s*)([A-Za-z_][A-Za-z0-9_]*)(\s*:)")
_BARE_VALUE_RE = re.compile(r"(:\s*)([A-Za-z_][A-Za-z0-9_]*)(\s*[,}\]]|\s*$)")
_LITERAL_WORDS = frozenset({"true", "false", "null", "True", "False", "None"})


def quote_bare_words(body: str) -> str:
    """``{bbox_2d: [1, 2, 3, 4], source: original_image}`` -> the same with its keys and bare words quoted.

    Only words outside strings are touched, and ``true``/``false``/``null`` (and Python's spellings) are
    kept as literals. Used by the lenient fallback of dialects whose models drop the quotes.
    """
    parts = re.split(r"(\"(?:[^\"\\]|\\.)*\"|'(?:[^'\\]|\\.)*')", body)
    for i in range(0, len(parts), 2):  # even parts lie outside string literals
        chunk = _BARE_KEY_RE.sub(lambda m: f'{m[1]}"{m[2]}"{m[3]}', parts[i])
        parts[i] = _BARE_VALUE_RE.sub(lambda m: m[0] if m[2] in _LITERAL_WORDS else f'{m[1]}"{m[2]}"{m[3]}', chunk)
    return "".join(parts)


def _python_literal(text: str) -> Any:
    """``ast.literal_eval`` (builds constants only: safe on model text) without the compiler's warnings.

    Text such as ``[1a]`` makes the compiler print a ``SyntaxWarning`` before it raises; model output is
    data, so that must not reach the user's stderr.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SyntaxWarning)
        return ast.literal_eval(text)


def _balanced_prefix(body: str) -> str | None:
    """``body`` up to the bracket closing its first one, or with the missing closers appended.

    Returns ``None`` for mismatched brackets or a string left open.
    """
    closers: list[str] = []
    quote, escaped = "", False
    for i, ch in enumerate(body):
        if quote:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == quote:
                quote = ""
        elif ch in "\"'":
            quote = ch
        elif ch in "{[":
            closers.append("}" if ch == "{" else "]")
        elif ch in "}]":
            if not closers or closers.pop() != ch:
                return None
            if not closers:
                return body[: i + 1]
    return None if quote else body.rstrip().rstrip(",") + "".join(reversed(closers))


def _joins_strings(source: str) -> bool:
    """True when Python would silently join two adjacent string literals (``"a" "b"``), or cannot tokenize."""
    skip = {tokenize.NL, tokenize.NEWLINE, tokenize.COMMENT, tokenize.INDENT, tokenize.DEDENT, tokenize.ENDMARKER}
    try:
        kinds = [t.type for t in tokenize.generate_tokens(io.StringIO(source).readline) if t.type not in skip]
    except (tokenize.TokenError, SyntaxError, ValueError):
        return True
    return any(a == b == tokenize.STRING for a, b in zip(kinds, kinds[1:]))


def _python_literals(body: str) -> str:
    return re.sub(r"\b(true|false|null)\b", lambda m: {"true": "True", "false": "False"}.get(m[1], "None"), body)


def _zoom_call(call: dict[Any, Any]) -> ZoomCall:
    function = call.get("function")
    if "name" not in call and isinstance(function, dict):  # OpenAI: {"type": "function", "function": {...}}
        call = function
    name = _tool_name(call.get("name"))
    args = _arguments(call)
    return ZoomCall(
        bbox=_bbox(_first(args, BBOX_KEYS)),
        label=_label(_first(args, LABEL_KEYS)),
        image_index=_image_index(_first(args, IMAGE_INDEX_KEYS)),
        name=name,
    )


def _tool_name(name: Any) -> str:
    if isinstance(name, str) and re.sub(r"[\s-]+", "_", name.strip().lower()) in ZOOM_TOOL_NAMES:
        return name.strip()
    got = "no name" if name is None else _brief(name)
    raise ActionRejected(
        ToolError.UNKNOWN_TOOL, f'Error: unknown tool ({got}); the only tool is "name": "{ZOOM_TOOL_NAME}".'
    )


def _arguments(call: dict[Any, Any]) -> dict[str, Any]:
    key = next((k for k in ARGUMENTS_KEYS if k in call), None)
    args = call.get(key) if key is not None else None
    if isinstance(args, str) and "{" in args:  # OpenAI style: the arguments object encoded as a string
        args = decode_object(args, args.index("{"), len(args), what='"arguments"')
    if not isinstance(args, dict):
        got = "nothing" if key is None else _brief(args)
        raise ActionRejected(
            ToolError.BAD_ARGS, f'Error: "arguments" must be an object like {_ARGS_EXAMPLE}; got {got}.'
        )
    return {str(k).strip().lower(): v for k, v in args.items()}


def _first(args: dict[str, Any], keys: tuple[str, ...]) -> Any:
    return next((args[k] for k in keys if k in args), None)


def _bbox(value: Any) -> tuple[float, float, float, float]:
    raw = value
    if isinstance(value, str) and len(value) <= 256:  # "[1, 2, 3, 4]" as a string
        try:
            value = json.loads(value)
        except ValueError:
            pass
    numbers = [_finite_float(v) for v in value] if isinstance(value, (list, tuple)) and len(value) == 4 else []
    if len(numbers) != 4 or any(x is None for x in numbers):
        got = "nothing" if raw is None else _brief(raw)
        raise ActionRejected(
            ToolError.BAD_BBOX, f"Error: bbox_2d must be 4 finite numbers [x1, y1, x2, y2]; got {got}."
        )
    x1, y1, x2, y2 = numbers
    return (x1, y1, x2, y2)


def _finite_float(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        value = value.strip() if len(value) <= 64 else ""
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return number if math.isfinite(number) else None


def _label(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ActionRejected(
            ToolError.BAD_ARGS, f"Error: label must be a string naming what the box shows; got {_brief(value)}."
        )
    return value.strip() or None


def _image_index(value: Any) -> int:
    if value is None:
        return 0
    index = parse_int(value)
    if index is None or index < 0:
        raise ActionRejected(
            ToolError.BAD_ARGS,
            f"Error: image_index must be an integer >= 0 (0 = the full image, k = your k-th crop); "
            f"got {_brief(value)}.",
        )
    return index


def _int_or_none(text: str) -> int | None:
    try:
        return int(text)
    except ValueError:
        number = _finite_float(text)
        return int(number) if number is not None and number.is_integer() else None


# ----------------------------------------------------------------------------------------------
# Small helpers


def _brief(value: Any) -> str:
    """A short, escaped rendering of a model-supplied value for an error message."""
    try:
        return _BRIEF.repr(value)
    except (ValueError, RecursionError):  # e.g. an int beyond the str-conversion digit limit
        return f"<{type(value).__name__}>"


def _checked_format_bbox(bbox: Any) -> list[float]:
    """Our own bbox (list, tuple, array of 4 numbers) as floats; raise :class:`ConfigError` otherwise."""
    try:
        values = [] if isinstance(bbox, (str, bytes)) else list(bbox)
    except TypeError:
        values = []
    numbers = [None if isinstance(v, (str, bytes)) else _finite_float(v) for v in values]
    if len(numbers) != 4 or any(x is None for x in numbers):
        raise ConfigError(f"format_tool_call: bbox must be 4 finite numbers [x1, y1, x2, y2], got {_brief(bbox)}.")
    return [x for x in numbers if x is not None]


def coordinate_decimals(coords: str) -> int:
    """Decimals a box is written with in the frame ``coords``: 6 for ``"norm"`` ([0, 1]), else 0.

    Pixel and 0..1000 boxes are integers, as the field's models write them (see
    :func:`mapo_env.geometry.written_box`, which snaps a box outward before it is written).
    """
    return 6 if coords == "norm" else 0


def format_coordinate(x: float, decimals: int = 2) -> str:
    """One box number as a zoom call writes it (``12``, ``12.5``, ``0.123457``).

    Ints as ints, other floats rounded to at most ``decimals`` decimals without trailing zeros.
    """
    rounded = round(x, decimals)
    if rounded.is_integer():
        return str(int(rounded))
    return f"{rounded:.{decimals}f}".rstrip("0")


def brief(value: Any) -> str:
    """A short, escaped rendering of a model-supplied value for an error message (at most about 80 characters)."""
    return _brief(value)


def parse_bbox(value: Any) -> tuple[float, float, float, float]:
    """A box as the model wrote it -> 4 finite floats (see the module docstring's *bbox* rule).

    Raises:
        ActionRejected: ``bad_bbox``.
    """
    return _bbox(value)


def parse_label(value: Any) -> str | None:
    """A label as the model wrote it -> stripped ``str`` or ``None`` (see the module docstring's *label* rule).

    Raises:
        ActionRejected: ``bad_args`` for a value that is neither a string nor null.
    """
    return _label(value)


def checked_format_bbox(bbox: Any, caller: str = "format_tool_call") -> list[float]:
    """Our own box (4 finite numbers) as floats, for the ``format_*`` helpers of the dialects.

    Raises:
        ConfigError: ``bbox`` is not 4 finite numbers.
    """
    try:
        return _checked_format_bbox(bbox)
    except ConfigError as error:
        raise ConfigError(str(error).replace("format_tool_call", caller, 1)) from None


def check_answer_letter(letter: Any, caller: str = "format_answer") -> str:
    """``letter`` stripped, if it is a non-blank ``str`` free of grammar tags (``<answer>``, ``<tool_call>``...).

    Raises:
        ConfigError: otherwise.
    """
    if not isinstance(letter, str) or not letter.strip() or _TAG_RE.search(letter):
        raise ConfigError(
            f"{caller} expects a non-blank str without <answer>/<tool_call>/<think> tags, got {letter!r:.80}."
        )
    return letter.strip()


def zoom_call_from_object(call: dict[Any, Any]) -> ZoomCall:
    """A decoded call object -> :class:`ZoomCall`, with the argument rules of the module docstring.

    Accepted shapes: ``{"name", "arguments"}``, the OpenAI ``{"type": "function", ...}`` wrapper,
    ``arguments`` as a JSON string; the name must be one of :data:`ZOOM_TOOL_NAMES`.

    Raises:
        ActionRejected: ``unknown_tool``, ``bad_args``, ``bad_bbox``.
    """
    return _zoom_call(call)


def call_arguments(call: dict[Any, Any]) -> dict[str, Any]:
    """The arguments object of a decoded call (keys lower-cased; a JSON string is decoded).

    Raises:
        ActionRejected: ``bad_args`` when there is none or it is not an object.
    """
    return _arguments(call)


def parse_int(value: Any) -> int | None:
    """An int, an integral float or a numeric string (at most 20 characters) -> ``int``; anything else -> ``None``."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if value.is_integer() else None
    if isinstance(value, str) and len(value) <= 20:
        return _int_or_none(value.strip())
    return None


def parse_image_index(value: Any) -> int:
    """An ``image_index`` as the model wrote it -> ``int`` (absent or null = 0; see the module docstring).

    Raises:
        ActionRejected: ``bad_args`` for anything but an integer >= 0.
    """
    return _image_index(value)
