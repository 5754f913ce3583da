"""A small name -> object registry, used for advantage estimators and algorithms.

Usage::

    ESTIMATORS: Registry[Callable] = Registry("advantage estimator")

    @ESTIMATORS.register("grpo")
    def compute_grpo_advantage(inp, cfg): ...

    fn = ESTIMATORS.get("grpo")

Rules (verl's decorator registry with its gaps fixed): registering the *same* object twice under a
name is a no-op (re-imports are harmless); registering a *different* object under a taken name raises
:class:`~mapo_env.errors.ConfigError`; an unknown name raises
:class:`~mapo_env.errors.UnknownNameError` that lists every registered name and the closest match.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from mapo_env.errors import ConfigError, UnknownNameError, close_matches_hint

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps lowercase names to objects (functions or classes).

    Args:
        kind: What the registry holds, used in error messages (e.g. ``"algorithm"``).
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator that registers the decorated object under ``name`` and returns it unchanged.

        Raises:
            ConfigError: ``name`` is not a non-empty string, or is taken by a different object.
        """
        if not isinstance(name, str) or not name:
            raise ConfigError(f"{self.kind} names must be non-empty strings, got {name!r}.")

        def decorator(obj: T) -> T:
            existing = self._items.get(name)
            if existing is not None and existing is not obj:
                raise ConfigError(
                    f"{self.kind} name {name!r} is already registered to {existing!r}; cannot register {obj!r} "
                    f"under it. Pick another name (registered: {', '.join(self.names())})."
                )
            self._items[name] = obj
            return obj

        return decorator

    def get(self, name: str) -> T:
        """The object registered under ``name``.

        Raises:
            UnknownNameError: ``name`` is not registered; the message lists the registered names.
        """
        if not isinstance(name, str) or name not in self._items:
            known = self.names()
            raise UnknownNameError(
                f"Unknown {self.kind} {name!r}; registered: {', '.join(repr(n) for n in known) or '(none)'}."
                f"{close_matches_hint(str(name), known)}"
            )
        return self._items[name]

    def unregister(self, name: str) -> T:
        """Remove ``name`` and return what it named (for tests and notebooks that register throwaway entries).

        Raises:
            UnknownNameError: ``name`` is not registered.
        """
        obj = self.get(name)
        del self._items[name]
        return obj

    def names(self) -> list[str]:
        """Registered names, sorted."""
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, names={self.names()})"
