"""VGPO (Visually-Guided Policy Optimization, arXiv 2604.09349): re-weight advantages by visual focus.

DAPO-style training (GRPO advantage, clip 0.2 / 0.28, no KL, dynamic sampling on, token-mean loss)
whose advantages are re-weighted per token and per trajectory (the paper's Eqs. 4-11; authors' code
github.com/wzb-bupt/VGPO @ d773c71). From the update's own forward pass (``ForwardRequest(hidden_states=True)``;
all weights are detached)::

    S_{i,t}  = cos(h_{i,t}, μ_i)      h: last-layer hidden state at generated token t,
                                      μ_i: mean hidden state over the image tokens of sequence i
    ρ_{i,t}  = minmax over the batch's loss tokens of S (code; "affine": 0.5·(S + 1), paper)
    C_{i,t}  = β · t / T_i             (t = 1..T_i over loss tokens; β = compensation_coef 0.3)
    G_{i,t}  = 1[t in the last (1 − γ) of the sequence and ρ_{i,t} among its top-κ]   (γ 0.5, κ 0.2)
    w_{i,t}  = ρ_{i,t} · (1 + G_{i,t}·C_{i,t})
    ŵ        = per-sequence min-max of w;  f_intra = clip(1 + ŵ − mean_t ŵ, 0.1, 2.0)
    s_i      = Σ_t ŵ_{i,t};  ŝ = min-max of s within the question group;
               f_inter = clip(1 + ŝ − mean_group ŝ, 0.9, 2.0)
    Â^V      = Â · f_intra · f_inter   (replaces Â in PPO-clip; rewards unchanged)

Choices where the sources are silent or buggy: groups are formed by ``batch.group_ids`` over the
whole batch given to :meth:`VGPO.loss` (the released code assumes consecutive rows of a micro-batch;
the trainer keeps groups whole in micro-batches, :attr:`VGPO.needs_whole_groups`); the batch min-max
(over the micro-batch the loss is given, as in the released code) runs over loss tokens only (the code
also counts padding); h is taken at the generated token's own position; min-max of a constant is 0;
a row without image tokens keeps its advantages unchanged (both factors 1).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F

from mapo_agent.algorithms.advantages import check_choice
from mapo_agent.algorithms.base import ALGORITHMS
from mapo_agent.algorithms.grpo import GRPO, GRPOConfig
from mapo_agent.algorithms.losses import LossAggMode
from mapo_agent.types import ForwardOutput, ForwardRequest, TrainBatch
from mapo_env.errors import ConfigError

FocusNormalization = Literal["batch_minmax", "affine"]
MINMAX_EPS = 1e-8


def visual_focus(hidden_states: torch.Tensor, image_token_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Cosine between each position's hidden state and its sequence's mean image-token hidden state.

    Args:
        hidden_states: (B, T, D) last-layer hidden states.
        image_token_mask: (B, T) bool, True at image placeholder tokens.

    Returns:
        ``(cos, has_image)``: (B, T) cosine similarities (detached, float32) and (B,) whether the
        sequence has any image token (rows without one have cos 0).
    """
    hidden = hidden_states.detach().float()
    image = image_token_mask.to(hidden.dtype).unsqueeze(-1)  # (B, T, 1)
    counts = image.sum(dim=1)  # (B, 1)
    prototype = (hidden * image).sum(dim=1) / counts.clamp(min=1)  # (B, D)
    cos = F.cosine_similarity(hidden, prototype.unsqueeze(1), dim=-1, eps=MINMAX_EPS)  # (B, T)
    has_image = counts.squeeze(-1) > 0
    return torch.where(has_image.unsqueeze(-1), cos, torch.zeros_like(cos)), has_image


def normalize_focus(cos: torch.Tensor, token_mask: torch.Tensor, mode: FocusNormalization) -> torch.Tensor:
    """ρ in [0, 1] on ``token_mask`` (0 elsewhere): batch min-max (``"batch_minmax"``) or 0.5·(cos + 1).

    A constant batch under ``"batch_minmax"`` gives ρ = 1 on every token.
    """
    if mode == "affine":
        rho = 0.5 * (cos + 1)
    else:
        values = cos[token_mask]
        if values.numel() == 0 or values.max() == values.min():
            rho = torch.ones_like(cos)
        else:
            rho = (cos - values.min()) / (values.max() - values.min())
    return torch.where(token_mask, rho, torch.zeros_like(rho))


