"""The environment side of the verl adapter, without verl: rows, per-trajectory episodes, compute_score.

These run in the default suite; the tests with the real verl are ``tests/integrations/test_verl.py``
(``pytest -m verl``).
"""

from __future__ import annotations

import importlib.util

import pytest

from mapo_env.errors import ConfigError, DependencyNotInstalled
from mapo_env.integrations import verl as mapo_verl
from tests.import_check import assert_import_leaves_out

ENV_ID = "MAPO-Tiles-v0"


@pytest.fixture(scope="module")
def rows():
    return mapo_verl.make_rows(ENV_ID, num_questions=2, seed=7)


def test_import_pulls_in_neither_verl_nor_torch():
    assert_import_leaves_out("mapo_env.integrations.verl", ("torch", "transformers", "verl", "ray", "mapo_agent"))


@pytest.mark.skipif(importlib.util.find_spec("verl") is not None, reason="verl is installed")
def test_tool_class_without_verl_names_the_install():
    with pytest.raises(DependencyNotInstalled, match=r"mapo-gym\[verl\]"):
        mapo_verl.MapoZoomTool  # noqa: B018


def test_rows_have_verls_format(rows):
    row = rows[0]
    assert row["data_source"] == ENV_ID and row["agent_name"] == "tool_agent"
    assert row["prompt"][-1]["content"].startswith("<image>") and row["images"][0]["bytes"][:4] == b"\x89PNG"
    create = row["extra_info"]["tools_kwargs"]["image_zoom_in_tool"]["create_kwargs"]
    assert set(create) == {"env_id", "index", "option_order", "seed"}
    assert row["reward_model"]["ground_truth"] in "ABCD" and len(row["extra_info"]["options"]) == 4


def test_episodes_are_per_trajectory_and_bounded(rows):
    create = rows[0]["extra_info"]["tools_kwargs"]["image_zoom_in_tool"]["create_kwargs"]
    episodes = mapo_verl.ZoomEpisodes(ENV_ID, max_episodes=1)
    first = episodes.get("a", create)
    crop, text, reward, metrics = mapo_verl.zoom(first, {"label": "red tile", "bbox_2d": [0, 0, 56, 56]})
    assert crop is not None and text and metrics["failed"] is False and reward == metrics["alignment"]
    assert episodes.get("a", create) is first
    second = episodes.get("b", create)  # evicts "a" and reuses its environment
    assert second is first and len(episodes) == 1 and second.tool_call_scores == []
    crop, text, reward, metrics = mapo_verl.zoom(second, {"bbox_2d": [0, 0, 56, 56]})
    assert crop is None and text.startswith("Error") and reward == 0.0 and metrics["failed"] is True
    with pytest.raises(ConfigError, match="make_rows"):
        episodes.get("c", {"seed": 1})
    with pytest.raises(ConfigError, match="max_episodes"):
        mapo_verl.ZoomEpisodes(ENV_ID, max_episodes=0)


@pytest.mark.parametrize(
    "response, tool_rewards, outcome, semantic",
    [
        ("<think>red</think><answer>B</answer>", [], 1.1, 0.0),
        ("zoom...<answer>B</answer>", [0.5, 1.0], 1.2, (0.5 * 0.95 + 1.0) / 1.95),
        ("<answer>A</answer>", [0.2], 0.1, 0.2),
        ("<answer>A</answer> no, <answer>vertical stripes</answer>", [], 1.1, 0.0),
        ("I give up", [0.3], 0.0, 0.3),
    ],
)
def test_compute_score(response, tool_rewards, outcome, semantic):
    options = ["horizontal stripes", "vertical stripes", "checkerboard", "plain"]
    extra = {"options": options, "tool_rewards": tool_rewards}
    result = mapo_verl.compute_score(ENV_ID, response, "B", extra)
    assert result["outcome"] == pytest.approx(outcome) and result["semantic"] == pytest.approx(semantic)
    assert result["score"] == result["outcome"] and result["num_zooms"] == len(tool_rewards)
    mixed = mapo_verl.compute_score(ENV_ID, response, "B", extra, semantic_coef=0.4)
    assert mixed["score"] == pytest.approx(outcome + 0.4 * semantic)


def test_compute_score_needs_the_options():
    with pytest.raises(ConfigError, match="options"):
        mapo_verl.compute_score(ENV_ID, "<answer>A</answer>", "A", {})
