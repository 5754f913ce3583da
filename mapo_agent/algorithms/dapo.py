"""DAPO (arXiv 2503.14476): clip-higher, dynamic sampling, token-level loss, overlong reward shaping.

Clip-higher (0.2 / 0.28) and the token-mean loss are already GRPO's defaults here; DAPO turns on
dynamic sampling (groups whose rollouts are all correct or all wrong are dropped; the trainer may
over-sample to refill the batch) and adds the soft overlong punishment of
:func:`mapo_agent.algorithms.losses.overlong_penalty` to each episode's reward, computed from
``Trajectory.num_generated_tokens``. Keep ``max_response_tokens`` equal to the rollout's real
generation budget per episode.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from mapo_agent.algorithms.base import ALGORITHMS
from mapo_agent.algorithms.grpo import GRPO, GRPOConfig
from mapo_agent.algorithms.losses import overlong_penalty
from mapo_agent.types import Trajectory
from mapo_env.errors import ConfigError


@dataclass
class DAPOConfig(GRPOConfig):
    """GRPO config with DAPO's defaults.

    Attributes:
        dynamic_sampling: Drop all-correct / all-wrong groups (on).
        overlong_shaping: Add the soft overlong penalty to rewards (on).
        max_response_tokens: L_max: generated tokens per episode at which the penalty reaches −1.
        overlong_buffer: L_cache: the penalty ramps linearly from 0 at L_max − L_cache to −1 at L_max.
        overlong_penalty_factor: Scale of the penalty.
    """

    dynamic_sampling: bool = True
    overlong_shaping: bool = True
    max_response_tokens: int = 2048
    overlong_buffer: int = 512
    overlong_penalty_factor: float = 1.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.max_response_tokens < 1 or not 0 <= self.overlong_buffer <= self.max_response_tokens:
            raise ConfigError(
                f"need max_response_tokens >= 1 and 0 <= overlong_buffer <= max_response_tokens, got "
                f"max_response_tokens={self.max_response_tokens!r}, overlong_buffer={self.overlong_buffer!r}; "
                "DAPO uses a buffer of about a fifth of the maximum length."
            )
        if not self.overlong_penalty_factor >= 0:
            raise ConfigError(f"overlong_penalty_factor must be >= 0, got {self.overlong_penalty_factor!r}.")


@ALGORITHMS.register("dapo")
class DAPO(GRPO):
    """Decoupled clip and Dynamic sAmpling Policy Optimization."""

    config_class = DAPOConfig
    config: DAPOConfig

    def shape_rewards(self, trajectories: list[Trajectory]) -> torch.Tensor:
        """Environment rewards plus the overlong penalty (when ``overlong_shaping`` is on)."""
        rewards = super().shape_rewards(trajectories)
        if not self.config.overlong_shaping:
            return rewards
        lengths = torch.tensor([t.num_generated_tokens for t in trajectories], dtype=torch.long)
        cfg = self.config
        return rewards + overlong_penalty(
            lengths, cfg.max_response_tokens, cfg.overlong_buffer, cfg.overlong_penalty_factor
        )
