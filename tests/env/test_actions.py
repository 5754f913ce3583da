"""Table tests of the action grammar: parse_action, format_tool_call, format_answer."""

from __future__ import annotations

import json
import math

import pytest

from mapo_env.actions import (
    MAX_MESSAGE_CHARS,
    ZOOM_TOOL_NAME,
    ZOOM_TOOL_NAMES,
    ParsedAction,
    ToolError,
    ZoomCall,
    format_answer,
    format_tool_call,
    parse_action,
)
from mapo_env.errors import ConfigError, InvalidActionType


def call(args: object, name: object = ZOOM_TOOL_NAME, close: bool = True) -> str:
    """A tool call whose body is written with json.dumps (so the test does not depend on the formatter)."""
    body = json.dumps({"name": name, "arguments": args})
    return f"<tool_call>{body}{'</tool_call>' if close else ''}"


OK, INVALID = "tool_call", "invalid"
BOX = [10, 20, 110, 220]

CASES = [
    # --- valid calls
    pytest.param(call({"bbox_2d": BOX, "label": "cup"}), OK, None, id="canonical"),
    pytest.param(call({"bbox_2d": BOX}, close=False), OK, None, id="no-closing-tag"),
    pytest.param(
        "<tool_call>\n" + json.dumps({"name": ZOOM_TOOL_NAME, "arguments": {"bbox_2d": BOX}}) + "\n",
        OK,
        None,
        id="deepeyes-newlines-no-close",
    ),
    pytest.param(call({"bbox_2d": BOX}) + " and then some trailing words {", OK, None, id="trailing-text"),
    pytest.param(
        call({"bbox_2d": BOX}, close=False) + '\nI will now look {"x": 1}', OK, None, id="trailing-garbage-no-close"
    ),
    pytest.param(
        "<TOOL_CALL>" + json.dumps({"name": "zoom", "arguments": {"box": BOX}}) + "</Tool_Call>",
        OK,
        None,
        id="tag-case-insensitive",
    ),
    pytest.param(call({"bbox": BOX}, name="zoom_in"), OK, None, id="alias-bbox-zoom_in"),
    pytest.param(call({"box": BOX}, name="crop"), OK, None, id="alias-box-crop"),
    pytest.param(call({"BBox_2D": BOX}, name=" Image_Zoom_In_Tool "), OK, None, id="key-and-name-case"),
    pytest.param(call({"bbox_2d": BOX, "object": "cup", "img_idx": 1}), OK, None, id="alias-object-img_idx"),
    pytest.param(call({"bbox_2d": BOX, "target": "cup", "image_id": "2"}), OK, None, id="alias-target-image_id"),
    pytest.param(call({"bbox_2d": BOX, "extra": {"ignored": True}}), OK, None, id="unknown-arg-ignored"),
    pytest.param(call(json.dumps({"bbox_2d": BOX, "label": "cup"})), OK, None, id="arguments-as-json-string"),
    pytest.param(
        "<tool_call>"
        + json.dumps(
            {"type": "function", "function": {"name": ZOOM_TOOL_NAME, "arguments": json.dumps({"bbox_2d": BOX})}}
        ),
        OK,
        None,
        id="openai-function-wrapper",
    ),
    pytest.param(call({"bbox_2d": ["10", " 20 ", 110.5, 2.2e2]}), OK, None, id="numeric-strings-and-floats"),
    pytest.param(call({"bbox_2d": "[10, 20, 110, 220]"}), OK, None, id="bbox-as-string"),
    pytest.param(call({"bbox_2d": [110, 220, 10, 20]}), OK, None, id="inverted-box-parses"),
    pytest.param(call({"bbox_2d": [-50, -5, 0, 0]}), OK, None, id="negative-box-parses"),
    pytest.param(call({"bbox_2d": [0, 0, 1e300, 1e308]}), OK, None, id="huge-box-parses"),
    pytest.param(call({"bbox_2d": BOX, "label": "红色的杯子 ☕"}), OK, None, id="unicode-label"),
    pytest.param(call({"bbox_2d": BOX, "label": None, "image_index": None}), OK, None, id="nulls-mean-absent"),
    pytest.param(call({"bbox_2d": BOX, "image_index": 2.0}), OK, None, id="integral-float-index"),
    pytest.param(
        "<tool_call>{'name': 'zoom', 'arguments': {'bbox': [1, 2, 3, 4], 'label': 'cup',}}</tool_call>",
        OK,
        None,
        id="lenient-python-literal",
    ),
    pytest.param(
        '<tool_call>{"name": "zoom", "arguments": {"bbox": [1, 2, 3, 4], "ok": true,}}',
        OK,
        None,
        id="lenient-json-true-trailing-comma",
    ),
    pytest.param(
        '<tool_call>{"name": "zoom", "arguments": {"bbox_2d": [1, 2, 3, 4]', OK, None, id="lenient-truncated-closers"
    ),
    pytest.param(
        '<tool_call>[{"name": "zoom", "arguments": {"bbox_2d": [1, 2, 3, 4]}}]', OK, None, id="list-wrapped-call"
    ),
    # --- broken JSON
    pytest.param("<tool_call>not json at all</tool_call>", INVALID, ToolError.BAD_JSON, id="no-brace"),
    pytest.param("<tool_call></tool_call>", INVALID, ToolError.BAD_JSON, id="empty-call"),
    pytest.param("<tool_call></tool_call>{" + '"name": "zoom"}', INVALID, ToolError.BAD_JSON, id="brace-after-close"),
    pytest.param(
        '<tool_call>{"name": "zoom", arguments: {}}</tool_call>', INVALID, ToolError.BAD_JSON, id="unquoted-key"
    ),
    pytest.param(
        '<tool_call>{"name": "zoom" "arguments": {"bbox": [1,2,3,4]}}',
        INVALID,
        ToolError.BAD_JSON,
        id="no-implicit-string-join",
    ),
    pytest.param(
        '<tool_call>{"name": "zoom", "arguments": {"label": "the red ca',
        INVALID,
        ToolError.BAD_JSON,
        id="truncated-inside-string",
    ),
    pytest.param("<tool_call>{" * 3 + "]", INVALID, ToolError.BAD_JSON, id="mismatched-brackets"),
    pytest.param("<tool_call>" + "{" * 10_000, INVALID, ToolError.BAD_JSON, id="deep-open-braces"),
    pytest.param(
        "<tool_call>" + '{"a": [' * 5_000 + "]}" * 5_000, INVALID, ToolError.BAD_JSON, id="deep-valid-nesting"
    ),
    pytest.param(
        '<tool_call>{"name": "zoom", "arguments": "not an object"}',
        INVALID,
        ToolError.BAD_ARGS,
        id="arguments-plain-string",
    ),
    pytest.param(
        '<tool_call>{"name": "zoom", "arguments": "{broken"}',
        INVALID,
        ToolError.BAD_JSON,
        id="arguments-string-broken-json",
    ),
    # --- unknown tool
    pytest.param(call({"bbox_2d": BOX}, name="search_web"), INVALID, ToolError.UNKNOWN_TOOL, id="unknown-tool"),
    pytest.param(call({"bbox_2d": BOX}, name=None), INVALID, ToolError.UNKNOWN_TOOL, id="null-name"),
    pytest.param(call({"bbox_2d": BOX}, name=["zoom"]), INVALID, ToolError.UNKNOWN_TOOL, id="list-name"),
    pytest.param(
        '<tool_call>{"arguments": {"bbox_2d": [1, 2, 3, 4]}}', INVALID, ToolError.UNKNOWN_TOOL, id="missing-name"
    ),
    # --- bad arguments
    pytest.param('<tool_call>{"name": "zoom"}', INVALID, ToolError.BAD_ARGS, id="missing-arguments"),
    pytest.param(call([1, 2, 3, 4]), INVALID, ToolError.BAD_ARGS, id="arguments-is-list"),
    pytest.param(call({"bbox_2d": BOX, "label": 7}), INVALID, ToolError.BAD_ARGS, id="label-not-str"),
    pytest.param(call({"bbox_2d": BOX, "label": ["cup"]}), INVALID, ToolError.BAD_ARGS, id="label-list"),
    pytest.param(call({"bbox_2d": BOX, "image_index": -1}), INVALID, ToolError.BAD_ARGS, id="negative-index"),
    pytest.param(call({"bbox_2d": BOX, "image_index": 1.5}), INVALID, ToolError.BAD_ARGS, id="fractional-index"),
    pytest.param(call({"bbox_2d": BOX, "image_index": True}), INVALID, ToolError.BAD_ARGS, id="bool-index"),
    pytest.param(call({"bbox_2d": BOX, "image_index": "first"}), INVALID, ToolError.BAD_ARGS, id="word-index"),
    # --- bad boxes
    pytest.param(call({"label": "cup"}), INVALID, ToolError.BAD_BBOX, id="missing-bbox"),
    pytest.param(call({"bbox_2d": [1, 2, 3]}), INVALID, ToolError.BAD_BBOX, id="three-numbers"),
    pytest.param(call({"bbox_2d": [1, 2, 3, 4, 5]}), INVALID, ToolError.BAD_BBOX, id="five-numbers"),
    pytest.param(call({"bbox_2d": [[1, 2], [3, 4]]}), INVALID, ToolError.BAD_BBOX, id="nested-lists"),
    pytest.param(call({"bbox_2d": [1, 2, None, 4]}), INVALID, ToolError.BAD_BBOX, id="null-coordinate"),
    pytest.param(call({"bbox_2d": [1, 2, True, 4]}), INVALID, ToolError.BAD_BBOX, id="bool-coordinate"),
    pytest.param(call({"bbox_2d": [1, 2, "three", 4]}), INVALID, ToolError.BAD_BBOX, id="word-coordinate"),
    pytest.param(call({"bbox_2d": {"x1": 1, "y1": 2, "x2": 3, "y2": 4}}), INVALID, ToolError.BAD_BBOX, id="bbox-dict"),
    pytest.param(
        '<tool_call>{"name": "zoom", "arguments": {"bbox_2d": [1, 2, NaN, 4]}}', INVALID, ToolError.BAD_BBOX, id="nan"
    ),
    pytest.param(
        '<tool_call>{"name": "zoom", "arguments": {"bbox_2d": [1, 2, Infinity, 4]}}',
        INVALID,
        ToolError.BAD_BBOX,
        id="infinity",
    ),
    pytest.param(call({"bbox_2d": ["1", "2", "nan", "4"]}), INVALID, ToolError.BAD_BBOX, id="nan-string"),
    pytest.param(
        '<tool_call>{"name": "zoom", "arguments": {"bbox_2d": [1, 2, 1e999, 4]}}',
        INVALID,
        ToolError.BAD_BBOX,
        id="overflowing-float",
    ),
    pytest.param(
        '<tool_call>{"name": "zoom", "arguments": {"bbox_2d": [1, 2, 1' + "0" * 400 + ", 4]}}",
        INVALID,
        ToolError.BAD_BBOX,
        id="int-beyond-float",
    ),
    # --- answers
    pytest.param("<answer>B</answer>", "answer", None, id="answer-letter"),
    pytest.param("<answer>\nThe cap is white.\n</answer>", "answer", None, id="answer-text"),
    pytest.param("<answer>B", "answer", None, id="answer-no-close"),
    pytest.param("<answer></answer>", INVALID, ToolError.EMPTY_ANSWER, id="empty-answer"),
    pytest.param("<answer> \n\t </answer>", INVALID, ToolError.EMPTY_ANSWER, id="blank-answer"),
    pytest.param("<answer>", INVALID, ToolError.EMPTY_ANSWER, id="bare-answer-tag"),
    # --- no action, blocks
    pytest.param("", INVALID, ToolError.NO_ACTION, id="empty-turn"),
    pytest.param("The answer is B.", INVALID, ToolError.NO_ACTION, id="plain-text"),
    pytest.param(
        '{"name": "zoom", "arguments": {"bbox_2d": [1, 2, 3, 4]}}', INVALID, ToolError.NO_ACTION, id="json-without-tag"
    ),
    pytest.param("<think>I should zoom. <answer>A</answer>", INVALID, ToolError.NO_ACTION, id="unclosed-think"),
    pytest.param("<think>draft <answer>A</answer></think>", INVALID, ToolError.NO_ACTION, id="answer-only-in-think"),
    pytest.param("<description>a red cup <answer>A</answer>", INVALID, ToolError.NO_ACTION, id="unclosed-description"),
    pytest.param("<answer >B</answer >", INVALID, ToolError.NO_ACTION, id="space-in-tag-is-no-tag"),
    pytest.param("</tool_call></answer></think>", INVALID, ToolError.NO_ACTION, id="stray-closing-tags"),
]


