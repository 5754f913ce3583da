"""QwenVLProcessor: template rendering, image patches, placeholder expansion, mm_token_type_ids, no torchvision."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

from mapo_agent.policy import QwenVLProcessor, bundled_model_path
from mapo_agent.policy.processor import pad_sequences
from mapo_env.errors import ConfigError


@pytest.fixture(scope="module")
def processor() -> QwenVLProcessor:
    return QwenVLProcessor.from_pretrained(bundled_model_path())


def _dialogue(num_images: int) -> list[dict]:
    content = [{"type": "image"} for _ in range(num_images)] + [{"type": "text", "text": "What shape?"}]
    return [{"role": "user", "content": content}]


def test_works_without_torchvision(monkeypatch):
    monkeypatch.setitem(sys.modules, "torchvision", None)  # any `import torchvision` now fails
    with pytest.raises(ImportError):
        import torchvision  # noqa: F401
    processor = QwenVLProcessor.from_pretrained(bundled_model_path())
    assert type(processor.image_processor).__name__ == "Qwen2VLImageProcessorPil"
    assert processor.encode_images([np.zeros((56, 56, 3), np.uint8)]).num_tokens == [4]


def test_renders_the_qwen_template(processor):
    text = processor.render(_dialogue(1), add_generation_prompt=True)
    assert text == (
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n"
        "<|vision_start|><|image_pad|><|vision_end|>What shape?<|im_end|>\n<|im_start|>assistant\n"
    )
    assert processor.turn_suffix == "<|im_end|>\n"


def test_image_patches_and_grid(processor):
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (112, 84, 3), dtype=np.uint8), rng.integers(0, 256, (56, 56, 3), dtype=np.uint8)]
    encoded = processor.encode_images(images)
    assert encoded.image_grid_thw.tolist() == [[1, 8, 6], [1, 4, 4]]  # sides / patch 14
    assert encoded.num_tokens == [12, 4]  # h * w / merge 2**2
    assert encoded.pixel_values.shape == (48 + 16, 3 * 2 * 14 * 14)
    # Row 0 is the top-left 14x14 patch of image 0, channel first, repeated over the 2 temporal slots,
    # normalised with the CLIP mean/std.
    mean, std = np.array(processor.image_processor.image_mean), np.array(processor.image_processor.image_std)
    patch = (images[0][:14, :14].astype(np.float64) / 255 - mean) / std  # (14, 14, 3)
    expected = np.stack([patch.transpose(2, 0, 1)] * 2, axis=1).reshape(-1)  # (C, T, 14, 14)
    np.testing.assert_allclose(encoded.pixel_values[0].numpy(), expected, atol=1e-5)


def test_call_expands_placeholders_and_marks_image_tokens(processor):
    rng = np.random.default_rng(1)
    images = [
        rng.integers(0, 256, (56, 84, 3), dtype=np.uint8),
        rng.integers(0, 256, (28 * 4, 28 * 2, 3), dtype=np.uint8),
    ]
    batch = processor([_dialogue(2), _dialogue(0)], [images, []])
    ids, types = batch["input_ids"], batch["mm_token_type_ids"]
    assert int((ids[0] == processor.image_token_id).sum()) == 6 + 8
    assert int((ids[1] == processor.image_token_id).sum()) == 0
    assert torch.equal(types, (ids == processor.image_token_id).int())
    assert batch["image_grid_thw"].tolist() == [[1, 4, 6], [1, 8, 4]]
    assert batch["attention_mask"][1, 0] == 0 and batch["attention_mask"][1, -1] == 1  # left padded
    # Each image's placeholders sit in one run between <|vision_start|> and <|vision_end|>.
    row = ids[0][batch["attention_mask"][0].bool()].tolist()
    start = processor.tokenizer.convert_tokens_to_ids("<|vision_start|>")
    first = row.index(start)
    assert row[first + 1 : first + 7] == [processor.image_token_id] * 6
    assert row[first + 7] == processor.tokenizer.convert_tokens_to_ids("<|vision_end|>")


def test_placeholder_image_mismatch_is_a_named_error(processor):
    ids = processor.encode_text(processor.render(_dialogue(2)))
    with pytest.raises(ConfigError, match="2 image placeholder"):
        processor.expand_image_tokens(ids, [4])


@pytest.mark.parametrize(
    "bad", [np.zeros((28, 28), np.uint8), np.zeros((28, 28, 3), np.float32), np.zeros((28, 28, 4), np.uint8), "img"]
)
def test_bad_image_is_a_named_error(processor, bad):
    with pytest.raises(ConfigError, match=r"np.uint8 RGB array of shape \(H, W, 3\)"):
        processor.encode_images([bad])


def test_pad_sequences_sides():
    ids, mask = pad_sequences([[1, 2, 3], [4]], pad_value=0, padding_side="left")
    assert ids.tolist() == [[1, 2, 3], [0, 0, 4]] and mask.tolist() == [[1, 1, 1], [0, 0, 1]]
    ids, mask = pad_sequences([[1, 2, 3], [4]], pad_value=9)
    assert ids.tolist() == [[1, 2, 3], [4, 9, 9]] and mask.tolist() == [[1, 1, 1], [1, 0, 0]]


def test_decode_never_raises_on_out_of_vocab_ids(processor):
    ids = processor.encode_text("ok") + [len(processor.tokenizer) + 5, -1]
    assert processor.decode(ids) == "ok"


def test_warns_when_the_processor_resizes(processor, caplog):
    processor._warned_resize = False
    processor.encode_images([np.zeros((840, 1176, 3), np.uint8)])
    assert "resized a 840x1176 image" in caplog.text
