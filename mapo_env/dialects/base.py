"""What a tool dialect is: the contract every module of :mod:`mapo_env.dialects` fills in.

A *dialect* is the way one family of "thinking with images" checkpoints was trained to talk to its
zoom tool. The environment's loop (crop the ORIGINAL image, reply, score, reward) never changes; the
dialect owns everything the model reads or writes around it:

- the system prompt and tool schema (:meth:`Dialect.system_prompt`);
- the call syntax the model emits, parsed by :meth:`Dialect.parse` into a
  :class:`~mapo_env.actions.ParsedAction` whose zoom call is in the environment's terms: 0-based
  ``image_index`` (0 = the full view, k = the k-th crop) and a box in :attr:`Dialect.coords`
  (or in ``ZoomCall.coords`` when the call itself says otherwise);
- the coordinate convention (:attr:`Dialect.coords`, :attr:`Dialect.allowed_coords`) and the
  image-index convention (:meth:`Dialect.image_name`);
- the wording of tool results (:meth:`Dialect.crop_reply`, :meth:`Dialect.error_reply`);
- the answer format (:meth:`Dialect.format_answer`) and where the text MAPO scores comes from
  (:attr:`Dialect.writes_label`, :meth:`Dialect.format_description`).

Model text is data: ``parse`` never raises on a ``str``. Our misuse (a bad box handed to a
``format_*`` helper) raises :class:`~mapo_env.errors.ConfigError`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, ClassVar

from mapo_env.actions import MAX_MESSAGE_CHARS, ActionRejected, ParsedAction, ToolError, TurnScan
from mapo_env.errors import ConfigError, InvalidActionType
from mapo_env.prompts import image_part, text_part

_BOXED_RE = re.compile(r"\\boxed\s*\{")
_WRAPPED_RE = re.compile(r"^\\(?:text|textbf|mathrm|mathbf)\s*\{(.*)\}$", re.DOTALL)
_ANSWER_LINE_RE = re.compile(r"(?im)^[ \t>*#_]*(?:final[ \t]+)?answer[ \t*_]*[:：][ \t*_]*(\S[^\n]*)$")
_BARE_LETTER_RE = re.compile(r"^\s*[\(\[]?([A-Za-z])[\)\]]?[.:)]?\s*$")
_BLOCK_RE = re.compile(r"<(think|description)>.*?</\1>", re.IGNORECASE | re.DOTALL)


class Dialect:
    """One family's tool dialect. Subclass it, set the class attributes, override what differs.

    The defaults are those of the environment's own grammar (DeepEyes' ``<tool_call>``/``<answer>``):
    a subclass overrides :meth:`parse`, :meth:`format_tool_call`, :meth:`system_prompt` and, where its
    family words them differently, the replies and the answer format.

    Attributes:
        name: Registry name (``dialect="name"``).
        family: The checkpoints that speak it (for the docs).
        sources: Where the format comes from: public repositories (URL + file) and papers.
        call_syntax: One well-formed zoom call, as the family writes it (for the docs).
        coords: The coordinate convention the family was trained with: the environment's default
            ``coords`` in this dialect.
        allowed_coords: The ``coords=`` values this dialect accepts (others raise at construction).
        image_index: The image-index convention, in words (for the docs).
        answer_format: The answer format, in words (for the docs).
        writes_label: The family names what it zooms on inside the call (a ``label``): MAPO scores it
            (``description_mode="label"``). When False the environment defaults to ``"post"`` and
            ``"label"`` is refused at construction.
    """

    name: ClassVar[str] = ""
    family: ClassVar[str] = ""
    sources: ClassVar[tuple[str, ...]] = ()
    call_syntax: ClassVar[str] = ""
    coords: ClassVar[str] = "pixel"
    allowed_coords: ClassVar[tuple[str, ...]] = ("pixel", "norm1000", "norm", "original")
    image_index: ClassVar[str] = ""
    answer_format: ClassVar[str] = ""
    writes_label: ClassVar[bool] = True

    @property
    def default_description_mode(self) -> str:
        """``"label"`` when the family writes a label in its calls, else ``"post"``."""
        return "label" if self.writes_label else "post"

    # ------------------------------------------------------------------ what the model writes
    def parse(self, text: str) -> ParsedAction:
        """Parse one model turn. Never raises on a ``str`` (subclasses implement it)."""
        raise NotImplementedError

    def format_tool_call(
        self, bbox: Sequence[float], *, label: str | None = None, image_index: int = 0, decimals: int = 2
    ) -> str:
        """A well-formed zoom call in this dialect (what the SFT oracle writes).

        Args:
            bbox: ``[x1, y1, x2, y2]`` in :attr:`coords` of image ``image_index``.
            label: What the box shows (dialects whose family writes no label leave it out).
            image_index: 0-based index of the image to zoom into (0 = full view).
            decimals: Decimals kept for non-integer coordinates.
        """
        raise NotImplementedError

    def format_answer(self, letter: str) -> str:
        """The final answer in this dialect's format."""
        raise NotImplementedError

    def format_think(self, text: str) -> str:
        """A reasoning passage as the family writes it (default ``<think>...</think>``)."""
        return f"<think>{text}</think>"

    def format_description(self, text: str) -> str:
        """The description of the last crop, where the env reads it in ``"post"`` mode.

        The default is the ``<description>`` block; families that write no description of their own
        put it where :meth:`parse` takes it from (their reasoning).
        """
        return f"<description>{text}</description>"

    def compose(self, prefix: str, action: str) -> str:
        """One turn from free text (reasoning, description) and an action written by a ``format_*`` helper."""
        return prefix + action

    # ------------------------------------------------------------------ what the model reads
    def system_prompt(self, coords: str, description_mode: str, label_required: bool) -> str:
        """The default system message: task, tool schema, call syntax and answer format."""
        raise NotImplementedError

    def image_name(self, index: int) -> str:
        """How the model refers to image ``index`` (0-based: 0 = the full view)."""
        return str(index)

    def bad_image_index_message(self, index: int, num_images: int) -> str:
        """The tool message for a reference to image ``index`` (0-based) when ``num_images`` exist."""
        return (
            f"Error: image {self.safe_image_name(index)} does not exist; use {self.image_name(0)} (the full image) "
            f"to {self.image_name(num_images - 1)}."
        )

    def safe_image_name(self, index: int) -> str:
        """:meth:`image_name`, or a placeholder for an index too long to repeat (a model can write 5000 digits)."""
        return self.image_name(index) if -(10**12) < index < 10**12 else short_number(index)

    def missing_description_message(self, image_index: int) -> str:
        """The tool message for a ``"post"``-mode turn that does not describe the crop it follows."""
        return (
            f"Error: describe image {self.image_name(image_index)} in <description>...</description> at the start of "
            "the turn that follows it."
        )

    def crop_reply(self, turns_left: int, image_index: int, shown_size: tuple[int, int]) -> list[dict[str, Any]]:
        """Content of the user message that carries crop ``image_index`` (shown at ``shown_size`` = (w, h))."""
        raise NotImplementedError

    def error_reply(self, message: str, turns_left: int) -> list[dict[str, Any]]:
        """Content of the user message for a turn that could not be carried out."""
        raise NotImplementedError

    def turns_left(self, turns_left: int) -> str:
        """The reminder of the turn budget that ends each tool reply."""
        if turns_left <= 1:
            return f"This is your last turn: answer now with {self.answer_format}."
        return f"{turns_left} turns left."

    def tool_schema(self, coords: str, label_required: bool) -> dict[str, Any] | None:
        """The zoom tool in the OpenAI/Qwen function-calling format, or ``None`` (no function tool)."""
        return None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


