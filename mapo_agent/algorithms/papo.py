"""PAPO (Perception-Aware Policy Optimization, arXiv 2507.06448): learn to *look* at the image.

PAPO maximises (§3, Eq. 6 and the double-entropy extension, per token, on top of GRPO's PPO-clip)::

    J = PPO-clip − β·KL[π_θ‖π_ref] + γ·KL[π_θ(o|q,I) ‖ π_θ(o|q,I_mask)] − η1·H[π_θ] − η2·H[π_θ^mask]

so the loss we minimise adds (as the authors' EasyR1 code computes it)::

    perception_kl_loss  = −γ · agg(k3(logprobs, masked_logprobs))      implicit perception loss
    double_entropy_loss = +η1 · agg(−logprobs) + η2 · agg(−masked_logprobs)

- The masked view ``I_mask`` is the authors' ``random_patch_blackening``: every 14x14 patch is set
  to black independently with probability ``image_patch_mask_ratio`` (0.6). The mask is drawn **once
  per question group per batch** (in :meth:`PAPO.prepare`) and shared by the group's rollouts — the
  code masks each prompt before the n-fold rollout repeat — and every loss call, micro-batch and
  epoch of that batch sees the same mask. Only the question's image is masked; the tool's crops are
  masked too only with ``mask_tool_crops=True`` (PAPO has no tool; a crop masked at random is no
  longer the observation the model asked for). ``mask_fill="mean"`` is the project's earlier fill.
- The masked branch carries no gradient by default (computed under ``torch.no_grad``, as the code's
  ``RECOMPUTE_AUG_LOG_PROBS=False``), so the KL's gradient flows only through the original-image
  branch and the η2 term is logged but does not move the weights; ``masked_branch_gradient=True``
  recomputes it with gradient.
- H is PAPO's "log probability of the generated sequence": the mean −log π of the sampled tokens.

Defaults: the paper's PAPO-G row of Table 1 (GRPO advantage, k3 reference KL 0.01 in the loss,
γ = 0.02, double entropy off, EasyR1's clip 0.2 / 0.3 with dual clip 3.0, token-mean loss). The
"PAPO-G + no KL_ref" variant is ``kl_coef=0, perception_kl_coef=0.01,
entropy_coef_original=0.03, entropy_coef_masked=0.03``.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from mapo_agent.algorithms.advantages import check_choice
from mapo_agent.algorithms.base import ALGORITHMS, PreparedRollouts
from mapo_agent.algorithms.grpo import GRPO, GRPOConfig
from mapo_agent.algorithms.losses import LossAggMode, aggregate, k3_kl
from mapo_agent.types import ForwardOutput, ForwardRequest, PatchMask, TrainablePolicy, TrainBatch, Trajectory
from mapo_env.errors import ConfigError

MaskFill = Literal["black", "mean"]


@dataclass
class PAPOConfig(GRPOConfig):
    """GRPO config plus PAPO's terms; defaults: the paper's PAPO-G (Table 1, see the module docstring).

    Attributes:
        loss_agg_mode: ``"token-mean"`` (EasyR1's ``loss_avg_mode="token"``).
        clip_high: 0.3 (EasyR1's default, used by the paper's runs).
        kl_coef: 0.01 (k3 reference KL in the loss).
        dual_clip: Dual-clip constant (3.0).
        image_patch_mask_ratio: Probability that each 14x14 patch is blacked out, in (0, 1] (0.6;
            the paper's ablation finds 0.6-0.8 best and 1.0 prone to KL_prcp hacking).
        mask_fill: ``"black"`` (the paper's code) or ``"mean"`` (the image's mean colour).
        mask_tool_crops: Also mask the crops the zoom tool returned (off: only the question's image).
        perception_kl_coef: γ, weight of the implicit perception KL (0.02; 0.04 collapses).
        perception_kl_clip: Clamp per-token perception KL to [0, value] (the code's optional
            ``kl_prcp_clipping`` uses 0.2), or ``None`` (off).
        entropy_coef_original: η1, weight of −log π on the original view (0: off in PAPO-G).
        entropy_coef_masked: η2, weight of −log π on the masked view (0).
        masked_branch_gradient: Let gradients flow through the masked forward (the code's
            ``RECOMPUTE_AUG_LOG_PROBS``); off, as in the paper's default.
        mask_seed: Seed of the per-group mask draws.
    """

    loss_agg_mode: LossAggMode = "token-mean"
    clip_high: float = 0.3
    kl_coef: float = 0.01
    dual_clip: float | None = 3.0
    image_patch_mask_ratio: float = 0.6
    mask_fill: MaskFill = "black"
    mask_tool_crops: bool = False
    perception_kl_coef: float = 0.02
    perception_kl_clip: float | None = None
    entropy_coef_original: float = 0.0
    entropy_coef_masked: float = 0.0
    masked_branch_gradient: bool = False
    mask_seed: int = 0

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0 < self.image_patch_mask_ratio <= 1:
            raise ConfigError(
                f"image_patch_mask_ratio must be in (0, 1], got {self.image_patch_mask_ratio!r}; PAPO uses 0.6."
            )
        check_choice("mask_fill", self.mask_fill, MaskFill)
        for name in ("perception_kl_coef", "entropy_coef_original", "entropy_coef_masked"):
            value = getattr(self, name)
            if not value >= 0:
                raise ConfigError(f"{name} must be >= 0, got {value!r}; PAPO uses 0.02 (γ) and 0.03 (η, when on).")
        if self.perception_kl_clip is not None and not self.perception_kl_clip > 0:
            raise ConfigError(f"perception_kl_clip must be > 0 or None, got {self.perception_kl_clip!r}.")


@ALGORITHMS.register("papo")
class PAPO(GRPO):
    """GRPO + implicit perception KL (original vs patch-masked image) + double entropy regulariser."""

    config_class = PAPOConfig
    config: PAPOConfig
    summed_metrics = frozenset(
        {"train/loss", "train/kl", "train/perception_kl", "train/sampled_entropy", "train/sampled_entropy_masked"}
    )

    def __init__(self, config: PAPOConfig | None = None) -> None:
        super().__init__(config)
        self._rng = np.random.default_rng(self.config.mask_seed)
        self._group_seeds: dict[int, int] = {}

    def prepare(self, trajectories: list[Trajectory]) -> PreparedRollouts:
        """GRPO's preparation, plus one fresh mask seed per question group of this batch."""
        prepared = super().prepare(trajectories)
        groups = sorted({t.group_id for t in prepared.trajectories})
        self._group_seeds = {g: int(s) for g, s in zip(groups, self._rng.integers(0, 2**31 - 1, len(groups)))}
        return prepared

    def group_seed(self, group_id: int) -> int:
        """The mask seed of ``group_id`` in the current batch (drawn in :meth:`prepare`; else derived from it)."""
        if group_id not in self._group_seeds:
            rng = np.random.default_rng([self.config.mask_seed, group_id])
            self._group_seeds[group_id] = int(rng.integers(2**31 - 1))
        return self._group_seeds[group_id]

    def patch_mask(self, batch: TrainBatch) -> PatchMask:
        """The batch's masks: the question image of each row gets its group's seed; crops per ``mask_tool_crops``."""
        seeds: list[int | None] = []
        for t in batch.trajectories:
            base = self.group_seed(t.group_id)
            for k in range(len(t.images)):
                masked = k == 0 or self.config.mask_tool_crops
                seeds.append((base + k * 1_000_003) % (2**31 - 1) if masked else None)
        return PatchMask(self.config.image_patch_mask_ratio, tuple(seeds), self.config.mask_fill)

    def masked_request(self, batch: TrainBatch) -> ForwardRequest:
        """The masked view's pass: the main pass's request (:meth:`forward_request`) plus :meth:`patch_mask`."""
        return self.forward_request().merge(ForwardRequest(patch_mask=self.patch_mask(batch)))

    def masked_forward(self, policy: TrainablePolicy, batch: TrainBatch) -> ForwardOutput:
        """Forward of ``batch`` on its masked view (:meth:`patch_mask`)."""
        grad = contextlib.nullcontext() if self.config.masked_branch_gradient else torch.no_grad()
        with grad:
            return policy.forward(batch, self.masked_request(batch))

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
        agg, length = cfg.loss_agg_mode, self.norm_length
        perception_kl = aggregate(token_kl, batch.loss_mask, agg, length, normalizer=batch.normalizer)
        entropy_original = aggregate(
            -out.logprobs, batch.loss_mask, agg, length, normalizer=batch.normalizer
        )  # PAPO's H: mean −log π
        entropy_masked = aggregate(-masked_logprobs, batch.loss_mask, agg, length, normalizer=batch.normalizer)
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
