"""Tensor helpers of the policy: token log-probs and entropy from raw logits, PAPO patch masking, dtypes."""

from __future__ import annotations

import torch

from mapo_env.errors import ConfigError

DTYPES = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16}
DTYPES.update({"float16": torch.float16, "fp16": torch.float16})


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``device``, or CUDA when available, else CPU."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def resolve_dtype(dtype: str | torch.dtype | None, device: torch.device) -> torch.dtype:
    """``dtype`` (a torch dtype or a name such as ``"bf16"``), or bf16 on GPU and fp32 on CPU."""
    if dtype is None:
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype not in DTYPES:
        raise ConfigError(f"dtype must be a torch.dtype or one of {sorted(DTYPES)}, got {dtype!r}")
    return DTYPES[dtype]


def sampled_logprobs(logits: torch.Tensor, tokens: torch.Tensor, temperature: float) -> torch.Tensor:
    """Log-prob of each sampled token under ``softmax(logits / temperature)``.

    Args:
        logits: (B, N, V) raw (unprocessed) next-token logits.
        tokens: (B, N) the tokens that followed.
        temperature: Sampling temperature (> 0).

    Returns:
        (B, N) float32 log-probs.
    """
    logprobs = torch.log_softmax(logits.float() / temperature, dim=-1)  # (B, N, V)
    return logprobs.gather(-1, tokens.unsqueeze(-1)).squeeze(-1)  # (B, N)


def token_logprobs_and_entropy(
    logits: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor, temperature: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Teacher-forced log-prob of each token and entropy of the distribution that predicted it.

    Args:
        logits: (B, T, V) logits of a forward pass over ``input_ids``.
        input_ids: (B, T) tokens.
        attention_mask: (B, T) 1 on real tokens.
        temperature: Divides the logits before the softmax (the sampling temperature).

    Returns:
        ``(logprobs, entropy)``, both (B, T) float32, 0 at t = 0 and on padding.
    """
    logprobs = torch.log_softmax(logits[:, :-1].float() / temperature, dim=-1)  # (B, T-1, V)
    token_logprobs = logprobs.gather(-1, input_ids[:, 1:].unsqueeze(-1)).squeeze(-1)  # (B, T-1)
    entropy = -(logprobs.exp() * logprobs).sum(-1)  # (B, T-1)
    first = torch.zeros_like(token_logprobs[:, :1])  # (B, 1)
    mask = attention_mask.to(token_logprobs.dtype)
    return torch.cat([first, token_logprobs], dim=1) * mask, torch.cat([first, entropy], dim=1) * mask


def mask_image_patches(
    pixel_values: torch.Tensor,
    image_grid_thw: torch.Tensor,
    ratio: float,
    generator: torch.Generator | None = None,
    num_channels: int = 3,
) -> torch.Tensor:
    """PAPO's masked view: replace a random ``ratio`` of each image's patches by that image's mean colour.

    Each row of ``pixel_values`` is one vision patch (``C * temporal * patch * patch`` values, channel
    first). For every image, ``round(ratio * n)`` of its ``n = t * h * w`` rows (at least one when
    ``ratio > 0``) are chosen uniformly without replacement and set to the image's per-channel mean
    (in the normalised space the vision tower sees).

    Args:
        pixel_values: (N, D) patch rows of every image, in order.
        image_grid_thw: (I, 3) patch grid of each image.
        ratio: Fraction of patches to mask, in [0, 1].
        generator: CPU random generator (for reproducible masks).
        num_channels: Image channels (3 for RGB).

    Returns:
        A masked copy of ``pixel_values``.
    """
    if not 0.0 <= ratio <= 1.0:
        raise ConfigError(f"image_patch_mask_ratio must be in [0, 1], got {ratio}")
    out = pixel_values.clone()
    if ratio == 0.0:
        return out
    start = 0
    for grid in image_grid_thw.tolist():
        n = grid[0] * grid[1] * grid[2]
        rows = out[start : start + n].view(n, num_channels, -1)  # (n, C, T*P*P)
        mean = rows.mean(dim=(0, 2), keepdim=True)  # (1, C, 1)
        k = max(1, round(ratio * n))
        chosen = torch.randperm(n, generator=generator)[:k].to(out.device)
        rows[chosen] = mean.expand(k, -1, rows.shape[-1])
        start += n
    return out
