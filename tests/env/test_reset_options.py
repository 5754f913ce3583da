"""reset(seed=, options=) refuses wrong types with a named error, and a failed reset leaves no episode to step."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import mapo_env  # noqa: F401
from mapo_env import ENV_IDS
from mapo_env.actions import format_answer
from mapo_env.core import ThinkWithImagesEnv
from mapo_env.data.base import ListDataset
from mapo_env.errors import ConfigError, CorruptSampleError, ResetNeeded
from mapo_env.types import VQASample

from .helpers import make_sample, toy_dataset


def make_env(n: int = 3) -> ThinkWithImagesEnv:
    return ThinkWithImagesEnv(toy_dataset(n), alignment=None)


BAD_OPTIONS = [
    ([("index", 0)], "must be a dict"),
    ("index=0", "must be a dict"),
    ([0], "must be a dict"),
    ({"idx": 0}, "unknown key 'idx'.*Did you mean 'index'"),
    ({"seed": 0}, "unknown key"),
    ({"index": True}, r"options\['index'\]"),
    ({"index": np.bool_(False)}, r"options\['index'\]"),
    ({"index": 1.0}, r"options\['index'\]"),
    ({"index": "1"}, r"options\['index'\]"),
    ({"index": -1}, r"options\['index'\]"),
    ({"index": 3}, r"options\['index'\]"),
    ({"index": 10**5000}, r"options\['index'\]"),
    ({"option_order": "0123"}, "option_order"),
    ({"option_order": 3}, "option_order"),
    ({"option_order": {0: 1}}, "option_order"),
    ({"option_order": [0.0, 1.0, 2.0, 3.0]}, "option_order"),
    ({"option_order": [True, False, 2, 3]}, "option_order"),
    ({"option_order": [0, 1, 2]}, "permutation"),
    ({"option_order": [0, 1, 2, 2]}, "permutation"),
    ({"option_order": [0, 1, 2, 3, 4]}, "permutation"),
]


@pytest.mark.parametrize("options, match", BAD_OPTIONS)
def test_bad_options_are_refused_by_name_and_leave_no_episode(options: object, match: str) -> None:
    env = make_env()
    env.reset(seed=0)
    with pytest.raises(ConfigError, match=match):
        env.reset(options=options)  # type: ignore[arg-type]
    with pytest.raises(ResetNeeded):
        env.step(format_answer("A"))
    env.reset(options={"index": 1})  # a good reset works again
    env.step(format_answer("A"))


@pytest.mark.parametrize("seed", [-1, 1.5, "3", True, [1]])
def test_bad_seeds_are_refused_before_the_generator_is_touched(seed: object) -> None:
    env = make_env()
    env.reset(seed=5)
    state = env.np_random.bit_generator.state
    with pytest.raises(ConfigError, match="seed"):
        env.reset(seed=seed)  # type: ignore[arg-type]
    assert env.np_random.bit_generator.state == state


def test_refused_options_do_not_reseed() -> None:
    env = make_env()
    env.reset(seed=5)
    state = env.np_random.bit_generator.state
    with pytest.raises(ConfigError):
        env.reset(seed=7, options={"index": True})
    assert env.np_random.bit_generator.state == state


def test_numpy_ints_and_tuples_are_accepted() -> None:
    env = make_env()
    obs, info = env.reset(options={"index": np.int64(2), "option_order": (3, 2, np.int32(1), 0)})
    assert info["sample_index"] == 2
    assert env.shown_answer_index == 3


@settings(max_examples=60, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(["index", "option_order"]),
        st.one_of(
            st.integers(-5, 8),
            st.floats(allow_nan=True),
            st.booleans(),
            st.text(max_size=3),
            st.lists(st.one_of(st.integers(-1, 5), st.floats(0, 4)), max_size=6),
            st.none(),
        ),
    )
)
def test_any_options_either_start_an_episode_or_raise_config_error(options: dict) -> None:
    env = make_env()
    try:
        obs, info = env.reset(options=options)
    except ConfigError:
        with pytest.raises(ResetNeeded):
            env.step(format_answer("A"))
        return
    assert obs in env.observation_space
    if options.get("index") is not None:
        assert info["sample_index"] == options["index"] and type(options["index"]) is int


def broken_sample(load_image) -> VQASample:
    good = make_sample(1)
    return VQASample(
        sample_id="broken",
        question=good.question,
        options=good.options,
        answer_index=0,
        category="x",
        load_image=load_image,
        image_size=good.image_size,
    )


def corrupt() -> np.ndarray:
    raise CorruptSampleError("cannot decode the image", path="broken.jpg")


@pytest.mark.parametrize(
    "load_image, error, match",
    [
        (corrupt, CorruptSampleError, "broken.jpg"),
        (lambda: np.zeros((800, 1000, 3), np.float32), CorruptSampleError, "uint8"),
        (lambda: np.zeros((800, 1000), np.uint8), CorruptSampleError, r"\(H, W, 3\)"),
        (lambda: np.zeros((80, 100, 3), np.uint8), CorruptSampleError, "image_size"),
        (lambda: "image.jpg", CorruptSampleError, "str"),
    ],
)
def test_a_failed_reset_leaves_the_previous_episode_unsteppable(load_image, error, match) -> None:
    env = ThinkWithImagesEnv(ListDataset("mixed", [make_sample(0), broken_sample(load_image)]), alignment=None)
    env.reset(options={"index": 0})
    with pytest.raises(error, match=match):
        env.reset(options={"index": 1})
    with pytest.raises(ResetNeeded):
        env.step(format_answer("A"))
    with pytest.raises(ResetNeeded):
        _ = env.current_sample
    env.reset(options={"index": 0})
    assert env.step(format_answer("A"))[2]


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_registered_envs_refuse_bad_options(env_id: str) -> None:
    env = gym.make(env_id, alignment=None, num_samples=4)
    env.reset(options={"index": 0})
    for options in ({"index": True}, {"index": 4}, [1], {"index": 0.0}, {"order": [0, 1]}):
        with pytest.raises(ConfigError):
            env.reset(options=options)
    with pytest.raises(ResetNeeded):
        env.step(format_answer("A"))
