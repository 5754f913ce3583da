"""Loss building blocks: token aggregation, PPO-clip surrogate, k3 KL, entropy term, DAPO length shaping.

All functions are pure: tensors in, tensors out, no model or optimizer. Token tensors are (B, T)
and aligned with :class:`~mapo_agent.types.TrainBatch` (``loss_mask`` is 1 on policy-generated
tokens). Losses are quantities to *minimise*.
"""

from __future__ import annotations

from typing import Literal

import torch

from mapo_agent.types import LossNormalizer
from mapo_env.errors import ConfigError

LossAggMode = Literal["token-mean", "seq-mean-token-mean", "seq-mean-token-sum", "seq-mean-token-sum-norm"]
"""How (B, T) token losses become one scalar:

- ``"token-mean"``: Σ_{i,t} m·x / Σ_{i,t} m, every token in the batch weighs the same (DAPO, verl default).
- ``"seq-mean-token-mean"``: mean over sequences of each sequence's token mean (original GRPO).
- ``"seq-mean-token-sum"``: mean over sequences of each sequence's token sum.
- ``"seq-mean-token-sum-norm"``: Σ_{i,t} m·x / (B·L) with a constant L (Dr.GRPO): ``norm_length`` if
  given, else the padded width T. Sequences are never divided by their own length.

Sequences with no loss token are left out of the sequence means. An all-zero mask gives 0.

Micro-batches: with a :class:`~mapo_agent.types.LossNormalizer` (the counts of the whole minibatch), every
mode divides by the minibatch's counts instead of the batch's own (Σ over tokens / N_tokens; Σ over
sequences / N_sequences_with_tokens; Σ / (N_sequences · L)), so the losses of the micro-batches add up
to the loss of the unsplit minibatch, and so do their gradients.
"""

LOSS_AGG_MODES: tuple[str, ...] = LossAggMode.__args__  # type: ignore[attr-defined]

# Clamps of verl / EasyR1 ``compute_kl(..., "low_var_kl")``.
LOG_RATIO_CLAMP = 20.0
K3_CLAMP = 10.0


def broadcast_advantages(advantages: torch.Tensor | None, loss_mask: torch.Tensor) -> torch.Tensor:
    """(B, T) per-token advantages: (B,) per-sequence or (B, T) per-token advantages times the loss mask.

    Args:
        advantages: (B,) one per sequence (an estimator's output) or (B, T) one per token (T = the
            batch's padded width); ``None`` gives zeros.
        loss_mask: (B, T) 0/1 loss mask.

    Returns:
        (B, T) float32 on ``loss_mask``'s device, detached, 0 off the mask.

    Raises:
        ConfigError: ``advantages`` has neither shape.
    """
    if advantages is None:
        return torch.zeros_like(loss_mask, dtype=torch.float32)
    adv = torch.as_tensor(advantages, dtype=torch.float32).detach().to(loss_mask.device)
    if adv.shape == loss_mask.shape[:1]:
        return adv[:, None] * loss_mask
    if adv.shape == loss_mask.shape:
        return adv * loss_mask
    raise ConfigError(
        f"advantages must have shape (B,) = {tuple(loss_mask.shape[:1])} or (B, T) = {tuple(loss_mask.shape)}, "
        f"got {tuple(adv.shape)}."
    )


