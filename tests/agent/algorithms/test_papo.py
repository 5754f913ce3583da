"""PAPO: the masked second view, the sign of the perception KL and of the double entropy."""

import re

import pytest
import torch

from mapo_agent.algorithms import PAPO, PAPOConfig
from mapo_env.errors import ConfigError
from tests.agent.algorithms.fake_policy import FakePolicy, make_batch_trajectories

MIXED = [[True, False, True], [False, True]]


def setup(seed: int = 0, **cfg):
    policy = FakePolicy(seed=seed)
    trajectories = make_batch_trajectories(policy, MIXED, seed=seed)
    algo = PAPO(PAPOConfig(**cfg))
    batch = policy.collate(trajectories, algo.prepare(trajectories).advantages)
    return policy, algo, batch


def sampled_entropy(policy, batch, ratio=0.0, seed=None):
    generator = torch.Generator().manual_seed(seed) if seed is not None else None
    with torch.no_grad():
        out = policy.forward(batch, image_patch_mask_ratio=ratio, mask_generator=generator)
    return out.logprobs, (-out.logprobs * batch.loss_mask).sum() / batch.loss_mask.sum()


def test_second_forward_is_masked_seeded_and_without_gradient():
    policy, algo, batch = setup()
    algo.loss(policy, batch)
    first, second = policy.calls
    assert first["image_patch_mask_ratio"] == 0.0 and first["grad_enabled"]
    assert second["image_patch_mask_ratio"] == 0.6
    assert isinstance(second["mask_generator"], torch.Generator)
    assert not second["grad_enabled"]


def test_masked_branch_gradient_option():
    policy, algo, batch = setup(masked_branch_gradient=True)
    algo.loss(policy, batch)
    assert policy.calls[1]["grad_enabled"]


def test_perception_kl_is_maximised():
    # advantages 0 and no entropy terms: loss = -γ · token-mean k3(logprobs, masked_logprobs)
    policy, algo, batch = setup(
        perception_kl_coef=1.0, entropy_coef_original=0.0, entropy_coef_masked=0.0, mask_seed=7
    )
    batch.advantages = torch.zeros_like(batch.advantages)
    logprobs, _ = sampled_entropy(policy, batch)
    masked, _ = sampled_entropy(policy, batch, ratio=0.6, seed=7)
    d = masked - logprobs
    expected_kl = ((torch.exp(d) - d - 1) * batch.loss_mask).sum() / batch.loss_mask.sum()
    loss, metrics = algo.loss(policy, batch)
    assert expected_kl.item() > 1e-4  # the fake policy really sees the mask
    assert loss.item() == pytest.approx(-expected_kl.item(), rel=1e-5)
    assert metrics["train/perception_kl"] == pytest.approx(expected_kl.item(), rel=1e-5)
    assert metrics["train/perception_kl_loss"] == pytest.approx(-expected_kl.item(), rel=1e-5)


def test_gradient_steps_increase_perception_kl():
    policy, algo, batch = setup(perception_kl_coef=1.0, entropy_coef_original=0.0, entropy_coef_masked=0.0)
    batch.advantages = torch.zeros_like(batch.advantages)

    def kl_with_fixed_mask():
        logprobs, _ = sampled_entropy(policy, batch)
        masked, _ = sampled_entropy(policy, batch, ratio=0.6, seed=123)
        d = masked - logprobs
        return (((torch.exp(d) - d - 1) * batch.loss_mask).sum() / batch.loss_mask.sum()).item()

    before = kl_with_fixed_mask()
    optimizer = torch.optim.SGD(policy.parameters(), lr=0.5)
    for _ in range(10):
        loss, _ = algo.loss(policy, batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert kl_with_fixed_mask() > before


def test_double_entropy_values_and_direction():
    policy, algo, batch = setup(
        perception_kl_coef=0.0, entropy_coef_original=0.1, entropy_coef_masked=0.2, mask_seed=3
    )
    batch.advantages = torch.zeros_like(batch.advantages)
    _, h_original = sampled_entropy(policy, batch)
    _, h_masked = sampled_entropy(policy, batch, ratio=0.6, seed=3)
    loss, metrics = algo.loss(policy, batch)
    assert loss.item() == pytest.approx(0.1 * h_original.item() + 0.2 * h_masked.item(), rel=1e-5)
    assert metrics["train/sampled_entropy"] == pytest.approx(h_original.item(), rel=1e-5)
    assert metrics["train/sampled_entropy_masked"] == pytest.approx(h_masked.item(), rel=1e-5)
    optimizer = torch.optim.SGD(policy.parameters(), lr=0.5)
    for _ in range(5):
        loss, _ = algo.loss(policy, batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert sampled_entropy(policy, batch)[1].item() < h_original.item()  # entropy is kept low, not raised


def test_perception_kl_clip():
    policy, algo, batch = setup(perception_kl_coef=1.0, perception_kl_clip=1e-6)
    _, metrics = algo.loss(policy, batch)
    assert 0 <= metrics["train/perception_kl"] <= 1e-6


def test_dual_clip_default_and_config_type():
    assert PAPO().config.dual_clip == 3.0
    with pytest.raises(ConfigError, match=re.escape("image_patch_mask_ratio must be in (0, 1], got 1.5")):
        PAPOConfig(image_patch_mask_ratio=1.5)
