"""Checks for arguments *our* callers pass (constructor knobs, reset options): strict types, named errors.

Every check returns the value in its canonical type (``int``, ``float``, ``bool``) or raises
:class:`~mapo_env.errors.ConfigError` saying what was expected, what was received and how to fix it.
Nothing is coerced silently: ``True`` is not the int 1, ``2.0`` is not an int, ``"3"`` is not a
number, and NaN or infinity is never a valid real (NaN would disable every comparison it meets).
NumPy scalars of the right kind are accepted (``np.int64(3)``, ``np.float32(0.5)``, ``np.bool_``).

Example:
    >>> check_int("max_turns", 6, minimum=1)
    6
    >>> check_int("max_turns", True, minimum=1)
    Traceback (most recent call last):
    ...
    mapo_env.errors.ConfigError: max_turns must be an int >= 1, got True (bool)
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np

from mapo_env.errors import ConfigError

_MAX_SHOWN = 80  # characters of a bad value quoted in a message


def describe(value: Any) -> str:
    """``repr(value)`` cut to a readable length, with its type: ``"'3' (str)"``."""
    try:
        text = repr(value)
    except Exception:  # noqa: BLE001 - an int past Python's digit limit, a hostile __repr__
        text = "<unprintable>"
    if len(text) > _MAX_SHOWN:
        text = text[: _MAX_SHOWN - 3] + "..."
    return f"{text} ({type(value).__name__})"


def is_int(value: Any) -> bool:
    """True for ``int`` and NumPy integers, False for ``bool`` (and everything else)."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool | np.bool_)


def check_int(name: str, value: Any, minimum: int | None = None, maximum: int | None = None) -> int:
    """``value`` as an ``int`` within ``[minimum, maximum]`` (either bound optional).

    Raises:
        ConfigError: not an integer (``bool``, ``float`` and ``str`` are refused) or out of range.
    """
    bounds = _bounds(minimum, maximum)
    if not is_int(value):
        raise ConfigError(f"{name} must be an int{bounds}, got {_short(value)}")
    value = int(value)
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        raise ConfigError(f"{name} must be an int{bounds}, got {_short(value)}")
    return value


def check_real(name: str, value: Any, minimum: float | None = None, maximum: float | None = None) -> float:
    """``value`` as a finite ``float`` within ``[minimum, maximum]`` (either bound optional).

    Raises:
        ConfigError: not a real number (``bool`` and ``str`` are refused), NaN, infinite, or out of range.
    """
    bounds = _bounds(minimum, maximum)
    if not isinstance(value, numbers.Real) or isinstance(value, bool | np.bool_):
        raise ConfigError(f"{name} must be a finite number{bounds}, got {_short(value)}")
    as_float = float(value)
    if not math.isfinite(as_float):
        raise ConfigError(f"{name} must be a finite number{bounds}, got {_short(value)}")
    if (minimum is not None and as_float < minimum) or (maximum is not None and as_float > maximum):
        raise ConfigError(f"{name} must be a finite number{bounds}, got {_short(value)}")
    return as_float


def check_bool(name: str, value: Any) -> bool:
    """``value`` as a ``bool``; only ``True``/``False`` (or ``np.bool_``): ``0``, ``"false"`` are refused."""
    if not isinstance(value, bool | np.bool_):
        raise ConfigError(f"{name} must be True or False, got {_short(value)}")
    return bool(value)


def check_choice(name: str, value: Any, choices: tuple[Any, ...]) -> Any:
    """``value`` if it is one of ``choices`` (an instance of the choice's type, and equal to it)."""
    if not any(
        value is c or (isinstance(value, type(c)) and not isinstance(value, bool) and value == c) for c in choices
    ):
        raise ConfigError(f"{name} must be one of {list(choices)}, got {_short(value)}")
    return value


def _bounds(minimum: float | None, maximum: float | None) -> str:
    if minimum is not None and maximum is not None:
        return f" in [{minimum}, {maximum}]"
    if minimum is not None:
        return f" >= {minimum}"
    if maximum is not None:
        return f" <= {maximum}"
    return ""


def _short(value: Any) -> str:
    if is_int(value) and abs(int(value)) >= 10**_MAX_SHOWN:
        return f"an int of about {int(math.log10(abs(int(value))))} digits ({type(value).__name__})"
    return describe(value)
