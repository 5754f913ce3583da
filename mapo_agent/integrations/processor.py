"""An image-only Qwen2.5-VL processor that loads without torchvision (for the TRL and verl adapters).

``AutoProcessor.from_pretrained`` on a Qwen2.5-VL checkpoint builds the video processor too, which
needs torchvision (this project does not install it). :class:`QwenVLImageProcessor` is the stock
``Qwen2_5_VLProcessor`` minus its video half, on the PIL image processor: chat templates, image
placeholders, ``pixel_values`` and ``image_grid_thw`` work as in the stock processor; videos are not
supported. Only transformers is imported.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from transformers import AutoTokenizer
from transformers.models.qwen2_5_vl import Qwen2_5_VLProcessor
from transformers.processing_utils import ProcessorMixin

from mapo_env.errors import ConfigError
from mapo_env.integrations.chat_template import QWEN25VL_TOOL_CHAT_TEMPLATE


class QwenVLImageProcessor(Qwen2_5_VLProcessor):
    """Qwen2.5-VL's processor with an image processor and a tokenizer only (no video processor).

    Build it with :func:`load_image_processor`.
    """

    def __init__(self, image_processor: Any = None, tokenizer: Any = None, chat_template: str | None = None) -> None:
        self.image_token = getattr(tokenizer, "image_token", None) or "<|image_pad|>"
        self.video_token = getattr(tokenizer, "video_token", None) or "<|video_pad|>"
        self.image_token_id = tokenizer.convert_tokens_to_ids(self.image_token)
        self.video_token_id = tokenizer.convert_tokens_to_ids(self.video_token)
        ProcessorMixin.__init__(self, image_processor, tokenizer, chat_template=chat_template)
        self.video_processor = None


def load_image_processor(
    model_path: str | Path, chat_template: str | None = QWEN25VL_TOOL_CHAT_TEMPLATE
) -> QwenVLImageProcessor:
    """The image-only processor of a Qwen2-VL / Qwen2.5-VL checkpoint folder or hub id.

    Reads ``tokenizer*.json`` and ``preprocessor_config.json``, pads on the left (TRL's requirement),
    makes the image processor return tensors (as the stock one does: TRL concatenates them with
    ``torch.cat``) and sets ``chat_template`` on the processor and its tokenizer.

    Args:
        model_path: The checkpoint (e.g. ``mapo_agent.policy.tiny.bundled_model_path()``).
        chat_template: The template to install; default the tool-capable
            :data:`~mapo_env.integrations.chat_template.QWEN25VL_TOOL_CHAT_TEMPLATE`; ``None`` keeps
            the checkpoint's own.

    Raises:
        ConfigError: the checkpoint has no Qwen2-VL image processor (``preprocessor_config.json``).
    """
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    try:
        image_processor = Qwen2VLImageProcessorPil.from_pretrained(str(model_path))
    except OSError as err:
        raise ConfigError(
            f"{model_path} has no Qwen2-VL image processor (preprocessor_config.json); pass a Qwen2-VL or "
            "Qwen2.5-VL checkpoint"
        ) from err
    image_processor.return_tensors = "pt"
    tokenizer = AutoTokenizer.from_pretrained(str(model_path), padding_side="left")
    processor = QwenVLImageProcessor(image_processor=image_processor, tokenizer=tokenizer)
    if chat_template is not None:
        processor.chat_template = chat_template
        tokenizer.chat_template = chat_template
    return processor
