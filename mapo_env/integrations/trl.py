"""MAPO environments inside TRL's ``GRPOTrainer``: environment class, rewards, dataset, chat template.

Install with ``pip install "mapo-gym[trl]"`` (``scripts/install_trl.sh`` keeps the installed torch).
Nothing here imports TRL, ``datasets``, torch or transformers at import time; each function that needs
one imports it when called and raises :class:`~mapo_env.errors.DependencyNotInstalled` with the
install line when it is missing.

How the pieces fit (``docs/integrations.md`` has the full guide)::

    from trl import GRPOConfig, GRPOTrainer
    from mapo_env.integrations import trl as mapo_trl

    dataset = mapo_trl.make_dataset("MAPO-Tiles-v0", num_questions=64, seed=0)
    trainer = GRPOTrainer(
        model=model,                                    # a Qwen2.5-VL checkpoint
        processing_class=mapo_trl.use_tool_chat_template(processor),
        reward_funcs=[mapo_trl.outcome_reward, mapo_trl.semantic_reward],
        args=GRPOConfig(reward_weights=[1.0, 0.4], multi_objective_aggregation="normalize_then_sum", ...),
        train_dataset=dataset,
        environment_factory=mapo_trl.MapoEnvFactory("MAPO-Tiles-v0"),
    )

- :class:`MapoToolEnv` wraps one ``MAPO-*`` environment per rollout. TRL turns its one public
  method, :meth:`MapoToolEnv.image_zoom_in_tool`, into the zoom tool (its schema comes from the
  signature and docstring); the tool steps the environment and returns the crop as an image, which
  TRL feeds to the next generation turn and to the training forward pass.
- TRL never hands the final ``<answer>`` turn to the environment, so :func:`outcome_reward` steps it
  (after undoing any zoom whose result TRL rolled back, see :func:`finish_episode`) and returns
  the episode's reward. :func:`semantic_reward` returns MAPO's semantic score S (the discounted mean
  alignment of the zoom labels with their crops), or ``None`` for a rollout that never zoomed.
- With ``reward_weights=[1, β]`` and ``multi_objective_aggregation="normalize_then_sum"`` TRL's
  advantage is MAPO's ``A_out + β·A_sem`` up to a batch rescale (the near form, no code). The exact
  estimator is :class:`mapo_agent.integrations.trl.MapoGRPOTrainer`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import gymnasium as gym
import numpy as np
from PIL import Image

from mapo_env.actions import ZOOM_TOOL_NAME, ToolError
from mapo_env.core import ThinkWithImagesEnv
from mapo_env.errors import ConfigError, DependencyNotInstalled, ResetNeeded
from mapo_env.integrations.chat_template import QWEN25VL_TOOL_CHAT_TEMPLATE

INSTALL_HINT = 'pip install "mapo-gym[trl]"  (or: bash scripts/install_trl.sh, which keeps your torch)'
"""How to install what this module needs."""

ROW_KEYS = ("mapo_env_id", "mapo_index", "mapo_seed", "mapo_option_order")
"""Dataset columns that :meth:`MapoToolEnv.reset` reads to rebuild the row's episode."""


