"""Loss building blocks on tiny hand-made tensors."""

import math
import re

import pytest
import torch

from mapo_agent.algorithms.losses import aggregate, entropy_bonus, k3_kl, overlong_penalty, ppo_clip_loss
from mapo_env.errors import ConfigError

VALUES = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [7.0, 8.0, 9.0]])
MASK = torch.tensor([[1.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 0.0]])  # third row has no loss token


@pytest.mark.parametrize(
    ("mode", "norm_length", "expected"),
    [
        ("token-mean", None, (1 + 2 + 4) / 3),
        ("seq-mean-token-mean", None, (1.5 + 4.0) / 2),  # empty row left out of the mean
        ("seq-mean-token-sum", None, (3.0 + 4.0) / 2),
        ("seq-mean-token-sum-norm", None, 7.0 / (3 * 3)),  # B = 3 rows, T = 3
        ("seq-mean-token-sum-norm", 10, 7.0 / (3 * 10)),
    ],
)
def test_aggregate_modes(mode, norm_length, expected):
    assert aggregate(VALUES, MASK, mode, norm_length).item() == pytest.approx(expected)


def test_aggregate_ignores_nan_off_mask_and_empty_mask_gives_zero():
    values = VALUES.clone()
    values[0, 2] = float("nan")
    assert aggregate(values, MASK).item() == pytest.approx(7 / 3)
    for mode in ("token-mean", "seq-mean-token-mean", "seq-mean-token-sum", "seq-mean-token-sum-norm"):
        assert aggregate(VALUES, torch.zeros_like(MASK), mode).item() == 0.0


def test_aggregate_gradient_only_on_mask():
    values = VALUES.clone().requires_grad_(True)
    aggregate(values, MASK, "token-mean").backward()
    torch.testing.assert_close(values.grad, MASK / 3)


def test_aggregate_errors():
    with pytest.raises(ConfigError, match=re.escape("Unknown loss aggregation mode 'seq-mean'; choose one of")):
        aggregate(VALUES, MASK, "seq-mean")
    with pytest.raises(ConfigError, match=re.escape("same (B, T) shape, got (3, 3) and (3, 2)")):
        aggregate(VALUES, MASK[:, :2])
    with pytest.raises(ConfigError, match=re.escape("norm_length must be >= 1 or None, got 0")):
        aggregate(VALUES, MASK, "seq-mean-token-sum-norm", 0)


def test_ppo_ratio_one_is_minus_mean_advantage():
    logprobs = torch.tensor([[-1.0, -2.0, -0.5], [-0.3, -0.7, -9.0]], requires_grad=True)
    adv = torch.tensor([[1.0, -3.0, 100.0], [2.0, 0.5, 100.0]])
    mask = torch.tensor([[1.0, 1.0, 0.0], [1.0, 1.0, 0.0]])
    loss, metrics = ppo_clip_loss(logprobs, logprobs.detach(), adv, mask)
    assert loss.item() == pytest.approx(-(1 - 3 + 2 + 0.5) / 4)
    assert metrics == pytest.approx({"clip_frac": 0.0, "approx_kl": 0.0, "ratio_mean": 1.0})
    loss.backward()
    # d/dlogp of -A * exp(logp - old) at ratio 1 = -A / N on the mask
    torch.testing.assert_close(logprobs.grad, torch.tensor([[-0.25, 0.75, 0.0], [-0.5, -0.125, 0.0]]))


def test_ppo_sequence_advantages_broadcast():
    logprobs = torch.zeros(2, 3)
    mask = torch.ones(2, 3)
    loss, _ = ppo_clip_loss(logprobs, logprobs, torch.tensor([1.0, -2.0]), mask)
    assert loss.item() == pytest.approx(0.5)


def test_ppo_clipped_cases():
    # four single-token rows: (ratio, advantage)
    ratios = [1.5, 1.5, 0.5, 0.5]
    advs = [1.0, -1.0, -1.0, 1.0]
    old = torch.zeros(4, 1)
    logprobs = torch.log(torch.tensor(ratios)).unsqueeze(-1).requires_grad_(True)
    mask = torch.ones(4, 1)
    loss, metrics = ppo_clip_loss(logprobs, old, torch.tensor(advs).unsqueeze(-1), mask, 0.2, 0.28)
    # row 0: max(-1.5, -1.28) = -1.28 (clipped); row 1: max(1.5, 1.28) = 1.5 (unclipped)
    # row 2: max(0.5, 0.8) = 0.8 (clipped);      row 3: max(-0.5, -0.8) = -0.5 (unclipped)
    assert loss.item() == pytest.approx((-1.28 + 1.5 + 0.8 - 0.5) / 4)
    assert metrics["clip_frac"] == pytest.approx(0.5)
    assert metrics["ratio_mean"] == pytest.approx(1.0)
    expected_kl = sum((r - 1) - math.log(r) for r in ratios) / 4
    assert metrics["approx_kl"] == pytest.approx(expected_kl, rel=1e-5)
    loss.backward()
    # clipped tokens get no gradient; unclipped get -A * ratio / 4
    assert logprobs.grad.squeeze(-1).tolist() == pytest.approx([0.0, 1.5 / 4, 0.0, -0.5 / 4])


