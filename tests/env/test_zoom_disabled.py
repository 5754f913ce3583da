"""The "tool disabled" ablation (``zoom_enabled=False``): a zoom call pays no bonus and is counted apart."""

from __future__ import annotations

import gymnasium as gym
import pytest

import mapo_env  # noqa: F401
from mapo_env import Oracle
from mapo_env.dialects import dialect_names
from mapo_env.wrappers import ToolBudget


def tiles(**kwargs):
    return gym.make("MAPO-Tiles-v0", alignment="lexical", **kwargs)


def play(env: gym.Env, seed: int, *, zoom: bool = True) -> tuple[float, dict]:
    """The oracle's episode: the total reward and the last info."""
    oracle = Oracle(env, zoom=zoom)
    obs, info = env.reset(seed=seed)
    total, done = 0.0, False
    while not done:
        obs, reward, terminated, truncated, info = env.step(oracle.act(obs))
        total += reward
        done = terminated or truncated
    return total, info


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_disabled_zoom_earns_no_bonus(seed: int) -> None:
    env = tiles(zoom_enabled=False)
    total, info = play(env, seed)
    assert info["correct"] and info["tool_error"] is None and info["num_tool_errors"] == 0
    assert info["reward_terms"] == {"correct": 1.0, "format": 0.1, "tool_bonus": 0.0}
    assert total == pytest.approx(1.1)
    no_zoom_total, no_zoom_info = play(env, seed, zoom=False)  # zooming and answering is worth answering at once
    assert no_zoom_total == pytest.approx(total) and no_zoom_info["reward_terms"] == info["reward_terms"]
    enabled_total, enabled_info = play(tiles(), seed)  # the same episode with the tool on: the bonus is paid
    assert enabled_info["reward_terms"]["tool_bonus"] == 0.1 and enabled_total == pytest.approx(1.2)


def test_disabled_calls_are_counted_apart() -> None:
    env = tiles(zoom_enabled=False)
    obs, info = env.reset(seed=0)
    assert (info["num_tool_calls"], info["num_disabled_tool_calls"]) == (0, 0)
    zoom = Oracle(env).act(obs)
    for k in (1, 2):
        obs, _, _, _, info = env.step(zoom)
        assert info["tool_error"] is None and len(obs["images"]) == 1 + k  # the full view came back
        assert (info["num_tool_calls"], info["num_disabled_tool_calls"]) == (0, k)
    env = tiles()
    obs, _ = env.reset(seed=0)
    _, _, _, _, info = env.step(Oracle(env).act(obs))
    assert (info["num_tool_calls"], info["num_disabled_tool_calls"]) == (1, 0)


def test_a_failed_disabled_call_is_not_counted() -> None:
    env = tiles(zoom_enabled=False)
    env.reset(seed=0)
    _, _, _, _, info = env.step('<tool_call>{"name": "image_zoom_in_tool", "arguments": {"bbox_2d": [5, 5, 5, 5]}}')
    assert info["tool_error"] is not None
    assert (info["num_tool_calls"], info["num_disabled_tool_calls"]) == (0, 0)


@pytest.mark.parametrize("dialect", dialect_names())
def test_no_bonus_for_a_disabled_zoom_in_any_dialect(dialect: str) -> None:
    total, info = play(tiles(zoom_enabled=False, dialect=dialect), 0)
    assert info["correct"] and info["reward_terms"]["tool_bonus"] == 0.0 and total == pytest.approx(1.1)
    assert info["num_tool_calls"] == 0 and info["num_disabled_tool_calls"] >= 1


def test_a_disabled_call_still_spends_the_budget() -> None:
    env = ToolBudget(tiles(zoom_enabled=False), max_tool_calls=1)
    obs, _ = env.reset(seed=0)
    zoom = Oracle(env).act(obs)
    env.step(zoom)
    _, _, _, _, info = env.step(zoom)
    assert info["tool_error"] == "tool_budget_exceeded" and info["num_disabled_tool_calls"] == 1


@pytest.mark.parametrize("env_id", ["MAPO-Tiles-v0", "MAPO-VStar-v0"])
def test_a_disabled_zoom_is_scored_as_the_full_view_it_returned(env_id: str) -> None:
    """Region-reading scorers judge what the model saw (the whole image), target_iou the box it asked for."""
    results = {}
    for enabled in (True, False):
        env = gym.make(env_id, alignment="annotation", zoom_enabled=enabled)
        obs, _ = env.reset(seed=3)
        obs, _, _, _, info = env.step(Oracle(env).act(obs))
        base = env.unwrapped
        results[enabled] = (info["alignment"], info["target_iou"])
        if not enabled:
            visible = {obj.name for obj, fraction in base.objects_in(1) if fraction == 1.0}
            assert visible == {obj.name for obj in base.current_sample.objects}  # the whole scene is in view
        env.close()
    (on_score, on_iou), (off_score, off_iou) = results[True], results[False]
    assert off_iou == pytest.approx(on_iou)  # it still pointed at the target
    assert off_score < on_score  # but its label is judged against the full view it got back
