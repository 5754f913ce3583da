"""``ThinkWithImagesEnv``: the zoom-and-answer loop every MAPO environment shares.

The dataset-specific environments in :mod:`mapo_env.envs` subclass it only to choose their data
and defaults; this class is the contract (observation, action, reward, info) documented in full on
:class:`ThinkWithImagesEnv`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any, Literal

import cv2
import gymnasium as gym
import numpy as np
from gymnasium import spaces

from mapo_env.actions import ParsedAction, ToolError, ZoomCall
from mapo_env.alignment.base import AlignmentRequest, AlignmentScorer
from mapo_env.alignment.common import checked_scores
from mapo_env.answers import grade_answer, option_letters
from mapo_env.data.base import ProceduralDataset, VQADataset
from mapo_env.dialects import Dialect, get_dialect
from mapo_env.errors import (
    AlignmentError,
    ConfigError,
    CorruptSampleError,
    InvalidActionType,
    ResetNeeded,
    close_matches_hint,
)
from mapo_env.geometry import (
    COORDINATE_FRAMES,
    CoordinateFrame,
    ImageFrame,
    ZoomBox,
    box_coverage,
    box_iou,
    crop_resize,
    resize_interpolation,
    resolve_zoom_box,
    smart_resize,
)
from mapo_env.prompts import image_part, question_text, text_part
from mapo_env.spaces import Dialogue, FreeText, ImageSpace
from mapo_env.types import GroundedObject, Grounding, ObjectAnnotation, StepInfo, VQASample
from mapo_env.validation import check_bool, check_choice, check_int, check_real, describe, is_int

DescriptionMode = Literal["label", "post"]


class DialectDefault:
    """Type of :data:`DIALECT_DEFAULT`: ``coords`` / ``description_mode`` follow the dialect's convention."""

    def __repr__(self) -> str:
        return "DIALECT_DEFAULT"


DIALECT_DEFAULT = DialectDefault()
"""``coords`` / ``description_mode`` left to the dialect (``"pixel"`` and ``"label"`` for the default ``deepeyes``)."""
MAX_TOOL_MESSAGE_CHARS = 600
"""Longest error message a tool reply carries; longer ones (which could echo model text) are cut."""
AlignmentSpec = str | AlignmentScorer | Callable[[AlignmentRequest], float] | None
MAX_ALIGNMENT_FAILURES = 3
"""Consecutive scorer failures in one episode after which ``step`` raises :class:`AlignmentError`."""

logger = logging.getLogger(__name__)


@dataclass
class _Episode:
    """Mutable state of the running episode."""

    index: int
    sample: VQASample
    image: np.ndarray
    options: tuple[str, ...]
    answer_index: int
    images: list[np.ndarray]
    frames: list[ImageFrame]
    messages: list[dict[str, Any]]
    turn: int = 0
    num_tool_calls: int = 0
    num_disabled_tool_calls: int = 0
    num_tool_errors: int = 0
    alignment_scores: list[float] = field(default_factory=list)
    crop_boxes: list[ZoomBox] = field(default_factory=list)
    pending_description: int | None = None
    fresh_images: set[int] = field(default_factory=set)
    well_formed: bool = True
    done: bool = False
    alignment_failures: int = 0


_NOT_UNDONE = frozenset({"alignment_failures"})


def _snapshot(ep: _Episode) -> dict[str, Any]:
    """What a turn may change in ``ep`` (lists only grow: their lengths), to undo the turn."""
    out: dict[str, Any] = {}
    for f in fields(ep):
        value = getattr(ep, f.name)
        if f.name not in _NOT_UNDONE:
            out[f.name] = len(value) if isinstance(value, list) else set(value) if isinstance(value, set) else value
    return out


def _restore(ep: _Episode, snapshot: dict[str, Any]) -> None:
    """Put ``ep`` back as it was when ``snapshot`` was taken."""
    for name, value in snapshot.items():
        current = getattr(ep, name)
        if isinstance(current, list):
            del current[value:]
        elif isinstance(current, set):
            current.clear()
            current.update(value)
        else:
            setattr(ep, name, value)


class _ScorerFailed(Exception):
    """Internal: the alignment scorer raised or returned no score (the cause is chained)."""