@pytest.mark.parametrize("text, expected_kind, expected_code", CASES)
def test_table(text: str, expected_kind: str, expected_code: ToolError | None) -> None:
    parsed = parse_action(text)
    assert isinstance(parsed, ParsedAction)
    assert (parsed.kind, parsed.error) == (expected_kind, expected_code), parsed.message
    assert (parsed.error is None) == (parsed.kind != "invalid")
    if parsed.error is None:
        assert parsed.message == ""
    else:
        assert parsed.message.startswith("Error: ") and len(parsed.message) <= MAX_MESSAGE_CHARS
        assert parsed.tool_call is None and parsed.answer is None


def zoom(text: str) -> ZoomCall:
    parsed = parse_action(text)
    assert parsed.kind == "tool_call", parsed.message
    assert parsed.tool_call is not None
    return parsed.tool_call


def test_fields_of_a_canonical_call() -> None:
    got = zoom(call({"bbox_2d": [10, 20.5, 110, 220], "label": "  red cup ", "image_index": 3}))
    assert got == ZoomCall(bbox=(10.0, 20.5, 110.0, 220.0), label="red cup", image_index=3, name=ZOOM_TOOL_NAME)
    assert all(type(x) is float for x in got.bbox)


def test_aliases_fill_the_same_fields() -> None:
    got = zoom(call({"box": ["1", 2, 3.5, "4e1"], "object": "cup", "img_idx": "2"}, name="Zoom-In"))
    assert got == ZoomCall(bbox=(1.0, 2.0, 3.5, 40.0), label="cup", image_index=2, name="Zoom-In")