def _require(module: str) -> Any:
    """Import ``module`` or raise :class:`DependencyNotInstalled` with the install line."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise DependencyNotInstalled(
            f"mapo_env.integrations.trl needs {module.split('.')[0]!r}, which is not installed; run: {INSTALL_HINT}"
        ) from err


def use_tool_chat_template(processing_class: Any) -> Any:
    """Give a Qwen2.5-VL tokenizer or processor the tool-capable template and a tool-call parser.

    Sets :data:`QWEN25VL_TOOL_CHAT_TEMPLATE` as the chat template (on the processor and its
    tokenizer) and TRL's Hermes/Qwen response parser on the tokenizer (``response_template`` on
    transformers >= 5.13, else the legacy ``response_schema``), so that ``GRPOTrainer`` can render the
    zoom tool's schema, parse ``<tool_call>`` blocks out of completions and put tool results back in
    the conversation. The parser accepts the call with or without newlines around the JSON.

    Args:
        processing_class: A tokenizer, or a processor with a ``tokenizer`` attribute (changed in place).

    Returns:
        The same object, for chaining.

    Raises:
        DependencyNotInstalled: TRL is not installed.
        ConfigError: ``processing_class`` has no ``chat_template`` attribute to set.
    """
    utils = _require("trl.chat_template_utils")
    if not hasattr(processing_class, "chat_template"):
        raise ConfigError(
            f"use_tool_chat_template expects a tokenizer or processor, got {type(processing_class).__name__}; pass "
            "the processing_class you give GRPOTrainer"
        )
    tokenizer = getattr(processing_class, "tokenizer", processing_class)
    processing_class.chat_template = QWEN25VL_TOOL_CHAT_TEMPLATE
    tokenizer.chat_template = QWEN25VL_TOOL_CHAT_TEMPLATE
    if getattr(utils, "_SUPPORTS_RESPONSE_TEMPLATE", False):
        tokenizer.response_template = utils.qwen3_template
    else:
        tokenizer.response_schema = utils.qwen3_schema
    return processing_class


# ----------------------------------------------------------------------------------------------
# the environment


@dataclass
class EpisodeRecord:
    """What one finished rollout left in its environment (read by the rewards and the MAPO trainer).

    Attributes:
        reward: The episode's return: the sum of every ``env.step`` reward (penalties and the final
            reward; 0 for a rollout that never answered).
        correct: The answer was right (False when there was none).
        answered: The final turn was an answer the environment graded (the episode terminated).
        tool_call_scores: One entry per zoom call the model saw the result of, in order: its
            alignment score, or ``None`` for a call that failed (MAPO's ``alignment_scores``).
        num_tool_calls: Zoom calls that returned a crop.
        truncated: The episode ended without an answer (turn budget, TRL's tool-call limit, or a
            completion cut at ``max_completion_length``).
    """

    reward: float
    correct: bool
    answered: bool
    tool_call_scores: list[float | None] = field(default_factory=list)
    num_tool_calls: int = 0
    truncated: bool = False


class MapoToolEnv:
    """One ``MAPO-*`` environment as a TRL ``environment_factory`` environment (one per rollout).

    TRL calls :meth:`reset` with the dataset row (the columns of :func:`make_dataset`), then exposes
    :meth:`image_zoom_in_tool` to the model as a function tool. Each call steps the wrapped
    environment with the zoom written in its dialect and returns the crop as an image plus the
    environment's short note (turns left), or the environment's corrective message as text when the
    call was refused (bad box, missing label, ...). The reward functions then call
    :func:`finish_episode` with the rollout's messages, which steps the final answer (TRL never sends it to the
    environment) and freezes an :class:`EpisodeRecord`.

    Rollback safety: TRL drops a tool result that would overflow ``max_completion_length`` from the
    completion *after* the tool ran, so the environment may hold zooms the model never saw.
    :func:`finish_episode` counts the zoom results left in the completion and, when there are fewer than the
    environment stepped, rebuilds the episode by replaying the seeded reset and the kept calls (the
    environments are deterministic given seed and options), so rewards and alignment scores describe
    exactly the trajectory that is trained on.

    Only the zoom tool is a public method: TRL turns every public method of this class into a tool
    (hence :func:`finish_episode` is a module function, and ``record`` and ``env`` are properties).

    Args:
        env_id: A registered ``MAPO-*`` id (default ``"MAPO-Tiles-v0"``).
        env_kwargs: Keyword arguments for ``gym.make`` (``dialect``, ``alignment``, ``max_turns``, ...).
            The environment must use ``description_mode="label"`` (the default of the ``deepeyes``
            dialect): a TRL tool sees only its arguments, so the label inside the call is the
            description MAPO scores.
        env: An already built environment to wrap instead (``env_id`` and ``env_kwargs`` are then
            ignored).

    Raises:
        ConfigError: the environment is not a :class:`~mapo_env.core.ThinkWithImagesEnv`, or its
            ``description_mode`` is not ``"label"``.
    """

    def __init__(
        self,
        env_id: str = "MAPO-Tiles-v0",
        env_kwargs: Mapping[str, Any] | None = None,
        *,
        env: gym.Env | None = None,
    ) -> None:
        import mapo_env  # noqa: F401  (registers the MAPO-* ids)

        self._env = env if env is not None else gym.make(env_id, **dict(env_kwargs or {}))
        base = self._env.unwrapped
        if not isinstance(base, ThinkWithImagesEnv):
            raise ConfigError(
                f"MapoToolEnv wraps MAPO-* environments (ThinkWithImagesEnv), got {type(base).__name__}; pass a "
                "registered MAPO-* id"
            )
        if base.description_mode != "label":
            raise ConfigError(
                f"MapoToolEnv needs description_mode='label' (got {base.description_mode!r}): a TRL tool only sees "
                "its arguments, so the zoom call's label is the description MAPO scores. Use a dialect that writes a "
                "label (the default 'deepeyes') and leave description_mode out"
            )
        self._base: ThinkWithImagesEnv = base
        self._env_id = env_id if env is None else getattr(getattr(env, "spec", None), "id", env_id)
        self._reset_args: tuple[int | None, dict[str, Any]] | None = None
        self._calls: list[str | None] = []  # per tool call: the action stepped, or None (not stepped)
        self._scores: list[float | None] = []
        self._return = 0.0
        self._num_crops = 0
        self._done = False
        self._record: EpisodeRecord | None = None

    # ------------------------------------------------------------------ TRL's protocol
    def reset(self, **row: Any) -> None:
        """Start the episode of a dataset row (TRL passes every column; see :func:`make_dataset`).

        Reads ``mapo_index`` (question), ``mapo_option_order`` (options as shown in the prompt) and
        ``mapo_seed``; other columns (``prompt``, ``images``) are ignored. Returns ``None``: the
        prompt and its image are already in the row.

        Raises:
            ConfigError: the row lacks the ``mapo_*`` columns, or was built for another env id.
        """
        missing = [key for key in ("mapo_index", "mapo_option_order") if key not in row]
        if missing:
            raise ConfigError(
                f"MapoToolEnv.reset needs the dataset columns {list(ROW_KEYS)}, missing {missing}; build the "
                "dataset with mapo_env.integrations.trl.make_dataset"
            )
        row_env = row.get("mapo_env_id")
        if row_env is not None and row_env != self._env_id:
            raise ConfigError(
                f"this dataset row was built for {row_env!r} but the environment is {self._env_id!r}; build the "
                "dataset and the factory with the same env id"
            )
        seed = row.get("mapo_seed")
        options = {"index": int(row["mapo_index"]), "option_order": [int(i) for i in row["mapo_option_order"]]}
        self._reset_args = (None if seed is None else int(seed), options)
        self._start()

    def image_zoom_in_tool(self, label: str, bbox_2d: list[float], image_index: int = 0) -> list | str:
        """Zoom in on a region of an image: crop it from the original full-resolution image and see it as a new image.

        Args:
            label: A short description of what you expect to see inside the box.
            bbox_2d: The box [x1, y1, x2, y2]: top-left and bottom-right corners, in pixels of the image you zoom into.
            image_index: Which image to zoom into: 0 is the full image, k the k-th crop.

        Returns:
            The crop as an image with a short note, or an error message saying how to fix the call.
        """
        if self._reset_args is None:
            raise ResetNeeded("MapoToolEnv.image_zoom_in_tool called before reset(); TRL resets it per rollout")
        if self._done:
            self._calls.append(None)
            return "Error: the episode has ended (no turns left); answer now."
        action = self._zoom_action(label, bbox_2d, image_index)
        self._calls.append(action)
        return self._step_zoom(action)

    # ------------------------------------------------------------------ for the rewards and trainers
    def _finish(self, completion: Sequence[Mapping[str, Any]]) -> EpisodeRecord:
        """See :func:`finish_episode` (private here: TRL would expose a public method as a tool)."""
        if self._record is not None:
            return self._record
        if self._reset_args is None:
            raise ResetNeeded("finish_episode called before MapoToolEnv.reset(); TRL resets it per rollout")
        seen = sum(
            1 for m in completion if m.get("role") == "tool" and m.get("name", ZOOM_TOOL_NAME) == ZOOM_TOOL_NAME
        )
        if seen < len(self._calls):  # TRL rolled back tool results the environment had already stepped
            self._replay(self._calls[:seen])
        answered = correct = False
        last = completion[-1] if completion else None
        if not self._done and last is not None and last.get("role") == "assistant" and not last.get("tool_calls"):
            _, reward, terminated, truncated, info = self._env.step(_message_text(last))
            self._return += float(reward)
            self._done = terminated or truncated
            answered = bool(terminated)
            correct = bool(info.get("correct"))
        self._record = EpisodeRecord(
            reward=self._return,
            correct=correct,
            answered=answered,
            tool_call_scores=list(self._scores),
            num_tool_calls=self._num_crops,
            truncated=not answered,
        )
        return self._record

    @property
    def record(self) -> EpisodeRecord | None:
        """The frozen record once :func:`finish_episode` ran this episode, else None."""
        return self._record

    @property
    def tool_call_scores(self) -> list[float | None]:
        """Per zoom call so far: its alignment score, or None for a failed call (a copy)."""
        return list(self._scores)

    @property
    def env_id(self) -> str:
        """The id of the wrapped environment."""
        return self._env_id

    @property
    def done(self) -> bool:
        """The episode has ended (answered, or out of turns)."""
        return self._done

    @property
    def env(self) -> gym.Env:
        """The wrapped Gymnasium environment."""
        return self._env

    # ------------------------------------------------------------------ internals
    def _start(self) -> None:
        seed, options = self._reset_args  # type: ignore[misc]
        self._env.reset(seed=seed, options=options)
        self._calls, self._scores = [], []
        self._return, self._num_crops, self._done, self._record = 0.0, 0, False, None

    def _zoom_action(self, label: Any, bbox: Any, image_index: Any) -> str:
        """The zoom as the model would have written it in the environment's dialect (a raw call if malformed)."""
        ok_box = (
            isinstance(bbox, (list, tuple))
            and len(bbox) == 4
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in bbox)
        )
        ok_index = isinstance(image_index, int) and not isinstance(image_index, bool) and image_index >= 0
        if ok_box and ok_index and isinstance(label, str):
            return self._base.dialect.format_tool_call(list(bbox), label=label, image_index=image_index, decimals=4)
        arguments = {"label": label, "bbox_2d": bbox, "image_index": image_index}
        return (
            "<tool_call>" + json.dumps({"name": ZOOM_TOOL_NAME, "arguments": arguments}, default=str) + "</tool_call>"
        )

    def _step_zoom(self, action: str) -> list | str:
        obs, reward, terminated, truncated, info = self._env.step(action)
        if info.get("tool_error") == ToolError.ALIGNMENT_ERROR.value:  # the turn was undone by the env
            self._calls[-1] = None
            return str(info.get("tool_message", "Error: the zoom could not be scored; try again."))
        self._return += float(reward)
        self._done = terminated or truncated
        note = _reply_text(obs["messages"][-1]) if obs["messages"][-1]["role"] != "assistant" else ""
        if info.get("tool_error") is not None:
            self._scores.append(None)
            return note or f"Error: {info['tool_error']}"
        self._scores.append(info.get("alignment"))
        self._num_crops += 1
        crop = Image.fromarray(np.ascontiguousarray(obs["images"][-1]))
        return [{"type": "image", "image": crop}, {"type": "text", "text": note}]

    def _replay(self, calls: Sequence[str | None]) -> None:
        """Rebuild the episode from the seeded reset and ``calls`` (deterministic env)."""
        self._start()
        for action in calls:
            if action is None or self._done:
                self._calls.append(None)
                continue
            self._calls.append(action)
            self._step_zoom(action)


