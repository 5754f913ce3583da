"""MAPO ("Walk the Talk", arXiv 2604.06777): GRPO's loss with the alignment-coupled advantage.

The only change from GRPO is the estimator (``mapo``, see
:func:`mapo_agent.algorithms.advantages.compute_mapo_advantage`): the model's description of each
crop is scored against the crop by the environment (``info["alignment"]``, collected into
``Trajectory.alignment_scores``), the scores are λ-discounted over turns into S_i, and the
group-normalised S is coupled with the group-normalised task reward (β = 0.4). Its settings live in
``config.advantage`` (:class:`~mapo_agent.algorithms.advantages.AdvantageConfig`).

Extra ``rollout/*`` metrics (ALGORITHMS.md §1.10): the mean semantic score, the fraction of
rollouts without a scored tool turn, and the fraction where the semantic term outweighs the
outcome term (|β·A_sem| > |A_out|).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from mapo_agent.algorithms.advantages import mapo_components
from mapo_agent.algorithms.base import ALGORITHMS
from mapo_agent.algorithms.grpo import GRPO, GRPOConfig
from mapo_agent.types import AdvantageInput


@dataclass
class MAPOConfig(GRPOConfig):
    """GRPO config with the ``mapo`` estimator (see :class:`GRPOConfig`; MAPO knobs in ``advantage``)."""

    advantage_estimator: str = "mapo"


@ALGORITHMS.register("mapo")
class MAPO(GRPO):
    """Multimodal Agentic Policy Optimization: PPO-clip on outcome + description-alignment advantages."""

    config_class = MAPOConfig
    config: MAPOConfig

    def rollout_metrics(self, inp: AdvantageInput, advantages: torch.Tensor) -> dict[str, float]:
        """GRPO's rollout metrics plus semantic-score statistics (when the estimator is ``mapo``)."""
        metrics = super().rollout_metrics(inp, advantages)
        if inp.rewards.numel() == 0 or self.config.advantage_estimator != "mapo":
            return metrics
        parts = mapo_components(inp, self.config.advantage)
        beta = self.config.advantage.semantic_coef
        dominant = (beta * parts.semantic_advantage.abs() > parts.outcome_advantage.abs()) & parts.valid
        metrics.update(
            {
                "rollout/semantic_score_mean": float(parts.semantic_score[parts.has_tool].mean().item())
                if bool(parts.has_tool.any())
                else 0.0,
                "rollout/no_tool_frac": float((~parts.has_tool).float().mean().item()),
                "rollout/semantic_dominant_frac": float(dominant.float().mean().item()),
            }
        )
        return metrics
