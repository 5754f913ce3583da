"""The environment side of the TRL adapter, without TRL: tool, rollback replay, rewards, dataset rows.

These run in the default suite (they need neither TRL nor ``datasets``); the training run with the
real TRL is ``tests/integrations/test_trl.py`` (``pytest -m trl``).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mapo_agent.algorithms.advantages import semantic_scores
from mapo_env.errors import ConfigError, ResetNeeded
from mapo_env.integrations import trl as mapo_trl
from tests.import_check import assert_import_leaves_out

ENV_ID = "MAPO-Tiles-v0"


@pytest.fixture(scope="module")
def factory():
    return mapo_trl.MapoEnvFactory(ENV_ID)


@pytest.fixture(scope="module")
def rows():
    return mapo_trl.make_rows(ENV_ID, num_questions=3, seed=5)


def tool_turn(result):
    return [
        {"role": "assistant", "content": "", "tool_calls": [{"type": "function"}]},
        {"role": "tool", "name": "image_zoom_in_tool", "content": result},
    ]


def test_import_pulls_in_no_ml_library():
    assert_import_leaves_out("mapo_env.integrations.trl", ("torch", "transformers", "trl", "datasets", "mapo_agent"))


def test_rows_reproduce_the_reset(factory, rows):
    env = factory().env
    for row in rows:
        assert set(mapo_trl.ROW_KEYS) <= set(row)
        options = {"index": row["mapo_index"], "option_order": row["mapo_option_order"]}
        obs, info = env.reset(seed=row["mapo_seed"], options=options)
        assert np.array_equal(np.asarray(row["images"][0]), obs["images"][0])
        assert row["prompt"][-1]["content"] == obs["messages"][-1]["content"][-1]["text"]
        assert [m["role"] for m in row["prompt"]] == [m["role"] for m in obs["messages"]]


def test_zoom_returns_the_environments_crop(factory, rows):
    env = factory()
    env.reset(**rows[0])
    out = env.image_zoom_in_tool(label="red tile", bbox_2d=[10, 20, 60, 90])
    assert isinstance(out, list) and out[0]["type"] == "image" and out[1]["type"] == "text"
    reference = factory().env
    reference.reset(seed=rows[0]["mapo_seed"], options={"index": rows[0]["mapo_index"]})
    action = reference.unwrapped.dialect.format_tool_call([10, 20, 60, 90], label="red tile")
    obs, *_ = reference.step(action)
    assert np.array_equal(np.asarray(out[0]["image"]), obs["images"][-1])
    assert "<tool_response>" not in out[1]["text"]


@pytest.mark.parametrize(
    "label, bbox, index",
    [("x", [1, 2, "a", 4], 0), ("x", [1, 2, 3], 0), (None, [1, 2, 30, 40], 0), ("x", [1, 2, 30, 40], 7)],
)
def test_malformed_call_is_a_failed_turn_not_an_exception(factory, rows, label, bbox, index):
    env = factory()
    env.reset(**rows[0])
    out = env.image_zoom_in_tool(label=label, bbox_2d=bbox, image_index=index)
    assert isinstance(out, str) and out.startswith("Error")
    record = mapo_trl.finish_episode(env, [*tool_turn(out), {"role": "assistant", "content": "<answer>A</answer>"}])
    assert record.tool_call_scores == [None] and record.num_tool_calls == 0 and record.answered


def test_answer_is_stepped_once_and_graded(factory, rows):
    env = factory()
    env.reset(**rows[1])
    letter = "ABCD"[env.env.unwrapped.shown_answer_index]
    crop = env.image_zoom_in_tool(label="tile", bbox_2d=[0, 0, 56, 56])
    completion = [*tool_turn(crop), {"role": "assistant", "content": f"<answer>{letter}</answer>"}]
    outcome = mapo_trl.outcome_reward([completion], environments=[env])
    semantic = mapo_trl.semantic_reward([completion], environments=[env])
    record = env.record
    assert record.correct and record.answered and outcome == [record.reward] and record.reward == pytest.approx(1.2)
    assert semantic == [record.tool_call_scores[0]]
    assert mapo_trl.outcome_reward([completion], environments=[env]) == outcome  # idempotent


def test_no_zoom_gives_no_semantic_reward(factory, rows):
    env = factory()
    env.reset(**rows[0])
    completion = [{"role": "assistant", "content": "<answer>B</answer>"}]
    assert mapo_trl.semantic_reward([completion], environments=[env]) == [None]


def test_rolled_back_zoom_is_undone_by_replay(factory, rows):
    env, reference = factory(), factory()
    env.reset(**rows[2])
    first = env.image_zoom_in_tool(label="red tile", bbox_2d=[0, 0, 112, 112])
    env.image_zoom_in_tool(label="blue tile", bbox_2d=[100, 100, 200, 200])  # TRL rolled this one back
    answer = {"role": "assistant", "content": "<answer>C</answer>"}
    record = mapo_trl.finish_episode(env, [*tool_turn(first), answer])
    reference.reset(**rows[2])
    kept = reference.image_zoom_in_tool(label="red tile", bbox_2d=[0, 0, 112, 112])
    expected = mapo_trl.finish_episode(reference, [*tool_turn(kept), answer])
    assert record == expected and record.num_tool_calls == 1
    assert env.env.unwrapped.image_frames == reference.env.unwrapped.image_frames


def test_last_turn_still_calling_a_tool_is_unanswered(factory, rows):
    env = factory()
    env.reset(**rows[0])
    crop = env.image_zoom_in_tool(label="tile", bbox_2d=[0, 0, 56, 56])
    record = mapo_trl.finish_episode(env, [*tool_turn(crop), {"role": "assistant", "content": "", "tool_calls": [1]}])
    assert not record.answered and record.truncated and record.reward == 0.0


def test_misuse_raises_named_errors(factory, rows):
    env = factory()
    with pytest.raises(ResetNeeded):
        env.image_zoom_in_tool(label="x", bbox_2d=[0, 0, 10, 10])
    with pytest.raises(ConfigError, match="make_dataset"):
        env.reset(prompt="hi")
    with pytest.raises(ConfigError, match="built for"):
        env.reset(**{**rows[0], "mapo_env_id": "MAPO-VStar-v0"})
    with pytest.raises(ConfigError, match="environment_factory"):
        mapo_trl.outcome_reward([[{"role": "assistant", "content": "x"}]])
    with pytest.raises(ConfigError, match="description_mode='label'"):
        mapo_trl.MapoToolEnv(ENV_ID, {"description_mode": "post"})
    with pytest.raises(ConfigError, match="num_questions"):
        mapo_trl.make_rows(ENV_ID, num_questions=0)


def test_only_the_zoom_tool_is_public():
    """TRL exposes every public function of the class as a tool."""
    import inspect

    public = [n for n, _ in inspect.getmembers(mapo_trl.MapoToolEnv, inspect.isfunction) if not n.startswith("_")]
    assert sorted(public) == ["image_zoom_in_tool", "reset"]


@pytest.mark.parametrize("direction", ["late", "early"])
@pytest.mark.parametrize("policy", ["zero", "skip"])
def test_semantic_score_equals_the_estimators(direction, policy):
    rng = np.random.default_rng(0)
    rows = [
        [None if rng.random() < 0.3 else float(rng.random()) for _ in range(rng.integers(0, 5))] for _ in range(40)
    ]
    expected, has_tool, _ = semantic_scores(rows, 0.9, direction, policy)
    for row, value, has in zip(rows, expected.tolist(), has_tool.tolist()):
        got = mapo_trl.semantic_score(row, 0.9, direction, policy)
        assert (got is not None) == has
        if has:
            assert got == pytest.approx(value, abs=1e-12)
    assert torch.is_tensor(expected)
