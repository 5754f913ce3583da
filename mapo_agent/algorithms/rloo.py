"""RLOO (REINFORCE Leave-One-Out; Ahmadian et al., arXiv 2402.14740) with the shared PPO-clip loss.

Only the advantage changes: A_i = R_i − mean_{j≠i} R_j over the rollouts of the same question
(estimator ``rloo``). The loss is GRPO's token-mean PPO-clip, which reduces to REINFORCE with one
update per batch (ratio 1).
"""

from __future__ import annotations

from dataclasses import dataclass

from mapo_agent.algorithms.base import ALGORITHMS
from mapo_agent.algorithms.grpo import GRPO, GRPOConfig


@dataclass
class RLOOConfig(GRPOConfig):
    """GRPO config with the leave-one-out estimator (see :class:`GRPOConfig` for every field)."""

    advantage_estimator: str = "rloo"


@ALGORITHMS.register("rloo")
class RLOO(GRPO):
    """REINFORCE with a leave-one-out group baseline."""

    config_class = RLOOConfig
    config: RLOOConfig
