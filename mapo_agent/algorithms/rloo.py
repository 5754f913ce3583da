"""RLOO (REINFORCE Leave-One-Out; Ahmadian et al., arXiv 2402.14740) with the shared PPO-clip loss.

Only the advantage changes: A_i = R_i − mean_{j≠i} R_j over the rollouts of the same question
(estimator ``rloo``, the paper's Eq. 7). The loss is a token-mean PPO-clip (0.2 / 0.28) without a
KL term, which reduces to REINFORCE with one update per batch (ratio 1): the project's RLOO as it
has always been, kept as is (its defaults are pinned here, not inherited from GRPO's).
"""

from __future__ import annotations

from dataclasses import dataclass

from mapo_agent.algorithms.base import ALGORITHMS
from mapo_agent.algorithms.grpo import GRPO, GRPOConfig
from mapo_agent.algorithms.losses import LossAggMode


@dataclass
class RLOOConfig(GRPOConfig):
    """GRPO config with the leave-one-out estimator (see :class:`GRPOConfig` for every field)."""

    advantage_estimator: str = "rloo"
    loss_agg_mode: LossAggMode = "token-mean"
    clip_high: float = 0.28
    kl_coef: float = 0.0


@ALGORITHMS.register("rloo")
class RLOO(GRPO):
    """REINFORCE with a leave-one-out group baseline."""

    config_class = RLOOConfig
    config: RLOOConfig
