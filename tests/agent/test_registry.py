import re

import pytest

from mapo_agent.registry import Registry
from mapo_env.errors import ConfigError, MapoError, UnknownNameError


def _first(x):
    return x


def _second(x):
    return x


def make_registry() -> Registry:
    reg: Registry = Registry("widget")
    reg.register("alpha")(_first)
    reg.register("beta_two")(_second)
    return reg


def test_register_returns_object_and_get_finds_it():
    reg: Registry = Registry("widget")
    decorated = reg.register("alpha")(_first)
    assert decorated is _first
    assert reg.get("alpha") is _first
    assert "alpha" in reg
    assert "gamma" not in reg
    assert 3 not in reg


def test_names_are_sorted_and_len_counts():
    reg = make_registry()
    reg.register("aardvark")(len)
    assert reg.names() == ["aardvark", "alpha", "beta_two"]
    assert list(reg) == reg.names()
    assert len(reg) == 3


def test_same_object_twice_is_noop():
    reg = make_registry()
    reg.register("alpha")(_first)
    assert reg.get("alpha") is _first
    assert len(reg) == 2


def test_different_object_under_taken_name_raises():
    reg = make_registry()
    with pytest.raises(ConfigError, match=re.escape("widget name 'alpha' is already registered to")):
        reg.register("alpha")(_second)
    assert reg.get("alpha") is _first  # unchanged


def test_class_decorator():
    reg: Registry = Registry("thing")

    @reg.register("k")
    class Thing:
        pass

    assert reg.get("k") is Thing


def test_unknown_name_lists_all_names_and_suggests():
    reg = make_registry()
    expected = "Unknown widget 'alpah'; registered: 'alpha', 'beta_two'. Did you mean 'alpha'?"
    with pytest.raises(UnknownNameError, match=re.escape(expected)):
        reg.get("alpah")


def test_unknown_name_without_close_match_has_no_hint():
    reg = make_registry()
    with pytest.raises(UnknownNameError) as info:
        reg.get("zzzzzz")
    assert str(info.value) == "Unknown widget 'zzzzzz'; registered: 'alpha', 'beta_two'."
    assert isinstance(info.value, MapoError) and isinstance(info.value, KeyError)


def test_empty_registry_message():
    with pytest.raises(UnknownNameError, match=re.escape("registered: (none).")):
        Registry("widget").get("x")


@pytest.mark.parametrize("bad", ["", None, 3])
def test_bad_names_rejected(bad):
    with pytest.raises(ConfigError, match=re.escape("widget names must be non-empty strings")):
        Registry("widget").register(bad)
