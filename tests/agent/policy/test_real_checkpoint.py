"""The real-model path: a tiny random model saved like a Qwen2.5-VL-3B-Instruct hub folder, end to end."""

from __future__ import annotations

import json

import torch

from mapo_agent.algorithms.losses import broadcast_advantages
from mapo_agent.policy import HFPolicy
from tests.agent.policy.conftest import FakeZoomEnv, run_episodes


def test_real_style_checkpoint_generates_and_trains(real_style_checkpoint):
    config = json.loads((real_style_checkpoint / "config.json").read_text())
    assert "text_config" not in config and config["rope_scaling"]["type"] == "mrope"  # the hub's flat layout
    policy = HFPolicy.from_pretrained(real_style_checkpoint, device="cpu", max_new_tokens=6)
    assert policy.dtype == torch.float32  # fp32 on CPU even though the checkpoint is bf16
    model = policy.base_model
    assert model.config.text_config.rope_parameters["mrope_section"] == [2, 3, 3]
    assert model.get_input_embeddings().weight.shape[0] > len(policy.processor.tokenizer)  # padded vocabulary
    assert policy.processor.pixel_bounds == (3136, 12845056)
    assert (
        policy.processor.chat_template
        == json.loads((real_style_checkpoint / "chat_template.json").read_text())["chat_template"]
    )

    torch.manual_seed(0)
    envs = [
        FakeZoomEnv((112, 84), "Q?", ["crop", "end"], seed=1),
        FakeZoomEnv((56, 56), "Why?", ["error", "end"], seed=2),
    ]
    states = run_episodes(policy, envs)
    trajectories = [policy.to_trajectory(s) for s in states]
    # Sampled ids never include image placeholders or ids beyond the tokenizer.
    for s in states:
        generated = [t for t, m in zip(s.input_ids, s.loss_mask) if m]
        assert all(t < len(policy.processor.tokenizer) and t != policy.processor.image_token_id for t in generated)
    batch = policy.collate(trajectories)
    batch.advantages = broadcast_advantages(torch.tensor([1.0, -1.0]), batch.loss_mask)
    out = policy.forward(batch)
    mask = batch.loss_mask.bool()
    torch.testing.assert_close(out.logprobs[mask], batch.old_logprobs[mask], atol=1e-4, rtol=0)
    loss = -(batch.advantages * out.logprobs).sum() / batch.loss_mask.sum()
    loss.backward()
    assert torch.isfinite(loss) and model.lm_head.weight.grad is not None


def test_checkpoint_sampling_settings_do_not_leak(real_style_checkpoint):
    # The hub generation_config says top_k=1 / top_p=0.001 (near greedy); our sampling must ignore it.
    policy = HFPolicy.from_pretrained(real_style_checkpoint, device="cpu", max_new_tokens=8)
    obs = FakeZoomEnv((56, 56), "Q?", ["end"], seed=3).reset()
    samples = set()
    for seed in range(4):
        torch.manual_seed(seed)
        samples.add(policy.generate_text([obs])[0])
    assert len(samples) > 1


def test_lora_and_gradient_checkpointing(real_style_checkpoint):
    policy = HFPolicy.from_pretrained(
        real_style_checkpoint, device="cpu", max_new_tokens=4, lora_rank=4, gradient_checkpointing=True
    )
    assert any(getattr(m, "gradient_checkpointing", False) for m in policy.model.modules())
    trainable = [n for n, p in policy.model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n and "language_model" in n for n in trainable)
    torch.manual_seed(0)
    states = run_episodes(policy, [FakeZoomEnv((56, 56), "Q?", ["crop", "end"], seed=4)])
    batch = policy.collate([policy.to_trajectory(states[0])])
    batch.advantages = batch.loss_mask.clone()  # advantage 1 on every generated token
    policy.train()
    out = policy.forward(batch)
    (-(batch.advantages * out.logprobs).sum()).backward()
    grads = [p.grad for p in policy.trainable_parameters()]
    assert all(g is not None for g in grads) and any(g.abs().sum() > 0 for g in grads)
