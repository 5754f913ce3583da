"""Qwen2-VL / Qwen2.5-VL input processing without torchvision: chat template, image patches, placeholders.

transformers' own ``Qwen2_5_VLProcessor`` pulls in a video processor that needs torchvision, which this
project does not install. :class:`QwenVLProcessor` does the same job for images only, from the same files a
checkpoint folder holds (``tokenizer.json``/``tokenizer_config.json``, ``preprocessor_config.json``,
``chat_template.json``/``chat_template.jinja``):

- the chat template renders the Hugging Face multimodal messages (``{"type": "image"}`` parts become
  ``<|vision_start|><|image_pad|><|vision_end|>``);
- :class:`transformers.Qwen2VLImageProcessorPil` (PIL + numpy) turns each ``uint8`` image into
  ``pixel_values`` rows and one ``image_grid_thw`` row;
- each ``<|image_pad|>`` is expanded to ``t * h * w / merge_size**2`` copies, in id space;
- ``mm_token_type_ids`` (1 on image tokens) is built from the ids. Without it, Qwen2.5-VL in
  transformers 5 silently falls back to 1-D positions instead of M-RoPE.

Example:
    >>> proc = QwenVLProcessor.from_pretrained(bundled_model_path())  # doctest: +SKIP
    >>> batch = proc(messages, images)  # input_ids, attention_mask, pixel_values, image_grid_thw, mm_token_type_ids
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mapo_env.errors import ConfigError

logger = logging.getLogger(__name__)

IMAGE_TOKEN = "<|image_pad|>"
VIDEO_TOKEN = "<|video_pad|>"
VISION_START_TOKEN = "<|vision_start|>"
VISION_END_TOKEN = "<|vision_end|>"
TURN_END_TOKEN = "<|im_end|>"
PAD_TOKEN = "<|endoftext|>"

QWEN_VL_CHAT_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}"
    "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}<|im_start|>system\n"
    "You are a helpful assistant.<|im_end|>\n{% endif %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}{% if add_vision_id %}Picture {{ image_count.value }}: "
    "{% endif %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'video' or 'video' in content %}{% set video_count.value = video_count.value + 1 %}"
    "{% if add_vision_id %}Video {{ video_count.value }}: {% endif %}<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n"
    "{% endif %}{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
"""The Qwen2-VL / Qwen2.5-VL chat template (as shipped in their ``chat_template.json``)."""


@dataclass
class EncodedImages:
    """Vision inputs of a list of images, in order.

    Attributes:
        pixel_values: (N_patches, C * temporal_patch * patch * patch) float32 patch rows of every image.
        image_grid_thw: (I, 3) int64 patch grid (t, h, w) of each image.
        num_tokens: Placeholder tokens each image takes in the text (``t * h * w / merge**2``).
    """

    pixel_values: torch.Tensor
    image_grid_thw: torch.Tensor
    num_tokens: list[int]


def check_image(image: Any, where: str) -> np.ndarray:
    """Return ``image`` if it is a ``uint8`` (H, W, 3) array, else raise :class:`ConfigError` saying why."""
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        got = f"{type(image).__name__} {getattr(image, 'dtype', '')} {getattr(image, 'shape', '')}".strip()
        raise ConfigError(
            f"{where}: expected an np.uint8 RGB array of shape (H, W, 3), got {got}; "
            "pass the environment's observation['images'] entries unchanged."
        )
    return image


def count_image_parts(messages: Sequence[dict[str, Any]]) -> int:
    """Number of image content parts in HF multimodal chat messages."""
    count = 0
    for message in messages:
        content = message.get("content")
        if isinstance(content, list):
            count += sum(1 for part in content if isinstance(part, dict) and part.get("type") == "image")
    return count


class QwenVLProcessor:
    """Tokenizer + PIL image processor + chat template of a Qwen2-VL-family checkpoint (images only).

    Args:
        tokenizer: A transformers tokenizer holding the Qwen special tokens.
        image_processor: A :class:`transformers.Qwen2VLImageProcessorPil` (or compatible: ``merge_size``,
            ``__call__(images=...)`` returning ``pixel_values`` and ``image_grid_thw``).
        chat_template: Jinja chat template; ``None`` uses the tokenizer's, else the Qwen-VL one.
    """

    def __init__(self, tokenizer: Any, image_processor: Any, chat_template: str | None = None) -> None:
        self.tokenizer = tokenizer
        self.image_processor = image_processor
        self.chat_template = chat_template or getattr(tokenizer, "chat_template", None) or QWEN_VL_CHAT_TEMPLATE
        self.image_token_id = self._token_id(IMAGE_TOKEN)
        self.video_token_id = self._token_id(VIDEO_TOKEN)
        self.turn_end_token_id = self._token_id(TURN_END_TOKEN)
        pad = tokenizer.pad_token_id
        self.pad_token_id = int(pad) if pad is not None else self._token_id(PAD_TOKEN)
        self.merge_size = int(image_processor.merge_size)
        self.turn_suffix = self._assistant_turn_suffix()
        self._warned_resize = False

    # ----------------------------------------------------------------------------------------- loading
    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str | Path,
        *,
        chat_template: str | None = None,
        min_pixels: int | None = None,
        max_pixels: int | None = None,
        **hub_kwargs: Any,
    ) -> QwenVLProcessor:
        """Load the tokenizer, image processor and chat template of a local folder or hub id.

        Args:
            name_or_path: Checkpoint folder or hub id (e.g. ``"Qwen/Qwen2.5-VL-3B-Instruct"``).
            chat_template: Override the template; else ``chat_template.jinja``/``.json`` of the checkpoint,
                else the tokenizer's, else the Qwen-VL template.
            min_pixels: Override the image processor's minimum pixels per image.
            max_pixels: Override the image processor's maximum pixels per image.
            **hub_kwargs: Passed to ``from_pretrained`` (``revision``, ``local_files_only``, ``cache_dir``).
        """
        from transformers import AutoTokenizer, Qwen2VLImageProcessorPil

        tokenizer = AutoTokenizer.from_pretrained(str(name_or_path), **hub_kwargs)
        sizes = {k: v for k, v in (("min_pixels", min_pixels), ("max_pixels", max_pixels)) if v is not None}
        image_processor = Qwen2VLImageProcessorPil.from_pretrained(str(name_or_path), **sizes, **hub_kwargs)
        template = chat_template or _read_chat_template(name_or_path, hub_kwargs)
        return cls(tokenizer, image_processor, template)

    def save_pretrained(self, directory: str | Path) -> None:
        """Write the tokenizer, ``preprocessor_config.json`` and ``chat_template.jinja`` to ``directory``."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.tokenizer.chat_template = self.chat_template
        self.tokenizer.save_pretrained(str(directory))
        self.image_processor.save_pretrained(str(directory))
        (directory / "chat_template.jinja").write_text(self.chat_template, encoding="utf-8")

    # ------------------------------------------------------------------------------------------- text
    def render(self, messages: Sequence[dict[str, Any]], add_generation_prompt: bool = False) -> str:
        """The chat template applied to ``messages`` (text, one ``<|image_pad|>`` per image part)."""
        return self.tokenizer.apply_chat_template(
            list(messages),
            chat_template=self.chat_template,
            tokenize=False,
            add_generation_prompt=add_generation_prompt,
        )

    def encode_text(self, text: str) -> list[int]:
        """Token ids of ``text`` (no BOS/EOS added; special tokens written in the text are recognised)."""
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def decode(self, ids: Sequence[int]) -> str:
        """Text of ``ids``, special tokens kept, ids outside the tokenizer dropped. Never raises."""
        size = len(self.tokenizer)
        return self.tokenizer.decode([int(i) for i in ids if 0 <= int(i) < size], skip_special_tokens=False)

    # ----------------------------------------------------------------------------------------- images
    def encode_images(self, images: Sequence[np.ndarray]) -> EncodedImages:
        """Patchify ``images`` (uint8 (H, W, 3)) with the PIL image processor, in order."""
        if not images:
            return EncodedImages(torch.zeros(0, 0), torch.zeros(0, 3, dtype=torch.long), [])
        arrays = [check_image(img, "QwenVLProcessor.encode_images") for img in images]
        out = self.image_processor(images=arrays, return_tensors="pt", input_data_format="channels_last")
        grid = out["image_grid_thw"].to(torch.long)
        self._warn_if_resized(arrays, grid)
        num_tokens = [int(g.prod()) // self.merge_size**2 for g in grid]
        return EncodedImages(out["pixel_values"].to(torch.float32), grid, num_tokens)

    def expand_image_tokens(self, ids: Sequence[int], num_tokens: Sequence[int]) -> list[int]:
        """Replace the k-th ``<|image_pad|>`` of ``ids`` by ``num_tokens[k]`` copies.

        Raises:
            ConfigError: The ids hold a different number of image placeholders than images given.
        """
        found = sum(1 for i in ids if i == self.image_token_id)
        if found != len(num_tokens):
            raise ConfigError(
                f"the text has {found} image placeholder(s) but {len(num_tokens)} image(s) came with it; "
                "observation['images'] must hold one image per {'type': 'image'} message part, in order."
            )
        out: list[int] = []
        counts = iter(num_tokens)
        for i in ids:
            out.extend([i] * next(counts) if i == self.image_token_id else [i])
        return out

    def mm_token_type_ids(self, input_ids: torch.Tensor) -> torch.Tensor:
        """(B, T) int: 1 on image tokens, 2 on video tokens, 0 elsewhere (what M-RoPE needs)."""
        types = (input_ids == self.image_token_id).to(torch.int32)
        return types + 2 * (input_ids == self.video_token_id).to(torch.int32)

    # -------------------------------------------------------------------------------------- messages
    def encode_messages(
        self, messages: Sequence[dict[str, Any]], images: Sequence[np.ndarray], add_generation_prompt: bool = True
    ) -> tuple[list[int], EncodedImages]:
        """Token ids (placeholders expanded) and vision inputs of one dialogue."""
        encoded = self.encode_images(images)
        ids = self.encode_text(self.render(messages, add_generation_prompt=add_generation_prompt))
        return self.expand_image_tokens(ids, encoded.num_tokens), encoded

    def __call__(
        self,
        messages: Sequence[dict[str, Any]] | Sequence[Sequence[dict[str, Any]]],
        images: Sequence[np.ndarray] | Sequence[Sequence[np.ndarray]] = (),
        add_generation_prompt: bool = True,
        padding_side: str = "left",
    ) -> dict[str, torch.Tensor]:
        """Model inputs of one dialogue or a batch of dialogues (padded on ``padding_side``).

        Returns:
            ``input_ids``, ``attention_mask``, ``mm_token_type_ids`` (B, T) and, when there are images,
            ``pixel_values`` and ``image_grid_thw`` of every image in row order.
        """
        batched = bool(messages) and isinstance(messages[0], (list, tuple))
        dialogues = list(messages) if batched else [messages]
        image_lists = list(images) if batched else [images]
        encoded = [self.encode_messages(m, i, add_generation_prompt) for m, i in zip(dialogues, image_lists)]
        ids, mask = pad_sequences([e[0] for e in encoded], self.pad_token_id, padding_side)
        out = {"input_ids": ids, "attention_mask": mask, "mm_token_type_ids": self.mm_token_type_ids(ids)}
        grids = [e[1].image_grid_thw for e in encoded if e[1].num_tokens]
        if grids:
            out["pixel_values"] = torch.cat([e[1].pixel_values for e in encoded if e[1].num_tokens])
            out["image_grid_thw"] = torch.cat(grids)
        return out

    # -------------------------------------------------------------------------------------- internals
    def _warn_if_resized(self, images: Sequence[np.ndarray], grid: torch.Tensor) -> None:
        """Warn once when the image processor resized an image: the model then sees another pixel frame."""
        patch = int(self.image_processor.patch_size)
        for image, (_, h, w) in zip(images, grid.tolist()):
            if (h * patch, w * patch) != image.shape[:2] and not self._warned_resize:
                self._warned_resize = True
                logger.warning(
                    "the image processor resized a %dx%d image to %dx%d (pixels per image must be within %s); pixel "
                    "coordinates the model writes then refer to the resized frame. Give the environment the same "
                    "frame (sides multiples of %d, pixels within those bounds).",
                    image.shape[0], image.shape[1], h * patch, w * patch, self.pixel_bounds, patch * self.merge_size,
                )  # fmt: skip

    @property
    def pixel_bounds(self) -> tuple[int, int]:
        """``(min_pixels, max_pixels)`` of an image after the processor's resize."""
        size = self.image_processor.size
        get = size.get if isinstance(size, dict) else lambda key: getattr(size, key, None)
        return int(get("shortest_edge")), int(get("longest_edge"))

    def _token_id(self, token: str) -> int:
        token_id = self.tokenizer.convert_tokens_to_ids(token)
        if token_id is None or token_id == self.tokenizer.unk_token_id:
            raise ConfigError(
                f"the tokenizer has no {token!r} token; a Qwen2-VL-family tokenizer is required "
                "(use the bundled model or a Qwen2-VL / Qwen2.5-VL checkpoint)."
            )
        return int(token_id)

    def _assistant_turn_suffix(self) -> str:
        r"""What the template writes after an assistant message's text (``"<|im_end|>\n"`` for Qwen)."""
        marker = "\x00MAPO_MARKER\x00"
        probe = [{"role": "user", "content": [{"type": "text", "text": "q"}]}]
        probe.append({"role": "assistant", "content": [{"type": "text", "text": marker}]})
        text = self.render(probe)
        return text[text.index(marker) + len(marker) :] if marker in text else TURN_END_TOKEN + "\n"


def pad_sequences(
    sequences: Sequence[Sequence[int]], pad_value: int, padding_side: str = "right"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack integer sequences into (B, T) ids and a (B, T) attention mask, padded left or right."""
    if padding_side not in ("left", "right"):
        raise ConfigError(f"padding_side must be 'left' or 'right', got {padding_side!r}")
    length = max((len(s) for s in sequences), default=0)
    ids = torch.full((len(sequences), length), pad_value, dtype=torch.long)
    mask = torch.zeros((len(sequences), length), dtype=torch.long)
    for row, seq in enumerate(sequences):
        span = slice(length - len(seq), length) if padding_side == "left" else slice(0, len(seq))
        ids[row, span] = torch.as_tensor(list(seq), dtype=torch.long)
        mask[row, span] = 1
    return ids, mask


def _read_chat_template(name_or_path: str | Path, hub_kwargs: dict[str, Any]) -> str | None:
    """The processor chat template of a checkpoint (``chat_template.jinja`` or ``.json``), if any."""
    for filename in ("chat_template.jinja", "chat_template.json"):
        path = Path(name_or_path) / filename
        if not Path(name_or_path).is_dir():
            path = _hub_file(str(name_or_path), filename, hub_kwargs)
        if path is None or not path.is_file():
            continue
        text = path.read_text(encoding="utf-8")
        return json.loads(text)["chat_template"] if filename.endswith(".json") else text
    return None


def _hub_file(repo_id: str, filename: str, hub_kwargs: dict[str, Any]) -> Path | None:
    """A file of a hub repository (from the cache when offline), or ``None`` when it has none."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError, LocalEntryNotFoundError

    keys = ("revision", "cache_dir", "local_files_only", "token")
    try:
        return Path(hf_hub_download(repo_id, filename, **{k: v for k, v in hub_kwargs.items() if k in keys}))
    except (EntryNotFoundError, LocalEntryNotFoundError):
        return None
