"""Image corruptions graded by severity (1-5), in the style of ImageNet-C, split into *seen* and *unseen*.

What a multimodal agent sees in deployment is rarely a clean render: photos are blurred, noisy,
compressed, scanned at low resolution. This module degrades an RGB ``uint8`` image with one named
corruption at one of five severities, using only NumPy, Pillow and OpenCV (no torch). It is used by
the :class:`~mapo_env.wrappers.VisualCorruption` wrapper (what the agent sees inside an environment)
and by training code that needs corrupted copies of an image outside an environment
(:func:`corrupt`).

## The corruptions

=================  =======  ===================================================================
name               split    what it does (severity 1 ... 5)
=================  =======  ===================================================================
gaussian_noise     seen     additive Gaussian noise, std 0.08 ... 0.38 (of the 0-1 range)
gaussian_blur      seen     Gaussian blur, sigma 1 ... 6 px at 224 px
jpeg               seen     JPEG re-encoding, quality 25, 18, 15, 10, 7
low_resolution     seen     area downsample by 2, 3, 4, 6, 8, bilinear upsample back
contrast           seen     pull every pixel towards the mean, keeping 0.4 ... 0.05 of the contrast
motion_blur        unseen   a line blur at a random angle, radius 10 ... 20 px at 224 px
defocus_blur       unseen   a disk (lens) blur, radius 3 ... 10 px at 224 px
pixelate           unseen   blocks of 1/0.6 ... 1/0.25 px filled with their mean (random grid phase)
salt_and_pepper    unseen   a fraction 0.03 ... 0.27 of the values set to 0 or 255
brightness         unseen   HSV value raised by 0.1 ... 0.5
fog                unseen   a random plasma-fractal haze of strength 1.5 ... 3
=================  =======  ===================================================================

The parameters are ImageNet-C's (Hendrycks & Dietterich, "Benchmarking Neural Network Robustness
to Common Corruptions and Perturbations", ICLR 2019; ``low_resolution`` and ``salt_and_pepper`` follow
its ``pixelate`` and ``impulse_noise``). ImageNet-C calibrated its spatial parameters for 224 x 224
images; here every spatial size (blur sigma and radius) is multiplied by ``min(height, width) / 224``
and the resolution corruptions are ratios, so one severity removes the same share of detail from a
1000-pixel full view as from a 448-pixel crop. The per-pixel ones (noise, JPEG, contrast, brightness,
salt-and-pepper) do not depend on the size.

The *seen* set (:data:`SEEN_CORRUPTIONS`) is the one training code may use (ROMA's corrupted views,
augmentation); the *unseen* set (:data:`UNSEEN_CORRUPTIONS`) is kept for evaluation only, to measure
whether robustness carries over to degradations the model never met. Each unseen corruption has a
seen relative (motion and defocus blur / Gaussian blur, pixelate / low resolution, salt-and-pepper /
Gaussian noise, brightness and fog / contrast), as in ROMA's seen-vs-unseen protocol.

## Randomness

Every random draw (noise, the motion-blur angle, the fog map) comes from the ``rng`` passed to
:func:`corrupt`: the same image, name, severity and seed give identical pixels. The deterministic
corruptions (blurs other than motion blur, JPEG, resolution, contrast, brightness) ignore it.

Example:
    >>> import numpy as np
    >>> from mapo_env.corruptions import corrupt, SEEN_CORRUPTIONS
    >>> image = np.full((64, 64, 3), 128, dtype=np.uint8)
    >>> noisy = corrupt(image, "gaussian_noise", 3, rng=0)
    >>> noisy.shape, noisy.dtype, bool((noisy != image).any())
    ((64, 64, 3), dtype('uint8'), True)
    >>> "jpeg" in SEEN_CORRUPTIONS
    True
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Literal

import cv2
import numpy as np
from PIL import Image

from mapo_env.errors import ConfigError, UnknownNameError, close_matches_hint
from mapo_env.validation import describe, is_int

SEVERITIES: tuple[int, ...] = (1, 2, 3, 4, 5)
"""The severities every corruption accepts (1 = mild ... 5 = severe)."""

REFERENCE_SIDE = 224
"""ImageNet-C's image side: spatial parameters are given for it and scaled by ``min(h, w) / 224``."""

