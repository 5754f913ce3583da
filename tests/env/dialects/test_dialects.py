"""The dialect registry, construction checks, the default's byte-identical prompts, oracles in every dialect."""

from __future__ import annotations

import re

import gymnasium as gym
import pytest

import mapo_env
from mapo_env import Oracle
from mapo_env.actions import parse_action
from mapo_env.dialects import DEFAULT_DIALECT, Dialect, UnknownDialectError, dialect_names, get_dialect
from mapo_env.errors import ConfigError, UnknownNameError
from mapo_env.prompts import crop_reply, default_system_prompt, error_reply

DIALECTS = dialect_names()


def test_the_five_dialects_are_registered() -> None:
    assert set(DIALECTS) >= {"deepeyes", "pixel_reasoner", "mini_o3", "qwen25vl", "openai"}
    assert DEFAULT_DIALECT == "deepeyes"
    assert get_dialect("Pixel-Reasoner").name == "pixel_reasoner"


def test_an_unknown_dialect_is_refused_at_construction_with_the_valid_names() -> None:
    with pytest.raises(UnknownDialectError, match=re.escape(", ".join(DIALECTS))) as caught:
        gym.make("MAPO-Tiles-v0", dialect="deepeye", alignment=None)
    assert "Did you mean 'deepeyes'?" in str(caught.value)
    assert isinstance(caught.value, (ConfigError, UnknownNameError))
    with pytest.raises(ConfigError, match="dialect must be"):
        gym.make("MAPO-Tiles-v0", dialect=3, alignment=None)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"dialect": "pixel_reasoner", "coords": "pixel"}, "coords='pixel' is not a convention"),
        ({"dialect": "qwen25vl", "coords": "norm1000"}, "coords='norm1000'"),
        ({"dialect": "mini_o3", "description_mode": "label"}, "writes none"),
        ({"dialect": "pixel_reasoner", "description_mode": "label"}, "writes none"),
    ],
)
def test_conventions_a_dialect_does_not_have_are_refused(kwargs: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        gym.make("MAPO-Tiles-v0", alignment=None, **kwargs)


@pytest.mark.parametrize("dialect", DIALECTS)
def test_defaults_follow_the_dialect(dialect: str) -> None:
    env = gym.make("MAPO-Tiles-v0", dialect=dialect, alignment=None).unwrapped
    spec = get_dialect(dialect)
    assert env.coords == spec.coords
    assert env.description_mode == ("label" if spec.writes_label else "post")
    assert env.dialect.name == dialect
    for attr in ("family", "sources", "call_syntax", "image_index", "answer_format"):
        assert getattr(spec, attr), attr
    assert any("github.com" in s or "openai.com" in s for s in spec.sources)


@pytest.mark.parametrize("coords", ["pixel", "norm1000", "norm", "original"])
@pytest.mark.parametrize("mode", ["label", "post"])
def test_the_default_dialect_keeps_the_prompts_and_replies_byte_for_byte(coords: str, mode: str) -> None:
    env = gym.make("MAPO-VStar-v0", coords=coords, description_mode=mode, alignment=None, num_samples=1).unwrapped
    assert env.system_prompt == default_system_prompt(coords, mode, mode == "label")  # type: ignore[arg-type]
    de = get_dialect("deepeyes")
    assert de.crop_reply(3, 1, (10, 10)) == crop_reply(3, 1)
    assert de.error_reply("Error: x", 1) == error_reply("Error: x", 1)
    text = '<tool_call>{"name": "zoom_in", "arguments": {"bbox_2d": [1, 2, 3, 4]}}'
    assert de.parse(text) == parse_action(text)


def test_a_dialect_instance_is_accepted() -> None:
    class Mine(get_dialect("mini_o3").__class__):  # type: ignore[misc]
        name = "mine"

    env = gym.make("MAPO-Tiles-v0", dialect=Mine(), alignment=None).unwrapped
    assert isinstance(env.dialect, Dialect) and env.dialect.name == "mine"


@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize("env_id", mapo_env.ENV_IDS)
def test_oracle_episodes_reach_100_percent_in_every_dialect(dialect: str, env_id: str) -> None:
    modes = ["label", "post"] if get_dialect(dialect).writes_label else ["post"]
    for mode in modes:
        env = gym.make(env_id, dialect=dialect, description_mode=mode, alignment="lexical", num_samples=3)
        oracle = Oracle(env, think=True)
        for index in range(3):
            obs, info = env.reset(seed=index, options={"index": index})
            done, zooms = False, 0
            while not done:
                obs, reward, terminated, truncated, info = env.step(oracle.act(obs))
                assert info["tool_error"] is None, (dialect, mode, obs["messages"][-1])
                done = terminated or truncated
                zooms += info["alignment"] is not None
            assert info["correct"] is True, (dialect, mode, env_id)
            assert info["num_tool_calls"] == len(env.unwrapped.current_sample.targets)
            assert reward == pytest.approx(1.2)
            assert zooms == info["num_tool_calls"]  # every crop's label or description was scored


@pytest.mark.parametrize("dialect", DIALECTS)
def test_oracle_zooms_hit_the_target_in_every_dialect(dialect: str) -> None:
    env = gym.make("MAPO-VStar-v0", dialect=dialect, alignment=None, num_samples=2)
    obs, _ = env.reset(seed=0, options={"index": 0})
    obs, _, _, _, info = env.step(Oracle(env).act(obs))
    assert info["target_coverage"] == pytest.approx(1.0)  # integer boxes are snapped outward: all covered
    assert info["target_iou"] > 0.9


@pytest.mark.parametrize("dialect", DIALECTS)
def test_any_string_is_data_in_every_dialect(dialect: str) -> None:
    env = gym.make("MAPO-Tiles-v0", dialect=dialect, alignment=None, max_turns=50)
    env.reset(seed=0)
    samples = ["", "{", "[", "<tool_call>", "<grounding>", "\\boxed{", "```json\n[", "{bbox_2d: }", "\x00" * 5]
    samples += [env.action_space.sample() for _ in range(20)]
    for text in samples:
        obs, reward, terminated, truncated, info = env.step(text)
        if terminated or truncated:
            env.reset(seed=0)
        else:
            assert info["tool_error"] is None or isinstance(info["tool_error"], str)


@pytest.mark.parametrize("dialect", DIALECTS)
def test_answers_in_the_dialects_format(dialect: str) -> None:
    spec = get_dialect(dialect)
    parsed = spec.parse(spec.format_answer("B"))
    assert parsed.kind == "answer" and parsed.answer == "B"


@pytest.mark.parametrize(
    ("dialect", "text", "answer"),
    [
        ("pixel_reasoner", "The sign is blue.\n\n\\boxed{\\text{B}}", "B"),
        ("pixel_reasoner", "Final: \\boxed{C", "C"),
        ("pixel_reasoner", "Answer: D", "D"),
        ("qwen25vl", "The flag is red.\nAnswer: A", "A"),
        ("qwen25vl", "(B)", "B"),
        ("qwen25vl", "<answer>C</answer>", "C"),
        ("openai", '{"role": "assistant", "content": "It is red.\\nAnswer: A"}', "A"),
        ("openai", "Answer: **B**", "B"),
        ("mini_o3", "<think>It is red.</think><answer>A", "A"),
    ],
)
def test_realistic_answers(dialect: str, text: str, answer: str) -> None:
    parsed = get_dialect(dialect).parse(text)
    assert (parsed.kind, parsed.answer) == ("answer", answer)


@pytest.mark.parametrize(
    ("dialect", "text", "description"),
    [
        (
            "mini_o3",
            '<think>A blue sign with white text.</think><grounding>{"bbox_2d": [0, 0, 1, 1]}',
            "A blue sign with white text.",
        ),
        ("mini_o3", "<description>a cat</description><think>zoom more</think><answer>A</answer>", "a cat"),
        ("pixel_reasoner", "The crop shows a red flag.\n\n\\boxed{A}", "The crop shows a red flag."),
    ],
)
def test_the_description_comes_from_where_the_family_writes_it(dialect: str, text: str, description: str) -> None:
    assert get_dialect(dialect).parse(text).description == description


def test_post_mode_without_any_description_is_flagged_in_the_dialects_words() -> None:
    env = gym.make("MAPO-VStar-v0", dialect="mini_o3", alignment=None, num_samples=1)
    env.reset(seed=0)
    env.step('<grounding>{"bbox_2d": [0.1, 0.2, 0.5, 0.6], "source": "original_image"}</grounding>')
    obs, _, _, _, info = env.step("<answer>A</answer>")
    assert info["tool_error"] == "missing_description"


@pytest.mark.parametrize("dialect", DIALECTS)
def test_the_system_prompt_teaches_the_dialects_call_and_answer(dialect: str) -> None:
    env = gym.make("MAPO-VStar-v0", dialect=dialect, alignment=None, num_samples=1).unwrapped
    obs, _ = env.reset(seed=0)
    prompt = obs["messages"][0]["content"][0]["text"]
    spec = get_dialect(dialect)
    keyword = {
        "deepeyes": "image_zoom_in_tool",
        "pixel_reasoner": "crop_image_normalized",
        "mini_o3": "<grounding>",
        "qwen25vl": '"bbox_2d"',
        "openai": "image_zoom_in_tool",
    }[dialect]
    assert keyword in prompt
    assert spec.answer_format.split("LETTER")[0].strip() in prompt or "boxed" in prompt
