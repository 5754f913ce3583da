"""DiscreteZoomActions.step takes integers only: anything else is our misuse and raises a named error."""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import mapo_env  # noqa: F401
from mapo_env.errors import ConfigError, InvalidActionType
from mapo_env.wrappers import DiscreteZoomActions


@pytest.fixture(scope="module")
def env() -> DiscreteZoomActions:
    return DiscreteZoomActions(gym.make("MAPO-Tiles-v0", alignment=None), grid=2)


@pytest.mark.parametrize(
    "action", [math.nan, None, 1.7, 1.0, True, False, np.bool_(True), "3", b"3", [1], np.array([1]), np.array(1.0)]
)
def test_non_integers_are_refused(env: DiscreteZoomActions, action: object) -> None:
    env.reset(seed=0)
    with pytest.raises(InvalidActionType, match="expects an int action"):
        env.step(action)  # type: ignore[arg-type]
    assert env.unwrapped._episode.turn == 0  # nothing was applied


@pytest.mark.parametrize("action", [-1, 8, 10**30, np.int64(-3)])
def test_out_of_range_integers_are_refused(env: DiscreteZoomActions, action: int) -> None:
    env.reset(seed=0)
    with pytest.raises(ConfigError, match=r"\[0, 8\)"):
        env.step(action)


@settings(max_examples=100, deadline=None)
@given(
    st.one_of(
        st.floats(allow_nan=True, allow_infinity=True),
        st.text(max_size=3),
        st.booleans(),
        st.none(),
        st.lists(st.integers(0, 7), max_size=2),
    )
)
def test_any_non_integer_is_refused(action: object) -> None:
    env = DiscreteZoomActions(gym.make("MAPO-Tiles-v0", alignment=None), grid=2)
    env.reset(seed=0)
    with pytest.raises(InvalidActionType):
        env.step(action)  # type: ignore[arg-type]


@pytest.mark.parametrize("action", [0, 3, np.int64(2), np.int32(1), np.array(2), np.uint8(4)])
def test_integers_of_every_kind_step(env: DiscreteZoomActions, action: object) -> None:
    env.reset(seed=0)
    obs, reward, terminated, truncated, info = env.step(action)  # type: ignore[arg-type]
    assert obs in env.observation_space and isinstance(reward, float)
