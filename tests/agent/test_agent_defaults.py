"""Model- and env-dependent defaults: the tiny agent's per-env settings, a real model's unchanged ones."""

from __future__ import annotations

import dataclasses

import gymnasium as gym
import pytest

import mapo_env
from mapo_agent.agent_defaults import MODEL_DEFAULTS, TINY_AGENT_ENV_KWARGS, agent_defaults
from mapo_agent.config import EnvConfig, ModelConfig, OptimConfig, RolloutConfig, TrainConfig
from mapo_env.errors import ConfigError


def test_every_registered_env_has_tiny_agent_settings_that_it_accepts():
    assert set(TINY_AGENT_ENV_KWARGS) == set(mapo_env.ENV_IDS)
    for env_id in mapo_env.ENV_IDS:
        kwargs = TINY_AGENT_ENV_KWARGS[env_id]
        env = gym.make(env_id, **kwargs).unwrapped  # the env validates every knob at construction
        for key, value in kwargs.items():
            if key in ("max_pixels", "min_pixels", "crop_max_pixels", "crop_min_pixels", "max_turns"):
                assert getattr(env, key) == value, (env_id, key)


def test_tiny_agent_images_fit_its_processor():
    """The environment resizes; the tiny processor (4..256 tokens, 56*56..448*448 px) then leaves images alone."""
    for kwargs in TINY_AGENT_ENV_KWARGS.values():
        for key in ("max_pixels", "crop_max_pixels"):
            assert kwargs.get(key, 112 * 112) <= 448 * 448
        for key in ("min_pixels", "crop_min_pixels"):
            assert kwargs.get(key, 112 * 112) >= 56 * 56


@pytest.mark.parametrize("env_id", mapo_env.ENV_IDS)
def test_resolved_fills_the_tiny_agent_defaults_and_explicit_values_win(env_id):
    config = TrainConfig(env=EnvConfig(id=env_id))
    resolved = config.resolved()
    defaults = agent_defaults(env_id, None)
    assert resolved.env.kwargs == dict(defaults.env_kwargs)
    assert resolved.rollout.max_new_tokens == defaults.max_new_tokens
    assert resolved.optim.max_tokens_per_micro_batch == defaults.max_tokens_per_micro_batch
    assert resolved.rollout.max_tokens_per_generation == defaults.max_tokens_per_generation
    assert resolved.rollout.max_concurrent_questions == (4 if env_id == "MAPO-HRBench8K-v0" else 32)
    assert resolved.resolved() == resolved  # idempotent (a saved config.json resolves to itself)
    assert config.rollout.max_new_tokens is None  # the original is untouched

    explicit = TrainConfig(
        env=EnvConfig(id=env_id, kwargs={"max_pixels": 112 * 112, "max_turns": 2}),
        rollout=RolloutConfig(max_new_tokens=7, max_tokens_per_generation=999),
        optim=OptimConfig(max_tokens_per_micro_batch=123),
    ).resolved()
    assert explicit.env.kwargs["max_pixels"] == 112 * 112 and explicit.env.kwargs["max_turns"] == 2
    assert explicit.rollout.max_new_tokens == 7 and explicit.rollout.max_tokens_per_generation == 999
    assert explicit.optim.max_tokens_per_micro_batch == 123


def test_a_named_model_keeps_the_environments_own_defaults():
    model = ModelConfig(name_or_path="Qwen/Qwen2.5-VL-3B-Instruct")
    config = TrainConfig(env=EnvConfig(id="MAPO-VStar-v0"), model=model)
    resolved = config.resolved()
    assert resolved.env.kwargs == {}  # the env's 1280*28*28 pixels, 6 turns, full system prompt
    assert resolved.rollout.max_new_tokens == MODEL_DEFAULTS.max_new_tokens == 64
    eight_k = dataclasses.replace(config, env=EnvConfig(id="MAPO-HRBench8K-v0")).resolved()
    assert eight_k.rollout.max_concurrent_questions == 4  # scene memory is the env's, whatever the model
    stage_kwargs = resolved.stages()[0].env_kwargs
    assert "max_pixels" not in stage_kwargs and "system_prompt" not in stage_kwargs


def test_an_unknown_env_gets_token_caps_but_no_env_kwargs():
    defaults = agent_defaults("MyOrg/MyEnv-v0", None)
    assert dict(defaults.env_kwargs) == {} and defaults.max_new_tokens == 48


@pytest.mark.parametrize(
    "field",
    [
        "rollout.max_new_tokens",
        "rollout.max_tokens_per_generation",
        "rollout.max_concurrent_questions",
        "optim.max_tokens_per_micro_batch",
    ],
)
@pytest.mark.parametrize("value", [0, -5, 2.5, True, "8"])
def test_bad_budgets_fail_at_construction(field, value):
    section, name = field.split(".")
    parts = {"rollout": RolloutConfig(), "optim": OptimConfig()}
    parts[section] = dataclasses.replace(parts[section], **{name: value})
    with pytest.raises(ConfigError, match=f"{field} must be a positive integer or None"):
        TrainConfig(**parts)
