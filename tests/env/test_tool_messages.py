"""Tool replies are capped and never echo unbounded model text; post mode requires a description after a crop."""

from __future__ import annotations

import json

import gymnasium as gym
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import mapo_env  # noqa: F401
from mapo_env import ENV_IDS
from mapo_env.actions import format_answer, format_tool_call
from mapo_env.core import MAX_TOOL_MESSAGE_CHARS, ThinkWithImagesEnv, cap_message

from .helpers import toy_dataset

ZOOM = (
    '<tool_call>{{"name": "image_zoom_in_tool", '
    '"arguments": {{"label": "x", "bbox_2d": {box}, "image_index": {index}}}}}</tool_call>'
)


def reply_text(obs: dict) -> str:
    return "".join(part.get("text", "") for part in obs["messages"][-1]["content"])


@pytest.mark.parametrize("env_id", ENV_IDS)
@pytest.mark.parametrize("digits", [13, 400, 4000, 4299])
def test_a_huge_image_index_is_not_echoed(env_id: str, digits: int) -> None:
    env = gym.make(env_id, alignment=None, num_samples=1)
    env.reset(options={"index": 0})
    obs, _, _, _, info = env.step(ZOOM.format(box="[0, 0, 50, 50]", index="9" * digits))
    assert info["tool_error"] in ("bad_image_index", "bad_json")
    text = reply_text(obs)
    assert "9" * 13 not in text
    assert len(text) <= MAX_TOOL_MESSAGE_CHARS + 100


@settings(max_examples=100, deadline=None)
@given(st.text(min_size=0, max_size=3000))
def test_cap_message_bounds_any_text(text: str) -> None:
    capped = cap_message(text)
    assert len(capped) <= MAX_TOOL_MESSAGE_CHARS
    assert capped == text or capped.endswith("...")


@settings(max_examples=60, deadline=None)
@given(st.text(max_size=2000), st.sampled_from(["label", "image_index", "bbox_2d", "name"]))
def test_no_tool_reply_exceeds_the_cap(value: str, field: str) -> None:
    env = ThinkWithImagesEnv(toy_dataset(1), alignment=None)
    env.reset(options={"index": 0})
    arguments = {"label": "ball", "bbox_2d": [0, 0, 100, 100], "image_index": 0}
    call = {"name": "image_zoom_in_tool", "arguments": arguments}
    if field == "name":
        call["name"] = value
    else:
        arguments[field] = value
    obs, _, _, _, info = env.step(f"<tool_call>{json.dumps(call)}</tool_call>")
    if info["tool_error"] is not None:
        assert len(reply_text(obs)) <= MAX_TOOL_MESSAGE_CHARS + 100


def post_env(**kwargs) -> ThinkWithImagesEnv:
    return ThinkWithImagesEnv(toy_dataset(1), alignment=None, description_mode="post", **kwargs)


def test_post_mode_answer_right_after_a_crop_is_missing_its_description() -> None:
    env = post_env()
    env.reset(options={"index": 0})
    env.step(format_tool_call((300, 200, 500, 400)))
    _, reward, terminated, _, info = env.step(format_answer("ABCD"[env.shown_answer_index]))
    assert terminated and info["correct"]
    assert info["tool_error"] == "missing_description"
    assert info["reward_terms"]["format"] == 0.0
    assert reward == pytest.approx(env.correct_reward + env.tool_bonus)


def test_post_mode_described_answer_keeps_the_format_reward() -> None:
    env = post_env()
    env.reset(options={"index": 0})
    env.step(format_tool_call((300, 200, 500, 400)))
    letter = "ABCD"[env.shown_answer_index]
    _, reward, _, _, info = env.step(f"<description>a red ball</description>{format_answer(letter)}")
    assert info["tool_error"] is None and info["reward_terms"]["format"] == env.format_reward


def test_post_mode_zoom_right_after_a_crop_is_carried_out_and_flagged() -> None:
    env = post_env()
    env.reset(options={"index": 0})
    env.step(format_tool_call((300, 200, 500, 400)))
    obs, _, _, _, info = env.step(format_tool_call((0, 0, 200, 200)))
    assert len(obs["images"]) == 3 and info["num_tool_calls"] == 2
    assert info["tool_error"] == "missing_description" and info["num_tool_errors"] == 1
    assert "<description>" in reply_text(obs)
    assert [m["role"] for m in obs["messages"]][-2:] == ["assistant", "user"]  # one reply, no extra message
    _, _, _, _, info = env.step("<description>grass</description>" + format_answer("A"))
    assert info["tool_error"] is None and info["reward_terms"]["format"] == 0.0  # the earlier turn counted


def test_label_mode_does_not_ask_for_descriptions() -> None:
    env = ThinkWithImagesEnv(toy_dataset(1), alignment=None)
    env.reset(options={"index": 0})
    env.step(format_tool_call((300, 200, 500, 400), label="red ball"))
    _, _, _, _, info = env.step(format_answer("A"))
    assert info["tool_error"] is None
