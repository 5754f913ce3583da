"""MME-RealWorld-style OCR scenes: small signs, price tags and a licence plate in a large image.

Each scene holds several coloured signs with one word each, a few price tags and sometimes a
licence plate, on a cluttered photographic background with a few object distractors. The text is
drawn with PIL's built-in scalable font (``ImageFont.load_default(size=...)``, no font file) at
``font_px`` pixels: in a view of the whole image downsampled to about one megapixel its capital
letters are about 3.5 pixels tall and unreadable, so the answer needs a zoom.

Questions (4 options, the correct one at a random place; distractors are look-alikes made by
swapping letters or digits that OCR confuses, e.g. O/Q/D/0, E/F, 3/8, 1/7):

* ``text_recognition``: "What is written on the {color} sign?"
* ``number_recognition``: "What is the price on the {color} price tag?" or
  "What is the number on the license plate?"
"""

from __future__ import annotations

import functools

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from mapo_env.data.procedural.scene import (
    ClutteredScene,
    Layout,
    PlacedObject,
    add_distractors,
    build_sample,
    check_fraction,
    check_image_size,
    check_range,
    compose,
    jittered_rgb,
    place_or_fail,
)
from mapo_env.data.procedural.sprites import SPRITE_KINDS, Sprite, shade_of
from mapo_env.data.procedural.vocabulary import color_names, load_vocabulary
from mapo_env.errors import ConfigError
from mapo_env.types import VQASample

_DARK_TEXT = (20, 20, 20)
_LIGHT_TEXT = (248, 248, 248)
_LIGHT_BOARDS = {"white", "yellow", "orange", "pink"}