class ThinkWithImagesEnv(gym.Env[dict, str]):
    """A multiple-choice visual question on a large image, answered by zooming in and looking.

    ## Description

    The agent (a multimodal LLM) sees the image downsampled to its input frame plus the question and
    lettered options. Each turn it writes text: either a zoom tool call, which crops the ORIGINAL
    full-resolution image and returns the crop as a new image, or an answer, which ends the episode.
    With every zoom it states what it expects to see (``label``) or, in ``"post"`` mode, describes the
    crop it got; an alignment scorer rates that text against the crop (``info["alignment"]``), the
    signal MAPO couples with the task reward.

    ## Action Space

    :class:`mapo_env.spaces.FreeText`: the model's turn as a ``str``. Grammar (tolerant; see
    :mod:`mapo_env.actions`)::

        <think>...</think>   (optional)
        <description>...</description>   (``description_mode="post"``: describe the last crop)
        <tool_call>{"name": "image_zoom_in_tool",
                    "arguments": {"label": "red tile", "bbox_2d": [x1, y1, x2, y2], "image_index": 0}}</tool_call>
        or <answer>B</answer>   (letter or option text)

    ``bbox_2d`` is read in ``coords`` (``"pixel"`` of the image being zoomed as shown,
    ``"norm1000"``, ``"norm"``, or ``"original"`` pixels) relative to image ``image_index`` (0 = full
    view, k = k-th crop: nested zoom), mapped to original pixels, clamped, grown to ``min_crop_px``
    and cropped from the original. Any string is a valid action: malformed turns get a corrective
    tool message and an ``info["tool_error"]`` code, never an exception.

    ## Observation Space

    ``Dict``:

    ============  ================================================================================
    key           value
    ============  ================================================================================
    ``images``    tuple of RGB ``uint8`` (H, W, 3) arrays: [0] the full view (Qwen-style
                  smart-resized to at most ``max_pixels``), then every crop so far (at most
                  ``crop_max_pixels``, at least ``crop_min_pixels``: small crops are magnified)
    ``messages``  the dialogue so far in the Hugging Face multimodal chat format; the k-th
                  ``{"type": "image"}`` part is ``images[k]``
    ============  ================================================================================

    ## Rewards

    Given when the episode ends:
    ``correct_reward * correct + format_reward * well_formed + tool_bonus * (correct and zoomed)``,
    where ``well_formed`` means every turn parsed without a tool error (and had a ``<think>`` block
    when ``require_think``), and ``zoomed`` means at least one zoom call returned a crop. With
    ``zoom_enabled=False`` (the "tool disabled" ablation) no call returns one: a zoom call is answered
    with the full view again, earns no ``tool_bonus`` and is counted in ``num_disabled_tool_calls``,
    not in ``num_tool_calls``. The format term never depends on zooming: a well-formed disabled call
    neither earns nor costs anything, so zooming and then answering is worth exactly what answering at
    once is. In ``"post"`` mode the turn after a crop must open with its
    ``<description>``; a turn that does not (a zoom, or an answer, straight after a crop) is carried out
    but reports the tool error ``missing_description``. Each turn with a tool error also adds
    ``tool_error_penalty`` (default 0). A truncated episode gets only the penalties. Tool replies
    are at most :data:`MAX_TOOL_MESSAGE_CHARS` characters: they never echo unbounded model text.

    ## Starting State

    A sample drawn from ``self.np_random`` (or ``options={"index": i}``), its options shuffled by
    ``self.np_random`` unless ``shuffle_options=False`` (V*'s raw files list the answer first).
    ``options={"option_order": [...]}`` fixes the permutation.

    ## Episode End

    - Terminated: the agent answers (right or wrong; unmatched answers count as wrong).
    - Truncated: ``max_turns`` turns without an answer, or a turn longer than ``max_action_chars``.

    ## Info

    ``alignment`` (score of the description made this turn, else None), ``alignment_scores`` (all so
    far), ``target_iou`` / ``target_coverage`` (latest crop vs the ground-truth target boxes: best IoU,
    best fraction of a target inside the crop; None without boxes), ``tool_error`` (code or None),
    ``num_tool_calls`` (zoom calls that returned a crop), ``num_disabled_tool_calls`` (zoom calls answered
    with the full view because ``zoom_enabled=False``; always 0 otherwise), ``num_tool_errors``,
    ``correct`` (bool at the end, else None), ``answer`` / ``answer_index`` (parsed answer),
    ``answer_match`` (how it was graded: ``"letter"``, ``"text"``, ``"distinguishing_words"`` or
    ``"none"``; see :mod:`mapo_env.answers`), ``crop_box`` (latest crop, original pixels), ``turn``,
    ``sample_id``, ``sample_index``, ``category``, ``reward_terms`` (at the end).

    ## Alignment

    ``alignment="auto"`` (the default) scores each description against the crop's pixels with a CLIP,
    as MAPO (arXiv 2604.06777) does: ``"clip:tiny"`` (the bundled offline tiny CLIP, trained on these
    scenes) on a :class:`~mapo_env.data.base.ProceduralDataset`, ``"clip"`` (a real CLIP:
    ``$MAPO_CLIP_MODEL``, else ``openai/clip-vit-base-patch32``) on any other dataset.
    ``"annotation"`` and ``"lexical"`` are privileged oracles that read the ground-truth boxes instead
    of the crop (for ablations). The scorer is built and checked at construction: an unknown spec, a
    CLIP whose weights are neither local nor reachable, or an oracle (``needs_annotations``) on a
    dataset without object boxes raises a named error (:class:`~mapo_env.errors.ConfigError`,
    :class:`~mapo_env.errors.UnknownNameError`, :class:`~mapo_env.errors.DependencyNotInstalled`).

    A scorer that raises during ``step`` (or returns no real number; see
    :func:`mapo_env.alignment.checked_scores`) leaves the episode exactly as it was before the step:
    the turn is not counted, no crop is added, the observation is unchanged, and ``info["tool_error"]``
    is ``"alignment_error"`` with the reason in ``info["tool_message"]`` (reward 0, not terminated).
    After :data:`MAX_ALIGNMENT_FAILURES` such failures in a row in one episode, ``step`` raises
    :class:`~mapo_env.errors.AlignmentError` instead (the episode still untouched), so that a rollout
    loop cannot spin forever on a broken scorer. A NaN score counts 0 (logged); scores outside
    ``[0, 1]`` are clipped.

    ## Dialects

    ``dialect=`` (a name of :func:`mapo_env.dialects.dialect_names` or a
    :class:`~mapo_env.dialects.Dialect`) sets everything the model reads and writes around the loop:
    system prompt and tool schema, call syntax, coordinate convention (the default ``coords``; others
    are refused at construction), image-index convention, tool-reply wording and answer format, so a
    public checkpoint (DeepEyes, Pixel-Reasoner, Mini-o3, stock Qwen2.5-VL, an OpenAI-compatible
    endpoint) runs in the format it was trained on. The crop, the rewards and ``info`` are the same
    in every dialect. A dialect whose family writes no label defaults to ``description_mode="post"``
    (and refuses ``"label"``). An unknown name raises
    :class:`~mapo_env.dialects.UnknownDialectError` listing the valid names. Table: ``docs/dialects.md``.

    ## Arguments

    ``dataset`` (a :class:`~mapo_env.data.base.VQADataset`), ``render_mode`` (``"ansi"`` or
    ``"rgb_array"``), ``dialect`` (``"deepeyes"``: see Dialects), ``coords`` (default: the
    dialect's, ``"pixel"`` for deepeyes), ``description_mode`` (``"label"`` | ``"post"``; default: the
    dialect's, ``"label"`` for deepeyes), ``alignment``
    (``"auto"`` | ``"clip"`` | ``"clip:<model>"`` | ``"annotation"`` | ``"lexical"`` | a scorer | a
    callable | None: see Alignment), ``max_turns`` (6), ``max_action_chars`` (8192), ``max_label_words`` (16),
    ``max_pixels`` / ``min_pixels`` (full view), ``crop_max_pixels`` / ``crop_min_pixels``,
    ``patch_size`` (28: sides are multiples of it), ``min_crop_px`` (28), ``max_aspect_ratio`` (30),
    ``shuffle_options`` (True), ``zoom_enabled`` (True; False returns the full view again: the
    "tool disabled" ablation), ``system_prompt`` (None = default, "" = none), ``require_think``,
    ``correct_reward`` (1.0), ``format_reward`` (0.1), ``tool_bonus`` (0.1), ``tool_error_penalty`` (0.0).
    """

    metadata = {"render_modes": ["ansi", "rgb_array"], "render_fps": 1}

    def __init__(
        self,
        dataset: VQADataset,
        *,
        render_mode: str | None = None,
        coords: CoordinateFrame | DialectDefault = DIALECT_DEFAULT,
        description_mode: DescriptionMode | DialectDefault = DIALECT_DEFAULT,
        dialect: str | Dialect = "deepeyes",
        alignment: AlignmentSpec = "auto",
        max_turns: int = 6,
        max_action_chars: int = 8192,
        max_label_words: int = 16,
        max_pixels: int = 1280 * 28 * 28,
        min_pixels: int = 4 * 28 * 28,
        crop_max_pixels: int | None = None,
        crop_min_pixels: int = 256 * 28 * 28,
        patch_size: int = 28,
        min_crop_px: int = 28,
        max_aspect_ratio: float = 30.0,
        shuffle_options: bool = True,
        zoom_enabled: bool = True,
        system_prompt: str | None = None,
        require_think: bool = False,
        correct_reward: float = 1.0,
        format_reward: float = 0.1,
        tool_bonus: float = 0.1,
        tool_error_penalty: float = 0.0,
    ) -> None:
        check_choice("render_mode", render_mode, (None, *self.metadata["render_modes"]))
        self.dialect: Dialect = get_dialect(dialect)
        coords, description_mode = self._dialect_defaults(coords, description_mode)
        if not isinstance(dataset, VQADataset):
            raise ConfigError(
                f"dataset must be a VQADataset (name, __len__, __getitem__), got {type(dataset).__name__}; "
                "wrap a list of VQASample in mapo_env.data.ListDataset"
            )
        max_turns = check_int("max_turns", max_turns, minimum=1)
        max_action_chars = check_int("max_action_chars", max_action_chars, minimum=1)
        max_label_words = check_int("max_label_words", max_label_words, minimum=1)
        patch_size = check_int("patch_size", patch_size, minimum=1)
        smallest = patch_size * patch_size  # one patch: the smallest image there is
        max_pixels = check_int("max_pixels", max_pixels, minimum=1)
        min_pixels = check_int("min_pixels", min_pixels, minimum=1)
        crop_max_default = crop_max_pixels is None
        crop_max_pixels = max_pixels if crop_max_default else check_int("crop_max_pixels", crop_max_pixels, minimum=1)
        crop_min_pixels = check_int("crop_min_pixels", crop_min_pixels, minimum=1)
        for name, value in (("max_pixels", max_pixels), ("crop_max_pixels", crop_max_pixels)):
            if value < smallest:
                raise ConfigError(
                    f"{name}={value} is below one patch of patch_size={patch_size} ({smallest} pixels): no image "
                    "fits; raise it or lower patch_size"
                )
        if min_pixels > max_pixels:
            raise ConfigError(
                f"min_pixels={min_pixels} is above max_pixels={max_pixels}; lower one or raise the other"
            )
        if crop_min_pixels > crop_max_pixels:
            raise ConfigError(
                f"crop_min_pixels={crop_min_pixels} is above crop_max_pixels={crop_max_pixels}"
                + (" (crop_max_pixels defaults to max_pixels)" if crop_max_default else "")
                + "; pass a smaller crop_min_pixels or a larger crop_max_pixels"
            )
        min_crop_px = check_int("min_crop_px", min_crop_px, minimum=1)
        max_aspect_ratio = check_real("max_aspect_ratio", max_aspect_ratio, minimum=1.0)
        shuffle_options = check_bool("shuffle_options", shuffle_options)
        zoom_enabled = check_bool("zoom_enabled", zoom_enabled)
        require_think = check_bool("require_think", require_think)
        if system_prompt is not None and not isinstance(system_prompt, str):
            raise ConfigError(
                f"system_prompt must be a str or None (the default prompt), got {describe(system_prompt)}"
            )
        correct_reward = check_real("correct_reward", correct_reward)
        format_reward = check_real("format_reward", format_reward)
        tool_bonus = check_real("tool_bonus", tool_bonus)
        tool_error_penalty = check_real("tool_error_penalty", tool_error_penalty)
        if len(dataset) == 0:
            raise ConfigError(f"dataset {getattr(dataset, 'name', dataset)!r} is empty")
        self.dataset = dataset
        self.render_mode = render_mode
        self.coords: CoordinateFrame = coords
        self.description_mode: DescriptionMode = description_mode
        self.max_turns = max_turns
        self.max_action_chars = max_action_chars
        self.max_label_words = max_label_words
        self.max_pixels, self.min_pixels = max_pixels, min_pixels
        self.crop_max_pixels, self.crop_min_pixels = crop_max_pixels, crop_min_pixels
        self.patch_size = patch_size
        self.min_crop_px = min_crop_px
        self.max_aspect_ratio = max_aspect_ratio
        self.shuffle_options = shuffle_options
        self.zoom_enabled = zoom_enabled
        self.require_think = require_think
        self.correct_reward, self.format_reward = correct_reward, format_reward
        self.tool_bonus, self.tool_error_penalty = tool_bonus, tool_error_penalty
        self.system_prompt = (
            self.dialect.system_prompt(coords, description_mode, description_mode == "label")
            if system_prompt is None
            else system_prompt
        )
        self._alignment_spec = alignment
        self._scorer: AlignmentScorer | None = _build_scorer(alignment, dataset)
        self._episode: _Episode | None = None
        self._view_cache: tuple[tuple[str, int], np.ndarray] | None = None

        max_side = max(max_pixels, crop_max_pixels) // patch_size + patch_size
        self.action_space = FreeText(max_length=max_action_chars)
        self.observation_space = spaces.Dict(
            {
                "images": spaces.Sequence(ImageSpace(max_side, max_side), stack=False),
                "messages": Dialogue(max_messages=2 * max_turns + 2),
            }
        )

    def _dialect_defaults(self, coords: Any, description_mode: Any) -> tuple[CoordinateFrame, DescriptionMode]:
        """``coords`` and ``description_mode`` resolved against the dialect (DIALECT_DEFAULT = its own), checked."""
        dialect = self.dialect
        coords = dialect.coords if coords is DIALECT_DEFAULT else coords
        check_choice("coords", coords, COORDINATE_FRAMES)
        if coords not in dialect.allowed_coords:
            raise ConfigError(
                f"coords={coords!r} is not a convention of dialect {dialect.name!r}, which reads boxes as "
                f"{list(dialect.allowed_coords)}; leave coords out (it defaults to {dialect.coords!r}) or pick one "
                "of those"
            )
        if description_mode is DIALECT_DEFAULT:
            description_mode = dialect.default_description_mode
        check_choice("description_mode", description_mode, ("label", "post"))
        if description_mode == "label" and not dialect.writes_label:
            raise ConfigError(
                f"description_mode='label' needs a label in each zoom call, and dialect {dialect.name!r} writes none; "
                "leave description_mode out (it defaults to 'post': the next turn describes the crop)"
            )
        return coords, description_mode

    def parse(self, action: str) -> ParsedAction:
        """Parse one model turn in this environment's dialect (what :meth:`step` does first; never raises on a str)."""
        return self.dialect.parse(action)

    # ------------------------------------------------------------------ public API
    @property
    def scorer(self) -> AlignmentScorer | None:
        """The alignment scorer (built and checked at construction; its model loads at the first score)."""
        return self._scorer

    @property
    def current_sample(self) -> VQASample:
        """The sample of the running episode (ground truth included: for oracles and evaluation)."""
        return self._require_episode().sample

    @property
    def shown_options(self) -> tuple[str, ...]:
        """The options in the order the model sees them."""
        return self._require_episode().options

    @property
    def shown_answer_index(self) -> int:
        """Index of the correct option in :attr:`shown_options`."""
        return self._require_episode().answer_index

    @property
    def image_frames(self) -> tuple[ImageFrame, ...]:
        """Frame of each image of the observation (where it comes from in the original)."""
        return tuple(self._require_episode().frames)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[dict, dict]:
        """Start an episode on a random sample, or ``options["index"]`` (see Starting State).

        Args:
            seed: Reseeds ``self.np_random`` (an int >= 0), or None.
            options: None, or a dict with the keys of :attr:`RESET_OPTIONS`: ``"index"`` (an int in
                ``[0, len(dataset))``; ``bool`` and ``float`` are refused) and ``"option_order"`` (a
                permutation of the sample's option indices: the order in which they are shown).

        Raises:
            ConfigError: a bad ``seed`` or ``options`` (wrong type, unknown key, index out of range,
                an order that is no permutation).
            DatasetError: the sample's image cannot be loaded (e.g. :class:`~mapo_env.errors.CorruptSampleError`),
                or the dataset returned something that is no image of the sample's ``image_size``.

        A reset that raises leaves the environment without an episode: ``step`` raises
        :class:`~mapo_env.errors.ResetNeeded` until a reset succeeds (the previous episode is gone).
        """
        self._episode = None
        if seed is not None:
            seed = check_int("seed", seed, minimum=0)
        index, forced_order = self._check_reset_options(options)
        super().reset(seed=seed)
        if index is None:
            index = int(self.np_random.integers(len(self.dataset)))
        sample = self.dataset[index]
        order = self._option_order(sample, forced_order)
        image = _check_image(sample, sample.load_image())
        view = self._full_view(sample, image)
        height, width = image.shape[:2]
        messages: list[dict[str, Any]] = []
        if self.system_prompt:
            messages.append({"role": "system", "content": [text_part(self.system_prompt)]})
        shown = tuple(sample.options[i] for i in order)
        messages.append({"role": "user", "content": [image_part(), text_part(question_text(sample.question, shown))]})
        self._episode = _Episode(
            index=int(index),
            sample=sample,
            image=image,
            options=shown,
            answer_index=order.index(sample.answer_index),
            images=[view],
            frames=[ImageFrame((0.0, 0.0, float(width), float(height)), (view.shape[1], view.shape[0]))],
            messages=messages,
        )
        return self._observation(), self._info()

    def step(self, action: str) -> tuple[dict, float, bool, bool, dict]:
        """Carry out one model turn; see the class docstring for the contract."""
        return self._undoable(self._step, action)

    def _undoable(self, turn: Callable[..., tuple], *args: Any, **kwargs: Any) -> tuple:
        """Run ``turn``; if the alignment scorer fails inside it, undo the turn (see Alignment)."""
        ep = self._require_episode(for_step=True)
        snapshot = _snapshot(ep)
        try:
            result = turn(*args, **kwargs)
        except _ScorerFailed as failure:
            _restore(ep, snapshot)
            return self._alignment_failed(ep, failure.__cause__)
        ep.alignment_failures = 0
        return result

    def _alignment_failed(self, ep: _Episode, cause: BaseException | None) -> tuple[dict, float, bool, bool, dict]:
        ep.alignment_failures += 1
        name = getattr(self._scorer, "name", type(self._scorer).__name__)
        reason = f"{type(cause).__name__}: {cause}" if cause is not None else "unknown"
        if ep.alignment_failures >= MAX_ALIGNMENT_FAILURES:
            raise AlignmentError(
                f"the alignment scorer {name!r} failed {ep.alignment_failures} times in a row in this episode "
                f"(last: {reason}); fix the scorer, or pass alignment=None to run without one"
            ) from cause
        logger.warning("alignment scorer %r failed; the turn was undone: %s", name, reason)
        info = self._info(tool_error=ToolError.ALIGNMENT_ERROR)
        info["tool_message"] = cap_message(
            f"Error: the alignment scorer {name!r} failed on this turn ({reason}); the turn was not applied."
        )
        return self._observation(), 0.0, False, False, info

    def _step(self, action: str) -> tuple[dict, float, bool, bool, dict]:
        ep = self._begin_turn(action)
        if len(action) > self.max_action_chars:
            message = f"Error: your turn has {len(action)} characters; the limit is {self.max_action_chars}."
            return self._finish_turn(ep, error=(ToolError.ACTION_TOO_LONG, message), force_truncate=True)
        parsed = self.dialect.parse(action)
        if self.require_think and not parsed.think:
            ep.well_formed = False
        missing = self._missing_description(ep, parsed)
        alignment = self._score_pending_description(ep, parsed)
        if parsed.kind == "answer":
            return self._finish_turn(ep, alignment=alignment, answer=parsed.answer or "", error=missing)
        if parsed.kind == "tool_call" and parsed.tool_call is not None:
            result = self._zoom(ep, parsed.tool_call)
            if isinstance(result, tuple):
                return self._finish_turn(ep, alignment=alignment, error=result)
            if missing is not None:  # the crop is given; its reply also says what was missing
                ep.messages[-1]["content"].append(text_part(missing[1]))
            alignment = result if alignment is None else alignment
            return self._finish_turn(ep, alignment=alignment, error=missing, reply_error=False)
        error = (parsed.error or ToolError.NO_ACTION, parsed.message or "Error: no <tool_call> or <answer> found.")
        return self._finish_turn(ep, alignment=alignment, error=error)

    def reject_turn(
        self, action: str, code: ToolError, message: str, *, truncate: bool = False
    ) -> tuple[dict, float, bool, bool, dict]:
        """Record ``action`` as a turn that was refused with tool error ``code`` (for wrappers).

        The turn counts, the model gets ``message`` as the tool reply, and with ``truncate`` the
        episode ends (truncated). A failing alignment scorer undoes it as in :meth:`step`.
        """
        return self._undoable(self._reject_turn, action, code, message, truncate)

    def _reject_turn(
        self, action: str, code: ToolError, message: str, truncate: bool
    ) -> tuple[dict, float, bool, bool, dict]:
        ep = self._begin_turn(action)
        alignment = self._score_pending_description(ep, self.dialect.parse(action[: self.max_action_chars]))
        return self._finish_turn(ep, alignment=alignment, error=(code, message), force_truncate=truncate)

    def _begin_turn(self, action: Any) -> _Episode:
        ep = self._require_episode(for_step=True)
        if not isinstance(action, str):
            raise InvalidActionType(
                f"step() expects the model's turn as a str, got {type(action).__name__}. "
                "Discrete agents: wrap the env with mapo_env.wrappers.DiscreteZoomActions."
            )
        ep.turn += 1
        ep.messages.append({"role": "assistant", "content": [text_part(action[: self.max_action_chars])]})
        return ep

    def _finish_turn(
        self,
        ep: _Episode,
        *,
        alignment: float | None = None,
        error: tuple[ToolError, str] | None = None,
        answer: str | None = None,
        force_truncate: bool = False,
        reply_error: bool = True,
    ) -> tuple[dict, float, bool, bool, dict]:
        """Apply the turn's outcome: error reply, termination, truncation, reward, info."""
        reward = 0.0
        terminated = answer is not None
        if error is not None:
            ep.num_tool_errors += 1
            ep.well_formed = False
            reward += self.tool_error_penalty
            if not terminated and reply_error:
                turns_left = 0 if force_truncate else self.max_turns - ep.turn
                reply = self.dialect.error_reply(cap_message(error[1]), turns_left)
                ep.messages.append({"role": "user", "content": reply})
        info_extra: dict[str, Any] = {}
        if terminated:
            index, how = grade_answer(answer, ep.options)
            correct = index == ep.answer_index
            terms = self._final_reward_terms(ep, correct)
            reward += sum(terms.values())
            info_extra = {
                "answer": answer,
                "answer_index": index,
                "answer_match": how,
                "correct": correct,
                "reward_terms": terms,
            }
        truncated = not terminated and (force_truncate or ep.turn >= self.max_turns)
        ep.done = terminated or truncated
        info = self._info(alignment=alignment, tool_error=error[0] if error else None, **info_extra)
        if ep.done:
            info["grounding"] = self.grounding()
        return self._observation(), float(reward), terminated, truncated, info

    def render(self) -> str | np.ndarray | None:
        """``"ansi"``: the transcript; ``"rgb_array"``: the full view with every crop box drawn."""
        if self.render_mode is None:
            gym.logger.warn(
                "render() called without a render_mode; create the env with "
                f'gym.make("{self.spec.id if self.spec else "MAPO-...-v0"}", render_mode="rgb_array") or "ansi".'
            )
            return None
        from mapo_env.render import draw_crop_boxes, transcript

        ep = self._require_episode()
        if self.render_mode == "ansi":
            return transcript(ep.messages)
        return draw_crop_boxes(ep.images[0], ep.frames[0], [b.bbox for b in ep.crop_boxes])

    # ------------------------------------------------------------------ turn handlers
    def _zoom(self, ep: _Episode, call: ZoomCall) -> float | None | tuple[ToolError, str]:
        """Crop and reply; returns the label's alignment (label mode), None, or (error, message)."""
        if not 0 <= call.image_index < len(ep.images):
            return ToolError.BAD_IMAGE_INDEX, self.dialect.bad_image_index_message(call.image_index, len(ep.images))
        label = (call.label or "").strip()
        if self.description_mode == "label":
            if not label:
                return ToolError.MISSING_LABEL, 'Error: the zoom call needs a "label" saying what you expect to see.'
            if len(label.split()) > self.max_label_words:
                return ToolError.LABEL_TOO_LONG, f"Error: the label must be at most {self.max_label_words} words."
        box = resolve_zoom_box(
            call.bbox,
            ep.frames[call.image_index],
            call.coords or self.coords,  # type: ignore[arg-type]
            (ep.image.shape[1], ep.image.shape[0]),
            self.min_crop_px,
            self.max_aspect_ratio,
        )
        if not isinstance(box, ZoomBox):
            return box
        crop = self._crop(ep, box)
        ep.images.append(crop)
        ep.fresh_images.add(len(ep.images) - 1)
        # what the new image shows: the box, or (ablation) the whole image again, so that scorers reading
        # regions and nested zooms into it see what the model saw; target_iou still judges the box asked for
        shown = box.bbox if self.zoom_enabled else (0.0, 0.0, float(ep.image.shape[1]), float(ep.image.shape[0]))
        ep.frames.append(ImageFrame(shown, (crop.shape[1], crop.shape[0])))
        ep.crop_boxes.append(box)
        if self.zoom_enabled:
            ep.num_tool_calls += 1
        else:  # the ablation: no crop was returned, so no zoom was made (see Rewards)
            ep.num_disabled_tool_calls += 1
        reply = self.dialect.crop_reply(self.max_turns - ep.turn, len(ep.images) - 1, (crop.shape[1], crop.shape[0]))
        ep.messages.append({"role": "user", "content": reply})
        if self.description_mode == "post":
            ep.pending_description = len(ep.images) - 1
            return None
        return self._score(ep, label, len(ep.images) - 1)

    def _crop(self, ep: _Episode, box: ZoomBox) -> np.ndarray:
        h, w = smart_resize(box.height, box.width, self.patch_size, self.crop_min_pixels, self.crop_max_pixels)
        if not self.zoom_enabled:  # ablation: the tool answers with the full view again
            return cv2.resize(ep.images[0], (w, h), interpolation=cv2.INTER_AREA)
        return crop_resize(ep.image, box, (w, h))

    def _missing_description(self, ep: _Episode, parsed: ParsedAction) -> tuple[ToolError, str] | None:
        """Post mode: the ``missing_description`` error when this turn follows a crop without describing it."""
        if ep.pending_description is None or (parsed.description or "").strip():
            return None
        return ToolError.MISSING_DESCRIPTION, self.dialect.missing_description_message(ep.pending_description)

    def _score_pending_description(self, ep: _Episode, parsed: ParsedAction) -> float | None:
        """Post mode: score this turn's ``<description>`` against the crop it follows."""
        if ep.pending_description is None:
            return None
        image_index, ep.pending_description = ep.pending_description, None
        return self._score(ep, (parsed.description or "").strip(), image_index)

    def objects_in(self, image_index: int) -> tuple[tuple[ObjectAnnotation, float], ...]:
        """Annotated objects overlapping image ``image_index``, with the visible fraction of each, most first."""
        ep = self._require_episode()
        region = ep.frames[image_index].region
        visible = ((obj, box_coverage(obj.bbox, region)) for obj in ep.sample.objects)
        return tuple(sorted(((o, v) for o, v in visible if v > 0), key=lambda ov: -ov[1]))

    def _score(self, ep: _Episode, text: str, image_index: int) -> float | None:
        """Score ``text`` against image ``image_index``; a failing scorer raises :class:`_ScorerFailed`."""
        scorer = self._scorer
        if scorer is None:
            return None
        score = 0.0
        if text:
            region, objects = ep.frames[image_index].region, self.objects_in(image_index)
            request = AlignmentRequest(text, ep.images[image_index], region, objects, ep.sample.question)
            name = str(getattr(scorer, "name", type(scorer).__name__))
            try:
                score = checked_scores(scorer.score_batch([request]), 1, name)[0]
            except Exception as err:  # any failure of the scorer (a user's callable included) undoes the turn
                raise _ScorerFailed() from err
        ep.alignment_scores.append(score)
        return score

    def _final_reward_terms(self, ep: _Episode, correct: bool) -> dict[str, float]:
        """The end-of-episode terms (see Rewards); ``tool_bonus`` needs a crop, so a disabled zoom earns none."""
        return {
            "correct": self.correct_reward * float(correct),
            "format": self.format_reward * float(ep.well_formed),
            "tool_bonus": self.tool_bonus * float(correct and ep.num_tool_calls > 0),
        }

    # ------------------------------------------------------------------ helpers
    def _require_episode(self, for_step: bool = False) -> _Episode:
        if self._episode is None:
            raise ResetNeeded("call env.reset() before step() or render()")
        if for_step and self._episode.done:
            raise ResetNeeded("the episode has ended (terminated or truncated); call env.reset() to start another")
        return self._episode

    RESET_OPTIONS: tuple[str, ...] = ("index", "option_order")
    """The keys ``reset(options=...)`` understands."""

    def _check_reset_options(self, options: Any) -> tuple[int | None, list[int] | None]:
        """``(index, option order)`` from ``reset``'s ``options``, each None when not given; see :meth:`reset`."""
        if options is None:
            return None, None
        if not isinstance(options, Mapping):
            raise ConfigError(
                f"reset(options=...) must be a dict such as {{'index': 3}} or None, got {describe(options)}"
            )
        unknown = [key for key in options if key not in self.RESET_OPTIONS]
        if unknown:
            key = str(unknown[0])[:40]
            raise ConfigError(
                f"reset(options=...) has the unknown key {key!r}; known keys: {list(self.RESET_OPTIONS)}."
                + close_matches_hint(key, self.RESET_OPTIONS)
            )
        index = options.get("index")
        if index is not None:
            index = check_int("options['index']", index, minimum=0, maximum=len(self.dataset) - 1)
        order = options.get("option_order")
        if order is not None:
            if isinstance(order, str | bytes | Mapping | set | frozenset) or not hasattr(order, "__len__"):
                raise ConfigError(
                    f"options['option_order'] must be a list of option indices, e.g. [2, 0, 1], got {describe(order)}"
                )
            order = list(order)
            if not all(is_int(i) for i in order):
                raise ConfigError(f"options['option_order'] must hold ints only, got {describe(order)}")
            order = [int(i) for i in order]
        return index, order

    def _option_order(self, sample: VQASample, forced: list[int] | None) -> list[int]:
        n = len(sample.options)
        if forced is not None:
            if sorted(forced) != list(range(n)):
                raise ConfigError(
                    f"options['option_order'] must be a permutation of range({n}) (sample {sample.sample_id!r} has "
                    f"{n} options), got {describe(forced)}"
                )
            return forced
        if not self.shuffle_options:
            return list(range(n))
        return [int(i) for i in self.np_random.permutation(n)]

    def _full_view(self, sample: VQASample, image: np.ndarray) -> np.ndarray:
        """The downsampled full view, cached for the last sample (G resets on one question)."""
        key = (sample.sample_id, id(image))
        if self._view_cache is not None and self._view_cache[0] == key:
            return self._view_cache[1]
        height, width = image.shape[:2]
        h, w = smart_resize(height, width, self.patch_size, self.min_pixels, self.max_pixels)
        if (h, w) == (height, width):
            view = image
        else:
            view = cv2.resize(image, (w, h), interpolation=resize_interpolation((width, height), (w, h)))
        self._view_cache = (key, view)
        return view

    def _observation(self) -> dict[str, Any]:
        ep = self._require_episode()
        messages = [{"role": m["role"], "content": [dict(part) for part in m["content"]]} for m in ep.messages]
        # Every call returns arrays no other call returned (Gymnasium's contract). A crop made this turn
        # is handed out as is and kept; only images already handed out before are copied.
        images = tuple(img if i in ep.fresh_images else img.copy() for i, img in enumerate(ep.images))
        ep.fresh_images.clear()
        return {"images": images, "messages": messages}

    def grounding(self) -> Grounding:
        """The current episode's ground truth: each image's region and shown size, the scene's objects.

        Also in ``info["grounding"]`` of the step that ends the episode.
        """
        ep = self._require_episode()

        def grounded(obj: ObjectAnnotation) -> GroundedObject:
            return GroundedObject(obj.name, obj.caption(), tuple(float(v) for v in obj.bbox))  # type: ignore[arg-type]

        return Grounding(
            coords=str(self.coords),
            regions=tuple(tuple(float(v) for v in f.region) for f in ep.frames),  # type: ignore[misc]
            shown_sizes=tuple((int(f.shown_size[0]), int(f.shown_size[1])) for f in ep.frames),
            objects=tuple(grounded(o) for o in ep.sample.objects),
            targets=tuple(grounded(t) for t in ep.sample.targets),
        )

    def _info(
        self,
        *,
        alignment: float | None = None,
        tool_error: ToolError | None = None,
        correct: bool | None = None,
        answer: str | None = None,
        answer_index: int | None = None,
        answer_match: str | None = None,
        reward_terms: dict[str, float] | None = None,
    ) -> StepInfo:
        ep = self._require_episode()
        target_iou = target_coverage = None
        if ep.crop_boxes and ep.sample.targets:
            crop = ep.crop_boxes[-1].bbox
            target_iou = max(box_iou(t.bbox, crop) for t in ep.sample.targets)
            target_coverage = max(box_coverage(t.bbox, crop) for t in ep.sample.targets)
        return {
            "alignment": alignment,
            "alignment_scores": list(ep.alignment_scores),
            "target_iou": target_iou,
            "target_coverage": target_coverage,
            "tool_error": tool_error.value if tool_error is not None else None,
            "num_tool_calls": ep.num_tool_calls,
            "num_disabled_tool_calls": ep.num_disabled_tool_calls,
            "num_tool_errors": ep.num_tool_errors,
            "correct": correct,
            "answer": answer,
            "answer_index": answer_index,
            "answer_match": answer_match,
            "crop_box": ep.crop_boxes[-1].bbox if ep.crop_boxes else None,
            "turn": ep.turn,
            "sample_id": ep.sample.sample_id,
            "sample_index": ep.index,
            "category": ep.sample.category,
            "options": list(ep.options),
            "option_letters": list(option_letters(len(ep.options))),
            "reward_terms": dict(reward_terms) if reward_terms else None,
        }


