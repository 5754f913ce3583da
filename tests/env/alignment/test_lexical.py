import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mapo_env.alignment import LexicalScorer
from mapo_env.alignment.lexical import word_f1
from tests.env.alignment.helpers import ADVERSARIAL_TEXTS, annotation, request


@pytest.fixture(scope="module")
def scorer():
    return LexicalScorer()


def test_f1_values_by_hand(scorer):
    # reference {red, striped, tile}; "red tile": P = 2/2, R = 2/3 -> F1 = 0.8; "blue tile": P = 1/2, R = 1/3 -> 0.4
    assert scorer.score(request("red tile")) == pytest.approx(0.8)
    assert scorer.score(request("blue tile")) == pytest.approx(0.4)
    assert scorer.score(request("red striped tile")) == pytest.approx(1.0)
    assert scorer.score(request("umbrella")) == 0.0


def test_truthful_beats_wrong(scorer):
    assert scorer.score(request("red tile")) > scorer.score(request("blue tile"))
    flag = (annotation("flag", color=None, pattern=None),)
    assert scorer.score(request("a flag", flag)) > scorer.score(request("an umbrella", flag))


def test_normalisation_case_plural_synonyms_fillers(scorer):
    ref = (annotation("tile", color="grey", pattern="striped"),)
    assert scorer.score(request("The crop shows GRAY tiles with stripes.", ref)) == pytest.approx(1.0)


def test_precision_penalises_listing_every_colour(scorer):
    honest = scorer.score(request("red tile"))
    spam = scorer.score(request("red green blue yellow magenta cyan orange purple striped tile"))
    assert spam < honest


def test_multi_object_reference(scorer):
    objs = (annotation("tile"), annotation("umbrella", color="blue", pattern=None))
    assert scorer.score(request("red striped tile and blue umbrella", objs)) == pytest.approx(1.0)
    assert 0 < scorer.score(request("blue umbrella", objs)) < 1


def test_empty_reference_scores_zero(scorer):
    assert scorer.score(request("red striped tile", objects=())) == 0.0
    # objects below min_visible do not count
    assert scorer.score(request("red striped tile", visible=0.2)) == 0.0


@pytest.mark.parametrize("text", ADVERSARIAL_TEXTS)
def test_adversarial_text_scores_in_range(scorer, text):
    value = scorer.score(request(text))
    assert 0.0 <= value <= 1.0


@given(st.text(max_size=300))
@settings(max_examples=150, deadline=None)
def test_any_text_in_unit_interval(text):
    value = LexicalScorer().score(request(text))
    assert 0.0 <= value <= 1.0


def test_batch_equals_one_by_one(scorer):
    texts = ["red tile", "", "blue tile", "object", "red striped tile", "x" * 5000]
    reqs = [request(t) for t in texts]
    assert scorer.score_batch(reqs) == [scorer.score(r) for r in reqs]
    assert scorer.score_batch([]) == []


def test_generic_guard_option():
    generic_ref = (annotation("object", color=None, pattern=None),)
    guarded, unguarded = LexicalScorer(), LexicalScorer(generic_guard=False)
    # a generic label is worth nothing against a specific reference, with or without the guard
    assert guarded.score(request("the object")) == 0.0
    # when the annotation itself is generic, the guard steps aside and the words match
    assert guarded.score(request("object", generic_ref)) == pytest.approx(1.0)
    assert unguarded.score(request("object", generic_ref)) == pytest.approx(1.0)


def test_word_f1_symmetric_in_word_sets():
    assert word_f1("red tile", "red striped tile") == pytest.approx(word_f1("red striped tile", "red tile"))


def test_crop_is_not_read():
    scorer = LexicalScorer()
    a = scorer.score(request("red tile", crop=np.zeros((1, 1, 3), np.uint8)))
    b = scorer.score(request("red tile", crop=np.full((300, 20, 3), 255, np.uint8)))
    assert a == b
