"""Fuzzing parse_action: seeded random and adversarial turns never raise and keep the result's invariants."""

from __future__ import annotations

import math
import random
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mapo_env.actions import MAX_MESSAGE_CHARS, ParsedAction, ZoomCall, format_answer, format_tool_call, parse_action

TAGS = [f"<{s}{name}>" for name in ("think", "description", "tool_call", "answer") for s in ("", "/")]
TAGS += ["<TOOL_CALL>", "</Answer>", "<tool_call", "</tool_", "<answer >", "<", ">", "</", "<think>" * 3]
JSON_BITS = [
    "{", "}", "[", "]", ":", ",", '"', "'", "\\", '\\"', '"name"', '"arguments"', '"image_zoom_in_tool"', '"zoom"',
    '"bbox_2d"', '"bbox"', '"box"', '"label"', '"image_index"', '"function"', '"parameters"', "true", "false", "null",
    "None", "True", '{"name": "zoom", "arguments": ', '{"bbox_2d": [', '"arguments": "{\\"bbox\\": [1,2,3,4]}"',
]  # fmt: skip
NUMBERS = ["0", "-5", "3.14", "1e308", "-1e308", "1e999", "NaN", "Infinity", "-Infinity", '"12"', '"nan"', "1" * 30,
           "1" * 5000, "0x10", "1_000", "-0", ".5", "5.", "+3"]  # fmt: skip
TEXT = [
    "the red cup",
    " ",
    "\n",
    "\t",
    "\r\n",
    "☂",
    "红色",
    "\u200b",
    "\ud800",
    "\x00",
    "\x1b[31m",
    "é",
    "𝒳",
    "A",
    "B.",
]
FRAGMENTS = TAGS + JSON_BITS + NUMBERS + TEXT
NUM_RANDOM = 12_000


def check(text: str) -> ParsedAction:
    """Parse and assert the invariants every result must keep."""
    parsed = parse_action(text)
    assert isinstance(parsed, ParsedAction)
    assert parsed.kind in ("tool_call", "answer", "invalid")
    assert (parsed.error is None) == (parsed.kind != "invalid")
    if parsed.error is None:
        assert parsed.message == ""
    else:
        assert parsed.message and len(parsed.message) <= MAX_MESSAGE_CHARS
        assert parsed.tool_call is None and parsed.answer is None
    if parsed.kind == "tool_call":
        call = parsed.tool_call
        assert isinstance(call, ZoomCall) and parsed.answer is None
        assert len(call.bbox) == 4 and all(type(x) is float and math.isfinite(x) for x in call.bbox)
        assert type(call.image_index) is int and call.image_index >= 0
        assert call.label is None or (isinstance(call.label, str) and call.label == call.label.strip() != "")
    if parsed.kind == "answer":
        assert parsed.tool_call is None
        assert isinstance(parsed.answer, str) and parsed.answer == parsed.answer.strip() != ""
    return parsed


def random_turn(rng: random.Random) -> str:
    """A turn stitched from grammar fragments, numbers, unicode, control chars and valid calls."""
    parts = []
    for _ in range(rng.randint(0, 24)):
        roll = rng.random()
        if roll < 0.03:
            box = [rng.choice([rng.uniform(-1e4, 1e4), rng.randint(-10, 5000)]) for _ in range(4)]
            parts.append(format_tool_call(box, label=rng.choice([None, "cup", " ☂ "]), image_index=rng.randint(0, 3)))
        elif roll < 0.05:
            parts.append(format_answer(rng.choice("ABCD")))
        elif roll < 0.10:
            parts.append("".join(chr(rng.randint(0, 0x2FFF)) for _ in range(rng.randint(1, 8))))
        else:
            parts.append(rng.choice(FRAGMENTS))
    text = "".join(parts)
    if text and rng.random() < 0.2:  # truncate, as generation limits do
        text = text[: rng.randint(0, len(text))]
    return text


def test_random_fragment_turns() -> None:
    rng = random.Random(20240601)
    kinds = {"tool_call": 0, "answer": 0, "invalid": 0}
    for _ in range(NUM_RANDOM):
        kinds[check(random_turn(rng)).kind] += 1
    # the generator must reach every outcome, else it does not exercise the parser
    assert all(count > 100 for count in kinds.values()), kinds