def test_ppo_dual_clip_bounds_negative_advantage_loss():
    logprobs = torch.log(torch.tensor([[5.0], [5.0]]))
    adv = torch.tensor([[-1.0], [1.0]])
    mask = torch.ones(2, 1)
    plain, _ = ppo_clip_loss(logprobs, torch.zeros(2, 1), adv, mask, agg="seq-mean-token-sum")
    dual, _ = ppo_clip_loss(logprobs, torch.zeros(2, 1), adv, mask, dual_clip=3.0, agg="seq-mean-token-sum")
    assert plain.item() == pytest.approx((5.0 - 1.28) / 2)
    assert dual.item() == pytest.approx((3.0 - 1.28) / 2)
    with pytest.raises(ConfigError, match=re.escape("dual_clip must be > 1 or None, got 0.5")):
        ppo_clip_loss(logprobs, logprobs, adv, mask, dual_clip=0.5)


def test_ppo_aggregation_mode_is_used():
    logprobs = torch.zeros(2, 4)
    adv = torch.tensor([[1.0, 1.0, 1.0, 1.0], [3.0, 0.0, 0.0, 0.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0, 1.0], [1.0, 0.0, 0.0, 0.0]])
    token_mean, _ = ppo_clip_loss(logprobs, logprobs, adv, mask, agg="token-mean")
    seq_mean, _ = ppo_clip_loss(logprobs, logprobs, adv, mask, agg="seq-mean-token-mean")
    assert token_mean.item() == pytest.approx(-7 / 5)
    assert seq_mean.item() == pytest.approx(-(1.0 + 3.0) / 2)


def test_k3_kl_values_and_clamps():
    logprobs = torch.tensor([[0.0, -1.0, 0.0, 0.0]], requires_grad=True)
    ref = torch.tensor([[0.0, -1.0, math.log(2.0), 50.0]])
    k3 = k3_kl(logprobs, ref)
    d = math.log(2.0)
    assert k3[0, :3].tolist() == pytest.approx([0.0, 0.0, 2.0 - d - 1.0])
    assert k3[0, 3].item() == 10.0  # exp(20) - 21 clamped to 10
    k3[0, :3].sum().backward()
    # d/dlogp (e^{r-l} - (r-l) - 1) = -e^{r-l} + 1 -> 1 - 2 at the third token
    assert logprobs.grad[0, :3].tolist() == pytest.approx([0.0, 0.0, -1.0])
    assert (k3_kl(torch.randn(3, 5), torch.randn(3, 5)) >= 0).all()


def test_entropy_bonus_sign():
    entropy = torch.tensor([[1.0, 3.0], [2.0, 0.0]])
    mask = torch.tensor([[1.0, 1.0], [1.0, 0.0]])
    assert entropy_bonus(entropy, mask, 0.1).item() == pytest.approx(-0.1 * 2.0)
    assert entropy_bonus(entropy, mask, -0.5, "seq-mean-token-mean").item() == pytest.approx(0.5 * (2.0 + 2.0) / 2)


@pytest.mark.parametrize(
    ("length", "expected"),
    [(0, 0.0), (6, 0.0), (7, -0.25), (8, -0.5), (10, -1.0), (11, -1.0), (1000, -1.0)],
)
def test_overlong_penalty(length, expected):
    # L_max = 10, L_cache = 4: no penalty up to 6, linear to -1 at 10, -1 beyond
    assert overlong_penalty(torch.tensor([length]), 10, 4).item() == pytest.approx(expected)
    assert overlong_penalty(torch.tensor([length]), 10, 4, penalty_factor=0.5).item() == pytest.approx(expected / 2)


def test_overlong_penalty_zero_buffer_and_errors():
    assert overlong_penalty(torch.tensor([10, 11]), 10, 0).tolist() == [0.0, -1.0]
    with pytest.raises(ConfigError, match=re.escape("got overlong_buffer=12, max_response_tokens=10")):
        overlong_penalty(torch.tensor([1]), 10, 12)
