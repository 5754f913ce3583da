"""GRPO (DeepSeekMath, arXiv 2402.03300): group-normalised outcome advantage + PPO-clip loss.

Defaults are the paper's (§4.1.2, Eq. 3; §4.2 for the values): each sequence's token mean, then the
mean over sequences (``seq-mean-token-mean``, the 1/|o_i| of Eq. 3), a symmetric clip ε = 0.2, and
the unbiased k3 estimator of KL(π_θ‖π_ref) (Eq. 4) in the loss with β = 0.04 (which makes the
trainer keep a frozen reference model). DAPO-style departures (token mean, clip-higher, no KL) are
config values (see :mod:`mapo_agent.algorithms.dapo`).

:class:`GRPO` is also the parent of every policy-gradient peer here. Its :meth:`GRPO.loss` names
each term and sums them once::

    loss = pg_loss                                   PPO-clip (clip_low / clip_high / dual_clip)
         + kl_coef · agg(k3(logprobs, ref_logprobs))  when kl_coef > 0 (KL in the loss, not the reward)
         − entropy_coef · agg(entropy)                when entropy_coef != 0
         + extra terms of a subclass                  (PAPO's perception KL and double entropy)

Subclasses change one hook: :meth:`GRPO.forward_request` (VGPO asks for hidden states),
:meth:`GRPO.token_advantages` (VGPO re-weights), :meth:`GRPO.extra_loss_terms` (PAPO), or only
config defaults (Dr.GRPO, RLOO, MAPO).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from mapo_agent.algorithms.advantages import ADVANTAGE_ESTIMATORS, AdvantageConfig
from mapo_agent.algorithms.base import (
    ALGORITHMS,
    Algorithm,
    AlgorithmConfig,
    GroupSelection,
    batch_on_device,
    keep_mixed_groups,
)
from mapo_agent.algorithms.losses import LossAggMode, aggregate, entropy_bonus, k3_kl, masked_mean, ppo_clip_loss
from mapo_agent.types import (
    PLAIN_FORWARD,
    AdvantageInput,
    ForwardOutput,
    ForwardRequest,
    TrainablePolicy,
    TrainBatch,
    Trajectory,
)
from mapo_env.errors import ConfigError


@dataclass
class GRPOConfig(AlgorithmConfig):
    """Settings of GRPO and its peers (defaults: GRPO's paper, arXiv 2402.03300 §4.1.2 Eq. 3 and §4.2).

    Attributes:
        loss_agg_mode: ``"seq-mean-token-mean"``: Eq. 3's 1/G Σ_i 1/|o_i| Σ_t.
        advantage_estimator: Key of :data:`~mapo_agent.algorithms.advantages.ADVANTAGE_ESTIMATORS`;
            checked when the config is built.
        advantage: Estimator settings (:class:`AdvantageConfig`; a ``dict`` is converted).
        clip_low: ε_low: the ratio is clipped below at 1 − ε_low (0.2).
        clip_high: ε_high: the ratio is clipped above at 1 + ε_high (0.2, symmetric as in the paper;
            DAPO's clip-higher is 0.28).
        dual_clip: Dual-clip constant C > 1 for negative advantages, or ``None`` (off).
        kl_coef: β, weight of the k3 KL to the reference model, in the loss (0.04, the paper's value);
            > 0 makes the trainer keep a frozen reference model; 0 turns it off.
        entropy_coef: Weight of an entropy bonus on the policy's full-distribution entropy (0).
        dynamic_sampling: Drop groups whose rollouts are all correct or all wrong, and let the
            trainer draw more questions to refill the batch (DAPO); off.
        dynamic_sampling_max_rounds: With ``dynamic_sampling``, at most this many rollout rounds per
            step (verl's ``max_num_gen_batches``; 10); after them the step trains on what it kept.
    """

    advantage_estimator: str = "grpo"
    advantage: AdvantageConfig = field(default_factory=AdvantageConfig)
    loss_agg_mode: LossAggMode = "seq-mean-token-mean"
    clip_low: float = 0.2
    clip_high: float = 0.2
    dual_clip: float | None = None
    kl_coef: float = 0.04
    entropy_coef: float = 0.0
    dynamic_sampling: bool = False
    dynamic_sampling_max_rounds: int = 10

    def __post_init__(self) -> None:
        super().__post_init__()
        if isinstance(self.advantage, dict):
            self.advantage = AdvantageConfig(**self.advantage)
        ADVANTAGE_ESTIMATORS.get(self.advantage_estimator)  # a typo fails here, before any model loads
        if not 0 <= self.clip_low < 1:
            raise ConfigError(f"clip_low must be in [0, 1), got {self.clip_low!r}; 0.2 is the usual value.")
        if not self.clip_high >= 0:
            raise ConfigError(f"clip_high must be >= 0, got {self.clip_high!r}; 0.28 is DAPO's clip-higher.")
        if self.dual_clip is not None and not self.dual_clip > 1:
            raise ConfigError(f"dual_clip must be > 1 or None, got {self.dual_clip!r}; PAPO uses 3.0.")
        if not self.kl_coef >= 0:
            raise ConfigError(f"kl_coef must be >= 0, got {self.kl_coef!r}; use 0 (off) or e.g. 0.04 (GRPO).")
        if self.dynamic_sampling_max_rounds < 1:
            raise ConfigError(
                f"dynamic_sampling_max_rounds must be >= 1, got {self.dynamic_sampling_max_rounds!r}; "
                "DAPO recipes use 10."
            )


@ALGORITHMS.register("grpo")
class GRPO(Algorithm):
    """Group Relative Policy Optimization: PPO-clip on group-normalised outcome advantages, k3 KL to a reference."""

    config_class = GRPOConfig
    config: GRPOConfig
    summed_metrics = frozenset({"train/loss", "train/kl"})

    @property
    def needs_reference_model(self) -> bool:
        """True when ``kl_coef`` > 0."""
        return self.config.kl_coef > 0

    def select_groups(self, trajectories: list[Trajectory]) -> GroupSelection:
        """All trajectories, or only mixed-outcome groups when ``dynamic_sampling`` is on."""
        if self.config.dynamic_sampling:
            return keep_mixed_groups(trajectories)
        return super().select_groups(trajectories)

    @property
    def max_sampling_rounds(self) -> int:
        """``dynamic_sampling_max_rounds`` with dynamic sampling on, else 1."""
        return self.config.dynamic_sampling_max_rounds if self.config.dynamic_sampling else 1

    def compute_advantages(self, inp: AdvantageInput) -> torch.Tensor:
        """(B,) advantages from the configured estimator."""
        return ADVANTAGE_ESTIMATORS.get(self.config.advantage_estimator)(inp, self.config.advantage)

    # -- hooks -----------------------------------------------------------------------------------

    def forward_request(self) -> ForwardRequest:
        """What the main ``policy.forward`` pass is asked for (:data:`~mapo_agent.types.PLAIN_FORWARD` by default)."""
        return PLAIN_FORWARD

    def token_advantages(self, batch: TrainBatch, out: ForwardOutput) -> tuple[torch.Tensor, dict[str, float]]:
        """(B, T) advantages fed to PPO-clip (default: ``batch.advantages``) and any metrics."""
        return batch.advantages, {}

    def extra_loss_terms(
        self, policy: TrainablePolicy, batch: TrainBatch, out: ForwardOutput
    ) -> tuple[dict[str, torch.Tensor], dict[str, float]]:
        """Additional named loss terms (summed into the loss) and metrics; none by default."""
        return {}, {}

    # -- loss ------------------------------------------------------------------------------------

    def loss(self, policy: TrainablePolicy, batch: TrainBatch) -> tuple[torch.Tensor, dict[str, float]]:
        """PPO-clip loss plus the optional KL, entropy and subclass terms (see the module docstring).

        Raises:
            ConfigError: ``kl_coef`` > 0 but ``batch.ref_logprobs`` is ``None``.
        """
        cfg = self.config
        out = policy.forward(batch, self.forward_request())
        batch = batch_on_device(batch, out.logprobs)
        advantages, metrics = self.token_advantages(batch, out)
        pg_loss, pg_metrics = ppo_clip_loss(
            out.logprobs,
            batch.old_logprobs,
            advantages,
            batch.loss_mask,
            clip_low=cfg.clip_low,
            clip_high=cfg.clip_high,
            dual_clip=cfg.dual_clip,
            agg=cfg.loss_agg_mode,
            norm_length=self.norm_length,
            normalizer=batch.normalizer,
        )
        terms: dict[str, torch.Tensor] = {"pg_loss": pg_loss}
        metrics.update({f"train/{k}": v for k, v in pg_metrics.items()})
        kl_term, kl_value = self._reference_kl(batch, out)
        if kl_term is not None:
            terms["kl_loss"] = kl_term
        if cfg.entropy_coef:
            terms["entropy_loss"] = entropy_bonus(
                out.entropy,
                batch.loss_mask,
                cfg.entropy_coef,
                cfg.loss_agg_mode,
                self.norm_length,
                normalizer=batch.normalizer,
            )
        extra_terms, extra_metrics = self.extra_loss_terms(policy, batch, out)
        terms.update(extra_terms)
        metrics.update(extra_metrics)
        loss = torch.stack(list(terms.values())).sum()
        with torch.no_grad():
            metrics.update({f"train/{name}": float(value.item()) for name, value in terms.items()})
            metrics["train/loss"] = float(loss.item())
            metrics["train/kl"] = kl_value
            metrics["train/entropy"] = float(masked_mean(out.entropy.detach(), batch.loss_mask).item())
            metrics["train/advantage_token_mean"] = float(masked_mean(advantages.detach(), batch.loss_mask).item())
        return loss, metrics

    def _reference_kl(self, batch: TrainBatch, out: ForwardOutput) -> tuple[torch.Tensor | None, float]:
        """(kl_coef · agg(k3), KL value for logging); the term is ``None`` when ``kl_coef`` is 0."""
        cfg = self.config
        if batch.ref_logprobs is None:
            if cfg.kl_coef > 0:
                raise ConfigError(
                    f"kl_coef={cfg.kl_coef} needs batch.ref_logprobs, got None; the trainer must fill "
                    "TrainBatch.ref_logprobs when algorithm.needs_reference_model is True (or set kl_coef=0)."
                )
            return None, 0.0
        kl = aggregate(
            k3_kl(out.logprobs, batch.ref_logprobs),
            batch.loss_mask,
            cfg.loss_agg_mode,
            self.norm_length,
            normalizer=batch.normalizer,
        )
        value = float(kl.detach().item())
        return (cfg.kl_coef * kl if cfg.kl_coef > 0 else None), value