def finish_episode(env: MapoToolEnv, completion: Sequence[Mapping[str, Any]]) -> EpisodeRecord:
    """Reconcile ``env`` with the rollout TRL kept, step its final answer, and freeze its :class:`EpisodeRecord`.

    TRL never sends the final turn to the environment, and may have rolled back zoom results that the
    environment already stepped (a result that would overflow ``max_completion_length``). This counts
    the zoom results left in ``completion``; if the environment stepped more, it replays the seeded
    reset and the kept calls; then, unless the episode already ended or the last turn is a tool call
    (TRL's ``max_tool_calling_iterations`` reached), it steps the last assistant turn's text (the
    answer). Idempotent: later calls in the same episode return the same record (the outcome and
    semantic reward functions both call it).

    Args:
        env: The rollout's environment.
        completion: The rollout's messages as TRL hands them to reward functions (assistant turns with
            ``tool_calls``, ``tool`` results, the final assistant turn).

    Raises:
        ResetNeeded: ``env`` was never reset.
    """
    return env._finish(completion)


def _message_text(message: Mapping[str, Any]) -> str:
    """The text of a chat message (string content, or the text parts of a list)."""
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(p.get("text", "")) for p in content if isinstance(p, Mapping))
    return ""


def _reply_text(message: Mapping[str, Any]) -> str:
    """The environment's reply text without its ``<tool_response>`` tags (the chat template adds its own)."""
    text = _message_text(message)
    return text.replace("<tool_response>", "").replace("</tool_response>", "").strip()


