"""Grading free-form answers as a careful judge: a labelled corpus, the real DeepEyes replay, and properties.

``answer_corpus.json`` holds realistic answers (sentences, hedges, extra clauses, letter/text mismatches,
negations, ambiguous and off-topic answers) to V*-, HR-Bench- and MME-RealWorld-style options, each
labelled with the option a careful human judge picks (``null``: none, or ambiguous). The real replay
grades DeepEyes' 191 V* answers and compares the accuracy with the one its own evaluation reported.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mapo_env.answers import MATCH_KINDS, grade_answer, option_letters

CORPUS = Path(__file__).with_name("answer_corpus.json")
RUN = Path("eval_results/vlagent_think_mh/merge_ds1_step48_ds4_step40")
OPTION_RE = re.compile(r"^([A-F])\. (.*)$", re.MULTILINE)
# Accuracy DeepEyes' evaluation (an LLM judge) reported for this run in its summary.txt: 85.22 % and 65.79 %.
JUDGE_CORRECT = {"result_direct_attributes.jsonl": (98, 115), "result_relative_position.jsonl": (50, 76)}


def test_corpus_is_graded_as_a_careful_judge_would(record_property: Any) -> None:
    rows = json.loads(CORPUS.read_text(encoding="utf-8"))
    assert len(rows) >= 150
    misses = []
    for row in rows:
        graded = grade_answer(row["answer"], row["options"])
        if graded.index != row["judge"]:
            misses.append((row["answer"], row["judge"], graded))
    share = 1 - len(misses) / len(rows)
    record_property("judge_agreement", f"{len(rows) - len(misses)}/{len(rows)} = {share:.1%}")
    # measured: 166/168 (misses: "12" for 10:10 / 11:15 / 12:45 / 3:30 is graded 12:45; "I think it's A." is not read)
    assert share >= 0.97, misses


def test_corpus_covers_every_kind_and_negations() -> None:
    rows = json.loads(CORPUS.read_text(encoding="utf-8"))
    kinds = {grade_answer(row["answer"], row["options"]).kind for row in rows}
    assert kinds == set(MATCH_KINDS)
    negated = [row for row in rows if re.search(r"\bnot\b|n't\b|\bneither\b", row["answer"])]
    assert len(negated) >= 15


def _options_of(record: dict[str, Any]) -> list[str]:
    first_user = next(m for m in record["pred_output"] if m["role"] == "user")
    content = first_user["content"]
    text = content if isinstance(content, str) else "".join(p.get("text", "") for p in content)
    return [option for _, option in OPTION_RE.findall(text)]


def test_real_deepeyes_answers_grade_as_its_judge_did(deepeyes_dir: Path) -> None:
    for name, (judge_correct, total) in JUDGE_CORRECT.items():
        path = deepeyes_dir / RUN / name
        if not path.is_file():
            pytest.skip(f"{path} is absent")
        records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
        assert len(records) == total
        correct = 0
        for record in records:
            options = _options_of(record)
            graded = grade_answer(record["pred_ans"], options)
            correct += graded.index is not None and options[graded.index] == record["answer"]
        assert correct == judge_correct, name


def test_hedged_sentences_name_their_option() -> None:
    options = [f"The material of the stool is {m}." for m in ("plastic", "wood", "steel", "bamboo")]
    assert grade_answer("The material of the stool is likely plastic.", options) == (0, "distinguishing_words")
    assert grade_answer("plastic", options) == (0, "text")
    assert grade_answer("not plastic", options) == (None, "none")
    assert grade_answer("A. The material of the stool is wood.", options) == (1, "text")
    assert grade_answer("A", options) == (0, "letter")
    assert grade_answer("plastic or wood", options) == (None, "none")


# ---------------------------------------------------------------------------------------------- properties

WORDS = st.sampled_from(
    "red blue green yellow white black purple orange pink brown gray silver golden plastic wood steel glass "
    "leather cotton rubber paper cat dog horse bird fish corgi husky dalmatian".split()
)
SUBJECTS = st.sampled_from(["stool", "man's cap", "flag", "umbrella", "car", "kid's shirt"])
ATTRIBUTES = st.sampled_from(["color", "material", "kind", "breed"])
HEDGES = st.sampled_from(["", "likely ", "probably ", "most likely ", "clearly ", "definitely "])
TAILS = st.sampled_from(["", ", as the zoomed view shows", " with a small logo", ", judging by the texture"])


@st.composite
def attribute_question(draw: st.DrawFn) -> tuple[list[str], list[str], str]:
    words = draw(st.lists(WORDS, min_size=2, max_size=6, unique=True))
    subject, attribute = draw(SUBJECTS), draw(ATTRIBUTES)
    return [f"The {attribute} of the {subject} is {w}." for w in words], words, subject


@settings(max_examples=150, deadline=None)
@given(attribute_question(), st.data())
def test_a_hedged_sentence_names_its_option_and_its_negation_does_not(question, data) -> None:
    options, words, subject = question
    i = data.draw(st.integers(0, len(options) - 1))
    hedge, tail = data.draw(HEDGES), data.draw(TAILS)
    assert grade_answer(f"The {subject} is {hedge}{words[i]}{tail}.", options).index == i
    assert grade_answer(f"It is {hedge}{words[i]}.", options).index == i
    assert grade_answer(f"{words[i].upper()}", options).index == i
    assert grade_answer(f"It is not {words[i]}.", options).index is None
    assert grade_answer(f"The {subject} is not {hedge}{words[i]}{tail}.", options).index is None
    j = (i + 1) % len(options)
    assert grade_answer(f"It is {words[i]}, not {words[j]}.", options).index == i
    assert grade_answer(f"Not {words[j]} but {words[i]}.", options).index == i
    assert grade_answer(f"{words[i]} or {words[j]}", options).index is None


@settings(max_examples=150, deadline=None)
@given(attribute_question(), st.data())
def test_letter_with_another_options_text_resolves_by_the_text(question, data) -> None:
    options = question[0]
    i, j = data.draw(st.integers(0, len(options) - 1)), data.draw(st.integers(0, len(options) - 1))
    letters = option_letters(len(options))
    graded = grade_answer(f"{letters[i]}. {options[j]}", options)
    assert graded.index == j
    assert graded.kind == ("letter" if i == j else "text")
    assert grade_answer(f"({letters[i]})", options) == (i, "letter")
    assert grade_answer(f"I would pick option {letters[i]}, I think.", options) == (i, "letter")
    assert grade_answer(f"Not option {letters[i]}.", options) == (None, "none")


@settings(max_examples=100, deadline=None)
@given(attribute_question(), st.data())
def test_grading_follows_the_options_when_they_are_shuffled(question, data) -> None:
    options, words, subject = question
    order = data.draw(st.permutations(range(len(options))))
    shuffled = [options[k] for k in order]
    answer = data.draw(st.sampled_from([f"The {subject} is likely {w}." for w in words] + ["no idea", words[0]]))
    before, after = grade_answer(answer, options), grade_answer(answer, shuffled)
    assert (None if before.index is None else order.index(before.index)) == after.index
    assert before.kind == after.kind


@st.composite
def relation_question(draw: st.DrawFn) -> tuple[list[str], tuple[str, str], str, str]:
    objects = st.sampled_from(["dog", "red car", "bench", "lamp post", "woman", "blue bag"])
    a, b = draw(st.lists(objects, min_size=2, max_size=2, unique=True))
    words = draw(st.sampled_from([("left", "right"), ("above", "below")]))
    if words[0] == "left":
        return [f"The {a} is on the {w} side of the {b}." for w in words], words, a, b
    return [f"The {a} is {w} the {b}." for w in words], words, a, b


@settings(max_examples=100, deadline=None)
@given(relation_question(), st.integers(0, 1))
def test_relations_need_the_options_objects_in_their_order(question, i) -> None:
    options, words, a, b = question
    assert grade_answer(f"The {a} is probably {words[i]} of the {b}.", options).index == i
    assert grade_answer(f"It is on the {words[i]}.", options).index == i
    assert grade_answer(f"The {b} is {words[i]} of the {a}.", options).index is None  # objects swapped
    assert grade_answer(f"The {a} is {words[i]} of the tree.", options).index is None  # another object
    assert grade_answer(f"The {a} is not {words[i]} of the {b}.", options).index is None


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200), st.lists(st.text(max_size=40), min_size=0, max_size=26))
def test_never_raises_and_reports_a_consistent_kind(answer: str, options: list[str]) -> None:
    graded = grade_answer(answer, options)
    assert graded.kind in MATCH_KINDS
    assert (graded.index is None) == (graded.kind == "none")
    assert graded.index is None or 0 <= graded.index < len(options)