# ----------------------------------------------------------------------------------------------
# Helpers shared by the dialect modules


def check_text(text: object) -> None:
    """Raise :class:`~mapo_env.errors.InvalidActionType` unless ``text`` is a ``str`` (our misuse, not the model's)."""
    if not isinstance(text, str):
        raise InvalidActionType(
            f"a dialect parses the model's turn as a str, got {type(text).__name__}; "
            "decode the generated tokens to text first."
        )


def invalid(scan: TurnScan | None, reject: ActionRejected, description: str | None = None) -> ParsedAction:
    """The ``kind="invalid"`` result for ``reject``, keeping the turn's blocks."""
    return ParsedAction(
        kind="invalid",
        error=reject.code,
        message=reject.message[:MAX_MESSAGE_CHARS],
        think=think_of(scan) if scan is not None else None,
        description=description,
    )


def think_of(scan: TurnScan) -> str | None:
    """The joined ``<think>`` blocks of a scan, or ``None``."""
    return "\n".join(scan.think) if scan.think else None


def check_image_index(image_index: object, caller: str) -> None:
    """Raise :class:`~mapo_env.errors.ConfigError` unless ``image_index`` is an int >= 0 (``caller``'s misuse)."""
    if isinstance(image_index, bool) or not isinstance(image_index, int) or image_index < 0:
        raise ConfigError(f"{caller}: image_index must be an int >= 0, got {image_index!r}")


