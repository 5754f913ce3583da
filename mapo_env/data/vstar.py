"""Loader for the real V* Bench in its official folder layout (HF dataset ``craigwu/vstar_bench``).

Layout::

    data_dir/
      direct_attributes/<name>.jpg + <name>.json
      relative_position/<name>.jpg + <name>.json

Each JSON holds ``target_object`` (list of names), ``bbox`` (list of ``[x, y, w, h]`` in stored image
pixels, one per boxed target, in the same order), ``question`` and ``options`` (correct option
first, so ``answer_index`` is always 0 here; the environment shuffles options).

Samples are listed with the official loader's rule: the non-``.json`` files of each category
folder that have a ``<stem>.json`` beside them (hidden files are ignored; other files without an
annotation are skipped with a warning). A ``.json`` without its image is an error, so pointing at an
annotation-only folder (such as a copy of the 191 annotation files) fails with a clear message
instead of loading nothing. Order is sorted by category, then file name, and is stable.

Everything is validated at load time and the first problem raises (nothing half-loaded):
annotation encoding and syntax (UTF-8, see :func:`mapo_env.data.io.decode_text`; JSON through
:func:`mapo_env.data.io.parse_json`), annotation keys and types, 4 finite numbers per box with
positive width and height, every box inside its image, 2 to 26 distinct options, and each image's
header (exists, decodable, within ``max_image_pixels``). Pixels are decoded lazily, once, through
:mod:`mapo_env.data.io`'s cache.

``metadata["boxes_complete"]`` says whether every object the question is about has a box. In the
official files ``len(bbox) == len(target_object)`` always holds; what is missing in 6 of the 18 local
(22 of the 76 official) ``relative_position`` samples is the *reference* object (a road, a house, a
crosswalk...), which is named only in the question and listed in neither key. So a
``relative_position`` sample counts as complete only with at least two boxes, and any sample with
fewer boxes than ``target_object`` names is incomplete.
"""

from __future__ import annotations

import functools
import logging
import math
import os
from collections.abc import Iterable, Sequence
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
from mapo_env.errors import CorruptSampleError, DatasetNotFound, close_matches_hint
from mapo_env.types import BBox, ObjectAnnotation, VQASample

logger = logging.getLogger(__name__)

VSTAR_CATEGORIES = ("direct_attributes", "relative_position")
"""The two official category folders, in load order."""

RELATIONAL_CATEGORIES = frozenset({"relative_position"})
"""Categories whose questions always involve two objects (target and reference)."""

_REQUIRED_KEYS = {"target_object": list, "bbox": list, "question": str, "options": list}


def load_vstar(
    data_dir: str | os.PathLike[str],
    categories: Sequence[str] | None = None,
    max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS,
    cache: ImageCache | None = None,
) -> ListDataset:
    """Load V* Bench from its official folder layout.

    Args:
        data_dir: The benchmark folder holding ``direct_attributes/`` and ``relative_position/``, or
            one category folder itself (its name becomes the category).
        categories: Category folders to load (default: every official one present).
        max_image_pixels: Refuse images whose header declares more pixels than this.
        cache: Image cache for the lazy decoders (default: the process-wide one).

    Returns:
        A :class:`ListDataset` named ``"vstar"``; sample ids are file stems (``"sa_4658"``),
        ``targets == objects`` (the boxed target objects, boxes as ``(x1, y1, x2, y2)``),
        ``answer_index == 0``, and ``metadata`` holds ``annotation`` / ``image`` (paths relative to
        ``data_dir``), ``target_object`` (all names) and ``boxes_complete``.

    Raises:
        DatasetNotFound: ``data_dir`` or a requested category is missing, a folder holds no sample,
            or an annotation has no image beside it.
        CorruptSampleError: An annotation or image header is malformed (the message names the file).
        ImageTooLargeError: An image declares more than ``max_image_pixels`` pixels.
        UnsafePathError: A file in the folder is a symlink pointing outside ``data_dir``.
    """
    root = Path(data_dir)
    if not root.is_dir():
        raise DatasetNotFound(
            "V* data_dir is not a folder; expected the benchmark folder with direct_attributes/ and "
            "relative_position/ (HF dataset craigwu/vstar_bench)",
            path=root,
        )
    samples: list[VQASample] = []
    for category, relative in _category_folders(root, categories):
        samples.extend(_load_category(root, category, relative, max_image_pixels, cache))
    if not samples:
        raise DatasetNotFound("no V* sample found (no image with a .json beside it)", path=root)
    return ListDataset("vstar", samples)


def _category_folders(root: Path, categories: Sequence[str] | None) -> list[tuple[str, str]]:
    """``(category, folder relative to root)`` pairs to load, checked against what exists under ``root``."""
    present = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if categories is None:
        found = [(c, c) for c in VSTAR_CATEGORIES if c in present]
        if found:
            return found
        if any(p.suffix == ".json" for p in root.iterdir()):
            return [(root.resolve().name, ".")]  # data_dir is one category folder
        raise DatasetNotFound(
            f"expected the V* category folders {list(VSTAR_CATEGORIES)} in data_dir, found subfolders "
            f"{present}; point data_dir at the benchmark folder",
            path=root,
        )
    if isinstance(categories, str):
        categories = [categories]
    pairs = []
    for category in categories:
        if category not in present:
            raise DatasetNotFound(
                f"category folder {category!r} not found; available: {present}."
                + close_matches_hint(category, present),
                path=root / category,
            )
        safe_join(root, category)  # a category folder symlinked out of data_dir is refused
        pairs.append((category, category))
    return pairs