def _build_scorer(spec: Any, dataset: VQADataset) -> AlignmentScorer | None:
    """The scorer for ``alignment=spec`` on ``dataset``, checked now (see the class docstring's Alignment).

    Raises:
        UnknownNameError: ``spec`` names no scorer.
        ConfigError: ``spec`` is malformed, its model cannot be loaded, or it reads ground-truth boxes
            (``needs_annotations``) and ``dataset`` has none.
        DependencyNotInstalled: the scorer's package is missing.
    """
    from mapo_env.alignment import make_scorer

    if spec is None:
        return None
    if isinstance(spec, str) and spec.strip().lower() == "auto":
        spec = "clip:tiny" if isinstance(dataset, ProceduralDataset) else "clip"
    scorer = make_scorer(spec)
    check = getattr(scorer, "check_available", None)
    if callable(check):
        check()
    if getattr(scorer, "needs_annotations", False) and not _has_object_boxes(dataset):
        name = getattr(dataset, "name", type(dataset).__name__)
        raise ConfigError(
            f"alignment={spec!r} reads the ground-truth object boxes of each crop (a privileged oracle, "
            f"needs_annotations=True), and dataset {name!r} has none (HR-Bench and MME-RealWorld give no "
            "boxes), so every score would be 0. Use a scorer that looks at the crop: alignment='clip' (a real "
            "CLIP: set MAPO_CLIP_MODEL to a saved CLIP folder or a cached hub id), alignment='clip:<model>', "
            "or alignment=None"
        )
    return scorer


