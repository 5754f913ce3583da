"""Loader for MME-RealWorld and MME-RealWorld-Lite (HF datasets ``yifanzhang114/MME-RealWorld[-Lite]``).

Format (read from the benchmark's own files: ``evaluation/output_test_template.json`` and
``evaluation/model_vqa_mme_real_world.py`` in the GitHub repository ``yfzhang114/MME-RealWorld``,
and the Lite ``data.zip`` layout as used by third-party evaluation scripts): one JSON file holding a
list of objects, e.g. ::

    {"Question_id": "perception/ocr_cc/book_map_poster/0913",
     "Image": "TRAIN_BICUBIC_HQ_50K_14456.png",
     "Text": "What dish does the Chinese chart correspond to in this picture?",
     "Question Type": "Multiple Choice",
     "Answer choices": ["(A) Nutty Sate Ribs", "(B) ...", "(C) ...", "(D) ...",
                        "(E) The image does not feature the content."],
     "Ground truth": "B",
     "Category": "book_map_poster", "Subtask": "OCR with Complex Context", "Task": "Perception"}

``Image`` is relative to the image folder: the full benchmark (``MME_RealWorld.json``) uses paths
such as ``"AutonomousDriving/nuScenes/n008-....jpg"`` below the folder of extracted images; the Lite
``data.zip`` unpacks to ``data/MME-RealWorld-Lite.json`` + ``data/imgs/<file name>``. So the default
``image_root`` is the JSON's folder, or its ``imgs/`` subfolder when there is one. Some entries also
carry ``Dataset``; the key ``Question Type`` is sometimes spelled ``Question type``.

Mapping: ``sample_id = Question_id``, ``question = Text``, options are the choices without their
``"(A) "`` prefixes (letters must run A, B, C... in order), ``answer_index`` from ``Ground truth`` (a
letter; ``"(B)"``, the option's text or ``"(B) <option text>"`` are accepted too),
``category = Subtask`` (per-category reports follow the benchmark's subtasks), and ``metadata``
keeps ``task``, ``mme_category``, ``dataset``, ``option_letters``, ``image`` and ``entry``. No
boxes: ``targets=()``.

Every entry is validated at load time and the first bad one raises
:class:`~mapo_env.errors.CorruptSampleError` (path and entry number). Image paths go through
:func:`~mapo_env.data.io.safe_join`, each distinct image's header is read once at load time, and
pixels are decoded lazily through the cache.
"""

from __future__ import annotations

import functools
import logging
import os
import re
import string
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mapo_env.answers import MAX_OPTIONS
from mapo_env.data.base import ListDataset
from mapo_env.data.io import (
    DEFAULT_MAX_IMAGE_PIXELS,
    ImageCache,
    cached_image_loader,
    file_cache_key,
    parse_json,
    read_image,
    read_image_size,
    read_text,
    safe_join,
)
from mapo_env.errors import CorruptSampleError, DatasetNotFound
from mapo_env.types import VQASample

logger = logging.getLogger(__name__)

_Bad = Callable[[str], CorruptSampleError]

MME_JSON_NAMES = ("MME-RealWorld-Lite.json", "MME_RealWorld.json", "MME_RealWorld_CN.json", "MME-RealWorld.json")
"""Annotation file names looked for when ``path`` is a folder, in this order."""

REQUIRED_KEYS = ("Question_id", "Image", "Text", "Answer choices", "Ground truth", "Subtask")
"""Keys every entry must have (``Task``, ``Category``, ``Dataset`` are kept when present)."""

_CHOICE = re.compile(r"^\s*\(([A-Z])\)\s?(.*)$", re.DOTALL)


