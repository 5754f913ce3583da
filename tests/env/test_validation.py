"""The argument checks: strict types (no bool-as-int, no float-as-int, no str), NaN/inf refused, bounds."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mapo_env.errors import ConfigError
from mapo_env.validation import check_bool, check_choice, check_int, check_real, describe

NOT_INTS = st.one_of(
    st.booleans(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=5),
    st.none(),
    st.lists(st.integers(), max_size=2),
    st.just(np.bool_(True)),
    st.just(np.float64(2.0)),
)


@given(st.integers())
def test_ints_in_range_pass_and_others_are_refused(value: int) -> None:
    if value >= 1:
        assert check_int("n", value, minimum=1) == value
        assert type(check_int("n", np.int64(min(value, 2**62)), minimum=1)) is int
    else:
        with pytest.raises(ConfigError, match="n must be an int >= 1"):
            check_int("n", value, minimum=1)


@given(NOT_INTS)
def test_non_ints_are_refused_with_their_type(value: object) -> None:
    with pytest.raises(ConfigError, match=r"must be an int.*\(") as caught:
        check_int("max_turns", value, minimum=1)
    assert len(str(caught.value)) < 200


def test_a_huge_int_is_described_without_printing_it() -> None:
    with pytest.raises(ConfigError, match="digits") as caught:
        check_int("n", 10**5000, maximum=10)
    assert len(str(caught.value)) < 200


@given(st.floats(allow_nan=True, allow_infinity=True))
def test_reals_must_be_finite_and_in_range(value: float) -> None:
    if math.isfinite(value) and value >= 1.0:
        assert check_real("r", value, minimum=1.0) == value
    else:
        with pytest.raises(ConfigError, match="r must be a finite number >= 1.0"):
            check_real("r", value, minimum=1.0)


@pytest.mark.parametrize("value", [True, np.bool_(False), "1.5", None, [1.0], 1 + 0j])
def test_reals_refuse_bool_and_non_numbers(value: object) -> None:
    with pytest.raises(ConfigError, match="finite number"):
        check_real("r", value)


@pytest.mark.parametrize("value", [0, 1, "true", "False", None, 0.0, np.int64(1)])
def test_bools_are_only_true_and_false(value: object) -> None:
    with pytest.raises(ConfigError, match="True or False"):
        check_bool("flag", value)
    assert check_bool("flag", np.bool_(True)) is True


def test_choices_compare_type_and_value() -> None:
    assert check_choice("coords", "pixel", ("pixel", "norm")) == "pixel"
    assert check_choice("mode", None, (None, "ansi")) is None
    for bad in ("Pixel", 0, None, ["pixel"], np.array(["pixel"])):
        with pytest.raises(ConfigError, match="coords must be one of"):
            check_choice("coords", bad, ("pixel", "norm"))
    with pytest.raises(ConfigError):
        check_choice("flag", True, (1, 2))  # True is not the choice 1


def test_describe_cuts_long_values() -> None:
    assert describe("x" * 1000).endswith("... (str)")
    assert len(describe(list(range(10_000)))) < 100
