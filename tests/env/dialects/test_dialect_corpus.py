"""Every dialect on a corpus of realistic model outputs, executed on MAPO-VStar-v0.

Each zoom must crop the same original-resolution region as the equivalent DeepEyes call (a box in
[0, 1] of the same image, ``coords="norm"``); each malformed turn must get its tool error code.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

import gymnasium as gym
import numpy as np
import pytest

import mapo_env  # noqa: F401  (registers the envs)
from mapo_env.actions import format_tool_call

Sizes = list[tuple[int, int]]
N = (0.1, 0.2, 0.5, 0.6)  # the issue's box, [0, 1] of the full view
N2 = (0.25, 0.25, 0.75, 0.75)  # a nested box, [0, 1] of the first crop


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else repr(round(x, 4))


def box(values: tuple[float, ...]) -> str:
    return "[" + ", ".join(_num(v) for v in values) + "]"


def pixels(norm: tuple[float, ...], size: tuple[int, int]) -> tuple[float, ...]:
    w, h = size
    return (norm[0] * w, norm[1] * h, norm[2] * w, norm[3] * h)


def openai_call(args: dict, name: str = "image_zoom_in_tool") -> str:
    call = {"id": "call_0", "type": "function", "function": {"name": name, "arguments": json.dumps(args)}}
    return json.dumps({"role": "assistant", "content": None, "tool_calls": [call]})


@dataclass(frozen=True)
class Case:
    """A turn sequence; the last turn zooms (``image``, ``norm``) or fails with ``error``."""

    name: str
    turns: tuple[Callable[[Sizes], str], ...]
    norm: tuple[float, ...] | None = None
    image: int = 0
    error: str | None = None


def zoom(name: str, text: Callable[[Sizes], str], norm: tuple[float, ...] = N) -> Case:
    return Case(name, (text,), norm=norm)


def nested(name: str, first: Callable[[Sizes], str], second: Callable[[Sizes], str]) -> Case:
    return Case(name, (first, second), norm=N2, image=1)


def bad(name: str, text: str, error: str, after: Callable[[Sizes], str] | None = None) -> Case:
    turns = ((after,) if after else ()) + ((lambda s: text),)
    return Case(name, turns, error=error)


# ---------------------------------------------------------------------------------------------- corpora
PR_CALL = (
    '<tool_call>{{"name": "crop_image_normalized", "arguments": {{"bbox_2d": {b}, "target_image": {t}}}}}</tool_call>'
)


def pr(b: str, t: int = 1) -> str:
    return PR_CALL.format(b=b, t=t)


PIXEL_REASONER = [
    zoom("issue example", lambda s: pr("[0.1,0.2,0.5,0.6]")),
    zoom(
        "prose, newlines",
        lambda s: (
            "The sign is on the left. To read it, I will zoom in.\n\n<tool_call>\n"
            '{"name": "crop_image_normalized", "arguments": {"bbox_2d": '
            + box(N)
            + ', "target_image":1}}\n</tool_call>'
        ),
    ),
    zoom("truncated closing tag", lambda s: "Zooming in.\n<tool_call>\n" + pr(box(N))[11:-12]),
    zoom(
        "truncated object", lambda s: '<tool_call>{"name": "crop_image_normalized", "arguments": {"bbox_2d": ' + box(N)
    ),
    zoom("extra prose after", lambda s: pr(box(N)) + "\nI will wait for the crop."),
    zoom("several calls: the first", lambda s: pr(box(N)) + "\n" + pr(box(N2))),
    zoom("zoom_in alias", lambda s: pr(box(N)).replace("crop_image_normalized", "zoom_in")),
    zoom(
        "target_image absent",
        lambda s: '<tool_call>{"name": "crop_image_normalized", "arguments": {"bbox_2d": ' + box(N) + "}}</tool_call>",
    ),
    zoom("pixels fallback", lambda s: pr(box(pixels(N, s[0])))),
    nested("nested by index", lambda s: pr(box(N)), lambda s: "It shows a sign.\n" + pr(box(N2), 2)),
    bad("target_image out of range", pr(box(N), 5), "bad_image_index"),
    bad("target_image 0", pr(box(N), 0), "bad_image_index"),
    bad("unknown tool", pr(box(N)).replace("crop_image_normalized", "select_frames"), "unknown_tool"),
    bad("not json", "<tool_call>crop the sign please</tool_call>", "bad_json"),
    bad("three numbers", pr("[0.1, 0.2, 0.5]"), "bad_bbox"),
    bad("inverted box", pr("[0.5, 0.6, 0.1, 0.2]"), "bad_bbox"),
    bad("target_image a word", pr(box(N)).replace('"target_image": 1', '"target_image": "first"'), "bad_args"),
    bad("prose only", "The sign is blue, I think.", "no_action"),
    bad("empty boxed", "So the answer is \\boxed{}", "empty_answer"),
]

MO_CALL = '<grounding>{{"bbox_2d": {b}, "source": "{s}"}}</grounding>'


def mo(b: str, source: str = "original_image") -> str:
    return MO_CALL.format(b=b, s=source)


MINI_O3 = [
    zoom("issue example", lambda s: mo("[0.1, 0.2, 0.5, 0.6]")),
    zoom("after think", lambda s: "<think>The sign is small; zoom on the left.</think> " + mo(box(N))),
    zoom(
        "bare keys",
        lambda s: "<think>zoom</think><grounding>{bbox_2d: " + box(N) + ", source: original_image}</grounding>",
    ),
    zoom(
        "bare keys, single quotes, no closing tag",
        lambda s: "<grounding>{bbox_2d: " + box(N) + ", source: 'original_image'}",
    ),
    zoom("truncated object", lambda s: '<grounding>{"bbox_2d": ' + box(N) + ', "source": "original_image"'),
    zoom("source absent", lambda s: '<grounding>{"bbox_2d": ' + box(N) + "}</grounding>"),
    zoom("extra prose and several calls", lambda s: "Let me look.\n" + mo(box(N)) + " then " + mo(box(N2))),
    zoom("a call inside think does not count", lambda s: "<think>maybe " + mo(box(N2)) + "</think>" + mo(box(N))),
    zoom("pixels fallback", lambda s: mo(box(pixels(N, s[0])))),
    nested(
        "nested by name", lambda s: mo(box(N)), lambda s: "<think>A blue sign.</think>" + mo(box(N2), "observation_1")
    ),
    bad("observation out of range", mo(box(N), "observation_4"), "bad_image_index"),
    bad("source not a name", mo(box(N), "the crop"), "bad_args"),
    bad("three numbers", mo("[0.1, 0.2, 0.5]"), "bad_bbox"),
    bad("inverted box", mo("[0.5, 0.6, 0.1, 0.2]"), "bad_bbox"),
    bad("not json", "<grounding>zoom on the sign</grounding>", "bad_json"),
    bad("no action", "<think>The sign is blue.</think>", "no_action"),
    bad("unclosed think", "<think>The sign is blue " + mo(box(N)), "no_action"),
    bad("empty answer", "<think>done</think><answer></answer>", "empty_answer"),
]


def qw(b: str, label: str = "sign", extra: str = "") -> str:
    return f'```json\n[\n\t{{"bbox_2d": {b}, "label": "{label}"{extra}}}\n]\n```'


QWEN25VL = [
    zoom("native output", lambda s: qw(box(pixels(N, s[0])))),
    zoom("no fence, one object", lambda s: '{"bbox_2d": ' + box(pixels(N, s[0])) + ', "label": "sign"}'),
    zoom(
        "truncated fence and list",
        lambda s: '```json\n[\n\t{"bbox_2d": ' + box(pixels(N, s[0])) + ', "label": "sign"}',
    ),
    zoom("prose around", lambda s: "The sign is here:\n" + qw(box(pixels(N, s[0]))) + "\nLet me look closer."),
    zoom(
        "several objects: the first",
        lambda s: (
            '```json\n[{"bbox_2d": '
            + box(pixels(N, s[0]))
            + ', "label": "sign"}, {"bbox_2d": '
            + box(pixels(N2, s[0]))
            + ', "label": "car"}]\n```'
        ),
    ),
    nested(
        "nested by image_index",
        lambda s: qw(box(pixels(N, s[0]))),
        lambda s: qw(box(pixels(N2, s[1])), extra=', "image_index": 1'),
    ),
    bad("image_index out of range", qw("[10, 10, 60, 60]", extra=', "image_index": 7'), "bad_image_index"),
    bad("three numbers", qw("[10, 20, 30]"), "bad_bbox"),
    bad("label not a string", '```json\n[{"bbox_2d": [10, 20, 110, 120], "label": 5}]\n```', "bad_args"),
    bad("missing label", '```json\n[{"bbox_2d": [10, 20, 110, 120]}]\n```', "missing_label"),
    bad("broken json", '```json\n[{"bbox_2d": [10, 20, 110, 120], "label": "a" "b"}]\n```', "bad_json"),
    bad("prose only", "I cannot tell from here.", "no_action"),
]


def oa(b: str, index: int | None = None, name: str = "image_zoom_in_tool") -> str:
    args: dict = {"label": "sign", "bbox_2d": json.loads(b)}
    if index is not None:
        args["image_index"] = index
    return openai_call(args, name)


OPENAI = [
    zoom("assistant message", lambda s: oa(box(pixels(N, s[0])))),
    zoom(
        "whole completion",
        lambda s: json.dumps({"id": "x", "choices": [{"index": 0, "message": json.loads(oa(box(pixels(N, s[0]))))}]}),
    ),
    zoom("tool_calls list", lambda s: json.dumps(json.loads(oa(box(pixels(N, s[0]))))["tool_calls"])),
    zoom(
        "arguments as an object",
        lambda s: json.dumps(
            {
                "tool_calls": [
                    {
                        "type": "function",
                        "function": {
                            "name": "image_zoom_in_tool",
                            "arguments": {"label": "sign", "bbox_2d": json.loads(box(pixels(N, s[0])))},
                        },
                    }
                ]
            }
        ),
    ),
    zoom("truncated reply", lambda s: oa(box(pixels(N, s[0])))[:-3]),
    zoom(
        "several calls: the first",
        lambda s: json.dumps(
            {
                "tool_calls": [
                    json.loads(oa(box(pixels(N, s[0]))))["tool_calls"][0],
                    json.loads(oa(box(pixels(N2, s[0]))))["tool_calls"][0],
                ]
            }
        ),
    ),
    zoom("call left in the content text", lambda s: format_tool_call(pixels(N, s[0]), "sign")),
    nested("nested by image_index", lambda s: oa(box(pixels(N, s[0]))), lambda s: oa(box(pixels(N2, s[1])), 1)),
    bad("image_index out of range", oa("[10, 10, 60, 60]", 9), "bad_image_index"),
    bad("unknown tool", oa("[10, 10, 60, 60]", name="web_search"), "unknown_tool"),
    bad(
        "arguments not json",
        json.dumps(
            {
                "tool_calls": [
                    {"type": "function", "function": {"name": "image_zoom_in_tool", "arguments": "zoom please"}}
                ]
            }
        ),
        "bad_args",
    ),
    bad("three numbers", oa("[10, 20, 30]"), "bad_bbox"),
    bad("broken reply", '{"broken": ', "bad_json"),
    bad("neither calls nor content", '{"role": "assistant", "content": null}', "no_action"),
    bad("content without answer", "I need to think more.", "no_action"),
]


def de(b: str, index: int | None = None) -> str:
    return format_tool_call(json.loads(b), "sign", index)


DEEPEYES = [
    zoom("canonical", lambda s: de(box(pixels(N, s[0])))),
    zoom("missing closing tag", lambda s: de(box(pixels(N, s[0])))[: -len("</tool_call>")]),
    zoom(
        "zoom_in alias with prose",
        lambda s: "Let me zoom. " + de(box(pixels(N, s[0]))).replace("image_zoom_in_tool", "zoom_in"),
    ),
    nested("nested by index", lambda s: de(box(pixels(N, s[0]))), lambda s: de(box(pixels(N2, s[1])), 1)),
    bad("image_index out of range", de("[10, 10, 60, 60]", 4), "bad_image_index"),
    bad("unknown tool", de("[10, 10, 60, 60]").replace("image_zoom_in_tool", "rotate"), "unknown_tool"),
    bad("no action", "hmm", "no_action"),
]

CORPORA = {
    "deepeyes": DEEPEYES,
    "pixel_reasoner": PIXEL_REASONER,
    "mini_o3": MINI_O3,
    "qwen25vl": QWEN25VL,
    "openai": OPENAI,
}
CASES = [(dialect, case) for dialect, cases in CORPORA.items() for case in cases]


@pytest.fixture(scope="module")
def envs() -> dict[str, gym.Env]:
    made = {name: gym.make("MAPO-VStar-v0", dialect=name, alignment=None, num_samples=2) for name in CORPORA}
    made["reference"] = gym.make("MAPO-VStar-v0", coords="norm", alignment=None, num_samples=2)
    return made


def _play(env: gym.Env, turns: tuple[Callable[[Sizes], str], ...]) -> tuple[dict, dict]:
    obs, info = env.reset(seed=0, options={"index": 0})
    for turn in turns:
        sizes = [(img.shape[1], img.shape[0]) for img in obs["images"]]
        obs, _, _, _, info = env.step(turn(sizes))
    return obs, info


def _reference(envs: dict[str, gym.Env], case: Case) -> tuple[dict, dict]:
    """The equivalent DeepEyes calls: the same [0, 1] boxes of the same images."""
    turns: tuple[Callable[[Sizes], str], ...] = ((lambda s: format_tool_call(N, "sign", decimals=6)),)
    if case.image == 1:
        turns += ((lambda s: format_tool_call(N2, "sign", 1, decimals=6)),)
    return _play(envs["reference"], turns)


@pytest.mark.parametrize(("dialect", "case"), CASES, ids=[f"{d}-{c.name}" for d, c in CASES])
def test_corpus(envs: dict[str, gym.Env], dialect: str, case: Case) -> None:
    obs, info = _play(envs[dialect], case.turns)
    if case.error is not None:
        assert info["tool_error"] == case.error, obs["messages"][-1]
        text = "".join(p.get("text", "") for p in obs["messages"][-1]["content"])
        assert "rror" in text and len(text) < 800
        return
    assert info["tool_error"] is None, obs["messages"][-1]
    ref_obs, ref_info = _reference(envs, case)
    assert len(obs["images"]) == len(ref_obs["images"]) == case.image + 2
    assert np.allclose(info["crop_box"], ref_info["crop_box"], atol=1.0), (info["crop_box"], ref_info["crop_box"])
    if info["crop_box"] == ref_info["crop_box"]:
        np.testing.assert_array_equal(obs["images"][-1], ref_obs["images"][-1])


@pytest.mark.parametrize(
    ("dialect", "text"),
    [
        (
            "pixel_reasoner",
            '<tool_call>{"name": "crop_image_normalized", "arguments": '
            '{"bbox_2d": [0.1, 0.2, 0.5, 0.6], "target_image": 1}}</tool_call>',
        ),
        ("mini_o3", '<grounding>{"bbox_2d": [0.1, 0.2, 0.5, 0.6], "source": "original_image"}</grounding>'),
    ],
)
def test_the_issue_examples_crop_the_deepeyes_region_exactly(
    envs: dict[str, gym.Env], dialect: str, text: str
) -> None:
    obs, info = _play(envs[dialect], ((lambda s: text),))
    ref_obs, ref_info = _reference(envs, Case("ref", ()))
    assert info["tool_error"] is None
    assert info["crop_box"] == ref_info["crop_box"]
    np.testing.assert_array_equal(obs["images"][-1], ref_obs["images"][-1])
    assert info["target_iou"] == ref_info["target_iou"]