def test_alias_precedence_bbox_2d_over_bbox_over_box() -> None:
    got = zoom(call({"box": [9, 9, 9, 9], "bbox": [5, 5, 6, 6], "bbox_2d": [1, 2, 3, 4]}))
    assert got.bbox == (1.0, 2.0, 3.0, 4.0)
    assert zoom(call({"box": [9, 9, 9, 9], "bbox": [5, 5, 6, 6]})).bbox == (5.0, 5.0, 6.0, 6.0)


@pytest.mark.parametrize("name", sorted(ZOOM_TOOL_NAMES))
def test_every_tool_alias_is_accepted(name: str) -> None:
    assert zoom(call({"bbox_2d": BOX}, name=name)).name == name


def test_missing_label_and_index_take_defaults() -> None:
    got = zoom(call({"bbox_2d": BOX}))
    assert (got.label, got.image_index) == (None, 0)
    assert zoom(call({"bbox_2d": BOX, "label": "   "})).label is None


def test_geometry_is_not_judged_here() -> None:
    assert zoom(call({"bbox_2d": [300, 400, 100, 200]})).bbox == (300.0, 400.0, 100.0, 200.0)
    assert zoom(call({"bbox_2d": [-5, -5, 5, 5]})).bbox == (-5.0, -5.0, 5.0, 5.0)
    assert zoom(call({"bbox_2d": [7, 7, 7, 7]})).bbox == (7.0, 7.0, 7.0, 7.0)


