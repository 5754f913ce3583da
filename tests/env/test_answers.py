"""Table tests of answer matching, option letters and the option listing."""

from __future__ import annotations

import random

import pytest

from mapo_env.answers import format_options, match_answer, option_letters
from mapo_env.errors import ConfigError, InvalidActionType

CAP = (
    "The color of the man's cap is white.",
    "The color of the man's cap is blue.",
    "The color of the man's cap is black.",
)
SIDES = ("The dog is on the left side of the bench.", "The dog is on the right side of the bench.")
SHORT = ("red", "dark red", "blue", "light blue")


@pytest.mark.parametrize(
    "answer, options, expected",
    [
        # rule 2: letters
        ("B", CAP, 1),
        ("b", CAP, 1),
        ("(B)", CAP, 1),
        ("[C]", CAP, 2),
        ("B.", CAP, 1),
        ("B)", CAP, 1),
        ("B:", CAP, 1),
        ("  B \n", CAP, 1),
        ("**B**", CAP, 1),
        ('"A"', CAP, 0),
        ("Option B", CAP, 1),
        ("option: c", CAP, 2),
        ("Answer: A", CAP, 0),
        ("The answer is (C)", CAP, 2),
        ("The correct answer is B.", CAP, 1),
        ("Choice A", CAP, 0),
        ("B. The color of the man's cap is blue.", CAP, 1),
        ("B) blue, I think", CAP, 1),  # paraphrase after the letter: the letter decides
        ("(C) black", CAP, 2),
        ("A. The color of the man's cap is blue.", CAP, 1),  # exact text beats a wrong letter (DeepEyes)
        ("A. the dog is on the RIGHT side of the bench", SIDES, 1),
        ("D", CAP, None),  # letter past the options, and no text matches
        ("C", SIDES, None),
        # rule 3: exact text (normalised)
        ("The color of the man's cap is black.", CAP, 2),
        ("the color of the mans cap is black", CAP, 2),  # not the exact text ("man's" -> "man s"), but "black"
        ("THE COLOR OF THE MAN'S CAP IS WHITE", CAP, 0),
        ("  the  color of the man's cap   is blue!! ", CAP, 1),
        ("dark red", SHORT, 1),
        ("Red.", SHORT, 0),
        # rule 4: containment, whole words, most specific
        ("White", CAP, 0),
        ("blue", CAP, 1),
        ("I am sure the cap is black", CAP, 2),  # rule 5: "black" is the only distinguishing word named
        ("I am sure the cap is not black", CAP, None),  # ... unless negated
        ("it is dark red", SHORT, 1),
        ("it is red", SHORT, 0),
        ("a light blue shade", SHORT, 3),
        ("The dog is on the left side of the bench, near the tree.", SIDES, 0),
        ("left", SIDES, 0),
        ("right side", SIDES, 1),
        ("cap", CAP, None),  # inside every option: ambiguous
        ("The dog is on the bench", SIDES, None),
        ("redish", SHORT, None),  # not a whole word
        ("red or blue", SHORT, None),
        ("A cat", CAP, None),  # a bare letter then a space is not a letter form
        # rule 1 and odd input
        ("", CAP, None),
        ("   ", CAP, None),
        ("**", CAP, None),
        ("\x00\x1b[31m", CAP, None),
        ("Answers", CAP, None),
        ("☂", CAP, None),
        ("B", (), None),
        ("anything", ("", "x"), None),
    ],
)
def test_match_answer_table(answer: str, options: tuple[str, ...], expected: int | None) -> None:
    assert match_answer(answer, options) == expected


def test_duplicate_options_are_ambiguous_by_text_but_not_by_letter() -> None:
    options = ("Red", "red.", "blue")
    assert match_answer("red", options) is None
    assert match_answer("B", options) == 1
    assert match_answer("A. red", options) == 0  # the text names two options, one of them the letter's
    assert match_answer("C. red", options) == 2  # ambiguous text: the letter decides


def test_letters_follow_the_shown_order() -> None:
    options = [f"option number {i}" for i in range(26)]
    for i, letter in enumerate(option_letters(26)):
        assert match_answer(letter, options) == i
        assert match_answer(f"({letter.lower()})", options) == i
        assert match_answer(f"option number {i}", options) == i


def test_never_raises_on_random_strings() -> None:
    rng = random.Random(0)
    alphabet = "AaBbEe()[].:*\"' \n\t-_answeroptionthe is red blue cap ☂\x00"
    for _ in range(2_000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40)))
        result = match_answer(text, CAP)
        assert result is None or 0 <= result < len(CAP)


def test_huge_answer_is_fast_and_safe() -> None:
    assert match_answer("x " * 500_000 + CAP[1], CAP) == 1
    assert match_answer("(" * 1_000_000, CAP) is None


def test_misuse_raises_named_errors() -> None:
    with pytest.raises(InvalidActionType, match="str"):
        match_answer(None, CAP)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="options"):
        match_answer("A", "ABC")
    with pytest.raises(ConfigError, match="options"):
        match_answer("A", ["x", 3])  # type: ignore[list-item]
    with pytest.raises(ConfigError, match="26"):
        match_answer("A", ["x"] * 27)


def test_option_letters() -> None:
    assert option_letters(0) == ()
    assert option_letters(4) == ("A", "B", "C", "D")
    assert option_letters(26)[-1] == "Z"
    for bad in (-1, 27, 2.0, True, "4"):
        with pytest.raises(ConfigError, match="option_letters"):
            option_letters(bad)  # type: ignore[arg-type]


def test_format_options_lines_round_trip_through_match_answer() -> None:
    listing = format_options(SIDES)
    assert listing == "A. The dog is on the left side of the bench.\nB. The dog is on the right side of the bench."
    for i, line in enumerate(listing.splitlines()):
        assert match_answer(line, SIDES) == i  # "A. <text>" as a model would copy it
    assert format_options([]) == ""
    with pytest.raises(ConfigError):
        format_options(["x"] * 27)
