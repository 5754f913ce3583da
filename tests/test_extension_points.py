"""A new algorithm or environment is one module and one registration: shown by adding throwaway ones at run time."""

from __future__ import annotations

from dataclasses import dataclass

import gymnasium as gym
import pytest
import torch

import mapo_env
from mapo_agent.algorithms import ADVANTAGE_ESTIMATORS, ALGORITHMS, GRPO, GRPOConfig
from mapo_agent.config import EnvConfig, RolloutConfig, TrainConfig
from mapo_agent.metrics import read_metrics
from mapo_agent.trainer import Trainer
from mapo_env.envs.tiles import TilesEnv
from tests.agent.test_pipeline_fake import CANNED, CannedPolicy


@pytest.fixture
def throwaway_algorithm():
    """An algorithm whose advantage is the reward itself, registered with one decorator each."""

    @ADVANTAGE_ESTIMATORS.register("raw_reward")
    def raw_reward(inp, cfg):
        return inp.rewards.float()

    @dataclass
    class RawConfig(GRPOConfig):
        advantage_estimator: str = "raw_reward"
        kl_coef: float = 0.0

    @ALGORITHMS.register("raw_reinforce")
    class RawReinforce(GRPO):
        config_class = RawConfig

    yield "raw_reinforce"
    ALGORITHMS.unregister("raw_reinforce")
    ADVANTAGE_ESTIMATORS.unregister("raw_reward")


@pytest.fixture
def throwaway_env():
    """A new env id: the Tiles scenes with one coloured tile, one ``gym.register`` call."""

    class OneTileEnv(TilesEnv):
        def __init__(self, **kwargs):
            super().__init__(generator_kwargs={"num_colored": 1}, **kwargs)

    gym.register(id="MAPO-OneTile-v0", entry_point=OneTileEnv)
    yield "MAPO-OneTile-v0"
    del gym.registry["MAPO-OneTile-v0"]


def test_a_throwaway_algorithm_and_env_train_through_the_unchanged_trainer(
    tmp_path, throwaway_algorithm, throwaway_env
):
    assert throwaway_env in mapo_env.registered_env_ids() and throwaway_env not in mapo_env.ENV_IDS
    config = TrainConfig(
        algo=throwaway_algorithm,
        steps=1,
        sft_steps=0,
        output_dir=str(tmp_path / "run"),
        eval_episodes=2,
        progress_bar=False,
        cpu=True,
        env=EnvConfig(id=throwaway_env, kwargs={"alignment": "lexical"}),
        rollout=RolloutConfig(questions_per_step=2, group_size=2),
    )
    policy = CannedPolicy(CANNED)
    before = [p.detach().clone() for p in policy.trainable_parameters()]
    Trainer(config, policy=policy).train()
    rows = read_metrics(tmp_path / "run" / "metrics.jsonl")
    assert rows[0]["rollout/advantage_mean"] == pytest.approx(rows[0]["rollout/shaped_reward"])  # A = R
    assert any(not torch.equal(a, b) for a, b in zip(before, policy.trainable_parameters()))


def test_unregistering_restores_the_registry(throwaway_algorithm):
    assert throwaway_algorithm in ALGORITHMS
    ALGORITHMS.unregister(throwaway_algorithm)
    assert throwaway_algorithm not in ALGORITHMS
    ALGORITHMS.register(throwaway_algorithm)(GRPO)  # the fixture's teardown removes it again