def test_label_holding_the_closing_tag_still_parses() -> None:
    label = 'sign reading "</tool_call>"'
    assert zoom(call({"bbox_2d": BOX, "label": label})).label == label


def test_answer_text_is_stripped_and_cut_at_the_next_tag() -> None:
    assert parse_action("<answer>\n  B  \n</answer> trailing").answer == "B"
    assert parse_action("<answer> C <think>oops").answer == "C"
    assert parse_action("<answer>The cap is white.").answer == "The cap is white."


def test_think_and_description_are_extracted() -> None:
    text = "<think> look left </think>\n<description> a red cup on a table </description><answer>A</answer>"
    parsed = parse_action(text)
    assert (parsed.kind, parsed.answer) == ("answer", "A")
    assert parsed.think == "look left"
    assert parsed.description == "a red cup on a table"


def test_blocks_absent_are_none_and_empty_are_empty() -> None:
    assert parse_action("<answer>A</answer>").think is None
    assert parse_action("<answer>A</answer>").description is None
    assert parse_action("<think></think><answer>A</answer>").think == ""


def test_several_think_blocks_are_joined_and_first_description_kept() -> None:
    text = "<think>one</think><description>first</description><think>two</think><description>2nd</description>"
    parsed = parse_action(text + "<answer>A</answer>")
    assert (parsed.think, parsed.description) == ("one\ntwo", "first")