class MapoEnvFactory:
    """``environment_factory`` for TRL: each call returns a new :class:`MapoToolEnv` on ``env_id``.

    The first environment's alignment scorer is shared by every later one (a CLIP is loaded once,
    not once per rollout), unless ``env_kwargs`` already passes ``alignment``. A picklable callable,
    so it also works where a factory must cross processes.

    Args:
        env_id: A registered ``MAPO-*`` id.
        env_kwargs: Keyword arguments for ``gym.make``.
    """

    def __init__(self, env_id: str = "MAPO-Tiles-v0", env_kwargs: Mapping[str, Any] | None = None) -> None:
        self.env_id = env_id
        self.env_kwargs = dict(env_kwargs or {})

    def __call__(self) -> MapoToolEnv:
        """A new environment (sharing the scorer of the first one)."""
        env = MapoToolEnv(self.env_id, self.env_kwargs)
        if "alignment" not in self.env_kwargs:
            self.env_kwargs["alignment"] = env.env.unwrapped.scorer
        return env


# ----------------------------------------------------------------------------------------------
# rewards


def _environments(kwargs: Mapping[str, Any], completions: Sequence[Any], who: str) -> list[MapoToolEnv]:
    envs = kwargs.get("environments")
    if envs is None or len(envs) != len(completions) or not all(isinstance(e, MapoToolEnv) for e in envs):
        raise ConfigError(
            f"{who} reads each rollout's MapoToolEnv from TRL's environments= argument; pass "
            "environment_factory=MapoEnvFactory(env_id) to GRPOTrainer"
        )
    return list(envs)


