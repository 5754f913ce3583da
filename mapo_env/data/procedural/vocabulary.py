"""The generators' vocabularies (object kinds, colour names, words), read from ``envs_data``.

The file is ``envs_data/procedural/vocabulary.json``; it ships inside the wheel as the package
``mapo_env.envs_data``. From a source checkout whose editable install predates that mapping, the
file is read from the checkout's ``envs_data/`` folder instead.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

from mapo_env.errors import CorruptSampleError, DatasetNotFound

VOCABULARY_FILE = "procedural/vocabulary.json"
"""Path of the vocabulary inside ``mapo_env.envs_data``."""

_REQUIRED_KEYS = ("colors", "detail_rgb", "objects", "backgrounds", "tiles", "text")

RGB = tuple[int, int, int]


def _read_text() -> tuple[str, str]:
    """Return ``(json_text, where)``: the packaged file, or the source checkout's copy."""
    import importlib.resources

    try:
        resource = importlib.resources.files("mapo_env.envs_data").joinpath(VOCABULARY_FILE)
        return resource.read_text(encoding="utf-8"), str(resource)
    except (ModuleNotFoundError, FileNotFoundError):
        pass
    fallback = Path(__file__).resolve().parents[3] / "envs_data" / VOCABULARY_FILE
    if not fallback.is_file():
        raise DatasetNotFound(
            f"the procedural vocabulary {VOCABULARY_FILE!r} was found neither in the package "
            "'mapo_env.envs_data' nor in the source checkout; reinstall the project "
            "(pip install -e .) so that envs_data/ ships with it",
            path=fallback,
        )
    return fallback.read_text(encoding="utf-8"), str(fallback)


@functools.lru_cache(maxsize=1)
def load_vocabulary() -> dict[str, Any]:
    """The parsed vocabulary (cached; treat it as read-only).

    Returns:
        The JSON object with the keys ``colors`` (name -> RGB), ``detail_rgb``, ``objects``
        (kind -> ``{"plural", "aspect"}``), ``backgrounds``, ``tiles`` and ``text``.

    Raises:
        DatasetNotFound: The file is not installed.
        CorruptSampleError: The file is not valid JSON or misses a section.
    """
    text, where = _read_text()
    try:
        vocab = json.loads(text)
    except json.JSONDecodeError as e:
        raise CorruptSampleError(f"the procedural vocabulary is not valid JSON: {e}", path=where) from e
    missing = [key for key in _REQUIRED_KEYS if key not in vocab]
    if missing:
        raise CorruptSampleError(
            f"the procedural vocabulary lacks the sections {missing}; expected all of {list(_REQUIRED_KEYS)}",
            path=where,
        )
    return vocab


def color_rgb(name: str) -> RGB:
    """RGB of a named object colour (``"red"`` -> ``(215, 30, 35)``).

    Raises:
        KeyError: ``name`` is not in the vocabulary's ``colors``.
    """
    r, g, b = load_vocabulary()["colors"][name]
    return int(r), int(g), int(b)


def color_names() -> tuple[str, ...]:
    """The object colour names, in the vocabulary's order."""
    return tuple(load_vocabulary()["colors"])


def object_kinds() -> tuple[str, ...]:
    """The drawable object kinds, in the vocabulary's order."""
    return tuple(load_vocabulary()["objects"])


def plural(kind: str) -> str:
    """Plural of an object kind (``"umbrella"`` -> ``"umbrellas"``)."""
    return str(load_vocabulary()["objects"][kind]["plural"])


def aspect_ratio(kind: str) -> float:
    """Nominal width / height of an object kind's drawing."""
    return float(load_vocabulary()["objects"][kind]["aspect"])