def attention_compensation(
    rho: torch.Tensor, token_mask: torch.Tensor, coef: float, start: float, top_ratio: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Weights w = ρ·(1 + G·C): boost the top-κ focus tokens of each sequence's late tail, linearly in position.

    Args:
        rho: (B, T) normalised focus.
        token_mask: (B, T) bool loss tokens.
        coef: β, the compensation at the last token.
        start: γ, the tail starts at loss token ⌊γ·T_i⌋ (0-based).
        top_ratio: κ, the gate keeps the max(1, int(κ·n_tail)) highest-ρ tail tokens (ties included).

    Returns:
        ``(w, gate)``: (B, T) weights (0 off the mask) and the (B, T) bool gate G.
    """
    mask = token_mask.to(rho.dtype)
    position = torch.cumsum(mask, dim=-1)  # (B, T) 1-based index among loss tokens
    lengths = mask.sum(dim=-1, keepdim=True)  # (B, 1)
    compensation = coef * position / lengths.clamp(min=1)  # (B, T)
    tail = token_mask & (position - 1 >= torch.floor(start * lengths))
    gate = torch.zeros_like(token_mask)
    for row in range(rho.shape[0]):
        tail_rho = rho[row][tail[row]]
        if tail_rho.numel() == 0:
            continue
        k = max(1, int(top_ratio * tail_rho.numel()))
        threshold = torch.topk(tail_rho, k).values[-1]
        gate[row] = tail[row] & (rho[row] >= threshold)
    weights = rho * (1 + gate.to(rho.dtype) * compensation)
    return torch.where(token_mask, weights, torch.zeros_like(weights)), gate


def dual_grained_factors(
    weights: torch.Tensor,
    token_mask: torch.Tensor,
    group_ids: torch.Tensor,
    row_valid: torch.Tensor,
    intra_range: tuple[float, float] = (0.1, 2.0),
    inter_range: tuple[float, float] = (0.9, 2.0),
) -> tuple[torch.Tensor, torch.Tensor]:
    """Token factors f_intra (B, T) and trajectory factors f_inter (B,) from the weights w.

    Rows where ``row_valid`` is False (no image token, or no loss token) get factor 1 and are left
    out of their group's statistics. A group with one valid row gets f_inter = 1.
    """
    row_valid = row_valid & token_mask.any(dim=-1)
    inf = torch.full_like(weights, math.inf)
    w_min = torch.where(token_mask, weights, inf).amin(dim=-1, keepdim=True)  # (B, 1)
    w_max = torch.where(token_mask, weights, -inf).amax(dim=-1, keepdim=True)
    w_hat = torch.where(token_mask, (weights - w_min) / (w_max - w_min + MINMAX_EPS), torch.zeros_like(weights))
    lengths = token_mask.sum(dim=-1).clamp(min=1)  # (B,)
    psi = w_hat - (w_hat.sum(dim=-1) / lengths).unsqueeze(-1)
    intra = (1 + psi).clamp(*intra_range)
    intra = torch.where(token_mask & row_valid.unsqueeze(-1), intra, torch.ones_like(intra))
    s = w_hat.sum(dim=-1)  # (B,) visual accumulation
    s_hat = _group_minmax(s, group_ids, row_valid)
    phi = s_hat - _group_mean(s_hat, group_ids, row_valid)
    inter = torch.where(row_valid, (1 + phi).clamp(*inter_range), torch.ones_like(phi))
    return intra, inter


def _group_index(group_ids: torch.Tensor) -> tuple[torch.Tensor, int]:
    _, inverse = torch.unique(group_ids, return_inverse=True)
    return inverse, (int(inverse.max().item()) + 1 if inverse.numel() else 0)


def _group_minmax(values: torch.Tensor, group_ids: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    inverse, num_groups = _group_index(group_ids)
    inf = torch.full_like(values, math.inf)
    lo = torch.full((num_groups,), math.inf, dtype=values.dtype, device=values.device)
    hi = torch.full((num_groups,), -math.inf, dtype=values.dtype, device=values.device)
    lo = lo.scatter_reduce(0, inverse, torch.where(valid, values, inf), "amin")[inverse]
    hi = hi.scatter_reduce(0, inverse, torch.where(valid, values, -inf), "amax")[inverse]
    return torch.where(valid, (values - lo) / (hi - lo + MINMAX_EPS), torch.zeros_like(values))


def _group_mean(values: torch.Tensor, group_ids: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    inverse, num_groups = _group_index(group_ids)
    zeros = torch.zeros(num_groups, dtype=values.dtype, device=values.device)
    sums = zeros.index_add(0, inverse, torch.where(valid, values, torch.zeros_like(values)))
    counts = zeros.index_add(0, inverse, valid.to(values.dtype))
    return (sums / counts.clamp(min=1))[inverse]


@dataclass
class VGPOConfig(GRPOConfig):
    """GRPO config with VGPO's defaults and knobs (see :class:`GRPOConfig` for the shared fields).

    Attributes:
        loss_agg_mode: ``"token-mean"`` (the released code's DAPO-style base).
        clip_high: 0.28 (clip-higher, as the released training script).
        kl_coef: 0 (``disable_kl`` in the released script).
        dynamic_sampling: Drop all-correct / all-wrong groups and refill the batch (on, DAPO-style).
        compensation_coef: β, the late-token compensation at the last token (0.3).
        compensation_start: γ, fraction of each sequence before the compensated tail (0.5).
        compensation_top_ratio: κ, fraction of tail tokens (highest focus) compensated (0.2).
        focus_normalization: ``"batch_minmax"`` (released code) or ``"affine"`` 0.5·(cos + 1) (paper).
        intra_factor_min: Lower clip of the token factor (0.1).
        intra_factor_max: Upper clip of the token factor (2.0).
        inter_factor_min: Lower clip of the trajectory factor (0.9).
        inter_factor_max: Upper clip of the trajectory factor (2.0).
    """

    loss_agg_mode: LossAggMode = "token-mean"
    clip_high: float = 0.28
    kl_coef: float = 0.0
    dynamic_sampling: bool = True
    compensation_coef: float = 0.3
    compensation_start: float = 0.5
    compensation_top_ratio: float = 0.2
    focus_normalization: FocusNormalization = "batch_minmax"
    intra_factor_min: float = 0.1
    intra_factor_max: float = 2.0
    inter_factor_min: float = 0.9
    inter_factor_max: float = 2.0

    def __post_init__(self) -> None:
        super().__post_init__()
        check_choice("focus_normalization", self.focus_normalization, FocusNormalization)
        if not self.compensation_coef >= 0:
            raise ConfigError(f"compensation_coef must be >= 0, got {self.compensation_coef!r}; VGPO uses 0.3.")
        if not 0 <= self.compensation_start < 1:
            raise ConfigError(f"compensation_start must be in [0, 1), got {self.compensation_start!r}; VGPO uses 0.5.")
        if not 0 < self.compensation_top_ratio <= 1:
            raise ConfigError(
                f"compensation_top_ratio must be in (0, 1], got {self.compensation_top_ratio!r}; VGPO uses 0.2."
            )
        for kind in ("intra", "inter"):
            lo, hi = getattr(self, f"{kind}_factor_min"), getattr(self, f"{kind}_factor_max")
            if not 0 <= lo <= 1 <= hi:
                raise ConfigError(
                    f"need 0 <= {kind}_factor_min <= 1 <= {kind}_factor_max, got {lo!r} and {hi!r}; "
                    "VGPO uses 0.1/2.0 (intra) and 0.9/2.0 (inter)."
                )


@ALGORITHMS.register("vgpo")
class VGPO(GRPO):
    """DAPO-style PPO-clip with visually-guided token- and trajectory-level advantage re-weighting."""

    config_class = VGPOConfig
    config: VGPOConfig
    needs_whole_groups = True

    def forward_request(self) -> ForwardRequest:
        """Ask the policy for last-layer hidden states (no extra forward pass)."""
        return ForwardRequest(hidden_states=True)

    def token_advantages(self, batch: TrainBatch, out: ForwardOutput) -> tuple[torch.Tensor, dict[str, float]]:
        """Â^V = Â · f_intra · f_inter, with focus metrics.

        Raises:
            ConfigError: The policy returned no hidden states or no image-token mask.
        """
        if out.hidden_states is None or out.image_token_mask is None:
            raise ConfigError(
                "VGPO needs ForwardOutput.hidden_states and .image_token_mask, got None; the policy must fill "
                "them when forward(batch, ForwardRequest(hidden_states=True)) is called."
            )
        cfg = self.config
        token_mask = batch.loss_mask > 0  # (B, T)
        cos, has_image = visual_focus(out.hidden_states, out.image_token_mask)
        rho = normalize_focus(cos, token_mask & has_image.unsqueeze(-1), cfg.focus_normalization)
        weights, gate = attention_compensation(
            rho, token_mask, cfg.compensation_coef, cfg.compensation_start, cfg.compensation_top_ratio
        )
        intra, inter = dual_grained_factors(
            weights,
            token_mask,
            batch.group_ids,
            has_image,
            (cfg.intra_factor_min, cfg.intra_factor_max),
            (cfg.inter_factor_min, cfg.inter_factor_max),
        )
        advantages = batch.advantages * intra * inter.unsqueeze(-1)  # (B, T)
        focus_tokens = token_mask & has_image.unsqueeze(-1)
        count = max(int(focus_tokens.sum().item()), 1)
        metrics = {
            "train/visual_focus_mean": float(rho[focus_tokens].sum().item() / count),
            "train/compensated_frac": float(gate[focus_tokens].sum().item() / count),
            "train/intra_factor_mean": float(intra[token_mask].mean().item()) if token_mask.any() else 1.0,
            "train/inter_factor_mean": float(inter.mean().item()) if inter.numel() else 1.0,
        }
        return advantages, metrics
