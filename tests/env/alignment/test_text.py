import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mapo_env.alignment.text import clean_text, content_words, guard_blocks, is_generic_label, normalize_word
from tests.env.alignment.helpers import ADVERSARIAL_TEXTS


@pytest.mark.parametrize("text", ADVERSARIAL_TEXTS)
def test_clean_text_is_printable_bounded_and_encodable(text):
    out = clean_text(text, max_chars=500)
    assert len(out) <= 500
    assert out == out.strip()
    assert all(ch.isprintable() for ch in out)
    out.encode("utf-8")  # lone surrogates are gone


@given(st.text())
@settings(max_examples=200, deadline=None)
def test_text_helpers_never_raise(text):
    clean = clean_text(text)
    words = content_words(clean)
    assert all(w and w == w.lower() for w in words)
    assert isinstance(is_generic_label(clean), bool)


@pytest.mark.parametrize(
    "word, expected",
    [
        ("Gray", "grey"),
        ("tiles", "tile"),
        ("boxes", "box"),
        ("berries", "berry"),
        ("stripes", "striped"),
        ("Stripy", "striped"),
        ("checkerboard", "checkered"),
        ("glass", "glass"),
        ("bus", "bus"),
    ],
)
def test_normalize_word(word, expected):
    assert normalize_word(word) == expected


def test_content_words_drop_stop_words_and_punctuation():
    assert content_words("The crop shows two Gray umbrellas, with stripes!") == [
        "crop",
        "two",
        "grey",
        "umbrella",
        "striped",
    ]


@pytest.mark.parametrize(
    "text", ["", "   ", "object", "the image", "An Object.", "a region of the picture", "something", "Text", "it"]
)
def test_generic_labels(text):
    assert is_generic_label(text)


@pytest.mark.parametrize("text", ["red", "flag", "a red object", "striped thing", "umbrella in the image"])
def test_specific_labels(text):
    assert not is_generic_label(text)


def test_guard_blocks_generic_unless_reference_is_generic():
    assert guard_blocks("the object", "red striped tile")
    assert guard_blocks("the object", "")  # no reference known: still blocked
    assert not guard_blocks("the object", "object")  # the annotation itself is generic
    assert not guard_blocks("red tile", "red striped tile")