def outcome_reward(completions: list[list[dict[str, Any]]], **kwargs: Any) -> list[float]:
    """TRL reward function: each rollout's episode return (it steps the final answer first).

    Call signature as TRL's reward functions: ``completions`` (one message list per rollout) and
    keyword columns, among them ``environments`` (the rollouts' :class:`MapoToolEnv`).

    Raises:
        ConfigError: TRL passed no :class:`MapoToolEnv` environments.
    """
    envs = _environments(kwargs, completions, "outcome_reward")
    return [finish_episode(env, c).reward for env, c in zip(envs, completions, strict=True)]


SemanticDirection = Literal["late", "early"]


def semantic_score(
    scores: Sequence[float | None],
    discount: float = 0.95,
    direction: SemanticDirection = "late",
    invalid_call_policy: Literal["zero", "skip"] = "zero",
) -> float | None:
    """MAPO's semantic score S = Σ_k w_k s_k / Σ_k w_k of one rollout (None when it has no scored turn).

    The same rule as :func:`mapo_agent.algorithms.advantages.semantic_scores`: ``w_k = λ^(K−k)``
    (``"late"``) or ``λ^(k−1)`` (``"early"``); a failed call (``None``) counts as s = 0
    (``"zero"``) or is dropped (``"skip"``).

    Example:
        >>> semantic_score([0.5, 1.0], discount=0.5)  # (0.5 * 0.5 + 1.0 * 1) / 1.5
        0.8333333333333334
        >>> semantic_score([]) is None
        True
    """
    if not 0 < discount <= 1:
        raise ConfigError(f"discount must be in (0, 1], got {discount!r}; 0.95 is MAPO's value, 1 = mean.")
    turns = [0.0 if s is None else float(s) for s in scores if s is not None or invalid_call_policy == "zero"]
    if not turns:
        return None
    count = len(turns)
    weights = [discount ** ((count - k) if direction == "late" else (k - 1)) for k in range(1, count + 1)]
    return sum(w * s for w, s in zip(weights, turns)) / sum(weights)


