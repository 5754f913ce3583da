"""Real DeepEyes V* rollouts: every assistant turn parses as what it is, and answers map to options.

The expectations come from the raw files, read here independently of the parser: the bbox numbers
with a regex on the JSON, the options from the user message's ``"A. ..."`` lines, the expected option
from the evaluation's own ``pred_ans`` field.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from mapo_env.actions import parse_action
from mapo_env.answers import match_answer

RUN = Path("eval_results/vlagent_think_mh/merge_ds1_step48_ds4_step40")
BBOX_RE = re.compile(r'"bbox_2d":\s*\[([^\]]*)\]')
OPTION_RE = re.compile(r"^([A-F])\. (.*)$", re.MULTILINE)
NUM_RECORDS = 191


@pytest.fixture(scope="module")
def records(deepeyes_dir: Path) -> list[dict[str, Any]]:
    files = sorted((deepeyes_dir / RUN).glob("*.jsonl"))
    if not files:
        pytest.skip(f"no DeepEyes result files under {deepeyes_dir / RUN}")
    return [json.loads(line) for path in files for line in path.read_text(encoding="utf-8").splitlines() if line]


def text_of(content: str | list[dict[str, Any]]) -> str:
    if isinstance(content, str):
        return content
    return "".join(part.get("text", "") for part in content if part.get("type") == "text")


def assistant_turns(record: dict[str, Any]) -> list[str]:
    return [text_of(m["content"]) for m in record["pred_output"] if m["role"] == "assistant"]


def options_of(record: dict[str, Any]) -> list[str]:
    first_user = next(m for m in record["pred_output"] if m["role"] == "user")
    return [text for _, text in OPTION_RE.findall(text_of(first_user["content"]))]


def expected_bbox(turn: str) -> tuple[float, ...]:
    found = BBOX_RE.findall(turn)
    return tuple(float(x) for x in found[-1].split(","))  # the call after </think> is the last one


def test_all_records_are_there(records: list[dict[str, Any]]) -> None:
    assert len(records) == NUM_RECORDS


def test_every_assistant_turn_parses_as_what_it_is(records: list[dict[str, Any]]) -> None:
    counts = {"tool_call": 0, "answer": 0}
    for record in records:
        for turn in assistant_turns(record):
            parsed = parse_action(turn)
            if "<tool_call>" in turn:
                assert parsed.kind == "tool_call", (record["image"], parsed.message)
                assert parsed.tool_call is not None
                assert parsed.tool_call.bbox == expected_bbox(turn)
                assert parsed.tool_call.name == "image_zoom_in_tool"
            else:
                assert "<answer>" in turn
                final = turn.rsplit("<answer>", 1)[1].split("</answer>", 1)[0].strip()
                assert (parsed.kind, parsed.answer) == ("answer", final), record["image"]
            assert parsed.think, record["image"]  # every DeepEyes turn reasons in <think> first
            counts[parsed.kind] += 1
    # 189 rollouts: one call then one answer; sa_58805: two calls (the second drafts an <answer> inside
    # <think>); sa_49792: no assistant message at all (status "error")
    assert counts == {"tool_call": 191, "answer": 189}


def test_the_failed_rollout_raw_output_is_an_inverted_box(records: list[dict[str, Any]]) -> None:
    (failed,) = [r for r in records if r["status"] != "success"]
    assert assistant_turns(failed) == []
    parsed = parse_action(failed["pred_ans"])
    assert parsed.tool_call is not None
    x1, y1, x2, y2 = parsed.tool_call.bbox
    assert (x1, y1, x2, y2) == expected_bbox(failed["pred_ans"]) and y2 < y1  # geometry's job, not the parser's


def test_answers_match_the_option_the_evaluation_read(records: list[dict[str, Any]]) -> None:
    checked = answered = 0
    for record in records:
        turns = assistant_turns(record)
        parsed = parse_action(turns[-1]) if turns else None
        if parsed is None or parsed.kind != "answer":
            continue
        answered += 1
        options = options_of(record)
        assert 2 <= len(options) <= 6
        text_part = re.sub(r"^[A-F]\.\s*", "", record["pred_ans"].strip())
        expected = [i for i, option in enumerate(options) if option.strip() == text_part]
        if not expected:  # pred_ans is no option text (a paraphrase, or a draft read from inside <think>)
            continue
        assert match_answer(parsed.answer, options) == expected[0], (record["image"], parsed.answer, options)
        checked += 1
    assert answered == 189
    assert checked == 166  # the 23 others name no option verbatim


def test_letter_and_text_disagreeing_resolve_to_the_text(records: list[dict[str, Any]]) -> None:
    disagreeing = 0
    for record in records:
        turns = assistant_turns(record)
        answer = parse_action(turns[-1]).answer if turns else None
        match = re.match(r"^([A-F])\.\s*(.*)$", answer or "", re.DOTALL)
        if match is None:
            continue
        options = options_of(record)
        letter, text = ord(match.group(1)) - ord("A"), match.group(2).strip()
        if text in options and options.index(text) != letter:
            disagreeing += 1
            assert match_answer(answer, options) == options.index(text)
    assert disagreeing == 9
