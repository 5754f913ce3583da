"""Looking at episodes: crop boxes on the image, text transcripts, and one-picture trajectory views.

:func:`save_episode` writes a whole episode as one PNG (or a self-contained HTML page): the full view
with every crop box numbered, each crop with its label/description and alignment score, and the
dialogue. It takes an :class:`EpisodeRecord`, which :class:`mapo_env.wrappers.RecordEpisodes`
collects from any env (or build one yourself).
"""

from __future__ import annotations

import base64
import html
import io
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from mapo_env.geometry import ImageFrame
from mapo_env.types import BBox

BOX_COLORS = ((255, 64, 64), (64, 160, 255), (255, 200, 0), (0, 200, 120), (200, 80, 255), (255, 128, 0))


def transcript(messages: Sequence[dict[str, Any]]) -> str:
    """The dialogue as plain text, one ``[role]`` block per message; images appear as ``<image k>``."""
    lines, k = [], 0
    for message in messages:
        parts = []
        for part in message["content"]:
            if part.get("type") == "image":
                parts.append(f"<image {k}>")
                k += 1
            else:
                parts.append(part.get("text", ""))
        lines.append(f"[{message['role']}] " + "".join(parts))
    return "\n".join(lines) + "\n"


def draw_crop_boxes(view: np.ndarray, view_frame: ImageFrame, boxes: Sequence[BBox], width: int = 3) -> np.ndarray:
    """A copy of the full view with each original-pixel box drawn (numbered from 1) in view pixels."""
    image = Image.fromarray(np.ascontiguousarray(view))
    draw = ImageDraw.Draw(image)
    font = _font(max(10, view.shape[0] // 40))
    for i, box in enumerate(boxes):
        x1, y1, x2, y2 = view_frame.from_original(box, "pixel")
        color = BOX_COLORS[i % len(BOX_COLORS)]
        draw.rectangle([x1, y1, x2, y2], outline=color, width=width)
        draw.text((x1 + 2, y1 + 1), str(i + 1), fill=color, font=font)
    return np.asarray(image)


@dataclass
class EpisodeRecord:
    """Everything needed to look at one finished episode later.

    Attributes:
        sample_id: The sample's id.
        question: The question text.
        options: Options in the order shown.
        answer_index: Index of the correct option in ``options``.
        images: Observation images at the end (full view, then crops).
        frames: Their frames (where each image comes from in the original).
        crop_texts: Label (or description) written for each crop, in order.
        alignment_scores: Alignment score of each crop's text.
        messages: The whole dialogue.
        rewards: Reward of each step.
        correct: Whether the final answer was right (None if none was given).
        target_boxes: Ground-truth target boxes in original pixels.
        extras: Anything else (model name, step, ...).
    """

    sample_id: str
    question: str
    options: list[str]
    answer_index: int
    images: list[np.ndarray]
    frames: list[ImageFrame]
    crop_texts: list[str] = field(default_factory=list)
    alignment_scores: list[float] = field(default_factory=list)
    messages: list[dict[str, Any]] = field(default_factory=list)
    rewards: list[float] = field(default_factory=list)
    correct: bool | None = None
    target_boxes: list[BBox] = field(default_factory=list)
    extras: dict[str, Any] = field(default_factory=dict)


def episode_picture(record: EpisodeRecord, width: int = 1200) -> Image.Image:
    """Render an episode as one picture: boxes on the full view, crops with scores, the dialogue."""
    left_w = width * 3 // 5
    view_img = _fit(Image.fromarray(record.images[0]), left_w, left_w)
    view_frame = ImageFrame(record.frames[0].region, (view_img.width, view_img.height))  # boxes at display size
    view = draw_crop_boxes(np.asarray(view_img), view_frame, [f.region for f in record.frames[1:]])
    view_img = Image.fromarray(_draw_targets(view, view_frame, record.target_boxes))
    thumb = (width - left_w - 30) // 2
    font, small = _font(16), _font(13)
    crops = []
    for i, crop in enumerate(record.images[1:]):
        text = record.crop_texts[i] if i < len(record.crop_texts) else ""
        score = record.alignment_scores[i] if i < len(record.alignment_scores) else None
        caption = f"{i + 1}. {text[:60]}" + (f"  [align {score:.2f}]" if score is not None else "")
        crops.append((_fit(Image.fromarray(crop), thumb, thumb), caption))
    lines = transcript(record.messages).splitlines()
    chat_lines = [wrapped for line in lines for wrapped in (textwrap.wrap(line, 150) or [""])][:80]
    rows = (len(crops) + 1) // 2
    crops_h = rows * (thumb + 40)
    header_h = 60
    height = header_h + max(view_img.height, crops_h) + 20 + 16 * len(chat_lines) + 20
    canvas = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(canvas)
    verdict = {True: "correct", False: "wrong", None: "no answer"}[record.correct]
    answer = chr(ord("A") + record.answer_index)
    draw.text((10, 8), f"{record.sample_id}: {record.question[:140]}", fill="black", font=font)
    draw.text(
        (10, 32),
        f"answer {answer} | result: {verdict} | return {sum(record.rewards):.2f} | crops {len(crops)}",
        fill="black",
        font=small,
    )
    canvas.paste(view_img, (10, header_h))
    for i, (img, caption) in enumerate(crops):
        x = left_w + 20 + (i % 2) * (thumb + 10)
        y = header_h + (i // 2) * (thumb + 40)
        canvas.paste(img, (x, y))
        draw.rectangle([x, y, x + img.width, y + img.height], outline=BOX_COLORS[i % len(BOX_COLORS)], width=3)
        draw.text((x, y + img.height + 4), caption[:48], fill="black", font=small)
    y = header_h + max(view_img.height, crops_h) + 20
    for line in chat_lines:
        draw.text((10, y), line, fill=(40, 40, 40), font=small)
        y += 16
    return canvas


def save_episode(record: EpisodeRecord, path: str | Path) -> Path:
    """Write the episode picture to ``path``: ``.png`` (one picture) or ``.html`` (picture + full dialogue)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    picture = episode_picture(record)
    if path.suffix.lower() == ".html":
        buffer = io.BytesIO()
        picture.save(buffer, format="PNG")
        encoded = base64.b64encode(buffer.getvalue()).decode()
        body = html.escape(_encodable(transcript(record.messages)))
        path.write_text(
            f"<!doctype html><meta charset='utf-8'><title>{html.escape(_encodable(record.sample_id))}</title>"
            f"<img src='data:image/png;base64,{encoded}' style='max-width:100%'><pre>{body}</pre>",
            encoding="utf-8",
        )
    else:
        picture.save(path)
    return path


def _encodable(text: str) -> str:
    """``text`` with lone surrogates (model text may hold any code point) replaced by U+FFFD; pairs are joined."""
    return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def _draw_targets(view: np.ndarray, frame: ImageFrame, boxes: Sequence[BBox]) -> np.ndarray:
    if not boxes:
        return view
    image = Image.fromarray(view)
    draw = ImageDraw.Draw(image)
    for box in boxes:
        x1, y1, x2, y2 = frame.from_original(box, "pixel")
        for offset in range(0, int(x2 - x1), 8):  # dashed outline for ground truth
            draw.line([x1 + offset, y1, min(x1 + offset + 4, x2), y1], fill=(0, 255, 0), width=2)
            draw.line([x1 + offset, y2, min(x1 + offset + 4, x2), y2], fill=(0, 255, 0), width=2)
        for offset in range(0, int(y2 - y1), 8):
            draw.line([x1, y1 + offset, x1, min(y1 + offset + 4, y2)], fill=(0, 255, 0), width=2)
            draw.line([x2, y1 + offset, x2, min(y1 + offset + 4, y2)], fill=(0, 255, 0), width=2)
    return np.asarray(image)


def _fit(image: Image.Image, max_w: int, max_h: int) -> Image.Image:
    scale = min(max_w / image.width, max_h / image.height)
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    resample = Image.Resampling.NEAREST if scale > 1 else Image.Resampling.LANCZOS
    return image.resize(size, resample)


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError):  # Pillow without FreeType
        return ImageFont.load_default()
