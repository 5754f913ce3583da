"""The boundary between any scorer and the environment: whatever comes back is a score in [0, 1] or a named error.

Property tests over what ``score_batch`` (or a user's callable) may return: NaN -> 0 (logged),
infinities and out-of-range values clipped, anything that is not one real number per request ->
:class:`~mapo_env.errors.AlignmentError` (never ``IndexError`` or ``TypeError``).
"""

from __future__ import annotations

import logging
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mapo_env.alignment import CallableScorer, GuardedScorer, checked_scores, make_scorer
from mapo_env.errors import AlignmentError, ConfigError
from tests.env.alignment.helpers import request

reals = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(width=32).map(np.float32),
    st.integers(-1000, 1000).map(np.int64),
)
not_numbers = st.one_of(
    st.none(),
    st.booleans(),
    st.text(max_size=5),
    st.binary(max_size=5),
    st.lists(st.floats(), max_size=2),
    st.dictionaries(st.text(max_size=2), st.floats(), max_size=2),
    st.just(object()),
    st.just(complex(1, 1)),
)


def expected(value) -> float:
    value = float(value)
    return 0.0 if math.isnan(value) else min(max(value, 0.0), 1.0)


@settings(max_examples=300, deadline=None)
@given(st.lists(reals, min_size=1, max_size=6))
def test_real_numbers_are_clamped_into_the_unit_interval(values):
    out = checked_scores(values, len(values), "s")
    assert out == [expected(v) for v in values]
    assert all(isinstance(v, float) and 0.0 <= v <= 1.0 for v in out)


@settings(max_examples=300, deadline=None)
@given(st.lists(reals, max_size=6), st.integers(0, 6))
def test_wrong_length_is_a_named_error(values, count):
    if len(values) == count:
        return
    with pytest.raises(AlignmentError, match=f"returned {len(values)} scores for {count} requests"):
        checked_scores(values, count, "s")


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(reals, not_numbers), min_size=1, max_size=4).filter(lambda v: any(_bad(x) for x in v)))
def test_a_non_number_in_the_list_is_a_named_error(values):
    with pytest.raises(AlignmentError, match="as a score"):
        checked_scores(values, len(values), "s")


@settings(max_examples=200, deadline=None)
@given(st.one_of(not_numbers.filter(lambda v: not isinstance(v, list)), reals))
def test_a_bare_value_is_a_named_error(value):
    with pytest.raises(AlignmentError, match="score_batch must return a list"):
        checked_scores(value, 1, "s")


def _bad(value) -> bool:
    return isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating))


def test_numpy_arrays_are_accepted():
    assert checked_scores(np.array([0.25, 2.0]), 2, "s") == [0.25, 1.0]
    with pytest.raises(AlignmentError):
        checked_scores(np.zeros((1, 1)), 1, "s")


def test_nan_is_logged(caplog):
    with caplog.at_level(logging.WARNING):
        assert checked_scores([float("nan")], 1, "flaky") == [0.0]
    assert "flaky" in caplog.text and "NaN" in caplog.text


@settings(max_examples=200, deadline=None)
@given(reals)
def test_callable_scorer_clamps_any_real(value):
    assert CallableScorer(lambda r: value).score(request("red tile")) == expected(value)


@settings(max_examples=200, deadline=None)
@given(not_numbers)
def test_callable_scorer_refuses_non_numbers_by_name(value):
    with pytest.raises(ConfigError, match="must return a float"):
        CallableScorer(lambda r: value).score(request("red tile"))


class _ThirdParty:
    """A scorer object that returns whatever it is told to."""

    name = "third-party"

    def __init__(self, value) -> None:
        self.value = value

    def score_batch(self, requests):
        return self.value


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.lists(reals, max_size=3), not_numbers, reals))
def test_guarded_third_party_scorer_never_leaks_an_index_or_type_error(value):
    scorer = GuardedScorer(_ThirdParty(value))
    try:
        score = scorer.score(request("red striped tile"))
    except AlignmentError:
        return
    assert isinstance(value, list) and len(value) == 1 and score == expected(value[0])


def test_capabilities():
    assert make_scorer("lexical").needs_annotations and make_scorer("annotation").needs_annotations
    assert not make_scorer("clip:tiny").needs_annotations
    assert not CallableScorer(lambda r: 0.5).needs_annotations
    assert CallableScorer(lambda r: 0.5, needs_annotations=True).needs_annotations
    assert GuardedScorer(make_scorer("lexical")).needs_annotations
    assert not GuardedScorer(_ThirdParty([0.5])).needs_annotations
