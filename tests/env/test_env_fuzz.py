"""Every environment survives >= 10,000 random and adversarial turns: no exception, a clear message, the right code.

Also fuzzed: construction with random knob values and reset with random options (ConfigError or a working env).
"""

from __future__ import annotations

import random

import gymnasium as gym
import pytest

import mapo_env  # noqa: F401
from mapo_env import ENV_IDS
from mapo_env.actions import ToolError, format_tool_call, parse_action
from mapo_env.errors import ConfigError

from .test_actions_fuzz import random_turn

TURNS_PER_ENV = 2_100  # x 5 envs = 10,500 turns
GEOMETRY_CODES = {
    ToolError.BAD_BBOX.value,
    ToolError.BAD_ASPECT_RATIO.value,
    ToolError.BAD_IMAGE_INDEX.value,
    ToolError.MISSING_LABEL.value,
    ToolError.LABEL_TOO_LONG.value,
}


def adversarial_turns(rng: random.Random) -> list[str]:
    """Hand-made nasty turns, valid syntax with absurd geometry, and 1 MB strings."""
    big = 10**12
    boxes = [
        (0, 0, big, big),
        (-big, -big, -1, -1),
        (50, 50, 10, 10),
        (10, 10, 10, 10),
        (0, 0, 1e-9, 1e-9),
        (0, 0, 1000, 1),
        (3.5, 2.25, 3.75, 2.5),
    ]
    turns = [format_tool_call(b, label="the red tile") for b in boxes]
    turns += [format_tool_call((0, 0, 10, 10), label="x " * 500), format_tool_call((0, 0, 10, 10), image_index=9)]
    turns += ['<tool_call>{"name": "image_zoom_in_tool", "arguments": {"bbox_2d": [NaN, 1, 2, 3], "label": "a"}}']
    turns += ["<answer>" + "Z" * 100 + "</answer>", "<answer>", "<answer>\u200b</answer>", "</answer>A"]
    turns += ["x" * 1_000_000, "<think>" + "a" * 1_000_000, "{" * 100_000]
    rng.shuffle(turns)
    return turns


def expected_codes(text: str, max_chars: int) -> set[str | None]:
    """The tool_error codes a correct env may report for ``text``."""
    if len(text) > max_chars:
        return {ToolError.ACTION_TOO_LONG.value}
    parsed = parse_action(text)
    if parsed.kind == "invalid":
        return {parsed.error.value}
    if parsed.kind == "answer":
        return {None}
    return GEOMETRY_CODES | {None}


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_env_never_raises_on_model_text(env_id):
    rng = random.Random(f"fuzz-{env_id}")
    env = gym.make(env_id, alignment="lexical")
    base = env.unwrapped
    turns = adversarial_turns(rng) + [random_turn(rng) for _ in range(TURNS_PER_ENV)]
    env.reset(seed=0, options={"index": 0})
    seen: set[str | None] = set()
    for turn in turns:
        obs, reward, terminated, truncated, info = env.step(turn)
        code = info["tool_error"]
        seen.add(code)
        assert code in expected_codes(turn, base.max_action_chars), (turn[:200], code)
        assert isinstance(reward, float)
        if code is not None and not truncated:
            reply = obs["messages"][-1]
            assert reply["role"] == "user"
            message = reply["content"][0]["text"]
            assert "Error" in message and len(message) < 800
        if terminated or truncated:
            env.reset(seed=rng.randrange(1000), options={"index": 0})
    # the fuzz reached the main paths
    assert {None, "no_action", "bad_json", "bad_bbox", "action_too_long"} <= seen


KNOBS = (
    "max_turns",
    "max_action_chars",
    "max_label_words",
    "max_pixels",
    "min_pixels",
    "crop_max_pixels",
    "crop_min_pixels",
    "patch_size",
    "min_crop_px",
    "max_aspect_ratio",
    "shuffle_options",
    "zoom_enabled",
    "require_think",
    "correct_reward",
    "format_reward",
    "tool_bonus",
    "tool_error_penalty",
    "coords",
    "description_mode",
    "system_prompt",
    "num_samples",
    "dataset_seed",
)
ODD_VALUES = (
    [0, 1, 2, 3, 7, 28, 56, 112, 10**4, 12_544, 10**6, -1, -28, 10**30, 2**63]
    + [0.0, 0.5, 1.0, 2.5, 30.0, 1e9, float("nan"), float("inf"), -float("inf"), -0.5]
    + [True, False, None, "", "3", "pixel", "norm", "post", "label", [1], {"a": 1}, b"x"]
)


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_env_construction_and_reset_fuzz(env_id):
    """Random knob values: the env is built and steps inside its spaces, or ConfigError says which knob."""
    rng = random.Random(f"construct-{env_id}")
    built = refused = 0
    for _ in range(60):
        kwargs = {name: rng.choice(ODD_VALUES) for name in rng.sample(KNOBS, rng.randint(1, 3))}
        try:
            env = gym.make(env_id, alignment=None, **kwargs)
        except ConfigError as error:
            assert any(name in str(error) for name in kwargs), (kwargs, error)
            refused += 1
            continue
        built += 1
        options = rng.choice([None, {"index": 0}, {"index": rng.choice(ODD_VALUES)}, rng.choice(ODD_VALUES)])
        try:
            obs, _ = env.reset(seed=rng.randrange(100), options=options)
        except ConfigError:
            continue
        assert obs in env.observation_space
        obs, reward, *_ = env.step(format_tool_call((0, 0, 40, 30), label="the thing"))
        assert obs in env.observation_space and isinstance(reward, float)
    assert built and refused, (built, refused)
