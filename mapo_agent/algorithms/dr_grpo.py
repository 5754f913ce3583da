"""Dr.GRPO ("Understanding R1-Zero-Like Training", arXiv 2503.20783): GRPO without its two biases.

Only defaults change: the advantage is R − mean_G R (no std division, estimator ``dr_grpo``) and
the loss sums each sequence's tokens and divides by a constant (``seq-mean-token-sum-norm``)
instead of by the sequence's own length. Set ``loss_norm_length`` to the maximum response length to
make the constant truly constant across batches (verl's recipe uses the batch's padded width).
"""

from __future__ import annotations

from dataclasses import dataclass

from mapo_agent.algorithms.base import ALGORITHMS
from mapo_agent.algorithms.grpo import GRPO, GRPOConfig
from mapo_agent.algorithms.losses import LossAggMode


@dataclass
class DrGRPOConfig(GRPOConfig):
    """GRPO config with Dr.GRPO's defaults (see :class:`GRPOConfig` for every field)."""

    advantage_estimator: str = "dr_grpo"
    loss_agg_mode: LossAggMode = "seq-mean-token-sum-norm"


@ALGORITHMS.register("dr_grpo")
class DrGRPO(GRPO):
    """GRPO Done Right: unbiased advantage and a length-independent loss normaliser."""

    config_class = DrGRPOConfig
    config: DrGRPOConfig