def check_label(label: object, caller: str) -> None:
    """Raise :class:`~mapo_env.errors.ConfigError` unless ``label`` is a ``str`` or ``None`` (``caller``'s misuse)."""
    if label is not None and not isinstance(label, str):
        raise ConfigError(f"{caller}: label must be a str or None, got {label!r}")


def pixel_fallback(bbox: Sequence[float]) -> str | None:
    """The frame of a box written to a [0, 1] tool: ``None`` (the tool's own), or ``"pixel"`` past 1.

    The [0, 1] families read a box with a value outside [0, 1] as pixels of the image as shown.
    """
    return None if all(0.0 <= v <= 1.0 for v in bbox) else "pixel"


def without_blocks(text: str) -> str:
    """``text`` with every closed ``<think>``/``<description>`` block blanked (same length, so positions hold)."""
    return _BLOCK_RE.sub(lambda m: " " * len(m[0]), text)


def boxed_answer(text: str) -> tuple[int, str] | None:
    r"""The last ``\boxed{...}`` of ``text`` as ``(position, content)``, or ``None``.

    Braces are balanced (``\boxed{\text{B}}`` -> ``B``); a truncated box runs to the end of the text.
    """
    matches = list(_BOXED_RE.finditer(text))
    if not matches:
        return None
    start = matches[-1].end()
    depth, end = 1, len(text)
    for i in range(start, len(text)):
        if text[i] == "{":
            depth += 1
        elif text[i] == "}":
            depth -= 1
            if depth == 0:
                end = i
                break
    content = text[start:end].strip()
    while (wrapped := _WRAPPED_RE.match(content)) is not None:
        content = wrapped[1].strip()
    return matches[-1].start(), content


def plain_answer(text: str) -> tuple[int, str] | None:
    """An ``Answer: X`` line (the last one), or a turn that is a bare option letter, as ``(position, answer)``."""
    lines = list(_ANSWER_LINE_RE.finditer(text))
    if lines:
        answer = lines[-1][1].strip().strip("*_").strip()
        return lines[-1].start(), answer
    bare = _BARE_LETTER_RE.match(text)
    if bare is not None:
        return bare.start(1), bare[1]
    return None


def empty_answer(example: str) -> ActionRejected:
    """The ``empty_answer`` rejection, showing ``example``."""
    return ActionRejected(ToolError.EMPTY_ANSWER, f"Error: your answer is empty; answer with {example}.")


def unclosed_message(name: str, action_hint: str) -> str:
    """The ``no_action`` message for a ``<name>`` block left open."""
    return (
        f"Error: your <{name}> block is never closed, so the turn has no action; end it with </{name}>, "
        f"then {action_hint}."
    )


def replies(*parts: str | None) -> list[dict[str, Any]]:
    """Content parts: each ``str`` a text part, each ``None`` the next image."""
    return [image_part() if part is None else text_part(part) for part in parts]


def short_number(value: int) -> str:
    """An int as the model wrote it, or ``"<a 4000-digit number>"`` when it is too long to repeat."""
    if -(10**12) < value < 10**12:
        return str(value)
    return f"<a {len(str(abs(value))) if abs(value) < 10**4000 else 'more than 4000'}-digit number>"
