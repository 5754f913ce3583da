"""Datasets: the dataset protocol, real-benchmark loaders and safe image I/O.

- :mod:`mapo_env.data.base`: :class:`VQADataset` protocol, :class:`ListDataset`,
  :class:`ProceduralDataset`, :class:`SceneGenerator`;
- :mod:`mapo_env.data.io`: :func:`safe_join`, :func:`read_image`, :func:`decode_image_bytes`,
  :class:`ImageCache`, :func:`cached_image_loader`;
- real benchmarks: :func:`load_vstar` (V* Bench folder layout), :func:`load_hrbench` (HR-Bench
  4K/8K TSV), :func:`load_mme_realworld` (MME-RealWorld(-Lite) JSON + images).

Procedural scene generators live in :mod:`mapo_env.data.procedural` (imported on its own).
"""

from mapo_env.data.base import ListDataset, ProceduralDataset, SceneGenerator, VQADataset
from mapo_env.data.hrbench import load_hrbench
from mapo_env.data.io import (
    DEFAULT_MAX_IMAGE_PIXELS,
    CacheStats,
    ImageCache,
    cached_image_loader,
    decode_base64_image,
    decode_image_bytes,
    default_image_cache,
    probe_image_bytes,
    read_image,
    read_image_size,
    safe_join,
    set_default_image_cache,
)
from mapo_env.data.mme_realworld import load_mme_realworld
from mapo_env.data.vstar import VSTAR_CATEGORIES, load_vstar

__all__ = [
    "DEFAULT_MAX_IMAGE_PIXELS",
    "VSTAR_CATEGORIES",
    "CacheStats",
    "ImageCache",
    "ListDataset",
    "ProceduralDataset",
    "SceneGenerator",
    "VQADataset",
    "cached_image_loader",
    "decode_base64_image",
    "decode_image_bytes",
    "default_image_cache",
    "load_hrbench",
    "load_mme_realworld",
    "load_vstar",
    "probe_image_bytes",
    "read_image",
    "read_image_size",
    "safe_join",
    "set_default_image_cache",
]
