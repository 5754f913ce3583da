import json

import gymnasium as gym
import numpy as np
import pytest
from PIL import Image

import mapo_env  # noqa: F401
from mapo_env import Oracle
from mapo_env.errors import ConfigError
from mapo_env.wrappers import DiscreteZoomActions, RecordEpisodes, ToolBudget


def tiles(**kwargs):
    kwargs.setdefault("alignment", "lexical")
    return gym.make("MAPO-Tiles-v0", **kwargs)


def test_tool_budget_refuses_extra_zooms():
    env = ToolBudget(tiles(), max_tool_calls=1)
    oracle = Oracle(env)
    obs, _ = env.reset(seed=0)
    zoom = oracle.act(obs)
    obs, _, _, _, info = env.step(zoom)
    assert info["tool_error"] is None and info["num_tool_calls"] == 1
    obs, _, terminated, truncated, info = env.step(zoom)
    assert info["tool_error"] == "tool_budget_exceeded" and not (terminated or truncated)
    assert info["num_tool_calls"] == 1 and len(obs["images"]) == 2
    assert "no zoom calls left" in obs["messages"][-1]["content"][0]["text"]
    obs, reward, terminated, _, info = env.step(oracle.act(obs))
    assert terminated and info["correct"]
    assert reward == pytest.approx(1.1)  # correct + tool bonus; the refused call spoilt the format term
    env.reset(seed=1)
    _, _, _, _, info = env.step(zoom)
    assert info["tool_error"] is None  # the budget is per episode


def test_tool_budget_can_truncate():
    env = ToolBudget(tiles(), max_tool_calls=0, truncate=True)
    obs, _ = env.reset(seed=0)
    _, _, terminated, truncated, info = env.step(Oracle(env).act(obs))
    assert truncated and not terminated and info["tool_error"] == "tool_budget_exceeded"


def test_tool_budget_validates():
    with pytest.raises(ConfigError, match="max_tool_calls"):
        ToolBudget(tiles(), max_tool_calls=-1)
    with pytest.raises(ConfigError, match="MAPO"):
        ToolBudget(gym.make("CartPole-v1"), max_tool_calls=1)


def test_record_episodes_writes_transcripts_and_pictures(tmp_path):
    env = RecordEpisodes(tiles(), tmp_path, picture_every=2)
    oracle = Oracle(env)
    for seed in range(3):
        obs, _ = env.reset(seed=seed)
        done = False
        while not done:
            obs, _, terminated, truncated, _ = env.step(oracle.act(obs))
            done = terminated or truncated
    assert env.num_episodes == 3 and len(env.episodes) == 3
    record = env.episodes[-1]
    assert record.correct is True and record.crop_texts == [env.unwrapped.current_sample.targets[0].name]
    assert len(record.alignment_scores) == 1 and len(record.images) == 2
    rows = [json.loads(line) for line in (tmp_path / "episodes.jsonl").read_text().splitlines()]
    assert [r["sample_id"] for r in rows] == [e.sample_id for e in env.episodes]
    assert rows[0]["crop_boxes"] and rows[0]["messages"][-1]["role"] == "assistant"
    pictures = sorted(tmp_path.glob("episode_*.png"))
    assert [p.name for p in pictures] == ["episode_00001.png", "episode_00003.png"]
    with Image.open(pictures[0]) as picture:
        assert picture.width == 1200 and picture.height > 300


def test_record_episodes_html(tmp_path):
    env = RecordEpisodes(tiles(), tmp_path, picture_format="html")
    env.reset(seed=0)
    env.step("<answer>A</answer>")
    page = (tmp_path / "episode_00001.html").read_text()
    assert page.startswith("<!doctype html>") and "data:image/png;base64," in page and "[assistant]" in page


def test_record_episodes_post_mode_keeps_descriptions():
    env = RecordEpisodes(tiles(description_mode="post"))
    oracle = Oracle(env)
    obs, _ = env.reset(seed=0)
    obs, *_ = env.step(oracle.act(obs))
    env.step(oracle.act(obs))
    record = env.episodes[-1]
    assert record.crop_texts == [env.unwrapped.current_sample.targets[0].caption()]
    assert record.alignment_scores[0] > 0.5


def test_discrete_actions_spaces_and_zoom_cells():
    env = DiscreteZoomActions(tiles(), grid=4, image_size=48)
    assert env.action_space.n == 16 + 4
    obs, info = env.reset(seed=0)
    assert obs in env.observation_space
    assert not obs["crop"].any()
    sample = env.unwrapped.current_sample
    row, col = sample.metadata["target_cell"]
    obs, reward, terminated, truncated, info = env.step(row * 4 + col)
    assert obs in env.observation_space and obs["crop"].any()
    assert info["tool_error"] is None and info["target_iou"] > 0.7
    answer = 16 + env.unwrapped.shown_answer_index
    obs, reward, terminated, truncated, info = env.step(answer)
    assert terminated and info["correct"] and reward > 1.0


def test_discrete_actions_text_and_hashing_are_stable():
    env = DiscreteZoomActions(tiles(), grid=2)
    env.reset(seed=3)
    assert env.action_text(4) == "<answer>A</answer>"
    text = env.action_text(3)
    assert text.startswith("<tool_call>") and "[56, 56, 112, 112]" in text  # bottom-right quarter of the 112 view
    a = env._hash_words("What pattern is on the red tile?")
    assert np.array_equal(a, env._hash_words("what PATTERN is on the red tile"))
    assert a.max() == 1.0
    with pytest.raises(ConfigError):
        env.action_text(99)


@pytest.mark.parametrize("terminates", [True, False])
def test_discrete_actions_turn_limit_ends_the_episode_as_termination_by_default(terminates):
    # SB3 bootstraps its value past a truncation; an agent that never answers would look free
    env = DiscreteZoomActions(tiles(max_turns=2), grid=2, turn_limit_terminates=terminates)
    env.reset(seed=0)
    env.step(0)
    _, _, terminated, truncated, info = env.step(1)
    assert (terminated, truncated) == (terminates, not terminates)
    assert not info["correct"]


def test_discrete_actions_check_env():
    from gymnasium.utils.env_checker import check_env

    check_env(DiscreteZoomActions(tiles(), grid=3), skip_render_check=True)
