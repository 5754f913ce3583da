"""SFT: supervised cold start on the environment's scripted-expert (oracle) trajectories.

``rollout_source = "oracle"`` tells the trainer to collect trajectories from the environment's
expert instead of sampling the policy. The loss is the negative log-likelihood of the
policy-generated (expert) tokens, aggregated with ``loss_agg_mode`` (token mean by default); tool
and prompt tokens are off the loss mask, advantages and old log-probs are ignored.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from mapo_agent.algorithms.base import ALGORITHMS, Algorithm, AlgorithmConfig, GroupSelection, batch_on_device
from mapo_agent.algorithms.losses import aggregate, masked_mean
from mapo_agent.types import AdvantageInput, TrainablePolicy, TrainBatch, Trajectory


@dataclass
class SFTConfig(AlgorithmConfig):
    """Settings of SFT (see :class:`AlgorithmConfig`: ``loss_agg_mode`` and ``loss_norm_length``)."""


@ALGORITHMS.register("sft")
class SFT(Algorithm):
    """Behaviour cloning of oracle trajectories (token-mean NLL on the loss mask)."""

    config_class = SFTConfig
    config: SFTConfig
    rollout_source = "oracle"

    def select_groups(self, trajectories: list[Trajectory]) -> GroupSelection:
        """Drop exact duplicates within a group (copies of the expert's episode given to :meth:`prepare`).

        The trainer plays each oracle question once; a caller that passes a group of identical copies
        gets the same loss and gradient from one of them, at a fraction of the update's cost.
        """
        seen: set[tuple[int, tuple[int, ...]]] = set()
        kept = []
        for trajectory in trajectories:
            key = (trajectory.group_id, tuple(trajectory.input_ids))
            if key not in seen:
                seen.add(key)
                kept.append(trajectory)
        return GroupSelection(kept, num_groups=len({t.group_id for t in trajectories}))

    def compute_advantages(self, inp: AdvantageInput) -> torch.Tensor:
        """Zeros (B,): SFT has no advantage."""
        return torch.zeros(inp.rewards.shape[0], dtype=torch.float32)

    def loss(self, policy: TrainablePolicy, batch: TrainBatch) -> tuple[torch.Tensor, dict[str, float]]:
        """NLL of the loss-mask tokens; metrics ``train/loss``, ``train/nll``, ``train/entropy``."""
        out = policy.forward(batch)
        batch = batch_on_device(batch, out.logprobs)
        nll = aggregate(
            -out.logprobs, batch.loss_mask, self.config.loss_agg_mode, self.norm_length, normalizer=batch.normalizer
        )
        with torch.no_grad():
            metrics = {
                "train/loss": float(nll.item()),
                "train/nll": float(masked_mean(-out.logprobs.detach(), batch.loss_mask).item()),
                "train/entropy": float(masked_mean(out.entropy.detach(), batch.loss_mask).item()),
            }
        return nll, metrics