def test_closing_think_without_opening_starts_at_the_turn() -> None:
    parsed = parse_action("I reason here.</think><answer>B</answer>")
    assert (parsed.think, parsed.answer) == ("I reason here.", "B")


def test_unclosed_think_swallows_the_turn_and_says_how_to_fix() -> None:
    parsed = parse_action("<think>zoom on the cup " + call({"bbox_2d": BOX}))
    assert parsed.error is ToolError.NO_ACTION
    assert "</think>" in parsed.message
    assert parsed.think is not None and parsed.think.startswith("zoom on the cup")


def test_action_inside_think_does_not_count_but_the_one_after_does() -> None:
    # real DeepEyes turn shape: a drafted <answer> inside <think>, then the tool call
    text = '<think>maybe <answer>"superhero"</answer></think>\n<tool_call>\n{"name": "image_zoom_in_tool", '
    text += '"arguments": {"bbox_2d": [500, 100, 600, 150]}}\n'
    assert zoom(text).bbox == (500.0, 100.0, 600.0, 150.0)
    only_inside = parse_action("<think>maybe <answer>A</answer></think>")
    assert "inside <think>" in only_inside.message


def test_first_action_tag_wins() -> None:
    answer_first = parse_action("<answer>A</answer>" + call({"bbox_2d": BOX}))
    assert (answer_first.kind, answer_first.answer) == ("answer", "A")
    call_first = parse_action(call({"bbox_2d": BOX}) + "<answer>A</answer>")
    assert call_first.kind == "tool_call"
    broken_first = parse_action("<tool_call>oops</tool_call>" + call({"bbox_2d": BOX}))
    assert broken_first.error is ToolError.BAD_JSON
    two_calls = parse_action(call({"bbox_2d": [1, 1, 2, 2]}) + call({"bbox_2d": BOX}))
    assert two_calls.tool_call is not None and two_calls.tool_call.bbox == (1.0, 1.0, 2.0, 2.0)


def test_description_keeps_tags_inside_it_from_acting() -> None:
    parsed = parse_action("<description>a sign saying <answer>X</answer></description><answer>B</answer>")
    assert (parsed.answer, parsed.description) == ("B", "a sign saying <answer>X</answer>")


@pytest.mark.parametrize(
    "text, fragment",
    [
        (call({"bbox_2d": [1, 2, 3]}), "got [1, 2, 3]"),
        (call({"bbox_2d": BOX}, name="search"), "'search'"),
        (call({"bbox_2d": BOX, "image_index": -2}), "got -2"),
        ("<tool_call>{oops}", "char 1"),
        ("plain words", "<answer>LETTER</answer>"),
        ("<answer></answer>", "<answer>B</answer>"),
    ],
)
def test_messages_quote_what_came_and_say_what_to_write(text: str, fragment: str) -> None:
    assert fragment in parse_action(text).message


def test_messages_stay_short_on_huge_offending_values() -> None:
    huge = "x" * 1_000_000
    for text in (
        call({"bbox_2d": [huge, 1, 2, 3]}),
        call({"bbox_2d": BOX}, name=huge),
        call({"bbox_2d": BOX, "label": [huge]}),
        "<tool_call>{" + huge,
        "<tool_call>" + huge,
    ):
        parsed = parse_action(text)
        assert parsed.error is not None
        assert len(parsed.message) <= MAX_MESSAGE_CHARS
        assert "x" * 81 not in parsed.message


