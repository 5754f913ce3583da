"""DAPO (arXiv 2503.14476): clip-higher, dynamic sampling, token-level loss, overlong reward shaping.

The four techniques of the paper (§3, Eq. 8), each a default here:

1. **Clip-higher** (§3.1): ε_low = 0.2, ε_high = 0.28.
2. **Dynamic sampling** (§3.2): groups whose rollouts are all correct or all wrong carry no
   gradient and are dropped; the trainer keeps drawing more questions until the batch holds
   ``rollout.questions_per_step`` mixed groups again (or ``dynamic_sampling_max_rounds`` rounds were
   drawn) and trims the surplus, as the paper's "over-sample and filter".
3. **Token-level policy-gradient loss** (§3.3): one mean over every loss token of the optimizer
   batch (``loss_agg_mode="token-mean"``; the trainer normalises across micro-batches, so splitting
   a batch for memory does not change the mean).
4. **Overlong reward shaping** (§3.4, Eq. 13): the soft punishment
   :func:`mapo_agent.algorithms.losses.overlong_penalty` is added to each episode's reward, with
   L_max = the run's generation budget (``max_new_tokens × max_turns``, what an episode can
   generate) and L_cache = 20 % of it (the paper's 4,096 of 20,480), unless
   ``max_response_tokens`` / ``overlong_buffer`` are set.

No KL term (the paper removes it, §2.3).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from mapo_agent.algorithms.base import ALGORITHMS
from mapo_agent.algorithms.grpo import GRPO, GRPOConfig
from mapo_agent.algorithms.losses import LossAggMode, overlong_penalty
from mapo_agent.types import Trajectory
from mapo_env.errors import ConfigError

OVERLONG_BUFFER_SHARE = 0.2
"""L_cache / L_max in the paper's setting (4,096 / 20,480)."""


@dataclass
class DAPOConfig(GRPOConfig):
    """GRPO config with DAPO's defaults (see :class:`GRPOConfig` for the shared fields).

    Attributes:
        loss_agg_mode: ``"token-mean"`` over the whole optimizer batch (§3.3).
        clip_high: 0.28 (clip-higher, §3.1).
        kl_coef: 0 (no KL term).
        dynamic_sampling: Drop all-correct / all-wrong groups and refill the batch (on).
        overlong_shaping: Add the soft overlong penalty to rewards (on).
        max_response_tokens: L_max: generated tokens per episode at which the penalty reaches −1;
            ``None`` = the run's generation budget.
        overlong_buffer: L_cache: the penalty ramps linearly from 0 at L_max − L_cache to −1 at L_max;
            ``None`` = 20 % of L_max.
        overlong_penalty_factor: Scale of the penalty.
    """

    loss_agg_mode: LossAggMode = "token-mean"
    clip_high: float = 0.28
    kl_coef: float = 0.0
    dynamic_sampling: bool = True
    overlong_shaping: bool = True
    max_response_tokens: int | None = None
    overlong_buffer: int | None = None
    overlong_penalty_factor: float = 1.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.max_response_tokens is not None and self.max_response_tokens < 1:
            raise ConfigError(f"max_response_tokens must be >= 1 or None, got {self.max_response_tokens!r}.")
        if self.overlong_buffer is not None and not (
            0 <= self.overlong_buffer <= (self.max_response_tokens or self.overlong_buffer)
        ):
            raise ConfigError(
                f"need 0 <= overlong_buffer <= max_response_tokens, got overlong_buffer={self.overlong_buffer!r}, "
                f"max_response_tokens={self.max_response_tokens!r}; DAPO uses a buffer of a fifth of the maximum."
            )
        if not self.overlong_penalty_factor >= 0:
            raise ConfigError(f"overlong_penalty_factor must be >= 0, got {self.overlong_penalty_factor!r}.")


@ALGORITHMS.register("dapo")
class DAPO(GRPO):
    """Decoupled clip and Dynamic sAmpling Policy Optimization."""

    config_class = DAPOConfig
    config: DAPOConfig

    def overlong_limits(self) -> tuple[int, int]:
        """``(L_max, L_cache)``: the configured values, else the run's generation budget and 20 % of it.

        Raises:
            ConfigError: ``max_response_tokens`` is unset and no run context is bound.
        """
        cfg = self.config
        max_tokens = cfg.max_response_tokens
        if max_tokens is None:
            if self.context is None:
                raise ConfigError(
                    "DAPO's overlong shaping needs L_max: set max_response_tokens, or bind the run's generation "
                    "budget with algorithm.bind(RunContext(...)) (the Trainer does)."
                )
            max_tokens = self.context.generation_budget
        buffer = cfg.overlong_buffer if cfg.overlong_buffer is not None else round(OVERLONG_BUFFER_SHARE * max_tokens)
        if buffer > max_tokens:
            raise ConfigError(f"overlong_buffer ({buffer}) exceeds max_response_tokens ({max_tokens}).")
        return max_tokens, buffer

    def shape_rewards(self, trajectories: list[Trajectory]) -> torch.Tensor:
        """Environment rewards plus the overlong penalty (when ``overlong_shaping`` is on)."""
        rewards = super().shape_rewards(trajectories)
        if not self.config.overlong_shaping:
            return rewards
        max_tokens, buffer = self.overlong_limits()
        lengths = torch.tensor([t.num_generated_tokens for t in trajectories], dtype=torch.long)
        return rewards + overlong_penalty(lengths, max_tokens, buffer, self.config.overlong_penalty_factor)