def make_semantic_reward(
    discount: float = 0.95,
    direction: SemanticDirection = "late",
    invalid_call_policy: Literal["zero", "skip"] = "zero",
) -> Callable[..., list[float | None]]:
    """A TRL reward function returning :func:`semantic_score` per rollout, ``None`` without a zoom.

    ``None`` leaves the rollout out of this reward's group statistics in TRL, which matches MAPO's
    default ``no_tool_policy="group_mean"``.
    """
    semantic_score([], discount, direction, invalid_call_policy)  # validates the settings now

    def semantic_reward(completions: list[list[dict[str, Any]]], **kwargs: Any) -> list[float | None]:
        envs = _environments(kwargs, completions, "semantic_reward")
        records = [finish_episode(env, c) for env, c in zip(envs, completions, strict=True)]
        return [semantic_score(r.tool_call_scores, discount, direction, invalid_call_policy) for r in records]

    return semantic_reward


semantic_reward = make_semantic_reward()
"""TRL reward function: MAPO's semantic score S per rollout (λ = 0.95, late turns weigh most), or None."""


# ----------------------------------------------------------------------------------------------
# dataset


def make_rows(
    env_id: str = "MAPO-Tiles-v0",
    num_questions: int = 64,
    seed: int = 0,
    env_kwargs: Mapping[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """Rows for TRL: one per question, each reproducing an environment reset.

    Each row has ``prompt`` (the environment's system message and question, as strings), ``images``
    (the full view the environment shows, as a PIL image), the ``mapo_*`` columns
    :meth:`MapoToolEnv.reset` reads (:data:`ROW_KEYS`), and for evaluation ``mapo_options`` (the
    options as shown) and ``mapo_answer`` (the correct letter; the model never sees these columns).
    Question ``i`` is reset with seed ``seed + i``.

    Raises:
        ConfigError: ``num_questions`` is not a positive int.
    """
    import mapo_env  # noqa: F401  (registers the MAPO-* ids)

    if not isinstance(num_questions, int) or isinstance(num_questions, bool) or num_questions < 1:
        raise ConfigError(f"num_questions must be an int >= 1, got {num_questions!r}")
    env = gym.make(env_id, **dict(env_kwargs or {}))
    rows = []
    try:
        for i in range(num_questions):
            obs, info = env.reset(seed=seed + i)
            options = list(info["options"])
            sample = env.unwrapped.current_sample
            order = [list(sample.options).index(o) for o in options]
            letter = info["option_letters"][env.unwrapped.shown_answer_index]
            prompt = [
                {"role": m["role"], "content": _message_text(m)}
                for m in obs["messages"]
                if m["role"] in ("system", "user")
            ]
            rows.append(
                {
                    "prompt": prompt,
                    "images": [Image.fromarray(np.ascontiguousarray(obs["images"][0]))],
                    "mapo_env_id": env_id,
                    "mapo_index": int(info["sample_index"]),
                    "mapo_seed": seed + i,
                    "mapo_option_order": order,
                    "mapo_options": options,
                    "mapo_answer": letter,
                }
            )
    finally:
        env.close()
    return rows


def make_dataset(
    env_id: str = "MAPO-Tiles-v0",
    num_questions: int = 64,
    seed: int = 0,
    env_kwargs: Mapping[str, Any] | None = None,
) -> Any:
    """:func:`make_rows` as a ``datasets.Dataset`` (the ``train_dataset`` of ``GRPOTrainer``).

    Raises:
        DependencyNotInstalled: ``datasets`` (installed with TRL) is missing.
    """
    datasets = _require("datasets")
    return datasets.Dataset.from_list(make_rows(env_id, num_questions, seed, env_kwargs))
