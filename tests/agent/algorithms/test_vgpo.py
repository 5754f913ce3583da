"""VGPO: visual focus, attention compensation and dual-grained re-weighting on hand-made tensors."""

import re

import pytest
import torch

from mapo_agent.algorithms import VGPO, VGPOConfig
from mapo_agent.algorithms.vgpo import attention_compensation, dual_grained_factors, normalize_focus, visual_focus
from mapo_agent.types import ForwardOutput, ForwardRequest
from mapo_env.errors import ConfigError
from tests.agent.algorithms.fake_policy import FakePolicy, make_batch_trajectories


def test_visual_focus_cosine_to_image_prototype():
    # row 0: image tokens [1, 0] and [0, 1] -> prototype [0.5, 0.5]; row 1 has no image token
    hidden = torch.tensor(
        [
            [[1.0, 0.0], [0.0, 1.0], [2.0, 2.0], [1.0, -1.0], [-3.0, -3.0]],
            [[1.0, 0.0], [0.0, 1.0], [2.0, 2.0], [1.0, -1.0], [-3.0, -3.0]],
        ],
        requires_grad=True,
    )
    image = torch.tensor([[True, True, False, False, False], [False] * 5])
    cos, has_image = visual_focus(hidden, image)
    s = 2**-0.5
    assert cos[0].tolist() == pytest.approx([s, s, 1.0, 0.0, -1.0], abs=1e-6)
    assert cos[1].tolist() == [0.0] * 5
    assert has_image.tolist() == [True, False]
    assert not cos.requires_grad


def test_normalize_focus_modes():
    cos = torch.tensor([[0.5, -0.5, 0.0, 9.0]])
    mask = torch.tensor([[True, True, True, False]])  # 9.0 is padding and must not set the max
    assert normalize_focus(cos, mask, "batch_minmax")[0].tolist() == pytest.approx([1.0, 0.0, 0.5, 0.0])
    assert normalize_focus(cos, mask, "affine")[0].tolist() == pytest.approx([0.75, 0.25, 0.5, 0.0])
    assert normalize_focus(torch.full((1, 3), 0.3), torch.ones(1, 3, dtype=torch.bool), "batch_minmax").tolist() == [
        [1.0, 1.0, 1.0]
    ]


def test_attention_compensation_hand_computed():
    # five positions, position 2 is a tool token (off the mask): loss tokens t = 1..4 with ρ 0.2, 0.9, 0.5, 0.7
    rho = torch.tensor([[0.2, 0.9, 0.0, 0.5, 0.7]])
    mask = torch.tensor([[True, True, False, True, True]])
    w, gate = attention_compensation(rho, mask, coef=0.3, start=0.5, top_ratio=0.5)
    # tail = loss tokens with 0-based index >= floor(0.5 * 4) = 2 -> ρ 0.5, 0.7; top max(1, int(0.5*2)) = 1 -> 0.7
    # C at the last token = 0.3 * 4/4 = 0.3 -> w = 0.7 * 1.3
    assert gate.tolist() == [[False, False, False, False, True]]
    assert w[0].tolist() == pytest.approx([0.2, 0.9, 0.0, 0.5, 0.91])


def test_attention_compensation_position_is_linear():
    rho = torch.ones(1, 4)
    mask = torch.ones(1, 4, dtype=torch.bool)
    w, gate = attention_compensation(rho, mask, coef=0.4, start=0.0, top_ratio=1.0)  # every token gated, ties
    assert gate.all()
    assert w[0].tolist() == pytest.approx([1.1, 1.2, 1.3, 1.4])


