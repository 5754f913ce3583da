"""Every wrapper reads and writes turns in the environment's dialect, not in DeepEyes' grammar.

Each wrapper is run with the oracle (which writes in the env's dialect) in every registered dialect
and compared with the same run in the DeepEyes dialect configured alike (same ``coords`` and
``description_mode``): the counts, rewards and records must be the same.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import pytest

import mapo_env  # noqa: F401
from mapo_env import Oracle
from mapo_env.dialects import dialect_names, get_dialect
from mapo_env.wrappers import DiscreteZoomActions, RecordEpisodes, ToolBudget

DIALECTS = dialect_names()
SEEDS = (0, 1, 2)


def make(dialect: str, reference: bool = False, **kwargs: Any) -> gym.Env:
    """MAPO-Tiles-v0 in ``dialect``; with ``reference``, DeepEyes configured as ``dialect`` defaults to."""
    spoken = get_dialect(dialect)
    config = {"coords": spoken.coords, "description_mode": spoken.default_description_mode}
    name = "deepeyes" if reference else dialect
    return gym.make("MAPO-Tiles-v0", alignment="lexical", dialect=name, **config, **kwargs)


def test_every_dialect_is_covered() -> None:
    assert {"deepeyes", "mini_o3", "pixel_reasoner", "qwen25vl", "openai"} <= set(DIALECTS)


def budget_run(env: gym.Env, seed: int) -> list[tuple]:
    """Zoom, zoom again (over a budget of 1), answer: what each turn reported."""
    oracle = Oracle(env)
    obs, _ = env.reset(seed=seed)
    zoom = oracle.act(obs)
    steps = []
    for action in (zoom, zoom, None):
        obs, reward, terminated, truncated, info = env.step(action if action is not None else oracle.act(obs))
        steps.append(
            (info["tool_error"], info["num_tool_calls"], len(obs["images"]), round(reward, 6), terminated, truncated)
        )
        if terminated or truncated:
            break
    return steps


@pytest.mark.parametrize("dialect", DIALECTS)
def test_tool_budget_counts_calls_in_every_dialect(dialect: str) -> None:
    env = ToolBudget(make(dialect), max_tool_calls=1)
    reference = ToolBudget(make(dialect, reference=True), max_tool_calls=1)
    for seed in SEEDS:
        steps = budget_run(env, seed)
        assert steps == budget_run(reference, seed)
        assert [s[0] for s in steps] == [None, "tool_budget_exceeded", None]  # the second call was refused
        assert steps[1][1:3] == (1, 2)  # no second crop


@pytest.mark.parametrize("dialect", DIALECTS)
def test_tool_budget_refusal_speaks_the_dialect(dialect: str) -> None:
    env = ToolBudget(make(dialect), max_tool_calls=0)
    obs, _ = env.reset(seed=0)
    obs, _, _, _, info = env.step(Oracle(env).act(obs))
    assert info["tool_error"] == "tool_budget_exceeded"
    reply = " ".join(p.get("text", "") for p in obs["messages"][-1]["content"])
    assert get_dialect(dialect).answer_format in reply


@pytest.mark.parametrize("dialect", DIALECTS)
def test_tool_budget_truncates_in_every_dialect(dialect: str) -> None:
    env = ToolBudget(make(dialect), max_tool_calls=0, truncate=True)
    obs, _ = env.reset(seed=0)
    _, _, terminated, truncated, info = env.step(Oracle(env).act(obs))
    assert truncated and not terminated and info["tool_error"] == "tool_budget_exceeded"


def record_run(env: RecordEpisodes) -> list[dict[str, Any]]:
    """The oracle's episodes on SEEDS, as RecordEpisodes kept them (comparable fields)."""
    oracle = Oracle(env)
    for seed in SEEDS:
        obs, _ = env.reset(seed=seed)
        done = False
        while not done:
            obs, _, terminated, truncated, _ = env.step(oracle.act(obs))
            done = terminated or truncated
    return [
        {
            "sample_id": r.sample_id,
            "crop_texts": r.crop_texts,
            "alignment_scores": [round(s, 6) for s in r.alignment_scores],
            "rewards": [round(x, 6) for x in r.rewards],
            "correct": r.correct,
            "num_images": len(r.images),
            "crop_boxes": [tuple(round(v) for v in f.region) for f in r.frames[1:]],
            "tool_errors": r.extras["tool_errors"],
        }
        for r in env.episodes
    ]


@pytest.mark.parametrize("dialect", DIALECTS)
def test_record_episodes_reads_every_dialect(dialect: str) -> None:
    records = record_run(RecordEpisodes(make(dialect)))
    assert records == record_run(RecordEpisodes(make(dialect, reference=True)))
    assert len(records) == len(SEEDS)
    for record in records:
        assert record["correct"] and record["tool_errors"] == 0
        assert len(record["crop_texts"]) == record["num_images"] - 1 >= 1
        assert all(text for text in record["crop_texts"])  # the label, or the description of the crop


def discrete_run(env: DiscreteZoomActions) -> list[tuple]:
    """Zoom into the target's cell, then into another, then answer right, on every seed."""
    steps = []
    for seed in SEEDS:
        env.reset(seed=seed)
        row, col = env.unwrapped.current_sample.metadata["target_cell"]
        target = row * env.grid + col
        answer = env.grid * env.grid + env.unwrapped.shown_answer_index
        for action in (target, (target + 1) % (env.grid * env.grid), answer):
            obs, reward, terminated, truncated, info = env.step(action)
            steps.append(
                (
                    info["tool_error"],
                    info["num_tool_calls"],
                    tuple(round(v) for v in info["crop_box"]) if info["crop_box"] else None,
                    round(reward, 6),
                    terminated,
                    info["correct"],
                    tuple(obs["progress"].round(6)),
                )
            )
    return steps


@pytest.mark.parametrize("dialect", DIALECTS)
def test_discrete_actions_write_every_dialect(dialect: str) -> None:
    env = DiscreteZoomActions(make(dialect), grid=4)
    steps = discrete_run(env)
    assert steps == discrete_run(DiscreteZoomActions(make(dialect, reference=True), grid=4))
    assert all(s[0] is None for s in steps)  # every turn parsed and was carried out
    assert [s[1] for s in steps[:3]] == [1, 2, 2] and steps[2][4] and steps[2][5]
    env.reset(seed=0)
    text = env.action_text(0)
    assert get_dialect(dialect).parse(text).kind == "tool_call"
    assert get_dialect(dialect).parse(env.action_text(16)).answer == "A"
