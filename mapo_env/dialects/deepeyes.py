"""``deepeyes``: the DeepEyes / verl zoom tool, the environment's own grammar (the default dialect).

Sources:
    - DeepEyes (Zheng et al., arXiv 2505.14362), https://github.com/Visual-Agent/DeepEyes: the tool
      schema and call example in ``verl/workers/agent/envs/mm_process_engine/prompt.py``
      (``image_zoom_in_tool`` with ``bbox_2d`` and an optional ``label``), the parsing of
      ``<tool_call>...</tool_call>`` and ``<answer>...</answer>`` in
      ``verl/workers/agent/envs/mm_process_engine/visual_toolbox_v2.py``.

Call syntax::

    <tool_call>{"name": "image_zoom_in_tool",
                "arguments": {"label": "red cup", "bbox_2d": [x1, y1, x2, y2]}}</tool_call>

- coordinates: the environment's ``coords`` (default ``"pixel"``: pixels of the image as shown;
  ``"norm1000"``, ``"norm"`` and ``"original"`` are accepted too);
- image index: optional ``"image_index"``, 0-based (0 = the full view, k = the k-th crop);
- answer: ``<answer>B</answer>``;
- label: written by the family (MAPO scores it; ``description_mode="label"`` by default).

Everything here delegates to :mod:`mapo_env.actions` and :mod:`mapo_env.prompts`, so prompts and
messages are byte-identical to the environment without a dialect.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from mapo_env import actions, prompts
from mapo_env.actions import ParsedAction
from mapo_env.dialects.base import Dialect, short_number


class DeepEyesDialect(Dialect):
    """DeepEyes' ``image_zoom_in_tool`` in ``<tool_call>``, ``<answer>`` answers (see the module docstring)."""

    name = "deepeyes"
    family = "DeepEyes, and the environment's own grammar"
    sources = (
        "https://github.com/Visual-Agent/DeepEyes (verl/workers/agent/envs/mm_process_engine/prompt.py, "
        "visual_toolbox_v2.py)",
        "arXiv 2505.14362",
    )
    call_syntax = (
        '<tool_call>{"name": "image_zoom_in_tool", "arguments": {"label": "...", "bbox_2d": [x1, y1, x2, y2]}}'
        "</tool_call>"
    )
    coords = "pixel"
    allowed_coords = ("pixel", "norm1000", "norm", "original")
    image_index = 'optional "image_index", 0-based (0 = full view, k = k-th crop)'
    answer_format = "<answer>LETTER</answer>"
    writes_label = True

    def parse(self, text: str) -> ParsedAction:
        """:func:`mapo_env.actions.parse_action`."""
        return actions.parse_action(text)

    def format_tool_call(
        self, bbox: Sequence[float], *, label: str | None = None, image_index: int = 0, decimals: int = 2
    ) -> str:
        """:func:`mapo_env.actions.format_tool_call` (``image_index`` written only when it is not 0)."""
        return actions.format_tool_call(bbox, label, image_index or None, decimals)

    def format_answer(self, letter: str) -> str:
        """``<answer>letter</answer>``."""
        return actions.format_answer(letter)

    def system_prompt(self, coords: str, description_mode: str, label_required: bool) -> str:
        """:func:`mapo_env.prompts.default_system_prompt`."""
        return prompts.default_system_prompt(coords, description_mode, label_required)  # type: ignore[arg-type]

    def tool_schema(self, coords: str, label_required: bool) -> dict[str, Any]:
        """:func:`mapo_env.prompts.zoom_tool_schema`."""
        return prompts.zoom_tool_schema(coords, label_required)  # type: ignore[arg-type]

    def bad_image_index_message(self, index: int, num_images: int) -> str:
        """The environment's historical wording (``image_index N does not exist; use 0 ... to K``)."""
        number = short_number(index)
        return f"Error: image_index {number} does not exist; use 0 (full image) to {num_images - 1}."

    def crop_reply(self, turns_left: int, image_index: int, shown_size: tuple[int, int]) -> list[dict[str, Any]]:
        """:func:`mapo_env.prompts.crop_reply`."""
        return prompts.crop_reply(turns_left, image_index)

    def error_reply(self, message: str, turns_left: int) -> list[dict[str, Any]]:
        """:func:`mapo_env.prompts.error_reply`."""
        return prompts.error_reply(message, turns_left)


DIALECT = DeepEyesDialect