def aggregate(
    values: torch.Tensor,
    mask: torch.Tensor,
    mode: LossAggMode = "token-mean",
    norm_length: int | None = None,
    *,
    normalizer: LossNormalizer | None = None,
) -> torch.Tensor:
    """Reduce (B, T) per-token values to a scalar over the tokens where ``mask`` is 1.

    Args:
        values: (B, T) per-token values (NaN off the mask is ignored).
        mask: (B, T) 0/1 loss mask.
        mode: One of :data:`LossAggMode`.
        norm_length: Constant divisor for ``"seq-mean-token-sum-norm"`` (e.g. the configured
            maximum response length); ``None`` uses T.
        normalizer: The counts of the whole minibatch this batch is a micro-batch of; ``None``
            divides by this batch's own counts.

    Returns:
        A scalar tensor (differentiable in ``values``): with ``normalizer``, this micro-batch's share
        of the minibatch's value.

    Raises:
        ConfigError: Unknown ``mode``, mismatched shapes, or ``norm_length`` < 1.
    """
    if values.shape != mask.shape:
        raise ConfigError(
            f"values and mask must have the same (B, T) shape, got {tuple(values.shape)} and {tuple(mask.shape)}."
        )
    mask = mask.to(values.dtype)
    masked = torch.where(mask > 0, values, torch.zeros_like(values)) * mask  # (B, T)
    if mode == "token-mean":
        return masked.sum() / (mask.sum().clamp(min=1) if normalizer is None else max(normalizer.tokens, 1.0))
    seq_tokens = mask.sum(dim=-1)  # (B,)
    has_tokens = (seq_tokens > 0).to(values.dtype)  # (B,)
    num_seqs = has_tokens.sum().clamp(min=1) if normalizer is None else max(normalizer.sequences_with_tokens, 1.0)
    if mode == "seq-mean-token-mean":
        return (masked.sum(dim=-1) / seq_tokens.clamp(min=1)).sum() / num_seqs
    if mode == "seq-mean-token-sum":
        return masked.sum(dim=-1).sum() / num_seqs
    if mode == "seq-mean-token-sum-norm":
        if norm_length is not None and norm_length < 1:
            raise ConfigError(f"norm_length must be >= 1 or None, got {norm_length!r}.")
        length = norm_length if norm_length is not None else values.shape[-1]
        rows = values.shape[0] if normalizer is None else normalizer.sequences
        return masked.sum() / (rows * length if rows else 1)
    raise ConfigError(f"Unknown loss aggregation mode {mode!r}; choose one of {list(LOSS_AGG_MODES)}.")


def masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Token mean of ``values`` over ``mask`` (0 for an empty mask)."""
    return aggregate(values, mask, "token-mean")


def ppo_clip_loss(
    logprobs: torch.Tensor,
    old_logprobs: torch.Tensor,
    advantages: torch.Tensor,
    loss_mask: torch.Tensor,
    clip_low: float = 0.2,
    clip_high: float = 0.28,
    dual_clip: float | None = None,
    agg: LossAggMode = "token-mean",
    norm_length: int | None = None,
    *,
    normalizer: LossNormalizer | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """PPO clipped surrogate with asymmetric ("clip-higher") bounds and optional dual clip.

    Per token, with r = exp(logprobs − old_logprobs) and advantage A::

        ℓ = max(−A·r, −A·clip(r, 1 − clip_low, 1 + clip_high))
        ℓ = min(ℓ, −A·dual_clip)   where A < 0   (dual clip, Ye et al. 2020; PAPO uses 3.0)

    then aggregated over the loss mask with ``agg``. With r = 1 everywhere the loss is
    −agg(A), e.g. minus the mean advantage over loss tokens for ``"token-mean"``.

    Args:
        logprobs: (B, T) current log-probs (with gradient).
        old_logprobs: (B, T) log-probs at generation time.
        advantages: (B, T) per-token advantages, or (B,) per-sequence advantages (broadcast).
        loss_mask: (B, T) 1 on policy-generated tokens.
        clip_low: ε_low (ratio floor 1 − ε_low).
        clip_high: ε_high (ratio ceiling 1 + ε_high).
        dual_clip: Constant C > 1 bounding the loss of negative-advantage tokens, or ``None``.
        agg: Aggregation mode (see :data:`LossAggMode`).
        norm_length: Constant for ``"seq-mean-token-sum-norm"``.
        normalizer: Counts of the whole minibatch (micro-batches); see :func:`aggregate`.

    Returns:
        ``(loss, metrics)``: the scalar loss, and ``clip_frac`` (fraction of loss tokens where the
        clipped term was active), ``approx_kl`` (token mean of the k3 estimate (r − 1) − log r of
        KL(π_old‖π_θ), http://joschu.net/blog/kl-approx.html), ``ratio_mean``, all floats.
    """
    if dual_clip is not None and not dual_clip > 1:
        raise ConfigError(f"dual_clip must be > 1 or None, got {dual_clip!r}; PAPO uses 3.0.")
    if advantages.dim() == 1:
        advantages = advantages.unsqueeze(-1).expand_as(logprobs)  # (B, T)
    log_ratio = (logprobs - old_logprobs).clamp(-LOG_RATIO_CLAMP, LOG_RATIO_CLAMP)  # (B, T)
    ratio = torch.exp(log_ratio)
    loss_unclipped = -advantages * ratio
    loss_clipped = -advantages * ratio.clamp(1 - clip_low, 1 + clip_high)
    token_loss = torch.maximum(loss_unclipped, loss_clipped)  # (B, T)
    if dual_clip is not None:
        token_loss = torch.where(advantages < 0, torch.minimum(token_loss, -advantages * dual_clip), token_loss)
    loss = aggregate(token_loss, loss_mask, agg, norm_length, normalizer=normalizer)
    with torch.no_grad():
        mask = loss_mask.to(logprobs.dtype)
        metrics = {
            "clip_frac": masked_mean((loss_clipped > loss_unclipped).to(logprobs.dtype), mask).item(),
            "approx_kl": masked_mean((ratio - 1) - log_ratio, mask).item(),
            "ratio_mean": masked_mean(ratio, mask).item(),
        }
    return loss, metrics


def k3_kl(logprobs: torch.Tensor, ref_logprobs: torch.Tensor) -> torch.Tensor:
    """Per-token k3 ("low_var_kl") estimate of KL(π_θ ‖ π_ref) on tokens sampled from π_θ.

    kl = clamp(ref_logprobs − logprobs, ±20); k3 = clamp(exp(kl) − kl − 1, ±10) (the clamps of
    verl / EasyR1). Non-negative up to the clamp; 0 where the two log-probs agree.

    Args:
        logprobs: (B, T) log-probs under the trained policy (gradient flows through these).
        ref_logprobs: (B, T) log-probs under the other policy (reference, or PAPO's masked view).

    Returns:
        (B, T) per-token k3 values (aggregate them with :func:`aggregate`).
    """
    kl = (ref_logprobs - logprobs).clamp(-LOG_RATIO_CLAMP, LOG_RATIO_CLAMP)
    return (torch.exp(kl) - kl - 1).clamp(-K3_CLAMP, K3_CLAMP)


def entropy_bonus(
    entropy: torch.Tensor,
    loss_mask: torch.Tensor,
    coef: float,
    agg: LossAggMode = "token-mean",
    norm_length: int | None = None,
    *,
    normalizer: LossNormalizer | None = None,
) -> torch.Tensor:
    """Loss term −coef·agg(entropy): adding it to the loss *raises* entropy when ``coef`` > 0.

    A negative ``coef`` penalises entropy instead (PAPO's double-entropy regulariser keeps entropy
    low; see :mod:`mapo_agent.algorithms.papo`).

    Args:
        entropy: (B, T) per-token entropies (full-distribution entropy, or −logprob of the sampled
            token as a one-sample estimate).
        loss_mask: (B, T) 1 on policy-generated tokens.
        coef: Weight of the bonus.
        agg: Aggregation mode.
        norm_length: Constant for ``"seq-mean-token-sum-norm"``.
        normalizer: Counts of the whole minibatch (micro-batches); see :func:`aggregate`.

    Returns:
        A scalar tensor.
    """
    return -coef * aggregate(entropy, loss_mask, agg, norm_length, normalizer=normalizer)


def overlong_penalty(
    lengths: torch.Tensor, max_response_tokens: int, overlong_buffer: int, penalty_factor: float = 1.0
) -> torch.Tensor:
    """DAPO's soft overlong punishment R_len (arXiv 2503.14476, §3.4), times ``penalty_factor``.

    With L_max = ``max_response_tokens`` and L_cache = ``overlong_buffer``::

        R_len(y) = 0                               if |y| <= L_max − L_cache
                 = ((L_max − L_cache) − |y|) / L_cache   if L_max − L_cache < |y| <= L_max
                 = −1                              if |y| > L_max

    Args:
        lengths: (B,) number of generated tokens per response.
        max_response_tokens: L_max > 0.
        overlong_buffer: L_cache, 0 < L_cache <= L_max (a buffer of 0 is a hard −1 past L_max;
            use ``penalty_factor=0`` to turn shaping off).
        penalty_factor: Scale of the penalty (verl's ``overlong_buffer.penalty_factor``).

    Returns:
        (B,) float32 penalties in [−penalty_factor, 0], to add to the rewards.
    """
    if not 0 <= overlong_buffer <= max_response_tokens or max_response_tokens < 1:
        raise ConfigError(
            f"need 0 <= overlong_buffer <= max_response_tokens and max_response_tokens >= 1, got "
            f"overlong_buffer={overlong_buffer!r}, max_response_tokens={max_response_tokens!r}."
        )
    lengths = lengths.to(torch.float32)
    start = max_response_tokens - overlong_buffer
    if overlong_buffer == 0:
        ramp = torch.zeros_like(lengths)
    else:
        ramp = ((start - lengths) / overlong_buffer).clamp(max=0.0)
    penalty = torch.where(lengths > max_response_tokens, torch.full_like(lengths, -1.0), ramp)
    return penalty * penalty_factor
