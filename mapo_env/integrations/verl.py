"""MAPO environments inside verl's agent loop: the zoom ``BaseTool``, ``compute_score``, dataset rows.

Install with ``pip install "mapo-gym[verl]"`` (``scripts/install_verl.sh`` keeps the installed torch).
Importing this module imports neither verl nor torch: :class:`MapoZoomTool` (a subclass of verl's
``BaseTool``) is built on first access, which is how verl's tool registry reaches it
(``class_name: mapo_env.integrations.verl.MapoZoomTool`` in the tool config). The guide, with the
YAML of a multi-GPU run, is ``docs/integrations.md`` and ``configs/verl/``.

- :class:`MapoZoomTool` is the zoom tool (``image_zoom_in_tool``, the DeepEyes name and schema).
  verl's ``ToolAgentLoop`` creates, executes and releases a tool *instance* per call, so the
  episode lives in the tool, keyed by the trajectory's request id (``agent_data.request_id``): the
  first call of a trajectory resets a ``MAPO-*`` environment from the row's ``create_kwargs``
  (:func:`make_rows` writes them), later calls step the same episode (nested zooms on earlier crops
  work). Each call returns ``ToolResponse(image=[crop], text=note)`` and the label's alignment with
  the crop as the tool reward; verl hands the list of tool rewards to ``compute_score`` as
  ``extra_info["tool_rewards"]``.
- :func:`compute_score` grades the final ``<answer>`` against the row's ground truth (the final turn
  never reaches the tool) and returns ``{"score", "outcome", "semantic"}``: the environment's reward
  terms, and MAPO's semantic score S over the tool rewards. ``algorithm.adv_estimator=gdpo`` with
  ``gdpo_reward_keys=[outcome, semantic]`` and weights ``[1, β]`` is MAPO's near form with no patch;
  the exact ``mapo`` estimator is :mod:`mapo_agent.integrations.verl`.
"""

from __future__ import annotations

import io
import re
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any

from mapo_env.actions import ZOOM_TOOL_NAME
from mapo_env.answers import grade_answer, option_letters
from mapo_env.errors import ConfigError, DependencyNotInstalled
from mapo_env.integrations.trl import MapoEnvFactory, MapoToolEnv, semantic_score
from mapo_env.integrations.trl import make_rows as make_trl_rows
from mapo_env.prompts import zoom_tool_schema

INSTALL_HINT = 'pip install "mapo-gym[verl]"  (or: bash scripts/install_verl.sh, which keeps your torch)'
"""How to install what this module needs."""

DEFAULT_MAX_EPISODES = 4096
"""Episodes a :class:`MapoZoomTool` keeps at once (the oldest is dropped, its environment reused)."""

_ANSWER_RE = re.compile(r"<answer>(.*?)</answer>", re.IGNORECASE | re.DOTALL)


def zoom_schema(coords: str = "pixel") -> dict[str, Any]:
    """The zoom tool in OpenAI function format (what verl renders into the system prompt)."""
    return zoom_tool_schema(coords, label_required=True)  # type: ignore[arg-type]


# ----------------------------------------------------------------------------------------------
# the tool (built lazily: it subclasses verl's BaseTool)


