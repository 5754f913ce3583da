"""Generation in token-budget chunks: same turns as one batch, never a call over the budget."""

from __future__ import annotations

import gymnasium as gym
import pytest
import torch

import mapo_env  # noqa: F401
from mapo_agent.policy import HFPolicy
from mapo_env.errors import ConfigError


def episodes(policy: HFPolicy, sizes: list[int]):
    """One fresh episode per entry; ``sizes`` picks the shown image size, so prompts differ in length."""
    states = []
    for i, side in enumerate(sizes):
        env = gym.make("MAPO-Tiles-v0", max_pixels=side * side, min_pixels=side * side, alignment="lexical")
        obs, _ = env.reset(seed=i)
        states.append(policy.start_episode(obs))
    return states


def spy_on_generate(policy: HFPolicy) -> list[tuple[int, int]]:
    """Record the (rows, prompt length) of every ``model.generate`` call (the real call still runs)."""
    shapes: list[tuple[int, int]] = []
    original = policy.model.generate

    def generate(**inputs):
        shapes.append(tuple(inputs["input_ids"].shape))
        return original(**inputs)

    policy.model.generate = generate
    return shapes


def test_chunked_greedy_generation_gives_the_same_turns_within_the_budget():
    policy = HFPolicy.from_pretrained(device="cpu", max_new_tokens=10)
    sizes = [112, 56, 168, 112, 56]
    whole = episodes(policy, sizes)
    texts = policy.generate(whole, do_sample=False)

    lengths = [s.num_tokens for s in episodes(policy, sizes)]
    budget = 2 * (max(lengths) + 10)
    policy.max_tokens_per_generation = budget
    shapes = spy_on_generate(policy)
    chunked = episodes(policy, sizes)
    assert policy.generate(chunked, do_sample=False) == texts
    assert len(shapes) > 1 and all(rows * (length + 10) <= budget for rows, length in shapes)
    assert sum(rows for rows, _ in shapes) == len(sizes)
    for a, b in zip(whole, chunked):  # the same tokens and log-probs recorded, in the caller's order
        assert a.input_ids == b.input_ids
        torch.testing.assert_close(torch.tensor(a.old_logprobs), torch.tensor(b.old_logprobs), rtol=1e-4, atol=1e-4)


def test_an_episode_longer_than_the_budget_runs_alone():
    policy = HFPolicy.from_pretrained(device="cpu", max_new_tokens=4, max_tokens_per_generation=1)
    shapes = spy_on_generate(policy)
    states = episodes(policy, [56, 112])
    assert len(policy.generate(states, do_sample=False)) == 2
    assert [rows for rows, _ in shapes] == [1, 1]


@pytest.mark.parametrize("budget", [0, -3])
def test_a_bad_budget_fails_at_construction(budget):
    with pytest.raises(ConfigError, match="max_tokens_per_generation must be >= 1 or None"):
        HFPolicy.from_pretrained(device="cpu", max_tokens_per_generation=budget)
