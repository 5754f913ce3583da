"""Dr.GRPO ("Understanding R1-Zero-Like Training", arXiv 2503.20783): GRPO without its two biases.

The paper (§3.1, Eq. 4 vs Eq. 2) removes GRPO's two normalisers:

- the advantage is R_i − mean_G R, without dividing by the group std (estimator ``dr_grpo``);
- each sequence's token losses are summed, not divided by its own length |o_i|; the batch is divided
  by a constant instead. The authors' code divides by the generation budget (the maximum response
  length, ``MAX_TOKENS``), so ``loss_agg_mode="seq-mean-token-sum-norm"`` with L = the run's
  generation budget (``max_new_tokens × max_turns``, bound by the trainer; ``loss_norm_length``
  overrides it). Never the padded width of a batch, which would make the same tokens weigh 10x
  less in a batch that happens to hold one long prompt.

Everything else is GRPO's (PPO-clip 0.2, and the paper's runs use no KL term: ``kl_coef=0``).
"""

from __future__ import annotations

from dataclasses import dataclass

from mapo_agent.algorithms.base import ALGORITHMS
from mapo_agent.algorithms.grpo import GRPO, GRPOConfig
from mapo_agent.algorithms.losses import LossAggMode


@dataclass
class DrGRPOConfig(GRPOConfig):
    """GRPO config with Dr.GRPO's defaults (see :class:`GRPOConfig` for every field).

    Attributes:
        loss_agg_mode: ``"seq-mean-token-sum-norm"`` (token sums over a constant).
        kl_coef: 0 (the paper's Oat runs set no KL penalty).
    """

    advantage_estimator: str = "dr_grpo"
    loss_agg_mode: LossAggMode = "seq-mean-token-sum-norm"
    kl_coef: float = 0.0


@ALGORITHMS.register("dr_grpo")
class DrGRPO(GRPO):
    """GRPO Done Right: unbiased advantage and a length-independent loss normaliser."""

    config_class = DrGRPOConfig
    config: DrGRPOConfig