Split = Literal["seen", "unseen"]
RngLike = np.random.Generator | int | None

_Float = np.ndarray  # (H, W, C) float32 in [0, 1]


@dataclass(frozen=True)
class Corruption:
    """One registered corruption.

    Attributes:
        name: Its name (the key of :data:`CORRUPTIONS`).
        split: ``"seen"`` (may be used in training) or ``"unseen"`` (evaluation only).
        description: One line: what it does.
        parameters: The parameter of each severity 1..5 (as in the module table).
        apply: ``apply(image, parameter, rng, scale)`` on a float32 (H, W, C) image in [0, 1];
            ``scale = min(h, w) / 224``. Use :func:`corrupt` rather than calling it directly.
    """

    name: str
    split: Split
    description: str
    parameters: tuple[Any, ...]
    apply: Callable[[_Float, Any, np.random.Generator, float], _Float]


# ---------------------------------------------------------------------------------------- the corruptions
def _gaussian_noise(x: _Float, std: float, rng: np.random.Generator, scale: float) -> _Float:
    return x + np.float32(std) * rng.standard_normal(size=x.shape, dtype=np.float32)


def _gaussian_blur(x: _Float, sigma: float, rng: np.random.Generator, scale: float) -> _Float:
    return _per_channel(x, lambda c: cv2.GaussianBlur(c, (0, 0), sigmaX=max(sigma * scale, 0.3)))


def _jpeg(x: _Float, quality: int, rng: np.random.Generator, scale: float) -> _Float:
    pixels = _to_uint8(x)
    mode = "L" if pixels.shape[2] == 1 else "RGB"
    buffer = io.BytesIO()
    Image.fromarray(pixels[..., 0] if mode == "L" else pixels, mode=mode).save(buffer, "JPEG", quality=quality)
    decoded = np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert(mode))
    return decoded.reshape(x.shape).astype(np.float32) / 255.0


def _low_resolution(x: _Float, factor: int, rng: np.random.Generator, scale: float) -> _Float:
    h, w = x.shape[:2]
    small = cv2.resize(x, (max(1, round(w / factor)), max(1, round(h / factor))), interpolation=cv2.INTER_AREA)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR).reshape(x.shape)


def _contrast(x: _Float, keep: float, rng: np.random.Generator, scale: float) -> _Float:
    mean = x.mean()
    return (x - mean) * keep + mean


def _motion_blur(x: _Float, radius_sigma: tuple[float, float], rng: np.random.Generator, scale: float) -> _Float:
    radius, sigma = radius_sigma[0] * scale, radius_sigma[1] * scale
    angle = np.deg2rad(rng.uniform(-45.0, 45.0))
    size = 2 * int(np.ceil(radius)) + 1
    kernel = np.zeros((size, size), np.float32)
    centre = size // 2
    for t in np.linspace(0.0, radius, max(int(np.ceil(radius)) * 2 + 1, 2)):  # one-sided, as a moving camera
        weight = np.exp(-(t**2) / (2 * max(sigma, 1e-3) ** 2))
        col, row = centre + t * np.cos(angle), centre - t * np.sin(angle)
        kernel[int(round(row)), int(round(col))] += weight
    kernel /= kernel.sum()
    return _per_channel(x, lambda c: cv2.filter2D(c, -1, kernel, borderType=cv2.BORDER_REFLECT))


def _defocus_blur(x: _Float, radius_alias: tuple[float, float], rng: np.random.Generator, scale: float) -> _Float:
    radius, alias = max(radius_alias[0] * scale, 0.5), radius_alias[1] * scale
    half = int(np.ceil(radius))
    ys, xs = np.mgrid[-half : half + 1, -half : half + 1]
    disk = np.clip(radius + 0.5 - np.hypot(xs, ys), 0.0, 1.0).astype(np.float32)  # anti-aliased edge
    if alias > 0:
        disk = cv2.GaussianBlur(disk, (3, 3), sigmaX=alias)
    disk /= disk.sum()
    return _per_channel(x, lambda c: cv2.filter2D(c, -1, disk, borderType=cv2.BORDER_REFLECT))


