"""The small fast scenes for CPU training: patterned tiles on a grid, readable only after a zoom.

Default scene: a 224x224 canvas cut into a 4x4 grid of 56-pixel cells; 3 coloured tiles and 4 grey
clutter tiles sit in distinct random cells, each a 48x48 square at offset 4 inside its cell (all
coordinates even). Every tile is filled with a period-2 pattern built from two colours ``c1``,
``c2`` with ``c1 + c2`` even per channel:

==================== ======================================
``horizontal stripes``  rows alternate c1 / c2
``vertical stripes``    columns alternate c1 / c2
``checkerboard``        ``(x + y)`` parity picks c1 / c2
``plain``               ``(c1 + c2) / 2`` everywhere
==================== ======================================

Every aligned 2x2 block of a tile therefore has the same mean whatever the pattern, so the full
view downsampled 2x (``cv2.resize(img, (112, 112), interpolation=cv2.INTER_AREA)``) is byte-equal
whatever the target's pattern: the colour shows in the view, the pattern only in a zoomed crop.
The question is "What pattern is on the {color} tile?" with the four patterns as options.
"""

from __future__ import annotations

import functools

import numpy as np

from mapo_env.data.procedural.vocabulary import load_vocabulary
from mapo_env.errors import ConfigError
from mapo_env.types import ObjectAnnotation, VQASample

PATTERNS: tuple[str, ...] = ("horizontal stripes", "vertical stripes", "checkerboard", "plain")
"""The four patterns, in the canonical option order."""


@functools.lru_cache(maxsize=16)
def _pattern_masks(size: int) -> np.ndarray:
    """``bool`` (4, size, size): True where a pattern takes c1 (plain: never; it uses the mean)."""
    y, x = np.mgrid[0:size, 0:size]
    masks = np.stack([y % 2 == 0, x % 2 == 0, (x + y) % 2 == 0, np.zeros((size, size), dtype=bool)])
    masks.flags.writeable = False
    return masks


def _pair(mean: np.ndarray, contrast: int) -> tuple[np.ndarray, np.ndarray]:
    """``(c1, c2) = mean ± d`` with ``d`` per channel as large as ``contrast`` allows inside [0, 255]."""
    d = np.minimum(contrast, np.minimum(mean, 255 - mean))
    return mean + d, mean - d


