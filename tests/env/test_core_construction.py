"""Every ThinkWithImagesEnv knob is validated at construction: nonsense is refused with a named error."""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import mapo_env  # noqa: F401
from mapo_env import ENV_IDS
from mapo_env.core import ThinkWithImagesEnv
from mapo_env.errors import ConfigError

from .helpers import toy_dataset

INT_KNOBS = {  # knob: smallest valid value
    "max_turns": 1,
    "max_action_chars": 1,
    "max_label_words": 1,
    "patch_size": 1,
    "min_crop_px": 1,
    "min_pixels": 1,
    "crop_min_pixels": 1,
}
REAL_KNOBS = ("correct_reward", "format_reward", "tool_bonus", "tool_error_penalty")
BOOL_KNOBS = ("shuffle_options", "zoom_enabled", "require_think")
WRONG_TYPES = st.one_of(
    st.booleans(), st.text(max_size=4), st.lists(st.integers(), max_size=2), st.just(np.bool_(True)), st.none()
)


def make(**kwargs) -> ThinkWithImagesEnv:
    kwargs.setdefault("alignment", None)
    return ThinkWithImagesEnv(toy_dataset(1), **kwargs)


def test_defaults_construct() -> None:
    env = make()
    assert env.max_aspect_ratio == 30.0 and env.min_crop_px == 28


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(sorted(INT_KNOBS)), st.integers(max_value=0))
def test_int_knobs_refuse_values_below_their_minimum(knob: str, value: int) -> None:
    with pytest.raises(ConfigError, match=knob):
        make(**{knob: value})


@settings(max_examples=80, deadline=None)
@given(st.sampled_from(sorted(INT_KNOBS)), st.one_of(WRONG_TYPES, st.floats(allow_nan=True)))
def test_int_knobs_refuse_other_types(knob: str, value: object) -> None:
    with pytest.raises(ConfigError, match=knob):
        make(**{knob: value})


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, 0.99, 0, -5, "30", True, None])
def test_max_aspect_ratio_must_be_a_finite_number_at_least_one(value: object) -> None:
    with pytest.raises(ConfigError, match="max_aspect_ratio"):
        make(max_aspect_ratio=value)


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(REAL_KNOBS), st.one_of(st.sampled_from([math.nan, math.inf, -math.inf]), WRONG_TYPES))
def test_reward_knobs_must_be_finite_numbers(knob: str, value: object) -> None:
    with pytest.raises(ConfigError, match=knob):
        make(**{knob: value})


@settings(max_examples=40, deadline=None)
@given(st.sampled_from(BOOL_KNOBS), st.one_of(st.integers(), st.text(max_size=5), st.none(), st.floats()))
def test_flags_must_be_bools(knob: str, value: object) -> None:
    with pytest.raises(ConfigError, match=knob):
        make(**{knob: value})


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"max_pixels": 27 * 27}, "max_pixels"),  # below one 28x28 patch
        ({"crop_max_pixels": 100}, "crop_max_pixels"),
        ({"min_pixels": 10**9}, "min_pixels"),  # above max_pixels
        ({"crop_min_pixels": 10**9, "crop_max_pixels": 10**6}, "crop_min_pixels"),
        ({"max_pixels": 2.5e6}, "max_pixels"),
        ({"coords": "pixels"}, "coords"),
        ({"coords": None}, "coords"),
        ({"description_mode": "Post"}, "description_mode"),
        ({"render_mode": "human"}, "render_mode"),
        ({"system_prompt": 3}, "system_prompt"),
        ({"system_prompt": b"bytes"}, "system_prompt"),
    ],
)
def test_inconsistent_or_wrongly_typed_knobs(kwargs: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        make(**kwargs)


@pytest.mark.parametrize("dataset", [[], "vstar", None, 3])
def test_dataset_must_be_a_dataset(dataset: object) -> None:
    with pytest.raises(ConfigError, match="dataset"):
        ThinkWithImagesEnv(dataset, alignment=None)  # type: ignore[arg-type]


def test_numpy_scalars_are_accepted_and_stored_as_python_numbers() -> None:
    env = make(max_turns=np.int64(3), max_aspect_ratio=np.float32(10.0), zoom_enabled=np.bool_(False))
    assert type(env.max_turns) is int and type(env.max_aspect_ratio) is float and env.zoom_enabled is False


@pytest.mark.parametrize("env_id", ENV_IDS)
@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_aspect_ratio": math.nan},
        {"min_crop_px": 0},
        {"min_crop_px": -28},
        {"max_label_words": -1},
        {"max_turns": True},
        {"max_turns": 2.0},
        {"format_reward": math.nan},
        {"zoom_enabled": "false"},
    ],
)
def test_gym_make_refuses_nonsense_on_every_env(env_id: str, kwargs: dict) -> None:
    with pytest.raises(ConfigError, match=next(iter(kwargs))):
        gym.make(env_id, alignment=None, **kwargs)


@pytest.mark.parametrize("env_id", ENV_IDS)
@pytest.mark.parametrize(
    "kwargs",
    [
        {"num_samples": 0},
        {"num_samples": 2.5},
        {"num_samples": True},
        {"dataset_seed": -1},
        {"dataset_seed": "0"},
        {"split": "val"},
        {"split": None},
    ],
)
def test_procedural_dataset_knobs_are_checked(env_id: str, kwargs: dict) -> None:
    with pytest.raises(ConfigError, match=next(iter(kwargs))):
        gym.make(env_id, alignment=None, **kwargs)


@pytest.mark.parametrize("env_id", [e for e in ENV_IDS if e != "MAPO-Tiles-v0"])
def test_data_dir_must_be_a_path(env_id: str) -> None:
    with pytest.raises(ConfigError, match="data_dir"):
        gym.make(env_id, alignment=None, data_dir=3)
