"""Regenerate the preview PNGs of the procedural generators (``envs_data/procedural/previews/``).

Run from the repository root (the project must be installed)::

    python envs_data/procedural/render_previews.py            # writes envs_data/procedural/previews/*.png
    python envs_data/procedural/render_previews.py --out DIR  # somewhere else

Each preview is one scene drawn from a fixed seed, downscaled to at most ``--max-side`` pixels,
with the target boxes outlined (magenta; black on Tiles) and, for the large scenes, an inset in
the bottom-right corner showing the first target zoomed from the full-resolution image; it is
quantised to a 64-colour palette so that it stays under 60 KB. The Tiles preview is shown at 2x
with nearest-neighbour so its patterns stay visible.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from mapo_env.data.procedural import (
    HRBenchSceneGenerator,
    TextSpotSceneGenerator,
    TilesSceneGenerator,
    VStarSceneGenerator,
)

LOGGER = logging.getLogger("render_previews")
PREVIEWS = {
    "vstar": (VStarSceneGenerator, {}, 3),
    "hrbench_4k": (HRBenchSceneGenerator, {"resolution": "4k"}, 2),
    "hrbench_8k": (HRBenchSceneGenerator, {"resolution": "8k"}, 2),
    "textspot": (TextSpotSceneGenerator, {}, 1),
    "tiles": (TilesSceneGenerator, {}, 0),
}
"""Preview name -> (generator class, kwargs, seed)."""
MAX_BYTES = 60_000


def render(name: str, max_side: int = 448) -> Image.Image:
    """Draw the preview ``name`` (a key of :data:`PREVIEWS`) as a palette image."""
    cls, kwargs, seed = PREVIEWS[name]
    sample = cls(**kwargs).generate(np.random.default_rng(seed), seed)
    full = Image.fromarray(sample.load_image())
    image = full
    scale = min(1.0, max_side / max(image.size))
    if name == "tiles":
        scale = 2.0
    size = (round(image.width * scale), round(image.height * scale))
    image = image.resize(size, Image.NEAREST if scale > 1 else Image.BOX)
    draw = ImageDraw.Draw(image)
    outline = (0, 0, 0) if name == "tiles" else (255, 0, 255)
    for target in sample.targets:
        x1, y1, x2, y2 = (v * scale for v in target.bbox)
        pad = 3
        draw.rectangle((x1 - pad, y1 - pad, x2 + pad, y2 + pad), outline=outline, width=2)
    if name != "tiles":
        _inset(image, full, sample.targets[0].bbox)
    return image.quantize(colors=64, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)


def _inset(image: Image.Image, full: Image.Image, bbox: tuple[float, float, float, float]) -> None:
    """Paste a zoom of ``bbox`` (with context) from ``full`` into the bottom-right corner of ``image``."""
    x1, y1, x2, y2 = bbox
    side = max(x2 - x1, y2 - y1) * 1.6
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    box = (round(cx - side / 2), round(cy - side / 2), round(cx + side / 2), round(cy + side / 2))
    inset_side = image.height // 3
    zoom = full.crop(box).resize((inset_side, inset_side), Image.LANCZOS)
    left, top = image.width - inset_side - 4, image.height - inset_side - 4
    ImageDraw.Draw(image).rectangle(
        (left - 2, top - 2, left + inset_side + 1, top + inset_side + 1), fill=(255, 0, 255)
    )
    image.paste(zoom, (left, top))


def main(argv: list[str] | None = None) -> int:
    """Write every preview; returns 1 if one exceeds 60 KB."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "previews")
    parser.add_argument("--max-side", type=int, default=448)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    args.out.mkdir(parents=True, exist_ok=True)
    status = 0
    for name in PREVIEWS:
        path = args.out / f"{name}.png"
        render(name, args.max_side).save(path, optimize=True)
        size = path.stat().st_size
        LOGGER.info("%s: %d bytes", path, size)
        if size > MAX_BYTES:
            LOGGER.error("%s is larger than %d bytes; lower --max-side", path, MAX_BYTES)
            status = 1
    return status


if __name__ == "__main__":
    raise SystemExit(main())
