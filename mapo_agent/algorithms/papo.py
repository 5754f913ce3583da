"""PAPO (Perception-Aware Policy Optimization, arXiv 2507.06448): learn to *look* at the image.

PAPO maximises (ALGORITHMS.md §2.1, per token, on top of GRPO's PPO-clip)::

    J = PPO-clip − β·KL[π_θ‖π_ref] + γ·KL[π_θ(o|q,I) ‖ π_θ(o|q,I_mask)] − η1·H[π_θ] − η2·H[π_θ^mask]

so the loss we minimise adds (§2.3, EasyR1 code at fb63bf4)::

    perception_kl_loss  = −γ · agg(k3(logprobs, masked_logprobs))      implicit perception loss
    double_entropy_loss = +η1 · agg(−logprobs) + η2 · agg(−masked_logprobs)

- ``masked_logprobs`` come from a second forward of the same batch with
  ``image_patch_mask_ratio`` (0.6) of the image patches masked; the G rollouts of a question should
  share a mask (the policy's job; it receives a seeded CPU ``torch.Generator``).
- As in PAPO's code, the masked branch carries no gradient by default (it is computed under
  ``torch.no_grad``), so the KL's gradient flows only through the original-image branch and the
  η2 term is logged but does not move the weights; ``masked_branch_gradient=True`` is PAPO's
  RECOMPUTE option.
- H is PAPO's "log probability of the generated sequence": the mean −log π of the sampled tokens,
  not the full-distribution entropy. Both entropies are kept LOW (the sign is +η·H in the loss):
  rising entropy is the first sign of KL_prcp hacking.

Defaults: the "PAPO-G + no KL_ref" row of §2.4 (GRPO advantage, no reference KL, γ = 0.01,
η1 = η2 = 0.03), PAPO's dual clip 3.0, and this project's shared clip 0.2 / 0.28 so that peers differ
only by their method.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch

from mapo_agent.algorithms.base import ALGORITHMS
from mapo_agent.algorithms.grpo import GRPO, GRPOConfig
from mapo_agent.algorithms.losses import aggregate, k3_kl
from mapo_agent.types import ForwardOutput, TrainablePolicy, TrainBatch
from mapo_env.errors import ConfigError


@dataclass
class PAPOConfig(GRPOConfig):
    """GRPO config plus PAPO's terms (see :class:`GRPOConfig` for the shared fields).

    Attributes:
        dual_clip: Dual-clip constant (3.0, PAPO's value).
        image_patch_mask_ratio: Fraction of image patches masked in the second view, in (0, 1]
            (0.6; PAPO's ablation finds 0.6-0.8 best and 1.0 prone to KL_prcp hacking).
        perception_kl_coef: γ, weight of the implicit perception KL (0.01; 0.04 collapses).
        perception_kl_clip: Clamp per-token perception KL to [0, value] (PAPO's optional
            ``kl_prcp_clipping`` uses 0.2), or ``None`` (off).
        entropy_coef_original: η1, weight of −log π on the original view (0.03).
        entropy_coef_masked: η2, weight of −log π on the masked view (0.03).
        masked_branch_gradient: Let gradients flow through the masked forward (PAPO's
            ``RECOMPUTE_AUG_LOG_PROBS``); off, as in PAPO's default.
        mask_seed: Seed of the generator passed to the policy for the patch masks.
    """

    dual_clip: float | None = 3.0
    image_patch_mask_ratio: float = 0.6
    perception_kl_coef: float = 0.01
    perception_kl_clip: float | None = None
    entropy_coef_original: float = 0.03
    entropy_coef_masked: float = 0.03
    masked_branch_gradient: bool = False
    mask_seed: int = 0

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0 < self.image_patch_mask_ratio <= 1:
            raise ConfigError(
                f"image_patch_mask_ratio must be in (0, 1], got {self.image_patch_mask_ratio!r}; PAPO uses 0.6."
            )
        for name in ("perception_kl_coef", "entropy_coef_original", "entropy_coef_masked"):
            value = getattr(self, name)
            if not value >= 0:
                raise ConfigError(f"{name} must be >= 0, got {value!r}; PAPO uses 0.01 (γ) and 0.03 (η).")
        if self.perception_kl_clip is not None and not self.perception_kl_clip > 0:
            raise ConfigError(f"perception_kl_clip must be > 0 or None, got {self.perception_kl_clip!r}.")


@ALGORITHMS.register("papo")
class PAPO(GRPO):
    """GRPO + implicit perception KL (original vs patch-masked image) + double entropy regulariser."""

    config_class = PAPOConfig
    config: PAPOConfig

    def __init__(self, config: PAPOConfig | None = None) -> None:
        super().__init__(config)
        self._mask_generator = torch.Generator().manual_seed(self.config.mask_seed)

    def masked_forward(self, policy: TrainablePolicy, batch: TrainBatch) -> ForwardOutput:
        """Forward of ``batch`` with ``image_patch_mask_ratio`` of the image patches masked."""
        grad = contextlib.nullcontext() if self.config.masked_branch_gradient else torch.no_grad()
        with grad:
            return policy.forward(
                batch,
                image_patch_mask_ratio=self.config.image_patch_mask_ratio,
                mask_generator=self._mask_generator,
            )

    def extra_loss_terms(
        self, policy: TrainablePolicy, batch: TrainBatch, out: ForwardOutput
    ) -> tuple[dict[str, torch.Tensor], dict[str, float]]:
        """``perception_kl_loss`` (−γ·KL_prcp) and ``double_entropy_loss`` (η1·H + η2·H_mask)."""
        cfg = self.config
        masked_logprobs = self.masked_forward(policy, batch).logprobs
        if not cfg.masked_branch_gradient:
            masked_logprobs = masked_logprobs.detach()
        token_kl = k3_kl(out.logprobs, masked_logprobs)  # (B, T) KL[π_θ(·|I) ‖ π_θ(·|I_mask)]
        if cfg.perception_kl_clip is not None:
            token_kl = token_kl.clamp(0.0, cfg.perception_kl_clip)
        agg, length = cfg.loss_agg_mode, cfg.loss_norm_length
        perception_kl = aggregate(token_kl, batch.loss_mask, agg, length)
        entropy_original = aggregate(-out.logprobs, batch.loss_mask, agg, length)  # PAPO's H: mean −log π
        entropy_masked = aggregate(-masked_logprobs, batch.loss_mask, agg, length)
        terms = {
            "perception_kl_loss": -cfg.perception_kl_coef * perception_kl,
            "double_entropy_loss": cfg.entropy_coef_original * entropy_original
            + cfg.entropy_coef_masked * entropy_masked,
        }
        metrics = {
            "train/perception_kl": float(perception_kl.detach().item()),
            "train/sampled_entropy": float(entropy_original.detach().item()),
            "train/sampled_entropy_masked": float(entropy_masked.detach().item()),
        }
        return terms, metrics
