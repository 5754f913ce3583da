"""The policy's sampling engine is pluggable: any Generator drives rollouts without touching worker or trainer."""

from __future__ import annotations

import json

import pytest
import torch

import mapo_env  # noqa: F401
from mapo_agent.policy import HFPolicy
from mapo_agent.policy.generation import GenerationRequest, GenerationResult, HFGenerator, SamplingParams
from mapo_agent.rollout import RolloutWorker


class ReplayGenerator:
    """An engine that 'samples' scripted texts (as vLLM would return tokens), recording what it was asked."""

    def __init__(self, policy_like: HFPolicy, texts: list[str]) -> None:
        self.processor = policy_like.processor
        self.texts = list(texts)
        self.calls: list[tuple[list[GenerationRequest], SamplingParams]] = []
        self.loaded: list[str] = []

    def generate(self, requests, params):
        self.calls.append((list(requests), params))
        out = []
        for r in requests:
            turn = len(r.images) - 1  # every zoom brought one crop back
            ids = self.processor.encode_text(self.texts[min(turn, len(self.texts) - 1)])
            ids = ids[: params.max_new_tokens - 1] + [params.stop_token_ids[0]]
            out.append(GenerationResult(ids, [-0.5] * len(ids)))
        return out

    def load_weights(self, weights):
        self.loaded = [name for name, _ in weights]


@pytest.fixture(scope="module")
def base():
    return HFPolicy.from_pretrained(device="cpu", max_new_tokens=48)


def zoom_text(label: str, box: list[int]) -> str:
    call = {"name": "image_zoom_in_tool", "arguments": {"label": label, "bbox_2d": box}}
    return f"<tool_call>{json.dumps(call)}</tool_call>"


def test_a_replay_engine_drives_real_episodes_through_the_rollout_worker(base):
    texts = [zoom_text("red tile", [0, 0, 56, 56]), "<answer>A</answer>"]
    policy = HFPolicy(base.model, base.processor, max_new_tokens=48)
    policy.generator = engine = ReplayGenerator(policy, texts)
    worker = RolloutWorker("MAPO-Tiles-v0", {"alignment": "lexical"})
    trajectories = worker.run(policy, [0, 1], group_size=2, seed=0)
    assert len(trajectories) == 4
    assert all(t.num_tool_calls == 1 and t.num_turns == 2 for t in trajectories)  # zoomed, then answered
    assert all(len(t.images) == 2 for t in trajectories)  # the crop came back as an image
    first_requests, params = engine.calls[0]
    assert len(first_requests) == 4 and all(len(r.images) == 1 and len(r.pixel_values) == 1 for r in first_requests)
    assert len(engine.calls[1][0][0].images) == 2  # the second turn sees the crop
    assert params.stop_token_ids == tuple(policy.stop_token_ids) and params.max_new_tokens == 48
    for t in trajectories:  # the engine's tokens and log-probs are what training sees
        generated = [lp for lp, m in zip(t.old_logprobs, t.loss_mask) if m]
        assert generated == [-0.5] * len(generated)


def test_the_default_engine_is_transformers_generate_and_agrees_with_greedy_decoding(base):
    assert isinstance(base.generator, HFGenerator)
    env_policy = HFPolicy(base.model, base.processor, max_new_tokens=6)
    worker = RolloutWorker("MAPO-Tiles-v0", {"alignment": "lexical"})
    env = worker.envs_sample()
    obs, _ = env.reset(seed=0)
    state = env_policy.start_episode(obs)
    text = env_policy.generate([state], do_sample=False)[0]
    request = GenerationRequest(state.input_ids[: state.turn_spans[0][0]], (), tuple(state.pixel_values[:1]),
                                tuple(state.image_grid_thw[:1]))  # fmt: skip
    params = SamplingParams(False, 1.0, 1.0, 6, tuple(env_policy.stop_token_ids), tuple(env_policy.suppress_token_ids))
    again = env_policy.generator.generate([request], params)[0]
    assert again.token_ids == state.input_ids[state.turn_spans[0][0] : state.turn_spans[0][1]]
    torch.testing.assert_close(torch.tensor(again.logprobs), torch.tensor(state.old_logprobs[state.turn_spans[0][0] :
                               state.turn_spans[0][1]]))  # fmt: skip
    assert isinstance(text, str)