class ZoomEpisodes:
    """Per-trajectory episodes of one tool, keyed by request id (the verl-free half of the tool).

    Args:
        env_id: A registered ``MAPO-*`` id; a row's ``create_kwargs`` may name another (``env_id``).
        env_kwargs: Keyword arguments for ``gym.make``.
        max_episodes: Episodes kept at once; the least recently used one is dropped (its environment
            is reused for the next trajectory).
    """

    def __init__(
        self,
        env_id: str = "MAPO-Tiles-v0",
        env_kwargs: Mapping[str, Any] | None = None,
        max_episodes: int = DEFAULT_MAX_EPISODES,
    ) -> None:
        if not isinstance(max_episodes, int) or isinstance(max_episodes, bool) or max_episodes < 1:
            raise ConfigError(f"max_episodes must be an int >= 1, got {max_episodes!r}")
        self.env_id = env_id
        self.max_episodes = max_episodes
        self._factories: dict[str, MapoEnvFactory] = {env_id: MapoEnvFactory(env_id, env_kwargs)}
        self._env_kwargs = dict(env_kwargs or {})
        self._episodes: OrderedDict[str, MapoToolEnv] = OrderedDict()
        self._spare: dict[str, list[MapoToolEnv]] = {}

    def get(self, key: str, create_kwargs: Mapping[str, Any]) -> MapoToolEnv:
        """The episode of trajectory ``key``, reset from ``create_kwargs`` on its first call.

        Raises:
            ConfigError: ``create_kwargs`` lacks ``index`` / ``option_order`` (see :func:`make_rows`).
        """
        env = self._episodes.get(key)
        if env is not None:
            self._episodes.move_to_end(key)
            return env
        env_id = str(create_kwargs.get("env_id", self.env_id))
        missing = [k for k in ("index", "option_order") if k not in create_kwargs]
        if missing:
            raise ConfigError(
                f"the zoom tool's create_kwargs lack {missing}; build the rows with "
                "mapo_env.integrations.verl.make_rows (extra_info.tools_kwargs.image_zoom_in_tool.create_kwargs)"
            )
        while len(self._episodes) >= self.max_episodes:  # make room first, so the oldest env is reused
            _, old = self._episodes.popitem(last=False)
            self._spare.setdefault(old.env_id, []).append(old)
        env = self._take(env_id)
        env.reset(
            mapo_env_id=env_id,
            mapo_index=create_kwargs["index"],
            mapo_option_order=create_kwargs["option_order"],
            mapo_seed=create_kwargs.get("seed"),
        )
        self._episodes[key] = env
        return env

    def release(self, key: str) -> None:
        """Drop trajectory ``key``'s episode now (optional: old episodes are dropped anyway)."""
        env = self._episodes.pop(key, None)
        if env is not None:
            self._spare.setdefault(env.env_id, []).append(env)

    def __len__(self) -> int:
        return len(self._episodes)

    def _take(self, env_id: str) -> MapoToolEnv:
        spare = self._spare.get(env_id)
        if spare:
            return spare.pop()
        if env_id not in self._factories:
            self._factories[env_id] = MapoEnvFactory(env_id, self._env_kwargs)
        return self._factories[env_id]()


def zoom(env: MapoToolEnv, parameters: Mapping[str, Any]) -> tuple[Any | None, str, float, dict[str, Any]]:
    """One zoom call on ``env`` from verl's parsed arguments: ``(crop or None, text, reward, metrics)``.

    The reward is the label's alignment with the crop (0 for a failed call, as MAPO's
    ``invalid_call_policy="zero"`` counts it). Never raises on bad arguments: they become the
    environment's corrective message.
    """
    if not isinstance(parameters, Mapping):
        parameters = {}
    result = env.image_zoom_in_tool(
        label=parameters.get("label"),  # type: ignore[arg-type]
        bbox_2d=parameters.get("bbox_2d"),  # type: ignore[arg-type]
        image_index=parameters.get("image_index", 0),
    )
    scores = env.tool_call_scores
    alignment = scores[-1] if scores else None
    metrics = {"alignment": alignment, "failed": alignment is None}
    if isinstance(result, list):
        return result[0]["image"], str(result[1]["text"]), float(alignment or 0.0), metrics
    return None, result, 0.0, metrics


_TOOL_CLASS: type | None = None