def _load_category(
    root: Path, category: str, relative: str, max_image_pixels: int, cache: ImageCache | None
) -> list[VQASample]:
    folder = root / relative
    entries = sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))
    jsons = {Path(name).stem: name for name in entries if name.lower().endswith(".json")}
    images: dict[str, str] = {}
    for name in entries:
        if name.lower().endswith(".json"):
            continue
        stem = Path(name).stem
        if stem not in jsons:
            logger.warning("V*: ignoring %s: no %s.json beside it", folder / name, stem)
            continue
        if stem in images:
            raise CorruptSampleError(f"two files share the stem {stem!r}: {images[stem]!r} and {name!r}", folder)
        images[stem] = name
    _check_orphans(folder, jsons, images)
    return [
        _load_sample(
            root, category, f"{relative}/{jsons[stem]}", f"{relative}/{images[stem]}", max_image_pixels, cache
        )
        for stem in sorted(images)
    ]


def _check_orphans(folder: Path, jsons: dict[str, str], images: dict[str, str]) -> None:
    orphans = sorted(set(jsons) - set(images))
    if not orphans:
        return
    if not images:
        raise DatasetNotFound(
            f"folder holds {len(jsons)} annotation file(s) but no image beside any of them; an "
            "annotation-only copy (e.g. the 191 official .json files) cannot be loaded, point data_dir "
            "at the folder with <name>.jpg + <name>.json pairs",
            path=folder,
        )
    raise DatasetNotFound(
        f"annotation {jsons[orphans[0]]!r} has no image beside it (expected {orphans[0]}.jpg); "
        f"{len(orphans)} annotation(s) lack their image in this folder",
        path=folder / f"{orphans[0]}.jpg",
    )


def _load_sample(
    root: Path, category: str, json_name: str, image_name: str, max_image_pixels: int, cache: ImageCache | None
) -> VQASample:
    json_path = safe_join(root, json_name)
    image_path = safe_join(root, image_name)
    record = _read_annotation(json_path)
    width, height = read_image_size(image_path, max_image_pixels)
    boxes = [_to_xyxy(box, i, (width, height), json_path) for i, box in enumerate(record["bbox"])]
    names = record["target_object"]
    targets = tuple(ObjectAnnotation(name=n, bbox=b) for n, b in zip(names, boxes))
    expected = max(len(names), 2 if category in RELATIONAL_CATEGORIES else 1)
    decode = functools.partial(read_image, image_path, max_image_pixels=max_image_pixels)
    return VQASample(
        sample_id=Path(image_name).stem,
        question=record["question"],
        options=tuple(record["options"]),
        answer_index=0,
        category=category,
        load_image=cached_image_loader(file_cache_key(image_path), decode, cache),
        image_size=(width, height),
        targets=targets,
        objects=targets,
        metadata={
            "annotation": os.path.normpath(json_name),
            "image": os.path.normpath(image_name),
            "target_object": tuple(names),
            "boxes_complete": len(boxes) >= expected,
        },
    )


def _read_annotation(path: Path) -> dict[str, Any]:
    """Parse and validate one V* annotation file (see the module docstring for the rules)."""
    record = parse_json(read_text(path), path)
    if not isinstance(record, dict):
        raise CorruptSampleError(f"expected a JSON object, got {type(record).__name__}", path=path)
    for key, kind in _REQUIRED_KEYS.items():
        if key not in record:
            raise CorruptSampleError(
                f"annotation misses the key {key!r}; expected keys {sorted(_REQUIRED_KEYS)}, got {sorted(record)}",
                path=path,
            )
        if not isinstance(record[key], kind):
            raise CorruptSampleError(
                f"{key!r} must be a {kind.__name__}, got {type(record[key]).__name__}: {record[key]!r}", path=path
            )
    _check_strings(record["target_object"], "target_object", path, minimum=1)
    _check_strings(record["options"], "options", path, minimum=2, maximum=MAX_OPTIONS)
    if len(set(record["options"])) != len(record["options"]):
        raise CorruptSampleError(f"'options' has duplicates: {record['options']!r}", path=path)
    if not record["question"].strip():
        raise CorruptSampleError("'question' is empty", path=path)
    if len(record["bbox"]) > len(record["target_object"]):
        raise CorruptSampleError(
            f"{len(record['bbox'])} boxes for {len(record['target_object'])} target_object names; "
            "expected at most one box per name",
            path=path,
        )
    return record


def _check_strings(values: Iterable[Any], key: str, path: Path, minimum: int, maximum: int | None = None) -> None:
    values = list(values)
    too_many = maximum is not None and len(values) > maximum
    if too_many or len(values) < minimum or not all(isinstance(v, str) and v.strip() for v in values):
        most = f" and at most {maximum}" if maximum is not None else ""
        raise CorruptSampleError(
            f"{key!r} must list at least {minimum}{most} non-empty string(s), got {len(values)}: {values!r:.200}",
            path=path,
        )


def _to_xyxy(box: Any, index: int, size: tuple[int, int], path: Path) -> BBox:
    """``[x, y, w, h]`` -> ``(x1, y1, x2, y2)``, checked to lie inside the ``size = (W, H)`` image."""
    numeric = isinstance(box, list) and len(box) == 4
    numeric = numeric and all(isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in box)
    if not numeric:
        raise CorruptSampleError(f"bbox[{index}] must be 4 finite numbers [x, y, w, h], got {box!r}", path=path)
    x, y, w, h = box
    width, height = size
    if w <= 0 or h <= 0 or x < 0 or y < 0 or x + w > width or y + h > height:
        raise CorruptSampleError(
            f"bbox[{index}] = [x, y, w, h] = {box!r} is empty or not inside the {width}x{height} image "
            "(expected 0 <= x, 0 <= y, w > 0, h > 0, x + w <= W, y + h <= H)",
            path=path,
        )
    return (float(x), float(y), float(x + w), float(y + h))
