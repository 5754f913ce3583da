"""``"lexical"``: word overlap between the description and the reference caption (no dependency).

A PRIVILEGED ORACLE, not the paper's verifier: it never looks at the crop's pixels, it reads the
ground-truth annotations of the objects inside the crop (``needs_annotations = True``). Useful for
ablations (exact and free on the procedural scenes); the environments refuse it on data without
object boxes. The default scorer looks at the crop: ``"clip"`` (:mod:`mapo_env.alignment.clip`).

Formula (``LexicalScorer``): let ``R`` be the set of content words of the reference caption
(:meth:`AlignmentRequest.reference_caption`, e.g. ``"red striped tile"`` -> ``{red, striped, tile}``)
and ``D`` the set of content words of the description, both normalised by
:func:`~mapo_env.alignment.text.content_words` (case, punctuation, stop words, plural endings,
colour and pattern synonyms). Generic words (``crop``, ``image``, ``object``...) that the reference
does not use are dropped from ``D``, so ``"the crop shows a red tile"`` reads as ``{red, tile}``.
Then, with ``m = |D ∩ R|``::

    precision = m / |D|,   recall = m / |R|,   score = 2 · precision · recall / (precision + recall)

(the F1 of the word sets; 0 when ``m = 0``). Precision stops a description from listing every colour
to hit the reference; recall rewards naming the attributes as well as the object. Examples with
reference ``"red striped tile"``: ``"red striped tile"`` -> 1.0, ``"red tile"`` -> 0.8,
``"blue tile"`` -> 0.4, ``"umbrella"`` -> 0.0. An empty reference (nothing annotated visible enough
in the crop) scores 0.0. Negation is not understood (``"not red"`` contains ``red``).
"""

from __future__ import annotations

from mapo_env.alignment.common import BaseScorer, ScoringItem
from mapo_env.alignment.text import GENERIC_WORDS, content_words


def word_f1(description: str, reference: str) -> float:
    """F1 of the content-word sets of ``description`` and ``reference`` (see the module docstring)."""
    ref = set(content_words(reference))
    if not ref:
        return 0.0
    desc = {w for w in content_words(description) if w in ref or w not in GENERIC_WORDS}
    matched = len(desc & ref)
    if matched == 0:
        return 0.0
    precision = matched / len(desc)
    recall = matched / len(ref)
    return 2.0 * precision * recall / (precision + recall)


class LexicalScorer(BaseScorer):
    """Scores a description by the F1 of its words against the reference caption; no model needed.

    A privileged oracle: reads the ground-truth annotations, not the crop (see the module docstring).

    Args:
        generic_guard: Score 0 for generic descriptions (default on; see :class:`BaseScorer`).
        **kwargs: Other :class:`~mapo_env.alignment.common.BaseScorer` options (``min_visible``,
            ``max_objects``, ``max_text_chars``).

    Example:
        >>> import numpy as np
        >>> from mapo_env.alignment.base import AlignmentRequest
        >>> from mapo_env.types import ObjectAnnotation
        >>> tile = ObjectAnnotation("tile", (0, 0, 10, 10), {"color": "red", "pattern": "striped"})
        >>> req = AlignmentRequest("a red tile", np.zeros((8, 8, 3), np.uint8), (0, 0, 10, 10), ((tile, 1.0),))
        >>> LexicalScorer().score(req)
        0.8
    """

    name = "lexical"
    needs_annotations = True

    def __init__(self, *, generic_guard: bool = True, **kwargs) -> None:
        super().__init__(generic_guard=generic_guard, **kwargs)

    def _score(self, items: list[ScoringItem]) -> list[float]:
        return [word_f1(it.text, it.reference) for it in items]

    def __repr__(self) -> str:
        return f"LexicalScorer(generic_guard={self.generic_guard})"
