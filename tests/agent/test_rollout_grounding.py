"""Each episode's ground truth comes through the step contract (info["grounding"] at its end) onto the trajectory."""

from __future__ import annotations

import pytest
import torch

from mapo_agent.policy import HFPolicy
from mapo_agent.rollout import RolloutWorker
from mapo_agent.types import Grounding

ENV_KWARGS = {"alignment": "lexical"}


@pytest.fixture(scope="module")
def policy():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield HFPolicy.from_pretrained(device="cpu", max_new_tokens=16)
    torch.set_num_threads(threads)


def test_oracle_trajectories_carry_the_scene(policy):
    worker = RolloutWorker("MAPO-Tiles-v0", ENV_KWARGS)
    trajectories = worker.run(policy, [5, 9], 1, seed=3, actor="oracle")
    for trajectory, env in zip(trajectories, worker.envs):
        grounding = trajectory.info["grounding"]
        assert isinstance(grounding, Grounding) and grounding.coords == "pixel"
        sample = env.unwrapped.current_sample
        assert grounding.regions[0] == (0.0, 0.0, 224.0, 224.0) and grounding.shown_sizes[0] == (112, 112)
        assert len(grounding.regions) == len(trajectory.images) == 2
        assert grounding.regions[1] == tuple(sample.targets[0].bbox)  # the oracle zooms on the target exactly
        assert grounding.shown_sizes[1] == trajectory.images[1].shape[1::-1]
        assert [o.name for o in grounding.objects] == [o.name for o in sample.objects]
        assert [o.bbox for o in grounding.objects] == [tuple(o.bbox) for o in sample.objects]
        target = grounding.targets[0]
        assert target.caption.endswith(target.name) and sample.answer in target.caption  # the pattern is in it


def test_policy_trajectories_carry_it_too(policy):
    worker = RolloutWorker("MAPO-Tiles-v0", ENV_KWARGS)
    torch.manual_seed(0)
    (trajectory,) = worker.run(policy, [1], 1, seed=0)
    grounding = trajectory.info["grounding"]
    assert len(grounding.regions) == len(trajectory.images) >= 1


def test_the_env_emits_it_only_at_the_end_of_an_episode():
    import gymnasium as gym

    import mapo_env

    env = gym.make("MAPO-Tiles-v0", **ENV_KWARGS)
    obs, info = env.reset(seed=0)
    assert "grounding" not in info
    oracle = mapo_env.Oracle(env)
    obs, _, terminated, _, info = env.step(oracle.act(obs))  # the zoom
    assert not terminated and "grounding" not in info
    obs, _, terminated, _, info = env.step(oracle.act(obs))  # the answer
    assert terminated and isinstance(info["grounding"], Grounding)
    assert info["grounding"] == env.unwrapped.grounding() and len(info["grounding"].regions) == 2


def test_oracle_groups_are_copies_of_one_played_episode(policy):
    worker = RolloutWorker("MAPO-Tiles-v0", ENV_KWARGS)
    grouped = worker.run(policy, [2, 7], 3, seed=11, actor="oracle", first_group_id=4)
    single = RolloutWorker("MAPO-Tiles-v0", ENV_KWARGS).run(policy, [2, 7], 1, seed=11, actor="oracle")
    assert [t.group_id for t in grouped] == [4, 4, 4, 5, 5, 5]
    for k, trajectory in enumerate(grouped):
        reference = single[k // 3]
        assert trajectory.input_ids == reference.input_ids and trajectory.reward == reference.reward
        assert trajectory.info["grounding"] == reference.info["grounding"]
    grouped[0].input_ids.append(-1)
    grouped[0].info["extra"] = 1
    assert grouped[1].input_ids[-1] != -1 and "extra" not in grouped[1].info  # independent copies