@functools.lru_cache(maxsize=32)
def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def board_sprite(text: str, font_px: int, board: str, shape: str, rng: np.random.Generator) -> Sprite:
    """Draw ``text`` on a board (``shape``: ``"sign"``, ``"tag"`` or ``"plate"``) coloured ``board``.

    Returns:
        The sprite, cropped to the board's tight box.
    """
    font = _font(font_px)
    left, top, right, bottom = font.getbbox(text)
    pad_x, pad_y = max(3, round(font_px * 0.6)), max(2, round(font_px * 0.45))
    text_w, text_h = right - left, bottom - top
    nose = round(text_h * 0.8) if shape == "tag" else 0
    w, h = text_w + 2 * pad_x + nose, text_h + 2 * pad_y
    fill = jittered_rgb(rng, board, 6)
    border = shade_of(fill) if shape != "plate" else _DARK_TEXT
    ink = _DARK_TEXT if board in _LIGHT_BOARDS else _LIGHT_TEXT
    image = Image.new("RGB", (w, h), (0, 0, 0))
    mask = Image.new("L", (w, h), 0)
    draw, mdraw = ImageDraw.Draw(image), ImageDraw.Draw(mask)
    width = max(1, font_px // 8) + (1 if shape == "plate" else 0)
    if shape == "tag":
        outline = [(0, h / 2), (nose, 0), (w - 1, 0), (w - 1, h - 1), (nose, h - 1)]
        draw.polygon(outline, fill=fill, outline=border, width=width)
        mdraw.polygon(outline, fill=255)
        hole = max(1, text_h // 6)
        draw.ellipse((nose * 0.55 - hole, h / 2 - hole, nose * 0.55 + hole, h / 2 + hole), fill=border)
    else:
        radius = round(h * 0.2) if shape == "plate" else 1
        draw.rounded_rectangle((0, 0, w - 1, h - 1), radius=radius, fill=fill, outline=border, width=width)
        mdraw.rounded_rectangle((0, 0, w - 1, h - 1), radius=radius, fill=255)
    draw.text((nose + pad_x - left, pad_y - top), text, font=font, fill=ink)
    rgb, m = np.asarray(image), np.asarray(mask) > 0
    rows, cols = np.flatnonzero(m.any(axis=1)), np.flatnonzero(m.any(axis=0))
    y1, y2, x1, x2 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    return Sprite(rgb=rgb[y1:y2, x1:x2].copy(), mask=m[y1:y2, x1:x2].copy())


def lookalikes(text: str, rng: np.random.Generator, count: int) -> list[str]:
    """``count`` distinct strings that look like ``text`` (one OCR-confusable change each).

    Candidates: every single-character substitution from the vocabulary's look-alike tables (letters
    for letters, digits for digits), and swaps of two adjacent different letters or digits. Falls
    back to random substitutions of the same character class when there are too few.
    """
    table = {**load_vocabulary()["text"]["lookalike_letters"], **load_vocabulary()["text"]["lookalike_digits"]}
    candidates: list[str] = []
    for i, ch in enumerate(text):
        for alt in table.get(ch, ""):
            candidates.append(text[:i] + alt + text[i + 1 :])
        if i + 1 < len(text) and text[i + 1] != ch and text[i].isalnum() and text[i + 1].isalnum():
            candidates.append(text[:i] + text[i + 1] + ch + text[i + 2 :])
    unique = [c for c in dict.fromkeys(candidates) if c != text]
    picked = [unique[i] for i in rng.permutation(len(unique))[:count]]
    positions = [i for i, ch in enumerate(text) if ch.isalnum()]
    while len(picked) < count and positions:
        i = positions[int(rng.integers(len(positions)))]
        pool = "0123456789" if text[i].isdigit() else "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
        alt = text[:i] + pool[int(rng.integers(len(pool)))] + text[i + 1 :]
        if alt != text and alt not in picked:
            picked.append(alt)
    return picked


class TextSpotSceneGenerator(ClutteredScene):
    """Procedural MME-RealWorld-style OCR: read a small sign, price tag or licence plate.

    Args:
        image_size: ``(width, height)`` of the image.
        num_signs: Inclusive range of the number of word signs (each a distinct colour and word).
        num_tags: Inclusive range of the number of price tags (distinct colours).
        font_px: Inclusive range of the font size in pixels.
        price_fraction: Probability of a price question.
        plate_fraction: Probability of a licence-plate question (a plate is drawn only then).
        num_distractors: Inclusive range of object distractors (umbrellas, cars, ...).
        background_scale: Fraction of the size the background collage is built at.
        background_patches: Inclusive range of photo/texture patches in the collage.
    """

    name = "procedural-textspot"

    def __init__(
        self,
        image_size: tuple[int, int] = (3000, 2250),
        num_signs: tuple[int, int] = (4, 7),
        num_tags: tuple[int, int] = (2, 4),
        font_px: tuple[int, int] = (10, 13),
        price_fraction: float = 0.25,
        plate_fraction: float = 0.15,
        num_distractors: tuple[int, int] = (3, 8),
        background_scale: float = 0.5,
        background_patches: tuple[int, int] = (8, 18),
    ) -> None:
        self.image_size = check_image_size(image_size, minimum=256)
        text = load_vocabulary()["text"]
        lo, hi = check_range("num_signs", num_signs, 1, len(text["sign_colors"]))
        self.num_signs = (int(lo), int(hi))
        lo, hi = check_range("num_tags", num_tags, 1, len(text["tag_colors"]))
        self.num_tags = (int(lo), int(hi))
        lo, hi = check_range("font_px", font_px, 6, 200)
        self.font_px = (int(lo), int(hi))
        self.price_fraction = check_fraction("price_fraction", price_fraction)
        self.plate_fraction = check_fraction("plate_fraction", plate_fraction)
        if self.price_fraction + self.plate_fraction > 1.0:
            raise ConfigError(
                f"price_fraction + plate_fraction must be at most 1, got {price_fraction} + {plate_fraction}"
            )
        lo, hi = check_range("num_distractors", num_distractors, 0)
        self.num_distractors = (int(lo), int(hi))
        self.set_background(background_scale, background_patches)

    def knobs(self) -> dict[str, object]:
        """The constructor arguments, JSON-friendly (stored in each sample's metadata)."""
        return {
            "image_size": list(self.image_size),
            "num_signs": list(self.num_signs),
            "num_tags": list(self.num_tags),
            "font_px": list(self.font_px),
            "price_fraction": self.price_fraction,
            "plate_fraction": self.plate_fraction,
            "num_distractors": list(self.num_distractors),
            "background_scale": self.background_scale,
            "background_patches": list(self.background_patches),
        }

    def generate(self, rng: np.random.Generator, index: int) -> VQASample:
        """Draw sample ``index`` from ``rng`` (same ``rng`` state -> same sample)."""
        background_seed = int(rng.integers(2**63 - 1))
        draw = rng.random()
        variant = "sign"
        if draw < self.price_fraction:
            variant = "price"
        elif draw < self.price_fraction + self.plate_fraction:
            variant = "plate"
        layout = Layout(*self.image_size, gap=10)
        signs = self._boards(rng, layout, "sign")
        tags = self._boards(rng, layout, "tag")
        plates = self._boards(rng, layout, "plate") if variant == "plate" else []
        target = {"sign": signs, "price": tags, "plate": plates}[variant][0]
        n = int(rng.integers(self.num_distractors[0], self.num_distractors[1] + 1))
        area = float(np.mean(self.image_size)) ** 2 * 1e-3
        kinds = [k for k in SPRITE_KINDS if k != "sign"]  # a road sign would clash with "the red sign"
        clutter = add_distractors(
            rng, layout, n, (area * 0.3, area * 3), kinds=kinds, colors=list(color_names()), taken={}
        )
        for o in clutter:
            o.name = o.kind if sum(c.kind == o.kind for c in clutter) == 1 else f"{o.color} {o.kind}"
        objects = [*signs, *tags, *plates, *clutter]
        truth = target.extra["text"]
        options = [truth, *lookalikes(truth, rng, 3)]
        options = [options[i] for i in rng.permutation(len(options))]
        question = {
            "sign": f"What is written on the {target.color} sign?",
            "price": f"What is the price on the {target.color} price tag?",
            "plate": "What is the number on the license plate?",
        }[variant]
        image = compose(self.background(background_seed), objects)
        metadata = {
            "generator": self.name,
            "background_seed": background_seed,
            "variant": variant,
            "font_px": int(target.meta["font_px"]),
            "knobs": self.knobs(),
        }
        return build_sample(
            sample_id=f"{self.name}-{index}",
            question=question,
            options=options,
            answer_index=options.index(truth),
            category="text_recognition" if variant == "sign" else "number_recognition",
            image=image,
            targets=[target],
            objects=objects,
            metadata=metadata,
        )

    def _boards(self, rng: np.random.Generator, layout: Layout, shape: str) -> list[PlacedObject]:
        """Draw and place the signs, tags or the plate of one scene (the first one is placed for sure)."""
        text = load_vocabulary()["text"]
        if shape == "sign":
            n = int(rng.integers(self.num_signs[0], self.num_signs[1] + 1))
            colors = [text["sign_colors"][i] for i in rng.permutation(len(text["sign_colors"]))[:n]]
            words = [text["words"][i] for i in rng.permutation(len(text["words"]))[:n]]
        elif shape == "tag":
            n = int(rng.integers(self.num_tags[0], self.num_tags[1] + 1))
            colors = [text["tag_colors"][i] for i in rng.permutation(len(text["tag_colors"]))[:n]]
            words = [_price(rng) for _ in range(n)]
        else:
            colors, words = [("white", "yellow")[int(rng.integers(2))]], [_plate(rng, text["plate_letters"])]
        out = []
        for k, (color, word) in enumerate(zip(colors, words)):
            font_px = int(rng.integers(self.font_px[0], self.font_px[1] + 1))
            obj = PlacedObject(shape, color, board_sprite(word, font_px, color, shape, rng), extra={"text": word})
            obj.name = {"sign": f"{color} sign", "tag": f"{color} price tag", "plate": "license plate"}[shape]
            obj.meta["font_px"] = font_px
            if k == 0:
                place_or_fail(layout, rng, obj, f"asked {shape}")
            else:
                spot = layout.place(rng, obj.sprite.size, tries=100)
                if spot is None:
                    continue
                obj.x, obj.y = spot
            out.append(obj)
        return out


def _price(rng: np.random.Generator) -> str:
    dollars = int(rng.integers(1, 100))
    cents = int(rng.integers(0, 100))
    return f"${dollars}.{cents:02d}"


def _plate(rng: np.random.Generator, letters: str) -> str:
    head = "".join(letters[int(i)] for i in rng.integers(0, len(letters), size=2))
    digits = "".join(str(int(d)) for d in rng.integers(0, 10, size=4))
    return f"{head} {digits}"
