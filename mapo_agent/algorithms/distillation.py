"""On-policy distillation from a teacher: OPD, and VA-OPD (arXiv 2605.21924) that weighs by visual advantage.

The student samples (rollouts as for RL, no reward needed); a frozen **teacher** scores the
student's own tokens, and the student minimises the per-token reverse KL to the teacher,

    D_t = KL( p_S(· | v, q, y_<t) ‖ p_T(· | v, q, y_<t) )        full vocabulary, full image v

computed from both models' whole next-token distributions
(``ForwardRequest(log_distributions=True)``). The teacher is any checkpoint the policy class can
load (``teacher_model``: a folder or hub id, e.g. a trained run's ``final/``), or a policy given
with :meth:`OPD.set_teacher`; ``None`` loads the bundled tiny agent, which is *untrained* (smoke
tests only; a warning says so). It is loaded on the student's device, dtype and sampling
temperature, with the student's image-size bounds, and it re-collates the trajectories itself: the
token ids of its passes are asserted identical to the student's (:class:`TokenMismatch`).

**OPD** (the baseline of arXiv 2605.21924): uniform rollout weights and one KL per rollout::

    L = 1/#prompts Σ_prompt Σ_k (1/K) · mean_t D_t^(k)

**VA-OPD** (§3, Eqs. 2-6 of the paper, as transcribed by a reproduction that checked them against
the paper; no official code): the teacher also scores the tokens under a degraded image ṽ (each
image downsampled to 10 % with bilinear filtering, then upsampled back with nearest neighbour), in
the same batched forward as the full image (2B rows). Then, all stop-gradient::

    a_t   = max( log p_T(y_t | v) − log p_T(y_t | ṽ), 0 )                    visual advantage (Eq. 2)
    ā^(k) = mean_t a_t^(k);  z^(k) = (ā^(k) − mean_j ā^(j)) / (std_pop + ε)    over the prompt's K rollouts
    w^(k) = softmax_k( z^(k) / τ ),  τ = 1                                     rollout weights (Eqs. 3-4)
    L^(k) = λ · mean_{t ∈ V^(k)} D_t + (1 − λ) · mean_{t ∈ L^(k)} D_t          grouped KL (Eqs. 5-6), λ = 0.5
    L     = 1/#prompts Σ_prompt Σ_k w^(k) L^(k)

V^(k) is the top ⌈0.2 · T_k⌉ response tokens of rollout k by a_t (ties: the earlier token first),
L^(k) the rest; when L^(k) is empty all the mass goes to V^(k). The std is the population std (the
paper's example ā = [.045, .03, .02, .01] gives w = [.656, .206, .095, .044]). The KL target is the
teacher on the **full** image only; the degraded view only supplies a_t.

Rollout weights need each prompt's complete group of rollouts, so the trainer never splits a group
across micro-batches (:attr:`OPD.needs_whole_groups`), and #prompts is summed over the whole
minibatch (:attr:`OPD.loss_count_names`), so micro-batches add up to the unsplit loss. There are no
advantages: :meth:`OPD.compute_advantages` returns zeros.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from PIL import Image

from mapo_agent.algorithms.advantages import check_choice
from mapo_agent.algorithms.base import ALGORITHMS, Algorithm, AlgorithmConfig, batch_on_device
from mapo_agent.algorithms.losses import LossAggMode, masked_mean
from mapo_agent.types import AdvantageInput, ForwardRequest, TrainablePolicy, TrainBatch
from mapo_env.errors import ConfigError

logger = logging.getLogger(__name__)

RolloutWeighting = Literal["uniform", "visual_advantage"]
TokenGrouping = Literal["none", "visual_advantage"]
STD_EPS = 1e-6
"""ε of the z-score of the mean visual advantages."""


class TokenMismatch(ConfigError):
    """The teacher tokenised a trajectory differently from the student (another tokenizer or image processor)."""


def degrade_image(image: np.ndarray, scale: float = 0.1) -> np.ndarray:
    """VA-OPD's ṽ: downsample to ``scale`` of each side (bilinear), then upsample back (nearest neighbour).

    Args:
        image: uint8 (H, W, 3).
        scale: Fraction of each side kept (0.1: 10 % resolution); at least 1 pixel per side.

    Returns:
        A new uint8 (H, W, 3) array.
    """
    h, w = image.shape[:2]
    small = Image.fromarray(image).resize(
        (max(1, round(w * scale)), max(1, round(h * scale))), Image.Resampling.BILINEAR
    )
    return np.asarray(small.resize((w, h), Image.Resampling.NEAREST)).copy()


def visual_advantage(full_logprobs: torch.Tensor, degraded_logprobs: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """a_t = max(log p_T(y_t | v) − log p_T(y_t | ṽ), 0) on ``mask`` (0 elsewhere), detached (B, T)."""
    a = (full_logprobs.detach() - degraded_logprobs.detach()).clamp(min=0)
    return a * (mask > 0)


def rollout_weights(mean_advantage: torch.Tensor, group_ids: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """W = softmax over each group of z = (ā − mean) / (population std + ε), at ``temperature`` τ (B,).

    A group of one gets weight 1; a group of equal ā gets uniform weights.
    """
    weights = torch.zeros_like(mean_advantage, dtype=torch.float64)
    values = mean_advantage.detach().double()
    for group in torch.unique(group_ids):
        rows = group_ids == group
        x = values[rows]
        z = (x - x.mean()) / (x.std(correction=0) + STD_EPS)
        weights[rows] = torch.softmax(z / temperature, dim=0)
    return weights.to(mean_advantage.dtype)


def grouped_token_kl(
    token_kl: torch.Tensor, advantage: torch.Tensor, mask: torch.Tensor, top_ratio: float, high_weight: float
) -> torch.Tensor:
    """Per rollout: λ · mean of D_t over its top ⌈top_ratio · T⌉ tokens by a_t + (1 − λ) · mean over the rest (B,).

    Ties in a_t keep the earlier token first; with no "rest" the whole weight goes to the top group;
    a row without a response token gives 0.
    """
    out = []
    for row in range(token_kl.shape[0]):
        positions = (mask[row] > 0).nonzero().flatten()
        if positions.numel() == 0:
            out.append(token_kl[row].sum() * 0.0)
            continue
        kl, a = token_kl[row, positions], advantage[row, positions].detach()
        top = math.ceil(top_ratio * positions.numel())
        order = torch.sort(-a, stable=True).indices  # descending a_t, earlier token first on ties
        high, low = order[:top], order[top:]
        if low.numel() == 0:
            out.append(kl[high].mean())
        else:
            out.append(high_weight * kl[high].mean() + (1 - high_weight) * kl[low].mean())
    return torch.stack(out)


def reverse_kl(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """Σ_v p_S (log p_S − log p_T) per row of (N, V) log-distributions (N,)."""
    return (student.exp() * (student - teacher.detach())).sum(dim=-1)


@dataclass
class OPDConfig(AlgorithmConfig):
    """On-policy distillation (defaults: the OPD baseline of arXiv 2605.21924).

    Attributes:
        loss_agg_mode: ``"seq-mean-token-mean"``, the only mode: the paper's loss is a weighted sum of
            per-rollout token means over prompts (other modes raise).
        teacher_model: Folder or hub id of the teacher checkpoint, loaded by the policy's class
            (e.g. ``runs/<run>/final`` of a trained run); ``None``: the bundled tiny agent, untrained
            (for smoke tests; a warning is logged when it is loaded).
        rollout_weighting: ``"uniform"`` (OPD) or ``"visual_advantage"`` (VA-OPD's softmax of z(ā)).
        token_grouping: ``"none"`` (one KL mean per rollout, OPD) or ``"visual_advantage"`` (VA-OPD's
            high/low visual-advantage token groups).
        degrade_scale: ṽ keeps this fraction of each image side (0.1).
        weight_temperature: τ of the rollout softmax (1.0).
        top_ratio: Share of each rollout's tokens in the high-visual-advantage group (0.2).
        high_weight: λ, the weight of the high group's KL mean (0.5).
        kl_coef: Scale of the whole distillation loss (1.0).
    """

    loss_agg_mode: LossAggMode = "seq-mean-token-mean"
    teacher_model: str | None = None
    rollout_weighting: RolloutWeighting = "uniform"
    token_grouping: TokenGrouping = "none"
    degrade_scale: float = 0.1
    weight_temperature: float = 1.0
    top_ratio: float = 0.2
    high_weight: float = 0.5
    kl_coef: float = 1.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.loss_agg_mode != "seq-mean-token-mean":
            raise ConfigError(
                f"{type(self).__name__} aggregates as the paper (per-rollout token means, weighted, over prompts): "
                f"loss_agg_mode must be 'seq-mean-token-mean', got {self.loss_agg_mode!r}."
            )
        check_choice("rollout_weighting", self.rollout_weighting, RolloutWeighting)
        check_choice("token_grouping", self.token_grouping, TokenGrouping)
        if not 0 < self.degrade_scale < 1:
            raise ConfigError(f"degrade_scale must be in (0, 1), got {self.degrade_scale!r}; VA-OPD uses 0.1.")
        if not self.weight_temperature > 0:
            raise ConfigError(f"weight_temperature must be > 0, got {self.weight_temperature!r}; VA-OPD uses 1.0.")
        if not 0 < self.top_ratio <= 1:
            raise ConfigError(f"top_ratio must be in (0, 1], got {self.top_ratio!r}; VA-OPD uses 0.2.")
        if not 0 <= self.high_weight <= 1:
            raise ConfigError(f"high_weight must be in [0, 1], got {self.high_weight!r}; VA-OPD uses 0.5.")
        if not self.kl_coef > 0:
            raise ConfigError(f"kl_coef must be > 0, got {self.kl_coef!r}; it scales the distillation loss (1.0).")

    @property
    def needs_degraded_view(self) -> bool:
        """Whether the teacher also scores the degraded images (any visual-advantage option on)."""
        return "visual_advantage" in (self.rollout_weighting, self.token_grouping)


@dataclass
class VAOPDConfig(OPDConfig):
    """VA-OPD: OPD with visual-advantage rollout weights and token groups (arXiv 2605.21924 Eqs. 2-6)."""

    rollout_weighting: RolloutWeighting = "visual_advantage"
    token_grouping: TokenGrouping = "visual_advantage"


@ALGORITHMS.register("opd")
class OPD(Algorithm):
    """On-policy distillation: the student's reverse KL to a teacher on the student's own samples."""

    config_class = OPDConfig
    config: OPDConfig
    needs_whole_groups = True
    loss_count_names = ("prompts",)
    summed_metrics = frozenset({"train/loss", "train/distill_kl"})

    def __init__(self, config: OPDConfig | None = None) -> None:
        super().__init__(config)
        self.teacher: Any = None

    def set_teacher(self, teacher: TrainablePolicy) -> OPD:
        """Use ``teacher`` (a loaded policy that collates like the student) instead of loading ``teacher_model``."""
        self.teacher = teacher
        return self

    def load_teacher(self, policy: Any) -> Any:
        """The teacher, loaded on first use by ``type(policy).from_pretrained`` like the student, frozen.

        Raises:
            ConfigError: The policy's class cannot load checkpoints (give one with :meth:`set_teacher`).
        """
        if self.teacher is not None:
            return self.teacher
        loader = getattr(type(policy), "from_pretrained", None)
        if loader is None:
            raise ConfigError(
                f"{type(self).__name__} cannot load teacher_model with a {type(policy).__name__} (it has no "
                "from_pretrained); pass a loaded teacher with algorithm.set_teacher(teacher)."
            )
        kwargs: dict[str, Any] = {"device": policy.device, "dtype": policy.dtype, "temperature": policy.temperature}
        bounds = getattr(getattr(policy, "processor", None), "pixel_bounds", None)
        if bounds is not None:
            kwargs.update(min_pixels=bounds[0], max_pixels=bounds[1])
        if self.config.teacher_model is None:
            logger.warning(
                "%s: teacher_model is None, so the teacher is the bundled tiny agent, which is untrained; set "
                "teacher_model to a trained checkpoint folder (e.g. a run's final/) to distil a skill.",
                type(self).__name__,
            )
        teacher = loader(self.config.teacher_model, **kwargs).eval()
        for p in teacher.parameters():
            p.requires_grad_(False)
        self.teacher = teacher
        return teacher

    # -- rollouts --------------------------------------------------------------------------------

    def compute_advantages(self, inp: AdvantageInput) -> torch.Tensor:
        """Zeros (B,): distillation has no reward advantage."""
        return torch.zeros(inp.rewards.shape[0], dtype=torch.float32)

    def loss_counts(self, policy: TrainablePolicy, batch: TrainBatch) -> dict[str, float]:
        """``prompts``: the question groups of this micro-batch (the loss divides by the minibatch's)."""
        return {"prompts": float(len(torch.unique(batch.group_ids)))}

    # -- loss ------------------------------------------------------------------------------------

    def teacher_pass(self, policy: TrainablePolicy, batch: TrainBatch) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The teacher's side: its log-distributions at the loss tokens on the full images, and a_t.

        Returns:
            ``(log_distributions, visual_advantage)``: (N, V) on the full images, and the (B, T)
            visual advantage a_t (``None`` unless a visual-advantage option is on). The full and
            degraded passes are one batched forward of 2B rows.

        Raises:
            TokenMismatch: The teacher's token ids differ from the student's.
        """
        teacher = self.load_teacher(policy)
        trajectories = list(batch.trajectories)
        rows = len(trajectories)
        degraded = self.config.needs_degraded_view
        if degraded:
            scale = self.config.degrade_scale
            trajectories += [
                dataclasses.replace(t, images=[degrade_image(img, scale) for img in t.images])
                for t in batch.trajectories
            ]
        teacher_batch = teacher.collate(trajectories)
        for half in range(2 if degraded else 1):
            ids = teacher_batch.input_ids[half * rows : (half + 1) * rows]
            if ids.shape != batch.input_ids.shape or not torch.equal(ids.cpu(), batch.input_ids.cpu()):
                raise TokenMismatch(
                    f"the teacher's token ids differ from the student's ({'degraded' if half else 'full'} pass); "
                    "teacher and student must share the tokenizer, chat template and image processor settings."
                )
        with torch.no_grad():
            out = teacher.forward(teacher_batch, ForwardRequest(log_distributions=True, loss_positions_only=True))
        count = int((batch.loss_mask > 0).sum())
        full = out.log_distributions[:count]
        if not degraded:
            return full, None
        mask = teacher_batch.loss_mask[:rows].to(out.logprobs.device)
        return full, visual_advantage(out.logprobs[:rows], out.logprobs[rows:], mask)

    def loss(self, policy: TrainablePolicy, batch: TrainBatch) -> tuple[torch.Tensor, dict[str, float]]:
        """Σ over prompts of the weighted per-rollout KL, divided by the minibatch's prompts (module docstring)."""
        cfg = self.config
        teacher_full, visual = self.teacher_pass(policy, batch)
        out = policy.forward(batch, ForwardRequest(log_distributions=True, loss_positions_only=True))
        batch = batch_on_device(batch, out.logprobs)
        mask = batch.loss_mask > 0
        token_kl = torch.zeros_like(out.logprobs).masked_scatter(
            mask, reverse_kl(out.log_distributions, teacher_full.to(out.logprobs.device))
        )
        if visual is not None:
            visual = visual.to(out.logprobs.device)
        lengths = mask.sum(dim=-1).clamp(min=1)
        if cfg.token_grouping == "visual_advantage":
            per_rollout = grouped_token_kl(token_kl, visual, batch.loss_mask, cfg.top_ratio, cfg.high_weight)
        else:
            per_rollout = token_kl.sum(dim=-1) / lengths
        if cfg.rollout_weighting == "visual_advantage":
            mean_visual = visual.sum(dim=-1) / lengths
            weights = rollout_weights(mean_visual, batch.group_ids, cfg.weight_temperature)
        else:
            sizes = torch.unique(batch.group_ids, return_inverse=True, return_counts=True)
            weights = 1.0 / sizes[2][sizes[1]].to(per_rollout.dtype)
        prompts = (
            batch.normalizer.get("prompts")
            if batch.normalizer is not None
            else self.loss_counts(policy, batch)["prompts"]
        )
        distill = (weights.detach() * per_rollout).sum() / max(prompts, 1.0)
        loss = cfg.kl_coef * distill
        with torch.no_grad():
            metrics = {
                "train/loss": float(loss.item()),
                "train/distill_kl": float(distill.item()),
                "train/distill_kl_token_mean": float(masked_mean(token_kl, batch.loss_mask).item()),
                "train/entropy": float(masked_mean(out.entropy.detach(), batch.loss_mask).item()),
                "train/rollout_weight_max": float(weights.max().item()) if weights.numel() else 0.0,
            }
            if visual is not None:
                metrics["train/visual_advantage_mean"] = float(masked_mean(visual, batch.loss_mask).item())
        return loss, metrics


@ALGORITHMS.register("va_opd")
class VAOPD(OPD):
    """VA-OPD: OPD with rollouts weighted and tokens grouped by the teacher's visual advantage."""

    config_class = VAOPDConfig
    config: VAOPDConfig


__all__ = [
    "OPD",
    "VAOPD",
    "OPDConfig",
    "TokenMismatch",
    "VAOPDConfig",
    "degrade_image",
    "grouped_token_kl",
    "reverse_kl",
    "rollout_weights",
    "visual_advantage",
]
