"""Cluttered photographic backgrounds built from scikit-image's bundled sample images.

A background is a collage made at a reduced "work" resolution, then upscaled to the full size with
OpenCV (so an 8K background costs about as much as a 2K one): one photograph covers the canvas,
then rectangular and elliptical patches cut from other photographs and textures are laid over it,
each resized, colour-jittered (greyscale textures are tinted), plus mild noise.

Sources (all bundled with scikit-image, no download; licences in ``envs_data/procedural/README.md``):
photographs ``astronaut``, ``coffee``, ``chelsea``, ``rocket``, ``camera`` and textures ``brick``,
``grass``, ``gravel`` (the names are listed in the vocabulary's ``backgrounds`` section).
"""

from __future__ import annotations

import functools

import cv2
import numpy as np

from mapo_env.data.procedural.vocabulary import load_vocabulary
from mapo_env.errors import ConfigError, DependencyNotInstalled


@functools.lru_cache(maxsize=1)
def source_images() -> tuple[tuple[str, np.ndarray, bool], ...]:
    """The sample images as ``(name, RGB uint8 array, is_texture)``, loaded once and cached.

    Raises:
        DependencyNotInstalled: scikit-image is missing or lacks a bundled image.
    """
    try:
        import skimage.data
    except ImportError as e:  # pragma: no cover - scikit-image is a core dependency
        raise DependencyNotInstalled("procedural backgrounds need scikit-image: pip install scikit-image") from e
    names = load_vocabulary()["backgrounds"]
    out = []
    for name, is_texture in [(n, False) for n in names["photos"]] + [(n, True) for n in names["textures"]]:
        loader = getattr(skimage.data, name, None)
        if loader is None:
            raise DependencyNotInstalled(
                f"scikit-image has no bundled image {name!r}; upgrade it: pip install -U scikit-image"
            )
        img = np.asarray(loader())
        if img.ndim == 2:
            img = np.repeat(img[:, :, None], 3, axis=2)
        img = np.ascontiguousarray(img[:, :, :3].astype(np.uint8))
        img.flags.writeable = False
        out.append((name, img, is_texture))
    return tuple(out)


def log_uniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    """A sample of ``exp(U(log lo, log hi))``."""
    return float(np.exp(rng.uniform(np.log(lo), np.log(hi))))


def _random_crop(rng: np.random.Generator, img: np.ndarray, aspect: float) -> np.ndarray:
    """A random crop of ``img`` with width / height = ``aspect``, at least half the image's size."""
    h, w = img.shape[:2]
    scale = rng.uniform(0.5, 1.0)
    cw = min(w, max(8, int(round(min(w, h * aspect) * scale))))
    ch = min(h, max(8, int(round(cw / aspect))))
    x = int(rng.integers(0, w - cw + 1))
    y = int(rng.integers(0, h - ch + 1))
    return img[y : y + ch, x : x + cw]


def _jitter(rng: np.random.Generator, img: np.ndarray, is_texture: bool) -> np.ndarray:
    """Per-channel gain and offset (textures get a random tint), as float32."""
    out = img.astype(np.float32)
    if is_texture:
        tint = rng.uniform(0.35, 1.0, size=3).astype(np.float32)
        out = out * tint
    gain = rng.uniform(0.75, 1.2, size=3).astype(np.float32)
    offset = rng.uniform(-25.0, 25.0, size=3).astype(np.float32)
    if rng.random() < 0.5:
        out = out[:, ::-1]
    return out * gain + offset


def _lay_patch(rng: np.random.Generator, canvas: np.ndarray, patch: np.ndarray, elliptic: bool) -> None:
    """Paste ``patch`` (float32) at a random place of ``canvas`` (float32), clipped to the canvas."""
    H, W = canvas.shape[:2]
    ph, pw = patch.shape[:2]
    x = int(rng.integers(-pw // 4, W - 3 * pw // 4 + 1))
    y = int(rng.integers(-ph // 4, H - 3 * ph // 4 + 1))
    x1, y1, x2, y2 = max(0, x), max(0, y), min(W, x + pw), min(H, y + ph)
    if x2 <= x1 or y2 <= y1:
        return
    piece = patch[y1 - y : y2 - y, x1 - x : x2 - x]
    if not elliptic:
        canvas[y1:y2, x1:x2] = piece
        return
    yy, xx = np.ogrid[y1 - y : y2 - y, x1 - x : x2 - x]
    inside = ((xx - pw / 2) / (pw / 2)) ** 2 + ((yy - ph / 2) / (ph / 2)) ** 2 <= 1.0
    canvas[y1:y2, x1:x2][inside] = piece[inside]


def cluttered_background(
    rng: np.random.Generator,
    size: tuple[int, int],
    work_scale: float = 0.5,
    num_patches: tuple[int, int] = (6, 14),
    noise_std: float = 4.0,
) -> np.ndarray:
    """A cluttered photographic background of ``size = (width, height)``.

    Args:
        rng: The only source of randomness.
        size: Output ``(width, height)`` in pixels.
        work_scale: The collage is built at ``size * work_scale`` and upscaled (1.0 = full size).
        num_patches: Inclusive range of the number of patches laid over the base photograph.
        noise_std: Standard deviation of the Gaussian noise added at work resolution.

    Returns:
        ``np.uint8`` array (height, width, 3), RGB, writable.

    Raises:
        ConfigError: A size, scale or range is out of bounds.
    """
    width, height = int(size[0]), int(size[1])
    if width < 16 or height < 16:
        raise ConfigError(f"background size must be at least 16x16 pixels, got {width}x{height}")
    if not 0.0 < work_scale <= 1.0:
        raise ConfigError(f"work_scale must be in (0, 1], got {work_scale}")
    lo, hi = int(num_patches[0]), int(num_patches[1])
    if not 0 <= lo <= hi:
        raise ConfigError(f"num_patches must be an inclusive range (lo <= hi, lo >= 0), got {num_patches}")
    ww, wh = max(16, round(width * work_scale)), max(16, round(height * work_scale))
    sources = source_images()
    photos = [s for s in sources if not s[2]]
    _, base, _ = photos[int(rng.integers(len(photos)))]
    base = _random_crop(rng, base, ww / wh)
    canvas = _jitter(rng, cv2.resize(base, (ww, wh), interpolation=cv2.INTER_LINEAR), is_texture=False)
    canvas = np.ascontiguousarray(canvas)
    for _ in range(int(rng.integers(lo, hi + 1))):
        _, src, is_texture = sources[int(rng.integers(len(sources)))]
        pw = max(8, int(ww * log_uniform(rng, 0.05, 0.45)))
        ph = max(8, int(pw * rng.uniform(0.5, 1.6)))
        piece = cv2.resize(_random_crop(rng, src, pw / ph), (pw, ph), interpolation=cv2.INTER_LINEAR)
        _lay_patch(rng, canvas, _jitter(rng, piece, is_texture), elliptic=bool(rng.random() < 0.4))
    if noise_std > 0:
        canvas += rng.normal(0.0, noise_std, size=(wh, ww, 1)).astype(np.float32)
    small = np.clip(canvas, 0, 255).astype(np.uint8)
    if (ww, wh) == (width, height):
        return small
    return cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR)
