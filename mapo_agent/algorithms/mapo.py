"""MAPO ("Walk the Talk", arXiv 2604.06777): GRPO with the alignment-coupled advantage.

The paper changes the advantage only (§3: "a novel advantage estimation that couples the semantic
alignment between these descriptions and the actual observations with the task reward", with
"group advantage estimation"), so MAPO here is :class:`~mapo_agent.algorithms.grpo.GRPO` — the same
loss at GRPO's paper defaults (arXiv 2402.03300 Eq. 3: per-sequence length mean, symmetric clip 0.2,
k3 KL to the reference at 0.04) — with the ``mapo`` estimator
(:func:`mapo_agent.algorithms.advantages.compute_mapo_advantage`), so that MAPO vs GRPO isolates the
advantage. The model's description of each crop is scored against the crop by the environment's
image-text verifier (``info["alignment"]``, collected into ``Trajectory.tool_call_scores``); its
settings live in ``config.advantage``.

No silent degradation: every batch logs ``rollout/semantic_usable_frac`` (rollouts with at least
one scored tool call) and ``rollout/semantic_all_zero`` (1 when no rollout's semantic advantage is
non-zero, i.e. MAPO's update equals GRPO's on that batch); the first such batch, and then every
``warn_every``-th, is reported with a warning that says why (no tool call scored, or equal scores).

Extra ``rollout/*`` metrics (MAPO risks to watch): the mean semantic score, the fraction of
rollouts without a scored tool call, and the fraction where the semantic term outweighs the
outcome term (|β·A_sem| > |A_out|).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch

from mapo_agent.algorithms.advantages import mapo_components
from mapo_agent.algorithms.base import ALGORITHMS
from mapo_agent.algorithms.grpo import GRPO, GRPOConfig
from mapo_agent.types import AdvantageInput

logger = logging.getLogger(__name__)


@dataclass
class MAPOConfig(GRPOConfig):
    """GRPO config with the ``mapo`` estimator (see :class:`GRPOConfig`; MAPO knobs in ``advantage``)."""

    advantage_estimator: str = "mapo"


@ALGORITHMS.register("mapo")
class MAPO(GRPO):
    """Multimodal Agentic Policy Optimization: PPO-clip on outcome + description-alignment advantages."""

    config_class = MAPOConfig
    config: MAPOConfig
    warn_every = 50
    """After the first all-zero semantic batch, warn again every this many such batches."""

    def __init__(self, config: MAPOConfig | None = None) -> None:
        super().__init__(config)
        self._all_zero_batches = 0

    def rollout_metrics(self, inp: AdvantageInput, advantages: torch.Tensor) -> dict[str, float]:
        """GRPO's rollout metrics plus semantic-score statistics (when the estimator is ``mapo``)."""
        metrics = super().rollout_metrics(inp, advantages)
        if inp.rewards.numel() == 0 or self.config.advantage_estimator != "mapo":
            return metrics
        parts = mapo_components(inp, self.config.advantage)
        beta = self.config.advantage.semantic_coef
        dominant = (beta * parts.semantic_advantage.abs() > parts.outcome_advantage.abs()) & parts.valid
        usable = parts.has_tool & parts.valid
        all_zero = not bool((parts.semantic_advantage != 0).any())
        if all_zero:
            self._warn_all_zero(int(usable.sum()), inp.rewards.numel())
        metrics.update(
            {
                "rollout/semantic_score_mean": float(parts.semantic_score[usable].mean().item())
                if bool(usable.any())
                else 0.0,
                "rollout/semantic_usable_frac": float(usable.double().mean().item()),
                "rollout/semantic_all_zero": float(all_zero),
                "rollout/no_tool_frac": float((~parts.has_tool).float().mean().item()),
                "rollout/semantic_dominant_frac": float(dominant.float().mean().item()),
            }
        )
        return metrics

    def _warn_all_zero(self, usable: int, total: int) -> None:
        self._all_zero_batches += 1
        if (self._all_zero_batches - 1) % self.warn_every:
            return
        reason = (
            "no rollout has a scored tool call (no zoom, failed zooms skipped, or an environment without an "
            "alignment scorer)"
            if usable == 0
            else f"the {usable} rollouts with a scored tool call have equal semantic scores within each group"
        )
        logger.warning(
            "MAPO's semantic advantage is zero on every one of the %d rollouts of this batch (%s): this update "
            "equals GRPO's. Check the environment's alignment scorer (info['alignment']). [%d such batch(es) so far]",
            total,
            reason,
            self._all_zero_batches,
        )