def _build_tool_class() -> type:
    try:
        from verl.tools.base_tool import BaseTool
        from verl.tools.schemas import OpenAIFunctionToolSchema, ToolResponse
    except ImportError as err:
        raise DependencyNotInstalled(f"MapoZoomTool needs verl; run: {INSTALL_HINT}") from err

    class MapoZoomTool(BaseTool):
        """verl ``BaseTool``: the MAPO zoom over a ``MAPO-*`` environment (one episode per trajectory).

        Tool config (``config:`` in verl's tool YAML): ``type: native``, ``env_id`` (default
        ``"MAPO-Tiles-v0"``), ``env_kwargs`` (for ``gym.make``), ``max_episodes``
        (:data:`DEFAULT_MAX_EPISODES`), ``coords`` (the schema's wording, default ``"pixel"``). Rows
        pass ``create_kwargs`` (``env_id``, ``index``, ``option_order``, ``seed``) through
        ``extra_info.tools_kwargs.image_zoom_in_tool``; :func:`make_rows` writes them.

        ``execute`` returns ``(ToolResponse(image=[crop], text=note), alignment, metrics)``, or the
        environment's corrective message with reward 0 for a failed call. The trajectory is
        identified by ``agent_data.request_id`` (verl's ``ToolAgentLoop`` passes ``agent_data``), else
        by ``create_kwargs["trajectory_id"]``.
        """

        def __init__(self, config: dict, tool_schema: Any = None) -> None:
            config = dict(config or {})
            self._coords = str(config.get("coords", "pixel"))
            self.episodes = ZoomEpisodes(
                str(config.get("env_id", "MAPO-Tiles-v0")),
                config.get("env_kwargs") or {},
                int(config.get("max_episodes", DEFAULT_MAX_EPISODES)),
            )
            self._create_kwargs: dict[str, dict[str, Any]] = {}
            super().__init__(config, tool_schema)

        def get_openai_tool_schema(self) -> Any:
            """The DeepEyes zoom schema (``label``, ``bbox_2d``, ``image_index``)."""
            schema = getattr(self, "tool_schema", None)
            return schema or OpenAIFunctionToolSchema.model_validate(zoom_schema(self._coords))

        async def create(self, instance_id: str | None = None, **kwargs: Any) -> tuple[str, Any]:
            """Register a call instance and remember the row's ``create_kwargs``."""
            instance_id, response = await super().create(instance_id)
            self._create_kwargs[instance_id] = dict(kwargs.get("create_kwargs") or {})
            return instance_id, response

        async def execute(
            self, instance_id: str, parameters: dict[str, Any], **kwargs: Any
        ) -> tuple[Any, float, dict[str, Any]]:
            """Zoom in the trajectory's episode; see the class docstring."""
            create_kwargs = self._create_kwargs.get(instance_id, {})
            agent_data = kwargs.get("agent_data")
            key = getattr(agent_data, "request_id", None) or create_kwargs.get("trajectory_id") or instance_id
            env = self.episodes.get(str(key), create_kwargs)
            crop, text, reward, metrics = zoom(env, parameters)
            response = ToolResponse(image=[crop], text=text) if crop is not None else ToolResponse(text=text)
            return response, reward, metrics

        async def release(self, instance_id: str, **kwargs: Any) -> None:
            """Forget the call instance (the trajectory's episode stays until it is the oldest)."""
            self._create_kwargs.pop(instance_id, None)

    MapoZoomTool.__module__ = __name__
    return MapoZoomTool


def __getattr__(name: str) -> Any:
    """Build :class:`MapoZoomTool` on first access (it needs verl)."""
    global _TOOL_CLASS
    if name == "MapoZoomTool":
        if _TOOL_CLASS is None:
            _TOOL_CLASS = _build_tool_class()
        return _TOOL_CLASS
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# ----------------------------------------------------------------------------------------------
# reward


def final_answer(solution_str: str) -> str | None:
    """The text of the last ``<answer>...</answer>`` in a response, or None."""
    found = _ANSWER_RE.findall(solution_str or "")
    return found[-1].strip() if found else None


