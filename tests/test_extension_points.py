"""A new algorithm or environment is one module and one registration: shown by adding throwaway ones at run time."""

from __future__ import annotations

from dataclasses import dataclass

import gymnasium as gym
import numpy as np
import pytest
import torch

import mapo_env
from mapo_agent.algorithms import ADVANTAGE_ESTIMATORS, ALGORITHMS, GRPO, GRPOConfig
from mapo_agent.config import EnvConfig, RolloutConfig, TrainConfig
from mapo_agent.metrics import read_metrics
from mapo_agent.trainer import Trainer
from mapo_env import Oracle
from mapo_env.envs import BenchmarkEnv
from mapo_env.errors import ConfigError
from mapo_env.types import ObjectAnnotation, VQASample
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


class SquareSceneGenerator:
    """A new scene kind, written for this test: one small coloured square somewhere on a grey canvas."""

    name = "procedural-square"
    colors = {"red": (220, 30, 30), "green": (30, 180, 30), "blue": (30, 30, 220), "yellow": (230, 210, 20)}

    def __init__(self, canvas: int = 224, side: int = 8) -> None:
        self.canvas, self.side = canvas, side

    def generate(self, rng: np.random.Generator, index: int) -> VQASample:
        answer = int(rng.integers(len(self.colors)))
        x, y = (int(v) for v in rng.integers(0, self.canvas - self.side, size=2))
        image = np.full((self.canvas, self.canvas, 3), 128, np.uint8)
        image[y : y + self.side, x : x + self.side] = list(self.colors.values())[answer]
        square = ObjectAnnotation("square", (x, y, x + self.side, y + self.side), {"color": list(self.colors)[answer]})
        return VQASample(
            f"{self.name}-{index}", "What colour is the square?", tuple(self.colors), answer, "color",
            image.copy, (self.canvas, self.canvas), targets=(square,), objects=(square,),
        )  # fmt: skip


class SquareEnv(BenchmarkEnv):
    """The whole env: its generator; the shared constructor does the rest (``data_dir`` is refused)."""

    generator = SquareSceneGenerator


@pytest.fixture
def throwaway_env():
    """A new env id: one module (the two classes above) and one ``gym.register`` call."""
    gym.register(id="MAPO-Square-v0", entry_point=SquareEnv)
    yield "MAPO-Square-v0"
    del gym.registry["MAPO-Square-v0"]


def test_a_throwaway_env_gets_the_shared_constructor(throwaway_env):
    env = gym.make(throwaway_env, split="test", num_samples=3, generator_kwargs={"side": 12}, alignment="lexical")
    x1, _, x2, _ = env.unwrapped.dataset[0].targets[0].bbox
    assert len(env.unwrapped.dataset) == 3 and x2 - x1 == 12  # the knobs reach the generator
    obs, _ = env.reset(seed=0)
    obs, reward, terminated, _, info = env.step(Oracle(env).act(obs))
    assert info["tool_error"] is None and info["target_iou"] > 0
    train = gym.make(throwaway_env, num_samples=3, alignment="lexical").unwrapped.dataset[0]
    assert train.load_image().tobytes() != env.unwrapped.dataset[0].load_image().tobytes()  # disjoint splits
    refused = {"split": "val", "num_samples": 0, "data_dir": "x"}  # checked once, by the shared constructor
    for key, value in refused.items():
        with pytest.raises(ConfigError, match="procedural only" if key == "data_dir" else key):
            gym.make(throwaway_env, alignment="lexical", **{key: value})


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
