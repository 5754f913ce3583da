"""HFPolicy with the bundled tiny model: token in / token out, log-probs, loss mask, batching, M-RoPE, training."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mapo_agent.algorithms import GRPO
from mapo_agent.policy import HFPolicy
from mapo_agent.policy.ops import mask_image_patches
from mapo_agent.types import ForwardRequest, PatchMask
from mapo_env.errors import ConfigError
from tests.agent.policy.conftest import FakeZoomEnv, run_episodes


def _collapse_image_runs(ids: list[int], image_token_id: int) -> list[int]:
    return [t for i, t in enumerate(ids) if t != image_token_id or i == 0 or ids[i - 1] != image_token_id]


def test_generation_logprobs_match_teacher_forced_forward(tiny_policy, two_episodes):
    _, states = two_episodes
    trajectories = [tiny_policy.to_trajectory(s, group_id=0, sample_index=i) for i, s in enumerate(states)]
    assert len({len(t.input_ids) for t in trajectories}) == 2 and [len(t.images) for t in trajectories] == [3, 2]
    batch = tiny_policy.collate(trajectories)
    with torch.no_grad():
        out = tiny_policy.forward(batch)
    mask = batch.loss_mask.bool()
    assert mask.sum() == sum(t.num_generated_tokens for t in trajectories) > 20
    assert (batch.old_logprobs[mask] < 0).all()
    torch.testing.assert_close(out.logprobs[mask], batch.old_logprobs[mask], atol=1e-4, rtol=0)
    assert (out.logprobs[~batch.attention_mask.bool()] == 0).all() and (out.logprobs[:, 0] == 0).all()


def test_loss_mask_is_exactly_the_generated_tokens(tiny_policy, two_episodes):
    envs, states = two_episodes
    state, proc = states[0], tiny_policy.processor  # 3 turns, 2 crops
    assert len(state.turn_spans) == 3 and len(state.images) == 3
    expected = np.zeros(len(state.input_ids), dtype=int)
    for start, end in state.turn_spans:
        expected[start:end] = 1
    assert state.loss_mask == expected.tolist()
    ids = np.array(state.input_ids)
    assert (np.array(state.loss_mask)[ids == proc.image_token_id] == 0).all()
    assert (ids == proc.image_token_id).sum() == 16 + 4 + 6  # 112x112 view (8x8 patches), 56x56 and 56x84 crops
    tool_tags = [proc.tokenizer.convert_tokens_to_ids(t) for t in ("<tool_response>", "</tool_response>")]
    assert (np.array(state.loss_mask)[np.isin(ids, tool_tags)] == 0).all()
    assert np.isin(ids, tool_tags).sum() == 4
    # The generated spans hold exactly what each turn sent to the env (plus the stop token if any).
    for (start, end), text, stopped in zip(state.turn_spans, state.turn_texts, state.turn_stopped):
        body = state.input_ids[start : end - 1] if stopped else state.input_ids[start:end]
        assert proc.decode(body) == text
    assert [m["content"][0]["text"] for m in envs[0].messages if m["role"] == "assistant"] == state.turn_texts


def test_token_in_token_out_keeps_earlier_ids(tiny_policy):
    env = FakeZoomEnv((112, 84), "Which object is left of the dog?", ["crop", "error", "end"], seed=3)
    state = tiny_policy.start_episode(env.reset())
    snapshots = []
    torch.manual_seed(3)
    for _ in range(3):
        snapshots.append(list(state.input_ids))
        text = tiny_policy.generate([state])[0]
        snapshots.append(list(state.input_ids))
        obs, done = env.step(text)
        if done:
            break
        tiny_policy.observe(state, obs)
    for before, after in zip(snapshots, snapshots[1:]):
        assert state.input_ids[: len(before)] == before and len(after) > len(before)
    # Decoded, the ids are the dialogue the chat template renders (image placeholders collapsed).
    proc = tiny_policy.processor
    rendered = proc.render(env.messages[:-1], add_generation_prompt=True)
    collapsed = _collapse_image_runs(state.input_ids[: state.turn_spans[-1][0]], proc.image_token_id)
    assert proc.decode(collapsed) == rendered


def test_batched_greedy_equals_one_by_one(tiny_policy):
    def envs():
        return [
            FakeZoomEnv((112, 112), "What shape is the red object?", ["crop", "end"], seed=4),
            FakeZoomEnv((56, 56), "Q?", ["error", "end"], seed=5),
            FakeZoomEnv((84, 168), "What is written on the sign in the top left corner?", ["crop", "end"], seed=6),
        ]

    batched = run_episodes(tiny_policy, envs(), do_sample=False, max_new_tokens=8)
    single = [run_episodes(tiny_policy, [env], do_sample=False, max_new_tokens=8)[0] for env in envs()]
    for b, s in zip(batched, single):
        assert b.input_ids == s.input_ids and b.turn_texts == s.turn_texts
        np.testing.assert_allclose(b.old_logprobs, s.old_logprobs, atol=1e-4)


def test_mm_token_type_ids_give_3d_positions_to_image_tokens(tiny_policy, two_episodes):
    _, states = two_episodes
    batch = tiny_policy.collate([tiny_policy.to_trajectory(states[0])])
    inputs, proc = batch.model_inputs, tiny_policy.processor
    assert torch.equal(inputs["mm_token_type_ids"], (batch.input_ids == proc.image_token_id).int())
    rope = tiny_policy.base_model.model.get_rope_index
    with_types, _ = rope(batch.input_ids, inputs["mm_token_type_ids"], inputs["image_grid_thw"])  # (3, 1, T)
    without, _ = rope(batch.input_ids, torch.zeros_like(inputs["mm_token_type_ids"]), inputs["image_grid_thw"])
    image = batch.input_ids[0] == proc.image_token_id
    assert (without[0] == without[1]).all() and (without[1] == without[2]).all()  # 1-D positions
    assert not torch.equal(with_types, without)
    # The first image (8x8 patches -> 4x4 merged tokens) gets (t, row, col) offsets from its start position.
    first = torch.nonzero(image[:]).flatten()[:16]
    start = with_types[0, 0, first[0]]
    rows, cols = torch.arange(16) // 4, torch.arange(16) % 4
    assert torch.equal(with_types[:, 0, first] - start, torch.stack([torch.zeros(16, dtype=torch.long), rows, cols]))
    # Dropping the token types silently changes the model's output.
    with torch.no_grad():
        model = tiny_policy.base_model
        kwargs = {k: v for k, v in inputs.items() if k != "mm_token_type_ids"}
        a = model(input_ids=batch.input_ids, mm_token_type_ids=inputs["mm_token_type_ids"], **kwargs).logits
        b = model(input_ids=batch.input_ids, **kwargs).logits
    assert (a - b).abs().max() > 1e-3


def test_one_adamw_step_changes_parameters(tiny_policy, two_episodes):
    _, states = two_episodes
    policy = HFPolicy(tiny_policy.model, tiny_policy.processor)
    before = {n: p.detach().clone() for n, p in policy.model.named_parameters()}
    batch = GRPO().training_batch(policy, [policy.to_trajectory(s) for s in states], torch.tensor([1.0, -0.5]))
    assert (
        batch.advantages[0][batch.loss_mask[0].bool()].eq(1.0).all()
        and batch.advantages[batch.loss_mask == 0].eq(0).all()
    )
    optimizer = torch.optim.AdamW(policy.trainable_parameters(), lr=1e-3)
    try:
        out = policy.forward(batch, ForwardRequest(hidden_states=True))
        assert out.hidden_states.shape == (*batch.input_ids.shape, 128) and out.entropy.shape == batch.input_ids.shape
        loss = -(batch.advantages * out.logprobs).sum() / batch.loss_mask.sum()
        assert torch.isfinite(loss)
        loss.backward()
        visual_grad = policy.base_model.model.visual.patch_embed.proj.weight.grad
        assert visual_grad is not None and visual_grad.abs().sum() > 0  # the images reach the loss
        optimizer.step()
        changed = [n for n, p in policy.model.named_parameters() if not torch.equal(p.detach(), before[n])]
        assert any("visual" in n for n in changed) and any("language_model" in n for n in changed)
    finally:
        with torch.no_grad():  # restore the shared session model
            for n, p in policy.model.named_parameters():
                p.copy_(before[n])
                p.grad = None


def test_patch_mask_blackens_each_patch_with_its_probability_per_seeded_image():
    grid = torch.tensor([[1, 4, 4], [1, 2, 6], [1, 4, 4]])
    pixels = torch.randn(44, 3 * 2 * 14 * 14)
    black = torch.tensor([-1.5, -2.0, -1.0])
    mask = PatchMask(0.5, (7, None, 7))
    masked = mask_image_patches(pixels, grid, mask, black)
    changed = (masked != pixels).any(-1)
    assert 0 < changed[:16].sum() < 16 and changed[16:28].sum() == 0  # image 1 untouched (seed None)
    assert torch.equal(changed[:16], changed[28:])  # same seed and grid: same mask
    rows = masked[:16][changed[:16]].view(-1, 3, 392)
    torch.testing.assert_close(rows, black[None, :, None].expand_as(rows))
    assert torch.equal(masked, mask_image_patches(pixels, grid, mask, black))  # deterministic
    mean_fill = mask_image_patches(pixels, grid, PatchMask(0.5, (7, None, 7), "mean"))
    first_mean = pixels[:16].view(16, 3, -1).mean(dim=(0, 2))
    filled = mean_fill[:16][changed[:16]].view(-1, 3, 392)
    torch.testing.assert_close(filled, first_mean[None, :, None].expand_as(filled))
    draws = mask_image_patches(torch.zeros(10_000, 3), torch.tensor([[1, 100, 100]]), PatchMask(0.6, (1,)), black[:3])
    assert (draws != 0).any(-1).float().mean().item() == pytest.approx(0.6, abs=0.02)  # Bernoulli(0.6) per patch
    with pytest.raises(ConfigError, match="one \\(seed or None\\) per image"):
        mask_image_patches(pixels, grid, PatchMask(0.5, (1,)), black)


def test_forward_with_patch_masking_changes_image_conditioned_logprobs(tiny_policy, two_episodes):
    _, states = two_episodes
    trajectory = tiny_policy.to_trajectory(states[1])
    batch = tiny_policy.collate([trajectory])
    with torch.no_grad():
        plain = tiny_policy.forward(batch)
        masked = tiny_policy.forward(batch, ForwardRequest(patch_mask=PatchMask(0.5, (0,) * len(trajectory.images))))
    mask = batch.loss_mask.bool()
    assert (plain.logprobs[mask] - masked.logprobs[mask]).abs().max() > 1e-5
    assert tiny_policy._black_pixel().shape == (3,)


def test_collate_pads_tokens_and_the_algorithm_sets_advantages(tiny_policy, two_episodes):
    _, states = two_episodes
    trajectories = [tiny_policy.to_trajectory(s) for s in states]
    length = max(len(t.input_ids) for t in trajectories)
    plain = tiny_policy.collate(trajectories)
    assert plain.input_ids.shape == (2, length) and torch.equal(plain.advantages, torch.zeros(2, length))
    assert plain.attention_mask[0].sum() == len(trajectories[0].input_ids)  # right padded
    per_token = torch.arange(2 * length, dtype=torch.float32).view(2, length)
    batch = GRPO().training_batch(tiny_policy, trajectories, per_token)
    assert torch.equal(batch.advantages, per_token * batch.loss_mask)
    for bad in (torch.ones(3), torch.ones(2, 7)):
        with pytest.raises(ConfigError, match="advantages must have shape"):
            GRPO().training_batch(tiny_policy, trajectories, bad)
    bad = tiny_policy.to_trajectory(states[0])
    bad.loss_mask = bad.loss_mask[:-1]
    with pytest.raises(ConfigError, match="same length"):
        tiny_policy.collate([bad])


def test_misuse_raises_named_errors(tiny_policy):
    env = FakeZoomEnv((56, 56), "Q?", ["crop", "end"], seed=7)
    obs = env.reset()
    state = tiny_policy.start_episode(obs)
    with pytest.raises(ConfigError, match="no turn was generated"):
        tiny_policy.observe(state, obs)
    text = tiny_policy.generate([state], max_new_tokens=3)[0]
    with pytest.raises(ConfigError, match="without an environment reply"):
        tiny_policy.generate([state])
    with pytest.raises(ConfigError, match="'messages' and 'images'"):
        tiny_policy.observe(state, {"messages": []})
    obs, _ = env.step(text)
    broken = dict(obs, images=obs["images"][:1])  # the crop's image is missing
    with pytest.raises(ConfigError, match="image part"):
        tiny_policy.observe(state, broken)
    with pytest.raises(ConfigError, match="temperature"):
        HFPolicy(tiny_policy.model, tiny_policy.processor, temperature=0.0)


def test_generate_text_for_evaluation(tiny_policy):
    observations = [FakeZoomEnv((56, 56), "Q?", ["end"], seed=s).reset() for s in (8, 9)]
    texts = tiny_policy.generate_text(observations, do_sample=False, max_new_tokens=5)
    assert len(texts) == 2 and all(isinstance(t, str) for t in texts)
    assert texts == tiny_policy.generate_text(observations, do_sample=False, max_new_tokens=5)