def test_dual_grained_factors_hand_computed():
    weights = torch.tensor([[0.0, 1.0, 0.5], [2.0, 4.0, 0.0], [1.0, 3.0, 2.0], [5.0, 1.0, 0.0]])
    mask = torch.tensor([[True, True, True], [True, True, False], [True, True, True], [True, True, False]])
    group_ids = torch.tensor([4, 4, 9, 4])
    valid = torch.tensor([True, True, True, False])  # row 3 has no image
    intra, inter = dual_grained_factors(weights, mask, group_ids, valid)
    # row 0: ŵ = [0, 1, .5], mean .5 -> 1 + ψ = [.5, 1.5, 1]; s = 1.5
    # row 1: ŵ = [0, 1], mean .5 -> [.5, 1.5] (padding 1); s = 1
    # row 2: ŵ = [0, 1, .5] -> [.5, 1.5, 1]; alone in its group -> inter 1
    # group 4 (rows 0, 1): ŝ = [1, 0], mean .5 -> 1 + φ = [1.5, 0.5] -> clip to [0.9, 2.0] -> [1.5, 0.9]
    expected_intra = [[0.5, 1.5, 1.0], [0.5, 1.5, 1.0], [0.5, 1.5, 1.0], [1.0, 1.0, 1.0]]
    torch.testing.assert_close(intra, torch.tensor(expected_intra), atol=1e-6, rtol=0)
    assert inter.tolist() == pytest.approx([1.5, 0.9, 1.0, 1.0], abs=1e-6)


def test_dual_grained_intra_clip():
    weights = torch.tensor([[0.0, 0.0, 0.0, 1.0]])  # ŵ mean .25 -> 1 + ψ = [.75, .75, .75, 1.75]
    intra, _ = dual_grained_factors(
        weights, torch.ones(1, 4, dtype=torch.bool), torch.tensor([0]), torch.tensor([True])
    )
    assert intra[0].tolist() == pytest.approx([0.75, 0.75, 0.75, 1.75], abs=1e-6)
    intra, _ = dual_grained_factors(
        weights, torch.ones(1, 4, dtype=torch.bool), torch.tensor([0]), torch.tensor([True]), (0.8, 1.5)
    )
    assert intra[0].tolist() == pytest.approx([0.8, 0.8, 0.8, 1.5], abs=1e-6)


def _batch(seed=0):
    policy = FakePolicy(seed=seed)
    trajectories = make_batch_trajectories(policy, [[True, False, True], [False, True]], seed=seed)
    algo = VGPO()
    prepared = algo.prepare(trajectories)
    return policy, algo, prepared


def test_vgpo_uses_one_forward_with_hidden_states_and_reweights():
    policy, algo, prepared = _batch()
    batch = algo.training_batch(policy, prepared.trajectories, prepared.advantages)
    _, metrics = algo.loss(policy, batch)
    assert [c["output_hidden_states"] for c in policy.calls] == [True]
    with torch.no_grad():
        out = policy.forward(batch, ForwardRequest(hidden_states=True))
    advantages, _ = algo.token_advantages(batch, out)
    mask = batch.loss_mask.bool()
    assert torch.equal(advantages[~mask], torch.zeros_like(advantages[~mask]))
    assert torch.equal(torch.sign(advantages[mask]), torch.sign(batch.advantages[mask]))  # factors are positive
    assert not torch.allclose(advantages, batch.advantages)
    assert 0.0 < metrics["train/visual_focus_mean"] <= 1.0
    assert 0.0 < metrics["train/compensated_frac"] < 1.0


def test_vgpo_groups_by_id_not_by_row_order():
    policy, algo, prepared = _batch()
    order = [3, 0, 4, 2, 1]  # interleave the two groups
    batch = algo.training_batch(policy, prepared.trajectories, prepared.advantages)
    shuffled = algo.training_batch(policy, [prepared.trajectories[i] for i in order], prepared.advantages[order])
    with torch.no_grad():
        adv, _ = algo.token_advantages(batch, policy.forward(batch, ForwardRequest(hidden_states=True)))
        adv_shuffled, _ = algo.token_advantages(shuffled, policy.forward(shuffled, ForwardRequest(hidden_states=True)))
    width = adv_shuffled.shape[1]
    torch.testing.assert_close(adv_shuffled, adv[order][:, :width])


def test_vgpo_needs_hidden_states():
    policy, algo, prepared = _batch()
    batch = algo.training_batch(policy, prepared.trajectories, prepared.advantages)
    out = ForwardOutput(logprobs=torch.zeros(1), entropy=torch.zeros(1))
    with pytest.raises(ConfigError, match=re.escape("VGPO needs ForwardOutput.hidden_states and .image_token_mask")):
        algo.token_advantages(batch, out)


def test_vgpo_affine_focus_option_runs():
    policy, algo, prepared = _batch()
    batch = algo.training_batch(policy, prepared.trajectories, prepared.advantages)
    loss, _ = VGPO(VGPOConfig(focus_normalization="affine")).loss(policy, batch)
    assert torch.isfinite(loss)