class TilesSceneGenerator:
    """Patterned tiles on a grid; the asked tile's pattern is invisible in the 2x-downsampled view.

    Args:
        canvas: Canvas side in pixels (square).
        grid: Cells per side; ``canvas / grid`` must be an even whole number.
        num_colored: Number of coloured tiles (distinct colours); one of them is asked about.
        num_clutter: Number of grey clutter tiles.
        tile_margin: Offset of a tile inside its cell (even); tiles are ``cell - 2 * margin`` wide.
        noise: Background noise amplitude (uniform integer in ``[-noise, noise]``, grey).
        position_ramp: Amplitude of a smooth colour ramp on the background: red rises from ``-ramp``
            to ``+ramp`` left to right, blue top to bottom. Like the coordinate grid of a map, it makes
            *where* visible in every image token (Qwen2.5-VL's vision tower has rotary positions only,
            so a tiny model cannot otherwise read absolute position from pixels). 0 = flat grey.
        target_pattern: Force the asked tile's pattern (one of :data:`PATTERNS`); the rest of the
            scene is unchanged, so one seed rendered with each pattern gives four scenes that
            differ only inside the target tile. ``None`` draws it at random.

    Raises:
        ConfigError: The geometry is not even, or there are more tiles than cells or colours.

    Example:
        >>> import numpy as np
        >>> sample = TilesSceneGenerator().generate(np.random.default_rng(0), 0)
        >>> sample.image_size, sample.options[2]
        ((224, 224), 'checkerboard')
    """

    name = "procedural-tiles"

    def __init__(
        self,
        canvas: int = 224,
        grid: int = 4,
        num_colored: int = 3,
        num_clutter: int = 4,
        tile_margin: int = 4,
        noise: int = 8,
        position_ramp: int = 0,
        target_pattern: str | None = None,
    ) -> None:
        vocab = load_vocabulary()["tiles"]
        self.canvas, self.grid, self.tile_margin, self.noise = int(canvas), int(grid), int(tile_margin), int(noise)
        self.num_colored, self.num_clutter = int(num_colored), int(num_clutter)
        self._check_geometry()
        if not 1 <= self.num_colored <= len(vocab["colors"]):
            raise ConfigError(
                f"num_colored must be in [1, {len(vocab['colors'])}] (one colour each), got {num_colored}"
            )
        if self.num_clutter < 0 or self.num_colored + self.num_clutter > self.grid**2:
            raise ConfigError(
                f"num_colored + num_clutter must fit in the {self.grid}x{self.grid} grid ({self.grid**2} cells), "
                f"got {num_colored} + {num_clutter}; use a larger grid or fewer tiles"
            )
        if target_pattern is not None and target_pattern not in PATTERNS:
            raise ConfigError(f"target_pattern must be one of {list(PATTERNS)} or None, got {target_pattern!r}")
        if not 0 <= self.noise <= 40:
            raise ConfigError(f"noise must be in [0, 40], got {noise}")
        if not 0 <= position_ramp <= 60:
            raise ConfigError(f"position_ramp must be in [0, 60], got {position_ramp}")
        self.position_ramp = int(position_ramp)
        self.target_pattern = target_pattern
        self._color_names = list(vocab["colors"])
        self._means = np.asarray([vocab["colors"][c] for c in self._color_names], dtype=np.int16)
        self._clutter_name = str(vocab["clutter_name"])
        self._clutter_mean = np.asarray(vocab["clutter_rgb"], dtype=np.int16)
        self._background = np.asarray(vocab["background_rgb"], dtype=np.int16)
        self._contrast = int(vocab["contrast"])
        for mean in [*self._means, self._clutter_mean]:
            if np.any(mean % 1) or np.any(mean < 0) or np.any(mean > 255):
                raise ConfigError(f"tile colours must be whole numbers in [0, 255], got {mean.tolist()}")

    def _check_geometry(self) -> None:
        if self.grid < 1 or self.canvas % self.grid:
            raise ConfigError(f"canvas ({self.canvas}) must be a multiple of grid ({self.grid})")
        self.cell = self.canvas // self.grid
        self.tile = self.cell - 2 * self.tile_margin
        if self.cell % 2 or self.tile_margin % 2 or self.tile_margin < 0:
            raise ConfigError(
                f"cell size ({self.cell} = canvas / grid) and tile_margin ({self.tile_margin}) must be even and "
                "non-negative so that every tile starts on an even pixel (the 2x2-block invariance needs it)"
            )
        if self.tile < 2:
            raise ConfigError(f"tiles would be {self.tile} px wide; use a smaller tile_margin or grid")

    def knobs(self) -> dict[str, object]:
        """The constructor arguments, JSON-friendly (stored in each sample's metadata)."""
        return {
            "canvas": self.canvas,
            "grid": self.grid,
            "num_colored": self.num_colored,
            "num_clutter": self.num_clutter,
            "tile_margin": self.tile_margin,
            "noise": self.noise,
            "position_ramp": self.position_ramp,
            "target_pattern": self.target_pattern,
        }

    def _ramp(self) -> np.ndarray:
        """(canvas, canvas, 3) int16 background offsets: red follows x, blue follows y."""
        ramp = np.zeros((self.canvas, self.canvas, 3), dtype=np.int16)
        if self.position_ramp:
            line = np.round(np.linspace(-self.position_ramp, self.position_ramp, self.canvas)).astype(np.int16)
            ramp[..., 0] = line[None, :]
            ramp[..., 2] = line[:, None]
        return ramp

    def cell_box(self, row: int, col: int) -> tuple[int, int, int, int]:
        """The box ``(x1, y1, x2, y2)`` of grid cell ``(row, col)`` (end exclusive)."""
        return (col * self.cell, row * self.cell, (col + 1) * self.cell, (row + 1) * self.cell)

    def generate(self, rng: np.random.Generator, index: int) -> VQASample:
        """Draw sample ``index`` from ``rng`` (same ``rng`` state -> same sample)."""
        n = self.num_colored + self.num_clutter
        cells = rng.permutation(self.grid * self.grid)[:n]
        colors = rng.permutation(len(self._color_names))[: self.num_colored]
        patterns = rng.integers(0, len(PATTERNS), size=n)
        target = int(rng.integers(self.num_colored))
        noise = rng.integers(-self.noise, self.noise + 1, size=(self.canvas, self.canvas, 1), dtype=np.int16)
        if self.target_pattern is not None:  # drawn above anyway, so the rest of the scene does not move
            patterns[target] = PATTERNS.index(self.target_pattern)

        image = self._background + noise + self._ramp()
        masks = _pattern_masks(self.tile)
        objects = []
        for k in range(n):
            mean = self._means[colors[k]] if k < self.num_colored else self._clutter_mean
            color = self._color_names[colors[k]] if k < self.num_colored else self._clutter_name
            c1, c2 = _pair(mean, self._contrast)
            pattern = int(patterns[k])
            row, col = divmod(int(cells[k]), self.grid)
            x1, y1 = col * self.cell + self.tile_margin, row * self.cell + self.tile_margin
            region = image[y1 : y1 + self.tile, x1 : x1 + self.tile]
            region[:] = (c1 + c2) // 2 if PATTERNS[pattern] == "plain" else np.where(masks[pattern][..., None], c1, c2)
            box = (float(x1), float(y1), float(x1 + self.tile), float(y1 + self.tile))
            objects.append(ObjectAnnotation(f"{color} tile", box, {"color": color, "pattern": PATTERNS[pattern]}))
        return self._sample(index, np.clip(image, 0, 255).astype(np.uint8), objects, cells, patterns, target)

    def _sample(
        self,
        index: int,
        image: np.ndarray,
        objects: list[ObjectAnnotation],
        cells: np.ndarray,
        patterns: np.ndarray,
        target: int,
    ) -> VQASample:
        image.flags.writeable = False
        row, col = divmod(int(cells[target]), self.grid)
        color = objects[target].attributes["color"]
        metadata = {
            "generator": self.name,
            "target_cell": [row, col],
            "target_cell_box": list(self.cell_box(row, col)),
            "cell_px": self.cell,
            "tile_px": self.tile,
            "view_size": [self.canvas // 2, self.canvas // 2],
            "knobs": self.knobs(),
        }
        return VQASample(
            sample_id=f"{self.name}-{index}",
            question=f"What pattern is on the {color} tile?",
            options=PATTERNS,
            answer_index=int(patterns[target]),
            category="pattern",
            load_image=lambda: image,
            image_size=(self.canvas, self.canvas),
            targets=(objects[target],),
            objects=tuple(objects),
            metadata=metadata,
        )