def test_non_str_is_our_misuse() -> None:
    with pytest.raises(InvalidActionType, match="str"):
        parse_action(b"<answer>A</answer>")  # type: ignore[arg-type]


# ----------------------------------------------------------------------------------------------
# format_tool_call / format_answer


def test_format_tool_call_canonical_text() -> None:
    text = format_tool_call((10, 20.5, 110.126, 220.0), label="red cup")
    body = text.removeprefix("<tool_call>").removesuffix("</tool_call>")
    assert text.startswith("<tool_call>") and text.endswith("</tool_call>")
    assert body.index('"label"') < body.index('"bbox_2d"')
    assert '"bbox_2d": [10, 20.5, 110.13, 220]' in body
    assert json.loads(body) == {
        "name": ZOOM_TOOL_NAME,
        "arguments": {"label": "red cup", "bbox_2d": [10, 20.5, 110.13, 220]},
    }


def test_format_tool_call_omits_absent_fields() -> None:
    assert json.loads(format_tool_call([1, 2, 3, 4])[11:-12]) == {
        "name": ZOOM_TOOL_NAME,
        "arguments": {"bbox_2d": [1, 2, 3, 4]},
    }
    assert '"image_index": 2' in format_tool_call([1, 2, 3, 4], image_index=2)


@pytest.mark.parametrize(
    "bbox, label, index",
    [
        ((0, 0, 448, 448), None, None),
        ((12.25, 3.5, 99.75, 1000.0), "the red umbrella", 0),
        ((-3, -4, 1e6, 2.5e5), 'a "quoted" </tool_call> label \\ with ☂', 3),
        ((0.01, 0.99, 1.5, 2), "  padded  ", None),
    ],
)
def test_format_tool_call_round_trips(bbox: tuple, label: str | None, index: int | None) -> None:
    got = zoom(format_tool_call(bbox, label=label, image_index=index))
    assert got.bbox == tuple(float(x) for x in bbox)
    assert got.label == (label.strip() if label else None)
    assert got.image_index == (index or 0)


def test_format_tool_call_rounds_to_two_decimals() -> None:
    got = zoom(format_tool_call((1.234, 5.678, 9.999, 2.0)))
    assert all(math.isclose(a, b) for a, b in zip(got.bbox, (1.23, 5.68, 10.0, 2.0)))
    assert "[1.23, 5.68, 10, 2]" in format_tool_call((1.234, 5.678, 9.999, 2.0))


@pytest.mark.parametrize(
    "bbox, label, index",
    [
        ((1, 2, 3), None, None),
        ((1, 2, 3, float("nan")), None, None),
        ((1, 2, 3, float("inf")), None, None),
        (("1", 2, 3, 4), None, None),
        ("1234", None, None),
        (None, None, None),
        ((1, 2, 3, 4), 5, None),
        ((1, 2, 3, 4), None, -1),
        ((1, 2, 3, 4), None, True),
    ],
)
def test_format_tool_call_rejects_our_own_bad_input(bbox: object, label: object, index: object) -> None:
    with pytest.raises(ConfigError, match="format_tool_call"):
        format_tool_call(bbox, label=label, image_index=index)  # type: ignore[arg-type]


@pytest.mark.parametrize("letter", ["A", "b", " C ", "The cap is white.", "☂"])
def test_format_answer_round_trips(letter: str) -> None:
    parsed = parse_action(format_answer(letter))
    assert (parsed.kind, parsed.answer) == ("answer", letter.strip())


@pytest.mark.parametrize("letter", ["", "   ", "A</answer>", "<think>x</think>", None, 3])
def test_format_answer_rejects_our_own_bad_input(letter: object) -> None:
    with pytest.raises(ConfigError, match="format_answer"):
        format_answer(letter)  # type: ignore[arg-type]


def test_malformed_numbers_do_not_make_the_compiler_warn():
    import warnings

    # "1or 2" compiles with a SyntaxWarning ("invalid decimal literal") before the lenient decoder rejects it
    text = '<tool_call>{"name": "zoom", "arguments": {"bbox_2d": [1or 2, 3, 4], "label": "x"}}</tool_call>'
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        parsed = parse_action(text)
    assert parsed.error is not None and not [w for w in caught if issubclass(w.category, SyntaxWarning)]