def _pixelate(x: _Float, ratio: float, rng: np.random.Generator, scale: float) -> _Float:
    # Blocks of 1 / ratio pixels, each filled with its mean, the grid shifted by a random phase: a
    # grid aligned with the image would leave pixel-aligned synthetic scenes (Tiles) intact.
    block = 1.0 / ratio
    h, w, channels = x.shape
    offset_y, offset_x = rng.uniform(0.0, block, size=2)
    rows = np.floor((np.arange(h) + offset_y) / block).astype(np.int64)
    cols = np.floor((np.arange(w) + offset_x) / block).astype(np.int64)
    ids = (rows[:, None] * (cols[-1] + 1) + cols[None, :]).ravel()
    counts = np.bincount(ids)
    out = np.empty_like(x)
    for c in range(channels):
        means = np.bincount(ids, weights=x[..., c].ravel()) / np.maximum(counts, 1)
        out[..., c] = means[ids].reshape(h, w)
    return out


def _salt_and_pepper(x: _Float, amount: float, rng: np.random.Generator, scale: float) -> _Float:
    draw = rng.random(size=x.shape)
    out = x.copy()
    out[draw < amount / 2] = 0.0
    out[(draw >= amount / 2) & (draw < amount)] = 1.0
    return out


def _brightness(x: _Float, delta: float, rng: np.random.Generator, scale: float) -> _Float:
    if x.shape[2] != 3:
        return x + delta
    hsv = cv2.cvtColor(np.ascontiguousarray(x), cv2.COLOR_RGB2HSV)  # float input: V in [0, 1]
    hsv[..., 2] = np.clip(hsv[..., 2] + delta, 0.0, 1.0)
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)


def _fog(x: _Float, strength_decay: tuple[float, float], rng: np.random.Generator, scale: float) -> _Float:
    strength, decay = strength_decay
    top = x.max()
    haze = _plasma_fractal(256, decay, rng)
    haze = cv2.resize(haze, (x.shape[1], x.shape[0]), interpolation=cv2.INTER_LINEAR)
    return (x + strength * haze[..., None]) * top / (top + strength)


def _plasma_fractal(size: int, decay: float, rng: np.random.Generator) -> np.ndarray:
    """A ``size`` x ``size`` (a power of two) diamond-square height map in [0, 1], ImageNet-C's fog map."""
    grid = np.zeros((size, size), np.float32)
    step, wibble = size, 100.0

    def jitter(total: np.ndarray) -> np.ndarray:
        return total / 4 + wibble * rng.uniform(-wibble, wibble, total.shape)

    while step >= 2:
        half = step // 2
        corners = grid[0:size:step, 0:size:step]
        square = corners + np.roll(corners, -1, axis=0)
        square += np.roll(square, -1, axis=1)
        grid[half:size:step, half:size:step] = jitter(square)
        centres = grid[half:size:step, half:size:step]
        corners = grid[0:size:step, 0:size:step]
        grid[0:size:step, half:size:step] = jitter(
            centres + np.roll(centres, 1, axis=0) + corners + np.roll(corners, -1, axis=1)
        )
        grid[half:size:step, 0:size:step] = jitter(
            centres + np.roll(centres, 1, axis=1) + corners + np.roll(corners, -1, axis=0)
        )
        step, wibble = half, wibble / decay
    grid -= grid.min()
    return grid / max(float(grid.max()), 1e-12)


def _per_channel(x: _Float, op: Callable[[np.ndarray], np.ndarray]) -> _Float:
    """Apply a 2-D OpenCV filter to an (H, W, C) image (OpenCV drops a trailing axis of 1)."""
    return op(np.ascontiguousarray(x)).reshape(x.shape)


def _to_uint8(x: _Float) -> np.ndarray:
    return np.clip(np.rint(x * 255.0), 0, 255).astype(np.uint8)