def test_valid_call_survives_tag_free_noise_around_it() -> None:
    rng = random.Random(7)
    noise = [f for f in JSON_BITS + NUMBERS + TEXT if "<" not in f]
    for _ in range(2_000):
        box = [round(rng.uniform(-500, 5000), 2) for _ in range(4)]
        prefix = "".join(rng.choice(noise) for _ in range(rng.randint(0, 6)))
        suffix = "".join(rng.choice(noise) for _ in range(rng.randint(0, 6)))
        call = format_tool_call(box, label="cup")
        text = prefix + (call.removesuffix("</tool_call>") if rng.random() < 0.5 else call) + suffix
        parsed = check(text)
        assert parsed.tool_call is not None, (text, parsed.message)
        assert parsed.tool_call.bbox == tuple(box) and parsed.tool_call.label == "cup"


@settings(max_examples=1_500, derandomize=True, database=None, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(st.sampled_from(FRAGMENTS) | st.text(max_size=4), max_size=30).map("".join))
def test_hypothesis_text(text: str) -> None:
    check(text)


@settings(max_examples=1_000, derandomize=True, database=None, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
        lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=8), children, max_size=4),
        max_leaves=12,
    ),
    st.sampled_from(["bbox_2d", "label", "image_index", "name", "arguments"]),
)
def test_hypothesis_values_in_each_field(value: object, field: str) -> None:
    import json

    args: dict[str, object] = {"bbox_2d": [1, 2, 3, 4]}
    call: dict[str, object] = {"name": "zoom", "arguments": args}
    if field in ("name", "arguments"):
        call[field] = value
    else:
        args[field] = value
    check("<tool_call>" + json.dumps(call))


ONE_MB = 1_000_000
ADVERSARIAL = {
    "1MB-plain": "x" * ONE_MB,
    "1MB-answer": "<answer>" + "B" * ONE_MB,
    "1MB-open-string": '<tool_call>{"name": "' + "a" * ONE_MB,
    "1MB-label": format_tool_call([1, 2, 3, 4], label="y" * ONE_MB),
    "1MB-spaces-after-lt": "<" + " " * ONE_MB + "tool_call>",
    "1MB-tags": "<think></think>" * (ONE_MB // 15),
    "1MB-stray-closers": "</answer>" * (ONE_MB // 9),
    "1MB-unclosed-thinks": "<think>" * (ONE_MB // 7),
    "1MB-numbers-list": '<tool_call>{"name": "zoom", "arguments": {"bbox_2d": [' + "1," * (ONE_MB // 2),
    "1MB-lt-storm": "<tool_call" * (ONE_MB // 10),
    "10k-deep-braces": "<tool_call>" + "{" * 10_000,
    "10k-deep-closed": "<tool_call>" + '{"a":' * 10_000 + "1" + "}" * 10_000,
    "10k-deep-lists": '<tool_call>{"name": "zoom", "arguments": {"bbox_2d": ' + "[" * 10_000 + "]" * 10_000 + "}}",
    "10k-deep-lenient": "<tool_call>{'a': " + "[" * 2_000 + "]" * 2_000 + "}",
    "deep-args-string": '<tool_call>{"name": "zoom", "arguments": "' + "{" * 10_000 + '"}',
    "big-int": '<tool_call>{"name": "zoom", "arguments": {"bbox_2d": [1, 2, 3, ' + "9" * 4_000 + "]}}",
    "huge-int-digits": '<tool_call>{"name": "zoom", "arguments": {"bbox_2d": [1, 2, 3, ' + "9" * 5_000 + "]}}",
    "many-calls": format_tool_call([1, 2, 3, 4]) * 20_000,
}


@pytest.mark.parametrize("text", list(ADVERSARIAL.values()), ids=list(ADVERSARIAL))
def test_adversarial_inputs_do_not_hang(text: str) -> None:
    start = time.perf_counter()
    check(text)
    # a hang guard, not a speed test (timings belong to benchmarks): linear-time parsing takes milliseconds,
    # a catastrophic backtrack or a recursion blow-up takes minutes
    assert time.perf_counter() - start < 30.0