def load_mme_realworld(
    path: str | os.PathLike[str],
    image_root: str | os.PathLike[str] | None = None,
    max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS,
    cache: ImageCache | None = None,
) -> ListDataset:
    """Load MME-RealWorld(-Lite) from its JSON annotation file and image folder.

    Args:
        path: The JSON file (a list of entries; ``.jsonl`` with one entry per line also works), or a
            folder holding one of :data:`MME_JSON_NAMES`.
        image_root: Folder that ``Image`` paths are relative to. Default: the JSON's folder, or its
            ``imgs/`` subfolder when present (the Lite ``data.zip`` layout).
        max_image_pixels: Refuse images whose header declares more pixels than this.
        cache: Image cache for the lazy decoders (default: the process-wide one).

    Returns:
        A :class:`ListDataset` named after the JSON's stem, entries in file order.

    Raises:
        DatasetNotFound: The JSON, the image folder or an image is missing, or the file holds no entry.
        CorruptSampleError: The JSON or an entry is malformed, or an image header is unreadable.
        ImageTooLargeError: An image declares more than ``max_image_pixels`` pixels.
        UnsafePathError: An ``Image`` path escapes ``image_root``.
    """
    json_path = _resolve_json(Path(path))
    root = Path(image_root) if image_root is not None else _default_image_root(json_path)
    if not root.is_dir():
        raise DatasetNotFound("MME-RealWorld image folder not found; pass image_root=", path=root)
    entries = _read_entries(json_path)
    if not entries:
        raise DatasetNotFound("MME-RealWorld annotation file holds no entry", path=json_path)
    sizes: dict[Path, tuple[int, int]] = {}
    samples = [_to_sample(e, n, json_path, root, sizes, max_image_pixels, cache) for n, e in enumerate(entries, 1)]
    _warn_duplicate_ids(samples, json_path)
    return ListDataset(json_path.stem, samples)


def _resolve_json(path: Path) -> Path:
    if path.is_dir():
        for name in MME_JSON_NAMES:
            if (path / name).is_file():
                return path / name
        raise DatasetNotFound(
            f"no MME-RealWorld annotation file in the folder; expected one of {list(MME_JSON_NAMES)}, found "
            f"{sorted(p.name for p in path.glob('*.json*'))}; pass the JSON file itself",
            path=path,
        )
    if not path.is_file():
        raise DatasetNotFound("MME-RealWorld annotation JSON not found", path=path)
    return path


def _default_image_root(json_path: Path) -> Path:
    imgs = json_path.parent / "imgs"
    return imgs if imgs.is_dir() else json_path.parent


def _read_entries(json_path: Path) -> list[Any]:
    text = read_text(json_path)
    if json_path.suffix.lower() == ".jsonl":
        return [
            parse_json(line, f"{json_path} (line {number})")
            for number, line in enumerate(text.splitlines(), 1)
            if line.strip()
        ]
    data = parse_json(text, json_path)
    if not isinstance(data, list):
        raise CorruptSampleError(
            f"expected a JSON list of entries, got {type(data).__name__}; pass MME_RealWorld.json or "
            "MME-RealWorld-Lite.json",
            path=json_path,
        )
    return data


def _to_sample(
    entry: Any,
    number: int,
    json_path: Path,
    root: Path,
    sizes: dict[Path, tuple[int, int]],
    max_image_pixels: int,
    cache: ImageCache | None,
) -> VQASample:
    """Validate entry ``number`` (1-based) and build its sample; ``sizes`` memoises image headers."""

    def bad(message: str) -> CorruptSampleError:
        return CorruptSampleError(f"entry {number}: {message}", path=json_path)

    _check_keys(entry, bad)
    letters, options = _split_choices(entry["Answer choices"], bad)
    answer_index = _answer_index(entry["Ground truth"], letters, options, bad)
    image_path = safe_join(root, entry["Image"])
    if image_path not in sizes:
        sizes[image_path] = read_image_size(image_path, max_image_pixels)
    decode = functools.partial(read_image, image_path, max_image_pixels=max_image_pixels)
    metadata = {"option_letters": letters, "image": entry["Image"], "entry": number}
    for key, name in (("Task", "task"), ("Category", "mme_category"), ("Dataset", "dataset")):
        if isinstance(entry.get(key), str):
            metadata[name] = entry[key]
    return VQASample(
        sample_id=str(entry["Question_id"]),
        question=entry["Text"].strip(),
        options=options,
        answer_index=answer_index,
        category=entry["Subtask"].strip(),
        load_image=cached_image_loader(file_cache_key(image_path), decode, cache),
        image_size=sizes[image_path],
        metadata=metadata,
    )