# ---------------------------------------------------------------------------------------- the registry
_ALL = (
    Corruption("gaussian_noise", "seen", "additive Gaussian noise", (0.08, 0.12, 0.18, 0.26, 0.38), _gaussian_noise),
    Corruption("gaussian_blur", "seen", "Gaussian blur (sigma at 224 px)", (1, 2, 3, 4, 6), _gaussian_blur),
    Corruption("jpeg", "seen", "JPEG re-encoding (quality)", (25, 18, 15, 10, 7), _jpeg),
    Corruption(
        "low_resolution", "seen", "downsample by a factor, bilinear upsample", (2, 3, 4, 6, 8), _low_resolution
    ),
    Corruption("contrast", "seen", "contrast kept around the mean", (0.4, 0.3, 0.2, 0.1, 0.05), _contrast),
    Corruption(
        "motion_blur",
        "unseen",
        "line blur at a random angle (radius, sigma at 224 px)",
        ((10, 3), (15, 5), (15, 8), (15, 12), (20, 15)),
        _motion_blur,
    ),
    Corruption(
        "defocus_blur",
        "unseen",
        "disk blur (radius, alias sigma at 224 px)",
        ((3, 0.1), (4, 0.5), (6, 0.5), (8, 0.5), (10, 0.5)),
        _defocus_blur,
    ),
    Corruption("pixelate", "unseen", "mean over blocks of 1 / ratio px", (0.6, 0.5, 0.4, 0.3, 0.25), _pixelate),
    Corruption(
        "salt_and_pepper", "unseen", "values set to 0 or 255", (0.03, 0.06, 0.09, 0.17, 0.27), _salt_and_pepper
    ),
    Corruption("brightness", "unseen", "HSV value raised", (0.1, 0.2, 0.3, 0.4, 0.5), _brightness),
    Corruption(
        "fog",
        "unseen",
        "plasma-fractal haze (strength, decay)",
        ((1.5, 2.0), (2.0, 2.0), (2.5, 1.7), (2.5, 1.5), (3.0, 1.4)),
        _fog,
    ),
)

CORRUPTIONS: MappingProxyType[str, Corruption] = MappingProxyType({c.name: c for c in _ALL})
"""Every corruption by name (read-only)."""

SEEN_CORRUPTIONS: tuple[str, ...] = tuple(c.name for c in _ALL if c.split == "seen")
"""Corruptions training code may use: gaussian_noise, gaussian_blur, jpeg, low_resolution, contrast."""

UNSEEN_CORRUPTIONS: tuple[str, ...] = tuple(c.name for c in _ALL if c.split == "unseen")
"""Corruptions kept for evaluation: motion_blur, defocus_blur, pixelate, salt_and_pepper, brightness, fog."""

CORRUPTION_GROUPS: MappingProxyType[str, tuple[str, ...]] = MappingProxyType(
    {"seen": SEEN_CORRUPTIONS, "unseen": UNSEEN_CORRUPTIONS, "all": SEEN_CORRUPTIONS + UNSEEN_CORRUPTIONS}
)
"""Names of sets of corruptions: ``"seen"``, ``"unseen"``, ``"all"``."""


def get_corruption(name: str) -> Corruption:
    """The registered corruption called ``name``.

    Raises:
        UnknownNameError: ``name`` is not registered; the message lists the seen and unseen names.
    """
    if isinstance(name, str) and name in CORRUPTIONS:
        return CORRUPTIONS[name]
    hint = close_matches_hint(name, list(CORRUPTIONS)) if isinstance(name, str) else ""
    raise UnknownNameError(
        f"unknown corruption {describe(name)}; seen: {', '.join(SEEN_CORRUPTIONS)}; "
        f"unseen: {', '.join(UNSEEN_CORRUPTIONS)}.{hint}"
    )


def resolve_corruptions(spec: str) -> tuple[str, ...]:
    """Names for ``spec``: a group (``"seen"``, ``"unseen"``, ``"all"``), one name, or names joined by ``,``.

    Raises:
        UnknownNameError: A part is neither a group nor a corruption (the message lists both).
    """
    if not isinstance(spec, str) or not spec.strip():
        raise UnknownNameError(f"corruption must be a name or one of {list(CORRUPTION_GROUPS)}, got {describe(spec)}")
    names: list[str] = []
    for part in (p.strip() for p in spec.split(",")):
        if part in CORRUPTION_GROUPS:
            names += CORRUPTION_GROUPS[part]
            continue
        try:
            names.append(get_corruption(part).name)
        except UnknownNameError as error:
            raise UnknownNameError(f"{error} Groups: {', '.join(CORRUPTION_GROUPS)}.") from None
    return tuple(dict.fromkeys(names))


