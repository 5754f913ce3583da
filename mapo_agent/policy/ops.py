"""Tensor helpers of the policy: token log-probs and entropy from raw logits, PAPO patch masking, dtypes."""

from __future__ import annotations

import torch

from mapo_agent.types import PatchMask
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
    mask: PatchMask,
    black: torch.Tensor | None = None,
    num_channels: int = 3,
) -> torch.Tensor:
    """PAPO's masked view: each patch of each selected image is masked with probability ``mask.ratio``.

    Each row of ``pixel_values`` is one vision patch (``C * temporal * patch * patch`` values, channel
    first; 14x14 pixels for Qwen2-VL, the patch size of PAPO's ``random_patch_blackening``). For image
    i with seed ``mask.image_seeds[i]`` (``None``: untouched), a CPU generator seeded with it draws an
    independent Bernoulli(``ratio``) per patch; masked patches become black (``fill="black"``:
    ``black``, the normalised value of pixel 0 per channel) or the image's per-channel mean
    (``"mean"``). The same seed and grid give the same mask, whatever the batch.

    Args:
        pixel_values: (N, D) patch rows of every image, in order.
        image_grid_thw: (I, 3) patch grid of each image.
        mask: What to mask (:class:`~mapo_agent.types.PatchMask`).
        black: (C,) normalised value of a black pixel; required for ``fill="black"``.
        num_channels: Image channels (3 for RGB).

    Returns:
        A masked copy of ``pixel_values``.

    Raises:
        ConfigError: A ratio outside (0, 1], a seed list of the wrong length, an unknown fill, or
            ``fill="black"`` without ``black``.
    """
    if not 0.0 < mask.ratio <= 1.0:
        raise ConfigError(f"PatchMask.ratio must be in (0, 1], got {mask.ratio}")
    if len(mask.image_seeds) != image_grid_thw.shape[0]:
        raise ConfigError(
            f"PatchMask.image_seeds has {len(mask.image_seeds)} entries for {image_grid_thw.shape[0]} images; "
            "give one (seed or None) per image of the batch, row by row."
        )
    if mask.fill not in ("black", "mean") or (mask.fill == "black" and black is None):
        raise ConfigError(f"PatchMask.fill must be 'black' (with the black value) or 'mean', got {mask.fill!r}")
    out = pixel_values.clone()
    start = 0
    for seed, grid in zip(mask.image_seeds, image_grid_thw.tolist()):
        n = grid[0] * grid[1] * grid[2]
        if seed is not None:
            rows = out[start : start + n].view(n, num_channels, -1)  # (n, C, T*P*P)
            drop = torch.rand(n, generator=torch.Generator().manual_seed(int(seed))) < mask.ratio  # (n,)
            if mask.fill == "black":
                value = black.to(rows.dtype).to(rows.device).view(1, num_channels, 1)  # type: ignore[union-attr]
            else:
                value = rows.mean(dim=(0, 2), keepdim=True)  # (1, C, 1)
            rows[drop.to(rows.device)] = value.expand(int(drop.sum()), -1, rows.shape[-1])
        start += n
    return out