def _check_keys(entry: Any, bad: _Bad) -> None:
    if not isinstance(entry, dict):
        raise bad(f"expected a JSON object, got {type(entry).__name__}")
    missing = [k for k in REQUIRED_KEYS if k not in entry]
    if missing:
        raise bad(f"missing key(s) {missing}; expected {list(REQUIRED_KEYS)}, got {sorted(entry)}")
    if not isinstance(entry["Question_id"], str | int) or isinstance(entry["Question_id"], bool):
        raise bad(f"'Question_id' must be a string or an integer, got {entry['Question_id']!r}")
    for key in ("Image", "Text", "Subtask"):
        if not isinstance(entry[key], str) or not entry[key].strip():
            raise bad(f"{key!r} must be a non-empty string, got {entry[key]!r}")
    choices = entry["Answer choices"]
    if (
        not isinstance(choices, list)
        or not 2 <= len(choices) <= MAX_OPTIONS
        or not all(isinstance(c, str) for c in choices)
    ):
        count = f"{len(choices)} " if isinstance(choices, list) else ""
        raise bad(f"'Answer choices' must be a list of 2 to {MAX_OPTIONS} strings, got {count}{choices!r:.200}")


def _split_choices(choices: list[str], bad: _Bad) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """``["(A) x", "(B) y"]`` -> ``(("A", "B"), ("x", "y"))``; unprefixed choices get positional letters."""
    matches = [_CHOICE.match(c) for c in choices]
    if all(m is None for m in matches):
        letters = tuple(string.ascii_uppercase[: len(choices)])
        options = tuple(c.strip() for c in choices)
    elif any(m is None for m in matches):
        raise bad(f"'Answer choices' mix '(A) ...' prefixed and unprefixed options: {choices!r}")
    else:
        letters = tuple(m.group(1) for m in matches)  # type: ignore[union-attr]
        options = tuple(m.group(2).strip() for m in matches)  # type: ignore[union-attr]
        if letters != tuple(string.ascii_uppercase[: len(choices)]):
            raise bad(f"'Answer choices' letters must run A, B, C... in order, got {list(letters)}")
    if not all(options):
        raise bad(f"'Answer choices' has an empty option: {choices!r}")
    return letters, options


def _answer_index(truth: Any, letters: tuple[str, ...], options: tuple[str, ...], bad: _Bad) -> int:
    """Index of the correct option from ``Ground truth``: ``B``, ``(B)``, the option text, or ``(B) <option text>``."""
    text = truth.strip() if isinstance(truth, str) else ""
    letter = text[1:-1] if text.startswith("(") and text.endswith(")") else text
    if letter in letters:
        return letters.index(letter)
    if text in options:
        return options.index(text)
    match = _CHOICE.match(text)
    if match and match.group(1) in letters and match.group(2).strip() == options[letters.index(match.group(1))]:
        return letters.index(match.group(1))
    raise bad(f"'Ground truth' must be one of the option letters {list(letters)}, got {truth!r}")


def _warn_duplicate_ids(samples: list[VQASample], json_path: Path) -> None:
    seen: set[str] = set()
    duplicates = {s.sample_id for s in samples if s.sample_id in seen or seen.add(s.sample_id)}
    if duplicates:
        logger.warning(
            "%s: %d Question_id value(s) appear more than once (e.g. %r); sample ids are not unique",
            json_path,
            len(duplicates),
            sorted(duplicates)[0],
        )