def _has_object_boxes(dataset: VQADataset) -> bool:
    """The dataset's ``has_object_boxes`` flag; without one, whether its first sample has annotated objects."""
    flag = getattr(dataset, "has_object_boxes", None)
    if isinstance(flag, bool):
        return flag
    return bool(dataset[0].objects)


def _check_image(sample: VQASample, image: Any) -> np.ndarray:
    """The sample's image if it is an RGB ``uint8`` (H, W, 3) array of ``sample.image_size``, else a named error."""
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise CorruptSampleError(
            f"sample {sample.sample_id!r}: load_image() must return an RGB uint8 array of shape (H, W, 3), got "
            + (f"{image.dtype} {image.shape}" if isinstance(image, np.ndarray) else describe(image))
        )
    if image.shape[0] < 1 or image.shape[1] < 1 or (image.shape[1], image.shape[0]) != tuple(sample.image_size):
        raise CorruptSampleError(
            f"sample {sample.sample_id!r}: load_image() returned a {image.shape[1]}x{image.shape[0]} image, but the "
            f"sample's image_size is {sample.image_size[0]}x{sample.image_size[1]} (width x height)"
        )
    return image


def cap_message(message: str, limit: int = MAX_TOOL_MESSAGE_CHARS) -> str:
    """``message`` cut to ``limit`` characters (ending in ``"..."``), so a tool reply never echoes unbounded text."""
    return message if len(message) <= limit else message[: limit - 3] + "..."


def _short_number(value: int) -> str:
    """An int as the model wrote it, or ``"<a 4000-digit number>"`` when it is too long to repeat."""
    if -(10**12) < value < 10**12:
        return str(value)
    return f"<a {len(str(abs(value))) if abs(value) < 10**4000 else 'more than 4000'}-digit number>"