def compute_score(
    data_source: str,
    solution_str: str,
    ground_truth: str,
    extra_info: Mapping[str, Any] | None = None,
    *,
    correct_reward: float = 1.0,
    format_reward: float = 0.1,
    tool_bonus: float = 0.1,
    semantic_coef: float = 0.0,
    discount: float = 0.95,
    **kwargs: Any,
) -> dict[str, float]:
    """Verl reward function: ``{"score", "outcome", "semantic", "correct", "num_zooms"}`` for one response.

    ``outcome`` uses the environment's reward terms: ``correct_reward·correct +
    format_reward·answered + tool_bonus·(correct and zoomed)``, where ``answered`` means an
    ``<answer>`` block was found (the environment also checks every turn's format; verl's transcript
    does not say which tool calls failed). ``semantic`` is MAPO's S over ``extra_info["tool_rewards"]``
    (the alignment of each zoom, 0 for a failed one; λ = ``discount``), 0 without a zoom. ``score``
    = ``outcome + semantic_coef·semantic`` (``semantic_coef=0``: the task reward, for ``grpo``;
    ``gdpo`` and ``mapo`` read ``outcome`` and ``semantic`` themselves). Set the keywords through
    ``reward.custom_reward_function.reward_kwargs``.

    Args:
        data_source: The row's ``data_source`` (the env id; not read).
        solution_str: The decoded response (all turns).
        ground_truth: The correct option's letter as shown (``reward_model.ground_truth``).
        extra_info: The row's ``extra_info`` (``options``: the options as shown) plus verl's
            ``tool_rewards``.
        correct_reward: Reward for a right answer.
        format_reward: Reward for giving an ``<answer>``.
        tool_bonus: Extra reward for a right answer after at least one zoom.
        semantic_coef: β in ``score``.
        discount: MAPO's λ over zoom turns.
        **kwargs: Ignored (verl passes reward-model handles).

    Raises:
        ConfigError: ``extra_info`` has no ``options`` (rows not built with :func:`make_rows`).
    """
    info = dict(extra_info or {})
    options = info.get("options")
    if options is None:
        raise ConfigError(
            "compute_score needs extra_info['options'] (the options as shown); build the rows with make_rows"
        )
    options = [str(o) for o in options]
    rewards = [float(r) for r in (info.get("tool_rewards") or [])]
    answer = final_answer(solution_str)
    index, _ = grade_answer(answer, tuple(options)) if answer is not None else (None, "none")
    letters = list(option_letters(len(options)))
    truth = str(ground_truth).strip().upper()
    correct = index is not None and truth in letters and index == letters.index(truth)
    zoomed = len(rewards) > 0
    outcome = correct_reward * correct + format_reward * (answer is not None) + tool_bonus * (correct and zoomed)
    semantic = semantic_score(rewards, discount) if zoomed else 0.0
    return {
        "score": float(outcome + semantic_coef * (semantic or 0.0)),
        "outcome": float(outcome),
        "semantic": float(semantic or 0.0),
        "correct": float(correct),
        "num_zooms": float(len(rewards)),
    }


# ----------------------------------------------------------------------------------------------
# dataset


def make_rows(
    env_id: str = "MAPO-Tiles-v0",
    num_questions: int = 64,
    seed: int = 0,
    env_kwargs: Mapping[str, Any] | None = None,
    split: str = "train",
) -> list[dict[str, Any]]:
    """Rows in verl's RLHF dataset format (multimodal, tool agent), one per question.

    Each row has ``data_source`` (the env id), ``prompt`` (system message and ``<image>`` + question),
    ``images`` (the full view as PNG bytes), ``ability``, ``reward_model`` (``ground_truth``: the
    correct letter as shown), ``agent_name`` (``"tool_agent"``) and ``extra_info`` with the shown
    ``options``, ``index``/``split`` and ``tools_kwargs.image_zoom_in_tool.create_kwargs`` (env id,
    question index, option order, seed) that :class:`MapoZoomTool` resets the episode from. Save them
    with :func:`save_parquet`.
    """
    rows = []
    for i, row in enumerate(make_trl_rows(env_id, num_questions, seed, env_kwargs)):
        buffer = io.BytesIO()
        row["images"][0].save(buffer, format="PNG")
        messages = [dict(m) for m in row["prompt"]]
        messages[-1]["content"] = "<image>" + messages[-1]["content"]
        create_kwargs = {
            "env_id": env_id,
            "index": row["mapo_index"],
            "option_order": row["mapo_option_order"],
            "seed": row["mapo_seed"],
        }
        rows.append(
            {
                "data_source": env_id,
                "prompt": messages,
                "images": [{"bytes": buffer.getvalue()}],
                "ability": "visual_search",
                "reward_model": {"style": "rule", "ground_truth": row["mapo_answer"]},
                "agent_name": "tool_agent",
                "extra_info": {
                    "split": split,
                    "index": i,
                    "options": list(row["mapo_options"]),
                    "need_tools_kwargs": True,
                    "tools_kwargs": {ZOOM_TOOL_NAME: {"create_kwargs": create_kwargs}},
                },
            }
        )
    return rows


def save_parquet(rows: Sequence[Mapping[str, Any]], path: str) -> None:
    """Write :func:`make_rows` output as the parquet file verl's ``data.train_files`` reads.

    Raises:
        DependencyNotInstalled: pandas / pyarrow (verl's dependencies) are missing.
    """
    try:
        import pandas as pd
    except ImportError as err:
        raise DependencyNotInstalled(f"save_parquet needs pandas and pyarrow; run: {INSTALL_HINT}") from err
    pd.DataFrame(list(rows)).to_parquet(path)
