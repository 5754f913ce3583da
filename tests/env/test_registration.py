"""Every registered id: Gymnasium's checker, seeded determinism, the oracle, spaces, no torch at import."""

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env, data_equivalence

import mapo_env
from mapo_env import ENV_IDS, Oracle
from mapo_env.envs import BenchmarkEnv
from mapo_env.errors import ConfigError
from tests.import_check import assert_import_leaves_out

FAST_IDS = [i for i in ENV_IDS if i != "MAPO-HRBench8K-v0"]


def test_every_mapo_id_is_registered_and_listed():
    registered = sorted(i for i in gym.registry if i.startswith("MAPO-"))
    assert registered == sorted(ENV_IDS)


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_every_id_is_built_by_the_shared_constructor(env_id):
    env = gym.make(env_id, alignment=None, num_samples=2)
    assert isinstance(env.unwrapped, BenchmarkEnv) and len(env.unwrapped.dataset) == 2
    procedural_only = type(env.unwrapped).loader is None
    with pytest.raises(ConfigError, match="procedural only" if procedural_only else "data_dir must be a path"):
        gym.make(env_id, alignment=None, data_dir=3)


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_check_env(env_id):
    env = gym.make(env_id, alignment="lexical")
    check_env(env.unwrapped)
    env.close()


def _play(env_id, seed, actions):
    env = gym.make(env_id, alignment="lexical")
    obs, info = env.reset(seed=seed)
    trace = [(obs, info)]
    for action in actions:
        obs, reward, terminated, truncated, info = env.step(action)
        trace.append((obs, reward, terminated, truncated, info))
        if terminated or truncated:
            break
    return trace


@pytest.mark.parametrize("env_id", FAST_IDS)
def test_two_envs_same_seed_identical_episodes(env_id):
    space = mapo_env.spaces.FreeText(max_length=512, seed=7)
    actions = [space.sample() for _ in range(4)] + ["<answer>A</answer>"]
    first, second = _play(env_id, 123, actions), _play(env_id, 123, actions)
    assert len(first) == len(second)
    for a, b in zip(first, second):
        assert data_equivalence(a, b, exact=True)
    other = _play(env_id, 124, actions)
    assert not data_equivalence(first[0][0]["images"], other[0][0]["images"], exact=True)


@pytest.mark.parametrize("env_id", FAST_IDS)
def test_oracle_is_correct_and_zooms_on_target(env_id):
    env = gym.make(env_id, alignment="lexical")
    oracle = Oracle(env)
    for seed in range(3):
        obs, _ = env.reset(seed=seed)
        done, ious = False, []
        while not done:
            obs, reward, terminated, truncated, info = env.step(oracle.act(obs))
            assert info["tool_error"] is None
            if info["alignment"] is not None:
                ious.append(info["target_iou"])
            done = terminated or truncated
        assert terminated and info["correct"] is True
        assert info["num_tool_calls"] == len(env.unwrapped.current_sample.targets) >= 1
        assert ious and max(ious) > 0.5


def test_tiles_view_hides_the_answer_and_crop_reveals_it():
    env = gym.make("MAPO-Tiles-v0", alignment="lexical")
    oracle = Oracle(env)
    obs, _ = env.reset(seed=0)
    assert obs["images"][0].shape == (112, 112, 3)
    obs, *_ = env.step(oracle.act(obs))
    crop = obs["images"][1]
    assert crop.shape == (112, 112, 3)
    centre = crop[40:72, 40:72].astype(int)
    pattern = env.unwrapped.current_sample.targets[0].attributes["pattern"]
    if pattern != "plain":  # a striped/checkered crop has strong local contrast, a plain one none
        assert np.abs(np.diff(centre, axis=0)).mean() + np.abs(np.diff(centre, axis=1)).mean() > 20


def test_importing_mapo_env_does_not_import_torch():
    assert_import_leaves_out(
        "mapo_env, mapo_env.envs, mapo_env.wrappers, mapo_env.alignment",
        ("torch", "transformers", "sentence_transformers"),
    )
