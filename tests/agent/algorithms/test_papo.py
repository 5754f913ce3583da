"""PAPO: the masked second view, the sign of the perception KL and of the double entropy."""

import re

import pytest
import torch

from mapo_agent.algorithms import PAPO, PAPOConfig
from mapo_agent.types import ForwardRequest, PatchMask
from mapo_env.errors import ConfigError
from tests.agent.algorithms.fake_policy import FakePolicy, make_batch_trajectories

MIXED = [[True, False, True], [False, True]]


def setup(seed: int = 0, **cfg):
    policy = FakePolicy(seed=seed)
    trajectories = make_batch_trajectories(policy, MIXED, seed=seed)
    algo = PAPO(PAPOConfig(**{"kl_coef": 0.0, **cfg}))
    batch = algo.training_batch(policy, trajectories, algo.prepare(trajectories).advantages)
    return policy, algo, batch


def sampled_entropy(policy, batch, mask=None):
    with torch.no_grad():
        out = policy.forward(batch, ForwardRequest(patch_mask=mask))
    return out.logprobs, (-out.logprobs * batch.loss_mask).sum() / batch.loss_mask.sum()


def test_second_forward_is_masked_per_group_and_without_gradient():
    policy, algo, batch = setup()
    algo.loss(policy, batch)
    first, second = policy.calls
    assert first["patch_mask"] is None and first["grad_enabled"]
    mask = second["patch_mask"]
    assert isinstance(mask, PatchMask) and (mask.ratio, mask.fill) == (0.6, "black")
    assert not second["grad_enabled"]
    seeds = dict(zip(batch.group_ids.tolist(), mask.image_seeds))
    for gid, seed in zip(batch.group_ids.tolist(), mask.image_seeds):
        assert seed == seeds[gid]  # the rollouts of a group share their mask
    assert len(set(seeds.values())) == len(seeds)  # groups differ


def test_mask_is_the_same_for_every_loss_call_and_fresh_for_every_batch():
    policy, algo, batch = setup()
    algo.loss(policy, batch)
    algo.loss(policy, batch)
    assert policy.calls[1]["patch_mask"] == policy.calls[3]["patch_mask"]  # micro-batches, epochs: same mask
    trajectories = batch.trajectories
    algo.prepare(trajectories)
    algo.loss(policy, batch)
    assert policy.calls[5]["patch_mask"].image_seeds != policy.calls[1]["patch_mask"].image_seeds


def test_tool_crops_are_masked_only_when_configured():
    policy = FakePolicy()
    trajectories = make_batch_trajectories(policy, MIXED)
    for t in trajectories:
        t.images = t.images * 3  # the question's image + two crops
    batch = policy.collate(trajectories)
    default = PAPO().patch_mask(batch).image_seeds
    assert all(default[3 * i] is not None and default[3 * i + 1 : 3 * i + 3] == (None, None) for i in range(5))
    crops = PAPO(PAPOConfig(mask_tool_crops=True)).patch_mask(batch).image_seeds
    assert all(s is not None for s in crops)


def test_perception_kl_is_maximised():
    # advantages 0 and no entropy terms: loss = -γ · token-mean k3(logprobs, masked_logprobs)
    policy, algo, batch = setup(
        perception_kl_coef=1.0, entropy_coef_original=0.0, entropy_coef_masked=0.0, mask_seed=7
    )
    batch.advantages = torch.zeros_like(batch.advantages)
    logprobs, _ = sampled_entropy(policy, batch)
    masked, _ = sampled_entropy(policy, batch, algo.patch_mask(batch))
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

    fixed = PatchMask(0.6, tuple(range(100, 100 + len(batch.trajectories))))

    def kl_with_fixed_mask():
        logprobs, _ = sampled_entropy(policy, batch)
        masked, _ = sampled_entropy(policy, batch, fixed)
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
    _, h_masked = sampled_entropy(policy, batch, algo.patch_mask(batch))
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
