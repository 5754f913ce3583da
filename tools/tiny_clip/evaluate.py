"""Held-out truthful-vs-wrong accuracy of a scorer on the procedural environments' scenes.

Two protocols, both on crops of scenes of the ``"test"`` split (never trained on):

- :func:`same_scene_accuracy`: the target's caption against the caption of another object of the same
  scene that the crop does not show (:func:`tools.tiny_clip.data.truthful_vs_wrong_pairs`; what
  ``tests/env/alignment/test_procedural_scenes.py`` checks).
- :func:`attribute_swap_accuracy`: the target's caption against the same caption with one attribute
  changed (colour; kind for objects; pattern for tiles), the hardest wrong labels.

A pair counts as a win when the truthful text scores strictly higher (ties are failures).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mapo_env.alignment.base import AlignmentRequest
from tools.tiny_clip.data import COLORS, PATTERNS, Subject, subject_caption, truthful_vs_wrong_pairs

Pairs = list[tuple[AlignmentRequest, AlignmentRequest]]


def heldout_pairs(family: str, n: int, split: str = "test", seed: int = 5) -> Pairs:
    """The pairs of ``n`` held-out scenes (see :func:`tools.tiny_clip.data.truthful_vs_wrong_pairs`)."""
    return truthful_vs_wrong_pairs(family, n, split=split, seed=seed)


def same_scene_accuracy(scorer: Any, pairs: Pairs) -> float:
    """Fraction of ``pairs`` where the truthful caption outscores the other object's caption."""
    scores = scorer.score_batch([r for pair in pairs for r in pair])
    return float(np.mean([scores[2 * k] > scores[2 * k + 1] for k in range(len(pairs))]))


def attribute_swaps(subject: Subject, rng: np.random.Generator) -> dict[str, Subject]:
    """One wrong subject per attribute the subject has: ``color``, and ``kind`` or ``pattern``."""
    from mapo_env.data.procedural.sprites import SPRITE_KINDS
    from tools.tiny_clip.data import BOARD_KINDS, _other

    out = {"color": Subject(_other(rng, COLORS, subject.color), subject.kind, subject.pattern, subject.text)}
    if subject.pattern:
        out["pattern"] = Subject(subject.color, subject.kind, _other(rng, PATTERNS, subject.pattern), subject.text)
    else:
        kinds = SPRITE_KINDS if subject.kind in SPRITE_KINDS else BOARD_KINDS
        out["kind"] = Subject(subject.color, _other(rng, kinds, subject.kind), "", subject.text)
    return out


def attribute_swap_accuracy(scorer: Any, pairs: Pairs, seed: int = 6) -> dict[str, float]:
    """Per swapped attribute, the fraction of ``pairs`` whose truthful caption outscores the swapped one.

    Returns:
        ``{"color": acc, "kind" or "pattern": acc}``.
    """
    rng = np.random.default_rng(seed)
    requests: list[AlignmentRequest] = []
    index: list[tuple[str, int]] = []
    for truthful, _ in pairs:
        target = next(obj for obj, _ in truthful.objects_in_crop if obj.caption() == truthful.text)
        base = len(requests)
        requests.append(truthful)
        for attribute, wrong in attribute_swaps(Subject.of(target), rng).items():
            requests.append(AlignmentRequest(subject_caption(wrong)[0], truthful.crop, truthful.crop_box))
            index.append((attribute, base))
    scores = scorer.score_batch(requests)
    wins: dict[str, list[bool]] = {}
    for k, (attribute, base) in enumerate(index):
        wins.setdefault(attribute, []).append(scores[base] > scores[base + 1 + _offset(index, k)])
    return {attribute: float(np.mean(v)) for attribute, v in wins.items()}


def _offset(index: list[tuple[str, int]], k: int) -> int:
    """Position of swap ``k`` among the swaps of its crop."""
    base = index[k][1]
    return sum(1 for j in range(k) if index[j][1] == base)
