r"""Tool dialects: speak to each public "thinking with images" checkpoint in the format it was trained on.

Pass ``dialect=`` to any MAPO environment (``gym.make("MAPO-VStar-v0", dialect="mini_o3")``). The
default, ``"deepeyes"``, is the environment's own grammar. Each dialect is one module here; this
registry maps names to them. See ``docs/dialects.md`` for the table of formats and their sources.

=================  ==============================================================================
name               family
=================  ==============================================================================
``deepeyes``       DeepEyes / verl ``image_zoom_in_tool`` in ``<tool_call>`` (the default)
``pixel_reasoner`` Pixel-Reasoner ``crop_image_normalized`` in ``<tool_call>``, ``\boxed{}`` answers
``mini_o3``        Mini-o3 ``<grounding>{"bbox_2d": [...], "source": ...}</grounding>``
``qwen25vl``       Qwen2.5-VL's native grounding JSON (a ```json block of ``bbox_2d``/``label``)
``openai``         OpenAI-style structured tool calls (the JSON an endpoint returns given ``tools=``)
=================  ==============================================================================

Example:
    >>> from mapo_env.dialects import get_dialect
    >>> get_dialect("mini_o3").parse(
    ...     '<grounding>{"bbox_2d": [0.1, 0.2, 0.5, 0.6], "source": "original_image"}</grounding>'
    ... ).tool_call.bbox
    (0.1, 0.2, 0.5, 0.6)
"""

from __future__ import annotations

from mapo_env.dialects.base import Dialect
from mapo_env.errors import ConfigError, UnknownNameError, close_matches_hint

DEFAULT_DIALECT = "deepeyes"
"""The dialect of every environment unless ``dialect=`` says otherwise."""

_REGISTRY: dict[str, type[Dialect]] = {}


class UnknownDialectError(UnknownNameError, ConfigError):
    """``dialect=`` names no registered dialect; the message lists the valid names."""


def register_dialect(cls: type[Dialect]) -> type[Dialect]:
    """Register a :class:`Dialect` subclass under its ``name`` (usable as a class decorator).

    Raises:
        ConfigError: ``cls`` is not a Dialect subclass, has no name, or the name is taken by another class.
    """
    if not (isinstance(cls, type) and issubclass(cls, Dialect)) or not cls.name:
        raise ConfigError(f"register_dialect expects a Dialect subclass with a name, got {cls!r}")
    known = _REGISTRY.get(cls.name)
    if known is not None and known is not cls:
        raise ConfigError(f"dialect name {cls.name!r} is already registered by {known.__name__}")
    _REGISTRY[cls.name] = cls
    return cls


def dialect_names() -> tuple[str, ...]:
    """Every registered dialect name, sorted."""
    return tuple(sorted(_REGISTRY))


def get_dialect(spec: str | Dialect | None = None) -> Dialect:
    """The dialect named ``spec`` (``None`` = :data:`DEFAULT_DIALECT`), or ``spec`` itself if it is a Dialect.

    Names are matched after stripping and lower-casing; ``-`` counts as ``_`` (``"pixel-reasoner"``).

    Raises:
        UnknownDialectError: no dialect has that name (the message lists the valid names).
        ConfigError: ``spec`` is neither a str, a Dialect nor None.
    """
    if spec is None:
        spec = DEFAULT_DIALECT
    if isinstance(spec, Dialect):
        return spec
    if not isinstance(spec, str):
        raise ConfigError(
            f"dialect must be a name such as {DEFAULT_DIALECT!r} or a Dialect, got {type(spec).__name__}"
        )
    key = spec.strip().lower().replace("-", "_")
    cls = _REGISTRY.get(key)
    if cls is None:
        raise UnknownDialectError(
            f"unknown dialect {spec[:40]!r}; valid names: {', '.join(dialect_names())}."
            + close_matches_hint(key, dialect_names())
        )
    return cls()


from mapo_env.dialects import deepeyes, mini_o3, openai, pixel_reasoner, qwen25vl  # noqa: E402  (they register)

for _module in (deepeyes, pixel_reasoner, mini_o3, qwen25vl, openai):
    register_dialect(_module.DIALECT)

__all__ = [
    "DEFAULT_DIALECT",
    "Dialect",
    "UnknownDialectError",
    "dialect_names",
    "get_dialect",
    "register_dialect",
]
