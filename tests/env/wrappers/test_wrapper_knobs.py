"""Wrapper constructor knobs are validated by name (no bool-as-int, no float, no zero where it would divide)."""

from __future__ import annotations

import math

import gymnasium as gym
import pytest

import mapo_env  # noqa: F401
from mapo_env.errors import ConfigError
from mapo_env.wrappers import DiscreteZoomActions, RecordEpisodes, ToolBudget


@pytest.fixture(scope="module")
def env() -> gym.Env:
    return gym.make("MAPO-Tiles-v0", alignment=None)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"grid": 0},
        {"grid": 2.0},
        {"grid": True},
        {"image_size": -1},
        {"max_options": 27},
        {"max_options": 0},
        {"text_features": 0},
        {"text_features": math.nan},
        {"label": ""},
        {"label": 3},
        {"turn_limit_terminates": "yes"},
    ],
)
def test_discrete_actions_knobs(env: gym.Env, kwargs: dict) -> None:
    with pytest.raises(ConfigError, match=next(iter(kwargs))):
        DiscreteZoomActions(env, **kwargs)


@pytest.mark.parametrize(
    "kwargs",
    [{"keep": -1}, {"keep": 1.5}, {"picture_every": True}, {"picture_format": "jpg"}, {"directory": 3}],
)
def test_record_episodes_knobs(env: gym.Env, kwargs: dict) -> None:
    with pytest.raises(ConfigError, match=next(iter(kwargs))):
        RecordEpisodes(env, **kwargs)


@pytest.mark.parametrize("kwargs", [{"max_tool_calls": -1}, {"max_tool_calls": 1.0}, {"truncate": 1}])
def test_tool_budget_knobs(env: gym.Env, kwargs: dict) -> None:
    kwargs = {"max_tool_calls": 1, **kwargs}
    with pytest.raises(ConfigError, match="max_tool_calls" if "truncate" not in kwargs else "truncate"):
        ToolBudget(env, **kwargs)
