"""Alignment scorers: how well a description matches the crop it describes (``info["alignment"]``).

Names (:data:`SCORERS`):

- ``"clip"`` (:class:`ClipScorer`): CLIP image-text cosine of crop and description, the verifier of
  MAPO (arXiv 2604.06777); ``"clip:<model>"`` picks the model. The environments' default:
  ``"clip:tiny"`` (the bundled offline tiny CLIP) on procedural scenes, ``"clip"`` (a real CLIP:
  ``$MAPO_CLIP_MODEL`` or ``openai/clip-vit-base-patch32``) on real data.
- ``"annotation"`` (:class:`AnnotationScorer`): sentence-embedding cosine of the description and the
  annotated reference caption (all-MiniLM-L6-v2, offline). A PRIVILEGED ORACLE for ablations: it reads
  ground-truth boxes, not the crop.
- ``"lexical"`` (:class:`LexicalScorer`): F1 of content words vs the annotated reference caption; no
  dependency. A PRIVILEGED ORACLE too.

Capabilities: ``scorer.needs_annotations`` (True for the two oracles) says the scorer reads
``AlignmentRequest.objects_in_crop``; the environments refuse such a scorer at construction on a
dataset without object boxes. ``scorer.check_available()`` raises at construction what would
otherwise fail at the first zoom (a model that cannot be loaded).

Every bundled scorer returns scores in ``[0, 1]``, never raises on model text, and applies the
generic-label guard by default (see :mod:`mapo_env.alignment.text`). Nothing here imports torch
until a model-backed scorer scores its first request.

Example:
    >>> scorer = make_scorer("lexical")
    >>> scorer.name
    'lexical'
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mapo_env.alignment.annotation import AnnotationScorer
from mapo_env.alignment.base import AlignmentRequest, AlignmentScorer
from mapo_env.alignment.clip import ClipScorer
from mapo_env.alignment.common import BaseScorer, CallableScorer, GuardedScorer, checked_scores, clamp_score
from mapo_env.alignment.lexical import LexicalScorer
from mapo_env.alignment.text import GENERIC_WORDS, guard_blocks, is_generic_label
from mapo_env.errors import ConfigError, UnknownNameError, close_matches_hint

SCORERS: dict[str, Callable[..., AlignmentScorer]] = {
    "lexical": LexicalScorer,
    "annotation": AnnotationScorer,
    "clip": ClipScorer,
}
"""Scorer name -> factory accepting the scorer's keyword arguments."""

_MODEL_SCORERS = ("annotation", "clip")

ScorerSpec = str | AlignmentScorer | Callable[[AlignmentRequest], float]


def make_scorer(spec: ScorerSpec, **kwargs: Any) -> AlignmentScorer:
    """Build an alignment scorer from a name, a scorer object or a function.

    Args:
        spec: One of

            - a name from :data:`SCORERS` (``"lexical"``, ``"annotation"``, ``"clip"``), optionally
              ``"<name>:<model>"`` for the model-backed ones (``"clip:tiny"``,
              ``"clip:openai/clip-vit-large-patch14"``, ``"annotation:/path/to/st-model"``);
            - an object with a ``score_batch`` method (returned as is);
            - a callable ``fn(request) -> float``, wrapped in :class:`CallableScorer`: exceptions
              from it propagate, NaN maps to 0, values outside ``[0, 1]`` (and infinities) are
              clipped, a non-number result raises :class:`~mapo_env.errors.ConfigError`.
        **kwargs: Passed to the scorer's constructor (e.g. ``generic_guard=False``,
            ``normalization="contrastive"``, ``device="cuda"``).

    Returns:
        The scorer.

    Raises:
        UnknownNameError: ``spec`` is a string naming no scorer (the message lists the names).
        ConfigError: ``spec`` is of another type, or keyword arguments were given with a scorer object.
    """
    if callable(getattr(spec, "score_batch", None)):
        if kwargs:
            raise ConfigError(
                f"make_scorer got a scorer object and keyword arguments {sorted(kwargs)}; configure the object "
                "itself, or pass a name with the arguments"
            )
        return spec  # type: ignore[return-value]
    if isinstance(spec, str):
        return _from_name(spec, kwargs)
    if callable(spec):
        return CallableScorer(spec, **kwargs)
    raise ConfigError(
        f"alignment scorer spec must be a name ({', '.join(SCORERS)}), a scorer with score_batch(), or a "
        f"callable fn(request) -> float; got {type(spec).__name__}"
    )


def _from_name(spec: str, kwargs: dict[str, Any]) -> AlignmentScorer:
    name, sep, model = spec.partition(":")
    name = name.strip().lower()
    if name not in SCORERS:
        raise UnknownNameError(
            f"unknown alignment scorer {spec!r}; known: {', '.join(SCORERS)}."
            f"{close_matches_hint(name, list(SCORERS))} "
            "You can also pass a scorer object or a callable fn(request) -> float."
        )
    if sep:
        if name not in _MODEL_SCORERS or not model.strip():
            raise ConfigError(
                f"{spec!r}: only {' and '.join(_MODEL_SCORERS)} take a model after ':' (e.g. 'clip:tiny'); "
                f"use {name!r} alone"
            )
        if "model" in kwargs:
            raise ConfigError(f"{spec!r} names a model and model={kwargs['model']!r} was also given; keep one")
        kwargs = {**kwargs, "model": model.strip()}
    return SCORERS[name](**kwargs)


__all__ = [
    "GENERIC_WORDS",
    "SCORERS",
    "AlignmentRequest",
    "AlignmentScorer",
    "AnnotationScorer",
    "BaseScorer",
    "CallableScorer",
    "ClipScorer",
    "GuardedScorer",
    "LexicalScorer",
    "checked_scores",
    "clamp_score",
    "guard_blocks",
    "is_generic_label",
    "make_scorer",
]
