"""MAPO's exact advantage inside TRL: ``MapoGRPOTrainer``, and a processor that needs no torchvision.

Install with ``pip install "mapo-gym[trl]"`` (``scripts/install_trl.sh`` keeps the installed torch).
This module imports TRL at import time: import it only when you train with TRL.

TRL's ``GRPOTrainer`` has no advantage hook: it turns rewards into advantages inline. The near form
of MAPO needs no code (two reward functions, ``reward_weights=[1, β]``,
``multi_objective_aggregation="normalize_then_sum"``; see :mod:`mapo_env.integrations.trl`), but it
normalises the summed advantage once more over the batch and cannot express MAPO's other settings.
:class:`MapoGRPOTrainer` overrides the one method that produces the batch and replaces TRL's
``advantages`` with :func:`mapo_agent.algorithms.advantages.compute_mapo_advantage` (or any registered
estimator) on the episodes the rollouts left in their :class:`~mapo_env.integrations.trl.MapoToolEnv`.
Everything else (generation, the tool loop, the loss, KL, logging) is TRL's.

Example::

    from mapo_agent.integrations.trl import MapoGRPOTrainer, load_processor
    from mapo_env.integrations.trl import MapoEnvFactory, make_dataset

    trainer = MapoGRPOTrainer(
        model=model_path,
        processing_class=load_processor(model_path),
        args=GRPOConfig(...),
        train_dataset=make_dataset("MAPO-Tiles-v0"),
        environment_factory=MapoEnvFactory("MAPO-Tiles-v0"),
    )
    trainer.train()
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from mapo_agent.algorithms.advantages import ADVANTAGE_ESTIMATORS, AdvantageConfig
from mapo_agent.integrations.processor import QwenVLImageProcessor, load_image_processor
from mapo_agent.types import AdvantageInput
from mapo_env.errors import ConfigError, DependencyNotInstalled
from mapo_env.integrations.trl import (
    INSTALL_HINT,
    EpisodeRecord,
    MapoToolEnv,
    outcome_reward,
    semantic_reward,
    use_tool_chat_template,
)

try:
    from accelerate.utils import gather_object
    from trl import GRPOTrainer
except ImportError as err:  # pragma: no cover - exercised only without the extra
    raise DependencyNotInstalled(f"mapo_agent.integrations.trl needs TRL; run: {INSTALL_HINT}") from err

logger = logging.getLogger(__name__)


def load_processor(model_path: str | Path) -> QwenVLImageProcessor:
    """The image-only Qwen2.5-VL processor of a checkpoint, with the tool template and TRL's tool-call parser.

    :func:`mapo_agent.integrations.processor.load_image_processor` (no torchvision needed), then
    :func:`~mapo_env.integrations.trl.use_tool_chat_template`.

    Args:
        model_path: A Qwen2-VL / Qwen2.5-VL checkpoint folder or hub id (e.g.
            ``mapo_agent.policy.tiny.bundled_model_path()``).

    Raises:
        ConfigError: not a Qwen2-VL / Qwen2.5-VL checkpoint.
    """
    return use_tool_chat_template(load_image_processor(model_path))


@dataclass
class MapoBatch:
    """The last batch's advantage computation (for logging and tests).

    Attributes:
        inputs: What the estimator read, gathered over all processes (B = global batch).
        advantages: (B,) the estimator's output; this process trained on ``advantages[process_slice]``.
        records: The episodes behind ``inputs``, in the same order.
    """

    inputs: AdvantageInput
    advantages: torch.Tensor
    records: list[EpisodeRecord]


class MapoGRPOTrainer(GRPOTrainer):
    """TRL's ``GRPOTrainer`` with MAPO's advantage (or any registered estimator) in place of TRL's.

    The only change w.r.t. ``GRPOTrainer`` is in ``_generate_and_score_completions``: after TRL has
    generated, run the tools and called the reward functions (``outcome_reward`` steps each answer),
    the episodes' returns and per-call alignment scores are gathered over all processes, grouped by
    prompt (TRL lays a group's ``num_generations`` rollouts out consecutively), and passed to the
    estimator; its output replaces ``advantages`` before the loss sees it. TRL's reward functions and
    ``reward_weights`` then only feed its logs.

    Args:
        *args: As ``GRPOTrainer``.
        advantage_config: The estimator's settings (β = ``semantic_coef``, λ = ``discount``, ...);
            default :class:`~mapo_agent.algorithms.advantages.AdvantageConfig`.
        advantage_estimator: A key of ``ADVANTAGE_ESTIMATORS`` (default ``"mapo"``).
        **kwargs: As ``GRPOTrainer``. ``reward_funcs`` defaults to
            ``[outcome_reward, semantic_reward]`` and must contain ``outcome_reward``;
            ``environment_factory`` is required and must build ``MapoToolEnv`` environments.

    Attributes:
        last_batch: The last :class:`MapoBatch` (None before the first).

    Raises:
        ConfigError: no ``environment_factory``, ``reward_funcs`` without ``outcome_reward``, or a batch
            whose environments are not ``MapoToolEnv``.
        UnknownNameError: ``advantage_estimator`` names no registered estimator.
    """

    def __init__(
        self,
        *args: Any,
        advantage_config: AdvantageConfig | None = None,
        advantage_estimator: str = "mapo",
        **kwargs: Any,
    ) -> None:
        self.advantage_estimator = ADVANTAGE_ESTIMATORS.get(advantage_estimator)
        self.advantage_estimator_name = advantage_estimator
        self.advantage_config = advantage_config if advantage_config is not None else AdvantageConfig()
        if kwargs.get("environment_factory") is None:
            raise ConfigError(
                "MapoGRPOTrainer reads each rollout's episode from its environment; pass "
                "environment_factory=mapo_env.integrations.trl.MapoEnvFactory(env_id)"
            )
        funcs = kwargs.get("reward_funcs", args[1] if len(args) > 1 else None)
        if funcs is None:
            kwargs["reward_funcs"] = [outcome_reward, semantic_reward]
        elif not any(f is outcome_reward for f in (funcs if isinstance(funcs, list) else [funcs])):
            raise ConfigError(
                "MapoGRPOTrainer needs mapo_env.integrations.trl.outcome_reward among reward_funcs (it steps each "
                "rollout's final answer); leave reward_funcs out for [outcome_reward, semantic_reward]"
            )
        super().__init__(*args, **kwargs)
        self.last_batch: MapoBatch | None = None

    def _generate_and_score_completions(self, inputs: list[dict[str, Any]]) -> dict[str, Any]:
        """TRL's batch, with ``advantages`` recomputed by the MAPO estimator (see the class docstring)."""
        output = super()._generate_and_score_completions(inputs)
        envs = self.environments or []
        if len(envs) != len(inputs) or not all(isinstance(e, MapoToolEnv) for e in envs):
            raise ConfigError(
                "MapoGRPOTrainer needs one MapoToolEnv per rollout; build environment_factory with "
                "mapo_env.integrations.trl.MapoEnvFactory"
            )
        unfinished = [i for i, env in enumerate(envs) if env.record is None]
        if unfinished:
            raise ConfigError(
                f"{len(unfinished)} rollouts were never finished by outcome_reward; keep "
                "mapo_env.integrations.trl.outcome_reward among reward_funcs"
            )
        mask = output["completion_mask"]
        if "tool_mask" in output:
            mask = mask * output["tool_mask"]
        local = [(env.record, int(n)) for env, n in zip(envs, mask.sum(dim=1).tolist(), strict=True)]
        gathered = gather_object(local)
        records = [r for r, _ in gathered]
        group_size = self.num_generations if self.model.training else self.num_generations_eval
        inp = AdvantageInput(
            rewards=torch.tensor([r.reward for r in records], dtype=torch.float32),
            group_ids=torch.arange(len(records), dtype=torch.long) // group_size,
            correct=torch.tensor([r.correct for r in records], dtype=torch.bool),
            alignment_scores=[list(r.tool_call_scores) for r in records],
            num_tool_calls=torch.tensor([r.num_tool_calls for r in records], dtype=torch.long),
            response_lengths=torch.tensor([n for _, n in gathered], dtype=torch.long),
            truncated=torch.tensor([r.truncated for r in records], dtype=torch.bool),
        )
        advantages = self.advantage_estimator(inp, self.advantage_config)  # (B,) global
        start = self.accelerator.process_index * len(inputs)
        output["advantages"] = advantages[start : start + len(inputs)].to(output["advantages"].device)
        self.last_batch = MapoBatch(inp, advantages, records)
        self._log_mapo_metrics(inp, advantages)
        return output

    def _log_mapo_metrics(self, inp: AdvantageInput, advantages: torch.Tensor) -> None:
        mode = "train" if self.model.training else "eval"
        scored = [s for row in inp.alignment_scores for s in row if s is not None]
        metrics = {
            "mapo/advantage_abs_mean": advantages.abs().mean().item(),
            "mapo/tool_use_frac": float((inp.num_tool_calls > 0).float().mean().item()),
            "mapo/alignment_mean": sum(scored) / len(scored) if scored else 0.0,
            "mapo/correct_frac": float(inp.correct.float().mean().item()),
        }
        for key, value in metrics.items():
            self._metrics[mode][key].append(value)