def check_severity(severity: Any) -> int:
    """``severity`` as an int in 1..5.

    Raises:
        ConfigError: Not an int (``bool``, ``float`` and ``str`` are refused) or outside 1..5.
    """
    if not is_int(severity) or int(severity) not in SEVERITIES:
        raise ConfigError(f"corruption severity must be an int in {list(SEVERITIES)}, got {describe(severity)}")
    return int(severity)


def as_generator(rng: RngLike) -> np.random.Generator:
    """``rng`` as a NumPy Generator: a Generator as is, an int >= 0 as a seed, None as fresh entropy."""
    if isinstance(rng, np.random.Generator):
        return rng
    if rng is None:
        return np.random.default_rng()
    if is_int(rng) and int(rng) >= 0:
        return np.random.default_rng(int(rng))
    raise ConfigError(f"rng must be a numpy Generator, an int seed >= 0 or None, got {describe(rng)}")


def corrupt(image: np.ndarray | Image.Image, name: str, severity: int, rng: RngLike = None) -> Any:
    """A corrupted copy of ``image``: corruption ``name`` at ``severity`` (1 = mild ... 5 = severe).

    Args:
        image: An RGB ``uint8`` array (H, W, 3), a grayscale one (H, W) or (H, W, 1), or a PIL image
            (converted to RGB or L). It is never modified.
        name: A name of :data:`CORRUPTIONS` (see the module table; :data:`SEEN_CORRUPTIONS` for training).
        severity: An int in 1..5.
        rng: The source of every random draw: a ``np.random.Generator`` (advanced by the call), an int
            seed, or None (fresh entropy: not reproducible). Same image, name, severity and seed give
            identical pixels.

    Returns:
        A new ``uint8`` array of the same shape as ``image`` (a PIL image of the same mode if ``image``
        was one); never a view of ``image``.

    Raises:
        UnknownNameError: ``name`` is not registered (the message lists the seen and unseen names).
        ConfigError: ``severity`` is not in 1..5, ``rng`` is no generator or seed, or ``image`` is not a
            ``uint8`` image of those shapes.

    Example:
        >>> import numpy as np
        >>> image = np.zeros((32, 48, 3), dtype=np.uint8)
        >>> corrupt(image, "fog", 5, rng=np.random.default_rng(0)).shape
        (32, 48, 3)
    """
    corruption = get_corruption(name)
    severity = check_severity(severity)
    generator = as_generator(rng)
    pil_mode = None
    if isinstance(image, Image.Image):
        pil_mode = "L" if image.mode in ("L", "1", "I", "F") else "RGB"
        image = np.asarray(image.convert(pil_mode))
    pixels = _check_pixels(image)
    shape = pixels.shape
    x = pixels.reshape(shape[0], shape[1], -1).astype(np.float32) / 255.0
    scale = min(shape[0], shape[1]) / REFERENCE_SIDE
    out = _to_uint8(corruption.apply(x, corruption.parameters[severity - 1], generator, scale)).reshape(shape)
    return Image.fromarray(out, mode=pil_mode) if pil_mode is not None else out


def _check_pixels(image: Any) -> np.ndarray:
    ok = (
        isinstance(image, np.ndarray)
        and image.dtype == np.uint8
        and (image.ndim == 2 or (image.ndim == 3 and image.shape[2] in (1, 3)))
        and image.shape[0] > 0
        and image.shape[1] > 0
    )
    if not ok:
        got = f"{image.dtype} array of shape {image.shape}" if isinstance(image, np.ndarray) else describe(image)
        raise ConfigError(f"corrupt() takes a uint8 image of shape (H, W), (H, W, 1) or (H, W, 3), got {got}")
    return image


__all__ = [
    "CORRUPTIONS",
    "CORRUPTION_GROUPS",
    "SEEN_CORRUPTIONS",
    "SEVERITIES",
    "UNSEEN_CORRUPTIONS",
    "Corruption",
    "as_generator",
    "check_severity",
    "corrupt",
    "get_corruption",
    "resolve_corruptions",
]
