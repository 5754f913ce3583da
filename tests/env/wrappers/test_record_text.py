"""RecordEpisodes writes any model text (lone surrogates, NUL, emoji) to .jsonl, .png and .html without crashing."""

from __future__ import annotations

import json

import gymnasium as gym
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import mapo_env  # noqa: F401
from mapo_env.actions import format_tool_call
from mapo_env.wrappers import RecordEpisodes

ANY_CHARACTER = st.characters(codec=None, categories=["Cs", "Cc", "Lo", "So", "Zs", "Ll", "Mn"])


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text(ANY_CHARACTER, max_size=40), st.text(ANY_CHARACTER, max_size=40), st.sampled_from(["png", "html"]))
def test_any_turn_text_is_recorded(tmp_path, think: str, answer: str, picture_format: str) -> None:
    directory = tmp_path / picture_format
    env = RecordEpisodes(gym.make("MAPO-Tiles-v0", alignment=None), directory=directory, picture_format=picture_format)
    env.reset(seed=0)
    env.step(f"<think>{think}</think>" + format_tool_call((0, 0, 56, 56), label=think or "tile"))
    _, _, terminated, _, _ = env.step(f"<answer>A {answer}</answer>")
    assert terminated
    pictures = sorted(directory.glob(f"episode_*.{picture_format}"))
    assert pictures and pictures[-1].stat().st_size > 0
    lines = (directory / "episodes.jsonl").read_text(encoding="utf-8").splitlines()
    assert json.loads(lines[-1])["correct"] in (True, False)


def test_a_lone_surrogate_in_an_html_record(tmp_path) -> None:
    env = RecordEpisodes(gym.make("MAPO-Tiles-v0", alignment=None), directory=tmp_path, picture_format="html")
    env.reset(seed=0)
    env.step("<answer>A \ud800 and a pair \ud83d\ude00</answer>")
    text = (tmp_path / "episode_00001.html").read_text(encoding="utf-8")
    assert "A \ufffd and a pair \U0001f600" in text
