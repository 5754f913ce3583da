"""Aggregation with a LossNormalizer: any split of a batch's rows adds up to the unsplit value (property-based)."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from mapo_agent.algorithms.losses import LOSS_AGG_MODES, aggregate, entropy_bonus, ppo_clip_loss
from mapo_agent.types import LossNormalizer


def normalizer_of(mask: torch.Tensor) -> LossNormalizer:
    per_row = mask.sum(dim=-1)
    return LossNormalizer(
        tokens=float(per_row.sum()), sequences_with_tokens=float((per_row > 0).sum()), sequences=float(mask.shape[0])
    )


@st.composite
def batches(draw):
    rows, width = draw(st.integers(1, 8)), draw(st.integers(1, 12))
    seed = draw(st.integers(0, 2**31 - 1))
    generator = torch.Generator().manual_seed(seed)
    values = torch.randn(rows, width, generator=generator, dtype=torch.float64)
    lengths = torch.randint(0, width + 1, (rows,), generator=generator)
    mask = (torch.arange(width)[None, :] < lengths[:, None]).to(torch.float64)
    cuts = sorted(set(draw(st.lists(st.integers(1, rows - 1), max_size=rows - 1)) if rows > 1 else []))
    return values, mask, cuts


def split(tensor: torch.Tensor, cuts: list[int]) -> list[torch.Tensor]:
    """Row chunks at ``cuts`` (micro-batches of the batch)."""
    bounds = [0, *cuts, tensor.shape[0]]
    return [tensor[a:b] for a, b in zip(bounds, bounds[1:])]


@settings(max_examples=200, deadline=None)
@given(batches(), st.sampled_from(LOSS_AGG_MODES), st.sampled_from([None, 7]))
def test_micro_batch_shares_add_up_to_the_batch_value(batch, mode, norm_length):
    values, mask, cuts = batch
    if mode == "seq-mean-token-sum-norm" and norm_length is None:
        norm_length = values.shape[-1]  # the constant L must not depend on a chunk's padded width
    whole = aggregate(values, mask, mode, norm_length)
    norm = normalizer_of(mask)
    chunks = zip(split(values, cuts), split(mask, cuts))
    parts = [aggregate(v, m, mode, norm_length, normalizer=norm) for v, m in chunks]
    assert float(sum(parts)) == pytest.approx(float(whole), rel=1e-9, abs=1e-12)


@settings(max_examples=100, deadline=None)
@given(batches(), st.sampled_from(LOSS_AGG_MODES))
def test_ppo_and_entropy_terms_split_the_same_way(batch, mode):
    values, mask, cuts = batch
    logprobs = -values.abs()
    old = logprobs + 0.1 * torch.tanh(values)
    advantages = torch.cos(values)
    length = values.shape[-1]
    norm = normalizer_of(mask)
    whole, _ = ppo_clip_loss(logprobs, old, advantages, mask, agg=mode, norm_length=length)
    parts = [
        ppo_clip_loss(lp, o, a, m, agg=mode, norm_length=length, normalizer=norm)[0]
        for lp, o, a, m in zip(split(logprobs, cuts), split(old, cuts), split(advantages, cuts), split(mask, cuts))
    ]
    assert float(sum(parts)) == pytest.approx(float(whole), rel=1e-9, abs=1e-12)
    whole_entropy = entropy_bonus(values, mask, 0.3, mode, length)
    entropy_parts = [
        entropy_bonus(v, m, 0.3, mode, length, normalizer=norm) for v, m in zip(split(values, cuts), split(mask, cuts))
    ]
    assert float(sum(entropy_parts)) == pytest.approx(float(whole_entropy), rel=1e-9, abs=1e-12)


def test_a_normalizer_without_the_requested_extra_count_says_what_is_missing():
    norm = LossNormalizer(tokens=3, sequences_with_tokens=1, sequences=1, extra={"caption_weight": 2.0})
    assert norm.get("caption_weight") == 2.0
    with pytest.raises(KeyError, match="loss_counts"):
        norm.get("pointing_events")
